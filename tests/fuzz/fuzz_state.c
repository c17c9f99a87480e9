/* libFuzzer target: the input is a state file (see fuzz_state.h). */
#include "fuzz/fuzz_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_state_one(data, size);
}
