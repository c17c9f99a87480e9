/* Shared helpers of the SSE/MMX instruction handlers (sse.c, sse_fp.c,
 * sse_str.c): operand access, the MMX view of the x87 registers, and the
 * decoders of each file. */
#ifndef CORRAL_SSE_IMPL_H
#define CORRAL_SSE_IMPL_H

#include "cpu_internal.h"

/* Handler flavours chosen at decode time and kept in insn.aux by some
 * decoders. */
#define SSE_XMM(c, r) (&(c)->s.xmm[(r)])

/* MMX registers alias the significands of the physical x87 registers; REX
 * does not extend their numbers. */
static inline uint64_t mmx_read(const struct cpu *c, unsigned r)
{
	return c->s.x87.st[r & 7].mant;
}

/* An MMX write also sets the register's exponent field to all ones. */
static inline void mmx_write(struct cpu *c, unsigned r, uint64_t v)
{
	c->s.x87.st[r & 7].mant = v;
	c->s.x87.st[r & 7].sexp = 0xffff;
}

/* Every MMX instruction (except EMMS) makes TOP 0 and all registers valid. */
static inline void mmx_enter(struct cpu *c)
{
	c->s.x87.fsw &= (uint16_t)~0x3800u;
	c->s.x87.ftw = 0;
}

#define CR0_EM_BIT 0x4u
#define CR0_TS_BIT 0x8u
#define CR4_OSFXSR_BIT 0x200u
#define FSW_ES_BIT 0x80u

/* System mode checks at the start of an SSE instruction: #UD without
 * CR4.OSFXSR or with CR0.EM, #NM with CR0.TS (user mode: always enabled). */
void sse_sys_check(struct cpu *c);

static inline void sse_enter(struct cpu *c)
{
	if (unlikely(c->mode == CPU_MODE_SYSTEM))
		sse_sys_check(c);
}

/* The same for an MMX instruction: #UD with CR0.EM, #NM with CR0.TS, and
 * #MF while an unmasked x87 exception is pending. */
static inline void mmx_check(struct cpu *c)
{
	if (unlikely(c->mode == CPU_MODE_SYSTEM) && (c->s.cr0 & (CR0_EM_BIT | CR0_TS_BIT)))
		cpu_raise(c, (c->s.cr0 & CR0_EM_BIT) ? EXC_UD : EXC_NM, 0);
	if (unlikely(c->s.x87.fsw & FSW_ES_BIT))
		cpu_raise(c, EXC_MF, 0);
}

/* Read the 128-bit xmm/m128 operand. aligned: legacy SSE rule, a memory
 * operand not on a 16-byte boundary is #GP(0). */
static inline void sse_src128(struct cpu *c, const struct insn *i, union cpu_xmm *v, bool aligned)
{
	if (i->mod3) {
		*v = c->s.xmm[i->rm];
		return;
	}
	uint64_t a = insn_ea(c, i);
	if (aligned && (a & 15))
		cpu_raise(c, EXC_GP, 0);
	mem_read_bytes(c, a, v, 16);
}

/* Read the low sz bytes of xmm/m<sz*8> into v (upper bytes zeroed). */
static inline void sse_src_low(struct cpu *c, const struct insn *i, union cpu_xmm *v, unsigned sz)
{
	if (i->mod3) {
		*v = c->s.xmm[i->rm];
		return;
	}
	memset(v, 0, sizeof(*v));
	mem_read_bytes(c, insn_ea(c, i), v, sz);
}

/* Read mm/m64. */
static inline uint64_t mmx_src(struct cpu *c, const struct insn *i)
{
	if (i->mod3)
		return mmx_read(c, i->rm);
	return mem_read64(c, insn_ea(c, i));
}

/* Byte register numbering for a GPR operand taken from raw ModRM numbers:
 * without REX, 4-7 are AH, CH, DH, BH (reg_read's 16-19). */
static inline unsigned sse_byte_reg(const struct insn *i, unsigned r)
{
	return (!i->rex && r >= 4 && r < 8) ? r + 12 : r;
}

/* Which handler of sse.c runs a decoded instruction, for the translator
 * (jit_sse.c), which emits some of them as the same host instruction. */
enum sse_form {
	SSE_FORM_OTHER,
	SSE_FORM_VEC,	    /* op_vec_xmm: xmm = xmm op xmm/m128 (aligned) */
	SSE_FORM_LOAD128,   /* op_mov_load128: aux 1 = aligned */
	SSE_FORM_STORE128,  /* op_mov_store128: aux 1 = aligned */
	SSE_FORM_PSHUF,	    /* op_pshuf_xmm: PSHUFD/HW/LW xmm, xmm/m128 (aligned), imm8 */
	SSE_FORM_PMOVMSKB,  /* op_pmovmskb_xmm: r32, xmm */
	SSE_FORM_SHIFT_IMM, /* op_shift_imm_xmm: 66 0F 71-73 /n ib on xmm */
	SSE_FORM_MOVD_TO,   /* op_movd_to_xmm: MOVD/MOVQ xmm, r/m32/64 */
};
enum sse_form sse_form_of(const struct insn *i);

int sse_fp_decode(struct insn *i);
int sse_str_decode(struct insn *i);

#endif
