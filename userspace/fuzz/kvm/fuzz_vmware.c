// SPDX-License-Identifier: GPL-2.0-only
/*
 * nestkit-fuzz-vmware: guest fuzzer of KVM_CAP_X86_VMWARE.
 *
 * What is fuzzed: each iteration creates a fresh VM with a random set of
 * KVM_X86_VMWARE_ENABLE_{BACKDOOR,HYPERCALL,NESTED_BACKDOOR} (NESTED
 * without BACKDOOR must fail KVM_ENABLE_CAP with -EINVAL; the VM then
 * runs with nothing enabled) and runs FUZZ_BATCHES batches of up to
 * MAX_OPS operations, each batch either in L1 or in L2.  For an L2 batch,
 * L1 picks (from data the VMM wrote) whether it intercepts #GP, RDPMC and
 * I/O (none; all: VMX unconditional I/O exiting, SVM IOIO with a full
 * IOPM; or VMX I/O bitmaps / SVM IOPM with random bits).  An operation is
 * one instruction, written by the VMM into a per-op code slot followed by
 * INT 0x80, entered by IRET at CPL 0, 1, 2 or 3 with a random IOPL:
 *   - IN/OUT with an imm8 port or the port in DX, sizes b/w/l; INS/OUTS
 *     b/w/l, with REP and RCX 1..8 sometimes; DX = 0x5658/0x5659, their
 *     neighbours or random; EAX = 0x564D5868 (random upper half) or not;
 *   - RDPMC, ECX in 0x10000-0x10002, their neighbours, 0..3 or random;
 *   - VMCALL (Intel) / VMMCALL (AMD), EAX magic or not.
 * All random choices are made here from fuzz.h's generator and handed to
 * the guests as data (code bytes and registers), so a seed replays a run.
 *
 * The reference model (api.rst 7.38 KVM_CAP_X86_VMWARE and
 * KVM_EXIT_VMWARE) is model() below; an op ends in exactly one of:
 *   L0_IO       KVM_EXIT_IO to this VMM: port, direction, size, count (the
 *               counts of string I/O summed over exits),
 *               KVM_RUN_X86_GUEST_MODE iff from L2; IN and INS get the
 *               VMM's random answer, checked in RAX / memory, RSI/RDI/RCX
 *               as the instruction defines; OUT/OUTS data checked;
 *   HCALL_EXIT  KVM_EXIT_VMWARE with CPL and registers checked; the VMM
 *               answers with random RAX..RBP (or leaves some), or injects
 *               #UD/#GP(ec), and the guest must see exactly that;
 *   KVM_HCALL   KVM's own hypercall: RAX = -KVM_ENOSYS (CPL0) or
 *               -KVM_EPERM (CPL 1-3), nothing else changed;
 *   PMC         RDPMC served in the kernel: pseudo-counters inside the
 *               host clocks read around the batch, PMC 0..3 of a vPMU;
 *   GP          #GP(0) in the executing guest's own handler, registers
 *               unchanged;
 *   L1_GP/L1_IO/L1_RDPMC/L1_CALL  the exit L1 sees for an op of L2, with
 *               RIP at the instruction (and error code 0, port/size/dir).
 * The decision (model(), each rule counted by name at the end):
 *   L1: IN/OUT/INS/OUTS permitted (CPL <= IOPL; the TSS has no bitmap) ->
 *       L0_IO; denied -> L0_IO if the backdoor is on and DX is 0x5658/9
 *       (any EAX), else GP.  RDPMC CPL1-3: PMC for 0x10000-2 with the
 *       backdoor, else GP; CPL0: pseudo-PMCs with the backdoor (or a vPMU
 *       on Intel), vPMU counters, else GP.  VMCALL/VMMCALL: HCALL_EXIT iff
 *       HYPERCALL and EAX is the magic, else KVM_HCALL.
 *   L2: permitted I/O -> L1_IO if L1 intercepts that size at that port,
 *       else L0_IO; denied -> L0_IO iff NESTED_BACKDOOR, CPL3, DX form,
 *       backdoor port, magic EAX and L1 does not intercept it; on VMX
 *       without NESTED_BACKDOOR, with the backdoor and #GP not intercepted
 *       by L1, a backdoor-port access is emulated (L0_IO) unless L1 wants
 *       the I/O (then the #GP stays: GP in L2); everything else is a #GP
 *       that goes to L1 (L1_GP) if L1 intercepts #GP, else to L2 (GP).
 *       RDPMC CPL1-3: PMC iff NESTED_BACKDOOR, CPL3, pseudo-PMC, L1 does not
 *       intercept RDPMC, else #GP to L1/L2; CPL0: L1_RDPMC if intercepted,
 *       else as in L1 with the #GP going to L1/L2.  VMCALL/VMMCALL: L1_CALL,
 *       never KVM_EXIT_VMWARE.
 * Where the hardware decides differently from QEMU's TCG (AMD RDPMC of an
 * unsupported index: #GP before the intercept on hardware, after it in
 * TCG), the model allows both outcomes and counts the TCG one.  The
 * apparent-time pseudo-PMC is checked against boot time plus a kvmclock
 * offset bounded through KVM_GET_CLOCK, with 100 us + 0.1% slack.
 *
 * Replay: nestkit-fuzz-vmware --seed S --iterations N (both printed first).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/kvm_para.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "vmx.h"
#include "svm_util.h"

#include "nested_demo.h"
#include "fuzz.h"

#define PROG			"nestkit-fuzz-vmware"
#define DEFAULT_SEED		0x766d77617265ull	/* "vmware" */
#define DEFAULT_ITERATIONS	50
#define FUZZ_BATCHES		8
#define MAX_OPS			256
#define SLOT_SIZE		16	/* code bytes per op */
#define BUF_SLOT		64	/* INS/OUTS memory per op */
#define MAX_PRINTS		25

#define MAGIC			0x564D5868u
#define BD_PORT			0x5658
#define RPC_PORT		0x5659
#define UCALL_PORT		0x1000

#define KERNEL_CS		0x08
#define KERNEL_DS		0x10
#define USER_CS			0x2b
#define USER_DS			0x33
#define CPL1_CS			0x39	/* each data selector follows its code selector */
#define CPL1_DS			0x41
#define CPL2_CS			0x4a
#define CPL2_DS			0x52
#define RETURN_VECTOR		0x80

/* AMD: six core performance counters */
#define FUZZ_FEATURE_PERFCTR_CORE	KVM_X86_CPU_FEATURE(0x80000001, 0, ECX, 23)

#define F_BD			KVM_X86_VMWARE_ENABLE_BACKDOOR
#define F_HC			KVM_X86_VMWARE_ENABLE_HYPERCALL
#define F_NESTED		KVM_X86_VMWARE_ENABLE_NESTED_BACKDOOR

/* Guest-visible, written by the VMM before a batch. */
struct gop {
	u64 code, resume;	/* slot, and the INT 0x80 after the instruction */
	u64 cs, ss, rflags;
	u64 in[7];		/* rax rbx rcx rdx rsi rdi rbp */
};

struct gres {
	u64 out[7];
	u64 vector, error_code;
};

struct gl1 {
	u32 gp, io, rdpmc, call, other;
	u32 error_code, other_reason;
	u64 rip, io_info;
};

struct gdata {
	u32 nops, level, quit;
	u32 cur;
	u8 l2_in_op;
	u8 l1_gp, l1_rdpmc, l1_io;	/* l1_io: enum l1_io */
	u64 iopm_gpa;
	struct gop ops[MAX_OPS];
	struct gres res[MAX_OPS];
	struct gl1 l1[MAX_OPS];
};

enum l1_io { IO_NONE, IO_ALL, IO_BITMAP };

static struct gdata td;
bool vmw_is_amd;
u64 vmw_regs_in[7], vmw_regs_out[7];
u64 vmw_kernel_rsp;
u8 vmw_user_stack[4096] __aligned(16);
static u64 op_vector, op_error_code;

