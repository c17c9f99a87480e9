/* Guest memory layout of a process VM: the mapping list behind mmap, munmap,
 * mprotect, mremap, brk and /proc/self/maps, on top of vmem; the arena of
 * host address space that holds guest memory and nothing else; the memory
 * cap; and the checked guest-memory helpers the syscalls use. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "process/internal.h"

/* x86-64 Linux mmap flags (the guest's numbers) */
#define GMAP_SHARED 0x01
#define GMAP_PRIVATE 0x02
#define GMAP_SHARED_VALIDATE 0x03
#define GMAP_FIXED 0x10
#define GMAP_ANONYMOUS 0x20
#define GMAP_32BIT 0x40
#define GMAP_GROWSDOWN 0x100
#define GMAP_DENYWRITE 0x800
#define GMAP_EXECUTABLE 0x1000
#define GMAP_LOCKED 0x2000
#define GMAP_NORESERVE 0x4000
#define GMAP_POPULATE 0x8000
#define GMAP_NONBLOCK 0x10000
#define GMAP_STACK 0x20000
#define GMAP_HUGETLB 0x40000
#define GMAP_SYNC 0x80000
#define GMAP_FIXED_NOREPLACE 0x100000
#define GMAP_KNOWN                                                                                                     \
	(0x3 | GMAP_FIXED | GMAP_ANONYMOUS | GMAP_32BIT | GMAP_GROWSDOWN | GMAP_DENYWRITE | GMAP_EXECUTABLE |          \
	 GMAP_LOCKED | GMAP_NORESERVE | GMAP_POPULATE | GMAP_NONBLOCK | GMAP_STACK | GMAP_HUGETLB | GMAP_SYNC |        \
	 GMAP_FIXED_NOREPLACE | (0x3fu << 26))

#define GMREMAP_MAYMOVE 1
#define GMREMAP_FIXED 2
#define GMREMAP_DONTUNMAP 4

#define MM_MAX_VMAS 65530 /* vm.max_map_count */

static size_t host_page;

/* ---- The arena ----
 * Every host mapping behind guest memory lies in ranges of host address
 * space that corral reserved for guest memory alone (PROT_NONE, nothing
 * behind them): the arena's regions, reserved as needed (the first small,
 * each further one at least as large as all before it, so a few suffice).
 * Guest memory that goes away is replaced in place by a fresh reservation,
 * never unmapped, so the host never hands those addresses to corral's own
 * allocations: a host system call that still holds a guest pointer (a
 * read() blocked on a pipe into a buffer that another thread unmapped)
 * reaches guest memory or fails with EFAULT, never corral's stacks or heap.
 * Free space is a list of extents sorted by address, first fit. */
struct arena_ext {
	uintptr_t start;
	uint64_t len;
};

#define ARENA_FIRST (64ull << 20) /* the first region */
#define ARENA_MAX (64ull << 40)	  /* all regions together */

