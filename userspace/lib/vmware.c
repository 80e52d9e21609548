// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/kvm.h>

#include "nestkit/vm.h"
#include "nestkit/vmware.h"

#define LOW32	0xffffffffull

/* Guests read EBX, ECX, ... as 32-bit values; VMware leaves the upper halves. */
static void set_low32(uint64_t *reg, uint32_t val)
{
	*reg = (*reg & ~LOW32) | val;
}

int nk_vmware_backdoor(const struct nk_vmware_cfg *cfg, struct nk_vmware_regs *r)
{
	uint32_t eax = UINT32_MAX;
	int ret = NK_VMWARE_ANSWERED;

	if (!cfg || !r)
		return -EINVAL;

	if ((uint32_t)r->rax != NK_VMWARE_MAGIC) {
		ret = NK_VMWARE_NOT_BACKDOOR;
	} else {
		switch ((uint16_t)r->rcx) {
		case NK_VMWARE_CMD_GETVERSION:
			eax = cfg->version;
			set_low32(&r->rbx, NK_VMWARE_MAGIC);
			set_low32(&r->rcx, cfg->vmx_type);
			break;
		case NK_VMWARE_CMD_GETMHZ:
			/* Unknown speed: the default answer, which guests read as -1. */
			if (!cfg->mhz) {
				ret = NK_VMWARE_UNSUPPORTED;
				break;
			}
			eax = cfg->mhz;
			break;
		default:
			ret = NK_VMWARE_UNSUPPORTED;
			break;
		}
	}
	r->rax = eax;
	return ret;
}

int nk_vmware_hypercall(const struct nk_vmware_cfg *cfg, struct nk_vmware_regs *r,
			char *err, size_t errlen)
{
	if (!cfg || !r) {
		snprintf(err, errlen, "vmware hypercall: no config or registers");
		return -EINVAL;
	}
	if ((uint32_t)r->rax != NK_VMWARE_MAGIC) {
		snprintf(err, errlen, "vmware hypercall: EAX %#x is not the magic",
			 (uint32_t)r->rax);
		return -EINVAL;
	}
	if (r->rdx & NK_VMWARE_HC_HB) {
		snprintf(err, errlen, "vmware hypercall: high-bandwidth command %#x not supported",
			 (uint16_t)r->rcx);
		return -EOPNOTSUPP;
	}
	return nk_vmware_backdoor(cfg, r);
}

/* Where the exit's data lives, or NULL if any of it lies outside the mapping. */
static uint8_t *io_data(struct kvm_run *run, size_t run_size)
{
	size_t len = (size_t)run->io.size * run->io.count;

	if (run->io.data_offset < sizeof(*run) || run->io.data_offset > run_size ||
	    len > run_size - run->io.data_offset)
		return NULL;
	return (uint8_t *)run + run->io.data_offset;
}

/* A refused IN still completes: give it what an unclaimed port reads. */
static void refuse_in(struct kvm_run *run, size_t run_size)
{
	uint8_t *data = io_data(run, run_size);

	if (run->io.direction == KVM_EXIT_IO_IN && data)
		memset(data, 0xff, (size_t)run->io.size * run->io.count);
}

/* -ENOENT / -EOPNOTSUPP / -EINVAL as documented, 0 for a call to answer. */
static int check_io(struct kvm_run *run, size_t run_size, char *err, size_t errlen)
{
	if (run->exit_reason != KVM_EXIT_IO) {
		snprintf(err, errlen, "vmware: exit reason %u is not KVM_EXIT_IO",
			 run->exit_reason);
		return -ENOENT;
	}
	if (run->io.port != NK_VMWARE_PORT && run->io.port != NK_VMWARE_PORT_HB) {
		snprintf(err, errlen, "vmware: port %#x is not a backdoor port", run->io.port);
		return -ENOENT;
	}

	if (run->io.port == NK_VMWARE_PORT_HB) {
		snprintf(err, errlen, "vmware: high-bandwidth port %#x not supported",
			 run->io.port);
		refuse_in(run, run_size);
		return -EOPNOTSUPP;
	}
	if (run->io.direction != KVM_EXIT_IO_IN) {
		snprintf(err, errlen, "vmware: OUT to port %#x, the backdoor is called with IN",
			 run->io.port);
		return -EINVAL;
	}
	if (run->io.size != 4 || run->io.count != 1) {
		snprintf(err, errlen, "vmware: IN of %u x %u bytes, the backdoor takes one of 4",
			 run->io.count, run->io.size);
		refuse_in(run, run_size);
		return -EINVAL;
	}
	if (!io_data(run, run_size)) {
		snprintf(err, errlen, "vmware: I/O data offset %#llx outside the %zu-byte run area",
			 (unsigned long long)run->io.data_offset, run_size);
		return -EINVAL;
	}
	return 0;
}

int nk_vmware_apply_io(const struct nk_vmware_cfg *cfg, struct kvm_run *run,
		       size_t run_size, struct kvm_regs *regs, char *err, size_t errlen)
{
	struct nk_vmware_regs r;
	uint32_t eax;
	int ret;

	if (!cfg || !run || !regs) {
		snprintf(err, errlen, "vmware: no config, run area or registers");
		return -EINVAL;
	}
	ret = check_io(run, run_size, err, errlen);
	if (ret)
		return ret;

	r = (struct nk_vmware_regs){
		.rax = regs->rax, .rbx = regs->rbx, .rcx = regs->rcx, .rdx = regs->rdx,
		.rsi = regs->rsi, .rdi = regs->rdi, .rbp = regs->rbp,
	};
	ret = nk_vmware_backdoor(cfg, &r);
	if (ret < 0)
		return ret;
	regs->rax = r.rax;
	regs->rbx = r.rbx;
	regs->rcx = r.rcx;
	regs->rdx = r.rdx;
	regs->rsi = r.rsi;
	regs->rdi = r.rdi;
	regs->rbp = r.rbp;
	eax = (uint32_t)r.rax;
	memcpy(io_data(run, run_size), &eax, sizeof(eax));	/* x86: little-endian */
	snprintf(err, errlen, "%s", ret == NK_VMWARE_ANSWERED ? "" :
		 ret == NK_VMWARE_UNSUPPORTED ? "vmware: unknown command, default answer" :
		 "vmware: no magic in EAX, default answer");
	return ret;
}

int nk_vmware_handle_io(const struct nk_vmware_cfg *cfg, struct nk_vcpu *vcpu,
			char *err, size_t errlen)
{
	struct kvm_regs regs;
	int ret, e;

	if (!cfg || !vcpu || !vcpu->run) {
		snprintf(err, errlen, "vmware: no config or vCPU");
		return -EINVAL;
	}
	ret = check_io(vcpu->run, vcpu->run_size, err, errlen);
	if (ret)
		return ret;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs)) {
		e = errno;
		snprintf(err, errlen, "vmware: KVM_GET_REGS: %s", strerror(e));
		refuse_in(vcpu->run, vcpu->run_size);
		return -e;
	}
	ret = nk_vmware_apply_io(cfg, vcpu->run, vcpu->run_size, &regs, err, errlen);
	if (ret < 0)
		return ret;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs)) {
		e = errno;
		snprintf(err, errlen, "vmware: KVM_SET_REGS: %s", strerror(e));
		return -e;
	}
	return ret;
}
