/* Record and replay: the log of a machine's inputs, its file (a state
 * stream of kind "replay") and the checks that make a replay say where it
 * diverged (replay.h; docs/replay.md). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "machine/machine_impl.h"
#include "machine/replay.h"
#include "state/stream.h"

#define KIND "replay"
#define SEC_HEADER "replay-header"
#define SEC_EVENTS "replay-events"
#define SEC_END "replay-end"
#define SEC_VERSION 1
#define CHUNK_BYTES (1u << 20) /* events per section: about this many bytes */
#define EVENTS_MAX (1u << 26)  /* events in one file */
#define FILE_MAX (16ull << 30) /* bytes in one replay file */
#define EVENT_FIXED 24	       /* kind, dev, vcpu, point, icount, len */

struct event {
	uint8_t kind, dev;
	uint16_t vcpu;
	uint32_t len;
	uint64_t point, icount;
	const uint8_t *data;
};

struct replay {
	int mode;
	struct machine *m;
	uint64_t point;
	uint64_t (*icount_fn)(void *opaque);
	void *icount_opaque;
	uint64_t icount_last;
	uint64_t icount_base;  /* the engine run's count at its start (a snapshot's) */
	uint64_t icount_start; /* icount_base of the next engine run (replay_seek) */
	size_t (*console_in)(void *opaque, const uint8_t *buf, size_t n);
	void *console_opaque;
	uint64_t console_hash;
	uint64_t console_bytes, console_shown; /* output so far; the most ever shown (rewinds) */
	uint64_t ram_final;		       /* the RAM hash at replay_finish */
	int clock_stepped;
	int failed;
	char msg[512];
	struct replay_header h;

	/* record */
	int fd;
	struct state_writer w;
	uint32_t chunk;	  /* sections written */
	size_t chunk_len; /* bytes in the open one */
	uint32_t chunk_events;
	uint64_t nevents;

	/* replay */
	uint8_t *data;
	size_t size;
	struct event *ev;
	uint64_t nev, next;
	struct replay_end end;
};

static const char *kind_names[] = {"?", "console input", "a network frame", "random bytes", "a clock step"};

static const char *kind_name(unsigned k)
{
	return k <= REPLAY_KIND_MAX ? kind_names[k] : "?";
}

/* ---- The hash ---- */

uint64_t replay_hash(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	/* word by word (RAM is large), little-endian so hosts agree */
	while (n >= 8) {
		uint64_t w = 0;
		for (int k = 0; k < 8; k++)
			w |= (uint64_t)b[k] << (8 * k);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 32;
		b += 8;
		n -= 8;
	}
	while (n--)
		h = (h ^ *b++) * 0x100000001b3ull;
	return h;
}

int replay_hash_file(const char *path, uint64_t *size, uint64_t *hash)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	uint8_t *buf = malloc(CHUNK_BYTES);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	uint64_t h = REPLAY_HASH_INIT, total = 0;
	int r = 0;
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK_BYTES);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		h = replay_hash(h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	free(buf);
	close(fd);
	*size = total;
	*hash = h;
	return r;
}

/* ---- Common ---- */

static void diverge(struct replay *rr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void diverge(struct replay *rr, const char *fmt, ...)
{
	if (rr->failed)
		return; /* the first divergence is the one that matters */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rr->msg, sizeof(rr->msg), fmt, ap);
	va_end(ap);
	rr->failed = 1;
}

static uint64_t cur_icount(struct replay *rr)
{
	if (rr->icount_fn)
		rr->icount_last = rr->icount_base + rr->icount_fn(rr->icount_opaque);
	return rr->icount_last;
}

int replay_mode(const struct replay *rr)
{
	return rr ? rr->mode : 0;
}

void replay_attach(struct replay *rr, struct machine *m)
{
	rr->m = m;
}

