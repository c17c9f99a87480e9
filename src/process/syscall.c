/* Linux x86-64 system calls of a process VM, translated to the host's:
 * numbers through one table, structures whose layout is x86-64's copied
 * field by field, and every guest pointer checked through vmem. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/times.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "process/internal.h"

#define SF_RESTART 1 /* restart after a signal with SA_RESTART (or no handler) */
#define SF_FD0 2     /* a[0] is an fd: corral's own are off limits */
#define SF_NORET 4   /* leaves RAX alone (rt_sigreturn) */
#define SF_RESTART_NOHAND                                                                                              \
	8 /* restart only if no handler ran (Linux's                                                                   \
	   * ERESTARTNOHAND: sleeps and waits with timeouts) */

#define MAX_IOV 1024
#define BOUNCE_MAX (1u << 20)

/* A host syscall that may sleep, made through sig_host_syscall so that a
 * guest signal arriving just before it cannot leave the thread asleep:
 * HOST_SLEEP(SYS_read, fd, buf, n) gives the raw result (-errno on failure,
 * -SIGWIN_ERESTART if a signal came first, which sys_dispatch turns into a
 * restart after the signal). */
#define HOST_SLEEP_(nr, a1, a2, a3, a4, a5, a6, ...)                                                                   \
	sig_host_syscall((nr), (long)(a1), (long)(a2), (long)(a3), (long)(a4), (long)(a5), (long)(a6))
#define HOST_SLEEP(...) HOST_SLEEP_(__VA_ARGS__, 0, 0, 0, 0, 0, 0, 0)

#define SYS(name)                                                                                                      \
	static long sys_##name(struct gthread *t __attribute__((unused)), const uint64_t *a __attribute__((unused)))
#define HOSTR(expr)                                                                                                    \
	do {                                                                                                           \
		long r_ = (long)(expr);                                                                                \
		return r_ < 0 ? -errno : r_;                                                                           \
	} while (0)
#define GET_PATH(buf, ga)                                                                                              \
	do {                                                                                                           \
		long l_ = vmem_read_str(&proc.vm, (ga), (buf), sizeof(buf));                                           \
		if (l_ < 0)                                                                                            \
			return l_;                                                                                     \
	} while (0)
#define CHECK_FD(fd)                                                                                                   \
	do {                                                                                                           \
		if (fs_fd_reserved(fd))                                                                                \
			return -EBADF;                                                                                 \
	} while (0)

/* ---- open flags: x86-64 numbers vs the host's ---- */
#define GO_DIRECT 040000
#define GO_LARGEFILE 0100000
#define GO_DIRECTORY 0200000
#define GO_NOFOLLOW 0400000
#define GO_DIFFER (GO_DIRECT | GO_LARGEFILE | GO_DIRECTORY | GO_NOFOLLOW)
#if defined(__x86_64__)
#define HOST_O_LARGEFILE 0100000
#elif defined(__aarch64__) || defined(__arm__)
#define HOST_O_LARGEFILE 0400000
#else
#define HOST_O_LARGEFILE 0
#endif

static int oflags_to_host(uint64_t g)
{
	int h = (int)(g & ~(uint64_t)GO_DIFFER);
	if (g & GO_DIRECT)
		h |= O_DIRECT;
	if (g & GO_DIRECTORY)
		h |= O_DIRECTORY;
	if (g & GO_NOFOLLOW)
		h |= O_NOFOLLOW;
	return h;
}

static long oflags_to_guest(long h)
{
	long hd = O_DIRECT | O_DIRECTORY | O_NOFOLLOW | HOST_O_LARGEFILE;
	long g = h & ~hd;
	if (h & O_DIRECT)
		g |= GO_DIRECT;
	if (h & O_DIRECTORY)
		g |= GO_DIRECTORY;
	if (h & O_NOFOLLOW)
		g |= GO_NOFOLLOW;
	if (h & HOST_O_LARGEFILE)
		g |= GO_LARGEFILE;
	return g;
}

/* ---- tracing ---- */

void sys_trace(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	ssize_t w = write(proc.tracefd, buf, (size_t)n);
	(void)w;
}

/* ---- guest buffers ---- */

/* Host iovecs for the guest's iovec array. */
static long guest_iovs(uint64_t giov, uint64_t cnt, int write, struct iovec *iov, int *niov)
{
	if (cnt > MAX_IOV)
		return -EINVAL;
	int n = 0;
	size_t total = 0;
	for (uint64_t k = 0; k < cnt; k++) {
		uint64_t e[2];
		if (gmem_read(giov + 16 * k, e, 16))
			return -EFAULT;
		if ((int64_t)e[1] < 0 || total + e[1] < total)
			return -EINVAL;
		if (!e[1])
			continue;
		if (e[1] > 0x7ffff000 - total) /* Linux's MAX_RW_COUNT */
			e[1] = 0x7ffff000 - total;
		size_t got;
		int m = gmem_iov(e[0], e[1], write, iov + n, MAX_IOV - n, &got);
		n += m;
		total += got;
		if (got < e[1]) {
			if (!total)
				return -EFAULT;
			break;
		}
	}
	*niov = n;
	return (long)total;
}

static void iovs_written(const uint64_t giov, uint64_t cnt, long done)
{
	for (uint64_t k = 0; k < cnt && done > 0; k++) {
		uint64_t e[2];
		if (gmem_read(giov + 16 * k, e, 16))
			return;
		uint64_t n = e[1] < (uint64_t)done ? e[1] : (uint64_t)done;
		gmem_written(e[0], n);
		done -= (long)n;
	}
}

/* readv/writev, or preadv2/pwritev2 at off (preadv/pwritev without flags,
 * for kernels before 4.6); the position is one 64-bit word on 64-bit hosts. */
static long host_rwv(int fd, const struct iovec *iov, int n, int is_read, int64_t off, int use_off, int flags)
{
	if (!use_off)
		return HOST_SLEEP(is_read ? SYS_readv : SYS_writev, fd, iov, n);
	long nr = flags ? (is_read ? SYS_preadv2 : SYS_pwritev2) : (is_read ? SYS_preadv : SYS_pwritev);
	return HOST_SLEEP(nr, fd, iov, n, off, 0, flags);
}

static long do_rw(int fd, uint64_t buf, uint64_t len, int is_read, int64_t off, int use_off)
{
	struct iovec iov[64];
	size_t got;
	if (!len) {
		long r = is_read ? (use_off ? pread(fd, NULL, 0, off) : read(fd, NULL, 0))
				 : (use_off ? pwrite(fd, NULL, 0, off) : write(fd, NULL, 0));
		return r < 0 ? -errno : r;
	}
	if (len > 0x7ffff000)
		len = 0x7ffff000; /* as Linux's MAX_RW_COUNT */
	int n = gmem_iov(buf, len, is_read, iov, 64, &got);
	if (!got)
		return -EFAULT;
	long r =
		n == 1 ? HOST_SLEEP(is_read ? (use_off ? SYS_pread64 : SYS_read) : (use_off ? SYS_pwrite64 : SYS_write),
				    fd, iov[0].iov_base, iov[0].iov_len, off)
		       : host_rwv(fd, iov, n, is_read, off, use_off, 0);
	if (r > 0 && is_read)
		gmem_written(buf, (size_t)r);
	return r;
}

SYS(read)
{
	return do_rw((int)a[0], a[1], a[2], 1, 0, 0);
}
SYS(write)
{
	return do_rw((int)a[0], a[1], a[2], 0, 0, 0);
}
SYS(pread64)
{
	return do_rw((int)a[0], a[1], a[2], 1, (int64_t)a[3], 1);
}
SYS(pwrite64)
{
	return do_rw((int)a[0], a[1], a[2], 0, (int64_t)a[3], 1);
}

static long do_rwv(const uint64_t *a, int is_read, int use_off, int flags)
{
	struct iovec *iov = malloc(MAX_IOV * sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	int n = 0;
	long r = guest_iovs(a[1], a[2], is_read, iov, &n);
	if (r <= 0)
		goto out;
	r = host_rwv((int)a[0], iov, n, is_read, (int64_t)a[3], use_off, flags);
	if (r > 0 && is_read)
		iovs_written(a[1], a[2], r);
out:
	free(iov);
	return r;
}

SYS(readv)
{
	return do_rwv(a, 1, 0, 0);
}
SYS(writev)
{
	return do_rwv(a, 0, 0, 0);
}
SYS(preadv)
{
	return do_rwv(a, 1, 1, 0);
}
SYS(pwritev)
{
	return do_rwv(a, 0, 1, 0);
}
SYS(preadv2)
{
	return (int64_t)a[3] == -1 ? do_rwv(a, 1, 0, 0) : do_rwv(a, 1, 1, (int)a[5]);
}
SYS(pwritev2)
{
	return (int64_t)a[3] == -1 ? do_rwv(a, 0, 0, 0) : do_rwv(a, 0, 1, (int)a[5]);
}

/* ---- files ---- */

static long do_openat(int dirfd, uint64_t gpath, uint64_t flags, uint64_t mode)
{
	char path[4096];
	GET_PATH(path, gpath);
	return fs_openat(dirfd, path, oflags_to_host(flags), (int)mode);
}

SYS(open)
{
	return do_openat(AT_FDCWD, a[0], a[1], a[2]);
}
SYS(openat)
{
	return do_openat((int)a[0], a[1], a[2], a[3]);
}
SYS(creat)
{
	return do_openat(AT_FDCWD, a[0], O_CREAT | O_WRONLY | O_TRUNC, a[1]);
}

SYS(openat2)
{
	struct {
		uint64_t flags, mode, resolve;
	} how;
	if (a[3] < sizeof(how))
		return -EINVAL;
	if (gmem_read(a[2], &how, sizeof(how)))
		return -EFAULT;
	if (how.resolve)
		return -ENOSYS; /* guests fall back to openat */
	return do_openat((int)a[0], a[1], how.flags, how.mode);
}

SYS(close)
{
	HOSTR(close((int)a[0]));
}

SYS(close_range)
{
	unsigned lo = (unsigned)a[0], hi = (unsigned)a[1];
	int fl = (int)a[2];
	if (lo > hi)
		return -EINVAL;
	/* close around corral's own fds */
	for (;;) {
		unsigned stop = hi;
		for (int k = 0; k < PROC_MAX_RSV_FD; k++) {
			int r = proc.rsv_fd[k];
			if (r >= 0 && (unsigned)r >= lo && (unsigned)r <= stop)
				stop = (unsigned)r - 1 + ((unsigned)r == lo);
		}
		if (fs_fd_reserved(lo)) {
			if (lo == hi)
				return 0;
			lo++;
			continue;
		}
		if (syscall(SYS_close_range, lo, stop, fl) < 0)
			return -errno;
		if (stop >= hi)
			return 0;
		lo = stop + 1;
	}
}

/* x86-64 struct stat */
struct g_stat {
	uint64_t dev, ino, nlink;
	uint32_t mode, uid, gid, pad0;
	uint64_t rdev;
	int64_t size, blksize, blocks;
	uint64_t atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns;
	int64_t unused[3];
};
_Static_assert(sizeof(struct g_stat) == 144, "x86-64 struct stat");

static long put_stat(uint64_t ga, const struct stat *st)
{
	struct g_stat g;
	memset(&g, 0, sizeof(g));
	g.dev = st->st_dev;
	g.ino = st->st_ino;
	g.nlink = st->st_nlink;
	g.mode = st->st_mode;
	g.uid = st->st_uid;
	g.gid = st->st_gid;
	g.rdev = st->st_rdev;
	g.size = st->st_size;
	g.blksize = st->st_blksize;
	g.blocks = st->st_blocks;
	g.atime = (uint64_t)st->st_atim.tv_sec;
	g.atime_ns = (uint64_t)st->st_atim.tv_nsec;
	g.mtime = (uint64_t)st->st_mtim.tv_sec;
	g.mtime_ns = (uint64_t)st->st_mtim.tv_nsec;
	g.ctime = (uint64_t)st->st_ctim.tv_sec;
	g.ctime_ns = (uint64_t)st->st_ctim.tv_nsec;
	return gmem_write(ga, &g, sizeof(g)) ? -EFAULT : 0;
}

static long do_fstatat(int dirfd, uint64_t gpath, uint64_t gbuf, int flags)
{
	char path[4096];
	struct stat st;
	struct fs_at at;
	GET_PATH(path, gpath);
	if (!path[0] && !(flags & AT_EMPTY_PATH))
		return -ENOENT;
	int r = fs_obj(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), &at);
	if (r)
		return r;
	if (at.tmp >= 0)
		flags = AT_EMPTY_PATH;
	r = fstatat(at.dirfd, at.name, &st, flags & (AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT));
	r = r < 0 ? -errno : 0;
	fs_put(&at);
	return r ? r : put_stat(gbuf, &st);
}

