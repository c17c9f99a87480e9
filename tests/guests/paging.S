/* Paging set up by the guest itself: its own 4-level tables with 4 KiB
 * pages (the first 2 MiB identity-mapped, plus an alias of a data page at
 * a high virtual address), a CR3 switch, a write through the alias seen
 * through the identity map, a #PF on an unmapped page with CR2 and the
 * error code, a read-only page (WP) that faults on write, then INVLPG
 * after remapping the alias to another page. */
#include "guest.h"
#define PML4 0x30000
#define PDPT 0x31000
#define PD   0x32000
#define PT   0x33000          /* 0-2 MiB, 4 KiB pages */
#define PDPT_HI 0x34000
#define PD_HI 0x35000
#define PT_HI 0x36000
#define DATA 0x40000          /* the alias' first target */
#define DATA2 0x41000         /* and its second */
#define RO 0x42000            /* mapped read-only */
#define ALIAS 0x7f8000000000  /* PML4 slot 255 */
	.code64
	.globl _start
_start:
	call idt_init
	GATE 14, pf
	/* clear the table pages */
	mov $PML4, %edi
	mov $(7 * 512), %ecx
	xor %eax, %eax
	rep stosq
	movq $(PDPT | 3), PML4
	movq $(PD | 3), PDPT
	movq $(PT | 3), PD
	/* PT: 512 identity 4 KiB pages, RO without the W bit */
	xor %ecx, %ecx
1:	mov %rcx, %rax
	shl $12, %rax
	or $3, %rax
	mov %rcx, %rdx
	shl $12, %rdx
	cmp $RO, %rdx
	jne 2f
	and $~2, %rax
2:	mov %rax, PT(,%rcx,8)
	inc %ecx
	cmp $512, %ecx
	jb 1b
	/* the alias: PML4[255] -> PDPT_HI[0] -> PD_HI[0] -> PT_HI[0] -> DATA */
	movq $(PDPT_HI | 3), PML4 + 255 * 8
	movq $(PD_HI | 3), PDPT_HI
	movq $(PT_HI | 3), PD_HI
	movq $(DATA | 3), PT_HI
	mov $PML4, %eax
	mov %rax, %cr3
	/* write through the alias, read through the identity map */
	movabs $ALIAS, %rbx
	movq $0x1234abcd, 8(%rbx)
	cmpq $0x1234abcd, DATA + 8
	jne bad_alias
	/* an unmapped page: #PF, not present, write */
	movq $0, SCRATCH
	movabs $(ALIAS + 0x200000), %rbx
	movq $1, (%rbx)           /* 7 bytes: 48 c7 03 01 00 00 00 */
	cmpq $1, SCRATCH
	jne bad_pf
	movabs $(ALIAS + 0x200000), %rax
	cmp %rax, SCRATCH + 8
	jne bad_cr2
	cmpq $2, SCRATCH + 16     /* W, not P */
	jne bad_err
	/* the read-only page: #PF, present, write (CR0.WP is set) */
	movq $0, SCRATCH
	mov $RO, %ebx
	movq $1, (%rbx)
	cmpq $1, SCRATCH
	jne bad_ro
	cmpq $3, SCRATCH + 16     /* W, P */
	jne bad_err
	/* remap the alias, INVLPG, and see the new page */
	movq $0x5678, DATA2 + 8
	movq $(DATA2 | 3), PT_HI
	movabs $ALIAS, %rbx
	invlpg (%rbx)
	cmpq $0x5678, 8(%rbx)
	jne bad_invlpg
	PUTS ok
	jmp poweroff
pf:	incq SCRATCH
	push %rax
	mov %cr2, %rax
	mov %rax, SCRATCH + 8
	mov 8(%rsp), %rax         /* error code */
	mov %rax, SCRATCH + 16
	pop %rax
	add $8, %rsp
	addq $7, (%rsp)           /* skip the faulting movq $1, (%rbx) */
	iretq
bad_alias: PUTS m_alias
	jmp poweroff
bad_pf: PUTS m_pf
	jmp poweroff
bad_cr2: PUTS m_cr2
	jmp poweroff
bad_err: PUTS m_err
	jmp poweroff
bad_ro: PUTS m_ro
	jmp poweroff
bad_invlpg: PUTS m_invlpg
	jmp poweroff
ok:	.asciz "paging ok\n"
m_alias: .asciz "FAIL alias\n"
m_pf:	.asciz "FAIL no #PF\n"
m_cr2:	.asciz "FAIL cr2\n"
m_err:	.asciz "FAIL error code\n"
m_ro:	.asciz "FAIL no #PF on a read-only page\n"
m_invlpg: .asciz "FAIL invlpg\n"
GUEST_LIB
