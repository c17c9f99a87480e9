/* `corral run`: boot a system VM in the foreground: a Linux kernel (or the
 * guest kit's default), COM1 on the terminal (raw mode, Ctrl-A x quits) or a
 * file, on the emu or the kvm engine. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "backend/block.h"
#include "backend/net.h"
#include "boot/boot.h"
#include "cli/cli.h"
#include "cpu/cpu.h"
#include "engine/engine.h"
#include "machine/machine_impl.h"
#include "virtio/virtio.h"

#define RUN_MEM_DEFAULT (512ull << 20)
#define RUN_MEM_MIN (16ull << 20)
#define RUN_MEM_MAX (1ull << 40)
#define FLAT_LOAD 0x100000ull
#define FLAT_MAX (64ull << 20)

#define RUN_MAX_DISKS 16
#define RUN_MAX_NETS 4

enum serial_mode { SERIAL_STDIO, SERIAL_FILE, SERIAL_NONE };
enum engine_choice { ENGINE_AUTO, ENGINE_EMU, ENGINE_KVM };

struct run_disk {
	char *path, *serial; /* point into a copy of the option */
	enum blk_format format;
	enum blk_cache cache;
	int readonly;
	struct blk *blk;
};

struct run_opts {
	const char *kernel, *initrd, *append, *flat, *serial_path;
	uint64_t mem;
	unsigned cpus;
	enum serial_mode serial;
	enum engine_choice engine;
	enum cpu_model cpu_model;
	uint64_t handover; /* tests: move to the other engine after this many instructions/exits */
	int no_reboot, rng, hvc;
	struct run_disk disk[RUN_MAX_DISKS];
	unsigned ndisks;
	const char *net[RUN_MAX_NETS]; /* --net specs, opened into netbe */
	struct net *netbe[RUN_MAX_NETS];
	unsigned nnets;
};

/* ---- The terminal ---- */

static struct termios term_saved;
static volatile sig_atomic_t term_raw;
static volatile sig_atomic_t run_signal;

static void term_restore(void)
{
	if (term_raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &term_saved);
		term_raw = 0;
	}
}

static void term_make_raw(void)
{
	struct termios t;
	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &term_saved) < 0)
		return;
	t = term_saved;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0)
		term_raw = 1;
}

static void on_stop_signal(int sig)
{
	/* A second signal means now: the VM may be stuck outside the engine. */
	if (run_signal) {
		if (term_raw)
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &term_saved);
		_exit(128 + sig);
	}
	run_signal = sig;
	emu_stop_async();
	kvm_stop_async();
}

