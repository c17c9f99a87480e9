/* The local APIC of each vCPU: xAPIC MMIO and x2APIC MSRs, IRR/ISR/TMR and
 * priorities, IPIs (fixed, lowest priority, NMI, INIT, SIPI), the LVT timer
 * (one-shot, periodic, TSC-deadline) and LINT0 as the PIC's virtual wire.
 * Intel SDM vol. 3A ch. 11 (APIC) is the reference. */
#include <errno.h>
#include <string.h>

#include "machine/machine_impl.h"
#include "state/stream.h"

#define APIC_BASE_BSP (1ull << 8)
#define APIC_BASE_EXTD (1ull << 10)
#define APIC_BASE_EN (1ull << 11)
#define APIC_BASE_ADDR_MASK 0xfffffff000ull /* 40-bit physical addresses */
#define APIC_BASE_VALID (APIC_BASE_BSP | APIC_BASE_EXTD | APIC_BASE_EN | APIC_BASE_ADDR_MASK)

#define LAPIC_VER 0x00050014u /* version 0x14, 6 LVT entries (max index 5) */
#define LVT_MASKED (1u << 16)
#define SVR_ENABLE (1u << 8)
#define TIMER_MODE(lvt) (((lvt) >> 17) & 3)
enum { TIMER_ONESHOT, TIMER_PERIODIC, TIMER_TSC_DEADLINE };

#define ESR_SEND_ILLEGAL 0x20u
#define ESR_RECV_ILLEGAL 0x40u
#define ESR_ILLEGAL_REG 0x80u

/* Writable bits of each LVT entry (CMCI, timer, thermal, perf, LINT0, LINT1, error) */
static const uint32_t lvt_writable[7] = {0x107ff, 0x700ff, 0x107ff, 0x107ff, 0x1a7ff, 0x1a7ff, 0x100ff};

static int hw_enabled(const struct lapic *a)
{
	return !!(a->s.apic_base & APIC_BASE_EN);
}

static int sw_enabled(const struct lapic *a)
{
	return hw_enabled(a) && (a->s.svr & SVR_ENABLE);
}

static int is_x2apic(const struct lapic *a)
{
	return (a->s.apic_base & (APIC_BASE_EN | APIC_BASE_EXTD)) == (APIC_BASE_EN | APIC_BASE_EXTD);
}

static int vec_highest(const uint32_t *bits)
{
	for (int k = 7; k >= 0; k--)
		if (bits[k])
			return k * 32 + 31 - __builtin_clz(bits[k]);
	return -1;
}

static void vec_set(uint32_t *bits, unsigned v)
{
	bits[v >> 5] |= 1u << (v & 31);
}

static void vec_clear(uint32_t *bits, unsigned v)
{
	bits[v >> 5] &= ~(1u << (v & 31));
}

static int vec_test(const uint32_t *bits, unsigned v)
{
	return (bits[v >> 5] >> (v & 31)) & 1;
}

static uint32_t lapic_ppr(const struct lapic *a)
{
	int isrv = vec_highest(a->s.isr);
	uint32_t isr_class = isrv < 0 ? 0 : (uint32_t)isrv & 0xf0;
	return (a->s.tpr & 0xf0) >= isr_class ? a->s.tpr & 0xff : isr_class;
}

int lapic_pending(struct lapic *a)
{
	if (!hw_enabled(a))
		return -1;
	int irrv = vec_highest(a->s.irr);
	if (irrv < 0 || ((uint32_t)irrv & 0xf0) <= (lapic_ppr(a) & 0xf0))
		return -1;
	return irrv;
}

int lapic_ack(struct lapic *a)
{
	int v = lapic_pending(a);
	if (v < 0)
		return -1;
	vec_clear(a->s.irr, (unsigned)v);
	vec_set(a->s.isr, (unsigned)v);
	return v;
}

