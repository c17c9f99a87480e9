/* A program for checkpoint tests (tests/process/t_checkpoint.sh): a large
 * heap worked on by threads that meet at a barrier, an input file read a
 * block a round and an output file written a line a round, a signal
 * handler, a blocked signal and a pending one; its last line is a result
 * that any lost or changed state would change.
 *   ckpt_prog compute IN OUT MIB ROUNDS   the computation
 *   ckpt_prog wait                        set up, say "ready", then sleep for ever
 *   ckpt_prog hold MIB GO                 write MIB MiB, say "ready", exit when file GO exists
 *                                         (bench/checkpoint.sh) */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 4

static uint64_t *heap;
static size_t nwords;
static int rounds;
static pthread_barrier_t bar;
static volatile sig_atomic_t usr1;
static __thread uint64_t tls_mix = 0x9e3779b97f4a7c15ull;

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static void *worker(void *arg)
{
	size_t k = (size_t)(uintptr_t)arg;
	size_t lo = nwords / NTHREADS * k, hi = k == NTHREADS - 1 ? nwords : nwords / NTHREADS * (k + 1);
	tls_mix += k;
	for (int r = 0; r < rounds; r++) {
		for (size_t i = lo; i < hi; i++)
			heap[i] = heap[i] * 6364136223846793005ull + tls_mix + (uint64_t)r +
				  (heap[lo + ((i - lo) * 7) % (hi - lo)] >> 33);
		tls_mix = tls_mix * 31 + (uint64_t)r;
		pthread_barrier_wait(&bar); /* the slice is done */
		pthread_barrier_wait(&bar); /* main has summed the round */
	}
	return (void *)(uintptr_t)tls_mix;
}

static void setup_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	struct rlimit rl = {1000, 4096};
	setrlimit(RLIMIT_NOFILE, &rl);
}

static int compute(const char *in, const char *out, int mib, int nr)
{
	rounds = nr;
	nwords = (size_t)mib << 17;
	heap = malloc(nwords * 8);
	if (!heap)
		return 1;
	for (size_t i = 0; i < nwords; i++)
		heap[i] = i * 2654435761u;
	int ifd = open(in, O_RDONLY);
	FILE *of = fopen(out, "w");
	if (ifd < 0 || !of) {
		perror("open");
		return 1;
	}
	setup_signals();
	pthread_barrier_init(&bar, NULL, NTHREADS + 1);
	pthread_t th[NTHREADS];
	for (int k = 0; k < NTHREADS; k++)
		pthread_create(&th[k], NULL, worker, (void *)(uintptr_t)k);
	uint64_t total = 0;
	for (int r = 0; r < rounds; r++) {
		pthread_barrier_wait(&bar);
		uint64_t s = 0;
		for (size_t i = 0; i < nwords; i += 64)
			s += heap[i];
		unsigned char blk[512];
		ssize_t n = read(ifd, blk, sizeof(blk));
		for (ssize_t i = 0; i < n; i++)
			s = s * 131 + blk[i];
		total = total * 1000003 + s;
		fprintf(of, "round %d %016llx\n", r, (unsigned long long)s);
		fflush(of);
		if (r == rounds / 2) {
			raise(SIGUSR1);		 /* handled */
			raise(SIGHUP);		 /* ignored */
			kill(getpid(), SIGUSR2); /* blocked: stays pending */
		}
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
		pthread_barrier_wait(&bar);
	}
	uint64_t mix = 0;
	for (int k = 0; k < NTHREADS; k++) {
		void *ret;
		pthread_join(th[k], &ret);
		mix ^= (uint64_t)(uintptr_t)ret;
	}
	fclose(of);
	sigset_t p;
	sigpending(&p);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	printf("usr1 %d usr2-pending %d nofile %llu offset %lld\n", (int)usr1, sigismember(&p, SIGUSR2),
	       (unsigned long long)rl.rlim_cur, (long long)lseek(ifd, 0, SEEK_CUR));
	printf("result %016llx %016llx\n", (unsigned long long)total, (unsigned long long)mix);
	return 0;
}

static void *sleeper(void *arg)
{
	(void)arg;
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	pthread_mutex_lock(&m);
	for (;;)
		pthread_cond_wait(&c, &m);
	return NULL;
}

static _Noreturn void wait_forever(void)
{
	nwords = 4 << 17;
	heap = malloc(nwords * 8);
	for (size_t i = 0; i < nwords; i++)
		heap[i] = i * 11;
	setup_signals();
	pthread_t t;
	pthread_create(&t, NULL, sleeper, NULL);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}

static int hold(int mib, const char *go)
{
	size_t n = (size_t)mib << 20;
	uint8_t *m = malloc(n);
	if (!m)
		return 1;
	for (size_t i = 0; i < n; i += 64)
		m[i] = (uint8_t)(i >> 6) | 1;
	printf("ready\n");
	fflush(stdout);
	struct timespec ts = {0, 1000000};
	while (access(go, F_OK))
		nanosleep(&ts, NULL);
	return m[n / 2] == 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "hold"))
		return hold(atoi(argv[2]), argv[3]);
	if (argc == 6 && !strcmp(argv[1], "compute"))
		return compute(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (argc == 2 && !strcmp(argv[1], "wait"))
		wait_forever();
	fprintf(stderr, "usage: ckpt_prog compute IN OUT MIB ROUNDS | wait | hold MIB GO\n");
	return 2;
}
