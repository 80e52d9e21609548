// SPDX-License-Identifier: GPL-2.0
/* Host unit tests for the VMware backdoor responder. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/kvm.h>

#include "nestkit/vm.h"
#include "nestkit/vmware.h"
#include "unit.h"

static const struct nk_vmware_cfg cfg = {
	.version = NK_VMWARE_VERSION,
	.vmx_type = NK_VMWARE_TYPE_ESX,
	.mhz = 2400,
};

/* Distinct register values, so an unexpected write shows. */
static struct nk_vmware_regs call(uint32_t cmd)
{
	return (struct nk_vmware_regs){
		.rax = NK_VMWARE_MAGIC, .rbx = 0x1111, .rcx = cmd, .rdx = NK_VMWARE_PORT,
		.rsi = 0x5555, .rdi = 0x6666, .rbp = 0x7777,
	};
}

static int same_except_rax(const struct nk_vmware_regs *a, const struct nk_vmware_regs *b)
{
	return a->rbx == b->rbx && a->rcx == b->rcx && a->rdx == b->rdx &&
	       a->rsi == b->rsi && a->rdi == b->rdi && a->rbp == b->rbp;
}

static void test_getversion(void)
{
	struct nk_vmware_regs r = call(NK_VMWARE_CMD_GETVERSION), in = r;
	struct nk_vmware_cfg ws = cfg;

	CHECK(nk_vmware_backdoor(&cfg, &r) == NK_VMWARE_ANSWERED);
	CHECK(r.rax == NK_VMWARE_VERSION);
	CHECK(r.rbx == NK_VMWARE_MAGIC);
	CHECK(r.rcx == NK_VMWARE_TYPE_ESX);
	CHECK(r.rdx == in.rdx && r.rsi == in.rsi && r.rdi == in.rdi && r.rbp == in.rbp);

	/* The answers come from the configuration. */
	ws.version = 7;
	ws.vmx_type = NK_VMWARE_TYPE_WORKSTATION;
	r = call(NK_VMWARE_CMD_GETVERSION);
	CHECK(nk_vmware_backdoor(&ws, &r) == NK_VMWARE_ANSWERED);
	CHECK(r.rax == 7 && r.rcx == NK_VMWARE_TYPE_WORKSTATION);

	/* ECX bits 31:16 are an argument, not part of the command. */
	r = call(0xabcd0000 | NK_VMWARE_CMD_GETVERSION);
	CHECK(nk_vmware_backdoor(&cfg, &r) == NK_VMWARE_ANSWERED);
	CHECK(r.rbx == NK_VMWARE_MAGIC);
}

static void test_getmhz(void)
{
	struct nk_vmware_regs r = call(NK_VMWARE_CMD_GETMHZ), in = r;
	struct nk_vmware_cfg nomhz = cfg;

	CHECK(nk_vmware_backdoor(&cfg, &r) == NK_VMWARE_ANSWERED);
	CHECK(r.rax == 2400);
	CHECK(same_except_rax(&r, &in));

	/* No known speed: the default answer, not a speed of 0. */
	nomhz.mhz = 0;
	r = in;
	CHECK(nk_vmware_backdoor(&nomhz, &r) == NK_VMWARE_UNSUPPORTED);
	CHECK(r.rax == 0xffffffff);
	CHECK(same_except_rax(&r, &in));
}

static void test_default_answer(void)
{
	struct nk_vmware_regs r, in;

	/* Unknown commands, including ones QEMU's 8-bit decode would alias. */
	static const uint32_t unknown[] = { 0, 2, 30, 45, 0xffff, 0x010a, 0x0101 };
	size_t i;

	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		r = in = call(unknown[i]);
		CHECK(nk_vmware_backdoor(&cfg, &r) == NK_VMWARE_UNSUPPORTED);
		CHECK(r.rax == 0xffffffff);
		CHECK(same_except_rax(&r, &in));
	}

	/* Wrong magic: not a backdoor call, whatever the command. */
	r = in = call(NK_VMWARE_CMD_GETVERSION);
	r.rax = in.rax = NK_VMWARE_MAGIC ^ 1;
	CHECK(nk_vmware_backdoor(&cfg, &r) == NK_VMWARE_NOT_BACKDOOR);
	CHECK(r.rax == 0xffffffff);
	CHECK(same_except_rax(&r, &in));
	/* The magic in RAX's upper half is still not EAX. */
	r = call(NK_VMWARE_CMD_GETVERSION);
	r.rax = (uint64_t)NK_VMWARE_MAGIC << 32;
	CHECK(nk_vmware_backdoor(&cfg, &r) == NK_VMWARE_NOT_BACKDOOR);

	CHECK(nk_vmware_backdoor(NULL, &r) == -EINVAL);
	CHECK(nk_vmware_backdoor(&cfg, NULL) == -EINVAL);
}

