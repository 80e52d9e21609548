// SPDX-License-Identifier: GPL-2.0-only
/*
 * nestkit-cost-bench-demo: what each nestkit path costs, against the path it
 * replaces, in guest time ("make bench", rig/bench.sh; not a test).
 *
 * This program is the L0 VMM. Each case is one operation, done --iterations
 * times by L1 or L2 with RDTSC around it; the samples stay in guest memory
 * and this program reads them afterwards. Under QEMU -icount shift=0 the
 * TSC of the machine this runs in counts emulated instructions (1 GHz, one
 * instruction per ns), so a sample is the instructions the whole stack
 * executed for one operation: L2, L1, L0's KVM, this program, and back.
 * Under Bochs it is virtual time. The cost of the two RDTSCs (case "empty")
 * is subtracted from every other case.
 *
 * Every case checks its own outcome (each post answered with success by
 * this VMM, each backdoor IN answered with the VMM's version and magic,
 * each Remote Read valid with the target's APIC ID, each write landed);
 * a case that does not check out prints FAILED and no figures, and the
 * program exits 1.
 *
 * Cases (L1 = the guest, L2 = a guest of L1 on nested EPT/NPT):
 *   empty            two RDTSCs (the calibration)
 *   relay-l2         L2 HvPostMessage, relayed to this VMM (F1)
 *   relay-l1         the same post from L1, no nesting (the floor)
 *   relay-reflect    L2's post goes to L1, which posts it itself (the path F1 replaces)
 *   vmw-l2           L2 CPL3 backdoor IN, handled in L0 (F2 nested backdoor)
 *   vmw-l1           the same IN from L1 at CPL3, no nesting
 *   vmw-reflect      L2's IN faults to L1 (#GP), which does the IN itself
 *   rrr              Remote Read IPI to another vCPU, until RRR is valid (F3)
 *   ipi              a fixed IPI to the same vCPU, until ICR is idle
 *   mf-exit          L1 write to a write-protected page, KVM_EXIT_MEMORY_FAULT (F4)
 *   mf-uffd          the same with userfaultfd-wp
 *   base-vmcall      L2 VMCALL/VMMCALL reflected to L1 (no capability)
 *   base-gp          L2 CPL3 IN that #GPs, reflected to L1 (no capability)
 *   base-pf          L1 first write to a fresh page (a TDP fault)
 *   io-l1, io-l2     IN from a port no one intercepts but L0, answered by
 *                    this VMM, from L1 and from L2: what any L2 exit that
 *                    reaches L0's userspace costs beyond the same exit from
 *                    L1 (the floor under relay-l2 and vmw-l2)
 * Cases that use no nestkit capability (ipi, base-*, relay-l1,
 * relay-reflect, io-*, mf-uffd): rig/bench.sh runs them on the patched and
 * on the pristine kernel. Each case checks its outcome and, from KVM's vCPU
 * statistics around the measured loop, where each operation went;
 * --rounds repeats every case in fresh VMs.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "apic.h"
#include "hyperv.h"
#include "vmx.h"
#include "evmcs.h"
#include "svm_util.h"

#include "nested_demo.h"
#include "nestkit/caps.h"
#include "nestkit/vm.h"
#include "nestkit/vmware.h"

#define PROG			"nestkit-cost-bench-demo"
#define L2_GUEST_STACK_SIZE	512
#define MAX_ITERATIONS		20000
#define HV_HYPERCALL_NESTED	BIT_ULL(31)
#define TEST_GPA		0xc0000000ull	/* mf-* page, base-pf pages */
#define TEST_SLOT		10
#define REMOTE_ID_REG		(APIC_ID >> 4)	/* ICR vector field of a Remote Read */
#define IPI_VECTOR		0xf0
#define VMW_DONE_CMD		0xfffe		/* vmw-l1: end of the CPL3 loop */
#define PLAIN_PORT		0x2000		/* io-*: no device, no intercept */
/* GUEST_SYNC() args around the measured loop (mf-* also sync per iteration). */
#define SYNC_START		0x5354415274ull
#define SYNC_END		0x454e4400ull

enum kase {
	C_EMPTY, C_RELAY_L2, C_RELAY_L1, C_RELAY_REFLECT, C_VMW_L2, C_VMW_L1,
	C_VMW_REFLECT, C_RRR, C_IPI, C_MF_EXIT, C_MF_UFFD, C_BASE_VMCALL, C_BASE_GP,
	C_BASE_PF, C_IO_L1, C_IO_L2, NR_CASES
};

static const char * const case_name[NR_CASES] = {
	"empty", "relay-l2", "relay-l1", "relay-reflect", "vmw-l2", "vmw-l1",
	"vmw-reflect", "rrr", "ipi", "mf-exit", "mf-uffd", "base-vmcall", "base-gp",
	"base-pf", "io-l1", "io-l2",
};

/* Guest-visible state, synced by the VMM before and after a case. */
static struct {
	u32 kase, iterations;
	bool is_amd;
	u64 post_gpa;			/* HvPostMessage input page */
	u64 test_gva;			/* TEST_GPA, identity-mapped */
	u32 vmw_version;		/* what the responder answers */
	/* written by the guests */
	u32 good;			/* iterations whose outcome was right */
	u32 l1_vmcalls, l1_gps;		/* L2 exits L1 handled */
	u64 fwd_status;			/* relay-reflect: L1's own post */
	u32 fwd_eax, fwd_ebx;		/* vmw-reflect: L1's own IN */
	bool l2_done;
} g;

/* One sample per iteration, in guest memory; the VMM reads them after. */
static u64 samples[MAX_ITERATIONS];

/*
 * L2's operations. L1 does not preserve L2's registers across an exit it
 * handles, so each is one asm statement that clobbers every GPR but RSP
 * (RBP is saved on the stack, below the red zone, where the compiler may
 * keep the start time): the compiler keeps nothing in a register across it.
 */
