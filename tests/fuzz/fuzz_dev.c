/* libFuzzer target for the machine's devices: the input is a list of guest
 * actions (port and MMIO accesses of any size, IRQ lines, MSRs, interrupt
 * acknowledges, host serial input, time passing, snapshot loads) replayed
 * on a fresh 2-vCPU machine. Any crash or sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devstate.h"
#include "machine/machine_impl.h"

struct fz_op {
	uint8_t kind, size;
	uint16_t port;
	uint32_t addr;
	uint64_t val;
};

/* the last: ECAM, the host bridge's configuration space (00:00.0) */
static const uint64_t fz_mmio_base[4] = {MEM_LAPIC_BASE, MEM_IOAPIC_BASE, MEM_HPET_BASE, MEM_PCI_ECAM_BASE};

/* Saves one device's state as a snapshot's section holds it, flips bytes
 * of it as the input says, and loads it back (in a stream whose checksum
 * is right, so the device's own checks see the damage). */
#define FZ_DEV(fn, dev)                                                                                                \
	do {                                                                                                           \
		DEVSTATE_SAVE(&st, fn##_state_save, dev);                                                              \
		if (!st.ok || !st.n)                                                                                   \
			return;                                                                                        \
		for (size_t k = 0; k < rawlen; k++)                                                                    \
			st.b[(val + k) % st.n] ^= raw[k];                                                              \
		(void)DEVSTATE_LOAD(fn##_state_load, dev, st.b, st.n);                                                 \
	} while (0)

static void fz_snapshot(struct machine *m, uint8_t which, uint64_t val, const uint8_t *raw, size_t rawlen)
{
	static struct devstate st;
	switch (which % 9) {
	case 0: FZ_DEV(pic, &m->pic); break;
	case 1: FZ_DEV(ioapic, &m->ioapic); break;
	case 2: FZ_DEV(lapic, &m->lapic[val & 1]); break;
	case 3: FZ_DEV(pit, &m->pit); break;
	case 4: FZ_DEV(rtc, &m->rtc); break;
	case 5: FZ_DEV(i8042, &m->kbd); break;
	case 6: FZ_DEV(acpi_pm, &m->pm); break;
	default: FZ_DEV(uart, &m->com1); break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct machine *m = NULL;
	struct machine_config cfg = {.mem_size = 16 << 20, .ncpus = 2, .serial_out_fd = -1, .rtc_host_sec = 1700000000};
	if (machine_create(&m, &cfg) < 0)
		abort();
	m->clock_manual = 1;
	for (size_t off = 0; off + sizeof(struct fz_op) <= size; off += sizeof(struct fz_op)) {
		struct fz_op op;
		memcpy(&op, data + off, sizeof(op));
		unsigned sz = 1u << (op.size & 3);
		m->cur_cpu = op.size >> 7;
		switch (op.kind % 10) {
		case 0: (void)bus_pio_read(m, op.port, sz); break;
		case 1: bus_pio_write(m, op.port, sz, op.val); break;
		case 2: (void)bus_mmio_read(m, fz_mmio_base[op.port & 3] + (op.addr & 0x1fff), sz); break;
		case 3: bus_mmio_write(m, fz_mmio_base[op.port & 3] + (op.addr & 0x1fff), sz, op.val); break;
		case 4: irq_set_level(m, op.port & 31, (int)(op.val & 1)); break;
		case 5:
			clock_advance_to(m, clock_ns(m) + (op.val & 0xffffffff));
			mtimer_run_expired(m);
			break;
		case 6:
			if (intr_pending(m, op.port & 1))
				(void)intr_ack(m, op.port & 1);
			(void)vcpu_take_requests(m, op.port & 1, NULL);
			(void)machine_take_power(m);
			break;
		case 7: {
			uint8_t in[8];
			memcpy(in, &op.val, 8);
			(void)uart_receive(&m->com1, in, op.size & 7);
			break;
		}
		case 8: (void)lapic_msr_write(m, op.port & 1, 0x800 | (op.addr & 0xff), op.val); break;
		default:
			if (op.size & 0x40) {
				(void)lapic_msr_write(m, op.port & 1, op.addr & 1 ? 0x1b : 0x6e0, op.val);
			} else {
				size_t rawlen = size - off - sizeof(op) < 8 ? size - off - sizeof(op) : 8;
				fz_snapshot(m, (uint8_t)op.port, op.val, data + off + sizeof(op), rawlen);
			}
			break;
		}
	}
	machine_destroy(m);
	return 0;
}
