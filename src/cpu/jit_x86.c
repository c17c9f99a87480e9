/* The block translator for x86-64 hosts: decoded blocks become host code
 * that works on struct cpu (RBX holds the cpu, R14 points at the jump
 * cache; guest registers a block uses often are cached in host registers
 * within it, R12 among them). Retired instructions are added to c->icount
 * at every exit of a block, so handlers called later in a chain of
 * translations (RDTSC, timers) see the time of the block they run in. Common integer
 * instructions are emitted inline, with the interpreter's lazy-flag fields
 * stored exactly as its handlers store them; everything else calls the
 * instruction's handler. See jit.h and docs/architecture.md. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "jit.h"
#include "ops.h"

#if defined(__x86_64__) && !defined(CORRAL_NO_JIT)

#ifndef JIT_SIZE
#define JIT_SIZE (32u << 20) /* per cpu: reserved, committed as used */
#endif
#define JIT_BLOCK_MAX (24u << 10) /* room one translation may take */
#define JIT_PREFAULT (256u << 10) /* buffer made resident this much at a time */
#define JIT_HDR 64		  /* trampoline and epilogue at the buffer start */
#define MAX_STUBS 160
#define MAX_SLOW 128
/* The jump cache: guest RIP -> translation, for indirect branches. A
 * large program's interpreter (perl, python) calls through hundreds of
 * function pointers and returns to as many places: 4096 entries in user
 * mode. System mode empties it at every dropped code page, so it stays
 * at 1024 there. */
#define JC_SIZE_USER 4096u
#define JC_SIZE_SYSTEM 1024u
static inline unsigned jc_size(int sys)
{
	return sys ? JC_SIZE_SYSTEM : JC_SIZE_USER;
}

/* A jump cache slot: the low bits of RIP with the bits above folded in, so
 * function entries (16-byte aligned, the targets of indirect calls) use
 * every slot and not one in sixteen. The translations compute the same. */
static inline unsigned jc_index(uint64_t rip, int sys)
{
	return (unsigned)((rip ^ (rip >> 4)) & (jc_size(sys) - 1));
}

struct jc_entry {
	uint64_t rip;
	uint64_t key; /* system mode: the block's key (host address | 64 << 56) */
	void *code;
	uint64_t pad;
};

/* The buffer is one memfd mapped twice: translations are written through
 * rw and run from rx, so no page is writable and executable at once and no
 * mprotect is needed per translation or link. */
struct jit {
	uint8_t *rw, *rx;
	size_t used;
	size_t resident; /* bytes made resident in both views (JIT_PREFAULT at a time) */
	uint8_t *epilogue;
	int unmappable;	     /* the code buffer could not be mapped: translate nothing */
	struct jc_entry *jc; /* R14 in translations */
	unsigned jc_size;
	int jc_dirty;
	int stats;			     /* CORRAL_JIT_STATS: report counts at exit */
	FILE *perfmap;			     /* CORRAL_JIT_PERFMAP: /tmp/perf-PID.map for perf(1) */
	unsigned long ntrans, nfail, nflush; /* translations made, refused; flushes */
};

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

#define XW 1u  /* REX.W */
#define X66 2u /* operand-size prefix */
#define XB 4u  /* byte operands: registers 4-7 mean SPL..DIL, which need a REX */
#define NOX 0xffu

enum { ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR, ALU_CMP, ALU_TEST };

/* Out-of-line exits, emitted after the block body. */
enum { STUB_BAIL, STUB_END, STUB_STORE_END };
struct stub {
	uint8_t *rel;
	unsigned kind, count;
	uint64_t rip;
	int8_t cache[16]; /* the register cache there: its dirty registers are written back */
	uint16_t dirty;
};

/* An out-of-line TLB-miss path (emit_slow). */
struct slow {
	uint8_t *miss, *back; /* the inline access's jump here; where to go on */
	unsigned kind, sz, check, count;
	uint64_t addr, next;
	const struct insn *i; /* SLOW_RMW: the instruction's handler does it all */
	int8_t cache[16];
	uint16_t dirty;
};

/* One translation in progress. */
struct jt {
	struct cpu *c;
	uint8_t *p, *end;
	int overflow;
	unsigned fk, fksz; /* LF_* kind and size of the block's last flag producer whose lf_* it stored, or 0 */
	int hostflags;	   /* host flags are the guest's: 1 all, 2 all but CF (after INC/DEC) */
	int rip_ok;	   /* c->s.rip is known to hold rip_val */
	uint64_t rip_val;
	int store_check; /* the current instruction stored through a slow path: check end_block */
	int sys;	 /* system mode: TLB bank by privilege, code keyed by physical page */
	int sse_ok;	 /* system mode: CR0/CR4 allow SSE since the last handler call (jit_sse.c) */
	uint64_t start;	 /* guest address of the block's first instruction */
	/* Register cache: guest register r lives in host register cache[r]
	 * (-1: only in memory) within the block; dirty ones are newer than
	 * struct cpu and are written back before anything that reads the
	 * state (handlers, slow paths, exits). */
	int8_t cache[16];
	uint16_t dirty;
	uint8_t uses[16];  /* how often the block names each register: cache those used twice or more */
	uint16_t last[16]; /* the instruction that names it last: its host register is free after that */
	struct stub stubs[MAX_STUBS];
	unsigned nstubs;
	struct slow slow[MAX_SLOW];
	unsigned nslow;
	unsigned count; /* the current instruction: its count in the block */
	uint64_t next;	/* and the address after it */
	uint8_t *epilogue;
};

#define OFF(f) ((int32_t)offsetof(struct cpu, f))

_Static_assert(offsetof(struct cpu, lf_aux) == offsetof(struct cpu, lf_op) + 4, "lf_op, lf_aux adjacent");
_Static_assert(sizeof(struct cpu_tlb_entry) == 32, "TLB entry is 32 bytes");
/* emit_checks compares both generations at once */
_Static_assert(offsetof(struct vmem, code_gen) == offsetof(struct vmem, tlb_gen) + 4, "vmem generations adjacent");
_Static_assert(offsetof(struct cpu, code_gen) == offsetof(struct cpu, tlb_gen) + 4, "cpu generations adjacent");
_Static_assert(CPU_TLB_USER <= (1u << 20) && CPU_TLB_SYS <= CPU_TLB_SIZE, "tlb_slot indexes with the low 32 bits");

/* ---- Emitting bytes ---- */

static void e8(struct jt *t, unsigned v)
{
	if (t->p < t->end)
		*t->p++ = (uint8_t)v;
	else
		t->overflow = 1;
}

static void e32(struct jt *t, uint32_t v)
{
	for (unsigned k = 0; k < 4; k++)
		e8(t, (v >> (8 * k)) & 0xff);
}

static void e64(struct jt *t, uint64_t v)
{
	e32(t, (uint32_t)v);
	e32(t, (uint32_t)(v >> 32));
}

static void x_opc(struct jt *t, unsigned opc)
{
	if (opc > 0xffff)
		e8(t, opc >> 16);
	if (opc > 0xff)
		e8(t, (opc >> 8) & 0xff);
	e8(t, opc & 0xff);
}

static void x_rex(struct jt *t, unsigned fl, unsigned reg, unsigned index, unsigned base, int bytes)
{
	if (fl & X66)
		e8(t, 0x66);
	unsigned rex = 0x40 | ((fl & XW) ? 8 : 0) | ((reg & 8) ? 4 : 0) | ((index != NOX && (index & 8)) ? 2 : 0) |
		       ((base & 8) ? 1 : 0);
	if (rex != 0x40 || ((fl & XB) && bytes))
		e8(t, rex);
}

/* op reg, rm (register-direct ModRM) */
static void x_rr(struct jt *t, unsigned fl, unsigned opc, unsigned reg, unsigned rm)
{
	x_rex(t, fl, reg, NOX, rm, (reg >= 4 && reg < 8) || (rm >= 4 && rm < 8));
	x_opc(t, opc);
	e8(t, 0xc0 | (reg & 7) << 3 | (rm & 7));
}

/* op reg, [base + index << scale + disp] */
static void x_rm(struct jt *t, unsigned fl, unsigned opc, unsigned reg, unsigned base, unsigned index, unsigned scale,
		 int32_t disp)
{
	x_rex(t, fl, reg, index, base, reg >= 4 && reg < 8);
	x_opc(t, opc);
	unsigned mod = (disp == 0 && (base & 7) != 5) ? 0 : (disp >= -128 && disp <= 127) ? 1 : 2;
	if (index != NOX || (base & 7) == 4) {
		e8(t, mod << 6 | (reg & 7) << 3 | 4);
		e8(t, scale << 6 | ((index == NOX ? 4 : index) & 7) << 3 | (base & 7));
	} else {
		e8(t, mod << 6 | (reg & 7) << 3 | (base & 7));
	}
	if (mod == 1)
		e8(t, (uint8_t)disp);
	else if (mod == 2)
		e32(t, (uint32_t)disp);
}

static unsigned szfl(unsigned sz)
{
	return sz == 8 ? XW : sz == 2 ? X66 : sz == 1 ? XB : 0;
}

static int32_t goff(unsigned r)
{
	if (r >= 16)
		return OFF(s.gpr) + 8 * (int32_t)(r - 16) + 1;
	return OFF(s.gpr) + 8 * (int32_t)r;
}

static void ld64(struct jt *t, unsigned h, int32_t off)
{
	x_rm(t, XW, 0x8b, h, RBX, NOX, 0, off);
}

static void st64(struct jt *t, int32_t off, unsigned h)
{
	x_rm(t, XW, 0x89, h, RBX, NOX, 0, off);
}

/* ---- The register cache ---- */

/* Host registers that may hold guest registers: R15 and RBP survive calls,
 * R8-R11 do not (reloaded after calls that leave guest state alone). */
static const uint8_t pool[] = {R15, RBP, R12, R8, R9, R10, R11};
#define POOL_N (sizeof(pool) / sizeof(pool[0]))

static int volatile_reg(unsigned h)
{
	return h >= R8 && h <= R11;
}

