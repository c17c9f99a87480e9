/* bench/startup.sh: touches every 4 KiB page of a 128 MiB guest (a
 * read-modify-write that leaves memory as it was), then powers off, so
 * corral's resident memory minus 128 MiB is its own overhead. */
#include "guest.h"
#define RAM (128 << 20)
	.code64
	.globl _start
_start:
	out %al, $0x80
	xor %edi, %edi
	mov $RAM, %ecx
1:	orb $0, (%rdi)
	add $4096, %rdi
	cmp %rcx, %rdi
	jb 1b
	jmp poweroff
GUEST_LIB
