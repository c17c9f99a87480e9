/* Fuzz entry for the replay file (machine/replay.h): the input is a replay
 * file. It is parsed as --replay parses it; one that is accepted is then
 * played through with no machine (the inputs at each point delivered,
 * devices asking for inputs of every kind), as far as it goes. Nothing may
 * crash, read out of bounds or leak. */
#ifndef CORRAL_FUZZ_REPLAY_FILE_H
#define CORRAL_FUZZ_REPLAY_FILE_H

#include <stdint.h>
#include <string.h>

#include "machine/replay.h"

static inline int fuzz_replay_one(const uint8_t *data, size_t size)
{
	struct replay *rr;
	char err[512];
	if (replay_open_mem(&rr, data, size, err, sizeof(err)) < 0)
		return 0;
	uint8_t buf[256];
	for (unsigned k = 0; k < 100000; k++) {
		if (replay_point(rr, 0) != 0)
			break;
		enum replay_kind kind = (enum replay_kind)(1 + k % REPLAY_KIND_MAX);
		if (replay_peek(rr, kind, k & 1) >= 0 && replay_take(rr, kind, k & 1, buf, sizeof(buf)) < 0)
			break;
		if (!replay_more(rr))
			break;
	}
	replay_finish(rr, REPLAY_HOW_POWER_OFF, err, sizeof(err));
	replay_free(rr);
	return 0;
}

#endif
