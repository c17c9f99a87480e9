/* User-mode networking through libslirp: a NAT'd network 10.0.2.0/24 with
 * DHCP and DNS, reached without privileges. libslirp is not thread-safe, so
 * every call into it holds s->lock: the backend thread's poll loop and
 * net_send from the vCPU thread. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <slirp/libslirp.h>

#include "backend/dynlib.h"
#include "backend/net_impl.h"

#define SLIRP_MAX_TIMERS 32
#define SLIRP_MAX_FDS 1024
#define SLIRP_MAX_FWD 16
/* The link between guest and slirp is not a wire: a 64 KiB MTU lets the
 * guest hand over 45 times more data per frame than Ethernet's 1500 (its
 * TCP then makes one segment, one checksum and one notify where it would
 * make 45), like a TSO NIC. libslirp takes up to 65521. */
#define SLIRP_MTU 65520

/* libslirp (and the GLib under it, about a megabyte resident) is loaded
 * only by a VM that asks for user networking. */
static struct {
	__typeof__(&slirp_new) new_;
	__typeof__(&slirp_input) input;
	__typeof__(&slirp_pollfds_fill) pollfds_fill;
	__typeof__(&slirp_pollfds_poll) pollfds_poll;
	__typeof__(&slirp_handle_timer) handle_timer;
	__typeof__(&slirp_add_hostfwd) add_hostfwd;
	__typeof__(&slirp_remove_hostfwd) remove_hostfwd;
	__typeof__(&slirp_cleanup) cleanup;
	__typeof__(&slirp_state_save) state_save;
	__typeof__(&slirp_state_load) state_load;
	__typeof__(&slirp_state_version) state_version;
	__typeof__(&slirp_connection_info) connection_info;
	void (*g_free)(void *p);
} lib;

static int slirp_lib_load(char *err, size_t errlen)
{
	static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
	int r = 0;
	pthread_mutex_lock(&once);
	if (!lib.new_) {
		void *h = dynlib_open("libslirp.so.0", "--net user", "libslirp0", &r, err, errlen);
		if (!h)
			goto out;
#define SLIRP_SYM(field, name)                                                                                         \
	if (!(*(void **)&lib.field = dlsym(h, name)))                                                                  \
		r = -ENOENT;
		SLIRP_SYM(input, "slirp_input")
		SLIRP_SYM(pollfds_fill, "slirp_pollfds_fill")
		SLIRP_SYM(pollfds_poll, "slirp_pollfds_poll")
		SLIRP_SYM(handle_timer, "slirp_handle_timer")
		SLIRP_SYM(add_hostfwd, "slirp_add_hostfwd")
		SLIRP_SYM(remove_hostfwd, "slirp_remove_hostfwd")
		SLIRP_SYM(cleanup, "slirp_cleanup")
		SLIRP_SYM(state_save, "slirp_state_save")
		SLIRP_SYM(state_load, "slirp_state_load")
		SLIRP_SYM(state_version, "slirp_state_version")
		SLIRP_SYM(connection_info, "slirp_connection_info")
		SLIRP_SYM(g_free, "g_free") /* GLib, which libslirp brings */
#undef SLIRP_SYM
		void *fn = dlsym(h, "slirp_new");
		if (r < 0 || !fn) {
			snprintf(err, errlen,
				 "--net user: libslirp.so.0 lacks the functions corral needs (version 4.7 or later)");
			r = -ENOENT;
			goto out;
		}
		*(void **)&lib.new_ = fn; /* last: it marks the table complete */
	}
out:
	pthread_mutex_unlock(&once);
	return r;
}

int net_preload(const char *spec, char *err, size_t errlen)
{
	if (strcmp(spec, "user") && strncmp(spec, "user,", 5))
		return 0;
	return slirp_lib_load(err, errlen);
}

struct slirp_timer {
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms; /* -1: not armed */
	int used;
};

struct slirp_fwd {
	int udp, hport, gport;
	struct in_addr haddr, gaddr;
	char text[128];
};

