/* The process VM's guest memory syscalls (mm.c): errors compared with the
 * host kernel's answers to the same calls, and the resulting guest mappings
 * checked through vmem. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "process/internal.h"
#include "testhelp.h"

#define PG 4096ul

/* The host's answer as 0 or -errno. */
static long host_rc(long r)
{
	return r < 0 ? -errno : 0;
}

static long host_mmap_rc(void *a, size_t l, int prot, int fl, int fd, off_t off)
{
	void *p = mmap(a, l, prot, fl, fd, off);
	if (p == MAP_FAILED)
		return -errno;
	munmap(p, l);
	return 0;
}

static long guest_rc(long r)
{
	return r < 0 ? r : 0;
}

static void setup(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	CHECK(vmem_init(&proc.vm) == 0);
	CHECK(mm_init(&proc) == 0);
	CHECK(fs_init(&proc) == 0);
	/* host faults on guest memory are handled for guest threads */
	CHECK(sig_init(&proc) == 0);
	static struct gthread main_thread;
	cur_thread = &main_thread;
}

static void test_errors_like_host(void)
{
	setup();
	int anon = MAP_PRIVATE | MAP_ANONYMOUS;
	CHECK_EQ_U64(guest_rc(mm_mmap(&proc, 0, 0, PROT_READ, anon, -1, 0)),
		     host_mmap_rc(NULL, 0, PROT_READ, anon, -1, 0));
	CHECK_EQ_U64(guest_rc(mm_mmap(&proc, 0, PG, PROT_READ, MAP_ANONYMOUS, -1, 0)),
		     host_mmap_rc(NULL, PG, PROT_READ, MAP_ANONYMOUS, -1, 0));
	int fd = open("/proc/self/exe", O_RDONLY);
	CHECK(fd >= 0);
	CHECK_EQ_U64(guest_rc(mm_mmap(&proc, 0, PG, PROT_READ, MAP_PRIVATE, fd, 123)),
		     host_mmap_rc(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 123));
	/* writable shared mapping of a read-only fd */
	CHECK_EQ_U64(guest_rc(mm_mmap(&proc, 0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)),
		     host_mmap_rc(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	close(fd);
	CHECK_EQ_U64(guest_rc(mm_mmap(&proc, 0, PG, PROT_READ, MAP_PRIVATE, 9999, 0)),
		     host_mmap_rc(NULL, PG, PROT_READ, anon & ~MAP_ANONYMOUS, 9999, 0));

	/* host: a 3-page region with a hole in the middle */
	char *h = mmap(NULL, 3 * PG, PROT_READ, anon, -1, 0);
	munmap(h + PG, PG);
	long g = mm_mmap(&proc, 0, 3 * PG, PROT_READ, anon, -1, 0);
	CHECK(g > 0);
	CHECK(mm_munmap(&proc, (uint64_t)g + PG, PG) == 0);
	CHECK_EQ_U64(guest_rc(mm_mprotect(&proc, (uint64_t)g, 3 * PG, PROT_READ | PROT_WRITE)),
		     host_rc(mprotect(h, 3 * PG, PROT_READ | PROT_WRITE)));
	CHECK_EQ_U64(guest_rc(mm_munmap(&proc, (uint64_t)g + 1, PG)), host_rc(munmap(h + 1, PG)));
	CHECK_EQ_U64(guest_rc(mm_madvise(&proc, (uint64_t)g, 3 * PG, MADV_DONTNEED)),
		     host_rc(madvise(h, 3 * PG, MADV_DONTNEED)));
	/* MAP_FIXED_NOREPLACE over a mapping */
	CHECK_EQ_U64(guest_rc(mm_mmap(&proc, (uint64_t)g, PG, PROT_READ, anon | MAP_FIXED_NOREPLACE, -1, 0)),
		     host_mmap_rc(h, PG, PROT_READ, anon | MAP_FIXED_NOREPLACE, -1, 0));
	/* growing in place into the next mapping without MREMAP_MAYMOVE */
	void *hr = mremap(h + 2 * PG, PG, 2 * PG, 0);
	long gr = mm_mremap(&proc, (uint64_t)g + 2 * PG, PG, 2 * PG, 0, 0);
	if (hr != MAP_FAILED) /* the host had room after the region: make the guest have none */
		CHECK(gr >= 0);
	/* mremap of an unmapped range */
	CHECK_EQ_U64(guest_rc(mm_mremap(&proc, (uint64_t)g + PG, PG, PG, MREMAP_MAYMOVE, 0)),
		     host_rc((long)(intptr_t)mremap(h + PG, PG, PG, MREMAP_MAYMOVE) == -1 ? -1 : 0));
	munmap(h, 3 * PG);
	mm_munmap(&proc, (uint64_t)g, 4 * PG);
}

static void test_layout(void)
{
	setup();
	int anon = MAP_PRIVATE | MAP_ANONYMOUS;
	long a = mm_mmap(&proc, 0, 16 * PG, PROT_READ | PROT_WRITE, anon, -1, 0);
	long b = mm_mmap(&proc, 0, PG, PROT_READ | PROT_WRITE, anon, -1, 0);
	/* top-down below the mmap base, as Linux without randomization */
	CHECK(a > 0 && (uint64_t)a + 16 * PG <= GUEST_MMAP_BASE);
	CHECK(b > 0 && (uint64_t)b + PG <= (uint64_t)a);
	/* anonymous memory reads back as zero, writes stick */
	uint64_t v = 0x1234;
	CHECK(gmem_write((uint64_t)a + 5 * PG + 8, &v, 8) == 0);
	v = 0;
	CHECK(gmem_read((uint64_t)a + 5 * PG + 8, &v, 8) == 0);
	CHECK_EQ_U64(v, 0x1234);
	CHECK(gmem_read((uint64_t)a + 6 * PG, &v, 8) == 0);
	CHECK_EQ_U64(v, 0);
	/* munmap in the middle splits the mapping */
	CHECK(mm_munmap(&proc, (uint64_t)a + 4 * PG, 2 * PG) == 0);
	unsigned prot;
	CHECK(vmem_lookup(&proc.vm, (uint64_t)a + 4 * PG, &prot) == NULL);
	CHECK(vmem_lookup(&proc.vm, (uint64_t)a + 5 * PG, &prot) == NULL);
	CHECK(vmem_lookup(&proc.vm, (uint64_t)a + 3 * PG, &prot) != NULL);
	CHECK(vmem_lookup(&proc.vm, (uint64_t)a + 6 * PG, &prot) != NULL);
	/* mprotect narrows what the guest may do */
	CHECK(mm_mprotect(&proc, (uint64_t)a, PG, PROT_READ) == 0);
	CHECK(gmem_write((uint64_t)a, &v, 8) == -EFAULT);
	CHECK(gmem_read((uint64_t)a, &v, 8) == 0);
	CHECK(mm_mprotect(&proc, (uint64_t)a, PG, PROT_NONE) == 0);
	CHECK(gmem_read((uint64_t)a, &v, 8) == -EFAULT);
	/* MAP_FIXED replaces contents */
	v = 77;
	CHECK(gmem_write((uint64_t)a + 8 * PG, &v, 8) == 0);
	CHECK(mm_mmap(&proc, (uint64_t)a + 8 * PG, PG, PROT_READ | PROT_WRITE, anon | MAP_FIXED, -1, 0) ==
	      a + 8 * (long)PG);
	CHECK(gmem_read((uint64_t)a + 8 * PG, &v, 8) == 0);
	CHECK_EQ_U64(v, 0);
	/* mremap with MAYMOVE keeps the contents */
	v = 99;
	CHECK(gmem_write((uint64_t)b, &v, 8) == 0);
	long c = mm_mremap(&proc, (uint64_t)b, PG, 64 * PG, MREMAP_MAYMOVE, 0);
	CHECK(c > 0);
	v = 0;
	CHECK(gmem_read((uint64_t)c, &v, 8) == 0);
	CHECK_EQ_U64(v, 99);
	CHECK(gmem_read((uint64_t)c + 63 * PG, &v, 8) == 0);
	CHECK(mm_munmap(&proc, (uint64_t)a, 16 * PG) == 0);
	CHECK(mm_munmap(&proc, (uint64_t)c, 64 * PG) == 0);
}

static void test_file_and_maps(void)
{
	setup();
	char path[] = "/tmp/corral-t_mm-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, "file contents", 13) == 13);
	long m = mm_mmap(&proc, 0, 3 * PG, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK(m > 0);
	char buf[16] = {0};
	CHECK(gmem_read((uint64_t)m, buf, 13) == 0);
	CHECK(!memcmp(buf, "file contents", 13));
	/* the rest of the file's last page reads as zeros; pages wholly past
	 * the end fail with EFAULT, as the host kernel's copies do (no crash
	 * of corral) */
	uint64_t z = 1;
	CHECK(gmem_read((uint64_t)m + PG - 8, &z, 8) == 0);
	CHECK_EQ_U64(z, 0);
	CHECK(gmem_read((uint64_t)m + 2 * PG, &z, 8) == -EFAULT);
	CHECK(gmem_read((uint64_t)m + PG, &z, 8) == -EFAULT);
	CHECK(write(fd, "", 0) == 0 && ftruncate(fd, PG + 100) == 0); /* the file grows: readable */
	CHECK(gmem_read((uint64_t)m + PG, &z, 8) == 0);
	size_t len;
	char *t = mm_maps_text(&proc, &len);
	CHECK(t != NULL);
	char want[128];
	snprintf(want, sizeof(want), "%08lx-%08lx r--p 00000000 ", (unsigned long)m, (unsigned long)m + 3 * PG);
	CHECK(t && strstr(t, want) != NULL);
	CHECK(t && strstr(t, path) != NULL);
	free(t);
	close(fd);
	unlink(path);
	mm_munmap(&proc, (uint64_t)m, 3 * PG);
}

static void test_brk(void)
{
	setup();
	proc.brk_start = proc.brk_cur = 0x600000;
	CHECK_EQ_U64(mm_brk(&proc, 0), 0x600000);
	CHECK_EQ_U64(mm_brk(&proc, 0x600000 + 100000), 0x600000 + 100000);
	uint64_t v = 5;
	CHECK(gmem_write(0x600000 + 99990, &v, 8) == 0);
	CHECK_EQ_U64(mm_brk(&proc, 0x600000 + 300000), 0x600000 + 300000);
	CHECK(gmem_read(0x600000 + 99990, &v, 8) == 0);
	CHECK_EQ_U64(v, 5);
	CHECK_EQ_U64(mm_brk(&proc, 0x600000 + 10), 0x600000 + 10);
	CHECK(gmem_read(0x600000 + 99990, &v, 8) == -EFAULT);
	/* below the start: unchanged */
	CHECK_EQ_U64(mm_brk(&proc, 0x1000), 0x600000 + 10);
	/* into another mapping: refused */
	CHECK(mm_mmap(&proc, 0x700000, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == 0x700000);
	CHECK_EQ_U64(mm_brk(&proc, 0x800000), 0x600000 + 10);
}

int main(void)
{
	RUN(test_errors_like_host);
	RUN(test_layout);
	RUN(test_file_and_maps);
	RUN(test_brk);
	return test_report();
}
