/* The VM object's inside, shared by vm.c (lifecycle, run loop) and
 * build.c (backends, the engine choice, assembling the machine). */
#ifndef CORRAL_VM_INTERNAL_H
#define CORRAL_VM_INTERNAL_H

#include <limits.h>
#include <pthread.h>

#include "backend/net.h"
#include "cpu/cpu.h"
#include "machine/debug_exit.h"
#include "vm/vm.h"

struct machine;
struct virtio_dev;

enum vm_state { VM_CREATED, VM_RUNNING, VM_ENDED };

/* Where a VM's first state comes from when it is not a boot: a restore.
 * A snapshot's (not a migration's) under record or replay is named by the
 * hashes of its state stream and its memory file (record.c). */
struct vm_origin {
	int snapshot; /* a snapshot directory; 0: a migration's stream */
	int hashed;   /* the hashes below are set */
	uint64_t state_size, state_hash, mem_size, mem_hash;
};

struct vm {
	struct vm_config cfg; /* its strings point into strs */
	char *strs;
	char kpath[PATH_MAX], ipath[PATH_MAX]; /* the default guest's files */

	struct blk *blk[VM_MAX_DISKS];
	struct virtio_dev *blkdev[VM_MAX_DISKS]; /* the current machine's virtio-blk of each */
	struct rate_limit blkrate[VM_MAX_DISKS]; /* each disk's, outliving its devices (reboots) */
	int rates_on;				 /* blkrate initialised */
	struct net *netbe[VM_MAX_NETS];
	struct virtio_dev *netdev[VM_MAX_NETS]; /* the current machine's virtio-net of each */
	/* Each NIC's MAC address: kept across guest reboots, saved with the
	 * state, fresh in a clone (clone.c). */
	uint8_t mac[VM_MAX_NETS][6];
	enum engine_kind kind;
	int out_fd, own_out_fd;

	/* The machine of the current boot (NULL between boots): swapped only
	 * by the VM's thread, under lock, so that other threads may look. */
	pthread_mutex_t lock;
	struct machine *m;
	struct virtio_dev *hvc;
	struct virtio_dev *balloon; /* the current machine's virtio-balloon, or NULL */
	struct cpu_state bsp;
	enum vm_state state;
	int reset_req; /* lock: vm_reset asked for this reset */
	int bench_seen;
	struct debug_exit dbgexit; /* cfg.debug_exit.on: on the machine's ports */

	/* Snapshots (snapshot.c): the engine describes its vCPUs here at a
	 * pause (ctl.vcpus); a restored VM's first run starts from restore. */
	struct engine_vcpu *vcpus, *restore;
	int restoring;		 /* vm_build: RAM comes from a snapshot, load no guest */
	struct vm_origin origin; /* a restore's snapshot, as a recording names it */
	/* A restored VM's replay goes back to the restore under a debugger:
	 * the snapshot's state and its memory file, kept for that (record.c),
	 * and whether the restore drew a new generation ID and new MACs. */
	void *origin_state;
	size_t origin_len;
	int origin_mfd; /* -1: not kept */
	int origin_newgen, origin_newmac;
	const struct vm_config *saving; /* a save: the configuration it records */

	/* Record or replay (record.c, machine/replay.h); NULL: neither. */
	struct replay *rr;
	int64_t rtc_sec;	/* the RTC's start under record/replay; 0: the host's now */
	struct rr_snaps *snaps; /* a replay's snapshots for its debugger (record.c) */
	/* Writable disks under record or replay (record.c): the image as the
	 * user gave it (whose contents are hashed), and the run's overlay on
	 * it, which the configuration's path then names; a replay's is a
	 * temporary file, removed once open. */
	char rr_base[VM_MAX_DISKS][PATH_MAX];
	/* A replay's writable disk keeps an undo log (blk_undo_wrap), armed
	 * when a debugger attaches, of at most this many bytes of old data. */
#define RR_UNDO_MAX (1ull << 30)
	char rr_overlay[VM_MAX_DISKS][PATH_MAX];

	struct engine_ctl ctl;
	pthread_t thr;
	int thread_started;
	struct vm_exit exit;
};

/* clone.c: a restored VM is a clone of the one saved: a new VM generation
 * ID, which the guest is told of through its general-purpose event (if
 * the guest's tables have the device, and its driver enabled the event). */
void vm_new_generation(struct vm *vm);
/* A fresh MAC address for each NIC (clone.c). */
void vm_new_macs(struct vm *vm);

/* vm.c: vm_create, for a restore (from non-NULL: no guest is loaded). */
int vm_create_as(const struct vm_config *cfg, const struct vm_origin *from, struct vm **out, char *err, size_t errlen);

/* snapshot.c: a restore from a state stream in memory and an open memory
 * file (the fuzzer's entry too); overrides as for vm_restore. */
int vm_restore_from(const void *state, size_t len, int mem_fd, const char *dir, const struct vm_config *overrides,
		    struct vm **out, char *err, size_t errlen);

