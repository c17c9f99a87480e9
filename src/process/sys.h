/* The syscall layer's own contract between its files: the handler signature,
 * the few helpers that more than one sys_*.c file uses, and every handler
 * that the table in syscall.c names (grouped by the file that holds it). */
#ifndef CORRAL_PROCESS_SYS_H
#define CORRAL_PROCESS_SYS_H

#include <errno.h>
#include <stdint.h>

#include "process/internal.h"

#define MAX_IOV 1024	      /* iovec entries per call, as Linux's UIO_MAXIOV */
#define BOUNCE_MAX (1u << 20) /* cap on a host bounce buffer per call */

/* A host syscall that may sleep, made through sig_host_syscall so that a
 * guest signal arriving just before it cannot leave the thread asleep:
 * HOST_SLEEP(SYS_read, fd, buf, n) gives the raw result (-errno on failure,
 * -SIGWIN_ERESTART if a signal came first, which sys_dispatch turns into a
 * restart after the signal). */
#define HOST_SLEEP_(nr, a1, a2, a3, a4, a5, a6, ...)                                                                   \
	sig_host_syscall((nr), (long)(a1), (long)(a2), (long)(a3), (long)(a4), (long)(a5), (long)(a6))
#define HOST_SLEEP(...) HOST_SLEEP_(__VA_ARGS__, 0, 0, 0, 0, 0, 0, 0)

/* Defines (or declares) the handler of syscall name. */
#define SYS(name) long sys_##name(struct gthread *t __attribute__((unused)), const uint64_t *a __attribute__((unused)))
/* Return a libc call's result, or -errno when it failed. */
#define HOSTR(expr)                                                                                                    \
	do {                                                                                                           \
		long r_ = (long)(expr);                                                                                \
		return r_ < 0 ? -errno : r_;                                                                           \
	} while (0)
/* Copy the guest string at ga into the array buf, or return -errno. */
#define GET_PATH(buf, ga)                                                                                              \
	do {                                                                                                           \
		long l_ = gmem_read_str((ga), (buf), sizeof(buf));                                                     \
		if (l_ < 0)                                                                                            \
			return l_;                                                                                     \
	} while (0)
/* Return -EBADF if fd is one of corral's own descriptors. */
#define CHECK_FD(fd)                                                                                                   \
	do {                                                                                                           \
		if (fs_fd_reserved(fd))                                                                                \
			return -EBADF;                                                                                 \
	} while (0)

/* ---- helpers shared between the sys_*.c files ---- */

/* sys_file.c: guest (x86-64) open flags as the host's. */
int sys_oflags_to_host(uint64_t g);
/* sys_file.c: host open flags (fcntl F_GETFL) as the guest's. */
long sys_oflags_to_guest(long h);
/* sys_fd.c: host iovecs for the guest's iovec array: bytes covered or -errno. */
long sys_guest_iovs(uint64_t giov, uint64_t cnt, int write, struct iovec *iov, int *niov);
/* sys_fd.c: the host wrote done bytes into the guest's iovec array. */
void sys_iovs_written(const uint64_t giov, uint64_t cnt, long done);

/* ---- the handlers: sys_NAME(t, a) for Linux syscall NAME, a[0..5] its
 * arguments and a[6] its number; the result or -errno. ---- */
