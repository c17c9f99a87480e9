/* System mode of the CPU on a real machine model: a small 64-bit kernel
 * (assembled into this test) with its own page tables, GDT, TSS and IDT
 * takes #UD, #PF and INT n through the IDT, drops to CPL 3 with SYSRET,
 * comes back with SYSCALL and through a #GP with a stack switch, and leaves
 * its findings in RAM for the checks below. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "engine/engine.h"
#include "machine/machine_impl.h"
#include "testhelp.h"

#if defined(__x86_64__)

#define BASE 0x10000ull
#define RES 0x7000ull

/* The guest. Addresses inside it are BASE + (label - g_start). */
__asm__(".pushsection .rodata\n"
	".globl g_start, g_end, g_ud, g_pf, g_int80, g_gp, g_sysentry, g_user, g_nmi_main, g_nmi, g_tsc\n"
	".code64\n"
	"g_start:\n"
	"	ud2\n"			 /* #UD, handler skips 2 bytes */
	"	movq 0x40000000, %rax\n" /* #PF (unmapped), handler skips 8 */
	"	int $0x80\n"
	"	movl $1, %eax\n"
	"	cpuid\n"
	"	shrl $24, %ebx\n"
	"	movq %rbx, 0x7040\n"	  /* initial APIC ID */
	"	movl $0xc0000081, %ecx\n" /* STAR: kernel CS 0x08, user base 0x10 */
	"	movl $0, %eax\n"
	"	movl $0x00100008, %edx\n"
	"	wrmsr\n"
	"	movl $0xc0000082, %ecx\n" /* LSTAR */
	"	movl $(g_sysentry - g_start + 0x10000), %eax\n"
	"	xorl %edx, %edx\n"
	"	wrmsr\n"
	"	movl $0xc0000084, %ecx\n" /* SFMASK: IF */
	"	movl $0x200, %eax\n"
	"	wrmsr\n"
	"	movq $(g_user - g_start + 0x10000), %rcx\n"
	"	movq $0x002, %r11\n"
	"	movq $0x6000, %rsp\n" /* the user stack */
	"	sysretq\n"
	"g_user:\n"    /* CPL 3 */
	"	cli\n" /* #GP at CPL 3: handler skips 1 */
	"	movq %cs, %rax\n"
	"	movq %rax, 0x7048\n"
	"	movq $42, %rdi\n"
	"	syscall\n"
	"g_sysentry:\n" /* CPL 0 again */
	"	movq %rdi, 0x7020\n"
	"	movq %cs, %rax\n"
	"	movq %rax, 0x7028\n"
	"	movq %rcx, 0x7050\n"
	"	hlt\n" /* IF=0: the vCPU stops here */
	"g_ud:\n"
	"	incq 0x7000\n"
	"	addq $2, (%rsp)\n"
	"	iretq\n"
	"g_pf:\n"
	"	movq %cr2, %rax\n"
	"	movq %rax, 0x7008\n"
	"	popq %rax\n" /* error code */
	"	movq %rax, 0x7010\n"
	"	addq $8, (%rsp)\n"
	"	iretq\n"
	"g_int80:\n"
	"	movq $0x80, 0x7018\n"
	"	iretq\n"
	"g_gp:\n"
	"	popq %rax\n"
	"	movq %rax, 0x7030\n"
	"	movq %rsp, 0x7038\n"  /* on the TSS's RSP0 stack */
	"	movq 8(%rsp), %rax\n" /* interrupted CS: user */
	"	movq %rax, 0x7058\n"
	"	addq $1, (%rsp)\n"
	"	iretq\n"
	"g_nmi_main:\n" /* IF=0 throughout */
	"	hlt\n"
	"	hlt\n"
	"	hlt\n"
	"g_nmi:\n" /* vector 2: count, spin, return */
	"	incq 0x7060\n"
	"	movl $2000, %ecx\n"
	"1:	loop 1b\n"
	"	iretq\n"
	"g_tsc:\n" /* TSC_ADJUST: CPUID bit, reset value, both directions */
	"	movl $7, %eax\n"
	"	xorl %ecx, %ecx\n"
	"	cpuid\n"
	"	movq %rbx, 0x7068\n"
	"	movl $0x3b, %ecx\n"
	"	rdmsr\n"
	"	shlq $32, %rdx\n"
	"	orq %rdx, %rax\n"
	"	movq %rax, 0x7070\n" /* TSC_ADJUST after reset */
	"	rdtsc\n"
	"	shlq $32, %rdx\n"
	"	orq %rdx, %rax\n"
	"	movq %rax, 0x7078\n" /* t0 */
	"	movl $0x3b, %ecx\n"
	"	xorl %eax, %eax\n"
	"	movl $1, %edx\n"
	"	wrmsr\n" /* TSC_ADJUST = 2^32: the TSC moves on by 2^32 */
	"	rdtsc\n"
	"	shlq $32, %rdx\n"
	"	orq %rdx, %rax\n"
	"	movq %rax, 0x7080\n" /* t1 */
	"	movl $0x10, %ecx\n"
	"	movl $5, %eax\n"
	"	xorl %edx, %edx\n"
	"	wrmsr\n" /* TSC = 5: TSC_ADJUST takes the same step */
	"	movl $0x3b, %ecx\n"
	"	rdmsr\n"
	"	shlq $32, %rdx\n"
	"	orq %rdx, %rax\n"
	"	movq %rax, 0x7088\n"
	"	rdtsc\n"
	"	shlq $32, %rdx\n"
	"	orq %rdx, %rax\n"
	"	movq %rax, 0x7090\n"
	"	hlt\n"
	"g_end:\n"
	".popsection\n");

