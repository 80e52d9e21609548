#!/usr/bin/env bash
# "make demo": build (or reuse) the patched kernel and, for comparison, the
# pristine base kernel; boot both on the two emulated vendors and run the
# demo VMMs in each: the capability probe, legacy BIOS AP discovery by APIC
# Remote Read, lazy snapshots of a writing guest with each backend (verified
# by hash; also of an L1 + L2 guest), vmbus for a nested Hyper-V root
# partition (relay on/off; an unauthorized child partition refused), and
# VMware Tools at CPL3 in a VBS guest (nested backdoor on/off).
. "$(dirname "$0")/common.sh"

"$NESTKIT_ROOT/rig/deps.sh"
step "kernel with the nestkit series"
after=$("$NESTKIT_ROOT/rig/build.sh")
step "pristine base kernel, for the before/after comparison"
before=$("$NESTKIT_ROOT/rig/build.sh" -k -n 0)
out=$NESTKIT_ROOT/out/demo
rm -rf "$out"

step "BEFORE: pristine $BASE_PACKAGE"
NESTED_DEMOS=$after/demo "$NESTKIT_ROOT/rig/run-guests.sh" "$before" "$out/before" demo svm vmx
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
	# The nested guest (L1 + L2 writers): the same, mprotect unavailable before.
	for phase in before after; do
		log=$out/$phase/$v/console.log
		for b in mprotect uffd; do
			[ "$phase/$b" = before/mprotect ] && continue
			grep -q "^# snapshot_nested $b: 2/2 runs, .* lost or torn pages 0," "$log" ||
				{ warn "$v/$phase: the nested $b snapshot did not match memory at the start"; ok=0; }
		done
		grep -q '^nestkit-snapshot-nested-demo: exit status 0' "$log" ||
			{ warn "$v/$phase: the nested snapshot demo failed (log: $log)"; ok=0; }
	done
	grep -q '^# snapshot_nested mprotect: unavailable' "$out/before/$v/console.log" ||
		{ warn "$v/before: the nested mprotect snapshot was not reported unavailable"; ok=0; }
done
# A nested demo VMM run twice on the patched kernel (feature on, then off)
# and twice on the pristine one (no capability): on must give one $yes line,
# off and pristine the $no line, and every run the outcome it expects.
check_on_off() {
	local demo=$1 enabled=$2 yes=$3 no=$4 v a bf
	for v in svm vmx; do
		a=$out/after/$v/console.log bf=$out/before/$v/console.log
		grep -q "^$demo: .*$enabled" "$a" &&
			[ "$(grep -c "^$demo: $yes" "$a")" = 1 ] &&
			[ "$(grep -c "^$demo: $no" "$a")" = 1 ] &&
			[ "$(grep -c "^$demo: exit status 0" "$a")" = 2 ] ||
			{ warn "$v/after: $demo did not behave as configured (log: $a)"; ok=0; }
		grep -q "^$demo: .*not supported by this kernel" "$bf" &&
			! grep -q "^$demo: $yes" "$bf" &&
			[ "$(grep -c "^$demo: $no" "$bf")" = 2 ] ||
			{ warn "$v/before: expected $demo to fail on the pristine kernel (log: $bf)"; ok=0; }
	done
}
# F1: vmbus of a nested Hyper-V root partition (the patched build's demo VMM
# on both kernels; without the capability it cannot connect).
check_on_off nestkit-vmbus-relay-demo 'RELAY: enabled' \
	'vmbus connected' 'vmbus not connected'
# ...and, with the relay on, what must not reach the host is refused: the
# root partition's GPADL, a child partition on L1's direct grant alone (by
# this VMM), and one without any grant (by KVM: it goes to L1).
for v in svm vmx; do
	grep -q '^nestkit-vmbus-relay-demo: unauthorized L2s refused' "$out/after/$v/console.log" ||
		{ warn "$v/after: the vmbus demo did not refuse the unauthorized L2s"; ok=0; }
done
# F2: VMware Tools at CPL3 in L2 under an L1 that intercepts #GP.
check_on_off nestkit-vmware-tools-demo 'KVM_CAP_X86_VMWARE: BACKDOOR | NESTED_BACKDOOR' \
	'VMware Tools talks to the VMM' 'VMware Tools cannot reach the VMM'
[ "$ok" = 1 ] || die "demo failed"
step "demo done (logs in out/demo/)"