void replay_set_icount(struct replay *rr, uint64_t (*icount)(void *opaque), void *opaque)
{
	if (!icount && rr->icount_fn) {
		rr->icount_last = rr->icount_base + rr->icount_fn(rr->icount_opaque);
	} else if (icount) {
		/* a new engine run: its vCPUs count from 0, from the start of
		 * the run or from a snapshot taken in its middle */
		rr->icount_last = rr->icount_base = rr->icount_start;
		rr->icount_start = 0;
	}
	rr->icount_fn = icount;
	rr->icount_opaque = opaque;
}

void replay_set_console(struct replay *rr, size_t (*in)(void *opaque, const uint8_t *buf, size_t n), void *opaque)
{
	rr->console_in = in;
	rr->console_opaque = opaque;
}

const struct replay_header *replay_header(const struct replay *rr)
{
	return &rr->h;
}

const struct replay_end *replay_recorded_end(const struct replay *rr)
{
	return &rr->end;
}

int replay_failed(const struct replay *rr)
{
	return rr && rr->failed;
}

const char *replay_message(const struct replay *rr)
{
	return rr->msg;
}

size_t replay_console_out(struct replay *rr, const uint8_t *buf, size_t n)
{
	if (!rr)
		return 0;
	rr->console_hash = replay_hash(rr->console_hash, buf, n);
	uint64_t from = rr->console_bytes;
	rr->console_bytes += n;
	if (rr->console_bytes <= rr->console_shown)
		return n;
	size_t seen = rr->console_shown > from ? (size_t)(rr->console_shown - from) : 0;
	rr->console_shown = rr->console_bytes;
	return seen;
}

void replay_rewind(struct replay *rr)
{
	if (rr->mode != REPLAY_PLAY)
		return;
	rr->m = NULL;
	rr->point = 0;
	rr->next = 0;
	rr->icount_last = 0;
	rr->console_hash = REPLAY_HASH_INIT;
	rr->console_bytes = 0;
	rr->clock_stepped = 0;
	rr->failed = 0;
	rr->msg[0] = 0;
	rr->icount_base = rr->icount_start = 0;
}

void replay_mark(struct replay *rr, struct replay_mark *mk)
{
	*mk = (struct replay_mark){.point = rr->point,
				   .next = rr->next,
				   .icount = cur_icount(rr),
				   .console_hash = rr->console_hash,
				   .console_bytes = rr->console_bytes};
}

int replay_seek(struct replay *rr, const struct replay_mark *mk)
{
	if (rr->mode != REPLAY_PLAY || mk->next > rr->nev || mk->point > rr->end.point)
		return -EINVAL;
	replay_rewind(rr);
	rr->point = mk->point;
	rr->next = mk->next;
	rr->icount_last = rr->icount_start = mk->icount;
	rr->console_hash = mk->console_hash;
	rr->console_bytes = mk->console_bytes;
	return 0;
}

static uint64_t ram_hash(struct replay *rr)
{
	struct machine *m = rr->m;
	return m ? replay_hash(REPLAY_HASH_INIT, m->ram, m->mem_size) : 0;
}

void replay_result(const struct replay *rr, struct replay_end *out, uint64_t *bytes, uint64_t *guest_ns)
{
	*guest_ns = rr->m ? rr->m->clock_last : 0;
	*out = (struct replay_end){.point = rr->point,
				   .icount = rr->icount_last,
				   .ram_hash = rr->ram_final,
				   .console_hash = rr->console_hash,
				   .events = rr->mode == REPLAY_RECORD ? rr->nevents : rr->next};
	*bytes = rr->mode == REPLAY_RECORD ? rr->w.written : rr->size;
}

void replay_free(struct replay *rr)
{
	if (!rr)
		return;
	if (rr->mode == REPLAY_RECORD) {
		state_writer_free(&rr->w);
		if (rr->fd >= 0)
			close(rr->fd);
	}
	free(rr->h.config);
	free(rr->data);
	free(rr->ev);
	free(rr);
}

/* ---- Recording ---- */

