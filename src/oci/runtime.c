/* The runtime's commands, with runc's command line, exit codes and
 * messages (`corral oci ...`, `corral-runc ...`): create, start, state,
 * kill, delete, exec, ps, list, pause, resume, features. A container's state
 * lives in DIR/ID/state.json (--root DIR) beside exec.fifo, on which the
 * container's first process waits between create and start. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oci/oci.h"

#define RUNTIME_VERSION "0.1.0"

static const char *g_root = "/run/corral-runc";
static FILE *g_log;
static int g_log_json;
static int g_systemd_cgroup;
/* what runc puts before a command's errors: exec's are "exec failed: ..." */
static const char *g_err_prefix = "";

static void now_rfc3339(char *out, size_t n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char b[32];
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, n, "%s.%09ldZ", b, ts.tv_nsec);
}

/* One line on stderr, and in --log in its format (conmon reads it there). */
__attribute__((format(printf, 1, 2))) static void errorf(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *c = msg; *c; c++)
		if (*c == '\n')
			*c = ' ';
	if (*g_err_prefix) {
		char m2[sizeof(msg)];
		snprintf(m2, sizeof(m2), "%s%s", g_err_prefix, msg);
		memcpy(msg, m2, sizeof(msg));
	}
	fprintf(stderr, "corral-runc: %s\n", msg);
	if (g_log) {
		char t[64];
		now_rfc3339(t, sizeof(t));
		if (g_log_json) {
			json_t *o = json_pack("{s:s,s:s,s:s}", "level", "error", "msg", msg, "time", t);
			char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
			if (s)
				fprintf(g_log, "%s\n", s);
			free(s);
			json_decref(o);
		} else {
			fprintf(g_log, "time=\"%s\" level=error msg=\"%s\"\n", t, msg);
		}
		fflush(g_log);
	}
}

static int valid_id(const char *id)
{
	size_t n = strlen(id);
	if (!n || n > OCI_MAX_ID || !strcmp(id, ".") || !strcmp(id, ".."))
		return 0;
	for (const char *c = id; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr("_+-.", *c))
			return 0;
	return 1;
}

static int state_dir(const char *id, char *out, size_t n)
{
	if (!valid_id(id)) {
		errorf("invalid container ID format: '%.64s' (letters, digits, _ + - . only)", id);
		return -1;
	}
	if (snprintf(out, n, "%s/%s", g_root, id) >= (int)n) {
		errorf("--root path too long");
		return -1;
	}
	return 0;
}

/* /proc/PID/stat: the start time (field 22) and state; 0 if gone. */
static unsigned long long proc_start(pid_t pid, char *state)
{
	char p[64], buf[1024];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *c = strrchr(buf, ')');
	if (!c)
		return 0;
	char st;
	unsigned long long start = 0;
	/* ") S ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime prio nice
	 * threads itreal starttime" */
	if (sscanf(c + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &st,
		   &start) != 2)
		return 0;
	if (state)
		*state = st;
	return start;
}

struct container {
	char dir[4200];
	json_t *st; /* state.json */
	const char *id, *bundle;
	pid_t pid;
	unsigned long long start;
	json_t *cgroups;
};

static void container_free(struct container *c)
{
	if (c->st)
		json_decref(c->st);
	c->st = NULL;
}

static int container_load(const char *id, struct container *c)
{
	memset(c, 0, sizeof(*c));
	if (state_dir(id, c->dir, sizeof(c->dir)))
		return -1;
	char p[4300];
	snprintf(p, sizeof(p), "%s/state.json", c->dir);
	json_error_t je;
	c->st = json_load_file(p, 0, &je);
	if (!c->st) {
		errorf("container does not exist: %s", id);
		return -1;
	}
	json_int_t pid = 0, start = 0;
	if (json_unpack(c->st, "{s:s,s:s,s:I,s:I,s:o}", "id", &c->id, "bundle", &c->bundle, "pid", &pid, "starttime",
			&start, "cgroups", &c->cgroups) ||
	    pid <= 0 || pid > 1 << 22 || !json_is_array(c->cgroups)) {
		errorf("container %s: state.json is damaged", id);
		container_free(c);
		return -1;
	}
	c->pid = (pid_t)pid;
	c->start = (unsigned long long)start;
	return 0;
}

static int container_alive(const struct container *c)
{
	char st = 0;
	return proc_start(c->pid, &st) == c->start && st != 'Z' && st != 'X';
}

static const char *container_status(const struct container *c)
{
	if (!container_alive(c))
		return "stopped";
	char p[4300];
	snprintf(p, sizeof(p), "%s/exec.fifo", c->dir);
	if (access(p, F_OK) == 0)
		return "created";
	if (oci_cgroup_frozen(c->cgroups))
		return "paused";
	return "running";
}

/* The runtime-spec state, as `state` prints it and hooks read it. */
static json_t *state_json(const char *id, const char *status, pid_t pid, const char *bundle, json_t *annotations)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:s}", "ociVersion", OCI_VERSION, "id", id, "status", status, "pid",
			      (json_int_t)pid, "bundle", bundle);
	if (o && annotations)
		json_object_set(o, "annotations", annotations);
	return o;
}

static char *container_state_text(const struct container *c, const char *status)
{
	json_t *o = state_json(c->id, status, c->pid, c->bundle, json_object_get(c->st, "annotations"));
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

static int write_pidfile(const char *path, pid_t pid)
{
	char tmp[4200], v[32];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int n = snprintf(v, sizeof(v), "%d", (int)pid);
	int r = write(fd, v, (size_t)n) == n ? 0 : -EIO;
	close(fd);
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r)
		unlink(tmp);
	return r;
}

static int rm_statedir(const char *dir)
{
	char p[4300];
	static const char *const files[] = {"state.json", "exec.fifo", "state.json.tmp"};
	for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[k]);
		unlink(p);
	}
	return rmdir(dir) < 0 && errno != ENOENT ? -errno : 0;
}

/* mkdir -p (the state directory's parents: containerd names one per namespace) */
static int mkdir_p(const char *path, mode_t mode)
{
	char p[4096];
	if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *c = p + 1;; c++) {
		if (*c && *c != '/')
			continue;
		char save = *c;
		*c = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -1;
		*c = save;
		if (!save)
			return 0;
	}
}

static int connect_console(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errorf("--console-socket %.256s: path too long", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		errorf("--console-socket %.256s: %s", path, strerror(errno));
		if (s >= 0)
			close(s);
		return -1;
	}
	return s;
}

