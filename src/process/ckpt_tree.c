/* Checkpoints of process trees. The first process (the one with --control
 * or --checkpoint-signal) makes a private directory; every process of its
 * tree (forked, or exec'd by one that was) serves a unix socket there named
 * by its host pid, answered by a thread of corral's own. A checkpoint
 * walks the host's tree of children from the first process, stops each
 * process through its socket, learns which pipes each holds (a pipe both
 * of whose ends are within the tree is carried, whichever process holds
 * them), has each save its image into DIR/p<pid>, and commits them, its
 * own DIR/state last (which names the others): a checkpoint that fails
 * half-way leaves the older one. Children that have exited and were not
 * waited for are carried as their wait status. docs/checkpoint.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "process/ckpt_chan.h"
#include "process/ckpt_tree.h"
#include "process/internal.h"

#define TREE_LINE_MAX (1u << 20) /* a message: a pipe list of up to 65536 pipes */
#define TREE_IO_TIMEOUT_MS 30000
#define TREE_JOIN_WAIT_MS 3000 /* a process exec'ing has its socket again within this */

static struct {
	char dir[64];	/* the tree's directory, "" outside a tree */
	char sock[108]; /* this process's socket in it (a member's) */
	pid_t owner;	/* the process that made dir (the first) */
	pid_t sock_pid; /* the process that bound sock */
	int listen_fd;	/* a member's socket */
	int *conns;	/* the first process's connections during a checkpoint */
	int nconns;
} tree = {"", "", 0, 0, -1, NULL, 0};

bool ckpt_tree_on(void)
{
	return tree.dir[0] != 0;
}

bool ckpt_tree_own_fd(int fd)
{
	for (int k = 0; k < tree.nconns; k++)
		if (tree.conns[k] == fd)
			return true;
	return false;
}

const char *ckpt_tree_exec_arg(void)
{
	static char arg[128];
	if (!tree.dir[0])
		return NULL;
	snprintf(arg, sizeof(arg), "%d:%d:%s", (int)tree.owner, ckpt_signal, tree.dir);
	return arg;
}

int ckpt_tree_join_arg(const char *arg)
{
	char *e;
	long owner = strtol(arg, &e, 10);
	if (*e != ':' || owner <= 0)
		return -EINVAL;
	long sig = strtol(e + 1, &e, 10);
	if (*e != ':' || sig < 0 || sig > SIGRTMAX || e[1] != '/')
		return -EINVAL;
	/* the first process takes the checkpoint signal; a batch system that
	 * sends it to the whole group does not end the others */
	if (sig) {
		ckpt_signal = (int)sig;
		signal((int)sig, SIG_IGN);
	}
	ckpt_tree_join(e + 1, (pid_t)owner);
	return 0;
}

/* ---- messages: one line each way ---- */

