/* Disk image backends: one interface over raw files and qcow2 images, used
 * by virtio-blk and by `corral image`. Offsets and lengths are in bytes of the
 * virtual disk; callers keep requests inside blk_size(). Every function
 * returns 0 (or a byte count) or a negative errno. */
#ifndef CORRAL_BLOCK_H
#define CORRAL_BLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

enum blk_format { BLK_FMT_PROBE, BLK_FMT_RAW, BLK_FMT_QCOW2 };

/* Use of the host's page cache, by QEMU's names. WRITEBACK: every transfer
 * goes through it. NONE: guest data bypasses it (O_DIRECT) whenever a
 * request meets the file's direct-I/O alignment, so a large guest write is
 * not throttled by the host's dirty-page balancing; metadata and unaligned
 * requests stay buffered (Linux keeps the two views coherent). Either way a
 * flush is an fdatasync, so the guest's flush means durable. */
enum blk_cache { BLK_CACHE_WRITEBACK, BLK_CACHE_NONE };

/* Every backend takes up to this many iovecs in one readv/writev (a host
 * preadv's IOV_MAX), so a guest request needs one call. */
#define BLK_MAX_IOV 1024

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
	/* readv and writev may run on several threads at once (with each
	 * other, not with the other operations), so virtio-blk may run a
	 * guest's requests in parallel. */
	int concurrent_xfer;
};

/* The image file opened a second time with O_DIRECT (cache=none), and the
 * alignment a transfer needs to use it. Zeroed (on = 0) in a backend opened
 * without blk_open_cache, such as a backing file. */
struct blk_direct {
	int on;
	int fd;
	uint32_t mem_align; /* of every iovec base */
	uint32_t off_align; /* of the file offset and every iovec length */
};

struct blk {
	const struct blk_ops *ops;
	enum blk_format format;
	uint64_t size; /* virtual disk size in bytes */
	int readonly;
	struct blk_direct direct;
	int lock_fd; /* blk_open: the image file whose locks it holds; -1 (or 0 if unset): none */
	int lock_held;
	/* blk_dirty_start: a bit per BLK_DIRTY_CHUNK written since it was
	 * last collected; NULL: not tracking. */
	uint64_t *dirty;
	uint64_t dirty_chunks;
};

/* Opens path as a disk. format BLK_FMT_PROBE looks at the file's first bytes
 * (qcow2 magic, else raw). On error, returns -errno and writes one line for
 * the user into err, naming the file and what was wrong. */
int blk_open(struct blk **out, const char *path, enum blk_format format, int readonly, char *err, size_t errlen);
/* blk_open with a cache mode (blk_open is BLK_CACHE_WRITEBACK). NONE fails
 * with -EINVAL and a message when the file system refuses O_DIRECT: as
 * QEMU, no silent fallback to the page cache. Backing files of a qcow2
 * image stay buffered (they are read-only and often shared by clones). */
int blk_open_cache(struct blk **out, const char *path, enum blk_format format, int readonly, enum blk_cache cache,
		   char *err, size_t errlen);
void blk_close(struct blk *b);
/* Takes QEMU-compatible image locks on fd (readers exclude writers, writers
 * exclude everyone): -EBUSY with a message when another program holds a
 * conflicting one. blk_open does this; backends opening other files too. */
int blk_lock(int fd, int readonly, const char *path, char *err, size_t errlen);
/* Live migration's switch (shared storage): drop the image locks of an
 * image blk_open opened, so another process may open it, and take them
 * again (-EBUSY with a message if someone else holds them now). */
void blk_lock_release(struct blk *b);
int blk_lock_take(struct blk *b, const char *path, char *err, size_t errlen);
/* Opens an image file without ever blocking (opening a FIFO waits for a
 * writer forever): flags as open(2)'s (O_RDONLY or O_RDWR, maybe O_CREAT,
 * which creates with mode 0644), O_CLOEXEC added. Only a regular file is
 * accepted, or a block device too if blkdev (a top-level image, not a
 * backing file). Returns the fd, in blocking mode, or -errno; for a file of
 * another type -EINVAL with *kind naming it ("a FIFO", ...), else *kind is
 * NULL. blk_open and the backends open every image file with it. */
int blk_open_file(const char *path, int flags, int blkdev, const char **kind);
/* "raw", "qcow2": -1 for anything else. */
int blk_format_parse(const char *s, enum blk_format *out);
const char *blk_format_name(enum blk_format f);
/* "none", "writeback": -1 for anything else. */
int blk_cache_parse(const char *s, enum blk_cache *out);

/* Dirty block tracking (live migration's --copy-disks, as QEMU's dirty
 * bitmaps): once started, every write, discard or write of zeroes the
 * device makes through blk_dirty_mark sets the bits of the chunks it
 * touched. A mark comes after the data is in the image, so a reader that
 * collects (and clears) the bits before it reads a chunk sees every later
 * write marked again. Start and stop while no request runs (the VM
 * paused); mark and collect may run at once. */
#define BLK_DIRTY_CHUNK (64u << 10)
int blk_dirty_start(struct blk *b); /* 0 or -ENOMEM */
void blk_dirty_stop(struct blk *b);
void blk_dirty_mark(struct blk *b, uint64_t off, uint64_t len);
/* ORs the dirty chunks into out (dirty_chunks bits) and clears them;
 * returns how many were set. */
