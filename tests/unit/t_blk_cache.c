/* cache=none on raw and qcow2 images: aligned and unaligned requests read
 * back what was written, a flush succeeds, and aligned guest data really
 * bypasses the host's page cache (pages of the file stay non-resident, as
 * mincore sees them) while cache=writeback leaves it cached. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/block.h"
#include "testhelp.h"

#define DISK (4u << 20)
#define PAGE 4096u

static char dir[512];
static int direct_ok;	     /* the file system takes O_DIRECT at all */
static int cache_observable; /* and bypasses the page cache with it */

static const char *tpath(const char *name)
{
	static char buf[2][600];
	static int k;
	k ^= 1;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

/* A raw file of DISK bytes with content model, on disk and out of the
 * page cache. */
static int make_raw(const char *path, const uint8_t *model)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	int rc = pwrite(fd, model, DISK, 0) == (ssize_t)DISK && fsync(fd) == 0 ? 0 : -1;
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return rc;
}

static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fdatasync(fd);
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

/* Pages of [off, off + len) of path in the host's page cache. */
static long resident(const char *path, uint64_t off, uint64_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return -1;
	if (!len)
		len = (uint64_t)st.st_size - off;
	void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
	close(fd);
	if (m == MAP_FAILED)
		return -1;
	size_t n = (len + PAGE - 1) / PAGE;
	unsigned char *vec = calloc(n, 1);
	long r = 0;
	if (vec && mincore(m, len, vec) == 0)
		for (size_t i = 0; i < n; i++)
			r += vec[i] & 1;
	else
		r = -1;
	free(vec);
	munmap(m, len);
	return r;
}

static struct blk *open_cache(const char *path, int ro, enum blk_cache cache)
{
	struct blk *b = NULL;
	char err[512];
	int rc = blk_open_cache(&b, path, BLK_FMT_PROBE, ro, cache, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "  open %s: %s\n", path, err);
		CHECK(rc == 0);
		return NULL;
	}
	return b;
}

