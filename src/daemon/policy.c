/* corrald's balloon policy (policy.h): from each guest's available
 * memory, a new balloon target. */
#include "daemon/policy.h"

unsigned policy_balance(struct policy_vm *v, unsigned n)
{
	unsigned changed = 0;
	for (unsigned k = 0; k < n; k++) {
		struct policy_vm *p = &v[k];
		uint64_t avail_mib = p->avail >> 20, mem = p->mem_mib;
		uint64_t low = mem / 8, high = mem / 3, max = mem / 2;
		uint64_t t = p->target_mib > mem ? mem : p->target_mib;
		if (avail_mib < low) {
			/* under pressure: give back what it lacks, at least a step */
			uint64_t give = low - avail_mib < mem / 8 ? mem / 8 : low - avail_mib;
			t = t > give ? t - give : 0;
		} else if (avail_mib > high && t < max) {
			uint64_t take = avail_mib - high, step = mem / 16 ? mem / 16 : 1;
			if (take > step)
				take = step;
			t = t + take > max ? max : t + take;
		}
		p->next_mib = (uint32_t)t;
		changed += p->next_mib != p->target_mib;
	}
	return changed;
}
