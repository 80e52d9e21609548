#!/usr/bin/env bash
# "make check-series" (slow): every prefix of the series builds with
# CONFIG_KVM_WERROR=y; each topic builds on the pristine base with only the
# topics its cover letter depends on (a line per topic, so a topic that
# applies on the base alone shows it); and the whole series also builds with
# CONFIG_KVM_HYPERV=n and with CONFIG_KVM_VMWARE=n.
# Ends with "check-series: N passed, N failed".
. "$(dirname "$0")/common.sh"

"$NESTKIT_ROOT/rig/check-layout.sh" || die "fix the series layout first"
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
# A topic and everything it depends on, transitively.
closure() {
	local t
	for t in $(topic_depends "$1"); do closure "$t"; done
	echo "$1"
}

for i in $(seq 1 ${#patches[@]}); do
	try "prefix $i/${#patches[@]} ($(patch_name "${patches[$((i - 1))]}"))" -n "$i"
done
for t in $(series_topics); do
	deps=$(closure "$t" | sort -u | { grep -vx "$t" || true; } | tr '\n' ' ')
	if [ -n "$deps" ]; then on="the pristine base + ${deps% }"; else on="the pristine base alone"; fi
	try "topic $t on $on" -t "$deps$t"
done
try "whole series, CONFIG_KVM_HYPERV=n" -c "$KERNEL_DIR/config/no-hyperv.config"
try "whole series, CONFIG_KVM_VMWARE=n" -c "$KERNEL_DIR/config/no-vmware.config"
echo "check-series: $pass passed, $fail failed"
[ "$fail" = 0 ]