int replay_create(struct replay **out, const char *path, const struct replay_header *h, char *err, size_t errlen)
{
	*out = NULL;
	struct replay *rr = calloc(1, sizeof(*rr));
	if (!rr || !(rr->h.config = strdup(h->config ? h->config : "{}"))) {
		free(rr);
		snprintf(err, errlen, "--record: out of memory");
		return -ENOMEM;
	}
	rr->mode = REPLAY_RECORD;
	rr->console_hash = REPLAY_HASH_INIT;
	memcpy(rr->h.version, h->version, sizeof(rr->h.version));
	rr->h.rtc_sec = h->rtc_sec;
	rr->h.nimages = h->nimages;
	memcpy(rr->h.image, h->image, sizeof(rr->h.image));
	rr->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (rr->fd < 0) {
		int e = errno;
		snprintf(err, errlen, "--record %s: %s", path, strerror(e));
		replay_free(rr);
		return -e;
	}
	state_writer_init(&rr->w, rr->fd, KIND);
	state_section_begin(&rr->w, SEC_HEADER, 0, SEC_VERSION);
	state_put_str(&rr->w, rr->h.version);
	state_put_str(&rr->w, rr->h.config);
	state_put_u64(&rr->w, (uint64_t)rr->h.rtc_sec);
	state_put_u32(&rr->w, rr->h.nimages);
	for (uint32_t k = 0; k < rr->h.nimages && k < REPLAY_IMAGES_MAX; k++) {
		state_put_str(&rr->w, rr->h.image[k].role);
		state_put_u64(&rr->w, rr->h.image[k].size);
		state_put_u64(&rr->w, rr->h.image[k].hash);
	}
	int r = state_section_end(&rr->w);
	if (r < 0) {
		snprintf(err, errlen, "--record %s: %s", path, strerror(-r));
		replay_free(rr);
		return r;
	}
	*out = rr;
	return 0;
}

/* Sections hold a count first, so one is opened lazily and closed at
 * about CHUNK_BYTES; the count goes in front when it is closed. */
static void chunk_close(struct replay *rr)
{
	if (!rr->chunk_events)
		return;
	if (rr->w.err || !rr->w.buf || rr->w.len < 4)
		return; /* state_writer_finish reports the error */
	/* the section's buffer holds the events after a 4-byte count slot */
	uint8_t *p = rr->w.buf;
	for (int k = 0; k < 4; k++)
		p[k] = (uint8_t)(rr->chunk_events >> (8 * k));
	state_section_end(&rr->w);
	rr->chunk++;
	rr->chunk_events = 0;
	rr->chunk_len = 0;
}

void replay_log(struct replay *rr, enum replay_kind kind, unsigned dev, const void *data, size_t len)
{
	if (!rr || rr->mode != REPLAY_RECORD || len > REPLAY_PAYLOAD_MAX)
		return;
	if (!rr->chunk_events) {
		state_section_begin(&rr->w, SEC_EVENTS, rr->chunk, SEC_VERSION);
		state_put_u32(&rr->w, 0); /* the count, filled in by chunk_close */
	}
	state_put_u8(&rr->w, (uint8_t)kind);
	state_put_u8(&rr->w, (uint8_t)dev);
	state_put_u16(&rr->w, (uint16_t)(rr->m ? rr->m->cur_cpu : 0));
	state_put_u64(&rr->w, rr->point);
	state_put_u64(&rr->w, cur_icount(rr));
	state_put_u32(&rr->w, (uint32_t)len);
	state_put_bytes(&rr->w, data, len);
	rr->chunk_events++;
	rr->nevents++;
	rr->chunk_len += EVENT_FIXED + len;
	if (rr->chunk_len >= CHUNK_BYTES)
		chunk_close(rr);
}

void replay_log_clock(struct replay *rr, uint64_t ns)
{
	uint8_t b[8];
	for (int k = 0; k < 8; k++)
		b[k] = (uint8_t)(ns >> (8 * k));
	replay_log(rr, REPLAY_CLOCK, 0, b, 8);
}

/* ---- Reading the file ---- */

static int parse_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int parse_fail(char *err, size_t errlen, const char *fmt, ...)
{
	char why[STATE_ERR_MAX + 64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "not a usable replay file: %s", why);
	return -EINVAL;
}

