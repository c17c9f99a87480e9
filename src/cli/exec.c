/* `corral exec [options] PROGRAM [ARGS...]`: run one x86-64 Linux program
 * in a process VM; the exit status is the program's. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/dynlib.h"
#include "cli/cli.h"
#include "process/proc.h"

#define ENV_MAX_BYTES (4u << 20)

static void exec_usage(FILE *f)
{
	fprintf(f, "usage: corral exec [options] PROGRAM [ARGS...]\n"
		   "\n"
		   "Runs PROGRAM (an x86-64 Linux ELF program or #! script) on corral's\n"
		   "x86-64 CPU. The exit status is the program's; a program killed by a\n"
		   "signal kills corral with the same signal.\n"
		   "\n"
		   "options:\n"
		   "  --root DIR     make DIR the program's / (paths, .. and symlinks stay inside);\n"
		   "                 implies --sandbox unless --no-sandbox is given\n"
		   "  --sandbox      run the program as one nobody trusts: its own user, mount,\n"
		   "                 PID, IPC, UTS and network namespaces (it sees only its own\n"
		   "                 processes; corral's init is PID 1), no network but its own\n"
		   "                 loopback (see --net), a /dev of null, zero, full, random,\n"
		   "                 urandom, tty, ptmx and its own pts, no device nodes, no\n"
		   "                 netlink, packet or raw sockets, unix sockets resolved inside\n"
		   "                 the root, every capability dropped, and a seccomp filter on\n"
		   "                 corral itself (see docs/threat-model.md)\n"
		   "  --no-sandbox   with --root: confine paths only (processes, devices and the\n"
		   "                 network are the host's, as without --root)\n"
		   "  --net MODE     with --sandbox: none (default: loopback only), host (share\n"
		   "                 the host's network namespace, abstract unix sockets included)\n"
		   "                 or user[,hostfwd=tcp|udp:[HOSTADDR]:PORT-[GUESTADDR]:PORT]...\n"
		   "                 [,restrict=on] (eth0 10.0.2.15 behind a user-mode NAT: the\n"
		   "                 host's loopback is 10.0.2.2, DNS 10.0.2.3; no privileges)\n"
		   "  --argv0 NAME   pass NAME as argv[0] instead of PROGRAM\n"
		   "  --mem SIZE     cap the program's memory (e.g. 512M, 2G; a bare number is MiB):\n"
		   "                 mappings beyond it fail with ENOMEM (default: the host's memory\n"
		   "                 and swap); reserved address space (PROT_NONE) does not count\n"
		   "  --control PATH serve the program's control API on the unix socket PATH\n"
		   "                 (HTTP/JSON, as a system VM's): 'corral checkpoint PATH DIR'\n"
		   "                 saves the running program into DIR (see corral-checkpoint(1))\n"
		   "  --checkpoint-signal SIG\n"
		   "                 a signal (a name such as USR1 or TERM, or a number) that\n"
		   "                 checkpoints the program into --checkpoint-dir and exits with\n"
		   "                 status 0; the program never sees SIG\n"
		   "  --checkpoint-dir DIR\n"
		   "                 where --checkpoint-signal saves the program\n"
		   "  --trace        log each system call and unimplemented instruction to stderr\n"
		   "                 (also enabled by CORRAL_TRACE=1 in the environment)\n"
		   "  -h, --help     show this help\n");
}

/* The strings a new corral finds in the memfd of proc_reexec: NUL-ended,
 * at most ENV_MAX_BYTES in all. */