extern const uint8_t g_start[], g_end[], g_ud[], g_pf[], g_int80[], g_gp[], g_sysentry[], g_user[], g_nmi_main[],
	g_nmi[], g_tsc[];

static uint64_t gaddr(const uint8_t *p)
{
	return BASE + (uint64_t)(p - g_start);
}

static void put64(struct machine *m, uint64_t gpa, uint64_t v)
{
	CHECK(gpa_write(m, gpa, &v, 8) == 0);
}

static uint64_t get64(struct machine *m, uint64_t gpa)
{
	uint64_t v = 0;
	CHECK(gpa_read(m, gpa, &v, 8) == 0);
	return v;
}

static void idt_gate(struct machine *m, unsigned vec, uint64_t target)
{
	/* 64-bit interrupt gate, selector 0x08, present, DPL 0 */
	uint64_t lo = (target & 0xffff) | (0x08ull << 16) | (0x8eull << 40) | ((target >> 16) & 0xffff) << 48;
	put64(m, 0x4000 + vec * 16, lo);
	put64(m, 0x4000 + vec * 16 + 8, target >> 32);
}

/* A vCPU of its own machine, with the translator as the environment says
 * (tests/cpu/t_jit.sh runs this test translated and interpreted). */
static struct cpu_platform plat; /* one vCPU at a time */

static int sys_cpu_init(struct cpu *c, struct machine *m)
{
	struct cpu_opts o;
	cpu_opts_from_env(&o);
	struct cpu_physmem *p = cpu_physmem_new(m->ram, m->mem_size);
	if (!p)
		return -1;
	machine_set_dma_hook(m, cpu_physmem_dma_written, p);
	engine_emu_platform(&plat, m);
	int r = cpu_init_system(c, &plat, 0, p, &o);
	if (r)
		cpu_physmem_free(p);
	return r;
}

static void sys_cpu_destroy(struct cpu *c)
{
	struct cpu_physmem *p = c->phys;
	cpu_destroy(c);
	machine_set_dma_hook(plat.opaque, NULL, NULL);
	cpu_physmem_free(p);
}

/* A machine with the test kernel's page tables, GDT, TSS and IDT loaded,
 * and a vCPU in 64-bit mode at CPL 0 about to run rip. */
