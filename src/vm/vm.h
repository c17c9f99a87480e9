/* A system VM as an object: its configuration, machine, devices, backends,
 * boot, engine and vCPUs, with a lifecycle.
 *
 * Contract:
 * - vm_create checks the configuration, opens the backends (disk images,
 *   networks) and the serial file, picks the engine and builds the machine
 *   with the guest loaded; it runs no guest code. Errors come back as
 *   -errno with one line in err (no "corral: " prefix).
 * - vm_run runs the VM on the calling thread until it ends (the foreground
 *   CLI); vm_start runs it on a thread of its own, vm_wait waits for that.
 *   A guest reset resets the machine in place (RAM reads as zeros again,
 *   every device is at power-on, backends stay open) and boots the guest
 *   again, unless no_reboot.
 * - vm_pause, vm_resume, vm_reset and vm_stop may be called from any other
 *   thread while the VM runs; vm_stop_async also from a signal handler.
 *   vm_pause returns once every vCPU stands at an instruction boundary and
 *   no device is busy (no virtio request in flight, no timer running).
 * - Nothing is shared between two VMs: several may run in one process.
 * - Strings in the configuration are copied by vm_create. */
#ifndef CORRAL_VM_H
#define CORRAL_VM_H

#include <stddef.h>
#include <stdint.h>

#include "backend/block.h"
#include "backend/ratelimit.h"
#include "cpu/cpu.h"
#include "engine/engine.h"

#define VM_MEM_DEFAULT (512ull << 20)
#define VM_MEM_MIN (16ull << 20)
#define VM_MEM_MAX (1ull << 40)
#define VM_MAX_CPUS 64 /* = MACHINE_MAX_CPUS */
#define VM_MAX_DISKS 16
#define VM_MAX_NETS 4
#define VM_DISK_SERIAL_MAX 20
#define VM_DEBUG_EXIT_IOBASE 0x501 /* QEMU's isa-debug-exit defaults */
#define VM_DEBUG_EXIT_IOSIZE 2

struct vm;

enum vm_engine { VM_ENGINE_AUTO, VM_ENGINE_EMU, VM_ENGINE_KVM };

struct vm_disk {
	const char *path;
	enum blk_format format;
	enum blk_cache cache;
	int readonly;
	const char *serial;   /* NULL: none; at most VM_DISK_SERIAL_MAX characters */
	struct rate_cfg rate; /* backend/ratelimit.h: bytes read or written, requests */
};

/* A virtio-balloon (Firecracker's balloon): its target in MiB, whether the
 * guest may deflate it under memory pressure, statistics every stats_s
 * seconds (0: none), free page reporting. */
#define VM_BALLOON_STATS_MAX 86400
struct vm_balloon {
	int on;
	uint32_t amount_mib; /* at most the VM's memory */
	int deflate_on_oom;
	unsigned stats_s;
	int free_page_reporting;
};

struct vm_config {
	/* The guest: a Linux kernel (NULL with flat NULL: the guest kit's
	 * default kernel and initramfs), or a flat 64-bit test guest. */
	const char *kernel, *initrd, *cmdline; /* cmdline NULL: "console=ttyS0" */
	const char *flat;
	const char *guest_dir;	  /* the default guest's directory (boot_dirs_from_env) */
	const char *kernel_cache; /* decompressed kernels are kept here; NULL: nowhere */
	uint64_t mem;		  /* bytes, VM_MEM_MIN..VM_MEM_MAX, a multiple of 4 KiB */
	unsigned cpus;
	enum vm_engine engine;
	enum cpu_model cpu_model;
	enum engine_threads threads; /* emu: vCPUs taking turns on one thread, or a thread each (default) */
	struct vm_disk disk[VM_MAX_DISKS];
	unsigned ndisks;
	const char *net[VM_MAX_NETS]; /* backend/net.h specs: "user,...", "tap,ifname=..." */
	unsigned nnets;
	int rng, hvc; /* a virtio-rng; a virtio-console (hvc0) taking the console's input */
	struct vm_balloon balloon;
	int no_reboot;
	uint64_t handover; /* tests: move to the other engine after this many instructions/exits */
	/* isa-debug-exit (tests, as QEMU's): a guest write of V to one of its
	 * ports [iobase, iobase + iosize) ends the VM with VM_END_EXIT_DEVICE
	 * and status (V << 1) | 1. */
	struct {
		int on;
		uint16_t iobase, iosize;
	} debug_exit;

