// SPDX-License-Identifier: GPL-2.0
/*
 * Host tests of the lazy snapshot engine on plain anonymous memory: the
 * bookkeeping, bad input, both backends against concurrent writers (the
 * mprotect backend through a SIGSEGV handler that plays the vCPU loop's
 * part), kernel writes (read(2) into guest memory, as KVM's uaccess does)
 * with userfaultfd, and failures that must leave memory writable.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "nestkit/snapshot.h"
#include "unit.h"

#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT	39
#endif

#define PAGE	4096ul
#define NPAGES	512ul

static struct nk_snap *cur;
static uint8_t *cur_mem;
static uint64_t cur_gpa;
static atomic_long segv_count;

/* The vCPU loop's part: a write fault on guest memory goes to the engine. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
	uint8_t *a = si->si_addr;

	(void)uc;
	atomic_fetch_add(&segv_count, 1);
	if (!cur || a < cur_mem || a >= cur_mem + NPAGES * PAGE ||
	    nk_snap_handle_write(cur, cur_gpa + (uint64_t)(a - cur_mem), NULL, 0) != 1) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
}

static uint8_t *map_mem(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct writer {
	uint8_t *mem;
	uint64_t seed;
	atomic_bool *stop;
	long writes;
};

/* Writes random words into random pages of the lower half, as fast as it can. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;

	while (!atomic_load(w->stop)) {
		uint64_t r = xorshift(&w->seed);
		uint64_t *p = (uint64_t *)(w->mem + (r % (NPAGES / 2)) * PAGE) +
			      (r >> 32) % (PAGE / 8);

		*(volatile uint64_t *)p = r;
		w->writes++;
	}
	return NULL;
}

static bool image_equals(int fd, const uint8_t *ref, size_t size)
{
	uint8_t *buf = malloc(size);
	bool eq;

	if (!buf)
		return false;
	eq = pread(fd, buf, size, 0) == (ssize_t)size && !memcmp(buf, ref, size);
	free(buf);
	return eq;
}

static void test_bad_input(void)
{
	uint8_t *mem = map_mem(4 * PAGE);
	struct nk_snap_region r[2] = {
		{ .gpa = 0x1000, .hva = mem, .size = 2 * PAGE },
		{ .gpa = 0x100000, .hva = mem + 2 * PAGE, .size = 2 * PAGE },
	};
	FILE *img = tmpfile();
	int fd = fileno(img);
	char err[256] = "";
	struct nk_snap *s;

	CHECK(mem);
	CHECK(!nk_snap_create(NK_SNAP_MPROTECT, r, 0, fd, err, sizeof(err)));
	CHECK(strstr(err, "no memory regions"));
	CHECK(!nk_snap_create(NK_SNAP_MPROTECT, NULL, 1, fd, err, sizeof(err)));
	CHECK(!nk_snap_create((enum nk_snap_backend)7, r, 2, fd, err, sizeof(err)));
	CHECK(strstr(err, "unknown backend"));
	CHECK(!nk_snap_create(NK_SNAP_MPROTECT, r, 2, -1, err, sizeof(err)));
	CHECK(strstr(err, "image"));

	r[1].gpa = 0x1800;
	CHECK(!nk_snap_create(NK_SNAP_MPROTECT, r, 2, fd, err, sizeof(err)));
	CHECK(strstr(err, "unaligned"));
	r[1].gpa = 0x2000;
	CHECK(!nk_snap_create(NK_SNAP_MPROTECT, r, 2, fd, err, sizeof(err)));
	CHECK(strstr(err, "overlap"));
	r[1].gpa = 0x100000;
	r[1].hva = mem + PAGE;
	CHECK(!nk_snap_create(NK_SNAP_MPROTECT, r, 2, fd, err, sizeof(err)));
	CHECK(strstr(err, "overlap"));
	r[1].hva = mem + 2 * PAGE;
	r[1].size = 0;
	CHECK(!nk_snap_create(NK_SNAP_MPROTECT, r, 2, fd, err, sizeof(err)));
	CHECK(strstr(err, "empty"));
	r[1].size = 2 * PAGE;
	r[1].gpa = ~0ull & ~(PAGE - 1);
	CHECK(!nk_snap_create(NK_SNAP_MPROTECT, r, 2, fd, err, sizeof(err)));
	CHECK(strstr(err, "wraps"));
	r[1].gpa = 0x100000;

	s = nk_snap_create(NK_SNAP_MPROTECT, r, 2, fd, err, sizeof(err));
	CHECK(s);
	if (!s)
		goto out;
	/* Regions are laid out back to back in the image. */
	CHECK(nk_snap_image_offset(s, 0x1000) == 0);
	CHECK(nk_snap_image_offset(s, 0x2fff) == (int64_t)(2 * PAGE - 1));
	CHECK(nk_snap_image_offset(s, 0x100000) == (int64_t)(2 * PAGE));
	CHECK(nk_snap_image_offset(s, 0x101008) == (int64_t)(3 * PAGE + 8));
	CHECK(nk_snap_image_offset(s, 0x3000) == -1);
	CHECK(nk_snap_image_offset(s, 0) == -1);

	CHECK(nk_snap_exclude(s, 0x5000, 8, err, sizeof(err)) == -1);
	CHECK(strstr(err, "not in a snapshot region"));
	CHECK(nk_snap_exclude(s, 0x1000, 0, err, sizeof(err)) == -1);
	CHECK(nk_snap_wait(s, NULL, err, sizeof(err)) == -1);
	CHECK(strstr(err, "not started"));
	CHECK(!nk_snap_finished(s));
	/* Not started: nothing is the engine's yet. */
	CHECK(nk_snap_handle_write(s, 0x1000, err, sizeof(err)) == 0);
	CHECK(nk_snap_exclude(s, 0x2ff8, 16, err, sizeof(err)) == -1);
	CHECK(nk_snap_exclude(s, 0x1ff8, 16, err, sizeof(err)) == 0);
	CHECK(nk_snap_set_copier_pause(s, 2000000, err, sizeof(err)) == -1);
	CHECK(nk_snap_set_copier_pause(s, 100, err, sizeof(err)) == 0);

	memset(mem, 0x11, 4 * PAGE);
	CHECK(nk_snap_start(s, err, sizeof(err)) == 0);
	CHECK(nk_snap_start(s, err, sizeof(err)) == -1);
	CHECK(strstr(err, "already started"));
	CHECK(nk_snap_exclude(s, 0x1000, 8, err, sizeof(err)) == -1);
	CHECK(nk_snap_set_copier_pause(s, 10, err, sizeof(err)) == -1);
	CHECK(strstr(err, "before the start"));
	CHECK(nk_snap_handle_write(s, 0x5000, err, sizeof(err)) == 0);
	CHECK(nk_snap_wait(s, NULL, err, sizeof(err)) == 0);
	CHECK(nk_snap_finished(s));
	CHECK(image_equals(fd, mem, 4 * PAGE));
	/* Everything is writable again. */
	memset(mem, 0x22, 4 * PAGE);
	nk_snap_destroy(s);
