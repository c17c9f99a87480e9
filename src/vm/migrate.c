/* Live migration (migrate.h): the sender's pre-copy rounds over the
 * machine's dirty log, the stop-and-copy with the snapshot format's state
 * stream, the switch with the destination, and the destination's checked
 * reader. docs/migration.md describes the wire format. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "machine/machine_impl.h"
#include "vm/migrate.h"
#include "vm/vm_internal.h"

/* ---- The wire format (docs/migration.md) ---- */

static const uint8_t mig_magic[8] = {'C', 'O', 'R', 'R', 'A', 'L', 'M', 'G'};
#define MIG_VERSION 2 /* 1: no flags (what a source without compression sends) */
#define MIG_PAGE 4096u
#define MIG_HDR_LEN 28			    /* version 1: magic, version, page size, RAM bytes, CRC */
#define MIG_HDR2_LEN 32			    /* version 2: flags before the CRC */
#define MIG_F_ZSTD 1u			    /* page and disk data may come compressed */
#define MIG_ZSTD_LEVEL 1		    /* zstd's fastest but the negative levels: the link, not the CPU, is slow */
#define REC_COMPRESSED 1u		    /* a PAGES record's arg: its data is one zstd frame */
#define DISK_COMPRESSED ((uint64_t)1 << 62) /* in a DISK record's arg */
#define MIG_REC_LEN 20			    /* type, count, arg, CRC */
#define MIG_BATCH 256u			    /* pages in one PAGES record */
#define MIG_STATE_MAX (16u << 20)
#define MIG_MSG_MAX 512

enum { REC_PAGES = 1, REC_STATE = 2, REC_GO = 3, REC_SYNC = 4, REC_DISKS = 5, REC_DISK = 6 };
/* --copy-disks: chunks of BLK_DIRTY_CHUNK bytes; a disk of at most 4 TiB
 * (a destination's map of them stays small); formats on the wire. */
#define MIG_DISK_MAX (1ull << 42)
#define MIG_DISK_PATH_MAX 1024
#define MIG_DISK_BATCH 16 /* chunks read at once (one pause of a qcow2 guest) */
enum { DISK_FMT_RAW = 1, DISK_FMT_QCOW2 = 2 };
/* The destination's answers: u32 code, u32 length, the text. */
enum { ANS_READY = 1, ANS_RUNNING = 2, ANS_ERROR = 3, ANS_SYNCED = 4 };
#define PAGE_ZERO ((uint64_t)1 << 63) /* in a PAGES record's index: no data follows */

/* How long a silent peer is waited for. */
#define MIG_IO_TIMEOUT_S 30
#define MIG_READY_TIMEOUT_S 60

#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define CRC_BAD(stored, computed) ((void)(stored), (void)(computed), 0)
#else
#define CRC_BAD(stored, computed) ((stored) != (computed))
#endif

static uint32_t mig_crc(const void *p, size_t n, uint32_t c)
{
	const uint8_t *b = p;
	while (n) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		c = (uint32_t)crc32(c, b, chunk);
		b += chunk;
		n -= chunk;
	}
	return c;
}

