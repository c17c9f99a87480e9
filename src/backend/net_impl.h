/* What the network backends (slirp.c, tap.c) share with net.c: the queue of
 * frames for the guest and the backend hooks. */
#ifndef CORRAL_NET_IMPL_H
#define CORRAL_NET_IMPL_H

#include <pthread.h>

#include "backend/net.h"
#include "backend/ratelimit.h"

#define NET_STATE_NONE 0
#define NET_STATE_USER 1   /* libslirp's own state */
#define NET_STATE_MAX 4096 /* bytes of a backend's blob */

struct net_frame {
	uint32_t len;
	uint8_t *data;
	uint64_t due_ns; /* rx limit: not for the guest before then (CLOCK_MONOTONIC) */
};

struct net {
	int (*send)(struct net *n, const struct iovec *iov, int iovcnt);
	void (*stop)(struct net *n); /* stop the thread, free the backend */
	void *be;		     /* the backend's own state */
	unsigned mtu;		     /* set by the backend */
	/* net_state_save/load: the backend's state as one blob of its own
	 * format and version (NET_STATE_* kind; NONE: no state, as tap) */
	uint8_t state_kind;
	int (*save)(struct net *n, uint32_t *version, uint8_t *buf, size_t cap, size_t *len);
	/* buf is hostile: validated whole before the backend uses any of it */
	int (*load)(struct net *n, uint32_t version, const uint8_t *buf, size_t len, char *err, size_t errlen);
	/* TCP connections open through the backend now (they are not saved) */
	unsigned (*connections)(struct net *n);
	/* net_ports_release/take; NULL: the backend holds no host ports */
	void (*ports_release)(struct net *n);
	int (*ports_take)(struct net *n, char *err, size_t errlen);

	void (*notify)(void *opaque);
	void *opaque;

	pthread_mutex_t qlock;
	struct net_frame q[NET_RXQ_FRAMES];
	unsigned q_head, q_count;
	size_t q_bytes;
	uint64_t dropped;

	/* Rate limits (net.h): tx waits in net_send; a frame for the guest is
	 * given the time its tokens allow and held back until then, and the
	 * pacer thread notifies the device when it is due. */
	int tx_on, rx_on;
	struct rate_limit tx, rx;
	uint64_t rx_last_due;
	pthread_t pacer;
	pthread_cond_t pacer_wake;
	int pacer_started, pacer_stop;
};

/* Queue a frame for the guest (copies it); drops it when the queue is full,
 * never waits. Returns 1 if queued, 0 if dropped. The caller calls
 * net_notify after. */
int net_queue_frame(struct net *n, const void *buf, size_t len);
/* The rx limit's back-pressure: how long (ns) a backend should stop reading
 * from the host before it queues more, 0 to read now. Non-zero while the
 * queue holds frames due more than NET_RX_AHEAD_NS from now, or is half
 * full of frames not yet due. A TCP sender then slows down as on a slow
 * link: its data waits in the host's socket (or the tap's queue) instead
 * of being dropped here. */
#define NET_RX_AHEAD_NS (20ull * 1000000)
uint64_t net_rx_hold_ns(struct net *n);
void net_notify(struct net *n);

/* NULL if the user network's saved state (slirp.c's layout) may be handed
 * to libslirp, else the reason. */
const char *slirp_state_check(uint32_t version, const uint8_t *buf, size_t len);
int slirp_net_open(struct net *n, const char *opts, char *err, size_t errlen);
int tap_net_open(struct net *n, const char *opts, char *err, size_t errlen);

#endif
