/* Memory syscalls: mmap, munmap, mprotect, mremap, madvise, msync, brk and
 * mincore, handed to mm.c. */
#include <errno.h>

#include "process/internal.h"
#include "process/sys.h"

/* ---- memory ---- */

SYS(mmap)
{
	if (!((a[3] & 0x20) /* MAP_ANONYMOUS */) && fs_fd_reserved((int)a[4]))
		return -EBADF;
	return mm_mmap(&proc, a[0], a[1], (int)a[2], (int)a[3], (int)a[4], a[5]);
}
SYS(munmap)
{
	return mm_munmap(&proc, a[0], a[1]);
}
SYS(mprotect)
{
	return mm_mprotect(&proc, a[0], a[1], (int)a[2]);
}
SYS(mremap)
{
	return mm_mremap(&proc, a[0], a[1], a[2], (int)a[3], a[4]);
}
SYS(madvise)
{
	return mm_madvise(&proc, a[0], a[1], (int)a[2]);
}
SYS(msync)
{
	return mm_msync(&proc, a[0], a[1], (int)a[2]);
}
SYS(brk)
{
	return mm_brk(&proc, a[0]);
}
SYS(mlock)
{
	return 0;
}

SYS(mincore)
{
	if (a[0] & (GPAGE - 1))
		return -EINVAL;
	if (a[1] > VMEM_LIMIT || a[0] + a[1] > VMEM_LIMIT)
		return -ENOMEM;
	uint64_t n = (a[1] + GPAGE - 1) / GPAGE;
	for (uint64_t k = 0; k < n; k++) {
		unsigned prot;
		if (!vmem_lookup(&proc.vm, a[0] + k * GPAGE, &prot))
			return -ENOMEM;
		uint8_t one = 1;
		if (gmem_write(a[2] + k, &one, 1))
			return -EFAULT;
	}
	return 0;
}
