/* 80-bit extended-precision soft-float for the x87: arithmetic in integer C,
 * rounded like x86 hardware (precision control, 4 rounding modes, IEEE flags). */
#ifndef CORRAL_CPU_F80_H
#define CORRAL_CPU_F80_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu.h"

/* Exception flags, the same bits as in the x87 status and control words. */
enum { F80_IE = 1, F80_DE = 2, F80_ZE = 4, F80_OE = 8, F80_UE = 16, F80_PE = 32 };
/* Rounding control, as FCW.RC */
enum { F80_RN, F80_RD, F80_RU, F80_RZ };

/* One operation's environment: rounding, precision and masks in, flags out.
 * An unmasked OE/UE on an extended result delivers the result with its
 * exponent biased by 24576 (x87 rule); other unmasked exceptions are only
 * reported, and the caller must then leave the destination alone. */
struct f80_env {
	unsigned rc;   /* F80_RN.. */
	unsigned prec; /* significand bits for extended results: 24, 53 or 64 */
	unsigned mask; /* exception masks (FCW bits 0-5) */
	unsigned exc;  /* exceptions raised, accumulated */
	bool up;       /* the last rounding increased the magnitude (x87 C1) */
	bool den_in;   /* an operand was a denormal before conversion to
			  extended (m32fp/m64fp): report DE as for one */
};

enum f80_class {
	F80_ZERO,
	F80_NORMAL,
	F80_DENORMAL,
	F80_INF,
	F80_QNAN,
	F80_SNAN,
	F80_UNSUPPORTED, /* unnormal, pseudo-NaN, pseudo-infinity, pseudo-zero */
};

#define F80_INDEFINITE ((struct cpu_f80){0xc000000000000000ull, 0xffff})

enum f80_class f80_classify(struct cpu_f80 a);

struct cpu_f80 f80_add(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b);
struct cpu_f80 f80_sub(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b);
struct cpu_f80 f80_mul(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b);
struct cpu_f80 f80_div(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b);
struct cpu_f80 f80_sqrt(struct f80_env *e, struct cpu_f80 a);
/* FPREM (ieee false) / FPREM1 (ieee true): *q gets the quotient's low 3
 * bits (all ones when the result is a NaN and C0/C2/C3 are left alone),
 * *partial is set when the reduction is incomplete (C2). */
struct cpu_f80 f80_rem(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b, bool ieee, uint64_t *q, bool *partial);
struct cpu_f80 f80_round_int(struct f80_env *e, struct cpu_f80 a);
struct cpu_f80 f80_scale(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b);
/* FXTRACT: a = sig * 2^exp, sig in [1, 2) */
void f80_xtract(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 *exp, struct cpu_f80 *sig);
/* Compare: -1 a<b, 0 equal, 1 a>b, 2 unordered. quiet: only SNaN is invalid. */
int f80_compare(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 b, bool quiet);

/* Conversions. Loads of float/double raise IE on SNaN (and quiet it) and
 * DE on denormals; with e NULL they convert silently, keeping SNaNs. */
struct cpu_f80 f80_from_f32(struct f80_env *e, uint32_t v);
struct cpu_f80 f80_from_f64(struct f80_env *e, uint64_t v);
struct cpu_f80 f80_from_i64(int64_t v);
uint32_t f80_to_f32(struct f80_env *e, struct cpu_f80 a);
uint64_t f80_to_f64(struct f80_env *e, struct cpu_f80 a);
/* To a signed integer of bits (16/32/64); out of range or NaN: IE and the
 * integer indefinite (most negative value). trunc: FISTTP. */
int64_t f80_to_int(struct f80_env *e, struct cpu_f80 a, unsigned bits, bool trunc);
/* Packed BCD (FBLD/FBSTP), 10 bytes. */
struct cpu_f80 f80_from_bcd(const uint8_t b[10]);
void f80_to_bcd(struct f80_env *e, struct cpu_f80 a, uint8_t b[10]);
/* Round a constant given as a 128-bit significand (integer bit at bit 127 of
 * hi:lo) times 2^exp to 64 bits by e->rc. */
struct cpu_f80 f80_const(struct f80_env *e, uint64_t hi, uint64_t lo, int exp);

/* Transcendentals (F2XM1, FYL2X, FYL2XP1, FPTAN, FPATAN, FSIN, FCOS),
 * computed in 128-bit integer arithmetic and rounded once: (nearly always)
 * correctly rounded and the same on every host, but not bit-exact with x86
 * hardware, whose results are not correctly rounded: they can differ from a
 * real x87 in the last bit (and by more for FSIN/FCOS/FPTAN of arguments
 * near multiples of pi/2 or large, where the x87 reduces with an
 * approximate pi). Special operands (zeros, infinities, NaNs, denormals) and
 * the exception flags match. For FPTAN/FSIN/FCOS/FSINCOS, false means the
 * operand is out of range (|x| >= 2^63: the x87 sets C2 and leaves it). */
struct cpu_f80 f80_f2xm1(struct f80_env *e, struct cpu_f80 a);
struct cpu_f80 f80_fyl2x(struct f80_env *e, struct cpu_f80 x, struct cpu_f80 y);
struct cpu_f80 f80_fyl2xp1(struct f80_env *e, struct cpu_f80 x, struct cpu_f80 y);
struct cpu_f80 f80_fpatan(struct f80_env *e, struct cpu_f80 x, struct cpu_f80 y);
/* which: 1 sine, 2 cosine, 3 both */
bool f80_sincos(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 *s, struct cpu_f80 *c, unsigned which);
bool f80_tan(struct f80_env *e, struct cpu_f80 a, struct cpu_f80 *t);

#endif
