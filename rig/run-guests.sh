#!/usr/bin/env bash
# Stages 4-6 for one or more targets: pack the initramfs, boot each emulated
# machine (two at a time: each emulator is single-threaded), collect results.
# Usage: run-guests.sh BUILD_DIR OUTDIR MODE TARGET...
#   MODE "plan": run tests/plans/TARGET.list; "demo": run the demo VMM;
#   "bench": the cost bench and the snapshot benchmark (rig/bench.sh).
#   A target is a vendor (svm, vmx) or vendor-variant (see rig/plan.sh).
#   A plan with "#! kernel: debian" boots Debian's own image instead
#   (rig/stock.sh) with the KVM modules in $NESTKIT_DKMS_MODULES (the
#   directory rig/dkms-test.sh copied them to from the installed package).
#   A plan with "#! kernel: debug" boots the debug kernel built into
#   $NESTKIT_DEBUG_BUILD (build.sh -k -c kernel/config/debug.config).
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
cp "$outdir/userspace/nestkit" "$outdir/nestkit"
"$NESTKIT_ROOT/rig/pack-initramfs.sh" "$build" "$demo" "$outdir/initrd.gz"

declare -A kernel=() initrd=() norun=() label=() kfn=()
for t in "$@"; do
	kernel[$t]=$build/bzImage initrd[$t]=$outdir/initrd.gz label[$t]= kfn[$t]=$build/kvm-functions
	[ "$mode" = plan ] || continue
	case $("$NESTKIT_ROOT/rig/plan.sh" --kernel "$t") in
	debug)
		if [ -f "${NESTKIT_DEBUG_BUILD:-/nonexistent}/bzImage" ]; then
			kernel[$t]=$NESTKIT_DEBUG_BUILD/bzImage kfn[$t]=$NESTKIT_DEBUG_BUILD/kvm-functions
			label[$t]=", debug kernel"
		else
			norun[$t]="no debug kernel (its build failed)"
		fi
		continue ;;
	debian) ;;
	*) continue ;;
	esac
	if [ ! -f "${NESTKIT_DKMS_MODULES:-/nonexistent}/kvm.ko" ]; then
		norun[$t]="no DKMS-built modules (the nestkit-dkms install on the host failed)"
		continue
	fi
	stock=$("$NESTKIT_ROOT/rig/stock.sh" image) && [ -f "$stock/vmlinuz" ] || {
		norun[$t]="no Debian kernel image (rig/stock.sh image failed or printed more than its directory)"
		continue
	}
	if [ ! -f "$outdir/initrd-debian.gz" ]; then
		"$NESTKIT_ROOT/rig/stock.sh" initrd "$outdir/initrd.gz" "$NESTKIT_DKMS_MODULES" \
			"$outdir/initrd-debian.gz"
	fi
	kernel[$t]=$stock/vmlinuz initrd[$t]=$outdir/initrd-debian.gz
	label[$t]=", Debian's $(basename "$stock")"
done

# Budgets are host seconds for boot + the whole plan, generous for a loaded
# machine; a run that needs them is reported as a timeout, never as a pass.
declare -A limit=([svm]=600 [vmx]=1500)
# The bench's 1 GiB pass alone takes about 15 min of QEMU time.
[ "$mode" != bench ] || limit[svm]=2400
is_debug() { [ "$mode" = plan ] && [ "$("$NESTKIT_ROOT/rig/plan.sh" --kernel "$1")" = debug ]; }
# The debug kernel's checks make KVM's paths several times longer.
budget() { if is_debug "$1"; then echo $((limit[${1%%-*}] * 3)); else echo "${limit[${1%%-*}]}"; fi; }
boot_one() {
	local t=$1 v=${1%%-*} args cpus
	if [ -n "${norun[$t]:-}" ]; then
		mkdir -p "$outdir/$t"
		echo "Bail out! ${norun[$t]}" >"$outdir/$t/console.log"
		return 2
	fi
	case $mode in
	demo) args="nestkit.demo=1" ;;
	# Guest memory: 6 GiB on svm for the bench (64 MiB-1 GiB), 1 GiB on vmx
	# (64 MiB); the bench needs 3 copies.
	# $BENCH_PAGES / $BENCH_COST override the snapshot pages ("none") and
	# the cost bench's iterations[:cases] (rig/bench.sh).
	bench) args="nestkit.bench=${BENCH_PAGES:-$( [ "$v" = svm ] && echo 16384,65536,262144 || echo 16384)}"
	       args="$args nestkit.cost=${BENCH_COST:-1000} nestkit.rounds=${BENCH_ROUNDS:-1}" ;;
	*) args="nestkit.plan=$t" ;;
	esac
	args="$args $("$NESTKIT_ROOT/rig/plan.sh" --cmdline "$t")"
	# A plan whose CPU count cannot be read must not boot with another.
	cpus=$("$NESTKIT_ROOT/rig/plan.sh" --cpus "$t") || { mkdir -p "$outdir/$t"
		echo "Bail out! bad '#! cpus:' line in tests/plans/$t.list" >"$outdir/$t/console.log"; return 2; }
	step "booting $t ($( [ "$v" = svm ] && echo 'QEMU TCG, AMD SVM+NPT' || echo 'Bochs, Intel VMX+EPT'))${label[$t]} $args"
	# shellcheck disable=SC2086
	BOOT_CPUS=$cpus "$NESTKIT_ROOT/rig/boot.sh" "$v" "${kernel[$t]}" "${initrd[$t]}" "$outdir/$t" \
		"$(budget "$t")" $args
}

report_one() {
	local t=$1 rc=$2
	info "$t finished after $(cat "$outdir/$t/seconds" 2>/dev/null || echo '?') s (status $rc)"
	if [ "$mode" = bench ]; then
		grep -a -E '^# (bench|cost|nestkit: bench|nestkit: cost)|^nestkit-cost|Bail out' "$outdir/$t/console.log" | sed "s/^/  [$t] /"
	elif [ "$mode" = demo ]; then
		sed -n '/^nestkit-demo/,/^# nestkit: done/p;/Bail out/p' "$outdir/$t/console.log" |
			grep -E '^(nestkit-|  |Bail out|# snapshot)' | sed "s/^/  [$t] /"
	else
		"$NESTKIT_ROOT/rig/plan.sh" "$t" >"$outdir/$t/plan"
		"$NESTKIT_ROOT/rig/collect.sh" "$t" "$outdir/$t" "$outdir/$t/plan" "$rc" "${kfn[$t]}" \
			"$(is_debug "$t" && echo 1 || echo 0)"
	fi
}

# As many emulators at a time as there are cores (each is single-threaded).
# Longest first, so that both cores stay busy until the end: Bochs targets
# on the debug kernel (about 30 min each), QEMU ones on the debug kernel
# (svm-fuzz about 6 min), the other Bochs targets, the rest. Each target is
# reported as it finishes.
mapfile -t targets < <(
	for t in "$@"; do
		case $t in vmx*) r=3 ;; *) r=4 ;; esac
		is_debug "$t" && r=$((r - 2))
		echo "$r $t"
	done | sort -s -k1,1n | cut -d' ' -f2)
declare -A target_of=()
running=0
reap() {
	local rc=0 pid
	wait -n -p pid || rc=$?
	running=$((running - 1))
	report_one "${target_of[$pid]}" "$rc"
}
for t in "${targets[@]}"; do
	[ "$running" -lt "$(nproc)" ] || reap
	boot_one "$t" &
	target_of[$!]=$t
	running=$((running + 1))
done
while [ "$running" -gt 0 ]; do reap; done