int lapic_unack(struct lapic *a, uint8_t vector)
{
	if (!vec_test(a->s.isr, vector))
		return -1;
	vec_clear(a->s.isr, vector);
	vec_set(a->s.irr, vector);
	return 0;
}

int lapic_ext_int_ok(struct lapic *a)
{
	if (!hw_enabled(a))
		return 1;
	uint32_t lint0 = a->s.lvt[LVT_LINT0];
	return !(lint0 & LVT_MASKED) && ((lint0 >> 8) & 7) == APIC_DM_EXTINT;
}

static void lapic_error(struct lapic *a, uint32_t bits)
{
	a->s.esr_pending |= bits;
	uint32_t lvt = a->s.lvt[LVT_ERROR];
	if (!(lvt & LVT_MASKED) && (lvt & 0xff) >= 16 && sw_enabled(a))
		vec_set(a->s.irr, lvt & 0xff);
}

void lapic_accept(struct lapic *a, unsigned mode, uint8_t vector, int level_trig)
{
	if (!hw_enabled(a))
		return;
	switch (mode) {
	case APIC_DM_FIXED:
	case APIC_DM_LOWEST:
		if (!sw_enabled(a))
			return;
		if (vector < 16) {
			lapic_error(a, ESR_RECV_ILLEGAL);
			return;
		}
		vec_set(a->s.irr, vector);
		if (level_trig)
			vec_set(a->s.tmr, vector);
		else
			vec_clear(a->s.tmr, vector);
		break;
	case APIC_DM_NMI: a->s.nmi_pending = 1; break;
	case APIC_DM_INIT: a->s.init_pending = 1; break;
	case APIC_DM_SIPI:
		a->s.sipi_pending = 1;
		a->s.sipi_vector = vector;
		break;
	default: /* SMI, ExtINT: not modelled */ break;
	}
	if (a->m->kick && (a->s.nmi_pending || a->s.init_pending || a->s.sipi_pending))
		a->m->kick(a->m->kick_opaque);
}

static void lapic_eoi(struct lapic *a)
{
	int v = vec_highest(a->s.isr);
	if (v < 0)
		return;
	vec_clear(a->s.isr, (unsigned)v);
	if (vec_test(a->s.tmr, (unsigned)v)) {
		vec_clear(a->s.tmr, (unsigned)v);
		ioapic_eoi(&a->m->ioapic, (uint8_t)v);
	}
}

/* ---- Destinations ---- */

static int lapic_match(const struct lapic *a, uint32_t dest, int logical)
{
	if (!hw_enabled(a))
		return 0;
	if (is_x2apic(a)) {
		if (dest == 0xffffffffu)
			return 1;
		if (!logical)
			return dest == a->s.id;
		return (dest >> 16) == (a->s.ldr >> 16) && (dest & a->s.ldr & 0xffff);
	}
	uint8_t d = (uint8_t)dest;
	if (d == 0xff)
		return 1;
	if (!logical)
		return d == (uint8_t)a->s.id;
	uint8_t ldr = (uint8_t)(a->s.ldr >> 24);
	if ((a->s.dfr >> 28) == 0xf) /* flat model */
		return (ldr & d) != 0;
	/* cluster model: 4-bit cluster, 4 bits of CPUs within it */
	return (ldr >> 4) == (d >> 4) && (ldr & d & 0xf);
}

void apic_deliver(struct machine *m, uint32_t dest, int logical, unsigned mode, uint8_t vector, int level_trig,
		  int x2apic)
{
	(void)x2apic;
	if (mode == APIC_DM_LOWEST) {
		/* The matching LAPIC with the lowest task priority takes it. */
		struct lapic *best = NULL;
		for (unsigned k = 0; k < m->ncpus; k++) {
			struct lapic *a = &m->lapic[k];
			if (lapic_match(a, dest, logical) && sw_enabled(a) &&
			    (!best || (a->s.tpr & 0xff) < (best->s.tpr & 0xff)))
				best = a;
		}
		if (best)
			lapic_accept(best, mode, vector, level_trig);
		return;
	}
	for (unsigned k = 0; k < m->ncpus; k++)
		if (lapic_match(&m->lapic[k], dest, logical))
			lapic_accept(&m->lapic[k], mode, vector, level_trig);
}

