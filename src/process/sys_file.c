/* Syscalls on paths and the files they name: open, stat, access, readlink,
 * mkdir, mknod, unlink, rename, link, symlink, chmod/chown, utimes, truncate,
 * the cwd, statfs, xattrs and inotify watches, all resolved through fs.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "process/internal.h"
#include "process/sys.h"

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

int sys_oflags_to_host(uint64_t g)
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

long sys_oflags_to_guest(long h)
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

/* ---- files ---- */

static long do_openat(int dirfd, uint64_t gpath, uint64_t flags, uint64_t mode)
{
	char path[4096];
	GET_PATH(path, gpath);
	return fs_openat(dirfd, path, sys_oflags_to_host(flags), (int)mode);
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
	/* The sandbox has no device nodes (the kernel would refuse too: the
	 * user namespace has no CAP_MKNOD). */
	if (proc.opts.sandbox && (S_ISCHR((mode_t)mode) || S_ISBLK((mode_t)mode)))
		return -EPERM;
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

SYS(inotify_init)
{
	HOSTR(inotify_init());
}
SYS(inotify_init1)
{
	HOSTR(inotify_init1(sys_oflags_to_host(a[0])));
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
