/* Runs functions of this test program both natively and on corral's CPU
 * (their code pages mapped into a vmem at the same addresses) and compares
 * results: loops, recursion, strings, bit tricks, multiply/divide. Also
 * checks faults, self-modifying code and vmem protections. */
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "cpu/vmem.h"
#include "testhelp.h"

#define GUEST __attribute__((noinline, noclone, no_sanitize("address", "undefined"), no_stack_protector))

GUEST static uint64_t g_fib(uint64_t n)
{
	return n < 2 ? n : g_fib(n - 1) + g_fib(n - 2);
}

GUEST static uint64_t g_sort_sum(uint64_t *a, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		for (uint64_t j = i + 1; j < n; j++)
			if ((int64_t)a[j] < (int64_t)a[i]) {
				uint64_t t = a[i];
				a[i] = a[j];
				a[j] = t;
			}
	uint64_t h = 0;
	for (uint64_t i = 0; i < n; i++)
		h = h * 31 + a[i];
	return h;
}

GUEST static uint64_t g_bits(uint64_t x, uint64_t y)
{
	uint64_t r = 0;
	for (int k = 0; k < 200; k++) {
		r += __builtin_popcountll(x) + (x ? __builtin_ctzll(x) : 0) + (y ? __builtin_clzll(y) : 0);
		r ^= (x << (k & 63)) | (y >> ((k * 7) & 63));
		r += (uint64_t)((int64_t)x >> (k & 31));
		r = (r << 13) | (r >> 51);
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		y ^= x >> 17;
		if (y)
			r += x / (y | 1) + x % (y | 1);
		r += (uint64_t)((int64_t)(x | 1) / (int64_t)((y | 1) >> 3 | 1));
		r += (uint32_t)x * (uint32_t)y + (uint16_t)x / ((uint8_t)y | 1);
		r += (uint64_t)(((unsigned __int128)x * y) >> 64);
		r -= (int8_t)x < (int8_t)y ? 3 : (uint16_t)x > (uint16_t)y ? 5 : 7;
	}
	return r;
}

/* No library calls may appear in guest functions (libc is not mapped). */
GUEST __attribute__((optimize("no-tree-loop-distribute-patterns"))) static uint64_t g_str(char *dst, const char *src,
											  uint64_t n)
{
	uint64_t h = 5381;
	for (uint64_t k = 0; k < n; k++)
		dst[k] = src[(k * 7) % n] ^ (char)k;
	for (uint64_t k = 0; k < 100; k++)
		dst[n + k] = 'x';
	for (uint64_t k = 0; k < n + 100; k++)
		h = h * 33 + (unsigned char)dst[k];
	return h;
}

struct guest {
	struct vmem vm;
	struct cpu cpu;
	uint8_t *stack;
	uint8_t *stub;
};

static long page_size;

static void map_identity(struct vmem *vm, const void *p, size_t len, unsigned prot)
{
	uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page_size - 1);
	uintptr_t e = ((uintptr_t)p + len + page_size - 1) & ~(uintptr_t)(page_size - 1);
	CHECK(vmem_map(vm, a, e - a, (void *)a, prot) == 0);
}

static void guest_init(struct guest *g)
{
	CHECK(vmem_init(&g->vm) == 0);
	CHECK(cpu_init(&g->cpu, CPU_MODE_USER, &g->vm) == 0);
	g->stack = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	g->stub = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	g->stub[0] = 0x0f; /* syscall */
	g->stub[1] = 0x05;
	map_identity(&g->vm, g->stack, 1 << 20, VMEM_R | VMEM_W);
	map_identity(&g->vm, g->stub, 4096, VMEM_R | VMEM_X);
}

static void guest_fini(struct guest *g)
{
	cpu_destroy(&g->cpu);
	vmem_destroy(&g->vm);
	munmap(g->stack, 1 << 20);
	munmap(g->stub, 4096);
}

/* Call fn(a, b, c) on the emulated CPU; its code must already be mapped. */
static uint64_t guest_call(struct guest *g, const void *fn, uint64_t a, uint64_t b, uint64_t c3, enum cpu_exit *why)
{
	struct cpu *c = &g->cpu;
	uint64_t sp = (uint64_t)(uintptr_t)(g->stack + (1 << 20) - 72);
	memcpy((void *)(uintptr_t)sp, &(uint64_t){(uint64_t)(uintptr_t)g->stub}, 8);
	c->s.gpr[4] = sp;
	c->s.gpr[7] = a;
	c->s.gpr[6] = b;
	c->s.gpr[2] = c3;
	c->s.rip = (uint64_t)(uintptr_t)fn;
	*why = cpu_run(c, 2000000000ull);
	return c->s.gpr[0];
}

