/* Differential tests of the x87 FPU and FXSAVE/FXRSTOR: each case is a
 * machine-code blob (load state, one instruction, save state) run on the
 * host CPU and in corral's CPU at the same addresses; results must match. */
#include <asm/prctl.h>
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "cpu/vmem.h"
#include "testhelp.h"

/* Memory layout (identity-mapped in the guest): */
#define PG 4096
#define CODE_OFF 0	  /* blob; the syscall stub at CODE_OFF + 0xf00 */
#define IN_OFF (1 * PG)	  /* FXSAVE image loaded by the blob */
#define OUT_OFF (2 * PG)  /* FXSAVE image + RAX + RFLAGS stored by it */
#define DATA_OFF (3 * PG) /* memory operand: RBX = DATA_OFF + DATA_AT */
#define DATA_AT 0x400
#define DATA_LEN 0x800
#define STACK_OFF (5 * PG)
#define AREA_LEN (7 * PG) /* followed by an inaccessible guard page */

static uint8_t *area;
static struct vmem vm;
static struct cpu cpu;
static int full_mul = 1;
static int fail_prints;

static unsigned rndn(unsigned n)
{
	return (unsigned)(rnd() % n);
}

/* ---- Operand generators ---- */

struct f80v {
	uint64_t m;
	uint16_t se;
};

static struct f80v rnd_f80(void)
{
	struct f80v v;
	uint16_t s = rndn(2) ? 0x8000 : 0;
	uint64_t m = rnd() | (1ull << 63);

	switch (rndn(24)) {
	case 0:
		v.m = 0;
		v.se = s;
		break;
	case 1:
		v.m = 1ull << 63;
		v.se = s | 0x7fff;
		break;
	case 2:
		v.m = m | (1ull << 62);
		v.se = s | 0x7fff;
		break; /* QNaN */
	case 3:
		v.m = (m & ~(1ull << 62)) | 1;
		v.se = s | 0x7fff;
		break; /* SNaN */
	case 4:
		v.m = (m & ~(1ull << 63)) >> rndn(64);
		v.se = s;
		break; /* denormal */
	case 5:
		v.m = m;
		v.se = s;
		break; /* pseudo-denormal */
	case 6:
		v.m = m >> (1 + rndn(63));
		v.se = s | (uint16_t)(1 + rndn(0x7ffe));
		break; /* unnormal */
	case 7:
		v.m = m;
		v.se = s | (uint16_t)(0x7ffe - rndn(80));
		break;
	case 8:
		v.m = m;
		v.se = s | (uint16_t)(1 + rndn(80));
		break;
	case 9: /* integers, including around the int16/32/64 limits */
	case 10: {
		static const unsigned e[] = {14, 15, 16, 30, 31, 32, 62, 63, 64};
		unsigned ex = e[rndn(9)];
		v.se = s | (uint16_t)(0x3fff + ex);
		v.m = rndn(3) == 0 ? (1ull << 63) + rndn(3) - 1 : m;
		v.m |= 1ull << 63;
		if (rndn(2) && ex < 63)
			v.m &= ~0ull << (63 - ex);
		break;
	}
	case 11: /* rounding boundaries at 24, 53 and 64 bits */
	case 12: {
		static const unsigned sh[] = {11, 40, 1};
		unsigned k = sh[rndn(3)];
		uint64_t half = 1ull << (k - 1);
		int64_t d = (int64_t)rndn(3) - 1;
		v.m = (m & (~0ull << k)) | (half + (uint64_t)d);
		v.se = s | (uint16_t)(0x3fff + (int)rndn(40) - 20);
		break;
	}
	case 13:
		v.m = 1ull << 63;
		v.se = s | (uint16_t)(0x3fff + (int)rndn(130) - 65);
		break;
	case 14:
		v.m = ~0ull;
		v.se = s | (uint16_t)(0x3fff + (int)rndn(130) - 65);
		break;
	default:
		v.m = m;
		v.se = s | (uint16_t)(0x3fff + (int)rndn(140) - 70);
		break;
	}
	return v;
}

/* A second operand related to the first (cancellation, equal values) */
static struct f80v rnd_f80_near(struct f80v a)
{
	struct f80v v = a;
	switch (rndn(7)) {
	case 6: { /* exactly half an ulp of a at 24, 53 or 64 bits: ties */
		static const unsigned p[3] = {24, 53, 64};
		v.m = 1ull << 63;
		v.se = (uint16_t)((a.se & 0x8000) ^ (rndn(2) ? 0x8000 : 0)) |
		       (uint16_t)(((a.se & 0x7fff) - p[rndn(3)]) & 0x7fff);
		break;
	}
	case 0: v.se ^= 0x8000; break;
	case 1:
		v.m ^= rnd() & 0xff;
		v.m |= 1ull << 63;
		break;
	case 2: v.se = (uint16_t)(v.se + rndn(130) - 65); break;
	case 3: break;
	default: return rnd_f80();
	}
	return v;
}

static uint32_t rnd_f32(void)
{
	uint32_t s = rndn(2) ? 0x80000000u : 0;
	uint32_t f = (uint32_t)rnd() & 0x7fffff;
	switch (rndn(10)) {
	case 0: return s;
	case 1: return s | 0x7f800000u;
	case 2: return s | 0x7fc00000u | f;
	case 3: return s | 0x7f800000u | (f & 0x3fffff) | 1;
	case 4: return s | (f >> rndn(23));
	case 5: return s | (0xfeu << 23) | f;
	default: return s | ((uint32_t)(127 + (int)rndn(60) - 30) << 23) | f;
	}
}

static uint64_t rnd_f64(void)
{
	uint64_t s = rndn(2) ? 1ull << 63 : 0;
	uint64_t f = rnd() & ((1ull << 52) - 1);
	switch (rndn(10)) {
	case 0: return s;
	case 1: return s | (0x7ffull << 52);
	case 2: return s | (0xfffull << 51) | f;
	case 3: return s | (0x7ffull << 52) | (f >> 1) | 1;
	case 4: return s | (f >> rndn(52));
	case 5: return s | (0x7feull << 52) | f;
	default: return s | ((uint64_t)(1023 + (int)rndn(200) - 100) << 52) | f;
	}
}

static uint64_t rnd_int(unsigned bits)
{
	uint64_t v;
	switch (rndn(5)) {
	case 0: v = 1ull << (bits - 1); break;
	case 1: v = (1ull << (bits - 1)) - 1; break;
	case 2: v = rnd() >> rndn(64); break;
	case 3: v = (uint64_t)(int64_t)((int)rndn(21) - 10); break;
	default: v = rnd(); break;
	}
	return v;
}

/* ---- Blob ---- */

struct blob {
	uint8_t b[256];
	unsigned n;
	unsigned insn_off; /* where the instructions under test start */
};

