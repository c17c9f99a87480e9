/* The heap of a restoring VM process on one transparent huge page: what
 * `corral restore` allocates before the guest's first instruction (struct
 * vm, the machine, the vCPU, its decode and jump caches) lands in one 2 MiB
 * page, one page fault instead of about fifty (docs/benchmarks.md). */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli/cli.h"

#define HEAP_HUGE (2u << 20) /* x86-64's PMD page */

/* Large objects of the start-up (struct vm and struct cpu are about 140 KiB
 * each, above glibc's default 128 KiB) from the heap, not each from its
 * own mapping of small pages. */
#define HEAP_MMAP_THRESHOLD (1u << 20)

/* glibc trims the top of the heap once more than this is free there; above
 * the huge page, so that a free() during start-up does not cut it. */
#define HEAP_TRIM_THRESHOLD (2 * HEAP_HUGE)

uintptr_t cli_heap_huge(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return 0; /* the sanitizer's allocator has no program break */
#else
	/* glibc's main arena ends in its top chunk, whose end is the program
	 * break and whose size mallinfo2 reports as keepcost. A chunk that
	 * takes the top up to just below the next 2 MiB boundary (never
	 * written past its header: it costs address space only) leaves the
	 * top starting there, and a top pad makes the heap grow to cover a
	 * whole huge page above it. The top's header stays below the boundary:
	 * a small page touched there before the hint below would keep the
	 * whole 2 MiB on small pages. Should any of this not hold (another
	 * allocator), the checks below give up before the hint: allocations
	 * stay where they are, on small pages. */
	/* the arena and its thread cache exist (in a dynamic corral, not yet);
	 * volatile: the compiler drops a malloc freed unused */
	void *volatile first = malloc(1);
	free(first);
	struct mallinfo2 mi = mallinfo2();
	uintptr_t brk = (uintptr_t)sbrk(0);
	if (brk == (uintptr_t)-1 || mi.keepcost > brk)
		return 0;
	uintptr_t top = brk - mi.keepcost;
	/* above the break: the filler is more than the top has, and the heap
	 * grows by it and the pad */
	uintptr_t a = (brk + 64 + HEAP_HUGE - 1) & ~(uintptr_t)(HEAP_HUGE - 1);
	mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD);
	mallopt(M_MMAP_THRESHOLD, 2 * HEAP_HUGE); /* the filler below: from the heap */
	mallopt(M_TOP_PAD, HEAP_HUGE + 4096);
	/* the chunk's size is the request plus its size field: it ends 64
	 * bytes below a, where the top's header goes */
	static void *filler; /* kept for good: the heap below a */
	filler = malloc(a - top - 64 - sizeof(size_t));
	mallopt(M_TOP_PAD, 128 << 10); /* glibc's default */
	mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD);
	mi = mallinfo2();
	brk = (uintptr_t)sbrk(0);
	if (!filler || brk < a + HEAP_HUGE || brk - mi.keepcost > a)
		return 0; /* the top does not span the huge page */
	/* A hint: where the kernel has no transparent huge pages, or none
	 * free, the heap stays on small pages. */
	if (madvise((void *)a, HEAP_HUGE, MADV_HUGEPAGE) < 0)
		return 0;
	return a;
#endif
}
