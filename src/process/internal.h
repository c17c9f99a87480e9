/* Internals shared by the process VM's files: the guest process (one per
 * corral process), its threads, mappings, signals and path resolution. */
#ifndef CORRAL_PROCESS_INTERNAL_H
#define CORRAL_PROCESS_INTERNAL_H

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "cpu/cpu.h"
#include "cpu/vmem.h"
#include "process/proc.h"
#include "process/sigwin.h"

/* ---- Layout (as Linux x86-64 without address randomization) ---- */
#define GUEST_STACK_TOP 0x7ffffffff000ull
#define GUEST_STACK_SIZE (8ull << 20)
#define GUEST_MMAP_BASE 0x7ffff7fff000ull
#define GUEST_ET_DYN_BASE 0x555555554000ull
#define GUEST_MIN_ADDR 0x10000ull /* vm.mmap_min_addr */
/* Linux's TASK_SIZE: the last page below 2^47 is never user memory */
#define GUEST_TASK_SIZE 0x7ffffffff000ull

#define GPAGE VMEM_PAGE
#define gpage_down(x) ((x) & ~(GPAGE - 1))
#define gpage_up(x) (((x) + GPAGE - 1) & ~(GPAGE - 1))

/* ---- Guest mappings (mm.c) ---- */
#define VMA_SHARED 1u
#define VMA_ANON 2u
#define VMA_HEAP 4u
#define VMA_STACK 8u
#define VMA_HOSTW 16u /* host mapping is writable (always for private ones) */

struct vma {
	uint64_t start, end; /* guest page range */
	unsigned prot;	     /* VMEM_R/W/X */
	unsigned flags;	     /* VMA_* */
	uint8_t *host;	     /* host address of start (in the arena); NULL for a
				reservation that was never accessible */
	uint64_t off;	     /* file offset of start */
	uint64_t dev, ino;
	char *name; /* file path or NULL (heap/stack from flags) */
};

/* ---- Threads and the process ---- */
#define GSIG_MAX 64
#define GSIG_BIT(s) (1ull << ((s)-1))
/* Host signal used to kick a guest thread out of cpu_run or a blocking
 * host syscall; the guest's own use of this number stays in corral.
 * SIGRTMAX, or the highest real-time signal the host can deliver where
 * it cannot (qemu-user keeps the last ones for itself): set by sig_init,
 * before the guest runs. */
extern int host_sig_wake;
#define HOST_SIG_WAKE (host_sig_wake)

struct gthread {
	struct cpu cpu;
	int tid;
	uint64_t clear_child_tid;
	uint64_t robust_list, robust_len;
	uint64_t sigmask;	   /* guest's blocked signals */
	volatile uint64_t pending; /* signals recorded for this thread */
	/* Nonzero when a recorded signal may be deliverable (pending and not
	 * in sigmask): set by host_handler, recomputed by corral whenever the
	 * mask changes or signals are taken. sigwin_syscall tests it. */
	volatile int sigready;
	siginfo_t pinfo[GSIG_MAX + 1];
	uint64_t ss_sp, ss_size; /* sigaltstack */
	int ss_flags;
	int restart; /* last syscall was interrupted: 1 restarts after a
			SA_RESTART handler or none, 2 only if no handler ran,
			3 always (a signal came before the host syscall) */
	uint64_t restart_nr;
	int sigsuspended; /* sigsuspend: restore saved_mask after delivery */
	uint64_t saved_mask;
	int exiting;
	/* Host faults on guest memory (signal.c arena_fault): a copy for a
	 * system call in progress unwinds to copy_jb; fault_sig tells sig_fault
	 * that the #PF it reports was a SIGBUS. */
	volatile int in_copy;
	sigjmp_buf copy_jb;
	volatile int fault_sig;
	struct gthread *next;
};

struct gsigaction {
	uint64_t handler, flags, restorer, mask;
};
#define GSIG_DFL 0
#define GSIG_IGN 1
#define GSA_NOCLDSTOP 0x00000001ull
#define GSA_NOCLDWAIT 0x00000002ull
#define GSA_SIGINFO 0x00000004ull
#define GSA_RESTORER 0x04000000ull
#define GSA_ONSTACK 0x08000000ull
#define GSA_RESTART 0x10000000ull
#define GSA_NODEFER 0x40000000ull
#define GSA_RESETHAND 0x80000000ull

