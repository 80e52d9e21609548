// SPDX-License-Identifier: GPL-2.0
/*
 * nestkit-demo: the demo VMM. Each subcommand shows one nestkit feature from
 * the point of view of a userspace VMM; "probe" reports which nestkit
 * capabilities the running kernel offers.
 */
#include <stdio.h>
#include <string.h>

#include <cpuid.h>

#include "nestkit/nestkit.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nestkit-demo probe [--kvm PATH]\n"
		"  probe   report which nestkit capabilities this kernel's KVM offers\n");
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
	char err[256], desc[64], vendor[13];
	struct nk_kvm kvm;
	int r, missing = 0;
	size_t i;

	r = nk_kvm_open(&kvm, path, err, sizeof(err));
	if (r) {
		fprintf(stderr, "nestkit-demo: %s\n", err);
		return 1;
	}
	printf("nestkit-demo: capability probe on %s (%s)\n", path, cpu_vendor(vendor));
	for (i = 0; i < nk_ncaps; i++) {
		long v = nk_check_cap(&kvm, nk_caps[i].cap);

		if (i == 0)
			printf("  nestkit capabilities:\n");
		else if (!nk_caps[i].nestkit && nk_caps[i - 1].nestkit)
			printf("  related upstream capabilities:\n");
		printf("    %-32s %-24s %s\n", nk_caps[i].name,
		       nk_cap_describe(v, desc, sizeof(desc)), nk_caps[i].feature);
		if (nk_caps[i].nestkit && v <= 0)
			missing++;
	}
	printf("nestkit-demo: %d of 4 nestkit capabilities absent\n", missing);
	nk_kvm_close(&kvm);
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = "/dev/kvm";

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "probe")) {
		if (argc == 4 && !strcmp(argv[2], "--kvm")) {
			path = argv[3];
		} else if (argc != 2) {
			fprintf(stderr, "nestkit-demo: probe: unexpected arguments\n");
			usage(stderr);
			return 2;
		}
		return probe(path);
	}
	fprintf(stderr, "nestkit-demo: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