uint64_t blk_dirty_collect(struct blk *b, uint64_t *out);

/* An undo log (backend/undo.c), for a replay's debugger going back in
 * time: blk_undo_wrap puts *b behind a backend that, once armed, keeps
 * the bytes each write, discard or write of zeroes replaces (at most max
 * bytes in all; past that going back is no longer possible, ok says 0);
 * blk_undo_to puts them back, newest first, down to a mark taken earlier
 * (the number of writes logged). Closing it closes *b. */
int blk_undo_wrap(struct blk **b, uint64_t max);
void blk_undo_arm(struct blk *b);
int blk_undo_ok(struct blk *b);
uint64_t blk_undo_mark(struct blk *b);
int blk_undo_to(struct blk *b, uint64_t mark);

/* Plain reads/writes of one buffer (wrappers over readv/writev). */
int blk_pread(struct blk *b, uint64_t off, void *buf, size_t n);
int blk_pwrite(struct blk *b, uint64_t off, const void *buf, size_t n);

/* What `corral image info` shows. backing_blk is the opened backing file
 * (NULL when there is none or it was not opened). */
struct blk_info {
	enum blk_format format;
	uint64_t size;
	uint64_t cluster_size; /* qcow2 only, like the rest */
	unsigned version;
	unsigned refcount_bits;
	char backing[1024];
	char backing_fmt[32];
	int corrupt, dirty, lazy_refcounts;
	uint32_t nb_snapshots;
	struct blk *backing_blk;
};
void blk_get_info(struct blk *b, struct blk_info *info);
/* The last I/O-time error a backend described (a corrupt table entry, ...),
 * as one line naming the file; NULL if none. */
const char *blk_last_error(struct blk *b);

/* Helpers shared by the backends and virtio-blk. */
/* The iovecs covering bytes [skip, skip + len) of iov[0..cnt) into out: their
 * count, or -EINVAL if that needs more than max or iov is shorter. */
int blk_iov_slice(const struct iovec *iov, int cnt, uint64_t skip, uint64_t len, struct iovec *out, int max);
/* The whole transfer of iov[0..cnt) (cnt <= BLK_MAX_IOV) at file offset off,
 * retried across EINTR and short transfers; a read past the end of the
 * file reads zeroes. 0 or -errno. */
int blk_file_xfer(int fd, uint64_t off, const struct iovec *iov, int cnt, int write);
/* blk_file_xfer of guest data for b: on b's O_DIRECT descriptor when b has
 * one and off, every iovec base and every iovec length are aligned for it,
 * else on fd (the buffered descriptor of the same file). */
int blk_data_xfer(const struct blk *b, int fd, uint64_t off, const struct iovec *iov, int cnt, int write);

/* Backends (blk_open picks one). */
int raw_open(struct blk **out, int fd, int readonly, char *err, size_t errlen, const char *path);
int qcow2_open(struct blk **out, int fd, int readonly, char *err, size_t errlen, const char *path);
/* QCOW2_OPEN_NO_BACKING: leave backing files closed (unallocated clusters
 * read as zeroes); for fuzzing, where the file names are hostile. */
#define QCOW2_OPEN_NO_BACKING 1u
int qcow2_open_flags(struct blk **out, int fd, int readonly, char *err, size_t errlen, const char *path,
		     unsigned flags);
void qcow2_get_info(struct blk *b, struct blk_info *info);
const char *qcow2_last_error(struct blk *b);

/* A new, empty qcow2 v3 image (16-bit refcounts) of size bytes, clusters of
 * 1 << cluster_bits bytes, optionally over a backing file (name stored as
 * given: relative names are relative to the image's folder). */
int qcow2_create(const char *path, uint64_t size, unsigned cluster_bits, const char *backing, const char *backing_fmt,
		 char *err, size_t errlen);

/* Consistency check of an open qcow2 image: references (header, tables, data)
 * against stored refcounts. Details go to log (may be NULL). With
 * QCOW2_CHECK_REPAIR_LEAKS on an image open for writing, and no errors
 * found, leaked clusters get the refcount their references give them (as
 * qemu-img check -r leaks). Returns 0 when the check ran (its findings are
 * in res) or a negative errno. */
struct qcow2_check {
	uint64_t errors, leaks, leaks_fixed;
	uint64_t allocated_clusters, compressed_clusters, total_clusters;
	uint64_t image_end;
};
#define QCOW2_CHECK_REPAIR_LEAKS 1u
int qcow2_check(struct blk *b, struct qcow2_check *res, FILE *log, unsigned flags);
/* Whether the cluster holding virtual offset off is the image's own (data,
 * zeroes or compressed data written into it) rather than its backing
 * file's: 1 or 0, with *len the bytes from off to that cluster's end (or
 * the disk's); -EINVAL if b is not qcow2 or off is past the end, another
 * -errno on a corrupt table. `corral image commit` uses it. */
int qcow2_allocated(struct blk *b, uint64_t off, uint64_t *len);
/* Tests (fault injection, as QEMU's blkdebug): the process exits at the
 * image's nth metadata sync (0: never), leaving the file as a crash would.
 * 0, or -EINVAL if b is not a writable qcow2 image. */
int qcow2_crash_at_sync(struct blk *b, long n);

#endif