static int c_alloc(struct jt *t, unsigned r)
{
	if (t->uses[r] < 2)
		return -1;
	for (unsigned k = 0; k < POOL_N; k++) {
		int used = 0;
		for (unsigned g = 0; g < 16; g++)
			used |= t->cache[g] == (int8_t)pool[k];
		if (!used) {
			t->cache[r] = (int8_t)pool[k];
			return pool[k];
		}
	}
	return -1;
}

/* Emit stores of the dirty registers of (cache, dirty) without changing
 * the translator's view (for conditional paths and stubs). */
static void c_emit_spill(struct jt *t, const int8_t *cache, uint16_t dirty)
{
	for (unsigned r = 0; r < 16; r++)
		if (dirty & (1u << r))
			x_rm(t, XW, 0x89, (unsigned)cache[r], RBX, NOX, 0, OFF(s.gpr) + 8 * (int32_t)r);
}

/* After a call that left guest registers alone: reload the cached ones it
 * may have clobbered. */
static void c_emit_reload(struct jt *t)
{
	for (unsigned r = 0; r < 16; r++)
		if (t->cache[r] >= 0 && volatile_reg((unsigned)t->cache[r]))
			x_rm(t, XW, 0x8b, (unsigned)t->cache[r], RBX, NOX, 0, OFF(s.gpr) + 8 * (int32_t)r);
}

/* Write every dirty register back; they stay cached, clean. */
static void c_spill(struct jt *t)
{
	c_emit_spill(t, t->cache, t->dirty);
	t->dirty = 0;
}

/* Guest register r to memory only. */
static void c_drop(struct jt *t, unsigned r)
{
	if (t->cache[r] < 0)
		return;
	if (t->dirty & (1u << r))
		x_rm(t, XW, 0x89, (unsigned)t->cache[r], RBX, NOX, 0, OFF(s.gpr) + 8 * (int32_t)r);
	t->dirty &= (uint16_t) ~(1u << r);
	t->cache[r] = -1;
}

static void c_drop_all(struct jt *t)
{
	for (unsigned r = 0; r < 16; r++)
		c_drop(t, r);
}

/* Before a call that keeps guest state but may clobber R8-R11. */
static void c_drop_volatile(struct jt *t)
{
	for (unsigned r = 0; r < 16; r++)
		if (t->cache[r] >= 0 && volatile_reg((unsigned)t->cache[r]))
			c_drop(t, r);
}

/* The host register that holds guest register r, loaded if it was not
 * cached yet; -1 if r stays in memory. For instructions that work on a
 * cached register in place instead of through RAX. */
static int c_get(struct jt *t, unsigned r)
{
	if (r >= 16)
		return -1;
	if (t->cache[r] < 0) {
		int hr = c_alloc(t, r);
		if (hr >= 0)
			x_rm(t, XW, 0x8b, (unsigned)hr, RBX, NOX, 0, goff(r));
	}
	return t->cache[r];
}

/* The host register that a whole (32/64-bit) write of guest register r
 * goes to, not loaded: its old value stays in struct cpu until the caller
 * writes the register and marks it dirty, so a slow path or stub recorded
 * in between still sees exact state. -1 if r stays in memory. */
static int c_def(struct jt *t, unsigned r)
{
	if (r >= 16)
		return -1;
	if (t->cache[r] < 0)
		c_alloc(t, r);
	return t->cache[r];
}

/* host h = guest register r (sz bytes, zero-extended) */
static void ld_greg(struct jt *t, unsigned h, unsigned r, unsigned sz)
{
	if (r < 16 && t->cache[r] < 0 && sz >= 4) {
		int hr = c_alloc(t, r);
		if (hr >= 0)
			x_rm(t, XW, 0x8b, (unsigned)hr, RBX, NOX, 0, goff(r));
	}
	if (r < 16 && t->cache[r] >= 0) {
		unsigned hr = (unsigned)t->cache[r];
		switch (sz) {
		case 8: x_rr(t, XW, 0x89, hr, h); break;
		case 4: x_rr(t, 0, 0x89, hr, h); break;
		case 2: x_rr(t, 0, 0x0fb7, h, hr); break;
		default: x_rr(t, XB, 0x0fb6, h, hr);
		}
		return;
	}
	if (r >= 16 && t->cache[r - 16] >= 0 && (t->dirty & (1u << (r - 16)))) {
		/* AH..BH: read from memory, written back first */
		x_rm(t, XW, 0x89, (unsigned)t->cache[r - 16], RBX, NOX, 0, goff(r - 16));
		t->dirty &= (uint16_t) ~(1u << (r - 16));
	}
	switch (sz) {
	case 8: x_rm(t, XW, 0x8b, h, RBX, NOX, 0, goff(r)); break;
	case 4: x_rm(t, 0, 0x8b, h, RBX, NOX, 0, goff(r)); break;
	case 2: x_rm(t, 0, 0x0fb7, h, RBX, NOX, 0, goff(r)); break;
	default: x_rm(t, 0, 0x0fb6, h, RBX, NOX, 0, goff(r));
	}
}

/* guest register r (sz bytes, x86-64 write rules) = host h; only MOVs, so
 * host flags survive */
static void st_greg(struct jt *t, unsigned r, unsigned sz, unsigned h)
{
	if (r < 16 && sz >= 4) {
		if (t->cache[r] < 0)
			c_alloc(t, r);
		if (t->cache[r] >= 0) {
			x_rr(t, sz == 8 ? XW : 0, 0x89, h, (unsigned)t->cache[r]);
			t->dirty |= (uint16_t)(1u << r);
			return;
		}
	}
	c_drop(t, r >= 16 ? r - 16 : r);
	switch (sz) {
	case 8: x_rm(t, XW, 0x89, h, RBX, NOX, 0, goff(r)); break;
	case 4:
		x_rr(t, 0, 0x89, h, h);
		x_rm(t, XW, 0x89, h, RBX, NOX, 0, goff(r));
		break;
	case 2: x_rm(t, X66, 0x89, h, RBX, NOX, 0, goff(r)); break;
	default: x_rm(t, XB, 0x88, h, RBX, NOX, 0, goff(r));
	}
}

static void mov_rr(struct jt *t, unsigned dst, unsigned src)
{
	x_rr(t, XW, 0x89, src, dst);
}

static void mov_imm(struct jt *t, unsigned h, uint64_t v)
{
	if (v <= 0xffffffffull) {
		if (h & 8)
			e8(t, 0x41);
		e8(t, 0xb8 + (h & 7));
		e32(t, (uint32_t)v);
	} else if ((int64_t)v == (int32_t)v) {
		x_rr(t, XW, 0xc7, 0, h);
		e32(t, (uint32_t)v);
	} else {
		e8(t, 0x48 | ((h & 8) ? 1 : 0));
		e8(t, 0xb8 + (h & 7));
		e64(t, v);
	}
}

/* dword [rbx + off] = v */
static void st_imm32(struct jt *t, int32_t off, uint32_t v)
{
	x_rm(t, 0, 0xc7, 0, RBX, NOX, 0, off);
	e32(t, v);
}

/* [rbx + off] = v (64-bit), using scratch if v needs more than 32 bits */
static void st_imm64(struct jt *t, int32_t off, uint64_t v, unsigned scratch)
{
	if ((int64_t)v == (int32_t)v) {
		x_rm(t, XW, 0xc7, 0, RBX, NOX, 0, off);
		e32(t, (uint32_t)v);
	} else {
		mov_imm(t, scratch, v);
		st64(t, off, scratch);
	}
}

static void set_rip(struct jt *t, uint64_t v, unsigned scratch)
{
	st_imm64(t, OFF(s.rip), v, scratch);
}

static void call_fn(struct jt *t, const void *fn)
{
	mov_imm(t, RAX, (uint64_t)(uintptr_t)fn);
	x_rr(t, 0, 0xff, 2, RAX);
}

static uint8_t *jcc32(struct jt *t, unsigned cc)
{
	e8(t, 0x0f);
	e8(t, 0x80 | cc);
	e32(t, 0);
	return t->p - 4;
}

static uint8_t *jmp32(struct jt *t)
{
	e8(t, 0xe9);
	e32(t, 0);
	return t->p - 4;
}

static void patch_to(uint8_t *rel, const uint8_t *target)
{
	int32_t d = (int32_t)(target - (rel + 4));
	memcpy(rel, &d, 4);
}

static void add_stub(struct jt *t, uint8_t *rel, unsigned kind, unsigned count, uint64_t rip)
{
	if (t->nstubs == MAX_STUBS) {
		t->overflow = 1;
		return;
	}
	struct stub *st = &t->stubs[t->nstubs++];
	*st = (struct stub){.rel = rel, .kind = kind, .count = count, .rip = rip, .dirty = t->dirty};
	memcpy(st->cache, t->cache, sizeof(st->cache));
}

/* cmp dword [rbx + off], 0 */
static void cmp0(struct jt *t, int32_t off)
{
	x_rm(t, 0, 0x83, 7, RBX, NOX, 0, off);
	e8(t, 0);
}

/* ---- Exits ---- */

static void add_count(struct jt *t, unsigned count)
{
	x_rm(t, XW, 0x83, 0, RBX, NOX, 0, OFF(icount)); /* add qword [rbx + icount], count */
	e8(t, count);
}

/* Leave for the run loop (through a stub of kind, RIP = rip) if it has
 * something to do: a stop request, the instruction budget spent, a TLB or
 * decoded-code generation changed. Keeps RAX. */
