// SPDX-License-Identifier: GPL-2.0-only
/*
 * nestkit-fuzz-memory-fault (plan test "fuzz_memory_fault"): guest fuzzer of
 * KVM_CAP_MEMORY_FAULT_PERM (api.rst 7.39, KVM_EXIT_MEMORY_FAULT).
 *
 * This program is the L0 VMM.  A data memslot of DATA_PAGES pages is
 * written and read by L1, by L2 with nested paging (VMX: nested EPT, SVM:
 * nested NPT; L2 reaches the data at ALIAS_GPA, a different L2 GPA) and by
 * L2 without nested paging (shadow paging; L2 uses L1's page tables).  Each
 * iteration is a batch of OPS_PER_BATCH random operations for one of these
 * levels, made here and handed to the guest as data:
 *
 *   WRITE  (58%) mov of 1/2/4/8 bytes of a random value to a random
 *          offset of a random page (unaligned, never crossing the page);
 *   READ   (41.6%) mov of 1/2/4/8 bytes, the value returned to the VMM;
 *   INS    (0.25%) rep insb/insw/insl of 1..8 elements from a port that exits
 *          to this VMM, which KVM's instruction emulator writes into the
 *          page (string I/O);
 *   MOVS   (0.125%) rep movsb/w/l/q of 1..3 elements from an MMIO page (no
 *          memslot) into the page: an MMIO instruction that KVM emulates.
 *
 * Between runs (at the batch start and at every exit) the VMM changes the
 * host protection of random data pages with mprotect(): PROT_READ,
 * PROT_READ|PROT_WRITE, and now and then PROT_NONE.
 *
 * Reference model (api.rst 7.39 and KVM_EXIT_MEMORY_FAULT): the VMM keeps
 * a copy of the data memory as its ops should leave it, and the protection
 * of each page, and predicts every exit of every KVM_RUN:
 *  - a write to a page without PROT_WRITE, or a read of a PROT_NONE page,
 *    makes KVM_RUN fail with EFAULT, exit_reason KVM_EXIT_MEMORY_FAULT, gpa
 *    = the L1 GPA of the page (for L2: the L1 GPA that its address resolves
 *    to, with or without nested paging), size 4096, flags exactly
 *    KVM_MEMORY_EXIT_FLAG_WRITE (or _READ), KVM_RUN_X86_GUEST_MODE in
 *    kvm_run.flags iff L2 ran.  The access is not performed: the page is
 *    unchanged.  The VMM then lifts the protection (the access completes)
 *    or re-enters as it is (the same exit follows);
 *  - writes to writable pages and reads of readable pages never exit and
 *    reads return the model's bytes;
 *  - the instruction emulator's writes are not memory fault exits: a write
 *    to a page without PROT_WRITE "completes as KVM_EXIT_MMIO with is_write
 *    set and the RAM address in phys_addr" (the L1 GPA, also for L2), and
 *    the VMM performs it (making the page writable for that, then maybe
 *    protecting it again); to a writable page KVM writes it itself.
 *    INS: one KVM_EXIT_IO (in, the port, the element size, the count),
 *    whose data the VMM supplies; KVM writes the whole string as one
 *    emulated write, so a protected page gives consecutive KVM_EXIT_MMIO
 *    writes of up to 8 bytes (KVM_EXIT_MMIO's data[8]) covering it in order.
 *    MOVS: per element a KVM_EXIT_MMIO read of the source (phys_addr, len),
 *    whose data the VMM supplies, then the write of that element to the
 *    destination as above (after an MMIO write the instruction re-executes
 *    for the next element: a new MMIO read);
 *  - a batch ends with L1's or L2's ucall (KVM_EXIT_IO), from the level it
 *    was given to;
 *  - one batch in 16 runs with the capability disabled (it "may be changed
 *    at any time"): the faults above make KVM_RUN fail with a bare EFAULT
 *    (exit_reason not KVM_EXIT_MEMORY_FAULT), the emulator's writes are
 *    unchanged.
 * At random exits ("snapshot points") and at the end, the VMM copies the
 * data memory and checks that it equals the model byte for byte.
 *
 * The first mismatch ends the run: it prints the iteration, the operation,
 * what the model expected and what KVM did.  Replay a run with
 * --seed S --iterations N; every random choice comes from the seeded
 * generator of fuzz.h.
 *
 * Guest page tables, nested paging tables, L1's VMCS/VMCB, stacks, the op
 * list and the results are in memslot 0, which is never protected (api.rst:
 * pages KVM write-tracks must stay writable).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "vmx.h"
#include "svm_util.h"

#include "nested_demo.h"
#include "fuzz.h"

#ifndef KVM_CAP_MEMORY_FAULT_PERM
#define KVM_CAP_MEMORY_FAULT_PERM	0x4e4b0004	/* nestkit/caps.h */
#endif