/* The bundle's root: a relative root.path must stay inside the bundle
 * (no symlink or .. out of it); an absolute one (Podman's overlay) may be
 * anywhere but the host's / itself. Resolved into out. */
static int resolve_rootfs(const char *bundle, const char *path, char *out, size_t n)
{
	char joined[8300];
	if (path[0] == '/')
		snprintf(joined, sizeof(joined), "%s", path);
	else
		snprintf(joined, sizeof(joined), "%s/%s", bundle, path);
	char *rp = realpath(joined, NULL);
	if (!rp) {
		errorf("root.path %.256s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	int r = -1;
	if (stat(rp, &st) < 0 || !S_ISDIR(st.st_mode))
		errorf("root.path %.256s is not a directory", path);
	else if (!strcmp(rp, "/"))
		errorf("root.path %.256s is the host's root: refused", path);
	else if (path[0] != '/' && (strncmp(rp, bundle, strlen(bundle)) || rp[strlen(bundle)] != '/'))
		errorf("root.path %.256s leads out of the bundle (to %.256s): refused", path, rp);
	else if (strlen(rp) >= n)
		errorf("root.path too long");
	else {
		strcpy(out, rp);
		r = 0;
	}
	free(rp);
	return r;
}

/* ---- create ---- */

static int recv_msg(int fd, char *buf, size_t n)
{
	ssize_t r;
	do
		r = recv(fd, buf, n - 1, 0);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	buf[r] = 0;
	return 0;
}

static int write_idmap(pid_t pid, const char *file, const struct oci_idmap *m, size_t n)
{
	char p[64], text[1024];
	size_t l = 0;
	for (size_t k = 0; k < n; k++)
		l += (size_t)snprintf(text + l, sizeof(text) - l, "%u %u %u\n", m[k].container, m[k].host, m[k].size);
	snprintf(p, sizeof(p), "/proc/%d/%s", (int)pid, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = write(fd, text, l) == (ssize_t)l ? 0 : -errno;
	close(fd);
	return r;
}

/* Stage one, in a child of create: join or make the namespaces (the PID
 * one last), then fork the container's first process, whose host pid goes
 * back to create. */
_Noreturn static void stage_namespaces(const struct oci_spec *s, int sfd, struct oci_init_args *ia)
{
	char msg[1024];
	int fds[8];
	size_t nfd = 0;
	/* open every path first: joining one changes how the next resolves */
	static const int order[] = {CLONE_NEWUSER, CLONE_NEWIPC, CLONE_NEWUTS,	 CLONE_NEWNET,
				    CLONE_NEWPID,  CLONE_NEWNS,	 CLONE_NEWCGROUP};
	for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++)
		for (size_t k = 0; k < s->nns; k++)
			if (s->ns[k].type == order[o] && s->ns[k].path) {
				int fd = open(s->ns[k].path, O_RDONLY | O_CLOEXEC);
				if (fd < 0) {
					oci_errf(msg, sizeof(msg), "Enamespace %.256s: %s", s->ns[k].path,
						 strerror(errno));
				init_error:
					send(sfd, msg, strlen(msg), MSG_NOSIGNAL);
					_exit(1);
				}
				if (setns(fd, s->ns[k].type) < 0) {
					oci_errf(msg, sizeof(msg), "Ecannot join namespace %.256s: %s", s->ns[k].path,
						 strerror(errno));
					close(fd);
					goto init_error;
				}
				fds[nfd++] = fd;
				close(fd);
			}
	for (size_t k = 0; k < s->nns; k++)
		if (s->ns[k].type == CLONE_NEWUSER && !s->ns[k].path) {
			if (unshare(CLONE_NEWUSER) < 0) {
				oci_errf(msg, sizeof(msg), "Ecannot create a user namespace: %s", strerror(errno));
				send(sfd, msg, strlen(msg), MSG_NOSIGNAL);
				_exit(1);
			}
			send(sfd, "U", 1, MSG_NOSIGNAL);
			char ack[8];
			if (recv_msg(sfd, ack, sizeof(ack)) || ack[0] != 'u')
				_exit(1);
			if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
				oci_errf(msg, sizeof(msg), "Ecannot become root in the user namespace: %s",
					 strerror(errno));
				send(sfd, msg, strlen(msg), MSG_NOSIGNAL);
				_exit(1);
			}
		}
	int flags = 0;
	for (size_t k = 0; k < s->nns; k++)
		if (!s->ns[k].path && s->ns[k].type != CLONE_NEWUSER && s->ns[k].type != CLONE_NEWCGROUP)
			flags |= s->ns[k].type;
	if (unshare(flags) < 0) {
		oci_errf(msg, sizeof(msg), "Ecannot create namespaces: %s", strerror(errno));
		send(sfd, msg, strlen(msg), MSG_NOSIGNAL);
		_exit(1);
	}
	(void)fds;
	pid_t pid = fork();
	if (pid < 0) {
		oci_errf(msg, sizeof(msg), "Efork: %s", strerror(errno));
		send(sfd, msg, strlen(msg), MSG_NOSIGNAL);
		_exit(1);
	}
	if (pid == 0)
		oci_init_run(ia);
	oci_errf(msg, sizeof(msg), "P%d", (int)pid);
	send(sfd, msg, strlen(msg), MSG_NOSIGNAL);
	_exit(0);
}

static void kill_wait(pid_t pid)
{
	kill(pid, SIGKILL);
	for (int k = 0; k < 500; k++) {
		char st = 0;
		if (!proc_start(pid, &st) || st == 'Z')
			break;
		usleep(2000);
	}
}

static int cmd_create(int argc, char **argv)
{
	static const struct option lo[] = {
		{"bundle", required_argument, NULL, 'b'},
		{"pid-file", required_argument, NULL, 'p'},
		{"console-socket", required_argument, NULL, 'c'},
		{"no-pivot", no_argument, NULL, 'P'},
		{"no-new-keyring", no_argument, NULL, 'k'},
		{"preserve-fds", required_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *bundle = ".", *pidfile = NULL, *console = NULL;
	int preserve = 0;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+b:h", lo, NULL)) != -1) {
		switch (c) {
		case 'b': bundle = optarg; break;
		case 'p': pidfile = optarg; break;
		case 'c': console = optarg; break;
		case 'k': break; /* corral creates no session keyring either way */
		case 'P': errorf("--no-pivot is not supported: corral-runc always pivot_roots"); return 1;
		case 'f': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 1024) {
				errorf("bad --preserve-fds '%.32s'", optarg);
				return 1;
			}
			preserve = (int)v;
			break;
		}
		case 'h':
			printf("usage: corral-runc create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK] "
			       "ID\n");
			return 0;
		default: errorf("create: unknown option '%s'", argv[optind - 1]); return 1;
		}
	}
	if (optind != argc - 1) {
		errorf("create: needs exactly one container id (usage: create [--bundle DIR] ID)");
		return 1;
	}
	const char *id = argv[optind];
	char dir[4200];
	if (state_dir(id, dir, sizeof(dir)))
		return 1;
	if (g_systemd_cgroup) {
		errorf("--systemd-cgroup is not supported: corral-runc manages cgroupfs paths only");
		return 1;
	}
	char *bundle_abs = realpath(bundle, NULL);
	if (!bundle_abs) {
		errorf("bundle %.256s: %s", bundle, strerror(errno));
		return 1;
	}
	struct oci_spec spec;
	char err[1024];
	int rc = 1;
	json_t *cgdirs = json_array();
	int sp[2] = {-1, -1}, cons = -1;
	pid_t stage = -1, init = -1;
	int made_dir = 0;
	if (oci_spec_load(bundle_abs, &spec, err, sizeof(err))) {
		errorf("%s", err);
		goto out_spec;
	}
	char rootfs[4096];
	if (resolve_rootfs(bundle_abs, spec.root_path, rootfs, sizeof(rootfs)))
		goto out_spec;
	spec.root_path = rootfs;
	if (spec.proc.terminal && !console) {
		errorf("cannot allocate tty if runc will detach without setting console socket");
		goto out_spec;
	}
	if (!spec.proc.terminal && console) {
		errorf("cannot use console socket if runc will not detach or allocate tty");
		goto out_spec;
	}
	if (mkdir_p(g_root, 0711) < 0) {
		errorf("--root %.256s: %s", g_root, strerror(errno));
		goto out_spec;
	}
	if (mkdir(dir, 0711) < 0) {
		if (errno == EEXIST)
			errorf("container with given ID already exists: %s", id);
		else
			errorf("%s: %s", dir, strerror(errno));
		goto out_spec;
	}
	made_dir = 1;
	char fifo[4300];
	snprintf(fifo, sizeof(fifo), "%s/exec.fifo", dir);
	/* writable by the container's root when a user namespace maps it
	 * elsewhere (chmod: the umask took the bits from mkfifo) */
	if (mkfifo(fifo, 0622) < 0 || chmod(fifo, 0622) < 0) {
		errorf("%s: %s", fifo, strerror(errno));
		goto out;
	}
	if (console && (cons = connect_console(console)) < 0)
		goto out;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		errorf("socketpair: %s", strerror(errno));
		goto out;
	}
	struct oci_init_args ia = {.spec = &spec,
				   .bundle = bundle_abs,
				   .statedir = dir,
				   .id = id,
				   .sync_fd = sp[1],
				   .console_fd = cons,
				   .preserve_fds = preserve};
	fflush(NULL);
	stage = fork();
	if (stage < 0) {
		errorf("fork: %s", strerror(errno));
		goto out;
	}
	if (stage == 0) {
		close(sp[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		stage_namespaces(&spec, sp[1], &ia);
	}
	close(sp[1]);
	sp[1] = -1;
	if (cons >= 0) {
		close(cons);
		cons = -1;
	}
	char msg[1024];
	for (;;) {
		if (recv_msg(sp[0], msg, sizeof(msg))) {
			errorf("container init failed before reporting");
			goto out;
		}
		if (msg[0] == 'E') {
			errorf("%s", msg + 1);
			goto out;
		}
		if (msg[0] == 'U') {
			int r = write_idmap(stage, "uid_map", spec.uidmap, spec.nuidmap);
			if (!r)
				r = write_idmap(stage, "gid_map", spec.gidmap, spec.ngidmap);
			if (r) {
				errorf("cannot write the user namespace's id maps: %s", strerror(-r));
				goto out;
			}
			send(sp[0], "u", 1, MSG_NOSIGNAL);
			continue;
		}
		if (msg[0] == 'P')
			break;
		errorf("%s", msg); /* a message from before the tag was set */
		goto out;
	}
	init = (pid_t)atoi(msg + 1);
	waitpid(stage, NULL, 0);
	stage = -1;
	unsigned long long start = proc_start(init, NULL);
	if (init <= 0 || !start) {
		errorf("container init died at once");
		goto out;
	}
	char cgpath[4200];
	if (spec.cgroups_path)
		snprintf(cgpath, sizeof(cgpath), "%s", spec.cgroups_path);
	else
		snprintf(cgpath, sizeof(cgpath), "corral-runc/%s", id);
	if (!cgdirs || oci_cgroup_create(cgpath, &spec.res, init, cgdirs, err, sizeof(err)) < 0) {
		errorf("%s", err);
		goto out;
	}
	json_t *ann = json_object_get(spec.json, "annotations");
	json_t *sj = state_json(id, "creating", init, bundle_abs, ann);
	char *stext = sj ? json_dumps(sj, JSON_COMPACT) : NULL;
	json_decref(sj);
	if (!stext || strlen(stext) > 60000) {
		errorf("state too large");
		free(stext);
		goto out;
	}
	for (int kind = OCI_HOOK_PRESTART; kind <= OCI_HOOK_CREATE_RUNTIME; kind++)
		for (size_t k = 0; k < spec.nhooks[kind]; k++)
			if (oci_hook_run(&spec.hooks[kind][k], stext, err, sizeof(err))) {
				errorf("%s hook: %s", kind == OCI_HOOK_PRESTART ? "prestart" : "createRuntime", err);
				free(stext);
				goto out;
			}
	/* G: go on, with the state (for createContainer hooks) and the
	 * cgroup directories (bound into a cgroup mount) */
	json_t *gj = json_pack("{s:s,s:O}", "state", stext, "cgroups", cgdirs);
	char *gtext = gj ? json_dumps(gj, JSON_COMPACT) : NULL;
	json_decref(gj);
	free(stext);
	char go[65536];
	if (!gtext || strlen(gtext) >= sizeof(go) - 2) {
		errorf("state too large");
		free(gtext);
		goto out;
	}
	snprintf(go, sizeof(go), "G%s", gtext);
	free(gtext);
	if (send(sp[0], go, strlen(go), MSG_NOSIGNAL) < 0) {
		errorf("container init died: %s", strerror(errno));
		goto out;
	}
	if (recv_msg(sp[0], msg, sizeof(msg))) {
		errorf("container init died while setting up");
		goto out;
	}
	if (msg[0] != 'R') {
		errorf("%s", msg[0] == 'E' ? msg + 1 : msg);
		goto out;
	}
	if (oci_cgroup_devices(cgdirs, &spec.res, err, sizeof(err)) < 0) {
		errorf("%s", err);
		goto out;
	}
	/* the state: what later commands need */
	char created[64];
	now_rfc3339(created, sizeof(created));
	json_t *hooks = json_object_get(spec.json, "hooks");
	json_t *st = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:O,s:O,s:s,s:o}", "ociVersion", OCI_VERSION, "id", id,
			       "bundle", bundle_abs, "pid", (json_int_t)init, "starttime", (json_int_t)start, "rootfs",
			       rootfs, "cgroups", cgdirs, "process", json_object_get(spec.json, "process"), "created",
			       created, "annotations", ann ? json_incref(ann) : json_object());
	if (st && spec.proc.seccomp)
		json_object_set(st, "seccomp", spec.proc.seccomp);
	if (st && hooks && json_object_get(hooks, "poststop"))
		json_object_set(st, "poststop", json_object_get(hooks, "poststop"));
	if (st && hooks && json_object_get(hooks, "poststart"))
		json_object_set(st, "poststart", json_object_get(hooks, "poststart"));
	char sp_path[4300], tmp[4300];
	snprintf(sp_path, sizeof(sp_path), "%s/state.json", dir);
	snprintf(tmp, sizeof(tmp), "%s/state.json.tmp", dir);
	if (!st || json_dump_file(st, tmp, JSON_COMPACT) < 0 || rename(tmp, sp_path) < 0) {
		errorf("%s: cannot write the state", sp_path);
		json_decref(st);
		goto out;
	}
	json_decref(st);
	if (pidfile) {
		int r = write_pidfile(pidfile, init);
		if (r) {
			errorf("--pid-file %.256s: %s", pidfile, strerror(-r));
			goto out;
		}
	}
	rc = 0;
	init = -1; /* it lives on, waiting for start */
