/* virtio-net driven like a driver, on a backend that records what it is
 * given: frames sent with their header split anywhere arrive whole; frames
 * for the guest land after a header with num_buffers = 1; an oversized
 * frame is dropped without using up the guest's buffer; chains too short to
 * hold a header go nowhere; host-thread wake-ups run the receive work. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/net_impl.h"
#include "fuzz/fuzz_virtio.h"
#include "testhelp.h"

#define RX_DESC 0x10000
#define RX_AVAIL 0x11000
#define RX_USED 0x12000
#define TX_DESC 0x20000
#define TX_AVAIL 0x21000
#define TX_USED 0x22000
#define BUFS 0x30000

static uint8_t sent[4][2048];
static size_t sent_len[4];
static unsigned nsent;

static int rec_send(struct net *n, const struct iovec *iov, int iovcnt)
{
	(void)n;
	size_t len = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (nsent < 4 && len + iov[i].iov_len <= sizeof(sent[0]))
			memcpy(sent[nsent] + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	if (nsent < 4)
		sent_len[nsent] = len;
	nsent++;
	return 0;
}

struct rig {
	struct machine *m;
	struct net *be;
	struct virtio_dev *v;
	uint64_t bar;
	uint16_t rx_avail, tx_avail;
};

static void rig_queue(struct rig *r, unsigned q, uint64_t desc, uint64_t avail, uint64_t used)
{
	fz_wr(r->m, r->bar, 0x16, 2, q);
	fz_wr(r->m, r->bar, 0x18, 2, 16);
	fz_wr(r->m, r->bar, 0x20, 8, desc);
	fz_wr(r->m, r->bar, 0x28, 8, avail);
	fz_wr(r->m, r->bar, 0x30, 8, used);
	fz_wr(r->m, r->bar, 0x1c, 2, 1);
}

static int rig_up(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	nsent = 0;
	r->m = fz_machine();
	r->be = calloc(1, sizeof(*r->be));
	pthread_mutex_init(&r->be->qlock, NULL);
	r->be->send = rec_send;
	r->be->stop = fz_net_stop;
	static const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x57};
	if (virtio_net_create(r->m, r->be, mac, &r->v) < 0)
		return -1;
	r->bar = r->v->pci.bar[VIRTIO_BAR].mapped_at;
	fz_negotiate(r->m, r->v, r->bar, 0);
	rig_queue(r, 0, RX_DESC, RX_AVAIL, RX_USED);
	rig_queue(r, 1, TX_DESC, TX_AVAIL, TX_USED);
	fz_wr(r->m, r->bar, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	return 0;
}

static void rig_down(struct rig *r)
{
	machine_destroy(r->m);
	net_close(r->be);
}

static void put_desc(struct machine *m, uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t d[16];
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	gpa_write(m, table + 16 * i, d, 16);
}

/* Makes head available on the queue whose avail ring is at avail. */
static void offer(struct machine *m, uint64_t avail, uint16_t *idx, uint16_t head)
{
	gpa_write(m, avail + 4 + 2 * (*idx % 16), &head, 2);
	(*idx)++;
	gpa_write(m, avail + 2, idx, 2);
}

static uint16_t used_idx(struct machine *m, uint64_t used)
{
	uint16_t v = 0;
	gpa_read(m, used + 2, &v, 2);
	return v;
}

static uint32_t used_len(struct machine *m, uint64_t used, unsigned slot)
{
	uint32_t v = 0;
	gpa_read(m, used + 4 + 8 * slot + 4, &v, 4);
	return v;
}

static void test_tx(void)
{
	struct rig r;
	if (rig_up(&r) < 0) {
		CHECK(0);
		return;
	}
	uint8_t frame[60];
	for (unsigned k = 0; k < sizeof(frame); k++)
		frame[k] = (uint8_t)(k * 7);
	/* the 12-byte header split 5 + 7, the frame after it in the same buffer */
	uint8_t buf[7 + 60] = {0};
	memcpy(buf + 7, frame, sizeof(frame));
	gpa_write(r.m, BUFS, (uint8_t[5]){0}, 5);
	gpa_write(r.m, BUFS + 0x100, buf, sizeof(buf));
	put_desc(r.m, TX_DESC, 0, BUFS, 5, VIRTQ_DESC_F_NEXT, 1);
	put_desc(r.m, TX_DESC, 1, BUFS + 0x100, sizeof(buf), 0, 0);
	/* a chain shorter than a header, then a header with no frame */
	put_desc(r.m, TX_DESC, 2, BUFS + 0x200, 8, 0, 0);
	put_desc(r.m, TX_DESC, 3, BUFS + 0x200, 12, 0, 0);
	offer(r.m, TX_AVAIL, &r.tx_avail, 0);
	offer(r.m, TX_AVAIL, &r.tx_avail, 2);
	offer(r.m, TX_AVAIL, &r.tx_avail, 3);
	fz_wr(r.m, r.bar, VIRTIO_NOTIFY_OFF + VIRTIO_NOTIFY_MULT, 2, 1);
	CHECK(nsent == 1);
	CHECK(sent_len[0] == sizeof(frame));
	CHECK(!memcmp(sent[0], frame, sizeof(frame)));
	CHECK(used_idx(r.m, TX_USED) == 3); /* every chain is given back */
	CHECK(!(r.v->s.status & VIRTIO_STATUS_NEEDS_RESET));
	rig_down(&r);
}