static void emit(struct blob *b, const void *p, unsigned n)
{
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void emit1(struct blob *b, uint8_t v)
{
	b->b[b->n++] = v;
}

static void emit64(struct blob *b, uint64_t v)
{
	emit(b, &v, 8);
}

/* push rbx; mov rbx, data; mov rax, in; fxrstor64 [rax]; push flags;
 * popfq; mov rax, rax0; <insn>; mov r11, out; fxsave64 [r11];
 * mov [r11+0x200], rax; pushfq; pop rax; mov [r11+0x208], rax; fninit;
 * pop rbx; ret */
static void blob_build(struct blob *b, const uint8_t *insn, unsigned n, uint32_t flags, uint64_t rax)
{
	static const uint8_t ep[] = {0x49, 0x0f, 0xae, 0x03, 0x49, 0x89, 0x83, 0x00, 0x02, 0x00, 0x00, 0x9c,
				     0x58, 0x49, 0x89, 0x83, 0x08, 0x02, 0x00, 0x00, 0xdb, 0xe3, 0x5b, 0xc3};
	b->n = 0;
	emit1(b, 0x53);
	emit1(b, 0x48);
	emit1(b, 0xbb);
	emit64(b, (uint64_t)(uintptr_t)(area + DATA_OFF + DATA_AT));
	emit1(b, 0x48);
	emit1(b, 0xb8);
	emit64(b, (uint64_t)(uintptr_t)(area + IN_OFF));
	emit(b, "\x48\x0f\xae\x08", 4);
	emit1(b, 0x68);
	emit(b, &flags, 4);
	emit1(b, 0x9d);
	emit1(b, 0x48);
	emit1(b, 0xb8);
	emit64(b, rax);
	b->insn_off = b->n;
	emit(b, insn, n);
	emit1(b, 0x49);
	emit1(b, 0xbb);
	emit64(b, (uint64_t)(uintptr_t)(area + OUT_OFF));
	emit(b, ep, sizeof(ep));
}

/* Run the installed blob in corral; returns the exit reason */
static enum cpu_exit corral_run(void)
{
	uint64_t top = (uint64_t)(uintptr_t)(area + STACK_OFF + PG);
	uint64_t stub = (uint64_t)(uintptr_t)(area + CODE_OFF + 0xf00);

	memcpy(area + STACK_OFF + PG - 8, &stub, 8);
	cpu_flush(&cpu);
	cpu.s.gpr[R_RSP] = top - 8;
	cpu.s.rip = (uint64_t)(uintptr_t)(area + CODE_OFF);
	return cpu_run(&cpu, 100000);
}

static sigjmp_buf native_jb;
static volatile int native_sig;

static volatile int in_native;

/* Catches the faults of native blob runs; anywhere else (a crash in corral
 * itself) the signal keeps its default action */
static void native_handler(int sig)
{
	if (!in_native) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	native_sig = sig;
	siglongjmp(native_jb, 1);
}

/* Run the blob natively; returns 0 or the signal it took */
static int native_run(void)
{
	void (*fn)(void) = (void (*)(void))(uintptr_t)(area + CODE_OFF);
	native_sig = 0;
	if (sigsetjmp(native_jb, 1) == 0) {
		in_native = 1;
		fn();
	} else {
		__asm__ volatile("fninit");
	}
	in_native = 0;
	return native_sig;
}

/* ---- Cases ---- */

/* Operand domains: the transcendentals are only defined (and accurate on
 * hardware) for some ranges; D_FAR is FPREM with large exponent gaps. */
enum dom { D_ANY, D_F2XM1, D_YL2X, D_YL2XP1, D_TRIG, D_PATAN, D_FAR };

enum mem_kind { M_NONE, M_F32, M_F64, M_F80, M_I16, M_I32, M_I64, M_BCD, M_CW, M_ENV, M_SAVE, M_FX };

struct op {
	const char *name;
	uint8_t bytes[4];
	uint8_t n;
	uint8_t sti;   /* add a random register 0-7 to the last byte */
	uint8_t mem;   /* enum mem_kind: what [rbx] holds */
	uint8_t trans; /* transcendental (enum dom): registers within an ulp */
	uint8_t env;   /* compare the data buffer except FIP/FDP fields */
};

#define R(nm, a, b)                                                                                                    \
	{                                                                                                              \
		nm, {a, b}, 2, 1, M_NONE, 0, 0                                                                         \
	}
#define F(nm, a, b)                                                                                                    \
	{                                                                                                              \
		nm, {a, b}, 2, 0, M_NONE, 0, 0                                                                         \
	}
#define T(nm, a, b, d)                                                                                                 \
	{                                                                                                              \
		nm, {a, b}, 2, 0, M_NONE, d, 0                                                                         \
	}
#define M(nm, a, reg, k)                                                                                               \
	{                                                                                                              \
		nm, {a, (reg) << 3 | 3}, 2, 0, k, 0, 0                                                                 \
	}

static const struct op ops[] = {
	M("fadd m32", 0xd8, 0, M_F32),
	M("fmul m32", 0xd8, 1, M_F32),
	M("fcom m32", 0xd8, 2, M_F32),
	M("fcomp m32", 0xd8, 3, M_F32),
	M("fsub m32", 0xd8, 4, M_F32),
	M("fsubr m32", 0xd8, 5, M_F32),
	M("fdiv m32", 0xd8, 6, M_F32),
	M("fdivr m32", 0xd8, 7, M_F32),
	M("fadd m64", 0xdc, 0, M_F64),
	M("fmul m64", 0xdc, 1, M_F64),
	M("fcom m64", 0xdc, 2, M_F64),
	M("fcomp m64", 0xdc, 3, M_F64),
	M("fsub m64", 0xdc, 4, M_F64),
	M("fsubr m64", 0xdc, 5, M_F64),
	M("fdiv m64", 0xdc, 6, M_F64),
	M("fdivr m64", 0xdc, 7, M_F64),
	M("fiadd m32", 0xda, 0, M_I32),
	M("fimul m32", 0xda, 1, M_I32),
	M("ficom m32", 0xda, 2, M_I32),
	M("ficomp m32", 0xda, 3, M_I32),
	M("fisub m32", 0xda, 4, M_I32),
	M("fisubr m32", 0xda, 5, M_I32),
	M("fidiv m32", 0xda, 6, M_I32),
	M("fidivr m32", 0xda, 7, M_I32),
	M("fiadd m16", 0xde, 0, M_I16),
	M("fimul m16", 0xde, 1, M_I16),
	M("ficom m16", 0xde, 2, M_I16),
	M("ficomp m16", 0xde, 3, M_I16),
	M("fisub m16", 0xde, 4, M_I16),
	M("fisubr m16", 0xde, 5, M_I16),
	M("fidiv m16", 0xde, 6, M_I16),
	M("fidivr m16", 0xde, 7, M_I16),
	R("fadd st,sti", 0xd8, 0xc0),
	R("fmul st,sti", 0xd8, 0xc8),
	R("fcom sti", 0xd8, 0xd0),
	R("fcomp sti", 0xd8, 0xd8),
	R("fsub st,sti", 0xd8, 0xe0),
	R("fsubr st,sti", 0xd8, 0xe8),
	R("fdiv st,sti", 0xd8, 0xf0),
	R("fdivr st,sti", 0xd8, 0xf8),
	R("fadd sti,st", 0xdc, 0xc0),
	R("fmul sti,st", 0xdc, 0xc8),
	R("fcom2", 0xdc, 0xd0),
	R("fcomp3", 0xdc, 0xd8),
	R("fsubr sti,st", 0xdc, 0xe0),
	R("fsub sti,st", 0xdc, 0xe8),
	R("fdivr sti,st", 0xdc, 0xf0),
	R("fdiv sti,st", 0xdc, 0xf8),
	R("faddp", 0xde, 0xc0),
	R("fmulp", 0xde, 0xc8),
	R("fcomp5", 0xde, 0xd0),
	F("fcompp", 0xde, 0xd9),
	R("fsubrp", 0xde, 0xe0),
	R("fsubp", 0xde, 0xe8),
	R("fdivrp", 0xde, 0xf0),
	R("fdivp", 0xde, 0xf8),
	R("fld sti", 0xd9, 0xc0),
	R("fxch", 0xd9, 0xc8),
	F("fnop", 0xd9, 0xd0),
	R("fstp1", 0xd9, 0xd8),
	F("fchs", 0xd9, 0xe0),
	F("fabs", 0xd9, 0xe1),
	F("ftst", 0xd9, 0xe4),
	F("fxam", 0xd9, 0xe5),
	F("fld1", 0xd9, 0xe8),
	F("fldl2t", 0xd9, 0xe9),
	F("fldl2e", 0xd9, 0xea),
	F("fldpi", 0xd9, 0xeb),
	F("fldlg2", 0xd9, 0xec),
	F("fldln2", 0xd9, 0xed),
	F("fldz", 0xd9, 0xee),
	T("f2xm1", 0xd9, 0xf0, D_F2XM1),
	T("fyl2x", 0xd9, 0xf1, D_YL2X),
	T("fptan", 0xd9, 0xf2, D_TRIG),
	T("fpatan", 0xd9, 0xf3, D_PATAN),
	F("fxtract", 0xd9, 0xf4),
	F("fprem1", 0xd9, 0xf5),
	F("fdecstp", 0xd9, 0xf6),
	F("fincstp", 0xd9, 0xf7),
	F("fprem", 0xd9, 0xf8),
	T("fyl2xp1", 0xd9, 0xf9, D_YL2XP1),
	F("fsqrt", 0xd9, 0xfa),
	T("fsincos", 0xd9, 0xfb, D_TRIG),
	F("frndint", 0xd9, 0xfc),
	F("fscale", 0xd9, 0xfd),
	T("fsin", 0xd9, 0xfe, D_TRIG),
	T("fcos", 0xd9, 0xff, D_TRIG),
	{"fprem far", {0xd9, 0xf8}, 2, 0, M_NONE, D_FAR, 0},
	{"fprem1 far", {0xd9, 0xf5}, 2, 0, M_NONE, D_FAR, 0},
	M("fld m32", 0xd9, 0, M_F32),
	M("fst m32", 0xd9, 2, M_F32),
	M("fstp m32", 0xd9, 3, M_F32),
	M("fldcw", 0xd9, 5, M_CW),
	M("fnstcw", 0xd9, 7, M_NONE),
	{"fnstenv", {0xd9, 0x33}, 2, 0, M_NONE, 0, 1},
	{"fnstenv16", {0x66, 0xd9, 0x33}, 3, 0, M_NONE, 0, 1},
	{"fldenv", {0xd9, 0x23}, 2, 0, M_ENV, 0, 0},
	R("fcmovb", 0xda, 0xc0),
	R("fcmove", 0xda, 0xc8),
	R("fcmovbe", 0xda, 0xd0),
	R("fcmovu", 0xda, 0xd8),
	F("fucompp", 0xda, 0xe9),
	R("fcmovnb", 0xdb, 0xc0),
	R("fcmovne", 0xdb, 0xc8),
	R("fcmovnbe", 0xdb, 0xd0),
	R("fcmovnu", 0xdb, 0xd8),
	F("fnclex", 0xdb, 0xe2),
	F("fninit", 0xdb, 0xe3),
	R("fucomi", 0xdb, 0xe8),
	R("fcomi", 0xdb, 0xf0),
	M("fild m32", 0xdb, 0, M_I32),
	M("fisttp m32", 0xdb, 1, M_NONE),
	M("fist m32", 0xdb, 2, M_NONE),
	M("fistp m32", 0xdb, 3, M_NONE),
	M("fld m80", 0xdb, 5, M_F80),
	M("fstp m80", 0xdb, 7, M_NONE),
	R("ffree", 0xdd, 0xc0),
	R("fxch4", 0xdd, 0xc8),
	R("fst sti", 0xdd, 0xd0),
	R("fstp sti", 0xdd, 0xd8),
	R("fucom", 0xdd, 0xe0),
	R("fucomp", 0xdd, 0xe8),
	M("fld m64", 0xdd, 0, M_F64),
	M("fisttp m64", 0xdd, 1, M_NONE),
	M("fst m64", 0xdd, 2, M_NONE),
	M("fstp m64", 0xdd, 3, M_NONE),
	M("fnstsw m16", 0xdd, 7, M_NONE),
	{"frstor", {0xdd, 0x23}, 2, 0, M_SAVE, 0, 0},
	{"fnsave", {0xdd, 0x33}, 2, 0, M_NONE, 0, 1},
	R("ffreep", 0xdf, 0xc0),
	R("fxch7", 0xdf, 0xc8),
	R("fstp8", 0xdf, 0xd0),
	R("fstp9", 0xdf, 0xd8),
	F("fnstsw ax", 0xdf, 0xe0),
	R("fucomip", 0xdf, 0xe8),
	R("fcomip", 0xdf, 0xf0),
	M("fild m16", 0xdf, 0, M_I16),
	M("fisttp m16", 0xdf, 1, M_NONE),
	M("fist m16", 0xdf, 2, M_NONE),
	M("fistp m16", 0xdf, 3, M_NONE),
	M("fbld", 0xdf, 4, M_BCD),
	M("fild m64", 0xdf, 5, M_I64),
	M("fbstp", 0xdf, 6, M_NONE),
	M("fistp m64", 0xdf, 7, M_NONE),
	{"fwait", {0x9b}, 1, 0, M_NONE, 0, 0},
	{"fxsave", {0x0f, 0xae, 0x03}, 3, 0, M_NONE, 0, 1},
	{"fxsave64", {0x48, 0x0f, 0xae, 0x03}, 4, 0, M_NONE, 0, 1},
	{"fxrstor64", {0x48, 0x0f, 0xae, 0x0b}, 4, 0, M_FX, 0, 0},
};

/* The FXSAVE image the blob starts from */
static void rnd_state(uint8_t *img, unsigned *fcw_out)
{
	unsigned masks = rndn(6) ? 0x3f : (unsigned)rnd() & 0x3f;
	unsigned fcw = 0x40 | masks | rndn(4) << 8 | rndn(4) << 10;
	unsigned top = rndn(8);
	unsigned fsw = ((unsigned)rnd() & 0x7f & masks) | ((unsigned)rnd() & 0x4700) | top << 11;
	uint8_t tags = 0;

	if (rndn(3)) {
		unsigned k = 1 + rndn(7);
		for (unsigned j = 0; j < k; j++)
			tags |= (uint8_t)(1u << ((top + j) & 7));
	} else {
		tags = (uint8_t)rnd();
	}
	memset(img, 0, 512);
	memcpy(img, &fcw, 2);
	memcpy(img + 2, &fsw, 2);
	img[4] = tags;
	uint32_t mx = 0x1f80;
	memcpy(img + 24, &mx, 4);
	struct f80v prev = rnd_f80();
	for (unsigned k = 0; k < 8; k++) {
		struct f80v v = rndn(3) ? rnd_f80() : rnd_f80_near(prev);
		memcpy(img + 32 + 16 * k, &v.m, 8);
		memcpy(img + 40 + 16 * k, &v.se, 2);
		prev = v;
	}
	*fcw_out = fcw;
}

static struct f80v rnd_range(int emin, int emax, int sign)
{
	struct f80v v;
	v.m = rnd() | (1ull << 63);
	v.se = (uint16_t)(0x3fff + emin + (int)rndn((unsigned)(emax - emin + 1)));
	if (sign < 0 || (sign == 0 && rndn(2)))
		v.se |= 0x8000;
	return v;
}

/* Put ST0 (and ST1) in the op's domain; now and then a special value */
static void set_domain(uint8_t *img, enum dom d)
{
	struct f80v a, b = rnd_range(-40, 40, 0);
	uint16_t fsw;
	memcpy(&fsw, img + 2, 2);
	unsigned top = (fsw >> 11) & 7;

	if (d == D_ANY || (d == D_FAR && rndn(8) == 0))
		return;
	switch (d) {
	case D_F2XM1: a = rnd_range(-70, -1, 0); break;
	case D_YL2X: a = rnd_range(-100, 100, 1); break;
	case D_YL2XP1: a = rnd_range(-70, -3, 0); break;
	case D_TRIG: a = rnd_range(-70, -1, 0); break;
	case D_PATAN:
		a = rnd_range(-100, 100, 0);
		b = rnd_range(-100, 100, 0);
		break;
	default: /* D_FAR */
		b = rnd_range(-200, 200, 0);
		a = b;
		a.m = rnd() | (1ull << 63);
		a.se = (uint16_t)(a.se + 30 + rndn(300));
		break;
	}
	memcpy(img + 32, &a.m, 8);
	memcpy(img + 40, &a.se, 2);
	memcpy(img + 48, &b.m, 8);
	memcpy(img + 56, &b.se, 2);
	img[4] |= (uint8_t)(1u << top | 1u << ((top + 1) & 7));
	if (rndn(6) == 0) {
		/* special operands: zeros, infinities, NaNs, denormals, unnormals */
		for (unsigned k = 0; k < 2; k++) {
			struct f80v v;
			do
				v = rnd_f80();
			while ((v.se & 0x7fff) != 0 && (v.se & 0x7fff) != 0x7fff && (v.m >> 63));
			if (rndn(2)) {
				memcpy(img + 32 + 16 * k, &v.m, 8);
				memcpy(img + 40 + 16 * k, &v.se, 2);
			}
		}
	}
}

static void rnd_data(uint8_t *d, enum mem_kind k)
{
	for (unsigned j = 0; j < DATA_LEN; j++)
		d[j] = (uint8_t)rnd();
	switch (k) {
	case M_F32: {
		uint32_t v = rnd_f32();
		memcpy(d, &v, 4);
		break;
	}
	case M_F64: {
		uint64_t v = rnd_f64();
		memcpy(d, &v, 8);
		break;
	}
	case M_F80: {
		struct f80v v = rnd_f80();
		memcpy(d, &v.m, 8);
		memcpy(d + 8, &v.se, 2);
		break;
	}
	case M_I16: {
		uint64_t v = rnd_int(16);
		memcpy(d, &v, 2);
		break;
	}
	case M_I32: {
		uint64_t v = rnd_int(32);
		memcpy(d, &v, 4);
		break;
	}
	case M_I64: {
		uint64_t v = rnd_int(64);
		memcpy(d, &v, 8);
		break;
	}
	case M_BCD:
		for (unsigned j = 0; j < 9; j++)
			d[j] = (uint8_t)(rndn(10) << 4 | rndn(10));
		d[9] = rndn(2) ? 0x80 : 0;
		break;
	case M_CW: {
		uint16_t v = (uint16_t)(0x3f | rndn(4) << 8 | rndn(4) << 10);
		memcpy(d, &v, 2);
		break;
	}
	case M_ENV:
	case M_SAVE: {
		/* a consistent environment: masked flags only, so no #MF */
		uint16_t w[14];
		for (unsigned j = 0; j < 14; j++)
			w[j] = 0xffff;
		w[0] = (uint16_t)(0x7f | rndn(4) << 8 | rndn(4) << 10);
		w[2] = (uint16_t)(rnd() & 0x7f7f);
		w[4] = (uint16_t)rnd();
		memcpy(d, w, 28);
		for (unsigned j = 0; j < 8; j++) {
			struct f80v v = rnd_f80();
			memcpy(d + 28 + 10 * j, &v.m, 8);
			memcpy(d + 36 + 10 * j, &v.se, 2);
		}
		break;
	}
	case M_FX: {
		unsigned fcw;
		rnd_state(d, &fcw);
		break;
	}
	default: break;
	}
}

/* Bytes of an FSTENV/FSAVE/FXSAVE image that hold FIP/FDP/FOP/FCS/FDS,
 * which differ by implementation and are not compared */
static bool env_skip(const struct op *o, unsigned off)
{
	if (!o->env)
		return false;
	if (!strcmp(o->name, "fnstenv16"))
		return off >= 6 && off < 14;
	if (o->name[1] == 'x') /* fxsave */
		return (off >= 6 && off < 24) || (off >= 28 && off < 32) || off >= 416;
	return off >= 12 && off < 28;
}

/* Distance in ulps between two extended values (sign-magnitude order) */
static uint64_t ulp_dist(const uint8_t *a, const uint8_t *b)
{
	uint64_t ma, mb;
	uint16_t ea, eb;
	memcpy(&ma, a, 8);
	memcpy(&mb, b, 8);
	memcpy(&ea, a + 8, 2);
	memcpy(&eb, b + 8, 2);
	if ((ea ^ eb) & 0x8000)
		return ma == mb && ((ea ^ eb) & 0x7fff) == 0 && !(ma << 1) ? 0 : ~0ull;
	__int128 ka = ((__int128)(ea & 0x7fff) << 63) + (ma & ~(1ull << 63));
	__int128 kb = ((__int128)(eb & 0x7fff) << 63) + (mb & ~(1ull << 63));
	__int128 d = ka > kb ? ka - kb : kb - ka;
	return d > 1000 ? ~0ull : (uint64_t)d;
}

static void dump(const char *what, const uint8_t *nat, const uint8_t *emu, unsigned n)
{
	fprintf(stderr, "    %s native:", what);
	for (unsigned j = 0; j < n; j++)
		fprintf(stderr, " %02x", nat[j]);
	fprintf(stderr, "\n    %s corral:", what);
	for (unsigned j = 0; j < n; j++)
		fprintf(stderr, " %02x", emu[j]);
	fprintf(stderr, "\n");
}

static void dump_regs(const char *what, const uint8_t *img)
{
	uint16_t fcw, fsw;
	memcpy(&fcw, img, 2);
	memcpy(&fsw, img + 2, 2);
	fprintf(stderr, "    %s fcw %04x fsw %04x ftw %02x\n", what, fcw, fsw, img[4]);
	for (unsigned k = 0; k < 8; k++) {
		uint64_t m;
		uint16_t se;
		memcpy(&m, img + 32 + 16 * k, 8);
		memcpy(&se, img + 40 + 16 * k, 2);
		fprintf(stderr, "      st%u %04x %016llx\n", k, se, (unsigned long long)m);
	}
}

/* Run one case; returns true when native and corral agree */
static bool run_case(const struct op *o, unsigned *ulps)
{
	static uint8_t in_img[512], data0[DATA_LEN], nat_out[528], nat_data[DATA_LEN];
	uint8_t insn[8];
	unsigned fcw;
	struct blob b;

	memcpy(insn, o->bytes, o->n);
	if (o->sti)
		insn[o->n - 1] = (uint8_t)(insn[o->n - 1] + rndn(8));
	rnd_state(in_img, &fcw);
	set_domain(in_img, (enum dom)o->trans);
	rnd_data(data0, (enum mem_kind)o->mem);
	uint32_t flags = 0x202 | ((uint32_t)rnd() & 0x8d5);
	uint64_t rax = rnd();
	blob_build(&b, insn, o->n, flags, rax);
	memcpy(area + CODE_OFF, b.b, b.n);
	memcpy(area + IN_OFF, in_img, 512);
	memcpy(area + DATA_OFF + DATA_AT, data0, DATA_LEN);
	memset(area + OUT_OFF, 0, 528);

	int sig = native_run();
	if (sig) {
		fprintf(stderr, "  %s: native run took signal %d\n", o->name, sig);
		return false;
	}
	memcpy(nat_out, area + OUT_OFF, 528);
	memcpy(nat_data, area + DATA_OFF + DATA_AT, DATA_LEN);

	memcpy(area + DATA_OFF + DATA_AT, data0, DATA_LEN);
	memset(area + OUT_OFF, 0, 528);
	enum cpu_exit ex = corral_run();
	if (ex != CPU_EXIT_SYSCALL) {
		fprintf(stderr, "  %s: corral exit %d vector %d\n", o->name, ex, cpu.exc_vector);
		return false;
	}
	const uint8_t *emu_out = area + OUT_OFF, *emu_data = area + DATA_OFF + DATA_AT;

	bool ok = true;
	bool approx = o->trans && o->trans != D_FAR;
	uint16_t fsw_mask = approx ? (uint16_t)~0x0200 : 0xffff;
	uint16_t fn, fe;
	memcpy(&fn, nat_out + 2, 2);
	memcpy(&fe, emu_out + 2, 2);
	if (memcmp(nat_out, emu_out, 2) || ((fn ^ fe) & fsw_mask) || nat_out[4] != emu_out[4] ||
	    memcmp(nat_out + 24, emu_out + 24, 4))
		ok = false;
	/* MXCSR_MASK is implementation-specific (AMD adds MM): corral's is 0xffff */
	if (memcmp(emu_out + 28, "\xff\xff\0\0", 4))
		ok = false;
	for (unsigned k = 0; k < 8 && ok; k++) {
		const uint8_t *rn = nat_out + 32 + 16 * k, *re = emu_out + 32 + 16 * k;
		if (approx) {
			uint64_t d = ulp_dist(rn, re);
			if (d > 1 && memcmp(rn, re, 10))
				ok = false;
			else if (d && d != ~0ull)
				(*ulps)++;
		} else if (memcmp(rn, re, 16)) {
			ok = false;
		}
	}
	if (memcmp(nat_out + 160, emu_out + 160, 256))
		ok = false;
	if (memcmp(nat_out + 0x200, emu_out + 0x200, 8))
		ok = false;
	uint64_t fln, fle;
	memcpy(&fln, nat_out + 0x208, 8);
	memcpy(&fle, emu_out + 0x208, 8);
	if ((fln ^ fle) & 0xcd5)
		ok = false;
	bool data_ok = true;
	for (unsigned j = 0; j < DATA_LEN; j++)
		if (nat_data[j] != emu_data[j] && !env_skip(o, j))
			data_ok = false;
	if (!data_ok)
		ok = false;
	if (!ok && fail_prints++ < 1) {
		fprintf(stderr, "  MISMATCH %s (insn %02x %02x %02x)\n", o->name, insn[0], insn[1], insn[2]);
		dump_regs("input ", in_img);
		dump("data in", data0, data0, 16);
		dump_regs("native", nat_out);
		dump_regs("corral", emu_out);
		fprintf(stderr, "    rax %016llx/%016llx flags %llx/%llx\n",
			(unsigned long long)*(uint64_t *)(nat_out + 0x200),
			(unsigned long long)*(uint64_t *)(emu_out + 0x200), (unsigned long long)fln,
			(unsigned long long)fle);
		if (!data_ok)
			dump("data", nat_data, emu_data, o->mem == M_NONE && o->env ? 112 : 16);
	}
	return ok;
}

static void test_random(void)
{
	unsigned per = 300 * (unsigned)full_mul;
	unsigned long total = 0, bad = 0;
	unsigned ulps = 0;

	const char *only = getenv("T87_OP");
	for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
		unsigned nbad = 0;
		if (only && strcmp(only, ops[k].name))
			continue;
		fail_prints = 0;
		for (unsigned j = 0; j < per; j++) {
			if (!run_case(&ops[k], &ulps))
				nbad++;
		}
		if (nbad)
			fprintf(stderr, "  %s: %u of %u cases differ\n", ops[k].name, nbad, per);
		total += per;
		bad += nbad;
		CHECK(nbad == 0);
	}
	fprintf(stderr, "  x87 random: %lu cases, %lu differ, %u transcendental results 1 ulp off\n", total, bad, ulps);
}

