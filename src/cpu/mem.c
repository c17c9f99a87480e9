/* Guest memory access slow paths: soft TLB refill, page-crossing accesses,
 * writes to pages holding decoded code, and page faults. */
#include "system.h"

enum { ACC_R, ACC_W, ACC_X };

void cpu_tlb_flush(struct cpu *c)
{
	for (unsigned b = 0; b < 2; b++)
		for (unsigned k = 0; k < c->tlb_n; k++) {
			c->tlb[b][k].tag_r = CPU_TLB_INVALID;
			c->tlb[b][k].tag_w = CPU_TLB_INVALID;
			c->tlb[b][k].tag_x = CPU_TLB_INVALID;
		}
}

void cpu_tlb_flush_nonglobal(struct cpu *c)
{
	for (unsigned b = 0; b < 2; b++)
		for (unsigned k = 0; k < c->tlb_n; k++)
			if (!(c->tlb_kind[b][k] & TLBK_GLOBAL)) {
				c->tlb[b][k].tag_r = CPU_TLB_INVALID;
				c->tlb[b][k].tag_w = CPU_TLB_INVALID;
				c->tlb[b][k].tag_x = CPU_TLB_INVALID;
			}
}

void cpu_tlb_flush_page(struct cpu *c, uint64_t a)
{
	for (unsigned b = 0; b < 2; b++)
		for (unsigned k = 0; k < c->tlb_n; k++) {
			struct cpu_tlb_entry *e = &c->tlb[b][k];
			uint8_t kind = c->tlb_kind[b][k];
			uint64_t mask = (kind & TLBK_1G)   ? ~((1ull << 30) - 1)
					: (kind & TLBK_2M) ? ~((1ull << 21) - 1)
							   : ~0xfffull;
			/* tag_r is set whenever the entry holds a translation */
			if (e->tag_r != CPU_TLB_INVALID && (e->tag_r & mask) == (a & mask)) {
				e->tag_r = CPU_TLB_INVALID;
				e->tag_w = CPU_TLB_INVALID;
				e->tag_x = CPU_TLB_INVALID;
			}
		}
}

static uint32_t pf_error(int acc, int present)
{
	uint32_t err = PFERR_U | (present ? PFERR_P : 0);
	if (acc == ACC_W)
		err |= PFERR_W;
	if (acc == ACC_X)
		err |= PFERR_I;
	return err;
}

/* Translate the page of a for the access, filling the TLB entry. Returns the
 * host address of a; faults if the access is not allowed. *code is set when
 * the page holds decoded code (writes must go through the slow path). */
static uint8_t *tlb_fill(struct cpu *c, uint64_t a, int acc, int *code)
{
	if (c->mode == CPU_MODE_SYSTEM)
		return sys_tlb_fill(c, a, acc, code);
	/* Non-canonical addresses #GP (#SS for stack, reported alike in user mode). */
	if ((uint64_t)((int64_t)(a << 16) >> 16) != a) {
		c->exc_noncanon = 1; /* cpu_run tells #SS from #GP */
		cpu_raise(c, EXC_GP, 0);
	}
	unsigned prot = 0;
	uint8_t *host = vmem_lookup(c->vm, a, &prot);
	if (!host) {
		c->exc_addr = a;
		cpu_raise_pf(c, a, pf_error(acc, 0));
	}
	int ok;
	switch (acc) {
	case ACC_W: ok = prot & VMEM_W; break;
	case ACC_X: ok = prot & VMEM_X; break;
	default: ok = prot & (VMEM_R | VMEM_W | VMEM_X); break;
	}
	if (!ok)
		cpu_raise_pf(c, a, pf_error(acc, 1));
	uint64_t page = a & ~0xfffull;
	struct cpu_tlb_entry *e = tlb_entry(c, a);
	uintptr_t addend = (uintptr_t)host - (uintptr_t)page;
	if (e->addend != addend) {
		e->tag_r = e->tag_w = e->tag_x = CPU_TLB_INVALID;
		e->addend = addend;
	}
	if (prot & (VMEM_R | VMEM_W | VMEM_X))
		e->tag_r = page;
	if ((prot & VMEM_W) && !(prot & VMEM_CODE))
		e->tag_w = page;
	if (prot & VMEM_X)
		e->tag_x = page;
	if (code)
		*code = (prot & VMEM_CODE) != 0;
	return host + (a & 0xfff);
}

/* Host pointer for a read of the byte at a; NULL for MMIO (system mode). */
static uint8_t *xlat_read(struct cpu *c, uint64_t a)
{
	struct cpu_tlb_entry *e = tlb_entry(c, a);
	if (e->tag_r == (a & ~0xfffull))
		return (uint8_t *)(uintptr_t)(a + e->addend);
	return tlb_fill(c, a, ACC_R, NULL);
}

/* Host pointer for a write at a (within one page), NULL for MMIO. Notices
 * writes to pages holding decoded code. */
static uint8_t *xlat_write(struct cpu *c, uint64_t a)
{
	struct cpu_tlb_entry *e = tlb_entry(c, a);
	if (e->tag_w == (a & ~0xfffull))
		return (uint8_t *)(uintptr_t)(a + e->addend);
	int code = 0;
	uint8_t *p = tlb_fill(c, a, ACC_W, &code);
	if (code) {
		/* A store into decoded code: drop the page's decoded blocks (the
		 * run loop sees code_gen change) and stop executing this block,
		 * whose later instructions may be the ones just overwritten. */
		if (c->mode == CPU_MODE_SYSTEM)
			sys_code_written(c, p - (a & 0xfff));
		else
			vmem_code_written(c->vm, a);
		c->end_block = 1;
	}
	return p;
}

