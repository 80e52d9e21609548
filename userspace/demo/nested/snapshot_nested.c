// SPDX-License-Identifier: GPL-2.0-only
/*
 * nestkit-snapshot-nested-demo (plan test "snapshot_nested"): lazy snapshots
 * of a nested guest with libnestkit's engine, each backend, verified page
 * for page.
 *
 * This program is the L0 VMM.  Its L1 enables kvmclock and steal time (so
 * KVM writes two pages of the snapshot through its own mappings) and runs
 * an L2 with nested paging (VMX: nested EPT, SVM: nested NPT) that reaches
 * the data pages at other L2 GPAs than their L1 GPAs.  L2 writes random
 * dwords into random data pages, hypercalls L1 every few writes; L1 writes
 * random pages too and reports a tick to this VMM every few L2 exits.
 *
 * At a tick (the vCPU stopped: the start instant) the VMM copies the data
 * memslot as the reference, starts a snapshot of it (NK_SNAP_MPROTECT with
 * KVM_CAP_MEMORY_FAULT_PERM, the kvmclock and steal-time pages excluded;
 * NK_SNAP_UFFD_WP, nothing excluded) and resumes the guest until the
 * snapshot is complete.  The image must equal the reference, page for page.
 * Every other run has no background copier: the writers copy the pages they
 * hit for two ticks, then nk_snap_wait() the rest, so L1's and L2's write
 * faults are taken whatever the copier's speed.
 *
 * The data memslot also holds the pages of L1's nested state that KVM or
 * the CPU write without an exit or a userfault: VMX: the VMCS12 (which L1
 * VMCLEARs and reloads every few exits, so that KVM writes its cached copy
 * back) and the virtual-APIC page of TPR shadow (L2 writes CR8 as it goes);
 * SVM: the VMCB12 (written at every nested #VMEXIT).  On VMX each backend
 * runs twice: with a VMCS, and with an enlightened VMCS, which KVM writes at
 * every nested VM-exit (its VP assist page is in the data slot too).  L2
 * also reports a tick
 * now and then, so that snapshots start with the vCPU in L2 as well as in
 * L1.  The engine excludes those pages at each start instant
 * (nk_snap_exclude_nested(), from KVM_GET_NESTED_STATE); --no-nested-exclude
 * leaves that out, to show what it prevents.
 *
 * The rest of L1 (code, stack, page tables, nested paging tables) is in
 * memslot 0, which is not snapshotted (see f4-memory-fault.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <asm/kvm_para.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "vmx.h"
#include "evmcs.h"
#include "hyperv.h"
#include "svm_util.h"

#include "nested_demo.h"
#include "nestkit/snapshot.h"

#ifndef KVM_CAP_MEMORY_FAULT_PERM
#define KVM_CAP_MEMORY_FAULT_PERM	0x4e4b0004	/* nestkit/caps.h */
#endif

#define PROG			"nestkit-snapshot-nested-demo"
#define L2_GUEST_STACK_SIZE	256
#define DATA_SLOT		1
#define DATA_GPA		0xd0000000ull
/* L2's view of the data pages with nested paging. */
#define ALIAS_GPA		0xe0000000ull
#define L2_WRITES		16	/* random writes by L2 per hypercall */
#define L1_WRITES		16	/* random writes by L1 per L2 exit */
#define EXITS_PER_TICK		4	/* L2 exits per tick to the VMM */
#define WARMUP_TICKS		8
#define TICKS_AFTER		2	/* ticks after the snapshot completed */
#define WRITER_TICKS		2	/* ticks of a snapshot without the copier */
#define L2_TICK_EVERY		7	/* L2 reports a tick every so many hypercalls */
#define VMCLEAR_EVERY		3	/* VMX: L1 VMCLEARs its VMCS every so many exits */
/*
 * Pages of L1's nested state in the data slot, after the data pages: VMX:
 * VMCS12 (or the enlightened VMCS), the virtual-APIC page, the VP assist
 * page (--evmcs); SVM: VMCB12.
 */
