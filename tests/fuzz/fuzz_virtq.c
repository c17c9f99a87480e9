/* libFuzzer target: the virtqueue walker over arbitrary guest rings
 * (see fuzz_virtio.h for the input format). */
#include "fuzz/fuzz_virtio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_virtq_one(data, size);
}
