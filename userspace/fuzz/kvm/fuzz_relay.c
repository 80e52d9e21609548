// SPDX-License-Identifier: GPL-2.0-only
/*
 * Guest fuzzer for KVM_CAP_HYPERV_NESTED_RELAY (api.rst 7.37).
 *
 * L1 is a Hyper-V-like hypervisor (guest OS ID, VP assist page, eVMCS on
 * VMX, VMCB enlightenments on SVM) that runs one L2 with nested paging
 * (EPT/NPT: two nested page table roots) or without it (shadow paging).
 * Each iteration is one batch of random Hyper-V hypercalls: first a few made
 * by L1 itself, then the rest by L2.  The VMM draws everything: per VM the
 * relay flags (POST_MESSAGE/SIGNAL_EVENT/DIRECT_GRANT, or the capability
 * not enabled), SynIC on/off, enforced Hyper-V CPUID without the post or
 * signal privilege, HV_X64_NESTED_DIRECT_FLUSH in L1's CPUID; per batch
 * L1's guest OS ID (set or 0), the TLFS grant (inter_partition_comm), the
 * direct grant (directhypercall, nested_flush_hypercall), nested paging on
 * or off, which root, the VPID/ASID, and L2's mode (64-bit CPL0, 64-bit
 * CPL3, or compatibility mode CPL0 with the 32-bit EDX:EAX hypercall ABI);
 * per call the input value (HvPostMessage 0x5c, HvSignalEvent 0x5d, the L2
 * TLB flush 0x0002/0x0003, HvNotifyLongSpinWait 0x0008, codes KVM does not
 * handle; the nested bit 31, the fast bit 16, rep count/start, variable
 * header size and reserved bits), the input (aligned, misaligned,
 * page-crossing, through a non-identity alias, through a 2 MiB nested page,
 * not mapped by L1, mapped without read permission at the PTE, the 2 MiB
 * PDE or a PDE above the PTE, mapped to an L1 GPA without a memslot, far
 * outside guest memory, random), the HvSignalEvent value (connection with or
 * without an eventfd, flag number, reserved bits), the output GPA, RAX, and
 * the answers of L1 and of userspace.
 *
 * The reference model (expect_l1()/expect_l2()) is api.rst 7.37 plus KVM's
 * pre-existing Hyper-V hypercall rules for L1 and for the L2 TLB flush that
 * L1 grants directly.  An L2 call ends:
 *  - relayed: KVM_EXIT_HYPERV/KVM_EXIT_HYPERV_HCALL with KVM_RUN_X86_GUEST_MODE,
 *    input, params[0] (L1 GPA of the post, or the signal value), params[1] 0,
 *    nested_root/nested_tag/nested_flags; L2 gets userspace's answer;
 *  - kept and failed in L0 with a HV_STATUS (alignment 4, unreadable
 *    input 5, no memslot for a signal input 4, signal reserved bits 3), or
 *    completed in L0 (signal to an eventfd, counted on the eventfd);
 *  - the L2 TLB flush kept by L0 on the direct grant (#UD to L2, intercepted
 *    by L1, at CPL3);
 *  - reflected to L1: L1 sees a VMCALL/VMMCALL exit with L2's registers as
 *    L2 set them, and L2 gets L1's answer.
 * L1's own calls: the nested bit (a reserved bit for L1) fails with
 * HV_STATUS_INVALID_HYPERCALL_INPUT before any exit, HvPostMessage and
 * HvSignalEvent without an eventfd exit without GUEST_MODE and with the
 * nested_* fields 0, and with the guest OS ID 0 the call is a KVM hypercall
 * (-KVM_ENOSYS).  L2's RCX/RDX/R8 (and the 32-bit ABI registers) must be
 * unchanged after every call.
 *
 * Replay: nestkit-fuzz-relay --seed S --iterations N (both printed first).
 * Not covered: the 32-bit ABI from L1 itself (it would need a compat code
 * segment in L1's GDT; the ABI is covered from L2), L1 at CPL3, the memory
 * form of the L2 TLB flush 0x0003 beyond its control checks.
 */
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "nested_demo.h"
#include "test_util.h"
#include "hyperv.h"
#include "evmcs.h"

#define PROG			"nestkit-fuzz-relay"
#define DEFAULT_SEED		0x72656c6179ull	/* "relay" */
#define DEFAULT_ITERATIONS	400
#define BATCH			256	/* calls per iteration */
#define BATCHES_PER_VM		25

#define L2_STACK_SIZE		512

#define NESTED			BIT_ULL(31)
#define FAST			BIT_ULL(16)
#define CODE_MASK		0xffffull
#define VARHEAD_MASK		GENMASK_ULL(26, 17)
#define REP_CNT_MASK		GENMASK_ULL(43, 32)
#define REP_IDX_MASK		GENMASK_ULL(59, 48)
#define RSVD_MASK		(GENMASK_ULL(31, 27) | GENMASK_ULL(47, 44) | GENMASK_ULL(63, 60))

#define C_POST			0x005c
#define C_SIGNAL		0x005d
#define C_FLUSH_SPACE		0x0002
#define C_FLUSH_LIST		0x0003
#define C_SPIN_WAIT		0x0008

#define ST_SUCCESS		0
#define ST_INVALID_CODE		2
#define ST_INVALID_INPUT	3
#define ST_INVALID_ALIGNMENT	4
#define ST_INVALID_PARAMETER	5
#define ST_ACCESS_DENIED	6

#define CONN_EVENTFD		5
#define CONN_USERSPACE		6
#define CONN_MASK		0xffffffull
#define FLAG_MASK		0xffff00000000ull

#ifndef SZ_2M
#define SZ_2M			0x200000ull
#endif
#ifndef SZ_1G
#define SZ_1G			0x40000000ull
#endif
/* L2 GPAs above guest memory (see build_tdp()). */
#define ALIAS_GPA		0x100000000ull		/* -> data page */
#define UNMAPPED_GPA		(ALIAS_GPA + PAGE_SIZE)
#define NOREAD_GPA		(ALIAS_GPA + 2 * PAGE_SIZE)
#define NOSLOT_ALIAS_GPA	(ALIAS_GPA + 3 * PAGE_SIZE)	/* -> NOSLOT_L1_GPA */
#define LARGE_GPA		(ALIAS_GPA + SZ_2M)
#define NOREAD_LARGE_GPA	(ALIAS_GPA + 2 * SZ_2M)
#define NOREAD_PDE_GPA		(ALIAS_GPA + SZ_1G)
/* An L1 GPA that no memslot backs. */
#define NOSLOT_L1_GPA		0xc0000000ull

/* L2's mode for a batch */
enum { M_LONG, M_CPL3, M_COMPAT, NR_MODES };
/* L2's requests to L1 (td.req), at a VMCALL with RCX/EAX 0 */
enum { REQ_NONE, REQ_COMPAT, REQ_LONG, REQ_DONE };
/* What L1 saw for an L2 call (td.l1_kind) */
enum { K_NONE, K_HCALL, K_HCALL_BADREGS, K_UD };

struct op {
	u64 control, input, output, rax;
	u64 l1_answer;		/* what L1 returns for a reflected call */
};

/* One call in compatibility mode, as the 32-bit loop reads it. */
struct c32op {
	u32 eax, edx, ecx, ebx, esi, edi;	/* in */
	u32 res_eax, res_edx, bad, pad;		/* out */
};

struct test_data {
	/* the batch, written by the VMM */
	u32 nops, n_l1;		/* ops [0, n_l1) by L1, [n_l1, nops) by L2 */
	u32 mode, np, os_id, tlfs, direct_hc, flush_hc, root_idx, tag;
	u32 c32_first, c32_end;	/* guest addresses of c32[n_l1] and c32[nops] */
	u64 root[2];
	struct op ops[BATCH];
	struct c32op c32[BATCH];
	/* written by the guests */
	u32 cur, req;
	u64 result[BATCH];
	u32 l1_kind[BATCH];
	u32 regbad[BATCH];
};

static struct test_data td;
static bool is_amd;
static bool vpid;

/* ---- L2 ---------------------------------------------------------------- */

static void l2_request(u32 req)
{
	WRITE_ONCE(td.req, req);
	if (is_amd)
		asm volatile("vmmcall" : : "a"(0), "c"(0), "d"(0) : "memory", "cc");
	else
		asm volatile("vmcall" : : "a"(0), "c"(0), "d"(0) : "memory", "cc");
}

/*
 * 64-bit mode, CPL0 or CPL3.  L1 (and the VMM's run_guest()/vmx_enter())
 * keep every other register of L2 across a reflected call.
 */