out:
	fclose(img);
	munmap(mem, 4 * PAGE);
}

/* A snapshot while @nwriters threads write; the image must be the start. */
static void test_concurrent(enum nk_snap_backend backend, int nwriters,
			    int runs, bool kernel_writes)
{
	const char *name = backend == NK_SNAP_MPROTECT ? "mprotect" : "uffd-wp";
	uint8_t *mem = map_mem(NPAGES * PAGE), *ref = malloc(NPAGES * PAGE);
	struct nk_snap_region r = { .gpa = 0x40000000, .hva = mem,
				    .size = NPAGES * PAGE };
	long bad = 0, writes = 0, fault_copies = 0;
	uint64_t max_stall = 0;
	char err[256] = "";

	CHECK(mem && ref);
	if (!mem || !ref)
		return;
	for (int run = 0; run < runs; run++) {
		FILE *img = tmpfile();
		struct writer w[4];
		pthread_t t[4];
		atomic_bool stop = false;
		struct nk_snap_stats st;
		struct nk_snap *s;
		uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(run + 1);

		/* Half the pages untouched (zero), half with data. */
		for (size_t p = 0; p < NPAGES; p += 2)
			for (size_t i = 0; i < PAGE; i += 8)
				*(uint64_t *)(mem + p * PAGE + i) = xorshift(&seed);
		s = nk_snap_create(backend, &r, 1, fileno(img), err, sizeof(err));
		CHECK(s);
		if (!s) {
			fprintf(stderr, "%s: %s\n", name, err);
			fclose(img);
			break;
		}
		cur = s;
		cur_mem = mem;
		cur_gpa = r.gpa;
		/* The start instant: writers are not running. */
		memcpy(ref, mem, NPAGES * PAGE);
		CHECK(nk_snap_start(s, err, sizeof(err)) == 0);
		for (int i = 0; i < nwriters; i++) {
			w[i] = (struct writer){ .mem = mem, .stop = &stop,
						.seed = seed + (uint64_t)i * 7919 };
			pthread_create(&t[i], NULL, writer_main, &w[i]);
		}
		if (kernel_writes) {
			/* The kernel writes guest memory, as KVM's uaccess does. */
			int pfd[2];

			CHECK(pipe(pfd) == 0);
			for (size_t p = NPAGES / 2 + 1; p < NPAGES; p += 37) {
				CHECK(write(pfd[1], "kernel", 6) == 6);
				CHECK(read(pfd[0], mem + p * PAGE + 100, 6) == 6);
			}
			close(pfd[0]);
			close(pfd[1]);
		}
		CHECK(nk_snap_wait(s, &st, err, sizeof(err)) == 0);
		atomic_store(&stop, true);
		for (int i = 0; i < nwriters; i++) {
			pthread_join(t[i], NULL);
			writes += w[i].writes;
		}
		if (!image_equals(fileno(img), ref, NPAGES * PAGE))
			bad++;
		CHECK(st.pages == NPAGES);
		CHECK(st.fault_copies + st.background_copies == NPAGES);
		fault_copies += (long)st.fault_copies;
		if (st.max_stall_ns > max_stall)
			max_stall = st.max_stall_ns;
		for (size_t p = NPAGES / 2 + 1; kernel_writes && p < NPAGES; p += 37)
			CHECK(!memcmp(mem + p * PAGE + 100, "kernel", 6));
		cur = NULL;
		nk_snap_destroy(s);
		fclose(img);
	}
	CHECK(bad == 0);
	printf("  %s: %d runs x %d writers, %ld writes, %ld pages copied on write, images differing: %ld, longest handler time %llu us\n",
	       name, runs, nwriters, writes, fault_copies, bad,
	       (unsigned long long)(max_stall / 1000));
	free(ref);
	munmap(mem, NPAGES * PAGE);
}

