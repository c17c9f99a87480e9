/* Engines run a machine's vCPUs. emu: corral's interpreter, every vCPU taking
 * turns on the calling thread, with virtual time that skips idle periods.
 * kvm: the host processor through /dev/kvm, one host thread per vCPU, the
 * same machine, devices and boot state. Both take and give back the
 * architectural state as struct cpu_state, so a VM can move between them. */
#ifndef CORRAL_ENGINE_H
#define CORRAL_ENGINE_H

#include <stdint.h>

struct machine;
struct cpu_state;

enum emu_end {
	EMU_POWER_OFF, /* the guest powered off (ACPI S5) */
	EMU_RESET,     /* the guest asked for a reset: the caller reboots or stops */
	EMU_TRIPLE_FAULT,
	EMU_HUNG,   /* every vCPU halted with nothing that could ever wake it */
	EMU_QUIT,   /* the host side asked to stop (Ctrl-A x, a signal) */
	EMU_ERROR,  /* could not create the vCPUs, or the engine failed (msg) */
	EMU_PAUSED, /* host->stop_after reached: vCPU 0's state is in host->final */
};

struct emu_result {
	enum emu_end end;
	unsigned cpu; /* the vCPU of a triple fault or an unexpected exit */
	uint64_t rip;
	int err;       /* EMU_ERROR: -errno */
	char msg[160]; /* EMU_ERROR: what failed, when the engine knows more */
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
	/* Engine hand-over (tests): stop after this many instructions (emu)
	 * or exits (kvm) of vCPU 0, with EMU_PAUSED and vCPU 0's state in
	 * *final; 0 = never. Single-vCPU machines only. */
	uint64_t stop_after;
	struct cpu_state *final;
	enum cpu_model cpu_model;		 /* kvm */
	const struct engine_doorbell *doorbells; /* virtio's queue notifies, may be NULL */
	unsigned ndoorbells;
};

/* 2 ns per instruction: a 500 MIPS CPU with a 1 GHz TSC. */
#define EMU_PS_PER_INSN_DEFAULT 2000

/* Runs m until it powers off, resets, faults or is stopped. vCPU 0 starts
 * from *bsp; the others wait for INIT/SIPI. */
struct emu_result emu_run(struct machine *m, const struct cpu_state *bsp, const struct emu_host *host);

/* From a signal handler: make emu_run (and kvm_run) return EMU_QUIT soon. */
void emu_stop_async(void);

/* ---- kvm ---- */

/* Runs m on /dev/kvm with emu_run's contract: vCPU 0 starts from *bsp; time
 * is the host's clock, with idle periods skipped as under emu. corral's own
 * PIC, IOAPIC and LAPIC model the interrupt controllers (no in-kernel
 * irqchip): interrupts are injected with KVM_INTERRUPT. */
struct emu_result kvm_run(struct machine *m, const struct cpu_state *bsp, const struct emu_host *host);
void kvm_stop_async(void);

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
