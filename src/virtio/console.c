/* virtio-console (virtio 1.2 §5.3), one port, no multiport: the guest's
 * hvc0. What the driver transmits goes to a host file descriptor; host
 * input fills the buffers the driver posts on the receive queue. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "machine/replay.h"
#include "virtio/virtio.h"

#define CONS_RXQ 0
#define CONS_TXQ 1

struct cons_config {
	uint16_t cols, rows;
	uint32_t max_nr_ports, emerg_wr;
} __attribute__((packed));

struct vcons {
	struct virtio_dev v; /* first */
	struct cons_config cfg;
	int out_fd;
	/* Without multiport there is no "port open" message, and input sent
	 * while the driver is still setting the port up is thrown away by it;
	 * a driver that has written to the port has it set up. */
	int guest_spoke;
	struct virtq_elem elem;
};

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return; /* a closed terminal: the output is dropped */
		p += k;
		n -= (size_t)k;
	}
}

static void cons_notify(struct virtio_dev *v, unsigned qi)
{
	struct vcons *c = (struct vcons *)v;
	struct virtq *q = &v->s.q[qi];
	const char *why;
	int pushed = 0, r;
	if (qi != CONS_TXQ)
		return; /* receive buffers wait for host input */
	while (virtio_queue_live(v, qi) && (r = virtq_pop(q, v->pci.m, &c->elem, &why)) != 0) {
		if (r < 0) {
			virtio_set_needs_reset(v, why);
			break;
		}
		/* keep COM1's buffered output ahead of ours, in order */
		uart_flush(&v->pci.m->com1);
		for (unsigned i = 0; i < c->elem.n_out; i++) {
			const uint8_t *p = c->elem.iov[i].iov_base;
			size_t len = c->elem.iov[i].iov_len;
			size_t shown = replay_console_out(v->pci.m->rr, p, len); /* shown before a replay's rewind */
			if (c->out_fd >= 0 && shown < len)
				write_all(c->out_fd, p + shown, len - shown);
		}
		c->guest_spoke = 1;
		if (virtq_push(q, v->pci.m, c->elem.head, 0) < 0) {
			virtio_set_needs_reset(v, "used ring outside guest RAM");
			break;
		}
		pushed = 1;
	}
	if (pushed)
		virtio_queue_notify(v, qi);
}

size_t virtio_console_receive(struct virtio_dev *v, const uint8_t *buf, size_t n)
{
	struct vcons *c = (struct vcons *)v;
	struct virtq *q = &v->s.q[CONS_RXQ];
	const char *why;
	size_t done = 0;
	int pushed = 0;
	if (!c->guest_spoke)
		return 0;
	while (done < n && virtio_queue_live(v, CONS_RXQ)) {
		int r = virtq_pop(q, v->pci.m, &c->elem, &why);
		if (r < 0)
			virtio_set_needs_reset(v, why);
		if (r <= 0)
			break;
		uint32_t len = 0;
		for (unsigned i = c->elem.n_out; i < c->elem.n_out + c->elem.n_in && done < n; i++) {
			size_t k = c->elem.iov[i].iov_len < n - done ? c->elem.iov[i].iov_len : n - done;
			memcpy(c->elem.iov[i].iov_base, buf + done, k);
			done += k;
			len += (uint32_t)k;
		}
		if (virtq_push(q, v->pci.m, c->elem.head, len) < 0) {
			virtio_set_needs_reset(v, "used ring outside guest RAM");
			break;
		}
		pushed = 1;
	}
	if (pushed)
		virtio_queue_notify(v, CONS_RXQ);
	return done;
}

static void cons_reset(struct virtio_dev *v)
{
	((struct vcons *)v)->guest_spoke = 0;
}

static void cons_destroy(struct virtio_dev *v)
{
	free(v);
}

int virtio_console_create(struct machine *m, int out_fd, struct virtio_dev **out)
{
	struct vcons *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->out_fd = out_fd;
	c->cfg.max_nr_ports = 1;
	c->v.name = "virtio-console";
	c->v.config = (uint8_t *)&c->cfg;
	c->v.config_len = sizeof(c->cfg);
	c->v.notify = cons_notify;
	c->v.destroy = cons_destroy;
	c->v.reset = cons_reset;
	/* class 0x078000: simple communication controller, other */
	int err = virtio_pci_init(&c->v, m, VIRTIO_ID_CONSOLE, 0x078000, 2);
	if (err < 0) {
		free(c);
		return err;
	}
	if (out)
		*out = &c->v;
	return 0;
}