SYS(stat)
{
	return do_fstatat(AT_FDCWD, a[0], a[1], 0);
}
SYS(lstat)
{
	return do_fstatat(AT_FDCWD, a[0], a[1], AT_SYMLINK_NOFOLLOW);
}
SYS(newfstatat)
{
	return do_fstatat((int)a[0], a[1], a[2], (int)a[3]);
}
SYS(fstat)
{
	struct stat st;
	if (fstat((int)a[0], &st) < 0)
		return -errno;
	return put_stat(a[1], &st);
}

SYS(statx)
{
	char path[4096];
	struct statx sx;
	struct fs_at at;
	int flags = (int)a[2];
	GET_PATH(path, a[1]);
	if (!path[0] && !(flags & AT_EMPTY_PATH))
		return -ENOENT;
	int r = fs_obj((int)a[0], path, !(flags & AT_SYMLINK_NOFOLLOW), &at);
	if (r)
		return r;
	if (at.tmp >= 0)
		flags = (flags & ~AT_SYMLINK_NOFOLLOW) | AT_EMPTY_PATH;
	r = statx(at.dirfd, at.name, flags, (unsigned)a[3], &sx);
	r = r < 0 ? -errno : 0;
	fs_put(&at);
	if (r)
		return r;
	return gmem_write(a[4], &sx, sizeof(sx)) ? -EFAULT : 0;
}

SYS(lseek)
{
	HOSTR(lseek((int)a[0], (off_t)a[1], (int)a[2]));
}

static long do_access(int dirfd, uint64_t gpath, int mode, int flags)
{
	char path[4096];
	struct fs_at at;
	GET_PATH(path, gpath);
	if (flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
		return -EINVAL;
	if (!path[0] && !(flags & AT_EMPTY_PATH))
		return -ENOENT;
	int r = fs_obj(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), &at);
	if (r)
		return r;
	if (at.tmp >= 0)
		flags = (flags & AT_EACCESS) | AT_EMPTY_PATH;
	long x = syscall(SYS_faccessat2, at.dirfd, at.name, mode, flags);
	if (x < 0 && errno == ENOSYS && !flags)
		x = syscall(SYS_faccessat, at.dirfd, at.name, mode);
	x = x < 0 ? -errno : 0;
	fs_put(&at);
	return x;
}

SYS(access)
{
	return do_access(AT_FDCWD, a[0], (int)a[1], 0);
}
SYS(faccessat)
{
	return do_access((int)a[0], a[1], (int)a[2], 0);
}
SYS(faccessat2)
{
	return do_access((int)a[0], a[1], (int)a[2], (int)a[3]);
}

static long do_readlink(int dirfd, uint64_t gpath, uint64_t gbuf, uint64_t size)
{
	char path[4096], buf[4096];
	struct fs_at at;
	GET_PATH(path, gpath);
	if ((int64_t)size <= 0)
		return -EINVAL;
	if (size > sizeof(buf))
		size = sizeof(buf);
	long n = fs_proc_special(path, 0, buf, size);
	if (n == FS_NOT_SPECIAL) {
		int r = fs_obj(dirfd, path, 0, &at);
		if (r)
			return r;
		n = readlinkat(at.dirfd, at.name, buf, size);
		n = n < 0 ? -errno : n;
		fs_put(&at);
	}
	if (n < 0)
		return n;
	return gmem_write(gbuf, buf, (size_t)n) ? -EFAULT : n;
}

SYS(readlink)
{
	return do_readlink(AT_FDCWD, a[0], a[1], a[2]);
}
SYS(readlinkat)
{
	return do_readlink((int)a[0], a[1], a[2], a[3]);
}

static long do_mkdirat(int dirfd, uint64_t gpath, int mode)
{
	char path[4096];
	struct fs_at at;
	GET_PATH(path, gpath);
	int r = fs_at(dirfd, path, &at);
	if (r)
		return r;
	r = mkdirat(at.dirfd, at.name, (mode_t)mode);
	r = r < 0 ? -errno : 0;
	fs_put(&at);
	return r;
}

SYS(mkdir)
{
	return do_mkdirat(AT_FDCWD, a[0], (int)a[1]);
}
SYS(mkdirat)
{
	return do_mkdirat((int)a[0], a[1], (int)a[2]);
}

static long do_mknodat(int dirfd, uint64_t gpath, int mode, uint64_t dev)
{
	char path[4096];
	struct fs_at at;
	GET_PATH(path, gpath);
	int r = fs_at(dirfd, path, &at);
	if (r)
		return r;
	r = mknodat(at.dirfd, at.name, (mode_t)mode, (dev_t)dev);
	r = r < 0 ? -errno : 0;
	fs_put(&at);
	return r;
}

SYS(mknod)
{
	return do_mknodat(AT_FDCWD, a[0], (int)a[1], a[2]);
}
SYS(mknodat)
{
	return do_mknodat((int)a[0], a[1], (int)a[2], a[3]);
}

static long do_unlinkat(int dirfd, uint64_t gpath, int flags)
{
	char path[4096];
	struct fs_at at;
	GET_PATH(path, gpath);
	int r = fs_at(dirfd, path, &at);
	if (r)
		return r;
	r = unlinkat(at.dirfd, at.name, flags);
	r = r < 0 ? -errno : 0;
	fs_put(&at);
	return r;
}

SYS(unlink)
{
	return do_unlinkat(AT_FDCWD, a[0], 0);
}
SYS(rmdir)
{
	return do_unlinkat(AT_FDCWD, a[0], AT_REMOVEDIR);
}
SYS(unlinkat)
{
	return do_unlinkat((int)a[0], a[1], (int)a[2]);
}

static long do_renameat2(int od, uint64_t gold, int nd, uint64_t gnew, unsigned flags)
{
	char op[4096], np[4096];
	struct fs_at ao, an;
	GET_PATH(op, gold);
	GET_PATH(np, gnew);
	int r = fs_at(od, op, &ao);
	if (r)
		return r;
	r = fs_at(nd, np, &an);
	if (r) {
		fs_put(&ao);
		return r;
	}
	long x = syscall(SYS_renameat2, ao.dirfd, ao.name, an.dirfd, an.name, flags);
	x = x < 0 ? -errno : 0;
	fs_put(&ao);
	fs_put(&an);
	return x;
}

SYS(rename)
{
	return do_renameat2(AT_FDCWD, a[0], AT_FDCWD, a[1], 0);
}
SYS(renameat)
{
	return do_renameat2((int)a[0], a[1], (int)a[2], a[3], 0);
}
SYS(renameat2)
{
	return do_renameat2((int)a[0], a[1], (int)a[2], a[3], (unsigned)a[4]);
}

static long do_linkat(int od, uint64_t gold, int nd, uint64_t gnew, int flags)
{
	char op[4096], np[4096], lnk[64];
	struct fs_at ao, an;
	GET_PATH(op, gold);
	GET_PATH(np, gnew);
	int r;
	if (proc.rootfd >= 0 && (flags & AT_SYMLINK_FOLLOW) && op[0])
		r = fs_obj(od, op, 1, &ao);
	else
		r = op[0] ? fs_at(od, op, &ao) : fs_obj(od, op, 0, &ao);
	if (r)
		return r;
	r = fs_at(nd, np, &an);
	if (r) {
		fs_put(&ao);
		return r;
	}
	if (ao.tmp >= 0 && !ao.name[0]) {
		snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", ao.tmp);
		r = linkat(AT_FDCWD, lnk, an.dirfd, an.name, AT_SYMLINK_FOLLOW);
	} else {
		r = linkat(ao.dirfd, ao.name, an.dirfd, an.name, flags);
	}
	r = r < 0 ? -errno : 0;
	fs_put(&ao);
	fs_put(&an);
	return r;
}

SYS(link)
{
	return do_linkat(AT_FDCWD, a[0], AT_FDCWD, a[1], 0);
}
SYS(linkat)
{
	return do_linkat((int)a[0], a[1], (int)a[2], a[3], (int)a[4]);
}

static long do_symlinkat(uint64_t gtarget, int nd, uint64_t gpath)
{
	char target[4096], path[4096];
	struct fs_at at;
	GET_PATH(target, gtarget);
	GET_PATH(path, gpath);
	/* the target is only text; it is resolved (inside the root) on use */
	int r = fs_at(nd, path, &at);
	if (r)
		return r;
	r = symlinkat(target, at.dirfd, at.name);
	r = r < 0 ? -errno : 0;
	fs_put(&at);
	return r;
}

SYS(symlink)
{
	return do_symlinkat(a[0], AT_FDCWD, a[1]);
}
SYS(symlinkat)
{
	return do_symlinkat(a[0], (int)a[1], a[2]);
}

/* Calls without an AT_EMPTY_PATH form reach a resolved object through its
 * /proc/self/fd magic link (the host's, outside the guest's view). */
static const char *obj_path(struct fs_at *at, char *lnk, size_t n)
{
	if (at->tmp < 0)
		return at->name;
	snprintf(lnk, n, "/proc/self/fd/%d", at->tmp);
	return lnk;
}

static long do_fchmodat(int dirfd, uint64_t gpath, int mode, int flags)
{
	char path[4096], lnk[64];
	struct fs_at at;
	GET_PATH(path, gpath);
	int r = fs_obj(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), &at);
	if (r)
		return r;
	const char *p = obj_path(&at, lnk, sizeof(lnk));
	r = fchmodat(at.tmp >= 0 ? AT_FDCWD : at.dirfd, p, (mode_t)mode, 0);
	r = r < 0 ? -errno : 0;
	fs_put(&at);
	return r;
}

SYS(chmod)
{
	return do_fchmodat(AT_FDCWD, a[0], (int)a[1], 0);
}
SYS(fchmodat)
{
	return do_fchmodat((int)a[0], a[1], (int)a[2], 0);
}
SYS(fchmod)
{
	HOSTR(fchmod((int)a[0], (mode_t)a[1]));
}

static long do_fchownat(int dirfd, uint64_t gpath, uint64_t uid, uint64_t gid, int flags)
{
	char path[4096];
	struct fs_at at;
	GET_PATH(path, gpath);
	if (!path[0] && !(flags & AT_EMPTY_PATH))
		return -ENOENT;
	int r = fs_obj(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), &at);
	if (r)
		return r;
	if (at.tmp >= 0)
		flags = AT_EMPTY_PATH;
	r = fchownat(at.dirfd, at.name, (uid_t)uid, (gid_t)gid, flags);
	r = r < 0 ? -errno : 0;
	fs_put(&at);
	return r;
}

SYS(chown)
{
	return do_fchownat(AT_FDCWD, a[0], a[1], a[2], 0);
}
SYS(lchown)
{
	return do_fchownat(AT_FDCWD, a[0], a[1], a[2], AT_SYMLINK_NOFOLLOW);
}
SYS(fchownat)
{
	return do_fchownat((int)a[0], a[1], a[2], a[3], (int)a[4]);
}
SYS(fchown)
{
	HOSTR(fchown((int)a[0], (uid_t)a[1], (gid_t)a[2]));
}

