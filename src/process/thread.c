/* Guest threads and processes: one host thread per guest thread (each with
 * its own struct cpu on the shared vmem), futexes on the host addresses of
 * guest words, fork onto host fork, and execve onto a fresh corral. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "process/internal.h"

#define G_CLONE_VM 0x00000100ull
#define G_CLONE_FS 0x00000200ull
#define G_CLONE_FILES 0x00000400ull
#define G_CLONE_SIGHAND 0x00000800ull
#define G_CLONE_VFORK 0x00004000ull
#define G_CLONE_THREAD 0x00010000ull
#define G_CLONE_SETTLS 0x00080000ull
#define G_CLONE_PARENT_SETTID 0x00100000ull
#define G_CLONE_CHILD_CLEARTID 0x00200000ull
#define G_CLONE_CHILD_SETTID 0x01000000ull

#define THREAD_HOST_STACK (1u << 20)
#define EXEC_MAX_ARGS 65536
#define EXEC_MAX_BYTES (2u << 20)

struct proc proc;
__thread struct gthread *cur_thread;
static int main_exit_code = -1;

struct gthread *thr_find(int tid)
{
	struct gthread *t;
	pthread_mutex_lock(&proc.thr_lock);
	for (t = proc.threads; t && t->tid != tid; t = t->next)
		;
	pthread_mutex_unlock(&proc.thr_lock);
	return t;
}

void thr_register(struct gthread *t)
{
	pthread_mutex_lock(&proc.thr_lock);
	t->next = proc.threads;
	proc.threads = t;
	proc.nthreads++;
	pthread_mutex_unlock(&proc.thr_lock);
}

_Noreturn void thr_main_loop(struct gthread *t)
{
	cur_thread = t;
	for (;;) {
		if (__atomic_load_n(&ckpt_stopping, __ATOMIC_SEQ_CST))
			ckpt_park(t); /* at an instruction boundary, its syscall done or to be made again */
		enum cpu_exit e = cpu_run(&t->cpu, 0);
		switch (e) {
		case CPU_EXIT_SYSCALL: sys_dispatch(t); break;
		case CPU_EXIT_EXCEPTION: sig_fault(t); break;
		case CPU_EXIT_HLT:
			t->cpu.exc_vector = EXC_GP;
			t->cpu.exc_error = 0;
			sig_fault(t);
			break;
		default: break;
		}
		sig_deliver(t);
	}
}

static long host_futex(void *uaddr, int op, uint32_t val, const void *ts, void *uaddr2, uint32_t val3)
{
	long r = syscall(SYS_futex, uaddr, op, val, ts, uaddr2, val3);
	return r < 0 ? -errno : r;
}

/* Linux's exit_robust_list: mark futexes the dying thread held. */
static void robust_cleanup(struct gthread *t)
{
	struct {
		uint64_t next;
		int64_t off;
		uint64_t pending;
	} head;
	if (!t->robust_list || gmem_read(t->robust_list, &head, sizeof(head)))
		return;
	uint64_t e = head.next;
	for (int n = 0; e != t->robust_list && n < 2048; n++) {
		uint64_t next;
		if (gmem_read(e, &next, 8))
			break;
		uint32_t *w = gmem_ptr(e + (uint64_t)head.off, 4, VMEM_W);
		/* the owner's id as the program knows it (a restore's map) */
		if (w && (__atomic_load_n(w, __ATOMIC_SEQ_CST) & FUTEX_TID_MASK) == (uint32_t)pid_to_guest(t->tid)) {
			__atomic_fetch_or(w, FUTEX_OWNER_DIED, __ATOMIC_SEQ_CST);
			__atomic_fetch_and(w, ~(uint32_t)FUTEX_TID_MASK, __ATOMIC_SEQ_CST);
			host_futex(w, FUTEX_WAKE, 1, NULL, NULL, 0);
		}
		e = next;
	}
}

_Noreturn void thr_exit(struct gthread *t, int code)
{
	robust_cleanup(t);
	if (t->clear_child_tid) {
		uint32_t z = 0;
		if (!gmem_write(t->clear_child_tid, &z, 4)) {
			void *h = gmem_ptr(t->clear_child_tid, 4, VMEM_R);
			if (h)
				host_futex(h, FUTEX_WAKE, 1, NULL, NULL, 0);
		}
	}
	pthread_mutex_lock(&proc.thr_lock);
	struct gthread **pp = &proc.threads;
	while (*pp && *pp != t)
		pp = &(*pp)->next;
	if (*pp)
		*pp = t->next;
	int left = --proc.nthreads;
	if (t->tid == proc.pid)
		main_exit_code = code;
	pthread_mutex_unlock(&proc.thr_lock);
	if (left <= 0) {
		ctl_exit();
		_exit(main_exit_code >= 0 ? main_exit_code : code);
	}
	/* Other threads may still hold t (tgkill lookups just made): its
	 * memory stays, the CPU's caches go. */
	t->exiting = 1;
	cur_thread = NULL;
	cpu_destroy(&t->cpu);
	pthread_exit(NULL);
}

