/* Serial input: echoes what arrives on COM1 (RX data interrupts on IRQ 4
 * through the IOAPIC, waiting in HLT) as "<c>" until a 'q', then powers off. */
#include "guest.h"
	.code64
	.globl _start
_start:
	call idt_init
	GATE 0x44, rx
	mov $0xff, %al
	out %al, $0x21
	out %al, $0xa1
	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)
	movl $0x10700, 0x350(%rbx)
	mov $IOAPIC, %ebx
	movl $0x19, (%rbx)        /* pin 4: APIC 0, vector 0x44, edge */
	movl $0, 0x10(%rbx)
	movl $0x18, (%rbx)
	movl $0x44, 0x10(%rbx)
	mov $COM1 + 2, %dx        /* FIFO on, trigger 1 */
	mov $0x07, %al
	out %al, %dx
	mov $COM1 + 4, %dx        /* DTR RTS OUT2 */
	mov $0x0b, %al
	out %al, %dx
	mov $COM1 + 1, %dx        /* RX data interrupts */
	mov $0x01, %al
	out %al, %dx
	PUTS ready
	sti
1:	hlt
	cmpb $'q', SCRATCH
	jne 1b
	cli
	PUTS bye
	jmp poweroff
rx:	push %rax
	push %rdx
2:	mov $COM1 + 5, %dx
	in %dx, %al
	test $1, %al
	jz 3f
	mov $COM1, %dx
	in %dx, %al
	mov %al, SCRATCH
	mov %al, %ah
	mov $'<', %al
	out %al, %dx
	mov %ah, %al
	out %al, %dx
	mov $'>', %al
	out %al, %dx
	jmp 2b
3:	mov $LAPIC, %eax
	movl $0, 0xb0(%rax)
	pop %rdx
	pop %rax
	iretq
ready:	.asciz "ready\n"
bye:	.asciz "\nbye\n"
GUEST_LIB