#define SAVE_RBP	"lea -128(%%rsp), %%rsp; push %%rbp; "
#define RESTORE_RBP	"; pop %%rbp; lea 128(%%rsp), %%rsp"
#define L2_CLOBBERS "rbx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", \
		    "r14", "r15", "cc", "memory"

static u64 l2_hypercall(u64 control, u64 input)
{
	u64 rax = ~0ull;

	if (g.is_amd)
		asm volatile(SAVE_RBP "vmmcall" RESTORE_RBP
			     : "+a"(rax), "+c"(control), "+d"(input) : : L2_CLOBBERS);
	else
		asm volatile(SAVE_RBP "vmcall" RESTORE_RBP
			     : "+a"(rax), "+c"(control), "+d"(input) : : L2_CLOBBERS);
	return rax;
}

/* The VMware backdoor GETVERSION: IN EAX, DX with the magic. */
static void l2_backdoor(u32 *eax, u32 *ebx)
{
	u64 a = NK_VMWARE_MAGIC, c = NK_VMWARE_CMD_GETVERSION, d = NK_VMWARE_PORT;
	u32 b;

	asm volatile(SAVE_RBP "mov $0xffffffff, %%ebx; in (%%dx), %%eax; mov %%ebx, %%esi" RESTORE_RBP
		     : "+a"(a), "+c"(c), "+d"(d), "=S"(b) : : "rbx", "rdi", "r8", "r9", "r10",
		       "r11", "r12", "r13", "r14", "r15", "cc", "memory");
	*eax = a;
	*ebx = b;
}

static u32 l2_in(void)
{
	u64 a = 0, d = PLAIN_PORT;

	asm volatile(SAVE_RBP "in (%%dx), %%eax" RESTORE_RBP
		     : "+a"(a), "+d"(d) : : "rcx", L2_CLOBBERS);
	return a;
}

static u32 l1_in(void)
{
	u32 a;

	asm volatile("in (%%dx), %%eax" : "=a"(a) : "d"(PLAIN_PORT) : "memory");
	return a;
}

static u64 l1_hypercall(u64 control, u64 input)
{
	u64 rax;

	if (g.is_amd)
		asm volatile("vmmcall" : "=a"(rax), "+c"(control), "+d"(input) : : "r8", "memory");
	else
		asm volatile("vmcall" : "=a"(rax), "+c"(control), "+d"(input) : : "r8", "memory");
	return rax;
}

static void l1_backdoor(u32 *eax, u32 *ebx)
{
	u32 a = NK_VMWARE_MAGIC, b = ~0u, c = NK_VMWARE_CMD_GETVERSION, d = NK_VMWARE_PORT;

	asm volatile("in (%%dx), %%eax" : "+a"(a), "+b"(b), "+c"(c), "+d"(d) : : "memory");
	*eax = a;
	*ebx = b;
}

#define TIMED(i, op) do {				\
	u64 __t0 = rdtsc();				\
	op;						\
	WRITE_ONCE(samples[i], rdtsc() - __t0);		\
} while (0)

static bool vmw_ok(u32 eax, u32 ebx)
{
	return eax == g.vmw_version && ebx == NK_VMWARE_MAGIC;
}

/* L2: the case's loop, then a VMCALL that tells L1 it is done. */
static void l2_main(void)
{
	u32 i, eax = 0, ebx = 0;
	u64 st;

	for (i = 0; i < g.iterations; i++) {
		switch (g.kase) {
		case C_RELAY_L2:
		case C_RELAY_REFLECT:
			TIMED(i, st = l2_hypercall(HVCALL_POST_MESSAGE | HV_HYPERCALL_NESTED,
						   g.post_gpa));
			if (g.kase == C_RELAY_REFLECT)
				st = READ_ONCE(g.fwd_status);
			g.good += st == HV_STATUS_SUCCESS;
			break;
		case C_VMW_L2:
		case C_VMW_REFLECT:
		case C_BASE_GP:
			TIMED(i, l2_backdoor(&eax, &ebx));
			if (g.kase == C_VMW_REFLECT) {
				eax = READ_ONCE(g.fwd_eax);
				ebx = READ_ONCE(g.fwd_ebx);
			}
			/* base-gp: L1 skips the IN; nothing to answer. */
			g.good += g.kase == C_BASE_GP || vmw_ok(eax, ebx);
			break;
		case C_BASE_VMCALL:
			TIMED(i, l2_hypercall(0, 0));
			g.good++;
			break;
		case C_IO_L2:
			TIMED(i, eax = l2_in());
			g.good += eax == PLAIN_PORT;
			break;
		}
	}
	WRITE_ONCE(g.l2_done, true);
	l2_hypercall(0, 0);
}

/* The cases whose operation L2 does (L1 runs L2 on nested paging). */
static bool l2_case(enum kase c)
{
	return c == C_RELAY_L2 || c == C_RELAY_REFLECT || c == C_VMW_L2 ||
	       c == C_VMW_REFLECT || c == C_BASE_VMCALL || c == C_BASE_GP || c == C_IO_L2;
}

static bool l2_cpl3(void)
{
	return g.kase == C_VMW_L2 || g.kase == C_VMW_REFLECT || g.kase == C_BASE_GP;
}

/* L1 handles an L2 exit; returns how far to advance L2's RIP (0: done). */
static int l1_handle(bool vmcall, int vmcall_len)
{
	if (vmcall) {
		if (READ_ONCE(g.l2_done))
			return 0;
		g.l1_vmcalls++;
		if (g.kase == C_RELAY_REFLECT)	/* Hyper-V forwards the post itself */
			g.fwd_status = l1_hypercall(HVCALL_POST_MESSAGE, g.post_gpa);
		return vmcall_len;
	}
	g.l1_gps++;
	if (g.kase == C_VMW_REFLECT) {		/* ...and the backdoor access */
		u32 eax, ebx;

		l1_backdoor(&eax, &ebx);
		g.fwd_eax = eax;
		g.fwd_ebx = ebx;
	}
	return 1;				/* IN (%dx),%eax is one byte */
}