#define PROC_MAX_RSV_FD 12

struct arena_ext;
#define ARENA_REGIONS 48

struct proc {
	struct vmem vm;
	pthread_mutex_t mm_lock;
	struct vma *vmas;
	int nvma, cap_vma;
	uint64_t brk_start, brk_cur, mmap_base;
	/* Host address space that only ever holds guest memory (mm.c) */
	struct {
		uintptr_t start;
		uint64_t len;
	} regions[ARENA_REGIONS];
	int nregions;
	uint64_t arena_size;	 /* all regions together */
	struct arena_ext *afree; /* their free extents, sorted */
	int nafree, cap_afree;
	uint64_t mem_cap, mem_used; /* bytes of guest mappings with host memory */

	struct proc_opts opts;
	int rootfd;	/* O_PATH fd of --root, or -1 */
	char *rootpath; /* its canonical host path */
	size_t rootlen;
	int rsv_fd[PROC_MAX_RSV_FD];
	int vfork_fd; /* a vfork child's end of its parent's release pipe, or -1 */
	int tracefd;
	char self_exe[4096]; /* corral's own binary, for execve */
	int self_fd;	     /* an O_PATH fd of it (or -1): execveat needs no path, so a
			      * container's pivot_root or a noexec /proc cannot hide it */

	char exe_path[4096]; /* the guest's /proc/self/exe */
	uint64_t auxv[64];
	int auxv_n; /* words in auxv, incl. AT_NULL pair */

	pthread_mutex_t sig_lock;
	struct gsigaction act[GSIG_MAX + 1];

	pthread_mutex_t thr_lock;
	struct gthread *threads;
	int nthreads;
	int pid;
};

extern struct proc proc;
extern __thread struct gthread *cur_thread;

/* ---- mm.c ---- */
/* Reserve the arena and set the memory cap (p->opts.mem, else
 * mm_default_cap()). */
int mm_init(struct proc *p);
/* The host's memory and swap: the cap when none is given. */
uint64_t mm_default_cap(void);
/* Is host address h inside the arena (guest memory or its reservation)? */
bool mm_in_arena(const struct proc *p, const void *h);
/* Map [gva, gva+len) (page-aligned): anonymous (fd < 0) or from a file. */
long mm_map(struct proc *p, uint64_t gva, uint64_t len, unsigned prot, unsigned vflags, int fd, uint64_t off,
	    const char *name);
long mm_mmap(struct proc *p, uint64_t addr, uint64_t len, int prot, int flags, int fd, uint64_t off);
long mm_munmap(struct proc *p, uint64_t addr, uint64_t len);
long mm_mprotect(struct proc *p, uint64_t addr, uint64_t len, int prot);
long mm_mremap(struct proc *p, uint64_t old, uint64_t oldlen, uint64_t newlen, int flags, uint64_t newaddr);
long mm_madvise(struct proc *p, uint64_t addr, uint64_t len, int advice);
long mm_msync(struct proc *p, uint64_t addr, uint64_t len, int flags);
long mm_brk(struct proc *p, uint64_t addr);
/* Highest free range of len bytes below top, or 0. */
uint64_t mm_find_free(struct proc *p, uint64_t len, uint64_t top);
bool mm_range_free(struct proc *p, uint64_t start, uint64_t end);
/* /proc/self/maps text into a malloc'd buffer. */
char *mm_maps_text(struct proc *p, size_t *len);

/* ---- guest memory access for syscalls (mm.c) ---- */
int gmem_read(uint64_t gva, void *dst, size_t n);
int gmem_write(uint64_t gva, const void *src, size_t n);
/* A NUL-terminated string of at most max bytes (with the NUL): its length,
 * -EFAULT or -ENAMETOOLONG (as vmem_read_str). */
long gmem_read_str(uint64_t gva, char *dst, size_t max);
/* Host iovecs for the guest buffer [gva, gva+len): as many bytes as are
 * mapped with the needed access (write: VMEM_W, else VMEM_R), at most
 * max entries. Returns the count, 0 with *got == 0 if the first byte is bad. */
int gmem_iov(uint64_t gva, size_t len, int write, struct iovec *iov, int max, size_t *got);
/* The host wrote n bytes into guest memory behind vmem's back: drop
 * decoded code of those pages. */
