/* corrald's balloon policy (src/daemon/policy.c): guests under pressure
 * get their balloon's memory back, idle ones give some up, the band in
 * between stays put, and no target leaves [0, half the memory] through
 * inflation or goes below 0. */
#include <stdlib.h>

#include "daemon/policy.h"
#include "testhelp.h"

#define MIB (1ull << 20)

static void test_pressure_and_idle(void)
{
	struct policy_vm v[4] = {
		{.mem_mib = 512, .target_mib = 128, .avail = 20 * MIB}, /* under pressure */
		{.mem_mib = 512, .target_mib = 0, .avail = 400 * MIB},	/* idle */
		{.mem_mib = 512, .target_mib = 64, .avail = 100 * MIB}, /* in the band */
		{.mem_mib = 512, .target_mib = 30, .avail = 0},		/* starved, small balloon */
	};
	CHECK_EQ_U64(policy_balance(v, 4), 3);
	CHECK_EQ_U64(v[0].next_mib, 128 - 64); /* lacks 44 MiB; at least a step of 64 */
	CHECK_EQ_U64(v[1].next_mib, 32);       /* a sixteenth */
	CHECK_EQ_U64(v[2].next_mib, 64);
	CHECK_EQ_U64(v[3].next_mib, 0);
}

static void test_limits(void)
{
	/* idle, near the cap: stops at half */
	struct policy_vm a = {.mem_mib = 512, .target_mib = 250, .avail = 250 * MIB};
	policy_balance(&a, 1);
	CHECK_EQ_U64(a.next_mib, 256);
	/* idle just above the band: takes only the excess */
	struct policy_vm b = {.mem_mib = 300, .target_mib = 0, .avail = 105 * MIB};
	policy_balance(&b, 1);
	CHECK_EQ_U64(b.next_mib, 5);
	/* tiny and absurd figures never wrap */
	struct policy_vm c[3] = {{.mem_mib = 1, .target_mib = 0, .avail = UINT64_MAX},
				 {.mem_mib = 16, .target_mib = 16, .avail = 0},
				 {.mem_mib = 0, .target_mib = 0, .avail = 0}};
	policy_balance(c, 3);
	CHECK(c[0].next_mib <= 1);
	CHECK_EQ_U64(c[1].next_mib, 14);
	CHECK_EQ_U64(c[2].next_mib, 0);
	/* a round that changes nothing, twice: stable */
	struct policy_vm s = {.mem_mib = 512, .target_mib = 100, .avail = 120 * MIB};
	CHECK_EQ_U64(policy_balance(&s, 1), 0);
	CHECK_EQ_U64(s.next_mib, 100);
}

int main(void)
{
	RUN(test_pressure_and_idle);
	RUN(test_limits);
	return test_report();
}
