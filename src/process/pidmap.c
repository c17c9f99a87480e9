/* Process and thread ids as the program knows them. A fresh program sees
 * the host's ids (no map: every translation is the identity, one test of
 * a NULL pointer). A restored one sees the ids it had when it was
 * checkpointed: the restore makes a map from those to the new host ids,
 * in memory shared by every process of the restored tree (a process
 * forked later inherits it), filled as the tree is made again. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "process/internal.h"

struct pidmap *pidmap;
int pidmap_fd = -1;

/* A memfd rather than anonymous memory: a program that execs keeps it
 * (--ckpt-pidmap FD), and its ids with it. */
int pidmap_create(uint32_t want)
{
	if (!want || want > PIDMAP_MAX)
		return -EINVAL;
	size_t len = sizeof(struct pidmap) + want * sizeof(pidmap->e[0]);
	int fd = memfd_create("corral-pids", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	void *m =
		ftruncate(fd, (off_t)len) < 0 ? MAP_FAILED : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		int e = -errno;
		close(fd);
		return e;
	}
	pidmap = m;
	pidmap->want = want;
	pidmap_fd = fd;
	return 0;
}

int pidmap_attach(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < sizeof(struct pidmap) ||
	    (uint64_t)st.st_size > sizeof(struct pidmap) + (uint64_t)PIDMAP_MAX * sizeof(pidmap->e[0]))
		return -EINVAL;
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	struct pidmap *p = m;
	/* the entries must lie within the file (another corral wrote it) */
	if (p->want > (st.st_size - sizeof(struct pidmap)) / sizeof(p->e[0])) {
		munmap(m, (size_t)st.st_size);
		return -EINVAL;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	pidmap = p;
	pidmap_fd = fd;
	return 0;
}

void pidmap_add(int guest, int host)
{
	struct pidmap *m = pidmap;
	if (!m)
		return;
	uint32_t k = __atomic_fetch_add(&m->claimed, 1, __ATOMIC_SEQ_CST);
	if (k >= m->want)
		return;
	m->e[k].guest = guest;
	m->e[k].host = host;
	__atomic_store_n(&m->e[k].ready, 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&m->n, 1, __ATOMIC_SEQ_CST);
}

int pidmap_to_host(int guest)
{
	const struct pidmap *m = pidmap;
	uint32_t n = __atomic_load_n(&m->claimed, __ATOMIC_ACQUIRE);
	for (uint32_t k = 0; k < n && k < m->want; k++)
		if (__atomic_load_n(&m->e[k].ready, __ATOMIC_ACQUIRE) && m->e[k].guest == guest)
			return m->e[k].host;
	return guest;
}

int pidmap_find(int guest)
{
	const struct pidmap *m = pidmap;
	if (!m)
		return 0;
	uint32_t n = __atomic_load_n(&m->claimed, __ATOMIC_ACQUIRE);
	for (uint32_t k = 0; k < n && k < m->want; k++)
		if (__atomic_load_n(&m->e[k].ready, __ATOMIC_ACQUIRE) && m->e[k].guest == guest)
			return m->e[k].host;
	return 0;
}

int pidmap_to_guest(int host)
{
	const struct pidmap *m = pidmap;
	uint32_t n = __atomic_load_n(&m->claimed, __ATOMIC_ACQUIRE);
	for (uint32_t k = 0; k < n && k < m->want; k++)
		if (__atomic_load_n(&m->e[k].ready, __ATOMIC_ACQUIRE) && m->e[k].host == host)
			return m->e[k].guest;
	return host;
}

void pidmap_fail(void)
{
	if (pidmap)
		__atomic_store_n(&pidmap->failed, 1, __ATOMIC_SEQ_CST);
}

int pidmap_wait(void)
{
	struct pidmap *m = pidmap;
	if (!m)
		return 0;
	/* every process and thread of the tree is there before any runs */
	for (long waited = 0;; waited++) {
		if (__atomic_load_n(&m->failed, __ATOMIC_SEQ_CST))
			return -ECANCELED;
		if (__atomic_load_n(&m->n, __ATOMIC_SEQ_CST) >= m->want)
			return 0;
		if (waited > 60000) /* a minute: a process of the tree is gone */
			return -ETIMEDOUT;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
}
