/* Differential test machinery shared by the integer tests: test regions
 * mapped identically on the host and in a vmem, a blob wrapper that loads
 * and stores all GPRs and RFLAGS, and running a blob natively and in corral. */
#ifndef CORRAL_TESTS_DIFF_RUN_H
#define CORRAL_TESTS_DIFF_RUN_H

#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "cpu/vmem.h"

#define PG 4096u

/* Pages of one region, in address order. The guards stay unmapped in the
 * vmem and PROT_NONE on the host, so anything that runs off the data or
 * string buffers faults the same way in both worlds. */
enum {
	PG_CODE,  /* the blob (host RWX, guest R+X) and the syscall stub */
	PG_STATE, /* input and output register blocks */
	PG_GUARD0,
	PG_DATA, /* two data pages for memory operands */
	PG_DATA2,
	PG_GUARD1,
	PG_RO,	  /* read-only page: writes fault */
	PG_STACK, /* the test's stack */
	PG_STACK2,
	PG_COUNT,
};

#define DATA_SIZE (2 * PG)
#define STACK_SIZE (2 * PG)

/* Offsets in the state page */
#define ST_IN 0x000    /* gpr[16], rflags: loaded by the prologue */
#define ST_OUT 0x100   /* gpr[16], rflags: stored by the epilogue */
#define ST_SAVE 0x200  /* the caller's RSP while the blob runs */
#define ST_OUTER 0xff0 /* corral's initial RSP; [ST_OUTER] = address of the stub */
#define STUB_OFF 0xff0 /* in the code page: syscall */
#define BODY_MAX 160

struct region {
	uint8_t *base;
	const char *name;
};

static inline uint8_t *rg_page(const struct region *rg, unsigned pg)
{
	return rg->base + (size_t)pg * PG;
}

static inline uint64_t rg_addr(const struct region *rg, unsigned pg, unsigned off)
{
	return (uint64_t)(uintptr_t)rg_page(rg, pg) + off;
}

/* ---- Native fault capture ---- */

struct nat_fault {
	int sig;
	int trapno;
	uint64_t err, cr2, rip, rflags;
	uint64_t gpr[16];
};

static sigjmp_buf diff_nat_jb;
static volatile sig_atomic_t diff_nat_in;
static struct nat_fault diff_nat_fault;
static struct sigaction diff_old_sa[65];

static const int diff_greg_of[16] = {
	REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
	REG_R8,	 REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15,
};

static void diff_sig_handler(int sig, siginfo_t *si, void *ucv)
{
	(void)si;
	if (!diff_nat_in) {
		/* A real crash of the harness or of corral: let the previous
		 * handler (default, or the sanitizer's) see it when it recurs. */
		sigaction(sig, &diff_old_sa[sig], NULL);
		return;
	}
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	diff_nat_fault.sig = sig;
	diff_nat_fault.trapno = (int)g[REG_TRAPNO];
	diff_nat_fault.err = (uint64_t)g[REG_ERR];
	diff_nat_fault.cr2 = (uint64_t)g[REG_CR2];
	diff_nat_fault.rip = (uint64_t)g[REG_RIP];
	diff_nat_fault.rflags = (uint64_t)g[REG_EFL];
	for (int k = 0; k < 16; k++)
		diff_nat_fault.gpr[k] = (uint64_t)g[diff_greg_of[k]];
	diff_nat_in = 0;
	siglongjmp(diff_nat_jb, 1);
}

static void diff_signals_install(void)
{
	static uint8_t altstack[64 * 1024];
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack), .ss_flags = 0};
	if (sigaltstack(&ss, NULL)) {
		perror("sigaltstack");
		exit(2);
	}
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP};
	for (unsigned k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = diff_sig_handler;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		sigaction(sigs[k], &sa, &diff_old_sa[sigs[k]]);
	}
}

/* ---- Regions ---- */

