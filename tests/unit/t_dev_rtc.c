/* The CMOS RTC through ports 0x70/0x71 on a frozen virtual clock, started
 * at Unix time 1700000000 (2023-11-14 22:13:20 UTC, a Tuesday): BCD and
 * binary, 12 and 24 hours, time advancing with the clock, UIP, register C,
 * periodic and update interrupts on IRQ 8, the guest setting the time, the
 * NMI mask bit, and the CMOS memory-size fields. */
#include <stdint.h>
#include <stdlib.h>

#include "machine/machine_impl.h"
#include "testhelp.h"

static struct machine *m;

static uint8_t cmos(uint8_t idx)
{
	bus_pio_write(m, 0x70, 1, idx);
	return (uint8_t)bus_pio_read(m, 0x71, 1);
}

static void cmos_set(uint8_t idx, uint8_t v)
{
	bus_pio_write(m, 0x70, 1, idx);
	bus_pio_write(m, 0x71, 1, v);
}

static void setup(uint64_t mem)
{
	struct machine_config cfg = {.mem_size = mem, .ncpus = 2, .serial_out_fd = -1, .rtc_host_sec = 1700000000};
	m = NULL;
	if (machine_create(&m, &cfg) < 0)
		abort();
	m->clock_manual = 1;
}

static void advance(uint64_t ns)
{
	clock_advance_to(m, clock_ns(m) + ns);
	mtimer_run_expired(m);
}

static void test_time_bcd_24h(void)
{
	setup(64 << 20);
	CHECK_EQ_U64(cmos(0x0b) & 0x06, 0x02); /* BCD, 24 h */
	CHECK_EQ_U64(cmos(0x00), 0x20);
	CHECK_EQ_U64(cmos(0x02), 0x13);
	CHECK_EQ_U64(cmos(0x04), 0x22);
	CHECK_EQ_U64(cmos(0x06), 0x03); /* Tuesday: Sunday is 1 */
	CHECK_EQ_U64(cmos(0x07), 0x14);
	CHECK_EQ_U64(cmos(0x08), 0x11);
	CHECK_EQ_U64(cmos(0x09), 0x23);
	CHECK_EQ_U64(cmos(0x32), 0x20); /* century */
	CHECK_EQ_U64(cmos(0x0d), 0x80); /* valid */
	advance(41ull * 1000000000ull); /* 22:14:01 */
	CHECK_EQ_U64(cmos(0x00), 0x01);
	CHECK_EQ_U64(cmos(0x02), 0x14);
	advance(2ull * 3600 * 1000000000ull); /* past midnight: 00:14:01 on the 15th */
	CHECK_EQ_U64(cmos(0x04), 0x00);
	CHECK_EQ_U64(cmos(0x07), 0x15);
	CHECK_EQ_U64(cmos(0x06), 0x04);
	machine_destroy(m);
}

static void test_binary_12h(void)
{
	setup(64 << 20);
	cmos_set(0x0b, 0x04);		     /* binary, 12 h */
	CHECK_EQ_U64(cmos(0x04), 0x80 | 10); /* 10 PM */
	CHECK_EQ_U64(cmos(0x02), 13);
	CHECK_EQ_U64(cmos(0x09), 23);
	cmos_set(0x0b, 0x00); /* BCD, 12 h */
	CHECK_EQ_U64(cmos(0x04), 0x90);
	advance(2ull * 3600 * 1000000000ull); /* 00:13 is 12 AM */
	CHECK_EQ_U64(cmos(0x04), 0x12);
	machine_destroy(m);
}

static void test_uip_and_set(void)
{
	setup(64 << 20);
	/* UIP is set in the last 244 us before each update */
	advance(999000000ull - clock_ns(m) % 1000000000ull);
	CHECK_EQ_U64(cmos(0x0a) & 0x80, 0);
	advance(800000);
	CHECK_EQ_U64(cmos(0x0a) & 0x80, 0x80);
	/* the guest sets 2030-01-02 03:04:05 */
	cmos_set(0x0b, 0x82);
	cmos_set(0x00, 0x05);
	cmos_set(0x02, 0x04);
	cmos_set(0x04, 0x03);
	cmos_set(0x07, 0x02);
	cmos_set(0x08, 0x01);
	cmos_set(0x09, 0x30);
	cmos_set(0x0b, 0x02);
	CHECK_EQ_U64(cmos(0x09), 0x30);
	CHECK_EQ_U64(cmos(0x08), 0x01);
	CHECK_EQ_U64(cmos(0x04), 0x03);
	advance(3000000000ull);
	CHECK_EQ_U64(cmos(0x00), 0x08);
	/* the NMI mask bit of port 0x70 does not change the index */
	bus_pio_write(m, 0x70, 1, 0x80 | 0x09);
	CHECK_EQ_U64(bus_pio_read(m, 0x71, 1), 0x30);
	CHECK_EQ_U64(m->rtc.s.nmi_masked, 1);
	machine_destroy(m);
}