static int send_line(int fd, const char *s)
{
	size_t n = strlen(s);
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EPIPE;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A line (without its newline) into a malloc'd *out; -errno on a closed
 * connection, a timeout or a line too long. */
static int recv_line(int fd, char **out, int timeout_ms)
{
	size_t cap = 256, len = 0;
	char *b = malloc(cap);
	if (!b)
		return -ENOMEM;
	for (;;) {
		struct pollfd pf = {fd, POLLIN, 0};
		int p = poll(&pf, 1, timeout_ms);
		if (p < 0 && errno == EINTR)
			continue;
		if (p <= 0) {
			free(b);
			return -ETIMEDOUT;
		}
		if (len + 1 >= cap) {
			if (cap >= TREE_LINE_MAX) {
				free(b);
				return -E2BIG;
			}
			char *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
			cap *= 2;
		}
		ssize_t n = recv(fd, b + len, 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(b);
			return -ECONNRESET;
		}
		if (b[len] == '\n') {
			b[len] = 0;
			*out = b;
			return 0;
		}
		len++;
	}
}

/* ---- the pipes a process holds ---- */

/* "ino:ends ..." of this process's pipes (ends: 1 the read end, 2 the
 * write end) and "sINO:PEER:FD ..." of its connected unix sockets (the
 * first descriptor of each), descriptors 0-2 included. */
static char *pipe_list(int *count)
{
	DIR *d = opendir("/proc/self/fd");
	size_t cap = 256, len = 0;
	char *s = malloc(cap);
	*count = 0;
	if (!d || !s) {
		if (d)
			closedir(d);
		free(s);
		return NULL;
	}
	s[0] = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end || e->d_name[0] == '.' || fd == dirfd(d) || fs_fd_reserved(fd) || ckpt_tree_own_fd((int)fd))
			continue;
		struct stat st;
		int fl = fcntl((int)fd, F_GETFL);
		if (fstat((int)fd, &st) < 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) || fl < 0)
			continue;
		int acc = fl & O_ACCMODE;
		int ends = acc == O_RDONLY ? 1 : acc == O_WRONLY ? 2 : 3;
		uint64_t peer = S_ISSOCK(st.st_mode) ? ckpt_chan_sock_peer((uint64_t)st.st_ino) : 0;
		if (S_ISSOCK(st.st_mode) && !peer)
			continue; /* not a pair's: the process's own checkpoint says why */
		if (len + 80 > cap) {
			char *ns = realloc(s, cap * 2);
			if (!ns) {
				free(s);
				closedir(d);
				return NULL;
			}
			s = ns;
			cap *= 2;
		}
		if (peer)
			len += (size_t)snprintf(s + len, cap - len, " s%llu:%llu:%ld", (unsigned long long)st.st_ino,
						(unsigned long long)peer, fd);
		else
			len += (size_t)snprintf(s + len, cap - len, " %llu:%d", (unsigned long long)st.st_ino, ends);
		(*count)++;
	}
	closedir(d);
	return s;
}

struct pipe_ends {
	uint64_t ino;
	int ends;
};

struct sock_end {
	uint64_t ino, peer;
	pid_t pid; /* host pid of the first process that holds it */
	int fd;
};

/* A socket of host process pid: the first holder of each is its reader. */
static int add_sock(struct sock_end **v, size_t *n, const char **pp, pid_t pid)
{
	char *e;
	unsigned long long ino = strtoull(*pp, &e, 10);
	if (*e != ':' || !ino)
		return -EPROTO;
	unsigned long long peer = strtoull(e + 1, &e, 10);
	if (*e != ':' || !peer)
		return -EPROTO;
	long fd = strtol(e + 1, &e, 10);
	if (fd < 0 || fd >= CKPT_MAX_FDS || (*e && *e != ' '))
		return -EPROTO;
	*pp = e;
	for (size_t k = 0; k < *n; k++)
		if ((*v)[k].ino == ino)
			return (*v)[k].peer == peer ? 0 : -EPROTO;
	if (*n >= 2 * (size_t)CKPT_MAX_CHANS)
		return -E2BIG;
	struct sock_end *nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[(*n)++] = (struct sock_end){ino, peer, pid, (int)fd};
	return 0;
}

static int add_ends(struct pipe_ends **v, size_t *n, struct sock_end **sv, size_t *sn, const char *list, pid_t pid)
{
	const char *p = list;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		if (*p == 's') {
			p++;
			int r = add_sock(sv, sn, &p, pid);
			if (r)
				return r;
			continue;
		}
		char *e;
		unsigned long long ino = strtoull(p, &e, 10);
		if (*e != ':' || !ino)
			return -EPROTO;
		long ends = strtol(e + 1, &e, 10);
		if (ends < 1 || ends > 3 || (*e && *e != ' '))
			return -EPROTO;
		p = e;
		size_t k;
		for (k = 0; k < *n && (*v)[k].ino != ino; k++)
			;
		if (k == *n) {
			if (*n >= CKPT_MAX_CHANS)
				return -E2BIG;
			struct pipe_ends *nv = realloc(*v, (*n + 1) * sizeof(**v));
			if (!nv)
				return -ENOMEM;
			*v = nv;
			nv[(*n)++] = (struct pipe_ends){ino, 0};
		}
		(*v)[k].ends |= (int)ends;
	}
	return 0;
}

/* ---- a process of the tree other than the first ---- */

