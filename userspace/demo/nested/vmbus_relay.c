// SPDX-License-Identifier: GPL-2.0-only
/*
 * nestkit-vmbus-relay-demo: vmbus comes up for a nested Hyper-V root partition.
 *
 * This program is the L0 VMM.  Its L1 plays Hyper-V: it enables the Hyper-V
 * hypercall page and VP assist page, grants its root partition
 * inter-partition communication (TLFS nested_control), uses the enlightened
 * VMCS (VMX) or the VMCB enlightenments (SVM), and programs the SynIC the
 * root partition's vmbus driver will be answered on (SIMP, SINT2).  Its L2
 * plays the root partition's vmbus driver: HvPostMessage(InitiateContact,
 * vmbus 5.0) with the TLFS nested bit, then it waits for VersionResponse in
 * SynIC message slot 2.
 *
 * With KVM_CAP_HYPERV_NESTED_RELAY the post reaches this program as
 * KVM_EXIT_HYPERV; libnestkit's vmbus endpoint answers it, the reply is
 * written into the SIMP page and SINT2 is asserted through a
 * KVM_IRQ_ROUTING_HV_SINT route, as a host's vmbus server does.  Without the
 * capability (--no-relay, or a kernel without it) the post lands in L1,
 * which has no path to the host's vmbus server: vmbus never connects.
 *
 * Then what must be refused is: the root partition posts a GPADL, whose page
 * numbers are L2 GPAs that nobody can check (the endpoint refuses it), and
 * L1 runs a child partition, on a nested page table of its own, that it
 * gives only the direct hypercall grant (as Hyper-V does for the L2 TLB
 * flush).  This VMM opts in to that grant (KVM_HV_NESTED_RELAY_DIRECT_GRANT),
 * so KVM relays the child's InitiateContact flagged as such, and the VMM
 * refuses it: its nested root is not the root partition's, learned from the
 * first InitiateContact.  When L1 takes the grant away, the child's post
 * goes to L1 and never reaches this program.
 *
 * Building an L1 hypervisor needs VMX/SVM setup code, which the KVM selftest
 * library of the patched kernel tree already has: rig/build.sh links this
 * program against it (and against libnestkit's vmbus endpoint).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "apic.h"
#include "hyperv.h"
#include "vmx.h"
#include "evmcs.h"
#include "svm_util.h"

#include "nested_demo.h"
#include "nestkit/vmbus.h"

#define PROG			"nestkit-vmbus-relay-demo"
#define L2_GUEST_STACK_SIZE	256
#define HV_HYPERCALL_NESTED	BIT_ULL(31)
#define VMBUS_SINT		2	/* Linux's VMBUS_MESSAGE_SINT */
#define SINT_VECTOR		0xf3
#define SINT_GSI		24	/* above the IOAPIC's pins */
#define POLLS			100000
/* The child's posts: on the direct grant, then with no grant at all. */
#define CHILD_POSTS		2

/* Guest-visible state, synced by the VMM. */
static struct {
	u64 post_gpa, post_gva;	/* HV_INPUT_POST_MESSAGE page */
	u64 simp_gpa, simp_gva;	/* SynIC message page */
	bool is_amd;
	/* written by the guests */
	bool posting;		/* L2 is inside its HvPostMessage */
	u32 l1_post_exits;	/* hypercall exits L1 saw for the post */
	u64 post_status;
	u32 polls;		/* slot polls until VersionResponse (or POLLS) */
	u32 reply_type;		/* vmbus message type found in the slot */
	u8 version_supported;
	u64 gpadl_status;	/* the root partition's GPADL post */
	bool l2_done;
	/* the child partition */
	u64 child_root;		/* its nested page table */
	u64 child_status[CHILD_POSTS];
	u32 child_l1_exits[CHILD_POSTS];
	u32 child_post;		/* which post it is making */
	bool child_running, child_done;
} g;