/* Enter @code at @cs/@ss with @rflags and vmw_regs_in; INT 0x80 or a fault returns. */
static noinline void __naked run_op(u64 code, u64 cs, u64 ss, u64 rflags)
{
	asm volatile("push %rbp\n\t"
		     "push %rbx\n\t"
		     "push %r12\n\t"
		     "push %r13\n\t"
		     "push %r14\n\t"
		     "push %r15\n\t"
		     "mov %rsp, vmw_kernel_rsp(%rip)\n\t"
		     "push %rdx\n\t"
		     "lea vmw_user_stack+4096(%rip), %rax\n\t"
		     "push %rax\n\t"
		     "push %rcx\n\t"
		     "push %rsi\n\t"
		     "push %rdi\n\t"
		     "mov vmw_regs_in+0(%rip), %rax\n\t"
		     "mov vmw_regs_in+8(%rip), %rbx\n\t"
		     "mov vmw_regs_in+16(%rip), %rcx\n\t"
		     "mov vmw_regs_in+24(%rip), %rdx\n\t"
		     "mov vmw_regs_in+32(%rip), %rsi\n\t"
		     "mov vmw_regs_in+40(%rip), %rdi\n\t"
		     "mov vmw_regs_in+48(%rip), %rbp\n\t"
		     "iretq\n"
		     "vmw_return_from_op:\n\t"
		     "mov $" __stringify(KERNEL_DS) ", %eax\n\t"
		     "mov %eax, %ss\n\t"
		     "mov %eax, %ds\n\t"
		     "mov %eax, %es\n\t"
		     "mov vmw_kernel_rsp(%rip), %rsp\n\t"
		     "pop %r15\n\t"
		     "pop %r14\n\t"
		     "pop %r13\n\t"
		     "pop %r12\n\t"
		     "pop %rbx\n\t"
		     "pop %rbp\n\t"
		     "ret");
}

static void op_return_handler(struct ex_regs *regs)
{
	vmw_regs_out[0] = regs->rax;
	vmw_regs_out[1] = regs->rbx;
	vmw_regs_out[2] = regs->rcx;
	vmw_regs_out[3] = regs->rdx;
	vmw_regs_out[4] = regs->rsi;
	vmw_regs_out[5] = regs->rdi;
	vmw_regs_out[6] = regs->rbp;
	op_vector = regs->vector == RETURN_VECTOR ? 0 : regs->vector;
	op_error_code = regs->error_code;
	asm volatile("jmp vmw_return_from_op");
}

/* The ops of a batch, in L1 or in L2 (the same code, the same IDT). */
static void run_batch(void)
{
	u32 i;

	for (i = 0; i < td.nops; i++) {
		const struct gop *op = &td.ops[i];

		WRITE_ONCE(td.cur, i);
		memcpy(vmw_regs_in, op->in, sizeof(vmw_regs_in));
		WRITE_ONCE(td.l2_in_op, 1);
		run_op(op->code, op->cs, op->ss, op->rflags);
		WRITE_ONCE(td.l2_in_op, 0);
		memcpy(td.res[i].out, vmw_regs_out, sizeof(vmw_regs_out));
		td.res[i].vector = op_vector;
		td.res[i].error_code = op_error_code;
	}
}

/* L2's "batch done": callee-saved registers survive L1 on the stack. */
static void __naked l2_call_l1(void)
{
	asm volatile("push %rbp\n\t"
		     "push %rbx\n\t"
		     "push %r12\n\t"
		     "push %r13\n\t"
		     "push %r14\n\t"
		     "push %r15\n\t"
		     "cmpb $0, vmw_is_amd(%rip)\n\t"
		     "jne 1f\n\t"
		     "vmcall\n\t"
		     "jmp 2f\n"
		     "1:\n\t"
		     "vmmcall\n"
		     "2:\n\t"
		     "pop %r15\n\t"
		     "pop %r14\n\t"
		     "pop %r13\n\t"
		     "pop %r12\n\t"
		     "pop %rbx\n\t"
		     "pop %rbp\n\t"
		     "ret");
}

static void l2_guest_code(void)
{
	run_batch();
	for (;;)
		l2_call_l1();
}

enum l1_exit { X_CALL, X_GP, X_IO, X_RDPMC, X_OTHER };

/* Record an exit of L2 during an op; false at the "batch done" VMCALL. */
static bool l1_record(enum l1_exit x, u64 rip, u32 ec, u64 io_info, u32 reason)
{
	u32 cur = READ_ONCE(td.cur);
	struct gl1 *e;

	if (x == X_CALL && !READ_ONCE(td.l2_in_op))
		return false;
	if (cur >= MAX_OPS)
		cur = MAX_OPS - 1;
	e = &td.l1[cur];
	switch (x) {
	case X_GP:
		e->gp++;
		e->error_code = ec;
		break;
	case X_IO:
		e->io++;
		e->io_info = io_info;
		break;
	case X_RDPMC:
		e->rdpmc++;
		break;
	case X_CALL:
		e->call++;
		break;
	default:
		e->other++;
		e->other_reason = reason;
		break;
	}
	e->rip = rip;
	return true;
}

static bool vmx_launched;

static void l1_vmx_batch(void *l2_stack)
{
	u32 ctl = vmreadz(CPU_BASED_VM_EXEC_CONTROL) &
		  ~(CPU_BASED_UNCOND_IO_EXITING | CPU_BASED_USE_IO_BITMAPS |
		    CPU_BASED_RDPMC_EXITING);

	vmwrite(EXCEPTION_BITMAP, td.l1_gp ? BIT(GP_VECTOR) : 0);
	if (td.l1_io == IO_ALL)
		ctl |= CPU_BASED_UNCOND_IO_EXITING;
	if (td.l1_io == IO_BITMAP) {
		ctl |= CPU_BASED_USE_IO_BITMAPS;
		vmwrite(IO_BITMAP_A, td.iopm_gpa);
		vmwrite(IO_BITMAP_B, td.iopm_gpa + PAGE_SIZE);
	}
	if (td.l1_rdpmc)
		ctl |= CPU_BASED_RDPMC_EXITING;
	vmwrite(CPU_BASED_VM_EXEC_CONTROL, ctl);
	vmwrite(GUEST_TR_LIMIT, 0x67);
	vmwrite(GUEST_RIP, (u64)l2_guest_code);
	vmwrite(GUEST_RSP, (u64)l2_stack);
	vmwrite(GUEST_RFLAGS, 2);
	for (;;) {
		u32 reason, intr;
		u64 rip;
		enum l1_exit x;

		GUEST_ASSERT(!(vmx_launched ? vmresume() : vmlaunch()));
		vmx_launched = true;
		reason = vmreadz(VM_EXIT_REASON);
		rip = vmreadz(GUEST_RIP);
		intr = vmreadz(VM_EXIT_INTR_INFO);
		switch (reason) {
		case EXIT_REASON_VMCALL:
			x = X_CALL;
			break;
		case EXIT_REASON_IO_INSTRUCTION:
			x = X_IO;
			break;
		case EXIT_REASON_RDPMC:
			x = X_RDPMC;
			break;
		case EXIT_REASON_EXCEPTION_NMI:
			x = (intr & 0xff) == GP_VECTOR ? X_GP : X_OTHER;
			break;
		default:
			x = X_OTHER;
			break;
		}
		if (!l1_record(x, rip, vmreadz(VM_EXIT_INTR_ERROR_CODE),
			       vmreadz(EXIT_QUALIFICATION), reason))
			return;
		vmwrite(GUEST_RIP, td.ops[READ_ONCE(td.cur) % MAX_OPS].resume);
	}
}

