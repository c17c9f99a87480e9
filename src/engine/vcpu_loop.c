/* The vCPU-thread loop both engines share (vcpu_loop.h): a host thread per
 * vCPU, the machine lock, and the caller's thread as the main loop. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "engine/vcpu_loop.h"
#include "machine/machine_impl.h"

/* Host input is delivered no sooner after the start (the guest sets its
 * UART up), and at least this often while timers shorter than a
 * millisecond keep the main loop from waiting for it. */
#define VCPU_LOOP_INPUT_NS 10000000ull
#define VCPU_LOOP_IDLE_LEAD_NS (300ull * 1000000000ull) /* idle guest time may lead the wall clock by this */
/* The shortest wait, with the lock released, even when a deadline has
 * passed already: the vCPU threads need the lock after each exit, and a
 * main loop that went round again at once while a guest's timer was due
 * faster than the loop's own turn (an interrupt storm on a slow host, the
 * nested test machine) kept it for good: the vCPU stood still. */
#define VCPU_LOOP_MIN_WAIT_NS 20000ull

static uint64_t loop_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vcpu_loop_wake_main(struct vcpu_loop *l)
{
	uint64_t one = 1;
	if (write(l->notify_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the main loop wakes anyway */
	}
}

void vcpu_loop_finish(struct vcpu_loop *l, enum engine_end end, unsigned cpu, uint64_t rip)
{
	if (l->done)
		return;
	l->done = 1;
	l->res.end = end;
	l->res.cpu = cpu;
	l->res.rip = rip;
	pthread_cond_broadcast(&l->vcpu_cond);
	pthread_cond_signal(&l->main_cond);
	vcpu_loop_wake_main(l);
	for (unsigned k = 0; k < l->n; k++)
		l->ops->kick(l, k);
}

void vcpu_loop_fail(struct vcpu_loop *l, unsigned cpu, int err, const char *fmt, ...)
{
	if (l->done)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->res.msg, sizeof(l->res.msg), fmt, ap);
	va_end(ap);
	l->res.err = err;
	vcpu_loop_finish(l, ENGINE_ERROR, cpu, l->res.rip);
}

void vcpu_loop_notify(struct vcpu_loop *l, unsigned self)
{
	pthread_cond_broadcast(&l->vcpu_cond);
	for (unsigned k = 0; k < l->n; k++) {
		if (k == self || l->ops->state(l, k) != ENGINE_VCPU_RUNNING)
			continue;
		struct lapic_state *s = &l->m->lapic[k].s;
		if (s->init_pending || s->sipi_pending || s->nmi_pending || intr_pending(l->m, k))
			l->ops->kick(l, k);
	}
}

void vcpu_loop_park(struct vcpu_loop *l)
{
	l->parked++;
	pthread_cond_signal(&l->main_cond);
	while (l->pausing && !l->done)
		pthread_cond_wait(&l->vcpu_cond, &l->lock);
	l->parked--;
}

void vcpu_loop_power(struct vcpu_loop *l, unsigned k)
{
	if (!l->done && l->m->power_req != POWER_ON) {
		enum machine_power p = machine_take_power(l->m);
		vcpu_loop_finish(l, p == POWER_OFF ? ENGINE_POWER_OFF : ENGINE_RESET, k, 0);
	}
}

/* The machine's kick (a power request; an NMI, INIT or SIPI for a LAPIC):
 * usually under l->lock from a device, but also from a thread that owns
 * the paused VM, so it takes no lock; the main loop's timed wait covers a
 * missed wake-up. */
static void loop_machine_kick(void *opaque)
{
	struct vcpu_loop *l = opaque;
	pthread_cond_signal(&l->main_cond);
	pthread_cond_broadcast(&l->vcpu_cond);
	vcpu_loop_wake_main(l);
	for (unsigned k = 0; k < l->n; k++)
		l->ops->kick(l, k);
}

/* The controller's kick (another thread, holding ctl->lock): the main
 * loop looks at the requests now, every vCPU leaves the guest. */
static void loop_ctl_kick(void *opaque)
{
	struct vcpu_loop *l = opaque;
	pthread_mutex_lock(&l->lock);
	pthread_cond_signal(&l->main_cond);
	vcpu_loop_wake_main(l);
	for (unsigned k = 0; k < l->n; k++)
		l->ops->kick(l, k);
	pthread_mutex_unlock(&l->lock);
}

/* mtimer_arm (under l->lock): a deadline before the one the main loop
 * sleeps until wakes it, once. */
