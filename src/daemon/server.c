/* corrald's daemon: the VM table, its state directory, the VM processes it
 * starts and supervises, and the REST/JSON API of docs/corrald.yaml on a
 * unix socket (libmicrohttpd, one request at a time).
 *
 * State directory (written atomically: a temporary, fsync, rename):
 *   vms/NAME/vm.json        the definition {"name", "uid", "config"}: the VM
 *                           layer's JSON, and the uid its jailed process takes
 *   vms/NAME/run.json       {"pid", "start_time"} while a VM process runs
 *   vms/NAME/process.log    the VM process's messages
 *   vms/NAME/vm/            the one directory the VM process may write (its
 *                           uid's), the only one of the host's in its jail:
 *   vms/NAME/vm/api.sock    the VM process's control API (docs/api.yaml)
 *   vms/NAME/vm/console.log the serial console
 *   vms/NAME/vm/exit        why the VM process ended (written by it)
 *   vms/NAME/vm/snapshots/SNAP/{state,memory}
 *   vms/NAME/vm/migrate.sock  corrald's, while the VM migrates out: the VM
 *                           process sends its stream there, corrald relays it
 *   vms/NAME/vm/incoming.sock the VM process's, while it migrates in
 *   incoming.sock           where other corralds send VMs (relay.h)
 * A VM directory is made complete under vms/.new-NAME and renamed into
 * place, and removed by a rename to vms/.del-NAME first, so a crash never
 * leaves half a VM; leftovers of either are removed at start. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/httpd.h"
#include "boot/boot.h"
#include "cli/cli.h"
#include "daemon/daemon.h"
#include "daemon/http.h"
#include "daemon/policy.h"
#include "daemon/relay.h"
#include "daemon/vmcg.h"
#include "oci/oci.h"
#include "vm/migrate.h"
#include "vm/vm.h"

#define STOP_TIMEOUT_DEFAULT 10
#define STOP_TIMEOUT_MAX 300
#define START_TIMEOUT_MS 20000
#define CLONE_MAX 64
#define CONSOLE_MAX (1u << 20)
#define VM_API_TIMEOUT_MS 10000

struct dvm {
	char name[CORRALD_NAME_MAX + 1];
	json_t *def;		       /* the definition as stored */
	pid_t pid;		       /* the VM process, 0 if none */
	int child;		       /* started by this corrald (waitpid works), else adopted */
	unsigned long long start_time; /* the process's start time (/proc/PID/stat), against pid reuse */
	int crashed;		       /* ended by a signal we did not send */
	json_t *cgroups;	       /* the VM process's cgroup directories (oci/cgroup.c), or NULL */
	char reason[600];	       /* why the last VM process ended */
	int incoming;		       /* arriving by live migration: not yet running here */
	int migrating;		       /* leaving by live migration (post_migrate) */
};

struct daemon {
	const struct corrald_opts *o;
	char vms_dir[PATH_MAX];
	char image_dir[CORRALD_MAX_IMAGE_DIRS][PATH_MAX]; /* resolved */
	unsigned nimage_dirs;
	char self_exe[PATH_MAX];
	struct dvm *vm[CORRALD_MAX_VMS];
	unsigned nvms;
	pthread_mutex_t lock;
	gid_t group;		      /* the corral group, or (gid_t)-1 */
	int cg_version;		      /* the VM processes' cgroups: 1 or 2 (vmcg.h) */
	char cg_root[VMCG_ROOT_MAX];  /* v2: the hierarchy's mount */
	char incoming_sock[PATH_MAX]; /* STATE/incoming.sock: VMs migrated here arrive on it */
	char kcache[PATH_MAX];	      /* STATE/kernels: decompressed kernels, corrald's to write */
	int incoming_fd[2];	      /* it, and --incoming's TCP socket (or -1) */
	volatile int stopping;	      /* the incoming thread ends */
};

/* One request as it arrives: its body and who sent it. */
struct dreq {
	size_t len;
	int too_big;
	uid_t uid;
	pid_t pid;
	int denied;
	char body[API_BODY_MAX];
};

/* snprintf for paths and messages, whose truncation is checked where it
 * matters (vm_file) and harmless elsewhere (a message cut short). */
static int sfmt(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sfmt(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	return n;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	flockfile(stderr); /* one line, whole, from each connection's thread */
	fprintf(stderr, "corrald: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	va_end(ap);
}

int corrald_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CORRALD_NAME_MAX || strstr(s, ".."))
		return 0;
	for (size_t k = 0; k < n; k++) {
		char ch = s[k];
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
		if (!alnum && (k == 0 || (ch != '-' && ch != '_' && ch != '.')))
			return 0;
	}
	return 1;
}

/* ---- Files ---- */