/* Random sequences of several instructions (all exceptions masked, so no
 * #MF): state flows from one instruction to the next */
static bool seq_ok(const struct op *o)
{
	return !o->trans && !o->env && o->mem != M_ENV && o->mem != M_SAVE && o->mem != M_FX && o->mem != M_CW &&
	       o->bytes[0] != 0x9b;
}

static void test_sequences(void)
{
	static uint8_t in_img[512], data0[DATA_LEN], nat_out[528], nat_data[DATA_LEN];
	const size_t nops = sizeof(ops) / sizeof(ops[0]);
	unsigned n = 3000 * (unsigned)full_mul, bad = 0;

	for (unsigned k = 0; k < n; k++) {
		uint8_t code[64];
		unsigned len = 0, cnt = 2 + rndn(5), fcw;
		char names[256] = "";
		while (cnt) {
			const struct op *o = &ops[rndn((unsigned)nops)];
			if (!seq_ok(o))
				continue;
			memcpy(code + len, o->bytes, o->n);
			if (o->sti)
				code[len + o->n - 1] = (uint8_t)(code[len + o->n - 1] + rndn(8));
			len += o->n;
			strncat(names, o->name, sizeof(names) - strlen(names) - 3);
			strcat(names, "; ");
			cnt--;
		}
		rnd_state(in_img, &fcw);
		in_img[0] |= 0x3f;
		rnd_data(data0, M_NONE);
		uint32_t flags = 0x202 | ((uint32_t)rnd() & 0x8d5);
		struct blob b;
		blob_build(&b, code, len, flags, rnd());
		memcpy(area + CODE_OFF, b.b, b.n);
		memcpy(area + IN_OFF, in_img, 512);
		memcpy(area + DATA_OFF + DATA_AT, data0, DATA_LEN);
		if (native_run()) {
			bad++;
			continue;
		}
		memcpy(nat_out, area + OUT_OFF, 528);
		memcpy(nat_data, area + DATA_OFF + DATA_AT, DATA_LEN);
		memcpy(area + DATA_OFF + DATA_AT, data0, DATA_LEN);
		memset(area + OUT_OFF, 0, 528);
		if (corral_run() != CPU_EXIT_SYSCALL || memcmp(nat_out, area + OUT_OFF, 6) ||
		    memcmp(nat_out + 32, area + OUT_OFF + 32, 128) ||
		    memcmp(nat_out + 0x200, area + OUT_OFF + 0x200, 8) ||
		    ((*(uint64_t *)(nat_out + 0x208) ^ *(uint64_t *)(area + OUT_OFF + 0x208)) & 0xcd5) ||
		    memcmp(nat_data, area + DATA_OFF + DATA_AT, DATA_LEN)) {
			if (bad++ < 5) {
				fprintf(stderr, "  sequence differs: %s\n", names);
				dump_regs("input ", in_img);
				dump_regs("native", nat_out);
				dump_regs("corral", area + OUT_OFF);
			}
		}
	}
	if (bad)
		fprintf(stderr, "  %u of %u sequences differ\n", bad, n);
	CHECK(bad == 0);
}

