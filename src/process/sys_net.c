/* Socket syscalls: sockaddr conversion (AF_UNIX paths resolved in the guest's
 * root), socket, bind/connect/accept, socket options, sendmsg/recvmsg. */
#include <errno.h>
#include <fcntl.h>
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
	HOSTR(socket((int)a[0], sys_oflags_to_host(a[1]), (int)a[2]));
}
SYS(socketpair)
{
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
