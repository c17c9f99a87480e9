/* The block translator's SSE part: common SSE integer and move
 * instructions (MOVDQA/MOVDQU/MOVAPS/MOVUPS, PXOR/POR/PAND/PANDN, PCMPEQx,
 * PADDx/PSUBx, PMINUB, PUNPCKx, PSHUFD, PSHUFB, PMOVMSKB, shifts by an
 * immediate, MOVD to xmm) run as the same host instruction on host XMM0
 * and XMM1, loaded from and stored back to struct cpu. jit_x86.c includes
 * this file (it uses that file's emitters); built alone it is empty.
 *
 * Exactness: a memory operand goes through the inline soft-TLB lookup;
 * a miss, a page-crossing access or (aligned forms) an address off a
 * 16-byte boundary runs the instruction's handler instead, which faults
 * (#PF, #GP) with RIP at the instruction. In system mode the first SSE
 * instruction of a block (again after each handler call, which may write
 * CR0 or CR4) checks CR0.EM, CR0.TS and CR4.OSFXSR, and with any of them
 * against it calls sse_sys_check, which raises #UD or #NM. Map-0F38
 * instructions (PSHUFB and the other SSSE3/SSE4 ones) are emitted only
 * when the host has SSSE3, SSE4.1 and SSE4.2; otherwise their handlers
 * run. */
#ifdef CORRAL_JIT_SSE_INCLUDED

#include "sse_impl.h"

/* The host runs map-0F38 vector instructions (SSSE3, SSE4.1, SSE4.2). */
static int sse_host_0f38(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("sse4.2");
}

static int32_t xoff(unsigned x)
{
	return OFF(s.xmm) + 16 * (int32_t)x;
}

/* movdqu xmm<h>, [base + disp] and back (F3 0F 6F / 7F; h is 0 or 1) */
static void xmm_load(struct jt *t, unsigned h, unsigned base, int32_t disp)
{
	e8(t, 0xf3);
	x_rm(t, 0, 0x0f6f, h, base, NOX, 0, disp);
}

static void xmm_store(struct jt *t, unsigned base, int32_t disp, unsigned h)
{
	e8(t, 0xf3);
	x_rm(t, 0, 0x0f7f, h, base, NOX, 0, disp);
}

/* System mode: CR0.EM, CR0.TS and CR4.OSFXSR as sse_enter checks them,
 * once per stretch of the block without handler calls. The cold path
 * calls sse_sys_check (which raises) with the state written back and RIP
 * at the instruction. */
static void sse_emit_enter(struct jt *t, uint64_t addr)
{
	if (!t->sys || t->sse_ok)
		return;
	x_rm(t, 0, 0xf7, 0, RBX, NOX, 0, OFF(s.cr0)); /* test dword [rbx + cr0], EM | TS */
	e32(t, CR0_EM_BIT | CR0_TS_BIT);
	uint8_t *bad = jcc32(t, 5);
	x_rm(t, 0, 0xf7, 0, RBX, NOX, 0, OFF(s.cr4)); /* test dword [rbx + cr4], OSFXSR */
	e32(t, CR4_OSFXSR_BIT);
	uint8_t *good = jcc32(t, 5);
	patch_to(bad, t->p);
	c_emit_spill(t, t->cache, t->dirty);
	set_rip(t, addr, RAX);
	mov_rr(t, RDI, RBX);
	call_fn(t, (const void *)sse_sys_check);
	c_emit_reload(t); /* not reached: sse_sys_check raised */
	patch_to(good, t->p);
	t->rip_ok = 0;
	t->sse_ok = 1;
}

/* rax = guest address of a 16-byte operand -> rax = host address, or a
 * jump (returned) to the miss path: no fast entry, the last byte on
 * another page, or with aligned an address off a 16-byte boundary (its
 * low bits, doubled so they never equal CPU_TLB_INVALID, join the tag
 * compared, which has them zero). */
static uint8_t *sse_lookup(struct jt *t, int write, int aligned)
{
	x_rm(t, XW, 0x8d, RCX, RAX, NOX, 0, 15); /* lea rcx, [rax + 15] */
	x_rr(t, XW, 0x81, 4, RCX);		 /* and rcx, -4096 */
	e32(t, 0xfffff000u);
	if (aligned) {
		x_rr(t, 0, 0x89, RAX, RDX); /* mov edx, eax */
		x_rr(t, 0, 0x83, 4, RDX);   /* and edx, 15 */
		e8(t, 15);
		x_rr(t, 0, 0x01, RDX, RDX);  /* add edx, edx */
		x_rr(t, XW, 0x09, RDX, RCX); /* or rcx, rdx */
	}
	return tlb_compare(t, write);
}