static void test_upper_halves(void)
{
	const uint64_t hi = 0xdeadbeef00000000ull;
	struct nk_vmware_regs r = call(NK_VMWARE_CMD_GETVERSION);

	/* Only EAX and CX select the call ... */
	r.rax |= hi;
	r.rbx |= hi;
	r.rcx |= hi;
	r.rsi |= hi;
	CHECK(nk_vmware_backdoor(&cfg, &r) == NK_VMWARE_ANSWERED);
	/* ... EAX is zero-extended, answered registers keep their upper halves. */
	CHECK(r.rax == NK_VMWARE_VERSION);
	CHECK(r.rbx == (hi | NK_VMWARE_MAGIC));
	CHECK(r.rcx == (hi | NK_VMWARE_TYPE_ESX));
	CHECK(r.rsi == (hi | 0x5555));

	/* The default answer zero-extends EAX too. */
	r = call(77);
	r.rax |= hi;
	CHECK(nk_vmware_backdoor(&cfg, &r) == NK_VMWARE_UNSUPPORTED);
	CHECK(r.rax == 0xffffffff);
}

static void test_hypercall(void)
{
	struct nk_vmware_regs r = call(NK_VMWARE_CMD_GETVERSION), in;
	char err[128];

	/* DX holds flags, not a port: 0 is an IN-like low-bandwidth call. */
	r.rdx = 0;
	CHECK(nk_vmware_hypercall(&cfg, &r, err, sizeof(err)) == NK_VMWARE_ANSWERED);
	CHECK(r.rax == NK_VMWARE_VERSION && r.rbx == NK_VMWARE_MAGIC);
	CHECK(r.rdx == 0);

	r = call(NK_VMWARE_CMD_GETMHZ);
	r.rdx = NK_VMWARE_HC_OUT;
	CHECK(nk_vmware_hypercall(&cfg, &r, err, sizeof(err)) == NK_VMWARE_ANSWERED);
	CHECK(r.rax == 2400);

	r = call(99);
	r.rdx = 0;
	CHECK(nk_vmware_hypercall(&cfg, &r, err, sizeof(err)) == NK_VMWARE_UNSUPPORTED);
	CHECK(r.rax == 0xffffffff);

	/* Refused calls leave every register alone. */
	r = in = call(NK_VMWARE_CMD_GETVERSION);
	r.rdx = in.rdx = NK_VMWARE_HC_HB;
	CHECK(nk_vmware_hypercall(&cfg, &r, err, sizeof(err)) == -EOPNOTSUPP);
	CHECK(strstr(err, "high-bandwidth") != NULL);
	CHECK(r.rax == in.rax && same_except_rax(&r, &in));

	r = in = call(NK_VMWARE_CMD_GETVERSION);
	r.rax = in.rax = 0;
	CHECK(nk_vmware_hypercall(&cfg, &r, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "not the magic") != NULL);
	CHECK(r.rax == 0 && same_except_rax(&r, &in));

	CHECK(nk_vmware_hypercall(NULL, &r, err, sizeof(err)) == -EINVAL);
	CHECK(nk_vmware_hypercall(&cfg, NULL, err, sizeof(err)) == -EINVAL);
}

/* A kvm_run mapping laid out as KVM does: I/O data on the second page. */
#define RUN_SIZE	(3 * 4096)
#define DATA_OFFSET	4096

static struct kvm_run *io_exit(void *buf, uint16_t port, uint8_t dir, uint8_t size,
			       uint32_t count)
{
	struct kvm_run *run = buf;

	memset(buf, 0, RUN_SIZE);
	run->exit_reason = KVM_EXIT_IO;
	run->io.port = port;
	run->io.direction = dir;
	run->io.size = size;
	run->io.count = count;
	run->io.data_offset = DATA_OFFSET;
	/* Stale bytes from an earlier exit, which the guest must never see. */
	memset((uint8_t *)buf + DATA_OFFSET, 0x5a, 64);
	return run;
}

