/* The PIT's IRQ 0 through the IOAPIC (pin 2, as ACPI's override says) to
 * the LAPIC, with the 8259s masked and LINT0 masked: three ticks at 100 Hz. */
#include "guest.h"
	.code64
	.globl _start
_start:
	call idt_init
	GATE 0x50, tick
	mov $0xff, %al            /* both 8259s fully masked */
	out %al, $0x21
	out %al, $0xa1
	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)
	movl $0x10700, 0x350(%rbx) /* LINT0 masked */
	mov $IOAPIC, %ebx
	movl $0x15, (%rbx)        /* pin 2 high dword: destination APIC 0 */
	movl $0, 0x10(%rbx)
	movl $0x14, (%rbx)        /* pin 2 low dword: vector 0x50, fixed, edge, unmasked */
	movl $0x50, 0x10(%rbx)
	movl $0x01, (%rbx)        /* version: 24 pins */
	mov 0x10(%rbx), %eax
	shr $16, %eax
	cmp $23, %al
	jne bad_ver
	mov $0x34, %al            /* PIT ch0 mode 2 */
	out %al, $0x43
	mov $(11932 & 0xff), %al
	out %al, $0x40
	mov $(11932 >> 8), %al
	out %al, $0x40
	sti
1:	hlt
	cmpq $3, SCRATCH
	jb 1b
	cli
	PUTS ok
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
ok:	.asciz "ioapic pit ok\n"
m_ver:	.asciz "FAIL ioapic version\n"
GUEST_LIB