static char **read_strings(int fd)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	if (!buf)
		return NULL;
	for (;;) {
		if (len == cap) {
			if (cap >= ENV_MAX_BYTES)
				break;
			cap *= 2;
			char *nb = realloc(buf, cap + 1);
			if (!nb)
				break;
			buf = nb;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;
	size_t count = 0;
	for (size_t k = 0; k < len; k++)
		count += !buf[k];
	char **v = calloc(count + 2, sizeof(char *));
	if (!v)
		return NULL;
	size_t n = 0;
	for (size_t k = 0; k < len; k += strlen(buf + k) + 1)
		v[n++] = buf + k;
	v[n] = NULL;
	return v;
}

/* the guest environment of a process VM started by proc_reexec */
static char **reentry_env;

int exec_reentry(int argc, char **argv)
{
	const char *v = getenv(PROC_EXEC_FD_ENV);
	char *end;
	long fd = strtol(v, &end, 10);
	char **s = NULL;
	if (*end || end == v || fd < 0 || fd > 1 << 20 || !(s = read_strings((int)fd))) {
		fprintf(stderr, "corral: bad %s '%s'\n", PROC_EXEC_FD_ENV, v);
		return 2;
	}
	unsetenv(PROC_EXEC_FD_ENV);
	/* "exec", options, "--", PROGRAM, "", then the environment; the
	 * arguments after argv[0] are the host process's own */
	int h = 0;
	while (s[h] && s[h][0])
		h++;
	if (!s[h] || h < 3 || strcmp(s[0], "exec") || strcmp(s[h - 2], "--")) {
		fprintf(stderr, "corral: bad %s contents\n", PROC_EXEC_FD_ENV);
		return 2;
	}
	reentry_env = s + h + 1;
	char **nv = calloc((size_t)h + (size_t)(argc > 1 ? argc : 1) + 1, sizeof(char *));
	if (!nv)
		return 2;
	int n = 0;
	for (int k = 0; k < h; k++)
		nv[n++] = s[k];
	for (int k = 1; k < argc; k++)
		nv[n++] = argv[k];
	nv[n] = NULL;
	return cmd_exec(n, nv);
}

/* A --checkpoint-signal that corral can give up to checkpoints: not one
 * that faults or cannot be caught, nor one corral uses itself. */
int exec_checkpoint_signal(const char *arg)
{
	int s = cli_parse_signal(arg);
	if (s < 0 || s == SIGKILL || s == SIGSTOP || s == SIGSEGV || s == SIGBUS || s == SIGILL || s == SIGFPE ||
	    s == SIGTRAP || s == SIGCHLD || s == SIGCONT || s == 32 || s == 33 || s == SIGRTMAX) {
		fprintf(stderr,
			"corral: bad --checkpoint-signal '%s' (a signal such as USR1, TERM or RTMIN+1; not KILL, "
			"STOP, CHLD, CONT or one that reports a fault)\n",
			arg);
		return -1;
	}
	return s;
}

/* --control, --checkpoint-signal and --checkpoint-dir together. */
int exec_checkpoint_opts(struct proc_opts *o)
{
	if (o->checkpoint_signal && !o->checkpoint_dir) {
		fprintf(stderr, "corral: --checkpoint-signal needs --checkpoint-dir DIR (where the checkpoint goes)\n");
		return -1;
	}
	if (o->checkpoint_dir && !o->checkpoint_signal) {
		fprintf(stderr, "corral: --checkpoint-dir is where --checkpoint-signal saves the program: give both\n");
		return -1;
	}
	if (o->checkpoint_dir && o->checkpoint_dir[0] != '/') {
		/* the control thread saves it later, wherever the program's cwd is */
		static char abs[4096];
		if (!getcwd(abs, sizeof(abs) - 1 - strlen(o->checkpoint_dir)) ||
		    strlen(abs) + 1 + strlen(o->checkpoint_dir) >= sizeof(abs)) {
			fprintf(stderr, "corral: --checkpoint-dir '%s': too long\n", o->checkpoint_dir);
			return -1;
		}
		strcat(abs, "/");
		strcat(abs, o->checkpoint_dir);
		o->checkpoint_dir = abs;
	}
	if ((o->control || o->checkpoint_signal) && o->sandbox) {
		fprintf(stderr, "corral: --control and --checkpoint-signal do not work with --sandbox (or --root) yet: "
				"add --no-sandbox\n");
		return -1;
	}
	return 0;
}

int cmd_exec(int argc, char **argv)
{
	enum {
		OPT_ROOT = 256,
		OPT_ARGV0,
		OPT_TRACE,
		OPT_COMM,
		OPT_MEM,
		OPT_SANDBOX,
		OPT_NOSANDBOX,
		OPT_NET,
		OPT_INSIDE,
		OPT_CONTROL,
		OPT_CKSIG,
		OPT_CKDIR,
		OPT_CKTREE,
		OPT_CKPIDMAP
	};
	static const struct option longopts[] = {
		{"root", required_argument, NULL, OPT_ROOT},
		{"argv0", required_argument, NULL, OPT_ARGV0},
		{"trace", no_argument, NULL, OPT_TRACE},
		{"mem", required_argument, NULL, OPT_MEM},
		{"sandbox", no_argument, NULL, OPT_SANDBOX},
		{"no-sandbox", no_argument, NULL, OPT_NOSANDBOX},
		{"net", required_argument, NULL, OPT_NET},
		{"control", required_argument, NULL, OPT_CONTROL},
		{"checkpoint-signal", required_argument, NULL, OPT_CKSIG},
		{"checkpoint-dir", required_argument, NULL, OPT_CKDIR},
		{"sandboxed", no_argument, NULL, OPT_INSIDE},		/* internal: guest execve inside the sandbox */
		{"comm", required_argument, NULL, OPT_COMM},		/* internal: a guest's execve */
		{"ckpt-tree", required_argument, NULL, OPT_CKTREE},	/* internal: a guest's execve in a tree */
		{"ckpt-pidmap", required_argument, NULL, OPT_CKPIDMAP}, /* internal: a restored program's execve */
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct proc_opts o = {0};
	o.version = CORRAL_VERSION;
	int sandbox = -1; /* -1: as --root says */
	const char *net = NULL;
	extern char **environ;
	char **envp = reentry_env ? reentry_env : environ;
	const char *t = getenv("CORRAL_TRACE");
	if (t && *t && strcmp(t, "0"))
		o.trace = 1;
	/* the environment tunes the library; it is read here, once */
	cpu_opts_from_env(&o.cpu);
	o.self_exe = getenv("CORRAL_SELF_EXE");
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOT: o.root = optarg; break;
		case OPT_ARGV0: o.argv0 = optarg; break;
		case OPT_TRACE: o.trace = 1; break;
		case OPT_SANDBOX: sandbox = 1; break;
		case OPT_NOSANDBOX: sandbox = 0; break;
		case OPT_NET: net = optarg; break;
		case OPT_INSIDE: o.sandboxed = 1; break;
		case OPT_CONTROL: o.control = optarg; break;
		case OPT_CKDIR: o.checkpoint_dir = optarg; break;
		case OPT_CKSIG:
			if ((o.checkpoint_signal = exec_checkpoint_signal(optarg)) < 0)
				return 2;
			break;
		case OPT_MEM: {
			uint64_t m;
			if (cli_parse_size(optarg, 20, &m) < 0 || m < (1u << 20)) {
				fprintf(stderr,
					"corral exec: bad --mem '%s' (a size of at least 1M, e.g. 512M or 2G)\n",
					optarg);
				return 2;
			}
			o.mem = m;
			break;
		}
		case OPT_COMM: o.comm = optarg; break;
		case OPT_CKTREE: o.ckpt_tree = optarg; break;
		case OPT_CKPIDMAP: {
			char *e;
			long fd = strtol(optarg, &e, 10);
			if (*e || fd < 3 || fd > 1 << 20) {
				fprintf(stderr, "corral exec: bad --ckpt-pidmap '%s'\n", optarg);
				return 2;
			}
			o.ckpt_pidmap = (int)fd + 1;
			break;
		}
		case 'h': exec_usage(stdout); return 0;
		case ':':
			fprintf(stderr, "corral exec: option '%s' needs an argument (see 'corral exec --help')\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "corral exec: unknown option '%s' (see 'corral exec --help')\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "corral exec: no program given (see 'corral exec --help')\n");
		return 2;
	}
	o.sandbox = sandbox >= 0 ? sandbox : (o.root != NULL || o.sandboxed);
	if (o.sandboxed)
		o.sandbox = 1;
	if (net) {
		if (!o.sandbox) {
			fprintf(stderr, "corral exec: --net needs --sandbox (or --root): without it the program "
					"already shares the host's network\n");
			return 2;
		}
		if (!strcmp(net, "host")) {
			o.net_host = 1;
		} else if (!strcmp(net, "user") || !strncmp(net, "user,", 5)) {
			o.net_user = net;
			if (dynlib_static()) /* libslirp: the dynamically linked sibling */
				return cli_exec_dynamic("--net user");
		} else if (strcmp(net, "none")) {
			fprintf(stderr, "corral exec: bad --net '%s' (none, host or user[,hostfwd=...])\n", net);
			return 2;
		}
	}
	if (exec_checkpoint_opts(&o) < 0)
		return 2;
	const char *path = argv[optind];
	char **gargv = &argv[optind];
	int gargc = argc - optind;
	if (o.argv0)
		gargv[0] = (char *)o.argv0;
	int r = proc_exec(&o, path, gargc, gargv, envp);
	if (o.sandbox) {
		/* The program could not start. Inside the sandbox nothing is left
		 * to do at exit, and exit-time checks that trace the process
		 * (LeakSanitizer's) are refused by the seccomp filter. */
		fflush(NULL);
		_exit(r);
	}
	return r;
}
