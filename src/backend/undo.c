/* An undo log over a writable disk (backend/block.h, blk_undo_*): a
 * replay's debugger goes back in time, and the disk must go back with the
 * guest. While armed, every write, discard or write of zeroes first reads
 * the bytes it is about to replace and keeps them; blk_undo_to writes
 * them back, newest first, down to a mark. Transfers run one at a time
 * (concurrent_xfer 0), so the log's order is the order of the writes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/block.h"

struct undo_rec {
	uint64_t off;
	uint64_t len;
	uint8_t *old; /* len bytes as they were before the write */
};

struct undo {
	struct blk b;
	struct blk *inner;
	int armed;
	int full; /* the log passed max: going back is no longer possible */
	uint64_t max, bytes;
	struct undo_rec *rec;
	uint64_t n, cap;
};

static int undo_save(struct undo *u, uint64_t off, uint64_t len)
{
	if (!u->armed || u->full || !len)
		return 0;
	if (len > u->max - u->bytes) {
		u->full = 1;
		return 0;
	}
	if (u->n == u->cap) {
		uint64_t cap = u->cap ? u->cap * 2 : 64;
		struct undo_rec *r = realloc(u->rec, cap * sizeof(*r));
		if (!r) {
			u->full = 1;
			return 0;
		}
		u->rec = r;
		u->cap = cap;
	}
	uint8_t *old = malloc(len);
	if (!old) {
		u->full = 1;
		return 0;
	}
	int r = blk_pread(u->inner, off, old, len);
	if (r < 0) {
		free(old);
		return r; /* the write would fail the same way: fail it now */
	}
	u->rec[u->n++] = (struct undo_rec){.off = off, .len = len, .old = old};
	u->bytes += len;
	return 0;
}

/* A write that failed leaves the disk as it was (or undefined, as on
 * hardware): its record goes, keeping the bytes count right. */
static void undo_unsave(struct undo *u, uint64_t before)
{
	while (u->n > before) {
		struct undo_rec *r = &u->rec[--u->n];
		u->bytes -= r->len;
		free(r->old);
	}
}

static int undo_readv(struct blk *b, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct undo *u = (struct undo *)b;
	return u->inner->ops->readv(u->inner, off, iov, iovcnt);
}

static int undo_writev(struct blk *b, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct undo *u = (struct undo *)b;
	uint64_t len = 0, before = u->n;
	for (int k = 0; k < iovcnt; k++)
		len += iov[k].iov_len;
	int r = undo_save(u, off, len);
	if (r < 0)
		return r;
	r = u->inner->ops->writev(u->inner, off, iov, iovcnt);
	if (r < 0)
		undo_unsave(u, before);
	return r;
}

static int undo_flush(struct blk *b)
{
	struct undo *u = (struct undo *)b;
	return u->inner->ops->flush(u->inner);
}

/* A discard or a write of zeroes (op, the inner backend's), logged. */
static int undo_range(struct blk *b, uint64_t off, uint64_t len, int (*op)(struct blk *, uint64_t, uint64_t))
{
	struct undo *u = (struct undo *)b;
	uint64_t before = u->n;
	int r = undo_save(u, off, len);
	if (r < 0)
		return r;
	r = op(u->inner, off, len);
	if (r < 0)
		undo_unsave(u, before);
	return r;
}

static int undo_discard(struct blk *b, uint64_t off, uint64_t len)
{
	return undo_range(b, off, len, ((struct undo *)b)->inner->ops->discard);
}

static int undo_write_zeroes(struct blk *b, uint64_t off, uint64_t len)
{
	return undo_range(b, off, len, ((struct undo *)b)->inner->ops->write_zeroes);
}

static void undo_close(struct blk *b)
{
	struct undo *u = (struct undo *)b;
	undo_unsave(u, 0);
	free(u->rec);
	blk_close(u->inner);
	free(u);
}

static const struct blk_ops undo_ops = {
	.readv = undo_readv,
	.writev = undo_writev,
	.flush = undo_flush,
	.discard = undo_discard,
	.write_zeroes = undo_write_zeroes,
	.close = undo_close,
	.concurrent_xfer = 0,
};

int blk_undo_wrap(struct blk **b, uint64_t max)
{
	struct undo *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	struct blk *in = *b;
	u->inner = in;
	u->max = max;
	u->b.ops = &undo_ops;
	u->b.format = in->format;
	u->b.size = in->size;
	u->b.readonly = in->readonly;
	u->b.lock_fd = -1; /* the inner backend holds the locks and its O_DIRECT file */
	*b = &u->b;
	return 0;
}

static struct undo *undo_of(struct blk *b)
{
	return b && b->ops == &undo_ops ? (struct undo *)b : NULL;
}

void blk_undo_arm(struct blk *b)
{
	struct undo *u = undo_of(b);
	if (u)
		u->armed = 1;
}

int blk_undo_ok(struct blk *b)
{
	struct undo *u = undo_of(b);
	return u && u->armed && !u->full;
}

uint64_t blk_undo_mark(struct blk *b)
{
	struct undo *u = undo_of(b);
	return u ? u->n : 0;
}

int blk_undo_to(struct blk *b, uint64_t mark)
{
	struct undo *u = undo_of(b);
	if (!u || !u->armed || u->full || mark > u->n)
		return -EINVAL;
	while (u->n > mark) {
		struct undo_rec *r = &u->rec[u->n - 1];
		int e = blk_pwrite(u->inner, r->off, r->old, r->len);
		if (e < 0)
			return e; /* the record stays: the disk is not back yet */
		u->bytes -= r->len;
		free(r->old);
		u->n--;
	}
	return 0;
}