static void l1_svm_batch(struct svm_test_data *svm, void *l2_stack)
{
	struct vmcb *vmcb = svm->vmcb;

	vmcb->control.intercept_exceptions = td.l1_gp ? BIT(GP_VECTOR) : 0;
	vmcb->control.intercept &= ~(BIT_ULL(INTERCEPT_IOIO_PROT) | BIT_ULL(INTERCEPT_RDPMC));
	if (td.l1_io != IO_NONE)
		vmcb->control.intercept |= BIT_ULL(INTERCEPT_IOIO_PROT);
	vmcb->control.iopm_base_pa = td.iopm_gpa;
	if (td.l1_rdpmc)
		vmcb->control.intercept |= BIT_ULL(INTERCEPT_RDPMC);
	/* QEMU consults the I/O bitmap only of an available TSS (type 9) */
	vmcb->save.tr.limit = 0x67;
	vmcb->save.tr.attrib = (vmcb->save.tr.attrib & ~0xf) | 9;
	vmcb->save.rip = (u64)l2_guest_code;
	vmcb->save.rsp = (u64)l2_stack;
	vmcb->save.rflags = 2;
	for (;;) {
		enum l1_exit x;
		u64 code;

		run_guest(vmcb, svm->vmcb_gpa);
		code = vmcb->control.exit_code;
		switch (code) {
		case SVM_EXIT_VMMCALL:
			x = X_CALL;
			break;
		case SVM_EXIT_IOIO:
			x = X_IO;
			break;
		case SVM_EXIT_RDPMC:
			x = X_RDPMC;
			break;
		case SVM_EXIT_EXCP_BASE + GP_VECTOR:
			x = X_GP;
			break;
		default:
			x = X_OTHER;
			break;
		}
		if (!l1_record(x, vmcb->save.rip, vmcb->control.exit_info_1,
			       vmcb->control.exit_info_1, code))
			return;
		vmcb->save.rip = td.ops[READ_ONCE(td.cur) % MAX_OPS].resume;
	}
}

static void l1_guest_code(void *nested, void *l2_stack)
{
	bool ready = false;

	for (;;) {
		GUEST_SYNC(0);		/* the VMM writes the next batch */
		if (td.quit)
			break;
		if (td.level == 1) {
			run_batch();
			continue;
		}
		if (vmw_is_amd) {
			if (!ready)
				generic_svm_setup(nested, l2_guest_code, l2_stack);
			ready = true;
			l1_svm_batch(nested, l2_stack);
		} else {
			if (!ready) {
				GUEST_ASSERT(prepare_for_vmx_operation(nested));
				GUEST_ASSERT(load_vmcs(nested));
				prepare_vmcs(nested, l2_guest_code, l2_stack);
			}
			ready = true;
			l1_vmx_batch(l2_stack);
		}
	}
	GUEST_DONE();
}

/* ---------------------------------------------------------------- host */

enum kind { K_IO, K_RDPMC, K_HCALL };
enum form { IN_IMM, OUT_IMM, IN_DX, OUT_DX, INS, OUTS, NR_FORMS };
static const char * const form_name[] = { "in imm", "out imm", "in dx", "out dx", "ins", "outs" };

enum outcome {
	O_NONE, O_L0_IO, O_HCALL_EXIT, O_KVM_HCALL, O_PMC, O_GP, O_L1_GP, O_L1_IO,
	O_L1_RDPMC, O_L1_CALL, O_OTHER_VECTOR, O_L1_OTHER, O_MULTI, NR_OUTCOMES
};
static const char * const outcome_name[] = {
	"nothing", "KVM_EXIT_IO", "KVM_EXIT_VMWARE", "KVM hypercall", "RDPMC in kernel",
	"#GP(0) in guest", "L1 #GP exit", "L1 I/O exit", "L1 RDPMC exit", "L1 VMCALL exit",
	"other vector in guest", "other L1 exit", "several outcomes",
};

enum inject { INJ_NONE, INJ_UD, INJ_GP };

struct hop {
	enum kind kind;
	enum form form;
	u8 size, rep, imm, cpl, iopl, inject;
	u16 port;		/* the port accessed */
	u32 count;		/* elements of string I/O */
	u64 in[7];
	u64 answer;		/* IN data, hypercall result */
	u64 hc_out[7];		/* hypercall: new rbx..rbp (index 1..6) */
	u8 hc_keep;		/* bits 1..6: leave the reported value */
	u32 inj_ec;
	u8 len;			/* instruction bytes */
};

/* What L0 userspace saw of one op. */
struct l0rec {
	u32 nio, nhc, count;
	u16 port;
	u8 dir, size;
	u32 flags_or, flags_and;
	u32 in_off, out_len;
	u8 out[BUF_SLOT];
	const char *bad;	/* a wrong field of KVM_EXIT_VMWARE */
};

struct stamp {
	u64 tsc, boot_ns;
	s64 offset_min, offset_max;
};

/* The model's rules, counted as they decide. */
enum rule {
	R_L1_IO_PERMITTED, R_L1_IO_BACKDOOR, R_L1_IO_DENIED,
	R_L2_IO_PERMITTED_L1, R_L2_IO_PERMITTED_L0, R_L2_NESTED_BACKDOOR,
	R_L2_VMX_LEGACY_L1, R_L2_VMX_LEGACY_L0, R_L2_IO_DENIED, R_L2_NESTED_CPL12,
	R_PMC_CPL3_BACKDOOR, R_PMC_CPL3_GP, R_PMC_L2_NESTED, R_PMC_L2_CPL3_GP,
	R_PMC_L2_NESTED_CPL12,
	R_PMC_L1_INTERCEPT, R_PMC_AMD_ALT, R_PMC_PSEUDO_CPL0, R_PMC_PSEUDO_CPL0_GP,
	R_PMC_COUNTER, R_PMC_INVALID,
	R_HC_VMWARE, R_HC_KVM, R_HC_L2, NR_RULES
};
static const char * const rule_name[] = {
	"L1 I/O permitted -> KVM_EXIT_IO", "L1 backdoor port -> KVM_EXIT_IO",
	"L1 I/O denied -> #GP", "L2 I/O permitted, L1 intercepts",
	"L2 I/O permitted -> KVM_EXIT_IO", "L2 nested backdoor -> KVM_EXIT_IO",
	"L2 VMX pre-cap, L1 wants the I/O -> #GP", "L2 VMX pre-cap emulation -> KVM_EXIT_IO",
	"L2 I/O denied -> #GP to L1/L2",
	"L2 CPL1/2 backdoor access, nested on -> #GP to L1/L2",
	"RDPMC CPL1-3 pseudo, backdoor",
	"RDPMC CPL1-3 -> #GP (L1)", "RDPMC L2 CPL3 nested backdoor",
	"RDPMC L2 CPL1-3 -> #GP to L1/L2",
	"RDPMC L2 CPL1/2 pseudo, nested on -> #GP to L1/L2",
	"RDPMC L2 CPL0, L1 intercepts",
	"RDPMC L2 CPL0 AMD, hardware or TCG", "RDPMC CPL0 pseudo in kernel",
	"RDPMC CPL0 pseudo -> #GP", "RDPMC CPL0 vPMU counter",
	"RDPMC CPL0 invalid -> #GP", "hypercall -> KVM_EXIT_VMWARE",
	"hypercall -> KVM's", "hypercall of L2 -> L1",
};

struct expect {
	enum outcome o, alt;	/* alt: O_NONE or a second allowed outcome */
	enum rule rule;
};

static struct fuzz_rng rng;
static struct gdata *tdh;
static struct hop hops[MAX_OPS];
static struct l0rec l0[MAX_OPS];
/* Code selector by CPL (run_vm() writes the GDT entries). */
static const u16 cpl_cs[4] = { KERNEL_CS, CPL1_CS, CPL2_CS, USER_CS };
static u8 *code_hva, *buf_hva, *iopm_hva;
static u64 code_gva, buf_gva;
static bool is_amd, param_bd;
static u32 nr_gp;		/* GP counters of the vPMU, 0 without one */
static u64 features, iteration, total_iterations;
static int batch_nr;
static u64 guest_ops, mismatches, prints;
static u64 rule_count[NR_RULES];
_Static_assert(sizeof(rule_name) / sizeof(rule_name[0]) == NR_RULES, "a name per rule");

