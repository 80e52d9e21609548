/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A VMware "backdoor" responder: what a VMM answers when a guest (VMware
 * Tools, Linux's vmware platform code) calls the low-bandwidth backdoor,
 * either as IN EAX,DX on port 0x5658 (a KVM_EXIT_IO) or in the hypercall
 * form, VMCALL/VMMCALL with the magic in EAX (delivered to userspace with
 * KVM_CAP_X86_VMWARE's hypercall bit).
 *
 * The protocol has no specification. This follows what its guests send
 * (open-vm-tools lib/include/backdoor_def.h, Linux arch/x86/include/asm/
 * vmware.h) and what other hosts answer (QEMU hw/i386/vmport.c, the Xen
 * vmport series):
 *  - in: EAX = magic, CX = command (ECX bits 31:16 are the command's own
 *    argument), DX = port (I/O form) or flags (hypercall form);
 *  - only the low 32 bits of a register count: the magic and the command
 *    are found whatever the upper halves of RAX and RCX hold;
 *  - out: EAX is written zero-extended, as IN EAX,DX does in 64-bit mode;
 *    other registers a command answers in change in their low 32 bits only,
 *    the upper halves keep the guest's values, as VMware does (noted by
 *    the Xen series; QEMU zero-extends instead, no guest relies on either);
 *  - the default answer, for a wrong magic and for an unknown command, is
 *    EAX = 0xffffffff with every other register untouched: what an
 *    unclaimed port reads, what QEMU and Xen answer, and what guests test
 *    for (Linux: eax != UINT_MAX && ebx == magic).
 */
#ifndef NESTKIT_VMWARE_H
#define NESTKIT_VMWARE_H

#include <stddef.h>
#include <stdint.h>

#define NK_VMWARE_MAGIC		0x564d5868u	/* "VMXh" */
#define NK_VMWARE_PORT		0x5658		/* low bandwidth: one call per IN */
#define NK_VMWARE_PORT_HB	0x5659		/* high bandwidth: REP INS/OUTS */

#define NK_VMWARE_CMD_GETMHZ		1
#define NK_VMWARE_CMD_GETVERSION	10

/* Hypercall form: DX holds these flags where the I/O form has the port. */
#define NK_VMWARE_HC_HB		0x1
#define NK_VMWARE_HC_OUT	0x2

/* GETVERSION's EAX: open-vm-tools' VERSION_MAGIC, also QEMU's default. */
#define NK_VMWARE_VERSION		6
/* GETVERSION's ECX, open-vm-tools enum VMXType. */
#define NK_VMWARE_TYPE_ESX		2	/* QEMU's and Xen's choice */
#define NK_VMWARE_TYPE_WORKSTATION	4

struct nk_vmware_cfg {
	uint32_t version;	/* GETVERSION EAX, normally NK_VMWARE_VERSION */
	uint32_t vmx_type;	/* GETVERSION ECX, normally NK_VMWARE_TYPE_ESX */
	uint32_t mhz;		/* GETMHZ EAX; 0 = unknown: answered as unsupported */
};

/* The registers the protocol uses, full width as KVM holds them. */
struct nk_vmware_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp;
};

/* What a call was, for the VMM's logs; the guest's answer is in the registers. */
enum nk_vmware_result {
	NK_VMWARE_ANSWERED = 0,		/* a command implemented here */
	NK_VMWARE_UNSUPPORTED = 1,	/* right magic, unknown command: default answer */
	NK_VMWARE_NOT_BACKDOOR = 2,	/* wrong magic: default answer */
};

/*
 * Answer one low-bandwidth call: @r holds the guest's registers on entry
 * and what the guest sees once its IN completes on return.  Returns an
 * enum nk_vmware_result, or -EINVAL if @cfg or @r is NULL.
 */
int nk_vmware_backdoor(const struct nk_vmware_cfg *cfg, struct nk_vmware_regs *r);

/*
 * Answer a hypercall-form call, same registers and answers.  The OUT flag
 * is accepted: a low-bandwidth call moves no data, so direction means
 * nothing to it.  Returns an enum nk_vmware_result, or, with @r untouched
 * and a message in @err:
 *  -EINVAL      NULL argument, or no magic in EAX: KVM exits only for the
 *               magic, so the VMM passed something that is not this call;
 *  -EOPNOTSUPP  the HB flag: high-bandwidth transfers are not implemented.
 *               A guest only gets there after opening a message channel
 *               (command 30), which this responder answers as unsupported.
 */
int nk_vmware_hypercall(const struct nk_vmware_cfg *cfg, struct nk_vmware_regs *r,
			char *err, size_t errlen);

struct kvm_run;
struct kvm_regs;
struct nk_vcpu;

/*
 * Answer a KVM_EXIT_IO in @run (@run_size bytes mapped) given the vCPU's
 * registers in @regs (from KVM_GET_REGS), updated for KVM_SET_REGS.  EAX
 * goes into the exit's data area, which KVM copies to RAX on re-entry,
 * and into @regs->rax as well, because KVM_SET_REGS could otherwise undo
 * that copy (QEMU's vmport learnt this the hard way).  Returns an enum
 * nk_vmware_result, or, with a message in @err:
 *  -ENOENT      not an I/O exit on a backdoor port: nothing touched, the
 *               VMM routes it elsewhere;
 *  -EOPNOTSUPP  the high-bandwidth port;
 *  -EINVAL      NULL argument, or malformed: an OUT (every known guest
 *               calls with IN; VMware and QEMU also answer an OUT, this
 *               responder makes the VMM notice it), a size other than 4,
 *               a string access (count != 1), a data area outside @run.
 * On every error @regs is untouched.  After -EOPNOTSUPP or -EINVAL, an IN
 * with an in-bounds data area reads all-ones, as from an unclaimed port,
 * never stale bytes; after -ENOENT the data area is left to its owner.
 */
int nk_vmware_apply_io(const struct nk_vmware_cfg *cfg, struct kvm_run *run,
		       size_t run_size, struct kvm_regs *regs, char *err, size_t errlen);

/*
 * nk_vmware_apply_io() on a vCPU that just returned KVM_EXIT_IO: exits that
 * are not for the backdoor cost no ioctl; a call gets KVM_GET_REGS and, when
 * answered, KVM_SET_REGS.  Same returns, plus the ioctls' -errno.
 */
int nk_vmware_handle_io(const struct nk_vmware_cfg *cfg, struct nk_vcpu *vcpu,
			char *err, size_t errlen);

#endif
