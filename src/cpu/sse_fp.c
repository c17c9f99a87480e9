/* SSE family, floating point side: arithmetic, compares, conversions,
 * rounding, MXCSR. Values are computed with the host's IEEE operations in
 * the guest's rounding mode; everything the IEEE standard leaves to the
 * implementation (NaN results, tininess, DAZ/FZ, exception flags) is
 * decided here so that the result is x86's on any host. */
#include <fenv.h>
#include <math.h>

#include "sse_impl.h"

/* ---- Bit-level helpers ---- */

#define F32_QBIT 0x00400000u
#define F32_DEFNAN 0xffc00000u
#define F64_QBIT 0x0008000000000000ull
#define F64_DEFNAN 0xfff8000000000000ull

static inline float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}
static inline uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}
static inline double u2d(uint64_t u)
{
	double d;
	memcpy(&d, &u, 8);
	return d;
}
static inline uint64_t d2u(double d)
{
	uint64_t u;
	memcpy(&u, &d, 8);
	return u;
}

static inline bool f32_nan(uint32_t a)
{
	return (a & 0x7fffffffu) > 0x7f800000u;
}
static inline bool f32_snan(uint32_t a)
{
	return f32_nan(a) && !(a & F32_QBIT);
}
static inline bool f32_den(uint32_t a)
{
	return !(a & 0x7f800000u) && (a & 0x007fffffu);
}
static inline bool f32_zero(uint32_t a)
{
	return !(a & 0x7fffffffu);
}
static inline bool f32_inf(uint32_t a)
{
	return (a & 0x7fffffffu) == 0x7f800000u;
}
static inline bool f64_nan(uint64_t a)
{
	return (a & ~(1ull << 63)) > 0x7ff0000000000000ull;
}
static inline bool f64_snan(uint64_t a)
{
	return f64_nan(a) && !(a & F64_QBIT);
}
static inline bool f64_den(uint64_t a)
{
	return !(a & 0x7ff0000000000000ull) && (a & 0x000fffffffffffffull);
}
static inline bool f64_zero(uint64_t a)
{
	return !(a & ~(1ull << 63));
}
static inline bool f64_inf(uint64_t a)
{
	return (a & ~(1ull << 63)) == 0x7ff0000000000000ull;
}

/* ---- Exception bookkeeping ----
 * SDM vol. 1 §11.5.2: invalid, denormal and divide-by-zero are detected
 * before computing ("pre"), overflow, underflow and precision after it
 * ("post"). An unmasked pre exception in any lane stops the instruction with
 * only the pre flags recorded; otherwise an unmasked post exception stops it
 * with all flags recorded. Either way the destination is unchanged. */
struct fpctx {
	uint32_t mxcsr;
	uint32_t pre, post;
	unsigned host; /* the host's rounding state, restored by fp_end */
};

#define CR4_OSXMMEXCPT 0x400u

static inline bool daz(const struct fpctx *e)
{
	return e->mxcsr & MXCSR_DAZ;
}
static inline bool ftz(const struct fpctx *e)
{
	return e->mxcsr & MXCSR_FZ;
}
static inline bool masked(const struct fpctx *e, uint32_t flag)
{
	return e->mxcsr & (flag << 7);
}

/* Host floating-point environment: the rounding mode and the inexact and
 * overflow flags. On x86-64 hosts MXCSR is used directly (fenv.h also
 * rewrites the x87 state each time, which costs far more); elsewhere
 * <fenv.h>. The asm statements clobber memory so that the volatile
 * operands and results of the operations stay on their side of them. */
/* CORRAL_SSE_FENV forces the portable path (to test it on x86-64). */
#if defined(__x86_64__) && defined(__SSE2_MATH__) && !defined(CORRAL_SSE_FENV)
#define HF_INEXACT 0x20
#define HF_OVERFLOW 0x08
static inline unsigned hmx_get(void)
{
	unsigned v;
	__asm__ volatile("stmxcsr %0" : "=m"(v) : : "memory");
	return v;
}
static inline void hmx_set(unsigned v)
{
	__asm__ volatile("ldmxcsr %0" : : "m"(v) : "memory");
}
static inline void hf_clear(void)
{
	hmx_set(hmx_get() & ~0x3fu);
}
static inline int hf_test(void)
{
	return (int)(hmx_get() & (HF_INEXACT | HF_OVERFLOW));
}
static inline unsigned hf_round_begin(unsigned rc)
{
	unsigned old = hmx_get();
	/* DAZ and FZ off: corral applies the guest's own. All exceptions masked. */
	hmx_set((old & ~(0x6000u | MXCSR_DAZ | MXCSR_FZ)) | MXCSR_MASKS | rc << 13);
	return old;
}
static inline void hf_round_end(unsigned old)
{
	hmx_set(old);
}
#else
#define HF_INEXACT FE_INEXACT
#define HF_OVERFLOW FE_OVERFLOW
static inline void hf_clear(void)
{
	feclearexcept(FE_ALL_EXCEPT);
}
static inline int hf_test(void)
{
	return fetestexcept(FE_INEXACT | FE_OVERFLOW);
}
static inline unsigned hf_round_begin(unsigned rc)
{
	static const int modes[4] = {FE_TONEAREST, FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO};
	int old = fegetround();
	fesetround(modes[rc]);
	return (unsigned)old;
}
static inline void hf_round_end(unsigned old)
{
	fesetround((int)old);
}
#endif

static void fp_begin(struct cpu *c, struct fpctx *e)
{
	e->mxcsr = c->s.mxcsr;
	e->pre = e->post = 0;
	e->host = hf_round_begin((e->mxcsr >> MXCSR_RC_SHIFT) & 3);
}

/* Restore the host and record flags; raises #XM (leaving the destination
 * alone) when an unmasked exception happened, or #UD if the OS has not
 * enabled #XM (CR4.OSXMMEXCPT). */
