/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Lazy snapshots of guest memory: the image equals guest memory at the
 * instant nk_snap_start() is called, while the guest keeps running.
 *
 * Every tracked page is write-protected at the start.  A page that is about
 * to be written is copied to the image first, then unprotected; a background
 * copier takes the others.  Two backends, one API:
 *
 *  NK_SNAP_MPROTECT  mprotect(PROT_READ); the vCPU loop hands each
 *                    KVM_EXIT_MEMORY_FAULT (KVM_CAP_MEMORY_FAULT_PERM) and
 *                    each MMIO write exit to a RAM address (writes by KVM's
 *                    instruction emulator) to nk_snap_handle_exit(), which
 *                    completes such a write itself: do not use it on pages
 *                    that KVM write-tracks (guest page tables under shadow
 *                    paging, L1's EPT/NPT tables), see api.rst.
 *  NK_SNAP_UFFD_WP   userfaultfd write-protection; a handler thread copies
 *                    the page of each write fault, from a vCPU or from KVM.
 *
 * With NK_SNAP_MPROTECT, the pages that KVM writes through its own mappings
 * (kvmclock, steal time, PV EOI, Hyper-V pages, nested state) fail without
 * an exit: declare them with nk_snap_exclude(), which copies them at the
 * start instant and leaves them writable.  With both backends, the pages
 * that KVM keeps mapped for a vCPU's nested state are written by KVM or by
 * the CPU without an exit or a userfault: nk_snap_exclude_nested() finds
 * them (KVM_GET_NESTED_STATE) and excludes them.
 *
 * On any error, every page is made writable again: guest memory is never
 * written by the engine and the guest keeps running; the image is then
 * incomplete and nk_snap_wait() says why.
 */
#ifndef NESTKIT_SNAPSHOT_H
#define NESTKIT_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

struct kvm_run;

enum nk_snap_backend {
	NK_SNAP_MPROTECT,
	NK_SNAP_UFFD_WP,
};

/* Guest physical [gpa, gpa + size) is mapped at hva; page-aligned. */
struct nk_snap_region {
	uint64_t gpa;
	void *hva;
	size_t size;
};

struct nk_snap_stats {
	uint64_t pages;			/* tracked pages */
	uint64_t fault_copies;		/* copied because of a write */
	uint64_t background_copies;	/* copied by the background copier */
	uint64_t excluded;		/* copied at start, never protected */
	uint64_t max_stall_ns;		/* longest time a writer waited */
	uint64_t total_ns;		/* start to last page copied */
};

struct nk_snap;

/*
 * The image file gets region i at offset sum(size of regions < i).
 * Regions must be page-aligned, non-empty and not overlap (in GPA or HVA).
 */
struct nk_snap *nk_snap_create(enum nk_snap_backend backend,
			       const struct nk_snap_region *regions,
			       unsigned int nregions, int image_fd,
			       char *err, size_t errlen);

/* Copy [gpa, gpa + size) at the start instant and never protect it. */
int nk_snap_exclude(struct nk_snap *s, uint64_t gpa, size_t size,
		    char *err, size_t errlen);

/*
 * The guest pages that KVM keeps mapped, or writes without an exit or a
 * userfault, for one vCPU's nested state, from its KVM_GET_NESTED_STATE
 * (@state, @size bytes).  VMX: the current VMCS12, its shadow VMCS12, and
 * the virtual-APIC, APIC-access, posted-interrupt descriptor and PML pages
 * and the VM-exit MSR-store area that it enables, and the enlightened VMCS
 * at *@evmcs_gpa if KVM_STATE_NESTED_EVMCS says one is in use (the caller
 * reads its address from the VP assist page; NULL if it could not, which is
 * then an error).  SVM, while L2 runs: VMCB12.
 * Stores up to @max page addresses in @gpas (duplicates removed) and
 * returns how many, or -1 with a message in @err for a malformed state.
 */
struct kvm_nested_state;
int nk_nested_state_pages(const struct kvm_nested_state *state, size_t size,
			  const uint64_t *evmcs_gpa, uint64_t *gpas, unsigned int max,
			  char *err, size_t errlen);

/*
 * Exclude (nk_snap_exclude()) the pages of nk_nested_state_pages() for the
 * stopped vCPU @vcpu_fd, before the start.  Pages outside the snapshot's
 * regions are not in the image and are skipped.  With an enlightened VMCS,
 * the VP assist page must be in a region: the engine reads the eVMCS address
 * there (KVM_GET_NESTED_STATE does not report it), as it is at the start
 * instant.  Returns the number of pages excluded, or -1 with @err.
 */
int nk_snap_exclude_nested(struct nk_snap *s, int vcpu_fd, char *err, size_t errlen);

/*
 * Let the background copier sleep @us microseconds after each chunk of 64
 * pages, to bound its share of the CPU (default 0).  Before the start.
 */
int nk_snap_set_copier_pause(struct nk_snap *s, unsigned int us,
			     char *err, size_t errlen);

/*
 * With @on = 0, no background copier thread runs: only writes copy pages
 * until nk_snap_wait() copies the rest in the calling thread (e.g. a VMM
 * that copies when the guest is idle).  Default 1.  Before the start.
 */
int nk_snap_set_background(struct nk_snap *s, int on, char *err,
			   size_t errlen);

/*
 * The start instant: call with every vCPU stopped.  Write-protects all
 * pages, copies the excluded ones and starts the background copier.
 */
int nk_snap_start(struct nk_snap *s, char *err, size_t errlen);

/*
 * NK_SNAP_MPROTECT: give every failed KVM_RUN (ret < 0, errno) and every
 * KVM_EXIT_MMIO to the engine.  Returns 1 if it was a write to a tracked
 * page, which is now copied and writable: re-enter KVM_RUN (for an MMIO
 * exit the engine performed the write).  0 if it is not the engine's,
 * -1 on error (err says why; the page is writable anyway).
 */
int nk_snap_handle_exit(struct nk_snap *s, struct kvm_run *run, int ret,
			int err_no, char *err, size_t errlen);

/* Copy the page at gpa now if it is still pending (the fault handler). */
int nk_snap_handle_write(struct nk_snap *s, uint64_t gpa, char *err,
			 size_t errlen);

/* Whether every page is in the image (or the snapshot failed) yet. */
int nk_snap_finished(struct nk_snap *s);

/*
 * Wait until every page is in the image.  0 on success, -1 if the snapshot
 * failed (err says why).  Either way, all pages are writable afterwards.
 */
int nk_snap_wait(struct nk_snap *s, struct nk_snap_stats *stats,
		 char *err, size_t errlen);

void nk_snap_destroy(struct nk_snap *s);

/* 64-bit FNV-1a of @n bytes: how demos compare an image with memory. */
uint64_t nk_snap_fnv1a(const void *p, size_t n);

/* Bookkeeping, exposed for tests: image offset of gpa, or -1. */
int64_t nk_snap_image_offset(const struct nk_snap *s, uint64_t gpa);

#endif
