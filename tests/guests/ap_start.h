/* The APs' start: real mode at TRAMP (where the BSP copied ap_start..
 * ap_end) to long mode on the BSP's page tables at 0x2000, then a far
 * jump to ap64 in 64-bit code. Included in .code16 by the SMP guests. */
ap_start:
	cli
	xor %ax, %ax
	mov %ax, %ds
	lgdtl TRAMP + (ap_gdtr - ap_start)
	mov $0x20, %eax		/* PAE */
	mov %eax, %cr4
	mov $0x2000, %eax	/* the BSP's page tables */
	mov %eax, %cr3
	mov $0xc0000080, %ecx	/* EFER.LME */
	rdmsr
	or $0x100, %eax
	wrmsr
	mov $0x80000011, %eax	/* PG, ET, PE */
	mov %eax, %cr0
	ljmpl $0x08, $ap64
	.balign 8
ap_gdt:	.quad 0, 0x00af9b000000ffff, 0x00cf93000000ffff
ap_gdtr: .word 23
	.long TRAMP + (ap_gdt - ap_start)
ap_end:
