/* The IOAPIC and the LAPICs through their MMIO windows and MSRs: redirection
 * entries, edge/level with remote IRR and EOI broadcast, destinations,
 * priorities, IPIs incl. INIT/SIPI, the LVT timer's arithmetic in all three
 * modes, x2APIC. Expected values follow the Intel SDM vol. 3A ch. 11 and
 * the 82093AA IOAPIC datasheet. */
#include <stdint.h>
#include <stdlib.h>

#include "machine/machine_impl.h"
#include "testhelp.h"

static struct machine *m;

static void setup(unsigned ncpus)
{
	struct machine_config cfg = {.mem_size = 16 << 20, .ncpus = ncpus, .serial_out_fd = -1};
	m = NULL;
	if (machine_create(&m, &cfg) < 0)
		abort();
	m->clock_manual = 1;
}

static uint32_t apic_rd(unsigned cpu, unsigned reg)
{
	m->cur_cpu = cpu;
	return (uint32_t)bus_mmio_read(m, MEM_LAPIC_BASE + reg, 4);
}

static void apic_wr(unsigned cpu, unsigned reg, uint32_t v)
{
	m->cur_cpu = cpu;
	bus_mmio_write(m, MEM_LAPIC_BASE + reg, 4, v);
}

static uint32_t io_rd(unsigned reg)
{
	bus_mmio_write(m, MEM_IOAPIC_BASE, 4, reg);
	return (uint32_t)bus_mmio_read(m, MEM_IOAPIC_BASE + 0x10, 4);
}

static void io_wr(unsigned reg, uint32_t v)
{
	bus_mmio_write(m, MEM_IOAPIC_BASE, 4, reg);
	bus_mmio_write(m, MEM_IOAPIC_BASE + 0x10, 4, v);
}

static void io_route(unsigned pin, uint32_t lo, uint8_t dest)
{
	io_wr(0x10 + 2 * pin + 1, (uint32_t)dest << 24);
	io_wr(0x10 + 2 * pin, lo);
}

static void apic_enable(unsigned cpu)
{
	apic_wr(cpu, 0xf0, 0x1ff);
	apic_wr(cpu, 0x350, 0x10000); /* LINT0 masked: the IOAPIC is in charge */
}

static void advance(uint64_t ns)
{
	clock_advance_to(m, clock_ns(m) + ns);
	mtimer_run_expired(m);
}

static void test_ioapic_regs(void)
{
	setup(1);
	CHECK_EQ_U64(io_rd(1), 0x00170020); /* 24 pins, version 0x20 */
	io_wr(0, 0x0a000000);
	CHECK_EQ_U64(io_rd(0), 0x0a000000);
	for (unsigned pin = 0; pin < 24; pin++)
		CHECK_EQ_U64(io_rd(0x10 + 2 * pin), 0x10000); /* masked after reset */
	io_route(5, 0x0000a035, 0x12);
	CHECK_EQ_U64(io_rd(0x10 + 10), 0x0000a035);
	CHECK_EQ_U64(io_rd(0x10 + 11), 0x12000000);
	io_wr(0x10 + 10, 0x5000 | 0x30); /* status and remote IRR are read-only */
	CHECK_EQ_U64(io_rd(0x10 + 10), 0x30);
	CHECK_EQ_U64(io_rd(0x80), 0xffffffff); /* no such register */
	machine_destroy(m);
}

static void test_ioapic_edge(void)
{
	setup(1);
	apic_enable(0);
	io_route(4, 0x41, 0); /* COM1 pin: vector 0x41, fixed, physical 0 */
	irq_set_level(m, 4, 1);
	CHECK(intr_pending(m, 0));
	CHECK_EQ_U64(intr_ack(m, 0), 0x41);
	CHECK(!intr_pending(m, 0));
	irq_set_level(m, 4, 1); /* no new edge */
	CHECK(!intr_pending(m, 0));
	irq_set_level(m, 4, 0);
	apic_wr(0, 0xb0, 0);
	/* IRQ 0 goes to pin 2 */
	io_route(2, 0x30, 0);
	irq_pulse(m, 0);
	CHECK_EQ_U64(intr_ack(m, 0), 0x30);
	apic_wr(0, 0xb0, 0);
	/* masked: the edge is lost */
	io_route(3, 0x10033, 0);
	irq_pulse(m, 3);
	io_route(3, 0x33, 0);
	CHECK(!intr_pending(m, 0));
	machine_destroy(m);
}