_Noreturn void thr_exit_group(int code)
{
	ctl_exit();
	_exit(code & 0xff);
}

struct thr_start {
	struct gthread *t;
	uint64_t flags, ptid, ctid;
	sem_t started;
};

static void *thr_entry(void *arg)
{
	struct thr_start *s = arg;
	struct gthread *t = s->t;
	t->tid = (int)syscall(SYS_gettid);
	uint32_t tid = (uint32_t)t->tid;
	cur_thread = t;
	if (s->flags & G_CLONE_PARENT_SETTID)
		gmem_write(s->ptid, &tid, 4);
	if (s->flags & G_CLONE_CHILD_SETTID)
		gmem_write(s->ctid, &tid, 4);
	thr_register(t);
	sem_post(&s->started);
	/* s lives on the parent's stack: not touched after this point */
	thr_main_loop(t);
}

static long clone_thread(struct gthread *t, uint64_t flags, uint64_t sp, uint64_t ptid, uint64_t ctid, uint64_t tls)
{
	struct gthread *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	if (cpu_init_opts(&n->cpu, CPU_MODE_USER, &proc.vm, &proc.opts.cpu)) {
		free(n);
		return -ENOMEM;
	}
	uint64_t fl = cpu_get_rflags(&t->cpu);
	n->cpu.s = t->cpu.s;
	cpu_set_rflags(&n->cpu, fl);
	n->cpu.trace = t->cpu.trace;
	n->cpu.opaque = n;
	n->cpu.s.gpr[R_RAX] = 0;
	if (sp)
		n->cpu.s.gpr[R_RSP] = sp;
	if (flags & G_CLONE_SETTLS)
		n->cpu.s.seg[SEG_FS].base = tls;
	if (flags & G_CLONE_CHILD_CLEARTID)
		n->clear_child_tid = ctid;
	n->sigmask = t->sigmask;
	n->ss_flags = 2; /* SS_DISABLE: a new thread has no alternate stack */

	struct thr_start s = {.t = n, .flags = flags, .ptid = ptid, .ctid = ctid};
	sem_init(&s.started, 0, 0);
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, THREAD_HOST_STACK);
	pthread_t pt;
	int e = pthread_create(&pt, &at, thr_entry, &s);
	pthread_attr_destroy(&at);
	if (e) {
		cpu_destroy(&n->cpu);
		free(n);
		sem_destroy(&s.started);
		return -EAGAIN;
	}
	while (sem_wait(&s.started) && errno == EINTR)
		;
	sem_destroy(&s.started);
	return n->tid;
}