#define NESTED_PAGES		3

/* Guest-visible, set by the VMM before the first run. */
static struct {
	bool is_amd;
	u64 l2_base;		/* data pages, as L2 addresses them */
	u64 l1_base;		/* data pages, as L1 addresses them */
	u64 pages;		/* data pages the writers write */
	u64 clock_gpa, steal_gpa;
	u64 nested_gpa;		/* NESTED_PAGES pages */
	bool evmcs;		/* VMX: L1 uses an enlightened VMCS */
	u64 l1_seed, l2_seed;
} g;

static inline u64 xorshift(u64 *s)
{
	u64 r = *s;

	r ^= r << 13;
	r ^= r >> 7;
	r ^= r << 17;
	*s = r;
	return r;
}

static void write_random(u64 base, u64 *seed, int n)
{
	for (int i = 0; i < n; i++) {
		u64 r = xorshift(seed);

		WRITE_ONCE(*(u32 *)(base + (r % g.pages) * PAGE_SIZE +
				    (r >> 32) % (PAGE_SIZE / 4) * 4), (u32)r);
	}
}

static void l2_hypercall(void)
{
	/* L1 does not preserve L2's registers: clobber them all. */
	nested_demo_l2_hypercall(g.is_amd);
}

static void l2_writer(void)
{
	for (u64 n = 1;; n++) {
		write_random(READ_ONCE(g.l2_base), &g.l2_seed, L2_WRITES);
		/* L1 does not intercept I/O: this tick stops the vCPU in L2. */
		if (!(n % L2_TICK_EVERY))
			GUEST_SYNC(2);
		/*
		 * VMX: with TPR shadow, the CPU writes VTPR into L1's page,
		 * through KVM's mapping: right after a start instant in L2 too.
		 */
		if (!g.is_amd)
			asm volatile("mov %0, %%cr8" : : "r"(g.l2_seed & 0xf) : "memory");
		l2_hypercall();
	}
}

/* L1's share of the work after each L2 exit; a tick every few exits. */
static void l1_after_exit(u64 *exits)
{
	write_random(g.l1_base, &g.l1_seed, L1_WRITES);
	if (!(++*exits % EXITS_PER_TICK))
		GUEST_SYNC(0);
}

static void l1_vmx(struct vmx_pages *vmx, struct hyperv_test_pages *hv)
{
	unsigned long stack[L2_GUEST_STACK_SIZE];
	u64 exits = 0;

	if (g.evmcs) {
		wrmsr(HV_X64_MSR_GUEST_OS_ID, HYPERV_LINUX_OS_ID);
		enable_vp_assist(hv->vp_assist_gpa, hv->vp_assist);
		evmcs_enable();
	}
	GUEST_ASSERT(prepare_for_vmx_operation(vmx));
	GUEST_ASSERT(g.evmcs ? load_evmcs(hv) : load_vmcs(vmx));
	prepare_vmcs(vmx, l2_writer, &stack[L2_GUEST_STACK_SIZE]);
	/* TPR shadow: L2's CR8 lives in the virtual-APIC page, no exit. */
	vmwrite(VIRTUAL_APIC_PAGE_ADDR, g.nested_gpa + PAGE_SIZE);
	vmwrite(TPR_THRESHOLD, 0);
	vmwrite(CPU_BASED_VM_EXEC_CONTROL,
		vmreadz(CPU_BASED_VM_EXEC_CONTROL) | CPU_BASED_TPR_SHADOW);
	GUEST_ASSERT(!vmlaunch());
	for (;;) {
		bool launch = false;

		GUEST_ASSERT_EQ(vmreadz(VM_EXIT_REASON), EXIT_REASON_VMCALL);
		l1_after_exit(&exits);
		vmwrite(GUEST_RIP, vmreadz(GUEST_RIP) + vmreadz(VM_EXIT_INSTRUCTION_LEN));
		/* KVM writes its cached VMCS12 back into L1's page at VMCLEAR. */
		if (!g.evmcs && !(exits % VMCLEAR_EVERY)) {
			GUEST_ASSERT(!vmclear(vmx->vmcs_gpa));
			GUEST_ASSERT(!vmptrld(vmx->vmcs_gpa));
			launch = true;
		}
		GUEST_ASSERT(!(launch ? vmlaunch() : vmresume()));
	}
}

