/* virtio-net (virtio 1.2 §5.1): one receive and one transmit queue, no
 * offloads, on a network backend (backend/net.h). Frames for the guest
 * arrive on the backend's thread; it asks the machine to run net_rx_work on
 * the engine's thread, which copies them into the buffers the driver
 * posted. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/net.h"
#include "machine/replay.h"
#include "virtio/virtio.h"

#define NET_RXQ 0
#define NET_TXQ 1
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_S_LINK_UP 1
/* §5.1.6: with VIRTIO_F_VERSION_1 every frame has this 12-byte header */
#define NET_HDR_LEN 12
#define NET_TX_MAX (NET_HDR_LEN + NET_FRAME_MAX)

struct net_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs; /* with VIRTIO_NET_F_MQ (not offered) */
	uint16_t mtu;		      /* with VIRTIO_NET_F_MTU */
} __attribute__((packed));

struct vnet {
	struct virtio_dev v; /* first */
	struct net_config cfg;
	struct net *be;
	int io_id; /* machine_io handler: frames wait in the backend */
	uint64_t rx_dropped, tx_dropped;
	struct virtq_elem elem;
	uint8_t frame[NET_FRAME_MAX];
};

/* Copies n bytes from src into the device-writable part of e at offset off. */
static size_t elem_write(struct virtq_elem *e, size_t off, const uint8_t *src, size_t n)
{
	size_t done = 0;
	for (unsigned i = e->n_out; i < e->n_out + e->n_in && done < n; i++) {
		size_t len = e->iov[i].iov_len;
		if (off >= len) {
			off -= len;
			continue;
		}
		size_t k = len - off < n - done ? len - off : n - done;
		memcpy((uint8_t *)e->iov[i].iov_base + off, src + done, k);
		done += k;
		off = 0;
	}
	return done;
}

/* The next frame for the guest: the backend's, logged when recording; in
 * a replay the log's (machine/replay.h), by the NIC's handler id. */
static ssize_t rx_peek(struct vnet *n)
{
	struct replay *rr = n->v.pci.m->rr;
	if (replay_mode(rr) == REPLAY_PLAY)
		return replay_peek(rr, REPLAY_NET, (unsigned)n->io_id);
	return net_peek(n->be);
}

static ssize_t rx_recv(struct vnet *n, void *buf, size_t len)
{
	struct replay *rr = n->v.pci.m->rr;
	if (replay_mode(rr) == REPLAY_PLAY)
		return replay_take(rr, REPLAY_NET, (unsigned)n->io_id, buf, len);
	ssize_t r = net_recv(n->be, buf, len);
	if (r >= 0 && (uint64_t)r + NET_HDR_LEN <= n->elem.in_len)
		replay_log(rr, REPLAY_NET, (unsigned)n->io_id, buf, (size_t)r);
	return r;
}

/* Frames from the backend into the driver's receive buffers, while both
 * last. A frame larger than the buffer it meets is dropped (no mergeable
 * buffers were offered: the driver posts room for a full Ethernet frame). */
static void net_rx_work(void *opaque)
{
	struct vnet *n = opaque;
	struct virtio_dev *v = &n->v;
	struct virtq *q = &v->s.q[NET_RXQ];
	const char *why;
	int pushed = 0;
	while (virtio_queue_live(v, NET_RXQ) && rx_peek(n) > 0) {
		int r = virtq_pop(q, v->pci.m, &n->elem, &why);
		if (r < 0) {
			virtio_set_needs_reset(v, why);
			break;
		}
		if (r == 0)
			break; /* no buffers: the frames wait (or drop) in the backend */
		ssize_t len;
		for (;;) {
			len = rx_recv(n, n->frame, sizeof(n->frame));
			if (len < 0 || (uint64_t)len + NET_HDR_LEN <= n->elem.in_len)
				break;
			n->rx_dropped++;
		}
		if (len < 0) {
			/* every waiting frame was too big: the buffer was never
			 * used, so it stays the next one to take */
			q->last_avail--;
			break;
		}
		uint8_t hdr[NET_HDR_LEN] = {0};
		hdr[10] = 1; /* num_buffers (§5.1.6.4) */
		elem_write(&n->elem, 0, hdr, NET_HDR_LEN);
		elem_write(&n->elem, NET_HDR_LEN, n->frame, (size_t)len);
		if (virtq_push(q, v->pci.m, n->elem.head, NET_HDR_LEN + (uint32_t)len) < 0) {
			virtio_set_needs_reset(v, "used ring outside guest RAM");
			break;
		}
		pushed = 1;
	}
	if (pushed)
		virtio_queue_notify(v, NET_RXQ);
}