static u64 l2_hypercall(u64 control, u64 input)
{
	u64 rax = ~0ull;

	/* L1 does not preserve L2's registers: clobber them all. */
	if (g.is_amd)
		asm volatile("push %%rbp; vmmcall; pop %%rbp"
			     : "+a"(rax), "+c"(control), "+d"(input)
			     : : "rbx", "rsi", "rdi", "r8", "r9", "r10", "r11",
				 "r12", "r13", "r14", "r15", "cc", "memory");
	else
		asm volatile("push %%rbp; vmcall; pop %%rbp"
			     : "+a"(rax), "+c"(control), "+d"(input)
			     : : "rbx", "rsi", "rdi", "r8", "r9", "r10", "r11",
				 "r12", "r13", "r14", "r15", "cc", "memory");
	return rax;
}

/* An InitiateContact for vmbus 5.0 in the post page (identity-mapped). */
static void l2_fill_contact(void)
{
	struct nk_hv_post_message_input *in = (void *)g.post_gva;
	struct nk_vmbus_initiate_contact *ic = (void *)in->payload;

	memset(in, 0, sizeof(*in));
	in->connection_id = NK_VMBUS_CONNECTION_ID_4;
	in->message_type = NK_HV_MESSAGE_VMBUS;
	in->payload_size = sizeof(*ic);
	ic->header.msgtype = NK_VMBUS_MSG_INITIATE_CONTACT;
	ic->vmbus_version_requested = NK_VMBUS_VERSION(5, 0);
	ic->msg_sint = VMBUS_SINT;
	ic->monitor_page1 = g.simp_gpa;	/* any L2 GPA: the host must not use it */
}

static u64 l2_post(void)
{
	u64 status;

	WRITE_ONCE(g.posting, true);
	status = l2_hypercall(HVCALL_POST_MESSAGE | HV_HYPERCALL_NESTED, g.post_gpa);
	WRITE_ONCE(g.posting, false);
	return status;
}

/* L2: the root partition's vmbus driver connecting to the host. */
static void l2_root_partition(void)
{
	struct nk_hv_post_message_input *in = (void *)g.post_gva;
	struct nk_hv_message *slot = (struct nk_hv_message *)g.simp_gva + VMBUS_SINT;
	u32 i;

	l2_fill_contact();
	g.post_status = l2_post();

	for (i = 0; i < POLLS && !READ_ONCE(slot->message_type); i++)
		cpu_relax();
	g.polls = i;
	if (slot->message_type == NK_HV_MESSAGE_VMBUS) {
		struct nk_vmbus_version_response *vr = (void *)slot->payload;

		g.reply_type = vr->header.msgtype;
		g.version_supported = vr->version_supported;
		WRITE_ONCE(slot->message_type, 0);	/* slot free again */
	}

	/* A GPADL header: its page numbers are L2 GPAs. */
	in->payload[0] = NK_VMBUS_MSG_GPADL_HEADER;
	g.gpadl_status = l2_post();

	WRITE_ONCE(g.l2_done, true);
	l2_hypercall(0, 0);
}

/* L2: a child partition that tries to reach the host's vmbus itself. */
static void l2_child_partition(void)
{
	u32 i;

	for (i = 0; i < CHILD_POSTS; i++) {
		WRITE_ONCE(g.child_post, i);
		if (i)
			l2_hypercall(0, 0);	/* L1 takes the direct grant away */
		l2_fill_contact();
		g.child_status[i] = l2_post();
	}
	WRITE_ONCE(g.child_done, true);
	l2_hypercall(0, 0);
}

/* L1: what Hyper-V does for its root partition before running it. */
static void l1_hyperv_setup(struct hyperv_test_pages *hv, vm_vaddr_t hcall_page)
{
	wrmsr(HV_X64_MSR_GUEST_OS_ID, HYPERV_LINUX_OS_ID);
	wrmsr(HV_X64_MSR_HYPERCALL, hcall_page | 1);
	enable_vp_assist(hv->vp_assist_gpa, hv->vp_assist);
	/* The root partition: both grants; the child will get the direct one. */
	current_vp_assist->nested_control.hypercall_controls.inter_partition_comm = 1;
	current_vp_assist->nested_control.features.directhypercall = 1;
	/* SINTs are interrupts: they need a software-enabled local APIC. */
	x2apic_enable();
	wrmsr(HV_X64_MSR_SINT0 + VMBUS_SINT, SINT_VECTOR);
	wrmsr(HV_X64_MSR_SIMP, g.simp_gpa | 1);
	wrmsr(HV_X64_MSR_SCONTROL, 1);
}