static long do_utimens(int dirfd, uint64_t gpath, const struct timespec *ts, int flags)
{
	char path[4096];
	struct fs_at at;
	if (!gpath) {
		CHECK_FD(dirfd);
		HOSTR(syscall(SYS_utimensat, dirfd, NULL, ts, flags));
	}
	GET_PATH(path, gpath);
	int r = fs_obj(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), &at);
	if (r)
		return r;
	if (at.tmp >= 0)
		flags = AT_EMPTY_PATH;
	long x = syscall(SYS_utimensat, at.dirfd, at.name, ts, flags);
	x = x < 0 ? -errno : 0;
	fs_put(&at);
	return x;
}

SYS(utimensat)
{
	struct timespec ts[2];
	if (a[2] && gmem_read(a[2], ts, sizeof(ts)))
		return -EFAULT;
	return do_utimens((int)a[0], a[1], a[2] ? ts : NULL, (int)a[3]);
}

static long do_utimes(int dirfd, uint64_t gpath, uint64_t gtv)
{
	struct timespec ts[2];
	if (gtv) {
		int64_t tv[4];
		if (gmem_read(gtv, tv, sizeof(tv)))
			return -EFAULT;
		for (int k = 0; k < 2; k++) {
			if (tv[2 * k + 1] < 0 || tv[2 * k + 1] >= 1000000)
				return -EINVAL;
			ts[k].tv_sec = tv[2 * k];
			ts[k].tv_nsec = tv[2 * k + 1] * 1000;
		}
	}
	return do_utimens(dirfd, gpath, gtv ? ts : NULL, 0);
}

SYS(utimes)
{
	return do_utimes(AT_FDCWD, a[0], a[1]);
}
SYS(futimesat)
{
	return do_utimes((int)a[0], a[1], a[2]);
}
SYS(utime)
{
	struct timespec ts[2];
	if (a[1]) {
		int64_t u[2];
		if (gmem_read(a[1], u, sizeof(u)))
			return -EFAULT;
		ts[0].tv_sec = u[0];
		ts[1].tv_sec = u[1];
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
	}
	return do_utimens(AT_FDCWD, a[0], a[1] ? ts : NULL, 0);
}

SYS(truncate)
{
	char path[4096], lnk[64];
	struct fs_at at;
	GET_PATH(path, a[0]);
	int r = fs_obj(AT_FDCWD, path, 1, &at);
	if (r)
		return r;
	r = truncate(obj_path(&at, lnk, sizeof(lnk)), (off_t)a[1]);
	r = r < 0 ? -errno : 0;
	fs_put(&at);
	return r;
}

SYS(ftruncate)
{
	HOSTR(ftruncate((int)a[0], (off_t)a[1]));
}
SYS(fsync)
{
	HOSTR(fsync((int)a[0]));
}
SYS(fdatasync)
{
	HOSTR(fdatasync((int)a[0]));
}
SYS(sync)
{
	sync();
	return 0;
}
SYS(syncfs)
{
	HOSTR(syncfs((int)a[0]));
}
SYS(flock)
{
	return HOST_SLEEP(SYS_flock, (int)a[0], (int)a[1]);
}
SYS(fallocate)
{
	HOSTR(fallocate((int)a[0], (int)a[1], (off_t)a[2], (off_t)a[3]));
}
SYS(fadvise64)
{
	return -posix_fadvise((int)a[0], (off_t)a[1], (off_t)a[2], (int)a[3]);
}
SYS(readahead)
{
	HOSTR(readahead((int)a[0], (off64_t)a[1], (size_t)a[2]));
}

SYS(getdents64)
{
	size_t n = a[2] > BOUNCE_MAX ? BOUNCE_MAX : a[2];
	char *buf = malloc(n ? n : 1);
	if (!buf)
		return -ENOMEM;
	long r = syscall(SYS_getdents64, (int)a[0], buf, n);
	if (r < 0)
		r = -errno;
	else if (gmem_write(a[1], buf, (size_t)r))
		r = -EFAULT;
	free(buf);
	return r;
}

SYS(getcwd)
{
	char host[4096], g[4096];
	if (!getcwd(host, sizeof(host)))
		return -errno;
	int r = fs_guest_path(host, g, sizeof(g));
	if (r)
		return -ENOENT;
	size_t l = strlen(g) + 1;
	if (l > a[1])
		return -ERANGE;
	return gmem_write(a[0], g, l) ? -EFAULT : (long)l;
}

SYS(chdir)
{
	char path[4096];
	struct fs_at at;
	GET_PATH(path, a[0]);
	if (proc.rootfd < 0)
		HOSTR(chdir(path));
	if (!path[0])
		return -ENOENT;
	int r = fs_obj(AT_FDCWD, path, 1, &at);
	if (r)
		return r;
	struct stat st;
	if (fstat(at.tmp, &st) < 0 || !S_ISDIR(st.st_mode))
		r = -ENOTDIR;
	else if (fchdir(at.tmp) < 0)
		r = -errno;
	fs_put(&at);
	return r;
}

SYS(fchdir)
{
	if (proc.rootfd >= 0) {
		/* a directory fd from outside the root must not become the cwd */
		char lnk[64], host[4096], g[4096];
		snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", (int)a[0]);
		ssize_t l = readlink(lnk, host, sizeof(host) - 1);
		if (l < 0)
			return -EBADF;
		host[l] = 0;
		if (fs_guest_path(host, g, sizeof(g)))
			return -EACCES;
	}
	HOSTR(fchdir((int)a[0]));
}

struct g_statfs {
	int64_t type, bsize;
	uint64_t blocks, bfree, bavail, files, ffree;
	int32_t fsid[2];
	int64_t namelen, frsize, flags, spare[4];
};
_Static_assert(sizeof(struct g_statfs) == 120, "x86-64 struct statfs");

static long put_statfs(uint64_t ga, const struct statfs *s)
{
	struct g_statfs g;
	memset(&g, 0, sizeof(g));
	g.type = s->f_type;
	g.bsize = s->f_bsize;
	g.blocks = s->f_blocks;
	g.bfree = s->f_bfree;
	g.bavail = s->f_bavail;
	g.files = s->f_files;
	g.ffree = s->f_ffree;
	memcpy(g.fsid, &s->f_fsid, sizeof(g.fsid));
	g.namelen = s->f_namelen;
	g.frsize = s->f_frsize;
	g.flags = s->f_flags;
	return gmem_write(ga, &g, sizeof(g)) ? -EFAULT : 0;
}

SYS(statfs)
{
	char path[4096];
	struct fs_at at;
	struct statfs s;
	GET_PATH(path, a[0]);
	int r = fs_obj(AT_FDCWD, path, 1, &at);
	if (r)
		return r;
	if (at.tmp >= 0)
		r = fstatfs(at.tmp, &s);
	else
		r = statfs(path, &s);
	r = r < 0 ? -errno : 0;
	fs_put(&at);
	return r ? r : put_statfs(a[1], &s);
}

SYS(fstatfs)
{
	struct statfs s;
	if (fstatfs((int)a[0], &s) < 0)
		return -errno;
	return put_statfs(a[1], &s);
}

/* getxattr/lgetxattr/listxattr/llistxattr: the host's answer for the
 * same file (ls asks for ACLs and security labels). */
static long do_xattr(const uint64_t *a, int follow, int list)
{
	char path[4096], name[256], lnk[64];
	struct fs_at at;
	GET_PATH(path, a[0]);
	if (!list)
		GET_PATH(name, a[1]);
	uint64_t gbuf = list ? a[1] : a[2], size = list ? a[2] : a[3];
	if (size > 65536)
		size = 65536;
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	long r = fs_obj(AT_FDCWD, path, follow, &at);
	if (r)
		goto out;
	const char *p = obj_path(&at, lnk, sizeof(lnk));
	if (at.tmp >= 0)
		follow = 1; /* through the magic link to the object itself */
	if (list)
		r = follow ? listxattr(p, buf, size) : llistxattr(p, buf, size);
	else
		r = follow ? getxattr(p, name, buf, size) : lgetxattr(p, name, buf, size);
	if (r < 0)
		r = -errno;
	else if (size && gmem_write(gbuf, buf, (size_t)r))
		r = -EFAULT;
	fs_put(&at);
out:
	free(buf);
	return r;
}

SYS(getxattr)
{
	return do_xattr(a, 1, 0);
}
SYS(lgetxattr)
{
	return do_xattr(a, 0, 0);
}
SYS(listxattr)
{
	return do_xattr(a, 1, 1);
}
SYS(llistxattr)
{
	return do_xattr(a, 0, 1);
}

SYS(fgetxattr)
{
	char name[256];
	GET_PATH(name, a[1]);
	size_t size = a[3] > 65536 ? 65536 : a[3];
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	long r = fgetxattr((int)a[0], name, buf, size);
	if (r < 0)
		r = -errno;
	else if (size && gmem_write(a[2], buf, (size_t)r))
		r = -EFAULT;
	free(buf);
	return r;
}

SYS(flistxattr)
{
	size_t size = a[2] > 65536 ? 65536 : a[2];
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	long r = flistxattr((int)a[0], buf, size);
	if (r < 0)
		r = -errno;
	else if (size && gmem_write(a[1], buf, (size_t)r))
		r = -EFAULT;
	free(buf);
	return r;
}

SYS(xattr_unsupported)
{
	return -EOPNOTSUPP;
}

/* ---- fds ---- */

SYS(dup)
{
	HOSTR(dup((int)a[0]));
}
SYS(dup2)
{
	CHECK_FD((int)a[1]);
	HOSTR(dup2((int)a[0], (int)a[1]));
}
SYS(dup3)
{
	CHECK_FD((int)a[1]);
	HOSTR(dup3((int)a[0], (int)a[1], oflags_to_host(a[2])));
}

static long do_pipe(uint64_t ga, int flags)
{
	int fds[2];
	if (pipe2(fds, flags) < 0)
		return -errno;
	if (gmem_write(ga, fds, sizeof(fds))) {
		close(fds[0]);
		close(fds[1]);
		return -EFAULT;
	}
	return 0;
}

SYS(pipe)
{
	return do_pipe(a[0], 0);
}
SYS(pipe2)
{
	return do_pipe(a[0], oflags_to_host(a[1]));
}

SYS(fcntl)
{
	int fd = (int)a[0], cmd = (int)a[1];
	switch (cmd) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC: HOSTR(fcntl(fd, cmd, (int)a[2]));
	case F_GETFD:
	case F_GETOWN:
	case F_GETSIG:
	case F_GETLEASE:
	case F_GETPIPE_SZ:
	case F_GET_SEALS: HOSTR(fcntl(fd, cmd));
	case F_SETFD:
	case F_SETOWN:
	case F_SETSIG:
	case F_SETLEASE:
	case F_NOTIFY:
	case F_SETPIPE_SZ:
	case F_ADD_SEALS: HOSTR(fcntl(fd, cmd, (int)a[2]));
	case F_GETFL: {
		long r = fcntl(fd, F_GETFL);
		return r < 0 ? -errno : oflags_to_guest(r);
	}
	case F_SETFL: HOSTR(fcntl(fd, F_SETFL, oflags_to_host(a[2])));
	case F_GETLK:
	case F_SETLK:
	case F_SETLKW:
	case F_OFD_GETLK:
	case F_OFD_SETLK:
	case F_OFD_SETLKW: {
		struct flock fl; /* same layout on every 64-bit Linux */
		_Static_assert(sizeof(struct flock) == 32, "struct flock");
		if (gmem_read(a[2], &fl, sizeof(fl)))
			return -EFAULT;
		long r = HOST_SLEEP(SYS_fcntl, fd, cmd, &fl); /* F_SETLKW sleeps */
		if (r < 0)
			return r;
		if ((cmd == F_GETLK || cmd == F_OFD_GETLK) && gmem_write(a[2], &fl, sizeof(fl)))
			return -EFAULT;
		return 0;
	}
	case F_GETOWN_EX:
	case F_SETOWN_EX: {
		struct f_owner_ex o;
		if (cmd == F_SETOWN_EX && gmem_read(a[2], &o, sizeof(o)))
			return -EFAULT;
		if (fcntl(fd, cmd, &o) < 0)
			return -errno;
		if (cmd == F_GETOWN_EX && gmem_write(a[2], &o, sizeof(o)))
			return -EFAULT;
		return 0;
	}
	default: return -EINVAL;
	}
}

