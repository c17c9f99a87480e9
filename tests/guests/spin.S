/* Says "spinning" on COM1, then loops forever: a busy guest that only the
 * host can stop (corral run's stop signals). */
#include "guest.h"
	.code64
	.globl _start
_start:
	PUTS msg
1:	inc %rax
	jmp 1b
msg:	.asciz "spinning\n"
GUEST_LIB
