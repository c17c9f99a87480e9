/* The interpreter's run loop: decoded blocks cached per guest RIP, executed
 * one handler after another; exceptions unwind here. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "decode.h"
#include "jit.h"
#include "ops.h"
#include "system.h"

#define BLOCK_MAX 32
/* Hash sizes: a process's code is small; a kernel's is not. */
#define DC_HASH_BITS_USER 14
#define DC_HASH_BITS_SYSTEM 17
#define DC_ARENA (32u << 20)
#define DC_PREFAULT (256u << 10) /* arena made resident this much at a time */
#define JIT_NEVER 0xffffffffu

struct dblock {
	uint64_t rip;	      /* key: the linear address (user mode); host address | code size << 56 (system) */
	uint64_t lin;	      /* the linear address it was decoded at */
	struct dblock *next;  /* hash chain */
	struct dblock *pnext; /* system mode: chain of the blocks of a RAM page (or of dcache.cross) */
	uint64_t cross;	      /* system mode: an instruction crossing into the page at this host address */
	struct dblock *succ;  /* the block that ran after this one last time */
	void *jit;	      /* its translation, or NULL */
	uint32_t hits;	      /* executions while interpreted; JIT_NEVER: not translatable */
	uint32_t n;
	uint32_t cached; /* in the hash (a page-crossing block of user mode is not) */
	struct insn insn[];
};

#define DC_PAGE_HASH 4096u
#define KEY_PAGE 0x00fffffffffff000ull /* a system-mode key's page: host address bits */

struct dcache {
	struct dblock **hash;
	unsigned hbits;
	struct dblock *phash[DC_PAGE_HASH]; /* system mode: by RAM page, for dcache_drop_page */
	struct dblock *cross;		    /* system mode: the blocks of one page-crossing instruction */
	uint8_t *arena;
	size_t used;
	size_t resident;			/* arena bytes made resident (DC_PREFAULT at a time) */
	unsigned epoch;				/* bumped by each flush: succ links from before are dead */
	unsigned long built, uncached, dropped; /* for CORRAL_JIT_STATS */
};

