#!/usr/bin/env bash
# "make check-series" (slow): every prefix of the series builds with
# CONFIG_KVM_WERROR=y, and the whole series also with CONFIG_KVM_HYPERV=n and
# with CONFIG_KVM_VMWARE=n.
# Ends with "check-series: N passed, N failed".
. "$(dirname "$0")/common.sh"

mapfile -t patches < <(series_patches)
pass=0 fail=0
try() {
	local what=$1; shift
	step "build: $what"
	if "$NESTKIT_ROOT/rig/build.sh" -k "$@" >/dev/null; then
		pass=$((pass + 1))
	else
		warn "FAILED: $what"
		fail=$((fail + 1))
	fi
}
for i in $(seq 1 ${#patches[@]}); do
	try "prefix $i/${#patches[@]} ($(basename "${patches[$((i - 1))]}"))" -n "$i"
done
try "whole series, CONFIG_KVM_HYPERV=n" -c "$KERNEL_DIR/config/no-hyperv.config"
try "whole series, CONFIG_KVM_VMWARE=n" -c "$KERNEL_DIR/config/no-vmware.config"
echo "check-series: $pass passed, $fail failed"
[ "$fail" = 0 ]