static void l1_count(void)
{
	/* A post that reaches L1: Hyper-V has no path to the host's vmbus. */
	if (!READ_ONCE(g.posting))
		return;
	if (READ_ONCE(g.child_running))
		g.child_l1_exits[READ_ONCE(g.child_post)]++;
	else
		g.l1_post_exits++;
}

/*
 * Hyper-V's child partition: its own nested page table, no inter-partition
 * grant, and the direct hypercall grant for its TLB flushes.
 */
static void l1_child_grants(void)
{
	current_vp_assist->nested_control.hypercall_controls.inter_partition_comm = 0;
	WRITE_ONCE(g.child_running, true);
}

/* Before the child's second post, L1 takes the direct grant away. */
static bool l1_child_step(void)
{
	return READ_ONCE(g.child_post) == 1;
}

static void l1_vmx(struct vmx_pages *vmx, struct hyperv_test_pages *hv,
		   vm_vaddr_t hcall_page)
{
	unsigned long stack[L2_GUEST_STACK_SIZE], child_stack[L2_GUEST_STACK_SIZE];
	bool first = true;

	l1_hyperv_setup(hv, hcall_page);
	evmcs_enable();
	GUEST_ASSERT(prepare_for_vmx_operation(vmx));
	GUEST_ASSERT(load_evmcs(hv));
	prepare_vmcs(vmx, l2_root_partition, &stack[L2_GUEST_STACK_SIZE]);
	current_evmcs->partition_assist_page = hv->partition_assist_gpa;
	current_evmcs->hv_enlightenments_control.nested_flush_hypercall = 1;
	current_evmcs->hv_vm_id = 1;
	current_evmcs->hv_vp_id = 1;
	for (;;) {
		GUEST_ASSERT(!(first ? vmlaunch() : vmresume()));
		first = false;
		GUEST_ASSERT_EQ(vmreadz(VM_EXIT_REASON), EXIT_REASON_VMCALL);
		if (READ_ONCE(g.child_done))
			break;
		if (READ_ONCE(g.l2_done) && !READ_ONCE(g.child_running)) {
			/* The root partition is done: run the child. */
			l1_child_grants();
			vmwrite(EPT_POINTER, (vmreadz(EPT_POINTER) & (PAGE_SIZE - 1)) | g.child_root);
			vmwrite(GUEST_RIP, (u64)l2_child_partition);
			vmwrite(GUEST_RSP, (u64)&child_stack[L2_GUEST_STACK_SIZE]);
			continue;
		}
		l1_count();
		if (READ_ONCE(g.child_running) && l1_child_step())
			current_evmcs->hv_enlightenments_control.nested_flush_hypercall = 0;
		vmwrite(GUEST_RIP, vmreadz(GUEST_RIP) + vmreadz(VM_EXIT_INSTRUCTION_LEN));
	}
	GUEST_DONE();
}

static void l1_svm(struct svm_test_data *svm, struct hyperv_test_pages *hv,
		   vm_vaddr_t hcall_page)
{
	unsigned long stack[L2_GUEST_STACK_SIZE], child_stack[L2_GUEST_STACK_SIZE];
	struct hv_vmcb_enlightenments *hve = &svm->vmcb->control.hv_enlightenments;

	l1_hyperv_setup(hv, hcall_page);
	generic_svm_setup(svm, l2_root_partition, &stack[L2_GUEST_STACK_SIZE]);
	hve->partition_assist_page = hv->partition_assist_gpa;
	hve->hv_enlightenments_control.nested_flush_hypercall = 1;
	hve->hv_vm_id = 1;
	hve->hv_vp_id = 1;
	for (;;) {
		run_guest(svm->vmcb, svm->vmcb_gpa);
		GUEST_ASSERT_EQ(svm->vmcb->control.exit_code, SVM_EXIT_VMMCALL);
		if (READ_ONCE(g.child_done))
			break;
		if (READ_ONCE(g.l2_done) && !READ_ONCE(g.child_running)) {
			/* The root partition is done: run the child. */
			l1_child_grants();
			svm->vmcb->control.nested_cr3 = g.child_root;
			svm->vmcb->control.asid = 2;
			svm->vmcb->save.rip = (u64)l2_child_partition;
			svm->vmcb->save.rsp = (u64)&child_stack[L2_GUEST_STACK_SIZE];
			continue;
		}
		l1_count();
		if (READ_ONCE(g.child_running) && l1_child_step())
			hve->hv_enlightenments_control.nested_flush_hypercall = 0;
		svm->vmcb->save.rip += 3;	/* no NRIPS under TCG */
	}
	GUEST_DONE();
}

