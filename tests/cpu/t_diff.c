/* Differential tests of the general-purpose (integer) instructions: each
 * case runs the same machine code natively on the host and in corral's CPU
 * and compares registers, the defined RFLAGS bits, memory and faults. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>

#include "diff_enc.h"
#include "diff_run.h"
#include "testhelp.h"

/* ---- Deterministic PRNG (splitmix64) ---- */

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned rng_below(struct rng *r, unsigned n)
{
	return (unsigned)(((rng_next(r) >> 32) * n) >> 32);
}

static bool rng_one_in(struct rng *r, unsigned n)
{
	return rng_below(r, n) == 0;
}

static const uint64_t edge_vals[] = {
	0,
	1,
	2,
	3,
	0x7f,
	0x80,
	0x81,
	0xfe,
	0xff,
	0x100,
	0x7fff,
	0x8000,
	0x8001,
	0xffff,
	0x10000,
	0x7fffffff,
	0x80000000,
	0x80000001,
	0xffffffff,
	0x100000000ull,
	0x7fffffffffffffffull,
	0x8000000000000000ull,
	0x8000000000000001ull,
	0xfffffffffffffffeull,
	0xffffffffffffffffull,
	0x5555555555555555ull,
	0xaaaaaaaaaaaaaaaaull,
	0x0123456789abcdefull,
};
#define N_EDGE (sizeof(edge_vals) / sizeof(edge_vals[0]))

/* A register or memory value: random, an edge value, or an edge value in
 * the low 8/16/32 bits under random upper bits (which must survive). */
static uint64_t rng_val(struct rng *r)
{
	uint64_t x = rng_next(r), e = edge_vals[rng_below(r, N_EDGE)];
	switch (rng_below(r, 10)) {
	case 0:
	case 1:
	case 2: return x;
	case 3:
	case 4: return e;
	case 5: return (x & ~0xffull) | (e & 0xff);
	case 6: return (x & ~0xffffull) | (e & 0xffff);
	case 7: return (x & ~0xffffffffull) | (e & 0xffffffff);
	case 8: return x >> rng_below(r, 64);
	default: return (uint64_t)(int64_t)(int8_t)x;
	}
}

static int64_t sext64(uint64_t v, unsigned bits)
{
	return bits >= 64 ? (int64_t)v : (int64_t)(v << (64 - bits)) >> (64 - bits);
}

/* Shift and rotate counts worth trying, before masking */
static unsigned rng_count(struct rng *r)
{
	static const uint8_t counts[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 255};
	if (rng_one_in(r, 4))
		return rng_below(r, 256);
	return counts[rng_below(r, sizeof(counts))];
}

/* ---- Instruction forms ---- */

enum { K_MR, K_M, K_O, K_Z, K_CUSTOM }; /* encoding shape */
enum { I_NONE, I_B, I_Z, I_V, I_W };	/* immediate */
enum { M_NO, M_OK, M_ONLY };		/* memory operand */
enum {					/* input generator */
       G_NONE,
       G_SHIFT_CL,
       G_SHIFT_IMM,
       G_SHIFT_1,
       G_SHXD_CL,
       G_SHXD_IMM,
       G_DIV,
       G_IDIV,
       G_BT,
       G_CMPXCHG,
       G_CX8,
       G_ZERO,
       G_LEA,
       G_POPF,
};
enum { /* undefined flags */
       U_NONE,
       U_AF,
       U_SHIFT,
       U_SAR,
       U_ROT,
       U_SHXD,
       U_MUL,
       U_DIV,
       U_BT,
       U_BSF,
};

#define FL_CMP (FL_ARITH | FL_DF)
#define RAXM (1u << R_RAX)
#define RCXM (1u << R_RCX)
#define RDXM (1u << R_RDX)
#define RBXM (1u << R_RBX)
#define RSIM (1u << R_RSI)
#define RDIM (1u << R_RDI)

struct tcase;

struct form {
	char name[32];
	uint8_t kind, op8, op, imm, mem, gen, uf, aux;
	bool map0f, lock;
	int8_t ext;    /* ModRM.reg digit, or -1 when it names a register */
	uint8_t sizes; /* bit mask of operand sizes in bytes: 1|2|4|8 */
	uint8_t mand;
	uint16_t implicit; /* registers the instruction uses implicitly */
	unsigned weight;
	void (*custom)(struct tcase *t, struct rng *r);
	unsigned long runs, fails, faults;
	char first[120]; /* the first difference seen, for the summary */
};

struct tcase {
	struct form *f;
	struct region *rg;
	unsigned sz;
	uint8_t body[BODY_MAX];
	unsigned blen;
	uint64_t gpr[16], fl;
	uint32_t undef;	   /* RFLAGS bits the SDM leaves undefined here */
	uint16_t gpr_skip; /* registers whose result is undefined */
	unsigned count;	   /* shift/rotate count (raw) for the undefined-flag rules */
	struct ins in;	   /* the instruction under test (generic forms) */
	uint64_t target;   /* memory operand address */
	bool mem;
	bool regonly; /* pairs: register operands only */
	bool second;  /* pairs: building the second instruction */
	uint32_t extra_undef;
};

#define MAX_FORMS 600
static struct form forms[MAX_FORMS];
static unsigned nforms;
static struct region rg_low, rg_high;

