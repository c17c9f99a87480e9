/* Fuzz entries for what a guest controls in virtio: the queue walker over
 * arbitrary rings, and virtio-blk driven through its PCI transport with
 * arbitrary rings and requests on an in-memory disk. Included by the
 * libFuzzer targets (fuzz_virtq.c, fuzz_blk.c) and by t_virtio_regress.c,
 * which replays the seeds in every test build.
 *
 * Input: byte 0 = log2 of the queue size, byte 1 = feature/variant flags,
 * the rest = guest RAM from address 0 (rings at 0, 0x1000, 0x2000;
 * buffers and indirect tables wherever the descriptors say). */
#ifndef CORRAL_FUZZ_VIRTIO_H
#define CORRAL_FUZZ_VIRTIO_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/block.h"
#include "devstate.h"
#include "virtio/virtio.h"

#define FZ_MEM (2u << 20)
#define FZ_DESC 0x0
#define FZ_AVAIL 0x1000
#define FZ_USED 0x2000
#define FZ_DISK_SECTORS 64

static inline struct machine *fz_machine(void)
{
	struct machine *m = NULL;
	struct machine_config cfg = {.mem_size = FZ_MEM, .ncpus = 1, .serial_out_fd = -1, .rtc_host_sec = 1700000000};
	if (machine_create(&m, &cfg) < 0)
		abort();
	m->clock_manual = 1;
	return m;
}

static inline void fz_load_ram(struct machine *m, const uint8_t *data, size_t size)
{
	if (size > FZ_MEM)
		size = FZ_MEM;
	memcpy(gpa_ptr(m, 0, FZ_MEM), data, size);
}

/* Every buffer the walker hands out must be inside guest RAM. */
static inline void fz_check_elem(struct machine *m, const struct virtq_elem *e)
{
	const uint8_t *ram = gpa_ptr(m, 0, FZ_MEM);
	if (e->n_out + e->n_in > VIRTQ_MAX_SIZE)
		abort();
	for (unsigned i = 0; i < e->n_out + e->n_in; i++) {
		const uint8_t *p = e->iov[i].iov_base;
		if (e->iov[i].iov_len && (p < ram || p + e->iov[i].iov_len > ram + FZ_MEM))
			abort();
	}
}

static inline int fuzz_virtq_one(const uint8_t *data, size_t size)
{
	static struct virtq_elem e;
	if (size < 2)
		return 0;
	struct machine *m = fz_machine();
	fz_load_ram(m, data + 2, size - 2);
	struct virtq q = {.desc = FZ_DESC,
			  .avail = FZ_AVAIL,
			  .used = FZ_USED,
			  .size = (uint16_t)(1u << (data[0] % 9)),
			  .ready = 1,
			  .event_idx = data[1] & 1,
			  .indirect = !!(data[1] & 2)};
	if (virtq_check(&q, m) == 0) {
		for (int k = 0; k < 2 * VIRTQ_MAX_SIZE; k++) {
			const char *why;
			int r = virtq_pop(&q, m, &e, &why);
			if (r < 0 && (!why || !*why))
				abort(); /* a failure always says why */
			if (r <= 0)
				break;
			fz_check_elem(m, &e);
			virtq_push(&q, m, e.head, (uint32_t)e.in_len);
			(void)virtq_should_notify(&q, m);
		}
	}
	machine_destroy(m);
	return 0;
}

/* ---- virtio-blk through the transport, on a disk in memory ---- */

struct fz_disk {
	struct blk b;
	uint8_t data[FZ_DISK_SECTORS * 512];
};