static void l1_svm(struct svm_test_data *svm)
{
	unsigned long stack[L2_GUEST_STACK_SIZE];
	struct vmcb *vmcb = svm->vmcb;
	u64 exits = 0;

	generic_svm_setup(svm, l2_writer, &stack[L2_GUEST_STACK_SIZE]);
	for (;;) {
		run_guest(vmcb, svm->vmcb_gpa);
		GUEST_ASSERT_EQ(vmcb->control.exit_code, SVM_EXIT_VMMCALL);
		l1_after_exit(&exits);
		/* TCG has no NRIPS: VMMCALL is 3 bytes. */
		vmcb->save.rip = vmcb->control.next_rip ? vmcb->control.next_rip :
				 vmcb->save.rip + 3;
	}
}

static void l1_guest_code(void *nested, struct hyperv_test_pages *hv)
{
	/* KVM writes both pages on its own from now on. */
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, g.clock_gpa | KVM_MSR_ENABLED);
	wrmsr(MSR_KVM_STEAL_TIME, g.steal_gpa | KVM_MSR_ENABLED);
	if (g.is_amd)
		l1_svm(nested);
	else
		l1_vmx(nested, hv);
}

/* VMM side */

/* --hash: print each run's image and reference hashes (make demo). */
static bool print_hashes;
/* --no-nested-exclude: leave KVM's nested-state pages protected (to show why not). */
static bool no_nested_exclude;

struct totals {
	unsigned int runs_ok;
	unsigned long bad_pages;
	unsigned long exits_l1, exits_l2, mmio_exits;	/* mprotect */
	struct nk_snap_stats st;			/* summed */
	unsigned long pv_changed;	/* runs in which KVM updated a PV page */
	unsigned long writer_runs;	/* runs without the background copier */
	unsigned long steal_updated;	/* of those, steal time written during */
	unsigned long l2_starts;	/* start instants with the vCPU in L2 */
	unsigned long nested_excluded;	/* nested-state pages excluded, summed */
	unsigned long nested_written[NESTED_PAGES];	/* runs in which KVM/the CPU wrote it */
};

struct vm_ctx {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	uint8_t *mem;		/* the data memslot */
	size_t size;
	bool nested_paging;
};

/* Run to the next tick.  With a snapshot, its exits go to the engine. */
static int run_to_tick(struct vm_ctx *c, struct nk_snap *snap, struct totals *t,
		       char *err, size_t errlen)
{
	struct kvm_run *run = c->vcpu->run;
	struct ucall uc;

	for (;;) {
		int r = __vcpu_run(c->vcpu), e = errno, h = 0;

		if (r < 0 && e == EINTR)
			continue;
		if (snap) {
			h = nk_snap_handle_exit(snap, run, r, e, err, errlen);
			if (h < 0)
				return -1;
		}
		if (h > 0) {
			if (r >= 0)
				t->mmio_exits++;
			else if (run->flags & KVM_RUN_X86_GUEST_MODE)
				t->exits_l2++;
			else
				t->exits_l1++;
			continue;
		}
		if (r < 0) {
			snprintf(err, errlen, "KVM_RUN: %s (exit reason %u, gpa 0x%llx)",
				 strerror(e), run->exit_reason,
				 (unsigned long long)run->memory_fault.gpa);
			return -1;
		}
		if (run->exit_reason != KVM_EXIT_IO) {
			snprintf(err, errlen, "unexpected exit %u", run->exit_reason);
			return -1;
		}
		switch (get_ucall(c->vcpu, &uc)) {
		case UCALL_SYNC:
			return 0;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		default:
			snprintf(err, errlen, "unexpected ucall %lu", uc.cmd);
			return -1;
		}
	}
}

