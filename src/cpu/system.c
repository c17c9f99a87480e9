/* System mode of the CPU: 4-level paging, MMIO, exception and interrupt
 * delivery through the IDT, descriptor loads, the privileged instructions
 * and MSRs a Linux kernel uses. Everything outside the CPU (RAM, ports,
 * MMIO, interrupts, the local APIC, the clock) is reached through the
 * struct cpu_platform the engine gives. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "decode.h"
#include "ops.h"
#include "system.h"

/* ---- Code-page marks shared by all vCPUs of a machine ---- */

/* Every change of a mark is an event: generation g's is log[g % CODE_LOG].
 * A vCPU that saw generation h replays h+1..g: a page written (its decoded
 * code goes) or a page marked by another vCPU (its fast write entries go);
 * one further behind than the log drops everything. */
#define CODE_LOG 512u
/* CODE_WRPROTECT (live migration's dirty log armed again): every vCPU
 * drops all its fast write entries, so its next write to any page goes
 * through a TLB fill, which logs the page. */
enum { CODE_WRITTEN, CODE_MARKED, CODE_WRPROTECT };
struct code_event {
	uint32_t page; /* RAM page index */
	uint16_t kind;
	uint16_t who; /* the vCPU that marked it */
};

struct cpu_physmem {
	uint8_t *base;	/* host address of guest RAM's first byte */
	uint64_t pages; /* RAM pages covered by the marks */
	uint8_t *code;	/* 1 per page holding decoded code */
	volatile unsigned code_gen;
	pthread_mutex_t log_lock;
	struct code_event log[CODE_LOG];
	/* Live migration: one byte per page, set by the write fill of any
	 * page (NULL: no log). Written by vCPU threads, read by the owner
	 * while they stand paused. */
	uint8_t *volatile dirty;
};

static inline void dirty_mark(struct cpu_physmem *p, int64_t ci)
{
	uint8_t *d = p->dirty;
	if (d && ci >= 0)
		__atomic_store_n(&d[ci], 1, __ATOMIC_RELAXED);
}

static inline int64_t code_index(const struct cpu_physmem *p, const uint8_t *host)
{
	if (!p->base || host < p->base)
		return -1;
	uint64_t idx = (uint64_t)(host - p->base) >> 12;
	return idx < p->pages ? (int64_t)idx : -1;
}

/* Page ci's mark, read without the log lock (other vCPUs set it). */
static inline int code_marked(const struct cpu_physmem *p, int64_t ci)
{
	return ci >= 0 && __atomic_load_n(&p->code[ci], __ATOMIC_ACQUIRE);
}

/* Set (kind CODE_MARKED) or clear page ci's mark, logging the change. */
static void code_mark_set(struct cpu_physmem *p, int64_t ci, int kind, unsigned who)
{
	pthread_mutex_lock(&p->log_lock);
	uint8_t want = kind == CODE_MARKED;
	if (p->code[ci] != want) {
		__atomic_store_n(&p->code[ci], want, __ATOMIC_RELEASE);
		unsigned g = p->code_gen + 1;
		p->log[g % CODE_LOG] =
			(struct code_event){.page = (uint32_t)ci, .kind = (uint16_t)kind, .who = (uint16_t)who};
		__atomic_store_n(&p->code_gen, g, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&p->log_lock);
}

/* Devices wrote guest RAM: pages holding decoded code lose it. */
void cpu_physmem_dma_written(void *opaque, void *host, uint64_t len)
{
	struct cpu_physmem *p = opaque;
	uint8_t *a = (uint8_t *)((uintptr_t)host & ~(uintptr_t)0xfff), *end = (uint8_t *)host + len;
	for (; a < end; a += 4096) {
		int64_t ci = code_index(p, a);
		if (code_marked(p, ci))
			code_mark_set(p, ci, CODE_WRITTEN, 0);
	}
}

struct cpu_physmem *cpu_physmem_new(void *ram, uint64_t size)
{
	struct cpu_physmem *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->base = ram;
	p->pages = size >> 12;
	p->code = calloc(p->pages ? p->pages : 1, 1);
	if (!p->code) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->log_lock, NULL);
	return p;
}

static void code_event_all(struct cpu_physmem *p, int kind)
{
	pthread_mutex_lock(&p->log_lock);
	unsigned g = p->code_gen + 1;
	p->log[g % CODE_LOG] = (struct code_event){.page = 0, .kind = (uint16_t)kind, .who = 0};
	__atomic_store_n(&p->code_gen, g, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&p->log_lock);
}

void cpu_physmem_dirty_arm(void *opaque, uint8_t *log)
{
	struct cpu_physmem *p = opaque;
	p->dirty = log;
	code_event_all(p, CODE_WRPROTECT);
}

void cpu_physmem_free(struct cpu_physmem *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->log_lock);
	free(p->code);
	free(p);
}

/* ---- Setup ---- */

int cpu_init_system(struct cpu *c, const struct cpu_platform *plat, unsigned index, struct cpu_physmem *phys,
		    const struct cpu_opts *opts)
{
	if (!phys || !plat)
		return -EINVAL;
	int r = cpu_init_opts(c, CPU_MODE_SYSTEM, NULL, opts);
	if (r)
		return r;
	c->mode = CPU_MODE_SYSTEM;
	c->plat = plat;
	c->index = index;
	c->phys = phys;
	c->code_gen = c->phys->code_gen;
	c->phys_code_gen = &c->phys->code_gen;
	cpu_reset_system(c);
	return 0;
}

void sys_destroy(struct cpu *c)
{
	c->phys = NULL;
}

static void seg_set(struct cpu_seg *s, uint16_t sel, uint64_t base, uint32_t limit, uint16_t attr)
{
	s->sel = sel;
	s->base = base;
	s->limit = limit;
	s->attr = attr;
}

void cpu_reset_system(struct cpu *c)
{
	memset(&c->s, 0, sizeof(c->s));
	c->lf_op = LF_NONE;
	c->s.rflags = 2;
	c->s.rip = 0xfff0;
	/* Power-on: real mode, CS base 0xffff0000 (SDM 9.1.4) */
	seg_set(&c->s.seg[SEG_CS], 0xf000, 0xffff0000, 0xffff, 0x9b);
	for (int k = 0; k < 6; k++)
		if (k != SEG_CS)
			seg_set(&c->s.seg[k], 0, 0, 0xffff, 0x93);
	c->s.gdtr.limit = c->s.idtr.limit = 0xffff;
	seg_set(&c->s.ldtr, 0, 0, 0xffff, 0x82);
	seg_set(&c->s.tr, 0, 0, 0xffff, 0x8b);
	c->s.cr0 = 0x60000010;
	c->s.gpr[R_RDX] = 0x000206a7; /* family/model/stepping, as CPUID leaf 1 */
	c->s.mxcsr = MXCSR_DEFAULT;
	c->s.x87.fcw = 0x40;
	c->s.x87.ftw = 0xffff;
	c->s.msr.pat = 0x0007040600070406ull;
	c->s.msr.apic_base = c->plat->apic_base | (1u << 11) | (c->index == 0 ? (1u << 8) : 0);
	c->s.msr.misc_enable = 1; /* fast strings */
	c->halted = 0;
	c->nmi_pending = c->nmi_blocked = 0;
	c->cpl = 0;
	c->tlbp = c->tlb[0];
	c->shadow_rip = ~0ull;
	cpu_flush(c);
}

void cpu_state_loaded(struct cpu *c)
{
	c->lf_op = LF_NONE;
	c->cpl = (c->s.cr0 & 1) ? (c->s.seg[SEG_CS].sel & 3) : 0;
	/* user mode (a restored process VM): one table of CPU_TLB_USER
	 * entries from tlb[0], whatever the privilege */
	c->tlbp = c->mode == CPU_MODE_USER ? c->tlb[0] : c->tlb[c->cpl == 3];
	cpu_flush(c);
}

/* ---- Paging ---- */

#define PTE_P 0x1ull
#define PTE_W 0x2ull
#define PTE_U 0x4ull
#define PTE_A 0x20ull
#define PTE_D 0x40ull
#define PTE_PS 0x80ull
#define PTE_G 0x100ull
#define PTE_NX (1ull << 63)
#define PTE_ADDR 0x000ffffffffff000ull

