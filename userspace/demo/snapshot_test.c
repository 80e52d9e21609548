// SPDX-License-Identifier: GPL-2.0
/*
 * "nestkit-demo snapshot-test": snapshot a running guest with each backend
 * and compare the image with a copy of guest memory taken at the start
 * instant, page for page.  The guest (guest/snapshot_writer.S) writes random
 * pages as fast as it can, has KVM's instruction emulator write some (rep
 * insl) and has kvmclock enabled, so KVM writes its page too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "nestkit/nestkit.h"
#include "nestkit/snapshot.h"
#include "nestkit/vm.h"
#include "snapshot_test.h"

extern const unsigned char nk_snap_guest_start[], nk_snap_guest_end[];
extern const unsigned char nk_bench_guest_start[], nk_bench_guest_end[];

#define PAGE		4096u
#define CODE_GPA	0x1000u
#define STACK_TOP	0x8000u
#define CLOCK_GPA	0x9000u
#define DATA_GPA	0x10000u
#define PORT_TICK	0x510
#define PORT_DATA	0x520
/* Ticks (256 guest writes each) before the start instant. */
#define WARMUP_TICKS	8

struct run_result {
	unsigned long bad_pages;
	struct nk_snap_stats st;
	unsigned long fault_exits;	/* KVM_EXIT_MEMORY_FAULT (mprotect) */
	unsigned long mmio_exits;	/* emulator writes to RAM (mprotect) */
	unsigned long ticks;
	uint64_t image_hash, start_hash;	/* FNV-1a of image, reference */
};


static int enable_cap(int vm_fd, uint32_t cap, uint64_t arg0)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg0 } };

	return ioctl(vm_fd, KVM_ENABLE_CAP, &c);
}

