/* The x87 FPU: decoding of opcodes D8-DF and 9B, the register stack and tag
 * word, status/control words, FSTENV/FSAVE images and FXSAVE/FXRSTOR.
 * Arithmetic is in f80.c. */
#include <errno.h>

#include "cpu_internal.h"
#include "f80.h"
#include "x87.h"

#define FSW_SF 0x0040u
#define FSW_ES 0x0080u
#define FSW_C0 0x0100u
#define FSW_C1 0x0200u
#define FSW_C2 0x0400u
#define FSW_TOP 0x3800u
#define FSW_C3 0x4000u
#define FSW_B 0x8000u
#define FSW_CC (FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)

#define FCW_VALID 0x1f3fu /* masks, PC, RC, X; bit 6 always reads 1 */

#define TAG_VALID 0
#define TAG_ZERO 1
#define TAG_SPECIAL 2
#define TAG_EMPTY 3

#define CR0_EM 0x4u
#define CR0_TS 0x8u

static const struct cpu_f80 f80_one = {1ull << 63, 0x3fff};
static const uint32_t f32_indefinite = 0xffc00000u;
static const uint64_t f64_indefinite = 0xfff8000000000000ull;

/* ---- Register stack ---- */

static inline unsigned fpu_top(const struct cpu_x87 *x)
{
	return (x->fsw >> 11) & 7;
}

static inline void fpu_set_top(struct cpu_x87 *x, unsigned t)
{
	x->fsw = (uint16_t)((x->fsw & ~FSW_TOP) | ((t & 7) << 11));
}

static inline unsigned fpu_phys(const struct cpu_x87 *x, unsigned i)
{
	return (fpu_top(x) + i) & 7;
}

static inline unsigned tag_get(const struct cpu_x87 *x, unsigned p)
{
	return (x->ftw >> (2 * p)) & 3;
}

static inline void tag_put(struct cpu_x87 *x, unsigned p, unsigned t)
{
	x->ftw = (uint16_t)((x->ftw & ~(3u << (2 * p))) | (t << (2 * p)));
}

static unsigned tag_of(struct cpu_f80 v)
{
	switch (f80_classify(v)) {
	case F80_NORMAL: return TAG_VALID;
	case F80_ZERO: return TAG_ZERO;
	default: return TAG_SPECIAL;
	}
}

static inline bool st_empty(const struct cpu_x87 *x, unsigned i)
{
	return tag_get(x, fpu_phys(x, i)) == TAG_EMPTY;
}

static inline struct cpu_f80 st_get(const struct cpu_x87 *x, unsigned i)
{
	return x->st[fpu_phys(x, i)];
}

static inline void st_put(struct cpu_x87 *x, unsigned i, struct cpu_f80 v)
{
	unsigned p = fpu_phys(x, i);
	x->st[p] = v;
	tag_put(x, p, tag_of(v));
}

static inline void fpu_pop(struct cpu_x87 *x)
{
	tag_put(x, fpu_phys(x, 0), TAG_EMPTY);
	fpu_set_top(x, fpu_top(x) + 1);
}

static inline void fpu_push(struct cpu_x87 *x, struct cpu_f80 v)
{
	fpu_set_top(x, fpu_top(x) - 1);
	st_put(x, 0, v);
}

/* A push would overwrite a register in use */
static inline bool push_full(const struct cpu_x87 *x)
{
	return tag_get(x, (fpu_top(x) - 1) & 7) != TAG_EMPTY;
}

/* Full tag word as FSTENV/FSAVE report it: recomputed from the contents */
static uint16_t ftw_full(const struct cpu_x87 *x)
{
	uint16_t t = 0;
	for (unsigned p = 0; p < 8; p++)
		t |= (uint16_t)((tag_get(x, p) == TAG_EMPTY ? TAG_EMPTY : tag_of(x->st[p])) << (2 * p));
	return t;
}

void x87_reset(struct cpu_x87 *x)
{
	x->fcw = 0x037f;
	x->fsw = 0;
	x->ftw = 0xffff;
	x->fop = 0;
	x->fip = 0;
	x->fdp = 0;
}

/* ---- Status ---- */

static struct f80_env fpu_env(const struct cpu_x87 *x)
{
	/* PC 01 is reserved; CPUs round to 64 bits with it */
	static const unsigned prec[4] = {24, 64, 53, 64};
	struct f80_env e = {(x->fcw >> 10) & 3, prec[(x->fcw >> 8) & 3], x->fcw & 0x3f, 0, false, false};
	return e;
}

/* Unmasked invalid, denormal or zero-divide: the destination is left alone */
static inline bool fpu_blocked(const struct cpu_x87 *x, unsigned exc)
{
	return exc & ~x->fcw & (F80_IE | F80_DE | F80_ZE);
}

/* Pending unmasked exceptions raise ES and B: the next waiting instruction
 * takes #MF */
static void fsw_update_es(struct cpu_x87 *x)
{
	if (x->fsw & ~x->fcw & 0x3f)
		x->fsw |= FSW_ES | FSW_B;
	else
		x->fsw &= (uint16_t) ~(FSW_ES | FSW_B);
}

/* Accumulate exception flags and set C1 */
static void fsw_flags(struct cpu_x87 *x, unsigned exc, bool c1)
{
	x->fsw = (uint16_t)((x->fsw & ~FSW_C1) | (exc & 0x7f) | (c1 ? FSW_C1 : 0));
	fsw_update_es(x);
}

static void fsw_cc(struct cpu_x87 *x, unsigned cc)
{
	x->fsw = (uint16_t)((x->fsw & ~FSW_CC) | cc);
}

/* Record FIP/FOP (and FDP for memory operands) of a non-control insn */
static void fpu_note(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	x->fip = c->s.rip;
	x->fop = (uint16_t)(((i->op & 7) << 8) | i->modrm);
	if (!i->mod3)
		x->fdp = insn_ea(c, i);
}