static void fp_end(struct cpu *c, struct fpctx *e)
{
	uint32_t unmasked = ~(e->mxcsr >> 7) & 0x3f;
	int vec = (c->s.cr4 & CR4_OSXMMEXCPT) ? EXC_XM : EXC_UD;
	hf_round_end(e->host);
	if (e->pre & unmasked) {
		c->s.mxcsr |= e->pre;
		cpu_raise(c, vec, 0);
	}
	c->s.mxcsr |= e->pre | e->post;
	if (e->post & unmasked)
		cpu_raise(c, vec, 0);
}

enum { FOP_ADD, FOP_SUB, FOP_MUL, FOP_DIV, FOP_MIN, FOP_MAX, FOP_SQRT };

static double h_op(unsigned op, double a, double b)
{
	volatile double x = a, y = b, r;
	switch (op) {
	case FOP_ADD: r = x + y; break;
	case FOP_SUB: r = x - y; break;
	case FOP_MUL: r = x * y; break;
	case FOP_DIV: r = x / y; break;
	default: r = sqrt(x); break;
	}
	return r;
}

static float h_d2f(double d)
{
	volatile double x = d;
	volatile float r = (float)x;
	return r;
}

/* ---- Result rounding ----
 * x86 judges tininess after rounding, and with unmasked overflow or
 * underflow judges precision on the exponent-adjusted result: both are
 * questions about the result rounded with an unbounded exponent, which the
 * helpers below answer by rounding a significand scaled into [0.5, 1). */

/* Single precision: d is the result rounded to double (for +, -, *, / and
 * sqrt of singles rounding twice gives the same single as rounding once,
 * since 53 >= 2*24+2; in the directed modes trivially). The unbounded
 * rounding of d to 24 bits is frac * 2^*ex, frac in [0.5, 1); returns its
 * inexactness. */
static bool f32_unbounded(double d, int *ex)
{
	double m = frexp(d, ex);
	hf_clear();
	float f = h_d2f(m);
	bool inexact = hf_test() & HF_INEXACT;
	if (fabsf(f) == 1.0f)
		(*ex)++;
	return inexact;
}

static uint32_t f32_finish(struct fpctx *e, double d)
{
	/* The host flags hold those of computing d; add the rounding to single. */
	bool op_inexact = hf_test() & HF_INEXACT;
	float f = h_d2f(d);
	int fl = hf_test();
	uint32_t r = f2u(f);
	bool inexact = fl & HF_INEXACT;
	int ex;

	if (fl & HF_OVERFLOW) {
		if (masked(e, MXCSR_OE))
			e->post |= MXCSR_OE | MXCSR_PE;
		else
			e->post |= MXCSR_OE | ((f32_unbounded(d, &ex) || op_inexact) ? MXCSR_PE : 0);
		return r;
	}
	bool tiny;
	uint32_t mag = r & 0x7fffffffu;
	if (mag && mag < 0x00800000u)
		tiny = true;
	else if (!mag)
		tiny = inexact;
	else if (mag == 0x00800000u && inexact)
		tiny = (f32_unbounded(d, &ex), ex <= -126);
	else
		tiny = false;
	if (tiny) {
		if (!masked(e, MXCSR_UE)) {
			e->post |= MXCSR_UE | ((f32_unbounded(d, &ex) || op_inexact) ? MXCSR_PE : 0);
		} else if (ftz(e)) {
			r &= 0x80000000u;
			e->post |= MXCSR_UE | MXCSR_PE;
		} else if (inexact) {
			e->post |= MXCSR_UE | MXCSR_PE;
		}
	} else if (inexact) {
		e->post |= MXCSR_PE;
	}
	return r;
}

/* Double precision: the exact result of op(a, b) rounded to 53 bits with an
 * unbounded exponent is frac * 2^*ex, frac in [0.5, 1); returns its
 * inexactness. Only multiplication and division can be inexact near the
 * bottom of the range (sums of doubles are multiples of the smallest
 * denormal), so add/sub are asked about overflow only. */
static bool f64_unbounded(unsigned op, double a, double b, int *ex)
{
	double r;
	int ea, eb, er;
	if (op == FOP_MUL || op == FOP_DIV) {
		double ma = frexp(a, &ea), mb = frexp(b, &eb);
		hf_clear();
		r = h_op(op, ma, mb);
		*ex = op == FOP_MUL ? ea + eb : ea - eb;
	} else {
		hf_clear();
		r = h_op(op, a * 0x1p-64, b * 0x1p-64);
		*ex = 64;
	}
	bool inexact = hf_test() & HF_INEXACT;
	(void)frexp(r, &er);
	*ex += er;
	return inexact;
}

/* Flags and FZ for a double result rd of op(a, b) whose host flags are fl. */
static uint64_t f64_finish(struct fpctx *e, double rd, int fl, unsigned op, double a, double b)
{
	uint64_t r = d2u(rd);
	bool inexact = fl & HF_INEXACT, muldiv = op == FOP_MUL || op == FOP_DIV;
	int ex;

	if (fl & HF_OVERFLOW) {
		if (masked(e, MXCSR_OE))
			e->post |= MXCSR_OE | MXCSR_PE;
		else
			e->post |= MXCSR_OE | (f64_unbounded(op, a, b, &ex) ? MXCSR_PE : 0);
		return r;
	}
	bool tiny;
	uint64_t mag = r & ~(1ull << 63);
	if (mag && mag < 0x0010000000000000ull)
		tiny = true;
	else if (!mag)
		tiny = inexact;
	else if (mag == 0x0010000000000000ull && inexact && muldiv)
		tiny = (f64_unbounded(op, a, b, &ex), ex <= -1022);
	else
		tiny = false;
	if (tiny) {
		if (!masked(e, MXCSR_UE)) {
			e->post |= MXCSR_UE | (muldiv && f64_unbounded(op, a, b, &ex) ? MXCSR_PE : 0);
		} else if (ftz(e)) {
			r &= 1ull << 63;
			e->post |= MXCSR_UE | MXCSR_PE;
		} else if (inexact) {
			e->post |= MXCSR_UE | MXCSR_PE;
		}
	} else if (inexact) {
		e->post |= MXCSR_PE;
	}
	return r;
}