static void emit_checks(struct jt *t, unsigned kind, uint64_t rip)
{
	cmp0(t, OFF(stop_req));
	add_stub(t, jcc32(t, 5), kind, 0, rip);
	ld64(t, RCX, OFF(icount));
	x_rm(t, XW, 0x3b, RCX, RBX, NOX, 0, OFF(jit_limit));
	add_stub(t, jcc32(t, 3), kind, 0, rip);
	if (t->sys) {
		/* the machine's decoded-code generation (TLB flushes end the block) */
		ld64(t, RDX, OFF(phys_code_gen));
		x_rm(t, 0, 0x8b, RCX, RDX, NOX, 0, 0);
		x_rm(t, 0, 0x3b, RCX, RBX, NOX, 0, OFF(code_gen));
		add_stub(t, jcc32(t, 5), kind, 0, rip);
		return;
	}
	/* the TLB and code generations, both pairs side by side: one compare */
	ld64(t, RDX, OFF(vm));
	x_rm(t, XW, 0x8b, RCX, RDX, NOX, 0, (int32_t)offsetof(struct vmem, tlb_gen));
	x_rm(t, XW, 0x3b, RCX, RBX, NOX, 0, OFF(tlb_gen));
	add_stub(t, jcc32(t, 5), kind, 0, rip);
}

/* Leave to the run loop; RIP is already set. */
static void exit_dyn(struct jt *t, unsigned count)
{
	c_spill(t);
	add_count(t, count);
	patch_to(jmp32(t), t->epilogue);
}

static void jump_lookup(struct jt *t);

/* reg = the offset of RAX's soft-TLB entry in its bank; with bank, the
 * entry's address in the current bank (c->tlbp). */
static void tlb_slot(struct jt *t, unsigned reg, int bank)
{
	/* ((rax >> 12) & tlb_mask) * 32, in three instructions */
	x_rr(t, 0, 0x89, RAX, reg); /* mov reg32, eax */
	x_rr(t, 0, 0xc1, 5, reg);   /* shr reg32, 7 */
	e8(t, 7);
	x_rr(t, 0, 0x81, 4, reg); /* and reg32, tlb_mask << 5 */
	e32(t, (t->sys ? CPU_TLB_SYS - 1 : CPU_TLB_USER - 1) << 5);
	if (bank)
		x_rm(t, XW, 0x03, reg, RBX, NOX, 0, OFF(tlbp)); /* add reg, [rbx + tlbp] */
}

/* Go on at guest address target (from the instruction at addr): first
 * through the run loop, which then links this jump straight to target's
 * translation. A jump backwards may close a loop of linked translations,
 * so it first checks what the run loop would. */
static void exit_chain(struct jt *t, unsigned count, uint64_t target, uint64_t addr)
{
	c_spill(t);
	add_count(t, count);
	if (t->sys && ((target ^ t->start) & ~0xfffull)) {
		/* System mode links only within the block's page: another page
		 * may map elsewhere (or nowhere) the next time this runs. */
		mov_imm(t, RAX, target);
		st64(t, OFF(s.rip), RAX);
		jump_lookup(t);
		return;
	}
	/* under record and replay (c->exact) forward links look too: the
	 * instruction budget must end a turn exactly (run.c) */
	if (target <= addr || t->c->exact)
		emit_checks(t, STUB_BAIL, target);
	uint8_t *rel = jmp32(t); /* to the next instruction until linked */
	set_rip(t, target, RAX);
	mov_imm(t, RAX, (uint64_t)(uintptr_t)rel);
	st64(t, OFF(jit_patch), RAX);
	st_imm64(t, OFF(jit_patch_rip), target, RAX);
	patch_to(jmp32(t), t->epilogue);
}

/* Go on at the guest address in RAX (already in c->s.rip): straight into
 * its translation if the jump cache has it, else through the run loop. */
static void exit_jump(struct jt *t, unsigned count)
{
	c_spill(t);
	add_count(t, count);
	jump_lookup(t);
}

/* The jump cache lookup for the guest address in RAX (in c->s.rip too),
 * registers spilled, instructions counted. System mode first finds the
 * page's host address through the TLB, which must allow execution at the
 * current privilege now; with the linear address it names the block. */
static void jump_lookup(struct jt *t)
{
	emit_checks(t, STUB_END, 0);
	if (t->sys) {
		tlb_slot(t, RCX, 1);
		mov_rr(t, RDX, RAX);
		x_rr(t, XW, 0x81, 4, RDX); /* and rdx, -4096 */
		e32(t, 0xfffff000u);
		x_rm(t, XW, 0x3b, RDX, RCX, NOX, 0, (int32_t)offsetof(struct cpu_tlb_entry, tag_x));
		patch_to(jcc32(t, 5), t->epilogue);
		x_rm(t, XW, 0x8b, RDX, RCX, NOX, 0, (int32_t)offsetof(struct cpu_tlb_entry, addend));
		x_rr(t, XW, 0x01, RAX, RDX); /* add rdx, rax */
		x_rr(t, XW, 0x0fba, 5, RDX); /* bts rdx, 62: code size 64 */
		e8(t, 62);
	}
	x_rr(t, 0, 0x89, RAX, RCX); /* mov ecx, eax */
	x_rr(t, 0, 0xc1, 5, RCX);   /* shr ecx, 4 */
	e8(t, 4);
	x_rr(t, 0, 0x31, RAX, RCX); /* xor ecx, eax: jc_index */
	x_rr(t, 0, 0x81, 4, RCX);   /* and ecx, jc_size - 1 */
	e32(t, jc_size(t->sys) - 1);
	x_rr(t, 0, 0xc1, 4, RCX); /* shl ecx, 5 */
	e8(t, 5);
	x_rm(t, XW, 0x3b, RAX, R14, RCX, 0, 0); /* cmp rax, [r14 + rcx] */
	patch_to(jcc32(t, 5), t->epilogue);
	if (t->sys) {
		x_rm(t, XW, 0x3b, RDX, R14, RCX, 0, 8); /* cmp rdx, [r14 + rcx + 8] */
		patch_to(jcc32(t, 5), t->epilogue);
	}
	x_rm(t, 0, 0xff, 4, R14, RCX, 0, 16); /* jmp [r14 + rcx + 16] */
}

/* Call instruction i's handler, RIP at addr (for a slow path). */
static void call_handler(struct jt *t, const struct insn *i, uint64_t addr)
{
	c_emit_spill(t, t->cache, t->dirty);
	if (!(t->rip_ok && t->rip_val == addr))
		set_rip(t, addr, RAX);
	mov_rr(t, RDI, RBX);
	mov_imm(t, RSI, (uint64_t)(uintptr_t)i);
	call_fn(t, (const void *)i->fn);
	c_emit_reload(t);
}

/* Jump to fail if RAX is not a canonical address. */
static uint8_t *check_canonical(struct jt *t)
{
	mov_rr(t, RCX, RAX);
	x_rr(t, XW, 0xc1, 4, RCX);
	e8(t, 16);
	x_rr(t, XW, 0xc1, 7, RCX);
	e8(t, 16);
	x_rr(t, XW, 0x3b, RCX, RAX);
	return jcc32(t, 5);
}

/* ---- Memory operands ---- */

/* rax = effective address (lea: without the segment base) */
static void emit_ea(struct jt *t, const struct insn *i, uint64_t next, int lea)
{
	if (i->base == RIPREL) {
		uint64_t a = next + (uint64_t)(int64_t)i->disp;
		if (i->adsz == 4)
			a &= 0xffffffffu;
		mov_imm(t, RAX, a);
	} else if (i->base != NOREG) {
		/* cached base and index registers take part in the LEA directly */
		int hb = c_get(t, i->base);
		unsigned b = hb >= 0 ? (unsigned)hb : RAX;
		if (hb < 0)
			ld_greg(t, RAX, i->base, 8);
		if (i->index != NOREG) {
			int hi = c_get(t, i->index);
			if (hi < 0)
				ld_greg(t, RCX, i->index, 8);
			x_rm(t, XW, 0x8d, RAX, b, hi >= 0 ? (unsigned)hi : RCX, i->scale, i->disp);
		} else if (i->disp || b != RAX) {
			x_rm(t, XW, 0x8d, RAX, b, NOX, 0, i->disp);
		}
		if (i->adsz == 4)
			x_rr(t, 0, 0x89, RAX, RAX);
	} else if (i->index != NOREG) {
		ld_greg(t, RCX, i->index, 8);
		mov_imm(t, RAX, (uint64_t)(int64_t)i->disp);
		x_rm(t, XW, 0x8d, RAX, RAX, RCX, i->scale, 0);
		if (i->adsz == 4)
			x_rr(t, 0, 0x89, RAX, RAX);
	} else {
		uint64_t a = (uint64_t)(int64_t)i->disp;
		if (i->adsz == 4)
			a &= 0xffffffffu;
		mov_imm(t, RAX, a);
	}
	if (!lea && i->seg != SEG_NONE)
		x_rm(t, XW, 0x03, RAX, RBX, NOX, 0, OFF(s.seg[0].base) + (int32_t)(i->seg * sizeof(struct cpu_seg)));
}

/* rcx = the tag to match (the last byte's page, maybe with more bits),
 * rax = guest address -> rax = host address, or a jump (returned) to the
 * miss path when the entry of rax's page holds another tag. */
static uint8_t *tlb_compare(struct jt *t, int write)
{
	/* user mode: one table from tlb[0]; system mode: c->tlbp, by privilege */
	int32_t e = t->sys ? 0 : OFF(tlb[0]);
	unsigned base = t->sys ? RDX : RBX, index = t->sys ? NOX : RDX;
	tlb_slot(t, RDX, t->sys);
	int32_t tag =
		write ? (int32_t)offsetof(struct cpu_tlb_entry, tag_w) : (int32_t)offsetof(struct cpu_tlb_entry, tag_r);
	x_rm(t, XW, 0x3b, RCX, base, index, 0, e + tag);
	uint8_t *miss = jcc32(t, 5);
	x_rm(t, XW, 0x03, RAX, base, index, 0, e + (int32_t)offsetof(struct cpu_tlb_entry, addend));
	return miss;
}

/* rax = guest address -> rax = host address, or a jump (returned) to the
 * miss path. The tag of the last byte's page must match the entry of the
 * first byte's: that also sends page-crossing accesses to the slow path. */
static uint8_t *tlb_lookup(struct jt *t, unsigned sz, int write)
{
	x_rm(t, XW, 0x8d, RCX, RAX, NOX, 0, (int32_t)sz - 1); /* lea rcx, [rax + sz - 1] */
	x_rr(t, XW, 0x81, 4, RCX);			      /* and rcx, -4096 */
	e32(t, 0xfffff000u);
	return tlb_compare(t, write);
}