/* Checks at the start of every x87 instruction; wait: also take a pending
 * unmasked exception (#MF) first, as all but the FN* control forms do. */
static inline void fpu_enter(struct cpu *c, bool wait)
{
	if (c->mode == CPU_MODE_SYSTEM && (c->s.cr0 & (CR0_EM | CR0_TS)))
		cpu_raise(c, EXC_NM, 0);
	if (wait && (c->s.x87.fsw & FSW_ES))
		cpu_raise(c, EXC_MF, 0);
}

/* Stack underflow/overflow: IE + SF, C1 tells which */
static inline void stack_fault(struct f80_env *e, bool overflow)
{
	e->exc |= F80_IE | FSW_SF;
	e->up = overflow;
}

/* ---- Arithmetic ---- */

/* reg: ModRM.reg of D8/DC/DE; a is ST(0), b the other operand */
static struct cpu_f80 arith(struct f80_env *e, unsigned reg, struct cpu_f80 a, struct cpu_f80 b)
{
	switch (reg) {
	case 0: return f80_add(e, a, b);
	case 1: return f80_mul(e, a, b);
	case 4: return f80_sub(e, a, b);
	case 5: return f80_sub(e, b, a);
	case 6: return f80_div(e, a, b);
	default: return f80_div(e, b, a);
	}
}

/* The memory operand of D8 (m32fp), DA (m32int), DC (m64fp), DE (m16int),
 * converted without exceptions: a denormal sets e->den_in and SNaNs stay
 * signaling, so the arithmetic reports them in the hardware's order. */
static struct cpu_f80 load_arith_operand(struct cpu *c, const struct insn *i, struct f80_env *e)
{
	uint64_t a = insn_ea(c, i);
	switch (i->op) {
	case 0xd8: {
		uint32_t v = mem_read32(c, a);
		e->den_in = !(v & 0x7f800000u) && (v & 0x7fffffu);
		return f80_from_f32(NULL, v);
	}
	case 0xda: return f80_from_i64((int32_t)mem_read32(c, a));
	case 0xdc: {
		uint64_t v = mem_read64(c, a);
		e->den_in = !(v & 0x7ff0000000000000ull) && (v & 0xfffffffffffffull);
		return f80_from_f64(NULL, v);
	}
	default: return f80_from_i64((int16_t)mem_read16(c, a));
	}
}

/* Write an arithmetic result to ST(dst), pop if asked, update FSW */
static void fpu_result(struct cpu *c, const struct insn *i, unsigned dst, struct cpu_f80 r, struct f80_env *e, bool pop)
{
	struct cpu_x87 *x = &c->s.x87;
	if (!fpu_blocked(x, e->exc)) {
		st_put(x, dst, r);
		if (pop)
			fpu_pop(x);
	}
	fsw_flags(x, e->exc, e->up);
	fpu_note(c, i);
	insn_next(c, i);
}

static void op_farith_mem(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	struct cpu_f80 r;

	fpu_enter(c, true);
	struct cpu_f80 b = load_arith_operand(c, i, &e);
	if (st_empty(x, 0)) {
		stack_fault(&e, false);
		r = F80_INDEFINITE;
	} else {
		r = arith(&e, i->reg & 7, st_get(x, 0), b);
	}
	fpu_result(c, i, 0, r, &e, false);
}

/* aux: 0 ST0 = ST0 op ST(i); 1 ST(i) = ST(i) op ST0; 2 the same and pop */
static void op_farith_reg(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	unsigned s = i->rm & 7;
	struct cpu_f80 r;

	fpu_enter(c, true);
	if (st_empty(x, 0) || st_empty(x, s)) {
		stack_fault(&e, false);
		r = F80_INDEFINITE;
	} else {
		r = arith(&e, i->reg & 7, st_get(x, 0), st_get(x, s));
	}
	fpu_result(c, i, i->aux ? s : 0, r, &e, i->aux == 2);
}

/* ---- Compares ---- */

static const uint16_t cmp_cc[4] = {FSW_C0, FSW_C3, 0, FSW_C0 | FSW_C2 | FSW_C3};

/* Set C3/C2/C0 from a compare (-1, 0, 1, 2), then pop npop times */
static void fcom_finish(struct cpu *c, const struct insn *i, int rel, struct f80_env *e, unsigned npop)
{
	struct cpu_x87 *x = &c->s.x87;
	fsw_cc(x, cmp_cc[rel + 1]);
	if (!(e->exc & ~x->fcw & (F80_IE | F80_DE))) {
		while (npop--)
			fpu_pop(x);
	}
	fsw_flags(x, e->exc, false);
	fpu_note(c, i);
	insn_next(c, i);
}

/* D8/DA/DC/DE /2 /3: FCOM, FCOMP, FICOM, FICOMP with a memory operand */
static void op_fcom_mem(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	int rel;

	fpu_enter(c, true);
	struct cpu_f80 b = load_arith_operand(c, i, &e);
	if (st_empty(x, 0)) {
		stack_fault(&e, false);
		rel = 2;
	} else {
		rel = f80_compare(&e, st_get(x, 0), b, false);
	}
	fcom_finish(c, i, rel, &e, (i->reg & 7) == 3);
}

/* aux: bit 0-1 pops, bit 2 unordered compare (FUCOM) */
static void op_fcom_reg(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	unsigned s = i->rm & 7;
	int rel;

	fpu_enter(c, true);
	if (st_empty(x, 0) || st_empty(x, s)) {
		stack_fault(&e, false);
		rel = 2;
	} else {
		rel = f80_compare(&e, st_get(x, 0), st_get(x, s), i->aux & 4);
	}
	fcom_finish(c, i, rel, &e, i->aux & 3);
}

static void op_ftst(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	int rel;

	fpu_enter(c, true);
	if (st_empty(x, 0)) {
		stack_fault(&e, false);
		rel = 2;
	} else {
		rel = f80_compare(&e, st_get(x, 0), (struct cpu_f80){0, 0}, false);
	}
	fcom_finish(c, i, rel, &e, 0);
}

