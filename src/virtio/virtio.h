/* virtio 1.x devices over PCI (modern transport only): one split-queue
 * walker for every device, the PCI transport (common/notify/ISR/device
 * configuration structures in a BAR, MSI-X with an INTx fallback), and the
 * devices: blk, net, rng, console and balloon.
 *
 * The guest owns the rings: every address and length in them goes through
 * gpa_ptr, chains are capped, and anything malformed puts the device in
 * DEVICE_NEEDS_RESET (logged once) instead of touching host memory. */
#ifndef CORRAL_VIRTIO_H
#define CORRAL_VIRTIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "machine/machine_impl.h"

struct state_writer;
struct state_reader;

/* ---- Feature bits and status (virtio 1.2 §2.1, §6) ---- */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80
#define VIRTIO_MSI_NO_VECTOR 0xffff

/* ---- Split virtqueues (virtio 1.2 §2.7) ---- */
#define VIRTQ_MAX_SIZE 256 /* queue size offered; also the longest chain */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

struct virtq {
	uint64_t desc, avail, used; /* guest-physical ring addresses */
	uint16_t size;		    /* entries, a power of two <= VIRTQ_MAX_SIZE */
	uint16_t ready;
	uint16_t msix_vector;
	uint16_t last_avail;	 /* next avail ring entry to take */
	uint16_t used_idx;	 /* our copy of used->idx */
	uint16_t signalled_used; /* used_idx at the last interrupt (EVENT_IDX) */
	uint8_t signalled_valid;
	uint8_t event_idx, indirect; /* negotiated features */
	uint8_t pad[3];
};

/* One request: the device-readable buffers, then the device-writable
 * ones, as host pointers checked against guest RAM. */
struct virtq_elem {
	uint16_t head;
	unsigned n_out, n_in;
	uint64_t out_len, in_len;
	struct iovec iov[VIRTQ_MAX_SIZE];
};

/* The queue's rings are inside guest RAM and aligned (§2.7): 0 or -EINVAL. */
int virtq_check(const struct virtq *q, struct machine *m);
/* Takes the next available chain into *e: 1, 0 when the ring is empty, or
 * -EINVAL for a malformed ring or chain, with *why saying what. */
int virtq_pop(struct virtq *q, struct machine *m, struct virtq_elem *e, const char **why);
/* Returns a chain to the driver; len is the bytes written into it. */
int virtq_push(struct virtq *q, struct machine *m, uint16_t head, uint32_t len);
/* Should the driver be interrupted for what was pushed (EVENT_IDX or
 * VIRTQ_AVAIL_F_NO_INTERRUPT)? Records the decision. */
int virtq_should_notify(struct virtq *q, struct machine *m);

/* ---- The PCI transport ---- */
#define VIRTIO_MAX_QUEUES 4
#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + device type: modern-only IDs */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_BALLOON 5

struct virtio_state {
	uint64_t driver_features;
	uint32_t dev_feature_sel, drv_feature_sel;
	uint16_t config_msix, queue_sel;
	uint8_t status, config_gen, isr, pad;
	struct virtq q[VIRTIO_MAX_QUEUES];
};

struct virtio_dev {
	struct pci_dev pci; /* first: the PCI hooks get back here */
	struct virtio_state s;
	const char *name;
	uint64_t host_features;
	unsigned nq;
	uint8_t *config; /* device configuration structure, read-only to the guest */
	unsigned config_len;
	int broken_logged;
	unsigned cfg_cap; /* offset of the PCI configuration access capability */
	/* The device's work: the driver notified queue q. */
	void (*notify)(struct virtio_dev *v, unsigned q);
	void (*reset)(struct virtio_dev *v);
	void (*destroy)(struct virtio_dev *v);
	/* Optional: the driver wrote size bytes at off of the device
	 * configuration (NULL: it is read-only). */
	void (*config_write)(struct virtio_dev *v, unsigned off, unsigned size, uint64_t val);
	/* Optional: the device's own state beyond the transport's, in a
	 * section of its own (state_name, state_version) after "virtio". */
	const char *state_name;
	uint32_t state_version;
	void (*state_save)(const struct virtio_dev *v, struct state_writer *w);
	int (*state_load)(struct virtio_dev *v, struct state_reader *r);
};

/* Sets up the PCI function (IDs, capabilities, BARs, MSI-X) for a device
 * of the given type with nq queues, and plugs it into bus 0. */
int virtio_pci_init(struct virtio_dev *v, struct machine *m, unsigned type, uint32_t pci_class, unsigned nq);
/* The device configuration changed: a new generation, and the driver's
 * configuration change interrupt (virtio 1.2 §4.1.4.5). */
void virtio_config_changed(struct virtio_dev *v);
/* The device finished work on queue q: interrupt the driver if it wants. */
void virtio_queue_notify(struct virtio_dev *v, unsigned q);
/* Marks the device broken (DEVICE_NEEDS_RESET, config interrupt), logging
 * why once; it then ignores its queues until the driver resets it. */
