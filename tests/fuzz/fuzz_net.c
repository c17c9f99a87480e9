/* libFuzzer target: virtio-net driven through its PCI transport with
 * arbitrary rings, frames to send and frames waiting for the guest (see
 * fuzz_virtio.h for the input format). */
#include "fuzz/fuzz_virtio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_net_one(data, size);
}
