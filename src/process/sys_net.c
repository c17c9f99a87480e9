/* Socket syscalls: sockaddr conversion (AF_UNIX paths resolved in the guest's
 * root), socket, bind/connect/accept, socket options, sendmsg/recvmsg. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "process/internal.h"
#include "process/sys.h"

/* ---- sockets ---- */

static int unix_chroot_ok(void);

/* A guest sockaddr into host memory; AF_UNIX paths are resolved in the
 * guest's root like any other path. Where corral may chroot (always in the
 * sandbox; with --no-sandbox when it has CAP_SYS_CHROOT) the path stays as
 * the guest gave it and *chrooted is set: the call goes through unix_call.
 * Otherwise it becomes /proc/self/fd/N/NAME, N a directory found inside
 * the root, and *tmp is that fd, to close (the socket's name then shows
 * that path). */
static long get_sockaddr(uint64_t ga, uint64_t len, struct sockaddr_storage *ss, socklen_t *hl, struct fs_at *at,
			 int *chrooted)
{
	at->tmp = -1;
	*chrooted = 0;
	if (len > sizeof(*ss))
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (gmem_read(ga, ss, len))
		return -EFAULT;
	*hl = (socklen_t)len;
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	if (proc.rootfd < 0 || un->sun_family != AF_UNIX || len <= 2 || !un->sun_path[0])
		return 0;
	if (proc.opts.sandbox || unix_chroot_ok()) {
		*chrooted = 1;
		return 0;
	}
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

/* A socket call that names a unix socket path, in the sandbox: made by a
 * thread of its own whose root is the guest's (chroot; its file system
 * context is its own) and whose working directory is the caller's. The
 * kernel then resolves the path, symlinks and ".." included, inside the
 * guest's root, and keeps the guest's own path as the socket's name, so
 * getsockname, getpeername and accept show what the guest named. */
struct unix_call {
	long nr;
	int fd, flags, cwd;
	const struct sockaddr *sa;
	socklen_t len;
	struct msghdr *m;
	long r;
};

static void *unix_call_thread(void *arg)
{
	struct unix_call *u = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	if (unshare(CLONE_FS) < 0 || fchdir(proc.rootfd) < 0 || chroot(".") < 0 || fchdir(u->cwd) < 0) {
		u->r = -errno;
		return NULL;
	}
	long r = 0;
	if (!u->nr)
		r = 0; /* a probe: could it chroot? */
	else if (u->nr == SYS_bind)
		r = bind(u->fd, u->sa, u->len);
	else if (u->nr == SYS_connect)
		r = connect(u->fd, u->sa, u->len);
	else
		r = sendmsg(u->fd, u->m, u->flags);
	u->r = r < 0 ? -errno : r;
	return NULL;
}

static long unix_call(struct unix_call *u)
{
	u->cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (u->cwd < 0)
		return -errno;
	pthread_t th;
	u->r = -EAGAIN;
	if (pthread_create(&th, NULL, unix_call_thread, u) == 0)
		pthread_join(th, NULL);
	close(u->cwd);
	return u->r;
}

/* May unix_call chroot here? Asked once. */
static int unix_chroot_ok(void)
{
	static int ok = -1;
	if (ok < 0) {
		struct unix_call u = {0};
		ok = unix_call(&u) == 0;
	}
	return ok;
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

/* The sandbox's sockets: unix, IPv4 and IPv6, none raw (netlink, packet
 * and raw sockets see or reach what the guest must not); the seccomp filter
 * says the same a second time. */
static long sandbox_socket_check(uint64_t domain, uint64_t type)
{
	if (!proc.opts.sandbox)
		return 0;
	if (domain != AF_UNIX && domain != AF_INET && domain != AF_INET6)
		return -EAFNOSUPPORT;
	if ((type & 0xf) == SOCK_RAW || (type & 0xf) == SOCK_PACKET)
		return -EPERM;
	return 0;
}

SYS(socket)
{
	long r = sandbox_socket_check(a[0], a[1]);
	if (r)
		return r;
	HOSTR(socket((int)a[0], sys_oflags_to_host(a[1]), (int)a[2]));
}
SYS(socketpair)
{
	long r = sandbox_socket_check(a[0], a[1]);
	if (r)
		return r;
	int sv[2];
	if (socketpair((int)a[0], sys_oflags_to_host(a[1]), (int)a[2], sv) < 0)
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
	int chrooted;
	long r = get_sockaddr(a[1], a[2], &ss, &hl, &at, &chrooted);
	if (r)
		return r;
	if (chrooted) {
		struct unix_call u = {
			.nr = conn ? SYS_connect : SYS_bind, .fd = (int)a[0], .sa = (struct sockaddr *)&ss, .len = hl};
		return unix_call(&u);
	}
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
	return do_accept(a, sys_oflags_to_host(a[3]));
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
	int chrooted = 0;
	struct msghdr m;
	memset(&m, 0, sizeof(m));
	long r = 0;
	struct iovec *iov = malloc(MAX_IOV * sizeof(*iov));
	void *ctl = NULL;
	if (!iov)
		return -ENOMEM;
	int n = 0;
	if (g.iovlen) {
		r = sys_guest_iovs(g.iov, g.iovlen, is_recv, iov, &n);
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
			r = get_sockaddr(g.name, g.namelen, &ss, &hl, &at, &chrooted);
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
	if (chrooted) {
		struct unix_call u = {.nr = SYS_sendmsg, .fd = (int)gmh[0], .m = &m, .flags = flags};
		r = unix_call(&u);
	} else {
		r = HOST_SLEEP(is_recv ? SYS_recvmsg : SYS_sendmsg, (int)gmh[0], &m, flags);
	}
	if (r < 0)
		goto out;
	if (is_recv) {
		sys_iovs_written(g.iov, g.iovlen, r);
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
	int chrooted = 0;
	if (a[4]) {
		long r = get_sockaddr(a[4], a[5], &ss, &hl, &at, &chrooted);
		if (r)
			return r;
	}
	struct msghdr m = {.msg_name = a[4] ? &ss : NULL, .msg_namelen = hl, .msg_iov = iov, .msg_iovlen = (size_t)n};
	long r;
	if (chrooted) {
		struct unix_call u = {.nr = SYS_sendmsg, .fd = (int)a[0], .m = &m, .flags = (int)a[3]};
		r = unix_call(&u);
	} else {
		r = HOST_SLEEP(SYS_sendmsg, (int)a[0], &m, (int)a[3]);
	}
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