enum {
	C_VMS, C_CAP_EINVAL, C_CAP_OK, C_CAP_EBUSY, C_CAP_ZERO, C_L1_BATCH, C_L2_BATCH,
	C_O_BASE,
	C_AMD_ALT = C_O_BASE + NR_OUTCOMES, C_HC_INJECT, C_L0_EXITS, NR_COUNTERS
};
static struct fuzz_counter counters[NR_COUNTERS] = {
	[C_VMS] = { "VMs" },
	[C_CAP_EINVAL] = { "ENABLE_CAP NESTED w/o BACKDOOR: EINVAL" },
	[C_CAP_OK] = { "ENABLE_CAP accepted" },
	[C_CAP_EBUSY] = { "ENABLE_CAP after vCPU: EBUSY" },
	[C_CAP_ZERO] = { "ENABLE_CAP 0: EINVAL" },
	[C_L1_BATCH] = { "batches in L1" },
	[C_L2_BATCH] = { "batches in L2" },
	[C_O_BASE + O_NONE] = { "outcome: nothing" },
	[C_O_BASE + O_L0_IO] = { "outcome: KVM_EXIT_IO" },
	[C_O_BASE + O_HCALL_EXIT] = { "outcome: KVM_EXIT_VMWARE" },
	[C_O_BASE + O_KVM_HCALL] = { "outcome: KVM hypercall" },
	[C_O_BASE + O_PMC] = { "outcome: RDPMC in kernel" },
	[C_O_BASE + O_GP] = { "outcome: #GP(0) in the guest" },
	[C_O_BASE + O_L1_GP] = { "outcome: L1 #GP exit" },
	[C_O_BASE + O_L1_IO] = { "outcome: L1 I/O exit" },
	[C_O_BASE + O_L1_RDPMC] = { "outcome: L1 RDPMC exit" },
	[C_O_BASE + O_L1_CALL] = { "outcome: L1 VMCALL exit" },
	[C_O_BASE + O_OTHER_VECTOR] = { "outcome: other vector" },
	[C_O_BASE + O_L1_OTHER] = { "outcome: other L1 exit" },
	[C_O_BASE + O_MULTI] = { "outcome: several" },
	[C_AMD_ALT] = { "AMD RDPMC: TCG order (intercept first)" },
	[C_HC_INJECT] = { "KVM_EXIT_VMWARE answered by injection" },
	[C_L0_EXITS] = { "exits to L0 userspace (ops)" },
};

static s64 clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

/* As vmware_backdoor_test.c: the kvmclock offset bounded around KVM_GET_CLOCK. */
static void take_stamp(struct kvm_vm *vm, struct stamp *st)
{
	struct kvm_clock_data clock = {};
	s64 raw1, raw2, mono1, mono2;

	st->tsc = rdtsc();
	mono1 = clock_ns(CLOCK_MONOTONIC);
	st->boot_ns = clock_ns(CLOCK_BOOTTIME);
	mono2 = clock_ns(CLOCK_MONOTONIC);
	raw1 = clock_ns(CLOCK_MONOTONIC_RAW);
	vm_ioctl(vm, KVM_GET_CLOCK, &clock);
	raw2 = clock_ns(CLOCK_MONOTONIC_RAW);
	st->offset_min = clock.clock - raw2 - (st->boot_ns - mono1);
	st->offset_max = clock.clock - raw1 - (st->boot_ns - mono2);
}

static u8 ans_byte(u64 ans, u32 k)
{
	return (u8)(ans >> ((k & 7) * 8)) ^ (u8)(k * 0x3b);
}

/* ---- the generator */

static u16 pick_dx_port(void)
{
	static const u16 ports[] = { BD_PORT, BD_PORT, BD_PORT, BD_PORT, RPC_PORT, RPC_PORT,
				     0x5657, 0x565a, 0x565b, 0x5656, 0x5660, 0x5858, 0x5458 };

	switch (fuzz_below(&rng, 8)) {
	case 0:
		return 0x2000 + fuzz_below(&rng, 0xd000);	/* no in-kernel device, no ucall */
	case 1:
		return 0x5600 + fuzz_below(&rng, 0x100);
	default:
		return fuzz_pick(&rng, ports);
	}
}

static void gen_op(struct hop *h, int level)
{
	static const u32 pmcs[] = { 0x10000, 0x10001, 0x10002, 0x10000, 0x10001, 0x10002,
				    0xffff, 0x10003, 0x10004, 0x20000, 0x110000, 0x80010000,
				    0, 1, 2, 3 };
	static const u8 imm_ports[] = { 0x58, 0x59, 0x80, 0x84, 0xe9, 0xf0, 0xf4 };
	static const u8 sizes[] = { 1, 2, 4 };
	u32 r = fuzz_below(&rng, 100);
	int i;

	memset(h, 0, sizeof(*h));
	for (i = 0; i < 7; i++)
		h->in[i] = fuzz_u64(&rng);
	h->answer = fuzz_u64(&rng);
	/*
	 * Mostly CPL3 (the backdoor's case), IOPL 3 rarer: a permitted port
	 * access is an exit to this VMM, the slowest outcome.  CPL 1 and 2
	 * sometimes: the nested backdoor is for CPL3 only, the rest not.
	 */
	h->kind = r < 50 ? K_IO : r < (level == 2 ? 95u : 85u) ? K_RDPMC : K_HCALL;
	h->cpl = fuzz_chance(&rng, h->kind == K_IO ? 7 : 3, h->kind == K_IO ? 8 : 4) ? 3 : 0;
	if (h->cpl && fuzz_chance(&rng, 1, 6))
		h->cpl = 1 + fuzz_below(&rng, 2);
	h->iopl = fuzz_chance(&rng, 1, 10) ? 3 : fuzz_below(&rng, 3);
	/* EAX: the magic (any upper half) or not */
	if (fuzz_chance(&rng, 3, 5))
		h->in[0] = (h->in[0] & ~0xffffffffull) | MAGIC;
	else if ((u32)h->in[0] == MAGIC)
		h->in[0] ^= 1;
	switch (h->kind) {
	case K_IO:
		h->form = fuzz_below(&rng, NR_FORMS);
		h->size = fuzz_pick(&rng, sizes);
		h->count = 1;
		h->imm = fuzz_pick(&rng, imm_ports);
		h->in[3] = (h->in[3] & ~0xffffull) | pick_dx_port();
		if (h->form == IN_IMM || h->form == OUT_IMM)
			h->port = h->imm;
		else
			h->port = (u16)h->in[3];
		if (h->form == INS || h->form == OUTS) {
			h->rep = fuzz_chance(&rng, 1, 2);
			if (h->rep) {
				h->count = 1 + fuzz_below(&rng, 8);
				h->in[2] = h->count;
			}
		}
		break;
	case K_RDPMC:
		h->in[2] = fuzz_chance(&rng, 1, 8) ? fuzz_u64(&rng) :
			   (h->in[2] & ~0xffffffffull) | fuzz_pick(&rng, pmcs);
		if (fuzz_chance(&rng, 1, 2))
			h->in[3] = (h->in[3] & ~0xffffull) | BD_PORT;
		break;
	case K_HCALL:
		if ((u32)h->in[0] != MAGIC)
			h->in[0] |= 1ull << 63;	/* never a KVM hypercall number */
		for (i = 1; i < 7; i++)
			h->hc_out[i] = fuzz_u64(&rng);
		h->hc_keep = fuzz_below(&rng, 128) & 0x7e;
		if (fuzz_chance(&rng, 1, 8)) {
			h->inject = fuzz_chance(&rng, 1, 2) ? INJ_UD : INJ_GP;
			h->inj_ec = fuzz_below(&rng, 0x10000) & ~3u;
		}
		break;
	}
}

static int encode(const struct hop *h, u8 *p)
{
	static const u8 op_b[] = { 0xe4, 0xe6, 0xec, 0xee, 0x6c, 0x6e };
	int n = 0;

	switch (h->kind) {
	case K_IO:
		if (h->rep)
			p[n++] = 0xf3;
		if (h->size == 2)
			p[n++] = 0x66;
		p[n++] = op_b[h->form] + (h->size > 1);
		if (h->form == IN_IMM || h->form == OUT_IMM)
			p[n++] = h->imm;
		break;
	case K_RDPMC:
		p[n++] = 0x0f;
		p[n++] = 0x33;
		break;
	case K_HCALL:
		p[n++] = 0x0f;
		p[n++] = 0x01;
		p[n++] = is_amd ? 0xd9 : 0xc1;
		break;
	}
	return n;
}

