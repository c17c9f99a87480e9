/* Multiboot test kernels: the Multiboot header and the 32-bit code every
 * kernel of tests/guests/mb shares. The kernel checks the entry state the
 * Multiboot specification promises, prints parts of the information
 * structure on COM1 and ends through isa-debug-exit (ports 0xf4-0xf7):
 * value 0x10 (exit status 33) when the entry state was right, 0x7f (255)
 * when not. tests/guests/t_multiboot.sh checks the output and status.
 * (Assembler macros, not C: kept out of clang-format.) */
/* clang-format off */

#define COM1 0x3f8
#define DEBUG_EXIT 0xf4
#define EXIT_OK 0x10
#define EXIT_BAD 0x7f
#define MB_MAGIC 0x1badb002
#define MB_LOADER_MAGIC 0x2badb002

/* the header: magic, flags, checksum (then the a.out fields if any) */
.macro MB_HEADER flags
	.balign 4
mb_header:
	.long MB_MAGIC
	.long \flags
	.long -(MB_MAGIC + \flags)
.endm

/* print the NUL-terminated string at label */
.macro PUTS label
	mov $\label, %esi
	call puts
.endm

/* print label, then the 32-bit value at offset off of the information
 * structure (EBX) in hex, then a newline */
.macro FIELD label, off
	PUTS \label
	mov \off(%ebx), %eax
	call hex32
	call newline
.endm

#define MB_CODE                                                              \
entry:                                                                       \
	cld;                                                                 \
	mov $0x7000, %esp;                                                   \
	cmp $MB_LOADER_MAGIC, %eax;                                          \
	jne bad;                                                             \
	/* paging off, protected mode on, interrupts off */                  \
	mov %cr0, %eax;                                                      \
	and $0x80000001, %eax;                                               \
	cmp $1, %eax;                                                        \
	jne bad;                                                             \
	pushf;                                                               \
	pop %eax;                                                            \
	test $0x200, %eax;                                                   \
	jnz bad;                                                             \
	/* flat segments: DS and CS see the same bytes */                    \
	mov %ds, %ax;                                                        \
	mov %ax, %es;                                                        \
	PUTS s_hello;                                                        \
	FIELD s_flags, 0;                                                    \
	FIELD s_mem_lower, 4;                                                \
	FIELD s_mem_upper, 8;                                                \
	testl $4, 0(%ebx);                                                   \
	jz 1f;                                                               \
	PUTS s_cmdline;                                                      \
	mov 16(%ebx), %esi;                                                  \
	call puts;                                                           \
	call newline;                                                        \
1:	testl $0x200, 0(%ebx);                                               \
	jz 1f;                                                               \
	PUTS s_loader;                                                       \
	mov 64(%ebx), %esi;                                                  \
	call puts;                                                           \
	call newline;                                                        \
1:	testl $0x40, 0(%ebx);                                                \
	jz 1f;                                                               \
	call mmap_print;                                                     \
1:	testl $8, 0(%ebx);                                                   \
	jz 1f;                                                               \
	FIELD s_mods, 20;                                                    \
	call mods_print;                                                     \
1:	mov $EXIT_OK, %eax;                                                  \
	jmp finish;                                                          \
bad:	mov $EXIT_BAD, %eax;                                                 \
finish:	mov $DEBUG_EXIT, %dx;                                                \
	out %eax, %dx;                                                       \
2:	hlt;                                                                 \
	jmp 2b

/* the library: puts (ESI), putc (AL), hex32 (EAX), newline, the memory
 * map and module printers; they keep EBX */
#define MB_LIB                                                               \
putc:	push %edx;                                                           \
	push %eax;                                                           \
	mov $COM1 + 5, %dx;                                                  \
1:	in %dx, %al;                                                         \
	test $0x20, %al;                                                     \
	jz 1b;                                                               \
	pop %eax;                                                            \
	mov $COM1, %dx;                                                      \
	out %al, %dx;                                                        \
	pop %edx;                                                            \
	ret;                                                                 \
puts:	lodsb;                                                               \
	test %al, %al;                                                       \
	jz 1f;                                                               \
	call putc;                                                           \
	jmp puts;                                                            \
