/* The control API's client side for the CLI's commands that act on a
 * running corral (snapshot, migrate): plain HTTP/1.1 over its unix socket. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"

#define REPLY_MAX 65536

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int cli_api_request(const char *sock, const char *method, const char *path, json_t *body, json_t **answer,
		    char *msg, size_t msglen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL, *buf = NULL;
	int fd = -1, status = 0;
	msg[0] = 0;
	if (answer)
		*answer = NULL;
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		snprintf(msg, msglen, "'%s': a socket path too long", sock);
		goto out;
	}
	memcpy(sa.sun_path, sock, strlen(sock));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(msg, msglen, "'%s': %s (is a corral serving its API there?)", sock, strerror(errno));
		goto out;
	}
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 method, path, text ? strlen(text) : 0);
	if (send_all(fd, head, (size_t)n) < 0 || (text && send_all(fd, text, strlen(text)) < 0)) {
		snprintf(msg, msglen, "'%s': %s", sock, strerror(errno));
		goto out;
	}
	buf = malloc(REPLY_MAX + 1);
	size_t len = 0;
	while (buf && len < REPLY_MAX) {
		ssize_t k = read(fd, buf + len, REPLY_MAX - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	if (buf)
		buf[len] = 0;
	if (!buf || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(msg, msglen, "'%s': no HTTP answer", sock);
		status = 0;
		goto out;
	}
	char *b = strstr(buf, "\r\n\r\n");
	json_t *j = b ? json_loads(b + 4, 0, NULL) : NULL;
	json_t *fm = j ? json_object_get(j, "fault_message") : NULL;
	if (json_is_string(fm))
		snprintf(msg, msglen, "%s", json_string_value(fm));
	if (answer)
		*answer = j;
	else
		json_decref(j);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(text);
	json_decref(body);
	return status;
}