#define PW_FAULT 0x80000000u /* or'ed into a fault's error code: 0 is a valid one */

/* Walk the page tables for linear address a. Returns 0 with *phys, or
 * PW_FAULT | the #PF error code for a fault. Sets A/D bits like hardware. With
 * probe, nothing is written (no A/D updates). */
static uint32_t page_walk(struct cpu *c, uint64_t a, int acc, int user, uint64_t *phys, int *writable, int probe)
{
	uint32_t err = PW_FAULT | (user ? PFERR_U : 0) | (acc == 1 ? PFERR_W : 0) | (acc == 2 ? PFERR_I : 0);
	c->walk_kind = 0;
	if (!(c->s.cr0 & 0x80000000u)) { /* paging off */
		*phys = sys_long_mode(c) ? a : (a & 0xffffffff);
		*writable = 1;
		return 0;
	}
	if (!(c->s.cr4 & 0x20) || !sys_long_mode(c))
		return err | PFERR_P | 0x8; /* legacy 32-bit paging: not supported (reserved-bit fault) */
	uint64_t table = c->s.cr3 & PTE_ADDR;
	uint64_t *ents[4];
	uint64_t e = 0;
	int level, w = 1, u = 1, nx = 0;
	int nxe = (c->s.efer & 0x800) != 0;
	for (level = 3; level >= 0; level--) {
		unsigned idx = (unsigned)(a >> (12 + 9 * level)) & 511;
		uint64_t *pe = c->plat->ram_ptr(c->plat->opaque, table + idx * 8ull, 8);
		if (!pe)
			return err | 0x8; /* page table outside RAM: treat as reserved */
		ents[level] = pe;
		e = __atomic_load_n(pe, __ATOMIC_RELAXED);
		if (!(e & PTE_P))
			return err;
		if (!nxe && (e & PTE_NX))
			return err | PFERR_P | 0x8;
		w &= (e & PTE_W) != 0;
		u &= (e & PTE_U) != 0;
		nx |= (e & PTE_NX) != 0;
		if ((e & PTE_PS) && (level == 1 || level == 2))
			break;
		if ((e & PTE_PS) && level == 3)
			return err | PFERR_P | 0x8;
		table = e & PTE_ADDR;
	}
	if (level < 0)
		level = 0;
	c->walk_kind = (uint8_t)(((e & PTE_G) ? TLBK_GLOBAL : 0) | (level == 1 ? TLBK_2M : level == 2 ? TLBK_1G : 0));
	/* Permission checks (no SMEP/SMAP: not advertised) */
	if (user && !u)
		return err | PFERR_P;
	if (acc == 1 && !w && (user || (c->s.cr0 & 0x10000))) /* CR0.WP */
		return err | PFERR_P;
	if (acc == 2 && nx && nxe)
		return err | PFERR_P;
	uint64_t page_mask = (1ull << (12 + 9 * level)) - 1;
	uint64_t base = level == 0 ? (e & PTE_ADDR) : (e & PTE_ADDR & ~page_mask);
	*phys = base | (a & page_mask);
	*writable = w && (u || !user);
	if (!probe) {
		for (int l = 3; l >= level; l--)
			if (!(*ents[l] & PTE_A)) {
				__atomic_fetch_or(ents[l], PTE_A, __ATOMIC_RELAXED);
				dirty_mark(c->phys, code_index(c->phys, (const uint8_t *)ents[l]));
			}
		if (acc == 1 && !(e & PTE_D)) {
			__atomic_fetch_or(ents[level], PTE_D, __ATOMIC_RELAXED);
			dirty_mark(c->phys, code_index(c->phys, (const uint8_t *)ents[level]));
		}
	}
	return 0;
}

static inline int canonical(uint64_t a)
{
	return (uint64_t)((int64_t)(a << 16) >> 16) == a;
}

/* A page holding a debugger's watchpoint keeps no fast entry for the
 * watched kind of access (a read watch hides the whole entry: tag_r is
 * what marks an entry as holding a translation). */
static void tlb_hide_watched(struct cpu *c, struct cpu_tlb_entry *e, uint64_t page)
{
	const struct cpu_debug *d = c->dbg;
	for (unsigned k = 0; k < d->nwp; k++) {
		if (page + 0xfff < d->wp[k].addr || page >= d->wp[k].addr + d->wp[k].len)
			continue;
		e->tag_w = CPU_TLB_INVALID;
		if (d->wp[k].kind != CPU_DBG_WATCH_W)
			e->tag_r = e->tag_x = CPU_TLB_INVALID;
	}
}

uint8_t *sys_tlb_fill(struct cpu *c, uint64_t a, int acc, int *code)
{
	if (sys_long_mode(c) && !canonical(a)) {
		c->exc_noncanon = 1;
		cpu_raise(c, EXC_GP, 0);
	}
	uint64_t phys;
	int writable;
	int user = c->cpl == 3;
	uint32_t err = page_walk(c, a, acc, user, &phys, &writable, 0);
	if (err)
		cpu_raise_pf(c, a, err & ~PW_FAULT);
	uint64_t page = a & ~0xfffull;
	uint8_t *host = c->plat->ram_ptr(c->plat->opaque, phys & ~0xfffull, 4096);
	c->mmio_gpa = phys;
	if (code)
		*code = 0;
	if (!host)
		return NULL; /* MMIO (or nothing): every access goes to the bus */
	struct cpu_tlb_entry *e = tlb_entry(c, a);
	uintptr_t addend = (uintptr_t)host - (uintptr_t)page;
	if (e->addend != addend) {
		e->tag_r = e->tag_w = e->tag_x = CPU_TLB_INVALID;
		e->addend = addend;
	}
	int64_t ci = code_index(c->phys, host);
	int is_code = code_marked(c->phys, ci);
	/* A/D bits: a read-filled entry must not allow silent writes (the D bit
	 * would not be set), so write tags are only filled by write walks. */
	e->tag_r = page;
	c->tlb_kind[c->tlbp == c->tlb[1]][e - c->tlbp] = c->walk_kind;
	if (acc == 1) {
		dirty_mark(c->phys, ci);
		if (!is_code)
			e->tag_w = page;
	}
	if (acc == 2)
		e->tag_x = page;
	if (unlikely(c->dbg_on) && c->dbg->nwp)
		tlb_hide_watched(c, e, page);
	if (code)
		*code = is_code;
	return host + (a & 0xfff);
}

void sys_code_written(struct cpu *c, uint8_t *host)
{
	int64_t ci = code_index(c->phys, host);
	if (code_marked(c->phys, ci))
		code_mark_set(c->phys, ci, CODE_WRITTEN, c->index);
}

/* Drop this vCPU's fast write entries to the page at host. */
static void tlb_drop_writes(struct cpu *c, const uint8_t *host)
{
	for (int b = 0; b < 2; b++)
		for (unsigned k = 0; k < c->tlb_n; k++)
			if (c->tlb[b][k].tag_w != CPU_TLB_INVALID &&
			    (uint8_t *)(uintptr_t)(c->tlb[b][k].tag_w + c->tlb[b][k].addend) == host)
				c->tlb[b][k].tag_w = CPU_TLB_INVALID;
}

static void tlb_drop_all_writes(struct cpu *c)
{
	for (int b = 0; b < 2; b++)
		for (unsigned k = 0; k < c->tlb_n; k++)
			c->tlb[b][k].tag_w = CPU_TLB_INVALID;
}

int sys_code_sync(struct cpu *c)
{
	struct cpu_physmem *p = c->phys;
	int rc = 0;
	pthread_mutex_lock(&p->log_lock);
	unsigned now = p->code_gen;
	if (now - c->code_gen > CODE_LOG) {
		rc = -1;
	} else {
		for (unsigned g = c->code_gen + 1; g != now + 1; g++) {
			const struct code_event *e = &p->log[g % CODE_LOG];
			uint8_t *host = p->base + ((uint64_t)e->page << 12);
			if (e->kind == CODE_WRITTEN)
				dcache_drop_page(c, host);
			else if (e->kind == CODE_WRPROTECT)
				tlb_drop_all_writes(c);
			else if (e->who != c->index)
				tlb_drop_writes(c, host);
		}
	}
	c->code_gen = now;
	pthread_mutex_unlock(&p->log_lock);
	return rc;
}