1:	ret;                                                                 \
newline: mov $'\n', %al;                                                     \
	jmp putc;                                                            \
space:	mov $' ', %al;                                                       \
	jmp putc;                                                            \
hex32:	push %ecx;                                                           \
	push %edx;                                                           \
	mov %eax, %edx;                                                      \
	mov $8, %ecx;                                                        \
1:	rol $4, %edx;                                                        \
	mov %edx, %eax;                                                      \
	and $15, %eax;                                                       \
	mov hexdigits(%eax), %al;                                            \
	call putc;                                                           \
	loop 1b;                                                             \
	pop %edx;                                                            \
	pop %ecx;                                                            \
	ret;                                                                 \
/* "mmap BASE LENGTH TYPE" per entry, 64-bit values as two hex32 */      \
mmap_print:                                                                  \
	push %edi;                                                           \
	mov 48(%ebx), %edi;                                                  \
	mov 44(%ebx), %ecx;                                                  \
	add %edi, %ecx;                                                      \
1:	cmp %ecx, %edi;                                                      \
	jae 2f;                                                              \
	push %ecx;                                                           \
	PUTS s_mmap;                                                         \
	mov 8(%edi), %eax;                                                   \
	call hex32;                                                          \
	mov 4(%edi), %eax;                                                   \
	call hex32;                                                          \
	call space;                                                          \
	mov 16(%edi), %eax;                                                  \
	call hex32;                                                          \
	mov 12(%edi), %eax;                                                  \
	call hex32;                                                          \
	call space;                                                          \
	mov 20(%edi), %eax;                                                  \
	call hex32;                                                          \
	call newline;                                                        \
	pop %ecx;                                                            \
	mov (%edi), %eax;                                                    \
	lea 4(%edi, %eax), %edi;                                             \
	jmp 1b;                                                              \
2:	pop %edi;                                                            \
	ret;                                                                 \
/* "mod SIZE STRING: FIRST-BYTES" per module (up to 16 printable bytes) */ \
mods_print:                                                                  \
	push %edi;                                                           \
	mov 24(%ebx), %edi;                                                  \
	mov 20(%ebx), %ecx;                                                  \
1:	test %ecx, %ecx;                                                     \
	jz 4f;                                                               \
	push %ecx;                                                           \
	PUTS s_mod;                                                          \
	mov 4(%edi), %eax;                                                   \
	sub 0(%edi), %eax;                                                   \
	call hex32;                                                          \
	call space;                                                          \
	testl $0xfff, 0(%edi);                                               \
	jz 5f;                                                               \
	PUTS s_unaligned;                                                    \
5:	mov 8(%edi), %esi;                                                   \
	call puts;                                                           \
	mov $':', %al;                                                       \
	call putc;                                                           \
	call space;                                                          \
	mov 0(%edi), %esi;                                                   \
	mov 4(%edi), %edx;                                                   \
	mov $16, %ecx;                                                       \
2:	cmp %edx, %esi;                                                      \
	jae 3f;                                                              \
	lodsb;                                                               \
	cmp $' ', %al;                                                       \
	jb 3f;                                                               \
	cmp $'~', %al;                                                       \
	ja 3f;                                                               \
	call putc;                                                           \
	loop 2b;                                                             \
3:	call newline;                                                        \
	pop %ecx;                                                            \
	add $16, %edi;                                                       \
	dec %ecx;                                                            \
	jmp 1b;                                                              \
4:	pop %edi;                                                            \
	ret

#define MB_DATA                                                              \
hexdigits: .ascii "0123456789abcdef";                                        \
s_hello: .asciz "multiboot: hello\n";                                        \
s_flags: .asciz "flags ";                                                    \
s_mem_lower: .asciz "mem_lower ";                                            \
s_mem_upper: .asciz "mem_upper ";                                            \
s_cmdline: .asciz "cmdline ";                                                \
s_loader: .asciz "loader ";                                                  \
s_mmap: .asciz "mmap ";                                                      \
s_mods: .asciz "mods ";                                                      \
s_mod: .asciz "mod ";                                                        \
s_unaligned: .asciz "(not page-aligned) "
