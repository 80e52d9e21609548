/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libnestkit: what a userspace VMM needs to use the nestkit KVM extensions.
 */
#ifndef NESTKIT_H
#define NESTKIT_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "caps.h"

/* A KVM system fd and one VM fd, enough to ask per-VM questions. */
struct nk_kvm {
	int kvm_fd;
	int vm_fd;
};

/* One capability KVM may report, with what it means to a VMM. */
struct nk_cap {
	uint32_t cap;
	const char *name;
	const char *feature;	/* short human description */
	int nestkit;		/* 1: added by the nestkit series */
};

/* The capabilities the demo reports: nestkit's own, then related upstream ones. */
extern const struct nk_cap nk_caps[];
extern const size_t nk_ncaps;

/*
 * Open @path (normally "/dev/kvm") and create a VM. Returns 0, or a negative
 * errno with a message in @err (@errlen bytes).
 */
int nk_kvm_open(struct nk_kvm *kvm, const char *path, char *err, size_t errlen);
void nk_kvm_close(struct nk_kvm *kvm);

/*
 * KVM_CHECK_EXTENSION on the VM fd (per-VM answer), falling back to the
 * system fd on kernels without KVM_CAP_CHECK_EXTENSION_VM. Returns the
 * capability's value (0 = absent), or a negative errno.
 */
long nk_check_cap(const struct nk_kvm *kvm, uint32_t cap);

/*
 * Describe a capability value for humans into @buf: "absent", "present" or
 * "present (value 0x...)". Returns @buf.
 */
const char *nk_cap_describe(long value, char *buf, size_t len);

/*
 * Print every capability of nk_caps[] with its value to @f, each line
 * prefixed by @indent, under two headings (nestkit's own, related upstream).
 * Returns how many of nestkit's own capabilities are absent.
 */
int nk_probe_print(FILE *f, const struct nk_kvm *kvm, const char *indent);
#define NK_NR_NESTKIT_CAPS 4

#endif
