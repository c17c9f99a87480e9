/* Tiny test guests: shared definitions and a small library. A guest is a
 * flat binary that `corral run --flat` loads at 1 MiB and enters in 64-bit
 * mode: GDT at 0x1000 (0x08 code, 0x10 data), the first 4 GiB identity-
 * mapped with 2 MiB pages (PML4 at 0x2000), RSP 0x80000, interrupts off.
 * Each guest starts with _start and ends with GUEST_LIB. It reports on
 * COM1 and powers off through ACPI (exit status 0).
 * (Assembler macros, not C: kept out of clang-format.) */
/* clang-format off */

#define COM1 0x3f8
#define PM1A_CNT 0x604
#define S5_SLP 0x3400      /* SLP_TYP 5 | SLP_EN */
#define IDT_BASE 0x10000
#define LAPIC 0xfee00000
#define IOAPIC 0xfec00000
#define SCRATCH 0x20000    /* guests' variables */

/* print the NUL-terminated string at label */
.macro PUTS label
	lea \label(%rip), %rsi
	call puts
.endm

/* install handler at vector */
.macro GATE vector, handler
	mov $\vector, %edi
	lea \handler(%rip), %rsi
	call idt_set
.endm

#define GUEST_LIB                                                                   \
puts:                                                                               \
	push %rax; push %rdx;                                                           \
1:	lodsb;                                                                          \
	test %al, %al;                                                                  \
	jz 2f;                                                                          \
	mov $COM1, %dx;                                                                 \
	out %al, %dx;                                                                   \
	jmp 1b;                                                                         \
2:	pop %rdx; pop %rax;                                                             \
	ret;                                                                            \
/* print rax as 16 hex digits */                                                    \
puthex:                                                                             \
	push %rax; push %rcx; push %rdx; push %rbx;                                     \
	mov %rax, %rbx;                                                                 \
	mov $16, %ecx;                                                                  \
3:	rol $4, %rbx;                                                                   \
	mov %ebx, %eax;                                                                 \
	and $15, %eax;                                                                  \
	cmp $10, %eax;                                                                  \
	jb 4f;                                                                          \
	add $('a' - '0' - 10), %eax;                                                    \
4:	add $'0', %eax;                                                                 \
	mov $COM1, %dx;                                                                 \
	out %al, %dx;                                                                   \
	dec %ecx;                                                                       \
	jnz 3b;                                                                         \
	pop %rbx; pop %rdx; pop %rcx; pop %rax;                                         \
	ret;                                                                            \
poweroff:                                                                           \
	mov $PM1A_CNT, %dx;                                                             \
	mov $S5_SLP, %ax;                                                               \
	out %ax, %dx;                                                                   \
5:	cli; hlt; jmp 5b;                                                               \
/* fail: print "FAIL " and the string at rsi, power off */                          \
fail:                                                                               \
	push %rsi;                                                                      \
	lea fail_msg(%rip), %rsi;                                                       \
	call puts;                                                                      \
	pop %rsi;                                                                       \
	call puts;                                                                      \
	jmp poweroff;                                                                   \
fail_msg: .asciz "FAIL ";                                                           \
/* an empty IDT (all vectors not present) of 256 gates at IDT_BASE */               \
idt_init:                                                                           \
	push %rdi; push %rcx; push %rax;                                                \
	mov $IDT_BASE, %edi;                                                            \
	mov $512, %ecx;                                                                 \
	xor %eax, %eax;                                                                 \
	rep stosq;                                                                      \
	lidt idtr(%rip);                                                                \
	pop %rax; pop %rcx; pop %rdi;                                                   \
	ret;                                                                            \
/* idt_set: edi = vector, rsi = handler: a 64-bit interrupt gate, CS 0x08 */        \
idt_set:                                                                            \
	push %rax; push %rdx; push %rdi;                                                \
	and $255, %edi;                                                                 \
	shl $4, %edi;                                                                   \
	add $IDT_BASE, %edi;                                                            \
	mov %rsi, %rax;                                                                 \
	and $0xffff, %eax;                                                              \
	mov %rsi, %rdx;                                                                 \
	shr $16, %rdx;                                                                  \
	and $0xffff, %edx;                                                              \
	shl $48, %rdx;                                                                  \
	or %rdx, %rax;                                                                  \
	mov $0x00008e0000080000, %rdx;                                                  \
	or %rdx, %rax;                                                                  \
	mov %rax, (%rdi);                                                               \
	mov %rsi, %rax;                                                                 \
	shr $32, %rax;                                                                  \
	mov %rax, 8(%rdi);                                                              \
	pop %rdi; pop %rdx; pop %rax;                                                   \
	ret;                                                                            \
	.balign 8;                                                                      \
idtr:	.word 4095; .quad IDT_BASE
