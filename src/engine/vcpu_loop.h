/* One host thread per vCPU under one machine lock: the loop both engines
 * run their vCPUs in (emu's multi-thread mode, kvm). The engine gives the
 * body of a vCPU thread and a few hooks (vcpu_loop_ops); the loop starts
 * and joins the threads and runs the caller's thread as the machine's main
 * loop: timers, device work from host threads, host input, power, pauses
 * and the idle-time skip, with the machine lock held except while it
 * waits. */
#ifndef CORRAL_VCPU_LOOP_H
#define CORRAL_VCPU_LOOP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct vcpu_loop;

struct vcpu_loop_ops {
	/* vCPU k's thread, started with every signal blocked but the faults;
	 * called with l->lock held, returns with it held once l->done. At a
	 * pause it calls vcpu_loop_park (at an instruction boundary). */
	void (*thread)(struct vcpu_loop *l, unsigned k);
	/* vCPU k leaves the guest soon (any thread, lock held or not; a vCPU
	 * not in the guest must not be harmed by it). */
	void (*kick)(struct vcpu_loop *l, unsigned k);
	/* vCPU k's run state (under l->lock). */
	enum engine_mp_state (*state)(struct vcpu_loop *l, unsigned k);
	/* Could halted vCPU k run now (an interrupt it can take, an NMI,
	 * INIT or SIPI)? And might an interrupt still wake it (IF set)? */
	int (*wakeable)(struct vcpu_loop *l, unsigned k);
	int (*may_wake)(struct vcpu_loop *l, unsigned k);
	/* Every vCPU stands parked for a pause: fill l->ctl->vcpus. 0 filled,
	 * 1 not asked for, -1 could not (the reason in why). */
	int (*describe)(struct vcpu_loop *l, char *why, size_t len);
	/* vCPU k's RIP, for a result (under l->lock, vCPU parked or done). */
	uint64_t (*rip)(struct vcpu_loop *l, unsigned k);
};

struct vcpu_loop_thread {
	struct vcpu_loop *l;
	unsigned k;
	pthread_t thr;
	int started; /* written before the main loop runs, then constant */
};

struct vcpu_loop {
	/* set by the engine before vcpu_loop_run */
	struct machine *m;
	const struct engine_host *host; /* may be NULL */
	const struct vcpu_loop_ops *ops;
	void *opaque; /* the engine's */
	unsigned n;
	const char *name; /* "emu", "kvm": in messages */

	/* The machine lock: devices, interrupt controllers, the clock, the
	 * timers, m->cur_cpu, the vCPUs' run states and the fields below. */
	pthread_mutex_t lock;
	pthread_cond_t main_cond, vcpu_cond;
	int notify_fd; /* eventfd: wakes the main loop from its wait */
	/* the clock_ns() the main loop sleeps until (UINT64_MAX: no timer),
	 * 0 while it is awake; atomic */
	uint64_t wait_until;
	int done;
	int pausing;	 /* vCPU threads park (vcpu_loop_park) */
	unsigned parked; /* vCPU threads parked */
	struct vcpu_loop_thread *t;
	struct engine_ctl *ctl; /* host->ctl */
	struct engine_result res;
};

/* Runs the machine until it ends: the threads, the main loop, the join.
 * The clock continues from its value on host time. Returns l->res. */
struct engine_result vcpu_loop_run(struct vcpu_loop *l);

/* The run ends (under l->lock): the first reason wins; every vCPU is
 * kicked and woken. */
void vcpu_loop_finish(struct vcpu_loop *l, enum engine_end end, unsigned cpu, uint64_t rip);
/* The same with ENGINE_ERROR, err (-errno) and a message. */
void vcpu_loop_fail(struct vcpu_loop *l, unsigned cpu, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Something changed for the other vCPUs (an IPI, a device interrupt, a
 * timer; under l->lock): wake the halted, kick the running that have an
 * interrupt, NMI, INIT or SIPI to take. self: the vCPU that caused it
 * (not kicked), or l->n. */
void vcpu_loop_notify(struct vcpu_loop *l, unsigned self);
/* The main loop looks at the machine now (any thread, no lock needed). */
void vcpu_loop_wake_main(struct vcpu_loop *l);
/* A vCPU thread stands still until the pause ends (under l->lock). */
void vcpu_loop_park(struct vcpu_loop *l);
/* After a vCPU's exit (under l->lock): a power-off or reset it wrote
 * takes effect now, so that no vCPU runs past the instruction. */
void vcpu_loop_power(struct vcpu_loop *l, unsigned k);

#endif
