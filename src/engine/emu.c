/* The emu engine: runs a machine's vCPUs with corral's interpreter, either
 * taking turns on one host thread (instruction-counted, reproducible) or
 * each on a host thread of its own (emu_mt_run below); delivers INIT/SIPI,
 * runs expired timers and, when every vCPU is halted, jumps the virtual
 * clock to the next timer deadline instead of waiting for it. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "engine/engine.h"
#include "engine/vcpu_loop.h"
#include "machine/machine_impl.h"
#include "machine/replay.h"

#define EMU_SLICE_DEFAULT 50000
#define EMU_SLICE_MIN 200 /* shortest turn: a cap on the loop's overhead */
#define unlikely(x) __builtin_expect(!!(x), 0)

enum vcpu_run_state { VCPU_RUNNING, VCPU_HALTED, VCPU_WAIT_SIPI };

struct emu;

struct emu_vcpu {
	struct cpu cpu;
	enum vcpu_run_state state;
	int inited;
	/* multi-thread mode only */
	struct emu *e;
	unsigned index;
	struct cpu_platform plat; /* this vCPU's view: the machine lock around every device access */
	int in_run;		  /* atomic: inside cpu_run (a kick must stop it) */
};

struct emu {
	struct machine *m;
	struct emu_vcpu *v;
	unsigned n;
	struct cpu *volatile running;
	struct engine_ctl *ctl; /* may be NULL */
	struct cpu_physmem *phys;
	struct cpu_platform plat;
	uint64_t turn_icount;	 /* the running vCPU's icount when its turn began */
	uint64_t ps_per_insn;	 /* virtual time per instruction, 0: host time */
	int step_cpu;		 /* a debugger's single step: only this vCPU runs; -1: none */
	struct replay *rr;	 /* record or replay (machine/replay.h); NULL: neither */
	struct engine_debug *rd; /* a debugger on a replay (engine.h); NULL: none */
	int rewinding;		 /* rd: the debugger asked for the recording's start */
	int rr_quit;		 /* record: the console input asked to end */
	uint64_t wall_start;	 /* the host's monotonic time at the guest clock's 0 */
	/* Multi-thread mode (emu_mt_run): the engine-level vCPU loop, whose
	 * lock (the machine lock) guards the vCPUs' run states. */
	int mt;
	uint64_t mt_slice;
	struct vcpu_loop loop;
};

/* ---- The PC as the CPU sees it ---- */

static void *plat_ram_ptr(void *m, uint64_t gpa, uint64_t len)
{
	return gpa_ptr(m, gpa, len);
}

static uint64_t plat_pio_read(void *m, uint16_t port, unsigned size)
{
	return bus_pio_read(m, port, size);
}

static void plat_pio_write(void *m, uint16_t port, unsigned size, uint64_t val)
{
	bus_pio_write(m, port, size, val);
}

static uint64_t plat_mmio_read(void *m, uint64_t gpa, unsigned size)
{
	return bus_mmio_read(m, gpa, size);
}

static void plat_mmio_write(void *m, uint64_t gpa, unsigned size, uint64_t val)
{
	bus_mmio_write(m, gpa, size, val);
}

static int plat_intr_pending(void *m, unsigned cpu)
{
	return intr_pending(m, cpu);
}

static int plat_intr_ack(void *m, unsigned cpu)
{
	return intr_ack(m, cpu);
}

static int plat_apic_msr_read(void *m, unsigned cpu, uint32_t msr, uint64_t *val)
{
	return lapic_msr_read(m, cpu, msr, val);
}

static int plat_apic_msr_write(void *m, unsigned cpu, uint32_t msr, uint64_t val)
{
	return lapic_msr_write(m, cpu, msr, val);
}

static uint64_t plat_clock_ns(void *m)
{
	return clock_ns(m);
}

/* RDRAND's bytes: the host's, logged when recording, the log's in a replay */
static int plat_random(void *m, void *buf, size_t len)
{
	return replay_random(m, buf, len);
}

void engine_emu_platform(struct cpu_platform *p, struct machine *m)
{
	*p = (struct cpu_platform){.opaque = m,
				   .ram_ptr = plat_ram_ptr,
				   .pio_read = plat_pio_read,
				   .pio_write = plat_pio_write,
				   .mmio_read = plat_mmio_read,
				   .mmio_write = plat_mmio_write,
				   .intr_pending = plat_intr_pending,
				   .intr_ack = plat_intr_ack,
				   .apic_msr_read = plat_apic_msr_read,
				   .apic_msr_write = plat_apic_msr_write,
				   .clock_ns = plat_clock_ns,
				   .random = plat_random,
				   .apic_base = MEM_LAPIC_BASE};
}

/* The running vCPU returns at its next block boundary (from another
 * thread, under the controller's lock, or from the vCPU's own device
 * handlers: stop_req is sticky, and emu_turn looks at the requests after
 * publishing the vCPU it runs). */
static void emu_kick(void *opaque)
{
	struct emu *e = opaque;
	struct cpu *c = __atomic_load_n(&e->running, __ATOMIC_SEQ_CST);
	if (c)
		cpu_request_stop(c);
}

/* The controller's kick (a pause, a stop). Under record or replay a turn
 * ends only where instructions say, so that turns, and with them the
 * interleaving of vCPUs and the delivery of interrupts, are the same in
 * both runs: a stop waits for the end of the turn (replay_point). */
static void emu_ctl_kick(void *opaque)
{
	struct emu *e = opaque;
	if (!e->rr)
		emu_kick(opaque);
}

/* Under record or replay a stop is taken only at an injection point
 * (emu_rr_point), where the replay can stop at the same place. */
static int emu_stopping(const struct emu *e)
{
	return e->ctl && e->ctl->stop && !e->rr;
}

/* Record and replay: every vCPU's instructions so far, the position of an
 * input (with the injection points' count). */
static uint64_t emu_icount(void *opaque)
{
	const struct emu *e = opaque;
	uint64_t n = 0;
	for (unsigned k = 0; k < e->n; k++)
		n += e->v[k].cpu.icount;
	return n;
}

/* An injection point: a replay's inputs for it go in here (a recording's
 * entered right after: the console's poll, the machine's host work).
 * 0 go on, 1 end the run here, -1 the replay diverged. */
