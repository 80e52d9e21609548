/* SPDX-License-Identifier: GPL-2.0-only */
/* Shared by the nested demo VMMs, which build on the KVM selftest library. */
#ifndef NESTKIT_NESTED_DEMO_H
#define NESTKIT_NESTED_DEMO_H

#include "kvm_util.h"
#include "ucall_common.h"
#include "processor.h"
#include "vmx.h"
#include "svm_util.h"

/* The exit that ends a demo's run loop: L1's GUEST_DONE (or its assertion). */
static inline void nested_demo_expect_done(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	case UCALL_DONE:
		return;
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
}

/*
 * L1 code: run L2 at CPL3 (CS and SS with DPL 3; the VMM maps guest memory
 * user-accessible with vm_set_user_bit()), with #GP intercepted, as under
 * Hyper-V for a user-mode program.
 */
static inline void nested_demo_vmx_l2_cpl3(void)
{
	vmwrite(EXCEPTION_BITMAP, BIT(GP_VECTOR));
	vmwrite(GUEST_CS_SELECTOR, vmreadz(GUEST_CS_SELECTOR) | 3);
	vmwrite(GUEST_CS_AR_BYTES, vmreadz(GUEST_CS_AR_BYTES) | (3 << 5));
	vmwrite(GUEST_SS_SELECTOR, vmreadz(GUEST_SS_SELECTOR) | 3);
	vmwrite(GUEST_SS_AR_BYTES, vmreadz(GUEST_SS_AR_BYTES) | (3 << 5));
}

static inline void nested_demo_svm_l2_cpl3(struct vmcb *vmcb)
{
	vmcb->control.intercept_exceptions |= BIT(GP_VECTOR);
	vmcb->save.cs.selector |= 3;
	vmcb->save.cs.attrib |= SVM_SELECTOR_DPL_MASK;
	vmcb->save.ss.selector |= 3;
	vmcb->save.ss.attrib |= SVM_SELECTOR_DPL_MASK;
	vmcb->save.cpl = 3;
}

/*
 * L2 code: a VMCALL/VMMCALL to L1, for an L1 that preserves none of L2's
 * registers (it restarts L2 or does not care): every one is clobbered.
 */
static inline void nested_demo_l2_hypercall(bool is_amd)
{
	if (is_amd)
		asm volatile("push %%rbp; vmmcall; pop %%rbp" : : :
			     "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10",
			     "r11", "r12", "r13", "r14", "r15", "cc", "memory");
	else
		asm volatile("push %%rbp; vmcall; pop %%rbp" : : :
			     "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10",
			     "r11", "r12", "r13", "r14", "r15", "cc", "memory");
}

#endif
