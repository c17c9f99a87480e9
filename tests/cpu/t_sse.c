/* Differential tests of the SSE family (MMX, SSE to SSE4.2, CRC32, MOVBE):
 * every case runs one instruction natively on the host CPU and in corral's
 * CPU from the same registers, MXCSR and memory, and compares everything
 * afterwards (or the fault and the state at the fault). CORRAL_FULL=1 runs
 * many more random cases. */
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "cpu/cpu.h"
#include "cpu/vmem.h"
#include "testhelp.h"

/* ---- The arena: code, stub, state, data, guard, stack; gva == host ---- */

#define PG 4096
enum { A_CODE = 0, A_STUB = 1, A_STATE = 2, A_DATA = 3, A_GUARD = 5, A_STACK = 6, A_PAGES = 10 };
#define DATA_SIZE (2 * PG)

struct tstate {
	uint64_t xmm[16][2];
	uint64_t mm[8];
	uint64_t gpr[16];
	uint64_t rflags;
	uint32_t mxcsr;
	uint32_t host_mxcsr;
};
#define OFF_XMM 0
#define OFF_MM 256
#define OFF_GPR 320
#define OFF_FL 448
#define OFF_MX 456
#define OFF_HOSTMX 460

static uint8_t *arena;
static struct tstate *st_in, *st_out;
static uint8_t *data;
static uint8_t data_init[DATA_SIZE];
static struct vmem vm;
static struct cpu cpu;

/* ---- Random numbers (xorshift; fixed seed so failures reproduce) ---- */

static unsigned rndn(unsigned n)
{
	return (unsigned)(rnd() % n);
}

/* ---- Machine code emission ---- */

struct code {
	uint8_t *p;
	size_t n;
};

static void e8(struct code *c, unsigned v)
{
	c->p[c->n++] = (uint8_t)v;
}
static void e32(struct code *c, uint32_t v)
{
	memcpy(c->p + c->n, &v, 4);
	c->n += 4;
}
static void e64(struct code *c, uint64_t v)
{
	memcpy(c->p + c->n, &v, 8);
	c->n += 8;
}

/* op reg, [rax + disp32] with optional prefix/REX.W, for the prologue and
 * epilogue */
static void e_rax_mem(struct code *c, int pfx, int w, const char *opc, unsigned reg, uint32_t disp)
{
	if (pfx)
		e8(c, pfx);
	if (w || reg >= 8)
		e8(c, 0x40 | (w ? 8 : 0) | (reg >= 8 ? 4 : 0));
	for (; *opc; opc++)
		e8(c, (uint8_t)*opc);
	e8(c, 0x80 | (reg & 7) << 3);
	e32(c, disp);
}

static void emit_prologue(struct code *c)
{
	static const uint8_t push[] = {0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57};
	memcpy(c->p + c->n, push, sizeof(push));
	c->n += sizeof(push);
	e8(c, 0x48), e8(c, 0xb8), e64(c, (uintptr_t)st_in);
	e_rax_mem(c, 0, 0, "\x0f\xae", 3, OFF_HOSTMX); /* stmxcsr */
	e_rax_mem(c, 0, 0, "\x0f\xae", 2, OFF_MX);     /* ldmxcsr */
	for (unsigned k = 0; k < 16; k++)
		e_rax_mem(c, 0xf3, 0, "\x0f\x6f", k, OFF_XMM + 16 * k); /* movdqu */
	for (unsigned k = 0; k < 8; k++)
		e_rax_mem(c, 0, 0, "\x0f\x6f", k, OFF_MM + 8 * k); /* movq mm */
	e_rax_mem(c, 0, 0, "\xff", 6, OFF_FL);			   /* push [rax+fl] */
	e8(c, 0x9d);						   /* popfq */
	for (unsigned r = 1; r < 16; r++)
		if (r != 4)
			e_rax_mem(c, 0, 1, "\x8b", r, OFF_GPR + 8 * r);
	e_rax_mem(c, 0, 1, "\x8b", 0, OFF_GPR);
}

static void emit_epilogue(struct code *c)
{
	static const uint8_t pop[] = {0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0xc3};
	e8(c, 0x50);
	e8(c, 0x48), e8(c, 0xb8), e64(c, (uintptr_t)st_out);
	e_rax_mem(c, 0, 0, "\x8f", 0, OFF_GPR); /* pop [rax+gpr0] */
	for (unsigned r = 1; r < 16; r++)
		if (r != 4)
			e_rax_mem(c, 0, 1, "\x89", r, OFF_GPR + 8 * r);
	e8(c, 0x9c);
	e_rax_mem(c, 0, 0, "\x8f", 0, OFF_FL);
	e_rax_mem(c, 0, 0, "\x0f\xae", 3, OFF_MX);
	for (unsigned k = 0; k < 16; k++)
		e_rax_mem(c, 0xf3, 0, "\x0f\x7f", k, OFF_XMM + 16 * k);
	for (unsigned k = 0; k < 8; k++)
		e_rax_mem(c, 0, 0, "\x0f\x7f", k, OFF_MM + 8 * k);
	e8(c, 0x48), e8(c, 0xb8), e64(c, (uintptr_t)st_in);
	e_rax_mem(c, 0, 0, "\x0f\xae", 2, OFF_HOSTMX);
	memcpy(c->p + c->n, pop, sizeof(pop));
	c->n += sizeof(pop);
}

/* One instruction under test. Memory operands are [rbx + disp32]. */
struct ienc {
	uint8_t pfx; /* 0, 0x66, 0xf2, 0xf3 */
	uint8_t p66; /* an extra 66 before pfx */
	uint8_t map; /* 1: 0F, 2: 0F 38, 3: 0F 3A */
	uint8_t op;
	uint8_t reg, rm;
	uint8_t mem, w, rex;
	int imm; /* -1: none */
	int32_t disp;
};

static void emit_insn(struct code *c, const struct ienc *e)
{
	if (e->p66)
		e8(c, 0x66);
	if (e->pfx)
		e8(c, e->pfx);
	unsigned rex = 0x40 | (e->w ? 8 : 0) | (e->reg >= 8 ? 4 : 0) | (!e->mem && e->rm >= 8 ? 1 : 0);
	if (rex != 0x40 || e->rex)
		e8(c, rex);
	e8(c, 0x0f);
	if (e->map == 2)
		e8(c, 0x38);
	else if (e->map == 3)
		e8(c, 0x3a);
	e8(c, e->op);
	if (e->mem) {
		e8(c, 0x80 | (e->reg & 7) << 3 | 3);
		e32(c, (uint32_t)e->disp);
	} else {
		e8(c, 0xc0 | (e->reg & 7) << 3 | (e->rm & 7));
	}
	if (e->imm >= 0)
		e8(c, (unsigned)e->imm);
}

/* ---- Running natively ---- */

struct result {
	int fault;    /* 0, or a signal number (native) / mapped from the vector (emu) */
	int gp;	      /* SIGSEGV from #GP (si_code SI_KERNEL) rather than #PF */
	uint64_t rip; /* at the fault */
	struct tstate s;
	uint8_t data[DATA_SIZE];
};

static sigjmp_buf native_jb;
static struct result *native_res;

static void on_signal(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	static const int map[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
				    REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};
	struct result *r = native_res;
	r->fault = sig;
	r->gp = sig == SIGSEGV && si->si_code == SI_KERNEL;
	r->rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
	for (int k = 0; k < 16; k++)
		r->s.gpr[k] = (uint64_t)uc->uc_mcontext.gregs[map[k]];
	r->s.rflags = (uint64_t)uc->uc_mcontext.gregs[REG_EFL];
	struct _libc_fpstate *fp = uc->uc_mcontext.fpregs;
	r->s.mxcsr = fp->mxcsr;
	for (int k = 0; k < 16; k++)
		memcpy(r->s.xmm[k], fp->_xmm[k].element, 16);
	for (int k = 0; k < 8; k++)
		memcpy(&r->s.mm[k], fp->_st[k].significand, 8);
	siglongjmp(native_jb, 1);
}

static void run_native(struct result *r)
{
	memset(r, 0, sizeof(*r));
	native_res = r;
	if (!sigsetjmp(native_jb, 1)) {
		((void (*)(void))(void *)(arena + A_CODE * PG))();
		r->s = *st_out;
	}
	__asm__ volatile("emms");
	memcpy(r->data, data, DATA_SIZE);
}

/* ---- Running in corral's CPU ---- */

