/* The IOAPIC at MEM_IOAPIC_BASE: 24 pins whose redirection table entries send
 * interrupt messages to the LAPICs (edge or level with remote IRR). */
#include <errno.h>
#include <string.h>

#include "machine/machine_impl.h"
#include "state/stream.h"

#define IOAPIC_VER 0x20 /* version 0x20: has the EOI register at 0x40 */

#define RTE_VECTOR 0xffull
#define RTE_DM_SHIFT 8
#define RTE_LOGICAL (1ull << 11)
#define RTE_STATUS (1ull << 12)
#define RTE_REMOTE_IRR (1ull << 14)
#define RTE_LEVEL (1ull << 15)
#define RTE_MASKED (1ull << 16)
#define RTE_RO (RTE_STATUS | RTE_REMOTE_IRR)

static void ioapic_send(struct ioapic *io, unsigned pin)
{
	uint64_t e = io->s.redir[pin];
	unsigned mode = (e >> RTE_DM_SHIFT) & 7;
	if (mode == APIC_DM_EXTINT)
		return; /* virtual wire through the IOAPIC is not modelled: the PIC goes via LINT0 */
	apic_deliver(io->m, (uint32_t)(e >> 56), !!(e & RTE_LOGICAL), mode, (uint8_t)(e & RTE_VECTOR),
		     !!(e & RTE_LEVEL), 0);
}

/* A level-triggered pin is sent when asserted, unmasked and not awaiting EOI. */
static void ioapic_service(struct ioapic *io, unsigned pin)
{
	uint64_t *e = &io->s.redir[pin];
	if (!(*e & RTE_LEVEL) || (*e & (RTE_MASKED | RTE_REMOTE_IRR)) || !(io->s.irr & (1u << pin)))
		return;
	*e |= RTE_REMOTE_IRR;
	ioapic_send(io, pin);
}

void ioapic_set_irq(struct ioapic *io, unsigned pin, int level)
{
	if (pin >= IOAPIC_PINS)
		return;
	uint32_t mask = 1u << pin;
	uint64_t e = io->s.redir[pin];
	if (e & RTE_LEVEL) {
		if (level) {
			io->s.irr |= mask;
			ioapic_service(io, pin);
		} else {
			io->s.irr &= ~mask;
		}
		return;
	}
	if (level && !(io->s.irr & mask) && !(e & RTE_MASKED))
		ioapic_send(io, pin);
	if (level)
		io->s.irr |= mask;
	else
		io->s.irr &= ~mask;
}

void ioapic_eoi(struct ioapic *io, uint8_t vector)
{
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
		uint64_t *e = &io->s.redir[pin];
		if ((*e & RTE_VECTOR) != vector || !(*e & RTE_LEVEL) || !(*e & RTE_REMOTE_IRR))
			continue;
		*e &= ~RTE_REMOTE_IRR;
		ioapic_service(io, pin);
	}
}

static uint32_t ioapic_reg_read(struct ioapic *io)
{
	uint32_t r = io->s.ioregsel;
	switch (r) {
	case 0: return io->s.id << 24;
	case 1: return ((IOAPIC_PINS - 1) << 16) | IOAPIC_VER;
	case 2: return io->s.id << 24; /* arbitration ID */
	default:
		if (r >= 0x10 && r < 0x10 + 2 * IOAPIC_PINS) {
			uint64_t e = io->s.redir[(r - 0x10) >> 1];
			return (r & 1) ? (uint32_t)(e >> 32) : (uint32_t)e;
		}
		return ~0u;
	}
}

static void ioapic_reg_write(struct ioapic *io, uint32_t val)
{
	uint32_t r = io->s.ioregsel;
	if (r == 0) {
		io->s.id = (val >> 24) & 0xf;
		return;
	}
	if (r < 0x10 || r >= 0x10 + 2 * IOAPIC_PINS)
		return;
	unsigned pin = (r - 0x10) >> 1;
	uint64_t *e = &io->s.redir[pin];
	uint64_t v;
	if (r & 1)
		v = (*e & 0xffffffffull) | ((uint64_t)val << 32);
	else
		v = (*e & ~0xffffffffull) | val;
	*e = (v & ~RTE_RO) | (*e & RTE_RO);
	if (!(*e & RTE_LEVEL))
		*e &= ~RTE_REMOTE_IRR;
	ioapic_service(io, pin);
}

static uint64_t ioapic_rd(void *dev, uint64_t off, unsigned size)
{
	struct ioapic *io = dev;
	uint32_t v;
	switch (off & ~3ull) {
	case 0x00: v = io->s.ioregsel; break;
	case 0x10: v = ioapic_reg_read(io); break;
	default: v = 0; break;
	}
	v >>= (off & 3) * 8;
	(void)size;
	return v;
}

static void ioapic_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct ioapic *io = dev;
	if (off & 3)
		return; /* registers are written as whole dwords */
	(void)size;
	switch (off) {
	case 0x00: io->s.ioregsel = (uint32_t)val & 0xff; break;
	case 0x10: ioapic_reg_write(io, (uint32_t)val); break;
	case 0x40: ioapic_eoi(io, (uint8_t)val); break;
	default: break;
	}
}

void ioapic_reset(struct ioapic *io)
{
	memset(&io->s, 0, sizeof(io->s));
	for (unsigned k = 0; k < IOAPIC_PINS; k++)
		io->s.redir[k] = RTE_MASKED;
}

int ioapic_register(struct ioapic *io, struct machine *m)
{
	io->m = m;
	ioapic_reset(io);
	return bus_register_mmio(m, MEM_IOAPIC_BASE, 0x1000, ioapic_rd, ioapic_wr, io);
}

/* Validate st (a hostile snapshot's) and commit it: 0, or -EINVAL with
 * the device unchanged. */
static int ioapic_commit(struct ioapic *io, struct ioapic_state *stp)
{
	struct ioapic_state st = *stp;
	st.id &= 0xf;
	st.ioregsel &= 0xff;
	st.irr &= (1u << IOAPIC_PINS) - 1;
	io->s = st;
	return 0;
}

void ioapic_state_save(const struct ioapic *io, struct state_writer *w)
{
	const struct ioapic_state *s = &io->s;
	state_put_u32(w, s->id);
	state_put_u32(w, s->ioregsel);
	state_put_u32(w, s->irr);
	for (unsigned k = 0; k < 24; k++) {
		state_put_u64(w, s->redir[k]);
	}
}

int ioapic_state_load(struct ioapic *io, struct state_reader *r)
{
	struct ioapic_state st = {0};
	st.id = state_get_u32(r);
	st.ioregsel = state_get_u32(r);
	st.irr = state_get_u32(r);
	for (unsigned k = 0; k < 24; k++) {
		st.redir[k] = state_get_u64(r);
	}
	if (!state_section_done(r))
		return -EINVAL;
	if (ioapic_commit(io, &st) < 0) {
		state_fail(r, "ioapic: a value out of range");
		return -EINVAL;
	}
	return 0;
}