static struct form *form_add(const char *name, int kind, bool map0f, int op8, int op, int ext, int sizes, int imm,
			     int mem, int uf)
{
	if (nforms == MAX_FORMS) {
		fprintf(stderr, "t_diff: too many forms\n");
		exit(2);
	}
	struct form *f = &forms[nforms++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->kind = (uint8_t)kind;
	f->map0f = map0f;
	f->op8 = (uint8_t)op8;
	f->op = (uint8_t)op;
	f->ext = (int8_t)ext;
	f->sizes = (uint8_t)sizes;
	f->imm = (uint8_t)imm;
	f->mem = (uint8_t)mem;
	f->uf = (uint8_t)uf;
	f->weight = 1;
	return f;
}

static struct form *form_custom(const char *name, void (*fn)(struct tcase *, struct rng *), int aux)
{
	struct form *f = form_add(name, K_CUSTOM, false, 0, 0, 0, 8, I_NONE, M_NO, U_NONE);
	f->custom = fn;
	f->aux = (uint8_t)aux;
	return f;
}

/* ---- Building a case ---- */

static uint64_t body_addr(const struct tcase *t)
{
	return rg_addr(t->rg, PG_CODE, BODY_OFF);
}

static void body_put(struct tcase *t, const void *p, unsigned n)
{
	if (t->blen + n > BODY_MAX) {
		fprintf(stderr, "t_diff: body too long in %s\n", t->f->name);
		exit(2);
	}
	memcpy(t->body + t->blen, p, n);
	t->blen += n;
}

static void body_ins(struct tcase *t, const struct ins *in)
{
	uint8_t b[32];
	unsigned n = ins_encode(in, b, body_addr(t) + t->blen);
	body_put(t, b, n);
}

/* lea r15, [r15+1]: a flag-neutral marker that shows whether it ran */
static void body_marker(struct tcase *t)
{
	body_put(t, "\x4d\x8d\x7f\x01", 4);
}

static uint8_t *data_ptr(const struct tcase *t, uint64_t a, unsigned n)
{
	uint64_t d = rg_addr(t->rg, PG_DATA, 0);
	if (a < d || a + n > d + DATA_SIZE || a + n < a)
		return NULL;
	return rg_page(t->rg, PG_DATA) + (a - d);
}

static void data_write(const struct tcase *t, uint64_t a, unsigned n, uint64_t v)
{
	uint8_t *p = data_ptr(t, a, n);
	if (p)
		memcpy(p, &v, n > 8 ? 8 : n);
}

static uint64_t data_read(const struct tcase *t, uint64_t a, unsigned n)
{
	uint64_t v = 0;
	uint8_t *p = data_ptr(t, a, n);
	if (p)
		memcpy(&v, p, n > 8 ? 8 : n);
	return v;
}

static uint64_t stack_top(const struct tcase *t)
{
	return rg_addr(t->rg, PG_STACK2, 0x800);
}

static void stack_write(const struct tcase *t, uint64_t a, unsigned n, uint64_t v)
{
	uint64_t s = rg_addr(t->rg, PG_STACK, 0);
	if (a >= s && a + n <= s + STACK_SIZE)
		memcpy(rg_page(t->rg, PG_STACK) + (a - s), &v, n);
}

/* Memory operand address: mostly inside the data pages (sometimes across
 * their page boundary); with may_fault, sometimes a guard page, across the
 * end of the data into a guard, the read-only page, or a non-canonical
 * address, so that faults are compared too. */
static uint64_t pick_target(struct tcase *t, struct rng *r, unsigned sz, bool may_fault, bool a32)
{
	unsigned u = rng_below(r, 100);
	if (may_fault && u < 10) {
		if (u < 3)
			return rg_addr(t->rg, rng_one_in(r, 2) ? PG_GUARD1 : PG_GUARD0, rng_below(r, PG));
		if (u < 6)
			return rg_addr(t->rg, PG_DATA2, PG - 1 - rng_below(r, sz < 8 ? 8 : sz));
		if (u < 9 || a32)
			return rg_addr(t->rg, PG_RO, rng_below(r, PG - 16));
		return rg_addr(t->rg, PG_DATA, 64 + rng_below(r, 1024)) ^ (1ull << (48 + rng_below(r, 15)));
	}
	if (u < 20)
		return rg_addr(t->rg, PG_DATA2, 0) - 1 - rng_below(r, 8); /* across the data pages */
	uint64_t a = rg_addr(t->rg, PG_DATA, 64 + rng_below(r, DATA_SIZE - 128));
	if (u < 60)
		a &= ~(uint64_t)(sz - 1);
	return a;
}

static unsigned pick_reg(struct rng *r, uint16_t avoid)
{
	for (;;) {
		unsigned k = rng_below(r, 16);
		if (!(avoid & (1u << k)))
			return k;
	}
}

/* Fill in in->am, base, index... so that the operand addresses target,
 * setting the registers involved. With a32 (67 prefix) the address is
 * computed in 32 bits and the registers get garbage in their upper halves. */
static void mem_place(struct tcase *t, struct rng *r, struct ins *in, uint64_t target, uint16_t avoid, bool a32)
{
	bool low = target < 0x80000000ull;
	unsigned u = rng_below(r, 12);
	in->rm = -1;
	in->dsz = 0;
	in->disp = 0;
	in->scale = 0;
	uint64_t dist = target - body_addr(t);
	if (u == 0 && dist + 0x7fff0000ull < 0xfffe0000ull && (!a32 || low)) {
		in->am = AM_RIP;
		in->rip_target = target;
		return;
	}
	if (u == 1 && low) {
		in->am = AM_ABS;
		in->disp = (int32_t)target;
		return;
	}
	switch (rng_below(r, 3)) {
	case 0: in->dsz = 0; break;
	case 1:
		in->dsz = 1;
		in->disp = (int8_t)rng_next(r);
		break;
	default:
		in->dsz = 4;
		in->disp = (int32_t)((int64_t)(rng_next(r) % 200001) - 100000);
		break;
	}
	uint64_t hi = a32 ? rng_next(r) << 32 : 0;
	if (u == 2) {
		in->am = AM_NOBASE;
		in->index = pick_reg(r, avoid | (1u << R_RSP));
		in->scale = rng_below(r, 4);
		uint64_t idx = (target >> in->scale) - rng_below(r, 64);
		in->disp = (int32_t)(target - (idx << in->scale));
		t->gpr[in->index] = a32 ? (hi | (idx & 0xffffffff)) : idx;
		in->dsz = 4;
		return;
	}
	in->base = pick_reg(r, avoid);
	if (u < 7) {
		in->am = AM_BASE;
		uint64_t b = target - (uint64_t)(int64_t)in->disp;
		t->gpr[in->base] = a32 ? (hi | (b & 0xffffffff)) : b;
		return;
	}
	in->am = AM_SIB;
	in->index = pick_reg(r, avoid | (1u << R_RSP));
	in->scale = rng_below(r, 4);
	uint64_t idx = (uint64_t)(int64_t)((int)rng_below(r, 129) - 64);
	if (in->index == in->base) {
		/* base + base*scale = target */
		uint64_t b = (target - (uint64_t)(int64_t)in->disp) / ((1u << in->scale) + 1);
		in->disp = (int32_t)(target - b * ((1u << in->scale) + 1));
		in->dsz = 4;
		t->gpr[in->base] = a32 ? (hi | (b & 0xffffffff)) : b;
		return;
	}
	t->gpr[in->index] = a32 ? ((rng_next(r) << 32) | (idx & 0xffffffff)) : idx;
	uint64_t b = target - (uint64_t)(int64_t)in->disp - (idx << in->scale);
	t->gpr[in->base] = a32 ? (hi | (b & 0xffffffff)) : b;
}

/* Random segment prefixes that 64-bit mode ignores (CS/DS/ES/SS) */
static void maybe_null_prefix(struct ins *in, struct rng *r)
{
	static const uint8_t seg[] = {0x2e, 0x3e, 0x26, 0x36};
	if (rng_one_in(r, 12))
		ins_prefix(in, seg[rng_below(r, 4)]);
}

static void set_size_prefix(struct tcase *t, struct ins *in, struct rng *r)
{
	(void)r;
	if (t->sz == 2)
		ins_prefix(in, 0x66);
	in->w = t->sz == 8;
}

/* The value of the instruction's r/m operand (register or memory), as read */
static uint64_t rm_value(const struct tcase *t, const struct ins *in, unsigned sz)
{
	if (in->rm < 0)
		return data_read(t, t->target, sz);
	if (sz == 1 && !ins_has_rex(in) && in->rm >= 4 && in->rm < 8)
		return (t->gpr[in->rm - 4] >> 8) & 0xff;
	return t->gpr[in->rm];
}

static void set_rm(struct tcase *t, const struct ins *in, unsigned sz, uint64_t v)
{
	uint64_t m = sz >= 8 ? ~0ull : (1ull << (8 * sz)) - 1;
	if (in->rm < 0) {
		data_write(t, t->target, sz, v);
	} else if (sz == 1 && !ins_has_rex(in) && in->rm >= 4 && in->rm < 8) {
		uint64_t *g = &t->gpr[in->rm - 4];
		*g = (*g & ~0xff00ull) | ((v & 0xff) << 8);
	} else {
		t->gpr[in->rm] = (t->gpr[in->rm] & ~m) | (v & m);
	}
}

static void set_acc(struct tcase *t, unsigned reg, unsigned sz, uint64_t v)
{
	uint64_t m = sz >= 8 ? ~0ull : (1ull << (8 * sz)) - 1;
	t->gpr[reg] = (t->gpr[reg] & ~m) | (v & m);
}

static void gen_div(struct tcase *t, struct rng *r, bool sgn)
{
	unsigned n = t->sz * 8;
	uint64_t m = t->sz == 8 ? ~0ull : (1ull << n) - 1;
	unsigned __int128 hi_lo;
	uint64_t d;
	unsigned u = rng_below(r, 16);
	if (u == 0) {
		d = 0;
		hi_lo = ((unsigned __int128)rng_next(r) << 64) | rng_next(r);
	} else if (u == 1 && sgn) {
		d = m; /* -1 */
		hi_lo = (unsigned __int128)(-(__int128)((unsigned __int128)1 << (n - 1)));
	} else if (u == 2) {
		d = rng_val(r) & m;
		hi_lo = ((unsigned __int128)rng_next(r) << 64) | rng_next(r);
	} else if (!sgn) {
		d = (rng_next(r) & m) >> rng_below(r, n);
		if (!d)
			d = 1;
		uint64_t q = (rng_next(r) & m) >> rng_below(r, n);
		uint64_t rem = rng_next(r) % d;
		hi_lo = (unsigned __int128)q * d + rem;
	} else {
		int64_t sd = sext64(rng_next(r) & m, n) >> rng_below(r, n);
		if (!sd)
			sd = rng_one_in(r, 2) ? 1 : -1;
		int64_t sq = sext64(rng_next(r) & m, n) >> rng_below(r, n);
		__int128 prod = (__int128)sq * sd;
		uint64_t ad = sd < 0 ? (uint64_t) - (__int128)sd : (uint64_t)sd;
		__int128 rem = (__int128)(rng_next(r) % ad);
		if (prod < 0 || (prod == 0 && rng_one_in(r, 2)))
			rem = -rem;
		hi_lo = (unsigned __int128)(prod + rem);
		d = (uint64_t)sd & m;
	}
	if (t->sz == 1) {
		set_acc(t, R_RAX, 2, (uint64_t)hi_lo);
	} else {
		set_acc(t, R_RAX, t->sz, (uint64_t)hi_lo);
		set_acc(t, R_RDX, t->sz, (uint64_t)(hi_lo >> n));
	}
	set_rm(t, &t->in, t->sz, d);
}

/* Choose the region (the low one for 32-bit addressing, RIP-relative
 * [disp32] absolutes...), randomize its data and stack, point RSP at the
 * test stack. */
static void case_region(struct tcase *t, struct rng *r, bool low)
{
	t->rg = (low || rng_one_in(r, 2)) ? &rg_low : &rg_high;
	uint64_t *d = (uint64_t *)(void *)rg_page(t->rg, PG_DATA);
	uint64_t *s = (uint64_t *)(void *)rg_page(t->rg, PG_STACK);
	bool small = rng_one_in(r, 4); /* small bytes make equal runs for CMPS/SCAS likelier */
	for (unsigned k = 0; k < DATA_SIZE / 8; k++)
		d[k] = small ? rng_next(r) & 0x0101010101010101ull : rng_next(r);
	for (unsigned k = 0; k < STACK_SIZE / 8; k++)
		s[k] = rng_next(r);
	t->gpr[R_RSP] = stack_top(t) - (rng_one_in(r, 8) ? rng_below(r, 16) : 0);
}

/* Flags the SDM leaves undefined for this case */
static uint32_t undef_flags(const struct tcase *t)
{
	unsigned bits = t->sz * 8, c = t->count & (t->sz == 8 ? 63 : 31);
	switch (t->f->uf) {
	case U_AF: return FL_AF;
	case U_SHIFT: /* SHL/SHR: CF undefined when the count reaches the width */
		return c == 0 ? 0 : FL_AF | (c != 1 ? FL_OF : 0) | (c >= bits ? FL_CF : 0);
	case U_SAR: return c == 0 ? 0 : FL_AF | (c != 1 ? FL_OF : 0) | (c >= bits ? FL_CF : 0);
	case U_ROT: /* ROL/ROR/RCL/RCR: only OF of multi-bit rotates */ return c == 0 ? 0 : (c != 1 ? FL_OF : 0);
	case U_SHXD: return c == 0 ? 0 : FL_AF | (c != 1 ? FL_OF : 0);
	case U_MUL: return FL_SF | FL_ZF | FL_AF | FL_PF;
	case U_DIV: return FL_ARITH;
	case U_BT: return FL_OF | FL_SF | FL_AF | FL_PF;
	case U_BSF: return FL_CF | FL_OF | FL_SF | FL_AF | FL_PF;
	default: return 0;
	}
}

static void shuffle_prefixes(struct ins *in, struct rng *r)
{
	for (unsigned k = in->npfx; k > 1; k--) {
		unsigned j = rng_below(r, k);
		uint8_t x = in->pfx[k - 1];
		in->pfx[k - 1] = in->pfx[j];
		in->pfx[j] = x;
	}
}

/* Table-driven forms: ModRM (reg, r/m), /digit r/m, opcode+register, or
 * bare opcode, with the form's immediate and input generator. */
static void gen_generic(struct tcase *t, struct rng *r)
{
	const struct form *f = t->f;
	struct ins *in = &t->in;
	ins_init(in);
	bool has_modrm = f->kind == K_MR || f->kind == K_M;
	bool memop = has_modrm && !t->regonly && (f->mem == M_ONLY || (f->mem == M_OK && rng_one_in(r, 2)));
	bool a32 = memop && rng_one_in(r, 6);
	if (!t->second)
		case_region(t, r, a32);

	maybe_null_prefix(in, r);
	set_size_prefix(t, in, r);
	if (a32)
		ins_prefix(in, 0x67);
	if ((f->lock && memop && rng_one_in(r, 3)) || rng_one_in(r, 80))
		ins_prefix(in, 0xf0); /* on a register operand or a non-lockable op: #UD */
	if (rng_one_in(r, 3))
		shuffle_prefixes(in, r);
	in->mand = f->mand;
	in->map0f = f->map0f;
	in->op = t->sz == 1 ? f->op8 : f->op;
	if (t->sz == 1 && rng_one_in(r, 2))
		in->rex = true; /* SPL..DIL instead of AH..BH */
	else if (rng_one_in(r, 16))
		in->rex = true; /* a REX that changes nothing */

	uint16_t avoid = f->implicit;
	if (has_modrm) {
		in->modrm = true;
		in->reg = f->ext >= 0 ? (unsigned)f->ext : rng_below(r, 16);
		if (f->ext < 0)
			avoid |= 1u << in->reg;
		if (!memop)
			in->rm = (int)rng_below(r, 16);
	} else if (f->kind == K_O) {
		in->opreg = (int)rng_below(r, 16);
	}

	if (memop) {
		t->mem = true;
		if (f->gen == G_LEA) {
			t->target = rng_val(r);
		} else if (f->gen == G_BT) {
			t->target = rg_addr(t->rg, PG_DATA2, 0) - 64 + rng_below(r, 128);
		} else if (f->gen == G_CX8) {
			unsigned al = t->sz == 8 ? 16 : 8;
			t->target = rg_addr(t->rg, PG_DATA, 64 + rng_below(r, DATA_SIZE - 128));
			if (!rng_one_in(r, 6))
				t->target &= ~(uint64_t)(al - 1);
		} else {
			t->target = pick_target(t, r, t->sz, true, a32);
		}
		mem_place(t, r, in, t->target, avoid, a32);
	}

	switch (f->imm) {
	case I_B:
		in->ilen = 1;
		in->imm = rng_val(r);
		break;
	case I_Z:
		in->ilen = t->sz == 1 ? 1 : t->sz == 2 ? 2 : 4;
		in->imm = rng_val(r);
		break;
	case I_V:
		in->ilen = t->sz;
		in->imm = rng_val(r);
		break;
	case I_W:
		in->ilen = 2;
		in->imm = rng_val(r);
		break;
	default: break;
	}

	switch (f->gen) {
	case G_SHIFT_CL:
		t->count = rng_count(r);
		set_acc(t, R_RCX, 1, t->count);
		break;
	case G_SHIFT_IMM:
		t->count = rng_count(r);
		in->imm = t->count;
		break;
	case G_SHIFT_1: t->count = 1; break;
	case G_SHXD_CL:
	case G_SHXD_IMM:
		/* 16-bit counts above 16 leave the result undefined: not tested */
		do
			t->count = rng_count(r);
		while (t->sz == 2 && (t->count & 31) > 16);
		if (f->gen == G_SHXD_CL)
			set_acc(t, R_RCX, 1, t->count);
		else
			in->imm = t->count;
		break;
	case G_DIV:
	case G_IDIV: gen_div(t, r, f->gen == G_IDIV); break;
	case G_BT:
		if (memop) /* bit offsets reaching +-3000 bytes around the operand */
			set_acc(t, in->reg, t->sz, (uint64_t)(int64_t)((int)rng_below(r, 48001) - 24000));
		break;
	case G_CMPXCHG:
		if (rng_one_in(r, 2))
			set_acc(t, R_RAX, t->sz, rm_value(t, in, t->sz));
		break;
	case G_CX8: {
		unsigned h = t->sz; /* half: 4 (CMPXCHG8B) or 8 (CMPXCHG16B) */
		if (rng_one_in(r, 2)) {
			set_acc(t, R_RAX, h, data_read(t, t->target, h));
			set_acc(t, R_RDX, h, data_read(t, t->target + h, h));
		}
		break;
	}
	case G_ZERO:
		if (rng_one_in(r, 4))
			set_rm(t, in, t->sz, 0);
		break;
	case G_POPF: {
		uint64_t v = (rng_next(r) & FL_CMP) | 2;
		stack_write(t, t->gpr[R_RSP], t->sz, v);
		break;
	}
	default: break;
	}
	body_ins(t, in);
}

/* ---- Custom forms ---- */

static void set_flags_random(struct tcase *t, struct rng *r)
{
	t->fl = (rng_next(r) & FL_CMP) | 0x202;
}

/* Jcc rel8/rel32 over a marker, and a backward Jcc */
static void gen_jcc(struct tcase *t, struct rng *r)
{
	uint8_t cc = t->f->aux;
	case_region(t, r, false);
	set_flags_random(t, r);
	bool hint = rng_one_in(r, 8); /* 2E/3E branch hints are ignored */
	uint8_t h = rng_one_in(r, 2) ? 0x2e : 0x3e;
	switch (rng_below(r, 3)) {
	case 0: {
		uint8_t b[3] = {h, (uint8_t)(0x70 + cc), 4};
		body_put(t, b + !hint, 2 + hint);
		body_marker(t);
		break;
	}
	case 1: {
		uint8_t b[7] = {h, 0x0f, (uint8_t)(0x80 + cc), 4, 0, 0, 0};
		body_put(t, b + !hint, 6 + hint);
		body_marker(t);
		break;
	}
	default: {
		/* jmp fwd; back: lea r14,[r14+1]; jmp end; fwd: jcc back; marker; end: */
		uint8_t b1[2] = {0xeb, 6};
		uint8_t b3[2] = {0xeb, (uint8_t)(6 + hint)};
		uint8_t b2[3] = {h, (uint8_t)(0x70 + cc), (uint8_t) - (8 + hint)};
		body_put(t, b1, 2);
		body_put(t, "\x4d\x8d\x76\x01", 4);
		body_put(t, b3, 2);
		body_put(t, b2 + !hint, 2 + hint);
		body_marker(t);
		break;
	}
	}
}

/* LOOP/LOOPE/LOOPNE/JRCXZ (E0-E3), with RCX or (67) ECX */
static void gen_loop(struct tcase *t, struct rng *r)
{
	static const uint64_t cx[] = {0, 1, 2, 0x100000000ull, 0x100000001ull, 0xffffffffull, ~0ull};
	case_region(t, r, false);
	set_flags_random(t, r);
	if (rng_one_in(r, 2))
		t->gpr[R_RCX] = cx[rng_below(r, sizeof(cx) / sizeof(cx[0]))];
	if (rng_one_in(r, 2))
		body_put(t, "\x67", 1);
	uint8_t b[2] = {t->f->aux, 4};
	body_put(t, b, 2);
	body_marker(t);
}

/* JMP/CALL: rel8/rel32 and indirect through a register or memory */
static void gen_branch(struct tcase *t, struct rng *r)
{
	bool call = t->f->aux == 2;
	case_region(t, r, false);
	set_flags_random(t, r);
	unsigned v = rng_below(r, 4);
	if (v == 0 && !call) {
		body_put(t, "\xeb\x04", 2);
		body_marker(t);
		return;
	}
	if (v <= 1) {
		body_put(t, call ? "\xe8\x04\x00\x00\x00" : "\xe9\x04\x00\x00\x00", 5);
		body_marker(t);
		return;
	}
	struct ins *in = &t->in;
	ins_init(in);
	maybe_null_prefix(in, r);
	in->op = 0xff;
	in->modrm = true;
	in->reg = t->f->aux;
	in->rex = rng_one_in(r, 4);
	in->w = rng_one_in(r, 4); /* REX.W changes nothing: 64-bit either way */
	if (v == 2) {
		in->rm = (int)pick_reg(r, 1u << R_RSP);
	} else {
		t->mem = true;
		t->target = pick_target(t, r, 8, true, false);
		mem_place(t, r, in, t->target, 1u << R_RSP, false);
	}
	uint8_t b[32];
	unsigned n = ins_encode(in, b, body_addr(t));
	uint64_t dest = body_addr(t) + n + 4;
	if (rng_one_in(r, 16))
		dest ^= 1ull << (48 + rng_below(r, 15)); /* non-canonical: #GP at the branch */
	if (v == 2)
		t->gpr[in->rm] = dest;
	else
		data_write(t, t->target, 8, dest);
	body_put(t, b, n);
	body_marker(t);
}

/* RET, RET imm16, REP RET: the stack holds the address past a marker */
static void gen_ret(struct tcase *t, struct rng *r)
{
	case_region(t, r, false);
	set_flags_random(t, r);
	if (rng_one_in(r, 4))
		body_put(t, "\xf3", 1);
	if (rng_one_in(r, 2)) {
		uint16_t imm = rng_one_in(r, 2) ? (uint16_t)(rng_below(r, 9) * 8) : (uint16_t)rng_next(r);
		uint8_t b[3] = {0xc2, (uint8_t)imm, (uint8_t)(imm >> 8)};
		body_put(t, b, 3);
	} else {
		body_put(t, "\xc3", 1);
	}
	uint64_t dest = body_addr(t) + t->blen + 4;
	if (rng_one_in(r, 16))
		dest ^= 1ull << (48 + rng_below(r, 15)); /* non-canonical: #GP at the RET */
	stack_write(t, t->gpr[R_RSP], 8, dest);
	body_marker(t);
}

/* A pointer that faults in both worlds (a random one might hit host
 * memory that corral's vmem does not map, such as sanitizer shadow). */
static uint64_t bad_pointer(const struct tcase *t, struct rng *r)
{
	if (rng_one_in(r, 2))
		return rg_addr(t->rg, PG_GUARD1, 512 + rng_below(r, 2048));
	return rng_next(r) | (1ull << 62);
}

/* ENTER imm16, imm8 with RBP pointing at a frame chain above RSP */
static void gen_enter(struct tcase *t, struct rng *r)
{
	case_region(t, r, false);
	set_flags_random(t, r);
	if (!rng_one_in(r, 8))
		t->gpr[R_RBP] = t->gpr[R_RSP] + 8 * (1 + rng_below(r, 128));
	else
		t->gpr[R_RBP] = bad_pointer(t, r);
	/* Frames stay inside the stack: AMD CPUs probe the new stack top. */
	uint16_t sz = rng_one_in(r, 2) ? (uint16_t)(rng_below(r, 64) * 8) : (uint16_t)rng_below(r, 0x1000);
	static const uint8_t lv[] = {0, 0, 1, 1, 2, 3, 7, 31, 32, 33, 255};
	uint8_t level = lv[rng_below(r, sizeof(lv))];
	uint8_t b[4] = {0xc8, (uint8_t)sz, (uint8_t)(sz >> 8), level};
	body_put(t, b, 4);
}

/* LEAVE (64- and 16-bit) with RBP inside the stack */
static void gen_leave(struct tcase *t, struct rng *r)
{
	case_region(t, r, false);
	set_flags_random(t, r);
	if (!rng_one_in(r, 8))
		t->gpr[R_RBP] = t->gpr[R_RSP] + rng_below(r, 2048) - 64;
	else
		t->gpr[R_RBP] = bad_pointer(t, r);
	if (rng_one_in(r, 4))
		body_put(t, "\x66", 1);
	body_put(t, "\xc9", 1);
}

/* XLAT: AL = [RBX + AL] (or [EBX + AL] with 67) */
static void gen_xlat(struct tcase *t, struct rng *r)
{
	bool a32 = rng_one_in(r, 3);
	case_region(t, r, a32);
	set_flags_random(t, r);
	uint64_t tbl = rg_addr(t->rg, PG_DATA, rng_below(r, DATA_SIZE - 256));
	if (rng_one_in(r, 20))
		tbl = rg_addr(t->rg, PG_DATA2, PG - rng_below(r, 256)); /* may run into the guard */
	t->gpr[R_RBX] = a32 ? ((rng_next(r) << 32) | (tbl & 0xffffffff)) : tbl;
	if (a32)
		body_put(t, "\x67", 1);
	if (rng_one_in(r, 4))
		body_put(t, "\x48", 1);
	body_put(t, "\xd7", 1);
}

/* MOV AL/AX/EAX/RAX <-> moffs (A0-A3) with 64-bit or (67) 32-bit addresses */
static void gen_moffs(struct tcase *t, struct rng *r)
{
	static const unsigned szs[] = {1, 2, 4, 8};
	bool a32 = rng_one_in(r, 3);
	case_region(t, r, a32);
	set_flags_random(t, r);
	unsigned sz = szs[rng_below(r, 4)];
	uint64_t a = pick_target(t, r, sz, true, a32);
	uint8_t b[16];
	unsigned n = 0;
	if (a32)
		b[n++] = 0x67;
	if (sz == 2)
		b[n++] = 0x66;
	if (sz == 8)
		b[n++] = 0x48;
	b[n++] = (uint8_t)(t->f->aux + (sz == 1 ? 0 : 1));
	memcpy(b + n, &a, a32 ? 4 : 8);
	n += a32 ? 4 : 8;
	body_put(t, b, n);
	t->sz = sz;
}

/* String instructions, with REP/REPE/REPNE, DF both ways, all sizes,
 * 64- and 32-bit addressing, overlapping MOVS and runs into a guard page. */
static void gen_string(struct tcase *t, struct rng *r)
{
	static const unsigned szs[] = {2, 4, 8};
	uint8_t op = t->f->aux;
	bool byte = !(op & 1);
	unsigned sz = byte ? 1 : szs[rng_below(r, 3)];
	bool a32 = rng_one_in(r, 5);
	case_region(t, r, a32);
	set_flags_random(t, r);
	t->sz = sz;
	bool df = rng_one_in(r, 3);
	t->fl = (t->fl & ~(uint64_t)FL_DF) | (df ? FL_DF : 0);
	unsigned rep = rng_below(r, 4); /* 0 none, 1 F3, 2 F2, 3 F3 */
	uint64_t count = rng_one_in(r, 6) ? rng_below(r, 3) : rng_below(r, 65);
	unsigned span = (unsigned)(count + 1) * sz;
	uint64_t data = rg_addr(t->rg, PG_DATA, 0);
	uint64_t src = data + span + rng_below(r, DATA_SIZE - 2 * span);
	uint64_t dst = data + span + rng_below(r, DATA_SIZE - 2 * span);
	if (rng_one_in(r, 6)) { /* overlapping MOVS/CMPS */
		uint64_t d2 = src + rng_below(r, 33) - 16;
		if (d2 >= data + span && d2 + span <= data + DATA_SIZE)
			dst = d2;
	}
	if (rng_one_in(r, 12)) { /* run into a guard page */
		uint64_t *p = rng_one_in(r, 2) ? &src : &dst;
		*p = df ? data + rng_below(r, span) : data + DATA_SIZE - rng_below(r, span);
	}
	/* Make CMPS/SCAS compare equal for a while, then maybe differ */
	uint8_t *dp = rg_page(t->rg, PG_DATA);
	if ((op == 0xa6 || op == 0xa7) && rng_one_in(r, 2) && src != dst) {
		for (unsigned k = 0; k < span; k++) {
			int64_t o = df ? -(int64_t)k + (int64_t)sz - 1 : (int64_t)k;
			uint64_t sa = src + (uint64_t)o, da = dst + (uint64_t)o;
			if (sa >= data && sa < data + DATA_SIZE && da >= data && da < data + DATA_SIZE)
				dp[da - data] = dp[sa - data];
		}
		if (rng_one_in(r, 2)) {
			uint64_t at = dst + (df ? -(int64_t)rng_below(r, span) : (int64_t)rng_below(r, span));
			if (at >= data && at < data + DATA_SIZE)
				dp[at - data] ^= 1;
		}
	}
	if ((op == 0xae || op == 0xaf) && rng_one_in(r, 2)) {
		for (unsigned k = 0; k + sz <= span; k += sz) {
			uint64_t da = df ? dst - k : dst + k;
			if (da >= data && da + sz <= data + DATA_SIZE)
				memcpy(dp + (da - data), &t->gpr[R_RAX], sz);
		}
		if (rng_one_in(r, 2)) {
			uint64_t at = dst + (df ? -(int64_t)rng_below(r, span) : (int64_t)rng_below(r, span));
			if (at >= data && at < data + DATA_SIZE)
				dp[at - data] ^= 0x10;
		}
	}
	uint64_t hi = rng_next(r) & 0xffffffff00000000ull;
	t->gpr[R_RSI] = a32 ? (hi | (src & 0xffffffff)) : src;
	t->gpr[R_RDI] = a32 ? ((hi >> 3) | (dst & 0xffffffff)) : dst;
	if (rep)
		t->gpr[R_RCX] = a32 ? ((rng_next(r) << 32) | count) : count;
	/* Without REP the count does not matter; keep RCX random then. */
	struct ins *in = &t->in;
	ins_init(in);
	maybe_null_prefix(in, r);
	if (rep)
		ins_prefix(in, rep == 2 ? 0xf2 : 0xf3);
	if (a32)
		ins_prefix(in, 0x67);
	if (sz == 2)
		ins_prefix(in, 0x66);
	if (rng_one_in(r, 3))
		shuffle_prefixes(in, r);
	in->w = sz == 8;
	in->rex = rng_one_in(r, 8);
	in->op = op;
	body_ins(t, in);
}

/* Instructions that must fault at CPL 3 in 64-bit mode (or are invalid) */
static const struct {
	const char *b;
	unsigned n;
} fault_seqs[] = {
	{"\x0f\x0b", 2},     /* ud2 */
	{"\x0f\xff\xc0", 3}, /* ud0 */
	{"\x0f\xb9\xc0", 3}, /* ud1 */
	{"\xf4", 1},	     /* hlt */
	{"\xfa", 1},	     /* cli */
	{"\xfb", 1},	     /* sti */
	{"\xec", 1},	     /* in al, dx */
	{"\xed", 1},	     /* in eax, dx */
	{"\xee", 1},	     /* out dx, al */
	{"\xe4\x80", 2},     /* in al, 0x80 */
	{"\xe6\x80", 2},     /* out 0x80, al */
	{"\x6c", 1},	     /* insb */
	{"\x6e", 1},	     /* outsb */
	{"\x0f\x20\xc0", 3}, /* mov rax, cr0 */
	{"\x0f\x22\xd8", 3}, /* mov cr3, rax */
	{"\x0f\x21\xc0", 3}, /* mov rax, dr0 */
	{"\x0f\x32", 2},     /* rdmsr */
	{"\x0f\x30", 2},     /* wrmsr */
	{"\x0f\x06", 2},     /* clts */
	{"\x0f\x08", 2},     /* invd */
	{"\x0f\x09", 2},     /* wbinvd */
	{"\x0f\x01\xf8", 3}, /* swapgs */
	{"\x0f\x00\xd8", 3}, /* ltr ax */
	{"\x0f\x01\x10", 3}, /* lgdt [rax] */
	{"\xcd\x10", 2},     /* int 0x10: gate DPL 0 */
	{"\x06", 1},
	{"\x07", 1},
	{"\x0e", 1},
	{"\x16", 1},
	{"\x17", 1},
	{"\x1e", 1},
	{"\x1f", 1},
	{"\x27", 1},
	{"\x2f", 1},
	{"\x37", 1},
	{"\x3f", 1},
	{"\x60", 1},
	{"\x61", 1},
	{"\xce", 1},
	{"\xd6", 1},
	{"\xd4\x0a", 2},
	{"\xd5\x0a", 2},
	{"\x82\xc0\x01", 3},
	{"\x9a\x00\x00\x00\x00\x00\x00", 7},
	{"\xea\x00\x00\x00\x00\x00\x00", 7},
	{"\xf0\x90", 2},	 /* lock nop */
	{"\xf0\x89\xc0", 3},	 /* lock mov */
	{"\xf0\x01\xc0", 3},	 /* lock add reg, reg */
	{"\xf0\x0f\xa3\x00", 4}, /* lock bt [rax] */
	{"\xf0\xf6\x00\x01", 4}, /* lock test */
	{"\x8f\xc8", 2},	 /* pop with ModRM.reg 1: XOP space */
	{"\xfe\xd0", 2},	 /* FE /2 */
	{"\xff\xf8", 2},	 /* FF /7 */
	{"\xff\xd8", 2},	 /* call far with a register operand */
	{"\x8d\xc0", 2},	 /* lea with a register operand */
	{"\x0f\xc7\xc8", 3},	 /* cmpxchg8b with a register operand */
};

static void gen_fault(struct tcase *t, struct rng *r)
{
	case_region(t, r, false);
	set_flags_random(t, r);
	unsigned k = t->f->aux;
	body_put(t, fault_seqs[k].b, fault_seqs[k].n);
}

/* Pairs: a flag-setting instruction followed by one that consumes or
 * partly updates the flags (ADC/SBB/SETcc/CMOVcc/INC/DEC/RCL...), to test
 * lazy flags across instructions. Registers only, so that neither changes
 * the other's address. */
static struct form *pair_first[MAX_FORMS], *pair_second[MAX_FORMS];
static unsigned npair_first, npair_second;

static unsigned pick_size(const struct form *f, struct rng *r)
{
	unsigned szs[4], n = 0;
	for (unsigned s = 1; s <= 8; s <<= 1)
		if (f->sizes & s)
			szs[n++] = s;
	return szs[rng_below(r, n)];
}

static void gen_pair(struct tcase *t, struct rng *r)
{
	struct form *self = t->f;
	struct form *a = pair_first[rng_below(r, npair_first)];
	struct form *b = pair_second[rng_below(r, npair_second)];
	t->regonly = true;
	t->f = a;
	t->sz = pick_size(a, r);
	gen_generic(t, r);
	uint32_t u = undef_flags(t);
	t->second = true;
	t->f = b;
	t->sz = pick_size(b, r);
	t->count = 0;
	gen_generic(t, r);
	t->extra_undef = u | undef_flags(t);
	t->f = self;
	t->count = 0;
}

static bool name_starts(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (!strncmp(name, *list, strlen(*list)))
			return true;
	return false;
}

static void pairs_init(void)
{
	/* The second must not read a flag the first may leave undefined: AF
	 * only is undefined in the firsts, and no consumer here reads AF. */
	static const char *const seconds[] = {"adc", "sbb", "set", "cmov", "inc", "dec", "rcl rm,1", "rcr rm,1", "add",
					      "sub", "xor", "neg", "mov",  "clc", "stc", "cmc",	     NULL};
	static const char *const never[] = {"push", "pop", "lea", "prefetch", "cmpxchg8b", NULL};
	for (unsigned k = 0; k < nforms; k++) {
		struct form *f = &forms[k];
		if (f->kind == K_CUSTOM || f->mem == M_ONLY || name_starts(f->name, never))
			continue;
		if (f->uf == U_NONE || f->uf == U_AF)
			pair_first[npair_first++] = f;
		if (name_starts(f->name, seconds))
			pair_second[npair_second++] = f;
	}
	form_custom("pair", gen_pair, 0)->weight = 20;
}

/* ---- The table ---- */

static void forms_init(void)
{
	static const char *const alu[8] = {"add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"};
	static const char *const sh[8] = {"rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"};
	static const uint8_t sh_uf[8] = {U_ROT, U_ROT, U_ROT, U_ROT, U_SHIFT, U_SHIFT, U_SHIFT, U_SAR};
	static const char *const cc[16] = {"o", "no", "b", "ae", "e", "ne", "be", "a",
					   "s", "ns", "p", "np", "l", "ge", "le", "g"};
	char nm[32];
	struct form *f;

	for (int k = 0; k < 8; k++) {
		int uf = (k == 1 || k == 4 || k == 6) ? U_AF : U_NONE;
		snprintf(nm, sizeof(nm), "%s rm,r", alu[k]);
		f = form_add(nm, K_MR, false, k * 8, k * 8 + 1, -1, 15, I_NONE, M_OK, uf);
		f->lock = k != 7;
		f->weight = 2;
		snprintf(nm, sizeof(nm), "%s r,rm", alu[k]);
		form_add(nm, K_MR, false, k * 8 + 2, k * 8 + 3, -1, 15, I_NONE, M_OK, uf);
		snprintf(nm, sizeof(nm), "%s acc,imm", alu[k]);
		form_add(nm, K_Z, false, k * 8 + 4, k * 8 + 5, -1, 15, I_Z, M_NO, uf);
		snprintf(nm, sizeof(nm), "%s rm,imm", alu[k]);
		f = form_add(nm, K_M, false, 0x80, 0x81, k, 15, I_Z, M_OK, uf);
		f->lock = k != 7;
		snprintf(nm, sizeof(nm), "%s rm,imm8", alu[k]);
		f = form_add(nm, K_M, false, 0, 0x83, k, 14, I_B, M_OK, uf);
		f->lock = k != 7;
	}
	form_add("test rm,r", K_MR, false, 0x84, 0x85, -1, 15, I_NONE, M_OK, U_AF);
	form_add("test acc,imm", K_Z, false, 0xa8, 0xa9, -1, 15, I_Z, M_NO, U_AF);
	form_add("test rm,imm", K_M, false, 0xf6, 0xf7, 0, 15, I_Z, M_OK, U_AF);
	form_add("test rm,imm /1", K_M, false, 0xf6, 0xf7, 1, 15, I_Z, M_OK, U_AF);
	form_add("not", K_M, false, 0xf6, 0xf7, 2, 15, I_NONE, M_OK, U_NONE)->lock = true;
	form_add("neg", K_M, false, 0xf6, 0xf7, 3, 15, I_NONE, M_OK, U_NONE)->lock = true;
	form_add("inc", K_M, false, 0xfe, 0xff, 0, 15, I_NONE, M_OK, U_NONE)->lock = true;
	form_add("dec", K_M, false, 0xfe, 0xff, 1, 15, I_NONE, M_OK, U_NONE)->lock = true;
	f = form_add("mul", K_M, false, 0xf6, 0xf7, 4, 15, I_NONE, M_OK, U_MUL);
	f->implicit = RAXM | RDXM;
	f = form_add("imul rm", K_M, false, 0xf6, 0xf7, 5, 15, I_NONE, M_OK, U_MUL);
	f->implicit = RAXM | RDXM;
	f = form_add("div", K_M, false, 0xf6, 0xf7, 6, 15, I_NONE, M_OK, U_DIV);
	f->implicit = RAXM | RDXM;
	f->gen = G_DIV;
	f->weight = 3;
	f = form_add("idiv", K_M, false, 0xf6, 0xf7, 7, 15, I_NONE, M_OK, U_DIV);
	f->implicit = RAXM | RDXM;
	f->gen = G_IDIV;
	f->weight = 3;
	form_add("imul r,rm", K_MR, true, 0, 0xaf, -1, 14, I_NONE, M_OK, U_MUL);
	form_add("imul r,rm,imm", K_MR, false, 0, 0x69, -1, 14, I_Z, M_OK, U_MUL);
	form_add("imul r,rm,imm8", K_MR, false, 0, 0x6b, -1, 14, I_B, M_OK, U_MUL);

	for (int k = 0; k < 8; k++) {
		snprintf(nm, sizeof(nm), "%s rm,imm8", sh[k]);
		f = form_add(nm, K_M, false, 0xc0, 0xc1, k, 15, I_B, M_OK, sh_uf[k]);
		f->gen = G_SHIFT_IMM;
		f->weight = 2;
		snprintf(nm, sizeof(nm), "%s rm,1", sh[k]);
		f = form_add(nm, K_M, false, 0xd0, 0xd1, k, 15, I_NONE, M_OK, sh_uf[k]);
		f->gen = G_SHIFT_1;
		snprintf(nm, sizeof(nm), "%s rm,cl", sh[k]);
		f = form_add(nm, K_M, false, 0xd2, 0xd3, k, 15, I_NONE, M_OK, sh_uf[k]);
		f->gen = G_SHIFT_CL;
		f->implicit = RCXM;
		f->weight = 2;
	}
	f = form_add("shld rm,r,imm8", K_MR, true, 0, 0xa4, -1, 14, I_B, M_OK, U_SHXD);
	f->gen = G_SHXD_IMM;
	f->weight = 2;
	f = form_add("shld rm,r,cl", K_MR, true, 0, 0xa5, -1, 14, I_NONE, M_OK, U_SHXD);
	f->gen = G_SHXD_CL;
	f->implicit = RCXM;
	f->weight = 2;
	f = form_add("shrd rm,r,imm8", K_MR, true, 0, 0xac, -1, 14, I_B, M_OK, U_SHXD);
	f->gen = G_SHXD_IMM;
	f->weight = 2;
	f = form_add("shrd rm,r,cl", K_MR, true, 0, 0xad, -1, 14, I_NONE, M_OK, U_SHXD);
	f->gen = G_SHXD_CL;
	f->implicit = RCXM;
	f->weight = 2;

	form_add("mov rm,r", K_MR, false, 0x88, 0x89, -1, 15, I_NONE, M_OK, U_NONE);
	form_add("mov r,rm", K_MR, false, 0x8a, 0x8b, -1, 15, I_NONE, M_OK, U_NONE);
	form_add("mov rm,imm", K_M, false, 0xc6, 0xc7, 0, 15, I_Z, M_OK, U_NONE);
	form_add("mov r,imm", K_O, false, 0xb0, 0xb8, -1, 15, I_V, M_NO, U_NONE);
	form_add("mov rm,sreg", K_MR, false, 0, 0x8c, -1, 14, I_NONE, M_OK, U_NONE);
	form_add("movzx r,rm8", K_MR, true, 0, 0xb6, -1, 14, I_NONE, M_OK, U_NONE);
	form_add("movzx r,rm16", K_MR, true, 0, 0xb7, -1, 14, I_NONE, M_OK, U_NONE);
	form_add("movsx r,rm8", K_MR, true, 0, 0xbe, -1, 14, I_NONE, M_OK, U_NONE);
	form_add("movsx r,rm16", K_MR, true, 0, 0xbf, -1, 14, I_NONE, M_OK, U_NONE);
	form_add("movsxd r,rm32", K_MR, false, 0, 0x63, -1, 14, I_NONE, M_OK, U_NONE);
	f = form_add("lea", K_MR, false, 0, 0x8d, -1, 14, I_NONE, M_ONLY, U_NONE);
	f->gen = G_LEA;
	f->weight = 3;
	form_add("xchg rm,r", K_MR, false, 0x86, 0x87, -1, 15, I_NONE, M_OK, U_NONE)->lock = true;
	form_add("xchg acc,r", K_O, false, 0, 0x90, -1, 14, I_NONE, M_NO, U_NONE);
	f = form_add("cmpxchg", K_MR, true, 0xb0, 0xb1, -1, 15, I_NONE, M_OK, U_NONE);
	f->lock = true;
	f->gen = G_CMPXCHG;
	f->implicit = RAXM;
	f->weight = 2;
	form_add("xadd", K_MR, true, 0xc0, 0xc1, -1, 15, I_NONE, M_OK, U_NONE)->lock = true;
	f = form_add("cmpxchg8b/16b", K_M, true, 0, 0xc7, 1, 12, I_NONE, M_ONLY, U_NONE);
	f->lock = true;
	f->gen = G_CX8;
	f->implicit = RAXM | RBXM | RCXM | RDXM;
	f->weight = 2;

	static const char *const bt[4] = {"bt", "bts", "btr", "btc"};
	for (int k = 0; k < 4; k++) {
		snprintf(nm, sizeof(nm), "%s rm,r", bt[k]);
		f = form_add(nm, K_MR, true, 0, 0xa3 + 8 * k, -1, 14, I_NONE, M_OK, U_BT);
		f->gen = G_BT;
		f->lock = k != 0;
		f->weight = 2;
		snprintf(nm, sizeof(nm), "%s rm,imm8", bt[k]);
		f = form_add(nm, K_M, true, 0, 0xba, 4 + k, 14, I_B, M_OK, U_BT);
		f->lock = k != 0;
	}
	form_add("bsf", K_MR, true, 0, 0xbc, -1, 14, I_NONE, M_OK, U_BSF)->gen = G_ZERO;
	form_add("bsr", K_MR, true, 0, 0xbd, -1, 14, I_NONE, M_OK, U_BSF)->gen = G_ZERO;
	f = form_add("popcnt", K_MR, true, 0, 0xb8, -1, 14, I_NONE, M_OK, U_NONE);
	f->mand = 0xf3;
	f->gen = G_ZERO;
	form_add("bswap", K_O, true, 0, 0xc8, -1, 12, I_NONE, M_NO, U_NONE);
	form_add("cbw/cwde/cdqe", K_Z, false, 0, 0x98, -1, 14, I_NONE, M_NO, U_NONE);
	form_add("cwd/cdq/cqo", K_Z, false, 0, 0x99, -1, 14, I_NONE, M_NO, U_NONE);
	form_add("sahf", K_Z, false, 0, 0x9e, -1, 4, I_NONE, M_NO, U_NONE);
	form_add("lahf", K_Z, false, 0, 0x9f, -1, 4, I_NONE, M_NO, U_NONE);
	form_add("clc", K_Z, false, 0, 0xf8, -1, 4, I_NONE, M_NO, U_NONE);
	form_add("stc", K_Z, false, 0, 0xf9, -1, 4, I_NONE, M_NO, U_NONE);
	form_add("cmc", K_Z, false, 0, 0xf5, -1, 4, I_NONE, M_NO, U_NONE);
	form_add("cld", K_Z, false, 0, 0xfc, -1, 4, I_NONE, M_NO, U_NONE);
	form_add("std", K_Z, false, 0, 0xfd, -1, 4, I_NONE, M_NO, U_NONE);
	form_add("nop", K_Z, false, 0, 0x90, -1, 6, I_NONE, M_NO, U_NONE);
	form_add("nop rm", K_M, true, 0, 0x1f, 0, 6, I_NONE, M_OK, U_NONE);
	for (int k = 0; k < 4; k++) {
		snprintf(nm, sizeof(nm), "prefetch /%d", k);
		form_add(nm, K_M, true, 0, 0x18, k, 4, I_NONE, M_ONLY, U_NONE);
	}

	for (int k = 0; k < 16; k++) {
		snprintf(nm, sizeof(nm), "set%s", cc[k]);
		form_add(nm, K_MR, true, 0x90 + k, 0, -1, 1, I_NONE, M_OK, U_NONE);
		snprintf(nm, sizeof(nm), "cmov%s", cc[k]);
		form_add(nm, K_MR, true, 0, 0x40 + k, -1, 14, I_NONE, M_OK, U_NONE);
		snprintf(nm, sizeof(nm), "j%s", cc[k]);
		form_custom(nm, gen_jcc, k);
	}
	form_custom("loopne", gen_loop, 0xe0);
	form_custom("loope", gen_loop, 0xe1);
	form_custom("loop", gen_loop, 0xe2);
	form_custom("jrcxz", gen_loop, 0xe3);
	form_custom("jmp", gen_branch, 4);
	form_custom("call", gen_branch, 2);
	form_custom("ret", gen_ret, 0);
	form_custom("enter", gen_enter, 0)->weight = 2;
	form_custom("leave", gen_leave, 0);
	form_custom("xlat", gen_xlat, 0);
	form_custom("mov acc,moffs", gen_moffs, 0xa0);
	form_custom("mov moffs,acc", gen_moffs, 0xa2);

	form_add("push r", K_O, false, 0, 0x50, -1, 10, I_NONE, M_NO, U_NONE);
	form_add("pop r", K_O, false, 0, 0x58, -1, 10, I_NONE, M_NO, U_NONE);
	/* RSP stays the stack pointer (not an address base) where the stack is used */
	form_add("push rm", K_M, false, 0, 0xff, 6, 10, I_NONE, M_OK, U_NONE)->implicit = 1u << R_RSP;
	form_add("pop rm", K_M, false, 0, 0x8f, 0, 10, I_NONE, M_OK, U_NONE)->implicit = 1u << R_RSP;
	form_add("push imm8", K_Z, false, 0, 0x6a, -1, 10, I_B, M_NO, U_NONE);
	form_add("push imm", K_Z, false, 0, 0x68, -1, 10, I_Z, M_NO, U_NONE);
	form_add("pushf", K_Z, false, 0, 0x9c, -1, 10, I_NONE, M_NO, U_NONE);
	form_add("popf", K_Z, false, 0, 0x9d, -1, 10, I_NONE, M_NO, U_NONE)->gen = G_POPF;

	static const char *const str[6] = {"movs", "cmps", "", "stos", "lods", "scas"};
	for (int k = 0; k < 12; k++) {
		if (k / 2 == 2)
			continue; /* A8/A9 are TEST */
		snprintf(nm, sizeof(nm), "%s%s", str[k / 2], (k & 1) ? "w/d/q" : "b");
		form_custom(nm, gen_string, 0xa4 + k)->weight = 4;
	}
	for (unsigned k = 0; k < sizeof(fault_seqs) / sizeof(fault_seqs[0]); k++) {
		snprintf(nm, sizeof(nm), "fault #%u", k);
		form_custom(nm, gen_fault, (int)k)->weight = 0;
	}
}

/* ---- Running and comparing ---- */

static struct cpu cpu;
static struct vmem vm;
static uint8_t init_data[DATA_SIZE], init_stack[STACK_SIZE];
static uint8_t nat_data[DATA_SIZE], nat_stack[STACK_SIZE];
static uint64_t nat_out[17];
static unsigned printed_total;
static unsigned long total_cases, total_fails, total_faults;

static const char *const reg_names[16] = {
	"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
};

#define MAX_PRINT_FORM 2
#define MAX_PRINT_TOTAL 150

/* Print the case once, then each difference. */
struct report {
	const struct tcase *t;
	unsigned long idx;
	bool started, quiet;
	unsigned ndiff;
};

static void report_head(struct report *rp)
{
	const struct tcase *t = rp->t;
	rp->ndiff++;
	if (rp->started || rp->quiet)
		return;
	rp->started = true;
	printf("FAIL %s (%u-bit) case %lu, region %s, code:", t->f->name, t->sz * 8, rp->idx, t->rg->name);
	for (unsigned k = 0; k < t->blen; k++)
		printf(" %02x", t->body[k]);
	printf("\n  in:");
	for (unsigned k = 0; k < 16; k++)
		printf("%s %s=%016" PRIx64, (k % 4 == 0) ? "\n   " : "", reg_names[k], t->gpr[k]);
	printf("\n    rflags=%03" PRIx64 "%s", t->fl, t->mem ? "" : "\n");
	if (t->mem)
		printf(" mem operand at 0x%" PRIx64 "\n", t->target);
}

static void report(struct report *rp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(struct report *rp, const char *fmt, ...)
{
	va_list ap;
	report_head(rp);
	if (!rp->t->f->first[0]) {
		va_start(ap, fmt);
		vsnprintf(rp->t->f->first, sizeof(rp->t->f->first), fmt, ap);
		va_end(ap);
	}
	if (rp->quiet)
		return;
	va_start(ap, fmt);
	printf("  ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

static void compare_mem(struct report *rp, const char *what, const uint8_t *nat, const uint8_t *cor, size_t n,
			uint64_t base)
{
	if (!memcmp(nat, cor, n))
		return;
	unsigned shown = 0;
	for (size_t k = 0; k < n; k++) {
		if (nat[k] == cor[k])
			continue;
		if (shown++ < 8)
			report(rp, "%s byte 0x%" PRIx64 ": native %02x corral %02x", what, base + k, nat[k], cor[k]);
	}
	if (shown > 8)
		report(rp, "%s: %u bytes differ in all", what, shown);
}

static void run_case(struct form *f, struct rng *r, unsigned long idx)
{
	static struct tcase t;
	memset(&t, 0, sizeof(t));
	t.f = f;
	unsigned szs[4], nsz = 0;
	for (unsigned s = 1; s <= 8; s <<= 1)
		if (f->sizes & s)
			szs[nsz++] = s;
	t.sz = szs[rng_below(r, nsz)];
	for (unsigned k = 0; k < 16; k++)
		t.gpr[k] = rng_val(r);
	t.fl = (rng_next(r) & FL_ARITH) | 0x202 | (rng_one_in(r, 4) ? FL_DF : 0);
	if (f->custom)
		f->custom(&t, r);
	else
		gen_generic(&t, r);
	t.undef = undef_flags(&t) | t.extra_undef;

	struct region *rg = t.rg;
	diff_blob_build(rg, t.body, t.blen);
	uint8_t *st = rg_page(rg, PG_STATE);
	memcpy(st + ST_IN, t.gpr, sizeof(t.gpr));
	memcpy(st + ST_IN + 16 * 8, &t.fl, 8);
	memcpy(init_data, rg_page(rg, PG_DATA), DATA_SIZE);
	memcpy(init_stack, rg_page(rg, PG_STACK), STACK_SIZE);

	/* Native */
	memset(st + ST_OUT, 0xcc, 17 * 8);
	int nat_faulted = diff_run_native(rg);
	struct nat_fault nf = diff_nat_fault;
	memcpy(nat_out, st + ST_OUT, sizeof(nat_out));
	memcpy(nat_data, rg_page(rg, PG_DATA), DATA_SIZE);
	memcpy(nat_stack, rg_page(rg, PG_STACK), STACK_SIZE);

	/* corral, from the same memory */
	memcpy(rg_page(rg, PG_DATA), init_data, DATA_SIZE);
	memcpy(rg_page(rg, PG_STACK), init_stack, STACK_SIZE);
	memset(st + ST_OUT, 0xcc, 17 * 8);
	enum cpu_exit e = diff_run_corral(&cpu, rg);

	struct report rp = {.t = &t, .idx = idx};
	rp.quiet = f->fails >= MAX_PRINT_FORM || printed_total >= MAX_PRINT_TOTAL;
	uint64_t body = body_addr(&t);
	uint32_t fmask = FL_CMP & ~t.undef;
	if (nat_faulted) {
		total_faults++;
		f->faults++;
		if (nf.rip < body || nf.rip >= body + t.blen)
			report(&rp, "harness: native signal %d outside the body at 0x%" PRIx64, nf.sig, nf.rip);
		if (e != CPU_EXIT_EXCEPTION) {
			report(&rp,
			       "native faults with %s (trap %d at body+%" PRId64 ", cr2 0x%" PRIx64
			       "), corral exits %d at rip 0x%" PRIx64,
			       cpu_exc_name(nf.trapno), nf.trapno, (int64_t)(nf.rip - body), nf.cr2, (int)e, cpu.s.rip);
		} else {
			if (cpu.exc_vector != nf.trapno)
				report(&rp, "exception: native %s, corral %s", cpu_exc_name(nf.trapno),
				       cpu_exc_name(cpu.exc_vector));
			if (cpu.s.rip != nf.rip)
				report(&rp, "fault rip: native body+%" PRId64 ", corral body+%" PRId64,
				       (int64_t)(nf.rip - body), (int64_t)(cpu.s.rip - body));
			if (nf.trapno == EXC_PF && cpu.exc_vector == EXC_PF && cpu.exc_addr != nf.cr2)
				report(&rp, "#PF address: native 0x%" PRIx64 ", corral 0x%" PRIx64, nf.cr2,
				       cpu.exc_addr);
			for (unsigned k = 0; k < 16; k++)
				if (cpu.s.gpr[k] != nf.gpr[k])
					report(&rp, "%s at the fault: native %016" PRIx64 " corral %016" PRIx64,
					       reg_names[k], nf.gpr[k], cpu.s.gpr[k]);
			uint64_t cf = cpu_get_rflags(&cpu);
			if ((cf ^ nf.rflags) & FL_CMP)
				report(&rp, "rflags at the fault: native %03" PRIx64 " corral %03" PRIx64,
				       nf.rflags & 0xfff, cf & 0xfff);
		}
	} else if (e != CPU_EXIT_SYSCALL) {
		if (e == CPU_EXIT_EXCEPTION)
			report(&rp,
			       "corral raises %s (error 0x%x, addr 0x%" PRIx64 ") at body+%" PRId64 ", native runs it",
			       cpu_exc_name(cpu.exc_vector), cpu.exc_error, cpu.exc_addr, (int64_t)(cpu.s.rip - body));
		else
			report(&rp, "corral exits %d at rip 0x%" PRIx64 ", native runs it", (int)e, cpu.s.rip);
	} else {
		uint64_t cor_out[17];
		memcpy(cor_out, st + ST_OUT, sizeof(cor_out));
		if (cpu.s.rip != rg_addr(rg, PG_CODE, STUB_OFF + 2))
			report(&rp, "corral ends at 0x%" PRIx64 ", not at the stub", cpu.s.rip);
		for (unsigned k = 0; k < 16; k++)
			if (!(t.gpr_skip & (1u << k)) && cor_out[k] != nat_out[k])
				report(&rp, "%s: native %016" PRIx64 " corral %016" PRIx64, reg_names[k], nat_out[k],
				       cor_out[k]);
		if ((cor_out[16] ^ nat_out[16]) & fmask)
			report(&rp, "rflags (compared bits %03x): native %03" PRIx64 " corral %03" PRIx64, fmask,
			       nat_out[16] & 0xfff, cor_out[16] & 0xfff);
	}
	compare_mem(&rp, "data", nat_data, rg_page(rg, PG_DATA), DATA_SIZE, rg_addr(rg, PG_DATA, 0));
	compare_mem(&rp, "stack", nat_stack, rg_page(rg, PG_STACK), STACK_SIZE, rg_addr(rg, PG_STACK, 0));

	f->runs++;
	total_cases++;
	if (rp.ndiff) {
		f->fails++;
		total_fails++;
		if (rp.started)
			printed_total++;
	}
}

int main(void)
{
	const char *env = getenv("CORRAL_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : 0xc0a1d1ff5eedull;
	bool full = getenv("CORRAL_FULL") != NULL;
	const char *only = getenv("CORRAL_DIFF_ONLY"); /* substring of form names */
	unsigned long base = full ? 6000 : 1500;
	if ((env = getenv("CORRAL_DIFF_ITERS")))
		base = strtoul(env, NULL, 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("t_diff: seed 0x%" PRIx64 " (set CORRAL_SEED to change), %s run\n", seed, full ? "full" : "quick");

	if (vmem_init(&vm) || diff_region_init(&rg_low, &vm, true, "low") ||
	    diff_region_init(&rg_high, &vm, false, "high") || cpu_init(&cpu, CPU_MODE_USER, &vm)) {
		printf("t_diff: setup failed\n0 passed, 1 failed\n");
		return 1;
	}
	diff_signals_install();
	forms_init();
	pairs_init();

	/* Pass 0 interprets every case; pass 1 (when the host has the block
	 * translator) makes every block hot at once, so the same cases run as
	 * translated host code, with the soft TLB kept warm so that memory
	 * operands take the translations' inline fast paths. Both are compared
	 * with the host CPU. */
	unsigned nfail = 0, npass = 0;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (!cpu.jit)
				break;
			cpu.jit_hot = 0;
			diff_warm_tlb = 1;
		} else {
			cpu.jit_hot = ~0u;
		}
		const char *pname = pass ? "translated" : "interpreted";
		struct rng r = {seed};
		for (unsigned k = 0; k < nforms; k++) {
			struct form *f = &forms[k];
			f->runs = f->fails = f->faults = 0;
			f->first[0] = 0;
			/* Each form gets its own stream so that one can be rerun alone. */
			struct rng fr = {rng_next(&r) ^ k};
			if (only && !strstr(f->name, only))
				continue;
			unsigned long n = f->weight ? base * f->weight : base / 8 + 1;
			for (unsigned long i = 0; i < n; i++)
				run_case(f, &fr, i);
		}
		for (unsigned k = 0; k < nforms; k++) {
			struct form *f = &forms[k];
			if (!f->runs)
				continue;
			if (f->fails) {
				printf("%s: form %-18s %5lu of %6lu cases differ; first: %s\n", pname, f->name,
				       f->fails, f->runs, f->first);
				nfail++;
			} else {
				npass++;
			}
		}
		printf("t_diff: %s: %lu cases (%lu faulting natively), %lu differ\n", pname, total_cases, total_faults,
		       total_fails);
		total_cases = total_faults = total_fails = 0;
	}
	test_cur_name = "t_diff";
	test_cur_failed = 0;
	test_passed = (int)npass;
	test_failed = (int)nfail;
	cpu_destroy(&cpu);
	return test_report();
}