/* A crash must not leave the user's terminal raw. */
static void on_fatal_signal(int sig)
{
	if (term_raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &term_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void signals_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_fatal_signal;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGABRT, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Host input for COM1, with QEMU's escapes: Ctrl-A x quits, Ctrl-A h
 * helps, Ctrl-A Ctrl-A sends a Ctrl-A. */
struct term_in {
	int fd;
	int esc;
	struct virtio_dev *hvc; /* the input goes to hvc0 instead of COM1 */
	int eof;		/* the input ended; what is buffered still goes in */
	uint8_t buf[256];
	size_t len, pos;
};

static void term_help(void)
{
	static const char help[] = "\r\nC-a h    print this help\r\n"
				   "C-a x    exit corral\r\n"
				   "C-a C-a  send C-a to the guest\r\n";
	if (write(STDERR_FILENO, help, sizeof(help) - 1) < 0) {
		/* nothing to do about a closed stderr */
	}
}

static size_t term_deliver(struct term_in *t, struct machine *m, const uint8_t *buf, size_t n)
{
	return t->hvc ? virtio_console_receive(t->hvc, buf, n) : uart_receive(&m->com1, buf, n);
}

static int term_poll_input(void *opaque, struct machine *m, int timeout_ms)
{
	struct term_in *t = opaque;
	uint8_t raw[128];

	/* Feed what is buffered as the guest makes room. */
	t->pos += term_deliver(t, m, t->buf + t->pos, t->len - t->pos);
	memmove(t->buf, t->buf + t->pos, t->len - t->pos);
	t->len -= t->pos;
	t->pos = 0;
	int room = sizeof(t->buf) - t->len >= sizeof(raw);
	if (t->eof) {
		/* piped input that ended before the guest took it all (a driver
		 * loaded late): keep offering it, without spinning */
		if (t->len == 0)
			return 1;
		if (timeout_ms != 0) {
			struct timespec ts = {0, 10000000};
			nanosleep(&ts, NULL);
		}
		return 0;
	}
	if (!room && timeout_ms != 0)
		timeout_ms = 100; /* the guest is not reading: look again later */

	/* Device work from host threads (a network) wakes us too. */
	struct pollfd pfd[2] = {{.fd = t->fd, .events = POLLIN}, {.fd = machine_io_fd(m), .events = POLLIN}};
	int r = poll(pfd, pfd[1].fd >= 0 ? 2 : 1, timeout_ms);
	if (r < 0)
		return run_signal ? -1 : 0;
	if (r == 0 || !room || !pfd[0].revents)
		return 0;
	ssize_t n = read(t->fd, raw, sizeof(raw));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : 1;
	if (n == 0) {
		t->eof = 1; /* end of input */
		return t->len ? 0 : 1;
	}
	for (ssize_t k = 0; k < n; k++) {
		uint8_t b = raw[k];
		if (t->esc) {
			t->esc = 0;
			if (b == 'x' || b == 'X') {
				static const char bye[] = "\r\ncorral: terminated by C-a x\r\n";
				if (write(STDERR_FILENO, bye, sizeof(bye) - 1) < 0) {
					/* nothing to do about a closed stderr */
				}
				return -1;
			}
			if (b == 'h' || b == 'H')
				term_help();
			else if (b == 0x01)
				t->buf[t->len++] = b;
			continue;
		}
		if (b == 0x01)
			t->esc = 1;
		else
			t->buf[t->len++] = b;
	}
	t->pos += term_deliver(t, m, t->buf, t->len);
	return 0;
}

/* ---- Arguments ---- */

/* "512M", "2G", "65536K", "1073741824B"; a bare number is MiB (as QEMU's -m). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	unsigned shift;
	switch (*end) {
	case 0: shift = 20; break;
	case 'b':
	case 'B':
		shift = 0;
		end++;
		break;
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	case 't':
	case 'T':
		shift = 40;
		end++;
		break;
	default: return -1;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	if (*end)
		return -1;
	if (v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: corral run [--kernel FILE [--initrd FILE] [--append CMDLINE]] [--mem SIZE]\n"
		"                  [--cpus N] [--engine emu|kvm|auto] [--serial stdio|file:PATH|none]\n"
		"                  [--cpu-model corral|host]\n"
		"                  [--disk PATH[,format=raw|qcow2][,readonly][,serial=S][,cache=C]]...\n"
		"                  [--rng]\n"
		"                  [--net user[,hostfwd=tcp:[HOSTADDR]:PORT-[GUESTADDR]:PORT]...|tap,ifname=NAME]\n"
		"                  [--virtio-console]\n"
		"                  [--no-reboot]\n\n"
		"Boots a virtual PC in the foreground. Without --kernel it boots the guest kit's\n"
		"default kernel and initramfs (built by corral-mkguest; tools/mkguest.sh in a\n"
		"source tree).\n\n"
		"  --kernel FILE    Linux kernel: bzImage or vmlinux (ELF)\n"
		"  --initrd FILE    initramfs\n"
		"  --append S       kernel command line\n"
		"  --mem SIZE       guest RAM, e.g. 512M or 2G (default 512M; a bare number is MiB)\n"
		"  --cpus N         virtual CPUs, 1-%d (default 1)\n"
		"  --engine E       emu (corral's interpreter), kvm (/dev/kvm), or auto (default:\n"
		"                   kvm where it runs at hardware speed, else emu; see 'corral info')\n"
		"  --cpu-model M    corral (default: the CPU emu implements, the same under kvm, so a\n"
		"                   VM can move between engines) or host (kvm: all KVM offers)\n"
		"  --serial S       COM1 on stdio (default; raw terminal, C-a x quits, C-a h helps),\n"
		"                   file:PATH, or none\n"
		"  --disk SPEC      a virtio-blk disk (repeatable: /dev/vda, vdb, ...): an image\n"
		"                   file, then options: format=raw|qcow2 (default: probed),\n"
		"                   readonly, serial=S (up to 20 characters), cache=writeback\n"
		"                   (default: through the host's page cache) or cache=none\n"
		"                   (O_DIRECT: guest data bypasses it; the file system must\n"
		"                   support O_DIRECT, tmpfs may not)\n"
		"  --net SPEC       a virtio-net NIC (repeatable; none without it): user = NAT\n"
		"                   through libslirp (guest 10.0.2.15 by DHCP, host 10.0.2.2,\n"
		"                   DNS 10.0.2.3), with hostfwd=tcp|udp:[HOSTADDR]:PORT-[GUESTADDR]:PORT\n"
		"                   rules and restrict=on to cut the guest off from the outside;\n"
		"                   tap,ifname=NAME = a host tap device\n"
		"  --rng            a virtio-rng device (the guest's /dev/hwrng)\n"
		"  --virtio-console a virtio-console (the guest's hvc0): it takes the terminal's\n"
		"                   input instead of COM1; its output goes where COM1's does\n"
		"  --no-reboot      stop instead of rebooting when the guest resets\n"
		"  -h, --help       show this help\n",
		MACHINE_MAX_CPUS);
}

/* --disk PATH[,format=raw|qcow2][,readonly][,serial=S][,cache=none|writeback] */
static int parse_disk(const char *arg, struct run_opts *o)
{
	if (o->ndisks == RUN_MAX_DISKS) {
		fprintf(stderr, "corral: --disk '%s': at most %d disks\n", arg, RUN_MAX_DISKS);
		return -1;
	}
	struct run_disk *d = &o->disk[o->ndisks];
	char *copy = strdup(arg), *save = NULL;
	if (!copy)
		return -1;
	*d = (struct run_disk){.path = strtok_r(copy, ",", &save), .format = BLK_FMT_PROBE};
	if (!d->path || arg[0] == ',') {
		fprintf(stderr, "corral: --disk '%s': give the image file first, e.g. --disk disk.img,readonly\n", arg);
		free(copy);
		return -1;
	}
	for (char *opt; (opt = strtok_r(NULL, ",", &save));) {
		if (!strcmp(opt, "readonly")) {
			d->readonly = 1;
		} else if (!strncmp(opt, "format=", 7)) {
			if (blk_format_parse(opt + 7, &d->format) < 0) {
				fprintf(stderr, "corral: --disk '%s': format '%s': must be raw or qcow2\n", arg,
					opt + 7);
				free(copy);
				return -1;
			}
		} else if (!strncmp(opt, "cache=", 6)) {
			if (blk_cache_parse(opt + 6, &d->cache) < 0) {
				fprintf(stderr, "corral: --disk '%s': cache '%s': must be none or writeback\n", arg,
					opt + 6);
				free(copy);
				return -1;
			}
		} else if (!strncmp(opt, "serial=", 7)) {
			d->serial = opt + 7;
			if (strlen(d->serial) > 20) {
				fprintf(stderr, "corral: --disk '%s': serial '%s': at most 20 characters\n", arg,
					d->serial);
				free(copy);
				return -1;
			}
		} else {
			fprintf(stderr,
				"corral: --disk '%s': unknown option '%s' (known: format=raw|qcow2, readonly, "
				"serial=S, cache=none|writeback)\n",
				arg, opt);
			free(copy);
			return -1;
		}
	}
	o->ndisks++;
	return 0;
}

static void disks_free(struct run_opts *o)
{
	for (unsigned k = 0; k < o->ndisks; k++) {
		blk_close(o->disk[k].blk);
		free(o->disk[k].path); /* the start of the strdup'd option */
	}
	o->ndisks = 0;
	for (unsigned k = 0; k < o->nnets; k++) {
		net_close(o->netbe[k]);
		o->netbe[k] = NULL;
	}
	o->nnets = 0;
}

static int parse_args(int argc, char **argv, struct run_opts *o)
{
	enum {
		OPT_KERNEL = 256,
		OPT_INITRD,
		OPT_APPEND,
		OPT_MEM,
		OPT_CPUS,
		OPT_ENGINE,
		OPT_SERIAL,
		OPT_FLAT,
		OPT_NO_REBOOT,
		OPT_CPU_MODEL,
		OPT_HANDOVER,
		OPT_DISK,
		OPT_NET,
		OPT_RNG,
		OPT_HVC,
		OPT_HELP
	};
	static const struct option longopts[] = {
		{"kernel", required_argument, NULL, OPT_KERNEL},
		{"initrd", required_argument, NULL, OPT_INITRD},
		{"append", required_argument, NULL, OPT_APPEND},
		{"mem", required_argument, NULL, OPT_MEM},
		{"cpus", required_argument, NULL, OPT_CPUS},
		{"engine", required_argument, NULL, OPT_ENGINE},
		{"serial", required_argument, NULL, OPT_SERIAL},
		/* hidden: a flat 64-bit test guest (tests/guests) */
		{"flat", required_argument, NULL, OPT_FLAT},
		{"no-reboot", no_argument, NULL, OPT_NO_REBOOT},
		{"cpu-model", required_argument, NULL, OPT_CPU_MODEL},
		/* hidden, tests: hand the vCPU over to the other engine after N
		 * instructions (emu) or exits (kvm) */
		{"handover", required_argument, NULL, OPT_HANDOVER},
		{"disk", required_argument, NULL, OPT_DISK},
		{"net", required_argument, NULL, OPT_NET},
		{"rng", no_argument, NULL, OPT_RNG},
		{"virtio-console", no_argument, NULL, OPT_HVC},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	int opt;
	char *end;
	unsigned long n;

	*o = (struct run_opts){.mem = RUN_MEM_DEFAULT, .cpus = 1, .serial = SERIAL_STDIO};
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_KERNEL: o->kernel = optarg; break;
		case OPT_INITRD: o->initrd = optarg; break;
		case OPT_APPEND: o->append = optarg; break;
		case OPT_FLAT: o->flat = optarg; break;
		case OPT_NO_REBOOT: o->no_reboot = 1; break;
		case OPT_RNG: o->rng = 1; break;
		case OPT_HVC: o->hvc = 1; break;
		case OPT_DISK:
			if (parse_disk(optarg, o) < 0)
				return -1;
			break;
		case OPT_NET:
			if (o->nnets == RUN_MAX_NETS) {
				fprintf(stderr, "corral: --net '%s': at most %d networks\n", optarg, RUN_MAX_NETS);
				return -1;
			}
			o->net[o->nnets++] = optarg;
			break;
		case OPT_MEM:
			if (parse_size(optarg, &o->mem) < 0) {
				fprintf(stderr, "corral: --mem '%s': not a size (use e.g. 512M or 2G)\n", optarg);
				return -1;
			}
			if (o->mem < RUN_MEM_MIN || o->mem > RUN_MEM_MAX) {
				fprintf(stderr, "corral: --mem '%s': must be between 16M and 1T\n", optarg);
				return -1;
			}
			if (o->mem & 0xfff) {
				fprintf(stderr, "corral: --mem '%s': must be a multiple of 4K\n", optarg);
				return -1;
			}
			break;
		case OPT_CPUS:
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || n < 1 || n > MACHINE_MAX_CPUS) {
				fprintf(stderr, "corral: --cpus '%s': must be a number from 1 to %d\n", optarg,
					MACHINE_MAX_CPUS);
				return -1;
			}
			o->cpus = (unsigned)n;
			break;
		case OPT_ENGINE:
			if (!strcmp(optarg, "kvm")) {
				o->engine = ENGINE_KVM;
			} else if (!strcmp(optarg, "emu")) {
				o->engine = ENGINE_EMU;
			} else if (!strcmp(optarg, "auto")) {
				o->engine = ENGINE_AUTO;
			} else {
				fprintf(stderr, "corral: --engine '%s': must be emu, kvm or auto\n", optarg);
				return -1;
			}
			break;
		case OPT_CPU_MODEL:
			if (!strcmp(optarg, "corral")) {
				o->cpu_model = CPU_MODEL_CORRAL;
			} else if (!strcmp(optarg, "host")) {
				o->cpu_model = CPU_MODEL_HOST;
			} else {
				fprintf(stderr, "corral: --cpu-model '%s': must be corral or host\n", optarg);
				return -1;
			}
			break;
		case OPT_HANDOVER:
			errno = 0;
			o->handover = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || !o->handover) {
				fprintf(stderr, "corral: --handover '%s': must be a positive count\n", optarg);
				return -1;
			}
			break;
		case OPT_SERIAL:
			if (!strcmp(optarg, "stdio")) {
				o->serial = SERIAL_STDIO;
			} else if (!strcmp(optarg, "none")) {
				o->serial = SERIAL_NONE;
			} else if (!strncmp(optarg, "file:", 5) && optarg[5]) {
				o->serial = SERIAL_FILE;
				o->serial_path = optarg + 5;
			} else {
				fprintf(stderr, "corral: --serial '%s': must be stdio, file:PATH or none\n", optarg);
				return -1;
			}
			break;
		case 'h':
		case OPT_HELP: run_usage(stdout); return 1;
		default:
			fprintf(stderr, "corral: run: unknown or incomplete option '%s' (see 'corral run --help')\n",
				argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corral: run: unexpected argument '%s' (see 'corral run --help')\n", argv[optind]);
		return -1;
	}
	if (o->cpu_model == CPU_MODEL_HOST && o->engine != ENGINE_KVM) {
		fprintf(stderr, "corral: --cpu-model host needs --engine kvm (emu implements only the corral model)\n");
		return -1;
	}
	if (o->handover && (o->engine == ENGINE_AUTO || o->cpus != 1)) {
		fprintf(stderr, "corral: --handover needs --engine emu or kvm and one vCPU\n");
		return -1;
	}
	if ((o->initrd || o->append) && !o->kernel && !o->flat) {
		/* the default guest brings its own initramfs; --append still applies */
		if (o->initrd) {
			fprintf(stderr, "corral: --initrd needs --kernel\n");
			return -1;
		}
	}
	return 0;
}

/* ---- Flat test guests ----
 * tests/guests: a flat binary loaded at 1 MiB and entered in 64-bit mode:
 * GDT at 0x1000 (0x08 code, 0x10 data), identity map of the first 4 GiB
 * with 2 MiB pages (PML4 0x2000, PDPT 0x3000, PDs 0x4000-0x7fff), RSP
 * 0x80000, RFLAGS 0x2 (interrupts off), RIP 0x100000. */
static int flat_load(struct machine *m, const char *path, struct cpu_state *s, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "flat guest '%s': %s", path, strerror(errno));
		return -errno;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > FLAT_MAX ||
	    (uint64_t)st.st_size > m->low_size - FLAT_LOAD) {
		snprintf(err, errlen, "flat guest '%s': not a regular file that fits in guest RAM", path);
		close(fd);
		return -EINVAL;
	}
	uint8_t *dst = gpa_ptr(m, FLAT_LOAD, (uint64_t)st.st_size);
	size_t done = 0;
	while (dst && done < (size_t)st.st_size) {
		ssize_t n = read(fd, dst + done, (size_t)st.st_size - done);
		if (n <= 0) {
			snprintf(err, errlen, "flat guest '%s': read failed", path);
			close(fd);
			return -EIO;
		}
		done += (size_t)n;
	}
	close(fd);

	uint64_t gdt[3] = {0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
	gpa_write(m, 0x1000, gdt, sizeof(gdt));
	uint64_t e = 0x3000 | 3;
	gpa_write(m, 0x2000, &e, 8);
	for (uint64_t k = 0; k < 4; k++) {
		e = (0x4000 + k * 0x1000) | 3;
		gpa_write(m, 0x3000 + k * 8, &e, 8);
	}
	for (uint64_t k = 0; k < 4 * 512; k++) {
		e = (k << 21) | 0x83; /* present, writable, 2 MiB */
		gpa_write(m, 0x4000 + k * 8, &e, 8);
	}

	memset(s, 0, sizeof(*s));
	s->rip = FLAT_LOAD;
	s->rflags = 2;
	s->gpr[R_RSP] = 0x80000;
	s->cr0 = 0x80050033; /* PG WP NE ET MP PE */
	s->cr3 = 0x2000;
	s->cr4 = 0x6a0;	 /* PAE PGE OSFXSR OSXMMEXCPT */
	s->efer = 0xd01; /* SCE LME LMA NXE */
	s->seg[SEG_CS] = (struct cpu_seg){.base = 0, .limit = 0xffffffff, .sel = 0x08, .attr = 0xa09b};
	for (int k = 0; k < 6; k++)
		if (k != SEG_CS)
			s->seg[k] = (struct cpu_seg){.base = 0, .limit = 0xffffffff, .sel = 0x10, .attr = 0xc093};
	s->gdtr = (struct cpu_dtr){.base = 0x1000, .limit = sizeof(gdt) - 1};
	s->idtr = (struct cpu_dtr){.base = 0, .limit = 0xffff};
	s->ldtr = (struct cpu_seg){.limit = 0xffff, .attr = 0x82};
	s->tr = (struct cpu_seg){.limit = 0xffff, .attr = 0x8b};
	s->mxcsr = MXCSR_DEFAULT;
	s->x87.fcw = 0x37f;
	s->x87.ftw = 0xffff;
	s->msr.pat = 0x0007040600070406ull;
	s->msr.apic_base = MEM_LAPIC_BASE | (1u << 11) | (1u << 8);
	return 0;
}