static int member_save(char *line, char *err, size_t errn, char *subdir, size_t subn)
{
	/* "save LEAVE N KEY... DIR" */
	char *p = line + 5, *e;
	long leave = strtol(p, &e, 10);
	long n = strtol(e, &e, 10);
	if (n < 0 || n > CKPT_MAX_CHANS || (leave != 0 && leave != 1)) {
		snprintf(err, errn, "a malformed request");
		return -EPROTO;
	}
	uint64_t *keys = n ? malloc((size_t)n * sizeof(*keys)) : NULL;
	if (n && !keys)
		return -ENOMEM;
	for (long k = 0; k < n; k++)
		keys[k] = strtoull(e, &e, 10);
	/* then "M INO:PID:FD...": the sockets of pairs within the tree */
	long ns = strtol(e, &e, 10);
	if (ns < 0 || ns > 2 * (long)CKPT_MAX_CHANS) {
		free(keys);
		snprintf(err, errn, "a malformed request");
		return -EPROTO;
	}
	struct ckpt_tree_sock *socks = ns ? calloc((size_t)ns, sizeof(*socks)) : NULL;
	if (ns && !socks) {
		free(keys);
		return -ENOMEM;
	}
	for (long k = 0; k < ns; k++) {
		socks[k].ino = strtoull(e, &e, 10);
		socks[k].pid = (int32_t)strtol(*e == ':' ? e + 1 : e, &e, 10);
		socks[k].fd = (int32_t)strtol(*e == ':' ? e + 1 : e, &e, 10);
	}
	while (*e == ' ')
		e++;
	int r = ckpt_chan_set_tree(keys, (size_t)n);
	if (!r)
		r = ckpt_chan_set_tree_socks(socks, (size_t)ns);
	free(keys);
	free(socks);
	if (r)
		return r;
	snprintf(subdir, subn, "%s/p%d", e, pid_to_guest(getpid()));
	if (mkdir(subdir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errn, "'%.300s': %s", subdir, strerror(errno));
		return -errno;
	}
	r = ckpt_save(subdir, (int)leave, NULL, 0, err, errn);
	ckpt_chan_set_tree(NULL, 0);
	ckpt_chan_set_tree_socks(NULL, 0);
	return r;
}

/* One checkpoint, asked for by the first process on connection c. */
static void member_serve(int c)
{
	char *line = NULL, err[512], subdir[PATH_MAX] = "", reply[640];
	bool frozen = false, saved = false;
	while (recv_line(c, &line, frozen ? TREE_IO_TIMEOUT_MS * 4 : TREE_IO_TIMEOUT_MS) == 0) {
		err[0] = 0;
		int r = 0;
		if (!strcmp(line, "freeze") && !frozen) {
			if (!(r = ckpt_freeze(err, sizeof(err)))) {
				frozen = true;
				int n;
				char *list = pipe_list(&n);
				char *msg = list ? malloc(strlen(list) + 64) : NULL;
				if (msg) {
					sprintf(msg, "ok %d %d %d %d%s\n", pid_to_guest(getpid()),
						pid_to_guest(getppid()), pid_to_guest(getpgrp()),
						pid_to_guest(getsid(0)), list);
					r = send_line(c, msg);
				} else {
					r = -ENOMEM;
					snprintf(err, sizeof(err), "out of memory");
				}
				free(msg);
				free(list);
				if (msg) {
					free(line);
					line = NULL;
					if (r)
						break;
					continue;
				}
			}
		} else if (!strncmp(line, "save ", 5) && frozen && !saved) {
			r = member_save(line, err, sizeof(err), subdir, sizeof(subdir));
			saved = !r;
		} else if (!strcmp(line, "commit") && saved) {
			r = ckpt_commit(subdir, 1, err, sizeof(err));
			saved = false;
		} else if (!strcmp(line, "exit") && frozen) {
			ckpt_tree_exit();
			fflush(NULL);
			_exit(0);
		} else if (!strcmp(line, "go") || !strcmp(line, "abort")) {
			break;
		} else {
			r = -EPROTO;
			snprintf(err, sizeof(err), "an unexpected request");
		}
		free(line);
		line = NULL;
		if (r && !err[0])
			snprintf(err, sizeof(err), "%s", strerror(-r));
		snprintf(reply, sizeof(reply), r ? "err %.600s\n" : "ok\n", err);
		for (char *q = reply; r && *q && q[1]; q++)
			if (*q == '\n')
				*q = ' ';
		if (send_line(c, reply) || (r && !frozen))
			break;
	}
	free(line);
	/* "go", "abort", or the first process gone: everything as before */
	if (saved)
		ckpt_commit(subdir, 0, err, sizeof(err));
	if (frozen)
		ckpt_thaw();
}

