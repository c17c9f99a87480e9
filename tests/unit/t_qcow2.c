/* Disk backends against a flat in-memory model: random reads, writes,
 * discards and write-zeroes on raw and qcow2 images (with and without backing
 * files, several cluster sizes), reopened and verified, and every qcow2 image
 * checked for refcount errors and leaks afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/block.h"
#include "testhelp.h"

static char dir[256];

static const char *tpath(const char *name)
{
	static char buf[4][512];
	static int k;
	k = (k + 1) & 3;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static struct blk *open_or_fail(const char *path, enum blk_format f, int ro)
{
	struct blk *b = NULL;
	char err[512];
	int rc = blk_open(&b, path, f, ro, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "  open %s: %s\n", path, err);
		CHECK(rc == 0);
		return NULL;
	}
	return b;
}

/* A qcow2 check of path: no errors; no leaks unless allowed. */
static void check_image(const char *path, int leaks_ok)
{
	struct blk *b = open_or_fail(path, BLK_FMT_QCOW2, 1);
	if (!b)
		return;
	struct qcow2_check res;
	int rc = qcow2_check(b, &res, stderr, 0);
	CHECK_EQ_U64(rc, 0);
	CHECK_EQ_U64(res.errors, 0);
	if (!leaks_ok)
		CHECK_EQ_U64(res.leaks, 0);
	blk_close(b);
}

/* When qemu-img is installed (Debian: qemu-utils), it must agree: no errors
 * or leaks, and the same content as the model. */
static int have_qemu_img = -1;

static void qemu_verify(const char *path, const uint8_t *model, uint64_t size)
{
	if (have_qemu_img < 0)
		have_qemu_img = system("qemu-img --version >/dev/null 2>&1") == 0;
	if (!have_qemu_img)
		return;
	const char *m = tpath("model.raw");
	int fd = open(m, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, model, size) == (ssize_t)size);
	close(fd);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "qemu-img check -q '%s' >&2", path);
	int rc = system(cmd);
	if (rc)
		fprintf(stderr, "  qemu-img check %s: status %d\n", path, rc);
	CHECK_EQ_U64(rc, 0);
	snprintf(cmd, sizeof(cmd), "qemu-img compare -q -f raw '%s' '%s' >&2", m, path);
	rc = system(cmd);
	if (rc)
		fprintf(stderr, "  qemu-img compare %s: status %d\n", path, rc);
	CHECK_EQ_U64(rc, 0);
}

static int verify(struct blk *b, const uint8_t *model, uint64_t size)
{
	uint8_t *buf = malloc(size);
	int ok = blk_pread(b, 0, buf, size) == 0 && !memcmp(buf, model, size);
	if (!ok) {
		for (uint64_t i = 0; i < size; i++)
			if (buf[i] != model[i]) {
				fprintf(stderr, "  first difference at 0x%llx: 0x%02x, model 0x%02x\n",
					(unsigned long long)i, buf[i], model[i]);
				break;
			}
	}
	free(buf);
	return ok;
}

/* One random operation on b mirrored in model. Requests favour cluster
 * edges: partial clusters, whole clusters, spans of several. */
