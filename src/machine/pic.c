/* The 8259A PIC pair (master at 0x20, slave at 0xa0 on master input 2) and
 * the ELCR edge/level registers at 0x4d0-0x4d1. */
#include <errno.h>
#include <string.h>

#include "machine/machine_impl.h"
#include "state/stream.h"

/* Lowest priority number (0 = highest) among the bits of mask, counting
 * from the rotating base; 8 if none. */
static int pic_priority(const struct pic_chip *c, uint8_t mask)
{
	if (!mask)
		return 8;
	int p = 0;
	while (!(mask & (1u << ((p + c->priority_add) & 7))))
		p++;
	return p;
}

/* The input this chip would raise now, or -1. */
static int pic_get_irq(const struct pic_chip *c, int master)
{
	int p = pic_priority(c, c->irr & ~c->imr);
	if (p == 8)
		return -1;
	uint8_t in_service = c->isr;
	if (c->special_mask)
		in_service &= ~c->imr;
	/* Special fully nested: the slave may interrupt while one of its own
	 * inputs is in service, so the cascade input does not block. */
	if (c->special_fully_nested && master)
		in_service &= ~(1u << 2);
	if (p < pic_priority(c, in_service))
		return (p + c->priority_add) & 7;
	return -1;
}

static void chip_set_irq(struct pic_chip *c, unsigned irq, int level)
{
	uint8_t mask = 1u << irq;
	if (c->elcr & mask) {
		if (level) {
			c->irr |= mask;
			c->last_irr |= mask;
		} else {
			c->irr &= ~mask;
			c->last_irr &= ~mask;
		}
	} else if (level) {
		if (!(c->last_irr & mask))
			c->irr |= mask;
		c->last_irr |= mask;
	} else {
		c->last_irr &= ~mask;
	}
}

/* The slave's output is the master's input 2. */
static void pic_update(struct pic *p)
{
	chip_set_irq(&p->s.chip[0], 2, pic_get_irq(&p->s.chip[1], 0) >= 0);
}

void pic_set_irq(struct pic *p, unsigned irq, int level)
{
	if (irq >= 16)
		return;
	chip_set_irq(&p->s.chip[irq >> 3], irq & 7, level);
	pic_update(p);
}

int pic_output(struct pic *p)
{
	return pic_get_irq(&p->s.chip[0], 1) >= 0;
}

static void chip_intack(struct pic_chip *c, int irq)
{
	if (c->auto_eoi) {
		if (c->rotate_on_aeoi)
			c->priority_add = (irq + 1) & 7;
	} else {
		c->isr |= 1u << irq;
	}
	/* Edge-triggered requests are consumed; level ones stay while asserted. */
	if (!(c->elcr & (1u << irq)))
		c->irr &= ~(1u << irq);
}

int pic_intack(struct pic *p)
{
	struct pic_chip *m = &p->s.chip[0], *s = &p->s.chip[1];
	int irq = pic_get_irq(m, 1), vec;
	if (irq < 0) {
		/* The request went away before INTA: spurious IRQ 7 */
		vec = m->vector_base + 7;
	} else {
		chip_intack(m, irq);
		if (irq == 2) {
			int irq2 = pic_get_irq(s, 0);
			if (irq2 >= 0)
				chip_intack(s, irq2);
			else
				irq2 = 7;
			vec = s->vector_base + irq2;
		} else {
			vec = m->vector_base + irq;
		}
	}
	pic_update(p);
	return vec;
}

static void chip_init_reset(struct pic_chip *c)
{
	uint8_t elcr = c->elcr, elcr_mask = c->elcr_mask;
	memset(c, 0, sizeof(*c));
	c->elcr = elcr;
	c->elcr_mask = elcr_mask;
}

void pic_reset(struct pic *p)
{
	memset(&p->s, 0, sizeof(p->s));
	/* IRQ 0, 1, 2 (cascade), 8 and 13 are always edge-triggered */
	p->s.chip[0].elcr_mask = 0xf8;
	p->s.chip[1].elcr_mask = 0xde;
	/* As PC firmware leaves it: vectors 0x08 and 0x70, everything masked
	 * but the cascade. */
	p->s.chip[0].vector_base = 0x08;
	p->s.chip[1].vector_base = 0x70;
	p->s.chip[0].imr = 0xfb;
	p->s.chip[1].imr = 0xff;
}

