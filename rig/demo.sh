#!/usr/bin/env bash
# "make demo": build (or reuse) the patched kernel and, for comparison, the
# pristine base kernel; boot both on the two emulated vendors and run the
# demo VMM in each: the capability probe, legacy BIOS AP discovery by APIC
# Remote Read, then lazy snapshots of a writing guest with each backend,
# verified by hash.
. "$(dirname "$0")/common.sh"

"$NESTKIT_ROOT/rig/deps.sh"
step "kernel with the nestkit series"
after=$("$NESTKIT_ROOT/rig/build.sh")
step "pristine base kernel, for the before/after comparison"
before=$("$NESTKIT_ROOT/rig/build.sh" -k -n 0)
out=$NESTKIT_ROOT/out/demo
rm -rf "$out"

step "BEFORE: pristine $BASE_PACKAGE"
"$NESTKIT_ROOT/rig/run-guests.sh" "$before" "$out/before" demo svm vmx
step "AFTER: with the nestkit series"
"$NESTKIT_ROOT/rig/run-guests.sh" "$after" "$out/after" demo svm vmx

ok=1
for v in svm vmx; do
	for phase in before after; do
		log=$out/$phase/$v/console.log
		grep -q '^nestkit-demo: .* nestkit capabilities absent' "$log" &&
			grep -q '^nestkit-demo: found [0-9]* of 3 APs' "$log" ||
			{ warn "$v/$phase: the demo VMM did not complete (log: $log)"; ok=0; }
	done
	grep -q '^nestkit-demo: found 3 of 3 APs' "$out/after/$v/console.log" ||
		{ warn "$v: the patched kernel did not answer every Remote Read"; ok=0; }
	grep -q '^nestkit-demo: found 0 of 3 APs' "$out/before/$v/console.log" ||
		warn "$v: the pristine kernel answered a Remote Read (unexpected)"
	# F4: both snapshot backends with the series; userfaultfd-wp only without.
	for b in mprotect uffd; do
		grep -q "^# snapshot $b: 2/2 runs, .* lost or torn pages 0," "$out/after/$v/console.log" ||
			{ warn "$v: the $b snapshot did not match memory at the start"; ok=0; }
	done
	grep -q '^# snapshot mprotect run 0: KVM_CAP_MEMORY_FAULT_PERM' "$out/before/$v/console.log" ||
		warn "$v: the pristine kernel accepted KVM_CAP_MEMORY_FAULT_PERM (unexpected)"
done
[ "$ok" = 1 ] || die "demo failed"
step "demo done (logs in out/demo/)"
