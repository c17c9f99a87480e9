/* The replay log (machine/replay.c) without a guest: a recording written
 * with inputs at chosen positions reads back; a replay hands each input
 * out only at its position, notices one that was never taken, a device
 * asking for input the recording does not have, and a different end; a
 * damaged file is refused with one message, and one of another format
 * version with a message that says so. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "machine/replay.h"
#include "state/stream.h"
#include "testhelp.h"

static uint64_t fake_icount;

static uint64_t icount_of(void *opaque)
{
	(void)opaque;
	return fake_icount;
}

static char path[64];
static char got_console[64];
static size_t got_len;

static size_t console_in(void *opaque, const uint8_t *buf, size_t n)
{
	(void)opaque;
	if (n > sizeof(got_console) - got_len)
		n = sizeof(got_console) - got_len;
	memcpy(got_console + got_len, buf, n);
	got_len += n;
	return n;
}

/* A recording: console "hi" at point 2 (icount 100), random bytes in the
 * middle of point 2's turn (icount 150), the user's stop at point 4. */
static int write_recording(void)
{
	struct replay_header h = {.config = "{\"cpus\":1}", .rtc_sec = 1234, .nimages = 1};
	snprintf(h.version, sizeof(h.version), "test");
	snprintf(h.image[0].role, sizeof(h.image[0].role), "kernel");
	h.image[0].size = 10;
	h.image[0].hash = 0x55;
	struct replay *rr;
	char err[256];
	if (replay_create(&rr, path, &h, err, sizeof(err)) < 0)
		return -1;
	replay_set_icount(rr, icount_of, NULL);
	fake_icount = 0;
	replay_point(rr, 0); /* 1 */
	fake_icount = 100;
	replay_point(rr, 0); /* 2 */
	replay_log(rr, REPLAY_CONSOLE, 0, "hi", 2);
	fake_icount = 150;
	const uint8_t rnd[4] = {1, 2, 3, 4};
	replay_log(rr, REPLAY_RANDOM, 0, rnd, sizeof(rnd));
	fake_icount = 200;
	replay_point(rr, 0); /* 3 */
	replay_console_out(rr, (const uint8_t *)"out", 3);
	CHECK(replay_point(rr, 1) == 1); /* 4: stop */
	int r = replay_finish(rr, REPLAY_HOW_QUIT, err, sizeof(err));
	replay_free(rr);
	return r;
}

static void test_roundtrip(void)
{
	CHECK(write_recording() == 0);
	struct replay *rr;
	char err[256];
	CHECK(replay_open(&rr, path, err, sizeof(err)) == 0);
	if (!rr)
		return;
	const struct replay_header *h = replay_header(rr);
	CHECK(!strcmp(h->version, "test") && !strcmp(h->config, "{\"cpus\":1}") && h->rtc_sec == 1234);
	CHECK(h->nimages == 1 && !strcmp(h->image[0].role, "kernel") && h->image[0].hash == 0x55);
	CHECK_EQ_U64(replay_recorded_end(rr)->events, 2);
	replay_set_icount(rr, icount_of, NULL);
	replay_set_console(rr, console_in, NULL);
	got_len = 0;
	fake_icount = 0;
	CHECK(replay_point(rr, 0) == 0);
	CHECK(got_len == 0);
	fake_icount = 100;
	CHECK(replay_point(rr, 0) == 0);
	CHECK(got_len == 2 && !memcmp(got_console, "hi", 2));
	uint8_t b[8];
	CHECK(replay_peek(rr, REPLAY_RANDOM, 0) == -1); /* not yet: icount 100 */
	fake_icount = 150;
	CHECK(replay_peek(rr, REPLAY_RANDOM, 0) == 4);
	CHECK(replay_take(rr, REPLAY_RANDOM, 0, b, sizeof(b)) == 4 && b[0] == 1 && b[3] == 4);
	fake_icount = 200;
	CHECK(replay_point(rr, 0) == 0);
	replay_console_out(rr, (const uint8_t *)"out", 3);
	CHECK(replay_point(rr, 0) == 1); /* the recording's end */
	CHECK(replay_finish(rr, REPLAY_HOW_QUIT, err, sizeof(err)) == 0);
	CHECK(!replay_failed(rr));
	replay_free(rr);
}

static struct replay *open_playing(void)
{
	struct replay *rr;
	char err[256];
	if (replay_open(&rr, path, err, sizeof(err)) < 0)
		return NULL;
	replay_set_icount(rr, icount_of, NULL);
	replay_set_console(rr, console_in, NULL);
	got_len = 0;
	return rr;
}

