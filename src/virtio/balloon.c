/* virtio-balloon (virtio 1.2 §5.5): the driver inflates the balloon with
 * pages it gives up and the host takes them back; it deflates it to use
 * them again; it reports statistics and, with free page reporting, blocks
 * of free memory that the host may take back too. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "state/stream.h"
#include "virtio/virtio.h"

/* Feature bits (§5.5.3) */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ 1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_REPORTING 5

#define BALLOON_PFN_SHIFT 12	    /* §5.5.6: PFNs of 4096-byte pages */
#define BALLOON_PFNS_MAX (1u << 18) /* PFNs taken from one request (Linux sends 256) */
#define BALLOON_STAT_SIZE 10	    /* struct virtio_balloon_stat: le16 tag, le64 val */
#define BALLOON_STATS_MAX 64	    /* entries read from one statistics buffer */
#define BALLOON_STATS_S_MAX 86400u  /* a statistics interval of at most a day */
#define BALLOON_STATE_VERSION 1

/* What a queue is for: inflate and deflate come first, then the optional
 * queues that were negotiated, in order (Linux and QEMU number only the
 * queues that exist). */
enum bq { BQ_INFLATE, BQ_DEFLATE, BQ_STATS, BQ_REPORT, BQ_NONE };

struct balloon_config {
	uint32_t num_pages; /* the target, the device's */
	uint32_t actual;    /* the driver's */
	uint32_t free_page_hint_cmd_id, poison_val;
};

struct vballoon {
	struct virtio_dev v; /* first */
	struct balloon_config cfg;
	struct balloon_opts o;
	struct mtimer *stats_timer;
	int io_id;
	/* the statistics buffer the driver gave, held until we want more */
	int stats_held;
	uint16_t stats_head;
	/* Shared with other threads (the API): under lock. */
	pthread_mutex_t lock;
	uint32_t target;  /* set from any thread, taken to cfg on the machine's */
	unsigned stats_s; /* the interval */
	int interval_changed;
	uint32_t actual; /* a copy of cfg.actual */
	uint32_t have;
	uint64_t stat[BALLOON_NSTATS];
	uint64_t inflated, reported, ignored, deflated;
	struct virtq_elem elem;
};

static enum bq queue_role(const struct vballoon *b, unsigned q)
{
	uint64_t f = b->v.s.driver_features;
	if (q < 2)
		return q == 0 ? BQ_INFLATE : BQ_DEFLATE;
	q -= 2;
	if (f >> VIRTIO_BALLOON_F_STATS_VQ & 1) {
		if (q == 0)
			return BQ_STATS;
		q--;
	}
	if (f >> VIRTIO_BALLOON_F_REPORTING & 1 && q == 0)
		return BQ_REPORT;
	return BQ_NONE;
}

/* Gives back runs of adjacent pages at once: Linux hands out PFNs mostly
 * in ascending runs. */
struct run {
	uint8_t *start;
	uint64_t len;
};

static void run_flush(struct vballoon *b, struct run *r)
{
	if (r->len)
		machine_ram_discard(b->v.pci.m, r->start, r->len);
	r->len = 0;
}

static void run_add(struct vballoon *b, struct run *r, uint8_t *p, uint64_t len)
{
	if (r->len && r->start + r->len == p) {
		r->len += len;
		return;
	}
	run_flush(b, r);
	r->start = p;
	r->len = len;
}

/* Inflate or deflate: the out buffers are arrays of le32 PFNs. A PFN
 * outside RAM (past its end, in the PCI hole) is ignored. */
static void do_pfns(struct vballoon *b, struct virtq_elem *e, int inflate)
{
	struct run run = {0};
	uint64_t n = 0, bad = 0, done = 0;
	uint8_t part[4];
	unsigned have = 0;
	for (unsigned i = 0; i < e->n_out && n < BALLOON_PFNS_MAX; i++) {
		const uint8_t *p = e->iov[i].iov_base;
		for (size_t k = 0; k < e->iov[i].iov_len && n < BALLOON_PFNS_MAX; k++) {
			part[have++] = p[k]; /* a PFN may straddle two buffers */
			if (have < 4)
				continue;
			have = 0;
			n++;
			uint32_t pfn = (uint32_t)part[0] | (uint32_t)part[1] << 8 | (uint32_t)part[2] << 16 |
				       (uint32_t)part[3] << 24;
			uint8_t *h = gpa_ptr(b->v.pci.m, (uint64_t)pfn << BALLOON_PFN_SHIFT, 1u << BALLOON_PFN_SHIFT);
			if (!h) {
				bad++;
				continue;
			}
			done++;
			if (inflate)
				run_add(b, &run, h, 1u << BALLOON_PFN_SHIFT);
		}
	}
	run_flush(b, &run);
	pthread_mutex_lock(&b->lock);
	if (inflate)
		b->inflated += done;
	else
		b->deflated += done;
	b->ignored += bad;
	pthread_mutex_unlock(&b->lock);
}

