/* `corral vm`: the VMs corrald hosts, from the command line: each command
 * is one or two requests to corrald's API (docs/corrald.yaml), printed as
 * a table or, with --json, as corrald's JSON. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "backend/ratelimit.h"
#include "cli/cli.h"
#include "daemon/daemon.h"
#include "daemon/http.h"
#include "vm/migrate.h"
#include "vm/vm.h"

#define VM_TIMEOUT_MS 330000 /* a stop may wait its timeout (at most 300 s) */

static const char *vm_sock;

static void vm_usage(FILE *f)
{
	fprintf(f,
		"usage: corral vm [--socket PATH] COMMAND [ARGS...]\n\n"
		"Creates and manages the VMs corrald hosts (see corrald(8)).\n\n"
		"commands:\n"
		"  create NAME [--no-start] [--json] [LIMITS...] [corral run's options...]\n"
		"                   define a VM with the options of 'corral run' and start it\n"
		"  set NAME [--json] LIMITS...\n"
		"                   change a VM's limits, at once if it runs (kept for its next start)\n"
		"  ls [--json]      list the VMs: name, state, host pid\n"
		"  start NAME       start a VM\n"
		"  stop NAME [--timeout S] [--force]\n"
		"                   stop a VM: ask, wait up to S seconds (default 10), then kill it\n"
		"  pause NAME, resume NAME, reboot NAME\n"
		"  rm NAME [--force]\n"
		"                   remove a VM and its files (--force: stop it first)\n"
		"  logs NAME        print its console output so far\n"
		"  console NAME     attach to its console: its output so far and what follows,\n"
		"                   and what you type goes to the guest; C-] detaches (the VM\n"
		"                   runs on, the log is kept)\n"
		"  snapshot NAME SNAP, restore NAME SNAP\n"
		"                   save a running VM as SNAP; continue a stopped VM from SNAP\n"
		"  clone NAME [--count N] [--prefix P]\n"
		"                   N new VMs P-1..P-N (default NAME-1..) with NAME's configuration,\n"
		"                   continuing from its state if it runs\n"
		"  migrate NAME DEST [--downtime MS] [--json]\n"
		"                   move a running VM live to another corrald: DEST is its API\n"
		"                   socket or tcp:HOST:PORT where it takes VMs (corrald --incoming);\n"
		"                   the VM stops for at most MS ms (default 300); on failure it\n"
		"                   runs on here\n"
		"  top [--json]     CPU time and memory of each VM\n\n"
		"limits (create and set):\n"
		"  --cpu-weight N   CPU share (2..262144; 1024 is one share)\n"
		"  --cpu-max CPUS   at most this many host CPUs (0.01..1024; 0.5 is half a core)\n"
		"  --cpuset LIST    run on these host CPUs only (\"0-1,3\")\n"
		"  --memory-max SIZE  the VM process's memory, guest RAM included (32M..)\n"
		"  --pids-max N     tasks of the VM process (8..65536)\n"
		"  --nofile N       open files of the VM process (64..1048576; default 4096)\n"
		"  --disk-rate K,bw=SIZE[:MS[:BURST]][,ops=N[:MS[:BURST]]]\n"
		"                   disk K's rate limit (K,none: no limit), as 'corral run --disk'\n"
		"  --net-rate K,[tx_bw=..][,tx_ops=..][,rx_bw=..][,rx_ops=..]\n"
		"                   NIC K's rate limits (K,none: no limits), as 'corral run --net'\n"
		"                   (set only: create takes them in --disk and --net)\n\n"
		"options:\n"
		"  --socket PATH    corrald's socket (default $CORRALD_SOCKET, else %s)\n"
		"  -h, --help       show this help\n",
		CORRALD_SOCKET_DEFAULT);
}

/* One request; 0 with *ans (the caller frees it) if corrald answered 2xx,
 * else 1 after printing why. */
