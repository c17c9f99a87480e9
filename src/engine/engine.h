/* Engines run a machine's vCPUs, behind one ops table (engine_get). emu:
 * corral's interpreter, every vCPU taking turns on the calling thread, with
 * virtual time that skips idle periods, or a host thread per vCPU. kvm:
 * the host processor through /dev/kvm, one host thread per vCPU (both
 * through vcpu_loop.h), the same machine, devices and boot state. Both take and give back the architectural state as
 * struct cpu_state, so a VM can move between them; both stop at an instruction boundary when their engine_ctl asks
 * (pause, resume, stop). */
#ifndef CORRAL_ENGINE_H
#define CORRAL_ENGINE_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu.h"

struct machine;
struct cpu_state;

/* Why an engine's run ended. */
enum engine_end {
	ENGINE_POWER_OFF, /* the guest powered off (ACPI S5) */
	ENGINE_RESET,	  /* the guest (or the host, machine_request_power) asked for a reset */
	ENGINE_TRIPLE_FAULT,
	ENGINE_HUNG,	    /* every vCPU halted with nothing that could ever wake it */
	ENGINE_QUIT,	    /* the host side asked to stop (Ctrl-A x, a signal, engine_stop_async) */
	ENGINE_ERROR,	    /* could not create the vCPUs, or the engine failed (msg) */
	ENGINE_HANDED_OVER, /* host->stop_after reached: vCPU 0's state is in host->final */
	ENGINE_REWIND,	    /* a replay's debugger asked for the recording's start (engine_debug.rewind) */
};

struct engine_result {
	enum engine_end end;
	unsigned cpu; /* the vCPU of a triple fault or an unexpected exit */
	uint64_t rip;
	int err;       /* ENGINE_ERROR: -errno */
	char msg[160]; /* ENGINE_ERROR: what failed, when the engine knows more */
};

/* The CPU model a guest sees (CPUID). CORRAL is what emu implements, and
 * kvm presents it too (filtered by what the host supports), so a VM can
 * move between engines; HOST is everything KVM offers (kvm only). */
enum cpu_model { CPU_MODEL_CORRAL, CPU_MODEL_HOST };

/* A doorbell (virtio's queue notify): a guest write of len bytes at addr
 * (MMIO, or a port when pio) that should signal the eventfd fd instead of
 * calling the bus. kvm registers it with KVM_IOEVENTFD (no exit to
 * userspace at all) where the host has ioeventfd; otherwise, and under emu,
 * the write reaches the bus and the device's handler signals fd itself, so
 * a device works the same either way. */
struct engine_doorbell {
	uint64_t addr;
	uint32_t len; /* 1, 2, 4 or 8 */
	int pio;
	int fd;
};

/* A vCPU as a snapshot keeps it, engine-independent: the architectural
 * state plus what struct cpu_state leaves out (run state, NMI, interrupt
 * shadow). */
enum engine_mp_state { ENGINE_VCPU_RUNNING, ENGINE_VCPU_HALTED, ENGINE_VCPU_WAIT_SIPI };
struct engine_vcpu {
	struct cpu_state s; /* rflags evaluated; tsc: the guest's TSC at the pause */
	uint8_t mp_state;   /* enum engine_mp_state */
	uint8_t nmi_pending, nmi_blocked;
	uint8_t irq_shadow; /* interrupts inhibited for the instruction at s.rip */
};

/* A replay's debugger: what a breakpoint or watchpoint hit does. STOP
 * stops there; SCAN notes the last hit below scan_below and goes on
 * (reverse-continue looks for it); SEEK goes on past every hit but seek;
 * IGNORE goes on. */
enum engine_debug_hits { ENGINE_HITS_STOP, ENGINE_HITS_SCAN, ENGINE_HITS_SEEK, ENGINE_HITS_IGNORE };
struct engine_debug_hit {
	struct cpu_dbg_hit why; /* why.kind 0: none */
	unsigned cpu;
	uint64_t count, total; /* the vCPU's count and the total at the hit */
};
#define ENGINE_DEBUG_MAX_CPUS 64