#define PROG			"nestkit-fuzz-memory-fault"
#define DEFAULT_SEED		0x4d454d4641554c54ull	/* "MEMFAULT" */
#define DEFAULT_ITERATIONS	125
#define DATA_SLOT		1
#define DATA_GPA		0xd0000000ull
#define ALIAS_GPA		0xe0000000ull
#define DATA_PAGES		128
#define DATA_SIZE		(DATA_PAGES * PAGE_SIZE)
#define OPS_PER_BATCH		1024
#define INS_PORT		0x5a5a
/* No memslot: MMIO, the source of MOVS (same GPA for L2, also with nested paging). */
#define MMIO_GPA		0xc0000000ull
#define MMIO_PAGES		1
#define INS_MAX_BYTES		64
#define L2_STACK_SIZE		512

enum { OP_WRITE, OP_READ, OP_INS, OP_MOVS };
enum { LVL_DONE, LVL_L1, LVL_L2 };

struct op {
	uint8_t kind;
	uint8_t size;		/* bytes of the access or of an INS element */
	uint16_t count;		/* INS elements */
	uint32_t off;		/* byte offset in the data memory */
	uint64_t val;		/* WRITE; MOVS: source offset in the MMIO page */
};

/* Shared with the guest, in memslot 0; written by the VMM between runs. */
static struct ctl {
	uint64_t level;		/* LVL_* of the current batch */
	uint64_t np;		/* L2 with nested paging */
	uint64_t nops;
	uint64_t is_amd;
	struct op ops[OPS_PER_BATCH];
	uint64_t res[OPS_PER_BATCH];	/* READ results */
} ctl;

static unsigned long l2_stack[L2_STACK_SIZE] __aligned(16);

/* Guest side: L1 and L2 run the same op loop. */

static void run_ops(uint64_t base)
{
	for (uint64_t i = 0; i < READ_ONCE(ctl.nops); i++) {
		struct op *op = &ctl.ops[i];
		uint64_t a = base + op->off, c = op->count;

		switch (op->kind) {
		case OP_WRITE:
			if (op->size == 1)
				WRITE_ONCE(*(uint8_t *)a, op->val);
			else if (op->size == 2)
				WRITE_ONCE(*(uint16_t *)a, op->val);
			else if (op->size == 4)
				WRITE_ONCE(*(uint32_t *)a, op->val);
			else
				WRITE_ONCE(*(uint64_t *)a, op->val);
			break;
		case OP_READ:
			if (op->size == 1)
				ctl.res[i] = READ_ONCE(*(uint8_t *)a);
			else if (op->size == 2)
				ctl.res[i] = READ_ONCE(*(uint16_t *)a);
			else if (op->size == 4)
				ctl.res[i] = READ_ONCE(*(uint32_t *)a);
			else
				ctl.res[i] = READ_ONCE(*(uint64_t *)a);
			break;
		case OP_MOVS: {
			uint64_t src = MMIO_GPA + op->val;

			if (op->size == 1)
				asm volatile("rep movsb" : "+S"(src), "+D"(a), "+c"(c) : : "memory");
			else if (op->size == 2)
				asm volatile("rep movsw" : "+S"(src), "+D"(a), "+c"(c) : : "memory");
			else if (op->size == 4)
				asm volatile("rep movsl" : "+S"(src), "+D"(a), "+c"(c) : : "memory");
			else
				asm volatile("rep movsq" : "+S"(src), "+D"(a), "+c"(c) : : "memory");
			break;
		}
		default:
			if (op->size == 1)
				asm volatile("rep insb" : "+D"(a), "+c"(c) : "d"(INS_PORT) : "memory");
			else if (op->size == 2)
				asm volatile("rep insw" : "+D"(a), "+c"(c) : "d"(INS_PORT) : "memory");
			else
				asm volatile("rep insl" : "+D"(a), "+c"(c) : "d"(INS_PORT) : "memory");
			break;
		}
	}
}

static void l2_hypercall(void)
{
	/* L1 restarts L2 at its entry: nothing needs preserving. */
	nested_demo_l2_hypercall(ctl.is_amd);
}

/* L2: batches while they are for L2 in this paging mode; else back to L1. */
static void l2_code(void)
{
	uint64_t np = READ_ONCE(ctl.np);

	for (;;) {
		if (READ_ONCE(ctl.level) != LVL_L2 || READ_ONCE(ctl.np) != np)
			l2_hypercall();
		run_ops(np ? ALIAS_GPA : DATA_GPA);
		GUEST_SYNC(LVL_L2);
	}
}

