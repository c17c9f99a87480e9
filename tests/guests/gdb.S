/* A guest for the GDB stub's tests (tests/debug/t_gdb.sh, which takes the
 * labels' addresses from the assembled object): maps a high virtual page
 * of its own and stores a known value through it, calls a function
 * whose result it prints (the test changes RAX at value_set and sees the
 * change in the output), then writes a watched variable. Prints "done"
 * and powers off. */
#include "guest.h"
#define PDPT_HI 0x30000
#define PD_HI 0x31000
#define HI_PHYS 0x400000              /* a 2 MiB page behind HI_VIRT */
#define HI_VIRT 0xffff800000000000    /* PML4 slot 256 */
#define WATCHED (SCRATCH + 0x100)
	.code64
	.globl _start
_start:
	PUTS hello
	/* PML4[256] -> PDPT_HI[0] -> PD_HI[0] -> a 2 MiB page at HI_PHYS */
	mov $PDPT_HI, %edi
	mov $1024, %ecx
	xor %eax, %eax
	rep stosq
	movq $(PD_HI | 3), PDPT_HI
	movq $(HI_PHYS | 0x83), PD_HI
	mov %cr3, %rax
	movq $(PDPT_HI | 3), 256 * 8(%rax)
	mov %rax, %cr3
	movabs $HI_VIRT, %rbx
	movabs $0x1122334455667788, %rax
	mov %rax, (%rbx)
	movq $0, WATCHED
	.globl bp_here
bp_here:
	call value
	.globl step_to
step_to:
	call puthex
	PUTS nl
	.globl writer
writer:
	movq $42, WATCHED
	.globl after_write
after_write:
	PUTS done
	jmp poweroff
	.globl value
value:
	mov $0x1234, %eax
	.globl value_set
value_set:
	ret
hello:	.asciz "gdb guest\n"
nl:	.asciz "\n"
done:	.asciz "done\n"
GUEST_LIB