static int parse_header(struct replay *rr, struct state_reader *r, char *err, size_t errlen)
{
	struct state_section s;
	if (state_next_section(r, &s) != 1)
		return parse_fail(err, errlen, "%s", r->failed ? r->err : "no header");
	if (strcmp(s.name, SEC_HEADER))
		return parse_fail(err, errlen, "no header (section '%s' version %u first)", s.name, s.version);
	if (s.version != SEC_VERSION) /* an older (or newer) corral's recording */
		return parse_fail(err, errlen,
				  "a recording of format version %u, this corral reads version %u: record the run "
				  "again with this corral",
				  s.version, SEC_VERSION);
	struct replay_header *h = &rr->h;
	state_get_str(r, h->version, sizeof(h->version));
	h->config = malloc(REPLAY_STR_MAX);
	if (!h->config)
		return parse_fail(err, errlen, "out of memory");
	state_get_str(r, h->config, REPLAY_STR_MAX);
	h->rtc_sec = (int64_t)state_get_u64(r);
	h->nimages = state_get_count(r, REPLAY_IMAGES_MAX, "images");
	for (uint32_t k = 0; k < h->nimages && state_reader_ok(r); k++) {
		state_get_str(r, h->image[k].role, sizeof(h->image[k].role));
		h->image[k].size = state_get_u64(r);
		h->image[k].hash = state_get_u64(r);
	}
	if (!state_reader_ok(r) || !state_section_done(r))
		return parse_fail(err, errlen, "header: %s", r->err[0] ? r->err : "malformed");
	return 0;
}

/* Events of one section into rr->ev (which has room). */
static int parse_events(struct replay *rr, struct state_reader *r, uint64_t cap, char *err, size_t errlen)
{
	uint32_t n = state_get_u32(r);
	if (!state_reader_ok(r) || n == 0 || n > cap - rr->nev)
		return parse_fail(err, errlen, "an event section with a bad count (%u)", n);
	for (uint32_t k = 0; k < n; k++) {
		struct event e;
		e.kind = state_get_u8(r);
		e.dev = state_get_u8(r);
		e.vcpu = state_get_u16(r);
		e.point = state_get_u64(r);
		e.icount = state_get_u64(r);
		e.len = state_get_u32(r);
		if (!state_reader_ok(r))
			return parse_fail(err, errlen, "event %" PRIu64 ": %s", rr->nev, r->err);
		if (e.kind == 0 || e.kind > REPLAY_KIND_MAX || e.len > REPLAY_PAYLOAD_MAX ||
		    e.len > r->sec_len - r->sec_pos || e.vcpu >= MACHINE_MAX_CPUS ||
		    (e.kind == REPLAY_CLOCK && e.len != 8))
			return parse_fail(err, errlen, "event %" PRIu64 " is malformed (kind %u, %u bytes)", rr->nev,
					  e.kind, e.len);
		const struct event *prev = rr->nev ? &rr->ev[rr->nev - 1] : NULL;
		if (prev && (e.point < prev->point || (e.point == prev->point && e.icount < prev->icount)))
			return parse_fail(err, errlen, "event %" PRIu64 " goes back in time", rr->nev);
		e.data = r->sec + r->sec_pos;
		r->sec_pos += e.len;
		rr->ev[rr->nev++] = e;
	}
	if (!state_section_done(r))
		return parse_fail(err, errlen, "an event section with bytes left over");
	return 0;
}

