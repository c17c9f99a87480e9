/* Counts in RAM and prints the count on COM1 as 8 hex digits and a
 * newline, with a pause of some hundred thousand instructions between
 * lines, forever: the guest of the snapshot tests (tests/vm/t_api.sh), whose
 * printed sequence must go on after a restore. */
#include "guest.h"
	.code64
	.globl _start
_start:
1:	incq SCRATCH
	mov SCRATCH, %rax
	mov $COM1, %dx
	mov $8, %ecx
2:	rol $4, %eax
	mov %eax, %ebx
	and $15, %ebx
	add $0x30, %bl
	cmp $0x39, %bl
	jbe 3f
	add $7, %bl
3:	xchg %eax, %ebx
	out %al, %dx
	xchg %eax, %ebx
	dec %ecx
	jnz 2b
	mov $10, %al
	out %al, %dx
	mov $200000, %rcx
4:	dec %rcx
	jnz 4b
	jmp 1b
GUEST_LIB
