/* libFuzzer target for the CPU core: fuzz input = guest code (see fuzz_cpu.h).
 * Built by `make fuzz` with clang; not part of the gcc build. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz/fuzz_cpu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_cpu_one(data, size);
}
