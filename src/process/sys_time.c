/* Syscalls of clocks, sleeps and timers: clock_gettime, nanosleep, itimers,
 * alarm and POSIX timers. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "process/internal.h"
#include "process/sys.h"

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