static void l1_code(void *nested)
{
	uint64_t top = (uint64_t)&l2_stack[L2_STACK_SIZE] - 8;
	struct svm_test_data *svm = nested;
	struct vmx_pages *vmx = nested;
	bool launched = false;

	if (ctl.is_amd) {
		generic_svm_setup(svm, l2_code, (void *)top);
	} else {
		GUEST_ASSERT(prepare_for_vmx_operation(vmx));
		GUEST_ASSERT(load_vmcs(vmx));
		prepare_vmcs(vmx, l2_code, (void *)top);
	}
	GUEST_SYNC(LVL_L1);
	for (;;) {
		uint64_t level = READ_ONCE(ctl.level), np = READ_ONCE(ctl.np);

		if (level == LVL_DONE)
			GUEST_DONE();
		if (level == LVL_L1) {
			run_ops(DATA_GPA);
			GUEST_SYNC(LVL_L1);
			continue;
		}
		if (ctl.is_amd) {
			struct vmcb *vmcb = svm->vmcb;

			if (np)
				vmcb->control.nested_ctl |= SVM_NESTED_CTL_NP_ENABLE;
			else
				vmcb->control.nested_ctl &= ~SVM_NESTED_CTL_NP_ENABLE;
			vmcb->save.rip = (uint64_t)l2_code;
			vmcb->save.rsp = top;
			run_guest(vmcb, svm->vmcb_gpa);
			GUEST_ASSERT_EQ(vmcb->control.exit_code, SVM_EXIT_VMMCALL);
		} else {
			uint64_t sec = vmreadz(SECONDARY_VM_EXEC_CONTROL);

			if (np)
				sec |= SECONDARY_EXEC_ENABLE_EPT;
			else
				sec &= ~SECONDARY_EXEC_ENABLE_EPT;
			GUEST_ASSERT(!vmwrite(SECONDARY_VM_EXEC_CONTROL, sec));
			GUEST_ASSERT(!vmwrite(GUEST_RIP, (uint64_t)l2_code));
			GUEST_ASSERT(!vmwrite(GUEST_RSP, top));
			GUEST_ASSERT(!(launched ? vmresume() : vmlaunch()));
			launched = true;
			GUEST_ASSERT_EQ(vmreadz(VM_EXIT_REASON), EXIT_REASON_VMCALL);
		}
	}
}

/* VMM side */

enum {
	C_BATCH_L1, C_BATCH_L2NP, C_BATCH_L2SH,
	C_WRITE, C_READ, C_INS,
	C_WFAULT_L1, C_WFAULT_L2NP, C_WFAULT_L2SH, C_RFAULT,
	C_REFAULT, C_UNPROTECT,
	C_IO_EXIT, C_MMIO_EXIT, C_INS_IN_KERNEL,
	C_MOVS, C_MOVS_READ, C_MOVS_WRITE, C_MOVS_IN_KERNEL,
	C_PROT_CHANGES, C_SNAPSHOTS, C_CAP_OFF_BATCHES, C_BARE_EFAULT,
	C_NR
};

static struct fuzz_counter counters[C_NR] = {
	[C_BATCH_L1] = { "batches in L1" },
	[C_BATCH_L2NP] = { "batches in L2, nested paging" },
	[C_BATCH_L2SH] = { "batches in L2, shadow paging" },
	[C_WRITE] = { "writes done" },
	[C_READ] = { "reads done (value checked)" },
	[C_INS] = { "rep ins done" },
	[C_WFAULT_L1] = { "write fault exits, L1" },
	[C_WFAULT_L2NP] = { "write fault exits, L2 nested paging" },
	[C_WFAULT_L2SH] = { "write fault exits, L2 shadow paging" },
	[C_RFAULT] = { "read fault exits (PROT_NONE)" },
	[C_REFAULT] = { "same exit again (kept protected)" },
	[C_UNPROTECT] = { "unprotected at a fault exit" },
	[C_IO_EXIT] = { "rep ins KVM_EXIT_IO" },
	[C_MMIO_EXIT] = { "rep ins emulator write KVM_EXIT_MMIO" },
	[C_INS_IN_KERNEL] = { "rep ins written by KVM (writable)" },
	[C_MOVS] = { "rep movs from MMIO done" },
	[C_MOVS_READ] = { "rep movs MMIO read exits" },
	[C_MOVS_WRITE] = { "rep movs emulator write KVM_EXIT_MMIO" },
	[C_MOVS_IN_KERNEL] = { "rep movs elements written by KVM" },
	[C_PROT_CHANGES] = { "mprotect changes" },
	[C_SNAPSHOTS] = { "snapshots equal to the model" },
	[C_CAP_OFF_BATCHES] = { "batches with the capability off" },
	[C_BARE_EFAULT] = { "bare EFAULT exits (capability off)" },
};

enum { EV_SYNC, EV_FAULT, EV_IO, EV_MMIO, EV_EFAULT, EV_MMIO_READ };
static const char *const ev_name[] = { "ucall SYNC", "KVM_EXIT_MEMORY_FAULT",
				       "KVM_EXIT_IO (rep ins)", "KVM_EXIT_MMIO",
				       "bare EFAULT (no KVM_EXIT_MEMORY_FAULT)",
				       "KVM_EXIT_MMIO read" };

struct event {
	int ev;
	uint64_t gpa;		/* FAULT: page; MMIO: phys_addr */
	uint64_t flags;		/* FAULT */
	uint64_t size;		/* FAULT: size; MMIO: len; IO: size */
	uint32_t count;		/* IO */
	uint64_t data;		/* MMIO */
	uint64_t sync;		/* SYNC: level */
	bool l2;		/* KVM_RUN_X86_GUEST_MODE */
};

