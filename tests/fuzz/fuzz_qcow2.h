/* The qcow2 fuzz entry shared by the libFuzzer target (fuzz_qcow2.c) and the
 * make-check replay of seeds and regressions (t_regress_qcow2.c): the input
 * is an image file. It is opened read-only (backing files left closed: their
 * names are hostile too), read at offsets derived from the input, checked;
 * then a copy is opened for writing, written, flushed, closed and checked
 * again. Any error is fine if it comes with a message; only a crash, a
 * sanitizer report or an error without a message is a finding. */
#ifndef CORRAL_TESTS_FUZZ_QCOW2_H
#define CORRAL_TESTS_FUZZ_QCOW2_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/block.h"

#define FQ_READS 12
#define FQ_WRITES 8
#define FQ_MAX_IO (128u << 10)
#define FQ_MAX_BIG_IO (2u << 20) /* now and then: enough clusters to grow the refcount table */

static struct {
	int in_fd, rw_fd;
	char in_path[64], rw_path[64];
	uint8_t buf[FQ_MAX_BIG_IO];
} fq = {-1, -1, "", "", {0}};

static uint64_t fq_mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static struct blk *fq_open(const char *path, int readonly)
{
	char err[512] = "";
	struct blk *b = NULL;
	int fd = open(path, readonly ? O_RDONLY : O_RDWR);
	if (fd < 0)
		abort();
	if (qcow2_open_flags(&b, fd, readonly, err, sizeof(err), path, QCOW2_OPEN_NO_BACKING) < 0) {
		if (!err[0] || strchr(err, '\n'))
			abort(); /* every error comes with one line for the user */
		return NULL;
	}
	return b;
}

/* An offset and length inside the disk: near the start, near the end, or
 * anywhere, so that small and huge virtual sizes both get coverage. */
static void fq_range(struct blk *b, uint64_t *s, uint64_t *off, uint64_t *len)
{
	uint64_t r = fq_mix(s), size = b->size;
	*len = 1 + fq_mix(s) % ((r & 0xf0) == 0xf0 ? FQ_MAX_BIG_IO : FQ_MAX_IO);
	if (*len > size)
		*len = size;
	uint64_t span = size - *len;
	switch (r & 3) {
	case 0: *off = span ? fq_mix(s) % (span < (4u << 20) ? span + 1 : (4u << 20)) : 0; break;
	case 1: *off = span - (span ? fq_mix(s) % (span < (4u << 20) ? span + 1 : (4u << 20)) : 0); break;
	default: *off = span ? fq_mix(s) % (span + 1) : 0; break;
	}
	if (r & 4)
		*off &= ~511ull;
}

static void fq_read_all(struct blk *b, uint64_t *s)
{
	for (int i = 0; i < FQ_READS && b->size; i++) {
		uint64_t off, len;
		fq_range(b, s, &off, &len);
		(void)blk_pread(b, off, fq.buf, len);
	}
	struct qcow2_check res;
	(void)qcow2_check(b, &res, NULL, b->readonly ? 0 : QCOW2_CHECK_REPAIR_LEAKS);
}

static int fuzz_qcow2_one(const uint8_t *data, size_t size)
{
	if (fq.in_fd < 0) {
		fq.in_fd = memfd_create("fuzz-qcow2", 0);
		fq.rw_fd = memfd_create("fuzz-qcow2-rw", 0);
		if (fq.in_fd < 0 || fq.rw_fd < 0)
			abort();
		snprintf(fq.in_path, sizeof(fq.in_path), "/proc/self/fd/%d", fq.in_fd);
		snprintf(fq.rw_path, sizeof(fq.rw_path), "/proc/self/fd/%d", fq.rw_fd);
	}
	if (ftruncate(fq.in_fd, 0) < 0 || pwrite(fq.in_fd, data, size, 0) != (ssize_t)size)
		abort();
	if (ftruncate(fq.rw_fd, 0) < 0 || pwrite(fq.rw_fd, data, size, 0) != (ssize_t)size)
		abort();
	uint64_t s = 0x51f15eed;
	for (size_t k = 0; k < size; k += 61)
		s = (s ^ data[k]) * 0x100000001b3ull;

	struct blk *b = fq_open(fq.in_path, 1);
	if (!b)
		return 0;
	fq_read_all(b, &s);
	blk_close(b);

	b = fq_open(fq.rw_path, 0);
	if (!b)
		return 0;
	for (int i = 0; i < FQ_WRITES && b->size; i++) {
		uint64_t off, len, r = fq_mix(&s);
		fq_range(b, &s, &off, &len);
		memset(fq.buf, (int)(r >> 8), len);
		int rc;
		switch (r % 5) {
		case 0: rc = b->ops->discard(b, off, len); break;
		case 1: rc = b->ops->write_zeroes(b, off, len); break;
		case 2: rc = b->ops->flush(b); break;
		default: rc = blk_pwrite(b, off, fq.buf, len); break;
		}
		if (rc < 0)
			break;
	}
	blk_close(b);
	b = fq_open(fq.rw_path, 1);
	if (b) {
		fq_read_all(b, &s);
		blk_close(b);
	}
	return 0;
}

#endif
