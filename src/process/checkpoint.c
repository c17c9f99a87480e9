/* Checkpoint and restore of a process VM: stop every guest thread at an
 * instruction boundary, gather the process into a struct ckpt_image (its
 * threads' CPUs, mappings, files, signals, limits) and write it with the
 * guest's memory; and, in a fresh corral, check a checkpoint against the
 * files it names and commit it. docs/checkpoint.md is the design. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "process/ckpt.h"
#include "process/ckpt_chan.h"
#include "process/ckpt_tree.h"
#include "process/internal.h"

#define STOP_TIMEOUT_MS 10000 /* every thread reaches a boundary within this */
#define STATE_FILE_MAX (1ull << 30)
#define THREAD_HOST_STACK (1u << 20)

volatile int ckpt_stopping;
int ckpt_signal;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int parked;
	pthread_mutex_t one; /* one checkpoint at a time */
} frz = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, PTHREAD_MUTEX_INITIALIZER};

void ckpt_park(struct gthread *t)
{
	(void)t;
	pthread_mutex_lock(&frz.lock);
	frz.parked++;
	pthread_cond_broadcast(&frz.cond);
	while (__atomic_load_n(&ckpt_stopping, __ATOMIC_SEQ_CST))
		pthread_cond_wait(&frz.cond, &frz.lock);
	frz.parked--;
	pthread_mutex_unlock(&frz.lock);
}

void ckpt_thaw(void)
{
	pthread_mutex_lock(&frz.lock);
	__atomic_store_n(&ckpt_stopping, 0, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&frz.cond);
	pthread_mutex_unlock(&frz.lock);
}

/* Stop every guest thread: each is kicked out of cpu_run or a sleeping
 * host syscall (which is made again when it goes on, as after a signal
 * that runs no handler) until all are parked. */