/* FCOMI/FCOMIP/FUCOMI/FUCOMIP: aux bit 0 pop, bit 2 unordered compare */
static void op_fcomi(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	unsigned s = i->rm & 7;
	int rel;
	static const uint32_t fl[4] = {FL_CF, FL_ZF, 0, FL_ZF | FL_PF | FL_CF};

	fpu_enter(c, true);
	if (st_empty(x, 0) || st_empty(x, s)) {
		stack_fault(&e, false);
		rel = 2;
	} else {
		rel = f80_compare(&e, st_get(x, 0), st_get(x, s), i->aux & 4);
	}
	flags_set(c, FL_ZF | FL_PF | FL_CF | FL_OF | FL_SF | FL_AF, fl[rel + 1]);
	if ((i->aux & 1) && !(e.exc & ~x->fcw & (F80_IE | F80_DE)))
		fpu_pop(x);
	/* C1 is only written on a stack fault */
	fsw_flags(x, e.exc, (e.exc & FSW_SF) ? e.up : (x->fsw & FSW_C1));
	fpu_note(c, i);
	insn_next(c, i);
}

static void op_fxam(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct cpu_f80 v = st_get(x, 0);
	unsigned cc;

	fpu_enter(c, true);
	if (st_empty(x, 0)) {
		cc = FSW_C3 | FSW_C0;
	} else {
		switch (f80_classify(v)) {
		case F80_QNAN:
		case F80_SNAN: cc = FSW_C0; break;
		case F80_NORMAL: cc = FSW_C2; break;
		case F80_INF: cc = FSW_C2 | FSW_C0; break;
		case F80_ZERO: cc = FSW_C3; break;
		case F80_DENORMAL: cc = FSW_C3 | FSW_C2; break;
		default: cc = 0;
		}
	}
	if (v.sexp & 0x8000)
		cc |= FSW_C1;
	fsw_cc(x, cc);
	fpu_note(c, i);
	insn_next(c, i);
}

/* ---- Loads ---- */

/* Push v unless the stack is full or e says an unmasked exception stops it */
static void fpu_load(struct cpu *c, const struct insn *i, struct cpu_f80 v, struct f80_env *e)
{
	struct cpu_x87 *x = &c->s.x87;
	if (push_full(x) && !(e->exc & FSW_SF)) {
		e->exc = 0;
		stack_fault(e, true);
		v = F80_INDEFINITE;
	}
	/* an unmasked DE on a float/double load still loads */
	if (!(e->exc & ~x->fcw & F80_IE))
		fpu_push(x, v);
	fsw_flags(x, e->exc, e->up);
	fpu_note(c, i);
	insn_next(c, i);
}

/* FLD m32/m64/m80, FILD m16/m32/m64, FBLD: aux says which */
enum { LD_F32, LD_F64, LD_F80, LD_I16, LD_I32, LD_I64, LD_BCD };

static void op_fld_mem(struct cpu *c, const struct insn *i)
{
	struct f80_env e = fpu_env(&c->s.x87);
	uint64_t a = insn_ea(c, i);
	struct cpu_f80 v;
	uint8_t b[10];

	fpu_enter(c, true);
	switch (i->aux) {
	case LD_F32: v = f80_from_f32(&e, mem_read32(c, a)); break;
	case LD_F64: v = f80_from_f64(&e, mem_read64(c, a)); break;
	case LD_F80:
		mem_read_bytes(c, a, b, 10);
		memcpy(&v.mant, b, 8);
		memcpy(&v.sexp, b + 8, 2);
		break;
	case LD_I16: v = f80_from_i64((int16_t)mem_read16(c, a)); break;
	case LD_I32: v = f80_from_i64((int32_t)mem_read32(c, a)); break;
	case LD_I64: v = f80_from_i64((int64_t)mem_read64(c, a)); break;
	default:
		mem_read_bytes(c, a, b, 10);
		v = f80_from_bcd(b);
		break;
	}
	fpu_load(c, i, v, &e);
}

static void op_fld_reg(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	struct cpu_f80 v = st_get(x, i->rm & 7);

	fpu_enter(c, true);
	if (st_empty(x, i->rm & 7)) {
		stack_fault(&e, false);
		v = F80_INDEFINITE;
	}
	fpu_load(c, i, v, &e);
}

/* FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ (D9 E8-EE): 66-bit
 * constants rounded by FCW.RC */
static void op_fldconst(struct cpu *c, const struct insn *i)
{
	static const struct {
		uint64_t hi, lo;
		int exp;
	} k[7] = {
		{0x8000000000000000ull, 0, 0},
		{0xd49a784bcd1b8afeull, 0x492bf6ff4dafdb4cull, 1},  /* log2(10) */
		{0xb8aa3b295c17f0bbull, 0xbe87fed0691d3e88ull, 0},  /* log2(e) */
		{0xc90fdaa22168c234ull, 0xc4c6628b80dc1cd1ull, 1},  /* pi */
		{0x9a209a84fbcff798ull, 0x8f8959ac0b7c9178ull, -2}, /* log10(2) */
		{0xb17217f7d1cf79abull, 0xc9e3b39803f2f6afull, -1}, /* ln(2) */
		{0, 0, 0},
	};
	struct f80_env e = fpu_env(&c->s.x87);
	unsigned n = i->rm & 7;
	struct cpu_f80 v = {0, 0};

	fpu_enter(c, true);
	if (k[n].hi)
		v = f80_const(&e, k[n].hi, k[n].lo, k[n].exp);
	e.exc = 0;
	e.up = false;
	fpu_load(c, i, v, &e);
}

/* ---- Stores ---- */

/* FST/FSTP m32/m64/m80, FIST/FISTP/FISTTP m16/m32/m64, FBSTP: aux = kind
 * (LD_* numbering, LD_BCD for FBSTP) | 8 pop | 16 truncate */
