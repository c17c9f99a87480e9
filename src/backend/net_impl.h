/* What the network backends (slirp.c, tap.c) share with net.c: the queue of
 * frames for the guest and the backend hooks. */
#ifndef CORRAL_NET_IMPL_H
#define CORRAL_NET_IMPL_H

#include <pthread.h>

#include "backend/net.h"

struct net_frame {
	uint32_t len;
	uint8_t *data;
};

struct net {
	int (*send)(struct net *n, const struct iovec *iov, int iovcnt);
	void (*stop)(struct net *n); /* stop the thread, free the backend */
	void *be;		     /* the backend's own state */
	unsigned mtu;		     /* set by the backend */

	void (*notify)(void *opaque);
	void *opaque;

	pthread_mutex_t qlock;
	struct net_frame q[NET_RXQ_FRAMES];
	unsigned q_head, q_count;
	size_t q_bytes;
	uint64_t dropped;
};

/* Queue a frame for the guest (copies it); drops it when the queue is full.
 * Returns 1 if queued, 0 if dropped. The caller calls net_notify after. */
int net_queue_frame(struct net *n, const void *buf, size_t len);
void net_notify(struct net *n);

int slirp_net_open(struct net *n, const char *opts, char *err, size_t errlen);
int tap_net_open(struct net *n, const char *opts, char *err, size_t errlen);

#endif
