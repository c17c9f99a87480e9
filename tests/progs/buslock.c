/* A guest program for the process VM's LOCK'd operations across threads
 * (tests/process/t_buslock.sh), run under corral only: split LOCK'd
 * operations are slow on hardware by design (Linux may even stop a task
 * that does them), so there is no native run to compare with.
 *
 *   buslock   one thread adds 1 with LOCK XADD to the lower half of an
 *             8-byte value across a cache line and of one across a page
 *             boundary, for 3 s; eight others store 1, 2, 3, ... with
 *             PLAIN byte stores, each into a byte of an upper half of its
 *             own, and read it back. A split LOCK'd operation holds off
 *             every other access (a bus lock), so the read-back is always
 *             the value just stored and each byte ends as the last one
 *             stored. (Eight, not two: on a busy host the operation and a
 *             writer rarely run at the same moment otherwise.)
 *   abandon   one thread does aligned and split LOCK'd operations on a page
 *             that another unmaps, maps again and write-protects in a loop:
 *             the first takes SIGSEGV inside its LOCK'd operations and
 *             leaves them by siglongjmp. Then a split operation and a fork
 *             (whose child does one too) must complete: an operation left
 *             by a fault must not keep the others waiting. A third thread
 *             spins in guest code, so that each split operation waits for
 *             it to stop and the unmapping lands inside the operation.
 * Prints "<mode> ok" and exits 0, or "FAIL ..." and exits 1. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

/* LOCK XADD of 1 on an 8-byte operand wherever it lies */
static inline uint64_t lock_xadd8(void *p)
{
	uint64_t v = 1;
	__asm__ volatile("lock xaddq %0, %1" : "+r"(v), "+m"(*(volatile uint64_t *)p) : : "memory");
	return v;
}

static inline void lock_add4(void *p)
{
	__asm__ volatile("lock addl $1, %0" : "+m"(*(volatile uint32_t *)p) : : "memory");
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* ---- buslock ---- */

#define SPLIT_OPS 5000

static unsigned char *area; /* two pages */
static volatile int split_done, writers_ready;

#define WRITERS 4 /* per operand: one for each byte of its upper half */

struct writer {
	volatile uint8_t *b; /* its byte in the upper half of a split operand */
	uint8_t last;	     /* the last value stored */
	unsigned long n;     /* stores made */
	unsigned long stale; /* read-backs that were not it */
};

static void *writer(void *arg)
{
	struct writer *w = arg;
	__atomic_fetch_add(&writers_ready, 1, __ATOMIC_SEQ_CST);
	uint8_t v = 0;
	while (!__atomic_load_n(&split_done, __ATOMIC_ACQUIRE)) {
		v = (uint8_t)(v % 255 + 1);
		*w->b = v; /* a plain MOV */
		w->n++;
		/* a stale write-back lands while it is read back */
		for (int k = 0; k < 16; k++)
			if (*w->b != v) {
				w->stale++;
				break;
			}
	}
	w->last = v;
	return NULL;
}

static int mode_buslock(void)
{
	area = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		printf("FAIL mmap\n");
		return 1;
	}
	/* 8 bytes across the line at 128, and across the page boundary */
	unsigned char *op[2] = {area + 124, area + PAGE - 4};
	struct writer w[2 * WRITERS];
	pthread_t t[2 * WRITERS];
	for (int k = 0; k < 2 * WRITERS; k++) {
		w[k] = (struct writer){.b = op[k / WRITERS] + 4 + k % WRITERS};
		pthread_create(&t[k], NULL, writer, &w[k]);
	}
	while (__atomic_load_n(&writers_ready, __ATOMIC_SEQ_CST) < 2 * WRITERS)
		sched_yield();
	/* at least SPLIT_OPS of each and for at least 3 s: the writers must
	 * run beside them, on a host that may be busy with other work */
	uint32_t ops = 0;
	double until = now() + 3;
	while (ops < SPLIT_OPS || (ops % 1000 || now() < until)) {
		lock_xadd8(op[0]);
		lock_xadd8(op[1]);
		ops++;
	}
	__atomic_store_n(&split_done, 1, __ATOMIC_RELEASE);
	int bad = 0;
	for (int k = 0; k < 2 * WRITERS; k++) {
		pthread_join(t[k], NULL);
		const char *what = k / WRITERS ? "a page" : "a line";
		if (w[k].stale) {
			printf("FAIL across %s: plain stores overwritten by a split lock xadd\n", what);
			bad = 1;
		}
		if (*w[k].b != w[k].last) {
			printf("FAIL across %s: upper half byte %d is %u, last stored %u\n", what, k % WRITERS, *w[k].b,
			       w[k].last);
			bad = 1;
		}
		if (w[k].n < 2) {
			printf("FAIL across %s: a writer did not run beside the split operations\n", what);
			bad = 1;
		}
		fprintf(stderr, "buslock: across %s, byte %d: %lu stores, %lu read back stale\n", what, k % WRITERS,
			w[k].n, w[k].stale);
	}
	for (int k = 0; k < 2; k++) {
		uint32_t lo;
		memcpy(&lo, op[k], 4);
		if (lo != ops) {
			printf("FAIL across %s: lower half %u, want %u\n", k ? "a page" : "a line", lo, ops);
			bad = 1;
		}
	}
	if (!bad)
		printf("buslock ok\n");
	return bad;
}