void mem_watch_check(struct cpu *c, uint64_t a, uint64_t n, int write)
{
	const struct cpu_debug *d = c->dbg;
	for (unsigned k = 0; k < d->nwp; k++) {
		int kind = d->wp[k].kind;
		if (write ? kind == CPU_DBG_WATCH_R : kind == CPU_DBG_WATCH_W)
			continue;
		if (a + n - 1 < d->wp[k].addr || a >= d->wp[k].addr + d->wp[k].len)
			continue;
		/* the instruction completes (a trap, as DR7's data breakpoints),
		 * then cpu_run returns */
		if (c->dbg_hit.kind == CPU_DBG_NONE) {
			c->dbg_hit = (struct cpu_dbg_hit){.kind = kind, .addr = d->wp[k].addr};
			c->end_block = 1;
			c->exit = CPU_EXIT_DEBUG;
		}
		return;
	}
}

uint64_t mem_read_slow(struct cpu *c, uint64_t a, unsigned sz)
{
	mem_watch(c, a, sz, 0);
	uint64_t v = 0;
	if ((a & 0xfff) <= 0x1000u - sz) {
		uint8_t *p = xlat_read(c, a);
		if (!p)
			return sys_mmio_read(c, a, sz);
		if (!CPU_HOST_TSO)
			return host_load_ordered(p, sz);
		memcpy(&v, p, sz);
		return v;
	}
	/* Crossing a page: translate both pages before reading either. */
	unsigned first = 0x1000u - (unsigned)(a & 0xfff);
	uint8_t *p1 = xlat_read(c, a);
	uint8_t *p2 = xlat_read(c, a + first);
	if (!p1 || !p2) {
		for (unsigned k = 0; k < sz; k++)
			v |= mem_read_slow(c, a + k, 1) << (8 * k);
		return v;
	}
	memcpy(&v, p1, first);
	memcpy((uint8_t *)&v + first, p2, sz - first);
	host_order_after_load();
	return v;
}

void mem_write_slow(struct cpu *c, uint64_t a, unsigned sz, uint64_t v)
{
	mem_watch(c, a, sz, 1);
	if ((a & 0xfff) <= 0x1000u - sz) {
		uint8_t *p = xlat_write(c, a);
		if (!p)
			sys_mmio_write(c, a, sz, v);
		else if (!CPU_HOST_TSO)
			host_store_ordered(p, sz, v);
		else
			memcpy(p, &v, sz);
		return;
	}
	unsigned first = 0x1000u - (unsigned)(a & 0xfff);
	/* Probe both pages first so a fault on the second leaves memory as it was. */
	mem_probe_write(c, a, sz);
	uint8_t *p1 = xlat_write(c, a);
	uint8_t *p2 = xlat_write(c, a + first);
	if (!p1 || !p2) {
		for (unsigned k = 0; k < sz; k++)
			mem_write_slow(c, a + k, 1, v >> (8 * k));
		return;
	}
	host_order_before_store();
	memcpy(p1, &v, first);
	memcpy(p2, (uint8_t *)&v + first, sz - first);
}

void mem_probe_write(struct cpu *c, uint64_t a, unsigned n)
{
	if (!n)
		return;
	uint64_t end = a + n - 1;
	for (uint64_t p = a & ~0xfffull;; p += 0x1000) {
		uint64_t at = p < a ? a : p;
		struct cpu_tlb_entry *e = tlb_entry(c, at);
		if (e->tag_w != p)
			tlb_fill(c, at, ACC_W, NULL);
		if (p >= (end & ~0xfffull))
			break;
	}
}

void mem_read_bytes_slow(struct cpu *c, uint64_t a, void *dst, unsigned n)
{
	mem_watch(c, a, n, 0);
	uint8_t *d = dst;
	while (n) {
		unsigned chunk = 0x1000u - (unsigned)(a & 0xfff);
		if (chunk > n)
			chunk = n;
		uint8_t *p = xlat_read(c, a);
		if (p) {
			memcpy(d, p, chunk);
		} else {
			for (unsigned k = 0; k < chunk; k++)
				d[k] = (uint8_t)sys_mmio_read(c, a + k, 1);
		}
		d += chunk;
		a += chunk;
		n -= chunk;
	}
}

void mem_write_bytes_slow(struct cpu *c, uint64_t a, const void *src, unsigned n)
{
	mem_watch(c, a, n, 1);
	const uint8_t *s = src;
	mem_probe_write(c, a, n);
	while (n) {
		unsigned chunk = 0x1000u - (unsigned)(a & 0xfff);
		if (chunk > n)
			chunk = n;
		uint8_t *p = xlat_write(c, a);
		if (p) {
			memcpy(p, s, chunk);
		} else {
			for (unsigned k = 0; k < chunk; k++) {
				xlat_write(c, a + k);
				sys_mmio_write(c, a + k, 1, s[k]);
			}
		}
		s += chunk;
		a += chunk;
		n -= chunk;
	}
}

void *mem_rmw_ptr(struct cpu *c, uint64_t a, unsigned sz)
{
	mem_watch(c, a, sz, 1);
	if ((a & 0xfff) > 0x1000u - sz) {
		mem_probe_write(c, a, sz);
		return NULL;
	}
	return xlat_write(c, a); /* NULL for MMIO: the caller's locked fallback */
}