/* ---- bench/startup.sh ----
 * With CORRAL_BENCH_T0 set (CLOCK_MONOTONIC ns taken just before corral was
 * started), the guest's first write to port 0x80 (the POST code port) prints
 * how long after T0 it came: the time from `corral run` to the first guest
 * instruction, the same way for both engines. */
static uint64_t bench_t0;
static int bench_seen;

static void bench_port_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	(void)dev, (void)off, (void)size, (void)val;
	if (bench_seen++)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	fprintf(stderr, "corral: bench: first guest instruction %.3f ms after start\n", (double)(now - bench_t0) / 1e6);
}

/* ---- Running ---- */

static int vm_create(const struct run_opts *o, int out_fd, struct machine **mp, struct cpu_state *bsp,
		     struct virtio_dev **hvc)
{
	struct machine_config cfg = {.mem_size = o->mem, .ncpus = o->cpus, .serial_out_fd = out_fd};
	char err[512] = "";
	*hvc = NULL;
	int r = machine_create(mp, &cfg);
	if (r < 0) {
		fprintf(stderr, "corral: cannot create the virtual machine (%d MiB, %u CPUs): %s\n",
			(int)(o->mem >> 20), o->cpus, strerror(-r));
		return r;
	}
	const char *t0 = getenv("CORRAL_BENCH_T0");
	if (t0) {
		bench_t0 = strtoull(t0, NULL, 10);
		bus_register_pio(*mp, 0x80, 1, NULL, bench_port_write, NULL);
	}
	if (o->flat) {
		r = flat_load(*mp, o->flat, bsp, err, sizeof(err));
	} else {
		/* Without --append the console is COM1, where corral shows it. */
		struct boot_config bc = {.kernel = o->kernel,
					 .initrd = o->initrd,
					 .cmdline = o->append ? o->append : "console=ttyS0",
					 .mem_size = o->mem,
					 .ncpus = o->cpus};
		r = boot_linux(*mp, bsp, &bc, err, sizeof(err));
	}
	/* virtio devices: disks first (vda, vdb, ... in slot order), then rng */
	for (unsigned k = 0; r >= 0 && k < o->ndisks; k++) {
		r = virtio_blk_create(*mp, o->disk[k].blk, o->disk[k].serial, NULL);
		if (r < 0)
			snprintf(err, sizeof(err), "disk '%s': cannot add a virtio-blk device: %s", o->disk[k].path,
				 strerror(-r));
	}
	for (unsigned k = 0; r >= 0 && k < o->nnets; k++) {
		/* QEMU's locally administered range, one address per NIC */
		uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, (uint8_t)(0x56 + k)};
		r = virtio_net_create(*mp, o->netbe[k], mac, NULL);
		if (r < 0)
			snprintf(err, sizeof(err), "--net '%s': cannot add a virtio-net device: %s", o->net[k],
				 strerror(-r));
	}
	if (r >= 0 && o->rng && (r = virtio_rng_create(*mp, NULL)) < 0)
		snprintf(err, sizeof(err), "cannot add a virtio-rng device: %s", strerror(-r));
	if (r >= 0 && o->hvc && (r = virtio_console_create(*mp, out_fd, hvc)) < 0)
		snprintf(err, sizeof(err), "cannot add a virtio-console device: %s", strerror(-r));
	if (r < 0) {
		fprintf(stderr, "corral: %s\n", err[0] ? err : strerror(-r));
		machine_destroy(*mp);
		*mp = NULL;
		*hvc = NULL;
	}
	return r;
}