static struct cpu *kernel_setup(struct machine **mp, uint64_t rip)
{
	struct machine *m;
	struct machine_config cfg = {.mem_size = 16 << 20, .ncpus = 1, .serial_out_fd = -1};
	*mp = NULL;
	CHECK(machine_create(&m, &cfg) == 0);
	if (!m)
		return NULL;
	*mp = m;
	/* Identity map of 16 MiB with user-accessible 2 MiB pages */
	put64(m, 0x1000, 0x2000 | 7);
	put64(m, 0x2000, 0x3000 | 7);
	for (uint64_t k = 0; k < 8; k++)
		put64(m, 0x3000 + k * 8, (k << 21) | 0x87);
	/* GDT: null, kernel code, kernel data, user data, user code, TSS */
	put64(m, 0x500, 0);
	put64(m, 0x508, 0x00af9a000000ffffull);
	put64(m, 0x510, 0x00cf92000000ffffull);
	put64(m, 0x518, 0x00cff2000000ffffull);
	put64(m, 0x520, 0x00affa000000ffffull);
	put64(m, 0x528, 0x0000890050000067ull); /* TSS at 0x5000, limit 0x67 */
	put64(m, 0x530, 0);
	put64(m, 0x5004, 0x9000); /* TSS.RSP0 */
	idt_gate(m, 6, gaddr(g_ud));
	idt_gate(m, 13, gaddr(g_gp));
	idt_gate(m, 14, gaddr(g_pf));
	idt_gate(m, 0x80, gaddr(g_int80));
	idt_gate(m, 2, gaddr(g_nmi));
	CHECK(gpa_write(m, BASE, g_start, (size_t)(g_end - g_start)) == 0);

	struct cpu *c = calloc(1, sizeof(*c));
	CHECK(sys_cpu_init(c, m) == 0);
	c->s.cr0 = 0x80050033;
	c->s.cr3 = 0x1000;
	c->s.cr4 = 0x6a0;
	c->s.efer = 0xd01;
	c->s.seg[SEG_CS] = (struct cpu_seg){.sel = 0x08, .limit = 0xffffffff, .attr = 0xa09b};
	for (int s = 0; s < 6; s++)
		if (s != SEG_CS)
			c->s.seg[s] = (struct cpu_seg){.sel = 0x10, .limit = 0xffffffff, .attr = 0xc093};
	c->s.gdtr = (struct cpu_dtr){.base = 0x500, .limit = 0x37};
	c->s.idtr = (struct cpu_dtr){.base = 0x4000, .limit = 0xfff};
	c->s.tr = (struct cpu_seg){.sel = 0x28, .base = 0x5000, .limit = 0x67, .attr = 0x8b};
	c->s.gpr[R_RSP] = 0x8000;
	c->s.rip = rip;
	c->s.rflags = 2;
	cpu_state_loaded(c);
	return c;
}

static void test_kernel(void)
{
	struct machine *m;
	struct cpu *c = kernel_setup(&m, BASE);
	if (!c)
		return;
	enum cpu_exit e = cpu_run(c, 100000);
	if (getenv("T_DEBUG"))
		fprintf(stderr, "exit %d rip %#llx vec %d cpl %u halted %d cr2 %#llx addr %#llx\n", e,
			(unsigned long long)c->s.rip, c->exc_vector, c->cpl, c->halted, (unsigned long long)c->s.cr2,
			(unsigned long long)c->exc_addr);
	CHECK(e == CPU_EXIT_HLT);
	CHECK_EQ_U64(get64(m, RES + 0x00), 1);		       /* #UD handled once */
	CHECK_EQ_U64(get64(m, RES + 0x08), 0x40000000);	       /* CR2 */
	CHECK_EQ_U64(get64(m, RES + 0x10), 0);		       /* #PF error: not present, read, supervisor */
	CHECK_EQ_U64(get64(m, RES + 0x18), 0x80);	       /* INT 0x80 */
	CHECK_EQ_U64(get64(m, RES + 0x40), 0);		       /* APIC ID of vCPU 0 */
	CHECK_EQ_U64(get64(m, RES + 0x30), 0);		       /* #GP(0) from CLI at CPL 3 */
	CHECK_EQ_U64(get64(m, RES + 0x38), 0x9000 - 5 * 8);    /* stack switched to RSP0 */
	CHECK_EQ_U64(get64(m, RES + 0x58), 0x23);	       /* interrupted CS: user code, RPL 3 */
	CHECK_EQ_U64(get64(m, RES + 0x48), 0x23);	       /* CS read at CPL 3 */
	CHECK_EQ_U64(get64(m, RES + 0x20), 42);		       /* syscall argument */
	CHECK_EQ_U64(get64(m, RES + 0x28), 0x08);	       /* kernel CS after SYSCALL */
	CHECK_EQ_U64(get64(m, RES + 0x50), gaddr(g_sysentry)); /* RCX = return RIP */
	CHECK_EQ_U64(c->s.rip, gaddr(g_ud));		       /* just past the HLT */
	CHECK(c->halted);

	sys_cpu_destroy(c);
	free(c);
	machine_destroy(m);
}