static void host_load(struct jt *t, unsigned dst, unsigned base, unsigned sz)
{
	switch (sz) {
	case 8: x_rm(t, XW, 0x8b, dst, base, NOX, 0, 0); break;
	case 4: x_rm(t, 0, 0x8b, dst, base, NOX, 0, 0); break;
	case 2: x_rm(t, 0, 0x0fb7, dst, base, NOX, 0, 0); break;
	default: x_rm(t, 0, 0x0fb6, dst, base, NOX, 0, 0);
	}
}

static void host_store(struct jt *t, unsigned base, unsigned src, unsigned sz)
{
	switch (sz) {
	case 8: x_rm(t, XW, 0x89, src, base, NOX, 0, 0); break;
	case 4: x_rm(t, 0, 0x89, src, base, NOX, 0, 0); break;
	case 2: x_rm(t, X66, 0x89, src, base, NOX, 0, 0); break;
	default: x_rm(t, XB, 0x88, src, base, NOX, 0, 0);
	}
}

/* The TLB-miss paths of inline accesses are emitted out of line, after
 * the block body (emit_slow), so the hot path is one straight line: a
 * cold program runs each translation a few times, and what it fetches
 * is what costs (instruction cache, code TLB). Each records the register
 * cache where it branches off and the place it returns to. */
enum { SLOW_LOAD, SLOW_STORE, SLOW_RMW };

static void add_slow(struct jt *t, uint8_t *miss, unsigned kind, unsigned sz, uint64_t addr, const struct insn *i,
		     int check)
{
	if (t->nslow == MAX_SLOW) {
		t->overflow = 1;
		return;
	}
	struct slow *sl = &t->slow[t->nslow++];
	*sl = (struct slow){.miss = miss,
			    .back = t->p,
			    .kind = kind,
			    .sz = sz,
			    .addr = addr,
			    .i = i,
			    .check = check,
			    .count = t->count,
			    .next = t->next,
			    .dirty = t->dirty};
	memcpy(sl->cache, t->cache, sizeof(sl->cache));
}

/* A miss path: rax the guest address and, for a store, rsi the value, as
 * the inline access left them; dirty registers written back, RIP set,
 * then the slow access (or the whole instruction), R8-R11 reloaded, and
 * back. With check, a store into decoded code leaves through a stub at
 * the next instruction (the cache there is this one: nothing follows). */
static void emit_slow(struct jt *t, const struct slow *sl)
{
	patch_to(sl->miss, t->p);
	c_emit_spill(t, sl->cache, sl->dirty);
	set_rip(t, sl->addr, RDX);
	mov_rr(t, RDI, RBX);
	if (sl->kind == SLOW_RMW) {
		mov_imm(t, RSI, (uint64_t)(uintptr_t)sl->i);
		call_fn(t, (const void *)sl->i->fn);
	} else {
		if (sl->kind == SLOW_STORE)
			mov_rr(t, RCX, RSI);
		mov_rr(t, RSI, RAX);
		mov_imm(t, RDX, sl->sz);
		call_fn(t, sl->kind == SLOW_STORE ? (const void *)mem_write_slow : (const void *)mem_read_slow);
	}
	for (unsigned r = 0; r < 16; r++)
		if (sl->cache[r] >= 0 && volatile_reg((unsigned)sl->cache[r]))
			x_rm(t, XW, 0x8b, (unsigned)sl->cache[r], RBX, NOX, 0, OFF(s.gpr) + 8 * (int32_t)r);
	if (sl->check) {
		cmp0(t, OFF(end_block));
		uint8_t *rel = jcc32(t, 5);
		if (t->nstubs == MAX_STUBS) {
			t->overflow = 1;
		} else {
			struct stub *st = &t->stubs[t->nstubs++];
			*st = (struct stub){.rel = rel,
					    .kind = STUB_STORE_END,
					    .count = sl->count,
					    .rip = sl->next,
					    .dirty = sl->dirty};
			memcpy(st->cache, sl->cache, sizeof(st->cache));
		}
	}
	patch_to(jmp32(t), sl->back);
}

/* rax = guest address; loads sz bytes, zero-extended, into rax (the slow
 * path: RIP set, mem_read_slow's value in rax). */
static void mem_load(struct jt *t, unsigned sz, uint64_t addr)
{
	uint8_t *miss = tlb_lookup(t, sz, 0);
	host_load(t, RAX, RAX, sz);
	add_slow(t, miss, SLOW_LOAD, sz, addr, NULL, 0);
	t->rip_ok = 0;
}

/* rax = guest address, rsi = value: stores sz bytes. Only the slow path
 * can store into decoded code (the TLB never holds a fast write entry
 * for such a page) and then sets end_block: with last (the store
 * completes the instruction), the slow path itself checks it; otherwise
 * the instruction does when complete (store_check). */
static void mem_store(struct jt *t, unsigned sz, uint64_t addr, int last)
{
	uint8_t *miss = tlb_lookup(t, sz, 1);
	host_store(t, RAX, RSI, sz);
	add_slow(t, miss, SLOW_STORE, sz, addr, NULL, last);
	t->rip_ok = 0;
	if (!last)
		t->store_check = 1;
}

/* End of an inline read-modify-write whose TLB miss (miss) runs the
 * handler instead, which also checks end_block. Both leave the same
 * lazy-flag state. */
static void rmw_slow(struct jt *t, const struct insn *i, uint64_t addr, uint8_t *miss)
{
	add_slow(t, miss, SLOW_RMW, 0, addr, i, 1);
	t->rip_ok = 0;
	t->hostflags = 0;
}

/* ---- Flags ---- */

static int cc_uses_cf(unsigned cc)
{
	return (cc >> 1) == 1 || (cc >> 1) == 3;
}

static uint32_t jit_cond(struct cpu *c, unsigned cc)
{
	return cond_eval(c, cc);
}

/* Make the host flags answer condition cc; returns the host condition code
 * to test (hf: what the host flags hold now, see struct jt). */
static unsigned emit_cond(struct jt *t, unsigned cc, int hf)
{
	if (hf == 1 || (hf == 2 && !cc_uses_cf(cc)))
		return cc;
	unsigned fl = szfl(t->fksz), b = t->fksz == 1;
	if (t->fk == LF_SUB || t->fk == LF_ADD) {
		ld64(t, RAX, OFF(lf_src1));
		ld64(t, RCX, OFF(lf_src2));
		x_rr(t, fl, (t->fk == LF_SUB ? 0x39 : 0x01) - b, RCX, RAX);
		return cc;
	}
	if (t->fk == LF_LOGIC) {
		ld64(t, RAX, OFF(lf_res));
		x_rr(t, fl, 0x85 - b, RAX, RAX);
		return cc;
	}
	c_drop_volatile(t);
	mov_rr(t, RDI, RBX);
	mov_imm(t, RSI, cc);
	call_fn(t, (const void *)jit_cond);
	x_rr(t, 0, 0x85, RAX, RAX);
	return 5; /* NE: true */
}

static uint32_t jit_cf(struct cpu *c)
{
	return flags_cf(c);
}

/* a in rax, b in rcx (zero-extended): the ALU operation at size sz, result
 * in rax; stores the lazy flags as the interpreter does unless they are
 * dead. Leaves the host flags equal to the guest's. */
static void alu_core(struct jt *t, unsigned op, unsigned sz, int noflags)
{
	if (!noflags) {
		st64(t, OFF(lf_src1), RAX);
		st64(t, OFF(lf_src2), RCX);
	}
	unsigned hop = op == ALU_TEST ? ALU_AND : op == ALU_CMP ? ALU_SUB : op;
	x_rr(t, szfl(sz), 0x01 + hop * 8 - (sz == 1), RCX, RAX);
	if (!noflags) {
		unsigned kind = op == ALU_ADD ? LF_ADD : (op == ALU_SUB || op == ALU_CMP) ? LF_SUB : LF_LOGIC;
		st64(t, OFF(lf_res), RAX);
		x_rm(t, XW, 0xc7, 0, RBX, NOX, 0, OFF(lf_op)); /* lf_op = kind | size, lf_aux = 0 */
		e32(t, kind | lf_size_index(sz));
		t->fk = kind;
		t->fksz = sz;
		t->hostflags = 1;
	} else {
		t->fk = 0;
	}
}

/* ---- Instructions ---- */

enum { F_RM_R, F_R_RM, F_RM_IMM };

static int fn_index(insn_fn f, const insn_fn *tab, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		if (tab[k] == f)
			return (int)k;
	return -1;
}

/* ADC/SBB between registers or with an immediate: the host's own ADC/SBB
 * on the guest's CF; the lazy record is the interpreter's (ADC: LF_ADD;
 * SBB: LF_SUB with the borrow in lf_aux). */
static int emit_adc_sbb(struct jt *t, const struct insn *i, int sbb, int form, unsigned sz, int hf)
{
	if (!i->mod3)
		return 0;
	/* CF into R13D and into the host's CF */
	if (hf != 1 && t->fk != LF_SUB && t->fk != LF_ADD && t->fk != LF_LOGIC) {
		if (t->fk == LF_INC || t->fk == LF_DEC) {
			x_rm(t, 0, 0x8b, R13, RBX, NOX, 0, OFF(lf_aux));
		} else {
			c_drop_volatile(t);
			mov_rr(t, RDI, RBX);
			call_fn(t, (const void *)jit_cf);
			x_rr(t, 0, 0x89, RAX, R13);
		}
		x_rr(t, 0, 0x83, 4, R13); /* and r13d, 1 */
		e8(t, 1);
		x_rr(t, 0, 0x0fba, 4, R13); /* bt r13d, 0 */
		e8(t, 0);
	} else {
		emit_cond(t, 2, hf);	     /* host flags exact */
		x_rr(t, XB, 0x0f92, 0, R13); /* setc r13b */
		x_rr(t, XB, 0x0fb6, R13, R13);
	}
	/* MOVs only from here to the operation: CF survives */
	unsigned a = form == F_R_RM ? i->reg : i->rm, b = form == F_R_RM ? i->rm : i->reg;
	ld_greg(t, RAX, a, sz);
	if (form == F_RM_IMM)
		mov_imm(t, RCX, i->imm & size_mask(sz));
	else
		ld_greg(t, RCX, b, sz);
	if (!i->noflags) {
		st64(t, OFF(lf_src1), RAX);
		st64(t, OFF(lf_src2), RCX);
	}
	x_rr(t, szfl(sz), (sbb ? 0x19 : 0x11) - (sz == 1), RCX, RAX);
	if (!i->noflags) {
		st64(t, OFF(lf_res), RAX);
		x_rm(t, 0, 0xc7, 0, RBX, NOX, 0, OFF(lf_op));
		e32(t, (sbb ? LF_SUB : LF_ADD) | lf_size_index(sz));
		if (sbb)
			x_rm(t, 0, 0x89, R13, RBX, NOX, 0, OFF(lf_aux));
		else
			st_imm32(t, OFF(lf_aux), 0);
		t->hostflags = 1;
	}
	st_greg(t, a, sz, RAX);
	t->fk = 0; /* re-running ADD/SUB would lose the carry: consumers further on ask cond_eval */
	return 1;
}

