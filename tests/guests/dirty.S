/* Writes every page of 8 MiB at 16 MiB, pass after pass, forever: pass N
 * first checks that each page still holds N-1 (in its first and last
 * quadwords) and then writes N there (a MOV and a REP STOSQ), and prints
 * "pass " and N in hex after each pass. A page that a migration or a
 * snapshot failed to carry ends the guest with "FAIL lost write". Needs
 * 32 MiB of RAM or more: the guest of tests/migrate/t_migrate.sh. */
#include "guest.h"
#define REGION 0x1000000
#define REGION_END 0x1800000
	.code64
	.globl _start
_start:
	xor %r8, %r8                 /* the pass before: 0 = untouched RAM */
1:	lea 1(%r8), %r9              /* this pass */
	mov $REGION, %rdi
2:	cmp %r8, (%rdi)
	jne lost
	cmp %r8, 4088(%rdi)
	jne lost
	mov %r9, (%rdi)
	push %rdi
	add $4032, %rdi
	mov %r9, %rax
	mov $8, %ecx
	rep stosq                    /* 4032..4095 */
	pop %rdi
	add $4096, %rdi
	cmp $REGION_END, %rdi
	jb 2b
	PUTS pass_msg
	mov %r9, %rax
	call puthex
	mov $10, %al
	mov $COM1, %dx
	out %al, %dx
	mov %r9, %r8
	jmp 1b
lost:
	lea lost_msg(%rip), %rsi
	jmp fail
pass_msg: .asciz "pass "
lost_msg: .asciz "lost write\n"
GUEST_LIB