static void vm_setup(struct vm_ctx *c, unsigned int pages, uint64_t seed)
{
	size_t slot_pages = pages + 2 + NESTED_PAGES;	/* + kvmclock, steal time */
	vm_vaddr_t nested_gva, hv_gva = 0;

	memset(c, 0, sizeof(*c));
	c->vm = vm_create_with_one_vcpu(&c->vcpu, l1_guest_code);
	vcpu_set_cpuid_feature(c->vcpu, X86_FEATURE_KVM_CLOCKSOURCE2);
	vcpu_set_cpuid_feature(c->vcpu, X86_FEATURE_KVM_STEAL_TIME);
	vm_userspace_mem_region_add(c->vm, VM_MEM_SRC_ANONYMOUS, DATA_GPA, DATA_SLOT,
				    slot_pages, 0);
	virt_map(c->vm, DATA_GPA, DATA_GPA, slot_pages);
	c->size = slot_pages * PAGE_SIZE;
	c->mem = addr_gpa2hva(c->vm, DATA_GPA);
	g.nested_gpa = DATA_GPA + (pages + 2) * PAGE_SIZE;
	memset(addr_gpa2hva(c->vm, g.nested_gpa), 0, NESTED_PAGES * PAGE_SIZE);

	if (g.is_amd) {
		struct svm_test_data *svm = vcpu_alloc_svm(c->vm, &nested_gva);

		/* VMCB12 in the data slot (identity-mapped for L1). */
		svm->vmcb = (void *)g.nested_gpa;
		svm->vmcb_hva = addr_gpa2hva(c->vm, g.nested_gpa);
		svm->vmcb_gpa = g.nested_gpa;

		c->nested_paging = kvm_cpu_has(X86_FEATURE_NPT);
		if (c->nested_paging) {
			/* L1's page tables map the alias for L2, which shares them. */
			virt_map(c->vm, ALIAS_GPA, ALIAS_GPA, pages);
			prepare_npt(svm, c->vm);
			nested_npt_map_memslot(svm, c->vm, 0);
			nested_npt_map(svm, c->vm, ALIAS_GPA, DATA_GPA, pages * PAGE_SIZE);
		}
	} else {
		struct vmx_pages *vmx;

		c->nested_paging = kvm_cpu_has_ept();
		/* Before prepare_eptp: memslot 0 is mapped as it is then. */
		if (c->nested_paging)
			virt_map(c->vm, ALIAS_GPA, ALIAS_GPA, pages);
		vmx = vcpu_alloc_vmx(c->vm, &nested_gva);
		/* VMCS12 in the data slot; the virtual-APIC page after it. */
		vmx->vmcs = (void *)g.nested_gpa;
		vmx->vmcs_hva = addr_gpa2hva(c->vm, g.nested_gpa);
		vmx->vmcs_gpa = g.nested_gpa;
		if (g.evmcs) {
			struct hyperv_test_pages *hv = vcpu_alloc_hyperv_test_pages(c->vm, &hv_gva);
			u64 vp_assist = g.nested_gpa + 2 * PAGE_SIZE;

			/* The enlightened VMCS instead, and the VP assist page. */
			vcpu_set_hv_cpuid(c->vcpu);
			vcpu_enable_evmcs(c->vcpu);
			hv->enlightened_vmcs = (void *)g.nested_gpa;
			hv->enlightened_vmcs_hva = addr_gpa2hva(c->vm, g.nested_gpa);
			hv->enlightened_vmcs_gpa = g.nested_gpa;
			hv->vp_assist = (void *)vp_assist;
			hv->vp_assist_hva = addr_gpa2hva(c->vm, vp_assist);
			hv->vp_assist_gpa = vp_assist;
		}
		if (c->nested_paging) {
			prepare_eptp(vmx, c->vm, 0);
			nested_map_memslot(vmx, c->vm, 0);
			nested_map(vmx, c->vm, ALIAS_GPA, DATA_GPA, pages * PAGE_SIZE);
		}
	}
	vcpu_args_set(c->vcpu, 2, nested_gva, hv_gva);
	g.l1_base = DATA_GPA;
	g.l2_base = c->nested_paging ? ALIAS_GPA : DATA_GPA;
	g.pages = pages;
	g.clock_gpa = DATA_GPA + pages * PAGE_SIZE;
	g.steal_gpa = g.clock_gpa + PAGE_SIZE;
	g.l1_seed = seed;
	g.l2_seed = seed * 0x9e3779b97f4a7c15ull;
	sync_global_to_guest(c->vm, g);
}