out:
	if (init > 0)
		kill_wait(init);
	if (stage > 0) {
		kill(stage, SIGKILL);
		waitpid(stage, NULL, 0);
	}
	if (rc) {
		if (cgdirs)
			oci_cgroup_destroy(cgdirs);
		if (made_dir)
			rm_statedir(dir);
	}
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	if (cons >= 0)
		close(cons);
out_spec:
	json_decref(cgdirs);
	oci_spec_free(&spec);
	free(bundle_abs);
	return rc;
}

/* ---- start, state, kill, delete ---- */

static void run_hooks_from_state(struct container *c, const char *key, const char *status)
{
	json_t *l = json_object_get(c->st, key);
	if (!json_is_array(l))
		return;
	/* re-parsed through the spec parser: state.json is input too */
	struct oci_spec s;
	memset(&s, 0, sizeof(s));
	char err[1024];
	json_t *h = json_pack("{s:O}", key, l);
	char *stext = container_state_text(c, status);
	int kind = !strcmp(key, "poststop") ? OCI_HOOK_POSTSTOP : OCI_HOOK_POSTSTART;
	if (h && stext && !oci_spec_hooks(h, &s, err, sizeof(err))) {
		for (size_t k = 0; k < s.nhooks[kind]; k++)
			if (oci_hook_run(&s.hooks[kind][k], stext, err, sizeof(err)))
				fprintf(stderr, "corral-runc: warning: %s hook: %s\n", key, err);
	}
	free(stext);
	oci_spec_free(&s);
	json_decref(h);
}

