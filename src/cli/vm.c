/* `corral vm`: the VMs corrald hosts, from the command line: each command
 * is one or two requests to corrald's API (docs/corrald.yaml), printed as
 * a table or, with --json, as corrald's JSON. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "daemon/daemon.h"
#include "daemon/http.h"

#define VM_TIMEOUT_MS 330000 /* a stop may wait its timeout (at most 300 s) */

static const char *vm_sock;

static void vm_usage(FILE *f)
{
	fprintf(f,
		"usage: corral vm [--socket PATH] COMMAND [ARGS...]\n\n"
		"Creates and manages the VMs corrald hosts (see corrald(8)).\n\n"
		"commands:\n"
		"  create NAME [--no-start] [--json] [corral run's options...]\n"
		"                   define a VM with the options of 'corral run' and start it\n"
		"  ls [--json]      list the VMs: name, state, host pid\n"
		"  start NAME       start a VM\n"
		"  stop NAME [--timeout S] [--force]\n"
		"                   stop a VM: ask, wait up to S seconds (default 10), then kill it\n"
		"  pause NAME, resume NAME, reboot NAME\n"
		"  rm NAME [--force]\n"
		"                   remove a VM and its files (--force: stop it first)\n"
		"  logs NAME        print its console output so far\n"
		"  console NAME     print its console output and follow it (C-c detaches)\n"
		"  snapshot NAME SNAP, restore NAME SNAP\n"
		"                   save a running VM as SNAP; continue a stopped VM from SNAP\n"
		"  clone NAME [--count N] [--prefix P]\n"
		"                   N new VMs P-1..P-N (default NAME-1..) with NAME's configuration,\n"
		"                   continuing from its state if it runs\n"
		"  top [--json]     CPU time and memory of each VM\n\n"
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

static int vm_create(int argc, char **argv)
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
		       "  --json           print corrald's answer as JSON\n");
		free(rest);
		return 0;
	}
	if (name_arg(argc, argv, 1, "VM's name") < 0) {
		free(rest);
		return 2;
	}
	rest[n++] = argv[0];
	for (int k = 2; k < argc; k++) {
		if (!strcmp(argv[k], "--no-start"))
			no_start = 1;
		else if (!strcmp(argv[k], "--json"))
			as_json = 1;
		else
			rest[n++] = argv[k];
	}
	char *text = run_config_json(n, rest);
	free(rest);
	if (!text)
		return 2;
	json_t *config = json_loads(text, 0, NULL);
	free(text);
	if (!config)
		return 1;
	absolute_path(config, "kernel");
	absolute_path(config, "initrd");
	absolute_path(config, "flat");
	size_t k;
	json_t *disk;
	json_array_foreach(json_object_get(config, "disks"), k, disk) absolute_path(disk, "path");
	json_t *req = json_pack("{s:s,s:o,s:b}", "name", argv[1], "config", config, "start", !no_start);
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

/* logs: the console so far; console: and what follows, until C-c. */
static int vm_logs(const char *name, int follow)
{
	char path[128], *ans;
	size_t shown = 0;
	snprintf(path, sizeof(path), "/vms/%s/console", name);
	if (follow) {
		struct sigaction sa = {.sa_handler = on_console_signal};
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	do {
		if (call("GET", path, NULL, &ans))
			return 1;
		size_t n = strlen(ans);
		if (n < shown) /* the VM started again: a new log */
			shown = 0;
		fwrite(ans + shown, 1, n - shown, stdout);
		fflush(stdout);
		shown = n;
		free(ans);
		if (follow && !console_stop) {
			struct timespec ts = {0, 300000000};
			nanosleep(&ts, NULL);
		}
	} while (follow && !console_stop);
	return 0;
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
		return vm_create(argc, argv);
	if (!strcmp(cmd, "ls"))
		return vm_ls(argc, argv, 0);
	if (!strcmp(cmd, "top"))
		return vm_ls(argc, argv, 1);
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
