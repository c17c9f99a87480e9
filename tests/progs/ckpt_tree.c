/* A program for checkpoints of process trees (tests/process/t_ckpt_tree.sh):
 *   ckpt_tree work N PROGRESS  forks a child that exits with 7 at once (a
 *                              zombie until the end) and a worker; sends
 *                              the worker N numbers through one pipe, one
 *                              per 20 ms, and reads its running sums back
 *                              through another, a line per number into
 *                              PROGRESS; then signals the worker, reaps
 *                              both children and prints the sums, their
 *                              exit statuses, and whether getpid(),
 *                              getppid() and the children's pids are those
 *                              the program had at its start
 *   ckpt_tree orphan GO        forks a child that forks a grandchild and
 *                              exits (the grandchild goes to init), says
 *                              "ready", waits until file GO exists, then
 *                              ends the grandchild and says "done"
 *   ckpt_tree sock TYPE N PROGRESS
 *                              (TYPE stream, dgram or seqpacket) forks a
 *                              child over a socket pair; sends it N
 *                              messages of varied lengths (empty ones
 *                              too, but for a stream), three ahead of its
 *                              replies, one per 20 ms; the child checks
 *                              each and replies with a running hash, a
 *                              line per reply into PROGRESS; then prints
 *                              the hash and the child's exit status
 *   ckpt_tree groups N PROGRESS
 *                              forks A, which leads a process group of
 *                              its own with its child B in it, and C,
 *                              which leads a session; a line per 20 ms
 *                              into PROGRESS, N of them; then prints
 *                              whether getpgid and getsid of each are
 *                              those of before, signals A's group with
 *                              kill(-A) and C, and prints how A (with
 *                              what B saw) and C exited; and what it
 *                              finds in /proc/<pid> of C and its own
 *   ckpt_tree pi USE GO        (USE 1) takes and gives back a PI futex
 *                              (FUTEX_LOCK_PI), says "ready", waits until
 *                              file GO exists, takes it again and says
 *                              what that gave
 *   ckpt_tree ownfile N PROGRESS FILE
 *                              forks a child that opens FILE (its own:
 *                              the first process does not hold it) and
 *                              waits; a line per 20 ms into PROGRESS, N
 *                              of them; then ends the child and prints
 *                              how it exited
 *   ckpt_tree procself GO      forks a child; both wait until file GO
 *                              exists, then say whether /proc/self/stat,
 *                              /proc/PID/stat, /proc/self/task/TID/stat
 *                              and /proc/self/status give the pid, parent,
 *                              group and session that getpid(), getppid(),
 *                              getpgrp() and getsid() give
 *   ckpt_tree ttyfg GO         says "ready", waits until file GO exists,
 *                              then says whether its terminal (standard
 *                              input) names its group as the foreground
 *                              one and its session as the terminal's,
 *                              and what making its group the foreground
 *                              one again gave
 *   ckpt_tree exec GO          says "ready", waits until file GO exists,
 *                              then execs itself as "ckpt_tree pid PID"
 *                              with its pid, which says whether its pid
 *                              is still that
 * Every line it prints depends on the pipes' data, the children's exit
 * statuses and the pids, so a restore that loses any of them shows. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1, usr1_pid;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	got_usr1 = 1;
	usr1_pid = si->si_pid;
}

static void put(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			perror("write");
			exit(1);
		}
		c += w;
		n -= (size_t)w;
	}
}

static int get(int fd, void *p, size_t n)
{
	char *c = p;
	while (n) {
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static int worker(int in, int out, pid_t parent)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	uint64_t sum = 0, x;
	while (get(in, &x, sizeof(x)) == 0) {
		sum = sum * 31 + x;
		put(out, &sum, sizeof(sum));
	}
	/* end of file: the parent closed its end; wait for its signal */
	while (!got_usr1)
		pause();
	int ok = getppid() == parent && usr1_pid == parent;
	return (int)(sum % 100) + (ok ? 100 : 0);
}

