/* Port I/O: the CMOS RTC (status D reads "valid"), the PIT's latched count
 * moves down, the UART scratch register keeps a value, an unclaimed port
 * reads all ones. */
#include "guest.h"
	.code64
	.globl _start
_start:
	mov $0x0d, %al            /* RTC register D */
	out %al, $0x70
	in $0x71, %al
	cmp $0x80, %al
	jne bad_rtc
	mov $(COM1 + 7), %dx      /* UART scratch */
	mov $0x5a, %al
	out %al, %dx
	in %dx, %al
	cmp $0x5a, %al
	jne bad_scr
	mov $0x1234, %dx          /* nothing there */
	in %dx, %eax
	cmp $0xffffffff, %eax
	jne bad_open
	mov $0x34, %al            /* PIT ch0 mode 2, count 0 (65536) */
	out %al, $0x43
	xor %eax, %eax
	out %al, $0x40
	out %al, $0x40
	mov $0, %al               /* latch */
	out %al, $0x43
	in $0x40, %al
	mov %al, %bl
	in $0x40, %al
	mov %al, %bh
	mov $200000, %ecx         /* let time pass */
1:	dec %ecx
	jnz 1b
	mov $0, %al
	out %al, $0x43
	in $0x40, %al
	mov %al, %cl
	in $0x40, %al
	mov %al, %ch
	cmp %bx, %cx
	je bad_pit
	PUTS ok
	jmp poweroff
bad_rtc: PUTS m_rtc
	jmp poweroff
bad_scr: PUTS m_scr
	jmp poweroff
bad_open: PUTS m_open
	jmp poweroff
bad_pit: PUTS m_pit
	jmp poweroff
ok:	.asciz "portio ok\n"
m_rtc:	.asciz "FAIL rtc\n"
m_scr:	.asciz "FAIL scratch\n"
m_open:	.asciz "FAIL unclaimed port\n"
m_pit:	.asciz "FAIL pit does not count\n"
GUEST_LIB
