/* NMIs: one from the guest's own LAPIC (a self-IPI in NMI delivery mode)
 * while it runs with interrupts disabled (NMIs ignore IF), then the PIT's
 * IRQ 0 routed by the IOAPIC as an NMI, which must wake the vCPU from HLT.
 * (The HLT runs with IF set, every maskable source masked: with IF clear
 * both engines rightly call a vCPU that only a timer-driven NMI could wake
 * hung, as they do not trace timers to NMI routes.) */
#include "guest.h"
	.code64
	.globl _start
_start:
	call idt_init
	GATE 2, nmi
	mov $0xff, %al            /* both 8259s masked */
	out %al, $0x21
	out %al, $0xa1
	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)
	movl $0x10700, 0x350(%rbx) /* LINT0 masked */
	movq $0, SCRATCH
	cli
	movl $0, 0x310(%rbx)
	movl $0x44400, 0x300(%rbx) /* self, NMI */
	mov $1000000, %ecx
1:	cmpq $1, SCRATCH
	je 2f
	dec %ecx
	jnz 1b
	PUTS m_run
	jmp poweroff
2:	mov $IOAPIC, %ebx
	movl $0x15, (%rbx)        /* pin 2: destination APIC 0 */
	movl $0, 0x10(%rbx)
	movl $0x14, (%rbx)        /* pin 2: NMI delivery, edge, unmasked */
	movl $0x400, 0x10(%rbx)
	mov $0x34, %al            /* PIT ch0 mode 2, 100 Hz */
	out %al, $0x43
	mov $(11932 & 0xff), %al
	out %al, $0x40
	mov $(11932 >> 8), %al
	out %al, $0x40
	sti                       /* nothing maskable is unmasked */
3:	hlt
	cmpq $3, SCRATCH
	jb 3b
	cli
	PUTS ok
	jmp poweroff
nmi:	incq SCRATCH
	iretq
ok:	.asciz "nmi ok\n"
m_run:	.asciz "FAIL no NMI while running\n"
GUEST_LIB
