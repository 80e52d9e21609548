// SPDX-License-Identifier: GPL-2.0
/*
 * Lazy snapshot engine (see snapshot.h).
 *
 * Each tracked page has a state: PENDING (write-protected, not copied),
 * CLAIMED (one thread is copying it), DONE (in the image), EXCLUDED (copied
 * at the start instant, never protected).  Whoever moves a page from
 * PENDING to CLAIMED copies it; a page is made writable only once it is
 * DONE, so no write can reach it before its copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "nestkit/snapshot.h"

#define PAGE		4096ull
/* The background copier unprotects this many pages at once. */
#define CHUNK_PAGES	64

/* Older uAPI headers (e.g. the system's) lack the memory fault exit. */
#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT		39
#endif
#ifndef KVM_MEMORY_EXIT_FLAG_WRITE
#define KVM_MEMORY_EXIT_FLAG_WRITE	(1ULL << 1)
#endif

/* kvm_run.memory_fault; every member of the exit union starts here. */
struct memory_fault {
	uint64_t flags;
	uint64_t gpa;
	uint64_t size;
};

static const struct memory_fault *memory_fault(const struct kvm_run *run)
{
	return (const void *)&run->mmio;
}

enum { PENDING, CLAIMED, DONE, EXCLUDED };

struct snap_region {
	uint64_t gpa;
	uint8_t *hva;
	uint64_t size;
	uint64_t first;		/* index of its first page */
	uint64_t image_off;
};

struct nk_snap {
	enum nk_snap_backend backend;
	struct snap_region *regs;
	unsigned int nregs;
	uint64_t npages;
	_Atomic unsigned char *state;
	int image_fd;
	int uffd;
	int stop_fd[2];
	bool started, copier_up, handler_up;
	unsigned int copier_pause_us;
	bool no_background;
	pthread_t copier, handler;

	pthread_mutex_t lock;	/* fail_msg */
	atomic_bool failed;
	char fail_msg[256];

	atomic_uint_fast64_t fault_copies, background_copies, excluded;
	atomic_uint_fast64_t max_stall_ns, total_ns;
	atomic_bool copier_done;
	struct timespec t0;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void note_max(atomic_uint_fast64_t *max, uint64_t v)
{
	uint_fast64_t cur = atomic_load(max);

	while (v > cur && !atomic_compare_exchange_weak(max, &cur, v))
		;
}

static const struct snap_region *region_of_gpa(const struct nk_snap *s,
					       uint64_t gpa)
{
	for (unsigned int i = 0; i < s->nregs; i++)
		if (gpa >= s->regs[i].gpa && gpa - s->regs[i].gpa < s->regs[i].size)
			return &s->regs[i];
	return NULL;
}

static const struct snap_region *region_of_hva(const struct nk_snap *s,
					       uint64_t hva)
{
	for (unsigned int i = 0; i < s->nregs; i++) {
		uint64_t base = (uint64_t)(uintptr_t)s->regs[i].hva;

		if (hva >= base && hva - base < s->regs[i].size)
			return &s->regs[i];
	}
	return NULL;
}

int64_t nk_snap_image_offset(const struct nk_snap *s, uint64_t gpa)
{
	const struct snap_region *r = region_of_gpa(s, gpa);

	return r ? (int64_t)(r->image_off + (gpa - r->gpa)) : -1;
}

/* Make [hva, hva + len) writable again; also wakes userfaultfd waiters. */
static int unprotect(struct nk_snap *s, uint8_t *hva, uint64_t len)
{
	if (s->backend == NK_SNAP_MPROTECT)
		return mprotect(hva, len, PROT_READ | PROT_WRITE);

	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)hva, .len = len },
		.mode = 0,
	};
	return ioctl(s->uffd, UFFDIO_WRITEPROTECT, &wp);
}

static int protect(struct nk_snap *s, uint8_t *hva, uint64_t len)
{
	if (s->backend == NK_SNAP_MPROTECT)
		return mprotect(hva, len, PROT_READ);

	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)hva, .len = len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	return ioctl(s->uffd, UFFDIO_WRITEPROTECT, &wp);
}

static void unprotect_all(struct nk_snap *s)
{
	for (unsigned int i = 0; i < s->nregs; i++)
		unprotect(s, s->regs[i].hva, s->regs[i].size);
}