SYS(ioctl)
{
	int fd = (int)a[0];
	unsigned long req = (unsigned long)a[1];
	uint8_t buf[64];
	int iv;
	switch (req) {
	case 0x5401: /* TCGETS: the kernel's struct termios, 36 bytes */
		if (ioctl(fd, TCGETS, buf) < 0)
			return -errno;
		return gmem_write(a[2], buf, 36) ? -EFAULT : 0;
	case 0x5402: /* TCSETS */
	case 0x5403: /* TCSETSW */
	case 0x5404: /* TCSETSF */
		if (gmem_read(a[2], buf, 36))
			return -EFAULT;
		HOSTR(ioctl(fd, req, buf));
	case 0x5413: /* TIOCGWINSZ */
		if (ioctl(fd, TIOCGWINSZ, buf) < 0)
			return -errno;
		return gmem_write(a[2], buf, 8) ? -EFAULT : 0;
	case 0x5414: /* TIOCSWINSZ */
		if (gmem_read(a[2], buf, 8))
			return -EFAULT;
		HOSTR(ioctl(fd, TIOCSWINSZ, buf));
	case 0x540f: /* TIOCGPGRP */
	case 0x5429: /* TIOCGSID */
	case 0x541b: /* FIONREAD */
	case 0x5411: /* TIOCOUTQ */
	case 0x5430: /* TIOCGPTN (unsigned) */
		if (ioctl(fd, req, &iv) < 0)
			return -errno;
		return gmem_write(a[2], &iv, 4) ? -EFAULT : 0;
	case 0x5410: /* TIOCSPGRP */
	case 0x5421: /* FIONBIO */
	case 0x5452: /* FIOASYNC */
	case 0x5431: /* TIOCSPTLCK */
		if (gmem_read(a[2], &iv, 4))
			return -EFAULT;
		HOSTR(ioctl(fd, req, &iv));
	case 0x5450: /* FIONCLEX */
	case 0x5451: /* FIOCLEX */
	case 0x5422: /* TIOCNOTTY */ HOSTR(ioctl(fd, req));
	case 0x540e: /* TIOCSCTTY */
	case 0x540b: /* TCFLSH */
	case 0x540a: /* TCXONC */
	case 0x5409: /* TCSBRK */
	case 0x5425: /* TCSBRKP */ HOSTR(ioctl(fd, req, (int)a[2]));
	default:
		if (proc.opts.trace)
			sys_trace("[%d] ioctl 0x%lx not translated\n", t->tid, req);
		return -ENOTTY;
	}
}

/* ---- poll, select, epoll ---- */

