/* Internal contract of the interpreter: the decoded instruction record,
 * register and memory accessors, exceptions and lazy flags. Every
 * instruction handler (alu.c, sse*.c, x87.c, ...) is written against this. */
#ifndef CORRAL_CPU_INTERNAL_H
#define CORRAL_CPU_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cpu.h"
#include "vmem.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "corral's CPU core assumes a little-endian host"
#endif

struct insn;
typedef void (*insn_fn)(struct cpu *c, const struct insn *i);

/* Opcode maps */
enum { MAP_1B, MAP_0F, MAP_0F38, MAP_0F3A };
/* Mandatory (SSE) prefix: the last of F2/F3 wins, else 66 */
enum { PFX_NONE, PFX_66, PFX_F3, PFX_F2 };
/* REP prefix kind */
enum { REP_NONE, REP_Z /* F3 */, REP_NZ /* F2 */ };

#define NOREG 0xff
#define RIPREL 0xfe /* base == RIPREL: RIP-relative (disp from next insn) */

/* A decoded instruction. Handlers get a const pointer to it; everything
 * the handler needs that decoding can work out is here. */
struct insn {
	insn_fn fn;
	uint64_t imm;	 /* immediate, sign- or zero-extended as the opcode says */
	int32_t disp;	 /* memory displacement */
	uint8_t len;	 /* instruction length in bytes */
	uint8_t opsz;	 /* operand size in bytes: 1, 2, 4, 8 */
	uint8_t adsz;	 /* address size: 4 or 8 */
	uint8_t map;	 /* MAP_* */
	uint8_t op;	 /* opcode byte within the map */
	uint8_t pfx;	 /* PFX_*: mandatory prefix for SSE decoding */
	uint8_t rep;	 /* REP_* */
	uint8_t lock;	 /* LOCK prefix present */
	uint8_t rex;	 /* REX byte (0x40-0x4f) or 0 */
	uint8_t seg;	 /* segment override SEG_* or SEG_NONE */
	uint8_t mod3;	 /* ModRM present and mod == 3 (rm is a register) */
	uint8_t modrm;	 /* raw ModRM byte (0 if none) */
	uint8_t reg;	 /* ModRM.reg + REX.R (0-15); for byte operands without
			    REX, 4-7 name AH,CH,DH,BH and are stored as 16-19 */
	uint8_t rm;	 /* if mod3: ModRM.rm + REX.B, same byte-reg rule as reg */
	uint8_t base;	 /* memory operand base register, NOREG or RIPREL */
	uint8_t index;	 /* memory operand index register or NOREG */
	uint8_t scale;	 /* log2 of SIB scale */
	uint8_t aux;	 /* handler-specific (ALU op, condition code, ...) */
	uint8_t imm8;	 /* low byte of imm for handlers that take imm8 too */
	uint8_t noflags; /* the flags this writes are dead (overwritten before
			    any read in its block): handlers may skip them */
};

/* ---- Registers ---- */

static inline uint64_t reg_read(const struct cpu *c, unsigned r, unsigned sz)
{
	switch (sz) {
	case 1:
		if (r >= 16)
			return (c->s.gpr[r - 16] >> 8) & 0xff;
		return c->s.gpr[r] & 0xff;
	case 2: return c->s.gpr[r] & 0xffff;
	case 4: return c->s.gpr[r] & 0xffffffff;
	default: return c->s.gpr[r];
	}
}

/* Writes with x86-64 semantics: 32-bit writes zero the upper half, 8- and
 * 16-bit writes keep it. */
static inline void reg_write(struct cpu *c, unsigned r, unsigned sz, uint64_t v)
{
	switch (sz) {
	case 1:
		if (r >= 16)
			c->s.gpr[r - 16] = (c->s.gpr[r - 16] & ~0xff00ull) | ((v & 0xff) << 8);
		else
			c->s.gpr[r] = (c->s.gpr[r] & ~0xffull) | (v & 0xff);
		break;
	case 2: c->s.gpr[r] = (c->s.gpr[r] & ~0xffffull) | (v & 0xffff); break;
	case 4: c->s.gpr[r] = v & 0xffffffff; break;
	default: c->s.gpr[r] = v;
	}
}

static inline uint64_t size_mask(unsigned sz)
{
	return sz >= 8 ? ~0ull : (1ull << (sz * 8)) - 1;
}

static inline uint64_t sign_bit(unsigned sz)
{
	return 1ull << (sz * 8 - 1);
}

static inline int64_t sext(uint64_t v, unsigned sz)
{
	switch (sz) {
	case 1: return (int8_t)v;
	case 2: return (int16_t)v;
	case 4: return (int32_t)v;
	default: return (int64_t)v;
	}
}

