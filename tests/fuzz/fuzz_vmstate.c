/* libFuzzer target: the input is a system VM snapshot's state file (see
 * fuzz_vmstate.h). */
#include "fuzz/fuzz_vmstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_vmstate_one(data, size);
}