SYS(poll)
{
	uint64_t n = a[1];
	if (n > 65536)
		return -EINVAL;
	struct pollfd *p = malloc((n ? n : 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	long r;
	int ms = (int)a[2];
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	if (gmem_read(a[0], p, n * sizeof(*p))) {
		r = -EFAULT;
	} else {
		/* ppoll: the one poll every host has */
		r = HOST_SLEEP(SYS_ppoll, p, n, ms >= 0 ? &ts : NULL, NULL, GSIG_MAX / 8);
		if (r >= 0 && gmem_write(a[0], p, n * sizeof(*p)))
			r = -EFAULT;
	}
	free(p);
	return r;
}

/* A temporary signal mask for ppoll/pselect/epoll_pwait: signals that
 * interrupt the wait are delivered with the caller's mask saved. */
static long read_tmpmask(uint64_t gm, uint64_t size, uint64_t *m)
{
	if (!gm)
		return 0;
	if (size != 8)
		return -EINVAL;
	return gmem_read(gm, m, 8) ? -EFAULT : 1;
}

static void host_sigset(uint64_t m, sigset_t *hs)
{
	sigemptyset(hs);
	for (int s = 1; s <= GSIG_MAX; s++)
		if ((m & GSIG_BIT(s)) && s != SIGKILL && s != SIGSTOP && s != 32 && s != 33 && s != HOST_SIG_WAKE)
			sigaddset(hs, s);
}

/* A signal that the temporary mask lets through is recorded already:
 * the wait is interrupted before it starts. */
static bool tmpmask_ready(struct gthread *t, long have, uint64_t m)
{
	return have && (t->pending & ~m);
}

static void tmpmask_done(struct gthread *t, long r, int have, uint64_t m)
{
	if (have && r == -EINTR) {
		t->saved_mask = t->sigmask;
		t->sigsuspended = 1;
		t->sigmask = m;
	}
}

SYS(ppoll)
{
	uint64_t n = a[1], m = 0;
	struct timespec ts;
	sigset_t hs;
	if (n > 65536)
		return -EINVAL;
	long have = read_tmpmask(a[3], a[4], &m);
	if (have < 0)
		return have;
	if (a[2] && gmem_read(a[2], &ts, sizeof(ts)))
		return -EFAULT;
	host_sigset(m, &hs);
	struct pollfd *p = malloc((n ? n : 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	long r;
	if (gmem_read(a[0], p, n * sizeof(*p))) {
		r = -EFAULT;
	} else if (tmpmask_ready(t, have, m)) {
		r = -EINTR;
	} else {
		/* the host kernel writes the time left into ts, as Linux does */
		r = HOST_SLEEP(SYS_ppoll, p, n, a[2] ? &ts : NULL, have ? &hs : NULL, GSIG_MAX / 8);
		if (r >= 0 && gmem_write(a[0], p, n * sizeof(*p)))
			r = -EFAULT;
		if (a[2] && r != -SIGWIN_ERESTART)
			gmem_write(a[2], &ts, sizeof(ts));
	}
	free(p);
	tmpmask_done(t, r, (int)have, m);
	return r;
}

static long do_select(struct gthread *t, const uint64_t *a, int is_p)
{
	int n = (int)a[0];
	if (n < 0 || n > 65536)
		return -EINVAL;
	size_t bytes = (((size_t)n + 63) / 64) * 8;
	size_t alloc = bytes > sizeof(fd_set) ? bytes : sizeof(fd_set);
	fd_set *s[3] = {NULL, NULL, NULL};
	long r = 0;
	uint64_t m = 0;
	long have = 0;
	struct timespec ts;
	struct timeval tv;
	for (int k = 0; k < 3; k++) {
		if (!a[1 + k])
			continue;
		s[k] = calloc(1, alloc);
		if (!s[k]) {
			r = -ENOMEM;
			goto out;
		}
		if (gmem_read(a[1 + k], s[k], bytes)) {
			r = -EFAULT;
			goto out;
		}
	}
	if (is_p) {
		uint64_t sm[2] = {0, 0};
		if (a[5] && gmem_read(a[5], sm, sizeof(sm))) {
			r = -EFAULT;
			goto out;
		}
		if ((have = read_tmpmask(sm[0], sm[1], &m)) < 0) {
			r = have;
			goto out;
		}
		if (a[4] && gmem_read(a[4], &ts, sizeof(ts))) {
			r = -EFAULT;
			goto out;
		}
	} else if (a[4]) {
		/* select is pselect6 with Linux's conversion of the timeval */
		if (gmem_read(a[4], &tv, sizeof(tv))) {
			r = -EFAULT;
			goto out;
		}
		ts.tv_sec = tv.tv_sec + tv.tv_usec / 1000000;
		ts.tv_nsec = (tv.tv_usec % 1000000) * 1000;
	}
	sigset_t hs;
	host_sigset(m, &hs);
	struct {
		const sigset_t *set;
		size_t size;
	} sm6 = {have ? &hs : NULL, GSIG_MAX / 8};
	if (tmpmask_ready(t, have, m)) {
		r = -EINTR;
		goto out;
	}
	r = HOST_SLEEP(SYS_pselect6, n, s[0], s[1], s[2], a[4] ? &ts : NULL, &sm6);
	if (r == -SIGWIN_ERESTART)
		goto out;
	/* the time left, as Linux writes it back (not after a bad timeout) */
	if (!a[4] || r == -EINVAL) {
	} else if (is_p) {
		gmem_write(a[4], &ts, sizeof(ts));
	} else {
		tv.tv_sec = ts.tv_sec;
		tv.tv_usec = ts.tv_nsec / 1000;
		gmem_write(a[4], &tv, sizeof(tv));
	}
	if (r < 0)
		goto out;
	for (int k = 0; k < 3; k++)
		if (s[k] && gmem_write(a[1 + k], s[k], bytes))
			r = -EFAULT;
out:
	for (int k = 0; k < 3; k++)
		free(s[k]);
	tmpmask_done(t, r, (int)have, m);
	return r;
}

SYS(select)
{
	return do_select(t, a, 0);
}
SYS(pselect6)
{
	return do_select(t, a, 1);
}

SYS(epoll_create)
{
	HOSTR((int64_t)a[0] <= 0 ? (errno = EINVAL, -1) : epoll_create1(0));
}
SYS(epoll_create1)
{
	HOSTR(epoll_create1((int)oflags_to_host(a[0])));
}

SYS(epoll_ctl)
{
	/* x86-64's struct epoll_event is packed: u32 events, u64 data */
	uint8_t g[12];
	struct epoll_event ev;
	CHECK_FD((int)a[2]);
	if (a[1] != EPOLL_CTL_DEL || a[3]) {
		if (gmem_read(a[3], g, sizeof(g)))
			return -EFAULT;
		memcpy(&ev.events, g, 4);
		memcpy(&ev.data.u64, g + 4, 8);
	}
	HOSTR(epoll_ctl((int)a[0], (int)a[1], (int)a[2], &ev));
}

static long do_epoll_wait(struct gthread *t, int epfd, uint64_t gev, int max, int timeout, const struct timespec *ts2,
			  uint64_t gm, uint64_t msize)
{
	if (max <= 0)
		return -EINVAL;
	if (max > 4096)
		max = 4096; /* fewer events per call is allowed */
	uint64_t m = 0;
	long have = read_tmpmask(gm, msize, &m);
	if (have < 0)
		return have;
	sigset_t hs;
	host_sigset(m, &hs);
	struct epoll_event *ev = malloc((size_t)max * sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	long r;
	if (tmpmask_ready(t, have, m))
		r = -EINTR;
	else if (ts2)
		r = HOST_SLEEP(SYS_epoll_pwait2, epfd, ev, max, ts2, have ? &hs : NULL, GSIG_MAX / 8);
	else
		r = HOST_SLEEP(SYS_epoll_pwait, epfd, ev, max, timeout, have ? &hs : NULL, GSIG_MAX / 8);
	if (r >= 0) {
		for (long k = 0; k < r; k++) {
			uint8_t g[12];
			memcpy(g, &ev[k].events, 4);
			memcpy(g + 4, &ev[k].data.u64, 8);
			if (gmem_write(gev + 12 * (uint64_t)k, g, 12)) {
				r = -EFAULT;
				break;
			}
		}
	}
	free(ev);
	tmpmask_done(t, r, (int)have, m);
	return r;
}

SYS(epoll_wait)
{
	return do_epoll_wait(t, (int)a[0], a[1], (int)a[2], (int)a[3], NULL, 0, 0);
}
SYS(epoll_pwait)
{
	return do_epoll_wait(t, (int)a[0], a[1], (int)a[2], (int)a[3], NULL, a[4], a[5]);
}
SYS(epoll_pwait2)
{
	struct timespec ts;
	if (a[3] && gmem_read(a[3], &ts, sizeof(ts)))
		return -EFAULT;
	if (!a[3])
		return do_epoll_wait(t, (int)a[0], a[1], (int)a[2], -1, NULL, a[4], a[5]);
	return do_epoll_wait(t, (int)a[0], a[1], (int)a[2], 0, &ts, a[4], a[5]);
}

SYS(eventfd)
{
	HOSTR(eventfd((unsigned)a[0], 0));
}
SYS(eventfd2)
{
	HOSTR(eventfd((unsigned)a[0], oflags_to_host(a[1])));
}
SYS(timerfd_create)
{
	HOSTR(timerfd_create((int)a[0], oflags_to_host(a[1])));
}
SYS(timerfd_settime)
{
	struct itimerspec n, o;
	if (gmem_read(a[2], &n, sizeof(n)))
		return -EFAULT;
	if (timerfd_settime((int)a[0], (int)a[1], &n, &o) < 0)
		return -errno;
	return a[3] && gmem_write(a[3], &o, sizeof(o)) ? -EFAULT : 0;
}
SYS(timerfd_gettime)
{
	struct itimerspec o;
	if (timerfd_gettime((int)a[0], &o) < 0)
		return -errno;
	return gmem_write(a[1], &o, sizeof(o)) ? -EFAULT : 0;
}

SYS(inotify_init)
{
	HOSTR(inotify_init());
}
SYS(inotify_init1)
{
	HOSTR(inotify_init1(oflags_to_host(a[0])));
}
SYS(inotify_add_watch)
{
	char path[4096], lnk[64];
	struct fs_at at;
	GET_PATH(path, a[1]);
	int r = fs_obj(AT_FDCWD, path, !((uint32_t)a[2] & IN_DONT_FOLLOW), &at);
	if (r)
		return r;
	r = inotify_add_watch((int)a[0], obj_path(&at, lnk, sizeof(lnk)), (uint32_t)a[2]);
	r = r < 0 ? -errno : r;
	fs_put(&at);
	return r;
}
SYS(inotify_rm_watch)
{
	HOSTR(inotify_rm_watch((int)a[0], (int)a[1]));
}

/* ---- sockets ---- */

/* A guest sockaddr into host memory; AF_UNIX paths are resolved in the
 * guest's root like any other path. *tmp is an fd to close. */
static long get_sockaddr(uint64_t ga, uint64_t len, struct sockaddr_storage *ss, socklen_t *hl, struct fs_at *at)
{
	at->tmp = -1;
	if (len > sizeof(*ss))
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (gmem_read(ga, ss, len))
		return -EFAULT;
	*hl = (socklen_t)len;
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	if (proc.rootfd < 0 || un->sun_family != AF_UNIX || len <= 2 || !un->sun_path[0])
		return 0;
	char path[sizeof(un->sun_path) + 1];
	memcpy(path, un->sun_path, sizeof(un->sun_path));
	path[len - 2 < sizeof(un->sun_path) ? len - 2 : sizeof(un->sun_path)] = 0;
	int r = fs_at(AT_FDCWD, path, at);
	if (r)
		return r;
	int n = snprintf(un->sun_path, sizeof(un->sun_path), "/proc/self/fd/%d/%s", at->tmp, at->name);
	if (n < 0 || (size_t)n >= sizeof(un->sun_path)) {
		fs_put(at);
		return -ENAMETOOLONG;
	}
	*hl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}

static long put_sockaddr(uint64_t ga, uint64_t glen, const struct sockaddr_storage *ss, socklen_t hl)
{
	uint32_t ul;
	if (!ga)
		return 0;
	if (gmem_read(glen, &ul, 4))
		return -EFAULT;
	if ((int32_t)ul < 0)
		return -EINVAL;
	size_t n = ul < hl ? ul : hl;
	if (gmem_write(ga, ss, n))
		return -EFAULT;
	ul = hl;
	return gmem_write(glen, &ul, 4) ? -EFAULT : 0;
}

SYS(socket)
{
	HOSTR(socket((int)a[0], oflags_to_host(a[1]), (int)a[2]));
}
SYS(socketpair)
{
	int sv[2];
	if (socketpair((int)a[0], oflags_to_host(a[1]), (int)a[2], sv) < 0)
		return -errno;
	if (gmem_write(a[3], sv, sizeof(sv))) {
		close(sv[0]);
		close(sv[1]);
		return -EFAULT;
	}
	return 0;
}

static long do_bind_connect(const uint64_t *a, int conn)
{
	struct sockaddr_storage ss;
	socklen_t hl;
	struct fs_at at;
	long r = get_sockaddr(a[1], a[2], &ss, &hl, &at);
	if (r)
		return r;
	if (conn) {
		r = HOST_SLEEP(SYS_connect, (int)a[0], &ss, hl);
	} else {
		r = bind((int)a[0], (struct sockaddr *)&ss, hl);
		r = r < 0 ? -errno : 0;
	}
	fs_put(&at);
	return r;
}

SYS(bind)
{
	return do_bind_connect(a, 0);
}
SYS(connect)
{
	return do_bind_connect(a, 1);
}
SYS(listen)
{
	HOSTR(listen((int)a[0], (int)a[1]));
}
SYS(shutdown)
{
	HOSTR(shutdown((int)a[0], (int)a[1]));
}

static long do_accept(const uint64_t *a, int flags)
{
	struct sockaddr_storage ss;
	socklen_t hl = sizeof(ss);
	long r = HOST_SLEEP(SYS_accept4, (int)a[0], &ss, &hl, flags);
	if (r < 0)
		return r;
	if (put_sockaddr(a[1], a[2], &ss, hl)) {
		close((int)r);
		return -EFAULT;
	}
	return r;
}

SYS(accept)
{
	return do_accept(a, 0);
}
SYS(accept4)
{
	return do_accept(a, oflags_to_host(a[3]));
}

static long do_sockname(const uint64_t *a, int peer)
{
	struct sockaddr_storage ss;
	socklen_t hl = sizeof(ss);
	long r = peer ? getpeername((int)a[0], (struct sockaddr *)&ss, &hl)
		      : getsockname((int)a[0], (struct sockaddr *)&ss, &hl);
	if (r < 0)
		return -errno;
	return put_sockaddr(a[1], a[2], &ss, hl);
}

SYS(getsockname)
{
	return do_sockname(a, 0);
}
SYS(getpeername)
{
	return do_sockname(a, 1);
}

SYS(setsockopt)
{
	uint8_t buf[1024];
	if (a[4] > sizeof(buf))
		return -EINVAL;
	if (gmem_read(a[3], buf, a[4]))
		return -EFAULT;
	HOSTR(setsockopt((int)a[0], (int)a[1], (int)a[2], buf, (socklen_t)a[4]));
}

SYS(getsockopt)
{
	uint8_t buf[1024];
	uint32_t ul;
	if (gmem_read(a[4], &ul, 4))
		return -EFAULT;
	socklen_t hl = ul > sizeof(buf) ? sizeof(buf) : ul;
	if (getsockopt((int)a[0], (int)a[1], (int)a[2], buf, &hl) < 0)
		return -errno;
	if (gmem_write(a[3], buf, hl))
		return -EFAULT;
	ul = hl;
	return gmem_write(a[4], &ul, 4) ? -EFAULT : 0;
}

/* x86-64 struct msghdr */
struct g_msghdr {
	uint64_t name;
	uint32_t namelen, pad0;
	uint64_t iov, iovlen, control, controllen;
	int32_t flags, pad1;
};

static long do_msg(const uint64_t *gmh, int is_recv, int flags, uint64_t gmsg)
{
	struct g_msghdr g;
	if (gmem_read(gmsg, &g, sizeof(g)))
		return -EFAULT;
	(void)gmh;
	struct sockaddr_storage ss;
	struct fs_at at = {.tmp = -1};
	struct msghdr m;
	memset(&m, 0, sizeof(m));
	long r = 0;
	struct iovec *iov = malloc(MAX_IOV * sizeof(*iov));
	void *ctl = NULL;
	if (!iov)
		return -ENOMEM;
	int n = 0;
	if (g.iovlen) {
		r = guest_iovs(g.iov, g.iovlen, is_recv, iov, &n);
		if (r < 0)
			goto out;
	}
	m.msg_iov = iov;
	m.msg_iovlen = (size_t)n;
	if (g.name) {
		if (is_recv) {
			m.msg_name = &ss;
			m.msg_namelen = sizeof(ss);
		} else {
			socklen_t hl;
			r = get_sockaddr(g.name, g.namelen, &ss, &hl, &at);
			if (r)
				goto out;
			m.msg_name = &ss;
			m.msg_namelen = hl;
		}
	}
	if (g.control && g.controllen) {
		if (g.controllen > 65536) {
			r = -ENOBUFS;
			goto out;
		}
		ctl = calloc(1, g.controllen);
		if (!ctl) {
			r = -ENOMEM;
			goto out;
		}
		if (!is_recv && gmem_read(g.control, ctl, g.controllen)) {
			r = -EFAULT;
			goto out;
		}
		m.msg_control = ctl;
		m.msg_controllen = g.controllen;
	}
	r = HOST_SLEEP(is_recv ? SYS_recvmsg : SYS_sendmsg, (int)gmh[0], &m, flags);
	if (r < 0)
		goto out;
	if (is_recv) {
		iovs_written(g.iov, g.iovlen, r);
		if (g.name) {
			size_t nl = m.msg_namelen < g.namelen ? m.msg_namelen : g.namelen;
			gmem_write(g.name, &ss, nl);
			g.namelen = m.msg_namelen;
		}
		if (ctl) {
			gmem_write(g.control, ctl, m.msg_controllen);
			g.controllen = m.msg_controllen;
		}
		g.flags = m.msg_flags;
		if (gmem_write(gmsg, &g, sizeof(g)))
			r = -EFAULT;
	}
out:
	fs_put(&at);
	free(iov);
	free(ctl);
	return r;
}

SYS(sendmsg)
{
	return do_msg(a, 0, (int)a[2], a[1]);
}
SYS(recvmsg)
{
	return do_msg(a, 1, (int)a[2], a[1]);
}

SYS(sendto)
{
	struct sockaddr_storage ss;
	socklen_t hl = 0;
	struct fs_at at = {.tmp = -1};
	struct iovec iov[64];
	size_t got = 0;
	int n = a[2] ? gmem_iov(a[1], a[2], 0, iov, 64, &got) : 0;
	if (a[2] && !got)
		return -EFAULT;
	if (a[4]) {
		long r = get_sockaddr(a[4], a[5], &ss, &hl, &at);
		if (r)
			return r;
	}
	struct msghdr m = {.msg_name = a[4] ? &ss : NULL, .msg_namelen = hl, .msg_iov = iov, .msg_iovlen = (size_t)n};
	long r = HOST_SLEEP(SYS_sendmsg, (int)a[0], &m, (int)a[3]);
	fs_put(&at);
	return r;
}

SYS(recvfrom)
{
	struct sockaddr_storage ss;
	struct iovec iov[64];
	size_t got = 0;
	int n = a[2] ? gmem_iov(a[1], a[2], 1, iov, 64, &got) : 0;
	if (a[2] && !got)
		return -EFAULT;
	struct msghdr m = {.msg_name = a[4] ? &ss : NULL,
			   .msg_namelen = a[4] ? sizeof(ss) : 0,
			   .msg_iov = iov,
			   .msg_iovlen = (size_t)n};
	long r = HOST_SLEEP(SYS_recvmsg, (int)a[0], &m, (int)a[3]);
	if (r < 0)
		return r;
	gmem_written(a[1], (size_t)r);
	if (a[4] && put_sockaddr(a[4], a[5], &ss, m.msg_namelen))
		return -EFAULT;
	return r;
}

SYS(sendfile)
{
	off_t off;
	CHECK_FD((int)a[1]);
	if (a[2] && gmem_read(a[2], &off, 8))
		return -EFAULT;
	long r = HOST_SLEEP(SYS_sendfile, (int)a[0], (int)a[1], a[2] ? &off : NULL, (size_t)a[3]);
	if (r < 0)
		return r;
	if (a[2] && gmem_write(a[2], &off, 8))
		return -EFAULT;
	return r;
}

SYS(copy_file_range)
{
	off_t oi, oo;
	CHECK_FD((int)a[2]);
	if ((a[1] && gmem_read(a[1], &oi, 8)) || (a[3] && gmem_read(a[3], &oo, 8)))
		return -EFAULT;
	long r = copy_file_range((int)a[0], a[1] ? &oi : NULL, (int)a[2], a[3] ? &oo : NULL, (size_t)a[4],
				 (unsigned)a[5]);
	if (r < 0)
		return -errno;
	if ((a[1] && gmem_write(a[1], &oi, 8)) || (a[3] && gmem_write(a[3], &oo, 8)))
		return -EFAULT;
	return r;
}

/* ---- memory ---- */

SYS(mmap)
{
	if (!((a[3] & 0x20) /* MAP_ANONYMOUS */) && fs_fd_reserved((int)a[4]))
		return -EBADF;
	return mm_mmap(&proc, a[0], a[1], (int)a[2], (int)a[3], (int)a[4], a[5]);
}
SYS(munmap)
{
	return mm_munmap(&proc, a[0], a[1]);
}
SYS(mprotect)
{
	return mm_mprotect(&proc, a[0], a[1], (int)a[2]);
}
SYS(mremap)
{
	return mm_mremap(&proc, a[0], a[1], a[2], (int)a[3], a[4]);
}
SYS(madvise)
{
	return mm_madvise(&proc, a[0], a[1], (int)a[2]);
}
SYS(msync)
{
	return mm_msync(&proc, a[0], a[1], (int)a[2]);
}
SYS(brk)
{
	return mm_brk(&proc, a[0]);
}
SYS(mlock)
{
	return 0;
}

SYS(mincore)
{
	if (a[0] & (GPAGE - 1))
		return -EINVAL;
	if (a[1] > VMEM_LIMIT || a[0] + a[1] > VMEM_LIMIT)
		return -ENOMEM;
	uint64_t n = (a[1] + GPAGE - 1) / GPAGE;
	for (uint64_t k = 0; k < n; k++) {
		unsigned prot;
		if (!vmem_lookup(&proc.vm, a[0] + k * GPAGE, &prot))
			return -ENOMEM;
		uint8_t one = 1;
		if (gmem_write(a[2] + k, &one, 1))
			return -EFAULT;
	}
	return 0;
}

/* ---- processes, threads, time ---- */

SYS(exit)
{
	thr_exit(t, (int)(a[0] & 0xff));
}
SYS(exit_group)
{
	thr_exit_group((int)(a[0] & 0xff));
}
SYS(clone)
{
	return thr_clone(t, a[0], a[1], a[2], a[3], a[4]);
}
SYS(fork)
{
	return thr_clone(t, SIGCHLD, 0, 0, 0, 0);
}
SYS(vfork)
{
	return thr_clone(t, 0x4000 | SIGCHLD, 0, 0, 0, 0);
}
SYS(execve)
{
	return thr_execve(t, AT_FDCWD, a[0], a[1], a[2], 0);
}

SYS(execveat)
{
	return thr_execve(t, (int)a[0], a[1], a[2], a[3], (int)a[4]);
}

SYS(futex)
{
	return thr_futex(t, a);
}
SYS(getpid)
{
	return proc.pid;
}
SYS(gettid)
{
	return t->tid;
}
SYS(getppid)
{
	return getppid();
}
SYS(getuid)
{
	return getuid();
}
SYS(geteuid)
{
	return geteuid();
}
SYS(getgid)
{
	return getgid();
}
SYS(getegid)
{
	return getegid();
}
SYS(getpgrp)
{
	return getpgrp();
}
SYS(getpgid)
{
	HOSTR(getpgid((pid_t)a[0]));
}
SYS(setpgid)
{
	HOSTR(setpgid((pid_t)a[0], (pid_t)a[1]));
}
SYS(getsid)
{
	HOSTR(getsid((pid_t)a[0]));
}
SYS(setsid)
{
	HOSTR(setsid());
}
/* identity changes act on the calling thread only, as the raw syscalls do
 * (the guest's libc broadcasts them to its threads itself) */
SYS(setuid)
{
	HOSTR(syscall(SYS_setuid, a[0]));
}
SYS(setgid)
{
	HOSTR(syscall(SYS_setgid, a[0]));
}
SYS(setreuid)
{
	HOSTR(syscall(SYS_setreuid, a[0], a[1]));
}
SYS(setregid)
{
	HOSTR(syscall(SYS_setregid, a[0], a[1]));
}
SYS(setresuid)
{
	HOSTR(syscall(SYS_setresuid, a[0], a[1], a[2]));
}
SYS(setresgid)
{
	HOSTR(syscall(SYS_setresgid, a[0], a[1], a[2]));
}
SYS(setfsuid)
{
	HOSTR(syscall(SYS_setfsuid, a[0]));
}
SYS(setfsgid)
{
	HOSTR(syscall(SYS_setfsgid, a[0]));
}

static long get_res3(uint64_t *ga, int uid)
{
	unsigned v[3];
	if ((uid ? getresuid(&v[0], &v[1], &v[2]) : getresgid(&v[0], &v[1], &v[2])) < 0)
		return -errno;
	for (int k = 0; k < 3; k++)
		if (gmem_write(ga[k], &v[k], 4))
			return -EFAULT;
	return 0;
}

SYS(getresuid)
{
	return get_res3((uint64_t *)a, 1);
}
SYS(getresgid)
{
	return get_res3((uint64_t *)a, 0);
}

SYS(getgroups)
{
	int n = (int)a[0];
	if (n < 0)
		return -EINVAL;
	if (n > 65536)
		n = 65536;
	gid_t *g = malloc((size_t)(n ? n : 1) * sizeof(gid_t));
	if (!g)
		return -ENOMEM;
	long r = getgroups(n, n ? g : NULL);
	if (r < 0)
		r = -errno;
	else if (n && gmem_write(a[1], g, (size_t)r * sizeof(gid_t)))
		r = -EFAULT;
	free(g);
	return r;
}

SYS(setgroups)
{
	if (a[0] > 65536)
		return -EINVAL;
	gid_t *g = malloc((a[0] ? a[0] : 1) * sizeof(gid_t));
	if (!g)
		return -ENOMEM;
	long r = gmem_read(a[1], g, a[0] * sizeof(gid_t)) ? -EFAULT : syscall(SYS_setgroups, a[0], g);
	if (r == -1)
		r = -errno;
	free(g);
	return r;
}

SYS(umask)
{
	return umask((mode_t)a[0]);
}

SYS(wait4)
{
	int status;
	struct rusage ru;
	long r = HOST_SLEEP(SYS_wait4, (pid_t)a[0], &status, (int)a[2], a[3] ? &ru : NULL);
	if (r < 0)
		return r;
	if (r > 0 && a[1] && gmem_write(a[1], &status, 4))
		return -EFAULT;
	if (r > 0 && a[3] && gmem_write(a[3], &ru, sizeof(ru)))
		return -EFAULT;
	return r;
}

SYS(waitid)
{
	siginfo_t si;
	struct rusage ru;
	memset(&si, 0, sizeof(si));
	long r = HOST_SLEEP(SYS_waitid, (int)a[0], (id_t)a[1], &si, (int)a[3], a[4] ? &ru : NULL);
	if (r < 0)
		return r;
	if (a[2] && gmem_write(a[2], &si, sizeof(si)))
		return -EFAULT;
	if (a[4] && gmem_write(a[4], &ru, sizeof(ru)))
		return -EFAULT;
	return r;
}

SYS(uname)
{
	struct utsname u;
	if (uname(&u) < 0)
		return -errno;
	snprintf(u.machine, sizeof(u.machine), "x86_64");
	_Static_assert(sizeof(u) == 6 * 65, "struct utsname");
	return gmem_write(a[0], &u, sizeof(u)) ? -EFAULT : 0;
}

SYS(sethostname)
{
	return -EPERM;
}

SYS(getrlimit)
{
	struct rlimit r;
	if (getrlimit((int)a[0], &r) < 0)
		return -errno;
	return gmem_write(a[1], &r, sizeof(r)) ? -EFAULT : 0;
}

SYS(setrlimit)
{
	struct rlimit r;
	if (gmem_read(a[1], &r, sizeof(r)))
		return -EFAULT;
	HOSTR(setrlimit((int)a[0], &r));
}

SYS(prlimit64)
{
	struct rlimit n, o;
	if (a[2] && gmem_read(a[2], &n, sizeof(n)))
		return -EFAULT;
	pid_t pid = (pid_t)a[0];
	if (pid == proc.pid)
		pid = 0;
	if (prlimit(pid, (int)a[1], a[2] ? &n : NULL, a[3] ? &o : NULL) < 0)
		return -errno;
	return a[3] && gmem_write(a[3], &o, sizeof(o)) ? -EFAULT : 0;
}

SYS(getrusage)
{
	struct rusage ru;
	if (getrusage((int)a[0], &ru) < 0)
		return -errno;
	return gmem_write(a[1], &ru, sizeof(ru)) ? -EFAULT : 0;
}

SYS(sysinfo)
{
	struct sysinfo si;
	if (sysinfo(&si) < 0)
		return -errno;
	return gmem_write(a[0], &si, sizeof(si)) ? -EFAULT : 0;
}

SYS(times)
{
	struct tms tm;
	clock_t r = times(&tm);
	if (a[0] && gmem_write(a[0], &tm, sizeof(tm)))
		return -EFAULT;
	return (long)r;
}

SYS(clock_gettime)
{
	struct timespec ts;
	if (clock_gettime((clockid_t)a[0], &ts) < 0)
		return -errno;
	return gmem_write(a[1], &ts, sizeof(ts)) ? -EFAULT : 0;
}

SYS(clock_getres)
{
	struct timespec ts;
	if (clock_getres((clockid_t)a[0], &ts) < 0)
		return -errno;
	return a[1] && gmem_write(a[1], &ts, sizeof(ts)) ? -EFAULT : 0;
}

SYS(gettimeofday)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	if (a[0] && gmem_write(a[0], &tv, sizeof(tv)))
		return -EFAULT;
	if (a[1]) {
		int32_t tz[2] = {0, 0};
		if (gmem_write(a[1], tz, sizeof(tz)))
			return -EFAULT;
	}
	return 0;
}

SYS(time)
{
	int64_t now = (int64_t)time(NULL);
	if (a[0] && gmem_write(a[0], &now, 8))
		return -EFAULT;
	return now;
}

SYS(nanosleep)
{
	struct timespec req, rem;
	if (gmem_read(a[0], &req, sizeof(req)))
		return -EFAULT;
	long r = HOST_SLEEP(SYS_nanosleep, &req, &rem);
	if (r == -EINTR && a[1])
		gmem_write(a[1], &rem, sizeof(rem));
	return r;
}

SYS(clock_nanosleep)
{
	struct timespec req, rem;
	if (gmem_read(a[2], &req, sizeof(req)))
		return -EFAULT;
	long r = HOST_SLEEP(SYS_clock_nanosleep, (clockid_t)a[0], (int)a[1], &req, &rem);
	if (r == -EINTR && a[3] && !(a[1] & TIMER_ABSTIME))
		gmem_write(a[3], &rem, sizeof(rem));
	return r;
}

SYS(getitimer)
{
	struct itimerval v;
	if (getitimer((int)a[0], &v) < 0)
		return -errno;
	return gmem_write(a[1], &v, sizeof(v)) ? -EFAULT : 0;
}

SYS(setitimer)
{
	struct itimerval n, o;
	if (a[1] && gmem_read(a[1], &n, sizeof(n)))
		return -EFAULT;
	if (!a[1])
		memset(&n, 0, sizeof(n));
	if (setitimer((int)a[0], &n, &o) < 0)
		return -errno;
	return a[2] && gmem_write(a[2], &o, sizeof(o)) ? -EFAULT : 0;
}

SYS(alarm)
{
	return alarm((unsigned)a[0]);
}

SYS(timer_create)
{
	struct sigevent ev;
	_Static_assert(sizeof(struct sigevent) == 64, "struct sigevent");
	int id;
	if (a[1] && gmem_read(a[1], &ev, sizeof(ev)))
		return -EFAULT;
	if (syscall(SYS_timer_create, (clockid_t)a[0], a[1] ? &ev : NULL, &id) < 0)
		return -errno;
	return gmem_write(a[2], &id, 4) ? -EFAULT : 0;
}

SYS(timer_settime)
{
	struct itimerspec n, o;
	if (gmem_read(a[2], &n, sizeof(n)))
		return -EFAULT;
	if (syscall(SYS_timer_settime, (int)a[0], (int)a[1], &n, &o) < 0)
		return -errno;
	return a[3] && gmem_write(a[3], &o, sizeof(o)) ? -EFAULT : 0;
}

SYS(timer_gettime)
{
	struct itimerspec o;
	if (syscall(SYS_timer_gettime, (int)a[0], &o) < 0)
		return -errno;
	return gmem_write(a[1], &o, sizeof(o)) ? -EFAULT : 0;
}

SYS(timer_getoverrun)
{
	HOSTR(syscall(SYS_timer_getoverrun, (int)a[0]));
}
SYS(timer_delete)
{
	HOSTR(syscall(SYS_timer_delete, (int)a[0]));
}

SYS(sched_yield)
{
	return sched_yield();
}
SYS(sched_getaffinity)
{
	uint8_t m[1024];
	size_t n = a[1] > sizeof(m) ? sizeof(m) : a[1];
	pid_t pid = (pid_t)a[0] == proc.pid ? 0 : (pid_t)a[0];
	long r = syscall(SYS_sched_getaffinity, pid, n, m);
	if (r < 0)
		return -errno;
	return gmem_write(a[2], m, (size_t)r) ? -EFAULT : r;
}
SYS(sched_setaffinity)
{
	uint8_t m[1024];
	size_t n = a[1] > sizeof(m) ? sizeof(m) : a[1];
	if (gmem_read(a[2], m, n))
		return -EFAULT;
	HOSTR(syscall(SYS_sched_setaffinity, (pid_t)a[0], n, m));
}
SYS(sched_getscheduler)
{
	HOSTR(sched_getscheduler((pid_t)a[0]));
}
SYS(sched_getparam)
{
	struct sched_param sp;
	if (sched_getparam((pid_t)a[0], &sp) < 0)
		return -errno;
	return gmem_write(a[1], &sp, sizeof(sp)) ? -EFAULT : 0;
}
SYS(sched_setscheduler)
{
	struct sched_param sp;
	if (gmem_read(a[2], &sp, sizeof(sp)))
		return -EFAULT;
	HOSTR(sched_setscheduler((pid_t)a[0], (int)a[1], &sp));
}
SYS(sched_get_priority_max)
{
	HOSTR(sched_get_priority_max((int)a[0]));
}
SYS(sched_get_priority_min)
{
	HOSTR(sched_get_priority_min((int)a[0]));
}
SYS(getpriority)
{
	HOSTR(syscall(SYS_getpriority, (int)a[0], (id_t)a[1]));
}
SYS(setpriority)
{
	HOSTR(setpriority((int)a[0], (id_t)a[1], (int)a[2]));
}
SYS(getcpu)
{
	unsigned c, n;
	if (syscall(SYS_getcpu, &c, &n, NULL) < 0)
		return -errno;
	if ((a[0] && gmem_write(a[0], &c, 4)) || (a[1] && gmem_write(a[1], &n, 4)))
		return -EFAULT;
	return 0;
}

SYS(personality)
{
	return a[0] == 0xffffffff || a[0] == 0 ? 0 : -EINVAL;
}

SYS(prctl)
{
	char name[16];
	int v;
	switch ((int)a[0]) {
	case 15: /* PR_SET_NAME */
		if (vmem_read_str(&proc.vm, a[1], name, sizeof(name)) == -EFAULT)
			return -EFAULT;
		name[15] = 0;
		HOSTR(prctl(15, name));
	case 16: /* PR_GET_NAME */
		if (prctl(16, name) < 0)
			return -errno;
		return gmem_write(a[1], name, 16) ? -EFAULT : 0;
	case 1:	 /* PR_SET_PDEATHSIG */
	case 4:	 /* PR_SET_DUMPABLE */
	case 36: /* PR_SET_CHILD_SUBREAPER */
	case 38: /* PR_SET_NO_NEW_PRIVS */ HOSTR(prctl((int)a[0], a[1], 0, 0, 0));
	case 3:	 /* PR_GET_DUMPABLE */
	case 39: /* PR_GET_NO_NEW_PRIVS */
	case 23: /* PR_CAPBSET_READ */ HOSTR(prctl((int)a[0], a[1], 0, 0, 0));
	case 2:	 /* PR_GET_PDEATHSIG */
	case 37: /* PR_GET_CHILD_SUBREAPER */
		if (prctl((int)a[0], &v, 0, 0, 0) < 0)
			return -errno;
		return gmem_write(a[1], &v, 4) ? -EFAULT : 0;
	default: return -EINVAL;
	}
}

SYS(arch_prctl)
{
	switch (a[0]) {
	case 0x1001: /* ARCH_SET_GS */
	case 0x1002: /* ARCH_SET_FS */
		if (a[1] >= VMEM_LIMIT && a[1] < ~(VMEM_LIMIT - 1))
			return -EPERM;
		t->cpu.s.seg[a[0] == 0x1002 ? SEG_FS : SEG_GS].base = a[1];
		return 0;
	case 0x1003: /* ARCH_GET_FS */
	case 0x1004: /* ARCH_GET_GS */ {
		uint64_t v = t->cpu.s.seg[a[0] == 0x1003 ? SEG_FS : SEG_GS].base;
		return gmem_write(a[1], &v, 8) ? -EFAULT : 0;
	}
	default: return -EINVAL;
	}
}

SYS(set_tid_address)
{
	t->clear_child_tid = a[0];
	return t->tid;
}

SYS(set_robust_list)
{
	if (a[1] != 24)
		return -EINVAL;
	t->robust_list = a[0];
	t->robust_len = a[1];
	return 0;
}

SYS(get_robust_list)
{
	struct gthread *o = a[0] ? thr_find((int)a[0]) : t;
	if (!o)
		return -ESRCH;
	uint64_t len = 24;
	if (gmem_write(a[1], &o->robust_list, 8) || gmem_write(a[2], &len, 8))
		return -EFAULT;
	return 0;
}

SYS(getrandom)
{
	size_t n = a[1] > BOUNCE_MAX ? BOUNCE_MAX : a[1];
	uint8_t *b = malloc(n ? n : 1);
	if (!b)
		return -ENOMEM;
	long r = getrandom(b, n, (unsigned)a[2]);
	if (r < 0)
		r = -errno;
	else if (gmem_write(a[0], b, (size_t)r))
		r = -EFAULT;
	free(b);
	return r;
}

SYS(memfd_create)
{
	char name[256];
	GET_PATH(name, a[0]);
	HOSTR(memfd_create(name, (unsigned)a[1]));
}

SYS(membarrier)
{
	HOSTR(syscall(SYS_membarrier, (int)a[0], (unsigned)a[1], (int)a[2]));
}
SYS(pidfd_open)
{
	HOSTR(syscall(SYS_pidfd_open, (pid_t)a[0], (unsigned)a[1]));
}
SYS(sig)
{
	return sig_syscall(t, a[6], a);
}
SYS(eperm)
{
	return -EPERM;
}
SYS(enosys)
{
	return -ENOSYS;
}
SYS(restart_syscall)
{
	return -EINTR;
}

struct sysent {
	const char *name;
	long (*fn)(struct gthread *t, const uint64_t *a);
	int flags;
	int nargs;
};

#define E(nr, n, f, na) [nr] = {#n, sys_##n, f, na}
#define ES(nr, n, f, na) [nr] = {#n, sys_sig, f, na}

static const struct sysent sys_table[] = {
	E(0, read, SF_RESTART | SF_FD0, 3),
	E(1, write, SF_RESTART | SF_FD0, 3),
	E(2, open, SF_RESTART, 3),
	E(3, close, SF_FD0, 1),
	E(4, stat, 0, 2),
	E(5, fstat, SF_FD0, 2),
	E(6, lstat, 0, 2),
	E(7, poll, SF_RESTART_NOHAND, 3),
	E(8, lseek, SF_FD0, 3),
	E(9, mmap, 0, 6),
	E(10, mprotect, 0, 3),
	E(11, munmap, 0, 2),
	E(12, brk, 0, 1),
	ES(13, rt_sigaction, 0, 4),
	ES(14, rt_sigprocmask, 0, 4),
	ES(15, rt_sigreturn, SF_NORET, 0),
	E(16, ioctl, SF_RESTART | SF_FD0, 3),
	E(17, pread64, SF_RESTART | SF_FD0, 4),
	E(18, pwrite64, SF_RESTART | SF_FD0, 4),
	E(19, readv, SF_RESTART | SF_FD0, 3),
	E(20, writev, SF_RESTART | SF_FD0, 3),
	E(21, access, 0, 2),
	E(22, pipe, 0, 1),
	E(23, select, SF_RESTART_NOHAND, 5),
	E(24, sched_yield, 0, 0),
	E(25, mremap, 0, 5),
	E(26, msync, 0, 3),
	E(27, mincore, 0, 3),
	E(28, madvise, 0, 3),
	E(32, dup, SF_FD0, 1),
	E(33, dup2, SF_FD0, 2),
	ES(34, pause, 0, 0),
	E(35, nanosleep, SF_RESTART_NOHAND, 2),
	E(36, getitimer, 0, 2),
	E(37, alarm, 0, 1),
	E(38, setitimer, 0, 3),
	E(39, getpid, 0, 0),
	E(40, sendfile, SF_RESTART | SF_FD0, 4),
	E(41, socket, 0, 3),
	E(42, connect, SF_FD0, 3),
	E(43, accept, SF_RESTART | SF_FD0, 3),
	E(44, sendto, SF_RESTART | SF_FD0, 6),
	E(45, recvfrom, SF_RESTART | SF_FD0, 6),
	E(46, sendmsg, SF_RESTART | SF_FD0, 3),
	E(47, recvmsg, SF_RESTART | SF_FD0, 3),
	E(48, shutdown, SF_FD0, 2),
	E(49, bind, SF_FD0, 3),
	E(50, listen, SF_FD0, 2),
	E(51, getsockname, SF_FD0, 3),
	E(52, getpeername, SF_FD0, 3),
	E(53, socketpair, 0, 4),
	E(54, setsockopt, SF_FD0, 5),
	E(55, getsockopt, SF_FD0, 5),
	E(56, clone, 0, 5),
	E(57, fork, 0, 0),
	E(58, vfork, 0, 0),
	E(59, execve, 0, 3),
	E(60, exit, 0, 1),
	E(61, wait4, SF_RESTART, 4),
	ES(62, kill, 0, 2),
	E(63, uname, 0, 1),
	E(72, fcntl, SF_RESTART | SF_FD0, 3),
	E(73, flock, SF_RESTART | SF_FD0, 2),
	E(74, fsync, SF_FD0, 1),
	E(75, fdatasync, SF_FD0, 1),
	E(76, truncate, 0, 2),
	E(77, ftruncate, SF_FD0, 2),
	E(78, enosys, 0, 3), /* getdents: glibc uses getdents64 */
	E(79, getcwd, 0, 2),
	E(80, chdir, 0, 1),
	E(81, fchdir, SF_FD0, 1),
	E(82, rename, 0, 2),
	E(83, mkdir, 0, 2),
	E(84, rmdir, 0, 1),
	E(85, creat, 0, 2),
	E(86, link, 0, 2),
	E(87, unlink, 0, 1),
	E(88, symlink, 0, 2),
	E(89, readlink, 0, 3),
	E(90, chmod, 0, 2),
	E(91, fchmod, SF_FD0, 2),
	E(92, chown, 0, 3),
	E(93, fchown, SF_FD0, 3),
	E(94, lchown, 0, 3),
	E(95, umask, 0, 1),
	E(96, gettimeofday, 0, 2),
	E(97, getrlimit, 0, 2),
	E(98, getrusage, 0, 2),
	E(99, sysinfo, 0, 1),
	E(100, times, 0, 1),
	E(101, eperm, 0, 4), /* ptrace */
	E(102, getuid, 0, 0),
	E(103, eperm, 0, 3), /* syslog */
	E(104, getgid, 0, 0),
	E(105, setuid, 0, 1),
	E(106, setgid, 0, 1),
	E(107, geteuid, 0, 0),
	E(108, getegid, 0, 0),
	E(109, setpgid, 0, 2),
	E(110, getppid, 0, 0),
	E(111, getpgrp, 0, 0),
	E(112, setsid, 0, 0),
	E(113, setreuid, 0, 2),
	E(114, setregid, 0, 2),
	E(115, getgroups, 0, 2),
	E(116, setgroups, 0, 2),
	E(117, setresuid, 0, 3),
	E(118, getresuid, 0, 3),
	E(119, setresgid, 0, 3),
	E(120, getresgid, 0, 3),
	E(121, getpgid, 0, 1),
	E(122, setfsuid, 0, 1),
	E(123, setfsgid, 0, 1),
	E(124, getsid, 0, 1),
	ES(127, rt_sigpending, 0, 2),
	ES(128, rt_sigtimedwait, 0, 4),
	ES(129, rt_sigqueueinfo, 0, 3),
	ES(130, rt_sigsuspend, 0, 2),
	ES(131, sigaltstack, 0, 2),
	E(132, utime, 0, 2),
	E(133, mknod, 0, 3),
	E(135, personality, 0, 1),
	E(137, statfs, 0, 2),
	E(138, fstatfs, SF_FD0, 2),
	E(140, getpriority, 0, 2),
	E(141, setpriority, 0, 3),
	E(143, sched_getparam, 0, 2),
	E(144, sched_setscheduler, 0, 3),
	E(145, sched_getscheduler, 0, 1),
	E(146, sched_get_priority_max, 0, 1),
	E(147, sched_get_priority_min, 0, 1),
	E(149, mlock, 0, 2),
	E(150, mlock, 0, 2), /* munlock */
	E(151, mlock, 0, 1), /* mlockall */
	E(152, mlock, 0, 0), /* munlockall */
	E(157, prctl, 0, 5),
	E(158, arch_prctl, 0, 2),
	E(160, setrlimit, 0, 2),
	E(161, eperm, 0, 1), /* chroot */
	E(162, sync, 0, 0),
	E(165, eperm, 0, 5), /* mount */
	E(166, eperm, 0, 2), /* umount2 */
	E(170, sethostname, 0, 2),
	E(186, gettid, 0, 0),
	E(187, readahead, SF_FD0, 3),
	E(188, xattr_unsupported, 0, 5),      /* setxattr */
	E(189, xattr_unsupported, 0, 5),      /* lsetxattr */
	E(190, xattr_unsupported, SF_FD0, 5), /* fsetxattr */
	E(191, getxattr, 0, 4),
	E(192, lgetxattr, 0, 4),
	E(193, fgetxattr, SF_FD0, 4),
	E(194, listxattr, 0, 3),
	E(195, llistxattr, 0, 3),
	E(196, flistxattr, SF_FD0, 3),
	E(197, xattr_unsupported, 0, 2),      /* removexattr */
	E(198, xattr_unsupported, 0, 2),      /* lremovexattr */
	E(199, xattr_unsupported, SF_FD0, 2), /* fremovexattr */
	ES(200, tkill, 0, 2),
	E(201, time, 0, 1),
	E(202, futex, SF_RESTART, 6),
	E(203, sched_setaffinity, 0, 3),
	E(204, sched_getaffinity, 0, 3),
	E(213, epoll_create, 0, 1),
	E(217, getdents64, SF_FD0, 3),
	E(218, set_tid_address, 0, 1),
	E(219, restart_syscall, 0, 0),
	E(221, fadvise64, SF_FD0, 4),
	E(222, timer_create, 0, 3),
	E(223, timer_settime, 0, 4),
	E(224, timer_gettime, 0, 2),
	E(225, timer_getoverrun, 0, 1),
	E(226, timer_delete, 0, 1),
	E(228, clock_gettime, 0, 2),
	E(229, clock_getres, 0, 2),
	E(230, clock_nanosleep, SF_RESTART_NOHAND, 4),
	E(231, exit_group, 0, 1),
	E(232, epoll_wait, SF_RESTART_NOHAND | SF_FD0, 4),
	E(233, epoll_ctl, SF_FD0, 4),
	ES(234, tgkill, 0, 3),
	E(235, utimes, 0, 2),
	E(247, waitid, SF_RESTART, 5),
	E(253, inotify_init, 0, 0),
	E(254, inotify_add_watch, SF_FD0, 3),
	E(255, inotify_rm_watch, SF_FD0, 2),
	E(257, openat, SF_RESTART, 4),
	E(258, mkdirat, 0, 3),
	E(259, mknodat, 0, 4),
	E(260, fchownat, 0, 5),
	E(261, futimesat, 0, 3),
	E(262, newfstatat, 0, 4),
	E(263, unlinkat, 0, 3),
	E(264, renameat, 0, 4),
	E(265, linkat, 0, 5),
	E(266, symlinkat, 0, 3),
	E(267, readlinkat, 0, 4),
	E(268, fchmodat, 0, 3),
	E(269, faccessat, 0, 3),
	E(270, pselect6, SF_RESTART_NOHAND, 6),
	E(271, ppoll, SF_RESTART_NOHAND, 5),
	E(272, eperm, 0, 1), /* unshare */
	E(273, set_robust_list, 0, 2),
	E(274, get_robust_list, 0, 3),
	E(280, utimensat, 0, 4),
	E(281, epoll_pwait, SF_RESTART_NOHAND | SF_FD0, 6),
	ES(282, signalfd, 0, 3),
	E(283, timerfd_create, 0, 2),
	E(284, eventfd, 0, 1),
	E(285, fallocate, SF_FD0, 4),
	E(286, timerfd_settime, SF_FD0, 4),
	E(287, timerfd_gettime, SF_FD0, 2),
	E(288, accept4, SF_RESTART | SF_FD0, 4),
	ES(289, signalfd4, 0, 4),
	E(290, eventfd2, 0, 2),
	E(291, epoll_create1, 0, 1),
	E(292, dup3, SF_FD0, 3),
	E(293, pipe2, 0, 2),
	E(294, inotify_init1, 0, 1),
	E(295, preadv, SF_RESTART | SF_FD0, 5),
	E(296, pwritev, SF_RESTART | SF_FD0, 5),
	ES(297, rt_tgsigqueueinfo, 0, 4),
	E(302, prlimit64, 0, 4),
	E(306, syncfs, SF_FD0, 1),
	E(309, getcpu, 0, 3),
	E(316, renameat2, 0, 5),
	E(318, getrandom, SF_RESTART, 3),
	E(319, memfd_create, 0, 2),
	E(322, execveat, 0, 5),
	E(324, membarrier, 0, 3),
	E(325, mlock, 0, 3), /* mlock2 */
	E(326, copy_file_range, SF_FD0, 6),
	E(327, preadv2, SF_RESTART | SF_FD0, 6),
	E(328, pwritev2, SF_RESTART | SF_FD0, 6),
	E(332, statx, 0, 5),
	E(334, enosys, 0, 4), /* rseq: glibc copes without it */
	E(435, enosys, 0, 2), /* clone3: glibc falls back to clone */
	E(434, pidfd_open, 0, 2),
	E(436, close_range, 0, 3),
	E(437, openat2, SF_RESTART, 4),
	E(439, faccessat2, 0, 4),
	E(441, epoll_pwait2, SF_RESTART_NOHAND | SF_FD0, 6),
};

#define NSYS (sizeof(sys_table) / sizeof(sys_table[0]))

/* For the trace: which argument of a syscall is a path worth showing. */
static int trace_path_arg(uint64_t nr)
{
	switch (nr) {
	case 2:
	case 4:
	case 6:
	case 21:
	case 59:
	case 76:
	case 80:
	case 82:
	case 83:
	case 84:
	case 85:
	case 86:
	case 87:
	case 88:
	case 89:
	case 90:
	case 92:
	case 94:
	case 132:
	case 133:
	case 137:
	case 191:
	case 192:
	case 194:
	case 195:
	case 235: return 0;
	case 257:
	case 258:
	case 259:
	case 260:
	case 261:
	case 262:
	case 263:
	case 264:
	case 265:
	case 267:
	case 268:
	case 269:
	case 280:
	case 316:
	case 332:
	case 437:
	case 439: return 1;
	case 266: /* symlinkat(target, dirfd, path) */ return 2;
	default: return -1;
	}
}

void sys_dispatch(struct gthread *t)
{
	struct cpu *c = &t->cpu;
	uint64_t nr = c->s.gpr[R_RAX];
	uint64_t a[7] = {
		c->s.gpr[R_RDI], c->s.gpr[R_RSI], c->s.gpr[R_RDX], c->s.gpr[R_R10], c->s.gpr[R_R8], c->s.gpr[R_R9], nr};
	const struct sysent *e = nr < NSYS && sys_table[nr].fn ? &sys_table[nr] : NULL;
	long r;
	t->restart = 0;
	if (proc.opts.trace && (nr == 60 || nr == 231))
		sys_trace("[%d] %s(0x%llx) = ?\n", t->tid, nr == 60 ? "exit" : "exit_group", (unsigned long long)a[0]);
	if (!e) {
		r = -ENOSYS;
	} else if ((e->flags & SF_FD0) && fs_fd_reserved((int)a[0])) {
		r = -EBADF;
	} else if ((e->flags & (SF_RESTART | SF_RESTART_NOHAND)) && sig_pending_now(t)) {
		/* a signal came in since the last check: take it before the
		 * syscall, which is made again after it */
		r = -SIGWIN_ERESTART;
	} else {
		r = e->fn(t, a);
	}
	if (proc.opts.trace) {
		char args[320];
		int n = 0, na = e ? e->nargs : 6;
		args[0] = 0;
		int pa = trace_path_arg(nr);
		for (int k = 0; k < na && n < (int)sizeof(args) - 24; k++) {
			char str[96];
			if (k == pa && a[k] && vmem_read_str(&proc.vm, a[k], str, sizeof(str)) >= 0)
				n += snprintf(args + n, sizeof(args) - (size_t)n, "%s\"%s\"", k ? ", " : "", str);
			else
				n += snprintf(args + n, sizeof(args) - (size_t)n, "%s0x%llx", k ? ", " : "",
					      (unsigned long long)a[k]);
		}
		if (e)
			sys_trace("[%d] %s(%s) = %ld\n", t->tid, e->name, args, r);
		else
			sys_trace("[%d] syscall_%llu(%s) = %ld (not implemented)\n", t->tid, (unsigned long long)nr,
				  args, r);
	}
	if (e && (e->flags & SF_NORET))
		return;
	if (r == -SIGWIN_ERESTART) {
		/* the host syscall was not made: as if the signal had come just
		 * before the guest's syscall instruction */
		t->restart = 3;
		t->restart_nr = nr;
	} else if (r == -EINTR && e && (e->flags & (SF_RESTART | SF_RESTART_NOHAND))) {
		t->restart = (e->flags & SF_RESTART) ? 1 : 2;
		t->restart_nr = nr;
	}
	c->s.gpr[R_RAX] = (uint64_t)r;
}
