/* A program for checkpoints of pipes and socket pairs
 * (tests/process/t_checkpoint.sh): every line it prints depends on what
 * waited in its pipes and sockets, their flags, types and boundaries.
 *   ckpt_chan hold GO          fill pipes and socket pairs, say "ready",
 *                              wait until file GO exists, then read them all
 *                              back and print what they held and how
 *   ckpt_chan rights GO        a datagram pair with a descriptor in flight
 *                              between two messages (a checkpoint refuses
 *                              it and must leave all three as they were)
 *   ckpt_chan flow N PROGRESS  threads that talk through a pipe and a
 *                              datagram socket pair, N numbers, a line of
 *                              progress per 20000 into PROGRESS; prints
 *                              the sums at the end */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w <= 0) {
			perror("write");
			exit(1);
		}
		c += w;
		n -= (size_t)w;
	}
}

static uint32_t fnv(const uint8_t *p, size_t n, uint32_t h)
{
	for (size_t k = 0; k < n; k++)
		h = (h ^ p[k]) * 16777619u;
	return h;
}

/* fd FROM moved to number TO */
static void move(int from, int to)
{
	if (dup2(from, to) < 0) {
		perror("dup2");
		exit(1);
	}
	close(from);
}

static const char *flags(int fd)
{
	static char b[64];
	int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);
	if (fl < 0)
		return "closed";
	snprintf(b, sizeof(b), "%s%s%s",
		 (fl & O_ACCMODE) == O_RDONLY	? "r"
		 : (fl & O_ACCMODE) == O_WRONLY ? "w"
						: "rw",
		 (fl & O_NONBLOCK) ? " nonblock" : "", (fdf & FD_CLOEXEC) ? " cloexec" : "");
	return b;
}

static const char *stype(int fd)
{
	int t = 0;
	socklen_t l = sizeof(t);
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l);
	return t == SOCK_STREAM ? "stream" : t == SOCK_DGRAM ? "dgram" : t == SOCK_SEQPACKET ? "seqpacket" : "?";
}

/* every message waiting at fd (non-blocking), their lengths and a hash */
static void drain(const char *name, int fd)
{
	static uint8_t buf[1 << 17];
	printf("%s (%s, %s):", name, stype(fd), flags(fd));
	uint32_t h = 2166136261u;
	for (int k = 0; k < 64; k++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			printf(" %s", errno == EAGAIN ? "EAGAIN" : strerror(errno));
			break;
		}
		printf(" %zd", n);
		h = fnv(buf, (size_t)n, h);
		if (n == 0 && !strcmp(stype(fd), "stream"))
			break;
	}
	printf(" hash %08x\n", h);
}

static int hold(const char *go)
{
	static uint8_t big[70000];
	for (size_t k = 0; k < sizeof(big); k++)
		big[k] = (uint8_t)(k * 7 + k / 251);
	signal(SIGPIPE, SIG_IGN);
	int p[2], q[2], r[2], s[2], d[2], m[2];
	/* a pipe with 3000 bytes in it, read end non-blocking and dup'ed */
	if (pipe(p) || fcntl(p[1], F_SETPIPE_SZ, 131072) < 0)
		return 1;
	move(p[0], 10);
	move(p[1], 11);
	fcntl(10, F_SETFL, O_NONBLOCK);
	fcntl(11, F_SETFD, FD_CLOEXEC);
	put(11, big, 3000);
	dup2(10, 20);
	/* a pipe whose writer is gone: 100 bytes, then end of file */
	if (pipe(q))
		return 1;
	move(q[0], 12);
	put(q[1], big + 5, 100);
	close(q[1]);
	/* a pipe whose reader is gone */
	if (pipe(r))
		return 1;
	close(r[0]);
	move(r[1], 13);
	/* a stream pair: 70000 bytes one way, 4 and a shutdown the other */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s))
		return 1;
	move(s[0], 14);
	move(s[1], 15);
	put(14, big, 40000);
	put(14, big + 40000, 30000);
	put(15, "back", 4);
	shutdown(15, SHUT_WR);
	/* datagrams, an empty one among them */
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, d))
		return 1;
	move(d[0], 16);
	move(d[1], 17);
	fcntl(17, F_SETFL, O_NONBLOCK);
	send(16, "one", 3, 0);
	send(16, "", 0, 0);
	send(16, "three33", 7, 0);
	send(17, "x", 1, 0);
	/* sequenced packets */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, m))
		return 1;
	move(m[0], 18);
	move(m[1], 19);
	fcntl(19, F_SETFD, FD_CLOEXEC);
	send(18, "a", 1, 0);
	send(18, big, 5000, 0);
	send(18, "", 0, 0);
	send(18, "1234567", 7, 0);
	printf("ready\n");
	fflush(stdout);
	struct stat st;
	while (stat(go, &st) < 0)
		usleep(500000); /* long: two checkpoints find it in the same sleep */

	printf("pipe 10: %s, ", flags(10));
	printf("pipe 20: %s, ", flags(20));
	printf("pipe 11: %s, size %d\n", flags(11), fcntl(10, F_GETPIPE_SZ));
	static uint8_t buf[1 << 17];
	ssize_t n = read(20, buf, sizeof(buf));
	printf("pipe read %zd hash %08x, ", n, n > 0 ? fnv(buf, (size_t)n, 2166136261u) : 0);
	n = read(10, buf, sizeof(buf));
	printf("then %zd (%s)\n", n, n < 0 ? strerror(errno) : "data");
	put(11, "more", 4);
	n = read(10, buf, sizeof(buf));
	printf("pipe written and read: %zd\n", n);
	n = read(12, buf, sizeof(buf));
	printf("pipe without writer (%s): %zd hash %08x, ", flags(12), n, n > 0 ? fnv(buf, (size_t)n, 2166136261u) : 0);
	n = read(12, buf, sizeof(buf));
	printf("then %zd\n", n);
	n = write(13, "x", 1);
	printf("pipe without reader (%s): %zd (%s)\n", flags(13), n, n < 0 ? strerror(errno) : "written");
	drain("stream 15", 15);
	drain("stream 14", 14);
	n = send(15, "x", 1, MSG_NOSIGNAL);
	printf("stream 15 after its shutdown: %zd (%s)\n", n, n < 0 ? strerror(errno) : "sent");
	drain("dgram 17", 17);
	drain("dgram 16", 16);
	drain("seqpacket 19", 19);
	drain("seqpacket 18", 18);
	printf("fd 21: %s\n", flags(21));
	return 0;
}