/* Run code (after the usual state load) both ways, expecting a fault at
 * byte fault_at of code: natively signal sig, in corral exception vec. */
static void (*fault_reset)(void); /* restores memory before each run */

static void expect_fault(const char *what, const uint8_t *code, unsigned len, unsigned fault_at, const uint8_t *img,
			 int sig, int vec)
{
	struct blob b;
	blob_build(&b, code, len, 0x202, 0);
	memcpy(area + CODE_OFF, b.b, b.n);
	memcpy(area + IN_OFF, img, 512);
	if (fault_reset)
		fault_reset();
	int got = native_run();
	if (fault_reset)
		fault_reset();
	if (got != sig)
		fprintf(stderr, "  %s: native signal %d, expected %d\n", what, got, sig);
	CHECK(got == sig);
	enum cpu_exit ex = corral_run();
	if (ex != CPU_EXIT_EXCEPTION || cpu.exc_vector != vec ||
	    cpu.s.rip != (uint64_t)(uintptr_t)(area + CODE_OFF + b.insn_off + fault_at))
		fprintf(stderr, "  %s: corral exit %d vector %d rip +%llx, expected #%d at +%x\n", what, ex,
			cpu.exc_vector, (unsigned long long)(cpu.s.rip - (uint64_t)(uintptr_t)area), vec,
			b.insn_off + fault_at);
	CHECK(ex == CPU_EXIT_EXCEPTION);
	CHECK_EQ_U64(cpu.exc_vector, vec);
	CHECK_EQ_U64(cpu.s.rip, (uint64_t)(uintptr_t)(area + CODE_OFF + b.insn_off + fault_at));
}

