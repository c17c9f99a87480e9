/* Process VMs: run one x86-64 Linux program on corral's CPU (`corral exec`).
 * This is the module's public contract; internal.h is what its files share. */
#ifndef CORRAL_PROC_H
#define CORRAL_PROC_H

#include "cpu/cpu.h"

/* Exit statuses a shell would use when it cannot run a program. */
#define PROC_EXIT_NOTFOUND 127
#define PROC_EXIT_NOEXEC 126

struct proc_opts {
	const char *root;	/* host directory that becomes the guest's "/", or NULL */
	const char *argv0;	/* argv[0] for the guest, or NULL: the program path */
	int trace;		/* log every syscall and unimplemented instruction */
	unsigned long long mem; /* cap on guest memory in bytes, 0: the host's memory */
	int sandbox;		/* namespaces, devices, sockets, filter (docs/threat-model.md) */
	int net_host;		/* sandbox: share the host's network namespace */
	const char *net_user;	/* sandbox: "user[,hostfwd=...]" for a NAT'd eth0, or NULL */
	int sandboxed;		/* internal: already inside (a guest's execve) */
	/* corral's own binary, which runs an execve'd x86-64 program; NULL:
	 * /proc/self/exe (set where corral itself runs under an emulator) */
	const char *self_exe;
	const char *comm;    /* the host thread's name, or NULL: PROGRAM's last part */
	struct cpu_opts cpu; /* every guest thread's CPU (the translator) */
	/* checkpoints (docs/checkpoint.md) */
	const char *control;	    /* unix socket serving the checkpoint API, or NULL */
	int checkpoint_signal;	    /* host signal that asks for a checkpoint, or 0 */
	const char *checkpoint_dir; /* where that checkpoint goes */
	const char *version;	    /* corral's version, written into and checked on checkpoints */
	const char *ckpt_tree;	    /* internal: the process tree an exec'd program is in ("OWNER:SIG:DIR") */
	int ckpt_pidmap;	    /* internal: 1 + the fd of a restored tree's id map, or 0 */
};

/* Load path (an x86-64 ELF program or #! script, looked up in the guest's
 * view of the file system) with argv[0..argc) and envp, and run it to the
 * end. Never returns when the program started: the process exits with the
 * guest's status or dies of the guest's fatal signal. Returns an exit
 * status (126/127) after printing one line when it cannot start. */
int proc_exec(const struct proc_opts *o, const char *path, int argc, char **argv, char **envp);

/* The environment variable that tells a new corral it was started by
 * proc_reexec, naming the memfd that holds the rest (see exec_reentry). */
#define PROC_EXEC_FD_ENV "CORRAL_EXEC_FD"

/* Start path with argv[0..argc) and envp as a new process VM in a fresh
 * corral (self_exe, or the O_PATH descriptor self_fd when >= 0), as a
 * guest's execve does. The host process gets the guest's argv as its own,
 * so ps and /proc/PID/cmdline show the program; `corral exec` options
 * (opts, NULL-terminated), comm, argv[0], path and the guest environment
 * travel in a memfd, never in corral's own environment (its loader would
 * see LD_PRELOAD and friends). Returns -errno when the exec fails. */
long proc_reexec(const char *self_exe, int self_fd, const char *const *opts, const char *comm, const char *path,
		 int argc, char **argv, char **envp);
/* Continue the program checkpointed into dir (DIR/state, DIR/memory) in
 * this process, with o's version, trace, control socket and checkpoint
 * signal. Never returns once the program runs; returns an exit status (1
 * or 2) after one line on stderr when the checkpoint is refused. */
int proc_restore(const struct proc_opts *o, const char *dir);

#endif
