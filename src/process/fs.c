/* The guest's view of the file system: --root confinement (every path is
 * resolved by the host kernel with openat2(RESOLVE_IN_ROOT), so no "..",
 * absolute or relative symlink leaves the root), the /proc/self files that
 * describe the guest rather than corral, and corral's reserved fds. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "process/internal.h"

#define RESOLVE_GUEST (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

static long host_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve)
{
	struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
	long r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	return r < 0 ? -errno : r;
}

/* Move an internal fd out of the guest's way and remember it. */
int fs_reserve_fd(struct proc *p, int fd)
{
	struct rlimit rl;
	int low = 100;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 32)
		low = (int)rl.rlim_cur - 1 - PROC_MAX_RSV_FD;
	/* a huge limit would make the host grow the fd table to match */
	if (low > 1019 || low < 0)
		low = 1019;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, low);
	if (n < 0)
		return fd;
	close(fd);
	for (int k = 0; k < PROC_MAX_RSV_FD; k++) {
		if (p->rsv_fd[k] < 0) {
			p->rsv_fd[k] = n;
			break;
		}
	}
	return n;
}

bool fs_fd_reserved(long fd)
{
	for (int k = 0; k < PROC_MAX_RSV_FD; k++)
		if (proc.rsv_fd[k] >= 0 && proc.rsv_fd[k] == fd)
			return true;
	return false;
}

int fs_init(struct proc *p)
{
	p->rootfd = -1;
	p->vfork_fd = -1;
	for (int k = 0; k < PROC_MAX_RSV_FD; k++)
		p->rsv_fd[k] = -1;
	int tfd = fcntl(2, F_DUPFD_CLOEXEC, 3);
	p->tracefd = tfd >= 0 ? fs_reserve_fd(p, tfd) : 2;
	if (!p->opts.root)
		return 0;
	char *rp = realpath(p->opts.root, NULL);
	if (!rp)
		return -errno;
	int fd = open(rp, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		free(rp);
		return e;
	}
	/* Probe openat2: without it confinement cannot be guaranteed. */
	long t = host_openat2(fd, "/", O_PATH | O_CLOEXEC, 0, RESOLVE_GUEST);
	if (t < 0) {
		close(fd);
		free(rp);
		return t == -ENOSYS ? -ENOSYS : (int)t;
	}
	close((int)t);
	p->rootfd = fs_reserve_fd(p, fd);
	p->rootpath = rp;
	p->rootlen = strlen(rp);
	if (p->rootlen == 1) /* --root / */
		p->rootlen = 0;
	/* Start in the root, as chroot(1) does. */
	char cwd[4096], g[4096];
	if (!getcwd(cwd, sizeof(cwd)) || fs_guest_path(cwd, g, sizeof(g)))
		if (fchdir(p->rootfd) < 0)
			return -errno;
	return 0;
}

int fs_guest_path(const char *host, char *out, size_t n)
{
	const char *rest = host;
	if (proc.rootfd >= 0 && proc.rootlen) {
		if (strncmp(host, proc.rootpath, proc.rootlen))
			return -EACCES;
		rest = host + proc.rootlen;
		if (*rest && *rest != '/')
			return -EACCES;
		if (!*rest)
			rest = "/";
	}
	if (strlen(rest) >= n)
		return -ENAMETOOLONG;
	strcpy(out, rest);
	return 0;
}

/* Root mode: the absolute guest path for (dirfd, path). */
static int abs_path(int dirfd, const char *path, char *out, size_t n)
{
	if (path[0] == '/') {
		if (strlen(path) >= n)
			return -ENAMETOOLONG;
		strcpy(out, path);
		return 0;
	}
	char host[4096], base[4096];
	if (dirfd == AT_FDCWD) {
		if (!getcwd(host, sizeof(host)))
			return -errno;
	} else {
		struct stat st;
		char lnk[64];
		if (fs_fd_reserved(dirfd) || fstat(dirfd, &st) < 0)
			return -EBADF;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
		snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", dirfd);
		ssize_t l = readlink(lnk, host, sizeof(host) - 1);
		if (l < 0)
			return -errno;
		host[l] = 0;
	}
	int r = fs_guest_path(host, base, sizeof(base));
	if (r)
		return r;
	size_t bl = strlen(base);
	if (bl + 1 + strlen(path) + 1 > n)
		return -ENAMETOOLONG;
	memcpy(out, base, bl);
	if (base[bl - 1] != '/')
		out[bl++] = '/';
	strcpy(out + bl, path);
	return 0;
}