static void op_fst_mem(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	uint64_t a = insn_ea(c, i);
	unsigned kind = i->aux & 7;
	bool empty = st_empty(x, 0), trunc = i->aux & 16;
	struct cpu_f80 v = empty ? F80_INDEFINITE : st_get(x, 0);
	uint8_t b[10];

	fpu_enter(c, true);
	if (empty)
		stack_fault(&e, false);
	switch (kind) {
	case LD_F32: {
		uint32_t r = empty ? f32_indefinite : f80_to_f32(&e, v);
		if (!(e.exc & ~x->fcw & 0x1f))
			mem_write32(c, a, r);
		break;
	}
	case LD_F64: {
		uint64_t r = empty ? f64_indefinite : f80_to_f64(&e, v);
		if (!(e.exc & ~x->fcw & 0x1f))
			mem_write64(c, a, r);
		break;
	}
	case LD_F80:
		memcpy(b, &v.mant, 8);
		memcpy(b + 8, &v.sexp, 2);
		if (!fpu_blocked(x, e.exc))
			mem_write_bytes(c, a, b, 10);
		break;
	case LD_I16:
	case LD_I32:
	case LD_I64: {
		static const unsigned bits[3] = {16, 32, 64};
		unsigned n = bits[kind - LD_I16];
		int64_t r = empty ? (int64_t)(~0ull << (n - 1)) : f80_to_int(&e, v, n, trunc);
		if (!fpu_blocked(x, e.exc))
			mem_write(c, a, n / 8, (uint64_t)r);
		break;
	}
	default:
		if (empty) {
			memset(b, 0, 10);
			b[7] = 0xc0;
			b[8] = b[9] = 0xff;
		} else {
			f80_to_bcd(&e, v, b);
		}
		if (!fpu_blocked(x, e.exc))
			mem_write_bytes(c, a, b, 10);
		break;
	}
	bool stored = kind == LD_F32 || kind == LD_F64 ? !(e.exc & ~x->fcw & 0x1f) : !fpu_blocked(x, e.exc);
	if ((i->aux & 8) && stored)
		fpu_pop(x);
	fsw_flags(x, e.exc, e.up);
	fpu_note(c, i);
	insn_next(c, i);
}

/* FST/FSTP ST(i) (aux 1: pop; 2: pop, FSTP1) */
static void op_fst_reg(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	struct cpu_f80 v = st_get(x, 0);

	fpu_enter(c, true);
	if (st_empty(x, 0) && i->aux == 2) {
		/* FSTP1 (D9 D8+i) on an empty ST0 only pops, without a
		 * stack fault (as AMD CPUs do) */
		fpu_pop(x);
		fsw_flags(x, 0, false);
		fpu_note(c, i);
		insn_next(c, i);
		return;
	}
	if (st_empty(x, 0)) {
		stack_fault(&e, false);
		v = F80_INDEFINITE;
	}
	if (!fpu_blocked(x, e.exc)) {
		st_put(x, i->rm & 7, v);
		if (i->aux)
			fpu_pop(x);
	}
	fsw_flags(x, e.exc, e.up);
	fpu_note(c, i);
	insn_next(c, i);
}

/* ---- One-operand and stack operations ---- */

enum { U_CHS, U_ABS, U_SQRT, U_RNDINT, U_F2XM1 };

static void op_funary(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	struct cpu_f80 v = st_get(x, 0);

	fpu_enter(c, true);
	if (st_empty(x, 0)) {
		stack_fault(&e, false);
		v = F80_INDEFINITE;
	} else {
		switch (i->aux) {
		case U_CHS: v.sexp ^= 0x8000; break;
		case U_ABS: v.sexp &= 0x7fff; break;
		case U_SQRT: v = f80_sqrt(&e, v); break;
		case U_RNDINT: v = f80_round_int(&e, v); break;
		default: v = f80_f2xm1(&e, v); break;
		}
	}
	fpu_result(c, i, 0, v, &e, false);
}

/* FSCALE, FPREM, FPREM1: ST0 = f(ST0, ST1) */
enum { B_SCALE, B_PREM, B_PREM1 };

static void op_fbinary(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	struct cpu_f80 r;
	uint64_t q = ~0ull;
	bool partial = false;

	fpu_enter(c, true);
	if (st_empty(x, 0) || st_empty(x, 1)) {
		stack_fault(&e, false);
		r = F80_INDEFINITE;
	} else if (i->aux == B_SCALE) {
		r = f80_scale(&e, st_get(x, 0), st_get(x, 1));
	} else {
		r = f80_rem(&e, st_get(x, 0), st_get(x, 1), i->aux == B_PREM1, &q, &partial);
	}
	if (i->aux != B_SCALE && q == ~0ull) {
		/* stack fault or NaN: only C2 is cleared */
		x->fsw &= (uint16_t)~FSW_C2;
	} else if (i->aux != B_SCALE && !fpu_blocked(x, e.exc)) {
		unsigned cc = partial ? FSW_C2 : (q & 4 ? FSW_C0 : 0) | (q & 2 ? FSW_C3 : 0);
		fsw_cc(x, cc);
		e.up = !partial && (q & 1);
	}
	fpu_result(c, i, 0, r, &e, false);
}

/* FYL2X, FYL2XP1, FPATAN: ST1 = f(ST0, ST1), pop */
enum { P_YL2X, P_YL2XP1, P_PATAN };

static void op_fpop2(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	struct cpu_f80 r;

	fpu_enter(c, true);
	if (st_empty(x, 0) || st_empty(x, 1)) {
		stack_fault(&e, false);
		r = F80_INDEFINITE;
	} else if (i->aux == P_YL2X) {
		r = f80_fyl2x(&e, st_get(x, 0), st_get(x, 1));
	} else if (i->aux == P_YL2XP1) {
		r = f80_fyl2xp1(&e, st_get(x, 0), st_get(x, 1));
	} else {
		r = f80_fpatan(&e, st_get(x, 0), st_get(x, 1));
	}
	fpu_result(c, i, 1, r, &e, true);
}