static int map_phdr(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	/* Only this program (the first object), each loadable segment as is. */
	if (info->dlpi_name && info->dlpi_name[0])
		return 1;
	for (int k = 0; k < info->dlpi_phnum; k++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
		if (ph->p_type != PT_LOAD)
			continue;
		unsigned prot = VMEM_R | ((ph->p_flags & PFERR_W) ? VMEM_W : 0) | ((ph->p_flags & PF_X) ? VMEM_X : 0);
		map_identity(arg, (void *)(info->dlpi_addr + ph->p_vaddr), ph->p_memsz, prot);
	}
	return 1;
}

static void map_text(struct vmem *vm)
{
	dl_iterate_phdr(map_phdr, vm);
}

static void test_functions(void)
{
	struct guest g;
	guest_init(&g);
	map_text(&g.vm);
	enum cpu_exit why;

	for (uint64_t n = 0; n < 22; n += 3) {
		uint64_t r = guest_call(&g, (const void *)g_fib, n, 0, 0, &why);
		CHECK(why == CPU_EXIT_SYSCALL);
		CHECK_EQ_U64(r, g_fib(n));
	}

	uint64_t *arr = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *arr2 = arr + 512;
	uint64_t seed = 12345;
	for (int k = 0; k < 300; k++) {
		seed = seed * 6364136223846793005ull + 1;
		arr[k] = arr2[k] = seed;
	}
	map_identity(&g.vm, arr, 8192, VMEM_R | VMEM_W);
	uint64_t r = guest_call(&g, (const void *)g_sort_sum, (uint64_t)(uintptr_t)arr, 300, 0, &why);
	CHECK(why == CPU_EXIT_SYSCALL);
	CHECK_EQ_U64(r, g_sort_sum(arr2, 300));
	CHECK(memcmp(arr, arr2, 300 * 8) == 0);

	uint64_t xs[] = {0, 1, ~0ull, 0x8000000000000000ull, 0x123456789abcdefull, 77};
	for (unsigned k = 0; k < 6; k++)
		for (unsigned m = 0; m < 6; m++) {
			r = guest_call(&g, (const void *)g_bits, xs[k], xs[m], 0, &why);
			CHECK(why == CPU_EXIT_SYSCALL);
			CHECK_EQ_U64(r, g_bits(xs[k], xs[m]));
		}

	char *buf = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *src = buf, *dst1 = buf + 4096 + 100, *dst2 = buf + 2 * 4096;
	for (int k = 0; k < 1000; k++)
		src[k] = (char)(k * 13 + 1);
	map_identity(&g.vm, buf, 3 * 4096, VMEM_R | VMEM_W);
	r = guest_call(&g, (const void *)g_str, (uint64_t)(uintptr_t)dst1, (uint64_t)(uintptr_t)src, 900, &why);
	CHECK(why == CPU_EXIT_SYSCALL);
	CHECK_EQ_U64(r, g_str(dst2, src, 900));
	CHECK(memcmp(dst1, dst2, 1000) == 0);

	munmap(arr, 8192);
	munmap(buf, 3 * 4096);
	guest_fini(&g);
}

static void test_faults(void)
{
	struct guest g;
	guest_init(&g);
	enum cpu_exit why;
	uint8_t *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	map_identity(&g.vm, code, 4096, VMEM_R | VMEM_X);

	/* mov rax, [rdi] from an unmapped address: #PF with that address, RIP unchanged */
	static const uint8_t load[] = {0x48, 0x8b, 0x07, 0xc3};
	memcpy(code, load, sizeof(load));
	guest_call(&g, code, 0x10000, 0, 0, &why);
	CHECK(why == CPU_EXIT_EXCEPTION);
	CHECK(g.cpu.exc_vector == EXC_PF);
	CHECK_EQ_U64(g.cpu.exc_addr, 0x10000);
	CHECK_EQ_U64(g.cpu.s.rip, (uint64_t)(uintptr_t)code);

	/* a store into the (read+exec only) code page: #PF with PFERR_P|PFERR_W */
	static const uint8_t store[] = {0x48, 0x89, 0x37, 0xc3};
	memcpy(code, store, sizeof(store));
	cpu_flush(&g.cpu);
	guest_call(&g, code, (uint64_t)(uintptr_t)code, 0x1234, 0, &why);
	CHECK(why == CPU_EXIT_EXCEPTION && g.cpu.exc_vector == EXC_PF);
	CHECK(g.cpu.exc_error & 0x2);
	CHECK(g.cpu.exc_error & 0x1);

	/* div by zero: #DE */
	static const uint8_t div0[] = {0x31, 0xc9, 0x48, 0xf7, 0xf1, 0xc3};
	memcpy(code, div0, sizeof(div0));
	cpu_flush(&g.cpu);
	guest_call(&g, code, 0, 0, 0, &why);
	CHECK(why == CPU_EXIT_EXCEPTION && g.cpu.exc_vector == EXC_DE);
	CHECK_EQ_U64(g.cpu.s.rip, (uint64_t)(uintptr_t)code + 2);

	/* garbage: ud2 and a VEX instruction are #UD */
	static const uint8_t ud[] = {0xc5, 0xf8, 0x77};
	memcpy(code, ud, sizeof(ud));
	cpu_flush(&g.cpu);
	guest_call(&g, code, 0, 0, 0, &why);
	CHECK(why == CPU_EXIT_EXCEPTION && g.cpu.exc_vector == EXC_UD);

	/* jump to a non-executable page: #PF with PFERR_I */
	guest_call(&g, g.stack, 0, 0, 0, &why);
	CHECK(why == CPU_EXIT_EXCEPTION && g.cpu.exc_vector == EXC_PF);
	CHECK(g.cpu.exc_error & 0x10);

	munmap(code, 4096);
	guest_fini(&g);
}

