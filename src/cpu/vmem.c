/* Guest virtual address space of user-mode CPUs: a 4-level radix table of
 * 4 KiB pages, each leaf a host page address with the guest's protection. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vmem.h"

#define LEVEL_BITS 9
#define LEVEL_SIZE (1u << LEVEL_BITS)
#define LEAF_PROT_MASK 0xfffull

static unsigned level_index(uint64_t gva, int level)
{
	/* level 3 is the root: bits 39-47; level 0 the leaves: bits 12-20 */
	return (unsigned)(gva >> (12 + LEVEL_BITS * level)) & (LEVEL_SIZE - 1);
}

int vmem_init(struct vmem *vm)
{
	memset(vm, 0, sizeof(*vm));
	vm->root = calloc(LEVEL_SIZE, sizeof(void *));
	if (!vm->root)
		return -ENOMEM;
	pthread_mutex_init(&vm->lock, NULL);
	return 0;
}

static void free_level(void **node, int level)
{
	if (level > 1) {
		for (unsigned k = 0; k < LEVEL_SIZE; k++)
			if (node[k])
				free_level(node[k], level - 1);
	} else {
		for (unsigned k = 0; k < LEVEL_SIZE; k++)
			free(node[k]);
	}
	free(node);
}

void vmem_destroy(struct vmem *vm)
{
	if (vm->root)
		free_level(vm->root, 3);
	vm->root = NULL;
	pthread_mutex_destroy(&vm->lock);
}

/* Leaf slot for gva; with create, missing levels are allocated (lock held). */
static uint64_t *leaf_slot(struct vmem *vm, uint64_t gva, int create)
{
	void **node = vm->root;
	for (int level = 3; level >= 1; level--) {
		unsigned idx = level_index(gva, level);
		void *next = __atomic_load_n(&node[idx], __ATOMIC_ACQUIRE);
		if (!next) {
			if (!create)
				return NULL;
			next = calloc(LEVEL_SIZE, level == 1 ? sizeof(uint64_t) : sizeof(void *));
			if (!next)
				return NULL;
			__atomic_store_n(&node[idx], next, __ATOMIC_RELEASE);
		}
		node = next;
	}
	return (uint64_t *)node + level_index(gva, 0);
}

static int range_ok(uint64_t gva, uint64_t len)
{
	return !(gva & ~VMEM_PAGE_MASK) && !(len & ~VMEM_PAGE_MASK) && gva < VMEM_LIMIT && len <= VMEM_LIMIT - gva;
}

