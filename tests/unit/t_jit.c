/* The block translator's own contract, on hand-assembled guest code run
 * translated (every block hot at once) and interpreted, with the same
 * results required: stores into a hot loop's own code, code rewritten from
 * the host, stop requests and instruction limits in a loop of linked
 * translations, and precise faults inside one. On hosts without the
 * translator both runs interpret. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "cpu/jit.h"
#include "cpu/vmem.h"
#include "testhelp.h"
#include "unit/cpu_env.h"

/* A loop that rewrites the immediate of its own ADD halfway:
 *   0: 31 c0                 xor eax, eax
 *   2: b9 64 00 00 00        mov ecx, 100
 *   7: 48 83 c0 01           add rax, 1          (imm at 10)
 *  11: 48 83 f9 32           cmp rcx, 50
 *  15: 75 07                 jne 24
 *  17: c6 05 xx xx xx xx 03  mov byte [rip + (10 - 24)], 3
 *  24: 48 ff c9              dec rcx
 *  27: 75 ea                 jnz 7
 *  29: 0f 05                 syscall */
static void run_smc_loop(int translate)
{
	static const uint8_t prog[] = {0x31, 0xc0, 0xb9, 0x64, 0x00, 0x00, 0x00, 0x48, 0x83, 0xc0, 0x01,
				       0x48, 0x83, 0xf9, 0x32, 0x75, 0x07, 0xc6, 0x05, 0xf2, 0xff, 0xff,
				       0xff, 0x03, 0x48, 0xff, 0xc9, 0x75, 0xea, 0x0f, 0x05};
	struct env e;
	env_init(&e, translate, NULL, 0);
	memcpy(e.code, prog, sizeof(prog));
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_SYSCALL);
	/* 51 iterations add 1 (the 51st before its store), 49 add 3 */
	CHECK_EQ_U64(e.c.s.gpr[R_RAX], 51 + 49 * 3);
	CHECK_EQ_U64(e.code[10], 3);
	/* The host rewrites the code (as a read() into it would) and says so. */
	e.code[10] = 5;
	e.code[23] = 5;
	vmem_code_written(&e.vm, CODE + 10);
	e.c.s.rip = CODE;
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_SYSCALL);
	CHECK_EQ_U64(e.c.s.gpr[R_RAX], 100 * 5);
	env_fini(&e);
}

/* A store into the next instruction of the same translated block:
 *   0: 31 c0                 xor eax, eax
 *   2: b9 0a 00 00 00        mov ecx, 10
 *   7: 88 0d 03 00 00 00     mov [rip + 3], cl   (the ADD's immediate)
 *  13: 48 83 c0 00           add rax, imm8
 *  17: ff c9                 dec ecx
 *  19: 75 f2                 jnz 7
 *  21: 0f 05                 syscall */
static void run_smc_next(int translate)
{
	static const uint8_t prog[] = {0x31, 0xc0, 0xb9, 0x0a, 0x00, 0x00, 0x00, 0x88, 0x0d, 0x03, 0x00, 0x00,
				       0x00, 0x48, 0x83, 0xc0, 0x00, 0xff, 0xc9, 0x75, 0xf2, 0x0f, 0x05};
	struct env e;
	env_init(&e, translate, NULL, 0);
	memcpy(e.code, prog, sizeof(prog));
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_SYSCALL);
	CHECK_EQ_U64(e.c.s.gpr[R_RAX], 55);
	env_fini(&e);
}

static void test_smc(void)
{
	run_smc_loop(1);
	run_smc_loop(0);
	run_smc_next(1);
	run_smc_next(0);
}

/* jmp $ : a translation linked to itself */
static void *stopper(void *arg)
{
	struct cpu *c = arg;
	struct timespec ts = {0, 50 * 1000 * 1000};
	nanosleep(&ts, NULL);
	cpu_request_stop(c);
	return NULL;
}