/* NMIs: delivered with IF=0 and to a halted vCPU; a second one is held
 * while the first handler runs and delivered after its IRET. */
static void test_nmi(void)
{
	struct machine *m;
	struct cpu *c = kernel_setup(&m, gaddr(g_nmi_main));
	if (!c)
		return;
	CHECK(cpu_run(c, 1000) == CPU_EXIT_HLT); /* first HLT, IF=0 */
	CHECK(cpu_run(c, 1000) == CPU_EXIT_HLT); /* nothing wakes it */
	CHECK_EQ_U64(get64(m, RES + 0x60), 0);
	cpu_inject_nmi(c);
	CHECK(cpu_run(c, 100) == CPU_EXIT_LIMIT); /* in the handler's loop */
	CHECK_EQ_U64(get64(m, RES + 0x60), 1);
	CHECK(c->s.rip >= gaddr(g_nmi) && c->s.rip < gaddr(g_end));
	cpu_inject_nmi(c); /* held: the first is still running */
	CHECK(cpu_run(c, 100) == CPU_EXIT_LIMIT);
	CHECK_EQ_U64(get64(m, RES + 0x60), 1);
	CHECK(cpu_run(c, 100000) == CPU_EXIT_HLT); /* IRET, the held NMI, IRET, next HLT */
	CHECK_EQ_U64(get64(m, RES + 0x60), 2);
	CHECK_EQ_U64(c->s.rip, gaddr(g_nmi_main) + 2);
	sys_cpu_destroy(c);
	free(c);
	machine_destroy(m);
}

/* Run the code at rip until its HLT, n times (enough to make it hot for the
 * translator); returns the qword it leaves at RES + 0x100. */
static uint64_t run_hot(struct cpu *c, struct machine *m, uint64_t rip, int n)
{
	for (int k = 0; k < n; k++) {
		c->halted = 0;
		c->s.rip = rip;
		CHECK(cpu_run(c, 10000) == CPU_EXIT_HLT);
	}
	return get64(m, RES + 0x100);
}

/* Code pages written behind the vCPU's back: by a device (DMA into guest
 * RAM, as virtio-blk reads do, seen through gpa_dma_written or gpa_write)
 * and by the guest itself; the decoded and translated code must go. */
static void test_code_rewritten(void)
{
	struct machine *m;
	struct cpu *c = kernel_setup(&m, BASE);
	if (!c)
		return;
	/* A: mov eax, 1; mov [RES + 0x100], rax; hlt */
	uint8_t a[] = {0xb8, 1, 0, 0, 0, 0x48, 0x89, 0x04, 0x25, 0x00, 0x71, 0x00, 0x00, 0xf4};
	/* B: mov byte [0x20001], 7; hlt (patches A's immediate) */
	uint8_t b[] = {0xc6, 0x04, 0x25, 0x01, 0x00, 0x02, 0x00, 0x07, 0xf4};
	CHECK(gpa_write(m, 0x20000, a, sizeof(a)) == 0);
	CHECK(gpa_write(m, 0x21000, b, sizeof(b)) == 0);
	CHECK_EQ_U64(run_hot(c, m, 0x20000, 40), 1);
	/* a device writes the page through a host pointer */
	uint8_t *p = gpa_ptr(m, 0x20000, sizeof(a));
	CHECK(p != NULL);
	if (p) {
		gpa_dma_written(m, p, sizeof(a));
		p[1] = 2;
	}
	CHECK_EQ_U64(run_hot(c, m, 0x20000, 40), 2);
	/* gpa_write (the loader's and rings' path) */
	a[1] = 3;
	CHECK(gpa_write(m, 0x20000, a, sizeof(a)) == 0);
	CHECK_EQ_U64(run_hot(c, m, 0x20000, 40), 3);
	/* the guest's own store into the code page */
	run_hot(c, m, 0x21000, 1);
	CHECK_EQ_U64(run_hot(c, m, 0x20000, 1), 7);
	sys_cpu_destroy(c);
	free(c);
	machine_destroy(m);
}