static void l2_long_loop(void)
{
	u32 i, n = READ_ONCE(td.nops);

	for (i = READ_ONCE(td.n_l1); i < n; i++) {
		const struct op *o = &td.ops[i];
		u64 rax = o->rax, rcx = o->control, rdx = o->input;
		register u64 r8 asm("r8") = o->output;

		WRITE_ONCE(td.cur, i);
		if (is_amd)
			asm volatile("vmmcall" : "+a"(rax), "+c"(rcx), "+d"(rdx), "+r"(r8)
				     : : "memory", "cc");
		else
			asm volatile("vmcall" : "+a"(rax), "+c"(rcx), "+d"(rdx), "+r"(r8)
				     : : "memory", "cc");
		WRITE_ONCE(td.result[i], rax);
		WRITE_ONCE(td.regbad[i], (rcx != o->control) | (rdx != o->input) << 1 |
					 (r8 != o->output) << 2);
	}
}

#define VMCALL_MODRM	0xc1	/* 0f 01 c1 */
#define VMMCALL_MODRM	0xd9	/* 0f 01 d9 */

/*
 * Compatibility mode: L1 switches L2's CS at the first VMCALL and back at
 * the last.  The loop in between is 32-bit code, the 32-bit hypercall ABI:
 * control EDX:EAX, input EBX:ECX, output EDI:ESI, result EDX:EAX.
 */
static __always_inline void l2_compat_loop(const u8 modrm)
{
	asm volatile("push %%rbp\n\t"
		     "xor %%eax, %%eax; xor %%ecx, %%ecx; xor %%edx, %%edx\n\t"
		     "movl $%c[rq_c], %c[req]\n\t"
		     ".byte 0x0f, 0x01, %c[modrm]\n\t"
		     ".code32\n\t"
		     "movl %c[first], %%ebp\n"
		     "1: cmpl %c[end], %%ebp\n\t"
		     "jae 2f\n\t"
		     "movl 0(%%ebp), %%eax; movl 4(%%ebp), %%edx\n\t"
		     "movl 8(%%ebp), %%ecx; movl 12(%%ebp), %%ebx\n\t"
		     "movl 16(%%ebp), %%esi; movl 20(%%ebp), %%edi\n\t"
		     ".byte 0x0f, 0x01, %c[modrm]\n\t"
		     "movl %%eax, 24(%%ebp); movl %%edx, 28(%%ebp)\n\t"
		     "xorl %%eax, %%eax\n\t"
		     "cmpl 8(%%ebp), %%ecx; je 3f; orl $1, %%eax\n"
		     "3: cmpl 12(%%ebp), %%ebx; je 4f; orl $2, %%eax\n"
		     "4: cmpl 16(%%ebp), %%esi; je 5f; orl $4, %%eax\n"
		     "5: cmpl 20(%%ebp), %%edi; je 6f; orl $8, %%eax\n"
		     "6: movl %%eax, 32(%%ebp)\n\t"
		     "incl %c[cur]\n\t"
		     "addl $40, %%ebp\n\t"
		     "jmp 1b\n"
		     "2: xorl %%eax, %%eax; xorl %%edx, %%edx; xorl %%ecx, %%ecx\n\t"
		     "movl $%c[rq_l], %c[req]\n\t"
		     ".byte 0x0f, 0x01, %c[modrm]\n\t"
		     ".code64\n\t"
		     "pop %%rbp"
		     : : [modrm] "i"(modrm), [req] "i"(&td.req), [cur] "i"(&td.cur),
			 [first] "i"(&td.c32_first), [end] "i"(&td.c32_end),
			 [rq_c] "i"(REQ_COMPAT), [rq_l] "i"(REQ_LONG)
		     : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
		       "r12", "r13", "r14", "r15", "cc", "memory");
}

static void l2_code(void)
{
	for (;;) {
		if (READ_ONCE(td.mode) == M_COMPAT) {
			WRITE_ONCE(td.cur, READ_ONCE(td.n_l1));
			if (is_amd)
				l2_compat_loop(VMMCALL_MODRM);
			else
				l2_compat_loop(VMCALL_MODRM);
		} else {
			l2_long_loop();
		}
		WRITE_ONCE(td.cur, READ_ONCE(td.nops));
		l2_request(REQ_DONE);
	}
}

/* ---- L1 ---------------------------------------------------------------- */

static u64 l1_hypercall(const struct op *o, u32 *bad)
{
	u64 rax = o->rax, rcx = o->control, rdx = o->input;
	register u64 r8 asm("r8") = o->output;

	if (is_amd)
		asm volatile("vmmcall" : "+a"(rax), "+c"(rcx), "+d"(rdx), "+r"(r8) : : "memory", "cc");
	else
		asm volatile("vmcall" : "+a"(rax), "+c"(rcx), "+d"(rdx), "+r"(r8) : : "memory", "cc");
	*bad = (rcx != o->control) | (rdx != o->input) << 1 | (r8 != o->output) << 2;
	return rax;
}

/*
 * VMX: L2's general purpose registers live in l2_gprs while L1 runs, so
 * that L1 sees them as L2 left them at the exit and L2 finds them again
 * (the selftest library's vmresume() keeps none of them).
 */
struct gpr64_regs l2_gprs;
u64 fz_l1_rsp;
int fz_vmx_enter(u64 launch, void *host_rsp, void *host_rip);
/* lib/x86_64/svm.c: L2's registers across run_guest() */
extern struct gpr64_regs guest_regs;

asm(".pushsection .text\n"
    ".globl fz_vmx_enter\n"
    ".type fz_vmx_enter, @function\n"
    "fz_vmx_enter:\n"
    "	push %rbp\n	push %rbx\n	push %r12\n	push %r13\n	push %r14\n	push %r15\n"
    "	mov %rsp, fz_l1_rsp\n"
    "	mov %rsp, (%rsi)\n"
    "	movabs $fz_vmx_exit, %rax\n"
    "	mov %rax, (%rdx)\n"
    "	test %rdi, %rdi\n"
    "	mov l2_gprs+0x08, %rcx\n"
    "	mov l2_gprs+0x10, %rdx\n"
    "	mov l2_gprs+0x18, %rbx\n"
    "	mov l2_gprs+0x28, %rbp\n"
    "	mov l2_gprs+0x30, %rsi\n"
    "	mov l2_gprs+0x38, %rdi\n"
    "	mov l2_gprs+0x40, %r8\n"
    "	mov l2_gprs+0x48, %r9\n"
    "	mov l2_gprs+0x50, %r10\n"
    "	mov l2_gprs+0x58, %r11\n"
    "	mov l2_gprs+0x60, %r12\n"
    "	mov l2_gprs+0x68, %r13\n"
    "	mov l2_gprs+0x70, %r14\n"
    "	mov l2_gprs+0x78, %r15\n"
    "	mov l2_gprs+0x00, %rax\n"
    "	jnz 1f\n"
    "	vmresume\n"
    "	jmp 2f\n"
    "1:	vmlaunch\n"
    "2:	mov fz_l1_rsp, %rsp\n"
    "	mov $1, %eax\n"
    "	jmp 3f\n"
    "fz_vmx_exit:\n"
    "	mov %rax, l2_gprs+0x00\n"
    "	mov %rcx, l2_gprs+0x08\n"
    "	mov %rdx, l2_gprs+0x10\n"
    "	mov %rbx, l2_gprs+0x18\n"
    "	mov %rbp, l2_gprs+0x28\n"
    "	mov %rsi, l2_gprs+0x30\n"
    "	mov %rdi, l2_gprs+0x38\n"
    "	mov %r8, l2_gprs+0x40\n"
    "	mov %r9, l2_gprs+0x48\n"
    "	mov %r10, l2_gprs+0x50\n"
    "	mov %r11, l2_gprs+0x58\n"
    "	mov %r12, l2_gprs+0x60\n"
    "	mov %r13, l2_gprs+0x68\n"
    "	mov %r14, l2_gprs+0x70\n"
    "	mov %r15, l2_gprs+0x78\n"
    "	xor %eax, %eax\n"
    "3:	pop %r15\n	pop %r14\n	pop %r13\n	pop %r12\n	pop %rbx\n	pop %rbp\n"
    "	ret\n"
    ".popsection\n");

static struct svm_test_data *svm;
static bool vmx_launched;
static u64 l2_cs, l2_ss, l2_cs_ar, l2_ss_ar;
static struct vmcb_seg l2_cs_seg, l2_ss_seg;

#define VMX_AR_DPL3	(3 << 5)
#define VMX_AR_L	BIT(13)
#define VMX_AR_DB	BIT(14)

static void l1_set_mode(u32 mode)
{
	if (is_amd) {
		struct vmcb_save_area *save = &svm->vmcb->save;

		save->cs = l2_cs_seg;
		save->ss = l2_ss_seg;
		save->cpl = 0;
		if (mode == M_CPL3) {
			save->cs.selector |= 3;
			save->ss.selector |= 3;
			save->cs.attrib |= SVM_SELECTOR_DPL_MASK;
			save->ss.attrib |= SVM_SELECTOR_DPL_MASK;
			save->cpl = 3;
		} else if (mode == M_COMPAT) {
			save->cs.attrib &= ~SVM_SELECTOR_L_MASK;
			save->cs.attrib |= SVM_SELECTOR_DB_MASK;
		}
		return;
	}
	vmwrite(GUEST_CS_SELECTOR, l2_cs);
	vmwrite(GUEST_SS_SELECTOR, l2_ss);
	vmwrite(GUEST_CS_AR_BYTES, l2_cs_ar);
	vmwrite(GUEST_SS_AR_BYTES, l2_ss_ar);
	if (mode == M_CPL3) {
		vmwrite(GUEST_CS_SELECTOR, l2_cs | 3);
		vmwrite(GUEST_SS_SELECTOR, l2_ss | 3);
		vmwrite(GUEST_CS_AR_BYTES, l2_cs_ar | VMX_AR_DPL3);
		vmwrite(GUEST_SS_AR_BYTES, l2_ss_ar | VMX_AR_DPL3);
	} else if (mode == M_COMPAT) {
		vmwrite(GUEST_CS_AR_BYTES, (l2_cs_ar & ~VMX_AR_L) | VMX_AR_DB);
	}
}

/* L1's state for the batch, before it runs L2 for it. */
static void l1_apply_batch(void)
{
	current_vp_assist->nested_control.hypercall_controls.inter_partition_comm = td.tlfs;
	current_vp_assist->nested_control.features.directhypercall = td.direct_hc;
	if (is_amd) {
		struct vmcb_control_area *ctl = &svm->vmcb->control;

		ctl->hv_enlightenments.hv_enlightenments_control.nested_flush_hypercall =
			td.flush_hc;
		if (td.np)
			ctl->nested_ctl |= SVM_NESTED_CTL_NP_ENABLE;
		else
			ctl->nested_ctl &= ~SVM_NESTED_CTL_NP_ENABLE;
		ctl->nested_cr3 = td.root[td.root_idx];
		ctl->asid = td.tag;
	} else {
		u64 sec = vmreadz(SECONDARY_VM_EXEC_CONTROL);

		current_evmcs->hv_enlightenments_control.nested_flush_hypercall = td.flush_hc;
		if (td.np)
			sec |= SECONDARY_EXEC_ENABLE_EPT;
		else
			sec &= ~SECONDARY_EXEC_ENABLE_EPT;
		vmwrite(SECONDARY_VM_EXEC_CONTROL, sec);
		vmwrite(EPT_POINTER, (vmreadz(EPT_POINTER) & (PAGE_SIZE - 1)) |
				     td.root[td.root_idx]);
		if (vpid)
			vmwrite(VIRTUAL_PROCESSOR_ID, td.tag);
	}
	l1_set_mode(td.mode == M_CPL3 ? M_CPL3 : M_LONG);
}

enum { X_HCALL, X_UD, X_OTHER };

static int l1_enter(u64 *reason)
{
	if (is_amd) {
		run_guest(svm->vmcb, svm->vmcb_gpa);
		*reason = svm->vmcb->control.exit_code;
		if (*reason == SVM_EXIT_VMMCALL)
			return X_HCALL;
		if (*reason == SVM_EXIT_EXCP_BASE + UD_VECTOR)
			return X_UD;
		return X_OTHER;
	}
	current_evmcs->hv_clean_fields = 0;
	GUEST_ASSERT(!fz_vmx_enter(!vmx_launched,
				   (u8 *)current_evmcs +
				   offsetof(struct hv_enlightened_vmcs, host_rsp),
				   (u8 *)current_evmcs +
				   offsetof(struct hv_enlightened_vmcs, host_rip)));
	vmx_launched = true;
	*reason = vmreadz(VM_EXIT_REASON);
	if (*reason == EXIT_REASON_VMCALL)
		return X_HCALL;
	if (*reason == EXIT_REASON_EXCEPTION_NMI &&
	    (vmreadz(VM_EXIT_INTR_INFO) & 0xff) == UD_VECTOR)
		return X_UD;
	return X_OTHER;
}

/* Past the 3-byte VMCALL/VMMCALL (or the #UD that it raised). */
static void l1_skip(void)
{
	if (is_amd)
		svm->vmcb->save.rip += 3;
	else
		vmwrite(GUEST_RIP, vmreadz(GUEST_RIP) + 3);
}

/*
 * L2's registers while L1 runs: l2_gprs on VMX; on SVM guest_regs, at the
 * offsets that run_guest()'s assembly uses (which are not those of struct
 * gpr64_regs: RCX at 0x10, RDX 0x18, RBX 0x20, RSI 0x38, RDI 0x40, R8 0x48).
 * L2's RAX is in the VMCB on SVM (run_guest()'s copies of RAX and RFLAGS
 * use save-area offsets relative to the control area, so they miss).
 */
enum { R_AX, R_CX, R_DX, R_BX, R_SI, R_DI, R_8 };

static u64 *l2_reg(int r)
{
	static const u8 vmx_off[] = { 0, 1, 2, 3, 6, 7, 8 };
	static const u8 svm_off[] = { 0, 2, 3, 4, 7, 8, 9 };

	if (is_amd && r == R_AX)
		return (u64 *)((u8 *)svm->vmcb + offsetof(struct vmcb, save) +
			       offsetof(struct vmcb_save_area, rax));
	return is_amd ? (u64 *)&guest_regs + svm_off[r] : (u64 *)&l2_gprs + vmx_off[r];
}

/* A call of L2 reflected to L1: are L2's registers as L2 set them? */
static bool l1_regs_ok(u32 cur)
{
	if (td.mode == M_COMPAT) {
		const struct c32op *c = &td.c32[cur];

		return (u32)*l2_reg(R_AX) == c->eax && (u32)*l2_reg(R_DX) == c->edx &&
		       (u32)*l2_reg(R_CX) == c->ecx && (u32)*l2_reg(R_BX) == c->ebx &&
		       (u32)*l2_reg(R_SI) == c->esi && (u32)*l2_reg(R_DI) == c->edi;
	}
	return *l2_reg(R_AX) == td.ops[cur].rax && *l2_reg(R_CX) == td.ops[cur].control &&
	       *l2_reg(R_DX) == td.ops[cur].input && *l2_reg(R_8) == td.ops[cur].output;
}

static void l1_run_l2(void)
{
	for (;;) {
		u64 reason;
		int x = l1_enter(&reason);
		u32 cur = READ_ONCE(td.cur), req = READ_ONCE(td.req);

		if (x == X_HCALL && req) {
			WRITE_ONCE(td.req, REQ_NONE);
			l1_skip();
			if (req == REQ_DONE)
				return;
			l1_set_mode(req == REQ_COMPAT ? M_COMPAT : M_LONG);
			continue;
		}
		__GUEST_ASSERT(x != X_OTHER, "unexpected L2 exit 0x%lx at call %u", reason, cur);
		__GUEST_ASSERT(cur >= td.n_l1 && cur < td.nops, "L2 exit at call %u", cur);
		if (x == X_UD) {
			td.l1_kind[cur] = K_UD;
		} else {
			u64 answer = td.ops[cur].l1_answer;

			td.l1_kind[cur] = l1_regs_ok(cur) ? K_HCALL : K_HCALL_BADREGS;
			if (td.mode == M_COMPAT) {
				*l2_reg(R_AX) = (u32)answer;
				*l2_reg(R_DX) = answer >> 32;
			} else {
				*l2_reg(R_AX) = answer;
			}
		}
		l1_skip();
	}
}

