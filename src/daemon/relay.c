/* The migration relay of relay.h: a byte pump between two sockets, the
 * hand-shake's lines, and the connection to another corrald. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/relay.h"

#define RELAY_BUF (256 * 1024)

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One direction: bytes read from in wait in buf until out takes them. */
struct dir {
	int in, out;
	int eof;  /* in ended; out shut down once buf is empty */
	int done; /* out shut down */
	size_t len, off;
	char buf[RELAY_BUF];
};

static int step(struct dir *d, short rin, short rout, int *moved)
{
	if (!d->eof && d->len == 0 && (rin & (POLLIN | POLLHUP | POLLERR))) {
		ssize_t n = read(d->in, d->buf, sizeof(d->buf));
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (n == 0)
			d->eof = 1;
		if (n > 0) {
			d->len = (size_t)n;
			d->off = 0;
			*moved = 1;
		}
	}
	if (d->len && (rout & (POLLOUT | POLLERR | POLLHUP))) {
		ssize_t n = send(d->out, d->buf + d->off, d->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (n > 0) {
			d->off += (size_t)n;
			d->len -= (size_t)n;
			*moved = 1;
		}
	}
	if (d->eof && !d->len && !d->done) {
		shutdown(d->out, SHUT_WR);
		d->done = 1;
	}
	return 0;
}

int relay_pump(int a, int b, int idle_ms, char *err, size_t errlen)
{
	/* the buffers are large for a thread's stack */
	struct dir *ab = calloc(2, sizeof(*ab)), *ba = ab + 1;
	if (!ab) {
		snprintf(err, errlen, "relay: out of memory");
		return -ENOMEM;
	}
	ab->in = a, ab->out = b, ba->in = b, ba->out = a;
	long long last = now_ms();
	int r = 0;
	while (!(ab->done && ba->done)) {
		struct pollfd p[2] = {{.fd = a}, {.fd = b}};
		/* a: read for a->b when its buffer is free, write for b->a when it holds bytes */
		if (!ab->eof && !ab->len)
			p[0].events |= POLLIN;
		if (ba->len)
			p[0].events |= POLLOUT;
		if (!ba->eof && !ba->len)
			p[1].events |= POLLIN;
		if (ab->len)
			p[1].events |= POLLOUT;
		int n = poll(p, 2, 1000);
		if (n < 0 && errno != EINTR) {
			r = -errno;
			snprintf(err, errlen, "relay: poll: %s", strerror(-r));
			break;
		}
		int moved = 0;
		if (n > 0) {
			if ((r = step(ab, p[0].revents, p[1].revents, &moved)) < 0 ||
			    (r = step(ba, p[1].revents, p[0].revents, &moved)) < 0) {
				snprintf(err, errlen, "relay: the connection broke: %s", strerror(-r));
				break;
			}
		}
		if (moved)
			last = now_ms();
		else if (now_ms() - last > idle_ms) {
			r = -ETIMEDOUT;
			snprintf(err, errlen, "relay: nothing moved for %d s", idle_ms / 1000);
			break;
		}
	}
	free(ab);
	return r;
}

int relay_read_line(int fd, char *buf, size_t max, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	size_t n = 0;
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr <= 0)
			continue;
		char ch;
		ssize_t got = recv(fd, &ch, 1, MSG_DONTWAIT);
		if (got < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		if (got == 0)
			return -ECONNRESET;
		if (ch == '\n') {
			buf[n] = 0;
			return (int)n;
		}
		if (n + 1 >= max)
			return -EMSGSIZE;
		buf[n++] = ch;
	}
}

int relay_write_all(int fd, const void *p, size_t n, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	const char *c = p;
	while (n) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pf = {.fd = fd, .events = POLLOUT};
		int pr = poll(&pf, 1, (int)left);
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr <= 0)
			continue;
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* connect within timeout_ms: 0 or -errno */
static int connect_wait(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	int r = connect(fd, sa, len) < 0 ? -errno : 0;
	if (r == -EINPROGRESS) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int e = 0;
		socklen_t el = sizeof(e);
		int pr = poll(&p, 1, timeout_ms);
		if (pr == 0)
			r = -ETIMEDOUT;
		else if (pr < 0)
			r = -errno;
		else
			r = getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 ? -errno : -e;
	}
	fcntl(fd, F_SETFL, fl);
	return r;
}

int relay_connect(const char *dest, int timeout_ms, char *err, size_t errlen)
{
	int r, fd;
	if (!strncmp(dest, "tcp:", 4)) {
		char host[256];
		const char *h = dest + 4, *colon = strrchr(h, ':');
		if (!colon || colon == h || !colon[1] || (size_t)(colon - h) >= sizeof(host)) {
			snprintf(err, errlen, "'%.64s': not tcp:HOST:PORT", dest);
			return -EINVAL;
		}
		memcpy(host, h, (size_t)(colon - h));
		host[colon - h] = 0;
		if (host[0] == '[' && host[strlen(host) - 1] == ']') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = 0;
		}
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
		int g = getaddrinfo(host, colon + 1, &hints, &ai);
		if (g || !ai) {
			snprintf(err, errlen, "'%.64s': %s", dest, gai_strerror(g));
			return -EINVAL;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		r = fd < 0 ? -errno : connect_wait(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms);
		freeaddrinfo(ai);
		if (r == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
	} else {
		/* by a descriptor of the socket itself: its path may be longer
		 * than a sockaddr_un holds */
		int pfd = open(dest, O_PATH | O_CLOEXEC);
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		if (pfd < 0) {
			r = -errno;
			snprintf(err, errlen, "'%.200s': %s", dest, strerror(-r));
			return r;
		}
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", pfd);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		r = fd < 0 ? -errno : connect_wait(fd, (struct sockaddr *)&sa, sizeof(sa), timeout_ms);
		close(pfd);
	}
	if (r < 0) {
		snprintf(err, errlen, "cannot reach '%.200s': %s", dest, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}