static int call(const char *method, const char *path, const char *body, char **ans)
{
	int status;
	size_t len;
	char err[512], *out = NULL;
	*ans = NULL;
	if (http_call(vm_sock, method, path, body, VM_TIMEOUT_MS, &status, &out, &len, err, sizeof(err)) < 0) {
		fprintf(stderr, "corral: vm: corrald: %s (is corrald running? see --socket)\n", err);
		return 1;
	}
	if (status / 100 != 2) {
		json_t *j = json_loads(out, 0, NULL);
		const char *m = j ? json_string_value(json_object_get(j, "fault_message")) : NULL;
		fprintf(stderr, "corral: vm: %s\n", m ? m : out);
		json_decref(j);
		free(out);
		return 1;
	}
	*ans = out;
	return 0;
}

static int call_print(const char *method, const char *path, const char *body)
{
	char *ans;
	int r = call(method, path, body, &ans);
	if (r == 0 && ans[0])
		printf("%s\n", ans);
	free(ans);
	return r;
}

static int name_arg(int argc, char **argv, int k, const char *what)
{
	if (k >= argc) {
		fprintf(stderr, "corral: vm %s: give the %s (see 'corral vm --help')\n", argv[0], what);
		return -1;
	}
	if (!corrald_name_ok(argv[k])) {
		fprintf(stderr, "corral: vm %s: '%s' is not a name: letters, digits, '-', '_', '.', no '..'\n", argv[0],
			argv[k]);
		return -1;
	}
	return 0;
}

static void print_size(uint64_t b, char *out, size_t len)
{
	if (b >= (1ull << 30) && !(b & ((1ull << 30) - 1)))
		snprintf(out, len, "%" PRIu64 "G", b >> 30);
	else if (b >= (1ull << 20))
		snprintf(out, len, "%.1fM", (double)b / (1 << 20));
	else
		snprintf(out, len, "%" PRIu64 "K", b >> 10);
}

static void print_table(json_t *a)
{
	size_t k;
	json_t *v;
	printf("%-24s %-8s %8s %4s %8s  %s\n", "NAME", "STATE", "PID", "CPUS", "MEM", "NOTE");
	json_array_foreach(a, k, v)
	{
		char mem[32];
		const char *reason = json_string_value(json_object_get(v, "reason"));
		print_size((uint64_t)json_integer_value(json_object_get(v, "mem")), mem, sizeof(mem));
		int pid = (int)json_integer_value(json_object_get(v, "pid"));
		char pids[16];
		snprintf(pids, sizeof(pids), "%d", pid);
		printf("%-24s %-8s %8s %4d %8s  %s\n", json_string_value(json_object_get(v, "name")),
		       json_string_value(json_object_get(v, "state")), pid ? pids : "-",
		       (int)json_integer_value(json_object_get(v, "cpus")), mem, reason ? reason : "");
	}
}

/* Makes the configuration's host paths absolute: corrald resolves none
 * against its own directory. */
static void absolute_path(json_t *o, const char *key)
{
	char real[PATH_MAX];
	const char *p = json_string_value(json_object_get(o, key));
	if (p && p[0] != '/' && realpath(p, real))
		json_object_set_new(o, key, json_string(real));
}

/* One limit option at argv[*k] (its value after it) into req's "limits",
 * "disks" or "nets" (PATCH /vms/{name}'s members): 1 if it was one, 0 if
 * not, -1 after a message. */