/* fdinfo's flags field of fd (octal), or -1. */
static long fd_flags(int fd)
{
	char p[64], line[256];
	long flags = -1;
	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(p, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags:", 6))
			flags = strtol(line + 6, NULL, 8);
	fclose(f);
	return flags;
}

static void test_cache_parse(void)
{
	enum blk_cache c = BLK_CACHE_WRITEBACK;
	CHECK(blk_cache_parse("none", &c) == 0 && c == BLK_CACHE_NONE);
	CHECK(blk_cache_parse("writeback", &c) == 0 && c == BLK_CACHE_WRITEBACK);
	CHECK(blk_cache_parse("bogus", &c) < 0);
	CHECK(blk_cache_parse("", &c) < 0);
	CHECK(blk_cache_parse("None", &c) < 0);
}

/* Only an image opened with cache=none has a second, O_DIRECT descriptor. */
static void test_descriptors(void)
{
	if (!direct_ok) {
		printf("  (skipped: %s refuses O_DIRECT)\n", dir);
		return;
	}
	static uint8_t model[DISK];
	const char *p = tpath("fd.img");
	CHECK(make_raw(p, model) == 0);
	struct blk *b = open_cache(p, 0, BLK_CACHE_NONE);
	if (!b)
		return;
	CHECK(b->direct.on);
	CHECK(b->direct.mem_align >= 1 && b->direct.mem_align <= PAGE);
	CHECK(b->direct.off_align >= 512 && b->direct.off_align <= PAGE);
	long fl = fd_flags(b->direct.fd);
	CHECK(fl >= 0 && (fl & O_DIRECT));
	CHECK((fl & O_ACCMODE) == O_RDWR);
	blk_close(b);
	b = open_cache(p, 1, BLK_CACHE_NONE);
	if (b) {
		fl = fd_flags(b->direct.fd);
		CHECK(fl >= 0 && (fl & O_DIRECT) && (fl & O_ACCMODE) == O_RDONLY);
		blk_close(b);
	}
	b = open_cache(p, 0, BLK_CACHE_WRITEBACK);
	if (b) {
		CHECK(!b->direct.on);
		blk_close(b);
	}
}

/* iovecs over buf for len bytes: aligned ones (page-sized pieces of a page
 * aligned buffer) or ragged ones (odd bases and lengths). */
static int make_iov(struct iovec *v, uint8_t *buf, size_t len, int aligned)
{
	int n = 0;
	size_t done = 0;
	while (done < len && n < 64) {
		size_t piece = aligned ? PAGE * (1 + rnd() % 8) : 1 + rnd() % 9000;
		if (piece > len - done || n == 63)
			piece = len - done;
		v[n].iov_base = buf + done;
		v[n].iov_len = piece;
		done += piece;
		n++;
	}
	return n;
}

/* Random reads and writes against a flat model, half of them aligned for
 * direct I/O, half not; then a flush, and the image reopened through the
 * page cache must hold exactly the model. */
static void roundtrip(const char *path, uint8_t *model)
{
	struct blk *b = open_cache(path, 0, BLK_CACHE_NONE);
	if (!b)
		return;
	uint8_t *buf = NULL, *got = NULL;
	CHECK(posix_memalign((void **)&buf, PAGE, (1u << 20) + PAGE) == 0);
	CHECK(posix_memalign((void **)&got, PAGE, DISK) == 0);
	if (!buf || !got)
		goto out;
	for (int i = 0; i < 300; i++) {
		int aligned = i & 1, write = (i >> 1) & 1;
		size_t len = aligned ? PAGE * (1 + rnd() % 256) : 1 + rnd() % (1u << 20);
		uint64_t off = aligned ? PAGE * (rnd() % ((DISK - len) / PAGE + 1)) : rnd() % (DISK - len + 1);
		uint8_t *base = aligned ? buf : buf + 1 + rnd() % 511;
		struct iovec v[64];
		int n = make_iov(v, base, len, aligned);
		if (write) {
			fill_random(base, len);
			CHECK(b->ops->writev(b, off, v, n) == 0);
			memcpy(model + off, base, len);
		} else {
			memset(base, 0xee, len);
			CHECK(b->ops->readv(b, off, v, n) == 0);
			CHECK(memcmp(base, model + off, len) == 0);
		}
	}
	CHECK(b->ops->flush(b) == 0);
	blk_close(b);
	b = open_cache(path, 1, BLK_CACHE_WRITEBACK);
	if (b) {
		CHECK(blk_pread(b, 0, got, DISK) == 0);
		CHECK(memcmp(got, model, DISK) == 0);
		blk_close(b);
	}
out:
	free(buf);
	free(got);
}

static void test_raw_roundtrip(void)
{
	if (!direct_ok) {
		printf("  (skipped: %s refuses O_DIRECT)\n", dir);
		return;
	}
	static uint8_t model[DISK];
	fill_random(model, DISK);
	const char *p = tpath("rt.img");
	CHECK(make_raw(p, model) == 0);
	roundtrip(p, model);
}

static void test_qcow2_roundtrip(void)
{
	if (!direct_ok) {
		printf("  (skipped: %s refuses O_DIRECT)\n", dir);
		return;
	}
	static uint8_t model[DISK];
	char err[512];
	const char *p = tpath("rt.qcow2");
	CHECK(qcow2_create(p, DISK, 16, NULL, NULL, err, sizeof(err)) == 0);
	roundtrip(p, model);
	struct blk *b = open_cache(p, 1, BLK_CACHE_WRITEBACK);
	if (b) {
		struct qcow2_check res;
		CHECK(qcow2_check(b, &res, NULL, 0) == 0);
		CHECK(res.errors == 0 && res.leaks == 0);
		blk_close(b);
	}
}

/* Aligned writes and reads with cache=none leave the file's pages out of the
 * page cache; unaligned ones and cache=writeback bring them in (so the check
 * can tell the two apart). */
static void test_raw_bypass(void)
{
	static uint8_t model[DISK];
	if (!cache_observable) {
		printf("  (skipped: %s has no real direct I/O, page cache use is not observable)\n", dir);
		return;
	}
	const char *p = tpath("bypass.img");
	fill_random(model, DISK);
	CHECK(make_raw(p, model) == 0);
	CHECK(resident(p, 0, DISK) == 0);
	uint8_t *buf = NULL;
	CHECK(posix_memalign((void **)&buf, PAGE, (1u << 20) + PAGE) == 0);
	if (!buf)
		return;
	struct blk *b = open_cache(p, 0, BLK_CACHE_NONE);
	if (!b)
		goto out;
	fill_random(buf, 1u << 20);
	CHECK(blk_pwrite(b, 0, buf, 1u << 20) == 0);
	CHECK(blk_pread(b, 1u << 20, buf, 1u << 20) == 0);
	CHECK(memcmp(buf, model + (1u << 20), 1u << 20) == 0);
	CHECK(b->ops->flush(b) == 0);
	CHECK_EQ_U64(resident(p, 0, 2u << 20), 0);
	/* an unaligned buffer goes through the page cache */
	CHECK(blk_pwrite(b, 2u << 20, buf + 1, PAGE) == 0);
	CHECK(b->ops->flush(b) == 0);
	CHECK(resident(p, 2u << 20, PAGE) == 1);
	/* 256 scattered pages, half of them at odd addresses: one direct
	 * transfer through the bounce buffer, the page cache left alone */
	uint8_t *sc = NULL;
	CHECK(posix_memalign((void **)&sc, PAGE, 512 * PAGE + 2) == 0);
	if (sc) {
		struct iovec v[256];
		for (unsigned i = 0; i < 256; i++) {
			v[i].iov_base = sc + (size_t)(255 - i) * 2 * PAGE + (i & 1);
			v[i].iov_len = PAGE;
			fill_random(v[i].iov_base, PAGE);
		}
		CHECK(b->ops->writev(b, 3u << 20, v, 256) == 0);
		CHECK(b->ops->flush(b) == 0);
		CHECK_EQ_U64(resident(p, 3u << 20, 1u << 20), 0);
		CHECK(blk_pread(b, 3u << 20, buf, 1u << 20) == 0);
		unsigned bad = 0;
		for (unsigned i = 0; i < 256; i++)
			bad += memcmp(buf + i * PAGE, v[i].iov_base, PAGE) != 0;
		CHECK_EQ_U64(bad, 0);
		memset(buf, 0, 1u << 20);
		for (unsigned i = 0; i < 256; i++)
			memset(v[i].iov_base, 0xee, PAGE);
		CHECK(blk_pwrite(b, 3u << 20, buf, 1u << 20) == 0);
		CHECK(b->ops->readv(b, 3u << 20, v, 256) == 0);
		for (unsigned i = 0; i < 256; i++)
			bad += memcmp(v[i].iov_base, buf, PAGE) != 0;
		CHECK_EQ_U64(bad, 0);
		CHECK_EQ_U64(resident(p, 3u << 20, 1u << 20), 0);
		free(sc);
	}
	blk_close(b);

	b = open_cache(p, 0, BLK_CACHE_WRITEBACK);
	if (!b)
		goto out;
	CHECK(blk_pwrite(b, 3u << 20, buf, 1u << 20) == 0);
	CHECK(b->ops->flush(b) == 0);
	CHECK_EQ_U64(resident(p, 3u << 20, 1u << 20), (1u << 20) / PAGE);
	blk_close(b);
out:
	free(buf);
}

/* qcow2: guest data in whole clusters goes direct, metadata through the
 * page cache; so 1 MiB written with cache=none leaves at least 1 MiB less
 * of the file cached than the same write with cache=writeback. */
static long qcow2_cached_after_write(const char *name, enum blk_cache cache, uint8_t *buf)
{
	char err[512];
	const char *p = tpath(name);
	CHECK(qcow2_create(p, DISK, 16, NULL, NULL, err, sizeof(err)) == 0);
	drop_cache(p);
	struct blk *b = open_cache(p, 0, cache);
	if (!b)
		return -1;
	CHECK(blk_pwrite(b, 1u << 20, buf, 1u << 20) == 0);
	CHECK(b->ops->flush(b) == 0);
	uint8_t *back = NULL;
	CHECK(posix_memalign((void **)&back, PAGE, 1u << 20) == 0);
	CHECK(back && blk_pread(b, 1u << 20, back, 1u << 20) == 0 && memcmp(back, buf, 1u << 20) == 0);
	free(back);
	blk_close(b);
	return resident(p, 0, 0);
}

static void test_qcow2_bypass(void)
{
	if (!cache_observable) {
		printf("  (skipped: %s has no real direct I/O, page cache use is not observable)\n", dir);
		return;
	}
	uint8_t *buf = NULL;
	CHECK(posix_memalign((void **)&buf, PAGE, 1u << 20) == 0);
	if (!buf)
		return;
	fill_random(buf, 1u << 20);
	long none = qcow2_cached_after_write("none.qcow2", BLK_CACHE_NONE, buf);
	long wb = qcow2_cached_after_write("wb.qcow2", BLK_CACHE_WRITEBACK, buf);
	if (none < 0 || wb < 0 || none + (long)((1u << 20) / PAGE) > wb)
		fprintf(stderr, "  resident pages after 1 MiB: cache=none %ld, cache=writeback %ld\n", none, wb);
	CHECK(none >= 0 && none + (long)((1u << 20) / PAGE) <= wb);
	free(buf);
}

int main(void)
{
	/* The build directory rather than /tmp: the check needs a file system
	 * with real direct I/O, and /tmp is often tmpfs. */
	const char *base = getenv("BUILD") ? getenv("BUILD") : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(dir, sizeof(dir), "%s/t_blk_cache.XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	const char *probe = tpath("probe");
	int fd = open(probe, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
	direct_ok = fd >= 0;
#ifdef STATX_DIOALIGN
	/* tmpfs takes O_DIRECT but keeps everything in the page cache; it does
	 * not report a direct-I/O alignment */
	struct statx stx;
	cache_observable = direct_ok && statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
			   (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align;
#endif
	if (fd >= 0)
		close(fd);
	unlink(probe);
	RUN(test_cache_parse);
	RUN(test_descriptors);
	RUN(test_raw_roundtrip);
	RUN(test_qcow2_roundtrip);
	RUN(test_raw_bypass);
	RUN(test_qcow2_bypass);
	const char *names[] = {"fd.img", "rt.img", "rt.qcow2", "bypass.img", "none.qcow2", "wb.qcow2"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(tpath(names[i]));
	rmdir(dir);
	return test_report();
}
