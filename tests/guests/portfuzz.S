/* Random values to every I/O port (byte, word and dword writes and reads,
 * the reset and power ports excepted so the sweep completes) and to every
 * register of the LAPIC (but the ICR) and IOAPIC MMIO windows. Ends with
 * "portfuzz done" and a power-off. */
#include "guest.h"
	.code64
	.globl _start
_start:
	movabs $0x9e3779b97f4a7c15, %r15
	xor %ebx, %ebx            /* port */
1:	cmp $0x60, %bx            /* i8042 (0xfe resets) */
	jb 2f
	cmp $0x64, %bx
	jbe 3f
2:	mov %bx, %ax
	and $0xfff0, %ax
	cmp $0x600, %ax           /* ACPI PM1 (S5) */
	je 3f
	cmp $0xcf8, %bx           /* reset control */
	jb 4f
	cmp $0xcff, %bx
	jbe 3f
4:	call rnd
	mov %bx, %dx
	out %al, %dx
	in %dx, %al
	call rnd
	out %ax, %dx
	in %dx, %ax
	call rnd
	out %eax, %dx
	in %dx, %eax
3:	inc %ebx
	cmp $0x10000, %ebx
	jb 1b
	/* MMIO windows */
	mov $LAPIC, %rbx
	xor %ecx, %ecx
5:	cmp $0x300, %ecx
	je 6f
	call rnd
	mov %eax, (%rbx, %rcx)
	mov (%rbx, %rcx), %eax
6:	add $4, %ecx
	cmp $0x1000, %ecx
	jb 5b
	mov $IOAPIC, %rbx
	xor %ecx, %ecx
7:	call rnd
	mov %eax, (%rbx, %rcx)
	mov (%rbx, %rcx), %eax
	mov (%rbx), %eax
	add $4, %ecx
	cmp $0x1000, %ecx
	jb 7b
	mov $2000, %ecx           /* IOREGSEL then IOWIN, random registers */
8:	call rnd
	mov %eax, (%rbx)
	call rnd
	mov %eax, 0x10(%rbx)
	dec %ecx
	jnz 8b
	cli
	mov $COM1 + 1, %dx        /* the UART back to plain output */
	xor %eax, %eax
	out %al, %dx
	mov $COM1 + 3, %dx
	mov $3, %al
	out %al, %dx
	mov $COM1 + 4, %dx
	xor %eax, %eax
	out %al, %dx
	PUTS msg
	jmp poweroff
rnd:	mov %r15, %rax            /* xorshift64 into r15 and rax */
	shl $13, %rax
	xor %rax, %r15
	mov %r15, %rax
	shr $7, %rax
	xor %rax, %r15
	mov %r15, %rax
	shl $17, %rax
	xor %rax, %r15
	mov %r15, %rax
	ret
msg:	.asciz "\nportfuzz done\n"
GUEST_LIB
