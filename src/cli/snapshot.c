/* `corral snapshot SOCK DIR [--stop]`: asks the corral serving the control
 * API on SOCK (corral run --api-sock) to save its VM into DIR, with plain
 * HTTP/1.1 requests over the unix socket (cli_api_request). */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

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
		   "snapshot, without running in between.\n\n"
		   "Each writable disk's image becomes read-only history in DIR (DIR/diskK.raw\n"
		   "or .qcow2: a hard link, or a copy on another file system) and the VM goes\n"
		   "on writing to a new qcow2 overlay on it under the image's name.\n");
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
	if (stop && !ok(st = cli_api_request(sock, "PATCH", "/vm", json_pack("{s:s}", "state", "Paused"), NULL, msg,
					     sizeof(msg)))) {
		fprintf(stderr, "corral: snapshot: %s\n", msg[0] ? msg : "the VM would not pause");
		return 1;
	}
	st = cli_api_request(sock, "PUT", "/snapshot/create",
			     json_pack("{s:s,s:s}", "snapshot_path", sp, "mem_file_path", mp), NULL, msg, sizeof(msg));
	if (!ok(st)) {
		fprintf(stderr, "corral: snapshot: %s\n", msg[0] ? msg : "the snapshot failed");
		if (stop) /* it was paused for us: let it go on */
			cli_api_request(sock, "PATCH", "/vm", json_pack("{s:s}", "state", "Resumed"), NULL, msg,
					sizeof(msg));
		return 1;
	}
	if (stop && !ok(cli_api_request(sock, "PUT", "/actions", json_pack("{s:s}", "action_type", "Stop"), NULL, msg,
					sizeof(msg)))) {
		fprintf(stderr, "corral: snapshot: saved, but the VM would not stop: %s\n", msg);
		return 1;
	}
	return 0;
}
