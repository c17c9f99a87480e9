/* A guest program for the process VM tests, run natively and under corral:
 * threads, signals, fork/exec/pipes, self-written code, crashes and --root
 * escape attempts. Output must not depend on timing or addresses. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
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
	printf("threads: locked %ld atomic %ld tls %ld main tls %ld\n", locked_count, atomic_count, tls_sum, tls_val);
	return 0;
}

/* cancellation (the guest libc's SIGCANCEL), pthread_kill and setuid
 * (SIGSETXID broadcast to every thread) */
static int cancel_pipe[2];
static volatile int usr2;
static void usr2_handler(int s)
{
	(void)s;
	usr2++;
}
static void cancel_cleanup(void *a)
{
	(void)a;
	printf("cancel cleanup ran\n");
}
static void *cancel_blocker(void *a)
{
	char c;
	(void)a;
	pthread_cleanup_push(cancel_cleanup, NULL);
	if (read(cancel_pipe[0], &c, 1) < 0)
		perror("read");
	pthread_cleanup_pop(0);
	return NULL;
}
static void *usr2_waiter(void *a)
{
	(void)a;
	while (!usr2)
		usleep(1000);
	return (void *)1;
}

static int test_cancel(void)
{
	pthread_t t;
	void *r;
	if (pipe(cancel_pipe))
		return 1;
	pthread_create(&t, NULL, cancel_blocker, NULL);
	usleep(50000);
	pthread_cancel(t);
	pthread_join(t, &r);
	printf("cancelled: %d\n", r == PTHREAD_CANCELED);
	signal(SIGUSR2, usr2_handler);
	pthread_create(&t, NULL, usr2_waiter, NULL);
	pthread_kill(t, SIGUSR2);
	pthread_join(t, &r);
	printf("pthread_kill: %d %ld\n", (int)usr2, (long)r);
	usr2 = 0;
	pthread_create(&t, NULL, usr2_waiter, NULL);
	printf("setuid to self: %d\n", setuid(getuid()));
	usr2 = 1;
	pthread_join(t, NULL);
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

static volatile int rt_count, rt_vals[8];
static volatile int fp_signals;
static volatile double fp_sink;

static void fp_handler(int sig)
{
	double x = sig;
	long double y = 1.0L;
	for (int i = 0; i < 50; i++) {
		x = x * 1.0001 + 0.5;
		y = y * 1.5L;
	}
	fp_sink = x + (double)y;
	fp_signals++;
}

static void rt_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (rt_count < 8)
		rt_vals[rt_count] = si->si_value.sival_int;
	rt_count++;
}

static void report_fault(const char *what, uintptr_t want_addr)
{
	printf("%s: signal %d code %d addr %s altstack %d\n", what, (int)got_sig, (int)got_code,
	       got_addr == want_addr ? "right" : "wrong", (int)on_alt);
}

static int test_signals(void)
{
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
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

	/* queued real-time signals are all delivered, in order, with values */
	struct sigaction rs;
	memset(&rs, 0, sizeof(rs));
	rs.sa_sigaction = rt_handler;
	rs.sa_flags = SA_SIGINFO;
	sigaction(SIGRTMIN + 1, &rs, NULL);
	sigemptyset(&m);
	sigaddset(&m, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &m, &old);
	for (int i = 1; i <= 3; i++)
		sigqueue(getpid(), SIGRTMIN + 1, (union sigval){.sival_int = i * 10});
	sigprocmask(SIG_SETMASK, &old, NULL);
	printf("rt signals: %d values %d %d %d\n", rt_count, rt_vals[0], rt_vals[1], rt_vals[2]);

	/* FP and SSE state survive signal handlers that use them too */
	signal(SIGALRM, fp_handler);
	struct itimerval fit = {.it_interval = {0, 500}, .it_value = {0, 500}};
	setitimer(ITIMER_REAL, &fit, NULL);
	double acc = 0;
	long double lacc = 0;
	for (int i = 0; i < 3000000; i++) {
		acc += sqrt((double)i) * 1e-3;
		lacc += (long double)i * 0.5L;
	}
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &off, NULL);
	printf("fp across signals: %.17g %.12Lg handled %d\n", acc, lacc, fp_signals > 0);

	/* a timer signal ends sigsuspend */
	signal(SIGALRM, count_handler);
	sigprocmask(SIG_BLOCK, &(sigset_t){0}, NULL);
	sigset_t al;
	sigemptyset(&al);
	sigaddset(&al, SIGALRM);
	sigprocmask(SIG_BLOCK, &al, &old);
	struct itimerval it = {.it_value = {0, 20000}};
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
			usleep(500000);
			if (write(p[1], "x", 1) != 1)
				_exit(1);
			_exit(0);
		}
		close(p[1]);
		alarms = 0;
		struct itimerval t2 = {.it_value = {0, 50000}};
		setitimer(ITIMER_REAL, &t2, NULL);
		char c;
		ssize_t n = read(p[0], &c, 1);
		int e = n < 0 ? errno : 0;
		printf("read with SA_RESTART=%d: result %zd errno %s alarms %d\n", restart, n,
		       e == EINTR ? "EINTR"
		       : e	  ? "other"
				  : "0",
		       (int)alarms);
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

	unsigned char code[] = {0xb8, 42, 0, 0, 0, 0xc3}; /* mov eax, 42; ret */
	unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
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
	int fd = open("/proc/self/auxv", O_RDONLY);
	unsigned long av[128];
	ssize_t an = fd >= 0 ? read(fd, av, sizeof(av)) : -1;
	unsigned long pagesz = 0, entry = 0;
	for (ssize_t i = 0; i + 1 < an / 8; i += 2) {
		if (av[i] == AT_PAGESZ)
			pagesz = av[i + 1];
		if (av[i] == AT_ENTRY)
			entry = av[i + 1];
	}
	printf("/proc/self/auxv: pagesz %lu entry matches %d\n", pagesz, entry == getauxval(AT_ENTRY));
	if (fd >= 0)
		close(fd);
	return 0;
}