static void *member_thread(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept4(tree.listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;
		}
		/* only the first process of the tree (a checkpoint) asks */
		struct ucred cr;
		socklen_t cl = sizeof(cr);
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && cr.pid == tree.owner) {
			int rc = fs_reserve_fd(&proc, c);
			member_serve(rc);
			for (int k = 0; k < PROC_MAX_RSV_FD; k++)
				if (proc.rsv_fd[k] == rc)
					proc.rsv_fd[k] = -1;
			close(rc);
		} else {
			close(c);
		}
	}
}

void ckpt_tree_join(const char *dir, pid_t owner)
{
	/* a forked process: its parent's socket and connections are not its own */
	if (tree.listen_fd >= 0) {
		for (int k = 0; k < PROC_MAX_RSV_FD; k++)
			if (proc.rsv_fd[k] == tree.listen_fd)
				proc.rsv_fd[k] = -1;
		close(tree.listen_fd);
		tree.listen_fd = -1;
	}
	tree.sock[0] = 0;
	if (!dir || !*dir || strlen(dir) >= sizeof(tree.dir))
		return;
	if (dir != tree.dir)
		snprintf(tree.dir, sizeof(tree.dir), "%s", dir);
	tree.owner = owner;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%d", tree.dir, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* an exec'd program's pid had a socket before the execve */
	unlink(sa.sun_path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		/* not reachable: a checkpoint of the tree says so */
		if (fd >= 0)
			close(fd);
		return;
	}
	memcpy(tree.sock, sa.sun_path, (size_t)n + 1);
	tree.sock_pid = getpid();
	tree.listen_fd = fs_reserve_fd(&proc, fd);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 1 << 20);
	pthread_t t;
	if (pthread_create(&t, &at, member_thread, NULL)) {
		unlink(tree.sock);
		tree.sock[0] = 0;
	}
	pthread_attr_destroy(&at);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void ckpt_tree_after_fork(void)
{
	if (tree.dir[0])
		ckpt_tree_join(tree.dir, tree.owner);
}

int ckpt_tree_start(char *err, size_t errn)
{
	if (tree.dir[0] && tree.owner == getpid())
		return 0;
	snprintf(tree.dir, sizeof(tree.dir), "/tmp/corral-tree.XXXXXX");
	if (!mkdtemp(tree.dir)) {
		snprintf(err, errn, "cannot make a directory for the process tree (%s): %s", tree.dir, strerror(errno));
		tree.dir[0] = 0;
		return -errno;
	}
	tree.owner = getpid();
	return 0;
}

void ckpt_tree_exit(void)
{
	if (tree.sock[0] && tree.sock_pid == getpid())
		unlink(tree.sock);
	/* the first process removes the directory, or the last one out after it */
	if (tree.dir[0] && (tree.owner == getpid() || (kill(tree.owner, 0) < 0 && errno == ESRCH)))
		rmdir(tree.dir);
}

/* ---- the first process: a checkpoint of the whole tree ---- */

struct tmember {
	pid_t host;
	int fd; /* its connection, or -1 for a zombie */
	struct ckpt_tree_proc p;
	int pgid, sid; /* as the program knows them (a process's) */
};

/* A host process's state, parent and (a zombie's) wait status from
 * /proc/PID/stat (exit_code, field 52, Linux 3.5). */
static int proc_stat(pid_t pid, char *state, pid_t *ppid, int *status)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EIO;
	p += 2;
	*state = *p;
	*ppid = (pid_t)strtol(p + 2, &p, 10);
	/* fields 5..52: 48 more */
	long v = 0;
	for (int f = 5; f <= 52 && p; f++) {
		v = strtol(p, &p, 10);
		if (!*p && f < 52) {
			p = NULL;
			break;
		}
	}
	*status = p ? (int)v : 0;
	return 0;
}