static inline uint32_t f32_daz(const struct fpctx *e, uint32_t a)
{
	return daz(e) && f32_den(a) ? a & 0x80000000u : a;
}

static inline uint64_t f64_daz(const struct fpctx *e, uint64_t a)
{
	return daz(e) && f64_den(a) ? a & (1ull << 63) : a;
}

/* ---- Arithmetic lanes ---- */

static uint32_t f32_arith(struct fpctx *e, unsigned op, uint32_t a, uint32_t b)
{
	a = f32_daz(e, a);
	b = f32_daz(e, b);
	if (op == FOP_MIN || op == FOP_MAX) {
		/* Not IEEE min/max: any NaN or two zeros give the second operand. */
		if (f32_nan(a) || f32_nan(b)) {
			e->pre |= MXCSR_IE;
			return b;
		}
		if (f32_den(a) || f32_den(b))
			e->pre |= MXCSR_DE;
		float x = u2f(a), y = u2f(b);
		return (op == FOP_MIN ? x < y : x > y) ? a : b;
	}
	if (op == FOP_SQRT) {
		if (f32_nan(b)) {
			if (f32_snan(b))
				e->pre |= MXCSR_IE;
			return b | F32_QBIT;
		}
		if ((b & 0x80000000u) && !f32_zero(b)) {
			e->pre |= MXCSR_IE;
			return F32_DEFNAN;
		}
		if (f32_den(b))
			e->pre |= MXCSR_DE;
		if (f32_zero(b) || f32_inf(b))
			return b;
		hf_clear();
		double d = h_op(op, u2f(b), 0);
		return f32_finish(e, d);
	}
	if (f32_nan(a) || f32_nan(b)) {
		if (f32_snan(a) || f32_snan(b))
			e->pre |= MXCSR_IE;
		return (f32_nan(a) ? a : b) | F32_QBIT;
	}
	bool ia = f32_inf(a), ib = f32_inf(b), za = f32_zero(a), zb = f32_zero(b);
	bool invalid;
	switch (op) {
	case FOP_ADD: invalid = ia && ib && ((a ^ b) >> 31); break;
	case FOP_SUB: invalid = ia && ib && !((a ^ b) >> 31); break;
	case FOP_MUL: invalid = (ia && zb) || (za && ib); break;
	default: invalid = (za && zb) || (ia && ib); break;
	}
	if (invalid) {
		e->pre |= MXCSR_IE;
		return F32_DEFNAN;
	}
	/* A finite dividend over zero reports only divide-by-zero, even when
	 * the dividend is denormal. */
	if (op == FOP_DIV && zb && !ia) {
		e->pre |= MXCSR_ZE;
		return ((a ^ b) & 0x80000000u) | 0x7f800000u;
	}
	if (f32_den(a) || f32_den(b))
		e->pre |= MXCSR_DE;
	hf_clear();
	double d = h_op(op, u2f(a), u2f(b));
	return f32_finish(e, d);
}

static uint64_t f64_arith(struct fpctx *e, unsigned op, uint64_t a, uint64_t b)
{
	a = f64_daz(e, a);
	b = f64_daz(e, b);
	if (op == FOP_MIN || op == FOP_MAX) {
		if (f64_nan(a) || f64_nan(b)) {
			e->pre |= MXCSR_IE;
			return b;
		}
		if (f64_den(a) || f64_den(b))
			e->pre |= MXCSR_DE;
		double x = u2d(a), y = u2d(b);
		return (op == FOP_MIN ? x < y : x > y) ? a : b;
	}
	if (op == FOP_SQRT) {
		if (f64_nan(b)) {
			if (f64_snan(b))
				e->pre |= MXCSR_IE;
			return b | F64_QBIT;
		}
		if ((b >> 63) && !f64_zero(b)) {
			e->pre |= MXCSR_IE;
			return F64_DEFNAN;
		}
		if (f64_den(b))
			e->pre |= MXCSR_DE;
		if (f64_zero(b) || f64_inf(b))
			return b;
		hf_clear();
		double d = h_op(op, u2d(b), 0);
		return f64_finish(e, d, hf_test(), op, u2d(b), 0);
	}
	if (f64_nan(a) || f64_nan(b)) {
		if (f64_snan(a) || f64_snan(b))
			e->pre |= MXCSR_IE;
		return (f64_nan(a) ? a : b) | F64_QBIT;
	}
	bool ia = f64_inf(a), ib = f64_inf(b), za = f64_zero(a), zb = f64_zero(b);
	bool invalid;
	switch (op) {
	case FOP_ADD: invalid = ia && ib && ((a ^ b) >> 63); break;
	case FOP_SUB: invalid = ia && ib && !((a ^ b) >> 63); break;
	case FOP_MUL: invalid = (ia && zb) || (za && ib); break;
	default: invalid = (za && zb) || (ia && ib); break;
	}
	if (invalid) {
		e->pre |= MXCSR_IE;
		return F64_DEFNAN;
	}
	if (op == FOP_DIV && zb && !ia) {
		e->pre |= MXCSR_ZE;
		return ((a ^ b) & (1ull << 63)) | 0x7ff0000000000000ull;
	}
	if (f64_den(a) || f64_den(b))
		e->pre |= MXCSR_DE;
	hf_clear();
	double d = h_op(op, u2d(a), u2d(b));
	return f64_finish(e, d, hf_test(), op, u2d(a), u2d(b));
}

/* ---- Operand shapes ---- */

enum { K_PS, K_PD, K_SS, K_SD };