static void run_endless(int translate)
{
	struct env e;
	env_init(&e, translate, NULL, 0);
	/* 0: 48 ff c0  inc rax;  3: eb fb  jmp 0 */
	static const uint8_t prog[] = {0x48, 0xff, 0xc0, 0xeb, 0xfb};
	memcpy(e.code, prog, sizeof(prog));
	/* an instruction limit ends it */
	uint64_t before = e.c.icount;
	CHECK(cpu_run(&e.c, 100000) == CPU_EXIT_LIMIT);
	uint64_t ran = e.c.icount - before;
	CHECK(ran >= 100000 && ran < 100000 + 64);
	CHECK_EQ_U64(e.c.s.gpr[R_RAX] * 2, ran);
	CHECK_EQ_U64(e.c.s.rip, CODE);
	/* and a stop request from another thread */
	pthread_t th;
	pthread_create(&th, NULL, stopper, &e.c);
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_STOP);
	pthread_join(th, NULL);
	CHECK(e.c.s.gpr[R_RAX] > 1000);
	env_fini(&e);
}

static void test_stop_and_limit(void)
{
	run_endless(1);
	run_endless(0);
}

/* A hot loop that walks off the end of its data page: the fault is at the
 * load, with the loop's registers as they were before it.
 *   0: 31 c0        xor eax, eax
 *   2: 48 03 06     add rax, [rsi]       <- faults at rsi = DATA + 4096
 *   5: 48 83 c6 08  add rsi, 8
 *   9: 48 ff c1     inc rcx
 *  12: eb f4        jmp 2 */
static void run_fault(int translate)
{
	struct env e;
	env_init(&e, translate, NULL, 0);
	static const uint8_t prog[] = {0x31, 0xc0, 0x48, 0x03, 0x06, 0x48, 0x83,
				       0xc6, 0x08, 0x48, 0xff, 0xc1, 0xeb, 0xf4};
	memcpy(e.code, prog, sizeof(prog));
	for (unsigned k = 0; k < 512; k++)
		memcpy(e.data + 8 * k, &(uint64_t){k}, 8);
	e.c.s.gpr[R_RSI] = DATA;
	e.c.s.gpr[R_RCX] = 0;
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_EXCEPTION);
	CHECK(e.c.exc_vector == 14);
	CHECK_EQ_U64(e.c.exc_addr, DATA + 4096);
	CHECK_EQ_U64(e.c.s.rip, CODE + 2);
	CHECK_EQ_U64(e.c.s.gpr[R_RSI], DATA + 4096);
	CHECK_EQ_U64(e.c.s.gpr[R_RCX], 512);
	CHECK_EQ_U64(e.c.s.gpr[R_RAX], 511 * 512 / 2);
	/* the flags of the last INC (rcx 511 -> 512): not zero, not negative */
	uint64_t fl = cpu_get_rflags(&e.c);
	CHECK(!(fl & FL_ZF) && !(fl & FL_SF));
	env_fini(&e);
}

static void test_fault(void)
{
	run_fault(1);
	run_fault(0);
}

/* Calls and returns through the jump cache, with a stack. */
static void run_calls(int translate)
{
	struct env e;
	env_init(&e, translate, NULL, 0);
	/*  0: b9 e8 03 00 00  mov ecx, 1000
	 *  5: e8 0a 00 00 00  call 20
	 * 10: 48 ff c9        dec rcx
	 * 13: 75 f6           jnz 5
	 * 15: 0f 05           syscall
	 * 20: 48 01 c8        add rax, rcx
	 * 23: c3              ret */
	static const uint8_t prog[] = {0xb9, 0xe8, 0x03, 0x00, 0x00, 0xe8, 0x0a, 0x00, 0x00, 0x00, 0x48, 0xff,
				       0xc9, 0x75, 0xf6, 0x0f, 0x05, 0x90, 0x90, 0x90, 0x48, 0x01, 0xc8, 0xc3};
	memcpy(e.code, prog, sizeof(prog));
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_SYSCALL);
	CHECK_EQ_U64(e.c.s.gpr[R_RAX], 1000 * 1001 / 2);
	CHECK_EQ_U64(e.c.s.gpr[R_RSP], STACK + 4096);
	CHECK_EQ_U64(e.c.s.rip, CODE + 17);
	env_fini(&e);
}

static void test_calls(void)
{
	run_calls(1);
	run_calls(0);
}