static void l1_hyperv_setup(struct hyperv_test_pages *hv, u64 hcall_gpa)
{
	wrmsr(HV_X64_MSR_GUEST_OS_ID, HYPERV_LINUX_OS_ID);
	wrmsr(HV_X64_MSR_HYPERCALL, hcall_gpa | 1);
	enable_vp_assist(hv->vp_assist_gpa, hv->vp_assist);
	current_vp_assist->nested_control.hypercall_controls.inter_partition_comm = 1;
}

static bool hyperv_case(void)
{
	return g.kase == C_RELAY_L2 || g.kase == C_RELAY_L1 || g.kase == C_RELAY_REFLECT;
}

static void l1_vmx(struct vmx_pages *vmx, struct hyperv_test_pages *hv)
{
	unsigned long stack[L2_GUEST_STACK_SIZE];
	bool first = true;
	int adv;

	if (hyperv_case())		/* Hyper-V: enlightened VMCS */
		evmcs_enable();
	GUEST_ASSERT(prepare_for_vmx_operation(vmx));
	if (hyperv_case()) {
		GUEST_ASSERT(load_evmcs(hv));
	} else {
		GUEST_ASSERT(load_vmcs(vmx));
	}
	prepare_vmcs(vmx, l2_main, &stack[L2_GUEST_STACK_SIZE]);
	if (hyperv_case()) {
		current_evmcs->partition_assist_page = hv->partition_assist_gpa;
		current_evmcs->hv_vm_id = 1;
		current_evmcs->hv_vp_id = 1;
	}
	if (l2_cpl3())
		nested_demo_vmx_l2_cpl3();
	GUEST_SYNC(SYNC_START);
	for (;;) {
		u32 reason;

		GUEST_ASSERT(!(first ? vmlaunch() : vmresume()));
		first = false;
		reason = vmreadz(VM_EXIT_REASON);
		if (reason == EXIT_REASON_VMCALL) {
			adv = l1_handle(true, vmreadz(VM_EXIT_INSTRUCTION_LEN));
		} else {
			GUEST_ASSERT_EQ(reason, EXIT_REASON_EXCEPTION_NMI);
			GUEST_ASSERT_EQ(vmreadz(VM_EXIT_INTR_INFO) & 0xff, GP_VECTOR);
			adv = l1_handle(false, 0);
		}
		if (!adv)
			break;
		vmwrite(GUEST_RIP, vmreadz(GUEST_RIP) + adv);
	}
	GUEST_SYNC(SYNC_END);
	GUEST_DONE();
}

static void l1_svm(struct svm_test_data *svm, struct hyperv_test_pages *hv)
{
	unsigned long stack[L2_GUEST_STACK_SIZE];
	struct vmcb *vmcb = svm->vmcb;
	int adv;

	generic_svm_setup(svm, l2_main, &stack[L2_GUEST_STACK_SIZE]);
	if (hyperv_case()) {
		vmcb->control.hv_enlightenments.partition_assist_page = hv->partition_assist_gpa;
		vmcb->control.hv_enlightenments.hv_vm_id = 1;
		vmcb->control.hv_enlightenments.hv_vp_id = 1;
	}
	if (l2_cpl3())
		nested_demo_svm_l2_cpl3(vmcb);
	GUEST_SYNC(SYNC_START);
	for (;;) {
		run_guest(vmcb, svm->vmcb_gpa);
		if (vmcb->control.exit_code == SVM_EXIT_VMMCALL) {
			adv = l1_handle(true, 3);	/* no NRIPS under TCG */
		} else {
			GUEST_ASSERT_EQ(vmcb->control.exit_code, SVM_EXIT_EXCP_BASE + GP_VECTOR);
			adv = l1_handle(false, 0);
		}
		if (!adv)
			break;
		vmcb->save.rip += adv;
	}
	GUEST_SYNC(SYNC_END);
	GUEST_DONE();
}

/*
 * An IPI to vCPU 1 (xAPIC): write ICR2 and ICR, then poll ICR while
 * (ICR & @mask) == @pending. Returns the last ICR read. Inlined: it is
 * inside the timed region.
 */
static __always_inline u32 icr_send(u32 low, u32 mask, u32 pending)
{
	u32 icr;

	xapic_write_reg(APIC_ICR2, SET_APIC_DEST_FIELD(1));
	xapic_write_reg(APIC_ICR, low);
	do
		icr = xapic_read_reg(APIC_ICR);
	while ((icr & mask) == pending);
	return icr;
}

/* L1 cases without L2. */
static void l1_alone(void)
{
	volatile u32 *page = (volatile u32 *)g.test_gva;
	u32 i, val = 0, icr = 0;
	u64 st;

	if (g.kase == C_RRR || g.kase == C_IPI)
		xapic_enable();
	GUEST_SYNC(SYNC_START);
	for (i = 0; i < g.iterations; i++) {
		switch (g.kase) {
		case C_EMPTY:
			TIMED(i, barrier());
			g.good++;
			break;
		case C_RELAY_L1:
			TIMED(i, st = l1_hypercall(HVCALL_POST_MESSAGE, g.post_gpa));
			g.good += st == HV_STATUS_SUCCESS;
			break;
		case C_RRR:
			TIMED(i, {
				icr = icr_send(APIC_DM_REMRD | REMOTE_ID_REG, APIC_ICR_RR_MASK,
					       APIC_ICR_RR_INPROG);
				val = xapic_read_reg(APIC_RRR);
			});
			g.good += (icr & APIC_ICR_RR_MASK) == APIC_ICR_RR_VALID && val == (1u << 24);
			break;
		case C_IPI:
			TIMED(i, icr = icr_send(APIC_DM_FIXED | IPI_VECTOR, APIC_ICR_BUSY,
						APIC_ICR_BUSY));
			g.good += (icr & (APIC_ICR_BUSY | 0xff)) == IPI_VECTOR;
			break;
		case C_MF_EXIT:
		case C_MF_UFFD:
			TIMED(i, *page = i + 1);
			g.good += *page == i + 1;
			GUEST_SYNC(i);		/* the VMM protects the page again */
			break;
		case C_BASE_PF:
			TIMED(i, page[i * (PAGE_SIZE / 4)] = 1);
			g.good++;
			break;
		case C_IO_L1:
			TIMED(i, val = l1_in());
			g.good += val == PLAIN_PORT;
			break;
		}
	}
	GUEST_SYNC(SYNC_END);
	GUEST_DONE();
}