static void test_interrupts(void)
{
	setup(64 << 20);
	bus_pio_write(m, 0x20, 1, 0x11); /* PIC as Linux sets it up */
	bus_pio_write(m, 0x21, 1, 0x30);
	bus_pio_write(m, 0x21, 1, 0x04);
	bus_pio_write(m, 0x21, 1, 0x01);
	bus_pio_write(m, 0xa0, 1, 0x11);
	bus_pio_write(m, 0xa1, 1, 0x38);
	bus_pio_write(m, 0xa1, 1, 0x02);
	bus_pio_write(m, 0xa1, 1, 0x01);
	bus_pio_write(m, 0x21, 1, 0xfb);
	bus_pio_write(m, 0xa1, 1, 0xfe); /* IRQ 8 only */
	(void)cmos(0x0c);
	advance(5000000000ull);
	CHECK(!pic_output(&m->pic));	       /* nothing enabled */
	CHECK_EQ_U64(cmos(0x0c) & 0x50, 0x50); /* but PF and UF were set */
	CHECK_EQ_U64(cmos(0x0c), 0);	       /* cleared by the read */
	/* periodic at 1024 Hz (rate 6) */
	cmos_set(0x0a, 0x26);
	cmos_set(0x0b, 0x42);
	unsigned n = 0;
	for (int k = 0; k < 1024; k++) {
		advance(976563);
		if (pic_output(&m->pic)) {
			n++;
			CHECK_EQ_U64(intr_ack(m, 0), 0x38);
			CHECK_EQ_U64(cmos(0x0c) & 0xc0, 0xc0); /* IRQF | PF */
			bus_pio_write(m, 0xa0, 1, 0x20);
			bus_pio_write(m, 0x20, 1, 0x20);
		}
	}
	CHECK(n >= 1023 && n <= 1025);
	/* update-ended interrupts: once a second */
	cmos_set(0x0b, 0x12);
	(void)cmos(0x0c);
	n = 0;
	for (int k = 0; k < 50; k++) {
		advance(100000000);
		if (pic_output(&m->pic)) {
			n++;
			intr_ack(m, 0);
			CHECK_EQ_U64(cmos(0x0c) & 0x90, 0x90);
			bus_pio_write(m, 0xa0, 1, 0x20);
			bus_pio_write(m, 0x20, 1, 0x20);
		}
	}
	CHECK_EQ_U64(n, 5);
	machine_destroy(m);
}

static void test_memory_fields(void)
{
	setup(512 << 20);
	CHECK_EQ_U64(cmos(0x15) | cmos(0x16) << 8, 640);
	CHECK_EQ_U64(cmos(0x17) | cmos(0x18) << 8, 0xfc00); /* capped at 63 MiB */
	CHECK_EQ_U64(cmos(0x30) | cmos(0x31) << 8, 0xfc00);
	CHECK_EQ_U64(cmos(0x34) | cmos(0x35) << 8, (512 - 16) * 16); /* 64 KiB units */
	CHECK_EQ_U64(cmos(0x5b) | cmos(0x5c) << 8 | cmos(0x5d) << 16, 0);
	CHECK_EQ_U64(cmos(0x5f), 1); /* 2 CPUs */
	machine_destroy(m);
	setup(MEM_LOW_END + (1ull << 30));
	CHECK_EQ_U64(cmos(0x34) | cmos(0x35) << 8, (uint64_t)(MEM_LOW_END - (16 << 20)) >> 16);
	CHECK_EQ_U64(cmos(0x5b) | cmos(0x5c) << 8 | cmos(0x5d) << 16, (1ull << 30) >> 16);
	machine_destroy(m);
}

int main(void)
{
	RUN(test_time_bcd_24h);
	RUN(test_binary_12h);
	RUN(test_uip_and_set);
	RUN(test_interrupts);
	RUN(test_memory_fields);
	return test_report();
}