/* ---- Exceptions ---- */

/* Raise an exception for the current instruction. State must be as it was
 * before the instruction (handlers do all faulting work before committing).
 * Never returns: unwinds to cpu_run. */
_Noreturn void cpu_raise(struct cpu *c, int vector, uint32_t error);
void cpu_lock_abandon(void); /* alu.c: a LOCK'd operation left by an exception */
/* alu.c: this thread enters / leaves cpu_run with c (split locks' exclusive
 * sections wait for the threads in it, and hold off the ones that enter) */
void cpu_excl_run_begin(struct cpu *c);
void cpu_excl_run_end(void);
/* #PF with address: user mode reports it as exc_addr. */
_Noreturn void cpu_raise_pf(struct cpu *c, uint64_t addr, uint32_t error);
/* #UD for an instruction corral does not implement or that is invalid;
 * with c->trace set it logs RIP and bytes. */
_Noreturn void cpu_undefined(struct cpu *c, const struct insn *i);
/* Handler for decoded-but-invalid encodings. */
void op_ud(struct cpu *c, const struct insn *i);

/* ---- Memory ---- */

/* Effective address of the ModRM memory operand (segment base of FS/GS
 * overrides included, truncated to the address size). */
static inline uint64_t insn_ea(const struct cpu *c, const struct insn *i)
{
	uint64_t a = (uint64_t)(int64_t)i->disp;
	if (i->base == RIPREL)
		a += c->s.rip + i->len;
	else if (i->base != NOREG)
		a += c->s.gpr[i->base];
	if (i->index != NOREG)
		a += c->s.gpr[i->index] << i->scale;
	if (i->adsz == 4)
		a &= 0xffffffffu;
	else if (i->adsz == 2)
		a &= 0xffff;
	/* 64-bit code only ever has FS/GS here; legacy code its segment */
	if (i->seg != SEG_NONE)
		a += c->s.seg[i->seg].base;
	return a;
}

/* Slow paths (mem.c): cross-page, TLB miss, code pages, faults. */
uint64_t mem_read_slow(struct cpu *c, uint64_t a, unsigned sz);
void mem_write_slow(struct cpu *c, uint64_t a, unsigned sz, uint64_t v);
void mem_read_bytes_slow(struct cpu *c, uint64_t a, void *dst, unsigned n);
void mem_write_bytes_slow(struct cpu *c, uint64_t a, const void *src, unsigned n);
/* Check that [a, a+n) is writable (faulting if not) without writing. */
void mem_probe_write(struct cpu *c, uint64_t a, unsigned n);
/* Host pointer to [a, a+sz) for an atomic read-modify-write, or NULL when
 * it crosses a page (caller then falls back to read + write under a lock).
 * Faults like a write. */
void *mem_rmw_ptr(struct cpu *c, uint64_t a, unsigned sz);

/* A debugger's watchpoints (cpu.h's struct cpu_debug): the slow paths look
 * at every access, since watched pages never get a fast TLB entry. */
void mem_watch_check(struct cpu *c, uint64_t a, uint64_t n, int write);
static inline void mem_watch(struct cpu *c, uint64_t a, uint64_t n, int write)
{
	if (unlikely(c->dbg_on) && c->dbg->nwp)
		mem_watch_check(c, a, n, write);
}

static inline struct cpu_tlb_entry *tlb_entry(struct cpu *c, uint64_t a)
{
	return &c->tlbp[(a >> 12) & c->tlb_mask];
}

/* x86's memory order (TSO) on the host: an x86 host gives it with plain
 * loads and stores; on a weaker one (aarch64) every guest load is a
 * load-acquire and every guest store a store-release, so that loads pass
 * no older loads and stores pass no older loads or stores
 * (docs/architecture.md, "Weaker hosts"). */
#if defined(__x86_64__) || defined(__i386__)
#define CPU_HOST_TSO 1
#else
#define CPU_HOST_TSO 0
#endif

/* A guest load of sz (1, 2, 4, 8) bytes at host p, in x86's order. */
static inline uint64_t host_load_ordered(const void *p, unsigned sz)
{
	if (!((uintptr_t)p & (sz - 1))) {
		switch (sz) {
		case 1: return __atomic_load_n((const uint8_t *)p, __ATOMIC_ACQUIRE);
		case 2: return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
		case 4: return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
		default: return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
		}
	}
	uint64_t v = 0; /* little-endian host: the low sz bytes */
	memcpy(&v, p, sz);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return v;
}

