#!/usr/bin/env bash
# "make demo": build (or reuse) the patched kernel, boot it on both emulated
# vendors and run the demo VMM there.
. "$(dirname "$0")/common.sh"

"$NESTKIT_ROOT/rig/deps.sh"
build=$("$NESTKIT_ROOT/rig/build.sh")
out=$NESTKIT_ROOT/out/demo
rm -rf "$out"
"$NESTKIT_ROOT/rig/run-guests.sh" "$build" "$out" demo svm vmx
ok=1
for v in svm vmx; do
	grep -q '^nestkit-demo: .* nestkit capabilities absent' "$out/$v/console.log" ||
		{ warn "$v: the demo VMM did not complete (log: out/demo/$v/console.log)"; ok=0; }
done
[ "$ok" = 1 ] || die "demo failed"
step "demo done (logs in out/demo/)"
