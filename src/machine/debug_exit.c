/* isa-debug-exit: the test device that ends the VM with a status the guest
 * writes (debug_exit.h). */
#include <errno.h>

#include "machine/debug_exit.h"
#include "machine/machine.h"

static uint64_t debug_exit_rd(void *dev, uint64_t off, unsigned size)
{
	(void)dev, (void)off, (void)size;
	return ~0ull; /* QEMU's reads as an unassigned port */
}

static void debug_exit_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct debug_exit *d = dev;
	(void)off, (void)size;
	if (d->written)
		return; /* the first write decides, as QEMU's exit() would */
	d->written = 1;
	d->status = (uint32_t)((val << 1) | 1);
	machine_request_power(d->m, POWER_OFF);
}

int debug_exit_register(struct debug_exit *d, struct machine *m, uint16_t iobase, uint16_t iosize)
{
	d->m = m;
	d->written = 0;
	d->status = 0;
	if (!iosize || (uint32_t)iobase + iosize > 0x10000)
		return -EINVAL;
	return bus_register_pio(m, iobase, iosize, debug_exit_rd, debug_exit_wr, d);
}
