/* Syscalls on open descriptors: the read/write families and the guest's
 * iovecs, close, lseek, sync, dup, pipe, fcntl, ioctl and fd-to-fd copies. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "process/internal.h"
#include "process/sys.h"

/* ---- reads and writes: guest buffers and iovecs ---- */

/* Host iovecs for the guest's iovec array. */
long sys_guest_iovs(uint64_t giov, uint64_t cnt, int write, struct iovec *iov, int *niov)
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

void sys_iovs_written(const uint64_t giov, uint64_t cnt, long done)
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
	long r = sys_guest_iovs(a[1], a[2], is_read, iov, &n);
	if (r <= 0)
		goto out;
	r = host_rwv((int)a[0], iov, n, is_read, (int64_t)a[3], use_off, flags);
	if (r > 0 && is_read)
		sys_iovs_written(a[1], a[2], r);
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

SYS(lseek)
{
	HOSTR(lseek((int)a[0], (off_t)a[1], (int)a[2]));
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

/* ---- dup, pipe, fcntl, ioctl ---- */

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
	HOSTR(dup3((int)a[0], (int)a[1], sys_oflags_to_host(a[2])));
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
	return do_pipe(a[0], sys_oflags_to_host(a[1]));
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
		return r < 0 ? -errno : sys_oflags_to_guest(r);
	}
	case F_SETFL: HOSTR(fcntl(fd, F_SETFL, sys_oflags_to_host(a[2])));
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
		/* a group or session as the program knows it (after a restore) */
		if (ioctl(fd, req, &iv) < 0)
			return -errno;
		iv = pid_to_guest(iv);
		return gmem_write(a[2], &iv, 4) ? -EFAULT : 0;
	case 0x5410: /* TIOCSPGRP */
		if (gmem_read(a[2], &iv, 4))
			return -EFAULT;
		iv = pid_to_host(iv);
		HOSTR(ioctl(fd, req, &iv));
	case 0x541b: /* FIONREAD */
	case 0x5411: /* TIOCOUTQ */
	case 0x5430: /* TIOCGPTN (unsigned) */
		if (ioctl(fd, req, &iv) < 0)
			return -errno;
		return gmem_write(a[2], &iv, 4) ? -EFAULT : 0;
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

SYS(memfd_create)
{
	char name[256];
	GET_PATH(name, a[0]);
	HOSTR(memfd_create(name, (unsigned)a[1]));
}