/* ---- the model */

struct l1cfg {
	bool gp, rdpmc;
	enum l1_io io;
};

static bool iopm_bit(u32 port)
{
	return iopm_hva[port / 8] & (1 << (port % 8));
}

/* Does L1 intercept an access of @size to @port? */
static bool l1_io_intercepts(const struct l1cfg *c, u16 port, u8 size)
{
	u32 p;

	if (c->io == IO_NONE)
		return false;
	if (c->io == IO_ALL)
		return true;
	for (p = port; p < (u32)port + size; p++)
		if (iopm_bit(p))
			return true;
	return false;
}

static bool is_pseudo(u32 ecx)
{
	return ecx >= 0x10000 && ecx <= 0x10002;
}

#define E(o, alt, rule) ((struct expect){ (o), (alt), (rule) })

static struct expect model(const struct hop *h, int level, const struct l1cfg *c)
{
	bool bd = (features & F_BD) || param_bd, nested = features & F_NESTED;
	bool hc = features & F_HC;
	bool denied = h->cpl > h->iopl;
	bool dx = h->form >= IN_DX;
	bool bdport = dx && (h->port == BD_PORT || h->port == RPC_PORT);
	bool magic = (u32)h->in[0] == MAGIC;
	enum outcome gp = level == 2 && c->gp ? O_L1_GP : O_GP;
	u32 ecx = (u32)h->in[2];
	bool pseudo = is_pseudo(ecx), valid = ecx < nr_gp;
	bool icpt;

	switch (h->kind) {
	case K_IO:
		/* 7.38: the backdoor ports at any CPL, whatever the TSS says */
		if (level == 1)
			return !denied ? E(O_L0_IO, 0, R_L1_IO_PERMITTED) :
			       bd && bdport ? E(O_L0_IO, 0, R_L1_IO_BACKDOOR) :
			       E(O_GP, 0, R_L1_IO_DENIED);
		icpt = l1_io_intercepts(c, h->port, h->size);
		if (!denied)
			return icpt ? E(O_L1_IO, 0, R_L2_IO_PERMITTED_L1) :
				      E(O_L0_IO, 0, R_L2_IO_PERMITTED_L0);
		/* NESTED_BACKDOOR: the #GP of L2 at CPL3 that L0 keeps */
		if (nested && bdport && magic && !icpt)
			return h->cpl == 3 ? E(O_L0_IO, 0, R_L2_NESTED_BACKDOOR) :
					     E(gp, 0, R_L2_NESTED_CPL12);
		/*
		 * "Without the feature ... on VMX, KVM emulates it if it is an
		 * IN, OUT, INS or OUTS on a backdoor port (any EAX, any CPL) ...
		 * except an access on which L1's I/O controls ... would exit:
		 * ... L2 gets the #GP."
		 */
		if (!nested && bd && !is_amd && bdport && !c->gp)
			return icpt ? E(gp, 0, R_L2_VMX_LEGACY_L1) :
				      E(O_L0_IO, 0, R_L2_VMX_LEGACY_L0);
		return E(gp, 0, R_L2_IO_DENIED);
	case K_RDPMC:
		/* CR4.PCE is clear: CPL 1-3 alike, but for the nested backdoor */
		if (h->cpl) {
			if (level == 1)
				return bd && pseudo ? E(O_PMC, 0, R_PMC_CPL3_BACKDOOR) :
						      E(O_GP, 0, R_PMC_CPL3_GP);
			if (nested && pseudo && !c->rdpmc)
				return h->cpl == 3 ? E(O_PMC, 0, R_PMC_L2_NESTED) :
						     E(gp, 0, R_PMC_L2_NESTED_CPL12);
			return E(gp, 0, R_PMC_L2_CPL3_GP);
		}
		if (level == 2 && c->rdpmc) {
			/* AMD: #GP for unsupported indices before the intercept (TCG: after) */
			if (is_amd && !valid)
				return E(gp, O_L1_RDPMC, R_PMC_AMD_ALT);
			return E(O_L1_RDPMC, 0, R_PMC_L1_INTERCEPT);
		}
		if (pseudo) {
			if (is_amd && level == 2)
				return E(gp, bd ? O_PMC : O_NONE, R_PMC_AMD_ALT);
			if (bd || (nr_gp && !is_amd))
				return E(O_PMC, 0, R_PMC_PSEUDO_CPL0);
			return E(gp, 0, R_PMC_PSEUDO_CPL0_GP);
		}
		return valid ? E(O_PMC, 0, R_PMC_COUNTER) : E(gp, 0, R_PMC_INVALID);
	case K_HCALL:
		if (level == 2)
			return E(O_L1_CALL, 0, R_HC_L2);
		return hc && magic ? E(O_HCALL_EXIT, 0, R_HC_VMWARE) : E(O_KVM_HCALL, 0, R_HC_KVM);
	}
	return E(O_NONE, 0, R_HC_KVM);
}

/* ---- L0 exits */

static struct hop *cur_op(struct kvm_vcpu *vcpu, u32 *cur)
{
	*cur = READ_ONCE(tdh->cur);
	if (*cur >= tdh->nops) {
		printf("%s: iteration %" PRIu64 " batch %d: exit %u outside an op (cur %u)\n",
		       PROG, iteration, batch_nr, vcpu->run->exit_reason, *cur);
		exit(1);
	}
	return &hops[*cur];
}

static void handle_io(struct kvm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	u8 *data = (u8 *)run + run->io.data_offset;
	u32 cur, k, n = run->io.size * run->io.count;
	struct hop *h = cur_op(vcpu, &cur);
	struct l0rec *r = &l0[cur];

	if (!r->nio++)
		counters[C_L0_EXITS].n++;
	r->count += run->io.count;
	r->port = run->io.port;
	r->dir = run->io.direction;
	r->size = run->io.size;
	r->flags_or |= run->flags;
	r->flags_and &= run->flags;
	if (run->io.direction == KVM_EXIT_IO_OUT) {
		for (k = 0; k < n && r->out_len < BUF_SLOT; k++)
			r->out[r->out_len++] = data[k];
		return;
	}
	for (k = 0; k < n; k++)
		data[k] = ans_byte(h->answer, r->in_off + k);
	r->in_off += n;
}

static void handle_vmware(struct kvm_vcpu *vcpu)
{
	struct kvm_vmware_hcall *e = &vcpu->run->vmware.hcall;
	u32 cur;
	struct hop *h = cur_op(vcpu, &cur);
	struct l0rec *r = &l0[cur];
	u64 *regs = (u64 *)&e->rax;
	int i;

	if (!r->nhc++)
		counters[C_L0_EXITS].n++;
	if (vcpu->run->vmware.type != KVM_EXIT_VMWARE_HCALL)
		r->bad = "type";
	else if (e->longmode != 1)
		r->bad = "longmode";
	else if (e->cpl != h->cpl)
		r->bad = "cpl";
	for (i = 0; i < 7; i++)
		if (regs[i] != h->in[i])
			r->bad = "registers";
	if (h->inject) {
		e->exception.inject = 1;
		e->exception.vector = h->inject == INJ_UD ? UD_VECTOR : GP_VECTOR;
		e->exception.error_code_valid = h->inject == INJ_GP;
		e->exception.error_code = h->inj_ec;
		counters[C_HC_INJECT].n++;
		return;
	}
	e->result = h->answer;
	for (i = 1; i < 7; i++)
		if (!(h->hc_keep & BIT(i)))
			regs[i] = h->hc_out[i];
}

/* ---- the check */

static enum outcome observed(const struct hop *h, int i)
{
	const struct l0rec *r = &l0[i];
	const struct gl1 *e = &tdh->l1[i];
	const struct gres *res = &tdh->res[i];
	int n = !!r->nio + !!r->nhc + !!e->gp + !!e->io + !!e->rdpmc + !!e->call + !!e->other;