static long clone_process(struct gthread *t, uint64_t flags, uint64_t sp, uint64_t ptid, uint64_t ctid)
{
	int vpipe[2] = {-1, -1};
	/* vfork: the parent waits until the child has exec'd or exited, seen
	 * as the close of a close-on-exec pipe. */
	if ((flags & G_CLONE_VFORK) && pipe2(vpipe, O_CLOEXEC) < 0)
		vpipe[0] = vpipe[1] = -1;
	pthread_mutex_lock(&proc.thr_lock);
	pthread_mutex_lock(&proc.sig_lock);
	pthread_mutex_lock(&proc.mm_lock);
	pthread_mutex_lock(&proc.vm.lock);
	pid_t pid = fork();
	pthread_mutex_unlock(&proc.vm.lock);
	pthread_mutex_unlock(&proc.mm_lock);
	pthread_mutex_unlock(&proc.sig_lock);
	pthread_mutex_unlock(&proc.thr_lock);
	if (pid < 0) {
		int e = -errno;
		if (vpipe[0] >= 0) {
			close(vpipe[0]);
			close(vpipe[1]);
		}
		return e;
	}
	if (pid == 0) {
		/* Only this thread exists in the child. */
		cpu_after_fork(&t->cpu);
		proc.pid = getpid();
		t->tid = proc.pid;
		t->next = NULL;
		proc.threads = t;
		proc.nthreads = 1;
		main_exit_code = -1;
		/* A vfork child's own children must not hold its parent's
		 * release pipe: the parent would wait for them too. */
		if (proc.vfork_fd >= 0) {
			for (int k = 0; k < PROC_MAX_RSV_FD; k++)
				if (proc.rsv_fd[k] == proc.vfork_fd)
					proc.rsv_fd[k] = -1;
			close(proc.vfork_fd);
			proc.vfork_fd = -1;
		}
		if (vpipe[0] >= 0) {
			close(vpipe[0]);
			/* out of the guest's way: its fd numbers stay free */
			proc.vfork_fd = fs_reserve_fd(&proc, vpipe[1]);
		}
		uint32_t tid = (uint32_t)t->tid;
		if (flags & G_CLONE_CHILD_SETTID)
			gmem_write(ctid, &tid, 4);
		if (flags & G_CLONE_CHILD_CLEARTID)
			t->clear_child_tid = ctid;
		if (sp)
			t->cpu.s.gpr[R_RSP] = sp;
		ckpt_tree_after_fork();
		return 0;
	}
	if (flags & G_CLONE_PARENT_SETTID) {
		uint32_t v = (uint32_t)pid;
		gmem_write(ptid, &v, 4);
	}
	if (vpipe[0] >= 0) {
		char b;
		close(vpipe[1]);
		while (read(vpipe[0], &b, 1) < 0 && errno == EINTR)
			;
		close(vpipe[0]);
	}
	return pid;
}

long thr_clone(struct gthread *t, uint64_t flags, uint64_t sp, uint64_t ptid, uint64_t ctid, uint64_t tls)
{
	if ((flags & G_CLONE_THREAD) && !(flags & G_CLONE_SIGHAND))
		return -EINVAL;
	if ((flags & G_CLONE_SIGHAND) && !(flags & G_CLONE_VM))
		return -EINVAL;
	if ((flags & G_CLONE_VM) && (flags & G_CLONE_THREAD))
		return clone_thread(t, flags, sp, ptid, ctid, tls);
	/* Everything else (fork, vfork, posix_spawn's CLONE_VM|CLONE_VFORK)
	 * becomes a host fork: the child gets a copy-on-write copy of guest
	 * memory, which is all a child that execs or exits needs. */
	return clone_process(t, flags, sp, ptid, ctid);
}

bool thr_futex_pi_used;

long thr_futex(struct gthread *t, const uint64_t *a)
{
	(void)t;
	uint64_t ua = a[0];
	int op = (int)a[1];
	int cmd = op & FUTEX_CMD_MASK;
	if (cmd == FUTEX_LOCK_PI || cmd == FUTEX_LOCK_PI2 || cmd == FUTEX_UNLOCK_PI || cmd == FUTEX_TRYLOCK_PI ||
	    cmd == FUTEX_CMP_REQUEUE_PI || cmd == FUTEX_WAIT_REQUEUE_PI) {
		/* the host kernel reads owner tids in a PI futex's word: a
		 * restored program's ids are not the host's (docs/checkpoint.md);
		 * glibc answers ENOTSUP for PTHREAD_PRIO_INHERIT then */
		if (pidmap)
			return -ENOSYS;
		__atomic_store_n(&thr_futex_pi_used, true, __ATOMIC_RELAXED);
	}
	uint32_t val = (uint32_t)a[2];
	struct timespec ts;
	const struct timespec *tsp = NULL;
	if (ua & 3)
		return -EINVAL;
	void *h = gmem_ptr(ua, 4, VMEM_R);
	if (!h)
		return -EFAULT;
	switch (cmd) {
	case FUTEX_WAIT:
	case FUTEX_WAIT_BITSET:
	case FUTEX_LOCK_PI:
	case FUTEX_LOCK_PI2:
	case FUTEX_WAIT_REQUEUE_PI:
		if (a[3]) {
			if (gmem_read(a[3], &ts, sizeof(ts)))
				return -EFAULT;
			tsp = &ts;
		}
		break;
	default: break;
	}
	switch (cmd) {
	case FUTEX_WAIT:
	case FUTEX_WAIT_BITSET:
	case FUTEX_LOCK_PI:
	case FUTEX_LOCK_PI2: return sig_host_syscall(SYS_futex, (long)h, op, val, (long)tsp, 0, (long)(uint32_t)a[5]);
	case FUTEX_WAKE:
	case FUTEX_WAKE_BITSET:
	case FUTEX_UNLOCK_PI:
	case FUTEX_TRYLOCK_PI: return host_futex(h, op, val, NULL, NULL, (uint32_t)a[5]);
	case FUTEX_REQUEUE:
	case FUTEX_CMP_REQUEUE:
	case FUTEX_WAKE_OP:
	case FUTEX_CMP_REQUEUE_PI:
	case FUTEX_WAIT_REQUEUE_PI: {
		if (a[4] & 3)
			return -EINVAL;
		void *h2 = gmem_ptr(a[4], 4, VMEM_R);
		if (!h2)
			return -EFAULT;
		const void *v2 = cmd == FUTEX_WAIT_REQUEUE_PI ? (const void *)tsp : (const void *)(uintptr_t)a[3];
		if (cmd == FUTEX_WAIT_REQUEUE_PI)
			return sig_host_syscall(SYS_futex, (long)h, op, val, (long)v2, (long)h2, (long)(uint32_t)a[5]);
		return host_futex(h, op, val, v2, h2, (uint32_t)a[5]);
	}
	default: return -ENOSYS;
	}
}

