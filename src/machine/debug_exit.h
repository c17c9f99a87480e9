/* isa-debug-exit, as QEMU's: a test device whose port ends the VM with a
 * status the guest chooses. A write of V to any of its ports asks for
 * power-off and records the exit status (V << 1) | 1, which `corral run`
 * exits with (so a guest can never make corral exit 0 through it). */
#ifndef CORRAL_DEBUG_EXIT_H
#define CORRAL_DEBUG_EXIT_H

#include <stdint.h>

struct machine;

struct debug_exit {
	struct machine *m;
	int written; /* the guest wrote: status holds the exit status */
	uint32_t status;
};

/* Puts the device on ports [iobase, iobase + iosize): 0, or -EINVAL
 * (a range past 0xffff or empty), -EBUSY (the range is taken), -ENOSPC. */
int debug_exit_register(struct debug_exit *d, struct machine *m, uint16_t iobase, uint16_t iosize);

#endif
