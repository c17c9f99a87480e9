/* Lazy RFLAGS: arithmetic flags are computed from the last result and its
 * operands only when something reads them. */
#include "cpu_internal.h"

uint32_t parity8(uint64_t v)
{
	/* PF is set when the low byte has an even number of 1 bits */
	return (__builtin_popcount((unsigned)(v & 0xff)) & 1) ? 0 : FL_PF;
}

uint32_t flags_arith(const struct cpu *c)
{
	unsigned op = c->lf_op;
	if (op == LF_NONE)
		return (uint32_t)(c->s.rflags & FL_ARITH);
	unsigned bits = 8u << (op & 3);
	uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
	uint64_t r = c->lf_res & mask, a = c->lf_src1, b = c->lf_src2;
	unsigned top = bits - 1;
	uint32_t f = 0;

	if (!r)
		f |= FL_ZF;
	if ((r >> top) & 1)
		f |= FL_SF;
	f |= parity8(r);
	switch (op & ~3u) {
	case LF_ADD:
		if ((((a & b) | ((a | b) & ~r)) >> top) & 1)
			f |= FL_CF;
		if ((((a ^ r) & (b ^ r)) >> top) & 1)
			f |= FL_OF;
		f |= (uint32_t)((a ^ b ^ r) & FL_AF);
		break;
	case LF_SUB:
		if ((((~a & b) | ((~a | b) & r)) >> top) & 1)
			f |= FL_CF;
		if ((((a ^ b) & (a ^ r)) >> top) & 1)
			f |= FL_OF;
		f |= (uint32_t)((a ^ b ^ r) & FL_AF);
		break;
	case LF_LOGIC: break;
	case LF_INC:
		if (r == (1ull << top))
			f |= FL_OF;
		f |= (uint32_t)((a ^ 1 ^ r) & FL_AF);
		f |= c->lf_aux & FL_CF;
		break;
	case LF_DEC:
		if (r == (1ull << top) - 1)
			f |= FL_OF;
		f |= (uint32_t)((a ^ 1 ^ r) & FL_AF);
		f |= c->lf_aux & FL_CF;
		break;
	}
	return f;
}

/* ADC, SBB, RCL/RCR, CMC and the B/AE conditions read CF alone; translated
 * code asks for it after a producer it did not see. */
uint32_t flags_cf(const struct cpu *c)
{
	unsigned op = c->lf_op;
	if (op == LF_NONE)
		return (uint32_t)(c->s.rflags & FL_CF);
	unsigned top = (8u << (op & 3)) - 1;
	uint64_t r = c->lf_res, a = c->lf_src1, b = c->lf_src2;
	switch (op & ~3u) {
	case LF_ADD: return ((((a & b) | ((a | b) & ~r)) >> top) & 1) ? FL_CF : 0;
	case LF_SUB: return ((((~a & b) | ((~a | b) & r)) >> top) & 1) ? FL_CF : 0;
	case LF_INC:
	case LF_DEC: return c->lf_aux & FL_CF;
	default: return 0; /* LF_LOGIC */
	}
}

static bool cond_from_flags(uint32_t f, unsigned cc)
{
	bool r;
	switch (cc >> 1) {
	case 0: r = f & FL_OF; break;					   /* O */
	case 1: r = f & FL_CF; break;					   /* B */
	case 2: r = f & FL_ZF; break;					   /* E */
	case 3: r = f & (FL_CF | FL_ZF); break;				   /* BE */
	case 4: r = f & FL_SF; break;					   /* S */
	case 5: r = f & FL_PF; break;					   /* P */
	case 6: r = !(f & FL_SF) != !(f & FL_OF); break;		   /* L */
	default: r = (f & FL_ZF) || (!(f & FL_SF) != !(f & FL_OF)); break; /* LE */
	}
	return (cc & 1) ? !r : r;
}

bool cond_eval(const struct cpu *c, unsigned cc)
{
	unsigned op = c->lf_op;
	if (op == LF_NONE)
		return cond_from_flags((uint32_t)c->s.rflags, cc);
	unsigned bits = 8u << (op & 3);
	uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
	uint64_t r = c->lf_res & mask;
	/* The common cases without building all flags. */
	switch (op & ~3u) {
	case LF_SUB:
		if (c->lf_aux == 0) { /* plain SUB/CMP: compare the operands */
			uint64_t a = c->lf_src1 & mask, b = c->lf_src2 & mask;
			int64_t sa = sext(a, bits / 8), sb = sext(b, bits / 8);
			switch (cc) {
			case 2: return a < b;
			case 3: return a >= b;
			case 4: return r == 0;
			case 5: return r != 0;
			case 6: return a <= b;
			case 7: return a > b;
			case 12: return sa < sb;
			case 13: return sa >= sb;
			case 14: return sa <= sb;
			case 15: return sa > sb;
			}
		}
		break;
	case LF_LOGIC:
		switch (cc) {
		case 2:
		case 0: return false;
		case 3:
		case 1: return true;
		case 4: return r == 0;
		case 5: return r != 0;
		case 6: return r == 0;
		case 7: return r != 0;
		case 8:
		case 12: return (r >> (bits - 1)) & 1;
		case 9:
		case 13: return !((r >> (bits - 1)) & 1);
		case 14: return r == 0 || ((r >> (bits - 1)) & 1);
		case 15: return r != 0 && !((r >> (bits - 1)) & 1);
		}
		break;
	default:
		if (cc == 4)
			return r == 0;
		if (cc == 5)
			return r != 0;
	}
	if (cc == 2 || cc == 3)
		return (flags_cf(c) != 0) == (cc == 2);
	return cond_from_flags(flags_arith(c), cc);
}

uint64_t cpu_get_rflags(struct cpu *c)
{
	return (c->s.rflags & ~(uint64_t)FL_ARITH) | flags_arith(c) | 2;
}

void cpu_set_rflags(struct cpu *c, uint64_t v)
{
	c->s.rflags = v | 2;
	c->lf_op = LF_NONE;
}