static struct fuzz_rng rng;
static struct fuzz_opts opts;
static struct kvm_vcpu *vcpu;
static struct kvm_vm *vm;
static struct ctl *hctl;		/* ctl in the guest */
static uint8_t *mem;			/* the data memslot */
/* Allocated: the program's static data is loaded into the guest too. */
static uint8_t *model, *snap;
static int prot[DATA_PAGES];
static uint64_t expected_res[OPS_PER_BATCH];
static uint64_t iteration, guest_ops;
static bool have_np;

/* The batch being run. */
static uint64_t level, np;
static bool cap_on;			/* KVM_CAP_MEMORY_FAULT_PERM enabled */
static unsigned int cur;		/* ops before it are done */
static unsigned int ins_done;		/* bytes of ops[cur] written by MMIO exits (INS) */
static bool ins_data;			/* KVM has the data of the last IO exit */
static uint8_t ins_buf[INS_MAX_BYTES];	/* that data */
static unsigned int movs_i;		/* MOVS: elements done */
static bool movs_have;			/* MOVS: KVM has element movs_i's source */
static uint64_t movs_val;		/* that source */

static const char *prot_name(int p)
{
	return p == PROT_NONE ? "PROT_NONE" : p == PROT_READ ? "PROT_READ" : "PROT_READ|PROT_WRITE";
}

static void set_prot(unsigned int page, int p)
{
	TEST_ASSERT(!mprotect(mem + page * PAGE_SIZE, PAGE_SIZE, p), "mprotect: %s",
		    strerror(errno));
	if (p != prot[page])
		counters[C_PROT_CHANGES].n++;
	prot[page] = p;
}

static void print_op(unsigned int i)
{
	struct op *op = &hctl->ops[i];
	unsigned int page = op->off / PAGE_SIZE;

	printf("%s:   op %u of %" PRIu64 ": %s size %u count %u offset 0x%x (page %u, L1 GPA 0x%llx, %s, prot %s) value 0x%" PRIx64 "\n",
	       PROG, i, hctl->nops,
	       op->kind == OP_WRITE ? "WRITE" : op->kind == OP_READ ? "READ" : "INS",
	       op->size, op->count, op->off, page, DATA_GPA + op->off,
	       level == LVL_L1 ? "L1" : np ? "L2 nested paging" : "L2 shadow paging",
	       prot_name(prot[page]), op->val);
}

static void finish(uint64_t mismatches)
{
	fuzz_print_counters(PROG, counters, C_NR);
	fuzz_summary(PROG, &opts, guest_ops, mismatches);
	exit(mismatches ? 1 : 0);
}

static void __attribute__((format(printf, 1, 2))) mismatch(const char *fmt, ...)
{
	va_list ap;

	printf("%s: MISMATCH at iteration %" PRIu64 " (level %s): ", PROG, iteration,
	       level == LVL_L1 ? "L1" : np ? "L2 nested paging" : "L2 shadow paging");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (hctl->nops && cur < hctl->nops)
		print_op(cur);
	finish(1);
}

static void print_event(const char *what, const struct event *e)
{
	if (e->ev < 0)
		return;
	printf("%s:   %s: %s", PROG, what, ev_name[e->ev]);
	switch (e->ev) {
	case EV_SYNC:
		printf(" level %" PRIu64, e->sync);
		break;
	case EV_FAULT:
		printf(" gpa 0x%" PRIx64 " size %" PRIu64 " flags 0x%" PRIx64, e->gpa, e->size, e->flags);
		break;
	case EV_EFAULT:
		break;
	case EV_MMIO_READ:
		printf(" phys_addr 0x%" PRIx64 " len %" PRIu64, e->gpa, e->size);
		break;
	case EV_IO:
		printf(" in, size %" PRIu64 " count %u", e->size, e->count);
		break;
	case EV_MMIO:
		printf(" write phys_addr 0x%" PRIx64 " len %" PRIu64 " data 0x%" PRIx64,
		       e->gpa, e->size, e->data);
		break;
	}
	printf(", guest mode %d\n", e->l2);
}

static uint64_t load_le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	memcpy(&v, p, n);
	return v;
}

/*
 * Apply the ops that complete without an exit and return the exit that
 * ends the next KVM_RUN.
 */
static struct event predict(void)
{
	struct event e = { .l2 = level == LVL_L2 };

