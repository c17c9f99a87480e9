/* The disks of a snapshot, as QEMU's external snapshots: at a save each
 * writable disk's image is frozen into the snapshot directory (a hard link,
 * or a copy across file systems) and the running VM goes on writing to a
 * new qcow2 overlay on it; every restore writes to overlays of its own on
 * the frozen images. docs/architecture.md ("Disks in a snapshot"). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtio/virtio.h"
#include "vm/vm_internal.h"

#define SNAPDISK_CLUSTER_BITS 16 /* the overlays' clusters: 64 KiB, qemu-img's default */
#define SNAPDISK_MAX_RUNS 100000 /* DIR.restore-1 .. -N */
#define COPY_CHUNK (1u << 20)

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (p[k])
			return 0;
	return 1;
}

/* Bytes [off, end) of in to out, skipping zeroes (holes stay holes). */
static int copy_range(int in, int out, uint8_t *buf, off_t off, off_t end)
{
	while (off < end) {
		size_t n = end - off < COPY_CHUNK ? (size_t)(end - off) : COPY_CHUNK;
		ssize_t k = pread(in, buf, n, off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		if (!all_zero(buf, (size_t)k))
			for (ssize_t w = 0; w < k;) {
				ssize_t d = pwrite(out, buf + w, (size_t)(k - w), off + w);
				if (d < 0 && errno == EINTR)
					continue;
				if (d <= 0)
					return d < 0 ? -errno : -EIO;
				w += d;
			}
		off += k;
	}
	return 0;
}

/* A sparse copy of the file (or block device) from into a new file to:
 * a reflink where the file system shares blocks, else the data. */
static int copy_file(const char *from, const char *to)
{
	uint8_t *buf = NULL;
	int r, out = -1, in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		r = -errno;
		goto out;
	}
	if (ioctl(out, FICLONE, in) == 0) {
		r = 0;
		goto sync;
	}
	off_t size = lseek(in, 0, SEEK_END);
	buf = malloc(COPY_CHUNK);
	if (size < 0 || !buf) {
		r = size < 0 ? -errno : -ENOMEM;
		goto out;
	}
	r = 0;
	for (off_t off = 0; r == 0 && off < size;) {
		off_t data = lseek(in, off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* a hole to the end */
		if (data < 0) {
			r = copy_range(in, out, buf, off, size); /* no SEEK_DATA here */
			break;
		}
		off_t hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0 || hole > size)
			hole = size;
		r = copy_range(in, out, buf, data, hole);
		off = hole;
	}
	if (r == 0 && ftruncate(out, size) < 0)
		r = -errno;
sync:
	if (r == 0 && fsync(out) < 0)
		r = -errno;
out:
	if (r < 0 && out >= 0)
		unlink(to);
	if (out >= 0)
		close(out);
	close(in);
	free(buf);
	return r;
}

/* from appears as to: the same file (a hard link), or a copy of it where
 * no link can be made. *linked says which. */
static int freeze_file(const char *from, const char *to, int *linked)
{
	*linked = 0;
	if (link(from, to) == 0) {
		*linked = 1;
		return 0;
	}
	if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOTSUP)
		return -errno;
	return copy_file(from, to);
}

static int join(char *buf, size_t len, const char *dir, const char *name)
{
	return snprintf(buf, len, "%s/%s", dir, name) >= (int)len ? -ENAMETOOLONG : 0;
}

/* The backing chain below a frozen qcow2 image, for a directory that must
 * be complete when copied elsewhere: each backing file named without a
 * folder (so relative to its image's folder, here the snapshot directory)
 * is linked or copied into dir under the same name. Files named with a
 * path stay where they are (a snapshot restores on this machine then). */
static int freeze_chain(struct blk *top, const char *top_path, const char *dir, char *err, size_t errlen)
{
	char src[PATH_MAX], dst[PATH_MAX], folder[PATH_MAX];
	const char *slash = strrchr(top_path, '/');
	snprintf(folder, sizeof(folder), "%.*s", slash ? (int)(slash - top_path) : 1, slash ? top_path : ".");
	struct blk_info info;
	for (struct blk *b = top; b; b = info.backing_blk) {
		blk_get_info(b, &info);
		if (!info.backing[0] || strchr(info.backing, '/'))
			return 0;
		if (join(src, sizeof(src), folder, info.backing) < 0 || join(dst, sizeof(dst), dir, info.backing) < 0) {
			snprintf(err, errlen, "backing file '%s': name too long", info.backing);
			return -ENAMETOOLONG;
		}
		struct stat a, c;
		if (stat(dst, &c) == 0 && stat(src, &a) == 0 && a.st_dev == c.st_dev && a.st_ino == c.st_ino)
			continue; /* there already (an earlier disk's chain) */
		int linked, r = freeze_file(src, dst, &linked);
		if (r < 0) {
			snprintf(err, errlen, "backing file '%s' into the snapshot as '%s': %s", src, dst,
				 r == -EEXIST ? "another file has that name" : strerror(-r));
			return r;
		}
	}
	return 0;
}

