/* A reset through the PIIX reset control register (0xcf9): corral reboots
 * the machine (the guest starts over), or stops with --no-reboot. */
#include "guest.h"
	.code64
	.globl _start
_start:
	PUTS msg
	mov $0xcf9, %dx
	mov $0x06, %al
	out %al, %dx
	PUTS m_bad
	jmp poweroff
msg:	.asciz "resetting\n"
m_bad:	.asciz "FAIL no reset\n"
GUEST_LIB
