/* The host syscall that a guest signal can always interrupt (signal.c).
 *
 * long sigwin_syscall(const int *ready, long nr, long a1, ..., long a6)
 *
 * Tests *ready and, if it is zero, makes host syscall nr; otherwise returns
 * -SIGWIN_ERESTART without making it. host_handler sets *ready before it
 * looks at the interrupted PC: if that PC is in [sigwin_start, sigwin_end)
 * (the test, or the syscall instruction not yet executed) it moves the PC
 * to sigwin_bail, so a signal that comes after the test cannot leave the
 * thread asleep in the host kernel. From the syscall instruction on, the
 * host kernel interrupts the sleep itself (EINTR: no SA_RESTART). */
#include "process/sigwin.h"

#if defined(__x86_64__)

	.text
	.globl	sigwin_syscall, sigwin_start, sigwin_end, sigwin_bail
	.hidden	sigwin_syscall, sigwin_start, sigwin_end, sigwin_bail
	.type	sigwin_syscall, @function
	.p2align 4
sigwin_syscall:
	/* rdi ready, rsi nr, rdx rcx r8 r9 a1..a4, 8(%rsp) 16(%rsp) a5 a6;
	 * the kernel takes nr in rax, arguments in rdi rsi rdx r10 r8 r9
	 * and clobbers rcx and r11. */
	.cfi_startproc
	mov	%rdi, %r11
	mov	%rsi, %rax
	mov	%rdx, %rdi
	mov	%rcx, %rsi
	mov	%r8, %rdx
	mov	%r9, %r10
	mov	8(%rsp), %r8
	mov	16(%rsp), %r9
sigwin_start:
	cmpl	$0, (%r11)
	jne	sigwin_bail
	syscall
sigwin_end:
	ret
sigwin_bail:
	mov	$-SIGWIN_ERESTART, %rax
	ret
	.cfi_endproc
	.size	sigwin_syscall, . - sigwin_syscall

#elif defined(__aarch64__)

	.text
	.globl	sigwin_syscall, sigwin_start, sigwin_end, sigwin_bail
	.hidden	sigwin_syscall, sigwin_start, sigwin_end, sigwin_bail
	.type	sigwin_syscall, %function
	.p2align 4
sigwin_syscall:
	/* x0 ready, x1 nr, x2..x7 a1..a6; the kernel takes nr in x8 and
	 * arguments in x0..x5 */
	.cfi_startproc
	mov	x9, x0
	mov	x8, x1
	mov	x0, x2
	mov	x1, x3
	mov	x2, x4
	mov	x3, x5
	mov	x4, x6
	mov	x5, x7
sigwin_start:
	ldr	w10, [x9]
	cbnz	w10, sigwin_bail
	svc	#0
sigwin_end:
	ret
sigwin_bail:
	mov	x0, #-SIGWIN_ERESTART
	ret
	.cfi_endproc
	.size	sigwin_syscall, . - sigwin_syscall

#endif

	.section .note.GNU-stack, "", %progbits