/* Open without the sandbox's device rules: inside --root, or as given. */
static int open_plain(int dirfd, const char *path, int flags, int mode)
{
	if (proc.rootfd < 0) {
		int fd = openat(dirfd, path, flags, mode);
		return fd < 0 ? -errno : fd;
	}
	if (!path[0])
		return -ENOENT;
	char abs[4096];
	int r = abs_path(dirfd, path, abs, sizeof(abs));
	if (r)
		return r;
	uint64_t m = (flags & (O_CREAT | O_TMPFILE)) ? (uint64_t)(mode & 07777) : 0;
	/* openat2 refuses unknown flag bits that openat ignores */
	uint64_t valid = O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC |
			 FASYNC | O_DIRECT | O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_PATH |
			 O_TMPFILE;
	return (int)host_openat2(proc.rootfd, abs, (uint64_t)(unsigned)flags & valid, m, RESOLVE_GUEST);
}

/* ---- The sandbox's devices ----
 * The guest's /dev holds null, zero, full, random, urandom, tty, ptmx and
 * pts (the sandbox's own devpts instance), served from the host's /dev
 * whatever the root has there; no other device node opens, wherever it
 * is. */
static bool dev_allowed(dev_t rdev)
{
	unsigned ma = major(rdev), mi = minor(rdev);
	if (ma == 1)
		return mi == 3 || mi == 5 || mi == 7 || mi == 8 || mi == 9;
	if (ma == 5)
		return mi == 0 || mi == 2;
	return ma >= 136 && ma <= 143; /* pseudo-terminal slaves */
}

/* The lexically normalized form of an absolute guest path ("." and ".."
 * removed, slashes collapsed). */
static int normalize(const char *in, char *out, size_t n)
{
	size_t len = 0;
	const char *p = in;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t cl = e ? (size_t)(e - p) : strlen(p);
		if (cl == 0)
			break;
		if (cl == 1 && p[0] == '.') {
		} else if (cl == 2 && p[0] == '.' && p[1] == '.') {
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
		} else {
			if (len + 1 + cl + 1 > n)
				return -ENAMETOOLONG;
			out[len++] = '/';
			memcpy(out + len, p, cl);
			len += cl;
		}
		p += cl;
	}
	if (!len)
		out[len++] = '/';
	out[len] = 0;
	return 0;
}

/* The host path that serves guest path g in the sandbox's /dev, or NULL. */
static const char *dev_path(const char *g, char *buf, size_t n)
{
	static const char *const names[] = {"null", "zero", "full", "random", "urandom", "tty", "ptmx"};
	if (strncmp(g, "/dev/", 5))
		return NULL;
	const char *rest = g + 5;
	for (unsigned k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (!strcmp(rest, names[k]))
			return g;
	if (!strncmp(rest, "pts/", 4) && rest[4] && !strchr(rest + 4, '/'))
		return g;
	if (!strcmp(rest, "stdin") || !strcmp(rest, "stdout") || !strcmp(rest, "stderr")) {
		snprintf(buf, n, "/proc/self/fd/%d", rest[3] == 'i' ? 0 : rest[3] == 'o' ? 1 : 2);
		return buf;
	}
	if (!strncmp(rest, "fd/", 3) && rest[3]) {
		/* a descriptor number and nothing after it; never one of
		 * corral's own (this path is opened as the host's) */
		char *end;
		long fd = strtol(rest + 3, &end, 10);
		if (*end || rest[3] < '0' || rest[3] > '9' || fd < 0 || fd > INT32_MAX || fs_fd_reserved(fd))
			return NULL;
		snprintf(buf, n, "/proc/self/fd/%ld", fd);
		return buf;
	}
	return NULL;
}

/* Open in the sandbox: /dev from the host's, and anything else through an
 * O_PATH descriptor first, so that a device node is refused before it is
 * opened (opening some devices has effects of its own). */
static int open_sandboxed(int dirfd, const char *path, int flags, int mode)
{
	char abs[4096], norm[4096], buf[4200];
	if (path[0] == '/' || proc.rootfd >= 0) {
		int r = path[0] == '/' ? 0 : abs_path(dirfd, path, abs, sizeof(abs));
		if (!r && !normalize(path[0] == '/' ? path : abs, norm, sizeof(norm))) {
			const char *host = dev_path(norm, buf, sizeof(buf));
			if (host) {
				int sp = fs_proc_special(host, flags, NULL, 0);
				if (sp != FS_NOT_SPECIAL)
					return sp;
				int fd = open(host, flags & ~(O_CREAT | O_EXCL | O_TMPFILE), 0);
				return fd < 0 ? -errno : fd;
			}
		}
	}
	if ((flags & O_PATH) || (flags & O_TMPFILE) == O_TMPFILE || ((flags & O_CREAT) && (flags & O_EXCL)))
		return open_plain(dirfd, path, flags, mode); /* opens no existing device */
	for (int tries = 0; tries < 8; tries++) {
		int o = open_plain(dirfd, path, O_PATH | O_CLOEXEC | (flags & (O_NOFOLLOW | O_DIRECTORY)), 0);
		if (o == -ENOENT && (flags & O_CREAT)) {
			int fd = open_plain(dirfd, path, flags | O_EXCL, mode);
			if (fd != -EEXIST)
				return fd;
			continue; /* someone made it meanwhile: look again */
		}
		if (o < 0)
			return o;
		struct stat st;
		if (fstat(o, &st) < 0) {
			int e = -errno;
			close(o);
			return e;
		}
		if ((S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) && !dev_allowed(st.st_rdev)) {
			close(o);
			return -EACCES; /* as on a file system mounted nodev */
		}
		char lnk[64];
		snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", o);
		int fd = open(lnk, flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW), 0);
		int e = fd < 0 ? -errno : fd;
		close(o);
		return e;
	}
	return -EAGAIN;
}

