/* virtio-rng (virtio 1.2 §5.4): fills the driver's buffers from the host's
 * getrandom(), or a replay's log. */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "machine/replay.h"
#include "virtio/virtio.h"

#define RNG_MAX_REQ 65536 /* bytes per request: a guest cannot make us spin */

struct vrng {
	struct virtio_dev v; /* first */
	struct virtq_elem elem;
};

/* Through the record/replay log (machine/replay.h), which draws from the
 * host's getrandom() unless a replay hands back the recorded bytes. */
static uint32_t rng_fill(struct machine *m, struct virtq_elem *e)
{
	uint32_t done = 0;
	for (unsigned i = e->n_out; i < e->n_out + e->n_in && done < RNG_MAX_REQ; i++) {
		uint8_t *p = e->iov[i].iov_base;
		size_t want = e->iov[i].iov_len;
		if (want > RNG_MAX_REQ - done)
			want = RNG_MAX_REQ - done;
		if (replay_random(m, p, want) < 0)
			return done; /* hand back what we have */
		done += (uint32_t)want;
	}
	return done;
}

static void rng_notify(struct virtio_dev *v, unsigned qi)
{
	struct vrng *r = (struct vrng *)v;
	struct virtq *q = &v->s.q[qi];
	const char *why;
	int pushed = 0, k;
	while (virtio_queue_live(v, qi) && (k = virtq_pop(q, v->pci.m, &r->elem, &why)) != 0) {
		if (k < 0) {
			virtio_set_needs_reset(v, why);
			break;
		}
		if (virtq_push(q, v->pci.m, r->elem.head, rng_fill(v->pci.m, &r->elem)) < 0) {
			virtio_set_needs_reset(v, "used ring outside guest RAM");
			break;
		}
		pushed = 1;
	}
	if (pushed)
		virtio_queue_notify(v, qi);
}

static void rng_destroy(struct virtio_dev *v)
{
	free(v);
}

int virtio_rng_create(struct machine *m, struct virtio_dev **out)
{
	struct vrng *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->v.name = "virtio-rng";
	r->v.notify = rng_notify;
	r->v.destroy = rng_destroy;
	/* class 0xff0000: unclassified device */
	int err = virtio_pci_init(&r->v, m, VIRTIO_ID_RNG, 0xff0000, 1);
	if (err < 0) {
		free(r);
		return err;
	}
	if (out)
		*out = &r->v;
	return 0;
}
