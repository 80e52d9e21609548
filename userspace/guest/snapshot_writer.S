/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest code for "nestkit-demo snapshot-test", 32-bit flat protected mode,
 * paging off.  EBX = first data page (GPA), EBP = number of data pages,
 * ESI = random seed, EDI = kvmclock page (GPA).  Enables kvmclock, then
 * forever: 256 random dword writes into the data pages, one "rep insl" of
 * four dwords from port 0x520 into a random data page (written by KVM's
 * instruction emulator), and a tick on port 0x510.
 */
	.section .rodata
	.globl nk_snap_guest_start, nk_snap_guest_end
	.code32
nk_snap_guest_start:
	mov	$0x4b564d01, %ecx		/* MSR_KVM_SYSTEM_TIME_NEW */
	mov	%edi, %eax
	or	$1, %eax			/* enable */
	xor	%edx, %edx
	wrmsr
	cld
again:
	mov	$256, %ecx
write:
	call	random_addr
	mov	%esi, (%eax)
	loop	write
	call	random_addr
	mov	%eax, %edi
	mov	$0x520, %dx
	mov	$4, %ecx
	rep insl
	mov	$0x510, %dx
	out	%al, %dx
	jmp	again

/* EAX = a random dword-aligned address in the data pages; ESI advances. */
random_addr:
	push	%edx
	mov	%esi, %eax			/* xorshift32 */
	shl	$13, %eax
	xor	%eax, %esi
	mov	%esi, %eax
	shr	$17, %eax
	xor	%eax, %esi
	mov	%esi, %eax
	shl	$5, %eax
	xor	%eax, %esi
	mov	%esi, %eax
	xor	%edx, %edx
	div	%ebp				/* EDX = page index */
	shl	$12, %edx
	mov	%esi, %eax
	shr	$20, %eax
	and	$0xff0, %eax			/* room for the 16-byte insl */
	add	%edx, %eax
	add	%ebx, %eax
	pop	%edx
	ret
nk_snap_guest_end:
	.code64
	.section .note.GNU-stack, "", @progbits