static void l1_guest_code(void *nested, struct hyperv_test_pages *hv_pages,
			  vm_vaddr_t hcall_gpa)
{
	unsigned long l2_stack[L2_STACK_SIZE];

	wrmsr(HV_X64_MSR_GUEST_OS_ID, HYPERV_LINUX_OS_ID);
	wrmsr(HV_X64_MSR_HYPERCALL, hcall_gpa);
	enable_vp_assist(hv_pages->vp_assist_gpa, hv_pages->vp_assist);

	if (is_amd) {
		struct hv_vmcb_enlightenments *hve;

		svm = nested;
		generic_svm_setup(svm, l2_code, &l2_stack[L2_STACK_SIZE]);
		hve = &svm->vmcb->control.hv_enlightenments;
		hve->partition_assist_page = hv_pages->partition_assist_gpa;
		hve->hv_vm_id = 1;
		hve->hv_vp_id = 1;
		svm->vmcb->control.intercept_exceptions |= BIT(UD_VECTOR);
		l2_cs_seg = svm->vmcb->save.cs;
		l2_ss_seg = svm->vmcb->save.ss;
	} else {
		evmcs_enable();
		GUEST_ASSERT(prepare_for_vmx_operation(nested));
		GUEST_ASSERT(load_evmcs(hv_pages));
		prepare_vmcs(nested, l2_code, &l2_stack[L2_STACK_SIZE]);
		l2_cs = vmreadz(GUEST_CS_SELECTOR);
		l2_ss = vmreadz(GUEST_SS_SELECTOR);
		l2_cs_ar = vmreadz(GUEST_CS_AR_BYTES);
		l2_ss_ar = vmreadz(GUEST_SS_AR_BYTES);
		if (vpid)
			vmwrite(SECONDARY_VM_EXEC_CONTROL,
				vmreadz(SECONDARY_VM_EXEC_CONTROL) | SECONDARY_EXEC_ENABLE_VPID);
		vmwrite(EXCEPTION_BITMAP, BIT(UD_VECTOR));
		current_evmcs->partition_assist_page = hv_pages->partition_assist_gpa;
		current_evmcs->hv_vm_id = 1;
		current_evmcs->hv_vp_id = 1;
	}

	for (;;) {
		u32 i;

		GUEST_SYNC(0);	/* the VMM checks the last batch and writes the next */
		if (!READ_ONCE(td.nops))
			break;
		wrmsr(HV_X64_MSR_GUEST_OS_ID, td.os_id ? HYPERV_LINUX_OS_ID : 0);
		for (i = 0; i < td.n_l1; i++) {
			u32 bad;

			WRITE_ONCE(td.cur, i);
			td.result[i] = l1_hypercall(&td.ops[i], &bad);
			td.regbad[i] = bad;
		}
		if (td.n_l1 < td.nops) {
			l1_apply_batch();
			l1_run_l2();
		}
	}
	GUEST_DONE();
}

/* ---- VMM: configuration, generation, model ----------------------------- */

struct vmcfg {
	u64 flags;		/* KVM_HV_NESTED_RELAY_*; 0: capability not enabled */
	bool synic;
	bool enforce;		/* KVM_CAP_HYPERV_ENFORCE_CPUID */
	bool no_post, no_signal;	/* privileges cleared from L1's Hyper-V CPUID */
	bool direct_flush;	/* HV_X64_NESTED_DIRECT_FLUSH in L1's Hyper-V CPUID */
};

/* L2 inputs (memory forms) */
enum {
	IN_SLOT, IN_MISALIGNED, IN_CROSS, IN_ALIAS, IN_UNMAPPED, IN_HIGH, IN_NOREAD,
	IN_LARGE, IN_NOREAD_LARGE, IN_NOREAD_PDE, IN_NOSLOT, IN_RANDOM, NR_IN
};
static const char * const in_names[] = {
	"slot", "misaligned", "crossing", "alias", "unmapped", "high", "noread",
	"large", "noread-large", "noread-pde", "noslot", "random",
};

enum { E_USER, E_L0, E_L1, E_UD, E_KVMHC };
static const char * const e_names[] = { "userspace", "L0 status", "L1", "#UD in L1", "KVM hc" };

struct expect {
	int kind;
	u64 status;		/* E_L0 */
	u64 p0, p1;		/* E_USER */
	u32 nflags;		/* E_USER: KVM_HYPERV_HCALL_NESTED_* */
	bool eventfd;		/* E_L0 by signalling the eventfd */
	int in_kind;		/* for the report */
	const char *why;	/* which rule */
	u64 user_answer;
};

enum {
	C_L1_USER, C_L1_L0, C_L1_KVMHC, C_RELAY_TLFS, C_RELAY_DIRECT, C_RELAY_ALIGN,
	C_RELAY_PARAM, C_RELAY_INPUT, C_RELAY_EVENTFD, C_RELAY_NOSLOT, C_L2_L1,
	C_L2_FLUSH_L0, C_L2_UD, C_COMPAT, C_CPL3, C_SHADOW, C_VMS, C_USER_EXITS, NR_C
};
static struct fuzz_counter counters[NR_C] = {
	{ "L1 call -> userspace exit" }, { "L1 call -> L0 status" },
	{ "L1 call -> KVM hypercall (OS ID 0)" }, { "L2 relayed (TLFS grant)" },
	{ "L2 relayed (direct grant)" }, { "L2 kept, HV_STATUS_INVALID_ALIGNMENT" },
	{ "L2 kept, HV_STATUS_INVALID_PARAMETER" }, { "L2 kept, INVALID_HYPERCALL_INPUT" },
	{ "L2 kept, signalled eventfd in L0" }, { "L2 kept, no memslot (alignment)" },
	{ "L2 reflected to L1" }, { "L2 TLB flush kept in L0" }, { "L2 #UD (CPL3 flush)" },
	{ "L2 calls in compat mode (32-bit ABI)" }, { "L2 calls at CPL3" },
	{ "L2 calls on shadow paging" }, { "VMs" }, { "userspace exits" },
};

struct batch {
	u32 nops, n_l1, mode, np, os_id, tlfs, direct_hc, flush_hc, root_idx, tag;
};

struct ctx {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	struct test_data *g;	/* td in guest memory */
	u64 *slot_hva;		/* the data page: one 8-byte signal input per call */
	u64 slot_gpa;
	u64 slot0_end;		/* L1 memory is [0, slot0_end) */
	u64 root[2];
	int efd;
	struct vmcfg cfg;
	struct batch b;
	/*
	 * SVM: nested_flush_hypercall as KVM cached it from VMCB12.  KVM copies
	 * VMCB12's hv_enlightenments at VMRUN only while L1's guest OS ID
	 * enables Hyper-V hypercalls (nested_copy_vmcb_control_to_cache()); at
	 * a VMRUN with the ID 0, the value of an earlier VMRUN stays in effect.
	 */
	bool svm_flush_hc;
	struct expect exp[BATCH];
	u32 user_exits[BATCH];
	struct fuzz_rng *rng;
	u64 iter;
	u64 mismatches;
};

static bool in_l1_mem(const struct ctx *c, u64 gpa, u64 len)
{
	return gpa < c->slot0_end && gpa + len <= c->slot0_end;
}

/* L1's nested page tables as build_tdp() built them: the L1 GPA, or -1. */
static u64 model_translate(const struct ctx *c, u64 gpa)
{
	u64 off = gpa & (PAGE_SIZE - 1), frame = c->slot_gpa & ~(SZ_2M - 1);

	if (gpa < c->slot0_end)
		return gpa;
	if ((gpa & ~(PAGE_SIZE - 1)) == ALIAS_GPA)
		return c->slot_gpa + off;
	if ((gpa & ~(PAGE_SIZE - 1)) == NOSLOT_ALIAS_GPA)
		return NOSLOT_L1_GPA + off;
	if (gpa >= LARGE_GPA && gpa < LARGE_GPA + SZ_2M)
		return frame + (gpa - LARGE_GPA);
	/* NOREAD_GPA, NOREAD_LARGE_GPA, NOREAD_PDE_GPA: present, not readable */
	return -1ull;
}

static u64 gen_signal_value(struct fuzz_rng *r)
{
	u64 v;

	switch (fuzz_below(r, 5)) {
	case 0:
	case 1:
		v = CONN_EVENTFD;
		break;
	case 2:
	case 3:
		v = CONN_USERSPACE;
		break;
	default:
		v = fuzz_below(r, CONN_MASK + 1);
	}
	if (fuzz_chance(r, 1, 5))
		v |= (fuzz_below(r, 0xffff) + 1) << 32;
	if (fuzz_chance(r, 1, 6))
		v |= fuzz_u64(r) & ~(CONN_MASK | FLAG_MASK);
	return v;
}

static u16 gen_other_code(struct fuzz_rng *r)
{
	for (;;) {
		u16 code = fuzz_u64(r);

		switch (code) {
		case 0x0002: case 0x0003: case 0x0008: case 0x000b: case 0x0013:
		case 0x0014: case 0x0015: case 0x005c: case 0x005d: case 0x0069:
		case 0x006a: case 0x006b:
			continue;
		}
		if (code >= 0x8001 && code <= 0x81ff)
			continue;
		return code;
	}
}