static void base_image(uint8_t *img, uint16_t fcw)
{
	uint32_t mx = 0x1f80;
	memset(img, 0, 512);
	memcpy(img, &fcw, 2);
	memcpy(img + 24, &mx, 4);
}

/* An unmasked exception is delivered (#MF) by the next waiting instruction */
static void test_pending_mf(void)
{
	static uint8_t img[512];
	/* fld1; fldz; fdivp (ZE, unmasked: ES set); fnstsw ax (no wait); fwait */
	static const uint8_t c1[] = {0xd9, 0xe8, 0xd9, 0xee, 0xde, 0xf9, 0xdf, 0xe0, 0x9b};
	/* fld1; fldz; fdivp; fadd st0, st0 (waits first) */
	static const uint8_t c2[] = {0xd9, 0xe8, 0xd9, 0xee, 0xde, 0xf9, 0xd8, 0xc0};
	/* fld1; fldz; fdivp; fnclex; fwait: cleared, no fault, then fsqrt of -1 */
	static const uint8_t c3[] = {0xd9, 0xe8, 0xd9, 0xee, 0xde, 0xf9, 0xdb, 0xe2, 0x9b, 0xd9,
				     0xe8, 0xd9, 0xe0, 0xd9, 0xfa, 0xdd, 0xd8, 0xd9, 0xd0};

	base_image(img, 0x037b); /* ZM clear */
	expect_fault("fwait after unmasked #Z", c1, sizeof(c1), 8, img, SIGFPE, EXC_MF);
	CHECK_EQ_U64(cpu.s.gpr[R_RAX] & 0xffff, 0xb084 & 0xffff); /* TOP 6, B, ES, ZE */
	expect_fault("fadd after unmasked #Z", c2, sizeof(c2), 6, img, SIGFPE, EXC_MF);
	base_image(img, 0x037a); /* IM and ZM clear: fsqrt(-1) is #IA, caught at fstp */
	expect_fault("fnclex clears, fsqrt(-1) pends", c3, sizeof(c3), 15, img, SIGFPE, EXC_MF);
}