	if (n > 1)
		return O_MULTI;
	if (r->nio)
		return O_L0_IO;
	if (r->nhc)
		return O_HCALL_EXIT;
	if (e->gp)
		return O_L1_GP;
	if (e->io)
		return O_L1_IO;
	if (e->rdpmc)
		return O_L1_RDPMC;
	if (e->call)
		return O_L1_CALL;
	if (e->other)
		return O_L1_OTHER;
	if (res->vector == GP_VECTOR)
		return O_GP;
	if (res->vector)
		return O_OTHER_VECTOR;
	if (h->kind == K_RDPMC)
		return O_PMC;
	if (h->kind == K_HCALL)
		return O_KVM_HCALL;
	return O_NONE;
}

static u64 in_reg(u64 rax, u8 size, u64 v)
{
	if (size == 1)
		return (rax & ~0xffull) | (v & 0xff);
	if (size == 2)
		return (rax & ~0xffffull) | (v & 0xffff);
	return v & 0xffffffffull;
}

static const char *regs_except(const struct gres *res, const u64 *want, char *buf, size_t len)
{
	static const char * const nm[] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp" };
	int k;

	for (k = 0; k < 7; k++) {
		if (res->out[k] != want[k]) {
			snprintf(buf, len, "%s 0x%llx, expected 0x%llx", nm[k],
				 (unsigned long long)res->out[k], (unsigned long long)want[k]);
			return buf;
		}
	}
	return NULL;
}

/* The details of an op whose outcome matched; NULL if right. */
static const char *check_details(const struct hop *h, int i, int level, enum outcome o,
				 const struct stamp *lo, const struct stamp *hi,
				 char *buf, size_t len)
{
	const struct l0rec *r = &l0[i];
	const struct gl1 *e = &tdh->l1[i];
	const struct gres *res = &tdh->res[i];
	u64 slot = code_gva + SLOT_SIZE * i, want[7], v, a, b;
	u8 *mem = buf_hva + BUF_SLOT * i;
	bool in = h->kind == K_IO && (h->form == IN_IMM || h->form == IN_DX || h->form == INS);
	u32 k, bytes = h->count * h->size, ecx = (u32)h->in[2];
	int x;

	memcpy(want, h->in, sizeof(want));
	switch (o) {
	case O_L0_IO:
		if (r->port != h->port || r->size != h->size ||
		    r->dir != (in ? KVM_EXIT_IO_IN : KVM_EXIT_IO_OUT) || r->count != h->count)
			return "KVM_EXIT_IO port/size/direction/count wrong";
		if (h->form < INS && r->nio != 1)
			return "more than one KVM_EXIT_IO for IN/OUT";
		if (level == 2 ? !(r->flags_and & KVM_RUN_X86_GUEST_MODE) :
				 (r->flags_or & KVM_RUN_X86_GUEST_MODE))
			return level == 2 ? "KVM_RUN_X86_GUEST_MODE missing" :
					    "KVM_RUN_X86_GUEST_MODE set for L1";
		if (res->vector)
			return "vector after KVM_EXIT_IO";
		switch (h->form) {
		case IN_IMM:
		case IN_DX:
			v = 0;
			for (k = 0; k < h->size; k++)
				v |= (u64)ans_byte(h->answer, k) << (8 * k);
			want[0] = in_reg(h->in[0], h->size, v);
			break;
		case OUT_IMM:
		case OUT_DX:
			if (r->out_len != h->size || memcmp(r->out, &h->in[0], h->size))
				return "OUT data is not AL/AX/EAX";
			break;
		case INS:
			for (k = 0; k < bytes; k++)
				if (mem[k] != ans_byte(h->answer, k))
					return "INS: memory at RDI is not the answer";
			want[5] += bytes;
			if (h->rep)
				want[2] = 0;
			break;
		case OUTS:
			if (r->out_len != bytes || memcmp(r->out, mem, bytes))
				return "OUTS: data is not the memory at RSI";
			want[4] += bytes;
			if (h->rep)
				want[2] = 0;
			break;
		default:
			break;
		}
		return regs_except(res, want, buf, len);
	case O_HCALL_EXIT:
		if (r->bad) {
			snprintf(buf, len, "KVM_EXIT_VMWARE field wrong: %s", r->bad);
			return buf;
		}
		if (r->nhc != 1)
			return "more than one KVM_EXIT_VMWARE";
		if (h->inject) {
			if (res->vector != (h->inject == INJ_UD ? UD_VECTOR : GP_VECTOR) ||
			    (h->inject == INJ_GP && res->error_code != h->inj_ec))
				return "injected exception not delivered as requested";
			return regs_except(res, want, buf, len);
		}
		want[0] = h->answer;
		for (x = 1; x < 7; x++)
			if (!(h->hc_keep & BIT(x)))
				want[x] = h->hc_out[x];
		return regs_except(res, want, buf, len);
	case O_KVM_HCALL:
		want[0] = h->cpl ? (u64)-KVM_EPERM : (u64)-KVM_ENOSYS;
		return regs_except(res, want, buf, len);
	case O_PMC:
		v = (res->out[3] << 32) | (u32)res->out[0];
		if (res->out[0] >> 32 || res->out[3] >> 32)
			return "RDPMC: upper halves of RAX/RDX not cleared";
		want[0] = res->out[0];
		want[3] = res->out[3];
		if (regs_except(res, want, buf, len))
			return buf;
		if (!is_pseudo(ecx))
			return NULL;
		if (ecx == 0x10000) {
			a = lo->tsc;
			b = hi->tsc;
		} else if (ecx == 0x10001) {
			a = lo->boot_ns;
			b = hi->boot_ns;
		} else {
			/*
			 * Boot time plus the VM's kvmclock offset, which is
			 * only bounded through KVM_GET_CLOCK (kvmclock follows
			 * the raw clock, boot time the adjusted one): allow
			 * 100 us + 0.1% of the VM's apparent time for that.
			 */
			a = lo->boot_ns + lo->offset_min;
			b = hi->boot_ns + lo->offset_max;
			a -= min(a, 100000 + a / 1000);
			b += 100000 + b / 1000;
		}
		if (v < a || v > b) {
			snprintf(buf, len, "pseudo-PMC 0x%llx outside [0x%llx, 0x%llx]",
				 (unsigned long long)v, (unsigned long long)a,
				 (unsigned long long)b);
			return buf;
		}
		return NULL;
	case O_GP:
		if (res->error_code)
			return "#GP error code not 0";
		return regs_except(res, want, buf, len);
	case O_L1_GP:
		if (e->error_code)
			return "L1 #GP exit: error code not 0";
		return e->rip == slot ? NULL : "L1 #GP exit: RIP not at the instruction";
	case O_L1_RDPMC:
	case O_L1_CALL:
		return e->rip == slot ? NULL : "L1 exit: RIP not at the instruction";
	case O_L1_IO:
		if (e->rip != slot)
			return "L1 I/O exit: RIP not at the instruction";
		if (is_amd) {
			if ((e->io_info >> 16) != h->port || !!(e->io_info & 1) != in ||
			    ((e->io_info >> 4) & 7) != (h->size == 4 ? 4 : h->size) ||
			    !!(e->io_info & 4) != (h->form >= INS))
				return "L1 IOIO exit: EXITINFO1 does not match";
		} else {
			if ((e->io_info >> 16) != h->port || !!(e->io_info & 8) != in ||
			    (e->io_info & 7) + 1 != h->size ||
			    !!(e->io_info & 16) != (h->form >= INS))
				return "L1 I/O exit: qualification does not match";
		}
		return NULL;
	default:
		return NULL;
	}
}