static int cmd_start(int argc, char **argv)
{
	if (argc != 2) {
		errorf("start: needs exactly one container id");
		return 1;
	}
	struct container c;
	if (container_load(argv[1], &c))
		return 1;
	const char *status = container_status(&c);
	if (strcmp(status, "created")) {
		if (!strcmp(status, "stopped"))
			errorf("cannot start a container that has stopped");
		else
			errorf("cannot start an already running container");
		container_free(&c);
		return 1;
	}
	char fifo[4300];
	snprintf(fifo, sizeof(fifo), "%s/exec.fifo", c.dir);
	int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		errorf("%s: %s", fifo, strerror(errno));
		container_free(&c);
		return 1;
	}
	int rc = 1;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, 100);
		if (n > 0 && (p.revents & POLLIN)) {
			char b;
			if (read(fd, &b, 1) == 1) {
				rc = 0;
				break;
			}
		}
		if (!container_alive(&c)) {
			errorf("container init exited before start");
			break;
		}
	}
	close(fd);
	unlink(fifo);
	if (!rc)
		run_hooks_from_state(&c, "poststart", "running");
	container_free(&c);
	return rc;
}

static int cmd_state(int argc, char **argv)
{
	if (argc != 2) {
		errorf("state: needs exactly one container id");
		return 1;
	}
	struct container c;
	if (container_load(argv[1], &c))
		return 1;
	const char *status = container_status(&c);
	json_t *o = state_json(c.id, status, strcmp(status, "stopped") ? c.pid : 0, c.bundle,
			       json_object_get(c.st, "annotations"));
	json_object_set(o, "rootfs", json_object_get(c.st, "rootfs"));
	json_object_set(o, "created", json_object_get(c.st, "created"));
	json_object_set_new(o, "owner", json_string(""));
	char *s = json_dumps(o, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
	json_decref(o);
	container_free(&c);
	return 0;
}

static const struct {
	const char *name;
	int sig;
} signames[] = {
	{"HUP", SIGHUP},   {"INT", SIGINT},	  {"QUIT", SIGQUIT}, {"ILL", SIGILL},	  {"TRAP", SIGTRAP},
	{"ABRT", SIGABRT}, {"IOT", SIGIOT},	  {"BUS", SIGBUS},   {"FPE", SIGFPE},	  {"KILL", SIGKILL},
	{"USR1", SIGUSR1}, {"SEGV", SIGSEGV},	  {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},	  {"ALRM", SIGALRM},
	{"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},	  {"STOP", SIGSTOP},
	{"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},	  {"TTOU", SIGTTOU}, {"URG", SIGURG},	  {"XCPU", SIGXCPU},
	{"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
	{"POLL", SIGPOLL}, {"PWR", SIGPWR},	  {"SYS", SIGSYS},
};

static int parse_signal(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s && !*end)
		return v > 0 && v <= SIGRTMAX ? (int)v : -1;
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	for (size_t k = 0; k < sizeof(signames) / sizeof(signames[0]); k++)
		if (!strcasecmp(s, signames[k].name))
			return signames[k].sig;
	if (!strncasecmp(s, "RTMIN", 5) || !strncasecmp(s, "RTMAX", 5)) {
		long off = s[5] ? strtol(s + 5, &end, 10) : 0;
		if (s[5] && *end)
			return -1;
		int sig = !strncasecmp(s, "RTMIN", 5) ? SIGRTMIN + (int)off : SIGRTMAX + (int)off;
		return sig >= SIGRTMIN && sig <= SIGRTMAX ? sig : -1;
	}
	return -1;
}

static int cmd_kill(int argc, char **argv)
{
	static const struct option lo[] = {{"all", no_argument, NULL, 'a'}, {NULL, 0, NULL, 0}};
	int all = 0, c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+a", lo, NULL)) != -1) {
		if (c == 'a') {
			all = 1;
		} else {
			errorf("kill: unknown option '%s'", argv[optind - 1]);
			return 1;
		}
	}
	if (optind >= argc || argc - optind > 2) {
		errorf("kill: usage: kill [--all] ID [SIGNAL]");
		return 1;
	}
	int sig = SIGTERM;
	if (argc - optind == 2 && (sig = parse_signal(argv[optind + 1])) < 0) {
		errorf("unknown signal \"%.32s\"", argv[optind + 1]);
		return 1;
	}
	struct container ct;
	if (container_load(argv[optind], &ct))
		return 1;
	int rc = 0;
	if (!container_alive(&ct) && !all) {
		errorf("container not running");
		rc = 1;
	} else if (all) {
		/* as runc: --all signals whatever is left in the cgroup, even of
		 * a stopped container (containerd's shim sends it at delete) */
		pid_t pids[4096];
		int n = oci_cgroup_pids(ct.cgroups, pids, 4096);
		if (n < 0) {
			if (container_alive(&ct))
				kill(ct.pid, sig);
		} else {
			for (int k = 0; k < n; k++)
				kill(pids[k], sig);
		}
	} else if (kill(ct.pid, sig) < 0) {
		errorf("kill: %s", strerror(errno));
		rc = 1;
	}
	container_free(&ct);
	return rc;
}

static void destroy(struct container *c)
{
	if (container_alive(c)) {
		pid_t pids[4096];
		int n = oci_cgroup_pids(c->cgroups, pids, 4096);
		for (int k = 0; k < n; k++)
			kill(pids[k], SIGKILL);
		kill_wait(c->pid);
	}
	/* a frozen cgroup's tasks cannot die */
	oci_cgroup_freeze(c->cgroups, 0);
	run_hooks_from_state(c, "poststop", "stopped");
	oci_cgroup_destroy(c->cgroups);
	rm_statedir(c->dir);
}

static int cmd_delete(int argc, char **argv)
{
	static const struct option lo[] = {{"force", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
	int force = 0, c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+f", lo, NULL)) != -1) {
		if (c == 'f') {
			force = 1;
		} else {
			errorf("delete: unknown option '%s'", argv[optind - 1]);
			return 1;
		}
	}
	if (optind != argc - 1) {
		errorf("delete: needs exactly one container id");
		return 1;
	}
	char dir[4200];
	if (state_dir(argv[optind], dir, sizeof(dir)))
		return 1;
	struct container ct;
	if (access(dir, F_OK) < 0 && force)
		return 0; /* runc: deleting what is gone with --force is no error */
	if (container_load(argv[optind], &ct)) {
		/* a state dir without state: a create that died half way */
		if (force && access(dir, F_OK) == 0)
			return rm_statedir(dir) ? 1 : 0;
		return 1;
	}
	const char *status = container_status(&ct);
	if (!strcmp(status, "running") || !strcmp(status, "paused")) {
		if (!force) {
			errorf("cannot delete container %s that is not stopped: %s", ct.id, status);
			container_free(&ct);
			return 1;
		}
	}
	destroy(&ct);
	container_free(&ct);
	return 0;
}

static int cmd_pause(int argc, char **argv, int frozen)
{
	if (argc != 2) {
		errorf("%s: needs exactly one container id", frozen ? "pause" : "resume");
		return 1;
	}
	struct container c;
	if (container_load(argv[1], &c))
		return 1;
	const char *status = container_status(&c);
	int rc = 1;
	if (frozen && strcmp(status, "running"))
		errorf("container not running");
	else if (!frozen && strcmp(status, "paused"))
		errorf("container not paused");
	else {
		int r = oci_cgroup_freeze(c.cgroups, frozen);
		if (r)
			errorf("freezer: %s", strerror(-r));
		rc = r ? 1 : 0;
	}
	container_free(&c);
	return rc;
}

static int cmd_ps(int argc, char **argv)
{
	static const struct option lo[] = {{"format", required_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
	const char *fmt = "table";
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+f:", lo, NULL)) != -1) {
		if (c == 'f') {
			fmt = optarg;
		} else {
			errorf("ps: unknown option '%s'", argv[optind - 1]);
			return 1;
		}
	}
	if (optind >= argc) {
		errorf("ps: needs a container id");
		return 1;
	}
	if (strcmp(fmt, "table") && strcmp(fmt, "json")) {
		errorf("invalid format option");
		return 1;
	}
	struct container ct;
	if (container_load(argv[optind], &ct))
		return 1;
	pid_t pids[4096];
	int n = oci_cgroup_pids(ct.cgroups, pids, 4096);
	container_free(&ct);
	if (n < 0) {
		errorf("ps: cannot list the container's processes: %s", strerror(-n));
		return 1;
	}
	if (!strcmp(fmt, "json")) {
		printf("[");
		for (int k = 0; k < n; k++)
			printf("%s%d", k ? "," : "", (int)pids[k]);
		printf("]\n");
		return 0;
	}
	/* table: ps's own columns, as runc prints them */
	char list[4096 * 12] = "";
	size_t l = 0;
	for (int k = 0; k < n; k++)
		l += (size_t)snprintf(list + l, sizeof(list) - l, "%s%d", k ? "," : "", (int)pids[k]);
	if (!n) {
		printf("UID          PID    PPID  C STIME TTY          TIME CMD\n");
		return 0;
	}
	fflush(stdout);
	const char *pargv[] = {"ps", "-f", "-p", list, NULL};
	execvp("ps", (char **)pargv);
	errorf("ps: %s", strerror(errno));
	return 1;
}

static int cmd_list(int argc, char **argv)
{
	static const struct option lo[] = {
		{"format", required_argument, NULL, 'f'}, {"quiet", no_argument, NULL, 'q'}, {NULL, 0, NULL, 0}};
	const char *fmt = "table";
	int quiet = 0, c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+f:q", lo, NULL)) != -1) {
		if (c == 'f') {
			fmt = optarg;
		} else if (c == 'q') {
			quiet = 1;
		} else {
			errorf("list: unknown option '%s'", argv[optind - 1]);
			return 1;
		}
	}
	if (strcmp(fmt, "table") && strcmp(fmt, "json")) {
		errorf("invalid format option");
		return 1;
	}
	json_t *arr = json_array();
	DIR *d = opendir(g_root);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.' || !valid_id(e->d_name))
				continue;
			char p[4300];
			snprintf(p, sizeof(p), "%s/%s/state.json", g_root, e->d_name);
			if (access(p, F_OK) < 0)
				continue;
			struct container ct;
			if (container_load(e->d_name, &ct))
				continue;
			const char *status = container_status(&ct);
			json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:O,s:s}", "id", ct.id, "pid",
					      (json_int_t)(strcmp(status, "stopped") ? ct.pid : 0), "status", status,
					      "bundle", ct.bundle, "created", json_object_get(ct.st, "created"),
					      "owner", "root");
			if (o)
				json_array_append_new(arr, o);
			container_free(&ct);
		}
		closedir(d);
	}
	size_t k;
	json_t *o;
	if (quiet) {
		json_array_foreach(arr, k, o) printf("%s\n", json_string_value(json_object_get(o, "id")));
	} else if (!strcmp(fmt, "json")) {
		char *s = json_dumps(arr, JSON_COMPACT);
		printf("%s\n", json_array_size(arr) ? s : "null");
		free(s);
	} else {
		printf("%-12s %-8s %-10s %-40s %-30s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
		json_array_foreach(arr, k, o)
			printf("%-12s %-8lld %-10s %-40s %-30s %s\n", json_string_value(json_object_get(o, "id")),
			       (long long)json_integer_value(json_object_get(o, "pid")),
			       json_string_value(json_object_get(o, "status")),
			       json_string_value(json_object_get(o, "bundle")),
			       json_string_value(json_object_get(o, "created")), "root");
	}
	json_decref(arr);
	return 0;
}