/* A random input value (control), per the op's code. */
static u64 gen_control(struct fuzz_rng *r, bool l2, u16 *codep)
{
	u64 ctl;
	u16 code;
	unsigned int pick = fuzz_below(r, 100);

	if (pick < 35)
		code = C_POST;
	else if (pick < 72)
		code = C_SIGNAL;
	else if (pick < 80)
		code = C_FLUSH_SPACE;
	else if (pick < 84)
		code = C_FLUSH_LIST;
	else if (pick < 88)
		code = C_SPIN_WAIT;
	else
		code = gen_other_code(r);
	*codep = code;
	ctl = code;
	if (fuzz_chance(r, l2 ? 85 : 40, 100))
		ctl |= NESTED;
	if (fuzz_chance(r, code == C_SIGNAL || code == C_FLUSH_SPACE ? 50 :
			   code == C_POST ? 10 : 25, 100))
		ctl |= FAST;
	if (fuzz_chance(r, 1, 5)) {
		switch (fuzz_below(r, 4)) {
		case 0:
			ctl |= (fuzz_below(r, 0xfff) + 1) << 32;
			break;
		case 1:
			ctl |= (fuzz_below(r, 0xfff) + 1) << 48;
			break;
		case 2:
			ctl |= (fuzz_below(r, 0x3ff) + 1) << 17;
			break;
		default:
			ctl |= BIT_ULL(fuzz_pick(r, ((const u8[]){ 27, 28, 29, 30, 44, 45, 46,
								   47, 60, 61, 62, 63 })));
		}
	}
	if (fuzz_chance(r, 1, 50))
		ctl = (fuzz_u64(r) & ~CODE_MASK) | code;
	/* The list flush: only forms that its control checks refuse. */
	if (code == C_FLUSH_LIST && !(ctl & (VARHEAD_MASK | REP_IDX_MASK | RSVD_MASK)))
		ctl &= ~REP_CNT_MASK;
	return ctl;
}

/* The memory input of call @i of L2 of kind @kind, for a read of @size. */
static u64 gen_l2_input(struct ctx *c, struct fuzz_rng *r, int kind, u32 i, bool post)
{
	u64 off = post ? fuzz_below(r, (PAGE_SIZE - 256) / 8 + 1) * 8 : 8 * i;
	u64 frame_off = c->slot_gpa & (SZ_2M - 1);

	switch (kind) {
	case IN_SLOT:
		return c->slot_gpa + off;
	case IN_MISALIGNED:
		return c->slot_gpa + off + 1 + fuzz_below(r, 7);
	case IN_CROSS:
		return c->slot_gpa + (post ? PAGE_SIZE - 8 * (1 + fuzz_below(r, 31))
					   : PAGE_SIZE - 4);
	case IN_ALIAS:
		return ALIAS_GPA + off;
	case IN_UNMAPPED:
		return UNMAPPED_GPA + off;
	case IN_HIGH:
		return (8ull << 30) + fuzz_below(r, (248ull << 30) / 8) * 8;
	case IN_NOREAD:
		return NOREAD_GPA + off;
	case IN_LARGE:
		return LARGE_GPA + frame_off + off;
	case IN_NOREAD_LARGE:
		return NOREAD_LARGE_GPA + frame_off + off;
	case IN_NOREAD_PDE:
		return NOREAD_PDE_GPA + off;
	case IN_NOSLOT:
		return NOSLOT_ALIAS_GPA + off;
	default:
		return (fuzz_u64(r) & GENMASK_ULL(38, 0)) | BIT_ULL(39);
	}
}

static bool is_flush(u16 code)
{
	return code == 0x0002 || code == 0x0003 || code == 0x0013 || code == 0x0014;
}

static bool l1_has_access(const struct ctx *c, u16 code)
{
	if (!c->cfg.enforce)
		return true;
	if (code == C_POST)
		return !c->cfg.no_post;
	if (code == C_SIGNAL)
		return !c->cfg.no_signal;
	return true;
}

static void set_l0(struct expect *e, u64 status, const char *why)
{
	e->kind = E_L0;
	e->status = status;
	e->why = why;
}

static void set_user(struct expect *e, u64 p0, u64 p1, u32 nflags, const char *why)
{
	e->kind = E_USER;
	e->p0 = p0;
	e->p1 = p1;
	e->nflags = nflags;
	e->why = why;
}

/*
 * HvSignalEvent's value (kvm_hvcall_signal_event()): a flag number exits to
 * userspace, reserved bits fail, a connection with an eventfd completes in
 * L0 if @use_eventfd, anything else exits; @synic for the exit.
 */
static void model_signal_value(const struct ctx *c, struct expect *e, u64 v,
			       bool use_eventfd, u64 p1, u32 nflags)
{
	if (v & FLAG_MASK) {
		set_user(e, v, p1, nflags, "signal: flag number -> userspace");
	} else if (v & ~(CONN_MASK | FLAG_MASK)) {
		set_l0(e, ST_INVALID_INPUT, "signal: reserved bits in the value");
	} else if (use_eventfd && v == CONN_EVENTFD) {
		set_l0(e, ST_SUCCESS, "signal: connection with an eventfd");
		e->eventfd = true;
	} else {
		set_user(e, v, p1, nflags, "signal: no eventfd -> userspace");
	}
	if (e->kind == E_USER && !c->cfg.synic)
		set_l0(e, ST_INVALID_INPUT, "signal: no SynIC for the exit");
}

/* L1's own call, in 64-bit mode at CPL0. */
static void expect_l1(const struct ctx *c, const struct op *o, struct expect *e, u64 sigval)
{
	u64 ctl = o->control;
	u16 code = ctl & CODE_MASK;
	bool fast = ctl & FAST, rep = ctl & (REP_CNT_MASK | REP_IDX_MASK);
	bool var = ctl & VARHEAD_MASK;

	if (!c->b.os_id) {
		e->kind = E_KVMHC;
		e->status = (u64)-1000;	/* -KVM_ENOSYS */
		e->why = "guest OS ID 0: a KVM hypercall";
		return;
	}
	if (!l1_has_access(c, code))
		return set_l0(e, ST_ACCESS_DENIED, "no privilege in enforced CPUID");
	if (ctl & RSVD_MASK)
		return set_l0(e, ST_INVALID_INPUT, "reserved (or nested) bit from L1");
	switch (code) {
	case C_SPIN_WAIT:
		return set_l0(e, rep || var ? ST_INVALID_INPUT : ST_SUCCESS, "spin wait");
	case C_SIGNAL:
		if (rep || var)
			return set_l0(e, ST_INVALID_INPUT, "signal: rep/varhead");
		if (!fast) {
			if ((o->input & 7) || (o->input & (PAGE_SIZE - 1)) + 8 > PAGE_SIZE)
				return set_l0(e, ST_INVALID_ALIGNMENT, "signal: misaligned");
			if (!in_l1_mem(c, o->input, 8))
				return set_l0(e, ST_INVALID_ALIGNMENT, "signal: no memslot");
		}
		return model_signal_value(c, e, fast ? o->input : sigval, true, o->output, 0);
	case C_POST:
		if (rep || var || !c->cfg.synic)
			return set_l0(e, ST_INVALID_INPUT, "post: rep/varhead/no SynIC");
		return set_user(e, o->input, o->output, 0, "post -> userspace");
	case C_FLUSH_SPACE:
		if (var || rep)
			return set_l0(e, ST_INVALID_INPUT, "flush: rep/varhead");
		if (!fast && !in_l1_mem(c, o->input, 24))
			return set_l0(e, ST_INVALID_INPUT, "flush: input not in memory");
		return set_l0(e, ST_SUCCESS, "flush");
	case C_FLUSH_LIST:
		return set_l0(e, ST_INVALID_INPUT, "flush list: control checks");
	default:
		return set_l0(e, ST_INVALID_CODE, "unknown code");
	}
}