static void run_emu(struct result *r)
{
	struct cpu *c = &cpu;
	memset(r, 0, sizeof(*r));
	cpu_reset_user(c);
	cpu_flush(c);
	uint64_t top = (uintptr_t)(arena + A_PAGES * PG) - 8;
	memcpy((void *)(uintptr_t)top, &(uint64_t){(uintptr_t)(arena + A_STUB * PG)}, 8);
	c->s.gpr[R_RSP] = top;
	c->s.rip = (uintptr_t)(arena + A_CODE * PG);
	enum cpu_exit e = cpu_run(c, 1000000);
	if (e == CPU_EXIT_SYSCALL) {
		r->s = *st_out;
	} else {
		if (e == CPU_EXIT_EXCEPTION) {
			switch (c->exc_vector) {
			case EXC_XM: r->fault = SIGFPE; break;
			case EXC_MF: r->fault = SIGFPE; break;
			case EXC_UD: r->fault = SIGILL; break;
			case EXC_GP:
				r->fault = SIGSEGV;
				r->gp = 1;
				break;
			case EXC_PF: r->fault = SIGSEGV; break;
			default: r->fault = 1000 + c->exc_vector; break;
			}
		} else {
			r->fault = 2000 + (int)e;
		}
		r->rip = c->s.rip;
		memcpy(r->s.gpr, c->s.gpr, sizeof(r->s.gpr));
		r->s.rflags = cpu_get_rflags(c);
		r->s.mxcsr = c->s.mxcsr;
		memcpy(r->s.xmm, c->s.xmm, sizeof(r->s.xmm));
		for (int k = 0; k < 8; k++)
			r->s.mm[k] = c->s.x87.st[k].mant;
	}
	memcpy(r->data, data, DATA_SIZE);
}

/* ---- Instruction descriptions ---- */

enum { RK_X, RK_M, RK_G };    /* operand kinds: xmm, mm, general register */
enum { D_INT, D_F32, D_F64 }; /* what the xmm registers and memory hold */
#define F_IMM 0x1	      /* imm8 */
#define F_REG 0x2	      /* register form only */
#define F_MEM 0x4	      /* memory form only */
#define F_W 0x8		      /* REX.W is meaningful: pick it at random */
#define F_APPROX 0x10	      /* destination is an estimate: compare within 2^-10 */
#define F_FIX 0x20	      /* ModRM.reg is the fixed value fix */
#define F_BYTE 0x40	      /* r/m is a byte register: REX or not at random */
#define F_P66 0x80	      /* an extra 66 prefix */
#define F_NOFLIP 0x100	      /* do not try other prefixes on this opcode */
#define F_MXCSR 0x200	      /* memory holds MXCSR images */
#define F_CMPIMM 0x400	      /* imm8 mostly 0-7 */

struct tdesc {
	const char *name;
	uint8_t pfx, map, op;
	uint16_t flags;
	uint8_t regk, rmk, dk;
	int8_t fix;
};

#define MX(n, m, o)                                                                                                    \
	{n " (mmx)", 0, m, o, 0, RK_M, RK_M, D_INT, 0},                                                                \
	{                                                                                                              \
		n, 0x66, m, o, 0, RK_X, RK_X, D_INT, 0                                                                 \
	}
#define XI(n, m, o)                                                                                                    \
	{                                                                                                              \
		n, 0x66, m, o, 0, RK_X, RK_X, D_INT, 0                                                                 \
	}
#define FP4(n, o, f)                                                                                                   \
	{n "ps", 0, 1, o, f, RK_X, RK_X, D_F32, 0}, {n "pd", 0x66, 1, o, f, RK_X, RK_X, D_F64, 0},                     \
		{n "ss", 0xf3, 1, o, f, RK_X, RK_X, D_F32, 0},                                                         \
	{                                                                                                              \
		n "sd", 0xf2, 1, o, f, RK_X, RK_X, D_F64, 0                                                            \
	}

