/* 80-bit extended-precision soft-float for the x87 (see f80.h): values are
 * unpacked to sign, exponent and a normalized significand, computed exactly
 * in 128-bit integers and rounded once, so results match x86 on any host. */
#include <string.h>

#include "f80.h"

typedef unsigned __int128 u128;

#define EXT_BIAS 16383
#define EXT_EMIN (-16382)
#define EXT_EMAX 16383
/* x87 rule for unmasked overflow/underflow on a register result */
#define EXT_WRAP 24576

/* Unpacked value: finite nonzero values have bit 63 of sig set and
 * value = sig * 2^(exp - 63). */
struct unp {
	enum f80_class cls;
	int sign;
	int32_t exp;
	uint64_t sig;
};

/* Destination format for rounding */
struct fmt {
	int prec;
	int32_t emin, emax;
	bool ext; /* x87 register: unmasked OE/UE deliver a wrapped result */
};

static const struct fmt fmt_f32 = {24, -126, 127, false};
static const struct fmt fmt_f64 = {53, -1022, 1023, false};

static inline struct fmt fmt_ext(const struct f80_env *e)
{
	struct fmt f = {(int)e->prec, EXT_EMIN, EXT_EMAX, true};
	return f;
}

static const struct fmt fmt_ext64 = {64, EXT_EMIN, EXT_EMAX, true};

static inline int clz128(u128 v)
{
	uint64_t hi = (uint64_t)(v >> 64);
	if (hi)
		return __builtin_clzll(hi);
	return 64 + __builtin_clzll((uint64_t)v);
}

static inline u128 shr_jam(u128 v, uint32_t n)
{
	if (n == 0)
		return v;
	if (n >= 128)
		return v != 0;
	return (v >> n) | ((v & (((u128)1 << n) - 1)) != 0);
}

static inline struct cpu_f80 mk(int sign, unsigned bexp, uint64_t sig)
{
	struct cpu_f80 r = {sig, (uint16_t)((sign ? 0x8000 : 0) | (bexp & 0x7fff))};
	return r;
}

enum f80_class f80_classify(struct cpu_f80 a)
{
	unsigned e = a.sexp & 0x7fff;
	if (e == 0x7fff) {
		if (!(a.mant >> 63))
			return F80_UNSUPPORTED;
		if ((a.mant << 1) == 0)
			return F80_INF;
		return (a.mant >> 62) & 1 ? F80_QNAN : F80_SNAN;
	}
	if (e == 0)
		return a.mant ? F80_DENORMAL : F80_ZERO;
	return a.mant >> 63 ? F80_NORMAL : F80_UNSUPPORTED;
}

static struct unp unpack(struct cpu_f80 a)
{
	struct unp u = {f80_classify(a), a.sexp >> 15, 0, a.mant};
	if (u.cls == F80_NORMAL) {
		u.exp = (int32_t)(a.sexp & 0x7fff) - EXT_BIAS;
	} else if (u.cls == F80_DENORMAL) {
		/* pseudo-denormals (integer bit set) have the same weight */
		int lz = __builtin_clzll(a.mant);
		u.sig = a.mant << lz;
		u.exp = EXT_EMIN - lz;
	}
	return u;
}

static inline bool is_nan(const struct unp *u)
{
	return u->cls == F80_QNAN || u->cls == F80_SNAN;
}

static inline bool is_finite_nz(const struct unp *u)
{
	return u->cls == F80_NORMAL || u->cls == F80_DENORMAL;
}

static inline struct cpu_f80 zero(int sign)
{
	return mk(sign, 0, 0);
}

static inline struct cpu_f80 inf(int sign)
{
	return mk(sign, 0x7fff, 1ull << 63);
}

static struct cpu_f80 invalid(struct f80_env *e)
{
	e->exc |= F80_IE;
	return F80_INDEFINITE;
}

static inline struct cpu_f80 quiet(struct cpu_f80 a)
{
	a.mant |= 1ull << 62;
	return a;
}

/* Round sig * 2^(exp - 127) (sig normalized: bit 127 set) to nearest/down/up/
 * zero at prec bits; returns whether it rounded away from zero. sig may wrap
 * to 0 on carry-out, which the caller checks. */
static bool round_at(u128 *sig, int prec, unsigned rc, int sign, bool *inexact)
{
	unsigned sh = 128 - (unsigned)prec;
	u128 low = ((u128)1 << sh) - 1;
	u128 rb = *sig & low;
	u128 half = (u128)1 << (sh - 1);
	bool inc;

	*inexact = rb != 0;
	switch (rc) {
	case F80_RN: inc = rb > half || (rb == half && ((*sig >> sh) & 1)); break;
	case F80_RD: inc = sign && rb; break;
	case F80_RU: inc = !sign && rb; break;
	default: inc = false;
	}
	*sig &= ~low;
	if (inc)
		*sig += (u128)1 << sh;
	return inc;
}

/* A rounded result before packing: exp is unbiased and applies when sig's
 * bit 127 is set; denormals have exp == emin and bit 127 clear. */
struct rres {
	int sign;
	int32_t exp;
	u128 sig;
	int kind; /* 0 finite, 1 infinity */
};

/* Round a finite nonzero value to the format, raising OE/UE/PE and setting
 * e->up. Tininess is detected after rounding, as on x86. */
static struct rres round_val(struct f80_env *e, const struct fmt *f, int sign, int32_t exp, u128 sig)
{
	struct rres r = {sign, exp, sig, 0};
	bool inx, up;
	u128 s = sig;
	int32_t x = exp;