static void test_ioapic_level(void)
{
	setup(1);
	apic_enable(0);
	io_route(9, 0xa039, 0); /* level, active low, vector 0x39 */
	irq_set_level(m, 9, 1);
	CHECK_EQ_U64(io_rd(0x10 + 18) & 0x4000, 0x4000);	   /* remote IRR */
	CHECK_EQ_U64(apic_rd(0, 0x180 + 0x10), 1u << (0x39 - 32)); /* TMR bit */
	CHECK_EQ_U64(intr_ack(m, 0), 0x39);
	apic_wr(0, 0xb0, 0); /* EOI, still asserted: delivered again */
	CHECK_EQ_U64(io_rd(0x10 + 18) & 0x4000, 0x4000);
	CHECK_EQ_U64(intr_ack(m, 0), 0x39);
	irq_set_level(m, 9, 0);
	apic_wr(0, 0xb0, 0);
	CHECK_EQ_U64(io_rd(0x10 + 18) & 0x4000, 0);
	CHECK(!intr_pending(m, 0));
	/* the IOAPIC's own EOI register (version 0x20) */
	irq_set_level(m, 9, 1);
	CHECK_EQ_U64(intr_ack(m, 0), 0x39);
	irq_set_level(m, 9, 0);
	bus_mmio_write(m, MEM_IOAPIC_BASE + 0x40, 4, 0x39);
	CHECK_EQ_U64(io_rd(0x10 + 18) & 0x4000, 0);
	machine_destroy(m);
}

static void test_destinations(void)
{
	setup(4);
	for (unsigned k = 0; k < 4; k++) {
		apic_enable(k);
		apic_wr(k, 0xe0, 0xffffffff);	   /* flat model */
		apic_wr(k, 0xd0, (1u << k) << 24); /* logical ID bit k */
	}
	CHECK_EQ_U64(apic_rd(2, 0x20), 2u << 24); /* APIC IDs are the vCPU numbers */
	io_route(10, 0x0850, 0x0a);		  /* logical, CPUs 1 and 3 */
	irq_pulse(m, 10);
	CHECK(!intr_pending(m, 0) && intr_pending(m, 1) && !intr_pending(m, 2) && intr_pending(m, 3));
	io_route(11, 0x51, 2); /* physical 2 */
	irq_pulse(m, 11);
	CHECK(intr_pending(m, 2));
	CHECK_EQ_U64(intr_ack(m, 2), 0x51);
	/* lowest priority: the one with the lowest TPR among 0-3 */
	for (unsigned k = 0; k < 4; k++)
		apic_wr(k, 0x80, k == 2 ? 0x10 : 0x20);
	io_route(12, 0x0952, 0x0f);
	irq_pulse(m, 12);
	CHECK_EQ_U64(apic_rd(2, 0x200 + 0x20), 1u << (0x52 - 64));
	CHECK_EQ_U64(apic_rd(0, 0x200 + 0x20), 0);
	/* cluster model: cluster 1, CPU bit 0 matches LDR 0x11 */
	apic_wr(1, 0xe0, 0x0fffffff);
	apic_wr(1, 0xd0, 0x11000000);
	apic_wr(0, 0xe0, 0x0fffffff);
	apic_wr(0, 0xd0, 0x21000000);
	io_route(13, 0x0853, 0x11);
	irq_pulse(m, 13);
	CHECK_EQ_U64(apic_rd(1, 0x200 + 0x20) & (1u << (0x53 - 64)), 1u << (0x53 - 64));
	CHECK_EQ_U64(apic_rd(0, 0x200 + 0x20) & (1u << (0x53 - 64)), 0);
	machine_destroy(m);
}

static void test_priorities(void)
{
	setup(1);
	apic_enable(0);
	apic_wr(0, 0x80, 0x50); /* TPR class 5 */
	CHECK_EQ_U64(apic_rd(0, 0xa0), 0x50);
	apic_wr(0, 0x300, 0x40045); /* self IPI 0x45 */
	CHECK(!intr_pending(m, 0)); /* class 4 <= 5: held */
	apic_wr(0, 0x300, 0x40065);
	CHECK_EQ_U64(intr_ack(m, 0), 0x65);
	CHECK_EQ_U64(apic_rd(0, 0xa0), 0x60); /* PPR: the in-service class */
	apic_wr(0, 0x80, 0);
	CHECK(!intr_pending(m, 0)); /* 0x45 is below 0x65 in service */
	apic_wr(0, 0x300, 0x40070);
	CHECK_EQ_U64(intr_ack(m, 0), 0x70); /* nests above */
	apic_wr(0, 0xb0, 0);		    /* EOI ends 0x70 */
	CHECK_EQ_U64(apic_rd(0, 0x100 + 0x30), 1u << (0x65 - 96));
	apic_wr(0, 0xb0, 0);
	CHECK_EQ_U64(intr_ack(m, 0), 0x45);
	apic_wr(0, 0xb0, 0);
	/* illegal vector: ESR after a write */
	apic_wr(0, 0x300, 0x40005);
	apic_wr(0, 0x280, 0);
	CHECK(apic_rd(0, 0x280) & 0x60);
	CHECK(!intr_pending(m, 0));
	/* software disable: fixed interrupts are not accepted, LVTs masked */
	apic_wr(0, 0xf0, 0xff);
	CHECK_EQ_U64(apic_rd(0, 0x320) & 0x10000, 0x10000);
	apic_wr(0, 0x300, 0x40066);
	CHECK(!intr_pending(m, 0));
	machine_destroy(m);
}

