/* A user-mode cpu with one page each of code (readable, writable and
 * executable, so tests can rewrite it), stack and data, for unit tests
 * that run a few instructions interpreted and translated. */
#ifndef CORRAL_TEST_CPU_ENV_H
#define CORRAL_TEST_CPU_ENV_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu/cpu.h"
#include "cpu/vmem.h"

#define CODE 0x400000ull
#define STACK 0x800000ull
#define DATA 0xa00000ull

struct env {
	struct vmem vm;
	struct cpu c;
	uint8_t *code, *stack, *data;
};

/* translate: every block is translated at once (else never); prog, if
 * given, is copied to CODE, where RIP starts. */
static inline void env_init(struct env *e, int translate, const uint8_t *prog, size_t n)
{
	vmem_init(&e->vm);
	e->code = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	e->stack = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	e->data = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (prog)
		memcpy(e->code, prog, n);
	vmem_map(&e->vm, CODE, 4096, e->code, VMEM_R | VMEM_W | VMEM_X);
	vmem_map(&e->vm, STACK, 4096, e->stack, VMEM_R | VMEM_W);
	vmem_map(&e->vm, DATA, 4096, e->data, VMEM_R | VMEM_W);
	cpu_init(&e->c, CPU_MODE_USER, &e->vm);
	e->c.jit_hot = translate ? 0 : ~0u;
	e->c.s.rip = CODE;
	e->c.s.gpr[R_RSP] = STACK + 4096;
}

static inline void env_fini(struct env *e)
{
	cpu_destroy(&e->c);
	vmem_destroy(&e->vm);
	munmap(e->code, 4096);
	munmap(e->stack, 4096);
	munmap(e->data, 4096);
}

#endif