/* xmm<h> = the instruction's xmm/m128 source; a miss path (the handler)
 * is returned for the caller to record once the instruction is emitted. */
static uint8_t *sse_src(struct jt *t, const struct insn *i, unsigned h, int aligned)
{
	if (i->mod3) {
		xmm_load(t, h, RBX, xoff(i->rm));
		return NULL;
	}
	emit_ea(t, i, t->next, 0);
	uint8_t *miss = sse_lookup(t, 0, aligned);
	xmm_load(t, h, RAX, 0);
	return miss;
}

/* The instruction ends here: its miss path runs the handler (with the
 * end_block check after a store) and comes back. */
static void sse_done(struct jt *t, const struct insn *i, uint64_t addr, uint8_t *miss, int write)
{
	if (miss) {
		add_slow(t, miss, SLOW_RMW, 0, addr, i, write);
		t->rip_ok = 0;
	}
}

/* [66|F3|F2] 0F [38] op /r with reg = xmm0, rm = xmm1 (the guest's own
 * opcode: the forms emitted here mean the same on the host) */
static void sse_host_op(struct jt *t, const struct insn *i)
{
	static const uint8_t pfx[4] = {[PFX_66] = 0x66, [PFX_F3] = 0xf3, [PFX_F2] = 0xf2};
	if (i->pfx != PFX_NONE)
		e8(t, pfx[i->pfx]);
	e8(t, 0x0f);
	if (i->map == MAP_0F38)
		e8(t, 0x38);
	e8(t, i->op);
	e8(t, 0xc1);
}

/* Emit i inline if it is one of the forms above: 1, or 0 (the caller
 * then calls its handler). */
static int emit_sse(struct jt *t, const struct insn *i, uint64_t addr)
{
	if (i->map != MAP_0F && i->map != MAP_0F38)
		return 0;
	enum sse_form form = sse_form_of(i);
	uint8_t *miss = NULL;
	switch (form) {
	case SSE_FORM_VEC:
		if (i->map == MAP_0F38 && !sse_host_0f38())
			return 0;
		sse_emit_enter(t, addr);
		miss = sse_src(t, i, 1, 1);
		xmm_load(t, 0, RBX, xoff(i->reg));
		sse_host_op(t, i);
		xmm_store(t, RBX, xoff(i->reg), 0);
		sse_done(t, i, addr, miss, 0);
		return 1;
	case SSE_FORM_PSHUF:
		sse_emit_enter(t, addr);
		miss = sse_src(t, i, 1, 1);
		sse_host_op(t, i);
		e8(t, i->imm8);
		xmm_store(t, RBX, xoff(i->reg), 0);
		sse_done(t, i, addr, miss, 0);
		return 1;
	case SSE_FORM_LOAD128:
		sse_emit_enter(t, addr);
		miss = sse_src(t, i, 0, i->aux);
		xmm_store(t, RBX, xoff(i->reg), 0);
		sse_done(t, i, addr, miss, 0);
		return 1;
	case SSE_FORM_STORE128:
		sse_emit_enter(t, addr);
		xmm_load(t, 0, RBX, xoff(i->reg));
		if (i->mod3) {
			xmm_store(t, RBX, xoff(i->rm), 0);
		} else {
			emit_ea(t, i, t->next, 0);
			miss = sse_lookup(t, 1, i->aux);
			xmm_store(t, RAX, 0, 0);
		}
		sse_done(t, i, addr, miss, 1);
		return 1;
	case SSE_FORM_PMOVMSKB:
		if (!i->mod3)
			return 0;
		sse_emit_enter(t, addr);
		xmm_load(t, 0, RBX, xoff(i->rm));
		x_rr(t, X66, 0x0fd7, RAX, 0); /* pmovmskb eax, xmm0 */
		st_greg(t, i->reg, 8, RAX);
		return 1;
	case SSE_FORM_SHIFT_IMM:
		if (!i->mod3 || i->pfx != PFX_66)
			return 0;
		sse_emit_enter(t, addr);
		xmm_load(t, 0, RBX, xoff(i->rm));
		x_rr(t, X66, 0x0f00 | i->op, (i->modrm >> 3) & 7, 0); /* the same /n on xmm0 */
		e8(t, i->imm8);
		xmm_store(t, RBX, xoff(i->rm), 0);
		return 1;
	case SSE_FORM_MOVD_TO:
		if (!i->mod3)
			return 0;
		sse_emit_enter(t, addr);
		ld_greg(t, RAX, i->rm, (i->rex & 8) ? 8 : 4);
		x_rr(t, X66 | XW, 0x0f6e, 0, RAX); /* movq xmm0, rax */
		xmm_store(t, RBX, xoff(i->reg), 0);
		return 1;
	default: return 0;
	}
}

#endif
