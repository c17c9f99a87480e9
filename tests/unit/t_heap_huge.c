/* corral restore's heap on a transparent huge page (src/cli/heap.c): the
 * start-up's allocations, large ones included, land in one 2 MiB-aligned
 * range that the kernel was asked to back with a huge page before anything
 * touched it, and the heap still works (calloc zeroes, free and malloc
 * reuse). Skipped where the kernel has no transparent huge pages. */
#include "../src/cli/heap.c"

#include <stdio.h>
#include <string.h>

#include "testhelp.h"

static uintptr_t huge;
static int resident = -1; /* pages of the range resident right after cli_heap_huge */

/* the kernel's THP mode: 1 if "always" or "madvise" is selected */
static int thp_on(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

/* A field of the smaps entry of the mapping that holds addr, -1 if none. */
static long smaps_field(uintptr_t addr, const char *field)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512];
	int in = 0;
	long val = -1;
	size_t flen = strlen(field);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = addr >= lo && addr < hi;
			continue;
		}
		if (in && !strncmp(line, field, flen) && line[flen] == ':') {
			val = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

static int in_huge(const void *p, size_t len)
{
	return (uintptr_t)p >= huge && (uintptr_t)p + len <= huge + HEAP_HUGE;
}

static void test_hint_before_touch(void)
{
	if (!thp_on()) {
		TEST_SKIP("no transparent huge pages in this kernel");
		return;
	}
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	TEST_SKIP("the heap is the sanitizer's allocator");
	return;
#endif
	CHECK(huge != 0);
	if (!huge)
		return;
	CHECK_EQ_U64(huge & (HEAP_HUGE - 1), 0);
	/* nothing in the range was touched: a small page faulted in before
	 * the hint would keep the whole range on small pages */
	CHECK_EQ_U64(resident, 0);
	CHECK_EQ_U64(smaps_field(huge, "THPeligible"), 1);
}

static void test_allocations_land_there(void)
{
	if (!huge || !thp_on()) {
		TEST_SKIP("the heap stays on small pages here");
		return;
	}
	/* the sizes of struct vm, struct cpu, the machine, a decode cache */
	static const size_t sizes[] = {146432, 136896, 30880, 32840, 4176, 96, 24};
	void *p[sizeof(sizes) / sizeof(sizes[0])];
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		p[k] = calloc(1, sizes[k]);
		CHECK(p[k] != NULL);
		if (!p[k])
			return;
		CHECK(in_huge(p[k], sizes[k]));
		const unsigned char *b = p[k];
		size_t nz = 0;
		for (size_t i = 0; i < sizes[k]; i++)
			nz += b[i] != 0;
		CHECK_EQ_U64(nz, 0);
		memset(p[k], 0xa5, sizes[k]);
	}
	long kb = smaps_field(huge, "AnonHugePages");
	if (kb == 0)
		TEST_SKIP("the kernel had no free huge page (the range is on small pages)");
	else
		CHECK(kb >= (long)(HEAP_HUGE >> 10));
	/* freed memory comes back, zeroed by calloc */
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		free(p[k]);
	unsigned char *q = calloc(1, sizes[0]);
	CHECK(q != NULL && in_huge(q, sizes[0]));
	size_t nz = 0;
	for (size_t i = 0; q && i < sizes[0]; i++)
		nz += q[i] != 0;
	CHECK_EQ_U64(nz, 0);
	free(q);
	/* the huge page is not trimmed away by those frees */
	CHECK((uintptr_t)sbrk(0) >= huge + HEAP_HUGE);
}

int main(void)
{
	huge = cli_heap_huge(); /* first: as corral restore does */
	unsigned char vec[HEAP_HUGE / 4096];
	if (huge && mincore((void *)huge, HEAP_HUGE, vec) == 0) {
		resident = 0;
		for (size_t k = 0; k < sizeof(vec); k++)
			resident += vec[k] & 1;
	}
	RUN(test_hint_before_touch);
	RUN(test_allocations_land_there);
	return test_report();
}
