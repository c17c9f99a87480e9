/* Network backends: the spec parser and the queue of frames for the guest
 * that every backend fills from its thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/net_impl.h"

int net_queue_frame(struct net *n, const void *buf, size_t len)
{
	if (len == 0 || len > NET_FRAME_MAX)
		return 0;
	uint8_t *copy = malloc(len);
	pthread_mutex_lock(&n->qlock);
	if (!copy || n->q_count == NET_RXQ_FRAMES || n->q_bytes + len > NET_RXQ_BYTES) {
		n->dropped++;
		pthread_mutex_unlock(&n->qlock);
		free(copy);
		return 0;
	}
	memcpy(copy, buf, len);
	struct net_frame *f = &n->q[(n->q_head + n->q_count) % NET_RXQ_FRAMES];
	f->len = (uint32_t)len;
	f->data = copy;
	n->q_count++;
	n->q_bytes += len;
	pthread_mutex_unlock(&n->qlock);
	return 1;
}

void net_notify(struct net *n)
{
	pthread_mutex_lock(&n->qlock);
	void (*fn)(void *) = n->notify;
	void *opaque = n->opaque;
	pthread_mutex_unlock(&n->qlock);
	if (fn)
		fn(opaque);
}

void net_attach(struct net *n, void (*notify)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&n->qlock);
	n->notify = notify;
	n->opaque = opaque;
	pthread_mutex_unlock(&n->qlock);
}

ssize_t net_peek(struct net *n)
{
	pthread_mutex_lock(&n->qlock);
	ssize_t r = n->q_count ? (ssize_t)n->q[n->q_head].len : -EAGAIN;
	pthread_mutex_unlock(&n->qlock);
	return r;
}

ssize_t net_recv(struct net *n, void *buf, size_t len)
{
	pthread_mutex_lock(&n->qlock);
	if (!n->q_count) {
		pthread_mutex_unlock(&n->qlock);
		return -EAGAIN;
	}
	struct net_frame *f = &n->q[n->q_head];
	if (f->len > len) {
		pthread_mutex_unlock(&n->qlock);
		return -EMSGSIZE;
	}
	ssize_t r = f->len;
	memcpy(buf, f->data, f->len);
	free(f->data);
	f->data = NULL;
	n->q_head = (n->q_head + 1) % NET_RXQ_FRAMES;
	n->q_count--;
	n->q_bytes -= (size_t)r;
	pthread_mutex_unlock(&n->qlock);
	return r;
}

unsigned net_mtu(const struct net *n)
{
	return n->mtu ? n->mtu : 1500;
}

uint64_t net_dropped(const struct net *n)
{
	return n->dropped;
}

int net_send(struct net *n, const struct iovec *iov, int iovcnt)
{
	return n->send(n, iov, iovcnt);
}

int net_open(struct net **out, const char *spec, void (*notify)(void *opaque), void *opaque, char *err, size_t errlen)
{
	struct net *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	pthread_mutex_init(&n->qlock, NULL);
	n->notify = notify;
	n->opaque = opaque;

	size_t kl = strcspn(spec, ",");
	const char *opts = spec[kl] ? spec + kl + 1 : "";
	int r;
	if (kl == 4 && !strncmp(spec, "user", 4)) {
		r = slirp_net_open(n, opts, err, errlen);
	} else if (kl == 3 && !strncmp(spec, "tap", 3)) {
		r = tap_net_open(n, opts, err, errlen);
	} else {
		snprintf(err, errlen, "--net '%s': the kind must be user or tap", spec);
		r = -EINVAL;
	}
	if (r < 0) {
		pthread_mutex_destroy(&n->qlock);
		free(n);
		return r;
	}
	*out = n;
	return 0;
}

/* A replay's NIC: what the guest sends goes nowhere (the replay's frames
 * come from its log, machine/replay.h), and nothing ever arrives. */
static int null_send(struct net *n, const struct iovec *iov, int iovcnt)
{
	(void)n, (void)iov, (void)iovcnt;
	return 0;
}

static void null_stop(struct net *n)
{
	(void)n;
}

int net_open_null(struct net **out, unsigned mtu)
{
	struct net *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	pthread_mutex_init(&n->qlock, NULL);
	n->send = null_send;
	n->stop = null_stop;
	n->mtu = mtu;
	*out = n;
	return 0;
}

void net_close(struct net *n)
{
	if (!n)
		return;
	n->stop(n);
	for (unsigned k = 0; k < n->q_count; k++)
		free(n->q[(n->q_head + k) % NET_RXQ_FRAMES].data);
	pthread_mutex_destroy(&n->qlock);
	free(n);
}
