/* CPU state fields shared by the state streams (cpu_fields.h). */
#include "state/cpu_fields.h"

void state_put_seg(struct state_writer *w, const struct cpu_seg *s)
{
	state_put_u64(w, s->base);
	state_put_u32(w, s->limit);
	state_put_u16(w, s->sel);
	state_put_u16(w, s->attr);
}

void state_get_seg(struct state_reader *r, struct cpu_seg *s)
{
	s->base = state_get_u64(r);
	s->limit = state_get_u32(r);
	s->sel = state_get_u16(r);
	s->attr = state_get_u16(r);
}

void state_put_fpu(struct state_writer *w, const struct cpu_state *s)
{
	state_put_u64(w, s->xcr0);
	for (unsigned k = 0; k < 16; k++)
		state_put_bytes(w, s->xmm[k].b, 16);
	state_put_u32(w, s->mxcsr);
	for (unsigned k = 0; k < 8; k++) {
		state_put_u64(w, s->x87.st[k].mant);
		state_put_u16(w, s->x87.st[k].sexp);
	}
	state_put_u16(w, s->x87.fcw);
	state_put_u16(w, s->x87.fsw);
	state_put_u16(w, s->x87.ftw);
	state_put_u16(w, s->x87.fop);
	state_put_u64(w, s->x87.fip);
	state_put_u64(w, s->x87.fdp);
}

void state_get_fpu(struct state_reader *r, struct cpu_state *s)
{
	s->xcr0 = state_get_u64(r);
	for (unsigned k = 0; k < 16; k++)
		state_get_bytes(r, s->xmm[k].b, 16);
	s->mxcsr = state_get_u32(r);
	for (unsigned k = 0; k < 8; k++) {
		s->x87.st[k].mant = state_get_u64(r);
		s->x87.st[k].sexp = state_get_u16(r);
	}
	s->x87.fcw = state_get_u16(r);
	s->x87.fsw = state_get_u16(r);
	s->x87.ftw = state_get_u16(r);
	s->x87.fop = state_get_u16(r);
	s->x87.fip = state_get_u64(r);
	s->x87.fdp = state_get_u64(r);
}
