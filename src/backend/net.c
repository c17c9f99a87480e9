/* Network backends: the spec parser, the queue of frames for the guest
 * that every backend fills from its thread, and the rate limits. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/net_impl.h"
#include "state/stream.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A frame held back by the rx limit is not there yet. Called with qlock. */
static int head_due(const struct net *n, uint64_t now)
{
	return n->q_count && n->q[n->q_head].due_ns <= now;
}

int net_queue_frame(struct net *n, const void *buf, size_t len)
{
	if (len == 0 || len > NET_FRAME_MAX)
		return 0;
	uint8_t *copy = malloc(len);
	pthread_mutex_lock(&n->qlock);
	/* Never waits: the backends call this from their own threads, slirp's
	 * with its lock held, so the guest's own frames (its ACKs) would wait
	 * too. They hold back reading instead (net_rx_hold_ns). */
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
	f->due_ns = 0;
	if (n->rx_on) {
		/* tokens only for a frame that is queued; frames stay in order */
		uint64_t now = mono_ns(), w = rate_limit_take(&n->rx, len, 1, now);
		f->due_ns = w ? now + w : 0;
		if (n->rx_last_due > now && f->due_ns < n->rx_last_due)
			f->due_ns = n->rx_last_due;
		n->rx_last_due = f->due_ns;
		if (f->due_ns)
			pthread_cond_signal(&n->pacer_wake);
	}
	n->q_count++;
	n->q_bytes += len;
	pthread_mutex_unlock(&n->qlock);
	return 1;
}

uint64_t net_rx_hold_ns(struct net *n)
{
	pthread_mutex_lock(&n->qlock);
	uint64_t hold = 0, now = mono_ns();
	if (n->rx_on && n->q_count) {
		uint64_t head = n->q[n->q_head].due_ns;
		if (n->rx_last_due > now + NET_RX_AHEAD_NS)
			hold = n->rx_last_due - now - NET_RX_AHEAD_NS;
		else if (head > now && (n->q_count >= NET_RXQ_FRAMES / 2 || n->q_bytes >= NET_RXQ_BYTES / 2))
			hold = head - now;
	}
	pthread_mutex_unlock(&n->qlock);
	return hold;
}

/* Notifies the device when a held-back frame at the queue's head is due
 * (once per frame: a guest without buffers takes it when it gives some). */
static void *net_pacer(void *arg)
{
	struct net *n = arg;
	uint64_t done = 0;
	pthread_mutex_lock(&n->qlock);
	while (!n->pacer_stop) {
		uint64_t due = n->q_count ? n->q[n->q_head].due_ns : 0;
		if (!due || due <= done) {
			pthread_cond_wait(&n->pacer_wake, &n->qlock);
			continue;
		}
		if (due > mono_ns()) {
			struct timespec ts = {.tv_sec = (time_t)(due / 1000000000ull),
					      .tv_nsec = (long)(due % 1000000000ull)};
			pthread_cond_timedwait(&n->pacer_wake, &n->qlock, &ts);
			continue;
		}
		done = due;
		void (*fn)(void *) = n->notify;
		void *opaque = n->opaque;
		pthread_mutex_unlock(&n->qlock);
		if (fn)
			fn(opaque);
		pthread_mutex_lock(&n->qlock);
	}
	pthread_mutex_unlock(&n->qlock);
	return NULL;
}

/* The pacer, once rx has a limit; its signals are the vCPU threads'. */
static int pacer_start(struct net *n)
{
	if (n->pacer_started)
		return 0;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&n->pacer, NULL, net_pacer, n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return -r;
	pthread_setname_np(n->pacer, "corral-netpace");
	n->pacer_started = 1;
	return 0;
}

static void net_pacer_stop(struct net *n)
{
	if (!n->pacer_started)
		return;
	pthread_mutex_lock(&n->qlock);
	n->pacer_stop = 1;
	pthread_cond_signal(&n->pacer_wake);
	pthread_mutex_unlock(&n->qlock);
	pthread_join(n->pacer, NULL);
	n->pacer_started = 0;
}