int ckpt_freeze(char *err, size_t errn)
{
	pthread_mutex_lock(&frz.lock);
	__atomic_store_n(&ckpt_stopping, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&frz.lock);
	for (int waited = 0;; waited += 20) {
		pthread_mutex_lock(&proc.thr_lock);
		int n = proc.nthreads;
		for (struct gthread *t = proc.threads; t; t = t->next) {
			cpu_request_stop(&t->cpu);
			syscall(SYS_tgkill, proc.pid, t->tid, HOST_SIG_WAKE);
		}
		pthread_mutex_lock(&frz.lock);
		bool all = frz.parked >= n;
		if (!all) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 20 * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_mutex_unlock(&proc.thr_lock);
			pthread_cond_timedwait(&frz.cond, &frz.lock, &ts);
			pthread_mutex_unlock(&frz.lock);
		} else {
			pthread_mutex_unlock(&frz.lock);
			pthread_mutex_unlock(&proc.thr_lock);
			return 0;
		}
		if (waited >= STOP_TIMEOUT_MS) {
			ckpt_thaw();
			snprintf(err, errn, "the program's threads did not stop within %d s", STOP_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
	}
}

/* ---- gathering ---- */

static void copy_str(char *dst, size_t n, const char *src)
{
	size_t l = strnlen(src, n - 1);
	memcpy(dst, src, l);
	dst[l] = 0;
}

static void ident_of(const struct stat *st, struct ckpt_ident *id)
{
	id->size = (uint64_t)st->st_size;
	id->mtime_s = st->st_mtim.tv_sec;
	id->mtime_ns = (uint32_t)st->st_mtim.tv_nsec;
}

static bool ident_eq(const struct stat *st, const struct ckpt_ident *id)
{
	return (uint64_t)st->st_size == id->size && st->st_mtim.tv_sec == id->mtime_s &&
	       (uint32_t)st->st_mtim.tv_nsec == id->mtime_ns;
}

/* A process tree is not carried yet: refuse a program with children. */
static int check_children(char *err, size_t errn)
{
	char path[64], buf[64];
	int found = 0;
	pthread_mutex_lock(&proc.thr_lock);
	for (struct gthread *t = proc.threads; t && !found; t = t->next) {
		snprintf(path, sizeof(path), "/proc/self/task/%d/children", t->tid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			found = atoi(buf);
		}
	}
	pthread_mutex_unlock(&proc.thr_lock);
	if (found) {
		snprintf(err, errn,
			 "the program has a child process (%d): a tree of processes is not carried by a checkpoint yet",
			 found);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* A pending signal's siginfo as the image keeps it */
static struct ckpt_siginfo ckpt_siginfo_of(const siginfo_t *si)
{
	return (struct ckpt_siginfo){
		.code = si->si_code,
		.err = si->si_errno,
		.pid = si->si_pid,
		.uid = (int32_t)si->si_uid,
		.status = si->si_status,
		.value = (uint64_t)(uintptr_t)si->si_value.sival_ptr,
		.addr = (uint64_t)(uintptr_t)si->si_addr,
	};
}

static int gather_threads(struct ckpt_image *img, char *err, size_t errn)
{
	img->nthreads = (uint32_t)proc.nthreads;
	if (!img->nthreads) {
		snprintf(err, errn, "the program has no thread left: it is ending");
		return -ESRCH;
	}
	if (img->nthreads > CKPT_MAX_THREADS) {
		snprintf(err, errn, "%u threads: more than a checkpoint holds", img->nthreads);
		return -EOPNOTSUPP;
	}
	img->threads = calloc(img->nthreads, sizeof(*img->threads));
	if (!img->threads)
		return -ENOMEM;
	/* the main thread first (it becomes the restored process's first
	 * thread), then the others oldest first */
	struct gthread *list[CKPT_MAX_THREADS];
	uint32_t n = 0, k = 0;
	for (struct gthread *t = proc.threads; t && n < img->nthreads; t = t->next)
		list[n++] = t;
	struct gthread *order[CKPT_MAX_THREADS];
	for (uint32_t i = 0; i < n; i++)
		if (list[i]->tid == proc.pid)
			order[k++] = list[i];
	for (uint32_t i = n; i-- > 0;)
		if (list[i]->tid != proc.pid)
			order[k++] = list[i];
	for (uint32_t i = 0; i < k; i++) {
		struct gthread *t = order[i];
		struct ckpt_thread *c = &img->threads[i];
		c->s = t->cpu.s;
		c->s.rflags = cpu_get_rflags(&t->cpu);
		c->tid = pid_to_guest(t->tid);
		c->clear_child_tid = t->clear_child_tid;
		c->robust_list = t->robust_list;
		c->robust_len = t->robust_len;
		c->sigmask = t->sigmask;
		c->pending = t->pending;
		c->saved_mask = t->saved_mask;
		c->sigsuspended = t->sigsuspended;
		c->ss_sp = t->ss_sp;
		c->ss_size = t->ss_size;
		c->ss_flags = (uint32_t)t->ss_flags;
		for (int s = 1; s <= CKPT_NSIG; s++)
			c->info[s] = ckpt_siginfo_of(&t->pinfo[s]);
	}
	img->nthreads = k;
	return 0;
}

/* Runs of pages of v that differ from their base (zero, or the file f of
 * fsize bytes); the pages go to mfd at memoff. */
static int save_pages(struct ckpt_vma *c, const struct vma *v, int f, uint64_t fsize, int mfd)
{
	uint64_t pages = (v->end - v->start) / CKPT_PAGE;
	static uint8_t base[CKPT_PAGE], zero[CKPT_PAGE];
	uint32_t cap = 0;
	for (uint64_t i = 0; i < pages; i++) {
		const uint8_t *h = v->host + i * CKPT_PAGE;
		uint64_t foff = v->off + i * CKPT_PAGE;
		const uint8_t *b = zero;
		if (f >= 0) {
			if (foff >= fsize)
				break; /* past the file's end: no memory behind it (SIGBUS) */
			uint64_t want = fsize - foff < CKPT_PAGE ? fsize - foff : CKPT_PAGE;
			memset(base, 0, sizeof(base));
			if (pread(f, base, want, (off_t)foff) != (ssize_t)want)
				return -EIO;
			b = base;
		}
		if (!memcmp(h, b, CKPT_PAGE))
			continue;
		if (c->nruns && c->runs[c->nruns - 1].page + c->runs[c->nruns - 1].count == i) {
			c->runs[c->nruns - 1].count++;
		} else {
			if (c->nruns == CKPT_MAX_RUNS)
				return -E2BIG;
			if (c->nruns == cap) {
				cap = cap ? cap * 2 : 16;
				struct ckpt_run *nr = realloc(c->runs, cap * sizeof(*nr));
				if (!nr)
					return -ENOMEM;
				c->runs = nr;
			}
			c->runs[c->nruns++] = (struct ckpt_run){i, 1};
		}
	}
	for (uint32_t r = 0; r < c->nruns; r++) {
		const uint8_t *src = v->host + c->runs[r].page * CKPT_PAGE;
		size_t len = c->runs[r].count * CKPT_PAGE;
		off_t at = (off_t)(c->memoff + c->runs[r].page * CKPT_PAGE);
		while (len) {
			ssize_t w = pwrite(mfd, src, len, at);
			if (w <= 0)
				return w < 0 ? -errno : -EIO;
			src += w;
			at += w;
			len -= (size_t)w;
		}
	}
	return 0;
}

static int gather_vmas(struct ckpt_image *img, int mfd, char *err, size_t errn)
{
	struct proc *p = &proc;
	img->nvma = (uint32_t)p->nvma;
	img->vmas = img->nvma ? calloc(img->nvma, sizeof(*img->vmas)) : NULL;
	if (img->nvma && !img->vmas)
		return -ENOMEM;
	uint64_t memoff = 0;
	for (int k = 0; k < p->nvma; k++) {
		const struct vma *v = &p->vmas[k];
		struct ckpt_vma *c = &img->vmas[k];
		c->start = v->start;
		c->end = v->end;
		c->off = v->off;
		c->prot = v->prot;
		c->flags = ((v->flags & VMA_SHARED) ? CKV_SHARED : 0) | ((v->flags & VMA_ANON) ? CKV_ANON : 0) |
			   ((v->flags & VMA_HEAP) ? CKV_HEAP : 0) | ((v->flags & VMA_STACK) ? CKV_STACK : 0) |
			   (v->host ? 0 : CKV_RESERVED);
		if (!v->host && (!(v->flags & VMA_ANON) || (v->flags & VMA_SHARED))) {
			snprintf(err, errn, "mapping at 0x%llx has no memory behind it", (unsigned long long)v->start);
			return -EOPNOTSUPP;
		}
		int f = -1;
		uint64_t fsize = 0;
		if (!(v->flags & VMA_ANON)) {
			if (!v->name || v->name[0] != '/') {
				snprintf(err, errn, "mapping at 0x%llx: its file has no path to find it again by",
					 (unsigned long long)v->start);
				return -EOPNOTSUPP;
			}
			struct stat st;
			f = fs_openat(AT_FDCWD, v->name, O_RDONLY | O_CLOEXEC, 0);
			if (f < 0 || fstat(f, &st) < 0 || st.st_dev != v->dev || st.st_ino != v->ino) {
				if (f >= 0)
					close(f);
				snprintf(err, errn,
					 "mapping at 0x%llx: its file '%.300s' was deleted or replaced since it was "
					 "mapped",
					 (unsigned long long)v->start, v->name);
				return -EOPNOTSUPP;
			}
			ident_of(&st, &c->id);
			fsize = (uint64_t)st.st_size;
			if (!(c->path = strdup(v->name))) {
				close(f);
				return -ENOMEM;
			}
		}
		c->memoff = memoff;
		int r = 0;
		/* a shared file mapping's contents are the file's */
		if (v->host && !((v->flags & VMA_SHARED) && f >= 0)) {
			r = save_pages(c, v, f, fsize, mfd);
			if (c->nruns)
				memoff += v->end - v->start;
		}
		if (f >= 0)
			close(f);
		if (r) {
			snprintf(err, errn, "mapping at 0x%llx: %s", (unsigned long long)v->start, strerror(-r));
			return r;
		}
	}
	img->memsize = memoff;
	return ftruncate(mfd, (off_t)memoff) < 0 ? -errno : 0;
}

static int fd_kind_error(int fd, const char *link, char *err, size_t errn)
{
	const char *why = "it is not a file, directory or stateless device";
	if (!strncmp(link, "anon_inode:", 11))
		why = "epoll, eventfd, timerfd, signalfd and the like are not carried by a checkpoint yet";
	snprintf(err, errn, "descriptor %d (%s): %s", fd, link, why);
	return -EOPNOTSUPP;
}

/* Devices that hold no state of their own: reopened by path. */
static bool dev_stateless(const char *path)
{
	static const char *const ok[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
	for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++)
		if (!strcmp(path, ok[k]))
			return true;
	return false;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int gather_fds(struct ckpt_image *img, char *err, size_t errn)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	int *fds = NULL, n = 0, cap = 0, dfd = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end || e->d_name[0] == '.' || fd == dfd || fs_fd_reserved(fd) || ckpt_tree_own_fd((int)fd))
			continue;
		/* 0-2 are the restoring command's, but for a pipe between
		 * processes of the tree */
		if (fd < 3 && !ckpt_chan_tree_pipe((int)fd))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			int *nf = realloc(fds, (size_t)cap * sizeof(int));
			if (!nf) {
				closedir(d);
				free(fds);
				return -ENOMEM;
			}
			fds = nf;
		}
		fds[n++] = (int)fd;
	}
	closedir(d);
	if (n)
		qsort(fds, (size_t)n, sizeof(int), cmp_int);
	int r = 0;
	if (n > CKPT_MAX_FDS || (n && fds[n - 1] >= CKPT_MAX_FDS)) {
		snprintf(err, errn, "descriptor %d: beyond what a checkpoint holds", fds[n - 1]);
		r = -EOPNOTSUPP;
		goto out;
	}
	img->fds = n ? calloc((size_t)n, sizeof(*img->fds)) : NULL;
	if (n && !img->fds) {
		r = -ENOMEM;
		goto out;
	}
	for (int k = 0; k < n; k++) {
		int fd = fds[k];
		char lnk[64], path[CKPT_PATH_MAX];
		snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", fd);
		ssize_t l = readlink(lnk, path, sizeof(path) - 1);
		struct stat st;
		if (l <= 0 || fstat(fd, &st) < 0) {
			snprintf(err, errn, "descriptor %d: %s", fd, strerror(errno));
			r = -EIO;
			goto out;
		}
		path[l] = 0;
		struct ckpt_fd *c = &img->fds[img->nfd];
		c->fd = fd;
		int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);
		if (fl >= 0 && fdf >= 0 && !(fl & O_PATH) && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
			/* a pipe or socket pair: its ends and data are
			 * gathered when every descriptor has been seen */
			if ((r = ckpt_chan_add(img, c, fd, &st, fl, path, err, errn)))
				goto out;
			c->flags = (c->end == 0 || img->chans[c->chan].kind != CKCH_PIPE ? CKF_READ : 0) |
				   (c->end == 1 || img->chans[c->chan].kind != CKCH_PIPE ? CKF_WRITE : 0) |
				   ((fl & O_NONBLOCK) ? CKF_NONBLOCK : 0) | ((fdf & FD_CLOEXEC) ? CKF_CLOEXEC : 0);
			img->nfd++;
			continue;
		}
		if (S_ISREG(st.st_mode))
			c->kind = CKFD_FILE;
		else if (S_ISDIR(st.st_mode))
			c->kind = CKFD_DIR;
		else if (S_ISCHR(st.st_mode) && dev_stateless(path))
			c->kind = CKFD_DEV;
		else {
			r = fd_kind_error(fd, path, err, errn);
			goto out;
		}
		if (path[0] != '/' || (l > 10 && !strcmp(path + l - 10, " (deleted)"))) {
			snprintf(err, errn, "descriptor %d: '%.300s' has no path to open it again by", fd, path);
			r = -EOPNOTSUPP;
			goto out;
		}
		if (fl < 0 || fdf < 0 || (fl & O_PATH)) {
			snprintf(err, errn, "descriptor %d ('%.300s'): an O_PATH descriptor is not carried yet", fd,
				 path);
			r = -EOPNOTSUPP;
			goto out;
		}
		int acc = fl & O_ACCMODE;
		c->flags = (acc == O_RDONLY || acc == O_RDWR ? CKF_READ : 0) |
			   (acc == O_WRONLY || acc == O_RDWR ? CKF_WRITE : 0) | ((fl & O_APPEND) ? CKF_APPEND : 0) |
			   ((fl & O_NONBLOCK) ? CKF_NONBLOCK : 0) | ((fdf & FD_CLOEXEC) ? CKF_CLOEXEC : 0);
		off_t off = c->kind == CKFD_DEV ? 0 : lseek(fd, 0, SEEK_CUR);
		c->offset = off > 0 ? (uint64_t)off : 0;
		if (c->kind == CKFD_FILE)
			ident_of(&st, &c->id);
		if (!(c->path = strdup(path))) {
			r = -ENOMEM;
			goto out;
		}
		img->nfd++;
	}
	if (!r)
		r = ckpt_chan_finish(img, err, errn);
