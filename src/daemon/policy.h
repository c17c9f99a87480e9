/* corrald's balloon policy (corrald --balloon-policy): memory moves
 * towards the guests that need it, using what their balloons report.
 * policy_balance is pure (tests/corrald/t_policy.c); server.c gathers the
 * figures from each VM's control API and applies the new targets. */
#ifndef CORRAL_DAEMON_POLICY_H
#define CORRAL_DAEMON_POLICY_H

#include <stdint.h>

#define POLICY_INTERVAL_S 5 /* how often the daemon looks */

struct policy_vm {
	uint32_t mem_mib;    /* the VM's memory */
	uint32_t target_mib; /* its balloon's target now */
	uint64_t avail;	     /* bytes the guest reports available (MemAvailable) */
	uint32_t next_mib;   /* policy_balance's answer */
};

/* For each VM: a guest with less than an eighth of its memory available is
 * under pressure and its balloon deflates by up to an eighth of its memory
 * at once; one with more than a third available is idle and its balloon
 * inflates by up to a sixteenth, keeping a third available, the balloon
 * never above half the memory. Between the two, the target stays (no
 * oscillation). Returns how many targets changed. */
unsigned policy_balance(struct policy_vm *v, unsigned n);

#endif
