/* The state stream: one versioned, sectioned, explicitly little-endian
 * format for everything corral saves (system VM snapshots, migration,
 * process-VM checkpoints). docs/state-format.md is its specification.
 *
 * Contract:
 * - A stream is a header (magic, format version, a kind such as "vm" or
 *   "process") and a sequence of sections, each with a name, an instance
 *   number, a section version, a length and a CRC-32 of its contents, then
 *   an end marker. Fields are written one by one with explicit widths
 *   (state_put_*), never as raw copies of C structs.
 * - Writing is buffered per section; errors are sticky: the put calls
 *   never fail on their own, state_section_end and state_writer_finish
 *   return the first error (0 or -errno).
 * - Reading is parsing hostile input. A section is read whole (at most
 *   STATE_SECTION_MAX bytes) and its CRC checked before any field is
 *   handed out; a get past the section's end, a string too long, a count
 *   out of range marks the reader failed with a message, after which every
 *   get returns zero. Callers decode into locals, check
 *   state_reader_ok, validate, and only then commit.
 * - Neither side is thread-safe; one stream, one thread. */
#ifndef CORRAL_STATE_STREAM_H
#define CORRAL_STATE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_FORMAT_VERSION 1
#define STATE_NAME_MAX 63	      /* bytes in a section or kind name */
#define STATE_SECTION_MAX (64u << 20) /* bytes in one section's contents */
#define STATE_ERR_MAX 256

struct state_writer {
	int fd;
	int err;      /* first error, -errno */
	uint8_t *buf; /* the open section's contents */
	size_t len, cap;
	char name[STATE_NAME_MAX + 1];
	uint32_t instance, version;
	int open;	  /* a section is open */
	uint64_t written; /* bytes written to fd */
};

/* Start a stream of the given kind on fd (written from its current offset). */
int state_writer_init(struct state_writer *w, int fd, const char *kind);
void state_section_begin(struct state_writer *w, const char *name, uint32_t instance, uint32_t version);
void state_put_u8(struct state_writer *w, uint8_t v);
void state_put_u16(struct state_writer *w, uint16_t v);
void state_put_u32(struct state_writer *w, uint32_t v);
void state_put_u64(struct state_writer *w, uint64_t v);
void state_put_bool(struct state_writer *w, bool v);
void state_put_bytes(struct state_writer *w, const void *p, size_t n);
/* A length-prefixed string (u32 length, bytes, no NUL). */
void state_put_str(struct state_writer *w, const char *s);
int state_section_end(struct state_writer *w);
/* The end marker; returns the first error of the whole stream. The caller
 * closes (and fsyncs, if it wants) fd. */
int state_writer_finish(struct state_writer *w);
void state_writer_free(struct state_writer *w);

struct state_section {
	char name[STATE_NAME_MAX + 1];
	uint32_t instance, version;
	uint64_t length;
};

struct state_reader {
	const uint8_t *data; /* the whole stream (caller's memory) */
	size_t size, pos;
	char kind[STATE_NAME_MAX + 1];
	uint32_t format;
	/* the current section */
	const uint8_t *sec;
	size_t sec_len, sec_pos;
	struct state_section cur;
	int failed;
	char err[STATE_ERR_MAX];
};

/* Check the header of the stream in [data, data+size): its magic, format
 * version (newer than this corral understands is refused) and kind (want,
 * or any if NULL). 0, or -EINVAL with the reason in r->err. */
int state_reader_init(struct state_reader *r, const void *data, size_t size, const char *want);
/* The next section: 1 and *s filled (its CRC checked), 0 at the end
 * marker, -EINVAL on a malformed stream (r->err says why). */
int state_next_section(struct state_reader *r, struct state_section *s);
uint8_t state_get_u8(struct state_reader *r);
uint16_t state_get_u16(struct state_reader *r);
uint32_t state_get_u32(struct state_reader *r);
uint64_t state_get_u64(struct state_reader *r);
bool state_get_bool(struct state_reader *r);
void state_get_bytes(struct state_reader *r, void *p, size_t n);
/* A string of at most max-1 bytes into buf (NUL-terminated); longer ones,
 * or ones holding a NUL, fail the reader. */
void state_get_str(struct state_reader *r, char *buf, size_t max);
/* A count that must lie in [0, max] (say, the number of vCPUs). */
uint32_t state_get_count(struct state_reader *r, uint32_t max, const char *what);
/* Fail the reader with a message (a value out of range, say). */
void state_fail(struct state_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True while nothing has failed. */
bool state_reader_ok(const struct state_reader *r);
/* The section was read to its end; a section with bytes left over (from a
 * newer writer of the same version) fails. */
bool state_section_done(struct state_reader *r);

/* Guest memory: a file of its own, sparse. Writes the n bytes at mem to fd
 * from offset 0, leaving pages that are all zero as holes; 0 or -errno. */
int state_ram_write(int fd, const void *mem, size_t n);

#endif