/* Free page reporting (§5.5.6.7): device-writable buffers, each a block of
 * free guest memory (already checked to lie inside RAM). */
static void do_report(struct vballoon *b, struct virtq_elem *e)
{
	uint64_t pages = 0;
	for (unsigned i = e->n_out; i < e->n_out + e->n_in; i++) {
		uintptr_t s = (uintptr_t)e->iov[i].iov_base, end = s + e->iov[i].iov_len;
		s = (s + 0xfff) & ~(uintptr_t)0xfff; /* whole pages only */
		end &= ~(uintptr_t)0xfff;
		if (end > s && machine_ram_discard(b->v.pci.m, (void *)s, end - s) == 0)
			pages += (end - s) >> 12;
	}
	pthread_mutex_lock(&b->lock);
	b->reported += pages;
	pthread_mutex_unlock(&b->lock);
}

/* Statistics (§5.5.6.3): the out buffers hold 10-byte entries; unknown
 * tags are ignored, a partial entry at the end too. */
static void do_stats(struct vballoon *b, struct virtq_elem *e)
{
	uint8_t buf[BALLOON_STATS_MAX * BALLOON_STAT_SIZE];
	size_t len = 0;
	for (unsigned i = 0; i < e->n_out && len < sizeof(buf); i++) {
		size_t take = e->iov[i].iov_len;
		if (take > sizeof(buf) - len)
			take = sizeof(buf) - len;
		memcpy(buf + len, e->iov[i].iov_base, take);
		len += take;
	}
	pthread_mutex_lock(&b->lock);
	for (size_t k = 0; k + BALLOON_STAT_SIZE <= len; k += BALLOON_STAT_SIZE) {
		unsigned tag = buf[k] | (unsigned)buf[k + 1] << 8;
		uint64_t val = 0;
		for (int j = 7; j >= 0; j--)
			val = val << 8 | buf[k + 2 + j];
		if (tag < BALLOON_NSTATS) {
			b->stat[tag] = val;
			b->have |= 1u << tag;
		}
	}
	pthread_mutex_unlock(&b->lock);
}

static void push(struct vballoon *b, unsigned q, uint16_t head)
{
	if (virtq_push(&b->v.s.q[q], b->v.pci.m, head, 0) < 0)
		virtio_set_needs_reset(&b->v, "used ring outside guest RAM");
}

static void stats_arm(struct vballoon *b)
{
	pthread_mutex_lock(&b->lock);
	unsigned s = b->stats_s;
	pthread_mutex_unlock(&b->lock);
	if (b->stats_timer && s)
		mtimer_arm(b->stats_timer, clock_ns(b->v.pci.m) + (uint64_t)s * 1000000000ull);
}

void virtio_balloon_request(struct virtio_dev *v, unsigned q, struct virtq_elem *e)
{
	struct vballoon *b = (struct vballoon *)v;
	switch (queue_role(b, q)) {
	case BQ_INFLATE: do_pfns(b, e, 1); break;
	case BQ_DEFLATE: do_pfns(b, e, 0); break;
	case BQ_REPORT: do_report(b, e); break;
	case BQ_STATS:
		do_stats(b, e);
		/* keep the buffer: giving it back is how we ask for more
		 * (§5.5.6.3.1); a second one replaces the first */
		if (b->stats_held)
			push(b, q, b->stats_head);
		b->stats_head = e->head;
		b->stats_held = 1;
		stats_arm(b);
		return;
	case BQ_NONE: break;
	}
	push(b, q, e->head);
}

static void balloon_notify(struct virtio_dev *v, unsigned qi)
{
	struct vballoon *b = (struct vballoon *)v;
	struct virtq *q = &v->s.q[qi];
	const char *why;
	int k, pushed = 0;
	while (virtio_queue_live(v, qi) && (k = virtq_pop(q, v->pci.m, &b->elem, &why)) != 0) {
		if (k < 0) {
			virtio_set_needs_reset(v, why);
			break;
		}
		virtio_balloon_request(v, qi, &b->elem);
		pushed = 1;
	}
	if (pushed)
		virtio_queue_notify(v, qi);
}

