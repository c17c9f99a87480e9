/* libFuzzer target: the input is an incoming migration stream (see
 * fuzz_migrate.h). */
#include "fuzz/fuzz_migrate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_migrate_one(data, size);
}