/* Out of space mid-snapshot: reported, memory intact and writable. */
static void test_out_of_space(enum nk_snap_backend backend)
{
	uint8_t *mem = map_mem(NPAGES * PAGE);
	struct nk_snap_region r = { .gpa = 0, .hva = mem, .size = NPAGES * PAGE };
	struct rlimit old, lim;
	char err[256] = "";
	FILE *img = tmpfile();
	struct nk_snap *s;

	CHECK(mem && img);
	if (!mem || !img)
		return;
	memset(mem, 0x5a, NPAGES * PAGE);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 16 * PAGE;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);

	s = nk_snap_create(backend, &r, 1, fileno(img), err, sizeof(err));
	CHECK(s);
	if (s) {
		cur = s;
		cur_mem = mem;
		cur_gpa = 0;
		CHECK(nk_snap_start(s, err, sizeof(err)) == 0);
		CHECK(nk_snap_wait(s, NULL, err, sizeof(err)) == -1);
		CHECK(strstr(err, "File too large"));
		/* No page is protected any more: no fault is taken. */
		atomic_store(&segv_count, 0);
		for (size_t p = 0; p < NPAGES; p++)
			CHECK(mem[p * PAGE + 7] == 0x5a);
		memset(mem, 0xa5, NPAGES * PAGE);
		CHECK(atomic_load(&segv_count) == 0);
		cur = NULL;
		nk_snap_destroy(s);
	}
	setrlimit(RLIMIT_FSIZE, &old);
	fclose(img);
	munmap(mem, NPAGES * PAGE);
}

/* Without the background copier, only writes copy until nk_snap_wait(). */
static void test_no_background(void)
{
	uint8_t *mem = map_mem(8 * PAGE);
	struct nk_snap_region r = { .gpa = 0x10000, .hva = mem, .size = 8 * PAGE };
	uint8_t ref[8 * PAGE];
	struct nk_snap_stats st;
	char err[256] = "";
	FILE *img = tmpfile();
	struct nk_snap *s;

	CHECK(mem && img);
	if (!mem || !img)
		return;
	memset(mem, 0x33, 8 * PAGE);
	s = nk_snap_create(NK_SNAP_MPROTECT, &r, 1, fileno(img), err, sizeof(err));
	CHECK(s);
	if (s) {
		cur = s;
		cur_mem = mem;
		cur_gpa = r.gpa;
		CHECK(nk_snap_set_background(s, 0, err, sizeof(err)) == 0);
		memcpy(ref, mem, sizeof(ref));
		CHECK(nk_snap_start(s, err, sizeof(err)) == 0);
		CHECK(nk_snap_set_background(s, 1, err, sizeof(err)) == -1);
		atomic_store(&segv_count, 0);
		mem[3 * PAGE + 5] = 1;
		mem[6 * PAGE] = 2;
		mem[6 * PAGE + 1] = 3;
		CHECK(atomic_load(&segv_count) == 2);
		CHECK(!nk_snap_finished(s));
		CHECK(nk_snap_wait(s, &st, err, sizeof(err)) == 0);
		CHECK(st.fault_copies == 2 && st.background_copies == 6);
		CHECK(image_equals(fileno(img), ref, sizeof(ref)));
		cur = NULL;
		nk_snap_destroy(s);
	}
	fclose(img);
	munmap(mem, 8 * PAGE);
}