struct slirp_be {
	struct net *n;
	struct slirp_fwd fwd[SLIRP_MAX_FWD];
	unsigned nfwd;
	int released; /* the hostfwd ports were let go (net_ports_release) */
	Slirp *slirp;
	pthread_mutex_t lock;
	pthread_t thread;
	int wake_fd; /* eventfd: new work for the poll loop, or stop */
	volatile int stop;
	struct slirp_timer timers[SLIRP_MAX_TIMERS];
	struct pollfd fds[SLIRP_MAX_FDS + 1];
	unsigned nfds;
	int queued;		   /* frames queued while the lock was held: notify after */
	uint8_t tx[NET_FRAME_MAX]; /* a guest's frame, whole (under lock) */
};

static int64_t slirp_clock_ns(void *opaque)
{
	(void)opaque;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static ssize_t slirp_send_packet(const void *buf, size_t len, void *opaque)
{
	struct slirp_be *s = opaque;
	if (net_queue_frame(s->n, buf, len))
		s->queued = 1;
	return (ssize_t)len;
}

static void slirp_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	/* The guest sent something slirp refuses: not corral's error. */
	static int said;
	if (!said) {
		said = 1;
		fprintf(stderr, "corral: net user: guest error: %s\n", msg);
	}
}

static void *slirp_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct slirp_be *s = opaque;
	for (unsigned k = 0; k < SLIRP_MAX_TIMERS; k++) {
		struct slirp_timer *t = &s->timers[k];
		if (!t->used) {
			*t = (struct slirp_timer){.id = id, .cb_opaque = cb_opaque, .expire_ms = -1, .used = 1};
			return t;
		}
	}
	return NULL;
}

static void slirp_timer_free(void *timer, void *opaque)
{
	(void)opaque;
	struct slirp_timer *t = timer;
	if (t)
		t->used = 0;
}

static void slirp_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct slirp_be *s = opaque;
	struct slirp_timer *t = timer;
	if (!t)
		return;
	t->expire_ms = expire_ms;
	uint64_t one = 1;
	if (write(s->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the loop wakes anyway */
	}
}

