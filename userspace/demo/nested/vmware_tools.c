// SPDX-License-Identifier: GPL-2.0-only
/*
 * nestkit-vmware-tools-demo: VMware Tools inside a VBS guest.
 *
 * This program is the L0 VMM.  Its L1 plays Hyper-V under VBS: it
 * intercepts #GP for its guest, which it cannot handle for backdoor
 * accesses.  Its L2 plays VMware Tools: a CPL3 program calling the VMware
 * backdoor (IN from port 0x5658 with EAX = 'VMXh', ECX = GETVERSION).  At
 * CPL3 that IN faults with #GP (IOPL 0, no TSS I/O permission), which KVM
 * turns into the backdoor access when the backdoor is enabled.
 *
 * With KVM_CAP_X86_VMWARE's ENABLE_NESTED_BACKDOOR, L0 emulates the access
 * on L1's behalf: it reaches this program as KVM_EXIT_IO (with
 * KVM_RUN_X86_GUEST_MODE), libnestkit's backdoor responder answers it, and
 * L2 reads the VMM's answer; L1 sees nothing.  Without it (or on a kernel
 * without the capability) the #GP goes to L1, which has no backdoor: the
 * program's call ends in an unhandled #GP.
 *
 * Built like nestkit-vmbus-relay-demo, against the KVM selftest library of
 * the patched tree (rig/build.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "vmx.h"
#include "svm_util.h"

#include "nested_demo.h"
#include "nestkit/vm.h"
#include "nestkit/vmware.h"

#define PROG			"nestkit-vmware-tools-demo"
#define L2_GUEST_STACK_SIZE	256

/* Shared with L2's assembly; written by the guests. */
bool vmw_is_amd;
u32 vmw_eax, vmw_ebx, vmw_ecx;
u8 vmw_answered;		/* L2 got past its IN */
static u32 l1_gp_exits;

/*
 * L2: VMware Tools' GETVERSION at CPL3.  L1 does not preserve L2's
 * registers across exits, so the whole call, from loading the registers to
 * storing the answer, is one assembly sequence, then a VMCALL/VMMCALL that
 * tells L1 it is done.
 */
static void __naked l2_vmware_tools(void)
{
	asm volatile("mov $" __stringify(NK_VMWARE_MAGIC) ", %eax\n\t"
		     "mov $" __stringify(NK_VMWARE_CMD_GETVERSION) ", %ecx\n\t"
		     "mov $" __stringify(NK_VMWARE_PORT) ", %edx\n\t"
		     "mov $0xffffffff, %ebx\n\t"
		     "in (%dx), %eax\n\t"
		     "mov %eax, vmw_eax(%rip)\n\t"
		     "mov %ebx, vmw_ebx(%rip)\n\t"
		     "mov %ecx, vmw_ecx(%rip)\n\t"
		     "movb $1, vmw_answered(%rip)\n\t"
		     "cmpb $0, vmw_is_amd(%rip)\n\t"
		     "jne 1f\n\t"
		     "vmcall\n"
		     "1:\n\t"
		     "vmmcall\n\t"
		     "ud2");
}

enum l1_exit { L1_DONE, L1_GP };

static void l1_vmx(struct vmx_pages *vmx)
{
	unsigned long stack[L2_GUEST_STACK_SIZE];
	u32 reason;

	GUEST_ASSERT(prepare_for_vmx_operation(vmx));
	GUEST_ASSERT(load_vmcs(vmx));
	prepare_vmcs(vmx, l2_vmware_tools, &stack[L2_GUEST_STACK_SIZE]);
	nested_demo_vmx_l2_cpl3();
	GUEST_ASSERT(!vmlaunch());
	reason = vmreadz(VM_EXIT_REASON);
	if (reason == EXIT_REASON_EXCEPTION_NMI &&
	    (vmreadz(VM_EXIT_INTR_INFO) & 0xff) == GP_VECTOR)
		l1_gp_exits++;
	else
		GUEST_ASSERT_EQ(reason, EXIT_REASON_VMCALL);
	GUEST_DONE();
}

static void l1_svm(struct svm_test_data *svm)
{
	unsigned long stack[L2_GUEST_STACK_SIZE];
	struct vmcb *vmcb = svm->vmcb;

	generic_svm_setup(svm, l2_vmware_tools, &stack[L2_GUEST_STACK_SIZE]);
	nested_demo_svm_l2_cpl3(vmcb);
	run_guest(vmcb, svm->vmcb_gpa);
	if (vmcb->control.exit_code == SVM_EXIT_EXCP_BASE + GP_VECTOR)
		l1_gp_exits++;
	else
		GUEST_ASSERT_EQ(vmcb->control.exit_code, SVM_EXIT_VMMCALL);
	GUEST_DONE();
}

static void l1_guest_code(void *nested)
{
	if (vmw_is_amd)
		l1_svm(nested);
	else
		l1_vmx(nested);
}

