/* SPDX-License-Identifier: GPL-2.0-only */
/* Shared by the nested demo VMMs, which build on the KVM selftest library. */
#ifndef NESTKIT_NESTED_DEMO_H
#define NESTKIT_NESTED_DEMO_H

#include "kvm_util.h"
#include "ucall_common.h"

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

#endif