/* The interval passed: give the statistics buffer back, the driver fills
 * it again and returns it. */
static void stats_tick(void *opaque)
{
	struct vballoon *b = opaque;
	unsigned q = 2; /* the statistics queue, when negotiated, is the third */
	if (!b->stats_held || queue_role(b, q) != BQ_STATS || !virtio_queue_live(&b->v, q))
		return;
	b->stats_held = 0;
	push(b, q, b->stats_head);
	virtio_queue_notify(&b->v, q);
}

/* The machine's thread: a new target or interval from another thread. */
static void balloon_io(void *opaque)
{
	struct vballoon *b = opaque;
	pthread_mutex_lock(&b->lock);
	uint32_t t = b->target;
	int ic = b->interval_changed;
	b->interval_changed = 0;
	pthread_mutex_unlock(&b->lock);
	if (t != b->cfg.num_pages) {
		b->cfg.num_pages = t;
		virtio_config_changed(&b->v);
	}
	if (ic && b->stats_held)
		stats_arm(b);
}

static void balloon_config_write(struct virtio_dev *v, unsigned off, unsigned size, uint64_t val)
{
	struct vballoon *b = (struct vballoon *)v;
	/* only 'actual' is the driver's (§5.5.4) */
	if (off != 4 || size != 4)
		return;
	b->cfg.actual = (uint32_t)val;
	pthread_mutex_lock(&b->lock);
	b->actual = b->cfg.actual;
	pthread_mutex_unlock(&b->lock);
}

static void balloon_reset(struct virtio_dev *v)
{
	struct vballoon *b = (struct vballoon *)v;
	/* the target stays (a rebooted guest inflates to it again); what
	 * the driver held is gone */
	b->cfg.actual = 0;
	b->stats_held = 0;
	if (b->stats_timer)
		mtimer_cancel(b->stats_timer);
	pthread_mutex_lock(&b->lock);
	b->actual = 0;
	pthread_mutex_unlock(&b->lock);
}

static void balloon_state_save(const struct virtio_dev *v, struct state_writer *w)
{
	struct vballoon *b = (struct vballoon *)v;
	pthread_mutex_lock(&b->lock);
	state_put_u32(w, b->target);
	state_put_u32(w, b->cfg.num_pages);
	state_put_u32(w, b->cfg.actual);
	state_put_u32(w, b->stats_s);
	state_put_bool(w, b->stats_held);
	state_put_u16(w, b->stats_head);
	state_put_u32(w, b->have);
	for (unsigned k = 0; k < BALLOON_NSTATS; k++)
		state_put_u64(w, b->stat[k]);
	state_put_u64(w, b->inflated);
	state_put_u64(w, b->reported);
	state_put_u64(w, b->ignored);
	state_put_u64(w, b->deflated);
	pthread_mutex_unlock(&b->lock);
}

static int balloon_state_load(struct virtio_dev *v, struct state_reader *r)
{
	struct vballoon *b = (struct vballoon *)v;
	uint32_t target = state_get_u32(r), num = state_get_u32(r), actual = state_get_u32(r);
	uint32_t stats_s = state_get_u32(r);
	int held = state_get_bool(r);
	uint16_t head = state_get_u16(r);
	uint32_t have = state_get_u32(r);
	uint64_t stat[BALLOON_NSTATS], cnt[4];
	for (unsigned k = 0; k < BALLOON_NSTATS; k++)
		stat[k] = state_get_u64(r);
	for (unsigned k = 0; k < 4; k++)
		cnt[k] = state_get_u64(r);
	if (!state_reader_ok(r))
		return -EINVAL;
	uint64_t pages = b->v.pci.m->mem_size >> BALLOON_PFN_SHIFT;
	if (target > pages || num > pages)
		state_fail(r, "virtio-balloon: a target of %u pages in a machine of %llu", target > num ? target : num,
			   (unsigned long long)pages);
	else if ((stats_s == 0) != (b->o.stats_s == 0) || stats_s > BALLOON_STATS_S_MAX)
		state_fail(r, "virtio-balloon: statistics every %u s, the configuration says %u s", stats_s,
			   b->o.stats_s);
	else if (have >> BALLOON_NSTATS)
		state_fail(r, "virtio-balloon: statistics tags 0x%x, at most %d known", have, BALLOON_NSTATS);
	else if (held &&
		 (!stats_s || !(b->v.s.driver_features >> VIRTIO_BALLOON_F_STATS_VQ & 1) || head >= b->v.s.q[2].size))
		state_fail(r, "virtio-balloon: a statistics buffer %u held, but no statistics queue has that entry",
			   head);
	if (!state_section_done(r))
		return -EINVAL;
	b->cfg.num_pages = num;
	b->cfg.actual = actual;
	b->stats_held = held;
	b->stats_head = head;
	pthread_mutex_lock(&b->lock);
	b->target = target;
	b->stats_s = stats_s;
	b->actual = actual;
	b->have = have;
	memcpy(b->stat, stat, sizeof(stat));
	b->inflated = cnt[0];
	b->reported = cnt[1];
	b->ignored = cnt[2];
	b->deflated = cnt[3];
	pthread_mutex_unlock(&b->lock);
	if (held)
		stats_arm(b);
	if (target != num) /* a change on its way to the driver */
		machine_io_request(b->v.pci.m, b->io_id);
	return 0;
}

