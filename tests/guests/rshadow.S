/* The interrupt shadow of STI (tests/guests/t_guests.sh, tests/debug/t_rdebug.sh): a one-shot LAPIC
 * timer fires while interrupts are off and stays pending; STI then lets it
 * in after exactly one more instruction, as on hardware. The handler keeps
 * the interrupted RIP; the guest says "shadow ok" if that is `shadow2`,
 * else where the interrupt came. Then it powers off. */
#include "guest.h"
#define SAVED (SCRATCH + 0x100)
	.code64
	.globl _start
_start:
	PUTS hello
	call idt_init
	GATE 0x40, tick
	movq $0, SAVED
	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)    /* software enable, spurious vector 0xff */
	movl $0xb, 0x3e0(%rbx)     /* divide by 1 */
	movl $0x40, 0x320(%rbx)    /* one-shot, vector 0x40 */
	movl $1000, 0x380(%rbx)    /* 1 us: about 500 instructions */
	mov $200000, %ecx          /* interrupts are off: it waits in the IRR */
1:	dec %ecx
	jnz 1b
	sti
	.globl shadow1
shadow1:
	mov $1, %ecx               /* the shadow: runs before the interrupt */
	.globl shadow2
shadow2:
	mov $2, %edx
	.globl shadow3
shadow3:
	mov $3, %esi
	add %ecx, %edx
	add %edx, %esi
	rdtsc                      /* kept in RAM: a replay's hash covers it */
	mov %eax, SCRATCH + 0x108
	cli
	lea shadow2(%rip), %rax
	cmp SAVED, %rax
	jne 1f
	PUTS good
	jmp poweroff
1:	PUTS wrong
	mov SAVED, %rax
	call puthex
	PUTS nl
	jmp poweroff
tick:
	push %rax
	mov 8(%rsp), %rax          /* the interrupted RIP */
	mov %rax, SAVED
	mov $LAPIC, %eax
	movl $0, 0xb0(%rax)        /* EOI */
	pop %rax
	iretq
hello:	.asciz "rshadow guest\n"
nl:	.asciz "\n"
good:	.asciz "shadow ok\n"
wrong:	.asciz "shadow wrong: the interrupt came at "
GUEST_LIB