void cpu_prefault(void *p, size_t len, int write)
{
	uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, e = ((uintptr_t)p + len) & ~(uintptr_t)4095;
	if (e > a)
		(void)madvise((void *)a, e - a, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
}

static inline unsigned dc_slot(const struct dcache *dc, uint64_t key)
{
	return (unsigned)((key ^ (key >> dc->hbits)) & ((1u << dc->hbits) - 1));
}

/* Translations call into the decoded blocks' records: both go together. */
static void dcache_flush(struct cpu *c)
{
	struct dcache *dc = c->dc;
	if (dc->used) { /* else nothing was added since the last flush */
		memset(dc->hash, 0, sizeof(*dc->hash) << dc->hbits);
		memset(dc->phash, 0, sizeof(dc->phash));
	}
	dc->cross = NULL;
	dc->used = 0;
	dc->epoch++;
	jit_flush(c);
}

static void dcache_free(struct cpu *c)
{
	if (c->dc->arena && c->dc->arena != MAP_FAILED)
		munmap(c->dc->arena, DC_ARENA);
	free(c->dc->hash);
	free(c->dc);
	c->dc = NULL;
}

void cpu_opts_default(struct cpu_opts *o)
{
	*o = (struct cpu_opts){.jit = 1, .jit_hot = JIT_HOT_DEFAULT};
}

void cpu_opts_from_env(struct cpu_opts *o)
{
	cpu_opts_default(o);
	const char *env = getenv("CORRAL_JIT");
	if (env && !strcmp(env, "0"))
		o->jit = 0;
	if ((env = getenv("CORRAL_JIT_HOT")))
		o->jit_hot = (unsigned)strtoul(env, NULL, 0);
	o->jit_stats = getenv("CORRAL_JIT_STATS") != NULL;
	o->jit_perfmap = getenv("CORRAL_JIT_PERFMAP") != NULL;
	o->trace = getenv("CORRAL_TRACE_CPU") != NULL;
}

int cpu_init(struct cpu *c, enum cpu_mode mode, struct vmem *vm)
{
	struct cpu_opts o;
	cpu_opts_from_env(&o);
	return cpu_init_opts(c, mode, vm, &o);
}

int cpu_init_opts(struct cpu *c, enum cpu_mode mode, struct vmem *vm, const struct cpu_opts *opts)
{
	struct cpu_opts def;
	if (!opts) {
		cpu_opts_default(&def);
		opts = &def;
	}
	/* Everything but the TLB's entries is zeroed: they are most of the
	 * struct (128 KiB), a system vCPU uses CPU_TLB_SYS of each bank's, and
	 * cpu_tlb_flush below invalidates every entry in use (an entry is read
	 * only under a valid tag, and only below tlb_n), so a restored VM's
	 * vCPU does not write 32 pages it never reads. */
	memset(c, 0, offsetof(struct cpu, tlb));
	memset(&c->tlbp, 0, sizeof(*c) - offsetof(struct cpu, tlbp));
	c->jit_stats = opts->jit_stats;
	c->trace = opts->trace;
	c->mode = mode;
	c->vm = vm;
	c->code_bits = 64;
	c->cpl = 3;
	/* the TLB: CPU_TLB_USER entries from tlb[0] in user mode */
	c->tlbp = mode == CPU_MODE_SYSTEM ? c->tlb[1] : c->tlb[0];
	c->tlb_n = mode == CPU_MODE_SYSTEM ? CPU_TLB_SYS : CPU_TLB_SIZE;
	c->tlb_mask = mode == CPU_MODE_SYSTEM ? CPU_TLB_SYS - 1 : CPU_TLB_USER - 1;
	c->dc = calloc(1, sizeof(*c->dc));
	if (!c->dc)
		return -ENOMEM;
	c->dc->hbits = mode == CPU_MODE_SYSTEM ? DC_HASH_BITS_SYSTEM : DC_HASH_BITS_USER;
	c->dc->hash = calloc((size_t)1 << c->dc->hbits, sizeof(*c->dc->hash));
	/* A process VM's hash (128 KiB) is touched all over by its first
	 * blocks; a system VM's (1 MiB) only as its kernel runs, and a
	 * restore's first instruction should not wait for it. */
	if (mode == CPU_MODE_USER && c->dc->hash)
		cpu_prefault(c->dc->hash, sizeof(*c->dc->hash) << c->dc->hbits, 1);
	/* Reserved, not committed: only what decoded code uses becomes resident. */
	c->dc->arena = mmap(NULL, DC_ARENA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int e = !c->dc->hash || c->dc->arena == MAP_FAILED ? -ENOMEM : jit_init(c, opts);
	if (e) {
		dcache_free(c);
		return e;
	}
	/* a process VM's TLB is all in use: resident at once, not page by page */
	if (mode == CPU_MODE_USER)
		cpu_prefault(c->tlb, sizeof(c->tlb), 1);
	cpu_tlb_flush(c);
	if (vm) {
		c->tlb_gen = __atomic_load_n(&vm->tlb_gen, __ATOMIC_ACQUIRE);
		c->code_gen = __atomic_load_n(&vm->code_gen, __ATOMIC_ACQUIRE);
	}
	cpu_reset_user(c);
	return 0;
}

void cpu_destroy(struct cpu *c)
{
	if (c->mode == CPU_MODE_SYSTEM)
		sys_destroy(c);
	jit_destroy(c);
	if (c->dc) {
		if (c->jit_stats)
			fprintf(stderr,
				"corral: decoded blocks: %lu built (%lu uncached), %lu dropped with their page\n",
				c->dc->built, c->dc->uncached, c->dc->dropped);
		dcache_free(c);
	}
}

static void seg_flat(struct cpu_seg *s, uint16_t sel, uint16_t attr)
{
	s->base = 0;
	s->limit = 0xffffffff;
	s->sel = sel;
	s->attr = attr;
}

void cpu_reset_user(struct cpu *c)
{
	memset(&c->s, 0, sizeof(c->s));
	c->s.rflags = 0x202;
	c->lf_op = LF_NONE;
	/* Linux's user selectors: __USER_CS 0x33 (64-bit code), __USER_DS 0x2b */
	seg_flat(&c->s.seg[SEG_CS], 0x33, 0xa0fb);
	seg_flat(&c->s.seg[SEG_SS], 0x2b, 0xc0f3);
	seg_flat(&c->s.seg[SEG_DS], 0, 0);
	seg_flat(&c->s.seg[SEG_ES], 0, 0);
	seg_flat(&c->s.seg[SEG_FS], 0, 0);
	seg_flat(&c->s.seg[SEG_GS], 0, 0);
	c->s.cr0 = 0x80050033; /* PG WP NE ET MP PE, as Linux runs user code */
	c->s.cr4 = 0x6a0;      /* OSFXSR OSXMMEXCPT PAE PGE */
	c->s.efer = 0xd01;     /* SCE LME LMA NXE */
	c->s.mxcsr = MXCSR_DEFAULT;
	c->s.x87.fcw = 0x37f;
	c->s.x87.ftw = 0xffff;
	c->s.msr.pat = 0x0007040600070406ull;
}

void cpu_flush(struct cpu *c)
{
	cpu_tlb_flush(c);
	if (c->dc)
		dcache_flush(c);
}

void cpu_after_fork(struct cpu *c)
{
	jit_after_fork(c);
	if (c->dc)
		dcache_flush(c);
}

void cpu_set_debug(struct cpu *c, const struct cpu_debug *dbg, int step)
{
	step = step && dbg;
	int on = dbg && (dbg->nbp || dbg->nwp || step);
	unsigned gen = dbg ? dbg->gen : 0;
	/* Blocks are cut at breakpoints (or are one instruction long) and the
	 * TLB hides watched pages: what was cached under other rules goes. */
	if (on != c->dbg_on || step != c->dbg_step || (on && gen != c->dbg_gen))
		cpu_flush(c);
	c->dbg = dbg;
	c->dbg_on = on;
	c->dbg_step = step;
	c->dbg_gen = gen;
	c->dbg_hit = (struct cpu_dbg_hit){0};
}

/* Is there a breakpoint at linear address a? */
static int dbg_bp_at(const struct cpu *c, uint64_t a)
{
	const struct cpu_debug *d = c->dbg;
	for (unsigned k = 0; k < d->nbp; k++)
		if (d->bp[k] == a)
			return 1;
	return 0;
}

void cpu_request_stop(struct cpu *c)
{
	__atomic_store_n(&c->stop_req, 1, __ATOMIC_RELAXED);
}

const char *cpu_exc_name(int vector)
{
	static const char *const names[32] = {
		"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#MF(9)", "#TS",
		"#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE",	 "#CP",
	};
	if (vector >= 0 && vector < 32 && names[vector])
		return names[vector];
	return "#??";
}

_Noreturn void cpu_raise(struct cpu *c, int vector, uint32_t error)
{
	if (!c->in_run) {
		fprintf(stderr, "corral: internal error: CPU exception %s outside cpu_run\n", cpu_exc_name(vector));
		abort();
	}
	c->exc_vector = vector;
	c->exc_error = error;
	if (vector != EXC_PF)
		c->exc_addr = 0;
	cpu_lock_abandon();
	longjmp(c->fault_jb, 1);
}

bool cpu_guest_addr(const struct cpu *c, const void *host_addr, uint64_t *gva)
{
	uintptr_t h = (uintptr_t)host_addr;
	for (unsigned b = 0; b < 2; b++)
		for (unsigned k = 0; k < c->tlb_n; k++) {
			const struct cpu_tlb_entry *e = &c->tlb[b][k];
			if (e->tag_r == CPU_TLB_INVALID || ((h - e->addend) & ~0xfffull) != e->tag_r)
				continue;
			*gva = h - e->addend;
			return true;
		}
	return false;
}

bool cpu_host_fault(struct cpu *c, const void *host_addr, uintptr_t host_pc, int write)
{
	if (!c->in_run || c->mode != CPU_MODE_USER || jit_owns_pc(c, host_pc))
		return false;
	uint64_t gva = 0;
	cpu_guest_addr(c, host_addr, &gva);
	/* longjmp out of the signal handler: the handler runs with SA_NODEFER,
	 * so no signal stays blocked behind it. */
	cpu_raise_pf(c, gva, PFERR_U | PFERR_P | (write ? PFERR_W : 0));
}

_Noreturn void cpu_raise_pf(struct cpu *c, uint64_t addr, uint32_t error)
{
	c->exc_addr = addr;
	c->s.cr2 = addr;
	cpu_raise(c, EXC_PF, error);
}

static void trace_insn(struct cpu *c, const char *what)
{
	uint8_t bytes[15];
	unsigned n = 0;
	for (; n < sizeof(bytes); n++) {
		unsigned prot;
		uint64_t a = c->s.rip + n;
		uint8_t *page = c->vm ? vmem_lookup(c->vm, a, &prot) : NULL;
		if (!page)
			break;
		bytes[n] = page[a & 0xfff];
	}
	fprintf(stderr, "corral: %s at rip 0x%llx:", what, (unsigned long long)c->s.rip);
	for (unsigned k = 0; k < n; k++)
		fprintf(stderr, " %02x", bytes[k]);
	fprintf(stderr, "\n");
}

_Noreturn void cpu_undefined(struct cpu *c, const struct insn *i)
{
	(void)i;
	if (c->trace)
		trace_insn(c, "invalid or unimplemented instruction (#UD)");
	cpu_raise(c, EXC_UD, 0);
}

void op_ud(struct cpu *c, const struct insn *i)
{
	cpu_undefined(c, i);
}

/* Up to 15 code bytes at a, as far as executable pages go, without faulting. */
static size_t fetch_code(struct cpu *c, uint64_t a, uint8_t *buf)
{
	if (c->mode == CPU_MODE_SYSTEM) {
		uint64_t phys;
		return sys_fetch_code(c, a, buf, &phys);
	}
	size_t got = 0;
	while (got < 15) {
		uint64_t at = a + got;
		unsigned prot;
		if ((uint64_t)((int64_t)(at << 16) >> 16) != at)
			break;
		uint8_t *page = vmem_lookup(c->vm, at, &prot);
		if (!page || !(prot & VMEM_X))
			break;
		size_t chunk = 0x1000 - (at & 0xfff);
		if (chunk > 15 - got)
			chunk = 15 - got;
		memcpy(buf + got, page + (at & 0xfff), chunk);
		got += chunk;
	}
	return got;
}

static void mark_code(struct cpu *c, uint64_t a)
{
	if (c->mode == CPU_MODE_SYSTEM) {
		sys_mark_code(c, a);
		return;
	}
	vmem_mark_code(c->vm, a);
	struct cpu_tlb_entry *e = tlb_entry(c, a);
	if (e->tag_w == (a & ~0xfffull))
		e->tag_w = CPU_TLB_INVALID;
}

/* Decode the block at linear address rip, cached under key (user mode: the
 * address itself; system mode: the host address of its bytes, so a block
 * serves every mapping of its physical page). */
static struct dblock *block_build(struct cpu *c, uint64_t key, uint64_t rip)
{
	int sys = c->mode == CPU_MODE_SYSTEM;
	struct dcache *dc = c->dc;
	size_t need = sizeof(struct dblock) + BLOCK_MAX * sizeof(struct insn);
	if (dc->used + need > DC_ARENA)
		dcache_flush(c);
	/* (not in system mode: a restore's first blocks would pay for the
	 * whole step before the guest's first instruction) */
	if (!sys && dc->used + need > dc->resident && dc->resident < DC_ARENA) {
		size_t n = DC_ARENA - dc->resident < DC_PREFAULT ? DC_ARENA - dc->resident : DC_PREFAULT;
		cpu_prefault(dc->arena + dc->resident, n, 1);
		dc->resident += n;
	}
	struct dblock *b = (struct dblock *)(dc->arena + dc->used);
	b->rip = key;
	b->lin = rip;
	b->n = 0;
	b->succ = NULL;
	b->jit = NULL;
	b->hits = 0;
	b->cross = 0;
	uint64_t pc = rip;
	uint64_t marked = ~0ull; /* page last marked as code: once per page, not per insn */
	int cacheable = 1;
	unsigned max = BLOCK_MAX;
	if (unlikely(c->dbg_step)) { /* a debugger's single step: one instruction, not kept */
		max = 1;
		cacheable = 0;
	}
	while (b->n < max) {
		/* a breakpoint is always the start of a block, where the loop looks */
		if (unlikely(c->dbg_on) && b->n && dbg_bp_at(c, pc))
			break;
		uint8_t buf[15];
		size_t avail = fetch_code(c, pc, buf);
		struct insn *i = &b->insn[b->n];
		unsigned flags = 0;
		int len = avail ? decode_insn_mode(buf, avail, i, &flags, sys ? c->code_bits : 64) : -1;
		if (len < 0) {
			/* The instruction runs into a page that cannot be fetched. */
			if (b->n)
				break;
			if (sys) {
				sys_tlb_fill(c, pc + avail, 2, NULL); /* raises the fetch fault */
				cpu_raise(c, EXC_GP, 0);	      /* code in MMIO: not supported */
			}
			cpu_raise_pf(c, pc + avail,
				     PFERR_U | PFERR_I | (vmem_lookup(c->vm, pc + avail, NULL) ? PFERR_P : 0));
		}
		if (sys && len > 0 && ((pc + (unsigned)len - 1) ^ pc) & ~0xfffull) {
			/* Crossing into another page, whose mapping may differ next
			 * time: end the block before it, or make it a block of its
			 * own that remembers where the second page was (block_find
			 * checks), or run it uncached if that is not RAM. */
			if (b->n)
				break;
			uint8_t *h2 = sys_code_host(c, pc + (unsigned)len - 1);
			if (h2)
				b->cross = (uint64_t)(uintptr_t)h2;
			else
				cacheable = 0;
		}
		if (len == 0) {
			if (i->fn != op_priv) /* too long: #GP, else #UD */
				i->fn = op_ud;
			i->len = 1;
			b->n++;
			mark_code(c, pc);
			break;
		}
		if ((pc & ~0xfffull) != marked) {
			marked = pc & ~0xfffull;
			mark_code(c, pc);
		}
		if (((pc + (unsigned)len - 1) ^ pc) & ~0xfffull) {
			marked = (pc + (unsigned)len - 1) & ~0xfffull;
			mark_code(c, marked);
		}
		if (sys && (flags & DEC_EXACT) && b->n)
			break; /* it starts the next block */
		b->n++;
		pc += (unsigned)len;
		if ((flags & DEC_BRANCH) || b->cross || (sys && (flags & DEC_EXACT)))
			break;
	}
	/* Dead flags: walking back from the block's end (where all flags are
	 * live), an instruction whose written flags are all overwritten before
	 * any read need not compute them. */
	unsigned live = FL_ARITH;
	for (uint32_t k = b->n; k-- > 0;) {
		unsigned rd, wr;
		decode_flag_use(&b->insn[k], &rd, &wr);
		if (wr && !(wr & live))
			decode_flags_dead(&b->insn[k]);
		live = (live & ~wr) | rd;
	}
	dc->used += sizeof(struct dblock) + b->n * sizeof(struct insn);
	dc->used = (dc->used + 15) & ~(size_t)15;
	b->cached = (uint32_t)cacheable;
	dc->built++;
	dc->uncached += !cacheable;
	if (cacheable) {
		unsigned h = dc_slot(dc, key);
		b->next = dc->hash[h];
		dc->hash[h] = b;
		if (b->cross) {
			b->pnext = dc->cross;
			dc->cross = b;
		} else if (sys) {
			unsigned ph = (unsigned)((key & KEY_PAGE) >> 12) & (DC_PAGE_HASH - 1);
			b->pnext = dc->phash[ph];
			dc->phash[ph] = b;
		}
	}
	return b;
}

/* Take b (unlinked from its page chain already) out of the hash. Dead: no
 * key has a zero code size, so neither a lookup nor a successor link finds
 * it again. Its translation is reached only from it and from translations
 * of its own page, all dead too; the space comes back at the next flush. */
static void block_kill(struct dcache *dc, struct dblock *b)
{
	struct dblock **hp = &dc->hash[dc_slot(dc, b->rip)];
	while (*hp && *hp != b)
		hp = &(*hp)->next;
	if (*hp)
		*hp = b->next;
	b->rip = 0;
	b->jit = NULL;
	dc->dropped++;
}

/* Kill the blocks of chain *pp (linked by pnext) that touch the RAM page
 * at page (a host address); every one if page is 0. */
static void chain_kill(struct dcache *dc, struct dblock **pp, uint64_t page)
{
	while (*pp) {
		struct dblock *b = *pp;
		if (page && (b->rip & KEY_PAGE) != page && b->cross != page) {
			pp = &b->pnext;
			continue;
		}
		*pp = b->pnext;
		block_kill(dc, b);
	}
}

void dcache_drop_page(struct cpu *c, const uint8_t *host)
{
	struct dcache *dc = c->dc;
	jit_drop_jumps(c);
	uint64_t page = (uint64_t)(uintptr_t)host & KEY_PAGE;
	chain_kill(dc, &dc->phash[(page >> 12) & (DC_PAGE_HASH - 1)], page);
	chain_kill(dc, &dc->cross, page);
}

/* A page-crossing block is valid while its second page is still where it
 * was (and may be executed). */
static int cross_ok(struct cpu *c, const struct dblock *b)
{
	uint64_t a = b->lin + b->insn[0].len - 1;
	if (c->code_bits < 64)
		a &= 0xffffffffull;
	const struct cpu_tlb_entry *e = tlb_entry(c, a);
	uint8_t *h =
		e->tag_x == (a & ~0xfffull) ? (uint8_t *)(uintptr_t)((a & ~0xfffull) + e->addend) : sys_code_host(c, a);
	return (uint64_t)(uintptr_t)h == b->cross;
}

/* Kill stale page-crossing block b and decode it again. */
static __attribute__((noinline)) struct dblock *cross_renew(struct cpu *c, struct dblock *b, uint64_t key, uint64_t rip)
{
	struct dblock **pp = &c->dc->cross;
	while (*pp && *pp != b)
		pp = &(*pp)->pnext;
	if (*pp)
		*pp = b->pnext;
	block_kill(c->dc, b);
	return block_build(c, key, rip);
}

static inline struct dblock *block_find(struct cpu *c, uint64_t key, uint64_t rip)
{
	for (struct dblock *b = c->dc->hash[dc_slot(c->dc, key)]; b; b = b->next)
		if (b->rip == key && b->lin == rip)
			return b;
	return block_build(c, key, rip);
}

static inline int block_end(struct cpu *c, uint64_t limit);

/* Run the handlers of the first n instructions of block b; returns an
 * enum cpu_exit to leave cpu_run with, or -1 to go on. */
static inline int block_exec_n(struct cpu *c, const struct dblock *b, unsigned n, uint64_t limit)
{
	const struct insn *i = b->insn, *end = b->insn + n;
	do {
		i->fn(c, i);
		i++;
	} while (i != end && likely(!c->end_block));
	c->icount += (uint64_t)(i - b->insn);
	return block_end(c, limit);
}

static inline int block_exec(struct cpu *c, const struct dblock *b, uint64_t limit)
{
	return block_exec_n(c, b, b->n, limit);
}

/* Run block b's translation (linking the previous translation's exit to it
 * first if that asked for it); returns as block_exec. */
static inline int block_run_jit(struct cpu *c, const struct dblock *b, uint64_t limit)
{
	if (c->jit_patch) {
		if (c->jit_patch_rip == b->lin)
			jit_link(c, b->jit);
		c->jit_patch = NULL;
	}
	jit_note(c, b->lin, b->rip, b->jit);
	/* exact: a translation goes on into the next only while a whole block
	 * fits below the limit; the run loop takes the rest */
	c->jit_limit = !c->exact ? limit : limit > BLOCK_MAX ? limit - BLOCK_MAX : 0;
	jit_run(c, b->jit);
	return block_end(c, limit);
}

static inline int block_end(struct cpu *c, uint64_t limit)
{
	if (unlikely(c->end_block)) {
		c->end_block = 0;
		c->irq_check = 1;
		if (c->exit >= 0) {
			int e = c->exit;
			c->exit = -1;
			return e;
		}
		if (c->stop_watch && *c->stop_watch)
			return CPU_EXIT_STOP;
	}
	return unlikely(c->icount >= limit) ? (int)CPU_EXIT_LIMIT : -1;
}

/* The loop proper, out of line from cpu_run's setjmp so its locals may live
 * in registers (a longjmp out of here never returns into it). */
static __attribute__((noinline)) enum cpu_exit run_loop(struct cpu *c, uint64_t limit)
{
	for (;;) {
		if (unlikely(__atomic_load_n(&c->stop_req, __ATOMIC_RELAXED))) {
			__atomic_store_n(&c->stop_req, 0, __ATOMIC_RELAXED);
			return CPU_EXIT_STOP;
		}
		/* another thread's munmap/mprotect/code write bumps them */
		if (unlikely(c->tlb_gen != __atomic_load_n(&c->vm->tlb_gen, __ATOMIC_RELAXED))) {
			c->tlb_gen = __atomic_load_n(&c->vm->tlb_gen, __ATOMIC_ACQUIRE);
			cpu_tlb_flush(c);
		}
		if (unlikely(c->code_gen != __atomic_load_n(&c->vm->code_gen, __ATOMIC_RELAXED))) {
			c->code_gen = __atomic_load_n(&c->vm->code_gen, __ATOMIC_ACQUIRE);
			dcache_flush(c);
		}
		struct dblock *b = block_find(c, c->s.rip, c->s.rip);
		if (!b->jit && c->jit && b->cached && ++b->hits >= c->jit_hot && b->hits != JIT_NEVER) {
			if (unlikely(jit_full(c))) { /* no room: start over, this block too */
				dcache_flush(c);
				continue;
			}
			b->jit = jit_translate(c, b->insn, b->n, b->rip);
			if (!b->jit)
				b->hits = JIT_NEVER;
		}
		int x;
		if (b->jit) {
			x = block_run_jit(c, b, limit);
		} else {
			c->jit_patch = NULL;
			x = block_exec(c, b, limit);
		}
		if (unlikely(x >= 0))
			return (enum cpu_exit)x;
	}
}

/* System mode: the same loop plus interrupts, HLT and physical code keys. */
static __attribute__((noinline)) enum cpu_exit run_loop_sys(struct cpu *c, uint64_t limit)
{
	struct dblock *prev = NULL;
	unsigned prev_epoch = 0;
	for (;;) {
		if (unlikely(__atomic_load_n(&c->stop_req, __ATOMIC_RELAXED))) {
			__atomic_store_n(&c->stop_req, 0, __ATOMIC_RELAXED);
			return CPU_EXIT_STOP;
		}
		if (unlikely(c->code_gen != sys_code_gen(c)) && sys_code_sync(c) < 0) {
			dcache_flush(c);
			cpu_tlb_flush(c);
		}
		/* Interrupts can only become deliverable when this vCPU ends a
		 * block on an event (I/O, STI, IRET, MSR/CR writes, ...) or when
		 * cpu_run is entered (devices and other vCPUs act between turns),
		 * so polling the machine is needed only then. */
		if (c->halted) {
			if (!sys_poll_interrupts(c))
				return CPU_EXIT_HLT;
		} else if (c->irq_check && ((c->s.rflags & FL_IF) || c->nmi_pending) && !c->dbg_step) {
			if (c->s.rip != c->shadow_rip)
				c->irq_check = 0; /* in an STI/MOV SS shadow: look again next block */
			sys_poll_interrupts(c);
		}
		/* Code size and linear RIP: 64-bit code has a flat CS; legacy code
		 * (real mode, the 32-bit SMP trampoline) runs at CS.base + IP. */
		unsigned bits;
		uint64_t rip = c->s.rip;
		if (likely(sys_long_mode(c) && (c->s.seg[SEG_CS].attr & 0x2000))) {
			bits = 64;
		} else {
			bits = (c->s.cr0 & 1) && (c->s.seg[SEG_CS].attr & 0x4000) ? 32 : 16;
			rip &= bits == 32 ? 0xffffffffull : 0xffffull;
			c->s.rip = rip;
			rip = (rip + c->s.seg[SEG_CS].base) & 0xffffffffull;
		}
		c->code_bits = bits;
		if (unlikely(c->dbg_on) && !c->dbg_step && dbg_bp_at(c, rip)) {
			if (c->dbg_skip_on && c->dbg_skip == rip) {
				c->dbg_skip_on = 0;
			} else {
				c->dbg_skip_on = 0;
				c->dbg_hit = (struct cpu_dbg_hit){.kind = CPU_DBG_BREAK, .addr = rip};
				return CPU_EXIT_DEBUG;
			}
		}
		c->dbg_skip_on = 0;
		struct cpu_tlb_entry *e = tlb_entry(c, rip);
		uint8_t *host = e->tag_x == (rip & ~0xfffull) ? (uint8_t *)(uintptr_t)(rip + e->addend)
							      : sys_tlb_fill(c, rip, 2, NULL);
		if (!host)
			cpu_raise(c, EXC_GP, 0); /* executing MMIO */
		/* The kernel's code is too large for the hash table to stay in
		 * cache: follow the link to last time's successor first. */
		uint64_t key = (uint64_t)(uintptr_t)host | ((uint64_t)bits << 56);
		struct dblock *b;
		if (prev && prev_epoch == c->dc->epoch && prev->succ && prev->succ->rip == key &&
		    prev->succ->lin == rip) {
			b = prev->succ;
		} else {
			b = block_find(c, key, rip);
			if (prev && prev_epoch == c->dc->epoch && b->cached)
				prev->succ = b;
		}
		if (unlikely(b->cross) && !cross_ok(c, b))
			b = cross_renew(c, b, key, rip);
		prev = b->cached ? b : NULL;
		prev_epoch = c->dc->epoch;
		/* Hot 64-bit blocks are translated (jit.h: system mode). */
		if (!b->jit && c->jit && bits == 64 && b->cached && !b->cross && !c->dbg_on &&
		    ++b->hits >= c->jit_hot && b->hits != JIT_NEVER) {
			if (unlikely(jit_full(c))) { /* no room: start over, this block too */
				dcache_flush(c);
				continue;
			}
			b->jit = jit_translate(c, b->insn, b->n, rip);
			if (!b->jit)
				b->hits = JIT_NEVER;
		}
		/* The block right after STI or MOV SS runs interpreted: it is
		 * the interrupt shadow, after which the loop must look for
		 * interrupts again, not a chain of translations later. */
		int x;
		if (unlikely(c->exact) && limit - c->icount < b->n) {
			/* the limit falls inside this block: run up to it */
			c->jit_patch = NULL;
			x = block_exec_n(c, b, (unsigned)(limit - c->icount), limit);
		} else if (b->jit && likely(c->s.rip != c->shadow_rip)) {
			x = block_run_jit(c, b, limit);
		} else if (likely(c->s.rip != c->shadow_rip)) {
			c->jit_patch = NULL;
			x = block_exec(c, b, limit);
		} else {
			/* The shadow lasts one instruction: run just that one, so
			 * an interrupt pending at the STI is taken right after it,
			 * as on hardware, wherever blocks end (a breakpoint later
			 * in this block must not move it: replays depend on it).
			 * Once it ran, a loop back to the same RIP is no longer in
			 * the shadow (else `sti; 1: jmp 1b` would never take one). */
			uint64_t shadow = c->shadow_rip, n = c->icount;
			c->jit_patch = NULL;
			x = block_exec_n(c, b, 1, limit);
			if (c->shadow_rip == shadow && c->icount != n)
				c->shadow_rip = ~0ull;
		}
		if (unlikely(x >= 0))
			return (enum cpu_exit)x;
	}
}

/* A non-canonical address through the stack segment (RSP/RBP-based operands
 * and implicit stack accesses) is #SS rather than #GP. Rare: decode again. */
static int fault_via_stack(struct cpu *c)
{
	uint8_t buf[15];
	struct insn i;
	unsigned flags;
	size_t avail = fetch_code(c, c->s.rip, buf);
	if (decode_insn(buf, avail, &i, &flags) <= 0)
		return 0;
	if (!i.mod3 && (i.base != NOREG || i.index != NOREG)) {
		uint64_t ea = insn_ea(c, &i);
		if (i.fn == op_pop_rm) { /* its operand address uses the popped RSP */
			uint64_t sp = c->s.gpr[R_RSP];
			c->s.gpr[R_RSP] = sp + i.opsz;
			ea = insn_ea(c, &i);
			c->s.gpr[R_RSP] = sp;
		}
		if ((uint64_t)((int64_t)(ea << 16) >> 16) != ea)
			return (i.base == R_RSP || i.base == R_RBP) && i.seg == SEG_NONE;
	}
	return decode_uses_stack(&i);
}

static enum cpu_exit run_body(struct cpu *c, uint64_t max_insns)
{
	c->in_run = 1;
	c->irq_check = 1;
	c->exc_noncanon = 0;
	c->end_block = 0;
	c->exit = -1;
	c->jit_patch = NULL;
	uint64_t limit = max_insns ? c->icount + max_insns : ~0ull;
	if (setjmp(c->fault_jb)) {
		c->end_block = 0;
		c->jit_patch = NULL;
		if (c->exc_noncanon && c->exc_vector == EXC_GP && !c->delivering && fault_via_stack(c))
			c->exc_vector = EXC_SS;
		c->exc_noncanon = 0;
		if (c->mode == CPU_MODE_USER) {
			c->in_run = 0;
			return CPU_EXIT_EXCEPTION;
		}
		/* System mode: deliver through the IDT (a fault while delivering
		 * comes back here as a nested exception) and go on. */
		if (c->exit == CPU_EXIT_DEBUG) { /* a watchpoint hit by an instruction that then faulted */
			c->exit = -1;
			c->dbg_hit = (struct cpu_dbg_hit){0};
		}
		if (sys_exception(c)) {
			c->in_run = 0;
			c->delivering = 0;
			return CPU_EXIT_SHUTDOWN;
		}
		c->irq_check = 1;
		if (c->dbg_step) { /* a step that faulted stops at the handler */
			c->in_run = 0;
			return CPU_EXIT_LIMIT;
		}
	}
	enum cpu_exit e = c->mode == CPU_MODE_SYSTEM ? run_loop_sys(c, limit) : run_loop(c, limit);
	c->in_run = 0;
	return e;
}

enum cpu_exit cpu_run(struct cpu *c, uint64_t max_insns)
{
	cpu_excl_run_begin(c);
	enum cpu_exit e = run_body(c, max_insns);
	cpu_excl_run_end();
	return e;
}