/* One snapshot from a tick; the vCPU is stopped on entry and on return. */
static int one_snapshot(struct vm_ctx *c, enum nk_snap_backend backend,
			int background, unsigned int pause_us, uint8_t *ref, uint8_t *img,
			struct totals *t, char *err, size_t errlen)
{
	struct nk_snap_region region = { .gpa = DATA_GPA, .hva = c->mem, .size = c->size };
	size_t pv_off = g.clock_gpa - DATA_GPA;
	struct nk_snap_stats st;
	struct nk_snap *snap;
	FILE *image = tmpfile();
	int ret = -1;

	if (!image) {
		snprintf(err, errlen, "tmpfile: %s", strerror(errno));
		return -1;
	}
	/* The start instant. */
	memcpy(ref, c->mem, c->size);
	snap = nk_snap_create(backend, &region, 1, fileno(image), err, errlen);
	if (!snap)
		goto out;
	t->l2_starts += !!(c->vcpu->run->flags & KVM_RUN_X86_GUEST_MODE);
	/* KVM and the CPU write these without an exit or a userfault. */
	if (!no_nested_exclude) {
		int n = nk_snap_exclude_nested(snap, c->vcpu->fd, err, errlen);

		if (n < 0)
			goto out;
		t->nested_excluded += n;
	}
	/* KVM writes these without an exit: copy them now, never protect. */
	if (backend == NK_SNAP_MPROTECT &&
	    (nk_snap_exclude(snap, g.clock_gpa, PAGE_SIZE, err, errlen) ||
	     nk_snap_exclude(snap, g.steal_gpa, PAGE_SIZE, err, errlen)))
		goto out;
	if (nk_snap_set_copier_pause(snap, pause_us, err, errlen) ||
	    nk_snap_set_background(snap, background, err, errlen) ||
	    nk_snap_start(snap, err, errlen))
		goto out;
	if (background) {
		for (int after = 0; after < TICKS_AFTER;) {
			if (run_to_tick(c, snap, t, err, errlen))
				goto out;
			after += nk_snap_finished(snap);
		}
	} else {
		/* Only the writers copy; nk_snap_wait() then copies the rest. */
		for (int i = 0; i < WRITER_TICKS; i++)
			if (run_to_tick(c, snap, t, err, errlen))
				goto out;
		/*
		 * KVM updates steal time on every KVM_RUN: it must have
		 * written the page while the snapshot ran (a protected page
		 * would have made it skip the update silently).
		 */
		t->writer_runs++;
		t->steal_updated += !!memcmp(c->mem + pv_off + PAGE_SIZE,
					     ref + pv_off + PAGE_SIZE, PAGE_SIZE);
	}
	if (nk_snap_wait(snap, &st, err, errlen))
		goto out;
	if (pread(fileno(image), img, c->size, 0) != (ssize_t)c->size) {
		snprintf(err, errlen, "reading the image back failed");
		goto out;
	}
	for (size_t p = 0; p < c->size / PAGE_SIZE; p++)
		t->bad_pages += !!memcmp(img + p * PAGE_SIZE, ref + p * PAGE_SIZE, PAGE_SIZE);
	if (print_hashes) {
		uint64_t hi = nk_snap_fnv1a(img, c->size), hr = nk_snap_fnv1a(ref, c->size);

		printf("# snapshot_nested %s run %u: image FNV-1a %016llx, memory at the start %016llx: %s\n",
		       backend == NK_SNAP_MPROTECT ? "mprotect" : "uffd", t->runs_ok,
		       (unsigned long long)hi, (unsigned long long)hr, hi == hr ? "equal" : "DIFFERENT");
	}
	t->pv_changed += !!memcmp(c->mem + pv_off, ref + pv_off, 2 * PAGE_SIZE);
	for (int i = 0; i < NESTED_PAGES; i++) {
		size_t off = g.nested_gpa - DATA_GPA + i * PAGE_SIZE;

		t->nested_written[i] += !!memcmp(c->mem + off, ref + off, PAGE_SIZE);
	}
	t->st.fault_copies += st.fault_copies;
	t->st.background_copies += st.background_copies;
	t->st.excluded += st.excluded;
	if (st.max_stall_ns > t->st.max_stall_ns)
		t->st.max_stall_ns = st.max_stall_ns;
	t->st.total_ns += st.total_ns;
	t->st.pages = st.pages;
	t->runs_ok++;
	ret = 0;
out:
	nk_snap_destroy(snap);
	fclose(image);
	return ret;
}

