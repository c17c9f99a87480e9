/* virtio-blk (virtio 1.2 §5.2) on a disk backend (backend/block.h):
 * read, write, flush, discard, write-zeroes and get-id, processed when the
 * driver notifies the queue; every sector range is checked against the
 * disk's size. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/block.h"
#include "virtio/virtio.h"

#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_ID_BYTES 20
#define SECTOR 512ull
#define BLK_HDR 16		/* type, reserved, sector */
#define BLK_MAX_ZERO (1u << 22) /* sectors per discard/write-zeroes segment: 2 GiB */

/* Device configuration (§5.2.4), little-endian on the only host we run. */
struct blk_config {
	uint64_t capacity;
	uint32_t size_max, seg_max;
	uint16_t cylinders;
	uint8_t heads, sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp, alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback, unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors, max_discard_seg, discard_sector_alignment;
	uint32_t max_write_zeroes_sectors, max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap, unused1[3];
} __attribute__((packed));
_Static_assert(sizeof(struct blk_config) == 60, "virtio-blk config layout");

struct vblk {
	struct virtio_dev v; /* first */
	struct blk *disk;
	struct blk_config cfg;
	char serial[VIRTIO_BLK_ID_BYTES];
	struct virtq_elem elem;
};

static void iov_to_buf(const struct iovec *iov, unsigned n, void *buf, size_t len)
{
	uint8_t *p = buf;
	for (unsigned i = 0; i < n && len; i++) {
		size_t l = iov[i].iov_len < len ? iov[i].iov_len : len;
		memcpy(p, iov[i].iov_base, l);
		p += l;
		len -= l;
	}
}

/* A transfer in batches the backend takes. */
static int disk_xfer(struct blk *d, uint64_t off, struct iovec *iov, int n, int write)
{
	while (n > 0) {
		int k = n < BLK_MAX_IOV ? n : BLK_MAX_IOV;
		uint64_t len = 0;
		for (int i = 0; i < k; i++)
			len += iov[i].iov_len;
		int r = write ? d->ops->writev(d, off, iov, k) : d->ops->readv(d, off, iov, k);
		if (r < 0)
			return r;
		off += len;
		iov += k;
		n -= k;
	}
	return 0;
}

/* Is [sector, sector + bytes / 512) on the disk? */
static int range_ok(const struct vblk *b, uint64_t sector, uint64_t bytes)
{
	uint64_t cap = b->cfg.capacity;
	return bytes % SECTOR == 0 && sector <= cap && bytes / SECTOR <= cap - sector;
}

/* Discard / write-zeroes segments (§5.2.6): sector, num_sectors, flags. */
static uint8_t blk_zero(struct vblk *b, const struct iovec *data, int nd, uint64_t dlen, int discard)
{
	uint8_t seg[16];
	uint64_t sector;
	uint32_t num, flags;
	if (b->disk->readonly)
		return VIRTIO_BLK_S_IOERR;
	/* max_*_seg is 1: exactly one segment */
	if (dlen != sizeof(seg))
		return VIRTIO_BLK_S_UNSUPP;
	iov_to_buf(data, (unsigned)nd, seg, sizeof(seg));
	memcpy(&sector, seg, 8);
	memcpy(&num, seg + 8, 4);
	memcpy(&flags, seg + 12, 4);
	/* flags: bit 0 is "unmap", meaningful for write-zeroes only */
	if ((flags & ~1u) || (discard && flags) || num > BLK_MAX_ZERO)
		return VIRTIO_BLK_S_UNSUPP;
	if (!range_ok(b, sector, (uint64_t)num * SECTOR))
		return VIRTIO_BLK_S_IOERR;
	int r;
	if (discard || (flags & 1))
		r = b->disk->ops->discard(b->disk, sector * SECTOR, (uint64_t)num * SECTOR); /* reads as zeroes */
	else
		r = b->disk->ops->write_zeroes(b->disk, sector * SECTOR, (uint64_t)num * SECTOR);
	return r < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

int virtio_blk_request(struct virtio_dev *v, struct virtq_elem *e, const char **why)
{
	struct vblk *b = (struct vblk *)v;
	static __thread struct iovec data[VIRTQ_MAX_SIZE];
	const struct iovec *out = e->iov, *in = e->iov + e->n_out;
	uint8_t hdr[BLK_HDR], *status;
	uint32_t type;
	uint64_t sector, dlen;
	uint32_t used = 0;
	int nd;

	/* §5.2.6: the status byte is the last device-writable byte */
	struct iovec st;
	if (e->in_len < 1 || blk_iov_slice(in, (int)e->n_in, e->in_len - 1, 1, &st, 1) != 1) {
		*why = "virtio-blk request without a status byte";
		return -EINVAL;
	}
	status = st.iov_base;
	if (e->out_len < BLK_HDR) {
		*status = VIRTIO_BLK_S_IOERR; /* short header */
		return 1;
	}
	iov_to_buf(out, e->n_out, hdr, BLK_HDR);
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);

	switch (type) {
	case VIRTIO_BLK_T_IN:
		dlen = e->in_len - 1;
		nd = blk_iov_slice(in, (int)e->n_in, 0, dlen, data, VIRTQ_MAX_SIZE);
		if (nd < 0 || !range_ok(b, sector, dlen)) {
			*status = VIRTIO_BLK_S_IOERR;
			break;
		}
		*status = disk_xfer(b->disk, sector * SECTOR, data, nd, 0) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
		if (*status == VIRTIO_BLK_S_OK)
			used = (uint32_t)dlen;
		break;
	case VIRTIO_BLK_T_OUT:
		dlen = e->out_len - BLK_HDR;
		nd = blk_iov_slice(out, (int)e->n_out, BLK_HDR, dlen, data, VIRTQ_MAX_SIZE);
		if (b->disk->readonly || nd < 0 || !range_ok(b, sector, dlen)) {
			*status = VIRTIO_BLK_S_IOERR;
			break;
		}
		*status = disk_xfer(b->disk, sector * SECTOR, data, nd, 1) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_FLUSH:
		/* durable before the used entry says so */
		*status = b->disk->ops->flush(b->disk) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		dlen = e->in_len - 1;
		uint64_t n = dlen < VIRTIO_BLK_ID_BYTES ? dlen : VIRTIO_BLK_ID_BYTES;
		nd = blk_iov_slice(in, (int)e->n_in, 0, n, data, VIRTQ_MAX_SIZE);
		const uint8_t *src = (const uint8_t *)b->serial;
		for (int i = 0; i < nd; i++) {
			memcpy(data[i].iov_base, src, data[i].iov_len);
			src += data[i].iov_len;
		}
		used = (uint32_t)n;
		*status = VIRTIO_BLK_S_OK;
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		dlen = e->out_len - BLK_HDR;
		nd = blk_iov_slice(out, (int)e->n_out, BLK_HDR, dlen, data, VIRTQ_MAX_SIZE);
		*status = nd < 0 ? VIRTIO_BLK_S_IOERR : blk_zero(b, data, nd, dlen, type == VIRTIO_BLK_T_DISCARD);
		break;
	default: *status = VIRTIO_BLK_S_UNSUPP; break;
	}
	return (int)(used + 1);
}