static void l1_guest_code(void *nested, struct hyperv_test_pages *hv, vm_vaddr_t hcall_page)
{
	if (g.is_amd)
		l1_svm(nested, hv, hcall_page);
	else
		l1_vmx(nested, hv, hcall_page);
}

/* VMM side */
static struct nk_vmbus_host host;
static unsigned int posts_relayed, refused_l2s;
static bool relay = true;	/* KVM_CAP_HYPERV_NESTED_RELAY enabled */
static bool sint_delivered;

/* Returns KVM's delivery status: > 0 delivered, 0 coalesced, < 0 not. */
static int assert_sint(struct kvm_vm *vm)
{
	struct kvm_irq_routing *routing = kvm_gsi_routing_create();
	struct kvm_irq_level line = {};

	routing->entries[0].gsi = SINT_GSI;
	routing->entries[0].type = KVM_IRQ_ROUTING_HV_SINT;
	routing->entries[0].u.hv_sint.vcpu = 0;
	routing->entries[0].u.hv_sint.sint = VMBUS_SINT;
	routing->nr = 1;
	kvm_gsi_routing_write(vm, routing);
	line.irq = SINT_GSI;
	line.level = 1;
	vm_ioctl(vm, KVM_IRQ_LINE_STATUS, &line);
	return line.status;
}

static bool vector_pending(struct kvm_vcpu *vcpu, u8 vector)
{
	struct kvm_lapic_state lapic;
	u32 irr;

	vcpu_ioctl(vcpu, KVM_GET_LAPIC, &lapic);
	memcpy(&irr, &lapic.regs[APIC_IRR + (vector / 32) * 16], sizeof(irr));
	return irr & BIT(vector % 32);
}

static void handle_hcall(struct kvm_vm *vm, struct kvm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	u64 input = run->hyperv.u.hcall.input, gpa = run->hyperv.u.hcall.params[0];
	u32 nested_flags = run->hyperv.u.hcall.nested_flags;
	struct nk_hv_message reply;
	int has_reply, r;
	size_t input_len;
	void *input_hva;
	char err[256];
	u16 status;

	TEST_ASSERT(run->hyperv.type == KVM_EXIT_HYPERV_HCALL &&
		    (input & 0xffff) == HVCALL_POST_MESSAGE,
		    "unexpected Hyper-V exit type %u input 0x%llx", run->hyperv.type,
		    (unsigned long long)input);
	printf("%s: KVM_EXIT_HYPERV HvPostMessage from %s%s, input at L1 GPA 0x%llx\n",
	       PROG, run->flags & KVM_RUN_X86_GUEST_MODE ? "L2" : "L1",
	       input & HV_HYPERCALL_NESTED ? " with the nested bit (relayed)" : "",
	       (unsigned long long)gpa);
	posts_relayed++;
	/* Read the input now, before the call completes (api.rst). */
	input_hva = addr_gpa2hva(vm, gpa);
	input_len = PAGE_SIZE - (gpa & ~PAGE_MASK);
	/* The nested_* fields mean something only with the capability on. */
	host.relayed_l2 = relay && (nested_flags & KVM_HYPERV_HCALL_NESTED_RELAYED);
	if (host.relayed_l2) {
		printf("%s:   from the L2 with nested root 0x%llx, authorized by L1's %s\n", PROG,
		       (unsigned long long)run->hyperv.u.hcall.nested_root,
		       nested_flags & KVM_HYPERV_HCALL_NESTED_DIRECT_GRANT ?
		       "direct hypercall grant only" : "inter-partition communication grant");
		if (!nk_vmbus_relay_allowed(&host, run->hyperv.u.hcall.nested_root,
					    !!(nested_flags & KVM_HYPERV_HCALL_NESTED_DIRECT_GRANT),
					    input_hva, input_len, err, sizeof(err))) {
			printf("%s:   refused (status 0x%x): %s\n", PROG, NK_HV_STATUS_ACCESS_DENIED, err);
			run->hyperv.u.hcall.result = NK_HV_STATUS_ACCESS_DENIED;
			refused_l2s++;
			return;
		}
	}
	status = nk_vmbus_post_message(&host, input_hva, input_len, &reply, &has_reply, err,
				       sizeof(err));
	printf("%s:   vmbus endpoint: status 0x%x%s%s\n", PROG, status, err[0] ? ": " : "", err);
	run->hyperv.u.hcall.result = status;
	if (!has_reply)
		return;
	r = nk_synic_deliver(addr_gpa2hva(vm, g.simp_gpa), host.msg_sint, &reply);
	TEST_ASSERT(!r, "SynIC slot %u busy or invalid: %d", host.msg_sint, r);
	r = assert_sint(vm);
	sint_delivered = r > 0 && vector_pending(vcpu, SINT_VECTOR);
	printf("%s:   VersionResponse (vmbus %u.%u accepted) in SynIC slot %u; SINT%u asserted (status %d): vector 0x%x %s\n",
	       PROG, host.version >> 16, host.version & 0xffff, host.msg_sint, host.msg_sint,
	       r, SINT_VECTOR, sint_delivered ?
	       "pending in the vCPU's local APIC" : "NOT pending");
}

