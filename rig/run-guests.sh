#!/usr/bin/env bash
# Stages 4-6 for one or more vendors: pack the initramfs, boot each emulated
# machine (in parallel: each emulator is single-threaded), collect results.
# Usage: run-guests.sh BUILD_DIR OUTDIR MODE VENDOR...
#   MODE "plan": run tests/plans/VENDOR.list; "demo": run the demo VMM.
# Leaves OUTDIR/VENDOR/{console.log,results.tsv}.
. "$(dirname "$0")/common.sh"

build=$1 outdir=$(realpath -m "$2") mode=$3
shift 3
mkdir -p "$outdir"
demo=$outdir/nestkit-demo
logged "$outdir/userspace.log" make -s -C "$NESTKIT_ROOT/userspace" \
	O="$outdir/userspace" KHDR="$build/include" ||
	die "demo VMM build failed"
cp "$outdir/userspace/nestkit-demo" "$demo"
"$NESTKIT_ROOT/rig/pack-initramfs.sh" "$build" "$demo" "$outdir/initrd.gz"

# Budgets are host seconds for boot + the whole plan, generous for a loaded
# machine; a run that needs them is reported as a timeout, never as a pass.
declare -A limit=([svm]=600 [vmx]=1500)
pids=()
for v in "$@"; do
	if [ "$mode" = demo ]; then args=(nestkit.demo=1); else args=("nestkit.plan=$v"); fi
	step "booting the $v guest ($( [ "$v" = svm ] && echo 'QEMU TCG, AMD SVM+NPT' || echo 'Bochs, Intel VMX+EPT'))"
	"$NESTKIT_ROOT/rig/boot.sh" "$v" "$build" "$outdir/initrd.gz" "$outdir/$v" \
		"${limit[$v]}" "${args[@]}" &
	pids+=($!)
done
i=0
for v in "$@"; do
	rc=0
	wait "${pids[$i]}" || rc=$?
	i=$((i + 1))
	info "$v guest finished after $(cat "$outdir/$v/seconds" 2>/dev/null || echo '?') s (status $rc)"
	if [ "$mode" = demo ]; then
		sed -n '/^nestkit-demo/,/^# nestkit: done/p;/Bail out/p' "$outdir/$v/console.log" |
			grep -v '^# nestkit: done' | sed "s/^/  [$v] /"
	else
		"$NESTKIT_ROOT/rig/plan.sh" "$v" >"$outdir/$v/plan"
		"$NESTKIT_ROOT/rig/collect.sh" "$v" "$outdir/$v" "$outdir/$v/plan" "$rc"
	fi
done
