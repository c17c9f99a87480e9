/* The state stream (src/state/stream.h): round trips of every field kind,
 * and the reader against truncated, corrupted, newer and malformed
 * streams, which must each fail with a message and never read past what
 * they were given. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "state/stream.h"
#include "testhelp.h"

/* A stream written to a memfd, read back into malloc'd memory. */
static uint8_t *write_sample(size_t *len)
{
	int fd = memfd_create("state", 0);
	struct state_writer w;
	CHECK(state_writer_init(&w, fd, "vm") == 0);
	state_section_begin(&w, "cpu", 0, 3);
	state_put_u8(&w, 0xab);
	state_put_u16(&w, 0xbeef);
	state_put_u32(&w, 0xdeadbeef);
	state_put_u64(&w, 0x0123456789abcdefull);
	state_put_bool(&w, true);
	state_put_str(&w, "hello");
	state_put_bytes(&w, "\x01\x02\x03", 3);
	CHECK(state_section_end(&w) == 0);
	state_section_begin(&w, "cpu", 1, 3);
	state_put_u32(&w, 2);
	state_put_u64(&w, 7);
	state_put_u64(&w, 9);
	CHECK(state_section_end(&w) == 0);
	state_section_begin(&w, "empty", 0, 1);
	CHECK(state_section_end(&w) == 0);
	CHECK(state_writer_finish(&w) == 0);
	state_writer_free(&w);
	off_t n = lseek(fd, 0, SEEK_END);
	uint8_t *buf = malloc((size_t)n);
	CHECK(pread(fd, buf, (size_t)n, 0) == n);
	close(fd);
	*len = (size_t)n;
	return buf;
}

/* Read the sample as a loader would: 0 if every value was right. */
static int read_sample(const uint8_t *data, size_t len, char *err, size_t errn)
{
	struct state_reader r;
	struct state_section s;
	int bad = 0;
	if (state_reader_init(&r, data, len, "vm"))
		goto fail;
	if (state_next_section(&r, &s) != 1)
		goto fail;
	bad |= strcmp(s.name, "cpu") || s.instance != 0 || s.version != 3;
	bad |= state_get_u8(&r) != 0xab;
	bad |= state_get_u16(&r) != 0xbeef;
	bad |= state_get_u32(&r) != 0xdeadbeef;
	bad |= state_get_u64(&r) != 0x0123456789abcdefull;
	bad |= !state_get_bool(&r);
	char str[16];
	state_get_str(&r, str, sizeof(str));
	bad |= strcmp(str, "hello") != 0;
	uint8_t b[3];
	state_get_bytes(&r, b, 3);
	bad |= memcmp(b, "\x01\x02\x03", 3) != 0;
	if (!state_section_done(&r) || state_next_section(&r, &s) != 1)
		goto fail;
	bad |= s.instance != 1;
	uint32_t n = state_get_count(&r, 4, "values");
	for (uint32_t k = 0; k < n; k++)
		state_get_u64(&r);
	if (!state_section_done(&r) || state_next_section(&r, &s) != 1 || !state_section_done(&r))
		goto fail;
	if (state_next_section(&r, &s) != 0)
		goto fail;
	return bad ? 1 : 0;
fail:
	snprintf(err, errn, "%s", r.err);
	return -1;
}

static void test_round_trip(void)
{
	size_t len;
	uint8_t *d = write_sample(&len);
	char err[STATE_ERR_MAX] = "";
	CHECK(read_sample(d, len, err, sizeof(err)) == 0);
	free(d);
}

/* Every prefix of a stream is refused, with a message. */
static void test_truncated(void)
{
	size_t len;
	uint8_t *d = write_sample(&len);
	int refused = 0;
	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = malloc(n ? n : 1); /* exactly n bytes: ASan sees any overread */
		memcpy(cut, d, n);
		char err[STATE_ERR_MAX] = "";
		if (read_sample(cut, n, err, sizeof(err)) < 0 && err[0])
			refused++;
		free(cut);
	}
	CHECK_EQ_U64(refused, len);
	free(d);
}

/* Every single-byte change is found (CRC-32 catches them all). */
static void test_corrupted(void)
{
	size_t len;
	uint8_t *d = write_sample(&len);
	int refused = 0;
	for (size_t k = 0; k < len; k++) {
		uint8_t *c = malloc(len);
		memcpy(c, d, len);
		c[k] ^= (uint8_t)(1u << (k % 8));
		char err[STATE_ERR_MAX] = "";
		if (read_sample(c, len, err, sizeof(err)) < 0 && err[0])
			refused++;
		free(c);
	}
	CHECK_EQ_U64(refused, len);
	free(d);
}

