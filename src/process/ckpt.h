/* A process VM's checkpoint as plain data: what checkpoint.c gathers from
 * a stopped process VM and what proc_restore commits, written to and read
 * from a state stream of kind "process" (docs/checkpoint.md lists the
 * sections). ckpt_parse is the one parser of that hostile input: it
 * checks every count, address and flag before anything is committed. */
#ifndef CORRAL_PROCESS_CKPT_H
#define CORRAL_PROCESS_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu.h"
#include "state/stream.h"

/* Section versions: "process" and "fd" are at 4 since socket pairs
 * between processes of a tree are carried (3 added process trees, 2 pipes
 * and socket pairs; 1 to 3 are still read), "chan" at 3 in a checkpoint
 * of version 4 (a socket pair's key), 2 in one of version 3 (a pipe's
 * key), the others at 1. */
#define CKPT_VERSION 4
#define CKPT_VERSION_MIN 1
#define CKPT_MAX_THREADS 4096
#define CKPT_MAX_VMAS 65530 /* vm.max_map_count */
#define CKPT_MAX_FDS 65536
#define CKPT_MAX_RUNS (1u << 22)
#define CKPT_NSIG 64
#define CKPT_NRLIMIT 16 /* RLIMIT_CPU..RLIMIT_RTTIME: the same numbers on every Linux ABI */
#define CKPT_PATH_MAX 4096
#define CKPT_PAGE 4096ull
#define CKPT_MAX_CHANS 65536
#define CKPT_MAX_MSGS (1u << 20)   /* messages waiting in one socket */
#define CKPT_MAX_QUEUE (64u << 20) /* bytes waiting in one pipe or socket */
#define CKPT_MAX_PROCS 4096	   /* processes (and zombies) of a tree besides the first */
#define CKPT_PID_MAX (1 << 22)	   /* PID_MAX_LIMIT */

/* A file's identity: what must still hold when a checkpoint is restored. */
struct ckpt_ident {
	uint64_t size;
	int64_t mtime_s;
	uint32_t mtime_ns;
};

struct ckpt_siginfo {
	int32_t code, err, pid, uid, status;
	uint64_t value, addr;
};

struct ckpt_thread {
	struct cpu_state s; /* rflags complete (lazy flags evaluated) */
	int32_t tid;	    /* as the guest knew it */
	uint64_t clear_child_tid, robust_list, robust_len;
	uint64_t sigmask, pending, saved_mask;
	bool sigsuspended;
	uint64_t ss_sp, ss_size;
	uint32_t ss_flags;
	struct ckpt_siginfo info[CKPT_NSIG + 1]; /* of the pending signals */
};

/* Pages of a mapping that differ from what mapping it again gives (zero
 * for anonymous memory, the file for a private file mapping): pages
 * [page, page+count) of the mapping, in the memory file at
 * memoff + page * CKPT_PAGE. */
struct ckpt_run {
	uint64_t page, count;
};

#define CKV_SHARED 1u
#define CKV_ANON 2u
#define CKV_HEAP 4u
#define CKV_STACK 8u
#define CKV_RESERVED 16u /* address space only (no access, no memory) */
#define CKV_KNOWN 31u

struct ckpt_vma {
	uint64_t start, end, off;
	uint32_t prot, flags; /* VMEM_R/W/X, CKV_* */
	char *path;	      /* the guest's path of a file mapping, else NULL */
	struct ckpt_ident id;
	uint64_t memoff;
	uint32_t nruns;
	struct ckpt_run *runs;
};

/* Open files, as the guest's descriptor numbers saw them; flags are corral's
 * own bits, not a host's O_* values (which differ between architectures). */
#define CKF_READ 1u
#define CKF_WRITE 2u
#define CKF_APPEND 4u
#define CKF_NONBLOCK 8u
#define CKF_CLOEXEC 16u
#define CKF_KNOWN 31u
enum ckpt_fd_kind { CKFD_FILE = 1, CKFD_DIR = 2, CKFD_DEV = 3, CKFD_CHAN = 4 };