static void usage(void)
{
	fprintf(stderr, "usage: %s [--no-relay]\n"
		"  run an L1 Hyper-V whose L2 root partition connects to this VMM's vmbus;\n"
		"  --no-relay leaves KVM_CAP_HYPERV_NESTED_RELAY off\n", PROG);
	exit(2);
}

int main(int argc, char *argv[])
{
	vm_vaddr_t nested_gva = 0, hv_gva = 0, hcall_gva, post_gva, simp_gva;
	struct svm_test_data *svm = NULL;
	struct vmx_pages *vmx = NULL;
	bool connected, refused;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int supported;

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--no-relay")))
		usage();
	if (argc == 2)
		relay = false;
	/* The console log interleaves with the kernel's: no buffering. */
	setbuf(stdout, NULL);

	g.is_amd = kvm_cpu_has(X86_FEATURE_SVM);
	if (!g.is_amd && !kvm_cpu_has(X86_FEATURE_VMX)) {
		printf("%s: no nested virtualization on this CPU\n", PROG);
		return 1;
	}
	if (!g.is_amd && !kvm_has_cap(KVM_CAP_HYPERV_ENLIGHTENED_VMCS)) {
		printf("%s: KVM has no enlightened VMCS\n", PROG);
		return 1;
	}
	supported = kvm_check_cap(KVM_CAP_HYPERV_NESTED_RELAY);
	printf("%s: %s L1 (Hyper-V), L2 root partition; KVM_CAP_HYPERV_NESTED_RELAY: %s\n",
	       PROG, g.is_amd ? "SVM" : "VMX",
	       !supported ? "not supported by this kernel" :
	       relay ? "enabled (PostMessage, SignalEvent, direct grant opt-in)" :
	       "left off (--no-relay)");
	relay = relay && supported;

	vm = vm_create(1);
	if (relay)
		vm_enable_cap(vm, KVM_CAP_HYPERV_NESTED_RELAY,
			      KVM_HV_NESTED_RELAY_POST_MESSAGE | KVM_HV_NESTED_RELAY_SIGNAL_EVENT |
			      KVM_HV_NESTED_RELAY_DIRECT_GRANT);
	vcpu = vm_vcpu_add(vm, 0, l1_guest_code);
	vcpu_set_hv_cpuid(vcpu);
	vcpu_enable_cap(vcpu, KVM_CAP_HYPERV_SYNIC2, 0);
	if (g.is_amd) {
		svm = vcpu_alloc_svm(vm, &nested_gva);
	} else {
		vmx = vcpu_alloc_vmx(vm, &nested_gva);
		vcpu_enable_evmcs(vcpu);
	}
	vcpu_alloc_hyperv_test_pages(vm, &hv_gva);
	hcall_gva = vm_vaddr_alloc_page(vm);
	post_gva = vm_vaddr_alloc_page(vm);
	simp_gva = vm_vaddr_alloc_page(vm);
	memset(addr_gva2hva(vm, simp_gva), 0, PAGE_SIZE);
	g.post_gva = post_gva;
	g.post_gpa = addr_gva2gpa(vm, post_gva);
	g.simp_gva = simp_gva;
	g.simp_gpa = addr_gva2gpa(vm, simp_gva);
	/*
	 * Hyper-V runs its partitions with SLAT, and KVM relays only the calls
	 * of an L2 that runs on nested paging (EPT/NPT): each partition's
	 * memory, identity-mapped, after everything is allocated.  The child's
	 * table first, so that the root partition's is the one L1 starts with.
	 */
	if (g.is_amd) {
		prepare_npt(svm, vm);
		nested_npt_map_memslot(svm, vm, 0);
		g.child_root = svm->ncr3_gpa;
		prepare_npt(svm, vm);
		nested_npt_map_memslot(svm, vm, 0);
	} else {
		prepare_eptp(vmx, vm, 0);
		nested_map_memslot(vmx, vm, 0);
		g.child_root = vmx->eptp_gpa;
		prepare_eptp(vmx, vm, 0);
		nested_map_memslot(vmx, vm, 0);
	}
	sync_global_to_guest(vm, g);
	vcpu_args_set(vcpu, 3, nested_gva, hv_gva, addr_gva2gpa(vm, hcall_gva));
	vcpu_set_msr(vcpu, HV_X64_MSR_VP_INDEX, vcpu->id);

	for (;;) {
		vcpu_run(vcpu);
		if (vcpu->run->exit_reason == KVM_EXIT_HYPERV) {
			if (vcpu->run->hyperv.type == KVM_EXIT_HYPERV_SYNIC)
				continue;	/* SCONTROL/SIMP written: nothing to do */
			handle_hcall(vm, vcpu);
			continue;
		}
		nested_demo_expect_done(vcpu);
		break;
	}

	sync_global_from_guest(vm, g);
	if (g.l1_post_exits)
		printf("%s: L1 (Hyper-V) got L2's nested HvPostMessage as a hypercall exit: it has no path to the host's vmbus server\n",
		       PROG);
	connected = g.reply_type == NK_VMBUS_MSG_VERSION_RESPONSE && g.version_supported &&
		    sint_delivered;
	if (connected)
		printf("%s: L2 read VersionResponse (version_supported=%u) after %u polls; post status 0x%llx; L1 hypercall exits for the post: %u\n",
		       PROG, g.version_supported, g.polls, (unsigned long long)g.post_status,
		       g.l1_post_exits);
	else
		printf("%s: L2 saw no VersionResponse in SynIC slot %u after %u polls; posts that reached this VMM: %u\n",
		       PROG, VMBUS_SINT, g.polls, posts_relayed);
	printf("%s: vmbus %s\n", PROG, connected ? "connected" : "not connected");

	/* What must not reach the host, or not be acted on. */
	refused = g.gpadl_status == NK_HV_STATUS_ACCESS_DENIED &&
		  g.child_status[0] == NK_HV_STATUS_ACCESS_DENIED && refused_l2s == 1 &&
		  !g.child_l1_exits[0] && g.child_l1_exits[1] == 1;
	if (relay) {
		printf("%s: the root partition's GPADL (L2 GPAs inside): status 0x%llx%s; its InitiateContact's monitor page %s\n",
		       PROG, (unsigned long long)g.gpadl_status,
		       g.gpadl_status == NK_HV_STATUS_ACCESS_DENIED ? ", refused by the endpoint" : "",
		       host.monitor_pages_unused ? "left unused" : "not seen");
		printf("%s: child partition on L1's direct grant only: status 0x%llx, %s (L1 exits %u)\n",
		       PROG, (unsigned long long)g.child_status[0],
		       refused_l2s ? "refused by this VMM: not the root partition" : "NOT refused",
		       g.child_l1_exits[0]);
		printf("%s: child partition without any grant: L1 got its post (L1 exits %u), this VMM %s\n",
		       PROG, g.child_l1_exits[1],
		       posts_relayed == 3 ? "never saw it" : "SAW IT");
		printf("%s: unauthorized L2s %s\n", PROG, refused ? "refused" : "NOT refused");
	}
	kvm_vm_free(vm);
	/* Success means the outcome the configuration should give. */
	return connected == relay && (!relay || refused) ? 0 : 1;
}