static int parse(struct replay *rr, char *err, size_t errlen)
{
	struct state_reader r;
	if (state_reader_init(&r, rr->data, rr->size, KIND) < 0)
		return parse_fail(err, errlen, "%s", r.err);
	int e = parse_header(rr, &r, err, errlen);
	if (e < 0)
		return e;
	/* at most one event per EVENT_FIXED bytes of file */
	uint64_t cap = rr->size / EVENT_FIXED + 1;
	if (cap > EVENTS_MAX)
		cap = EVENTS_MAX;
	rr->ev = calloc(cap, sizeof(*rr->ev));
	if (!rr->ev)
		return parse_fail(err, errlen, "out of memory for %" PRIu64 " events", cap);
	struct state_section s;
	int got_end = 0, k;
	uint32_t chunk = 0;
	while ((k = state_next_section(&r, &s)) == 1) {
		if (got_end)
			return parse_fail(err, errlen, "section '%s' after the end", s.name);
		if (s.version != SEC_VERSION)
			return parse_fail(err, errlen,
					  "section '%s' of format version %u, this corral reads version %u: record the "
					  "run again with this corral",
					  s.name, s.version, SEC_VERSION);
		if (!strcmp(s.name, SEC_EVENTS)) {
			if (s.instance != chunk++)
				return parse_fail(err, errlen, "event section %u out of order", s.instance);
			if ((e = parse_events(rr, &r, cap, err, errlen)) < 0)
				return e;
		} else if (!strcmp(s.name, SEC_END)) {
			rr->end.how = state_get_u32(&r);
			rr->end.point = state_get_u64(&r);
			rr->end.icount = state_get_u64(&r);
			rr->end.ram_hash = state_get_u64(&r);
			rr->end.console_hash = state_get_u64(&r);
			rr->end.events = state_get_u64(&r);
			if (!state_reader_ok(&r) || !state_section_done(&r))
				return parse_fail(err, errlen, "the end section: %s", r.err[0] ? r.err : "malformed");
			got_end = 1;
		} else {
			return parse_fail(err, errlen, "unknown section '%s'", s.name);
		}
	}
	if (k < 0)
		return parse_fail(err, errlen, "%s", r.err);
	if (!got_end)
		return parse_fail(err, errlen, "the recording has no end (the recording run did not finish)");
	if (rr->end.events != rr->nev)
		return parse_fail(err, errlen, "%" PRIu64 " events, the end says %" PRIu64, rr->nev, rr->end.events);
	if (rr->nev && (rr->ev[rr->nev - 1].point > rr->end.point))
		return parse_fail(err, errlen, "an event after the end");
	return 0;
}

/* A replay of the file in buf (malloc'd; the replay owns it from here). */
static int open_owned(struct replay **out, uint8_t *buf, size_t size, char *err, size_t errlen)
{
	*out = NULL;
	struct replay *rr = calloc(1, sizeof(*rr));
	if (!rr) {
		free(buf);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rr->data = buf;
	rr->size = size;
	rr->mode = REPLAY_PLAY;
	rr->fd = -1;
	rr->console_hash = REPLAY_HASH_INIT;
	int r = parse(rr, err, errlen);
	if (r < 0) {
		replay_free(rr);
		return r;
	}
	*out = rr;
	return 0;
}

int replay_open_mem(struct replay **out, const void *data, size_t size, char *err, size_t errlen)
{
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf) {
		*out = NULL;
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(buf, data, size);
	return open_owned(out, buf, size, err, errlen);
}

int replay_open(struct replay **out, const char *path, char *err, size_t errlen)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "--replay %s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > FILE_MAX) {
		snprintf(err, errlen, "--replay %s: not a regular file of at most 16 GiB", path);
		close(fd);
		return -EINVAL;
	}
	size_t size = (size_t)st.st_size;
	uint8_t *buf = malloc(size ? size : 1);
	size_t got = 0;
	while (buf && got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!buf || got != size) {
		int r = buf ? -EIO : -ENOMEM;
		free(buf);
		snprintf(err, errlen, "--replay %s: %s", path, r == -EIO ? "short read" : "out of memory");
		return r;
	}
	int r = open_owned(out, buf, size, err, errlen);
	if (r < 0) {
		char why[512];
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "--replay %s: %s", path, why);
	}
	return r;
}

/* ---- Replaying ---- */

static const struct event *next_event(const struct replay *rr)
{
	return rr->next < rr->nev ? &rr->ev[rr->next] : NULL;
}

/* Does the next event belong to this position? A later one waits; an
 * earlier one was missed: the replay diverged. */
