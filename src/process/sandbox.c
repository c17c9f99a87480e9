/* The process-VM sandbox (docs/threat-model.md): before any guest code
 * runs, corral moves itself into new user, mount, PID, IPC, UTS and
 * (without --net host) network namespaces, puts a small init at PID 1 of
 * the new PID space, gives the guest a devpts of its own and a root
 * without device nodes, drops every capability but the one its unix
 * socket resolution needs, and installs a seccomp filter on itself. Those
 * are the second wall: the first is corral's own system call layer, which
 * confines paths, devices and sockets itself. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process/internal.h"

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	int e = n < 0 ? -errno : 0;
	close(fd);
	return e;
}

/* A user namespace in which corral keeps its own uid and gid: files it
 * creates are the invoking user's, and capabilities it holds there reach
 * nothing of the host's (no devices, modules, mounts or host network). */
static int enter_userns(void)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	if (unshare(CLONE_NEWUSER) < 0)
		return -errno;
	char map[64];
	int r = write_file("/proc/self/setgroups", "deny");
	if (r && r != -ENOENT)
		return r;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if ((r = write_file("/proc/self/uid_map", map)))
		return r;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	return write_file("/proc/self/gid_map", map);
}

/* The guest's root as a mount of its own without device nodes or set-id
 * programs (the flags it had stay: a read-only root stays read-only), and
 * a devpts instance of its own: the host's terminals are not there. */
