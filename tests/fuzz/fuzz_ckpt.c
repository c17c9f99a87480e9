/* libFuzzer target: the input is a process VM checkpoint's state file (see fuzz_ckpt.h). */
#include "fuzz/fuzz_ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_ckpt_one(data, size);
}
