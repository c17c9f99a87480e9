/* Live migration of a system VM (emu engine): pre-copy of guest RAM while
 * the guest runs, then a short stop to send the pages written last with
 * every vCPU and device in the snapshot format. docs/migration.md is the
 * design and the wire format.
 *
 * Contract:
 * - migrate_start connects to the destination (tcp:HOST:PORT or
 *   unix:PATH) and moves vm on a thread of its own; migrate_get reports
 *   progress at any time. On success the destination runs the VM and vm is
 *   stopped (it ends with VM_END_QUIT). On any failure (no connection, a
 *   refused or broken stream, a destination that dies or does not answer)
 *   the VM keeps running here as before, and the error is one line.
 * - The destination side, vm_incoming, takes one connection, checks
 *   everything it reads (sizes, versions, checksums: the stream is hostile
 *   input), builds the VM and tells the source it runs only once the
 *   source has let go of it.
 * - One migration per VM at a time; migrate_free waits for the thread. */
#ifndef CORRAL_VM_MIGRATE_H
#define CORRAL_VM_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

struct vm;
struct vm_config;
struct migration;

#define MIGRATE_DOWNTIME_DEFAULT_MS 300 /* as QEMU's and Cloud Hypervisor's */
#define MIGRATE_DOWNTIME_MAX_MS 60000
#define MIGRATE_URL_MAX 1024

enum migrate_state {
	MIGRATE_SETUP,	    /* connecting */
	MIGRATE_ACTIVE,	    /* pre-copy rounds while the guest runs */
	MIGRATE_COMPLETING, /* the guest stands; the rest, the devices, the switch */
	MIGRATE_COMPLETED,  /* the destination runs the VM */
	MIGRATE_FAILED,	    /* the VM runs on here; error says why */
};

struct migrate_params {
	const char *url;      /* tcp:HOST:PORT or unix:PATH */
	unsigned downtime_ms; /* the stop may last this long; 0: the default */
	int no_auto_converge; /* never throttle the vCPUs */
	unsigned max_rounds;  /* pre-copy rounds before the stop regardless; 0: 30 */
	int copy_disks;	      /* send the disks' contents too (no shared storage) */
	int compress;	      /* page and disk data as zstd frames where that is smaller */
};

struct migrate_status {
	enum migrate_state state;
	unsigned iteration;	/* pre-copy rounds done */
	uint64_t ram_total;	/* bytes of guest RAM */
	uint64_t ram_remaining; /* bytes dirty, still to send */
	uint64_t bytes_sent;	/* on the wire so far */
	uint64_t pages_sent, zero_pages;
	uint64_t dirty_rate;	       /* bytes the guest dirtied per second, last round */
	uint64_t bandwidth;	       /* bytes per second the link took, last round */
	uint64_t expected_downtime_ms; /* if the stop came now */
	uint64_t downtime_ms;	       /* completed: how long the guest stood */
	uint64_t total_ms;	       /* since the start */
	unsigned throttle_pct;	       /* auto-converge: share of time the vCPUs are held */
	uint64_t disk_total;	       /* copy_disks: bytes of the disks */
	uint64_t disk_remaining;       /* copy_disks: bytes dirty or not yet sent */
	uint64_t disk_sent;	       /* copy_disks: disk bytes on the wire (zero chunks as a marker) */
	char error[512];	       /* failed: one line */
	char warning[256];	       /* what the move will not carry (open user-network connections) */
};

const char *migrate_state_name(enum migrate_state s);
/* 0 and *out (the thread runs), or -errno with one line in err (a bad
 * URL, an engine that cannot migrate, no VM running). */
int migrate_start(struct vm *vm, const struct migrate_params *p, struct migration **out, char *err, size_t errlen);
void migrate_get(struct migration *m, struct migrate_status *st);
/* 1 while the migration's thread works. */
int migrate_busy(struct migration *m);
void migrate_free(struct migration *m);

/* The destination: waits on url for one incoming VM and builds it (not
 * yet running: vm_run it). overrides as for vm_restore (the host side;
 * disk paths when it names as many disks). Disks the source copies
 * (copy_disks) are written into new images at those paths, else at the
 * source's paths; an existing file is never replaced, and the new images
 * are removed again if the VM does not run here. 0 and *out, or -errno with one
 * line in err. */
int vm_incoming(const char *url, const struct vm_config *overrides, struct vm **out, char *err, size_t errlen);
/* vm_incoming in two steps (corral run --incoming defer, PUT
 * /migrate/incoming): migrate_listen binds url and listens (the socket, or
 * -errno with one line in err); vm_incoming_on waits on that socket (it
 * closes it) and goes on as vm_incoming. */
int migrate_listen(const char *url, char *err, size_t errlen);
int vm_incoming_on(int listen_fd, const char *url, const struct vm_config *overrides, struct vm **out, char *err,
		   size_t errlen);

/* The stream parser alone (the fuzzer's entry): reads from fd up to and
 * including the device state, into a memory file of at most max_mem bytes
 * of RAM, answering the source's sync records on reply_fd (-1: not at
 * all). 0 with *mem_fd (the RAM), *state and *state_len (malloc'd), or
 * -errno with one line in err. */
int migrate_recv_stream(int fd, int reply_fd, uint64_t max_mem, int *mem_fd, void **state, size_t *state_len, char *err,
			size_t errlen);

#endif