/* The first failure wins; guest memory becomes writable everywhere. */
static void fail(struct nk_snap *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	if (!atomic_load(&s->failed)) {
		va_start(ap, fmt);
		vsnprintf(s->fail_msg, sizeof(s->fail_msg), fmt, ap);
		va_end(ap);
		atomic_store(&s->failed, true);
	}
	pthread_mutex_unlock(&s->lock);
	unprotect_all(s);
}

static void copy_page(struct nk_snap *s, const struct snap_region *r,
		      uint64_t off)
{
	ssize_t n = pwrite(s->image_fd, r->hva + off, PAGE,
			   (off_t)(r->image_off + off));

	if (n != (ssize_t)PAGE)
		fail(s, "writing the image at offset %llu: %s",
		     (unsigned long long)(r->image_off + off),
		     n < 0 ? strerror(errno) : "short write (out of space?)");
}

static void wait_not_claimed(struct nk_snap *s, uint64_t idx)
{
	while (atomic_load(&s->state[idx]) == CLAIMED)
		sched_yield();
}

/* 1: ours and writable now; 0: not a tracked page; -1: cannot unprotect. */
static int handle_write(struct nk_snap *s, const struct snap_region *r,
			uint64_t off, char *err, size_t errlen)
{
	uint64_t idx = r->first + off / PAGE;
	uint64_t t = now_ns();
	unsigned char expect = PENDING;

	off &= ~(PAGE - 1);
	if (atomic_load(&s->state[idx]) == EXCLUDED)
		return 0;
	if (atomic_compare_exchange_strong(&s->state[idx], &expect, CLAIMED)) {
		if (!atomic_load(&s->failed))
			copy_page(s, r, off);
		atomic_store(&s->state[idx], DONE);
		atomic_fetch_add(&s->fault_copies, 1);
	} else {
		wait_not_claimed(s, idx);
	}
	/* DONE, possibly by the copier, whose chunk may still be protected. */
	if (unprotect(s, r->hva + off, PAGE)) {
		seterr(err, errlen, "unprotecting gpa 0x%llx: %s",
		       (unsigned long long)(r->gpa + off), strerror(errno));
		fail(s, "unprotecting gpa 0x%llx: %s",
		     (unsigned long long)(r->gpa + off), strerror(errno));
		return -1;
	}
	note_max(&s->max_stall_ns, now_ns() - t);
	return 1;
}

int nk_snap_handle_write(struct nk_snap *s, uint64_t gpa, char *err,
			 size_t errlen)
{
	const struct snap_region *r = region_of_gpa(s, gpa);

	if (!s->started || !r)
		return 0;
	return handle_write(s, r, gpa - r->gpa, err, errlen);
}

int nk_snap_handle_exit(struct nk_snap *s, struct kvm_run *run, int ret,
			int err_no, char *err, size_t errlen)
{
	const struct snap_region *r;
	uint64_t gpa;
	int h;

	if (s->backend != NK_SNAP_MPROTECT || !s->started)
		return 0;
	if (ret < 0 && err_no == EFAULT &&
	    run->exit_reason == KVM_EXIT_MEMORY_FAULT &&
	    (memory_fault(run)->flags & KVM_MEMORY_EXIT_FLAG_WRITE))
		return nk_snap_handle_write(s, memory_fault(run)->gpa, err, errlen);

	/*
	 * KVM's emulator turns a failed write to RAM into an MMIO exit: copy
	 * the page, then perform the write for it.
	 */
	if (ret < 0 || run->exit_reason != KVM_EXIT_MMIO || !run->mmio.is_write)
		return 0;
	gpa = run->mmio.phys_addr;
	r = region_of_gpa(s, gpa);
	if (!r || run->mmio.len > sizeof(run->mmio.data) ||
	    (gpa & (PAGE - 1)) + run->mmio.len > PAGE)
		return 0;
	h = handle_write(s, r, gpa - r->gpa, err, errlen);
	if (h == 1)
		memcpy(r->hva + (gpa - r->gpa), run->mmio.data, run->mmio.len);
	return h;
}