static int emu_rr_point(struct emu *e)
{
	if (!e->rr)
		return 0;
	return replay_point(e->rr, (e->ctl && e->ctl->stop) || e->rr_quit);
}

/* How far idle guest time may run ahead of the wall clock (see below). */
#define EMU_IDLE_LEAD_NS (300ull * 1000000000ull)
/* Once at that lead, a guest idling for good wakes the host once per
 * EMU_IDLE_BATCH_NS of its timers, not once per timer: an idle Linux wakes
 * 4-8 times a second (kcompactd, workqueues, its lockup watchdog), and
 * those wake-ups run back to back (docs/benchmarks.md, corrald's density). */
#define EMU_IDLE_BATCH_NS (1000ull * 1000000ull)
/* The longest single sleep there (a stop or input ends it anyway). */
#define EMU_IDLE_WAIT_MAX_NS (10000ull * 1000000ull)

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Virtual time inside a turn: the running vCPU's instructions so far. */
static uint64_t emu_clock_delta(void *opaque)
{
	struct emu *e = opaque;
	struct cpu *c = e->running;
	if (!c || c->icount < e->turn_icount)
		return 0;
	return (c->icount - e->turn_icount) * e->ps_per_insn / 1000;
}

/* The start of a turn of vCPU k: returns its length. */
static uint64_t emu_turn_begin(struct emu *e, unsigned k, uint64_t slice)
{
	struct cpu *c = &e->v[k].cpu;
	e->m->cur_cpu = k;
	e->turn_icount = c->icount;
	__atomic_store_n(&e->running, c, __ATOMIC_SEQ_CST);
	if (!e->rr && (engine_ctl_pause_wanted(e->ctl) || emu_stopping(e)))
		cpu_request_stop(c);
	if (e->ps_per_insn) {
		/* With instruction-driven time, a turn ends at the next timer
		 * deadline, so timers fire on time (and the same way each run). */
		uint64_t next = mtimer_next_deadline(e->m), now = clock_ns(e->m);
		if (next != UINT64_MAX) {
			uint64_t n = next > now ? (next - now) * 1000 / e->ps_per_insn + 1 : 1;
			if (n < EMU_SLICE_MIN)
				n = EMU_SLICE_MIN;
			if (n < slice)
				slice = n;
		}
	}
	return slice;
}

/* The end of a turn: its instructions become time. */
static void emu_turn_end(struct emu *e)
{
	if (e->ps_per_insn) {
		/* fold the turn into the base before the delta goes away */
		uint64_t now = clock_ns(e->m);
		e->running = NULL;
		e->m->vclock = now;
	} else {
		e->running = NULL;
	}
}

/* A turn of vCPU k: run it, then account its instructions as time. */
static enum cpu_exit emu_turn(struct emu *e, unsigned k, uint64_t slice)
{
	enum cpu_exit x = cpu_run(&e->v[k].cpu, emu_turn_begin(e, k, slice));
	emu_turn_end(e);
	return x;
}

/* An AP's INIT: back to the power-on state, waiting for a start-up IPI. */
static void vcpu_init_ipi(struct emu *e, unsigned k)
{
	struct emu_vcpu *v = &e->v[k];
	cpu_reset_system(&v->cpu);
	lapic_init_ipi_reset(&e->m->lapic[k]);
	v->state = VCPU_WAIT_SIPI;
}

/* SIPI: start in real mode at vector * 4 KiB (SDM 8.4.4.1). */
static void vcpu_sipi(struct emu *e, unsigned k, uint8_t vector)
{
	struct emu_vcpu *v = &e->v[k];
	if (v->state != VCPU_WAIT_SIPI)
		return;
	struct cpu_seg *cs = &v->cpu.s.seg[SEG_CS];
	cs->sel = (uint16_t)(vector << 8);
	cs->base = (uint64_t)vector << 12;
	v->cpu.s.rip = 0;
	v->cpu.halted = 0;
	cpu_state_loaded(&v->cpu);
	v->state = VCPU_RUNNING;
}

static void vcpu_requests(struct emu *e, unsigned k)
{
	uint8_t vec = 0;
	unsigned r = vcpu_take_requests(e->m, k, &vec);
	if (!r)
		return;
	if (r & VCPU_REQ_INIT) {
		/* INIT on the BSP sends it to the firmware's reset path; with no
		 * firmware in the VM that is a machine reset. */
		if (k == 0) {
			machine_request_power(e->m, POWER_RESET);
			return;
		}
		vcpu_init_ipi(e, k);
	}
	if (r & VCPU_REQ_SIPI)
		vcpu_sipi(e, k, vec);
	if (r & VCPU_REQ_NMI)
		cpu_inject_nmi(&e->v[k].cpu);
}

/* Could this halted vCPU run now? */
static int vcpu_wakeable(struct emu *e, unsigned k)
{
	struct lapic_state *s = &e->m->lapic[k].s;
	if (s->init_pending || s->sipi_pending || e->v[k].cpu.nmi_pending)
		return 1;
	return (e->v[k].cpu.s.rflags & FL_IF) && intr_pending(e->m, k);
}

/* A halted vCPU with IF set waits for interrupts that may still come. */
static int vcpu_may_wake(struct emu *e, unsigned k)
{
	return e->v[k].state == VCPU_HALTED && (e->v[k].cpu.s.rflags & FL_IF);
}

/* Idle: waits up to ms (-1: until something happens) for host input, for
 * device work from host threads (machine_io_fd) or for the engine's
 * controller (a pause or a stop). Returns -1 to quit. */