/* Fill kvm_run.memory_fault, which older uAPI headers do not name. */
static void set_memory_fault(struct kvm_run *run, uint64_t flags, uint64_t gpa)
{
	uint64_t mf[3] = { flags, gpa, PAGE };

	run->exit_reason = KVM_EXIT_MEMORY_FAULT;
	memcpy(&run->mmio, mf, sizeof(mf));
}

/* What the vCPU loop hands over, and what the engine makes of it. */
static void test_handle_exit(void)
{
	uint8_t *mem = map_mem(4 * PAGE);
	struct nk_snap_region r = { .gpa = 0x100000, .hva = mem, .size = 4 * PAGE };
	struct kvm_run *run = calloc(1, sizeof(*run));
	uint8_t ref[4 * PAGE];
	char err[256] = "";
	FILE *img = tmpfile();
	struct nk_snap *s;

	CHECK(mem && run && img);
	if (!mem || !run || !img)
		return;
	memset(mem, 0x44, 4 * PAGE);
	memcpy(ref, mem, sizeof(ref));
	s = nk_snap_create(NK_SNAP_MPROTECT, &r, 1, fileno(img), err, sizeof(err));
	CHECK(s);
	if (!s)
		return;
	cur = s;
	cur_mem = mem;
	cur_gpa = r.gpa;
	CHECK(nk_snap_set_background(s, 0, err, sizeof(err)) == 0);
	set_memory_fault(run, 2, r.gpa);
	/* Not started: not the engine's. */
	CHECK(nk_snap_handle_exit(s, run, -1, EFAULT, err, sizeof(err)) == 0);
	CHECK(nk_snap_start(s, err, sizeof(err)) == 0);

	/* A write fault on page 1: copied and writable, no SIGSEGV. */
	set_memory_fault(run, 2, r.gpa + PAGE + 0x10);
	CHECK(nk_snap_handle_exit(s, run, -1, EFAULT, err, sizeof(err)) == 1);
	atomic_store(&segv_count, 0);
	mem[PAGE + 0x10] = 0x99;
	CHECK(atomic_load(&segv_count) == 0);
	/* Read and fetch faults, other errors, untracked GPAs: not ours. */
	set_memory_fault(run, 1, r.gpa + 2 * PAGE);
	CHECK(nk_snap_handle_exit(s, run, -1, EFAULT, err, sizeof(err)) == 0);
	set_memory_fault(run, 4, r.gpa + 2 * PAGE);
	CHECK(nk_snap_handle_exit(s, run, -1, EFAULT, err, sizeof(err)) == 0);
	set_memory_fault(run, 2, r.gpa + 2 * PAGE);
	CHECK(nk_snap_handle_exit(s, run, -1, EINTR, err, sizeof(err)) == 0);
	CHECK(nk_snap_handle_exit(s, run, 0, 0, err, sizeof(err)) == 0);
	set_memory_fault(run, 2, 0x5000);
	CHECK(nk_snap_handle_exit(s, run, -1, EFAULT, err, sizeof(err)) == 0);

	/* KVM's emulator writing RAM: the engine performs the write. */
	run->exit_reason = KVM_EXIT_MMIO;
	run->mmio.phys_addr = r.gpa + 3 * PAGE + 8;
	run->mmio.len = 4;
	run->mmio.is_write = 1;
	memcpy(run->mmio.data, "\x01\x02\x03\x04", 4);
	CHECK(nk_snap_handle_exit(s, run, 0, 0, err, sizeof(err)) == 1);
	CHECK(!memcmp(mem + 3 * PAGE + 8, "\x01\x02\x03\x04", 4));
	/* Reads, page-crossing and non-RAM MMIO stay the VMM's. */
	run->mmio.is_write = 0;
	CHECK(nk_snap_handle_exit(s, run, 0, 0, err, sizeof(err)) == 0);
	run->mmio.is_write = 1;
	run->mmio.phys_addr = r.gpa + 2 * PAGE - 2;
	CHECK(nk_snap_handle_exit(s, run, 0, 0, err, sizeof(err)) == 0);
	run->mmio.phys_addr = 0xfee00300;
	CHECK(nk_snap_handle_exit(s, run, 0, 0, err, sizeof(err)) == 0);

	CHECK(nk_snap_wait(s, NULL, err, sizeof(err)) == 0);
	CHECK(image_equals(fileno(img), ref, sizeof(ref)));
	cur = NULL;
	nk_snap_destroy(s);
	/* The uffd backend takes no exits. */
	s = nk_snap_create(NK_SNAP_UFFD_WP, &r, 1, fileno(img), err, sizeof(err));
	if (s) {
		set_memory_fault(run, 2, r.gpa);
		CHECK(nk_snap_handle_exit(s, run, -1, EFAULT, err, sizeof(err)) == 0);
		nk_snap_destroy(s);
	}
	fclose(img);
	free(run);
	munmap(mem, 4 * PAGE);
}