/* ---- abandon ---- */

static unsigned char *target; /* the page the other thread takes away */
static volatile int churn_stop;
static sigjmp_buf fault_jb;
static volatile sig_atomic_t faults;

static void on_segv(int sig)
{
	(void)sig;
	faults++;
	siglongjmp(fault_jb, 1);
}

/* Guest code with no system call: every split operation has to stop this
 * thread first, which keeps the page's churn coming inside the operation */
static void *spin(void *arg)
{
	(void)arg;
	volatile unsigned long n = 0;
	while (!__atomic_load_n(&churn_stop, __ATOMIC_RELAXED))
		n++;
	return NULL;
}

static void *churn(void *arg)
{
	(void)arg;
	/* the page gone for a while (the host page behind it stays
	 * inaccessible until it is mapped again), then back for a while, and
	 * now and then write-protected */
	struct timespec pause = {0, 20000};
	for (unsigned n = 0; !__atomic_load_n(&churn_stop, __ATOMIC_ACQUIRE); n++) {
		munmap(target, PAGE);
		nanosleep(&pause, NULL);
		mmap(target, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		nanosleep(&pause, NULL);
		if (n % 8 == 0) {
			mprotect(target, PAGE, PROT_READ);
			mprotect(target, PAGE, PROT_READ | PROT_WRITE);
		}
	}
	return NULL;
}

static int mode_abandon(void)
{
	target = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *spare = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (target == MAP_FAILED || spare == MAP_FAILED) {
		printf("FAIL mmap\n");
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	pthread_t t, s;
	pthread_create(&t, NULL, churn, NULL);
	pthread_create(&s, NULL, spin, NULL);
	/* For 3 s and until enough have completed and faulted, at most 20 s:
	 * the split ones fault inside the operation when the page goes while
	 * the spinning thread is being stopped. */
	volatile unsigned long done = 0, iter = 0;
	double start = now(), end = start + 20;
	sigsetjmp(fault_jb, 1);
	while ((done < 5000 || faults < 1000 || now() < start + 3) && now() < end) {
		iter++;
		if (iter & 1)
			lock_add4(target + 64); /* aligned */
		else
			lock_xadd8(target + 60); /* across a cache line */
		done++;
	}
	__atomic_store_n(&churn_stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	pthread_join(s, NULL);
	fprintf(stderr, "abandon: %lu operations completed, %d faulted\n", (unsigned long)done, (int)faults);
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	if (done < 5000 || faults < 1000) {
		printf("FAIL %lu operations completed, %d faulted: too few to tell\n", (unsigned long)done,
		       (int)faults);
		return 1;
	}
	/* a split operation, and a fork whose child does one */
	lock_xadd8(spare + 60);
	pid_t pid = fork();
	if (pid == 0) {
		lock_xadd8(spare + 60);
		_exit(*(volatile uint64_t *)(spare + 60) == 2 ? 0 : 3);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("FAIL fork after the faults: status %#x\n", st);
		return 1;
	}
	lock_xadd8(spare + 60);
	if (*(volatile uint64_t *)(spare + 60) != 2) {
		printf("FAIL split counter %llu after the fork, want 2\n",
		       (unsigned long long)*(volatile uint64_t *)(spare + 60));
		return 1;
	}
	printf("abandon ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc > 1 && !strcmp(argv[1], "buslock"))
		return mode_buslock();
	if (argc > 1 && !strcmp(argv[1], "abandon"))
		return mode_abandon();
	fprintf(stderr, "usage: buslock buslock|abandon\n");
	return 2;
}
