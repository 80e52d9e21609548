// SPDX-License-Identifier: GPL-2.0
/* Host unit tests for the capability table and probing error paths. */
#include <errno.h>
#include <string.h>

#include "nestkit/nestkit.h"
#include "unit.h"

static void test_numbers_are_private(void)
{
	size_t i, j, n = 0;

	for (i = 0; i < nk_ncaps; i++) {
		if (!nk_caps[i].nestkit) {
			/* upstream numbers are small and sequential */
			CHECK(nk_caps[i].cap < 0x10000);
			continue;
		}
		n++;
		CHECK((nk_caps[i].cap & 0xffff0000u) == NESTKIT_CAP_BASE);
		for (j = 0; j < i; j++)
			CHECK(nk_caps[j].cap != nk_caps[i].cap);
	}
	CHECK(n == NK_NR_NESTKIT_CAPS);
}

static void test_describe(void)
{
	char buf[64];

	CHECK(!strcmp(nk_cap_describe(0, buf, sizeof(buf)), "absent"));
	CHECK(!strcmp(nk_cap_describe(1, buf, sizeof(buf)), "present"));
	CHECK(!strcmp(nk_cap_describe(3, buf, sizeof(buf)), "present (value 0x3)"));
	CHECK(!strncmp(nk_cap_describe(-EINVAL, buf, sizeof(buf)), "error (", 7));
	/* truncation never overflows */
	CHECK(!strcmp(nk_cap_describe(0, buf, 4), "abs"));
}

static void test_open_errors(void)
{
	struct nk_kvm kvm;
	char err[128];

	CHECK(nk_kvm_open(&kvm, "/nonexistent/kvm", err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "/nonexistent/kvm") != NULL);
	/* a file that is not KVM is refused, not misused */
	CHECK(nk_kvm_open(&kvm, "/dev/null", err, sizeof(err)) == -ENOTTY);
	CHECK(strstr(err, "not a KVM device") != NULL);
}

int main(void)
{
	test_numbers_are_private();
	test_describe();
	test_open_errors();
	return unit_done("test_caps");
}
