// SPDX-License-Identifier: GPL-2.0
/*
 * nestkit: the command a user runs after installing nestkit-dkms.
 *   nestkit probe [--kvm PATH]   which nestkit capabilities the running KVM
 *                                offers, with their values
 *   nestkit version
 * Exit status: 0 after a probe (whatever it found), 1 if KVM cannot be
 * opened, 2 on a usage error.
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "nestkit/nestkit.h"

#ifndef NESTKIT_VERSION
#define NESTKIT_VERSION "unknown"
#endif

static void usage(FILE *f)
{
	fprintf(f, "usage: nestkit probe [--kvm PATH]\n"
		   "       nestkit version\n"
		   "  probe    report which nestkit capabilities the running KVM offers\n"
		   "           (default PATH /dev/kvm)\n");
}

/* Read one line of a sysfs attribute into @buf ("" when absent). */
static const char *sysfs_line(const char *mod, const char *attr, char *buf, size_t len)
{
	char path[128];
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/sys/module/%s/%s", mod, attr);
	f = fopen(path, "r");
	if (!f)
		return buf;
	if (!fgets(buf, (int)len, f))
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
	return buf;
}

/*
 * nestkit-dkms's modules carry a version; the stock ones have none. A
 * built-in KVM has no initstate.
 */
static void print_module(const char *name)
{
	char buf[64];

	if (!*sysfs_line(name, "initstate", buf, sizeof(buf)))
		return;
	sysfs_line(name, "version", buf, sizeof(buf));
	if (*buf)
		printf("  module %-10s version %s\n", name, buf);
	else
		printf("  module %-10s no version (not nestkit-dkms's)\n", name);
}

static int probe(const char *path)
{
	struct utsname u;
	struct nk_kvm kvm;
	char err[256];
	int missing;

	if (nk_kvm_open(&kvm, path, err, sizeof(err))) {
		fprintf(stderr, "nestkit: %s\n", err);
		fprintf(stderr, "nestkit: is KVM loaded (modprobe kvm_intel or kvm_amd) and may you open %s?\n",
			path);
		return 1;
	}
	uname(&u);
	printf("nestkit probe: %s on kernel %s\n", path, u.release);
	print_module("kvm");
	print_module("kvm_intel");
	print_module("kvm_amd");
	missing = nk_probe_print(stdout, &kvm, "  ");
	printf("nestkit: %d of %d nestkit capabilities present\n",
	       NK_NR_NESTKIT_CAPS - missing, NK_NR_NESTKIT_CAPS);
	nk_kvm_close(&kvm);
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = "/dev/kvm";
	int i;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "version") && argc == 2) {
		printf("nestkit %s\n", NESTKIT_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "probe")) {
		fprintf(stderr, "nestkit: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--kvm") && i + 1 < argc) {
			path = argv[++i];
		} else {
			fprintf(stderr, "nestkit: probe: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	return probe(path);
}