static struct kvm_regs guest_regs(uint32_t cmd)
{
	return (struct kvm_regs){
		.rax = NK_VMWARE_MAGIC, .rbx = 0x1111, .rcx = cmd, .rdx = NK_VMWARE_PORT,
		.rsi = 0x5555, .rdi = 0x6666, .rbp = 0x7777, .rsp = 0x8888, .rip = 0x9999,
		.r8 = 0x8, .rflags = 2,
	};
}

static uint32_t data32(void *buf)
{
	uint32_t v;

	memcpy(&v, (uint8_t *)buf + DATA_OFFSET, sizeof(v));
	return v;
}

static int all_bytes(void *buf, size_t len, uint8_t val)
{
	const uint8_t *p = (const uint8_t *)buf + DATA_OFFSET;
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != val)
			return 0;
	return 1;
}

static void test_apply_io(void *buf)
{
	struct kvm_regs regs = guest_regs(NK_VMWARE_CMD_GETVERSION), in = regs;
	struct kvm_run *run;
	char err[128];

	run = io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 1);
	CHECK(nk_vmware_apply_io(&cfg, run, RUN_SIZE, &regs, err, sizeof(err)) ==
	      NK_VMWARE_ANSWERED);
	CHECK(data32(buf) == NK_VMWARE_VERSION);
	CHECK(regs.rax == NK_VMWARE_VERSION);
	CHECK(regs.rbx == NK_VMWARE_MAGIC && regs.rcx == NK_VMWARE_TYPE_ESX);
	/* What the protocol does not answer, and RIP above all, stays. */
	CHECK(regs.rdx == in.rdx && regs.rsi == in.rsi && regs.rdi == in.rdi);
	CHECK(regs.rbp == in.rbp && regs.rsp == in.rsp && regs.rip == in.rip);
	CHECK(regs.r8 == in.r8 && regs.rflags == in.rflags);
	CHECK(all_bytes(buf, 4, 0x5a) == 0 && ((uint8_t *)buf)[DATA_OFFSET + 4] == 0x5a);

	regs = guest_regs(NK_VMWARE_CMD_GETMHZ);
	run = io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 1);
	CHECK(nk_vmware_apply_io(&cfg, run, RUN_SIZE, &regs, err, sizeof(err)) ==
	      NK_VMWARE_ANSWERED);
	CHECK(data32(buf) == 2400 && regs.rax == 2400 && regs.rbx == 0x1111);

	regs = guest_regs(12345);
	run = io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 1);
	CHECK(nk_vmware_apply_io(&cfg, run, RUN_SIZE, &regs, err, sizeof(err)) ==
	      NK_VMWARE_UNSUPPORTED);
	CHECK(data32(buf) == 0xffffffff && regs.rax == 0xffffffff);
	CHECK(strstr(err, "unknown command") != NULL);

	regs = guest_regs(NK_VMWARE_CMD_GETVERSION);
	regs.rax = 0x12345678;
	run = io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 1);
	CHECK(nk_vmware_apply_io(&cfg, run, RUN_SIZE, &regs, err, sizeof(err)) ==
	      NK_VMWARE_NOT_BACKDOOR);
	CHECK(data32(buf) == 0xffffffff && regs.rbx == 0x1111);
	CHECK(strstr(err, "magic") != NULL);
}

/* Each refused exit: the error, @regs untouched, and what an IN reads. */
static void refused(void *buf, struct kvm_run *run, int want, const char *msg,
		    size_t ones)
{
	struct kvm_regs regs = guest_regs(NK_VMWARE_CMD_GETVERSION), in = regs;
	char err[128] = "";

	CHECK(nk_vmware_apply_io(&cfg, run, RUN_SIZE, &regs, err, sizeof(err)) == want);
	CHECK(strstr(err, msg) != NULL);
	CHECK(memcmp(&regs, &in, sizeof(regs)) == 0);
	if (ones)
		CHECK(all_bytes(buf, ones, 0xff));
	else
		CHECK(all_bytes(buf, 64, 0x5a));
}