void gmem_written(uint64_t gva, size_t n);
/* Host pointer to an aligned guest object that does not cross a page. */
void *gmem_ptr(uint64_t gva, size_t n, unsigned need);

/* ---- sandbox.c ---- */
/* With o->sandbox (and not o->sandboxed): namespaces, an init, mounts,
 * capabilities and the seccomp filter (docs/threat-model.md). Returns 0 in
 * the process that goes on to run the guest (the others exit with its
 * status or die of its signal), or -errno with one line in err. */
int sandbox_enter(const struct proc_opts *o, char *err, size_t errn);

/* ---- usernet.c: --net user in the sandbox ---- */
/* Start the NAT (spec as --net's, e.g. "user,hostfwd=tcp::8080-:80") in
 * the host's network namespace, before the sandbox's is made. */
int usernet_open(const char *spec, char *err, size_t errn);
/* Inside the new network namespace: eth0 (a tap joined to the NAT). */
int usernet_attach(char *err, size_t errn);
/* In the sandbox's processes: close the NAT's control socket, which only
 * the outer process keeps (its closing ends the NAT's process). */
void usernet_forget(void);

/* ---- elf.c ---- */
/* Check whether path is something execve can run (x86-64 ELF or #! script
 * with an existing interpreter): 0 or -errno. */
int elf_check_exec(int dirfd, const char *path);
/* Load the program into proc and build the initial stack; fills the main
 * thread's registers. Prints one line and returns 126/127 on failure. */
int elf_start(struct proc *p, struct gthread *t, const char *path, int argc, char **argv, char **envp);

/* ---- fs.c ---- */
int fs_init(struct proc *p);
/* Open a guest path (openat semantics, confined to --root): host fd or -errno. */
int fs_openat(int dirfd, const char *path, int flags, int mode);
/* For syscalls that name a final component without following it: a host
 * dirfd and name to pass to the host *at() call. *tmp is a temporary fd to
 * close with fs_put (or -1). Paths ending in "." or ".." give -EINVAL... */
struct fs_at {
	int dirfd;
	const char *name;
	int tmp;
	char buf[4096];
};
int fs_at(int dirfd, const char *path, struct fs_at *a);
/* The object itself as an O_PATH fd (following a final symlink if follow). */
int fs_obj(int dirfd, const char *path, int follow, struct fs_at *a);
void fs_put(struct fs_at *a);
/* Guest view of a host path (strip --root prefix); -EACCES if outside. */
int fs_guest_path(const char *host, char *out, size_t n);
/* /proc/self/... files the guest sees differently: with link, readlink's
 * length; else an fd or -errno; FS_NOT_SPECIAL for other paths. */
#define FS_NOT_SPECIAL (-0x7fffffff)
int fs_proc_special(const char *path, int flags, char *link, size_t linkn);
bool fs_fd_reserved(long fd);
/* Move fd out of the guest's way (close-on-exec) and keep it from the guest. */
int fs_reserve_fd(struct proc *p, int fd);

/* ---- signal.c ---- */
int sig_init(struct proc *p);
/* 1 for the signals corral keeps for itself (the guest libc's cancel and
 * setxid ones, HOST_SIG_WAKE, the checkpoint signal). */
int sig_internal(int sig);
/* The first thread's mask (inherited from the host) and alternate stack. */
void sig_thread_init(struct gthread *t);
/* Deliver pending signals to t (called between cpu_run calls). */
void sig_deliver(struct gthread *t);
/* A CPU exception: deliver the synchronous signal or die of it. */
void sig_fault(struct gthread *t);
/* Record a signal for thread t (from corral itself) and kick it. */
void sig_send_thread(struct gthread *t, int sig, const siginfo_t *si);
_Noreturn void sig_die(int sig);
/* Set the guest mask of the calling thread (mirrored to the host mask). */
void sig_setmask(struct gthread *t, uint64_t mask);
long sig_syscall(struct gthread *t, uint64_t nr, const uint64_t *a);
/* A restored process's dispositions (act[1..GSIG_MAX]), mirrored onto the host. */
void sig_restore_actions(const struct gsigaction *act);
bool sig_pending_now(struct gthread *t);
/* Host syscall nr for a guest syscall that may sleep: the host's raw result
 * (a negative errno on failure), or -SIGWIN_ERESTART if a guest signal is
 * deliverable before the host kernel was entered (sigwin.h). */
long sig_host_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6);

