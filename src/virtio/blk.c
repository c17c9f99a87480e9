/* virtio-blk (virtio 1.2 §5.2) on a disk backend (backend/block.h):
 * read, write, flush, discard, write-zeroes and get-id, processed when the
 * driver notifies the queue, all done before the notification returns (the
 * transfers of one notification on several threads where the backend
 * allows); every sector range is checked against the disk's size. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "backend/block.h"
#include "backend/ratelimit.h"
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

/* What a parsed request still has to do on the disk (DONE: nothing; its
 * status is known). */
enum blk_op { BLK_OP_DONE, BLK_OP_READ, BLK_OP_WRITE, BLK_OP_FLUSH, BLK_OP_DISCARD, BLK_OP_ZEROES };

/* One request, parsed from its chain. Workers write only st, used and the
 * guest's data buffers; the status byte goes to the guest when the request
 * is pushed, from the thread that runs the device. */
struct blk_req {
	uint8_t *status; /* in guest memory */
	uint8_t op, st;
	uint32_t used;	   /* bytes written into the chain, status excluded */
	uint64_t off, len; /* bytes of the disk */
	int nd;
	struct iovec data[VIRTQ_MAX_SIZE];
};

/* Chains taken from the ring at once: their transfers may overlap in time. */
#define BLK_BATCH 32
/* Helper threads of one device (the device's own thread works too); created
 * when a batch first has that many transfers to share, joined at destroy. */
#define BLK_WORKERS 4

/* Runs one segment of a batch on several threads: each takes the next
 * request not yet taken until none is left. */
struct blk_pool {
	pthread_mutex_t lock;
	pthread_cond_t go, idle;
	pthread_t thread[BLK_WORKERS];
	unsigned nthreads;
	struct blk *disk;
	struct blk_req *req; /* the segment */
	unsigned next, count, busy;
	int quit;
};

struct vblk {
	struct virtio_dev v; /* first */
	struct blk *disk;
	struct blk_config cfg;
	char serial[VIRTIO_BLK_ID_BYTES];
	struct blk_pool pool;
	struct rate_limit *rate; /* NULL: none */
	struct virtq_elem elem[BLK_BATCH];
	struct blk_req req[BLK_BATCH];
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

/* A read or write of r->data at sector, if the range is on the disk. */
static void blk_parse_xfer(const struct vblk *b, struct blk_req *r, uint64_t sector, uint64_t dlen, int write)
{
	if ((write && b->disk->readonly) || r->nd < 0 || !range_ok(b, sector, dlen))
		return;
	r->op = write ? BLK_OP_WRITE : BLK_OP_READ;
	r->off = sector * SECTOR;
	r->len = dlen;
}

/* Discard / write-zeroes segments (§5.2.6): sector, num_sectors, flags. */
static void blk_parse_zero(const struct vblk *b, struct blk_req *r, uint64_t dlen, int discard)
{
	uint8_t seg[16];
	uint64_t sector;
	uint32_t num, flags;
	if (b->disk->readonly || r->nd < 0)
		return;
	/* max_*_seg is 1: exactly one segment */
	if (dlen != sizeof(seg)) {
		r->st = VIRTIO_BLK_S_UNSUPP;
		return;
	}
	iov_to_buf(r->data, (unsigned)r->nd, seg, sizeof(seg));
	memcpy(&sector, seg, 8);
	memcpy(&num, seg + 8, 4);
	memcpy(&flags, seg + 12, 4);
	/* flags: bit 0 is "unmap", meaningful for write-zeroes only */
	if ((flags & ~1u) || (discard && flags) || num > BLK_MAX_ZERO) {
		r->st = VIRTIO_BLK_S_UNSUPP;
		return;
	}
	if (!range_ok(b, sector, (uint64_t)num * SECTOR))
		return;
	/* a discarded range reads as zeroes, so unmap may discard */
	r->op = discard || (flags & 1) ? BLK_OP_DISCARD : BLK_OP_ZEROES;
	r->off = sector * SECTOR;
	r->len = (uint64_t)num * SECTOR;
}

/* Checks and decodes the chain e into r, doing what needs no disk (get-id,
 * errors): 0, or -EINVAL (with *why) when the chain has no status byte to
 * report in. */
static int blk_parse(const struct vblk *b, struct virtq_elem *e, struct blk_req *r, const char **why)
{
	const struct iovec *out = e->iov, *in = e->iov + e->n_out;
	uint8_t hdr[BLK_HDR];
	uint32_t type;
	uint64_t sector, dlen;

	r->op = BLK_OP_DONE;
	r->st = VIRTIO_BLK_S_IOERR;
	r->used = 0;
	r->nd = 0;
	/* §5.2.6: the status byte is the last device-writable byte */
	struct iovec st;
	if (e->in_len < 1 || blk_iov_slice(in, (int)e->n_in, e->in_len - 1, 1, &st, 1) != 1) {
		*why = "virtio-blk request without a status byte";
		return -EINVAL;
	}
	r->status = st.iov_base;
	if (e->out_len < BLK_HDR)
		return 0; /* short header: IOERR */
	iov_to_buf(out, e->n_out, hdr, BLK_HDR);
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);