static int cmd_features(int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		errorf("features: takes no arguments");
		return 1;
	}
	printf("{\n"
	       "  \"ociVersionMin\": \"1.0.0\",\n"
	       "  \"ociVersionMax\": \"%s\",\n"
	       "  \"hooks\": [\"prestart\", \"createRuntime\", \"createContainer\", \"startContainer\", "
	       "\"poststart\", \"poststop\"],\n"
	       "  \"mountOptions\": [\"async\", \"atime\", \"bind\", \"dev\", \"diratime\", \"dirsync\", \"exec\", "
	       "\"mand\", \"noatime\", \"nodev\", \"nodiratime\", \"noexec\", \"nomand\", \"norelatime\", "
	       "\"nosuid\", \"private\", \"rbind\", \"relatime\", \"rprivate\", \"rshared\", \"rslave\", "
	       "\"runbindable\", \"ro\", \"rw\", \"shared\", \"slave\", \"strictatime\", \"suid\", \"sync\", "
	       "\"unbindable\"],\n"
	       "  \"linux\": {\n"
	       "    \"namespaces\": [\"cgroup\", \"ipc\", \"mount\", \"network\", \"pid\", \"user\", \"uts\"],\n"
	       "    \"capabilities\": [\"CAP_CHOWN\", \"CAP_DAC_OVERRIDE\", \"CAP_FOWNER\", \"CAP_FSETID\", "
	       "\"CAP_KILL\", \"CAP_SETGID\", \"CAP_SETUID\", \"CAP_SETPCAP\", \"CAP_NET_BIND_SERVICE\", "
	       "\"CAP_NET_RAW\", \"CAP_SYS_CHROOT\", \"CAP_MKNOD\", \"CAP_AUDIT_WRITE\", \"CAP_SETFCAP\"],\n"
	       "    \"cgroup\": {\"v1\": true, \"v2\": false, \"systemd\": false, \"systemdUser\": false},\n"
	       "    \"seccomp\": {\"enabled\": true, \"actions\": [\"SCMP_ACT_ALLOW\", \"SCMP_ACT_ERRNO\", "
	       "\"SCMP_ACT_KILL\", \"SCMP_ACT_KILL_PROCESS\", \"SCMP_ACT_KILL_THREAD\", \"SCMP_ACT_LOG\", "
	       "\"SCMP_ACT_TRACE\", \"SCMP_ACT_TRAP\"], \"operators\": [\"SCMP_CMP_EQ\", \"SCMP_CMP_GE\", "
	       "\"SCMP_CMP_GT\", \"SCMP_CMP_LE\", \"SCMP_CMP_LT\", \"SCMP_CMP_MASKED_EQ\", \"SCMP_CMP_NE\"]},\n"
	       "    \"apparmor\": {\"enabled\": false},\n"
	       "    \"selinux\": {\"enabled\": false}\n"
	       "  },\n"
	       "  \"annotations\": {\"org.corral.runtime\": \"process VMs on corral's x86-64 CPU\"}\n"
	       "}\n",
	       OCI_VERSION);
	return 0;
}