/* A process VM's soft TLB holds thousands of entries (CPU_TLB_USER): a
 * remapped or protected page must not be read through an entry left in
 * any part of it, interpreted or translated. The pages sit at TLB slots
 * far above the system-mode size (0xa00, 0xfff) and alias each other's
 * low bits (0xb00), so a flush that missed part of the table, or an
 * index cut to 256 entries, gives an old value.
 *   0: 48 8b 06     mov rax, [rsi]
 *   3: 48 8b 17     mov rdx, [rdi]
 *   6: 0f 05        syscall */
static void run_big_tlb(int translate)
{
	static const uint8_t prog[] = {0x48, 0x8b, 0x06, 0x48, 0x8b, 0x17, 0x0f, 0x05};
	struct env e;
	env_init(&e, translate, prog, sizeof(prog));
	const uint64_t far = 0xfff000ull, alias = 0xb00000ull;
	uint8_t *p1 = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *p2 = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memcpy(e.data, &(uint64_t){11}, 8);
	memcpy(p1, &(uint64_t){22}, 8);
	memcpy(p2, &(uint64_t){33}, 8);
	CHECK(vmem_map(&e.vm, far, 4096, p1, VMEM_R) == 0);
	CHECK(vmem_map(&e.vm, alias, 4096, p2, VMEM_R) == 0);
	/* [rsi] and [rdi]: the pair, then its other order, run twice each */
	const uint64_t pairs[][2] = {{DATA, far}, {far, alias}, {alias, DATA}, {DATA, far}};
	const uint64_t want[][2] = {{11, 22}, {22, 33}, {33, 11}, {11, 22}};
	for (unsigned k = 0; k < 4; k++) {
		e.c.s.rip = CODE;
		e.c.s.gpr[R_RSI] = pairs[k][0];
		e.c.s.gpr[R_RDI] = pairs[k][1];
		CHECK(cpu_run(&e.c, 0) == CPU_EXIT_SYSCALL);
		CHECK_EQ_U64(e.c.s.gpr[R_RAX], want[k][0]);
		CHECK_EQ_U64(e.c.s.gpr[R_RDX], want[k][1]);
	}
	/* far now maps p2: the entry at slot 0xfff must go */
	CHECK(vmem_unmap(&e.vm, far, 4096) == 0);
	CHECK(vmem_map(&e.vm, far, 4096, p2, VMEM_R) == 0);
	e.c.s.rip = CODE;
	e.c.s.gpr[R_RSI] = far;
	e.c.s.gpr[R_RDI] = DATA;
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_SYSCALL);
	CHECK_EQ_U64(e.c.s.gpr[R_RAX], 33);
	/* and no longer readable: a page fault at the first load */
	CHECK(vmem_protect(&e.vm, far, 4096, 0) == 0);
	e.c.s.rip = CODE;
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_EXCEPTION);
	CHECK(e.c.exc_vector == 14);
	CHECK_EQ_U64(e.c.exc_addr, far);
	CHECK_EQ_U64(e.c.s.rip, CODE);
	env_fini(&e);
	munmap(p1, 4096);
	munmap(p2, 4096);
}

static void test_big_tlb(void)
{
	run_big_tlb(1);
	run_big_tlb(0);
}

/* cpu_prefault makes exactly the whole pages inside its range resident:
 * a page it only partly covers may belong to something else. */
