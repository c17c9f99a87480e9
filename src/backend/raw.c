/* Raw disk images: the virtual disk is the file, byte for byte. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/block.h"

struct raw {
	struct blk b;
	int fd;
};

static int raw_xfer(struct blk *b, uint64_t off, const struct iovec *iov, int iovcnt, int write)
{
	struct raw *r = (struct raw *)b;
	uint64_t total = 0;
	if (iovcnt < 0 || iovcnt > BLK_MAX_IOV)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (off > b->size || total > b->size - off)
		return -EINVAL;
	if (write && b->readonly)
		return -EROFS;
	return blk_data_xfer(b, r->fd, off, iov, iovcnt, write);
}

static int raw_readv(struct blk *b, uint64_t off, const struct iovec *iov, int iovcnt)
{
	return raw_xfer(b, off, iov, iovcnt, 0);
}

static int raw_writev(struct blk *b, uint64_t off, const struct iovec *iov, int iovcnt)
{
	return raw_xfer(b, off, iov, iovcnt, 1);
}

static int raw_flush(struct blk *b)
{
	struct raw *r = (struct raw *)b;
	if (b->readonly)
		return 0;
	return fdatasync(r->fd) ? -errno : 0;
}

static int raw_zero_range(struct blk *b, uint64_t off, uint64_t len, int punch)
{
	struct raw *r = (struct raw *)b;
	static const char zeroes[65536];

	if (b->readonly)
		return -EROFS;
	if (off > b->size || len > b->size - off)
		return -EINVAL;
	int mode = punch ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	if (fallocate(r->fd, mode, (off_t)off, (off_t)len) == 0)
		return 0;
	if (punch && fallocate(r->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	/* The file system can do neither: write zeroes. */
	while (len > 0) {
		size_t n = len < sizeof(zeroes) ? (size_t)len : sizeof(zeroes);
		int rc = blk_pwrite(b, off, zeroes, n);
		if (rc < 0)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

static int raw_discard(struct blk *b, uint64_t off, uint64_t len)
{
	return raw_zero_range(b, off, len, 1);
}

static int raw_write_zeroes(struct blk *b, uint64_t off, uint64_t len)
{
	return raw_zero_range(b, off, len, 0);
}

static void raw_close(struct blk *b)
{
	struct raw *r = (struct raw *)b;
	close(r->fd);
	free(r);
}

static const struct blk_ops raw_ops = {
	.readv = raw_readv,
	.writev = raw_writev,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.close = raw_close,
	/* pread/pwrite on descriptors that never change (blk_data_xfer) */
	.concurrent_xfer = 1,
};

int raw_open(struct blk **out, int fd, int readonly, char *err, size_t errlen, const char *path)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "disk '%s': %s", path, strerror(e));
		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(err, errlen, "disk '%s': not a regular file or block device", path);
		close(fd);
		return -EINVAL;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(fd, 0, SEEK_END);
		size = end > 0 ? (uint64_t)end : 0;
	}
	struct raw *r = calloc(1, sizeof(*r));
	if (!r) {
		close(fd);
		return -ENOMEM;
	}
	r->b.ops = &raw_ops;
	r->b.format = BLK_FMT_RAW;
	r->b.size = size;
	r->b.readonly = readonly;
	r->fd = fd;
	*out = &r->b;
	return 0;
}
