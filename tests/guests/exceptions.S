/* Exceptions through the IDT that recover: #UD (skips the ud2), #PF with
 * CR2 and the error code (skips the faulting 8-byte load), #BP from int3,
 * #DE from a division by zero (skips it). */
#include "guest.h"
#define FAR 0x200000000           /* 8 GiB: outside the 4 GiB identity map */
	.code64
	.globl _start
_start:
	call idt_init
	GATE 0, de
	GATE 3, bp
	GATE 6, ud
	GATE 14, pf
	ud2
	movabs $FAR, %rbx
	mov (%rbx), %rax          /* 3 bytes: 48 8b 03 */
	int3
	xor %ecx, %ecx
	mov $1, %eax
	xor %edx, %edx
	div %ecx                  /* 2 bytes: f7 f1 */
	mov SCRATCH, %rax         /* ud */
	cmp $1, %rax
	jne bad
	mov SCRATCH + 8, %rax     /* pf */
	cmp $1, %rax
	jne bad
	mov SCRATCH + 16, %rax    /* cr2 */
	movabs $FAR, %rcx
	cmp %rcx, %rax
	jne bad_cr2
	mov SCRATCH + 24, %rax    /* error code: read of a not-present page */
	cmp $0, %rax
	jne bad_err
	mov SCRATCH + 32, %rax    /* bp */
	cmp $1, %rax
	jne bad
	mov SCRATCH + 40, %rax    /* de */
	cmp $1, %rax
	jne bad
	PUTS ok
	jmp poweroff
ud:	incq SCRATCH
	addq $2, (%rsp)
	iretq
pf:	incq SCRATCH + 8
	mov %cr2, %rax
	mov %rax, SCRATCH + 16
	pop %rax                  /* error code */
	mov %rax, SCRATCH + 24
	addq $3, (%rsp)
	iretq
bp:	incq SCRATCH + 32         /* int3 is a trap: RIP is already past it */
	iretq
de:	incq SCRATCH + 40
	addq $2, (%rsp)
	iretq
bad:	PUTS m_bad
	jmp poweroff
bad_cr2: PUTS m_cr2
	call puthex
	jmp poweroff
bad_err: PUTS m_err
	call puthex
	jmp poweroff
ok:	.asciz "exceptions ok\n"
m_bad:	.asciz "FAIL handler counts\n"
m_cr2:	.asciz "FAIL cr2 "
m_err:	.asciz "FAIL error code "
GUEST_LIB
