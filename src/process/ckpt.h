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

#define CKPT_VERSION 1 /* of every section below */
#define CKPT_MAX_THREADS 4096
#define CKPT_MAX_VMAS 65530 /* vm.max_map_count */
#define CKPT_MAX_FDS 65536
#define CKPT_MAX_RUNS (1u << 22)
#define CKPT_NSIG 64
#define CKPT_NRLIMIT 16 /* RLIMIT_CPU..RLIMIT_RTTIME: the same numbers on every Linux ABI */
#define CKPT_PATH_MAX 4096
#define CKPT_PAGE 4096ull

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
enum ckpt_fd_kind { CKFD_FILE = 1, CKFD_DIR = 2, CKFD_DEV = 3 };

struct ckpt_fd {
	int32_t fd;
	uint32_t kind, flags;
	char *path; /* the host's path */
	uint64_t offset;
	struct ckpt_ident id;
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
	uint32_t nthreads, nvma, nfd;
	struct ckpt_thread *threads;
	struct ckpt_vma *vmas;
	struct ckpt_fd *fds;
};

/* The stream of img on w (the memory file is the caller's). */
void ckpt_write(struct state_writer *w, const struct ckpt_image *img);
/* Parse and check [data, data+size); 0 and *img (free with
 * ckpt_image_free), or -EINVAL with one sentence in err. */
int ckpt_parse(const void *data, size_t size, struct ckpt_image *img, char *err, size_t errn);
void ckpt_image_free(struct ckpt_image *img);

#endif