static inline int fz_xfer(struct blk *b, uint64_t off, const struct iovec *iov, int n, int write)
{
	struct fz_disk *d = (struct fz_disk *)b;
	if (n < 0 || n > BLK_MAX_IOV)
		abort(); /* the device must batch as the backends require */
	for (int i = 0; i < n; i++) {
		/* the device must never ask for bytes past the disk */
		if (off > b->size || iov[i].iov_len > b->size - off)
			abort();
		if (write)
			memcpy(d->data + off, iov[i].iov_base, iov[i].iov_len);
		else
			memcpy(iov[i].iov_base, d->data + off, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return 0;
}

static inline int fz_readv(struct blk *b, uint64_t off, const struct iovec *iov, int n)
{
	return fz_xfer(b, off, iov, n, 0);
}

static inline int fz_writev(struct blk *b, uint64_t off, const struct iovec *iov, int n)
{
	if (b->readonly)
		abort();
	return fz_xfer(b, off, iov, n, 1);
}

static inline int fz_flush(struct blk *b)
{
	(void)b;
	return 0;
}

static inline int fz_zero(struct blk *b, uint64_t off, uint64_t len)
{
	struct fz_disk *d = (struct fz_disk *)b;
	if (b->readonly || off > b->size || len > b->size - off)
		abort();
	memset(d->data + off, 0, len);
	return 0;
}

static inline void fz_close(struct blk *b)
{
	(void)b;
}

/* not concurrent: two transfers may write the same bytes of data */
static const struct blk_ops fz_disk_ops = {fz_readv, fz_writev, fz_flush, fz_zero, fz_zero, fz_close, 0};

static inline void fz_wr(struct machine *m, uint64_t bar, unsigned off, unsigned size, uint64_t val)
{
	bus_mmio_write(m, bar + off, size, val);
}

/* The driver's side of feature negotiation, as Linux does it, with the
 * optional ring features from flags (bit 0 EVENT_IDX, bit 1 INDIRECT_DESC)
 * or, with bit 2, every feature whether offered or not. */
static inline void fz_negotiate(struct machine *m, struct virtio_dev *v, uint64_t bar, uint8_t flags)
{
	uint64_t feat = v->host_features & ~(1ull << VIRTIO_F_EVENT_IDX | 1ull << VIRTIO_F_INDIRECT_DESC);
	if (flags & 1)
		feat |= 1ull << VIRTIO_F_EVENT_IDX;
	if (flags & 2)
		feat |= 1ull << VIRTIO_F_INDIRECT_DESC;
	if (flags & 4)
		feat = ~0ull; /* a driver taking what was not offered */
	fz_wr(m, bar, 0x14, 1, 0);
	fz_wr(m, bar, 0x14, 1, 3);
	fz_wr(m, bar, 0x08, 4, 0);
	fz_wr(m, bar, 0x0c, 4, (uint32_t)feat);
	fz_wr(m, bar, 0x08, 4, 1);
	fz_wr(m, bar, 0x0c, 4, (uint32_t)(feat >> 32));
	fz_wr(m, bar, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK);
}

static inline int fuzz_blk_one(const uint8_t *data, size_t size)
{
	static struct fz_disk disk;
	struct virtio_dev *v;
	if (size < 2)
		return 0;
	struct machine *m = fz_machine();
	disk.b = (struct blk){
		.ops = &fz_disk_ops, .format = BLK_FMT_RAW, .size = sizeof(disk.data) + 100, .readonly = data[1] >> 7};
	disk.b.size = sizeof(disk.data); /* whole sectors */
	if (virtio_blk_create(m, &disk.b, "fuzz", &v) < 0)
		abort();
	fz_load_ram(m, data + 2, size - 2);
	/* the driver's side, as Linux does it, with features from the input */
	uint64_t bar = v->pci.bar[VIRTIO_BAR].mapped_at;
	fz_negotiate(m, v, bar, data[1]);
	if (data[1] & 8) { /* MSI-X on, with vectors */
		unsigned cap = v->pci.msix_cap;
		pci_cfg_write(&v->pci, cap + 2, 2, PCI_MSIX_ENABLE);
		fz_wr(m, bar, 0x10, 2, 0);
	}
	fz_wr(m, bar, 0x16, 2, 0);
	fz_wr(m, bar, 0x1a, 2, 1);
	fz_wr(m, bar, 0x18, 2, (uint16_t)(1u << (data[0] % 10)));
	fz_wr(m, bar, 0x20, 8, FZ_DESC);
	fz_wr(m, bar, 0x28, 8, FZ_AVAIL);
	fz_wr(m, bar, 0x30, 8, FZ_USED);
	fz_wr(m, bar, 0x1c, 2, 1);
	fz_wr(m, bar, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	fz_wr(m, bar, VIRTIO_NOTIFY_OFF, 2, 0);
	fz_wr(m, bar, VIRTIO_NOTIFY_OFF, 2, 0);
	(void)bus_mmio_read(m, bar + VIRTIO_ISR_OFF, 1);
	if (data[1] & 16) { /* a snapshot of the device, reloaded */
		static struct devstate ps, vs;
		DEVSTATE_SAVE(&ps, pci_dev_state_save, &v->pci);
		DEVSTATE_SAVE(&vs, virtio_state_save, v);
		if (!ps.ok || !vs.ok || DEVSTATE_LOAD(pci_dev_state_load, &v->pci, ps.b, ps.n) < 0 ||
		    DEVSTATE_LOAD(virtio_state_load, v, vs.b, vs.n) < 0)
			abort();
		fz_wr(m, bar, VIRTIO_NOTIFY_OFF, 2, 0);
	}
	machine_destroy(m);
	return 0;
}

/* ---- virtio-net through the transport, on a backend in memory ---- */

#include "backend/net_impl.h"

static inline int fz_net_send(struct net *n, const struct iovec *iov, int iovcnt)
{
	const struct machine *m = n->be;
	const uint8_t *ram = m->ram;
	size_t total = 0;
	if (iovcnt < 0 || iovcnt > VIRTQ_MAX_SIZE)
		abort();
	for (int i = 0; i < iovcnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		/* frames handed to a backend lie inside guest RAM, Ethernet-sized */
		if (iov[i].iov_len && (p < ram || p + iov[i].iov_len > ram + FZ_MEM))
			abort();
		total += iov[i].iov_len;
	}
	if (total < 14 || total > NET_FRAME_MAX)
		abort();
	return 0;
}

static inline void fz_net_stop(struct net *n)
{
	(void)n;
}

/* Sets up a driver as Linux does (features from flags), with the receive
 * and transmit queues on the same rings, frames waiting for the guest made
 * from the input, then notifies both queues and runs the receive work. */
static inline int fuzz_net_one(const uint8_t *data, size_t size)
{
	struct virtio_dev *v;
	if (size < 2)
		return 0;
	struct machine *m = fz_machine();
	struct net *be = calloc(1, sizeof(*be));
	if (!be)
		abort();
	pthread_mutex_init(&be->qlock, NULL);
	be->send = fz_net_send;
	be->stop = fz_net_stop;
	be->be = m;
	static const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
	if (virtio_net_create(m, be, mac, &v) < 0)
		abort();
	fz_load_ram(m, data + 2, size - 2);
	/* frames for the guest: how many from the input's flags, contents from RAM */
	static const unsigned lens[4] = {60, 1514, 14, 9000};
	const uint8_t *ram = gpa_ptr(m, 0, FZ_MEM);
	for (unsigned k = 0; k < (data[1] >> 5); k++)
		net_queue_frame(be, ram + 0x4000 * k, lens[k % 4]);
	uint64_t bar = v->pci.bar[VIRTIO_BAR].mapped_at;
	fz_negotiate(m, v, bar, data[1]);
	for (unsigned q = 0; q < 2; q++) {
		fz_wr(m, bar, 0x16, 2, q);
		fz_wr(m, bar, 0x18, 2, (uint16_t)(1u << (data[0] % 10)));
		fz_wr(m, bar, 0x20, 8, FZ_DESC);
		fz_wr(m, bar, 0x28, 8, FZ_AVAIL);
		fz_wr(m, bar, 0x30, 8, FZ_USED);
		fz_wr(m, bar, 0x1c, 2, 1);
	}
	fz_wr(m, bar, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	fz_wr(m, bar, VIRTIO_NOTIFY_OFF + VIRTIO_NOTIFY_MULT, 2, 1); /* transmit */
	fz_wr(m, bar, VIRTIO_NOTIFY_OFF, 2, 0);			     /* receive buffers */
	machine_io_run(m);
	(void)bus_mmio_read(m, bar + VIRTIO_ISR_OFF, 1);
	if (data[1] & 16) { /* a snapshot of the device, reloaded */
		static struct devstate ps, vs;
		DEVSTATE_SAVE(&ps, pci_dev_state_save, &v->pci);
		DEVSTATE_SAVE(&vs, virtio_state_save, v);
		if (!ps.ok || !vs.ok || DEVSTATE_LOAD(pci_dev_state_load, &v->pci, ps.b, ps.n) < 0 ||
		    DEVSTATE_LOAD(virtio_state_load, v, vs.b, vs.n) < 0)
			abort();
		fz_wr(m, bar, VIRTIO_NOTIFY_OFF, 2, 0);
	}
	machine_destroy(m);
	net_close(be);
	return 0;
}

#endif
