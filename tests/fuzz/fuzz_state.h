/* Fuzz entry for the state stream's reader: the input is a state file.
 * Every section is read with a mix of field kinds chosen from its name and
 * contents, as a loader would; nothing may crash, read out of bounds or
 * leak, and a reader that reports success must have checked every byte. */
#ifndef CORRAL_FUZZ_STATE_H
#define CORRAL_FUZZ_STATE_H

#include <stdint.h>
#include <string.h>

#include "state/stream.h"

static inline int fuzz_state_one(const uint8_t *data, size_t size)
{
	struct state_reader r;
	if (state_reader_init(&r, data, size, NULL))
		return 0;
	struct state_section s;
	int n = 0;
	while (state_next_section(&r, &s) == 1 && n++ < 4096) {
		unsigned pick = (unsigned)s.name[0] + s.version;
		char buf[64];
		uint8_t raw[16];
		for (int k = 0; k < 64 && state_reader_ok(&r); k++) {
			switch ((pick + (unsigned)k) % 8) {
			case 0: state_get_u8(&r); break;
			case 1: state_get_u16(&r); break;
			case 2: state_get_u32(&r); break;
			case 3: state_get_u64(&r); break;
			case 4: state_get_bool(&r); break;
			case 5: state_get_str(&r, buf, sizeof(buf)); break;
			case 6: state_get_bytes(&r, raw, sizeof(raw)); break;
			default: state_get_count(&r, 16, "things"); break;
			}
		}
		if (!state_reader_ok(&r))
			return 0;
		state_section_done(&r);
	}
	return 0;
}

#endif
