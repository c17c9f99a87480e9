/* TLB shoot-down and misaligned atomics across vCPUs (run with --cpus 2
 * or 4, under either --accel-threads mode). The BSP starts every AP in
 * 64-bit mode, then:
 *  1 every vCPU adds 1, ITER times, with LOCK XADD to counters that span a
 *    cache line and a page boundary (4 and 8 bytes), and with a LOCK
 *    CMPXCHG loop to one that spans a page boundary: exact totals
 *  2 vCPU 0 moves a 4 KiB mapping to a new page holding the round's
 *    number, INVLPGs it and sends vCPU 1 an IPI; vCPU 1, which reads the
 *    mapping all the time, INVLPGs it in the IPI's handler and must then
 *    see the new page (a stale TLB entry without the INVLPG would be
 *    allowed; with it, never)
 *  3 vCPU 0 adds 1 to an 8-byte counter across a cache line with LOCK
 *    XADD and with a LOCK CMPXCHG loop, ITER2 times each, while every
 *    other vCPU adds 1 to the counter's upper 4 bytes, aligned, with LOCK
 *    XADD and a LOCK CMPXCHG loop: a LOCK'd operation is atomic against
 *    every other, split or aligned, so none is lost
 *  4 bus lock: vCPU 0 adds 1 with LOCK XADD to the lower half of an
 *    8-byte value across a cache line and of one across a page boundary,
 *    ITER3 times each; every other vCPU k stores 1, 2, 3, ... with PLAIN
 *    byte stores to byte k-1 of both upper halves and reads each back.
 *    A split LOCK'd operation holds off every other access, so a plain
 *    store lands before it (and is kept by its write) or after it: the
 *    read-back always gives the value just stored, and each byte ends as
 *    the last one stored. An operation that is atomic only against other
 *    LOCK'd ones writes a stale byte back over a store made between its
 *    read and its write
 * and prints "cpus N" and one line per phase, "FAIL ..." on a wrong result. */
#include "guest.h"
#define TRAMP 0x8000
#define APS_UP 0x21000
#define PHASE 0x21040
#define DONE 0x21080
#define TROUND 0x210c0
#define TACK 0x21100
#define TRES 0x21140
#define TEND 0x21180
#define MSTART 0x211c0
#define L32 0x2203e	/* 4 bytes across the line at 0x22040 */
#define L64 0x2207c	/* 8 bytes across the line at 0x22080 */
#define P32 0x22ffe	/* 4 bytes across the page boundary at 0x23000 */
#define P64 0x23ffc	/* 8 bytes across the page boundary at 0x24000 */
#define PCAS 0x24ffd	/* 4 bytes across the page boundary at 0x25000 */
#define SPLIT 0x2213c	/* 8 bytes across the line at 0x22140 ... */
#define SPLITHI 0x22140	/* ... whose upper 4 bytes are aligned */
#define BSTART 0x21200
#define BEND 0x21240
#define BBAD 0x21280	/* read-backs that did not give the value just stored */
#define BLAST 0x212c0	/* byte k-1: the last value vCPU k stored */
#define B1 0x221fc	/* 8 bytes across the line at 0x22200 ... */
#define B1HI 0x22200	/* ... whose upper 4 bytes are aligned */
#define B2 0x25ffc	/* 8 bytes across the page boundary at 0x26000 */
#define B2HI 0x26000
#define PDPT 0x40000	/* page tables for VA: PML4[1] -> PDPT -> PD -> PT */
#define PD 0x41000
#define PT 0x42000
#define PAGE0 0x50000
#define PAGE1 0x51000
#define VAIDX 0x5b	/* VA's page-table index: a soft-TLB slot no other page here uses */
#define VA (0x8000000000 + VAIDX * 0x1000)	/* PML4 index 1 */
#define PTE (PT + VAIDX * 8)
#define VEC 0x40
#ifdef SMP_SHORT	/* make check-tsan: a tenth of the rounds */
#define ITER 10000
#define TROUNDS 300
#define ITER2 20000
#define ITER3 10000
#else
#define ITER 100000
#define TROUNDS 3000
#define ITER2 200000
#define ITER3 100000
#endif
#include "smp_bsp.inc"
	.code64
	.globl _start
_start:
	lea ap_start(%rip), %rsi
	mov $TRAMP, %edi
	mov $(ap_end - ap_start), %ecx
	rep movsb
	mov $0x21000, %edi	/* variables and counters start at 0 */
	mov $(0x6000 / 8), %ecx
	xor %eax, %eax
	rep stosq
	mov $PDPT, %edi		/* the tables and both pages too */
	mov $(0x3000 / 8), %ecx
	rep stosq
	mov $PAGE0, %edi
	mov $(0x2000 / 8), %ecx
	rep stosq
	movq $(PDPT | 3), 0x2008	/* PML4[1] */
	movq $(PD | 3), PDPT
	movq $(PT | 3), PD
	movq $(PAGE0 | 3), PTE
	mov %cr3, %rax		/* drop any cached upper levels */
	mov %rax, %cr3
	call idt_init
	GATE VEC, ipi_handler
	SMP_BSP 5
	jmp poweroff