static void guard_fill(void)
{
	memset(area + AREA_LEN - 256, 0x5a, 256);
}

/* FXSAVE/FXRSTOR: #GP for a misaligned area or reserved MXCSR bits, and a
 * page fault leaves the area untouched */
static void test_fxsave_faults(void)
{
	static uint8_t img[512];
	/* fxsave [rbx+8] / fxrstor [rbx+8] */
	static const uint8_t c1[] = {0x0f, 0xae, 0x43, 0x08};
	static const uint8_t c2[] = {0x0f, 0xae, 0x4b, 0x08};
	/* fxrstor64 [rbx] */
	static const uint8_t c3[] = {0x48, 0x0f, 0xae, 0x0b};
	/* lea rbx, [rbx + disp32]; fxsave64 [rbx]: the area ends in the guard page */
	uint8_t c4[] = {0x48, 0x8d, 0x9b, 0, 0, 0, 0, 0x48, 0x0f, 0xae, 0x03};
	int32_t d = AREA_LEN - 256 - (DATA_OFF + DATA_AT);

	base_image(img, 0x037f);
	expect_fault("fxsave misaligned", c1, sizeof(c1), 0, img, SIGSEGV, EXC_GP);
	expect_fault("fxrstor misaligned", c2, sizeof(c2), 0, img, SIGSEGV, EXC_GP);
	base_image(area + DATA_OFF + DATA_AT, 0x037f);
	uint32_t mx = 0x10000 | 0x1f80;
	memcpy(area + DATA_OFF + DATA_AT + 24, &mx, 4);
	expect_fault("fxrstor reserved mxcsr", c3, sizeof(c3), 0, img, SIGSEGV, EXC_GP);
	memcpy(c4 + 3, &d, 4);
	fault_reset = guard_fill;
	expect_fault("fxsave into guard page", c4, sizeof(c4), 7, img, SIGSEGV, EXC_PF);
	fault_reset = NULL;
	bool untouched = true;
	for (unsigned k = 0; k < 256; k++)
		untouched &= area[AREA_LEN - 256 + k] == 0x5a;
	CHECK(untouched);
}

