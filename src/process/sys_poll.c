/* Syscalls that wait on descriptors: select, poll and epoll with their
 * temporary signal masks, and the eventfd and timerfd they wait on. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>

#include "process/internal.h"
#include "process/sys.h"

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
	HOSTR(epoll_create1((int)sys_oflags_to_host(a[0])));
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
	HOSTR(eventfd((unsigned)a[0], sys_oflags_to_host(a[1])));
}
SYS(timerfd_create)
{
	HOSTR(timerfd_create((int)a[0], sys_oflags_to_host(a[1])));
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
