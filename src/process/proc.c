/* Entry point of a process VM: set up the guest process (address space,
 * file system view, signals), load the program and run its first thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "process/internal.h"

/* A program name without a slash is looked up in the guest's PATH, as a
 * shell would (inside --root when there is one). */
static const char *find_in_path(const char *name, char **envp, char *buf, size_t n)
{
	if (strchr(name, '/') || !*name)
		return name;
	const char *path = "/usr/local/bin:/usr/bin:/bin";
	for (char **e = envp; e && *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	while (*path) {
		const char *end = strchr(path, ':');
		size_t dl = end ? (size_t)(end - path) : strlen(path);
		int w = snprintf(buf, n, "%.*s%s%s", (int)dl, path, dl ? "/" : "", name);
		if (w > 0 && (size_t)w < n) {
			int r = elf_check_exec(AT_FDCWD, buf);
			if (r == 0)
				return buf;
			if (r != -ENOENT && r != -ENOTDIR && r != -EACCES)
				return buf; /* it exists: let the loader say what is wrong */
		}
		if (!end)
			break;
		path = end + 1;
	}
	return name;
}

int proc_exec(const struct proc_opts *o, const char *path, int argc, char **argv, char **envp)
{
	struct proc *p = &proc;
	p->opts = *o;
	p->pid = getpid();
	/* An execve'd x86-64 program runs in a fresh corral started from this
	 * path. o->self_exe overrides it where corral itself runs under an
	 * emulator (qemu-aarch64 in `make check-aarch64`), whose own binary is
	 * what can be started again. */
	const char *self = o->self_exe;
	ssize_t n;
	if (self && *self && strlen(self) < sizeof(p->self_exe)) {
		n = (ssize_t)strlen(self);
		memcpy(p->self_exe, self, (size_t)n);
	} else {
		n = readlink("/proc/self/exe", p->self_exe, sizeof(p->self_exe) - 1);
	}
	if (n <= 0) {
		fprintf(stderr, "corral: cannot find corral's own binary (/proc/self/exe): %s\n", strerror(errno));
		return PROC_EXIT_NOEXEC;
	}
	p->self_exe[n] = 0;
	/* the name Linux would give the program (ps, PR_GET_NAME, comm) */
	const char *base = strrchr(path, '/');
	prctl(PR_SET_NAME, o->comm ? o->comm : base ? base + 1 : path);
	int r;
	char err[256];
	if ((r = sandbox_enter(o, err, sizeof(err)))) {
		fprintf(stderr, "corral: sandbox: %s\n", err);
		return 2;
	}
	p->pid = getpid();
	if (pthread_mutex_init(&p->thr_lock, NULL) || vmem_init(&p->vm) || mm_init(p)) {
		fprintf(stderr, "corral: out of memory\n");
		return PROC_EXIT_NOEXEC;
	}
	if ((r = fs_init(p))) {
		if (r == -ENOSYS)
			fprintf(stderr,
				"corral: --root %s: the host kernel lacks openat2 (Linux 5.6 or later needed)\n",
				o->root);
		else
			fprintf(stderr, "corral: --root %s: %s\n", o->root, strerror(-r));
		return 2;
	}
	if (o->ckpt_pidmap) {
		if (pidmap_attach(o->ckpt_pidmap - 1) < 0) {
			fprintf(stderr, "corral: --ckpt-pidmap %d: not a map of process ids\n", o->ckpt_pidmap - 1);
			return 2;
		}
		pidmap_fd = fs_reserve_fd(p, pidmap_fd);
	}
	/* corral's binary as an fd, for a guest's execve (thr_execve) */
	int sfd = open(p->self_exe, O_PATH | O_CLOEXEC);
	p->self_fd = sfd >= 0 ? fs_reserve_fd(p, sfd) : -1;
	if ((r = sig_init(p))) {
		fprintf(stderr, "corral: cannot set up signals: %s\n", strerror(-r));
		return PROC_EXIT_NOEXEC;
	}
	if (o->ckpt_tree && !o->control && !o->checkpoint_signal && ckpt_tree_join_arg(o->ckpt_tree) < 0) {
		fprintf(stderr, "corral: --ckpt-tree '%s': not OWNER:SIGNAL:DIRECTORY\n", o->ckpt_tree);
		return 2;
	}
	struct gthread *t = calloc(1, sizeof(*t));
	if (!t || cpu_init_opts(&t->cpu, CPU_MODE_USER, &p->vm, &p->opts.cpu)) {
		fprintf(stderr, "corral: out of memory\n");
		return PROC_EXIT_NOEXEC;
	}
	cpu_reset_user(&t->cpu);
	t->cpu.trace = o->trace;
	t->cpu.opaque = t;
	t->tid = p->pid;
	sig_thread_init(t);
	char found[4096];
	path = find_in_path(path, envp, found, sizeof(found));
	r = elf_start(p, t, path, argc, argv, envp);
	if (r) {
		cpu_destroy(&t->cpu);
		free(t);
		return r;
	}
	thr_register(t);
	/* the control socket appears once the program's first thread is
	 * there: a checkpoint asked for at once finds it */
	if ((r = ctl_start(p, err, sizeof(err)))) {
		fprintf(stderr, "corral: %s\n", err);
		return 2;
	}
	thr_main_loop(t);
}