void virtio_set_needs_reset(struct virtio_dev *v, const char *why);
/* Is queue q live (driver OK, queue enabled, device not broken)? */
int virtio_queue_live(const struct virtio_dev *v, unsigned q);
/* Guest register access to the BAR holding the virtio structures (tests). */
uint64_t virtio_bar_read(void *opaque, uint64_t off, unsigned size);
void virtio_bar_write(void *opaque, uint64_t off, unsigned size, uint64_t val);
/* The transport and queue state in the state stream's form (the PCI
 * function goes in a section of its own, pci_dev_state_save). */
void virtio_state_save(const struct virtio_dev *v, struct state_writer *w);
/* The virtio device behind a PCI function, or NULL if it is none. */
struct virtio_dev *virtio_from_pci(struct pci_dev *d);
int virtio_state_load(struct virtio_dev *v, struct state_reader *r);

/* Layout of the virtio BAR (BAR 4, 64-bit) and the MSI-X BAR (BAR 1). */
#define VIRTIO_BAR 4
#define VIRTIO_BAR_SIZE 0x4000
#define VIRTIO_COMMON_OFF 0x0000
#define VIRTIO_ISR_OFF 0x1000
#define VIRTIO_DEVCFG_OFF 0x2000
#define VIRTIO_NOTIFY_OFF 0x3000
#define VIRTIO_NOTIFY_MULT 4
#define VIRTIO_MSIX_BAR 1

/* ---- Devices ---- */
struct blk;
/* virtio-blk on an open disk (not closed by the device); serial may be
 * NULL. The device lives until the machine is destroyed. */
int virtio_blk_create(struct machine *m, struct blk *disk, const char *serial, struct virtio_dev **out);
/* Puts another open disk of the same size and read-only flag under the
 * device (a snapshot's new overlay), while no request is in flight (the
 * VM paused). The old disk is the caller's to close, before or after (the
 * device does not look at it again). 0 or -EINVAL. */
int virtio_blk_set_disk(struct virtio_dev *v, struct blk *disk);
struct rate_limit;
/* The device's requests take their tokens from rl (backend/ratelimit.h:
 * the bytes read and written, one operation per request) before they run,
 * waiting on the thread that runs the device; NULL: no limit. rl outlives
 * the device. */
void virtio_blk_set_rate(struct virtio_dev *v, struct rate_limit *rl);
/* One virtio-blk request (exposed for tests and fuzzing): writes the status
 * byte and returns the used length, or -EINVAL (with *why) when the chain
 * has no status byte to report in. */
int virtio_blk_request(struct virtio_dev *v, struct virtq_elem *e, const char **why);
/* virtio-net on an open network backend (not closed by the device), with
 * the given MAC address. */
struct net;
int virtio_net_create(struct machine *m, struct net *be, const uint8_t mac[6], struct virtio_dev **out);
/* The MAC address in the device's configuration space: what the driver
 * reads when it probes (Linux's virtio_net reads it there once; a running
 * interface keeps the address it read). */
void virtio_net_get_mac(const struct virtio_dev *v, uint8_t mac[6]);
void virtio_net_set_mac(struct virtio_dev *v, const uint8_t mac[6]);
/* virtio-rng: host getrandom() into the guest's buffers. */
int virtio_rng_create(struct machine *m, struct virtio_dev **out);
/* virtio-console, one port (the guest's hvc0): its output goes to out_fd
 * (-1: dropped); virtio_console_receive hands it host input and returns
 * how many bytes the guest had buffers for (none before the guest first
 * wrote to the port: until then its driver may still drop input). */
int virtio_console_create(struct machine *m, int out_fd, struct virtio_dev **out);
size_t virtio_console_receive(struct virtio_dev *v, const uint8_t *buf, size_t n);

/* virtio-balloon (virtio 1.2 §5.5): inflated and reported pages go back to
 * the host (machine_ram_discard); statistics every stats_s seconds. */
struct balloon_opts {
	int deflate_on_oom; /* VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
	unsigned stats_s;   /* 0: no statistics queue */
	int reporting;	    /* VIRTIO_BALLOON_F_REPORTING: free page reporting */
	uint32_t target_pages;
};
/* The statistics tags (§5.5.6.3), VIRTIO_BALLOON_S_SWAP_IN .. _HTLB_PGFAIL. */
#define BALLOON_NSTATS 10
struct balloon_info {
	uint32_t target_pages, actual_pages; /* num_pages, and the driver's actual */
	unsigned stats_s;
	uint32_t have; /* bit per tag the driver reported */
	uint64_t stat[BALLOON_NSTATS];
	/* pages given back to the host: inflated, reported; PFNs ignored
	 * (outside RAM), pages deflated */
	uint64_t inflated, reported, ignored, deflated;
};
int virtio_balloon_create(struct machine *m, const struct balloon_opts *o, struct virtio_dev **out);
/* Any thread: a new target (the driver is told on the machine's thread),
 * a new statistics interval (0 < s, only when the device has the queue:
 * else -EINVAL), and what the device knows. */
void virtio_balloon_set_target(struct virtio_dev *v, uint32_t pages);
int virtio_balloon_set_stats_interval(struct virtio_dev *v, unsigned s);
void virtio_balloon_get(struct virtio_dev *v, struct balloon_info *bi);
/* One request of queue q (0 inflate, 1 deflate, then statistics and
 * reporting as negotiated), exposed for tests and fuzzing. */
void virtio_balloon_request(struct virtio_dev *v, unsigned q, struct virtq_elem *e);

#endif