/* --engine auto/kvm: is /dev/kvm there, and does it run at hardware speed?
 * Returns 1 for kvm, 0 for emu, -1 after an error message. */
static int engine_pick(const struct run_opts *o)
{
	struct kvm_info ki;
	if (o->engine == ENGINE_EMU)
		return 0;
	if (o->engine == ENGINE_KVM) {
		kvm_probe(&ki, 0);
		if (!ki.usable) {
			fprintf(stderr, "corral: --engine kvm: %s\n", kvm_strerror(&ki));
			return -1;
		}
		/* a VM that moves between engines would see its CPU change */
		if (o->cpu_model == CPU_MODEL_CORRAL && ki.missing[0])
			fprintf(stderr,
				"corral: note: this host's KVM lacks features of the corral CPU model (%s); "
				"the guest sees fewer under kvm than under emu\n",
				ki.missing);
		return 1;
	}
	kvm_probe(&ki, 0);
	/* the timed probe only where nothing already rules kvm out */
	if (ki.usable && !ki.sw_layer[0])
		kvm_probe(&ki, 1);
	char why[256];
	int kvm = kvm_auto_choice(&ki, why, sizeof(why));
	if (getenv("CORRAL_VERBOSE"))
		fprintf(stderr, "corral: --engine auto: %s (%s)\n", kvm ? "kvm" : "emu", why);
	return kvm;
}