void net_get_rate(struct net *n, struct rate_cfg *tx, struct rate_cfg *rx)
{
	rate_limit_get(&n->tx, tx);
	rate_limit_get(&n->rx, rx);
}

void net_set_rate(struct net *n, const struct rate_cfg *tx, const struct rate_cfg *rx)
{
	rate_limit_set(&n->tx, tx);
	n->tx_on = !rate_cfg_unlimited(tx);
	rate_limit_set(&n->rx, rx);
	pthread_mutex_lock(&n->qlock);
	/* frames held back under the old limit are due now */
	for (unsigned k = 0; k < n->q_count; k++)
		n->q[(n->q_head + k) % NET_RXQ_FRAMES].due_ns = 0;
	n->rx_last_due = 0;
	n->rx_on = !rate_cfg_unlimited(rx) && pacer_start(n) == 0;
	pthread_mutex_unlock(&n->qlock);
	net_notify(n);
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
	ssize_t r = head_due(n, n->rx_on ? mono_ns() : 0) ? (ssize_t)n->q[n->q_head].len : -EAGAIN;
	pthread_mutex_unlock(&n->qlock);
	return r;
}

ssize_t net_recv(struct net *n, void *buf, size_t len)
{
	pthread_mutex_lock(&n->qlock);
	if (!head_due(n, n->rx_on ? mono_ns() : 0)) {
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
	if (n->rx_on)
		pthread_cond_signal(&n->pacer_wake); /* a new head */
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
	if (n->tx_on) {
		uint64_t len = 0;
		for (int i = 0; i < iovcnt; i++)
			len += iov[i].iov_len;
		rate_limit_wait(&n->tx, len, 1);
	}
	return n->send(n, iov, iovcnt);
}

/* Takes the rate options out of a backend's options (into tx and rx);
 * what is left goes to the backend. 0 or -EINVAL with err. */
static int split_rate_opts(const char *spec, const char *opts, char *rest, size_t restlen, struct rate_cfg *tx,
			   struct rate_cfg *rx, char *err, size_t errlen)
{
	size_t used = 0;
	rest[0] = 0;
	for (const char *p = opts; *p;) {
		size_t l = strcspn(p, ",");
		char opt[160];
		if (l < sizeof(opt) && (!strncmp(p, "tx_", 3) || !strncmp(p, "rx_", 3))) {
			memcpy(opt, p + 3, l - 3);
			opt[l - 3] = 0;
			char e[200];
			int r = rate_cfg_parse_opt(opt, p[0] == 't' ? tx : rx, e, sizeof(e));
			if (r < 0) {
				snprintf(err, errlen, "--net '%s': '%.*s': %s", spec, (int)l, p, e);
				return r;
			}
			if (r > 0) {
				p += l + (p[l] == ',');
				continue;
			}
		}
		if (used + l + 2 > restlen) {
			snprintf(err, errlen, "--net '%s': too long", spec);
			return -EINVAL;
		}
		used += (size_t)snprintf(rest + used, restlen - used, "%s%.*s", used ? "," : "", (int)l, p);
		p += l + (p[l] == ',');
	}
	return 0;
}

int net_open(struct net **out, const char *spec, void (*notify)(void *opaque), void *opaque, char *err, size_t errlen)
{
	size_t kl = strcspn(spec, ",");
	struct rate_cfg tx = {0}, rx = {0};
	size_t restlen = strlen(spec) + 1;
	char *opts = malloc(restlen);
	int r = opts ? 0 : -ENOMEM;
	if (!r &&
	    (r = split_rate_opts(spec, spec[kl] ? spec + kl + 1 : "", opts, restlen, &tx, &rx, err, errlen)) < 0) {
		free(opts);
		return r;
	}
	struct net *n = opts ? calloc(1, sizeof(*n)) : NULL;
	if (!n) {
		free(opts);
		return -ENOMEM;
	}
	pthread_mutex_init(&n->qlock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->pacer_wake, &ca);
	pthread_condattr_destroy(&ca);
	rate_limit_init(&n->tx, &tx);
	rate_limit_init(&n->rx, &rx);
	n->tx_on = !rate_cfg_unlimited(&tx);
	n->notify = notify;
	n->opaque = opaque;
	if (!rate_cfg_unlimited(&rx) && (r = pacer_start(n)) < 0) {
		snprintf(err, errlen, "--net '%s': cannot start a thread: %s", spec, strerror(-r));
		goto err;
	}
	n->rx_on = !rate_cfg_unlimited(&rx);

	if (kl == 4 && !strncmp(spec, "user", 4)) {
		r = slirp_net_open(n, opts, err, errlen);
	} else if (kl == 3 && !strncmp(spec, "tap", 3)) {
		r = tap_net_open(n, opts, err, errlen);
	} else {
		snprintf(err, errlen, "--net '%s': the kind must be user or tap", spec);
		r = -EINVAL;
	}
	if (r < 0)
		goto err;
	free(opts);
	*out = n;
	return 0;
err:
	net_pacer_stop(n);
	free(opts);
	rate_limit_destroy(&n->tx);
	rate_limit_destroy(&n->rx);
	pthread_cond_destroy(&n->pacer_wake);
	pthread_mutex_destroy(&n->qlock);
	free(n);
	return r;
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
	net_pacer_stop(n);
	rate_limit_destroy(&n->tx);
	rate_limit_destroy(&n->rx);
	pthread_cond_destroy(&n->pacer_wake);
	for (unsigned k = 0; k < n->q_count; k++)
		free(n->q[(n->q_head + k) % NET_RXQ_FRAMES].data);
	pthread_mutex_destroy(&n->qlock);
	free(n);
}

/* Fields: u8 kind (NET_STATE_*), and for a kind other than NONE: u32 the
 * backend's version of its blob, u32 length, the blob, u32 the TCP
 * connections open through it (lost: said at the restore). */
int net_state_save(struct net *n, struct state_writer *w)
{
	if (!n->save || n->state_kind == NET_STATE_NONE) {
		state_put_u8(w, NET_STATE_NONE);
		return 0;
	}
	uint8_t *buf = malloc(NET_STATE_MAX);
	if (!buf)
		return -ENOMEM;
	uint32_t version = 0;
	size_t len = 0;
	int r = n->save(n, &version, buf, NET_STATE_MAX, &len);
	if (r >= 0) {
		state_put_u8(w, n->state_kind);
		state_put_u32(w, version);
		state_put_u32(w, (uint32_t)len);
		state_put_bytes(w, buf, len);
		state_put_u32(w, n->connections ? n->connections(n) : 0);
	}
	free(buf);
	return r;
}

unsigned net_connections(struct net *n)
{
	return n && n->connections ? n->connections(n) : 0;
}

int net_state_load(struct net *n, struct state_reader *r, unsigned *lost)
{
	*lost = 0;
	uint8_t kind = state_get_u8(r);
	if (!state_reader_ok(r))
		return -EINVAL;
	if (kind == NET_STATE_NONE)
		return 0;
	if (kind != NET_STATE_USER) {
		state_fail(r, "network backend state of unknown kind %u", kind);
		return -EINVAL;
	}
	uint32_t version = state_get_u32(r);
	uint32_t len = state_get_count(r, NET_STATE_MAX, "bytes of network backend state");
	uint8_t *buf = malloc(NET_STATE_MAX);
	if (!buf) {
		state_fail(r, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	state_get_bytes(r, buf, len);
	*lost = state_get_u32(r);
	int ret = 0;
	if (!state_reader_ok(r)) {
		ret = -EINVAL;
	} else if (n->load && n->state_kind == kind) {
		char err[STATE_ERR_MAX - 32];
		if ((ret = n->load(n, version, buf, len, err, sizeof(err))) < 0)
			state_fail(r, "%s", err);
	}
	/* another kind of backend now (--net given at restore): it starts
	 * afresh, as after a network outage */
	free(buf);
	return ret;
}

void net_ports_release(struct net *n)
{
	if (n->ports_release)
		n->ports_release(n);
}

int net_ports_take(struct net *n, char *err, size_t errlen)
{
	return n->ports_take ? n->ports_take(n, err, errlen) : 0;
}