/* An instruction that crosses into a page whose mapping then changes (the
 * guest edits its page table and runs INVLPG): the decoded instruction
 * must be taken from the new page. */
static void test_crossing_remapped(void)
{
	struct machine *m;
	struct cpu *c = kernel_setup(&m, BASE);
	if (!c)
		return;
	/* 0x600000-0x7fffff through a page table at 0x30000: 0x600000 ->
	 * 0x40000, 0x601000 -> 0x41000 */
	put64(m, 0x3000 + 3 * 8, 0x30000 | 7);
	put64(m, 0x30000, 0x40000 | 7);
	put64(m, 0x30008, 0x41000 | 7);
	/* mov eax, imm32 at 0x600ffd: opcode and two immediate bytes in the
	 * first page, two in the second; then mov [RES + 0x100], rax; hlt */
	uint8_t first[3] = {0xb8, 0x01, 0x00};
	uint8_t second_a[] = {0x00, 0x00, 0x48, 0x89, 0x04, 0x25, 0x00, 0x71, 0x00, 0x00, 0xf4};
	uint8_t second_b[] = {0x00, 0x01, 0x48, 0x89, 0x04, 0x25, 0x00, 0x71, 0x00, 0x00, 0xf4};
	CHECK(gpa_write(m, 0x40ffd, first, sizeof(first)) == 0);
	CHECK(gpa_write(m, 0x41000, second_a, sizeof(second_a)) == 0);
	CHECK(gpa_write(m, 0x42000, second_b, sizeof(second_b)) == 0);
	CHECK_EQ_U64(run_hot(c, m, 0x600ffd, 40), 1);
	/* remap the second page; the guest flushes it: invlpg [0x601000]; hlt */
	put64(m, 0x30008, 0x42000 | 7);
	uint8_t inv[] = {0x0f, 0x01, 0x3c, 0x25, 0x00, 0x10, 0x60, 0x00, 0xf4};
	CHECK(gpa_write(m, 0x22000, inv, sizeof(inv)) == 0);
	run_hot(c, m, 0x22000, 1);
	CHECK_EQ_U64(run_hot(c, m, 0x600ffd, 40), 0x01000001);
	sys_cpu_destroy(c);
	free(c);
	machine_destroy(m);
}

/* TLB invalidation: INVLPG of any address in a 2 MiB page drops the whole
 * page's translations; a CR3 write drops non-global ones; toggling
 * CR4.PGE drops global ones too. */
static void test_tlb_invalidation(void)
{
	struct machine *m;
	struct cpu *c = kernel_setup(&m, BASE);
	if (!c)
		return;
	/* mov rax, [0x6ff000]; mov [RES + 0x100], rax; hlt */
	uint8_t rd[] = {0x48, 0x8b, 0x04, 0x25, 0x00, 0xf0, 0x6f, 0x00, 0x48,
			0x89, 0x04, 0x25, 0x00, 0x71, 0x00, 0x00, 0xf4};
	uint8_t inv[] = {0x0f, 0x01, 0x3c, 0x25, 0x00, 0x00, 0x60, 0x00, 0xf4}; /* invlpg [0x600000] */
	uint8_t cr3[] = {0x0f, 0x20, 0xd8, 0x0f, 0x22, 0xd8, 0xf4};		/* reload CR3 */
	uint8_t pge[] = {0x0f, 0x20, 0xe0, 0x48, 0x25, 0x7f, 0xff, 0xff, 0xff, 0x0f, 0x22,
			 0xe0, 0x48, 0x0d, 0x80, 0x00, 0x00, 0x00, 0x0f, 0x22, 0xe0, 0xf4}; /* CR4.PGE off, on */
	CHECK(gpa_write(m, 0x23000, rd, sizeof(rd)) == 0);
	CHECK(gpa_write(m, 0x24000, inv, sizeof(inv)) == 0);
	CHECK(gpa_write(m, 0x25000, cr3, sizeof(cr3)) == 0);
	CHECK(gpa_write(m, 0x26000, pge, sizeof(pge)) == 0);
	put64(m, 0x4ff000, 111);
	put64(m, 0x6ff000, 222);
	uint64_t pde = 0x3000 + 3 * 8; /* 0x600000-0x7fffff */
	put64(m, pde, 0x400000 | 0x87);
	CHECK_EQ_U64(run_hot(c, m, 0x23000, 20), 111);
	put64(m, pde, 0x600000 | 0x87);
	run_hot(c, m, 0x24000, 1);
	CHECK_EQ_U64(run_hot(c, m, 0x23000, 20), 222);
	put64(m, pde, 0x400000 | 0x87);
	run_hot(c, m, 0x25000, 1);
	CHECK_EQ_U64(run_hot(c, m, 0x23000, 20), 111);
	put64(m, pde, 0x600000 | 0x187); /* global */
	run_hot(c, m, 0x25000, 1);
	CHECK_EQ_U64(run_hot(c, m, 0x23000, 20), 222);
	put64(m, pde, 0x400000 | 0x187);
	run_hot(c, m, 0x26000, 1);
	CHECK_EQ_U64(run_hot(c, m, 0x23000, 20), 111);
	sys_cpu_destroy(c);
	free(c);
	machine_destroy(m);
}