/* ---- A debugger (the GDB stub) ----
 * Set up by the owner in ctl->debug before the engine runs; changed only
 * while the engine stands paused. At the end of every pause the engine
 * takes the table over to its vCPUs, loads ctl->vcpus back into them if
 * load_vcpus (a debugger wrote registers) and runs: every vCPU, or with
 * step_cpu >= 0 that vCPU alone for one instruction. When a vCPU hits a
 * breakpoint or watchpoint or ends its step, the engine records the stop,
 * asks itself for a pause and signals notify_fd (an eventfd); the owner
 * then finds it paused (engine_pause returns at once). emu only: kvm runs
 * no guest with a debugger yet (it refuses in its run). */
/* stop.kind of a replay's end under an attached debugger (not a
 * cpu_dbg_kind): the replay stands at the recording's last position and
 * goes no further forward until the debugger goes (GDB's replaylog:end). */
#define ENGINE_DEBUG_STOP_END 64

struct engine_debug {
	struct cpu_debug cpu; /* breakpoints, watchpoints (cpu.h) */
	int step_cpu;	      /* -1: none */
	int load_vcpus;	      /* ctl->vcpus were changed: the engine loads them */
	int flush;	      /* every vCPU drops its TLB and decoded code */
	int stopped;	      /* the engine stopped for the debugger (owner clears) */
	unsigned stop_cpu;
	struct cpu_dbg_hit stop; /* why: CPU_DBG_BREAK, _STEP, _WATCH_* */
	int notify_fd;

	/* A replay (emu with the machine's replay): the debugger's stops never
	 * change the run (a turn cut by a stop goes on where it stood, and
	 * step_cpu is not used), so every position is reached again by
	 * replaying from the start. A position is a vCPU's count of
	 * instructions since the recording's start, count[k] (the engine
	 * fills count[] and total, their sum, at every pause point). */
	int rr;			      /* the engine runs a replay (set by it at its start) */
	int attached;		      /* the owner: a debugger is connected (atomic) */
	int rewind;		      /* the owner: end this run with ENGINE_REWIND */
	unsigned run_cpu;	      /* stop when vCPU run_cpu's count reaches run_to... */
	uint64_t run_to;	      /* ...(CPU_DBG_STEP); UINT64_MAX: never (a stop clears it) */
	int hits;		      /* enum engine_debug_hits */
	uint64_t scan_below;	      /* SCAN: note hits at totals below this */
	uint64_t scan_from;	      /* the owner's: SCAN from a snapshot below this total (0: the start) */
	struct engine_debug_hit seek; /* SEEK: the hit to stop at */
	struct engine_debug_hit last; /* SCAN: the last hit noted (last.kind 0: none) */
	uint64_t count[ENGINE_DEBUG_MAX_CPUS];
	uint64_t base[ENGINE_DEBUG_MAX_CPUS]; /* counts of the replay's earlier engine runs (reboots) */
	uint64_t total;
	/* Snapshots for going back (the owner's): between two rounds of
	 * turns, once total reaches snap_next, the engine fills ctl->vcpus,
	 * count[] and total and calls snap (on its thread), which takes the
	 * machine as it stands and moves snap_next on. NULL: none. */
	void (*snap)(void *opaque);
	void *snap_opaque;
	uint64_t snap_next;
};

/* ---- Control of a running engine from other threads ----
 * The owner of a VM (vm/) keeps one engine_ctl for the VM's whole life and
 * hands it to every engine run (host->ctl). An engine attaches when it
 * starts and detaches when it returns; in between it looks at the requests
 * at instruction boundaries: emu between turns (a running vCPU is stopped
 * at its next block boundary, an idle loop is woken through wake_fd), kvm
 * in its main loop (every vCPU thread is kicked out of KVM_RUN and parks).
 * Lock order: an engine's own locks before ctl->lock. */