static void lapic_send_ipi(struct lapic *a)
{
	uint32_t lo = a->s.icr_lo;
	unsigned mode = (lo >> 8) & 7, shorthand = (lo >> 18) & 3;
	uint8_t vector = (uint8_t)lo;
	int logical = (lo >> 11) & 1, level_trig = (lo >> 15) & 1, assert = (lo >> 14) & 1;
	uint32_t dest = is_x2apic(a) ? a->s.icr_hi : a->s.icr_hi >> 24;
	struct machine *m = a->m;

	/* INIT level de-assert only resynchronises arbitration IDs. */
	if (mode == APIC_DM_INIT && level_trig && !assert)
		return;
	if ((mode == APIC_DM_FIXED || mode == APIC_DM_LOWEST) && vector < 16) {
		lapic_error(a, ESR_SEND_ILLEGAL);
		return;
	}
	switch (shorthand) {
	case 0: apic_deliver(m, dest, logical, mode, vector, 0, is_x2apic(a)); break;
	case 1: lapic_accept(a, mode, vector, 0); break;
	default:
		for (unsigned k = 0; k < m->ncpus; k++)
			if (shorthand == 2 || &m->lapic[k] != a)
				lapic_accept(&m->lapic[k], mode, vector, 0);
		break;
	}
}

/* ---- Timer ---- */

static uint64_t timer_divisor(const struct lapic *a)
{
	uint32_t v = (a->s.timer_dcr & 3) | ((a->s.timer_dcr >> 1) & 4);
	return 1ull << ((v + 1) & 7);
}

static uint64_t timer_period(const struct lapic *a)
{
	uint64_t p = (uint64_t)a->s.timer_init * timer_divisor(a) * (1000000000ull / LAPIC_BUS_HZ);
	if (TIMER_MODE(a->s.lvt[LVT_TIMER]) == TIMER_PERIODIC && p < LAPIC_MIN_PERIOD_NS)
		p = LAPIC_MIN_PERIOD_NS;
	return p;
}

static void timer_stop(struct lapic *a)
{
	a->s.timer_deadline = 0;
	a->s.tsc_deadline = 0;
	mtimer_cancel(a->timer);
}