static int arena_reserve(void *at, uint64_t len)
{
	void *r = mmap(at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	return r == MAP_FAILED ? -errno : 0;
}

static uint64_t host_up(uint64_t n)
{
	return (n + host_page - 1) & ~(uint64_t)(host_page - 1);
}

static int ext_insert(struct proc *p, int idx, uintptr_t start, uint64_t len)
{
	if (p->nafree == p->cap_afree) {
		int ncap = p->cap_afree ? p->cap_afree * 2 : 64;
		struct arena_ext *n = realloc(p->afree, (size_t)ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		p->afree = n;
		p->cap_afree = ncap;
	}
	memmove(&p->afree[idx + 1], &p->afree[idx], (size_t)(p->nafree - idx) * sizeof(*p->afree));
	p->afree[idx] = (struct arena_ext){start, len};
	p->nafree++;
	return 0;
}

static void ext_remove(struct proc *p, int idx)
{
	memmove(&p->afree[idx], &p->afree[idx + 1], (size_t)(p->nafree - idx - 1) * sizeof(*p->afree));
	p->nafree--;
}

/* Add [start, start+len) to the free list, merging with its neighbours. */
static void ext_free(struct proc *p, uintptr_t start, uint64_t len)
{
	uintptr_t end = start + len;
	int i = 0;
	while (i < p->nafree && p->afree[i].start < start)
		i++;
	bool prev = i > 0 && p->afree[i - 1].start + p->afree[i - 1].len == start;
	bool next = i < p->nafree && p->afree[i].start == end;
	if (prev && next) {
		p->afree[i - 1].len += len + p->afree[i].len;
		ext_remove(p, i);
	} else if (prev) {
		p->afree[i - 1].len += len;
	} else if (next) {
		p->afree[i].start = start;
		p->afree[i].len += len;
	} else {
		ext_insert(p, i, start, len); /* on failure the range is lost, not reused */
	}
}

/* Reserve another region of at least len bytes. */
static int arena_grow(struct proc *p, uint64_t len)
{
	if (p->nregions == ARENA_REGIONS)
		return -ENOMEM;
	uint64_t size = p->nregions ? p->arena_size : ARENA_FIRST;
	if (size < len)
		size = host_up(len);
	if (size > ARENA_MAX - p->arena_size)
		return -ENOMEM;
	void *a = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a == MAP_FAILED)
		return -ENOMEM;
	p->regions[p->nregions].start = (uintptr_t)a;
	p->regions[p->nregions].len = size;
	__atomic_store_n(&p->nregions, p->nregions + 1, __ATOMIC_RELEASE); /* read by the fault handler */
	p->arena_size += size;
	ext_free(p, (uintptr_t)a, size);
	return 0;
}

/* A reserved, unused range of len bytes (a multiple of the host page). */
static uint8_t *arena_get(struct proc *p, uint64_t len)
{
	for (int tries = 0; tries < 2; tries++) {
		for (int i = 0; i < p->nafree; i++) {
			struct arena_ext *e = &p->afree[i];
			if (e->len < len)
				continue;
			uint8_t *h = (uint8_t *)e->start;
			e->start += len;
			e->len -= len;
			if (!e->len)
				ext_remove(p, i);
			return h;
		}
		if (arena_grow(p, len))
			return NULL;
	}
	return NULL;
}

/* Take exactly [h, h+len) if it is free (in-place growth). */
static int arena_take(struct proc *p, uint8_t *h, uint64_t len)
{
	uintptr_t s = (uintptr_t)h;
	for (int i = 0; i < p->nafree; i++) {
		struct arena_ext *e = &p->afree[i];
		if (e->start > s)
			break;
		if (s >= e->start + e->len)
			continue;
		if (len > e->start + e->len - s)
			return -ENOMEM;
		uint64_t tail = e->start + e->len - (s + len);
		uintptr_t estart = e->start;
		e->len = s - e->start;
		if (tail && ext_insert(p, e->len ? i + 1 : i, s + len, tail)) {
			p->afree[i].len = s + len + tail - estart; /* undo */
			return -ENOMEM;
		}
		if (!p->afree[i].len)
			ext_remove(p, i);
		return 0;
	}
	return -ENOMEM;
}

/* Give [h, h+len) back: its contents are dropped and it is reserved again
 * in one step (MAP_FIXED replaces; there is no moment with a hole). Only
 * whole host pages can be given back: on hosts with pages larger than the
 * guest's the rest stays reserved and unused. */
static void arena_put(struct proc *p, uint8_t *h, uint64_t len)
{
	uintptr_t s = (uintptr_t)host_up((uintptr_t)h);
	uintptr_t e = ((uintptr_t)h + len) & ~(uintptr_t)(host_page - 1);
	if (e <= s || arena_reserve((void *)s, e - s))
		return; /* left mapped as it was: still guest-only memory */
	ext_free(p, s, e - s);
}

/* The memory cap: bytes of guest mappings that have host memory behind
 * them (reservations made with PROT_NONE have none until made accessible). */
static void mem_uncharge(struct proc *p, uint64_t len)
{
	p->mem_used -= len < p->mem_used ? len : p->mem_used;
}

uint64_t mm_default_cap(void)
{
	struct sysinfo si;
	if (sysinfo(&si) < 0)
		return 4ull << 30;
	return ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;
}

/* A page of a shared file mapping now holds decoded code (set), or a write
 * dropped it (!set): do the same to every other guest page that maps the
 * same page of the same file, so that a store through any of them drops
 * that code (vmem.h code_hook). Pages shared with other processes, or
 * changed by write(2) on the file, are not seen. Called without mm_lock. */
static int vma_search(struct proc *p, uint64_t addr);

static void code_aliases(struct vmem *vm, uint64_t gva, bool set)
{
	struct proc *p = &proc;
	if (vm != &p->vm)
		return;
	pthread_mutex_lock(&p->mm_lock);
	int i = vma_search(p, gva);
	if (i < p->nvma && p->vmas[i].start <= gva && (p->vmas[i].flags & VMA_SHARED) &&
	    !(p->vmas[i].flags & VMA_ANON)) {
		const struct vma *v = &p->vmas[i];
		uint64_t foff = v->off + (gpage_down(gva) - v->start);
		for (int j = 0; j < p->nvma; j++) {
			const struct vma *w = &p->vmas[j];
			if (j == i || !w->host || !(w->flags & VMA_SHARED) || (w->flags & VMA_ANON) ||
			    w->dev != v->dev || w->ino != v->ino || foff < w->off || foff - w->off >= w->end - w->start)
				continue;
			if (set)
				vmem_mark_code_alias(vm, w->start + (foff - w->off));
			else
				vmem_code_written_alias(vm, w->start + (foff - w->off));
		}
	}
	pthread_mutex_unlock(&p->mm_lock);
}

int mm_init(struct proc *p)
{
	host_page = (size_t)sysconf(_SC_PAGESIZE);
	p->mmap_base = GUEST_MMAP_BASE;
	p->cap_vma = 64;
	p->vmas = calloc((size_t)p->cap_vma, sizeof(*p->vmas));
	if (!p->vmas)
		return -ENOMEM;
	p->mem_cap = p->opts.mem ? p->opts.mem : mm_default_cap();
	if (arena_grow(p, 0))
		return -ENOMEM;
	p->vm.code_hook = code_aliases;
	return pthread_mutex_init(&p->mm_lock, NULL) ? -ENOMEM : 0;
}

bool mm_in_arena(const struct proc *p, const void *h)
{
	uintptr_t a = (uintptr_t)h;
	int n = __atomic_load_n(&p->nregions, __ATOMIC_ACQUIRE);
	for (int k = 0; k < n; k++)
		if (a - p->regions[k].start < p->regions[k].len)
			return true;
	return false;
}

static unsigned prot_to_vmem(int prot)
{
	unsigned v = 0;
	/* x86 page tables cannot express write-only or exec-only pages */
	if (prot & (PROT_READ | PROT_WRITE | PROT_EXEC))
		v |= VMEM_R;
	if (prot & PROT_WRITE)
		v |= VMEM_W;
	if (prot & PROT_EXEC)
		v |= VMEM_X;
	return v;
}

/* Index of the first vma with end > addr. */
static int vma_search(struct proc *p, uint64_t addr)
{
	int lo = 0, hi = p->nvma;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (p->vmas[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int vma_insert_at(struct proc *p, int idx, const struct vma *v)
{
	if (p->nvma >= MM_MAX_VMAS)
		return -ENOMEM;
	if (p->nvma == p->cap_vma) {
		int ncap = p->cap_vma * 2;
		struct vma *n = realloc(p->vmas, (size_t)ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		p->vmas = n;
		p->cap_vma = ncap;
	}
	memmove(&p->vmas[idx + 1], &p->vmas[idx], (size_t)(p->nvma - idx) * sizeof(*v));
	p->vmas[idx] = *v;
	p->nvma++;
	return 0;
}

static void vma_remove_at(struct proc *p, int idx)
{
	free(p->vmas[idx].name);
	memmove(&p->vmas[idx], &p->vmas[idx + 1], (size_t)(p->nvma - idx - 1) * sizeof(struct vma));
	p->nvma--;
}

/* Split the vma at idx so that one ends at addr (start < addr < end). */
static int vma_split(struct proc *p, int idx, uint64_t addr)
{
	struct vma hi = p->vmas[idx];
	uint64_t d = addr - hi.start;
	hi.start = addr;
	if (hi.host)
		hi.host += d;
	hi.off += d;
	hi.name = hi.name ? strdup(hi.name) : NULL;
	if (p->vmas[idx].name && !hi.name)
		return -ENOMEM;
	int r = vma_insert_at(p, idx + 1, &hi);
	if (r) {
		free(hi.name);
		return r;
	}
	p->vmas[idx].end = addr;
	return 0;
}

bool mm_range_free(struct proc *p, uint64_t start, uint64_t end)
{
	int i = vma_search(p, start);
	return i >= p->nvma || p->vmas[i].start >= end;
}

/* Remove [start, end) from the guest: caller holds mm_lock. */
static int unmap_locked(struct proc *p, uint64_t start, uint64_t end)
{
	int i = vma_search(p, start);
	if (i < p->nvma && p->vmas[i].start < start && p->vmas[i].end > start) {
		int r = vma_split(p, i, start);
		if (r)
			return r;
		i++;
	}
	while (i < p->nvma && p->vmas[i].start < end) {
		struct vma *v = &p->vmas[i];
		if (v->end > end) {
			int r = vma_split(p, i, end);
			if (r)
				return r;
			v = &p->vmas[i];
		}
		if (v->host) {
			vmem_unmap(&p->vm, v->start, v->end - v->start);
			arena_put(p, v->host, v->end - v->start);
			mem_uncharge(p, v->end - v->start);
		}
		vma_remove_at(p, i);
	}
	return 0;
}

uint64_t mm_find_free(struct proc *p, uint64_t len, uint64_t top)
{
	uint64_t hi = top;
	int i = vma_search(p, top);
	if (i < p->nvma && p->vmas[i].start < hi)
		hi = p->vmas[i].start;
	for (int j = i - 1;; j--) {
		uint64_t lo = j >= 0 ? p->vmas[j].end : GUEST_MIN_ADDR;
		if (lo < GUEST_MIN_ADDR)
			lo = GUEST_MIN_ADDR;
		if (hi > lo && hi - lo >= len)
			return hi - len;
		if (j < 0)
			return 0;
		hi = p->vmas[j].start;
	}
}

/* Host memory in the arena for a new mapping. A file is mapped where the
 * host likes first and then moved into the arena (mremap replaces the
 * reservation in one step), so a file the host cannot map never leaves a
 * hole in the arena. */
static void *host_alloc(struct proc *p, uint64_t len, unsigned vflags, int fd, uint64_t off, unsigned prot, int *err)
{
	/* Hosts with pages larger than the guest's need a host-aligned file
	 * offset: map from below and point past the difference. */
	uint64_t delta = fd < 0 ? 0 : off & (host_page - 1);
	uint64_t hlen = host_up(len + delta);
	uint8_t *a = arena_get(p, hlen);
	if (!a) {
		*err = -ENOMEM;
		return NULL;
	}
	void *h;
	if (fd < 0) {
		int f = MAP_FIXED | MAP_ANONYMOUS | MAP_NORESERVE | ((vflags & VMA_SHARED) ? MAP_SHARED : MAP_PRIVATE);
		h = mmap(a, hlen, PROT_READ | PROT_WRITE, f, -1, 0);
	} else {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			*err = -errno;
			arena_put(p, a, hlen);
			return NULL;
		}
		int hp = PROT_READ;
		if (!(vflags & VMA_SHARED) || (prot & VMEM_W))
			hp |= PROT_WRITE;
		h = mmap(NULL, hlen, hp, (vflags & VMA_SHARED) ? MAP_SHARED : MAP_PRIVATE, fd, (off_t)(off - delta));
		if (h != MAP_FAILED) {
			void *m = mremap(h, hlen, hlen, MREMAP_MAYMOVE | MREMAP_FIXED, a);
			if (m == MAP_FAILED) {
				int e = errno;
				munmap(h, hlen);
				errno = e;
			}
			h = m;
		}
		/* Pages wholly past the end of the file stay as they are: the
		 * guest's accesses there are SIGBUS, as on Linux (arena_fault). */
	}
	if (h == MAP_FAILED) {
		*err = errno == ENOMEM ? -ENOMEM : -errno;
		arena_put(p, a, hlen); /* reserved again, in case a failed MAP_FIXED left a hole */
		return NULL;
	}
	return a + delta;
}

/* Bytes of [start, end) that have host memory behind them. */
static uint64_t backed_bytes(struct proc *p, uint64_t start, uint64_t end)
{
	uint64_t n = 0;
	for (int i = vma_search(p, start); i < p->nvma && p->vmas[i].start < end; i++) {
		const struct vma *v = &p->vmas[i];
		if (v->host)
			n += (v->end < end ? v->end : end) - (v->start > start ? v->start : start);
	}
	return n;
}

/* Map with mm_lock held; replaces what was there. An anonymous private
 * mapping without access is only a reservation: no host memory, no vmem
 * entries, nothing charged, until mprotect makes it accessible. */
static long map_locked(struct proc *p, uint64_t gva, uint64_t len, unsigned prot, unsigned vflags, int fd, uint64_t off,
		       const char *name)
{
	int err;
	struct stat st;
	bool reserve = fd < 0 && !prot && !(vflags & VMA_SHARED);
	uint64_t need = reserve ? 0 : len;
	if (need > p->mem_cap - p->mem_used + backed_bytes(p, gva, gva + len))
		return -ENOMEM;
	uint8_t *h = NULL;
	if (!reserve && !(h = host_alloc(p, len, vflags, fd, off, prot, &err)))
		return err;
	struct vma v = {
		.start = gva,
		.end = gva + len,
		.prot = prot,
		.flags = vflags,
		.host = h,
		.off = off,
	};
	if (fd < 0)
		v.flags |= VMA_ANON;
	else if (fstat(fd, &st) == 0) {
		v.dev = st.st_dev;
		v.ino = st.st_ino;
	}
	if (!(vflags & VMA_SHARED) || (prot & VMEM_W) || fd < 0)
		v.flags |= VMA_HOSTW;
	err = -ENOMEM;
	if (name && !(v.name = strdup(name)))
		goto err_host;
	err = unmap_locked(p, gva, gva + len); /* uncharges what it removes */
	if (!err)
		err = vma_insert_at(p, vma_search(p, gva), &v);
	if (err)
		goto err_name;
	if (h && (err = vmem_map(&p->vm, gva, len, h, prot))) {
		vma_remove_at(p, vma_search(p, gva));
		goto err_host;
	}
	p->mem_used += need;
	return (long)gva;

err_name:
	free(v.name);
err_host:
	if (h)
		arena_put(p, h, len);
	return err;
}

long mm_map(struct proc *p, uint64_t gva, uint64_t len, unsigned prot, unsigned vflags, int fd, uint64_t off,
	    const char *name)
{
	pthread_mutex_lock(&p->mm_lock);
	long r = map_locked(p, gva, len, prot, vflags, fd, off, name);
	pthread_mutex_unlock(&p->mm_lock);
	return r;
}

static bool range_valid(uint64_t start, uint64_t len)
{
	return len && start < GUEST_TASK_SIZE && len <= GUEST_TASK_SIZE - start;
}

long mm_mmap(struct proc *p, uint64_t addr, uint64_t len, int prot, int flags, int fd, uint64_t off)
{
	if (!len)
		return -EINVAL;
	if (off & (GPAGE - 1))
		return -EINVAL;
	if (len > GUEST_TASK_SIZE)
		return -ENOMEM;
	len = gpage_up(len);
	int type = flags & 0x3;
	if (type == 0)
		return -EINVAL;
	if (type == GMAP_SHARED_VALIDATE && (flags & ~GMAP_KNOWN))
		return -EOPNOTSUPP;
	if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_GROWSDOWN | PROT_GROWSUP))
		return -EINVAL;
	if (flags & GMAP_HUGETLB)
		return -EINVAL;
	unsigned vflags = (type == GMAP_PRIVATE) ? 0 : VMA_SHARED;
	if (flags & GMAP_ANONYMOUS)
		fd = -1;
	else if (fd < 0 || fs_fd_reserved(fd))
		return -EBADF;
	if ((flags & GMAP_ANONYMOUS) && (vflags & VMA_SHARED))
		off = 0;
	if (fd >= 0 && off + len < off)
		return -EOVERFLOW;

	char name[4096];
	char *np = NULL;
	if (fd >= 0) {
		char lnk[64];
		snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(lnk, name, sizeof(name) - 1);
		if (n > 0) {
			name[n] = 0;
			char g[4096];
			if (fs_guest_path(name, g, sizeof(g)) == 0)
				snprintf(name, sizeof(name), "%s", g);
			np = name;
		}
	}

	unsigned vp = prot_to_vmem(prot);
	long r;
	pthread_mutex_lock(&p->mm_lock);
	uint64_t gva;
	if (flags & (GMAP_FIXED | GMAP_FIXED_NOREPLACE)) {
		if (addr & (GPAGE - 1)) {
			r = -EINVAL;
			goto out;
		}
		if (!range_valid(addr, len) || addr < GUEST_MIN_ADDR) {
			r = -ENOMEM;
			if (addr < GUEST_MIN_ADDR)
				r = -EPERM;
			goto out;
		}
		if (!(flags & GMAP_FIXED) && !mm_range_free(p, addr, addr + len)) {
			r = -EEXIST;
			goto out;
		}
		gva = addr;
	} else {
		uint64_t hint = gpage_down(addr);
		if (hint >= GUEST_MIN_ADDR && range_valid(hint, len) && mm_range_free(p, hint, hint + len))
			gva = hint;
		else
			gva = mm_find_free(p, len, (flags & GMAP_32BIT) ? 0x80000000ull : p->mmap_base);
		if (!gva) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = map_locked(p, gva, len, vp, vflags | ((flags & GMAP_GROWSDOWN) ? VMA_STACK : 0), fd, off, np);
out:
	pthread_mutex_unlock(&p->mm_lock);
	return r;
}

long mm_munmap(struct proc *p, uint64_t addr, uint64_t len)
{
	if ((addr & (GPAGE - 1)) || !len)
		return -EINVAL;
	len = gpage_up(len);
	if (!range_valid(addr, len))
		return -EINVAL;
	pthread_mutex_lock(&p->mm_lock);
	long r = unmap_locked(p, addr, addr + len);
	pthread_mutex_unlock(&p->mm_lock);
	return r;
}

/* Is [start, end) covered by mappings without holes? */
static bool range_mapped(struct proc *p, uint64_t start, uint64_t end)
{
	int i = vma_search(p, start);
	uint64_t at = start;
	for (; i < p->nvma && at < end; i++) {
		if (p->vmas[i].start > at)
			return false;
		at = p->vmas[i].end;
	}
	return at >= end;
}

long mm_mprotect(struct proc *p, uint64_t addr, uint64_t len, int prot)
{
	if (addr & (GPAGE - 1))
		return -EINVAL;
	if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_GROWSDOWN | PROT_GROWSUP))
		return -EINVAL;
	if (!len)
		return 0;
	len = gpage_up(len);
	if (!range_valid(addr, len))
		return -ENOMEM;
	uint64_t end = addr + len;
	unsigned vp = prot_to_vmem(prot);
	long r = 0;
	pthread_mutex_lock(&p->mm_lock);
	if (!range_mapped(p, addr, end)) {
		r = -ENOMEM;
		goto out;
	}
	/* A shared mapping of a file opened read-only cannot become writable. */
	int i = vma_search(p, addr);
	for (int j = i; j < p->nvma && p->vmas[j].start < end; j++) {
		struct vma *v = &p->vmas[j];
		if ((vp & VMEM_W) && !(v->flags & VMA_HOSTW)) {
			uint64_t s = v->start, e = v->end;
			if (mprotect(v->host, e - s, PROT_READ | PROT_WRITE) < 0) {
				r = -errno;
				goto out;
			}
			v->flags |= VMA_HOSTW;
		}
	}
	/* Reservations made accessible get their host memory now. */
	if (vp) {
		uint64_t unbacked = end - addr - backed_bytes(p, addr, end);
		if (unbacked > p->mem_cap - p->mem_used) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (p->vmas[i].start < addr) {
		if ((r = vma_split(p, i, addr)))
			goto out;
		i++;
	}
	for (; i < p->nvma && p->vmas[i].start < end; i++) {
		if (p->vmas[i].end > end && (r = vma_split(p, i, end)))
			goto out;
		struct vma *v = &p->vmas[i];
		uint64_t vlen = v->end - v->start;
		if (!v->host && vp) {
			int err;
			uint8_t *h = host_alloc(p, vlen, v->flags, -1, 0, vp, &err);
			if (!h) {
				r = err;
				goto out;
			}
			if ((r = vmem_map(&p->vm, v->start, vlen, h, vp))) {
				arena_put(p, h, vlen);
				goto out;
			}
			v->host = h;
			p->mem_used += vlen;
		} else if (v->host && (r = vmem_protect(&p->vm, v->start, vlen, vp))) {
			goto out;
		}
		v->prot = vp;
	}
out:
	pthread_mutex_unlock(&p->mm_lock);
	return r;
}

long mm_mremap(struct proc *p, uint64_t old, uint64_t oldlen, uint64_t newlen, int flags, uint64_t newaddr)
{
	if (old & (GPAGE - 1))
		return -EINVAL;
	if (flags & ~(GMREMAP_MAYMOVE | GMREMAP_FIXED | GMREMAP_DONTUNMAP))
		return -EINVAL;
	if ((flags & GMREMAP_FIXED) && !(flags & GMREMAP_MAYMOVE))
		return -EINVAL;
	if (flags & GMREMAP_DONTUNMAP)
		return -EINVAL;
	oldlen = gpage_up(oldlen);
	if (!newlen || newlen > GUEST_TASK_SIZE)
		return -EINVAL;
	newlen = gpage_up(newlen);
	if (!oldlen || !range_valid(old, oldlen))
		return -EINVAL;
	long r;
	pthread_mutex_lock(&p->mm_lock);
	int i = vma_search(p, old);
	if (i >= p->nvma || p->vmas[i].start > old || p->vmas[i].end < old + oldlen) {
		r = -EFAULT;
		goto out;
	}
	if (flags & GMREMAP_FIXED) {
		if ((newaddr & (GPAGE - 1)) || !range_valid(newaddr, newlen) ||
		    (newaddr < old + oldlen && old < newaddr + newlen)) {
			r = -EINVAL;
			goto out;
		}
	}
	if (newlen <= oldlen && !(flags & GMREMAP_FIXED)) {
		if (newlen < oldlen)
			unmap_locked(p, old + newlen, old + oldlen);
		r = (long)old;
		goto out;
	}
	if (newlen < oldlen) { /* moving and shrinking: drop the tail first */
		if ((r = unmap_locked(p, old + newlen, old + oldlen)))
			goto out;
		oldlen = newlen;
		i = vma_search(p, old);
	}
	/* Bring the old range into a vma of its own. */
	if (p->vmas[i].start < old) {
		if ((r = vma_split(p, i, old)))
			goto out;
		i++;
	}
	if (p->vmas[i].end > old + oldlen && (r = vma_split(p, i, old + oldlen)))
		goto out;
	struct vma *v = &p->vmas[i];
	uint64_t dest = old;
	if (flags & GMREMAP_FIXED) {
		dest = newaddr;
	} else if (old + newlen > GUEST_TASK_SIZE || !mm_range_free(p, old + oldlen, old + newlen)) {
		if (!(flags & GMREMAP_MAYMOVE)) {
			r = -ENOMEM;
			goto out;
		}
		dest = mm_find_free(p, newlen, p->mmap_base);
		if (!dest) {
			r = -ENOMEM;
			goto out;
		}
	}
	uint8_t *nh = NULL;
	uint64_t grow = newlen - oldlen;
	if (v->host) {
		/* Growing anything but private anonymous memory would need the
		 * file or shared object again, which corral does not keep. */
		if (grow && (!(v->flags & VMA_ANON) || (v->flags & VMA_SHARED))) {
			r = -ENOMEM;
			goto out;
		}
		if (grow > p->mem_cap - p->mem_used) {
			r = -ENOMEM;
			goto out;
		}
		if (dest == old && arena_take(p, v->host + oldlen, grow) == 0) {
			nh = v->host; /* grows in place in the arena too */
		} else if (!(nh = arena_get(p, host_up(newlen)))) {
			r = -ENOMEM;
			goto out;
		}
		if (grow && mmap(nh + oldlen, grow, PROT_READ | PROT_WRITE,
				 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) == MAP_FAILED) {
			arena_put(p, nh + (nh == v->host ? oldlen : 0), nh == v->host ? grow : newlen);
			r = -ENOMEM;
			goto out;
		}
		/* The guest sees the move only once vmem points at the new host
		 * memory. MREMAP_DONTUNMAP leaves the old range mapped, and it is
		 * reserved again in place: the arena never has a hole. */
		vmem_unmap(&p->vm, v->start, oldlen);
		if (nh != v->host) {
			bool moved = mremap(v->host, oldlen, oldlen, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
					    nh) != MAP_FAILED;
			/* The host refuses a range that spans several of its own
			 * mappings: private anonymous memory is copied instead. */
			if (!moved && (v->flags & VMA_ANON) && !(v->flags & VMA_SHARED) &&
			    mmap(nh, oldlen, PROT_READ | PROT_WRITE,
				 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) != MAP_FAILED) {
				memcpy(nh, v->host, oldlen);
				moved = true;
			}
			if (!moved) {
				r = -ENOMEM;
				arena_put(p, nh, newlen);
				vmem_map(&p->vm, v->start, oldlen, v->host, v->prot);
				goto out;
			}
			arena_put(p, v->host, oldlen);
		}
		p->mem_used += grow;
	}
	struct vma nv = *v;
	v->name = NULL;
	vma_remove_at(p, i);
	if (dest != old)
		unmap_locked(p, dest, dest + newlen);
	nv.start = dest;
	nv.end = dest + newlen;
	nv.host = nh;
	if ((r = vma_insert_at(p, vma_search(p, dest), &nv))) {
		free(nv.name);
		if (nh) {
			arena_put(p, nh, newlen);
			mem_uncharge(p, newlen);
		}
		goto out;
	}
	if (nh)
		vmem_map(&p->vm, dest, newlen, nh, nv.prot);
	r = (long)dest;
out:
	pthread_mutex_unlock(&p->mm_lock);
	return r;
}

long mm_madvise(struct proc *p, uint64_t addr, uint64_t len, int advice)
{
	if (addr & (GPAGE - 1))
		return -EINVAL;
	if (!len)
		return 0;
	len = gpage_up(len);
	if (!range_valid(addr, len))
		return -EINVAL;
	uint64_t end = addr + len;
	long r = 0;
	pthread_mutex_lock(&p->mm_lock);
	if (!range_mapped(p, addr, end)) {
		r = -ENOMEM;
		goto out;
	}
	if (advice != MADV_DONTNEED && advice != MADV_FREE && advice != MADV_REMOVE)
		goto out;
	/* DONTNEED has visible effects (private pages read back as zero or the
	 * file's contents): let the host do it on the same pages. */
	for (int i = vma_search(p, addr); i < p->nvma && p->vmas[i].start < end; i++) {
		struct vma *v = &p->vmas[i];
		if (!v->host)
			continue; /* a reservation: nothing to drop */
		uint64_t s = v->start > addr ? v->start : addr;
		uint64_t e = v->end < end ? v->end : end;
		uint8_t *h = v->host + (s - v->start);
		if (((uintptr_t)h & (host_page - 1)) == 0 && ((e - s) & (host_page - 1)) == 0)
			madvise(h, e - s, MADV_DONTNEED);
		else if (v->flags & VMA_ANON)
			memset(h, 0, e - s);
	}
	pthread_mutex_unlock(&p->mm_lock);
	gmem_written(addr, len); /* takes mm_lock for aliases of code */
	return 0;
out:
	pthread_mutex_unlock(&p->mm_lock);
	return r;
}

long mm_msync(struct proc *p, uint64_t addr, uint64_t len, int flags)
{
	if (addr & (GPAGE - 1))
		return -EINVAL;
	len = gpage_up(len);
	if (!len)
		return 0;
	if (!range_valid(addr, len))
		return -ENOMEM;
	uint64_t end = addr + len;
	long r = 0;
	pthread_mutex_lock(&p->mm_lock);
	if (!range_mapped(p, addr, end)) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = vma_search(p, addr); i < p->nvma && p->vmas[i].start < end; i++) {
		struct vma *v = &p->vmas[i];
		if (!(v->flags & VMA_SHARED) || (v->flags & VMA_ANON))
			continue;
		uint64_t s = v->start > addr ? v->start : addr;
		uint64_t e = v->end < end ? v->end : end;
		uintptr_t h = (uintptr_t)(v->host + (s - v->start)) & ~(uintptr_t)(host_page - 1);
		if (msync((void *)h, e - s, flags & (MS_ASYNC | MS_SYNC | MS_INVALIDATE)) < 0)
			r = -errno;
	}
out:
	pthread_mutex_unlock(&p->mm_lock);
	return r;
}

long mm_brk(struct proc *p, uint64_t addr)
{
	pthread_mutex_lock(&p->mm_lock);
	uint64_t cur = p->brk_cur;
	if (addr < p->brk_start || addr >= GUEST_TASK_SIZE)
		goto out;
	uint64_t oend = gpage_up(cur), nend = gpage_up(addr);
	if (nend > oend) {
		if (!mm_range_free(p, oend, nend + GPAGE))
			goto out;
		/* Grow the last heap piece in place when the host allows, so the
		 * heap stays one mapping. */
		int i = vma_search(p, oend - 1);
		if (oend > p->brk_start && i < p->nvma && (p->vmas[i].flags & VMA_HEAP) && p->vmas[i].end == oend) {
			struct vma *v = &p->vmas[i];
			uint64_t olen = v->end - v->start, grow = nend - oend;
			if (grow > p->mem_cap - p->mem_used)
				goto out;
			if (v->host && arena_take(p, v->host + olen, grow) == 0) {
				uint8_t *h = v->host + olen;
				if (mmap(h, grow, PROT_READ | PROT_WRITE,
					 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
					 0) != MAP_FAILED &&
				    vmem_map(&p->vm, oend, grow, h, v->prot) == 0) {
					v->end = nend;
					p->mem_used += grow;
					p->brk_cur = addr;
				} else {
					arena_put(p, h, grow);
				}
				goto out;
			}
		}
		if (map_locked(p, oend, nend - oend, VMEM_R | VMEM_W, VMA_HEAP, -1, 0, NULL) < 0)
			goto out;
	} else if (nend < oend) {
		unmap_locked(p, nend, oend);
	}
	p->brk_cur = addr;
out:
	cur = p->brk_cur;
	pthread_mutex_unlock(&p->mm_lock);
	return (long)cur;
}

char *mm_maps_text(struct proc *p, size_t *lenp)
{
	pthread_mutex_lock(&p->mm_lock);
	size_t cap = (size_t)p->nvma * 160 + 256, len = 0;
	char *buf = malloc(cap);
	if (!buf) {
		pthread_mutex_unlock(&p->mm_lock);
		return NULL;
	}
	for (int i = 0; i < p->nvma; i++) {
		struct vma v = p->vmas[i];
		/* Linux merges adjacent anonymous mappings with equal rights. */
		while (i + 1 < p->nvma && p->vmas[i + 1].start == v.end && p->vmas[i + 1].prot == v.prot &&
		       p->vmas[i + 1].flags == v.flags && !v.name && !p->vmas[i + 1].name) {
			v.end = p->vmas[i + 1].end;
			i++;
		}
		const char *name = v.name;
		if (!name && (v.flags & VMA_HEAP))
			name = "[heap]";
		if (!name && (v.flags & VMA_STACK) && v.end == GUEST_STACK_TOP)
			name = "[stack]";
		int n = snprintf(buf + len, cap - len, "%08llx-%08llx %c%c%c%c %08llx %02x:%02x %llu",
				 (unsigned long long)v.start, (unsigned long long)v.end, (v.prot & VMEM_R) ? 'r' : '-',
				 (v.prot & VMEM_W) ? 'w' : '-', (v.prot & VMEM_X) ? 'x' : '-',
				 (v.flags & VMA_SHARED) ? 's' : 'p',
				 (unsigned long long)((v.flags & VMA_ANON) ? 0 : v.off), (unsigned)(v.dev >> 8) & 0xfff,
				 (unsigned)(v.dev & 0xff), (unsigned long long)v.ino);
		if (n < 0 || (size_t)n >= cap - len)
			break;
		len += (size_t)n;
		if (name) {
			/* as Linux's seq_pad: the name starts at column 73 */
			while (n < 72 && len + 1 < cap) {
				buf[len++] = ' ';
				n++;
			}
			n = snprintf(buf + len, cap - len, " %s", name);
			if (n < 0 || (size_t)n >= cap - len)
				break;
			len += (size_t)n;
		}
		if (len + 1 >= cap)
			break;
		buf[len++] = '\n';
	}
	pthread_mutex_unlock(&p->mm_lock);
	*lenp = len;
	return buf;
}

/* ---- Guest memory for syscalls ---- */

/* A copy between guest memory and corral's: the host may fault on a guest
 * page (a file page past the file's end, a page another thread just
 * unmapped); signal.c's arena_fault then unwinds to copy_jb and the copy
 * fails with EFAULT, as the kernel's own copies do. */
#define GMEM_COPY(expr)                                                                                                \
	do {                                                                                                           \
		struct gthread *t_ = cur_thread;                                                                       \
		if (!t_)                                                                                               \
			return (expr) ? -EFAULT : 0;                                                                   \
		if (sigsetjmp(t_->copy_jb, 0))                                                                         \
			return -EFAULT;                                                                                \
		t_->in_copy = 1;                                                                                       \
		int r_ = (expr);                                                                                       \
		t_->in_copy = 0;                                                                                       \
		return r_ ? -EFAULT : 0;                                                                               \
	} while (0)

int gmem_read(uint64_t gva, void *dst, size_t n)
{
	if (!n)
		return 0;
	GMEM_COPY(vmem_read(&proc.vm, gva, dst, n));
}

int gmem_write(uint64_t gva, const void *src, size_t n)
{
	if (!n)
		return 0;
	GMEM_COPY(vmem_write(&proc.vm, gva, src, n));
}

long gmem_read_str(uint64_t gva, char *dst, size_t max)
{
	struct gthread *t = cur_thread;
	if (!t)
		return vmem_read_str(&proc.vm, gva, dst, max);
	if (sigsetjmp(t->copy_jb, 0))
		return -EFAULT;
	t->in_copy = 1;
	long r = vmem_read_str(&proc.vm, gva, dst, max);
	t->in_copy = 0;
	return r;
}

void gmem_written(uint64_t gva, size_t n)
{
	if (!n)
		return;
	for (uint64_t pg = gpage_down(gva); pg < gva + n; pg += GPAGE) {
		unsigned prot;
		if (vmem_lookup(&proc.vm, pg, &prot) && (prot & VMEM_CODE))
			vmem_code_written(&proc.vm, pg);
	}
}

int gmem_iov(uint64_t gva, size_t len, int write, struct iovec *iov, int max, size_t *got)
{
	unsigned need = write ? VMEM_W : VMEM_R;
	int n = 0;
	size_t total = 0;
	while (total < len && gva < VMEM_LIMIT) {
		unsigned prot;
		uint8_t *h = vmem_lookup(&proc.vm, gva, &prot);
		if (!h || (prot & need) != need)
			break;
		size_t in = GPAGE - (gva & (GPAGE - 1));
		if (in > len - total)
			in = len - total;
		h += gva & (GPAGE - 1);
		if (n > 0 && (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == h) {
			iov[n - 1].iov_len += in;
		} else {
			if (n == max)
				break;
			iov[n].iov_base = h;
			iov[n].iov_len = in;
			n++;
		}
		total += in;
		gva += in;
	}
	*got = total;
	return n;
}

void *gmem_ptr(uint64_t gva, size_t n, unsigned need)
{
	unsigned prot;
	if (gva >= VMEM_LIMIT || (gva & (GPAGE - 1)) + n > GPAGE)
		return NULL;
	uint8_t *h = vmem_lookup(&proc.vm, gva, &prot);
	if (!h || (prot & need) != need)
		return NULL;
	return h + (gva & (GPAGE - 1));
}
