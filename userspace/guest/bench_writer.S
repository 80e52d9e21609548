/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest code for "nestkit-demo snapshot-bench", 32-bit flat protected mode,
 * paging off.  EBX = first data page (GPA), EBP = number of data pages.
 * Forever: write one dword into every data page, then tick on port 0x510.
 */
	.section .rodata
	.globl nk_bench_guest_start, nk_bench_guest_end
	.code32
nk_bench_guest_start:
	mov	%ebx, %eax
	mov	%ebp, %ecx
1:
	mov	%ecx, (%eax)
	add	$0x1000, %eax
	loop	1b
	mov	$0x510, %dx
	out	%al, %dx
	jmp	nk_bench_guest_start
nk_bench_guest_end:
	.code64
	.section .note.GNU-stack, "", @progbits
