#!/usr/bin/env bash
# "make check": every host-side check, then the test plans on both emulated
# vendors. Ends with "check: N passed, N failed, N skipped" and exits non-zero
# on any failure. Results and logs: out/check/.
. "$(dirname "$0")/common.sh"

out=$NESTKIT_ROOT/out/check
rm -rf "$out"; mkdir -p "$out"
results=$out/results.tsv
: >"$results"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$results"; }

"$NESTKIT_ROOT/rig/deps.sh"

step "host: userspace unit tests (ASan + UBSan)"
if logged "$out/unit.log" make -s -C "$NESTKIT_ROOT/userspace" O="$out/userspace-host" test; then
	record host unit-tests PASS "$(grep -h 'checks passed' "$out/unit.log" | tr '\n' ' ')"
else
	record host unit-tests FAIL "see out/check/unit.log"
fi

step "host: libFuzzer targets of the userspace parsers (seeds, then a fixed-seed run)"
frc=0
"$NESTKIT_ROOT/rig/fuzz.sh" check "$out/fuzz" >"$out/fuzz.log" 2>&1 || frc=$?
while read -r _ t st rest; do
	record host "libfuzzer ${t%:}" "$st" "$rest"
done < <(grep '^fuzz ' "$out/fuzz.log")
# One line per target, or the run itself failed.
if [ "$(grep -c '^fuzz fuzz_' "$out/fuzz.log")" != "$(ls "$NESTKIT_ROOT"/userspace/fuzz/libfuzzer/fuzz_*.c | wc -l)" ] ||
   ! grep -q '^fuzz corpus: ' "$out/fuzz.log" ||
   { [ "$frc" != 0 ] && ! grep -q '^fuzz .*: FAIL' "$out/fuzz.log"; }; then
	record host "libfuzzer targets" FAIL "fuzz.sh exit $frc: $(grep -m1 -E 'ERROR|error' "$out/fuzz.log")"
fi

step "host: series layout (topics, cover letters, numbering)"
if logged "$out/layout.log" "$NESTKIT_ROOT/rig/check-layout.sh"; then
	record host series-layout PASS "$(tail -n 1 "$out/layout.log")"
else
	record host series-layout FAIL "$(grep -m1 'ERROR' "$out/layout.log")"
fi

"$NESTKIT_ROOT/rig/base.sh"
step "host: series applies to the pristine base with no fuzz"
mapfile -t patches < <(series_patches)
with_lock   # the prepared tree must stay as prepared until checkpatch is done
if logged "$out/series.log" "$NESTKIT_ROOT/rig/prepare.sh"; then
	record host series-applies PASS "${#patches[@]} patches"
else
	record host series-applies FAIL "$(grep -m1 'ERROR' "$out/series.log")"
fi

step "host: checkpatch.pl --strict on ${#patches[@]} patches"
for p in "${patches[@]}"; do
	[ -f "$p" ] || continue
	name=$(patch_name "$p")
	log=$out/checkpatch-${name//\//_}.log
	if "$NESTKIT_ROOT/rig/checkpatch.sh" "$p" >"$log" 2>&1; then
		record host "checkpatch $name" PASS
	else
		record host "checkpatch $name" FAIL "$(grep -m1 -E '^(ERROR|WARNING|CHECK)' "$log")"
	fi
done
release_lock

step "host: kernel (CONFIG_KVM_WERROR=y) and selftests build"
# Progress lines go to the terminal and to the log; the build dir to stdout.
brc=0
build=$("$NESTKIT_ROOT/rig/build.sh" 2> >(tee "$out/build.log" >&2)) || brc=$?
wait $! 2>/dev/null || true   # let tee finish the log
if [ "$brc" = 0 ]; then
	record host "kernel+selftests build" PASS "$(basename "$build")"
else
	record host "kernel+selftests build" FAIL "$(grep -m1 ERROR "$out/build.log")"
	build=
fi

step "host: debug kernel (kernel/config/debug.config: KASAN, lockdep, UBSAN, kmemleak...)"
# The "-debug" targets boot it with the same initramfs.
if dbg=$("$NESTKIT_ROOT/rig/build.sh" -k -c "$KERNEL_DIR/config/debug.config" \
	2> >(tee "$out/build-debug.log" >&2)); then
	record host "debug kernel build" PASS "$(basename "$dbg")"
	export NESTKIT_DEBUG_BUILD=$dbg
else
	record host "debug kernel build" FAIL "$(grep -m1 ERROR "$out/build-debug.log")"
fi
wait $! 2>/dev/null || true

step "host: Debian packages (make deb), installed and removed on this machine"
# The DKMS modules built by the install are what the "-debian" targets boot.
if logged "$out/deb.log" "$NESTKIT_ROOT/rig/deb.sh"; then
	record host "packages build (make deb)" PASS "$(cd "$NESTKIT_ROOT/out/deb" && echo *.deb)"
	if "$NESTKIT_ROOT/rig/dkms-test.sh" "$NESTKIT_ROOT/out/deb" "$out/dkms-modules" "$results" \
		>"$out/dkms.log" 2>&1; then
		export NESTKIT_DKMS_MODULES=$out/dkms-modules
	fi
	grep '^dkms-test:' "$out/dkms.log" | sed 's/^/    /'
else
	record host "packages build (make deb)" FAIL "$(grep -m1 ERROR "$out/deb.log")"
fi

mapfile -t targets < <("$NESTKIT_ROOT/rig/plan.sh" --targets)
if [ -n "$build" ]; then
	"$NESTKIT_ROOT/rig/run-guests.sh" "$build" "$out" plan "${targets[@]}" || true
fi
for t in "${targets[@]}"; do
	if [ -f "$out/$t/results.tsv" ]; then
		cat "$out/$t/results.tsv" >>"$results"
	else
		record "$t" "(run)" FAIL "${build:+guest run produced no results}${build:-not run: the build failed}"
	fi
done

echo
echo "== results (out/check/results.tsv) =="
print_results "$results"
echo
for s in host "${targets[@]}"; do
	awk -F'\t' -v s="$s" '$1 == s { n[$3]++ } END {
		printf "  %-12s %d passed, %d failed, %d skipped, %d known failures\n", s,
		       n["PASS"], n["FAIL"] + n["XPASS"], n["SKIP"], n["XFAIL"] }' "$results"
done
# Each failure once more, with the end of its console output: CI shows
# only the tail of this output.
awk -F'\t' '$3 == "FAIL" || $3 == "XPASS" { print $1 "\t" $2 "\t" substr($4, 1, 400) }' "$results" |
while IFS=$'\t' read -r t name why; do
	echo "FAILED: $t $name: $why"
	log=$out/$t/console.log
	[ -f "$log" ] && [[ "$name" != *'('* ]] || continue
	sed -n "/^# nestkit: run $name\( \|\$\)/,/^\(not \)\?ok [0-9]* $name\b/p" "$log" |
		tail -n 25 | sed "s/^/  | /"
done
awk -F'\t' '{ n[$3]++ } END {
	if (n["XFAIL"]) printf "known failures: %d (tests/known-failures.list says why)\n", n["XFAIL"]
	printf "check: %d passed, %d failed, %d skipped\n", n["PASS"], n["FAIL"] + n["XPASS"], n["SKIP"]
	exit (n["FAIL"] + n["XPASS"] > 0) }' "$results"