static const struct tdesc descs[] = {
	/* MMX / SSE2 integer */
	MX("punpcklbw", 1, 0x60),
	MX("punpcklwd", 1, 0x61),
	MX("punpckldq", 1, 0x62),
	MX("packsswb", 1, 0x63),
	MX("pcmpgtb", 1, 0x64),
	MX("pcmpgtw", 1, 0x65),
	MX("pcmpgtd", 1, 0x66),
	MX("packuswb", 1, 0x67),
	MX("punpckhbw", 1, 0x68),
	MX("punpckhwd", 1, 0x69),
	MX("punpckhdq", 1, 0x6a),
	MX("packssdw", 1, 0x6b),
	XI("punpcklqdq", 1, 0x6c),
	XI("punpckhqdq", 1, 0x6d),
	MX("pcmpeqb", 1, 0x74),
	MX("pcmpeqw", 1, 0x75),
	MX("pcmpeqd", 1, 0x76),
	MX("psrlw", 1, 0xd1),
	MX("psrld", 1, 0xd2),
	MX("psrlq", 1, 0xd3),
	MX("paddq", 1, 0xd4),
	MX("pmullw", 1, 0xd5),
	MX("psubusb", 1, 0xd8),
	MX("psubusw", 1, 0xd9),
	MX("pminub", 1, 0xda),
	MX("pand", 1, 0xdb),
	MX("paddusb", 1, 0xdc),
	MX("paddusw", 1, 0xdd),
	MX("pmaxub", 1, 0xde),
	MX("pandn", 1, 0xdf),
	MX("pavgb", 1, 0xe0),
	MX("psraw", 1, 0xe1),
	MX("psrad", 1, 0xe2),
	MX("pavgw", 1, 0xe3),
	MX("pmulhuw", 1, 0xe4),
	MX("pmulhw", 1, 0xe5),
	MX("psubsb", 1, 0xe8),
	MX("psubsw", 1, 0xe9),
	MX("pminsw", 1, 0xea),
	MX("por", 1, 0xeb),
	MX("paddsb", 1, 0xec),
	MX("paddsw", 1, 0xed),
	MX("pmaxsw", 1, 0xee),
	MX("pxor", 1, 0xef),
	MX("psllw", 1, 0xf1),
	MX("pslld", 1, 0xf2),
	MX("psllq", 1, 0xf3),
	MX("pmuludq", 1, 0xf4),
	MX("pmaddwd", 1, 0xf5),
	MX("psadbw", 1, 0xf6),
	MX("psubb", 1, 0xf8),
	MX("psubw", 1, 0xf9),
	MX("psubd", 1, 0xfa),
	MX("psubq", 1, 0xfb),
	MX("paddb", 1, 0xfc),
	MX("paddw", 1, 0xfd),
	MX("paddd", 1, 0xfe),
	/* SSSE3 */
	MX("pshufb", 2, 0x00),
	MX("phaddw", 2, 0x01),
	MX("phaddd", 2, 0x02),
	MX("phaddsw", 2, 0x03),
	MX("pmaddubsw", 2, 0x04),
	MX("phsubw", 2, 0x05),
	MX("phsubd", 2, 0x06),
	MX("phsubsw", 2, 0x07),
	MX("psignb", 2, 0x08),
	MX("psignw", 2, 0x09),
	MX("psignd", 2, 0x0a),
	MX("pmulhrsw", 2, 0x0b),
	MX("pabsb", 2, 0x1c),
	MX("pabsw", 2, 0x1d),
	MX("pabsd", 2, 0x1e),
	{"palignr (mmx)", 0, 3, 0x0f, F_IMM, RK_M, RK_M, D_INT, 0},
	{"palignr", 0x66, 3, 0x0f, F_IMM, RK_X, RK_X, D_INT, 0},
	/* SSE4.1 / 4.2 integer */
	XI("pblendvb", 2, 0x10),
	{"blendvps", 0x66, 2, 0x14, 0, RK_X, RK_X, D_F32, 0},
	{"blendvpd", 0x66, 2, 0x15, 0, RK_X, RK_X, D_F64, 0},
	XI("ptest", 2, 0x17),
	XI("pmovsxbw", 2, 0x20),
	XI("pmovsxbd", 2, 0x21),
	XI("pmovsxbq", 2, 0x22),
	XI("pmovsxwd", 2, 0x23),
	XI("pmovsxwq", 2, 0x24),
	XI("pmovsxdq", 2, 0x25),
	XI("pmuldq", 2, 0x28),
	XI("pcmpeqq", 2, 0x29),
	{"movntdqa", 0x66, 2, 0x2a, F_MEM, RK_X, RK_X, D_INT, 0},
	XI("packusdw", 2, 0x2b),
	XI("pmovzxbw", 2, 0x30),
	XI("pmovzxbd", 2, 0x31),
	XI("pmovzxbq", 2, 0x32),
	XI("pmovzxwd", 2, 0x33),
	XI("pmovzxwq", 2, 0x34),
	XI("pmovzxdq", 2, 0x35),
	XI("pcmpgtq", 2, 0x37),
	XI("pminsb", 2, 0x38),
	XI("pminsd", 2, 0x39),
	XI("pminuw", 2, 0x3a),
	XI("pminud", 2, 0x3b),
	XI("pmaxsb", 2, 0x3c),
	XI("pmaxsd", 2, 0x3d),
	XI("pmaxuw", 2, 0x3e),
	XI("pmaxud", 2, 0x3f),
	XI("pmulld", 2, 0x40),
	XI("phminposuw", 2, 0x41),
	{"blendps", 0x66, 3, 0x0c, F_IMM, RK_X, RK_X, D_F32, 0},
	{"blendpd", 0x66, 3, 0x0d, F_IMM, RK_X, RK_X, D_F64, 0},
	{"pblendw", 0x66, 3, 0x0e, F_IMM, RK_X, RK_X, D_INT, 0},
	{"pextrb", 0x66, 3, 0x14, F_IMM | F_W, RK_X, RK_G, D_INT, 0},
	{"pextrw (0f3a)", 0x66, 3, 0x15, F_IMM | F_W, RK_X, RK_G, D_INT, 0},
	{"pextrd/q", 0x66, 3, 0x16, F_IMM | F_W, RK_X, RK_G, D_INT, 0},
	{"extractps", 0x66, 3, 0x17, F_IMM | F_W, RK_X, RK_G, D_F32, 0},
	{"pinsrb", 0x66, 3, 0x20, F_IMM | F_W, RK_X, RK_G, D_INT, 0},
	{"insertps", 0x66, 3, 0x21, F_IMM, RK_X, RK_X, D_F32, 0},
	{"pinsrd/q", 0x66, 3, 0x22, F_IMM | F_W, RK_X, RK_G, D_INT, 0},
	{"mpsadbw", 0x66, 3, 0x42, F_IMM, RK_X, RK_X, D_INT, 0},
	{"pclmulqdq", 0x66, 3, 0x44, F_IMM, RK_X, RK_X, D_INT, 0},
	{"pcmpestrm", 0x66, 3, 0x60, F_IMM | F_W, RK_X, RK_X, D_INT, 0},
	{"pcmpestri", 0x66, 3, 0x61, F_IMM | F_W, RK_X, RK_X, D_INT, 0},
	{"pcmpistrm", 0x66, 3, 0x62, F_IMM, RK_X, RK_X, D_INT, 0},
	{"pcmpistri", 0x66, 3, 0x63, F_IMM, RK_X, RK_X, D_INT, 0},
	{"movbe load", 0, 2, 0xf0, F_MEM | F_W | F_NOFLIP, RK_G, RK_G, D_INT, 0},
	{"movbe store", 0, 2, 0xf1, F_MEM | F_W | F_NOFLIP, RK_G, RK_G, D_INT, 0},
	{"movbe load16", 0x66, 2, 0xf0, F_MEM | F_NOFLIP, RK_G, RK_G, D_INT, 0},
	{"movbe store16", 0x66, 2, 0xf1, F_MEM | F_NOFLIP, RK_G, RK_G, D_INT, 0},
	{"crc32 r/m8", 0xf2, 2, 0xf0, F_W | F_BYTE | F_NOFLIP, RK_G, RK_G, D_INT, 0},
	{"crc32 r/m32", 0xf2, 2, 0xf1, F_W | F_NOFLIP, RK_G, RK_G, D_INT, 0},
	{"crc32 r/m16", 0xf2, 2, 0xf1, F_P66 | F_NOFLIP, RK_G, RK_G, D_INT, 0},
	/* moves and shuffles */
	{"movups", 0, 1, 0x10, 0, RK_X, RK_X, D_F32, 0},
	{"movupd", 0x66, 1, 0x10, 0, RK_X, RK_X, D_F64, 0},
	{"movss", 0xf3, 1, 0x10, 0, RK_X, RK_X, D_F32, 0},
	{"movsd", 0xf2, 1, 0x10, 0, RK_X, RK_X, D_F64, 0},
	{"movups st", 0, 1, 0x11, 0, RK_X, RK_X, D_F32, 0},
	{"movupd st", 0x66, 1, 0x11, 0, RK_X, RK_X, D_F64, 0},
	{"movss st", 0xf3, 1, 0x11, 0, RK_X, RK_X, D_F32, 0},
	{"movsd st", 0xf2, 1, 0x11, 0, RK_X, RK_X, D_F64, 0},
	{"movlps/movhlps", 0, 1, 0x12, 0, RK_X, RK_X, D_F32, 0},
	{"movlpd", 0x66, 1, 0x12, F_MEM, RK_X, RK_X, D_F64, 0},
	{"movsldup", 0xf3, 1, 0x12, 0, RK_X, RK_X, D_F32, 0},
	{"movddup", 0xf2, 1, 0x12, 0, RK_X, RK_X, D_F64, 0},
	{"movlps st", 0, 1, 0x13, F_MEM, RK_X, RK_X, D_F32, 0},
	{"movlpd st", 0x66, 1, 0x13, F_MEM, RK_X, RK_X, D_F64, 0},
	{"unpcklps", 0, 1, 0x14, 0, RK_X, RK_X, D_F32, 0},
	{"unpcklpd", 0x66, 1, 0x14, 0, RK_X, RK_X, D_F64, 0},
	{"unpckhps", 0, 1, 0x15, 0, RK_X, RK_X, D_F32, 0},
	{"unpckhpd", 0x66, 1, 0x15, 0, RK_X, RK_X, D_F64, 0},
	{"movhps/movlhps", 0, 1, 0x16, 0, RK_X, RK_X, D_F32, 0},
	{"movhpd", 0x66, 1, 0x16, F_MEM, RK_X, RK_X, D_F64, 0},
	{"movshdup", 0xf3, 1, 0x16, 0, RK_X, RK_X, D_F32, 0},
	{"movhps st", 0, 1, 0x17, F_MEM, RK_X, RK_X, D_F32, 0},
	{"movhpd st", 0x66, 1, 0x17, F_MEM, RK_X, RK_X, D_F64, 0},
	{"movaps", 0, 1, 0x28, 0, RK_X, RK_X, D_F32, 0},
	{"movapd", 0x66, 1, 0x28, 0, RK_X, RK_X, D_F64, 0},
	{"movaps st", 0, 1, 0x29, 0, RK_X, RK_X, D_F32, 0},
	{"movapd st", 0x66, 1, 0x29, 0, RK_X, RK_X, D_F64, 0},
	/* F2/F3 0F 2B are AMD's MOVNTSD/MOVNTSS (SSE4a): no prefix trials */
	{"movntps", 0, 1, 0x2b, F_MEM | F_NOFLIP, RK_X, RK_X, D_F32, 0},
	{"movntpd", 0x66, 1, 0x2b, F_MEM | F_NOFLIP, RK_X, RK_X, D_F64, 0},
	{"movmskps", 0, 1, 0x50, F_REG | F_W, RK_G, RK_X, D_F32, 0},
	{"movmskpd", 0x66, 1, 0x50, F_REG | F_W, RK_G, RK_X, D_F64, 0},
	{"andps", 0, 1, 0x54, 0, RK_X, RK_X, D_F32, 0},
	{"andpd", 0x66, 1, 0x54, 0, RK_X, RK_X, D_F64, 0},
	{"andnps", 0, 1, 0x55, 0, RK_X, RK_X, D_F32, 0},
	{"andnpd", 0x66, 1, 0x55, 0, RK_X, RK_X, D_F64, 0},
	{"orps", 0, 1, 0x56, 0, RK_X, RK_X, D_F32, 0},
	{"orpd", 0x66, 1, 0x56, 0, RK_X, RK_X, D_F64, 0},
	{"xorps", 0, 1, 0x57, 0, RK_X, RK_X, D_F32, 0},
	{"xorpd", 0x66, 1, 0x57, 0, RK_X, RK_X, D_F64, 0},
	{"movd mm,r/m", 0, 1, 0x6e, F_W, RK_M, RK_G, D_INT, 0},
	{"movd xmm,r/m", 0x66, 1, 0x6e, F_W, RK_X, RK_G, D_INT, 0},
	{"movq mm,mm/m", 0, 1, 0x6f, 0, RK_M, RK_M, D_INT, 0},
	{"movdqa", 0x66, 1, 0x6f, 0, RK_X, RK_X, D_INT, 0},
	{"movdqu", 0xf3, 1, 0x6f, 0, RK_X, RK_X, D_INT, 0},
	{"pshufw", 0, 1, 0x70, F_IMM, RK_M, RK_M, D_INT, 0},
	{"pshufd", 0x66, 1, 0x70, F_IMM, RK_X, RK_X, D_INT, 0},
	{"pshufhw", 0xf3, 1, 0x70, F_IMM, RK_X, RK_X, D_INT, 0},
	{"pshuflw", 0xf2, 1, 0x70, F_IMM, RK_X, RK_X, D_INT, 0},
	{"psrlw imm (mmx)", 0, 1, 0x71, F_IMM | F_REG | F_FIX, RK_M, RK_M, D_INT, 2},
	{"psraw imm (mmx)", 0, 1, 0x71, F_IMM | F_REG | F_FIX, RK_M, RK_M, D_INT, 4},
	{"psllw imm (mmx)", 0, 1, 0x71, F_IMM | F_REG | F_FIX, RK_M, RK_M, D_INT, 6},
	{"psrld imm (mmx)", 0, 1, 0x72, F_IMM | F_REG | F_FIX, RK_M, RK_M, D_INT, 2},
	{"psrad imm (mmx)", 0, 1, 0x72, F_IMM | F_REG | F_FIX, RK_M, RK_M, D_INT, 4},
	{"pslld imm (mmx)", 0, 1, 0x72, F_IMM | F_REG | F_FIX, RK_M, RK_M, D_INT, 6},
	{"psrlq imm (mmx)", 0, 1, 0x73, F_IMM | F_REG | F_FIX, RK_M, RK_M, D_INT, 2},
	{"psllq imm (mmx)", 0, 1, 0x73, F_IMM | F_REG | F_FIX, RK_M, RK_M, D_INT, 6},
	{"psrlw imm", 0x66, 1, 0x71, F_IMM | F_REG | F_FIX, RK_X, RK_X, D_INT, 2},
	{"psraw imm", 0x66, 1, 0x71, F_IMM | F_REG | F_FIX, RK_X, RK_X, D_INT, 4},
	{"psllw imm", 0x66, 1, 0x71, F_IMM | F_REG | F_FIX, RK_X, RK_X, D_INT, 6},
	{"psrld imm", 0x66, 1, 0x72, F_IMM | F_REG | F_FIX, RK_X, RK_X, D_INT, 2},
	{"psrad imm", 0x66, 1, 0x72, F_IMM | F_REG | F_FIX, RK_X, RK_X, D_INT, 4},
	{"pslld imm", 0x66, 1, 0x72, F_IMM | F_REG | F_FIX, RK_X, RK_X, D_INT, 6},
	{"psrlq imm", 0x66, 1, 0x73, F_IMM | F_REG | F_FIX, RK_X, RK_X, D_INT, 2},
	{"psrldq imm", 0x66, 1, 0x73, F_IMM | F_REG | F_FIX, RK_X, RK_X, D_INT, 3},
	{"psllq imm", 0x66, 1, 0x73, F_IMM | F_REG | F_FIX, RK_X, RK_X, D_INT, 6},
	{"pslldq imm", 0x66, 1, 0x73, F_IMM | F_REG | F_FIX, RK_X, RK_X, D_INT, 7},
	{"movd r/m,mm", 0, 1, 0x7e, F_W, RK_M, RK_G, D_INT, 0},
	{"movd r/m,xmm", 0x66, 1, 0x7e, F_W, RK_X, RK_G, D_INT, 0},
	{"movq xmm,xmm/m", 0xf3, 1, 0x7e, 0, RK_X, RK_X, D_INT, 0},
	{"movq mm/m,mm", 0, 1, 0x7f, 0, RK_M, RK_M, D_INT, 0},
	{"movdqa st", 0x66, 1, 0x7f, 0, RK_X, RK_X, D_INT, 0},
	{"movdqu st", 0xf3, 1, 0x7f, 0, RK_X, RK_X, D_INT, 0},
	{"pinsrw (mmx)", 0, 1, 0xc4, F_IMM, RK_M, RK_G, D_INT, 0},
	{"pinsrw", 0x66, 1, 0xc4, F_IMM, RK_X, RK_G, D_INT, 0},
	{"pextrw (mmx)", 0, 1, 0xc5, F_IMM | F_REG | F_W, RK_G, RK_M, D_INT, 0},
	{"pextrw", 0x66, 1, 0xc5, F_IMM | F_REG | F_W, RK_G, RK_X, D_INT, 0},
	{"shufps", 0, 1, 0xc6, F_IMM, RK_X, RK_X, D_F32, 0},
	{"shufpd", 0x66, 1, 0xc6, F_IMM, RK_X, RK_X, D_F64, 0},
	{"movq xmm/m,xmm", 0x66, 1, 0xd6, 0, RK_X, RK_X, D_INT, 0},
	{"movq2dq", 0xf3, 1, 0xd6, F_REG, RK_X, RK_M, D_INT, 0},
	{"movdq2q", 0xf2, 1, 0xd6, F_REG, RK_M, RK_X, D_INT, 0},
	{"pmovmskb (mmx)", 0, 1, 0xd7, F_REG | F_W, RK_G, RK_M, D_INT, 0},
	{"pmovmskb", 0x66, 1, 0xd7, F_REG | F_W, RK_G, RK_X, D_INT, 0},
	{"movntq", 0, 1, 0xe7, F_MEM, RK_M, RK_M, D_INT, 0},
	{"movntdq", 0x66, 1, 0xe7, F_MEM, RK_X, RK_X, D_INT, 0},
	{"lddqu", 0xf2, 1, 0xf0, F_MEM, RK_X, RK_X, D_INT, 0},
	{"maskmovq", 0, 1, 0xf7, F_REG, RK_M, RK_M, D_INT, 0},
	{"maskmovdqu", 0x66, 1, 0xf7, F_REG, RK_X, RK_X, D_INT, 0},
	{"ldmxcsr", 0, 1, 0xae, F_MEM | F_FIX | F_MXCSR | F_NOFLIP, RK_X, RK_X, D_INT, 2},
	{"stmxcsr", 0, 1, 0xae, F_MEM | F_FIX | F_NOFLIP, RK_X, RK_X, D_INT, 3},
	/* floating point */
	FP4("sqrt", 0x51, 0),
	FP4("add", 0x58, 0),
	FP4("mul", 0x59, 0),
	FP4("sub", 0x5c, 0),
	FP4("min", 0x5d, 0),
	FP4("div", 0x5e, 0),
	FP4("max", 0x5f, 0),
	FP4("cmp", 0xc2, F_IMM | F_CMPIMM),
	{"rsqrtps", 0, 1, 0x52, F_APPROX, RK_X, RK_X, D_F32, 0},
	{"rsqrtss", 0xf3, 1, 0x52, F_APPROX, RK_X, RK_X, D_F32, 0},
	{"rcpps", 0, 1, 0x53, F_APPROX, RK_X, RK_X, D_F32, 0},
	{"rcpss", 0xf3, 1, 0x53, F_APPROX, RK_X, RK_X, D_F32, 0},
	{"cvtpi2ps", 0, 1, 0x2a, 0, RK_X, RK_M, D_F32, 0},
	{"cvtpi2pd", 0x66, 1, 0x2a, 0, RK_X, RK_M, D_F64, 0},
	{"cvtsi2ss", 0xf3, 1, 0x2a, F_W, RK_X, RK_G, D_F32, 0},
	{"cvtsi2sd", 0xf2, 1, 0x2a, F_W, RK_X, RK_G, D_F64, 0},
	{"cvttps2pi", 0, 1, 0x2c, 0, RK_M, RK_X, D_F32, 0},
	{"cvttpd2pi", 0x66, 1, 0x2c, 0, RK_M, RK_X, D_F64, 0},
	{"cvttss2si", 0xf3, 1, 0x2c, F_W, RK_G, RK_X, D_F32, 0},
	{"cvttsd2si", 0xf2, 1, 0x2c, F_W, RK_G, RK_X, D_F64, 0},
	{"cvtps2pi", 0, 1, 0x2d, 0, RK_M, RK_X, D_F32, 0},
	{"cvtpd2pi", 0x66, 1, 0x2d, 0, RK_M, RK_X, D_F64, 0},
	{"cvtss2si", 0xf3, 1, 0x2d, F_W, RK_G, RK_X, D_F32, 0},
	{"cvtsd2si", 0xf2, 1, 0x2d, F_W, RK_G, RK_X, D_F64, 0},
	{"ucomiss", 0, 1, 0x2e, 0, RK_X, RK_X, D_F32, 0},
	{"ucomisd", 0x66, 1, 0x2e, 0, RK_X, RK_X, D_F64, 0},
	{"comiss", 0, 1, 0x2f, 0, RK_X, RK_X, D_F32, 0},
	{"comisd", 0x66, 1, 0x2f, 0, RK_X, RK_X, D_F64, 0},
	{"cvtps2pd", 0, 1, 0x5a, 0, RK_X, RK_X, D_F32, 0},
	{"cvtpd2ps", 0x66, 1, 0x5a, 0, RK_X, RK_X, D_F64, 0},
	{"cvtss2sd", 0xf3, 1, 0x5a, 0, RK_X, RK_X, D_F32, 0},
	{"cvtsd2ss", 0xf2, 1, 0x5a, 0, RK_X, RK_X, D_F64, 0},
	{"cvtdq2ps", 0, 1, 0x5b, 0, RK_X, RK_X, D_INT, 0},
	{"cvtps2dq", 0x66, 1, 0x5b, 0, RK_X, RK_X, D_F32, 0},
	{"cvttps2dq", 0xf3, 1, 0x5b, 0, RK_X, RK_X, D_F32, 0},
	{"cvttpd2dq", 0x66, 1, 0xe6, 0, RK_X, RK_X, D_F64, 0},
	{"cvtdq2pd", 0xf3, 1, 0xe6, 0, RK_X, RK_X, D_INT, 0},
	{"cvtpd2dq", 0xf2, 1, 0xe6, 0, RK_X, RK_X, D_F64, 0},
	{"haddpd", 0x66, 1, 0x7c, 0, RK_X, RK_X, D_F64, 0},
	{"haddps", 0xf2, 1, 0x7c, 0, RK_X, RK_X, D_F32, 0},
	{"hsubpd", 0x66, 1, 0x7d, 0, RK_X, RK_X, D_F64, 0},
	{"hsubps", 0xf2, 1, 0x7d, 0, RK_X, RK_X, D_F32, 0},
	{"addsubpd", 0x66, 1, 0xd0, 0, RK_X, RK_X, D_F64, 0},
	{"addsubps", 0xf2, 1, 0xd0, 0, RK_X, RK_X, D_F32, 0},
	{"roundps", 0x66, 3, 0x08, F_IMM, RK_X, RK_X, D_F32, 0},
	{"roundpd", 0x66, 3, 0x09, F_IMM, RK_X, RK_X, D_F64, 0},
	{"roundss", 0x66, 3, 0x0a, F_IMM, RK_X, RK_X, D_F32, 0},
	{"roundsd", 0x66, 3, 0x0b, F_IMM, RK_X, RK_X, D_F64, 0},
	{"dpps", 0x66, 3, 0x40, F_IMM, RK_X, RK_X, D_F32, 0},
	{"dppd", 0x66, 3, 0x41, F_IMM, RK_X, RK_X, D_F64, 0},
};
#define NDESCS (sizeof(descs) / sizeof(descs[0]))