int sys_is_code(struct cpu *c, uint8_t *host)
{
	int64_t ci = code_index(c->phys, host);
	return code_marked(c->phys, ci);
}

/* MMIO at linear a, whose page the last translation resolved to mmio_gpa. */
uint64_t sys_mmio_read(struct cpu *c, uint64_t a, unsigned sz)
{
	return c->plat->mmio_read(c->plat->opaque, (c->mmio_gpa & ~0xfffull) | (a & 0xfff), sz);
}

void sys_mmio_write(struct cpu *c, uint64_t a, unsigned sz, uint64_t v)
{
	c->plat->mmio_write(c->plat->opaque, (c->mmio_gpa & ~0xfffull) | (a & 0xfff), sz, v);
	c->end_block = 1; /* a device may have raised an interrupt */
}

/* Code bytes for the decoder, without faulting: returns how many of the 15
 * bytes at a are fetchable, and the physical address of a in *phys. */
size_t sys_fetch_code(struct cpu *c, uint64_t a, uint8_t *buf, uint64_t *phys)
{
	size_t got = 0;
	*phys = ~0ull;
	while (got < 15) {
		uint64_t at = a + got, pa;
		int w;
		if (sys_long_mode(c) && !canonical(at))
			break;
		if (page_walk(c, at, 2, c->cpl == 3, &pa, &w, 1))
			break;
		uint8_t *host = c->plat->ram_ptr(c->plat->opaque, pa & ~0xfffull, 4096);
		if (!host)
			break;
		if (!got)
			*phys = pa;
		size_t chunk = 0x1000 - (at & 0xfff);
		if (chunk > 15 - got)
			chunk = 15 - got;
		memcpy(buf + got, host + (at & 0xfff), chunk);
		got += chunk;
	}
	return got;
}

uint8_t *sys_code_host(struct cpu *c, uint64_t a)
{
	uint64_t pa;
	int w;
	if ((sys_long_mode(c) && !canonical(a)) || page_walk(c, a, 2, c->cpl == 3, &pa, &w, 1))
		return NULL;
	return c->plat->ram_ptr(c->plat->opaque, pa & ~0xfffull, 4096);
}

/* Mark the RAM page of linear address a as holding code (it was fetchable). */
void sys_mark_code(struct cpu *c, uint64_t a)
{
	uint64_t pa;
	int w;
	if (page_walk(c, a, 2, c->cpl == 3, &pa, &w, 1))
		return;
	uint8_t *host = c->plat->ram_ptr(c->plat->opaque, pa & ~0xfffull, 4096);
	int64_t ci = code_index(c->phys, host);
	if (ci < 0)
		return;
	if (code_marked(c->phys, ci))
		return;
	/* Fast write entries to this page (any vCPU, any mapping) must go:
	 * other vCPUs drop theirs when they replay the event, this one here. */
	code_mark_set(c->phys, ci, CODE_MARKED, c->index);
	tlb_drop_writes(c, host);
}

/* ---- Linear reads/writes as the supervisor (IDT, GDT, TSS, stacks of a
 * privilege change): switch to the supervisor TLB bank for the access. ---- */

static uint64_t sv_read(struct cpu *c, uint64_t a, unsigned sz)
{
	struct cpu_tlb_entry *saved = c->tlbp;
	unsigned cpl = c->cpl;
	c->tlbp = c->tlb[0];
	c->cpl = 0;
	uint64_t v = mem_read(c, a, sz);
	c->tlbp = saved;
	c->cpl = cpl;
	return v;
}

static void set_cpl(struct cpu *c, unsigned cpl)
{
	c->cpl = cpl;
	c->tlbp = c->tlb[cpl == 3];
}

/* ---- Descriptors ---- */

/* Read the 8-byte descriptor for sel (GDT or LDT). 0 or -1 if outside the table. */
static int desc_read(struct cpu *c, uint16_t sel, uint64_t *d)
{
	const struct cpu_dtr *t;
	struct cpu_dtr ldt;
	if (sel & 4) {
		ldt.base = c->s.ldtr.base;
		ldt.limit = (uint16_t)(c->s.ldtr.limit > 0xffff ? 0xffff : c->s.ldtr.limit);
		t = &ldt;
	} else {
		t = &c->s.gdtr;
	}
	if ((uint32_t)(sel & ~7u) + 7 > t->limit)
		return -1;
	*d = sv_read(c, t->base + (sel & ~7u), 8);
	return 0;
}

