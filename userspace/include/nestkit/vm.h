/* SPDX-License-Identifier: GPL-2.0 */
/* The smallest VM a demo needs: memory, vCPUs, a flat 32-bit start. */
#ifndef NESTKIT_VM_H
#define NESTKIT_VM_H

#include <stddef.h>
#include <stdint.h>

#include "nestkit.h"

struct nk_vcpu {
	int fd;
	struct kvm_run *run;
	size_t run_size;
};

/* Back guest physical [0, size) with anonymous memory in slot 0. */
void *nk_vm_add_memory(struct nk_kvm *kvm, size_t size, char *err, size_t errlen);

int nk_vcpu_create(struct nk_kvm *kvm, int id, struct nk_vcpu *vcpu,
		   char *err, size_t errlen);
void nk_vcpu_destroy(struct nk_vcpu *vcpu);

/* 32-bit protected mode, flat 4 GiB segments, paging off, RIP = @rip. */
int nk_vcpu_set_flat32(struct nk_vcpu *vcpu, uint64_t rip, uint64_t rbx,
		       char *err, size_t errlen);

#endif
