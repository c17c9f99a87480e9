/* `corral migrate SOCK URL`: asks the corral serving the control API on
 * SOCK to move its VM, live, to the corral waiting with `corral run
 * --incoming URL`, and shows the progress until it is done. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

static void migrate_usage(FILE *f)
{
	fprintf(f, "usage: corral migrate SOCK tcp:HOST:PORT|unix:PATH [--downtime-limit MS]\n"
		   "                      [--no-auto-converge] [--copy-disks] [--compress] [--quiet]\n\n"
		   "Moves the VM of the corral serving its control API on the unix socket SOCK\n"
		   "(corral run --api-sock SOCK) to the corral waiting for it there\n"
		   "(corral run --incoming tcp:ADDR:PORT|unix:PATH), while the guest runs: all\n"
		   "of RAM first, then the pages written since, round after round, then a short\n"
		   "stop for the rest and the devices. The source corral ends (status 0) once\n"
		   "the destination runs the VM; if anything fails, the VM runs on at the source.\n\n"
		   "  --downtime-limit MS  the longest stop allowed (default 300 ms)\n"
		   "  --no-auto-converge   never slow the guest's vCPUs down (a guest that writes\n"
		   "                       faster than the link then stops longer)\n"
		   "  --copy-disks         send the disks' contents too (no shared storage): all\n"
		   "                       of each image while the guest runs, then the blocks it\n"
		   "                       wrote since; the destination writes new images\n"
		   "  --compress           send page and disk data compressed (zstd) where that\n"
		   "                       makes it smaller: for a slow link\n"
		   "  --quiet              no progress line, only errors\n"
		   "  -h, --help           show this help\n");
}

static uint64_t num(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);
	return json_is_integer(v) && json_integer_value(v) >= 0 ? (uint64_t)json_integer_value(v) : 0;
}

int cmd_migrate(int argc, char **argv)
{
	const char *sock = NULL, *url = NULL;
	long downtime = 0;
	int no_ac = 0, quiet = 0, copy_disks = 0, compress = 0;
	for (int k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "-h") || !strcmp(argv[k], "--help")) {
			migrate_usage(stdout);
			return 0;
		} else if (!strcmp(argv[k], "--no-auto-converge")) {
			no_ac = 1;
		} else if (!strcmp(argv[k], "--copy-disks")) {
			copy_disks = 1;
		} else if (!strcmp(argv[k], "--compress")) {
			compress = 1;
		} else if (!strcmp(argv[k], "--quiet")) {
			quiet = 1;
		} else if (!strcmp(argv[k], "--downtime-limit")) {
			char *end;
			errno = 0;
			downtime = k + 1 < argc ? strtol(argv[k + 1], &end, 10) : 0;
			if (k + 1 >= argc || errno || *end || downtime < 1 || downtime > 60000) {
				fprintf(stderr, "corral: migrate: --downtime-limit: milliseconds from 1 to 60000\n");
				return 2;
			}
			k++;
		} else if (argv[k][0] == '-' || (sock && url)) {
			fprintf(stderr, "corral: migrate: unexpected argument '%s' (see 'corral migrate --help')\n",
				argv[k]);
			return 2;
		} else if (!sock) {
			sock = argv[k];
		} else {
			url = argv[k];
		}
	}
	if (!url) {
		migrate_usage(stderr);
		return 2;
	}
	char msg[512];
	json_t *body = json_pack("{s:s,s:b}", "destination_url", url, "auto_converge", !no_ac);
	if (body && copy_disks)
		json_object_set_new(body, "copy_disks", json_true());
	if (body && compress)
		json_object_set_new(body, "compress", json_true());
	if (body && downtime)
		json_object_set_new(body, "downtime_limit_ms", json_integer(downtime));
	int st = cli_api_request(sock, "PUT", "/migrate", body, NULL, msg, sizeof(msg));
	if (st < 200 || st > 299) {
		fprintf(stderr, "corral: migrate: %s\n", msg[0] ? msg : "the migration did not start");
		return 1;
	}
	int tty = !quiet && isatty(STDERR_FILENO), status = 1, warned = 0;
	char last[64] = "";
	for (;;) {
		json_t *j;
		st = cli_api_request(sock, "GET", "/migrate", NULL, &j, msg, sizeof(msg));
		if (st != 200 || !j) {
			json_decref(j);
			if (tty)
				fputc('\n', stderr);
			fprintf(stderr, "corral: migrate: the source went away while %s: %s\n",
				last[0] ? last : "starting", msg);
			return 1;
		}
		json_t *sv = json_object_get(j, "state");
		const char *state = json_is_string(sv) ? json_string_value(sv) : "?";
		snprintf(last, sizeof(last), "%s", state);
		json_t *w = json_object_get(j, "warning");
		if (json_is_string(w) && !warned) { /* once, on a line of its own */
			fprintf(stderr, "%scorral: migrate: warning: %s\n", tty ? "\r" : "", json_string_value(w));
			warned = 1;
		}
		uint64_t total = num(j, "ram_total"), rem = num(j, "ram_remaining"), sent = num(j, "bytes_sent");
		if (!quiet) {
			char line[256];
			unsigned pct = total ? (unsigned)((total - (rem < total ? rem : total)) * 100 / total) : 0;
			snprintf(line, sizeof(line),
				 "%-10s round %" PRIu64 " %3u%%  sent %" PRIu64 " MiB  %" PRIu64
				 " MiB/s  dirty %" PRIu64 " MiB/s  expected stop %" PRIu64 " ms",
				 state, num(j, "iteration"), pct, sent >> 20, num(j, "bandwidth") >> 20,
				 num(j, "dirty_rate") >> 20, num(j, "expected_downtime_ms"));
			if (num(j, "disk_total")) /* --copy-disks */
				snprintf(line + strlen(line), sizeof(line) - strlen(line),
					 "  disks %" PRIu64 " MiB left", num(j, "disk_remaining") >> 20);
			if (num(j, "throttle_percent")) /* auto-converge holds the vCPUs back */
				snprintf(line + strlen(line), sizeof(line) - strlen(line), "  throttle %" PRIu64 "%%",
					 num(j, "throttle_percent"));
			if (tty)
				fprintf(stderr, "\r%-100.100s", line);
			else if (!strcmp(state, "completed"))
				fprintf(stderr, "%s\n", line);
		}
		if (!strcmp(state, "completed")) {
			if (tty)
				fputc('\n', stderr);
			if (!quiet)
				fprintf(stderr,
					"corral: migrate: done: the guest stood %" PRIu64 " ms, %" PRIu64
					" bytes in %" PRIu64 " ms\n",
					num(j, "downtime_ms"), sent, num(j, "total_ms"));
			status = 0;
		} else if (!strcmp(state, "failed")) {
			json_t *e = json_object_get(j, "error");
			if (tty)
				fprintf(stderr, "\r%100s\r", ""); /* the error line replaces the progress */
			fprintf(stderr, "corral: migrate: %s\n", json_is_string(e) ? json_string_value(e) : "failed");
			status = 1;
		}
		json_decref(j); /* state went with it: last holds it */
		if (strcmp(last, "setup") && strcmp(last, "active") && strcmp(last, "completing"))
			return status;
		struct timespec ts = {.tv_nsec = 100000000};
		nanosleep(&ts, NULL);
	}
}