/* A guest store of sz bytes at host p, in x86's order. */
static inline void host_store_ordered(void *p, unsigned sz, uint64_t v)
{
	if (!((uintptr_t)p & (sz - 1))) {
		switch (sz) {
		case 1: __atomic_store_n((uint8_t *)p, (uint8_t)v, __ATOMIC_RELEASE); return;
		case 2: __atomic_store_n((uint16_t *)p, (uint16_t)v, __ATOMIC_RELEASE); return;
		case 4: __atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_RELEASE); return;
		default: __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE); return;
		}
	}
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(p, &v, sz);
}

/* Around a guest access of any length (strings, 10- and 16-byte
 * operands) on a weaker host: a release fence before a store, an acquire
 * fence after a load. */
static inline void host_order_before_store(void)
{
	if (!CPU_HOST_TSO)
		__atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void host_order_after_load(void)
{
	if (!CPU_HOST_TSO)
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
}

static inline uint64_t mem_read(struct cpu *c, uint64_t a, unsigned sz)
{
	struct cpu_tlb_entry *e = tlb_entry(c, a);
	if (likely(e->tag_r == (a & ~0xfffull) && (a & 0xfff) <= 0x1000u - sz)) {
		const void *p = (const void *)(uintptr_t)(a + e->addend);
		if (!CPU_HOST_TSO)
			return host_load_ordered(p, sz);
		switch (sz) {
		case 1: return *(const uint8_t *)p;
		case 2: {
			uint16_t v;
			memcpy(&v, p, 2);
			return v;
		}
		case 4: {
			uint32_t v;
			memcpy(&v, p, 4);
			return v;
		}
		default: {
			uint64_t v;
			memcpy(&v, p, 8);
			return v;
		}
		}
	}
	return mem_read_slow(c, a, sz);
}

static inline void mem_write(struct cpu *c, uint64_t a, unsigned sz, uint64_t v)
{
	struct cpu_tlb_entry *e = tlb_entry(c, a);
	if (likely(e->tag_w == (a & ~0xfffull) && (a & 0xfff) <= 0x1000u - sz)) {
		void *p = (void *)(uintptr_t)(a + e->addend);
		if (!CPU_HOST_TSO) {
			host_store_ordered(p, sz, v);
			return;
		}
		switch (sz) {
		case 1: *(uint8_t *)p = (uint8_t)v; return;
		case 2: {
			uint16_t x = (uint16_t)v;
			memcpy(p, &x, 2);
			return;
		}
		case 4: {
			uint32_t x = (uint32_t)v;
			memcpy(p, &x, 4);
			return;
		}
		default: memcpy(p, &v, 8); return;
		}
	}
	mem_write_slow(c, a, sz, v);
}

/* n bytes (any size, e.g. 10 or 16) between guest memory and dst/src. A
 * write faults before storing anything if any page is not writable. */
static inline void mem_read_bytes(struct cpu *c, uint64_t a, void *dst, unsigned n)
{
	struct cpu_tlb_entry *e = tlb_entry(c, a);
	if (likely(e->tag_r == (a & ~0xfffull) && (a & 0xfff) <= 0x1000u - n))
		memcpy(dst, (const void *)(uintptr_t)(a + e->addend), n);
	else
		mem_read_bytes_slow(c, a, dst, n);
	host_order_after_load();
}

static inline void mem_write_bytes(struct cpu *c, uint64_t a, const void *src, unsigned n)
{
	struct cpu_tlb_entry *e = tlb_entry(c, a);
	host_order_before_store();
	if (likely(e->tag_w == (a & ~0xfffull) && (a & 0xfff) <= 0x1000u - n))
		memcpy((void *)(uintptr_t)(a + e->addend), src, n);
	else
		mem_write_bytes_slow(c, a, src, n);
}

static inline uint8_t mem_read8(struct cpu *c, uint64_t a)
{
	return (uint8_t)mem_read(c, a, 1);
}
static inline uint16_t mem_read16(struct cpu *c, uint64_t a)
{
	return (uint16_t)mem_read(c, a, 2);
}
static inline uint32_t mem_read32(struct cpu *c, uint64_t a)
{
	return (uint32_t)mem_read(c, a, 4);
}
static inline uint64_t mem_read64(struct cpu *c, uint64_t a)
{
	return mem_read(c, a, 8);
}
static inline void mem_write8(struct cpu *c, uint64_t a, uint8_t v)
{
	mem_write(c, a, 1, v);
}
static inline void mem_write16(struct cpu *c, uint64_t a, uint16_t v)
{
	mem_write(c, a, 2, v);
}
static inline void mem_write32(struct cpu *c, uint64_t a, uint32_t v)
{
	mem_write(c, a, 4, v);
}
static inline void mem_write64(struct cpu *c, uint64_t a, uint64_t v)
{
	mem_write(c, a, 8, v);
}

/* The r/m operand as a value (register or memory). */
static inline uint64_t rm_read(struct cpu *c, const struct insn *i, unsigned sz)
{
	if (i->mod3)
		return reg_read(c, i->rm, sz);
	return mem_read(c, insn_ea(c, i), sz);
}

static inline void rm_write(struct cpu *c, const struct insn *i, unsigned sz, uint64_t v)
{
	if (i->mod3)
		reg_write(c, i->rm, sz, v);
	else
		mem_write(c, insn_ea(c, i), sz, v);
}

/* Advance RIP past the instruction: the last thing a handler does. */
static inline void insn_next(struct cpu *c, const struct insn *i)
{
	c->s.rip += i->len;
}

/* ---- Lazy flags (flags.c) ---- */

/* lf_op = kind | size index (0:8 1:16 2:32 3:64 bit) */
enum {
	LF_NONE = 0,
	LF_ADD = 1 << 2,   /* add/adc: src1 + src2 (+cf) = res */
	LF_SUB = 2 << 2,   /* sub/sbb/cmp/neg: src1 - src2 (-cf) = res */
	LF_LOGIC = 3 << 2, /* and/or/xor/test: CF=OF=AF=0 */
	LF_INC = 4 << 2,   /* src1 + 1 = res; CF kept in lf_aux */
	LF_DEC = 5 << 2,   /* src1 - 1 = res; CF kept in lf_aux */
};

static inline unsigned lf_size_index(unsigned sz)
{
	return sz == 1 ? 0 : sz == 2 ? 1 : sz == 4 ? 2 : 3;
}

static inline void lf_set(struct cpu *c, unsigned kind, unsigned sz, uint64_t res, uint64_t a, uint64_t b)
{
	c->lf_op = kind | lf_size_index(sz);
	c->lf_res = res;
	c->lf_src1 = a;
	c->lf_src2 = b;
	c->lf_aux = 0; /* SBB with a borrow, INC and DEC set it after */
}

/* Evaluate the six arithmetic flags (FL_ARITH bits). */
uint32_t flags_arith(const struct cpu *c);
/* CF alone (FL_CF or 0), without building the other five. */
uint32_t flags_cf(const struct cpu *c);
/* Materialize lazy flags into s.rflags (lf_op becomes LF_NONE). */
static inline void flags_commit(struct cpu *c)
{
	if (c->lf_op != LF_NONE) {
		c->s.rflags = (c->s.rflags & ~(uint64_t)FL_ARITH) | flags_arith(c);
		c->lf_op = LF_NONE;
	}
}
/* Set the arithmetic flags directly (eager ops: shifts, mul, bit ops, SSE
 * compares, x87 FCOMI...). Only the bits in mask change. */
static inline void flags_set(struct cpu *c, uint32_t mask, uint32_t val)
{
	flags_commit(c);
	c->s.rflags = (c->s.rflags & ~(uint64_t)mask) | (val & mask);
}
static inline bool flag_cf(const struct cpu *c)
{
	return flags_cf(c) != 0;
}
/* Condition code 0-15 as in Jcc/SETcc/CMOVcc */
bool cond_eval(const struct cpu *c, unsigned cc);
uint32_t parity8(uint64_t v);

/* ---- Decoder hooks for instruction families implemented elsewhere ----
 * Each gets an insn with prefixes, map, op, modrm fields and imm already
 * decoded and must set i->fn (op_ud if the encoding is invalid/unsupported).
 * Returns 0, or -1 if the encoding is not one of its instructions. */
int sse_decode(struct insn *i);
int x87_decode(struct insn *i);

/* IA32_ARCH_CAPABILITIES: an interpreter does not speculate, so it is
 * truthfully immune to the transient-execution bugs these bits rule out
 * (RDCL_NO SKIP_L1DFL SSB_NO MDS_NO PSCHANGE_MC_NO TAA_NO SBDR_SSDP_NO
 * FBSDP_NO PSDP_NO GDS_NO RFDS_NO), and guests skip their mitigations. */
#define CPU_ARCH_CAPABILITIES                                                                                          \
	((1ull << 0) | (1ull << 3) | (1ull << 4) | (1ull << 5) | (1ull << 6) | (1ull << 8) | (1ull << 13) |            \
	 (1ull << 14) | (1ull << 15) | (1ull << 26) | (1ull << 27))

/* CPUID feature bits the CPU advertises (cpuid.c) */
extern const uint32_t cpu_feat_1_ecx, cpu_feat_1_edx, cpu_feat_7_ebx, cpu_feat_7_ecx, cpu_feat_7_edx, cpu_feat_81_ecx,
	cpu_feat_81_edx;

#endif
