/* The corral command: a small dispatcher to one function per subcommand. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "process/proc.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct command commands[] = {
	{"exec", cmd_exec, "run one x86-64 Linux program in a process VM"},
#ifndef CORRAL_RUNC_ONLY /* corral-runc's static build: process VMs and the runtime only */
	{"checkpoint", cmd_checkpoint, "save a running process VM's program into a directory"},
	{"restore-exec", cmd_restore_exec, "continue a process VM from its checkpoint"},
	{"run", cmd_run, "boot a virtual PC (system VM) in the foreground"},
	{"snapshot", cmd_snapshot, "save a running VM's state through its API socket"},
	{"migrate", cmd_migrate, "move a running VM to another corral (live migration)"},
	{"restore", cmd_restore, "continue a VM from a snapshot in the foreground"},
	{"vm", cmd_vm, "create and manage VMs hosted by corrald"},
	{"info", cmd_info, "what /dev/kvm offers here and which engine auto picks"},
	{"image", cmd_image, "create, inspect, check and convert disk images (raw, qcow2)"},
#endif
	{"oci", cmd_oci, "the OCI runtime for Podman and containerd (runc's commands; also corral-runc)"},
};

/* main's argv, for cli_exec_dynamic */
static char **main_argv;

int cli_exec_dynamic(const char *why)
{
	char self[PATH_MAX];
	static const char sibling[] = "corral-dyn";
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash = n > 0 ? memrchr(self, '/', (size_t)n) : NULL;
	if (!slash || (size_t)(slash + 1 - self) + sizeof(sibling) > sizeof(self)) {
		fprintf(stderr,
			"corral: %s needs corral-dyn, and corral cannot find its own directory "
			"(/proc/self/exe)\n",
			why);
		return 1;
	}
	memcpy(slash + 1, sibling, sizeof(sibling));
	fflush(NULL);
	execv(self, main_argv);
	fprintf(stderr,
		"corral: %s needs the dynamically linked corral, '%s': %s (this corral is linked statically and "
		"cannot load libmicrohttpd or libslirp)\n",
		why, self, strerror(errno));
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: corral COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		fprintf(f, "  %-8s %s\n", commands[k].name, commands[k].help);
	fprintf(f, "  %-8s %s\n", "help", "show this help");
	fprintf(f, "\noptions:\n  --version  print corral's version\n  -h, --help show this help\n");
	fprintf(f, "\n'corral COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
	main_argv = argv;
	if (getenv(PROC_EXEC_FD_ENV))
		return exec_reentry(argc, argv);
	/* corral-runc: the OCI runtime under the name its callers expect */
	const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
	base = base ? base + 1 : argc > 0 ? argv[0] : "";
	if (!strcmp(base, "corral-runc"))
		return cmd_oci(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("corral %s\n", CORRAL_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (!strcmp(cmd, commands[k].name))
			return commands[k].fn(argc - 1, argv + 1);
	fprintf(stderr, "corral: unknown command '%s' (see 'corral help')\n", cmd);
	return 2;
}