/* L2's call: api.rst 7.37's decision, then KVM's handling of a kept call. */
static void expect_l2(const struct ctx *c, const struct op *o, struct expect *e, u64 sigval)
{
	const struct vmcfg *cfg = &c->cfg;
	const struct batch *b = &c->b;
	u64 ctl = o->control;
	u16 code = ctl & CODE_MASK;
	bool fast = ctl & FAST;
	bool direct = (is_amd ? c->svm_flush_hc : b->flush_hc) && b->direct_hc;
	u32 class = code == C_POST ? KVM_HV_NESTED_RELAY_POST_MESSAGE :
		    code == C_SIGNAL ? KVM_HV_NESTED_RELAY_SIGNAL_EVENT : 0;
	u32 nflags = 0;
	u64 l1gpa;

	if (cfg->flags && b->os_id && b->np && (ctl & NESTED) &&
	    !(ctl & ~(CODE_MASK | FAST | NESTED)) && (cfg->flags & class) &&
	    (!fast || code == C_SIGNAL) && b->mode != M_CPL3 &&
	    l1_has_access(c, code) && cfg->synic) {
		if (b->tlfs)
			nflags = KVM_HYPERV_HCALL_NESTED_RELAYED;
		else if ((cfg->flags & KVM_HV_NESTED_RELAY_DIRECT_GRANT) && direct &&
			 cfg->direct_flush)
			nflags = KVM_HYPERV_HCALL_NESTED_RELAYED |
				 KVM_HYPERV_HCALL_NESTED_DIRECT_GRANT;
	}
	if (!nflags) {
		if (cfg->direct_flush && direct && is_flush(code)) {
			bool rep = ctl & (REP_CNT_MASK | REP_IDX_MASK), var = ctl & VARHEAD_MASK;

			if (b->mode == M_CPL3) {
				e->kind = E_UD;
				e->why = "L2 TLB flush kept by L0 at CPL3";
				return;
			}
			if (ctl & RSVD_MASK)
				return set_l0(e, ST_INVALID_INPUT, "flush: reserved/nested bit");
			if (code == C_FLUSH_LIST || var || rep)
				return set_l0(e, ST_INVALID_INPUT, "flush: control checks");
			if (!fast) {
				l1gpa = b->np ? model_translate(c, o->input) : o->input;
				if (l1gpa == -1ull || !in_l1_mem(c, l1gpa, 24))
					return set_l0(e, ST_INVALID_INPUT, "flush: input");
			}
			return set_l0(e, ST_SUCCESS, "L2 TLB flush kept by L0");
		}
		e->kind = E_L1;
		e->why = "not relayed: reflected to L1";
		return;
	}

	if (fast)
		return model_signal_value(c, e, o->input, !(nflags & KVM_HYPERV_HCALL_NESTED_DIRECT_GRANT),
					  0, nflags);
	if ((o->input & 7) || (o->input & (PAGE_SIZE - 1)) + (code == C_POST ? 256 : 8) > PAGE_SIZE)
		return set_l0(e, ST_INVALID_ALIGNMENT, "relayed: input misaligned/crossing");
	l1gpa = model_translate(c, o->input);
	if (l1gpa == -1ull)
		return set_l0(e, ST_INVALID_PARAMETER, "relayed: input not readable for L2");
	if (code == C_POST)
		return set_user(e, l1gpa, 0, nflags, "relayed post");
	if (!in_l1_mem(c, l1gpa, 8))
		return set_l0(e, ST_INVALID_ALIGNMENT, "relayed signal: no memslot");
	model_signal_value(c, e, sigval, !(nflags & KVM_HYPERV_HCALL_NESTED_DIRECT_GRANT), 0, nflags);
}

static void gen_batch(struct ctx *c)
{
	struct fuzz_rng *r = c->rng;
	struct test_data *g = c->g;
	struct batch *b = &c->b;
	u32 i;

	memset(b, 0, sizeof(*b));
	b->nops = BATCH;
	b->n_l1 = fuzz_below(r, BATCH / 4 + 1);
	b->mode = fuzz_below(r, 20) < 13 ? M_LONG : fuzz_chance(r, 4, 7) ? M_COMPAT : M_CPL3;
	b->np = fuzz_chance(r, 85, 100);
	b->os_id = fuzz_chance(r, 12, 13);
	b->tlfs = fuzz_chance(r, 2, 3);
	b->direct_hc = fuzz_chance(r, 2, 3);
	b->flush_hc = fuzz_chance(r, 2, 3);
	b->root_idx = fuzz_below(r, 2);
	b->tag = 1 + fuzz_below(r, 8);
	if (b->os_id)
		c->svm_flush_hc = b->flush_hc;

	for (i = 0; i < b->nops; i++) {
		struct op *o = &g->ops[i];
		struct expect *e = &c->exp[i];
		bool l2 = i >= b->n_l1;
		u16 code;
		u64 sigval = gen_signal_value(r);

		memset(e, 0, sizeof(*e));
		o->control = gen_control(r, l2, &code);
		c->slot_hva[i] = sigval;
		if (o->control & FAST) {
			e->in_kind = -1;
			o->input = fuzz_chance(r, 9, 10) ? gen_signal_value(r) : fuzz_u64(r);
		} else if (l2) {
			e->in_kind = fuzz_below(r, 100) < 45 ? IN_SLOT : fuzz_below(r, NR_IN);
			o->input = gen_l2_input(c, r, e->in_kind, i, code == C_POST);
		} else {
			e->in_kind = fuzz_pick(r, ((const u8[]){ IN_SLOT, IN_SLOT, IN_SLOT,
							      IN_MISALIGNED, IN_CROSS, IN_NOSLOT }));
			o->input = e->in_kind == IN_NOSLOT ? NOSLOT_L1_GPA + 8 * i :
				   gen_l2_input(c, r, e->in_kind, i, code == C_POST);
		}
		o->output = fuzz_u64(r);
		o->rax = fuzz_u64(r) | BIT_ULL(40);	/* never a KVM hypercall number */
		o->l1_answer = fuzz_u64(r);
		e->user_answer = fuzz_u64(r);
		if (l2 && b->mode == M_COMPAT) {
			struct c32op *c32 = &g->c32[i];

			memset(c32, 0, sizeof(*c32));
			c32->eax = o->control;
			c32->edx = o->control >> 32;
			c32->ecx = o->input;
			c32->ebx = o->input >> 32;
			c32->esi = o->output;
			c32->edi = o->output >> 32;
		}
		if (l2)
			expect_l2(c, o, e, sigval);
		else
			expect_l1(c, o, e, sigval);
		g->result[i] = 0;
		g->l1_kind[i] = K_NONE;
		g->regbad[i] = 0;
		c->user_exits[i] = 0;
	}
	g->nops = b->nops;
	g->n_l1 = b->n_l1;
	g->mode = b->mode;
	g->np = b->np;
	g->os_id = b->os_id;
	g->tlfs = b->tlfs;
	g->direct_hc = b->direct_hc;
	g->flush_hc = b->flush_hc;
	g->root_idx = b->root_idx;
	g->tag = b->tag;
	g->c32_first = (u32)(uintptr_t)&td.c32[b->n_l1];
	g->c32_end = (u32)(uintptr_t)&td.c32[b->nops];
	g->req = REQ_NONE;
}

static void report(struct ctx *c, u32 i, const char *fmt, ...)
{
	const struct op *o = &c->g->ops[i];
	const struct expect *e = &c->exp[i];
	const struct batch *b = &c->b;
	va_list ap;

	c->mismatches++;
	if (c->mismatches > 20)
		return;
	printf("%s: MISMATCH iteration %" PRIu64 " op %u (%s): ", PROG, c->iter, i,
	       i < b->n_l1 ? "L1" : "L2");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n%s:   vm: flags 0x%" PRIx64 " synic %d enforce %d no_post %d no_signal %d "
	       "direct_flush_cpuid %d\n", PROG, c->cfg.flags, c->cfg.synic, c->cfg.enforce,
	       c->cfg.no_post, c->cfg.no_signal, c->cfg.direct_flush);
	printf("%s:   batch: mode %s np %u os_id %u tlfs %u directhypercall %u "
	       "nested_flush_hypercall %u root %u tag %u\n", PROG,
	       (const char *[]){ "long", "cpl3", "compat" }[b->mode], b->np, b->os_id, b->tlfs,
	       b->direct_hc, b->flush_hc, b->root_idx, b->tag);
	printf("%s:   op: control 0x%" PRIx64 " input 0x%" PRIx64 " (%s) output 0x%" PRIx64
	       " rax 0x%" PRIx64 " signal-slot 0x%" PRIx64 "\n", PROG, o->control, o->input,
	       e->in_kind < 0 ? "fast" : in_names[e->in_kind], o->output, o->rax,
	       c->slot_hva[i]);
	printf("%s:   expected: %s (%s) status 0x%" PRIx64 " p0 0x%" PRIx64 " p1 0x%" PRIx64
	       " nflags 0x%x\n", PROG, e_names[e->kind], e->why, e->status, e->p0, e->p1,
	       e->nflags);
	fflush(stdout);
}

