// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the VMware backdoor responder, on what a guest
 * controls: its registers and the KVM_EXIT_IO that its IN/OUT/INS/OUTS
 * made (port, direction, size, count), and on what a VMM might pass by
 * mistake (another exit, a data offset outside the run area).
 *
 * Input: the run area size selector, struct kvm_run's io fields, the
 * registers (7 x 8 bytes), then the same registers again for the hypercall
 * form.  Checks the contract of nestkit/vmware.h, not only "no crash":
 * the return values; registers untouched on every error; the run area
 * untouched for an exit that is not the backdoor's; a refused IN reads
 * all-ones, never stale bytes; an answered IN has EAX in the data area;
 * the protocol's answers (GETVERSION, the default -1) and that only the
 * low halves of the registers change.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/kvm.h>

#include "nestkit/vmware.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t take64(const uint8_t **p, size_t *n)
{
	uint64_t v = 0;
	size_t k = *n < 8 ? *n : 8;

	memcpy(&v, *p, k);
	*p += k;
	*n -= k;
	return v;
}

static void check_answer(const struct nk_vmware_cfg *cfg, int ret,
			 const struct nk_vmware_regs *in, const struct nk_vmware_regs *out)
{
	CHECK(out->rdx == in->rdx && out->rsi == in->rsi && out->rdi == in->rdi &&
	      out->rbp == in->rbp);
	CHECK(out->rbx >> 32 == in->rbx >> 32 && out->rcx >> 32 == in->rcx >> 32);
	if ((uint32_t)in->rax != NK_VMWARE_MAGIC) {
		CHECK(ret == NK_VMWARE_NOT_BACKDOOR && out->rax == UINT32_MAX);
		CHECK(out->rbx == in->rbx && out->rcx == in->rcx);
	} else if ((uint16_t)in->rcx == NK_VMWARE_CMD_GETVERSION) {
		CHECK(ret == NK_VMWARE_ANSWERED && out->rax == cfg->version);
		CHECK((uint32_t)out->rbx == NK_VMWARE_MAGIC && (uint32_t)out->rcx == cfg->vmx_type);
	} else if (ret == NK_VMWARE_UNSUPPORTED) {
		CHECK(out->rax == UINT32_MAX);
	} else {
		CHECK(ret == NK_VMWARE_ANSWERED);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t sizes[] = { sizeof(struct kvm_run), sizeof(struct kvm_run) + 4, 4096, 8192 };
	const struct nk_vmware_cfg cfg = {
		.version = NK_VMWARE_VERSION, .vmx_type = NK_VMWARE_TYPE_ESX, .mhz = 2400,
	};
	struct nk_vmware_regs r, r0;
	struct kvm_regs regs, regs0;
	struct kvm_run *run;
	uint8_t *copy;
	size_t run_size, len;
	char err[256];
	int ret;

	if (size < 24)
		return 0;
	run_size = sizes[data[0] & 3];
	run = calloc(1, run_size);
	copy = malloc(run_size);
	CHECK(run && copy);
	/* Stale bytes that a refused IN must never return. */
	memset((uint8_t *)run + sizeof(*run), 0x5a, run_size - sizeof(*run));
	run->exit_reason = data[1] & 1 ? KVM_EXIT_IO : data[1] >> 1;
	run->io.direction = data[2] & 1;
	run->io.size = data[3];
	run->io.port = (data[4] & 0x80) ? (uint16_t)(data[4] | data[5] << 8) :
		       NK_VMWARE_PORT + (data[4] & 1);
	memcpy(&run->io.count, data + 6, 4);
	if (data[10] & 1)
		run->io.count = 1;
	memcpy(&run->io.data_offset, data + 11, 8);
	if (data[19] & 1)
		run->io.data_offset = sizeof(*run) + (data[19] >> 1);
	data += 20;
	size -= 20;

	memset(&regs, 0, sizeof(regs));
	regs.rax = take64(&data, &size);
	if (regs.rax & 1)
		regs.rax = (regs.rax & ~(uint64_t)UINT32_MAX) | NK_VMWARE_MAGIC;
	regs.rbx = take64(&data, &size);
	regs.rcx = take64(&data, &size);
	regs.rdx = take64(&data, &size);
	regs.rsi = take64(&data, &size);
	regs.rdi = take64(&data, &size);
	regs.rbp = take64(&data, &size);
	regs.rip = 0x1234;
	regs0 = regs;
	memcpy(copy, run, run_size);

	memset(err, 0xff, sizeof(err));	/* terminated only by the library */
	ret = nk_vmware_apply_io(&cfg, run, run_size, &regs, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)));
	if (ret < 0) {
		CHECK(ret == -ENOENT || ret == -EOPNOTSUPP || ret == -EINVAL);
		CHECK(!memcmp(&regs, &regs0, sizeof(regs)));
		if (ret == -ENOENT)
			CHECK(!memcmp(run, copy, run_size));
		len = (size_t)run->io.size * run->io.count;
		if (ret != -ENOENT && run->io.direction == KVM_EXIT_IO_IN &&
		    run->io.data_offset >= sizeof(*run) && run->io.data_offset <= run_size &&
		    len <= run_size - run->io.data_offset)
			for (size_t i = 0; i < len; i++)
				CHECK(((uint8_t *)run)[run->io.data_offset + i] == 0xff);
	} else {
		uint32_t eax;

		CHECK(run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_IN &&
		      run->io.size == 4 && run->io.count == 1 && run->io.port == NK_VMWARE_PORT);
		memcpy(&eax, (uint8_t *)run + run->io.data_offset, 4);
		CHECK(eax == (uint32_t)regs.rax);
		CHECK(regs.rip == regs0.rip);
		r0 = (struct nk_vmware_regs){ regs0.rax, regs0.rbx, regs0.rcx, regs0.rdx,
					      regs0.rsi, regs0.rdi, regs0.rbp };
		r = (struct nk_vmware_regs){ regs.rax, regs.rbx, regs.rcx, regs.rdx,
					     regs.rsi, regs.rdi, regs.rbp };
		check_answer(&cfg, ret, &r0, &r);
	}

	/* The hypercall form, on the remaining bytes as registers. */
	r0 = (struct nk_vmware_regs){ take64(&data, &size), take64(&data, &size),
				      take64(&data, &size), take64(&data, &size),
				      take64(&data, &size), take64(&data, &size),
				      take64(&data, &size) };
	if (r0.rax & 1)
		r0.rax = (r0.rax & ~(uint64_t)UINT32_MAX) | NK_VMWARE_MAGIC;
	r = r0;
	ret = nk_vmware_hypercall(&cfg, &r, err, sizeof(err));
	if ((uint32_t)r0.rax != NK_VMWARE_MAGIC)
		CHECK(ret == -EINVAL && !memcmp(&r, &r0, sizeof(r)));
	else if (r0.rdx & NK_VMWARE_HC_HB)
		CHECK(ret == -EOPNOTSUPP && !memcmp(&r, &r0, sizeof(r)));
	else
		check_answer(&cfg, ret, &r0, &r);

	free(copy);
	free(run);
	return 0;
}