/* FSIN, FCOS (aux 0/1) */
static void op_fsincos1(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	struct cpu_f80 s, co, r;

	fpu_enter(c, true);
	fsw_cc(x, x->fsw & ~FSW_C2 & FSW_CC);
	if (st_empty(x, 0)) {
		stack_fault(&e, false);
		r = F80_INDEFINITE;
	} else if (!f80_sincos(&e, st_get(x, 0), &s, &co, i->aux ? 2 : 1)) {
		fsw_cc(x, (x->fsw & FSW_CC) | FSW_C2);
		r = st_get(x, 0);
	} else {
		r = i->aux ? co : s;
	}
	fpu_result(c, i, 0, r, &e, false);
}

/* FSINCOS, FPTAN (aux 0/1): ST0 = sin / tan, then push cos / 1.0 */
static void op_fsincos2(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	struct cpu_f80 r0, r1;
	bool ok = true;

	fpu_enter(c, true);
	uint16_t cc = x->fsw & FSW_CC & ~FSW_C2;
	if (st_empty(x, 0) || push_full(x)) {
		stack_fault(&e, !st_empty(x, 0));
		r0 = r1 = F80_INDEFINITE;
	} else if (i->aux) {
		ok = f80_tan(&e, st_get(x, 0), &r0);
		/* a NaN result (invalid or NaN operand) is pushed too */
		r1 = f80_classify(r0) == F80_QNAN ? r0 : f80_one;
	} else {
		ok = f80_sincos(&e, st_get(x, 0), &r0, &r1, 3);
	}
	if (!ok) {
		fsw_cc(x, cc | FSW_C2);
	} else {
		fsw_cc(x, cc);
		if (!fpu_blocked(x, e.exc)) {
			st_put(x, 0, r0);
			fpu_push(x, r1);
		}
	}
	fsw_flags(x, e.exc, e.up);
	fpu_note(c, i);
	insn_next(c, i);
}

static void op_fxtract(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	struct cpu_f80 ex, sig;

	fpu_enter(c, true);
	if (st_empty(x, 0) || push_full(x)) {
		stack_fault(&e, !st_empty(x, 0));
		ex = sig = F80_INDEFINITE;
	} else {
		f80_xtract(&e, st_get(x, 0), &ex, &sig);
	}
	if (!fpu_blocked(x, e.exc)) {
		st_put(x, 0, ex);
		fpu_push(x, sig);
	}
	fsw_flags(x, e.exc, e.up);
	fpu_note(c, i);
	insn_next(c, i);
}

static void op_fxch(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	unsigned s = i->rm & 7;
	struct cpu_f80 a = st_get(x, 0), b = st_get(x, s);

	fpu_enter(c, true);
	if (st_empty(x, 0) || st_empty(x, s)) {
		stack_fault(&e, false);
		if (fpu_blocked(x, e.exc))
			goto out;
		if (st_empty(x, 0))
			a = F80_INDEFINITE;
		if (st_empty(x, s))
			b = F80_INDEFINITE;
	}
	st_put(x, 0, b);
	st_put(x, s, a);
out:
	fsw_flags(x, e.exc, false);
	fpu_note(c, i);
	insn_next(c, i);
}

/* FCMOVcc: aux = condition code as in Jcc */
static void op_fcmov(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	struct f80_env e = fpu_env(x);
	unsigned s = i->rm & 7;

	fpu_enter(c, true);
	if (st_empty(x, 0) || st_empty(x, s)) {
		stack_fault(&e, false);
		if (!fpu_blocked(x, e.exc))
			st_put(x, 0, F80_INDEFINITE);
		fsw_flags(x, e.exc, false);
	} else if (cond_eval(c, i->aux)) {
		st_put(x, 0, st_get(x, s));
	}
	fpu_note(c, i);
	insn_next(c, i);
}

/* FFREE ST(i), FFREEP (aux 1) */
static void op_ffree(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;

	fpu_enter(c, true);
	tag_put(x, fpu_phys(x, i->rm & 7), TAG_EMPTY);
	x->fsw &= (uint16_t)~FSW_C1;
	if (i->aux)
		fpu_pop(x);
	fpu_note(c, i);
	insn_next(c, i);
}

/* FINCSTP / FDECSTP (aux +1 / 7) */
static void op_fstp_move(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;

	fpu_enter(c, true);
	fpu_set_top(x, fpu_top(x) + i->aux);
	x->fsw &= (uint16_t)~FSW_C1;
	fpu_note(c, i);
	insn_next(c, i);
}

static void op_fnop(struct cpu *c, const struct insn *i)
{
	fpu_enter(c, true);
	fpu_note(c, i);
	insn_next(c, i);
}

static void op_fwait(struct cpu *c, const struct insn *i)
{
	if (c->mode == CPU_MODE_SYSTEM && (c->s.cr0 & (CR0_TS | 0x2)) == (CR0_TS | 0x2))
		cpu_raise(c, EXC_NM, 0);
	if (c->s.x87.fsw & FSW_ES)
		cpu_raise(c, EXC_MF, 0);
	insn_next(c, i);
}

/* ---- Control ---- */

static void op_fldcw(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;

	fpu_enter(c, true);
	uint16_t v = mem_read16(c, insn_ea(c, i));
	x->fcw = (uint16_t)((v & FCW_VALID) | 0x40);
	fsw_update_es(x);
	insn_next(c, i);
}

static void op_fnstcw(struct cpu *c, const struct insn *i)
{
	fpu_enter(c, false);
	mem_write16(c, insn_ea(c, i), c->s.x87.fcw);
	insn_next(c, i);
}