	for (; cur < hctl->nops; cur++) {
		struct op *op = &hctl->ops[cur];
		unsigned int page = op->off / PAGE_SIZE;
		int p = prot[page];

		switch (op->kind) {
		case OP_WRITE:
			if (!(p & PROT_WRITE)) {
				e.ev = cap_on ? EV_FAULT : EV_EFAULT;
				e.gpa = DATA_GPA + page * PAGE_SIZE;
				e.size = PAGE_SIZE;
				e.flags = KVM_MEMORY_EXIT_FLAG_WRITE;
				return e;
			}
			memcpy(model + op->off, &op->val, op->size);
			counters[C_WRITE].n++;
			break;
		case OP_READ:
			if (!(p & PROT_READ)) {
				e.ev = cap_on ? EV_FAULT : EV_EFAULT;
				e.gpa = DATA_GPA + page * PAGE_SIZE;
				e.size = PAGE_SIZE;
				e.flags = KVM_MEMORY_EXIT_FLAG_READ;
				return e;
			}
			expected_res[cur] = load_le(model + op->off, op->size);
			counters[C_READ].n++;
			break;
		case OP_MOVS:
			while (movs_i < op->count) {
				uint64_t dst = op->off + movs_i * op->size;

				if (!movs_have) {
					e.ev = EV_MMIO_READ;
					e.gpa = MMIO_GPA + op->val + movs_i * op->size;
					e.size = op->size;
					return e;
				}
				if (!(p & PROT_WRITE)) {
					e.ev = EV_MMIO;
					e.gpa = DATA_GPA + dst;
					e.size = op->size;
					e.data = movs_val;
					return e;
				}
				memcpy(model + dst, &movs_val, op->size);
				counters[C_MOVS_IN_KERNEL].n++;
				movs_have = false;
				movs_i++;
			}
			movs_i = 0;
			counters[C_MOVS].n++;
			break;
		default:
			if (!ins_data) {
				e.ev = EV_IO;
				e.size = op->size;
				e.count = op->count;
				return e;
			}
			if (ins_done || !(p & PROT_WRITE)) {
				/* The emulator's write goes out as MMIO, 8 bytes at a time. */
				unsigned int left = op->count * op->size - ins_done;

				e.ev = EV_MMIO;
				e.gpa = DATA_GPA + op->off + ins_done;
				e.size = left < 8 ? left : 8;
				e.data = load_le(ins_buf + ins_done, e.size);
				return e;
			}
			/* KVM writes it all itself. */
			memcpy(model + op->off, ins_buf, op->count * op->size);
			counters[C_INS_IN_KERNEL].n++;
			counters[C_INS].n++;
			ins_data = false;
			break;
		}
		guest_ops++;
	}
	e.ev = EV_SYNC;
	e.sync = level;
	return e;
}

/* Copy the data memory (readable for the copy) and compare with the model. */
static void snapshot(const char *where)
{
	for (int i = 0; i < DATA_PAGES; i++)
		if (prot[i] == PROT_NONE)
			TEST_ASSERT(!mprotect(mem + i * PAGE_SIZE, PAGE_SIZE, PROT_READ), "mprotect");
	memcpy(snap, mem, DATA_SIZE);
	for (int i = 0; i < DATA_PAGES; i++)
		if (prot[i] == PROT_NONE)
			TEST_ASSERT(!mprotect(mem + i * PAGE_SIZE, PAGE_SIZE, PROT_NONE), "mprotect");
	if (memcmp(snap, model, DATA_SIZE)) {
		size_t o = 0;

		while (snap[o] == model[o])
			o++;
		mismatch("snapshot %s: memory differs from the model at offset 0x%zx (L1 GPA 0x%llx, page %zu, %s): memory 0x%02x, model 0x%02x",
			 where, o, DATA_GPA + o, (size_t)(o / PAGE_SIZE), prot_name(prot[o / PAGE_SIZE]),
			 snap[o], model[o]);
	}
	counters[C_SNAPSHOTS].n++;
}

static void random_prot_changes(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		unsigned int page = fuzz_below(&rng, DATA_PAGES);
		unsigned int r = fuzz_below(&rng, 20);

		set_prot(page, r < 2 ? PROT_NONE : r < 11 ? PROT_READ : PROT_READ | PROT_WRITE);
	}
}

static void print_event(const char *what, const struct event *e);

/* Run once; what KVM_RUN ended with, as an event (@e: what the model expects). */
static struct event run_once(const struct event *e)
{
	struct kvm_run *run = vcpu->run;
	struct event a = { 0 };
	struct ucall uc;
	int r;

	do {
		run->exit_reason = KVM_EXIT_UNKNOWN;
		r = __vcpu_run(vcpu);
	} while (r == -1 && errno == EINTR);
	a.l2 = !!(run->flags & KVM_RUN_X86_GUEST_MODE);
	if (e && (r < 0 ? errno != EFAULT :
		  run->exit_reason != KVM_EXIT_IO && run->exit_reason != KVM_EXIT_MMIO))
		print_event("expected", e);
	if (r == -1) {
		if (errno != EFAULT)
			mismatch("KVM_RUN returned -1 errno %d (%s), exit reason %u",
				 errno, strerror(errno), run->exit_reason);
		if (run->exit_reason != KVM_EXIT_MEMORY_FAULT) {
			a.ev = EV_EFAULT;
			return a;
		}
		a.ev = EV_FAULT;
		a.gpa = run->memory_fault.gpa;
		a.size = run->memory_fault.size;
		a.flags = run->memory_fault.flags;
		return a;
	}
	if (r)
		mismatch("KVM_RUN returned %d", r);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		if (run->io.port == INS_PORT) {
			if (run->io.direction != KVM_EXIT_IO_IN)
				mismatch("KVM_EXIT_IO out to the INS port");
			a.ev = EV_IO;
			a.size = run->io.size;
			a.count = run->io.count;
			return a;
		}
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			a.ev = EV_SYNC;
			a.sync = uc.args[1];
			return a;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		default:
			mismatch("unexpected ucall %" PRIu64 " (port 0x%x)", uc.cmd, run->io.port);
		}
		break;
	case KVM_EXIT_MMIO:
		if (run->mmio.len > 8)
			mismatch("KVM_EXIT_MMIO phys_addr 0x%llx len %u is_write %u",
				 run->mmio.phys_addr, run->mmio.len, run->mmio.is_write);
		if (!run->mmio.is_write) {
			a.ev = EV_MMIO_READ;
			a.gpa = run->mmio.phys_addr;
			a.size = run->mmio.len;
			return a;
		}
		a.ev = EV_MMIO;
		a.gpa = run->mmio.phys_addr;
		a.size = run->mmio.len;
		a.data = load_le(run->mmio.data, run->mmio.len);
		return a;
	default:
		mismatch("unexpected exit reason %u", run->exit_reason);
	}
	return a;
}

