/* A process VM's control: the unix socket of `corral exec --control`
 * (HTTP/1.1 with JSON bodies, the shapes of the system VM's API: errors
 * are a status and {"fault_message": "..."}) and the signal of
 * --checkpoint-signal, both served by one host thread of corral's own.
 * The API is served here rather than by libmicrohttpd because every
 * descriptor in this process below corral's reserved ones is the guest's:
 * a library that opens its own would put them in the program's way (and
 * into its checkpoints). docs/checkpoint.md lists the requests. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "process/internal.h"

#define CTL_HEAD_MAX 8192
#define CTL_BODY_MAX 16384 /* as API_BODY_MAX */
#define CTL_IO_TIMEOUT_MS 5000

static struct {
	int listen_fd, sig_rd, sig_wr;
	int conn; /* the connection being answered, or -1 */
	char path[108];
	pid_t owner;
} ctl = {-1, -1, -1, -1, "", 0};

static void unreserve(int fd)
{
	for (int k = 0; k < PROC_MAX_RSV_FD; k++)
		if (proc.rsv_fd[k] == fd)
			proc.rsv_fd[k] = -1;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	default: return "Internal Server Error";
	}
}

/* Answer on the current connection and close it (j is taken). */
static void reply(int status, json_t *j)
{
	if (ctl.conn < 0) {
		json_decref(j);
		return;
	}
	char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: "
			 "close\r\n\r\n",
			 status, reason(status), body ? strlen(body) : 0);
	send_all(ctl.conn, head, (size_t)n);
	if (body)
		send_all(ctl.conn, body, strlen(body));
	free(body);
	close(ctl.conn);
	unreserve(ctl.conn);
	ctl.conn = -1;
}

static void fault(int status, const char *msg)
{
	reply(status, json_pack("{s:s}", "fault_message", msg));
}

void ctl_exit(void)
{
	/* only the process that bound it (not a forked child) removes it */
	if (ctl.path[0] && ctl.owner == getpid())
		unlink(ctl.path);
	ckpt_tree_exit();
}

void ctl_finish(void)
{
	reply(200, json_pack("{s:s}", "state", "Checkpointed"));
	ctl_exit();
}

/* PUT /checkpoint {"dir": "...", "leave_running": false} */
static void put_checkpoint(const char *body)
{
	json_error_t je;
	json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j)) {
		json_decref(j);
		fault(400, "the body is not a JSON object");
		return;
	}
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v)
	{
		if (strcmp(key, "dir") && strcmp(key, "leave_running")) {
			char m[160];
			snprintf(m, sizeof(m), "unknown key '%.64s' (dir, leave_running)", key);
			json_decref(j);
			fault(400, m);
			return;
		}
	}
	json_t *d = json_object_get(j, "dir"), *lr = json_object_get(j, "leave_running");
	if (!json_is_string(d) || !json_string_length(d) || json_string_length(d) > 3000 ||
	    json_string_value(d)[0] != '/' || (lr && !json_is_boolean(lr))) {
		json_decref(j);
		fault(400, "'dir' must be an absolute path and 'leave_running' a boolean");
		return;
	}
	char dir[3072], err[512];
	snprintf(dir, sizeof(dir), "%s", json_string_value(d));
	int leave = lr && json_is_true(lr);
	json_decref(j);
	if (ckpt_checkpoint(dir, leave, err, sizeof(err))) {
		fault(400, err);
		return;
	}
	reply(200, json_pack("{s:s}", "state", "Running"));
}

/* One request: a head of at most CTL_HEAD_MAX bytes, a body of at most
 * CTL_BODY_MAX given by Content-Length. */