/* An image descriptor that cannot be written fails the same way. */
static void test_readonly_image(void)
{
	uint8_t *mem = map_mem(4 * PAGE);
	struct nk_snap_region r = { .gpa = 0, .hva = mem, .size = 4 * PAGE };
	char err[256] = "";
	int fd = open("/dev/null", O_RDONLY);
	struct nk_snap *s = nk_snap_create(NK_SNAP_MPROTECT, &r, 1, fd, err,
					   sizeof(err));

	CHECK(s);
	if (s) {
		CHECK(nk_snap_start(s, err, sizeof(err)) == 0);
		CHECK(nk_snap_wait(s, NULL, err, sizeof(err)) == -1);
		CHECK(strstr(err, "Bad file descriptor"));
		memset(mem, 1, 4 * PAGE);
		nk_snap_destroy(s);
	}
	close(fd);
	munmap(mem, 4 * PAGE);
}

static bool uffd_wp_works(void)
{
	uint8_t *mem = map_mem(PAGE);
	struct nk_snap_region r = { .gpa = 0, .hva = mem, .size = PAGE };
	char err[256] = "";
	struct nk_snap *s = nk_snap_create(NK_SNAP_UFFD_WP, &r, 1, 1, err,
					   sizeof(err));

	if (!s)
		printf("  uffd-wp not available here: %s\n", err);
	nk_snap_destroy(s);
	munmap(mem, PAGE);
	return s;
}

/* Published FNV-1a 64-bit test vectors. */
static void test_fnv1a(void)
{
	CHECK(nk_snap_fnv1a("", 0) == 0xcbf29ce484222325ull);
	CHECK(nk_snap_fnv1a("a", 1) == 0xaf63dc4c8601ec8cull);
	CHECK(nk_snap_fnv1a("foobar", 6) == 0x85944171f73967e8ull);
}

static void put64(uint8_t *p, size_t off, uint64_t v)
{
	memcpy(p + off, &v, sizeof(v));
}

static void put32(uint8_t *p, size_t off, uint32_t v)
{
	memcpy(p + off, &v, sizeof(v));
}

static int has(const uint64_t *gpas, int n, uint64_t gpa)
{
	for (int i = 0; i < n; i++)
		if (gpas[i] == gpa)
			return 1;
	return 0;
}