/* Returns 0 if every run's image equals its reference. */
static int test_backend(enum nk_snap_backend backend, unsigned int runs,
			unsigned int pages, unsigned int pause_us)
{
	const char *name = backend == NK_SNAP_MPROTECT ? "mprotect" : "uffd";
	struct totals t = { 0 };
	struct vm_ctx c;
	char err[256] = "";
	uint8_t *ref, *img;
	int failed = 0;

	vm_setup(&c, pages, 0x2545f4914f6cdd1dull);
	ref = malloc(c.size);
	img = malloc(c.size);
	TEST_ASSERT(ref && img, "malloc failed");
	if (backend == NK_SNAP_MPROTECT)
		vm_enable_cap(c.vm, KVM_CAP_MEMORY_FAULT_PERM, 1);
	for (int i = 0; i < WARMUP_TICKS; i++)
		TEST_ASSERT(!run_to_tick(&c, NULL, &t, err, sizeof(err)), "%s", err);
	/* L1 enabled both: KVM now writes these pages on its own. */
	TEST_ASSERT_EQ(vcpu_get_msr(c.vcpu, MSR_KVM_SYSTEM_TIME_NEW),
		       g.clock_gpa | KVM_MSR_ENABLED);
	TEST_ASSERT_EQ(vcpu_get_msr(c.vcpu, MSR_KVM_STEAL_TIME),
		       g.steal_gpa | KVM_MSR_ENABLED);

	for (unsigned int i = 0; i < runs; i++) {
		/* Alternately with the background copier and without it. */
		if (one_snapshot(&c, backend, !(i % 2), pause_us, ref, img, &t, err, sizeof(err))) {
			printf("# snapshot_nested %s run %u: %s\n", name, i, err);
			failed = 1;
			break;	/* the VM's state is unknown */
		}
	}
	printf("# snapshot_nested %s: %u/%u runs, %lu pages each (%u data, kvmclock, steal time, %s), L2 %s, lost or torn pages %lu, copied on write %lu, background %lu, excluded %lu, memory fault exits L1 %lu L2 %lu, emulator MMIO exits %lu, runs with kvmclock/steal-time updated %lu, steal time written during the snapshot %lu/%lu, mean snapshot %llu us, longest handler %llu us\n",
	       name, t.runs_ok, runs, (unsigned long)(c.size / PAGE_SIZE), pages,
	       g.is_amd ? "VMCB12" : g.evmcs ? "enlightened VMCS, virtual-APIC page, VP assist page" :
	       "VMCS12, virtual-APIC page",
	       c.nested_paging ? (g.is_amd ? "with nested NPT (non-identity)" :
				  "with nested EPT (non-identity)") : "without nested paging",
	       t.bad_pages, (unsigned long)t.st.fault_copies,
	       (unsigned long)t.st.background_copies, (unsigned long)t.st.excluded,
	       t.exits_l1, t.exits_l2, t.mmio_exits, t.pv_changed,
	       t.steal_updated, t.writer_runs,
	       t.runs_ok ? (unsigned long long)(t.st.total_ns / t.runs_ok / 1000) : 0,
	       (unsigned long long)(t.st.max_stall_ns / 1000));
	printf("# snapshot_nested %s: nested state: starts in L2 %lu/%u, pages excluded from KVM_GET_NESTED_STATE %lu%s, written by KVM or the CPU after the start: %s %lu/%u runs%s",
	       name, t.l2_starts, t.runs_ok, t.nested_excluded,
	       no_nested_exclude ? " (--no-nested-exclude)" : "",
	       g.is_amd ? "VMCB12" : g.evmcs ? "enlightened VMCS" : "VMCS12",
	       t.nested_written[0], t.runs_ok,
	       g.is_amd ? "\n" : "");
	if (!g.is_amd)
		printf(", virtual-APIC page (TPR shadow) %lu/%u runs\n", t.nested_written[1],
		       t.runs_ok);
	if (t.bad_pages)
		failed = 1;
	/* Each page class and start in L2 must have happened, or nothing was shown. */
	if (t.runs_ok && (!t.l2_starts || !t.nested_written[0] ||
			  (!g.is_amd && !t.nested_written[1]))) {
		printf("# snapshot_nested %s: a nested-state page class or a start in L2 was not exercised\n",
		       name);
		failed = 1;
	}
	/* A snapshot during which nobody wrote proves nothing. */
	if (t.runs_ok && !t.st.fault_copies) {
		printf("# snapshot_nested %s: no page was copied on write\n", name);
		failed = 1;
	}
	if (t.steal_updated != t.writer_runs) {
		printf("# snapshot_nested %s: KVM's steal-time update was lost in %lu runs\n",
		       name, t.writer_runs - t.steal_updated);
		failed = 1;
	}
	if (backend == NK_SNAP_MPROTECT && t.runs_ok && (!t.exits_l1 || !t.exits_l2)) {
		printf("# snapshot_nested %s: no write fault exit from %s\n", name,
		       t.exits_l1 ? "L2" : "L1");
		failed = 1;
	}
	free(ref);
	free(img);
	kvm_vm_free(c.vm);
	return failed;
}

