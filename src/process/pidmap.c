/* Process and thread ids as the program knows them. A fresh program sees
 * the host's ids (no map: every translation is the identity, one test of
 * a NULL pointer). A restored one sees the ids it had when it was
 * checkpointed: the restore makes a map from those to the new host ids,
 * in memory shared by every process of the restored tree (a process
 * forked later inherits it), filled as the tree is made again. */
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "process/internal.h"

struct pidmap *pidmap;

int pidmap_create(uint32_t want)
{
	if (!want || want > PIDMAP_MAX)
		return -EINVAL;
	size_t len = sizeof(struct pidmap) + want * sizeof(pidmap->e[0]);
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	pidmap = m;
	pidmap->want = want;
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