static inline unsigned kind_of(unsigned pfx)
{
	return pfx == PFX_NONE ? K_PS : pfx == PFX_66 ? K_PD : pfx == PFX_F3 ? K_SS : K_SD;
}

/* Source operand of a ps/pd/ss/sd instruction */
static inline void fsrc(struct cpu *c, const struct insn *i, unsigned kind, union cpu_xmm *s)
{
	if (kind == K_PS || kind == K_PD)
		sse_src128(c, i, s, true);
	else
		sse_src_low(c, i, s, kind == K_SS ? 4 : 8);
}

/* ADD SUB MUL DIV MIN MAX SQRT: aux = op | kind << 4 */
static void op_farith(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	unsigned op = i->aux & 15, kind = i->aux >> 4;
	union cpu_xmm s, r = c->s.xmm[i->reg];
	struct fpctx e;
	fsrc(c, i, kind, &s);
	fp_begin(c, &e);
	switch (kind) {
	case K_PS:
		for (unsigned k = 0; k < 4; k++)
			r.d[k] = f32_arith(&e, op, r.d[k], s.d[k]);
		break;
	case K_PD:
		for (unsigned k = 0; k < 2; k++)
			r.q[k] = f64_arith(&e, op, r.q[k], s.q[k]);
		break;
	case K_SS: r.d[0] = f32_arith(&e, op, r.d[0], s.d[0]); break;
	default: r.q[0] = f64_arith(&e, op, r.q[0], s.q[0]); break;
	}
	fp_end(c, &e);
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

/* HADDPS/HSUBPS/HADDPD/HSUBPD (aux = op | kind << 4), ADDSUBPS/PD (aux 0xf | kind << 4) */
static void op_fhoriz(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	unsigned op = i->aux & 15, kind = i->aux >> 4;
	union cpu_xmm s, d = c->s.xmm[i->reg], r;
	struct fpctx e;
	sse_src128(c, i, &s, true);
	fp_begin(c, &e);
	if (op == 0xf) {
		if (kind == K_PS)
			for (unsigned k = 0; k < 4; k++)
				r.d[k] = f32_arith(&e, k & 1 ? FOP_ADD : FOP_SUB, d.d[k], s.d[k]);
		else
			for (unsigned k = 0; k < 2; k++)
				r.q[k] = f64_arith(&e, k & 1 ? FOP_ADD : FOP_SUB, d.q[k], s.q[k]);
	} else if (kind == K_PS) {
		r.d[0] = f32_arith(&e, op, d.d[0], d.d[1]);
		r.d[1] = f32_arith(&e, op, d.d[2], d.d[3]);
		r.d[2] = f32_arith(&e, op, s.d[0], s.d[1]);
		r.d[3] = f32_arith(&e, op, s.d[2], s.d[3]);
	} else {
		r.q[0] = f64_arith(&e, op, d.q[0], d.q[1]);
		r.q[1] = f64_arith(&e, op, s.q[0], s.q[1]);
	}
	fp_end(c, &e);
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

/* DPPS / DPPD (aux = kind). Hardware runs the multiplications, then each
 * level of additions, as separate steps: an unmasked exception in one step
 * stops the instruction with the flags of the steps so far. */
static void op_dp(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s, d = c->s.xmm[i->reg], r;
	unsigned m = i->imm8;
	struct fpctx e;
	sse_src128(c, i, &s, true);
	if (i->aux == K_PS) {
		uint32_t t[4], lo, hi, sum;
		fp_begin(c, &e);
		for (unsigned k = 0; k < 4; k++)
			t[k] = (m >> (4 + k)) & 1 ? f32_arith(&e, FOP_MUL, d.d[k], s.d[k]) : 0;
		fp_end(c, &e);
		fp_begin(c, &e);
		lo = f32_arith(&e, FOP_ADD, t[0], t[1]);
		hi = f32_arith(&e, FOP_ADD, t[2], t[3]);
		fp_end(c, &e);
		fp_begin(c, &e);
		sum = f32_arith(&e, FOP_ADD, lo, hi);
		fp_end(c, &e);
		for (unsigned k = 0; k < 4; k++)
			r.d[k] = (m >> k) & 1 ? sum : 0;
	} else {
		uint64_t t[2], sum;
		fp_begin(c, &e);
		for (unsigned k = 0; k < 2; k++)
			t[k] = (m >> (4 + k)) & 1 ? f64_arith(&e, FOP_MUL, d.q[k], s.q[k]) : 0;
		fp_end(c, &e);
		fp_begin(c, &e);
		sum = f64_arith(&e, FOP_ADD, t[0], t[1]);
		fp_end(c, &e);
		for (unsigned k = 0; k < 2; k++)
			r.q[k] = (m >> k) & 1 ? sum : 0;
	}
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

/* ---- Compares ---- */

/* Predicates 0-7: EQ LT LE UNORD NEQ NLT NLE ORD. LT/LE/NLT/NLE signal on
 * any NaN, the others only on SNaN. */
static bool fcmp_pred(unsigned pred, bool unord, bool lt, bool eq)
{
	switch (pred & 7) {
	case 0: return !unord && eq;
	case 1: return !unord && lt;
	case 2: return !unord && (lt || eq);
	case 3: return unord;
	case 4: return unord || !eq;
	case 5: return unord || !lt;
	case 6: return unord || !(lt || eq);
	default: return !unord;
	}
}

static inline bool pred_signals(unsigned pred)
{
	pred &= 7;
	return pred == 1 || pred == 2 || pred == 5 || pred == 6;
}

static bool f32_cmp(struct fpctx *e, unsigned pred, uint32_t a, uint32_t b)
{
	a = f32_daz(e, a);
	b = f32_daz(e, b);
	bool unord = f32_nan(a) || f32_nan(b);
	if (unord) {
		if (f32_snan(a) || f32_snan(b) || pred_signals(pred))
			e->pre |= MXCSR_IE;
		return fcmp_pred(pred, true, false, false);
	}
	if (f32_den(a) || f32_den(b))
		e->pre |= MXCSR_DE;
	float x = u2f(a), y = u2f(b);
	return fcmp_pred(pred, false, x < y, x == y);
}

static bool f64_cmp(struct fpctx *e, unsigned pred, uint64_t a, uint64_t b)
{
	a = f64_daz(e, a);
	b = f64_daz(e, b);
	bool unord = f64_nan(a) || f64_nan(b);
	if (unord) {
		if (f64_snan(a) || f64_snan(b) || pred_signals(pred))
			e->pre |= MXCSR_IE;
		return fcmp_pred(pred, true, false, false);
	}
	if (f64_den(a) || f64_den(b))
		e->pre |= MXCSR_DE;
	double x = u2d(a), y = u2d(b);
	return fcmp_pred(pred, false, x < y, x == y);
}

/* CMPPS/CMPPD/CMPSS/CMPSD xmm, xmm/m, imm8: aux = kind */
static void op_fcmp(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	unsigned kind = i->aux, pred = i->imm8;
	union cpu_xmm s, r = c->s.xmm[i->reg];
	struct fpctx e;
	fsrc(c, i, kind, &s);
	fp_begin(c, &e);
	switch (kind) {
	case K_PS:
		for (unsigned k = 0; k < 4; k++)
			r.d[k] = f32_cmp(&e, pred, r.d[k], s.d[k]) ? ~0u : 0;
		break;
	case K_PD:
		for (unsigned k = 0; k < 2; k++)
			r.q[k] = f64_cmp(&e, pred, r.q[k], s.q[k]) ? ~0ull : 0;
		break;
	case K_SS: r.d[0] = f32_cmp(&e, pred, r.d[0], s.d[0]) ? ~0u : 0; break;
	default: r.q[0] = f64_cmp(&e, pred, r.q[0], s.q[0]) ? ~0ull : 0; break;
	}
	fp_end(c, &e);
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

/* COMISS/UCOMISS/COMISD/UCOMISD: aux = kind (K_SS/K_SD) | 0x10 for the
 * signalling COMI forms. ZF PF CF = 111 unordered, 100 equal, 001 less. */
static void op_comi(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	unsigned kind = i->aux & 0xf;
	bool sig = i->aux & 0x10;
	union cpu_xmm s;
	const union cpu_xmm *d = &c->s.xmm[i->reg];
	struct fpctx e;
	bool unord, lt, eq;
	sse_src_low(c, i, &s, kind == K_SS ? 4 : 8);
	fp_begin(c, &e);
	if (kind == K_SS) {
		uint32_t a = f32_daz(&e, d->d[0]), b = f32_daz(&e, s.d[0]);
		unord = f32_nan(a) || f32_nan(b);
		if (unord && (sig || f32_snan(a) || f32_snan(b)))
			e.pre |= MXCSR_IE;
		if (!unord && (f32_den(a) || f32_den(b)))
			e.pre |= MXCSR_DE;
		lt = u2f(a) < u2f(b);
		eq = u2f(a) == u2f(b);
	} else {
		uint64_t a = f64_daz(&e, d->q[0]), b = f64_daz(&e, s.q[0]);
		unord = f64_nan(a) || f64_nan(b);
		if (unord && (sig || f64_snan(a) || f64_snan(b)))
			e.pre |= MXCSR_IE;
		if (!unord && (f64_den(a) || f64_den(b)))
			e.pre |= MXCSR_DE;
		lt = u2d(a) < u2d(b);
		eq = u2d(a) == u2d(b);
	}
	fp_end(c, &e);
	uint32_t f = unord ? FL_ZF | FL_PF | FL_CF : eq ? FL_ZF : lt ? FL_CF : 0;
	flags_set(c, FL_ARITH, f);
	insn_next(c, i);
}

/* ---- Conversions ---- */

static uint64_t f32_to_f64(struct fpctx *e, uint32_t a)
{
	a = f32_daz(e, a);
	if (f32_nan(a)) {
		if (f32_snan(a))
			e->pre |= MXCSR_IE;
		return ((uint64_t)(a >> 31) << 63) | 0x7ff8000000000000ull | ((uint64_t)(a & 0x3fffffu) << 29);
	}
	if (f32_den(a))
		e->pre |= MXCSR_DE;
	return d2u((double)u2f(a));
}

static uint32_t f64_to_f32(struct fpctx *e, uint64_t a)
{
	a = f64_daz(e, a);
	if (f64_nan(a)) {
		if (f64_snan(a))
			e->pre |= MXCSR_IE;
		return (uint32_t)((a >> 63) << 31) | 0x7fc00000u | (uint32_t)((a >> 29) & 0x3fffffu);
	}
	if (f64_den(a))
		e->pre |= MXCSR_DE;
	if (f64_zero(a) || f64_inf(a))
		return (uint32_t)((a >> 63) << 31) | (f64_inf(a) ? 0x7f800000u : 0);
	hf_clear();
	return f32_finish(e, u2d(a));
}

/* Round v to an integral value in mode (MXCSR.RC encoding: 0 nearest
 * even, 1 down, 2 up, 3 toward zero). Done on the bits: the compiler's and
 * libm's floor/ceil/rint need not be exact in every host rounding mode. */
static double round_integral(double v, unsigned mode)
{
	uint64_t u = d2u(v), sign = u & (1ull << 63);
	unsigned exp = (unsigned)(u >> 52) & 0x7ff;
	bool inc;

	if (exp >= 1023 + 52)
		return v; /* already integral, infinite or NaN */
	if (exp < 1023) { /* |v| < 1: the result is 0 or 1 with v's sign */
		if (!(u << 1))
			return v;
		switch (mode) {
		case 0: inc = exp == 1022 && (u & 0xfffffffffffffull); break;
		case 1: inc = sign; break;
		case 2: inc = !sign; break;
		default: inc = false; break;
		}
		return u2d(sign | (inc ? 0x3ff0000000000000ull : 0));
	}
	unsigned fbits = 1023 + 52 - exp;
	uint64_t mask = (1ull << fbits) - 1, frac = u & mask, base = u & ~mask;
	if (!frac)
		return v;
	switch (mode) {
	case 0: {
		uint64_t half = 1ull << (fbits - 1);
		inc = frac > half || (frac == half && ((base >> fbits) & 1));
		break;
	}
	case 1: inc = sign; break;
	case 2: inc = !sign; break;
	default: inc = false; break;
	}
	if (inc)
		base += 1ull << fbits; /* a carry into the exponent is still right */
	return u2d(base);
}

/* Float to signed integer of bits 32 or 64: NaN or out of range is the
 * "integer indefinite" with IE. trunc: CVTT* forms. */
static uint64_t fp_to_int(struct fpctx *e, double v, unsigned bits, bool trunc)
{
	const uint64_t indef = bits == 32 ? 0x80000000ull : 0x8000000000000000ull;
	if (v != v) {
		e->pre |= MXCSR_IE;
		return indef;
	}
	double r = round_integral(v, trunc ? 3 : (e->mxcsr >> MXCSR_RC_SHIFT) & 3);
	const double lim = bits == 32 ? 0x1p31 : 0x1p63;
	if (!(r >= -lim && r < lim)) {
		e->pre |= MXCSR_IE;
		return indef;
	}
	if (r != v)
		e->post |= MXCSR_PE;
	int64_t n = (int64_t)r;
	return bits == 32 ? (uint32_t)n : (uint64_t)n;
}

static uint64_t f32_to_int(struct fpctx *e, uint32_t a, unsigned bits, bool trunc)
{
	a = f32_daz(e, a);
	return fp_to_int(e, f32_nan(a) ? NAN : (double)u2f(a), bits, trunc);
}

static uint64_t f64_to_int(struct fpctx *e, uint64_t a, unsigned bits, bool trunc)
{
	a = f64_daz(e, a);
	return fp_to_int(e, f64_nan(a) ? NAN : u2d(a), bits, trunc);
}

static uint32_t int_to_f32(struct fpctx *e, int64_t v)
{
	hf_clear();
	volatile int64_t x = v;
	volatile float r = (float)x;
	if (hf_test() & HF_INEXACT)
		e->post |= MXCSR_PE;
	return f2u(r);
}

static uint64_t int_to_f64(struct fpctx *e, int64_t v)
{
	hf_clear();
	volatile int64_t x = v;
	volatile double r = (double)x;
	if (hf_test() & HF_INEXACT)
		e->post |= MXCSR_PE;
	return d2u(r);
}

/* Conversion selector kept in aux */
enum {
	CV_PS2PD,
	CV_PD2PS,
	CV_SS2SD,
	CV_SD2SS,
	CV_DQ2PS,
	CV_PS2DQ,
	CV_TPS2DQ,
	CV_DQ2PD,
	CV_PD2DQ,
	CV_TPD2DQ,
	CV_SI2SS,
	CV_SI2SD,
	CV_SS2SI,
	CV_TSS2SI,
	CV_SD2SI,
	CV_TSD2SI,
	CV_PI2PS,
	CV_PI2PD,
	CV_PS2PI,
	CV_TPS2PI,
	CV_PD2PI,
	CV_TPD2PI,
};

/* xmm-destination conversions */
static void op_cvt(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s, r = c->s.xmm[i->reg];
	struct fpctx e;
	bool from_mmx = false;

	switch (i->aux) {
	case CV_PS2PD:
	case CV_DQ2PD: sse_src_low(c, i, &s, 8); break;
	case CV_SS2SD: sse_src_low(c, i, &s, 4); break;
	case CV_SD2SS: sse_src_low(c, i, &s, 8); break;
	case CV_SI2SS:
	case CV_SI2SD: s.q[0] = rm_read(c, i, (i->rex & 8) ? 8 : 4); break;
	case CV_PI2PS:
	case CV_PI2PD:
		s.q[0] = mmx_src(c, i);
		from_mmx = i->mod3;
		break;
	default: sse_src128(c, i, &s, true); break;
	}
	fp_begin(c, &e);
	switch (i->aux) {
	case CV_PS2PD:
		r.q[0] = f32_to_f64(&e, s.d[0]);
		r.q[1] = f32_to_f64(&e, s.d[1]);
		break;
	case CV_PD2PS:
		r.d[0] = f64_to_f32(&e, s.q[0]);
		r.d[1] = f64_to_f32(&e, s.q[1]);
		r.q[1] = 0;
		break;
	case CV_SS2SD: r.q[0] = f32_to_f64(&e, s.d[0]); break;
	case CV_SD2SS: r.d[0] = f64_to_f32(&e, s.q[0]); break;
	case CV_DQ2PS:
		for (unsigned k = 0; k < 4; k++)
			r.d[k] = int_to_f32(&e, (int32_t)s.d[k]);
		break;
	case CV_PS2DQ:
	case CV_TPS2DQ:
		for (unsigned k = 0; k < 4; k++)
			r.d[k] = (uint32_t)f32_to_int(&e, s.d[k], 32, i->aux == CV_TPS2DQ);
		break;
	case CV_DQ2PD:
		r.q[0] = int_to_f64(&e, (int32_t)s.d[0]);
		r.q[1] = int_to_f64(&e, (int32_t)s.d[1]);
		break;
	case CV_PD2DQ:
	case CV_TPD2DQ:
		r.d[0] = (uint32_t)f64_to_int(&e, s.q[0], 32, i->aux == CV_TPD2DQ);
		r.d[1] = (uint32_t)f64_to_int(&e, s.q[1], 32, i->aux == CV_TPD2DQ);
		r.q[1] = 0;
		break;
	case CV_SI2SS: r.d[0] = int_to_f32(&e, (i->rex & 8) ? (int64_t)s.q[0] : (int32_t)s.q[0]); break;
	case CV_SI2SD: r.q[0] = int_to_f64(&e, (i->rex & 8) ? (int64_t)s.q[0] : (int32_t)s.q[0]); break;
	case CV_PI2PS:
		r.d[0] = int_to_f32(&e, (int32_t)s.d[0]);
		r.d[1] = int_to_f32(&e, (int32_t)s.d[1]);
		break;
	default: /* CV_PI2PD */
		r.q[0] = int_to_f64(&e, (int32_t)s.d[0]);
		r.q[1] = int_to_f64(&e, (int32_t)s.d[1]);
		break;
	}
	fp_end(c, &e);
	if (from_mmx)
		mmx_enter(c);
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

/* CVT(T)SS2SI / CVT(T)SD2SI r32/64, xmm/m */
static void op_cvt2si(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	struct fpctx e;
	unsigned bits = (i->rex & 8) ? 64 : 32;
	bool sd = i->aux == CV_SD2SI || i->aux == CV_TSD2SI;
	bool t = i->aux == CV_TSS2SI || i->aux == CV_TSD2SI;
	uint64_t v;
	sse_src_low(c, i, &s, sd ? 8 : 4);
	fp_begin(c, &e);
	v = sd ? f64_to_int(&e, s.q[0], bits, t) : f32_to_int(&e, s.d[0], bits, t);
	fp_end(c, &e);
	reg_write(c, i->reg, bits / 8, v);
	insn_next(c, i);
}

/* CVT(T)PS2PI / CVT(T)PD2PI mm, xmm/m */
static void op_cvt2pi(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	mmx_check(c);
	union cpu_xmm s, r;
	struct fpctx e;
	bool pd = i->aux == CV_PD2PI || i->aux == CV_TPD2PI;
	bool t = i->aux == CV_TPS2PI || i->aux == CV_TPD2PI;
	if (pd)
		sse_src128(c, i, &s, true);
	else
		sse_src_low(c, i, &s, 8);
	fp_begin(c, &e);
	for (unsigned k = 0; k < 2; k++)
		r.d[k] = (uint32_t)(pd ? f64_to_int(&e, s.q[k], 32, t) : f32_to_int(&e, s.d[k], 32, t));
	fp_end(c, &e);
	mmx_enter(c);
	mmx_write(c, i->reg, r.q[0]);
	insn_next(c, i);
}

/* ---- Rounding (SSE4.1) ---- */

static uint64_t fp_round(struct fpctx *e, double v, unsigned imm, bool *inexact)
{
	unsigned mode = (imm & 4) ? (e->mxcsr >> MXCSR_RC_SHIFT) & 3 : imm & 3;
	double r = round_integral(v, mode);
	*inexact = r != v;
	return d2u(r);
}

static uint32_t f32_round(struct fpctx *e, uint32_t a, unsigned imm)
{
	bool inexact;
	a = f32_daz(e, a);
	if (f32_nan(a)) {
		if (f32_snan(a))
			e->pre |= MXCSR_IE;
		return a | F32_QBIT;
	}
	double r = u2d(fp_round(e, u2f(a), imm, &inexact));
	if (inexact && !(imm & 8))
		e->post |= MXCSR_PE;
	return f2u((float)r);
}

static uint64_t f64_round(struct fpctx *e, uint64_t a, unsigned imm)
{
	bool inexact;
	a = f64_daz(e, a);
	if (f64_nan(a)) {
		if (f64_snan(a))
			e->pre |= MXCSR_IE;
		return a | F64_QBIT;
	}
	uint64_t r = fp_round(e, u2d(a), imm, &inexact);
	if (inexact && !(imm & 8))
		e->post |= MXCSR_PE;
	return r;
}

/* ROUNDPS/PD/SS/SD: aux = kind */
static void op_round(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	unsigned kind = i->aux;
	union cpu_xmm s, r = c->s.xmm[i->reg];
	struct fpctx e;
	fsrc(c, i, kind, &s);
	fp_begin(c, &e);
	switch (kind) {
	case K_PS:
		for (unsigned k = 0; k < 4; k++)
			r.d[k] = f32_round(&e, s.d[k], i->imm8);
		break;
	case K_PD:
		for (unsigned k = 0; k < 2; k++)
			r.q[k] = f64_round(&e, s.q[k], i->imm8);
		break;
	case K_SS: r.d[0] = f32_round(&e, s.d[0], i->imm8); break;
	default: r.q[0] = f64_round(&e, s.q[0], i->imm8); break;
	}
	fp_end(c, &e);
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

/* ---- Approximations: RCPPS/RCPSS/RSQRTPS/RSQRTSS ----
 * Hardware gives a table-based estimate with relative error at most
 * 1.5 * 2^-12 that differs between vendors; corral gives the exact value
 * rounded to 12 significant bits, which is within that bound. No flags. */
static uint32_t f32_approx(uint32_t a, bool rsqrt)
{
	uint32_t sign = a & 0x80000000u;
	if (f32_nan(a))
		return a | F32_QBIT;
	if (f32_zero(a) || f32_den(a))
		return sign | 0x7f800000u;
	if (rsqrt && sign)
		return F32_DEFNAN;
	if (f32_inf(a))
		return rsqrt ? 0 : sign;
	double x = fabs((double)u2f(a));
	double r = rsqrt ? 1.0 / sqrt(x) : 1.0 / x;
	uint64_t u = d2u(r);
	u = (u + (1ull << 40)) & ~((1ull << 41) - 1); /* keep 11 fraction bits, rounded */
	r = u2d(u);
	if (r < 0x1p-126) /* results that would be denormal are flushed */
		return sign;
	return sign | f2u((float)r);
}

/* aux: bit 0 rsqrt, bit 1 scalar */
static void op_approx(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	bool rs = i->aux & 1, scalar = i->aux & 2;
	union cpu_xmm s, r = c->s.xmm[i->reg];
	if (scalar)
		sse_src_low(c, i, &s, 4);
	else
		sse_src128(c, i, &s, true);
	for (unsigned k = 0; k < (scalar ? 1u : 4u); k++)
		r.d[k] = f32_approx(s.d[k], rs);
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

/* ---- MXCSR ---- */

static void op_ldmxcsr(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	uint32_t v = mem_read32(c, insn_ea(c, i));
	if (v & ~MXCSR_VALID)
		cpu_raise(c, EXC_GP, 0);
	c->s.mxcsr = v;
	insn_next(c, i);
}

static void op_stmxcsr(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	mem_write32(c, insn_ea(c, i), c->s.mxcsr);
	insn_next(c, i);
}

/* ---- Decoding ---- */

static inline int fset(struct insn *i, insn_fn fn, unsigned aux)
{
	i->fn = fn;
	i->aux = (uint8_t)aux;
	return 0;
}

int sse_fp_decode(struct insn *i)
{
	unsigned op = i->op, p = i->pfx, k = kind_of(p);

	if (i->map == MAP_0F3A) {
		if (p != PFX_66)
			return -1;
		switch (op) {
		case 0x08: return fset(i, op_round, K_PS);
		case 0x09: return fset(i, op_round, K_PD);
		case 0x0a: return fset(i, op_round, K_SS);
		case 0x0b: return fset(i, op_round, K_SD);
		case 0x40: return fset(i, op_dp, K_PS);
		case 0x41: return fset(i, op_dp, K_PD);
		}
		return -1;
	}
	if (i->map != MAP_0F)
		return -1;
	switch (op) {
	case 0x2a:
		switch (p) {
		case PFX_NONE: return fset(i, op_cvt, CV_PI2PS);
		case PFX_66: return fset(i, op_cvt, CV_PI2PD);
		case PFX_F3: return fset(i, op_cvt, CV_SI2SS);
		default: return fset(i, op_cvt, CV_SI2SD);
		}
	case 0x2c:
	case 0x2d: {
		bool t = op == 0x2c;
		switch (p) {
		case PFX_NONE: return fset(i, op_cvt2pi, t ? CV_TPS2PI : CV_PS2PI);
		case PFX_66: return fset(i, op_cvt2pi, t ? CV_TPD2PI : CV_PD2PI);
		case PFX_F3: return fset(i, op_cvt2si, t ? CV_TSS2SI : CV_SS2SI);
		default: return fset(i, op_cvt2si, t ? CV_TSD2SI : CV_SD2SI);
		}
	}
	case 0x2e:
	case 0x2f:
		if (p == PFX_F3 || p == PFX_F2)
			break;
		return fset(i, op_comi, (p == PFX_66 ? K_SD : K_SS) | (op == 0x2f ? 0x10 : 0));
	case 0x51: return fset(i, op_farith, FOP_SQRT | k << 4);
	case 0x52:
	case 0x53:
		if (p == PFX_66 || p == PFX_F2)
			break;
		return fset(i, op_approx, (op == 0x52) | (p == PFX_F3 ? 2 : 0));
	case 0x58: return fset(i, op_farith, FOP_ADD | k << 4);
	case 0x59: return fset(i, op_farith, FOP_MUL | k << 4);
	case 0x5a:
		switch (p) {
		case PFX_NONE: return fset(i, op_cvt, CV_PS2PD);
		case PFX_66: return fset(i, op_cvt, CV_PD2PS);
		case PFX_F3: return fset(i, op_cvt, CV_SS2SD);
		default: return fset(i, op_cvt, CV_SD2SS);
		}
	case 0x5b:
		switch (p) {
		case PFX_NONE: return fset(i, op_cvt, CV_DQ2PS);
		case PFX_66: return fset(i, op_cvt, CV_PS2DQ);
		case PFX_F3: return fset(i, op_cvt, CV_TPS2DQ);
		default: break;
		}
		break;
	case 0x5c: return fset(i, op_farith, FOP_SUB | k << 4);
	case 0x5d: return fset(i, op_farith, FOP_MIN | k << 4);
	case 0x5e: return fset(i, op_farith, FOP_DIV | k << 4);
	case 0x5f: return fset(i, op_farith, FOP_MAX | k << 4);
	case 0x7c:
	case 0x7d:
		if (p == PFX_66)
			return fset(i, op_fhoriz, (op == 0x7c ? FOP_ADD : FOP_SUB) | K_PD << 4);
		if (p == PFX_F2)
			return fset(i, op_fhoriz, (op == 0x7c ? FOP_ADD : FOP_SUB) | K_PS << 4);
		return -1; /* the integer decoder rejects the rest */
	case 0xc2: return fset(i, op_fcmp, k);
	case 0xd0:
		if (p == PFX_66)
			return fset(i, op_fhoriz, 0xf | K_PD << 4);
		if (p == PFX_F2)
			return fset(i, op_fhoriz, 0xf | K_PS << 4);
		break;
	case 0xe6:
		switch (p) {
		case PFX_66: return fset(i, op_cvt, CV_TPD2DQ);
		case PFX_F3: return fset(i, op_cvt, CV_DQ2PD);
		case PFX_F2: return fset(i, op_cvt, CV_PD2DQ);
		default: break;
		}
		break;
	case 0xae:
		if (i->mod3)
			return -1;
		if (((i->modrm >> 3) & 7) == 2)
			return fset(i, op_ldmxcsr, 0);
		if (((i->modrm >> 3) & 7) == 3)
			return fset(i, op_stmxcsr, 0);
		return -1;
	default: return -1;
	}
	i->fn = op_ud;
	return 0;
}