static void describe(const struct hop *h, int i, int level, const struct l1cfg *c,
		     char *buf, size_t len)
{
	static const char * const io_name[] = { "none", "all", "bitmap" };
	static const char * const kind_name[] = { "io", "rdpmc", "hcall" };

	snprintf(buf, len,
		 "iteration %" PRIu64 " batch %d op %d: features 0x%llx%s L%d%s%s%s%s %s%s%s size %u port 0x%x count %u cpl %u iopl %u rep %u rax 0x%llx rbx 0x%llx rcx 0x%llx rdx 0x%llx rsi 0x%llx rdi 0x%llx rbp 0x%llx answer 0x%llx inject %u/0x%x",
		 iteration, batch_nr, i, (unsigned long long)features, param_bd ? " (+param)" : "",
		 level, level == 2 ? " l1[gp " : "", level == 2 ? (c->gp ? "1" : "0") : "",
		 level == 2 ? (c->rdpmc ? " rdpmc 1 io " : " rdpmc 0 io ") : "",
		 level == 2 ? io_name[c->io] : "",
		 kind_name[h->kind], h->kind == K_IO ? " " : "",
		 h->kind == K_IO ? form_name[h->form] : "", h->size, h->port, h->count, h->cpl,
		 h->iopl, h->rep, (unsigned long long)h->in[0], (unsigned long long)h->in[1],
		 (unsigned long long)h->in[2], (unsigned long long)h->in[3],
		 (unsigned long long)h->in[4], (unsigned long long)h->in[5],
		 (unsigned long long)h->in[6], (unsigned long long)h->answer, h->inject, h->inj_ec);
}

static void check_batch(int level, const struct l1cfg *c, const struct stamp *lo,
			const struct stamp *hi)
{
	u32 i;

	for (i = 0; i < tdh->nops; i++) {
		const struct hop *h = &hops[i];
		struct expect ex = model(h, level, c);
		enum outcome o = observed(h, i);
		const char *err = NULL;
		char buf[160], desc[640];

		guest_ops++;
		rule_count[ex.rule]++;
		counters[C_O_BASE + o].n++;
		if (o != ex.o && (ex.alt == O_NONE || o != ex.alt))
			err = "outcome";
		else if (ex.alt != O_NONE && o == ex.alt)
			counters[C_AMD_ALT].n++;
		if (!err)
			err = check_details(h, i, level, o, lo, hi, buf, sizeof(buf));
		if (!err)
			continue;
		mismatches++;
		if (prints++ >= MAX_PRINTS)
			continue;
		describe(h, i, level, c, desc, sizeof(desc));
		printf("%s: MISMATCH %s\n%s:   rule \"%s\": expected %s%s%s, got %s: %s (vector %llu ec 0x%llx, L0 io %u hcall %u, L1 gp %u io %u rdpmc %u call %u other %u/0x%x)\n",
		       PROG, desc, PROG, rule_name[ex.rule], outcome_name[ex.o], ex.alt ? " or " : "",
		       ex.alt ? outcome_name[ex.alt] : "", outcome_name[o],
		       strcmp(err, "outcome") ? err : "wrong outcome",
		       (unsigned long long)tdh->res[i].vector,
		       (unsigned long long)tdh->res[i].error_code, l0[i].nio, l0[i].nhc,
		       tdh->l1[i].gp, tdh->l1[i].io, tdh->l1[i].rdpmc, tdh->l1[i].call,
		       tdh->l1[i].other, tdh->l1[i].other_reason);
	}
}

/* Run until L1's next GUEST_SYNC (or DONE); answer every other exit. */
static bool run_until_sync(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	for (;;) {
		struct kvm_run *run = vcpu->run;

		vcpu_run(vcpu);
		if (run->exit_reason == KVM_EXIT_IO && run->io.port != UCALL_PORT) {
			handle_io(vcpu);
			continue;
		}
		if (run->exit_reason == KVM_EXIT_VMWARE) {
			handle_vmware(vcpu);
			continue;
		}
		if (run->exit_reason != KVM_EXIT_IO) {
			printf("%s: MISMATCH iteration %" PRIu64 " batch %d op %u: unexpected exit %u (%s)\n",
			       PROG, iteration, batch_nr, READ_ONCE(tdh->cur), run->exit_reason,
			       exit_reason_str(run->exit_reason));
			mismatches++;
			return false;
		}
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			return true;
		case UCALL_DONE:
			return false;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
	}
}