static void op_fnstsw(struct cpu *c, const struct insn *i)
{
	fpu_enter(c, false);
	if (i->mod3)
		reg_write(c, R_RAX, 2, c->s.x87.fsw);
	else
		mem_write16(c, insn_ea(c, i), c->s.x87.fsw);
	insn_next(c, i);
}

static void op_fnclex(struct cpu *c, const struct insn *i)
{
	fpu_enter(c, false);
	c->s.x87.fsw &= 0x7f00;
	insn_next(c, i);
}

static void op_fninit(struct cpu *c, const struct insn *i)
{
	fpu_enter(c, false);
	x87_reset(&c->s.x87);
	insn_next(c, i);
}

/* FNSTENV/FLDENV image: 28 bytes (14 with a 16-bit operand size) in the
 * protected-mode layout, SDM vol. 1 figures 8-9 and 8-10 */
static unsigned env_build(struct cpu *c, bool o16, uint8_t *b)
{
	struct cpu_x87 *x = &c->s.x87;
	uint16_t w[14];

	if (o16) {
		w[0] = x->fcw;
		w[1] = x->fsw;
		w[2] = ftw_full(x);
		w[3] = (uint16_t)x->fip;
		w[4] = c->s.seg[SEG_CS].sel;
		w[5] = (uint16_t)x->fdp;
		w[6] = c->s.seg[SEG_DS].sel;
		memcpy(b, w, 14);
		return 14;
	}
	w[0] = x->fcw;
	w[2] = x->fsw;
	w[4] = ftw_full(x);
	w[1] = w[3] = w[5] = 0xffff;
	w[6] = (uint16_t)x->fip;
	w[7] = (uint16_t)(x->fip >> 16);
	w[8] = c->s.seg[SEG_CS].sel;
	w[9] = x->fop & 0x7ff;
	w[10] = (uint16_t)x->fdp;
	w[11] = (uint16_t)(x->fdp >> 16);
	w[12] = c->s.seg[SEG_DS].sel;
	w[13] = 0xffff;
	memcpy(b, w, 28);
	return 28;
}

static void env_load(struct cpu *c, bool o16, const uint8_t *b)
{
	struct cpu_x87 *x = &c->s.x87;
	uint16_t w[14];

	memcpy(w, b, o16 ? 14 : 28);
	x->fcw = (uint16_t)((w[0] & FCW_VALID) | 0x40);
	if (o16) {
		x->fsw = w[1];
		x->ftw = w[2];
		x->fip = w[3];
		x->fdp = w[5];
		x->fop = 0;
	} else {
		x->fsw = w[2];
		x->ftw = w[4];
		x->fip = w[6] | (uint32_t)w[7] << 16;
		x->fop = w[9] & 0x7ff;
		x->fdp = w[10] | (uint32_t)w[11] << 16;
	}
}

/* Loaded tags only say empty or not: recompute the rest from the values */
static void ftw_fixup(struct cpu_x87 *x)
{
	for (unsigned p = 0; p < 8; p++)
		if (tag_get(x, p) != TAG_EMPTY)
			tag_put(x, p, tag_of(x->st[p]));
}

static void op_fnstenv(struct cpu *c, const struct insn *i)
{
	uint8_t b[28];

	fpu_enter(c, false);
	unsigned n = env_build(c, i->opsz == 2, b);
	mem_write_bytes(c, insn_ea(c, i), b, n);
	c->s.x87.fcw |= 0x3f; /* FNSTENV masks all exceptions afterwards */
	insn_next(c, i);
}

static void op_fldenv(struct cpu *c, const struct insn *i)
{
	uint8_t b[28];

	fpu_enter(c, false);
	mem_read_bytes(c, insn_ea(c, i), b, i->opsz == 2 ? 14 : 28);
	env_load(c, i->opsz == 2, b);
	ftw_fixup(&c->s.x87);
	fsw_update_es(&c->s.x87);
	insn_next(c, i);
}

static void op_fnsave(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	uint8_t b[108];

	fpu_enter(c, false);
	unsigned n = env_build(c, i->opsz == 2, b);
	for (unsigned k = 0; k < 8; k++) {
		struct cpu_f80 v = st_get(x, k);
		memcpy(b + n + 10 * k, &v.mant, 8);
		memcpy(b + n + 10 * k + 8, &v.sexp, 2);
	}
	mem_write_bytes(c, insn_ea(c, i), b, n + 80);
	x87_reset(x);
	insn_next(c, i);
}

static void op_frstor(struct cpu *c, const struct insn *i)
{
	struct cpu_x87 *x = &c->s.x87;
	uint8_t b[108];
	bool o16 = i->opsz == 2;
	unsigned n = o16 ? 14 : 28;

	fpu_enter(c, false);
	mem_read_bytes(c, insn_ea(c, i), b, n + 80);
	env_load(c, o16, b);
	for (unsigned k = 0; k < 8; k++) {
		unsigned p = fpu_phys(x, k);
		memcpy(&x->st[p].mant, b + n + 10 * k, 8);
		memcpy(&x->st[p].sexp, b + n + 10 * k + 8, 2);
	}
	ftw_fixup(x);
	fsw_update_es(x);
	insn_next(c, i);
}