static bool same_event(const struct event *e, const struct event *a)
{
	if (e->ev != a->ev || e->l2 != a->l2)
		return false;
	switch (e->ev) {
	case EV_SYNC:
		return e->sync == a->sync;
	case EV_FAULT:
		return e->gpa == a->gpa && e->size == a->size && e->flags == a->flags;
	case EV_EFAULT:
		return true;
	case EV_MMIO_READ:
		return e->gpa == a->gpa && e->size == a->size;
	case EV_IO:
		return e->size == a->size && e->count == a->count;
	default:
		return e->gpa == a->gpa && e->size == a->size && e->data == a->data;
	}
}

/* The VMM's answer to an exit that matched the model. */
static void handle(const struct event *e, const struct event *prev_fault, bool *kept)
{
	struct op *op = &hctl->ops[cur];
	unsigned int page = (e->gpa - DATA_GPA) / PAGE_SIZE;
	unsigned int page_of_op = op->off / PAGE_SIZE;
	struct kvm_run *run = vcpu->run;

	*kept = false;
	switch (e->ev) {
	case EV_EFAULT:
		/* Without the capability only the errno: the model knows the page. */
		counters[C_BARE_EFAULT].n++;
		/* fall through */
	case EV_FAULT:
		/* Not performed: the page still equals the model. */
		if (prot[page] == PROT_NONE)
			TEST_ASSERT(!mprotect(mem + page * PAGE_SIZE, PAGE_SIZE, PROT_READ), "mprotect");
		if (memcmp(mem + page * PAGE_SIZE, model + page * PAGE_SIZE, PAGE_SIZE))
			mismatch("the faulting page changed at the fault exit");
		if (prot[page] == PROT_NONE)
			TEST_ASSERT(!mprotect(mem + page * PAGE_SIZE, PAGE_SIZE, PROT_NONE), "mprotect");
		if (e->ev == EV_EFAULT)
			;
		else if (e->flags == KVM_MEMORY_EXIT_FLAG_READ)
			counters[C_RFAULT].n++;
		else if (level == LVL_L1)
			counters[C_WFAULT_L1].n++;
		else
			counters[np ? C_WFAULT_L2NP : C_WFAULT_L2SH].n++;
		if (prev_fault && same_event(e, prev_fault))
			counters[C_REFAULT].n++;
		if (fuzz_chance(&rng, 3, 4)) {
			/* Lift the protection (a read fault: sometimes to read-only). */
			set_prot(page, e->flags == KVM_MEMORY_EXIT_FLAG_READ && fuzz_chance(&rng, 1, 3) ?
				 PROT_READ : PROT_READ | PROT_WRITE);
			counters[C_UNPROTECT].n++;
		} else {
			*kept = true;
		}
		break;
	case EV_IO:
		for (unsigned int i = 0; i < e->count * e->size; i++)
			ins_buf[i] = fuzz_u64(&rng);
		memcpy((uint8_t *)run + run->io.data_offset, ins_buf, e->count * e->size);
		ins_data = true;
		counters[C_IO_EXIT].n++;
		/* Often protect the target now: the emulator's write then exits. */
		if (fuzz_chance(&rng, 1, 2))
			set_prot(page_of_op, fuzz_chance(&rng, 1, 4) ? PROT_NONE : PROT_READ);
		break;
	case EV_MMIO_READ:
		movs_val = fuzz_u64(&rng) & (op->size == 8 ? ~0ull : (1ull << (op->size * 8)) - 1);
		memcpy(run->mmio.data, &movs_val, op->size);
		movs_have = true;
		counters[C_MOVS_READ].n++;
		/* Often protect the destination now: the emulator's write then exits. */
		if (fuzz_chance(&rng, 1, 3))
			set_prot(page_of_op, fuzz_chance(&rng, 1, 4) ? PROT_NONE : PROT_READ);
		break;
	case EV_MMIO: {
		int old = prot[page];

		if (op->kind == OP_MOVS) {
			/* Userspace performs the emulator's write; the rest re-executes. */
			set_prot(page, PROT_READ | PROT_WRITE);
			memcpy(mem + (e->gpa - DATA_GPA), &movs_val, e->size);
			memcpy(model + (e->gpa - DATA_GPA), &movs_val, e->size);
			if (fuzz_chance(&rng, 1, 2))
				set_prot(page, old);
			counters[C_MOVS_WRITE].n++;
			movs_have = false;
			if (++movs_i == op->count) {
				movs_i = 0;
				counters[C_MOVS].n++;
				guest_ops++;
				cur++;
			}
			break;
		}

		/* Userspace performs the emulator's write. */
		set_prot(page, PROT_READ | PROT_WRITE);
		memcpy(mem + (e->gpa - DATA_GPA), ins_buf + ins_done, e->size);
		memcpy(model + (e->gpa - DATA_GPA), ins_buf + ins_done, e->size);
		if (fuzz_chance(&rng, 1, 2))
			set_prot(page, old);
		counters[C_MMIO_EXIT].n++;
		ins_done += e->size;
		if (ins_done == op->count * op->size) {
			ins_done = 0;
			ins_data = false;
			counters[C_INS].n++;
			guest_ops++;
			cur++;
		}
		break;
	}
	default:
		break;
	}
}