	up = round_at(&s, f->prec, e->rc, sign, &inx);
	if (up && s == 0) {
		s = (u128)1 << 127;
		x++;
	}
	if (x > f->emax) {
		e->exc |= F80_OE;
		/* an unmasked overflow delivers the wrapped result, unless even
		 * that does not fit (FSCALE): then infinity */
		if (!(e->mask & F80_OE)) {
			if (f->ext && x - EXT_WRAP > f->emax) {
				e->exc |= F80_PE;
				e->up = true;
				r.kind = 1;
				return r;
			}
			if (f->ext) {
				r.exp = x - EXT_WRAP;
				r.sig = s;
				e->up = up;
				if (inx)
					e->exc |= F80_PE;
			}
			return r;
		}
		e->exc |= F80_PE;
		bool to_inf;
		switch (e->rc) {
		case F80_RN: to_inf = true; break;
		case F80_RD: to_inf = sign; break;
		case F80_RU: to_inf = !sign; break;
		default: to_inf = false;
		}
		e->up = to_inf;
		if (to_inf) {
			r.kind = 1;
		} else {
			r.exp = f->emax;
			r.sig = ~(u128)0 << (128 - f->prec);
		}
		return r;
	}
	if (x < f->emin) {
		if (!(e->mask & F80_UE) && f->ext && x + EXT_WRAP < f->emin) {
			/* too small even to wrap (FSCALE): zero */
			e->exc |= F80_UE | F80_PE;
			r.exp = f->emin;
			r.sig = 0;
			return r;
		}
		if (!(e->mask & F80_UE)) {
			e->exc |= F80_UE;
			if (f->ext) {
				r.exp = x + EXT_WRAP;
				r.sig = s;
				e->up = up;
				if (inx)
					e->exc |= F80_PE;
			}
			return r;
		}
		s = shr_jam(sig, (uint32_t)(f->emin - exp));
		up = round_at(&s, f->prec, e->rc, sign, &inx);
		if (inx)
			e->exc |= F80_UE | F80_PE;
		e->up = up;
		r.exp = f->emin;
		r.sig = s;
		return r;
	}
	if (inx)
		e->exc |= F80_PE;
	e->up = up;
	r.exp = x;
	r.sig = s;
	return r;
}

static struct cpu_f80 pack_ext(struct rres r)
{
	if (r.kind)
		return inf(r.sign);
	if (!(r.sig >> 127))
		return mk(r.sign, 0, (uint64_t)(r.sig >> 64));
	return mk(r.sign, (unsigned)(r.exp + EXT_BIAS), (uint64_t)(r.sig >> 64));
}

static struct cpu_f80 round_pack(struct f80_env *e, const struct fmt *f, int sign, int32_t exp, u128 sig)
{
	return pack_ext(round_val(e, f, sign, exp, sig));
}

/* Normalize a nonzero 128-bit magnitude whose bit 127 weighs 2^exp. */
static struct cpu_f80 norm_round_pack(struct f80_env *e, const struct fmt *f, int sign, int32_t exp, u128 sig)
{
	int lz = clz128(sig);
	return round_pack(e, f, sign, exp - lz, sig << lz);
}

/* x87 NaN propagation (SDM vol. 1 table 4-7): a QNaN beats an SNaN, else
 * the larger significand wins; the result is always quiet. */
static struct cpu_f80 nan_pick(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b, const struct unp *ua,
			       const struct unp *ub)
{
	if (ua->cls == F80_SNAN || ub->cls == F80_SNAN)
		e->exc |= F80_IE;
	if (!is_nan(ub))
		return quiet(a);
	if (!is_nan(ua))
		return quiet(b);
	if (ua->cls == F80_SNAN && ub->cls == F80_QNAN)
		return b;
	if (ua->cls == F80_QNAN && ub->cls == F80_SNAN)
		return a;
	uint64_t ma = a.mant | (1ull << 62), mb = b.mant | (1ull << 62);
	if (ma != mb)
		return quiet(ma > mb ? a : b);
	return quiet(a.sexp < b.sexp ? a : b);
}

/* Common operand screening for two-operand arithmetic. Returns true when
 * the result is already decided (*r). */
static bool screen2(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b, const struct unp *ua, const struct unp *ub,
		    struct cpu_f80 *r)
{
	if (ua->cls == F80_UNSUPPORTED || ub->cls == F80_UNSUPPORTED) {
		*r = invalid(e);
		return true;
	}
	if (is_nan(ua) || is_nan(ub)) {
		*r = nan_pick(e, a, b, ua, ub);
		return true;
	}
	if (ua->cls == F80_DENORMAL || ub->cls == F80_DENORMAL || e->den_in) {
		e->exc |= F80_DE;
		if (!(e->mask & F80_DE)) {
			*r = a;
			return true;
		}
	}
	return false;
}

static struct cpu_f80 addsub(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b, int negb)
{
	struct unp ua = unpack(a), ub = unpack(b);
	struct cpu_f80 r;
	struct fmt f = fmt_ext(e);

	e->up = false;
	if (screen2(e, a, b, &ua, &ub, &r))
		return r;
	ub.sign ^= negb;
	if (ua.cls == F80_INF || ub.cls == F80_INF) {
		if (ua.cls == F80_INF && ub.cls == F80_INF && ua.sign != ub.sign)
			return invalid(e);
		return inf(ua.cls == F80_INF ? ua.sign : ub.sign);
	}
	if (ua.cls == F80_ZERO && ub.cls == F80_ZERO)
		return zero(ua.sign == ub.sign ? ua.sign : e->rc == F80_RD);
	if (ua.cls == F80_ZERO)
		return round_pack(e, &f, ub.sign, ub.exp, (u128)ub.sig << 64);
	if (ub.cls == F80_ZERO)
		return round_pack(e, &f, ua.sign, ua.exp, (u128)ua.sig << 64);

	if (ua.exp < ub.exp || (ua.exp == ub.exp && ua.sig < ub.sig)) {
		struct unp t = ua;
		ua = ub;
		ub = t;
	}
	/* integer bit at 126: room for the carry */
	u128 sa = (u128)ua.sig << 63, sb = shr_jam((u128)ub.sig << 63, (uint32_t)(ua.exp - ub.exp));
	u128 s;
	if (ua.sign == ub.sign) {
		s = sa + sb;
	} else {
		s = sa - sb;
		if (s == 0)
			return zero(e->rc == F80_RD);
	}
	return norm_round_pack(e, &f, ua.sign, ua.exp + 1, s);
}

struct cpu_f80 f80_add(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b)
{
	return addsub(e, a, b, 0);
}

struct cpu_f80 f80_sub(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b)
{
	return addsub(e, a, b, 1);
}

struct cpu_f80 f80_mul(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b)
{
	struct unp ua = unpack(a), ub = unpack(b);
	struct cpu_f80 r;
	struct fmt f = fmt_ext(e);
	int sign = ua.sign ^ ub.sign;

	e->up = false;
	if (screen2(e, a, b, &ua, &ub, &r))
		return r;
	if (ua.cls == F80_INF || ub.cls == F80_INF) {
		if (ua.cls == F80_ZERO || ub.cls == F80_ZERO)
			return invalid(e);
		return inf(sign);
	}
	if (ua.cls == F80_ZERO || ub.cls == F80_ZERO)
		return zero(sign);
	return norm_round_pack(e, &f, sign, ua.exp + ub.exp + 1, (u128)ua.sig * ub.sig);
}

struct cpu_f80 f80_div(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b)
{
	struct unp ua = unpack(a), ub = unpack(b);
	struct cpu_f80 r;
	struct fmt f = fmt_ext(e);
	int sign = ua.sign ^ ub.sign;

