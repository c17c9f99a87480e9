/* Tap devices: frames go to and from a host network interface, for bridged
 * setups. The thread reads frames into the guest's queue. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "backend/net_impl.h"

struct tap_be {
	struct net *n;
	int fd, wake_fd;
	pthread_t thread;
	volatile int stop;
	char ifname[IFNAMSIZ];
	uint8_t rx[NET_FRAME_MAX]; /* the thread's read buffer */
};

static void *tap_thread(void *arg)
{
	struct tap_be *t = arg;
	uint8_t *buf = t->rx;
	while (!t->stop) {
		/* The rx limit holds frames back: leave them in the tap's own
		 * queue until these drain, as a NIC that stops taking them. */
		uint64_t hold = net_rx_hold_ns(t->n);
		struct pollfd p[2] = {{.fd = hold ? -1 : t->fd, .events = POLLIN},
				      {.fd = t->wake_fd, .events = POLLIN}};
		if (poll(p, 2, hold ? (int)(hold / 1000000 + 1) : -1) < 0)
			continue;
		if (p[1].revents)
			break;
		if (hold)
			continue;
		int queued = 0;
		for (int k = 0; k < 64; k++) {
			ssize_t r = read(t->fd, buf, sizeof(t->rx));
			if (r <= 0)
				break;
			queued |= net_queue_frame(t->n, buf, (size_t)r);
		}
		if (queued)
			net_notify(t->n);
	}
	return NULL;
}

static int tap_send(struct net *n, const struct iovec *iov, int iovcnt)
{
	struct tap_be *t = n->be;
	ssize_t r = writev(t->fd, iov, iovcnt);
	/* A full or down interface drops the frame, as a wire would. */
	return r < 0 && errno != EAGAIN && errno != EIO ? -errno : 0;
}

static void tap_stop(struct net *n)
{
	struct tap_be *t = n->be;
	uint64_t one = 1;
	t->stop = 1;
	if (write(t->wake_fd, &one, sizeof(one)) < 0) {
		/* saturated: the thread wakes anyway */
	}
	pthread_join(t->thread, NULL);
	close(t->wake_fd);
	close(t->fd);
	free(t);
}

int tap_net_open(struct net *n, const char *opts, char *err, size_t errlen)
{
	char ifname[IFNAMSIZ] = "";
	const char *p = opts;
	while (*p) {
		size_t l = strcspn(p, ",");
		if (!strncmp(p, "ifname=", 7) && l > 7 && l - 7 < IFNAMSIZ) {
			memcpy(ifname, p + 7, l - 7);
			ifname[l - 7] = 0;
		} else {
			snprintf(err, errlen, "--net tap: unknown or bad option '%.*s' (ifname=NAME)", (int)l, p);
			return -EINVAL;
		}
		p += l + (p[l] == ',');
	}
	if (!ifname[0]) {
		snprintf(err, errlen, "--net tap: ifname=NAME is needed");
		return -EINVAL;
	}
	struct tap_be *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->n = n;
	t->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (t->fd < 0) {
		int e = errno;
		snprintf(err, errlen, "--net tap: /dev/net/tun: %s", strerror(e));
		free(t);
		return -e;
	}
	struct ifreq ifr = {0};
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	memcpy(ifr.ifr_name, ifname, sizeof(ifname));
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		snprintf(err, errlen, "--net tap,ifname=%s: %s%s", ifname, strerror(e),
			 e == EPERM ? " (needs CAP_NET_ADMIN, or a tap device owned by this user)" : "");
		close(t->fd);
		free(t);
		return -e;
	}
	memcpy(t->ifname, ifr.ifr_name, IFNAMSIZ);
	t->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (t->wake_fd < 0 || pthread_create(&t->thread, NULL, tap_thread, t)) {
		snprintf(err, errlen, "--net tap: cannot start the network thread");
		if (t->wake_fd >= 0)
			close(t->wake_fd);
		close(t->fd);
		free(t);
		return -EAGAIN;
	}
	n->be = t;
	n->send = tap_send;
	n->stop = tap_stop;
	return 0;
}
