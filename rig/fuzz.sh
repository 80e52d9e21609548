#!/usr/bin/env bash
# libFuzzer runs of the userspace parsers that take guest bytes
# (userspace/fuzz/libfuzzer/: vmbus messages, the VMware responder, the
# snapshot engine's exits and nested state), under ASan + UBSan.
#   fuzz.sh check OUTDIR   "make check": every committed seed
#                          (userspace/fuzz/corpus/TARGET/) must pass, then a
#                          bounded run with a fixed seed (same inputs every time)
#   fuzz.sh long OUTDIR    "make fuzz": $FUZZ_SECONDS (default 600) per target,
#                          seed printed by libFuzzer; new inputs and any crash
#                          are kept in OUTDIR/TARGET/ to add to the corpus
# One line per target: "fuzz TARGET: PASS|FAIL ..." (and "fuzz corpus: ..."
# in check mode); exit status 1 on any failure.
. "$(dirname "$0")/common.sh"

mode=${1:-} out=${2:-}
[ -n "$out" ] && { [ "$mode" = check ] || [ "$mode" = long ]; } ||
	die "usage: fuzz.sh check|long OUTDIR"
mkdir -p "$out"
out=$(realpath "$out")
rc=0
logged "$out/build.log" make -s -C "$NESTKIT_ROOT/userspace" O="$out/build" fuzzers ||
	die "libFuzzer targets do not build: see $out/build.log"
# The committed corpus is what seeds.py writes (plus inputs kept as found,
# named regress-*): a seed edited by hand would be lost at its next run.
if [ "$mode" = check ]; then
	rm -rf "$out/seeds"
	python3 "$NESTKIT_ROOT/userspace/fuzz/libfuzzer/seeds.py" "$out/seeds"
	if ! diff -r -q -x 'regress-*' "$out/seeds" "$NESTKIT_ROOT/userspace/fuzz/corpus" >"$out/seeds.diff"; then
		echo "fuzz corpus: FAIL userspace/fuzz/corpus differs from what seeds.py writes: $(head -n 1 "$out/seeds.diff")"
		rc=1
	else
		echo "fuzz corpus: PASS as seeds.py writes it, plus $(find "$NESTKIT_ROOT/userspace/fuzz/corpus" -name 'regress-*' | wc -l) inputs kept as found"
	fi
fi
# Fixed-seed runs per target: each takes a few seconds on one core.
declare -A runs=([fuzz_vmbus]=500000 [fuzz_vmware]=500000 [fuzz_snapshot]=40000)
for bin in "$out"/build/fuzz/fuzz_*; do
	t=$(basename "$bin") name=${t#fuzz_}
	seeds=$NESTKIT_ROOT/userspace/fuzz/corpus/$name
	work=$out/$name
	rm -rf "$work"; mkdir -p "$work/corpus"
	log=$out/$name.log
	ok=1
	# The committed seeds first, each as its own run (a crash names it).
	nseeds=$(find "$seeds" -type f | wc -l)
	[ "$nseeds" -gt 0 ] || { echo "fuzz $t: FAIL no seeds in userspace/fuzz/corpus/$name"; rc=1; continue; }
	"$bin" -runs=0 "$seeds" >"$log.seeds" 2>&1 || ok=0
	if [ "$ok" = 1 ]; then
		if [ "$mode" = check ]; then
			set -- -seed=1 -runs="${runs[$t]:-100000}"
		else
			set -- -max_total_time="${FUZZ_SECONDS:-600}"
		fi
		# New inputs go to the work corpus; the committed seeds stay as they are.
		# -timeout: an input that hangs is a failure, not a 20-minute stall.
		(cd "$work" && "$bin" "$@" -timeout=10 -print_final_stats=1 corpus "$seeds") >"$log" 2>&1 || ok=0
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null)
	cov=$(grep -h -o 'cov: [0-9]*' "$log" 2>/dev/null | tail -n 1 | cut -d' ' -f2)
	seed=$(sed -n 's/.*Seed: \([0-9]*\).*/\1/p' "$log" 2>/dev/null | head -n 1)
	if [ "$ok" = 1 ]; then
		echo "fuzz $t: PASS $nseeds seeds, then ${execs:-?} inputs from seed ${seed:-?} (${cov:-?} edges covered)"
	else
		crash=$(ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null | head -n 1)
		why=$(grep -h -m1 -E 'ERROR: |SUMMARY: ' "$log.seeds" "$log" 2>/dev/null | head -n 1)
		echo "fuzz $t: FAIL ${why:-see $log}${crash:+ (input: $crash)}"
		rc=1
	fi
done
exit $rc