/* Disk k goes on in a new overlay on frozen (the file that was its image):
 * the overlay is created beside the image, the image closed, the overlay
 * opened and renamed over the image's name, so the VM's disk keeps its
 * name. 0, or -errno with the VM still on the old image. */
static int switch_to_overlay(struct vm *vm, unsigned k, const char *frozen, char *err, size_t errlen)
{
	struct vm_disk *d = &vm->cfg.disk[k];
	struct blk *old = vm->blk[k], *nb = NULL;
	char tmp[PATH_MAX], abs[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.new", d->path) >= (int)sizeof(tmp) || !realpath(frozen, abs)) {
		snprintf(err, errlen, "disk '%s': cannot name its overlay", d->path);
		return -ENAMETOOLONG;
	}
	int r = qcow2_create(tmp, old->size, SNAPDISK_CLUSTER_BITS, abs, blk_format_name(old->format), err, errlen);
	if (r < 0)
		return r;
	enum blk_format fmt = old->format;
	/* the overlay reads its backing file under a shared lock, which the
	 * old image's writer lock (the same file) would refuse */
	blk_close(old);
	vm->blk[k] = NULL;
	r = blk_open_cache(&nb, tmp, BLK_FMT_QCOW2, 0, d->cache, err, errlen);
	if (r >= 0 && rename(tmp, d->path) < 0) {
		r = -errno;
		snprintf(err, errlen, "disk '%s': cannot put its overlay in place: %s", d->path, strerror(-r));
		blk_close(nb);
	}
	if (r < 0) {
		unlink(tmp);
		char e2[256];
		if (blk_open_cache(&vm->blk[k], d->path, fmt, 0, d->cache, e2, sizeof(e2)) < 0) {
			/* the device must not run on a closed disk: the VM ends */
			vm_stop(vm);
			return r;
		}
		virtio_blk_set_disk(vm->blkdev[k], vm->blk[k]);
		return r;
	}
	vm->blk[k] = nb;
	d->format = BLK_FMT_QCOW2;
	return virtio_blk_set_disk(vm->blkdev[k], nb);
}

int snapdisk_freeze(struct vm *vm, const char *dir, struct vm_config *saved, struct snapdisk_names *names, char *err,
		    size_t errlen)
{
	*saved = vm->cfg;
	for (unsigned k = 0; k < vm->cfg.ndisks; k++) {
		struct blk *b = vm->blk[k];
		if (!b || b->readonly || !vm->blkdev[k])
			continue;
		const char *path = vm->cfg.disk[k].path;
		enum blk_format fmt = b->format;
		char frozen[PATH_MAX];
		int r = b->ops->flush(b);
		if (r < 0) {
			snprintf(err, errlen, "disk '%s': cannot flush it: %s", path, strerror(-r));
			return r;
		}
		/* diskK.FMT, or diskK-N.FMT in a directory saved into before
		 * (whose files may be the backing of the VM's image) */
		int linked;
		r = -EEXIST;
		for (unsigned n = 0; r == -EEXIST && n < SNAPDISK_MAX_RUNS; n++) {
			if (n)
				snprintf(names->path[k], sizeof(names->path[k]), "disk%u-%u.%s", k, n,
					 blk_format_name(fmt));
			else
				snprintf(names->path[k], sizeof(names->path[k]), "disk%u.%s", k, blk_format_name(fmt));
			if (join(frozen, sizeof(frozen), dir, names->path[k]) < 0) {
				snprintf(err, errlen, "snapshot directory '%s': name too long", dir);
				return -ENAMETOOLONG;
			}
			r = freeze_file(path, frozen, &linked);
		}
		if (r < 0) {
			snprintf(err, errlen, "disk '%s' into the snapshot as '%s': %s", path, frozen, strerror(-r));
			return r;
		}
		if (fmt == BLK_FMT_QCOW2 && (r = freeze_chain(b, path, dir, err, errlen)) < 0)
			goto err_frozen;
		/* a copy is history already; a link is the VM's image, which
		 * must not be written again */
		if (linked && (r = switch_to_overlay(vm, k, frozen, err, errlen)) < 0)
			goto err_frozen;
		saved->disk[k].path = names->path[k];
		saved->disk[k].format = fmt; /* b may be closed now */
		continue;
	err_frozen:
		unlink(frozen);
		return r;
	}
	return 0;
}

