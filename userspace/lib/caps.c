// SPDX-License-Identifier: GPL-2.0
/* Capability table and probing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "nestkit/nestkit.h"

/* Newer than Debian 12's linux-libc-dev (6.1); value from the 6.12 uAPI. */
#ifndef KVM_CAP_MEMORY_FAULT_INFO
#define KVM_CAP_MEMORY_FAULT_INFO 232
#endif

const struct nk_cap nk_caps[] = {
	{ KVM_CAP_HYPERV_NESTED_RELAY, "KVM_CAP_HYPERV_NESTED_RELAY",
	  "F1 relay nested Hyper-V HvPostMessage/HvSignalEvent to userspace", 1 },
	{ KVM_CAP_X86_VMWARE, "KVM_CAP_X86_VMWARE",
	  "F2 VMware backdoor, hypercall exits, L2 CPL3 backdoor", 1 },
	{ KVM_CAP_X86_APIC_REMOTE_READ, "KVM_CAP_X86_APIC_REMOTE_READ",
	  "F3 APIC Remote Read IPI emulation", 1 },
	{ KVM_CAP_MEMORY_FAULT_PERM, "KVM_CAP_MEMORY_FAULT_PERM",
	  "F4 memory-fault exits on permission faults", 1 },
	{ KVM_CAP_NESTED_STATE, "KVM_CAP_NESTED_STATE",
	  "nested state save/restore (0 = no nested support)", 0 },
	{ KVM_CAP_HYPERV_ENLIGHTENED_VMCS, "KVM_CAP_HYPERV_ENLIGHTENED_VMCS",
	  "Hyper-V enlightened VMCS (VMX only)", 0 },
	{ KVM_CAP_EXIT_HYPERCALL, "KVM_CAP_EXIT_HYPERCALL",
	  "KVM PV hypercalls exiting to userspace", 0 },
	{ KVM_CAP_MEMORY_FAULT_INFO, "KVM_CAP_MEMORY_FAULT_INFO",
	  "KVM_EXIT_MEMORY_FAULT (upstream: private memory only)", 0 },
};
const size_t nk_ncaps = sizeof(nk_caps) / sizeof(nk_caps[0]);

int nk_kvm_open(struct nk_kvm *kvm, const char *path, char *err, size_t errlen)
{
	int e;

	kvm->vm_fd = -1;
	kvm->kvm_fd = open(path, O_RDWR | O_CLOEXEC);
	if (kvm->kvm_fd < 0) {
		e = errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
		return -e;
	}
	if (ioctl(kvm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		snprintf(err, errlen, "%s: not a KVM device (API version mismatch)", path);
		nk_kvm_close(kvm);
		return -ENOTTY;
	}
	kvm->vm_fd = ioctl(kvm->kvm_fd, KVM_CREATE_VM, 0);
	if (kvm->vm_fd < 0) {
		e = errno;
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(e));
		nk_kvm_close(kvm);
		return -e;
	}
	return 0;
}

void nk_kvm_close(struct nk_kvm *kvm)
{
	if (kvm->vm_fd >= 0)
		close(kvm->vm_fd);
	if (kvm->kvm_fd >= 0)
		close(kvm->kvm_fd);
	kvm->vm_fd = kvm->kvm_fd = -1;
}

long nk_check_cap(const struct nk_kvm *kvm, uint32_t cap)
{
	int fd = kvm->kvm_fd;
	int r;

	if (kvm->vm_fd >= 0 &&
	    ioctl(kvm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_CHECK_EXTENSION_VM) > 0)
		fd = kvm->vm_fd;
	r = ioctl(fd, KVM_CHECK_EXTENSION, (unsigned long)cap);
	return r < 0 ? -errno : r;
}

const char *nk_cap_describe(long value, char *buf, size_t len)
{
	if (value < 0)
		snprintf(buf, len, "error (%s)", strerror((int)-value));
	else if (value == 0)
		snprintf(buf, len, "absent");
	else if (value == 1)
		snprintf(buf, len, "present");
	else
		snprintf(buf, len, "present (value 0x%lx)", (unsigned long)value);
	return buf;
}

int nk_probe_print(FILE *f, const struct nk_kvm *kvm, const char *indent)
{
	char desc[64];
	int missing = 0;
	size_t i;

	for (i = 0; i < nk_ncaps; i++) {
		long v = nk_check_cap(kvm, nk_caps[i].cap);

		if (i == 0)
			fprintf(f, "%snestkit capabilities:\n", indent);
		else if (!nk_caps[i].nestkit && nk_caps[i - 1].nestkit)
			fprintf(f, "%srelated upstream capabilities:\n", indent);
		fprintf(f, "%s  %-32s %-24s %s\n", indent, nk_caps[i].name,
			nk_cap_describe(v, desc, sizeof(desc)), nk_caps[i].feature);
		if (nk_caps[i].nestkit && v <= 0)
			missing++;
	}
	return missing;
}