static void test_ipis(void)
{
	setup(3);
	for (unsigned k = 0; k < 3; k++)
		apic_enable(k);
	uint8_t vec = 0;
	apic_wr(0, 0x310, 1u << 24);
	apic_wr(0, 0x300, 0x4500); /* INIT assert to CPU 1 */
	CHECK_EQ_U64(vcpu_take_requests(m, 1, &vec), VCPU_REQ_INIT);
	apic_wr(0, 0x300, 0x8500); /* INIT de-assert: nothing */
	CHECK_EQ_U64(vcpu_take_requests(m, 1, &vec), 0);
	apic_wr(0, 0x300, 0x4609); /* SIPI vector 9 */
	CHECK_EQ_U64(vcpu_take_requests(m, 1, &vec), VCPU_REQ_SIPI);
	CHECK_EQ_U64(vec, 9);
	CHECK_EQ_U64(apic_rd(0, 0x300) & 0x1000, 0); /* delivery status idle */
	apic_wr(0, 0x300, 0xc0040);		     /* all excluding self, vector 0x40 */
	CHECK(!intr_pending(m, 0) && intr_pending(m, 1) && intr_pending(m, 2));
	apic_wr(0, 0x300, 0x80041); /* all including self */
	CHECK(intr_pending(m, 0));
	apic_wr(2, 0x310, 0);
	apic_wr(2, 0x300, 0x0400); /* NMI to CPU 0 */
	CHECK_EQ_U64(vcpu_take_requests(m, 0, NULL), VCPU_REQ_NMI);
	CHECK_EQ_U64(vcpu_take_requests(m, 2, NULL), 0);
	machine_destroy(m);
}

static void test_timer(void)
{
	setup(1);
	apic_enable(0);
	/* divide configuration: 0b1011 is 1, 0b0000 is 2, 0b1010 is 128 */
	apic_wr(0, 0x3e0, 0xb);
	apic_wr(0, 0x320, 0x20);    /* one-shot, vector 0x20 */
	apic_wr(0, 0x380, 1000000); /* 1 ms at the 1 GHz bus clock */
	CHECK_EQ_U64(apic_rd(0, 0x390), 1000000);
	advance(250000);
	CHECK_EQ_U64(apic_rd(0, 0x390), 750000);
	CHECK(!intr_pending(m, 0));
	advance(750000);
	CHECK_EQ_U64(apic_rd(0, 0x390), 0);
	CHECK_EQ_U64(intr_ack(m, 0), 0x20);
	apic_wr(0, 0xb0, 0);
	advance(5000000);
	CHECK(!intr_pending(m, 0)); /* one-shot: once */

	apic_wr(0, 0x3e0, 0xa);	    /* divide by 128 */
	apic_wr(0, 0x320, 0x20021); /* periodic, vector 0x21 */
	apic_wr(0, 0x380, 10000);   /* 1.28 ms period */
	advance(640000);
	CHECK_EQ_U64(apic_rd(0, 0x390), 5000);
	unsigned n = 0;
	for (int k = 0; k < 10; k++) {
		advance(1280000);
		if (intr_pending(m, 0)) {
			n++;
			CHECK_EQ_U64(intr_ack(m, 0), 0x21);
			apic_wr(0, 0xb0, 0);
		}
	}
	CHECK_EQ_U64(n, 10);
	apic_wr(0, 0x320, 0x21); /* one-shot again (stops the timer) */
	apic_wr(0, 0x3e0, 0x0);	 /* divide by 2: count runs at 500 MHz */
	apic_wr(0, 0x380, 1000);
	advance(1000);
	CHECK_EQ_U64(apic_rd(0, 0x390), 500);
	apic_wr(0, 0x380, 0); /* count 0 stops it */
	advance(10000000);
	CHECK(!intr_pending(m, 0));
	CHECK_EQ_U64(apic_rd(0, 0x390), 0);

	/* masked timer: counts but does not interrupt */
	apic_wr(0, 0x320, 0x10022);
	apic_wr(0, 0x3e0, 0xb);
	apic_wr(0, 0x380, 1000);
	advance(2000);
	CHECK(!intr_pending(m, 0));

	/* TSC-deadline: the TSC counts nanoseconds of virtual time */
	apic_wr(0, 0x320, 0x40023);
	uint64_t v = 1;
	CHECK(lapic_msr_read(m, 0, 0x6e0, &v) == 0 && v == 0);
	CHECK(lapic_msr_write(m, 0, 0x6e0, clock_ns(m) + 3000) == 0);
	advance(2999);
	CHECK(!intr_pending(m, 0));
	advance(1);
	CHECK_EQ_U64(intr_ack(m, 0), 0x23);
	CHECK(lapic_msr_read(m, 0, 0x6e0, &v) == 0 && v == 0); /* disarmed once fired */
	machine_destroy(m);
}