static int vm_file(const struct daemon *d, const char *name, const char *file, char *out)
{
	int n = sfmt(out, PATH_MAX, "%s/%s%s%s", d->vms_dir, name, file ? "/" : "", file ? file : "");
	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	sfmt(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* path holds text, whole or not at all. */
static int write_atomic(const char *path, const char *text)
{
	char tmp[PATH_MAX + 8];
	sfmt(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text), off = 0;
	while (off < n) {
		ssize_t w = write(fd, text + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int r = w < 0 ? -errno : -EIO;
			close(fd);
			unlink(tmp);
			return r;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		int r = -errno;
		unlink(tmp);
		return r;
	}
	if (rename(tmp, path) < 0) {
		int r = -errno;
		unlink(tmp);
		return r;
	}
	return fsync_dir_of(path);
}

static int write_json(const char *path, json_t *j)
{
	char *text = json_dumps(j, JSON_INDENT(2));
	if (!text)
		return -ENOMEM;
	int r = write_atomic(path, text);
	free(text);
	return r;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The first line of a small file, without its newline; "" if none. */
static void read_line(const char *path, char *out, size_t len)
{
	out[0] = 0;
	/* a VM's own files may be links it planted: never followed */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fgets(out, (int)len, f))
		out[strcspn(out, "\n")] = 0;
	fclose(f);
}

/* The last line of a log that says something. */
static void last_line(const char *path, char *out, size_t len)
{
	char line[600];
	out[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (line[0])
			sfmt(out, len, "%s", line);
	}
	fclose(f);
}

/* ---- Processes ---- */

/* Field 22 of /proc/PID/stat (start time in clock ticks), and whether the
 * process is a zombie; 0 if there is no such process. */
static unsigned long long proc_start_time(pid_t pid, int *zombie, unsigned long long *cpu_ticks)
{
	char path[64], buf[1024];
	sfmt(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
	if (!p || p[1] != ' ')
		return 0;
	char state = p[2];
	unsigned long long v[20] = {0};
	/* after the state: fields 4..22 */
	if (sscanf(p + 4,
		   "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11], &v[12], &v[13],
		   &v[14], &v[15], &v[16], &v[17], &v[18]) != 19)
		return 0;
	if (zombie)
		*zombie = state == 'Z' || state == 'X';
	if (cpu_ticks)
		*cpu_ticks = v[10] + v[11]; /* utime + stime: fields 14, 15 */
	return v[18];
}

static void describe_status(struct dvm *v, const char *exitfile, int status, int we_killed)
{
	char why[600];
	read_line(exitfile, why, sizeof(why));
	v->crashed = 0;
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		if (we_killed) {
			sfmt(v->reason, sizeof(v->reason), "killed by corrald (SIGKILL) after the stop timeout");
		} else {
			v->crashed = 1;
			sfmt(v->reason, sizeof(v->reason), "the VM process was killed by signal %d (%s)%s", sig,
			     strsignal(sig),
			     sig == SIGSYS ? ": it made a system call outside its seccomp allow-list" : "");
		}
	} else if (why[0]) {
		sfmt(v->reason, sizeof(v->reason), "%s", why);
	} else {
		sfmt(v->reason, sizeof(v->reason), "the VM process exited with status %d", WEXITSTATUS(status));
	}
}

/* The VM process has ended: forget it. */
static void dvm_ended(struct daemon *d, struct dvm *v)
{
	char path[PATH_MAX];
	if (v->cgroups) {
		/* the memory limit's event: the kernel killed the process for it */
		unsigned long long hits = vmcg_limit_hits(v->cgroups);
		if (hits && v->crashed) {
			size_t n = strlen(v->reason);
			sfmt(v->reason + n, sizeof(v->reason) - n, " after it reached its memory limit (%llu times)",
			     hits);
		}
		vmcg_destroy(v->cgroups);
		json_decref(v->cgroups);
		v->cgroups = NULL;
	}
	v->pid = 0;
	v->child = 0;
	v->start_time = 0;
	if (vm_file(d, v->name, "run.json", path) == 0)
		unlink(path);
	if (vm_file(d, v->name, "vm/api.sock", path) == 0)
		unlink(path);
	if (vm_file(d, v->name, "vm/console.sock", path) == 0)
		unlink(path);
}

/* 1 if v's process runs; if it has ended, records why. we_killed: the
 * SIGKILL was corrald's. */
static int dvm_alive(struct daemon *d, struct dvm *v, int we_killed)
{
	char exitfile[PATH_MAX];
	if (!v->pid)
		return 0;
	vm_file(d, v->name, "vm/exit", exitfile);
	if (v->child) {
		int st;
		pid_t r = waitpid(v->pid, &st, WNOHANG);
		if (r == 0)
			return 1;
		if (r == v->pid)
			describe_status(v, exitfile, st, we_killed);
		else
			sfmt(v->reason, sizeof(v->reason), "the VM process is gone");
		dvm_ended(d, v);
		return 0;
	}
	int zombie = 0;
	unsigned long long t = proc_start_time(v->pid, &zombie, NULL);
	if (t == v->start_time && !zombie)
		return 1;
	/* adopted: not our child, so its status is its parent's to know */
	read_line(exitfile, v->reason, sizeof(v->reason));
	if (!v->reason[0])
		sfmt(v->reason, sizeof(v->reason),
		     "the VM process ended (how is unknown: it was started by an "
		     "earlier corrald)");
	v->crashed = 0;
	dvm_ended(d, v);
	return 0;
}

/* A socket of v's process in DIR/vm (its directory, where it may plant
 * anything): an O_PATH descriptor of the socket itself, refused if it is a
 * link (to corrald's socket, another VM's) or not the VM's own; connect
 * through /proc/self/fd/N, so that no path length limits names or the
 * state directory either (a sockaddr_un holds 107 bytes). fd, or -errno. */
static int dvm_socket(struct daemon *d, struct dvm *v, const char *file, char *sock, size_t socklen, char *err,
		      size_t errlen)
{
	char dir[PATH_MAX];
	struct stat st;
	vm_file(d, v->name, "vm", dir);
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int fd = dfd < 0 ? -1 : openat(dfd, file, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	int r = fd < 0 ? -errno : 0;
	if (dfd >= 0)
		close(dfd);
	json_int_t uid = json_integer_value(json_object_get(v->def, "uid"));
	if (!r && (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || (st.st_uid != 0 && st.st_uid != (uid_t)uid)))
		r = -EPERM;
	if (r < 0) {
		sfmt(err, errlen, "'%s/%s': %s", dir, file,
		     r == -EPERM ? "not a socket of the VM's own" : strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	sfmt(sock, socklen, "/proc/self/fd/%d", fd);
	return fd;
}

/* One request to v's control API (DIR/vm/api.sock). */
static int dvm_call(struct daemon *d, struct dvm *v, const char *method, const char *path, const char *body,
		    int *status, char **out, char *err, size_t errlen)
{
	char sock[64];
	size_t len;
	int fd = dvm_socket(d, v, "api.sock", sock, sizeof(sock), err, errlen);
	if (fd < 0)
		return fd;
	char *ans = NULL;
	int r = http_call(sock, method, path, body, VM_API_TIMEOUT_MS, status, &ans, &len, err, errlen);
	close(fd);
	if (r == 0 && out)
		*out = ans;
	else
		free(ans);
	return r;
}

/* The VM API's fault_message, or the answer itself. */
static void vm_api_message(const char *ans, char *out, size_t len)
{
	json_t *j = ans ? json_loads(ans, 0, NULL) : NULL;
	const char *m = j ? json_string_value(json_object_get(j, "fault_message")) : NULL;
	sfmt(out, len, "%s", m ? m : ans ? ans : "");
	json_decref(j);
}

/* "running", "paused", "stopped", "crashed", "incoming" (arriving by
 * live migration) or "migrating" (leaving by it). */
static const char *dvm_state(struct daemon *d, struct dvm *v)
{
	if (!dvm_alive(d, v, 0))
		return v->crashed ? "crashed" : "stopped";
	if (v->incoming)
		return "incoming";
	if (v->migrating)
		return "migrating";
	int status;
	char *ans = NULL, err[256];
	const char *st = "running";
	if (dvm_call(d, v, "GET", "/", NULL, &status, &ans, err, sizeof(err)) == 0 && status == 200 &&
	    strstr(ans, "\"state\":\"Paused\""))
		st = "paused";
	free(ans);
	return st;
}

/* The limits of a request ("limits": {...}) checked, as cgroup settings:
 * 0, or -1 with why. */
static int check_limits(json_t *l, struct oci_resources *res, char *why, size_t len)
{
	static const char *const keys[] = {"cpu_weight", "cpu_max", "cpuset", "memory_max", "pids_max", "nofile", NULL};
	memset(res, 0, sizeof(*res));
	if (!l)
		return 0;
	if (!json_is_object(l)) {
		sfmt(why, len, "'limits' must be an object");
		return -1;
	}
	const char *key;
	json_t *v;
	json_object_foreach(l, key, v)
	{
		unsigned k = 0;
		while (keys[k] && strcmp(keys[k], key))
			k++;
		if (!keys[k]) {
			sfmt(why, len,
			     "'limits': unknown key '%.64s' (cpu_weight, cpu_max, cpuset, memory_max, pids_max, "
			     "nofile)",
			     key);
			return -1;
		}
	}
	json_t *w = json_object_get(l, "cpu_weight"), *cm = json_object_get(l, "cpu_max");
	json_t *cs = json_object_get(l, "cpuset"), *mm = json_object_get(l, "memory_max");
	json_t *pm = json_object_get(l, "pids_max");
	if (w && (!json_is_integer(w) || json_integer_value(w) < 2 || json_integer_value(w) > 262144)) {
		sfmt(why, len,
		     "'limits': 'cpu_weight' must be an integer from 2 to 262144 (cpu.shares, 1024 is one share)");
		return -1;
	}
	if (cm && (!json_is_number(cm) || json_number_value(cm) < 0.01 || json_number_value(cm) > 1024)) {
		sfmt(why, len, "'limits': 'cpu_max' must be a number of host CPUs from 0.01 to 1024");
		return -1;
	}
	if (cs && (!json_is_string(cs) || !json_string_length(cs) || json_string_length(cs) > 256 ||
		   strspn(json_string_value(cs), "0123456789,-") != json_string_length(cs))) {
		sfmt(why, len, "'limits': 'cpuset' must be a list of host CPUs such as \"0-1,3\"");
		return -1;
	}
	if (mm && (!json_is_integer(mm) || json_integer_value(mm) < (json_int_t)VM_MEM_MIN + (16 << 20) ||
		   json_integer_value(mm) > (json_int_t)1 << 50)) {
		sfmt(why, len, "'limits': 'memory_max' must be a number of bytes from 32 MiB to 1 PiB");
		return -1;
	}
	if (pm && (!json_is_integer(pm) || json_integer_value(pm) < 8 || json_integer_value(pm) > 65536)) {
		sfmt(why, len, "'limits': 'pids_max' must be an integer from 8 to 65536");
		return -1;
	}
	json_t *nf = json_object_get(l, "nofile");
	if (nf && (!json_is_integer(nf) || json_integer_value(nf) < CORRALD_NOFILE_MIN ||
		   json_integer_value(nf) > CORRALD_NOFILE_MAX)) {
		sfmt(why, len, "'limits': 'nofile' must be an integer from %d to %d (open files)", CORRALD_NOFILE_MIN,
		     CORRALD_NOFILE_MAX);
		return -1;
	}
	res->cpu_shares = w ? (uint64_t)json_integer_value(w) : 0;
	if (cm) {
		res->cpu_period = 100000;
		res->cpu_quota = (int64_t)(json_number_value(cm) * 100000);
	}
	res->cpus = cs ? json_string_value(cs) : NULL;
	res->mem_limit = mm ? json_integer_value(mm) : 0;
	res->has_mem_limit = mm != NULL;
	res->pids_limit = pm ? json_integer_value(pm) : 0;
	res->has_pids = pm != NULL;
	return 0;
}

/* Puts v's new VM process into cgroups of its own under corral/ with its
 * limits (cgroup v1 or v2: vmcg.h). 0, or -1 with why. */
static int dvm_cgroups(struct daemon *d, struct dvm *v, char *why, size_t len)
{
	struct oci_resources res;
	char err[512];
	json_t *l = json_object_get(v->def, "limits");
	if (!l || check_limits(l, &res, why, len) < 0)
		return l ? -1 : 0;
	json_decref(v->cgroups);
	v->cgroups = json_array();
	if (!v->cgroups ||
	    vmcg_create(d->cg_version, d->cg_root, v->name, &res, v->pid, v->cgroups, err, sizeof(err)) < 0) {
		sfmt(why, len, "its limits: %s", v->cgroups ? err : "out of memory");
		return -1;
	}
	return 0;
}

/* The new limits l of v's running VM process that are its own rather than
 * its cgroups' (vmproc.c sets them at start): open files, and tasks on its
 * uid when it is jailed. Changing another process's limits takes
 * CAP_SYS_RESOURCE: without it a new nofile is refused, while the task
 * limit (pids_max's cgroup is the limit, RLIMIT_NPROC a backstop) waits for
 * the next start. 0, or -1 with why. */
static int dvm_rlimits(struct dvm *v, json_t *l, char *why, size_t len)
{
	static const struct {
		const char *key;
		int resource;
	} lim[] = {{"nofile", RLIMIT_NOFILE}, {"pids_max", RLIMIT_NPROC}};
	for (unsigned k = 0; k < 2; k++) {
		json_t *n = json_object_get(l, lim[k].key);
		if (!n || (lim[k].resource == RLIMIT_NPROC && geteuid() != 0))
			continue;
		struct rlimit rl = {(rlim_t)json_integer_value(n), (rlim_t)json_integer_value(n)};
		if (prlimit(v->pid, lim[k].resource, &rl, NULL) == 0)
			continue;
		if (errno == EPERM && lim[k].resource == RLIMIT_NPROC) {
			logf_("VM '%s': its task limit (RLIMIT_NPROC) stays until its next start: corrald lacks "
			      "CAP_SYS_RESOURCE",
			      v->name);
			continue;
		}
		sfmt(why, len, "its %s limit cannot change while it runs: %s%s", lim[k].key, strerror(errno),
		     errno == EPERM ? " (corrald lacks CAP_SYS_RESOURCE; stop and start it instead)" : "");
		return -1;
	}
	return 0;
}

/* Starts v's VM process (from the snapshot directory restore, if given)
 * and waits until its API answers. 0, or -errno with why in err. */
static int dvm_spawn(struct daemon *d, struct dvm *v, const char *restore, int incoming, char *err, size_t errlen)
{
	char dir[PATH_MAX], logp[PATH_MAX], sock[PATH_MAX], exitp[PATH_MAX], runp[PATH_MAX];
	vm_file(d, v->name, NULL, dir);
	vm_file(d, v->name, "process.log", logp);
	vm_file(d, v->name, "vm/incoming.sock", sock);
	unlink(sock);
	vm_file(d, v->name, "vm/arrived", sock);
	if (incoming)
		unlink(sock);
	vm_file(d, v->name, "vm/api.sock", sock);
	vm_file(d, v->name, "vm/exit", exitp);
	vm_file(d, v->name, "run.json", runp);
	unlink(sock);
	unlink(exitp);
	int logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || nullfd < 0) {
		int r = -errno;
		sfmt(err, errlen, "'%s': %s", logp, strerror(-r));
		if (logfd >= 0)
			close(logfd);
		if (nullfd >= 0)
			close(nullfd);
		return r;
	}
	/* A bzImage's payload decompressed once for every VM that boots it:
	 * here, into the cache each VM process may only read (a jailed VM
	 * writing entries that other VMs boot would reach into them). */
	const char *kernel = json_string_value(json_object_get(json_object_get(v->def, "config"), "kernel"));
	if (kernel && !restore && !incoming && d->kcache[0]) {
		char kerr[300];
		int k = boot_kcache_fill(d->kcache, kernel, kerr, sizeof(kerr));
		if (k < 0)
			logf_("VM '%s': the kernel cache: %s", v->name, kerr);
		else if (k > 0)
			logf_("kernel '%s': decompressed into %s", kernel, d->kcache);
	}
	char *argv[] = {(char *)"corrald",
			(char *)"--vm-process",
			dir,
			(char *)"--kernel-cache",
			d->kcache,
			incoming  ? (char *)"--vm-incoming"
			: restore ? (char *)"--restore"
				  : NULL,
			(char *)restore,
			NULL};
	sigset_t none;
	sigemptyset(&none);
	/* A jailed VM process is the first process of a PID namespace of its
	 * own (it sees no other process, and no other VM sees it); corrald
	 * knows it by the pid the host sees, which run.json keeps. clone
	 * without a stack returns twice as fork does. */
	pid_t pid = geteuid() == 0 ? (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL) : fork();
	if (pid == 0) {
		/* only async-signal-safe calls until exec: other threads exist */
		setsid();
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execv(d->self_exe, argv);
		_exit(127);
	}
	int fe = errno;
	close(logfd);
	close(nullfd);
	if (pid < 0) {
		sfmt(err, errlen, "fork: %s", strerror(fe));
		return -fe;
	}
	v->pid = pid;
	v->child = 1;
	v->crashed = 0;
	v->reason[0] = 0;
	v->start_time = proc_start_time(pid, NULL, NULL);
	if (dvm_cgroups(d, v, err, errlen) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		dvm_ended(d, v);
		return -EINVAL;
	}
	json_t *run = json_pack("{s:i,s:I}", "pid", (int)pid, "start_time", (json_int_t)v->start_time);
	if (run && v->cgroups)
		json_object_set(run, "cgroups", v->cgroups);
	int r = run ? write_json(runp, run) : -ENOMEM;
	json_decref(run);
	if (r < 0) {
		sfmt(err, errlen, "'%s': %s", runp, strerror(-r));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		dvm_ended(d, v);
		return r;
	}
	for (int waited = 0; waited < START_TIMEOUT_MS; waited += 20) {
		if (!dvm_alive(d, v, 0)) {
			char line[600];
			last_line(logp, line, sizeof(line));
			sfmt(err, errlen, "%s", v->reason[0] ? v->reason : line);
			return -EINVAL;
		}
		int status;
		char e2[128], insock[PATH_MAX];
		/* an incoming VM is ready when it waits for its stream */
		if (incoming && vm_file(d, v->name, "vm/incoming.sock", insock) == 0 && access(insock, F_OK) == 0)
			return 0;
		if (!incoming && access(sock, F_OK) == 0 &&
		    dvm_call(d, v, "GET", "/", NULL, &status, NULL, e2, sizeof(e2)) == 0 && status == 200)
			return 0;
		struct timespec ts = {0, 20000000};
		nanosleep(&ts, NULL);
	}
	sfmt(err, errlen, "the VM process did not answer within %d s", START_TIMEOUT_MS / 1000);
	kill(pid, SIGKILL);
	dvm_alive(d, v, 1);
	for (int k = 0; k < 100 && v->pid; k++) {
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
		dvm_alive(d, v, 1);
	}
	return -ETIMEDOUT;
}

/* Asks the VM to stop, waits up to timeout seconds, then kills it. 0 and
 * *forced, or -errno. */
static int dvm_stop(struct daemon *d, struct dvm *v, int timeout, int *forced)
{
	int status;
	char err[256];
	*forced = 0;
	if (!dvm_alive(d, v, 0))
		return -ESRCH;
	if (timeout > 0)
		dvm_call(d, v, "PUT", "/actions", "{\"action_type\":\"Stop\"}", &status, NULL, err, sizeof(err));
	for (int waited = 0; waited < timeout * 1000; waited += 10) {
		if (!dvm_alive(d, v, 0))
			return 0;
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	if (!dvm_alive(d, v, 0))
		return 0;
	*forced = 1;
	kill(v->pid, SIGKILL);
	/* a killed process ends, but tearing down a large address space under
	 * its own CPU limit on a busy host can take seconds: 30 s */
	for (int k = 0; k < 6000 && dvm_alive(d, v, 1); k++) {
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
	return v->pid ? -EBUSY : 0;
}

/* ---- The table ---- */

static struct dvm *find_vm(struct daemon *d, const char *name)
{
	for (unsigned k = 0; k < d->nvms; k++)
		if (!strcmp(d->vm[k]->name, name))
			return d->vm[k];
	return NULL;
}

static int vm_cmp(const void *a, const void *b)
{
	return strcmp((*(struct dvm *const *)a)->name, (*(struct dvm *const *)b)->name);
}

/* The table in name order, as lists show it. */
static void sort_vms(struct daemon *d)
{
	qsort(d->vm, d->nvms, sizeof(d->vm[0]), vm_cmp);
}

static void drop_vm(struct daemon *d, struct dvm *v)
{
	for (unsigned k = 0; k < d->nvms; k++) {
		if (d->vm[k] == v) {
			d->vm[k] = d->vm[--d->nvms];
			sort_vms(d);
			break;
		}
	}
	json_decref(v->def);
	json_decref(v->cgroups);
	free(v);
}

/* Resolves path (absolute) and checks that it is a regular file inside an
 * image directory: 0 and the resolved path in out, or -1 with why. */
static int path_allowed(struct daemon *d, const char *key, const char *path, char *out, char *why, size_t len)
{
	struct stat st;
	if (path[0] != '/') {
		sfmt(why, len, "'%s' must be an absolute path, not '%.200s'", key, path);
		return -1;
	}
	if (!realpath(path, out)) {
		sfmt(why, len, "'%s' '%.200s': %s", key, path, strerror(errno));
		return -1;
	}
	if (stat(out, &st) < 0 || !S_ISREG(st.st_mode)) {
		sfmt(why, len, "'%s' '%.200s' is not a regular file", key, path);
		return -1;
	}
	for (unsigned k = 0; k < d->nimage_dirs; k++) {
		size_t n = strlen(d->image_dir[k]);
		if (!strncmp(out, d->image_dir[k], n) && out[n] == '/')
			return 0;
	}
	sfmt(why, len, "'%s' '%.200s' is outside the image directories (corrald --image-dir)", key, path);
	return -1;
}

static int check_path_member(struct daemon *d, json_t *obj, const char *key, char *why, size_t len)
{
	json_t *v = json_object_get(obj, key);
	char real[PATH_MAX];
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		sfmt(why, len, "'%s' must be a string", key);
		return -1;
	}
	if (path_allowed(d, key, json_string_value(v), real, why, len) < 0)
		return -1;
	json_object_set_new(obj, key, json_string(real));
	return 0;
}

/* Checks a VM configuration from a request, resolving its paths in place:
 * 0, or -1 with why. */
static int check_config(struct daemon *d, json_t *c, char *why, size_t len)
{
	static const char *const host_keys[] = {"serial_path", "guest_dir", "kernel_cache"};
	if (!json_is_object(c)) {
		sfmt(why, len, "'config' must be a JSON object (the VM layer's configuration)");
		return -1;
	}
	for (unsigned k = 0; k < sizeof(host_keys) / sizeof(host_keys[0]); k++) {
		if (json_object_get(c, host_keys[k])) {
			sfmt(why, len, "'config': '%s' is corrald's to set", host_keys[k]);
			return -1;
		}
	}
	if (check_path_member(d, c, "kernel", why, len) < 0 || check_path_member(d, c, "initrd", why, len) < 0 ||
	    check_path_member(d, c, "flat", why, len) < 0)
		return -1;
	json_t *disks = json_object_get(c, "disks");
	if (json_is_array(disks)) {
		size_t k;
		json_t *disk;
		json_array_foreach(disks, k, disk)
		{
			if (json_is_object(disk) && check_path_member(d, disk, "path", why, len) < 0)
				return -1;
		}
	}
	/* the VM layer checks the rest: keys, types, ranges */
	char *text = json_dumps(c, JSON_COMPACT);
	struct vm_config cfg;
	void *strings = NULL;
	char err[512];
	int r = text ? vm_config_from_json(text, strlen(text), &cfg, &strings, err, sizeof(err)) : -ENOMEM;
	free(text);
	free(strings);
	if (r < 0) {
		sfmt(why, len, "'config': %s", r == -ENOMEM ? "out of memory" : err);
		return -1;
	}
	return 0;
}

/* The uid a VM's jailed process takes: one of its own, not used by any VM
 * in the table. */
static json_int_t free_uid(struct daemon *d)
{
	for (json_int_t u = CORRALD_UID_BASE; u < CORRALD_UID_BASE + CORRALD_MAX_VMS * 2; u++) {
		unsigned k = 0;
		while (k < d->nvms && json_integer_value(json_object_get(d->vm[k]->def, "uid")) != u)
			k++;
		if (k == d->nvms)
			return u;
	}
	return -1;
}

/* Defines a VM: its directory made whole under .new-NAME, then renamed. */
static struct dvm *define_vm(struct daemon *d, const char *name, json_t *config, json_t *limits, char *why, size_t len)
{
	char tmp[PATH_MAX], dir[PATH_MAX], file[PATH_MAX + 16];
	if (d->nvms == CORRALD_MAX_VMS) {
		sfmt(why, len, "corrald holds %d VMs already", CORRALD_MAX_VMS);
		return NULL;
	}
	struct dvm *v = calloc(1, sizeof(*v));
	if (!v) {
		sfmt(why, len, "out of memory");
		return NULL;
	}
	sfmt(v->name, sizeof(v->name), "%s", name);
	v->def = json_pack("{s:s,s:I,s:O}", "name", name, "uid", free_uid(d), "config", config);
	if (v->def && limits)
		json_object_set(v->def, "limits", limits);
	sfmt(tmp, sizeof(tmp), "%s/.new-%s", d->vms_dir, name);
	vm_file(d, name, NULL, dir);
	rm_tree(tmp);
	sfmt(file, sizeof(file), "%s/vm.json", tmp);
	int r = !v->def ? -ENOMEM : mkdir(tmp, 0711) < 0 ? -errno : write_json(file, v->def);
	sfmt(file, sizeof(file), "%s/vm", tmp);
	if (r == 0 &&
	    (mkdir(file, 0700) < 0 || (geteuid() == 0 && chown(file, (uid_t)free_uid(d), (gid_t)free_uid(d)) < 0)))
		r = -errno;
	if (r == 0 && rename(tmp, dir) < 0)
		r = -errno;
	if (r == 0)
		r = fsync_dir_of(dir);
	if (r < 0) {
		sfmt(why, len, "cannot write the definition: %s", strerror(-r));
		rm_tree(tmp);
		json_decref(v->def);
		free(v);
		return NULL;
	}
	d->vm[d->nvms++] = v;
	sort_vms(d);
	return v;
}

/* Removes v's files and forgets it (its process must have ended). */
static void undefine_vm(struct daemon *d, struct dvm *v)
{
	char dir[PATH_MAX], del[PATH_MAX];
	vm_file(d, v->name, NULL, dir);
	sfmt(del, sizeof(del), "%s/.del-%s", d->vms_dir, v->name);
	rm_tree(del);
	if (rename(dir, del) == 0) {
		fsync_dir_of(dir);
		rm_tree(del);
	} else {
		rm_tree(dir);
	}
	drop_vm(d, v);
}

/* At start: every VM directory, and its process if one still runs. */
static void load_vms(struct daemon *d)
{
	DIR *dir = opendir(d->vms_dir);
	struct dirent *e;
	if (!dir)
		return;
	while ((e = readdir(dir))) {
		char path[PATH_MAX + 300];
		if (!strncmp(e->d_name, ".new-", 5) || !strncmp(e->d_name, ".del-", 5)) {
			sfmt(path, sizeof(path), "%s/%s", d->vms_dir, e->d_name);
			rm_tree(path);
			continue;
		}
		if (!corrald_name_ok(e->d_name))
			continue;
		if (d->nvms == CORRALD_MAX_VMS) {
			logf_("more than %d VMs in '%s': '%s' and after are not loaded", CORRALD_MAX_VMS, d->vms_dir,
			      e->d_name);
			break;
		}
		sfmt(path, sizeof(path), "%s/%s/vm.json", d->vms_dir, e->d_name);
		json_error_t je;
		json_t *def = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
		const char *name = def ? json_string_value(json_object_get(def, "name")) : NULL;
		json_int_t uid = def ? json_integer_value(json_object_get(def, "uid")) : 0;
		if (!def || !name || strcmp(name, e->d_name) || !json_is_object(json_object_get(def, "config")) ||
		    uid < CORRALD_UID_BASE || uid >= CORRALD_UID_BASE + CORRALD_MAX_VMS * 2) {
			logf_("'%s': not a VM definition (%s); left alone", path,
			      def ? "wrong name or no config" : je.text);
			json_decref(def);
			continue;
		}
		struct dvm *v = calloc(1, sizeof(*v));
		if (!v) {
			json_decref(def);
			break;
		}
		sfmt(v->name, sizeof(v->name), "%s", name);
		v->def = def;
		d->vm[d->nvms++] = v;
		sfmt(path, sizeof(path), "%s/%s/run.json", d->vms_dir, e->d_name);
		json_t *run = json_load_file(path, 0, &je);
		json_int_t pid = run ? json_integer_value(json_object_get(run, "pid")) : 0;
		json_int_t t = run ? json_integer_value(json_object_get(run, "start_time")) : 0;
		json_t *cg = run ? json_object_get(run, "cgroups") : NULL;
		/* only cgroup directories of corral's own */
		size_t ck;
		json_t *cv;
		json_array_foreach(cg, ck, cv)
		{
			if (!json_is_string(cv) || strncmp(json_string_value(cv), "/sys/fs/cgroup/", 15) ||
			    strstr(json_string_value(cv), "..") || !strstr(json_string_value(cv), "/corral/"))
				cg = NULL;
		}
		if (json_is_array(cg))
			v->cgroups = json_incref(cg);
		json_decref(run);
		if (pid > 1 && pid <= INT32_MAX && t > 0) {
			v->pid = (pid_t)pid;
			v->start_time = (unsigned long long)t;
			if (dvm_alive(d, v, 0))
				logf_("VM '%s': its process %d runs: taken back", v->name, v->pid);
		} else if (run) {
			unlink(path);
		}
	}
	closedir(dir);
	sort_vms(d);
}

/* ---- The API ---- */

static json_t *vm_summary(struct daemon *d, struct dvm *v)
{
	const char *st = dvm_state(d, v);
	json_t *c = json_object_get(v->def, "config");
	json_t *mem = json_object_get(c, "mem"), *cpus = json_object_get(c, "cpus");
	json_t *j = json_pack("{s:s,s:s,s:i,s:I,s:I}", "name", v->name, "state", st, "pid", (int)v->pid, "mem",
			      mem ? json_integer_value(mem) : (json_int_t)VM_MEM_DEFAULT, "cpus",
			      cpus ? json_integer_value(cpus) : (json_int_t)1);
	if (j && v->reason[0] && !v->pid)
		json_object_set_new(j, "reason", json_string(v->reason));
	return j;
}

static enum MHD_Result get_vms(struct daemon *d, struct MHD_Connection *c)
{
	json_t *a = json_array();
	for (unsigned k = 0; a && k < d->nvms; k++)
		json_array_append_new(a, vm_summary(d, d->vm[k]));
	return a ? httpd_reply(c, 200, a) : httpd_fault(c, 500, "out of memory");
}

static enum MHD_Result get_vm(struct daemon *d, struct MHD_Connection *c, struct dvm *v)
{
	json_t *j = vm_summary(d, v);
	char dir[PATH_MAX];
	json_t *snaps = json_array();
	if (j)
		json_object_set(j, "config", json_object_get(v->def, "config"));
	if (j && json_object_get(v->def, "limits"))
		json_object_set(j, "limits", json_object_get(v->def, "limits"));
	vm_file(d, v->name, "vm/snapshots", dir);
	DIR *sd = opendir(dir);
	struct dirent *e;
	while (sd && snaps && (e = readdir(sd)))
		if (corrald_name_ok(e->d_name))
			json_array_append_new(snaps, json_string(e->d_name));
	if (sd)
		closedir(sd);
	if (j && snaps)
		json_object_set_new(j, "snapshots", snaps);
	else
		json_decref(snaps);
	if (j && v->migrating) {
		/* the migration's progress: the VM process's own GET /migrate
		 * (post_migrate waits for it without the daemon's lock) */
		int status;
		char *ans = NULL, err[600];
		json_t *m =
			dvm_call(d, v, "GET", "/migrate", NULL, &status, &ans, err, sizeof(err)) == 0 && status == 200
				? json_loads(ans, 0, NULL)
				: NULL;
		free(ans);
		if (json_is_object(m))
			json_object_set_new(j, "migration", m);
		else
			json_decref(m);
	}
	return j ? httpd_reply(c, 200, j) : httpd_fault(c, 500, "out of memory");
}

static enum MHD_Result post_vms(struct daemon *d, struct MHD_Connection *c, struct dreq *q)
{
	static const char *const keys[] = {"name", "config", "start", "limits", NULL};
	struct oci_resources res;
	char why[700], err[700];
	const char *name = NULL;
	json_t *j = httpd_body_object(q->body, q->len, keys, why, sizeof(why));
	if (!j)
		return httpd_fault(c, 400, "%s", why);
	enum MHD_Result r;
	json_t *config = json_object_get(j, "config"), *start = json_object_get(j, "start");
	int got = httpd_get_str(j, "name", CORRALD_NAME_MAX + 1, &name, why, sizeof(why));
	if (got <= 0) {
		r = httpd_fault(c, 400, "%s", got == 0 ? "'name' is required" : why);
	} else if (!corrald_name_ok(name)) {
		r = httpd_fault(c, 400,
				"name '%.80s': 1 to %d letters, digits, '-', '_' or '.', starting with a letter or "
				"digit, without '..'",
				name, CORRALD_NAME_MAX);
	} else if (!config) {
		r = httpd_fault(c, 400, "'config' is required (the VM layer's configuration, docs/corrald.yaml)");
	} else if (start && !json_is_boolean(start)) {
		r = httpd_fault(c, 400, "'start' must be true or false");
	} else if (find_vm(d, name)) {
		r = httpd_fault(c, 409, "a VM named '%s' exists", name);
	} else if (check_config(d, config, why, sizeof(why)) < 0 ||
		   check_limits(json_object_get(j, "limits"), &res, why, sizeof(why)) < 0) {
		r = httpd_fault(c, 400, "%s", why);
	} else {
		struct dvm *v = define_vm(d, name, config, json_object_get(j, "limits"), why, sizeof(why));
		if (!v) {
			r = httpd_fault(c, 500, "%s", why);
		} else if (json_is_true(start) && dvm_spawn(d, v, NULL, 0, err, sizeof(err)) < 0) {
			/* a VM that cannot start is not left half-made */
			undefine_vm(d, v);
			r = httpd_fault(c, 400, "VM '%s' does not start: %s", name, err);
		} else {
			r = httpd_reply(c, 201, vm_summary(d, v));
		}
	}
	json_decref(j);
	return r;
}

static enum MHD_Result delete_vm(struct daemon *d, struct MHD_Connection *c, struct dvm *v)
{
	const char *force = httpd_mhd.lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "force");
	int forced;
	if (dvm_alive(d, v, 0)) {
		if (!force || strcmp(force, "true"))
			return httpd_fault(c, 409, "VM '%s' runs: stop it first, or DELETE with ?force=true", v->name);
		if (dvm_stop(d, v, 0, &forced) < 0)
			return httpd_fault(c, 500, "VM '%s': its process does not end", v->name);
	}
	undefine_vm(d, v);
	return httpd_reply(c, 204, NULL);
}

/* An optional integer member in [lo, hi]: 0 (and *out), or -1 with why. */
static int get_int(json_t *j, const char *key, long lo, long hi, long *out, char *why, size_t len)
{
	json_t *v = json_object_get(j, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		sfmt(why, len, "'%s' must be an integer from %ld to %ld", key, lo, hi);
		return -1;
	}
	*out = (long)json_integer_value(v);
	return 0;
}

static enum MHD_Result vm_api_action(struct daemon *d, struct MHD_Connection *c, struct dvm *v, const char *method,
				     const char *path, const char *body)
{
	int status;
	char *ans = NULL, err[600], msg[600];
	if (!dvm_alive(d, v, 0))
		return httpd_fault(c, 409, "VM '%s' is not running", v->name);
	if (dvm_call(d, v, method, path, body, &status, &ans, err, sizeof(err)) < 0)
		return httpd_fault(c, 502, "VM '%s': its process does not answer: %s", v->name, err);
	if (status / 100 == 2) {
		free(ans);
		return httpd_reply(c, 204, NULL);
	}
	vm_api_message(ans, msg, sizeof(msg));
	free(ans);
	return httpd_fault(c, status == 400 ? 409 : 502, "VM '%s': %s", v->name, msg);
}

/* /vms/NAME/balloon and /vms/NAME/balloon/statistics: the VM's own
 * balloon API (docs/api.yaml), passed through with its answer. */
static enum MHD_Result vm_balloon(struct daemon *d, struct MHD_Connection *c, struct dvm *v, const char *act,
				  const char *method, struct dreq *q)
{
	int status;
	char *ans = NULL, err[600], msg[600], path[32];
	if (strcmp(method, "GET") && strcmp(method, "PUT") && strcmp(method, "PATCH"))
		return httpd_fault(c, 405, "%.16s is not a method of /vms/{name}/%.32s", method, act);
	if (!dvm_alive(d, v, 0))
		return httpd_fault(c, 409, "VM '%s' is not running", v->name);
	sfmt(path, sizeof(path), "/%s", act);
	char *body = q->len ? strndup(q->body, q->len) : NULL;
	int r = dvm_call(d, v, method, path, body, &status, &ans, err, sizeof(err));
	free(body);
	if (r < 0)
		return httpd_fault(c, 502, "VM '%s': its process does not answer: %s", v->name, err);
	if (status == 200) {
		json_t *j = ans ? json_loads(ans, 0, NULL) : NULL;
		free(ans);
		return j ? httpd_reply(c, 200, j) : httpd_fault(c, 502, "VM '%s': its answer is not JSON", v->name);
	}
	if (status / 100 == 2) {
		free(ans);
		return httpd_reply(c, 204, NULL);
	}
	vm_api_message(ans, msg, sizeof(msg));
	free(ans);
	return httpd_fault(c, status == 400 ? 400 : 502, "VM '%s': %s", v->name, msg);
}

/* The balloon policy's round (policy.h): each running VM with balloon
 * statistics says how much memory it has available; new targets go back
 * through PATCH /balloon. Under the daemon's lock. */
static void balloon_policy_round(struct daemon *d)
{
	static struct policy_vm pv[CORRALD_MAX_VMS];
	static struct dvm *who[CORRALD_MAX_VMS];
	unsigned n = 0;
	for (unsigned k = 0; k < d->nvms; k++) {
		struct dvm *v = d->vm[k];
		int status;
		char *ans = NULL, err[256];
		if (!v->pid || !dvm_alive(d, v, 0))
			continue;
		if (dvm_call(d, v, "GET", "/balloon/statistics", NULL, &status, &ans, err, sizeof(err)) < 0 ||
		    status != 200) {
			free(ans);
			continue;
		}
		json_t *st = ans ? json_loads(ans, 0, NULL) : NULL;
		free(ans);
		ans = NULL;
		json_t *mc = NULL;
		if (dvm_call(d, v, "GET", "/machine-config", NULL, &status, &ans, err, sizeof(err)) == 0 &&
		    status == 200 && ans)
			mc = json_loads(ans, 0, NULL);
		free(ans);
		json_t *t = json_object_get(st, "target_mib"), *av = json_object_get(st, "available_memory"),
		       *mem = json_object_get(mc, "mem_size_mib");
		if (json_is_integer(t) && json_is_integer(av) && json_is_integer(mem) && json_integer_value(t) >= 0 &&
		    json_integer_value(av) >= 0 && json_integer_value(mem) > 0 &&
		    json_integer_value(mem) <= (json_int_t)UINT32_MAX &&
		    json_integer_value(t) <= json_integer_value(mem)) {
			pv[n] = (struct policy_vm){.mem_mib = (uint32_t)json_integer_value(mem),
						   .target_mib = (uint32_t)json_integer_value(t),
						   .avail = (uint64_t)json_integer_value(av)};
			who[n++] = v;
		}
		json_decref(st);
		json_decref(mc);
	}
	policy_balance(pv, n);
	for (unsigned k = 0; k < n; k++) {
		if (pv[k].next_mib == pv[k].target_mib)
			continue;
		char body[64], err[256];
		int status;
		sfmt(body, sizeof(body), "{\"amount_mib\":%u}", pv[k].next_mib);
		if (dvm_call(d, who[k], "PATCH", "/balloon", body, &status, NULL, err, sizeof(err)) == 0 &&
		    status == 204)
			logf_("VM '%s': balloon %u -> %u MiB (%llu MiB available)", who[k]->name, pv[k].target_mib,
			      pv[k].next_mib, (unsigned long long)(pv[k].avail >> 20));
	}
}

/* Saves v (running) to snapshots/SNAP: 0, or -1 with status and why. */
static int snapshot_to(struct daemon *d, struct dvm *v, const char *snap, unsigned *code, char *why, size_t len)
{
	char dir[PATH_MAX], sdir[PATH_MAX + 80], body[2 * PATH_MAX + 128], *ans = NULL, err[600];
	int status;
	vm_file(d, v->name, "vm/snapshots", dir);
	sfmt(sdir, sizeof(sdir), "%s/%s", dir, snap);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*code = 500;
		sfmt(why, len, "'%s': %s", dir, strerror(errno));
		return -1;
	}
	/* DIR/vm is the VM's: a link planted as snapshots/ is not followed
	 * (DIR/vm itself sits in corrald's directory, which the VM cannot change) */
	json_int_t uid = json_integer_value(json_object_get(v->def, "uid"));
	int sfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0 || (geteuid() == 0 && fchown(sfd, (uid_t)uid, (gid_t)uid) < 0)) {
		*code = 500;
		sfmt(why, len, "'%s': %s", dir, strerror(errno));
		if (sfd >= 0)
			close(sfd);
		return -1;
	}
	int made = mkdirat(sfd, snap, 0700);
	if (made == 0 && geteuid() == 0 && fchownat(sfd, snap, (uid_t)uid, (gid_t)uid, AT_SYMLINK_NOFOLLOW) < 0)
		made = -1;
	int e = errno;
	close(sfd);
	errno = e;
	if (made < 0) {
		*code = errno == EEXIST ? 409 : 500;
		sfmt(why, len, errno == EEXIST ? "VM '%s' has a snapshot '%s' already" : "VM '%s': snapshot '%s': %s",
		     v->name, snap, strerror(errno));
		return -1;
	}
	sfmt(body, sizeof(body), "{\"snapshot_path\":\"%s/state\",\"mem_file_path\":\"%s/memory\"}", sdir, sdir);
	if (dvm_call(d, v, "PUT", "/snapshot/create", body, &status, &ans, err, sizeof(err)) < 0 || status / 100 != 2) {
		char msg[600];
		vm_api_message(ans, msg, sizeof(msg));
		*code = 502;
		sfmt(why, len, "VM '%s': the snapshot failed: %s", v->name, ans ? msg : err);
		free(ans);
		rm_tree(sdir);
		return -1;
	}
	free(ans);
	return 0;
}

static enum MHD_Result post_snapshot(struct daemon *d, struct MHD_Connection *c, struct dvm *v, struct dreq *q)
{
	static const char *const keys[] = {"name", NULL};
	char why[700];
	const char *snap = NULL;
	unsigned code;
	json_t *j = httpd_body_object(q->len ? q->body : "{}", q->len ? q->len : 2, keys, why, sizeof(why));
	int got = j ? httpd_get_str(j, "name", CORRALD_NAME_MAX + 1, &snap, why, sizeof(why)) : -1;
	enum MHD_Result r;
	if (got <= 0)
		r = httpd_fault(c, 400, "%s", got == 0 ? "'name' (the snapshot's) is required" : why);
	else if (!corrald_name_ok(snap))
		r = httpd_fault(c, 400, "snapshot name '%.80s': letters, digits, '-', '_', '.', no '..'", snap);
	else if (!dvm_alive(d, v, 0))
		r = httpd_fault(c, 409, "VM '%s' is not running", v->name);
	else if (snapshot_to(d, v, snap, &code, why, sizeof(why)) < 0)
		r = httpd_fault(c, code, "%s", why);
	else
		r = httpd_reply(c, 201, json_pack("{s:s,s:s}", "vm", v->name, "snapshot", snap));
	json_decref(j);
	return r;
}

static enum MHD_Result post_restore(struct daemon *d, struct MHD_Connection *c, struct dvm *v, struct dreq *q)
{
	static const char *const keys[] = {"snapshot", NULL};
	char why[700], sdir[PATH_MAX], st[PATH_MAX + 16];
	const char *snap = NULL;
	json_t *j = httpd_body_object(q->body, q->len, keys, why, sizeof(why));
	int got = j ? httpd_get_str(j, "snapshot", CORRALD_NAME_MAX + 1, &snap, why, sizeof(why)) : -1;
	enum MHD_Result r;
	if (got <= 0) {
		r = httpd_fault(c, 400, "%s", got == 0 ? "'snapshot' is required" : why);
	} else if (!corrald_name_ok(snap)) {
		r = httpd_fault(c, 400, "snapshot name '%.80s': letters, digits, '-', '_', '.', no '..'", snap);
	} else if (dvm_alive(d, v, 0)) {
		r = httpd_fault(c, 409, "VM '%s' runs: stop it before restoring a snapshot into it", v->name);
	} else {
		vm_file(d, v->name, "vm/snapshots", sdir);
		size_t n = strlen(sdir);
		sfmt(sdir + n, sizeof(sdir) - n, "/%s", snap);
		sfmt(st, sizeof(st), "%s/state", sdir);
		if (access(st, R_OK) < 0)
			r = httpd_fault(c, 404, "VM '%s' has no snapshot '%s'", v->name, snap);
		else if (dvm_spawn(d, v, sdir, 0, why, sizeof(why)) < 0)
			r = httpd_fault(c, 400, "VM '%s': the restore failed: %s", v->name, why);
		else
			r = httpd_reply(c, 204, NULL);
	}
	json_decref(j);
	return r;
}

/* count new VMs NAME-1.. (or PREFIX-1..) with v's configuration; a running
 * v is snapshotted and each clone continues from that snapshot (its memory
 * file mapped copy-on-write by every clone). */
static enum MHD_Result post_clone(struct daemon *d, struct MHD_Connection *c, struct dvm *v, struct dreq *q)
{
	static const char *const keys[] = {"count", "prefix", NULL};
	char why[700], names[CLONE_MAX][CORRALD_NAME_MAX + 16], snap[64], sdir[PATH_MAX + 80];
	const char *prefix = v->name;
	long count = 1;
	unsigned code;
	json_t *j = httpd_body_object(q->len ? q->body : "{}", q->len ? q->len : 2, keys, why, sizeof(why));
	if (!j)
		return httpd_fault(c, 400, "%s", why);
	if (get_int(j, "count", 1, CLONE_MAX, &count, why, sizeof(why)) < 0 ||
	    httpd_get_str(j, "prefix", CORRALD_NAME_MAX + 1, &prefix, why, sizeof(why)) < 0) {
		json_decref(j);
		return httpd_fault(c, 400, "%s", why);
	}
	json_t *config = json_deep_copy(json_object_get(v->def, "config"));
	if (!config) {
		json_decref(j);
		return httpd_fault(c, 500, "out of memory");
	}
	enum MHD_Result r = MHD_NO;
	json_t *disks = json_object_get(config, "disks");
	size_t k;
	json_t *disk;
	json_array_foreach(disks, k, disk)
	{
		if (!json_is_true(json_object_get(disk, "readonly"))) {
			r = httpd_fault(c, 400, "VM '%s' has a writable disk: clones would share it (make it readonly)",
					v->name);
			goto out;
		}
	}
	for (long n = 0; n < count; n++) {
		sfmt(names[n], sizeof(names[n]), "%s-%ld", prefix, n + 1);
		if (!corrald_name_ok(names[n])) {
			r = httpd_fault(c, 400, "clone name '%.80s' is not a valid name", names[n]);
			goto out;
		}
		if (find_vm(d, names[n])) {
			r = httpd_fault(c, 409, "a VM named '%s' exists", names[n]);
			goto out;
		}
	}
	int running = dvm_alive(d, v, 0);
	if (running) {
		sfmt(snap, sizeof(snap), "clone-%lld", (long long)time(NULL));
		if (snapshot_to(d, v, snap, &code, why, sizeof(why)) < 0) {
			r = httpd_fault(c, code, "%s", why);
			goto out;
		}
		vm_file(d, v->name, "vm/snapshots", sdir);
		size_t n = strlen(sdir);
		sfmt(sdir + n, sizeof(sdir) - n, "/%s", snap);
	}
	json_t *made = json_array();
	for (long n = 0; n < count; n++) {
		struct dvm *nv = define_vm(d, names[n], config, json_object_get(v->def, "limits"), why, sizeof(why));
		char err[700];
		if (!nv || (running && dvm_spawn(d, nv, sdir, 0, err, sizeof(err)) < 0)) {
			if (nv) {
				int forced;
				sfmt(why, sizeof(why), "%s", err);
				dvm_stop(d, nv, 0, &forced);
				undefine_vm(d, nv);
			}
			/* all or nothing */
			for (long m = 0; m < n; m++) {
				struct dvm *mv = find_vm(d, names[m]);
				int forced;
				if (mv) {
					dvm_stop(d, mv, 0, &forced);
					undefine_vm(d, mv);
				}
			}
			json_decref(made);
			r = httpd_fault(c, 500, "clone '%s' failed: %s", names[n], why);
			goto out;
		}
		json_array_append_new(made, json_string(names[n]));
	}
	r = httpd_reply(c, 201, json_pack("{s:o}", "names", made));
out:
	json_decref(config);
	json_decref(j); /* prefix points into it */
	return r;
}

/* GET /vms/NAME/console[?from=N]: the log's last CONSOLE_MAX bytes, or
 * those from byte N on (416 when the log is shorter: it began again). */
static enum MHD_Result get_console(struct daemon *d, struct MHD_Connection *c, struct dvm *v)
{
	char path[PATH_MAX];
	const char *fromq = httpd_mhd.lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from");
	char *qend = NULL;
	errno = 0;
	long long want = fromq ? strtoll(fromq, &qend, 10) : -1;
	if (fromq && (errno || !*fromq || *qend || want < 0))
		return httpd_fault(c, 400, "'from' must be a byte offset (0 or more)");
	vm_file(d, v->name, "vm/console.log", path);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC); /* the VM's to plant a link in */
	struct stat st;
	size_t n = 0;
	char *buf = NULL;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if (want > (long long)st.st_size) {
			close(fd);
			return httpd_fault(c, 416, "the console log of '%s' has %lld bytes", v->name,
					   (long long)st.st_size);
		}
		off_t from = want >= 0 ? (off_t)want : st.st_size > CONSOLE_MAX ? st.st_size - CONSOLE_MAX : 0;
		buf = malloc(CONSOLE_MAX);
		ssize_t got;
		while (buf && n < CONSOLE_MAX && (got = pread(fd, buf + n, CONSOLE_MAX - n, from + (off_t)n)) > 0)
			n += (size_t)got;
	}
	if (fd >= 0)
		close(fd);
	struct MHD_Response *resp = buf ? httpd_mhd.create_response_from_buffer(n, buf, MHD_RESPMEM_MUST_FREE)
					: httpd_mhd.create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(buf);
		return MHD_NO;
	}
	httpd_mhd.add_response_header(resp, "Content-Type", "text/plain");
	enum MHD_Result r = httpd_mhd.queue_response(c, 200, resp);
	httpd_mhd.destroy_response(resp);
	return r;
}