static void test_apply_io_refused(void *buf)
{
	struct kvm_regs regs = guest_regs(NK_VMWARE_CMD_GETVERSION);
	struct kvm_run *run;
	char err[128];

	/* Not ours: untouched, even the data of an IN another device answers. */
	refused(buf, io_exit(buf, 0x3f8, KVM_EXIT_IO_IN, 4, 1), -ENOENT, "not a backdoor port", 0);
	refused(buf, io_exit(buf, NK_VMWARE_PORT - 1, KVM_EXIT_IO_IN, 4, 1), -ENOENT,
		"not a backdoor port", 0);
	run = io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 1);
	run->exit_reason = KVM_EXIT_MMIO;
	refused(buf, run, -ENOENT, "not KVM_EXIT_IO", 0);

	/* High bandwidth, as REP INSB would reach it. */
	refused(buf, io_exit(buf, NK_VMWARE_PORT_HB, KVM_EXIT_IO_IN, 1, 16), -EOPNOTSUPP,
		"high-bandwidth", 16);
	refused(buf, io_exit(buf, NK_VMWARE_PORT_HB, KVM_EXIT_IO_OUT, 1, 16), -EOPNOTSUPP,
		"high-bandwidth", 0);

	/* Malformed calls on the low-bandwidth port. */
	refused(buf, io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_OUT, 4, 1), -EINVAL, "OUT", 0);
	refused(buf, io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 1, 1), -EINVAL, "1 bytes", 1);
	refused(buf, io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 2, 1), -EINVAL, "2 bytes", 2);
	refused(buf, io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 3), -EINVAL, "3 x 4", 12);
	refused(buf, io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 0), -EINVAL, "0 x 4", 0);
	refused(buf, io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 0, 1), -EINVAL, "0 bytes", 0);

	/* Data areas outside the mapping (or over kvm_run itself) are never written. */
	run = io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 1);
	run->io.data_offset = RUN_SIZE - 2;
	refused(buf, run, -EINVAL, "outside", 0);
	run = io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 1);
	run->io.data_offset = ~0ull;
	refused(buf, run, -EINVAL, "outside", 0);
	run = io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 1);
	run->io.data_offset = 8;
	refused(buf, run, -EINVAL, "outside", 0);
	run = io_exit(buf, NK_VMWARE_PORT_HB, KVM_EXIT_IO_IN, 4, 0x40000000);
	refused(buf, run, -EOPNOTSUPP, "high-bandwidth", 0);

	run = io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 1);
	CHECK(nk_vmware_apply_io(NULL, run, RUN_SIZE, &regs, err, sizeof(err)) == -EINVAL);
	CHECK(nk_vmware_apply_io(&cfg, NULL, RUN_SIZE, &regs, err, sizeof(err)) == -EINVAL);
	CHECK(nk_vmware_apply_io(&cfg, run, RUN_SIZE, NULL, err, sizeof(err)) == -EINVAL);
}

/* Without a real vCPU: only the ioctl failure paths, which must not crash. */
static void test_handle_io(void *buf)
{
	struct nk_vcpu vcpu = { .fd = -1, .run = buf, .run_size = RUN_SIZE };
	char err[128];

	/* Other exits cost no ioctl, so a dead fd does not matter. */
	io_exit(buf, 0x80, KVM_EXIT_IO_OUT, 1, 1);
	CHECK(nk_vmware_handle_io(&cfg, &vcpu, err, sizeof(err)) == -ENOENT);

	/* A call needs the registers: the ioctl's error, and the IN reads all-ones. */
	io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 4, 1);
	CHECK(nk_vmware_handle_io(&cfg, &vcpu, err, sizeof(err)) == -EBADF);
	CHECK(strstr(err, "KVM_GET_REGS") != NULL);
	CHECK(data32(buf) == 0xffffffff);

	io_exit(buf, NK_VMWARE_PORT, KVM_EXIT_IO_IN, 2, 1);
	CHECK(nk_vmware_handle_io(&cfg, &vcpu, err, sizeof(err)) == -EINVAL);

	vcpu.run = NULL;
	CHECK(nk_vmware_handle_io(&cfg, &vcpu, err, sizeof(err)) == -EINVAL);
	CHECK(nk_vmware_handle_io(&cfg, NULL, err, sizeof(err)) == -EINVAL);
	CHECK(nk_vmware_handle_io(NULL, &vcpu, err, sizeof(err)) == -EINVAL);
}

int main(void)
{
	/* Heap, not stack: ASan then catches any write past the mapping. */
	void *buf = malloc(RUN_SIZE);

	if (!buf)
		return 1;
	test_getversion();
	test_getmhz();
	test_default_answer();
	test_upper_halves();
	test_hypercall();
	test_apply_io(buf);
	test_apply_io_refused(buf);
	test_handle_io(buf);
	free(buf);
	return unit_done("test_vmware");
}
