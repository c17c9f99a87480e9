/* The guest side of bench/io.sh: disk and TCP workloads that print a marker
 * line on the console just before their first and just after their last
 * I/O, so the host can time them on its own clock. Built static and put in
 * the guest's initramfs by bench/io.sh.
 *
 *   iob seqwrite DEV MIB          MIB MiB in 1 MiB O_DIRECT writes, then fsync
 *   iob seqread  DEV MIB          the same, read back and checked
 *   iob randwrite DEV OPS MIB     OPS 4 KiB O_DIRECT writes in the first MIB MiB, then fsync
 *   iob randread  DEV OPS MIB     OPS 4 KiB O_DIRECT reads there, checked
 *   iob tcpsend IP PORT MIB       MIB MiB to IP:PORT, then waits for the peer to close
 *
 * Every 4 KiB block of the disk carries its own number in its first 8
 * bytes, so reads check that they got what the writes put there. Random
 * offsets come from a fixed-seed xorshift, so every VM does the same I/O. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIB (1u << 20)
#define BLK 4096u

static void say(const char *phase, const char *what, unsigned long long n, unsigned long long bad)
{
	char line[160];
	int len = snprintf(line, sizeof(line), "IOB %s %s %llu %llu\n", phase, what, n, bad);
	if (write(1, line, (size_t)len) < 0)
		exit(2);
}

static void die(const char *what)
{
	fprintf(stderr, "iob: %s: %s\n", what, strerror(errno));
	printf("IOB error %s\n", what);
	fflush(stdout);
	exit(1);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static void *buffer(size_t len)
{
	void *p;
	if (posix_memalign(&p, BLK, len))
		die("posix_memalign");
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = rng_next(); /* not zeroes, so no layer can take a shortcut */
	return p;
}

static void tag(uint8_t *buf, size_t len, uint64_t first_block)
{
	for (size_t off = 0; off < len; off += BLK) {
		uint64_t n = first_block + off / BLK;
		memcpy(buf + off, &n, 8);
	}
}

static unsigned long long check(const uint8_t *buf, size_t len, uint64_t first_block)
{
	unsigned long long bad = 0;
	for (size_t off = 0; off < len; off += BLK) {
		uint64_t n;
		memcpy(&n, buf + off, 8);
		bad += n != first_block + off / BLK;
	}
	return bad;
}

static int open_dev(const char *dev, int write)
{
	int fd = open(dev, (write ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0)
		die(dev);
	return fd;
}

static void xfer(int fd, uint8_t *buf, size_t len, uint64_t off, int write)
{
	ssize_t n = write ? pwrite(fd, buf, len, (off_t)off) : pread(fd, buf, len, (off_t)off);
	if (n != (ssize_t)len)
		die(write ? "pwrite" : "pread");
}

static void seq(const char *phase, const char *dev, unsigned mib, int write)
{
	int fd = open_dev(dev, write);
	uint8_t *buf = buffer(MIB);
	unsigned long long bad = 0;
	say(phase, "start", 0, 0);
	for (unsigned i = 0; i < mib; i++) {
		uint64_t off = (uint64_t)i * MIB;
		if (write)
			tag(buf, MIB, off / BLK);
		xfer(fd, buf, MIB, off, write);
		if (!write)
			bad += check(buf, MIB, off / BLK);
	}
	if (write && fsync(fd))
		die("fsync");
	say(phase, "end", (unsigned long long)mib * MIB, bad);
	close(fd);
}

static void rnd(const char *phase, const char *dev, unsigned ops, unsigned mib, int write)
{
	int fd = open_dev(dev, write);
	uint8_t *buf = buffer(BLK);
	uint64_t blocks = (uint64_t)mib * (MIB / BLK);
	unsigned long long bad = 0;
	rng_state = write ? 0x2545f4914f6cdd1dull : 0x5851f42d4c957f2dull;
	say(phase, "start", 0, 0);
	for (unsigned i = 0; i < ops; i++) {
		uint64_t b = rng_next() % blocks;
		if (write)
			tag(buf, BLK, b);
		xfer(fd, buf, BLK, b * BLK, write);
		if (!write)
			bad += check(buf, BLK, b);
	}
	if (write && fsync(fd))
		die("fsync");
	say(phase, "end", ops, bad);
	close(fd);
}

static void tcpsend(const char *ip, unsigned port, unsigned mib)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
		errno = EINVAL;
		die(ip);
	}
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		die("socket");
	if (connect(s, (struct sockaddr *)&a, sizeof(a)))
		die("connect");
	size_t chunk = 65536;
	uint8_t *buf = buffer(chunk);
	uint64_t total = (uint64_t)mib * MIB;
	say("tcp", "start", 0, 0);
	for (uint64_t done = 0; done < total;) {
		size_t k = total - done < chunk ? (size_t)(total - done) : chunk;
		ssize_t n = write(s, buf, k);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("send");
		done += (uint64_t)n;
	}
	shutdown(s, SHUT_WR);
	char c;
	while (read(s, &c, 1) > 0) /* the host closes once it has it all */
		;
	say("tcp", "end", total, 0);
	close(s);
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "seqwrite"))
		seq(argv[1], argv[2], (unsigned)atoi(argv[3]), 1);
	else if (argc == 4 && !strcmp(argv[1], "seqread"))
		seq(argv[1], argv[2], (unsigned)atoi(argv[3]), 0);
	else if (argc == 5 && !strcmp(argv[1], "randwrite"))
		rnd(argv[1], argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]), 1);
	else if (argc == 5 && !strcmp(argv[1], "randread"))
		rnd(argv[1], argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]), 0);
	else if (argc == 5 && !strcmp(argv[1], "tcpsend"))
		tcpsend(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
	else {
		fprintf(stderr,
			"usage: iob seqwrite|seqread DEV MIB | randwrite|randread DEV OPS MIB | tcpsend IP PORT MIB\n");
		return 2;
	}
	return 0;
}
