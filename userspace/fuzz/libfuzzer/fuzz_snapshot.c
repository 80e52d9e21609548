// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the snapshot engine's input, the exits of KVM_RUN that
 * a VMM hands it (NK_SNAP_MPROTECT) and the nested state it reads pages
 * from.  The guest decides which addresses fault and what an emulated
 * write carries; a confused VMM or kernel decides the rest.
 *
 * Input byte 0 selects the part.  Exits (bit 7 clear): two regions of four
 * pages (one excluded page if bit 0), contents from the input, a snapshot
 * started with every page protected and no background copier; then
 * records of 20 bytes, each one exit given to nk_snap_handle_exit() or one
 * nk_snap_handle_write(): memory faults and MMIO exits with any flags,
 * address, length and data, other exit reasons, any return value and
 * errno.  The oracle is a model of the VMM's memory: a "1" means the page is
 * now writable (the harness writes to it, as the guest's retried access
 * would; a protected page would crash it) and an MMIO write was performed
 * exactly; anything else changes nothing.  At the end the image must equal
 * the memory at the start instant, page by page, and the memory the model.
 * Nested state (bit 7 set): nk_nested_state_pages() on the rest of the
 * input: a count within bounds, page-aligned, distinct addresses.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "nestkit/snapshot.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)
#define PAGE		4096
#define REGION_PAGES	4
#define REC		20