static void loop_timer_armed(void *opaque, uint64_t deadline_ns)
{
	struct vcpu_loop *l = opaque;
	if (deadline_ns < __atomic_load_n(&l->wait_until, __ATOMIC_RELAXED)) {
		__atomic_store_n(&l->wait_until, 0, __ATOMIC_RELAXED);
		vcpu_loop_wake_main(l);
	}
}

/* Host input arrives while the main loop waits for it with the lock
 * released (poll_input, vm_console_input). */
static void loop_input_lock(void *opaque, int lock)
{
	struct vcpu_loop *l = opaque;
	if (lock)
		pthread_mutex_lock(&l->lock);
	else
		pthread_mutex_unlock(&l->lock);
}

/* Host input (under l->lock, released meanwhile: the host's poll_input
 * delivers through vm_console_input, which takes it): waits up to ms
 * (-1: no limit) for input or for one of the wake descriptors. */
static int loop_input(struct vcpu_loop *l, int *input_dead, const int *wake, unsigned nwake, int ms)
{
	pthread_mutex_unlock(&l->lock);
	int r = l->host->poll_input(l->host->opaque, wake, nwake, ms);
	pthread_mutex_lock(&l->lock);
	if (r > 0)
		*input_dead = 1;
	return r;
}

/* One descriptor for poll_input to wait on (it takes few): readable when
 * the main loop's eventfd, the machine's I/O eventfd or the controller's
 * is. -1 if it cannot be made (the main loop then polls input). */
static int loop_epoll(struct vcpu_loop *l, int io_fd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return -1;
	int fds[3] = {l->notify_fd, io_fd, l->ctl ? l->ctl->wake_fd : -1};
	for (unsigned k = 0; k < 3; k++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[k]};
		if (fds[k] >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fds[k], &ev) < 0) {
			close(ep);
			return -1;
		}
	}
	return ep;
}

static void *loop_thread(void *arg)
{
	struct vcpu_loop_thread *t = arg;
	struct vcpu_loop *l = t->l;
	/* the faults (a crash handler, the sanitizers' reports); the signals
	 * that stop the VM go to the main thread */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGSEGV);
	sigaddset(&set, SIGBUS);
	sigaddset(&set, SIGFPE);
	sigaddset(&set, SIGILL);
	sigaddset(&set, SIGABRT);
	sigaddset(&set, SIGTRAP);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	pthread_mutex_lock(&l->lock);
	l->ops->thread(l, t->k);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* A pause (under l->lock): every vCPU thread leaves the guest at an
 * instruction boundary and parks; then the vCPUs are described for a
 * snapshot and the loop waits at the controller's pause point with the
 * lock released. No timer runs and no device work is taken meanwhile. */
static void loop_pause(struct vcpu_loop *l)
{
	unsigned started = 0;
	l->pausing = 1;
	for (unsigned k = 0; k < l->n; k++) {
		started += l->t[k].started != 0;
		l->ops->kick(l, k);
	}
	pthread_cond_broadcast(&l->vcpu_cond);
	while (l->parked < started && !l->done)
		pthread_cond_wait(&l->main_cond, &l->lock);
	if (!l->done) {
		uart_flush(&l->m->com1);
		char why[160] = "";
		int described = l->ops->describe(l, why, sizeof(why));
		/* ctl->lock is never taken under l->lock (loop_ctl_kick takes
		 * them the other way round) */
		pthread_mutex_unlock(&l->lock);
		if (described == 0)
			engine_ctl_vcpus_filled(l->ctl);
		else if (described < 0)
			engine_ctl_vcpus_refused(l->ctl, why);
		uint64_t ns = engine_ctl_pause_point(l->ctl);
		pthread_mutex_lock(&l->lock);
		clock_pause_skip(l->m, ns);
	}
	l->pausing = 0;
	pthread_cond_broadcast(&l->vcpu_cond);
}

/* Is every vCPU idle (halted with nothing to take, or waiting for SIPI)?
 * may_wake: one of them could still be woken by an interrupt. */
static int loop_all_idle(struct vcpu_loop *l, int *may_wake)
{
	*may_wake = 0;
	for (unsigned k = 0; k < l->n; k++) {
		enum engine_mp_state s = l->ops->state(l, k);
		if (s == ENGINE_VCPU_RUNNING || (s == ENGINE_VCPU_HALTED && l->ops->wakeable(l, k)))
			return 0;
		if (s == ENGINE_VCPU_HALTED && l->ops->may_wake(l, k))
			*may_wake = 1;
	}
	return 1;
}

