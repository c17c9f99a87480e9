/* Fuzz entry for the incoming migration stream's parser (vm/migrate.c,
 * migrate_recv_stream): the input is what a source sends up to and with
 * the device state, read from a file descriptor into RAM of at most
 * FUZZ_MIGRATE_MEM bytes. Nothing may crash, read or write out of bounds
 * or leak; a refusal is one line; an accepted stream gives RAM of a valid
 * size and a state within its cap. (The state stream itself is
 * fuzz_vmstate's.) */
#ifndef CORRAL_FUZZ_MIGRATE_H
#define CORRAL_FUZZ_MIGRATE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/migrate.h"
#include "vm/vm.h"

#define FUZZ_MIGRATE_MEM (64u << 20)

static inline int fuzz_migrate_one(const uint8_t *data, size_t size)
{
	int in = memfd_create("fuzz-migrate-in", MFD_CLOEXEC);
	if (in < 0)
		abort();
	for (size_t done = 0; done < size;) {
		ssize_t w = write(in, data + done, size - done);
		if (w <= 0)
			abort();
		done += (size_t)w;
	}
	lseek(in, 0, SEEK_SET);
	int mem = -1;
	void *state = NULL;
	size_t len = 0;
	char err[512] = "";
	int r = migrate_recv_stream(in, -1, FUZZ_MIGRATE_MEM, &mem, &state, &len, err, sizeof(err));
	close(in);
	if (r == 0) {
		struct stat st;
		if (mem < 0 || !state || !len || len > (16u << 20) || fstat(mem, &st) < 0 ||
		    (uint64_t)st.st_size < VM_MEM_MIN || (uint64_t)st.st_size > FUZZ_MIGRATE_MEM)
			abort();
		close(mem);
		free(state);
		return 0;
	}
	if (mem != -1 || state || !err[0] || strchr(err, '\n'))
		abort(); /* a refusal leaves nothing behind and says why in one line */
	return 0;
}

#endif