/* ---- exec: a new process in a running container ---- */

/* Join the container's cgroups and namespaces but the mount one, whose fd
 * goes to *mntfd (or -1): the caller still writes host files (--pid-file),
 * and its child enters that one. */
static int join_container(const struct container *c, int *mntfd, char *err, size_t errn)
{
	static const struct {
		const char *name;
		int type;
	} ns[] = {{"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC},	{"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET},
		  {"pid", CLONE_NEWPID},   {"cgroup", CLONE_NEWCGROUP}, {"mnt", CLONE_NEWNS}};
	int fds[7];
	/* open them all first: entering the mount namespace hides /proc/PID */
	for (size_t k = 0; k < 7; k++) {
		char p[64], mine[64];
		snprintf(p, sizeof(p), "/proc/%d/ns/%s", (int)c->pid, ns[k].name);
		snprintf(mine, sizeof(mine), "/proc/self/ns/%s", ns[k].name);
		struct stat a, b;
		fds[k] = -1;
		if (stat(p, &a) < 0 || stat(mine, &b) < 0)
			continue;
		if (a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			continue; /* the same as ours (setns into one's own user ns fails) */
		if ((fds[k] = open(p, O_RDONLY | O_CLOEXEC)) < 0)
			return oci_errf(err, errn, "%s: %s", p, strerror(errno)), -1;
	}
	if (!container_alive(c))
		return oci_errf(err, errn, "container not running"), -1;
	if (oci_cgroup_join(c->cgroups, getpid()) < 0)
		return oci_errf(err, errn, "cannot join the container's cgroups: %s", strerror(errno)), -1;
	int r = 0;
	*mntfd = fds[6];
	for (size_t k = 0; k < 6; k++) {
		if (fds[k] < 0)
			continue;
		if (!r && setns(fds[k], ns[k].type) < 0)
			r = oci_errf(err, errn, "cannot join the %s namespace: %s", ns[k].name, strerror(errno));
		close(fds[k]);
	}
	return r;
}

static int parse_user(const char *s, struct oci_process *p)
{
	char *end;
	unsigned long u = strtoul(s, &end, 10);
	if (end == s || u > 0xfffffffe || (*end && *end != ':'))
		return -1;
	p->uid = (uid_t)u;
	if (*end == ':') {
		const char *g = end + 1;
		unsigned long gv = strtoul(g, &end, 10);
		if (end == g || *end || gv > 0xfffffffe)
			return -1;
		p->gid = (gid_t)gv;
	}
	return 0;
}

static int cmd_exec(int argc, char **argv)
{
	static const struct option lo[] = {
		{"process", required_argument, NULL, 'p'},
		{"tty", no_argument, NULL, 't'},
		{"detach", no_argument, NULL, 'd'},
		{"pid-file", required_argument, NULL, 'P'},
		{"console-socket", required_argument, NULL, 'c'},
		{"cwd", required_argument, NULL, 'w'},
		{"env", required_argument, NULL, 'e'},
		{"user", required_argument, NULL, 'u'},
		{"no-new-privs", no_argument, NULL, 'n'},
		{"preserve-fds", required_argument, NULL, 'f'},
		{"additional-gids", required_argument, NULL, 'g'},
		{"cap", required_argument, NULL, 'C'},
		{"process-label", required_argument, NULL, 'L'},
		{"apparmor", required_argument, NULL, 'A'},
		{"ignore-paused", no_argument, NULL, 'I'},
		{"cgroup", required_argument, NULL, 'G'},
		{NULL, 0, NULL, 0},
	};
	const char *procfile = NULL, *pidfile = NULL, *console = NULL, *cwd = NULL, *user = NULL;
	int tty = 0, detach = 0, nnp = 0, preserve = 0, c;
	const char *envs[256];
	int nenv = 0;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+p:tdP:w:e:u:", lo, NULL)) != -1) {
		switch (c) {
		case 'p': procfile = optarg; break;
		case 't': tty = 1; break;
		case 'd': detach = 1; break;
		case 'P': pidfile = optarg; break;
		case 'c': console = optarg; break;
		case 'w': cwd = optarg; break;
		case 'u': user = optarg; break;
		case 'n': nnp = 1; break;
		case 'I': break;
		case 'e':
			if (nenv == 255) {
				errorf("exec: too many --env");
				return 1;
			}
			envs[nenv++] = optarg;
			break;
		case 'f': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 1024) {
				errorf("bad --preserve-fds '%.32s'", optarg);
				return 1;
			}
			preserve = (int)v;
			break;
		}
		case 'L':
		case 'A':
			if (*optarg) {
				errorf("exec: %s is not supported by corral-runc", argv[optind - 1]);
				return 1;
			}
			break;
		case 'g':
		case 'C':
		case 'G': errorf("exec: %s is not supported by corral-runc", argv[optind - 1]); return 1;
		default: errorf("exec: unknown option '%s'", argv[optind - 1]); return 1;
		}
	}
	if (optind >= argc) {
		errorf("exec: needs a container id");
		return 1;
	}
	/* as runc: once the arguments are read, every failure to start the
	 * process is "exec failed: ..." with status 255, apart from the
	 * process's own statuses (callers tell the two apart by it) */
	g_err_prefix = "exec failed: ";
	struct container ct;
	if (container_load(argv[optind], &ct))
		return 255;
	int rc = 255;
	json_t *owner = NULL;
	struct oci_process p;
	char err[1024];
	memset(&p, 0, sizeof(p));
	if (procfile) {
		if (oci_process_load(procfile, &owner, &p, err, sizeof(err))) {
			errorf("%s", err);
			goto out;
		}
	} else {
		if (optind + 1 >= argc) {
			errorf("process args cannot be empty (exec ID COMMAND [ARGS...])");
			goto out;
		}
		owner = json_deep_copy(json_object_get(ct.st, "process"));
		json_t *args = json_array();
		for (int k = optind + 1; k < argc; k++)
			json_array_append_new(args, json_string(argv[k]));
		json_object_set_new(owner, "args", args);
		json_object_set_new(owner, "terminal", json_boolean(tty));
		if (cwd)
			json_object_set_new(owner, "cwd", json_string(cwd));
		json_t *env = json_object_get(owner, "env");
		if (!json_is_array(env)) {
			env = json_array();
			json_object_set_new(owner, "env", env);
		}
		for (int k = 0; k < nenv; k++)
			json_array_append_new(env, json_string(envs[k]));
		if (nnp)
			json_object_set_new(owner, "noNewPrivileges", json_true());
		if (!owner || oci_process_parse(owner, &p, 1, err, sizeof(err))) {
			errorf("%s", owner ? err : "out of memory");
			goto out;
		}
		if (user && parse_user(user, &p)) {
			errorf("exec: bad --user '%.64s' (UID[:GID])", user);
			goto out;
		}
	}
	if (p.terminal && !console) {
		if (detach)
			errorf("cannot allocate tty if runc will detach without setting console socket");
		else
			errorf("--tty needs --console-socket: corral-runc does not relay its own terminal");
		goto out;
	}
	/* the container's filter applies to every process in it (checked at create) */
	p.seccomp = json_object_get(ct.st, "seccomp");
	const char *status = container_status(&ct);
	if (strcmp(status, "running") && strcmp(status, "created")) {
		errorf("cannot exec in a %s container", status);
		goto out;
	}
	int cons = -1;
	if (p.terminal && (cons = connect_console(console)) < 0)
		goto out;
	int mntfd = -1;
	if (join_container(&ct, &mntfd, err, sizeof(err))) {
		errorf("%s", err);
		goto out;
	}
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		errorf("pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		errorf("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		close(pfd[0]);
		struct stat st;
		if (mntfd >= 0 && setns(mntfd, CLONE_NEWNS) < 0) {
			char m[256];
			oci_errf(m, sizeof(m), "cannot join the mnt namespace: %s", strerror(errno));
			ssize_t w = write(pfd[1], m, strlen(m));
			(void)w;
			_exit(1);
		}
		/* what runc's init checks before it reports the process started:
		 * its cwd, and a program to run (looked up from that cwd) */
		char m[700];
		if (stat(p.cwd, &st) < 0 || chdir(p.cwd) < 0) {
			oci_errf(m, sizeof(m),
				 "unable to start container process: chdir to cwd (\"%.256s\") set in config.json "
				 "failed: %s",
				 p.cwd, strerror(errno));
			ssize_t w = write(pfd[1], m, strlen(m));
			(void)w;
			_exit(1);
		}
		char perr[600];
		if (oci_check_program(&p, perr, sizeof(perr))) {
			oci_errf(m, sizeof(m), "unable to start container process: %s", perr);
			ssize_t w = write(pfd[1], m, strlen(m));
			(void)w;
			_exit(1);
		}
		close(pfd[1]);
		oci_process_exec(&p, cons, preserve);
	}
	close(pfd[1]);
	if (mntfd >= 0)
		close(mntfd);
	if (cons >= 0)
		close(cons);
	char m[600];
	ssize_t n = read(pfd[0], m, sizeof(m) - 1);
	close(pfd[0]);
	if (n > 0) {
		m[n] = 0;
		errorf("%s", m);
		waitpid(pid, NULL, 0);
		goto out;
	}
	if (pidfile) {
		int r = write_pidfile(pidfile, pid);
		if (r) {
			errorf("--pid-file %.256s: %s", pidfile, strerror(-r));
			goto out;
		}
	}
	if (detach) {
		rc = 0;
		goto out;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
out:
	oci_process_free(&p);
	json_decref(owner);
	container_free(&ct);
	return rc;
}