static struct emu_result engine_run(int kvm, struct machine *m, const struct cpu_state *bsp,
				    const struct emu_host *host)
{
	return kvm ? kvm_run(m, bsp, host) : emu_run(m, bsp, host);
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o;
	char kpath[PATH_MAX], ipath[PATH_MAX], err[512];
	int r = parse_args(argc, argv, &o);
	if (r) {
		disks_free(&o);
		return r > 0 ? 0 : 2;
	}
	for (unsigned k = 0; k < o.ndisks; k++) {
		struct run_disk *d = &o.disk[k];
		if (blk_open_cache(&d->blk, d->path, d->format, d->readonly, d->cache, err, sizeof(err)) < 0) {
			fprintf(stderr, "corral: %s\n", err);
			disks_free(&o);
			return 1;
		}
	}
	for (unsigned k = 0; k < o.nnets; k++) {
		if (net_open(&o.netbe[k], o.net[k], NULL, NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "corral: %s\n", err);
			disks_free(&o);
			return 1;
		}
	}
	if (!o.kernel && !o.flat) {
		if (boot_default_guest(kpath, ipath, sizeof(kpath), err, sizeof(err)) < 0) {
			fprintf(stderr, "corral: %s\n", err);
			return 1;
		}
		o.kernel = kpath;
		o.initrd = ipath;
	}

	int kvm = engine_pick(&o);
	if (kvm < 0)
		return 1;

	int out_fd = -1, in_fd = -1;
	if (o.serial == SERIAL_STDIO) {
		out_fd = STDOUT_FILENO;
		in_fd = STDIN_FILENO;
	} else if (o.serial == SERIAL_FILE) {
		out_fd = open(o.serial_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (out_fd < 0) {
			fprintf(stderr, "corral: --serial file:%s: %s\n", o.serial_path, strerror(errno));
			return 1;
		}
	}

	signals_install();
	struct term_in tin = {.fd = in_fd};
	struct emu_host host = {.poll_input = in_fd >= 0 ? term_poll_input : NULL, .opaque = &tin};
	/* CORRAL_EMU_CLOCK: picoseconds per instruction, 0 for host time */
	const char *clk = getenv("CORRAL_EMU_CLOCK");
	host.ps_per_insn = clk ? strtoull(clk, NULL, 10) : EMU_PS_PER_INSN_DEFAULT;
	host.realtime_idle = in_fd >= 0 && isatty(in_fd);
	host.cpu_model = o.cpu_model;
	if (in_fd >= 0)
		term_make_raw();

	int status;
	for (;;) {
		struct machine *m;
		struct cpu_state bsp;
		if (vm_create(&o, out_fd, &m, &bsp, &tin.hvc) < 0) {
			status = 1;
			break;
		}
		struct cpu_state mid;
		host.stop_after = o.handover;
		host.final = &mid;
		struct emu_result res = engine_run(kvm, m, &bsp, &host);
		if (res.end == EMU_PAUSED) {
			fprintf(stderr, "corral: handover: %s -> %s at rip 0x%" PRIx64 "\n", kvm ? "kvm" : "emu",
				kvm ? "emu" : "kvm", mid.rip);
			host.stop_after = 0;
			res = engine_run(!kvm, m, &mid, &host);
		}
		machine_destroy(m);
		tin.hvc = NULL;
		term_restore();
		switch (res.end) {
		case EMU_POWER_OFF: status = 0; break;
		case EMU_RESET:
			if (run_signal) {
				status = 128 + run_signal;
				break;
			}
			if (o.no_reboot) {
				fprintf(stderr, "corral: guest requested a reset; stopping (--no-reboot)\n");
				status = 0;
				break;
			}
			if (in_fd >= 0)
				term_make_raw();
			continue;
		case EMU_TRIPLE_FAULT:
			fprintf(stderr, "corral: guest triple fault at rip 0x%" PRIx64 " (vCPU %u); stopping\n",
				res.rip, res.cpu);
			status = 1;
			break;
		case EMU_HUNG:
			fprintf(stderr,
				"corral: every vCPU is halted and nothing can wake them "
				"(vCPU 0 at rip 0x%" PRIx64 "); stopping\n",
				res.rip);
			status = 1;
			break;
		case EMU_QUIT: status = run_signal ? 128 + run_signal : 0; break;
		default:
			if (res.msg[0])
				fprintf(stderr, "corral: %s\n", res.msg);
			else
				fprintf(stderr, "corral: the %s engine failed: %s\n", kvm ? "kvm" : "emu",
					strerror(res.err ? -res.err : EINVAL));
			status = 1;
			break;
		}
		break;
	}
	term_restore();
	if (o.serial == SERIAL_FILE && out_fd >= 0)
		close(out_fd);
	disks_free(&o);
	return status;
}
