/* The container's side of `create` and `exec`: mounts inside the bundle's
 * root (each destination resolved inside it, never through a symlink out),
 * masked and read-only paths, pivot_root, the wait on exec.fifo until
 * `start`, then the process's user, limits, capabilities and terminal, and
 * the process VM that runs its program on corral's CPU. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "oci/oci.h"
#include "process/proc.h"

static int openat2_in(int rootfd, const char *path, int flags)
{
	struct open_how how = {.flags = (unsigned long long)(flags | O_CLOEXEC),
			       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	while (*path == '/')
		path++;
	if (!*path)
		path = ".";
	long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

/* Make path (inside rootfd) exist: directories along it, and at the end a
 * directory or (file) an empty file. Returns an O_PATH fd of it. */
static int mkpath_depth(int rootfd, const char *path, int file, int depth)
{
	char buf[4096];
	if (depth > 40)
		return -ELOOP;
	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	size_t len = strlen(buf);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = 0;
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i])
			continue;
		char c = buf[i];
		buf[i] = 0;
		int last = !c;
		int fd = openat2_in(rootfd, buf, O_PATH);
		if (fd == -ENOENT) {
			char *slash = strrchr(buf, '/');
			*slash = 0;
			int pfd = openat2_in(rootfd, *buf ? buf : "/", O_PATH | O_DIRECTORY);
			*slash = '/';
			if (pfd < 0)
				return pfd;
			int r;
			if (last && file) {
				r = openat(pfd, slash + 1, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
				if (r >= 0)
					close(r);
			} else {
				r = mkdirat(pfd, slash + 1, 0755);
			}
			r = r < 0 && errno != EEXIST ? -errno : 0;
			if (r) {
				close(pfd);
				return r;
			}
			fd = openat2_in(rootfd, buf, O_PATH);
			/* a dangling symlink: make its target, inside the root */
			char t[4096], np[8192];
			ssize_t tl;
			if (fd == -ENOENT && (tl = readlinkat(pfd, slash + 1, t, sizeof(t) - 1)) > 0) {
				t[tl] = 0;
				*slash = 0;
				const char *rest = c ? buf + i + 1 : "";
				if (t[0] == '/')
					snprintf(np, sizeof(np), "%s%s%s", t, *rest ? "/" : "", rest);
				else
					snprintf(np, sizeof(np), "%s/%s%s%s", buf, t, *rest ? "/" : "", rest);
				*slash = '/';
				buf[i] = c;
				close(pfd);
				return mkpath_depth(rootfd, np, file, depth + 1);
			}
			close(pfd);
		}
		if (fd < 0)
			return fd;
		if (last)
			return fd;
		close(fd);
		buf[i] = c;
	}
	return -EINVAL;
}

static int mkpath_in(int rootfd, const char *path, int file)
{
	return mkpath_depth(rootfd, path, file, 0);
}

static void fdpath(char *out, size_t n, int fd)
{
	snprintf(out, n, "/proc/self/fd/%d", fd);
}

/* mount flags that a bind remount must keep (in a user namespace the
 * kernel refuses to clear locked ones) */
static unsigned long kept_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_RDONLY)
		f |= MS_RDONLY;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

#define FAIL(...)                                                                                                      \
	do {                                                                                                           \
		oci_errf(err, errn, __VA_ARGS__);                                                                      \
		goto out;                                                                                              \
	} while (0)

/* tmpcopyup: what the image had under the tmpfs, copied into it. from is
 * a directory fd opened before the mount (it still sees what lies under). */
