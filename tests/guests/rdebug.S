/* A guest for reverse debugging (tests/debug/t_rdebug.sh, which takes the
 * labels' addresses from the assembled object): a periodic LAPIC timer
 * interrupts a loop of 20 rounds; each round draws a random byte
 * (RDRAND: an input of the recording), mixes it into a sum, stores the
 * sum to a watched variable and calls a function. Prints the sum and the
 * number of ticks, then powers off. */
#include "guest.h"
#define COUNTER (SCRATCH + 0x100)
#define TICKS (SCRATCH + 0x200)
	.code64
	.globl _start
_start:
	PUTS hello
	call idt_init
	GATE 0x40, tick
	movq $0, COUNTER
	movq $0, TICKS
	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)    /* software enable, spurious vector 0xff */
	movl $0xb, 0x3e0(%rbx)     /* divide by 1 */
	movl $0x20040, 0x320(%rbx) /* periodic, vector 0x40 */
	movl $30000, 0x380(%rbx)   /* 30 us: about 15000 instructions */
	sti
	xor %r12d, %r12d           /* the round */
	xor %r13d, %r13d           /* the sum */
	xor %r14d, %r14d           /* calls of work */
	.globl loop_top
loop_top:
	rdrand %rax
	and $0xff, %eax
	add %rax, %r13
	mov $2000, %ecx
1:	imul $3, %r13, %r13
	add %rcx, %r13
	dec %ecx
	jnz 1b
	.globl store
store:
	mov %r13, COUNTER
	.globl after_store
after_store:
	call work
	inc %r12
	cmp $20, %r12
	jb loop_top
	cli
	mov COUNTER, %rax
	call puthex
	PUTS nl
	mov TICKS, %rax
	call puthex
	PUTS nl
	PUTS done
	jmp poweroff
	.globl work
work:
	inc %r14
	ret
	.globl tick
tick:
	incq TICKS
	push %rax
	mov $LAPIC, %eax
	movl $0, 0xb0(%rax)        /* EOI */
	pop %rax
	iretq
hello:	.asciz "rdebug guest\n"
nl:	.asciz "\n"
done:	.asciz "done\n"
GUEST_LIB