static const struct event *event_here(struct replay *rr, uint64_t ic)
{
	const struct event *e = next_event(rr);
	if (!e || e->point > rr->point || (e->point == rr->point && e->icount > ic))
		return NULL;
	if (e->point < rr->point || e->icount < ic) {
		diverge(rr,
			"replay diverged at instruction %" PRIu64 " (point %" PRIu64 "): the recording had %s at "
			"instruction %" PRIu64 " (point %" PRIu64 ") that the replay never took",
			ic, rr->point, kind_name(e->kind), e->icount, e->point);
		return NULL;
	}
	return e;
}

ssize_t replay_peek(struct replay *rr, enum replay_kind kind, unsigned dev)
{
	if (rr->failed)
		return -1;
	const struct event *e = event_here(rr, cur_icount(rr));
	return e && e->kind == kind && e->dev == dev ? (ssize_t)e->len : -1;
}

ssize_t replay_take(struct replay *rr, enum replay_kind kind, unsigned dev, void *buf, size_t cap)
{
	if (rr->failed)
		return -1;
	uint64_t ic = cur_icount(rr);
	const struct event *e = event_here(rr, ic);
	if (!e || e->kind != kind || e->dev != dev || e->len > cap) {
		if (!rr->failed)
			diverge(rr,
				"replay diverged at instruction %" PRIu64 ": a device wants %s (%zu bytes) where the "
				"recording has %s",
				ic, kind_name(kind), cap, e ? kind_name(e->kind) : "nothing");
		return -1;
	}
	memcpy(buf, e->data, e->len);
	rr->next++;
	return (ssize_t)e->len;
}

