/* The split virtqueue walker shared by every virtio device: reads the
 * driver's rings through gpa_ptr only, with every guest value checked. */
#include <errno.h>
#include <string.h>

#include "virtio/virtio.h"

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

/* Ring sizes (virtio 1.2 §2.7.2): desc 16*n, avail 6+2*n, used 6+8*n. */
static uint64_t avail_bytes(uint16_t n)
{
	return 6 + 2ull * n;
}

static uint64_t used_bytes(uint16_t n)
{
	return 6 + 8ull * n;
}

int virtq_check(const struct virtq *q, struct machine *m)
{
	if (q->size == 0 || q->size > VIRTQ_MAX_SIZE || (q->size & (q->size - 1)))
		return -EINVAL;
	/* §2.7: descriptor table 16-byte, avail 2-byte, used 4-byte aligned */
	if ((q->desc & 15) || (q->avail & 1) || (q->used & 3))
		return -EINVAL;
	if (!gpa_ptr(m, q->desc, 16ull * q->size) || !gpa_ptr(m, q->avail, avail_bytes(q->size)) ||
	    !gpa_ptr(m, q->used, used_bytes(q->size)))
		return -EINVAL;
	return 0;
}

/* Ring fields are read and written through gpa_ptr each time: cheap, and
 * nothing cached can go stale. A load/store of a naturally aligned field
 * of guest memory another vCPU may be writing is atomic. */
static int rd16(struct machine *m, uint64_t gpa, uint16_t *v)
{
	uint16_t *p = gpa_ptr(m, gpa, 2);
	if (!p)
		return -EFAULT;
	*v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
	return 0;
}

static int wr16(struct machine *m, uint64_t gpa, uint16_t v)
{
	uint16_t *p = gpa_ptr(m, gpa, 2);
	if (!p)
		return -EFAULT;
	gpa_dma_written(m, p, 2);
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
	return 0;
}

static int read_desc(struct machine *m, uint64_t table, unsigned i, struct vdesc *d)
{
	uint8_t raw[16];
	/* a copy: the guest may change the table while we look at it */
	if (gpa_read(m, table + 16ull * i, raw, 16) < 0)
		return -EFAULT;
	memcpy(&d->addr, raw, 8);
	memcpy(&d->len, raw + 8, 4);
	memcpy(&d->flags, raw + 12, 2);
	memcpy(&d->next, raw + 14, 2);
	return 0;
}

static int add_buf(struct virtq_elem *e, struct machine *m, const struct vdesc *d, const char **why)
{
	if (e->n_out + e->n_in >= VIRTQ_MAX_SIZE) {
		*why = "descriptor chain longer than the queue";
		return -EINVAL;
	}
	void *p = gpa_ptr(m, d->addr, d->len);
	if (!p) {
		*why = "descriptor buffer outside guest RAM";
		return -EINVAL;
	}
	if (d->flags & VIRTQ_DESC_F_WRITE) {
		/* The device writes it before the chain is pushed back, with
		 * no vCPU running in between (device work runs on the engine
		 * thread): code decoded from it is dropped now. */
		gpa_dma_written(m, p, d->len);
		e->in_len += d->len;
		e->n_in++;
	} else {
		/* §2.7.4.2: readable descriptors come before writable ones */
		if (e->n_in) {
			*why = "device-readable descriptor after a writable one";
			return -EINVAL;
		}
		e->out_len += d->len;
		e->n_out++;
	}
	e->iov[e->n_out + e->n_in - 1] = (struct iovec){p, d->len};
	return 0;
}

/* An indirect table (§2.7.5.3): its own chain, starting at entry 0. */
static int walk_indirect(struct virtq_elem *e, struct machine *m, const struct vdesc *ind, const char **why)
{
	if (ind->len == 0 || ind->len % 16 || ind->len / 16 > VIRTQ_MAX_SIZE) {
		*why = "bad indirect table length";
		return -EINVAL;
	}
	unsigned n = ind->len / 16, i = 0, count = 0;
	if (!gpa_ptr(m, ind->addr, ind->len)) {
		*why = "indirect table outside guest RAM";
		return -EINVAL;
	}
	for (;;) {
		struct vdesc d;
		/* §2.7.5.3.1: a chain visits each entry at most once, so more
		 * than n steps means a loop */
		if (++count > n) {
			*why = "loop in an indirect table";
			return -EINVAL;
		}
		if (read_desc(m, ind->addr, i, &d) < 0) {
			*why = "indirect table outside guest RAM";
			return -EINVAL;
		}
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			*why = "indirect descriptor inside an indirect table";
			return -EINVAL;
		}
		if (add_buf(e, m, &d, why) < 0)
			return -EINVAL;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= n) {
			*why = "indirect next index out of the table";
			return -EINVAL;
		}
		i = d.next;
	}
}

