/* SSE4.2 string compares: PCMPESTRI, PCMPESTRM, PCMPISTRI, PCMPISTRM
 * (SDM vol. 2 §4.1: imm8 control, validity overrides, aggregation). */
#include "sse_impl.h"

/* Element j of v as a signed or unsigned integer */
static inline int32_t elem(const union cpu_xmm *v, unsigned j, unsigned fmt)
{
	switch (fmt) {
	case 0: return v->b[j];
	case 1: return v->w[j];
	case 2: return (int8_t)v->b[j];
	default: return (int16_t)v->w[j];
	}
}

/* Length of a NUL-terminated string of n elements held in v */
static unsigned implicit_len(const union cpu_xmm *v, unsigned n, unsigned fmt)
{
	for (unsigned j = 0; j < n; j++)
		if (!elem(v, j, fmt))
			return j;
	return n;
}

/* Explicit length from RAX/RDX (EAX/EDX without REX.W): the magnitude,
 * saturated to the element count. */
static unsigned explicit_len(const struct insn *i, uint64_t r, unsigned n)
{
	int64_t v = (i->rex & 8) ? (int64_t)r : (int32_t)r;
	uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	return mag > n ? n : (unsigned)mag;
}

/* The intermediate result IntRes2 (one bit per element of the second operand) */
static unsigned str_compare(const union cpu_xmm *a, const union cpu_xmm *b, unsigned la, unsigned lb, unsigned imm)
{
	unsigned fmt = imm & 3, n = (imm & 1) ? 8 : 16;
	unsigned res = 0;

	switch ((imm >> 2) & 3) {
	case 0: /* equal any */
		for (unsigned i = 0; i < lb; i++)
			for (unsigned j = 0; j < la; j++)
				if (elem(a, j, fmt) == elem(b, i, fmt)) {
					res |= 1u << i;
					break;
				}
		break;
	case 1: /* ranges: pairs (lo, hi) of the first operand */
		for (unsigned i = 0; i < lb; i++)
			for (unsigned j = 0; j + 1 < la; j += 2) {
				int32_t x = elem(b, i, fmt);
				if (x >= elem(a, j, fmt) && x <= elem(a, j + 1, fmt)) {
					res |= 1u << i;
					break;
				}
			}
		break;
	case 2: /* equal each: past both ends counts as equal */
		for (unsigned i = 0; i < n; i++) {
			bool va = i < la, vb = i < lb;
			if (va && vb ? elem(a, i, fmt) == elem(b, i, fmt) : !va && !vb)
				res |= 1u << i;
		}
		break;
	default: /* equal ordered: substring search of a in b */
		for (unsigned i = 0; i < n; i++) {
			bool match = true;
			for (unsigned k = 0; k < n - i && match; k++) {
				if (k >= la)
					break; /* needle ended: matches */
				if (i + k >= lb)
					match = false;
				else if (elem(a, k, fmt) != elem(b, i + k, fmt))
					match = false;
			}
			if (match)
				res |= 1u << i;
		}
		break;
	}
	switch ((imm >> 4) & 3) {
	case 1: res = ~res & ((1u << n) - 1); break;
	case 3: res ^= (1u << lb) - 1; break;
	}
	return res;
}

/* aux: bit 0 = explicit lengths, bit 1 = index (else mask) */
static void op_pcmpstr(struct cpu *c, const struct insn *i)
{
	sse_enter(c);
	union cpu_xmm b;
	const union cpu_xmm *a = &c->s.xmm[i->reg];
	unsigned imm = i->imm8, fmt = imm & 3, n = (imm & 1) ? 8 : 16;
	unsigned la, lb;

	sse_src128(c, i, &b, false); /* SSE4.2 string ops do not require alignment */
	if (i->aux & 1) {
		la = explicit_len(i, c->s.gpr[R_RAX], n);
		lb = explicit_len(i, c->s.gpr[R_RDX], n);
	} else {
		la = implicit_len(a, n, fmt);
		lb = implicit_len(&b, n, fmt);
	}
	unsigned res = str_compare(a, &b, la, lb, imm);

	if (i->aux & 2) {
		unsigned idx = n;
		if (res)
			idx = (imm & 0x40) ? 31 - (unsigned)__builtin_clz(res) : (unsigned)__builtin_ctz(res);
		reg_write(c, R_RCX, 4, idx);
	} else {
		union cpu_xmm m = {.q = {0, 0}};
		if (imm & 0x40) {
			unsigned sz = 16 / n;
			for (unsigned k = 0; k < n; k++)
				if ((res >> k) & 1)
					memset(m.b + k * sz, 0xff, sz);
		} else {
			m.q[0] = res;
		}
		c->s.xmm[0] = m;
	}
	uint32_t f = 0;
	if (res)
		f |= FL_CF;
	if (lb < n)
		f |= FL_ZF;
	if (la < n)
		f |= FL_SF;
	if (res & 1)
		f |= FL_OF;
	flags_set(c, FL_ARITH, f);
	insn_next(c, i);
}

int sse_str_decode(struct insn *i)
{
	if (i->map != MAP_0F3A || i->op < 0x60 || i->op > 0x63)
		return -1;
	if (i->pfx != PFX_66) {
		i->fn = op_ud;
		return 0;
	}
	i->fn = op_pcmpstr;
	/* 60 ESTRM, 61 ESTRI, 62 ISTRM, 63 ISTRI */
	i->aux = (uint8_t)(((i->op & 2) ? 0 : 1) | ((i->op & 1) ? 2 : 0));
	return 0;
}
