/* Fuzz entry for a process VM checkpoint's parser (ckpt_parse): the input
 * is a state file of kind "process". Nothing may crash, read out of bounds
 * or leak; and what the parser accepts, written back, is the same bytes
 * (every field was read, none was left over or changed on the way). */
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

#include "process/ckpt.h"

static inline int fuzz_ckpt_one(const uint8_t *data, size_t size)
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

#endif
