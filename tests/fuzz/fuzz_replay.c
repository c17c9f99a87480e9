/* libFuzzer target: the input is a replay file (see fuzz_replay.h). */
#include "fuzz/fuzz_replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_replay_one(data, size);
}
