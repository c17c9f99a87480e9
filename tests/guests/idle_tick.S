/* An idle guest with a clock: the LAPIC timer interrupts every 10 ms while
 * the CPU waits in HLT, and every 10th tick (100 ms of guest time) prints a
 * line count as 16 hex digits, forever. The guest of the snapshot format's
 * fixture (tests/vm/fixtures/snap-v1: timers and interrupts must go on
 * after a restore) and of the idle-cost test (a restored idle guest must
 * cost the host no more than a freshly booted one). */
#include "guest.h"
	.code64
	.globl _start
_start:
	call idt_init
	GATE 0x40, tick
	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)    /* software enable, spurious vector 0xff */
	movl $0xb, 0x3e0(%rbx)     /* divide by 1 */
	movl $0x20040, 0x320(%rbx) /* periodic, vector 0x40 */
	movl $10000000, 0x380(%rbx) /* 10 ms */
	sti
1:	hlt
	mov SCRATCH, %rax          /* ticks */
	sub SCRATCH+8, %rax        /* ticks already printed for */
	cmp $10, %rax
	jb 1b
	addq $10, SCRATCH+8
	incq SCRATCH+16            /* lines */
	mov SCRATCH+16, %rax
	call puthex
	PUTS nl
	jmp 1b
tick:
	push %rax
	incq SCRATCH
	mov $LAPIC, %eax
	movl $0, 0xb0(%rax)        /* EOI */
	pop %rax
	iretq
nl:	.asciz "\n"
GUEST_LIB
