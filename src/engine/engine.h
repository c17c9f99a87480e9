/* Engines run a machine's vCPUs. emu: corral's interpreter, every vCPU taking
 * turns on the calling thread, with virtual time that skips idle periods. */
#ifndef CORRAL_ENGINE_H
#define CORRAL_ENGINE_H

#include <stdint.h>

struct machine;
struct cpu_state;

enum emu_end {
	EMU_POWER_OFF, /* the guest powered off (ACPI S5) */
	EMU_RESET,     /* the guest asked for a reset: the caller reboots or stops */
	EMU_TRIPLE_FAULT,
	EMU_HUNG,  /* every vCPU halted with nothing that could ever wake it */
	EMU_QUIT,  /* the host side asked to stop (Ctrl-A x, a signal) */
	EMU_ERROR, /* could not create the vCPUs */
};

struct emu_result {
	enum emu_end end;
	unsigned cpu; /* the vCPU of a triple fault or an unexpected exit */
	uint64_t rip;
	int err; /* EMU_ERROR: -errno */
};

struct emu_host {
	/* Moves host input into the machine (e.g. the UART); timeout_ms 0 polls,
	 * -1 blocks until input arrives or machine_io_fd(m) (when >= 0) becomes
	 * readable. Returns 0, 1 if it can never deliver input (no source), or
	 * -1 to stop the VM (EMU_QUIT). May be NULL. */
	int (*poll_input)(void *opaque, struct machine *m, int timeout_ms);
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
};

/* 2 ns per instruction: a 500 MIPS CPU with a 1 GHz TSC. */
#define EMU_PS_PER_INSN_DEFAULT 2000

/* Runs m until it powers off, resets, faults or is stopped. vCPU 0 starts
 * from *bsp; the others wait for INIT/SIPI. */
struct emu_result emu_run(struct machine *m, const struct cpu_state *bsp, const struct emu_host *host);

/* From a signal handler: make emu_run return EMU_QUIT soon. */
void emu_stop_async(void);

#endif