/* ---- the command line ---- */

static void usage(FILE *f)
{
	fprintf(f, "usage: corral-runc [global options] COMMAND [ARGS...]\n"
		   "       corral oci [global options] COMMAND [ARGS...]\n"
		   "\n"
		   "An OCI runtime (runc's command line) whose containers' processes run as\n"
		   "process VMs on corral's x86-64 CPU.\n"
		   "\n"
		   "commands:\n"
		   "  create [--bundle DIR] [--pid-file F] [--console-socket S] ID\n"
		   "  start ID            let a created container's process run\n"
		   "  state ID            its runtime-spec state as JSON\n"
		   "  kill [--all] ID [SIGNAL]\n"
		   "  delete [--force] ID\n"
		   "  exec [--process JSON] [--tty] [--detach] [--pid-file F] ID [COMMAND...]\n"
		   "  ps [--format table|json] ID\n"
		   "  list [--format table|json] [--quiet]\n"
		   "  pause ID, resume ID (the cgroup freezer)\n"
		   "  features            what this runtime supports, as JSON\n"
		   "\n"
		   "global options:\n"
		   "  --root DIR          state directory (default /run/corral-runc)\n"
		   "  --log FILE          also write errors to FILE\n"
		   "  --log-format text|json\n"
		   "  --systemd-cgroup    refused: cgroupfs paths only\n"
		   "  -v, --version       print the version\n");
}