/* ---- file descriptors: sockets, epoll, eventfd, poll, select ---- */

static int test_io(const char *dir)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return 1;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int ev = eventfd(0, EFD_NONBLOCK);
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ull};
	epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &e);
	e.data.u64 = 7;
	epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e);
	struct epoll_event out[4];
	printf("epoll idle: %d\n", epoll_wait(ep, out, 4, 0));
	if (write(sv[0], "ping", 4) != 4)
		return 1;
	uint64_t one = 5;
	if (write(ev, &one, 8) != 8)
		return 1;
	int n = epoll_wait(ep, out, 4, 1000);
	uint64_t seen = 0;
	for (int i = 0; i < n; i++)
		seen ^= out[i].data.u64;
	printf("epoll ready: %d data %llx\n", n, (unsigned long long)seen);
	struct pollfd pf[2] = {{.fd = sv[1], .events = POLLIN}, {.fd = sv[0], .events = POLLOUT}};
	int pr = poll(pf, 2, 100);
	printf("poll: %d %x %x\n", pr, pf[0].revents, pf[1].revents);
	fd_set rs;
	FD_ZERO(&rs);
	FD_SET(sv[1], &rs);
	struct timeval tv = {0, 100000};
	int sr = select(sv[1] + 1, &rs, NULL, NULL, &tv);
	printf("select: %d %d\n", sr, FD_ISSET(sv[1], &rs));
	char buf[64];
	printf("recv: %zd\n", recv(sv[1], buf, sizeof(buf), 0));
	uint64_t cnt;
	ssize_t er = read(ev, &cnt, 8);
	printf("eventfd: %zd %llu\n", er, (unsigned long long)cnt);

	/* fd passing and a named unix socket */
	int pfd[2];
	if (pipe(pfd))
		return 1;
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = "fd", .iov_len = 2};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pfd[1], sizeof(int));
	printf("sendmsg: %zd\n", sendmsg(sv[0], &mh, 0));
	memset(cbuf, 0, sizeof(cbuf));
	iov.iov_base = buf;
	iov.iov_len = sizeof(buf);
	mh.msg_controllen = sizeof(cbuf);
	ssize_t r = recvmsg(sv[1], &mh, 0);
	int got;
	memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
	int passed = write(got, "via", 3) == 3;
	passed = passed && read(pfd[0], buf, 3) == 3;
	printf("recvmsg: %zd fd passed %d\n", r, passed);

	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", dir);
	unlink(sa.sun_path);
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	int br = bind(ls, (struct sockaddr *)&sa, sizeof(sa));
	printf("bind %d listen %d\n", br, listen(ls, 1));
	int cs = socket(AF_UNIX, SOCK_STREAM, 0);
	printf("connect %d\n", connect(cs, (struct sockaddr *)&sa, sizeof(sa)));
	int as = accept(ls, NULL, NULL);
	ssize_t sn = send(cs, "hello", 5, 0);
	printf("accepted %d: %zd %zd\n", as >= 0, sn, recv(as, buf, 5, 0));
	unlink(sa.sun_path);

	int tf = timerfd_create(CLOCK_MONOTONIC, 0);
	struct itimerspec its = {.it_value = {0, 10000000}};
	timerfd_settime(tf, 0, &its, NULL);
	ssize_t tr = read(tf, &cnt, 8);
	printf("timerfd: %zd %llu\n", tr, (unsigned long long)cnt);

	/* directory listing through getdents64 */
	DIR *d = opendir("/proc/self/fd");
	int entries = 0;
	while (d && readdir(d))
		entries++;
	if (d)
		closedir(d);
	printf("fd dir listed: %d\n", entries > 5);
	return 0;
}

