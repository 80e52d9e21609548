// SPDX-License-Identifier: GPL-2.0
/* Host unit tests for the Remote Read result decoding. */
#include <string.h>

#include "nestkit/apic.h"
#include "unit.h"

int main(void)
{
	uint8_t id = 0xaa;
	char buf[96];

	CHECK(nk_remote_read_apic_id(0x20302, 0x03000000, &id, buf, sizeof(buf)) == 1);
	CHECK(id == 3);
	CHECK(strstr(buf, "APIC ID 3") != NULL);

	/* Every non-valid status is "no answer" and leaves the ID alone. */
	id = 0xaa;
	CHECK(nk_remote_read_apic_id(0x00302, 0x03000000, &id, buf, sizeof(buf)) == 0);
	CHECK(strstr(buf, "00b") != NULL);
	CHECK(nk_remote_read_apic_id(0x10302, 0, &id, buf, sizeof(buf)) == 0);
	CHECK(strstr(buf, "in progress") != NULL);
	CHECK(nk_remote_read_apic_id(0x30302, 0, &id, buf, sizeof(buf)) == 0);
	CHECK(strstr(buf, "reserved") != NULL);
	CHECK(id == 0xaa);

	/* Short buffers truncate, never overflow. */
	CHECK(nk_remote_read_apic_id(0x20302, 0x01000000, &id, buf, 8) == 1);
	CHECK(strlen(buf) == 7);
	return unit_done("test_apic");
}