static void slirp_poll_nop(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void slirp_notify_cb(void *opaque)
{
	struct slirp_be *s = opaque;
	uint64_t one = 1;
	if (write(s->wake_fd, &one, sizeof(one)) < 0) {
		/* saturated: the loop wakes anyway */
	}
}

static const SlirpCb slirp_callbacks = {
	.send_packet = slirp_send_packet,
	.guest_error = slirp_guest_error,
	.clock_get_ns = slirp_clock_ns,
	.timer_free = slirp_timer_free,
	.timer_mod = slirp_timer_mod,
	.register_poll_fd = slirp_poll_nop,
	.unregister_poll_fd = slirp_poll_nop,
	.notify = slirp_notify_cb,
	.timer_new_opaque = slirp_timer_new_opaque,
};

static short slirp_to_poll(int ev)
{
	short p = 0;
	if (ev & SLIRP_POLL_IN)
		p |= POLLIN;
	if (ev & SLIRP_POLL_OUT)
		p |= POLLOUT;
	if (ev & SLIRP_POLL_PRI)
		p |= POLLPRI;
	return p;
}

static int slirp_add_poll(int fd, int events, void *opaque)
{
	struct slirp_be *s = opaque;
	if (s->nfds >= SLIRP_MAX_FDS)
		return -1;
	s->fds[s->nfds] = (struct pollfd){.fd = fd, .events = slirp_to_poll(events)};
	return (int)s->nfds++;
}

static int slirp_get_revents(int idx, void *opaque)
{
	struct slirp_be *s = opaque;
	if (idx < 0 || (unsigned)idx >= s->nfds)
		return 0;
	short r = s->fds[idx].revents;
	int ev = 0;
	if (r & POLLIN)
		ev |= SLIRP_POLL_IN;
	if (r & POLLOUT)
		ev |= SLIRP_POLL_OUT;
	if (r & POLLPRI)
		ev |= SLIRP_POLL_PRI;
	if (r & POLLERR)
		ev |= SLIRP_POLL_ERR;
	if (r & POLLHUP)
		ev |= SLIRP_POLL_HUP;
	return ev;
}

/* Called with s->lock held: fire expired timers; returns ms to the next. */
static uint32_t slirp_run_timers(struct slirp_be *s)
{
	int64_t now = slirp_clock_ns(NULL) / 1000000;
	uint32_t next = UINT32_MAX;
	for (unsigned k = 0; k < SLIRP_MAX_TIMERS; k++) {
		struct slirp_timer *t = &s->timers[k];
		if (!t->used || t->expire_ms < 0)
			continue;
		if (t->expire_ms <= now) {
			t->expire_ms = -1;
			lib.handle_timer(s->slirp, t->id, t->cb_opaque);
		}
	}
	for (unsigned k = 0; k < SLIRP_MAX_TIMERS; k++) {
		struct slirp_timer *t = &s->timers[k];
		if (t->used && t->expire_ms >= 0) {
			int64_t d = t->expire_ms > now ? t->expire_ms - now : 0;
			if (d < (int64_t)next)
				next = (uint32_t)d;
		}
	}
	return next;
}

/* Unlocks s->lock, then tells the device about frames queued meanwhile. */
static void slirp_unlock_notify(struct slirp_be *s)
{
	int q = s->queued;
	s->queued = 0;
	pthread_mutex_unlock(&s->lock);
	if (q)
		net_notify(s->n);
}

static void *slirp_thread(void *arg)
{
	struct slirp_be *s = arg;
	while (!s->stop) {
		pthread_mutex_lock(&s->lock);
		uint32_t timeout = slirp_run_timers(s);
		s->nfds = 0;
		lib.pollfds_fill(s->slirp, &timeout, slirp_add_poll, s);
		unsigned nfds = s->nfds;
		slirp_unlock_notify(s);

		/* The rx limit holds frames back: read nothing more from the
		 * host's sockets until they drain (TCP senders slow down). */
		uint64_t hold = net_rx_hold_ns(s->n);
		if (hold) {
			for (unsigned k = 0; k < nfds; k++)
				s->fds[k].events &= (short)~(POLLIN | POLLPRI);
			uint64_t hold_ms = hold / 1000000 + 1;
			if (hold_ms < timeout)
				timeout = (uint32_t)hold_ms;
		}
		s->fds[nfds] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
		int ms = timeout > 1000 ? 1000 : (int)timeout;
		int r = poll(s->fds, nfds + 1, ms);
		if (r > 0 && (s->fds[nfds].revents & POLLIN)) {
			uint64_t v;
			if (read(s->wake_fd, &v, sizeof(v)) < 0) {
				/* nothing to take: fine */
			}
		}
		pthread_mutex_lock(&s->lock);
		s->nfds = nfds;
		lib.pollfds_poll(s->slirp, r < 0, slirp_get_revents, s);
		slirp_unlock_notify(s);
	}
	return NULL;
}

static int slirp_net_send(struct net *n, const struct iovec *iov, int iovcnt)
{
	struct slirp_be *s = n->be;
	size_t len = 0;
	for (int i = 0; i < iovcnt; i++)
		if ((len += iov[i].iov_len) > sizeof(s->tx))
			return -EMSGSIZE;
	/* the frame in one piece, in the backend's buffer (under its lock:
	 * several vCPU threads may send at once) */
	pthread_mutex_lock(&s->lock);
	len = 0;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(s->tx + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	lib.input(s->slirp, s->tx, (int)len);
	slirp_unlock_notify(s);
	/* New connections or data: the poll loop has new descriptors to watch. */
	slirp_notify_cb(s);
	return 0;
}

static void slirp_net_stop(struct net *n)
{
	struct slirp_be *s = n->be;
	s->stop = 1;
	slirp_notify_cb(s);
	pthread_join(s->thread, NULL);
	/* What the guest sent last (a reply just before it powered off) may
	 * still sit in slirp's socket buffers: give it a few rounds to reach
	 * the host's sockets. */
	for (int round = 0; round < 5; round++) {
		uint32_t timeout = 0;
		s->nfds = 0;
		lib.pollfds_fill(s->slirp, &timeout, slirp_add_poll, s);
		int r = poll(s->fds, s->nfds, 20);
		if (r <= 0)
			break;
		lib.pollfds_poll(s->slirp, 0, slirp_get_revents, s);
	}
	lib.cleanup(s->slirp);
	close(s->wake_fd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- State: what libslirp saves of itself ----
 *
 * libslirp (4.x, state version 4) saves the sockets of guestfwd rules
 * (corral makes none), its IP ID counter and its DHCP lease table; the
 * host sockets of hostfwd and of the guest's own connections are not part
 * of it: after a restore those connections are gone, as after a NAT
 * gateway restarted (the guest's next segment on one gets a reset).
 * libslirp's loader trusts the lengths it reads, so corral hands it only
 * the one layout it knows, checked byte by byte first:
 *   u8 0 (no guestfwd sockets), be16 ip_id,
 *   SLIRP_BOOTP_CLIENTS x { be16 allocated (0 or 1), u8 mac[6] }. */
#define SLIRP_STATE_V4 4
#define SLIRP_BOOTP_CLIENTS 16 /* libslirp's NB_BOOTP_CLIENTS */
#define SLIRP_STATE_V4_LEN (1 + 2 + SLIRP_BOOTP_CLIENTS * 8)

struct slirp_blob {
	uint8_t *buf;
	size_t cap, len, pos;
	int overflow;
};

static ssize_t slirp_blob_write(const void *buf, size_t len, void *opaque)
{
	struct slirp_blob *b = opaque;
	if (len > b->cap - b->len) {
		b->overflow = 1;
		return -1;
	}
	memcpy(b->buf + b->len, buf, len);
	b->len += len;
	return (ssize_t)len;
}

static ssize_t slirp_blob_read(void *buf, size_t len, void *opaque)
{
	struct slirp_blob *b = opaque;
	if (len > b->len - b->pos)
		return -1; /* never, for a layout checked whole */
	memcpy(buf, b->buf + b->pos, len);
	b->pos += len;
	return (ssize_t)len;
}

static int slirp_net_save(struct net *n, uint32_t *version, uint8_t *buf, size_t cap, size_t *len)
{
	struct slirp_be *s = n->be;
	struct slirp_blob b = {.buf = buf, .cap = cap};
	pthread_mutex_lock(&s->lock);
	lib.state_save(s->slirp, slirp_blob_write, &b);
	*version = (uint32_t)lib.state_version();
	pthread_mutex_unlock(&s->lock);
	*len = b.len;
	return b.overflow ? -EOVERFLOW : 0;
}

/* The TCP connections in libslirp's own report (its only way to tell):
 * one line per socket, "  TCP[STATE] ..."; listeners say HOST_FORWARD. */
static unsigned slirp_connections(struct net *n)
{
	static const char *const live[] = {"TCP[SYN_SENT]",   "TCP[SYN_RCVD]", "TCP[ESTABLISHED]", "TCP[CLOSE_WAIT]",
					   "TCP[FIN_WAIT_1]", "TCP[CLOSING]",  "TCP[LAST_ACK]",	   "TCP[FIN_WAIT_2]"};
	struct slirp_be *s = n->be;
	pthread_mutex_lock(&s->lock);
	char *info = lib.connection_info(s->slirp);
	pthread_mutex_unlock(&s->lock);
	unsigned count = 0;
	for (const char *line = info; line && *line;) {
		const char *p = line + strspn(line, " ");
		for (unsigned k = 0; k < sizeof(live) / sizeof(live[0]); k++)
			if (!strncmp(p, live[k], strlen(live[k])))
				count++;
		const char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
	lib.g_free(info);
	return count;
}

/* NULL if buf is a state corral can hand to libslirp, else why not. */
const char *slirp_state_check(uint32_t version, const uint8_t *buf, size_t len)
{
	if (version != SLIRP_STATE_V4)
		return "libslirp state of a version this corral does not read (it reads 4)";
	if (len != SLIRP_STATE_V4_LEN)
		return "libslirp state of the wrong length";
	if (buf[0] != 0)
		return "libslirp state with guestfwd sockets (corral makes none)";
	for (unsigned k = 0; k < SLIRP_BOOTP_CLIENTS; k++) {
		const uint8_t *c = buf + 3 + k * 8;
		if (c[0] != 0 || c[1] > 1)
			return "libslirp state: a DHCP lease marked neither free nor taken";
	}
	return NULL;
}

static int slirp_net_load(struct net *n, uint32_t version, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	struct slirp_be *s = n->be;
	const char *bad = slirp_state_check(version, buf, len);
	if (bad) {
		snprintf(err, errlen, "user network: %s", bad);
		return -EINVAL;
	}
	struct slirp_blob b = {.buf = (uint8_t *)buf, .cap = len, .len = len};
	pthread_mutex_lock(&s->lock);
	int r = lib.state_load(s->slirp, SLIRP_STATE_V4, slirp_blob_read, &b);
	pthread_mutex_unlock(&s->lock);
	if (r < 0 || b.pos != len) {
		snprintf(err, errlen, "user network: libslirp refused its saved state (%d)", r);
		return -EINVAL;
	}
	return 0;
}

/* The host ports of the hostfwd rules, closed for another process (a
 * migration's destination on this host) and opened again if it fails.
 * Connections already accepted stay. */
static void slirp_ports_release(struct net *n)
{
	struct slirp_be *s = n->be;
	pthread_mutex_lock(&s->lock);
	if (!s->released)
		for (unsigned k = 0; k < s->nfwd; k++)
			lib.remove_hostfwd(s->slirp, s->fwd[k].udp, s->fwd[k].haddr, s->fwd[k].hport);
	s->released = 1;
	pthread_mutex_unlock(&s->lock);
	slirp_notify_cb(s); /* the poll loop stops watching the closed sockets */
}

static int slirp_ports_take(struct net *n, char *err, size_t errlen)
{
	struct slirp_be *s = n->be;
	int r = 0;
	pthread_mutex_lock(&s->lock);
	for (unsigned k = 0; s->released && k < s->nfwd; k++) {
		const struct slirp_fwd *f = &s->fwd[k];
		errno = 0;
		if (lib.add_hostfwd(s->slirp, f->udp, f->haddr, f->hport, f->gaddr, f->gport) < 0 && r == 0) {
			int e = errno;
			snprintf(err, errlen, "hostfwd=%s: cannot listen on the host port again (%s)", f->text,
				 e ? strerror(e) : "in use?");
			r = -EADDRINUSE;
		}
	}
	s->released = 0;
	pthread_mutex_unlock(&s->lock);
	slirp_notify_cb(s);
	return r;
}

/* hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT (QEMU's form) */
static int slirp_parse_fwd(const char *v, int *udp, struct in_addr *haddr, int *hport, struct in_addr *gaddr,
			   int *gport)
{
	char buf[128];
	if (strlen(v) >= sizeof(buf))
		return -1;
	strcpy(buf, v);
	char *p = buf;
	*udp = 0;
	if (!strncmp(p, "tcp:", 4)) {
		p += 4;
	} else if (!strncmp(p, "udp:", 4)) {
		*udp = 1;
		p += 4;
	} else if (*p != ':') {
		return -1;
	} else {
		p++;
	}
	char *dash = strchr(p, '-');
	if (!dash)
		return -1;
	*dash = 0;
	char *guest = dash + 1;
	char *hc = strrchr(p, ':'), *gc = strrchr(guest, ':');
	if (!hc || !gc)
		return -1;
	*hc = 0;
	*gc = 0;
	haddr->s_addr = htonl(INADDR_ANY);
	if (*p && !inet_aton(p, haddr))
		return -1;
	inet_aton("10.0.2.15", gaddr);
	if (*guest && !inet_aton(guest, gaddr))
		return -1;
	char *end;
	long hp = strtol(hc + 1, &end, 10);
	if (*end || hp < 0 || hp > 65535)
		return -1;
	long gp = strtol(gc + 1, &end, 10);
	if (*end || gp < 1 || gp > 65535)
		return -1;
	*hport = (int)hp;
	*gport = (int)gp;
	return 0;
}

int slirp_net_open(struct net *n, const char *opts, char *err, size_t errlen)
{
	struct slirp_fwd fwd[SLIRP_MAX_FWD];
	unsigned nfwd = 0;
	int restricted = 0;

	/* options */
	const char *p = opts;
	while (*p) {
		size_t l = strcspn(p, ",");
		char opt[160];
		if (l >= sizeof(opt)) {
			snprintf(err, errlen, "--net user: option too long");
			return -EINVAL;
		}
		memcpy(opt, p, l);
		opt[l] = 0;
		p += l + (p[l] == ',');
		if (!strncmp(opt, "hostfwd=", 8)) {
			if (nfwd == SLIRP_MAX_FWD) {
				snprintf(err, errlen, "--net user: at most %d hostfwd rules", SLIRP_MAX_FWD);
				return -EINVAL;
			}
			if (slirp_parse_fwd(opt + 8, &fwd[nfwd].udp, &fwd[nfwd].haddr, &fwd[nfwd].hport,
					    &fwd[nfwd].gaddr, &fwd[nfwd].gport) < 0) {
				snprintf(err, errlen,
					 "--net user: '%s': expected hostfwd=tcp|udp:[HOSTADDR]:PORT-[GUESTADDR]:PORT",
					 opt);
				return -EINVAL;
			}
			snprintf(fwd[nfwd].text, sizeof(fwd[nfwd].text), "%s", opt + 8);
			nfwd++;
		} else if (!strcmp(opt, "restrict=on") || !strcmp(opt, "restrict=yes")) {
			restricted = 1;
		} else if (!strcmp(opt, "restrict=off") || !strcmp(opt, "restrict=no")) {
			restricted = 0;
		} else {
			snprintf(err, errlen, "--net user: unknown option '%s' (hostfwd=..., restrict=on|off)", opt);
			return -EINVAL;
		}
	}

	int lr = slirp_lib_load(err, errlen);
	if (lr < 0)
		return lr;
	struct slirp_be *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->n = n;
	pthread_mutex_init(&s->lock, NULL);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		int e = errno;
		snprintf(err, errlen, "--net user: eventfd: %s", strerror(e));
		goto err_lock;
	}

	SlirpConfig cfg = {.version = 4, .restricted = restricted, .in_enabled = true};
	inet_aton("10.0.2.0", &cfg.vnetwork);
	inet_aton("255.255.255.0", &cfg.vnetmask);
	inet_aton("10.0.2.2", &cfg.vhost);
	inet_aton("10.0.2.15", &cfg.vdhcp_start);
	inet_aton("10.0.2.3", &cfg.vnameserver);
	cfg.vhostname = "corral";
	cfg.if_mtu = SLIRP_MTU;
	cfg.if_mru = SLIRP_MTU;
	s->slirp = lib.new_(&cfg, &slirp_callbacks, s);
	if (!s->slirp) {
		snprintf(err, errlen, "--net user: libslirp could not start");
		goto err_fd;
	}
	for (unsigned k = 0; k < nfwd; k++) {
		if (lib.add_hostfwd(s->slirp, fwd[k].udp, fwd[k].haddr, fwd[k].hport, fwd[k].gaddr, fwd[k].gport) < 0) {
			int e = errno;
			snprintf(err, errlen, "--net user: hostfwd=%s: cannot listen on the host port (%s)",
				 fwd[k].text, e ? strerror(e) : "in use?");
			goto err_slirp;
		}
	}
	memcpy(s->fwd, fwd, sizeof(fwd));
	s->nfwd = nfwd;
	n->be = s;
	n->mtu = SLIRP_MTU;
	n->send = slirp_net_send;
	n->stop = slirp_net_stop;
	n->state_kind = NET_STATE_USER;
	n->save = slirp_net_save;
	n->load = slirp_net_load;
	n->connections = slirp_connections;
	n->ports_release = slirp_ports_release;
	n->ports_take = slirp_ports_take;
	if (pthread_create(&s->thread, NULL, slirp_thread, s)) {
		snprintf(err, errlen, "--net user: cannot start the network thread");
		goto err_slirp;
	}
	return 0;

err_slirp:
	lib.cleanup(s->slirp);
err_fd:
	close(s->wake_fd);
err_lock:
	pthread_mutex_destroy(&s->lock);
	free(s);
	return -EINVAL;
}