static int setup_regs(struct nk_vcpu *vcpu, unsigned int pages, uint32_t seed,
		      char *err, size_t errlen)
{
	struct kvm_regs regs;

	if (nk_vcpu_set_flat32(vcpu, CODE_GPA, DATA_GPA, err, errlen))
		return -1;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs)) {
		snprintf(err, errlen, "KVM_GET_REGS: %s", strerror(errno));
		return -1;
	}
	regs.rsp = STACK_TOP;
	regs.rbp = pages;
	regs.rsi = seed ? seed : 1;
	regs.rdi = CLOCK_GPA;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs)) {
		snprintf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * One KVM_RUN and its exit.  Returns 1 to go on, 0 on a tick, -1 on error.
 */
static int step(struct nk_vcpu *vcpu, struct nk_snap *snap, uint32_t *data_seed,
		struct run_result *res, char *err, size_t errlen)
{
	struct kvm_run *run = vcpu->run;
	int r = ioctl(vcpu->fd, KVM_RUN, 0), e = errno, h;

	if (r < 0 && e == EINTR)
		return 1;
	if (snap) {
		h = nk_snap_handle_exit(snap, run, r, e, err, errlen);
		if (h < 0)
			return -1;
		if (h > 0) {
			if (r < 0)
				res->fault_exits++;
			else
				res->mmio_exits++;
			return 1;
		}
	}
	if (r < 0) {
		snprintf(err, errlen, "KVM_RUN: %s (exit reason %u)", strerror(e),
			 run->exit_reason);
		return -1;
	}
	if (run->exit_reason == KVM_EXIT_IO && run->io.port == PORT_TICK) {
		res->ticks++;
		return 0;
	}
	if (run->exit_reason == KVM_EXIT_IO && run->io.port == PORT_DATA &&
	    run->io.direction == KVM_EXIT_IO_IN) {
		uint8_t *p = (uint8_t *)run + run->io.data_offset;

		for (uint32_t i = 0; i < run->io.count; i++, p += run->io.size) {
			*data_seed = *data_seed * 1103515245u + 12345u;
			memcpy(p, data_seed, run->io.size);
		}
		return 1;
	}
	snprintf(err, errlen, "unexpected exit %u", run->exit_reason);
	if (run->exit_reason == KVM_EXIT_MMIO)
		snprintf(err, errlen, "unexpected MMIO %s at 0x%llx",
			 run->mmio.is_write ? "write" : "read",
			 (unsigned long long)run->mmio.phys_addr);
	return -1;
}

/*
 * Pages of the snapshot @image that differ from @ref, or -1 if the image
 * cannot be read back; the image's FNV-1a in *@hash if @hash.
 */
static long compare_image(FILE *image, const uint8_t *ref, size_t size, uint64_t *hash)
{
	uint8_t *img = malloc(size);
	long bad = 0;

	if (!img || pread(fileno(image), img, size, 0) != (ssize_t)size) {
		free(img);
		return -1;
	}
	for (size_t p = 0; p < size / PAGE; p++)
		bad += !!memcmp(img + p * PAGE, ref + p * PAGE, PAGE);
	if (hash)
		*hash = nk_snap_fnv1a(img, size);
	free(img);
	return bad;
}

static int one_run(enum nk_snap_backend backend, unsigned int pages,
		   uint32_t seed, struct run_result *res, char *err, size_t errlen)
{
	size_t size = DATA_GPA + (size_t)pages * PAGE;
	struct nk_snap_region region = { .gpa = 0, .size = size };
	struct nk_vcpu vcpu = { .fd = -1 };
	struct nk_snap *snap = NULL;
	struct nk_kvm kvm;
	uint32_t data_seed = seed;
	uint8_t *mem, *ref = NULL;
	FILE *image = NULL;
	int ret = -1, r;
	long bad;

	memset(res, 0, sizeof(*res));
	if (nk_kvm_open(&kvm, "/dev/kvm", err, errlen))
		return -1;
	mem = nk_vm_add_memory(&kvm, size, err, errlen);
	if (!mem)
		goto out;
	memcpy(mem + CODE_GPA, nk_snap_guest_start,
	       (size_t)(nk_snap_guest_end - nk_snap_guest_start));
	if (nk_vcpu_create(&kvm, 0, &vcpu, err, errlen) ||
	    setup_regs(&vcpu, pages, seed, err, errlen))
		goto out;
	if (backend == NK_SNAP_MPROTECT &&
	    enable_cap(kvm.vm_fd, KVM_CAP_MEMORY_FAULT_PERM, 1)) {
		snprintf(err, errlen, "KVM_CAP_MEMORY_FAULT_PERM: %s", strerror(errno));
		goto out;
	}

	for (unsigned int t = 0; t < WARMUP_TICKS;) {
		r = step(&vcpu, NULL, &data_seed, res, err, errlen);
		if (r < 0)
			goto out;
		t += !r;
	}

	/* The start instant: the vCPU is stopped in userspace. */
	ref = malloc(size);
	image = tmpfile();
	if (!ref || !image) {
		snprintf(err, errlen, "out of memory or no tmpfile");
		goto out;
	}
	memcpy(ref, mem, size);
	region.hva = mem;
	snap = nk_snap_create(backend, &region, 1, fileno(image), err, errlen);
	if (!snap)
		goto out;
	/* KVM writes kvmclock through its own mapping: no exit for it. */
	if (backend == NK_SNAP_MPROTECT &&
	    nk_snap_exclude(snap, CLOCK_GPA, PAGE, err, errlen))
		goto out;
	/* Leave the guest time to write while the snapshot runs. */
	if (nk_snap_set_copier_pause(snap, 500, err, errlen) ||
	    nk_snap_start(snap, err, errlen))
		goto out;

	/* Keep writing until every page is copied, and a little after. */
	for (unsigned long after = 0; after < 4;) {
		r = step(&vcpu, snap, &data_seed, res, err, errlen);
		if (r < 0)
			goto out;
		if (!r && nk_snap_finished(snap))
			after++;
	}
	if (nk_snap_wait(snap, &res->st, err, errlen))
		goto out;
	bad = compare_image(image, ref, size, &res->image_hash);
	if (bad < 0) {
		snprintf(err, errlen, "reading the image back failed");
		goto out;
	}
	res->bad_pages = bad;
	res->start_hash = nk_snap_fnv1a(ref, size);
	ret = 0;
out:
	nk_snap_destroy(snap);
	if (image)
		fclose(image);
	free(ref);
	if (vcpu.fd >= 0)
		nk_vcpu_destroy(&vcpu);
	nk_kvm_close(&kvm);
	if (mem)
		munmap(mem, size);
	return ret;
}

int nk_snapshot_test(int argc, char **argv)
{
	unsigned int runs = 20, pages = 512;
	const char *which = "both";
	int failed = 0, hash = 0;

	for (int i = 1; i < argc; i++) {
		char *end = NULL;

		if (!strcmp(argv[i], "--hash")) {
			hash = 1;
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = (unsigned int)strtoul(argv[++i], &end, 10);
		} else if (!strcmp(argv[i], "--pages") && i + 1 < argc) {
			pages = (unsigned int)strtoul(argv[++i], &end, 10);
		} else if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
			which = argv[++i];
			if (strcmp(which, "mprotect") && strcmp(which, "uffd") &&
			    strcmp(which, "both"))
				end = (char *)which;
		} else {
			fprintf(stderr, "usage: snapshot-test [--backend mprotect|uffd|both] [--runs N] [--pages N] [--hash]\n");
			return 2;
		}
		if (end && *end) {
			fprintf(stderr, "snapshot-test: bad value '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!runs || pages < 1 || pages > 262144) {
		fprintf(stderr, "snapshot-test: runs must be > 0, pages 1..262144\n");
		return 2;
	}

	for (int b = 0; b < 2; b++) {
		enum nk_snap_backend backend = b ? NK_SNAP_UFFD_WP : NK_SNAP_MPROTECT;
		const char *name = b ? "uffd" : "mprotect";
		unsigned long bad = 0, writes = 0, fexits = 0, mexits = 0, max_stall = 0;
		unsigned long long total = 0;
		unsigned int ok = 0;

		if (strcmp(which, "both") && strcmp(which, name))
			continue;
		for (unsigned int i = 0; i < runs; i++) {
			struct run_result res;
			char err[256] = "";

			if (one_run(backend, pages, 0x2545f491u * (i + 1), &res,
				    err, sizeof(err))) {
				printf("# snapshot %s run %u: %s\n", name, i, err);
				failed = 1;
				continue;
			}
			ok++;
			if (hash)
				printf("# snapshot %s run %u: image FNV-1a %016llx, memory at the start %016llx: %s\n",
				       name, i, (unsigned long long)res.image_hash,
				       (unsigned long long)res.start_hash,
				       res.image_hash == res.start_hash && !res.bad_pages ?
				       "equal" : "DIFFERENT");
			bad += res.bad_pages;
			writes += res.st.fault_copies;
			fexits += res.fault_exits;
			mexits += res.mmio_exits;
			total += res.st.total_ns;
			if (res.st.max_stall_ns > max_stall)
				max_stall = res.st.max_stall_ns;
			if (res.bad_pages)
				failed = 1;
		}
		printf("# snapshot %s: %u/%u runs, %u pages each, lost or torn pages %lu, copied on write %lu, memory fault exits %lu, emulator MMIO exits %lu, mean snapshot %llu us, longest handler %lu us\n",
		       name, ok, runs, pages + DATA_GPA / PAGE, bad, writes, fexits, mexits,
		       ok ? total / ok / 1000 : 0, max_stall / 1000);
		/* A snapshot during which the guest wrote nothing proves nothing. */
		if (ok && !writes) {
			printf("# snapshot %s: no page was copied on write\n", name);
			failed = 1;
		}
	}
	return failed;
}

/* "snapshot-bench": costs of each backend against a stop-the-world copy. */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int to_tick(struct nk_vcpu *vcpu, struct nk_snap *snap,
		   struct run_result *res, char *err, size_t errlen)
{
	uint32_t data_seed = 1;
	int r;

	do
		r = step(vcpu, snap, &data_seed, res, err, errlen);
	while (r > 0);
	return r;
}

struct bench_vm {
	struct nk_kvm kvm;
	struct nk_vcpu vcpu;
	uint8_t *mem;
	size_t size;
};

static void bench_vm_destroy(struct bench_vm *b)
{
	if (b->vcpu.fd >= 0)
		nk_vcpu_destroy(&b->vcpu);
	nk_kvm_close(&b->kvm);
	if (b->mem)
		munmap(b->mem, b->size);
}

static int bench_vm_create(struct bench_vm *b, unsigned int pages, bool cap,
			   char *err, size_t errlen)
{
	struct kvm_regs regs;

	memset(b, 0, sizeof(*b));
	b->vcpu.fd = -1;
	b->size = DATA_GPA + (size_t)pages * PAGE;
	if (nk_kvm_open(&b->kvm, "/dev/kvm", err, errlen))
		return -1;
	b->mem = nk_vm_add_memory(&b->kvm, b->size, err, errlen);
	if (!b->mem)
		goto fail;
	memcpy(b->mem + CODE_GPA, nk_bench_guest_start,
	       (size_t)(nk_bench_guest_end - nk_bench_guest_start));
	if (nk_vcpu_create(&b->kvm, 0, &b->vcpu, err, errlen) ||
	    nk_vcpu_set_flat32(&b->vcpu, CODE_GPA, DATA_GPA, err, errlen))
		goto fail;
	if (ioctl(b->vcpu.fd, KVM_GET_REGS, &regs))
		goto fail_errno;
	regs.rbp = pages;
	if (ioctl(b->vcpu.fd, KVM_SET_REGS, &regs))
		goto fail_errno;
	if (cap && enable_cap(b->kvm.vm_fd, KVM_CAP_MEMORY_FAULT_PERM, 1))
		goto fail_errno;
	return 0;
fail_errno:
	snprintf(err, errlen, "vCPU setup or KVM_CAP_MEMORY_FAULT_PERM: %s",
		 strerror(errno));
fail:
	bench_vm_destroy(b);
	return -1;
}

/*
 * One snapshot of the bench VM.  @background 0: the guest's pass over
 * every page takes one fault per page; 1: the copier runs, and the guest
 * keeps passing over its pages until the snapshot is finished.
 */
static int bench_snapshot(struct bench_vm *b, enum nk_snap_backend backend,
			  int background, uint64_t *pass_ns, unsigned long *bad,
			  struct nk_snap_stats *st, char *err, size_t errlen)
{
	struct nk_snap_region region = { .gpa = 0, .hva = b->mem, .size = b->size };
	uint8_t *ref = malloc(b->size);
	FILE *image = tmpfile();
	struct run_result res = { 0 };
	struct nk_snap *snap = NULL;
	int ret = -1;
	uint64_t t;
	long n;

	if (!ref || !image) {
		snprintf(err, errlen, "out of memory or no tmpfile");
		goto out;
	}
	memcpy(ref, b->mem, b->size);
	snap = nk_snap_create(backend, &region, 1, fileno(image), err, errlen);
	if (!snap || nk_snap_set_background(snap, background, err, errlen) ||
	    nk_snap_start(snap, err, errlen))
		goto out;
	t = mono_ns();
	do {
		if (to_tick(&b->vcpu, snap, &res, err, errlen) < 0)
			goto out;
	} while (background && !nk_snap_finished(snap));
	*pass_ns = mono_ns() - t;
	if (nk_snap_wait(snap, st, err, errlen))
		goto out;
	/* An image that cannot be read back counts as all pages lost. */
	n = compare_image(image, ref, b->size, NULL);
	*bad = n < 0 ? b->size / PAGE : (unsigned long)n;
	ret = 0;
out:
	nk_snap_destroy(snap);
	if (image)
		fclose(image);
	free(ref);
	return ret;
}

static int bench_one(enum nk_snap_backend backend, unsigned int pages)
{
	const char *name = backend == NK_SNAP_UFFD_WP ? "uffd-wp" : "mprotect";
	struct run_result res = { 0 };
	struct nk_snap_stats st, st_bg;
	uint64_t base, lazy, bg;
	unsigned long bad, bad_bg;
	char err[256] = "";
	struct bench_vm b;

	if (bench_vm_create(&b, pages, backend == NK_SNAP_MPROTECT, err, sizeof(err)))
		goto fail;
	/* Warm-up: every page is populated and mapped by KVM. */
	if (to_tick(&b.vcpu, NULL, &res, err, sizeof(err)) < 0)
		goto fail_vm;
	base = mono_ns();
	if (to_tick(&b.vcpu, NULL, &res, err, sizeof(err)) < 0)
		goto fail_vm;
	base = mono_ns() - base;
	if (bench_snapshot(&b, backend, 0, &lazy, &bad, &st, err, sizeof(err)) ||
	    bench_snapshot(&b, backend, 1, &bg, &bad_bg, &st_bg, err, sizeof(err)))
		goto fail_vm;
	bench_vm_destroy(&b);
	printf("# bench %-8s %6u pages: pass %llu ns unprotected, %llu ns with a fault per page -> %llu ns per fault (%llu faults); with the copier: snapshot %llu ns, %llu copied on write, longest handler %llu ns; lost or torn pages %lu\n",
	       name, pages, (unsigned long long)base, (unsigned long long)lazy,
	       (unsigned long long)(st.fault_copies ? (lazy - base) / st.fault_copies : 0),
	       (unsigned long long)st.fault_copies, (unsigned long long)st_bg.total_ns,
	       (unsigned long long)st_bg.fault_copies,
	       (unsigned long long)st_bg.max_stall_ns, bad + bad_bg);
	return bad + bad_bg || st.fault_copies < pages;
fail_vm:
	bench_vm_destroy(&b);
fail:
	printf("# bench %s: %s\n", name, err);
	return 1;
}

/* The baseline: the guest stops while all of its memory is copied. */
static int bench_stop_the_world(unsigned int pages)
{
	size_t size = DATA_GPA + (size_t)pages * PAGE;
	uint8_t *mem = malloc(size);
	FILE *image = tmpfile();
	int ret = 1;
	uint64_t t;

	if (mem && image) {
		memset(mem, 0x5a, size);
		t = mono_ns();
		for (size_t off = 0; off < size; off += PAGE)
			if (pwrite(fileno(image), mem + off, PAGE, (off_t)off) != PAGE)
				goto out;
		t = mono_ns() - t;
		printf("# bench stop-the-world %6u pages: guest stopped %llu ns (%llu ns per page)\n",
		       pages, (unsigned long long)t,
		       (unsigned long long)(t / (size / PAGE)));
		ret = 0;
	}
out:
	if (ret)
		printf("# bench stop-the-world: out of memory or image write failed\n");
	if (image)
		fclose(image);
	free(mem);
	return ret;
}

int nk_snapshot_bench(int argc, char **argv)
{
	unsigned int sizes[8], n = 0;
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		char *end;

		if (strcmp(argv[i], "--pages") || i + 1 >= argc || n == 8) {
			fprintf(stderr, "usage: snapshot-bench [--pages N]... (up to 8)\n");
			return 2;
		}
		sizes[n] = (unsigned int)strtoul(argv[++i], &end, 10);
		if (*end || !sizes[n] || sizes[n] > 1u << 20) {
			fprintf(stderr, "snapshot-bench: bad page count '%s'\n", argv[i]);
			return 2;
		}
		n++;
	}
	if (!n)
		sizes[n++] = 4096;
	for (unsigned int i = 0; i < n; i++) {
		failed |= bench_stop_the_world(sizes[i]);
		failed |= bench_one(NK_SNAP_MPROTECT, sizes[i]);
		failed |= bench_one(NK_SNAP_UFFD_WP, sizes[i]);
	}
	return failed;
}