static void random_op(struct blk *b, uint8_t *model, uint64_t size, uint64_t cs)
{
	uint64_t off, len;
	switch (rnd() % 4) {
	case 0: off = rnd() % size; break;
	case 1: off = (rnd() % (size / cs)) * cs; break;
	case 2: off = (rnd() % (size / 512)) * 512; break;
	default: off = size - 1 - rnd() % (cs * 2 < size ? cs * 2 : size - 1); break;
	}
	switch (rnd() % 4) {
	case 0: len = 1 + rnd() % 700; break;
	case 1: len = cs; break;
	case 2: len = 1 + rnd() % (4 * cs); break;
	default: len = cs * (1 + rnd() % 5) - off % cs; break;
	}
	if (len > size - off)
		len = size - off;
	unsigned op = (unsigned)(rnd() % 10);
	int rc;
	if (op < 5) { /* write, split over up to 4 iovecs */
		uint8_t *data = malloc(len);
		fill_random(data, len);
		struct iovec iov[4];
		int n = 0;
		uint64_t done = 0;
		while (done < len) {
			uint64_t l = n == 3 ? len - done : 1 + rnd() % (len - done);
			iov[n].iov_base = data + done;
			iov[n].iov_len = l;
			done += l;
			n++;
		}
		rc = b->ops->writev(b, off, iov, n);
		CHECK_EQ_U64(rc, 0);
		memcpy(model + off, data, len);
		free(data);
	} else if (op < 7) {
		rc = b->ops->discard(b, off, len);
		CHECK_EQ_U64(rc, 0);
		memset(model + off, 0, len);
	} else if (op < 8) {
		rc = b->ops->write_zeroes(b, off, len);
		CHECK_EQ_U64(rc, 0);
		memset(model + off, 0, len);
	} else if (op < 9) {
		uint8_t *buf = malloc(len);
		rc = blk_pread(b, off, buf, len);
		CHECK_EQ_U64(rc, 0);
		CHECK(!memcmp(buf, model + off, len));
		free(buf);
	} else {
		CHECK_EQ_U64(b->ops->flush(b), 0);
	}
}

/* Random workload on path (already created, content = model), reopening
 * a few times; checks content after each reopen and the refcounts. */
static void workload(const char *path, enum blk_format fmt, uint8_t *model, uint64_t size, uint64_t cs, int ops)
{
	struct blk *b = open_or_fail(path, fmt, 0);
	if (!b)
		return;
	CHECK_EQ_U64(b->size, size);
	for (int i = 0; i < ops; i++) {
		random_op(b, model, size, cs);
		if (i % (ops / 4) == ops / 4 - 1) {
			blk_close(b);
			if (fmt == BLK_FMT_QCOW2)
				check_image(path, 0);
			b = open_or_fail(path, fmt, 0);
			if (!b)
				return;
			CHECK(verify(b, model, size));
		}
	}
	CHECK(verify(b, model, size));
	blk_close(b);
	if (fmt == BLK_FMT_QCOW2) {
		check_image(path, 0);
		qemu_verify(path, model, size);
	}
	b = open_or_fail(path, fmt, 1);
	if (b) {
		CHECK(verify(b, model, size));
		blk_close(b);
	}
}

static void make_raw(const char *path, uint8_t *content, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, content, size) == (ssize_t)size);
	close(fd);
}

static void make_qcow2(const char *path, uint64_t size, unsigned bits, const char *backing, const char *bfmt)
{
	char err[512];
	int rc = qcow2_create(path, size, bits, backing, bfmt, err, sizeof(err));
	if (rc)
		fprintf(stderr, "  %s\n", err);
	CHECK_EQ_U64(rc, 0);
}

static void test_raw(void)
{
	uint64_t size = 1 << 20;
	uint8_t *model = calloc(1, size);
	make_raw(tpath("r.raw"), model, size);
	workload(tpath("r.raw"), BLK_FMT_RAW, model, size, 4096, 400);
	free(model);
}

static void qcow2_plain(unsigned bits, uint64_t size, int ops)
{
	uint8_t *model = calloc(1, size);
	make_qcow2(tpath("p.qcow2"), size, bits, NULL, NULL);
	check_image(tpath("p.qcow2"), 0);
	workload(tpath("p.qcow2"), BLK_FMT_QCOW2, model, size, 1ull << bits, ops);
	free(model);
}

static void test_qcow2_64k(void)
{
	qcow2_plain(16, 3 << 20, 600);
}

static void test_qcow2_4k(void)
{
	qcow2_plain(12, (1 << 20) + 1536, 600);
}

static void test_qcow2_512(void)
{
	qcow2_plain(9, 256 << 10, 800);
}

