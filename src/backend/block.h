/* Disk image backends: one interface over raw files and qcow2 images, used
 * by virtio-blk and by `corral image`. Offsets and lengths are in bytes of the
 * virtual disk; callers keep requests inside blk_size(). Every function
 * returns 0 (or a byte count) or a negative errno. */
#ifndef CORRAL_BLOCK_H
#define CORRAL_BLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum blk_format { BLK_FMT_PROBE, BLK_FMT_RAW, BLK_FMT_QCOW2 };

struct blk;

struct blk_ops {
	/* Scatter/gather transfer of iov (total length n) at virtual offset off. */
	int (*readv)(struct blk *b, uint64_t off, const struct iovec *iov, int iovcnt);
	int (*writev)(struct blk *b, uint64_t off, const struct iovec *iov, int iovcnt);
	/* Everything written before is durable (fdatasync of every file). */
	int (*flush)(struct blk *b);
	/* The range reads as zeroes afterwards; discard may also free space. */
	int (*discard)(struct blk *b, uint64_t off, uint64_t len);
	int (*write_zeroes)(struct blk *b, uint64_t off, uint64_t len);
	void (*close)(struct blk *b);
};

struct blk {
	const struct blk_ops *ops;
	enum blk_format format;
	uint64_t size; /* virtual disk size in bytes */
	int readonly;
};

/* Opens path as a disk. format BLK_FMT_PROBE looks at the file's first bytes
 * (qcow2 magic, else raw). On error, returns -errno and writes one line for
 * the user into err, naming the file and what was wrong. */
int blk_open(struct blk **out, const char *path, enum blk_format format, int readonly, char *err, size_t errlen);
void blk_close(struct blk *b);
/* "raw", "qcow2": -1 for anything else. */
int blk_format_parse(const char *s, enum blk_format *out);
const char *blk_format_name(enum blk_format f);

/* Plain reads/writes of one buffer (wrappers over readv/writev). */
int blk_pread(struct blk *b, uint64_t off, void *buf, size_t n);
int blk_pwrite(struct blk *b, uint64_t off, const void *buf, size_t n);

/* Backends (blk_open picks one). */
int raw_open(struct blk **out, int fd, int readonly, char *err, size_t errlen, const char *path);

#endif