/* FXSAVE image (SDM vol. 1 10.5.1), bytes 0-415; 416-511 are left alone */
void x87_fxsave_image(const struct cpu *c, uint8_t img[416], bool rex_w)
{
	const struct cpu_x87 *x = &c->s.x87;
	uint8_t ftw = 0;

	memset(img, 0, 416);
	for (unsigned p = 0; p < 8; p++)
		if (tag_get(x, p) != TAG_EMPTY)
			ftw |= (uint8_t)(1u << p);
	memcpy(img + 0, &x->fcw, 2);
	memcpy(img + 2, &x->fsw, 2);
	img[4] = ftw;
	memcpy(img + 6, &x->fop, 2);
	if (rex_w) {
		memcpy(img + 8, &x->fip, 8);
		memcpy(img + 16, &x->fdp, 8);
	} else {
		uint32_t ip = (uint32_t)x->fip, dp = (uint32_t)x->fdp;
		memcpy(img + 8, &ip, 4);
		memcpy(img + 12, &c->s.seg[SEG_CS].sel, 2);
		memcpy(img + 16, &dp, 4);
		memcpy(img + 20, &c->s.seg[SEG_DS].sel, 2);
	}
	uint32_t mm = MXCSR_VALID;
	memcpy(img + 24, &c->s.mxcsr, 4);
	memcpy(img + 28, &mm, 4);
	for (unsigned k = 0; k < 8; k++) {
		struct cpu_f80 v = st_get(x, k);
		memcpy(img + 32 + 16 * k, &v.mant, 8);
		memcpy(img + 40 + 16 * k, &v.sexp, 2);
	}
	memcpy(img + 160, c->s.xmm, 256);
}

int x87_fxrstor_image(struct cpu *c, const uint8_t img[416], bool rex_w)
{
	struct cpu_x87 *x = &c->s.x87;
	uint32_t mxcsr;

	memcpy(&mxcsr, img + 24, 4);
	if (mxcsr & ~MXCSR_VALID)
		return -EINVAL;
	memcpy(&x->fcw, img + 0, 2);
	x->fcw = (uint16_t)((x->fcw & FCW_VALID) | 0x40);
	memcpy(&x->fsw, img + 2, 2);
	memcpy(&x->fop, img + 6, 2);
	x->fop &= 0x7ff;
	if (rex_w) {
		memcpy(&x->fip, img + 8, 8);
		memcpy(&x->fdp, img + 16, 8);
	} else {
		uint32_t ip, dp;
		memcpy(&ip, img + 8, 4);
		memcpy(&dp, img + 16, 4);
		x->fip = ip;
		x->fdp = dp;
	}
	c->s.mxcsr = mxcsr;
	for (unsigned k = 0; k < 8; k++) {
		unsigned p = fpu_phys(x, k);
		memcpy(&x->st[p].mant, img + 32 + 16 * k, 8);
		memcpy(&x->st[p].sexp, img + 40 + 16 * k, 2);
	}
	x->ftw = 0;
	for (unsigned p = 0; p < 8; p++)
		tag_put(x, p, (img[4] >> p) & 1 ? tag_of(x->st[p]) : TAG_EMPTY);
	memcpy(c->s.xmm, img + 160, 256);
	fsw_update_es(x);
	return 0;
}

/* FXSAVE/FXSAVE64: the whole 512-byte area must be writable first */
static void op_fxsave(struct cpu *c, const struct insn *i)
{
	uint64_t a = insn_ea(c, i);
	uint8_t b[416];

	if (c->mode == CPU_MODE_SYSTEM && (c->s.cr0 & (CR0_EM | CR0_TS)))
		cpu_raise(c, EXC_NM, 0);
	if (a & 15)
		cpu_raise(c, EXC_GP, 0);
	mem_probe_write(c, a, 512);
	x87_fxsave_image(c, b, i->rex & 8);
	mem_write_bytes(c, a, b, sizeof(b));
	insn_next(c, i);
}

static void op_fxrstor(struct cpu *c, const struct insn *i)
{
	uint64_t a = insn_ea(c, i);
	uint8_t b[512];

	if (c->mode == CPU_MODE_SYSTEM && (c->s.cr0 & (CR0_EM | CR0_TS)))
		cpu_raise(c, EXC_NM, 0);
	if (a & 15)
		cpu_raise(c, EXC_GP, 0);
	mem_read_bytes(c, a, b, sizeof(b));
	if (x87_fxrstor_image(c, b, i->rex & 8) < 0)
		cpu_raise(c, EXC_GP, 0);
	insn_next(c, i);
}

/* ---- Decoding ---- */

/* Memory forms, by opcode D8-DF and ModRM.reg */
static insn_fn x87_mem_fn(const struct insn *i, uint8_t *aux)
{
	unsigned reg = i->reg & 7;

	switch (i->op) {
	case 0xd8:
	case 0xda:
	case 0xdc:
	case 0xde: return reg == 2 || reg == 3 ? op_fcom_mem : op_farith_mem;
	case 0xd9:
		switch (reg) {
		case 0: *aux = LD_F32; return op_fld_mem;
		case 2: *aux = LD_F32; return op_fst_mem;
		case 3: *aux = LD_F32 | 8; return op_fst_mem;
		case 4: return op_fldenv;
		case 5: return op_fldcw;
		case 6: return op_fnstenv;
		case 7: return op_fnstcw;
		default: return NULL;
		}
	case 0xdb:
		switch (reg) {
		case 0: *aux = LD_I32; return op_fld_mem;
		case 1: *aux = LD_I32 | 8 | 16; return op_fst_mem;
		case 2: *aux = LD_I32; return op_fst_mem;
		case 3: *aux = LD_I32 | 8; return op_fst_mem;
		case 5: *aux = LD_F80; return op_fld_mem;
		case 7: *aux = LD_F80 | 8; return op_fst_mem;
		default: return NULL;
		}
	case 0xdd:
		switch (reg) {
		case 0: *aux = LD_F64; return op_fld_mem;
		case 1: *aux = LD_I64 | 8 | 16; return op_fst_mem;
		case 2: *aux = LD_F64; return op_fst_mem;
		case 3: *aux = LD_F64 | 8; return op_fst_mem;
		case 4: return op_frstor;
		case 6: return op_fnsave;
		case 7: return op_fnstsw;
		default: return NULL;
		}
	default: /* 0xdf */
		switch (reg) {
		case 0: *aux = LD_I16; return op_fld_mem;
		case 1: *aux = LD_I16 | 8 | 16; return op_fst_mem;
		case 2: *aux = LD_I16; return op_fst_mem;
		case 3: *aux = LD_I16 | 8; return op_fst_mem;
		case 4: *aux = LD_BCD; return op_fld_mem;
		case 5: *aux = LD_I64; return op_fld_mem;
		case 6: *aux = LD_BCD | 8; return op_fst_mem;
		default: *aux = LD_I64 | 8; return op_fst_mem;
		}
	}
}