/* ---- Inputs ---- */

static const uint32_t f32_pool[] = {
	0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7fc12345, 0xffd00001, 0x7f800001,
	0xff812345, 0x7fa00000, 0x00000001, 0x80000001, 0x007fffff, 0x80400000, 0x00800000, 0x80800000, 0x00800001,
	0x7f7fffff, 0xff7fffff, 0x3f800000, 0xbf800000, 0x3fc00000, 0x3f000000, 0x40200000, 0xc0200000, 0x3f7ffffe,
	0x3f7fffff, 0x3f800001, 0x4f000000, 0xcf000000, 0x4effffff, 0xcf000001, 0x5f000000, 0xdf000000, 0x5effffff,
	0x4b800001, 0x40000000, 0x34000000, 0x1f800000, 0x5f800000, 0x00ffffff, 0x3eaaaaab, 0x40490fdb,
};
static const uint64_t f64_pool[] = {
	0x0000000000000000, 0x8000000000000000, 0x7ff0000000000000, 0xfff0000000000000, 0x7ff8000000000000,
	0xfff8000000000000, 0x7ff8000012345678, 0xfff4000000000001, 0x7ff0000000000001, 0xfff0123456789abc,
	0x7ff4000000000000, 0x0000000000000001, 0x8000000000000001, 0x000fffffffffffff, 0x8008000000000000,
	0x0010000000000000, 0x8010000000000000, 0x0010000000000001, 0x7fefffffffffffff, 0xffefffffffffffff,
	0x3ff0000000000000, 0xbff0000000000000, 0x3ff8000000000000, 0x3fe0000000000000, 0x4004000000000000,
	0xc004000000000000, 0x3feffffffffffffe, 0x3fefffffffffffff, 0x3ff0000000000001, 0x41e0000000000000,
	0xc1e0000000000000, 0x41dfffffffffffff, 0xc1e0000000100000, 0x41dfffffffe00000, 0xc1e0000000200000,
	0x43e0000000000000, 0xc3e0000000000000, 0x43dfffffffffffff, 0x4340000000000001, 0x3690000000000000,
	0x36a0000000000001, 0x47efffffe0000000, 0x47effffff0000000, 0x380fffffffffffff, 0x3810000000000000,
	0x37f0000000000000, 0x3fd5555555555555, 0x400921fb54442d18,
};