static void net_tx(struct vnet *n)
{
	struct virtio_dev *v = &n->v;
	struct virtq *q = &v->s.q[NET_TXQ];
	const char *why;
	int pushed = 0, r;
	while (virtio_queue_live(v, NET_TXQ) && (r = virtq_pop(q, v->pci.m, &n->elem, &why)) != 0) {
		if (r < 0) {
			virtio_set_needs_reset(v, why);
			break;
		}
		/* The frame is what follows the header, wherever the driver split
		 * the chain; no offloads were offered, so the header says nothing. */
		struct iovec iov[VIRTQ_MAX_SIZE];
		int cnt = 0;
		uint64_t skip = NET_HDR_LEN, total = 0;
		for (unsigned i = 0; i < n->elem.n_out; i++) {
			uint8_t *p = n->elem.iov[i].iov_base;
			size_t len = n->elem.iov[i].iov_len;
			if (skip >= len) {
				skip -= len;
				continue;
			}
			iov[cnt].iov_base = p + skip;
			iov[cnt].iov_len = len - skip;
			total += len - skip;
			skip = 0;
			cnt++;
		}
		if (skip == 0 && total >= 14 && total <= NET_FRAME_MAX)
			net_send(n->be, iov, cnt);
		else
			n->tx_dropped++; /* no header, or not an Ethernet frame */
		if (virtq_push(q, v->pci.m, n->elem.head, 0) < 0) {
			virtio_set_needs_reset(v, "used ring outside guest RAM");
			break;
		}
		pushed = 1;
	}
	if (pushed)
		virtio_queue_notify(v, NET_TXQ);
}

static void net_notify_queue(struct virtio_dev *v, unsigned qi)
{
	struct vnet *n = (struct vnet *)v;
	if (qi == NET_TXQ)
		net_tx(n);
	else if (qi == NET_RXQ)
		net_rx_work(n); /* new buffers: frames may be waiting */
}

/* The backend's thread: frames are queued. */
static void net_backend_notify(void *opaque)
{
	struct vnet *n = opaque;
	machine_io_request(n->v.pci.m, n->io_id);
}

static void net_destroy(struct virtio_dev *v)
{
	struct vnet *n = (struct vnet *)v;
	net_attach(n->be, NULL, NULL); /* the backend belongs to the caller */
	free(v);
}

int virtio_net_create(struct machine *m, struct net *be, const uint8_t mac[6], struct virtio_dev **out)
{
	struct vnet *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->be = be;
	memcpy(n->cfg.mac, mac, 6);
	n->cfg.status = VIRTIO_NET_S_LINK_UP;
	n->cfg.max_virtqueue_pairs = 1;
	n->v.host_features = 1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_STATUS;
	/* §5.1.4.1: the MTU the driver should use. Above 1500, Linux posts
	 * receive buffers for 64 KiB frames. */
	unsigned mtu = net_mtu(be);
	if (mtu > 1500 && mtu + 14 <= NET_FRAME_MAX) {
		n->cfg.mtu = (uint16_t)mtu;
		n->v.host_features |= 1ull << VIRTIO_NET_F_MTU;
	}
	n->v.name = "virtio-net";
	n->v.config = (uint8_t *)&n->cfg;
	n->v.config_len = sizeof(n->cfg);
	n->v.notify = net_notify_queue;
	n->v.destroy = net_destroy;
	int err = machine_io_register(m, net_rx_work, n);
	if (err < 0)
		goto err_free;
	n->io_id = err;
	/* class 0x020000: Ethernet controller */
	err = virtio_pci_init(&n->v, m, VIRTIO_ID_NET, 0x020000, 2);
	if (err < 0)
		goto err_free;
	net_attach(be, net_backend_notify, n);
	if (out)
		*out = &n->v;
	return 0;

err_free:
	free(n);
	return err;
}

void virtio_net_get_mac(const struct virtio_dev *v, uint8_t mac[6])
{
	memcpy(mac, ((const struct vnet *)v)->cfg.mac, 6);
}

void virtio_net_set_mac(struct virtio_dev *v, const uint8_t mac[6])
{
	memcpy(((struct vnet *)v)->cfg.mac, mac, 6);
}