/* message i of a socket conversation: its length and bytes */
static size_t sock_msg(int type, int i, uint8_t *b)
{
	size_t len = type == SOCK_STREAM ? 8 : (size_t)(i % 5) * 3;
	for (size_t j = 0; j < len; j++)
		b[j] = (uint8_t)(i * 7 + (int)j);
	return len;
}

static void nap(long ms)
{
	struct timespec ts = {0, ms * 1000000};
	nanosleep(&ts, NULL);
}

static int sock_child(int fd, int type, int n)
{
	uint64_t acc = 0;
	int ok = 1;
	for (int i = 1; i <= n; i++) {
		uint8_t want[16], got[64];
		size_t len = sock_msg(type, i, want);
		ssize_t r;
		if (type == SOCK_STREAM)
			r = get(fd, got, len) ? -1 : (ssize_t)len;
		else
			while ((r = recv(fd, got, sizeof(got), 0)) < 0 && errno == EINTR)
				;
		if (r != (ssize_t)len || memcmp(got, want, len))
			ok = 0;
		acc = acc * 131 + (uint64_t)r + (r > 0 ? got[r - 1] : 0);
		nap(10);
		put(fd, &acc, sizeof(acc));
	}
	return (int)(acc % 100) + (ok ? 100 : 0);
}

static int sock_talk(const char *tname, int n, const char *progress)
{
	int type = !strcmp(tname, "stream") ? SOCK_STREAM : !strcmp(tname, "dgram") ? SOCK_DGRAM : SOCK_SEQPACKET;
	int sv[2];
	FILE *prog = fopen(progress, "a");
	if (!prog || socketpair(AF_UNIX, type, 0, sv))
		return 2;
	setvbuf(prog, NULL, _IOLBF, 0);
	pid_t c = fork();
	if (c == 0) {
		close(sv[0]);
		fclose(prog);
		_exit(sock_child(sv[1], type, n));
	}
	close(sv[1]);
	const int ahead = 3;
	uint64_t h = 0;
	for (int i = 1; i <= n + ahead; i++) {
		if (i <= n) {
			uint8_t b[16];
			size_t len = sock_msg(type, i, b);
			if (type == SOCK_STREAM)
				put(sv[0], b, len);
			else if (send(sv[0], b, len, 0) != (ssize_t)len)
				return 3;
		}
		if (i > ahead) {
			uint64_t a;
			if (get(sv[0], &a, sizeof(a))) {
				printf("the child is gone at %d\n", i);
				return 1;
			}
			h = h * 31 + a;
			fprintf(prog, "%d %llu\n", i - ahead, (unsigned long long)h);
		}
		nap(20);
	}
	int st = 0;
	pid_t r = waitpid(c, &st, 0);
	printf("%s: hash %llu; child reaped %s, exited %d status %d\n", tname, (unsigned long long)h,
	       r == c ? "by its pid" : "wrong", WIFEXITED(st), WEXITSTATUS(st));
	return 0;
}

static int until_usr1(void)
{
	while (!got_usr1)
		pause();
	return 1;
}