static void *copier_main(void *arg)
{
	struct nk_snap *s = arg;

	for (unsigned int i = 0; i < s->nregs && !atomic_load(&s->failed); i++) {
		const struct snap_region *r = &s->regs[i];
		uint64_t pages = r->size / PAGE;

		for (uint64_t p = 0; p < pages && !atomic_load(&s->failed);
		     p += CHUNK_PAGES) {
			uint64_t n = pages - p < CHUNK_PAGES ? pages - p : CHUNK_PAGES;

			for (uint64_t j = p; j < p + n; j++) {
				unsigned char expect = PENDING;

				if (!atomic_compare_exchange_strong(&s->state[r->first + j],
								    &expect, CLAIMED))
					continue;
				if (!atomic_load(&s->failed))
					copy_page(s, r, j * PAGE);
				atomic_store(&s->state[r->first + j], DONE);
				atomic_fetch_add(&s->background_copies, 1);
			}
			/* A page a writer is copying must stay protected. */
			for (uint64_t j = p; j < p + n; j++)
				wait_not_claimed(s, r->first + j);
			if (unprotect(s, r->hva + p * PAGE, n * PAGE))
				fail(s, "unprotecting gpa 0x%llx: %s",
				     (unsigned long long)(r->gpa + p * PAGE),
				     strerror(errno));
			if (s->copier_pause_us)
				usleep(s->copier_pause_us);
		}
	}
	{
		struct timespec t1;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		atomic_store(&s->total_ns,
			     (uint64_t)(t1.tv_sec - s->t0.tv_sec) * 1000000000ull +
			     (uint64_t)(t1.tv_nsec - s->t0.tv_nsec));
	}
	atomic_store(&s->copier_done, true);
	return NULL;
}

static void *handler_main(void *arg)
{
	struct nk_snap *s = arg;
	struct pollfd pfd[2] = {
		{ .fd = s->uffd, .events = POLLIN },
		{ .fd = s->stop_fd[0], .events = POLLIN },
	};

	for (;;) {
		struct uffd_msg msg;
		const struct snap_region *r;
		uint64_t addr;
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail(s, "poll on userfaultfd: %s", strerror(errno));
			return NULL;
		}
		if (pfd[1].revents)
			return NULL;
		n = read(s->uffd, &msg, sizeof(msg));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n != sizeof(msg)) {
			fail(s, "reading userfaultfd: %s",
			     n < 0 ? strerror(errno) : "short read");
			return NULL;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		addr = msg.arg.pagefault.address & ~(PAGE - 1);
		r = region_of_hva(s, addr);
		if (r && (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
			handle_write(s, r, addr - (uintptr_t)r->hva, NULL, 0);
		} else {
			struct uffdio_range range = { .start = addr, .len = PAGE };

			ioctl(s->uffd, UFFDIO_WAKE, &range);
		}
	}
}

