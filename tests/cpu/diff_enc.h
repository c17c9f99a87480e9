/* A small x86-64 instruction encoder for the differential tests: prefixes,
 * REX, opcode, ModRM/SIB with every addressing form, displacement and
 * immediate. It encodes bits; what they mean is left to the two CPUs. */
#ifndef CORRAL_TESTS_DIFF_ENC_H
#define CORRAL_TESTS_DIFF_ENC_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Addressing forms of a memory operand */
enum {
	AM_BASE,   /* [base + disp] (disp 0, 8 or 32 bits) */
	AM_SIB,	   /* [base + index*scale + disp] */
	AM_NOBASE, /* [index*scale + disp32] */
	AM_ABS,	   /* [disp32] through SIB without base or index */
	AM_RIP,	   /* [rip + disp32] */
};

struct ins {
	uint8_t pfx[8]; /* legacy prefixes, in order */
	unsigned npfx;
	uint8_t mand; /* mandatory prefix, right before REX (F3 for POPCNT) */
	bool w;	      /* REX.W */
	bool rex;     /* emit a REX byte even if no bit is set */
	bool map0f;
	uint8_t op;
	int opreg; /* register in the opcode's low 3 bits (50+r...), or -1 */
	bool modrm;
	unsigned reg; /* ModRM.reg with REX.R: 0-15 */
	int rm;	      /* register operand 0-15, or -1 for memory */
	int am;
	unsigned base, index, scale;
	int32_t disp;
	unsigned dsz; /* displacement bytes for AM_BASE/AM_SIB: 0, 1, 4 */
	uint64_t rip_target;
	unsigned ilen; /* immediate bytes */
	uint64_t imm;
};

static inline void ins_init(struct ins *in)
{
	memset(in, 0, sizeof(*in));
	in->opreg = -1;
	in->rm = -1;
}

static inline void ins_prefix(struct ins *in, uint8_t p)
{
	if (in->npfx < sizeof(in->pfx))
		in->pfx[in->npfx++] = p;
}

static inline bool ins_has_rex(const struct ins *in)
{
	if (in->rex || in->w)
		return true;
	if (in->opreg >= 0 && (in->opreg & 8))
		return true;
	if (!in->modrm)
		return false;
	if (in->reg & 8)
		return true;
	if (in->rm >= 0)
		return (in->rm & 8) != 0;
	if ((in->am == AM_BASE || in->am == AM_SIB) && (in->base & 8))
		return true;
	return (in->am == AM_SIB || in->am == AM_NOBASE) && (in->index & 8);
}

/* Encode at guest/host address at (needed for RIP-relative). Returns the length. */
static inline unsigned ins_encode(const struct ins *in, uint8_t *o, uint64_t at)
{
	unsigned n = 0, rex = 0x40 | (in->w ? 8 : 0);
	unsigned modrm = 0, sib = 0, dsz = 0;
	bool has_sib = false;
	int32_t disp = in->disp;

	for (unsigned k = 0; k < in->npfx; k++)
		o[n++] = in->pfx[k];
	if (in->mand)
		o[n++] = in->mand;
	if (in->modrm) {
		unsigned reg = (in->reg & 7) << 3;
		if (in->reg & 8)
			rex |= 4;
		if (in->rm >= 0) {
			modrm = 0xc0 | reg | (in->rm & 7);
			if (in->rm & 8)
				rex |= 1;
		} else {
			switch (in->am) {
			case AM_RIP:
				modrm = reg | 5;
				dsz = 4;
				break;
			case AM_ABS:
				modrm = reg | 4;
				sib = 0x25;
				has_sib = true;
				dsz = 4;
				break;
			case AM_NOBASE:
				modrm = reg | 4;
				sib = (in->scale << 6) | ((in->index & 7) << 3) | 5;
				has_sib = true;
				if (in->index & 8)
					rex |= 2;
				dsz = 4;
				break;
			default: {
				dsz = in->dsz;
				if (dsz == 0 && (in->base & 7) == 5)
					dsz = 1; /* mod 00 with base 101 means no base */
				unsigned mod = dsz == 0 ? 0 : dsz == 1 ? 1 : 2;
				if (in->am == AM_SIB || (in->base & 7) == 4) {
					unsigned idx = in->am == AM_SIB ? in->index : 4;
					modrm = (mod << 6) | reg | 4;
					sib = (in->scale << 6) | ((idx & 7) << 3) | (in->base & 7);
					has_sib = true;
					if (idx & 8)
						rex |= 2;
				} else {
					modrm = (mod << 6) | reg | (in->base & 7);
				}
				if (in->base & 8)
					rex |= 1;
			}
			}
		}
	}
	if (in->opreg >= 0 && (in->opreg & 8))
		rex |= 1;
	if (rex != 0x40 || in->rex)
		o[n++] = (uint8_t)rex;
	if (in->map0f)
		o[n++] = 0x0f;
	o[n++] = (uint8_t)(in->op | (in->opreg >= 0 ? (in->opreg & 7) : 0));
	if (in->modrm) {
		o[n++] = (uint8_t)modrm;
		if (has_sib)
			o[n++] = (uint8_t)sib;
	}
	unsigned doff = n;
	n += dsz;
	for (unsigned k = 0; k < in->ilen; k++)
		o[n++] = (uint8_t)(in->imm >> (8 * k));
	if (in->modrm && in->rm < 0 && in->am == AM_RIP)
		disp = (int32_t)(uint32_t)(in->rip_target - (at + n));
	if (dsz == 1)
		o[doff] = (uint8_t)disp;
	else if (dsz == 4)
		memcpy(o + doff, &disp, 4);
	return n;
}

#endif