static void test_qcow2_2m(void)
{
	qcow2_plain(21, 5 << 20, 100);
}

/* Over a raw backing file: unallocated clusters show the base; the base is
 * never written. */
static void test_qcow2_backing_raw(void)
{
	uint64_t size = 2 << 20, bsize = size - 70000; /* a base shorter than the disk */
	uint8_t *base = malloc(bsize), *model = calloc(1, size);
	fill_random(base, bsize);
	memcpy(model, base, bsize);
	make_raw(tpath("base.raw"), base, bsize);
	make_qcow2(tpath("ov.qcow2"), size, 12, "base.raw", "raw");
	workload(tpath("ov.qcow2"), BLK_FMT_QCOW2, model, size, 4096, 600);
	struct blk *b = open_or_fail(tpath("base.raw"), BLK_FMT_RAW, 1);
	if (b) {
		CHECK(verify(b, base, bsize));
		blk_close(b);
	}
	free(base);
	free(model);
}

/* A chain: qcow2 over qcow2 over raw, with different cluster sizes. */
static void test_qcow2_backing_chain(void)
{
	uint64_t size = 1 << 20;
	uint8_t *base = malloc(size), *model = malloc(size);
	fill_random(base, size);
	memcpy(model, base, size);
	make_raw(tpath("cbase.raw"), base, size);
	make_qcow2(tpath("mid.qcow2"), size, 16, "cbase.raw", "raw");
	workload(tpath("mid.qcow2"), BLK_FMT_QCOW2, model, size, 65536, 200);
	uint8_t *mid = malloc(size);
	memcpy(mid, model, size);
	make_qcow2(tpath("top.qcow2"), size, 9, tpath("mid.qcow2"), NULL); /* absolute name, probed format */
	workload(tpath("top.qcow2"), BLK_FMT_PROBE, model, size, 512, 400);
	struct blk *b = open_or_fail(tpath("mid.qcow2"), BLK_FMT_PROBE, 1);
	if (b) {
		CHECK(verify(b, mid, size));
		blk_close(b);
	}
	free(base);
	free(mid);
	free(model);
}