int replay_random(struct machine *m, void *buf, size_t len)
{
	struct replay *rr = m ? m->rr : NULL;
	if (rr && rr->mode == REPLAY_PLAY) {
		uint8_t *p = buf;
		/* logged in pieces of at most REPLAY_PAYLOAD_MAX */
		while (len) {
			size_t n = len > REPLAY_PAYLOAD_MAX ? REPLAY_PAYLOAD_MAX : len;
			if (replay_take(rr, REPLAY_RANDOM, 0, p, n) != (ssize_t)n) {
				memset(p, 0, len);
				if (!rr->failed)
					diverge(rr,
						"replay diverged at instruction %" PRIu64
						": the recording has fewer random bytes here",
						rr->icount_last);
				return 0; /* the replay stops at the next point */
			}
			p += n;
			len -= n;
		}
		return 0;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t n = getrandom((uint8_t *)buf + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -EIO;
		got += (size_t)n;
	}
	for (size_t off = 0; rr && off < len; off += REPLAY_PAYLOAD_MAX)
		replay_log(rr, REPLAY_RANDOM, 0, (uint8_t *)buf + off,
			   len - off > REPLAY_PAYLOAD_MAX ? REPLAY_PAYLOAD_MAX : len - off);
	return 0;
}

/* The inputs logged at this point, in their order. */
static void deliver(struct replay *rr)
{
	uint64_t ic = cur_icount(rr);
	const struct event *e;
	while (!rr->failed && (e = event_here(rr, ic))) {
		uint64_t before = rr->next;
		switch (e->kind) {
		case REPLAY_CONSOLE: {
			size_t took = rr->console_in ? rr->console_in(rr->console_opaque, e->data, e->len) : 0;
			if (took != e->len) {
				diverge(rr,
					"replay diverged at instruction %" PRIu64 ": the console took %zu of the %u "
					"bytes it took when recording",
					ic, took, e->len);
				return;
			}
			rr->next++;
			break;
		}
		case REPLAY_NET:
			/* the NICs take their frames through replay_peek/take */
			for (unsigned id = 0; rr->m && id < rr->m->nio; id++)
				rr->m->io[id].fn(rr->m->io[id].opaque);
			break;
		case REPLAY_CLOCK: {
			uint64_t ns = 0;
			for (int k = 0; k < 8; k++)
				ns |= (uint64_t)e->data[k] << (8 * k);
			if (rr->m)
				clock_advance_to(rr->m, ns);
			rr->clock_stepped = 1;
			rr->next++;
			break;
		}
		default: break; /* taken by a device in the middle of a turn */
		}
		if (rr->next == before && !rr->failed)
			diverge(rr,
				"replay diverged at instruction %" PRIu64 " (point %" PRIu64
				"): the guest did not take "
				"%s where the recording did",
				ic, rr->point, kind_name(e->kind));
	}
}

int replay_point(struct replay *rr, int stop)
{
	if (rr->mode == REPLAY_RECORD) {
		rr->point++;
		if (stop) {
			cur_icount(rr);
			return 1;
		}
		return 0;
	}
	if (rr->failed)
		return -1;
	/* an input of this point that the turn since went past */
	event_here(rr, cur_icount(rr));
	if (rr->failed)
		return -1;
	rr->point++;
	rr->clock_stepped = 0;
	deliver(rr);
	if (rr->failed)
		return -1;
	if (stop)
		return 1; /* the user ends the replay early */
	if (!next_event(rr) && rr->point >= rr->end.point && rr->end.how == REPLAY_HOW_QUIT)
		return 1;
	return 0;
}

int replay_clock_stepped(struct replay *rr)
{
	if (!rr->clock_stepped)
		diverge(rr,
			"replay diverged at instruction %" PRIu64 " (point %" PRIu64 "): the guest idles here, but "
			"the recording has no clock step",
			rr->icount_last, rr->point);
	return rr->clock_stepped;
}

int replay_more(const struct replay *rr)
{
	return next_event(rr) || rr->point < rr->end.point;
}

/* ---- The end ---- */

int replay_finish(struct replay *rr, uint32_t how, char *err, size_t errlen)
{
	cur_icount(rr);
	uint64_t ram = rr->ram_final = ram_hash(rr);
	if (rr->mode == REPLAY_RECORD) {
		chunk_close(rr);
		rr->end = (struct replay_end){.how = how,
					      .point = rr->point,
					      .icount = rr->icount_last,
					      .ram_hash = ram,
					      .console_hash = rr->console_hash,
					      .events = rr->nevents};
		state_section_begin(&rr->w, SEC_END, 0, SEC_VERSION);
		state_put_u32(&rr->w, how);
		state_put_u64(&rr->w, rr->end.point);
		state_put_u64(&rr->w, rr->end.icount);
		state_put_u64(&rr->w, ram);
		state_put_u64(&rr->w, rr->console_hash);
		state_put_u64(&rr->w, rr->nevents);
		state_section_end(&rr->w);
		int r = state_writer_finish(&rr->w);
		if (r == 0 && fsync(rr->fd) < 0 && errno != EINVAL)
			r = -errno;
		if (r < 0)
			snprintf(err, errlen, "--record: writing the file failed: %s", strerror(-r));
		return r;
	}
	struct replay_end *w = &rr->end;
	if (rr->failed) {
		snprintf(err, errlen, "%s", rr->msg);
		return -1;
	}
	if (how != w->how || rr->point != w->point || rr->icount_last != w->icount)
		diverge(rr,
			"replay diverged: the run ended (%u) at instruction %" PRIu64 " (point %" PRIu64
			"), the recording ended (%u) at instruction %" PRIu64 " (point %" PRIu64 ")",
			how, rr->icount_last, rr->point, w->how, w->icount, w->point);
	else if (rr->next != rr->nev)
		diverge(rr, "replay diverged: %" PRIu64 " of the recording's %" PRIu64 " inputs were not taken",
			rr->nev - rr->next, rr->nev);
	else if (rr->console_hash != w->console_hash)
		diverge(rr,
			"replay diverged: the console output differs (hash %016" PRIx64 ", recorded %016" PRIx64
			") at instruction %" PRIu64,
			rr->console_hash, w->console_hash, rr->icount_last);
	else if (ram != w->ram_hash)
		diverge(rr,
			"replay diverged: guest RAM differs at the end (hash %016" PRIx64 ", recorded %016" PRIx64
			") at instruction %" PRIu64,
			ram, w->ram_hash, rr->icount_last);
	if (rr->failed) {
		snprintf(err, errlen, "%s", rr->msg);
		return -1;
	}
	return 0;
}