/* Code that rewrites the immediate of an instruction it then runs again. */
static void test_self_modifying(void)
{
	struct guest g;
	guest_init(&g);
	enum cpu_exit why;
	uint8_t *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	map_identity(&g.vm, code, 4096, VMEM_R | VMEM_W | VMEM_X);
	/*   0: b8 01 00 00 00     mov eax, 1
	 *   5: c3                 ret            */
	static const uint8_t f[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3};
	/* 100: c6 05 xx xx xx xx 2a   mov byte [rip+rel], 42   (patches f's imm)
	 * 107: e9 rel32               jmp f                      */
	memcpy(code, f, sizeof(f));
	uint8_t *p = code + 100;
	int32_t rel = (int32_t)((code + 1) - (p + 7));
	p[0] = 0xc6;
	p[1] = 0x05;
	memcpy(p + 2, &rel, 4);
	p[6] = 42;
	rel = (int32_t)(code - (p + 12));
	p[7] = 0xe9;
	memcpy(p + 8, &rel, 4);
	CHECK_EQ_U64(guest_call(&g, code, 0, 0, 0, &why), 1);
	CHECK(why == CPU_EXIT_SYSCALL);
	CHECK_EQ_U64(guest_call(&g, p, 0, 0, 0, &why), 42);
	CHECK(why == CPU_EXIT_SYSCALL);
	/* and a store into the very block being executed: the next instruction */
	/* 200: c6 05 00 00 00 00 05?  -> mov byte [rip+0], imm patches the following mov's imm */
	uint8_t *q = code + 200;
	static const uint8_t sm[] = {0xc6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x07, /* mov byte [rip+1], 7 */
				     0xb8, 0x02, 0x00, 0x00, 0x00, 0xc3};      /* mov eax, 2; ret */
	memcpy(q, sm, sizeof(sm));
	CHECK_EQ_U64(guest_call(&g, q, 0, 0, 0, &why), 7);
	munmap(code, 4096);
	guest_fini(&g);
}

static void test_vmem(void)
{
	struct vmem vm;
	CHECK(vmem_init(&vm) == 0);
	uint8_t *mem = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(vmem_map(&vm, 0x400000, 2 * 4096, mem, VMEM_R | VMEM_W) == 0);
	CHECK(vmem_map(&vm, 0x400001, 4096, mem, VMEM_R) == -EINVAL);
	CHECK(vmem_map(&vm, VMEM_LIMIT, 4096, mem, VMEM_R) == -EINVAL);
	CHECK(vmem_write(&vm, 0x400ff0, "hello, world, across", 21) == 0);
	char buf[32];
	CHECK(vmem_read(&vm, 0x400ff0, buf, 21) == 0 && strcmp(buf, "hello, world, across") == 0);
	CHECK(vmem_read_str(&vm, 0x400ff0, buf, sizeof(buf)) == 20);
	CHECK(vmem_read_str(&vm, 0x400ff0, buf, 5) == -ENAMETOOLONG);
	CHECK(vmem_read(&vm, 0x401ff0, buf, 32) == -EFAULT);
	CHECK(vmem_protect(&vm, 0x401000, 4096, VMEM_R) == 0);
	CHECK(vmem_write(&vm, 0x401000, "x", 1) == -EFAULT);
	CHECK(vmem_protect(&vm, 0x401000, 8192, VMEM_R) == -ENOMEM);
	CHECK(vmem_unmap(&vm, 0x400000, 4096) == 0);
	CHECK(vmem_lookup(&vm, 0x400000, NULL) == NULL);
	unsigned prot = 0;
	CHECK(vmem_lookup(&vm, 0x401000, &prot) == mem + 4096 && prot == VMEM_R);
	vmem_destroy(&vm);
	munmap(mem, 3 * 4096);
}

int main(void)
{
	page_size = sysconf(_SC_PAGESIZE);
	RUN(test_vmem);
	RUN(test_functions);
	RUN(test_faults);
	RUN(test_self_modifying);
	return test_report();
}
