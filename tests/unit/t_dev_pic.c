/* The 8259A pair through its ports, as Linux programs it: initialisation
 * words, masks, priorities and nesting, EOIs, the cascade, ELCR level
 * triggering, auto-EOI, poll mode, special mask mode, spurious IRQ 7.
 * Expected values follow the 8259A datasheet. */
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

/* Linux's init_8259A(0): master at 0x30, slave at 0x38, cascade on IR2. */
static void linux_init(int auto_eoi)
{
	out8(0x21, 0xff);
	out8(0xa1, 0xff);
	out8(0x20, 0x11);
	out8(0x21, 0x30);
	out8(0x21, 0x04);
	out8(0x21, auto_eoi ? 0x03 : 0x01);
	out8(0xa0, 0x11);
	out8(0xa1, 0x38);
	out8(0xa1, 0x02);
	out8(0xa1, 0x01);
	out8(0x21, 0x00); /* unmask all */
	out8(0xa1, 0x00);
}

static void setup(void)
{
	struct machine_config cfg = {.mem_size = 16 << 20, .ncpus = 1, .serial_out_fd = -1};
	m = NULL;
	if (machine_create(&m, &cfg) < 0)
		abort();
}

static void test_firmware_state(void)
{
	setup();
	/* as firmware leaves it: everything but the cascade masked */
	CHECK_EQ_U64(in8(0x21), 0xfb);
	CHECK_EQ_U64(in8(0xa1), 0xff);
	irq_set_level(m, 3, 1);
	CHECK(!pic_output(&m->pic));
	machine_destroy(m);
}

static void test_edge_and_eoi(void)
{
	setup();
	linux_init(0);
	CHECK(!pic_output(&m->pic));
	irq_pulse(m, 3);
	CHECK(pic_output(&m->pic));
	CHECK_EQ_U64(in8(0x20) & 0x08, 0x08); /* IRR bit 3 (reads IRR after init) */
	CHECK_EQ_U64(pic_intack(&m->pic), 0x33);
	CHECK(!pic_output(&m->pic));
	out8(0x20, 0x0b); /* OCW3: read ISR */
	CHECK_EQ_U64(in8(0x20), 0x08);
	out8(0x20, 0x20); /* non-specific EOI */
	CHECK_EQ_U64(in8(0x20), 0x00);
	out8(0x20, 0x0a); /* back to IRR */
	CHECK_EQ_U64(in8(0x20), 0x00);
	machine_destroy(m);
}

static void test_priority_nesting(void)
{
	setup();
	linux_init(0);
	irq_pulse(m, 5);
	irq_pulse(m, 1);
	CHECK_EQ_U64(pic_intack(&m->pic), 0x31); /* lower number first */
	CHECK_EQ_U64(pic_intack(&m->pic), 0x37); /* 5 is blocked by 1 in service: spurious 7 */
	machine_destroy(m);

	setup();
	linux_init(0);
	irq_pulse(m, 5);
	CHECK_EQ_U64(pic_intack(&m->pic), 0x35);
	irq_pulse(m, 6);
	CHECK(!pic_output(&m->pic)); /* 6 waits behind 5 in service */
	irq_pulse(m, 4);
	CHECK(pic_output(&m->pic)); /* 4 preempts */
	CHECK_EQ_U64(pic_intack(&m->pic), 0x34);
	out8(0x20, 0x20); /* EOI ends 4 (the highest in service) */
	CHECK(!pic_output(&m->pic));
	out8(0x20, 0x65); /* specific EOI for 5 */
	CHECK(pic_output(&m->pic));
	CHECK_EQ_U64(pic_intack(&m->pic), 0x36);
	machine_destroy(m);
}

static void test_masks(void)
{
	setup();
	linux_init(0);
	out8(0x21, 0x08);
	CHECK_EQ_U64(in8(0x21), 0x08);
	irq_pulse(m, 3);
	CHECK(!pic_output(&m->pic));
	out8(0x21, 0x00); /* the latched edge is delivered on unmask */
	CHECK(pic_output(&m->pic));
	CHECK_EQ_U64(pic_intack(&m->pic), 0x33);
	machine_destroy(m);
}

static void test_cascade(void)
{
	setup();
	linux_init(0);
	irq_pulse(m, 10);
	CHECK(pic_output(&m->pic));
	CHECK_EQ_U64(pic_intack(&m->pic), 0x3a);
	out8(0xa0, 0x0b);
	CHECK_EQ_U64(in8(0xa0), 0x04);
	out8(0x20, 0x0b);
	CHECK_EQ_U64(in8(0x20), 0x04); /* the master has IR2 in service */
	/* the slave's masks */
	out8(0xa0, 0x20);
	out8(0x20, 0x20);
	out8(0xa1, 0x01);
	irq_pulse(m, 8);
	CHECK(!pic_output(&m->pic));
	machine_destroy(m);
}

