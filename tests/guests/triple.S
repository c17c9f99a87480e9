/* A triple fault: an IDT with no present gates, then #UD -> #GP -> #DF ->
 * shutdown. corral must stop with "triple fault" and status 1. */
#include "guest.h"
	.code64
	.globl _start
_start:
	PUTS msg
	call idt_init
	ud2
	PUTS m_bad
	jmp poweroff
msg:	.asciz "about to triple fault\n"
m_bad:	.asciz "FAIL still running\n"
GUEST_LIB