static int setup_mounts(const char *root, char *err, size_t errn)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		snprintf(err, errn, "cannot make mounts private: %s", strerror(errno));
		return -errno;
	}
	if (root) {
		struct statvfs sv;
		if (statvfs(root, &sv) < 0) {
			snprintf(err, errn, "--root %s: %s", root, strerror(errno));
			return -errno;
		}
		unsigned long keep = 0;
		if (sv.f_flag & ST_RDONLY)
			keep |= MS_RDONLY;
		if (sv.f_flag & ST_NOEXEC)
			keep |= MS_NOEXEC;
		if (sv.f_flag & ST_NOATIME)
			keep |= MS_NOATIME;
		if (sv.f_flag & ST_NODIRATIME)
			keep |= MS_NODIRATIME;
		if (sv.f_flag & ST_RELATIME)
			keep |= MS_RELATIME;
		if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    mount(NULL, root, NULL, MS_REMOUNT | MS_BIND | MS_NODEV | MS_NOSUID | keep, NULL) < 0) {
			snprintf(err, errn, "--root %s: cannot mount it without devices: %s", root, strerror(errno));
			return -errno;
		}
	}
	if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") < 0) {
		snprintf(err, errn, "cannot mount a devpts of its own: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* In init, the first process of the new PID space: a procfs of that space
 * on /proc (the host's processes are not listed), with /proc/sys and /sys
 * read-only (the kernel's settings are the host's). */
static int setup_proc(char *err, size_t errn)
{
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		snprintf(err, errn, "cannot mount a /proc of its own: %s", strerror(errno));
		return -errno;
	}
	static const char *const ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/sys"};
	for (unsigned k = 0; k < sizeof(ro) / sizeof(ro[0]); k++) {
		if (access(ro[k], F_OK) < 0)
			continue;
		if (mount(ro[k], ro[k], NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    mount(NULL, ro[k], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			  NULL) < 0) {
			snprintf(err, errn, "cannot make %s read-only: %s", ro[k], strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/* The network namespace's loopback starts down: bring it up. */
static void loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
}

/* ---- the processes around the guest ----
 * outer (the host's PID space; what the user started) waits for init;
 * init (PID 1 inside) reaps orphans and waits for the guest (PID 2). Each
 * passes on the signals a user sends (not those a terminal sends to the
 * whole process group, which reach the guest directly), and the guest's
 * wait status travels back through a pipe, so that outer exits with the
 * guest's status or dies of the guest's signal. */
static volatile pid_t forward_to;

static void forward(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (si->si_code == SI_KERNEL || forward_to <= 0)
		return;
	kill(forward_to, sig);
}

static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGCONT, SIGWINCH};

static void forward_signals(pid_t to)
{
	forward_to = to;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = forward;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (unsigned k = 0; k < sizeof(forwarded) / sizeof(forwarded[0]); k++)
		sigaction(forwarded[k], &sa, NULL);
}

/* Wait for pid (reaping every other child on the way): its wait status. */
static int wait_for(pid_t pid)
{
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, __WALL);
		if (w == pid)
			return st;
		if (w < 0 && errno == ECHILD)
			return 127 << 8;
	}
}

/* The outer process ends as the guest did. _exit: a process that made a
 * new PID space for its children cannot start threads, which exit-time
 * work (LeakSanitizer's) would try. */
_Noreturn static void exit_like(int st)
{
	fflush(NULL);
	if (WIFSIGNALED(st))
		sig_die(WTERMSIG(st));
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 127);
}

/* ---- the filter on corral itself ----
 * A deny list: corral needs a broad set of calls to serve a guest, and
 * what must never happen from a sandboxed corral is short. Each entry says
 * why it is refused. */
struct deny {
	int nr;
	const char *why;
};

static const struct deny denied[] = {
	{SCMP_SYS(mount), "mounts: the sandbox's mounts are set before the guest runs"},
	{SCMP_SYS(umount2), "mounts"},
	{SCMP_SYS(pivot_root), "mounts"},
	{SCMP_SYS(move_mount), "mounts"},
	{SCMP_SYS(open_tree), "mounts"},
	{SCMP_SYS(fsopen), "mounts"},
	{SCMP_SYS(fsmount), "mounts"},
	{SCMP_SYS(fsconfig), "mounts"},
	{SCMP_SYS(fspick), "mounts"},
	{SCMP_SYS(mount_setattr), "mounts"},
	{SCMP_SYS(setns), "joining another namespace would leave the sandbox"},
	{SCMP_SYS(ptrace), "tracing other processes"},
	{SCMP_SYS(process_vm_writev), "writing other processes' memory"},
	{SCMP_SYS(process_vm_readv), "reading other processes' memory"},
	{SCMP_SYS(kcmp), "comparing other processes' resources"},
	{SCMP_SYS(open_by_handle_at), "opens files by handle, past every path check"},
	{SCMP_SYS(name_to_handle_at), "file handles"},
	{SCMP_SYS(bpf), "kernel programs"},
	{SCMP_SYS(perf_event_open), "kernel and CPU observation"},
	{SCMP_SYS(userfaultfd), "kernel memory races"},
	{SCMP_SYS(keyctl), "the kernel keyring is not namespaced"},
	{SCMP_SYS(add_key), "the kernel keyring"},
	{SCMP_SYS(request_key), "the kernel keyring"},
	{SCMP_SYS(init_module), "kernel modules"},
	{SCMP_SYS(finit_module), "kernel modules"},
	{SCMP_SYS(delete_module), "kernel modules"},
	{SCMP_SYS(kexec_load), "replacing the kernel"},
	{SCMP_SYS(kexec_file_load), "replacing the kernel"},
	{SCMP_SYS(reboot), "the host's power"},
	{SCMP_SYS(swapon), "the host's swap"},
	{SCMP_SYS(swapoff), "the host's swap"},
	{SCMP_SYS(acct), "the host's process accounting"},
	{SCMP_SYS(quotactl), "the host's quotas"},
	{SCMP_SYS(syslog), "the host's kernel log"},
	{SCMP_SYS(iopl), "I/O ports"},
	{SCMP_SYS(ioperm), "I/O ports"},
	{SCMP_SYS(settimeofday), "the host's clock"},
	{SCMP_SYS(clock_settime), "the host's clock"},
	{SCMP_SYS(clock_adjtime), "the host's clock"},
	{SCMP_SYS(adjtimex), "the host's clock"},
	{SCMP_SYS(fanotify_init), "watching the host's file systems"},
	{SCMP_SYS(lookup_dcookie), "kernel profiling"},
	{SCMP_SYS(vhangup), "terminals"},
	{SCMP_SYS(personality), "execution domains"},
	{SCMP_SYS(io_uring_setup), "a second system call path that seccomp cannot see into"},
};

static int install_filter(char *err, size_t errn)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
	if (!f) {
		snprintf(err, errn, "cannot build the seccomp filter");
		return -ENOMEM;
	}
	int r = 0;
	for (unsigned k = 0; k < sizeof(denied) / sizeof(denied[0]) && !r; k++)
		if (denied[k].nr >= 0)
			r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), denied[k].nr, 0);
	/* Namespaces are set before the guest runs; only a file system context
	 * of its own stays (sys_net.c's unix_call). */
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1, SCMP_A0(SCMP_CMP_NE, CLONE_FS));
	/* Device nodes: the guest gets none (mknod of a FIFO or socket stays) */
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mknod), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFCHR));
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mknod), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFBLK));
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mknodat), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFCHR));
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mknodat), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFBLK));
	/* Sockets: unix, IPv4 and IPv6 only, and no raw ones (netlink, packet
	 * and raw sockets see and reach what the guest must not). */
	for (int dom = 0; dom <= AF_INET6 && !r; dom++)
		if (dom != AF_UNIX && dom != AF_INET && dom != AF_INET6)
			r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
					     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)dom));
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
				     SCMP_A0(SCMP_CMP_GT, AF_INET6));
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW));
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_PACKET));
	/* Terminals: pushing input into the terminal corral runs in (TIOCSTI)
	 * would type commands into the user's shell. */
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX));
	/* New namespaces through clone (glibc's clone3 falls back to clone). */
	static const unsigned long ns_flags[] = {CLONE_NEWNS,  CLONE_NEWUSER, CLONE_NEWPID,   CLONE_NEWNET,
						 CLONE_NEWIPC, CLONE_NEWUTS,  CLONE_NEWCGROUP};
	for (unsigned k = 0; k < sizeof(ns_flags) / sizeof(ns_flags[0]) && !r; k++)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[k], ns_flags[k]));
	if (!r)
		r = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (!r)
		r = seccomp_load(f);
	seccomp_release(f);
	if (r)
		snprintf(err, errn, "cannot install the seccomp filter: %s", strerror(-r));
	return r;
}