static int copy_tree(int from, int to, int depth)
{
	if (depth > 32)
		return -ELOOP;
	int dfd = dup(from);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -errno;
	}
	int r = 0;
	struct dirent *e;
	while (!r && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(from, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			if (mkdirat(to, e->d_name, st.st_mode & 07777) < 0 && errno != EEXIST) {
				r = -errno;
				break;
			}
			int a = openat(from, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int b = openat(to, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			r = a < 0 || b < 0 ? -errno : copy_tree(a, b, depth + 1);
			if (a >= 0)
				close(a);
			if (b >= 0)
				close(b);
		} else if (S_ISLNK(st.st_mode)) {
			char t[4096];
			ssize_t n = readlinkat(from, e->d_name, t, sizeof(t) - 1);
			if (n < 0) {
				r = -errno;
				break;
			}
			t[n] = 0;
			if (symlinkat(t, to, e->d_name) < 0)
				r = -errno;
		} else if (S_ISREG(st.st_mode)) {
			int a = openat(from, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			int b = openat(to, e->d_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				       st.st_mode & 07777);
			if (a < 0 || b < 0)
				r = -errno;
			char buf[65536];
			ssize_t n;
			while (!r && (n = read(a, buf, sizeof(buf))) > 0)
				if (write(b, buf, (size_t)n) != n)
					r = -EIO;
			if (a >= 0)
				close(a);
			if (b >= 0)
				close(b);
		} else {
			continue; /* devices, FIFOs and sockets are not copied */
		}
		if (!r && fchownat(to, e->d_name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
	}
	closedir(d);
	return r;
}

static int do_mount(int rootfd, const struct oci_mount *m, json_t *cgroups, char *err, size_t errn)
{
	int r = -1, fd = -1;
	char target[64];
	int file = 0;
	if (m->bind) {
		struct stat st;
		if (stat(m->source, &st) < 0)
			FAIL("mount %.256s: bind source %.256s: %s", m->dest, m->source, strerror(errno));
		file = !S_ISDIR(st.st_mode);
	}
	if ((fd = mkpath_in(rootfd, m->dest, file)) < 0)
		FAIL("mount %.256s: cannot create it inside the root: %s", m->dest, strerror(-fd));
	fdpath(target, sizeof(target), fd);
	unsigned long flags = m->flags & ~(MS_BIND | MS_REC);
	if (m->bind) {
		if (mount(m->source, target, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
			FAIL("mount %.256s: bind %.256s: %s", m->dest, m->source, strerror(errno));
		if (flags) {
			close(fd);
			if ((fd = openat2_in(rootfd, m->dest, O_PATH)) < 0)
				FAIL("mount %.256s: %s", m->dest, strerror(-fd));
			fdpath(target, sizeof(target), fd);
			if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | flags | kept_flags(target), NULL) < 0)
				FAIL("mount %.256s: remount: %s", m->dest, strerror(errno));
		}
	} else if (!strcmp(m->type, "cgroup") || !strcmp(m->type, "cgroup2")) {
		/* as runc shows a v1 hierarchy: a tmpfs, and in it each
		 * controller's directory of this container bound in */
		if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0)
			FAIL("mount %.256s: tmpfs: %s", m->dest, strerror(errno));
		close(fd);
		if ((fd = openat2_in(rootfd, m->dest, O_PATH)) < 0)
			FAIL("mount %.256s: %s", m->dest, strerror(-fd));
		fdpath(target, sizeof(target), fd);
		size_t k;
		json_t *v;
		json_array_foreach(cgroups, k, v)
		{
			const char *dir = json_string_value(v);
			const char *ctrl = dir + strlen("/sys/fs/cgroup/");
			char sub[4200];
			snprintf(sub, sizeof(sub), "%s/%.*s", m->dest, (int)strcspn(ctrl, "/"), ctrl);
			int cfd = mkpath_in(rootfd, sub, 0);
			if (cfd < 0)
				FAIL("mount %.256s: %s", sub, strerror(-cfd));
			char ct[64];
			fdpath(ct, sizeof(ct), cfd);
			int mr = mount(dir, ct, NULL, MS_BIND, NULL);
			close(cfd);
			if (mr < 0)
				FAIL("mount %.256s: bind %.256s: %s", sub, dir, strerror(errno));
			if ((cfd = openat2_in(rootfd, sub, O_PATH)) < 0)
				FAIL("mount %.256s: %s", sub, strerror(-cfd));
			fdpath(ct, sizeof(ct), cfd);
			mr = mount(NULL, ct, NULL,
				   MS_REMOUNT | MS_BIND | (m->flags & ~(MS_BIND | MS_REC)) | MS_NOSUID | MS_NODEV |
					   MS_NOEXEC,
				   NULL);
			close(cfd);
			if (mr < 0)
				FAIL("mount %.256s: remount: %s", sub, strerror(errno));
		}
		if (mount(NULL, target, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | (m->flags & MS_RDONLY),
			  "mode=755") < 0)
			FAIL("mount %.256s: %s", m->dest, strerror(errno));
	} else {
		int under = m->tmpcopyup ? openat2_in(rootfd, m->dest, O_RDONLY | O_DIRECTORY) : -1;
		/* the copy is made before the tmpfs becomes read-only */
		unsigned long f1 = m->tmpcopyup ? flags & ~MS_RDONLY : flags;
		if (mount(m->source ? m->source : m->type, target, m->type, f1, m->data) < 0) {
			if (under >= 0)
				close(under);
			FAIL("mount %.256s (%s): %s", m->dest, m->type, strerror(errno));
		}
		if (m->tmpcopyup) {
			close(fd);
			fd = openat2_in(rootfd, m->dest, O_RDONLY | O_DIRECTORY);
			int cr = under < 0 || fd < 0 ? -ENOENT : copy_tree(under, fd, 0);
			if (under >= 0)
				close(under);
			if (cr)
				FAIL("mount %.256s: tmpcopyup: %s", m->dest, strerror(-cr));
			fdpath(target, sizeof(target), fd);
			if ((flags & MS_RDONLY) && mount(NULL, target, NULL, MS_REMOUNT | flags, m->data) < 0)
				FAIL("mount %.256s: read-only: %s", m->dest, strerror(errno));
		}
	}
	if (m->propagation) {
		close(fd);
		if ((fd = openat2_in(rootfd, m->dest, O_PATH)) < 0)
			FAIL("mount %.256s: %s", m->dest, strerror(-fd));
		fdpath(target, sizeof(target), fd);
		if (mount(NULL, target, NULL, m->propagation, NULL) < 0)
			FAIL("mount %.256s: propagation: %s", m->dest, strerror(errno));
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

/* The few device nodes every container has (runc's default list), bound
 * from the host's; the devices cgroup says what may be opened. */
static int default_devices(int rootfd, char *err, size_t errn)
{
	static const char *const devs[] = {"null", "zero", "full", "random", "urandom", "tty"};
	static const char *const links[][2] = {{"/proc/self/fd", "/dev/fd"},
					       {"/proc/self/fd/0", "/dev/stdin"},
					       {"/proc/self/fd/1", "/dev/stdout"},
					       {"/proc/self/fd/2", "/dev/stderr"},
					       {"pts/ptmx", "/dev/ptmx"}};
	int r = -1, fd = -1;
	for (size_t k = 0; k < sizeof(devs) / sizeof(devs[0]); k++) {
		char src[64], dst[64], target[64];
		snprintf(src, sizeof(src), "/dev/%s", devs[k]);
		snprintf(dst, sizeof(dst), "/dev/%s", devs[k]);
		if ((fd = mkpath_in(rootfd, dst, 1)) < 0)
			FAIL("%s: cannot create it: %s", dst, strerror(-fd));
		fdpath(target, sizeof(target), fd);
		if (mount(src, target, NULL, MS_BIND, NULL) < 0)
			FAIL("%s: bind from the host: %s", dst, strerror(errno));
		close(fd);
		fd = -1;
	}
	int dfd = openat2_in(rootfd, "/dev", O_PATH | O_DIRECTORY);
	if (dfd < 0)
		FAIL("/dev: %s", strerror(-dfd));
	for (size_t k = 0; k < sizeof(links) / sizeof(links[0]); k++) {
		if (!strcmp(links[k][1], "/dev/ptmx"))
			unlinkat(dfd, "ptmx", 0); /* a node of the image's would be the host's ptmx */
		if (symlinkat(links[k][0], dfd, links[k][1] + 5) < 0 && errno != EEXIST) {
			oci_errf(err, errn, "%s: %s", links[k][1], strerror(errno));
			close(dfd);
			goto out;
		}
	}
	close(dfd);
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

/* linux.devices: each node made inside the root (its parent resolved in
 * it), then given its mode and owner. A node already there is kept, as
 * runc keeps it. In a user namespace mknod is not allowed: the host's node
 * of the same path is bound instead, as runc does. */
static int make_devices(int rootfd, const struct oci_spec *s, char *err, size_t errn)
{
	for (size_t k = 0; k < s->ndevices; k++) {
		const struct oci_device *d = &s->devices[k];
		char parent[4096];
		snprintf(parent, sizeof(parent), "%s", d->path);
		char *slash = strrchr(parent, '/');
		const char *name = d->path + (slash - parent) + 1;
		*slash = 0;
		if (!*name)
			return oci_errf(err, errn, "linux.devices %.256s: not a node's path", d->path), -1;
		int pfd = mkpath_in(rootfd, *parent ? parent : "/", 0);
		if (pfd < 0)
			return oci_errf(err, errn, "linux.devices %.256s: %s", d->path, strerror(-pfd)), -1;
		int r = mknodat(pfd, name, d->type | (d->mode & 0777), makedev(d->major, d->minor));
		if (r == 0) {
			/* the node is ours (no symlink there): mode past the umask, owner */
			if (fchmodat(pfd, name, d->mode, 0) < 0 ||
			    fchownat(pfd, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
				r = -1;
		} else if (errno == EEXIST) {
			r = 0;
		} else if (errno == EPERM && d->type != S_IFIFO) {
			int fd = mkpath_in(rootfd, d->path, 1);
			char target[64];
			struct stat st;
			if (fd < 0) {
				errno = -fd;
			} else if (stat(d->path, &st) < 0 || (st.st_mode & S_IFMT) != d->type ||
				   st.st_rdev != makedev(d->major, d->minor)) {
				errno = ENODEV; /* the host has no such node to lend */
			} else {
				fdpath(target, sizeof(target), fd);
				r = mount(d->path, target, NULL, MS_BIND, NULL);
			}
			if (fd >= 0) {
				int e = errno;
				close(fd);
				errno = e;
			}
		}
		int e = errno;
		close(pfd);
		if (r < 0)
			return oci_errf(err, errn, "linux.devices %.256s: %s", d->path, strerror(e)), -1;
	}
	return 0;
}

static int mask_paths(int rootfd, const struct oci_spec *s, char *err, size_t errn)
{
	for (size_t k = 0; k < s->nmasked; k++) {
		int fd = openat2_in(rootfd, s->masked[k], O_PATH);
		if (fd == -ENOENT)
			continue;
		if (fd < 0)
			return oci_errf(err, errn, "maskedPaths %.256s: %s", s->masked[k], strerror(-fd)), -1;
		struct stat st;
		char target[64];
		fdpath(target, sizeof(target), fd);
		int r = fstat(fd, &st) < 0    ? -1
			: S_ISDIR(st.st_mode) ? mount("tmpfs", target, "tmpfs",
						      MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
					      : mount("/dev/null", target, NULL, MS_BIND, NULL);
		int e = errno;
		close(fd);
		if (r < 0)
			return oci_errf(err, errn, "maskedPaths %.256s: %s", s->masked[k], strerror(e)), -1;
	}
	for (size_t k = 0; k < s->nreadonly; k++) {
		int fd = openat2_in(rootfd, s->readonly[k], O_PATH);
		if (fd == -ENOENT)
			continue;
		if (fd < 0)
			return oci_errf(err, errn, "readonlyPaths %.256s: %s", s->readonly[k], strerror(-fd)), -1;
		char target[64];
		fdpath(target, sizeof(target), fd);
		int r = mount(target, target, NULL, MS_BIND | MS_REC, NULL);
		close(fd);
		if (r == 0 && (fd = openat2_in(rootfd, s->readonly[k], O_PATH)) >= 0) {
			fdpath(target, sizeof(target), fd);
			r = mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(target), NULL);
			close(fd);
		}
		if (r < 0 || fd < 0)
			return oci_errf(err, errn, "readonlyPaths %.256s: %s", s->readonly[k], strerror(errno)), -1;
	}
	return 0;
}

static int write_sysctls(const struct oci_spec *s, char *err, size_t errn)
{
	for (size_t k = 0; k < s->nsysctl; k++) {
		char p[512];
		snprintf(p, sizeof(p), "/proc/sys/%s", s->sysctl_keys[k]);
		for (char *c = p + 10; *c; c++)
			if (*c == '.')
				*c = '/';
		int fd = open(p, O_WRONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : write(fd, s->sysctl_vals[k], strlen(s->sysctl_vals[k]));
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (n < 0)
			return oci_errf(err, errn, "sysctl %.128s: %s", s->sysctl_keys[k], strerror(e)), -1;
	}
	return 0;
}

/* ---- the sync channel to the create process: one message per packet ---- */
static void sync_send(int fd, char tag, const char *text)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%c%s", tag, text ? text : "");
	if (n >= (int)sizeof(buf))
		n = sizeof(buf) - 1;
	ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
	(void)w;
}

_Noreturn static void init_fail(int fd, const char *msg)
{
	sync_send(fd, 'E', msg);
	_exit(1);
}

/* Look args[0] up as execve would in the container (after pivot_root), so
 * that create fails as runc's does when there is nothing to run. */
int oci_check_program(const struct oci_process *p, char *err, size_t errn)
{
	const char *name = p->args[0];
	if (strchr(name, '/')) {
		if (access(name, X_OK) == 0)
			return 0;
		return oci_errf(err, errn, "exec: \"%.256s\": %s", name, strerror(errno)), -1;
	}
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (const char **e = p->env; *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	int denied = 0;
	while (*path) {
		const char *end = strchr(path, ':');
		size_t dl = end ? (size_t)(end - path) : strlen(path);
		char buf[4096];
		if (snprintf(buf, sizeof(buf), "%.*s/%s", (int)dl, path, name) < (int)sizeof(buf)) {
			struct stat st;
			if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
				if (access(buf, X_OK) == 0)
					return 0;
				denied = 1;
			}
		}
		if (!end)
			break;
		path = end + 1;
	}
	if (denied)
		return oci_errf(err, errn, "exec: \"%.256s\": permission denied", name), -1;
	return oci_errf(err, errn, "exec: \"%.256s\": executable file not found in $PATH", name), -1;
}

/* process.oomScoreAdj, if given (a value below the current one needs
 * CAP_SYS_RESOURCE, as under runc) */
static int set_oom(const struct oci_process *p, char *err, size_t errn)
{
	if (!p->has_oom)
		return 0;
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	char v[16];
	snprintf(v, sizeof(v), "%d", p->oom_score_adj);
	if (fd < 0 || write(fd, v, strlen(v)) < 0) {
		oci_errf(err, errn, "oomScoreAdj %d: %s", p->oom_score_adj, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

_Noreturn void oci_init_run(struct oci_init_args *a)
{
	const struct oci_spec *s = a->spec;
	char err[512], msg[1024];
	int sfd = a->sync_fd;
	/* no parent-death signal: the parent is stage one, which exits at
	 * once; a create that dies closes the sync socket instead */
	/* a process that changed credentials (setresuid in a new user
	 * namespace) is not dumpable, and its /proc/self/fd would be the
	 * host root's: exec.fifo is reopened through it */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	/* wait for 'G' (cgroups joined, prestart hooks run); the packet carries the state JSON */
	static char state[65536];
	ssize_t n = recv(sfd, state, sizeof(state) - 1, 0);
	if (n <= 0 || state[0] != 'G')
		_exit(1);
	state[n] = 0;
	json_t *gj = json_loads(state + 1, 0, NULL);
	const char *state_json = json_string_value(json_object_get(gj, "state"));
	a->cgroups = json_object_get(gj, "cgroups");
	if (!state_json || !json_is_array(a->cgroups))
		init_fail(sfd, "bad message from create");
	if (oci_ns_has(s, CLONE_NEWCGROUP)) {
		for (size_t k = 0; k < s->nns; k++)
			if (s->ns[k].type == CLONE_NEWCGROUP && !s->ns[k].path && unshare(CLONE_NEWCGROUP) < 0) {
				oci_errf(msg, sizeof(msg), "cannot create a cgroup namespace: %s", strerror(errno));
				init_fail(sfd, msg);
			}
	}
	if (s->hostname && *s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0) {
		oci_errf(msg, sizeof(msg), "sethostname: %s", strerror(errno));
		init_fail(sfd, msg);
	}
	if (write_sysctls(s, err, sizeof(err)))
		init_fail(sfd, err);
	unsigned long prop = s->rootfs_propagation ? s->rootfs_propagation : MS_SLAVE | MS_REC;
	if (mount(NULL, "/", NULL, prop, NULL) < 0) {
		oci_errf(msg, sizeof(msg), "cannot set the root's mount propagation: %s", strerror(errno));
		init_fail(sfd, msg);
	}
	/* the root file system a mount of its own, so that pivot_root takes it */
	char rootfs[4096];
	if (snprintf(rootfs, sizeof(rootfs), "%s", s->root_path) >= (int)sizeof(rootfs))
		init_fail(sfd, "root.path too long");
	if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) {
		oci_errf(msg, sizeof(msg), "root %.256s: cannot bind it: %s", rootfs, strerror(errno));
		init_fail(sfd, msg);
	}
	int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		oci_errf(msg, sizeof(msg), "root %.256s: %s", rootfs, strerror(errno));
		init_fail(sfd, msg);
	}
	int dev_mounted = 0;
	for (size_t k = 0; k < s->nmounts; k++) {
		if (do_mount(rootfd, &s->mounts[k], a->cgroups, err, sizeof(err)))
			init_fail(sfd, err);
		dev_mounted |= !strcmp(s->mounts[k].dest, "/dev");
	}
	if (dev_mounted && default_devices(rootfd, err, sizeof(err)))
		init_fail(sfd, err);
	if (make_devices(rootfd, s, err, sizeof(err)))
		init_fail(sfd, err);
	if (mask_paths(rootfd, s, err, sizeof(err)))
		init_fail(sfd, err);
	for (size_t k = 0; k < s->nhooks[OCI_HOOK_CREATE_CONTAINER]; k++)
		if (oci_hook_run(&s->hooks[OCI_HOOK_CREATE_CONTAINER][k], state_json, err, sizeof(err))) {
			oci_errf(msg, sizeof(msg), "createContainer hook: %s", err);
			init_fail(sfd, msg);
		}
	/* exec.fifo, reopened for writing after pivot_root through /proc */
	char fifo[4200];
	snprintf(fifo, sizeof(fifo), "%s/exec.fifo", a->statedir);
	int fifofd = open(fifo, O_PATH | O_CLOEXEC);
	if (fifofd < 0) {
		oci_errf(msg, sizeof(msg), "%s: %s", fifo, strerror(errno));
		init_fail(sfd, msg);
	}
	if (fchdir(rootfd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
	    chdir("/") < 0) {
		oci_errf(msg, sizeof(msg), "pivot_root into %.256s: %s", rootfs, strerror(errno));
		init_fail(sfd, msg);
	}
	close(rootfd);
	if (s->root_readonly && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags("/"), NULL) < 0) {
		oci_errf(msg, sizeof(msg), "cannot make the root read-only: %s", strerror(errno));
		init_fail(sfd, msg);
	}
	struct stat st;
	if (stat(s->proc.cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		oci_errf(msg, sizeof(msg), "chdir to cwd (\"%.256s\") set in config.json failed: %s", s->proc.cwd,
			 strerror(errno ? errno : ENOTDIR));
		init_fail(sfd, msg);
	}
	if (oci_check_program(&s->proc, err, sizeof(err)))
		init_fail(sfd, err);
	if (access("/proc/self/exe", F_OK) < 0)
		init_fail(sfd, "/proc is not procfs inside the container: corral cannot re-execute itself");
	/* as runc's init: a score that cannot be set fails create, not start */
	if (set_oom(&s->proc, err, sizeof(err)))
		init_fail(sfd, err);
	/* the terminal before create returns, as runc's: the caller waits for
	 * the pty on its console socket before it calls start */
	if (a->console_fd >= 0 && oci_console_setup(a->console_fd, &s->proc, err, sizeof(err)))
		init_fail(sfd, err);
	sync_send(sfd, 'R', NULL);
	close(sfd);
	char fp[64];
	fdpath(fp, sizeof(fp), fifofd);
	int wfd = open(fp, O_WRONLY | O_CLOEXEC);
	if (wfd < 0 || write(wfd, "0", 1) != 1) {
		fprintf(stderr, "corral-runc: exec.fifo: %s\n", strerror(errno));
		_exit(1);
	}
	close(wfd);
	close(fifofd);
	/* startContainer hooks run in the container: on corral's CPU too */
	for (size_t k = 0; k < s->nhooks[OCI_HOOK_START_CONTAINER]; k++) {
		const struct oci_hook *h = &s->hooks[OCI_HOOK_START_CONTAINER][k];
		pid_t pid = fork();
		if (pid == 0) {
			int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (nul >= 0)
				dup2(nul, 0);
			static const char *const noenv[] = {NULL};
			const char *argv0[] = {h->path, NULL};
			const char **args = h->args ? h->args : argv0;
			int argc = 0;
			while (args[argc])
				argc++;
			clearenv();
			setenv("CORRAL_SELF_EXE", "/proc/self/exe", 1);
			struct proc_opts o = {.self_exe = "/proc/self/exe"};
			_exit(proc_exec(&o, h->path, argc, (char **)args, (char **)(h->env ? h->env : noenv)));
		}
		int wst;
		if (pid < 0 || waitpid(pid, &wst, 0) < 0 || !WIFEXITED(wst) || WEXITSTATUS(wst)) {
			fprintf(stderr, "corral-runc: startContainer hook %s failed\n", h->path);
			_exit(1);
		}
	}
	oci_process_exec(&s->proc, -1, a->preserve_fds);
}

/* ---- the process: terminal, limits, user, capabilities, then the VM ---- */

static int send_fd(int sock, int fd, const char *name)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = {.iov_base = (void *)name, .iov_len = strlen(name)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

int oci_console_setup(int sock, const struct oci_process *p, char *err, size_t errn)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return oci_errf(err, errn, "cannot open /dev/ptmx in the container: %s", strerror(errno)), -1;
	char name[128];
	if (unlockpt(m) < 0 || ptsname_r(m, name, sizeof(name))) {
		close(m);
		return oci_errf(err, errn, "cannot unlock the pty: %s", strerror(errno)), -1;
	}
	int sl = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (sl < 0) {
		close(m);
		return oci_errf(err, errn, "%s: %s", name, strerror(errno)), -1;
	}
	/* the size before the master goes out: the caller may resize at once */
	struct winsize ws = {.ws_row = p->console_rows, .ws_col = p->console_cols};
	if (ws.ws_row && ws.ws_col && ioctl(sl, TIOCSWINSZ, &ws) < 0) {
		close(sl);
		close(m);
		return oci_errf(err, errn, "cannot set the console size: %s", strerror(errno)), -1;
	}
	int r = send_fd(sock, m, name);
	close(m);
	close(sock);
	if (r) {
		close(sl);
		return oci_errf(err, errn, "cannot send the pty to the console socket: %s", strerror(-r)), -1;
	}
	if (fchown(sl, p->uid, (gid_t)-1) < 0) {
		/* a user namespace without that uid mapped: the pty stays root's */
	}
	setsid();
	if (ioctl(sl, TIOCSCTTY, 0) < 0 || dup2(sl, 0) < 0 || dup2(sl, 1) < 0 || dup2(sl, 2) < 0) {
		close(sl);
		return oci_errf(err, errn, "cannot make %s the controlling terminal: %s", name, strerror(errno)), -1;
	}
	if (sl > 2)
		close(sl);
	return 0;
}

static int set_caps(const struct oci_process *p, char *err, size_t errn)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	d[0].effective = (uint32_t)p->caps[1];
	d[1].effective = (uint32_t)(p->caps[1] >> 32);
	d[0].inheritable = (uint32_t)p->caps[2];
	d[1].inheritable = (uint32_t)(p->caps[2] >> 32);
	d[0].permitted = (uint32_t)p->caps[3];
	d[1].permitted = (uint32_t)(p->caps[3] >> 32);
	if (syscall(SYS_capset, &h, d) < 0)
		return oci_errf(err, errn, "cannot set capabilities: %s", strerror(errno)), -1;
	for (int c = 0; c <= 63; c++)
		if (p->caps[4] & (1ull << c))
			prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
	return 0;
}

_Noreturn void oci_process_exec(const struct oci_process *p, int console_fd, int preserve_fds)
{
	char err[512];
	void *filter = NULL;
	if (p->seccomp && oci_seccomp_build(p->seccomp, p->no_new_privs, &filter, err, sizeof(err)))
		goto fail;
	if (console_fd >= 0 && oci_console_setup(console_fd, p, err, sizeof(err)))
		goto fail;
	for (size_t k = 0; k < p->nrlimits; k++)
		if (setrlimit(p->rlimits[k].res, &p->rlimits[k].lim) < 0) {
			oci_errf(err, sizeof(err), "setrlimit %d: %s", p->rlimits[k].res, strerror(errno));
			goto fail;
		}
	if (set_oom(p, err, sizeof(err)))
		goto fail;
	if (p->has_umask)
		umask(p->umask);
	/* without no_new_privs a filter needs CAP_SYS_ADMIN: in before the
	 * user and capabilities change */
	if (filter && !p->no_new_privs) {
		int r = oci_seccomp_load(filter, err, sizeof(err));
		filter = NULL;
		if (r)
			goto fail;
	}
	/* the bounding set while still root (dropping needs CAP_SETPCAP) */
	if (p->has_caps)
		for (int c = 0; c <= 63; c++)
			if (!(p->caps[0] & (1ull << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) {
				oci_errf(err, sizeof(err), "cannot drop capability %d: %s", c, strerror(errno));
				goto fail;
			}
	prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
	if (setgroups(p->ngids, p->gids) < 0 && errno != EPERM) {
		oci_errf(err, sizeof(err), "setgroups: %s", strerror(errno));
		goto fail;
	}
	if (setresgid(p->gid, p->gid, p->gid) < 0 || setresuid(p->uid, p->uid, p->uid) < 0) {
		oci_errf(err, sizeof(err), "cannot become uid %u gid %u: %s", (unsigned)p->uid, (unsigned)p->gid,
			 strerror(errno));
		goto fail;
	}
	if (p->has_caps && set_caps(p, err, sizeof(err)))
		goto fail;
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		oci_errf(err, sizeof(err), "no_new_privs: %s", strerror(errno));
		goto fail;
	}
	if (chdir(p->cwd) < 0) {
		oci_errf(err, sizeof(err), "chdir to cwd (\"%.256s\") set in config.json failed: %s", p->cwd,
			 strerror(errno));
		goto fail;
	}
	if (filter) {
		int r = oci_seccomp_load(filter, err, sizeof(err));
		filter = NULL;
		if (r)
			goto fail;
	}
	/* only stdio and the fds the caller preserves (LISTEN_FDS) reach the guest */
	syscall(SYS_close_range, 3 + (unsigned)preserve_fds, ~0u, 0);
	/* corral's own binary stays reachable through the magic link whatever
	 * the container's file system holds */
	clearenv();
	setenv("CORRAL_SELF_EXE", "/proc/self/exe", 1);
	/* The process VM starts in a fresh corral, as after a guest's execve:
	 * its host process then carries the program's argv (podman top, ps)
	 * instead of corral-runc's. */
	static const char *const noopts[] = {NULL};
	const char *base = strrchr(p->args[0], '/');
	long e = proc_reexec("/proc/self/exe", -1, noopts, base ? base + 1 : p->args[0], p->args[0], (int)p->nargs,
			     (char **)p->args, (char **)p->env);
	oci_errf(err, sizeof(err), "cannot start corral again for the process: %s", strerror((int)-e));
fail:
	fprintf(stderr, "corral-runc: %s\n", err);
	_exit(1);
}

/* ---- hooks ---- */

int oci_hook_run(const struct oci_hook *h, const char *state, char *err, size_t errn)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return oci_errf(err, errn, "%s: pipe: %s", h->path, strerror(errno)), -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return oci_errf(err, errn, "%s: fork: %s", h->path, strerror(errno)), -1;
	}
	if (pid == 0) {
		dup2(pfd[0], 0);
		const char *argv0[] = {h->path, NULL};
		static const char *const noenv[] = {NULL};
		execve(h->path, (char **)(h->args ? h->args : argv0), (char **)(h->env ? h->env : noenv));
		fprintf(stderr, "corral-runc: hook %s: %s\n", h->path, strerror(errno));
		_exit(127);
	}
	close(pfd[0]);
	signal(SIGPIPE, SIG_IGN);
	ssize_t w = write(pfd[1], state, strlen(state));
	(void)w;
	close(pfd[1]);
	int st = 0;
	for (long waited = 0;; waited += 10) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return oci_errf(err, errn, "%s: wait: %s", h->path, strerror(errno)), -1;
		if (h->timeout && waited >= h->timeout * 1000L) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return oci_errf(err, errn, "%s: timed out after %d s", h->path, h->timeout), -1;
		}
		usleep(10000);
	}
	if (WIFSIGNALED(st))
		return oci_errf(err, errn, "%s: killed by signal %d", h->path, WTERMSIG(st)), -1;
	if (WEXITSTATUS(st))
		return oci_errf(err, errn, "%s: exit status %d", h->path, WEXITSTATUS(st)), -1;
	return 0;
}