/* POST /vms/NAME/console: the body is typed into the console (the VM
 * process's console.sock takes it for the guest's UART). */
static enum MHD_Result post_console(struct daemon *d, struct MHD_Connection *c, struct dvm *v, struct dreq *q)
{
	char sock[64], err[PATH_MAX + 64];
	if (!q->len)
		return httpd_fault(c, 400, "POST /vms/%s/console: the body is the input, and it is empty", v->name);
	if (!dvm_alive(d, v, 0))
		return httpd_fault(c, 409, "VM '%s' is not running", v->name);
	int pfd = dvm_socket(d, v, "console.sock", sock, sizeof(sock), err, sizeof(err));
	if (pfd < 0)
		return httpd_fault(c, 502, "VM '%s': its console: %s", v->name, err);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	/* at most API_BODY_MAX bytes: the socket's buffer takes them at once;
	 * a VM that accepts or reads nothing holds corrald a second at most */
	struct timeval tv = {1, 0};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r = fd < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
				connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0
			? -errno
			: 0;
	close(pfd);
	for (size_t off = 0; !r && off < q->len;) {
		ssize_t n = send(fd, q->body + off, q->len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = n < 0 ? -errno : -EIO;
		else
			off += (size_t)n;
	}
	if (fd >= 0)
		close(fd);
	if (r < 0)
		return httpd_fault(c, 502, "VM '%s': its console does not take input: %s", v->name, strerror(-r));
	return httpd_reply(c, 204, NULL);
}

static enum MHD_Result get_metrics(struct daemon *d, struct MHD_Connection *c)
{
	static const char *const states[] = {"running", "paused", "stopped", "crashed"};
	unsigned by_state[4] = {0};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return httpd_fault(c, 500, "out of memory");
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	fprintf(f, "# HELP corral_vm_state The VM's state (1 for the one it is in).\n# TYPE corral_vm_state gauge\n");
	const char *st[CORRALD_MAX_VMS];
	for (unsigned k = 0; k < d->nvms; k++) {
		st[k] = dvm_state(d, d->vm[k]);
		for (unsigned s = 0; s < 4; s++) {
			fprintf(f, "corral_vm_state{vm=\"%s\",state=\"%s\"} %d\n", d->vm[k]->name, states[s],
				!strcmp(st[k], states[s]));
			by_state[s] += !strcmp(st[k], states[s]);
		}
	}
	fprintf(f, "# HELP corral_vm_guest_memory_bytes The guest's RAM.\n# TYPE corral_vm_guest_memory_bytes gauge\n");
	for (unsigned k = 0; k < d->nvms; k++) {
		json_t *mem = json_object_get(json_object_get(d->vm[k]->def, "config"), "mem");
		fprintf(f, "corral_vm_guest_memory_bytes{vm=\"%s\"} %" PRIu64 "\n", d->vm[k]->name,
			mem ? (uint64_t)json_integer_value(mem) : (uint64_t)VM_MEM_DEFAULT);
	}
	fprintf(f, "# HELP corral_vm_cpu_seconds_total Host CPU time of the VM process.\n"
		   "# TYPE corral_vm_cpu_seconds_total counter\n");
	for (unsigned k = 0; k < d->nvms; k++) {
		unsigned long long ticks = 0;
		if (d->vm[k]->pid)
			proc_start_time(d->vm[k]->pid, NULL, &ticks);
		fprintf(f, "corral_vm_cpu_seconds_total{vm=\"%s\"} %.2f\n", d->vm[k]->name,
			(double)ticks / (double)tick);
	}
	fprintf(f, "# HELP corral_vm_rss_bytes Resident memory of the VM process.\n# TYPE corral_vm_rss_bytes gauge\n");
	for (unsigned k = 0; k < d->nvms; k++) {
		unsigned long long size = 0, rss = 0;
		char path[64];
		if (d->vm[k]->pid) {
			sfmt(path, sizeof(path), "/proc/%d/statm", (int)d->vm[k]->pid);
			FILE *sf = fopen(path, "r");
			if (sf) {
				if (fscanf(sf, "%llu %llu", &size, &rss) != 2)
					rss = 0;
				fclose(sf);
			}
		}
		fprintf(f, "corral_vm_rss_bytes{vm=\"%s\"} %llu\n", d->vm[k]->name, rss * (unsigned long long)page);
	}
	fprintf(f, "# HELP corral_vms VMs by state.\n# TYPE corral_vms gauge\n");
	for (unsigned s = 0; s < 4; s++)
		fprintf(f, "corral_vms{state=\"%s\"} %u\n", states[s], by_state[s]);
	if (fclose(f) != 0) {
		free(text);
		return httpd_fault(c, 500, "out of memory");
	}
	struct MHD_Response *resp = httpd_mhd.create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	httpd_mhd.add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
	enum MHD_Result r = httpd_mhd.queue_response(c, 200, resp);
	httpd_mhd.destroy_response(resp);
	return r;
}

/* POST /vms/NAME/ACTION */
/* ---- Live migration between corralds ----
 *
 * A jailed VM process has no network, so its stream goes through the
 * corralds (relay.h). The source corrald sends the destination one line,
 * the VM's definition {"name", "config", "limits"}; the destination
 * defines the VM, starts its process waiting on DIR/vm/incoming.sock and
 * answers one line, {"ok": true} or {"fault_message": "..."}; then the
 * source's VM process streams to DIR/vm/migrate.sock (corrald's), and each
 * corrald forwards the bytes both ways. The VM runs on at the source until
 * the destination runs it (migrate.h), and is then removed there. */

static int peer_allowed(struct daemon *d, uid_t uid, pid_t pid);

#define MIGRATE_HANDSHAKE_MS 30000 /* the destination defines and starts the VM */
#define MIGRATE_IDLE_MS 90000	   /* longer than the stream's own timeouts (30 s, 60 s for READY) */
#define MIGRATE_END_MS 60000

/* A socket of corrald's in DIR/vm for v's process to connect to (made
 * through a descriptor of the directory, so the state directory's path
 * may be long, and given to the VM's uid): the listening fd, or -errno. */
static int dvm_listen(struct daemon *d, struct dvm *v, const char *file, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	vm_file(d, v->name, "vm", dir);
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), fd = -1, r = 0;
	json_int_t uid = json_integer_value(json_object_get(v->def, "uid"));
	if (dfd < 0) {
		r = -errno;
		goto out;
	}
	sfmt(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dfd, file);
	unlink(sa.sun_path); /* whatever the VM left there */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0 ||
	    (geteuid() == 0 && lchown(sa.sun_path, (uid_t)uid, (gid_t)uid) < 0))
		r = -errno;