static void test_prefault(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *p = mmap(NULL, 4 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	if (p == MAP_FAILED)
		return;
	unsigned char in[4];
	cpu_prefault(p + 100, 2 * (size_t)pg, 1); /* page 1 whole, 0 and 2 in part */
	CHECK(mincore(p, 4 * (size_t)pg, in) == 0);
	if (!(in[1] & 1)) {
		/* MADV_POPULATE_WRITE is Linux 5.14: older kernels fault as before */
		TEST_SKIP("MADV_POPULATE_WRITE refused by this kernel");
		munmap(p, 4 * (size_t)pg);
		return;
	}
	CHECK(!(in[0] & 1));
	CHECK(!(in[2] & 1));
	CHECK(!(in[3] & 1));
	cpu_prefault(p + 2 * pg, 2 * (size_t)pg, 1);
	CHECK(mincore(p, 4 * (size_t)pg, in) == 0);
	CHECK(!(in[0] & 1));
	CHECK((in[2] & 1) && (in[3] & 1));
	cpu_prefault(p + 1, 0, 1);  /* empty */
	cpu_prefault(p + 1, 10, 1); /* inside one page */
	CHECK(mincore(p, (size_t)pg, in) == 0);
	CHECK(!(in[0] & 1));
	munmap(p, 4 * (size_t)pg);
}

/* A program of more blocks than one step of the decoded-block arena and of
 * the translation buffer makes resident (256 KiB each): 12000 blocks of
 * `add rax, k; jmp next`, every one translated at its first run (or all
 * interpreted), and the sum must come out the same. */
#define MANY 12000u
#define MANY_CODE 0x1000000ull
static void run_many_blocks(int translate)
{
	size_t len = (MANY * 8 + 2 + 4095) & ~(size_t)4095;
	uint8_t *code = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(code != MAP_FAILED);
	if (code == MAP_FAILED)
		return;
	uint64_t want = 0;
	for (uint32_t k = 0; k < MANY; k++) {
		uint32_t imm = k * 2654435761u >> 1; /* positive: sign-extended as is */
		uint8_t *q = code + k * 8;
		q[0] = 0x48;
		q[1] = 0x05; /* add rax, imm32 */
		memcpy(q + 2, &imm, 4);
		q[6] = 0xeb; /* jmp +0: the next block */
		q[7] = 0x00;
		want += imm;
	}
	code[MANY * 8] = 0x0f; /* syscall */
	code[MANY * 8 + 1] = 0x05;
	struct env e;
	env_init(&e, translate, NULL, 0);
	vmem_map(&e.vm, MANY_CODE, len, code, VMEM_R | VMEM_X);
	e.c.s.rip = MANY_CODE;
	e.c.s.gpr[R_RAX] = 0;
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_SYSCALL);
	CHECK_EQ_U64(e.c.s.gpr[R_RAX], want);
	CHECK_EQ_U64(e.c.s.rip, MANY_CODE + MANY * 8 + 2);
	/* and again, now through the decoded blocks and translations made */
	e.c.s.rip = MANY_CODE;
	e.c.s.gpr[R_RAX] = 1;
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_SYSCALL);
	CHECK_EQ_U64(e.c.s.gpr[R_RAX], want + 1);
	env_fini(&e);
	munmap(code, len);
}

static void test_many_blocks(void)
{
	run_many_blocks(1);
	run_many_blocks(0);
}

/* SSE integer and move instructions emitted inline (jit_sse.c), in a hot
 * loop over a data page, with the same results as the interpreter; then
 * precise faults in the middle of the translated block: a MOVDQA off a
 * 16-byte boundary (#GP) and a MOVDQU whose last bytes are on an unmapped
 * page (#PF), each with a warm TLB so the inline checks decide.
 *   0: movdqa xmm0, [rsi]         4: pcmpeqb xmm0, xmm1
 *   8: pmovmskb eax, xmm0         c: add rdx, rax
 *   f: movdqu xmm2, [rsi + 1]    14: paddd xmm2, xmm3
 *  18: pshufd xmm2, xmm2, 0x1b   1d: pxor xmm2, xmm1
 *  21: psrldq xmm2, 3            26: punpcklbw xmm2, xmm1
 *  2a: pshufb xmm2, xmm4         2f: movd xmm5, edx
 *  33: por xmm2, xmm5            37: movdqu [rdi], xmm2
 *  3b: movaps xmm6, xmm2         3e: add rsi, 16
 *  42: add rdi, 16               46: dec ecx
 *  48: jnz 0                     4a: syscall */
static const uint8_t sse_prog[] = {0x66, 0x0f, 0x6f, 0x06, 0x66, 0x0f, 0x74, 0xc1, 0x66, 0x0f, 0xd7, 0xc0, 0x48,
				   0x01, 0xc2, 0xf3, 0x0f, 0x6f, 0x56, 0x01, 0x66, 0x0f, 0xfe, 0xd3, 0x66, 0x0f,
				   0x70, 0xd2, 0x1b, 0x66, 0x0f, 0xef, 0xd1, 0x66, 0x0f, 0x73, 0xda, 0x03, 0x66,
				   0x0f, 0x60, 0xd1, 0x66, 0x0f, 0x38, 0x00, 0xd4, 0x66, 0x0f, 0x6e, 0xea, 0x66,
				   0x0f, 0xeb, 0xd5, 0xf3, 0x0f, 0x7f, 0x17, 0x0f, 0x28, 0xf2, 0x48, 0x83, 0xc6,
				   0x10, 0x48, 0x83, 0xc7, 0x10, 0xff, 0xc9, 0x75, 0xb6, 0x0f, 0x05};