struct engine_ctl {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pause_req; /* lock to write; engines poll it atomically */
	int paused;    /* lock: the engine stands at a pause point */
	int closed;    /* lock: no engine will run with this ctl again */
	volatile sig_atomic_t stop;
	int wake_fd; /* eventfd: wakes an idle engine (engines poll it) */
	/* The running engine's kick (under lock): make it look at the
	 * requests soon (emu: stop the running vCPU at its next block). */
	void (*kick)(void *opaque);
	void *kick_opaque;
	/* Snapshots: an engine that can describe its vCPUs fills vcpus[0..
	 * nvcpus) at every pause point and sets vcpus_valid (cleared when it
	 * runs on); the owner reads them while the engine stands paused. */
	struct engine_vcpu *vcpus;
	unsigned nvcpus;
	int vcpus_valid;
	char vcpus_why[160];	    /* lock: why an engine could not fill them at its last pause point ("" if it did) */
	struct engine_debug *debug; /* NULL: no debugger */
};

int engine_ctl_init(struct engine_ctl *ctl);
void engine_ctl_destroy(struct engine_ctl *ctl);
/* Stops the engine at an instruction boundary, every vCPU and the devices
 * (no timer runs, no device work is taken); returns once it stands still
 * (0), or -ESRCH if no engine will run again (closed). If no engine runs
 * at the moment, the next one stops before its first instruction. */
int engine_pause(struct engine_ctl *ctl);
void engine_resume(struct engine_ctl *ctl);
/* The running engine (and any later one) returns ENGINE_QUIT soon: at
 * once with engine_stop; engine_stop_async, which is async-signal-safe and
 * touches nothing of the engine's, after the running vCPU's turn (emu: at
 * most a slice, or the next piece of a long REP instruction) or the main
 * loop's next look (kvm: at most 10 ms). */
void engine_stop(struct engine_ctl *ctl);
void engine_stop_async(struct engine_ctl *ctl);
/* The owner: no engine runs again (wakes engine_pause's waiters). */
void engine_ctl_close(struct engine_ctl *ctl);

/* For the engines (engine/ctl.c). */
void engine_ctl_attach(struct engine_ctl *ctl, void (*kick)(void *), void *opaque);
void engine_ctl_detach(struct engine_ctl *ctl);
static inline int engine_ctl_pause_wanted(struct engine_ctl *ctl)
{
	return ctl && __atomic_load_n(&ctl->pause_req, __ATOMIC_SEQ_CST);
}
/* Blocks while a pause is requested (returns early on stop); returns the
 * nanoseconds it stood still. */
uint64_t engine_ctl_pause_point(struct engine_ctl *ctl);
/* The engine wrote ctl->vcpus for the pause point it is about to enter,
 * or could not, for the reason why (a sentence). */
void engine_ctl_vcpus_filled(struct engine_ctl *ctl);
void engine_ctl_vcpus_refused(struct engine_ctl *ctl, const char *why);
/* The engine stopped for its debugger (engine_debug): records why, asks
 * for a pause and tells the owner. */
void engine_ctl_debug_stop(struct engine_ctl *ctl, unsigned cpu, struct cpu_dbg_hit why);
/* Empties wake_fd after an idle wait. */
void engine_ctl_drain(struct engine_ctl *ctl);

/* Options of the emu engine's CPUs (the translator, tracing): cpu.h. */
struct cpu_opts;

/* How the emu engine maps vCPUs onto host threads (engine_host.threads). */
enum engine_threads { ENGINE_THREADS_SINGLE, ENGINE_THREADS_MULTI };

