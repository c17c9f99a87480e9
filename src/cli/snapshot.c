/* `corral snapshot SOCK DIR [--stop]`: asks the corral serving the control
 * API on SOCK (corral run --api-sock) to save its VM into DIR, with plain
 * HTTP/1.1 requests over the unix socket. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"

#define REPLY_MAX 65536

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int cli_api_request(const char *sock, const char *method, const char *path, json_t *body, char *msg, size_t msglen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL, *buf = NULL;
	int fd = -1, status = 0;
	msg[0] = 0;
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
	if (!buf || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(msg, msglen, "'%s': no HTTP answer", sock);
		status = 0;
		goto out;
	}
	buf[len] = 0;
	char *b = strstr(buf, "\r\n\r\n");
	json_t *j = b ? json_loads(b + 4, 0, NULL) : NULL;
	json_t *fm = j ? json_object_get(j, "fault_message") : NULL;
	if (json_is_string(fm))
		snprintf(msg, msglen, "%s", json_string_value(fm));
	json_decref(j);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(text);
	json_decref(body);
	return status;
}

static int ok(int status)
{
	return status >= 200 && status < 300;
}

static void snapshot_usage(FILE *f)
{
	fprintf(f, "usage: corral snapshot SOCK DIR [--stop]\n\n"
		   "Saves the VM of the corral serving its control API on the unix socket SOCK\n"
		   "(corral run --api-sock SOCK) into the directory DIR (created if needed):\n"
		   "DIR/state and DIR/memory, which 'corral restore DIR' continues. The VM\n"
		   "runs on afterwards, unless --stop: then it is stopped right after the\n"
		   "snapshot, without running in between.\n");
}

int cmd_snapshot(int argc, char **argv)
{
	const char *sock = NULL, *dir = NULL;
	int stop = 0;
	for (int k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--stop")) {
			stop = 1;
		} else if (!strcmp(argv[k], "-h") || !strcmp(argv[k], "--help")) {
			snapshot_usage(stdout);
			return 0;
		} else if (argv[k][0] == '-' || (sock && dir)) {
			fprintf(stderr, "corral: snapshot: unexpected argument '%s' (see 'corral snapshot --help')\n",
				argv[k]);
			return 2;
		} else if (!sock) {
			sock = argv[k];
		} else {
			dir = argv[k];
		}
	}
	if (!dir) {
		snapshot_usage(stderr);
		return 2;
	}
	char abs[PATH_MAX], sp[PATH_MAX + 8], mp[PATH_MAX + 8], msg[512];
	if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || !realpath(dir, abs)) {
		fprintf(stderr, "corral: snapshot: '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(sp, sizeof(sp), "%s/state", abs);
	snprintf(mp, sizeof(mp), "%s/memory", abs);
	int st;
	if (stop && !ok(st = cli_api_request(sock, "PATCH", "/vm", json_pack("{s:s}", "state", "Paused"), msg, sizeof(msg)))) {
		fprintf(stderr, "corral: snapshot: %s\n", msg[0] ? msg : "the VM would not pause");
		return 1;
	}
	st = cli_api_request(sock, "PUT", "/snapshot/create", json_pack("{s:s,s:s}", "snapshot_path", sp, "mem_file_path", mp),
		     msg, sizeof(msg));
	if (!ok(st)) {
		fprintf(stderr, "corral: snapshot: %s\n", msg[0] ? msg : "the snapshot failed");
		if (stop) /* it was paused for us: let it go on */
			cli_api_request(sock, "PATCH", "/vm", json_pack("{s:s}", "state", "Resumed"), msg, sizeof(msg));
		return 1;
	}
	if (stop &&
	    !ok(cli_api_request(sock, "PUT", "/actions", json_pack("{s:s}", "action_type", "Stop"), msg, sizeof(msg)))) {
		fprintf(stderr, "corral: snapshot: saved, but the VM would not stop: %s\n", msg);
		return 1;
	}
	return 0;
}
