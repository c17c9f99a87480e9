/* Guest memory layout of a process VM: the mapping list behind mmap, munmap,
 * mprotect, mremap, brk and /proc/self/maps, on top of vmem; and the checked
 * guest-memory helpers the syscalls use. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

int mm_init(struct proc *p)
{
	host_page = (size_t)sysconf(_SC_PAGESIZE);
	p->mmap_base = GUEST_MMAP_BASE;
	p->cap_vma = 64;
	p->vmas = calloc((size_t)p->cap_vma, sizeof(*p->vmas));
	if (!p->vmas)
		return -ENOMEM;
	return pthread_mutex_init(&p->mm_lock, NULL) ? -ENOMEM : 0;
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

/* Release host memory behind [host, host+len) where it can be given back
 * in whole host pages (on hosts with pages larger than 4 KiB a partial
 * unmap leaves the host memory allocated but no longer guest-visible). */
static void host_release(uint8_t *host, uint64_t len)
{
	uintptr_t a = (uintptr_t)host;
	uintptr_t s = (a + host_page - 1) & ~(uintptr_t)(host_page - 1);
	uintptr_t e = (a + len) & ~(uintptr_t)(host_page - 1);
	if (e > s)
		munmap((void *)s, e - s);
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
		vmem_unmap(&p->vm, v->start, v->end - v->start);
		host_release(v->host, v->end - v->start);
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

/* Host memory for a new mapping. */
static void *host_alloc(uint64_t len, unsigned vflags, int fd, uint64_t off, unsigned prot, uint64_t *fsize, int *err)
{
	void *h;
	*err = 0;
	if (fd < 0) {
		int f = MAP_ANONYMOUS | MAP_NORESERVE | ((vflags & VMA_SHARED) ? MAP_SHARED : MAP_PRIVATE);
		h = mmap(NULL, len, PROT_READ | PROT_WRITE, f, -1, 0);
	} else {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			*err = -errno;
			return NULL;
		}
		int hp = PROT_READ;
		if (!(vflags & VMA_SHARED) || (prot & VMEM_W))
			hp |= PROT_WRITE;
		/* Hosts with pages larger than the guest's need a host-aligned
		 * file offset: map from below and point past the difference. */
		uint64_t delta = off & (host_page - 1);
		h = mmap(NULL, len + delta, hp, (vflags & VMA_SHARED) ? MAP_SHARED : MAP_PRIVATE, fd,
			 (off_t)(off - delta));
		if (h != MAP_FAILED)
			h = (uint8_t *)h + delta;
		/* Pages wholly past the end of a regular file would raise SIGBUS
		 * in corral itself; give the guest zero pages there instead. */
		if (h != MAP_FAILED && S_ISREG(st.st_mode)) {
			uint64_t fend = gpage_up((uint64_t)st.st_size);
			*fsize = (uint64_t)st.st_size;
			if (fend < off + len) {
				uintptr_t from = (uintptr_t)h + (fend > off ? fend - off : 0);
				uintptr_t end = (uintptr_t)h + len;
				from = (from + host_page - 1) & ~(uintptr_t)(host_page - 1);
				if (from < end)
					mmap((void *)from, end - from, PROT_READ | PROT_WRITE,
					     MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			}
		}
	}
	if (h == MAP_FAILED) {
		*err = errno == ENOMEM ? -ENOMEM : -errno;
		return NULL;
	}
	return h;
}

/* Map with mm_lock held; replaces what was there. */
static long map_locked(struct proc *p, uint64_t gva, uint64_t len, unsigned prot, unsigned vflags, int fd, uint64_t off,
		       const char *name)
{
	int err;
	uint64_t fsize = 0;
	struct stat st;
	uint8_t *h = host_alloc(len, vflags, fd, off, prot, &fsize, &err);
	if (!h)
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
	if (name && !(v.name = strdup(name))) {
		munmap(h, len);
		return -ENOMEM;
	}
	int r = unmap_locked(p, gva, gva + len);
	if (!r)
		r = vma_insert_at(p, vma_search(p, gva), &v);
	if (r) {
		free(v.name);
		munmap(h, len);
		return r;
	}
	r = vmem_map(&p->vm, gva, len, h, prot);
	if (r) {
		vma_remove_at(p, vma_search(p, gva));
		munmap(h, len);
		return r;
	}
	return (long)gva;
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
	return len && start < VMEM_LIMIT && len <= VMEM_LIMIT - start;
}

long mm_mmap(struct proc *p, uint64_t addr, uint64_t len, int prot, int flags, int fd, uint64_t off)
{
	if (!len)
		return -EINVAL;
	if (off & (GPAGE - 1))
		return -EINVAL;
	if (len > VMEM_LIMIT)
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
			r = (flags & GMAP_FIXED) ? -ENOMEM : -EINVAL;
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
	if (p->vmas[i].start < addr) {
		if ((r = vma_split(p, i, addr)))
			goto out;
		i++;
	}
	for (; i < p->nvma && p->vmas[i].start < end; i++) {
		if (p->vmas[i].end > end && (r = vma_split(p, i, end)))
			goto out;
		p->vmas[i].prot = vp;
	}
	r = vmem_protect(&p->vm, addr, len, vp);
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
	if (!newlen || newlen > VMEM_LIMIT)
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
	} else if (old + newlen > VMEM_LIMIT || !mm_range_free(p, old + oldlen, old + newlen)) {
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
	/* Let the host move or grow its pages; the guest sees the result only
	 * once vmem points at the new host memory. */
	vmem_unmap(&p->vm, v->start, oldlen);
	void *nh = mremap(v->host, oldlen, newlen, MREMAP_MAYMOVE);
	if (nh == MAP_FAILED) {
		r = -ENOMEM;
		vmem_map(&p->vm, v->start, oldlen, v->host, v->prot);
		goto out;
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
		munmap(nh, newlen);
		goto out;
	}
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
		uint64_t s = v->start > addr ? v->start : addr;
		uint64_t e = v->end < end ? v->end : end;
		uint8_t *h = v->host + (s - v->start);
		if (((uintptr_t)h & (host_page - 1)) == 0 && ((e - s) & (host_page - 1)) == 0)
			madvise(h, e - s, MADV_DONTNEED);
		else if (v->flags & VMA_ANON)
			memset(h, 0, e - s);
		gmem_written(s, e - s);
	}
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
	if (addr < p->brk_start || addr >= VMEM_LIMIT)
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
			uint64_t olen = v->end - v->start;
			void *nh = mremap(v->host, olen, olen + (nend - oend), 0);
			if (nh != MAP_FAILED) {
				if (vmem_map(&p->vm, oend, nend - oend, v->host + olen, v->prot) == 0) {
					v->end = nend;
					p->brk_cur = addr;
				} else {
					mremap(v->host, olen + (nend - oend), olen, 0);
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

int gmem_read(uint64_t gva, void *dst, size_t n)
{
	if (!n)
		return 0;
	return vmem_read(&proc.vm, gva, dst, n) ? -EFAULT : 0;
}

int gmem_write(uint64_t gva, const void *src, size_t n)
{
	if (!n)
		return 0;
	return vmem_write(&proc.vm, gva, src, n) ? -EFAULT : 0;
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