static uint32_t gen_f32(void)
{
	unsigned m = rndn(10);
	if (m < 4)
		return f32_pool[rndn(sizeof(f32_pool) / 4)];
	uint32_t sign = (uint32_t)(rnd() & 1) << 31, frac = (uint32_t)rnd() & 0x7fffff, exp;
	if (m < 7)
		exp = 127 - 20 + rndn(41);
	else if (m < 8)
		exp = rndn(6);
	else if (m < 9)
		exp = 250 + rndn(5);
	else
		exp = rndn(255);
	if (rndn(4) == 0)
		frac &= ~0u << rndn(23); /* few significant bits: exact results, ties */
	return sign | exp << 23 | frac;
}

static uint64_t gen_f64(void)
{
	unsigned m = rndn(10);
	if (m < 4)
		return f64_pool[rndn(sizeof(f64_pool) / 8)];
	uint64_t sign = (rnd() & 1) << 63, frac = rnd() & 0xfffffffffffffull, exp;
	if (m < 7)
		exp = 1023 - 40 + rndn(81);
	else if (m < 8)
		exp = rndn(6);
	else if (m < 9)
		exp = 2040 + rndn(7);
	else
		exp = rndn(2047);
	if (rndn(4) == 0)
		frac &= ~0ull << rndn(52);
	return sign | exp << 52 | frac;
}

/* Bytes of integer data: full random, a small alphabet (equalities, NULs,
 * saturation edges) or small numbers (shift counts, lengths). */
static void gen_int(uint8_t *p, unsigned n, unsigned mode)
{
	static const uint8_t alpha[] = {0, 0, 1, 2, 'a', 'b', 'c', 0x7f, 0x80, 0xff, 0xfe, 0x81};
	switch (mode) {
	case 0:
		for (unsigned k = 0; k < n; k++)
			p[k] = (uint8_t)rnd();
		break;
	case 1:
		for (unsigned k = 0; k < n; k++)
			p[k] = alpha[rndn(sizeof(alpha))];
		break;
	default:
		memset(p, 0, n);
		for (unsigned k = 0; k < n; k += 8)
			p[k] = (uint8_t)rndn(70);
		break;
	}
}

static void gen_vec(uint8_t *p, unsigned n, unsigned dk)
{
	if (dk == D_F32) {
		for (unsigned k = 0; k < n; k += 4) {
			uint32_t v = gen_f32();
			memcpy(p + k, &v, 4);
		}
	} else if (dk == D_F64) {
		for (unsigned k = 0; k < n; k += 8) {
			uint64_t v = gen_f64();
			memcpy(p + k, &v, 8);
		}
	} else {
		unsigned m = rndn(8);
		gen_int(p, n, m < 4 ? 0 : m < 7 ? 1 : 2);
	}
}

/* Operand pairs at the edges of underflow and overflow, where x86's
 * tininess-after-rounding and the unmasked-exception rules show. */