/* snapdisk.c: the disks of a snapshot (docs/architecture.md). Names are
 * kept here while a configuration points at them. */
struct snapdisk_names {
	char path[VM_MAX_DISKS][PATH_MAX];
};
/* At a save (the VM paused, vm->lock held): every writable disk's image is
 * frozen into dir as diskK.raw or diskK.qcow2 (a hard link, with the VM
 * then switched to a new qcow2 overlay over it under the image's name; or
 * a copy), with its backing chain where it is named relative. *saved is
 * the VM's configuration as the state records it: those disks by their
 * names in dir. 0 or -errno with err. */
int snapdisk_freeze(struct vm *vm, const char *dir, struct vm_config *saved, struct snapdisk_names *names, char *err,
		    size_t errlen);
/* At a restore: every writable disk of cfg (named as in dir) gets a new
 * qcow2 overlay on the frozen image, in disk_dir or else in a new
 * DIR.restore-N beside dir; cfg then names the overlays. With overlays 0,
 * cfg names each frozen image itself and no file is created (a recording
 * or replay of the restore puts its own overlay on it: record.c).
 * Read-only disks stay as they are. 0 or -errno with err. */
int snapdisk_overlays(struct vm_config *cfg, const char *dir, const char *disk_dir, struct snapdisk_names *names,
		      int overlays, char *err, size_t errlen);

/* snapshot.c: the state stream of a paused VM (the configuration, every
 * vCPU and device; not RAM) written to fd; 0 or -errno with err. */
int vm_state_write(struct vm *vm, int fd, char *err, size_t errlen);

/* snapshot.c: what no guest can reach on corral's CPU (a register out of
 * range, named), or NULL; a snapshot's vCPUs and a debugger's writes. */
const char *vm_cpu_state_check(const struct cpu_state *s);

/* record.c: record and replay. What cannot be recorded (kvm, a
 * migration, a restore with writable disks), before anything opens; from
 * is a restore's origin or NULL. 0 or -EINVAL with err. */
int vm_rr_check(const struct vm_config *c, const struct vm_origin *from, char *err, size_t errlen);
/* A restore under record or replay: the snapshot's state stream and its
 * memory file hashed into *o, which the recording's header keeps (a
 * replay refuses another snapshot). 0 or -errno with err. */
int vm_rr_origin(struct vm_origin *o, const void *state, size_t len, int mem_fd, char *err, size_t errlen);
/* A replay's file, read and checked, and its NICs (null backends), before
 * vm_open_backends. 0 or -errno with err. */
int vm_rr_open(struct vm *vm, char *err, size_t errlen);
/* A VM that failed to start: a replay's temporary disk overlays go. */
void vm_rr_cleanup(struct vm *vm);
/* After the backends: record creates the file with its header; replay
 * compares the header with this VM (version, configuration, images). */
int vm_rr_start(struct vm *vm, char *err, size_t errlen);
/* A new machine takes its inputs through the log. */
void vm_rr_attach(struct vm *vm, struct machine *m);
/* The run's end: record writes the file's end, replay compares (a
 * divergence becomes VM_END_ERROR with its message); logs the result. */
void vm_rr_finish(struct vm *vm, struct vm_exit *ex);
/* A replay's debugger goes back: a new machine as at the recording's
 * start (vm_build) and the log from its beginning; console output the
 * replay showed already is not shown again. 0 or -errno with err. */
int vm_rr_rewind(struct vm *vm, char *err, size_t errlen);
/* A replay's snapshots for its debugger: set up with the debugger (its
 * engine_debug's snap hook), freed with the VM. */
int vm_rr_snaps_init(struct vm *vm, struct engine_debug *d);
void vm_rr_snaps_free(struct vm *vm);
/* snapshot.c: a state written by vm_state_write into this VM's fresh
 * machine (its vCPUs into cpus), as a restore does. 0 or -EINVAL. */
int vm_state_load_into(struct vm *vm, const void *state, size_t len, struct engine_vcpu *cpus, char *err,
		       size_t errlen);

/* vm.c: the current machine goes (vm->m NULL). */
void vm_drop_machine(struct vm *vm);

/* debug.c: the debugger's table, at vm_destroy. */
void vm_debug_free(struct vm *vm);

/* build.c */
void vm_log(struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Disks, networks and the default guest; 0 or -errno with err. */
int vm_open_backends(struct vm *vm, char *err, size_t errlen);
void vm_close_backends(struct vm *vm);
/* The engine for cfg->engine: 0 or -errno with err. */
int vm_pick_engine(struct vm *vm, char *err, size_t errlen);
/* A new machine with the guest loaded and the devices added (vm->m,
 * vm->hvc, vm->bsp): 0 or -errno with err. */
int vm_build(struct vm *vm, char *err, size_t errlen);
/* A reset of the current machine in place (machine_reset) and the guest
 * loaded again: 0 or -errno with err. */
int vm_reboot(struct vm *vm, char *err, size_t errlen);

#endif
