#!/usr/bin/env bash
# "make bench" (not a test): the lazy snapshot engine's backends against a
# stop-the-world copy, measured by "nestkit-demo snapshot-bench" inside the
# patched kernel on both emulators.  QEMU runs with -icount shift=0, so
# guest time is an instruction count there (1 ns = 1 instruction); Bochs
# (clock sync=none) gives virtual time only.
# Writes out/bench/table.md.
. "$(dirname "$0")/common.sh"

"$NESTKIT_ROOT/rig/deps.sh"
build=$("$NESTKIT_ROOT/rig/build.sh")
out=$NESTKIT_ROOT/out/bench
rm -rf "$out"
"$NESTKIT_ROOT/rig/run-guests.sh" "$build" "$out" bench svm vmx

table=$out/table.md
{
	echo "Guest time in ns: on svm (QEMU -icount shift=0) 1 ns = 1 emulated instruction;"
	echo "on vmx, Bochs virtual time (sync=none, ips=200000000), which batches string"
	echo "instructions and so is not an instruction count."
	echo
	echo "| vendor | memory | method | per write fault | snapshot total | copied on write | longest handler | guest stalled | lost/torn pages |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for v in svm vmx; do
		grep -a '^# bench ' "$out/$v/console.log" | awk -v v="$v" '
		/stop-the-world/ { mib = ($4 + 16) * 4 / 1024
			printf "| %s | %.0f MiB | stop-the-world | - | %s | - | - | %s | 0 |\n", v, mib, $8, $8 }
		/ pass / { mib = ($4 + 16) * 4 / 1024
			printf "| %s | %.0f MiB | %s | %s | %s | %s | %s | - | %s |\n", v, mib, $3, $18, $28, $30, $36, $42 }'
	done
} >"$table"
cat "$table"
grep -q '^# nestkit: bench exit 0' "$out/svm/console.log" &&
	grep -q '^# nestkit: bench exit 0' "$out/vmx/console.log" ||
	die "a bench run failed (logs in $out/)"