/* Read a NULL-terminated guest array of strings (argv/envp). */
static int read_strv(uint64_t ga, char ***out, size_t *budget)
{
	size_t n = 0, cap = 16;
	char **v = calloc(cap, sizeof(char *));
	if (!v)
		return -ENOMEM;
	for (; ga; n++) {
		uint64_t p;
		if (gmem_read(ga + n * 8, &p, 8))
			goto fault;
		if (!p)
			break;
		if (n >= EXEC_MAX_ARGS)
			goto big;
		if (n + 2 > cap) {
			cap *= 2;
			char **nv = realloc(v, cap * sizeof(char *));
			if (!nv)
				goto big;
			v = nv;
		}
		char *s = malloc(*budget + 1 > 131072 ? 131072 : *budget + 1);
		if (!s)
			goto big;
		long l = gmem_read_str(p, s, *budget + 1 > 131072 ? 131072 : *budget + 1);
		if (l < 0) {
			free(s);
			if (l == -EFAULT)
				goto fault;
			goto big;
		}
		*budget -= (size_t)l + 1;
		v[n] = s;
	}
	v[n] = NULL;
	*out = v;
	return (int)n;
fault:
	for (size_t k = 0; k < n; k++)
		free(v[k]);
	free(v);
	return -EFAULT;
big:
	for (size_t k = 0; k < n; k++)
		free(v[k]);
	free(v);
	return -E2BIG;
}

static void free_strv(char **v)
{
	for (size_t k = 0; v && v[k]; k++)
		free(v[k]);
	free(v);
}

/* write(2) all of s and its NUL; -ENOMEM when the memfd cannot hold it */
static int put_str(int fd, const char *s)
{
	size_t len = strlen(s) + 1, done = 0;
	while (done < len) {
		ssize_t w = write(fd, s + done, len - done);
		if (w <= 0)
			return -ENOMEM;
		done += (size_t)w;
	}
	return 0;
}

long proc_reexec(const char *self_exe, int self_fd, const char *const *opts, const char *comm, const char *path,
		 int argc, char **argv, char **envp)
{
	int fd = memfd_create("corral-exec", 0);
	if (fd < 0)
		return -errno;
	int r = put_str(fd, "exec");
	for (int k = 0; !r && opts[k]; k++)
		r = put_str(fd, opts[k]);
	const char *tail[] = {"--comm", comm, "--argv0", argc > 0 ? argv[0] : "", "--", path, ""};
	for (size_t k = 0; !r && k < sizeof(tail) / sizeof(tail[0]); k++)
		r = put_str(fd, tail[k]);
	for (int k = 0; !r && envp[k]; k++)
		r = put_str(fd, envp[k]);
	extern char **environ;
	size_t n = 0;
	while (environ[n])
		n++;
	char **hostenv = r ? NULL : calloc(n + 2, sizeof(char *));
	char mark[48];
	if (!r && !hostenv)
		r = -ENOMEM;
	if (!r) {
		size_t j = 0;
		for (size_t k = 0; k < n; k++)
			if (strncmp(environ[k], PROC_EXEC_FD_ENV "=", sizeof(PROC_EXEC_FD_ENV)))
				hostenv[j++] = environ[k];
		snprintf(mark, sizeof(mark), "%s=%d", PROC_EXEC_FD_ENV, fd);
		hostenv[j] = mark;
		lseek(fd, 0, SEEK_SET);
		/* Linux runs a program given no argv with argv[0] = "" */
		static char *const noargs[] = {"", NULL};
		char *const *hv = argc > 0 ? argv : noargs;
		/* execveat where the path may be out of sight (--root); a
		 * kernel or emulator without it (qemu-user 7.2) uses the path */
		if (self_fd < 0 ||
		    (syscall(SYS_execveat, self_fd, "", hv, hostenv, AT_EMPTY_PATH) < 0 && errno == ENOSYS))
			execve(self_exe, hv, hostenv);
		r = -errno;
	}
	free(hostenv);
	close(fd);
	return r;
}