static int limit_opt(int argc, char **argv, int *k, json_t *req)
{
	static const char *const opts[] = {"--cpu-weight", "--cpu-max", "--cpuset",    "--memory-max",
					   "--pids-max",   "--nofile",	"--disk-rate", "--net-rate"};
	static const char *const keys[] = {"cpu_weight", "cpu_max", "cpuset", "memory_max", "pids_max", "nofile"};
	unsigned o = 0;
	while (o < sizeof(opts) / sizeof(opts[0]) && strcmp(opts[o], argv[*k]))
		o++;
	if (o == sizeof(opts) / sizeof(opts[0]))
		return 0;
	if (*k + 1 >= argc) {
		fprintf(stderr, "corral: vm %s: %s needs a value (see 'corral vm --help')\n", argv[0], opts[o]);
		return -1;
	}
	const char *val = argv[++*k];
	json_t *limits = json_object_get(req, "limits");
	if (o < 6 && !limits)
		json_object_set_new(req, "limits", limits = json_object());
	char *end;
	errno = 0;
	if (o == 1) {
		double cpus = strtod(val, &end);
		if (errno || *end || end == val || !(cpus >= 0.01 && cpus <= 1024)) {
			fprintf(stderr, "corral: vm %s: --cpu-max '%s': host CPUs from 0.01 to 1024\n", argv[0], val);
			return -1;
		}
		json_object_set_new(limits, keys[o], json_real(cpus));
	} else if (o == 2) {
		json_object_set_new(limits, keys[o], json_string(val));
	} else if (o == 3) {
		uint64_t b;
		if (cli_parse_size(val, 20, &b) < 0 || b > (1ull << 50)) {
			fprintf(stderr, "corral: vm %s: --memory-max '%s': a size such as 256M or 2G\n", argv[0], val);
			return -1;
		}
		json_object_set_new(limits, keys[o], json_integer((json_int_t)b));
	} else if (o < 6) {
		long long n = strtoll(val, &end, 10);
		if (errno || *end || end == val) {
			fprintf(stderr, "corral: vm %s: %s '%s': a number\n", argv[0], opts[o], val);
			return -1;
		}
		json_object_set_new(limits, keys[o], json_integer(n)); /* corrald checks the range */
	} else {
		/* K,OPTION...: the device's index, then corral run's rate options */
		int net = o == 7;
		long long idx = strtoll(val, &end, 10);
		if (errno || end == val || (*end && *end != ',') || idx < 0 ||
		    idx >= (net ? VM_MAX_NETS : VM_MAX_DISKS)) {
			fprintf(stderr, "corral: vm %s: %s '%s': give the %s's index first (0, 1, ...)\n", argv[0],
				opts[o], val, net ? "NIC" : "disk");
			return -1;
		}
		struct rate_cfg rc[2]; /* a disk's; a NIC's tx and rx */
		memset(rc, 0, sizeof(rc));
		char copy[256], err[256];
		snprintf(copy, sizeof(copy), "%s", *end ? end + 1 : "");
		for (char *save = NULL, *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
			int dir = net && !strncmp(opt, "rx_", 3);
			int r = !strcmp(opt, "none") ? 1
				: net && strncmp(opt, "tx_", 3) && strncmp(opt, "rx_", 3)
					? 0
					: rate_cfg_parse_opt(opt + (net ? 3 : 0), &rc[dir], err, sizeof(err));
			if (r <= 0) {
				fprintf(stderr, "corral: vm %s: %s: '%s'%s%s\n", argv[0], opts[o], opt,
					r < 0 ? " " : ": not a rate option", r < 0 ? err : "");
				return -1;
			}
		}
		json_t *list = json_object_get(req, net ? "nets" : "disks");
		if (!list)
			json_object_set_new(req, net ? "nets" : "disks", list = json_array());
		json_t *e = json_pack("{s:I}", "index", (json_int_t)idx);
		if (net) {
			json_object_set_new(e, "tx_rate_limiter", vm_rate_to_json(&rc[0]));
			json_object_set_new(e, "rx_rate_limiter", vm_rate_to_json(&rc[1]));
		} else {
			json_object_set_new(e, "rate_limiter", vm_rate_to_json(&rc[0]));
		}
		json_array_append_new(list, e);
	}
	return 1;
}

