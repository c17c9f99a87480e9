/* The VM's lifecycle: create, run (here or on a thread of its own), pause,
 * resume, reset, stop, destroy; the loop that boots, runs the engine (and
 * hands over between engines), and reboots on a guest reset. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "machine/machine_impl.h"
#include "machine/replay.h"
#include "virtio/virtio.h"
#include "vm/vm_internal.h"

_Static_assert(VM_MAX_CPUS == MACHINE_MAX_CPUS, "vm.h's CPU limit is the machine's");

void vm_config_init(struct vm_config *c)
{
	*c = (struct vm_config){.mem = VM_MEM_DEFAULT,
				.cpus = 1,
				.serial_fd = -1,
				.ps_per_insn = EMU_PS_PER_INSN_DEFAULT,
				/* only machines of two or more vCPUs run it; record/replay and a
				 * debugger run single whatever this says (emu_run) */
				.threads = ENGINE_THREADS_MULTI};
	cpu_opts_default(&c->cpu_opts);
}

/* ---- Copying the configuration ---- */

static size_t str_need(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

static const char *str_put(char **p, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	memcpy(*p, s, n);
	const char *r = *p;
	*p += n;
	return r;
}

static int config_copy(struct vm *vm, const struct vm_config *c)
{
	size_t need = 1 + str_need(c->kernel) + str_need(c->initrd) + str_need(c->cmdline) + str_need(c->flat) +
		      str_need(c->serial_path) + str_need(c->guest_dir) + str_need(c->kernel_cache) +
		      str_need(c->record) + str_need(c->replay) + str_need(c->version);
	for (unsigned k = 0; k < c->ndisks; k++)
		need += str_need(c->disk[k].path) + str_need(c->disk[k].serial);
	for (unsigned k = 0; k < c->nnets; k++)
		need += str_need(c->net[k]);
	char *p = vm->strs = malloc(need);
	if (!p)
		return -ENOMEM;
	vm->cfg = *c;
	vm->cfg.kernel = str_put(&p, c->kernel);
	vm->cfg.initrd = str_put(&p, c->initrd);
	vm->cfg.cmdline = str_put(&p, c->cmdline);
	vm->cfg.flat = str_put(&p, c->flat);
	vm->cfg.serial_path = str_put(&p, c->serial_path);
	vm->cfg.guest_dir = str_put(&p, c->guest_dir);
	vm->cfg.kernel_cache = str_put(&p, c->kernel_cache);
	vm->cfg.record = str_put(&p, c->record);
	vm->cfg.replay = str_put(&p, c->replay);
	vm->cfg.version = str_put(&p, c->version);
	for (unsigned k = 0; k < c->ndisks; k++) {
		vm->cfg.disk[k].path = str_put(&p, c->disk[k].path);
		vm->cfg.disk[k].serial = str_put(&p, c->disk[k].serial);
	}
	for (unsigned k = 0; k < c->nnets; k++)
		vm->cfg.net[k] = str_put(&p, c->net[k]);
	return 0;
}

/* What the CLI checks with its own messages, checked again for every
 * other client. */
static int config_check(const struct vm_config *c, char *err, size_t errlen)
{
	if (c->cpus < 1 || c->cpus > MACHINE_MAX_CPUS)
		snprintf(err, errlen, "cpus %u: must be from 1 to %d", c->cpus, MACHINE_MAX_CPUS);
	else if (c->mem < VM_MEM_MIN || c->mem > VM_MEM_MAX || (c->mem & 0xfff))
		snprintf(err, errlen, "mem %" PRIu64 ": must be a multiple of 4K between 16M and 1T", c->mem);
	else if (c->ndisks > VM_MAX_DISKS || c->nnets > VM_MAX_NETS)
		snprintf(err, errlen, "at most %d disks and %d networks", VM_MAX_DISKS, VM_MAX_NETS);
	else if (c->cpu_model == CPU_MODEL_HOST && c->engine != VM_ENGINE_KVM)
		snprintf(err, errlen, "the host CPU model needs the kvm engine");
	else if (c->handover && (c->engine == VM_ENGINE_AUTO || c->cpus != 1))
		snprintf(err, errlen, "a hand-over needs the emu or kvm engine and one vCPU");
	else if (c->initrd && !c->kernel && !c->flat)
		snprintf(err, errlen, "an initrd needs a kernel");
	else if (c->balloon.on && (uint64_t)c->balloon.amount_mib << 20 > c->mem)
		snprintf(err, errlen, "balloon of %u MiB: larger than the VM's %" PRIu64 " MiB", c->balloon.amount_mib,
			 c->mem >> 20);
	else if (c->balloon.on && c->balloon.stats_s > VM_BALLOON_STATS_MAX)
		snprintf(err, errlen, "balloon statistics every %u s: at most %d", c->balloon.stats_s,
			 VM_BALLOON_STATS_MAX);
	else
		return 0;
	return -EINVAL;
}

int vm_create(const struct vm_config *cfg, struct vm **out, char *err, size_t errlen)
{
	return vm_create_as(cfg, NULL, out, err, errlen);
}

int vm_create_as(const struct vm_config *cfg, const struct vm_origin *from, struct vm **out, char *err, size_t errlen)
{
	int r;
	*out = NULL;
	if ((r = config_check(cfg, err, errlen)) < 0 || (r = vm_rr_check(cfg, from, err, errlen)) < 0)
		return r;
	for (unsigned k = 0; k < cfg->ndisks; k++) {
		const char *s = cfg->disk[k].serial;
		if (!cfg->disk[k].path || (s && strlen(s) > VM_DISK_SERIAL_MAX)) {
			snprintf(err, errlen, "disk %u: needs an image file and a serial of at most %d characters", k,
				 VM_DISK_SERIAL_MAX);
			return -EINVAL;
		}
	}
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	vm->out_fd = -1;
	vm->origin_mfd = -1;
	vm->restoring = from != NULL;
	if (from)
		vm->origin = *from;
	pthread_mutex_init(&vm->lock, NULL);
	vm->vcpus = calloc(cfg->cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus || (r = config_copy(vm, cfg)) < 0 || (r = engine_ctl_init(&vm->ctl)) < 0) {
		r = vm->vcpus ? r : -ENOMEM;
		snprintf(err, errlen, "%s", strerror(-r));
		goto err_free;
	}
	vm->ctl.vcpus = vm->vcpus;
	vm->ctl.nvcpus = cfg->cpus;
	if ((cfg->record || cfg->replay) && cfg->engine == VM_ENGINE_AUTO)
		vm->cfg.engine = VM_ENGINE_EMU; /* the one engine that records */
	if ((r = vm_rr_open(vm, err, errlen)) < 0 || (r = vm_open_backends(vm, err, errlen)) < 0 ||
	    (r = vm_pick_engine(vm, err, errlen)) < 0 || (r = vm_rr_start(vm, err, errlen)) < 0)
		goto err_backends;
	vm->out_fd = vm->cfg.serial_fd;
	if (vm->cfg.serial_path) {
		vm->out_fd = open(vm->cfg.serial_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (vm->out_fd < 0) {
			r = -errno;
			snprintf(err, errlen, "--serial file:%s: %s", vm->cfg.serial_path, strerror(-r));
			goto err_backends;
		}
		vm->own_out_fd = 1;
	}
	if ((r = vm_build(vm, err, errlen)) < 0)
		goto err_out;
	*out = vm;
	return 0;

err_out:
	if (vm->own_out_fd)
		close(vm->out_fd);
err_backends:
	vm_close_backends(vm);
	vm_rr_cleanup(vm);
	replay_free(vm->rr);
	engine_ctl_destroy(&vm->ctl);
err_free:
	pthread_mutex_destroy(&vm->lock);
	free(vm->vcpus);
	free(vm->strs);
	free(vm);
	return r;
}

void vm_drop_machine(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	struct machine *m = vm->m;
	vm->m = NULL;
	vm->hvc = NULL;
	vm->balloon = NULL;
	pthread_mutex_unlock(&vm->lock);
	machine_destroy(m);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	if (vm->thread_started) {
		/* a transfer waiting for its tokens goes now, or the join waits */
		for (unsigned k = 0; vm->rates_on && k < VM_MAX_DISKS; k++)
			rate_limit_cancel(&vm->blkrate[k]);
		vm_stop(vm);
		pthread_join(vm->thr, NULL);
		vm->thread_started = 0;
	}
	vm_drop_machine(vm);
	vm_close_backends(vm);
	replay_free(vm->rr);
	if (vm->own_out_fd)
		close(vm->out_fd);
	vm_debug_free(vm);
	engine_ctl_destroy(&vm->ctl);
	pthread_mutex_destroy(&vm->lock);
	free(vm->vcpus);
	free(vm->restore);
	free(vm->origin_state);
	if (vm->origin_mfd >= 0)
		close(vm->origin_mfd);
	free(vm->strs);
	free(vm);
}

const char *vm_engine_name(const struct vm *vm)
{
	return engine_get(vm->kind)->name;
}

/* ---- Running ---- */

static void exit_from(struct vm_exit *ex, const struct engine_result *res)
{
	*ex = (struct vm_exit){.cpu = res->cpu, .rip = res->rip, .err = res->err};
	switch (res->end) {
	case ENGINE_POWER_OFF: ex->end = VM_END_POWER_OFF; break;
	case ENGINE_RESET: ex->end = VM_END_RESET; break;
	case ENGINE_TRIPLE_FAULT: ex->end = VM_END_TRIPLE_FAULT; break;
	case ENGINE_HUNG: ex->end = VM_END_HUNG; break;
	case ENGINE_QUIT: ex->end = VM_END_QUIT; break;
	case ENGINE_REWIND: ex->end = VM_END_QUIT; break; /* a stop came as a replay's debugger went back */
	case ENGINE_ERROR:
	case ENGINE_HANDED_OVER:
		ex->end = VM_END_ERROR;
		snprintf(ex->msg, sizeof(ex->msg), "%s", res->msg);
		break;
	}
}

static void vm_loop(struct vm *vm, struct vm_exit *ex)
{
	const struct vm_config *c = &vm->cfg;
	/* a replay's console input comes from its file */
	struct engine_host host = {.poll_input = replay_mode(vm->rr) == REPLAY_PLAY ? NULL : c->poll_input,
				   .opaque = c->input_opaque,
				   .ps_per_insn = c->ps_per_insn,
				   .realtime_idle = c->realtime_idle,
				   .cpu_model = c->cpu_model,
				   .threads = c->threads,
				   .cpu_opts = &c->cpu_opts,
				   .ctl = &vm->ctl};
	char err[sizeof(ex->msg)];
	for (;;) {
		struct cpu_state mid;
		host.stop_after = c->handover;
		host.final = &mid;
		host.restore = vm->restore; /* a restored VM's first run only */
		if (vm->restore && c->bench_t0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
			vm_log(vm, "bench: restored, the engine starts %.3f ms after start",
			       (double)(now - c->bench_t0) / 1e6);
		}
		struct engine_result res = engine_run(vm->kind, vm->m, &vm->bsp, &host);
		free(vm->restore);
		vm->restore = NULL;
		host.restore = NULL;
		if (res.end == ENGINE_HANDED_OVER) {
			enum engine_kind other = vm->kind == ENGINE_KVM ? ENGINE_EMU : ENGINE_KVM;
			vm_log(vm, "handover: %s -> %s at rip 0x%" PRIx64, engine_get(vm->kind)->name,
			       engine_get(other)->name, mid.rip);
			host.stop_after = 0;
			res = engine_run(other, vm->m, &mid, &host);
		}
		if (res.end == ENGINE_REWIND && !vm->ctl.stop) {
			/* a replay's debugger goes back: the recording's machine
			 * from its start, which the replay brings to where it asks */
			if (vm_rr_rewind(vm, err, sizeof(err)) < 0) {
				*ex = (struct vm_exit){.end = VM_END_ERROR, .err = -EINVAL};
				snprintf(ex->msg, sizeof(ex->msg), "%s", err);
				break;
			}
			continue;
		}
		exit_from(ex, &res);
		if (res.end == ENGINE_POWER_OFF && vm->dbgexit.written) {
			ex->end = VM_END_EXIT_DEVICE;
			ex->status = vm->dbgexit.status;
		}
		if (res.end != ENGINE_RESET || vm->ctl.stop)
			break;
		pthread_mutex_lock(&vm->lock);
		int asked = vm->reset_req;
		vm->reset_req = 0;
		pthread_mutex_unlock(&vm->lock);
		if (c->no_reboot && !asked)
			break;
		if (c->on_reboot)
			c->on_reboot(c->reboot_opaque);
		/* the same machine, reset: RAM, devices and the guest as at boot */
		if (vm_reboot(vm, err, sizeof(err)) < 0) {
			*ex = (struct vm_exit){.end = VM_END_ERROR, .err = -EINVAL};
			snprintf(ex->msg, sizeof(ex->msg), "%s", err);
			break;
		}
	}
	vm_rr_finish(vm, ex);
	vm_drop_machine(vm);
	pthread_mutex_lock(&vm->lock);
	vm->state = VM_ENDED;
	pthread_mutex_unlock(&vm->lock);
	engine_ctl_close(&vm->ctl);
}

static int vm_claim(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	int r = vm->state == VM_CREATED ? 0 : -EBUSY;
	if (!r)
		vm->state = VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_run(struct vm *vm, struct vm_exit *ex)
{
	int r = vm_claim(vm);
	if (r < 0)
		return r;
	vm_loop(vm, ex);
	return 0;
}

static void *vm_thread(void *arg)
{
	struct vm *vm = arg;
	vm_loop(vm, &vm->exit);
	return NULL;
}

int vm_start(struct vm *vm)
{
	int r = vm_claim(vm);
	if (r < 0)
		return r;
	r = -pthread_create(&vm->thr, NULL, vm_thread, vm);
	if (r < 0) {
		pthread_mutex_lock(&vm->lock);
		vm->state = VM_CREATED;
		pthread_mutex_unlock(&vm->lock);
		return r;
	}
	vm->thread_started = 1;
	return 0;
}

int vm_wait(struct vm *vm, struct vm_exit *ex)
{
	if (!vm->thread_started)
		return -EINVAL;
	pthread_join(vm->thr, NULL);
	vm->thread_started = 0;
	if (ex)
		*ex = vm->exit;
	return 0;
}

/* ---- Control from other threads ---- */

static int vm_running(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	int r = vm->state == VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_pause(struct vm *vm)
{
	if (!vm_running(vm))
		return -ESRCH;
	return engine_pause(&vm->ctl);
}

void vm_pause_async(struct vm *vm)
{
	pthread_mutex_lock(&vm->ctl.lock);
	__atomic_store_n(&vm->ctl.pause_req, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&vm->ctl.lock);
}

int vm_is_paused(struct vm *vm)
{
	return __atomic_load_n(&vm->ctl.pause_req, __ATOMIC_SEQ_CST) != 0;
}

int vm_is_running(struct vm *vm)
{
	return vm_running(vm);
}

const struct vm_config *vm_get_config(const struct vm *vm)
{
	return &vm->cfg;
}

void vm_resume(struct vm *vm)
{
	engine_resume(&vm->ctl);
}

int vm_reset(struct vm *vm)
{
	int r = vm_pause(vm);
	if (r < 0)
		return r;
	/* paused: the engine stands still, so its machine is ours to touch */
	pthread_mutex_lock(&vm->lock);
	if (vm->m) {
		vm->reset_req = 1;
		machine_request_power(vm->m, POWER_RESET);
	} else {
		r = -ESRCH;
	}
	pthread_mutex_unlock(&vm->lock);
	vm_resume(vm);
	return r;
}

void vm_stop_async(struct vm *vm)
{
	engine_stop_async(&vm->ctl);
}

void vm_stop(struct vm *vm)
{
	engine_stop(&vm->ctl);
}

size_t vm_console_input(struct vm *vm, const uint8_t *buf, size_t n)
{
	struct machine *m = vm->m;
	if (!m)
		return 0;
	/* a multi-thread engine waits for input with its lock released */
	if (m->input_lock)
		m->input_lock(m->kick_opaque, 1);
	size_t k = vm->hvc ? virtio_console_receive(vm->hvc, buf, n) : uart_receive(&m->com1, buf, n);
	if (k)
		replay_log(vm->rr, REPLAY_CONSOLE, 0, buf, k);
	if (m->input_lock)
		m->input_lock(m->kick_opaque, 0);
	return k;
}

int vm_ram_read(struct vm *vm, uint64_t gpa, void *dst, size_t len)
{
	int r = -ESRCH;
	pthread_mutex_lock(&vm->lock);
	if (vm->m) {
		const void *p = gpa_ptr(vm->m, gpa, len);
		r = p ? 0 : -EFAULT;
		if (p)
			memcpy(dst, p, len);
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}