static void l1_guest_code(void *nested, struct hyperv_test_pages *hv, u64 hcall_gpa)
{
	if (hyperv_case())
		l1_hyperv_setup(hv, hcall_gpa);
	if (l2_case(g.kase)) {
		if (g.is_amd)
			l1_svm(nested, hv);
		else
			l1_vmx(nested, hv);
	}
	l1_alone();
}

/* vmw-l1: L1 itself at CPL3 (the vCPU starts there), then a "done" IN. */
static void l1_cpl3_code(void)
{
	u32 i, eax, ebx;

	for (i = 0; i < g.iterations; i++) {
		TIMED(i, l1_backdoor(&eax, &ebx));
		g.good += vmw_ok(eax, ebx);
	}
	asm volatile("in (%%dx), %%eax" : : "a"(NK_VMWARE_MAGIC), "c"(VMW_DONE_CMD),
		     "d"(NK_VMWARE_PORT) : "rbx", "memory");
	for (;;)
		;
}

/* ---- VMM side ---------------------------------------------------------- */

/* KVM's per-vCPU statistics read around the measured loop. */
enum { ST_EXITS, ST_IO, ST_EMUL, ST_NESTED_RUN, ST_PF_FIXED, NR_STATS };
static const char * const stat_name[NR_STATS] = {
	"exits", "io_exits", "insn_emulation", "nested_run", "pf_fixed",
};

struct stats {
	u64 v[NR_STATS];
	u64 userspace_exits;
};

static struct {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	void *test_hva;		/* the mf-* page in this process */
	int uffd;
	pthread_t uffd_thread;
	u64 hcalls, relayed, vmw_ins, mf_exits, uffd_faults, syncs, userspace_exits;
	u64 plain_ins, plain_ins_l2;
	struct kvm_vcpu *vcpu1;		/* rrr, ipi: the target */
	struct stats start, end;	/* at SYNC_START and SYNC_END */
	bool started, ended;
	bool uffd_stop;
} vmm;

/* The statistics of stat_name[], from KVM's binary stats. */
static void read_stats(struct kvm_vcpu *vcpu, struct stats *s)
{
	struct kvm_stats_header h;
	struct kvm_stats_desc *descs, *d;
	int fd = vcpu_get_stats_fd(vcpu);
	u32 i, j, found = 0;

	read_stats_header(fd, &h);
	descs = read_stats_descriptors(fd, &h);
	for (i = 0; i < h.num_desc; i++) {
		d = get_stats_descriptor(descs, i, &h);
		for (j = 0; j < NR_STATS; j++) {
			if (strcmp(d->name, stat_name[j]))
				continue;
			read_stat_data(fd, &h, d, &s->v[j], 1);
			found++;
		}
	}
	TEST_ASSERT(found == NR_STATS, "KVM lacks a vCPU statistic this bench reads");
	free(descs);
	close(fd);
	s->userspace_exits = vmm.userspace_exits;
}