/* Version 2 (no zero flag): made by rewriting a fresh v3 header. */
static void test_qcow2_v2(void)
{
	uint64_t size = 1 << 20;
	uint8_t *model = calloc(1, size);
	make_qcow2(tpath("v2.qcow2"), size, 12, NULL, NULL);
	int fd = open(tpath("v2.qcow2"), O_RDWR);
	uint8_t hdr[112];
	CHECK(pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
	hdr[7] = 2;
	memset(hdr + 72, 0, 40);
	CHECK(pwrite(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
	close(fd);
	workload(tpath("v2.qcow2"), BLK_FMT_QCOW2, model, size, 4096, 400);
	free(model);
}

/* Enough 512-byte clusters that the refcount table must grow (one table
 * cluster covers 64 blocks of 256 clusters). */
static void test_qcow2_refcount_growth(void)
{
	uint64_t size = 24 << 20;
	uint8_t *model = malloc(size);
	fill_random(model, size);
	make_qcow2(tpath("grow.qcow2"), size, 9, NULL, NULL);
	struct blk *b = open_or_fail(tpath("grow.qcow2"), BLK_FMT_QCOW2, 0);
	if (!b)
		goto out;
	for (uint64_t off = 0; off < size; off += 1 << 20)
		CHECK_EQ_U64(blk_pwrite(b, off, model + off, 1 << 20), 0);
	CHECK(verify(b, model, size));
	/* Discard half, rewrite some: freed clusters get reused. */
	for (uint64_t off = 0; off < size; off += 2 << 20) {
		CHECK_EQ_U64(b->ops->discard(b, off, 1 << 20), 0);
		memset(model + off, 0, 1 << 20);
	}
	CHECK_EQ_U64(b->ops->flush(b), 0);
	for (uint64_t off = 0; off < size; off += 4 << 20) {
		fill_random(model + off, 1 << 19);
		CHECK_EQ_U64(blk_pwrite(b, off, model + off, 1 << 19), 0);
	}
	blk_close(b);
	check_image(tpath("grow.qcow2"), 0);
	qemu_verify(tpath("grow.qcow2"), model, size);
	b = open_or_fail(tpath("grow.qcow2"), BLK_FMT_QCOW2, 1);
	if (b) {
		CHECK(verify(b, model, size));
		blk_close(b);
	}
out:
	free(model);
}

/* A process that dies without closing, after unflushed writes spread over
 * many L2 tables (512-byte clusters: the caches evict, so part of the
 * metadata reaches the file): what was flushed is there, the image has no
 * refcount errors (leaks are allowed, and repaired at the end). */
static uint64_t crash_leaks;

static void test_qcow2_crash(void)
{
	uint64_t size = 8 << 20, cs = 512, nc = size / cs;
	uint8_t *model = calloc(1, size), *touched = calloc(1, nc), *flushed = malloc(size);
	make_qcow2(tpath("crash.qcow2"), size, 9, NULL, NULL);
	for (int round = 0; round < 4; round++) {
		int pipefd[2];
		CHECK(pipe(pipefd) == 0);
		pid_t pid = fork();
		if (pid == 0) {
			close(pipefd[0]);
			struct blk *b = open_or_fail(tpath("crash.qcow2"), BLK_FMT_QCOW2, 0);
			if (!b)
				_exit(1);
			test_rng += (uint64_t)round * 7919;
			for (int i = 0; i < 300; i++)
				random_op(b, model, size, 4096);
			blk_close(b);
			/* Unflushed writes, then the crash; the parent learns
			 * the flushed content and which clusters will be
			 * touched first. Rounds 2 and 3 die at the 1st and 2nd
			 * sync (an eviction or the flush: between metadata
			 * stages); rounds 0 and 1 just stop. */
			uint64_t offs[400];
			memset(touched, 0, nc);
			for (int i = 0; i < 400; i++) {
				offs[i] = (rnd() % (nc - 20)) * cs + rnd() % cs;
				for (uint64_t c = offs[i] / cs; c <= (offs[i] + 8191) / cs; c++)
					touched[c] = 1;
			}
			if (write(pipefd[1], model, size) != (ssize_t)size ||
			    write(pipefd[1], touched, nc) != (ssize_t)nc)
				_exit(1);
			b = open_or_fail(tpath("crash.qcow2"), BLK_FMT_QCOW2, 0);
			if (!b)
				_exit(1);
			if (round >= 2 && qcow2_crash_at_sync(b, round - 1) < 0)
				_exit(1);
			uint8_t junk[8192];
			for (int i = 0; i < 400; i++) {
				fill_random(junk, sizeof(junk));
				(void)blk_pwrite(b, offs[i], junk, sizeof(junk));
			}
			if (round >= 2)
				(void)b->ops->flush(b);
			_exit(test_cur_failed ? 1 : 2); /* not reached in rounds 2 and 3 */
		}
		close(pipefd[1]);
		FILE *f = fdopen(pipefd[0], "rb");
		CHECK(fread(flushed, 1, size, f) == size && fread(touched, 1, nc, f) == nc);
		fclose(f);
		int st;
		waitpid(pid, &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == (round >= 2 ? 86 : 2));

		struct blk *b = open_or_fail(tpath("crash.qcow2"), BLK_FMT_QCOW2, 1);
		struct qcow2_check res;
		if (!b)
			break;
		CHECK_EQ_U64(qcow2_check(b, &res, stderr, 0), 0);
		CHECK_EQ_U64(res.errors, 0);
		crash_leaks += res.leaks;
		CHECK_EQ_U64(blk_pread(b, 0, model, size), 0);
		blk_close(b);
		if (have_qemu_img) {
			/* qemu-img agrees: leaks at most (status 0 or 3). */
			char cmd[1024];
			snprintf(cmd, sizeof(cmd), "qemu-img check -q '%s' >/dev/null 2>&1", tpath("crash.qcow2"));
			int rc = system(cmd);
			CHECK(WIFEXITED(rc) && (WEXITSTATUS(rc) == 0 || WEXITSTATUS(rc) == 3));
		}
		/* Every cluster no unflushed write touched is as flushed. */
		unsigned bad = 0;
		for (uint64_t c = 0; c < nc; c++)
			if (!touched[c] && memcmp(model + c * cs, flushed + c * cs, cs))
				bad++;
		CHECK_EQ_U64(bad, 0);
	}
	/* Repair the leaks: afterwards there are none. */
	struct blk *b = open_or_fail(tpath("crash.qcow2"), BLK_FMT_QCOW2, 0);
	if (b) {
		struct qcow2_check res;
		CHECK_EQ_U64(qcow2_check(b, &res, NULL, QCOW2_CHECK_REPAIR_LEAKS), 0);
		CHECK_EQ_U64(res.errors, 0);
		CHECK_EQ_U64(res.leaks_fixed, res.leaks);
		blk_close(b);
	}
	check_image(tpath("crash.qcow2"), 0);
	fprintf(stderr, "  test_qcow2_crash: %llu leaked clusters after 4 crashes, repaired\n",
		(unsigned long long)crash_leaks);
	CHECK(crash_leaks > 0); /* the crashes did land between metadata stages */
	free(model);
	free(touched);
	free(flushed);
}

static void expect_open_error(const char *path, const char *needle)
{
	struct blk *b = NULL;
	char err[512] = "";
	int rc = blk_open(&b, path, BLK_FMT_PROBE, 1, err, sizeof(err));
	CHECK(rc < 0);
	if (rc >= 0) {
		blk_close(b);
		return;
	}
	if (!strstr(err, needle))
		fprintf(stderr, "  error '%s' lacks '%s'\n", err, needle);
	CHECK(strstr(err, needle) != NULL);
	CHECK(strchr(err, '\n') == NULL);
}

static void patch(const char *path, uint64_t off, const void *bytes, size_t n)
{
	int fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, bytes, n, (off_t)off) == (ssize_t)n);
	close(fd);
}

static void test_qcow2_hostile(void)
{
	const char *p = tpath("h.qcow2");
	uint8_t be8[8], be4[4];
	/* L1 offset past the end */
	make_qcow2(p, 1 << 20, 16, NULL, NULL);
	memcpy(be8, "\0\0\0\0\x10\0\0\0", 8);
	patch(p, 40, be8, 8);
	expect_open_error(p, "past the end of the file");
	/* huge size */
	make_qcow2(p, 1 << 20, 16, NULL, NULL);
	memcpy(be8, "\x7f\xff\xff\xff\xff\xff\xff\xff", 8);
	patch(p, 24, be8, 8);
	expect_open_error(p, "too large");
	/* unknown incompatible feature */
	make_qcow2(p, 1 << 20, 16, NULL, NULL);
	memcpy(be8, "\0\0\0\0\0\0\0\x80", 8);
	patch(p, 72, be8, 8);
	expect_open_error(p, "unknown incompatible feature bit 7");
	/* an L2 table that is the L1 table (a loop) */
	make_qcow2(p, 1 << 20, 16, NULL, NULL);
	memcpy(be8, "\x80\0\0\0\0\x03\0\0", 8); /* L1 is at 0x30000 */
	patch(p, 0x30000, be8, 8);
	expect_open_error(p, "loop");
	/* cluster_bits out of range */
	make_qcow2(p, 1 << 20, 16, NULL, NULL);
	memcpy(be4, "\0\0\0\x1f", 4);
	patch(p, 20, be4, 4);
	expect_open_error(p, "cluster_bits");
	/* backing chain loop: a -> b -> a */
	make_qcow2(tpath("la.qcow2"), 1 << 20, 16, "lb.qcow2", "qcow2");
	make_qcow2(tpath("lb.qcow2"), 1 << 20, 16, "la.qcow2", "qcow2");
	expect_open_error(tpath("la.qcow2"), "loops");
	/* missing backing file */
	make_qcow2(p, 1 << 20, 16, "nonexistent.raw", "raw");
	expect_open_error(p, "nonexistent.raw");
}

/* A qcow2 file opened as raw (explicit format) is just bytes. */
static void test_qcow2_as_raw(void)
{
	make_qcow2(tpath("asraw.qcow2"), 1 << 20, 16, NULL, NULL);
	struct blk *b = open_or_fail(tpath("asraw.qcow2"), BLK_FMT_RAW, 1);
	if (!b)
		return;
	CHECK_EQ_U64(b->format, BLK_FMT_RAW);
	uint8_t m[4];
	CHECK_EQ_U64(blk_pread(b, 0, m, 4), 0);
	CHECK(!memcmp(m, "QFI\xfb", 4));
	blk_close(b);
}

/* Images qemu-img made (compressed clusters, version 2, other refcount
 * widths, its own overlays) written by corral: qemu-img still agrees. */
static void test_qemu_made(void)
{
	static const char *const opts[] = {
		"-c -o cluster_size=4096",
		"-c -o cluster_size=65536,refcount_bits=64",
		"-o compat=0.10,cluster_size=4096",
		"-o refcount_bits=1,cluster_size=512",
		"-o refcount_bits=8,cluster_size=1024",
		"-c -o compat=0.10,cluster_size=2048",
	};
	if (have_qemu_img < 0)
		have_qemu_img = system("qemu-img --version >/dev/null 2>&1") == 0;
	if (!have_qemu_img) {
		fprintf(stderr, "  test_qemu_made: skipped (no qemu-img)\n");
		return;
	}
	uint64_t size = 2 << 20;
	uint8_t *model = calloc(1, size);
	for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
		/* Compressible content: runs of a few byte values. */
		for (uint64_t i = 0; i < size;) {
			uint64_t n = 1 + rnd() % 300;
			memset(model + i, rnd() % 4 == 0 ? 0 : (int)(rnd() % 5), n < size - i ? n : size - i);
			i += n;
		}
		make_raw(tpath("src.raw"), model, size);
		char cmd[1024];
		snprintf(cmd, sizeof(cmd), "qemu-img convert -O qcow2 %s '%s' '%s'", opts[k], tpath("src.raw"),
			 tpath("qm.qcow2"));
		CHECK_EQ_U64(system(cmd), 0);
		uint64_t cs = strstr(opts[k], "512") ? 512 : 4096;
		workload(tpath("qm.qcow2"), BLK_FMT_QCOW2, model, size, cs, 400);
	}
	/* An overlay qemu-img made over the last image, written by corral. */
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 -b qm.qcow2 -F qcow2 '%s'", tpath("qov.qcow2"));
	CHECK_EQ_U64(system(cmd), 0);
	workload(tpath("qov.qcow2"), BLK_FMT_QCOW2, model, size, 65536, 300);
	free(model);
}

