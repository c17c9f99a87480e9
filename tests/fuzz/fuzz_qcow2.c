/* libFuzzer target: the input is a qcow2 image file (see fuzz_qcow2.h). */
#include "fuzz/fuzz_qcow2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_qcow2_one(data, size);
}