static void chip_write(struct pic *p, struct pic_chip *c, uint64_t off, uint8_t val)
{
	if (off == 0) {
		if (val & 0x10) { /* ICW1 */
			chip_init_reset(c);
			c->init_state = 1;
			c->init4 = val & 1;
			c->single = (val >> 1) & 1;
		} else if (val & 0x08) { /* OCW3 */
			if (val & 0x04)
				c->poll = 1;
			if (val & 0x02)
				c->read_isr = val & 1;
			if (val & 0x40)
				c->special_mask = (val >> 5) & 1;
		} else { /* OCW2 */
			int cmd = val >> 5, irq, pri;
			switch (cmd) {
			case 0:
			case 4: c->rotate_on_aeoi = cmd >> 2; break;
			case 1: /* non-specific EOI */
			case 5: /* rotate on non-specific EOI */
				pri = pic_priority(c, c->isr);
				if (pri != 8) {
					irq = (pri + c->priority_add) & 7;
					c->isr &= ~(1u << irq);
					if (cmd == 5)
						c->priority_add = (irq + 1) & 7;
				}
				break;
			case 3: /* specific EOI */ c->isr &= ~(1u << (val & 7)); break;
			case 6: /* set priority */ c->priority_add = ((val & 7) + 1) & 7; break;
			case 7: /* rotate on specific EOI */
				c->isr &= ~(1u << (val & 7));
				c->priority_add = ((val & 7) + 1) & 7;
				break;
			default: break;
			}
		}
	} else {
		switch (c->init_state) {
		case 0: /* OCW1 */ c->imr = val; break;
		case 1: /* ICW2 */
			c->vector_base = val & 0xf8;
			c->irq_base_set = 1;
			c->init_state = c->single ? (c->init4 ? 3 : 0) : 2;
			break;
		case 2: /* ICW3 */ c->init_state = c->init4 ? 3 : 0; break;
		default: /* ICW4 */
			c->special_fully_nested = (val >> 4) & 1;
			c->auto_eoi = (val >> 1) & 1;
			c->init_state = 0;
			break;
		}
	}
	pic_update(p);
}

static uint8_t chip_read(struct pic *p, struct pic_chip *c, int master, uint64_t off)
{
	if (c->poll) {
		/* Poll mode: the read is the acknowledge (bit 7: an interrupt was there) */
		c->poll = 0;
		int irq = pic_get_irq(c, master);
		if (irq < 0)
			return 0x07;
		chip_intack(c, irq);
		pic_update(p);
		return (uint8_t)(irq | 0x80);
	}
	if (off == 0)
		return c->read_isr ? c->isr : c->irr;
	return c->imr;
}

static uint64_t pic1_rd(void *dev, uint64_t off, unsigned size)
{
	struct pic *p = dev;
	(void)size;
	return chip_read(p, &p->s.chip[0], 1, off & 1);
}

static void pic1_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct pic *p = dev;
	(void)size;
	chip_write(p, &p->s.chip[0], off & 1, (uint8_t)val);
}

static uint64_t pic2_rd(void *dev, uint64_t off, unsigned size)
{
	struct pic *p = dev;
	(void)size;
	return chip_read(p, &p->s.chip[1], 0, off & 1);
}

static void pic2_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct pic *p = dev;
	(void)size;
	chip_write(p, &p->s.chip[1], off & 1, (uint8_t)val);
}

static uint64_t elcr_rd(void *dev, uint64_t off, unsigned size)
{
	struct pic *p = dev;
	uint64_t v = p->s.chip[off & 1].elcr;
	if (size >= 2 && off == 0)
		v |= (uint64_t)p->s.chip[1].elcr << 8;
	return v;
}

static void elcr_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct pic *p = dev;
	for (unsigned k = 0; k < size && off + k < 2; k++) {
		struct pic_chip *c = &p->s.chip[off + k];
		c->elcr = (uint8_t)(val >> (8 * k)) & c->elcr_mask;
	}
	pic_update(p);
}