static void test_rx(void)
{
	struct rig r;
	if (rig_up(&r) < 0) {
		CHECK(0);
		return;
	}
	uint8_t f1[100], big[1600];
	memset(f1, 0x5a, sizeof(f1));
	memset(big, 0x11, sizeof(big));
	/* frames wait before any buffer is posted */
	net_queue_frame(r.be, f1, sizeof(f1));
	net_notify(r.be);
	machine_io_run(r.m);
	CHECK(used_idx(r.m, RX_USED) == 0);

	/* one buffer: the frame arrives behind its header */
	put_desc(r.m, RX_DESC, 0, BUFS, 1526, VIRTQ_DESC_F_WRITE, 0);
	offer(r.m, RX_AVAIL, &r.rx_avail, 0);
	fz_wr(r.m, r.bar, VIRTIO_NOTIFY_OFF, 2, 0);
	CHECK(used_idx(r.m, RX_USED) == 1);
	CHECK(used_len(r.m, RX_USED, 0) == 12 + sizeof(f1));
	uint8_t got[12 + 100];
	gpa_read(r.m, BUFS, got, sizeof(got));
	CHECK(got[10] == 1 && got[11] == 0); /* num_buffers */
	CHECK(!memcmp(got + 12, f1, sizeof(f1)));

	/* a frame too big for the buffer is dropped; the buffer waits for the
	 * next frame, which a host thread announces */
	put_desc(r.m, RX_DESC, 1, BUFS + 0x1000, 1526, VIRTQ_DESC_F_WRITE, 0);
	offer(r.m, RX_AVAIL, &r.rx_avail, 1);
	net_queue_frame(r.be, big, sizeof(big));
	net_notify(r.be);
	CHECK(machine_io_run(r.m) == 1);
	CHECK(used_idx(r.m, RX_USED) == 1);
	net_queue_frame(r.be, f1, 60);
	net_notify(r.be);
	machine_io_run(r.m);
	CHECK(used_idx(r.m, RX_USED) == 2);
	CHECK(used_len(r.m, RX_USED, 1) == 12 + 60);
	CHECK(!(r.v->s.status & VIRTIO_STATUS_NEEDS_RESET));

	/* the MAC in the device configuration */
	uint8_t mac[6];
	for (unsigned k = 0; k < 6; k++)
		mac[k] = (uint8_t)bus_mmio_read(r.m, r.bar + VIRTIO_DEVCFG_OFF + k, 1);
	CHECK(mac[0] == 0x52 && mac[5] == 0x57);
	rig_down(&r);
}

static void test_rx_bad_ring(void)
{
	struct rig r;
	if (rig_up(&r) < 0) {
		CHECK(0);
		return;
	}
	/* a receive buffer outside guest RAM: the device needs a reset */
	put_desc(r.m, RX_DESC, 0, FZ_MEM - 100, 1526, VIRTQ_DESC_F_WRITE, 0);
	offer(r.m, RX_AVAIL, &r.rx_avail, 0);
	uint8_t f[60] = {0};
	net_queue_frame(r.be, f, sizeof(f));
	net_notify(r.be);
	machine_io_run(r.m);
	CHECK(r.v->s.status & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(used_idx(r.m, RX_USED) == 0);
	rig_down(&r);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The rx limit never makes the backend wait in net_queue_frame (slirp calls
 * it with its lock held): frames beyond the queue are dropped at once, and
 * net_rx_hold_ns tells the backend to stop reading while the queue holds
 * more than NET_RX_AHEAD_NS of frames. */
static void test_rx_limit_no_wait(void)
{
	struct net *n;
	CHECK(net_open_null(&n, 1500) == 0);
	if (!n)
		return;
	struct rate_cfg none = {0}, rx = {.bw = {.size = 64 * 1024, .refill_time = 1000}};
	net_set_rate(n, &none, &rx);
	CHECK_EQ_U64(net_rx_hold_ns(n), 0); /* an empty queue */
	static uint8_t f[1500];
	unsigned queued = 0, held_at = 0;
	uint64_t t0 = now_ns();
	for (unsigned k = 0; k < 2 * NET_RXQ_FRAMES; k++) {
		queued += (unsigned)net_queue_frame(n, f, sizeof(f));
		if (!held_at && net_rx_hold_ns(n))
			held_at = k + 1;
	}
	uint64_t took = now_ns() - t0;
	/* 512 frames at 64 KiB/s would take 12 s if the queue waited for room */
	CHECK(took < 500000000ull);
	CHECK_EQ_U64(queued, NET_RXQ_FRAMES);
	CHECK_EQ_U64(net_dropped(n), NET_RXQ_FRAMES);
	/* the bucket's 64 KiB (43 frames) pass at once, one more is 23 ms ahead */
	CHECK(held_at > 40 && held_at < 50);
	uint64_t hold = net_rx_hold_ns(n);
	CHECK(hold > 2000000000ull && hold < 6000000000ull);
	/* lifting the limit makes every frame due and reading free again */
	net_set_rate(n, &none, &none);
	CHECK_EQ_U64(net_rx_hold_ns(n), 0);
	net_close(n);
}

int main(void)
{
	RUN(test_rx_limit_no_wait);
	RUN(test_tx);
	RUN(test_rx);
	RUN(test_rx_bad_ring);
	return test_report();
}