	e->up = false;
	/* x/0 is decided before denormal operands are reported */
	if (ub.cls == F80_ZERO && (ua.cls == F80_ZERO || is_finite_nz(&ua))) {
		if (ua.cls == F80_ZERO)
			return invalid(e);
		e->exc |= F80_ZE;
		return inf(sign);
	}
	if (screen2(e, a, b, &ua, &ub, &r))
		return r;
	if (ua.cls == F80_INF) {
		if (ub.cls == F80_INF)
			return invalid(e);
		return inf(sign);
	}
	if (ub.cls == F80_INF)
		return zero(sign);
	if (ub.cls == F80_ZERO) {
		if (ua.cls == F80_ZERO)
			return invalid(e);
		e->exc |= F80_ZE;
		return inf(sign);
	}
	if (ua.cls == F80_ZERO)
		return zero(sign);

	int32_t exp = ua.exp - ub.exp;
	u128 n;
	if (ua.sig >= ub.sig) {
		n = (u128)ua.sig << 63;
	} else {
		n = (u128)ua.sig << 64;
		exp--;
	}
	u128 q1 = n / ub.sig, r1 = n % ub.sig;
	u128 n2 = r1 << 64;
	u128 q2 = n2 / ub.sig, r2 = n2 % ub.sig;
	u128 q = (q1 << 64) | q2 | (r2 != 0);
	return round_pack(e, &f, sign, exp, q);
}

/* floor(sqrt(n)) for n < 2^128, with n - root^2 in *rem */
static uint64_t isqrt128(u128 n, u128 *rem)
{
	u128 res = 0, bit = (u128)1 << 126;

	while (bit > n)
		bit >>= 2;
	while (bit) {
		if (n >= res + bit) {
			n -= res + bit;
			res = (res >> 1) + bit;
		} else {
			res >>= 1;
		}
		bit >>= 2;
	}
	*rem = n;
	return (uint64_t)res;
}

struct cpu_f80 f80_sqrt(struct f80_env *e, struct cpu_f80 a)
{
	struct unp ua = unpack(a);
	struct fmt f = fmt_ext(e);

	e->up = false;
	if (ua.cls == F80_UNSUPPORTED)
		return invalid(e);
	if (is_nan(&ua))
		return nan_pick(e, a, a, &ua, &ua);
	if (ua.cls == F80_ZERO)
		return a;
	if (ua.sign)
		return invalid(e);
	if (ua.cls == F80_DENORMAL) {
		e->exc |= F80_DE;
		if (!(e->mask & F80_DE))
			return a;
	}
	if (ua.cls == F80_INF)
		return a;

	/* value = sig * 2^(exp-63); scale by 2^k so that exp-63-k is even and
	 * the root has its top bit at 63 */
	int k = (ua.exp & 1) ? 64 : 63;
	u128 rem;
	uint64_t root = isqrt128((u128)ua.sig << k, &rem);
	/* sqrt is irrational unless exact, so no exact halves: guard + sticky */
	u128 s = ((u128)root << 64) | ((u128)(rem > root) << 63) | (rem != 0);
	return round_pack(e, &f, 0, (ua.exp - 63 - k) / 2 + 63, s);
}

/* value = mag * 2^(exp-63) rounded to an integer magnitude (e <= 63) */
static uint64_t round_to_int(unsigned rc, int sign, int32_t exp, uint64_t sig, bool *inexact, bool *up)
{
	uint64_t ip, frac; /* frac: fraction with 0.5 at bit 63 */
	bool inc;

	if (exp >= 63) {
		ip = sig;
		frac = 0;
	} else if (exp >= 0) {
		ip = sig >> (63 - exp);
		frac = sig << (exp + 1);
	} else if (exp == -1) {
		ip = 0;
		frac = sig;
	} else {
		ip = 0;
		frac = (uint64_t)shr_jam(sig, (uint32_t)(-1 - exp));
		if (-1 - exp >= 64)
			frac = 1;
	}
	*inexact = frac != 0;
	switch (rc) {
	case F80_RN: inc = frac > (1ull << 63) || (frac == (1ull << 63) && (ip & 1)); break;
	case F80_RD: inc = sign && frac; break;
	case F80_RU: inc = !sign && frac; break;
	default: inc = false;
	}
	*up = inc;
	return ip + inc;
}

static struct cpu_f80 from_u64(int sign, uint64_t m)
{
	if (!m)
		return zero(sign);
	int lz = __builtin_clzll(m);
	return mk(sign, (unsigned)(63 - lz + EXT_BIAS), m << lz);
}

struct cpu_f80 f80_round_int(struct f80_env *e, struct cpu_f80 a)
{
	struct unp ua = unpack(a);
	bool inx, up;

	e->up = false;
	if (ua.cls == F80_UNSUPPORTED)
		return invalid(e);
	if (is_nan(&ua))
		return nan_pick(e, a, a, &ua, &ua);
	if (ua.cls == F80_ZERO || ua.cls == F80_INF)
		return a;
	if (ua.cls == F80_DENORMAL) {
		e->exc |= F80_DE;
		if (!(e->mask & F80_DE))
			return a;
	}
	if (ua.exp >= 63)
		return a;
	uint64_t m = round_to_int(e->rc, ua.sign, ua.exp, ua.sig, &inx, &up);
	if (inx)
		e->exc |= F80_PE;
	e->up = up;
	return from_u64(ua.sign, m);
}

struct cpu_f80 f80_from_i64(int64_t v)
{
	return from_u64(v < 0, v < 0 ? -(uint64_t)v : (uint64_t)v);
}

int64_t f80_to_int(struct f80_env *e, struct cpu_f80 a, unsigned bits, bool trunc)
{
	struct unp ua = unpack(a);
	int64_t indef = (int64_t)(~0ull << (bits - 1));
	bool inx, up;

	e->up = false;
	if (ua.cls == F80_ZERO)
		return 0;
	if (!is_finite_nz(&ua) || ua.exp > 63) {
		e->exc |= F80_IE;
		return indef;
	}
	uint64_t m = round_to_int(trunc ? F80_RZ : e->rc, ua.sign, ua.exp, ua.sig, &inx, &up);
	uint64_t lim = 1ull << (bits - 1);
	if (m > lim || (m == lim && !ua.sign)) {
		e->exc |= F80_IE;
		return indef;
	}
	if (inx)
		e->exc |= F80_PE;
	e->up = up;
	return ua.sign ? (int64_t)(0 - m) : (int64_t)m;
}

struct cpu_f80 f80_from_bcd(const uint8_t b[10])
{
	uint64_t v = 0;
	for (int k = 8; k >= 0; k--)
		v = v * 100 + (b[k] >> 4) * 10 + (b[k] & 15);
	return from_u64(b[9] >> 7, v);
}

void f80_to_bcd(struct f80_env *e, struct cpu_f80 a, uint8_t b[10])
{
	struct unp ua = unpack(a);
	bool inx = false, up = false;
	uint64_t m = 0;

	e->up = false;
	memset(b, 0, 10);
	if (is_finite_nz(&ua)) {
		if (ua.exp > 63)
			m = ~0ull;
		else
			m = round_to_int(e->rc, ua.sign, ua.exp, ua.sig, &inx, &up);
	}
	if (ua.cls == F80_INF || ua.cls == F80_UNSUPPORTED || is_nan(&ua) || m > 999999999999999999ull) {
		e->exc |= F80_IE;
		b[7] = 0xc0;
		b[8] = 0xff;
		b[9] = 0xff;
		return;
	}
	if (inx)
		e->exc |= F80_PE;
	e->up = up;
	for (int k = 0; k < 9; k++) {
		b[k] = (uint8_t)(m % 10);
		m /= 10;
		b[k] |= (uint8_t)((m % 10) << 4);
		m /= 10;
	}
	b[9] = ua.sign ? 0x80 : 0;
}

/* FPREM/FPREM1. The remainder is exact. For exponent differences of 64 or
 * more the x87 does a partial reduction, leaving an exponent difference
 * between 32 and 63 for the next round (C2 = 1). */
struct cpu_f80 f80_rem(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b, bool ieee, uint64_t *q, bool *partial)
{
	struct unp ua = unpack(a), ub = unpack(b);
	struct cpu_f80 r;

	*q = ~0ull;
	*partial = false;
	e->up = false;
	/* inf % y and x % 0 are invalid before denormals are looked at */
	if ((ua.cls == F80_INF && (ub.cls == F80_ZERO || is_finite_nz(&ub) || ub.cls == F80_INF)) ||
	    (ub.cls == F80_ZERO && (ua.cls == F80_ZERO || is_finite_nz(&ua))))
		return invalid(e);
	if (screen2(e, a, b, &ua, &ub, &r))
		return r;
	*q = 0;
	if (ua.cls == F80_ZERO || ub.cls == F80_INF) {
		if (ua.cls == F80_DENORMAL)
			return round_pack(e, &fmt_ext64, ua.sign, ua.exp, (u128)ua.sig << 64);
		return a;
	}

	int32_t d = ua.exp - ub.exp;
	if (d < -1 || (d == -1 && !ieee))
		return round_pack(e, &fmt_ext64, ua.sign, ua.exp, (u128)ua.sig << 64);

	u128 n, m;
	int32_t uexp; /* weight of bit 0 of the remainder */
	bool trunc = !ieee;
	if (d >= 64) {
		int32_t keep = 32 + (d & 31);
		/* divide by b * 2^(d - keep): keep+1 quotient bits */
		n = (u128)ua.sig << keep;
		m = ub.sig;
		uexp = ua.exp - 63 - keep;
		*partial = true;
		trunc = true;
	} else if (d >= 0) {
		n = (u128)ua.sig << d;
		m = ub.sig;
		uexp = ub.exp - 63;
	} else {
		n = ua.sig;
		m = (u128)ub.sig << 1;
		uexp = ua.exp - 63;
	}
	u128 qq = n / m, rr = n % m;
	int sign = ua.sign;
	if (!trunc && (rr * 2 > m || (rr * 2 == m && (qq & 1)))) {
		rr = m - rr;
		qq++;
		sign ^= 1;
	}
	*q = (uint64_t)qq & 7;
	if (rr == 0)
		return zero(ua.sign);
	return norm_round_pack(e, &fmt_ext64, sign, uexp + 127, rr);
}

struct cpu_f80 f80_scale(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b)
{
	struct unp ua = unpack(a), ub = unpack(b);
	struct cpu_f80 r;

	e->up = false;
	if (screen2(e, a, b, &ua, &ub, &r))
		return r;
	if (ub.cls == F80_INF) {
		if (!ub.sign) {
			if (ua.cls == F80_ZERO)
				return invalid(e);
			return inf(ua.sign);
		}
		if (ua.cls == F80_INF)
			return invalid(e);
		return zero(ua.sign);
	}
	if (ua.cls == F80_INF || ua.cls == F80_ZERO)
		return a;
	int32_t n = 0;
	if (ub.cls != F80_ZERO && ub.exp >= 0)
		n = ub.exp > 20 ? (1 << 20) : (int32_t)(ub.sig >> (63 - ub.exp));
	if (ub.sign)
		n = -n;
	return round_pack(e, &fmt_ext64, ua.sign, ua.exp + n, (u128)ua.sig << 64);
}

void f80_xtract(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 *exp, struct cpu_f80 *sig)
{
	struct unp ua = unpack(a);

	e->up = false;
	if (ua.cls == F80_UNSUPPORTED) {
		*exp = *sig = invalid(e);
		return;
	}
	if (is_nan(&ua)) {
		*exp = *sig = nan_pick(e, a, a, &ua, &ua);
		return;
	}
	if (ua.cls == F80_ZERO) {
		e->exc |= F80_ZE;
		*exp = inf(1);
		*sig = a;
		return;
	}
	if (ua.cls == F80_INF) {
		*exp = inf(0);
		*sig = a;
		return;
	}
	if (ua.cls == F80_DENORMAL)
		e->exc |= F80_DE;
	*exp = f80_from_i64(ua.exp);
	*sig = mk(ua.sign, EXT_BIAS, ua.sig);
}

int f80_compare(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b, bool quiet_cmp)
{
	struct unp ua = unpack(a), ub = unpack(b);

	e->up = false;
	if (ua.cls == F80_UNSUPPORTED || ub.cls == F80_UNSUPPORTED) {
		e->exc |= F80_IE;
		return 2;
	}
	if (is_nan(&ua) || is_nan(&ub)) {
		if (!quiet_cmp || ua.cls == F80_SNAN || ub.cls == F80_SNAN)
			e->exc |= F80_IE;
		return 2;
	}
	if (ua.cls == F80_DENORMAL || ub.cls == F80_DENORMAL || e->den_in)
		e->exc |= F80_DE;
	if (ua.cls == F80_ZERO && ub.cls == F80_ZERO)
		return 0;
	/* order as sign-magnitude keys */
	int sa = ua.cls == F80_ZERO ? 0 : ua.sign ? -1 : 1;
	int sb = ub.cls == F80_ZERO ? 0 : ub.sign ? -1 : 1;
	if (sa != sb)
		return sa < sb ? -1 : 1;
	int mag; /* |a| vs |b| */
	if (ua.cls == F80_INF || ub.cls == F80_INF)
		mag = (ua.cls == F80_INF) - (ub.cls == F80_INF);
	else if (ua.exp != ub.exp)
		mag = ua.exp < ub.exp ? -1 : 1;
	else
		mag = ua.sig < ub.sig ? -1 : ua.sig > ub.sig;
	return sa < 0 ? -mag : mag;
}

static struct cpu_f80 from_ieee(struct f80_env *e, uint64_t v, int fbits, int ebits)
{
	int sign = (int)(v >> (fbits + ebits));
	unsigned bexp = (unsigned)(v >> fbits) & ((1u << ebits) - 1);
	uint64_t frac = v & ((1ull << fbits) - 1);
	int bias = (1 << (ebits - 1)) - 1;

	if (bexp == (1u << ebits) - 1) {
		if (!frac)
			return inf(sign);
		struct cpu_f80 n = mk(sign, 0x7fff, (1ull << 63) | (frac << (63 - fbits)));
		if (e && !(frac >> (fbits - 1))) {
			e->exc |= F80_IE;
			n = quiet(n);
		}
		return n;
	}
	if (bexp == 0) {
		if (!frac)
			return zero(sign);
		if (e)
			e->exc |= F80_DE;
		int lz = __builtin_clzll(frac);
		/* frac * 2^(1 - bias - fbits) */
		return mk(sign, (unsigned)(63 - lz + 1 - bias - fbits + EXT_BIAS), frac << lz);
	}
	return mk(sign, bexp - (unsigned)bias + EXT_BIAS, (1ull << 63) | (frac << (63 - fbits)));
}

struct cpu_f80 f80_from_f32(struct f80_env *e, uint32_t v)
{
	return from_ieee(e, v, 23, 8);
}

struct cpu_f80 f80_from_f64(struct f80_env *e, uint64_t v)
{
	return from_ieee(e, v, 52, 11);
}

static uint64_t to_ieee(struct f80_env *e, struct cpu_f80 a, const struct fmt *f, int fbits, int ebits)
{
	struct unp ua = unpack(a);
	uint64_t sign = (uint64_t)ua.sign << (fbits + ebits);
	uint64_t emax = (1ull << ebits) - 1;
	int bias = (1 << (ebits - 1)) - 1;

	e->up = false;
	switch (ua.cls) {
	case F80_ZERO: return sign;
	case F80_INF: return sign | (emax << fbits);
	case F80_UNSUPPORTED:
		e->exc |= F80_IE;
		return (1ull << (fbits + ebits)) | (emax << fbits) | (1ull << (fbits - 1));
	case F80_SNAN:
		e->exc |= F80_IE;
		/* fall through */
	case F80_QNAN: return sign | (emax << fbits) | (1ull << (fbits - 1)) | ((a.mant << 1) >> (64 - fbits));
	default: break;
	}
	struct rres r = round_val(e, f, ua.sign, ua.exp, (u128)ua.sig << 64);
	if (r.kind)
		return sign | (emax << fbits);
	uint64_t top = (uint64_t)(r.sig >> (127 - fbits)); /* integer bit at fbits */
	if (!(top >> fbits))
		return sign | top; /* denormal */
	return sign | ((uint64_t)(r.exp + bias) << fbits) | (top & ((1ull << fbits) - 1));
}

uint32_t f80_to_f32(struct f80_env *e, struct cpu_f80 a)
{
	return (uint32_t)to_ieee(e, a, &fmt_f32, 23, 8);
}

uint64_t f80_to_f64(struct f80_env *e, struct cpu_f80 a)
{
	return to_ieee(e, a, &fmt_f64, 52, 11);
}

/* The constants are rounded per FCW.RC (correctly: from 128 bits). */
struct cpu_f80 f80_const(struct f80_env *e, uint64_t hi, uint64_t lo, int exp)
{
	struct f80_env t = *e;
	u128 s = ((u128)hi << 64) | lo;
	t.mask = 0x3f;
	return round_pack(&t, &fmt_ext64, 0, exp, s);
}

/* ---- Transcendentals ----
 * Evaluated as series in 128-bit integer arithmetic, with exact argument
 * reduction for FSIN/FCOS/FPTAN: the error before the final rounding is far
 * below an ulp, so results are (nearly always) correctly rounded and the
 * same on every host. x87 hardware is not correctly rounded here, so the
 * last bit can differ from a real CPU; for FSIN/FCOS/FPTAN of arguments
 * near multiples of pi/2 or large, where the x87 reduces with a 66-bit pi,
 * the difference can be larger. */

/* Intermediate results with 128-bit significands: value = sig * 2^(exp-127),
 * sig normalized (bit 127 set) or zero. */
struct x128 {
	int sign;
	int32_t exp;
	u128 sig;
};

static struct x128 x_from_unp(const struct unp *u)
{
	struct x128 r = {u->sign, u->exp, (u128)u->sig << 64};
	return r;
}

static struct x128 x_mul(struct x128 a, struct x128 b)
{
	struct x128 r = {a.sign ^ b.sign, 0, 0};
	if (!a.sig || !b.sig)
		return r;
	const u128 m64 = ~(uint64_t)0;
	uint64_t ah = (uint64_t)(a.sig >> 64), al = (uint64_t)a.sig;
	uint64_t bh = (uint64_t)(b.sig >> 64), bl = (uint64_t)b.sig;
	u128 hh = (u128)ah * bh, hl = (u128)ah * bl, lh = (u128)al * bh, ll = (u128)al * bl;
	u128 mid = (hl & m64) + (lh & m64) + (ll >> 64);
	u128 top = hh + (hl >> 64) + (lh >> 64) + (mid >> 64);
	top |= ((mid & m64) | (ll & m64)) != 0;
	int lz = clz128(top);
	r.sig = top << lz;
	r.exp = a.exp + b.exp + 1 - lz;
	return r;
}

static struct x128 x_div_small(struct x128 a, unsigned k)
{
	u128 q = a.sig / k;
	q |= (a.sig % k) != 0;
	if (!q)
		return a;
	int lz = clz128(q);
	a.sig = q << lz;
	a.exp -= lz;
	return a;
}

static struct x128 x_add(struct x128 a, struct x128 b)
{
	if (!b.sig)
		return a;
	if (!a.sig)
		return b;
	if (a.exp < b.exp || (a.exp == b.exp && a.sig < b.sig)) {
		struct x128 t = a;
		a = b;
		b = t;
	}
	u128 sa = shr_jam(a.sig, 1), sb = shr_jam(shr_jam(b.sig, 1), (uint32_t)(a.exp - b.exp));
	u128 sum = a.sign == b.sign ? sa + sb : sa - sb;
	struct x128 r = {a.sign, 0, 0};
	if (!sum)
		return r;
	int lz = clz128(sum);
	r.sig = sum << lz;
	r.exp = a.exp + 1 - lz;
	return r;
}

/* a / b by long division, 128 quotient bits plus sticky */
static struct x128 x_div(struct x128 a, struct x128 b)
{
	struct x128 r = {a.sign ^ b.sign, a.exp - b.exp, 0};
	u128 n = a.sig, d = b.sig, q = 1;

	if (!n)
		return r;
	if (n < d) {
		r.exp--;
		n <<= 1; /* the bit shifted out is 1: n*2 >= 2^128 > d */
	}
	n -= d;
	for (int k = 0; k < 127; k++) {
		bool top = n >> 127;
		n <<= 1;
		q <<= 1;
		if (top || n >= d) {
			n -= d;
			q |= 1;
		}
	}
	r.sig = q | (n != 0);
	return r;
}

static struct x128 x_from_int(int64_t v)
{
	struct x128 r = {v < 0, 0, 0};
	uint64_t m = v < 0 ? -(uint64_t)v : (uint64_t)v;
	if (m) {
		int lz = __builtin_clzll(m);
		r.sig = (u128)(m << lz) << 64;
		r.exp = 63 - lz;
	}
	return r;
}

/* 2*atanh(u) = ln((1+u)/(1-u)) = 2(u + u^3/3 + u^5/5 + ...), |u| < 0.18 */
static struct x128 x_ln_series(struct x128 u)
{
	struct x128 sum = u, t = u, u2 = x_mul(u, u);

	if (!u.sig)
		return u;
	for (unsigned k = 3; k < 200; k += 2) {
		t = x_mul(t, u2);
		struct x128 term = x_div_small(t, k);
		if (sum.exp - term.exp > 140)
			break;
		sum = x_add(sum, term);
	}
	sum.exp++;
	return sum;
}

static const struct x128 x_one = {0, 0, (u128)1 << 127};

static struct x128 x_neg(struct x128 a)
{
	a.sign ^= 1;
	return a;
}

static struct cpu_f80 x_round(struct f80_env *e, struct x128 a)
{
	if (!a.sig)
		return zero(a.sign);
	struct cpu_f80 r = round_pack(e, &fmt_ext64, a.sign, a.exp, a.sig);
	/* the result of a transcendental is inexact, so tiny means underflow */
	if (!(r.sexp & 0x7fff) && (e->mask & F80_UE))
		e->exc |= F80_UE | F80_PE;
	return r;
}

static bool screen1(struct f80_env *e, struct cpu_f80 a, const struct unp *u, struct cpu_f80 *r)
{
	if (u->cls == F80_UNSUPPORTED) {
		*r = invalid(e);
		return true;
	}
	if (is_nan(u)) {
		*r = nan_pick(e, a, a, u, u);
		return true;
	}
	if (u->cls == F80_DENORMAL) {
		e->exc |= F80_DE;
		if (!(e->mask & F80_DE)) {
			*r = a;
			return true;
		}
	}
	return false;
}

static const uint64_t LN2_HI = 0xb17217f7d1cf79abull, LN2_LO = 0xc9e3b39803f2f6afull;
static const uint64_t LOG2E_HI = 0xb8aa3b295c17f0bbull, LOG2E_LO = 0xbe87fed0691d3e88ull;

/* expm1(y) = y + y^2/2! + y^3/3! + ... for |y| < 1: 128 bits within 40 terms */
static struct x128 x_expm1(struct x128 y)
{
	struct x128 t = y, sum = y;

	for (unsigned n = 2; n <= 40 && t.sig; n++) {
		t = x_div_small(x_mul(t, y), n);
		if (sum.exp - t.exp > 140)
			break;
		sum = x_add(sum, t);
	}
	return sum;
}

struct cpu_f80 f80_f2xm1(struct f80_env *e, struct cpu_f80 a)
{
	struct unp u = unpack(a);
	struct cpu_f80 r;

	e->up = false;
	if (screen1(e, a, &u, &r))
		return r;
	if (u.cls == F80_ZERO)
		return a;
	if (u.cls == F80_INF)
		return u.sign ? mk(1, EXT_BIAS, 1ull << 63) : a;
	/* 2^x - 1 = expm1(x ln2). Beyond the defined domain |x| <= 1:
	 * x = n + f, 2^x - 1 = 2^n (expm1(f ln2) + 1) - 1 */
	struct x128 ln2 = {0, -1, ((u128)LN2_HI << 64) | LN2_LO}, f = x_from_unp(&u);
	int32_t n = 0;
	e->exc |= F80_PE;
	if (u.exp > 15) {
		n = u.sign ? -65536 : 65536; /* 2^x is 0 or infinite */
		f.sig = 0;
	} else if (u.exp >= 0) {
		bool inx, up;
		n = (int32_t)round_to_int(F80_RN, u.sign, u.exp, u.sig, &inx, &up);
		if (u.sign)
			n = -n;
		f = x_add(f, x_from_int(-n));
	}
	struct x128 em = x_expm1(x_mul(f, ln2));
	if (n) {
		em = x_add(em, x_one);
		em.exp += n;
		em = x_add(em, x_neg(x_one));
	}
	return x_round(e, em);
}

struct cpu_f80 f80_fyl2x(struct f80_env *e, struct cpu_f80 x, struct cpu_f80 y)
{
	struct unp ux = unpack(x), uy = unpack(y);
	struct cpu_f80 r;

	e->up = false;
	/* a negative or zero x is decided before denormals are looked at */
	if (!is_nan(&ux) && !is_nan(&uy) && ux.cls != F80_UNSUPPORTED && uy.cls != F80_UNSUPPORTED) {
		if (ux.sign && ux.cls != F80_ZERO)
			return invalid(e);
		if (ux.cls == F80_ZERO) {
			if (uy.cls == F80_ZERO)
				return invalid(e);
			if (uy.cls != F80_INF)
				e->exc |= F80_ZE;
			return inf(!uy.sign);
		}
	}
	if (screen2(e, x, y, &ux, &uy, &r))
		return r;
	if (ux.cls == F80_INF) {
		if (uy.cls == F80_ZERO)
			return invalid(e);
		return inf(uy.sign);
	}
	bool one = ux.exp == 0 && ux.sig == 1ull << 63;
	if (uy.cls == F80_INF) {
		if (one)
			return invalid(e);
		return inf(uy.sign ^ (ux.exp < 0));
	}
	if (uy.cls == F80_ZERO || one)
		return zero(uy.sign ^ (ux.exp < 0));
	e->exc |= F80_PE;
	/* x = m * 2^k with m in [sqrt(1/2), sqrt(2)): log2(x) = k + ln(m) * log2(e),
	 * ln(m) = 2 atanh((m-1)/(m+1)) */
	struct x128 log2e = {0, 0, ((u128)LOG2E_HI << 64) | LOG2E_LO};
	struct x128 m = x_from_unp(&ux);
	int32_t k = ux.exp;
	m.exp = 0;
	if (ux.sig > 0xb504f333f9de6484ull) {
		m.exp = -1;
		k++;
	}
	struct x128 mm1 = x_add(m, (struct x128){1, 0, x_one.sig});
	struct x128 lnm = x_ln_series(x_div(mm1, x_add(m, x_one)));
	struct x128 l2 = x_add(x_from_int(k), x_mul(lnm, log2e));
	return x_round(e, x_mul(x_from_unp(&uy), l2));
}

struct cpu_f80 f80_fyl2xp1(struct f80_env *e, struct cpu_f80 x, struct cpu_f80 y)
{
	struct unp ux = unpack(x), uy = unpack(y);
	struct cpu_f80 r;

	e->up = false;
	if (ux.cls == F80_INF && ux.sign && !is_nan(&uy) && uy.cls != F80_UNSUPPORTED)
		return invalid(e);
	if (screen2(e, x, y, &ux, &uy, &r))
		return r;
	if (ux.cls == F80_INF)
		return ux.sign ? invalid(e) : (uy.cls == F80_ZERO ? invalid(e) : inf(uy.sign));
	if (ux.cls == F80_ZERO) {
		if (uy.cls == F80_INF)
			return invalid(e);
		return zero(ux.sign ^ uy.sign);
	}
	if (ux.sign && ux.exp >= 0)
		return invalid(e); /* x <= -1 */
	if (uy.cls == F80_INF)
		return inf(uy.sign ^ ux.sign);
	if (uy.cls == F80_ZERO)
		return zero(ux.sign ^ uy.sign);
	e->exc |= F80_PE;
	/* log2(1+x) = ln(1+x) * log2(e), ln(1+x) = 2 atanh(x/(2+x)); for x
	 * outside the defined |x| < 1 - sqrt(2)/2 the series still converges */
	struct x128 log2e = {0, 0, ((u128)LOG2E_HI << 64) | LOG2E_LO};
	struct x128 xx = x_from_unp(&ux), two = {0, 1, (u128)1 << 127};
	struct x128 ln = x_ln_series(x_div(xx, x_add(two, xx)));
	return x_round(e, x_mul(x_mul(x_from_unp(&uy), ln), log2e));
}

/* ---- Circular functions in 128-bit arithmetic ---- */

static const struct x128 x_pio2 = {0, 0, ((u128)0xc90fdaa22168c234ull << 64) | 0xc4c6628b80dc1cd1ull};

/* atan(k/8), k = 1..8 */
static const struct x128 x_atan8[8] = {
	{0, -4, ((u128)0xfeadd4d5617b6e32ull << 64) | 0xc897989f3e888ef7ull},
	{0, -3, ((u128)0xfadbafc96406eb15ull << 64) | 0x6dc79ef5f7a217e5ull},
	{0, -2, ((u128)0xb7b0ca0f26f78473ull << 64) | 0x8aa32122dcfe4483ull},
	{0, -2, ((u128)0xed63382b0dda7b45ull << 64) | 0x6fe445ecbc3a8d03ull},
	{0, -1, ((u128)0x8f005d5ef7f59f9bull << 64) | 0x5c835e1665c43747ull},
	{0, -1, ((u128)0xa4bc7d1934f70924ull << 64) | 0x19a87f2a457dac9eull},
	{0, -1, ((u128)0xb8053e2bc2319e73ull << 64) | 0xcb2da55210a4443dull},
	{0, -1, ((u128)0xc90fdaa22168c234ull << 64) | 0xc4c6628b80dc1cd1ull},
};

/* bits [lo, lo+64) of a 320-bit number (5 limbs, little-endian) */
static uint64_t bits64(const uint64_t p[5], int lo)
{
	uint64_t v = 0;
	for (int k = 0; k < 64; k += 32) {
		int b = lo + k;
		if (b < 0 || b >= 320)
			continue;
		uint64_t w = p[b / 64] >> (b % 64);
		if (b % 64 && b / 64 < 4)
			w |= p[b / 64 + 1] << (64 - b % 64);
		v |= (w & 0xffffffffull) << k;
	}
	return v;
}

/* x = q*(pi/2) + r with |r| <= pi/4, for |x| < 2^63 (unp u, finite
 * nonzero): x * 2/pi with 256 bits of 2/pi (Payne-Hanek), so r keeps
 * about 128 correct bits however close x is to a multiple of pi/2. */
static struct x128 reduce_pio2(const struct unp *u, unsigned *q)
{
	static const uint64_t t[4] = {0xfe5163abdebbc561ull, 0xdb6295993c439041ull, 0xfc2757d1f534ddc0ull,
				      0xa2f9836e4e441529ull}; /* 2/pi * 2^256, little-endian */
	struct x128 r = x_from_unp(u);

	*q = 0;
	r.sign = 0;
	if (u->exp < -1 || (u->exp == -1 && u->sig < 0xc90fdaa22168c234ull))
		return r; /* already within pi/4 */
	uint64_t p[5] = {0};
	u128 carry = 0;
	for (int k = 0; k < 4; k++) {
		u128 m = (u128)u->sig * t[k] + carry;
		p[k] = (uint64_t)m;
		carry = m >> 64;
	}
	p[4] = (uint64_t)carry;
	/* p * 2^(exp - 319): the binary point is above bit 319 - exp */
	int pt = 319 - u->exp;
	uint64_t f2 = bits64(p, pt - 64), f1 = bits64(p, pt - 128), f0 = bits64(p, pt - 192);
	unsigned k = (unsigned)bits64(p, pt) & 3;
	int neg = 0;
	if (f2 >> 63) { /* fraction >= 1/2: round the quotient up */
		k++;
		neg = 1;
		f0 = ~f0;
		f1 = ~f1;
		f2 = ~f2;
		if (++f0 == 0 && ++f1 == 0)
			f2++;
	}
	*q = k & 3;
	/* the 192-bit fraction f2:f1:f0 (bit 191 weighs 1/2) to an x128 */
	int lz = f2 ? __builtin_clzll(f2) : f1 ? 64 + __builtin_clzll(f1) : 128 + __builtin_clzll(f0 | 1);
	u128 hi = ((u128)f2 << 64) | f1, lo = (u128)f0 << 64;
	u128 sig = lz == 0 ? hi : lz < 128 ? (hi << lz) | (lo >> (128 - lz)) : lo << (lz - 128);
	struct x128 f = {neg, -1 - lz, sig | (lz < 64 && (f0 << lz) != 0)};
	return x_mul(f, x_pio2);
}

/* sin (cosine false) or cos of |r| <= pi/4 by its Taylor series */
static struct x128 x_sincos_series(struct x128 r, bool cosine)
{
	struct x128 r2 = x_mul(r, r), t = cosine ? x_one : r, sum = t;

	if (!r.sig)
		return cosine ? x_one : r;
	for (unsigned n = cosine ? 1 : 2; n < 80; n += 2) {
		t = x_neg(x_div_small(x_mul(t, r2), n * (n + 1)));
		if (sum.exp - t.exp > 140)
			break;
		sum = x_add(sum, t);
	}
	return sum;
}

/* atan(t) for 0 <= t <= 1: atan(c) + atan((t-c)/(1+tc)), c = k/8 */
static struct x128 x_atan01(struct x128 t)
{
	unsigned k = 0;
	if (t.sig && t.exp >= -4 && t.exp <= 0)
		k = (unsigned)(((t.sig >> (123 - t.exp)) + 1) >> 1); /* round(8t) */
	if (k > 8)
		k = 8;
	struct x128 u = t, base = {0, 0, 0};
	if (k) {
		struct x128 c = x_div_small(x_from_int((int64_t)k), 8);
		u = x_div(x_add(t, x_neg(c)), x_add(x_one, x_mul(t, c)));
		base = x_atan8[k - 1];
	}
	struct x128 u2 = x_mul(u, u), term = u, sum = u;
	for (unsigned n = 3; n < 200 && u.sig; n += 2) {
		term = x_mul(term, u2);
		struct x128 d = x_div_small(term, n);
		if (sum.exp - d.exp > 140)
			break;
		sum = x_add(sum, ((n >> 1) & 1) ? x_neg(d) : d);
	}
	return x_add(base, sum);
}

struct cpu_f80 f80_fpatan(struct f80_env *e, struct cpu_f80 x, struct cpu_f80 y)
{
	struct unp ux = unpack(x), uy = unpack(y);
	struct cpu_f80 r;
	struct x128 pi = x_pio2, a;

	e->up = false;
	if (screen2(e, x, y, &ux, &uy, &r))
		return r;
	pi.exp++;
	if (uy.cls == F80_ZERO) {
		if (!ux.sign) /* atan2(+-0, x >= +0) = +-0: exact */
			return zero(uy.sign);
		a = pi;
	} else if (ux.cls == F80_ZERO) {
		a = x_pio2;
	} else if (uy.cls == F80_INF) {
		a = ux.cls != F80_INF ? x_pio2 : x_mul(x_pio2, x_div_small(x_from_int(ux.sign ? 3 : 1), 2));
	} else if (ux.cls == F80_INF) {
		if (!ux.sign)
			return zero(uy.sign);
		a = pi;
	} else {
		struct x128 ax = x_from_unp(&ux), ay = x_from_unp(&uy);
		ax.sign = ay.sign = 0;
		bool swap = uy.exp > ux.exp || (uy.exp == ux.exp && uy.sig > ux.sig);
		a = swap ? x_add(x_pio2, x_neg(x_atan01(x_div(ax, ay)))) : x_atan01(x_div(ay, ax));
		if (ux.sign)
			a = x_add(pi, x_neg(a));
	}
	a.sign = uy.sign;
	e->exc |= F80_PE;
	return x_round(e, a);
}

/* Common checks for FSIN/FCOS/FSINCOS/FPTAN. Returns 0 to compute, 1 when
 * *r holds the result, 2 when out of range. */
static int screen_trig(struct f80_env *e, struct cpu_f80 a, const struct unp *u, struct cpu_f80 *r)
{
	if (screen1(e, a, u, r))
		return 1;
	if (u->cls == F80_INF) {
		*r = invalid(e);
		return 1;
	}
	if (u->cls != F80_ZERO && u->exp >= 63)
		return 2;
	return 0;
}

/* sin and cos of a finite nonzero value: x = q*(pi/2) + r */
static void x_sincos(const struct unp *u, struct x128 *s, struct x128 *c)
{
	unsigned q;
	struct x128 r = reduce_pio2(u, &q);
	struct x128 sr = x_sincos_series(r, false), cr = x_sincos_series(r, true);

	switch (q) {
	case 0:
		*s = sr;
		*c = cr;
		break;
	case 1:
		*s = cr;
		*c = x_neg(sr);
		break;
	case 2:
		*s = x_neg(sr);
		*c = x_neg(cr);
		break;
	default:
		*s = x_neg(cr);
		*c = sr;
		break;
	}
	if (u->sign)
		*s = x_neg(*s);
}

bool f80_sincos(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 *s, struct cpu_f80 *c, unsigned which)
{
	struct unp u = unpack(a);
	struct cpu_f80 r;
	struct x128 xs, xc;

	e->up = false;
	switch (screen_trig(e, a, &u, &r)) {
	case 1: *s = *c = r; return true;
	case 2: return false;
	default: break;
	}
	if (u.cls == F80_ZERO) {
		*s = a;
		*c = mk(0, EXT_BIAS, 1ull << 63);
		return true;
	}
	x_sincos(&u, &xs, &xc);
	struct f80_env ec = *e;
	e->exc |= F80_PE;
	if (which & 1)
		*s = x_round(e, xs);
	if (which & 2) {
		ec.exc |= F80_PE;
		*c = x_round(&ec, xc);
		e->exc |= ec.exc;
		e->up = ec.up;
	}
	return true;
}

bool f80_tan(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 *t)
{
	struct unp u = unpack(a);
	struct cpu_f80 r;
	struct x128 xs, xc;

	e->up = false;
	switch (screen_trig(e, a, &u, &r)) {
	case 1: *t = r; return true;
	case 2: return false;
	default: break;
	}
	if (u.cls == F80_ZERO) {
		*t = a;
		return true;
	}
	x_sincos(&u, &xs, &xc);
	e->exc |= F80_PE;
	*t = x_round(e, x_div(xs, xc));
	return true;
}