/* A KVM_EXIT_HYPERV exit: check it against the call that L1/L2 is making. */
static void handle_hv_exit(struct ctx *c)
{
	struct kvm_run *run = c->vcpu->run;
	u32 i = READ_ONCE(c->g->cur);
	const struct expect *e;
	bool l2;
	u64 input;

	counters[C_USER_EXITS].n++;
	TEST_ASSERT(i < c->b.nops, "Hyper-V exit with no call pending (cur %u)", i);
	e = &c->exp[i];
	l2 = i >= c->b.n_l1;
	c->user_exits[i]++;
	input = c->g->ops[i].control;
	run->hyperv.u.hcall.result = e->user_answer;
	if (e->kind != E_USER) {
		report(c, i, "unexpected userspace exit (input 0x%llx params 0x%llx 0x%llx "
		       "nflags 0x%x)", run->hyperv.u.hcall.input, run->hyperv.u.hcall.params[0],
		       run->hyperv.u.hcall.params[1], run->hyperv.u.hcall.nested_flags);
		return;
	}
	if (run->hyperv.type != KVM_EXIT_HYPERV_HCALL ||
	    !!(run->flags & KVM_RUN_X86_GUEST_MODE) != l2 ||
	    run->hyperv.u.hcall.input != input || run->hyperv.u.hcall.params[0] != e->p0 ||
	    run->hyperv.u.hcall.params[1] != e->p1 ||
	    run->hyperv.u.hcall.nested_flags != e->nflags ||
	    run->hyperv.u.hcall.nested_root != (e->nflags ? c->root[c->b.root_idx] : 0) ||
	    run->hyperv.u.hcall.nested_tag != (e->nflags && (is_amd || vpid) ? c->b.tag : 0))
		report(c, i, "exit type %u flags 0x%x input 0x%llx params 0x%llx 0x%llx "
		       "root 0x%llx tag %u nflags 0x%x (want root 0x%" PRIx64 " tag %u)",
		       run->hyperv.type, run->flags, run->hyperv.u.hcall.input,
		       run->hyperv.u.hcall.params[0], run->hyperv.u.hcall.params[1],
		       run->hyperv.u.hcall.nested_root, run->hyperv.u.hcall.nested_tag,
		       run->hyperv.u.hcall.nested_flags,
		       e->nflags ? c->root[c->b.root_idx] : 0,
		       e->nflags && (is_amd || vpid) ? c->b.tag : 0);
}

static void check_batch(struct ctx *c)
{
	const struct batch *b = &c->b;
	u64 want_efd = 0, got_efd = 0;
	u32 i;

	for (i = 0; i < b->nops; i++) {
		const struct expect *e = &c->exp[i];
		const struct op *o = &c->g->ops[i];
		bool l2 = i >= b->n_l1, compat = l2 && b->mode == M_COMPAT;
		u64 res = compat ? (u64)c->g->c32[i].res_edx << 32 | c->g->c32[i].res_eax :
				   c->g->result[i];
		u32 bad = compat ? c->g->c32[i].bad : c->g->regbad[i];
		u32 kind = c->g->l1_kind[i];
		u64 want = 0;
		int ck = -1;

		switch (e->kind) {
		case E_USER:
			want = e->user_answer;
			if (!l2)
				ck = C_L1_USER;
			else
				ck = e->nflags & KVM_HYPERV_HCALL_NESTED_DIRECT_GRANT ?
				     C_RELAY_DIRECT : C_RELAY_TLFS;
			break;
		case E_L0:
		case E_KVMHC:
			want = e->status;
			if (!l2)
				ck = e->kind == E_KVMHC ? C_L1_KVMHC : C_L1_L0;
			else if (e->eventfd)
				ck = C_RELAY_EVENTFD;
			else if (!strncmp(e->why, "flush", 5) || !strncmp(e->why, "L2 TLB", 6))
				ck = C_L2_FLUSH_L0;
			else if (!strcmp(e->why, "relayed signal: no memslot"))
				ck = C_RELAY_NOSLOT;
			else
				ck = e->status == ST_INVALID_ALIGNMENT ? C_RELAY_ALIGN :
				     e->status == ST_INVALID_PARAMETER ? C_RELAY_PARAM : C_RELAY_INPUT;
			break;
		case E_L1:
			want = o->l1_answer;
			ck = C_L2_L1;
			break;
		case E_UD:
			want = o->rax;
			ck = C_L2_UD;
			break;
		}
		want_efd += e->eventfd;
		if (c->user_exits[i] != (e->kind == E_USER))
			report(c, i, "%u userspace exits", c->user_exits[i]);
		else if (l2 && kind != (e->kind == E_L1 ? K_HCALL : e->kind == E_UD ? K_UD : K_NONE))
			report(c, i, "L1 saw %s (L2 result 0x%" PRIx64 ")",
			       (const char *[]){ "nothing", "the call",
				"the call with changed registers", "#UD" }[kind & 3], res);
		else if (res != want)
			report(c, i, "result 0x%" PRIx64 ", want 0x%" PRIx64, res, want);
		else if (bad)
			report(c, i, "caller's registers changed (mask 0x%x)", bad);
		if (ck >= 0)
			counters[ck].n++;
		if (l2) {
			counters[C_COMPAT].n += b->mode == M_COMPAT;
			counters[C_CPL3].n += b->mode == M_CPL3;
			counters[C_SHADOW].n += !b->np;
		}
	}
	if (read(c->efd, &got_efd, sizeof(got_efd)) != sizeof(got_efd))
		got_efd = 0;
	if (got_efd != want_efd) {
		c->mismatches++;
		printf("%s: MISMATCH iteration %" PRIu64 ": eventfd signalled %" PRIu64
		       " times, want %" PRIu64 "\n", PROG, c->iter, got_efd, want_efd);
	}
}

/* ---- VMM: VM setup ------------------------------------------------------ */

static u64 *tdp_pte(struct kvm_vm *vm, u64 root, u64 gpa, int level)
{
	u64 *table = addr_gpa2hva(vm, root);
	int l;

	for (l = 4; l > level; l--) {
		u64 e = table[(gpa >> (12 + 9 * (l - 1))) & 511];

		TEST_ASSERT(e & 7, "no nested entry for 0x%lx at level %d", gpa, l);
		table = addr_gpa2hva(vm, e & GENMASK_ULL(51, 12));
	}
	return &table[(gpa >> (12 + 9 * (level - 1))) & 511];
}

/* Not readable for L2: EPT execute-only, NPT supervisor-only (walks are user). */
static void tdp_noread(u64 *pte)
{
	if (is_amd)
		*pte &= ~PTE_USER_MASK;
	else
		*pte &= ~(u64)3;
}

static u64 build_tdp(struct ctx *c, struct svm_test_data *svm_data, struct vmx_pages *vmx)
{
	struct kvm_vm *vm = c->vm;
	u64 large = c->slot_gpa & ~(SZ_2M - 1), root;

	if (is_amd) {
		prepare_npt(svm_data, vm);
		nested_npt_map_memslot(svm_data, vm, 0);
		nested_npt_pg_map(svm_data, vm, ALIAS_GPA, c->slot_gpa);
		nested_npt_pg_map(svm_data, vm, NOREAD_GPA, c->slot_gpa);
		nested_npt_pg_map(svm_data, vm, NOSLOT_ALIAS_GPA, NOSLOT_L1_GPA);
		nested_npt_pg_map(svm_data, vm, NOREAD_PDE_GPA, c->slot_gpa);
		__nested_npt_map(svm_data, vm, LARGE_GPA, large, SZ_2M, PG_LEVEL_2M);
		__nested_npt_map(svm_data, vm, NOREAD_LARGE_GPA, large, SZ_2M, PG_LEVEL_2M);
		root = svm_data->ncr3_gpa;
	} else {
		prepare_eptp(vmx, vm, 0);
		nested_map_memslot(vmx, vm, 0);
		nested_pg_map(vmx, vm, ALIAS_GPA, c->slot_gpa);
		nested_pg_map(vmx, vm, NOREAD_GPA, c->slot_gpa);
		nested_pg_map(vmx, vm, NOSLOT_ALIAS_GPA, NOSLOT_L1_GPA);
		nested_pg_map(vmx, vm, NOREAD_PDE_GPA, c->slot_gpa);
		__nested_pg_map(vmx, vm, LARGE_GPA, large, PG_LEVEL_2M);
		__nested_pg_map(vmx, vm, NOREAD_LARGE_GPA, large, PG_LEVEL_2M);
		root = vmx->eptp_gpa;
	}
	tdp_noread(tdp_pte(vm, root, NOREAD_GPA, 1));
	tdp_noread(tdp_pte(vm, root, NOREAD_LARGE_GPA, 2));
	tdp_noread(tdp_pte(vm, root, NOREAD_PDE_GPA, 2));
	return root;
}

