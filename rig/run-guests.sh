#!/usr/bin/env bash
# Stages 4-6 for one or more targets: pack the initramfs, boot each emulated
# machine (two at a time: each emulator is single-threaded), collect results.
# Usage: run-guests.sh BUILD_DIR OUTDIR MODE TARGET...
#   MODE "plan": run tests/plans/TARGET.list; "demo": run the demo VMM;
#   "bench": the demo VMM's snapshot benchmark.
#   A target is a vendor (svm, vmx) or vendor-variant (see rig/plan.sh).
# Leaves OUTDIR/TARGET/{console.log,results.tsv}.
. "$(dirname "$0")/common.sh"

build=$1 outdir=$(realpath -m "$2") mode=$3
shift 3
mkdir -p "$outdir"
demo=$outdir/nestkit-demo
khdr=
[ -d "$build/include" ] && khdr=$build/include
logged "$outdir/userspace.log" make -s -C "$NESTKIT_ROOT/userspace" \
	O="$outdir/userspace" KHDR="$khdr" ||
	die "demo VMM build failed"
cp "$outdir/userspace/nestkit-demo" "$demo"
"$NESTKIT_ROOT/rig/pack-initramfs.sh" "$build" "$demo" "$outdir/initrd.gz"

# Budgets are host seconds for boot + the whole plan, generous for a loaded
# machine; a run that needs them is reported as a timeout, never as a pass.
declare -A limit=([svm]=600 [vmx]=1500)
# The bench's 1 GiB pass alone takes about 15 min of QEMU time.
[ "$mode" != bench ] || limit[svm]=2400
boot_one() {
	local t=$1 v=${1%%-*} args
	case $mode in
	demo) args="nestkit.demo=1" ;;
	# Guest memory: 6 GiB on svm for the bench (64 MiB-1 GiB), 1 GiB on vmx
	# (64 MiB); the bench needs 3 copies.
	bench) args="nestkit.bench=$( [ "$v" = svm ] && echo 16384,65536,262144 || echo 16384)" ;;
	*) args="nestkit.plan=$t" ;;
	esac
	args="$args $("$NESTKIT_ROOT/rig/plan.sh" --cmdline "$t")"
	step "booting $t ($( [ "$v" = svm ] && echo 'QEMU TCG, AMD SVM+NPT' || echo 'Bochs, Intel VMX+EPT')) $args"
	# shellcheck disable=SC2086
	"$NESTKIT_ROOT/rig/boot.sh" "$v" "$build" "$outdir/initrd.gz" "$outdir/$t" \
		"${limit[$v]}" $args
}

report_one() {
	local t=$1 rc=$2
	info "$t finished after $(cat "$outdir/$t/seconds" 2>/dev/null || echo '?') s (status $rc)"
	if [ "$mode" = bench ]; then
		grep -a -E '^# (bench|nestkit: bench)|Bail out' "$outdir/$t/console.log" | sed "s/^/  [$t] /"
	elif [ "$mode" = demo ]; then
		sed -n '/^nestkit-demo/,/^# nestkit: done/p;/Bail out/p' "$outdir/$t/console.log" |
			grep -E '^(nestkit-|  |Bail out|# snapshot)' | sed "s/^/  [$t] /"
	else
		"$NESTKIT_ROOT/rig/plan.sh" "$t" >"$outdir/$t/plan"
		"$NESTKIT_ROOT/rig/collect.sh" "$t" "$outdir/$t" "$outdir/$t/plan" "$rc"
	fi
}

# Run in pairs, as many as there are cores, in the order given.
targets=("$@")
while [ ${#targets[@]} -gt 0 ]; do
	batch=("${targets[@]:0:$(nproc)}")
	targets=("${targets[@]:${#batch[@]}}")
	pids=()
	for t in "${batch[@]}"; do boot_one "$t" & pids+=($!); done
	for i in "${!batch[@]}"; do
		rc=0
		wait "${pids[$i]}" || rc=$?
		report_one "${batch[$i]}" "$rc"
	done
done