	/* ---- The host side ---- */
	/* COM1's (and hvc0's) output: serial_path (created or truncated), else
	 * the descriptor serial_fd (-1: dropped; the VM does not close it). */
	const char *serial_path;
	int serial_fd;
	/* Host input for the console: called on the VM's thread, may call
	 * vm_console_input; see struct engine_host. NULL: none. */
	int (*poll_input)(void *opaque, const int *wake, unsigned nwake, int timeout_ms);
	void *input_opaque;
	int realtime_idle; /* idle time passes at wall-clock pace (someone watches) */
	/* vm_restore: the folder of the new overlays of the snapshot's
	 * writable disks (created if needed; a file there is never replaced);
	 * NULL: a new DIR.restore-N beside the snapshot DIR. */
	const char *disk_dir;
	/* vm_restore: the clone keeps the saved VM generation ID (the guest is
	 * not told it was cloned; tests show what the ID is for). */
	int keep_vmgenid;
	/* vm_restore: each NIC keeps its saved MAC address (else a clone's
	 * NICs get fresh ones; clone.c says what the guest sees) */
	int keep_mac;
	uint64_t ps_per_insn; /* emu's time per instruction; 0: host time */
	/* Record and replay (emu, docs/replay.md): record writes every input
	 * from outside into this file; replay runs the machine again from
	 * one, its inputs from the file (the same options, images and corral
	 * version, checked). NULL: neither. version is corral's, kept in the
	 * file. */
	const char *record, *replay, *version;
	/* A replay under a debugger keeps snapshots in memory, every
	 * replay_snap_every instructions (0: the default, UINT64_MAX: none),
	 * at most replay_snap_keep of them (0: the default), so that going
	 * back starts from the nearest one (docs/replay.md). Host side: not
	 * part of the recording's configuration. */
	uint64_t replay_snap_every;
	unsigned replay_snap_keep;
	struct cpu_opts cpu_opts; /* emu's CPUs: the translator, tracing */
	int verbose;		  /* explain the engine choice (log) */
	uint64_t bench_t0;	  /* bench/startup.sh: CLOCK_MONOTONIC ns at launch; 0: off */
	/* Notes and the bench line, one line each without a newline; NULL: dropped. */
	void (*log)(void *opaque, const char *line);
	void *log_opaque;
	/* Called on the VM's thread between a guest reset and the new boot. */
	void (*on_reboot)(void *opaque);
	void *reboot_opaque;
};

/* Defaults: 512 MiB, 1 vCPU, engine auto, output dropped, emu's default
 * time per instruction, the CPU options' defaults. */
void vm_config_init(struct vm_config *c);

/* ---- The configuration as JSON ----
 * {"kernel": PATH, "initrd": PATH, "cmdline": S, "flat": PATH, "mem": BYTES,
 *  "cpus": N, "engine": "auto|emu|kvm", "cpu_model": "corral|host",
 *  "accel_threads": "single|multi",
 *  "disks": [{"path": PATH, "format": "probe|raw|qcow2", "cache":
 *  "writeback|none", "readonly": BOOL, "serial": S}], "nets": [SPEC],
 *  "rng": BOOL, "hvc": BOOL, "no_reboot": BOOL, "serial_path": PATH,
 *  "guest_dir": PATH, "kernel_cache": PATH, "realtime_idle": BOOL,
 *  "ps_per_insn": N, "cpu": {"jit": BOOL, "jit_hot": N, "jit_stats": BOOL,
 *  "jit_perfmap": BOOL, "trace": BOOL}, "debug_exit": {"iobase": N,
 *  "iosize": N} (present: the device is on), "balloon": {"amount_mib": N,
 *  "deflate_on_oom": BOOL, "stats_polling_interval_s": N,
 *  "free_page_reporting": BOOL} (present: the device is on)}
 * Callbacks and descriptors (serial_fd, poll_input, log, ...) are not part
 * of it. Absent keys keep vm_config_init's defaults. */