/* AP in 64-bit mode: its own stack, the IDT, its LAPIC on, then the
 * phases as they come */
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
	lidt idtr(%rip)
	movl $0x1ff, 0xf0(%rsi)
	lock incl APS_UP
	mov $1, %r14d
1:	cmp PHASE, %r14d
	je 2f
	pause
	jmp 1b
2:	call phase
	lock incl DONE
	inc %r14d
	cmp $5, %r14d
	jb 1b
3:	cli
	hlt
	jmp 3b

/* phase r14 on vCPU ebx */
phase:
	cmp $1, %r14d
	je misaligned
	cmp $2, %r14d
	je shootdown
	cmp $3, %r14d
	je mixed
	jmp buslock

misaligned:
	mov $ITER, %ecx
1:	mov $1, %eax
	lock xadd %eax, L32
	mov $1, %eax
	lock xadd %rax, L64
	mov $1, %eax
	lock xadd %eax, P32
	mov $1, %eax
	lock xadd %rax, P64
	mov PCAS, %eax
2:	lea 1(%rax), %edx
	lock cmpxchg %edx, PCAS
	jnz 2b
	dec %ecx
	jnz 1b
	ret

/* vCPU 0 moves VA to the other page, which holds the round's number;
 * vCPU 1 reads VA until the IPI, whose handler INVLPGs and reads it
 * again: that read must give the round's number. */
shootdown:
	movabs $VA, %r12
	cmp $1, %ebx
	je 5f
	test %ebx, %ebx
	jnz 9f
	mov $1, %ecx
1:	mov $PAGE0, %edi
	test $1, %ecx
	jz 2f
	mov $PAGE1, %edi
2:	mov %rcx, (%rdi)	/* the new page's contents first */
	or $3, %edi
	mov %rdi, PTE		/* then the mapping */
	invlpg (%r12)
	cmp (%r12), %rcx	/* this vCPU sees it at once */
	je 3f
	lea m_local(%rip), %rsi
	jmp fail
3:	mov %ecx, TROUND
	mov $LAPIC, %esi
	movl $(1 << 24), 0x310(%rsi)	/* to APIC ID 1 */
	movl $(0x4000 | VEC), 0x300(%rsi) /* fixed, assert */
4:	cmp TACK, %ecx
	je 6f
	pause
	jmp 4b
6:	mov TRES, %rax
	cmp %rax, %rcx
	je 7f
	mov %rcx, %rdx
	lea m_stale(%rip), %rsi
	jmp bad
7:	inc %ecx
	cmp $(TROUNDS + 1), %ecx
	jne 1b
	movl $1, TEND
	ret
5:	sti			/* vCPU 1: keep the mapping in the TLB */
8:	mov (%r12), %rax
	pause
	cmpl $0, TEND
	je 8b
	cli
9:	ret

/* vCPU 0 on the split counter, the others on its aligned upper half */
mixed:
	lock incl MSTART	/* all start together: APS_UP + 1 of them */
1:	mov APS_UP, %eax
	inc %eax
	cmp MSTART, %eax
	je 2f
	pause
	jmp 1b
2:	mov $ITER2, %ecx
	test %ebx, %ebx
	jnz 3f
1:	mov $1, %eax
	lock xadd %rax, SPLIT
	mov SPLIT, %rax
2:	lea 1(%rax), %rdx
	lock cmpxchg %rdx, SPLIT
	jnz 2b
	dec %ecx
	jnz 1b
	ret
3:	mov $1, %eax
	lock xadd %eax, SPLITHI
	mov SPLITHI, %eax
4:	lea 1(%rax), %edx
	lock cmpxchg %edx, SPLITHI
	jnz 4b
	dec %ecx
	jnz 3b
	ret

/* vCPU 0 on the split operands, the others plain stores to bytes of
 * their upper halves */
buslock:
	lock incl BSTART	/* all start together */
1:	mov APS_UP, %eax
	inc %eax
	cmp BSTART, %eax
	je 2f
	pause
	jmp 1b
2:	test %ebx, %ebx
	jnz 4f
	mov $ITER3, %ecx
3:	mov $1, %eax
	lock xadd %rax, B1
	mov $1, %eax
	lock xadd %rax, B2
	dec %ecx
	jnz 3b
	movl $1, BEND
	ret
4:	cmp $4, %ebx
	jae 9f
	lea (B1HI - 1)(%rbx), %rdi	/* vCPU k: byte k-1 of each upper half */
	lea (B2HI - 1)(%rbx), %rsi
	xor %ecx, %ecx