int pic_register(struct pic *p, struct machine *m)
{
	int err;
	p->m = m;
	pic_reset(p);
	if ((err = bus_register_pio(m, PORT_PIC1, 2, pic1_rd, pic1_wr, p)) < 0 ||
	    (err = bus_register_pio(m, PORT_PIC2, 2, pic2_rd, pic2_wr, p)) < 0 ||
	    (err = bus_register_pio(m, PORT_ELCR, 2, elcr_rd, elcr_wr, p)) < 0)
		return err;
	return 0;
}

/* Validate st (a hostile snapshot's) and commit it: 0, or -EINVAL with
 * the device unchanged. */
static int pic_commit(struct pic *p, struct pic_state *stp)
{
	struct pic_state st = *stp;
	static const uint8_t elcr_mask[2] = {0xf8, 0xde};
	for (int k = 0; k < 2; k++) {
		struct pic_chip *c = &st.chip[k];
		if (c->init_state > 3 || c->priority_add > 7 || (c->vector_base & 7))
			return -EINVAL;
		c->elcr_mask = elcr_mask[k];
		c->elcr &= c->elcr_mask;
		c->read_isr = !!c->read_isr;
		c->poll = !!c->poll;
		c->special_mask = !!c->special_mask;
		c->auto_eoi = !!c->auto_eoi;
		c->rotate_on_aeoi = !!c->rotate_on_aeoi;
		c->special_fully_nested = !!c->special_fully_nested;
		c->init4 = !!c->init4;
		c->single = !!c->single;
	}
	p->s = st;
	return 0;
}

void pic_state_save(const struct pic *p, struct state_writer *w)
{
	const struct pic_state *s = &p->s;
	for (unsigned k = 0; k < 2; k++) {
		state_put_u8(w, s->chip[k].irr);
		state_put_u8(w, s->chip[k].isr);
		state_put_u8(w, s->chip[k].imr);
		state_put_u8(w, s->chip[k].last_irr);
		state_put_u8(w, s->chip[k].vector_base);
		state_put_u8(w, s->chip[k].priority_add);
		state_put_u8(w, s->chip[k].irq_base_set);
		state_put_u8(w, s->chip[k].read_isr);
		state_put_u8(w, s->chip[k].poll);
		state_put_u8(w, s->chip[k].special_mask);
		state_put_u8(w, s->chip[k].init_state);
		state_put_u8(w, s->chip[k].auto_eoi);
		state_put_u8(w, s->chip[k].rotate_on_aeoi);
		state_put_u8(w, s->chip[k].special_fully_nested);
		state_put_u8(w, s->chip[k].init4);
		state_put_u8(w, s->chip[k].single);
		state_put_u8(w, s->chip[k].elcr);
	}
}

int pic_state_load(struct pic *p, struct state_reader *r)
{
	struct pic_state st = {0};
	for (unsigned k = 0; k < 2; k++) {
		st.chip[k].irr = state_get_u8(r);
		st.chip[k].isr = state_get_u8(r);
		st.chip[k].imr = state_get_u8(r);
		st.chip[k].last_irr = state_get_u8(r);
		st.chip[k].vector_base = state_get_u8(r);
		st.chip[k].priority_add = state_get_u8(r);
		st.chip[k].irq_base_set = state_get_u8(r);
		st.chip[k].read_isr = state_get_u8(r);
		st.chip[k].poll = state_get_u8(r);
		st.chip[k].special_mask = state_get_u8(r);
		st.chip[k].init_state = state_get_u8(r);
		st.chip[k].auto_eoi = state_get_u8(r);
		st.chip[k].rotate_on_aeoi = state_get_u8(r);
		st.chip[k].special_fully_nested = state_get_u8(r);
		st.chip[k].init4 = state_get_u8(r);
		st.chip[k].single = state_get_u8(r);
		st.chip[k].elcr = state_get_u8(r);
	}
	if (!state_section_done(r))
		return -EINVAL;
	if (pic_commit(p, &st) < 0) {
		state_fail(r, "pic: a value out of range");
		return -EINVAL;
	}
	return 0;
}