/* Every capability but CAP_SYS_CHROOT (sys_net.c resolves unix socket
 * paths in a thread chrooted to the guest's root), for good: not in the
 * bounding set, so an execve of corral cannot get them back; ambient, so
 * it keeps that one; and no_new_privs, so set-id programs change nothing. */
static int drop_caps(char *err, size_t errn)
{
	for (int c = 0; c <= 63; c++)
		if (c != CAP_SYS_CHROOT && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) {
			snprintf(err, errn, "cannot drop capabilities: %s", strerror(errno));
			return -errno;
		}
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = d[0].inheritable = 1u << CAP_SYS_CHROOT;
	if (syscall(SYS_capset, &h, d) < 0) {
		snprintf(err, errn, "cannot drop capabilities: %s", strerror(errno));
		return -errno;
	}
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_CHROOT, 0, 0);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errn, "cannot set no_new_privs: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int sandbox_enter(const struct proc_opts *o, char *err, size_t errn)
{
	if (!o->sandbox || o->sandboxed)
		return 0; /* an execve'd corral inherits namespaces and filter */
	int r = enter_userns();
	if (r && geteuid() != 0) {
		snprintf(err, errn,
			 "cannot create a user namespace (%s): this host does not allow unprivileged ones; run as "
			 "root, or use --no-sandbox",
			 strerror(-r));
		return r;
	}
	/* The NAT's thread and host sockets stay in the host's network
	 * namespace: they are made before this thread moves to a new one. */
	if (o->net_user && (r = usernet_open(o->net_user, err, errn)))
		return r;
	int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | (o->net_host ? 0 : CLONE_NEWNET);
	if (unshare(flags) < 0) {
		snprintf(err, errn, "cannot create namespaces: %s", strerror(errno));
		return -errno;
	}
	char *root = NULL;
	if (o->root && !(root = realpath(o->root, NULL))) {
		snprintf(err, errn, "--root %s: %s", o->root, strerror(errno));
		return -errno;
	}
	r = setup_mounts(root, err, errn);
	free(root);
	if (r)
		return r;
	if (!o->net_host)
		loopback_up();
	if (o->net_user && (r = usernet_attach(err, errn)))
		return r;
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, errn, "pipe: %s", strerror(errno));
		return -errno;
	}
	/* The PID space last: from here on this process cannot start threads
	 * (see exit_like), and ends only through _exit. */
	if (unshare(CLONE_NEWPID) < 0) {
		snprintf(err, errn, "cannot create a PID namespace: %s", strerror(errno));
		return -errno;
	}
	fflush(NULL);
	pid_t init = fork();
	if (init < 0) {
		fprintf(stderr, "corral: sandbox: fork: %s\n", strerror(errno));
		_exit(2);
	}
	if (init > 0) { /* outer */
		close(pfd[1]);
		forward_signals(init);
		int st;
		ssize_t n;
		do
			n = read(pfd[0], &st, sizeof(st));
		while (n < 0 && errno == EINTR);
		int ist;
		while (waitpid(init, &ist, 0) < 0 && errno == EINTR)
			;
		exit_like(n == sizeof(st) ? st : ist);
	}
	/* init: PID 1 of the new PID space */
	close(pfd[0]);
	if (o->net_user)
		usernet_forget();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (setup_proc(err, errn)) {
		fprintf(stderr, "corral: sandbox: %s\n", err);
		_exit(2);
	}
	pid_t guest = fork();
	if (guest < 0)
		_exit(127);
	if (guest > 0) {
		forward_signals(guest);
		int st = wait_for(guest);
		ssize_t n = write(pfd[1], &st, sizeof(st));
		(void)n;
		_exit(0);
	}
	/* the guest's corral: PID 2 */
	close(pfd[1]);
	for (unsigned k = 0; k < sizeof(forwarded) / sizeof(forwarded[0]); k++)
		signal(forwarded[k], SIG_DFL);
	if ((r = drop_caps(err, errn)))
		return r;
	return install_filter(err, errn);
}