/* A process's memory file in procfs (/proc/PID/mem, task/TID/mem, by any
 * path): for a corral process it is corral's own memory, host addresses
 * and all, so a guest never opens one (promise 1 of the threat model). */
static bool proc_mem_file(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC)
		return false;
	char lnk[64], path[4096];
	snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(lnk, path, sizeof(path) - 1);
	if (n < 0)
		return true; /* cannot tell: refuse */
	path[n] = 0;
	const char *base = strrchr(path, '/');
	return base && !strcmp(base + 1, "mem");
}

/* A pid at *s (digits, then '/' or the end) as the host knows it: *s moves
 * past it; -1 when there is none. */
static long pid_at(const char **s)
{
	if (**s < '1' || **s > '9')
		return -1;
	char *end;
	long pid = strtol(*s, &end, 10);
	if ((*end && *end != '/') || pid <= 0 || pid > INT32_MAX)
		return -1;
	*s = end;
	return pid_to_host((int)pid);
}

/* /proc/<pid>/... and /proc/<pid or self>/task/<tid>/... with ids as a
 * restored program knows them: the host's path of that process or thread
 * (out), or false when there is nothing to change. */
static bool proc_pid_path(const char *in, char *out, size_t n)
{
	if (!pidmap || strncmp(in, "/proc/", 6))
		return false;
	const char *s = in + 6;
	char who[24];
	long pid = pid_at(&s);
	if (pid > 0) {
		snprintf(who, sizeof(who), "%ld", pid);
	} else if (!strncmp(s, "self", 4) && (s[4] == '/' || !s[4])) {
		strcpy(who, "self");
		s += 4;
	} else {
		return false;
	}
	const char *t = s;
	long tid = -1;
	if (!strncmp(t, "/task/", 6)) {
		t += 6;
		tid = pid_at(&t);
	}
	int l = tid > 0 ? snprintf(out, n, "/proc/%s/task/%ld%s", who, tid, t) : snprintf(out, n, "/proc/%s%s", who, s);
	return l > 0 && (size_t)l < n && strcmp(in, out);
}

/* n bytes of src at *o, as many as fit before oend */
static void put_bytes(char **o, const char *oend, const char *src, size_t n)
{
	if (n > (size_t)(oend - *o))
		n = (size_t)(oend - *o);
	memcpy(*o, src, n);
	*o += n;
}

/* A number at *s (after blanks): in place of a host pid, the id the
 * program knows, written at *o; false when there is none. */
static bool put_guest_id(const char **s, char **o, const char *oend)
{
	const char *b = *s;
	while (**s == ' ' || **s == '\t')
		(*s)++;
	put_bytes(o, oend, b, (size_t)(*s - b));
	if (**s != '-' && (**s < '0' || **s > '9'))
		return false;
	char *end;
	long v = strtol(*s, &end, 10);
	if (end == *s)
		return false;
	char num[24];
	int w = snprintf(num, sizeof(num), "%ld", v > 0 && v <= INT32_MAX ? (long)pid_to_guest((int)v) : v);
	put_bytes(o, oend, num, (size_t)w);
	*s = end;
	return true;
}

static int memfd_with(const char *name, const void *data, size_t len);

/* /proc/<a process>/[task/<tid>/]stat or status of a restored program:
 * the host's text with the ids the program knows (its own, its parent's,
 * its group's and session's), as a memfd; FS_NOT_SPECIAL for other
 * files. */