static void test_x2apic(void)
{
	setup(2);
	uint64_t v = 0;
	CHECK(lapic_msr_read(m, 1, 0x802, &v) == -1); /* xAPIC mode: #GP */
	CHECK(lapic_msr_read(m, 1, 0x1b, &v) == 0);
	CHECK_EQ_U64(v, 0xfee00800); /* AP: no BSP bit */
	CHECK(lapic_msr_read(m, 0, 0x1b, &v) == 0);
	CHECK_EQ_U64(v, 0xfee00900);
	CHECK(lapic_msr_write(m, 1, 0x1b, 0xfee00400) == -1); /* EXTD without EN */
	CHECK(lapic_msr_write(m, 1, 0x1b, 0xfee00c00) == 0);
	CHECK(lapic_msr_read(m, 1, 0x802, &v) == 0 && v == 1);
	CHECK(lapic_msr_read(m, 1, 0x80d, &v) == 0 && v == 0x2); /* cluster 0, bit 1 */
	CHECK(lapic_msr_write(m, 1, 0x1b, 0xfee00800) == -1);	 /* x2APIC -> xAPIC directly */
	m->cur_cpu = 1;
	CHECK_EQ_U64(bus_mmio_read(m, MEM_LAPIC_BASE + 0x20, 4), 0xffffffff); /* MMIO off */
	CHECK(lapic_msr_write(m, 1, 0x80f, 0x1ff) == 0);
	CHECK(lapic_msr_write(m, 1, 0x83f, 0x77) == 0); /* SELF IPI */
	CHECK_EQ_U64(intr_ack(m, 1), 0x77);
	CHECK(lapic_msr_write(m, 1, 0x80b, 1) == -1); /* EOI must be 0 */
	CHECK(lapic_msr_write(m, 1, 0x80b, 0) == 0);
	CHECK(lapic_msr_write(m, 1, 0x802, 5) == -1); /* ID is read-only */
	apic_enable(0);
	CHECK(lapic_msr_write(m, 1, 0x830, (0ull << 32) | 0x4061) == 0); /* IPI to APIC 0 */
	CHECK_EQ_U64(intr_ack(m, 0), 0x61);
	/* CR8 reaches the TPR in either mode */
	CHECK(lapic_msr_write(m, 0, 0x808, 0x30) == 0);
	CHECK_EQ_U64(apic_rd(0, 0x80), 0x30);
	machine_destroy(m);
}

static void test_pic_virtual_wire(void)
{
	setup(2);
	/* firmware state: LINT0 ExtINT on the BSP; program the PIC as Linux does */
	bus_pio_write(m, 0x20, 1, 0x11);
	bus_pio_write(m, 0x21, 1, 0x30);
	bus_pio_write(m, 0x21, 1, 0x04);
	bus_pio_write(m, 0x21, 1, 0x01);
	bus_pio_write(m, 0x21, 1, 0xfe);
	irq_pulse(m, 0);
	CHECK(intr_pending(m, 0));
	CHECK(!intr_pending(m, 1)); /* only the BSP's LINT0 */
	CHECK_EQ_U64(intr_ack(m, 0), 0x30);
	bus_pio_write(m, 0x20, 1, 0x20);
	apic_wr(0, 0x350, 0x10700); /* LINT0 masked: the PIC is cut off */
	irq_pulse(m, 0);
	CHECK(!intr_pending(m, 0));
	machine_destroy(m);
}

int main(void)
{
	RUN(test_ioapic_regs);
	RUN(test_ioapic_edge);
	RUN(test_ioapic_level);
	RUN(test_destinations);
	RUN(test_priorities);
	RUN(test_ipis);
	RUN(test_timer);
	RUN(test_x2apic);
	RUN(test_pic_virtual_wire);
	return test_report();
}
