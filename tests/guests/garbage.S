/* Garbage code: 4 KiB of pseudo-random bytes executed again and again, each
 * exception or watchdog tick (LAPIC timer) starting a new round. The bytes
 * may do anything (rewrite the IDT, page tables, MMIO, halt); corral must
 * end with a clear message or keep running, never crash. */
#include "guest.h"
#define CODE 0x300000
#define ROUNDS 3000
#define TSS 0x20100
	.code64
	.globl _start
_start:
	/* our own GDT with a TSS whose IST1 stack every gate uses, so that
	 * exceptions are delivered whatever the garbage did to RSP */
	mov $TSS, %edi
	mov $13, %ecx
	xor %eax, %eax
	rep stosq
	movq $0x90000, TSS + 0x24
	lgdt gdtr(%rip)
	mov $0x18, %ax
	ltr %ax
	call idt_init
	xor %edi, %edi
1:	lea round(%rip), %rsi
	call idt_set
	mov %edi, %eax
	shl $4, %eax
	movb $1, IDT_BASE + 4(%rax)  /* IST1 */
	inc %edi
	cmp $256, %edi
	jb 1b
	mov $LAPIC, %ebx
	movl $0x1ff, 0xf0(%rbx)
	movl $0xb, 0x3e0(%rbx)
	movl $0x20040, 0x320(%rbx) /* watchdog: periodic, 100 us */
	movl $100000, 0x380(%rbx)
	movabs $0x2545f4914f6cdd1d, %r15
	mov %r15, SCRATCH + 8
round:
	mov $0x80000, %rsp
	mov $LAPIC, %eax
	movl $0, 0xb0(%rax)       /* EOI, in case an interrupt brought us here */
	incq SCRATCH
	cmpq $ROUNDS, SCRATCH
	ja done
	mov SCRATCH + 8, %r15
	mov $CODE, %edi
	mov $512, %ecx
2:	mov %r15, %rax            /* xorshift64 */
	shl $13, %rax
	xor %rax, %r15
	mov %r15, %rax
	shr $7, %rax
	xor %rax, %r15
	mov %r15, %rax
	shl $17, %rax
	xor %rax, %r15
	mov %r15, (%rdi)
	add $8, %rdi
	dec %ecx
	jnz 2b
	mov %r15, SCRATCH + 8
	mov %r15, %rax
	mov %r15, %rbx
	rol $13, %rbx
	mov %rbx, %rcx
	rol $13, %rcx
	mov $0x70000, %rsi
	mov $0x70000, %rdi
	mov $0x60000, %rbp
	sti
	jmp CODE
done:
	cli
	mov $COM1 + 3, %dx        /* the garbage may have reprogrammed the UART */
	mov $3, %al
	out %al, %dx
	mov $COM1 + 4, %dx
	xor %eax, %eax
	out %al, %dx
	PUTS msg
	jmp poweroff
msg:	.asciz "\ngarbage done\n"
	.balign 8
gdt:	.quad 0, 0x00af9b000000ffff, 0x00cf93000000ffff
	.quad 103 | (TSS << 16) | (0x89 << 40), 0
gdtr:	.word 39
	.quad gdt
GUEST_LIB