int virtq_pop(struct virtq *q, struct machine *m, struct virtq_elem *e, const char **why)
{
	uint16_t avail_idx, head;
	*why = "";
	if (rd16(m, q->avail + 2, &avail_idx) < 0) {
		*why = "avail ring outside guest RAM";
		return -EINVAL;
	}
	uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0 && q->event_idx) {
		/* EVENT_IDX (§2.7.10): tell the driver where to notify next, then
		 * look at the index again. The driver publishes its index, then
		 * reads avail_event (virtio 1.2 §2.7.13.3: with a full barrier);
		 * the device writes avail_event, then reads the index: one of the
		 * two sees the other's write. Without the second look, a buffer
		 * added while the first read was under way went unnoticed and
		 * unnotified (the driver read the avail_event of the previous
		 * pop), and a queue whose device and driver run at once (kvm,
		 * emu's multi-thread mode) stood still for good. */
		wr16(m, q->used + 4 + 8ull * q->size, q->last_avail);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (rd16(m, q->avail + 2, &avail_idx) < 0) {
			*why = "avail ring outside guest RAM";
			return -EINVAL;
		}
		pending = (uint16_t)(avail_idx - q->last_avail);
	}
	if (pending == 0)
		return 0;
	if (pending > q->size) {
		*why = "avail index moved by more than the queue size";
		return -EINVAL;
	}
	/* read the ring entry only after seeing the index (acquire above) */
	if (rd16(m, q->avail + 4 + 2ull * (q->last_avail % q->size), &head) < 0) {
		*why = "avail ring outside guest RAM";
		return -EINVAL;
	}
	if (head >= q->size) {
		*why = "avail ring entry out of the descriptor table";
		return -EINVAL;
	}
	e->head = head;
	e->n_out = e->n_in = 0;
	e->out_len = e->in_len = 0;

	unsigned i = head, count = 0;
	for (;;) {
		struct vdesc d;
		/* §2.7.5.3.1: no chain is longer than the queue; a loop is */
		if (++count > q->size) {
			*why = "descriptor chain loops or is longer than the queue";
			return -EINVAL;
		}
		if (read_desc(m, q->desc, i, &d) < 0) {
			*why = "descriptor table outside guest RAM";
			return -EINVAL;
		}
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* §2.7.5.3.1: not without the feature, not with NEXT */
			if (!q->indirect || (d.flags & VIRTQ_DESC_F_NEXT)) {
				*why = q->indirect ? "indirect descriptor with NEXT"
						   : "indirect descriptor not negotiated";
				return -EINVAL;
			}
			if (e->n_out + e->n_in) {
				*why = "indirect descriptor inside a chain";
				return -EINVAL;
			}
			if (walk_indirect(e, m, &d, why) < 0)
				return -EINVAL;
			break;
		}
		if (add_buf(e, m, &d, why) < 0)
			return -EINVAL;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		if (d.next >= q->size) {
			*why = "descriptor next index out of the table";
			return -EINVAL;
		}
		i = d.next;
	}
	q->last_avail++;
	if (q->event_idx)
		wr16(m, q->used + 4 + 8ull * q->size, q->last_avail);
	return 1;
}

int virtq_push(struct virtq *q, struct machine *m, uint16_t head, uint32_t len)
{
	uint8_t ent[8];
	uint32_t id = head;
	memcpy(ent, &id, 4);
	memcpy(ent + 4, &len, 4);
	if (gpa_write(m, q->used + 4 + 8ull * (q->used_idx % q->size), ent, 8) < 0)
		return -EFAULT;
	q->used_idx++;
	/* the entry is visible before the index that publishes it */
	return wr16(m, q->used + 2, q->used_idx);
}

int virtq_should_notify(struct virtq *q, struct machine *m)
{
	uint16_t old = q->signalled_used, now = q->used_idx, v;
	int valid = q->signalled_valid;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->signalled_used = now;
	q->signalled_valid = 1;
	if (q->event_idx) {
		/* §2.7.10: used_event sits after the avail ring */
		if (rd16(m, q->avail + 4 + 2ull * q->size, &v) < 0)
			return 1;
		return !valid || (uint16_t)(now - v - 1) < (uint16_t)(now - old);
	}
	if (rd16(m, q->avail, &v) < 0)
		return 1;
	return !(v & VIRTQ_AVAIL_F_NO_INTERRUPT);
}
