/* String instructions (MOVS, STOS, LODS, CMPS, SCAS) with REP prefixes.
 * Registers advance after every element, so a fault midway leaves a state
 * the guest can resume from, as on hardware. */
#include "ops.h"

static inline uint64_t str_src(const struct cpu *c, const struct insn *i)
{
	uint64_t a = reg_read(c, R_RSI, i->adsz);
	if (i->seg == SEG_FS || i->seg == SEG_GS)
		a += c->s.seg[i->seg].base;
	return a;
}

static inline void str_adv(struct cpu *c, const struct insn *i, unsigned r, int64_t delta)
{
	reg_write(c, r, i->adsz, c->s.gpr[r] + (uint64_t)delta);
}

static inline int64_t str_step(const struct cpu *c, unsigned sz)
{
	return (c->s.rflags & FL_DF) ? -(int64_t)sz : (int64_t)sz;
}

static inline uint64_t rcx_get(const struct cpu *c, const struct insn *i)
{
	return reg_read(c, R_RCX, i->adsz);
}

/* Host pointer for n bytes at a within one page if the TLB has the page
 * for the access, else NULL (the element loop then takes the slow path). */
static inline uint8_t *tlb_span(struct cpu *c, uint64_t a, bool write)
{
	struct cpu_tlb_entry *e = tlb_entry(c, a);
	uint64_t tag = write ? e->tag_w : e->tag_r;
	if (tag != (a & ~0xfffull))
		return NULL;
	return (uint8_t *)(uintptr_t)(a + e->addend);
}

void op_movs(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	int64_t step = str_step(c, sz);
	if (!i->rep) {
		uint64_t v = mem_read(c, str_src(c, i), sz);
		mem_write(c, reg_read(c, R_RDI, i->adsz), sz, v);
		str_adv(c, i, R_RSI, step);
		str_adv(c, i, R_RDI, step);
		insn_next(c, i);
		return;
	}
	uint64_t n = rcx_get(c, i), budget = REP_CHUNK;
	while (n) {
		if (!budget) {
			c->end_block = 1; /* the rest as the same instruction again */
			return;
		}
		uint64_t s = str_src(c, i), d = reg_read(c, R_RDI, i->adsz);
		/* Fast path: forward, 64-bit addressing, both in cached pages, no
		 * overlap that a forward element copy would treat differently. */
		if (step > 0 && i->adsz == 8 && i->seg != SEG_FS && i->seg != SEG_GS) {
			uint64_t room_s = 0x1000 - (s & 0xfff), room_d = 0x1000 - (d & 0xfff);
			uint64_t bytes = room_s < room_d ? room_s : room_d;
			if (bytes > n * sz)
				bytes = n * sz;
			if (bytes > budget * sz)
				bytes = budget * sz;
			bytes -= bytes % sz;
			uint8_t *ps, *pd;
			if (bytes && (d + bytes <= s || d >= s + bytes || d <= s) && (ps = tlb_span(c, s, false)) &&
			    (pd = tlb_span(c, d, true))) {
				memmove(pd, ps, bytes);
				uint64_t k = bytes / sz;
				n -= k;
				budget -= k;
				reg_write(c, R_RCX, 8, n);
				c->s.gpr[R_RSI] += bytes;
				c->s.gpr[R_RDI] += bytes;
				continue;
			}
		}
		uint64_t v = mem_read(c, s, sz);
		mem_write(c, d, sz, v);
		str_adv(c, i, R_RSI, step);
		str_adv(c, i, R_RDI, step);
		n--;
		budget--;
		reg_write(c, R_RCX, i->adsz, n);
		if (c->end_block)
			break; /* wrote decoded code: re-decode before going on */
	}
	if (!n)
		insn_next(c, i);
}

void op_stos(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	int64_t step = str_step(c, sz);
	uint64_t v = reg_read(c, R_RAX, sz);
	if (!i->rep) {
		mem_write(c, reg_read(c, R_RDI, i->adsz), sz, v);
		str_adv(c, i, R_RDI, step);
		insn_next(c, i);
		return;
	}
	uint64_t n = rcx_get(c, i), budget = REP_CHUNK;
	while (n) {
		if (!budget) {
			c->end_block = 1;
			return;
		}
		uint64_t d = reg_read(c, R_RDI, i->adsz);
		if (step > 0 && i->adsz == 8) {
			uint64_t bytes = 0x1000 - (d & 0xfff);
			if (bytes > n * sz)
				bytes = n * sz;
			if (bytes > budget * sz)
				bytes = budget * sz;
			bytes -= bytes % sz;
			uint8_t *pd;
			if (bytes && (pd = tlb_span(c, d, true))) {
				/* one byte repeated (sz 1, or zeroes: clear_page): memset */
				if (sz == 1 || v == 0) {
					memset(pd, (int)v, bytes);
				} else {
					for (uint64_t k = 0; k < bytes; k += sz)
						memcpy(pd + k, &v, sz);
				}
				n -= bytes / sz;
				budget -= bytes / sz;
				reg_write(c, R_RCX, 8, n);
				c->s.gpr[R_RDI] += bytes;
				continue;
			}
		}
		mem_write(c, d, sz, v);
		str_adv(c, i, R_RDI, step);
		n--;
		budget--;
		reg_write(c, R_RCX, i->adsz, n);
		if (c->end_block)
			break;
	}
	if (!n)
		insn_next(c, i);
}

void op_lods(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	int64_t step = str_step(c, sz);
	uint64_t n = i->rep ? rcx_get(c, i) : 1, budget = REP_CHUNK;
	while (n) {
		if (!budget--) {
			c->end_block = 1;
			return;
		}
		uint64_t v = mem_read(c, str_src(c, i), sz);
		reg_write(c, R_RAX, sz, v);
		str_adv(c, i, R_RSI, step);
		n--;
		if (i->rep)
			reg_write(c, R_RCX, i->adsz, n);
	}
	insn_next(c, i);
}

/* CMPS/SCAS: REPE stops when ZF=0, REPNE when ZF=1. */
void op_cmps(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	int64_t step = str_step(c, sz);
	uint64_t mask = size_mask(sz);
	uint64_t n = i->rep ? rcx_get(c, i) : 1, budget = REP_CHUNK;
	while (n) {
		if (!budget--) {
			c->end_block = 1;
			return;
		}
		uint64_t a = mem_read(c, str_src(c, i), sz);
		uint64_t b = mem_read(c, reg_read(c, R_RDI, i->adsz), sz);
		str_adv(c, i, R_RSI, step);
		str_adv(c, i, R_RDI, step);
		lf_set(c, LF_SUB, sz, (a - b) & mask, a, b);
		n--;
		if (!i->rep)
			break;
		reg_write(c, R_RCX, i->adsz, n);
		if ((i->rep == REP_Z) != (a == b))
			break;
	}
	insn_next(c, i);
}

void op_scas(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	int64_t step = str_step(c, sz);
	uint64_t mask = size_mask(sz);
	uint64_t a = reg_read(c, R_RAX, sz);
	uint64_t n = i->rep ? rcx_get(c, i) : 1, budget = REP_CHUNK;
	while (n) {
		if (!budget--) {
			c->end_block = 1;
			return;
		}
		uint64_t b = mem_read(c, reg_read(c, R_RDI, i->adsz), sz);
		str_adv(c, i, R_RDI, step);
		lf_set(c, LF_SUB, sz, (a - b) & mask, a, b);
		n--;
		if (!i->rep)
			break;
		reg_write(c, R_RCX, i->adsz, n);
		if ((i->rep == REP_Z) != (a == b))
			break;
	}
	insn_next(c, i);
}