static void run_vm(void)
{
	static const u64 choices[] = { 0, F_BD, F_HC, F_BD | F_HC, F_BD | F_NESTED,
				       F_BD | F_HC | F_NESTED, F_NESTED, F_NESTED | F_HC };
	/* every combination once per 8 VMs, from a random start */
	static u64 start = ~0ull;
	u64 want;
	vm_vaddr_t nested_gva, l2_stack, iopm_gva, td_gva = (vm_vaddr_t)&td;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int b, r, v;

	if (start == ~0ull)
		start = fuzz_below(&rng, ARRAY_SIZE(choices));
	want = choices[(start + iteration) % ARRAY_SIZE(choices)];
	vm = vm_create(1);
	counters[C_VMS].n++;
	features = 0;
	if (want) {
		/* NESTED after BACKDOOR in an earlier call, sometimes */
		if ((want & F_NESTED) && (want & F_BD) && fuzz_chance(&rng, 1, 2) &&
		    __vm_enable_cap(vm, KVM_CAP_X86_VMWARE, want & ~F_NESTED)) {
			printf("%s: MISMATCH iteration %" PRIu64 ": KVM_ENABLE_CAP 0x%llx failed: errno %d\n",
			       PROG, iteration, (unsigned long long)(want & ~F_NESTED), errno);
			mismatches++;
		}
		r = __vm_enable_cap(vm, KVM_CAP_X86_VMWARE, want);
		if ((want & F_NESTED) && !(want & F_BD) && !param_bd) {
			if (!(r == -1 && errno == EINVAL)) {
				printf("%s: MISMATCH iteration %" PRIu64 ": KVM_ENABLE_CAP 0x%llx (NESTED without BACKDOOR) returned %d errno %d, expected -EINVAL\n",
				       PROG, iteration, (unsigned long long)want, r, errno);
				mismatches++;
				features = r ? 0 : want;
			} else {
				counters[C_CAP_EINVAL].n++;
			}
		} else if (r) {
			printf("%s: MISMATCH iteration %" PRIu64 ": KVM_ENABLE_CAP 0x%llx failed: errno %d\n",
			       PROG, iteration, (unsigned long long)want, errno);
			mismatches++;
		} else {
			counters[C_CAP_OK].n++;
			features = want;
		}
	}
	vcpu = vm_vcpu_add(vm, 0, l1_guest_code);
	/* 7.38: "only before vCPUs are created" (-EBUSY); 0 is -EINVAL */
	want = fuzz_chance(&rng, 1, 2) ? 0 : fuzz_pick(&rng, choices);
	r = __vm_enable_cap(vm, KVM_CAP_X86_VMWARE, want);
	if (!(r == -1 && errno == (want ? EBUSY : EINVAL))) {
		printf("%s: MISMATCH iteration %" PRIu64 ": KVM_ENABLE_CAP 0x%llx after vCPU creation returned %d errno %d, expected %s\n",
		       PROG, iteration, (unsigned long long)want, r, errno,
		       want ? "-EBUSY" : "-EINVAL");
		mismatches++;
	} else {
		counters[want ? C_CAP_EBUSY : C_CAP_ZERO].n++;
	}
	if (is_amd)
		vcpu_alloc_svm(vm, &nested_gva);
	else
		vcpu_alloc_vmx(vm, &nested_gva);
	l2_stack = vm_vaddr_alloc_pages(vm, 2) + 2 * PAGE_SIZE;
	iopm_gva = vm_vaddr_alloc_pages(vm, 3);
	code_gva = vm_vaddr_alloc_pages(vm, MAX_OPS * SLOT_SIZE / PAGE_SIZE);
	buf_gva = vm_vaddr_alloc_pages(vm, MAX_OPS * BUF_SLOT / PAGE_SIZE);
	iopm_hva = addr_gva2hva(vm, iopm_gva);
	code_hva = addr_gva2hva(vm, code_gva);
	buf_hva = addr_gva2hva(vm, buf_gva);
	tdh = addr_gva2hva(vm, td_gva);
	{
		u64 *gdt = addr_gva2hva(vm, vm->arch.gdt);
		struct idt_entry *idt = addr_gva2hva(vm, vm->arch.idt);
		vm_vaddr_t rsp0 = vm_vaddr_alloc_page(vm) + PAGE_SIZE;

		gdt[USER_CS >> 3] = 0x00affb000000ffffull;
		gdt[USER_DS >> 3] = 0x00cff3000000ffffull;
		gdt[CPL1_CS >> 3] = 0x00afbb000000ffffull;
		gdt[CPL1_DS >> 3] = 0x00cfb3000000ffffull;
		gdt[CPL2_CS >> 3] = 0x00afdb000000ffffull;
		gdt[CPL2_DS >> 3] = 0x00cfd3000000ffffull;
		idt[RETURN_VECTOR].dpl = 3;
		memcpy(addr_gva2hva(vm, vm->arch.tss) + 4, &rsp0, sizeof(rsp0));
		/*
		 * The I/O map base beyond the TSS limit (0x67): no port is
		 * allowed at CPL > IOPL (with base 0, the TSS's own bytes
		 * would be the bitmap).
		 */
		*(u16 *)(addr_gva2hva(vm, vm->arch.tss) + 102) = 0x68;
		vm_install_exception_handler(vm, RETURN_VECTOR, op_return_handler);
		for (v = 0; v < 32; v++)
			if (v != 2 && v != 8 && v != 18)
				vm_install_exception_handler(vm, v, op_return_handler);
	}
	vm_set_user_bit(vm);
	memset(tdh, 0, sizeof(*tdh));
	tdh->iopm_gpa = addr_gva2gpa(vm, iopm_gva);
	sync_global_to_guest(vm, vmw_is_amd);
	vcpu_args_set(vcpu, 2, nested_gva, l2_stack);

	TEST_ASSERT(run_until_sync(vcpu), "L1 did not reach its first sync");
	for (b = 0; b < FUZZ_BATCHES; b++) {
		int level = fuzz_chance(&rng, 1, 2) ? 2 : 1;
		struct l1cfg c = {};
		struct stamp lo, hi;
		u32 i, n = MAX_OPS;

		batch_nr = b;
		if (level == 2) {
			/* an L1 exit is slow on Bochs: #GP intercepted a quarter of the time */
			c.gp = fuzz_chance(&rng, 1, 4);
			c.rdpmc = fuzz_chance(&rng, 1, 3);
			i = fuzz_below(&rng, 5);
			c.io = i < 2 ? IO_NONE : i < 4 ? IO_BITMAP : IO_ALL;
			if (c.io == IO_ALL)
				memset(iopm_hva, 0xff, 3 * PAGE_SIZE);
			for (i = 0; c.io == IO_BITMAP && i < 3 * PAGE_SIZE / 8; i++)
				((u64 *)iopm_hva)[i] = fuzz_u64(&rng);
			/* the backdoor ports 0x5658-0x565b let through half of the time */
			for (i = BD_PORT; c.io == IO_BITMAP && i < BD_PORT + 4; i++)
				if (fuzz_chance(&rng, 1, 2))
					iopm_hva[i / 8] &= ~(1 << (i % 8));
			counters[C_L2_BATCH].n++;
		} else {
			counters[C_L1_BATCH].n++;
		}
		memset(l0, 0, sizeof(l0));
		memset(tdh->l1, 0, sizeof(tdh->l1));
		memset(tdh->res, 0, sizeof(tdh->res));
		for (i = 0; i < MAX_OPS * BUF_SLOT / 8; i++)
			((u64 *)buf_hva)[i] = fuzz_u64(&rng);
		for (i = 0; i < n; i++) {
			struct hop *h = &hops[i];
			struct gop *g = &tdh->ops[i];
			u8 *p = code_hva + SLOT_SIZE * i;

			gen_op(h, level);
			if (h->kind == K_IO && h->form == INS)
				h->in[5] = buf_gva + BUF_SLOT * i;
			if (h->kind == K_IO && h->form == OUTS)
				h->in[4] = buf_gva + BUF_SLOT * i;
			memset(p, 0xcc, SLOT_SIZE);
			h->len = encode(h, p);
			p[h->len] = 0xcd;
			p[h->len + 1] = RETURN_VECTOR;
			g->code = code_gva + SLOT_SIZE * i;
			g->resume = g->code + h->len;
			g->cs = cpl_cs[h->cpl];
			g->ss = cpl_cs[h->cpl] + 8;
			g->rflags = 2 | ((u64)h->iopl << 12);
			memcpy(g->in, h->in, sizeof(g->in));
			l0[i].flags_and = ~0u;
		}
		tdh->nops = n;
		tdh->level = level;
		tdh->l1_gp = c.gp;
		tdh->l1_rdpmc = c.rdpmc;
		tdh->l1_io = c.io;
		tdh->cur = 0;
		take_stamp(vm, &lo);
		if (!run_until_sync(vcpu)) {
			printf("%s: iteration %" PRIu64 " batch %d: L1 stopped\n", PROG, iteration, b);
			exit(1);
		}
		take_stamp(vm, &hi);
		check_batch(level, &c, &lo, &hi);
	}
	tdh->quit = 1;
	TEST_ASSERT(!run_until_sync(vcpu), "L1 did not finish");
	if (iteration % 10 == 9 || iteration + 1 == total_iterations)
		printf("%s: progress iteration %" PRIu64 " features 0x%llx l0-exits %" PRIu64 " l1gp %" PRIu64 " l1io %" PRIu64 " l1call %" PRIu64 " l1rdpmc %" PRIu64 " gp %" PRIu64 " l1batches %" PRIu64 "\n",
		       PROG, iteration, (unsigned long long)features, counters[C_L0_EXITS].n,
		       counters[C_O_BASE + O_L1_GP].n, counters[C_O_BASE + O_L1_IO].n,
		       counters[C_O_BASE + O_L1_CALL].n, counters[C_O_BASE + O_L1_RDPMC].n,
		       counters[C_O_BASE + O_GP].n, counters[C_L1_BATCH].n);
	kvm_vm_free(vm);
}

int main(int argc, char *argv[])
{
	struct fuzz_opts o = fuzz_parse(argc, argv, PROG, DEFAULT_SEED, DEFAULT_ITERATIONS);
	struct timespec t0, t1;
	double secs;

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_X86_VMWARE));
	TEST_REQUIRE(kvm_cpu_has(X86_FEATURE_VMX) || kvm_cpu_has(X86_FEATURE_SVM));
	is_amd = kvm_cpu_has(X86_FEATURE_SVM);
	vmw_is_amd = is_amd;
	param_bd = get_kvm_param_bool("enable_vmware_backdoor");
	if (get_kvm_param_bool("enable_pmu"))
		nr_gp = is_amd ? (kvm_cpu_has(FUZZ_FEATURE_PERFCTR_CORE) ? 6 : 4) :
			kvm_cpu_property(X86_PROPERTY_PMU_NR_GP_COUNTERS);
	/* 7.38: all three bits when nested virtualization is offered */
	if (kvm_check_cap(KVM_CAP_X86_VMWARE) != (F_BD | F_HC | F_NESTED)) {
		printf("%s: MISMATCH KVM_CHECK_EXTENSION(KVM_CAP_X86_VMWARE) = 0x%x, expected 0x%llx\n",
		       PROG, kvm_check_cap(KVM_CAP_X86_VMWARE),
		       (unsigned long long)(F_BD | F_HC | F_NESTED));
		mismatches++;
	}
	printf("%s: %s, kvm.enable_vmware_backdoor=%d, vPMU GP counters %u\n", PROG,
	       is_amd ? "SVM" : "VMX", param_bd, nr_gp);
	fuzz_rng_seed(&rng, o.seed);
	total_iterations = o.iterations;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (iteration = 0; iteration < o.iterations; iteration++)
		run_vm();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	fuzz_print_counters(PROG, counters, NR_COUNTERS);
	for (int i = 0; i < NR_RULES; i++)
		printf("%s:   rule: %-42s %" PRIu64 "\n", PROG, rule_name[i], rule_count[i]);
	printf("%s: %.1f s, %.0f guest-ops/s\n", PROG, secs, guest_ops / (secs > 0 ? secs : 1));
	fuzz_summary(PROG, &o, guest_ops, mismatches);
	return mismatches ? 1 : 0;
}