out:
	ckpt_chan_reset();
	free(fds);
	return r;
}

static void gather_process(struct ckpt_image *img)
{
	struct proc *p = &proc;
	copy_str(img->version, sizeof(img->version), p->opts.version ? p->opts.version : "");
	img->pid = pid_to_guest(p->pid);
	img->pgid = pid_to_guest(getpgrp());
	img->sid = pid_to_guest(getsid(0));
	copy_str(img->root, sizeof(img->root), p->rootpath ? p->rootpath : "");
	img->mem_cap = p->opts.mem;
	img->brk_start = p->brk_start;
	img->brk_cur = p->brk_cur;
	img->mmap_base = p->mmap_base;
	copy_str(img->exe_path, sizeof(img->exe_path), p->exe_path);
	if (!getcwd(img->cwd, sizeof(img->cwd)))
		snprintf(img->cwd, sizeof(img->cwd), "/");
	mode_t m = umask(0);
	umask(m);
	img->umask = (uint32_t)m & 0777;
	img->auxv_n = (uint32_t)(p->auxv_n > 64 ? 64 : p->auxv_n) & ~1u;
	memcpy(img->auxv, p->auxv, img->auxv_n * 8);
	for (int k = 0; k < CKPT_NRLIMIT; k++) {
		struct rlimit rl = {0, 0};
		getrlimit(k, &rl);
		img->rlim[k].cur = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
		img->rlim[k].max = rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : rl.rlim_max;
	}
	pthread_mutex_lock(&p->sig_lock);
	for (int s = 1; s <= CKPT_NSIG; s++) {
		img->act[s].handler = p->act[s].handler;
		img->act[s].flags = p->act[s].flags;
		img->act[s].restorer = p->act[s].restorer;
		img->act[s].mask = p->act[s].mask;
	}
	pthread_mutex_unlock(&p->sig_lock);
	for (int k = 0; k < 3; k++) {
		struct itimerval it = {{0, 0}, {0, 0}};
		getitimer(k, &it);
		img->itimer[k] = (struct ckpt_itimer){(uint64_t)it.it_interval.tv_sec, (uint64_t)it.it_interval.tv_usec,
						      (uint64_t)it.it_value.tv_sec, (uint64_t)it.it_value.tv_usec};
	}
}

/* POSIX timers (timer_create) live in the host kernel: not carried yet. */
static int check_timers(char *err, size_t errn)
{
	FILE *f = fopen("/proc/self/timers", "re");
	if (!f)
		return 0;
	char line[256];
	int any = 0;
	while (fgets(line, sizeof(line), f))
		any |= !strncmp(line, "ID:", 3);
	fclose(f);
	if (any) {
		snprintf(err, errn, "the program has POSIX timers (timer_create): not carried by a checkpoint yet");
		return -EOPNOTSUPP;
	}
	if (__atomic_load_n(&thr_futex_pi_used, __ATOMIC_RELAXED)) {
		snprintf(err, errn,
			 "the program has used priority-inheritance futexes (FUTEX_LOCK_PI): their owner ids are the "
			 "host's, not carried by a checkpoint");
		return -EOPNOTSUPP;
	}
	return 0;
}

static int write_all_fd(int fd, struct ckpt_image *img)
{
	struct state_writer w;
	int r = state_writer_init(&w, fd, "process");
	if (r)
		return r;
	ckpt_write(&w, img);
	r = state_writer_finish(&w);
	state_writer_free(&w);
	return r;
}

/* DIR/state and DIR/memory, written under temporary names and renamed, so
 * a checkpoint that fails half-way leaves an older one whole. */
/* A task's pending mask from /proc ("SigPnd:" its own, "ShdPnd:" the
 * process's queue). */
static uint64_t proc_pending(int tid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	FILE *f = fopen(path, "re");
	uint64_t mask = 0;
	size_t len = strlen(field);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, len))
			mask = strtoull(line + len, NULL, 16);
	if (f)
		fclose(f);
	return mask;
}

/* Signals the host kernel holds for the program: sent while every thread
 * blocked them. corral mirrors the guest's mask onto the host's, so such a
 * signal waits in the kernel (a process-directed one in the process's
 * queue, a thread's own in that thread's), not in corral's pending set.
 * A process-directed one is carried as the first thread's, which takes it
 * when it unblocks the signal. When the program ends with the checkpoint
 * the process's queue is taken out with each signal's siginfo; when it
 * goes on, nothing is taken and the masks in /proc say what waits (the
 * siginfo is then that of a kill(2) from the program itself, as is a
 * thread's own signal's, of a tgkill(2)). */
static void gather_host_pending(struct ckpt_image *img, int leave_running)
{
	sigset_t want;
	sigemptyset(&want);
	for (int s = 1; s <= CKPT_NSIG && s <= SIGRTMAX; s++)
		if (s != SIGKILL && s != SIGSTOP && !sig_internal(s))
			sigaddset(&want, s);
	struct ckpt_thread *first = &img->threads[0];
	struct timespec zero = {0, 0};
	siginfo_t si;
	while (!leave_running && sigtimedwait(&want, &si, &zero) > 0) {
		int s = si.si_signo;
		if (s < 1 || s > CKPT_NSIG || (first->pending & GSIG_BIT(s)))
			continue;
		first->pending |= GSIG_BIT(s);
		first->info[s] = ckpt_siginfo_of(&si);
	}
	for (uint32_t i = 0; i < img->nthreads; i++) {
		struct ckpt_thread *c = &img->threads[i];
		uint64_t own = proc_pending(c->tid, "SigPnd:");
		uint64_t shared = i == 0 && leave_running ? proc_pending(c->tid, "ShdPnd:") : 0;
		for (int s = 1; s <= CKPT_NSIG; s++) {
			if (!((own | shared) & GSIG_BIT(s)) || !sigismember(&want, s) || (c->pending & GSIG_BIT(s)))
				continue;
			c->pending |= GSIG_BIT(s);
			c->info[s] = (struct ckpt_siginfo){.code = (own & GSIG_BIT(s)) ? SI_TKILL : SI_USER,
							   .pid = proc.pid,
							   .uid = (int32_t)getuid()};
		}
	}
}

