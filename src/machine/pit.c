/* The 8254 PIT at 0x40-0x43 (channel 0 on IRQ 0, channel 2 gated by port
 * 0x61 for calibration loops). Counters are computed from the virtual clock
 * when read; only channel 0's interrupt edges arm a timer. */
#include <errno.h>
#include <string.h>

#include "machine/machine_impl.h"
#include "state/stream.h"

enum { RW_LSB = 1, RW_MSB = 2, RW_WORD0 = 3, RW_WORD1 = 4 };

static uint64_t pit_ticks(const struct pit_channel *c, uint64_t now)
{
	if (now <= c->load_time)
		return 0;
	return (uint64_t)((unsigned __int128)(now - c->load_time) * PIT_HZ / 1000000000ull);
}

/* clock_ns at which tick n (counted from the load) happens */
static uint64_t pit_tick_time(const struct pit_channel *c, uint64_t n)
{
	unsigned __int128 ns = ((unsigned __int128)n * 1000000000ull + PIT_HZ - 1) / PIT_HZ;
	return c->load_time + (uint64_t)ns;
}

static uint32_t pit_count_now(const struct pit_channel *c, uint64_t now)
{
	uint64_t d = pit_ticks(c, now);
	switch (c->mode) {
	case 2: return c->count - (uint32_t)(d % c->count);
	case 3: return c->count - (uint32_t)((2 * d) % c->count);
	default: return (uint32_t)((c->count - d) & 0xffff);
	}
}

static int pit_out_now(const struct pit_channel *c, uint64_t now)
{
	uint64_t d = pit_ticks(c, now);
	switch (c->mode) {
	case 0: return d >= c->count;
	case 1: return d < c->count;
	case 2: return (d % c->count) != 0 || d == 0;
	case 3: return (d % c->count) < ((c->count + 1) >> 1);
	default: /* 4, 5: strobe low for one clock at terminal count */ return d != c->count;
	}
}

int pit_get_out(struct pit *p, unsigned ch)
{
	if (ch > 2)
		return 0;
	return pit_out_now(&p->s.ch[ch], clock_ns(p->m));
}

/* The next rising edge of channel 0's output, as clock_ns; 0 if none. */
static uint64_t pit_next_edge(const struct pit_channel *c, uint64_t now)
{
	uint64_t d = pit_ticks(c, now);
	switch (c->mode) {
	case 0: return d < c->count ? pit_tick_time(c, c->count) : 0;
	case 2:
	case 3: return pit_tick_time(c, (d / c->count + 1) * c->count);
	case 4: return d <= c->count ? pit_tick_time(c, c->count + 1) : 0;
	default: return 0; /* 1, 5: need a gate edge, and channel 0's gate is tied high */
	}
}

static void pit_arm(struct pit *p)
{
	struct pit_channel *c = &p->s.ch[0];
	c->next_irq = c->null_count ? 0 : pit_next_edge(c, clock_ns(p->m));
	if (c->next_irq)
		mtimer_arm(p->timer, c->next_irq);
	else
		mtimer_cancel(p->timer);
}

static void pit_timer_fire(void *opaque)
{
	struct pit *p = opaque;
	irq_pulse(p->m, 0);
	pit_arm(p);
}

static uint32_t from_bcd16(uint32_t v)
{
	return (v & 0xf) + ((v >> 4) & 0xf) * 10 + ((v >> 8) & 0xf) * 100 + ((v >> 12) & 0xf) * 1000;
}

static uint32_t to_bcd16(uint32_t v)
{
	v %= 10000;
	return (v % 10) | ((v / 10 % 10) << 4) | ((v / 100 % 10) << 8) | ((v / 1000) << 12);
}

static void pit_load_count(struct pit *p, unsigned ch, uint32_t val)
{
	struct pit_channel *c = &p->s.ch[ch];
	if (c->bcd) {
		val = from_bcd16(val);
		if (val == 0)
			val = 10000;
	} else if (val == 0) {
		val = 0x10000;
	}
	c->count = val;
	c->load_time = clock_ns(p->m);
	c->null_count = 0;
	if (ch == 0)
		pit_arm(p);
}

static void pit_latch_count(struct pit *p, struct pit_channel *c)
{
	if (c->latch_state)
		return;
	uint32_t v = c->null_count ? c->count : pit_count_now(c, clock_ns(p->m));
	c->latched = (uint16_t)(c->bcd ? to_bcd16(v) : v);
	c->latch_state = c->rw_mode;
}

