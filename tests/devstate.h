/* A device's state through the state stream, as a snapshot carries it, for
 * the device tests: DEVSTATE_SAVE takes the contents of a device's section
 * (xxx_state_save), DEVSTATE_LOAD hands contents (real, cut short or
 * damaged) to a device's xxx_state_load inside a well-formed stream with a
 * valid checksum, so the device's own checks are what is tested. */
#ifndef CORRAL_TESTS_DEVSTATE_H
#define CORRAL_TESTS_DEVSTATE_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "state/stream.h"

#define DEVSTATE_MAX 8192

/* The contents of one section. */
struct devstate {
	uint8_t b[DEVSTATE_MAX];
	size_t n;
	int ok;
};

/* A stream of kind "dev" with one section "dev" 0 of version ver holding
 * bytes[0..n), read back whole into *len; NULL on failure. */
static inline uint8_t *devstate_stream(const void *bytes, size_t n, unsigned ver, size_t *len)
{
	int fd = memfd_create("devstate", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct state_writer w;
	uint8_t *out = NULL;
	if (state_writer_init(&w, fd, "dev") == 0) {
		state_section_begin(&w, "dev", 0, ver);
		state_put_bytes(&w, bytes, n);
		state_section_end(&w);
		off_t end = state_writer_finish(&w) == 0 ? lseek(fd, 0, SEEK_END) : -1;
		if (end > 0 && (out = malloc((size_t)end)) && pread(fd, out, (size_t)end, 0) != end) {
			free(out);
			out = NULL;
		}
		*len = end > 0 ? (size_t)end : 0;
	}
	state_writer_free(&w);
	close(fd);
	return out;
}

/* Saves dev with fn (xxx_state_save) into *ds: the section's contents,
 * exactly as a snapshot's state file holds them in a section of version
 * ver (DEVSTATE_SAVE: 1, as most devices' sections are). */
#define DEVSTATE_SAVE(ds, fn, dev) DEVSTATE_SAVE_V(ds, fn, dev, 1)
#define DEVSTATE_SAVE_V(ds, fn, dev, ver)                                                                              \
	do {                                                                                                           \
		struct state_writer w_ = {0};                                                                          \
		int fd_ = memfd_create("devstate", MFD_CLOEXEC);                                                       \
		(ds)->ok = 0;                                                                                          \
		(ds)->n = 0;                                                                                           \
		if (fd_ >= 0 && state_writer_init(&w_, fd_, "dev") == 0) {                                             \
			state_section_begin(&w_, "dev", 0, ver);                                                       \
			fn(dev, &w_);                                                                                  \
			if (!w_.err && w_.len <= DEVSTATE_MAX) {                                                       \
				memcpy((ds)->b, w_.buf, w_.len);                                                       \
				(ds)->n = w_.len;                                                                      \
				(ds)->ok = 1;                                                                          \
			}                                                                                              \
		}                                                                                                      \
		state_writer_free(&w_);                                                                                \
		if (fd_ >= 0)                                                                                          \
			close(fd_);                                                                                    \
	} while (0)

/* Loads bytes[0..n) into dev with fn (xxx_state_load) from a section of
 * version ver (DEVSTATE_LOAD: 1); its result, or -ENOMEM if the stream
 * could not be built. */
#define DEVSTATE_LOAD(fn, dev, bytes, n) DEVSTATE_LOAD_V(fn, dev, bytes, n, 1)
#define DEVSTATE_LOAD_V(fn, dev, bytes, n, ver)                                                                        \
	({                                                                                                             \
		size_t len_;                                                                                           \
		int r_ = -ENOMEM;                                                                                      \
		uint8_t *s_ = devstate_stream(bytes, n, ver, &len_);                                                   \
		struct state_reader rd_;                                                                               \
		struct state_section sec_;                                                                             \
		if (s_ && state_reader_init(&rd_, s_, len_, "dev") == 0 && state_next_section(&rd_, &sec_) == 1)       \
			r_ = fn(dev, &rd_);                                                                            \
		free(s_);                                                                                              \
		r_;                                                                                                    \
	})

static inline int devstate_equal(const struct devstate *a, const struct devstate *b)
{
	return a->ok && b->ok && a->n == b->n && !memcmp(a->b, b->b, a->n);
}

#endif