long thr_execve(struct gthread *t, int dirfd, uint64_t gpath, uint64_t gargv, uint64_t genvp, int flags)
{
	(void)t;
	char path[4096];
	long l = gmem_read_str(gpath, path, sizeof(path));
	if (l < 0)
		return l;
	if (flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
		return -EINVAL;
	/* the name Linux gives the new program: the last part of the path as
	 * the caller passed it (the fd's number for an empty path) */
	char comm[16];
	const char *base = strrchr(path, '/');
	if (path[0])
		snprintf(comm, sizeof(comm), "%.15s", base ? base + 1 : path);
	else
		snprintf(comm, sizeof(comm), "%d", dirfd);
	if (dirfd != AT_FDCWD && path[0] != '/') {
		/* execveat: the new corral finds the file through the inherited
		 * fd (which cannot be resolved inside --root that way) */
		if (proc.rootfd >= 0)
			return -ENOSYS;
		if (fs_fd_reserved(dirfd))
			return -EBADF;
		if (!path[0] && !(flags & AT_EMPTY_PATH))
			return -ENOENT;
		char tmp[4096];
		int n = snprintf(tmp, sizeof(tmp), "/proc/self/fd/%d%s%s", dirfd, path[0] ? "/" : "", path);
		if (n < 0 || (size_t)n >= sizeof(tmp))
			return -ENAMETOOLONG;
		strcpy(path, tmp);
	}
	if (!path[0])
		return -ENOENT;
	/* /proc/self/exe names the guest program: the new corral could not
	 * resolve it (its own would be corral) */
	char lnk[4096];
	int ll = fs_proc_special(path, 0, lnk, sizeof(lnk) - 1);
	if (ll != FS_NOT_SPECIAL && ll > 0) {
		lnk[ll] = 0;
		strcpy(path, lnk);
	}
	size_t budget = EXEC_MAX_BYTES;
	char **argv = NULL, **envp = NULL;
	int argc = read_strv(gargv, &argv, &budget);
	if (argc < 0)
		return argc;
	int envc = read_strv(genvp, &envp, &budget);
	if (envc < 0) {
		free_strv(argv);
		return envc;
	}
	long r = elf_check_exec(AT_FDCWD, path);
	if (r)
		goto out;
	/* corral's options for the new process VM; the guest's argv reaches
	 * the host as the new corral's own (what ps and /proc/PID/cmdline
	 * show), the rest through proc_reexec's memfd */
	const char *opts[16];
	char mems[32];
	int k = 0;
	if (proc.rootfd >= 0) {
		opts[k++] = "--root";
		opts[k++] = proc.rootpath;
	}
	if (proc.opts.trace)
		opts[k++] = "--trace";
	if (proc.opts.sandbox)
		opts[k++] = "--sandboxed";
	else if (proc.rootfd >= 0)
		opts[k++] = "--no-sandbox";
	if (proc.opts.mem) {
		snprintf(mems, sizeof(mems), "%lluB", proc.opts.mem);
		opts[k++] = "--mem";
		opts[k++] = mems;
	}
	const char *tree_arg = ckpt_tree_exec_arg();
	if (tree_arg) {
		opts[k++] = "--ckpt-tree";
		opts[k++] = tree_arg;
	}
	char mapfd[16];
	if (pidmap_fd >= 0) {
		/* the ids the program knows stay those of before */
		snprintf(mapfd, sizeof(mapfd), "%d", pidmap_fd);
		opts[k++] = "--ckpt-pidmap";
		opts[k++] = mapfd;
		fcntl(pidmap_fd, F_SETFD, 0);
	}
	opts[k] = NULL;
	r = proc_reexec(proc.self_exe, proc.self_fd, opts, comm, path, argc, argv, envp);
	if (pidmap_fd >= 0)
		fcntl(pidmap_fd, F_SETFD, FD_CLOEXEC);
out:
	free_strv(argv);
	free_strv(envp);
	return r;
}