/* ---- a signal racing a blocking syscall ----
 * A one-shot timer sends SIGUSR1 at a moment around the entry into a
 * blocking call that only the signal's handler can end. The program is
 * race-free natively: a signal just before the call is taken before it, and
 * the handler's effect (a byte in the pipe, a changed futex word) makes the
 * call return. A process VM that takes the signal after it has decided to
 * block, but enters the host's syscall anyway, sleeps until a watchdog
 * thread sends another signal: "stuck". */

#define RACE_ROUNDS 3000
#define RACE_STUCK_MAX 3
#define RACE_WATCHDOG_NS 5000000000L /* generous: a loaded machine must not look stuck */
#define RACE_DELAY_MAX 10000000L     /* ns */

enum race_kind { RACE_READ, RACE_FUTEX, RACE_PPOLL, RACE_SIGSUSPEND };

static int race_pipe[2];
static volatile uint32_t race_word;
static volatile long race_done, race_handled;
static volatile int race_stuck, race_quit;
static pthread_t race_main;
/* the timer's delay that makes the signal come as the call starts to
 * sleep, learnt by the cases without SA_RESTART */
static long race_delay[RACE_FUTEX + 1] = {5000, 5000};

static void race_handler(int sig)
{
	(void)sig;
	int e = errno;
	char b = 1;
	if (write(race_pipe[1], &b, 1) != 1)
		_exit(3);
	race_word = 1;
	__atomic_add_fetch(&race_handled, 1, __ATOMIC_SEQ_CST);
	errno = e;
}

static long race_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Sends SIGUSR2 when a round has not ended for a while. */
static void *race_watchdog(void *arg)
{
	(void)arg;
	long seen = -1, since = race_now_ns();
	while (!race_quit) {
		struct timespec d = {0, 20000000};
		nanosleep(&d, NULL);
		long done = __atomic_load_n(&race_done, __ATOMIC_ACQUIRE);
		if (done != seen) {
			seen = done;
			since = race_now_ns();
		} else if (race_now_ns() - since > RACE_WATCHDOG_NS) {
			race_stuck++;
			pthread_kill(race_main, SIGUSR2);
			since = race_now_ns();
		}
	}
	return NULL;
}