static void le32(uint8_t *p, uint32_t v)
{
	for (int k = 0; k < 4; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int k = 0; k < 8; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* All n bytes, or -errno (-EPIPE for a closed peer, -ETIMEDOUT). */
static int send_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == ENOTSOCK) /* a pipe or file (tests) */
			w = write(fd, b, n);
		if (w < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (w == 0)
			return -EPIPE;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* All n bytes, or -errno; -ECONNRESET for an early end. */
static int recv_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		ssize_t k = read(fd, b, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (k == 0)
			return -ECONNRESET;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static void set_timeout(int fd, int opt, unsigned s)
{
	struct timeval tv = {.tv_sec = s};
	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* Small records (a state's checksum, GO, the answers) go at once: Nagle's
 * wait for an ACK that the peer delays would add tens of ms to the stop. */
static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails harmlessly on unix sockets */
}

static int send_rec(int fd, uint32_t type, uint32_t count, uint64_t arg)
{
	uint8_t h[MIG_REC_LEN];
	le32(h, type);
	le32(h + 4, count);
	le64(h + 8, arg);
	le32(h + 16, mig_crc(h, 16, 0));
	return send_all(fd, h, sizeof(h));
}

static int send_answer(int fd, uint32_t code, const char *msg)
{
	uint8_t h[8];
	size_t n = msg ? strnlen(msg, MIG_MSG_MAX) : 0;
	le32(h, code);
	le32(h + 4, (uint32_t)n);
	int r = send_all(fd, h, 8);
	return r < 0 || !n ? r : send_all(fd, msg, n);
}

/* The destination's next answer: its code, and its text in msg. */
static int recv_answer(int fd, unsigned timeout_s, char *msg, size_t msglen)
{
	uint8_t h[8];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int k;
	do
		k = poll(&p, 1, (int)timeout_s * 1000);
	while (k < 0 && errno == EINTR);
	if (k == 0)
		return -ETIMEDOUT;
	int r = recv_all(fd, h, 8);
	if (r < 0)
		return r;
	uint32_t code = rd32(h), n = rd32(h + 4);
	char text[MIG_MSG_MAX + 1];
	if (n > MIG_MSG_MAX || code < ANS_READY || code > ANS_SYNCED)
		return -EPROTO;
	if ((r = recv_all(fd, text, n)) < 0)
		return r;
	text[n] = 0;
	for (char *c = text; *c; c++) /* keep the peer's control characters off the terminal */
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	size_t len = strlen(text) < msglen ? strlen(text) : msglen - 1;
	memcpy(msg, text, len);
	msg[len] = 0;
	return (int)code;
}

/* ---- Addresses ---- */

/* tcp:HOST:PORT (HOST may be [v6]) or unix:PATH into a socket address. */
static int parse_url(const char *url, struct sockaddr_storage *sa, socklen_t *len, char *err, size_t errlen)
{
	memset(sa, 0, sizeof(*sa));
	if (!strncmp(url, "unix:", 5)) {
		struct sockaddr_un *u = (struct sockaddr_un *)sa;
		const char *path = url + 5;
		if (!*path || strlen(path) >= sizeof(u->sun_path)) {
			snprintf(err, errlen, "'%.64s': a unix socket path of 1 to %zu bytes", url,
				 sizeof(u->sun_path) - 1);
			return -EINVAL;
		}
		u->sun_family = AF_UNIX;
		memcpy(u->sun_path, path, strlen(path));
		*len = sizeof(*u);
		return 0;
	}
	if (strncmp(url, "tcp:", 4)) {
		snprintf(err, errlen, "'%.64s': not tcp:HOST:PORT or unix:PATH", url);
		return -EINVAL;
	}
	char host[256];
	const char *h = url + 4, *colon = strrchr(h, ':');
	if (!colon || colon == h || !colon[1] || (size_t)(colon - h) >= sizeof(host)) {
		snprintf(err, errlen, "'%.64s': not tcp:HOST:PORT", url);
		return -EINVAL;
	}
	memcpy(host, h, (size_t)(colon - h));
	host[colon - h] = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || port == 0 || port > 65535) {
		snprintf(err, errlen, "'%.64s': the port must be 1 to 65535", url);
		return -EINVAL;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
	int g = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
	if (g) {
		snprintf(err, errlen, "'%.64s': %s", url, gai_strerror(g));
		return -EINVAL;
	}
	memcpy(sa, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* ---- --compress: zstd frames for page and disk data ---- */

/* The destination's side: a context and buffers for the largest frame
 * (a PAGES record's pages). */
struct mig_unz {
	ZSTD_DCtx *dctx;
	uint8_t *cbuf, *dbuf;
	size_t ccap;
};

static int unz_init(struct mig_unz *u)
{
	u->ccap = ZSTD_compressBound((size_t)MIG_BATCH * MIG_PAGE);
	u->dctx = ZSTD_createDCtx();
	u->cbuf = malloc(u->ccap);
	u->dbuf = malloc((size_t)MIG_BATCH * MIG_PAGE);
	return u->dctx && u->cbuf && u->dbuf ? 0 : -ENOMEM;
}

static void unz_free(struct mig_unz *u)
{
	ZSTD_freeDCtx(u->dctx);
	free(u->cbuf);
	free(u->dbuf);
	memset(u, 0, sizeof(*u));
}

/* u32 length, then a zstd frame that must give exactly n bytes into
 * u->dbuf (n at most a PAGES record's data). */
static int unz_read(struct mig_unz *u, int fd, size_t n, char *err, size_t errlen)
{
	uint8_t l[4];
	int r = recv_all(fd, l, 4);
	if (r < 0) {
		snprintf(err, errlen, "the stream broke off: %s", strerror(-r));
		return r;
	}
	uint32_t clen = rd32(l);
	if (!u->dctx || clen == 0 || clen > u->ccap || clen > ZSTD_compressBound(n)) {
		snprintf(err, errlen, "compressed data of %u bytes for %zu%s", clen, n,
			 u->dctx ? "" : " in a stream that announced no compression");
		return -EINVAL;
	}
	if ((r = recv_all(fd, u->cbuf, clen)) < 0) {
		snprintf(err, errlen, "the stream broke off: %s", strerror(-r));
		return r;
	}
	size_t got = ZSTD_decompressDCtx(u->dctx, u->dbuf, n, u->cbuf, clen);
	if (ZSTD_isError(got) || got != n) {
		snprintf(err, errlen, "compressed data: %s",
			 ZSTD_isError(got) ? ZSTD_getErrorName(got) : "not the announced length");
		return -EINVAL;
	}
	return 0;
}

/* ---- --copy-disks: the destination's new images ---- */

/* The images a copying source fills: created at the DISKS record, written
 * chunk by chunk (each checked before it is written), closed before the
 * VM is built on them; removed again unless the VM runs here. */
struct incoming_disks {
	const struct vm_config *ov; /* paths given here (NULL: the source's) */
	unsigned n;
	struct blk *b[VM_MAX_DISKS];
	char path[VM_MAX_DISKS][MIG_DISK_PATH_MAX];
	uint64_t *got[VM_MAX_DISKS]; /* chunks this stream wrote */
	uint8_t *buf;		     /* one chunk */
};

static void incoming_disks_close(struct incoming_disks *dk)
{
	for (unsigned k = 0; k < dk->n; k++) {
		blk_close(dk->b[k]);
		dk->b[k] = NULL;
		free(dk->got[k]);
		dk->got[k] = NULL;
	}
	free(dk->buf);
	dk->buf = NULL;
}

/* Removes the images made here (the VM did not come). */
static void incoming_disks_remove(struct incoming_disks *dk)
{
	incoming_disks_close(dk);
	for (unsigned k = 0; k < dk->n; k++)
		if (dk->path[k][0])
			unlink(dk->path[k]);
	dk->n = 0;
}

/* A new image at path: never over an existing file. */
static int incoming_disk_create(struct incoming_disks *dk, unsigned k, uint64_t size, uint32_t fmt, char *err,
				size_t errlen)
{
	const char *path = dk->path[k];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644), r;
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "disk %u: cannot create '%.200s': %s%s", k, path, strerror(-r),
			 r == -EEXIST ? " (a copied disk goes into a new image: give another path with --disk)" : "");
		dk->path[k][0] = 0; /* not ours: never removed */
		return r;
	}
	if (fmt == DISK_FMT_RAW && ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		close(fd);
		snprintf(err, errlen, "disk %u: '%.200s': %s", k, path, strerror(-r));
		return r;
	}
	close(fd);
	char e[256];
	if (fmt == DISK_FMT_QCOW2 && (r = qcow2_create(path, size, 16, NULL, NULL, e, sizeof(e))) < 0) {
		snprintf(err, errlen, "disk %u: %s", k, e);
		return r;
	}
	if ((r = blk_open(&dk->b[k], path, fmt == DISK_FMT_QCOW2 ? BLK_FMT_QCOW2 : BLK_FMT_RAW, 0, e, sizeof(e))) < 0) {
		dk->b[k] = NULL;
		snprintf(err, errlen, "disk %u: %s", k, e);
		return r;
	}
	if (dk->b[k]->size != size) {
		snprintf(err, errlen, "disk %u: '%.200s' has %" PRIu64 " bytes, not %" PRIu64, k, path, dk->b[k]->size,
			 size);
		return -EINVAL;
	}
	dk->got[k] = calloc((size / BLK_DIRTY_CHUNK + 64) / 64, 8);
	if (!dk->got[k]) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	return 0;
}

/* The DISKS record's payload (len bytes, checked): the images made. */
static int incoming_disks_open(struct incoming_disks *dk, int fd, uint32_t count, uint64_t len, char *err,
			       size_t errlen)
{
	if (dk->n || dk->buf) {
		snprintf(err, errlen, "a second list of disks");
		return -EINVAL;
	}
	if (count == 0 || count > VM_MAX_DISKS || len < (uint64_t)count * 17 ||
	    len > (uint64_t)count * (16 + MIG_DISK_PATH_MAX)) {
		snprintf(err, errlen, "a list of %u disks in %" PRIu64 " bytes (1 to %d disks)", count, len,
			 VM_MAX_DISKS);
		return -EINVAL;
	}
	if (dk->ov && dk->ov->ndisks && dk->ov->ndisks != count) {
		snprintf(err, errlen, "the VM has %u disk%s: give as many --disk options, or none", count,
			 count == 1 ? "" : "s");
		return -EINVAL;
	}
	uint8_t *p = malloc(len + 4);
	int r;
	if (!p) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	if ((r = recv_all(fd, p, len + 4)) < 0) {
		snprintf(err, errlen, "the stream broke off: %s", strerror(-r));
		goto out;
	}
	r = -EINVAL;
	if (CRC_BAD(rd32(p + len), mig_crc(p, len, 0))) {
		snprintf(err, errlen, "the list of disks: checksum mismatch");
		goto out;
	}
	/* everything checked before the first file is made */
	uint64_t size[VM_MAX_DISKS], at = 0;
	uint32_t fmt[VM_MAX_DISKS];
	for (unsigned k = 0; k < count; k++) {
		uint32_t n = at + 16 <= len ? rd32(p + at + 12) : UINT32_MAX;
		if (n == UINT32_MAX || n == 0 || n >= MIG_DISK_PATH_MAX || at + 16 + n > len) {
			snprintf(err, errlen, "the list of disks: disk %u's entry is malformed", k);
			goto out;
		}
		size[k] = rd64(p + at);
		fmt[k] = rd32(p + at + 8);
		if (size[k] == 0 || size[k] > MIG_DISK_MAX || size[k] % 512 ||
		    (fmt[k] != DISK_FMT_RAW && fmt[k] != DISK_FMT_QCOW2)) {
			snprintf(err, errlen, "disk %u: %" PRIu64 " bytes of format %u (512 B to 4 TiB, raw or qcow2)",
				 k, size[k], fmt[k]);
			goto out;
		}
		const char *given = dk->ov && dk->ov->ndisks ? dk->ov->disk[k].path : NULL;
		if (given)
			snprintf(dk->path[k], MIG_DISK_PATH_MAX, "%s", given);
		else {
			memcpy(dk->path[k], p + at + 16, n);
			dk->path[k][n] = 0;
			if (strlen(dk->path[k]) != n) {
				snprintf(err, errlen, "disk %u: a path with a NUL byte", k);
				goto out;
			}
		}
		at += 16 + n;
	}
	if (at != len) {
		snprintf(err, errlen, "the list of disks: %" PRIu64 " bytes left over", len - at);
		goto out;
	}
	dk->buf = malloc(BLK_DIRTY_CHUNK);
	if (!dk->buf) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		goto out;
	}
	for (unsigned k = 0; k < count; k++) {
		dk->n = k + 1; /* removed on failure from here */
		if ((r = incoming_disk_create(dk, k, size[k], fmt[k], err, errlen)) < 0)
			goto out;
	}
	r = 0;
out:
	free(p);
	return r;
}

/* One DISK record's payload: checked, then written. */
static int incoming_disk_chunk(struct incoming_disks *dk, struct mig_unz *u, int fd, uint32_t k, uint64_t arg,
			       char *err, size_t errlen)
{
	uint64_t off = arg & ~(PAGE_ZERO | DISK_COMPRESSED);
	int zero = (arg & PAGE_ZERO) != 0, packed = (arg & DISK_COMPRESSED) != 0, r;
	if (k >= dk->n || !dk->b[k] || off % BLK_DIRTY_CHUNK || off >= dk->b[k]->size || (zero && packed)) {
		snprintf(err, errlen, "a disk chunk at %" PRIu64 " of disk %u: no such place", off, k);
		return -EINVAL;
	}
	struct blk *b = dk->b[k];
	uint32_t len = zero ? 0 : (uint32_t)(b->size - off < BLK_DIRTY_CHUNK ? b->size - off : BLK_DIRTY_CHUNK);
	uint8_t sum[4];
	if (packed) {
		if ((r = unz_read(u, fd, len, err, errlen)) < 0)
			return r;
		memcpy(dk->buf, u->dbuf, len);
	} else if ((r = recv_all(fd, dk->buf, len)) < 0) {
		snprintf(err, errlen, "the stream broke off: %s", strerror(-r));
		return r;
	}
	if ((r = recv_all(fd, sum, 4)) < 0) {
		snprintf(err, errlen, "the stream broke off: %s", strerror(-r));
		return r;
	}
	if (CRC_BAD(rd32(sum), mig_crc(dk->buf, len, 0))) {
		snprintf(err, errlen, "a disk chunk: checksum mismatch");
		return -EINVAL;
	}
	uint64_t c = off / BLK_DIRTY_CHUNK, *got = &dk->got[k][c >> 6], bit = 1ull << (c & 63);
	if (zero) {
		/* a new image reads as zeros: clear only what this stream wrote */
		uint64_t n = b->size - off < BLK_DIRTY_CHUNK ? b->size - off : BLK_DIRTY_CHUNK;
		r = (*got & bit) ? b->ops->write_zeroes(b, off, n) : 0;
		*got &= ~bit;
	} else {
		r = blk_pwrite(b, off, dk->buf, len);
		*got |= bit;
	}
	if (r < 0)
		snprintf(err, errlen, "disk %u: writing '%.200s': %s", k, dk->path[k], strerror(-r));
	return r;
}

/* ---- The destination ---- */

/* The stream up to the device state; dk NULL: no disk records taken. */
static int recv_stream(int fd, int reply_fd, uint64_t max_mem, struct incoming_disks *dk, int *mem_fd, void **state,
		       size_t *state_len, char *err, size_t errlen);

int migrate_recv_stream(int fd, int reply_fd, uint64_t max_mem, int *mem_fd, void **state, size_t *state_len, char *err,
			size_t errlen)
{
	return recv_stream(fd, reply_fd, max_mem, NULL, mem_fd, state, state_len, err, errlen);
}

/* The state stream is at most MIG_STATE_MAX: the configuration, a few KiB
 * per vCPU and device. */
static int recv_stream(int fd, int reply_fd, uint64_t max_mem, struct incoming_disks *dk, int *mem_fd, void **state,
		       size_t *state_len, char *err, size_t errlen)
{
	uint8_t h[MIG_HDR_LEN];
	uint64_t *idx = NULL, *got = NULL; /* got: pages this stream wrote */
	struct mig_unz unz = {0};
	uint8_t *ram = NULL;
	uint64_t mem = 0;
	int mfd = -1, r;
	*mem_fd = -1;
	*state = NULL;
	*state_len = 0;
	if ((r = recv_all(fd, h, sizeof(h))) < 0) {
		snprintf(err, errlen, "no migration stream: %s", strerror(-r));
		return r;
	}
	r = -EINVAL;
	if (memcmp(h, mig_magic, 8)) {
		snprintf(err, errlen, "not a corral migration stream (bad magic)");
		return r;
	}
	uint32_t flags = 0;
	if (rd32(h + 8) == 2) { /* the flags, then the CRC */
		uint8_t h2[MIG_HDR2_LEN];
		memcpy(h2, h, sizeof(h));
		if ((r = recv_all(fd, h2 + sizeof(h), sizeof(h2) - sizeof(h))) < 0) {
			snprintf(err, errlen, "the stream broke off: %s", strerror(-r));
			return r;
		}
		r = -EINVAL;
		if (CRC_BAD(rd32(h2 + 28), mig_crc(h2, 28, 0))) {
			snprintf(err, errlen, "the stream's header: checksum mismatch");
			return r;
		}
		flags = rd32(h2 + 24);
		if (flags & ~MIG_F_ZSTD) {
			snprintf(err, errlen, "the stream's flags 0x%x: this corral knows 0x%x (zstd)", flags,
				 MIG_F_ZSTD);
			return r;
		}
	} else if (CRC_BAD(rd32(h + 24), mig_crc(h, 24, 0))) {
		snprintf(err, errlen, "the stream's header: checksum mismatch");
		return r;
	}
	if (rd32(h + 8) != 1 && rd32(h + 8) != MIG_VERSION) {
		snprintf(err, errlen, "migration stream version %u: this corral reads 1 and %u", rd32(h + 8),
			 MIG_VERSION);
		return r;
	}
	mem = rd64(h + 16);
	if (rd32(h + 12) != MIG_PAGE || mem < VM_MEM_MIN || mem > max_mem || mem % MIG_PAGE) {
		snprintf(err, errlen, "the stream's RAM (%" PRIu64 " bytes of %u-byte pages) is out of range", mem,
			 rd32(h + 12));
		return r;
	}
	uint64_t pages = mem / MIG_PAGE;
	mfd = memfd_create("corral-incoming-ram", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, (off_t)mem) < 0 ||
	    (ram = mmap(NULL, mem, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0)) == MAP_FAILED) {
		r = -errno;
		ram = NULL;
		snprintf(err, errlen, "cannot make %" PRIu64 " bytes of RAM: %s", mem, strerror(-r));
		goto fail;
	}
	idx = malloc(MIG_BATCH * sizeof(*idx));
	got = calloc((pages + 63) / 64, 8);
	if (!idx || !got || ((flags & MIG_F_ZSTD) && unz_init(&unz) < 0)) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		goto fail;
	}
	for (;;) {
		uint8_t rec[MIG_REC_LEN];
		if ((r = recv_all(fd, rec, sizeof(rec))) < 0) {
			snprintf(err, errlen, "the stream broke off: %s", strerror(-r));
			goto fail;
		}
		r = -EINVAL;
		if (CRC_BAD(rd32(rec + 16), mig_crc(rec, 16, 0))) {
			snprintf(err, errlen, "a record header: checksum mismatch");
			goto fail;
		}
		uint32_t type = rd32(rec), count = rd32(rec + 4);
		uint64_t arg = rd64(rec + 8);
		if (type == REC_PAGES) {
			if (count == 0 || count > MIG_BATCH || (arg & ~(uint64_t)REC_COMPRESSED)) {
				snprintf(err, errlen, "a page record of %u pages (1 to %u)", count, MIG_BATCH);
				goto fail;
			}
			uint8_t *raw = (uint8_t *)idx;
			if ((r = recv_all(fd, raw, (size_t)count * 8)) < 0) {
				snprintf(err, errlen, "the stream broke off: %s", strerror(-r));
				goto fail;
			}
			uint32_t c = mig_crc(raw, (size_t)count * 8, 0);
			for (uint32_t k = 0; k < count; k++) {
				idx[k] = rd64(raw + 8 * k);
				if ((idx[k] & ~PAGE_ZERO) >= pages) {
					snprintf(err, errlen, "page %" PRIu64 " is beyond the RAM's %" PRIu64 " pages",
						 (uint64_t)(idx[k] & ~PAGE_ZERO), pages);
					r = -EINVAL;
					goto fail;
				}
			}
			/* compressed: the non-zero pages' data as one frame */
			const uint8_t *packed = NULL;
			if (arg & REC_COMPRESSED) {
				size_t nz = 0;
				for (uint32_t k = 0; k < count; k++)
					nz += !(idx[k] & PAGE_ZERO);
				if (!nz) {
					snprintf(err, errlen, "a compressed page record without data");
					goto fail;
				}
				if ((r = unz_read(&unz, fd, nz * MIG_PAGE, err, errlen)) < 0)
					goto fail;
				packed = unz.dbuf;
			}
			/* Data goes to its place at once; a checksum mismatch
			 * after it fails the whole stream, so nothing wrong is
			 * ever run. */
			for (uint32_t k = 0; k < count; k++) {
				uint8_t *p = ram + (idx[k] & ~PAGE_ZERO) * MIG_PAGE;
				uint64_t pg = idx[k] & ~PAGE_ZERO;
				if (idx[k] & PAGE_ZERO) {
					/* a new memory file reads as zeros: clear only
					 * what this stream wrote before */
					if (got[pg >> 6] & (1ull << (pg & 63)))
						memset(p, 0, MIG_PAGE);
					got[pg >> 6] &= ~(1ull << (pg & 63));
					continue;
				}
				got[pg >> 6] |= 1ull << (pg & 63);
				if (packed) {
					memcpy(p, packed, MIG_PAGE);
					packed += MIG_PAGE;
				} else if ((r = recv_all(fd, p, MIG_PAGE)) < 0) {
					snprintf(err, errlen, "the stream broke off: %s", strerror(-r));
					goto fail;
				}
				c = mig_crc(p, MIG_PAGE, c);
			}
			uint8_t sum[4];
			if ((r = recv_all(fd, sum, 4)) < 0) {
				snprintf(err, errlen, "the stream broke off: %s", strerror(-r));
				goto fail;
			}
			if (CRC_BAD(rd32(sum), c)) {
				snprintf(err, errlen, "a page record: checksum mismatch");
				r = -EINVAL;
				goto fail;
			}
		} else if (type == REC_SYNC) {
			/* everything before is in place: the source may stop the
			 * guest now without waiting for a backlog here */
			if (count || arg) {
				snprintf(err, errlen, "a sync record with a payload");
				goto fail;
			}
			/* the copied disks' writes so far durable: the stop
			 * flushes only the last ones */
			for (unsigned k = 0; dk && k < dk->n; k++)
				if (dk->b[k] && (r = dk->b[k]->ops->flush(dk->b[k])) < 0) {
					snprintf(err, errlen, "disk %u: '%.200s': flush: %s", k, dk->path[k],
						 strerror(-r));
					goto fail;
				}
			if (reply_fd >= 0 && (r = send_answer(reply_fd, ANS_SYNCED, NULL)) < 0) {
				snprintf(err, errlen, "the source went away: %s", strerror(-r));
				goto fail;
			}
		} else if (type == REC_DISKS || type == REC_DISK) {
			if (!dk) {
				snprintf(err, errlen, "disk records where none are taken");
				goto fail;
			}
			r = type == REC_DISKS ? incoming_disks_open(dk, fd, count, arg, err, errlen)
					      : incoming_disk_chunk(dk, &unz, fd, count, arg, err, errlen);
			if (r < 0)
				goto fail;
		} else if (type == REC_STATE) {
			if (count || arg == 0 || arg > MIG_STATE_MAX) {
				snprintf(err, errlen, "a device state of %" PRIu64 " bytes (1 to %u)", arg,
					 MIG_STATE_MAX);
				goto fail;
			}
			uint8_t *s = malloc(arg);
			uint8_t sum[4];
			if (!s) {
				r = -ENOMEM;
				snprintf(err, errlen, "%s", strerror(ENOMEM));
				goto fail;
			}
			if ((r = recv_all(fd, s, arg)) < 0 || (r = recv_all(fd, sum, 4)) < 0) {
				free(s);
				snprintf(err, errlen, "the stream broke off: %s", strerror(-r));
				goto fail;
			}
			if (CRC_BAD(rd32(sum), mig_crc(s, arg, 0))) {
				free(s);
				snprintf(err, errlen, "the device state: checksum mismatch");
				r = -EINVAL;
				goto fail;
			}
			*state = s;
			*state_len = arg;
			break;
		} else {
			snprintf(err, errlen, "a record of unknown type %u", type);
			goto fail;
		}
	}
	munmap(ram, mem);
	free(idx);
	free(got);
	unz_free(&unz);
	*mem_fd = mfd;
	return 0;
fail:
	if (ram)
		munmap(ram, mem);
	if (mfd >= 0)
		close(mfd);
	free(idx);
	free(got);
	unz_free(&unz);
	return r;
}