static int emit_alu(struct jt *t, const struct insn *i, unsigned op, int form, unsigned sz, uint64_t addr,
		    uint64_t next, int hf)
{
	if (i->lock)
		return 0;
	if (op == ALU_ADC || op == ALU_SBB)
		return emit_adc_sbb(t, i, op == ALU_SBB, form, sz, hf);
	if (!i->mod3 && form != F_R_RM && op != ALU_CMP && op != ALU_TEST) {
		/* Read-modify-write of memory: inline when the TLB has the page
		 * writable, else the handler does it all. */
		/* Operands first: the register cache must look the same on
		 * the fast and the slow path. */
		if (form == F_RM_IMM)
			mov_imm(t, R13, i->imm & size_mask(sz));
		else
			ld_greg(t, R13, i->reg, sz);
		emit_ea(t, i, next, 0);
		uint8_t *miss = tlb_lookup(t, sz, 1);
		mov_rr(t, RSI, RAX);
		host_load(t, RAX, RSI, sz);
		mov_rr(t, RCX, R13);
		alu_core(t, op, sz, i->noflags);
		host_store(t, RSI, RAX, sz);
		rmw_slow(t, i, addr, miss);
		return 1;
	}
	unsigned d = form == F_R_RM ? i->reg : i->rm;
	int hd;
	if ((sz == 4 || sz == 8) && op != ALU_CMP && op != ALU_TEST && (i->mod3 || form == F_R_RM) &&
	    (hd = c_get(t, d)) >= 0) {
		/* The destination is cached: operate on its host register in
		 * place (the source in rcx), not through rax and back. */
		if (form == F_RM_IMM) {
			mov_imm(t, RCX, i->imm & size_mask(sz));
		} else if (form == F_RM_R) {
			ld_greg(t, RCX, i->reg, sz);
		} else if (i->mod3) {
			ld_greg(t, RCX, i->rm, sz);
		} else {
			emit_ea(t, i, next, 0);
			mem_load(t, sz, addr);
			mov_rr(t, RCX, RAX);
		}
		if (!i->noflags) {
			if (sz == 8) {
				st64(t, OFF(lf_src1), (unsigned)hd);
			} else {
				x_rr(t, 0, 0x89, (unsigned)hd, RAX); /* zero-extended, as ld_greg gives it */
				st64(t, OFF(lf_src1), RAX);
			}
			st64(t, OFF(lf_src2), RCX);
		}
		x_rr(t, szfl(sz), 0x01 + op * 8, RCX, (unsigned)hd);
		if (!i->noflags) {
			unsigned kind = op == ALU_ADD ? LF_ADD : op == ALU_SUB ? LF_SUB : LF_LOGIC;
			st64(t, OFF(lf_res), (unsigned)hd);
			x_rm(t, XW, 0xc7, 0, RBX, NOX, 0, OFF(lf_op)); /* lf_op = kind | size, lf_aux = 0 */
			e32(t, kind | lf_size_index(sz));
			t->fk = kind;
			t->fksz = sz;
			t->hostflags = 1;
		} else {
			t->fk = 0;
		}
		t->dirty |= (uint16_t)(1u << d);
		return 1;
	}
	if (form == F_R_RM) {
		if (i->mod3) {
			ld_greg(t, RCX, i->rm, sz);
		} else {
			emit_ea(t, i, next, 0);
			mem_load(t, sz, addr);
			mov_rr(t, RCX, RAX);
		}
		ld_greg(t, RAX, i->reg, sz);
	} else {
		if (i->mod3) {
			ld_greg(t, RAX, i->rm, sz);
		} else {
			emit_ea(t, i, next, 0);
			mem_load(t, sz, addr);
		}
		if (form == F_RM_IMM)
			mov_imm(t, RCX, i->imm & size_mask(sz));
		else
			ld_greg(t, RCX, i->reg, sz);
	}
	alu_core(t, op, sz, i->noflags);
	if (op != ALU_CMP && op != ALU_TEST)
		st_greg(t, form == F_R_RM ? i->reg : i->rm, sz, RAX);
	return 1;
}

/* INC/DEC of a register or (unlocked) memory */
static int emit_incdec(struct jt *t, const struct insn *i, int dec, uint64_t addr, uint64_t next)
{
	unsigned sz = i->opsz, ext = dec ? 1 : 0, opc = sz == 1 ? 0xfe : 0xff;
	if (i->lock)
		return 0;
	if (i->noflags && i->mod3) {
		int h = sz >= 4 ? c_get(t, i->rm) : -1;
		if (h >= 0) {
			x_rr(t, szfl(sz), opc, ext, (unsigned)h);
			t->dirty |= (uint16_t)(1u << i->rm);
		} else if (sz >= 4) {
			ld_greg(t, RAX, i->rm, sz);
			x_rr(t, szfl(sz), opc, ext, RAX);
			st_greg(t, i->rm, 8, RAX);
		} else {
			c_drop(t, i->rm >= 16 ? i->rm - 16u : i->rm);
			x_rm(t, szfl(sz), opc, ext, RBX, NOX, 0, goff(i->rm));
		}
		t->fk = 0;
		return 1;
	}
	/* CF passes through: lf_aux takes the current CF (R13). */
	int keep_aux = 0, flags = !i->noflags;
	if (!flags) {
	} else if (t->fk == LF_LOGIC) {
		x_rr(t, 0, 0x31, R13, R13);
	} else if (t->fk == LF_SUB || t->fk == LF_ADD) {
		unsigned cc = emit_cond(t, 2, 0);
		x_rr(t, 0, 0x0f90 | cc, 0, RDX); /* setb dl */
		x_rr(t, 0, 0x0fb6, R13, RDX);
	} else if (t->fk == LF_INC || t->fk == LF_DEC) {
		keep_aux = 1;
	} else {
		c_drop_volatile(t);
		mov_rr(t, RDI, RBX);
		call_fn(t, (const void *)jit_cf);
		x_rr(t, 0, 0x89, RAX, R13);
	}
	uint8_t *miss = NULL;
	if (i->mod3) {
		ld_greg(t, RAX, i->rm, sz);
	} else {
		emit_ea(t, i, next, 0);
		miss = tlb_lookup(t, sz, 1);
		mov_rr(t, RSI, RAX);
		host_load(t, RAX, RSI, sz);
	}
	if (flags)
		st64(t, OFF(lf_src1), RAX);
	x_rr(t, szfl(sz), opc, ext, RAX);
	if (flags) {
		st64(t, OFF(lf_res), RAX);
		st_imm64(t, OFF(lf_src2), 1, RCX);
		if (!keep_aux)
			x_rm(t, 0, 0x89, R13, RBX, NOX, 0, OFF(lf_aux));
		x_rm(t, 0, 0xc7, 0, RBX, NOX, 0, OFF(lf_op));
		e32(t, (dec ? LF_DEC : LF_INC) | lf_size_index(sz));
		t->fk = dec ? LF_DEC : LF_INC;
		t->fksz = sz;
		t->hostflags = 2;
	} else {
		t->fk = 0;
	}
	if (i->mod3) {
		st_greg(t, i->rm, sz, RAX);
	} else {
		host_store(t, RSI, RAX, sz);
		rmw_slow(t, i, addr, miss);
	}
	return 1;
}

/* Register shifts by a nonzero immediate whose flags are dead. */
static int emit_shift_nf(struct jt *t, const struct insn *i)
{
	static const insn_fn f32[] = {op_rol_r32_nf, op_ror_r32_nf, op_shl_r32_nf, op_shr_r32_nf, op_sar_r32_nf};
	static const insn_fn f64[] = {op_rol_r64_nf, op_ror_r64_nf, op_shl_r64_nf, op_shr_r64_nf, op_sar_r64_nf};
	static const unsigned ext[] = {0, 1, 4, 5, 7};
	int k32 = fn_index(i->fn, f32, 5), k64 = fn_index(i->fn, f64, 5), h;
	if ((k64 >= 0 || k32 >= 0) && (h = c_get(t, i->rm)) >= 0) {
		x_rr(t, k64 >= 0 ? XW : 0, 0xc1, ext[k64 >= 0 ? k64 : k32], (unsigned)h);
		e8(t, i->imm8 & (k64 >= 0 ? 63 : 31));
		t->dirty |= (uint16_t)(1u << i->rm);
	} else if (k64 >= 0) {
		ld_greg(t, RAX, i->rm, 8);
		x_rr(t, XW, 0xc1, ext[k64], RAX);
		e8(t, i->imm8 & 63);
		st_greg(t, i->rm, 8, RAX);
	} else if (k32 >= 0) {
		ld_greg(t, RAX, i->rm, 4);
		x_rr(t, 0, 0xc1, ext[k32], RAX);
		e8(t, i->imm8 & 31);
		st_greg(t, i->rm, 8, RAX);
	} else {
		return 0;
	}
	t->fk = 0; /* dead flags: nothing reads them before they are written again */
	return 1;
}

