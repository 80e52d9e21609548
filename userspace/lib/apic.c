// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>

#include "nestkit/apic.h"

int nk_remote_read_apic_id(uint32_t icr, uint32_t rrr, uint8_t *apic_id,
			   char *buf, size_t len)
{
	switch (icr & NK_ICR_RR_MASK) {
	case NK_ICR_RR_VALID:
		*apic_id = rrr >> 24;
		snprintf(buf, len, "APIC ID register 0x%08x -> APIC ID %u",
			 (unsigned int)rrr, (unsigned int)*apic_id);
		return 1;
	case NK_ICR_RR_INPROG:
		snprintf(buf, len, "no answer (ICR status 01b: still in progress)");
		return 0;
	case NK_ICR_RR_INVALID:
		snprintf(buf, len, "no answer (ICR status 00b: invalid)");
		return 0;
	default:
		snprintf(buf, len, "no answer (ICR status 11b: reserved)");
		return 0;
	}
}
