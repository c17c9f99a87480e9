/* Hostile programs for process VMs: each subcommand tries one way out of
 * corral (into its memory, the host's processes, devices, network or
 * files) and prints what it got, so tests/process/t_hostile.sh can check
 * that the sandbox held. Built static; most cases also run natively. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUF (64 * 1024)
/* Big enough to hold a new thread's stack (8 MiB by default), whose top
 * (TLS, the thread's control block) is where the blocked call points. */
#define VICTIM (16u << 20)

static int pfd[2];
static uint8_t *victim;
static volatile long io_result;
static volatile int io_errno;

static void *blocked_read(void *arg)
{
	(void)arg;
	long r = read(pfd[0], victim + VICTIM - BUF, BUF);
	io_errno = r < 0 ? errno : 0;
	io_result = r;
	return NULL;
}

static void *blocked_write(void *arg)
{
	(void)arg;
	long r = write(pfd[1], victim + VICTIM - BUF, BUF);
	io_errno = r < 0 ? errno : 0;
	io_result = r;
	return NULL;
}

static int wake[2];
static pthread_t idlers[8];

/* Waits, then exits: a thread whose memory was overwritten (in corral, its
 * host thread's stack and TLS) would not get through this. */
static void *idle_thread(void *arg)
{
	char c;
	(void)arg;
	if (read(wake[0], &c, 1) != 1)
		return NULL;
	return arg;
}

static int join_idlers(void)
{
	int ok = 0;
	for (int k = 0; k < 8; k++)
		if (write(wake[1], "x", 1) != 1)
			return 0;
	for (int k = 0; k < 8; k++) {
		void *r = NULL;
		pthread_join(idlers[k], &r);
		ok += r == (void *)idlers;
	}
	return ok;
}

/* Unmap the buffer a blocked host call holds, then create threads (whose
 * stacks, in corral, are host memory) and fill new mappings with 0xa5. */
static void churn(void)
{
	usleep(200 * 1000);
	munmap(victim, VICTIM);
	if (pipe(wake))
		exit(2);
	for (int k = 0; k < 8; k++) {
		pthread_create(&idlers[k], NULL, idle_thread, idlers);
		void *m = mmap(NULL, BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m != MAP_FAILED)
			memset(m, 0xa5, BUF);
	}
}

/* A read() blocked into a buffer that goes away: the data must land in
 * guest memory or nowhere (EFAULT), never in corral's. */
static int alias_read(void)
{
	victim = mmap(NULL, VICTIM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pipe(pfd) || victim == MAP_FAILED)
		return 2;
	fcntl(pfd[1], F_SETPIPE_SZ, BUF);
	pthread_t th;
	pthread_create(&th, NULL, blocked_read, NULL);
	churn();
	static uint8_t data[BUF];
	memset(data, 'A', sizeof(data));
	if (write(pfd[1], data, sizeof(data)) < 0)
		return 2;
	pthread_join(th, NULL);
	int ok = join_idlers();
	printf("alias-read: %d of 8 threads intact\n", ok);
	return ok == 8 ? 0 : 1;
}

/* A write() blocked from a buffer that goes away: what comes out of the
 * pipe is the guest's bytes (0x5a, 0xa5, zeros) or nothing, never corral's
 * stack or heap. */
