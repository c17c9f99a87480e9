/* Engine hand-over: state that must survive a move between engines while
 * the guest runs (GPRs and flags in a running checksum, XMM registers,
 * SYSCALL and GS MSRs, the IDT and a LAPIC timer that keeps interrupting).
 * It prints a line per step, so a hand-over part-way through shows as the
 * same serial output as an uninterrupted run. XMM moves only through
 * MOVDQU, which software layers behind /dev/kvm can emulate (x87 and the
 * rest of the state are checked by tests/unit/t_kvm_state.c). */
#include "guest.h"
#define STEPS 40
	.code64
	.globl _start
_start:
	call idt_init
	GATE 0x40, tick
	mov $0xc0000082, %ecx       /* LSTAR: the SYSCALL entry */
	lea sys_entry(%rip), %rax
	mov %rax, %rdx
	shr $32, %rdx
	wrmsr
	mov $0xc0000081, %ecx       /* STAR: kernel CS 0x08 */
	xor %eax, %eax
	mov $0x00100008, %edx
	wrmsr
	mov $0xc0000084, %ecx       /* SFMASK: IF */
	mov $0x200, %eax
	xor %edx, %edx
	wrmsr
	mov $0xc0000102, %ecx       /* KERNEL_GS_BASE */
	mov $0x12345678, %eax
	mov $0x00007abc, %edx
	wrmsr
	movdqu xmm_a(%rip), %xmm0
	movdqu xmm_b(%rip), %xmm1
	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)
	movl $0xb, 0x3e0(%rbx)
	movl $0x20040, 0x320(%rbx)  /* periodic, vector 0x40 */
	movl $1000000, 0x380(%rbx)  /* 1 ms */
	mov $1, %r12                /* checksum */
	xor %r13d, %r13d            /* step */
step:
	inc %r13
	imul $0x5851f42d, %r12, %r12
	add %r13, %r12
	adc $0x55, %r12
	rol $7, %r12
	cmp $20, %r13
	jne 4f
	movdqu xmm_c(%rip), %xmm1   /* half-way: new contents */
4:
	PUTS m_step
	mov %r13, %rax
	call puthex
	PUTS m_sum
	mov %r12, %rax
	call puthex
	PUTS m_nl
	test $7, %r13               /* every 8th step: wait for a timer tick */
	jnz 2f
	movq $0, SCRATCH
	sti
1:	hlt
	cmpq $1, SCRATCH
	jb 1b
	cli
2:	cmp $STEPS, %r13
	jb step
	movdqu %xmm0, SCRATCH + 16
	movdqu %xmm1, SCRATCH + 32
	PUTS m_xmm
	mov SCRATCH + 24, %rax
	call puthex
	mov SCRATCH + 16, %rax
	call puthex
	PUTS m_xmm1
	mov SCRATCH + 40, %rax
	call puthex
	mov SCRATCH + 32, %rax
	call puthex
	PUTS m_kgs
	swapgs
	mov $0xc0000101, %ecx       /* GS_BASE: KERNEL_GS_BASE after SWAPGS */
	rdmsr
	shl $32, %rdx
	or %rdx, %rax
	call puthex
	swapgs
	PUTS m_nl
	lea after(%rip), %r14
	syscall
after:	PUTS m_nosys
	jmp poweroff
sys_entry:
	cmp %r14, %rcx              /* SYSCALL saved the return RIP */
	jne 3f
	PUTS m_sys
	jmp poweroff
3:	PUTS m_rcx
	jmp poweroff
tick:
	push %rax
	incq SCRATCH
	mov $LAPIC, %eax
	movl $0, 0xb0(%rax)
	pop %rax
	iretq
	.balign 16
xmm_a:	.quad 0x0123456789abcdef, 0xfedcba9876543210
xmm_b:	.quad 0x1111111111111111, 0x2222222222222222
xmm_c:	.quad 0x3333333333333333, 0x4444444444444444
m_step:	.asciz "step "
m_sum:	.asciz " sum "
m_nl:	.asciz "\n"
m_xmm:	.asciz "xmm0 "
m_xmm1:	.asciz " xmm1 "
m_kgs:	.asciz " kgs "
m_sys:	.asciz "handover ok\n"
m_nosys: .asciz "FAIL syscall did not enter LSTAR\n"
m_rcx:	.asciz "FAIL syscall rcx\n"
GUEST_LIB