static void race_case(const char *name, enum race_kind kind, int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = race_handler;
	sa.sa_flags = flags;
	sigaction(SIGUSR1, &sa, NULL);
	/* the watchdog's: SIGUSR1 may be held back by a stuck VM */
	sigaction(SIGUSR2, &sa, NULL);
	sigset_t usr1_set, unblocked;
	sigemptyset(&usr1_set);
	sigaddset(&usr1_set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, NULL, &unblocked);
	sigdelset(&unblocked, SIGUSR1);
	if (pipe(race_pipe) < 0)
		return;
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	timer_t tm;
	if (timer_create(CLOCK_MONOTONIC, &sev, &tm) < 0) {
		printf("race %s: timer_create: %s\n", name, strerror(errno));
		return;
	}
	race_done = race_handled = 0;
	race_stuck = race_quit = 0;
	race_main = pthread_self();
	/* the watchdog never takes the timer's signal */
	pthread_sigmask(SIG_BLOCK, &usr1_set, NULL);
	pthread_t th;
	pthread_create(&th, NULL, race_watchdog, NULL);
	if (kind != RACE_PPOLL && kind != RACE_SIGSUSPEND)
		pthread_sigmask(SIG_UNBLOCK, &usr1_set, NULL);
	long rounds = 0, other = 0, eintr = 0;
	uint32_t rnd = 12345;
	long *center = &race_delay[kind <= RACE_FUTEX ? kind : RACE_READ];
	for (long i = 1; i <= RACE_ROUNDS && race_stuck < RACE_STUCK_MAX; i++) {
		race_word = 0;
		/* a random delay around the learnt one */
		rnd ^= rnd << 13, rnd ^= rnd >> 17, rnd ^= rnd << 5;
		long jit = *center / 4 + 500, d = *center - jit + (long)(rnd % (uint32_t)(2 * jit + 1));
		struct itimerspec it = {{0, 0}, {0, d > 0 ? d : 1}};
		timer_settime(tm, 0, &it, NULL);
		long r;
		char b;
		struct pollfd pfd = {race_pipe[0], POLLIN, 0};
		switch (kind) {
		case RACE_READ: r = read(race_pipe[0], &b, 1); break;
		case RACE_FUTEX: r = syscall(SYS_futex, &race_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0); break;
		case RACE_PPOLL: r = ppoll(&pfd, 1, NULL, &unblocked); break;
		default: r = sigsuspend(&unblocked); break;
		}
		int before = (kind == RACE_READ && r == 1) || (kind == RACE_FUTEX && r < 0 && errno == EAGAIN);
		int during = r < 0 && errno == EINTR;
		eintr += during;
		if (!before && !during && !(kind == RACE_FUTEX && r == 0))
			other++;
		/* Without SA_RESTART the result tells whether the handler ran
		 * before the call (delay too short) or interrupted it (too long). */
		if (kind <= RACE_FUTEX && !(flags & SA_RESTART)) {
			if (before && *center < RACE_DELAY_MAX)
				*center += *center / 32 + 1;
			else if (during && *center > 1)
				*center -= *center / 32 + 1;
		}
		/* the handler has run (the blocked cases take it on return);
		 * empty the pipe for the next round */
		while (__atomic_load_n(&race_handled, __ATOMIC_SEQ_CST) < i)
			sched_yield();
		while (poll(&pfd, 1, 0) == 1)
			if (read(race_pipe[0], &b, 1) != 1)
				break;
		rounds++;
		__atomic_store_n(&race_done, i, __ATOMIC_RELEASE);
	}
	race_quit = 1;
	pthread_join(th, NULL);
	timer_delete(tm);
	close(race_pipe[0]);
	close(race_pipe[1]);
	pthread_sigmask(SIG_UNBLOCK, &usr1_set, NULL);
	signal(SIGUSR1, SIG_DFL);
	signal(SIGUSR2, SIG_DFL);
	if (getenv("PVM_RACE_VERBOSE"))
		fprintf(stderr, "race %s: delay %ld ns, EINTR %ld, watchdog %d\n", name, *center, eintr, race_stuck);
	/* how often the signal came before the call varies: not printed */
	printf("race %s: %ld rounds, %s, unexpected results %ld%s\n", name, rounds,
	       race_stuck ? "STUCK until the watchdog" : "every signal ended the wait", other,
	       (flags & SA_RESTART) && kind == RACE_READ && eintr ? ", EINTR despite SA_RESTART" : "");
}

/* One read on an empty pipe that SIGUSR1's SA_RESTART handler fills
 * (tests/process/t_sigwin.sh sends the signal at a chosen instruction). */
static int test_readsig(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = race_handler;
	sa.sa_flags = SA_RESTART;
	if (pipe(race_pipe) < 0)
		return 1;
	sigaction(SIGUSR1, &sa, NULL);
	char b = 0;
	long r = read(race_pipe[0], &b, 1);
	printf("read returned %ld, handler ran %ld time(s)\n", r, race_handled);
	return 0;
}

static int test_sigrace(void)
{
	/* without SA_RESTART first: they learn the delay for the others */
	race_case("read", RACE_READ, 0);
	race_case("read, SA_RESTART", RACE_READ, SA_RESTART);
	race_case("futex wait", RACE_FUTEX, 0);
	race_case("futex wait, SA_RESTART", RACE_FUTEX, SA_RESTART);
	race_case("ppoll unblocking", RACE_PPOLL, 0);
	race_case("sigsuspend", RACE_SIGSUSPEND, 0);
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
	if (!strcmp(mode, "cancel"))
		return test_cancel();
	if (!strcmp(mode, "signals"))
		return test_signals();
	if (!strcmp(mode, "fork"))
		return test_fork(argv[0]);
	if (!strcmp(mode, "code"))
		return test_code();
	if (!strcmp(mode, "sigrace"))
		return test_sigrace();
	if (!strcmp(mode, "readsig"))
		return test_readsig();
	if (!strcmp(mode, "io"))
		return test_io(argc > 2 ? argv[2] : "/tmp");
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
		static unsigned char junk[] = {0x0f, 0x0b};
		unsigned char *p =
			mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		memcpy(p, junk, sizeof(junk));
		((void (*)(void))p)();
	}
	if (!strcmp(mode, "pause")) {
		pause();
		return 0;
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