#define VM_CONFIG_JSON_MAX (64 * 1024)
/* A malloc'd NUL-terminated JSON text, or NULL (out of memory, or a field
 * out of its enum). */
char *vm_config_to_json(const struct vm_config *c);
/* A rate limit in Firecracker's RateLimiter JSON ({"bandwidth": {"size",
 * "refill_time", "one_time_burst"}, "ops": {...}}): read and checked
 * (what names it in the message), or written (a new reference). */
struct json_t;
int vm_rate_from_json(struct json_t *v, const char *what, struct rate_cfg *c, char *err, size_t errlen);
struct json_t *vm_rate_to_json(const struct rate_cfg *c);
/* Parses text (len bytes, at most VM_CONFIG_JSON_MAX) into *c. Unknown or
 * duplicate keys, wrong types and numbers out of range are refused: -EINVAL
 * with one sentence in err. On success c's strings point into *strings,
 * which the caller frees (after vm_create, which copies them). */
int vm_config_from_json(const char *text, size_t len, struct vm_config *c, void **strings, char *err, size_t errlen);

enum vm_end {
	VM_END_POWER_OFF,
	VM_END_RESET, /* the guest reset with no_reboot, or a stop came with it */
	VM_END_TRIPLE_FAULT,
	VM_END_HUNG, /* every vCPU halted with nothing that could wake them */
	VM_END_QUIT, /* vm_stop / vm_stop_async, or the console input asked */
	VM_END_ERROR,
	VM_END_EXIT_DEVICE, /* the guest wrote to isa-debug-exit: status */
};

struct vm_exit {
	enum vm_end end;
	unsigned cpu;	 /* TRIPLE_FAULT: the vCPU */
	uint64_t rip;	 /* TRIPLE_FAULT, HUNG: where */
	int err;	 /* ERROR: -errno */
	uint32_t status; /* EXIT_DEVICE: (V << 1) | 1 for the value V written */
	char msg[512];	 /* ERROR: one line, "" if the engine said nothing */
};

int vm_create(const struct vm_config *cfg, struct vm **out, char *err, size_t errlen);
/* Stops the VM if it runs, waits for it, frees everything. */
void vm_destroy(struct vm *vm);

/* Runs the VM on this thread until it ends. 0, or -EBUSY if it runs or ran. */
int vm_run(struct vm *vm, struct vm_exit *ex);
/* Runs the VM on a new thread: 0 or -errno. */
int vm_start(struct vm *vm);
/* Waits for a vm_start'ed VM to end. 0, or -EINVAL if it was not started. */
int vm_wait(struct vm *vm, struct vm_exit *ex);

/* 0 once stopped; -ESRCH if the VM has ended (or never runs). Pauses
 * nest in no way: a second pause is a no-op, one resume continues. */
int vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
/* A reset as if the guest asked (even with no_reboot): the machine is
 * reset in place and the guest boots again. 0 or -ESRCH. */
int vm_reset(struct vm *vm);
/* Asks the VM to end (VM_END_QUIT) and returns; vm_wait/vm_run then
 * return. vm_stop_async is async-signal-safe. */
void vm_stop(struct vm *vm);
void vm_stop_async(struct vm *vm);

/* The engine the VM runs on: "emu" or "kvm". */
const char *vm_engine_name(const struct vm *vm);
/* Host input for the console (hvc0 with cfg->hvc, else COM1): queues up
 * to n bytes, returns how many fitted. Only from poll_input (the VM's
 * thread) or while the VM is paused. */
size_t vm_console_input(struct vm *vm, const uint8_t *buf, size_t n);
/* Copies guest RAM [gpa, gpa+len) out: 0, or -EFAULT if it is not all RAM,
 * -ESRCH if the VM has no machine. Safe at any time (a running guest may
 * be writing it). */
int vm_ram_read(struct vm *vm, uint64_t gpa, void *dst, size_t len);
/* Asks for a pause without waiting for it: a VM not yet running stops
 * before its first instruction (corral restore --paused). */