static void serve(int fd)
{
	ctl.conn = fd;
	char *buf = malloc(CTL_HEAD_MAX + CTL_BODY_MAX + 1);
	size_t len = 0;
	char *end = NULL;
	if (!buf) {
		fault(500, "out of memory");
		return;
	}
	while (!end && len < CTL_HEAD_MAX) {
		struct pollfd pf = {fd, POLLIN, 0};
		if (poll(&pf, 1, CTL_IO_TIMEOUT_MS) <= 0)
			break;
		ssize_t n = read(fd, buf + len, CTL_HEAD_MAX - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = 0;
		end = strstr(buf, "\r\n\r\n");
	}
	if (!end) {
		fault(400, "no complete HTTP request head");
		goto out;
	}
	*end = 0;
	size_t hl = (size_t)(end - buf) + 4;
	char method[8], target[256];
	if (sscanf(buf, "%7s %255s HTTP/1.", method, target) != 2) {
		fault(400, "a malformed request line");
		goto out;
	}
	size_t clen = 0;
	for (char *h = strstr(buf, "\r\n"); h; h = strstr(h + 2, "\r\n"))
		if (!strncasecmp(h + 2, "Content-Length:", 15)) {
			char *e;
			unsigned long long v = strtoull(h + 17, &e, 10);
			if (v > CTL_BODY_MAX) {
				fault(413, "the body is larger than 16384 bytes");
				goto out;
			}
			clen = (size_t)v;
		}
	/* the body: what came with the head, then the rest */
	memmove(buf, buf + hl, len - hl);
	len -= hl;
	if (len > clen)
		len = clen;
	while (len < clen) {
		struct pollfd pf = {fd, POLLIN, 0};
		if (poll(&pf, 1, CTL_IO_TIMEOUT_MS) <= 0)
			break;
		ssize_t n = read(fd, buf + len, clen - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	if (len < clen) {
		fault(400, "the body is shorter than its Content-Length");
		goto out;
	}
	if (!strcmp(target, "/")) {
		if (strcmp(method, "GET"))
			fault(405, "GET only");
		else
			reply(200, json_pack("{s:s,s:s,s:i}", "state", "Running", "vmm_version",
					     proc.opts.version ? proc.opts.version : "", "pid", proc.pid));
	} else if (!strcmp(target, "/checkpoint")) {
		if (strcmp(method, "PUT"))
			fault(405, "PUT only");
		else
			put_checkpoint(buf);
	} else {
		fault(404, "no such resource (GET /, PUT /checkpoint)");
	}
out:
	free(buf);
	if (ctl.conn >= 0) {
		close(ctl.conn);
		unreserve(ctl.conn);
		ctl.conn = -1;
	}
}

static void ckpt_sig_handler(int sig)
{
	(void)sig;
	int e = errno;
	char b = 1;
	if (write(ctl.sig_wr, &b, 1) < 0) { /* full: a checkpoint is asked for already */
	}
	errno = e;
}

static void *ctl_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd pf[2] = {{ctl.listen_fd, POLLIN, 0}, {ctl.sig_rd, POLLIN, 0}};
		if (poll(pf, 2, -1) < 0)
			continue;
		if (pf[1].revents & POLLIN) {
			char b[64];
			while (read(ctl.sig_rd, b, sizeof(b)) > 0)
				;
			char err[512];
			if (ckpt_checkpoint(proc.opts.checkpoint_dir, 0, err, sizeof(err)))
				fprintf(stderr, "corral: checkpoint into '%s' failed, the program goes on: %s\n",
					proc.opts.checkpoint_dir, err);
		}
		if (ctl.listen_fd >= 0 && (pf[0].revents & POLLIN)) {
			int c = accept4(ctl.listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0)
				continue;
			serve(fs_reserve_fd(&proc, c));
		}
	}
	return NULL;
}

int ctl_start(struct proc *p, char *err, size_t errn)
{
	const struct proc_opts *o = &p->opts;
	if (!o->control && !o->checkpoint_signal)
		return 0;
	int tr = ckpt_tree_start(err, errn);
	if (tr)
		return tr;
	if (o->control) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		/* absolute, so that it is removed at the end wherever the
		 * program's working directory went */
		char abs[sizeof(ctl.path) + 1] = "";
		if (o->control[0] != '/' && getcwd(abs, sizeof(abs)) &&
		    strlen(abs) + 1 + strlen(o->control) < sizeof(abs)) {
			strcat(abs, "/");
			strcat(abs, o->control);
		} else {
			snprintf(abs, sizeof(abs), "%.*s", (int)sizeof(ctl.path), o->control);
		}
		if (strlen(o->control) >= sizeof(sa.sun_path) || strlen(abs) >= sizeof(sa.sun_path)) {
			snprintf(err, errn, "--control '%s': a socket path too long", o->control);
			return -ENAMETOOLONG;
		}
		memcpy(sa.sun_path, abs, strlen(abs));
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
			snprintf(err, errn, "--control '%s': %s", o->control, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -EADDRINUSE;
		}
		chmod(abs, 0600);
		memcpy(ctl.path, abs, strlen(abs) + 1);
		ctl.owner = getpid();
		ctl.listen_fd = fs_reserve_fd(p, fd);
	}
	int pf[2];
	if (pipe2(pf, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(err, errn, "cannot make a pipe: %s", strerror(errno));
		return -errno;
	}
	ctl.sig_rd = fs_reserve_fd(p, pf[0]);
	ctl.sig_wr = fs_reserve_fd(p, pf[1]);
	if (o->checkpoint_signal) {
		ckpt_signal = o->checkpoint_signal;
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sigfillset(&sa.sa_mask);
		sa.sa_handler = ckpt_sig_handler;
		sa.sa_flags = SA_RESTART;
		if (sigaction(ckpt_signal, &sa, NULL) < 0) {
			snprintf(err, errn, "--checkpoint-signal %d: %s", ckpt_signal, strerror(errno));
			return -errno;
		}
	}
	/* corral's thread takes no signal: they are the guest threads' */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 2 << 20);
	pthread_t t;
	int e = pthread_create(&t, &at, ctl_thread, NULL);
	pthread_attr_destroy(&at);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		snprintf(err, errn, "cannot start the control thread: %s", strerror(e));
		return -e;
	}
	return 0;
}