static int diff_region_init(struct region *rg, struct vmem *vm, bool low, const char *name)
{
	int fl = MAP_PRIVATE | MAP_ANONYMOUS | (low ? MAP_32BIT : 0);
	void *p = mmap(NULL, PG_COUNT * PG, PROT_READ | PROT_WRITE, fl, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	rg->base = p;
	rg->name = name;
	if ((uint64_t)(uintptr_t)p + PG_COUNT * PG > VMEM_LIMIT)
		return -1;
	if (mprotect(rg_page(rg, PG_CODE), PG, PROT_READ | PROT_WRITE | PROT_EXEC))
		return -1;
	mprotect(rg_page(rg, PG_GUARD0), PG, PROT_NONE);
	mprotect(rg_page(rg, PG_GUARD1), PG, PROT_NONE);
	for (unsigned k = 0; k < PG; k++)
		rg_page(rg, PG_RO)[k] = (uint8_t)(k * 7 + 3);
	mprotect(rg_page(rg, PG_RO), PG, PROT_READ);

	static const struct {
		unsigned pg, n, prot;
	} maps[] = {
		{PG_CODE, 1, VMEM_R | VMEM_X},	{PG_STATE, 1, VMEM_R | VMEM_W},
		{PG_DATA, 2, VMEM_R | VMEM_W},	{PG_RO, 1, VMEM_R},
		{PG_STACK, 2, VMEM_R | VMEM_W},
	};
	for (unsigned k = 0; k < sizeof(maps) / sizeof(maps[0]); k++)
		if (vmem_map(vm, rg_addr(rg, maps[k].pg, 0), (uint64_t)maps[k].n * PG, rg_page(rg, maps[k].pg),
			     maps[k].prot))
			return -1;

	/* The stub the epilogue's RET reaches in corral: SYSCALL ends cpu_run. */
	uint8_t *code = rg_page(rg, PG_CODE);
	code[STUB_OFF] = 0x0f;
	code[STUB_OFF + 1] = 0x05;
	uint64_t stub = rg_addr(rg, PG_CODE, STUB_OFF);
	memcpy(rg_page(rg, PG_STATE) + ST_OUTER, &stub, 8);
	return 0;
}

/* ---- The wrapper around a test body ---- */

static unsigned diff_put(uint8_t *p, unsigned n, const char *bytes, unsigned len)
{
	memcpy(p + n, bytes, len);
	return n + len;
}

/* A RIP-relative [rip+disp32] instruction (opcode bytes given, ModRM
 * 0x25 = rsp with rip-relative) to target. */
static unsigned diff_riprel(uint8_t *code, unsigned n, uint8_t op, uint64_t target)
{
	code[n++] = 0x48;
	code[n++] = op;
	code[n++] = 0x25;
	uint64_t next = (uint64_t)(uintptr_t)code + n + 4;
	int32_t d = (int32_t)(int64_t)(target - next);
	memcpy(code + n, &d, 4);
	return n + 4;
}

/* Length of the prologue: the body always starts here. */
#define BODY_OFF 60

/* Build prologue + body + epilogue in rg's code page. The prologue saves
 * the caller's callee-saved registers and RSP, loads all GPRs and RFLAGS
 * from ST_IN (RSP last, so flag-free LEA/MOV are used once RFLAGS are
 * loaded); the epilogue stores everything to ST_OUT and returns. */
static void diff_blob_build(struct region *rg, const uint8_t *body, unsigned blen)
{
	uint8_t *code = rg_page(rg, PG_CODE);
	uint64_t st = rg_addr(rg, PG_STATE, 0);
	unsigned n = 0;
	n = diff_put(code, n, "\x53\x55\x41\x54\x41\x55\x41\x56\x41\x57", 10);
	n = diff_riprel(code, n, 0x89, st + ST_SAVE); /* mov [save], rsp */
	n = diff_riprel(code, n, 0x8d, st + ST_IN);   /* lea rsp, [in] */
	n = diff_put(code, n, "\x58\x59\x5a\x5b\x48\x8d\x64\x24\x08\x5d\x5e\x5f", 12);
	n = diff_put(code, n, "\x41\x58\x41\x59\x41\x5a\x41\x5b\x41\x5c\x41\x5d\x41\x5e\x41\x5f", 16);
	n = diff_put(code, n, "\x9d", 1);			/* popfq */
	n = diff_riprel(code, n, 0x8b, st + ST_IN + 8 * R_RSP); /* mov rsp, [in.rsp] */
	if (n != BODY_OFF) {
		fprintf(stderr, "t_diff: prologue is %u bytes, expected %u\n", n, BODY_OFF);
		exit(2);
	}
	memcpy(code + n, body, blen);
	n += blen;
	n = diff_riprel(code, n, 0x89, st + ST_OUT + 8 * R_RSP); /* mov [out.rsp], rsp */
	n = diff_riprel(code, n, 0x8d, st + ST_OUT + 17 * 8);	 /* lea rsp, [out end] */
	n = diff_put(code, n, "\x9c\x41\x57\x41\x56\x41\x55\x41\x54\x41\x53\x41\x52\x41\x51\x41\x50", 17);
	n = diff_put(code, n, "\x57\x56\x55\x48\x8d\x64\x24\xf8\x53\x52\x51\x50", 12);
	n = diff_riprel(code, n, 0x8b, st + ST_SAVE); /* mov rsp, [save] */
	/* The C code we return to expects DF clear (SysV ABI). */
	n = diff_put(code, n, "\xfc\x41\x5f\x41\x5e\x41\x5d\x41\x5c\x5d\x5b\xc3", 12);
	if (n > STUB_OFF) {
		fprintf(stderr, "t_diff: blob too long\n");
		exit(2);
	}
}

/* Run the blob on the host. Returns 0, or 1 with diff_nat_fault filled. */
static __attribute__((noinline)) int diff_run_native(struct region *rg)
{
	void (*fn)(void) = (void (*)(void))(uintptr_t)rg_page(rg, PG_CODE);
	if (sigsetjmp(diff_nat_jb, 1))
		return 1;
	diff_nat_in = 1;
	__asm__ volatile("" ::: "memory");
	fn();
	__asm__ volatile("" ::: "memory");
	diff_nat_in = 0;
	return 0;
}

/* Keep the soft TLB from one case to the next (only the code is dropped),
 * so memory operands take the fast paths, not the refill. */
static int diff_warm_tlb;

/* Run the blob in corral. */
static enum cpu_exit diff_run_corral(struct cpu *c, struct region *rg)
{
	cpu_reset_user(c);
	/* the blob was rewritten behind the vmem's back */
	if (diff_warm_tlb)
		vmem_code_written(c->vm, rg_addr(rg, PG_CODE, 0));
	else
		cpu_flush(c);
	c->s.rip = rg_addr(rg, PG_CODE, 0);
	c->s.gpr[R_RSP] = rg_addr(rg, PG_STATE, ST_OUTER);
	return cpu_run(c, 200000);
}

#endif
