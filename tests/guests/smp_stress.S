/* Atomics, ordering and cross-modifying code across vCPUs (run with
 * --cpus 2 or 4, under either --accel-threads mode): the BSP starts every
 * AP in 64-bit mode, then all of them run phases in step:
 *  1 LOCK INC, LOCK XADD and a CMPXCHG loop on shared counters: exact totals
 *  2 an XCHG spinlock around a plain (non-atomic) counter: exact total
 *  3 message passing (x86 forbids r1 = new flag, r2 = old data)
 *  4 code written by the BSP and run by vCPU 1, many rounds
 *  5 a failing CMPXCHG16B must not undo vCPU 1's plain stores to its line
 * and prints "cpus N" and one line per phase, "FAIL ..." on a wrong result.
 * Built with FOREVER (smp_busy.S), every vCPU then spins until the VM is
 * stopped from outside, for tests that pause running vCPU threads. */
#include "guest.h"
#define TRAMP 0x8000
#define APS_UP 0x20000
#define PHASE 0x20040
#define DONE 0x20080
#define C64 0x200c0
#define C32 0x20100
#define CAS 0x20140
#define SPIN 0x20180
#define PLAIN 0x201c0
#define MPDATA 0x400000	/* MPN quadwords */
#define MPFLAG 0x600000	/* MPN quadwords */
#define MPBAD 0x20280
#define CFLAG 0x202c0
#define CACK 0x20300
#define CRES 0x20340
#define DW 0x20380	/* 16 bytes, CMPXCHG16B's target */
#define DWBAD 0x203c0
#define DWSTOP 0x20400
#define CODEBUF 0x30000
#ifdef SMP_SHORT	/* make check-tsan: a tenth of the rounds */
#define ITER 10000
#define MPN 20000
#define CROUNDS 300
#define DWN 30000
#else
#define ITER 100000
#define MPN 200000
#define CROUNDS 3000
#define DWN 300000
#endif
#include "smp_bsp.inc"
	.code64
	.globl _start
_start:
	lea ap_start(%rip), %rsi
	mov $TRAMP, %edi
	mov $(ap_end - ap_start), %ecx
	rep movsb
	mov $SCRATCH, %edi	/* every shared variable starts at 0 */
	mov $(0x500 / 8), %ecx
	xor %eax, %eax
	rep stosq
	mov $MPDATA, %edi
	mov $(0x400000 / 8), %ecx
	rep stosq
	SMP_BSP 6
#ifdef FOREVER
9:	pause			/* busy until stopped from outside */
	jmp 9b
#endif
	jmp poweroff

/* AP in 64-bit mode: its own stack, then the phases as they come */
ap64:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $LAPIC, %esi
	mov 0x20(%rsi), %ebx
	shr $24, %ebx		/* ebx: APIC ID = vCPU number */
	mov %ebx, %eax
	shl $14, %eax
	mov $0x80000, %esp
	sub %eax, %esp
	lock incl APS_UP
	mov $1, %r14d
1:	cmp PHASE, %r14d
	je 2f
	pause
	jmp 1b
2:	call phase
	lock incl DONE
	inc %r14d
	cmp $6, %r14d
	jb 1b
#ifdef FOREVER
3:	pause
	jmp 3b
#else
3:	cli
	hlt
	jmp 3b
#endif

/* phase r14 on vCPU ebx */
phase:
	cmp $1, %r14d
	je atomics
	cmp $2, %r14d
	je spinlock
	cmp $3, %r14d
	je msgpass
	cmp $4, %r14d
	je xcode
	jmp dwcas

atomics:
	mov $ITER, %ecx
1:	lock incq C64
	mov $1, %eax
	lock xadd %eax, C32
	mov CAS, %eax
2:	lea 1(%rax), %edx
	lock cmpxchg %edx, CAS
	jnz 2b
	dec %ecx
	jnz 1b
	ret

spinlock:
	mov $ITER, %ecx
1:	mov $1, %eax
	xchg %eax, SPIN
	test %eax, %eax
	jz 3f
2:	pause
	cmpl $0, SPIN
	jne 2b
	jmp 1b
3:	mov PLAIN, %rax		/* a plain read-modify-write, safe only under the lock */
	add $1, %rax
	mov %rax, PLAIN
	movl $0, SPIN
	dec %ecx
	jnz 1b
	ret

/* vCPU 0 writes data[i], then flag[i]; vCPU 1 waits for flag[i], then
 * reads data[i]: x86 forbids it to see the flag without the data. */
msgpass:
	cmp $1, %ebx
	je 2f
	test %ebx, %ebx
	jnz 4f
	xor %eax, %eax
1:	movq $1, MPDATA(,%rax,8)
	movq $1, MPFLAG(,%rax,8)
	inc %eax
	cmp $MPN, %eax
	jne 1b
	ret