/* The system's uAPI headers may predate the memory fault exit (6.8). */
#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT	39
#endif
/* kvm_run.memory_fault: flags, gpa, size, where every exit's union starts. */
struct memory_fault {
	uint64_t flags, gpa, size;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void nested_state(const uint8_t *data, size_t size)
{
	static uint64_t buf[(sizeof(struct kvm_nested_state) + 8192) / 8];
	uint64_t gpas[16], evmcs = 0x7000;
	char err[256];
	int n;

	if (size > sizeof(buf))
		size = sizeof(buf);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, data, size);
	memset(err, 0xff, sizeof(err));
	n = nk_nested_state_pages((struct kvm_nested_state *)buf, size,
				  size & 1 ? &evmcs : NULL, gpas, 1 + size % 16, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)) || n >= 0);
	CHECK(n >= -1 && n <= (int)(1 + size % 16));
	for (int i = 0; i < n; i++) {
		CHECK(!(gpas[i] & (PAGE - 1)));
		for (int j = 0; j < i; j++)
			CHECK(gpas[i] != gpas[j]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t base[2] = { 0x100000, 0x7ffff000ull - REGION_PAGES * PAGE };
	struct nk_snap_region regs[2];
	uint8_t *mem[2], *model[2], *orig[2], page[PAGE];
	struct kvm_run run;
	struct nk_snap *s;
	char err[256];
	int fd;

	if (size < 1)
		return 0;
	if (data[0] & 0x80) {
		nested_state(data + 1, size - 1);
		return 0;
	}
	fd = memfd_create("image", 0);
	CHECK(fd >= 0);
	for (int i = 0; i < 2; i++) {
		mem[i] = mmap(NULL, REGION_PAGES * PAGE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(mem[i] != MAP_FAILED);
		model[i] = malloc(REGION_PAGES * PAGE);
		orig[i] = malloc(REGION_PAGES * PAGE);
		CHECK(model[i] && orig[i]);
		for (size_t k = 0; k < REGION_PAGES * PAGE; k++)
			mem[i][k] = (uint8_t)(k * 7 + i + data[0]);
		memcpy(model[i], mem[i], REGION_PAGES * PAGE);
		memcpy(orig[i], mem[i], REGION_PAGES * PAGE);
		regs[i] = (struct nk_snap_region){ base[i], mem[i], REGION_PAGES * PAGE };
	}
	s = nk_snap_create(NK_SNAP_MPROTECT, regs, 2, fd, err, sizeof(err));
	CHECK(s);
	if (data[0] & 1)
		CHECK(!nk_snap_exclude(s, base[1] + PAGE, PAGE, err, sizeof(err)));
	CHECK(!nk_snap_set_background(s, 0, err, sizeof(err)));
	CHECK(!nk_snap_start(s, err, sizeof(err)));

	for (size_t off = 1; off + REC <= size; off += REC) {
		const uint8_t *r = data + off;
		uint64_t gpa, flags;
		int ret, err_no, h, which = -1;
		uint64_t in;

		memset(&run, 0, sizeof(run));
		/* Mostly addresses in or near the regions, sometimes anything. */
		memcpy(&gpa, r + 2, 8);
		if (!(r[1] & 0x80))
			gpa = base[r[1] & 1] - PAGE + (gpa % ((REGION_PAGES + 2) * PAGE));
		for (int i = 0; i < 2; i++)
			if (gpa >= base[i] && gpa < base[i] + REGION_PAGES * PAGE)
				which = i;
		in = which < 0 ? 0 : gpa - base[which];
		ret = r[1] & 0x40 ? -1 : 0;
		err_no = r[1] & 0x20 ? EFAULT : EINTR;
		switch (r[0] % 4) {
		case 0:	/* a memory fault exit */
			run.exit_reason = r[0] & 4 ? KVM_EXIT_MEMORY_FAULT : r[10];
			/* READ, WRITE, EXEC, PRIVATE alone, or any bits. */
			flags = r[11] & 4 ? 1ull << (r[11] & 3) : r[12];
			*(struct memory_fault *)(void *)&run.mmio =
				(struct memory_fault){ flags, gpa, PAGE };
			h = nk_snap_handle_exit(s, &run, ret, err_no, err, sizeof(err));
			break;
		case 1:	/* an MMIO exit: KVM's emulator could not write RAM */
			run.exit_reason = r[0] & 4 ? KVM_EXIT_MMIO : r[10];
			run.mmio.phys_addr = gpa;
			run.mmio.len = r[11] % 10;
			run.mmio.is_write = r[12] & 1;
			memcpy(run.mmio.data, r + 12, 8);
			h = nk_snap_handle_exit(s, &run, ret, err_no, err, sizeof(err));
			if (h == 1) {
				CHECK(which >= 0 && run.mmio.is_write && run.mmio.len <= 8 &&
				      (gpa & (PAGE - 1)) + run.mmio.len <= PAGE);
				memcpy(model[which] + in, run.mmio.data, run.mmio.len);
			}
			break;
		default:	/* the userfault handler's entry */
			h = nk_snap_handle_write(s, gpa, err, sizeof(err));
			break;
		}
		CHECK(h >= -1 && h <= 1);
		CHECK(h != -1);	/* mprotect() on our own mapping cannot fail */
		if (h == 1) {
			/* Ours, copied, and writable now: the guest's write goes through. */
			CHECK(which >= 0);
			mem[which][in] ^= r[19] | 1;
			model[which][in] ^= r[19] | 1;
		}
		CHECK(!memcmp(mem[0], model[0], REGION_PAGES * PAGE));
		CHECK(!memcmp(mem[1], model[1], REGION_PAGES * PAGE));
	}

	CHECK(!nk_snap_wait(s, NULL, err, sizeof(err)));
	for (int i = 0; i < 2; i++)
		for (int p = 0; p < REGION_PAGES; p++) {
			CHECK(pread(fd, page, PAGE, (i * REGION_PAGES + p) * PAGE) == PAGE);
			CHECK(!memcmp(page, orig[i] + p * PAGE, PAGE));
			mem[i][p * PAGE] ^= 1;	/* writable after the wait */
		}
	nk_snap_destroy(s);
	close(fd);
	for (int i = 0; i < 2; i++) {
		munmap(mem[i], REGION_PAGES * PAGE);
		free(model[i]);
		free(orig[i]);
	}
	return 0;
}