struct ckpt_fd {
	int32_t fd;
	uint32_t kind, flags;
	char *path; /* the host's path; NULL for CKFD_CHAN */
	uint64_t offset;
	struct ckpt_ident id;
	uint32_t chan, end; /* CKFD_CHAN: which channel, which of its ends */
};

/* A pipe or a socket pair whose ends the program holds, with what waits
 * to be read in it. A pipe's end 0 reads and end 1 writes; a socket
 * pair's ends are the two sockets. q[e] is what end e would read next:
 * a pipe's bytes (q[0], one message), a stream's bytes (one message), or
 * a datagram or seqpacket socket's messages, boundaries kept. */
enum ckpt_chan_kind { CKCH_PIPE = 1, CKCH_STREAM = 2, CKCH_DGRAM = 3, CKCH_SEQPACKET = 4 };
#define CKCH_SHUT_RD 1u /* a socket end's shutdown, per end: bits << (2 * end) */
#define CKCH_SHUT_WR 2u

struct ckpt_queue {
	uint32_t nmsg;
	uint32_t *len; /* of each message */
	uint64_t size; /* the sum of len[] */
	uint8_t *data;
};

struct ckpt_chan {
	/* chan v2: the pipe's identity across the processes of a tree (its
	 * ends may be held by several), 0 for one of this process alone; v3: a
	 * socket pair's too (the inode of its end 0 when checkpointed), whose
	 * unheld end has no buffer size and no queue in this image */
	uint64_t key;
	uint32_t kind;
	uint32_t held;	     /* bit e: the program holds end e (both for a socket pair) */
	uint32_t shut;	     /* CKCH_SHUT_* << (2 * end) */
	uint64_t bufsize[2]; /* pipe: its capacity in [0]; sockets: each end's SO_SNDBUF */
	struct ckpt_queue q[2];
};

/* Another process of the tree (v3): a process VM whose image is in
 * DIR/p<pid>/, or a child that has exited and was not waited for. Each
 * one's parent is the first process or a process before it. */
enum ckpt_tree_kind { CKTP_PROCESS = 1, CKTP_ZOMBIE = 2 };
struct ckpt_tree_proc {
	int32_t pid, ppid; /* as the program knew them */
	uint32_t kind;
	int32_t status; /* a zombie's wait status (wait(2)'s int) */
};

struct ckpt_itimer {
	uint64_t int_s, int_us, val_s, val_us;
};

struct ckpt_image {
	char version[64];	  /* corral's, of the writer */
	char root[CKPT_PATH_MAX]; /* --root's host path, "" without */
	uint64_t mem_cap, brk_start, brk_cur, mmap_base, memsize;
	char exe_path[CKPT_PATH_MAX];
	char cwd[CKPT_PATH_MAX]; /* host path */
	uint32_t umask;
	uint32_t auxv_n;
	uint64_t auxv[64];
	struct {
		uint64_t cur, max;
	} rlim[CKPT_NRLIMIT];
	struct {
		uint64_t handler, flags, restorer, mask;
	} act[CKPT_NSIG + 1];
	struct ckpt_itimer itimer[3];
	uint32_t format; /* the version of "process" and "fd": CKPT_VERSION_MIN..CKPT_VERSION */
	uint32_t nthreads, nvma, nfd, nchan;
	int32_t pid;	   /* v3: the process id as the program knows it (0 before) */
	uint32_t ntree;	   /* v3: the other processes of its tree (the first one's image only) */
	int32_t pgid, sid; /* v4: its process group and session as the program knows them (0 before) */
	struct ckpt_tree_proc *tree;
	struct ckpt_thread *threads;
	struct ckpt_vma *vmas;
	struct ckpt_fd *fds;
	struct ckpt_chan *chans;
};

/* The stream of img on w, at img->format (0: CKPT_VERSION) (the memory file is the caller's). */
void ckpt_write(struct state_writer *w, const struct ckpt_image *img);
/* Parse and check [data, data+size); 0 and *img (free with
 * ckpt_image_free), or -EINVAL with one sentence in err. */
int ckpt_parse(const void *data, size_t size, struct ckpt_image *img, char *err, size_t errn);
void ckpt_image_free(struct ckpt_image *img);
void ckpt_queue_free(struct ckpt_queue *q);

#endif
