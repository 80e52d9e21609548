// SPDX-License-Identifier: GPL-2.0
/*
 * nestkit-demo: the demo VMM. Each subcommand shows one nestkit feature from
 * the point of view of a userspace VMM; "probe" reports which nestkit
 * capabilities the running kernel offers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <cpuid.h>
#include <linux/kvm.h>

#include "nestkit/apic.h"
#include "nestkit/nestkit.h"
#include "nestkit/vm.h"
#include "snapshot_test.h"

/* Guest code blob, guest/remote_read.S. */
extern const unsigned char nk_rr_guest_start[], nk_rr_guest_end[];

#define GUEST_MEM_SIZE	0x10000
#define GUEST_CODE_GPA	0x1000
#define MAX_VCPUS	16

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nestkit-demo probe [--kvm PATH]\n"
		"       nestkit-demo remote-read [--kvm PATH] [--vcpus N]\n"
		"       nestkit-demo snapshot-test [--backend mprotect|uffd|both] [--runs N] [--pages N] [--hash]\n"
		"       nestkit-demo snapshot-bench [--pages N]...\n"
		"  probe        report which nestkit capabilities this kernel's KVM offers\n"
		"  remote-read  legacy BIOS AP discovery: the BSP Remote Reads each AP's\n"
		"               APIC ID through the in-kernel local APIC (N = 2..16, default 4)\n"
		"  snapshot-test  lazy snapshots of a guest that writes memory, with each backend;\n"
		"               the image must equal memory at the start (also run as \"snapshot_test\")\n"
		"  snapshot-bench  cost per write fault of each backend, snapshot time and\n"
		"               longest handler time, against a stop-the-world copy\n");
}

static const char *cpu_vendor(char buf[13])
{
	unsigned int eax, ebx, ecx, edx;

	__cpuid(0, eax, ebx, ecx, edx);
	(void)eax;
	memcpy(buf, &ebx, 4);
	memcpy(buf + 4, &edx, 4);
	memcpy(buf + 8, &ecx, 4);
	buf[12] = '\0';
	return buf;
}

static int probe(const char *path)
{
	char err[256], vendor[13];
	struct nk_kvm kvm;
	int r, missing;

	r = nk_kvm_open(&kvm, path, err, sizeof(err));
	if (r) {
		fprintf(stderr, "nestkit-demo: %s\n", err);
		return 1;
	}
	printf("nestkit-demo: capability probe on %s (%s)\n", path, cpu_vendor(vendor));
	missing = nk_probe_print(stdout, &kvm, "  ");
	printf("nestkit-demo: %d of %d nestkit capabilities absent\n", missing,
	       NK_NR_NESTKIT_CAPS);
	nk_kvm_close(&kvm);
	return 0;
}

/*
 * Run the BSP until the guest reports done; APs are created but never run,
 * like APs waiting for their SIPI while the BIOS enumerates them.
 */
static int run_remote_read(struct nk_vcpu *bsp, int nr_vcpus)
{
	uint32_t ap = 0, icr = 0, found = 0;
	char desc[96];
	uint8_t id;

	for (;;) {
		struct kvm_run *run = bsp->run;
		uint32_t val;

		if (ioctl(bsp->fd, KVM_RUN, 0)) {
			fprintf(stderr, "nestkit-demo: KVM_RUN: %s\n", strerror(errno));
			return 1;
		}
		if (run->exit_reason == KVM_EXIT_MMIO) {
			/* Not the in-kernel APIC's: reads see zeros. */
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0, sizeof(run->mmio.data));
			continue;
		}
		if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT ||
		    run->io.size != 4) {
			fprintf(stderr, "nestkit-demo: unexpected exit %u from the guest\n",
				run->exit_reason);
			return 1;
		}
		memcpy(&val, (char *)run + run->io.data_offset, 4);
		switch (run->io.port) {
		case 0x500:
			ap = val;
			break;
		case 0x504:
			icr = val;
			break;
		case 0x508:
			if (nk_remote_read_apic_id(icr, val, &id, desc, sizeof(desc)) && id == ap)
				found++;
			printf("  AP %u: %s\n", ap, desc);
			break;
		case 0x50c:
			printf("nestkit-demo: found %u of %d APs by Remote Read%s\n", found,
			       nr_vcpus - 1, found ? "" : ": this KVM does not answer Remote Reads");
			return found == (uint32_t)nr_vcpus - 1 ? 0 : 3;
		default:
			fprintf(stderr, "nestkit-demo: guest wrote to unknown port 0x%x\n",
				run->io.port);
			return 1;
		}
	}
}

