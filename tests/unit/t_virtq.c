/* The virtqueue walker against good and hostile rings (descriptors outside
 * RAM, lengths that wrap, loops, chains longer than the queue, indirect
 * tables inside indirect tables, a bad avail index), and the PCI transport
 * driven like a guest driver: feature negotiation, queue setup, MSI-X, and
 * a malformed ring putting the device in DEVICE_NEEDS_RESET; virtio-console
 * (rng and console are small enough to test here). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devstate.h"
#include "testhelp.h"
#include "virtio/virtio.h"

#define MEM (16ull << 20)
#define QSZ 8
#define DESC 0x10000ull
#define AVAIL 0x11000ull
#define USED 0x12000ull
#define BUF 0x20000ull
#define IND 0x30000ull

static struct machine *mk(void)
{
	struct machine *m = NULL;
	struct machine_config cfg = {.mem_size = MEM, .ncpus = 1, .serial_out_fd = -1};
	if (machine_create(&m, &cfg) < 0)
		return NULL;
	return m;
}

static void set_desc(struct machine *m, uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t d[16];
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	gpa_write(m, table + 16ull * i, d, 16);
}

static void put16(struct machine *m, uint64_t gpa, uint16_t v)
{
	gpa_write(m, gpa, &v, 2);
}

static uint16_t get16(struct machine *m, uint64_t gpa)
{
	uint16_t v = 0;
	gpa_read(m, gpa, &v, 2);
	return v;
}

/* A fresh queue and rings; avail entry 0 -> head */
static void q_init(struct machine *m, struct virtq *q, uint16_t head, uint16_t avail_idx)
{
	memset(gpa_ptr(m, DESC, 0x30000), 0, 0x30000);
	*q = (struct virtq){.desc = DESC, .avail = AVAIL, .used = USED, .size = QSZ, .ready = 1, .indirect = 1};
	put16(m, AVAIL + 4, head);
	put16(m, AVAIL + 2, avail_idx);
}

static struct virtq_elem elem;

static int pop(struct machine *m, struct virtq *q, const char **why)
{
	return virtq_pop(q, m, &elem, why);
}

