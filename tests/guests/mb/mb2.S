/* A Multiboot 2 kernel as a flat binary: the address and entry tags say
 * where it goes. It walks the tagged information (mb.h's library) and
 * prints the command line, boot loader name, memory, memory map and
 * modules, then leaves through isa-debug-exit as the others do. */
#include "mb.h"
#define MB2_MAGIC 0xe85250d6
#define MB2_LOADER_MAGIC 0x36d76289
	.code32
	.text
	.globl _start
_start:
	jmp entry2
	.balign 8
mb2_header:
	.long MB2_MAGIC, 0, mb2_header_end - mb2_header
	.long -(MB2_MAGIC + (mb2_header_end - mb2_header))
	.word 2, 0             /* address tag */
	.long 24
	.long mb2_header, _start, load_end, bss_end
	.word 3, 0             /* entry address tag */
	.long 12
	.long entry2
	.long 0                /* padding to 8 */
	.word 0, 0             /* end tag */
	.long 8
mb2_header_end:

entry2:
	cld
	mov $0x7000, %esp
	cmp $MB2_LOADER_MAGIC, %eax
	jne bad
	test $7, %ebx
	jnz bad
	mov %cr0, %eax
	and $0x80000001, %eax
	cmp $1, %eax
	jne bad
	PUTS s_hello2
	lea 8(%ebx), %edi        /* the first tag */
next:
	mov (%edi), %eax         /* type */
	test %eax, %eax
	jz done
	cmp $1, %eax
	je t_cmdline
	cmp $2, %eax
	je t_loader
	cmp $3, %eax
	je t_module
	cmp $4, %eax
	je t_meminfo
	cmp $6, %eax
	je t_mmap
	cmp $15, %eax
	je t_acpi
skip:
	mov 4(%edi), %eax        /* size, rounded up to 8 */
	add $7, %eax
	and $~7, %eax
	add %eax, %edi
	jmp next
t_cmdline:
	PUTS s_cmdline
	lea 8(%edi), %esi
	call puts
	call newline
	jmp skip
t_loader:
	PUTS s_loader
	lea 8(%edi), %esi
	call puts
	call newline
	jmp skip
t_meminfo:
	PUTS s_mem_lower
	mov 8(%edi), %eax
	call hex32
	call newline
	PUTS s_mem_upper
	mov 12(%edi), %eax
	call hex32
	call newline
	jmp skip
t_acpi:
	PUTS s_acpi
	lea 8(%edi), %esi
	mov $8, %ecx
1:	lodsb
	call putc
	loop 1b
	call newline
	jmp skip
t_mmap:
	push %edi
	mov 4(%edi), %ecx        /* the tag's end */
	add %edi, %ecx
	add $16, %edi
1:	cmp %ecx, %edi
	jae 2f
	push %ecx
	PUTS s_mmap
	mov 4(%edi), %eax
	call hex32
	mov 0(%edi), %eax
	call hex32
	call space
	mov 12(%edi), %eax
	call hex32
	mov 8(%edi), %eax
	call hex32
	call space
	mov 16(%edi), %eax
	call hex32
	call newline
	pop %ecx
	add $24, %edi
	jmp 1b
2:	pop %edi
	jmp skip
t_module:
	PUTS s_mod
	mov 12(%edi), %eax
	sub 8(%edi), %eax
	call hex32
	call space
	lea 16(%edi), %esi
	call puts
	mov $':', %al
	call putc
	call space
	mov 8(%edi), %esi
	mov 12(%edi), %edx
	mov $16, %ecx
1:	cmp %edx, %esi
	jae 3f
	lodsb
	cmp $' ', %al
	jb 3f
	cmp $'~', %al
	ja 3f
	call putc
	loop 1b
3:	call newline
	jmp skip
done:
	mov $EXIT_OK, %eax
	jmp finish
bad:	mov $EXIT_BAD, %eax
finish:	mov $DEBUG_EXIT, %dx
	out %eax, %dx
2:	hlt
	jmp 2b

	MB_LIB
	MB_DATA
s_hello2: .asciz "multiboot2: hello\n"
s_acpi: .asciz "acpi "
load_end:
	.bss
	.space 4096
bss_end:
