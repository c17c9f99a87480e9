/* SSE family, integer side: moves, shuffles, packed integer arithmetic
 * (MMX, SSE2, SSSE3, SSE4.1), MOVBE and CRC32, and the decoder entry point
 * for every SSE opcode (floating point is in sse_fp.c, string compares in
 * sse_str.c). */
#include "sse_impl.h"

/* ---- Lane helpers ---- */

static inline uint8_t sat_s8(int32_t v)
{
	return (uint8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
}

static inline uint8_t sat_u8(int32_t v)
{
	return (uint8_t)(v > 255 ? 255 : v < 0 ? 0 : v);
}

static inline uint16_t sat_s16(int32_t v)
{
	return (uint16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
}

static inline uint16_t sat_u16(int64_t v)
{
	return (uint16_t)(v > 65535 ? 65535 : v < 0 ? 0 : v);
}

/* A packed operation on n bytes (8: MMX, 16: XMM): d = d op s. */
typedef void (*vec_fn)(union cpu_xmm *d, const union cpu_xmm *s, unsigned n);

#define VEC_LANES(name, field, type, expr)                                                                             \
	static void name(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)                                         \
	{                                                                                                              \
		for (unsigned k = 0; k < n / sizeof(d->field[0]); k++) {                                               \
			type a = (type)d->field[k], b = (type)s->field[k];                                             \
			d->field[k] = (expr);                                                                          \
		}                                                                                                      \
	}

VEC_LANES(v_paddb, b, uint8_t, (uint8_t)(a + b))
VEC_LANES(v_paddw, w, uint16_t, (uint16_t)(a + b))
VEC_LANES(v_paddd, d, uint32_t, a + b)
VEC_LANES(v_paddq, q, uint64_t, a + b)
VEC_LANES(v_psubb, b, uint8_t, (uint8_t)(a - b))
VEC_LANES(v_psubw, w, uint16_t, (uint16_t)(a - b))
VEC_LANES(v_psubd, d, uint32_t, a - b)
VEC_LANES(v_psubq, q, uint64_t, a - b)
VEC_LANES(v_paddsb, b, int8_t, sat_s8(a + b))
VEC_LANES(v_paddsw, w, int16_t, sat_s16(a + b))
VEC_LANES(v_paddusb, b, uint8_t, sat_u8(a + b))
VEC_LANES(v_paddusw, w, uint16_t, sat_u16(a + b))
VEC_LANES(v_psubsb, b, int8_t, sat_s8(a - b))
VEC_LANES(v_psubsw, w, int16_t, sat_s16(a - b))
VEC_LANES(v_psubusb, b, uint8_t, sat_u8(a - b))
VEC_LANES(v_psubusw, w, uint16_t, sat_u16(a - b))
VEC_LANES(v_pmullw, w, uint16_t, (uint16_t)((uint32_t)a *b))
VEC_LANES(v_pmulhw, w, int16_t, (uint16_t)(((int32_t)a * b) >> 16))
VEC_LANES(v_pmulhuw, w, uint16_t, (uint16_t)(((uint32_t)a * b) >> 16))
VEC_LANES(v_pmulld, d, uint32_t, (uint32_t)((uint64_t)a *b))
VEC_LANES(v_pmulhrsw, w, int16_t, (uint16_t)((((int32_t)a * b >> 14) + 1) >> 1))
VEC_LANES(v_pavgb, b, uint8_t, (uint8_t)((a + b + 1) >> 1))
VEC_LANES(v_pavgw, w, uint16_t, (uint16_t)(((uint32_t)a + b + 1) >> 1))
VEC_LANES(v_pminub, b, uint8_t, a < b ? a : b)
VEC_LANES(v_pmaxub, b, uint8_t, a > b ? a : b)
VEC_LANES(v_pminsb, b, int8_t, (uint8_t)(a < b ? a : b))
VEC_LANES(v_pmaxsb, b, int8_t, (uint8_t)(a > b ? a : b))
VEC_LANES(v_pminuw, w, uint16_t, a < b ? a : b)
VEC_LANES(v_pmaxuw, w, uint16_t, a > b ? a : b)
VEC_LANES(v_pminsw, w, int16_t, (uint16_t)(a < b ? a : b))
VEC_LANES(v_pmaxsw, w, int16_t, (uint16_t)(a > b ? a : b))
VEC_LANES(v_pminud, d, uint32_t, a < b ? a : b)
VEC_LANES(v_pmaxud, d, uint32_t, a > b ? a : b)
VEC_LANES(v_pminsd, d, int32_t, (uint32_t)(a < b ? a : b))
VEC_LANES(v_pmaxsd, d, int32_t, (uint32_t)(a > b ? a : b))
VEC_LANES(v_pcmpeqb, b, uint8_t, a == b ? 0xff : 0)
VEC_LANES(v_pcmpeqw, w, uint16_t, a == b ? 0xffff : 0)
VEC_LANES(v_pcmpeqd, d, uint32_t, a == b ? ~0u : 0)
VEC_LANES(v_pcmpeqq, q, uint64_t, a == b ? ~0ull : 0)
VEC_LANES(v_pcmpgtb, b, int8_t, a > b ? 0xff : 0)
VEC_LANES(v_pcmpgtw, w, int16_t, a > b ? 0xffff : 0)
VEC_LANES(v_pcmpgtd, d, int32_t, a > b ? ~0u : 0)
VEC_LANES(v_pcmpgtq, q, int64_t, a > b ? ~0ull : 0)
VEC_LANES(v_pand, q, uint64_t, a &b)
VEC_LANES(v_pandn, q, uint64_t, ~a &b)
VEC_LANES(v_por, q, uint64_t, a | b)
VEC_LANES(v_pxor, q, uint64_t, a ^ b)
VEC_LANES(v_psignb, b, int8_t, (uint8_t)(b < 0 ? -a : b == 0 ? 0 : a))
VEC_LANES(v_psignw, w, int16_t, (uint16_t)(b < 0 ? -a : b == 0 ? 0 : a))
VEC_LANES(v_psignd, d, int32_t, (uint32_t)(b < 0 ? -(uint32_t)a : b == 0 ? 0 : (uint32_t)a))
VEC_LANES(v_pabsb, b, int8_t, (uint8_t)((void)a, b < 0 ? -b : b))
VEC_LANES(v_pabsw, w, int16_t, (uint16_t)((void)a, b < 0 ? -b : b))
VEC_LANES(v_pabsd, d, int32_t, ((void)a, b < 0 ? -(uint32_t)b : (uint32_t)b))

static void v_pmuludq(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	for (unsigned k = 0; k < n / 8; k++)
		d->q[k] = (uint64_t)d->d[2 * k] * s->d[2 * k];
}

static void v_pmuldq(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	for (unsigned k = 0; k < n / 8; k++)
		d->q[k] = (uint64_t)((int64_t)(int32_t)d->d[2 * k] * (int32_t)s->d[2 * k]);
}

static void v_pmaddwd(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	for (unsigned k = 0; k < n / 4; k++) {
		int32_t lo = (int16_t)d->w[2 * k] * (int16_t)s->w[2 * k];
		int32_t hi = (int16_t)d->w[2 * k + 1] * (int16_t)s->w[2 * k + 1];
		d->d[k] = (uint32_t)lo + (uint32_t)hi; /* 0x8000^2 * 2 wraps, as on hardware */
	}
}

static void v_pmaddubsw(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	for (unsigned k = 0; k < n / 2; k++) {
		int32_t v = d->b[2 * k] * (int8_t)s->b[2 * k] + d->b[2 * k + 1] * (int8_t)s->b[2 * k + 1];
		d->w[k] = sat_s16(v);
	}
}

static void v_psadbw(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	for (unsigned k = 0; k < n / 8; k++) {
		unsigned sum = 0;
		for (unsigned j = 0; j < 8; j++) {
			int x = d->b[8 * k + j] - s->b[8 * k + j];
			sum += (unsigned)(x < 0 ? -x : x);
		}
		d->q[k] = sum;
	}
}

/* Interleave the low (hi = 0) or high halves of d and s in lanes of sz bytes. */
static inline void unpack(union cpu_xmm *d, const union cpu_xmm *s, unsigned n, unsigned sz, bool hi)
{
	union cpu_xmm r;
	unsigned half = n / 2, base = hi ? half : 0;
	for (unsigned k = 0; k < half / sz; k++) {
		memcpy(&r.b[2 * k * sz], &d->b[base + k * sz], sz);
		memcpy(&r.b[(2 * k + 1) * sz], &s->b[base + k * sz], sz);
	}
	memcpy(d, &r, n);
}

#define VEC_UNPACK(name, sz, hi)                                                                                       \
	static void name(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)                                         \
	{                                                                                                              \
		unpack(d, s, n, sz, hi);                                                                               \
	}
VEC_UNPACK(v_punpcklbw, 1, false)
VEC_UNPACK(v_punpcklwd, 2, false)
VEC_UNPACK(v_punpckldq, 4, false)
VEC_UNPACK(v_punpcklqdq, 8, false)
VEC_UNPACK(v_punpckhbw, 1, true)
VEC_UNPACK(v_punpckhwd, 2, true)
VEC_UNPACK(v_punpckhdq, 4, true)
VEC_UNPACK(v_punpckhqdq, 8, true)

static void v_packsswb(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	union cpu_xmm r;
	unsigned m = n / 2;
	for (unsigned k = 0; k < m; k++) {
		r.b[k] = sat_s8((int16_t)d->w[k]);
		r.b[m + k] = sat_s8((int16_t)s->w[k]);
	}
	memcpy(d, &r, n);
}

static void v_packuswb(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	union cpu_xmm r;
	unsigned m = n / 2;
	for (unsigned k = 0; k < m; k++) {
		r.b[k] = sat_u8((int16_t)d->w[k]);
		r.b[m + k] = sat_u8((int16_t)s->w[k]);
	}
	memcpy(d, &r, n);
}

static void v_packssdw(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	union cpu_xmm r;
	unsigned m = n / 4;
	for (unsigned k = 0; k < m; k++) {
		r.w[k] = sat_s16((int32_t)d->d[k]);
		r.w[m + k] = sat_s16((int32_t)s->d[k]);
	}
	memcpy(d, &r, n);
}

static void v_packusdw(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	union cpu_xmm r;
	unsigned m = n / 4;
	for (unsigned k = 0; k < m; k++) {
		r.w[k] = sat_u16((int32_t)d->d[k]);
		r.w[m + k] = sat_u16((int32_t)s->d[k]);
	}
	memcpy(d, &r, n);
}

static void v_pshufb(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	union cpu_xmm r;
	for (unsigned k = 0; k < n; k++)
		r.b[k] = (s->b[k] & 0x80) ? 0 : d->b[s->b[k] & (n - 1)];
	memcpy(d, &r, n);
}

/* Horizontal add/sub on 16-bit lanes: kind 0 add, 1 add saturating,
 * 2 sub, 3 sub saturating. */
static inline void hop_w(union cpu_xmm *d, const union cpu_xmm *s, unsigned n, int kind)
{
	union cpu_xmm r;
	unsigned half = n / 4;
	for (unsigned k = 0; k < 2 * half; k++) {
		const union cpu_xmm *src = k < half ? d : s;
		unsigned j = k < half ? k : k - half;
		int32_t a = (int16_t)src->w[2 * j], b = (int16_t)src->w[2 * j + 1];
		int32_t v = kind < 2 ? a + b : a - b;
		r.w[k] = (kind & 1) ? sat_s16(v) : (uint16_t)v;
	}
	memcpy(d, &r, n);
}

static inline void hop_d(union cpu_xmm *d, const union cpu_xmm *s, unsigned n, bool sub)
{
	union cpu_xmm r;
	unsigned half = n / 8;
	for (unsigned k = 0; k < 2 * half; k++) {
		const union cpu_xmm *src = k < half ? d : s;
		unsigned j = k < half ? k : k - half;
		r.d[k] = sub ? src->d[2 * j] - src->d[2 * j + 1] : src->d[2 * j] + src->d[2 * j + 1];
	}
	memcpy(d, &r, n);
}

static void v_phaddw(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	hop_w(d, s, n, 0);
}
static void v_phaddsw(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	hop_w(d, s, n, 1);
}
static void v_phsubw(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	hop_w(d, s, n, 2);
}
static void v_phsubsw(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	hop_w(d, s, n, 3);
}
static void v_phaddd(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	hop_d(d, s, n, false);
}
static void v_phsubd(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	hop_d(d, s, n, true);
}

static void v_phminposuw(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)
{
	unsigned best = 0;
	(void)n;
	for (unsigned k = 1; k < 8; k++)
		if (s->w[k] < s->w[best])
			best = k;
	d->q[0] = s->w[best] | (uint64_t)best << 16;
	d->q[1] = 0;
}

/* Shifts: the count is the whole low quadword of the source; a count past
 * the lane width gives 0 (logical) or the sign fill (arithmetic). */
enum { SH_RL, SH_RA, SH_LL };

static void vshift(union cpu_xmm *d, unsigned n, unsigned sz, int kind, uint64_t cnt)
{
	unsigned bits = sz * 8;
	for (unsigned k = 0; k < n / sz; k++) {
		uint64_t v;
		switch (sz) {
		case 2: v = d->w[k]; break;
		case 4: v = d->d[k]; break;
		default: v = d->q[k]; break;
		}
		if (kind == SH_RA) {
			int64_t sv = sext(v, sz);
			v = (uint64_t)(sv >> (cnt >= bits ? bits - 1 : cnt));
		} else if (cnt >= bits) {
			v = 0;
		} else {
			v = kind == SH_RL ? v >> cnt : v << cnt;
		}
		switch (sz) {
		case 2: d->w[k] = (uint16_t)v; break;
		case 4: d->d[k] = (uint32_t)v; break;
		default: d->q[k] = v; break;
		}
	}
}

#define VEC_SHIFT(name, sz, kind)                                                                                      \
	static void name(union cpu_xmm *d, const union cpu_xmm *s, unsigned n)                                         \
	{                                                                                                              \
		vshift(d, n, sz, kind, s->q[0]);                                                                       \
	}
VEC_SHIFT(v_psrlw, 2, SH_RL)
VEC_SHIFT(v_psrld, 4, SH_RL)
VEC_SHIFT(v_psrlq, 8, SH_RL)
VEC_SHIFT(v_psraw, 2, SH_RA)
VEC_SHIFT(v_psrad, 4, SH_RA)
VEC_SHIFT(v_psllw, 2, SH_LL)
VEC_SHIFT(v_pslld, 4, SH_LL)
VEC_SHIFT(v_psllq, 8, SH_LL)

/* The table of two-operand packed integer operations. Index 0 is unused so
 * that a zero entry in an opcode map means "not a plain vector op". */
enum {
	V_NONE,
	V_PADDB,
	V_PADDW,
	V_PADDD,
	V_PADDQ,
	V_PSUBB,
	V_PSUBW,
	V_PSUBD,
	V_PSUBQ,
	V_PADDSB,
	V_PADDSW,
	V_PADDUSB,
	V_PADDUSW,
	V_PSUBSB,
	V_PSUBSW,
	V_PSUBUSB,
	V_PSUBUSW,
	V_PMULLW,
	V_PMULHW,
	V_PMULHUW,
	V_PMULLD,
	V_PMULHRSW,
	V_PMULUDQ,
	V_PMULDQ,
	V_PMADDWD,
	V_PMADDUBSW,
	V_PSADBW,
	V_PAVGB,
	V_PAVGW,
	V_PMINUB,
	V_PMAXUB,
	V_PMINSB,
	V_PMAXSB,
	V_PMINUW,
	V_PMAXUW,
	V_PMINSW,
	V_PMAXSW,
	V_PMINUD,
	V_PMAXUD,
	V_PMINSD,
	V_PMAXSD,
	V_PCMPEQB,
	V_PCMPEQW,
	V_PCMPEQD,
	V_PCMPEQQ,
	V_PCMPGTB,
	V_PCMPGTW,
	V_PCMPGTD,
	V_PCMPGTQ,
	V_PAND,
	V_PANDN,
	V_POR,
	V_PXOR,
	V_PSIGNB,
	V_PSIGNW,
	V_PSIGND,
	V_PABSB,
	V_PABSW,
	V_PABSD,
	V_PUNPCKLBW,
	V_PUNPCKLWD,
	V_PUNPCKLDQ,
	V_PUNPCKLQDQ,
	V_PUNPCKHBW,
	V_PUNPCKHWD,
	V_PUNPCKHDQ,
	V_PUNPCKHQDQ,
	V_PACKSSWB,
	V_PACKUSWB,
	V_PACKSSDW,
	V_PACKUSDW,
	V_PSHUFB,
	V_PHADDW,
	V_PHADDSW,
	V_PHSUBW,
	V_PHSUBSW,
	V_PHADDD,
	V_PHSUBD,
	V_PHMINPOSUW,
	V_PSRLW,
	V_PSRLD,
	V_PSRLQ,
	V_PSRAW,
	V_PSRAD,
	V_PSLLW,
	V_PSLLD,
	V_PSLLQ,
	V_COUNT
};

static const vec_fn vec_ops[V_COUNT] = {
	[V_PADDB] = v_paddb,	     [V_PADDW] = v_paddw,	    [V_PADDD] = v_paddd,
	[V_PADDQ] = v_paddq,	     [V_PSUBB] = v_psubb,	    [V_PSUBW] = v_psubw,
	[V_PSUBD] = v_psubd,	     [V_PSUBQ] = v_psubq,	    [V_PADDSB] = v_paddsb,
	[V_PADDSW] = v_paddsw,	     [V_PADDUSB] = v_paddusb,	    [V_PADDUSW] = v_paddusw,
	[V_PSUBSB] = v_psubsb,	     [V_PSUBSW] = v_psubsw,	    [V_PSUBUSB] = v_psubusb,
	[V_PSUBUSW] = v_psubusw,     [V_PMULLW] = v_pmullw,	    [V_PMULHW] = v_pmulhw,
	[V_PMULHUW] = v_pmulhuw,     [V_PMULLD] = v_pmulld,	    [V_PMULHRSW] = v_pmulhrsw,
	[V_PMULUDQ] = v_pmuludq,     [V_PMULDQ] = v_pmuldq,	    [V_PMADDWD] = v_pmaddwd,
	[V_PMADDUBSW] = v_pmaddubsw, [V_PSADBW] = v_psadbw,	    [V_PAVGB] = v_pavgb,
	[V_PAVGW] = v_pavgw,	     [V_PMINUB] = v_pminub,	    [V_PMAXUB] = v_pmaxub,
	[V_PMINSB] = v_pminsb,	     [V_PMAXSB] = v_pmaxsb,	    [V_PMINUW] = v_pminuw,
	[V_PMAXUW] = v_pmaxuw,	     [V_PMINSW] = v_pminsw,	    [V_PMAXSW] = v_pmaxsw,
	[V_PMINUD] = v_pminud,	     [V_PMAXUD] = v_pmaxud,	    [V_PMINSD] = v_pminsd,
	[V_PMAXSD] = v_pmaxsd,	     [V_PCMPEQB] = v_pcmpeqb,	    [V_PCMPEQW] = v_pcmpeqw,
	[V_PCMPEQD] = v_pcmpeqd,     [V_PCMPEQQ] = v_pcmpeqq,	    [V_PCMPGTB] = v_pcmpgtb,
	[V_PCMPGTW] = v_pcmpgtw,     [V_PCMPGTD] = v_pcmpgtd,	    [V_PCMPGTQ] = v_pcmpgtq,
	[V_PAND] = v_pand,	     [V_PANDN] = v_pandn,	    [V_POR] = v_por,
	[V_PXOR] = v_pxor,	     [V_PSIGNB] = v_psignb,	    [V_PSIGNW] = v_psignw,
	[V_PSIGND] = v_psignd,	     [V_PABSB] = v_pabsb,	    [V_PABSW] = v_pabsw,
	[V_PABSD] = v_pabsd,	     [V_PUNPCKLBW] = v_punpcklbw,   [V_PUNPCKLWD] = v_punpcklwd,
	[V_PUNPCKLDQ] = v_punpckldq, [V_PUNPCKLQDQ] = v_punpcklqdq, [V_PUNPCKHBW] = v_punpckhbw,
	[V_PUNPCKHWD] = v_punpckhwd, [V_PUNPCKHDQ] = v_punpckhdq,   [V_PUNPCKHQDQ] = v_punpckhqdq,
	[V_PACKSSWB] = v_packsswb,   [V_PACKUSWB] = v_packuswb,	    [V_PACKSSDW] = v_packssdw,
	[V_PACKUSDW] = v_packusdw,   [V_PSHUFB] = v_pshufb,	    [V_PHADDW] = v_phaddw,
	[V_PHADDSW] = v_phaddsw,     [V_PHSUBW] = v_phsubw,	    [V_PHSUBSW] = v_phsubsw,
	[V_PHADDD] = v_phaddd,	     [V_PHSUBD] = v_phsubd,	    [V_PHMINPOSUW] = v_phminposuw,
	[V_PSRLW] = v_psrlw,	     [V_PSRLD] = v_psrld,	    [V_PSRLQ] = v_psrlq,
	[V_PSRAW] = v_psraw,	     [V_PSRAD] = v_psrad,	    [V_PSLLW] = v_psllw,
	[V_PSLLD] = v_pslld,	     [V_PSLLQ] = v_psllq,
};

/* Two-operand packed integer op, xmm, xmm/m128 (aligned) */
static void op_vec_xmm(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	sse_src128(c, i, &s, true);
	vec_ops[i->aux](&c->s.xmm[i->reg], &s, 16);
	insn_next(c, i);
}

/* The same op on MMX registers: mm, mm/m64 (mm/m32 for PUNPCKL*, which
 * only use the low halves) */
static void op_vec_mmx(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	union cpu_xmm d, s;
	if (!i->mod3 && (i->aux == V_PUNPCKLBW || i->aux == V_PUNPCKLWD || i->aux == V_PUNPCKLDQ))
		s.q[0] = mem_read32(c, insn_ea(c, i));
	else
		s.q[0] = mmx_src(c, i);
	d.q[0] = mmx_read(c, i->reg);
	vec_ops[i->aux](&d, &s, 8);
	mmx_enter(c);
	mmx_write(c, i->reg, d.q[0]);
	insn_next(c, i);
}

/* Shift by immediate: 0F 71-73 /2 /4 /6 and 66 0F 73 /3 /7 (byte shifts). */
enum { SHI_RLW, SHI_RAW, SHI_LLW, SHI_RLD, SHI_RAD, SHI_LLD, SHI_RLQ, SHI_LLQ, SHI_RLDQ, SHI_LLDQ };

static void shift_imm(union cpu_xmm *d, unsigned n, unsigned kind, unsigned cnt)
{
	switch (kind) {
	case SHI_RLW: vshift(d, n, 2, SH_RL, cnt); break;
	case SHI_RAW: vshift(d, n, 2, SH_RA, cnt); break;
	case SHI_LLW: vshift(d, n, 2, SH_LL, cnt); break;
	case SHI_RLD: vshift(d, n, 4, SH_RL, cnt); break;
	case SHI_RAD: vshift(d, n, 4, SH_RA, cnt); break;
	case SHI_LLD: vshift(d, n, 4, SH_LL, cnt); break;
	case SHI_RLQ: vshift(d, n, 8, SH_RL, cnt); break;
	case SHI_LLQ: vshift(d, n, 8, SH_LL, cnt); break;
	case SHI_RLDQ: {
		union cpu_xmm r = {.q = {0, 0}};
		if (cnt < 16)
			memcpy(r.b, d->b + cnt, 16 - cnt);
		*d = r;
		break;
	}
	default: {
		union cpu_xmm r = {.q = {0, 0}};
		if (cnt < 16)
			memcpy(r.b + cnt, d->b, 16 - cnt);
		*d = r;
		break;
	}
	}
}

static void op_shift_imm_xmm(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	shift_imm(&c->s.xmm[i->rm], 16, i->aux, i->imm8);
	insn_next(c, i);
}

static void op_shift_imm_mmx(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	union cpu_xmm d;
	d.q[0] = mmx_read(c, i->rm);
	shift_imm(&d, 8, i->aux, i->imm8);
	mmx_enter(c);
	mmx_write(c, i->rm, d.q[0]);
	insn_next(c, i);
}

/* ---- Moves ---- */

/* 128-bit loads: aux 1 = aligned form */
static void op_mov_load128(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	sse_src128(c, i, &s, i->aux);
	c->s.xmm[i->reg] = s;
	insn_next(c, i);
}

static void op_mov_store128(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	if (i->mod3) {
		c->s.xmm[i->rm] = c->s.xmm[i->reg];
	} else {
		uint64_t a = insn_ea(c, i);
		if (i->aux && (a & 15))
			cpu_raise(c, EXC_GP, 0);
		mem_write_bytes(c, a, &c->s.xmm[i->reg], 16);
	}
	insn_next(c, i);
}

/* MOVSS/MOVSD load: register form merges the low lane, memory form zeroes
 * the rest. aux = lane size. */
static void op_movs_load(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm *d = &c->s.xmm[i->reg];
	if (i->mod3) {
		memcpy(d->b, c->s.xmm[i->rm].b, i->aux);
	} else {
		union cpu_xmm v = {.q = {0, 0}};
		mem_read_bytes(c, insn_ea(c, i), &v, i->aux);
		*d = v;
	}
	insn_next(c, i);
}

/* Store the low aux bytes of xmm[reg] to memory, or merge them into
 * xmm[rm] (MOVSS/MOVSD/MOVLPS/MOVLPD stores). */
static void op_movs_store(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	if (i->mod3)
		memcpy(c->s.xmm[i->rm].b, c->s.xmm[i->reg].b, i->aux);
	else
		mem_write_bytes(c, insn_ea(c, i), &c->s.xmm[i->reg], i->aux);
	insn_next(c, i);
}

/* MOVLPS/MOVLPD xmm, m64: replace the low quadword */
static void op_movlp_load(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	uint64_t v = mem_read64(c, insn_ea(c, i));
	c->s.xmm[i->reg].q[0] = v;
	insn_next(c, i);
}

/* MOVHPS/MOVHPD xmm, m64 */
static void op_movhp_load(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	uint64_t v = mem_read64(c, insn_ea(c, i));
	c->s.xmm[i->reg].q[1] = v;
	insn_next(c, i);
}

/* MOVHPS/MOVHPD m64, xmm */
static void op_movhp_store(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	mem_write64(c, insn_ea(c, i), c->s.xmm[i->reg].q[1]);
	insn_next(c, i);
}

static void op_movhlps(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	c->s.xmm[i->reg].q[0] = c->s.xmm[i->rm].q[1];
	insn_next(c, i);
}

static void op_movlhps(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	c->s.xmm[i->reg].q[1] = c->s.xmm[i->rm].q[0];
	insn_next(c, i);
}

/* MOVSLDUP (aux 0) / MOVSHDUP (aux 1) */
static void op_movsdup(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	sse_src128(c, i, &s, true);
	union cpu_xmm *d = &c->s.xmm[i->reg];
	for (unsigned k = 0; k < 4; k += 2)
		d->d[k] = d->d[k + 1] = s.d[k + i->aux];
	insn_next(c, i);
}

static void op_movddup(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	sse_src_low(c, i, &s, 8);
	c->s.xmm[i->reg].q[0] = c->s.xmm[i->reg].q[1] = s.q[0];
	insn_next(c, i);
}

/* UNPCKLPS/UNPCKHPS/UNPCKLPD/UNPCKHPD: aux = lane size | 0x80 for high */
static void op_unpckp(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	sse_src128(c, i, &s, true);
	unpack(&c->s.xmm[i->reg], &s, 16, i->aux & 0x7f, i->aux & 0x80);
	insn_next(c, i);
}

static void op_shufps(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s, r;
	sse_src128(c, i, &s, true);
	const union cpu_xmm *d = &c->s.xmm[i->reg];
	unsigned m = i->imm8;
	r.d[0] = d->d[m & 3];
	r.d[1] = d->d[(m >> 2) & 3];
	r.d[2] = s.d[(m >> 4) & 3];
	r.d[3] = s.d[(m >> 6) & 3];
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

static void op_shufpd(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s, r;
	sse_src128(c, i, &s, true);
	const union cpu_xmm *d = &c->s.xmm[i->reg];
	r.q[0] = d->q[i->imm8 & 1];
	r.q[1] = s.q[(i->imm8 >> 1) & 1];
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

/* MOVMSKPS (aux 4) / MOVMSKPD (aux 8) r32/64, xmm */
static void op_movmskp(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	const union cpu_xmm *s = &c->s.xmm[i->rm];
	uint64_t m = 0;
	for (unsigned k = 0; k < 16 / i->aux; k++)
		m |= (uint64_t)(s->b[k * i->aux + i->aux - 1] >> 7) << k;
	reg_write(c, i->reg, 8, m);
	insn_next(c, i);
}

static void op_pmovmskb_xmm(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	const union cpu_xmm *s = &c->s.xmm[i->rm];
	uint64_t m = 0;
	for (unsigned k = 0; k < 16; k++)
		m |= (uint64_t)(s->b[k] >> 7) << k;
	reg_write(c, i->reg, 8, m);
	insn_next(c, i);
}

static void op_pmovmskb_mmx(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	uint64_t s = mmx_read(c, i->rm), m = 0;
	for (unsigned k = 0; k < 8; k++)
		m |= ((s >> (8 * k + 7)) & 1) << k;
	mmx_enter(c);
	reg_write(c, i->reg, 8, m);
	insn_next(c, i);
}

/* GPR size of MOVD/MOVQ, PEXTRD/Q, PINSRD/Q: REX.W picks 64 bits (66 is
 * the mandatory prefix there, not an operand-size override). */
static inline unsigned gpr_sz(const struct insn *i)
{
	return (i->rex & 8) ? 8 : 4;
}

/* MOVD/MOVQ xmm, r/m32/64 */
static void op_movd_to_xmm(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	uint64_t v = rm_read(c, i, gpr_sz(i));
	c->s.xmm[i->reg].q[0] = v;
	c->s.xmm[i->reg].q[1] = 0;
	insn_next(c, i);
}

static void op_movd_to_mmx(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	uint64_t v = rm_read(c, i, gpr_sz(i));
	mmx_enter(c);
	mmx_write(c, i->reg, v);
	insn_next(c, i);
}

/* MOVD/MOVQ r/m32/64, xmm */
static void op_movd_from_xmm(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	rm_write(c, i, gpr_sz(i), c->s.xmm[i->reg].q[0]);
	insn_next(c, i);
}

static void op_movd_from_mmx(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	uint64_t v = mmx_read(c, i->reg);
	if (i->mod3) {
		mmx_enter(c);
		reg_write(c, i->rm, gpr_sz(i), v);
	} else {
		mem_write(c, insn_ea(c, i), gpr_sz(i), v);
		mmx_enter(c);
	}
	insn_next(c, i);
}

/* MOVQ xmm, xmm/m64 (F3 0F 7E): zero the upper quadword */
static void op_movq_load(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	sse_src_low(c, i, &s, 8);
	c->s.xmm[i->reg].q[0] = s.q[0];
	c->s.xmm[i->reg].q[1] = 0;
	insn_next(c, i);
}

/* MOVQ xmm/m64, xmm (66 0F D6) */
static void op_movq_store(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	uint64_t v = c->s.xmm[i->reg].q[0];
	if (i->mod3) {
		c->s.xmm[i->rm].q[0] = v;
		c->s.xmm[i->rm].q[1] = 0;
	} else {
		mem_write64(c, insn_ea(c, i), v);
	}
	insn_next(c, i);
}

/* MOVQ mm, mm/m64 */
static void op_movq_mmx_load(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	uint64_t v = mmx_src(c, i);
	mmx_enter(c);
	mmx_write(c, i->reg, v);
	insn_next(c, i);
}

/* MOVQ mm/m64, mm and MOVNTQ */
static void op_movq_mmx_store(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	uint64_t v = mmx_read(c, i->reg);
	if (i->mod3) {
		mmx_enter(c);
		mmx_write(c, i->rm, v);
	} else {
		mem_write64(c, insn_ea(c, i), v);
		mmx_enter(c);
	}
	insn_next(c, i);
}

static void op_movq2dq(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	mmx_check(c);
	uint64_t v = mmx_read(c, i->rm);
	mmx_enter(c);
	c->s.xmm[i->reg].q[0] = v;
	c->s.xmm[i->reg].q[1] = 0;
	insn_next(c, i);
}

static void op_movdq2q(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	mmx_check(c);
	mmx_enter(c);
	mmx_write(c, i->reg, c->s.xmm[i->rm].q[0]);
	insn_next(c, i);
}

static void op_emms(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	c->s.x87.ftw = 0xffff;
	insn_next(c, i);
}

/* PSHUFD (aux 0), PSHUFHW (aux 1), PSHUFLW (aux 2) */
static void op_pshuf_xmm(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s, r;
	sse_src128(c, i, &s, true);
	unsigned m = i->imm8;
	r = s;
	for (unsigned k = 0; k < 4; k++) {
		unsigned sel = (m >> (2 * k)) & 3;
		switch (i->aux) {
		case 0: r.d[k] = s.d[sel]; break;
		case 1: r.w[4 + k] = s.w[4 + sel]; break;
		default: r.w[k] = s.w[sel]; break;
		}
	}
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

static void op_pshufw(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	union cpu_xmm s, r;
	s.q[0] = mmx_src(c, i);
	for (unsigned k = 0; k < 4; k++)
		r.w[k] = s.w[(i->imm8 >> (2 * k)) & 3];
	mmx_enter(c);
	mmx_write(c, i->reg, r.q[0]);
	insn_next(c, i);
}

/* PINSRW mm/xmm, r32/m16, imm8 */
static void op_pinsrw_xmm(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	uint16_t v = (uint16_t)rm_read(c, i, 2);
	c->s.xmm[i->reg].w[i->imm8 & 7] = v;
	insn_next(c, i);
}

static void op_pinsrw_mmx(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	union cpu_xmm d;
	uint16_t v = (uint16_t)rm_read(c, i, 2);
	d.q[0] = mmx_read(c, i->reg);
	d.w[i->imm8 & 3] = v;
	mmx_enter(c);
	mmx_write(c, i->reg, d.q[0]);
	insn_next(c, i);
}

/* PEXTRW r32/64, mm/xmm, imm8 (register source only) */
static void op_pextrw_xmm(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	reg_write(c, i->reg, 8, c->s.xmm[i->rm].w[i->imm8 & 7]);
	insn_next(c, i);
}

static void op_pextrw_mmx(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	uint64_t v = (mmx_read(c, i->rm) >> (16 * (i->imm8 & 3))) & 0xffff;
	mmx_enter(c);
	reg_write(c, i->reg, 8, v);
	insn_next(c, i);
}

/* MASKMOVQ / MASKMOVDQU: byte-masked store to DS:rDI. The whole span is
 * checked before any byte is written, so a fault changes nothing; like the
 * hardware corral is tested against, it faults on an inaccessible span even
 * where the mask is clear (the SDM allows either). */
static void maskmov(struct cpu *c, const struct insn *i, const uint8_t *v, const uint8_t *m, unsigned n)
{
	uint64_t a = c->s.gpr[R_RDI];
	if (i->adsz == 4)
		a &= 0xffffffffu;
	if (i->seg == SEG_FS || i->seg == SEG_GS)
		a += c->s.seg[i->seg].base;
	mem_probe_write(c, a, n);
	for (unsigned k = 0; k < n; k++)
		if (m[k] & 0x80)
			mem_write8(c, a + k, v[k]);
}

static void op_maskmovdqu(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	maskmov(c, i, c->s.xmm[i->reg].b, c->s.xmm[i->rm].b, 16);
	insn_next(c, i);
}

static void op_maskmovq(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	union cpu_xmm v, m;
	v.q[0] = mmx_read(c, i->reg);
	m.q[0] = mmx_read(c, i->rm);
	maskmov(c, i, v.b, m.b, 8);
	mmx_enter(c);
	insn_next(c, i);
}

/* ---- SSSE3 / SSE4.1 specials ---- */

static void palignr(uint8_t *d, const uint8_t *s, unsigned n, unsigned imm)
{
	uint8_t cat[32], r[16];
	memcpy(cat, s, n);
	memcpy(cat + n, d, n);
	for (unsigned k = 0; k < n; k++)
		r[k] = imm + k < 2 * n ? cat[imm + k] : 0;
	memcpy(d, r, n);
}

static void op_palignr_xmm(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	sse_src128(c, i, &s, true);
	palignr(c->s.xmm[i->reg].b, s.b, 16, i->imm8);
	insn_next(c, i);
}

static void op_palignr_mmx(struct cpu *c, const struct insn *i)
{
	mmx_check(c);
	union cpu_xmm d, s;
	s.q[0] = mmx_src(c, i);
	d.q[0] = mmx_read(c, i->reg);
	palignr(d.b, s.b, 8, i->imm8);
	mmx_enter(c);
	mmx_write(c, i->reg, d.q[0]);
	insn_next(c, i);
}

/* PBLENDVB / BLENDVPS / BLENDVPD: select by the sign of each lane of XMM0;
 * aux = lane size */
static void op_blendv(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	sse_src128(c, i, &s, true);
	union cpu_xmm *d = &c->s.xmm[i->reg];
	const union cpu_xmm *m = &c->s.xmm[0];
	unsigned sz = i->aux;
	for (unsigned k = 0; k < 16; k += sz)
		if (m->b[k + sz - 1] & 0x80)
			memcpy(d->b + k, s.b + k, sz);
	insn_next(c, i);
}

/* BLENDPS / BLENDPD / PBLENDW: select by imm8 bits; aux = lane size */
static void op_blend_imm(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	sse_src128(c, i, &s, true);
	union cpu_xmm *d = &c->s.xmm[i->reg];
	unsigned sz = i->aux;
	for (unsigned k = 0; k < 16 / sz; k++)
		if ((i->imm8 >> k) & 1)
			memcpy(d->b + k * sz, s.b + k * sz, sz);
	insn_next(c, i);
}

static void op_ptest(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	sse_src128(c, i, &s, true);
	const union cpu_xmm *d = &c->s.xmm[i->reg];
	uint32_t f = 0;
	if (!((d->q[0] & s.q[0]) | (d->q[1] & s.q[1])))
		f |= FL_ZF;
	if (!((~d->q[0] & s.q[0]) | (~d->q[1] & s.q[1])))
		f |= FL_CF;
	flags_set(c, FL_ARITH, f);
	insn_next(c, i);
}

/* PMOVSX / PMOVZX: aux = (from size) | 8 for zero extension | (to size) << 4 */
static void op_pmovx(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	unsigned from = i->aux & 7, to = i->aux >> 4, cnt = 16 / to;
	bool zx = i->aux & 8;
	union cpu_xmm s, r;
	sse_src_low(c, i, &s, from * cnt);
	for (unsigned k = 0; k < cnt; k++) {
		uint64_t v;
		switch (from) {
		case 1: v = zx ? s.b[k] : (uint64_t)(int64_t)(int8_t)s.b[k]; break;
		case 2: v = zx ? s.w[k] : (uint64_t)(int64_t)(int16_t)s.w[k]; break;
		default: v = zx ? s.d[k] : (uint64_t)(int64_t)(int32_t)s.d[k]; break;
		}
		switch (to) {
		case 2: r.w[k] = (uint16_t)v; break;
		case 4: r.d[k] = (uint32_t)v; break;
		default: r.q[k] = v; break;
		}
	}
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

static void op_mpsadbw(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s, r;
	sse_src128(c, i, &s, true);
	const union cpu_xmm *d = &c->s.xmm[i->reg];
	unsigned so = (i->imm8 & 3) * 4, dof = ((i->imm8 >> 2) & 1) * 4;
	for (unsigned k = 0; k < 8; k++) {
		unsigned sum = 0;
		for (unsigned j = 0; j < 4; j++) {
			int x = d->b[dof + k + j] - s.b[so + j];
			sum += (unsigned)(x < 0 ? -x : x);
		}
		r.w[k] = (uint16_t)sum;
	}
	c->s.xmm[i->reg] = r;
	insn_next(c, i);
}

/* PEXTRB/PEXTRW/PEXTRD/PEXTRQ/EXTRACTPS r/m, xmm, imm8: aux = lane size
 * (0 for PEXTRD/Q: REX.W decides). A register destination gets the lane
 * zero-extended to 32 or 64 bits. */
static void op_pextr(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	unsigned sz = i->aux ? i->aux : gpr_sz(i);
	unsigned lane = i->imm8 & (16 / sz - 1);
	uint64_t v = 0;
	memcpy(&v, c->s.xmm[i->reg].b + lane * sz, sz);
	if (i->mod3)
		reg_write(c, i->rm, sz == 8 ? 8 : (i->rex & 8) ? 8 : 4, v);
	else
		mem_write(c, insn_ea(c, i), sz, v);
	insn_next(c, i);
}

/* PINSRB/PINSRD/PINSRQ xmm, r/m, imm8: aux = lane size (0: REX.W decides) */
static void op_pinsr(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	unsigned sz = i->aux ? i->aux : gpr_sz(i);
	unsigned lane = i->imm8 & (16 / sz - 1);
	uint64_t v;
	if (i->mod3)
		v = reg_read(c, i->rm, sz == 1 ? 4 : sz);
	else
		v = mem_read(c, insn_ea(c, i), sz);
	memcpy(c->s.xmm[i->reg].b + lane * sz, &v, sz);
	insn_next(c, i);
}

static void op_insertps(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	uint32_t v;
	unsigned imm = i->imm8;
	if (i->mod3) {
		v = c->s.xmm[i->rm].d[(imm >> 6) & 3];
	} else {
		v = mem_read32(c, insn_ea(c, i));
	}
	union cpu_xmm *d = &c->s.xmm[i->reg];
	d->d[(imm >> 4) & 3] = v;
	for (unsigned k = 0; k < 4; k++)
		if ((imm >> k) & 1)
			d->d[k] = 0;
	insn_next(c, i);
}

/* PCLMULQDQ: carry-less multiply of the selected quadwords */
static void op_pclmulqdq(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm s;
	sse_src128(c, i, &s, true);
	union cpu_xmm *d = &c->s.xmm[i->reg];
	uint64_t a = d->q[i->imm8 & 1], b = s.q[(i->imm8 >> 4) & 1], lo = 0, hi = 0;
	for (unsigned k = 0; k < 64; k++) {
		if ((b >> k) & 1) {
			lo ^= a << k;
			hi ^= k ? a >> (64 - k) : 0;
		}
	}
	d->q[0] = lo;
	d->q[1] = hi;
	insn_next(c, i);
}

/* ---- MOVBE and CRC32 (0F 38 F0/F1) ---- */

static void op_movbe_load(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	uint64_t v = mem_read(c, insn_ea(c, i), i->opsz);
	switch (i->opsz) {
	case 2: v = __builtin_bswap16((uint16_t)v); break;
	case 4: v = __builtin_bswap32((uint32_t)v); break;
	default: v = __builtin_bswap64(v); break;
	}
	reg_write(c, i->reg, i->opsz, v);
	insn_next(c, i);
}

static void op_movbe_store(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	uint64_t v = reg_read(c, i->reg, i->opsz);
	switch (i->opsz) {
	case 2: v = __builtin_bswap16((uint16_t)v); break;
	case 4: v = __builtin_bswap32((uint32_t)v); break;
	default: v = __builtin_bswap64(v); break;
	}
	mem_write(c, insn_ea(c, i), i->opsz, v);
	insn_next(c, i);
}

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as SSE4.2 CRC32 */
static uint32_t crc32c_table[256];

__attribute__((constructor)) static void crc32c_init(void)
{
	for (unsigned n = 0; n < 256; n++) {
		uint32_t r = n;
		for (int k = 0; k < 8; k++)
			r = (r >> 1) ^ (0x82F63B78u & (0u - (r & 1)));
		crc32c_table[n] = r;
	}
}

static void op_crc32(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	unsigned sz = i->aux;
	uint64_t v;
	if (i->mod3)
		v = reg_read(c, sz == 1 ? sse_byte_reg(i, i->rm) : i->rm, sz);
	else
		v = mem_read(c, insn_ea(c, i), sz);
	uint32_t crc = (uint32_t)c->s.gpr[i->reg];
	for (unsigned k = 0; k < sz; k++)
		crc = crc32c_table[(crc ^ (uint8_t)(v >> (8 * k))) & 0xff] ^ (crc >> 8);
	/* The destination is r32 or r64; either way the upper half becomes 0. */
	reg_write(c, i->reg, 4, crc);
	insn_next(c, i);
}

void sse_sys_check(struct cpu *c)
{
	if ((c->s.cr0 & CR0_EM_BIT) || !(c->s.cr4 & CR4_OSFXSR_BIT))
		cpu_raise(c, EXC_UD, 0);
	if (c->s.cr0 & CR0_TS_BIT)
		cpu_raise(c, EXC_NM, 0);
}

/* ---- Decoding ---- */

/* Plain vector ops of map 0F, by opcode; xmm form with 66, MMX without a
 * prefix (unless listed in xmm_only). */
static const uint8_t vec_0f[256] = {
	[0x60] = V_PUNPCKLBW, [0x61] = V_PUNPCKLWD, [0x62] = V_PUNPCKLDQ,  [0x63] = V_PACKSSWB,	  [0x64] = V_PCMPGTB,
	[0x65] = V_PCMPGTW,   [0x66] = V_PCMPGTD,   [0x67] = V_PACKUSWB,   [0x68] = V_PUNPCKHBW,  [0x69] = V_PUNPCKHWD,
	[0x6a] = V_PUNPCKHDQ, [0x6b] = V_PACKSSDW,  [0x6c] = V_PUNPCKLQDQ, [0x6d] = V_PUNPCKHQDQ, [0x74] = V_PCMPEQB,
	[0x75] = V_PCMPEQW,   [0x76] = V_PCMPEQD,   [0xd1] = V_PSRLW,	   [0xd2] = V_PSRLD,	  [0xd3] = V_PSRLQ,
	[0xd4] = V_PADDQ,     [0xd5] = V_PMULLW,    [0xd8] = V_PSUBUSB,	   [0xd9] = V_PSUBUSW,	  [0xda] = V_PMINUB,
	[0xdb] = V_PAND,      [0xdc] = V_PADDUSB,   [0xdd] = V_PADDUSW,	   [0xde] = V_PMAXUB,	  [0xdf] = V_PANDN,
	[0xe0] = V_PAVGB,     [0xe1] = V_PSRAW,	    [0xe2] = V_PSRAD,	   [0xe3] = V_PAVGW,	  [0xe4] = V_PMULHUW,
	[0xe5] = V_PMULHW,    [0xe8] = V_PSUBSB,    [0xe9] = V_PSUBSW,	   [0xea] = V_PMINSW,	  [0xeb] = V_POR,
	[0xec] = V_PADDSB,    [0xed] = V_PADDSW,    [0xee] = V_PMAXSW,	   [0xef] = V_PXOR,	  [0xf1] = V_PSLLW,
	[0xf2] = V_PSLLD,     [0xf3] = V_PSLLQ,	    [0xf4] = V_PMULUDQ,	   [0xf5] = V_PMADDWD,	  [0xf6] = V_PSADBW,
	[0xf8] = V_PSUBB,     [0xf9] = V_PSUBW,	    [0xfa] = V_PSUBD,	   [0xfb] = V_PSUBQ,	  [0xfc] = V_PADDB,
	[0xfd] = V_PADDW,     [0xfe] = V_PADDD,
};

/* Plain vector ops of map 0F38 (SSSE3 ones also have MMX forms: < 0x20) */
static const uint8_t vec_0f38[0x42] = {
	[0x00] = V_PSHUFB, [0x01] = V_PHADDW,	[0x02] = V_PHADDD,   [0x03] = V_PHADDSW,    [0x04] = V_PMADDUBSW,
	[0x05] = V_PHSUBW, [0x06] = V_PHSUBD,	[0x07] = V_PHSUBSW,  [0x08] = V_PSIGNB,	    [0x09] = V_PSIGNW,
	[0x0a] = V_PSIGND, [0x0b] = V_PMULHRSW, [0x1c] = V_PABSB,    [0x1d] = V_PABSW,	    [0x1e] = V_PABSD,
	[0x28] = V_PMULDQ, [0x29] = V_PCMPEQQ,	[0x2b] = V_PACKUSDW, [0x37] = V_PCMPGTQ,    [0x38] = V_PMINSB,
	[0x39] = V_PMINSD, [0x3a] = V_PMINUW,	[0x3b] = V_PMINUD,   [0x3c] = V_PMAXSB,	    [0x3d] = V_PMAXSD,
	[0x3e] = V_PMAXUW, [0x3f] = V_PMAXUD,	[0x40] = V_PMULLD,   [0x41] = V_PHMINPOSUW,
};

static inline int set_fn(struct insn *i, insn_fn fn, unsigned aux)
{
	i->fn = fn;
	i->aux = (uint8_t)aux;
	return 0;
}

static inline int ud(struct insn *i)
{
	i->fn = op_ud;
	return 0;
}

/* Register-only (reg = 1) or memory-only (reg = 0) forms */
#define NEED_REG(i)                                                                                                    \
	do {                                                                                                           \
		if (!(i)->mod3)                                                                                        \
			return ud(i);                                                                                  \
	} while (0)
#define NEED_MEM(i)                                                                                                    \
	do {                                                                                                           \
		if ((i)->mod3)                                                                                         \
			return ud(i);                                                                                  \
	} while (0)

static int decode_vec(struct insn *i, unsigned v, bool mmx_ok)
{
	if (i->pfx == PFX_66)
		return set_fn(i, op_vec_xmm, v);
	if (i->pfx == PFX_NONE && mmx_ok)
		return set_fn(i, op_vec_mmx, v);
	return ud(i);
}

static int decode_0f(struct insn *i)
{
	unsigned op = i->op, p = i->pfx;

	if (vec_0f[op])
		return decode_vec(i, vec_0f[op], op != 0x6c && op != 0x6d);

	switch (op) {
	case 0x10: /* MOVUPS/MOVUPD/MOVSS/MOVSD load */
		if (p == PFX_F3)
			return set_fn(i, op_movs_load, 4);
		if (p == PFX_F2)
			return set_fn(i, op_movs_load, 8);
		return set_fn(i, op_mov_load128, 0);
	case 0x11:
		if (p == PFX_F3)
			return set_fn(i, op_movs_store, 4);
		if (p == PFX_F2)
			return set_fn(i, op_movs_store, 8);
		return set_fn(i, op_mov_store128, 0);
	case 0x12:
		if (p == PFX_F3)
			return set_fn(i, op_movsdup, 0);
		if (p == PFX_F2)
			return set_fn(i, op_movddup, 0);
		if (i->mod3)
			return p == PFX_NONE ? set_fn(i, op_movhlps, 0) : ud(i);
		return set_fn(i, op_movlp_load, 0);
	case 0x13:
		if (p == PFX_F3 || p == PFX_F2)
			return ud(i);
		NEED_MEM(i);
		return set_fn(i, op_movs_store, 8);
	case 0x14:
	case 0x15:
		if (p == PFX_F3 || p == PFX_F2)
			return ud(i);
		return set_fn(i, op_unpckp, (p == PFX_66 ? 8 : 4) | (op == 0x15 ? 0x80 : 0));
	case 0x16:
		if (p == PFX_F3)
			return set_fn(i, op_movsdup, 1);
		if (p == PFX_F2)
			return ud(i);
		if (i->mod3)
			return p == PFX_NONE ? set_fn(i, op_movlhps, 0) : ud(i);
		return set_fn(i, op_movhp_load, 0);
	case 0x17:
		if (p == PFX_F3 || p == PFX_F2)
			return ud(i);
		NEED_MEM(i);
		return set_fn(i, op_movhp_store, 0);
	case 0x28:
	case 0x29:
		if (p == PFX_F3 || p == PFX_F2)
			return ud(i);
		return set_fn(i, op == 0x28 ? op_mov_load128 : op_mov_store128, 1);
	case 0x2b: /* MOVNTPS/MOVNTPD */
		if (p == PFX_F3 || p == PFX_F2)
			return ud(i);
		NEED_MEM(i);
		return set_fn(i, op_mov_store128, 1);
	case 0x50:
		if (p == PFX_F3 || p == PFX_F2)
			return ud(i);
		NEED_REG(i);
		return set_fn(i, op_movmskp, p == PFX_66 ? 8 : 4);
	case 0x54:
	case 0x55:
	case 0x56:
	case 0x57: { /* ANDPS ANDNPS ORPS XORPS (+PD) */
		static const uint8_t logic[4] = {V_PAND, V_PANDN, V_POR, V_PXOR};
		if (p == PFX_F3 || p == PFX_F2)
			return ud(i);
		return set_fn(i, op_vec_xmm, logic[op - 0x54]);
	}
	case 0x6e:
		if (p == PFX_66)
			return set_fn(i, op_movd_to_xmm, 0);
		return p == PFX_NONE ? set_fn(i, op_movd_to_mmx, 0) : ud(i);
	case 0x6f:
		if (p == PFX_66)
			return set_fn(i, op_mov_load128, 1);
		if (p == PFX_F3)
			return set_fn(i, op_mov_load128, 0);
		return p == PFX_NONE ? set_fn(i, op_movq_mmx_load, 0) : ud(i);
	case 0x70:
		if (p == PFX_NONE)
			return set_fn(i, op_pshufw, 0);
		return set_fn(i, op_pshuf_xmm, p == PFX_66 ? 0 : p == PFX_F3 ? 1 : 2);
	case 0x71:
	case 0x72:
	case 0x73: {
		/* reg field -> kind; 0xff = invalid */
		static const uint8_t kinds[3][8] = {
			{0xff, 0xff, SHI_RLW, 0xff, SHI_RAW, 0xff, SHI_LLW, 0xff},
			{0xff, 0xff, SHI_RLD, 0xff, SHI_RAD, 0xff, SHI_LLD, 0xff},
			{0xff, 0xff, SHI_RLQ, SHI_RLDQ, 0xff, 0xff, SHI_LLQ, SHI_LLDQ},
		};
		unsigned k = kinds[op - 0x71][(i->modrm >> 3) & 7];
		if (!i->mod3 || k == 0xff || (p != PFX_NONE && p != PFX_66))
			return ud(i);
		if (p == PFX_NONE)
			return (k == SHI_RLDQ || k == SHI_LLDQ) ? ud(i) : set_fn(i, op_shift_imm_mmx, k);
		return set_fn(i, op_shift_imm_xmm, k);
	}
	case 0x77: return p == PFX_NONE ? set_fn(i, op_emms, 0) : ud(i);
	case 0x7e:
		if (p == PFX_66)
			return set_fn(i, op_movd_from_xmm, 0);
		if (p == PFX_F3)
			return set_fn(i, op_movq_load, 0);
		return p == PFX_NONE ? set_fn(i, op_movd_from_mmx, 0) : ud(i);
	case 0x7f:
		if (p == PFX_66)
			return set_fn(i, op_mov_store128, 1);
		if (p == PFX_F3)
			return set_fn(i, op_mov_store128, 0);
		return p == PFX_NONE ? set_fn(i, op_movq_mmx_store, 0) : ud(i);
	case 0xc4:
		if (p == PFX_66)
			return set_fn(i, op_pinsrw_xmm, 0);
		return p == PFX_NONE ? set_fn(i, op_pinsrw_mmx, 0) : ud(i);
	case 0xc5:
		NEED_REG(i);
		if (p == PFX_66)
			return set_fn(i, op_pextrw_xmm, 0);
		return p == PFX_NONE ? set_fn(i, op_pextrw_mmx, 0) : ud(i);
	case 0xc6:
		if (p == PFX_F3 || p == PFX_F2)
			return ud(i);
		return set_fn(i, p == PFX_66 ? op_shufpd : op_shufps, 0);
	case 0xd6:
		if (p == PFX_66)
			return set_fn(i, op_movq_store, 0);
		NEED_REG(i);
		if (p == PFX_F3)
			return set_fn(i, op_movq2dq, 0);
		return p == PFX_F2 ? set_fn(i, op_movdq2q, 0) : ud(i);
	case 0xd7:
		NEED_REG(i);
		if (p == PFX_66)
			return set_fn(i, op_pmovmskb_xmm, 0);
		return p == PFX_NONE ? set_fn(i, op_pmovmskb_mmx, 0) : ud(i);
	case 0xe7: /* MOVNTQ / MOVNTDQ */
		NEED_MEM(i);
		if (p == PFX_66)
			return set_fn(i, op_mov_store128, 1);
		return p == PFX_NONE ? set_fn(i, op_movq_mmx_store, 0) : ud(i);
	case 0xf0: /* LDDQU */ NEED_MEM(i); return p == PFX_F2 ? set_fn(i, op_mov_load128, 0) : ud(i);
	case 0xf7:
		NEED_REG(i);
		if (p == PFX_66)
			return set_fn(i, op_maskmovdqu, 0);
		return p == PFX_NONE ? set_fn(i, op_maskmovq, 0) : ud(i);
	}
	if ((op >= 0x10 && op <= 0x17) || (op >= 0x28 && op <= 0x2f) || (op >= 0x50 && op <= 0x7f) || op == 0xc2 ||
	    (op >= 0xc4 && op <= 0xc6) || op >= 0xd0)
		return ud(i);
	return -1;
}

static int decode_0f38(struct insn *i)
{
	unsigned op = i->op, p = i->pfx;

	if (op < sizeof(vec_0f38) && vec_0f38[op])
		return decode_vec(i, vec_0f38[op], op < 0x20);

	switch (op) {
	case 0x10: return p == PFX_66 ? set_fn(i, op_blendv, 1) : ud(i);
	case 0x14: return p == PFX_66 ? set_fn(i, op_blendv, 4) : ud(i);
	case 0x15: return p == PFX_66 ? set_fn(i, op_blendv, 8) : ud(i);
	case 0x17: return p == PFX_66 ? set_fn(i, op_ptest, 0) : ud(i);
	case 0x20:
	case 0x21:
	case 0x22:
	case 0x23:
	case 0x24:
	case 0x25:
	case 0x30:
	case 0x31:
	case 0x32:
	case 0x33:
	case 0x34:
	case 0x35: {
		static const uint8_t sizes[6] = {0x21, 0x41, 0x81, 0x42, 0x82, 0x84};
		if (p != PFX_66)
			return ud(i);
		return set_fn(i, op_pmovx, sizes[op & 7] | (op & 0x10 ? 8 : 0));
	}
	case 0x2a: /* MOVNTDQA */ NEED_MEM(i); return p == PFX_66 ? set_fn(i, op_mov_load128, 1) : ud(i);
	case 0xf0:
	case 0xf1:
		if (p == PFX_F2) {
			unsigned sz = op == 0xf0 ? 1 : i->opsz;
			return set_fn(i, op_crc32, sz);
		}
		if (p == PFX_F3)
			return ud(i);
		/* MOVBE: memory operand only; 66 makes it 16-bit */
		NEED_MEM(i);
		return set_fn(i, op == 0xf0 ? op_movbe_load : op_movbe_store, 0);
	}
	return ud(i);
}

static int decode_0f3a(struct insn *i)
{
	unsigned op = i->op, p = i->pfx;

	if (op == 0x0f) {
		if (p == PFX_66)
			return set_fn(i, op_palignr_xmm, 0);
		return p == PFX_NONE ? set_fn(i, op_palignr_mmx, 0) : ud(i);
	}
	if (p != PFX_66)
		return ud(i);
	switch (op) {
	case 0x0c: return set_fn(i, op_blend_imm, 4);
	case 0x0d: return set_fn(i, op_blend_imm, 8);
	case 0x0e: return set_fn(i, op_blend_imm, 2);
	case 0x14: return set_fn(i, op_pextr, 1);
	case 0x15: return set_fn(i, op_pextr, 2);
	case 0x16: return set_fn(i, op_pextr, 0);
	case 0x17: /* EXTRACTPS: always a dword */ return set_fn(i, op_pextr, 4);
	case 0x20: return set_fn(i, op_pinsr, 1);
	case 0x21: return set_fn(i, op_insertps, 0);
	case 0x22: return set_fn(i, op_pinsr, 0);
	case 0x42: return set_fn(i, op_mpsadbw, 0);
	case 0x44: return set_fn(i, op_pclmulqdq, 0);
	}
	return ud(i);
}

enum sse_form sse_form_of(const struct insn *i)
{
	insn_fn f = i->fn;
	if (f == op_vec_xmm)
		return SSE_FORM_VEC;
	if (f == op_mov_load128)
		return SSE_FORM_LOAD128;
	if (f == op_mov_store128)
		return SSE_FORM_STORE128;
	if (f == op_pshuf_xmm)
		return SSE_FORM_PSHUF;
	if (f == op_pmovmskb_xmm)
		return SSE_FORM_PMOVMSKB;
	if (f == op_shift_imm_xmm)
		return SSE_FORM_SHIFT_IMM;
	if (f == op_movd_to_xmm)
		return SSE_FORM_MOVD_TO;
	return SSE_FORM_OTHER;
}

int sse_decode(struct insn *i)
{
	int r;

	if (i->map != MAP_0F && i->map != MAP_0F38 && i->map != MAP_0F3A)
		return -1;
	r = sse_fp_decode(i);
	if (r < 0)
		r = sse_str_decode(i);
	if (r < 0) {
		switch (i->map) {
		case MAP_0F: r = decode_0f(i); break;
		case MAP_0F38: r = decode_0f38(i); break;
		default: r = decode_0f3a(i); break;
		}
	}
	if (r == 0 && i->lock)
		i->fn = op_ud;
	return r;
}