static int remote_read(const char *path, int nr_vcpus)
{
	struct nk_vcpu vcpus[MAX_VCPUS];
	int i, r = 1, created = 0;
	struct nk_kvm kvm;
	char err[256];
	void *mem;

	if (nk_kvm_open(&kvm, path, err, sizeof(err))) {
		fprintf(stderr, "nestkit-demo: %s\n", err);
		return 1;
	}
	printf("nestkit-demo: legacy BIOS AP discovery by Remote Read, %d vCPUs, in-kernel APIC\n",
	       nr_vcpus);
	if (ioctl(kvm.vm_fd, KVM_CREATE_IRQCHIP, 0)) {
		fprintf(stderr, "nestkit-demo: KVM_CREATE_IRQCHIP: %s\n", strerror(errno));
		goto out;
	}
	mem = nk_vm_add_memory(&kvm, GUEST_MEM_SIZE, err, sizeof(err));
	if (!mem)
		goto out_err;
	memcpy((char *)mem + GUEST_CODE_GPA, nk_rr_guest_start,
	       nk_rr_guest_end - nk_rr_guest_start);
	for (created = 0; created < nr_vcpus; created++)
		if (nk_vcpu_create(&kvm, created, &vcpus[created], err, sizeof(err)))
			goto out_err;
	if (nk_vcpu_set_flat32(&vcpus[0], GUEST_CODE_GPA, nr_vcpus, err, sizeof(err)))
		goto out_err;
	r = run_remote_read(&vcpus[0], nr_vcpus);
	goto out;
out_err:
	fprintf(stderr, "nestkit-demo: %s\n", err);
out:
	for (i = 0; i < created; i++)
		nk_vcpu_destroy(&vcpus[i]);
	nk_kvm_close(&kvm);
	return r;
}

/* Parse "[--kvm PATH] [--vcpus N]" from argv[2..]; returns 0 or prints usage. */
static int parse_opts(int argc, char **argv, const char **path, int *vcpus)
{
	int i;

	for (i = 2; i < argc; i++) {
		char *end;

		if (!strcmp(argv[i], "--kvm") && i + 1 < argc) {
			*path = argv[++i];
		} else if (vcpus && !strcmp(argv[i], "--vcpus") && i + 1 < argc) {
			errno = 0;
			*vcpus = strtol(argv[++i], &end, 10);
			if (errno || *end || *vcpus < 2 || *vcpus > MAX_VCPUS) {
				fprintf(stderr, "nestkit-demo: --vcpus wants 2..%d, got '%s'\n",
					MAX_VCPUS, argv[i]);
				return -1;
			}
		} else {
			fprintf(stderr, "nestkit-demo: %s: unexpected argument '%s'\n",
				argv[1], argv[i]);
			usage(stderr);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = "/dev/kvm";
	int vcpus = 4;
	const char *base = strrchr(argv[0], '/');

	/* The test plans run it under this name. */
	if (!strcmp(base ? base + 1 : argv[0], "snapshot_test"))
		return nk_snapshot_test(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "probe"))
		return parse_opts(argc, argv, &path, NULL) ? 2 : probe(path);
	if (!strcmp(argv[1], "remote-read"))
		return parse_opts(argc, argv, &path, &vcpus) ? 2 : remote_read(path, vcpus);
	if (!strcmp(argv[1], "snapshot-test"))
		return nk_snapshot_test(argc - 1, argv + 1);
	if (!strcmp(argv[1], "snapshot-bench"))
		return nk_snapshot_bench(argc - 1, argv + 1);
	fprintf(stderr, "nestkit-demo: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