/* ---- glibc's own long double code, run in corral ----
 * libm's x87 routines (expl, logl, powl, atan2l, fmodl, sinl, ...) are run
 * at their host addresses in corral's CPU, with the process's smaller
 * mappings (libm, libc, TLS) shared into the guest address space, and
 * compared with the same calls made natively. */

#define LSTACK (256 * 1024)
static uint8_t *lstack;
static bool libm_ready;

static int map_self(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long lo, hi;
	char perm[8];

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3 || perm[0] != 'r')
			continue;
		if (hi > VMEM_LIMIT || hi - lo > (64ul << 20))
			continue; /* vsyscall, sanitizer shadow */
		unsigned prot = VMEM_R | (perm[1] == 'w' ? VMEM_W : 0) | (perm[2] == 'x' ? VMEM_X : 0);
		vmem_map(&vm, lo, hi - lo, (void *)lo, prot);
	}
	fclose(f);
	uint64_t fs = 0;
	if (syscall(SYS_arch_prctl, ARCH_GET_FS, &fs) < 0)
		return -1;
	cpu.s.seg[SEG_FS].base = fs;
	return 0;
}

/* Call fn(a[, b]) (long double arguments on the stack, result in ST0) in
 * corral; false if it did not return normally */
static bool corral_call_ld(void *fn, long double a, long double b, long double *res)
{
	uint64_t stub = (uint64_t)(uintptr_t)(area + CODE_OFF + 0xf00);
	uint8_t *sp = lstack + LSTACK - 256 - 8; /* as after a call: args 16-aligned */

	memcpy(sp, &stub, 8);
	memset(sp + 8, 0, 32);
	memcpy(sp + 8, &a, 10);
	memcpy(sp + 24, &b, 10);
	cpu.s.gpr[R_RSP] = (uint64_t)(uintptr_t)sp;
	cpu.s.rip = (uint64_t)(uintptr_t)fn;
	cpu.s.x87.fcw = 0x37f;
	cpu.s.x87.fsw = 0;
	cpu.s.x87.ftw = 0xffff;
	cpu.s.mxcsr = 0x1f80;
	cpu_flush(&cpu);
	enum cpu_exit ex = cpu_run(&cpu, 50000000);
	if (ex != CPU_EXIT_SYSCALL) {
		fprintf(stderr, "  libm call %p: exit %d vector %d at %llx\n", fn, ex, cpu.exc_vector,
			(unsigned long long)cpu.s.rip);
		return false;
	}
	struct cpu_x87 *x = &cpu.s.x87;
	unsigned top = (x->fsw >> 11) & 7;
	memset(res, 0, sizeof(*res));
	memcpy(res, &x->st[top].mant, 8);
	memcpy((uint8_t *)res + 8, &x->st[top].sexp, 2);
	return true;
}

/* Call fn(rdi, rsi, rdx, long double on the stack) in corral; returns RAX
 * and the ST0 result, or false if it did not return normally */
static bool corral_call_gp(void *fn, uint64_t rdi, uint64_t rsi, uint64_t rdx, long double a, uint64_t *rax,
			   long double *res)
{
	cpu.s.gpr[R_RDI] = rdi;
	cpu.s.gpr[R_RSI] = rsi;
	cpu.s.gpr[R_RDX] = rdx;
	cpu.s.gpr[R_RAX] = 0; /* no vector registers used by the varargs */
	if (!corral_call_ld(fn, a, 0, res))
		return false;
	*rax = cpu.s.gpr[R_RAX];
	return true;
}

/* printf("%Lg")/strtold of long doubles: glibc's conversions use x87
 * loads, stores and integer arithmetic */
static void test_libc_ld(void)
{
	char *nbuf = (char *)area + DATA_OFF, *ebuf = nbuf + 128, *fmt = nbuf + 256;
	unsigned n = 200 * (unsigned)full_mul, bad = 0;

	/* libc's own functions, not a sanitizer's interceptors (whose shadow
	 * memory the guest cannot see) */
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	int (*p_snprintf)(char *, size_t, const char *, ...) = libc ? dlsym(libc, "snprintf") : NULL;
	long double (*p_strtold)(const char *, char **) = libc ? dlsym(libc, "strtold") : NULL;
	if (!libm_ready || !p_snprintf || !p_strtold) {
		fprintf(stderr, "  libc: could not find snprintf/strtold or map the process\n");
		CHECK(false);
		return;
	}
	strcpy(fmt, "%.21Lg");
	for (unsigned k = 0; k < n; k++) {
		struct f80v v = rnd_f80();
		long double x = 0, y, ey;
		uint64_t rax;
		memcpy(&x, &v.m, 8);
		memcpy((uint8_t *)&x + 8, &v.se, 2);
		if ((v.se & 0x7fff) && !(v.m >> 63))
			continue; /* unnormals: printf's output is unspecified */
		int nn = p_snprintf(nbuf, 100, fmt, x);
		memset(ebuf, 0, 100);
		if (!corral_call_gp((void *)p_snprintf, (uint64_t)(uintptr_t)ebuf, 100, (uint64_t)(uintptr_t)fmt, x,
				    &rax, &ey) ||
		    (int)rax != nn || strcmp(nbuf, ebuf)) {
			if (bad++ < 5)
				fprintf(stderr, "  snprintf(%s): native \"%s\" corral \"%s\"\n", fmt, nbuf, ebuf);
			continue;
		}
		y = p_strtold(nbuf, NULL);
		if (!corral_call_gp((void *)p_strtold, (uint64_t)(uintptr_t)nbuf, 0, 0, 0, &rax, &ey) ||
		    memcmp(&y, &ey, 10)) {
			if (bad++ < 5)
				fprintf(stderr, "  strtold(\"%s\"): native %La corral %La\n", nbuf, y, ey);
		}
	}
	if (bad)
		fprintf(stderr, "  libc long double: %u of %u conversions differ\n", bad, n);
	CHECK(bad == 0);
}