/* Threads (virtio queues may be served by several) each working on their
 * own quarter of one image at once: the image stays consistent and each
 * quarter reads back as its thread wrote it. */
struct thread_arg {
	struct blk *b;
	uint8_t *model;
	uint64_t base, len;
	uint64_t seed;
	int failures;
};

static void *thread_work(void *p)
{
	struct thread_arg *a = p;
	uint64_t s = a->seed;
	uint8_t buf[10000];
	for (int i = 0; i < 500; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t n = 1 + (s >> 33) % sizeof(buf), off = a->base + (s >> 20) % (a->len - n);
		unsigned op = (unsigned)(s >> 60) % 4;
		if (op == 0) {
			memset(buf, (int)(s >> 8), n);
			if (blk_pwrite(a->b, off, buf, n))
				a->failures++;
			memcpy(a->model + off, buf, n);
		} else if (op == 1) {
			if (a->b->ops->discard(a->b, off, n))
				a->failures++;
			memset(a->model + off, 0, n);
		} else if (op == 2) {
			if (blk_pread(a->b, off, buf, n) || memcmp(buf, a->model + off, n))
				a->failures++;
		} else if (a->b->ops->flush(a->b)) {
			a->failures++;
		}
	}
	return NULL;
}

static void test_qcow2_threads(void)
{
	uint64_t size = 4 << 20;
	uint8_t *base = malloc(size), *model = malloc(size);
	fill_random(base, size);
	memcpy(model, base, size);
	make_raw(tpath("tbase.raw"), base, size);
	make_qcow2(tpath("threads.qcow2"), size, 12, "tbase.raw", "raw");
	struct blk *b = open_or_fail(tpath("threads.qcow2"), BLK_FMT_QCOW2, 0);
	if (b) {
		pthread_t t[4];
		struct thread_arg a[4];
		for (int i = 0; i < 4; i++) {
			a[i] = (struct thread_arg){b, model, (uint64_t)i * size / 4, size / 4, rnd(), 0};
			CHECK(pthread_create(&t[i], NULL, thread_work, &a[i]) == 0);
		}
		for (int i = 0; i < 4; i++) {
			pthread_join(t[i], NULL);
			CHECK_EQ_U64(a[i].failures, 0);
		}
		CHECK(verify(b, model, size));
		blk_close(b);
		check_image(tpath("threads.qcow2"), 0);
		qemu_verify(tpath("threads.qcow2"), model, size);
	}
	free(base);
	free(model);
}