static void test_good_chain(void)
{
	struct machine *m = mk();
	struct virtq q;
	const char *why;
	CHECK(m != NULL);
	if (!m)
		return;
	q_init(m, &q, 3, 1);
	CHECK(virtq_check(&q, m) == 0);
	set_desc(m, DESC, 3, BUF, 16, VIRTQ_DESC_F_NEXT, 5);
	set_desc(m, DESC, 5, BUF + 512, 100, VIRTQ_DESC_F_NEXT, 6);
	set_desc(m, DESC, 6, BUF + 1024, 1, VIRTQ_DESC_F_WRITE, 0);
	CHECK_EQ_U64(pop(m, &q, &why), 1);
	CHECK_EQ_U64(elem.head, 3);
	CHECK_EQ_U64(elem.n_out, 2);
	CHECK_EQ_U64(elem.n_in, 1);
	CHECK_EQ_U64(elem.out_len, 116);
	CHECK_EQ_U64(elem.in_len, 1);
	CHECK(elem.iov[0].iov_base == gpa_ptr(m, BUF, 16));
	CHECK(elem.iov[2].iov_base == gpa_ptr(m, BUF + 1024, 1));
	CHECK_EQ_U64(pop(m, &q, &why), 0); /* empty */
	CHECK(virtq_push(&q, m, 3, 1) == 0);
	CHECK_EQ_U64(get16(m, USED + 2), 1);
	uint32_t id = 0, len = 0;
	gpa_read(m, USED + 4, &id, 4);
	gpa_read(m, USED + 8, &len, 4);
	CHECK(id == 3 && len == 1);
	CHECK(virtq_should_notify(&q, m));
	put16(m, AVAIL, 1); /* VIRTQ_AVAIL_F_NO_INTERRUPT */
	CHECK(!virtq_should_notify(&q, m));

	/* an indirect table: 2 readable, 1 writable */
	put16(m, AVAIL + 4 + 2, 0);
	put16(m, AVAIL + 2, 2);
	set_desc(m, DESC, 0, IND, 48, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(m, IND, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(m, IND, 2, BUF + 64, 8, VIRTQ_DESC_F_NEXT, 1);
	set_desc(m, IND, 1, BUF + 128, 4, VIRTQ_DESC_F_WRITE, 0);
	CHECK_EQ_U64(pop(m, &q, &why), 1);
	CHECK(elem.n_out == 2 && elem.n_in == 1 && elem.out_len == 24 && elem.in_len == 4);
	machine_destroy(m);
}

static void test_event_idx(void)
{
	struct machine *m = mk();
	struct virtq q;
	const char *why;
	CHECK(m != NULL);
	if (!m)
		return;
	q_init(m, &q, 0, 1);
	q.event_idx = 1;
	set_desc(m, DESC, 0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
	CHECK_EQ_U64(pop(m, &q, &why), 1);
	CHECK_EQ_U64(get16(m, USED + 4 + 8 * QSZ), 1); /* avail_event: notify me at 1 */
	virtq_push(&q, m, 0, 1);
	put16(m, AVAIL + 4 + 2 * QSZ, 5);  /* used_event: the driver wants an interrupt at 5 */
	CHECK(virtq_should_notify(&q, m)); /* first: always */
	virtq_push(&q, m, 0, 1);
	CHECK(!virtq_should_notify(&q, m)); /* used 2, event 5 */
	for (int k = 0; k < 4; k++)
		virtq_push(&q, m, 0, 1);
	CHECK(virtq_should_notify(&q, m)); /* used went 2 -> 6, past 5 */
	machine_destroy(m);
}

/* A driver and a device on two threads, as under kvm or emu's multi-thread
 * mode, with EVENT_IDX: the driver adds buffers and notifies only when
 * avail_event asks it to (Linux's virtqueue_kick_prepare: publish the
 * index, full barrier, read avail_event); the device, once notified, pops
 * until virtq_pop says the ring is empty. No notification may be lost:
 * every buffer is used. A device that wrote avail_event without looking at
 * the index again after a full barrier left buffers behind unnotified. */
#define RACE_BUFS 200000u
#define RACE_STALL_NS 2000000000ull

struct race {
	struct machine *m;
	struct virtq q;
	unsigned kicks_pending; /* the doorbell: atomic */
	unsigned stop;		/* atomic */
	unsigned idle;		/* atomic: the device found the ring empty and waits for a kick */
	uint64_t used;		/* buffers the device used */
};

static uint64_t race_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *race_device(void *arg)
{
	struct race *r = arg;
	struct virtq_elem e;
	const char *why;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		if (!__atomic_load_n(&r->kicks_pending, __ATOMIC_ACQUIRE))
			continue;
		/* busy before the kick is taken: never idle with none pending
		 * while there is work */
		__atomic_store_n(&r->idle, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&r->kicks_pending, 0, __ATOMIC_SEQ_CST);
		int k;
		while ((k = virtq_pop(&r->q, r->m, &e, &why)) == 1) {
			virtq_push(&r->q, r->m, e.head, 0);
			r->used++;
		}
		if (k < 0)
			break;
		__atomic_store_n(&r->idle, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* A lost notification: the device waits for a kick with none pending
 * (it saw the ring empty) and the used index stayed where it was for
 * RACE_STALL_NS. A device thread that a loaded host just did not run is
 * not one: it was kicked, or it was in the middle of its work. *t0 and
 * *last: the time and used index of the last progress. */
static int race_stalled(struct race *r, const uint16_t *used_idx, uint64_t *t0, uint16_t *last)
{
	uint16_t u = __atomic_load_n(used_idx, __ATOMIC_ACQUIRE);
	uint64_t now = race_now();
	if (!*t0 || u != *last || !__atomic_load_n(&r->idle, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&r->kicks_pending, __ATOMIC_ACQUIRE)) {
		*t0 = now;
		*last = u;
		return 0;
	}
	return now - *t0 > RACE_STALL_NS;
}

static void test_notify_race(void)
{
	struct race r = {.m = mk(), .idle = 1};
	CHECK(r.m != NULL);
	if (!r.m)
		return;
	q_init(r.m, &r.q, 0, 0);
	r.q.event_idx = 1;
	r.q.indirect = 0;
	for (unsigned i = 0; i < QSZ; i++)
		set_desc(r.m, DESC, i, BUF, 1, 0, 0);
	uint16_t *avail_idx = gpa_ptr(r.m, AVAIL + 2, 2), *used_idx = gpa_ptr(r.m, USED + 2, 2);
	uint16_t *avail_event = gpa_ptr(r.m, USED + 4 + 8 * QSZ, 2);
	pthread_t dev;
	if (pthread_create(&dev, NULL, race_device, &r)) {
		TEST_SKIP("cannot start a thread");
		machine_destroy(r.m);
		return;
	}
	uint16_t idx = 0;
	unsigned stalled = 0;
	for (unsigned n = 0; n < RACE_BUFS && !stalled; n++) {
		/* room in the ring: wait for the device (it was notified of
		 * everything it has not used, or the test has found the bug) */
		uint64_t t0 = 0;
		uint16_t last = 0;
		while ((uint16_t)(idx - __atomic_load_n(used_idx, __ATOMIC_ACQUIRE)) >= QSZ) {
			if (race_stalled(&r, used_idx, &t0, &last)) {
				stalled = 1;
				break;
			}
		}
		if (stalled)
			break;
		put16(r.m, AVAIL + 4 + 2 * (idx % QSZ), (uint16_t)(idx % QSZ));
		uint16_t old = idx++;
		__atomic_store_n(avail_idx, idx, __ATOMIC_RELEASE);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		uint16_t ev = __atomic_load_n(avail_event, __ATOMIC_ACQUIRE);
		if ((uint16_t)(idx - ev - 1) < (uint16_t)(idx - old)) /* vring_need_event */
			__atomic_store_n(&r.kicks_pending, 1, __ATOMIC_RELEASE);
	}
	/* the last buffers: used without another notification */
	uint64_t t0 = 0;
	uint16_t last = 0;
	while (!stalled && __atomic_load_n(used_idx, __ATOMIC_ACQUIRE) != idx)
		stalled = race_stalled(&r, used_idx, &t0, &last);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(dev, NULL);
	if (stalled || (uint16_t)r.used != idx)
		fprintf(stderr, "  the device stood still: %llu of %u buffers used (a notification lost)\n",
			(unsigned long long)r.used, (unsigned)idx);
	CHECK(!stalled);
	CHECK_EQ_U64(r.used & 0xffff, idx);
	machine_destroy(r.m);
}

/* One hostile ring: pop must fail with a reason, and nothing crashes. */
static void expect_bad(struct machine *m, struct virtq *q, const char *what)
{
	const char *why = NULL;
	int r = pop(m, q, &why);
	if (r != -EINVAL)
		fprintf(stderr, "  %s: pop returned %d\n", what, r);
	CHECK_EQ_U64(r, -EINVAL);
	CHECK(why && *why);
}

static void test_hostile(void)
{
	struct machine *m = mk();
	struct virtq q;
	CHECK(m != NULL);
	if (!m)
		return;

	q_init(m, &q, 0, 1); /* buffer beyond RAM */
	set_desc(m, DESC, 0, MEM - 8, 16, 0, 0);
	expect_bad(m, &q, "out of RAM");
	q_init(m, &q, 0, 1); /* buffer in the MMIO hole */
	set_desc(m, DESC, 0, MEM_LAPIC_BASE, 16, 0, 0);
	expect_bad(m, &q, "lapic");
	q_init(m, &q, 0, 1); /* addr + len wraps */
	set_desc(m, DESC, 0, UINT64_MAX - 4, 0x1000, 0, 0);
	expect_bad(m, &q, "wrap");
	q_init(m, &q, 0, 1); /* loop 0 -> 1 -> 0 */
	set_desc(m, DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	set_desc(m, DESC, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
	expect_bad(m, &q, "loop");
	q_init(m, &q, 0, 1); /* self loop */
	set_desc(m, DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
	expect_bad(m, &q, "self loop");
	q_init(m, &q, 0, 1); /* next out of the table */
	set_desc(m, DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT, QSZ);
	expect_bad(m, &q, "next");
	q_init(m, &q, QSZ, 1); /* head out of the table */
	expect_bad(m, &q, "head");
	q_init(m, &q, 0, QSZ + 1); /* avail idx ran ahead by more than the queue */
	set_desc(m, DESC, 0, BUF, 1, 0, 0);
	expect_bad(m, &q, "avail idx");
	q_init(m, &q, 0, 0xffff); /* ... or went backwards */
	expect_bad(m, &q, "avail idx back");
	q_init(m, &q, 0, 1); /* writable before readable */
	set_desc(m, DESC, 0, BUF, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(m, DESC, 1, BUF, 1, 0, 0);
	expect_bad(m, &q, "order");

	/* indirect */
	q_init(m, &q, 0, 1);
	set_desc(m, DESC, 0, IND, 32, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(m, IND, 0, IND + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(m, &q, "indirect in indirect");
	q_init(m, &q, 0, 1);
	set_desc(m, DESC, 0, IND, 32, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(m, IND, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	set_desc(m, IND, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
	expect_bad(m, &q, "indirect loop");
	q_init(m, &q, 0, 1);
	set_desc(m, DESC, 0, IND, 32, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(m, IND, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 2);
	expect_bad(m, &q, "indirect next");
	q_init(m, &q, 0, 1);
	set_desc(m, DESC, 0, IND, 24, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(m, &q, "indirect len");
	q_init(m, &q, 0, 1);
	set_desc(m, DESC, 0, IND, 0, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(m, &q, "indirect len 0");
	q_init(m, &q, 0, 1); /* a huge table: more than any chain may be */
	set_desc(m, DESC, 0, IND, 16 * 4096, VIRTQ_DESC_F_INDIRECT, 0);
	for (unsigned k = 0; k < 4096; k++)
		set_desc(m, IND, k, BUF, 1, VIRTQ_DESC_F_NEXT, (uint16_t)(k + 1));
	expect_bad(m, &q, "indirect too long");
	q_init(m, &q, 0, 1); /* 256 entries chained: at the cap, fine; 257 with a direct one: not */
	set_desc(m, DESC, 0, IND, 16 * VIRTQ_MAX_SIZE, VIRTQ_DESC_F_INDIRECT, 0);
	for (unsigned k = 0; k < VIRTQ_MAX_SIZE; k++)
		set_desc(m, IND, k, BUF, 1, k + 1 < VIRTQ_MAX_SIZE ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(k + 1));
	const char *why;
	CHECK_EQ_U64(pop(m, &q, &why), 1);
	CHECK_EQ_U64(elem.n_out, VIRTQ_MAX_SIZE);
	q_init(m, &q, 0, 1);
	set_desc(m, DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	set_desc(m, DESC, 1, IND, 16, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(m, &q, "indirect after a direct descriptor");
	q_init(m, &q, 0, 1);
	set_desc(m, DESC, 0, IND, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	expect_bad(m, &q, "indirect with next");
	q_init(m, &q, 0, 1);
	q.indirect = 0;
	set_desc(m, DESC, 0, IND, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(m, IND, 0, BUF, 1, 0, 0);
	expect_bad(m, &q, "indirect not negotiated");
	q_init(m, &q, 0, 1);
	set_desc(m, DESC, 0, MEM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(m, &q, "indirect table out of RAM");

	/* rings themselves */
	q = (struct virtq){.desc = DESC, .avail = AVAIL, .used = USED, .size = 6};
	CHECK(virtq_check(&q, m) == -EINVAL); /* not a power of two */
	q.size = 512;
	CHECK(virtq_check(&q, m) == -EINVAL); /* more than offered */
	q.size = QSZ;
	q.desc = DESC + 8;
	CHECK(virtq_check(&q, m) == -EINVAL); /* misaligned */
	q.desc = MEM - 64;
	CHECK(virtq_check(&q, m) == -EINVAL); /* out of RAM */
	q.desc = DESC;
	q.used = UINT64_MAX - 3;
	CHECK(virtq_check(&q, m) == -EINVAL);
	machine_destroy(m);
}

/* Random rings: whatever the bytes, pop returns 1, 0 or -EINVAL. */
static void test_random(void)
{
	struct machine *m = mk();
	struct virtq q;
	uint64_t x = 0x243f6a8885a308d3ull;
	CHECK(m != NULL);
	if (!m)
		return;
	for (int round = 0; round < 2000; round++) {
		q_init(m, &q, 0, 0);
		uint8_t *p = gpa_ptr(m, DESC, 0x30000);
		for (int k = 0; k < 64; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			unsigned at = (unsigned)(x % 0x30000);
			p[at] = (uint8_t)(x >> 32);
			/* aim some addresses at the tables so indirect chains happen */
			if (k & 1)
				set_desc(m, DESC, (unsigned)(x >> 40) % QSZ, DESC + (x >> 20) % 0x30000,
					 (uint32_t)(x >> 8) % 600, (uint16_t)(x >> 50), (uint16_t)(x >> 56) % 10);
		}
		q.event_idx = round & 1;
		const char *why;
		for (int k = 0; k < 4; k++) {
			int r = pop(m, &q, &why);
			CHECK(r == 1 || r == 0 || r == -EINVAL);
			if (r != 1)
				break;
			CHECK(elem.n_out + elem.n_in <= VIRTQ_MAX_SIZE);
			for (unsigned i = 0; i < elem.n_out + elem.n_in; i++)
				CHECK(elem.iov[i].iov_len == 0 ||
				      ((uint8_t *)elem.iov[i].iov_base >= (uint8_t *)gpa_ptr(m, 0, 1) &&
				       (uint8_t *)elem.iov[i].iov_base + elem.iov[i].iov_len <=
					       (uint8_t *)gpa_ptr(m, 0, 1) + MEM));
		}
	}
	machine_destroy(m);
}

/* ---- The transport, driven like Linux's virtio_pci_modern ---- */

static uint32_t cfg_rd(struct machine *m, unsigned slot, unsigned off, unsigned size)
{
	return pci_host_cfg_read(m, 0, slot << 3, off, size);
}

struct drv {
	struct machine *m;
	struct virtio_dev *v;
	uint64_t bar, msix;
};

static uint64_t rd(struct drv *d, unsigned off, unsigned size)
{
	return bus_mmio_read(d->m, d->bar + off, size);
}

static void wr(struct drv *d, unsigned off, unsigned size, uint64_t val)
{
	bus_mmio_write(d->m, d->bar + off, size, val);
}

/* Finds the virtio capabilities the way a driver does and checks them. */
static void check_caps(struct drv *d, unsigned slot)
{
	unsigned seen = 0;
	for (unsigned c = cfg_rd(d->m, slot, PCI_CAP_PTR, 1), n = 0; c && n < 16;
	     c = cfg_rd(d->m, slot, c + 1, 1), n++) {
		if (cfg_rd(d->m, slot, c, 1) != PCI_CAP_ID_VNDR)
			continue;
		unsigned type = cfg_rd(d->m, slot, c + 3, 1);
		if (type != 5) /* the access window's BAR is the driver's to set */
			CHECK_EQ_U64(cfg_rd(d->m, slot, c + 4, 1), VIRTIO_BAR);
		uint32_t off = cfg_rd(d->m, slot, c + 8, 4);
		if (type == 1)
			CHECK_EQ_U64(off, VIRTIO_COMMON_OFF);
		if (type == 2) {
			CHECK_EQ_U64(off, VIRTIO_NOTIFY_OFF);
			CHECK_EQ_U64(cfg_rd(d->m, slot, c + 16, 4), VIRTIO_NOTIFY_MULT);
		}
		if (type == 3)
			CHECK_EQ_U64(off, VIRTIO_ISR_OFF);
		seen |= 1u << type;
	}
	CHECK((seen & 0x2e) == 0x2e); /* common, notify, ISR, PCI configuration access */
}

/* The PCI configuration access window (virtio 1.2 §4.1.4.9) reaches the BAR. */
static void check_cfg_window(struct drv *d, unsigned slot)
{
	unsigned cap = 0;
	for (unsigned c = cfg_rd(d->m, slot, PCI_CAP_PTR, 1), n = 0; c && n < 16; c = cfg_rd(d->m, slot, c + 1, 1), n++)
		if (cfg_rd(d->m, slot, c, 1) == PCI_CAP_ID_VNDR && cfg_rd(d->m, slot, c + 3, 1) == 5)
			cap = c;
	CHECK(cap != 0);
	if (!cap)
		return;
	pci_host_cfg_write(d->m, 0, slot << 3, cap + 4, 1, VIRTIO_BAR);
	pci_host_cfg_write(d->m, 0, slot << 3, cap + 8, 4, 0x12); /* num_queues */
	pci_host_cfg_write(d->m, 0, slot << 3, cap + 12, 4, 2);
	CHECK_EQ_U64(cfg_rd(d->m, slot, cap + 16, 2), 1);
	pci_host_cfg_write(d->m, 0, slot << 3, cap + 8, 4, 0x14); /* device_status */
	pci_host_cfg_write(d->m, 0, slot << 3, cap + 12, 4, 1);
	pci_host_cfg_write(d->m, 0, slot << 3, cap + 16, 1, 1);
	CHECK_EQ_U64(rd(d, 0x14, 1), 1);
	CHECK_EQ_U64(cfg_rd(d->m, slot, cap + 16, 1), 1);
	/* hostile windows: past the BAR, odd lengths, another BAR */
	pci_host_cfg_write(d->m, 0, slot << 3, cap + 8, 4, 0xfffffffe);
	CHECK_EQ_U64(cfg_rd(d->m, slot, cap + 16, 1), 1); /* untouched */
	pci_host_cfg_write(d->m, 0, slot << 3, cap + 12, 4, 3);
	pci_host_cfg_write(d->m, 0, slot << 3, cap + 16, 4, 0);
	pci_host_cfg_write(d->m, 0, slot << 3, cap + 4, 1, 5);
	pci_host_cfg_write(d->m, 0, slot << 3, cap + 16, 4, 0);
	CHECK_EQ_U64(rd(d, 0x14, 1), 1);
	wr(d, 0x14, 1, 0);
}

/* What a driver sees of the transport: status, features, queue 0. */
static void transport_probe(struct drv *d, uint64_t *v)
{
	v[0] = rd(d, 0x14, 1); /* status */
	wr(d, 0x08, 4, 0);     /* driver features, both halves */
	v[1] = rd(d, 0x0c, 4);
	wr(d, 0x08, 4, 1);
	v[2] = rd(d, 0x0c, 4);
	v[3] = rd(d, 0x10, 2); /* config vector */
	wr(d, 0x16, 2, 0);
	v[4] = rd(d, 0x18, 2); /* queue 0: size, vector, enable, rings */
	v[5] = rd(d, 0x1a, 2);
	v[6] = rd(d, 0x1c, 2);
	v[7] = rd(d, 0x20, 8);
	v[8] = rd(d, 0x28, 8);
	v[9] = rd(d, 0x30, 8);
}

/* d's state (the PCI function's section and the transport's) restored onto
 * a fresh machine's device of the same kind, as a snapshot restore does:
 * the driver must see the same transport there, which a fresh device does
 * not show; cut short it is refused, damaged it is refused or made
 * consistent and the device keeps working. */
static void restore_fresh(struct drv *d)
{
	static struct devstate ps, vs, bad;
	uint64_t want[10], got[10], power_on[10];
	DEVSTATE_SAVE(&ps, pci_dev_state_save, &d->v->pci);
	DEVSTATE_SAVE(&vs, virtio_state_save, d->v);
	CHECK(ps.ok && vs.ok);
	transport_probe(d, want);
	struct machine *f = mk();
	struct drv e = {.m = f, .bar = d->bar, .msix = d->msix};
	CHECK(f && virtio_rng_create(f, &e.v) == 0);
	if (!f || !e.v) {
		machine_destroy(f);
		return;
	}
	CHECK_EQ_U64(e.v->pci.slot, d->v->pci.slot);
	CHECK(DEVSTATE_LOAD(pci_dev_state_load, &e.v->pci, ps.b, ps.n) == 0);
	transport_probe(&e, power_on);
	CHECK(memcmp(want, power_on, sizeof(want)) != 0);
	CHECK(DEVSTATE_LOAD(virtio_state_load, e.v, vs.b, vs.n - 1) == -EINVAL);
	CHECK(DEVSTATE_LOAD(virtio_state_load, e.v, vs.b, vs.n) == 0);
	transport_probe(&e, got);
	for (unsigned k = 0; k < 10; k++)
		CHECK_EQ_U64(got[k], want[k]);
	CHECK(want[0] & VIRTIO_STATUS_NEEDS_RESET);
	for (int k = 0; k < 500; k++) {
		bad = vs;
		for (size_t b = 0; b < bad.n; b++)
			bad.b[b] = (k & 1) ? (uint8_t)rand() : (uint8_t)(vs.b[b] ^ ((rand() % 13) ? 0 : rand()));
		(void)DEVSTATE_LOAD(virtio_state_load, e.v, bad.b, bad.n);
		wr(&e, VIRTIO_NOTIFY_OFF, 2, 0);
		(void)rd(&e, VIRTIO_ISR_OFF, 1);
	}
	wr(&e, 0x14, 1, 0);
	CHECK_EQ_U64(rd(&e, 0x14, 1), 0);
	machine_destroy(f);
}

static void test_transport(void)
{
	struct machine *m = mk();
	struct drv d = {.m = m};
	CHECK(m && virtio_rng_create(m, &d.v) == 0);
	if (!m || !d.v)
		return;
	unsigned slot = d.v->pci.slot;
	CHECK_EQ_U64(cfg_rd(m, slot, 0, 4), 0x10441af4);
	CHECK_EQ_U64(cfg_rd(m, slot, PCI_REVISION, 1), 1);
	CHECK(cfg_rd(m, slot, PCI_SUBSYS_ID, 2) >= 0x40);
	check_caps(&d, slot);
	d.bar = (cfg_rd(m, slot, PCI_BAR0 + 16, 4) & ~0xfu) | (uint64_t)cfg_rd(m, slot, PCI_BAR0 + 20, 4) << 32;
	d.msix = cfg_rd(m, slot, PCI_BAR0 + 4, 4) & ~0xfu;
	check_cfg_window(&d, slot);

	/* reset, ACKNOWLEDGE | DRIVER, features */
	wr(&d, 0x14, 1, 0);
	wr(&d, 0x14, 1, 3);
	wr(&d, 0x00, 4, 1);
	CHECK_EQ_U64(rd(&d, 0x04, 4), 1 | 0); /* VERSION_1 is bit 32 */
	wr(&d, 0x00, 4, 0);
	CHECK(rd(&d, 0x04, 4) & (1u << VIRTIO_F_EVENT_IDX));
	/* a driver without VERSION_1 is refused */
	wr(&d, 0x08, 4, 0);
	wr(&d, 0x0c, 4, 1u << VIRTIO_F_EVENT_IDX);
	wr(&d, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK);
	CHECK(!(rd(&d, 0x14, 1) & VIRTIO_STATUS_FEATURES_OK));
	CHECK(rd(&d, 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET);
	wr(&d, 0x14, 1, 0);
	CHECK_EQ_U64(rd(&d, 0x14, 1), 0);
	/* ... so is one taking features not offered */
	wr(&d, 0x14, 1, 3);
	wr(&d, 0x08, 4, 1);
	wr(&d, 0x0c, 4, 1 | 1u << 20);
	wr(&d, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK);
	CHECK(!(rd(&d, 0x14, 1) & VIRTIO_STATUS_FEATURES_OK));
	CHECK(rd(&d, 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET);
	/* a good negotiation */
	wr(&d, 0x14, 1, 0);
	wr(&d, 0x14, 1, 3);
	wr(&d, 0x08, 4, 1);
	wr(&d, 0x0c, 4, 1);
	wr(&d, 0x08, 4, 0);
	wr(&d, 0x0c, 4, 1u << VIRTIO_F_INDIRECT_DESC);
	wr(&d, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK);
	CHECK(rd(&d, 0x14, 1) & VIRTIO_STATUS_FEATURES_OK);

	/* MSI-X on, config vector 0, queue vector 1 -> vector 0x51 on CPU 0 */
	unsigned cap = cfg_rd(m, slot, PCI_CAP_PTR, 1);
	CHECK_EQ_U64(cfg_rd(m, slot, cap, 1), PCI_CAP_ID_MSIX);
	pci_host_cfg_write(m, 0, slot << 3, cap + 2, 2, PCI_MSIX_ENABLE);
	bus_mmio_write(m, d.msix + 16, 8, MEM_LAPIC_BASE);
	bus_mmio_write(m, d.msix + 24, 4, 0x51);
	bus_mmio_write(m, d.msix + 28, 4, 0);
	bus_mmio_write(m, d.msix + 0, 8, MEM_LAPIC_BASE);
	bus_mmio_write(m, d.msix + 8, 4, 0x52);
	bus_mmio_write(m, d.msix + 12, 4, 0);
	wr(&d, 0x10, 2, 0);
	CHECK_EQ_U64(rd(&d, 0x10, 2), 0);
	CHECK_EQ_U64(rd(&d, 0x12, 2), 1); /* one queue */
	wr(&d, 0x16, 2, 0);
	wr(&d, 0x1a, 2, 9); /* no such vector: reads back NO_VECTOR */
	CHECK_EQ_U64(rd(&d, 0x1a, 2), VIRTIO_MSI_NO_VECTOR);
	wr(&d, 0x1a, 2, 1);
	CHECK_EQ_U64(rd(&d, 0x18, 2), VIRTQ_MAX_SIZE);
	wr(&d, 0x18, 2, QSZ);
	wr(&d, 0x20, 8, DESC);
	wr(&d, 0x28, 8, AVAIL);
	wr(&d, 0x30, 4, (uint32_t)USED);
	wr(&d, 0x34, 4, 0);
	wr(&d, 0x1c, 2, 1);
	CHECK_EQ_U64(rd(&d, 0x1c, 2), 1);
	wr(&d, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);

	/* a request for 32 random bytes */
	memset(gpa_ptr(m, DESC, 0x30000), 0, 0x30000);
	set_desc(m, DESC, 0, BUF, 32, VIRTQ_DESC_F_WRITE, 0);
	put16(m, AVAIL + 4, 0);
	put16(m, AVAIL + 2, 1);
	wr(&d, VIRTIO_NOTIFY_OFF, 2, 0);
	CHECK_EQ_U64(get16(m, USED + 2), 1);
	uint32_t len = 0;
	gpa_read(m, USED + 8, &len, 4);
	CHECK_EQ_U64(len, 32);
	static const uint8_t zero[32];
	CHECK(memcmp(gpa_ptr(m, BUF, 32), zero, 32) != 0);
	CHECK_EQ_U64(lapic_ack(&m->lapic[0]), 0x51);
	lapic_mmio_write(&m->lapic[0], 0xb0, 4, 0); /* EOI */

	/* now a loop in the ring: needs reset, config interrupt, no more work */
	set_desc(m, DESC, 1, BUF, 32, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	put16(m, AVAIL + 4 + 2, 1);
	put16(m, AVAIL + 2, 2);
	wr(&d, VIRTIO_NOTIFY_OFF, 2, 0);
	CHECK(rd(&d, 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ_U64(lapic_ack(&m->lapic[0]), 0x52);
	CHECK_EQ_U64(rd(&d, VIRTIO_ISR_OFF, 1), 2); /* configuration change */
	CHECK_EQ_U64(rd(&d, VIRTIO_ISR_OFF, 1), 0); /* read clears */
	CHECK_EQ_U64(get16(m, USED + 2), 1);
	set_desc(m, DESC, 1, BUF, 32, VIRTQ_DESC_F_WRITE, 0);
	wr(&d, VIRTIO_NOTIFY_OFF, 2, 0);
	CHECK_EQ_U64(get16(m, USED + 2), 1); /* ignored until reset */
	/* its state restored onto a fresh machine's device (also from
	 * garbage), then reset clears everything */
	restore_fresh(&d);
	wr(&d, 0x14, 1, 0);
	CHECK_EQ_U64(rd(&d, 0x14, 1), 0);
	wr(&d, 0x16, 2, 0);
	CHECK_EQ_U64(rd(&d, 0x1c, 2), 0);

	/* queue enabled with rings outside RAM: needs reset at once */
	wr(&d, 0x14, 1, 3);
	wr(&d, 0x08, 4, 1);
	wr(&d, 0x0c, 4, 1);
	wr(&d, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK);
	wr(&d, 0x16, 2, 0);
	wr(&d, 0x20, 8, MEM_LAPIC_BASE);
	wr(&d, 0x1c, 2, 1);
	CHECK(rd(&d, 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ_U64(rd(&d, 0x1c, 2), 0);
	/* hostile register traffic */
	for (unsigned off = 0; off < VIRTIO_BAR_SIZE; off += 1)
		wr(&d, off, 1u << (off & 3), 0xffffffffffffffffull);
	machine_destroy(m);
}

/* Brings a device up as a driver would, queue q's rings at base + q * 0x4000
 * (descriptors, avail at +0x1000, used at +0x2000), interrupts by INTx. */
static void drv_up(struct drv *d, unsigned nq, uint64_t base)
{
	unsigned slot = d->v->pci.slot;
	d->bar = (cfg_rd(d->m, slot, PCI_BAR0 + 16, 4) & ~0xfu) | (uint64_t)cfg_rd(d->m, slot, PCI_BAR0 + 20, 4) << 32;
	wr(d, 0x14, 1, 0);
	wr(d, 0x14, 1, 3);
	wr(d, 0x08, 4, 1);
	wr(d, 0x0c, 4, 1);
	wr(d, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < nq; q++) {
		uint64_t at = base + q * 0x4000ull;
		wr(d, 0x16, 2, q);
		wr(d, 0x18, 2, QSZ);
		wr(d, 0x20, 8, at);
		wr(d, 0x28, 8, at + 0x1000);
		wr(d, 0x30, 8, at + 0x2000);
		wr(d, 0x1c, 2, 1);
	}
	wr(d, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

static void test_console(void)
{
	struct machine *m = mk();
	struct drv d = {.m = m};
	int fds[2];
	CHECK(m && pipe(fds) == 0);
	if (!m)
		return;
	CHECK(virtio_console_create(m, fds[1], &d.v) == 0);
	if (!d.v)
		return;
	CHECK_EQ_U64(cfg_rd(m, d.v->pci.slot, 0, 4), 0x10431af4);
	uint64_t rxq = 0x40000, txq = 0x44000;
	memset(gpa_ptr(m, rxq, 0x8000), 0, 0x8000);
	drv_up(&d, 2, rxq);
	CHECK_EQ_U64(rd(&d, 0x12, 2), 2);
	/* a receive buffer posted */
	set_desc(m, rxq, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	put16(m, rxq + 0x1000 + 4, 0);
	put16(m, rxq + 0x1000 + 2, 1);
	wr(&d, VIRTIO_NOTIFY_OFF, 2, 0);
	/* input before the guest ever wrote: held back */
	CHECK_EQ_U64(virtio_console_receive(d.v, (const uint8_t *)"abc", 3), 0);
	/* the guest writes "hi" */
	memcpy(gpa_ptr(m, BUF + 0x100, 2), "hi", 2);
	set_desc(m, txq, 0, BUF + 0x100, 2, 0, 0);
	put16(m, txq + 0x1000 + 4, 0);
	put16(m, txq + 0x1000 + 2, 1);
	wr(&d, VIRTIO_NOTIFY_OFF + VIRTIO_NOTIFY_MULT, 2, 1);
	char out[8] = {0};
	CHECK(read(fds[0], out, sizeof(out)) == 2 && !memcmp(out, "hi", 2));
	CHECK_EQ_U64(get16(m, txq + 0x2000 + 2), 1);
	/* now input flows: 8 bytes fit the one buffer, the rest waits */
	CHECK_EQ_U64(virtio_console_receive(d.v, (const uint8_t *)"0123456789", 10), 8);
	CHECK(!memcmp(gpa_ptr(m, BUF, 8), "01234567", 8));
	uint32_t len = 0;
	gpa_read(m, rxq + 0x2000 + 8, &len, 4);
	CHECK_EQ_U64(len, 8);
	CHECK(m->ioapic.s.irr & (1u << d.v->pci.gsi)); /* INTx without MSI-X */
	CHECK_EQ_U64(rd(&d, VIRTIO_ISR_OFF, 1), 1);
	CHECK(!(m->ioapic.s.irr & (1u << d.v->pci.gsi)));
	CHECK_EQ_U64(virtio_console_receive(d.v, (const uint8_t *)"89", 2), 0);
	/* a reset forgets that the guest spoke (fresh rings: the old ones
	 * would be replayed at DRIVER_OK) */
	wr(&d, 0x14, 1, 0);
	memset(gpa_ptr(m, rxq, 0x8000), 0, 0x8000);
	set_desc(m, rxq, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	drv_up(&d, 2, rxq);
	put16(m, rxq + 0x1000 + 2, 1);
	wr(&d, VIRTIO_NOTIFY_OFF, 2, 0);
	CHECK_EQ_U64(virtio_console_receive(d.v, (const uint8_t *)"89", 2), 0);
	machine_destroy(m);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	RUN(test_good_chain);
	RUN(test_event_idx);
	RUN(test_notify_race);
	RUN(test_hostile);
	RUN(test_random);
	RUN(test_transport);
	RUN(test_console);
	return test_report();
}