static void gen_batch(void)
{
	unsigned int r = fuzz_below(&rng, have_np ? 3 : 2);
	bool on;

	level = r == 0 ? LVL_L1 : LVL_L2;
	/* Now and then a batch without the capability (api.rst: any time). */
	on = !fuzz_chance(&rng, 1, 16);
	if (on != cap_on)
		vm_enable_cap(vm, KVM_CAP_MEMORY_FAULT_PERM, on);
	cap_on = on;
	counters[C_CAP_OFF_BATCHES].n += !cap_on;
	np = have_np && r == 2;
	counters[level == LVL_L1 ? C_BATCH_L1 : np ? C_BATCH_L2NP : C_BATCH_L2SH].n++;
	for (unsigned int i = 0; i < OPS_PER_BATCH; i++) {
		struct op *op = &hctl->ops[i];
		unsigned int k = fuzz_below(&rng, 800);
		static const uint8_t sizes[] = { 1, 2, 4, 8 }, ins_sizes[] = { 1, 2, 4 };
		unsigned int page = fuzz_below(&rng, DATA_PAGES);

		memset(op, 0, sizeof(*op));
		if (k < 1) {	/* MOVS 1/800, INS 2/800, WRITE 58%, READ the rest */
			op->kind = OP_MOVS;
			op->size = fuzz_pick(&rng, sizes);
			op->count = 1 + fuzz_below(&rng, 3);
			op->off = page * PAGE_SIZE +
				  fuzz_below(&rng, PAGE_SIZE - op->size * op->count + 1);
			op->val = fuzz_below(&rng, PAGE_SIZE - op->size * op->count + 1);
		} else if (k < 3) {
			op->kind = OP_INS;
			op->size = fuzz_pick(&rng, ins_sizes);
			op->count = 1 + fuzz_below(&rng, 8);
			op->off = page * PAGE_SIZE +
				  fuzz_below(&rng, PAGE_SIZE - op->size * op->count + 1);
		} else {
			op->kind = k < 467 ? OP_WRITE : OP_READ;
			op->size = fuzz_pick(&rng, sizes);
			op->off = page * PAGE_SIZE + fuzz_below(&rng, PAGE_SIZE - op->size + 1);
			if (op->kind == OP_WRITE)
				op->val = fuzz_u64(&rng) & (op->size == 8 ? ~0ull : (1ull << (op->size * 8)) - 1);
		}
	}
	hctl->nops = OPS_PER_BATCH;
	hctl->np = np;
	hctl->level = level;
	cur = 0;
	ins_done = 0;
	ins_data = false;
	movs_i = 0;
	movs_have = false;
}

static void run_batch(void)
{
	struct event prev = { .ev = -1 };
	bool kept = false;

	for (;;) {
		struct event e = predict(), a = run_once(&e);

		if (!same_event(&e, &a)) {
			printf("%s: MISMATCH at iteration %" PRIu64 ":\n", PROG, iteration);
			print_event("expected", &e);
			print_event("actual  ", &a);
			mismatch("KVM's exit differs from the model");
		}
		if (e.ev == EV_SYNC)
			break;
		handle(&e, kept ? &prev : NULL, &kept);
		prev = e;
		if (fuzz_chance(&rng, 1, 16))
			snapshot("at an exit");
		if (fuzz_chance(&rng, 1, 8))
			random_prot_changes(1);
	}
	for (unsigned int i = 0; i < hctl->nops; i++) {
		if (hctl->ops[i].kind == OP_READ && hctl->res[i] != expected_res[i]) {
			cur = i;
			mismatch("read returned 0x%" PRIx64 ", model 0x%" PRIx64, hctl->res[i],
				 expected_res[i]);
		}
	}
	if (fuzz_chance(&rng, 1, 2))
		snapshot("at a batch end");
}

