/* REP string instructions are interruptible between iterations, as on
 * hardware. First a large copy in RAM (8 MiB with REP STOSQ, MOVSQ and
 * REPE CMPSQ: many executions of each, all still exact). Then each of
 * LODS, CMPS, SCAS, OUTS, INS, MOVS and STOS runs with 32-bit addressing and
 * ECX = 2^32 - 1 over a hole in the physical address space (no RAM, no
 * device: reads give all ones, writes go nowhere), an instruction that
 * would take minutes: a LAPIC timer 2 ms away must interrupt it, with the
 * saved RIP at the instruction and ECX partly counted down. The handler
 * resumes at the next case. Run with a thread per vCPU (--cpus 2: the
 * timer runs on host time); with one thread the clock counts instructions,
 * and the guest stays in the first LODS until corral is stopped. */
#include "guest.h"
#define HOLE 0x80000000
#define PORT 0x4f0          /* no device */
#define SRC 0x400000
#define DST 0xc00000
#define WANT SCRATCH        /* RIP the interrupt must find */
#define NEXT (SCRATCH + 8)  /* where the handler resumes */
#define DONE (SCRATCH + 16) /* cases interrupted */
	.code64
	.globl _start
_start:
	call idt_init
	GATE 0x40, tick
	movq $0, DONE
	/* exact in RAM: fill, copy, compare, 1 Mi elements each */
	mov $SRC, %edi
	mov $0x100000, %ecx
	movabs $0x0123456789abcdef, %rax
	cld
	rep stosq
	test %rcx, %rcx
	jnz bad_copy
	cmp $SRC + 0x800000, %rdi
	jne bad_copy
	mov $SRC, %esi
	mov $DST, %edi
	mov $0x100000, %ecx
	rep movsq
	test %rcx, %rcx
	jnz bad_copy
	cmp $DST + 0x800000, %rdi
	jne bad_copy
	movb $0x5a, DST + 0x7ffff8 /* the last element differs */
	mov $SRC, %esi
	mov $DST, %edi
	mov $0x100000, %ecx
	repe cmpsq
	jz bad_copy
	test %rcx, %rcx
	jnz bad_copy
	cmp $DST + 0x800000, %rdi
	jne bad_copy
	PUTS m_copy

	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)   /* software enable, spurious vector 0xff */
	movl $0xb, 0x3e0(%rbx)    /* divide by 1 */
	movl $0x00040, 0x320(%rbx) /* one-shot, vector 0x40 */

	lea c_lods(%rip), %rax
	lea n_lods(%rip), %rdx
	call arm
	mov $HOLE, %esi
c_lods:	.byte 0x67, 0xf3, 0xac    /* addr32 rep lodsb */
	jmp not_interrupted
n_lods:
	lea c_cmps(%rip), %rax
	lea n_cmps(%rip), %rdx
	call arm
	mov $HOLE, %esi
	mov $HOLE + 0x100000, %edi
c_cmps:	.byte 0x67, 0xf3, 0xa6    /* addr32 repe cmpsb: all ones, equal */
	jmp not_interrupted
n_cmps:
	lea c_scas(%rip), %rax
	lea n_scas(%rip), %rdx
	call arm
	mov $HOLE, %edi
	mov (%rdi), %al           /* what every byte there reads as */
c_scas:	.byte 0x67, 0xf3, 0xae    /* addr32 repe scasb */
	jmp not_interrupted
n_scas:
	lea c_outs(%rip), %rax
	lea n_outs(%rip), %rdx
	call arm
	mov $HOLE, %esi
	mov $PORT, %dx
c_outs:	.byte 0x67, 0xf3, 0x6e    /* addr32 rep outsb */
	jmp not_interrupted
n_outs:
	lea c_ins(%rip), %rax
	lea n_ins(%rip), %rdx
	call arm
	mov $HOLE, %edi
	mov $PORT, %dx
c_ins:	.byte 0x67, 0xf3, 0x6c    /* addr32 rep insb */
	jmp not_interrupted
n_ins:
	lea c_movs(%rip), %rax
	lea n_movs(%rip), %rdx
	call arm
	mov $HOLE, %esi
	mov $HOLE + 0x1000000, %edi
c_movs:	.byte 0x67, 0xf3, 0xa4    /* addr32 rep movsb */
	jmp not_interrupted
n_movs:
	lea c_stos(%rip), %rax
	lea n_stos(%rip), %rdx
	call arm
	mov $HOLE, %edi
c_stos:	.byte 0x67, 0xf3, 0xaa    /* addr32 rep stosb */
	jmp not_interrupted
n_stos:
	cmpq $7, DONE
	jne not_interrupted
	PUTS m_ok
	jmp poweroff

/* arm: rax = the instruction the interrupt must find, rdx = where to go
 * on; sets ECX = 2^32 - 1, starts the timer (2 ms) and enables interrupts */
arm:
	cli
	mov %rax, WANT
	mov %rdx, NEXT
	mov $0xffffffff, %ecx
	movl $2000000, 0x380(%rbx)
	sti
	ret

tick:
	mov (%rsp), %rax
	cmp WANT, %rax
	jne bad_rip
	cmp $0xffffffff, %ecx     /* some iterations done, not all */
	je bad_count
	test %ecx, %ecx
	jz bad_count
	incq DONE
	mov NEXT, %rax
	mov %rax, (%rsp)
	andq $~0x200, 16(%rsp)    /* resume with interrupts off */
	mov $LAPIC, %eax
	movl $0, 0xb0(%rax)       /* EOI */
	iretq

bad_copy: lea m_copy_bad(%rip), %rsi
	jmp fail
bad_rip: lea m_rip(%rip), %rsi
	jmp fail
bad_count: lea m_count(%rip), %rsi
	jmp fail
not_interrupted: lea m_not(%rip), %rsi
	jmp fail
m_copy:	.asciz "rep copy ok\n"
m_ok:	.asciz "rep irq ok\n"
m_copy_bad: .asciz "rep copy\n"
m_rip:	.asciz "interrupted elsewhere than at the REP instruction\n"
m_count: .asciz "ECX not partly counted down\n"
m_not:	.asciz "a REP instruction ended before the timer\n"
GUEST_LIB