int ckpt_save(const char *dir, int leave_running, const struct ckpt_tree_proc *tree, uint32_t ntree, char *err,
	      size_t errn)
{
	struct ckpt_image img;
	memset(&img, 0, sizeof(img));
	img.format = CKPT_VERSION;
	char sp[PATH_MAX], mp[PATH_MAX], st[PATH_MAX], mt[PATH_MAX];
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errn, "'%.300s': %s", dir, strerror(errno));
		return -errno;
	}
	snprintf(sp, sizeof(sp), "%s/state", dir);
	snprintf(mp, sizeof(mp), "%s/memory", dir);
	snprintf(st, sizeof(st), "%s/.state.tmp", dir);
	snprintf(mt, sizeof(mt), "%s/.memory.tmp", dir);
	int sfd = -1, mfd = -1, r;
	gather_process(&img);
	if ((!ckpt_tree_on() && (r = check_children(err, errn))) || (r = check_timers(err, errn)) ||
	    (r = gather_threads(&img, err, errn)))
		goto out;
	gather_host_pending(&img, leave_running);
	/* the guest's descriptors, before this opens files of its own */
	if ((r = gather_fds(&img, err, errn))) {
		if (!err[0])
			snprintf(err, errn, "open files: %s", strerror(-r));
		goto out;
	}
	if ((mfd = open(mt, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		r = -errno;
		snprintf(err, errn, "'%.300s': %s", mt, strerror(errno));
		goto out;
	}
	pthread_mutex_lock(&proc.mm_lock);
	r = gather_vmas(&img, mfd, err, errn);
	pthread_mutex_unlock(&proc.mm_lock);
	if (r) {
		if (!err[0])
			snprintf(err, errn, "guest memory: %s", strerror(-r));
		goto out;
	}
	img.tree = (struct ckpt_tree_proc *)tree;
	img.ntree = ntree;
	sfd = open(st, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	r = sfd < 0 ? 0 : write_all_fd(sfd, &img);
	img.tree = NULL;
	img.ntree = 0;
	if (sfd < 0 || r || fsync(sfd) < 0 || fsync(mfd) < 0) {
		if (!r)
			r = -errno;
		snprintf(err, errn, "'%.300s': %s", dir, strerror(-r));
		goto out;
	}
out:
	if (sfd >= 0)
		close(sfd);
	if (mfd >= 0)
		close(mfd);
	if (r && mfd >= 0) {
		unlink(st);
		unlink(mt);
	}
	ckpt_image_free(&img);
	return r;
}

/* The files ckpt_save wrote become the checkpoint (commit) or go (!commit). */
int ckpt_commit(const char *dir, int commit, char *err, size_t errn)
{
	char sp[PATH_MAX], mp[PATH_MAX], st[PATH_MAX], mt[PATH_MAX];
	snprintf(sp, sizeof(sp), "%s/state", dir);
	snprintf(mp, sizeof(mp), "%s/memory", dir);
	snprintf(st, sizeof(st), "%s/.state.tmp", dir);
	snprintf(mt, sizeof(mt), "%s/.memory.tmp", dir);
	if (!commit) {
		unlink(st);
		unlink(mt);
		return 0;
	}
	if (rename(mt, mp) < 0 || rename(st, sp) < 0) {
		int e = errno;
		snprintf(err, errn, "'%.300s': %s", dir, strerror(e));
		return -e;
	}
	return 0;
}

int ckpt_checkpoint(const char *dir, int leave_running, char *err, size_t errn)
{
	err[0] = 0;
	pthread_mutex_lock(&frz.one);
	int r = ckpt_freeze(err, errn);
	if (!r) {
		if (ckpt_tree_on())
			r = ckpt_tree_checkpoint(dir, leave_running, err, errn);
		else if (!(r = ckpt_save(dir, leave_running, NULL, 0, err, errn)))
			r = ckpt_commit(dir, 1, err, errn);
		if (!r && !leave_running) {
			ctl_finish();
			fflush(NULL);
			_exit(0);
		}
		ckpt_thaw();
	}
	pthread_mutex_unlock(&frz.one);
	return r;
}

/* ---- restore ---- */

static int read_file(const char *path, uint8_t **out, size_t *len, char *err, size_t errn)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errn, "'%.300s': %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -ENOENT;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > STATE_FILE_MAX) {
		snprintf(err, errn, "'%.300s': not a checkpoint's state file", path);
		close(fd);
		return -EINVAL;
	}
	uint8_t *b = malloc((size_t)st.st_size + 1);
	size_t n = 0;
	while (b && n < (size_t)st.st_size) {
		ssize_t k = read(fd, b + n, (size_t)st.st_size - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	if (!b || n != (size_t)st.st_size) {
		free(b);
		snprintf(err, errn, "'%.300s': cannot read it", path);
		return -EIO;
	}
	*out = b;
	*len = n;
	return 0;
}

/* The restore's own descriptors stay above every one it gives back to the
 * guest, so a dup3 onto a guest's number never closes one of them. */
static int fd_above(int fd, int low)
{
	if (fd < 0 || fd >= low)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, low);
	close(fd);
	if (n < 0)
		errno = EMFILE;
	return n;
}

static int open_flags(uint32_t f)
{
	int acc = (f & CKF_READ) && (f & CKF_WRITE) ? O_RDWR : (f & CKF_WRITE) ? O_WRONLY : O_RDONLY;
	return acc | ((f & CKF_APPEND) ? O_APPEND : 0) | ((f & CKF_NONBLOCK) ? O_NONBLOCK : 0) | O_NOCTTY | O_CLOEXEC;
}

/* Everything the checkpoint names outside itself, checked before anything
 * is committed: every mapped file and open file as it was. The files are
 * opened here and kept, so what is checked is what is used. */
static int check_files(const struct ckpt_image *img, int *vfd, int *ffd, int low, char *err, size_t errn)
{
	for (uint32_t k = 0; k < img->nvma; k++) {
		const struct ckpt_vma *v = &img->vmas[k];
		vfd[k] = -1;
		if (!v->path)
			continue;
		struct stat st;
		/* O_NONBLOCK: a FIFO put in its place does not wait for a writer */
		int fd = fs_openat(AT_FDCWD, v->path,
				   ((v->flags & CKV_SHARED) && (v->prot & VMEM_W) ? O_RDWR : O_RDONLY) | O_CLOEXEC |
					   O_NONBLOCK,
				   0);
		if (fd >= 0 && (fd = fd_above(fd, low)) < 0)
			fd = -errno;
		if (fd < 0) {
			snprintf(err, errn, "mapped file '%.300s': %s", v->path, strerror(-fd));
			return -ENOENT;
		}
		vfd[k] = fd;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !ident_eq(&st, &v->id)) {
			snprintf(err, errn,
				 "mapped file '%.300s' changed since the checkpoint (its size or time differ)",
				 v->path);
			return -ESTALE;
		}
	}
	for (uint32_t k = 0; k < img->nfd; k++) {
		const struct ckpt_fd *f = &img->fds[k];
		struct stat st;
		if (f->kind == CKFD_CHAN)
			continue; /* made by make_chans */
		int flags = open_flags(f->flags) | (f->kind == CKFD_DIR ? O_DIRECTORY : 0);
		/* a host path: --root's confinement held when it was opened */
		/* not blocking while checked: a FIFO put in a file's place does
		 * not wait for a writer (the tree's other processes wait for this one) */
		int fd = open(f->path, flags | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0 && errno == ELOOP)
			fd = open(f->path, flags | O_NONBLOCK);
		fd = fd_above(fd, low);
		ffd[k] = fd;
		if (fd < 0) {
			snprintf(err, errn, "open file '%.300s': %s", f->path, strerror(errno));
			return -ENOENT;
		}
		bool same =
			fstat(fd, &st) == 0 && (f->kind == CKFD_FILE  ? S_ISREG(st.st_mode) && ident_eq(&st, &f->id)
						: f->kind == CKFD_DIR ? S_ISDIR(st.st_mode)
								      : S_ISCHR(st.st_mode) && dev_stateless(f->path));
		if (!same) {
			snprintf(err, errn,
				 "open file '%.300s' changed since the checkpoint (its kind, size or time differ)",
				 f->path);
			return -ESTALE;
		}
		if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
			snprintf(err, errn, "open file '%.300s': %s", f->path, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static struct vma *vma_at(struct proc *p, uint64_t start)
{
	int lo = 0, hi = p->nvma;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (p->vmas[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < p->nvma && p->vmas[lo].start == start ? &p->vmas[lo] : NULL;
}

static int restore_memory(struct proc *p, const struct ckpt_image *img, const int *vfd, int mfd, char *err, size_t errn)
{
	for (uint32_t k = 0; k < img->nvma; k++) {
		const struct ckpt_vma *v = &img->vmas[k];
		unsigned vflags = ((v->flags & CKV_SHARED) ? VMA_SHARED : 0) | ((v->flags & CKV_HEAP) ? VMA_HEAP : 0) |
				  ((v->flags & CKV_STACK) ? VMA_STACK : 0);
		/* saved pages under PROT_NONE (mprotect'ed after they were
		 * written): mapped with access to put them back, then closed */
		bool closed = v->nruns && !v->prot;
		long m = mm_map(p, v->start, v->end - v->start, closed ? VMEM_R | VMEM_W : v->prot, vflags,
				v->path ? vfd[k] : -1, v->off, v->path);
		struct vma *nv = m < 0 ? NULL : vma_at(p, v->start);
		if (!nv || (!nv->host && v->nruns)) {
			snprintf(err, errn, "mapping at 0x%llx: %s", (unsigned long long)v->start,
				 strerror(m < 0 ? (int)-m : ENOMEM));
			return -ENOMEM;
		}
		for (uint32_t r = 0; r < v->nruns; r++) {
			uint8_t *dst = nv->host + v->runs[r].page * CKPT_PAGE;
			size_t len = v->runs[r].count * CKPT_PAGE;
			off_t at = (off_t)(v->memoff + v->runs[r].page * CKPT_PAGE);
			while (len) {
				ssize_t n = pread(mfd, dst, len, at);
				if (n <= 0) {
					snprintf(err, errn, "memory file: %s",
						 n < 0 ? strerror(errno) : "shorter than its state says");
					return -EIO;
				}
				dst += n;
				at += n;
				len -= (size_t)n;
			}
		}
		if (closed && (m = mm_mprotect(p, v->start, v->end - v->start, 0)) < 0) {
			snprintf(err, errn, "mapping at 0x%llx: %s", (unsigned long long)v->start, strerror((int)-m));
			return -ENOMEM;
		}
	}
	p->brk_start = img->brk_start;
	p->brk_cur = img->brk_cur;
	p->mmap_base = img->mmap_base;
	return 0;
}

/* The checkpoint's pipes and socket pairs, with their data, above low:
 * cfd[2 * k + end]. */
static int make_chans(const struct ckpt_image *img, int *cfd, int low, char *err, size_t errn)
{
	for (uint32_t k = 0; k < img->nchan; k++) {
		int r = ckpt_chan_make(&img->chans[k], k, &cfd[2 * k], low, err, errn);
		if (r)
			return r;
	}
	return 0;
}

static int restore_fds(const struct ckpt_image *img, int *ffd, const int *cfd, char *err, size_t errn)
{
	for (uint32_t k = 0; k < img->nfd; k++) {
		const struct ckpt_fd *f = &img->fds[k];
		if (fs_fd_reserved(f->fd)) {
			snprintf(err, errn,
				 "descriptor %d: this corral keeps that number for itself (a lower open file limit?)",
				 f->fd);
			return -EBUSY;
		}
		if (f->kind == CKFD_CHAN) {
			/* the ends' descriptors share one description, as dup'ed ones did */
			int src = cfd[2 * f->chan + f->end];
			if (dup3(src, f->fd, (f->flags & CKF_CLOEXEC) ? O_CLOEXEC : 0) < 0 ||
			    fcntl(f->fd, F_SETFL, (f->flags & CKF_NONBLOCK) ? O_NONBLOCK : 0) < 0) {
				snprintf(err, errn, "descriptor %d: %s", f->fd, strerror(errno));
				return -EIO;
			}
			ffd[k] = f->fd;
			continue;
		}
		if (f->kind == CKFD_FILE && lseek(ffd[k], (off_t)f->offset, SEEK_SET) < 0) {
			snprintf(err, errn, "open file '%.300s': %s", f->path, strerror(errno));
			return -EIO;
		}
		if (f->kind == CKFD_DIR && f->offset && lseek(ffd[k], (off_t)f->offset, SEEK_SET) < 0) {
			snprintf(err, errn, "directory '%.300s': cannot go back to where it was read", f->path);
			return -EIO;
		}
		if (ffd[k] != f->fd) {
			if (dup3(ffd[k], f->fd, (f->flags & CKF_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
				snprintf(err, errn, "descriptor %d: %s", f->fd, strerror(errno));
				return -EIO;
			}
			close(ffd[k]);
			ffd[k] = f->fd;
		} else if (!(f->flags & CKF_CLOEXEC)) {
			fcntl(f->fd, F_SETFD, 0);
		}
	}
	return 0;
}

static int restore_limits(const struct ckpt_image *img, char *err, size_t errn)
{
	for (int k = 0; k < CKPT_NRLIMIT; k++) {
		struct rlimit rl = {
			img->rlim[k].cur == UINT64_MAX ? RLIM_INFINITY : (rlim_t)img->rlim[k].cur,
			img->rlim[k].max == UINT64_MAX ? RLIM_INFINITY : (rlim_t)img->rlim[k].max,
		};
		if (setrlimit(k, &rl) < 0) {
			snprintf(err, errn, "resource limit %d: cannot set it back (%s): the hard limit here is lower?",
				 k, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static struct gthread *thread_of(const struct ckpt_thread *c)
{
	struct gthread *t = calloc(1, sizeof(*t));
	if (!t || cpu_init_opts(&t->cpu, CPU_MODE_USER, &proc.vm, &proc.opts.cpu)) {
		free(t);
		return NULL;
	}
	cpu_reset_user(&t->cpu);
	/* what a checkpoint holds over a fresh user-mode CPU (ckpt_image.c
	 * put_cpu); the rest (control registers, MSRs) is user mode's own */
	struct cpu_state *st = &t->cpu.s;
	uint64_t fl = c->s.rflags;
	memcpy(st->gpr, c->s.gpr, sizeof(st->gpr));
	st->rip = c->s.rip;
	memcpy(st->seg, c->s.seg, sizeof(st->seg));
	st->xcr0 = c->s.xcr0;
	memcpy(st->xmm, c->s.xmm, sizeof(st->xmm));
	st->mxcsr = c->s.mxcsr;
	st->x87 = c->s.x87;
	cpu_state_loaded(&t->cpu);
	cpu_set_rflags(&t->cpu, fl);
	t->cpu.trace = proc.opts.trace;
	t->cpu.opaque = t;
	t->clear_child_tid = c->clear_child_tid;
	t->robust_list = c->robust_list;
	t->robust_len = c->robust_len;
	t->sigmask = c->sigmask;
	t->pending = c->pending;
	t->saved_mask = c->saved_mask;
	t->sigsuspended = c->sigsuspended;
	t->ss_sp = c->ss_sp;
	t->ss_size = c->ss_size;
	t->ss_flags = (int)c->ss_flags;
	for (int s = 1; s <= CKPT_NSIG; s++) {
		if (!(c->pending & GSIG_BIT(s)))
			continue;
		siginfo_t *si = &t->pinfo[s];
		const struct ckpt_siginfo *i = &c->info[s];
		memset(si, 0, sizeof(*si));
		si->si_signo = s;
		si->si_code = i->code;
		si->si_errno = i->err;
		if (s == SIGSEGV || s == SIGBUS || s == SIGILL || s == SIGFPE || s == SIGTRAP) {
			si->si_addr = (void *)(uintptr_t)i->addr;
		} else {
			si->si_pid = i->pid;
			si->si_uid = (uid_t)i->uid;
			if (s == SIGCHLD)
				si->si_status = i->status;
			else
				si->si_value.sival_ptr = (void *)(uintptr_t)i->value;
		}
	}
	return t;
}

struct restart {
	struct gthread *t;
	int gtid; /* its id as the program knows it, or 0 */
	sem_t started;
};

/* Every process and thread of a restored tree is there before any of
 * them runs: the ids the program knows all name something. */
static void wait_tree(void)
{
	int r = pidmap_wait();
	if (r) {
		if (r == -ETIMEDOUT)
			fprintf(stderr, "corral: restore-exec: the other processes of the tree did not start\n");
		_exit(1);
	}
}

static void *thread_entry(void *arg)
{
	struct restart *s = arg;
	struct gthread *t = s->t;
	t->tid = (int)syscall(SYS_gettid);
	if (s->gtid)
		pidmap_add(s->gtid, t->tid);
	cur_thread = t;
	sig_setmask(t, t->sigmask);
	thr_register(t);
	sem_post(&s->started);
	wait_tree();
	thr_main_loop(t);
}

/* One process of a checkpoint (img, taken) in this process: its memory
 * file in dir; a tree's pipes already made (tree_cfd: channel k's ends,
 * gfd: all ngfd of the tree's, closed once this process has its own),
 * the restore's own descriptors at low or above; member_sig >= 0 for a
 * process of a tree other than the first (the checkpoint signal, or 0). */
static int restore_process(const struct proc_opts *o, const char *dir, struct ckpt_image *img_in, const int *tree_cfd,
			   const int *gfd, uint32_t ngfd, int low, int member_sig)
{
	struct proc *p = &proc;
	char err[512], path[PATH_MAX];
	struct ckpt_image img = *img_in;
	int *vfd = NULL, *ffd = NULL, *cfd = NULL, mfd = -1;
	struct gthread **th = NULL;
	memset(img_in, 0, sizeof(*img_in));
	snprintf(path, sizeof(path), "%s/memory", dir);
	mfd = fd_above(open(path, O_RDONLY | O_CLOEXEC), low);
	struct stat mst;
	if (mfd < 0 || fstat(mfd, &mst) < 0 || !S_ISREG(mst.st_mode) || (uint64_t)mst.st_size != img.memsize) {
		fprintf(stderr, "corral: restore-exec: '%.300s': %s\n", path,
			mfd < 0 ? strerror(errno) : "not the memory file of this checkpoint (its size differs)");
		goto fail;
	}

	/* the process as proc_exec sets it up, with the checkpoint's root and cap */
	p->opts = *o;
	p->opts.root = img.root[0] ? img.root : NULL;
	p->opts.mem = img.mem_cap;
	p->pid = getpid();
	const char *self = o->self_exe;
	ssize_t n;
	if (self && *self && strlen(self) < sizeof(p->self_exe)) {
		n = (ssize_t)strlen(self);
		memcpy(p->self_exe, self, (size_t)n);
	} else {
		n = readlink("/proc/self/exe", p->self_exe, sizeof(p->self_exe) - 1);
	}
	p->self_exe[n > 0 ? n : 0] = 0;
	int r;
	if (pthread_mutex_init(&p->thr_lock, NULL) || vmem_init(&p->vm) || mm_init(p)) {
		fprintf(stderr, "corral: restore-exec: out of memory\n");
		goto fail;
	}
	if ((r = fs_init(p))) {
		fprintf(stderr, "corral: restore-exec: root '%.300s': %s\n", img.root, strerror(-r));
		goto fail;
	}
	int sfd = open(p->self_exe, O_PATH | O_CLOEXEC);
	p->self_fd = sfd >= 0 ? fs_reserve_fd(p, sfd) : -1;
	if (pidmap_fd >= 0)
		pidmap_fd = fs_reserve_fd(p, pidmap_fd); /* out of the program's way */
	if ((r = sig_init(p))) {
		fprintf(stderr, "corral: restore-exec: cannot set up signals: %s\n", strerror(-r));
		goto fail;
	}
	vfd = calloc(img.nvma + 1, sizeof(int));
	ffd = calloc(img.nfd + 1, sizeof(int));
	th = calloc(img.nthreads, sizeof(*th));
	cfd = calloc(2 * (size_t)img.nchan + 1, sizeof(int));
	if (!vfd || !ffd || !th || !cfd) {
		fprintf(stderr, "corral: restore-exec: out of memory\n");
		goto fail;
	}
	for (uint32_t k = 0; k < img.nvma; k++)
		vfd[k] = -1;
	for (uint32_t k = 0; k < img.nfd; k++)
		ffd[k] = -1;
	for (uint32_t k = 0; k < 2 * img.nchan; k++)
		cfd[k] = -1;
	err[0] = 0;
	if (chdir(img.cwd) < 0) {
		fprintf(stderr, "corral: restore-exec: working directory '%.300s': %s\n", img.cwd, strerror(errno));
		goto fail;
	}
	if (tree_cfd)
		for (uint32_t k = 0; k < 2 * img.nchan; k++)
			cfd[k] = tree_cfd[k] >= 0 ? fcntl(tree_cfd[k], F_DUPFD_CLOEXEC, low) : -1;
	if ((r = check_files(&img, vfd, ffd, low, err, sizeof(err))) ||
	    (!tree_cfd && (r = make_chans(&img, cfd, low, err, sizeof(err)))) ||
	    (r = restore_limits(&img, err, sizeof(err))) || (r = restore_memory(p, &img, vfd, mfd, err, sizeof(err))) ||
	    (r = restore_fds(&img, ffd, cfd, err, sizeof(err)))) {
		fprintf(stderr, "corral: restore-exec: %s\n", err);
		goto fail;
	}
	/* a process of a tree is set up once its files are checked and
	 * opened: until all are, none runs (one that ran would change the
	 * files the others check, such as a file they all append to) */
	if (tree_cfd)
		pidmap_add(0, 0);
	for (uint32_t k = 0; k < 2 * img.nchan; k++)
		if (cfd[k] >= 0) {
			close(cfd[k]);
			cfd[k] = -1;
		}
	/* the tree's other pipes are other processes' */
	for (uint32_t k = 0; k < ngfd; k++)
		if (gfd[k] >= 0)
			close(gfd[k]);
	close(mfd);
	mfd = -1;
	for (uint32_t k = 0; k < img.nvma; k++)
		if (vfd[k] >= 0) {
			close(vfd[k]);
			vfd[k] = -1;
		}
	umask((mode_t)img.umask);
	copy_str(p->exe_path, sizeof(p->exe_path), img.exe_path);
	memcpy(p->auxv, img.auxv, img.auxv_n * 8);
	p->auxv_n = (int)img.auxv_n;
	for (uint32_t k = 0; k < img.nthreads; k++) {
		if (!(th[k] = thread_of(&img.threads[k]))) {
			fprintf(stderr, "corral: restore-exec: out of memory\n");
			goto fail;
		}
	}
	struct gsigaction acts[GSIG_MAX + 1];
	for (int s = 1; s <= GSIG_MAX; s++)
		acts[s] =
			(struct gsigaction){img.act[s].handler, img.act[s].flags, img.act[s].restorer, img.act[s].mask};
	sig_restore_actions(acts);
	for (int k = 0; k < 3; k++) {
		struct itimerval it = {{(time_t)img.itimer[k].int_s, (suseconds_t)img.itimer[k].int_us},
				       {(time_t)img.itimer[k].val_s, (suseconds_t)img.itimer[k].val_us}};
		if (it.it_value.tv_sec || it.it_value.tv_usec)
			setitimer(k, &it, NULL);
	}
	if (member_sig >= 0) {
		/* the first process takes the checkpoint signal */
		if (member_sig) {
			ckpt_signal = member_sig;
			signal(member_sig, SIG_IGN);
		}
		ckpt_tree_after_fork();
	}
	/* the other threads, then the first one on this host thread */
	struct gthread *main_t = th[0];
	main_t->tid = p->pid;
	for (uint32_t k = 1; k < img.nthreads; k++) {
		struct restart s = {.t = th[k], .gtid = img.pid ? img.threads[k].tid : 0};
		sem_init(&s.started, 0, 0);
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, THREAD_HOST_STACK);
		pthread_t pt;
		int e = pthread_create(&pt, &at, thread_entry, &s);
		pthread_attr_destroy(&at);
		if (e) {
			fprintf(stderr, "corral: restore-exec: cannot start thread %u: %s\n", k, strerror(e));
			_exit(1);
		}
		while (sem_wait(&s.started) && errno == EINTR)
			;
		sem_destroy(&s.started);
	}
	ckpt_image_free(&img);
	free(vfd);
	free(ffd);
	free(cfd);
	free(th);
	cur_thread = main_t;
	sig_setmask(main_t, main_t->sigmask);
	thr_register(main_t);
	/* the control socket once every thread is there (as at a start) */
	if ((r = ctl_start(p, err, sizeof(err)))) {
		fprintf(stderr, "corral: restore-exec: %s\n", err);
		_exit(2);
	}
	wait_tree();
	thr_main_loop(main_t);

fail:
	/* nothing of the program ran: give back what was taken */
	for (uint32_t k = 0; vfd && k < img.nvma; k++)
		if (vfd[k] > 2)
			close(vfd[k]);
	for (uint32_t k = 0; ffd && k < img.nfd; k++)
		if (ffd[k] > 2)
			close(ffd[k]);
	for (uint32_t k = 0; cfd && k < 2 * img.nchan; k++)
		if (cfd[k] > 2)
			close(cfd[k]);
	for (uint32_t k = 0; th && k < img.nthreads; k++)
		if (th[k]) {
			cpu_destroy(&th[k]->cpu);
			free(th[k]);
		}
	if (mfd >= 0)
		close(mfd);
	free(vfd);
	free(ffd);
	free(cfd);
	free(th);
	ckpt_image_free(&img);
	return 1;
}

static int parse_state(const char *dir, struct ckpt_image *img, const struct proc_opts *o)
{
	char err[512], path[PATH_MAX];
	uint8_t *data = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/state", dir);
	if (read_file(path, &data, &len, err, sizeof(err))) {
		fprintf(stderr, "corral: restore-exec: %s\n", err);
		return -1;
	}
	int r = ckpt_parse(data, len, img, err, sizeof(err));
	free(data);
	if (r) {
		fprintf(stderr, "corral: restore-exec: '%.300s': %s\n", path, err);
		return -1;
	}
	if (strcmp(img->version, o->version ? o->version : "")) {
		fprintf(stderr,
			"corral: restore-exec: '%.300s' was written by corral %s; this is corral %s, which restores "
			"only its own checkpoints\n",
			dir, img->version[0] ? img->version : "(unknown)", o->version ? o->version : "(unknown)");
		ckpt_image_free(img);
		return -1;
	}
	return 0;
}

static int max_fd(const struct ckpt_image *img)
{
	return img->nfd ? img->fds[img->nfd - 1].fd : 2;
}

/* A child that had exited: it exits again, with its status. */
static _Noreturn void die_as(int32_t status)
{
	if (!(status & 0x7f))
		_exit((status >> 8) & 0xff);
	struct rlimit no = {0, 0};
	setrlimit(RLIMIT_CORE, &no);
	sigset_t all;
	sigfillset(&all);
	signal(status & 0x7f, SIG_DFL);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	raise(status & 0x7f);
	_exit(128 + (status & 0x7f));
}

/* A restored process's group and session as they were, the ids the
 * program knew. Before its children are forked: a session or group it
 * led is made again (setsid, setpgid). */
static int lead_group(const struct ckpt_image *img, char *err, size_t errn)
{
	pid_t self = getpid();
	if (img->format < 4) /* restore-exec's group and session */
		return 0;
	if (img->sid == img->pid && getsid(0) != self && setsid() < 0) {
		snprintf(err, errn, "process %d cannot lead its session again: %s", img->pid, strerror(errno));
		return -errno;
	}
	if (img->pgid == img->pid && getpgrp() != self && setpgid(0, 0) < 0) {
		snprintf(err, errn, "process %d cannot lead its process group again: %s", img->pid, strerror(errno));
		return -errno;
	}
	return 0;
}

/* After its children are forked: the group of another process of the
 * tree joined once its leader has made it again (or the group of
 * restore-exec that stands for one outside the tree). */
static int join_group(const struct ckpt_image *img, char *err, size_t errn)
{
	if (!img->pgid || img->pgid == img->pid)
		return 0;
	for (int waited = 0; waited < 10000; waited += 10) {
		int h = pidmap_find(img->pgid);
		if (h > 0 && getpgrp() == h)
			return 0;
		if (h > 0 && getpgid(h) == h && setpgid(0, h) == 0)
			return 0;
		struct timespec ts = {0, 10 * 1000000};
		nanosleep(&ts, NULL);
	}
	snprintf(err, errn, "process %d cannot join its process group %d again", img->pid, img->pgid);
	return -EPERM;
}

/* The first process's group and session when they are not of the tree
 * (those of the shell that ran corral): restore-exec's stand for them.
 * The count of pidmap entries that makes (added if add). */
static uint32_t outside_ids(const struct ckpt_image *root, const struct ckpt_tree_proc *tp, uint32_t ntp, bool add)
{
	int32_t id[2] = {root->pgid, root->sid};
	pid_t host[2] = {getpgrp(), getsid(0)};
	uint32_t n = 0;
	for (int k = 0; k < 2; k++) {
		/* 0: led from outside the program's pid namespace; it stays 0
		 * where restore-exec's is outside its namespace too */
		bool inside = (!id[k] && !host[k]) || id[k] == root->pid;
		for (uint32_t j = 0; j < ntp && !inside; j++)
			inside = tp[j].kind == CKTP_PROCESS && tp[j].pid == id[k];
		if (inside)
			continue;
		if (add)
			pidmap_add(id[k], host[k]);
		n++;
	}
	return n;
}

/* A tree: every process's image read and checked, the pipes between them
 * made once, then the processes forked, each by its parent, parents
 * before children; each commits its own image and waits until all are
 * there (wait_tree) before its program goes on. */
static int restore_tree(const struct proc_opts *o, const char *dir, struct ckpt_image *root)
{
	uint32_t n = root->ntree + 1, ng = 0, want = 0;
	struct ckpt_image *im = calloc(n, sizeof(*im));
	uint32_t **gidx = calloc(n, sizeof(*gidx));
	struct ckpt_chan *gc = NULL;
	int *gfd = NULL, low = 3, rc = 1;
	char err[512], sub[PATH_MAX];
	struct ckpt_tree_proc *tp = root->tree;
	root->tree = NULL;
	if (!im || !gidx) {
		fprintf(stderr, "corral: restore-exec: out of memory\n");
		goto out;
	}
	im[0] = *root;
	memset(root, 0, sizeof(*root));
	want++; /* the first process set up (its group joined) */
	for (uint32_t j = 1; j < n; j++) {
		want++; /* a zombie's id, or a process set up */
		if (tp[j - 1].kind != CKTP_PROCESS)
			continue;
		snprintf(sub, sizeof(sub), "%s/p%d", dir, tp[j - 1].pid);
		if (parse_state(sub, &im[j], o))
			goto out;
		if (im[j].ntree || im[j].pid != tp[j - 1].pid) {
			fprintf(stderr, "corral: restore-exec: '%.300s': not the image of process %d of this tree\n",
				sub, tp[j - 1].pid);
			goto out;
		}
	}
	/* the pipes: one per key, its data from an image that holds its read end */
	uint32_t total = 0;
	for (uint32_t j = 0; j < n; j++) {
		total += im[j].nchan;
		want += im[j].nthreads;
		if (max_fd(&im[j]) + 1 > low)
			low = max_fd(&im[j]) + 1;
	}
	gc = calloc(total + 1, sizeof(*gc));
	if (!gc) {
		fprintf(stderr, "corral: restore-exec: out of memory\n");
		goto out;
	}
	for (uint32_t j = 0; j < n; j++) {
		if (im[j].nchan && !(gidx[j] = calloc(im[j].nchan, sizeof(uint32_t)))) {
			fprintf(stderr, "corral: restore-exec: out of memory\n");
			goto out;
		}
		for (uint32_t k = 0; k < im[j].nchan; k++) {
			const struct ckpt_chan *c = &im[j].chans[k];
			uint32_t g = ng;
			for (uint32_t i = 0; c->key && i < ng; i++)
				if (gc[i].key == c->key)
					g = i;
			if (g == ng) {
				gc[ng] = *c;
				gc[ng].held = 0;
				memset(gc[ng].q, 0, sizeof(gc[ng].q));
				ng++;
			}
			bool pipe = c->kind == CKCH_PIPE;
			if (gc[g].kind != c->kind || (pipe && gc[g].bufsize[0] != c->bufsize[0])) {
				fprintf(stderr, "corral: restore-exec: '%.300s': pipe %u differs between processes\n",
					dir, k);
				goto out;
			}
			/* each end's queue (borrowed from the image) and a socket
			 * end's buffer size and shutdowns from a process that
			 * holds it (one reads its queue at a checkpoint) */
			for (uint32_t e = 0; e < 2; e++) {
				if (!(c->held & (1u << e)) || (pipe && e))
					continue;
				if (!gc[g].q[e].nmsg)
					gc[g].q[e] = c->q[e];
				if (!pipe) {
					gc[g].bufsize[e] = c->bufsize[e];
					gc[g].shut |= c->shut & (3u << (2 * e));
				}
			}
			gc[g].held |= c->held;
			gidx[j][k] = g;
		}
	}
	want += outside_ids(&im[0], tp, n - 1, false);
	if (pidmap_create(want ? want : 1)) {
		fprintf(stderr, "corral: restore-exec: out of memory\n");
		goto out;
	}
	pidmap_add(im[0].pid, getpid());
	outside_ids(&im[0], tp, n - 1, true);
	if (lead_group(&im[0], err, sizeof(err))) {
		fprintf(stderr, "corral: restore-exec: %s\n", err);
		pidmap_fail();
		goto out;
	}
	if ((o->control || o->checkpoint_signal) && ckpt_tree_start(err, sizeof(err))) {
		fprintf(stderr, "corral: restore-exec: %s\n", err);
		goto out;
	}
	if (!(gfd = calloc(2 * (size_t)ng + 1, sizeof(int)))) {
		fprintf(stderr, "corral: restore-exec: out of memory\n");
		goto out;
	}
	for (uint32_t g = 0; g < 2 * ng; g++)
		gfd[g] = -1;
	for (uint32_t g = 0; g < ng; g++)
		if (ckpt_chan_make(&gc[g], g, &gfd[2 * g], low, err, sizeof(err))) {
			fprintf(stderr, "corral: restore-exec: %s\n", err);
			goto out;
		}
	/* the processes: children after their parents (the tree's order) */
	uint32_t me = 0;
	for (uint32_t j = 1; j < n; j++) {
		if (tp[j - 1].ppid != im[me].pid)
			continue;
		fflush(NULL);
		pid_t h = fork();
		if (h < 0) {
			fprintf(stderr, "corral: restore-exec: fork: %s\n", strerror(errno));
			pidmap_fail();
			goto out;
		}
		if (h == 0) {
			if (tp[j - 1].kind == CKTP_ZOMBIE)
				die_as(tp[j - 1].status);
			me = j;
			if (lead_group(&im[me], err, sizeof(err))) {
				fprintf(stderr, "corral: restore-exec: %s\n", err);
				pidmap_fail();
				_exit(1);
			}
			continue;
		}
		pidmap_add(tp[j - 1].pid, h);
		if (tp[j - 1].kind == CKTP_ZOMBIE) {
			/* it is a zombie before this program's signals are set up:
			 * its SIGCHLD was the program's before the checkpoint */
			siginfo_t si;
			while (waitid(P_PID, (id_t)h, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
				;
		}
	}
	if (join_group(&im[me], err, sizeof(err))) {
		fprintf(stderr, "corral: restore-exec: %s\n", err);
		pidmap_fail();
		if (me)
			_exit(1);
		goto out;
	}
	/* this process is set up once restore_process has checked its files:
	 * no program of the tree runs before all are */
	int *cfd = calloc(2 * (size_t)im[me].nchan + 1, sizeof(int));
	if (!cfd) {
		pidmap_fail();
		goto out;
	}
	for (uint32_t k = 0; k < im[me].nchan; k++)
		for (int e = 0; e < 2; e++)
			cfd[2 * k + e] = (im[me].chans[k].held & (1u << e)) ? gfd[2 * gidx[me][k] + e] : -1;
	if (me) {
		snprintf(sub, sizeof(sub), "%s/p%d", dir, im[me].pid);
		dir = sub;
	}
	/* the queues were borrowed: the pipes hold the data now; the other
	 * processes' images are theirs */
	free(gc);
	gc = NULL;
	for (uint32_t j = 0; j < n; j++)
		if (j != me)
			ckpt_image_free(&im[j]);
	struct proc_opts mo = *o;
	if (me) {
		mo.control = NULL;
		mo.checkpoint_signal = 0;
		mo.checkpoint_dir = NULL;
	}
	restore_process(&mo, dir, &im[me], cfd, gfd, 2 * ng, low, me ? o->checkpoint_signal : -1);
	/* it could not: the tree does not start */
	pidmap_fail();
	if (me)
		_exit(1);
	free(cfd);
out:
	free(gc);
	for (uint32_t j = 0; im && j < n; j++)
		ckpt_image_free(&im[j]);
	for (uint32_t j = 0; gidx && j < n; j++)
		free(gidx[j]);
	free(gidx);
	free(im);
	free(tp);
	if (gfd)
		for (uint32_t g = 0; g < 2 * ng; g++)
			if (gfd[g] >= 0)
				close(gfd[g]);
	free(gfd);
	return rc;
}

int proc_restore(const struct proc_opts *o, const char *dir)
{
	struct ckpt_image img;
	if (o->sandbox) {
		fprintf(stderr, "corral: restore-exec: --sandbox is not supported with checkpoints yet\n");
		return 2;
	}
	if (parse_state(dir, &img, o))
		return 1;
	if (img.ntree)
		return restore_tree(o, dir, &img);
	/* the ids the program knew: its own and its threads', its group's and session's */
	if (img.pid && pidmap_create(img.nthreads + outside_ids(&img, NULL, 0, false))) {
		fprintf(stderr, "corral: restore-exec: out of memory\n");
		ckpt_image_free(&img);
		return 1;
	}
	pidmap_add(img.pid, getpid());
	char err[512];
	if (img.pid) {
		outside_ids(&img, NULL, 0, true);
		if (lead_group(&img, err, sizeof(err))) {
			fprintf(stderr, "corral: restore-exec: %s\n", err);
			ckpt_image_free(&img);
			return 1;
		}
	}
	return restore_process(o, dir, &img, NULL, NULL, 0, max_fd(&img) + 1, -1);
}
