/* Opening disk images: format probing and the plain-buffer helpers shared by
 * every backend. */
#include "backend/block.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char qcow2_magic[4] = {'Q', 'F', 'I', 0xfb};

int blk_format_parse(const char *s, enum blk_format *out)
{
	if (!strcmp(s, "raw"))
		*out = BLK_FMT_RAW;
	else if (!strcmp(s, "qcow2"))
		*out = BLK_FMT_QCOW2;
	else
		return -1;
	return 0;
}

const char *blk_format_name(enum blk_format f)
{
	switch (f) {
	case BLK_FMT_RAW: return "raw";
	case BLK_FMT_QCOW2: return "qcow2";
	default: return "probe";
	}
}

int blk_open(struct blk **out, const char *path, enum blk_format format, int readonly, char *err, size_t errlen)
{
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "disk '%s': %s", path, strerror(e));
		return -e;
	}
	if (format == BLK_FMT_PROBE) {
		char magic[4];
		ssize_t n = pread(fd, magic, sizeof(magic), 0);
		format = (n == (ssize_t)sizeof(magic) && !memcmp(magic, qcow2_magic, 4)) ? BLK_FMT_QCOW2 : BLK_FMT_RAW;
	}
	if (format == BLK_FMT_QCOW2)
		return qcow2_open(out, fd, readonly, err, errlen, path);
	return raw_open(out, fd, readonly, err, errlen, path);
}

void blk_get_info(struct blk *b, struct blk_info *info)
{
	memset(info, 0, sizeof(*info));
	info->format = b->format;
	info->size = b->size;
	if (b->format == BLK_FMT_QCOW2)
		qcow2_get_info(b, info);
}

const char *blk_last_error(struct blk *b)
{
	return b->format == BLK_FMT_QCOW2 ? qcow2_last_error(b) : NULL;
}

void blk_close(struct blk *b)
{
	if (b)
		b->ops->close(b);
}

int blk_pread(struct blk *b, uint64_t off, void *buf, size_t n)
{
	struct iovec iov = {buf, n};
	return b->ops->readv(b, off, &iov, 1);
}

int blk_pwrite(struct blk *b, uint64_t off, const void *buf, size_t n)
{
	struct iovec iov = {(void *)buf, n};
	return b->ops->writev(b, off, &iov, 1);
}
