/* The 8254 PIT through its ports on a frozen virtual clock: counting at
 * 1.193182 MHz, counter latch, read-back status, LSB/MSB access, BCD, the
 * channel 2 gate/output bits of port 0x61 that Linux's calibration uses,
 * and IRQ 0 timing. Expected counts are computed from the crystal rate. */
#include <stdint.h>
#include <stdlib.h>

#include "machine/machine_impl.h"
#include "testhelp.h"

static struct machine *m;

static void out8(uint16_t port, uint8_t v)
{
	bus_pio_write(m, port, 1, v);
}

static uint8_t in8(uint16_t port)
{
	return (uint8_t)bus_pio_read(m, port, 1);
}

static void setup(void)
{
	struct machine_config cfg = {.mem_size = 16 << 20, .ncpus = 1, .serial_out_fd = -1};
	m = NULL;
	if (machine_create(&m, &cfg) < 0)
		abort();
	m->clock_manual = 1;
	clock_advance_to(m, 123456789); /* not zero: counting is relative to the load */
}

static void advance(uint64_t ns)
{
	clock_advance_to(m, clock_ns(m) + ns);
	mtimer_run_expired(m);
}

/* ticks of the 1.193182 MHz input in ns nanoseconds */
static uint64_t ticks(uint64_t ns)
{
	return ns * 1193182ull / 1000000000ull;
}

static unsigned read16(uint16_t port)
{
	unsigned lo = in8(port);
	return lo | (unsigned)in8(port) << 8;
}

static void test_count_and_latch(void)
{
	setup();
	out8(0x43, 0x34); /* ch0, lobyte/hibyte, mode 2, binary */
	out8(0x40, 11932 & 0xff);
	out8(0x40, 11932 >> 8);
	CHECK_EQ_U64(read16(0x40), 11932);
	advance(1000000);
	CHECK_EQ_U64(read16(0x40), 11932 - ticks(1000000));
	out8(0x43, 0x00); /* latch ch0 */
	advance(3000000);
	CHECK_EQ_U64(read16(0x40), 11932 - ticks(1000000)); /* the latched value */
	CHECK_EQ_U64(read16(0x40), 11932 - ticks(4000000)); /* live again */
	/* a second latch command before reading keeps the first */
	out8(0x43, 0x00);
	advance(1000000);
	out8(0x43, 0x00);
	CHECK_EQ_U64(read16(0x40), 11932 - ticks(4000000));
	/* mode 2 reloads: after a full period the count starts over */
	advance(5000000);
	CHECK_EQ_U64(read16(0x40), 11932 - (ticks(10000000) % 11932));
	machine_destroy(m);
}

static void test_readback_status(void)
{
	setup();
	out8(0x43, 0x34);
	CHECK((in8(0x43) == 0xff));	      /* the control register is write-only */
	out8(0x43, 0xe2);		      /* read-back: status of ch0 */
	CHECK_EQ_U64(in8(0x40), 0x40 | 0x34); /* null count until a count is written */
	out8(0x40, 0x00);
	out8(0x40, 0x10);
	advance(1000);
	out8(0x43, 0xe2);
	CHECK_EQ_U64(in8(0x40), 0x80 | 0x34); /* OUT high, count loaded */
	out8(0x43, 0xc2);		      /* status and count */
	CHECK_EQ_U64(in8(0x40), 0x80 | 0x34);
	CHECK_EQ_U64(read16(0x40), 0x1000 - ticks(1000));
	machine_destroy(m);
}

static void test_modes_bytes_bcd(void)
{
	setup();
	out8(0x43, 0x50); /* ch1, LSB only, mode 0 */
	out8(0x41, 0x80);
	CHECK_EQ_U64(in8(0x41), 0x80);
	advance(ticks(1) ? 0 : 0);
	out8(0x43, 0x61);	       /* ch1, MSB only, mode 0, BCD */
	out8(0x41, 0x12);	       /* 1200 decimal */
	advance(83810);		       /* 100 ticks */
	CHECK_EQ_U64(in8(0x41), 0x11); /* 1100, MSB in BCD */
	out8(0x43, 0x71);	       /* ch1, both bytes, mode 0, BCD */
	out8(0x41, 0x34);
	out8(0x41, 0x12);
	advance(83810);
	CHECK_EQ_U64(read16(0x41), 0x1134);
	machine_destroy(m);
}

static void test_ch2_gate_calibration(void)
{
	setup();
	/* what Linux's pit_calibrate_tsc does: gate high, speaker off, mode 0 */
	out8(0x61, (in8(0x61) & ~0x02) | 0x01);
	out8(0x43, 0xb0);
	out8(0x42, 1193 & 0xff);
	out8(0x42, 1193 >> 8);
	CHECK_EQ_U64(in8(0x61) & 0x21, 0x01); /* OUT2 low while counting */
	advance(999000);
	CHECK_EQ_U64(in8(0x61) & 0x20, 0);
	advance(1100); /* 1193 ticks are 999.8 us */
	CHECK_EQ_U64(in8(0x61) & 0x20, 0x20);
	/* the refresh toggle moves */
	uint8_t a = in8(0x61) & 0x10;
	advance(15085);
	CHECK((in8(0x61) & 0x10) != a);
	machine_destroy(m);
}

static void test_irq0(void)
{
	setup();
	/* the PIC routes IRQ 0 (virtual wire) after Linux's init */
	out8(0x20, 0x11);
	out8(0x21, 0x30);
	out8(0x21, 0x04);
	out8(0x21, 0x01);
	out8(0x21, 0xfe);
	advance(100000000);
	CHECK(!pic_output(&m->pic)); /* unprogrammed PIT: quiet */
	out8(0x43, 0x34);
	out8(0x40, 11932 & 0xff);
	out8(0x40, 11932 >> 8); /* 100 Hz: 11932 ticks = 10000151 ns */
	advance(10000100);
	CHECK(!pic_output(&m->pic));
	advance(100);
	CHECK(pic_output(&m->pic));
	CHECK_EQ_U64(intr_ack(m, 0), 0x30);
	out8(0x20, 0x20);
	unsigned n = 0;
	for (int k = 0; k < 100; k++) {
		advance(1000000);
		if (pic_output(&m->pic)) {
			n++;
			intr_ack(m, 0);
			out8(0x20, 0x20);
		}
	}
	CHECK_EQ_U64(n, 9); /* edges 2-10 (at k * 10000151 ns) fall in these 100 ms */
	/* one-shot (mode 0): one interrupt */
	out8(0x43, 0x30);
	out8(0x40, 0xe8);
	out8(0x40, 0x03); /* 1000 ticks */
	n = 0;
	for (int k = 0; k < 20; k++) {
		advance(1000000);
		if (pic_output(&m->pic)) {
			n++;
			intr_ack(m, 0);
			out8(0x20, 0x20);
		}
	}
	CHECK_EQ_U64(n, 1);
	machine_destroy(m);
}

int main(void)
{
	RUN(test_count_and_latch);
	RUN(test_readback_status);
	RUN(test_modes_bytes_bcd);
	RUN(test_ch2_gate_calibration);
	RUN(test_irq0);
	return test_report();
}
