/* Syscalls of processes and threads: exit, clone, execve, futex, ids, wait,
 * limits, usage, scheduling, priorities, prctl and the host as uname shows it. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/times.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process/internal.h"
#include "process/sys.h"

/* ---- processes, threads, ids, limits, scheduling ---- */

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
	return pid_to_guest(proc.pid);
}
SYS(gettid)
{
	return pid_to_guest(t->tid);
}
SYS(getppid)
{
	return pid_to_guest(getppid());
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
/* process groups and sessions are named by ids as the program knows them
 * (a restored program's, pidmap.c) */
SYS(getpgrp)
{
	return pid_to_guest(getpgrp());
}
SYS(getpgid)
{
	pid_t r = getpgid(pid_to_host((int)a[0]));
	return r < 0 ? -errno : pid_to_guest(r);
}
SYS(setpgid)
{
	HOSTR(setpgid(pid_to_host((int)a[0]), pid_to_host((int)a[1])));
}
SYS(getsid)
{
	pid_t r = getsid(pid_to_host((int)a[0]));
	return r < 0 ? -errno : pid_to_guest(r);
}
SYS(setsid)
{
	pid_t r = setsid();
	return r < 0 ? -errno : pid_to_guest(r);
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
	long r = HOST_SLEEP(SYS_wait4, pid_arg_to_host((int)a[0]), &status, (int)a[2], a[3] ? &ru : NULL);
	if (r < 0)
		return r;
	r = pid_to_guest((int)r);
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
	/* P_PID, P_PGID: a pid as the program knows it */
	id_t id = (int)a[0] == P_PID || (int)a[0] == P_PGID ? (id_t)pid_to_host((int)a[1]) : (id_t)a[1];
	long r = HOST_SLEEP(SYS_waitid, (int)a[0], id, &si, (int)a[3], a[4] ? &ru : NULL);
	if (r < 0)
		return r;
	si.si_pid = pid_to_guest(si.si_pid);
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
		if (gmem_read_str(a[1], name, sizeof(name)) == -EFAULT)
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
	return pid_to_guest(t->tid);
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

SYS(membarrier)
{
	HOSTR(syscall(SYS_membarrier, (int)a[0], (unsigned)a[1], (int)a[2]));
}
SYS(pidfd_open)
{
	HOSTR(syscall(SYS_pidfd_open, (pid_t)a[0], (unsigned)a[1]));
}
