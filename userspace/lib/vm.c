// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "nestkit/vm.h"

static int fail(char *err, size_t errlen, const char *what)
{
	int e = errno;

	snprintf(err, errlen, "%s: %s", what, strerror(e));
	return -e;
}

void *nk_vm_add_memory(struct nk_kvm *kvm, size_t size, char *err, size_t errlen)
{
	struct kvm_userspace_memory_region region = { .slot = 0, .memory_size = size };
	void *mem;

	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		fail(err, errlen, "mmap guest memory");
		return NULL;
	}
	region.userspace_addr = (uintptr_t)mem;
	if (ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region)) {
		fail(err, errlen, "KVM_SET_USER_MEMORY_REGION");
		munmap(mem, size);
		return NULL;
	}
	return mem;
}

int nk_vcpu_create(struct nk_kvm *kvm, int id, struct nk_vcpu *vcpu,
		   char *err, size_t errlen)
{
	int size, r;

	vcpu->run = NULL;
	vcpu->fd = ioctl(kvm->vm_fd, KVM_CREATE_VCPU, id);
	if (vcpu->fd < 0)
		return fail(err, errlen, "KVM_CREATE_VCPU");
	size = ioctl(kvm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size <= 0) {
		r = fail(err, errlen, "KVM_GET_VCPU_MMAP_SIZE");
		goto out_close;
	}
	vcpu->run_size = size;
	vcpu->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		r = fail(err, errlen, "mmap kvm_run");
		goto out_close;
	}
	return 0;
out_close:
	close(vcpu->fd);
	vcpu->fd = -1;
	return r;
}

void nk_vcpu_destroy(struct nk_vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

int nk_vcpu_set_flat32(struct nk_vcpu *vcpu, uint64_t rip, uint64_t rbx,
		       char *err, size_t errlen)
{
	struct kvm_segment seg = {
		.base = 0, .limit = 0xffffffff, .present = 1, .s = 1,
		.db = 1, .g = 1, .type = 3,	/* data, read/write, accessed */
	};
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs))
		return fail(err, errlen, "KVM_GET_SREGS");
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = seg;
	sregs.ds.selector = sregs.es.selector = sregs.fs.selector = 0x10;
	sregs.gs.selector = sregs.ss.selector = 0x10;
	seg.type = 11;			/* code, execute/read, accessed */
	seg.selector = 0x08;
	sregs.cs = seg;
	sregs.cr0 |= 1;			/* PE */
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs))
		return fail(err, errlen, "KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rip = rip;
	regs.rbx = rbx;
	regs.rflags = 2;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs))
		return fail(err, errlen, "KVM_SET_REGS");
	return 0;
}