6:	inc %cl			/* 1 .. 255 */
	jnz 5f
	inc %cl
5:	mov %cl, (%rdi)		/* a plain store into a split operand */
	call readback
	mov %cl, (%rdi)		/* and into the other (readback swapped them) */
	call readback
	mov %cl, (BLAST - 1)(%rbx)
	cmpl $0, BEND
	je 6b
9:	ret
/* reads back, for a while, the byte just stored at rdi, then at rsi
 * (they alternate: xchg): a stale write-back lands meanwhile */
readback:
	mov $16, %edx
1:	cmp %cl, (%rdi)
	jne 2f
	dec %edx
	jnz 1b
	xchg %rdi, %rsi
	ret
2:	lock incl BBAD
	xchg %rdi, %rsi
	ret

ipi_handler:
	push %rax
	push %rcx
	push %rsi
	mov TROUND, %ecx
	invlpg (%r12)
	mov (%r12), %rax
	mov %rax, TRES
	mov %ecx, TACK
	mov $LAPIC, %esi
	movl $0, 0xb0(%rsi)	/* EOI */
	pop %rsi
	pop %rcx
	pop %rax
	iretq

/* after phase r14 (on the BSP, every vCPU done): rax what is, rdx what
 * should be */
check:
	mov %r15, %rdx
	imul $ITER, %rdx	/* n * ITER */
	cmp $1, %r14d
	jne 1f
	lea m_l32(%rip), %rsi
	mov L32, %eax
	cmp %rax, %rdx
	jne bad
	lea m_l64(%rip), %rsi
	mov L64, %rax
	cmp %rax, %rdx
	jne bad
	lea m_p32(%rip), %rsi
	mov P32, %eax
	cmp %rax, %rdx
	jne bad
	lea m_p64(%rip), %rsi
	mov P64, %rax
	cmp %rax, %rdx
	jne bad
	lea m_pcas(%rip), %rsi
	mov PCAS, %eax
	cmp %rax, %rdx
	jne bad
	PUTS m_misok
	ret
1:	cmp $2, %r14d
	jne 2f
	PUTS m_tlbok
	ret
2:	cmp $3, %r14d
	jne 3f
	lea -1(%r15), %rdx	/* (n - 1) * 2 * ITER2 in the upper half */
	imul $(2 * ITER2), %rdx
	shl $32, %rdx
	or $(2 * ITER2), %rdx	/* 2 * ITER2 in the lower */
	lea m_mixed(%rip), %rsi
	mov SPLIT, %rax
	cmp %rax, %rdx
	jne bad
	PUTS m_mixok
	ret
3:	lea m_bbad(%rip), %rsi
	mov BBAD, %eax
	xor %edx, %edx
	cmp %rax, %rdx
	jne bad
	mov $ITER3, %edx
	lea m_b1lo(%rip), %rsi
	mov B1, %eax
	cmp %rax, %rdx
	jne bad
	lea m_b2lo(%rip), %rsi
	mov B2, %eax
	cmp %rax, %rdx
	jne bad
	lea m_b1hi(%rip), %rsi
	mov B1HI, %eax
	mov BLAST, %edx
	cmp %rax, %rdx
	jne bad
	lea m_b2hi(%rip), %rsi
	mov B2HI, %eax
	cmp %rax, %rdx
	jne bad
	PUTS m_busok
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
m_misok: .asciz "misaligned atomics ok\n"
m_tlbok: .asciz "tlb shoot-down ok\n"
m_mixok: .asciz "split and aligned atomics ok\n"
m_mixed: .asciz "lock xadd/cmpxchg across a line beside aligned ones on its half: total "
m_busok: .asciz "bus lock ok\n"
m_bbad:	.asciz "plain stores overwritten by a split lock xadd (read back stale): "
m_b1lo:	.asciz "lock xadd across a line beside plain stores: total "
m_b2lo:	.asciz "lock xadd across a page beside plain stores: total "
m_b1hi:	.asciz "split lock xadd across a line wrote back a stale upper half: "
m_b2hi:	.asciz "split lock xadd across a page wrote back a stale upper half: "
m_ok:	.asciz "smp tlb ok\n"
m_l32:	.asciz "lock xadd across a line (4 bytes) total "
m_l64:	.asciz "lock xadd across a line (8 bytes) total "
m_p32:	.asciz "lock xadd across a page (4 bytes) total "
m_p64:	.asciz "lock xadd across a page (8 bytes) total "
m_pcas:	.asciz "lock cmpxchg loop across a page total "
m_local: .asciz "vCPU 0 does not see its own new mapping after INVLPG\n"
m_stale: .asciz "vCPU 1 read a stale mapping after INVLPG in the IPI handler: "
m_want:	.asciz ", want "
GUEST_LIB