static void timer_start(struct lapic *a)
{
	timer_stop(a);
	if (!a->s.timer_init || TIMER_MODE(a->s.lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE)
		return;
	a->s.timer_start = clock_ns(a->m);
	a->s.timer_deadline = a->s.timer_start + timer_period(a);
	mtimer_arm(a->timer, a->s.timer_deadline);
}

static void timer_fire(void *opaque)
{
	struct lapic *a = opaque;
	uint32_t lvt = a->s.lvt[LVT_TIMER];
	if (!(lvt & LVT_MASKED))
		lapic_accept(a, APIC_DM_FIXED, (uint8_t)lvt, 0);
	switch (TIMER_MODE(lvt)) {
	case TIMER_PERIODIC: {
		uint64_t now = clock_ns(a->m), period = timer_period(a);
		uint64_t next = a->s.timer_deadline + period;
		if (next <= now) /* missed periods are dropped, not replayed */
			next = now + period;
		a->s.timer_start = next - period;
		a->s.timer_deadline = next;
		mtimer_arm(a->timer, next);
		break;
	}
	case TIMER_TSC_DEADLINE: a->s.tsc_deadline = 0; break;
	default: a->s.timer_deadline = 0; break;
	}
}

static uint32_t timer_current(struct lapic *a)
{
	if (!a->s.timer_deadline || TIMER_MODE(a->s.lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE)
		return 0;
	uint64_t now = clock_ns(a->m);
	uint64_t period = timer_period(a), left;
	if (now >= a->s.timer_deadline) {
		if (TIMER_MODE(a->s.lvt[LVT_TIMER]) != TIMER_PERIODIC || !period)
			return 0;
		left = period - (now - a->s.timer_start) % period;
	} else {
		left = a->s.timer_deadline - now;
	}
	uint64_t cnt = left / timer_divisor(a);
	return cnt > a->s.timer_init ? a->s.timer_init : (uint32_t)cnt;
}

/* TSC-deadline: the TSC counts clock_ns() (a 1 GHz TSC). */
static void timer_set_tsc_deadline(struct lapic *a, uint64_t tsc)
{
	if (TIMER_MODE(a->s.lvt[LVT_TIMER]) != TIMER_TSC_DEADLINE)
		return;
	a->s.tsc_deadline = tsc;
	if (!tsc) {
		mtimer_cancel(a->timer);
		return;
	}
	mtimer_arm(a->timer, tsc);
}

/* ---- Registers ---- */

static int lapic_reg_read(struct lapic *a, unsigned r, uint64_t *val)
{
	int x2 = is_x2apic(a);
	switch (r) {
	case 0x2: *val = x2 ? a->s.id : a->s.id << 24; break;
	case 0x3: *val = LAPIC_VER; break;
	case 0x8: *val = a->s.tpr; break;
	case 0x9: *val = 0; break; /* APR */
	case 0xa: *val = lapic_ppr(a); break;
	case 0xb:
	case 0xc:
		if (x2)
			return -1;
		*val = 0;
		break;
	case 0xd: *val = a->s.ldr; break;
	case 0xe:
		if (x2)
			return -1;
		*val = a->s.dfr;
		break;
	case 0xf: *val = a->s.svr; break;
	case 0x10 ... 0x17: *val = a->s.isr[r - 0x10]; break;
	case 0x18 ... 0x1f: *val = a->s.tmr[r - 0x18]; break;
	case 0x20 ... 0x27: *val = a->s.irr[r - 0x20]; break;
	case 0x28: *val = a->s.esr; break;
	case 0x2f:
		if (x2)
			return -1;
		*val = a->s.lvt[LVT_CMCI];
		break;
	case 0x30: *val = x2 ? ((uint64_t)a->s.icr_hi << 32) | a->s.icr_lo : a->s.icr_lo; break;
	case 0x31:
		if (x2)
			return -1;
		*val = a->s.icr_hi;
		break;
	case 0x32 ... 0x37: *val = a->s.lvt[r - 0x32 + LVT_TIMER]; break;
	case 0x38: *val = a->s.timer_init; break;
	case 0x39: *val = timer_current(a); break;
	case 0x3e: *val = a->s.timer_dcr; break;
	default: return -1;
	}
	return 0;
}

static void lapic_write_lvt(struct lapic *a, unsigned idx, uint32_t val)
{
	uint32_t old = a->s.lvt[idx];
	val &= lvt_writable[idx];
	if (!(a->s.svr & SVR_ENABLE))
		val |= LVT_MASKED;
	if (idx == LVT_TIMER && TIMER_MODE(val) == 3)
		val &= ~(3u << 17); /* reserved mode: treat as one-shot */
	a->s.lvt[idx] = val;
	if (idx == LVT_TIMER && TIMER_MODE(old) != TIMER_MODE(val))
		timer_stop(a);
}

static int lapic_reg_write(struct lapic *a, unsigned r, uint64_t val64)
{
	int x2 = is_x2apic(a);
	uint32_t val = (uint32_t)val64;
	switch (r) {
	case 0x8: a->s.tpr = val & 0xff; break;
	case 0xb:
		if (x2 && val64)
			return -1;
		lapic_eoi(a);
		break;
	case 0xd:
		if (x2)
			return -1;
		a->s.ldr = val & 0xff000000u;
		break;
	case 0xe:
		if (x2)
			return -1;
		a->s.dfr = val | 0x0fffffffu;
		break;
	case 0xf:
		a->s.svr = val & 0x3ff;
		if (!(val & SVR_ENABLE))
			for (unsigned k = 0; k < 7; k++)
				a->s.lvt[k] |= LVT_MASKED;
		break;
	case 0x28:
		if (x2 && val64)
			return -1;
		a->s.esr = a->s.esr_pending;
		a->s.esr_pending = 0;
		break;
	case 0x2f:
		if (x2)
			return -1;
		lapic_write_lvt(a, LVT_CMCI, val);
		break;
	case 0x30:
		if (x2) {
			a->s.icr_hi = (uint32_t)(val64 >> 32);
			a->s.icr_lo = val & ~(1u << 12);
		} else {
			a->s.icr_lo = val & ~(1u << 12); /* delivery status: always idle */
		}
		lapic_send_ipi(a);
		break;
	case 0x31:
		if (x2)
			return -1;
		a->s.icr_hi = val & 0xff000000u;
		break;
	case 0x32 ... 0x37: lapic_write_lvt(a, r - 0x32 + LVT_TIMER, val); break;
	case 0x38:
		if (TIMER_MODE(a->s.lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE)
			break;
		a->s.timer_init = val;
		timer_start(a);
		break;
	case 0x3e: a->s.timer_dcr = val & 0xb; break;
	case 0x3f:
		if (!x2)
			return -1;
		lapic_accept(a, APIC_DM_FIXED, (uint8_t)val, 0);
		break;
	case 0x2:
	case 0x3:
	case 0x9:
	case 0xa:
	case 0xc:
	case 0x10 ... 0x27:
	case 0x39:
		/* read-only */
		if (x2)
			return -1;
		break;
	default: return -1;
	}
	return 0;
}

uint64_t lapic_mmio_read(struct lapic *a, uint64_t off, unsigned size)
{
	uint64_t v = 0;
	(void)size;
	/* The MMIO page is off while the APIC is disabled or in x2APIC mode. */
	if (!hw_enabled(a) || is_x2apic(a) || off >= 0x1000)
		return ~0ull;
	if ((off & 0xf) >= 4)
		return 0;
	if (lapic_reg_read(a, (unsigned)(off >> 4), &v) < 0) {
		lapic_error(a, ESR_ILLEGAL_REG);
		return 0;
	}
	return (uint32_t)v >> ((off & 3) * 8);
}

void lapic_mmio_write(struct lapic *a, uint64_t off, unsigned size, uint64_t val)
{
	if (!hw_enabled(a) || is_x2apic(a) || off >= 0x1000 || (off & 0xf) || size < 4)
		return;
	if (lapic_reg_write(a, (unsigned)(off >> 4), (uint32_t)val) < 0)
		lapic_error(a, ESR_ILLEGAL_REG);
}

/* ---- MSRs ---- */

static void lapic_set_base(struct lapic *a, uint64_t val)
{
	uint64_t old = a->s.apic_base;
	a->s.apic_base = (val & ~APIC_BASE_BSP) | (old & APIC_BASE_BSP);
	if ((old & APIC_BASE_EN) && !(val & APIC_BASE_EN)) {
		/* Hardware disable: the APIC forgets its state (ID and base survive). */
		lapic_init_ipi_reset(a);
	}
	if (is_x2apic(a) && !(old & APIC_BASE_EXTD)) {
		a->s.ldr = ((a->s.id >> 4) << 16) | (1u << (a->s.id & 0xf));
	}
}

int lapic_msr_read(struct machine *m, unsigned cpu, uint32_t msr, uint64_t *val)
{
	if (cpu >= m->ncpus)
		return -1;
	struct lapic *a = &m->lapic[cpu];
	if (msr == 0x1b) {
		*val = a->s.apic_base;
		return 0;
	}
	if (msr == 0x6e0) {
		*val = TIMER_MODE(a->s.lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE ? a->s.tsc_deadline : 0;
		return 0;
	}
	if (msr == 0x808 && !is_x2apic(a)) {
		/* The CPU's CR8 path: TPR bits 7:4 whatever the APIC mode */
		*val = a->s.tpr;
		return 0;
	}
	if (msr < 0x800 || msr > 0x8ff || !is_x2apic(a))
		return -1;
	return lapic_reg_read(a, msr - 0x800, val);
}

int lapic_msr_write(struct machine *m, unsigned cpu, uint32_t msr, uint64_t val)
{
	if (cpu >= m->ncpus)
		return -1;
	struct lapic *a = &m->lapic[cpu];
	if (msr == 0x1b) {
		if (val & ~APIC_BASE_VALID)
			return -1;
		/* SDM 11.12.5: x2APIC without enable, or x2APIC -> xAPIC directly, is invalid */
		if ((val & (APIC_BASE_EN | APIC_BASE_EXTD)) == APIC_BASE_EXTD)
			return -1;
		if (is_x2apic(a) && (val & APIC_BASE_EN) && !(val & APIC_BASE_EXTD))
			return -1;
		lapic_set_base(a, val);
		return 0;
	}
	if (msr == 0x6e0) {
		timer_set_tsc_deadline(a, val);
		return 0;
	}
	if (msr == 0x808 && !is_x2apic(a)) {
		a->s.tpr = val & 0xff; /* CR8 writes */
		return 0;
	}
	if (msr < 0x800 || msr > 0x8ff || !is_x2apic(a))
		return -1;
	if (msr != 0x830 && (val >> 32))
		return -1;
	return lapic_reg_write(a, msr - 0x800, val);
}

/* ---- Reset, save/load ---- */

void lapic_init_ipi_reset(struct lapic *a)
{
	uint64_t base = a->s.apic_base;
	uint32_t id = a->s.id, ldr = a->s.ldr;
	mtimer_cancel(a->timer);
	memset(&a->s, 0, sizeof(a->s));
	a->s.apic_base = base;
	a->s.id = id;
	a->s.ldr = is_x2apic(a) ? ldr : 0;
	a->s.dfr = 0xffffffffu;
	a->s.svr = 0xff;
	for (unsigned k = 0; k < 7; k++)
		a->s.lvt[k] = LVT_MASKED;
}

void lapic_reset(struct lapic *a, int bsp)
{
	a->s.apic_base = MEM_LAPIC_BASE | APIC_BASE_EN | (bsp ? APIC_BASE_BSP : 0);
	a->s.id = a->index;
	lapic_init_ipi_reset(a);
	if (bsp) {
		/* What PC firmware leaves behind: APIC on, LINT0 the PIC's virtual
		 * wire (ExtINT), LINT1 NMI (MP spec 3.6.2.2). */
		a->s.svr = 0x1ff;
		a->s.lvt[LVT_LINT0] = APIC_DM_EXTINT << 8;
		a->s.lvt[LVT_LINT1] = APIC_DM_NMI << 8;
	}
}

int lapic_init(struct lapic *a, struct machine *m, unsigned index)
{
	a->m = m;
	a->index = index;
	a->timer = mtimer_new(m, timer_fire, a);
	if (!a->timer)
		return -ENOMEM;
	lapic_reset(a, index == 0);
	return 0;
}

/* Validate st (a hostile snapshot's) and commit it: 0, or -EINVAL with
 * the device unchanged. */
static int lapic_commit(struct lapic *a, struct lapic_state *stp)
{
	struct lapic_state st = *stp;
	if ((st.apic_base & ~APIC_BASE_VALID) || (st.apic_base & (APIC_BASE_EN | APIC_BASE_EXTD)) == APIC_BASE_EXTD)
		return -EINVAL;
	st.apic_base = (st.apic_base & ~APIC_BASE_BSP) | (a->s.apic_base & APIC_BASE_BSP);
	st.tpr &= 0xff;
	st.svr &= 0x3ff;
	st.timer_dcr &= 0xb;
	for (unsigned k = 0; k < 7; k++)
		st.lvt[k] &= lvt_writable[k];
	if (TIMER_MODE(st.lvt[LVT_TIMER]) == 3)
		st.lvt[LVT_TIMER] &= ~(3u << 17);
	st.isr[0] &= ~0xffffu; /* vectors 0-15 cannot be pending or in service */
	st.irr[0] &= ~0xffffu;
	st.tmr[0] &= ~0xffffu;
	st.nmi_pending = !!st.nmi_pending;
	st.init_pending = !!st.init_pending;
	st.sipi_pending = !!st.sipi_pending;
	a->s = st;
	mtimer_cancel(a->timer);
	if (TIMER_MODE(st.lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE) {
		a->s.timer_deadline = 0;
		if (st.tsc_deadline)
			mtimer_arm(a->timer, st.tsc_deadline);
	} else if (st.timer_deadline) {
		if (!st.timer_init || st.timer_start > st.timer_deadline) {
			a->s.timer_deadline = 0;
		} else {
			mtimer_arm(a->timer, st.timer_deadline);
		}
	}
	return 0;
}

void lapic_state_save(const struct lapic *a, struct state_writer *w)
{
	const struct lapic_state *s = &a->s;
	state_put_u64(w, s->apic_base);
	state_put_u32(w, s->id);
	state_put_u32(w, s->tpr);
	state_put_u32(w, s->ldr);
	state_put_u32(w, s->dfr);
	state_put_u32(w, s->svr);
	state_put_u32(w, s->esr);
	state_put_u32(w, s->esr_pending);
	for (unsigned k = 0; k < 8; k++) {
		state_put_u32(w, s->isr[k]);
		state_put_u32(w, s->irr[k]);
		state_put_u32(w, s->tmr[k]);
	}
	state_put_u32(w, s->icr_lo);
	state_put_u32(w, s->icr_hi);
	for (unsigned k = 0; k < 7; k++) {
		state_put_u32(w, s->lvt[k]);
	}
	state_put_u32(w, s->timer_init);
	state_put_u32(w, s->timer_dcr);
	state_put_u64(w, s->timer_start);
	state_put_u64(w, s->timer_deadline);
	state_put_u64(w, s->tsc_deadline);
	state_put_u8(w, s->nmi_pending);
	state_put_u8(w, s->init_pending);
	state_put_u8(w, s->sipi_pending);
	state_put_u8(w, s->sipi_vector);
}

int lapic_state_load(struct lapic *a, struct state_reader *r)
{
	struct lapic_state st = {0};
	st.apic_base = state_get_u64(r);
	st.id = state_get_u32(r);
	st.tpr = state_get_u32(r);
	st.ldr = state_get_u32(r);
	st.dfr = state_get_u32(r);
	st.svr = state_get_u32(r);
	st.esr = state_get_u32(r);
	st.esr_pending = state_get_u32(r);
	for (unsigned k = 0; k < 8; k++) {
		st.isr[k] = state_get_u32(r);
		st.irr[k] = state_get_u32(r);
		st.tmr[k] = state_get_u32(r);
	}
	st.icr_lo = state_get_u32(r);
	st.icr_hi = state_get_u32(r);
	for (unsigned k = 0; k < 7; k++) {
		st.lvt[k] = state_get_u32(r);
	}
	st.timer_init = state_get_u32(r);
	st.timer_dcr = state_get_u32(r);
	st.timer_start = state_get_u64(r);
	st.timer_deadline = state_get_u64(r);
	st.tsc_deadline = state_get_u64(r);
	st.nmi_pending = state_get_u8(r);
	st.init_pending = state_get_u8(r);
	st.sipi_pending = state_get_u8(r);
	st.sipi_vector = state_get_u8(r);
	if (!state_section_done(r))
		return -EINVAL;
	if (lapic_commit(a, &st) < 0) {
		state_fail(r, "lapic: a value out of range");
		return -EINVAL;
	}
	return 0;
}
