/* Starting a second vCPU (run with --cpus 2): INIT and SIPI from the BSP's
 * LAPIC; the AP starts in real mode at the SIPI vector's page and leaves a
 * mark in memory, which the BSP waits for. */
#include "guest.h"
#define TRAMP 0x8000
#define FLAG 0x9000
	.code64
	.globl _start
_start:
	lea ap_start(%rip), %rsi
	mov $TRAMP, %edi
	mov $(ap_end - ap_start), %ecx
	rep movsb
	movw $0, FLAG
	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)
	movl $(1 << 24), 0x310(%rbx)
	movl $0x4500, 0x300(%rbx)  /* INIT */
	movl $0x8500, 0x300(%rbx)  /* INIT de-assert */
	movl $(0x4600 | (TRAMP >> 12)), 0x300(%rbx) /* SIPI */
	mov $100000000, %ecx
1:	cmpw $0x1234, FLAG
	je 2f
	pause
	dec %ecx
	jnz 1b
	PUTS m_bad
	jmp poweroff
	.globl ap_up
ap_up:	/* the AP has started (tests/debug/t_gdb.sh stops here) */
2:	PUTS ok
	jmp poweroff
	.code16
ap_start:
	xor %ax, %ax
	mov %ax, %ds
	movw $0x1234, FLAG
3:	cli
	hlt
	jmp 3b
ap_end:
	.code64
ok:	.asciz "ap started\n"
m_bad:	.asciz "FAIL the AP did not start\n"
GUEST_LIB