/* D9 E0-FF */
static insn_fn x87_d9_misc(unsigned rm, unsigned reg, uint8_t *aux)
{
	static const uint8_t una[8] = {U_CHS, U_ABS, 0xff, 0xff, 0xfe, 0xfd, 0xff, 0xff};

	if (reg == 4) {
		if (una[rm] == 0xff)
			return NULL;
		if (una[rm] == 0xfe)
			return op_ftst;
		if (una[rm] == 0xfd)
			return op_fxam;
		*aux = una[rm];
		return op_funary;
	}
	if (reg == 5)
		return rm == 7 ? NULL : op_fldconst;
	if (reg == 6) {
		switch (rm) {
		case 0: *aux = U_F2XM1; return op_funary;
		case 1: *aux = P_YL2X; return op_fpop2;
		case 2: *aux = 1; return op_fsincos2;
		case 3: *aux = P_PATAN; return op_fpop2;
		case 4: return op_fxtract;
		case 5: *aux = B_PREM1; return op_fbinary;
		case 6: *aux = 7; return op_fstp_move;
		default: *aux = 1; return op_fstp_move;
		}
	}
	switch (rm) {
	case 0: *aux = B_PREM; return op_fbinary;
	case 1: *aux = P_YL2XP1; return op_fpop2;
	case 2: *aux = U_SQRT; return op_funary;
	case 3: *aux = 0; return op_fsincos2;
	case 4: *aux = U_RNDINT; return op_funary;
	case 5: *aux = B_SCALE; return op_fbinary;
	case 6: *aux = 0; return op_fsincos1;
	default: *aux = 1; return op_fsincos1;
	}
}

/* Register forms (mod == 3) */
static insn_fn x87_reg_fn(const struct insn *i, uint8_t *aux)
{
	unsigned reg = i->reg & 7, rm = i->rm & 7;
	static const uint8_t fcmov_cc[4] = {2, 4, 6, 10}; /* B E BE U */

	switch (i->op) {
	case 0xd8:
		if (reg == 2 || reg == 3) {
			*aux = reg == 3;
			return op_fcom_reg;
		}
		*aux = 0;
		return op_farith_reg;
	case 0xd9:
		switch (reg) {
		case 0: return op_fld_reg;
		case 1: return op_fxch;
		case 2: return rm == 0 ? op_fnop : NULL;
		case 3: *aux = 2; return op_fst_reg; /* FSTP1 alias */
		default: return x87_d9_misc(rm, reg, aux);
		}
	case 0xda:
		if (reg < 4) {
			*aux = fcmov_cc[reg];
			return op_fcmov;
		}
		if (reg == 5 && rm == 1) {
			*aux = 2 | 4; /* FUCOMPP */
			return op_fcom_reg;
		}
		return NULL;
	case 0xdb:
		if (reg < 4) {
			*aux = fcmov_cc[reg] + 1;
			return op_fcmov;
		}
		if (reg == 4) {
			switch (rm) {
			case 0:
			case 1:
			case 4: return op_fnop; /* FENI, FDISI, FSETPM: no-ops since the 387 */
			case 2: return op_fnclex;
			case 3: return op_fninit;
			default: return NULL;
			}
		}
		if (reg == 5 || reg == 6) {
			*aux = reg == 5 ? 4 : 0;
			return op_fcomi;
		}
		return NULL;
	case 0xdc:
		if (reg == 2 || reg == 3) {
			*aux = reg == 3; /* FCOM2, FCOMP3 aliases */
			return op_fcom_reg;
		}
		*aux = 1;
		return op_farith_reg;
	case 0xdd:
		switch (reg) {
		case 0: *aux = 0; return op_ffree;
		case 1: return op_fxch; /* FXCH4 */
		case 2: *aux = 0; return op_fst_reg;
		case 3: *aux = 1; return op_fst_reg;
		case 4: *aux = 4; return op_fcom_reg;
		case 5: *aux = 4 | 1; return op_fcom_reg;
		default: return NULL;
		}
	case 0xde:
		if (reg == 2) {
			*aux = 1; /* FCOMP5 */
			return op_fcom_reg;
		}
		if (reg == 3) {
			*aux = 2;
			return rm == 1 ? op_fcom_reg : NULL; /* FCOMPP */
		}
		*aux = 2;
		return op_farith_reg;
	default: /* 0xdf */
		switch (reg) {
		case 0: *aux = 1; return op_ffree; /* FFREEP */
		case 1: return op_fxch;		   /* FXCH7 */
		case 2:
		case 3: *aux = 1; return op_fst_reg; /* FSTP8, FSTP9 */
		case 4: return rm == 0 ? op_fnstsw : NULL;
		case 5: *aux = 4 | 1; return op_fcomi;
		case 6: *aux = 1; return op_fcomi;
		default: return NULL;
		}
	}
}

int x87_decode(struct insn *i)
{
	insn_fn fn = NULL;
	uint8_t aux = 0;

	if (i->map == MAP_0F) {
		if (i->op != 0xae || i->mod3 || (i->reg & 7) > 1)
			return -1;
		fn = (i->reg & 7) ? op_fxrstor : op_fxsave;
	} else if (i->map == MAP_1B && i->op == 0x9b) {
		fn = op_fwait;
	} else if (i->map == MAP_1B && i->op >= 0xd8 && i->op <= 0xdf) {
		fn = i->mod3 ? x87_reg_fn(i, &aux) : x87_mem_fn(i, &aux);
	} else {
		return -1;
	}
	if (!fn || i->lock)
		fn = op_ud;
	i->fn = fn;
	i->aux = aux;
	return 0;
}
