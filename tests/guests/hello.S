/* The smallest guest: "hello" on COM1, then ACPI power-off. */
#include "guest.h"
	.code64
	.globl _start
_start:
	PUTS msg
	jmp poweroff
msg:	.asciz "hello\n"
GUEST_LIB