static void test_divergence(void)
{
	CHECK(write_recording() == 0);
	char err[256];
	/* the turn ran past the random bytes' instruction without taking them */
	struct replay *rr = open_playing();
	CHECK(rr != NULL);
	if (!rr)
		return;
	fake_icount = 0;
	replay_point(rr, 0);
	fake_icount = 100;
	replay_point(rr, 0);
	fake_icount = 200;
	CHECK(replay_point(rr, 0) == -1);
	CHECK(replay_failed(rr) && strstr(replay_message(rr), "never took") &&
	      strstr(replay_message(rr), "instruction 150"));
	replay_free(rr);

	/* a device wants random bytes where the recording has none */
	rr = open_playing();
	fake_icount = 0;
	replay_point(rr, 0);
	fake_icount = 120;
	CHECK(replay_take(rr, REPLAY_RANDOM, 0, (uint8_t[8]){0}, 8) == -1);
	CHECK(replay_failed(rr) && strstr(replay_message(rr), "instruction 120"));
	CHECK(replay_point(rr, 0) == -1);
	replay_free(rr);

	/* the console input arrives at another instruction count */
	rr = open_playing();
	fake_icount = 0;
	replay_point(rr, 0);
	fake_icount = 101;
	CHECK(replay_point(rr, 0) == -1);
	CHECK(got_len == 0);
	replay_free(rr);

	/* all inputs taken, but other output: the end says so */
	rr = open_playing();
	fake_icount = 0;
	replay_point(rr, 0);
	fake_icount = 100;
	replay_point(rr, 0);
	fake_icount = 150;
	replay_take(rr, REPLAY_RANDOM, 0, (uint8_t[8]){0}, 8);
	fake_icount = 200;
	replay_point(rr, 0);
	replay_console_out(rr, (const uint8_t *)"OUT", 3);
	CHECK(replay_point(rr, 0) == 1);
	CHECK(replay_finish(rr, REPLAY_HOW_QUIT, err, sizeof(err)) == -1 && strstr(err, "console output differs"));
	replay_free(rr);
}

static void test_damaged(void)
{
	CHECK(write_recording() == 0);
	FILE *f = fopen(path, "rb");
	uint8_t buf[4096];
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	if (f)
		fclose(f);
	CHECK(n > 100);
	struct replay *rr;
	char err[256];
	CHECK(replay_open_mem(&rr, buf, n, err, sizeof(err)) == 0);
	replay_free(rr);
	unsigned refused = 0;
	/* every truncation, and a flipped bit in every byte, is refused */
	for (size_t k = 0; k < n; k++) {
		if (replay_open_mem(&rr, buf, k, err, sizeof(err)) < 0 && strstr(err, "not a usable replay file") &&
		    !strchr(err, '\n'))
			refused++;
		else
			replay_free(rr);
		buf[k] ^= 0x10;
		if (replay_open_mem(&rr, buf, n, err, sizeof(err)) < 0 && strstr(err, "not a usable replay file"))
			refused++;
		else
			replay_free(rr);
		buf[k] ^= 0x10;
	}
	CHECK_EQ_U64(refused, 2 * n);
}

/* A recording of another format version (an older corral's): refused
 * with one line that says so and what to do; one of this version with
 * the same content opens. */
static int versioned(uint32_t hv, uint32_t ev, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	struct state_writer w;
	if (fd < 0 || state_writer_init(&w, fd, "replay") < 0)
		return -2;
	state_section_begin(&w, "replay-header", 0, hv);
	state_put_str(&w, "test");
	state_put_str(&w, "{}");
	state_put_u64(&w, 0);
	state_put_u32(&w, 0);
	state_section_end(&w);
	state_section_begin(&w, "replay-events", 0, ev);
	state_put_u32(&w, 1); /* a clock step at (1, 0) */
	state_put_u8(&w, 4);
	state_put_u8(&w, 0);
	state_put_u16(&w, 0);
	state_put_u64(&w, 1);
	state_put_u64(&w, 0);
	state_put_u32(&w, 8);
	state_put_u64(&w, 1000);
	state_section_end(&w);
	state_section_begin(&w, "replay-end", 0, 1);
	state_put_u32(&w, 4);
	for (int k = 0; k < 4; k++)
		state_put_u64(&w, 1);
	state_put_u64(&w, 1); /* events */
	state_section_end(&w);
	int r = state_writer_finish(&w);
	state_writer_free(&w);
	close(fd);
	if (r < 0)
		return -2;
	struct replay *rr;
	r = replay_open(&rr, path, err, errlen);
	if (r == 0)
		replay_free(rr);
	return r;
}

static void test_old_version(void)
{
	char err[256];
	int r = versioned(1, 1, err, sizeof(err));
	if (r)
		printf("%s\n", err);
	CHECK(r == 0);
	CHECK(versioned(0, 1, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "format version 0, this corral reads version 1: record the run again") != NULL);
	CHECK(strstr(err, "not a usable replay file") != NULL && !strchr(err, '\n'));
	CHECK(versioned(1, 2, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "'replay-events' of format version 2, this corral reads version 1") != NULL);
}

int main(void)
{
	snprintf(path, sizeof(path), "/tmp/t_replay_log.%d.rr", (int)getpid());
	RUN(test_roundtrip);
	RUN(test_divergence);
	RUN(test_damaged);
	RUN(test_old_version);
	unlink(path);
	return test_report();
}