/* Shifts SHL/SAL, SHR, SAR of a 32/64-bit register by an immediate or CL,
 * with their flags set as shift_exec does (eagerly: CF PF ZF SF from the
 * host, AF clear, OF by the interpreter's rule). */
static int emit_shift(struct jt *t, const struct insn *i, int by_cl)
{
	unsigned sz = i->opsz, op = i->aux, bits = sz * 8;
	if (!i->mod3 || op < 4 || (sz < 4 && by_cl))
		return 0;
	unsigned ext = op == 6 ? 4 : op, fl = szfl(sz);
	/* 8/16-bit: the count is masked to 5 bits; counts from the width up
	 * leave CF undefined on the host, so they go to the handler */
	unsigned n = i->imm8 & (sz == 8 ? 63 : 31);
	if (sz < 4 && n >= bits)
		return 0;
	uint8_t *zero = NULL;
	if (!by_cl && !n)
		return 0;
	/* Operands first: the register cache must look the same on both paths
	 * of the zero-count test. */
	ld_greg(t, RAX, i->rm, sz);
	mov_rr(t, RSI, RAX);
	if (by_cl) {
		ld_greg(t, RCX, R_RCX, 4);
		x_rr(t, 0, 0x83, 4, RCX); /* and ecx, bits - 1 */
		e8(t, bits - 1);
		zero = jcc32(t, 4);
	}
	if (by_cl) {
		x_rr(t, fl, 0xd3, ext, RAX);
	} else {
		x_rr(t, fl, sz == 1 ? 0xc0 : 0xc1, ext, RAX);
		e8(t, n);
	}
	if (!i->noflags) {
		e8(t, 0x9c); /* pushfq; pop rdx */
		e8(t, 0x5a);
		x_rr(t, 0, 0x81, 4, RDX); /* and edx, CF|PF|ZF|SF */
		e32(t, FL_CF | FL_PF | FL_ZF | FL_SF);
		if (ext != 7) {
			/* OF: SHL msb(result) ^ CF; SHR msb(operand) */
			mov_rr(t, RCX, ext == 4 ? RAX : RSI);
			x_rr(t, XW, 0xc1, 5, RCX);
			e8(t, bits - 1);
			if (ext == 4)
				x_rr(t, 0, 0x31, RDX, RCX); /* xor ecx, edx */
			x_rr(t, 0, 0x83, 4, RCX);
			e8(t, 1);
			x_rr(t, 0, 0xc1, 4, RCX);
			e8(t, 11);
			x_rr(t, 0, 0x09, RCX, RDX); /* or edx, ecx */
		}
		ld64(t, RCX, OFF(s.rflags));
		x_rr(t, XW, 0x81, 4, RCX);
		e32(t, ~(uint32_t)FL_ARITH);
		x_rr(t, XW, 0x09, RDX, RCX);
		st64(t, OFF(s.rflags), RCX);
		x_rm(t, 0, 0xc7, 0, RBX, NOX, 0, OFF(lf_op));
		e32(t, LF_NONE);
	}
	st_greg(t, i->rm, sz < 4 ? sz : 8, RAX);
	if (by_cl) {
		uint8_t *done = jmp32(t);
		patch_to(zero, t->p);
		st_greg(t, i->rm, 8, RSI); /* a zero count still zero-extends a 32-bit register */
		patch_to(done, t->p);
	}
	t->fk = 0; /* consumers ask cond_eval, which reads RFLAGS directly */
	return 1;
}

/* NOT and NEG of a register */
static int emit_notneg(struct jt *t, const struct insn *i, int neg)
{
	unsigned sz = i->opsz, ext = neg ? 3 : 2, opc = sz == 1 ? 0xf6 : 0xf7;
	if (!i->mod3 || i->lock)
		return 0;
	if (!neg || i->noflags) {
		int h = sz >= 4 ? c_get(t, i->rm) : -1;
		if (h >= 0) {
			x_rr(t, szfl(sz), opc, ext, (unsigned)h);
			t->dirty |= (uint16_t)(1u << i->rm);
		} else if (sz >= 4) {
			ld_greg(t, RAX, i->rm, sz);
			x_rr(t, szfl(sz), opc, ext, RAX);
			st_greg(t, i->rm, 8, RAX);
		} else {
			c_drop(t, i->rm >= 16 ? i->rm - 16u : i->rm);
			x_rm(t, szfl(sz), opc, ext, RBX, NOX, 0, goff(i->rm));
		}
		if (neg)
			t->fk = 0;
		return 1;
	}
	ld_greg(t, RAX, i->rm, sz);
	st64(t, OFF(lf_src2), RAX);
	st_imm64(t, OFF(lf_src1), 0, RCX);
	x_rr(t, szfl(sz), opc, ext, RAX);
	st64(t, OFF(lf_res), RAX);
	x_rm(t, XW, 0xc7, 0, RBX, NOX, 0, OFF(lf_op));
	e32(t, LF_SUB | lf_size_index(sz));
	st_greg(t, i->rm, sz, RAX);
	t->fk = LF_SUB;
	t->fksz = sz;
	t->hostflags = 1;
	return 1;
}

/* IMUL r, r/m and IMUL r, r/m, imm (32/64-bit) whose flags are dead */
static int emit_imul(struct jt *t, const struct insn *i, int with_imm, uint64_t addr, uint64_t next)
{
	unsigned sz = i->opsz;
	if (!i->noflags || (sz != 4 && sz != 8))
		return 0;
	if (i->mod3) {
		ld_greg(t, RCX, i->rm, sz);
	} else {
		emit_ea(t, i, next, 0);
		mem_load(t, sz, addr);
		mov_rr(t, RCX, RAX);
	}
	if (with_imm) {
		x_rr(t, szfl(sz), 0x69, RAX, RCX);
		e32(t, (uint32_t)i->imm);
	} else {
		ld_greg(t, RAX, i->reg, sz);
		x_rr(t, szfl(sz), 0x0faf, RAX, RCX);
	}
	st_greg(t, i->reg, 8, RAX);
	t->fk = 0;
	return 1;
}

/* RSP += delta through host register h */
static void rsp_add(struct jt *t, unsigned h, int32_t delta)
{
	int hr = c_get(t, R_RSP);
	if (hr >= 0) {
		x_rm(t, XW, 0x8d, (unsigned)hr, (unsigned)hr, NOX, 0, delta);
		t->dirty |= (uint16_t)(1u << R_RSP);
		return;
	}
	ld_greg(t, h, R_RSP, 8);
	x_rm(t, XW, 0x8d, h, h, NOX, 0, delta);
	st_greg(t, R_RSP, 8, h);
}

/* Emits instruction i (at addr, k-th of the block, count = k + 1) inline.
 * Returns 0 if it must go to its handler, 1 if emitted, 2 if emitted and
 * the block's exits are emitted too. */
#define CORRAL_JIT_SSE_INCLUDED
#include "jit_sse.c"

