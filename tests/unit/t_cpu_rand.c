/* RDRAND and RDSEED on corral's CPU, interpreted and translated: CPUID
 * offers them, each form writes its register at its width with CF=1 and
 * the other arithmetic flags clear, values differ from call to call, and
 * the encodings beside them that corral does not offer (VMPTRLD, RDPID)
 * stay #UD. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu/cpu.h"
#include "cpu/vmem.h"
#include "testhelp.h"
#include "unit/cpu_env.h"

/*  0: 31 c0          xor eax, eax     (ZF and PF set, to be cleared)
 *  2: 48 0f c7 f0    rdrand rax
 *  6: 9c             pushfq
 *  7: 5a             pop rdx
 *  8: 48 0f c7 f7    rdrand rdi
 *  c: 0f c7 fb       rdseed ebx       (32-bit: the upper half is zeroed)
 *  f: 66 0f c7 f6    rdrand si        (16-bit: the rest of RSI is kept)
 * 13: 0f 05          syscall */
static void run_forms(int translate)
{
	static const uint8_t prog[] = {0x31, 0xc0, 0x48, 0x0f, 0xc7, 0xf0, 0x9c, 0x5a, 0x48, 0x0f, 0xc7,
				       0xf7, 0x0f, 0xc7, 0xfb, 0x66, 0x0f, 0xc7, 0xf6, 0x0f, 0x05};
	uint64_t rax[4], rdi[4];
	for (int k = 0; k < 4; k++) {
		struct env e;
		env_init(&e, translate, prog, sizeof(prog));
		e.c.s.gpr[R_RBX] = ~0ull;
		e.c.s.gpr[R_RSI] = 0x1122334455667788ull;
		CHECK(cpu_run(&e.c, 0) == CPU_EXIT_SYSCALL);
		CHECK_EQ_U64(e.c.s.rip, CODE + sizeof(prog));
		uint64_t fl = e.c.s.gpr[R_RDX];
		CHECK_EQ_U64(fl & (FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF), FL_CF);
		CHECK_EQ_U64(e.c.s.gpr[R_RBX] >> 32, 0);
		CHECK_EQ_U64(e.c.s.gpr[R_RSI] >> 16, 0x112233445566ull);
		/* the flags of the last one, RDRAND SI, as the CPU holds them */
		CHECK_EQ_U64(cpu_get_rflags(&e.c) & (FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF), FL_CF);
		rax[k] = e.c.s.gpr[R_RAX];
		rdi[k] = e.c.s.gpr[R_RDI];
		env_fini(&e);
	}
	/* 64 random bits each: a repeat means the source is not random (the
	 * chance that a working one repeats here is about 2^-59) */
	for (int a = 0; a < 4; a++) {
		CHECK(rax[a] != rdi[a]);
		for (int b = a + 1; b < 4; b++)
			CHECK(rax[a] != rax[b] && rdi[a] != rdi[b]);
	}
}

static void test_forms(void)
{
	run_forms(1);
	run_forms(0);
}

/* Neighbours that must stay undefined: a memory operand (/6 is VMPTRLD,
 * VMX), and F3 0F C7 /7 (RDPID, not offered) */
static void run_ud(int translate)
{
	static const uint8_t mem[] = {0x48, 0x0f, 0xc7, 0x30, 0x0f, 0x05};
	static const uint8_t rdpid[] = {0xf3, 0x0f, 0xc7, 0xf8, 0x0f, 0x05};
	const uint8_t *progs[] = {mem, rdpid};
	for (int k = 0; k < 2; k++) {
		struct env e;
		env_init(&e, translate, progs[k], 6);
		e.c.s.gpr[R_RAX] = STACK;
		CHECK(cpu_run(&e.c, 0) == CPU_EXIT_EXCEPTION);
		CHECK_EQ_U64(e.c.exc_vector, 6);
		CHECK_EQ_U64(e.c.s.rip, CODE);
		CHECK_EQ_U64(e.c.s.gpr[R_RAX], STACK);
		env_fini(&e);
	}
}

static void test_ud(void)
{
	run_ud(1);
	run_ud(0);
}

/* CPUID.1:ECX[30] RDRAND and CPUID.(7,0):EBX[18] RDSEED */
static void test_cpuid(void)
{
	uint32_t r[4];
	cpu_cpuid(NULL, 1, 0, r);
	CHECK(r[2] & (1u << 30));
	cpu_cpuid(NULL, 7, 0, r);
	CHECK(r[1] & (1u << 18));
}

int main(void)
{
	RUN(test_cpuid);
	RUN(test_forms);
	RUN(test_ud);
	return test_report();
}