int vmem_map(struct vmem *vm, uint64_t gva, uint64_t len, void *host, unsigned prot)
{
	if (!range_ok(gva, len) || ((uintptr_t)host & ~VMEM_PAGE_MASK))
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	int replaced = 0;
	for (uint64_t off = 0; off < len; off += VMEM_PAGE) {
		uint64_t *slot = leaf_slot(vm, gva + off, 1);
		if (!slot) {
			pthread_mutex_unlock(&vm->lock);
			return -ENOMEM;
		}
		if (*slot)
			replaced = 1;
		uint64_t e = ((uint64_t)(uintptr_t)host + off) | (prot & (VMEM_R | VMEM_W | VMEM_X));
		__atomic_store_n(slot, e, __ATOMIC_RELEASE);
	}
	if (replaced) {
		__atomic_add_fetch(&vm->tlb_gen, 1, __ATOMIC_RELEASE);
		__atomic_add_fetch(&vm->code_gen, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vmem_unmap(struct vmem *vm, uint64_t gva, uint64_t len)
{
	if (!range_ok(gva, len))
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	int code = 0;
	for (uint64_t off = 0; off < len; off += VMEM_PAGE) {
		uint64_t *slot = leaf_slot(vm, gva + off, 0);
		if (!slot) {
			/* skip to the next leaf table */
			uint64_t next = ((gva + off) | ((VMEM_PAGE << LEVEL_BITS) - 1)) + 1;
			off = next - gva - VMEM_PAGE;
			continue;
		}
		uint64_t old = __atomic_exchange_n(slot, 0, __ATOMIC_ACQ_REL);
		if (old & VMEM_CODE)
			code = 1;
	}
	__atomic_add_fetch(&vm->tlb_gen, 1, __ATOMIC_RELEASE);
	if (code)
		__atomic_add_fetch(&vm->code_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vmem_protect(struct vmem *vm, uint64_t gva, uint64_t len, unsigned prot)
{
	if (!range_ok(gva, len))
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	for (uint64_t off = 0; off < len; off += VMEM_PAGE) {
		uint64_t *slot = leaf_slot(vm, gva + off, 0);
		if (!slot || !*slot) {
			pthread_mutex_unlock(&vm->lock);
			return -ENOMEM;
		}
	}
	int code = 0;
	for (uint64_t off = 0; off < len; off += VMEM_PAGE) {
		uint64_t *slot = leaf_slot(vm, gva + off, 0);
		uint64_t old = *slot;
		if ((old & VMEM_CODE) && !(prot & VMEM_X))
			code = 1;
		uint64_t e = (old & ~LEAF_PROT_MASK) | (prot & (VMEM_R | VMEM_W | VMEM_X)) |
			     ((prot & VMEM_X) ? (old & VMEM_CODE) : 0);
		__atomic_store_n(slot, e, __ATOMIC_RELEASE);
	}
	__atomic_add_fetch(&vm->tlb_gen, 1, __ATOMIC_RELEASE);
	if (code)
		__atomic_add_fetch(&vm->code_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

void *vmem_lookup(struct vmem *vm, uint64_t gva, unsigned *prot)
{
	if (gva >= VMEM_LIMIT)
		return NULL;
	uint64_t *slot = leaf_slot(vm, gva, 0);
	if (!slot)
		return NULL;
	uint64_t e = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (!e)
		return NULL;
	if (prot)
		*prot = (unsigned)(e & LEAF_PROT_MASK);
	return (void *)(uintptr_t)(e & ~LEAF_PROT_MASK);
}

/* Guest pages are readable if mapped with any access (as on x86). */
static int page_allows(unsigned prot, unsigned need)
{
	if (need & VMEM_W)
		return (prot & VMEM_W) != 0;
	return (prot & (VMEM_R | VMEM_W | VMEM_X)) != 0;
}

int vmem_read(struct vmem *vm, uint64_t gva, void *dst, size_t n)
{
	uint8_t *d = dst;
	while (n) {
		unsigned prot;
		uint8_t *page = vmem_lookup(vm, gva, &prot);
		if (!page || !page_allows(prot, VMEM_R))
			return -EFAULT;
		size_t off = gva & (VMEM_PAGE - 1);
		size_t chunk = VMEM_PAGE - off;
		if (chunk > n)
			chunk = n;
		memcpy(d, page + off, chunk);
		d += chunk;
		gva += chunk;
		n -= chunk;
	}
	return 0;
}

int vmem_write(struct vmem *vm, uint64_t gva, const void *src, size_t n)
{
	const uint8_t *s = src;
	while (n) {
		unsigned prot;
		uint8_t *page = vmem_lookup(vm, gva, &prot);
		if (!page || !page_allows(prot, VMEM_W))
			return -EFAULT;
		size_t off = gva & (VMEM_PAGE - 1);
		size_t chunk = VMEM_PAGE - off;
		if (chunk > n)
			chunk = n;
		memcpy(page + off, s, chunk);
		if (prot & VMEM_CODE)
			vmem_code_written(vm, gva);
		s += chunk;
		gva += chunk;
		n -= chunk;
	}
	return 0;
}

long vmem_read_str(struct vmem *vm, uint64_t gva, char *dst, size_t max)
{
	size_t len = 0;
	while (len < max) {
		unsigned prot;
		uint8_t *page = vmem_lookup(vm, gva, &prot);
		if (!page || !page_allows(prot, VMEM_R))
			return -EFAULT;
		size_t off = gva & (VMEM_PAGE - 1);
		size_t chunk = VMEM_PAGE - off;
		if (chunk > max - len)
			chunk = max - len;
		uint8_t *nul = memchr(page + off, 0, chunk);
		size_t take = nul ? (size_t)(nul - (page + off)) + 1 : chunk;
		memcpy(dst + len, page + off, take);
		len += take;
		if (nul)
			return (long)(len - 1);
		gva += chunk;
	}
	return -ENAMETOOLONG;
}

/* Set the mark; true if it was not set before. */
static bool mark_code(struct vmem *vm, uint64_t gva)
{
	uint64_t *slot = leaf_slot(vm, gva, 0);
	if (!slot)
		return false;
	uint64_t old = __atomic_fetch_or(slot, VMEM_CODE, __ATOMIC_ACQ_REL);
	/* Other cpus may hold fast write entries for this page: make them refill. */
	if (old && !(old & VMEM_CODE) && (old & VMEM_W))
		__atomic_add_fetch(&vm->tlb_gen, 1, __ATOMIC_RELEASE);
	return old && !(old & VMEM_CODE);
}

void vmem_mark_code(struct vmem *vm, uint64_t gva)
{
	if (mark_code(vm, gva) && vm->code_hook)
		vm->code_hook(vm, gva, true);
}

void vmem_mark_code_alias(struct vmem *vm, uint64_t gva)
{
	mark_code(vm, gva);
}

/* Clear the mark; true if it was set. */
static bool clear_code(struct vmem *vm, uint64_t gva)
{
	uint64_t *slot = leaf_slot(vm, gva, 0);
	if (!slot)
		return false;
	uint64_t old = __atomic_fetch_and(slot, ~(uint64_t)VMEM_CODE, __ATOMIC_ACQ_REL);
	if (old & VMEM_CODE)
		__atomic_add_fetch(&vm->code_gen, 1, __ATOMIC_RELEASE);
	return (old & VMEM_CODE) != 0;
}

void vmem_code_written(struct vmem *vm, uint64_t gva)
{
	if (clear_code(vm, gva) && vm->code_hook)
		vm->code_hook(vm, gva, false);
}

void vmem_code_written_alias(struct vmem *vm, uint64_t gva)
{
	clear_code(vm, gva);
}

struct walk_state {
	int (*fn)(void *arg, uint64_t gva, uint64_t len, unsigned prot, void *host);
	void *arg;
	uint64_t start, len;
	unsigned prot;
	uintptr_t host;
	int stopped;
};

static void walk_flush(struct walk_state *w)
{
	if (w->len && !w->stopped)
		w->stopped = w->fn(w->arg, w->start, w->len, w->prot, (void *)w->host);
	w->len = 0;
}

static void walk_level(struct walk_state *w, void **node, int level, uint64_t base)
{
	for (unsigned k = 0; k < LEVEL_SIZE && !w->stopped; k++) {
		uint64_t gva = base + ((uint64_t)k << (12 + LEVEL_BITS * level));
		if (level > 0) {
			void *next = __atomic_load_n(&node[k], __ATOMIC_ACQUIRE);
			if (next)
				walk_level(w, next, level - 1, gva);
			else
				walk_flush(w);
			continue;
		}
		uint64_t e = __atomic_load_n(&((uint64_t *)node)[k], __ATOMIC_ACQUIRE);
		if (!e) {
			walk_flush(w);
			continue;
		}
		unsigned prot = (unsigned)(e & (VMEM_R | VMEM_W | VMEM_X));
		uintptr_t host = (uintptr_t)(e & ~LEAF_PROT_MASK);
		if (w->len && w->start + w->len == gva && w->prot == prot && w->host + w->len == host) {
			w->len += VMEM_PAGE;
		} else {
			walk_flush(w);
			w->start = gva;
			w->len = VMEM_PAGE;
			w->prot = prot;
			w->host = host;
		}
	}
}

void vmem_walk(struct vmem *vm, int (*fn)(void *arg, uint64_t gva, uint64_t len, unsigned prot, void *host), void *arg)
{
	struct walk_state w = {.fn = fn, .arg = arg};
	pthread_mutex_lock(&vm->lock);
	walk_level(&w, vm->root, 3, 0);
	walk_flush(&w);
	pthread_mutex_unlock(&vm->lock);
}
