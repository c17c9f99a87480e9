/* An interrupt storm: the LAPIC timer at its shortest period, the PIT at
 * count 2 through the IOAPIC, and a self-IPI sent from its own handler,
 * all at once. The guest must make progress and finish. */
#include "guest.h"
	.code64
	.globl _start
_start:
	call idt_init
	GATE 0x40, t_lapic
	GATE 0x50, t_pit
	GATE 0x60, t_ipi
	mov $0xff, %al
	out %al, $0x21
	out %al, $0xa1
	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)
	movl $0x10700, 0x350(%rbx)
	movl $0xb, 0x3e0(%rbx)
	movl $0x20040, 0x320(%rbx)
	movl $1, 0x380(%rbx)      /* periodic, count 1 */
	mov $IOAPIC, %ebx
	movl $0x15, (%rbx)
	movl $0, 0x10(%rbx)
	movl $0x14, (%rbx)
	movl $0x50, 0x10(%rbx)
	mov $0x34, %al
	out %al, $0x43
	mov $2, %al
	out %al, $0x40
	xor %eax, %eax
	out %al, $0x40
	mov $LAPIC, %ebx
	movl $0x44060, 0x300(%rbx) /* self IPI 0x60 */
	sti
1:	hlt
	cmpq $100, SCRATCH
	jb 1b
	cmpq $100, SCRATCH + 8
	jb 1b
	cmpq $50000, SCRATCH + 16
	jb 1b
	cli
	PUTS msg
	jmp poweroff
t_lapic:
	push %rax
	incq SCRATCH
	jmp eoi
t_pit:
	push %rax
	incq SCRATCH + 8
	jmp eoi
t_ipi:
	push %rax
	incq SCRATCH + 16
	mov $LAPIC, %eax
	cmpq $50000, SCRATCH + 16
	jae eoi
	movl $0x44060, 0x300(%rax)
eoi:	mov $LAPIC, %eax
	movl $0, 0xb0(%rax)
	pop %rax
	iretq
msg:	.asciz "storm ok\n"
GUEST_LIB