static void *uffd_main(void *arg)
{
	struct pollfd pfd = { .fd = vmm.uffd, .events = POLLIN };

	(void)arg;
	while (!READ_ONCE(vmm.uffd_stop)) {
		struct uffd_msg msg;
		struct uffdio_writeprotect wp = {};

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (read(vmm.uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT ||
		    !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
			continue;
		wp.range.start = msg.arg.pagefault.address & ~(u64)(PAGE_SIZE - 1);
		wp.range.len = PAGE_SIZE;
		wp.mode = 0;		/* write-unprotect and wake the vCPU */
		TEST_ASSERT(!ioctl(vmm.uffd, UFFDIO_WRITEPROTECT, &wp), "UFFDIO_WRITEPROTECT clear");
		__atomic_add_fetch(&vmm.uffd_faults, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void protect(enum kase c)
{
	if (c == C_MF_EXIT) {
		TEST_ASSERT(!mprotect(vmm.test_hva, PAGE_SIZE, PROT_READ), "mprotect RO");
	} else {
		struct uffdio_writeprotect wp = {
			.range = { (u64)vmm.test_hva, PAGE_SIZE }, .mode = UFFDIO_WRITEPROTECT_MODE_WP,
		};

		TEST_ASSERT(!ioctl(vmm.uffd, UFFDIO_WRITEPROTECT, &wp), "UFFDIO_WRITEPROTECT");
	}
}

static void setup_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP };
	struct uffdio_register reg = {
		.range = { (u64)vmm.test_hva, PAGE_SIZE }, .mode = UFFDIO_REGISTER_MODE_WP,
	};

	vmm.uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	TEST_ASSERT(vmm.uffd >= 0, "userfaultfd: %s", strerror(errno));
	TEST_ASSERT(!ioctl(vmm.uffd, UFFDIO_API, &api), "UFFDIO_API");
	TEST_ASSERT(!ioctl(vmm.uffd, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER WP");
	vmm.uffd_stop = false;
	pthread_create(&vmm.uffd_thread, NULL, uffd_main, NULL);
}

static void handle_hcall(struct kvm_run *run)
{
	u64 input = run->hyperv.u.hcall.input;

	TEST_ASSERT(run->hyperv.type == KVM_EXIT_HYPERV_HCALL &&
		    (input & 0xffff) == HVCALL_POST_MESSAGE &&
		    run->hyperv.u.hcall.params[0] == g.post_gpa,
		    "unexpected Hyper-V exit type %u input 0x%llx", run->hyperv.type,
		    (unsigned long long)input);
	vmm.hcalls++;
	/* nested_flags exist only on a kernel with the relay (relay-l2 needs it). */
	if (g.kase == C_RELAY_L2 &&
	    (run->hyperv.u.hcall.nested_flags & KVM_HYPERV_HCALL_NESTED_RELAYED))
		vmm.relayed++;
	run->hyperv.u.hcall.result = HV_STATUS_SUCCESS;
}

/* Runs the case's VM to GUEST_DONE, answering what reaches this VMM. */
static void run_vm(enum kase c, struct nk_vcpu *nkvcpu)
{
	const struct nk_vmware_cfg cfg = {
		.version = g.vmw_version, .vmx_type = NK_VMWARE_TYPE_ESX, .mhz = 0,
	};
	struct kvm_vcpu *vcpu = vmm.vcpu;
	struct kvm_run *run = vcpu->run;
	char err[128];
	struct ucall uc;
	int r;

	for (;;) {
		r = _vcpu_run(vcpu);
		vmm.userspace_exits++;
		if (r < 0) {
			TEST_ASSERT(errno == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT &&
				    c == C_MF_EXIT, "KVM_RUN: %s", strerror(errno));
			TEST_ASSERT(run->memory_fault.gpa == TEST_GPA &&
				    (run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_WRITE),
				    "memory fault at 0x%llx flags 0x%llx",
				    (unsigned long long)run->memory_fault.gpa,
				    (unsigned long long)run->memory_fault.flags);
			TEST_ASSERT(!mprotect(vmm.test_hva, PAGE_SIZE, PROT_READ | PROT_WRITE),
				    "mprotect RW");
			vmm.mf_exits++;
			continue;
		}
		if (run->exit_reason == KVM_EXIT_HYPERV) {
			if (run->hyperv.type != KVM_EXIT_HYPERV_SYNIC)
				handle_hcall(run);
			continue;
		}
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		if (run->io.port == NK_VMWARE_PORT) {
			struct kvm_regs regs;

			/* nk_vmware_handle_io(), with a look at the command. */
			vcpu_regs_get(vcpu, &regs);
			if (c == C_VMW_L1 && (regs.rcx & 0xffff) == VMW_DONE_CMD) {
				read_stats(vcpu, &vmm.end);
				vmm.ended = true;
				return;
			}
			r = nk_vmware_apply_io(&cfg, run, nkvcpu->run_size, &regs, err, sizeof(err));
			TEST_ASSERT(r >= 0, "backdoor responder: %s", err);
			vcpu_regs_set(vcpu, &regs);
			vmm.vmw_ins++;
			continue;
		}
		if (run->io.port == PLAIN_PORT) {	/* io-*: the port's number */
			u32 val = PLAIN_PORT;

			TEST_ASSERT(run->io.direction == KVM_EXIT_IO_IN && run->io.size == 4,
				    "io-*: unexpected access to port 0x%x", PLAIN_PORT);
			memcpy((char *)run + run->io.data_offset, &val, sizeof(val));
			vmm.plain_ins++;
			if (run->flags & KVM_RUN_X86_GUEST_MODE)
				vmm.plain_ins_l2++;
			continue;
		}
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			if (uc.args[1] == SYNC_START) {
				read_stats(vcpu, &vmm.start);
				vmm.started = true;
			} else if (uc.args[1] == SYNC_END) {
				read_stats(vcpu, &vmm.end);
				vmm.ended = true;
			} else {
				vmm.syncs++;
				protect(c);
			}
			break;
		case UCALL_DONE:
			return;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
	}
}

struct result {
	u64 min, median, max;
	u64 d[NR_STATS], userspace_exits;	/* in the measured window */
	char check[200];
	bool ok;
};

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/* Needs of a case this kernel may not have; NULL if it can run. */
static const char *unavailable(enum kase c)
{
	switch (c) {
	case C_RELAY_L2:
		return kvm_check_cap(KVM_CAP_HYPERV_NESTED_RELAY) ? NULL :
		       "no KVM_CAP_HYPERV_NESTED_RELAY";
	case C_VMW_L2:
		return kvm_check_cap(KVM_CAP_X86_VMWARE) & KVM_X86_VMWARE_ENABLE_NESTED_BACKDOOR ?
		       NULL : "no KVM_CAP_X86_VMWARE nested backdoor";
	case C_VMW_L1:
	case C_VMW_REFLECT:
		return kvm_check_cap(KVM_CAP_X86_VMWARE) ? NULL : "no KVM_CAP_X86_VMWARE";
	case C_RRR:
		return kvm_check_cap(KVM_CAP_X86_APIC_REMOTE_READ) ? NULL :
		       "no KVM_CAP_X86_APIC_REMOTE_READ";
	case C_MF_EXIT:
		return kvm_check_cap(KVM_CAP_MEMORY_FAULT_PERM) ? NULL : "no KVM_CAP_MEMORY_FAULT_PERM";
	case C_RELAY_REFLECT:
		return g.is_amd || kvm_has_cap(KVM_CAP_HYPERV_ENLIGHTENED_VMCS) ? NULL :
		       "no enlightened VMCS";
	default:
		return NULL;
	}
}

static void run_case(enum kase c, u32 n, u64 overhead, struct result *res)
{
	vm_vaddr_t nested_gva = 0, hv_gva = 0, post_gva, hcall_gva;
	struct svm_test_data *svm = NULL;
	struct vmx_pages *vmx = NULL;
	struct kvm_vcpu *vcpus[2];
	struct nk_vcpu nkvcpu;
	u64 *s, nruns, io, emul;
	int kvm_fd;
	u32 i;

	memset(&vmm, 0, sizeof(vmm));
	g.kase = c;
	g.iterations = n;
	g.good = g.l1_vmcalls = g.l1_gps = 0;
	g.l2_done = false;
	g.fwd_status = ~0ull;

	if (c == C_RRR || c == C_IPI) {
		/* vCPU 1 never runs: its APIC answers, as an AP waiting for SIPI. */
		vmm.vm = vm_create_with_vcpus(2, l1_guest_code, vcpus);
		virt_pg_map(vmm.vm, APIC_DEFAULT_GPA, APIC_DEFAULT_GPA);
		vmm.vcpu = vcpus[0];
		vmm.vcpu1 = vcpus[1];
		if (c == C_IPI) {	/* software-enabled, so that it accepts the IPI */
			struct kvm_lapic_state lapic;
			u32 spiv;

			vcpu_ioctl(vmm.vcpu1, KVM_GET_LAPIC, &lapic);
			memcpy(&spiv, &lapic.regs[APIC_SPIV], sizeof(spiv));
			spiv |= APIC_SPIV_APIC_ENABLED;
			memcpy(&lapic.regs[APIC_SPIV], &spiv, sizeof(spiv));
			vcpu_ioctl(vmm.vcpu1, KVM_SET_LAPIC, &lapic);
		}
	} else {
		/* Capabilities first: some must be enabled before any vCPU exists. */
		vmm.vm = vm_create(1);
		switch (c) {
		case C_RELAY_L2:
			vm_enable_cap(vmm.vm, KVM_CAP_HYPERV_NESTED_RELAY,
				      KVM_HV_NESTED_RELAY_POST_MESSAGE);
			break;
		case C_VMW_L2:
			vm_enable_cap(vmm.vm, KVM_CAP_X86_VMWARE, KVM_X86_VMWARE_ENABLE_BACKDOOR |
				      KVM_X86_VMWARE_ENABLE_NESTED_BACKDOOR);
			break;
		case C_VMW_L1:
		case C_VMW_REFLECT:
			vm_enable_cap(vmm.vm, KVM_CAP_X86_VMWARE, KVM_X86_VMWARE_ENABLE_BACKDOOR);
			break;
		case C_MF_EXIT:
			vm_enable_cap(vmm.vm, KVM_CAP_MEMORY_FAULT_PERM, 1);
			break;
		default:
			break;
		}
		vmm.vcpu = vm_vcpu_add(vmm.vm, 0, c == C_VMW_L1 ? (void *)l1_cpl3_code :
				       (void *)l1_guest_code);
	}
	if (c == C_VMW_L1) {		/* L1 starts at CPL3 */
		struct kvm_sregs sregs;

		vcpu_sregs_get(vmm.vcpu, &sregs);
		sregs.cs.selector |= 3;
		sregs.cs.dpl = 3;
		sregs.ss.selector |= 3;
		sregs.ss.dpl = 3;
		vcpu_sregs_set(vmm.vcpu, &sregs);
	}
	if (c == C_RELAY_L2 || c == C_RELAY_L1 || c == C_RELAY_REFLECT) {
		vcpu_set_hv_cpuid(vmm.vcpu);
		/* KVM hands HvPostMessage to userspace only with an active SynIC. */
		vcpu_enable_cap(vmm.vcpu, KVM_CAP_HYPERV_SYNIC2, 0);
		vcpu_set_msr(vmm.vcpu, HV_X64_MSR_VP_INDEX, vmm.vcpu->id);
	}
	if (l2_case(c)) {
		if (g.is_amd) {
			svm = vcpu_alloc_svm(vmm.vm, &nested_gva);
		} else {
			vmx = vcpu_alloc_vmx(vmm.vm, &nested_gva);
			if (c == C_RELAY_L2 || c == C_RELAY_REFLECT)
				vcpu_enable_evmcs(vmm.vcpu);
		}
	}
	vcpu_alloc_hyperv_test_pages(vmm.vm, &hv_gva);
	hcall_gva = vm_vaddr_alloc_page(vmm.vm);
	post_gva = vm_vaddr_alloc_page(vmm.vm);
	memset(addr_gva2hva(vmm.vm, post_gva), 0, PAGE_SIZE);
	g.post_gpa = addr_gva2gpa(vmm.vm, post_gva);
	if (c == C_MF_EXIT || c == C_MF_UFFD || c == C_BASE_PF) {
		u32 pages = c == C_BASE_PF ? n : 1;

		vm_userspace_mem_region_add(vmm.vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
					    pages, 0);
		virt_map(vmm.vm, TEST_GPA, TEST_GPA, pages);
		g.test_gva = TEST_GPA;
		vmm.test_hva = addr_gpa2hva(vmm.vm, TEST_GPA);
		if (c != C_BASE_PF) {
			*(volatile u32 *)vmm.test_hva = 0;	/* populated, then protected */
			if (c == C_MF_UFFD)
				setup_uffd();
			protect(c);
		}
	}
	/* L2 runs on nested paging, as under Hyper-V (and as F1 requires). */
	if (svm) {
		prepare_npt(svm, vmm.vm);
		nested_npt_map_memslot(svm, vmm.vm, 0);
	} else if (vmx) {
		prepare_eptp(vmx, vmm.vm, 0);
		nested_map_memslot(vmx, vmm.vm, 0);
	}
	if (l2_cpl3() || c == C_VMW_L1)
		vm_set_user_bit(vmm.vm);
	sync_global_to_guest(vmm.vm, g);
	if (c != C_VMW_L1)
		vcpu_args_set(vmm.vcpu, 3, nested_gva, hv_gva, addr_gva2gpa(vmm.vm, hcall_gva));

	kvm_fd = open_kvm_dev_path_or_exit();
	nkvcpu.fd = vmm.vcpu->fd;
	nkvcpu.run = vmm.vcpu->run;
	nkvcpu.run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL);
	close(kvm_fd);

	if (c == C_VMW_L1) {		/* no ucall at CPL3: from the first KVM_RUN */
		read_stats(vmm.vcpu, &vmm.start);
		vmm.started = true;
	}
	run_vm(c, &nkvcpu);
	TEST_ASSERT(vmm.started && vmm.ended, "%s: no SYNC_START/SYNC_END", case_name[c]);
	for (i = 0; i < NR_STATS; i++)
		res->d[i] = vmm.end.v[i] - vmm.start.v[i];
	res->userspace_exits = vmm.end.userspace_exits - vmm.start.userspace_exits;
	if (c == C_MF_UFFD) {
		WRITE_ONCE(vmm.uffd_stop, true);
		pthread_join(vmm.uffd_thread, NULL);
		close(vmm.uffd);
	}
	sync_global_from_guest(vmm.vm, g);

	s = calloc(n, sizeof(*s));
	TEST_ASSERT(s, "out of memory");
	for (i = 0; i < n; i++) {
		u64 t = *(u64 *)addr_gva2hva(vmm.vm, (vm_vaddr_t)&samples[i]);

		s[i] = t > overhead ? t - overhead : 0;
	}
	qsort(s, n, sizeof(*s), cmp_u64);
	res->min = s[0];
	res->median = s[n / 2];
	res->max = s[n - 1];
	free(s);

	/*
	 * What each iteration must have done, and where it must have ended.
	 * In the window: "nested runs" counts L1 entering L2 (the launch, plus
	 * one per exit L1 handled); io_exits has the SYNC_END ucall's exit
	 * (but vmw-l1 ends on a backdoor IN, which is emulated).
	 */
	nruns = res->d[ST_NESTED_RUN];
	io = res->d[ST_IO] - (c == C_VMW_L1 ? 0 : 1);
	emul = res->d[ST_EMUL];
	switch (c) {
	case C_RELAY_L2:
		res->ok = g.good == n && vmm.hcalls == n && vmm.relayed == n && !g.l1_vmcalls &&
			  nruns == 1;
		snprintf(res->check, sizeof(res->check),
			 "%u/%u posts answered with success, %llu relayed to this VMM, %u reached L1, L1 ran L2 %llu time(s)",
			 g.good, n, (unsigned long long)vmm.relayed, g.l1_vmcalls,
			 (unsigned long long)nruns);
		break;
	case C_RELAY_L1:
		res->ok = g.good == n && vmm.hcalls == n && !nruns;
		snprintf(res->check, sizeof(res->check),
			 "%u/%u posts answered with success by this VMM", g.good, n);
		break;
	case C_RELAY_REFLECT:
		res->ok = g.good == n && vmm.hcalls == n && g.l1_vmcalls == n && nruns == n + 1;
		snprintf(res->check, sizeof(res->check),
			 "%u/%u posts answered with success; L1 forwarded %u, ran L2 %llu times",
			 g.good, n, g.l1_vmcalls, (unsigned long long)nruns);
		break;
	case C_VMW_L2:
	case C_VMW_L1:
	case C_VMW_REFLECT:
		/*
		 * vmw-l1, vmw-l2: backdoor INs through #GP and the emulator, never
		 * as I/O exits. vmw-reflect: every #GP to L1, whose own IN at CPL0
		 * is an I/O exit.
		 */
		res->ok = g.good == n && vmm.vmw_ins == n &&
			  (c == C_VMW_REFLECT ? g.l1_gps == n && nruns == n + 1 && io == n :
			   !g.l1_gps && !io && emul >= n && nruns == (c == C_VMW_L2));
		snprintf(res->check, sizeof(res->check),
			 "%u/%u GETVERSION answered with the VMM's version and magic; L1 #GP exits %u, L1 ran L2 %llu time(s); %llu emulated, %llu I/O exits",
			 g.good, n, g.l1_gps, (unsigned long long)nruns, (unsigned long long)emul,
			 (unsigned long long)io);
		break;
	case C_RRR:
		res->ok = g.good == n;
		snprintf(res->check, sizeof(res->check),
			 "%u/%u Remote Reads valid with vCPU 1's APIC ID", g.good, n);
		break;
	case C_IPI: {
		struct kvm_lapic_state lapic;
		u32 irr;

		vcpu_ioctl(vmm.vcpu1, KVM_GET_LAPIC, &lapic);
		memcpy(&irr, &lapic.regs[APIC_IRR + (IPI_VECTOR / 32) * 16], sizeof(irr));
		res->ok = g.good == n && (irr & BIT(IPI_VECTOR % 32));
		snprintf(res->check, sizeof(res->check),
			 "%u/%u ICR writes completed (idle, vector 0x%x), vector %s in vCPU 1's IRR",
			 g.good, n, IPI_VECTOR, irr & BIT(IPI_VECTOR % 32) ? "pending" : "NOT pending");
		break;
	}
	case C_MF_EXIT:
	case C_MF_UFFD:
		res->ok = g.good == n && vmm.syncs == n &&
			  (c == C_MF_EXIT ? vmm.mf_exits : vmm.uffd_faults) == n;
		snprintf(res->check, sizeof(res->check),
			 "%u/%u writes landed, %llu %s", g.good, n,
			 (unsigned long long)(c == C_MF_EXIT ? vmm.mf_exits : vmm.uffd_faults),
			 c == C_MF_EXIT ? "KVM_EXIT_MEMORY_FAULTs" : "userfaultfd-wp faults");
		break;
	case C_BASE_VMCALL:
		res->ok = g.l1_vmcalls == n && nruns == n + 1;
		snprintf(res->check, sizeof(res->check), "%u/%u VMCALLs reached L1, which ran L2 %llu times",
			 g.l1_vmcalls, n, (unsigned long long)nruns);
		break;
	case C_BASE_GP:
		res->ok = g.l1_gps == n && !vmm.vmw_ins && nruns == n + 1;
		snprintf(res->check, sizeof(res->check), "%u/%u #GPs reached L1, which ran L2 %llu times",
			 g.l1_gps, n, (unsigned long long)nruns);
		break;
	case C_BASE_PF:
		res->ok = g.good == n && res->d[ST_PF_FIXED] >= n;
		snprintf(res->check, sizeof(res->check), "%u/%u writes, %llu TDP faults fixed",
			 g.good, n, (unsigned long long)res->d[ST_PF_FIXED]);
		break;
	case C_IO_L1:
	case C_IO_L2:
		res->ok = g.good == n && vmm.plain_ins == n && io == n &&
			  vmm.plain_ins_l2 == (c == C_IO_L2 ? n : 0) && !g.l1_vmcalls && !g.l1_gps &&
			  nruns == (c == C_IO_L2);
		snprintf(res->check, sizeof(res->check),
			 "%u/%u INs read this VMM's answer, %llu from L2 (KVM_RUN_X86_GUEST_MODE), none reached L1",
			 g.good, n, (unsigned long long)vmm.plain_ins_l2);
		break;
	default:
		res->ok = g.good == n;
		snprintf(res->check, sizeof(res->check), "%u/%u iterations", g.good, n);
		break;
	}
	kvm_vm_free(vmm.vm);
}

static void usage(void)
{
	int i;

	fprintf(stderr, "usage: %s [--iterations N] [--rounds R] [--cases NAME,...]\n"
		"  N: 1000 by default, at most %d; R: 1 by default, at most 10; cases:",
		PROG, MAX_ITERATIONS);
	for (i = 0; i < NR_CASES; i++)
		fprintf(stderr, " %s", case_name[i]);
	fprintf(stderr, " (default: all)\n");
	exit(2);
}

int main(int argc, char *argv[])
{
	static const enum kase order[NR_CASES] = {
		C_EMPTY, C_IPI, C_BASE_VMCALL, C_BASE_GP, C_BASE_PF, C_RELAY_L1, C_RELAY_REFLECT,
		C_IO_L1, C_IO_L2, C_MF_UFFD, C_RELAY_L2, C_VMW_L2, C_VMW_L1, C_VMW_REFLECT, C_RRR,
		C_MF_EXIT,
	};
	static char line[NR_CASES][600];
	static struct result best[NR_CASES];
	bool want[NR_CASES] = {}, ran[NR_CASES] = {}, all = true, failed = false;
	u64 lo[NR_CASES] = {}, hi[NR_CASES] = {};
	u32 r, rounds = 1;
	int k, nlines = 0;
	struct result res;
	u64 overhead = 0;
	u32 n = 1000;
	int i, c;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iterations") && i + 1 < argc) {
			char *end;

			n = strtoul(argv[++i], &end, 10);
			if (*end || n < 1 || n > MAX_ITERATIONS)
				usage();
		} else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			char *end;

			rounds = strtoul(argv[++i], &end, 10);
			if (*end || rounds < 1 || rounds > 10)
				usage();
		} else if (!strcmp(argv[i], "--cases") && i + 1 < argc) {
			char *list = strdup(argv[++i]), *tok, *save;

			all = false;
			for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				for (c = 0; c < NR_CASES && strcmp(tok, case_name[c]); c++)
					;
				if (c == NR_CASES)
					usage();
				want[c] = true;
			}
			free(list);
		} else {
			usage();
		}
	}
	setbuf(stdout, NULL);
	g.is_amd = kvm_cpu_has(X86_FEATURE_SVM);
	if (!g.is_amd && !kvm_cpu_has(X86_FEATURE_VMX)) {
		printf("%s: no nested virtualization on this CPU\n", PROG);
		return 1;
	}
	g.vmw_version = NK_VMWARE_VERSION;
	printf("%s: %s, %u iterations per case, %u round(s); figures are TSC ticks per operation minus the cost of two RDTSCs\n",
	       PROG, g.is_amd ? "SVM" : "VMX", n, rounds);

	/*
	 * The calibration first, then the cases the pristine kernel runs too
	 * (rig/bench.sh), in the same order on both kernels, then the rest;
	 * all of it --rounds times, each case in a fresh VM every time. A
	 * case's figures are those of its round with the lowest minimum; the
	 * spread of the rounds' minimums shows how much the state the earlier
	 * VMs left behind moves a figure. Figures are printed only once every
	 * case has run and checked out in every round.
	 */
	for (r = 0; r < rounds; r++) {
		for (k = 0; k < NR_CASES; k++) {
			enum kase c = order[k];
			const char *why;

			if (c != C_EMPTY && !all && !want[c])
				continue;
			why = unavailable(c);
			if (why) {
				printf("# cost %s: FAILED: unavailable (%s)\n", case_name[c], why);
				failed = true;
				continue;
			}
			run_case(c, n, c == C_EMPTY ? 0 : overhead, &res);
			if (!res.ok) {
				printf("# cost %s: FAILED in round %u: %s\n", case_name[c], r, res.check);
				failed = true;
				continue;
			}
			if (!ran[c] || res.min < best[c].min)
				best[c] = res;
			lo[c] = !ran[c] || res.min < lo[c] ? res.min : lo[c];
			hi[c] = !ran[c] || res.min > hi[c] ? res.min : hi[c];
			ran[c] = true;
			if (c == C_EMPTY && !r)
				overhead = res.median;
		}
	}
	for (k = 0; k < NR_CASES; k++) {
		enum kase c = order[k];
		struct result *b = &best[c];
		double per = n;

		if (!ran[c])
			continue;
		snprintf(line[nlines++], sizeof(line[0]),
			 "# cost %s: n %u min %llu median %llu max %llu exits/op %.2f emul/op %.2f io/op %.2f nested-runs %llu pf/op %.2f userspace-exits/op %.2f rounds %u round-min-max %llu %llu; %s\n",
			 case_name[c], n, (unsigned long long)b->min,
			 (unsigned long long)b->median, (unsigned long long)b->max,
			 b->d[ST_EXITS] / per, b->d[ST_EMUL] / per, b->d[ST_IO] / per,
			 (unsigned long long)b->d[ST_NESTED_RUN], b->d[ST_PF_FIXED] / per,
			 b->userspace_exits / per, rounds, (unsigned long long)lo[c],
			 (unsigned long long)hi[c], b->check);
	}
	if (failed) {
		printf("# cost: a case failed: no figures\n");
		return 1;
	}
	for (k = 0; k < nlines; k++)
		fputs(line[k], stdout);
	return 0;
}