/* set NAME LIMITS...: PATCH /vms/NAME */
static int vm_set(int argc, char **argv)
{
	int as_json = 0;
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: corral vm set NAME [--json] LIMITS...\n\n"
		       "Changes the limits of the VM NAME (see 'corral vm --help' for LIMITS): a running\n"
		       "VM gets them at once, and its definition keeps them. Limits not given stay.\n\n"
		       "  --json           print corrald's answer (the VM) as JSON\n");
		return 0;
	}
	if (name_arg(argc, argv, 1, "VM's name") < 0)
		return 2;
	json_t *req = json_object();
	for (int k = 2; k < argc; k++) {
		if (!strcmp(argv[k], "--json")) {
			as_json = 1;
			continue;
		}
		int r = limit_opt(argc, argv, &k, req);
		if (r <= 0) {
			if (r == 0)
				fprintf(stderr, "corral: vm set: unknown option '%s' (see 'corral vm --help')\n",
					argv[k]);
			json_decref(req);
			return 2;
		}
	}
	if (!json_object_size(req)) {
		fprintf(stderr, "corral: vm set: give at least one limit (see 'corral vm --help')\n");
		json_decref(req);
		return 2;
	}
	char path[128], *body = json_dumps(req, JSON_COMPACT), *ans;
	json_decref(req);
	snprintf(path, sizeof(path), "/vms/%s", argv[1]);
	int r = body ? call("PATCH", path, body, &ans) : 1;
	free(body);
	if (r == 0) {
		if (as_json)
			printf("%s\n", ans);
		free(ans);
	}
	return r;
}

static int cmd_vm_create(int argc, char **argv)
{
	int no_start = 0, as_json = 0;
	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	int n = 0;
	if (!rest)
		return 1;
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: corral vm create NAME [--no-start] [--json] [corral run's options...]\n\n"
		       "Defines the VM NAME in corrald with the options of 'corral run' (see\n"
		       "'corral run --help'; not --serial or --api-sock: corrald keeps the console in a\n"
		       "log and serves the VM's API itself) and starts it.\n\n"
		       "  --no-start       only define it\n"
		       "  --json           print corrald's answer as JSON\n"
		       "  LIMITS           --cpu-weight, --cpu-max, --cpuset, --memory-max, --pids-max,\n"
		       "                   --nofile (see 'corral vm --help'); disk and network rate\n"
		       "                   limits are corral run's --disk and --net options\n");
		free(rest);
		return 0;
	}
	if (name_arg(argc, argv, 1, "VM's name") < 0) {
		free(rest);
		return 2;
	}
	rest[n++] = argv[0];
	json_t *lreq = json_object();
	for (int k = 2; k < argc; k++) {
		int lim = 0;
		if (!strcmp(argv[k], "--no-start"))
			no_start = 1;
		else if (!strcmp(argv[k], "--json"))
			as_json = 1;
		else if (strcmp(argv[k], "--disk-rate") && strcmp(argv[k], "--net-rate") &&
			 (lim = limit_opt(argc, argv, &k, lreq)) < 0) {
			free(rest);
			json_decref(lreq);
			return 2;
		} else if (!lim)
			rest[n++] = argv[k];
	}
	char *text = run_config_json(n, rest);
	free(rest);
	json_t *config = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (!config) {
		json_decref(lreq);
		return text ? 1 : 2;
	}
	absolute_path(config, "kernel");
	absolute_path(config, "initrd");
	absolute_path(config, "flat");
	size_t k;
	json_t *disk;
	json_array_foreach(json_object_get(config, "disks"), k, disk) absolute_path(disk, "path");
	json_t *req = json_pack("{s:s,s:o,s:b}", "name", argv[1], "config", config, "start", !no_start);
	if (req && json_object_get(lreq, "limits"))
		json_object_set(req, "limits", json_object_get(lreq, "limits"));
	json_decref(lreq);
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL, *ans;
	json_decref(req);
	if (!body)
		return 1;
	int r = call("POST", "/vms", body, &ans);
	free(body);
	if (r == 0) {
		if (as_json)
			printf("%s\n", ans);
		else
			printf("%s %s\n", argv[1], no_start ? "defined" : "started");
	}
	free(ans);
	return r;
}