/* QEMU-compatible locks: a writer keeps readers and writers out, in this
 * process and in qemu-img; readers share. */
static void test_lock(void)
{
	const char *p = tpath("lock.qcow2");
	make_qcow2(p, 1 << 20, 16, NULL, NULL);
	struct blk *w = open_or_fail(p, BLK_FMT_PROBE, 0), *r = NULL;
	char err[512] = "";
	CHECK(blk_open(&r, p, BLK_FMT_PROBE, 1, err, sizeof(err)) == -EBUSY);
	CHECK(strstr(err, "in use by another program") != NULL);
	if (have_qemu_img < 0)
		have_qemu_img = system("qemu-img --version >/dev/null 2>&1") == 0;
	if (have_qemu_img) {
		char cmd[1024];
		snprintf(cmd, sizeof(cmd), "qemu-img info '%s' >/dev/null 2>&1", p);
		CHECK(system(cmd) != 0);
	}
	blk_close(w);
	struct blk *r1 = open_or_fail(p, BLK_FMT_PROBE, 1), *r2 = open_or_fail(p, BLK_FMT_PROBE, 1);
	CHECK(blk_open(&w, p, BLK_FMT_PROBE, 0, err, sizeof(err)) == -EBUSY);
	blk_close(r1);
	blk_close(r2);
	w = open_or_fail(p, BLK_FMT_PROBE, 0);
	blk_close(w);
}

int main(void)
{
	test_rng = 0x12345678abcdefull; /* this test's own sequence */
	snprintf(dir, sizeof(dir), "%s/t_qcow2.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_raw);
	RUN(test_qcow2_64k);
	RUN(test_qcow2_4k);
	RUN(test_qcow2_512);
	RUN(test_qcow2_2m);
	RUN(test_qcow2_backing_raw);
	RUN(test_qcow2_backing_chain);
	RUN(test_qcow2_v2);
	RUN(test_qcow2_refcount_growth);
	RUN(test_qcow2_crash);
	RUN(test_qcow2_hostile);
	RUN(test_qcow2_as_raw);
	RUN(test_qcow2_threads);
	RUN(test_qemu_made);
	RUN(test_lock);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return test_report();
}