static void vm_setup(bool is_amd)
{
	vm_vaddr_t nested_gva;

	vm = vm_create_with_one_vcpu(&vcpu, l1_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, DATA_GPA, DATA_SLOT, DATA_PAGES, 0);
	virt_map(vm, DATA_GPA, DATA_GPA, DATA_PAGES);
	virt_map(vm, MMIO_GPA, MMIO_GPA, MMIO_PAGES);
	mem = addr_gpa2hva(vm, DATA_GPA);
	if (is_amd) {
		struct svm_test_data *svm = vcpu_alloc_svm(vm, &nested_gva);

		have_np = kvm_cpu_has(X86_FEATURE_NPT);
		if (have_np) {
			virt_map(vm, ALIAS_GPA, ALIAS_GPA, DATA_PAGES);
			prepare_npt(svm, vm);
			nested_npt_map_memslot(svm, vm, 0);
			nested_npt_map(svm, vm, ALIAS_GPA, DATA_GPA, DATA_SIZE);
			nested_npt_map(svm, vm, MMIO_GPA, MMIO_GPA, MMIO_PAGES * PAGE_SIZE);
		}
	} else {
		struct vmx_pages *vmx;

		have_np = kvm_cpu_has_ept();
		/* Before prepare_eptp: memslot 0 is mapped as it is then. */
		if (have_np)
			virt_map(vm, ALIAS_GPA, ALIAS_GPA, DATA_PAGES);
		vmx = vcpu_alloc_vmx(vm, &nested_gva);
		if (have_np) {
			prepare_eptp(vmx, vm, 0);
			nested_map_memslot(vmx, vm, 0);
			nested_map(vmx, vm, ALIAS_GPA, DATA_GPA, DATA_SIZE);
			nested_map(vmx, vm, MMIO_GPA, MMIO_GPA, MMIO_PAGES * PAGE_SIZE);
		}
	}
	vcpu_args_set(vcpu, 1, nested_gva);
	hctl = addr_gva2hva(vm, (vm_vaddr_t)&ctl);
	hctl->is_amd = is_amd;
	vm_enable_cap(vm, KVM_CAP_MEMORY_FAULT_PERM, 1);
	cap_on = true;
}

int main(int argc, char *argv[])
{
	bool is_amd = kvm_cpu_has(X86_FEATURE_SVM);
	struct timespec t0, t1;
	struct event a;
	double secs;

	opts = fuzz_parse(argc, argv, PROG, DEFAULT_SEED, DEFAULT_ITERATIONS);
	setbuf(stdout, NULL);
	if (!is_amd && !kvm_cpu_has(X86_FEATURE_VMX)) {
		printf("%s: no nested virtualization on this CPU\n", PROG);
		return 1;
	}
	if (kvm_check_cap(KVM_CAP_MEMORY_FAULT_PERM) != 1 || !kvm_has_cap(KVM_CAP_X86_GUEST_MODE)) {
		printf("%s: no KVM_CAP_MEMORY_FAULT_PERM or KVM_CAP_X86_GUEST_MODE\n", PROG);
		return 1;
	}
	fuzz_rng_seed(&rng, opts.seed);
	model = malloc(DATA_SIZE);
	snap = malloc(DATA_SIZE);
	TEST_ASSERT(model && snap, "malloc");
	vm_setup(is_amd);
	printf("%s: %s, %u data pages, %u ops per iteration, L1, L2 %s\n", PROG,
	       is_amd ? "SVM" : "VMX", DATA_PAGES, OPS_PER_BATCH,
	       have_np ? (is_amd ? "with nested NPT and without (shadow)" :
			  "with nested EPT and without (shadow)") : "without nested paging only");

	/* Random initial contents, all pages writable. */
	for (size_t i = 0; i < DATA_SIZE; i += 8) {
		uint64_t v = fuzz_u64(&rng);

		memcpy(model + i, &v, 8);
	}
	memcpy(mem, model, DATA_SIZE);
	for (int i = 0; i < DATA_PAGES; i++)
		prot[i] = PROT_READ | PROT_WRITE;

	a = run_once(NULL);
	TEST_ASSERT(a.ev == EV_SYNC && a.sync == LVL_L1 && !a.l2, "L1 did not start");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (iteration = 0; iteration < opts.iterations; iteration++) {
		random_prot_changes(fuzz_below(&rng, 8));
		gen_batch();
		run_batch();
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

	/* The end: everything readable, equal to the model; L1 finishes. */
	snapshot("at the end");
	for (int i = 0; i < DATA_PAGES; i++)
		set_prot(i, PROT_READ | PROT_WRITE);
	hctl->nops = 0;
	hctl->level = LVL_DONE;
	TEST_ASSERT(!__vcpu_run(vcpu), "KVM_RUN at the end: errno %d", errno);
	nested_demo_expect_done(vcpu);
	printf("%s: %" PRIu64 " guest ops in %.2f s (CLOCK_MONOTONIC of this kernel): %.0f ops/s\n",
	       PROG, guest_ops, secs,
	       secs > 0 ? guest_ops / secs : 0.0);
	kvm_vm_free(vm);
	finish(0);
	return 0;
}