/* host pids of pid's children (every thread's) appended to *v */
static int children_of(pid_t pid, pid_t **v, size_t *n, size_t *cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char cp[96];
		snprintf(cp, sizeof(cp), "/proc/%d/task/%.20s/children", (int)pid, e->d_name);
		FILE *f = fopen(cp, "re");
		if (!f)
			continue;
		long c;
		while (fscanf(f, "%ld", &c) == 1) {
			if (*n == *cap) {
				*cap = *cap ? *cap * 2 : 16;
				pid_t *nv = realloc(*v, *cap * sizeof(**v));
				if (!nv) {
					fclose(f);
					closedir(d);
					return -ENOMEM;
				}
				*v = nv;
			}
			(*v)[(*n)++] = (pid_t)c;
		}
		fclose(f);
	}
	closedir(d);
	return 0;
}

static int connect_member(pid_t pid)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%d", tree.dir, (int)pid);
	for (int waited = 0; waited < TREE_JOIN_WAIT_MS; waited += 20) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		int e = errno;
		close(fd);
		if (e != ENOENT && e != ECONNREFUSED)
			return -e;
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	return -ENOENT;
}

/* Every member: the same request; each must answer "ok". */
static int ask_all(struct tmember *m, size_t n, const char *req, char *err, size_t errn)
{
	for (size_t k = 0; k < n; k++)
		if (m[k].fd >= 0 && send_line(m[k].fd, req)) {
			snprintf(err, errn, "process %d of the tree went away during the checkpoint", m[k].p.pid);
			return -EPIPE;
		}
	for (size_t k = 0; k < n; k++) {
		if (m[k].fd < 0)
			continue;
		char *line;
		int r = recv_line(m[k].fd, &line, TREE_IO_TIMEOUT_MS);
		if (r) {
			snprintf(err, errn, "process %d of the tree did not answer (%s)", m[k].p.pid, strerror(-r));
			return r;
		}
		if (strcmp(line, "ok")) {
			snprintf(err, errn, "process %d of the tree: %.400s", m[k].p.pid,
				 !strncmp(line, "err ", 4) ? line + 4 : line);
			free(line);
			return -EOPNOTSUPP;
		}
		free(line);
	}
	return 0;
}

/* A process of the tree whose parent exited went to init (or a subreaper)
 * and out of the walk; its socket in the directory still tells of it. */
static int check_orphans(const struct tmember *m, size_t nm, char *err, size_t errn)
{
	DIR *d = opendir(tree.dir);
	if (!d)
		return 0;
	struct dirent *e;
	int r = 0;
	while (!r && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || pid == getpid() || kill((pid_t)pid, 0) < 0)
			continue;
		bool known = false;
		for (size_t k = 0; k < nm && !known; k++)
			known = m[k].host == pid;
		char st;
		pid_t pp;
		int status;
		if (!known && !proc_stat((pid_t)pid, &st, &pp, &status) && st != 'Z') {
			snprintf(err, errn,
				 "process %d left the tree (its parent exited; it is a child of %d now): it cannot be "
				 "carried",
				 pid_to_guest((pid_t)pid), (int)pp);
			r = -EOPNOTSUPP;
		}
	}
	closedir(d);
	return r;
}

