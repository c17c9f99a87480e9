/* A guest program for the process VM tests, run natively and under corral:
 * threads, signals, fork/exec/pipes, self-written code, crashes and --root
 * escape attempts. Output must not depend on timing or addresses. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- threads ---- */

#define NTHREADS 8
#define NITER 20000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long locked_count;
static long atomic_count;
static int done_threads;
static int go;
static __thread long tls_val;

static void *worker(void *arg)
{
	long id = (long)arg;
	pthread_mutex_lock(&mu);
	while (!go)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	tls_val = id * 1000;
	for (int i = 0; i < NITER; i++) {
		pthread_mutex_lock(&mu);
		locked_count++;
		pthread_mutex_unlock(&mu);
		__atomic_fetch_add(&atomic_count, 1, __ATOMIC_SEQ_CST);
		tls_val++;
	}
	pthread_mutex_lock(&mu);
	done_threads++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	return (void *)tls_val;
}

static int test_threads(void)
{
	pthread_t th[NTHREADS];
	for (long i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)i))
			return 1;
	pthread_mutex_lock(&mu);
	go = 1;
	pthread_cond_broadcast(&cv);
	while (done_threads < NTHREADS)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	long tls_sum = 0;
	for (int i = 0; i < NTHREADS; i++) {
		void *r;
		pthread_join(th[i], &r);
		tls_sum += (long)r;
	}
	printf("threads: locked %ld atomic %ld tls %ld main tls %ld\n", locked_count, atomic_count,
	       tls_sum, tls_val);
	return 0;
}

/* ---- signals ---- */

static sigjmp_buf jb;
static volatile sig_atomic_t got_sig, got_code, on_alt, alarms, usr1;
static volatile uintptr_t got_addr;
static char altstack[65536];
/* addresses the compiler cannot see through */
static volatile uintptr_t addr16 = 16, addr8 = 8, addr_jump = 0x13370000;

static void fault_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	char here;
	got_sig = sig;
	got_code = si->si_code;
	got_addr = (uintptr_t)si->si_addr;
	on_alt = &here >= altstack && &here < altstack + sizeof(altstack);
	siglongjmp(jb, 1);
}

static void count_handler(int sig)
{
	if (sig == SIGALRM)
		alarms++;
	else
		usr1++;
}

static void report_fault(const char *what, uintptr_t want_addr)
{
	printf("%s: signal %d code %d addr %s altstack %d\n", what, (int)got_sig, (int)got_code,
	       got_addr == want_addr ? "right" : "wrong", (int)on_alt);
}