	switch (type) {
	case VIRTIO_BLK_T_IN:
		dlen = e->in_len - 1;
		r->nd = blk_iov_slice(in, (int)e->n_in, 0, dlen, r->data, VIRTQ_MAX_SIZE);
		blk_parse_xfer(b, r, sector, dlen, 0);
		break;
	case VIRTIO_BLK_T_OUT:
		dlen = e->out_len - BLK_HDR;
		r->nd = blk_iov_slice(out, (int)e->n_out, BLK_HDR, dlen, r->data, VIRTQ_MAX_SIZE);
		blk_parse_xfer(b, r, sector, dlen, 1);
		break;
	case VIRTIO_BLK_T_FLUSH: r->op = BLK_OP_FLUSH; break;
	case VIRTIO_BLK_T_GET_ID: {
		dlen = e->in_len - 1;
		uint64_t n = dlen < VIRTIO_BLK_ID_BYTES ? dlen : VIRTIO_BLK_ID_BYTES;
		int nd = blk_iov_slice(in, (int)e->n_in, 0, n, r->data, VIRTQ_MAX_SIZE);
		const uint8_t *src = (const uint8_t *)b->serial;
		for (int i = 0; i < nd; i++) {
			memcpy(r->data[i].iov_base, src, r->data[i].iov_len);
			src += r->data[i].iov_len;
		}
		r->used = (uint32_t)n;
		r->st = VIRTIO_BLK_S_OK;
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		dlen = e->out_len - BLK_HDR;
		r->nd = blk_iov_slice(out, (int)e->n_out, BLK_HDR, dlen, r->data, VIRTQ_MAX_SIZE);
		blk_parse_zero(b, r, dlen, type == VIRTIO_BLK_T_DISCARD);
		break;
	default: r->st = VIRTIO_BLK_S_UNSUPP; break;
	}
	return 0;
}

/* The disk work of a parsed request; on any thread for transfers on a
 * backend with concurrent_xfer. */
static void blk_exec(struct blk *d, struct blk_req *r)
{
	int rc;
	switch (r->op) {
	case BLK_OP_READ: rc = disk_xfer(d, r->off, r->data, r->nd, 0); break;
	case BLK_OP_WRITE: rc = disk_xfer(d, r->off, r->data, r->nd, 1); break;
	/* durable before the used entry says so */
	case BLK_OP_FLUSH: rc = d->ops->flush(d); break;
	case BLK_OP_DISCARD: rc = d->ops->discard(d, r->off, r->len); break;
	case BLK_OP_ZEROES: rc = d->ops->write_zeroes(d, r->off, r->len); break;
	default: return;
	}
	/* a failed write may have changed part of the range too */
	if (r->op != BLK_OP_FLUSH && r->op != BLK_OP_READ)
		blk_dirty_mark(d, r->off, r->len);
	r->st = rc < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	if (rc >= 0 && r->op == BLK_OP_READ)
		r->used = (uint32_t)r->len;
}

/* Reports r in its status byte: the used length. */
static uint32_t blk_finish(const struct blk_req *r)
{
	*r->status = r->st;
	return r->used + 1;
}

/* Takes the tokens of n parsed requests: data bytes of reads and writes
 * (Firecracker counts those), one operation each. */
static void blk_throttle(struct vblk *b, const struct blk_req *req, unsigned n)
{
	if (!b->rate || !n)
		return;
	uint64_t bytes = 0;
	for (unsigned i = 0; i < n; i++)
		if (req[i].op == BLK_OP_READ || req[i].op == BLK_OP_WRITE)
			bytes += req[i].len;
	rate_limit_wait(b->rate, bytes, n);
}

int virtio_blk_request(struct virtio_dev *v, struct virtq_elem *e, const char **why)
{
	struct vblk *b = (struct vblk *)v;
	static __thread struct blk_req r;
	if (blk_parse(b, e, &r, why) < 0)
		return -EINVAL;
	blk_throttle(b, &r, 1);
	blk_exec(b->disk, &r);
	return (int)blk_finish(&r);
}

/* ---- several requests at once ---- */

static void *blk_worker(void *arg)
{
	struct blk_pool *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->quit && p->next == p->count)
			pthread_cond_wait(&p->go, &p->lock);
		if (p->quit)
			break;
		struct blk_req *r = &p->req[p->next++];
		p->busy++;
		pthread_mutex_unlock(&p->lock);
		blk_exec(p->disk, r);
		pthread_mutex_lock(&p->lock);
		if (--p->busy == 0 && p->next == p->count)
			pthread_cond_signal(&p->idle);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Up to want helper threads, if there are fewer; as many as could be
 * started (a failure leaves more work to the device's thread). They take
 * no signals: those are for the threads that run the vCPUs. */
static void blk_pool_grow(struct blk_pool *p, unsigned want)
{
	sigset_t all, old;
	if (want > BLK_WORKERS)
		want = BLK_WORKERS;
	if (p->nthreads >= want)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (p->nthreads < want && pthread_create(&p->thread[p->nthreads], NULL, blk_worker, p) == 0) {
		pthread_setname_np(p->thread[p->nthreads], "corral-blk");
		p->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Runs the n requests of seg (transfers and DONEs) at once, the calling
 * thread taking its share; returns when all are done. */
static void blk_pool_run(struct blk_pool *p, struct blk_req *seg, unsigned n)
{
	unsigned xfers = 0;
	for (unsigned i = 0; i < n; i++)
		xfers += seg[i].op != BLK_OP_DONE;
	if (xfers > 1)
		blk_pool_grow(p, xfers - 1);
	if (xfers < 2 || p->nthreads == 0) {
		for (unsigned i = 0; i < n; i++)
			blk_exec(p->disk, &seg[i]);
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->req = seg;
	p->next = 0;
	p->count = n;
	for (unsigned k = 0; k < xfers - 1 && k < p->nthreads; k++)
		pthread_cond_signal(&p->go);
	while (p->next < p->count) {
		struct blk_req *r = &p->req[p->next++];
		p->busy++;
		pthread_mutex_unlock(&p->lock);
		blk_exec(p->disk, r);
		pthread_mutex_lock(&p->lock);
		p->busy--;
	}
	while (p->busy)
		pthread_cond_wait(&p->idle, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

static void blk_pool_destroy(struct blk_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->quit = 1;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->thread[i], NULL);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->idle);
	pthread_mutex_destroy(&p->lock);
}

/* Must r wait for the writes in seg[0..n) (or seg's reads, if r writes)?
 * The spec orders nothing between requests in flight, but a guest that
 * sends both may well expect the order it sent them in, so overlapping
 * ranges run one after the other. */
static int blk_conflicts(const struct blk_req *seg, unsigned n, const struct blk_req *r)
{
	if (r->op == BLK_OP_DONE)
		return 0;
	for (unsigned i = 0; i < n; i++)
		if (seg[i].op != BLK_OP_DONE && (seg[i].op == BLK_OP_WRITE || r->op == BLK_OP_WRITE) &&
		    seg[i].off < r->off + r->len && r->off < seg[i].off + seg[i].len)
			return 1;
	return 0;
}

/* The disk work of a batch, as if one after the other in order: on a
 * backend whose transfers may run concurrently, runs of reads and writes
 * that do not overlap go to the pool together; flush, discard and
 * write-zeroes wait for what came before and hold back what comes after. */
static void blk_run_batch(struct vblk *b, struct blk_req *req, unsigned n)
{
	if (!b->disk->ops->concurrent_xfer) {
		for (unsigned i = 0; i < n; i++)
			blk_exec(b->disk, &req[i]);
		return;
	}
	unsigned i = 0;
	while (i < n) {
		unsigned j = i + 1;
		if (req[i].op <= BLK_OP_WRITE)
			while (j < n && req[j].op <= BLK_OP_WRITE && !blk_conflicts(req + i, j - i, &req[j]))
				j++;
		blk_pool_run(&b->pool, req + i, j - i);
		i = j;
	}
}

/* Takes up to BLK_BATCH chains, runs them (see blk_run_batch), and
 * returns them in the order taken, until the ring is empty. A malformed
 * chain stops it: the chains taken before it are still completed and
 * returned, then the device needs a reset (the bad chain is never
 * returned: it may have nowhere to say so). */
static void blk_notify(struct virtio_dev *v, unsigned qi)
{
	struct vblk *b = (struct vblk *)v;
	struct virtq *q = &v->s.q[qi];
	const char *why, *broken = NULL;
	int pushed = 0, r = 1;
	while (!broken && r && virtio_queue_live(v, qi)) {
		unsigned n = 0;
		while (n < BLK_BATCH && (r = virtq_pop(q, v->pci.m, &b->elem[n], &why)) != 0) {
			if (r < 0 || blk_parse(b, &b->elem[n], &b->req[n], &why) < 0) {
				broken = why;
				break;
			}
			n++;
		}
		blk_throttle(b, b->req, n);
		blk_run_batch(b, b->req, n);
		for (unsigned i = 0; i < n; i++) {
			if (virtq_push(q, v->pci.m, b->elem[i].head, blk_finish(&b->req[i])) < 0) {
				broken = "used ring outside guest RAM";
				break;
			}
			pushed = 1;
		}
	}
	if (broken)
		virtio_set_needs_reset(v, broken);
	if (pushed)
		virtio_queue_notify(v, qi);
}

static void blk_destroy(struct virtio_dev *v)
{
	struct vblk *b = (struct vblk *)v;
	blk_pool_destroy(&b->pool);
	free(b); /* the disk belongs to the caller */
}

int virtio_blk_set_disk(struct virtio_dev *v, struct blk *disk)
{
	struct vblk *b = (struct vblk *)v;
	/* what the guest was told, not the old disk: it may be closed already */
	int ro = !!(b->v.host_features & (1ull << VIRTIO_BLK_F_RO));
	if (disk->size / SECTOR != b->cfg.capacity || !disk->readonly != !ro)
		return -EINVAL;
	/* the pool's workers wait for a batch: none runs while the VM is paused */
	pthread_mutex_lock(&b->pool.lock);
	b->disk = disk;
	b->pool.disk = disk;
	pthread_mutex_unlock(&b->pool.lock);
	return 0;
}

void virtio_blk_set_rate(struct virtio_dev *v, struct rate_limit *rl)
{
	((struct vblk *)v)->rate = rl;
}

int virtio_blk_create(struct machine *m, struct blk *disk, const char *serial, struct virtio_dev **out)
{
	struct vblk *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->disk = disk;
	b->pool.disk = disk;
	pthread_mutex_init(&b->pool.lock, NULL);
	pthread_cond_init(&b->pool.go, NULL);
	pthread_cond_init(&b->pool.idle, NULL);
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
		blk_pool_destroy(&b->pool);
		free(b);
		return err;
	}
	if (out)
		*out = &b->v;
	return 0;
}
