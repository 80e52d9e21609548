/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest code for "nestkit-demo remote-read", run by the BSP in 32-bit flat
 * protected mode: what a legacy BIOS does to discover its APs.  For each AP
 * index 1..EBX-1, send a Remote Read IPI for the APIC ID register (vector
 * 0x02 = offset 0x20 >> 4), poll ICR[17:16] while "in progress", and report
 * index, status and the Remote Read Register through I/O ports
 * 0x500/0x504/0x508; port 0x50c means done.
 */
	.section .rodata
	.globl nk_rr_guest_start, nk_rr_guest_end
	.code32
nk_rr_guest_start:
	mov	$1, %esi
next:
	cmp	%ebx, %esi
	jae	done
	mov	%esi, %eax
	shl	$24, %eax
	mov	%eax, 0xfee00310		/* ICR2: physical destination */
	movl	$0x00000302, 0xfee00300		/* ICR: Remote Read of APIC ID */
	mov	$1000, %ecx
poll:
	mov	0xfee00300, %edi
	and	$0x30000, %edi
	cmp	$0x10000, %edi			/* 01b: in progress */
	jne	report
	loop	poll
report:
	mov	$0x500, %dx
	mov	%esi, %eax
	out	%eax, %dx
	mov	$0x504, %dx
	mov	%edi, %eax
	out	%eax, %dx
	mov	0xfee000c0, %eax		/* Remote Read Register */
	mov	$0x508, %dx
	out	%eax, %dx
	inc	%esi
	jmp	next
done:
	mov	$0x50c, %dx
	out	%eax, %dx
	hlt
nk_rr_guest_end:
	.code64
	.section .note.GNU-stack, "", @progbits
