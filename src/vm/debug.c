/* A debugger's hold on a VM (vm.h, "Debugging"): breakpoints, watchpoints,
 * single steps and register access through the engine's debug interface
 * (engine.h, struct engine_debug), guest RAM written as a device would. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "machine/machine.h"
#include "machine/replay.h"
#include "vm/vm_internal.h"

int vm_debug_enable(struct vm *vm, char *err, size_t errlen)
{
	if (vm->ctl.debug)
		return 0;
	if (vm->kind != ENGINE_EMU) {
		snprintf(err, errlen,
			 "the GDB stub needs the emu engine (--engine emu): the %s engine has no debug support yet",
			 engine_get(vm->kind)->name);
		return -ENOTSUP;
	}
	if (vm->rr && replay_mode(vm->rr) == REPLAY_RECORD) {
		/* a debugger's stops and writes would be part of the run */
		snprintf(err, errlen, "a recording takes no debugger (--gdb goes with --replay)");
		return -EINVAL;
	}
	struct engine_debug *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	d->step_cpu = -1;
	d->run_to = UINT64_MAX;
	d->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->notify_fd < 0) {
		int r = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(-r));
		free(d);
		return r;
	}
	/* a replay's writable disks log what each write replaces, so going
	 * back takes them back too */
	if (vm->rr && replay_mode(vm->rr) == REPLAY_PLAY)
		for (unsigned k = 0; k < vm->cfg.ndisks; k++)
			if (vm->rr_base[k][0])
				blk_undo_arm(vm->blk[k]);
	if (vm_rr_snaps_init(vm, d) < 0) {
		close(d->notify_fd);
		free(d);
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	/* before the engine runs: it reads ctl->debug when it starts */
	pthread_mutex_lock(&vm->ctl.lock);
	vm->ctl.debug = d;
	pthread_mutex_unlock(&vm->ctl.lock);
	return 0;
}

void vm_debug_free(struct vm *vm)
{
	struct engine_debug *d = vm->ctl.debug;
	if (!d)
		return;
	vm->ctl.debug = NULL;
	vm_rr_snaps_free(vm);
	close(d->notify_fd);
	free(d);
}

int vm_debug_notify_fd(const struct vm *vm)
{
	return vm->ctl.debug ? vm->ctl.debug->notify_fd : -1;
}

unsigned vm_ncpus(const struct vm *vm)
{
	return vm->cfg.cpus;
}

int vm_debug_halt(struct vm *vm)
{
	return engine_pause(&vm->ctl);
}

/* The engine stands at a pause point with its vCPUs described: the
 * debugger may look and change things. Under ctl.lock. */
static int stands(const struct vm *vm)
{
	return vm->ctl.debug && vm->ctl.paused && vm->ctl.vcpus_valid;
}

int vm_debug_take_stop(struct vm *vm, struct vm_debug_stop *st)
{
	struct engine_debug *d = vm->ctl.debug;
	if (!d)
		return 0;
	uint64_t v;
	if (read(d->notify_fd, &v, sizeof(v)) < 0) {
		/* nothing was signalled */
	}
	pthread_mutex_lock(&vm->ctl.lock);
	int r = d->stopped;
	if (r) {
		*st = (struct vm_debug_stop){.cpu = d->stop_cpu, .kind = d->stop.kind, .addr = d->stop.addr};
		d->stopped = 0;
	}
	pthread_mutex_unlock(&vm->ctl.lock);
	return r;
}

void vm_debug_attach(struct vm *vm, int on)
{
	if (vm->ctl.debug)
		__atomic_store_n(&vm->ctl.debug->attached, on, __ATOMIC_SEQ_CST);
}

int vm_debug_get_regs(struct vm *vm, unsigned cpu, struct cpu_state *s)
{
	if (cpu >= vm->cfg.cpus)
		return -EINVAL;
	pthread_mutex_lock(&vm->ctl.lock);
	int r = stands(vm) ? 0 : -EAGAIN;
	if (!r)
		*s = vm->ctl.vcpus[cpu].s;
	pthread_mutex_unlock(&vm->ctl.lock);
	return r;
}

int vm_debug_set_regs(struct vm *vm, unsigned cpu, const struct cpu_state *s)
{
	if (cpu >= vm->cfg.cpus)
		return -EINVAL;
	if (vm_cpu_state_check(s))
		return -EINVAL;
	if (vm_debug_replaying(vm))
		return -EPERM; /* the replay's state is the recording's */
	pthread_mutex_lock(&vm->ctl.lock);
	int r = stands(vm) ? 0 : -EAGAIN;
	if (!r) {
		vm->ctl.vcpus[cpu].s = *s;
		vm->ctl.debug->load_vcpus = 1;
	}
	pthread_mutex_unlock(&vm->ctl.lock);
	return r;
}

int vm_debug_set_bp(struct vm *vm, uint64_t addr, int on)
{
	pthread_mutex_lock(&vm->ctl.lock);
	int r = vm->ctl.debug && vm->ctl.paused ? 0 : -EAGAIN;
	if (r)
		goto out;
	struct cpu_debug *c = &vm->ctl.debug->cpu;
	unsigned k;
	for (k = 0; k < c->nbp && c->bp[k] != addr; k++)
		;
	if (on && k == c->nbp) {
		if (c->nbp == CPU_DBG_MAX_BP) {
			r = -ENOSPC;
			goto out;
		}
		c->bp[c->nbp++] = addr;
	} else if (!on) {
		if (k == c->nbp) {
			r = -ENOENT;
			goto out;
		}
		c->bp[k] = c->bp[--c->nbp];
	}
	c->gen++;
out:
	pthread_mutex_unlock(&vm->ctl.lock);
	return r;
}

