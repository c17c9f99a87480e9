/* A VM process: corrald starts one per running VM (corrald --vm-process
 * DIR). It reads DIR/vm.json, locks itself in its jail (jail.h: DIR/vm and
 * the VM's images are all it sees), builds the VM (or restores a
 * snapshot), keeps the console in DIR/vm/console.log, serves the VM's
 * control API on DIR/vm/api.sock, drops to the VM's uid under seccomp,
 * runs the guest and, when it ends, writes why to DIR/vm/exit. With
 * --incoming it builds the VM from a live migration's stream instead. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/httpd.h"
#include "backend/net.h"
#include "boot/boot.h"
#include "cli/cli.h"
#include "daemon/daemon.h"
#include "daemon/jail.h"
#include "vm/migrate.h"
#include "vm/vm.h"

/* The VM SIGTERM stops (one per VM process). */
static struct vm *volatile proc_vm;
static volatile sig_atomic_t proc_signal;

static void on_stop(int sig)
{
	proc_signal = sig;
	struct vm *vm = proc_vm;
	if (vm)
		vm_stop_async(vm);
}

static void proc_log(void *opaque, const char *line)
{
	(void)opaque;
	fprintf(stderr, "corrald: vm: %s\n", line);
}

/* DIR/exit, written whole or not at all: one line saying why the VM ended. */
static void write_exit(const char *why)
{
	FILE *f = fopen("exit.tmp", "w");
	if (!f)
		return;
	fprintf(f, "%s\n", why);
	if (fflush(f) == 0 && fsync(fileno(f)) == 0 && fclose(f) == 0)
		rename("exit.tmp", "exit");
	else
		unlink("exit.tmp");
}

static void describe_end(const struct vm_exit *ex, struct vm *vm, char *why, size_t len)
{
	switch (ex->end) {
	case VM_END_POWER_OFF: snprintf(why, len, "the guest powered off"); break;
	case VM_END_RESET: snprintf(why, len, "the guest reset (no_reboot)"); break;
	case VM_END_TRIPLE_FAULT:
		snprintf(why, len, "guest triple fault at rip 0x%" PRIx64 " (vCPU %u)", ex->rip, ex->cpu);
		break;
	case VM_END_HUNG: snprintf(why, len, "every vCPU halted with nothing to wake them"); break;
	case VM_END_QUIT: snprintf(why, len, "stopped"); break;
	case VM_END_EXIT_DEVICE: snprintf(why, len, "the guest wrote to isa-debug-exit (status %u)", ex->status); break;
	default:
		if (ex->msg[0])
			snprintf(why, len, "%s", ex->msg);
		else
			snprintf(why, len, "the %s engine failed: %s", vm_engine_name(vm),
				 strerror(ex->err ? -ex->err : EINVAL));
		break;
	}
}

/* The console's input: DIR/vm/console.sock, a unix socket corrald writes
 * what `corral vm console` types into (one writer at a time; bytes wait
 * here while the guest's UART is full). Polled on the VM's thread. */
struct console_in {
	struct vm *vm;
	int lfd, cfd; /* listening; the writer, or -1 */
	size_t len;
	uint8_t buf[4096];
};