void vm_pause_async(struct vm *vm);
/* 1 while a pause is asked for (the VM stands or is about to), else 0. */
int vm_is_paused(struct vm *vm);
/* 1 once the VM has been started and until it ends. */
int vm_is_running(struct vm *vm);
/* The configuration the VM was created with (its strings are the VM's). */
const struct vm_config *vm_get_config(const struct vm *vm);
/* The rate limits of disk k and NIC k (indexes of the configuration's
 * disks and nets) while the VM runs; a new limit starts with full buckets.
 * 0, or -ENOENT when there is no such device. A disk's new limit is in the
 * configuration from then on (snapshots keep it); a NIC's is not. */
int vm_set_disk_rate(struct vm *vm, unsigned k, const struct rate_cfg *c);
int vm_get_disk_rate(struct vm *vm, unsigned k, struct rate_cfg *c);
int vm_set_net_rate(struct vm *vm, unsigned k, const struct rate_cfg *tx, const struct rate_cfg *rx);
int vm_get_net_rate(struct vm *vm, unsigned k, struct rate_cfg *tx, struct rate_cfg *rx);

/* ---- The balloon (vm/balloon.c) ----
 * The JSON of a balloon ({"amount_mib", "deflate_on_oom",
 * "stats_polling_interval_s", "free_page_reporting"}, Firecracker's
 * names): read and checked (unknown keys refused; amount_mib and
 * deflate_on_oom required when full), or written (a new reference). */
int vm_balloon_from_json(struct json_t *v, int full, struct vm_balloon *b, char *err, size_t errlen);
struct json_t *vm_balloon_to_json(const struct vm_balloon *b);
/* While the VM exists: a new target (-ENODEV without a balloon, -EINVAL
 * above the VM's memory; kept in the configuration, so snapshots carry
 * it), a new statistics interval (-EINVAL to turn statistics on or off,
 * which only a new VM can), and the balloon's configuration and what the
 * device knows (struct balloon_info, virtio.h; zero before the machine
 * exists). */
struct balloon_info;
int vm_balloon_set(struct vm *vm, uint32_t amount_mib);
int vm_balloon_set_stats(struct vm *vm, unsigned stats_s);
int vm_balloon_get(struct vm *vm, struct vm_balloon *b, struct balloon_info *bi);

/* ---- Snapshots (emu engine) ----
 * vm_save writes dir/state (a state stream of kind "vm": the configuration,
 * every vCPU and device) and dir/memory (guest RAM, sparse), creating dir
 * if needed; a running VM is paused for it and resumed after, a paused
 * one stays paused. 0 or -errno with one line in err.
 * No other thread may resume the VM while a save runs (the API serves
 * one request at a time).
 * vm_restore builds a new VM from a snapshot: the saved configuration
 * with the host side (serial output, input, log, guest_dir) taken from
 * overrides (NULL: output dropped), RAM a private, lazily read mapping
 * of dir/memory, every device and vCPU as saved. It has not run: vm_run or
 * vm_start continue the guest where it stood. A malformed state gives
 * -EINVAL with one line in err. */
int vm_save(struct vm *vm, const char *dir, char *err, size_t errlen);
/* vm_save with the two files named apart (the API's snapshot_path and
 * mem_file_path); their directories must exist. */
int vm_save_files(struct vm *vm, const char *state_path, const char *mem_path, char *err, size_t errlen);
int vm_restore(const char *dir, const struct vm_config *overrides, struct vm **out, char *err, size_t errlen);

/* ---- Debugging (the GDB stub, src/debug) ----
 * vm_debug_enable, before vm_run/vm_start, gives the VM a debugger's table
 * (emu only: -ENOTSUP with one line in err under kvm). vm_debug_halt stops
 * every vCPU at an instruction boundary (as vm_pause, also before the VM
 * has started: it then stops before its first instruction) and returns 0,
 * or -ESRCH once the VM has ended. While it stands: registers per vCPU
 * (-EAGAIN if it does not stand), breakpoints (linear addresses of
 * instructions, at most CPU_DBG_MAX_BP), watchpoints (CPU_DBG_WATCH_W, _R,
 * _RW over any linear range, at most CPU_DBG_MAX_WP); -ENOSPC when full,
 * -ENOENT removing one that is not there. vm_debug_resume runs every vCPU,
 * or with step_cpu >= 0 that one alone for one instruction. When a vCPU
 * stops by itself (a breakpoint, a watchpoint, a step's end) the VM stands
 * paused and vm_debug_notify_fd (an eventfd) becomes readable;
 * vm_debug_take_stop then says which vCPU and why (1), or 0 if it did not
 * stop by itself. One debugger thread at a time. */
