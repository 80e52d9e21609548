#!/usr/bin/env bash
# Shows that the debug kernel catches what it is there for: builds it with
# the series plus tests/debug-kernel/broken-on-purpose.patch (in the nested
# VMware backdoor path: an allocation never freed, a read one byte past it,
# guest memory read under a spinlock, a VM reference never dropped), runs
# the VMware tests on it, and expects KASAN, DEBUG_ATOMIC_SLEEP, kmemleak and
# the check for VMs left after a test each to fail the run.
# Not part of "make check"; needs one full build (make check) first.
# Usage: prove-debug.sh [VENDOR...]     (default: svm vmx)
. "$(dirname "$0")/common.sh"

[ $# -gt 0 ] || set -- svm vmx
out=$NESTKIT_ROOT/out/prove-debug
rm -rf "$out"; mkdir -p "$out"
full=$(ls -td "$ARTIFACTS"/*/selftests 2>/dev/null | head -n 1)
[ -n "$full" ] || die "no full build in $ARTIFACTS: run make check once"
full=$(dirname "$full")

# The series as committed, plus the broken patch as the vmware topic's last.
repo=$out/repo
mkdir -p "$repo"
git -C "$NESTKIT_ROOT" archive HEAD | tar -x -C "$repo"
cp "$NESTKIT_ROOT/tests/debug-kernel/broken-on-purpose.patch" \
	"$repo/kernel/patches/vmware/0099-DO-NOT-MERGE-broken-on-purpose.patch"
step "building the debug kernel with the series + tests/debug-kernel/broken-on-purpose.patch"
dbg=$("$repo/rig/build.sh" -k -c "$repo/kernel/config/debug.config") || die "debug build failed"

# The cached build's initramfs, with a plan of the VMware tests only.
logged "$out/userspace.log" make -s -C "$NESTKIT_ROOT/userspace" O="$out/userspace" KHDR="$full/include" ||
	die "demo VMM build failed"
"$NESTKIT_ROOT/rig/pack-initramfs.sh" "$full" "$out/userspace/nestkit-demo" "$out/base.gz"
mkdir -p "$out/overlay/plans"
printf '%s\n' vmware_backdoor_test vmware_tools >"$out/overlay/plans/prove.list"
overlay_initrd "$out/base.gz" "$out/overlay" "$out/initrd.gz"

rc=0
for v in "$@"; do
	step "booting the broken debug kernel on $v"
	brc=0
	"$NESTKIT_ROOT/rig/boot.sh" "$v" "$dbg/bzImage" "$out/initrd.gz" "$out/$v" 3600 nestkit.plan=prove $("$NESTKIT_ROOT/rig/plan.sh" --cmdline "$v-debug") || brc=$?
	"$NESTKIT_ROOT/rig/collect.sh" "$v-debug" "$out/$v" "$out/overlay/plans/prove.list" "$brc" \
		"$dbg/kvm-functions" >/dev/null
	sed 's/^/  /' "$out/$v/results.tsv"
	# A test row names only the first splat of its test: look at the log.
	grep -q -P '\tFAIL\tguest kernel: ' "$out/$v/results.tsv" || { warn "$v: no test failed"; rc=1; }
	for d in "BUG: KASAN: slab-out-of-bounds in kvm_vmware_nested_backdoor_access" \
		 "BUG: sleeping function called from invalid context" \
		 "# kmemleak: .*kvm_vmware_nested_backdoor_access" \
		 "# nestkit: VMs left by vmware_backdoor_test: "; do
		if grep -q -- "$d" "$out/$v/console.log" &&
		   { [[ "$d" != *kmemleak* ]] || grep -q -P '^[^\t]+\tkernel\(kmemleak\)\tFAIL' "$out/$v/results.tsv"; }; then
			info "$v: caught: $d"
		else
			warn "$v: NOT caught: $d"
			rc=1
		fi
	done
done
[ "$rc" = 0 ] && info "every planted bug was caught" || warn "a planted bug went unnoticed"
exit $rc