int vm_debug_set_wp(struct vm *vm, int kind, uint64_t addr, uint64_t len, int on)
{
	if (kind != CPU_DBG_WATCH_W && kind != CPU_DBG_WATCH_R && kind != CPU_DBG_WATCH_RW)
		return -EINVAL;
	if (!len || addr + len - 1 < addr)
		return -EINVAL;
	pthread_mutex_lock(&vm->ctl.lock);
	int r = vm->ctl.debug && vm->ctl.paused ? 0 : -EAGAIN;
	if (r)
		goto out;
	struct cpu_debug *c = &vm->ctl.debug->cpu;
	unsigned k;
	for (k = 0; k < c->nwp; k++)
		if (c->wp[k].addr == addr && c->wp[k].len == len && c->wp[k].kind == kind)
			break;
	if (on && k == c->nwp) {
		if (c->nwp == CPU_DBG_MAX_WP) {
			r = -ENOSPC;
			goto out;
		}
		c->wp[c->nwp].addr = addr;
		c->wp[c->nwp].len = len;
		c->wp[c->nwp].kind = kind;
		c->nwp++;
	} else if (!on) {
		if (k == c->nwp) {
			r = -ENOENT;
			goto out;
		}
		c->wp[k] = c->wp[--c->nwp];
	}
	c->gen++;
out:
	pthread_mutex_unlock(&vm->ctl.lock);
	return r;
}

void vm_debug_clear(struct vm *vm)
{
	pthread_mutex_lock(&vm->ctl.lock);
	if (vm->ctl.debug) {
		struct cpu_debug *c = &vm->ctl.debug->cpu;
		c->nbp = c->nwp = 0;
		c->gen++;
		vm->ctl.debug->step_cpu = -1;
		vm->ctl.debug->run_to = UINT64_MAX;
		vm->ctl.debug->hits = ENGINE_HITS_STOP;
	}
	pthread_mutex_unlock(&vm->ctl.lock);
}

void vm_debug_resume(struct vm *vm, int step_cpu)
{
	pthread_mutex_lock(&vm->ctl.lock);
	if (vm->ctl.debug) {
		vm->ctl.debug->step_cpu = step_cpu >= 0 && (unsigned)step_cpu < vm->cfg.cpus ? step_cpu : -1;
		vm->ctl.debug->stopped = 0;
		vm->ctl.debug->run_to = UINT64_MAX;
		vm->ctl.debug->hits = ENGINE_HITS_STOP;
	}
	pthread_mutex_unlock(&vm->ctl.lock);
	engine_resume(&vm->ctl);
}

int vm_ram_write(struct vm *vm, uint64_t gpa, const void *src, size_t len)
{
	int r = -ESRCH;
	pthread_mutex_lock(&vm->lock);
	if (vm->m)
		r = gpa_write(vm->m, gpa, src, len) < 0 ? -EFAULT : 0;
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_debug_flush(struct vm *vm)
{
	pthread_mutex_lock(&vm->ctl.lock);
	int r = vm->ctl.debug && vm->ctl.paused ? 0 : -EAGAIN;
	if (!r)
		vm->ctl.debug->flush = 1;
	pthread_mutex_unlock(&vm->ctl.lock);
	return r;
}

int vm_debug_can_go_back(const struct vm *vm)
{
	for (unsigned k = 0; k < vm->cfg.ndisks; k++)
		if (vm->rr_base[k][0] && !blk_undo_ok(vm->blk[k]))
			return 0;
	return 1;
}

int vm_debug_replaying(const struct vm *vm)
{
	return vm->ctl.debug && vm->rr && replay_mode(vm->rr) == REPLAY_PLAY;
}

int vm_debug_position(struct vm *vm, unsigned cpu, uint64_t *count, uint64_t *total)
{
	if (cpu >= vm->cfg.cpus || cpu >= ENGINE_DEBUG_MAX_CPUS)
		return -EINVAL;
	pthread_mutex_lock(&vm->ctl.lock);
	int r = stands(vm) && vm_debug_replaying(vm) ? 0 : -EAGAIN;
	if (!r) {
		*count = vm->ctl.debug->count[cpu];
		*total = vm->ctl.debug->total;
	}
	pthread_mutex_unlock(&vm->ctl.lock);
	return r;
}

void vm_debug_replay_run(struct vm *vm, const struct vm_debug_run *run)
{
	pthread_mutex_lock(&vm->ctl.lock);
	struct engine_debug *d = vm->ctl.debug;
	if (d) {
		d->step_cpu = -1;
		d->stopped = 0;
		d->rewind = run->rewind;
		d->run_cpu = run->cpu < vm->cfg.cpus ? run->cpu : 0;
		d->run_to = run->to;
		d->hits = run->hits;
		d->scan_below = run->scan_below;
		d->scan_from = run->hits == ENGINE_HITS_SCAN ? run->scan_from : 0;
		d->seek = run->seek;
		d->last = (struct engine_debug_hit){0};
	}
	pthread_mutex_unlock(&vm->ctl.lock);
	engine_resume(&vm->ctl);
}

int vm_debug_last_hit(struct vm *vm, struct engine_debug_hit *h)
{
	pthread_mutex_lock(&vm->ctl.lock);
	struct engine_debug *d = vm->ctl.debug;
	int r = d && d->last.why.kind != CPU_DBG_NONE;
	if (r)
		*h = d->last;
	pthread_mutex_unlock(&vm->ctl.lock);
	return r;
}