static void test_header(void)
{
	size_t len;
	uint8_t *d = write_sample(&len);
	struct state_reader r;
	CHECK(state_reader_init(&r, d, len, "process") == -EINVAL);
	CHECK(strstr(r.err, "kind 'vm'") != NULL);
	CHECK(state_reader_init(&r, d, len, NULL) == 0 && !strcmp(r.kind, "vm"));
	CHECK(state_reader_init(&r, "ELF\x7f....", 8, NULL) == -EINVAL && strstr(r.err, "magic"));
	free(d);
	/* a newer format (the seed "newer" is one, written by another encoder) */
	int fd = memfd_create("state", 0);
	struct state_writer w;
	CHECK(state_writer_init(&w, fd, "vm") == 0);
	CHECK(state_writer_finish(&w) == 0);
	uint8_t buf[64];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	CHECK(n > 12);
	buf[8] = STATE_FORMAT_VERSION + 1;
	uint32_t c = (uint32_t)crc32(0, buf, 8 + 5 + 2); /* the header's CRC again: refused for the version */
	memcpy(buf + 15, &c, 4);
	close(fd);
	CHECK(state_reader_init(&r, buf, (size_t)n, NULL) == -EINVAL);
	CHECK(strstr(r.err, "newer than this corral") != NULL);
	buf[9] = 1; /* now the CRC is wrong */
	CHECK(state_reader_init(&r, buf, (size_t)n, NULL) == -EINVAL && strstr(r.err, "checksum"));
}

/* A loader that asks for more than a section holds, or leaves bytes
 * unread, or meets an out-of-range count or text, fails; every get after
 * that returns zero. */
static void test_misuse(void)
{
	size_t len;
	uint8_t *d = write_sample(&len);
	struct state_reader r;
	struct state_section s;
	CHECK(state_reader_init(&r, d, len, "vm") == 0);
	CHECK(state_next_section(&r, &s) == 1);
	CHECK(!state_section_done(&r) && strstr(r.err, "left unread"));

	CHECK(state_reader_init(&r, d, len, "vm") == 0);
	CHECK(state_next_section(&r, &s) == 1);
	char small[4];
	state_get_u8(&r);
	state_get_u16(&r);
	state_get_u32(&r);
	state_get_u64(&r);
	state_get_bool(&r);
	state_get_str(&r, small, sizeof(small)); /* "hello" does not fit */
	CHECK(!state_reader_ok(&r) && strstr(r.err, "text of 5 bytes"));
	CHECK(state_get_u64(&r) == 0);
	CHECK(state_next_section(&r, &s) == -EINVAL);

	CHECK(state_reader_init(&r, d, len, "vm") == 0);
	CHECK(state_next_section(&r, &s) == 1 && state_next_section(&r, &s) == 1);
	CHECK(state_get_count(&r, 1, "values") == 0 && strstr(r.err, "2 values (at most 1)"));

	CHECK(state_reader_init(&r, d, len, "vm") == 0);
	CHECK(state_next_section(&r, &s) == 1 && state_next_section(&r, &s) == 1);
	for (int k = 0; k < 4; k++)
		state_get_u64(&r);
	CHECK(!state_reader_ok(&r) && strstr(r.err, "ends early"));
	free(d);
}

static void test_writer_errors(void)
{
	int fd = memfd_create("state", 0);
	struct state_writer w;
	CHECK(state_writer_init(&w, fd, "") == -EINVAL);
	CHECK(state_writer_init(&w, fd, "vm") == 0);
	state_put_u32(&w, 1); /* outside a section */
	CHECK(state_section_end(&w) == -EINVAL);
	state_writer_free(&w);
	CHECK(state_writer_init(&w, fd, "vm") == 0);
	state_section_begin(&w, "a-name-that-is-far-too-long-for-a-section-name-in-a-corral-state-file", 0, 1);
	CHECK(state_section_end(&w) == -EINVAL);
	state_writer_free(&w);
	close(fd);
	/* a full disk (a pipe with no reader stands in: EPIPE) */
	int p[2];
	CHECK(pipe(p) == 0);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	CHECK(state_writer_init(&w, p[1], "vm") == -EPIPE);
	state_section_begin(&w, "cpu", 0, 1);
	state_put_u64(&w, 1);
	CHECK(state_section_end(&w) == -EPIPE);
	CHECK(state_writer_finish(&w) == -EPIPE);
	state_writer_free(&w);
	close(p[1]);
}

/* Guest memory: written pages only, zero pages as holes. */
static void test_ram(void)
{
	size_t n = 4u << 20;
	uint8_t *m = calloc(1, n);
	memset(m + 8192, 0x5a, 4096);
	memset(m + n - 100, 0xa5, 100);
	char path[] = "/tmp/corral-t_stream-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	CHECK(state_ram_write(fd, m, n) == 0);
	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ_U64(st.st_size, n);
	CHECK((uint64_t)st.st_blocks * 512 <= 64 * 1024); /* two pages written, not 4 MiB */
	uint8_t *back = malloc(n);
	CHECK(pread(fd, back, n, 0) == (ssize_t)n);
	CHECK(!memcmp(back, m, n));
	free(back);
	free(m);
	close(fd);
}

int main(void)
{
	RUN(test_round_trip);
	RUN(test_truncated);
	RUN(test_corrupted);
	RUN(test_header);
	RUN(test_misuse);
	RUN(test_writer_errors);
	RUN(test_ram);
	return test_report();
}