/* The directory of this restore's overlays: disk_dir (created if needed),
 * else the first DIR.restore-N that did not exist (mkdir is atomic, so
 * restores at once each get their own). */
static int run_dir(const char *dir, const char *disk_dir, char *out, size_t len, char *err, size_t errlen)
{
	if (disk_dir) {
		if (snprintf(out, len, "%s", disk_dir) >= (int)len || (mkdir(out, 0755) < 0 && errno != EEXIST)) {
			snprintf(err, errlen, "disk directory '%s': %s", disk_dir, strerror(errno));
			return -errno;
		}
		return 0;
	}
	size_t dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	for (unsigned n = 1; n <= SNAPDISK_MAX_RUNS; n++) {
		if (snprintf(out, len, "%.*s.restore-%u", (int)dl, dir, n) >= (int)len) {
			snprintf(err, errlen, "snapshot directory '%s': name too long", dir);
			return -ENAMETOOLONG;
		}
		if (mkdir(out, 0755) == 0)
			return 0;
		if (errno != EEXIST) {
			snprintf(err, errlen, "'%s': %s", out, strerror(errno));
			return -errno;
		}
	}
	snprintf(err, errlen, "'%.*s.restore-1' to -%u all exist: remove old ones or give --disk-dir", (int)dl, dir,
		 SNAPDISK_MAX_RUNS);
	return -EEXIST;
}

int snapdisk_overlays(struct vm_config *cfg, const char *dir, const char *disk_dir, struct snapdisk_names *names,
		      int overlays, char *err, size_t errlen)
{
	char rdir[PATH_MAX] = "", frozen[PATH_MAX], abs[PATH_MAX];
	for (unsigned k = 0; k < cfg->ndisks; k++) {
		struct vm_disk *d = &cfg->disk[k];
		if (d->readonly)
			continue; /* shared by every restore, as by the VM saved */
		if (!dir) {
			snprintf(err, errlen, "disk %u: a writable disk needs the snapshot's directory", k);
			return -EINVAL;
		}
		/* a file of the snapshot, by its name alone; absolute: an image
		 * outside it (a snapshot of an older corral) */
		const char *n = d->path;
		if (d->path[0] != '/' && (strchr(n, '/') || !strcmp(n, "..") || !strcmp(n, ".") || !n[0])) {
			snprintf(err, errlen, "disk %u: '%s' is not a file of the snapshot", k, n);
			return -EINVAL;
		}
		if (n[0] == '/')
			snprintf(frozen, sizeof(frozen), "%s", n);
		else if (join(frozen, sizeof(frozen), dir, n) < 0) {
			snprintf(err, errlen, "disk %u: name too long", k);
			return -ENAMETOOLONG;
		}
		if (!realpath(frozen, abs)) {
			int r = -errno;
			snprintf(err, errlen, "disk %u: '%s': %s", k, frozen, strerror(-r));
			return r;
		}
		if (!overlays) { /* the frozen image itself, for the caller's own overlay */
			snprintf(names->path[k], sizeof(names->path[k]), "%s", abs);
			d->path = names->path[k];
			continue;
		}
		struct blk *b;
		int r = blk_open(&b, abs, d->format, 1, err, errlen);
		if (r < 0)
			return r;
		uint64_t size = b->size;
		enum blk_format fmt = b->format;
		blk_close(b);
		if (!rdir[0] && (r = run_dir(dir, disk_dir, rdir, sizeof(rdir), err, errlen)) < 0)
			return r;
		char *o = names->path[k];
		if (snprintf(o, sizeof(names->path[k]), "%s/disk%u.qcow2", rdir, k) >= (int)sizeof(names->path[k])) {
			snprintf(err, errlen, "disk directory '%s': name too long", rdir);
			return -ENAMETOOLONG;
		}
		/* never over a file that exists: it may be another restore's */
		int fd = open(o, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) {
			r = -errno;
			snprintf(err, errlen, "disk overlay '%s': %s", o, strerror(-r));
			return r;
		}
		close(fd);
		if ((r = qcow2_create(o, size, SNAPDISK_CLUSTER_BITS, abs, blk_format_name(fmt), err, errlen)) < 0) {
			unlink(o);
			return r;
		}
		d->path = o;
		d->format = BLK_FMT_QCOW2;
		if (cfg->log) {
			char line[PATH_MAX + 64];
			snprintf(line, sizeof(line), "restore: disk %u writes to %s", k, o);
			cfg->log(cfg->log_opaque, line);
		}
	}
	return 0;
}
