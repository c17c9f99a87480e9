/* Fuzz entry for the system VM's snapshot loader (vm/snapshot.c): the
 * input is a snapshot's state file, restored against a 16 MiB memory file
 * into a fresh VM that is then destroyed without running. Nothing may
 * crash, read out of bounds or leak, and a refusal is one line. Inputs
 * whose configuration names host resources (disks, networks, a kernel
 * file) are skipped. */
#ifndef CORRAL_FUZZ_VMSTATE_H
#define CORRAL_FUZZ_VMSTATE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "state/stream.h"
#include "vm/vm_internal.h"

#define FUZZ_VMSTATE_MEM (16u << 20)

/* The configuration in the input names no disk, network or kernel: the
 * restore would open them on the host. Unreadable configurations are
 * harmless (the restore refuses them before it opens anything). */
static inline int fuzz_vmstate_harmless(const uint8_t *data, size_t size)
{
	static char json[VM_CONFIG_JSON_MAX + 1];
	struct state_reader r;
	struct state_section s;
	if (state_reader_init(&r, data, size, "vm") < 0 || state_next_section(&r, &s) != 1)
		return 1;
	state_get_str(&r, json, sizeof(json));
	if (!state_reader_ok(&r))
		return 1;
	struct vm_config c;
	void *strings = NULL;
	char err[256];
	vm_config_init(&c);
	if (vm_config_from_json(json, strlen(json), &c, &strings, err, sizeof(err)) < 0)
		return 1;
	int ok = !c.ndisks && !c.nnets && !c.kernel && !c.initrd;
	free(strings);
	return ok;
}

static inline int fuzz_vmstate_one(const uint8_t *data, size_t size)
{
	static int memfd = -1;
	if (!fuzz_vmstate_harmless(data, size))
		return 0;
	if (memfd < 0) {
		memfd = memfd_create("fuzz-vmstate-ram", MFD_CLOEXEC);
		if (memfd < 0 || ftruncate(memfd, FUZZ_VMSTATE_MEM) < 0)
			abort();
	}
	struct vm *vm = NULL;
	char err[512] = "";
	if (vm_restore_from(data, size, memfd, NULL, NULL, &vm, err, sizeof(err)) == 0) {
		vm_destroy(vm);
		return 0;
	}
	if (vm || !err[0] || strchr(err, '\n'))
		abort(); /* a refusal leaves nothing behind and says why in one line */
	return 0;
}

#endif
