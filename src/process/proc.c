/* Entry point of a process VM: set up the guest process (address space,
 * file system view, signals), load the program and run its first thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "process/internal.h"

int proc_exec(const struct proc_opts *o, const char *path, int argc, char **argv, char **envp)
{
	struct proc *p = &proc;
	p->opts = *o;
	p->pid = getpid();
	ssize_t n = readlink("/proc/self/exe", p->self_exe, sizeof(p->self_exe) - 1);
	if (n <= 0) {
		fprintf(stderr, "corral: cannot find corral's own binary (/proc/self/exe): %s\n",
			strerror(errno));
		return PROC_EXIT_NOEXEC;
	}
	p->self_exe[n] = 0;
	int r;
	if (pthread_mutex_init(&p->thr_lock, NULL) || vmem_init(&p->vm) || mm_init(p)) {
		fprintf(stderr, "corral: out of memory\n");
		return PROC_EXIT_NOEXEC;
	}
	if ((r = fs_init(p))) {
		if (r == -ENOSYS)
			fprintf(stderr, "corral: --root %s: the host kernel lacks openat2 (Linux 5.6 or later needed)\n",
				o->root);
		else
			fprintf(stderr, "corral: --root %s: %s\n", o->root, strerror(-r));
		return 2;
	}
	if ((r = sig_init(p))) {
		fprintf(stderr, "corral: cannot set up signals: %s\n", strerror(-r));
		return PROC_EXIT_NOEXEC;
	}
	struct gthread *t = calloc(1, sizeof(*t));
	if (!t || cpu_init(&t->cpu, CPU_MODE_USER, &p->vm)) {
		fprintf(stderr, "corral: out of memory\n");
		return PROC_EXIT_NOEXEC;
	}
	cpu_reset_user(&t->cpu);
	t->cpu.trace = o->trace;
	t->cpu.opaque = t;
	t->tid = p->pid;
	sig_thread_init(t);
	r = elf_start(p, t, path, argc, argv, envp);
	if (r)
		return r;
	thr_register(t);
	thr_main_loop(t);
}