static int emu_wait_host(struct emu *e, const struct engine_host *host, int *input_dead, int ms)
{
	int wake[2];
	unsigned n = 0;
	if (machine_io_fd(e->m) >= 0)
		wake[n++] = machine_io_fd(e->m);
	if (e->ctl)
		wake[n++] = e->ctl->wake_fd;
	int r = 0;
	if (!*input_dead) {
		r = host->poll_input(host->opaque, wake, n, ms);
		if (r > 0)
			*input_dead = 1;
	} else if (n) {
		struct pollfd p[2] = {{.fd = wake[0], .events = POLLIN},
				      {.fd = n > 1 ? wake[1] : -1, .events = POLLIN}};
		poll(p, n, ms);
	} else if (ms > 0) {
		struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
	engine_ctl_drain(e->ctl);
	return r < 0 ? -1 : 0;
}

/* A debugger's settings (engine_debug) go to the vCPUs, and registers it
 * wrote to ctl->vcpus come back into them; at the start and after every
 * pause, the only times the debugger changes anything. */
static void emu_debug_sync(struct emu *e)
{
	struct engine_debug *d = e->ctl ? e->ctl->debug : NULL;
	e->step_cpu = -1;
	if (!d)
		return;
	e->step_cpu = d->step_cpu >= 0 && (unsigned)d->step_cpu < e->n ? d->step_cpu : -1;
	if (d->load_vcpus && e->ctl->vcpus && e->ctl->nvcpus >= e->n) {
		for (unsigned k = 0; k < e->n; k++) {
			struct cpu *c = &e->v[k].cpu;
			const struct cpu_state *s = &e->ctl->vcpus[k].s;
			uint64_t tsc = c->s.tsc;
			c->s = *s;
			c->s.tsc = tsc;
			cpu_state_loaded(c); /* rflags as written: no lazy flags */
		}
	}
	d->load_vcpus = 0;
	for (unsigned k = 0; k < e->n; k++) {
		if (d->flush)
			cpu_flush(&e->v[k].cpu);
		cpu_set_debug(&e->v[k].cpu, &d->cpu, e->step_cpu == (int)k);
	}
	d->flush = 0;
}

/* vCPU k stopped for the debugger (a breakpoint, a watchpoint, a step's
 * end): no vCPU runs on until it says so. */
static void emu_debug_stop(struct emu *e, unsigned k, struct cpu_dbg_hit why)
{
	e->step_cpu = -1;
	engine_ctl_debug_stop(e->ctl, k, why);
}

/* What a snapshot needs, while everything stands still: every vCPU into
 * ctl->vcpus. Returns 1 if it filled them. */
static int emu_describe(struct emu *e)
{
	struct engine_ctl *ctl = e->ctl;
	if (ctl && ctl->vcpus && ctl->nvcpus >= e->n) {
		uint64_t now = clock_ns(e->m);
		for (unsigned k = 0; k < e->n; k++) {
			struct cpu *c = &e->v[k].cpu;
			struct engine_vcpu *o = &ctl->vcpus[k];
			o->s = c->s;
			o->s.rflags = cpu_get_rflags(c);
			o->s.tsc = now + c->tsc_offset;
			o->mp_state = e->v[k].state == VCPU_HALTED	? ENGINE_VCPU_HALTED
				      : e->v[k].state == VCPU_WAIT_SIPI ? ENGINE_VCPU_WAIT_SIPI
									: ENGINE_VCPU_RUNNING;
			o->nmi_pending = !!c->nmi_pending;
			o->nmi_blocked = !!c->nmi_blocked;
			o->irq_shadow = c->shadow_rip == c->s.rip;
		}
		if (e->rd) {
			uint64_t total = 0;
			for (unsigned k = 0; k < e->n && k < ENGINE_DEBUG_MAX_CPUS; k++)
				total += e->rd->count[k] = e->rd->base[k] + e->v[k].cpu.icount;
			e->rd->total = total;
		}
		return 1;
	}
	return 0;
}

/* A pause point between turns: every vCPU stands at an instruction
 * boundary and no device runs. Time stands still too: instruction-driven
 * time does by itself, host time is moved back by the pause. */
static void emu_pause_point(struct emu *e)
{
	uart_flush(&e->m->com1);
	struct engine_ctl *ctl = e->ctl;
	if (emu_describe(e))
		engine_ctl_vcpus_filled(ctl);
	uint64_t ns = engine_ctl_pause_point(e->ctl);
	if (!e->ps_per_insn)
		clock_pause_skip(e->m, ns);
	if (ctl && ctl->debug)
		emu_debug_sync(e);
	if (e->rd && e->rd->rewind)
		e->rewinding = 1;
}

/* ---- A debugger on a replay ----
 * Stops must not change the run: a turn keeps the length it was given at
 * its start, a stop in its middle (a breakpoint, a watchpoint, a count
 * reached) waits at a pause point inside it, and the turn then goes on
 * (cpu_run's exact limits, c->exact, make the pieces add up to the
 * whole). So replaying from the start reaches every position again, which
 * is how the debugger goes backwards (engine_debug). */

/* vCPU k's instructions since the recording's start. */
static uint64_t emu_rd_count(const struct emu *e, unsigned k)
{
	return e->rd->base[k] + e->v[k].cpu.icount;
}

static uint64_t emu_rd_total(const struct emu *e)
{
	uint64_t t = 0;
	for (unsigned k = 0; k < e->n; k++)
		t += emu_rd_count(e, k);
	return t;
}

/* A breakpoint or watchpoint hit of vCPU k: 1 to stop there, else 0 (a
 * scan notes it) and the vCPU goes on past it. */
static int emu_rd_hit(struct emu *e, unsigned k, struct cpu_dbg_hit why)
{
	struct engine_debug *d = e->rd;
	struct engine_debug_hit h = {.why = why, .cpu = k, .count = emu_rd_count(e, k), .total = emu_rd_total(e)};
	switch (d->hits) {
	case ENGINE_HITS_STOP: return 1;
	case ENGINE_HITS_SEEK:
		if (h.cpu == d->seek.cpu && h.count == d->seek.count && h.why.kind == d->seek.why.kind &&
		    h.why.addr == d->seek.why.addr)
			return 1;
		break;
	case ENGINE_HITS_SCAN:
		if (h.total < d->scan_below)
			d->last = h;
		break;
	default: break;
	}
	if (why.kind == CPU_DBG_BREAK) { /* the instruction there runs on */
		e->v[k].cpu.dbg_skip_on = 1;
		e->v[k].cpu.dbg_skip = why.addr;
	}
	return 0;
}

/* A turn of vCPU k under a replay's debugger (see above). Returns as
 * cpu_run; CPU_EXIT_STOP with e->rewinding if the debugger asked for the
 * start. */
static enum cpu_exit emu_rd_turn(struct emu *e, unsigned k, uint64_t slice)
{
	struct cpu *c = &e->v[k].cpu;
	struct engine_debug *d = e->rd;
	uint64_t end = c->icount + emu_turn_begin(e, k, slice);
	enum cpu_exit x;
	for (;;) {
		uint64_t lim = end - c->icount;
		int target = d->run_to != UINT64_MAX && d->run_cpu == k;
		if (target && emu_rd_count(e, k) < d->run_to && d->run_to - emu_rd_count(e, k) < lim)
			lim = d->run_to - emu_rd_count(e, k);
		x = target && emu_rd_count(e, k) >= d->run_to ? CPU_EXIT_LIMIT : cpu_run(c, lim);
		struct cpu_dbg_hit why = {0};
		if (x == CPU_EXIT_DEBUG) {
			why = c->dbg_hit;
			c->dbg_hit = (struct cpu_dbg_hit){0};
			if (!emu_rd_hit(e, k, why)) {
				if (c->icount < end)
					continue;
				x = CPU_EXIT_LIMIT;
				break;
			}
		} else if (x != CPU_EXIT_SHUTDOWN && target && emu_rd_count(e, k) >= d->run_to) {
			why.kind = CPU_DBG_STEP;
		} else {
			break;
		}
		emu_debug_stop(e, k, why);
		emu_pause_point(e);
		if (e->rewinding) {
			x = CPU_EXIT_STOP;
			break;
		}
		if (x != CPU_EXIT_DEBUG && x != CPU_EXIT_LIMIT)
			break;
		x = CPU_EXIT_LIMIT;
		if (c->icount >= end)
			break;
	}
	emu_turn_end(e);
	return x;
}

/* Between turns: a count asked for that stands reached already (the
 * recording's start after a rewind) stops the replay here. */
static void emu_rd_check(struct emu *e)
{
	struct engine_debug *d = e->rd;
	if (d->run_to != UINT64_MAX && d->run_cpu < e->n && emu_rd_count(e, d->run_cpu) >= d->run_to) {
		emu_debug_stop(e, d->run_cpu, (struct cpu_dbg_hit){.kind = CPU_DBG_STEP});
		emu_pause_point(e);
	}
}

/* A hand-over point that struct cpu_state describes fully: not halted, no
 * NMI pending or in its handler, no interrupt shadow (the interpreter keeps
 * those outside cpu_state); else the hand-over waits for a later turn. */
static int emu_clean_point(const struct cpu *c, enum cpu_exit x)
{
	return x != CPU_EXIT_SHUTDOWN && x != CPU_EXIT_HLT && !c->halted && !c->nmi_pending && !c->nmi_blocked &&
	       c->shadow_rip != c->s.rip;
}

/* ---- Multi-thread mode: every vCPU on a host thread of its own ----
 *
 * The threads, the machine lock and the main loop are the engine-level
 * vCPU loop's (vcpu_loop.h, shared with kvm); this part gives it the body
 * of a vCPU thread and the hooks. Each vCPU thread runs cpu_run outside
 * the machine lock; its own caches (TLB, decoded blocks, translations,
 * jump cache) are its alone. What the vCPUs share is reached as follows:
 * - devices, interrupt controllers, LAPICs and the clock: through the
 *   vCPU's platform (mt_plat_*), which holds the machine lock around each
 *   call, as QEMU's big lock does. After a device access the other vCPUs
 *   are told (vcpu_loop_notify): a halted one is woken, a running one with
 *   an interrupt, NMI, INIT or SIPI now pending is stopped at its next
 *   block boundary (cpu_request_stop), and polls the interrupt controller
 *   when cpu_run is entered again.
 * - guest RAM: directly; LOCK'd instructions and XCHG are host atomics
 *   (cpu/alu.c); split, misaligned or MMIO ones run in an exclusive
 *   section: every other vCPU thread is stopped at a block boundary (it
 *   returns CPU_EXIT_STOP, and its next cpu_run waits for the section's
 *   end), as a bus lock holds off every other access.
 * - code pages: cpu_physmem's event log (its own lock); every vCPU replays
 *   it at its block boundaries.
 * Time is the host's monotonic clock (as under kvm): instruction-counted
 * time needs one instruction stream. Lock order: an exclusive section (a
 * LOCK'd MMIO access) before the machine lock, which a vCPU thread never
 * holds inside cpu_run except around a device access; ctl->lock before the
 * machine lock; the machine lock before cpu_physmem's log lock (a
 * device's DMA). */

#define EMU_MT_SLICE 1000000 /* instructions per cpu_run call: a safety net, kicks stop it sooner */

static struct emu *mt_emu(struct vcpu_loop *l)
{
	return l->opaque;
}

static void mt_kick(struct vcpu_loop *l, unsigned k)
{
	struct emu_vcpu *v = &mt_emu(l)->v[k];
	if (__atomic_load_n(&v->in_run, __ATOMIC_SEQ_CST))
		cpu_request_stop(&v->cpu);
}

static enum engine_mp_state mt_state(struct vcpu_loop *l, unsigned k)
{
	enum vcpu_run_state s = mt_emu(l)->v[k].state;
	return s == VCPU_HALTED	     ? ENGINE_VCPU_HALTED
	       : s == VCPU_WAIT_SIPI ? ENGINE_VCPU_WAIT_SIPI
				     : ENGINE_VCPU_RUNNING;
}

static int mt_wakeable(struct vcpu_loop *l, unsigned k)
{
	return vcpu_wakeable(mt_emu(l), k);
}

static int mt_may_wake(struct vcpu_loop *l, unsigned k)
{
	return vcpu_may_wake(mt_emu(l), k);
}

static int mt_describe(struct vcpu_loop *l, char *why, size_t len)
{
	(void)why, (void)len;
	return emu_describe(mt_emu(l)) ? 0 : 1;
}

static uint64_t mt_rip(struct vcpu_loop *l, unsigned k)
{
	return mt_emu(l)->v[k].cpu.s.rip;
}

static void *mt_plat_ram_ptr(void *o, uint64_t gpa, uint64_t len)
{
	struct emu_vcpu *v = o;
	return gpa_ptr(v->e->m, gpa, len); /* the RAM layout never changes while the engine runs */
}

static struct machine *mt_enter(struct emu_vcpu *v)
{
	pthread_mutex_lock(&v->e->loop.lock);
	v->e->m->cur_cpu = v->index;
	return v->e->m;
}

static void mt_leave(struct emu_vcpu *v, int notify)
{
	if (notify)
		vcpu_loop_notify(&v->e->loop, v->index);
	pthread_mutex_unlock(&v->e->loop.lock);
}

static uint64_t mt_plat_pio_read(void *o, uint16_t port, unsigned size)
{
	uint64_t r = bus_pio_read(mt_enter(o), port, size);
	mt_leave(o, 1);
	return r;
}

static void mt_plat_pio_write(void *o, uint16_t port, unsigned size, uint64_t val)
{
	bus_pio_write(mt_enter(o), port, size, val);
	mt_leave(o, 1);
}

static uint64_t mt_plat_mmio_read(void *o, uint64_t gpa, unsigned size)
{
	uint64_t r = bus_mmio_read(mt_enter(o), gpa, size);
	mt_leave(o, 1);
	return r;
}

static void mt_plat_mmio_write(void *o, uint64_t gpa, unsigned size, uint64_t val)
{
	bus_mmio_write(mt_enter(o), gpa, size, val);
	mt_leave(o, 1);
}

static int mt_plat_intr_pending(void *o, unsigned cpu)
{
	int r = intr_pending(mt_enter(o), cpu);
	mt_leave(o, 0);
	return r;
}

static int mt_plat_intr_ack(void *o, unsigned cpu)
{
	int r = intr_ack(mt_enter(o), cpu);
	mt_leave(o, 0);
	return r;
}

static int mt_plat_apic_msr_read(void *o, unsigned cpu, uint32_t msr, uint64_t *val)
{
	int r = lapic_msr_read(mt_enter(o), cpu, msr, val);
	mt_leave(o, 0);
	return r;
}

static int mt_plat_apic_msr_write(void *o, unsigned cpu, uint32_t msr, uint64_t val)
{
	int r = lapic_msr_write(mt_enter(o), cpu, msr, val); /* x2APIC ICR: IPIs */
	mt_leave(o, 1);
	return r;
}

/* RDRAND's bytes in multi-thread mode (never recorded): the host's */
static int mt_plat_random(void *o, void *buf, size_t len)
{
	(void)o;
	return replay_random(NULL, buf, len);
}

static uint64_t mt_plat_clock_ns(void *o)
{
	uint64_t r = clock_ns(mt_enter(o));
	mt_leave(o, 0);
	return r;
}

static void mt_platform(struct emu_vcpu *v)
{
	v->plat = (struct cpu_platform){.opaque = v,
					.ram_ptr = mt_plat_ram_ptr,
					.pio_read = mt_plat_pio_read,
					.pio_write = mt_plat_pio_write,
					.mmio_read = mt_plat_mmio_read,
					.mmio_write = mt_plat_mmio_write,
					.intr_pending = mt_plat_intr_pending,
					.intr_ack = mt_plat_intr_ack,
					.apic_msr_read = mt_plat_apic_msr_read,
					.apic_msr_write = mt_plat_apic_msr_write,
					.clock_ns = mt_plat_clock_ns,
					.random = mt_plat_random,
					.apic_base = MEM_LAPIC_BASE};
}

/* vCPU k's thread (under the machine lock, released around cpu_run). */
static void mt_vcpu_thread(struct vcpu_loop *l, unsigned k)
{
	struct emu *e = mt_emu(l);
	struct emu_vcpu *v = &e->v[k];
	while (!l->done) {
		if (l->pausing) {
			vcpu_loop_park(l);
			continue;
		}
		e->m->cur_cpu = k;
		vcpu_requests(e, k);
		if (l->done || e->m->power_req != POWER_ON) {
			vcpu_loop_wake_main(l);
			if (!l->done)
				pthread_cond_wait(&l->vcpu_cond, &l->lock);
			continue;
		}
		if (v->state == VCPU_WAIT_SIPI || (v->state == VCPU_HALTED && !vcpu_wakeable(e, k))) {
			pthread_cond_wait(&l->vcpu_cond, &l->lock);
			continue;
		}
		v->state = VCPU_RUNNING;
		__atomic_store_n(&v->in_run, 1, __ATOMIC_SEQ_CST);
		pthread_mutex_unlock(&l->lock);
		enum cpu_exit x = cpu_run(&v->cpu, e->mt_slice);
		pthread_mutex_lock(&l->lock);
		__atomic_store_n(&v->in_run, 0, __ATOMIC_SEQ_CST);
		switch (x) {
		case CPU_EXIT_HLT:
			v->state = VCPU_HALTED;
			vcpu_loop_wake_main(l); /* maybe every vCPU is idle now */
			break;
		case CPU_EXIT_SHUTDOWN: vcpu_loop_finish(l, ENGINE_TRIPLE_FAULT, k, v->cpu.s.rip); break;
		case CPU_EXIT_LIMIT:
		case CPU_EXIT_STOP: break;
		default:
			/* user-mode exits, or a debugger's (this mode runs none) */
			vcpu_loop_fail(l, k, -EINVAL, "emu: vCPU %u: unexpected exit %d", k, (int)x);
			break;
		}
		vcpu_loop_power(l, k);
	}
}

static const struct vcpu_loop_ops mt_ops = {.thread = mt_vcpu_thread,
					    .kick = mt_kick,
					    .state = mt_state,
					    .wakeable = mt_wakeable,
					    .may_wake = mt_may_wake,
					    .describe = mt_describe,
					    .rip = mt_rip};

/* Runs the machine with a thread per vCPU until it ends. The vCPUs are
 * set up (their platforms are mt_platform's). */
static struct engine_result emu_mt_run(struct emu *e, const struct engine_host *host)
{
	e->mt_slice = host && host->slice ? host->slice : EMU_MT_SLICE;
	e->loop = (struct vcpu_loop){.m = e->m, .host = host, .ops = &mt_ops, .opaque = e, .n = e->n, .name = "emu"};
	return vcpu_loop_run(&e->loop);
}

/* Nobody could run, under record or replay: idle time passes as the
 * recording saw it. Recording, it passes in real time (a network peer or
 * someone typing sees the guest idle as long as they wait) and the
 * clock's step is logged; a replay takes the logged step. 0 go on, 2 hung,
 * else what emu_rr_point says. */
static int emu_rr_idle(struct emu *e, const struct engine_host *host, int *input_dead, int may_wake, uint64_t next)
{
	struct machine *m = e->m;
	int r = emu_rr_point(e);
	if (r)
		return r;
	if (!may_wake)
		return 2;
	if (replay_mode(e->rr) == REPLAY_PLAY) {
		if (next != UINT64_MAX) {
			if (!replay_clock_stepped(e->rr))
				return -1;
			mtimer_run_expired(m);
			return 0;
		}
		/* the recording waited here for input that came, or for its end */
		return replay_more(e->rr) ? 0 : 2;
	}
	if (next != UINT64_MAX) {
		/* as without recording: real time when someone may be waiting
		 * for the guest, else idle time is skipped (but at most
		 * EMU_IDLE_LEAD_NS ahead of the wall clock) */
		int realtime = (host && host->realtime_idle && !*input_dead) || machine_io_fd(m) >= 0;
		uint64_t now = clock_ns(m), t0 = wall_ns(), to = next;
		uint64_t ms = next > now ? (next - now) / 1000000 : 0;
		uint64_t wall = t0 - e->wall_start;
		if (!realtime && next > wall + EMU_IDLE_LEAD_NS) {
			uint64_t wait = next - wall - EMU_IDLE_LEAD_NS;
			struct pollfd p = {.fd = e->ctl ? e->ctl->wake_fd : -1, .events = POLLIN};
			poll(&p, 1, (int)((wait > 100000000ull ? 100000000ull : wait) / 1000000) + 1);
			engine_ctl_drain(e->ctl);
			to = now; /* no time passes in the guest; the next idle point looks again */
		} else if (realtime && ms > 0) {
			if (emu_wait_host(e, host, input_dead, ms > 1000 ? 1000 : (int)ms) < 0)
				e->rr_quit = 1;
			uint64_t waited = wall_ns() - t0;
			to = now + waited < next ? now + waited : next;
		}
		clock_advance_to(m, to);
		replay_log_clock(e->rr, clock_ns(m));
		mtimer_run_expired(m);
		return 0;
	}
	if (!*input_dead || machine_io_fd(m) >= 0) {
		if (emu_wait_host(e, host, input_dead, -1) < 0)
			e->rr_quit = 1;
		return 0;
	}
	return 2;
}

/* A replay reached the recording's end with a debugger attached: it stands there, as GDB expects of a replay target
 * (replaylog:end), however often it is told to go forward, until the
 * debugger goes back (1: rewind), goes away or stops the VM (0: the run
 * ends as recorded). */
static int emu_rd_end(struct emu *e)
{
	struct engine_debug *d = e->rd;
	while (__atomic_load_n(&d->attached, __ATOMIC_SEQ_CST) && !e->ctl->stop) {
		unsigned k = d->run_cpu < e->n ? d->run_cpu : 0;
		emu_debug_stop(e, k, (struct cpu_dbg_hit){.kind = ENGINE_DEBUG_STOP_END});
		emu_pause_point(e);
		if (e->rewinding)
			return 1;
	}
	return 0;
}

/* The run ends at an injection point: the recording's end, or a replay
 * that diverged. */
static void emu_rr_end(struct emu *e, struct engine_result *res, int why)
{
	res->end = why > 0 ? ENGINE_QUIT : ENGINE_ERROR;
	if (why < 0) {
		res->err = -EINVAL;
		snprintf(res->msg, sizeof(res->msg), "%s", replay_message(e->rr));
	}
}

static void emu_free(struct emu *e)
{
	for (unsigned k = 0; k < e->n; k++)
		if (e->v[k].inited)
			cpu_destroy(&e->v[k].cpu);
	free(e->v);
	if (e->phys) {
		machine_set_dma_hook(e->m, NULL, NULL);
		machine_set_dirty_hook(e->m, NULL, NULL);
	}
	cpu_physmem_free(e->phys);
}

static struct engine_result emu_run(struct machine *m, const struct cpu_state *bsp, const struct engine_host *host)
{
	struct engine_result res = {.end = ENGINE_ERROR};
	struct emu e = {.m = m, .n = m->ncpus, .ctl = host ? host->ctl : NULL};
	uint64_t slice = host && host->slice ? host->slice : EMU_SLICE_DEFAULT;
	int input_dead = !host || !host->poll_input;

	e.v = calloc(e.n, sizeof(*e.v));
	if (!e.v) {
		res.err = -ENOMEM;
		return res;
	}
	e.phys = cpu_physmem_new(m->ram, m->mem_size);
	if (!e.phys) {
		res.err = -ENOMEM;
		goto out;
	}
	machine_set_dma_hook(m, cpu_physmem_dma_written, e.phys);
	machine_set_dirty_hook(m, cpu_physmem_dirty_arm, e.phys);
	engine_emu_platform(&e.plat, m);
	/* a debugger and record/replay need the single thread's fixed
	 * interleaving */
	e.mt = host && host->threads == ENGINE_THREADS_MULTI && e.n > 1 && !(e.ctl && e.ctl->debug) && !m->rr;
	for (unsigned k = 0; k < e.n; k++) {
		e.v[k].e = &e;
		e.v[k].index = k;
		if (e.mt)
			mt_platform(&e.v[k]);
		int err = cpu_init_system(&e.v[k].cpu, e.mt ? &e.v[k].plat : &e.plat, k, e.phys,
					  host ? host->cpu_opts : NULL);
		if (err < 0) {
			res.err = err;
			goto out;
		}
		e.v[k].inited = 1;
		e.v[k].cpu.exact = m->rr != NULL; /* turns end where instructions say */
		e.v[k].state = k == 0 ? VCPU_RUNNING : VCPU_WAIT_SIPI;
	}
	if (host && host->restore) {
		/* a snapshot's vCPUs, every one as it stood */
		uint64_t now = clock_ns(m);
		for (unsigned k = 0; k < e.n; k++) {
			const struct engine_vcpu *r = &host->restore[k];
			struct emu_vcpu *v = &e.v[k];
			v->cpu.s = r->s;
			cpu_state_loaded(&v->cpu);
			v->cpu.tsc_offset = r->s.tsc - now;
			v->state = r->mp_state == ENGINE_VCPU_HALTED	  ? VCPU_HALTED
				   : r->mp_state == ENGINE_VCPU_WAIT_SIPI ? VCPU_WAIT_SIPI
									  : VCPU_RUNNING;
			v->cpu.halted = v->state == VCPU_HALTED;
			v->cpu.nmi_pending = r->nmi_pending;
			v->cpu.nmi_blocked = r->nmi_blocked;
			v->cpu.shadow_rip = r->irq_shadow ? r->s.rip : ~0ull;
			v->cpu.irq_check = 1;
		}
	} else {
		e.v[0].cpu.s = *bsp;
		cpu_state_loaded(&e.v[0].cpu);
		if (bsp->tsc) /* a hand-over: the TSC continues from there */
			e.v[0].cpu.tsc_offset = bsp->tsc - clock_ns(m);
	}
	uint64_t stop_after = host ? host->stop_after : 0;
	e.rr = m->rr;
	/* a restore is allowed: the VM's layer lets only a snapshot's, whose
	 * recording names it, and a replay's debugger restores the replay's
	 * own snapshots */
	if (e.rr && (stop_after || !host || !host->ps_per_insn)) {
		res.err = -EINVAL;
		snprintf(res.msg, sizeof(res.msg), "emu: record and replay need instruction-driven time, no hand-over");
		goto out;
	}
	if (stop_after && (!host->final || e.n != 1)) {
		res.err = -EINVAL;
		snprintf(res.msg, sizeof(res.msg), "emu: a hand-over needs a single-vCPU machine");
		goto out;
	}

	if (e.mt) {
		res = emu_mt_run(&e, host);
		goto out;
	}
	m->kick = emu_kick;
	m->kick_opaque = &e;
	e.ps_per_insn = host ? host->ps_per_insn : 0;
	if (e.rr) {
		/* where the previous run (or the frozen start) left it, not
		 * where the host's clock is */
		m->vclock = m->clock_last;
		m->clock_manual = 0;
	} else if (e.ps_per_insn) {
		m->vclock = clock_ns(m);
	}
	if (e.ps_per_insn) {
		m->clock_delta_opaque = &e;
		m->clock_delta = emu_clock_delta;
	}
	if (e.rr)
		replay_set_icount(e.rr, emu_icount, &e);
	engine_ctl_attach(e.ctl, emu_ctl_kick, &e);
	/* a stop from a signal handler (engine_stop_async, which kicks no
	 * one) inside a long REP instruction: seen between its pieces; under
	 * record or replay stops wait for the turn's end */
	for (unsigned k = 0; k < e.n && e.ctl && !e.rr; k++)
		e.v[k].cpu.stop_watch = &e.ctl->stop;
	e.step_cpu = -1;
	if (e.rr && replay_mode(e.rr) == REPLAY_PLAY && e.ctl && e.ctl->debug && e.n <= ENGINE_DEBUG_MAX_CPUS) {
		e.rd = e.ctl->debug;
		pthread_mutex_lock(&e.ctl->lock);
		e.rd->rr = 1;
		e.rd->rewind = 0;
		pthread_mutex_unlock(&e.ctl->lock);
	}
	if (e.ctl && e.ctl->debug && e.ctl->debug->notify_fd >= 0)
		emu_debug_sync(&e);

	unsigned rounds = 0;
	uint64_t wall_start = e.wall_start = wall_ns() - clock_ns(m);
	for (;;) {
		int ran = 0;
		if (unlikely(e.rd))
			emu_rd_check(&e);
		if (engine_ctl_pause_wanted(e.ctl))
			emu_pause_point(&e);
		if (unlikely(e.rewinding))
			goto rewind;
		/* a replay's snapshot: here, where a run from it starts (the
		 * top of a round, before the injection point) */
		if (unlikely(e.rd) && e.rd->snap && emu_rd_total(&e) >= e.rd->snap_next && emu_describe(&e))
			e.rd->snap(e.rd->snap_opaque);
		int rp;
		if (unlikely(e.rr) && (rp = emu_rr_point(&e)) != 0) {
			emu_rr_end(&e, &res, rp);
			goto out;
		}
		if (__atomic_load_n(&m->io_pending, __ATOMIC_RELAXED))
			machine_io_run(m);
		for (unsigned k = 0; k < e.n; k++) {
			struct emu_vcpu *v = &e.v[k];
			if (unlikely(e.step_cpu >= 0) && (int)k != e.step_cpu)
				continue;
			vcpu_requests(&e, k);
			if (v->state == VCPU_WAIT_SIPI) {
				if ((int)k == e.step_cpu) /* nothing to step: it waits for a start-up IPI */
					emu_debug_stop(&e, k, (struct cpu_dbg_hit){.kind = CPU_DBG_STEP});
				continue;
			}
			if (v->state == VCPU_HALTED) {
				if (!vcpu_wakeable(&e, k))
					continue;
				v->state = VCPU_RUNNING;
			}
			uint64_t turn = unlikely((int)k == e.step_cpu) ? 1 : slice;
			if (stop_after && k == 0 && stop_after > v->cpu.icount && stop_after - v->cpu.icount < turn)
				turn = stop_after - v->cpu.icount;
			enum cpu_exit x = unlikely(e.rd) ? emu_rd_turn(&e, k, turn) : emu_turn(&e, k, turn);
			ran = 1;
			if (unlikely(e.rewinding))
				goto rewind;
			if (unlikely(x == CPU_EXIT_DEBUG)) {
				emu_debug_stop(&e, k, v->cpu.dbg_hit);
				v->cpu.dbg_hit = (struct cpu_dbg_hit){0};
			} else if (unlikely((int)k == e.step_cpu) && (x == CPU_EXIT_LIMIT || x == CPU_EXIT_HLT)) {
				emu_debug_stop(&e, k, (struct cpu_dbg_hit){.kind = CPU_DBG_STEP});
			}
			if (stop_after && k == 0 && v->cpu.icount >= stop_after && emu_clean_point(&v->cpu, x)) {
				/* hand-over: vCPU 0's state as it stands, flags evaluated */
				*host->final = v->cpu.s;
				host->final->rflags = cpu_get_rflags(&v->cpu);
				host->final->tsc = clock_ns(m) + v->cpu.tsc_offset;
				res.end = ENGINE_HANDED_OVER;
				res.rip = v->cpu.s.rip;
				goto out;
			}
			switch (x) {
			case CPU_EXIT_HLT: v->state = VCPU_HALTED; break;
			case CPU_EXIT_SHUTDOWN:
				res.end = ENGINE_TRIPLE_FAULT;
				res.cpu = k;
				res.rip = v->cpu.s.rip;
				goto out;
			case CPU_EXIT_LIMIT:
			case CPU_EXIT_STOP:
			case CPU_EXIT_DEBUG: break;
			default:
				/* User-mode exits cannot happen in system mode. */
				res.end = ENGINE_ERROR;
				res.err = -EINVAL;
				res.cpu = k;
				res.rip = v->cpu.s.rip;
				goto out;
			}
			mtimer_run_expired(m);
			if (unlikely(e.rr) && (rp = emu_rr_point(&e)) != 0) {
				emu_rr_end(&e, &res, rp);
				goto out;
			}
			if (__atomic_load_n(&m->io_pending, __ATOMIC_RELAXED))
				machine_io_run(m);
			enum machine_power p = machine_take_power(m);
			if (p == POWER_OFF || p == POWER_RESET) {
				res.end = p == POWER_OFF ? ENGINE_POWER_OFF : ENGINE_RESET;
				goto out;
			}
			if (emu_stopping(&e)) {
				res.end = ENGINE_QUIT;
				goto out;
			}
			if (engine_ctl_pause_wanted(e.ctl))
				emu_pause_point(&e);
			if (unlikely(e.rewinding))
				goto rewind;
		}
		uart_flush(&m->com1);
		if (emu_stopping(&e)) {
			res.end = ENGINE_QUIT;
			goto out;
		}
		if (unlikely(e.rr) && (rp = emu_rr_point(&e)) != 0) {
			emu_rr_end(&e, &res, rp);
			goto out;
		}
		/* Host input: a system call, so not after every short turn. */
		if (!input_dead && (!ran || (++rounds & 31) == 0)) {
			int r = host->poll_input(host->opaque, NULL, 0, 0);
			if (r < 0 && e.rr) {
				e.rr_quit = 1; /* at the next injection point */
			} else if (r < 0) {
				res.end = ENGINE_QUIT;
				goto out;
			}
			if (r > 0)
				input_dead = 1;
		}
		if (ran)
			continue;

		/* Nobody could run: time jumps to the next timer, or we wait for
		 * input, or nothing can ever happen again. */
		int may_wake = 0;
		for (unsigned k = 0; k < e.n; k++)
			may_wake |= vcpu_may_wake(&e, k);
		uint64_t next = mtimer_run_expired(m);
		/* A device fed by the host (a network) makes idle time real:
		 * skipping it would expire the guest's timeouts (TCP's) before the
		 * host could answer. */
		int host_io = machine_io_fd(m) >= 0;
		int realtime = (host && host->realtime_idle && !input_dead) || host_io;
		if (unlikely(e.rr)) {
			rp = emu_rr_idle(&e, host, &input_dead, may_wake, next);
			if (rp == 2) {
				res.end = ENGINE_HUNG;
				res.cpu = 0;
				res.rip = e.v[0].cpu.s.rip;
				goto out;
			}
			if (rp) {
				emu_rr_end(&e, &res, rp);
				goto out;
			}
		} else if (may_wake && next != UINT64_MAX && realtime) {
			/* wait in real time for the deadline, input or host I/O */
			uint64_t now = clock_ns(m), t0 = wall_ns();
			uint64_t ms = next > now ? (next - now) / 1000000 : 0;
			if (ms > 0) {
				if (emu_wait_host(&e, host, &input_dead, ms > 1000 ? 1000 : (int)ms) < 0) {
					res.end = ENGINE_QUIT;
					goto out;
				}
				uint64_t waited = wall_ns() - t0;
				clock_advance_to(m, now + waited < next ? now + waited : next);
			} else {
				clock_advance_to(m, next);
			}
			mtimer_run_expired(m);
		} else if (may_wake && next != UINT64_MAX) {
			/* Skip idle time, but let the guest's clock run at most
			 * EMU_IDLE_LEAD_NS ahead of the wall clock: a guest idling for
			 * good (a shell with no input) then sleeps instead of spinning
			 * through endless timer ticks. */
			uint64_t wall = wall_ns() - wall_start;
			if (next > wall + EMU_IDLE_LEAD_NS + EMU_IDLE_BATCH_NS) {
				/* Sleep until the lead is back to EMU_IDLE_LEAD_NS; the
				 * guest's timers of the next EMU_IDLE_BATCH_NS then run
				 * in one wake-up of the host. Host input, device work, a
				 * pause or a stop end the sleep early. */
				uint64_t wait = next - wall - EMU_IDLE_LEAD_NS;
				if (wait > EMU_IDLE_WAIT_MAX_NS)
					wait = EMU_IDLE_WAIT_MAX_NS;
				if (emu_wait_host(&e, host, &input_dead, (int)(wait / 1000000) + 1) < 0) {
					res.end = ENGINE_QUIT;
					goto out;
				}
				continue;
			}
			clock_advance_to(m, next);
			mtimer_run_expired(m);
		} else if (may_wake && (!input_dead || host_io)) {
			if (emu_wait_host(&e, host, &input_dead, -1) < 0) {
				res.end = ENGINE_QUIT;
				goto out;
			}
		} else {
			res.end = ENGINE_HUNG;
			res.cpu = 0;
			res.rip = e.v[0].cpu.s.rip;
			goto out;
		}
		enum machine_power p = machine_take_power(m);
		if (p == POWER_OFF || p == POWER_RESET) {
			res.end = p == POWER_OFF ? ENGINE_POWER_OFF : ENGINE_RESET;
			goto out;
		}
	}

	if (0) {
	rewind:
		res.end = ENGINE_REWIND;
	}
out:
	/* the recording's end (not a reboot in its middle, not a divergence)
	 * under a debugger: it stands here until the debugger lets it end */
	if (e.rd && res.end != ENGINE_REWIND && res.end != ENGINE_ERROR && !replay_failed(e.rr) && !replay_more(e.rr) &&
	    emu_rd_end(&e))
		res = (struct engine_result){.end = ENGINE_REWIND};
	uart_flush(&m->com1);
	if (e.rd && res.end != ENGINE_REWIND)
		for (unsigned k = 0; k < e.n; k++)
			e.rd->base[k] += e.v[k].cpu.icount; /* a reboot: the next run counts on */
	if (e.rr) {
		replay_set_icount(e.rr, NULL, NULL);
		m->clock_manual = 1; /* until the next run: see above */
	}
	engine_ctl_detach(e.ctl);
	m->kick = NULL;
	m->kick_opaque = NULL;
	m->clock_delta = NULL;
	emu_free(&e);
	return res;
}

const struct engine_ops engine_emu_ops = {.name = "emu", .run = emu_run};