int migrate_listen(const char *url, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int r = parse_url(url, &sa, &len, err, errlen);
	if (r < 0)
		return r;
	int ls = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (ls < 0) {
		r = -errno;
		snprintf(err, errlen, "--incoming '%.64s': %s", url, strerror(-r));
		return r;
	}
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&sa, len) < 0 || listen(ls, 1) < 0) {
		r = -errno;
		snprintf(err, errlen, "--incoming '%.64s': %s", url, strerror(-r));
		close(ls);
		return r;
	}
	return ls;
}

/* One connection on ls (closed, and a unix socket's file removed). */
static int accept_once(int ls, const char *url, char *err, size_t errlen)
{
	int fd, r;
	do
		fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	r = -errno;
	close(ls);
	if (!strncmp(url, "unix:", 5))
		unlink(url + 5);
	if (fd < 0) {
		snprintf(err, errlen, "--incoming '%.64s': %s", url, strerror(-r));
		return r;
	}
	return fd;
}

int vm_incoming(const char *url, const struct vm_config *overrides, struct vm **out, char *err, size_t errlen)
{
	*out = NULL;
	int ls = migrate_listen(url, err, errlen);
	return ls < 0 ? ls : vm_incoming_on(ls, url, overrides, out, err, errlen);
}

int vm_incoming_on(int ls, const char *url, const struct vm_config *overrides, struct vm **out, char *err,
		   size_t errlen)
{
	char msg[MIG_MSG_MAX];
	void *state = NULL;
	size_t state_len;
	int mfd = -1, r;
	*out = NULL;
	int fd = accept_once(ls, url, err, errlen);
	if (fd < 0)
		return fd;
	set_timeout(fd, SO_RCVTIMEO, MIG_IO_TIMEOUT_S);
	set_timeout(fd, SO_SNDTIMEO, MIG_IO_TIMEOUT_S);
	set_nodelay(fd);
	struct incoming_disks *dk = calloc(1, sizeof(*dk));
	if (!dk) {
		close(fd);
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	dk->ov = overrides;
	r = recv_stream(fd, fd, VM_MEM_MAX, dk, &mfd, &state, &state_len, msg, sizeof(msg));
	/* the copied images complete on their files before the VM opens them */
	for (unsigned k = 0; r == 0 && k < dk->n; k++)
		if ((r = dk->b[k]->ops->flush(dk->b[k])) < 0)
			snprintf(msg, sizeof(msg), "disk %u: '%.200s': flush: %s", k, dk->path[k], strerror(-r));
	incoming_disks_close(dk);
	if (r < 0) {
		snprintf(err, errlen, "incoming migration: %s", msg);
		send_answer(fd, ANS_ERROR, msg);
		goto out;
	}
	struct vm *vm;
	r = vm_restore_from(state, state_len, mfd, NULL, overrides, &vm, msg, sizeof(msg));
	if (r < 0) {
		snprintf(err, errlen, "incoming migration: %s", msg);
		send_answer(fd, ANS_ERROR, msg);
		goto out;
	}
	/* Built, not running: the source lets go of the VM only now. */
	uint8_t rec[MIG_REC_LEN];
	if ((r = send_answer(fd, ANS_READY, NULL)) < 0 || (r = recv_all(fd, rec, sizeof(rec))) < 0 ||
	    CRC_BAD(rd32(rec + 16), mig_crc(rec, 16, 0)) || rd32(rec) != REC_GO) {
		snprintf(err, errlen, "incoming migration: the source did not hand the VM over (%s)",
			 r < 0 ? strerror(-r) : "no go-ahead");
		r = r < 0 ? r : -EPROTO;
		vm_destroy(vm);
		goto out;
	}
	send_answer(fd, ANS_RUNNING, NULL);
	*out = vm;
	dk->n = 0; /* the VM's images now */
	r = 0;
out:
	incoming_disks_remove(dk);
	free(dk);
	free(state);
	if (mfd >= 0)
		close(mfd);
	close(fd);
	return r;
}

/* ---- The source ---- */

struct migration {
	struct vm *vm;
	struct migrate_params p;
	char url[MIGRATE_URL_MAX];
	pthread_t thr;
	int thread_started;
	pthread_mutex_t lock;
	struct migrate_status st; /* lock */
	int busy;		  /* lock */
	int watched, seen_done;	  /* lock: someone asks for progress; saw the end */
	int fd;
	uint64_t *bitmap; /* dirty pages to send, a bit per page */
	uint64_t pages;
	uint8_t *buf; /* a batch's indices and data */
	uint64_t t0;
	uint64_t held_ns; /* auto-converge's holds in this round (not link time) */
	int was_paused;
	/* copy_disks: each disk's backend (as when tracking began) and its
	 * chunks still to send */
	unsigned ndisks;
	struct blk *disk[VM_MAX_DISKS];
	uint64_t *disk_map[VM_MAX_DISKS];
	uint8_t *disk_buf; /* MIG_DISK_BATCH chunks */
	/* compress: zstd's context and a frame's room */
	ZSTD_CCtx *zc;
	uint8_t *zbuf;
	size_t zcap;
};

const char *migrate_state_name(enum migrate_state s)
{
	switch (s) {
	case MIGRATE_SETUP: return "setup";
	case MIGRATE_ACTIVE: return "active";
	case MIGRATE_COMPLETING: return "completing";
	case MIGRATE_COMPLETED: return "completed";
	case MIGRATE_FAILED: return "failed";
	}
	return "?";
}

static void set_state(struct migration *m, enum migrate_state s)
{
	pthread_mutex_lock(&m->lock);
	m->st.state = s;
	pthread_mutex_unlock(&m->lock);
}

static void fail(struct migration *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct migration *m, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&m->lock);
	if (!m->st.error[0]) {
		va_start(ap, fmt);
		vsnprintf(m->st.error, sizeof(m->st.error), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&m->lock);
}

/* A send failed (r): a destination that refused the stream said why
 * before it closed the connection; that is the error then. */
static void send_failed(struct migration *m, int r)
{
	char msg[MIG_MSG_MAX];
	if (recv_answer(m->fd, 1, msg, sizeof(msg)) == ANS_ERROR)
		fail(m, "the destination refused the VM: %s", msg);
	else
		fail(m, "sending to the destination: %s", strerror(-r));
}
/* n bytes as a zstd frame in m->zbuf: its length, or 0 when compression
 * is off or does not pay (the data then goes as it is). */
static size_t pack(struct migration *m, const void *p, size_t n)
{
	if (!m->zc || !n)
		return 0;
	size_t c = ZSTD_compressCCtx(m->zc, m->zbuf, m->zcap, p, n, MIG_ZSTD_LEVEL);
	return ZSTD_isError(c) || c + 4 >= n ? 0 : c;
}

static int page_is_zero(const uint8_t *p)
{
	static const uint8_t zero[MIG_PAGE];
	return !memcmp(p, zero, MIG_PAGE);
}

/* Sends the pages of bitmap (and clears their bits) in batches. Each batch
 * is copied out under the VM's lock (the machine may go away if the guest
 * powers off); a running guest may write a page while it is copied: the
 * dirty log has it then, and a later round sends it again. With throttle,
 * the vCPUs are held for that share of the time between batches. */
static int send_bitmap(struct migration *m, unsigned throttle)
{
	struct vm *vm = m->vm;
	uint64_t *idx = (uint64_t *)m->buf;
	uint8_t *data = m->buf + MIG_BATCH * 8;
	uint64_t k = 0;
	for (;;) {
		uint32_t n = 0, nz = 0, zero = 0;
		uint64_t t = now_ns();
		pthread_mutex_lock(&vm->lock);
		if (!vm->m || vm->m->mem_size != m->pages * MIG_PAGE) {
			pthread_mutex_unlock(&vm->lock);
			fail(m, "the VM ended during the migration");
			return -ESRCH;
		}
		for (; k < m->pages && n < MIG_BATCH; k++) {
			uint64_t w = m->bitmap[k >> 6];
			if (!w) { /* skip an empty word */
				k |= 63;
				continue;
			}
			if (!(w & (1ull << (k & 63))))
				continue;
			m->bitmap[k >> 6] &= ~(1ull << (k & 63));
			const uint8_t *src = vm->m->ram + k * MIG_PAGE;
			uint8_t *dst = data + (uint64_t)nz * MIG_PAGE;
			memcpy(dst, src, MIG_PAGE);
			if (page_is_zero(dst)) {
				le64((uint8_t *)&idx[n], k | PAGE_ZERO);
				zero++;
			} else {
				le64((uint8_t *)&idx[n], k);
				nz++;
			}
			n++;
		}
		pthread_mutex_unlock(&vm->lock);
		if (!n)
			return 0;
		/* pack: indices, then the data of the non-zero pages */
		uint8_t sum[4];
		le32(sum, mig_crc(data, (size_t)nz * MIG_PAGE, mig_crc(idx, (size_t)n * 8, 0)));
		size_t clen = pack(m, data, (size_t)nz * MIG_PAGE), dlen = clen ? 4 + clen : (size_t)nz * MIG_PAGE;
		uint8_t l[4];
		le32(l, (uint32_t)clen);
		int r = send_rec(m->fd, REC_PAGES, n, clen ? REC_COMPRESSED : 0);
		if (r >= 0)
			r = send_all(m->fd, idx, (size_t)n * 8);
		if (r >= 0 && clen)
			r = send_all(m->fd, l, 4);
		if (r >= 0)
			r = send_all(m->fd, clen ? m->zbuf : data, clen ? clen : (size_t)nz * MIG_PAGE);
		if (r >= 0)
			r = send_all(m->fd, sum, 4);
		if (r < 0) {
			send_failed(m, r);
			return r;
		}
		pthread_mutex_lock(&m->lock);
		m->st.bytes_sent += MIG_REC_LEN + (uint64_t)n * 8 + dlen + 4;
		m->st.pages_sent += n;
		m->st.zero_pages += zero;
		m->st.ram_remaining =
			m->st.ram_remaining > (uint64_t)n * MIG_PAGE ? m->st.ram_remaining - (uint64_t)n * MIG_PAGE : 0;
		pthread_mutex_unlock(&m->lock);
		if (throttle && !m->was_paused) {
			/* hold the vCPUs throttle% of the time */
			uint64_t busy = now_ns() - t, hold = busy * throttle / (100 - throttle);
			if (hold > 200000000ull)
				hold = 200000000ull;
			uint64_t h0 = now_ns();
			if (vm_pause(vm) == 0) {
				struct timespec ts = {.tv_sec = (time_t)(hold / 1000000000ull),
						      .tv_nsec = (long)(hold % 1000000000ull)};
				nanosleep(&ts, NULL);
				vm_resume(vm);
			}
			m->held_ns += now_ns() - h0;
		}
	}
}

/* Pauses the VM (unless the user holds it paused) and collects the dirty
 * log into the bitmap: the pages written since the last collection. */
static int collect(struct migration *m, uint64_t *found)
{
	struct vm *vm = m->vm;
	if (vm_pause(vm) < 0) {
		fail(m, "the VM ended during the migration");
		return -ESRCH;
	}
	pthread_mutex_lock(&vm->lock);
	int r = vm->m ? 0 : -ESRCH;
	if (vm->m)
		*found = machine_dirty_collect(vm->m, m->bitmap);
	pthread_mutex_unlock(&vm->lock);
	if (r < 0)
		fail(m, "the VM ended during the migration");
	return r;
}

static void resume(struct migration *m)
{
	if (!m->was_paused)
		vm_resume(m->vm);
}

static int connect_dest(struct migration *m)
{
	struct sockaddr_storage sa;
	socklen_t len;
	char err[256];
	if (parse_url(m->url, &sa, &len, err, sizeof(err)) < 0) {
		fail(m, "%s", err);
		return -EINVAL;
	}
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len) < 0) {
		int r = -errno;
		fail(m, "cannot reach the destination '%.64s': %s (is 'corral run --incoming' waiting there?)", m->url,
		     strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	set_timeout(fd, SO_SNDTIMEO, MIG_IO_TIMEOUT_S);
	set_timeout(fd, SO_RCVTIMEO, MIG_IO_TIMEOUT_S);
	set_nodelay(fd);
	m->fd = fd;
	/* version 1 unless a flag is needed: a corral that reads only version
	 * 1 takes the stream then */
	uint8_t h[MIG_HDR2_LEN];
	size_t hl = m->zc ? MIG_HDR2_LEN : MIG_HDR_LEN;
	memcpy(h, mig_magic, 8);
	le32(h + 8, m->zc ? 2 : 1);
	le32(h + 12, MIG_PAGE);
	le64(h + 16, m->pages * MIG_PAGE);
	if (m->zc)
		le32(h + 24, MIG_F_ZSTD);
	le32(h + hl - 4, mig_crc(h, hl - 4, 0));
	int r = send_all(fd, h, hl);
	if (r < 0)
		send_failed(m, r);
	return r;
}

/* Waits until the destination has put everything sent so far in place,
 * so that a round's time is the whole way's and the stop never waits for
 * a backlog in the socket's buffers. */
static int sync_dest(struct migration *m)
{
	char msg[MIG_MSG_MAX];
	int r = send_rec(m->fd, REC_SYNC, 0, 0);
	if (r < 0) {
		send_failed(m, r);
		return r;
	}
	pthread_mutex_lock(&m->lock);
	m->st.bytes_sent += MIG_REC_LEN;
	pthread_mutex_unlock(&m->lock);
	int a = recv_answer(m->fd, MIG_IO_TIMEOUT_S, msg, sizeof(msg));
	if (a == ANS_SYNCED)
		return 0;
	if (a == ANS_ERROR)
		fail(m, "the destination refused the VM: %s", msg);
	else
		fail(m, "the destination did not answer: %s",
		     a < 0 ? (a == -ECONNRESET ? "it closed the connection" : strerror(-a)) : "an unexpected answer");
	return -EPROTO;
}

/* The device state into a memory file, then as one record. */
static int send_state(struct migration *m)
{
	char err[512];
	int sfd = memfd_create("corral-migrate-state", MFD_CLOEXEC), r;
	if (sfd < 0) {
		fail(m, "%s", strerror(errno));
		return -errno;
	}
	pthread_mutex_lock(&m->vm->lock);
	r = m->vm->m ? vm_state_write(m->vm, sfd, err, sizeof(err)) : -ESRCH;
	pthread_mutex_unlock(&m->vm->lock);
	if (r < 0) {
		fail(m, "%s", r == -ESRCH ? "the VM ended during the migration" : err);
		close(sfd);
		return r;
	}
	off_t n = lseek(sfd, 0, SEEK_END);
	uint8_t *s = n > 0 && n <= MIG_STATE_MAX ? malloc((size_t)n) : NULL;
	if (!s || pread(sfd, s, (size_t)n, 0) != n) {
		fail(m, "the device state: %s", s ? strerror(errno) : "too large");
		free(s);
		close(sfd);
		return -EIO;
	}
	close(sfd);
	uint8_t sum[4];
	le32(sum, mig_crc(s, (size_t)n, 0));
	r = send_rec(m->fd, REC_STATE, 0, (uint64_t)n);
	if (r >= 0)
		r = send_all(m->fd, s, (size_t)n);
	if (r >= 0)
		r = send_all(m->fd, sum, 4);
	free(s);
	if (r < 0)
		send_failed(m, r);
	else {
		pthread_mutex_lock(&m->lock);
		m->st.bytes_sent += MIG_REC_LEN + (uint64_t)n + 4;
		pthread_mutex_unlock(&m->lock);
	}
	return r;
}

/* Shared storage: the disks' data and metadata on the files, and their
 * locks dropped, so that the destination can open them. */
static int disks_let_go(struct migration *m)
{
	struct vm *vm = m->vm;
	for (unsigned k = 0; k < vm->cfg.ndisks; k++) {
		int r = vm->blk[k] && !vm->blk[k]->readonly ? vm->blk[k]->ops->flush(vm->blk[k]) : 0;
		if (r < 0) {
			fail(m, "disk '%s': flush: %s", vm->cfg.disk[k].path, strerror(-r));
			return r;
		}
	}
	/* copied disks: the destination writes images of its own; these stay
	 * locked */
	for (unsigned k = 0; k < vm->cfg.ndisks && !m->p.copy_disks; k++)
		if (vm->blk[k])
			blk_lock_release(vm->blk[k]);
	/* the host ports too, as the locks: a destination on this host binds
	 * them when it builds the VM */
	for (unsigned k = 0; k < vm->cfg.nnets; k++)
		if (vm->netbe[k])
			net_ports_release(vm->netbe[k]);
	return 0;
}

/* Takes the locks back; 0, or -EBUSY if another process has them now (the
 * destination may be running the VM: then this side must not). */
static int disks_take_back(struct migration *m)
{
	struct vm *vm = m->vm;
	char err[512];
	for (unsigned k = 0; k < vm->cfg.ndisks; k++)
		if (vm->blk[k] && blk_lock_take(vm->blk[k], vm->cfg.disk[k].path, err, sizeof(err)) < 0) {
			fail(m, "%s: the destination may have taken over; the VM stays paused here", err);
			return -EBUSY;
		}
	for (unsigned k = 0; k < vm->cfg.nnets; k++)
		if (vm->netbe[k] && net_ports_take(vm->netbe[k], err, sizeof(err)) < 0)
			vm_log(vm, "--net '%s': %s", vm->cfg.net[k], err);
	return 0;
}

/* ---- --copy-disks: the source's block mirror ---- */

/* Starts dirty block tracking on every disk (the VM paused: no request
 * runs), marks every chunk to send, and tells the destination the disks'
 * sizes, formats and paths. */
static int disks_begin(struct migration *m)
{
	struct vm *vm = m->vm;
	int r = 0;
	pthread_mutex_lock(&vm->lock);
	m->ndisks = vm->m ? vm->cfg.ndisks : 0;
	for (unsigned k = 0; k < m->ndisks && r == 0; k++) {
		struct blk *b = vm->blk[k];
		if (!b || b->size > MIG_DISK_MAX) {
			fail(m, "disk '%s': %s", vm->cfg.disk[k].path,
			     b ? "larger than 4 TiB: --copy-disks cannot send it" : "not open");
			r = -EINVAL;
			break;
		}
		m->disk[k] = b;
		uint64_t words = (b->size + (uint64_t)BLK_DIRTY_CHUNK * 64 - 1) / ((uint64_t)BLK_DIRTY_CHUNK * 64);
		m->disk_map[k] = malloc((words ? words : 1) * 8);
		if (!m->disk_map[k] || blk_dirty_start(b) < 0) {
			fail(m, "%s", strerror(ENOMEM));
			r = -ENOMEM;
			break;
		}
		uint64_t chunks = b->dirty_chunks;
		memset(m->disk_map[k], 0xff, words * 8);
		if (chunks % 64)
			m->disk_map[k][chunks / 64] = (1ull << (chunks % 64)) - 1;
		m->st.disk_total += b->size;
	}
	pthread_mutex_unlock(&vm->lock);
	if (r < 0)
		return r;
	pthread_mutex_lock(&m->lock);
	m->st.disk_remaining = m->st.disk_total;
	pthread_mutex_unlock(&m->lock);
	/* the record: per disk u64 size, u32 format, u32 path length, path */
	size_t len = 0;
	uint8_t *p = malloc(VM_MAX_DISKS * (16 + MIG_DISK_PATH_MAX));
	if (!p) {
		fail(m, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (unsigned k = 0; k < m->ndisks; k++) {
		const char *path = vm->cfg.disk[k].path;
		size_t n = strlen(path) < MIG_DISK_PATH_MAX ? strlen(path) : MIG_DISK_PATH_MAX - 1;
		le64(p + len, m->disk[k]->size);
		le32(p + len + 8, m->disk[k]->format == BLK_FMT_QCOW2 ? DISK_FMT_QCOW2 : DISK_FMT_RAW);
		le32(p + len + 12, (uint32_t)n);
		memcpy(p + len + 16, path, n);
		len += 16 + n;
	}
	uint8_t sum[4];
	le32(sum, mig_crc(p, len, 0));
	r = send_rec(m->fd, REC_DISKS, m->ndisks, len);
	if (r >= 0)
		r = send_all(m->fd, p, len);
	if (r >= 0)
		r = send_all(m->fd, sum, 4);
	free(p);
	if (r < 0)
		send_failed(m, r);
	pthread_mutex_lock(&m->lock);
	m->st.bytes_sent += MIG_REC_LEN + len + 4;
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* The chunks written since the last call join those to send; their bytes. */
static uint64_t disks_collect(struct migration *m)
{
	uint64_t n = 0;
	for (unsigned k = 0; k < m->ndisks; k++)
		if (m->disk_map[k])
			n += blk_dirty_collect(m->disk[k], m->disk_map[k]);
	pthread_mutex_lock(&m->lock);
	m->st.disk_remaining = n * BLK_DIRTY_CHUNK;
	pthread_mutex_unlock(&m->lock);
	return n * BLK_DIRTY_CHUNK;
}

/* Sends the marked chunks of every disk. Read under the VM's lock (the
 * disk stays this one); a backend whose reads may not run beside the
 * guest's requests (qcow2) is read with the vCPUs held, unless stopped
 * says they stand already. A chunk the guest writes while it is read is
 * marked again and goes in a later round. */
static int disks_send(struct migration *m, int stopped)
{
	struct vm *vm = m->vm;
	for (unsigned k = 0; k < m->ndisks; k++) {
		struct blk *b = m->disk[k];
		uint64_t chunks = b->dirty_chunks, c = 0;
		for (;;) {
			uint64_t off[MIG_DISK_BATCH];
			uint32_t len[MIG_DISK_BATCH], n = 0;
			int hold = !stopped && !b->ops->concurrent_xfer && !m->was_paused, r = 0;
			if (hold && vm_pause(vm) < 0) {
				fail(m, "the VM ended during the migration");
				return -ESRCH;
			}
			pthread_mutex_lock(&vm->lock);
			if (!vm->m || vm->blk[k] != b) {
				pthread_mutex_unlock(&vm->lock);
				if (hold)
					vm_resume(vm);
				fail(m, "disk '%s' changed or the VM ended during the migration", vm->cfg.disk[k].path);
				return -ESRCH;
			}
			for (; c < chunks && n < MIG_DISK_BATCH && r == 0; c++) {
				uint64_t w = m->disk_map[k][c >> 6];
				if (!w) {
					c |= 63;
					continue;
				}
				if (!(w & (1ull << (c & 63))))
					continue;
				m->disk_map[k][c >> 6] &= ~(1ull << (c & 63));
				off[n] = c * BLK_DIRTY_CHUNK;
				len[n] = (uint32_t)(b->size - off[n] < BLK_DIRTY_CHUNK ? b->size - off[n]
										       : BLK_DIRTY_CHUNK);
				r = blk_pread(b, off[n], m->disk_buf + (size_t)n * BLK_DIRTY_CHUNK, len[n]);
				n++;
			}
			pthread_mutex_unlock(&vm->lock);
			if (hold)
				vm_resume(vm);
			if (r < 0) {
				fail(m, "disk '%s': reading it: %s", vm->cfg.disk[k].path, strerror(-r));
				return r;
			}
			if (!n)
				break;
			for (uint32_t i = 0; i < n; i++) {
				const uint8_t *d = m->disk_buf + (size_t)i * BLK_DIRTY_CHUNK;
				int zero = 1;
				for (uint32_t o = 0; o < len[i] && zero; o += MIG_PAGE)
					zero = page_is_zero(d + o); /* chunks are whole pages but the last */
				if (zero && len[i] % MIG_PAGE) {
					static const uint8_t z[MIG_PAGE];
					zero = !memcmp(d + len[i] / MIG_PAGE * MIG_PAGE, z, len[i] % MIG_PAGE);
				}
				uint32_t dl = zero ? 0 : len[i];
				size_t clen = pack(m, d, dl);
				uint8_t sum[4], l[4];
				le32(sum, mig_crc(d, dl, 0));
				le32(l, (uint32_t)clen);
				r = send_rec(m->fd, REC_DISK, k,
					     off[i] | (zero ? PAGE_ZERO : 0) | (clen ? DISK_COMPRESSED : 0));
				if (r >= 0 && clen && (r = send_all(m->fd, l, 4)) >= 0)
					r = send_all(m->fd, m->zbuf, clen);
				else if (r >= 0 && dl)
					r = send_all(m->fd, d, dl);
				dl = clen ? (uint32_t)(4 + clen) : dl;
				if (r >= 0)
					r = send_all(m->fd, sum, 4);
				if (r < 0) {
					send_failed(m, r);
					return r;
				}
				pthread_mutex_lock(&m->lock);
				m->st.bytes_sent += MIG_REC_LEN + dl + 4;
				m->st.disk_sent += MIG_REC_LEN + dl + 4;
				m->st.disk_remaining =
					m->st.disk_remaining > len[i] ? m->st.disk_remaining - len[i] : 0;
				pthread_mutex_unlock(&m->lock);
			}
		}
	}
	return 0;
}

/* Dirty block tracking off (the VM paused or gone: no request runs). */
static void disks_end(struct migration *m)
{
	pthread_mutex_lock(&m->vm->lock);
	for (unsigned k = 0; k < m->ndisks; k++) {
		/* a disk swapped since (closed) stopped its tracking itself */
		if (m->disk[k] && m->vm->blk[k] == m->disk[k])
			blk_dirty_stop(m->disk[k]);
		free(m->disk_map[k]);
		m->disk_map[k] = NULL;
		m->disk[k] = NULL;
	}
	m->ndisks = 0;
	pthread_mutex_unlock(&m->vm->lock);
}

/* libslirp (4.7) keeps a TCP connection's state in its host socket and
 * cannot hand it over: say at the start that the open ones will be reset. */
static void warn_connections(struct migration *m)
{
	struct vm *vm = m->vm;
	unsigned n = 0;
	pthread_mutex_lock(&vm->lock);
	for (unsigned k = 0; vm->m && k < vm->cfg.nnets; k++)
		n += net_connections(vm->netbe[k]);
	pthread_mutex_unlock(&vm->lock);
	if (!n)
		return;
	pthread_mutex_lock(&m->lock);
	snprintf(m->st.warning, sizeof(m->st.warning),
		 "%u TCP connection%s through the user network (hostfwd or the guest's own) will be reset by the "
		 "move: libslirp cannot hand %s over",
		 n, n == 1 ? "" : "s", n == 1 ? "it" : "them");
	pthread_mutex_unlock(&m->lock);
	vm_log(vm, "migration: %s", m->st.warning);
}

static void *migrate_thread(void *arg)
{
	struct migration *m = arg;
	struct vm *vm = m->vm;
	uint64_t limit_ns = (uint64_t)(m->p.downtime_ms ? m->p.downtime_ms : MIGRATE_DOWNTIME_DEFAULT_MS) * 1000000ull;
	unsigned max_rounds = m->p.max_rounds ? m->p.max_rounds : 30, throttle = 0;
	int logging = 0, paused = 0, disks_released = 0, go_sent = 0;
	uint64_t found = 0, prev_found = 0;
	char msg[MIG_MSG_MAX];

	if (connect_dest(m) < 0)
		goto failed;
	warn_connections(m);
	/* round 0: every page; the log from here on */
	if (vm_pause(vm) < 0) {
		fail(m, "the VM ended during the migration");
		goto failed;
	}
	pthread_mutex_lock(&vm->lock);
	int r = vm->m ? machine_dirty_start(vm->m) : -ESRCH;
	pthread_mutex_unlock(&vm->lock);
	if (r < 0) {
		resume(m);
		fail(m, "%s", r == -ESRCH ? "the VM ended during the migration" : strerror(-r));
		goto failed;
	}
	logging = 1;
	if (m->p.copy_disks && disks_begin(m) < 0) {
		resume(m);
		goto failed;
	}
	resume(m);
	memset(m->bitmap, 0xff, (m->pages + 63) / 64 * 8);
	if (m->pages % 64)
		m->bitmap[m->pages / 64] = (1ull << (m->pages % 64)) - 1;
	set_state(m, MIGRATE_ACTIVE);
	pthread_mutex_lock(&m->lock);
	m->st.ram_remaining = m->pages * MIG_PAGE;
	pthread_mutex_unlock(&m->lock);
	for (unsigned round = 0;; round++) {
		uint64_t t = now_ns(), sent0 = m->st.bytes_sent;
		m->held_ns = 0;
		if (send_bitmap(m, throttle) < 0 || disks_send(m, 0) < 0 || sync_dest(m) < 0)
			goto failed;
		/* the link's pace: the time spent sending, without the holds;
		 * the guest's: dirtied over the whole round */
		uint64_t round_ns = now_ns() - t, dt = round_ns - m->held_ns, bytes = m->st.bytes_sent - sent0;
		if (collect(m, &found) < 0)
			goto failed;
		paused = 1;
		uint64_t bw = dt ? bytes * 1000000000ull / dt : 0, dirty = found * MIG_PAGE + disks_collect(m);
		uint64_t rate = round_ns ? dirty * 1000000000ull / round_ns : 0;
		/* what the stop would cost now: the dirty pages at the link's pace */
		uint64_t expect = bw ? dirty * 1000000000ull / bw : (dirty ? UINT64_MAX / 2 : 0);
		pthread_mutex_lock(&m->lock);
		m->st.iteration = round + 1;
		m->st.bandwidth = bw;
		m->st.dirty_rate = rate;
		m->st.ram_remaining = dirty;
		m->st.expected_downtime_ms = expect / 1000000ull;
		m->st.total_ms = (now_ns() - m->t0) / 1000000ull;
		pthread_mutex_unlock(&m->lock);
		/* Within the limit, one more round is still worth it while rounds
		 * halve what is left (an idle guest's last pages go while it runs,
		 * not in the stop); 2 ms is short enough to stop at once. */
		int shrinking = round == 0 || dirty <= prev_found / 2;
		if ((expect <= limit_ns && (expect <= 2000000ull || !shrinking)) || round + 1 >= max_rounds)
			break; /* stays paused: the stop begins */
		prev_found = dirty;
		/* auto-converge: the guest dirties more than half of what the
		 * link carries: hold its vCPUs a larger share, step by step */
		if (!m->p.no_auto_converge && round >= 1 && rate > bw / 2 && throttle < 99) {
			throttle = throttle ? throttle + 10 : 20;
			if (throttle > 99)
				throttle = 99;
			pthread_mutex_lock(&m->lock);
			m->st.throttle_pct = throttle;
			pthread_mutex_unlock(&m->lock);
		}
		resume(m);
		paused = 0;
	}
	/* ---- The stop: the guest stands from here ---- */
	uint64_t stop_t = now_ns();
	set_state(m, MIGRATE_COMPLETING);
	if (m->ndisks)
		disks_collect(m); /* every request is done: the last writes */
	if (send_bitmap(m, 0) < 0 || disks_send(m, 1) < 0 || disks_let_go(m) < 0)
		goto failed;
	disks_released = 1;
	if (send_state(m) < 0)
		goto failed;
	int a = recv_answer(m->fd, MIG_READY_TIMEOUT_S, msg, sizeof(msg));
	if (a != ANS_READY) {
		if (a == ANS_ERROR)
			fail(m, "the destination refused the VM: %s", msg);
		else
			fail(m, "the destination did not take the VM: %s",
			     a < 0 ? (a == -ECONNRESET ? "it closed the connection" : strerror(-a))
				   : "an unexpected answer");
		goto failed;
	}
	if ((r = send_rec(m->fd, REC_GO, 0, 0)) < 0) {
		fail(m, "the destination went away before the switch: %s", strerror(-r));
		goto failed;
	}
	go_sent = 1;
	a = recv_answer(m->fd, MIG_IO_TIMEOUT_S, msg, sizeof(msg));
	if (a != ANS_RUNNING) {
		fail(m, "the destination did not confirm it runs the VM (%s)",
		     a == ANS_ERROR ? msg
		     : a < 0	    ? strerror(-a)
				    : "an unexpected answer");
		goto failed;
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->m)
		machine_dirty_stop(vm->m);
	pthread_mutex_unlock(&vm->lock);
	disks_end(m);
	pthread_mutex_lock(&m->lock);
	m->st.disk_remaining = 0;
	m->st.downtime_ms = (now_ns() - stop_t) / 1000000ull;
	m->st.total_ms = (now_ns() - m->t0) / 1000000ull;
	m->st.ram_remaining = 0;
	m->st.state = MIGRATE_COMPLETED;
	pthread_mutex_unlock(&m->lock);
	close(m->fd);
	m->fd = -1;
	/* whoever watches the progress (corral migrate) learns the outcome
	 * before this process ends with the VM */
	for (int k = 0; k < 200; k++) {
		pthread_mutex_lock(&m->lock);
		int wait = m->watched && !m->seen_done;
		pthread_mutex_unlock(&m->lock);
		if (!wait)
			break;
		struct timespec ts = {.tv_nsec = 10000000};
		nanosleep(&ts, NULL);
	}
	vm_log(vm, "migrated to %s: %" PRIu64 " ms stopped, %" PRIu64 " bytes sent", m->url, m->st.downtime_ms,
	       m->st.bytes_sent);
	vm_stop(vm); /* the VM lives on at the destination */
	/* only now: until the stop, nobody may resume the VM here (busy keeps
	 * PATCH /vm away) */
	pthread_mutex_lock(&m->lock);
	m->busy = 0;
	pthread_mutex_unlock(&m->lock);
	return NULL;

failed:
	/* Nothing is lost: the VM goes on here, with its disks, unless the
	 * destination took the disks (then it may run the VM) */
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	r = disks_released ? disks_take_back(m) : 0;
	if (logging) {
		if (!paused)
			paused = vm_pause(vm) == 0;
		pthread_mutex_lock(&vm->lock);
		if (vm->m)
			machine_dirty_stop(vm->m);
		pthread_mutex_unlock(&vm->lock);
		disks_end(m); /* the guest's requests stand too */
	}
	if (paused && r == 0 && !m->was_paused)
		vm_resume(vm);
	(void)go_sent;
	pthread_mutex_lock(&m->lock);
	m->st.state = MIGRATE_FAILED;
	m->st.total_ms = (now_ns() - m->t0) / 1000000ull;
	m->busy = 0;
	pthread_mutex_unlock(&m->lock);
	vm_log(vm, "migration to %s failed: %s", m->url, m->st.error);
	return NULL;
}

int migrate_start(struct vm *vm, const struct migrate_params *p, struct migration **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!p->url || strlen(p->url) >= MIGRATE_URL_MAX) {
		snprintf(err, errlen, "a destination URL of at most %d bytes is needed", MIGRATE_URL_MAX - 1);
		return -EINVAL;
	}
	struct sockaddr_storage sa;
	socklen_t len;
	int r = parse_url(p->url, &sa, &len, err, errlen);
	if (r < 0)
		return r;
	if (p->downtime_ms > MIGRATE_DOWNTIME_MAX_MS) {
		snprintf(err, errlen, "downtime limit %u ms: at most %d", p->downtime_ms, MIGRATE_DOWNTIME_MAX_MS);
		return -EINVAL;
	}
	if (!vm_is_running(vm)) {
		snprintf(err, errlen, "the VM is not running");
		return -ESRCH;
	}
	struct migration *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	m->vm = vm;
	m->p = *p;
	snprintf(m->url, sizeof(m->url), "%s", p->url);
	m->p.url = m->url;
	m->fd = -1;
	m->pages = vm->cfg.mem / MIG_PAGE;
	m->bitmap = calloc((m->pages + 63) / 64, 8);
	m->buf = malloc(MIG_BATCH * (8 + MIG_PAGE));
	m->disk_buf = p->copy_disks ? malloc((size_t)MIG_DISK_BATCH * BLK_DIRTY_CHUNK) : NULL;
	if (p->compress) {
		m->zcap = ZSTD_compressBound((size_t)MIG_BATCH * MIG_PAGE);
		m->zc = ZSTD_createCCtx();
		m->zbuf = malloc(m->zcap);
	}
	pthread_mutex_init(&m->lock, NULL);
	m->st.ram_total = m->pages * MIG_PAGE;
	m->st.state = MIGRATE_SETUP;
	m->busy = 1;
	m->t0 = now_ns();
	m->was_paused = vm_is_paused(vm);
	if (!m->bitmap || !m->buf || (p->copy_disks && !m->disk_buf) || (p->compress && (!m->zc || !m->zbuf))) {
		r = -ENOMEM;
		goto err;
	}
	r = -pthread_create(&m->thr, NULL, migrate_thread, m);
	if (r < 0)
		goto err;
	m->thread_started = 1;
	*out = m;
	return 0;
err:
	snprintf(err, errlen, "%s", strerror(-r));
	pthread_mutex_destroy(&m->lock);
	free(m->bitmap);
	free(m->buf);
	free(m->disk_buf);
	ZSTD_freeCCtx(m->zc);
	free(m->zbuf);
	free(m);
	return r;
}

void migrate_get(struct migration *m, struct migrate_status *st)
{
	pthread_mutex_lock(&m->lock);
	*st = m->st;
	m->watched = 1;
	if (m->st.state == MIGRATE_COMPLETED)
		m->seen_done = 1;
	if (m->busy)
		st->total_ms = (now_ns() - m->t0) / 1000000ull;
	pthread_mutex_unlock(&m->lock);
}

int migrate_busy(struct migration *m)
{
	pthread_mutex_lock(&m->lock);
	int b = m->busy;
	pthread_mutex_unlock(&m->lock);
	return b;
}

void migrate_free(struct migration *m)
{
	if (!m)
		return;
	if (m->thread_started)
		pthread_join(m->thr, NULL);
	if (m->fd >= 0)
		close(m->fd);
	pthread_mutex_destroy(&m->lock);
	free(m->bitmap);
	free(m->buf);
	free(m->disk_buf);
	ZSTD_freeCCtx(m->zc);
	free(m->zbuf);
	free(m);
}