static void seg_from_desc(struct cpu_seg *s, uint16_t sel, uint64_t d)
{
	s->sel = sel;
	s->base = ((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000);
	uint32_t limit = (uint32_t)((d & 0xffff) | ((d >> 32) & 0xf0000));
	if (d & (1ull << 55))
		limit = (limit << 12) | 0xfff;
	s->limit = limit;
	s->attr = (uint16_t)(((d >> 40) & 0xff) | ((d >> 40) & 0xf000));
}

/* Load a data segment register (DS ES FS GS SS) in protected/long mode. */
static void seg_load_data(struct cpu *c, int sr, uint16_t sel)
{
	if ((sel & ~3u) == 0) {
		if (sr == SEG_SS && (!sys_long_mode(c) || c->cpl == 3 || (sel & 3) != c->cpl))
			cpu_raise(c, EXC_GP, 0);
		c->s.seg[sr].sel = sel;
		c->s.seg[sr].attr = 0;
		c->s.seg[sr].base = 0;
		return;
	}
	uint64_t d;
	if (desc_read(c, sel, &d))
		cpu_raise(c, EXC_GP, sel & 0xfffc);
	unsigned type = (unsigned)(d >> 40) & 0x1f, dpl = (unsigned)(d >> 45) & 3;
	if (!(type & 0x10))
		cpu_raise(c, EXC_GP, sel & 0xfffc); /* a system descriptor */
	if (sr == SEG_SS) {
		if ((type & 0x1a) != 0x12 || dpl != c->cpl || (sel & 3) != c->cpl)
			cpu_raise(c, EXC_GP, sel & 0xfffc);
		if (!(d & (1ull << 47)))
			cpu_raise(c, EXC_SS, sel & 0xfffc);
	} else {
		if ((type & 0x1a) == 0x18) /* execute-only code */
			cpu_raise(c, EXC_GP, sel & 0xfffc);
		if (!(d & (1ull << 47)))
			cpu_raise(c, EXC_NP, sel & 0xfffc);
	}
	seg_from_desc(&c->s.seg[sr], sel, d);
}

/* Load CS for a far transfer to privilege cpl (already checked). */
static void seg_load_cs(struct cpu *c, uint16_t sel, uint64_t d, unsigned cpl)
{
	seg_from_desc(&c->s.seg[SEG_CS], (uint16_t)((sel & ~3u) | cpl), d);
	set_cpl(c, cpl);
}

static uint64_t cs_desc_checked(struct cpu *c, uint16_t sel)
{
	uint64_t d;
	if ((sel & ~3u) == 0 || desc_read(c, sel, &d))
		cpu_raise(c, EXC_GP, sel & 0xfffc);
	if ((((unsigned)(d >> 40)) & 0x18) != 0x18)
		cpu_raise(c, EXC_GP, sel & 0xfffc);
	if (!(d & (1ull << 47)))
		cpu_raise(c, EXC_NP, sel & 0xfffc);
	return d;
}

/* ---- Exception and interrupt delivery (64-bit IDT) ---- */

static int has_error_code(int v)
{
	return v == EXC_DF || (v >= EXC_TS && v <= EXC_PF) || v == EXC_AC || v == 21;
}

static int probe_write_noraise(struct cpu *c, uint64_t a, unsigned n);

/* Deliver vector v. ext: external interrupt; soft: INT n/INT3/INTO (RIP
 * already past the instruction). Faults inside come back to cpu_run as
 * nested exceptions. */
void sys_deliver(struct cpu *c, int v, uint32_t err, int soft, int ext)
{
	if (!(c->s.cr0 & 1)) {
		/* Real mode: the IVT at IDTR.base. */
		uint32_t ent = (uint32_t)sv_read(c, c->s.idtr.base + (uint64_t)v * 4, 4);
		uint64_t sp = c->s.seg[SEG_SS].base + ((c->s.gpr[R_RSP] - 6) & 0xffff);
		uint16_t fl = (uint16_t)cpu_get_rflags(c);
		mem_write(c, sp + 4, 2, fl);
		mem_write(c, sp + 2, 2, c->s.seg[SEG_CS].sel);
		mem_write(c, sp, 2, c->s.rip);
		c->s.gpr[R_RSP] = (c->s.gpr[R_RSP] & ~0xffffull) | ((c->s.gpr[R_RSP] - 6) & 0xffff);
		cpu_set_rflags(c, cpu_get_rflags(c) & ~(uint64_t)(FL_IF | FL_TF | FL_AC));
		c->s.seg[SEG_CS].sel = (uint16_t)(ent >> 16);
		c->s.seg[SEG_CS].base = (ent >> 16) << 4;
		c->s.rip = ent & 0xffff;
		return;
	}
	if (!sys_long_mode(c)) {
		/* Legacy protected-mode IDTs are only met by code that runs with
		 * interrupts off (the SMP trampoline); a fault there is fatal. */
		cpu_raise(c, EXC_DF, 0);
	}
	uint32_t gate_err = (uint32_t)v * 8 + 2 + (ext ? 1 : 0);
	if ((uint32_t)v * 16 + 15 > c->s.idtr.limit)
		cpu_raise(c, EXC_GP, gate_err);
	uint64_t lo = sv_read(c, c->s.idtr.base + (uint64_t)v * 16, 8);
	uint64_t hi = sv_read(c, c->s.idtr.base + (uint64_t)v * 16 + 8, 8);
	unsigned type = (unsigned)(lo >> 40) & 0x1f, dpl = (unsigned)(lo >> 45) & 3;
	if (type != 0x0e && type != 0x0f)
		cpu_raise(c, EXC_GP, gate_err);
	if (soft && dpl < c->cpl)
		cpu_raise(c, EXC_GP, gate_err);
	if (!(lo & (1ull << 47)))
		cpu_raise(c, EXC_NP, gate_err);
	uint16_t sel = (uint16_t)(lo >> 16);
	uint64_t target = (lo & 0xffff) | ((lo >> 32) & 0xffff0000ull) | (hi << 32);
	unsigned ist = (unsigned)(lo >> 32) & 7;
	uint64_t d = cs_desc_checked(c, sel);
	unsigned new_cpl = (unsigned)(d >> 45) & 3;
	if (!(d & (1ull << 53)) || new_cpl > c->cpl)
		cpu_raise(c, EXC_GP, sel & 0xfffc);
	if (((d >> 40) & 4)) /* conforming: stays at CPL */
		new_cpl = c->cpl;

	uint64_t rsp = c->s.gpr[R_RSP];
	uint16_t old_ss = c->s.seg[SEG_SS].sel, old_cs = c->s.seg[SEG_CS].sel;
	uint64_t old_rsp = rsp, flags = cpu_get_rflags(c);
	if (new_cpl < c->cpl)
		rsp = sv_read(c, c->s.tr.base + 4 + 8ull * new_cpl, 8);
	if (ist)
		rsp = sv_read(c, c->s.tr.base + 36 + 8ull * (ist - 1), 8);
	rsp &= ~15ull;
	int with_err = has_error_code(v) && !soft && !ext;
	uint64_t frame[6];
	unsigned n = 0;
	if (with_err)
		frame[n++] = err;
	frame[n++] = c->s.rip;
	frame[n++] = old_cs;
	frame[n++] = flags;
	frame[n++] = old_rsp;
	frame[n++] = old_ss;
	/* Push at the new privilege; probe first so a fault leaves CPL as it was. */
	unsigned old_cpl = c->cpl;
	set_cpl(c, new_cpl);
	uint64_t sp = rsp - 8ull * n;
	if (!canonical(sp) || !canonical(rsp - 1)) {
		set_cpl(c, old_cpl);
		cpu_raise(c, EXC_SS, 0);
	}
	if (probe_write_noraise(c, sp, 8 * n)) {
		set_cpl(c, old_cpl);
		cpu_raise(c, c->exc_vector, c->exc_error);
	}
	for (unsigned k = 0; k < n; k++)
		mem_write(c, sp + 8ull * k, 8, frame[k]);
	c->s.gpr[R_RSP] = sp;
	if (new_cpl != old_cpl) {
		c->s.seg[SEG_SS].sel = (uint16_t)new_cpl; /* NULL selector with RPL */
		c->s.seg[SEG_SS].attr = 0;
		c->s.seg[SEG_SS].base = 0;
	}
	seg_from_desc(&c->s.seg[SEG_CS], (uint16_t)((sel & ~3u) | new_cpl), d);
	uint64_t nf = flags & ~(uint64_t)(FL_TF | FL_NT | FL_RF | FL_VM);
	if (type == 0x0e)
		nf &= ~(uint64_t)FL_IF;
	cpu_set_rflags(c, nf);
	c->s.rip = target;
	c->halted = 0;
}

/* A write probe that reports a fault instead of unwinding: 0 if [a, a+n)
 * is writable now. */
static int probe_write_noraise(struct cpu *c, uint64_t a, unsigned n)
{
	uint64_t end = a + n - 1;
	for (uint64_t p = a & ~0xfffull;; p += 0x1000) {
		uint64_t at = p < a ? a : p, pa;
		int w;
		uint32_t err = page_walk(c, at, 1, c->cpl == 3, &pa, &w, 1);
		if (err) {
			c->exc_vector = EXC_PF;
			c->exc_error = err & ~PW_FAULT;
			c->exc_addr = at;
			c->s.cr2 = at;
			return 1;
		}
		if (p >= (end & ~0xfffull))
			break;
	}
	return 0;
}

/* Exception classes for double-fault rules (SDM Table 6-5). */
static int exc_class(int v)
{
	if (v == EXC_PF)
		return 2;
	if (v == EXC_DE || (v >= EXC_TS && v <= EXC_GP))
		return 1;
	return 0;
}

/* Called by cpu_run for each raised exception in system mode. Returns 0 to
 * continue, or 1 for a triple fault. */
int sys_exception(struct cpu *c)
{
	int v = c->exc_vector;
	uint32_t err = c->exc_error;
	int soft = c->exc_soft;
	if (c->trace)
		fprintf(stderr,
			"corral: vCPU %u: %s (error %#x) at %04x:%#llx cr0 %#llx efer %#llx cr3 %#llx bits %u%s\n",
			c->index, cpu_exc_name(v), err, c->s.seg[SEG_CS].sel, (unsigned long long)c->s.rip,
			(unsigned long long)c->s.cr0, (unsigned long long)c->s.efer, (unsigned long long)c->s.cr3,
			c->code_bits, c->delivering ? " while delivering" : "");
	c->exc_soft = 0;
	c->exc_noncanon = 0;
	if (c->delivering) {
		int first = c->deliver_vec;
		if (first == EXC_DF)
			return 1;
		int a = exc_class(first), b = exc_class(v);
		if ((a == 1 && b == 1) || (a == 2 && b >= 1)) {
			v = EXC_DF;
			err = 0;
		}
		soft = 0;
	}
	c->delivering = 1;
	c->deliver_vec = v;
	sys_deliver(c, v, err, soft, 0);
	c->delivering = 0;
	return 0;
}

/* ---- Interrupts at block boundaries ---- */

void cpu_inject_nmi(struct cpu *c)
{
	c->nmi_pending = 1;
}

int sys_poll_interrupts(struct cpu *c)
{
	if (c->nmi_pending && !c->nmi_blocked && c->s.rip != c->shadow_rip) {
		c->nmi_pending = 0;
		c->nmi_blocked = 1;
		c->delivering = 1;
		c->deliver_vec = -1;
		sys_deliver(c, EXC_NMI, 0, 0, 1);
		c->delivering = 0;
		return 1;
	}
	if (!(c->s.rflags & FL_IF) || c->s.rip == c->shadow_rip)
		return 0;
	if (!c->plat->intr_pending(c->plat->opaque, c->index))
		return 0;
	int v = c->plat->intr_ack(c->plat->opaque, c->index);
	if (v < 0)
		return 0;
	c->delivering = 1;
	c->deliver_vec = -1;
	sys_deliver(c, v, 0, 0, 1);
	c->delivering = 0;
	return 1;
}

/* ---- Privileged instructions ---- */

static void need_cpl0(struct cpu *c)
{
	if (c->cpl != 0)
		cpu_raise(c, EXC_GP, 0);
}

static unsigned iopl(const struct cpu *c)
{
	return (unsigned)(c->s.rflags >> 12) & 3;
}

static void need_io(struct cpu *c)
{
	if ((c->s.cr0 & 1) && c->cpl > iopl(c))
		cpu_raise(c, EXC_GP, 0);
}

void op_sys_hlt(struct cpu *c, const struct insn *i)
{
	need_cpl0(c);
	insn_next(c, i);
	c->halted = 1;
	c->end_block = 1;
}

void op_sys_cli(struct cpu *c, const struct insn *i)
{
	need_io(c);
	c->s.rflags &= ~(uint64_t)FL_IF;
	insn_next(c, i);
}

void op_sys_sti(struct cpu *c, const struct insn *i)
{
	need_io(c);
	int was = (c->s.rflags & FL_IF) != 0;
	c->s.rflags |= FL_IF;
	insn_next(c, i);
	if (!was)
		c->shadow_rip = c->s.rip; /* one instruction of interrupt shadow */
	c->end_block = 1;
}

static uint16_t io_port(struct cpu *c, const struct insn *i)
{
	return (i->op == 0xe4 || i->op == 0xe5 || i->op == 0xe6 || i->op == 0xe7) ? i->imm8 : (uint16_t)c->s.gpr[R_RDX];
}

void op_sys_in(struct cpu *c, const struct insn *i)
{
	need_io(c);
	unsigned sz = (i->op & 1) ? (i->opsz == 2 ? 2 : 4) : 1;
	uint64_t v = c->plat->pio_read(c->plat->opaque, io_port(c, i), sz);
	reg_write(c, R_RAX, sz, v);
	insn_next(c, i);
	c->end_block = 1;
}

void op_sys_out(struct cpu *c, const struct insn *i)
{
	need_io(c);
	unsigned sz = (i->op & 1) ? (i->opsz == 2 ? 2 : 4) : 1;
	c->plat->pio_write(c->plat->opaque, io_port(c, i), sz, reg_read(c, R_RAX, sz));
	insn_next(c, i);
	c->end_block = 1;
}

/* INS/OUTS, with REP */
void op_sys_ins(struct cpu *c, const struct insn *i)
{
	need_io(c);
	unsigned sz = (i->op & 1) ? (i->opsz == 2 ? 2 : 4) : 1;
	int64_t step = (c->s.rflags & FL_DF) ? -(int64_t)sz : (int64_t)sz;
	uint64_t n = i->rep ? reg_read(c, R_RCX, i->adsz) : 1, budget = REP_CHUNK;
	c->end_block = 1; /* a device may have raised an interrupt */
	while (n) {
		if (!budget--)
			return; /* the rest as the same instruction again */
		uint64_t d = reg_read(c, R_RDI, i->adsz);
		mem_probe_write(c, d, sz);
		uint64_t v = c->plat->pio_read(c->plat->opaque, (uint16_t)c->s.gpr[R_RDX], sz);
		mem_write(c, d, sz, v);
		reg_write(c, R_RDI, i->adsz, d + (uint64_t)step);
		n--;
		if (i->rep)
			reg_write(c, R_RCX, i->adsz, n);
	}
	insn_next(c, i);
}

void op_sys_outs(struct cpu *c, const struct insn *i)
{
	need_io(c);
	unsigned sz = (i->op & 1) ? (i->opsz == 2 ? 2 : 4) : 1;
	int64_t step = (c->s.rflags & FL_DF) ? -(int64_t)sz : (int64_t)sz;
	uint64_t n = i->rep ? reg_read(c, R_RCX, i->adsz) : 1, budget = REP_CHUNK;
	c->end_block = 1; /* a device may have raised an interrupt */
	while (n) {
		if (!budget--)
			return; /* the rest as the same instruction again */
		uint64_t s = reg_read(c, R_RSI, i->adsz);
		if (i->seg == SEG_FS || i->seg == SEG_GS)
			s += c->s.seg[i->seg].base;
		uint64_t v = mem_read(c, s, sz);
		c->plat->pio_write(c->plat->opaque, (uint16_t)c->s.gpr[R_RDX], sz, v);
		reg_write(c, R_RSI, i->adsz, reg_read(c, R_RSI, i->adsz) + (uint64_t)step);
		n--;
		if (i->rep)
			reg_write(c, R_RCX, i->adsz, n);
	}
	insn_next(c, i);
}

/* MOV to/from control registers: 0F 20 (read) / 0F 22 (write); reg = CRn */
void op_sys_mov_cr(struct cpu *c, const struct insn *i)
{
	need_cpl0(c);
	unsigned cr = i->reg & 15;
	int write = i->op == 0x22;
	if (!write) {
		uint64_t v;
		switch (cr) {
		case 0: v = c->s.cr0; break;
		case 2: v = c->s.cr2; break;
		case 3: v = c->s.cr3; break;
		case 4: v = c->s.cr4; break;
		case 8: {
			uint64_t tpr = 0;
			c->plat->apic_msr_read(c->plat->opaque, c->index, 0x808, &tpr);
			v = (tpr >> 4) & 15;
			break;
		}
		default: cpu_undefined(c, i);
		}
		c->s.gpr[i->rm] = v;
		insn_next(c, i);
		return;
	}
	uint64_t v = c->s.gpr[i->rm];
	switch (cr) {
	case 0:
		if (v >> 32)
			cpu_raise(c, EXC_GP, 0);
		if ((v & 0x80000000u) && !(v & 1))
			cpu_raise(c, EXC_GP, 0);
		if ((v & 0x80000000u) && !(c->s.cr0 & 0x80000000u) && (c->s.efer & 0x100)) {
			if (!(c->s.cr4 & 0x20))
				cpu_raise(c, EXC_GP, 0);
			c->s.efer |= 0x400; /* LMA */
		}
		if (!(v & 0x80000000u))
			c->s.efer &= ~0x400ull;
		c->s.cr0 = v | 0x10; /* ET is fixed to 1 */
		break;
	case 3:
		c->s.cr3 = v & ~(1ull << 63); /* bit 63: PCID no-flush (no PCID here) */
		if (c->s.cr4 & 0x80)	      /* PGE: global pages stay */
			cpu_tlb_flush_nonglobal(c);
		else
			cpu_tlb_flush(c);
		break;
	case 4:
		if (v & ~0x3fffffull)
			cpu_raise(c, EXC_GP, 0);
		if (sys_long_mode(c) && !(v & 0x20))
			cpu_raise(c, EXC_GP, 0);
		c->s.cr4 = v;
		break;
	case 8:
		if (v > 15)
			cpu_raise(c, EXC_GP, 0);
		c->plat->apic_msr_write(c->plat->opaque, c->index, 0x808, v << 4);
		break;
	default: cpu_undefined(c, i);
	}
	if (cr == 0 || cr == 4) /* paging modes and PGE: everything goes */
		cpu_tlb_flush(c);
	insn_next(c, i);
	c->end_block = 1;
}

void op_sys_mov_dr(struct cpu *c, const struct insn *i)
{
	need_cpl0(c);
	unsigned dr = i->reg & 7;
	if (i->op == 0x21)
		c->s.gpr[i->rm] = dr == 6 ? (c->s.dr[6] | 0xffff0ff0) : dr == 7 ? (c->s.dr[7] | 0x400) : c->s.dr[dr];
	else
		c->s.dr[dr] = c->s.gpr[i->rm];
	insn_next(c, i);
}

static uint64_t tsc_now(struct cpu *c)
{
	/* 1 GHz: one TSC tick per virtual nanosecond (CPUID leaf 0x15 says so) */
	return c->plat->clock_ns(c->plat->opaque) + c->tsc_offset;
}

uint64_t sys_tsc(struct cpu *c)
{
	return tsc_now(c);
}

static int msr_read(struct cpu *c, uint32_t msr, uint64_t *v)
{
	struct cpu_msrs *m = &c->s.msr;
	switch (msr) {
	case 0x10: *v = tsc_now(c); return 0;
	case 0x1b: *v = m->apic_base; return 0;
	case 0x3a: *v = 1; return 0; /* FEATURE_CONTROL: locked, VMX off */
	case 0x10a: *v = CPU_ARCH_CAPABILITIES; return 0;
	case 0x8b: *v = 0; return 0;	 /* microcode revision */
	case 0xfe: *v = 0x508; return 0; /* MTRRCAP: 8 variable, fixed, WC */
	case 0x174: *v = m->sysenter_cs; return 0;
	case 0x175: *v = m->sysenter_esp; return 0;
	case 0x176: *v = m->sysenter_eip; return 0;
	case 0x179: *v = 0; return 0; /* MCG_CAP */
	case 0x17a: *v = 0; return 0;
	case 0x1a0: *v = m->misc_enable; return 0;
	case 0x277: *v = m->pat; return 0;
	case 0x2ff: *v = m->mtrr_def_type; return 0;
	case 0x3b: *v = m->tsc_adjust; return 0;
	case 0xc0000080: *v = c->s.efer; return 0;
	case 0xc0000081: *v = m->star; return 0;
	case 0xc0000082: *v = m->lstar; return 0;
	case 0xc0000083: *v = m->cstar; return 0;
	case 0xc0000084: *v = m->sfmask; return 0;
	case 0xc0000100: *v = c->s.seg[SEG_FS].base; return 0;
	case 0xc0000101: *v = c->s.seg[SEG_GS].base; return 0;
	case 0xc0000102: *v = m->kernel_gs_base; return 0;
	case 0xc0000103: *v = m->tsc_aux; return 0;
	}
	if (msr >= 0x200 && msr < 0x210) {
		*v = m->mtrr_var[msr - 0x200];
		return 0;
	}
	if (msr == 0x250 || msr == 0x258 || msr == 0x259 || (msr >= 0x268 && msr <= 0x26f)) {
		unsigned k = msr == 0x250 ? 0 : msr == 0x258 ? 1 : msr == 0x259 ? 2 : 3 + (msr - 0x268);
		*v = m->mtrr_fixed[k];
		return 0;
	}
	if ((msr >= 0x800 && msr <= 0x8ff) || msr == 0x6e0)
		return c->plat->apic_msr_read(c->plat->opaque, c->index, msr, v);
	return -1;
}

static int msr_write(struct cpu *c, uint32_t msr, uint64_t v)
{
	struct cpu_msrs *m = &c->s.msr;
	switch (msr) {
	case 0x10:
		/* SDM 17.17.3: a write to the TSC adds the same step to TSC_ADJUST */
		m->tsc_adjust += v - tsc_now(c);
		c->tsc_offset = v - c->plat->clock_ns(c->plat->opaque);
		return 0;
	case 0x1b:
		if (c->plat->apic_msr_write(c->plat->opaque, c->index, msr, v))
			return -1;
		m->apic_base = v;
		return 0;
	case 0x8b:
	case 0x79: return 0; /* microcode */
	case 0x174: m->sysenter_cs = v; return 0;
	case 0x175: m->sysenter_esp = v; return 0;
	case 0x176: m->sysenter_eip = v; return 0;
	case 0x17a: return 0;
	case 0x1a0: m->misc_enable = v; return 0;
	case 0x277: m->pat = v; return 0;
	case 0x2ff: m->mtrr_def_type = v; return 0;
	case 0x3b:
		/* ... and a write to TSC_ADJUST moves the TSC by its change */
		c->tsc_offset += v - m->tsc_adjust;
		m->tsc_adjust = v;
		return 0;
	case 0xc0000080: {
		/* SCE LME NXE writable; LMA follows CR0.PG */
		if (v & ~0xd01ull)
			return -1;
		uint64_t lma = c->s.efer & 0x400;
		if ((c->s.cr0 & 0x80000000u) && ((v ^ c->s.efer) & 0x100))
			return -1;
		c->s.efer = (v & 0xd01) | lma;
		cpu_tlb_flush(c);
		return 0;
	}
	case 0xc0000081: m->star = v; return 0;
	case 0xc0000082:
		if (!canonical(v))
			return -1;
		m->lstar = v;
		return 0;
	case 0xc0000083:
		if (!canonical(v))
			return -1;
		m->cstar = v;
		return 0;
	case 0xc0000084: m->sfmask = v & 0xffffffff; return 0;
	case 0xc0000100:
		if (!canonical(v))
			return -1;
		c->s.seg[SEG_FS].base = v;
		return 0;
	case 0xc0000101:
		if (!canonical(v))
			return -1;
		c->s.seg[SEG_GS].base = v;
		return 0;
	case 0xc0000102:
		if (!canonical(v))
			return -1;
		m->kernel_gs_base = v;
		return 0;
	case 0xc0000103: m->tsc_aux = v & 0xffffffff; return 0;
	}
	if (msr >= 0x200 && msr < 0x210) {
		m->mtrr_var[msr - 0x200] = v;
		return 0;
	}
	if (msr == 0x250 || msr == 0x258 || msr == 0x259 || (msr >= 0x268 && msr <= 0x26f)) {
		unsigned k = msr == 0x250 ? 0 : msr == 0x258 ? 1 : msr == 0x259 ? 2 : 3 + (msr - 0x268);
		m->mtrr_fixed[k] = v;
		return 0;
	}
	if ((msr >= 0x800 && msr <= 0x8ff) || msr == 0x6e0)
		return c->plat->apic_msr_write(c->plat->opaque, c->index, msr, v);
	return -1;
}

void op_sys_rdmsr(struct cpu *c, const struct insn *i)
{
	need_cpl0(c);
	uint64_t v;
	if (msr_read(c, (uint32_t)c->s.gpr[R_RCX], &v))
		cpu_raise(c, EXC_GP, 0);
	c->s.gpr[R_RAX] = v & 0xffffffff;
	c->s.gpr[R_RDX] = v >> 32;
	insn_next(c, i);
}

void op_sys_wrmsr(struct cpu *c, const struct insn *i)
{
	need_cpl0(c);
	uint64_t v = (c->s.gpr[R_RDX] << 32) | (c->s.gpr[R_RAX] & 0xffffffff);
	if (msr_write(c, (uint32_t)c->s.gpr[R_RCX], v))
		cpu_raise(c, EXC_GP, 0);
	insn_next(c, i);
	c->end_block = 1;
}

void op_sys_rdtsc(struct cpu *c, const struct insn *i)
{
	if ((c->s.cr4 & 4) && c->cpl)
		cpu_raise(c, EXC_GP, 0);
	uint64_t t = tsc_now(c);
	c->s.gpr[R_RAX] = t & 0xffffffff;
	c->s.gpr[R_RDX] = t >> 32;
	insn_next(c, i);
}

void op_sys_syscall(struct cpu *c, const struct insn *i)
{
	if (!(c->s.efer & 1) || !sys_long_mode(c))
		cpu_undefined(c, i);
	uint64_t next = c->s.rip + i->len;
	c->s.gpr[R_RCX] = next;
	uint64_t fl = cpu_get_rflags(c);
	c->s.gpr[R_R11] = fl & ~(uint64_t)FL_RF;
	uint16_t cs = (uint16_t)(c->s.msr.star >> 32) & 0xfffc;
	seg_set(&c->s.seg[SEG_CS], cs, 0, 0xffffffff, 0xa09b);
	seg_set(&c->s.seg[SEG_SS], (uint16_t)(cs + 8), 0, 0xffffffff, 0xc093);
	cpu_set_rflags(c, fl & ~c->s.msr.sfmask & ~(uint64_t)FL_RF);
	set_cpl(c, 0);
	c->s.rip = c->s.msr.lstar;
	c->end_block = 1;
}

void op_sys_sysret(struct cpu *c, const struct insn *i)
{
	if (!(c->s.efer & 1) || !sys_long_mode(c))
		cpu_undefined(c, i);
	need_cpl0(c);
	uint16_t base = (uint16_t)(c->s.msr.star >> 48);
	if (i->rex & 8) {
		if (!canonical(c->s.gpr[R_RCX]))
			cpu_raise(c, EXC_GP, 0);
		c->s.rip = c->s.gpr[R_RCX];
		seg_set(&c->s.seg[SEG_CS], (uint16_t)((base + 16) | 3), 0, 0xffffffff, 0xa0fb);
	} else {
		c->s.rip = c->s.gpr[R_RCX] & 0xffffffff;
		seg_set(&c->s.seg[SEG_CS], (uint16_t)(base | 3), 0, 0xffffffff, 0xc0fb);
	}
	seg_set(&c->s.seg[SEG_SS], (uint16_t)((base + 8) | 3), 0, 0xffffffff, 0xc0f3);
	cpu_set_rflags(c, (c->s.gpr[R_R11] & 0x3c7fd7ull) | 2);
	set_cpl(c, 3);
	c->end_block = 1;
}

void op_sys_swapgs(struct cpu *c, const struct insn *i)
{
	need_cpl0(c);
	uint64_t t = c->s.seg[SEG_GS].base;
	c->s.seg[SEG_GS].base = c->s.msr.kernel_gs_base;
	c->s.msr.kernel_gs_base = t;
	insn_next(c, i);
}

void op_sys_rdtscp(struct cpu *c, const struct insn *i)
{
	if ((c->s.cr4 & 4) && c->cpl)
		cpu_raise(c, EXC_GP, 0);
	uint64_t t = tsc_now(c);
	c->s.gpr[R_RAX] = t & 0xffffffff;
	c->s.gpr[R_RDX] = t >> 32;
	c->s.gpr[R_RCX] = c->s.msr.tsc_aux & 0xffffffff;
	insn_next(c, i);
}

/* IRET (64-bit: always pops RIP CS RFLAGS RSP SS) */
void op_sys_iret(struct cpu *c, const struct insn *i)
{
	if (!(c->s.cr0 & 1)) {
		/* real mode */
		uint64_t sp = c->s.seg[SEG_SS].base + (c->s.gpr[R_RSP] & 0xffff);
		uint16_t ip = (uint16_t)mem_read(c, sp, 2), cs = (uint16_t)mem_read(c, sp + 2, 2);
		uint16_t fl = (uint16_t)mem_read(c, sp + 4, 2);
		c->s.gpr[R_RSP] = (c->s.gpr[R_RSP] & ~0xffffull) | ((c->s.gpr[R_RSP] + 6) & 0xffff);
		c->s.seg[SEG_CS].sel = cs;
		c->s.seg[SEG_CS].base = (uint64_t)cs << 4;
		c->s.rip = ip;
		cpu_set_rflags(c, (cpu_get_rflags(c) & ~0xffffull) | fl);
		c->end_block = 1;
		return;
	}
	if (!sys_long_mode(c) || i->opsz != 8)
		cpu_undefined(c, i); /* only 64-bit IRETQ is supported in protected mode */
	uint64_t sp = c->s.gpr[R_RSP];
	uint64_t rip = mem_read(c, sp, 8);
	uint16_t cs = (uint16_t)mem_read(c, sp + 8, 8);
	uint64_t fl = mem_read(c, sp + 16, 8);
	uint64_t rsp = mem_read(c, sp + 24, 8);
	uint16_t ss = (uint16_t)mem_read(c, sp + 32, 8);
	unsigned rpl = cs & 3;
	if (rpl < c->cpl)
		cpu_raise(c, EXC_GP, cs & 0xfffc);
	uint64_t d = cs_desc_checked(c, cs);
	if (!canonical(rip))
		cpu_raise(c, EXC_GP, 0);
	uint64_t ssd = 0;
	if ((ss & ~3u) != 0) {
		if (desc_read(c, ss, &ssd))
			cpu_raise(c, EXC_GP, ss & 0xfffc);
	} else if (rpl == 3) {
		cpu_raise(c, EXC_GP, 0);
	}
	uint64_t changeable = FL_ARITH | FL_TF | FL_DF | FL_NT | FL_AC | FL_ID | FL_RF;
	if (c->cpl <= iopl(c))
		changeable |= FL_IF;
	if (c->cpl == 0)
		changeable |= FL_IOPL | FL_VIF | FL_VIP;
	uint64_t nf = (cpu_get_rflags(c) & ~changeable) | (fl & changeable);
	seg_load_cs(c, cs, d, rpl);
	if (ssd)
		seg_from_desc(&c->s.seg[SEG_SS], ss, ssd);
	else {
		c->s.seg[SEG_SS].sel = ss;
		c->s.seg[SEG_SS].base = 0;
		c->s.seg[SEG_SS].attr = 0;
	}
	c->s.gpr[R_RSP] = rsp;
	c->s.rip = rip;
	cpu_set_rflags(c, nf);
	c->nmi_blocked = 0;
	c->end_block = 1;
}

/* Far RET (CB / CA iw; REX.W: 64-bit pops). Same or outer privilege. */
void op_sys_retf(struct cpu *c, const struct insn *i)
{
	unsigned sz = (i->rex & 8) ? 8 : 4;
	uint64_t sp = c->s.gpr[R_RSP];
	if (!(c->s.cr0 & 1)) {
		uint64_t a = c->s.seg[SEG_SS].base + (sp & 0xffff);
		uint16_t ip = (uint16_t)mem_read(c, a, 2), cs = (uint16_t)mem_read(c, a + 2, 2);
		c->s.gpr[R_RSP] = (sp & ~0xffffull) | ((sp + 4 + (i->op == 0xca ? i->imm : 0)) & 0xffff);
		c->s.seg[SEG_CS].sel = cs;
		c->s.seg[SEG_CS].base = (uint64_t)cs << 4;
		c->s.rip = ip;
		c->end_block = 1;
		return;
	}
	uint64_t rip = mem_read(c, sp, sz);
	uint16_t cs = (uint16_t)mem_read(c, sp + sz, sz);
	unsigned rpl = cs & 3;
	if (rpl < c->cpl)
		cpu_raise(c, EXC_GP, cs & 0xfffc);
	uint64_t d = cs_desc_checked(c, cs);
	uint64_t adj = i->op == 0xca ? (i->imm & 0xffff) : 0;
	if (rpl != c->cpl) {
		uint64_t rsp = mem_read(c, sp + 2 * sz + adj, sz);
		uint16_t ss = (uint16_t)mem_read(c, sp + 3 * sz + adj, sz);
		seg_load_cs(c, cs, d, rpl);
		c->s.seg[SEG_SS].sel = ss;
		c->s.seg[SEG_SS].base = 0;
		c->s.gpr[R_RSP] = rsp + adj;
	} else {
		seg_load_cs(c, cs, d, rpl);
		c->s.gpr[R_RSP] = sp + 2 * sz + adj;
	}
	c->s.rip = ((d >> 53) & 1) ? rip : (rip & 0xffffffff);
	c->end_block = 1;
}

void op_sys_int(struct cpu *c, const struct insn *i)
{
	insn_next(c, i);
	c->exc_soft = 1;
	cpu_raise(c, i->op == 0xcc ? EXC_BP : i->imm8, 0);
}

void op_sys_mov_sreg(struct cpu *c, const struct insn *i)
{
	unsigned sr = i->aux;
	uint16_t v = (uint16_t)rm_read(c, i, 2);
	if (!(c->s.cr0 & 1)) {
		c->s.seg[sr].sel = v;
		c->s.seg[sr].base = (uint64_t)v << 4;
	} else {
		seg_load_data(c, (int)sr, v);
	}
	insn_next(c, i);
	if (sr == SEG_SS)
		c->shadow_rip = c->s.rip;
	c->end_block = 1;
}

void op_sys_pop_sreg(struct cpu *c, const struct insn *i)
{
	uint64_t sp = c->s.gpr[R_RSP];
	uint16_t v = (uint16_t)mem_read(c, sp, i->opsz);
	if (!(c->s.cr0 & 1)) {
		c->s.seg[i->aux].sel = v;
		c->s.seg[i->aux].base = (uint64_t)v << 4;
	} else {
		seg_load_data(c, i->aux, v);
	}
	c->s.gpr[R_RSP] = sp + i->opsz;
	insn_next(c, i);
}

/* 0F 00: SLDT STR LLDT LTR VERR VERW */
void op_sys_grp6(struct cpu *c, const struct insn *i)
{
	unsigned g = (i->modrm >> 3) & 7;
	switch (g) {
	case 0: rm_write(c, i, i->mod3 ? i->opsz : 2, c->s.ldtr.sel); break;
	case 1: rm_write(c, i, i->mod3 ? i->opsz : 2, c->s.tr.sel); break;
	case 2:
	case 3: {
		need_cpl0(c);
		uint16_t sel = (uint16_t)rm_read(c, i, 2);
		struct cpu_seg *s = g == 2 ? &c->s.ldtr : &c->s.tr;
		if ((sel & ~3u) == 0) {
			if (g == 3)
				cpu_raise(c, EXC_GP, 0);
			s->sel = 0;
			s->base = 0;
			s->limit = 0;
			s->attr = 0;
			break;
		}
		if (sel & 4)
			cpu_raise(c, EXC_GP, sel & 0xfffc);
		if ((uint32_t)(sel & ~7u) + 15 > c->s.gdtr.limit)
			cpu_raise(c, EXC_GP, sel & 0xfffc);
		uint64_t a = c->s.gdtr.base + (sel & ~7u);
		uint64_t d = sv_read(c, a, 8), hi = sys_long_mode(c) ? sv_read(c, a + 8, 8) : 0;
		unsigned type = (unsigned)(d >> 40) & 0x1f;
		if (g == 2 ? type != 2 : (type != 9 && type != 1))
			cpu_raise(c, EXC_GP, sel & 0xfffc);
		if (!(d & (1ull << 47)))
			cpu_raise(c, EXC_NP, sel & 0xfffc);
		seg_from_desc(s, sel, d);
		s->base |= (hi & 0xffffffff) << 32;
		if (g == 3) { /* mark busy */
			uint64_t nd = d | (2ull << 40);
			struct cpu_tlb_entry *saved = c->tlbp;
			c->tlbp = c->tlb[0];
			mem_write(c, a, 8, nd);
			c->tlbp = saved;
			s->attr |= 2;
		}
		break;
	}
	case 4:
	case 5: { /* VERR/VERW: ZF says whether the segment is readable/writable here */
		uint16_t sel = (uint16_t)rm_read(c, i, 2);
		uint64_t d;
		int ok = 0;
		if ((sel & ~3u) && !desc_read(c, sel, &d) && (d & (1ull << 44))) {
			unsigned type = (unsigned)(d >> 40) & 0xf, dpl = (unsigned)(d >> 45) & 3;
			int code = type & 8, conforming = code && (type & 4);
			int priv_ok = conforming || (dpl >= c->cpl && dpl >= (sel & 3u));
			ok = priv_ok && (g == 4 ? (!code || (type & 2)) : (!code && (type & 2)));
		}
		flags_set(c, FL_ZF, ok ? FL_ZF : 0);
		break;
	}
	default: cpu_undefined(c, i);
	}
	insn_next(c, i);
}

/* 0F 01 memory forms: SGDT SIDT LGDT LIDT SMSW LMSW INVLPG */
void op_sys_grp7(struct cpu *c, const struct insn *i)
{
	unsigned g = (i->modrm >> 3) & 7;
	uint64_t ea = insn_ea(c, i);
	switch (g) {
	case 0:
	case 1: {
		const struct cpu_dtr *t = g ? &c->s.idtr : &c->s.gdtr;
		mem_probe_write(c, ea, 10);
		mem_write(c, ea, 2, t->limit);
		mem_write(c, ea + 2, 8, t->base);
		break;
	}
	case 2:
	case 3: {
		need_cpl0(c);
		uint16_t limit = (uint16_t)mem_read(c, ea, 2);
		uint64_t base = mem_read(c, ea + 2, sys_long_mode(c) ? 8 : 4);
		struct cpu_dtr *t = g == 2 ? &c->s.gdtr : &c->s.idtr;
		t->limit = limit;
		t->base = base;
		break;
	}
	case 4: rm_write(c, i, 2, c->s.cr0 & 0xffff); break;
	case 6: {
		need_cpl0(c);
		uint16_t v = (uint16_t)rm_read(c, i, 2);
		c->s.cr0 = (c->s.cr0 & ~0xeull) | (v & 0xf) | (c->s.cr0 & 1);
		break;
	}
	case 7:
		need_cpl0(c);
		cpu_tlb_flush_page(c, insn_ea(c, i)); /* INVLPG */
		c->end_block = 1;
		break;
	default: cpu_undefined(c, i);
	}
	insn_next(c, i);
}

/* 0F 01 register forms: SMSW r, SWAPGS, RDTSCP; the rest #UD */
void op_sys_grp7_reg(struct cpu *c, const struct insn *i)
{
	switch (i->modrm) {
	case 0xf8: op_sys_swapgs(c, i); return;
	}
	if (((i->modrm >> 3) & 7) == 4) {
		rm_write(c, i, i->opsz, c->s.cr0 & (i->opsz == 2 ? 0xffff : ~0ull));
		insn_next(c, i);
		return;
	}
	cpu_undefined(c, i);
}

void op_sys_clts(struct cpu *c, const struct insn *i)
{
	need_cpl0(c);
	c->s.cr0 &= ~8ull;
	insn_next(c, i);
}

void op_sys_wbinvd(struct cpu *c, const struct insn *i)
{
	need_cpl0(c);
	insn_next(c, i);
}

void op_sys_popf(struct cpu *c, const struct insn *i)
{
	uint64_t sp = c->s.gpr[R_RSP];
	uint64_t v = mem_read(c, sp, i->opsz);
	uint64_t changeable = FL_ARITH | FL_TF | FL_DF | FL_NT | FL_AC | FL_ID;
	if (c->cpl <= iopl(c))
		changeable |= FL_IF;
	if (c->cpl == 0)
		changeable |= FL_IOPL;
	if (i->opsz == 2)
		changeable &= 0xffff;
	int was = (c->s.rflags & FL_IF) != 0;
	c->s.gpr[R_RSP] = sp + i->opsz;
	cpu_set_rflags(c, (cpu_get_rflags(c) & ~changeable) | (v & changeable));
	insn_next(c, i);
	if (!was && (c->s.rflags & FL_IF))
		c->end_block = 1; /* interrupts may be deliverable now */
}

/* Far JMP to sel:off: real mode loads CS as sel << 4; protected and long
 * mode load a code descriptor (same privilege), which may switch the code
 * size, e.g. into 64-bit mode once EFER.LMA is set. */
static void far_jump(struct cpu *c, uint16_t sel, uint64_t off)
{
	if (!(c->s.cr0 & 1)) {
		c->s.seg[SEG_CS].sel = sel;
		c->s.seg[SEG_CS].base = (uint64_t)sel << 4;
		c->s.rip = off & 0xffff;
		c->end_block = 1;
		return;
	}
	uint64_t d = cs_desc_checked(c, sel);
	unsigned dpl = (unsigned)(d >> 45) & 3;
	int conforming = (d >> 42) & 1;
	if (conforming ? dpl > c->cpl : (dpl != c->cpl || (sel & 3) > c->cpl))
		cpu_raise(c, EXC_GP, sel & 0xfffc);
	seg_load_cs(c, sel, d, c->cpl);
	c->s.rip = off;
	c->end_block = 1;
}

void op_sys_ljmp(struct cpu *c, const struct insn *i)
{
	far_jump(c, (uint16_t)i->disp, i->imm);
}

void op_sys_ljmp_m(struct cpu *c, const struct insn *i)
{
	uint64_t ea = insn_ea(c, i);
	unsigned sz = i->opsz;
	uint64_t off = mem_read(c, ea, sz);
	uint16_t sel = (uint16_t)mem_read(c, ea + sz, 2);
	far_jump(c, sel, off);
}