static int proc_ids_file(const char *path, int flags)
{
	if (!pidmap || proc.rootfd >= 0 || strncmp(path, "/proc/", 6) || (flags & O_ACCMODE) != O_RDONLY ||
	    (flags & (O_PATH | O_DIRECTORY)))
		return FS_NOT_SPECIAL;
	const char *base = strrchr(path, '/');
	bool stat = !strcmp(base, "/stat");
	if (!stat && strcmp(base, "/status"))
		return FS_NOT_SPECIAL;
	/* /proc/X/stat or /proc/X/task/Y/stat, X a pid, self or thread-self
	 * (not /proc/stat, nor /proc/net/stat) */
	const char *x = path + 6, *xend = strchr(x, '/');
	if (!xend)
		return FS_NOT_SPECIAL;
	size_t xl = (size_t)(xend - x);
	bool pid = xl > 0 && strspn(x, "0123456789") == xl;
	if (!pid && !(xl == 4 && !strncmp(x, "self", 4)) && !(xl == 11 && !strncmp(x, "thread-self", 11)))
		return FS_NOT_SPECIAL;
	if (xend != base && (strncmp(xend, "/task/", 6) ||
			     strspn(xend + 6, "0123456789") != (size_t)(base - xend - 6) || base == xend + 6))
		return FS_NOT_SPECIAL;
	/* through the same gate as any other open (the sandbox's rules) */
	int fd = proc.opts.sandbox ? open_sandboxed(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0)
				   : open_plain(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	char in[8192], out[8192 + 512];
	ssize_t n = read(fd, in, sizeof(in) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	in[n] = 0;
	const char *s = in;
	char *o = out;
	const char *oend = out + sizeof(out);
	if (stat) {
		/* pid (comm) state ppid pgrp session tty_nr tpgid ...: the
		 * command may hold anything, it ends at the last ')' */
		const char *rp = strrchr(in, ')');
		if (!rp || strncmp(rp, ") ", 2) || !rp[2])
			return memfd_with("stat", in, (size_t)n);
		put_guest_id(&s, &o, oend);
		if (s > rp)
			return memfd_with("stat", in, (size_t)n);
		put_bytes(&o, oend, s, (size_t)(rp + 3 - s)); /* " (comm) S" */
		s = rp + 3;
		for (int k = 0; k < 5; k++) {
			if (k == 3) { /* tty_nr */
				const char *b = s;
				while (*s == ' ')
					s++;
				while (*s && *s != ' ')
					s++;
				put_bytes(&o, oend, b, (size_t)(s - b));
			} else if (!put_guest_id(&s, &o, oend)) {
				break;
			}
		}
	} else {
		static const char *const ids[] = {
			"Tgid:", "Pid:", "PPid:", "TracerPid:", "NStgid:", "NSpid:", "NSpgid:", "NSsid:"};
		while (*s) {
			const char *eol = strchr(s, '\n');
			eol = eol ? eol + 1 : s + strlen(s);
			for (unsigned k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
				size_t l = strlen(ids[k]);
				if (!strncmp(s, ids[k], l)) {
					put_bytes(&o, oend, s, l);
					s += l;
					while (put_guest_id(&s, &o, oend))
						;
					break;
				}
			}
			put_bytes(&o, oend, s, (size_t)(eol - s));
			s = eol;
		}
	}
	put_bytes(&o, oend, s, strlen(s));
	return memfd_with(stat ? "stat" : "status", out, (size_t)(o - out));
}

int fs_openat(int dirfd, const char *path, int flags, int mode)
{
	if (dirfd != AT_FDCWD && fs_fd_reserved(dirfd))
		return -EBADF;
	int sp = fs_proc_special(path, flags, NULL, 0);
	if (sp != FS_NOT_SPECIAL)
		return sp;
	char hp[4096 + 64];
	if (proc.rootfd < 0 && proc_pid_path(path, hp, sizeof(hp)))
		path = hp;
	if ((sp = proc_ids_file(path, flags)) != FS_NOT_SPECIAL) {
		if (sp >= 0 && !(flags & O_CLOEXEC))
			fcntl(sp, F_SETFD, 0);
		return sp;
	}
	int fd = proc.opts.sandbox ? open_sandboxed(dirfd, path, flags, mode) : open_plain(dirfd, path, flags, mode);
	if (fd >= 0 && proc_mem_file(fd)) {
		close(fd);
		return -EACCES;
	}
	return fd;
}

void fs_put(struct fs_at *a)
{
	if (a->tmp >= 0)
		close(a->tmp);
	a->tmp = -1;
}

int fs_obj(int dirfd, const char *path, int follow, struct fs_at *a)
{
	a->tmp = -1;
	a->dirfd = dirfd;
	a->name = path;
	if (proc.rootfd < 0 && proc_pid_path(path, a->buf, sizeof(a->buf)))
		a->name = path = a->buf;
	if (dirfd != AT_FDCWD && fs_fd_reserved(dirfd))
		return -EBADF;
	if (proc.rootfd < 0 || !path[0])
		return 0;
	char abs[4096];
	int r = abs_path(dirfd, path, abs, sizeof(abs));
	if (r)
		return r;
	long fd = host_openat2(proc.rootfd, abs, O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW), 0, RESOLVE_GUEST);
	if (fd < 0)
		return (int)fd;
	a->tmp = (int)fd;
	a->dirfd = (int)fd;
	a->name = "";
	return 0;
}

int fs_at(int dirfd, const char *path, struct fs_at *a)
{
	a->tmp = -1;
	a->dirfd = dirfd;
	a->name = path;
	if (proc.rootfd < 0 && proc_pid_path(path, a->buf, sizeof(a->buf)))
		a->name = path = a->buf;
	if (dirfd != AT_FDCWD && fs_fd_reserved(dirfd))
		return -EBADF;
	if (proc.rootfd < 0)
		return 0;
	if (!path[0])
		return -ENOENT;
	int r = abs_path(dirfd, path, a->buf, sizeof(a->buf));
	if (r)
		return r;
	/* split off the last component (trailing slashes dropped) */
	char *s = a->buf;
	size_t l = strlen(s);
	while (l > 1 && s[l - 1] == '/')
		s[--l] = 0;
	char *slash = strrchr(s, '/');
	char *last = slash + 1;
	if (!*last || !strcmp(last, ".") || !strcmp(last, "..")) {
		/* The object is a directory reached by the whole path: name it
		 * "." inside itself, which cannot lead anywhere else. */
		long fd = host_openat2(proc.rootfd, s, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_GUEST);
		if (fd < 0)
			return (int)fd;
		a->tmp = a->dirfd = (int)fd;
		a->name = ".";
		return 0;
	}
	const char *parent = s;
	if (slash == s)
		parent = "/";
	else
		*slash = 0;
	long fd = host_openat2(proc.rootfd, parent, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_GUEST);
	if (fd < 0)
		return (int)fd;
	a->tmp = a->dirfd = (int)fd;
	a->name = last;
	return 0;
}

/* ---- /proc/self ---- */

/* Which file under /proc/<self>/ path names, or NULL. */
static const char *proc_self_file(const char *path)
{
	if (strncmp(path, "/proc/", 6))
		return NULL;
	const char *s = path + 6;
	if (!strncmp(s, "self/", 5)) {
		s += 5;
	} else if (!strncmp(s, "thread-self/", 12)) {
		s += 12;
	} else {
		char *end;
		long pid = strtol(s, &end, 10);
		if (end == s || *end != '/' || pid <= 0 || pid > INT32_MAX)
			return NULL;
		pid = pid_to_host((int)pid);
		if (pid != proc.pid && !thr_find((int)pid))
			return NULL;
		s = end + 1;
	}
	return s;
}

static int memfd_with(const char *name, const void *data, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, (const char *)data + done, len - done);
		if (w <= 0) {
			close(fd);
			return -EIO;
		}
		done += (size_t)w;
	}
	lseek(fd, 0, SEEK_SET);
	/* the guest asked for an fd without close-on-exec unless it said so */
	return fd;
}

int fs_proc_special(const char *path, int flags, char *link, size_t linkn)
{
	const char *f = proc_self_file(path);
	if (!f)
		return FS_NOT_SPECIAL;
	if (link) {
		if (strcmp(f, "exe"))
			return FS_NOT_SPECIAL;
		size_t l = strlen(proc.exe_path);
		if (l > linkn)
			l = linkn;
		memcpy(link, proc.exe_path, l);
		return (int)l;
	}
	int fd;
	if (!strcmp(f, "exe")) {
		return fs_openat(AT_FDCWD, proc.exe_path, flags, 0);
	} else if (!strcmp(f, "maps")) {
		size_t len;
		char *t = mm_maps_text(&proc, &len);
		if (!t)
			return -ENOMEM;
		fd = memfd_with("maps", t, len);
		free(t);
	} else if (!strcmp(f, "auxv")) {
		fd = memfd_with("auxv", proc.auxv, (size_t)proc.auxv_n * 8);
	} else {
		return FS_NOT_SPECIAL;
	}
	if (fd >= 0 && !(flags & O_CLOEXEC))
		fcntl(fd, F_SETFD, 0);
	return fd;
}