static const uint32_t f32_pairs[][2] = {
	{0x00800001, 0x3f7ffffe}, {0x3f7ffffe, 0x00800001}, {0x00ffffff, 0x3f000000}, {0x00800000, 0x3f800001},
	{0x00800000, 0x3f7fffff}, {0x7f7fffff, 0x40000000}, {0x7f7fffff, 0x3f800001}, {0x00800000, 0x3f000000},
	{0x7f000000, 0x40000000}, {0x00c00000, 0x3f2aaaab}, {0x00800003, 0x3f7ffffd},
};
static const uint64_t f64_pairs[][2] = {
	{0x0010000000000001, 0x3feffffffffffffe}, {0x3feffffffffffffe, 0x0010000000000001},
	{0x001fffffffffffff, 0x3fe0000000000000}, {0x0010000000000000, 0x3ff0000000000001},
	{0x7fefffffffffffff, 0x4000000000000000}, {0x7fefffffffffffff, 0x3ff0000000000001},
	{0x0010000000000000, 0x3fe0000000000000}, {0x7fe0000000000000, 0x4000000000000000},
	{0x0010000000000003, 0x3feffffffffffffd}, {0x380fffffffffffff, 0x3ff0000000000001},
	{0x3810000000000001, 0x3fefffffffffffff},
};

static uint32_t gen_mxcsr(void)
{
	uint32_t mx = 0x1f80 | (uint32_t)rndn(4) << 13;
	if (!rndn(4))
		mx |= 0x40; /* DAZ */
	if (!rndn(4))
		mx |= 0x8000; /* FZ */
	if (!rndn(8))
		mx |= (uint32_t)rnd() & 0x3f;
	if (!rndn(12))
		mx &= ~(((uint32_t)rnd() & 0x3f) << 7);
	return mx;
}

static bool full_run;
static unsigned cases_run, cases_fault;

/* Build one random case of d into the arena and st_in; returns the encoding */
static void make_case(const struct tdesc *d, struct ienc *e)
{
	memset(e, 0, sizeof(*e));
	e->pfx = d->pfx;
	e->p66 = !!(d->flags & F_P66);
	e->map = d->map;
	e->op = d->op;
	e->imm = -1;
	if (d->flags & F_IMM)
		e->imm = (d->flags & F_CMPIMM) && rndn(8) ? (int)rndn(8) : (int)rndn(256);
	e->w = (d->flags & F_W) ? rndn(2) : 0;
	e->mem = (d->flags & F_MEM) ? 1 : (d->flags & F_REG) ? 0 : rndn(3) == 0;
	/* Operand registers: never 3 (rbx, the memory base) or 4 (rsp), as a
	 * trial of another form might make them general registers. */
	do
		e->reg = (uint8_t)rndn(d->regk == RK_M ? 8 : 16);
	while (e->reg == 3 || e->reg == 4 || (d->regk == RK_M && (e->reg == 11 || e->reg == 12)));
	do
		e->rm = (uint8_t)rndn(d->rmk == RK_M ? 8 : 16);
	while (e->rm == 3 || e->rm == 4);
	if (d->flags & F_FIX)
		e->reg = (uint8_t)d->fix;
	if (d->flags & F_BYTE)
		e->rex = rndn(2);
	/* Now and then, another form or prefix: validity must match the host. */
	if (!(d->flags & F_NOFLIP) && !rndn(40)) {
		if (rndn(2))
			e->mem ^= 1;
		else
			e->pfx = (uint8_t[]){0, 0x66, 0xf2, 0xf3}[rndn(4)];
	}

	/* Memory operand address: aligned, misaligned, or running into the
	 * guard page. */
	unsigned off = (unsigned)rndn(DATA_SIZE / 16 - 1) * 16;
	unsigned r = rndn(64);
	if (r < 6)
		off += 1 + rndn(15);
	else if (r == 6)
		off = DATA_SIZE - 1 - rndn(15);
	e->disp = (int32_t)off;

	/* Registers */
	for (unsigned k = 0; k < 16; k++)
		gen_vec((uint8_t *)st_in->xmm[k], 16, d->dk);
	for (unsigned k = 0; k < 8; k++)
		gen_int((uint8_t *)&st_in->mm[k], 8, rndn(3));
	for (unsigned k = 0; k < 16; k++) {
		switch (rndn(4)) {
		case 0: st_in->gpr[k] = rnd(); break;
		case 1: st_in->gpr[k] = (uint64_t)(int64_t)(int32_t)rnd(); break;
		case 2: st_in->gpr[k] = (uint64_t)(int64_t)(int8_t)rnd(); break;
		default: st_in->gpr[k] = rnd() & 0xffff; break;
		}
	}
	if (rndn(4)) { /* explicit string lengths mostly in range */
		st_in->gpr[0] = (uint64_t)(int64_t)((int)rndn(41) - 20);
		st_in->gpr[2] = (uint64_t)(int64_t)((int)rndn(41) - 20);
	}
	st_in->gpr[3] = (uintptr_t)data;
	st_in->gpr[7] = (uintptr_t)data + rndn(DATA_SIZE - 15);
	if (!rndn(64))
		st_in->gpr[7] = (uintptr_t)data + DATA_SIZE - 1 - rndn(15);
	st_in->rflags = 0x2 | (rnd() & 0x8d5);
	st_in->mxcsr = gen_mxcsr();

	/* Memory */
	for (unsigned k = (off & ~15u) - (off >= 16 ? 16 : 0); k < DATA_SIZE && k < (off & ~15u) + 32; k += 16)
		gen_vec(data_init + k, 16, d->dk);
	unsigned doff = (unsigned)(st_in->gpr[7] - (uintptr_t)data) & ~15u;
	if (doff > DATA_SIZE - 32)
		doff = DATA_SIZE - 32;
	gen_vec(data_init + doff, 16, d->dk);
	gen_vec(data_init + doff + 16, 16, d->dk);
	if (d->flags & F_MXCSR) {
		uint32_t v = gen_mxcsr();
		if (!rndn(16)) /* reserved bits (not 17: AMD's MM bit) */
			v |= 1u << (18 + rndn(14));
		if (off + 4 <= DATA_SIZE)
			memcpy(data_init + off, &v, 4);
	}

	/* Edge pairs for float arithmetic, in a random lane of reg and r/m */
	if (d->dk != D_INT && !rndn(6)) {
		uint8_t *src = e->mem ? data_init + (off & ~15u) : (uint8_t *)st_in->xmm[e->rm];
		if (d->dk == D_F32) {
			unsigned p = rndn(sizeof(f32_pairs) / sizeof(f32_pairs[0])), l = rndn(4);
			memcpy((uint8_t *)st_in->xmm[e->reg] + 4 * l, &f32_pairs[p][0], 4);
			memcpy(src + 4 * l, &f32_pairs[p][1], 4);
			memcpy((uint8_t *)st_in->xmm[e->reg], &f32_pairs[p][0], 4);
			memcpy(src, &f32_pairs[p][1], 4);
		} else {
			unsigned p = rndn(sizeof(f64_pairs) / sizeof(f64_pairs[0])), l = rndn(2);
			memcpy((uint8_t *)st_in->xmm[e->reg] + 8 * l, &f64_pairs[p][0], 8);
			memcpy(src + 8 * l, &f64_pairs[p][1], 8);
			memcpy((uint8_t *)st_in->xmm[e->reg], &f64_pairs[p][0], 8);
			memcpy(src, &f64_pairs[p][1], 8);
		}
	}

	struct code c = {arena + A_CODE * PG, 0};
	emit_prologue(&c);
	emit_insn(&c, e);
	emit_epilogue(&c);
}

/* ---- Comparison ---- */

static bool approx_eq32(uint32_t a, uint32_t b)
{
	float x, y;
	if (a == b)
		return true;
	memcpy(&x, &a, 4);
	memcpy(&y, &b, 4);
	if (x != x || y != y)
		return false;
	if ((a ^ b) >> 31)
		return false;
	float dx = x > y ? x - y : y - x, ay = y < 0 ? -y : y;
	if (x == 0 || y == 0)
		return (x == 0 ? ay : (x < 0 ? -x : x)) < 0x1p-125f;
	return dx <= ay * 0x1p-10f;
}

static unsigned fail_count;

static void print_case(const struct tdesc *d, const struct ienc *e)
{
	uint8_t buf[32];
	struct code c = {buf, 0};
	emit_insn(&c, e);
	fprintf(stderr, "  %s: bytes", d->name);
	for (size_t k = 0; k < c.n; k++)
		fprintf(stderr, " %02x", buf[k]);
	fprintf(stderr, "  mxcsr in %04x\n", st_in->mxcsr);
	for (unsigned k = 0; k < 16; k++)
		fprintf(stderr, "    in xmm%-2u %016llx%016llx\n", k, (unsigned long long)st_in->xmm[k][1],
			(unsigned long long)st_in->xmm[k][0]);
	if (e->mem)
		fprintf(stderr, "    in mem[%x] %016llx%016llx\n", (unsigned)e->disp,
			*(unsigned long long *)(data_init + (e->disp & ~15) + 8),
			*(unsigned long long *)(data_init + (e->disp & ~15)));
}

