/* The jail of a VM process (jail.h): namespaces and a root holding only the
 * VM's files, before any thread starts; then an unprivileged uid without
 * capabilities, no_new_privs and a seccomp allow-list, before guest code. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon/jail.h"

#define JAIL_ROOT "/tmp" /* a mount point every system has; hidden by the new root's tmpfs */

static int mkdir_under(const char *root, const char *path)
{
	char p[PATH_MAX];
	if ((size_t)snprintf(p, sizeof(p), "%s%s", root, path) >= sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + strlen(root) + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return 0;
}

/* Binds the host's path (opened as fd before the new root hid it) at the
 * same path under root: a file or a directory. */
static int bind_in(const char *root, const char *path, int fd, int readonly, char *err, size_t len)
{
	char dst[PATH_MAX], src[64];
	struct stat st;
	int r;
	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, len, "jail: '%s': %s", path, strerror(-r));
		return r;
	}
	if ((r = mkdir_under(root, path)) < 0 ||
	    (size_t)snprintf(dst, sizeof(dst), "%s%s", root, path) >= sizeof(dst)) {
		snprintf(err, len, "jail: '%s': cannot make its mount point", path);
		return r < 0 ? r : -ENAMETOOLONG;
	}
	if (S_ISDIR(st.st_mode)) {
		if (mkdir(dst, 0755) < 0 && errno != EEXIST)
			goto err;
	} else {
		int mp = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (mp < 0)
			goto err;
		close(mp);
	}
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		goto err;
	if (readonly && mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		goto err;
	return 0;
err:
	r = -errno;
	snprintf(err, len, "jail: bind '%s': %s", path, strerror(-r));
	return r;
}

int jail_enter(const struct jail_spec *j, char *err, size_t len)
{
	int r;
	int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | (j->keep_net ? 0 : CLONE_NEWNET);
	if (unshare(flags) < 0) {
		r = -errno;
		snprintf(err, len, "jail: unshare: %s", strerror(-r));
		return r;
	}
	/* nothing mounted here propagates back to the host */
	/* every source, opened before the new root covers it */
	static const char *const sys[] = {"/usr", "/etc/resolv.conf", "/etc/hosts"};
	int fds[JAIL_MAX_FILES + 1 + 3];
	unsigned nfds = 0;
	const char *paths[JAIL_MAX_FILES + 1 + 3];
	int ro[JAIL_MAX_FILES + 1 + 3];
	paths[nfds] = j->dir;
	ro[nfds++] = 0;
	for (unsigned k = 0; k < j->nfiles && k < JAIL_MAX_FILES; k++) {
		paths[nfds] = j->file[k];
		ro[nfds++] = j->readonly[k];
	}
	for (unsigned k = 0; j->keep_net && k < 3; k++) {
		if (access(sys[k], F_OK) == 0) {
			paths[nfds] = sys[k];
			ro[nfds++] = 1;
		}
	}
	for (unsigned k = 0; k < nfds; k++) {
		fds[k] = open(paths[k], O_PATH | O_CLOEXEC);
		if (fds[k] < 0) {
			r = -errno;
			snprintf(err, len, "jail: '%s': %s", paths[k], strerror(-r));
			while (k--)
				close(fds[k]);
			return r;
		}
	}
	r = 0;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("corral-vm", JAIL_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0) {
		r = -errno;
		snprintf(err, len, "jail: the new root: %s", strerror(-r));
	}
	for (unsigned k = 0; k < nfds; k++) {
		if (!r)
			r = bind_in(JAIL_ROOT, paths[k], fds[k], ro[k], err, len);
		close(fds[k]);
	}
	if (r < 0)
		return r;
	if (sethostname("corral-vm", 9) < 0) {
		r = -errno;
		snprintf(err, len, "jail: sethostname: %s", strerror(-r));
		return r;
	}
	if (j->keep_net) {
		/* user networking loads libslirp (under /usr) through the usual links */
		static const char *const links[] = {"/lib", "/lib64", "/bin", "/sbin"};
		for (unsigned k = 0; k < 4; k++) {
			char target[PATH_MAX], at[PATH_MAX];
			ssize_t n = readlink(links[k], target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = 0;
			snprintf(at, sizeof(at), "%s%s", JAIL_ROOT, links[k]);
			if (symlink(target, at) < 0 && errno != EEXIST) {
				r = -errno;
				snprintf(err, len, "jail: symlink '%s': %s", at, strerror(-r));
				return r;
			}
		}
	}
	char old[PATH_MAX];
	snprintf(old, sizeof(old), "%s/.old", JAIL_ROOT);
	if (mkdir(old, 0700) < 0 || syscall(SYS_pivot_root, JAIL_ROOT, old) < 0 || chdir("/") < 0 ||
	    umount2("/.old", MNT_DETACH) < 0 || rmdir("/.old") < 0 || chdir(j->dir) < 0) {
		r = -errno;
		snprintf(err, len, "jail: pivot_root: %s", strerror(-r));
		return r;
	}
	mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_BIND, NULL);
	return 0;
}

/* Who needs each system call, after the jail is locked:
 * the emu engine's vCPU threads, the devices, the control API's thread
 * (libmicrohttpd), snapshots (vm_save_files), user networking (libslirp),
 * glibc and the allocator underneath all of them. */