static int vm_ls(int argc, char **argv, int top)
{
	int as_json = argc == 2 && !strcmp(argv[1], "--json");
	char *ans;
	if (argc > 1 && !as_json) {
		fprintf(stderr, "corral: vm %s: unexpected argument '%s' (only --json)\n", argv[0], argv[1]);
		return 2;
	}
	if (top) {
		/* the metrics, per VM */
		if (call("GET", "/metrics", NULL, &ans))
			return 1;
		json_t *a = json_object();
		for (char *line = strtok(ans, "\n"); line; line = strtok(NULL, "\n")) {
			char metric[64], name[CORRALD_NAME_MAX + 1], rest[64];
			double val;
			if (line[0] == '#' ||
			    sscanf(line, "%63[a-z_]{vm=\"%64[^\"]\"%63[^}]} %lf", metric, name, rest, &val) < 3)
				if (sscanf(line, "%63[a-z_]{vm=\"%64[^\"]\"} %lf", metric, name, &val) != 3)
					continue;
			json_t *v = json_object_get(a, name);
			if (!v)
				json_object_set_new(a, name, v = json_object());
			if (!strcmp(metric, "corral_vm_state")) {
				const char *st = strstr(line, "state=\"");
				if (st && val == 1) {
					char s[16];
					if (sscanf(st + 7, "%15[a-z]", s) == 1)
						json_object_set_new(v, "state", json_string(s));
				}
			} else if (!strcmp(metric, "corral_vm_cpu_seconds_total")) {
				json_object_set_new(v, "cpu_seconds", json_real(val));
			} else if (!strcmp(metric, "corral_vm_rss_bytes")) {
				json_object_set_new(v, "rss", json_integer((json_int_t)val));
			} else if (!strcmp(metric, "corral_vm_guest_memory_bytes")) {
				json_object_set_new(v, "mem", json_integer((json_int_t)val));
			}
		}
		free(ans);
		if (as_json) {
			char *t = json_dumps(a, JSON_COMPACT);
			printf("%s\n", t ? t : "{}");
			free(t);
		} else {
			const char *name;
			json_t *v;
			printf("%-24s %-8s %10s %10s %10s\n", "NAME", "STATE", "CPU(s)", "RSS", "MEM");
			json_object_foreach(a, name, v)
			{
				char rss[32], mem[32];
				print_size((uint64_t)json_integer_value(json_object_get(v, "rss")), rss, sizeof(rss));
				print_size((uint64_t)json_integer_value(json_object_get(v, "mem")), mem, sizeof(mem));
				printf("%-24s %-8s %10.2f %10s %10s\n", name,
				       json_string_value(json_object_get(v, "state")) ?: "?",
				       json_real_value(json_object_get(v, "cpu_seconds")), rss, mem);
			}
		}
		json_decref(a);
		return 0;
	}
	if (call("GET", "/vms", NULL, &ans))
		return 1;
	if (as_json) {
		printf("%s\n", ans);
	} else {
		json_t *a = json_loads(ans, 0, NULL);
		print_table(a);
		json_decref(a);
	}
	free(ans);
	return 0;
}

static volatile sig_atomic_t console_stop;

static void on_console_signal(int sig)
{
	(void)sig;
	console_stop = 1;
}

#define CONSOLE_DETACH 0x1d /* C-], as telnet's and virsh console's */

/* Sends what was typed (NUL bytes dropped: the body is text) to the VM's
 * console: 0, or 1 after a message. */
static int console_send(const char *name, const char *in, size_t n)
{
	char path[128], body[1024], *ans;
	size_t m = 0;
	for (size_t k = 0; k < n && m < sizeof(body) - 1; k++)
		if (in[k])
			body[m++] = in[k];
	body[m] = 0;
	if (!m)
		return 0;
	snprintf(path, sizeof(path), "/vms/%s/console", name);
	int r = call("POST", path, body, &ans);
	free(ans);
	return r;
}