/* *@unpopulated: untouched pages can be write-protected too. */
static int uffd_open(int *unpopulated, char *err, size_t errlen)
{
	struct uffdio_api api = { .api = UFFD_API };
	uint64_t want = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	int fd;

	/* Not UFFD_USER_MODE_ONLY: KVM's own accesses must wait too. */
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		seterr(err, errlen, "userfaultfd: %s%s", strerror(errno),
		       errno == EPERM ? " (needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)" : "");
		return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		seterr(err, errlen, "UFFDIO_API: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (!(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		seterr(err, errlen, "userfaultfd has no write-protect support");
		close(fd);
		return -1;
	}
	*unpopulated = 0;
#ifdef UFFD_FEATURE_WP_UNPOPULATED
	/* Protect pages that were never touched as well. */
	want |= api.features & UFFD_FEATURE_WP_UNPOPULATED;
	*unpopulated = !!(want & UFFD_FEATURE_WP_UNPOPULATED);
#endif
	/* The features can only be chosen on a fresh descriptor. */
	close(fd);
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	api = (struct uffdio_api){ .api = UFFD_API, .features = want };
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api)) {
		seterr(err, errlen, "userfaultfd (features): %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

struct nk_snap *nk_snap_create(enum nk_snap_backend backend,
			       const struct nk_snap_region *regions,
			       unsigned int nregions, int image_fd,
			       char *err, size_t errlen)
{
	struct nk_snap *s;
	uint64_t pages = 0, off = 0;

	if (backend != NK_SNAP_MPROTECT && backend != NK_SNAP_UFFD_WP) {
		seterr(err, errlen, "unknown backend %d", (int)backend);
		return NULL;
	}
	if (!regions || !nregions) {
		seterr(err, errlen, "no memory regions");
		return NULL;
	}
	if (image_fd < 0) {
		seterr(err, errlen, "bad image file descriptor");
		return NULL;
	}
	for (unsigned int i = 0; i < nregions; i++) {
		const struct nk_snap_region *a = &regions[i];
		uint64_t ha = (uint64_t)(uintptr_t)a->hva;

		if (!a->size || !a->hva || ((a->gpa | ha | a->size) & (PAGE - 1)) ||
		    a->gpa + a->size < a->gpa || ha + a->size < ha) {
			seterr(err, errlen, "region %u (gpa 0x%llx, size 0x%zx) is empty, unaligned or wraps",
			       i, (unsigned long long)a->gpa, a->size);
			return NULL;
		}
		for (unsigned int j = 0; j < i; j++) {
			const struct nk_snap_region *b = &regions[j];
			uint64_t hb = (uint64_t)(uintptr_t)b->hva;

			if ((a->gpa < b->gpa + b->size && b->gpa < a->gpa + a->size) ||
			    (ha < hb + b->size && hb < ha + a->size)) {
				seterr(err, errlen, "regions %u and %u overlap", j, i);
				return NULL;
			}
		}
		pages += a->size / PAGE;
	}

	s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	s->regs = calloc(nregions, sizeof(*s->regs));
	s->state = calloc(pages, sizeof(*s->state));
	if (!s->regs || !s->state)
		goto nomem;
	s->backend = backend;
	s->nregs = nregions;
	s->npages = pages;
	s->image_fd = image_fd;
	s->uffd = -1;
	s->stop_fd[0] = s->stop_fd[1] = -1;
	pthread_mutex_init(&s->lock, NULL);
	pages = 0;
	for (unsigned int i = 0; i < nregions; i++) {
		s->regs[i] = (struct snap_region){
			.gpa = regions[i].gpa, .hva = regions[i].hva,
			.size = regions[i].size, .first = pages, .image_off = off,
		};
		pages += regions[i].size / PAGE;
		off += regions[i].size;
	}

	if (backend == NK_SNAP_UFFD_WP) {
		int unpopulated;

		s->uffd = uffd_open(&unpopulated, err, errlen);
		if (s->uffd < 0)
			goto out;
		/*
		 * Without UFFD_FEATURE_WP_UNPOPULATED, write-protecting a page
		 * that was never touched does nothing, and its first write
		 * would not fault: populate every page now, contents unchanged.
		 */
		for (unsigned int i = 0; !unpopulated && i < nregions; i++) {
			if (madvise(s->regs[i].hva, s->regs[i].size, MADV_POPULATE_WRITE)) {
				seterr(err, errlen, "region %u: no UFFD_FEATURE_WP_UNPOPULATED, and MADV_POPULATE_WRITE failed: %s",
				       i, strerror(errno));
				goto out;
			}
		}
		for (unsigned int i = 0; i < nregions; i++) {
			struct uffdio_register reg = {
				.range = { .start = (uintptr_t)s->regs[i].hva,
					   .len = s->regs[i].size },
				.mode = UFFDIO_REGISTER_MODE_WP,
			};

			if (ioctl(s->uffd, UFFDIO_REGISTER, &reg)) {
				seterr(err, errlen, "UFFDIO_REGISTER of region %u: %s (anonymous, shmem or hugetlbfs memory only)",
				       i, strerror(errno));
				goto out;
			}
		}
		if (pipe2(s->stop_fd, O_CLOEXEC)) {
			seterr(err, errlen, "pipe: %s", strerror(errno));
			goto out;
		}
	}
	return s;
nomem:
	seterr(err, errlen, "out of memory for %llu pages",
	       (unsigned long long)pages);
out:
	nk_snap_destroy(s);
	return NULL;
}

int nk_snap_exclude(struct nk_snap *s, uint64_t gpa, size_t size,
		    char *err, size_t errlen)
{
	uint64_t first = gpa & ~(PAGE - 1), end = gpa + size;

	if (s->started) {
		seterr(err, errlen, "exclude before the start");
		return -1;
	}
	if (!size || end < gpa) {
		seterr(err, errlen, "bad range gpa 0x%llx size 0x%zx",
		       (unsigned long long)gpa, size);
		return -1;
	}
	for (uint64_t p = first; p < end; p += PAGE) {
		const struct snap_region *r = region_of_gpa(s, p);

		if (!r) {
			seterr(err, errlen, "gpa 0x%llx is not in a snapshot region",
			       (unsigned long long)p);
			return -1;
		}
		atomic_store(&s->state[r->first + (p - r->gpa) / PAGE], EXCLUDED);
	}
	return 0;
}

int nk_snap_set_copier_pause(struct nk_snap *s, unsigned int us,
			     char *err, size_t errlen)
{
	if (s->started || us > 1000000) {
		seterr(err, errlen, s->started ? "set the pause before the start" :
		       "pause above 1 s per chunk");
		return -1;
	}
	s->copier_pause_us = us;
	return 0;
}

int nk_snap_set_background(struct nk_snap *s, int on, char *err,
			   size_t errlen)
{
	if (s->started) {
		seterr(err, errlen, "choose the copier before the start");
		return -1;
	}
	s->no_background = !on;
	return 0;
}

int nk_snap_start(struct nk_snap *s, char *err, size_t errlen)
{
	int e;

	if (s->started) {
		seterr(err, errlen, "snapshot already started");
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	for (unsigned int i = 0; i < s->nregs; i++) {
		if (protect(s, s->regs[i].hva, s->regs[i].size)) {
			seterr(err, errlen, "write-protecting region %u: %s",
			       i, strerror(errno));
			unprotect_all(s);
			return -1;
		}
	}
	/* The start instant's copy of what KVM writes on its own. */
	for (unsigned int i = 0; i < s->nregs; i++) {
		const struct snap_region *r = &s->regs[i];

		for (uint64_t p = 0; p < r->size / PAGE; p++) {
			if (atomic_load(&s->state[r->first + p]) != EXCLUDED)
				continue;
			copy_page(s, r, p * PAGE);
			atomic_fetch_add(&s->excluded, 1);
			if (unprotect(s, r->hva + p * PAGE, PAGE))
				fail(s, "unprotecting: %s", strerror(errno));
		}
	}
	if (atomic_load(&s->failed)) {
		seterr(err, errlen, "%s", s->fail_msg);
		return -1;
	}
	s->started = true;
	if (s->backend == NK_SNAP_UFFD_WP) {
		e = pthread_create(&s->handler, NULL, handler_main, s);
		if (e)
			goto thread_err;
		s->handler_up = true;
	}
	if (s->no_background)
		return 0;
	e = pthread_create(&s->copier, NULL, copier_main, s);
	if (e)
		goto thread_err;
	s->copier_up = true;
	return 0;
thread_err:
	seterr(err, errlen, "pthread_create: %s", strerror(e));
	fail(s, "pthread_create: %s", strerror(e));
	return -1;
}

int nk_snap_finished(struct nk_snap *s)
{
	return s->started && atomic_load(&s->copier_done);
}

int nk_snap_wait(struct nk_snap *s, struct nk_snap_stats *stats,
		 char *err, size_t errlen)
{
	if (!s->started) {
		seterr(err, errlen, "snapshot not started");
		return -1;
	}
	if (s->copier_up) {
		pthread_join(s->copier, NULL);
		s->copier_up = false;
	} else if (!atomic_load(&s->copier_done)) {
		copier_main(s);
	}
	if (stats) {
		*stats = (struct nk_snap_stats){
			.pages = s->npages,
			.fault_copies = atomic_load(&s->fault_copies),
			.background_copies = atomic_load(&s->background_copies),
			.excluded = atomic_load(&s->excluded),
			.max_stall_ns = atomic_load(&s->max_stall_ns),
			.total_ns = atomic_load(&s->total_ns),
		};
	}
	if (atomic_load(&s->failed)) {
		pthread_mutex_lock(&s->lock);
		seterr(err, errlen, "%s", s->fail_msg);
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	if (fsync(s->image_fd) && errno != EINVAL && errno != EROFS) {
		seterr(err, errlen, "fsync of the image: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void nk_snap_destroy(struct nk_snap *s)
{
	if (!s)
		return;
	if (s->copier_up)
		pthread_join(s->copier, NULL);
	if (s->started)
		unprotect_all(s);
	if (s->handler_up) {
		if (write(s->stop_fd[1], "x", 1) != 1)
			pthread_cancel(s->handler);
		pthread_join(s->handler, NULL);
	}
	if (s->uffd >= 0)
		close(s->uffd);	/* also unregisters the ranges */
	if (s->stop_fd[0] >= 0)
		close(s->stop_fd[0]);
	if (s->stop_fd[1] >= 0)
		close(s->stop_fd[1]);
	if (s->regs)
		pthread_mutex_destroy(&s->lock);
	free(s->regs);
	free((void *)s->state);
	free(s);
}

uint64_t nk_snap_fnv1a(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ull;
	return h;
}

/*
 * Nested state pages.  Offsets into struct vmcs12 are KVM's ABI for
 * KVM_{GET,SET}_NESTED_STATE (arch/x86/kvm/vmx/vmcs12.h, CHECK_OFFSET).
 */
#define VMCS12_VM_EXIT_MSR_STORE_ADDR	64
#define VMCS12_VIRTUAL_APIC_PAGE_ADDR	96
#define VMCS12_APIC_ACCESS_ADDR		104
#define VMCS12_POSTED_INTR_DESC_ADDR	112
#define VMCS12_VMCS_LINK_POINTER	176
#define VMCS12_PML_ADDRESS		312
#define VMCS12_PIN_BASED_CONTROLS	744
#define VMCS12_CPU_BASED_CONTROLS	748
#define VMCS12_VM_EXIT_MSR_STORE_COUNT	772
#define VMCS12_SECONDARY_CONTROLS	804
#define PIN_POSTED_INTR			(1u << 7)
#define CPU_TPR_SHADOW			(1u << 21)
#define CPU_SECONDARY_CONTROLS		(1u << 31)
#define SEC_VIRTUALIZE_APIC_ACCESSES	(1u << 0)
#define SEC_SHADOW_VMCS			(1u << 14)
#define SEC_ENABLE_PML			(1u << 17)
/* An MSR-store entry is 16 bytes; KVM accepts at most 8 pages of them. */
#define MSR_STORE_MAX_PAGES		8

struct page_list {
	uint64_t *gpas;
	unsigned int n, max;
	int overflow;
};

static void add_page(struct page_list *l, uint64_t gpa)
{
	uint64_t page = gpa & ~(PAGE - 1);

	if (gpa == ~0ull)	/* KVM's "no address" */
		return;
	for (unsigned int i = 0; i < l->n; i++)
		if (l->gpas[i] == page)
			return;
	if (l->n == l->max) {
		l->overflow = 1;
		return;
	}
	l->gpas[l->n++] = page;
}

static uint64_t get64(const uint8_t *p, size_t off)
{
	uint64_t v;

	memcpy(&v, p + off, sizeof(v));
	return v;
}

static uint32_t get32(const uint8_t *p, size_t off)
{
	uint32_t v;

	memcpy(&v, p + off, sizeof(v));
	return v;
}

static void vmcs12_pages(struct page_list *l, const uint8_t *vmcs12)
{
	uint32_t pin = get32(vmcs12, VMCS12_PIN_BASED_CONTROLS);
	uint32_t cpu = get32(vmcs12, VMCS12_CPU_BASED_CONTROLS);
	uint32_t sec = cpu & CPU_SECONDARY_CONTROLS ?
		       get32(vmcs12, VMCS12_SECONDARY_CONTROLS) : 0;
	uint64_t store = get64(vmcs12, VMCS12_VM_EXIT_MSR_STORE_ADDR);
	uint32_t count = get32(vmcs12, VMCS12_VM_EXIT_MSR_STORE_COUNT);

	if (cpu & CPU_TPR_SHADOW)
		add_page(l, get64(vmcs12, VMCS12_VIRTUAL_APIC_PAGE_ADDR));
	if (sec & SEC_VIRTUALIZE_APIC_ACCESSES)
		add_page(l, get64(vmcs12, VMCS12_APIC_ACCESS_ADDR));
	if (pin & PIN_POSTED_INTR)
		add_page(l, get64(vmcs12, VMCS12_POSTED_INTR_DESC_ADDR));
	if (sec & SEC_SHADOW_VMCS)
		add_page(l, get64(vmcs12, VMCS12_VMCS_LINK_POINTER));
	if (sec & SEC_ENABLE_PML)
		add_page(l, get64(vmcs12, VMCS12_PML_ADDRESS));
	if (count) {
		uint64_t end = store + (uint64_t)count * 16;

		for (uint64_t p = store & ~(PAGE - 1), n = 0;
		     p < end && n < MSR_STORE_MAX_PAGES; p += PAGE, n++)
			add_page(l, p);
	}
}

int nk_nested_state_pages(const struct kvm_nested_state *state, size_t size,
			  const uint64_t *evmcs_gpa, uint64_t *gpas, unsigned int max,
			  char *err, size_t errlen)
{
	const size_t hdr = offsetof(struct kvm_nested_state, data);
	struct page_list l = { .gpas = gpas, .max = max };
	const uint8_t *data = (const uint8_t *)state + hdr;

	if (size < hdr || state->size > size || state->size < hdr) {
		seterr(err, errlen, "nested state: %zu bytes, header says %u", size,
		       size >= hdr ? state->size : 0);
		return -1;
	}
	switch (state->format) {
	case KVM_STATE_NESTED_FORMAT_VMX:
		if (state->hdr.vmx.vmcs12_pa == ~0ull && !(state->flags & KVM_STATE_NESTED_EVMCS))
			return 0;	/* no current VMCS */
		add_page(&l, state->hdr.vmx.vmcs12_pa);
		if (state->flags & KVM_STATE_NESTED_EVMCS) {
			if (!evmcs_gpa) {
				seterr(err, errlen, "nested state: enlightened VMCS in use, its address not given");
				return -1;
			}
			add_page(&l, *evmcs_gpa);
		}
		/* The VMCS12 contents follow the header when there is one. */
		if (state->size >= hdr + KVM_STATE_NESTED_VMX_VMCS_SIZE)
			vmcs12_pages(&l, data);
		break;
	case KVM_STATE_NESTED_FORMAT_SVM:
		if (state->flags & KVM_STATE_NESTED_GUEST_MODE)
			add_page(&l, state->hdr.svm.vmcb_pa);
		break;
	default:
		seterr(err, errlen, "nested state: unknown format %u", state->format);
		return -1;
	}
	if (l.overflow) {
		seterr(err, errlen, "nested state: more than %u pages", max);
		return -1;
	}
	return (int)l.n;
}

/* TLFS: the VP assist page MSR, and where it keeps the eVMCS address. */
#define HV_X64_MSR_VP_ASSIST_PAGE		0x40000073
#define VP_ASSIST_CURRENT_NESTED_VMCS		48

/* The enlightened VMCS address from the VP assist page; -1 if unknown. */
static int evmcs_address(struct nk_snap *s, int vcpu_fd, uint64_t *evmcs)
{
	/* struct kvm_msrs with room for one entry (plain C: no GNU extension). */
	union {
		struct kvm_msrs hdr;
		uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} msr = { .hdr.nmsrs = 1 };
	const struct snap_region *r;
	uint64_t page;

	msr.hdr.entries[0].index = HV_X64_MSR_VP_ASSIST_PAGE;
	if (ioctl(vcpu_fd, KVM_GET_MSRS, &msr) != 1 || !(msr.hdr.entries[0].data & 1))
		return -1;
	page = msr.hdr.entries[0].data & ~(PAGE - 1);
	r = region_of_gpa(s, page);
	if (!r)
		return -1;
	memcpy(evmcs, r->hva + (page - r->gpa) + VP_ASSIST_CURRENT_NESTED_VMCS, sizeof(*evmcs));
	return 0;
}

int nk_snap_exclude_nested(struct nk_snap *s, int vcpu_fd, char *err, size_t errlen)
{
	/* Header, VMCS12 and shadow VMCS12: what KVM_CAP_NESTED_STATE allows. */
	size_t size = offsetof(struct kvm_nested_state, data) + 2 * KVM_STATE_NESTED_VMX_VMCS_SIZE;
	struct kvm_nested_state *state = calloc(1, size);
	uint64_t gpas[32], evmcs;
	int n, excluded = 0;

	if (!state) {
		seterr(err, errlen, "nested state: out of memory");
		return -1;
	}
	state->size = size;
	if (ioctl(vcpu_fd, KVM_GET_NESTED_STATE, state)) {
		seterr(err, errlen, "KVM_GET_NESTED_STATE: %s", strerror(errno));
		free(state);
		return -1;
	}
	n = nk_nested_state_pages(state, size,
				  (state->flags & KVM_STATE_NESTED_EVMCS) &&
				  !evmcs_address(s, vcpu_fd, &evmcs) ? &evmcs : NULL,
				  gpas, sizeof(gpas) / sizeof(gpas[0]), err, errlen);
	free(state);
	for (int i = 0; i < n; i++) {
		if (!region_of_gpa(s, gpas[i]))
			continue;
		if (nk_snap_exclude(s, gpas[i], PAGE, err, errlen))
			return -1;
		excluded++;
	}
	return n < 0 ? -1 : excluded;
}