static bool compare(const struct tdesc *d, const struct ienc *e, const struct result *n, const struct result *m)
{
	char why[256];
	why[0] = 0;
	if (n->fault != m->fault || n->gp != m->gp) {
		snprintf(why, sizeof(why), "fault: native %d%s, corral %d%s", n->fault, n->gp ? " (#GP)" : "", m->fault,
			 m->gp ? " (#GP)" : "");
	} else if (n->fault && n->rip != m->rip) {
		snprintf(why, sizeof(why), "fault rip: native %llx, corral %llx", (unsigned long long)n->rip,
			 (unsigned long long)m->rip);
	} else if (n->s.mxcsr != m->s.mxcsr) {
		snprintf(why, sizeof(why), "mxcsr: native %04x, corral %04x", n->s.mxcsr, m->s.mxcsr);
	} else if ((n->s.rflags ^ m->s.rflags) & 0xcd5) {
		snprintf(why, sizeof(why), "rflags: native %llx, corral %llx", (unsigned long long)n->s.rflags,
			 (unsigned long long)m->s.rflags);
	} else if (memcmp(n->data, m->data, DATA_SIZE)) {
		unsigned k = 0;
		while (n->data[k] == m->data[k])
			k++;
		snprintf(why, sizeof(why), "memory at +%x: native %02x, corral %02x", k, n->data[k], m->data[k]);
	} else {
		for (unsigned k = 0; k < 16 && !why[0]; k++) {
			if (k == 4)
				continue;
			if (n->s.gpr[k] != m->s.gpr[k])
				snprintf(why, sizeof(why), "gpr%u: native %llx, corral %llx", k,
					 (unsigned long long)n->s.gpr[k], (unsigned long long)m->s.gpr[k]);
		}
		for (unsigned k = 0; k < 8 && !why[0]; k++)
			if (n->s.mm[k] != m->s.mm[k])
				snprintf(why, sizeof(why), "mm%u: native %llx, corral %llx", k,
					 (unsigned long long)n->s.mm[k], (unsigned long long)m->s.mm[k]);
		for (unsigned k = 0; k < 16 && !why[0]; k++) {
			if (!memcmp(n->s.xmm[k], m->s.xmm[k], 16))
				continue;
			if ((d->flags & F_APPROX) && k == e->reg && !n->fault) {
				uint32_t a[4], b[4];
				memcpy(a, n->s.xmm[k], 16);
				memcpy(b, m->s.xmm[k], 16);
				bool ok = true;
				for (unsigned l = 0; l < 4; l++)
					ok = ok && approx_eq32(a[l], b[l]);
				if (ok)
					continue;
			}
			snprintf(why, sizeof(why), "xmm%u: native %016llx%016llx, corral %016llx%016llx", k,
				 (unsigned long long)n->s.xmm[k][1], (unsigned long long)n->s.xmm[k][0],
				 (unsigned long long)m->s.xmm[k][1], (unsigned long long)m->s.xmm[k][0]);
		}
	}
	if (!why[0])
		return true;
	if (fail_count++ < 30) {
		fprintf(stderr, "MISMATCH %s\n", why);
		print_case(d, e);
	}
	return false;
}

static bool run_case(const struct tdesc *d)
{
	static struct result nat, emu;
	struct ienc e;
	make_case(d, &e);
	memcpy(data, data_init, DATA_SIZE);
	run_native(&nat);
	memcpy(data, data_init, DATA_SIZE);
	run_emu(&emu);
	cases_run++;
	if (nat.fault)
		cases_fault++;
	return compare(d, &e, &nat, &emu);
}

/* ---- Tests ---- */

static unsigned scale(unsigned n)
{
	return full_run ? n * 25 : n;
}

static void run_descs(unsigned from, unsigned to, unsigned n)
{
	for (unsigned k = from; k < to && k < NDESCS; k++) {
		unsigned bad = 0;
		for (unsigned j = 0; j < scale(n); j++)
			bad += !run_case(&descs[k]);
		if (bad)
			fprintf(stderr, "  %s: %u of %u cases differ\n", descs[k].name, bad, scale(n));
		CHECK(bad == 0);
	}
}

static unsigned first_fp_desc(void)
{
	for (unsigned k = 0; k < NDESCS; k++)
		if (!strcmp(descs[k].name, "sqrtps"))
			return k;
	return NDESCS;
}

static unsigned first_move_desc(void)
{
	for (unsigned k = 0; k < NDESCS; k++)
		if (!strcmp(descs[k].name, "movups"))
			return k;
	return NDESCS;
}

static void test_integer(void)
{
	run_descs(0, first_move_desc(), 150);
}

static void test_moves(void)
{
	run_descs(first_move_desc(), first_fp_desc(), 150);
}

static void test_float(void)
{
	run_descs(first_fp_desc(), NDESCS, 600);
}

/* Every underflow/overflow edge pair through multiply, divide and the
 * narrowing conversion, in all rounding modes and with each relevant
 * exception unmasked, FZ and DAZ: the cases where x86's tininess after
 * rounding and its unmasked-exception results show. */
static void test_fp_edges(void)
{
	static const struct tdesc ops[] = {
		{"mulss", 0xf3, 1, 0x59, 0, RK_X, RK_X, D_F32, 0},
		{"mulps", 0, 1, 0x59, 0, RK_X, RK_X, D_F32, 0},
		{"divss", 0xf3, 1, 0x5e, 0, RK_X, RK_X, D_F32, 0},
		{"mulsd", 0xf2, 1, 0x59, 0, RK_X, RK_X, D_F64, 0},
		{"mulpd", 0x66, 1, 0x59, 0, RK_X, RK_X, D_F64, 0},
		{"divsd", 0xf2, 1, 0x5e, 0, RK_X, RK_X, D_F64, 0},
		{"cvtsd2ss", 0xf2, 1, 0x5a, 0, RK_X, RK_X, D_F64, 0},
		{"cvtpd2ps", 0x66, 1, 0x5a, 0, RK_X, RK_X, D_F64, 0},
	};
	static const uint64_t narrow[] = {
		0x380fffffffffffff, 0x380ffffff0000000, 0x380fffffe0000000, 0x380fffffe0000001,
		0x3810000000000000, 0x36a0000000000000, 0x36a0000000000001, 0x369fffffffffffff,
		0x47efffffe0000000, 0x47effffff0000000, 0x47efffffefffffff, 0xb80ffffff0000000,
	};
	static const uint32_t mx_variants[] = {0x1f80, 0x1780, 0x1b80, 0x0f80, 0x9f80, 0x1fc0, 0x0780, 0x8780};
	unsigned bad = 0;
	for (unsigned o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
		const struct tdesc *d = &ops[o];
		bool narrowing = d->op == 0x5a;
		unsigned npairs = narrowing	   ? sizeof(narrow) / 8
				  : d->dk == D_F32 ? sizeof(f32_pairs) / sizeof(f32_pairs[0])
						   : sizeof(f64_pairs) / sizeof(f64_pairs[0]);
		for (unsigned p = 0; p < npairs; p++)
			for (unsigned swap = 0; swap < 2; swap++)
				for (unsigned v = 0; v < sizeof(mx_variants) / 4; v++)
					for (unsigned rc = 0; rc < 4; rc++) {
						struct ienc e = {.pfx = d->pfx,
								 .map = 1,
								 .op = d->op,
								 .reg = 1,
								 .rm = 2,
								 .imm = -1};
						memset(st_in, 0, sizeof(*st_in));
						st_in->gpr[3] = (uintptr_t)data;
						st_in->rflags = 2;
						st_in->mxcsr = mx_variants[v] | rc << 13;
						for (unsigned l = 0; l < 16; l += d->dk == D_F32 ? 4 : 8) {
							uint8_t *x = (uint8_t *)st_in->xmm[1] + l,
								*y = (uint8_t *)st_in->xmm[2] + l;
							if (narrowing) {
								memcpy(y, &narrow[(p + l / 8) % npairs], 8);
							} else if (d->dk == D_F32) {
								memcpy(x, &f32_pairs[p][swap], 4);
								memcpy(y, &f32_pairs[p][!swap], 4);
							} else {
								memcpy(x, &f64_pairs[p][swap], 8);
								memcpy(y, &f64_pairs[p][!swap], 8);
							}
						}
						struct code c = {arena + A_CODE * PG, 0};
						emit_prologue(&c);
						emit_insn(&c, &e);
						emit_epilogue(&c);
						static struct result nat, emu;
						memcpy(data, data_init, DATA_SIZE);
						run_native(&nat);
						memcpy(data, data_init, DATA_SIZE);
						run_emu(&emu);
						cases_run++;
						bad += !compare(d, &e, &nat, &emu);
					}
	}
	CHECK_EQ_U64(bad, 0);
}