static int console_poll(void *opaque, const int *wake, unsigned nwake, int timeout_ms)
{
	struct console_in *ci = opaque;
	if (ci->vm && ci->len) {
		size_t n = vm_console_input(ci->vm, ci->buf, ci->len);
		memmove(ci->buf, ci->buf + n, ci->len - n);
		ci->len -= n;
	}
	int room = ci->len < sizeof(ci->buf);
	if (ci->len && (timeout_ms < 0 || timeout_ms > 20))
		timeout_ms = 20; /* the guest is taking what waits: look again soon */
	struct pollfd p[3] = {{.fd = room ? (ci->cfd >= 0 ? ci->cfd : ci->lfd) : -1, .events = POLLIN}};
	unsigned np = 1;
	for (unsigned k = 0; k < nwake && np < 3; k++)
		p[np++] = (struct pollfd){.fd = wake[k], .events = POLLIN};
	if (poll(p, np, timeout_ms) <= 0 || !p[0].revents)
		return 0;
	if (ci->cfd < 0) {
		ci->cfd = accept4(ci->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		return 0;
	}
	ssize_t n = read(ci->cfd, ci->buf + ci->len, sizeof(ci->buf) - ci->len);
	if (n > 0) {
		ci->len += (size_t)n;
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		close(ci->cfd);
		ci->cfd = -1;
	}
	return 0;
}

static int console_listen(char *err, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = "console.sock"};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	unlink("console.sock");
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		snprintf(err, len, "the console's socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Adds path to the jail's files (a Multiboot initrd "A,B" is its modules). */
static void jail_add(struct jail_spec *j, const char *path, int readonly)
{
	if (!path || j->nfiles == JAIL_MAX_FILES)
		return;
	if (access(path, F_OK) < 0 && strchr(path, ',')) {
		char *copy = strdup(path), *save = NULL;
		for (char *p = copy ? strtok_r(copy, ",", &save) : NULL; p; p = strtok_r(NULL, ",", &save))
			jail_add(j, strdup(p), readonly); /* lives as long as the process */
		free(copy);
		return;
	}
	for (unsigned k = 0; k < j->nfiles; k++) {
		if (!strcmp(j->file[k], path)) {
			/* one file twice (a flat image that is also a disk): bound once,
			 * writable if either use writes it */
			j->readonly[k] &= readonly;
			return;
		}
	}
	j->file[j->nfiles] = path;
	j->readonly[j->nfiles++] = readonly;
}

int corrald_vm_process(const char *dir, const char *restore, int incoming, const char *kcache)
{
	char err[512], why[600], vmdir[PATH_MAX];
	if (chdir(dir) < 0 || (size_t)snprintf(vmdir, sizeof(vmdir), "%s/vm", dir) >= sizeof(vmdir)) {
		fprintf(stderr, "corrald: vm: '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	json_error_t je;
	json_t *def = json_load_file("vm.json", JSON_REJECT_DUPLICATES, &je);
	if (chdir("vm") < 0) {
		fprintf(stderr, "corrald: vm: '%s': %s\n", vmdir, strerror(errno));
		json_decref(def);
		return 1;
	}
	unlink("exit");
	json_t *jc = def ? json_object_get(def, "config") : NULL;
	json_int_t uid = def ? json_integer_value(json_object_get(def, "uid")) : 0;
	char name[CORRALD_NAME_MAX + 1];
	snprintf(name, sizeof(name), "%s", def ? json_string_value(json_object_get(def, "name")) ?: "" : "");
	json_t *lim = def ? json_object_get(def, "limits") : NULL;
	json_int_t nofile = json_integer_value(json_object_get(lim, "nofile"));
	json_int_t nproc = json_integer_value(json_object_get(lim, "pids_max"));
	char *text = jc ? json_dumps(jc, JSON_COMPACT) : NULL;
	if (!text || uid < CORRALD_UID_BASE) {
		snprintf(why, sizeof(why), "'%s/vm.json': no configuration or uid in it: %s", dir, def ? "" : je.text);
		fprintf(stderr, "corrald: vm: %s\n", why);
		write_exit(why);
		free(text);
		json_decref(def);
		return 1;
	}
	struct vm_config c;
	void *strings = NULL;
	int r = vm_config_from_json(text, strlen(text), &c, &strings, err, sizeof(err));
	free(text);
	json_decref(def);
	if (r < 0) {
		snprintf(why, sizeof(why), "the configuration: %s", err);
		fprintf(stderr, "corrald: vm: %s\n", why);
		write_exit(why);
		return 1;
	}
	int jailed = geteuid() == 0;
	/* open files: the soft and the hard limit, so the VM cannot raise it */
	struct rlimit rl = {.rlim_cur = (rlim_t)(nofile ? nofile : CORRALD_NOFILE_DEFAULT)};
	rl.rlim_max = rl.rlim_cur;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		snprintf(why, sizeof(why), "its open-file limit %llu: %s", (unsigned long long)rl.rlim_cur,
			 strerror(errno));
		fprintf(stderr, "corrald: vm: %s\n", why);
		write_exit(why);
		free(strings);
		return 1;
	}
	/* The host side is corrald's: the console goes to a log, nobody types. */
	c.serial_path = "console.log";
	c.serial_fd = -1;
	c.log = proc_log;
	static struct console_in con = {.lfd = -1, .cfd = -1};
	c.poll_input = console_poll;
	c.input_opaque = &con;
	cpu_opts_from_env(&c.cpu_opts);
	char guest_dir[PATH_MAX], kernel_cache[PATH_MAX];
	if (boot_dirs_from_env(guest_dir, kernel_cache, sizeof(guest_dir)) == 0) {
		c.guest_dir = guest_dir;
		/* the jail has no kernel cache to write to */
		c.kernel_cache = kernel_cache[0] && !jailed ? kernel_cache : NULL;
	}
	/* corrald's, which corrald fills: read-only here */
	if (kcache && kcache[0])
		c.kernel_cache = kcache;
	if (jailed) {
		/* The libraries loaded on demand are loaded now: the jail's root
		 * holds only the VM's own files. */
		if (httpd_load(err, sizeof(err)) < 0) {
			fprintf(stderr, "corrald: vm: %s\n", err);
			write_exit(err);
			free(strings);
			return 1;
		}
		for (unsigned k = 0; k < c.nnets; k++)
			if (net_preload(c.net[k], err, sizeof(err)) < 0) {
				fprintf(stderr, "corrald: vm: %s\n", err);
				write_exit(err);
				free(strings);
				return 1;
			}
		/* in its jail before any thread starts, and before it opens any image */
		struct jail_spec j = {.dir = vmdir, .keep_net = c.nnets > 0};
		jail_add(&j, c.kernel, 1);
		jail_add(&j, c.initrd, 1);
		if (c.kernel && c.kernel_cache)
			jail_add(&j, c.kernel_cache, 1);
		jail_add(&j, c.flat, 1);
		if (!c.kernel && !c.flat && c.guest_dir)
			jail_add(&j, c.guest_dir, 1);
		for (unsigned k = 0; k < c.ndisks; k++)
			jail_add(&j, c.disk[k].path, c.disk[k].readonly);
		/* the snapshot lies in a directory a VM may write: it must be
		 * itself, not a link planted to reach a host directory */
		char real[PATH_MAX];
		if (restore && (!realpath(restore, real) || strcmp(real, restore))) {
			snprintf(why, sizeof(why), "snapshot '%s': not a directory of its own", restore);
			fprintf(stderr, "corrald: vm: %s\n", why);
			write_exit(why);
			free(strings);
			return 1;
		}
		jail_add(&j, restore, 1);
		if (jail_enter(&j, err, sizeof(err)) < 0) {
			fprintf(stderr, "corrald: vm: %s\n", err);
			write_exit(err);
			free(strings);
			return 1;
		}
	} else {
		fprintf(stderr, "corrald: vm: not jailed: corrald does not run as root\n");
	}

	struct sigaction sa = {.sa_handler = on_stop};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);

	struct vm *vm;
	struct api *api = NULL;
	/* An incoming VM waits on DIR/vm/incoming.sock for its migration
	 * stream, which corrald relays from the source's corrald (the jail
	 * has no network); the stream is hostile input and is checked as
	 * such (migrate.h). */
	r = incoming  ? vm_incoming("unix:incoming.sock", &c, &vm, err, sizeof(err))
	    : restore ? vm_restore(restore, &c, &vm, err, sizeof(err))
		      : vm_create(&c, &vm, err, sizeof(err));
	free(strings);
	if (r < 0) {
		fprintf(stderr, "corrald: vm: %s\n", err);
		write_exit(err);
		return 1;
	}
	/* arrived: the source has let its VM go, so corrald keeps this one
	 * defined whatever happens to it from here (an end right after the
	 * hand-over is the VM's end, not a failed migration) */
	if (incoming) {
		int afd = open("arrived", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (afd >= 0)
			close(afd);
	}
	con.lfd = console_listen(err, sizeof(err));
	if (con.lfd < 0) {
		fprintf(stderr, "corrald: vm: %s\n", err);
		write_exit(err);
		vm_destroy(vm);
		return 1;
	}
	con.vm = vm;
	unlink("api.sock");
	if (api_start("api.sock", vm, CORRAL_VERSION, &api, err, sizeof(err)) < 0) {
		fprintf(stderr, "corrald: vm: %s\n", err);
		write_exit(err);
		vm_destroy(vm);
		return 1;
	}
	/* tasks: counted per uid, and the uid is this VM's alone */
	rl.rlim_cur = rl.rlim_max = (rlim_t)(nproc ? nproc : CORRALD_NPROC_DEFAULT);
	if (jailed && setrlimit(RLIMIT_NPROC, &rl) < 0) {
		snprintf(err, sizeof(err), "its task limit %llu: %s", (unsigned long long)rl.rlim_cur, strerror(errno));
		fprintf(stderr, "corrald: vm: %s\n", err);
		write_exit(err);
		api_stop(api);
		vm_destroy(vm);
		return 1;
	}
	if (jailed && jail_lock((uid_t)uid, err, sizeof(err)) < 0) {
		fprintf(stderr, "corrald: vm: %s\n", err);
		write_exit(err);
		api_stop(api);
		vm_destroy(vm);
		return 1;
	}
	/* tests/corrald: a forbidden system call from inside the jail, which
	 * must kill the process (the VM named here only) */
	const char *hook = getenv("CORRALD_TEST_FORBIDDEN_SYSCALL");
	if (hook && !strcmp(hook, name)) {
		struct timespec ts = {0, 300000000};
		nanosleep(&ts, NULL);
		syscall(SYS_acct, NULL);
	}
	proc_vm = vm;
	if (proc_signal)
		vm_stop_async(vm);
	struct vm_exit ex;
	vm_run(vm, &ex);
	proc_vm = NULL;
	describe_end(&ex, vm, why, sizeof(why));
	fprintf(stderr, "corrald: vm: %s\n", why);
	api_stop(api);
	write_exit(why);
	vm_destroy(vm);
	int status = ex.end == VM_END_ERROR || ex.end == VM_END_TRIPLE_FAULT || ex.end == VM_END_HUNG ? 1 : 0;
	if (jailed) {
		/* In the jail nothing is left to do at exit, and exit-time work
		 * that traces the process (LeakSanitizer's) is refused by the
		 * filter and would hang the stop until corrald's SIGKILL. */
		fflush(NULL);
		_exit(status);
	}
	return status;
}