static int rights(const char *go)
{
	int d[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, d))
		return 1;
	send(d[0], "before", 6, 0);
	int fd = open("/dev/null", O_RDONLY);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = {"with", 4};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof(int));
	if (sendmsg(d[0], &m, 0) != 4)
		return 1;
	close(fd);
	send(d[0], "", 0, 0);
	send(d[0], "after", 5, 0);
	printf("ready\n");
	fflush(stdout);
	struct stat st;
	while (stat(go, &st) < 0)
		usleep(100000);
	for (int k = 0; k < 5; k++) {
		char buf[64];
		memset(&ctl, 0, sizeof(ctl));
		iov = (struct iovec){buf, sizeof(buf)};
		m = (struct msghdr){
			.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
		ssize_t n = recvmsg(d[1], &m, MSG_DONTWAIT);
		h = n >= 0 ? CMSG_FIRSTHDR(&m) : NULL;
		int got = -1;
		if (h && h->cmsg_type == SCM_RIGHTS)
			memcpy(&got, CMSG_DATA(h), sizeof(int));
		struct stat fs;
		printf("message %d: %zd '%.*s'%s\n", k, n, n > 0 ? (int)n : 0, buf,
		       got >= 0 && fstat(got, &fs) == 0 && S_ISCHR(fs.st_mode) ? " with /dev/null" : "");
	}
	return 0;
}

/* ---- flow ---- */

static int fwd[2], dg[2];
static long total;
static FILE *prog;

static void *producer(void *arg)
{
	(void)arg;
	char line[32];
	for (long i = 1; i <= total; i++) {
		int l = snprintf(line, sizeof(line), "%ld\n", i * 7919 % 1000003);
		put(fwd[1], line, (size_t)l);
	}
	close(fwd[1]);
	return NULL;
}

/* reads numbers from the pipe; every 1000th goes on as a datagram */
static void *consumer(void *arg)
{
	(void)arg;
	FILE *in = fdopen(fwd[0], "r");
	long v, n = 0;
	uint64_t sum = 0;
	while (fscanf(in, "%ld", &v) == 1) {
		sum = sum * 31 + (uint64_t)v;
		if (++n % 1000 == 0)
			send(dg[0], &sum, sizeof(sum), 0);
		if (n % 20000 == 0) {
			fprintf(prog, "%ld\n", n);
			fflush(prog);
		}
	}
	uint64_t end = 0;
	send(dg[0], &end, 0, 0); /* an empty datagram: the end */
	printf("consumer: %ld numbers, sum %016llx\n", n, (unsigned long long)sum);
	return NULL;
}

static int flow(long n, const char *progress)
{
	total = n;
	prog = fopen(progress, "w");
	if (!prog || pipe(fwd) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg))
		return 1;
	pthread_t a, b;
	pthread_create(&b, NULL, consumer, NULL);
	pthread_create(&a, NULL, producer, NULL);
	uint64_t v, x = 0;
	long msgs = 0;
	for (;;) {
		ssize_t k = recv(dg[1], &v, sizeof(v), 0);
		if (k <= 0)
			break;
		x ^= v + (uint64_t)msgs++;
	}
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	printf("main: %ld datagrams, xor %016llx\n", msgs, (unsigned long long)x);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "hold"))
		return hold(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "rights"))
		return rights(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "flow"))
		return flow(atol(argv[2]), argv[3]);
	fprintf(stderr, "usage: ckpt_chan hold GO | rights GO | flow N PROGRESS\n");
	return 2;
}