static int alias_write(void)
{
	victim = mmap(NULL, VICTIM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pipe(pfd) || victim == MAP_FAILED)
		return 2;
	memset(victim, 0x5a, VICTIM);
	fcntl(pfd[1], F_SETPIPE_SZ, 4096);
	/* fill the pipe so the write blocks */
	static uint8_t fill[4096];
	fcntl(pfd[1], F_SETFL, O_NONBLOCK);
	while (write(pfd[1], fill, sizeof(fill)) > 0)
		;
	fcntl(pfd[1], F_SETFL, 0);
	pthread_t th;
	pthread_create(&th, NULL, blocked_write, NULL);
	churn();
	static uint8_t got[4 * BUF];
	size_t n = 0;
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	for (int tries = 0; tries < 200 && n < sizeof(got); tries++) {
		long r = read(pfd[0], got + n, sizeof(got) - n);
		if (r > 0)
			n += (size_t)r;
		else
			usleep(5000);
		if (io_result)
			break;
	}
	pthread_join(th, NULL);
	for (;;) {
		long r = read(pfd[0], got + n, sizeof(got) - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	size_t foreign = 0;
	for (size_t k = sizeof(fill); k < n; k++)
		if (got[k] != 0x5a && got[k] != 0xa5 && got[k] != 0)
			foreign++;
	int ok = join_idlers();
	printf("alias-write: %zu foreign bytes, %d of 8 threads intact\n", foreign, ok);
	return foreign || ok != 8 ? 1 : 0;
}

/* Growing memory: realloc through mremap (in place and moving), and
 * mremap growth moved by a blocker page: the data follows every time. */
static int mremap_grow(void)
{
	size_t n = 256 * 1024;
	unsigned char *p = malloc(n);
	if (!p)
		return 2;
	memset(p, 7, n);
	for (int k = 0; k < 20; k++) {
		size_t m = n + n / 3 + 4096 * (size_t)k;
		unsigned char *q = realloc(p, m);
		if (!q) {
			printf("realloc failed at step %d\n", k);
			return 1;
		}
		for (size_t i = 0; i < n; i++)
			if (q[i] != (unsigned char)(7 + k)) {
				printf("realloc lost data at step %d\n", k);
				return 1;
			}
		memset(q, 8 + k, m);
		p = q;
		n = m;
	}
	unsigned char *a = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return 2;
	memset(a, 1, 1 << 20);
	mmap(a + (1 << 20), 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	for (int k = 0; k < 5; k++) {
		size_t len = (size_t)1 << (20 + k);
		a = mremap(a, len, 2 * len, MREMAP_MAYMOVE);
		if (a == MAP_FAILED || a[0] != 1 || a[len - 1] != 1 || a[2 * len - 1] != 0) {
			printf("mremap growth %d: %s\n", k, a == MAP_FAILED ? strerror(errno) : "data lost");
			return 1;
		}
	}
	printf("mremap-grow: ok (%zu bytes by realloc)\n", n);
	return 0;
}

/* A large reservation costs nothing until used. */
static int reserve(void)
{
	size_t big = 64ull << 30;
	uint8_t *m = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		printf("reserve: mmap failed: %s\n", strerror(errno));
		return 1;
	}
	if (mprotect(m + (1ull << 30), 1 << 20, PROT_READ | PROT_WRITE)) {
		printf("reserve: mprotect failed: %s\n", strerror(errno));
		return 1;
	}
	memset(m + (1ull << 30), 1, 1 << 20);
	printf("reserve: ok\n");
	return 0;
}

/* Anonymous memory up to a limit: how much of 256 MiB, in 16 MiB steps,
 * could be mapped and touched. */
static int memcap(void)
{
	int got = 0;
	for (int k = 0; k < 16; k++) {
		uint8_t *m = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			break;
		memset(m, 1, 16 << 20);
		got++;
	}
	printf("memcap: %d MiB\n", got * 16);
	return 0;
}

static sigjmp_buf jb;
static volatile void *bus_addr;
static volatile int bus_sig;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	bus_sig = sig;
	bus_addr = si->si_addr;
	siglongjmp(jb, 1);
}

/* A file mapping longer than the file: the guest's own access is SIGBUS
 * for its handler, a system call handed such a pointer fails with EFAULT. */
static int sigbus(void)
{
	char path[] = "/tmp/corral-hostile-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, "x", 1) != 1)
		return 2;
	unlink(path);
	volatile uint8_t *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return 2;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_bus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
	printf("first page: %d %d\n", m[0], m[4095]);
	for (int k = 1; k < 3; k++) {
		bus_sig = 0;
		if (!sigsetjmp(jb, 1))
			(void)m[k * 4096 + 8];
		printf("page %d read: signal %d at +%ld\n", k, bus_sig,
		       bus_sig ? (long)((uint8_t *)bus_addr - m) : -1L);
		bus_sig = 0;
		if (!sigsetjmp(jb, 1))
			m[k * 4096 + 16] = 1;
		printf("page %d write: signal %d at +%ld\n", k, bus_sig,
		       bus_sig ? (long)((uint8_t *)bus_addr - m) : -1L);
	}
	int p[2];
	if (pipe(p))
		return 2;
	long r = write(p[1], (void *)(m + 4096), 16);
	printf("write from past the end: %ld %s\n", r, r < 0 ? strerror(errno) : "");
	if (write(p[1], "0123456789abcdef", 16) != 16)
		return 2;
	r = read(p[0], (void *)(m + 8192), 16);
	printf("read into past the end: %ld %s\n", r, r < 0 ? strerror(errno) : "");
	/* the file grows: the page becomes readable */
	if (ftruncate(fd, 4096 + 100))
		return 2;
	bus_sig = 0;
	if (!sigsetjmp(jb, 1))
		printf("after growing: %d\n", m[4096 + 8]);
	else
		printf("after growing: signal %d\n", bus_sig);
	return 0;
}

static __attribute__((noinline)) long touch(volatile uint8_t *m, int n)
{
	long sum = 0;
	for (int k = 0; k < n; k++)
		sum += m[(k * 64) & 4095];
	return sum;
}

/* The same, from hot code (translated by corral): a file page that was
 * read many times goes away under a loop (the file is truncated). */
static int sigbus_hot(void)
{
	char path[] = "/tmp/corral-hostile-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, 4096))
		return 2;
	unlink(path);
	volatile uint8_t *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return 2;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_bus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
	long sum = 0;
	for (int k = 0; k < 2000; k++)
		sum += touch(m, 64);
	if (ftruncate(fd, 0))
		return 2;
	bus_sig = 0;
	if (!sigsetjmp(jb, 1))
		sum += touch(m, 64);
	printf("hot loop over a truncated file: signal %d (sum %ld)\n", bus_sig, sum);
	return 0;
}

/* Code changed through a second, shared mapping of the same file page. */
static int alias_code(void)
{
	int fd = memfd_create("code", 0);
	if (fd < 0 || ftruncate(fd, 4096))
		return 2;
	uint8_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uint8_t *x = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
	if (w == MAP_FAILED || x == MAP_FAILED)
		return 2;
	int total = 0;
	for (int k = 0; k < 40; k++) {
		/* mov eax, k; ret */
		w[0] = 0xb8;
		memcpy(w + 1, &k, 4);
		w[5] = 0xc3;
		__builtin___clear_cache((char *)x, (char *)x + 6);
		int (*f)(void) = (int (*)(void))(void *)x;
		int got = 0;
		for (int rep = 0; rep < 50; rep++) /* hot enough to be translated */
			got = f();
		total += got == k;
	}
	printf("alias-code: %d of 40 right\n", total);
	return 0;
}

/* The last page of the user address space is not the program's. */
static int top_page(void)
{
	void *m = mmap((void *)0x7ffffffff000ul, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	printf("top page: %s\n", m == MAP_FAILED ? strerror(errno) : "mapped");
	m = mmap((void *)0x7fffffffe000ul, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	printf("across the top: %s\n", m == MAP_FAILED ? strerror(errno) : "mapped");
	return 0;
}

/* corral's own memory through procfs: /proc/self/mem and its aliases */
static int proc_mem(void)
{
	char path[64];
	const char *paths[] = {"/proc/self/mem", "/proc/thread-self/mem", path, NULL};
	snprintf(path, sizeof(path), "/proc/%d/task/%d/mem", getpid(), getpid());
	int opened = 0;
	for (int k = 0; paths[k]; k++) {
		int fd = open(paths[k], O_RDWR);
		if (fd >= 0) {
			opened++;
			close(fd);
		}
	}
	int dir = open("/proc/self", O_RDONLY | O_DIRECTORY);
	if (dir >= 0) {
		int fd = openat(dir, "mem", O_RDONLY);
		if (fd >= 0) {
			opened++;
			close(fd);
		}
	}
	printf("proc mem files opened: %d\n", opened);
	return 0;
}

/* ---- instructions: the signal hardware raises ---- */
static volatile long fault_code;
static void *volatile fault_addr;

static void on_insn(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	bus_sig = sig;
	fault_code = si->si_code;
	fault_addr = si->si_addr;
	siglongjmp(jb, 1);
}

static void insn_run(const char *name, const unsigned char *b, size_t n)
{
	unsigned char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		exit(2);
	memcpy(m, b, n);
	m[n] = 0xc3; /* ret */
	bus_sig = 0;
	fault_code = 0;
	fault_addr = NULL;
	if (!sigsetjmp(jb, 1))
		((void (*)(void))(void *)m)();
	printf("%-10s signal %2d code %3ld addr %s\n", name, bus_sig, fault_code,
	       !fault_addr		 ? "0"
	       : fault_addr == (void *)m ? "rip"
					 : "other");
	munmap(m, 4096);
}

/* Instructions whose fault differs by kind: #UD (SIGILL), #GP (SIGSEGV
 * with SI_KERNEL), over-long encodings. Only encodings whose outcome does
 * not depend on CPU features the host may have and corral lacks. */
static int insns(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_insn;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGTRAP, &sa, NULL);
	static const unsigned char sysenter[] = {0x0f, 0x34}, sysexit[] = {0x0f, 0x35}, ud2[] = {0x0f, 0x0b},
				   int81[] = {0xcd, 0x81}, hlt[] = {0xf4}, locknop[] = {0xf0, 0x90},
				   evexbad[] = {0x62, 0xf1, 0x7c, 0x48, 0xff, 0xc1}, rdpmc[] = {0x0f, 0x33},
				   cli[] = {0xfa}, in[] = {0xe4, 0x80};
	unsigned char fifteen[15], sixteen[16];
	memset(fifteen, 0x66, 14);
	fifteen[14] = 0x90;
	memset(sixteen, 0x66, 15);
	sixteen[15] = 0x90;
	insn_run("sysenter", sysenter, sizeof(sysenter));
	insn_run("sysexit", sysexit, sizeof(sysexit));
	insn_run("15 bytes", fifteen, sizeof(fifteen));
	insn_run("16 bytes", sixteen, sizeof(sixteen));
	insn_run("ud2", ud2, sizeof(ud2));
	insn_run("int 0x81", int81, sizeof(int81));
	insn_run("hlt", hlt, sizeof(hlt));
	insn_run("lock nop", locknop, sizeof(locknop));
	insn_run("evex bad", evexbad, sizeof(evexbad));
	insn_run("rdpmc", rdpmc, sizeof(rdpmc));
	insn_run("cli", cli, sizeof(cli));
	insn_run("in", in, sizeof(in));
	return 0;
}

/* ---- the host's processes ---- */

/* with kill_all, also kill(-1, SIGTERM): run that only in a sandbox */
static int host_procs(long hostpid, int kill_all)
{
	errno = 0;
	printf("kill host pid: %s\n", kill((pid_t)hostpid, 0) ? strerror(errno) : "reached");
	struct rlimit rl = {64, 64};
	printf("prlimit host pid: %s\n",
	       syscall(SYS_prlimit64, hostpid, RLIMIT_NOFILE, &rl, NULL) ? strerror(errno) : "reached");
	printf("setpriority host pid: %s\n", setpriority(PRIO_PROCESS, (id_t)hostpid, 5) ? strerror(errno) : "reached");
	cpu_set_t cs;
	CPU_ZERO(&cs);
	CPU_SET(0, &cs);
	printf("sched_setaffinity host pid: %s\n",
	       sched_setaffinity((pid_t)hostpid, sizeof(cs), &cs) ? strerror(errno) : "reached");
	long pfd2 = syscall(SYS_pidfd_open, hostpid, 0);
	printf("pidfd_open host pid: %s\n", pfd2 < 0 ? strerror(errno) : "reached");
	/* kill(-1) outside a fresh PID namespace would end every process the
	 * caller may signal (as root: the host's); only try it where this
	 * program is one of the first few processes of a namespace */
	if (!kill_all || getpid() > 10)
		return 0;
	/* every process this one can signal (as root: the whole host) */
	signal(SIGTERM, SIG_IGN);
	pid_t child = fork();
	if (child == 0) {
		signal(SIGTERM, SIG_IGN);
		kill(-1, SIGTERM);
		_exit(0);
	}
	int st;
	waitpid(child, &st, 0);
	printf("kill(-1) done, my pid %d\n", getpid());
	return 0;
}

/* ---- devices ---- */

static int devices(void)
{
	const char *node = "/tmp/hostile-kmsg";
	unlink(node);
	printf("mknod char: %s\n", mknod(node, S_IFCHR | 0600, makedev(1, 11)) ? strerror(errno) : "made");
	int fd = open(node, O_RDONLY | O_NONBLOCK);
	printf("open char node: %s\n", fd < 0 ? strerror(errno) : "opened");
	unlink(node);
	printf("mkfifo: %s\n", mkfifo("/tmp/hostile-fifo", 0600) ? strerror(errno) : "made");
	unlink("/tmp/hostile-fifo");
	static const char *const ok[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
	for (unsigned k = 0; k < sizeof(ok) / sizeof(ok[0]); k++) {
		fd = open(ok[k], O_RDWR);
		printf("%s: %s\n", ok[k], fd < 0 ? strerror(errno) : "opened");
		if (fd >= 0)
			close(fd);
	}
	static const char *const bad[] = {"/dev/kmsg", "/dev/mem", "/dev/sda", "/dev/vda", "/dev/loop0", "/dev/kvm"};
	int reached = 0;
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		fd = open(bad[k], O_RDONLY | O_NONBLOCK);
		if (fd >= 0) {
			printf("%s: opened\n", bad[k]);
			reached++;
			close(fd);
		}
	}
	/* descriptors that are not the program's (fcntl says EBADF) but that
	 * /dev/fd would open: corral's own */
	int own = 0;
	for (int k = 3; k < 1024; k++) {
		if (fcntl(k, F_GETFD) >= 0 || errno != EBADF)
			continue;
		char p[32];
		snprintf(p, sizeof(p), "/dev/fd/%d", k);
		fd = open(p, O_RDONLY | O_NONBLOCK);
		if (fd >= 0) {
			own++;
			close(fd);
		}
		snprintf(p, sizeof(p), "/dev/fd/%d/.", k);
		fd = open(p, O_RDONLY | O_DIRECTORY);
		if (fd >= 0) {
			own++;
			close(fd);
		}
	}
	printf("host devices reached: %d\n", reached);
	printf("descriptors not its own opened: %d\n", own);
	return 0;
}

/* ---- network ---- */

/* addr: where "the host's loopback" is seen from here (127.0.0.1, or
 * 10.0.2.2 behind --net user) */
static int network(const char *port, const char *addr)
{
	int s = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	printf("netlink: %s\n", s < 0 ? strerror(errno) : "opened");
	s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	printf("raw: %s\n", s < 0 ? strerror(errno) : "opened");
	s = socket(AF_PACKET, SOCK_RAW, 0);
	printf("packet: %s\n", s < 0 ? strerror(errno) : "opened");
	s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
	inet_pton(AF_INET, addr, &in.sin_addr);
	printf("host loopback: %s\n", connect(s, (struct sockaddr *)&in, sizeof(in)) ? strerror(errno) : "connected");
	/* loopback of its own still works */
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in me = {.sin_family = AF_INET};
	me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t ml = sizeof(me);
	int ok = l >= 0 && !bind(l, (struct sockaddr *)&me, sizeof(me)) && !listen(l, 1) &&
		 !getsockname(l, (struct sockaddr *)&me, &ml);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	ok = ok && !connect(c, (struct sockaddr *)&me, sizeof(me));
	printf("own loopback: %s\n", ok ? "works" : strerror(errno));
	return 0;
}

/* A unix socket path and an abstract name, both the host's. */
static int unix_sockets(const char *path, const char *abstract)
{
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	printf("unix path: %s\n", connect(s, (struct sockaddr *)&un, sizeof(un)) ? strerror(errno) : "connected");
	/* through a symlink of the guest's own that points out */
	unlink("/s");
	if (symlink(path, "/s") == 0 || errno == EEXIST) {
		s = socket(AF_UNIX, SOCK_STREAM, 0);
		snprintf(un.sun_path, sizeof(un.sun_path), "/s");
		printf("unix symlink: %s\n",
		       connect(s, (struct sockaddr *)&un, sizeof(un)) ? strerror(errno) : "connected");
	}
	s = socket(AF_UNIX, SOCK_DGRAM, 0);
	snprintf(un.sun_path, sizeof(un.sun_path), "/s");
	printf("unix dgram sendto: %s\n",
	       sendto(s, "x", 1, 0, (struct sockaddr *)&un, sizeof(un)) < 0 ? strerror(errno) : "sent");
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(un.sun_path, 0, sizeof(un.sun_path));
	size_t al = strlen(abstract);
	memcpy(un.sun_path + 1, abstract, al);
	printf("abstract: %s\n",
	       connect(s, (struct sockaddr *)&un, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + al))
		       ? strerror(errno)
		       : "connected");
	/* a socket of its own: bound, named as the guest named it */
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un mine = {.sun_family = AF_UNIX};
	snprintf(mine.sun_path, sizeof(mine.sun_path), "/tmp/own.sock");
	unlink(mine.sun_path);
	int ok = !bind(l, (struct sockaddr *)&mine, sizeof(mine)) && !listen(l, 1);
	struct sockaddr_un got;
	socklen_t gl = sizeof(got);
	ok = ok && !getsockname(l, (struct sockaddr *)&got, &gl);
	printf("own socket: %s %s\n", ok ? "bound" : strerror(errno), ok ? got.sun_path : "");
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	printf("own connect: %s\n", connect(c, (struct sockaddr *)&mine, sizeof(mine)) ? strerror(errno) : "connected");
	unlink(mine.sun_path);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	const char *c = argc > 1 ? argv[1] : "";
	if (!strcmp(c, "alias-read"))
		return alias_read();
	if (!strcmp(c, "alias-write"))
		return alias_write();
	if (!strcmp(c, "reserve"))
		return reserve();
	if (!strcmp(c, "mremap-grow"))
		return mremap_grow();
	if (!strcmp(c, "memcap"))
		return memcap();
	if (!strcmp(c, "sigbus"))
		return sigbus();
	if (!strcmp(c, "sigbus-hot"))
		return sigbus_hot();
	if (!strcmp(c, "alias-code"))
		return alias_code();
	if (!strcmp(c, "top-page"))
		return top_page();
	if (!strcmp(c, "insns"))
		return insns();
	if (!strcmp(c, "proc-mem"))
		return proc_mem();
	if (!strcmp(c, "host-procs") && argc > 2)
		return host_procs(atol(argv[2]), argc > 3 && !strcmp(argv[3], "kill-all"));
	if (!strcmp(c, "devices"))
		return devices();
	if (!strcmp(c, "network") && argc > 2)
		return network(argv[2], argc > 3 ? argv[3] : "127.0.0.1");
	if (!strcmp(c, "unix") && argc > 3)
		return unix_sockets(argv[2], argv[3]);
	fprintf(stderr, "usage: hostile CASE [ARGS]\n");
	return 2;
}