/* SSE in system mode, interpreted and translated alike: the same code
 * after it has been translated (made hot with SSE enabled) takes #UD
 * with CR4.OSFXSR clear or CR0.EM set and #NM with CR0.TS set, at the
 * SSE instruction, with the instructions before it retired. */
static void test_sse_enable(void)
{
	struct machine *m;
	struct cpu *c = kernel_setup(&m, BASE);
	if (!c)
		return;
	/* mov ecx, 5; add rcx, rcx; movdqa xmm0, [0x7200]; pxor xmm0, [0x7210];
	 * movdqu [RES + 0x100], xmm0; hlt */
	static const uint8_t code[] = {0xb9, 0x05, 0x00, 0x00, 0x00, 0x48, 0x01, 0xc9, 0x66, 0x0f, 0x6f, 0x04,
				       0x25, 0x00, 0x72, 0x00, 0x00, 0x66, 0x0f, 0xef, 0x04, 0x25, 0x10, 0x72,
				       0x00, 0x00, 0xf3, 0x0f, 0x7f, 0x04, 0x25, 0x00, 0x71, 0x00, 0x00, 0xf4};
	/* #UD and #NM: pop rax (the faulting RIP); mov [RES + 0x118], rax; hlt */
	static const uint8_t handler[] = {0x58, 0x48, 0x89, 0x04, 0x25, 0x18, 0x71, 0x00, 0x00, 0xf4};
	CHECK(gpa_write(m, 0x27000, code, sizeof(code)) == 0);
	CHECK(gpa_write(m, 0x28000, handler, sizeof(handler)) == 0);
	idt_gate(m, 6, 0x28000);
	idt_gate(m, 7, 0x28000);
	put64(m, 0x7200, 0x1122334455667788ull);
	put64(m, 0x7208, 0x99aabbccddeeff00ull);
	put64(m, 0x7210, 0xffff0000ffff0000ull);
	put64(m, 0x7218, 0x0f0f0f0f0f0f0f0full);
	CHECK_EQ_U64(run_hot(c, m, 0x27000, 40), 0x1122334455667788ull ^ 0xffff0000ffff0000ull);
	CHECK_EQ_U64(get64(m, RES + 0x108), 0x99aabbccddeeff00ull ^ 0x0f0f0f0f0f0f0f0full);
	const struct {
		uint64_t cr0_set, cr4_clear;
		int vector;
	} cases[] = {{0, 0x200, 6}, {4, 0, 6}, {8, 0, 7}};
	for (unsigned k = 0; k < 3; k++) {
		uint64_t cr0 = c->s.cr0, cr4 = c->s.cr4;
		c->s.cr0 |= cases[k].cr0_set;
		c->s.cr4 &= ~cases[k].cr4_clear;
		put64(m, RES + 0x100, 0);
		put64(m, RES + 0x118, 0);
		c->s.gpr[R_RCX] = 0;
		run_hot(c, m, 0x27000, 1);
		CHECK_EQ_U64(get64(m, RES + 0x118), 0x27008); /* the MOVDQA */
		CHECK_EQ_U64(get64(m, RES + 0x100), 0);
		CHECK_EQ_U64(c->s.gpr[R_RCX], 10);
		c->s.cr0 = cr0;
		c->s.cr4 = cr4;
	}
	/* and with SSE enabled again, the translation runs as before */
	CHECK_EQ_U64(run_hot(c, m, 0x27000, 1), 0x1122334455667788ull ^ 0xffff0000ffff0000ull);
	sys_cpu_destroy(c);
	free(c);
	machine_destroy(m);
}

