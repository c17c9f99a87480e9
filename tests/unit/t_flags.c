/* Lazy flags: CF computed alone (flags_cf, which translated ADC/SBB and the
 * B/AE conditions use) must agree with the full evaluation (flags_arith)
 * for every kind of record, every size, real results and arbitrary ones. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_internal.h"
#include "testhelp.h"

static uint64_t xs_state = 0x9e3779b97f4a7c15ull;

static uint64_t xs_next(void)
{
	xs_state ^= xs_state << 13;
	xs_state ^= xs_state >> 7;
	xs_state ^= xs_state << 17;
	return xs_state;
}

/* Operands with the edge values mixed in: 0, all ones, the sign bit. */
static uint64_t operand(void)
{
	static const uint64_t edge[] = {0,
					1,
					~0ull,
					0x80,
					0x7f,
					0x8000,
					0x7fff,
					0x80000000ull,
					0x7fffffffull,
					0x8000000000000000ull,
					0x7fffffffffffffffull};
	uint64_t k = xs_next() % 16;
	return k < sizeof(edge) / sizeof(edge[0]) ? edge[k] : xs_next();
}

static void test_cf_alone(void)
{
	static const unsigned kinds[] = {LF_NONE, LF_ADD, LF_SUB, LF_LOGIC, LF_INC, LF_DEC};
	struct cpu c;
	unsigned bad = 0, n = 0;
	memset(&c, 0, sizeof(c));
	for (unsigned k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		for (unsigned sz = 0; sz < 4; sz++)
			for (unsigned it = 0; it < 20000; it++) {
				uint64_t a = operand(), b = operand(), cin = xs_next() & 1, r;
				switch (kinds[k]) {
				case LF_ADD: r = a + b + cin; break;
				case LF_SUB: r = a - b - cin; break;
				case LF_INC: r = a + 1; break;
				case LF_DEC: r = a - 1; break;
				default: r = a & b;
				}
				if (it & 1) /* any record, as a restored state may hold */
					r = operand();
				c.lf_op = kinds[k] == LF_NONE ? LF_NONE : kinds[k] | sz;
				c.lf_src1 = a;
				c.lf_src2 = b;
				c.lf_res = r;
				c.lf_aux = (uint32_t)xs_next();
				c.s.rflags = xs_next();
				uint32_t want = flags_arith(&c) & FL_CF;
				n++;
				if (flags_cf(&c) != want || flag_cf(&c) != (want != 0) ||
				    cond_eval(&c, 2) != (want != 0) || cond_eval(&c, 3) != (want == 0)) {
					if (!bad++)
						printf("  kind %u size %u: a %llx b %llx r %llx: CF %u\n", kinds[k], sz,
						       (unsigned long long)a, (unsigned long long)b,
						       (unsigned long long)r, want);
				}
			}
	CHECK_EQ_U64(bad, 0);
	CHECK_EQ_U64(n, 6 * 4 * 20000);
}

int main(void)
{
	RUN(test_cf_alone);
	return test_report();
}