static int emit_insn(struct jt *t, const struct insn *i, unsigned count, uint64_t addr, int hf)
{
	uint64_t next = addr + i->len;
	insn_fn f = i->fn;
	unsigned sz = i->opsz;
	int k;
	static const insn_fn rr64[] = {op_alu_rr64_add, op_alu_rr64_or,	 NULL,		 NULL, op_alu_rr64_and,
				       op_alu_rr64_sub, op_alu_rr64_xor, op_alu_rr64_cmp};
	static const insn_fn rr32[] = {op_alu_rr32_add, op_alu_rr32_or,	 NULL,		 NULL, op_alu_rr32_and,
				       op_alu_rr32_sub, op_alu_rr32_xor, op_alu_rr32_cmp};

	if (emit_sse(t, i, addr))
		return 1;
	if ((k = fn_index(f, rr64, 8)) >= 0)
		return emit_alu(t, i, (unsigned)k, F_RM_R, 8, addr, next, hf);
	if ((k = fn_index(f, rr32, 8)) >= 0)
		return emit_alu(t, i, (unsigned)k, F_RM_R, 4, addr, next, hf);
	if ((k = fn_index(f, alu_rm_r, 8)) >= 0)
		return emit_alu(t, i, (unsigned)k, F_RM_R, sz, addr, next, hf);
	if ((k = fn_index(f, alu_r_rm, 8)) >= 0)
		return emit_alu(t, i, (unsigned)k, F_R_RM, sz, addr, next, hf);
	if ((k = fn_index(f, alu_rm_imm, 8)) >= 0)
		return emit_alu(t, i, (unsigned)k, F_RM_IMM, sz, addr, next, hf);
	if (f == op_test_rm_r)
		return emit_alu(t, i, ALU_TEST, F_RM_R, sz, addr, next, hf);
	if (f == op_test_rm_imm)
		return emit_alu(t, i, ALU_TEST, F_RM_IMM, sz, addr, next, hf);
	if (f == op_inc || f == op_dec)
		return emit_incdec(t, i, f == op_dec, addr, next);
	if (emit_shift_nf(t, i))
		return 1;
	if (f == op_shift_imm || f == op_shift_cl)
		return emit_shift(t, i, f == op_shift_cl);
	if (f == op_not || f == op_neg)
		return emit_notneg(t, i, f == op_neg);
	if (f == op_imul_r_rm || f == op_imul_r_rm_imm)
		return emit_imul(t, i, f == op_imul_r_rm_imm, addr, next);
	if (f == op_bswap && sz >= 4) {
		ld_greg(t, RAX, i->reg, sz);
		if (sz == 8) /* bswap rax / eax */
			e8(t, 0x48);
		e8(t, 0x0f);
		e8(t, 0xc8);
		st_greg(t, i->reg, 8, RAX);
		return 1;
	}

	if (f == op_mov_rr64 || f == op_mov_rr32 || (f == op_mov_rm_r && i->mod3 && (sz == 4 || sz == 8))) {
		unsigned msz = f == op_mov_rr64 ? 8 : f == op_mov_rr32 ? 4 : sz;
		int h = i->rm != i->reg ? c_def(t, i->rm) : -1;
		if (h >= 0) { /* straight from the source (cached or not) into the cached destination */
			ld_greg(t, (unsigned)h, i->reg, msz);
			t->dirty |= (uint16_t)(1u << i->rm);
			return 1;
		}
		ld_greg(t, RAX, i->reg, msz);
		st_greg(t, i->rm, 8, RAX);
		return 1;
	}
	if (f == op_mov_rm_r || f == op_mov_m64_r) {
		if (f == op_mov_m64_r)
			sz = 8;
		if (i->mod3) {
			ld_greg(t, RAX, i->reg, sz);
			st_greg(t, i->rm, sz, RAX);
		} else {
			emit_ea(t, i, next, 0);
			ld_greg(t, RSI, i->reg, sz);
			mem_store(t, sz, addr, 1);
		}
		return 1;
	}
	if (f == op_mov_rm_imm) {
		if (i->mod3) {
			mov_imm(t, RAX, i->imm & size_mask(sz));
			st_greg(t, i->rm, sz, RAX);
		} else {
			emit_ea(t, i, next, 0);
			mov_imm(t, RSI, i->imm & size_mask(sz));
			mem_store(t, sz, addr, 1);
		}
		return 1;
	}
	if (f == op_mov_r_imm) {
		int h = sz >= 4 ? c_def(t, i->reg) : -1;
		if (h >= 0) {
			mov_imm(t, (unsigned)h, i->imm & size_mask(sz));
			t->dirty |= (uint16_t)(1u << i->reg);
			return 1;
		}
		mov_imm(t, RAX, i->imm & size_mask(sz));
		st_greg(t, i->reg, sz, RAX);
		return 1;
	}
	if (f == op_mov_r_rm || f == op_mov_r_m64 || f == op_movzx || f == op_movsx || f == op_movsxd) {
		unsigned ssz = f == op_mov_r_m64		  ? 8
			       : (f == op_movzx || f == op_movsx) ? i->aux
			       : f == op_movsxd			  ? 4
								  : sz;
		if (f == op_mov_r_m64)
			sz = 8;
		if (i->mod3) {
			ld_greg(t, RAX, i->rm, ssz);
		} else {
			emit_ea(t, i, next, 0);
			mem_load(t, ssz, addr);
		}
		if (f == op_movsx)
			x_rr(t, XW, ssz == 1 ? 0x0fbe : 0x0fbf, RAX, RAX);
		else if (f == op_movsxd && sz == 8)
			x_rr(t, XW, 0x63, RAX, RAX);
		st_greg(t, i->reg, sz, RAX);
		return 1;
	}
	if (f == op_lea) {
		emit_ea(t, i, next, 1);
		st_greg(t, i->reg, sz, RAX);
		return 1;
	}
	if (f == op_nop)
		return 1;
	if ((f == op_push_r || f == op_push_imm) && sz == 8) {
		if (f == op_push_r)
			ld_greg(t, RSI, i->reg, 8);
		else
			mov_imm(t, RSI, i->imm);
		ld_greg(t, RAX, R_RSP, 8);
		x_rm(t, XW, 0x8d, RAX, RAX, NOX, 0, -8);
		mem_store(t, 8, addr, 0);
		rsp_add(t, RAX, -8);
		return 1;
	}
	if (f == op_pop_r && sz == 8) {
		ld_greg(t, RAX, R_RSP, 8);
		mem_load(t, 8, addr);
		rsp_add(t, RCX, 8);
		st_greg(t, i->reg, 8, RAX);
		return 1;
	}
	if (f == op_setcc && i->mod3) {
		unsigned cc = emit_cond(t, i->aux, hf);
		x_rr(t, 0, 0x0f90 | cc, 0, RAX);
		st_greg(t, i->rm, 1, RAX);
		return 1;
	}
	if (f == op_cmov && (sz == 4 || sz == 8)) {
		if (i->mod3) {
			ld_greg(t, RAX, i->rm, sz);
		} else {
			emit_ea(t, i, next, 0);
			mem_load(t, sz, addr);
			hf = 0;
		}
		mov_rr(t, R13, RAX);
		unsigned cc = emit_cond(t, i->aux, hf);
		ld_greg(t, RCX, i->reg, sz);
		x_rr(t, szfl(sz), 0x0f40 | cc, RCX, R13);
		st_greg(t, i->reg, 8, RCX);
		return 1;
	}
	if (f == op_jmp_rel) {
		exit_chain(t, count, next + i->imm, addr);
		return 2;
	}
	if (f == op_jcc) {
		unsigned cc = emit_cond(t, i->aux, hf);
		c_spill(t); /* MOVs: the flags survive */
		uint8_t *taken = jcc32(t, cc);
		exit_chain(t, count, next, addr);
		patch_to(taken, t->p);
		exit_chain(t, count, next + i->imm, addr);
		return 2;
	}
	if (f == op_call_rel) {
		uint64_t target = next + i->imm;
		mov_imm(t, RSI, next);
		ld_greg(t, RAX, R_RSP, 8);
		x_rm(t, XW, 0x8d, RAX, RAX, NOX, 0, -8);
		mem_store(t, 8, addr, 0);
		rsp_add(t, RAX, -8);
		cmp0(t, OFF(end_block));
		add_stub(t, jcc32(t, 5), STUB_STORE_END, count, target);
		t->store_check = 0;
		exit_chain(t, count, target, addr);
		return 2;
	}
	if (f == op_ret) {
		ld_greg(t, RAX, R_RSP, 8);
		mem_load(t, 8, addr);
		/* a non-canonical return address: the handler raises #GP */
		c_spill(t);
		uint8_t *bad = check_canonical(t);
		rsp_add(t, RCX, 8);
		st64(t, OFF(s.rip), RAX);
		exit_jump(t, count);
		patch_to(bad, t->p);
		call_handler(t, i, addr);
		exit_dyn(t, count); /* not reached */
		return 2;
	}
	if (f == op_jmp_rm || f == op_call_rm) {
		if (i->mod3) {
			ld_greg(t, RAX, i->rm, 8);
		} else {
			emit_ea(t, i, next, 0);
			mem_load(t, 8, addr);
		}
		c_spill(t);
		uint8_t *bad = check_canonical(t);
		if (f == op_call_rm) {
			mov_rr(t, R13, RAX);
			mov_imm(t, RSI, next);
			ld_greg(t, RAX, R_RSP, 8);
			x_rm(t, XW, 0x8d, RAX, RAX, NOX, 0, -8);
			mem_store(t, 8, addr, 0);
			rsp_add(t, RAX, -8);
			t->store_check = 0;
			st64(t, OFF(s.rip), R13);
			cmp0(t, OFF(end_block));
			add_stub(t, jcc32(t, 5), STUB_END, count, 0);
			mov_rr(t, RAX, R13);
		} else {
			st64(t, OFF(s.rip), RAX);
		}
		exit_jump(t, count);
		patch_to(bad, t->p);
		call_handler(t, i, addr);
		exit_dyn(t, count); /* not reached */
		return 2;
	}
	return 0;
}

static void emit_handler(struct jt *t, const struct insn *i, uint64_t addr)
{
	c_drop_all(t); /* the handler reads and writes guest registers in memory */
	t->sse_ok = 0; /* and may write CR0 or CR4 */
	if (!(t->rip_ok && t->rip_val == addr))
		set_rip(t, addr, RAX);
	mov_rr(t, RDI, RBX);
	mov_imm(t, RSI, (uint64_t)(uintptr_t)i);
	call_fn(t, (const void *)i->fn);
	t->rip_ok = 1;
	t->rip_val = addr + i->len;
	t->fk = 0;
}

/* ---- Buffer ---- */

/* Map a fresh, empty buffer: at j->rw and j->rx (MAP_FIXED) when fixed,
 * else anywhere. 0 or -1. */
static int jit_map(struct jit *j, int fixed)
{
	int fd = memfd_create("corral-jit", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	int fl = MAP_SHARED | MAP_NORESERVE | (fixed ? MAP_FIXED : 0);
	void *rw = MAP_FAILED, *rx = MAP_FAILED;
	if (ftruncate(fd, JIT_SIZE) == 0) {
		rw = mmap(fixed ? j->rw : NULL, JIT_SIZE, PROT_READ | PROT_WRITE, fl, fd, 0);
		if (rw != MAP_FAILED)
			rx = mmap(fixed ? j->rx : NULL, JIT_SIZE, PROT_READ | PROT_EXEC, fl, fd, 0);
	}
	close(fd);
	if (rx == MAP_FAILED) {
		if (rw != MAP_FAILED && !fixed)
			munmap(rw, JIT_SIZE);
		return -1;
	}
	j->rw = rw;
	j->rx = rx;
	j->resident = 0;
	/* jit_run(c, entry): save callee-saved registers, rbx = c, r14 = the
	 * jump cache, jump to entry; the epilogue restores them. Six pushes
	 * and 8 bytes keep the stack 16-byte aligned for the calls translations
	 * make. */
	static const uint8_t tramp[] = {0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57, 0x48,
					0x83, 0xec, 0x08, 0x48, 0x89, 0xfb, 0x49, 0x89, 0xd6, 0xff, 0xe6};
	static const uint8_t epi[] = {0x48, 0x83, 0xc4, 0x08, 0x41, 0x5f, 0x41, 0x5e,
				      0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0xc3};
	memcpy(j->rw, tramp, sizeof(tramp));
	j->epilogue = j->rw + 32;
	memcpy(j->epilogue, epi, sizeof(epi));
	j->used = JIT_HDR;
	return 0;
}

/* rw address -> the rx address that runs it */
static void *jit_rx(const struct jit *j, const uint8_t *p)
{
	return j->rx + (p - j->rw);
}

int jit_init(struct cpu *c, const struct cpu_opts *opts)
{
	c->jit = NULL;
	c->jit_hot = opts->jit_hot;
	if (!opts->jit)
		return 0;
	struct jit *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->jc_size = jc_size(c->mode == CPU_MODE_SYSTEM);
	j->jc = calloc(j->jc_size, sizeof(*j->jc));
	if (!j->jc) {
		free(j);
		return -ENOMEM;
	}
	/* a process VM's first translations fill slots all over it */
	if (c->mode == CPU_MODE_USER)
		cpu_prefault(j->jc, j->jc_size * sizeof(*j->jc), 1);
	/* The code buffer is mapped at the first translation (jit_translate):
	 * a VM or guest thread that never gets hot code pays nothing, and a
	 * restored VM reaches its first instruction sooner. */
	j->used = JIT_HDR;
	j->stats = opts->jit_stats;
	if (opts->jit_perfmap) {
		char path[64];
		snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)getpid());
		j->perfmap = fopen(path, "a");
	}
	c->jit = j;
	return 0;
}

