/* The CPU fuzz entry shared by the libFuzzer target (fuzz_cpu.c) and the
 * make-check replay of seeds and regressions (t_regress.c): the input is
 * guest code, run from a fresh state for a bounded number of instructions. */
#ifndef CORRAL_TESTS_FUZZ_CPU_H
#define CORRAL_TESTS_FUZZ_CPU_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/vmem.h"

#define FZ_CODE 0x400000ull /* code: the input, guest-writable too (self-modifying code) */
#define FZ_CODE_PAGES 4
#define FZ_DATA 0x600000ull /* data pages that registers point into */
#define FZ_DATA_PAGES 2
#define FZ_STACK 0x7fe000ull
#define FZ_STACK_PAGES 2
#define FZ_MAX_INSNS 20000
#define FZ_MAX_SYSCALLS 16

static struct {
	int ready;
	struct vmem vm;
	struct cpu c;
	uint8_t *code, *data, *stack;
} fz;

static int fuzz_cpu_setup(void)
{
	size_t pg = VMEM_PAGE;
	fz.code = aligned_alloc(pg, FZ_CODE_PAGES * pg);
	fz.data = aligned_alloc(pg, FZ_DATA_PAGES * pg);
	fz.stack = aligned_alloc(pg, FZ_STACK_PAGES * pg);
	if (!fz.code || !fz.data || !fz.stack || vmem_init(&fz.vm))
		return -1;
	if (vmem_map(&fz.vm, FZ_CODE, FZ_CODE_PAGES * pg, fz.code, VMEM_R | VMEM_W | VMEM_X) ||
	    vmem_map(&fz.vm, FZ_DATA, FZ_DATA_PAGES * pg, fz.data, VMEM_R | VMEM_W) ||
	    vmem_map(&fz.vm, FZ_STACK, FZ_STACK_PAGES * pg, fz.stack, VMEM_R | VMEM_W))
		return -1;
	if (cpu_init(&fz.c, CPU_MODE_USER, &fz.vm))
		return -1;
	fz.ready = 1;
	return 0;
}

static uint64_t fuzz_mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Run one input. Any exit of the guest is fine; only a crash (or a
 * sanitizer report) of the host process is a finding. */
static int fuzz_cpu_one(const uint8_t *in, size_t n)
{
	if (!fz.ready && fuzz_cpu_setup())
		abort();
	struct cpu *c = &fz.c;
	size_t code_max = FZ_CODE_PAGES * VMEM_PAGE;
	if (n > code_max)
		n = code_max;

	/* Registers and memory contents from a hash of the input, so that the
	 * same input always runs the same way. */
	uint64_t s = 0x5eed;
	for (size_t k = 0; k < n; k++)
		s = (s ^ in[k]) * 0x100000001b3ull;
	uint64_t sel = fuzz_mix(&s);

	memset(fz.code, 0xf4, code_max); /* HLT (#GP in user mode) after the input */
	memcpy(fz.code, in, n);
	for (size_t k = 0; k < FZ_DATA_PAGES * VMEM_PAGE; k += 8) {
		uint64_t v = fuzz_mix(&s);
		memcpy(fz.data + k, &v, 8);
	}
	memset(fz.stack, 0, FZ_STACK_PAGES * VMEM_PAGE);

	cpu_reset_user(c);
	cpu_flush(c);
	for (unsigned r = 0; r < 16; r++) {
		uint64_t v = fuzz_mix(&s);
		switch ((sel >> (2 * r)) & 3) {
		case 0: /* a pointer into the data pages */ v = FZ_DATA + (v % (FZ_DATA_PAGES * VMEM_PAGE)); break;
		case 1: /* small */ v &= 0xff; break;
		default: break;
		}
		c->s.gpr[r] = v;
	}
	c->s.gpr[R_RSP] = FZ_STACK + FZ_STACK_PAGES * VMEM_PAGE - 256;
	cpu_set_rflags(c, 0x202 | (fuzz_mix(&s) & 0xcd5));
	c->s.rip = FZ_CODE;

	(void)cpu_insn_length(in, n);

	uint64_t left = FZ_MAX_INSNS;
	for (unsigned sc = 0; sc <= FZ_MAX_SYSCALLS && left; sc++) {
		uint64_t before = c->icount;
		enum cpu_exit e = cpu_run(c, left);
		uint64_t ran = c->icount - before;
		left = ran >= left ? 0 : left - ran;
		if (e != CPU_EXIT_SYSCALL)
			break;
		c->s.gpr[R_RAX] = (uint64_t)-38; /* -ENOSYS, and go on */
	}
	(void)cpu_get_rflags(c);
	return 0;
}

#endif
