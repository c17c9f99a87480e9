/* Linux x86-64 system calls of a process VM, translated to the host's:
 * numbers through one table, structures whose layout is x86-64's copied
 * field by field, and every guest pointer checked through vmem. This file
 * holds the table, the dispatcher and tracing; the handlers live in sys_*.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "process/internal.h"
#include "process/sys.h"

#define SF_RESTART 1 /* restart after a signal with SA_RESTART (or no handler) */
#define SF_FD0 2     /* a[0] is an fd: corral's own are off limits */
#define SF_NORET 4   /* leaves RAX alone (rt_sigreturn) */
#define SF_RESTART_NOHAND                                                                                              \
	8 /* restart only if no handler ran (Linux's                                                                   \
	   * ERESTARTNOHAND: sleeps and waits with timeouts) */

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

static SYS(sig)
{
	return sig_syscall(t, a[6], a);
}
static SYS(eperm)
{
	return -EPERM;
}
static SYS(enosys)
{
	return -ENOSYS;
}
static SYS(restart_syscall)
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
			if (k == pa && a[k] && gmem_read_str(a[k], str, sizeof(str)) >= 0)
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
