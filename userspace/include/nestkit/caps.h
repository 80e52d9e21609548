/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nestkit capability numbers: the one place they are defined.
 *
 * Upstream KVM numbers its capabilities sequentially from 0 (6.12 is in the
 * 230s), so any small number we picked would one day mean something else.
 * nestkit takes a private block instead, 0x4e4b0000 ("NK") + n, far above
 * anything the sequence will reach. The kernel series defines the same values
 * in include/uapi/linux/kvm.h; this header carries them for userspace built
 * against older headers.
 */
#ifndef NESTKIT_CAPS_H
#define NESTKIT_CAPS_H

#define NESTKIT_CAP_BASE 0x4e4b0000u

#ifndef KVM_CAP_HYPERV_NESTED_RELAY
#define KVM_CAP_HYPERV_NESTED_RELAY	(NESTKIT_CAP_BASE + 1)	/* F1 */
#endif
#ifndef KVM_CAP_X86_VMWARE
#define KVM_CAP_X86_VMWARE		(NESTKIT_CAP_BASE + 2)	/* F2 */
#endif
#ifndef KVM_CAP_X86_APIC_REMOTE_READ
#define KVM_CAP_X86_APIC_REMOTE_READ	(NESTKIT_CAP_BASE + 3)	/* F3 */
#endif
#ifndef KVM_CAP_MEMORY_FAULT_PERM
#define KVM_CAP_MEMORY_FAULT_PERM	(NESTKIT_CAP_BASE + 4)	/* F4 */
#endif

#endif