/* A guest whose IDT is garbage: the first fault becomes #DF, then a triple
 * fault, reported as CPU_EXIT_SHUTDOWN. */
static void test_triple_fault(void)
{
	struct machine *m;
	struct machine_config cfg = {.mem_size = 4 << 20, .ncpus = 1, .serial_out_fd = -1};
	CHECK(machine_create(&m, &cfg) == 0);
	if (!m)
		return;
	put64(m, 0x1000, 0x2000 | 3);
	put64(m, 0x2000, 0x3000 | 3);
	put64(m, 0x3000, 0x83);
	put64(m, 0x3008, (1ull << 21) | 0x83);
	uint8_t ud[2] = {0x0f, 0x0b};
	CHECK(gpa_write(m, BASE, ud, 2) == 0);
	struct cpu *c = calloc(1, sizeof(*c));
	CHECK(sys_cpu_init(c, m) == 0);
	c->s.cr0 = 0x80050033;
	c->s.cr3 = 0x1000;
	c->s.cr4 = 0x6a0;
	c->s.efer = 0xd01;
	c->s.seg[SEG_CS] = (struct cpu_seg){.sel = 0x08, .limit = 0xffffffff, .attr = 0xa09b};
	c->s.idtr = (struct cpu_dtr){.base = 0x200000, .limit = 0}; /* every vector outside */
	c->s.gpr[R_RSP] = 0x8000;
	c->s.rip = BASE;
	c->s.rflags = 2;
	cpu_state_loaded(c);
	CHECK(cpu_run(c, 1000) == CPU_EXIT_SHUTDOWN);
	sys_cpu_destroy(c);
	free(c);
	machine_destroy(m);
}

/* IA32_TSC_ADJUST (SDM 17.17.3), which CPUID.7.EBX[1] advertises: it reads 0
 * after reset, a write to it moves the TSC by its change, a write to the
 * TSC changes it by the TSC's step. */
static void test_tsc_adjust(void)
{
	struct machine *m;
	struct cpu *c = kernel_setup(&m, gaddr(g_tsc));
	if (!c)
		return;
	CHECK(cpu_run(c, 100000) == CPU_EXIT_HLT);
	CHECK(get64(m, RES + 0x68) & (1u << 1)); /* CPUID.7.EBX: TSC_ADJUST */
	CHECK_EQ_U64(get64(m, RES + 0x70), 0);
	uint64_t t0 = get64(m, RES + 0x78), t1 = get64(m, RES + 0x80);
	uint64_t adj = get64(m, RES + 0x88), t2 = get64(m, RES + 0x90);
	/* less than a second passes between two reads here */
	CHECK(t1 - t0 >= (1ull << 32) && t1 - t0 < (1ull << 32) + 1000000000ull);
	/* the write of 5 came after t1: the step 5 - TSC is at most 5 - t1 */
	uint64_t want = (1ull << 32) + 5 - t1;
	CHECK(want - adj < 1000000000ull);
	CHECK(t2 >= 5 && t2 < 5 + 1000000000ull);
	sys_cpu_destroy(c);
	free(c);
	machine_destroy(m);
}

int main(void)
{
	RUN(test_kernel);
	RUN(test_tsc_adjust);
	RUN(test_nmi);
	RUN(test_triple_fault);
	RUN(test_code_rewritten);
	RUN(test_crossing_remapped);
	RUN(test_tlb_invalidation);
	RUN(test_sse_enable);
	return test_report();
}

#else
int main(void)
{
	printf("t_cpu_sys: needs an x86-64 host to assemble its guest; skipped\n");
	return test_report();
}
#endif