static void loop_main(struct vcpu_loop *l)
{
	struct machine *m = l->m;
	const struct engine_host *host = l->host;
	int input_dead = !host || !host->poll_input;
	uint64_t wall_start = loop_wall_ns() - clock_ns(m);
	/* host input waits until the guest had a moment to set its UART up */
	uint64_t input_from = loop_wall_ns() + VCPU_LOOP_INPUT_NS, last_poll = loop_wall_ns();
	int io_fd = machine_io_fd(m);
	int ep = input_dead ? -1 : loop_epoll(l, io_fd);

	int io_ready = 0; /* the machine's I/O eventfd was readable */
	while (!l->done) {
		/* a stop first: a VM stopped while paused keeps its pause request,
		 * at which loop_pause would return at once, forever */
		if (l->ctl && l->ctl->stop) {
			vcpu_loop_finish(l, ENGINE_QUIT, 0, 0);
			break;
		}
		if (engine_ctl_pause_wanted(l->ctl)) {
			loop_pause(l);
			continue;
		}
		uart_flush(&m->com1);
		/* a readable eventfd with nothing pending (a request's bit taken
		 * by the previous run before its write) is drained here, or every
		 * wait below would return at once */
		if (io_ready || __atomic_load_n(&m->io_pending, __ATOMIC_RELAXED))
			machine_io_run(m);
		io_ready = 0;
		uint64_t next = mtimer_run_expired(m);
		enum machine_power p = machine_take_power(m);
		if (p == POWER_OFF || p == POWER_RESET) {
			vcpu_loop_finish(l, p == POWER_OFF ? ENGINE_POWER_OFF : ENGINE_RESET, 0, 0);
			break;
		}
		vcpu_loop_notify(l, l->n);
		if (machine_io_fd(m) != io_fd && ep >= 0) {
			/* device work from host threads, set up since */
			io_fd = machine_io_fd(m);
			close(ep);
			ep = loop_epoll(l, io_fd);
		}

		uint64_t now_wall = loop_wall_ns();
		int may_wake;
		int idle = loop_all_idle(l, &may_wake);
		/* input at most VCPU_LOOP_INPUT_NS apart while the waits below
		 * are too short to take it (or no descriptor to wait on) */
		int input = !input_dead && now_wall >= input_from;
		if (input && (ep < 0 || now_wall - last_poll >= VCPU_LOOP_INPUT_NS)) {
			last_poll = now_wall;
			if (loop_input(l, &input_dead, NULL, 0, 0) < 0) {
				vcpu_loop_finish(l, ENGINE_QUIT, 0, 0);
				break;
			}
			vcpu_loop_notify(l, l->n);
			idle = loop_all_idle(l, &may_wake);
			input = !input_dead;
		}
		if (idle) {
			/* real time while a device is fed by the host: skipping it
			 * would expire the guest's timeouts (TCP's) before the host
			 * could answer */
			int realtime = (host && host->realtime_idle && !input_dead) || machine_io_fd(m) >= 0;
			if (may_wake && next != UINT64_MAX && !realtime) {
				/* every vCPU waits for a timer: time jumps to it, within
				 * VCPU_LOOP_IDLE_LEAD_NS of the wall clock (beyond, it
				 * passes in real time: a batch of timers as emu's single
				 * thread runs them would not save the host anything
				 * here, each timer being a hand-over between threads) */
				uint64_t wall = loop_wall_ns() - wall_start;
				if (next <= wall + VCPU_LOOP_IDLE_LEAD_NS) {
					clock_advance_to(m, next);
					continue;
				}
			} else if (!may_wake || (next == UINT64_MAX && input_dead && machine_io_fd(m) < 0)) {
				vcpu_loop_finish(l, ENGINE_HUNG, 0, l->ops->rip(l, 0));
				break;
			}
		}
		/* wait for the next deadline, a vCPU's news, device work, the
		 * controller or host input: nothing polls */
		uint64_t wait = UINT64_MAX, now = clock_ns(m);
		if (next != UINT64_MAX)
			wait = next > now ? next - now : 0;
		if (!input_dead && !input && input_from - now_wall < wait)
			wait = input_from - now_wall;
		/* A running vCPU: the main loop still looks every
		 * VCPU_LOOP_INPUT_NS (a partial line of UART output to flush,
		 * input to take without a descriptor to wait on); only a guest
		 * with nothing to do is left asleep. */
		if ((!idle || (input && ep < 0)) && wait > VCPU_LOOP_INPUT_NS)
			wait = VCPU_LOOP_INPUT_NS;
		if (wait < VCPU_LOOP_MIN_WAIT_NS)
			wait = VCPU_LOOP_MIN_WAIT_NS;
		/* an earlier timer armed meanwhile (a vCPU's) ends the wait */
		__atomic_store_n(&l->wait_until, wait == UINT64_MAX ? UINT64_MAX : now + wait, __ATOMIC_RELAXED);
		int r = 0;
		if (input && ep >= 0 && wait >= 1000000) {
			/* rounded up: a timer is at most a millisecond late, and the
			 * loop does not wake twice for it */
			uint64_t ms = wait == UINT64_MAX ? 0 : (wait + 999999) / 1000000;
			r = loop_input(l, &input_dead, &ep, 1,
				       wait == UINT64_MAX ? -1
				       : ms > 3600000	  ? 3600000
							  : (int)ms);
			last_poll = loop_wall_ns();
			struct pollfd pio = {.fd = io_fd, .events = POLLIN};
			if (io_fd >= 0 && poll(&pio, 1, 0) > 0 && (pio.revents & POLLIN))
				io_ready = 1;
		} else {
			struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000ull),
					      .tv_nsec = (long)(wait % 1000000000ull)};
			struct pollfd pfd[3] = {{.fd = l->notify_fd, .events = POLLIN},
						{.fd = machine_io_fd(m), .events = POLLIN},
						{.fd = l->ctl ? l->ctl->wake_fd : -1, .events = POLLIN}};
			pthread_mutex_unlock(&l->lock);
			if (ppoll(pfd, 3, wait == UINT64_MAX ? NULL : &ts, NULL) > 0 && (pfd[1].revents & POLLIN))
				io_ready = 1;
			pthread_mutex_lock(&l->lock);
		}
		__atomic_store_n(&l->wait_until, 0, __ATOMIC_RELAXED);
		uint64_t v;
		if (read(l->notify_fd, &v, sizeof(v)) < 0) {
			/* nothing was there */
		}
		engine_ctl_drain(l->ctl);
		if (r < 0) {
			vcpu_loop_finish(l, ENGINE_QUIT, 0, 0);
			break;
		}
	}
	if (ep >= 0)
		close(ep);
}