static void blk_notify(struct virtio_dev *v, unsigned qi)
{
	struct vblk *b = (struct vblk *)v;
	struct virtq *q = &v->s.q[qi];
	const char *why;
	int pushed = 0, r;
	while (virtio_queue_live(v, qi) && (r = virtq_pop(q, v->pci.m, &b->elem, &why)) != 0) {
		if (r < 0) {
			virtio_set_needs_reset(v, why);
			break;
		}
		r = virtio_blk_request(v, &b->elem, &why);
		if (r < 0) {
			virtio_set_needs_reset(v, why);
			break;
		}
		if (virtq_push(q, v->pci.m, b->elem.head, (uint32_t)r) < 0) {
			virtio_set_needs_reset(v, "used ring outside guest RAM");
			break;
		}
		pushed = 1;
	}
	if (pushed)
		virtio_queue_notify(v, qi);
}

static void blk_destroy(struct virtio_dev *v)
{
	free(v); /* the disk belongs to the caller */
}

int virtio_blk_create(struct machine *m, struct blk *disk, const char *serial, struct virtio_dev **out)
{
	struct vblk *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->disk = disk;
	/* §5.2.6: up to 20 bytes, NUL-terminated only when shorter */
	if (serial)
		memcpy(b->serial, serial, strnlen(serial, sizeof(b->serial)));
	b->cfg.capacity = disk->size / SECTOR;
	b->cfg.seg_max = VIRTQ_MAX_SIZE - 2; /* header and status take two */
	b->cfg.blk_size = SECTOR;
	b->cfg.num_queues = 1;
	b->v.host_features = 1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_FLUSH;
	if (disk->readonly) {
		b->v.host_features |= 1ull << VIRTIO_BLK_F_RO;
	} else {
		b->v.host_features |= 1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
		b->cfg.max_discard_sectors = BLK_MAX_ZERO;
		b->cfg.max_discard_seg = 1;
		b->cfg.discard_sector_alignment = 1;
		b->cfg.max_write_zeroes_sectors = BLK_MAX_ZERO;
		b->cfg.max_write_zeroes_seg = 1;
		b->cfg.write_zeroes_may_unmap = 1;
	}
	b->v.name = "virtio-blk";
	b->v.config = (uint8_t *)&b->cfg;
	b->v.config_len = sizeof(b->cfg);
	b->v.notify = blk_notify;
	b->v.destroy = blk_destroy;
	/* class 0x010000: mass storage, SCSI (what virtio-blk has always used) */
	int err = virtio_pci_init(&b->v, m, VIRTIO_ID_BLOCK, 0x010000, 1);
	if (err < 0) {
		free(b);
		return err;
	}
	if (out)
		*out = &b->v;
	return 0;
}