/* VMX: --vmcs plain|evmcs|both. */
static const char *vmcs_kinds = "both";

/* test_backend() for each kind of VMCS that L1 uses (SVM: once). */
static int test_kinds(enum nk_snap_backend backend, unsigned int runs,
		      unsigned int pages, unsigned int pause_us)
{
	int failed = 0;

	g.evmcs = false;
	if (g.is_amd || strcmp(vmcs_kinds, "evmcs"))
		failed |= test_backend(backend, runs, pages, pause_us);
	if (!g.is_amd && strcmp(vmcs_kinds, "plain")) {
		g.evmcs = true;
		failed |= test_backend(backend, runs, pages, pause_us);
	}
	return failed;
}

static void usage(void)
{
	fprintf(stderr, "usage: %s [--backend mprotect|uffd|both] [--runs N] [--pages N] [--pause US] [--allow-unavailable] [--hash] [--no-nested-exclude] [--vmcs plain|evmcs|both]\n"
		"  lazy snapshots of an L1+L2 guest that write random pages (kvmclock and\n"
		"  steal time on); each image must equal memory at the start instant.\n"
		"  --allow-unavailable: a backend this kernel lacks is reported, not a failure\n"
		"  --hash: print each run's image and start-instant hashes (FNV-1a)\n"
		"  --no-nested-exclude: do not exclude KVM's nested-state pages (shows torn images)\n"
		"  --vmcs: VMX: L1 uses a VMCS, an enlightened VMCS, or each in turn (default)\n",
		PROG);
	exit(2);
}