2:	xor %eax, %eax
3:	cmpq $0, MPFLAG(,%rax,8)
	je 3b
	cmpq $0, MPDATA(,%rax,8)
	jne 5f
	lock incl MPBAD
5:	inc %eax
	cmp $MPN, %eax
	jne 3b
4:	ret

/* vCPU 0 writes "mov $imm, %eax; ret" at CODEBUF with a new imm each
 * round; vCPU 1 runs it and reports what it got. */
xcode:
	cmp $1, %ebx
	je 3f
	test %ebx, %ebx
	jnz 5f
	mov $1, %ecx
1:	imul $0x9e3779b1, %ecx, %eax	/* imm of round ecx */
	mov %rax, %rdx
	shl $8, %rdx
	or $0xb8, %rdx
	mov $0xc3, %esi
	shl $40, %rsi
	or %rsi, %rdx
	mov %rdx, CODEBUF
	mov %ecx, CFLAG
2:	cmp CACK, %ecx
	je 6f
	pause
	jmp 2b
6:	cmp CRES, %eax
	je 7f
	lea m_xcode(%rip), %rsi
	jmp fail
7:	inc %ecx
	cmp $(CROUNDS + 1), %ecx
	jne 1b
	ret
3:	mov $1, %ecx
4:	cmp CFLAG, %ecx
	je 8f
	pause
	jmp 4b
8:	mov $CODEBUF, %eax
	call *%rax
	mov %eax, CRES
	mov %ecx, CACK
	inc %ecx
	cmp $(CROUNDS + 1), %ecx
	jne 4b
5:	ret

/* vCPU 0: CMPXCHG16B that always fails (it expects an odd low half, the
 * low half stays 0); vCPU 1: stores to the high half and reads them back. */
dwcas:
	cmp $1, %ebx
	je 3f
	test %ebx, %ebx
	jnz 5f
1:	mov $1, %eax
	xor %edx, %edx
	xor %ebx, %ebx
	xor %ecx, %ecx
	lock cmpxchg16b DW
	cmpl $0, DWSTOP
	je 1b
	xor %ebx, %ebx
	ret
3:	mov $1, %ecx
4:	mov %rcx, DW + 8
	cmp DW + 8, %rcx
	je 6f
	lock incl DWBAD
6:	inc %ecx
	cmp $DWN, %ecx
	jne 4b
	movl $1, DWSTOP
5:	ret

/* after phase r14 (on the BSP, every vCPU done): rax what is, rdx what
 * should be */
check:
	mov %r15, %rdx
	imul $ITER, %rdx	/* n * ITER */
	cmp $1, %r14d
	jne 1f
	lea m_c64(%rip), %rsi
	mov C64, %rax
	cmp %rax, %rdx
	jne bad
	lea m_c32(%rip), %rsi
	mov C32, %eax
	cmp %rax, %rdx
	jne bad
	lea m_cas(%rip), %rsi
	mov CAS, %eax
	cmp %rax, %rdx
	jne bad
	PUTS m_atomics
	ret
1:	cmp $2, %r14d
	jne 2f
	lea m_plain(%rip), %rsi
	mov PLAIN, %rax
	cmp %rax, %rdx
	jne bad
	PUTS m_spin
	ret
2:	xor %edx, %edx
	cmp $3, %r14d
	jne 3f
	lea m_mp(%rip), %rsi
	mov MPBAD, %eax
	test %eax, %eax
	jnz bad
	PUTS m_mpok
	ret
3:	cmp $4, %r14d
	jne 4f
	PUTS m_xok
	ret
4:	lea m_dw(%rip), %rsi
	mov DWBAD, %eax
	test %eax, %eax
	jnz bad
	PUTS m_dwok
	ret
/* FAIL, the message at rsi, then "rax, want rdx" */
bad:
	push %rsi
	lea fail_msg(%rip), %rsi
	call puts
	pop %rsi
	call puts
	call puthex
	PUTS m_want
	mov %rdx, %rax
	call puthex
	PUTS m_nl
	jmp poweroff

	.code16
#include "ap_start.inc"
	.code64
m_cpus:	.asciz "cpus "
m_nl:	.asciz "\n"
m_noap:	.asciz "FAIL no AP started\n"
m_atomics: .asciz "atomics ok\n"
m_spin:	.asciz "spinlock ok\n"
m_mpok:	.asciz "message passing ok\n"
m_xok:	.asciz "cross-modifying code ok\n"
m_dwok:	.asciz "cmpxchg16b ok\n"
m_ok:	.asciz "smp stress ok\n"
m_c64:	.asciz "lock inc total "
m_c32:	.asciz "lock xadd total "
m_cas:	.asciz "cmpxchg loop total "
m_plain: .asciz "spinlock-protected total "
m_mp:	.asciz "message passing: data older than its flag, times "
m_dw:	.asciz "cmpxchg16b undid another vCPU's store, times "
m_xcode: .asciz "vCPU 1 ran stale code\n"
m_want:	.asciz ", want "
GUEST_LIB