out:
	if (dfd >= 0)
		close(dfd);
	if (r < 0) {
		sfmt(err, errlen, "'%s/%s': %s", dir, file, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

/* The destination's stream socket: tcp:HOST:PORT itself, or the incoming
 * socket the corrald serving the API socket dest names. The connected fd,
 * or -errno with why. */
static int dest_connect(const char *dest, char *why, size_t len)
{
	if (!strncmp(dest, "tcp:", 4))
		return relay_connect(dest, MIGRATE_HANDSHAKE_MS, why, len);
	int status;
	char *ans = NULL;
	size_t alen;
	int r = http_call(dest, "GET", "/", NULL, 10000, &status, &ans, &alen, why, len);
	if (r < 0)
		return r;
	json_t *j = status == 200 ? json_loads(ans, 0, NULL) : NULL;
	const char *in = json_string_value(json_object_get(j, "incoming_socket"));
	if (!in || !*in) {
		sfmt(why, len, "'%s' is not a corrald that takes incoming VMs (GET / answered %d)", dest, status);
		r = -EPROTO;
	} else {
		r = relay_connect(in, MIGRATE_HANDSHAKE_MS, why, len);
	}
	json_decref(j); /* in was j's */
	free(ans);
	return r;
}

/* The source's part, without the daemon's lock (v->migrating keeps every
 * other change away): 0 when the destination runs the VM (*st holds the
 * VM's last GET /migrate), or -errno with why; the VM runs on here then. */
static int migrate_out(struct daemon *d, struct dvm *v, const char *dest, const char *hello, int lfd, long downtime,
		       json_t **st, char *why, size_t len)
{
	char line[1024], body[128], err[600];
	int status, vfd = -1, r;
	char *ans = NULL;
	*st = NULL;
	int dfd = dest_connect(dest, err, sizeof(err));
	if (dfd < 0) {
		sfmt(why, len, "destination: %s", err);
		return dfd;
	}
	if ((r = relay_write_all(dfd, hello, strlen(hello), MIGRATE_HANDSHAKE_MS)) < 0 ||
	    (r = relay_write_all(dfd, "\n", 1, MIGRATE_HANDSHAKE_MS)) < 0 ||
	    (r = relay_read_line(dfd, line, sizeof(line), MIGRATE_HANDSHAKE_MS)) < 0) {
		sfmt(why, len, "destination '%s': no answer: %s", dest, strerror(-r));
		goto out;
	}
	json_t *a = json_loads(line, 0, NULL);
	if (!json_is_true(json_object_get(a, "ok"))) {
		const char *m = json_string_value(json_object_get(a, "fault_message"));
		sfmt(why, len, "the destination refused the VM: %.400s", m ? m : line);
		json_decref(a);
		r = -ECONNREFUSED;
		goto out;
	}
	json_decref(a);
	if (downtime)
		sfmt(body, sizeof(body), "{\"destination_url\":\"unix:migrate.sock\",\"downtime_limit_ms\":%ld}",
		     downtime);
	else
		sfmt(body, sizeof(body), "{\"destination_url\":\"unix:migrate.sock\"}");
	if ((r = dvm_call(d, v, "PUT", "/migrate", body, &status, &ans, err, sizeof(err))) < 0 || status != 204) {
		if (r == 0)
			vm_api_message(ans, err, sizeof(err));
		sfmt(why, len, "the VM does not migrate: %s", err);
		r = r < 0 ? r : -EINVAL;
		goto out;
	}
	/* watched: the VM process waits, once it has handed the VM over,
	 * until the poll below has seen the outcome (migrate.h) */
	free(ans);
	ans = NULL;
	dvm_call(d, v, "GET", "/migrate", NULL, &status, &ans, err, sizeof(err));
	/* the VM process connects (its cwd is DIR/vm) */
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	if (poll(&p, 1, MIGRATE_HANDSHAKE_MS) <= 0 || (vfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		sfmt(why, len, "the VM process did not send its stream");
		r = -ETIMEDOUT;
		goto out;
	}
	r = relay_pump(vfd, dfd, MIGRATE_IDLE_MS, err, sizeof(err));
	if (r < 0)
		logf_("VM '%s': migration to '%s': %s", v->name, dest, err);
	close(vfd);
	vfd = -1;
	close(dfd);
	dfd = -1;
	/* the VM's own word on how it went */
	for (int waited = 0; waited < MIGRATE_END_MS; waited += 50) {
		free(ans);
		ans = NULL;
		if (dvm_call(d, v, "GET", "/migrate", NULL, &status, &ans, err, sizeof(err)) < 0) {
			sfmt(why, len, "the VM process ended during its migration: %s", err);
			r = -EIO;
			goto out;
		}
		json_t *j = status == 200 ? json_loads(ans, 0, NULL) : NULL;
		const char *state = json_string_value(json_object_get(j, "state"));
		if (state && !strcmp(state, "completed")) {
			*st = j;
			r = 0;
			goto out;
		}
		if (state && !strcmp(state, "failed")) {
			sfmt(why, len, "%.500s", json_string_value(json_object_get(j, "error")) ?: "failed");
			json_decref(j);
			r = -EIO;
			goto out;
		}
		json_decref(j);
		struct timespec ts = {0, 50000000};
		nanosleep(&ts, NULL);
	}
	sfmt(why, len, "the migration did not end within %d s", MIGRATE_END_MS / 1000);
	r = -ETIMEDOUT;
out:
	free(ans);
	if (vfd >= 0)
		close(vfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

static enum MHD_Result post_migrate(struct daemon *d, struct MHD_Connection *c, struct dvm *v, struct dreq *q)
{
	static const char *const keys[] = {"destination", "downtime_limit_ms", NULL};
	char why[700], sock[PATH_MAX], self[PATH_MAX];
	const char *dest = NULL;
	long downtime = 0;
	json_t *j = httpd_body_object(q->body, q->len, keys, why, sizeof(why));
	int got = j ? httpd_get_str(j, "destination", PATH_MAX, &dest, why, sizeof(why)) : -1;
	enum MHD_Result res;
	if (got <= 0 || get_int(j, "downtime_limit_ms", 1, MIGRATE_DOWNTIME_MAX_MS, &downtime, why, sizeof(why)) < 0) {
		res = httpd_fault(c, 400, "%s", got == 0 ? "'destination' is required" : why);
		goto out;
	}
	if (strncmp(dest, "tcp:", 4) && dest[0] != '/') {
		res = httpd_fault(c, 400,
				  "'destination' '%.64s': another corrald's API socket (an absolute path) or "
				  "tcp:HOST:PORT where it takes incoming VMs",
				  dest);
		goto out;
	}
	/* itself: the VM's name is taken there, and the lock would be too */
	if (realpath(dest, sock) && realpath(d->o->socket, self) && !strcmp(sock, self)) {
		res = httpd_fault(c, 400, "'%.64s' is this corrald", dest);
		goto out;
	}
	if (!dvm_alive(d, v, 0)) {
		res = httpd_fault(c, 409, "VM '%s' is not running", v->name);
		goto out;
	}
	json_t *h = json_pack("{s:s,s:O}", "name", v->name, "config", json_object_get(v->def, "config"));
	if (h && json_object_get(v->def, "limits"))
		json_object_set(h, "limits", json_object_get(v->def, "limits"));
	char *hello = h ? json_dumps(h, JSON_COMPACT) : NULL;
	json_decref(h);
	if (!hello || strlen(hello) >= RELAY_LINE_MAX) {
		free(hello);
		res = httpd_fault(c, 500, "VM '%s': its definition does not fit the hand-shake", v->name);
		goto out;
	}
	int lfd = dvm_listen(d, v, "migrate.sock", why, sizeof(why));
	if (lfd < 0) {
		free(hello);
		res = httpd_fault(c, 500, "%s", why);
		goto out;
	}
	logf_("VM '%s': migrating to '%s'", v->name, dest);
	v->migrating = 1;
	json_t *st;
	pthread_mutex_unlock(&d->lock);
	int r = migrate_out(d, v, dest, hello, lfd, downtime, &st, why, sizeof(why));
	pthread_mutex_lock(&d->lock);
	v->migrating = 0;
	free(hello);
	close(lfd);
	vm_file(d, v->name, "vm/migrate.sock", sock);
	unlink(sock);
	if (r < 0) {
		logf_("VM '%s': migration to '%s' failed, the VM runs on here: %s", v->name, dest, why);
		res = httpd_fault(c, 502, "migration of VM '%s' failed (it runs on here): %s", v->name, why);
		goto out;
	}
	/* the destination runs it: this process ends by itself (migrate.h) */
	for (int k = 0; k < 1000 && dvm_alive(d, v, 0); k++) {
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	int forced;
	if (v->pid)
		dvm_stop(d, v, 0, &forced);
	logf_("VM '%s': migrated to '%s' (stopped %" JSON_INTEGER_FORMAT " ms)", v->name, dest,
	      json_integer_value(json_object_get(st, "downtime_ms")));
	json_t *ans = json_pack("{s:s,s:s,s:O,s:O,s:O}", "name", v->name, "destination", dest, "downtime_ms",
				json_object_get(st, "downtime_ms"), "total_ms", json_object_get(st, "total_ms"),
				"bytes_sent", json_object_get(st, "bytes_sent"));
	json_decref(st);
	undefine_vm(d, v);
	res = httpd_reply(c, 200, ans);
out:
	json_decref(j);
	return res;
}

/* The destination's part: one connection (on incoming.sock or --incoming's
 * TCP port), its hand-shake line checked as a POST /vms is, the VM
 * defined and started waiting for its stream, then the relay. The VM is
 * removed again if its stream never makes it run (the supervision loop). */
static int incoming_define(struct daemon *d, const char *line, size_t n, char *why, size_t len)
{
	static const char *const keys[] = {"name", "config", "limits", NULL};
	struct oci_resources res;
	const char *name = NULL;
	char sock[64], err[600];
	int r = -EINVAL;
	json_t *j = httpd_body_object(line, n, keys, why, len);
	if (!j)
		return -EINVAL;
	json_t *config = json_object_get(j, "config");
	int got = httpd_get_str(j, "name", CORRALD_NAME_MAX + 1, &name, why, len);
	if (got <= 0 || !corrald_name_ok(name)) {
		sfmt(why, len, "not a VM name");
	} else if (!config) {
		sfmt(why, len, "no 'config'");
	} else if (find_vm(d, name)) {
		sfmt(why, len, "a VM named '%s' exists here", name);
		r = -EEXIST;
	} else if (check_config(d, config, why, len) == 0 &&
		   check_limits(json_object_get(j, "limits"), &res, why, len) == 0) {
		struct dvm *v = define_vm(d, name, config, json_object_get(j, "limits"), why, len);
		if (!v) {
			r = -EIO;
		} else if ((r = dvm_spawn(d, v, NULL, 1, err, sizeof(err))) < 0) {
			sfmt(why, len, "VM '%s' does not start: %s", name, err);
			undefine_vm(d, v);
		} else {
			v->incoming = 1;
			int pfd = dvm_socket(d, v, "incoming.sock", sock, sizeof(sock), err, sizeof(err));
			r = pfd < 0 ? pfd : relay_connect(sock, 5000, err, sizeof(err));
			if (pfd >= 0)
				close(pfd);
			if (r < 0) {
				int forced;
				sfmt(why, len, "VM '%s': %s", name, err);
				dvm_stop(d, v, 0, &forced);
				undefine_vm(d, v);
			} else {
				logf_("VM '%s': arriving by live migration", name);
			}
		}
	}
	json_decref(j);
	return r;
}

static void incoming_serve(struct daemon *d, int cfd)
{
	char why[700];
	char *line = malloc(RELAY_LINE_MAX);
	int n = line ? relay_read_line(cfd, line, RELAY_LINE_MAX, MIGRATE_HANDSHAKE_MS) : -ENOMEM;
	int vfd = -EINVAL;
	if (n < 0) {
		sfmt(why, sizeof(why), "no hand-shake line: %s", strerror(-n));
	} else {
		pthread_mutex_lock(&d->lock);
		vfd = incoming_define(d, line, (size_t)n, why, sizeof(why));
		pthread_mutex_unlock(&d->lock);
	}
	free(line);
	json_t *a = vfd >= 0 ? json_pack("{s:b}", "ok", 1) : json_pack("{s:s}", "fault_message", why);
	char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (vfd < 0)
		logf_("incoming VM refused: %s", why);
	if (text && relay_write_all(cfd, text, strlen(text), 5000) == 0 && relay_write_all(cfd, "\n", 1, 5000) == 0 &&
	    vfd >= 0 && relay_pump(cfd, vfd, MIGRATE_IDLE_MS, why, sizeof(why)) < 0)
		logf_("incoming VM: %s", why);
	free(text);
	if (vfd >= 0)
		close(vfd);
	close(cfd);
}

/* One incoming VM at a time; a peer on the unix socket must be one that
 * may use the API. */
static void *incoming_thread(void *arg)
{
	struct daemon *d = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (!d->stopping) {
		struct pollfd p[2] = {{.fd = d->incoming_fd[0], .events = POLLIN},
				      {.fd = d->incoming_fd[1], .events = POLLIN}};
		if (poll(p, 2, 500) <= 0)
			continue;
		for (int k = 0; k < 2; k++) {
			if (!p[k].revents)
				continue;
			int cfd = accept4(p[k].fd, NULL, NULL, SOCK_CLOEXEC);
			if (cfd < 0)
				continue;
			struct ucred cred;
			socklen_t cl = sizeof(cred);
			if (k == 0 && (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
				       !peer_allowed(d, cred.uid, cred.pid))) {
				logf_("incoming VM refused: uid %u may not use corrald", (unsigned)cred.uid);
				close(cfd);
				continue;
			}
			incoming_serve(d, cfd);
		}
	}
	return NULL;
}

/* The supervision loop's look at a VM arriving here (under the lock): 1 if
 * it was removed (its stream did not make it run). */
static int incoming_check(struct daemon *d, struct dvm *v)
{
	int status;
	char err[256];
	char sock[PATH_MAX];
	if (!dvm_alive(d, v, 0)) {
		/* its process got the whole stream (and the source let its VM
		 * go) before it ended: the VM is here now, ended; kept */
		if (vm_file(d, v->name, "vm/arrived", sock) == 0 && access(sock, F_OK) == 0) {
			v->incoming = 0;
			logf_("VM '%s' arrived by live migration, then ended: %s", v->name, v->reason);
			return 0;
		}
		logf_("VM '%s' did not arrive: %s; removed", v->name, v->reason);
		undefine_vm(d, v);
		return 1;
	}
	if (vm_file(d, v->name, "vm/api.sock", sock) == 0 && access(sock, F_OK) == 0 &&
	    dvm_call(d, v, "GET", "/", NULL, &status, NULL, err, sizeof(err)) == 0 && status == 200) {
		v->incoming = 0;
		logf_("VM '%s' arrived by live migration and runs", v->name);
	}
	return 0;
}

static enum MHD_Result vm_action(struct daemon *d, struct MHD_Connection *c, struct dvm *v, const char *act,
				 struct dreq *q)
{
	char why[700];
	if (!strcmp(act, "snapshot"))
		return post_snapshot(d, c, v, q);
	if (!strcmp(act, "restore"))
		return post_restore(d, c, v, q);
	if (!strcmp(act, "clone"))
		return post_clone(d, c, v, q);
	if (!strcmp(act, "migrate"))
		return post_migrate(d, c, v, q);
	if (!strcmp(act, "stop")) {
		static const char *const keys[] = {"timeout", NULL};
		long timeout = STOP_TIMEOUT_DEFAULT;
		int forced;
		json_t *j = httpd_body_object(q->len ? q->body : "{}", q->len ? q->len : 2, keys, why, sizeof(why));
		if (!j || get_int(j, "timeout", 0, STOP_TIMEOUT_MAX, &timeout, why, sizeof(why)) < 0) {
			json_decref(j);
			return httpd_fault(c, 400, "%s", why);
		}
		json_decref(j);
		int r = dvm_stop(d, v, (int)timeout, &forced);
		if (r == -ESRCH)
			return httpd_fault(c, 409, "VM '%s' is not running", v->name);
		if (r < 0)
			return httpd_fault(c, 500, "VM '%s': its process does not end", v->name);
		return httpd_reply(c, 200,
				   json_pack("{s:s,s:b,s:s}", "name", v->name, "forced", forced, "reason", v->reason));
	}
	if (q->len)
		return httpd_fault(c, 400, "POST /vms/%s/%s takes no body", v->name, act);
	if (!strcmp(act, "start")) {
		if (dvm_alive(d, v, 0))
			return httpd_fault(c, 409, "VM '%s' is running already", v->name);
		if (dvm_spawn(d, v, NULL, 0, why, sizeof(why)) < 0)
			return httpd_fault(c, 400, "VM '%s' does not start: %s", v->name, why);
		return httpd_reply(c, 200, vm_summary(d, v));
	}
	if (!strcmp(act, "pause"))
		return vm_api_action(d, c, v, "PATCH", "/vm", "{\"state\":\"Paused\"}");
	if (!strcmp(act, "resume"))
		return vm_api_action(d, c, v, "PATCH", "/vm", "{\"state\":\"Resumed\"}");
	if (!strcmp(act, "reboot"))
		return vm_api_action(d, c, v, "PUT", "/actions", "{\"action_type\":\"SendCtrlAltDel\"}");
	return httpd_fault(c, 404,
			   "no action '%.32s' (start, stop, pause, resume, reboot, snapshot, restore, clone, migrate)",
			   act);
}

/* spec (a --net spec) with its rate options replaced by tx's and rx's
 * (backend/net.h): a new string, or NULL when out of memory. */
static char *net_spec_with_rates(const char *spec, const struct rate_cfg *tx, const struct rate_cfg *rx)
{
	size_t cap = strlen(spec) + 256;
	char *out = malloc(cap), f[2][112];
	if (!out)
		return NULL;
	size_t n = 0;
	for (const char *p = spec; *p;) {
		size_t l = strcspn(p, ",");
		int rate = (!strncmp(p, "tx_", 3) || !strncmp(p, "rx_", 3)) &&
			   (!strncmp(p + 3, "bw=", 3) || !strncmp(p + 3, "ops=", 4));
		if (!rate && n + l + 2 < cap)
			n += (size_t)snprintf(out + n, cap - n, "%s%.*s", n ? "," : "", (int)l, p);
		p += l + (p[l] == ',');
	}
	rate_cfg_format(tx, f[0], sizeof(f[0]));
	rate_cfg_format(rx, f[1], sizeof(f[1]));
	for (int dir = 0; dir < 2; dir++)
		for (char *save = NULL, *o = strtok_r(f[dir], ",", &save); o; o = strtok_r(NULL, ",", &save))
			n += (size_t)snprintf(out + n, cap - n, ",%s%s", dir ? "rx_" : "tx_", o);
	return out;
}

/* PATCH /vms/{name}: new limits (the keys given replace the definition's),
 * disk rate limits ("disks": [{"index", "rate_limiter"}]) and NIC rate
 * limits ("nets": [{"index", "rx_rate_limiter", "tx_rate_limiter"}]).
 * Everything is checked first; a running VM gets them at once (its
 * cgroups, then its control API's PATCH /drives and /network-interfaces);
 * then the definition is written, so a restart keeps them. */
static enum MHD_Result patch_vm_limits(struct daemon *d, struct MHD_Connection *c, struct dvm *v, struct dreq *q)
{
	static const char *const keys[] = {"limits", "disks", "nets", NULL};
	char why[600], file[PATH_MAX];
	struct oci_resources res;
	json_t *j = httpd_body_object(q->body, q->len, keys, why, sizeof(why));
	if (!j)
		return httpd_fault(c, 400, "%s", why);
	enum MHD_Result r;
	json_t *def = json_deep_copy(v->def), *config = def ? json_object_get(def, "config") : NULL;
	json_t *jl = json_object_get(j, "limits"), *jd = json_object_get(j, "disks"), *jn = json_object_get(j, "nets");
	json_t *cdisks = json_object_get(config, "disks"), *cnets = json_object_get(config, "nets");
	if (!def || !config) {
		r = httpd_fault(c, 500, "out of memory");
		goto out;
	}
	/* ---- check, into def ---- */
	if (jl) {
		json_t *l = json_object_get(def, "limits");
		if (!json_is_object(jl)) {
			r = httpd_fault(c, 400, "'limits' must be an object");
			goto out;
		}
		if (!l) {
			l = json_object();
			json_object_set_new(def, "limits", l);
		}
		json_object_update(l, jl);
		if (check_limits(l, &res, why, sizeof(why)) < 0) {
			r = httpd_fault(c, 400, "%s", why);
			goto out;
		}
	}
	struct rate_cfg drate[VM_MAX_DISKS], ntx[VM_MAX_NETS], nrx[VM_MAX_NETS];
	int dset[VM_MAX_DISKS] = {0}, nset[VM_MAX_NETS] = {0};
	for (int kind = 0; kind < 2; kind++) {
		json_t *list = kind ? jn : jd, *e;
		const char *what = kind ? "nets" : "disks";
		size_t max = json_array_size(kind ? cnets : cdisks), i;
		if (list && !json_is_array(list)) {
			r = httpd_fault(c, 400, "'%s' must be an array of objects with an 'index'", what);
			goto out;
		}
		json_array_foreach(list, i, e)
		{
			const char *key;
			json_t *val, *ix = json_object_get(e, "index");
			if (!json_is_object(e) || !json_is_integer(ix) || json_integer_value(ix) < 0 ||
			    (size_t)json_integer_value(ix) >= max) {
				r = httpd_fault(c, 400, "'%s[%zu]': needs an 'index' of one of the VM's %zu %s", what,
						i, max, what);
				goto out;
			}
			size_t k = (size_t)json_integer_value(ix);
			if (kind ? nset[k] : dset[k]) {
				r = httpd_fault(c, 400, "'%s[%zu]': index %zu is given twice", what, i, k);
				goto out;
			}
			struct rate_cfg none = {0};
			if (kind) {
				/* a limit not given becomes none, as in the VM's API */
				ntx[k] = nrx[k] = none;
				nset[k] = 1;
			} else {
				drate[k] = none;
				dset[k] = 1;
			}
			json_object_foreach(e, key, val)
			{
				char w[64];
				sfmt(w, sizeof(w), "%s[%zu].%.24s", what, i, key);
				struct rate_cfg *dst = !strcmp(key, "index")			 ? NULL
						       : !kind && !strcmp(key, "rate_limiter")	 ? &drate[k]
						       : kind && !strcmp(key, "tx_rate_limiter") ? &ntx[k]
						       : kind && !strcmp(key, "rx_rate_limiter") ? &nrx[k]
												 : &none;
				if (dst == &none) {
					r = httpd_fault(c, 400, "unknown key '%s' (known: index, %s)", w,
							kind ? "rx_rate_limiter, tx_rate_limiter" : "rate_limiter");
					goto out;
				}
				if (dst && vm_rate_from_json(val, w, dst, why, sizeof(why)) < 0) {
					r = httpd_fault(c, 400, "%s", why);
					goto out;
				}
			}
			if (kind) {
				const char *spec = json_string_value(json_array_get(cnets, k));
				char *ns = spec ? net_spec_with_rates(spec, &ntx[k], &nrx[k]) : NULL;
				if (!ns || json_array_set_new(cnets, k, json_string(ns)) < 0) {
					free(ns);
					r = httpd_fault(c, 500, "out of memory");
					goto out;
				}
				free(ns);
			} else {
				json_t *dk = json_array_get(cdisks, k);
				if (rate_cfg_unlimited(&drate[k]))
					json_object_del(dk, "rate_limiter");
				else
					json_object_set_new(dk, "rate_limiter", vm_rate_to_json(&drate[k]));
			}
		}
	}
	/* ---- apply to the running VM ---- */
	if (dvm_alive(d, v, 0)) {
		if (jl) {
			json_t *old = v->def;
			v->def = def;
			int e = dvm_rlimits(v, jl, why, sizeof(why));
			if (e == 0)
				e = dvm_cgroups(d, v, why, sizeof(why));
			v->def = old;
			if (e < 0) {
				r = httpd_fault(c, 409, "VM '%s': %s", v->name, why);
				goto out;
			}
			char runp[PATH_MAX];
			vm_file(d, v->name, "run.json", runp);
			json_t *run =
				json_pack("{s:i,s:I}", "pid", (int)v->pid, "start_time", (json_int_t)v->start_time);
			if (run && v->cgroups)
				json_object_set(run, "cgroups", v->cgroups);
			if (run)
				write_json(runp, run);
			json_decref(run);
		}
		for (int kind = 0; kind < 2; kind++)
			for (unsigned k = 0; k < (kind ? VM_MAX_NETS : VM_MAX_DISKS); k++) {
				if (!(kind ? nset[k] : dset[k]))
					continue;
				char path[48], *body, *ans = NULL, msg[600];
				sfmt(path, sizeof(path), kind ? "/network-interfaces/%u" : "/drives/%u", k);
				json_t *b = kind ? json_pack("{s:o,s:o}", "tx_rate_limiter", vm_rate_to_json(&ntx[k]),
							     "rx_rate_limiter", vm_rate_to_json(&nrx[k]))
						 : json_pack("{s:o}", "rate_limiter", vm_rate_to_json(&drate[k]));
				body = b ? json_dumps(b, JSON_COMPACT) : NULL;
				json_decref(b);
				int status = 0;
				int e = body ? dvm_call(d, v, "PATCH", path, body, &status, &ans, why, sizeof(why))
					     : -ENOMEM;
				free(body);
				if (e < 0 || status != 204) {
					vm_api_message(ans, msg, sizeof(msg));
					free(ans);
					r = httpd_fault(c, 502, "VM '%s': %s %s: %s", v->name, "PATCH", path,
							e < 0 ? why : msg);
					goto out;
				}
				free(ans);
			}
	}
	/* ---- keep them ---- */
	vm_file(d, v->name, "vm.json", file);
	int e = write_json(file, def);
	if (e < 0) {
		r = httpd_fault(c, 500, "cannot write the definition: %s", strerror(-e));
		goto out;
	}
	json_decref(v->def);
	v->def = def;
	def = NULL;
	logf_("VM '%s': limits changed", v->name);
	r = get_vm(d, c, v);
out:
	json_decref(def);
	json_decref(j);
	return r;
}

static enum MHD_Result route(struct daemon *d, struct MHD_Connection *c, const char *url, const char *method,
			     struct dreq *q)
{
	int get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
	if (!strcmp(url, "/")) {
		if (!get)
			return httpd_fault(c, 405, "%.16s is not a method of /", method);
		return httpd_reply(c, 200,
				   json_pack("{s:s,s:i,s:s}", "corrald_version", CORRAL_VERSION, "vms", (int)d->nvms,
					     "incoming_socket", d->incoming_sock));
	}
	if (!strcmp(url, "/metrics")) {
		if (!get)
			return httpd_fault(c, 405, "%.16s is not a method of /metrics", method);
		return get_metrics(d, c);
	}
	if (!strcmp(url, "/vms")) {
		if (get)
			return get_vms(d, c);
		if (post)
			return post_vms(d, c, q);
		return httpd_fault(c, 405, "%.16s is not a method of /vms", method);
	}
	if (strncmp(url, "/vms/", 5))
		return httpd_fault(c, 404, "no resource %.64s (see docs/corrald.yaml)", url);
	char name[CORRALD_NAME_MAX + 2];
	const char *rest = url + 5, *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	if (n > CORRALD_NAME_MAX)
		return httpd_fault(c, 404, "no VM named '%.64s...'", rest);
	memcpy(name, rest, n);
	name[n] = 0;
	struct dvm *v = corrald_name_ok(name) ? find_vm(d, name) : NULL;
	if (!v)
		return httpd_fault(c, 404, "no VM named '%.64s'", name);
	if ((v->incoming || v->migrating) && !get)
		return httpd_fault(c, 409, "VM '%s' is %s by live migration: wait until it ends", v->name,
				   v->incoming ? "arriving" : "leaving");
	if (!slash) {
		if (get)
			return get_vm(d, c, v);
		if (del)
			return delete_vm(d, c, v);
		if (!strcmp(method, "PATCH"))
			return patch_vm_limits(d, c, v, q);
		return httpd_fault(c, 405, "%.16s is not a method of /vms/{name}", method);
	}
	const char *act = slash + 1;
	if (!strcmp(act, "console")) {
		if (post)
			return post_console(d, c, v, q);
		if (!get)
			return httpd_fault(c, 405, "%.16s is not a method of /vms/{name}/console", method);
		return get_console(d, c, v);
	}
	if (!strcmp(act, "balloon") || !strcmp(act, "balloon/statistics"))
		return vm_balloon(d, c, v, act, method, q);
	if (!post)
		return httpd_fault(c, 405, "%.16s is not a method of /vms/{name}/%.32s", method, act);
	return vm_action(d, c, v, act, q);
}

/* The peer may use corrald: root, corrald's own user, or a member of the
 * corral group (its groups read from /proc/PID/status). */
static int peer_allowed(struct daemon *d, uid_t uid, pid_t pid)
{
	if (uid == 0 || uid == geteuid())
		return 1;
	if (d->group == (gid_t)-1 || pid <= 0)
		return 0;
	char path[64], line[1024];
	sfmt(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	int ok = 0;
	while (f && !ok && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Groups:", 7))
			continue;
		for (char *p = line + 7, *end; *p; p = end) {
			unsigned long g = strtoul(p, &end, 10);
			if (end == p)
				break;
			ok |= (gid_t)g == d->group;
		}
	}
	if (f)
		fclose(f);
	return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	(void)version;
	struct daemon *d = cls;
	struct dreq *q = *con_cls;
	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		*con_cls = q;
		const union MHD_ConnectionInfo *ci =
			httpd_mhd.get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0) {
			q->uid = cred.uid;
			q->pid = cred.pid;
			q->denied = !peer_allowed(d, cred.uid, cred.pid);
		} else {
			q->denied = 1;
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (q->len + *upload_size > sizeof(q->body))
			q->too_big = 1;
		else
			memcpy(q->body + q->len, upload, *upload_size);
		q->len += q->too_big ? 0 : *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	logf_("uid %u pid %d: %.16s %.200s%s", (unsigned)q->uid, (int)q->pid, method, url,
	      q->denied ? " (refused)" : "");
	if (q->denied)
		return httpd_fault(c, 403, "uid %u may not use corrald (root or the corral group may)",
				   (unsigned)q->uid);
	if (q->too_big)
		return httpd_fault(c, 413, "the body is larger than %d bytes", API_BODY_MAX);
	pthread_mutex_lock(&d->lock);
	enum MHD_Result r = route(d, c, url, method, q);
	pthread_mutex_unlock(&d->lock);
	return r;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

/* ---- The daemon ---- */

static int mkdir_p(const char *path, mode_t mode)
{
	char p[PATH_MAX];
	sfmt(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return mkdir(p, mode) < 0 && errno != EEXIST ? -errno : 0;
}

/* The listening socket: systemd's (LISTEN_FDS) or our own at path. */
static int listen_socket(struct daemon *d, const char *path, int *activated)
{
	const char *lp = getenv("LISTEN_PID"), *lf = getenv("LISTEN_FDS");
	*activated = 0;
	if (lp && lf && strtol(lp, NULL, 10) == getpid() && strtol(lf, NULL, 10) == 1) {
		struct sockaddr_un sa = {0};
		socklen_t sl = sizeof(sa) - 1;
		*activated = 1;
		fcntl(3, F_SETFD, FD_CLOEXEC);
		/* the group systemd cannot give when it may not exist */
		if (d->group != (gid_t)-1 && getsockname(3, (struct sockaddr *)&sa, &sl) == 0 && sa.sun_path[0] &&
		    chown(sa.sun_path, (uid_t)-1, d->group) < 0)
			logf_("'%s': chown to the corral group: %s", sa.sun_path, strerror(errno));
		return 3;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		logf_("--socket '%s': longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	char dir[PATH_MAX];
	sfmt(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir_p(dir, 0755);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		logf_("--socket '%s': another corrald serves it", path);
		close(fd);
		return -1;
	}
	unlink(path); /* a stale socket of a corrald that ended */
	mode_t old = umask(0117);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 64) < 0) {
		logf_("--socket '%s': %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (d->group != (gid_t)-1 && chown(path, (uid_t)-1, d->group) < 0)
		logf_("--socket '%s': chown to the corral group: %s", path, strerror(errno));
	chmod(path, 0660);
	return fd;
}

/* Where VMs migrated from other corralds arrive: STATE/incoming.sock
 * (bound through a descriptor of the directory, its path may be long),
 * and --incoming's TCP address. 0, or -1 with err. */
static int incoming_listen(struct daemon *d, char *err, size_t errlen)
{
	char state[PATH_MAX];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	d->incoming_fd[0] = d->incoming_fd[1] = -1;
	sfmt(state, sizeof(state), "%s", d->vms_dir);
	*strrchr(state, '/') = 0; /* vms_dir is STATE/vms */
	sfmt(d->incoming_sock, sizeof(d->incoming_sock), "%s/incoming.sock", state);
	int dfd = open(state, O_PATH | O_DIRECTORY | O_CLOEXEC);
	sfmt(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/incoming.sock", dfd);
	unlink(d->incoming_sock);
	int fd = dfd < 0 ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	mode_t old = umask(0117);
	int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 4) < 0) {
		sfmt(err, errlen, "'%s': %s", d->incoming_sock, strerror(errno));
		if (fd >= 0)
			close(fd);
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	close(dfd);
	if (d->group != (gid_t)-1 && chown(d->incoming_sock, (uid_t)-1, d->group) < 0)
		logf_("'%s': chown to the corral group: %s", d->incoming_sock, strerror(errno));
	d->incoming_fd[0] = fd;
	if (!d->o->incoming)
		return 0;
	/* tcp:ADDR:PORT */
	char host[256];
	const char *h = d->o->incoming + 4, *colon = strrchr(h, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
	if (!colon || (size_t)(colon - h) >= sizeof(host)) {
		sfmt(err, errlen, "--incoming '%s': not tcp:ADDR:PORT", d->o->incoming);
		return -1;
	}
	memcpy(host, h, (size_t)(colon - h));
	host[colon - h] = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	int g = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
	if (g || !ai) {
		sfmt(err, errlen, "--incoming '%s': %s", d->o->incoming, gai_strerror(g));
		return -1;
	}
	int one = 1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4) < 0) {
		sfmt(err, errlen, "--incoming '%s': %s", d->o->incoming, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	d->incoming_fd[1] = fd;
	return 0;
}

static struct daemon the_daemon;

int corrald_serve(const struct corrald_opts *o)
{
	struct daemon *d = &the_daemon;
	char images[PATH_MAX], lerr[256];
	int activated;
	memset(d, 0, sizeof(*d));
	d->o = o;
	pthread_mutex_init(&d->lock, NULL);
	struct group *g = getgrnam("corral");
	d->group = g ? g->gr_gid : (gid_t)-1;
	ssize_t n = readlink("/proc/self/exe", d->self_exe, sizeof(d->self_exe) - 1);
	if (n <= 0) {
		logf_("cannot find its own executable: %s", strerror(errno));
		return 1;
	}
	d->self_exe[n] = 0;
	if (mkdir_p(o->state_dir, 0700) < 0 || !realpath(o->state_dir, d->vms_dir)) {
		logf_("--state-dir '%s': %s", o->state_dir, strerror(errno));
		return 1;
	}
	sfmt(images, sizeof(images), "%s/images", d->vms_dir);
	sfmt(d->kcache, sizeof(d->kcache), "%s/kernels", d->vms_dir);
	if (mkdir(d->kcache, 0755) < 0 && errno != EEXIST) {
		logf_("'%s': %s: no kernel cache", d->kcache, strerror(errno));
		d->kcache[0] = 0;
	}
	size_t sl = strlen(d->vms_dir);
	sfmt(d->vms_dir + sl, sizeof(d->vms_dir) - sl, "/vms");
	if (mkdir_p(d->vms_dir, 0700) < 0) {
		logf_("'%s': %s", d->vms_dir, strerror(errno));
		return 1;
	}
	d->cg_version = vmcg_detect(o->cgroup ? o->cgroup : "auto", d->cg_root, sizeof(d->cg_root), lerr, sizeof(lerr));
	if (d->cg_version < 0) {
		logf_("%s", lerr);
		return 1;
	}
	if (!o->nimage_dirs)
		mkdir_p(images, 0700);
	for (unsigned k = 0; k < (o->nimage_dirs ? o->nimage_dirs : 1); k++) {
		const char *dir = o->nimage_dirs ? o->image_dir[k] : images;
		if (!realpath(dir, d->image_dir[k])) {
			logf_("--image-dir '%s': %s", dir, strerror(errno));
			return 1;
		}
		d->nimage_dirs++;
	}

	/* Signals come to this thread alone, by sigtimedwait. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	load_vms(d);
	int fd = listen_socket(d, o->socket, &activated);
	if (fd < 0)
		return 1;
	if (httpd_load(lerr, sizeof(lerr)) < 0) {
		logf_("%s", lerr);
		close(fd);
		return 1;
	}
	pthread_t inthr;
	if (incoming_listen(d, lerr, sizeof(lerr)) < 0 || pthread_create(&inthr, NULL, incoming_thread, d) != 0) {
		logf_("%s", lerr[0] ? lerr : "cannot start the incoming thread");
		close(fd);
		return 1;
	}
	struct MHD_Daemon *mhd = httpd_mhd.start_daemon(
		/* a thread per connection: a request that takes long without the
		 * daemon's lock (POST /vms/{name}/migrate) holds up no other */
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, 0, NULL, NULL, handle,
		d, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
		MHD_OPTION_END);
	if (!mhd) {
		logf_("cannot start the HTTP server on '%s'", o->socket);
		close(fd);
		return 1;
	}
	logf_("serving %s (state in %s, %u VMs, cgroup v%d%s%s)", activated ? "the socket systemd passed" : o->socket,
	      o->state_dir, d->nvms, d->cg_version, d->cg_root[0] ? " at " : "", d->cg_root);
	int sig = 0;
	unsigned rounds = 0;
	while (sig != SIGTERM && sig != SIGINT) {
		struct timespec ts = {0, 500000000};
		sig = sigtimedwait(&set, NULL, &ts);
		pthread_mutex_lock(&d->lock);
		for (unsigned k = 0; k < d->nvms; k++) {
			struct dvm *v = d->vm[k];
			if (v->incoming) {
				if (incoming_check(d, v))
					break; /* the table changed: the rest next round */
				continue;
			}
			if (v->pid && !dvm_alive(d, v, 0))
				logf_("VM '%s' ended: %s", v->name, v->reason);
		}
		if (o->balloon_policy && ++rounds % (2 * POLICY_INTERVAL_S) == 0)
			balloon_policy_round(d);
		pthread_mutex_unlock(&d->lock);
	}
	logf_("%s: stopping; the VMs run on", strsignal(sig));
	httpd_mhd.stop_daemon(mhd);
	d->stopping = 1;
	pthread_join(inthr, NULL);
	for (int k = 0; k < 2; k++)
		if (d->incoming_fd[k] >= 0)
			close(d->incoming_fd[k]);
	unlink(d->incoming_sock);
	close(fd);
	if (!activated)
		unlink(o->socket);
	for (unsigned k = d->nvms; k-- > 0;) {
		json_decref(d->vm[k]->cgroups);
		json_decref(d->vm[k]->def);
		free(d->vm[k]);
	}
	d->nvms = 0;
	return 0;
}