static void gen_vmcfg(struct fuzz_rng *r, struct vmcfg *cfg)
{
	static const u64 classes[] = {
		KVM_HV_NESTED_RELAY_POST_MESSAGE | KVM_HV_NESTED_RELAY_SIGNAL_EVENT,
		KVM_HV_NESTED_RELAY_POST_MESSAGE | KVM_HV_NESTED_RELAY_SIGNAL_EVENT,
		KVM_HV_NESTED_RELAY_POST_MESSAGE | KVM_HV_NESTED_RELAY_SIGNAL_EVENT,
		KVM_HV_NESTED_RELAY_POST_MESSAGE, KVM_HV_NESTED_RELAY_SIGNAL_EVENT,
	};

	memset(cfg, 0, sizeof(*cfg));
	if (fuzz_chance(r, 9, 10)) {
		cfg->flags = fuzz_pick(r, classes);
		if (fuzz_chance(r, 1, 2))
			cfg->flags |= KVM_HV_NESTED_RELAY_DIRECT_GRANT;
	}
	cfg->synic = fuzz_chance(r, 9, 10);
	cfg->enforce = fuzz_chance(r, 1, 5);
	if (cfg->enforce) {
		cfg->no_post = fuzz_chance(r, 1, 2);
		cfg->no_signal = fuzz_chance(r, 1, 2);
	}
	cfg->direct_flush = fuzz_chance(r, 85, 100);
}

static void vm_setup(struct ctx *c)
{
	vm_vaddr_t nested_gva = 0, hv_pages_gva = 0, hcall_gva, slot_gva;
	struct kvm_hyperv_eventfd hvevfd = {};
	struct svm_test_data *svm_data = NULL;
	struct vmx_pages *vmx = NULL;
	struct userspace_mem_region *region;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	c->vm = vm = vm_create(1);
	if (c->cfg.flags)
		vm_enable_cap(vm, KVM_CAP_HYPERV_NESTED_RELAY, c->cfg.flags);
	c->efd = eventfd(0, EFD_NONBLOCK);
	TEST_ASSERT(c->efd >= 0, "eventfd");
	hvevfd.conn_id = CONN_EVENTFD;
	hvevfd.fd = c->efd;
	vm_ioctl(vm, KVM_HYPERV_EVENTFD, &hvevfd);

	c->vcpu = vcpu = vm_vcpu_add(vm, 0, l1_guest_code);
	vcpu_set_hv_cpuid(vcpu);
	if (c->cfg.enforce) {
		vcpu_enable_cap(vcpu, KVM_CAP_HYPERV_ENFORCE_CPUID, 1);
		if (c->cfg.no_post)
			vcpu_clear_cpuid_feature(vcpu, HV_POST_MESSAGES);
		if (c->cfg.no_signal)
			vcpu_clear_cpuid_feature(vcpu, HV_SIGNAL_EVENTS);
	}
	if (!c->cfg.direct_flush)
		vcpu_clear_cpuid_feature(vcpu, HV_X64_NESTED_DIRECT_FLUSH);
	if (c->cfg.synic)
		vcpu_enable_cap(vcpu, KVM_CAP_HYPERV_SYNIC2, 0);
	if (!is_amd)
		vcpu_enable_evmcs(vcpu);

	if (is_amd)
		svm_data = vcpu_alloc_svm(vm, &nested_gva);
	else
		vmx = vcpu_alloc_vmx(vm, &nested_gva);
	vcpu_alloc_hyperv_test_pages(vm, &hv_pages_gva);
	hcall_gva = vm_vaddr_alloc_page(vm);
	memset(addr_gva2hva(vm, hcall_gva), 0, PAGE_SIZE);
	slot_gva = vm_vaddr_alloc_page(vm);
	c->slot_hva = addr_gva2hva(vm, slot_gva);
	c->slot_gpa = addr_gva2gpa(vm, slot_gva);
	memset(c->slot_hva, 0, PAGE_SIZE);

	region = memslot2region(vm, 0);
	TEST_ASSERT(region->region.guest_phys_addr == 0, "memslot 0 not at 0");
	c->slot0_end = region->region.memory_size;
	TEST_ASSERT(c->slot0_end <= NOSLOT_L1_GPA && c->slot0_end <= ALIAS_GPA,
		    "guest memory too large: 0x%" PRIx64, c->slot0_end);

	vm_set_user_bit(vm);	/* L2 at CPL3 runs on L1's page tables */
	c->root[1] = build_tdp(c, svm_data, vmx);
	c->root[0] = build_tdp(c, svm_data, vmx);

	sync_global_to_guest(vm, is_amd);
	sync_global_to_guest(vm, vpid);
	c->g = addr_gva2hva(vm, (vm_vaddr_t)&td);
	memset(c->g, 0, sizeof(*c->g));
	c->g->root[0] = c->root[0];
	c->g->root[1] = c->root[1];

	vcpu_args_set(vcpu, 3, nested_gva, hv_pages_gva, addr_gva2gpa(vm, hcall_gva));
	vcpu_set_msr(vcpu, HV_X64_MSR_VP_INDEX, vcpu->id);
	c->svm_flush_hc = false;
	counters[C_VMS].n++;
}

/* Run until L1's next GUEST_SYNC (or GUEST_DONE), serving Hyper-V exits. */
static bool run_to_sync(struct ctx *c)
{
	struct ucall uc;

	for (;;) {
		vcpu_run(c->vcpu);
		if (c->vcpu->run->exit_reason == KVM_EXIT_HYPERV) {
			handle_hv_exit(c);
			continue;
		}
		TEST_ASSERT_KVM_EXIT_REASON(c->vcpu, KVM_EXIT_IO);
		switch (get_ucall(c->vcpu, &uc)) {
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		case UCALL_SYNC:
			return true;
		case UCALL_DONE:
			return false;
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char *argv[])
{
	struct fuzz_opts o = fuzz_parse(argc, argv, PROG, DEFAULT_SEED, DEFAULT_ITERATIONS);
	struct fuzz_rng rng;
	struct ctx c = { .rng = &rng };
	u64 ops = 0;
	double t0;

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_HYPERV_NESTED_RELAY));
	TEST_REQUIRE(kvm_cpu_has(X86_FEATURE_VMX) || kvm_cpu_has(X86_FEATURE_SVM));
	is_amd = kvm_cpu_has(X86_FEATURE_SVM);
	if (!is_amd)
		TEST_REQUIRE(kvm_has_cap(KVM_CAP_HYPERV_ENLIGHTENED_VMCS));
	TEST_REQUIRE(is_amd ? kvm_cpu_has(X86_FEATURE_NPT) : kvm_cpu_has_ept());
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_HYPERV_SYNIC2));
	vpid = !is_amd && (kvm_get_feature_msr(MSR_IA32_VMX_PROCBASED_CTLS2) >> 32) &
			  SECONDARY_EXEC_ENABLE_VPID;
	printf("%s: %s, VPID %s\n", PROG, is_amd ? "SVM" : "VMX", vpid ? "on" : "off");
	fuzz_rng_seed(&rng, o.seed);
	t0 = now_s();

	for (c.iter = 0; c.iter < o.iterations; c.iter++) {
		if (c.iter % BATCHES_PER_VM == 0) {
			gen_vmcfg(&rng, &c.cfg);
			vm_setup(&c);
			TEST_ASSERT(run_to_sync(&c), "L1 ended before its first batch");
		}
		gen_batch(&c);
		TEST_ASSERT(run_to_sync(&c), "L1 ended during a batch");
		check_batch(&c);
		ops += c.b.nops;
		if (c.iter % BATCHES_PER_VM == BATCHES_PER_VM - 1 || c.iter + 1 == o.iterations) {
			c.g->nops = 0;
			TEST_ASSERT(!run_to_sync(&c), "L1 did not finish");
			close(c.efd);
			kvm_vm_free(c.vm);
		}
	}

	{
		double dt = now_s() - t0;

		/* Bochs' guest clock can stand still: no rate from a time it did not see. */
		if (dt >= 1)
			printf("%s: %" PRIu64 " guest ops in %.1f s, %.0f ops/s\n", PROG, ops, dt,
			       ops / dt);
		else
			printf("%s: %" PRIu64 " guest ops in %.3f s (guest clock)\n", PROG, ops, dt);
	}
	fuzz_print_counters(PROG, counters, NR_C);
	fuzz_summary(PROG, &o, ops, c.mismatches);
	return c.mismatches ? 1 : 0;
}