static void pit_latch_status(struct pit *p, struct pit_channel *c)
{
	if (c->status_latched)
		return;
	int out = c->null_count ? 0 : pit_out_now(c, clock_ns(p->m));
	c->status = (uint8_t)((out << 7) | (c->null_count << 6) | (c->rw_mode << 4) | (c->mode << 1) | c->bcd);
	c->status_latched = 1;
}

static void pit_control(struct pit *p, uint8_t val)
{
	unsigned ch = val >> 6;
	if (ch == 3) { /* read-back: bit 5 clear latches counts, bit 4 clear statuses */
		for (unsigned k = 0; k < 3; k++) {
			if (!(val & (2u << k)))
				continue;
			if (!(val & 0x20))
				pit_latch_count(p, &p->s.ch[k]);
			if (!(val & 0x10))
				pit_latch_status(p, &p->s.ch[k]);
		}
		return;
	}
	struct pit_channel *c = &p->s.ch[ch];
	unsigned access = (val >> 4) & 3;
	if (access == 0) {
		pit_latch_count(p, c);
		return;
	}
	c->rw_mode = (uint8_t)access;
	c->read_state = c->write_state = (uint8_t)access;
	c->mode = (val >> 1) & 7;
	if (c->mode > 5)
		c->mode -= 4; /* 6, 7 are aliases of 2, 3 */
	c->bcd = val & 1;
	c->latch_state = 0;
	c->status_latched = 0;
	/* A new control word stops the counter until a count is written. */
	c->null_count = 1;
	if (ch == 0)
		pit_arm(p);
}

static void pit_write_counter(struct pit *p, unsigned ch, uint8_t val)
{
	struct pit_channel *c = &p->s.ch[ch];
	switch (c->write_state) {
	case RW_LSB: pit_load_count(p, ch, val); break;
	case RW_MSB: pit_load_count(p, ch, (uint32_t)val << 8); break;
	case RW_WORD0:
		c->write_latch = val;
		c->write_state = RW_WORD1;
		break;
	default:
		pit_load_count(p, ch, c->write_latch | ((uint32_t)val << 8));
		c->write_state = RW_WORD0;
		break;
	}
}

static uint8_t pit_read_counter(struct pit *p, unsigned ch)
{
	struct pit_channel *c = &p->s.ch[ch];
	uint8_t ret;
	if (c->status_latched) {
		c->status_latched = 0;
		return c->status;
	}
	if (c->latch_state) {
		switch (c->latch_state) {
		case RW_MSB:
			ret = c->latched >> 8;
			c->latch_state = 0;
			break;
		case RW_WORD0:
			ret = (uint8_t)c->latched;
			c->latch_state = RW_MSB;
			break;
		default:
			ret = (uint8_t)c->latched;
			c->latch_state = 0;
			break;
		}
		return ret;
	}
	uint32_t v = c->null_count ? c->count : pit_count_now(c, clock_ns(p->m));
	if (c->bcd)
		v = to_bcd16(v);
	switch (c->read_state) {
	case RW_MSB: return (uint8_t)(v >> 8);
	case RW_WORD0: c->read_state = RW_WORD1; return (uint8_t)v;
	case RW_WORD1: c->read_state = RW_WORD0; return (uint8_t)(v >> 8);
	default: return (uint8_t)v;
	}
}

static uint64_t pit_rd(void *dev, uint64_t off, unsigned size)
{
	(void)size;
	if (off >= 3)
		return 0xff; /* the control word register is write-only */
	return pit_read_counter(dev, (unsigned)off);
}

static void pit_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	(void)size;
	if (off == 3)
		pit_control(dev, (uint8_t)val);
	else if (off < 3)
		pit_write_counter(dev, (unsigned)off, (uint8_t)val);
}

static void pit_set_gate(struct pit *p, unsigned ch, int gate)
{
	struct pit_channel *c = &p->s.ch[ch];
	/* Modes 1, 5 are triggered and 2, 3 restart on a rising gate; 0 and 4
	 * would pause while low, which calibration code never relies on. */
	if (gate && !c->gate && c->mode != 0 && c->mode != 4)
		c->load_time = clock_ns(p->m);
	c->gate = (uint8_t) !!gate;
}

static uint64_t port61_rd(void *dev, uint64_t off, unsigned size)
{
	struct pit *p = dev;
	(void)off;
	(void)size;
	uint64_t now = clock_ns(p->m);
	struct pit_channel *c = &p->s.ch[2];
	int out2 = c->null_count ? 0 : pit_out_now(c, now);
	/* bit 4 is the DRAM refresh toggle (every 15.085 us) some delay loops watch */
	return (uint64_t)(c->gate | (p->s.speaker << 1) | (((now / 15085) & 1) << 4) | (out2 << 5));
}