/* The pages KVM holds for nested state, from synthetic KVM_GET_NESTED_STATE. */
static void test_nested_state_pages(void)
{
	const size_t hdr = offsetof(struct kvm_nested_state, data);
	size_t size = hdr + 2 * KVM_STATE_NESTED_VMX_VMCS_SIZE;
	struct kvm_nested_state *st = calloc(1, size);
	uint8_t *vmcs12 = (uint8_t *)st + hdr;
	uint64_t gpas[16];
	char err[128];
	int n;

	CHECK(st != NULL);
	/* VMX without a current VMCS: nothing. */
	st->format = KVM_STATE_NESTED_FORMAT_VMX;
	st->size = hdr;
	st->hdr.vmx.vmcs12_pa = ~0ull;
	CHECK(nk_nested_state_pages(st, size, NULL, gpas, 16, err, sizeof(err)) == 0);

	/* VMCS12 with TPR shadow, APIC-access, posted interrupts, PML, MSR store. */
	st->size = hdr + KVM_STATE_NESTED_VMX_VMCS_SIZE;
	st->hdr.vmx.vmcs12_pa = 0x10000;
	put32(vmcs12, 744, 1u << 7);				/* posted interrupts */
	put32(vmcs12, 748, (1u << 21) | (1u << 31));		/* TPR shadow, secondary */
	put32(vmcs12, 804, (1u << 0) | (1u << 17));		/* APIC accesses, PML */
	put64(vmcs12, 96, 0x11000);
	put64(vmcs12, 104, 0x12000);
	put64(vmcs12, 112, 0x13040);				/* within a page */
	put64(vmcs12, 312, 0x14000);
	put64(vmcs12, 64, 0x15ff0);				/* 2 entries across 2 pages */
	put32(vmcs12, 772, 2);
	put64(vmcs12, 176, 0x17000);				/* link pointer, not enabled */
	n = nk_nested_state_pages(st, size, NULL, gpas, 16, err, sizeof(err));
	CHECK(n == 7);
	CHECK(has(gpas, n, 0x10000) && has(gpas, n, 0x11000) && has(gpas, n, 0x12000));
	CHECK(has(gpas, n, 0x13000) && has(gpas, n, 0x14000));
	CHECK(has(gpas, n, 0x15000) && has(gpas, n, 0x16000) && !has(gpas, n, 0x17000));
	/* Shadow VMCS enabled: its link pointer too; duplicates once. */
	put32(vmcs12, 804, (1u << 0) | (1u << 17) | (1u << 14));
	put64(vmcs12, 96, 0x12000);
	n = nk_nested_state_pages(st, size, NULL, gpas, 16, err, sizeof(err));
	CHECK(n == 7 && has(gpas, n, 0x17000) && !has(gpas, n, 0x11000));
	/* Too small an array is an error, not a silent cut. */
	CHECK(nk_nested_state_pages(st, size, NULL, gpas, 3, err, sizeof(err)) == -1);
	CHECK(strstr(err, "more than 3") != NULL);
	/* Enlightened VMCS: its address must be given. */
	st->flags = KVM_STATE_NESTED_EVMCS;
	CHECK(nk_nested_state_pages(st, size, NULL, gpas, 16, err, sizeof(err)) == -1);
	n = nk_nested_state_pages(st, size, &(uint64_t){ 0x18000 }, gpas, 16, err, sizeof(err));
	CHECK(n == 8 && has(gpas, n, 0x18000));
	/* GPA 0 is a valid address for it. */
	n = nk_nested_state_pages(st, size, &(uint64_t){ 0 }, gpas, 16, err, sizeof(err));
	CHECK(n == 8 && has(gpas, n, 0));

	/* SVM: VMCB12 while L2 runs. */
	memset(st, 0, size);
	st->format = KVM_STATE_NESTED_FORMAT_SVM;
	st->size = hdr;
	st->hdr.svm.vmcb_pa = 0x20000;
	CHECK(nk_nested_state_pages(st, size, NULL, gpas, 16, err, sizeof(err)) == 0);
	st->flags = KVM_STATE_NESTED_GUEST_MODE;
	n = nk_nested_state_pages(st, size, NULL, gpas, 16, err, sizeof(err));
	CHECK(n == 1 && gpas[0] == 0x20000);

	/* Malformed: unknown format, size larger than the buffer, short buffer. */
	st->format = 7;
	CHECK(nk_nested_state_pages(st, size, NULL, gpas, 16, err, sizeof(err)) == -1);
	st->format = KVM_STATE_NESTED_FORMAT_SVM;
	st->size = size + 1;
	CHECK(nk_nested_state_pages(st, size, NULL, gpas, 16, err, sizeof(err)) == -1);
	CHECK(nk_nested_state_pages(st, 8, NULL, gpas, 16, err, sizeof(err)) == -1);
	free(st);
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO };

	sigaction(SIGSEGV, &sa, NULL);
	test_fnv1a();
	test_nested_state_pages();
	test_bad_input();
	test_readonly_image();
	test_no_background();
	test_handle_exit();
	test_out_of_space(NK_SNAP_MPROTECT);
	test_concurrent(NK_SNAP_MPROTECT, 2, 20, false);
	/* Needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1. */
	CHECK(uffd_wp_works());
	test_out_of_space(NK_SNAP_UFFD_WP);
	test_concurrent(NK_SNAP_UFFD_WP, 2, 20, true);
	return unit_done("snapshot");
}
