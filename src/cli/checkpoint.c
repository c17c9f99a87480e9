/* `corral checkpoint SOCK DIR [--leave-running]`: asks the process VM
 * serving its control API on SOCK (corral exec --control) to save itself
 * into DIR; `corral restore-exec DIR`: continues it from there. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "process/proc.h"

static void checkpoint_usage(FILE *f)
{
	fprintf(f, "usage: corral checkpoint SOCK DIR [--leave-running]\n\n"
		   "Saves the program of the process VM serving its control API on the unix\n"
		   "socket SOCK (corral exec --control SOCK) into the directory DIR (created\n"
		   "if needed): every thread stops at an instruction boundary, DIR/state and\n"
		   "DIR/memory are written, and the program exits with status 0, unless\n"
		   "--leave-running: then it goes on. 'corral restore-exec DIR' continues it.\n"
		   "\n"
		   "options:\n"
		   "  --leave-running  let the program go on after the checkpoint\n"
		   "  -h, --help       show this help\n");
}

int cmd_checkpoint(int argc, char **argv)
{
	const char *sock = NULL, *dir = NULL;
	int leave = 0;
	for (int k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--leave-running")) {
			leave = 1;
		} else if (!strcmp(argv[k], "-h") || !strcmp(argv[k], "--help")) {
			checkpoint_usage(stdout);
			return 0;
		} else if (argv[k][0] == '-' || (sock && dir)) {
			fprintf(stderr,
				"corral: checkpoint: unexpected argument '%s' (see 'corral checkpoint --help')\n",
				argv[k]);
			return 2;
		} else if (!sock) {
			sock = argv[k];
		} else {
			dir = argv[k];
		}
	}
	if (!dir) {
		checkpoint_usage(stderr);
		return 2;
	}
	char abs[PATH_MAX], msg[600];
	int made = mkdir(dir, 0700) == 0;
	if ((!made && errno != EEXIST) || !realpath(dir, abs)) {
		fprintf(stderr, "corral: checkpoint: '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	int st = cli_api_request(sock, "PUT", "/checkpoint", json_pack("{s:s,s:b}", "dir", abs, "leave_running", leave),
				 NULL, msg, sizeof(msg));
	if (st < 200 || st >= 300) {
		fprintf(stderr, "corral: checkpoint: %s\n", msg[0] ? msg : "the checkpoint failed");
		if (made)
			rmdir(abs); /* only if nothing was left in it */
		return 1;
	}
	return 0;
}

static void restore_exec_usage(FILE *f)
{
	fprintf(f, "usage: corral restore-exec [options] DIR\n\n"
		   "Continues the program saved into DIR by 'corral checkpoint' (or by\n"
		   "--checkpoint-signal) where it stopped, in this process: its threads,\n"
		   "memory, open files, working directory, signal handlers and masks,\n"
		   "pending signals, interval timers and resource limits come back; standard\n"
		   "input, output and error are this command's. The exit status is the\n"
		   "program's. A checkpoint whose files changed or went away, or one written\n"
		   "by another version of corral, is refused (docs/checkpoint.md).\n"
		   "\n"
		   "options:\n"
		   "  --control PATH serve the program's control API on the unix socket PATH\n"
		   "  --checkpoint-signal SIG\n"
		   "                 a signal that checkpoints the program again into\n"
		   "                 --checkpoint-dir and exits\n"
		   "  --checkpoint-dir DIR\n"
		   "                 where --checkpoint-signal saves the program\n"
		   "  --trace        log each system call and unimplemented instruction to stderr\n"
		   "  -h, --help     show this help\n");
}

int cmd_restore_exec(int argc, char **argv)
{
	enum { OPT_CONTROL = 256, OPT_CKSIG, OPT_CKDIR, OPT_TRACE };
	static const struct option longopts[] = {
		{"control", required_argument, NULL, OPT_CONTROL},
		{"checkpoint-signal", required_argument, NULL, OPT_CKSIG},
		{"checkpoint-dir", required_argument, NULL, OPT_CKDIR},
		{"trace", no_argument, NULL, OPT_TRACE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct proc_opts o = {0};
	o.version = CORRAL_VERSION;
	const char *t = getenv("CORRAL_TRACE");
	if (t && *t && strcmp(t, "0"))
		o.trace = 1;
	cpu_opts_from_env(&o.cpu);
	o.self_exe = getenv("CORRAL_SELF_EXE");
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_CONTROL: o.control = optarg; break;
		case OPT_CKDIR: o.checkpoint_dir = optarg; break;
		case OPT_TRACE: o.trace = 1; break;
		case OPT_CKSIG:
			if ((o.checkpoint_signal = exec_checkpoint_signal(optarg)) < 0)
				return 2;
			break;
		case 'h': restore_exec_usage(stdout); return 0;
		case ':':
			fprintf(stderr,
				"corral restore-exec: option '%s' needs an argument (see 'corral restore-exec "
				"--help')\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "corral restore-exec: unknown option '%s' (see 'corral restore-exec --help')\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr,
			"corral restore-exec: give one checkpoint directory (see 'corral restore-exec --help')\n");
		return 2;
	}
	if (exec_checkpoint_opts(&o) < 0)
		return 2;
	return proc_restore(&o, argv[optind]);
}