static void port61_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct pit *p = dev;
	(void)off;
	(void)size;
	pit_set_gate(p, 2, val & 1);
	p->s.speaker = (val >> 1) & 1;
}

void pit_reset(struct pit *p)
{
	memset(&p->s, 0, sizeof(p->s));
	/* Unprogrammed until the guest writes a count: no interrupts from reset. */
	for (unsigned k = 0; k < 3; k++) {
		struct pit_channel *c = &p->s.ch[k];
		c->count = 0x10000;
		c->rw_mode = c->read_state = c->write_state = RW_WORD0;
		c->gate = k != 2;
		c->null_count = 1;
	}
	if (p->timer)
		mtimer_cancel(p->timer);
}

int pit_register(struct pit *p, struct machine *m)
{
	int err;
	p->m = m;
	p->timer = mtimer_new(m, pit_timer_fire, p);
	if (!p->timer)
		return -ENOMEM;
	pit_reset(p);
	if ((err = bus_register_pio(m, PORT_PIT, 4, pit_rd, pit_wr, p)) < 0 ||
	    (err = bus_register_pio(m, PORT_PIT_GATE, 1, port61_rd, port61_wr, p)) < 0)
		return err;
	return 0;
}

/* Validate st (a hostile snapshot's) and commit it: 0, or -EINVAL with
 * the device unchanged. */
static int pit_commit(struct pit *p, struct pit_state *stp)
{
	struct pit_state st = *stp;
	for (unsigned k = 0; k < 3; k++) {
		struct pit_channel *c = &st.ch[k];
		if (c->count < 1 || c->count > 0x10000 || c->mode > 5 || c->rw_mode < 1 || c->rw_mode > 3 ||
		    c->read_state < 1 || c->read_state > 4 || c->write_state < 1 || c->write_state > 4 ||
		    c->latch_state > 4)
			return -EINVAL;
		c->bcd &= 1;
		c->gate &= 1;
		c->null_count &= 1;
		c->status_latched &= 1;
	}
	st.speaker &= 1;
	p->s = st;
	pit_arm(p);
	return 0;
}

void pit_state_save(const struct pit *p, struct state_writer *w)
{
	const struct pit_state *s = &p->s;
	for (unsigned k = 0; k < 3; k++) {
		state_put_u32(w, s->ch[k].count);
		state_put_u16(w, s->ch[k].latched);
		state_put_u8(w, s->ch[k].latch_state);
		state_put_u8(w, s->ch[k].status);
		state_put_u8(w, s->ch[k].status_latched);
		state_put_u8(w, s->ch[k].rw_mode);
		state_put_u8(w, s->ch[k].read_state);
		state_put_u8(w, s->ch[k].write_state);
		state_put_u8(w, s->ch[k].write_latch);
		state_put_u8(w, s->ch[k].mode);
		state_put_u8(w, s->ch[k].bcd);
		state_put_u8(w, s->ch[k].gate);
		state_put_u8(w, s->ch[k].null_count);
		state_put_u64(w, s->ch[k].load_time);
		state_put_u64(w, s->ch[k].next_irq);
	}
	state_put_u8(w, s->speaker);
}

int pit_state_load(struct pit *p, struct state_reader *r)
{
	struct pit_state st = {0};
	for (unsigned k = 0; k < 3; k++) {
		st.ch[k].count = state_get_u32(r);
		st.ch[k].latched = state_get_u16(r);
		st.ch[k].latch_state = state_get_u8(r);
		st.ch[k].status = state_get_u8(r);
		st.ch[k].status_latched = state_get_u8(r);
		st.ch[k].rw_mode = state_get_u8(r);
		st.ch[k].read_state = state_get_u8(r);
		st.ch[k].write_state = state_get_u8(r);
		st.ch[k].write_latch = state_get_u8(r);
		st.ch[k].mode = state_get_u8(r);
		st.ch[k].bcd = state_get_u8(r);
		st.ch[k].gate = state_get_u8(r);
		st.ch[k].null_count = state_get_u8(r);
		st.ch[k].load_time = state_get_u64(r);
		st.ch[k].next_irq = state_get_u64(r);
	}
	st.speaker = state_get_u8(r);
	if (!state_section_done(r))
		return -EINVAL;
	if (pit_commit(p, &st) < 0) {
		state_fail(r, "pit: a value out of range");
		return -EINVAL;
	}
	return 0;
}
