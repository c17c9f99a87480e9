/* The state stream's encoder and checked decoder (stream.h; the format is
 * docs/state-format.md). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "state/stream.h"

static const uint8_t magic[8] = {'C', 'O', 'R', 'R', 'A', 'L', 'S', 'T'};

/* The fuzz build (make fuzz-state-run) takes any checksum, so that the
 * fuzzer reaches the parsing behind it. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define CRC_BAD(stored, computed) ((void)(stored), (void)(computed), 0)
#else
#define CRC_BAD(stored, computed) ((stored) != (computed))
#endif
#define TAG_SECTION 0x54434553u /* "SECT" */
#define TAG_END 0x21444e45u	/* "END!" */

static uint32_t crc(const void *p, size_t n, uint32_t c)
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

static void le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
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

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* ---- writing ---- */

static void out(struct state_writer *w, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n && !w->err) {
		ssize_t k = write(w->fd, b, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			w->err = k < 0 ? -errno : -EIO;
			return;
		}
		b += k;
		n -= (size_t)k;
		w->written += (uint64_t)k;
	}
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= STATE_NAME_MAX;
}

int state_writer_init(struct state_writer *w, int fd, const char *kind)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	if (!name_ok(kind))
		return w->err = -EINVAL;
	uint8_t h[8 + 4 + 1 + STATE_NAME_MAX + 4];
	size_t kl = strlen(kind), n = 0;
	memcpy(h, magic, 8);
	n += 8;
	le32(h + n, STATE_FORMAT_VERSION);
	n += 4;
	h[n++] = (uint8_t)kl;
	memcpy(h + n, kind, kl);
	n += kl;
	le32(h + n, crc(h, n, 0));
	n += 4;
	out(w, h, n);
	return w->err;
}

static void need(struct state_writer *w, size_t n)
{
	if (w->err)
		return;
	if (!w->open) {
		w->err = -EINVAL; /* a put outside a section */
		return;
	}
	if (n > STATE_SECTION_MAX - w->len) {
		w->err = -EFBIG;
		return;
	}
	if (w->len + n <= w->cap)
		return;
	size_t cap = w->cap ? w->cap : 4096;
	while (cap < w->len + n)
		cap *= 2;
	uint8_t *b = realloc(w->buf, cap);
	if (!b) {
		w->err = -ENOMEM;
		return;
	}
	w->buf = b;
	w->cap = cap;
}

void state_section_begin(struct state_writer *w, const char *name, uint32_t instance, uint32_t version)
{
	if (w->err)
		return;
	if (w->open || !name_ok(name)) {
		w->err = -EINVAL;
		return;
	}
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->instance = instance;
	w->version = version;
	w->len = 0;
	w->open = 1;
}