/* ---- thread.c ---- */
long thr_clone(struct gthread *t, uint64_t flags, uint64_t sp, uint64_t ptid, uint64_t ctid, uint64_t tls);
/* The program has used a priority-inheritance futex (a checkpoint refuses it). */
extern bool thr_futex_pi_used;
long thr_futex(struct gthread *t, const uint64_t *a);
_Noreturn void thr_exit(struct gthread *t, int code);
_Noreturn void thr_exit_group(int code);
_Noreturn void thr_main_loop(struct gthread *t);
struct gthread *thr_find(int tid);
void thr_register(struct gthread *t);
/* execve/execveat: an x86-64 program continues in a fresh corral. */
long thr_execve(struct gthread *t, int dirfd, uint64_t gpath, uint64_t gargv, uint64_t genvp, int flags);

/* ---- checkpoint.c, control.c: checkpoint and restore ---- */
/* Set while a checkpoint stops the guest's threads: each parks in
 * ckpt_park at its next instruction boundary (thr_main_loop), and
 * host_handler makes a thread about to sleep in the host kernel come back. */
extern volatile int ckpt_stopping;
/* The host signal that asks for a checkpoint (--checkpoint-signal), or 0:
 * corral's own, like HOST_SIG_WAKE. */
extern int ckpt_signal;
void ckpt_park(struct gthread *t);
/* Stop every guest thread, write DIR/state and DIR/memory; then let the
 * threads go on (leave_running) or exit the process VM with status 0.
 * Returns 0 or -errno with one line in err (the threads go on). Called
 * from a host thread of corral's own (control.c), never a guest thread. */
int ckpt_checkpoint(const char *dir, int leave_running, char *err, size_t errn);
/* Start the control socket and the checkpoint signal (proc_opts). */
int ctl_start(struct proc *p, char *err, size_t errn);
/* Called just before a leave_running=0 checkpoint exits the process. */
void ctl_finish(void);
/* The program ends: remove the control socket (async-signal-safe). */
void ctl_exit(void);
/* ckpt_tree.c: the first process makes the tree's directory (0 or -errno
 * with one line in err); another joins it (dir, and the first process's
 * pid), or, forked, joins its parent's; at the end, what is its goes. */
int ckpt_tree_start(char *err, size_t errn);
void ckpt_tree_join(const char *dir, pid_t owner);
void ckpt_tree_after_fork(void);
void ckpt_tree_exit(void);
/* "OWNER:SIG:DIR" for a program this one execs (--ckpt-tree), or NULL */
const char *ckpt_tree_exec_arg(void);
/* --ckpt-tree's value in an exec'd corral: join that tree. */
int ckpt_tree_join_arg(const char *arg);

/* ---- pidmap.c: ids as the program knows them ---- */
#define PIDMAP_MAX (1u << 20)
struct pidmap {
	uint32_t want;	     /* entries a restore makes */
	uint32_t claimed, n; /* taken, filled */
	int failed;	     /* a process of the restored tree could not start */
	struct {
		int32_t guest, host;
		int ready;
	} e[];
};
/* NULL unless this process belongs to a restored tree */
extern struct pidmap *pidmap;
extern int pidmap_fd; /* its memfd, -1 without */
/* An exec'd corral: the map its program had (--ckpt-pidmap FD): 0 or -errno. */
int pidmap_attach(int fd);
/* Shared memory for want entries (inherited by fork): 0 or -errno. */
int pidmap_create(uint32_t want);
void pidmap_add(int guest, int host);
int pidmap_to_host(int guest);
int pidmap_to_guest(int host);
/* The host id of guest, 0 while it has none (yet). */
int pidmap_find(int guest);
/* Wait until every entry is there (0), or the restore failed (-errno). */
int pidmap_wait(void);
void pidmap_fail(void);
static inline int pid_to_host(int guest)
{
	return pidmap && guest > 0 ? pidmap_to_host(guest) : guest;
}
static inline int pid_to_guest(int host)
{
	return pidmap && host > 0 ? pidmap_to_guest(host) : host;
}
/* A kill/wait pid argument: >0 a process, <-1 a process group */
static inline int pid_arg_to_host(int pid)
{
	return pid > 0 ? pid_to_host(pid) : pid < -1 ? -pid_to_host(-pid) : pid;
}

/* ---- syscall.c ---- */
void sys_dispatch(struct gthread *t);
void sys_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