int oci_main(int argc, char **argv)
{
	int k = 1;
	signal(SIGPIPE, SIG_DFL);
	for (; k < argc && argv[k][0] == '-'; k++) {
		char *a = argv[k];
		if (a[1] == '-' && !a[2]) {
			k++;
			break;
		}
		if (a[1] == '-')
			a++; /* --opt and -opt, as runc's parser takes both */
		char *val = strchr(a, '=');
		size_t nl = val ? (size_t)(val - a) : strlen(a);
#define IS(o) (nl == strlen(o) && !strncmp(a, o, nl))
		if (IS("-root") || IS("-log") || IS("-log-format") || IS("-criu") || IS("-rootless")) {
			if (!val) {
				if (k + 1 >= argc) {
					errorf("option %s needs a value", argv[k]);
					return 1;
				}
				val = argv[++k];
			} else {
				val++;
			}
			if (IS("-root")) {
				g_root = val;
			} else if (IS("-log")) {
				if (*val && !(g_log = fopen(val, "ae"))) {
					errorf("--log %.256s: %s", val, strerror(errno));
					return 1;
				}
			} else if (IS("-log-format")) {
				if (!strcmp(val, "json"))
					g_log_json = 1;
				else if (strcmp(val, "text")) {
					errorf("unknown log-format \"%.32s\"", val);
					return 1;
				}
			} else if (IS("-rootless")) {
				if (strcmp(val, "false") && strcmp(val, "auto")) {
					errorf("--rootless %.32s is not supported", val);
					return 1;
				}
			} else {
				errorf("--criu is not supported: corral-runc has no checkpoints through criu");
				return 1;
			}
		} else if (IS("-systemd-cgroup")) {
			g_systemd_cgroup = 1;
		} else if (IS("-debug")) {
			/* nothing more to say than errors */
		} else if (IS("v") || IS("-version")) {
			printf("corral-runc version %s\nspec: %s\n", RUNTIME_VERSION, OCI_VERSION);
			return 0;
		} else if (IS("h") || IS("-help")) {
			usage(stdout);
			return 0;
		} else {
			errorf("unknown global option '%s' (see --help)", argv[k]);
			return 1;
		}
#undef IS
	}
	if (k >= argc) {
		usage(stderr);
		return 1;
	}
	const char *cmd = argv[k];
	int ac = argc - k;
	char **av = argv + k;
	if (!strcmp(cmd, "create"))
		return cmd_create(ac, av);
	if (!strcmp(cmd, "start"))
		return cmd_start(ac, av);
	if (!strcmp(cmd, "state"))
		return cmd_state(ac, av);
	if (!strcmp(cmd, "kill"))
		return cmd_kill(ac, av);
	if (!strcmp(cmd, "delete"))
		return cmd_delete(ac, av);
	if (!strcmp(cmd, "exec"))
		return cmd_exec(ac, av);
	if (!strcmp(cmd, "ps"))
		return cmd_ps(ac, av);
	if (!strcmp(cmd, "list"))
		return cmd_list(ac, av);
	if (!strcmp(cmd, "pause"))
		return cmd_pause(ac, av, 1);
	if (!strcmp(cmd, "resume"))
		return cmd_pause(ac, av, 0);
	if (!strcmp(cmd, "features"))
		return cmd_features(ac, av);
	if (!strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	errorf("unknown command '%.64s' (see --help)", cmd);
	return 1;
}