/* logs: the console so far; console: attached, its output followed and
 * stdin typed into it (the terminal raw), until C-] (or C-c when stdin
 * is no terminal, or the VM's end of input). */
static int vm_logs(const char *name, int attach)
{
	char path[160], *ans;
	snprintf(path, sizeof(path), "/vms/%s/console", name);
	if (!attach) {
		if (call("GET", path, NULL, &ans))
			return 1;
		fputs(ans, stdout);
		free(ans);
		return 0;
	}
	struct sigaction sa = {.sa_handler = on_console_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct termios saved, raw;
	int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (tty) {
		raw = saved;
		cfmakeraw(&raw);
		raw.c_oflag |= OPOST | ONLCR; /* the guest's "\n" still starts a line here */
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	fprintf(stderr, "corral: attached to '%s''s console: C-] detaches%s", name, tty ? "\r\n" : "\n");
	long long shown = 0; /* the log from its start (1 MiB a turn), then what follows */
	int in_open = 1, r = 0;
	long long last_poll = 0;
	while (!console_stop && !r) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long long ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
		if (ms - last_poll >= 200) {
			last_poll = ms;
			char q[200], err[256], *out = NULL;
			int status;
			size_t len;
			snprintf(q, sizeof(q), "%s?from=%lld", path, shown);
			if (http_call(vm_sock, "GET", q, NULL, 10000, &status, &out, &len, err, sizeof(err)) < 0) {
				fprintf(stderr, "corral: vm console: corrald: %s\n", err);
				r = 1;
			} else if (status == 416) {
				shown = 0; /* the VM started again: a new log */
				last_poll = 0;
			} else if (status != 200) {
				json_t *j = json_loads(out, 0, NULL);
				const char *m = j ? json_string_value(json_object_get(j, "fault_message")) : NULL;
				fprintf(stderr, "corral: vm console: %s\n", m ? m : out);
				json_decref(j);
				r = 1;
			} else {
				fwrite(out, 1, len, stdout);
				fflush(stdout);
				shown += (long long)len;
				if (len)
					last_poll = 0; /* more may wait */
			}
			free(out);
		}
		struct pollfd p = {.fd = in_open ? STDIN_FILENO : -1, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0 || !p.revents)
			continue;
		char in[512];
		ssize_t n = read(STDIN_FILENO, in, sizeof(in));
		if (n <= 0) {
			in_open = 0; /* no more input: the output is still followed */
			continue;
		}
		char *det = memchr(in, CONSOLE_DETACH, (size_t)n);
		if (console_send(name, in, det ? (size_t)(det - in) : (size_t)n))
			r = 1;
		if (det)
			break;
		last_poll = 0; /* the guest's echo, soon */
	}
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	fprintf(stderr, "%scorral: detached from '%s' (it runs on)\n", tty ? "\r\n" : "", name);
	return r;
}

/* corral vm migrate NAME DEST [--downtime MS] [--json] */
static int vm_migrate(int argc, char **argv)
{
	const char *dest = NULL;
	long downtime = 0;
	int as_json = 0;
	char path[160], abs[PATH_MAX];
	if (name_arg(argc, argv, 1, "VM's name") < 0)
		return 2;
	for (int a = 2; a < argc; a++) {
		char *end;
		if (!strcmp(argv[a], "--json")) {
			as_json = 1;
		} else if (!strcmp(argv[a], "--downtime") && a + 1 < argc) {
			errno = 0;
			downtime = strtol(argv[++a], &end, 10);
			if (errno || *end || end == argv[a] || downtime < 1 || downtime > MIGRATE_DOWNTIME_MAX_MS) {
				fprintf(stderr, "corral: vm migrate: --downtime '%s': milliseconds from 1 to %d\n",
					argv[a], MIGRATE_DOWNTIME_MAX_MS);
				return 2;
			}
		} else if (argv[a][0] != '-' && !dest) {
			dest = argv[a];
		} else {
			fprintf(stderr,
				"corral: vm migrate: unknown or incomplete option '%s' (see 'corral vm --help')\n",
				argv[a]);
			return 2;
		}
	}
	if (!dest) {
		fprintf(stderr,
			"corral: vm migrate: give the destination: another corrald's socket or tcp:HOST:PORT\n");
		return 2;
	}
	/* a socket path as corrald (elsewhere) finds it */
	if (strncmp(dest, "tcp:", 4)) {
		if (!realpath(dest, abs)) {
			fprintf(stderr, "corral: vm migrate: '%s': %s\n", dest, strerror(errno));
			return 1;
		}
		dest = abs;
	}
	json_t *b = json_pack("{s:s}", "destination", dest);
	if (b && downtime)
		json_object_set_new(b, "downtime_limit_ms", json_integer(downtime));
	char *body = b ? json_dumps(b, JSON_COMPACT) : NULL, *ans;
	json_decref(b);
	if (!body) {
		fprintf(stderr, "corral: vm migrate: out of memory\n");
		return 1;
	}
	snprintf(path, sizeof(path), "/vms/%s/migrate", argv[1]);
	int r = call("POST", path, body, &ans);
	free(body);
	if (r == 0 && as_json) {
		printf("%s\n", ans);
	} else if (r == 0) {
		json_t *j = json_loads(ans, 0, NULL);
		printf("%s: migrated to %s (stopped %" JSON_INTEGER_FORMAT " ms, %" JSON_INTEGER_FORMAT
		       " ms in all, %.1f MiB sent)\n",
		       argv[1], dest, json_integer_value(json_object_get(j, "downtime_ms")),
		       json_integer_value(json_object_get(j, "total_ms")),
		       (double)json_integer_value(json_object_get(j, "bytes_sent")) / (1 << 20));
		json_decref(j);
	}
	free(ans);
	return r;
}

int cmd_vm(int argc, char **argv)
{
	char path[160], body[256];
	vm_sock = getenv("CORRALD_SOCKET");
	if (!vm_sock || !vm_sock[0])
		vm_sock = CORRALD_SOCKET_DEFAULT;
	int k = 1;
	while (k < argc && argv[k][0] == '-') {
		if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
			vm_usage(stdout);
			return 0;
		}
		if (!strcmp(argv[k], "--socket") && k + 1 < argc) {
			vm_sock = argv[k + 1];
			k += 2;
			continue;
		}
		fprintf(stderr, "corral: vm: unknown or incomplete option '%s' (see 'corral vm --help')\n", argv[k]);
		return 2;
	}
	if (k >= argc) {
		vm_usage(stderr);
		return 2;
	}
	argc -= k;
	argv += k;
	const char *cmd = argv[0];
	if (!strcmp(cmd, "create"))
		return cmd_vm_create(argc, argv);
	if (!strcmp(cmd, "set"))
		return vm_set(argc, argv);
	if (!strcmp(cmd, "ls"))
		return vm_ls(argc, argv, 0);
	if (!strcmp(cmd, "top"))
		return vm_ls(argc, argv, 1);
	if (!strcmp(cmd, "migrate"))
		return vm_migrate(argc, argv);
	static const char *const verbs[] = {"start", "pause", "resume",	  "reboot",  "logs", "console",
					    "stop",  "rm",    "snapshot", "restore", "clone"};
	unsigned v = 0;
	while (v < sizeof(verbs) / sizeof(verbs[0]) && strcmp(verbs[v], cmd))
		v++;
	if (v == sizeof(verbs) / sizeof(verbs[0])) {
		fprintf(stderr, "corral: vm: unknown command '%s' (see 'corral vm --help')\n", cmd);
		return 2;
	}
	if (name_arg(argc, argv, 1, "VM's name") < 0)
		return 2;
	const char *name = argv[1];
	if (v <= 3) {
		if (argc != 2) {
			fprintf(stderr, "corral: vm %s: unexpected argument '%s'\n", cmd, argv[2]);
			return 2;
		}
		snprintf(path, sizeof(path), "/vms/%s/%s", name, cmd);
		char *ans;
		int r = call("POST", path, NULL, &ans);
		free(ans);
		return r;
	}
	if (v <= 5) {
		if (argc != 2) {
			fprintf(stderr, "corral: vm %s: unexpected argument '%s'\n", cmd, argv[2]);
			return 2;
		}
		return vm_logs(name, v == 5);
	}
	if (v == 8 || v == 9) {
		if (argc != 3 || name_arg(argc, argv, 2, "snapshot's name") < 0) {
			if (argc != 3)
				fprintf(stderr, "corral: vm %s: give the VM's and the snapshot's names\n", cmd);
			return 2;
		}
		snprintf(path, sizeof(path), "/vms/%s/%s", name, cmd);
		snprintf(body, sizeof(body), v == 8 ? "{\"name\":\"%s\"}" : "{\"snapshot\":\"%s\"}", argv[2]);
		char *ans;
		int r = call("POST", path, body, &ans);
		free(ans);
		return r;
	}
	/* stop, rm, clone: options after the name */
	long timeout = 10, count = 1;
	int force = 0;
	const char *prefix = NULL;
	for (int a = 2; a < argc; a++) {
		char *end;
		if (v != 10 && !strcmp(argv[a], "--force")) {
			force = 1;
		} else if (v == 6 && !strcmp(argv[a], "--timeout") && a + 1 < argc) {
			errno = 0;
			timeout = strtol(argv[++a], &end, 10);
			if (errno || *end || end == argv[a] || timeout < 0 || timeout > 300) {
				fprintf(stderr, "corral: vm stop: --timeout '%s': seconds from 0 to 300\n", argv[a]);
				return 2;
			}
		} else if (v == 10 && !strcmp(argv[a], "--count") && a + 1 < argc) {
			errno = 0;
			count = strtol(argv[++a], &end, 10);
			if (errno || *end || end == argv[a] || count < 1 || count > 64) {
				fprintf(stderr, "corral: vm clone: --count '%s': from 1 to 64\n", argv[a]);
				return 2;
			}
		} else if (v == 10 && !strcmp(argv[a], "--prefix") && a + 1 < argc) {
			prefix = argv[++a];
			if (!corrald_name_ok(prefix)) {
				fprintf(stderr, "corral: vm clone: --prefix '%s' is not a name\n", prefix);
				return 2;
			}
		} else {
			fprintf(stderr, "corral: vm %s: unknown or incomplete option '%s' (see 'corral vm --help')\n",
				cmd, argv[a]);
			return 2;
		}
	}
	if (v == 6) {
		snprintf(path, sizeof(path), "/vms/%s/stop", name);
		snprintf(body, sizeof(body), "{\"timeout\":%ld}", force ? 0 : timeout);
		char *ans;
		int r = call("POST", path, body, &ans);
		json_t *j = r == 0 ? json_loads(ans, 0, NULL) : NULL;
		if (j && json_is_true(json_object_get(j, "forced")))
			fprintf(stderr, "corral: vm stop: '%s' did not stop within %ld s: killed\n", name, timeout);
		json_decref(j);
		free(ans);
		return r;
	}
	if (v == 7) {
		snprintf(path, sizeof(path), "/vms/%s%s", name, force ? "?force=true" : "");
		char *ans;
		int r = call("DELETE", path, NULL, &ans);
		free(ans);
		return r;
	}
	snprintf(path, sizeof(path), "/vms/%s/clone", name);
	if (prefix)
		snprintf(body, sizeof(body), "{\"count\":%ld,\"prefix\":\"%s\"}", count, prefix);
	else
		snprintf(body, sizeof(body), "{\"count\":%ld}", count);
	return call_print("POST", path, body);
}
