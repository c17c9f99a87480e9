/* Control of a running engine from other threads: pause at an instruction
 * boundary, resume, stop (also from a signal handler), and the table of
 * engines. The engines call the attach/detach/pause-point half. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

const struct engine_ops *engine_get(enum engine_kind kind)
{
	return kind == ENGINE_KVM ? &engine_kvm_ops : &engine_emu_ops;
}

static uint64_t ctl_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int engine_ctl_init(struct engine_ctl *ctl)
{
	*ctl = (struct engine_ctl){.wake_fd = -1};
	ctl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctl->wake_fd < 0)
		return -errno;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&ctl->lock, NULL);
	pthread_cond_init(&ctl->cond, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void engine_ctl_destroy(struct engine_ctl *ctl)
{
	if (ctl->wake_fd < 0)
		return;
	pthread_cond_destroy(&ctl->cond);
	pthread_mutex_destroy(&ctl->lock);
	close(ctl->wake_fd);
	ctl->wake_fd = -1;
}

static void ctl_wake(struct engine_ctl *ctl)
{
	uint64_t one = 1;
	if (write(ctl->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the engine wakes anyway */
	}
}

void engine_ctl_drain(struct engine_ctl *ctl)
{
	uint64_t v;
	if (ctl && read(ctl->wake_fd, &v, sizeof(v)) < 0) {
		/* nothing was there */
	}
}

int engine_pause(struct engine_ctl *ctl)
{
	pthread_mutex_lock(&ctl->lock);
	__atomic_store_n(&ctl->pause_req, 1, __ATOMIC_SEQ_CST);
	if (ctl->kick)
		ctl->kick(ctl->kick_opaque);
	ctl_wake(ctl);
	while (!ctl->paused && !ctl->closed)
		pthread_cond_wait(&ctl->cond, &ctl->lock);
	int r = ctl->paused ? 0 : -ESRCH;
	pthread_mutex_unlock(&ctl->lock);
	return r;
}

void engine_resume(struct engine_ctl *ctl)
{
	pthread_mutex_lock(&ctl->lock);
	__atomic_store_n(&ctl->pause_req, 0, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&ctl->cond);
	pthread_mutex_unlock(&ctl->lock);
}

void engine_stop_async(struct engine_ctl *ctl)
{
	ctl->stop = 1;
	ctl_wake(ctl);
}

void engine_stop(struct engine_ctl *ctl)
{
	pthread_mutex_lock(&ctl->lock);
	ctl->stop = 1;
	if (ctl->kick)
		ctl->kick(ctl->kick_opaque);
	ctl_wake(ctl);
	/* a paused engine looks at the stop now rather than in its next look */
	pthread_cond_broadcast(&ctl->cond);
	pthread_mutex_unlock(&ctl->lock);
}

void engine_ctl_close(struct engine_ctl *ctl)
{
	pthread_mutex_lock(&ctl->lock);
	ctl->closed = 1;
	pthread_cond_broadcast(&ctl->cond);
	pthread_mutex_unlock(&ctl->lock);
}

void engine_ctl_attach(struct engine_ctl *ctl, void (*kick)(void *), void *opaque)
{
	if (!ctl)
		return;
	pthread_mutex_lock(&ctl->lock);
	ctl->kick = kick;
	ctl->kick_opaque = opaque;
	pthread_mutex_unlock(&ctl->lock);
}

void engine_ctl_detach(struct engine_ctl *ctl)
{
	if (!ctl)
		return;
	pthread_mutex_lock(&ctl->lock);
	ctl->kick = NULL;
	ctl->kick_opaque = NULL;
	ctl->paused = 0;
	pthread_mutex_unlock(&ctl->lock);
}

void engine_ctl_vcpus_filled(struct engine_ctl *ctl)
{
	pthread_mutex_lock(&ctl->lock);
	ctl->vcpus_valid = 1;
	ctl->vcpus_why[0] = 0;
	pthread_mutex_unlock(&ctl->lock);
}

void engine_ctl_vcpus_refused(struct engine_ctl *ctl, const char *why)
{
	pthread_mutex_lock(&ctl->lock);
	ctl->vcpus_valid = 0;
	snprintf(ctl->vcpus_why, sizeof(ctl->vcpus_why), "%s", why);
	pthread_mutex_unlock(&ctl->lock);
}

uint64_t engine_ctl_pause_point(struct engine_ctl *ctl)
{
	if (!ctl)
		return 0;
	uint64_t t0 = ctl_now_ns();
	pthread_mutex_lock(&ctl->lock);
	if (ctl->pause_req && !ctl->stop) {
		ctl->paused = 1;
		pthread_cond_broadcast(&ctl->cond);
		/* a stop comes from a signal handler, which cannot signal the
		 * condition: look at it now and then */
		while (ctl->pause_req && !ctl->stop) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += 20000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&ctl->cond, &ctl->lock, &ts);
		}
		ctl->paused = 0;
	}
	ctl->vcpus_valid = 0;
	pthread_mutex_unlock(&ctl->lock);
	engine_ctl_drain(ctl);
	return ctl_now_ns() - t0;
}

void engine_ctl_debug_stop(struct engine_ctl *ctl, unsigned cpu, struct cpu_dbg_hit why)
{
	struct engine_debug *d = ctl->debug;
	pthread_mutex_lock(&ctl->lock);
	d->stopped = 1;
	d->stop_cpu = cpu;
	d->stop = why;
	d->step_cpu = -1;
	d->run_to = UINT64_MAX;
	__atomic_store_n(&ctl->pause_req, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&ctl->lock);
	uint64_t one = 1;
	if (write(d->notify_fd, &one, sizeof(one)) < 0) {
		/* saturated: the owner is told already */
	}
}