static void sse_start(struct env *e, uint64_t rsi, unsigned n)
{
	e->c.s.rip = CODE;
	e->c.s.gpr[R_RSI] = rsi;
	e->c.s.gpr[R_RDI] = DATA + 2048;
	e->c.s.gpr[R_RCX] = n;
	e->c.s.gpr[R_RDX] = 0;
	for (unsigned k = 0; k < 16; k++) {
		e->c.s.xmm[1].b[k] = (uint8_t)(k & 1 ? 0x5a : k);
		e->c.s.xmm[3].b[k] = (uint8_t)(0x11 * k);
		e->c.s.xmm[4].b[k] = (uint8_t)((k * 7) & 15) | (k == 5 ? 0x80 : 0);
	}
}

/* out: the 1 KiB the loop writes, then xmm0-6 and rdx */
static void run_sse(int translate, uint8_t *out)
{
	struct env e;
	env_init(&e, translate, sse_prog, sizeof(sse_prog));
	for (unsigned k = 0; k < 4096; k++)
		e.data[k] = (uint8_t)(k % 3 ? k * 13 : 0x5a);
	sse_start(&e, DATA, 64);
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_SYSCALL);
	/* rdx: the PCMPEQB masks of the 64 rows against xmm1, counted here */
	uint64_t want = 0;
	for (unsigned r = 0; r < 64; r++)
		for (unsigned k = 0; k < 16; k++)
			if (e.data[16 * r + k] == (uint8_t)(k & 1 ? 0x5a : k))
				want += 1u << k;
	CHECK_EQ_U64(e.c.s.gpr[R_RDX], want);
	memcpy(out, e.data + 2048, 1024);
	memcpy(out + 1024, e.c.s.xmm, 7 * 16);
	memcpy(out + 1024 + 7 * 16, &e.c.s.gpr[R_RDX], 8);

	/* again from an address off the 16-byte boundary: #GP at the MOVDQA */
	sse_start(&e, DATA + 8, 64);
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_EXCEPTION);
	CHECK(e.c.exc_vector == 13);
	CHECK_EQ_U64(e.c.s.rip, CODE);

	/* the last row's MOVDQU reaches the unmapped page after DATA: #PF
	 * there, the rows before it done and the row's first four
	 * instructions retired (rdx has its mask) */
	sse_start(&e, DATA + 4096 - 4 * 16, 64);
	e.c.s.gpr[R_RDI] = DATA + 1024;
	CHECK(cpu_run(&e.c, 0) == CPU_EXIT_EXCEPTION);
	CHECK(e.c.exc_vector == 14);
	CHECK_EQ_U64(e.c.exc_addr, DATA + 4096);
	CHECK_EQ_U64(e.c.s.rip, CODE + 0xf);
	CHECK_EQ_U64(e.c.s.gpr[R_RSI], DATA + 4096 - 16);
	CHECK_EQ_U64(e.c.s.gpr[R_RDI], DATA + 1024 + 3 * 16);
	CHECK_EQ_U64(e.c.s.gpr[R_RCX], 61);
	want = 0;
	for (unsigned r = 252; r < 256; r++)
		for (unsigned k = 0; k < 16; k++)
			if (e.data[16 * r + k] == (uint8_t)(k & 1 ? 0x5a : k))
				want += 1u << k;
	CHECK_EQ_U64(e.c.s.gpr[R_RDX], want);
	env_fini(&e);
}

static void test_sse(void)
{
	static uint8_t a[1024 + 7 * 16 + 8], b[sizeof(a)];
	run_sse(1, a);
	run_sse(0, b);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
}

int main(void)
{
	RUN(test_smc);
	RUN(test_stop_and_limit);
	RUN(test_fault);
	RUN(test_calls);
	RUN(test_big_tlb);
	RUN(test_prefault);
	RUN(test_many_blocks);
	RUN(test_sse);
	return test_report();
}