static int test_signals(void)
{
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
	sigaltstack(&ss, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);

	if (!sigsetjmp(jb, 1))
		*(volatile int *)addr16 = 1;
	report_fault("write to unmapped", 16);

	char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!sigsetjmp(jb, 1))
		ro[100] = 1;
	report_fault("write to read-only", (uintptr_t)ro + 100);

	extern char ud2_insn[];
	if (!sigsetjmp(jb, 1))
		__asm__ volatile("ud2_insn: ud2");
	report_fault("ud2", (uintptr_t)ud2_insn);

	volatile int zero = 0, one = 1;
	if (!sigsetjmp(jb, 1))
		one = one / zero;
	printf("divide by zero: signal %d code %d\n", (int)got_sig, (int)got_code);

	/* a handler, masks and pending signals */
	signal(SIGUSR1, count_handler);
	raise(SIGUSR1);
	sigset_t m, old, pend;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigprocmask(SIG_BLOCK, &m, &old);
	kill(getpid(), SIGUSR1);
	sigpending(&pend);
	printf("usr1: delivered %d, pending while blocked %d\n", (int)usr1, sigismember(&pend, SIGUSR1));
	sigprocmask(SIG_SETMASK, &old, NULL);
	printf("usr1 after unblock: %d\n", (int)usr1);

	/* a timer signal ends sigsuspend */
	signal(SIGALRM, count_handler);
	sigprocmask(SIG_BLOCK, &(sigset_t){ 0 }, NULL);
	sigset_t al;
	sigemptyset(&al);
	sigaddset(&al, SIGALRM);
	sigprocmask(SIG_BLOCK, &al, &old);
	struct itimerval it = { .it_value = { 0, 20000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	sigset_t wait_mask = old;
	sigdelset(&wait_mask, SIGALRM);
	while (!alarms)
		sigsuspend(&wait_mask);
	sigprocmask(SIG_SETMASK, &old, NULL);
	alarm(0);
	printf("alarm: %d\n", (int)alarms);

	/* a blocking read interrupted by a signal: restarted with SA_RESTART,
	 * EINTR without */
	for (int restart = 0; restart < 2; restart++) {
		int p[2];
		if (pipe(p))
			return 1;
		struct sigaction s2;
		memset(&s2, 0, sizeof(s2));
		s2.sa_handler = count_handler;
		s2.sa_flags = restart ? SA_RESTART : 0;
		sigaction(SIGALRM, &s2, NULL);
		pid_t pid = fork();
		if (pid == 0) {
			usleep(300000);
			if (write(p[1], "x", 1) != 1)
				_exit(1);
			_exit(0);
		}
		close(p[1]);
		alarms = 0;
		struct itimerval t2 = { .it_value = { 0, 50000 } };
		setitimer(ITIMER_REAL, &t2, NULL);
		char c;
		ssize_t n = read(p[0], &c, 1);
		int e = n < 0 ? errno : 0;
		printf("read with SA_RESTART=%d: result %zd errno %s alarms %d\n", restart, n,
		       e == EINTR ? "EINTR" : e ? "other" : "0", (int)alarms);
		waitpid(pid, NULL, 0);
		close(p[0]);
	}
	return 0;
}

/* ---- fork, exec, pipes ---- */

static int test_fork(const char *self)
{
	int p[2];
	if (pipe(p))
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(self, "pvm_test", "child", "a b", "c", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char buf[256];
	ssize_t n, total = 0;
	while ((n = read(p[0], buf + total, sizeof(buf) - 1 - (size_t)total)) > 0)
		total += n;
	buf[total] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	printf("exec child said: %s", buf);
	printf("exec child status: exited %d code %d\n", WIFEXITED(st), WEXITSTATUS(st));

	pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	printf("killed child: signaled %d sig %d\n", WIFSIGNALED(st), WTERMSIG(st));

	pid = vfork();
	if (pid == 0) {
		execl("/proc/self/exe", "pvm_test", "child", "vfork", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	printf("vfork child status %d\n", WEXITSTATUS(st));

	/* a shell pipeline through exec */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", "echo one two three | tr ' ' '\\n' | sort -r | head -n 2", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	printf("pipeline status %d\n", WEXITSTATUS(st));
	return 0;
}

/* ---- code written at run time ---- */

static int test_code(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);

	unsigned char code[] = { 0xb8, 42, 0, 0, 0, 0xc3 }; /* mov eax, 42; ret */
	unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	if (p == MAP_FAILED)
		return 1;
	memcpy(p, code, sizeof(code));
	int (*f)(void) = (int (*)(void))p;
	printf("code: %d", f());
	p[1] = 7; /* the CPU must see the new instruction */
	printf(" %d", f());
	mprotect(p, 4096, PROT_READ | PROT_EXEC);
	printf(" %d", f());
	got_sig = 0;
	if (!sigsetjmp(jb, 1))
		p[1] = 9;
	printf(" write to r-x: signal %d code %d", (int)got_sig, (int)got_code);
	mprotect(p, 4096, PROT_READ | PROT_WRITE);
	got_sig = 0;
	if (!sigsetjmp(jb, 1))
		f();
	printf(" call rw-: signal %d", (int)got_sig);
	mprotect(p, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
	unsigned char *q = mremap(p, 4096, 1 << 20, MREMAP_MAYMOVE);
	f = (int (*)(void))q;
	q[(1 << 20) - 1] = 1;
	printf(" after mremap %d", f());
	munmap(q, 1 << 20);
	got_sig = 0;
	if (!sigsetjmp(jb, 1))
		f();
	printf(" after munmap: signal %d code %d addr %s\n", (int)got_sig, (int)got_code,
	       got_addr == (uintptr_t)q ? "right" : "wrong");

	/* brk and big anonymous mappings */
	char *big = malloc(64 << 20);
	memset(big, 3, 64 << 20);
	long sum = 0;
	for (long i = 0; i < (64 << 20); i += 4096)
		sum += big[i];
	free(big);
	void *b0 = sbrk(0);
	sbrk(1 << 20);
	memset(b0, 1, 1 << 20);
	sbrk(-(1 << 20));
	printf("memory: %ld brk %s\n", sum, sbrk(0) == b0 ? "back" : "moved");
	return 0;
}

static int test_proc(const char *self)
{
	char buf[4096];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	char *real = realpath(self, NULL);
	printf("/proc/self/exe is the program: %d\n", real && !strcmp(buf, real));
	free(real);
	FILE *f = fopen("/proc/self/maps", "r");
	int exe = 0, stack = 0, lines = 0;
	while (f && fgets(buf, sizeof(buf), f)) {
		lines++;
		if (strstr(buf, "[stack]"))
			stack++;
		if (strstr(buf, "pvm_test") && strstr(buf, " r-xp "))
			exe++;
	}
	if (f)
		fclose(f);
	printf("maps: code mapped %d, stack %d, lines>3 %d\n", exe > 0, stack, lines > 3);
	printf("auxv: pagesz %lu phent %lu execfn %s\n", getauxval(AT_PAGESZ), getauxval(AT_PHENT),
	       (const char *)getauxval(AT_EXECFN));
	return 0;
}

/* ---- --root escapes ---- */

static void try_open(const char *what, int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY);
	if (fd < 0) {
		printf("%s: %s\n", what, strerror(errno));
		return;
	}
	char buf[128];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	close(fd);
	printf("%s: read '%s'\n", what, strtok(buf, "\n") ? buf : "");
}

static int test_root(const char *outside)
{
	try_open("dotdot", AT_FDCWD, "../../../../secret.txt");
	try_open("absolute dotdot", AT_FDCWD, "/../../../../secret.txt");
	try_open("host path", AT_FDCWD, outside);
	try_open("absolute symlink", AT_FDCWD, "/abs_link");
	try_open("relative symlink", AT_FDCWD, "rel_link");
	try_open("symlink to dir", AT_FDCWD, "dir_link/secret.txt");
	int d = open("/dir", O_RDONLY | O_DIRECTORY);
	try_open("openat dirfd dotdot", d, "../../../secret.txt");
	try_open("openat dirfd abs", d, "/../secret.txt");
	if (symlink("../../../../../secret.txt", "/dir/new_link") == 0)
		try_open("new symlink", AT_FDCWD, "/dir/new_link");
	for (int i = 0; i < 6; i++)
		if (chdir("..") < 0)
			printf("chdir .. failed\n");
	char cwd[256];
	printf("cwd after chdir ..: %s\n", getcwd(cwd, sizeof(cwd)) ? cwd : strerror(errno));
	try_open("after chdir", AT_FDCWD, "secret.txt");
	try_open("inside file", AT_FDCWD, "inside.txt");
	printf("rename out: %s\n", rename("/inside.txt", "../../moved.txt") ? strerror(errno) : "done");
	printf("link out: %s\n", link("/moved.txt", "/dir/../../../linked.txt") ? strerror(errno) : "done");
	printf("link through symlink: %s\n",
	       linkat(AT_FDCWD, "/abs_link", AT_FDCWD, "/l2", AT_SYMLINK_FOLLOW) ? strerror(errno) : "done");
	printf("mkdir out: %s\n", mkdir("/../../made", 0755) ? strerror(errno) : "done");
	char lb[256];
	ssize_t n = readlink("/abs_link", lb, sizeof(lb) - 1);
	lb[n > 0 ? n : 0] = 0;
	printf("readlink: %s\n", lb);
	struct stat st;
	printf("stat through symlink: %s\n", stat("/rel_link", &st) ? strerror(errno) : "found");
	printf("exec outside: %s\n", execl(outside, "x", (char *)NULL) ? strerror(errno) : "?");
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *mode = argc > 1 ? argv[1] : "all";
	if (!strcmp(mode, "child")) {
		printf("child argv:");
		for (int i = 2; i < argc; i++)
			printf(" [%s]", argv[i]);
		printf("\n");
		return 3;
	}
	if (!strcmp(mode, "threads"))
		return test_threads();
	if (!strcmp(mode, "signals"))
		return test_signals();
	if (!strcmp(mode, "fork"))
		return test_fork(argv[0]);
	if (!strcmp(mode, "code"))
		return test_code();
	if (!strcmp(mode, "proc"))
		return test_proc(argv[0]);
	if (!strcmp(mode, "root"))
		return test_root(argc > 2 ? argv[2] : "/nonexistent");
	/* deaths: the exit status must be the same as natively */
	if (!strcmp(mode, "segv"))
		return *(volatile int *)addr8;
	if (!strcmp(mode, "ill"))
		__asm__ volatile("ud2");
	if (!strcmp(mode, "jump"))
		((void (*)(void))addr_jump)();
	if (!strcmp(mode, "garbage")) {
		static unsigned char junk[] = { 0x0f, 0x0b };
		unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		memcpy(p, junk, sizeof(junk));
		((void (*)(void))p)();
	}
	if (!strcmp(mode, "abort"))
		abort();
	if (!strcmp(mode, "divzero")) {
		volatile int z = 0;
		return 1 / z;
	}
	if (!strcmp(mode, "exit"))
		return atoi(argc > 2 ? argv[2] : "0");
	fprintf(stderr, "pvm_test: unknown mode %s\n", mode);
	return 2;
}
