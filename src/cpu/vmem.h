/* Guest virtual address space for user-mode CPUs (process VMs, CPU tests):
 * a radix table from 4 KiB guest pages to host memory with guest protections.
 * Guest memory is only reached through it, so an unmapped or protected guest
 * address faults in the guest and never touches corral's own memory.
 *
 * Threads: lookups are lock-free (leaf entries are single atomic words and
 * interior nodes are never freed); changes take vm->lock. Every change that
 * removes or narrows a mapping bumps tlb_gen, and cpus flush their soft TLB
 * when they see a new generation at a block boundary. */
#ifndef CORRAL_VMEM_H
#define CORRAL_VMEM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMEM_PAGE 4096ull
#define VMEM_PAGE_MASK (~(VMEM_PAGE - 1))
#define VMEM_ADDR_BITS 47 /* user half of the canonical 48-bit space */
#define VMEM_LIMIT (1ull << VMEM_ADDR_BITS)

/* Protection bits (as PROT_READ/WRITE/EXEC, but our own) */
#define VMEM_R 1u
#define VMEM_W 2u
#define VMEM_X 4u
#define VMEM_CODE 8u /* internal: decoded code was cached from this page */

struct vmem {
	void **root; /* 4-level radix, 9 bits a level; leaves are uint64_t: host page | prot */
	pthread_mutex_t lock;
	volatile unsigned tlb_gen;  /* bumped when a mapping is removed or narrowed */
	volatile unsigned code_gen; /* bumped when a page holding decoded code is written or unmapped */
	/* Called (no vmem lock held) when a page is first marked as holding
	 * decoded code (set) and when that mark is cleared by a write (!set),
	 * so that the owner can do the same to the other guest pages that
	 * show the same memory (vmem_*_alias): a write through any of them
	 * then drops the code. NULL: no aliases. */
	void (*code_hook)(struct vmem *vm, uint64_t gva, bool set);
};

int vmem_init(struct vmem *vm);
void vmem_destroy(struct vmem *vm);

/* Map [gva, gva+len) to host memory at host (both page-aligned, len a
 * multiple of VMEM_PAGE) with prot. Replaces existing mappings. */
int vmem_map(struct vmem *vm, uint64_t gva, uint64_t len, void *host, unsigned prot);
int vmem_unmap(struct vmem *vm, uint64_t gva, uint64_t len);
/* Change protection of mapped pages; unmapped pages in the range: -ENOMEM. */
int vmem_protect(struct vmem *vm, uint64_t gva, uint64_t len, unsigned prot);

/* Host address of the page containing gva and its prot, or NULL. */
void *vmem_lookup(struct vmem *vm, uint64_t gva, unsigned *prot);

/* Copy between guest and host memory as the guest (checks need: VMEM_R for
 * reads, VMEM_W for writes). Return 0 or -EFAULT; may copy partially before
 * failing. Used by syscall emulation. */
int vmem_read(struct vmem *vm, uint64_t gva, void *dst, size_t n);
int vmem_write(struct vmem *vm, uint64_t gva, const void *src, size_t n);
/* Copy a NUL-terminated string of at most max bytes (incl. NUL); returns
 * length or -EFAULT / -ENAMETOOLONG. */
long vmem_read_str(struct vmem *vm, uint64_t gva, char *dst, size_t max);

/* Decoded-code tracking. vmem_mark_code is the CPU's (it decoded code from
 * the page); vmem_code_written is for anyone who wrote to a guest page
 * behind vmem's back (a host syscall filling a buffer through a host
 * pointer): it clears the mark and makes every cpu drop the page's code. */
void vmem_mark_code(struct vmem *vm, uint64_t gva);
void vmem_code_written(struct vmem *vm, uint64_t gva);
/* The same for an alias, without calling code_hook. */
void vmem_mark_code_alias(struct vmem *vm, uint64_t gva);
void vmem_code_written_alias(struct vmem *vm, uint64_t gva);

/* Iterate mapped ranges in address order (for /proc/self/maps, core dumps).
 * fn returns nonzero to stop. */
void vmem_walk(struct vmem *vm, int (*fn)(void *arg, uint64_t gva, uint64_t len, unsigned prot, void *host), void *arg);

#endif