struct engine_result vcpu_loop_run(struct vcpu_loop *l)
{
	struct machine *m = l->m;
	l->res = (struct engine_result){.end = ENGINE_ERROR};
	l->ctl = l->host ? l->host->ctl : NULL;
	l->done = l->pausing = 0;
	l->wait_until = 0;
	l->parked = 0;
	l->t = calloc(l->n, sizeof(*l->t));
	if (!l->t) {
		l->res.err = -ENOMEM;
		return l->res;
	}
	l->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->notify_fd < 0) {
		l->res.err = -errno;
		snprintf(l->res.msg, sizeof(l->res.msg), "%s: cannot make an eventfd: %s", l->name, strerror(errno));
		free(l->t);
		l->t = NULL;
		return l->res;
	}
	/* The clock continues from where it stood (the previous engine's, or
	 * instruction-driven time), then runs on host time. */
	uint64_t last = clock_ns(m);
	m->clock_delta = NULL;
	uint64_t host_now = loop_wall_ns() - m->clock_start;
	m->clock_skip = last > host_now ? last - host_now : 0;

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->main_cond, &ca);
	pthread_cond_init(&l->vcpu_cond, &ca);
	pthread_condattr_destroy(&ca);

	engine_ctl_attach(l->ctl, loop_ctl_kick, l);
	/* vCPU threads take only the faults (and what their engine unblocks);
	 * SIGINT and friends go to this thread, which stops the VM */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_mutex_lock(&l->lock);
	m->kick = loop_machine_kick;
	m->kick_opaque = l;
	m->timer_armed = loop_timer_armed;
	m->input_lock = loop_input_lock;
	for (unsigned k = 0; k < l->n; k++) {
		l->t[k].l = l;
		l->t[k].k = k;
		int err = pthread_create(&l->t[k].thr, NULL, loop_thread, &l->t[k]);
		if (err) {
			vcpu_loop_fail(l, k, -err, "%s: cannot start the thread of vCPU %u: %s", l->name, k,
				       strerror(err));
			break;
		}
		l->t[k].started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	loop_main(l);
	uart_flush(&m->com1);
	pthread_mutex_unlock(&l->lock);
	for (unsigned k = 0; k < l->n; k++)
		if (l->t[k].started)
			pthread_join(l->t[k].thr, NULL);
	engine_ctl_detach(l->ctl);
	m->kick = NULL;
	m->timer_armed = NULL;
	m->input_lock = NULL;
	m->kick_opaque = NULL;
	close(l->notify_fd);
	pthread_cond_destroy(&l->main_cond);
	pthread_cond_destroy(&l->vcpu_cond);
	pthread_mutex_destroy(&l->lock);
	free(l->t);
	l->t = NULL;
	return l->res;
}