/* EMMS empties the x87 tag word; MMX instructions make TOP 0 and every
 * register valid. The host's answer comes from FXSAVE's abridged tag word. */
static void test_mmx_state(void)
{
	static uint8_t fx[512] __attribute__((aligned(16)));
	/* Native: movq mm0, [mem]; fxsave; then emms; fxsave. */
	uint64_t v = 0x1234;
	__asm__ volatile("movq %0, %%mm0" : : "m"(v));
	__asm__ volatile("fxsave %0" : "=m"(fx));
	uint16_t fsw_mmx = (uint16_t)(fx[2] | fx[3] << 8);
	uint8_t ftw_mmx = fx[4];
	__asm__ volatile("emms");
	__asm__ volatile("fxsave %0" : "=m"(fx));
	uint8_t ftw_emms = fx[4];

	/* corral: the same two instructions */
	struct code c = {arena + A_CODE * PG, 0};
	struct ienc e = {.map = 1, .op = 0x6f, .reg = 0, .mem = 1, .imm = -1, .disp = 0};
	emit_insn(&c, &e);
	e8(&c, 0x0f), e8(&c, 0x05);
	memcpy(data, &v, 8);
	struct cpu *cp = &cpu;
	cpu_reset_user(cp);
	cpu_flush(cp);
	cp->s.gpr[R_RBX] = (uintptr_t)data;
	cp->s.x87.fsw = 0x3800; /* TOP = 7 */
	cp->s.rip = (uintptr_t)(arena + A_CODE * PG);
	CHECK(cpu_run(cp, 100) == CPU_EXIT_SYSCALL);
	unsigned abridged = 0;
	for (unsigned k = 0; k < 8; k++)
		abridged |= (((cp->s.x87.ftw >> (2 * k)) & 3) != 3) << k;
	CHECK_EQ_U64(abridged, ftw_mmx);
	CHECK_EQ_U64((cp->s.x87.fsw >> 11) & 7, (fsw_mmx >> 11) & 7);
	CHECK_EQ_U64(cp->s.x87.st[0].mant, 0x1234);
	CHECK_EQ_U64(cp->s.x87.st[0].sexp, 0xffff);

	c.n = 0;
	e8(&c, 0x0f), e8(&c, 0x77), e8(&c, 0x0f), e8(&c, 0x05);
	cpu_flush(cp);
	cp->s.rip = (uintptr_t)(arena + A_CODE * PG);
	CHECK(cpu_run(cp, 100) == CPU_EXIT_SYSCALL);
	abridged = 0;
	for (unsigned k = 0; k < 8; k++)
		abridged |= (((cp->s.x87.ftw >> (2 * k)) & 3) != 3) << k;
	CHECK_EQ_U64(abridged, ftw_emms);
}

/* An MMX instruction with an unmasked x87 exception pending raises #MF
 * (SIGFPE) at that instruction; without one it runs. */
static void test_mmx_pending_x87(void)
{
	for (unsigned masked = 0; masked < 2; masked++) {
		/* fninit; fldcw [rbx]; fldz; fldz; fdivp st(1) (0/0: invalid);
		 * paddb mm0, mm1 */
		static const uint8_t seq[] = {0xdb, 0xe3, 0xd9, 0x2b, 0xd9, 0xee, 0xd9,
					      0xee, 0xde, 0xf9, 0x0f, 0xfc, 0xc1};
		struct code c = {arena + A_CODE * PG, 0};
		emit_prologue(&c);
		memcpy(c.p + c.n, seq, sizeof(seq));
		c.n += sizeof(seq);
		uintptr_t paddb = (uintptr_t)(c.p + c.n - 3);
		e8(&c, 0xdb), e8(&c, 0xe3); /* fninit: leave no x87 exception behind */
		emit_epilogue(&c);
		memset(st_in, 0, sizeof(*st_in));
		st_in->mxcsr = 0x1f80;
		st_in->rflags = 2;
		st_in->gpr[3] = (uintptr_t)data;
		uint16_t cw = masked ? 0x037f : 0x037e;
		memcpy(data_init, &cw, 2);
		static struct result nat, emu;
		memcpy(data, data_init, DATA_SIZE);
		run_native(&nat);
		memcpy(data, data_init, DATA_SIZE);
		run_emu(&emu);
		CHECK_EQ_U64(nat.fault, masked ? 0 : SIGFPE);
		CHECK_EQ_U64(emu.fault, nat.fault);
		CHECK_EQ_U64(emu.rip, nat.rip);
		CHECK(!nat.fault || nat.rip == paddb);
	}
}

/* Encodings that are invalid whatever the operands. */
static void test_invalid(void)
{
	static const uint8_t enc[][8] = {
		{4, 0x66, 0x0f, 0x12, 0xc1}, /* movlpd with a register */
		{3, 0x0f, 0x13, 0xc1},	     /* movlps store to a register */
		{4, 0x66, 0x0f, 0x71, 0xd0}, /* 71 /2 is fine, /0 is not: */
		{5, 0x66, 0x0f, 0x71, 0xc0, 1},
		{5, 0x0f, 0x73, 0xd8, 1, 0}, /* psrldq needs 66 */
		{4, 0xf3, 0x0f, 0x77, 0},
		{4, 0x0f, 0x38, 0x17, 0xc1},	   /* ptest without 66 */
		{4, 0xf0, 0x0f, 0x58, 0xc1},	   /* lock addps */
		{4, 0x0f, 0x38, 0xf0, 0xc1},	   /* movbe with a register */
		{5, 0x66, 0x0f, 0x3a, 0x99, 0xc1}, /* unassigned 0f3a */
	};
	for (unsigned k = 0; k < sizeof(enc) / sizeof(enc[0]); k++) {
		unsigned n = enc[k][0];
		struct code c = {arena + A_CODE * PG, 0};
		emit_prologue(&c);
		memcpy(c.p + c.n, &enc[k][1], n);
		c.n += n;
		if (enc[k][0] == 4 && enc[k][1] == 0x66 && enc[k][3] == 0x71)
			e8(&c, 0); /* the imm8 of the first 71 entry */
		emit_epilogue(&c);
		memset(st_in, 0, sizeof(*st_in));
		st_in->mxcsr = 0x1f80;
		st_in->rflags = 2;
		st_in->gpr[3] = (uintptr_t)data;
		static struct result nat, emu;
		memcpy(data, data_init, DATA_SIZE);
		run_native(&nat);
		memcpy(data, data_init, DATA_SIZE);
		run_emu(&emu);
		if (nat.fault != emu.fault)
			fprintf(stderr, "  encoding %u: native fault %d, corral %d\n", k, nat.fault, emu.fault);
		CHECK_EQ_U64(nat.fault, emu.fault);
	}
}

static int setup(void)
{
	arena = mmap(NULL, A_PAGES * PG, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (arena == MAP_FAILED)
		return -1;
	if (mprotect(arena + A_GUARD * PG, PG, PROT_NONE))
		return -1;
	arena[A_STUB * PG] = 0x0f;
	arena[A_STUB * PG + 1] = 0x05;
	st_in = (struct tstate *)(arena + A_STATE * PG);
	st_out = (struct tstate *)(arena + A_STATE * PG + 1024);
	data = arena + A_DATA * PG;
	if (vmem_init(&vm))
		return -1;
	unsigned rwx = VMEM_R | VMEM_W | VMEM_X;
	if (vmem_map(&vm, (uintptr_t)arena, A_GUARD * PG, arena, rwx) ||
	    vmem_map(&vm, (uintptr_t)(arena + A_STACK * PG), (A_PAGES - A_STACK) * PG, arena + A_STACK * PG, rwx))
		return -1;
	if (cpu_init(&cpu, CPU_MODE_USER, &vm))
		return -1;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	return 0;
}

int main(void)
{
	full_run = getenv("CORRAL_FULL") != NULL;
	if (setup()) {
		fprintf(stderr, "t_sse: cannot set up the test arena\n");
		printf("0 passed, 1 failed\n");
		return 1;
	}
	RUN(test_mmx_state);
	RUN(test_invalid);
	RUN(test_mmx_pending_x87);
	RUN(test_integer);
	RUN(test_moves);
	RUN(test_float);
	RUN(test_fp_edges);
	fprintf(stderr, "t_sse: %u cases (%u faulting)\n", cases_run, cases_fault);
	return test_report();
}
