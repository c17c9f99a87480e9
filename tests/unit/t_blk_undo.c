/* The undo log over a disk (backend/undo.c): writes, discards and writes
 * of zeroes taken back to a mark restore the bytes they replaced, newest
 * first (overlapping writes included); nothing is logged before it is
 * armed; past its limit it says going back is over; a write that fails
 * leaves no record. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/block.h"
#include "testhelp.h"

#define DISK (1u << 20)

static char path[] = "/tmp/t_blk_undo.XXXXXX";

/* The disk's whole contents equal model. */
static int same(struct blk *b, const uint8_t *model)
{
	static uint8_t buf[DISK];
	return blk_pread(b, 0, buf, DISK) == 0 && !memcmp(buf, model, DISK);
}

static struct blk *open_disk(uint8_t *model, uint64_t max)
{
	for (unsigned k = 0; k < DISK; k++)
		model[k] = (uint8_t)(k * 7 + 3);
	int fd = open(path, O_RDWR | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || pwrite(fd, model, DISK, 0) != DISK) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	close(fd);
	struct blk *b;
	char err[256];
	if (blk_open(&b, path, BLK_FMT_RAW, 0, err, sizeof(err)) < 0)
		return NULL;
	if (blk_undo_wrap(&b, max) < 0) {
		blk_close(b);
		return NULL;
	}
	return b;
}

static void test_back_to_marks(void)
{
	static uint8_t model[DISK], at_mark[DISK];
	struct blk *b = open_disk(model, 1u << 30);
	CHECK(b);
	if (!b)
		return;
	/* before it is armed nothing is kept: going back is not possible */
	uint8_t x[4096];
	memset(x, 0xaa, sizeof(x));
	CHECK(blk_pwrite(b, 4096, x, sizeof(x)) == 0);
	memset(model + 4096, 0xaa, sizeof(x));
	CHECK(!blk_undo_ok(b));
	CHECK(blk_undo_to(b, 0) == -EINVAL);
	blk_undo_arm(b);
	CHECK(blk_undo_ok(b));
	CHECK_EQ_U64(blk_undo_mark(b), 0);
	/* a scattered write, then overlapping ones, a discard and zeroes */
	uint8_t p[3000], q[5000];
	memset(p, 0x11, sizeof(p));
	memset(q, 0x22, sizeof(q));
	struct iovec iov[2] = {{p, sizeof(p)}, {q, sizeof(q)}};
	CHECK(b->ops->writev(b, 100, iov, 2) == 0);
	memcpy(at_mark, model, DISK);
	memcpy(at_mark + 100, p, sizeof(p));
	memcpy(at_mark + 100 + sizeof(p), q, sizeof(q));
	uint64_t mark = blk_undo_mark(b);
	CHECK_EQ_U64(mark, 1);
	CHECK(same(b, at_mark));
	memset(x, 0x33, sizeof(x));
	CHECK(blk_pwrite(b, 2000, x, sizeof(x)) == 0);
	memset(x, 0x44, sizeof(x));
	CHECK(blk_pwrite(b, 3000, x, sizeof(x)) == 0);
	CHECK(b->ops->write_zeroes(b, 65536, 8192) == 0);
	CHECK(b->ops->discard(b, 131072, 4096) == 0);
	CHECK_EQ_U64(blk_undo_mark(b), 5);
	/* back to the mark: the disk as it was then, and on from there */
	CHECK(blk_undo_to(b, mark) == 0);
	CHECK_EQ_U64(blk_undo_mark(b), mark);
	CHECK(same(b, at_mark));
	CHECK(blk_undo_to(b, 3) == -EINVAL); /* a mark ahead of the log */
	CHECK(blk_pwrite(b, 9000, x, 10) == 0);
	/* back to the start: the armed disk's contents */
	CHECK(blk_undo_to(b, 0) == 0);
	CHECK(same(b, model));
	blk_close(b);
}

static void test_limit(void)
{
	static uint8_t model[DISK];
	struct blk *b = open_disk(model, 8192);
	CHECK(b);
	if (!b)
		return;
	blk_undo_arm(b);
	uint8_t x[4096];
	memset(x, 0x55, sizeof(x));
	CHECK(blk_pwrite(b, 0, x, sizeof(x)) == 0);
	CHECK(blk_pwrite(b, 4096, x, sizeof(x)) == 0);
	CHECK(blk_undo_ok(b));
	/* one byte past the limit: the write is done, going back is over */
	CHECK(blk_pwrite(b, 8192, x, 1) == 0);
	CHECK(!blk_undo_ok(b));
	CHECK(blk_undo_to(b, 0) == -EINVAL);
	uint8_t got[1];
	CHECK(blk_pread(b, 8192, got, 1) == 0 && got[0] == 0x55);
	blk_close(b);
}

static void test_failed_write(void)
{
	static uint8_t model[DISK];
	struct blk *b = open_disk(model, 1u << 30);
	CHECK(b);
	if (!b)
		return;
	blk_undo_arm(b);
	uint8_t x[512] = {1};
	/* past the disk's end: refused by the backend, nothing logged */
	CHECK(blk_pwrite(b, DISK - 256, x, sizeof(x)) < 0);
	CHECK_EQ_U64(blk_undo_mark(b), 0);
	CHECK(blk_undo_ok(b));
	blk_close(b);
}

int main(void)
{
	int fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	close(fd);
	RUN(test_back_to_marks);
	RUN(test_limit);
	RUN(test_failed_write);
	unlink(path);
	return test_report();
}