void jit_destroy(struct cpu *c)
{
	if (!c->jit)
		return;
	if (c->jit->stats)
		fprintf(stderr, "corral: jit: %lu blocks translated, %lu refused, %lu flushes\n", c->jit->ntrans,
			c->jit->nfail, c->jit->nflush);
	if (c->jit->rw) {
		munmap(c->jit->rw, JIT_SIZE);
		munmap(c->jit->rx, JIT_SIZE);
	}
	if (c->jit->perfmap)
		fclose(c->jit->perfmap);
	free(c->jit->jc);
	free(c->jit);
	c->jit = NULL;
}

void jit_flush(struct cpu *c)
{
	c->jit_patch = NULL;
	struct jit *j = c->jit;
	if (!j)
		return;
	j->used = JIT_HDR;
	j->nflush++;
	if (j->jc_dirty) {
		memset(j->jc, 0, j->jc_size * sizeof(*j->jc));
		j->jc_dirty = 0;
	}
}

void jit_after_fork(struct cpu *c)
{
	struct jit *j = c->jit;
	if (!j)
		return;
	/* The buffer is shared memory: the child must not write over the
	 * parent's translations. A new memfd at the same addresses (none
	 * mapped yet: the child maps its own at its first translation). */
	if (!j->rw || jit_map(j, 1) == 0)
		return;
	munmap(j->rw, JIT_SIZE); /* no new buffer: interpret from here on */
	munmap(j->rx, JIT_SIZE);
	free(j->jc);
	free(j);
	c->jit = NULL;
}

void jit_note(struct cpu *c, uint64_t rip, uint64_t key, void *entry)
{
	struct jc_entry *e = &c->jit->jc[jc_index(rip, c->mode == CPU_MODE_SYSTEM)];
	e->rip = rip;
	e->key = key;
	e->code = entry;
	c->jit->jc_dirty = 1;
}

void jit_drop_jumps(struct cpu *c)
{
	struct jit *j = c->jit;
	if (j && j->jc_dirty) {
		memset(j->jc, 0, j->jc_size * sizeof(*j->jc));
		j->jc_dirty = 0;
	}
}

int jit_full(const struct cpu *c)
{
	return c->jit && c->jit->used + JIT_BLOCK_MAX > JIT_SIZE;
}

int jit_owns_pc(const struct cpu *c, uintptr_t pc)
{
	return c->jit && c->jit->rx && pc >= (uintptr_t)c->jit->rx && pc < (uintptr_t)c->jit->rx + JIT_SIZE;
}

void jit_run(struct cpu *c, void *entry)
{
	void (*tramp)(struct cpu *, void *, void *) = (void (*)(struct cpu *, void *, void *))(void *)c->jit->rx;
	tramp(c, entry, c->jit->jc);
}

void jit_link(struct cpu *c, void *entry)
{
	uint8_t *rel = c->jit_patch; /* in the rw view, as the translation was emitted */
	c->jit_patch = NULL;
	if (rel)
		patch_to(rel, c->jit->rw + ((uint8_t *)entry - c->jit->rx));
}

void *jit_translate(struct cpu *c, const struct insn *insn, unsigned n, uint64_t rip)
{
	struct jit *j = c->jit;
	if (!j || !n || jit_full(c) || j->unmappable)
		return NULL;
	if (!j->rw && jit_map(j, 0)) {
		j->unmappable = 1; /* no executable memory: interpret from here on */
		return NULL;
	}
	if (j->used + JIT_BLOCK_MAX > j->resident && j->resident < JIT_SIZE) {
		/* in both views: the rx view's page tables are separate, so its
		 * first run of each page would fault again */
		size_t len = JIT_SIZE - j->resident < JIT_PREFAULT ? JIT_SIZE - j->resident : JIT_PREFAULT;
		cpu_prefault(j->rw + j->resident, len, 1);
		cpu_prefault(j->rx + j->resident, len, 0);
		j->resident += len;
	}
	uint8_t *start = j->rw + j->used;
	struct jt *t = malloc(sizeof(*t));
	if (!t)
		return NULL;
	memset(t, 0, offsetof(struct jt, stubs));
	memset(t->cache, -1, sizeof(t->cache));
	t->dirty = 0;
	memset(t->uses, 0, sizeof(t->uses));
	memset(t->last, 0, sizeof(t->last));
	for (unsigned k = 0; k < n; k++) {
		const struct insn *i = &insn[k];
		uint8_t named[16] = {0};
		if (i->reg < 16)
			named[i->reg]++;
		if (i->mod3 && i->rm < 16)
			named[i->rm]++;
		if (!i->mod3 && i->base < 16)
			named[i->base]++;
		if (!i->mod3 && i->index < 16)
			named[i->index]++;
		if (i->fn == op_push_r || i->fn == op_pop_r || i->fn == op_push_imm || i->fn == op_call_rel ||
		    i->fn == op_ret || i->fn == op_call_rm)
			named[R_RSP] += 2;
		if (i->fn == op_shift_cl)
			named[R_RCX]++;
		for (unsigned r = 0; r < 16; r++) {
			if (!named[r])
				continue;
			t->uses[r] = (uint8_t)(t->uses[r] + named[r] < 255 ? t->uses[r] + named[r] : 255);
			t->last[r] = (uint16_t)k;
		}
	}
	t->nstubs = 0;
	t->nslow = 0;
	t->c = c;
	t->sys = c->mode == CPU_MODE_SYSTEM;
	t->start = rip;
	t->p = start;
	t->end = start + JIT_BLOCK_MAX - 64;
	t->epilogue = j->epilogue;

	uint64_t addr = rip;
	int ended = 0;
	for (unsigned k = 0; k < n && !t->overflow; k++) {
		const struct insn *i = &insn[k];
		int hf = t->hostflags;
		t->hostflags = 0;
		t->store_check = 0;
		t->count = k + 1;
		t->next = addr + i->len;
		int r = emit_insn(t, i, k + 1, addr, hf);
		if (!r) {
			emit_handler(t, i, addr);
			if (k + 1 == n) {
				cmp0(t, OFF(end_block));
				add_stub(t, jcc32(t, 5), STUB_END, n, 0);
				ld64(t, RAX, OFF(s.rip));
				exit_jump(t, n);
				ended = 1;
				break;
			}
			cmp0(t, OFF(end_block));
			add_stub(t, jcc32(t, 5), STUB_END, k + 1, 0);
		} else if (t->store_check) {
			cmp0(t, OFF(end_block));
			add_stub(t, jcc32(t, 5), STUB_STORE_END, k + 1, addr + i->len);
		}
		addr += i->len;
		if (r == 2) {
			ended = 1;
			break;
		}
		/* Registers the rest of the block does not name give their host
		 * register back (written back if dirty, as the exit would), so
		 * later ones can be cached. An implicit use the count above
		 * misses only costs a reload from struct cpu. */
		for (unsigned g = 0; g < 16; g++)
			if (t->cache[g] >= 0 && t->last[g] <= k)
				c_drop(t, g);
	}
	if (!ended)
		exit_chain(t, n, addr, addr - 1);
	for (unsigned k = 0; k < t->nslow && !t->overflow; k++) /* first: they may add stubs */
		emit_slow(t, &t->slow[k]);
	for (unsigned k = 0; k < t->nstubs; k++) {
		struct stub *s = &t->stubs[k];
		patch_to(s->rel, t->p);
		c_emit_spill(t, s->cache, s->dirty);
		if (s->kind != STUB_END)
			set_rip(t, s->rip, RAX);
		if (s->count)
			add_count(t, s->count);
		patch_to(jmp32(t), t->epilogue);
	}
	int bad = t->overflow;
	size_t len = (size_t)(t->p - start);
	free(t);
	if (bad) {
		j->nfail++;
		return NULL;
	}
	j->ntrans++;
	if (j->perfmap) {
		fprintf(j->perfmap, "%lx %zx guest_%llx\n", (unsigned long)(uintptr_t)jit_rx(j, start), len,
			(unsigned long long)rip);
		fflush(j->perfmap);
	}
	j->used = (j->used + len + 15) & ~(size_t)15;
	return jit_rx(j, start);
}

#else /* no translator for this host: the interpreter runs everything */

int jit_init(struct cpu *c, const struct cpu_opts *opts)
{
	(void)opts;
	c->jit = NULL;
	return 0;
}
void jit_destroy(struct cpu *c)
{
	(void)c;
}
void jit_flush(struct cpu *c)
{
	c->jit_patch = NULL;
}
void jit_after_fork(struct cpu *c)
{
	(void)c;
}
int jit_full(const struct cpu *c)
{
	(void)c;
	return 0;
}
int jit_owns_pc(const struct cpu *c, uintptr_t pc)
{
	(void)c;
	(void)pc;
	return 0;
}
void *jit_translate(struct cpu *c, const struct insn *insn, unsigned n, uint64_t rip)
{
	(void)c;
	(void)insn;
	(void)n;
	(void)rip;
	return NULL;
}
void jit_run(struct cpu *c, void *entry)
{
	(void)c;
	(void)entry;
}
void jit_link(struct cpu *c, void *entry)
{
	(void)c;
	(void)entry;
}
void jit_note(struct cpu *c, uint64_t rip, uint64_t key, void *entry)
{
	(void)c;
	(void)rip;
	(void)key;
	(void)entry;
}
void jit_drop_jumps(struct cpu *c)
{
	(void)c;
}

#endif
