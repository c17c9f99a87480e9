/* A guest for recording a restored VM (tests/vm/t_rrestore.sh): a periodic
 * LAPIC timer ticks while the guest waits in HLT for a byte on COM1 (RX
 * interrupts on IRQ 4); the test snapshots it there. The byte then starts
 * 400 rounds that each draw a random byte (RDRAND, an input of the
 * recording) into a sum; the guest prints the byte, the sum and the ticks
 * and powers off. */
#include "guest.h"
#define SUM (SCRATCH + 0x100)
#define TICKS (SCRATCH + 0x200)
	.code64
	.globl _start
_start:
	call idt_init
	GATE 0x40, tick
	GATE 0x44, rx
	movb $0, SCRATCH
	movq $0, TICKS
	mov $0xff, %al
	out %al, $0x21
	out %al, $0xa1
	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)    /* software enable, spurious vector 0xff */
	movl $0xb, 0x3e0(%rbx)     /* divide by 1 */
	movl $0x20040, 0x320(%rbx) /* periodic, vector 0x40 */
	movl $10000000, 0x380(%rbx) /* 10 ms */
	mov $IOAPIC, %ebx
	movl $0x19, (%rbx)         /* pin 4: APIC 0, vector 0x44, edge */
	movl $0, 0x10(%rbx)
	movl $0x18, (%rbx)
	movl $0x44, 0x10(%rbx)
	mov $COM1 + 2, %dx         /* FIFO on, trigger 1 */
	mov $0x07, %al
	out %al, %dx
	mov $COM1 + 4, %dx         /* DTR RTS OUT2 */
	mov $0x0b, %al
	out %al, %dx
	mov $COM1 + 1, %dx         /* RX data interrupts */
	mov $0x01, %al
	out %al, %dx
	PUTS ready
	sti
1:	hlt
	cmpb $0, SCRATCH
	je 1b
	xor %r12d, %r12d           /* the round */
	xor %r13d, %r13d           /* the sum */
	.globl round
round:
2:	rdrand %rax
	and $0xff, %eax
	add %rax, %r13
	mov $3000, %ecx
3:	imul $3, %r13, %r13
	add %rcx, %r13
	dec %ecx
	jnz 3b
	mov %r13, SUM
	inc %r12
	cmp $400, %r12
	jb 2b
	cli
	movzbq SCRATCH, %rax
	call puthex
	PUTS nl
	mov SUM, %rax
	call puthex
	PUTS nl
	mov TICKS, %rax
	call puthex
	PUTS nl
	PUTS done
	jmp poweroff
tick:	incq TICKS
	push %rax
	mov $LAPIC, %eax
	movl $0, 0xb0(%rax)        /* EOI */
	pop %rax
	iretq
rx:	push %rax
	push %rdx
4:	mov $COM1 + 5, %dx
	in %dx, %al
	test $1, %al
	jz 5f
	mov $COM1, %dx
	in %dx, %al
	mov %al, SCRATCH
	jmp 4b
5:	mov $LAPIC, %eax
	movl $0, 0xb0(%rax)
	pop %rdx
	pop %rax
	iretq
ready:	.asciz "ready\n"
nl:	.asciz "\n"
done:	.asciz "done\n"
GUEST_LIB