static int groups(int n, const char *progress)
{
	FILE *prog = fopen(progress, "a");
	int rd[2];
	if (!prog || pipe(rd))
		return 2;
	setvbuf(prog, NULL, _IOLBF, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	pid_t pg = getpgrp(), sid = getsid(0);
	pid_t a = fork();
	if (a == 0) {
		close(rd[0]);
		setpgid(0, 0);
		pid_t b = fork();
		if (b == 0) {
			setpgid(0, getppid());
			put(rd[1], "b", 1);
			close(rd[1]);
			until_usr1();
			_exit(getpgrp() == getppid() ? 3 : 4);
		}
		close(rd[1]);
		until_usr1();
		int st = 0;
		pid_t r = waitpid(b, &st, 0);
		_exit(10 * (r == b && WIFEXITED(st) ? WEXITSTATUS(st) : 9) + (getpgrp() == getpid()));
	}
	pid_t c = fork();
	if (c == 0) {
		close(rd[0]);
		if (chdir("/"))
			_exit(7);
		setsid();
		put(rd[1], "c", 1);
		close(rd[1]);
		until_usr1();
		_exit(getsid(0) == getpid() && getpgrp() == getpid() ? 5 : 6);
	}
	close(rd[1]);
	char ready[2];
	if (get(rd[0], ready, 2))
		return 2;
	close(rd[0]);
	pid_t b = 0;
	for (int i = 0; i < 100 && !b; i++) {
		/* B: the other member of A's group, seen from here */
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", a, a);
		FILE *f = fopen(path, "r");
		int v;
		if (f && fscanf(f, "%d", &v) == 1)
			b = v;
		if (f)
			fclose(f);
	}
	for (int i = 1; i <= n; i++) {
		fprintf(prog, "%d\n", i);
		nap(20);
	}
	printf("A leads its group %d, B is in it %d, C leads its session %d and group %d\n", getpgid(a) == a,
	       b > 0 && getpgid(b) == a, getsid(c) == c, getpgid(c) == c);
	printf("A's session is ours %d; our group %d and session %d as before\n", getsid(a) == sid, getpgrp() == pg,
	       getsid(0) == sid);
	/* /proc/<pid> of its own processes, by the pids it knows */
	char path[64], buf[256] = "";
	snprintf(path, sizeof(path), "/proc/%d/cwd", c);
	ssize_t bl = readlink(path, buf, sizeof(buf) - 1);
	buf[bl > 0 ? bl : 0] = 0;
	printf("/proc/C/cwd: %s\n", bl > 0 ? buf : strerror(errno));
	FILE *f;
	snprintf(path, sizeof(path), "/proc/%d/stat", c);
	f = fopen(path, "r");
	char pst = '?';
	if (!f || fscanf(f, "%*d (%*[^)]) %c", &pst) != 1)
		pst = '?';
	if (f)
		fclose(f);
	printf("/proc/C/stat: C is sleeping %d\n", pst == 'S');
	snprintf(path, sizeof(path), "/proc/%d/status", getpid());
	int ok = access(path, R_OK) == 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", getpid());
	ok = ok && access(path, R_OK) == 0;
	snprintf(path, sizeof(path), "/proc/%d/fd/1", getpid());
	char lnk[256];
	ok = ok && readlink(path, lnk, sizeof(lnk)) > 0;
	printf("/proc/self by its pid: status, cmdline, fd/1 %d\n", ok);
	if (kill(-a, SIGUSR1) || kill(c, SIGUSR1))
		printf("kill: %s\n", strerror(errno));
	int st = 0;
	pid_t r = waitpid(a, &st, 0);
	printf("A: reaped %s, status %d\n", r == a ? "by its pid" : "wrong", WEXITSTATUS(st));
	r = waitpid(c, &st, 0);
	printf("C: reaped %s, status %d\n", r == c ? "by its pid" : "wrong", WEXITSTATUS(st));
	return 0;
}

static long lock_pi(uint32_t *w)
{
	long r = syscall(SYS_futex, w, 6 /* FUTEX_LOCK_PI */, 0, NULL, NULL, 0);
	if (r == 0)
		r = syscall(SYS_futex, w, 7 /* FUTEX_UNLOCK_PI */, 0, NULL, NULL, 0);
	return r;
}

static int pi(int use, const char *go)
{
	static uint32_t w;
	if (use && lock_pi(&w))
		return 2;
	printf("ready\n");
	fflush(stdout);
	while (access(go, F_OK))
		nap(20);
	printf("lock_pi: %s\n", lock_pi(&w) ? strerror(errno) : "taken");
	return 0;
}

static int orphan(const char *go)
{
	int p[2];
	if (pipe(p))
		return 2;
	pid_t c = fork();
	if (c == 0) {
		pid_t g = fork();
		if (g == 0) {
			for (;;)
				pause();
		}
		if (write(p[1], &g, sizeof(g)) != sizeof(g))
			_exit(1);
		_exit(0);
	}
	pid_t g;
	close(p[1]);
	if (get(p[0], &g, sizeof(g)) || waitpid(c, NULL, 0) != c)
		return 1;
	close(p[0]);
	printf("ready\n");
	fflush(stdout);
	while (access(go, F_OK)) {
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	kill(g, SIGKILL);
	printf("done\n");
	return 0;
}

static int ownfile(int n, const char *progress, const char *file)
{
	FILE *prog = fopen(progress, "a");
	int rd[2];
	if (!prog || pipe(rd))
		return 2;
	setvbuf(prog, NULL, _IOLBF, 0);
	pid_t c = fork();
	if (c == 0) {
		close(rd[0]);
		int fd = open(file, O_RDONLY);
		put(rd[1], fd >= 0 ? "y" : "n", 1);
		for (;;)
			pause();
	}
	close(rd[1]);
	char ok;
	if (get(rd[0], &ok, 1) || ok != 'y')
		return 2;
	for (int i = 1; i <= n; i++) {
		fprintf(prog, "%d\n", i);
		nap(20);
	}
	kill(c, SIGTERM);
	int st = 0;
	pid_t r = waitpid(c, &st, 0);
	printf("child: reaped %s, by signal %d\n", r == c ? "by its pid" : "wrong", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return 0;
}

/* "stat": whether a /proc/.../stat file's pid, ppid, pgrp and session
 * are these */
static const char *stat_same(const char *path, int pid)
{
	static char res[64];
	char b[1024];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(b, 1, sizeof(b) - 1, f) : 0;
	if (f)
		fclose(f);
	b[n] = 0;
	char *e = strrchr(b, ')');
	int p = 0, pp = 0, pg = 0, ss = 0;
	if (!e || sscanf(b, "%d", &p) != 1 || sscanf(e + 2, "%*c %d %d %d", &pp, &pg, &ss) != 3)
		return "unreadable";
	snprintf(res, sizeof(res), "pid %d ppid %d pgrp %d session %d", p == pid, pp == getppid(), pg == getpgrp(),
		 ss == getsid(0));
	return res;
}

static int status_field(const char *b, const char *name)
{
	const char *l = strstr(b, name);
	return l ? atoi(l + strlen(name)) : -1;
}

static void proc_self(const char *who)
{
	char path[64];
	printf("%s: /proc/self/stat: %s\n", who, stat_same("/proc/self/stat", getpid()));
	snprintf(path, sizeof(path), "/proc/%d/stat", getpid());
	printf("%s: /proc/PID/stat: %s\n", who, stat_same(path, getpid()));
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)syscall(SYS_gettid));
	printf("%s: /proc/self/task/TID/stat: %s\n", who, stat_same(path, (int)syscall(SYS_gettid)));
	char b[4096];
	FILE *f = fopen("/proc/self/status", "r");
	size_t n = f ? fread(b, 1, sizeof(b) - 1, f) : 0;
	if (f)
		fclose(f);
	b[n] = 0;
	printf("%s: /proc/self/status: Pid %d Tgid %d PPid %d NSpid %d NSpgid %d NSsid %d\n", who,
	       status_field(b, "\nPid:\t") == getpid(), status_field(b, "\nTgid:\t") == getpid(),
	       status_field(b, "\nPPid:\t") == getppid(), status_field(b, "\nNSpid:\t") == getpid(),
	       status_field(b, "\nNSpgid:\t") == getpgrp(), status_field(b, "\nNSsid:\t") == getsid(0));
	/* other files named stat: the system's, and a directory */
	f = fopen("/proc/stat", "r");
	n = f ? fread(b, 1, 3, f) : 0;
	if (f)
		fclose(f);
	int dfd = open("/proc/net/stat", O_RDONLY);
	struct stat st;
	printf("%s: /proc/stat %s, /proc/net/stat a directory %d\n", who,
	       n == 3 && !memcmp(b, "cpu", 3) ? "the system's" : "wrong",
	       dfd >= 0 && !fstat(dfd, &st) && S_ISDIR(st.st_mode));
	if (dfd >= 0)
		close(dfd);
	fflush(stdout);
}

static int procself(const char *go)
{
	pid_t c = fork();
	if (c == 0) {
		while (access(go, F_OK))
			nap(20);
		nap(100); /* after the parent's lines */
		proc_self("child");
		_exit(0);
	}
	printf("ready\n");
	fflush(stdout);
	while (access(go, F_OK))
		nap(20);
	proc_self("parent");
	int st;
	return waitpid(c, &st, 0) == c && WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static int ttyfg(const char *go)
{
	printf("ready\n");
	fflush(stdout);
	while (access(go, F_OK))
		nap(20);
	printf("foreground is our group %d, the terminal's session is ours %d\n", tcgetpgrp(0) == getpgrp(),
	       tcgetsid(0) == getsid(0));
	int r = tcsetpgrp(0, getpgrp());
	printf("tcsetpgrp: %s, foreground is our group %d\n", r ? strerror(errno) : "done", tcgetpgrp(0) == getpgrp());
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "ttyfg"))
		return ttyfg(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "procself"))
		return procself(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "ownfile"))
		return ownfile(atoi(argv[2]), argv[3], argv[4]);
	if (argc == 3 && !strcmp(argv[1], "orphan"))
		return orphan(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "pi"))
		return pi(atoi(argv[2]), argv[3]);
	if (argc == 4 && !strcmp(argv[1], "groups"))
		return groups(atoi(argv[2]), argv[3]);
	if (argc == 5 && !strcmp(argv[1], "sock"))
		return sock_talk(argv[2], atoi(argv[3]), argv[4]);
	if (argc == 3 && !strcmp(argv[1], "pid")) {
		printf("after exec, the same pid %d\n", getpid() == atoi(argv[2]));
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "exec")) {
		char pid[16];
		snprintf(pid, sizeof(pid), "%d", getpid());
		printf("ready\n");
		fflush(stdout);
		while (access(argv[2], F_OK)) {
			struct timespec ts = {0, 20 * 1000000};
			nanosleep(&ts, NULL);
		}
		execl("/proc/self/exe", argv[0], "pid", pid, (char *)NULL);
		perror("exec");
		return 1;
	}
	if (argc != 4 || strcmp(argv[1], "work")) {
		fprintf(stderr, "usage: ckpt_tree work N PROGRESS\n");
		return 2;
	}
	int n = atoi(argv[2]);
	FILE *prog = fopen(argv[3], "a");
	if (!prog)
		return 2;
	setvbuf(prog, NULL, _IOLBF, 0);
	pid_t me = getpid(), pp = getppid();
	pid_t tid = (pid_t)syscall(SYS_gettid);
	pid_t zombie = fork();
	if (zombie == 0)
		_exit(7);
	int to[2], from[2];
	if (pipe(to) || pipe(from))
		return 2;
	pid_t w = fork();
	if (w == 0) {
		close(to[1]);
		close(from[0]);
		fclose(prog);
		_exit(worker(to[0], from[1], me));
	}
	close(to[0]);
	close(from[1]);
	uint64_t sum = 0;
	for (int i = 1; i <= n; i++) {
		uint64_t x = (uint64_t)i * 2654435761u;
		put(to[1], &x, sizeof(x));
		if (get(from[0], &sum, sizeof(sum))) {
			printf("the worker is gone at %d\n", i);
			return 1;
		}
		fprintf(prog, "%d %llu\n", i, (unsigned long long)sum);
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	close(to[1]);
	printf("sum %llu\n", (unsigned long long)sum);
	/* the worker's pid as this program knew it names the worker */
	if (kill(w, SIGUSR1))
		printf("kill: %s\n", strerror(errno));
	int st = 0;
	pid_t r = waitpid(w, &st, 0);
	printf("worker: reaped %s, exited %d status %d\n", r == w ? "by its pid" : "wrong", WIFEXITED(st),
	       WEXITSTATUS(st));
	r = waitpid(zombie, &st, 0);
	printf("zombie: reaped %s, exited %d status %d\n", r == zombie ? "by its pid" : "wrong", WIFEXITED(st),
	       WEXITSTATUS(st));
	(void)pp;
	printf("getpid same %d, gettid same %d\n", getpid() == me, (pid_t)syscall(SYS_gettid) == tid);
	return 0;
}