struct engine_host {
	/* Moves host input into the machine (e.g. the UART); timeout_ms 0 polls,
	 * -1 blocks until input arrives or one of the nwake file descriptors
	 * becomes readable (the machine's device work, the engine's wake-ups).
	 * Returns 0, 1 if it can never deliver input (no source), or -1 to stop
	 * the VM (ENGINE_QUIT). Runs on the engine's thread. May be NULL. */
	int (*poll_input)(void *opaque, const int *wake, unsigned nwake, int timeout_ms);
	void *opaque;
	uint64_t slice; /* instructions per turn; 0 = the default */
	/* Virtual time: picoseconds per instruction executed (instruction-
	 * driven time: deterministic, never late for the guest), or 0 for the
	 * host's monotonic clock. Idle time is skipped either way. */
	uint64_t ps_per_insn;
	/* Someone is watching (an interactive terminal): idle time passes at
	 * wall-clock pace instead of being skipped, so the guest's clock and
	 * its timeouts stay human. */
	int realtime_idle;
	/* Engine hand-over (tests): stop after this many instructions (emu)
	 * or exits (kvm) of vCPU 0, with ENGINE_HANDED_OVER and vCPU 0's state
	 * in *final; 0 = never. Single-vCPU machines only. */
	uint64_t stop_after;
	struct cpu_state *final;
	enum cpu_model cpu_model;	 /* kvm */
	const struct cpu_opts *cpu_opts; /* emu; NULL: the defaults */
	/* emu: single, every vCPU takes turns on the calling thread with
	 * instruction-counted time (reproducible; record/replay); multi (vm/'s
	 * default), every vCPU on a host thread of its own with host time
	 * (machines of two or more vCPUs without a debugger or record/replay;
	 * others run single). */
	enum engine_threads threads;
	const struct engine_doorbell *doorbells; /* virtio's queue notifies, may be NULL */
	unsigned ndoorbells;
	struct engine_ctl *ctl; /* pause, resume, stop; may be NULL */
	/* A restore: every vCPU starts from restore[k] (m->ncpus of them)
	 * instead of bsp and the power-on state; NULL: a boot. */
	const struct engine_vcpu *restore;
};

/* 2 ns per instruction: a 500 MIPS CPU with a 1 GHz TSC. */
#define EMU_PS_PER_INSN_DEFAULT 2000

/* ---- The engines ---- */

enum engine_kind { ENGINE_EMU, ENGINE_KVM };

struct engine_ops {
	const char *name; /* "emu", "kvm" */
	/* Runs m until it powers off, resets, faults or is stopped. vCPU 0
	 * starts from *bsp; the others wait for INIT/SIPI. */
	struct engine_result (*run)(struct machine *m, const struct cpu_state *bsp, const struct engine_host *host);
};

/* emu: corral's interpreter, every vCPU taking turns on the calling thread.
 * kvm: /dev/kvm with emu's contract: time is the host's clock, with idle
 * periods skipped as under emu; corral's own PIC, IOAPIC and LAPIC model
 * the interrupt controllers (no in-kernel irqchip): interrupts are
 * injected with KVM_INTERRUPT. */
extern const struct engine_ops engine_emu_ops, engine_kvm_ops;
/* The PC as emu's CPU sees it (struct cpu_platform, cpu.h): m's RAM,
 * buses, interrupt controllers, LAPICs and clock. For the emu engine and
 * tests that drive a vCPU themselves. */
struct cpu_platform;
void engine_emu_platform(struct cpu_platform *p, struct machine *m);
const struct engine_ops *engine_get(enum engine_kind kind);

static inline struct engine_result engine_run(enum engine_kind kind, struct machine *m, const struct cpu_state *bsp,
					      const struct engine_host *host)
{
	return engine_get(kind)->run(m, bsp, host);
}

/* What /dev/kvm offers on this host (corral info, --engine auto). */
struct kvm_info {
	int usable; /* /dev/kvm opens and speaks API version 12 */
	int err;    /* !usable: -errno (ENOENT, EACCES, ...) */
	int api_version;
	int irqfd, ioeventfd, immediate_exit, tsc_control, split_irqchip, user_msr;
	int max_vcpus;
	char host_hv[13];    /* hypervisor signature of the host (CPUID 0x40000000), "" if bare metal */
	char sw_layer[64];   /* a known software virtualization layer behind /dev/kvm, "" if none */
	int probe_ok;	     /* the timed probe ran */
	double exit_us;	     /* probe: one guest I/O exit round trip, microseconds */
	double loop_ns;	     /* probe: one guest loop iteration (dec; jnz), nanoseconds */
	char missing[128];   /* corral's CPU model features the host lacks ("" if none) */
	char probe_err[128]; /* why the probe failed */
};
/* Fills *ki; probe: also run the timed probe guest (a few ms). */
void kvm_probe(struct kvm_info *ki, int probe);
/* Does kvm run guests at hardware speed here? Returns 1 (kvm) or 0 (emu),
 * with the reason in why. */
int kvm_auto_choice(const struct kvm_info *ki, char *why, size_t len);
/* "/dev/kvm: Permission denied" style message for an unusable /dev/kvm. */
const char *kvm_strerror(const struct kvm_info *ki);

#endif
