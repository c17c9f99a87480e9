/* The LAPIC through MMIO: version register, a periodic timer interrupt
 * handled through the guest's IDT while it waits in HLT, then a one-shot
 * 100 s of virtual time away: the clock skips it, so it costs no wall time. */
#include "guest.h"
	.code64
	.globl _start
_start:
	call idt_init
	GATE 0x40, tick
	mov $LAPIC, %ebx
	mov 0x30(%rbx), %eax      /* version 0x14 */
	cmp $0x14, %al
	jne bad_ver
	movl $0x1ff, 0xf0(%rbx)   /* software enable, spurious vector 0xff */
	movl $0xb, 0x3e0(%rbx)    /* divide by 1 */
	movl $0x20040, 0x320(%rbx) /* periodic, vector 0x40 */
	movl $1000000, 0x380(%rbx) /* 1 ms */
	sti
1:	hlt
	cmpq $5, SCRATCH
	jb 1b
	movl $0x10040, 0x320(%rbx) /* mask it */
	PUTS m_periodic
	movq $0, SCRATCH
	movl $0xa, 0x3e0(%rbx)    /* divide by 128 */
	movl $0x00040, 0x320(%rbx) /* one-shot */
	movl $781250000, 0x380(%rbx) /* 100 s */
2:	hlt
	cmpq $1, SCRATCH
	jb 2b
	PUTS m_oneshot
	jmp poweroff
tick:
	push %rax
	incq SCRATCH
	mov $LAPIC, %eax
	movl $0, 0xb0(%rax)       /* EOI */
	pop %rax
	iretq
bad_ver: PUTS m_ver
	jmp poweroff
m_periodic: .asciz "lapic periodic ok\n"
m_oneshot: .asciz "lapic one-shot ok\n"
m_ver:	.asciz "FAIL lapic version\n"
GUEST_LIB