int ckpt_tree_checkpoint(const char *dir, int leave_running, char *err, size_t errn)
{
	struct tmember *m = NULL;
	size_t nm = 0;
	pid_t *walk = NULL;
	size_t nw = 0, cw = 0;
	struct pipe_ends *ends = NULL;
	size_t nends = 0;
	struct sock_end *socks = NULL;
	size_t nsocks = 0;
	struct ckpt_tree_sock *ts = NULL;
	uint64_t *keys = NULL;
	char *req = NULL;
	int r = 0;
	pid_t self = getpid();
	tree.conns = calloc(CKPT_MAX_PROCS, sizeof(int));
	if (!tree.conns)
		return -ENOMEM;
	int mine;
	char *own = pipe_list(&mine);
	if (!own || (r = add_ends(&ends, &nends, &socks, &nsocks, own, self))) {
		r = r ? r : -ENOMEM;
		goto out;
	}
	/* stop every process of the tree: walk it from here, again until a
	 * walk finds none new (a process stopped forks no more) */
	for (bool grew = true; grew && !r;) {
		grew = false;
		nw = 0;
		if ((r = children_of(self, &walk, &nw, &cw)))
			break;
		for (size_t k = 0; k < nw && !r; k++) {
			pid_t pid = walk[k];
			bool known = false;
			for (size_t j = 0; j < nm && !known; j++)
				known = m[j].host == pid;
			if (!known) {
				char st;
				pid_t pp;
				int status;
				if (proc_stat(pid, &st, &pp, &status))
					continue; /* gone and waited for */
				if (nm == CKPT_MAX_PROCS) {
					snprintf(err, errn, "more than %d processes in the tree", CKPT_MAX_PROCS);
					r = -E2BIG;
					break;
				}
				struct tmember *nmv = realloc(m, (nm + 1) * sizeof(*m));
				if (!nmv) {
					r = -ENOMEM;
					break;
				}
				m = nmv;
				struct tmember *t = &m[nm];
				*t = (struct tmember){
					pid, -1, {pid_to_guest(pid), pid_to_guest(pp), CKTP_ZOMBIE, 0}, 0, 0};
				grew = true;
				if (st == 'Z') {
					t->p.status = status;
					nm++;
					continue;
				}
				int fd = connect_member(pid);
				if (fd < 0) {
					if (!proc_stat(pid, &st, &pp, &status) && st == 'Z') {
						t->p.status = status;
						nm++;
						continue;
					}
					snprintf(err, errn,
						 "process %d (a child of %d) is outside the tree's reach: it is not a "
						 "process VM of this program's corral",
						 t->p.pid, t->p.ppid);
					r = -EOPNOTSUPP;
					break;
				}
				t->fd = fd;
				tree.conns[tree.nconns++] = fd;
				nm++;
				char *line = NULL;
				if ((r = send_line(fd, "freeze\n")) || (r = recv_line(fd, &line, TREE_IO_TIMEOUT_MS))) {
					snprintf(err, errn, "process %d of the tree did not stop (%s)", t->p.pid,
						 strerror(-r));
					break;
				}
				int gp, gpp, used = 0;
				if (sscanf(line, "ok %d %d %d %d%n", &gp, &gpp, &t->pgid, &t->sid, &used) < 4) {
					snprintf(err, errn, "process %d of the tree: %.400s", t->p.pid,
						 !strncmp(line, "err ", 4) ? line + 4 : line);
					free(line);
					r = -EOPNOTSUPP;
					break;
				}
				if (gp <= 0 || gp >= CKPT_PID_MAX || gpp <= 0 || gpp >= CKPT_PID_MAX || t->pgid < 0 ||
				    t->sid < 0) {
					snprintf(err, errn, "process %d of the tree: a malformed answer", t->p.pid);
					free(line);
					r = -EPROTO;
					break;
				}
				t->p = (struct ckpt_tree_proc){gp, gpp, CKTP_PROCESS, 0};
				r = add_ends(&ends, &nends, &socks, &nsocks, line + used, pid);
				free(line);
				if (r)
					snprintf(err, errn, "process %d of the tree: a malformed answer", t->p.pid);
			}
			if (!r && (r = children_of(pid, &walk, &nw, &cw)))
				break;
		}
	}
	if (r)
		goto out;
	if ((r = check_orphans(m, nm, err, errn)))
		goto out;
	/* a zombie's children are none; a member's parent is known */
	for (size_t k = 0; k < nm; k++) {
		bool ok = m[k].p.ppid == pid_to_guest(self);
		for (size_t j = 0; j < k && !ok; j++)
			ok = m[j].p.pid == m[k].p.ppid && m[j].p.kind == CKTP_PROCESS;
		if (!ok) {
			snprintf(err, errn, "process %d: its parent %d is not in the tree before it", m[k].p.pid,
				 m[k].p.ppid);
			r = -EOPNOTSUPP;
			goto out;
		}
	}
	/* every process group and session is the first process's, or led by
	 * a living process of the tree (which makes it again at restore), or
	 * outside the program's pid namespace (0, as Linux reports it) */
	int own_pgid = pid_to_guest(getpgrp()), own_sid = pid_to_guest(getsid(0));
	for (size_t k = 0; k < nm; k++) {
		if (m[k].p.kind != CKTP_PROCESS)
			continue;
		int id[2] = {m[k].pgid, m[k].sid};
		for (int i = 0; i < 2; i++) {
			bool ok = !id[i] || id[i] == (i ? own_sid : own_pgid) || id[i] == pid_to_guest(self);
			for (size_t j = 0; j < nm && !ok; j++)
				ok = m[j].p.kind == CKTP_PROCESS && m[j].p.pid == id[i];
			if (!ok) {
				snprintf(err, errn,
					 "process %d: its %s %d has no leader in the tree (it exited): not carried",
					 m[k].p.pid, i ? "session" : "process group", id[i]);
				r = -EOPNOTSUPP;
				goto out;
			}
		}
	}
	/* the pipes and socket pairs both of whose ends the tree holds */
	size_t nk = 0, nts = 0;
	keys = malloc((nends + 1) * sizeof(*keys));
	ts = calloc(nsocks + 1, sizeof(*ts));
	req = keys && ts ? malloc(nends * 24 + nsocks * 48 + strlen(dir) + 64) : NULL;
	if (!req) {
		r = -ENOMEM;
		goto out;
	}
	int len = sprintf(req, "save %d %zu", leave_running ? 1 : 0, (size_t)0);
	for (size_t k = 0; k < nends; k++)
		if (ends[k].ends == 3)
			keys[nk++] = ends[k].ino;
	for (size_t k = 0; k < nsocks; k++)
		for (size_t j = 0; j < nsocks; j++)
			if (socks[j].ino == socks[k].peer && socks[j].peer == socks[k].ino) {
				ts[nts++] = (struct ckpt_tree_sock){socks[k].ino, socks[k].pid, socks[k].fd};
				break;
			}
	len = sprintf(req, "save %d %zu", leave_running ? 1 : 0, nk);
	for (size_t k = 0; k < nk; k++)
		len += sprintf(req + len, " %llu", (unsigned long long)keys[k]);
	len += sprintf(req + len, " %zu", nts);
	for (size_t k = 0; k < nts; k++)
		len += sprintf(req + len, " %llu:%d:%d", (unsigned long long)ts[k].ino, (int)ts[k].pid, (int)ts[k].fd);
	sprintf(req + len, " %s\n", dir);
	if (strchr(dir, '\n')) {
		snprintf(err, errn, "'%.300s': a directory with a newline in its name", dir);
		r = -EINVAL;
		goto out;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errn, "'%.300s': %s", dir, strerror(errno));
		r = -errno;
		goto out;
	}
	if ((r = ckpt_chan_set_tree(keys, nk)) || (r = ckpt_chan_set_tree_socks(ts, nts)) ||
	    (r = ask_all(m, nm, req, err, errn)))
		goto out;
	struct ckpt_tree_proc *tp = nm ? calloc(nm, sizeof(*tp)) : NULL;
	if (nm && !tp) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < nm; k++)
		tp[k] = m[k].p;
	r = ckpt_save(dir, leave_running, tp, (uint32_t)nm, err, errn);
	free(tp);
	if (r)
		goto out;
	if ((r = ask_all(m, nm, "commit\n", err, errn)) || (r = ckpt_commit(dir, 1, err, errn))) {
		ckpt_commit(dir, 0, err, errn);
		goto out;
	}
	for (size_t k = 0; k < nm; k++)
		if (m[k].fd >= 0)
			send_line(m[k].fd, leave_running ? "go\n" : "exit\n");
	/* the others gone (their sockets too) before this one removes the directory */
	for (size_t k = 0; k < nm && !leave_running; k++) {
		char *line;
		if (m[k].fd >= 0 && recv_line(m[k].fd, &line, 2000) == 0)
			free(line);
	}
out:
	ckpt_chan_set_tree(NULL, 0);
	ckpt_chan_set_tree_socks(NULL, 0);
	if (r) {
		for (size_t k = 0; k < nm; k++)
			if (m[k].fd >= 0)
				send_line(m[k].fd, "abort\n");
	}
	for (size_t k = 0; k < nm; k++)
		if (m[k].fd >= 0)
			close(m[k].fd);
	free(tree.conns);
	tree.conns = NULL;
	tree.nconns = 0;
	free(m);
	free(walk);
	free(ends);
	free(socks);
	free(ts);
	free(keys);
	free(req);
	free(own);
	if (r && !err[0])
		snprintf(err, errn, "the process tree: %s", strerror(-r));
	return r;
}