static void test_level_elcr(void)
{
	setup();
	linux_init(0);
	out8(0x4d0, 0xff);
	out8(0x4d1, 0xff);
	CHECK_EQ_U64(in8(0x4d0), 0xf8); /* IRQ 0-2 cannot be level */
	CHECK_EQ_U64(in8(0x4d1), 0xde); /* nor 8 and 13 */
	out8(0x4d0, 0x00);
	out8(0x4d1, 0x02); /* IRQ 9 level, the rest edge */
	irq_set_level(m, 9, 1);
	CHECK_EQ_U64(pic_intack(&m->pic), 0x39);
	out8(0xa0, 0x20);
	out8(0x20, 0x20);
	CHECK(pic_output(&m->pic)); /* still asserted: again */
	irq_set_level(m, 9, 0);
	/* deasserted before INTA: only a spurious IRQ 15 is left, nothing in service */
	CHECK_EQ_U64(pic_intack(&m->pic), 0x3f);
	CHECK(!pic_output(&m->pic));
	out8(0xa0, 0x0b);
	CHECK_EQ_U64(in8(0xa0), 0x00);
	out8(0x20, 0x20); /* the master did put IR2 in service: Linux EOIs it */
	/* an edge IRQ held high does not repeat */
	irq_set_level(m, 3, 1);
	CHECK_EQ_U64(pic_intack(&m->pic), 0x33);
	out8(0x20, 0x20);
	CHECK(!pic_output(&m->pic));
	irq_set_level(m, 3, 0);
	machine_destroy(m);
}

static void test_auto_eoi_poll_spurious(void)
{
	setup();
	linux_init(1);
	irq_pulse(m, 4);
	CHECK_EQ_U64(pic_intack(&m->pic), 0x34);
	out8(0x20, 0x0b);
	CHECK_EQ_U64(in8(0x20), 0x00); /* auto-EOI: nothing in service */
	machine_destroy(m);

	setup();
	linux_init(0);
	irq_pulse(m, 6);
	out8(0x20, 0x0c); /* OCW3 poll */
	CHECK_EQ_U64(in8(0x20), 0x86);
	out8(0x20, 0x0c);
	CHECK_EQ_U64(in8(0x20) & 0x80, 0); /* nothing more (6 in service) */
	out8(0x20, 0x20);
	/* the request disappears between INTR and INTA: spurious IRQ 7 */
	out8(0x4d0, 0x20);
	irq_set_level(m, 5, 1);
	CHECK(pic_output(&m->pic));
	irq_set_level(m, 5, 0);
	CHECK_EQ_U64(pic_intack(&m->pic), 0x37);
	out8(0x20, 0x0b);
	CHECK_EQ_U64(in8(0x20), 0x00); /* a spurious IRQ is not put in service */
	/* the same on the slave: spurious IRQ 15 */
	out8(0x4d1, 0x02);
	irq_set_level(m, 9, 1);
	irq_set_level(m, 9, 0);
	CHECK_EQ_U64(pic_intack(&m->pic), 0x3f);
	out8(0xa0, 0x0b);
	CHECK_EQ_U64(in8(0xa0), 0x00);
	machine_destroy(m);
}

static void test_special_mask(void)
{
	setup();
	linux_init(0);
	irq_pulse(m, 3);
	CHECK_EQ_U64(pic_intack(&m->pic), 0x33);
	irq_pulse(m, 5);
	CHECK(!pic_output(&m->pic));
	out8(0x21, 0x08);	    /* mask 3 ... */
	out8(0x20, 0x68);	    /* ... and enter special mask mode */
	CHECK(pic_output(&m->pic)); /* now lower priorities get through */
	CHECK_EQ_U64(pic_intack(&m->pic), 0x35);
	machine_destroy(m);
}

static void test_rotation(void)
{
	setup();
	linux_init(0);
	out8(0x20, 0xc4); /* set priority: IR4 lowest, IR5 highest */
	irq_pulse(m, 1);
	irq_pulse(m, 6);
	CHECK_EQ_U64(pic_intack(&m->pic), 0x36);
	machine_destroy(m);
}

int main(void)
{
	RUN(test_firmware_state);
	RUN(test_edge_and_eoi);
	RUN(test_priority_nesting);
	RUN(test_masks);
	RUN(test_cascade);
	RUN(test_level_elcr);
	RUN(test_auto_eoi_poll_spurious);
	RUN(test_special_mask);
	RUN(test_rotation);
	return test_report();
}