static void usage(void)
{
	fprintf(stderr, "usage: %s [--no-nested-backdoor]\n"
		"  run VMware Tools' GETVERSION at CPL3 in L2 under an L1 that intercepts #GP;\n"
		"  --no-nested-backdoor enables only the backdoor, not ENABLE_NESTED_BACKDOOR\n",
		PROG);
	exit(2);
}

int main(int argc, char *argv[])
{
	const struct nk_vmware_cfg cfg = {
		.version = NK_VMWARE_VERSION, .vmx_type = NK_VMWARE_TYPE_ESX, .mhz = 0,
	};
	u64 features = KVM_X86_VMWARE_ENABLE_BACKDOOR | KVM_X86_VMWARE_ENABLE_NESTED_BACKDOOR;
	vm_vaddr_t nested_gva = 0;
	bool nested = true, answered_in_l0 = false;
	struct nk_vcpu nkvcpu;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int supported, kvm_fd;
	char err[128];

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--no-nested-backdoor")))
		usage();
	if (argc == 2) {
		nested = false;
		features = KVM_X86_VMWARE_ENABLE_BACKDOOR;
	}
	setbuf(stdout, NULL);

	vmw_is_amd = kvm_cpu_has(X86_FEATURE_SVM);
	if (!vmw_is_amd && !kvm_cpu_has(X86_FEATURE_VMX)) {
		printf("%s: no nested virtualization on this CPU\n", PROG);
		return 1;
	}
	supported = kvm_check_cap(KVM_CAP_X86_VMWARE);
	printf("%s: %s L1 (Hyper-V, intercepts #GP), L2 CPL3 VMware Tools; KVM_CAP_X86_VMWARE: %s\n",
	       PROG, vmw_is_amd ? "SVM" : "VMX",
	       !supported ? "not supported by this kernel" :
	       nested ? "BACKDOOR | NESTED_BACKDOOR" : "BACKDOOR only (--no-nested-backdoor)");
	nested = nested && (supported & KVM_X86_VMWARE_ENABLE_NESTED_BACKDOOR);

	vm = vm_create(1);
	if (supported)
		vm_enable_cap(vm, KVM_CAP_X86_VMWARE, features);
	vcpu = vm_vcpu_add(vm, 0, l1_guest_code);
	if (vmw_is_amd)
		vcpu_alloc_svm(vm, &nested_gva);
	else
		vcpu_alloc_vmx(vm, &nested_gva);
	vcpu_args_set(vcpu, 1, nested_gva);
	vm_set_user_bit(vm);	/* CPL3 access to all guest memory */
	sync_global_to_guest(vm, vmw_is_amd);

	kvm_fd = open_kvm_dev_path_or_exit();
	nkvcpu.fd = vcpu->fd;
	nkvcpu.run = vcpu->run;
	nkvcpu.run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL);
	close(kvm_fd);

	for (;;) {
		struct kvm_run *run = vcpu->run;
		int r;

		vcpu_run(vcpu);
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		if (run->io.port == NK_VMWARE_PORT) {
			r = nk_vmware_handle_io(&cfg, &nkvcpu, err, sizeof(err));
			TEST_ASSERT(r >= 0, "backdoor responder: %s", err);
			printf("%s: KVM_EXIT_IO port 0x%x from %s: backdoor GETVERSION answered by this VMM\n",
			       PROG, run->io.port, run->flags & KVM_RUN_X86_GUEST_MODE ?
			       "L2 (KVM_RUN_X86_GUEST_MODE)" : "L1");
			answered_in_l0 = true;
			continue;
		}
		nested_demo_expect_done(vcpu);
		break;
	}

	sync_global_from_guest(vm, vmw_answered);
	sync_global_from_guest(vm, vmw_eax);
	sync_global_from_guest(vm, vmw_ebx);
	sync_global_from_guest(vm, vmw_ecx);
	sync_global_from_guest(vm, l1_gp_exits);
	if (vmw_answered)
		printf("%s: VMware Tools in L2 read GETVERSION: EAX=%u EBX=0x%x ('VMXh' %s) ECX=%u; L1 #GP exits: %u\n",
		       PROG, vmw_eax, vmw_ebx, vmw_ebx == NK_VMWARE_MAGIC ? "ok" : "WRONG",
		       vmw_ecx, l1_gp_exits);
	if (l1_gp_exits)
		printf("%s: L1 (Hyper-V) got L2's backdoor IN as a #GP exit: it has no VMware backdoor, the #GP is unhandled\n",
		       PROG);
	kvm_vm_free(vm);

	answered_in_l0 = answered_in_l0 && vmw_answered && !l1_gp_exits &&
			 vmw_eax == cfg.version && vmw_ebx == NK_VMWARE_MAGIC;
	printf("%s: VMware Tools %s\n", PROG,
	       answered_in_l0 ? "talks to the VMM" : "cannot reach the VMM");
	/* Success means the outcome the configuration should give. */
	return answered_in_l0 == nested && (nested || l1_gp_exits == 1) ? 0 : 1;
}
