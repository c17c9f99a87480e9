/* libFuzzer target: virtio-blk driven through its PCI transport with
 * arbitrary rings and requests (see fuzz_virtio.h for the input format). */
#include "fuzz/fuzz_virtio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_blk_one(data, size);
}
