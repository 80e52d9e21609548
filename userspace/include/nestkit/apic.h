/* SPDX-License-Identifier: GPL-2.0 */
/* Local APIC helpers for VMMs: Remote Read results. */
#ifndef NESTKIT_APIC_H
#define NESTKIT_APIC_H

#include <stddef.h>
#include <stdint.h>

#define NK_ICR_RR_MASK		0x30000u
#define NK_ICR_RR_INVALID	0x00000u
#define NK_ICR_RR_INPROG	0x10000u
#define NK_ICR_RR_VALID		0x20000u

/*
 * Describe the outcome of a Remote Read of the APIC ID register, from the
 * sender's ICR value after the read and its Remote Read Register, into @buf.
 * Returns 1 if the read is valid (and stores the xAPIC ID in @apic_id),
 * 0 otherwise.
 */
int nk_remote_read_apic_id(uint32_t icr, uint32_t rrr, uint8_t *apic_id,
			   char *buf, size_t len);

#endif