void state_put_bytes(struct state_writer *w, const void *p, size_t n)
{
	need(w, n);
	if (w->err || !n)
		return;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void state_put_u8(struct state_writer *w, uint8_t v)
{
	state_put_bytes(w, &v, 1);
}

void state_put_bool(struct state_writer *w, bool v)
{
	state_put_u8(w, v ? 1 : 0);
}

void state_put_u16(struct state_writer *w, uint16_t v)
{
	uint8_t b[2];
	le16(b, v);
	state_put_bytes(w, b, 2);
}

void state_put_u32(struct state_writer *w, uint32_t v)
{
	uint8_t b[4];
	le32(b, v);
	state_put_bytes(w, b, 4);
}

void state_put_u64(struct state_writer *w, uint64_t v)
{
	uint8_t b[8];
	le64(b, v);
	state_put_bytes(w, b, 8);
}

void state_put_str(struct state_writer *w, const char *s)
{
	size_t n = strlen(s);
	if (n > UINT32_MAX) {
		w->err = w->err ? w->err : -EINVAL;
		return;
	}
	state_put_u32(w, (uint32_t)n);
	state_put_bytes(w, s, n);
}

/* Section header: tag, name length, name, instance, version, length. The
 * CRC covers the header from the name length on, and the contents. */
int state_section_end(struct state_writer *w)
{
	if (!w->err && !w->open)
		w->err = -EINVAL;
	if (w->err)
		return w->err;
	uint8_t h[4 + 1 + STATE_NAME_MAX + 4 + 4 + 8];
	size_t nl = strlen(w->name), n = 0;
	le32(h, TAG_SECTION);
	n += 4;
	h[n++] = (uint8_t)nl;
	memcpy(h + n, w->name, nl);
	n += nl;
	le32(h + n, w->instance);
	n += 4;
	le32(h + n, w->version);
	n += 4;
	le64(h + n, w->len);
	n += 8;
	uint8_t c[4];
	le32(c, crc(w->buf, w->len, crc(h + 4, n - 4, 0)));
	out(w, h, n);
	out(w, w->buf, w->len);
	out(w, c, 4);
	w->open = 0;
	return w->err;
}

int state_writer_finish(struct state_writer *w)
{
	if (!w->err && w->open)
		w->err = -EINVAL; /* a section left open */
	uint8_t e[8];
	le32(e, TAG_END);
	le32(e + 4, crc(e, 4, 0));
	out(w, e, 8);
	return w->err;
}

void state_writer_free(struct state_writer *w)
{
	free(w->buf);
	w->buf = NULL;
	w->cap = w->len = 0;
}

/* ---- reading ---- */

void state_fail(struct state_reader *r, const char *fmt, ...)
{
	if (r->failed)
		return;
	r->failed = 1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
}

bool state_reader_ok(const struct state_reader *r)
{
	return !r->failed;
}

/* n bytes of the stream itself (headers), or NULL after failing. */
static const uint8_t *take(struct state_reader *r, size_t n, const char *what)
{
	if (r->failed)
		return NULL;
	if (n > r->size - r->pos) {
		state_fail(r, "truncated: %s at byte %zu", what, r->pos);
		return NULL;
	}
	const uint8_t *p = r->data + r->pos;
	r->pos += n;
	return p;
}

static bool name_valid(const uint8_t *p, size_t n)
{
	if (!n || n > STATE_NAME_MAX)
		return false;
	for (size_t k = 0; k < n; k++)
		if (p[k] < 0x21 || p[k] > 0x7e)
			return false;
	return true;
}

int state_reader_init(struct state_reader *r, const void *data, size_t size, const char *want)
{
	memset(r, 0, sizeof(*r));
	r->data = data;
	r->size = size;
	const uint8_t *m = take(r, 8, "the header");
	if (!m)
		return -EINVAL;
	if (memcmp(m, magic, 8)) {
		state_fail(r, "not a corral state file (bad magic)");
		return -EINVAL;
	}
	const uint8_t *v = take(r, 5, "the header");
	if (!v)
		return -EINVAL;
	r->format = rd32(v);
	size_t kl = v[4];
	const uint8_t *k = take(r, kl, "the header");
	const uint8_t *c = take(r, 4, "the header");
	if (!k || !c)
		return -EINVAL;
	if (CRC_BAD(rd32(c), crc(r->data, 8 + 5 + kl, 0))) {
		state_fail(r, "corrupt header (checksum mismatch)");
		return -EINVAL;
	}
	if (r->format == 0 || r->format > STATE_FORMAT_VERSION) {
		state_fail(r, "state format %u is newer than this corral understands (%u)", r->format,
			   STATE_FORMAT_VERSION);
		return -EINVAL;
	}
	if (!name_valid(k, kl)) {
		state_fail(r, "corrupt header (bad kind)");
		return -EINVAL;
	}
	memcpy(r->kind, k, kl);
	r->kind[kl] = 0;
	if (want && strcmp(r->kind, want)) {
		state_fail(r, "a state file of kind '%s', not '%s'", r->kind, want);
		return -EINVAL;
	}
	return 0;
}

int state_next_section(struct state_reader *r, struct state_section *s)
{
	if (r->failed)
		return -EINVAL;
	r->sec = NULL; /* a caller may skip (the rest of) a section */
	r->sec_len = r->sec_pos = 0;
	size_t start = r->pos;
	const uint8_t *t = take(r, 4, "a section header");
	if (!t)
		return -EINVAL;
	uint32_t tag = rd32(t);
	if (tag == TAG_END) {
		const uint8_t *c = take(r, 4, "the end marker");
		if (!c)
			return -EINVAL;
		if (CRC_BAD(rd32(c), crc(t, 4, 0))) {
			state_fail(r, "corrupt end marker");
			return -EINVAL;
		}
		if (r->pos != r->size) {
			state_fail(r, "%zu bytes after the end marker", r->size - r->pos);
			return -EINVAL;
		}
		return 0;
	}
	if (tag != TAG_SECTION) {
		state_fail(r, "corrupt stream: no section at byte %zu", start);
		return -EINVAL;
	}
	const uint8_t *nl = take(r, 1, "a section header");
	if (!nl)
		return -EINVAL;
	const uint8_t *name = take(r, *nl, "a section header");
	const uint8_t *h = take(r, 16, "a section header");
	if (!name || !h)
		return -EINVAL;
	if (!name_valid(name, *nl)) {
		state_fail(r, "corrupt section name at byte %zu", start);
		return -EINVAL;
	}
	struct state_section sec;
	memcpy(sec.name, name, *nl);
	sec.name[*nl] = 0;
	sec.instance = rd32(h);
	sec.version = rd32(h + 4);
	sec.length = rd64(h + 8);
	if (sec.length > STATE_SECTION_MAX) {
		state_fail(r, "section %s: %llu bytes is more than a section may hold", sec.name,
			   (unsigned long long)sec.length);
		return -EINVAL;
	}
	if (sec.length + 4 > r->size - r->pos) {
		state_fail(r, "truncated: section %s (%llu bytes) at byte %zu", sec.name,
			   (unsigned long long)sec.length, start);
		return -EINVAL;
	}
	const uint8_t *body = take(r, (size_t)sec.length, "a section");
	const uint8_t *c = take(r, 4, "a section's checksum");
	if (!body || !c)
		return -EINVAL;
	if (CRC_BAD(rd32(c), crc(body, (size_t)sec.length, crc(r->data + start + 4, 1 + *nl + 16, 0)))) {
		state_fail(r, "section %s: checksum mismatch (the file is corrupt)", sec.name);
		return -EINVAL;
	}
	r->sec = body;
	r->sec_len = (size_t)sec.length;
	r->cur = sec;
	*s = sec;
	return 1;
}

/* n bytes of the current section, or NULL after failing. */
static const uint8_t *get(struct state_reader *r, size_t n)
{
	if (r->failed)
		return NULL;
	if (!r->sec || n > r->sec_len - r->sec_pos) {
		state_fail(r, "section %s: ends early (a field of %zu bytes at offset %zu of %zu)", r->cur.name, n,
			   r->sec_pos, r->sec_len);
		return NULL;
	}
	const uint8_t *p = r->sec + r->sec_pos;
	r->sec_pos += n;
	return p;
}

uint8_t state_get_u8(struct state_reader *r)
{
	const uint8_t *p = get(r, 1);
	return p ? p[0] : 0;
}

bool state_get_bool(struct state_reader *r)
{
	uint8_t v = state_get_u8(r);
	if (v > 1)
		state_fail(r, "section %s: a flag holds %u", r->cur.name, v);
	return v == 1;
}

uint16_t state_get_u16(struct state_reader *r)
{
	const uint8_t *p = get(r, 2);
	return p ? rd16(p) : 0;
}

uint32_t state_get_u32(struct state_reader *r)
{
	const uint8_t *p = get(r, 4);
	return p ? rd32(p) : 0;
}

uint64_t state_get_u64(struct state_reader *r)
{
	const uint8_t *p = get(r, 8);
	return p ? rd64(p) : 0;
}

void state_get_bytes(struct state_reader *r, void *dst, size_t n)
{
	const uint8_t *p = get(r, n);
	if (p)
		memcpy(dst, p, n);
	else if (n)
		memset(dst, 0, n);
}

void state_get_str(struct state_reader *r, char *buf, size_t max)
{
	if (max)
		buf[0] = 0;
	uint32_t n = state_get_u32(r);
	if (r->failed)
		return;
	if (!max || n > max - 1) {
		state_fail(r, "section %s: a text of %u bytes (at most %zu)", r->cur.name, n, max ? max - 1 : 0);
		return;
	}
	const uint8_t *p = get(r, n);
	if (!p)
		return;
	if (memchr(p, 0, n)) {
		state_fail(r, "section %s: a text holds a NUL byte", r->cur.name);
		return;
	}
	memcpy(buf, p, n);
	buf[n] = 0;
}

uint32_t state_get_count(struct state_reader *r, uint32_t max, const char *what)
{
	uint32_t n = state_get_u32(r);
	if (!r->failed && n > max) {
		state_fail(r, "section %s: %u %s (at most %u)", r->cur.name, n, what, max);
		return 0;
	}
	return n;
}

bool state_section_done(struct state_reader *r)
{
	if (!r->failed && r->sec_pos != r->sec_len)
		state_fail(r, "section %s: %zu bytes left unread (a different layout of version %u)", r->cur.name,
			   r->sec_len - r->sec_pos, r->cur.version);
	return !r->failed;
}

/* ---- guest memory ---- */

static bool page_zero(const uint8_t *p, size_t n)
{
	static const uint8_t zero[4096];
	return !memcmp(p, zero, n < sizeof(zero) ? n : sizeof(zero));
}

int state_ram_write(int fd, const void *mem, size_t n)
{
	const uint8_t *m = mem;
	const size_t pg = 4096;
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)n) < 0)
		return -errno;
	size_t off = 0;
	while (off < n) {
		if (page_zero(m + off, n - off)) { /* a hole */
			off += pg;
			continue;
		}
		size_t end = off + pg;
		while (end < n && !page_zero(m + end, n - end))
			end += pg;
		if (end > n)
			end = n;
		while (off < end) { /* one run of written pages */
			ssize_t w = pwrite(fd, m + off, end - off, (off_t)off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return w < 0 ? -errno : -EIO;
			off += (size_t)w;
		}
	}
	return 0;
}
