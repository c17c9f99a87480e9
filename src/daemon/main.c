/* corrald: the daemon hosting many VMs (daemon.h); its options, and the
 * hidden --vm-process mode in which it runs one VM for itself. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "daemon/daemon.h"
#include "daemon/policy.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: corrald [--foreground] [--socket PATH] [--state-dir DIR] [--image-dir DIR]...\n"
		"               [--cgroup auto|v1|v2] [--balloon-policy] [--incoming tcp:ADDR:PORT]\n\n"
		"Hosts many VMs, each in a process of its own, and serves a REST/JSON API on a\n"
		"unix socket (docs/corrald.yaml); 'corral vm' is its command-line client.\n"
		"Running VMs outlive corrald: the next corrald takes them back.\n\n"
		"  --foreground     stay in the foreground, messages on stderr (as under systemd)\n"
		"  --socket PATH    the API's socket (default %s, mode 0660,\n"
		"                   group corral if that group exists)\n"
		"  --state-dir DIR  VM definitions, consoles and snapshots (default %s)\n"
		"  --image-dir DIR  where kernels, initrds and disk images may come from\n"
		"                   (repeatable; default DIR/images of the state directory)\n"
		"  --cgroup auto|v1|v2\n"
		"                   the cgroup hierarchy of the VMs' limits: v2 where /sys/fs/cgroup\n"
		"                   is cgroup2 (auto, the default), else v1; v2 also takes\n"
		"                   /sys/fs/cgroup/unified\n"
		"  --balloon-policy every %d s, move balloon memory from idle guests to guests under\n"
		"                   pressure, by what their balloons' statistics report\n"
		"  --incoming tcp:ADDR:PORT\n"
		"                   also take VMs migrated from other corralds on this TCP address\n"
		"                   (unauthenticated: loopback or a trusted network only); they\n"
		"                   always arrive on STATE_DIR/incoming.sock\n"
		"  --version        print corrald's version\n"
		"  -h, --help       show this help\n",
		CORRALD_SOCKET_DEFAULT, CORRALD_STATE_DEFAULT, POLICY_INTERVAL_S);
}

int main(int argc, char **argv)
{
	enum {
		OPT_FG = 256,
		OPT_SOCKET,
		OPT_STATE,
		OPT_IMAGES,
		OPT_VMPROC,
		OPT_RESTORE,
		OPT_VERSION,
		OPT_CGROUP,
		OPT_POLICY,
		OPT_INCOMING,
		OPT_VMINCOMING,
		OPT_KCACHE
	};
	static const struct option longopts[] = {
		{"foreground", no_argument, NULL, OPT_FG},
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"state-dir", required_argument, NULL, OPT_STATE},
		{"image-dir", required_argument, NULL, OPT_IMAGES},
		{"cgroup", required_argument, NULL, OPT_CGROUP},
		/* hidden: the VM process corrald starts for each VM */
		{"vm-process", required_argument, NULL, OPT_VMPROC},
		{"restore", required_argument, NULL, OPT_RESTORE},
		{"vm-incoming", no_argument, NULL, OPT_VMINCOMING},
		{"kernel-cache", required_argument, NULL, OPT_KCACHE},
		{"version", no_argument, NULL, OPT_VERSION},
		{"balloon-policy", no_argument, NULL, OPT_POLICY},
		{"incoming", required_argument, NULL, OPT_INCOMING},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct corrald_opts o = {.socket = CORRALD_SOCKET_DEFAULT, .state_dir = CORRALD_STATE_DEFAULT};
	const char *vmproc = NULL, *restore = NULL, *kcache = NULL;
	int opt, vmincoming = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_FG: o.foreground = 1; break;
		case OPT_POLICY: o.balloon_policy = 1; break;
		case OPT_SOCKET: o.socket = optarg; break;
		case OPT_STATE: o.state_dir = optarg; break;
		case OPT_IMAGES:
			if (o.nimage_dirs == CORRALD_MAX_IMAGE_DIRS) {
				fprintf(stderr, "corrald: --image-dir: at most %d\n", CORRALD_MAX_IMAGE_DIRS);
				return 2;
			}
			o.image_dir[o.nimage_dirs++] = optarg;
			break;
		case OPT_CGROUP:
			if (strcmp(optarg, "auto") && strcmp(optarg, "v1") && strcmp(optarg, "v2")) {
				fprintf(stderr, "corrald: --cgroup '%s': auto, v1 or v2\n", optarg);
				return 2;
			}
			o.cgroup = optarg;
			break;
		case OPT_VMPROC: vmproc = optarg; break;
		case OPT_RESTORE: restore = optarg; break;
		case OPT_VMINCOMING: vmincoming = 1; break;
		case OPT_KCACHE: kcache = optarg; break;
		case OPT_INCOMING:
			if (strncmp(optarg, "tcp:", 4) || !strchr(optarg + 4, ':')) {
				fprintf(stderr, "corrald: --incoming '%s': tcp:ADDR:PORT\n", optarg);
				return 2;
			}
			o.incoming = optarg;
			break;
		case OPT_VERSION: printf("corrald %s\n", CORRAL_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "corrald: unknown or incomplete option '%s' (see 'corrald --help')\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corrald: unexpected argument '%s' (see 'corrald --help')\n", argv[optind]);
		return 2;
	}
	if (vmproc)
		return corrald_vm_process(vmproc, restore, vmincoming, kcache);
	/* detached, in the same directory: relative paths hold */
	if (!o.foreground && daemon(1, 0) < 0) {
		perror("corrald: daemon");
		return 1;
	}
	return corrald_serve(&o);
}