static void balloon_destroy(struct virtio_dev *v)
{
	struct vballoon *b = (struct vballoon *)v;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

int virtio_balloon_create(struct machine *m, const struct balloon_opts *o, struct virtio_dev **out)
{
	if (o->stats_s > BALLOON_STATS_S_MAX || o->target_pages > m->mem_size >> BALLOON_PFN_SHIFT)
		return -EINVAL;
	struct vballoon *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	pthread_mutex_init(&b->lock, NULL);
	b->o = *o;
	b->target = b->cfg.num_pages = o->target_pages;
	b->stats_s = o->stats_s;
	unsigned nq = 2;
	if (o->stats_s) {
		b->v.host_features |= 1ull << VIRTIO_BALLOON_F_STATS_VQ;
		nq++;
	}
	if (o->deflate_on_oom)
		b->v.host_features |= 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (o->reporting) {
		b->v.host_features |= 1ull << VIRTIO_BALLOON_F_REPORTING;
		nq++;
	}
	b->v.name = "virtio-balloon";
	b->v.config = (uint8_t *)&b->cfg;
	b->v.config_len = sizeof(b->cfg);
	b->v.notify = balloon_notify;
	b->v.reset = balloon_reset;
	b->v.destroy = balloon_destroy;
	b->v.config_write = balloon_config_write;
	b->v.state_name = "balloon";
	b->v.state_version = BALLOON_STATE_VERSION;
	b->v.state_save = balloon_state_save;
	b->v.state_load = balloon_state_load;
	int err = -ENOSPC;
	if (o->stats_s && !(b->stats_timer = mtimer_new(m, stats_tick, b)))
		goto err_free;
	if ((err = machine_io_register(m, balloon_io, b)) < 0)
		goto err_free;
	b->io_id = err;
	/* class 0x058000: other memory controller */
	if ((err = virtio_pci_init(&b->v, m, VIRTIO_ID_BALLOON, 0x058000, nq)) < 0)
		goto err_free;
	if (out)
		*out = &b->v;
	return 0;

err_free:
	pthread_mutex_destroy(&b->lock);
	free(b);
	return err;
}

void virtio_balloon_set_target(struct virtio_dev *v, uint32_t pages)
{
	struct vballoon *b = (struct vballoon *)v;
	uint64_t max = v->pci.m->mem_size >> BALLOON_PFN_SHIFT;
	pthread_mutex_lock(&b->lock);
	b->target = pages > max ? (uint32_t)max : pages;
	pthread_mutex_unlock(&b->lock);
	machine_io_request(v->pci.m, b->io_id);
}

int virtio_balloon_set_stats_interval(struct virtio_dev *v, unsigned s)
{
	struct vballoon *b = (struct vballoon *)v;
	if (!b->o.stats_s || !s || s > BALLOON_STATS_S_MAX)
		return -EINVAL;
	pthread_mutex_lock(&b->lock);
	b->stats_s = s;
	b->interval_changed = 1;
	pthread_mutex_unlock(&b->lock);
	machine_io_request(v->pci.m, b->io_id);
	return 0;
}

void virtio_balloon_get(struct virtio_dev *v, struct balloon_info *bi)
{
	struct vballoon *b = (struct vballoon *)v;
	pthread_mutex_lock(&b->lock);
	*bi = (struct balloon_info){.target_pages = b->target,
				    .actual_pages = b->actual,
				    .stats_s = b->stats_s,
				    .have = b->have,
				    .inflated = b->inflated,
				    .reported = b->reported,
				    .ignored = b->ignored,
				    .deflated = b->deflated};
	memcpy(bi->stat, b->stat, sizeof(bi->stat));
	pthread_mutex_unlock(&b->lock);
}
