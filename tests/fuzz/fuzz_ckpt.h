/* Fuzz entry for a process VM checkpoint's parser (ckpt_parse): the input
 * is a state file of kind "process". Nothing may crash, read out of bounds
 * or leak; and what the parser accepts, written back, is the same bytes
 * (every field was read, none was left over or changed on the way). The
 * input is parsed as it is, then with every checksum made right again
 * (docs/state-format.md's framing), so that mutated fields reach the
 * parser's checks behind the checksums. */
#ifndef CORRAL_FUZZ_CKPT_H
#define CORRAL_FUZZ_CKPT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "process/ckpt.h"

static inline void fuzz_ckpt_put32(uint8_t *p, uint32_t v)
{
	for (int k = 0; k < 4; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

/* The checksums of the header, each section and the end marker of
 * [d, d+n), recomputed in place as far as the framing holds. */
static inline void fuzz_ckpt_reseal(uint8_t *d, size_t n)
{
	if (n < 13 || n < 13 + (size_t)d[12] + 4)
		return;
	size_t pos = 13 + d[12];
	fuzz_ckpt_put32(d + pos, (uint32_t)crc32(0, d, (uInt)pos));
	pos += 4;
	while (pos + 8 <= n) {
		if (!memcmp(d + pos, "END!", 4)) {
			fuzz_ckpt_put32(d + pos + 4, (uint32_t)crc32(0, d + pos, 4));
			return;
		}
		if (memcmp(d + pos, "SECT", 4))
			return;
		size_t h = pos + 4, nl = d[h];
		if (h + 1 + nl + 16 > n)
			return;
		uint64_t len = 0;
		for (int k = 7; k >= 0; k--)
			len = len << 8 | d[h + 1 + nl + 8 + k];
		if (len > n || h + 1 + nl + 16 + len + 4 > n)
			return;
		size_t end = h + 1 + nl + 16 + (size_t)len;
		fuzz_ckpt_put32(d + end, (uint32_t)crc32(0, d + h, (uInt)(end - h)));
		pos = end + 4;
	}
}

static inline int fuzz_ckpt_parse_one(const uint8_t *data, size_t size)
{
	struct ckpt_image img;
	char err[256];
	if (ckpt_parse(data, size, &img, err, sizeof(err)))
		return 0;
	int fd = memfd_create("ckpt", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	struct state_writer w;
	if (state_writer_init(&w, fd, "process"))
		abort();
	ckpt_write(&w, &img);
	if (state_writer_finish(&w))
		abort();
	state_writer_free(&w);
	ckpt_image_free(&img);
	off_t len = lseek(fd, 0, SEEK_END);
	uint8_t *back = malloc((size_t)len + 1);
	if (!back || len != (off_t)size || pread(fd, back, (size_t)len, 0) != len || memcmp(back, data, size)) {
		fprintf(stderr, "fuzz_ckpt: an accepted checkpoint does not write back the same\n");
		abort();
	}
	free(back);
	close(fd);
	return 0;
}

static inline int fuzz_ckpt_one(const uint8_t *data, size_t size)
{
	fuzz_ckpt_parse_one(data, size);
	uint8_t *d = malloc(size + 1);
	if (!d)
		abort();
	memcpy(d, data, size);
	fuzz_ckpt_reseal(d, size);
	fuzz_ckpt_parse_one(d, size);
	free(d);
	return 0;
}

#endif