/* clang-format off */
/* sys_file.c */
SYS(open); SYS(openat); SYS(creat); SYS(openat2); SYS(stat); SYS(lstat); SYS(newfstatat); SYS(fstat); SYS(statx);
SYS(access); SYS(faccessat); SYS(faccessat2); SYS(readlink); SYS(readlinkat); SYS(mkdir); SYS(mkdirat); SYS(mknod);
SYS(mknodat); SYS(unlink); SYS(rmdir); SYS(unlinkat); SYS(rename); SYS(renameat); SYS(renameat2); SYS(link);
SYS(linkat); SYS(symlink); SYS(symlinkat); SYS(chmod); SYS(fchmodat); SYS(fchmod); SYS(chown); SYS(lchown);
SYS(fchownat); SYS(fchown); SYS(utimensat); SYS(utimes); SYS(futimesat); SYS(utime); SYS(truncate); SYS(getcwd);
SYS(chdir); SYS(fchdir); SYS(statfs); SYS(fstatfs); SYS(getxattr); SYS(lgetxattr); SYS(listxattr); SYS(llistxattr);
SYS(fgetxattr); SYS(flistxattr); SYS(xattr_unsupported); SYS(inotify_init); SYS(inotify_init1);
SYS(inotify_add_watch); SYS(inotify_rm_watch);
/* sys_fd.c */
SYS(read); SYS(write); SYS(pread64); SYS(pwrite64); SYS(readv); SYS(writev); SYS(preadv); SYS(pwritev);
SYS(preadv2); SYS(pwritev2); SYS(close); SYS(close_range); SYS(lseek); SYS(ftruncate); SYS(fsync); SYS(fdatasync);
SYS(sync); SYS(syncfs); SYS(flock); SYS(fallocate); SYS(fadvise64); SYS(readahead); SYS(getdents64); SYS(dup);
SYS(dup2); SYS(dup3); SYS(pipe); SYS(pipe2); SYS(fcntl); SYS(ioctl); SYS(sendfile); SYS(copy_file_range);
SYS(memfd_create);
/* sys_poll.c */
SYS(poll); SYS(ppoll); SYS(select); SYS(pselect6); SYS(epoll_create); SYS(epoll_create1); SYS(epoll_ctl);
SYS(epoll_wait); SYS(epoll_pwait); SYS(epoll_pwait2); SYS(eventfd); SYS(eventfd2); SYS(timerfd_create);
SYS(timerfd_settime); SYS(timerfd_gettime);
/* sys_net.c */
SYS(socket); SYS(socketpair); SYS(bind); SYS(connect); SYS(listen); SYS(shutdown); SYS(accept); SYS(accept4);
SYS(getsockname); SYS(getpeername); SYS(setsockopt); SYS(getsockopt); SYS(sendmsg); SYS(recvmsg); SYS(sendto);
SYS(recvfrom);
/* sys_mm.c */
SYS(mmap); SYS(munmap); SYS(mprotect); SYS(mremap); SYS(madvise); SYS(msync); SYS(brk); SYS(mlock); SYS(mincore);
/* sys_proc.c */
SYS(exit); SYS(exit_group); SYS(clone); SYS(fork); SYS(vfork); SYS(execve); SYS(execveat); SYS(futex); SYS(getpid);
SYS(gettid); SYS(getppid); SYS(getuid); SYS(geteuid); SYS(getgid); SYS(getegid); SYS(getpgrp); SYS(getpgid);
SYS(setpgid); SYS(getsid); SYS(setsid); SYS(setuid); SYS(setgid); SYS(setreuid); SYS(setregid); SYS(setresuid);
SYS(setresgid); SYS(setfsuid); SYS(setfsgid); SYS(getresuid); SYS(getresgid); SYS(getgroups); SYS(setgroups);
SYS(umask); SYS(wait4); SYS(waitid); SYS(uname); SYS(sethostname); SYS(getrlimit); SYS(setrlimit); SYS(prlimit64);
SYS(getrusage); SYS(sysinfo); SYS(times); SYS(sched_yield); SYS(sched_getaffinity); SYS(sched_setaffinity);
SYS(sched_getscheduler); SYS(sched_getparam); SYS(sched_setscheduler); SYS(sched_get_priority_max);
SYS(sched_get_priority_min); SYS(getpriority); SYS(setpriority); SYS(getcpu); SYS(personality); SYS(prctl);
SYS(arch_prctl); SYS(set_tid_address); SYS(set_robust_list); SYS(get_robust_list); SYS(getrandom); SYS(membarrier);
SYS(pidfd_open);
/* sys_time.c */
SYS(clock_gettime); SYS(clock_getres); SYS(gettimeofday); SYS(time); SYS(nanosleep); SYS(clock_nanosleep);
SYS(getitimer); SYS(setitimer); SYS(alarm); SYS(timer_create); SYS(timer_settime); SYS(timer_gettime);
SYS(timer_getoverrun); SYS(timer_delete);
/* clang-format on */

#endif