static const int jail_allowed[] = {
	/* I/O on descriptors: disks, the console log, the API socket, eventfds */
	SCMP_SYS(read),
	SCMP_SYS(write),
	SCMP_SYS(pread64),
	SCMP_SYS(pwrite64),
	SCMP_SYS(readv),
	SCMP_SYS(writev),
	SCMP_SYS(preadv),
	SCMP_SYS(pwritev),
	SCMP_SYS(preadv2),
	SCMP_SYS(pwritev2),
	SCMP_SYS(lseek),
	SCMP_SYS(close),
	SCMP_SYS(fsync),
	SCMP_SYS(fdatasync),
	SCMP_SYS(fstat),
	SCMP_SYS(newfstatat),
	SCMP_SYS(statx),
	SCMP_SYS(fcntl),
	SCMP_SYS(ioctl),
	SCMP_SYS(ftruncate),
	SCMP_SYS(fallocate),
	SCMP_SYS(dup),
	SCMP_SYS(dup3),
	SCMP_SYS(pipe2),
	SCMP_SYS(eventfd2),
	/* snapshots: files created in the VM's own directory (the jail's only writable place) */
	SCMP_SYS(openat),
	SCMP_SYS(mkdirat),
	SCMP_SYS(renameat),
	SCMP_SYS(renameat2),
	SCMP_SYS(unlinkat),
	SCMP_SYS(unlink),
	SCMP_SYS(rename),
	SCMP_SYS(getdents64),
	/* memory: guest RAM (a memfd), the allocator, thread stacks */
	SCMP_SYS(memfd_create),
	SCMP_SYS(mmap),
	SCMP_SYS(munmap),
	SCMP_SYS(mprotect),
	SCMP_SYS(madvise),
	SCMP_SYS(mremap),
	SCMP_SYS(brk),
	SCMP_SYS(msync),
	SCMP_SYS(mincore),
	/* threads: vCPUs, device workers; their wake-ups and signals to each other */
	SCMP_SYS(clone),
	SCMP_SYS(clone3),
	SCMP_SYS(set_robust_list),
	SCMP_SYS(rseq),
	SCMP_SYS(futex),
	SCMP_SYS(gettid),
	SCMP_SYS(getpid),
	SCMP_SYS(tgkill),
	SCMP_SYS(sched_yield),
	SCMP_SYS(sched_getaffinity),
	/* a split LOCK'd operation fences every vCPU thread (cpu/alu.c) */
	SCMP_SYS(membarrier),
	SCMP_SYS(exit),
	SCMP_SYS(exit_group),
	SCMP_SYS(rt_sigaction),
	SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn),
	SCMP_SYS(sigaltstack),
	SCMP_SYS(madvise),
	SCMP_SYS(prlimit64),
	SCMP_SYS(getrusage),
	/* time: the virtual clock, timers, poll timeouts */
	SCMP_SYS(clock_gettime),
	SCMP_SYS(clock_nanosleep),
	SCMP_SYS(nanosleep),
	SCMP_SYS(gettimeofday),
	SCMP_SYS(timerfd_create),
	SCMP_SYS(timerfd_settime),
	SCMP_SYS(timerfd_gettime),
	/* waiting: the run loop, the API server */
	SCMP_SYS(poll),
	SCMP_SYS(ppoll),
	SCMP_SYS(select),
	SCMP_SYS(pselect6),
	SCMP_SYS(epoll_create1),
	SCMP_SYS(epoll_ctl),
	SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait),
	/* the control API's connections; libslirp's sockets for the guest's traffic */
	SCMP_SYS(accept),
	SCMP_SYS(accept4),
	SCMP_SYS(recvfrom),
	SCMP_SYS(sendto),
	SCMP_SYS(recvmsg),
	SCMP_SYS(sendmsg),
	SCMP_SYS(shutdown),
	SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt),
	SCMP_SYS(getsockname),
	SCMP_SYS(getpeername),
	SCMP_SYS(socket),
	SCMP_SYS(connect),
	SCMP_SYS(bind),
	SCMP_SYS(listen),
	/* glibc: random seeds, its own queries */
	SCMP_SYS(getrandom),
	SCMP_SYS(getuid),
	SCMP_SYS(geteuid),
	SCMP_SYS(getgid),
	SCMP_SYS(getegid),
	SCMP_SYS(uname),
	SCMP_SYS(sysinfo),
	SCMP_SYS(getcwd),
	SCMP_SYS(readlink),
	SCMP_SYS(access),
	SCMP_SYS(faccessat),
	SCMP_SYS(faccessat2),
	SCMP_SYS(getppid),
	SCMP_SYS(restart_syscall),
#if defined(__SANITIZE_ADDRESS__)
	/* the sanitizer build's runtime: reports and the leak check at exit */
	SCMP_SYS(ptrace),
	SCMP_SYS(wait4),
	SCMP_SYS(sched_setaffinity),
	SCMP_SYS(kill),
#endif
};

int jail_lock(uid_t uid, char *err, size_t len)
{
	int r;
	/* no supplementary groups, the VM's own uid and gid: every capability goes */
	if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0) {
		r = -errno;
		snprintf(err, len, "jail: dropping to uid %u: %s", (unsigned)uid, strerror(-r));
		return r;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = -errno;
		snprintf(err, len, "jail: no_new_privs: %s", strerror(-r));
		return r;
	}
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!f) {
		snprintf(err, len, "jail: seccomp_init failed");
		return -ENOMEM;
	}
	r = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1); /* the API's thread too */
	for (unsigned k = 0; !r && k < sizeof(jail_allowed) / sizeof(jail_allowed[0]); k++)
		if (jail_allowed[k] >= 0) /* a call this architecture lacks */
			r = seccomp_rule_add(f, SCMP_ACT_ALLOW, jail_allowed[k], 0);
#if defined(__SANITIZE_ADDRESS__)
	/* the sanitizer build's leak check at exit sets who may trace it */
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 0);
#else
	/* prctl only to name threads (the vCPUs', for ps and perf) */
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME));
#endif
	if (!r)
		r = seccomp_load(f);
	seccomp_release(f);
	if (r < 0) {
		snprintf(err, len, "jail: seccomp: %s", strerror(-r));
		return r;
	}
	return 0;
}