struct vm_debug_stop {
	unsigned cpu;
	int kind; /* enum cpu_dbg_kind */
	uint64_t addr;
};
int vm_debug_enable(struct vm *vm, char *err, size_t errlen);
int vm_debug_notify_fd(const struct vm *vm);
unsigned vm_ncpus(const struct vm *vm);
int vm_debug_halt(struct vm *vm);
int vm_debug_take_stop(struct vm *vm, struct vm_debug_stop *st);
/* A debugger is connected (on) or went (0): a replay stops at the
 * recording's end only while one is (kind ENGINE_DEBUG_STOP_END). */
void vm_debug_attach(struct vm *vm, int on);
int vm_debug_get_regs(struct vm *vm, unsigned cpu, struct cpu_state *s);
int vm_debug_set_regs(struct vm *vm, unsigned cpu, const struct cpu_state *s);
int vm_debug_set_bp(struct vm *vm, uint64_t addr, int on);
int vm_debug_set_wp(struct vm *vm, int kind, uint64_t addr, uint64_t len, int on);
/* Removes every breakpoint and watchpoint. */
void vm_debug_clear(struct vm *vm);
void vm_debug_resume(struct vm *vm, int step_cpu);
/* Every vCPU drops its TLB and decoded code when it runs on (0, or
 * -EAGAIN if the VM does not stand). */
int vm_debug_flush(struct vm *vm);
/* Copies src into guest RAM [gpa, gpa+len) as a device would (decoded code
 * there is dropped): 0, -EFAULT if it is not all RAM, -ESRCH without a
 * machine. Only while the VM stands. */
int vm_ram_write(struct vm *vm, uint64_t gpa, const void *src, size_t len);

/* ---- A replay's debugger (docs/replay.md, "Going backwards") ----
 * Under --replay the debugger's stops never change the run, so any
 * position can be reached again by replaying from the recording's start;
 * registers and memory cannot be written (vm_debug_set_regs: -EPERM).
 * vm_debug_position: while the VM stands, vCPU cpu's count of
 * instructions since the recording's start and the total of every
 * vCPU's (0, or -EAGAIN). vm_debug_replay_run runs the replay as run
 * says (from the start if rewind; stopping when vCPU cpu's count reaches
 * to, with CPU_DBG_STEP; breakpoints and watchpoints as hits says, one of
 * engine.h's ENGINE_HITS_*) and returns; the stop comes as with
 * vm_debug_resume. vm_debug_last_hit: after a SCAN, the last hit it
 * noted below scan_below (1), or 0 if there was none. */
struct vm_debug_run {
	int rewind;
	unsigned cpu;
	uint64_t to; /* UINT64_MAX: no such stop */
	int hits;
	uint64_t scan_below;
	/* SCAN: run from the latest snapshot below this total (0: from the
	 * start); vm_debug_run_start tells which it was */
	uint64_t scan_from;
	struct engine_debug_hit seek;
};
int vm_debug_replaying(const struct vm *vm);
/* 1 if a replay can go back: not with a writable disk, whose overlay
 * holds the replay's later writes (a run from the start would read them). */
int vm_debug_can_go_back(const struct vm *vm);
int vm_debug_position(struct vm *vm, unsigned cpu, uint64_t *count, uint64_t *total);
void vm_debug_replay_run(struct vm *vm, const struct vm_debug_run *run);
int vm_debug_last_hit(struct vm *vm, struct engine_debug_hit *h);
/* Where the last run that went back started: the snapshot's total and
 * vCPU cpu's count there, or 0 and 0 for the recording's start. */
void vm_debug_run_start(struct vm *vm, unsigned cpu, uint64_t *total, uint64_t *count);

#endif
