/* The HTTP/1.1 client of http.h: connect, send, read to the end, parse the
 * status line and the Content-Length. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/http.h"

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes: 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int send_all(int fd, const char *p, size_t n, long long deadline)
{
	while (n) {
		int r = wait_fd(fd, POLLOUT, deadline);
		if (r < 0)
			return r;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Parses the answer in buf (n bytes) in place: status, body start, body length. */
static int parse_answer(char *buf, size_t n, int *status, size_t *off, size_t *blen)
{
	char *end = memmem(buf, n, "\r\n\r\n", 4);
	int st;
	if (n < 12 || strncmp(buf, "HTTP/1.", 7) || !end || sscanf(buf + 8, " %3d", &st) != 1 || st < 100 || st > 599)
		return -EPROTO;
	*off = (size_t)(end - buf) + 4;
	*blen = n - *off;
	/* Content-Length, if given, bounds the body (case-insensitive header name). */
	for (char *h = strstr(buf, "\r\n"); h && h < end; h = strstr(h + 2, "\r\n")) {
		if (!strncasecmp(h + 2, "Content-Length:", 15)) {
			unsigned long long cl = strtoull(h + 17, NULL, 10);
			if (cl < *blen)
				*blen = (size_t)cl;
		}
	}
	*status = st;
	return 0;
}

int http_call(const char *sock, const char *method, const char *path, const char *body, int timeout_ms, int *status,
	      char **out, size_t *len, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	long long deadline = now_ms() + timeout_ms;
	size_t bodylen = body ? strlen(body) : 0;
	char head[1024];
	int r;
	*out = NULL;
	*len = 0;
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket '%s': longer than %zu bytes", sock, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, sock, strlen(sock));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(-r));
		return r;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot connect to '%s': %s", sock, strerror(-r));
		goto err_close;
	}
	int hl = snprintf(head, sizeof(head),
			  "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
			  method, path, bodylen ? "Content-Type: application/json\r\n" : "", bodylen);
	if (hl < 0 || (size_t)hl >= sizeof(head)) {
		r = -ENAMETOOLONG;
		snprintf(err, errlen, "request path too long");
		goto err_close;
	}
	if ((r = send_all(fd, head, (size_t)hl, deadline)) < 0 || (r = send_all(fd, body, bodylen, deadline)) < 0) {
		snprintf(err, errlen, "'%s': sending the request: %s", sock, strerror(-r));
		goto err_close;
	}
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	if (!buf) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		goto err_close;
	}
	for (;;) {
		if (n == cap) {
			if (cap >= HTTP_ANSWER_MAX) {
				r = -EFBIG;
				snprintf(err, errlen, "'%s': the answer is larger than %u bytes", sock,
					 HTTP_ANSWER_MAX);
				goto err_free;
			}
			char *nb = realloc(buf, cap * 2 + 1);
			if (!nb) {
				r = -ENOMEM;
				snprintf(err, errlen, "%s", strerror(ENOMEM));
				goto err_free;
			}
			buf = nb;
			cap *= 2;
		}
		if ((r = wait_fd(fd, POLLIN, deadline)) < 0) {
			snprintf(err, errlen, "'%s': no answer within %d ms", sock, timeout_ms);
			goto err_free;
		}
		ssize_t got = recv(fd, buf + n, cap - n, MSG_DONTWAIT);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			r = -errno;
			snprintf(err, errlen, "'%s': reading the answer: %s", sock, strerror(-r));
			goto err_free;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	buf[n] = 0;
	size_t off, blen;
	if ((r = parse_answer(buf, n, status, &off, &blen)) < 0) {
		snprintf(err, errlen, "'%s': the answer is not HTTP", sock);
		goto err_free;
	}
	memmove(buf, buf + off, blen);
	buf[blen] = 0;
	*out = buf;
	*len = blen;
	close(fd);
	return 0;

err_free:
	free(buf);
err_close:
	close(fd);
	return r;
}