struct lfn {
	const char *name;
	long double (*f1)(long double);
	long double (*f2)(long double, long double);
	/* ulps: 0 for functions that use no transcendental instruction; the
	 * others are glibc algorithms around F2XM1/FYL2X/FPATAN/..., whose
	 * last-bit differences from hardware they can amplify a little */
	unsigned tol;
	long double lo, hi;
};

static long double rnd_ld(long double lo, long double hi)
{
	long double t = (long double)(rnd() >> 11) / 9007199254740992.0L;
	t += (long double)(rnd() >> 11) / 9007199254740992.0L / 9007199254740992.0L;
	return lo + (hi - lo) * t;
}

static void test_libm(void)
{
	static const struct lfn fns[] = {
		{"expl", expl, NULL, 4, -11000, 11000},
		{"exp2l", exp2l, NULL, 4, -100, 100},
		{"expm1l", expm1l, NULL, 4, -40, 40},
		{"logl", logl, NULL, 4, 0, 1e30L},
		{"log2l", log2l, NULL, 4, 0, 1e10L},
		{"log10l", log10l, NULL, 4, 0, 1e300L},
		{"log1pl", log1pl, NULL, 4, -0.9L, 10},
		{"sinl", sinl, NULL, 4, -100, 100},
		{"cosl", cosl, NULL, 4, -100, 100},
		{"tanl", tanl, NULL, 4, -3, 3},
		{"atanl", atanl, NULL, 4, -50, 50},
		{"asinl", asinl, NULL, 4, -1, 1},
		{"acosl", acosl, NULL, 4, -1, 1},
		{"sinhl", sinhl, NULL, 4, -50, 50},
		{"tanhl", tanhl, NULL, 4, -5, 5},
		{"sqrtl", sqrtl, NULL, 0, 0, 1e100L},
		{"cbrtl", cbrtl, NULL, 4, -1e30L, 1e30L},
		{"rintl", rintl, NULL, 0, -1e20L, 1e20L},
		{"floorl", floorl, NULL, 0, -1e20L, 1e20L},
		{"truncl", truncl, NULL, 0, -1e20L, 1e20L},
		{"roundl", roundl, NULL, 0, -1e20L, 1e20L},
		{"powl", NULL, powl, 4, 0, 40},
		{"atan2l", NULL, atan2l, 4, -1e6L, 1e6L},
		{"fmodl", NULL, fmodl, 0, -1e30L, 1e30L},
		{"remainderl", NULL, remainderl, 0, -1e30L, 1e30L},
		{"hypotl", NULL, hypotl, 0, -1e30L, 1e30L},
	};
	unsigned per = 60 * (unsigned)full_mul, bad = 0, total = 0, off = 0;
	uint64_t maxd = 0;

	if (!libm_ready) {
		fprintf(stderr, "  libm: could not map the process into the guest\n");
		CHECK(libm_ready);
		return;
	}
	for (size_t k = 0; k < sizeof(fns) / sizeof(fns[0]); k++) {
		const struct lfn *f = &fns[k];
		for (unsigned j = 0; j < per; j++) {
			long double a = rnd_ld(f->lo, f->hi), b = rnd_ld(f->lo, f->hi), nat, emu;
			if (f->f2 == powl) {
				a = rnd_ld(0, 2);
				b = rnd_ld(-2000, 2000);
			} else if (f->f2 == fmodl || f->f2 == remainderl) {
				b = ldexpl(rnd_ld(0.5L, 1), (int)rndn(200) - 100);
			}
			/* natively first: also resolves lazy PLT entries */
			nat = f->f1 ? f->f1(a) : f->f2(a, b);
			void *fn = f->f1 ? (void *)f->f1 : (void *)f->f2;
			total++;
			if (!corral_call_ld(fn, a, b, &emu)) {
				bad++;
				continue;
			}
			uint8_t bn[16] = {0}, be[16] = {0};
			memcpy(bn, &nat, 10);
			memcpy(be, &emu, 10);
			uint64_t d = memcmp(bn, be, 10) ? ulp_dist(bn, be) : 0;
			if (d)
				off++;
			if (d > maxd && d != ~0ull)
				maxd = d;
			if (d > f->tol) {
				if (bad++ < 5)
					fprintf(stderr, "  %s(%La, %La): native %La corral %La\n", f->name, a, b, nat,
						emu);
			}
		}
	}
	fprintf(stderr, "  libm: %u calls, %u differ beyond tolerance, %u differ within it (at most %llu ulp)\n", total,
		bad, off, (unsigned long long)maxd);
	CHECK(bad == 0);
}

static int setup(void)
{
	area = mmap(NULL, AREA_LEN + PG, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || mprotect(area + AREA_LEN, PG, PROT_NONE) < 0)
		return -1;
	area[CODE_OFF + 0xf00] = 0x0f;
	area[CODE_OFF + 0xf01] = 0x05;
	if (vmem_init(&vm) < 0)
		return -1;
	for (unsigned off = 0; off < AREA_LEN; off += PG) {
		unsigned prot = off == CODE_OFF ? VMEM_R | VMEM_X : VMEM_R | VMEM_W;
		if (vmem_map(&vm, (uint64_t)(uintptr_t)(area + off), PG, area + off, prot) < 0)
			return -1;
	}
	if (cpu_init(&cpu, CPU_MODE_USER, &vm) < 0)
		return -1;
	cpu_reset_user(&cpu);
	lstack = mmap(NULL, LSTACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	libm_ready = lstack != MAP_FAILED && map_self() == 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = native_handler;
	sigaction(SIGFPE, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	return 0;
}

/* glibc picks string functions for the host CPU (AVX2, EVEX...), which the
 * libc test then runs in corral's CPU; restart with them limited to SSE2. */
static const char tunables[] = "glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,"
			       "-EVEX,-BMI1,-BMI2,-LZCNT,-MOVBE,-POPCNT,-SSSE3,-SSE4_1,-SSE4_2,-ERMS,-FSRM,"
			       "-AVX_Fast_Unaligned_Load";

int main(int argc, char **argv)
{
	test_rng = 0x243f6a8885a308d3ull; /* this test's own sequence */
	(void)argc;
	if (!getenv("CORRAL_T87_EXEC")) {
		setenv("CORRAL_T87_EXEC", "1", 1);
		setenv("GLIBC_TUNABLES", tunables, 1);
		execv("/proc/self/exe", argv);
	}
	const char *f = getenv("CORRAL_FULL"), *seed = getenv("CORRAL_SEED");
	if (f && *f == '1')
		full_mul = 40;
	if (seed && *seed)
		test_rng ^= strtoull(seed, NULL, 0) * 0x9e3779b97f4a7c15ull;
	if (setup() < 0) {
		fprintf(stderr, "t_x87: setup failed\n");
		return 1;
	}
	RUN(test_random);
	RUN(test_sequences);
	RUN(test_pending_mf);
	RUN(test_fxsave_faults);
	RUN(test_libm);
	RUN(test_libc_ld);
	return test_report();
}