static unsigned int parse_uint(const char *s, unsigned int min, unsigned int max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v < min || v > max) {
		fprintf(stderr, "%s: bad value '%s' (%u..%u)\n", PROG, s, min, max);
		exit(2);
	}
	return (unsigned int)v;
}

int main(int argc, char *argv[])
{
	unsigned int runs = 20, pages = 128, pause_us = 2000;
	bool allow_unavailable = false;
	const char *which = "both";
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--allow-unavailable"))
			allow_unavailable = true;
		else if (!strcmp(argv[i], "--hash"))
			print_hashes = true;
		else if (!strcmp(argv[i], "--no-nested-exclude"))
			no_nested_exclude = true;
		else if (!strcmp(argv[i], "--vmcs") && i + 1 < argc &&
			 (!strcmp(argv[i + 1], "plain") || !strcmp(argv[i + 1], "evmcs") ||
			  !strcmp(argv[i + 1], "both")))
			vmcs_kinds = argv[++i];
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = parse_uint(argv[++i], 1, 100000);
		else if (!strcmp(argv[i], "--pages") && i + 1 < argc)
			pages = parse_uint(argv[++i], 1, 32768);	/* below ALIAS_GPA */
		else if (!strcmp(argv[i], "--pause") && i + 1 < argc)
			pause_us = parse_uint(argv[++i], 0, 1000000);
		else if (!strcmp(argv[i], "--backend") && i + 1 < argc &&
			 (!strcmp(argv[i + 1], "mprotect") || !strcmp(argv[i + 1], "uffd") ||
			  !strcmp(argv[i + 1], "both")))
			which = argv[++i];
		else
			usage();
	}
	setbuf(stdout, NULL);

	g.is_amd = kvm_cpu_has(X86_FEATURE_SVM);
	if (!g.is_amd && strcmp(vmcs_kinds, "plain") &&
	    !kvm_has_cap(KVM_CAP_HYPERV_ENLIGHTENED_VMCS)) {
		printf("%s: no KVM_CAP_HYPERV_ENLIGHTENED_VMCS for --vmcs %s\n", PROG, vmcs_kinds);
		return 1;
	}
	if (!g.is_amd && !kvm_cpu_has(X86_FEATURE_VMX)) {
		printf("%s: no nested virtualization on this CPU\n", PROG);
		return 1;
	}
	if (!kvm_cpu_has(X86_FEATURE_KVM_CLOCKSOURCE2) ||
	    !kvm_cpu_has(X86_FEATURE_KVM_STEAL_TIME)) {
		printf("%s: KVM offers no kvmclock or no steal time\n", PROG);
		return 1;
	}
	printf("%s: %s, L1 and L2 writers, %u data pages, %u runs per backend%s\n",
	       PROG, g.is_amd ? "SVM" : "VMX", pages, runs,
	       g.is_amd ? "" : !strcmp(vmcs_kinds, "both") ? " and VMCS kind (VMCS, enlightened VMCS)" :
	       !strcmp(vmcs_kinds, "evmcs") ? " (enlightened VMCS)" : " (VMCS)");

	if (strcmp(which, "uffd")) {
		if (kvm_check_cap(KVM_CAP_MEMORY_FAULT_PERM) <= 0) {
			printf("# snapshot_nested mprotect: unavailable (no KVM_CAP_MEMORY_FAULT_PERM in this kernel)\n");
			failed |= !allow_unavailable;
		} else {
			failed |= test_kinds(NK_SNAP_MPROTECT, runs, pages, pause_us);
		}
	}
	if (strcmp(which, "mprotect"))
		failed |= test_kinds(NK_SNAP_UFFD_WP, runs, pages, pause_us);
	printf("%s: %s\n", PROG, failed ? "FAILED" : "all images equal their references");
	return failed;
}
