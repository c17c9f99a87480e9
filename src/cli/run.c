/* `corral run`: boot a system VM in the foreground: a Linux kernel (or the
 * guest kit's default), COM1 on the terminal (raw mode, Ctrl-A x quits) or a
 * file, on the emu or the kvm engine; `corral restore`: the same from a
 * snapshot. The VM itself is vm/'s, the control API api/'s: this file
 * parses options into a struct vm_config, runs the VM and prints. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "backend/block.h"
#include "backend/dynlib.h"
#include "backend/net.h"
#include "boot/boot.h"
#include "cli/cli.h"
#include "debug/gdbstub.h"
#include "vm/migrate.h"
#include "vm/vm.h"

enum serial_mode { SERIAL_STDIO, SERIAL_FILE, SERIAL_NONE };

struct run_opts {
	struct vm_config cfg;
	char *disk_copy[VM_MAX_DISKS]; /* the strdup'd --disk options cfg.disk points into */
	const char *api_sock;	       /* --api-sock PATH */
	const char *gdb;	       /* --gdb SPEC */
	int gdb_wait;		       /* --gdb-wait */
	const char *restore;	       /* corral restore: the snapshot directory */
	int paused;		       /* corral restore --paused */
	const char *disk_dir;	       /* corral restore --disk-dir */
	int keep_vmgenid;	       /* corral restore --keep-vmgenid */
	int keep_mac;		       /* corral restore --keep-mac */
	const char *incoming;	       /* --incoming URL: the VM comes from a migration */
	const char *not_override;      /* the first guest option --incoming cannot take */
	const char *guest_opt;	       /* the first option that configures the guest */
};

/* ---- The terminal ---- */

static struct termios term_saved;
static volatile sig_atomic_t term_raw;
static volatile sig_atomic_t run_signal;
/* The VM the stop signals stop (one per corral run process). */
static struct vm *volatile run_vm;

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

static volatile sig_atomic_t run_signal_at; /* CLOCK_MONOTONIC seconds of the first */

static void on_stop_signal(int sig)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* A second signal means now: the VM may be stuck outside the engine.
	 * Not one within 3 s of the first, though: timeout(1) and service
	 * managers send SIGTERM to the process and to its group at once, and
	 * an exit now would skip closing the disks (a qcow2 image's metadata
	 * is written at flush or close). */
	if (run_signal) {
		if (now.tv_sec - run_signal_at < 3)
			return;
		if (term_raw)
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &term_saved);
		_exit(128 + sig);
	}
	run_signal_at = (sig_atomic_t)now.tv_sec;
	run_signal = sig;
	struct vm *vm = run_vm;
	if (vm)
		vm_stop_async(vm);
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
	struct vm *vm;
	int eof; /* the input ended; what is buffered still goes in */
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

static size_t term_deliver(struct term_in *t, const uint8_t *buf, size_t n)
{
	return vm_console_input(t->vm, buf, n);
}

static int term_poll_input(void *opaque, const int *wake, unsigned nwake, int timeout_ms)
{
	struct term_in *t = opaque;
	uint8_t raw[128];

	/* Feed what is buffered as the guest makes room. */
	t->pos += term_deliver(t, t->buf + t->pos, t->len - t->pos);
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

	/* Device work from host threads (a network) and the VM's own wake-ups
	 * end the wait too. */
	struct pollfd pfd[3] = {{.fd = t->fd, .events = POLLIN}};
	unsigned npfd = 1;
	for (unsigned k = 0; k < nwake && npfd < 3; k++)
		pfd[npfd++] = (struct pollfd){.fd = wake[k], .events = POLLIN};
	int r = poll(pfd, npfd, timeout_ms);
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
	t->pos += term_deliver(t, t->buf, t->len);
	return 0;
}

/* ---- Arguments ---- */

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: corral run [--kernel FILE [--initrd FILE] [--append CMDLINE]] [--mem SIZE]\n"
		"                  [--cpus N] [--engine emu|kvm|auto] [--serial stdio|file:PATH|none]\n"
		"                  [--cpu-model corral|host] [--accel-threads single|multi]\n"
		"                  [--disk PATH[,format=raw|qcow2][,readonly][,serial=S][,cache=C]\n"
		"                          [,bw=SIZE[:MS[:BURST]]][,ops=N[:MS[:BURST]]]]...\n"
		"                  [--rng] [--balloon on|SPEC]\n"
		"                  [--net user[,hostfwd=tcp:[HOSTADDR]:PORT-[GUESTADDR]:PORT]...|tap,ifname=NAME]\n"
		"                  [--virtio-console] [--device isa-debug-exit[,iobase=N][,iosize=N]]\n"
		"                  [--no-reboot] [--api-sock PATH] [--incoming tcp:ADDR:PORT|unix:PATH]\n"
		"                  [--gdb SPEC [--gdb-wait]] [--record FILE | --replay FILE]\n"
		"                  [--replay-snapshots N[,KEEP]|off]\n\n"
		"Boots a virtual PC in the foreground. Without --kernel it boots the guest kit's\n"
		"default kernel and initramfs (built by corral-mkguest; tools/mkguest.sh in a\n"
		"source tree).\n\n"
		"  --kernel FILE    Linux kernel: bzImage or vmlinux (ELF); or a Multiboot (version 1)\n"
		"                   kernel: ELF32, ELF64 or a.out kludge, entered in 32-bit mode\n"
		"                   (Multiboot 2 kernels too)\n"
		"  --initrd FILE    initramfs; for a Multiboot kernel FILE[,FILE...]: its modules\n"
		"  --append S       kernel command line\n"
		"  --mem SIZE       guest RAM, e.g. 512M or 2G (default 512M; a bare number is MiB)\n"
		"  --cpus N         virtual CPUs, 1-%d (default 1)\n"
		"  --engine E       emu (corral's interpreter), kvm (/dev/kvm), or auto (default:\n"
		"                   kvm where it runs at hardware speed, else emu; see 'corral info')\n"
		"  --cpu-model M    corral (default: the CPU emu implements, the same under kvm, so a\n"
		"                   VM can move between engines) or host (kvm: all KVM offers)\n"
		"  --accel-threads T  emu with 2+ vCPUs: multi (default: a host thread per vCPU,\n"
		"                   host time; as QEMU's thread=multi) or single (the vCPUs take\n"
		"                   turns on one thread; instruction-counted time, reproducible;\n"
		"                   always with --record, --replay or --gdb)\n"
		"  --serial S       COM1 on stdio (default; raw terminal, C-a x quits, C-a h helps),\n"
		"                   file:PATH, or none\n"
		"  --disk SPEC      a virtio-blk disk (repeatable: /dev/vda, vdb, ...): an image\n"
		"                   file, then options: format=raw|qcow2 (default: probed),\n"
		"                   readonly, serial=S (up to 20 characters), cache=writeback\n"
		"                   (default: through the host's page cache) or cache=none\n"
		"                   (O_DIRECT: guest data bypasses it; the file system must\n"
		"                   support O_DIRECT, tmpfs may not), bw=SIZE[:MS[:BURST]]\n"
		"                   (a token bucket of SIZE bytes refilled every MS ms, default\n"
		"                   1000, plus BURST bytes once: bw=20M is 20 MiB/s) and\n"
		"                   ops=N[:MS[:BURST]] (requests) limit its rate\n"
		"  --net SPEC       a virtio-net NIC (repeatable; none without it): user = NAT\n"
		"                   through libslirp (guest 10.0.2.15 by DHCP, host 10.0.2.2,\n"
		"                   DNS 10.0.2.3), with hostfwd=tcp|udp:[HOSTADDR]:PORT-[GUESTADDR]:PORT\n"
		"                   rules and restrict=on to cut the guest off from the outside;\n"
		"                   tap,ifname=NAME = a host tap device; either takes rate\n"
		"                   limits as --disk's bw= and ops=, per direction: tx_bw=,\n"
		"                   tx_ops= (what the guest sends), rx_bw=, rx_ops=\n"
		"  --rng            a virtio-rng device (the guest's /dev/hwrng)\n"
		"  --balloon SPEC   a virtio-balloon device (PUT/PATCH/GET /balloon on --api-sock): on,\n"
		"                   or options: amount=SIZE (the target, default 0), deflate_on_oom=on\n"
		"                   (the guest may take pages back under memory pressure),\n"
		"                   stats=SECONDS (statistics every SECONDS, GET /balloon/statistics),\n"
		"                   free_page_reporting=on (freed guest memory goes back to the host)\n"
		"  --virtio-console a virtio-console (the guest's hvc0): it takes the terminal's\n"
		"                   input instead of COM1; its output goes where COM1's does\n"
		"  --device SPEC    isa-debug-exit[,iobase=N][,iosize=N]: as QEMU's (ports 0x501-0x502\n"
		"                   by default); a guest write of V ends corral with exit status\n"
		"                   (V << 1) | 1\n"
		"  --no-reboot      stop instead of rebooting when the guest resets\n"
		"  --api-sock PATH  serve the control API (HTTP/JSON, docs/api.yaml) on a unix\n"
		"                   socket at PATH: pause, resume, snapshots ('corral snapshot'),\n"
		"                   migration ('corral migrate')\n"
		"  --incoming URL   wait on tcp:ADDR:PORT or unix:PATH for one VM that 'corral\n"
		"                   migrate' sends, and run it: its configuration comes with it;\n"
		"                   --disk gives its disks other paths, --net its NICs other\n"
		"                   network specs (as many, in order), the host side\n"
		"                   (--serial, --api-sock) and --engine are this corral's;\n"
		"                   --incoming defer: wait for PUT /migrate/incoming {\"url\":\n"
		"                   URL} on --api-sock (an empty VM process)\n"
		"  --gdb SPEC       serve GDB's remote protocol (emu engine): tcp:[ADDR]:PORT\n"
		"                   (ADDR empty: 127.0.0.1), unix:PATH, or a bare PORT; then\n"
		"                   'target remote :PORT' in gdb (docs/gdbstub.md); with --replay\n"
		"                   also reverse-stepi, reverse-continue, reverse-step/next\n"
		"  --gdb-wait       with --gdb: hold the VM before its first instruction until a\n"
		"                   debugger attaches and lets it run\n"
		"  --record FILE    record every input from outside the machine (console, network\n"
		"                   frames, random bytes, idle time) into FILE (emu engine;\n"
		"                   docs/replay.md); a writable disk writes to FILE.diskN.qcow2,\n"
		"                   an overlay on its image, which stays as the recording began\n"
		"  --replay FILE    run the recorded machine again from FILE, with the options of\n"
		"                   the recording: the same output and final RAM, or an error that\n"
		"                   says where it diverged; with --gdb a debugger goes backwards\n"
		"  --replay-snapshots N[,KEEP]|off\n"
		"                   with --replay and --gdb: keep a snapshot in memory every N\n"
		"                   instructions (default 20000000), at most KEEP (default 32,\n"
		"                   fewer for a large RAM; old ones thinned out), so that going\n"
		"                   back replays from the nearest one; off: from the start\n"
		"  -h, --help       show this help\n",
		VM_MAX_CPUS);
}

/* --balloon on | [amount=SIZE][,deflate_on_oom=on|off][,stats=SECONDS][,free_page_reporting=on|off] */
static int parse_balloon(const char *arg, struct vm_config *c)
{
	struct vm_balloon *b = &c->balloon;
	char *copy = strdup(arg), *save = NULL;
	if (!copy)
		return -1;
	*b = (struct vm_balloon){.on = 1};
	int r = 0;
	for (char *opt = strtok_r(copy, ",", &save); opt && !r; opt = strtok_r(NULL, ",", &save)) {
		char *val = strchr(opt, '=');
		uint64_t n;
		char *end;
		int *flag = NULL;
		if (val)
			*val++ = 0;
		if (!strcmp(opt, "on") && !val)
			continue;
		if (!strcmp(opt, "deflate_on_oom"))
			flag = &b->deflate_on_oom;
		else if (!strcmp(opt, "free_page_reporting"))
			flag = &b->free_page_reporting;
		if (flag && val && (!strcmp(val, "on") || !strcmp(val, "off"))) {
			*flag = !strcmp(val, "on");
		} else if (flag) {
			fprintf(stderr, "corral: --balloon '%s': %s must be on or off\n", arg, opt);
			r = -1;
		} else if (!strcmp(opt, "amount") && val) {
			if (cli_parse_size(val, 20, &n) < 0 || (n & 0xfffff) || (n >> 20) > UINT32_MAX) {
				fprintf(stderr,
					"corral: --balloon '%s': amount '%s': not a size in whole MiB (e.g. 64M)\n",
					arg, val);
				r = -1;
			} else {
				b->amount_mib = (uint32_t)(n >> 20);
			}
		} else if (!strcmp(opt, "stats") && val) {
			errno = 0;
			unsigned long s = strtoul(val, &end, 10);
			if (errno || end == val || *end || val[0] == '-' || s > VM_BALLOON_STATS_MAX) {
				fprintf(stderr, "corral: --balloon '%s': stats '%s': seconds from 0 to %d\n", arg, val,
					VM_BALLOON_STATS_MAX);
				r = -1;
			} else {
				b->stats_s = (unsigned)s;
			}
		} else {
			fprintf(stderr,
				"corral: --balloon '%s': unknown option '%s' (known: on, amount=SIZE, "
				"deflate_on_oom=on|off, stats=SECONDS, free_page_reporting=on|off)\n",
				arg, opt);
			r = -1;
		}
	}
	free(copy);
	return r;
}

/* --disk PATH[,format=raw|qcow2][,readonly][,serial=S][,cache=none|writeback][,bw=..][,ops=..] */
static int parse_disk(const char *arg, struct run_opts *o)
{
	if (o->cfg.ndisks == VM_MAX_DISKS) {
		fprintf(stderr, "corral: --disk '%s': at most %d disks\n", arg, VM_MAX_DISKS);
		return -1;
	}
	struct vm_disk *d = &o->cfg.disk[o->cfg.ndisks];
	char *copy = strdup(arg), *save = NULL, *serial, err[160];
	int r;
	if (!copy)
		return -1;
	*d = (struct vm_disk){.path = strtok_r(copy, ",", &save), .format = BLK_FMT_PROBE};
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
			d->serial = serial = opt + 7;
			if (strlen(serial) > VM_DISK_SERIAL_MAX) {
				fprintf(stderr, "corral: --disk '%s': serial '%s': at most 20 characters\n", arg,
					serial);
				free(copy);
				return -1;
			}
		} else if ((r = rate_cfg_parse_opt(opt, &d->rate, err, sizeof(err))) != 0) {
			if (r < 0) {
				fprintf(stderr, "corral: --disk '%s': '%s': %s\n", arg, opt, err);
				free(copy);
				return -1;
			}
		} else {
			fprintf(stderr,
				"corral: --disk '%s': unknown option '%s' (known: format=raw|qcow2, readonly, "
				"serial=S, cache=none|writeback, bw=SIZE[:MS[:BURST]], ops=N[:MS[:BURST]])\n",
				arg, opt);
			free(copy);
			return -1;
		}
	}
	o->disk_copy[o->cfg.ndisks++] = copy;
	return 0;
}

/* A port number or count for --device: decimal or 0x hex, at most max. */
static int parse_port_num(const char *s, unsigned long max, uint16_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* --device isa-debug-exit[,iobase=N][,iosize=N] (QEMU's device and options) */
static int parse_device(const char *arg, struct vm_config *c)
{
	const char *opt = strchr(arg, ',');
	size_t nlen = opt ? (size_t)(opt - arg) : strlen(arg);
	if (nlen != strlen("isa-debug-exit") || strncmp(arg, "isa-debug-exit", nlen)) {
		fprintf(stderr, "corral: --device '%s': unknown device '%.*s' (known: isa-debug-exit)\n", arg,
			(int)nlen, arg);
		return -1;
	}
	if (c->debug_exit.on) {
		fprintf(stderr, "corral: --device '%s': isa-debug-exit given twice\n", arg);
		return -1;
	}
	c->debug_exit.on = 1;
	c->debug_exit.iobase = VM_DEBUG_EXIT_IOBASE;
	c->debug_exit.iosize = VM_DEBUG_EXIT_IOSIZE;
	while (opt) {
		const char *o = opt + 1, *next = strchr(o, ',');
		size_t olen = next ? (size_t)(next - o) : strlen(o);
		char val[32];
		uint16_t *dst = NULL;
		unsigned long max = 0;
		if (olen > 7 && !strncmp(o, "iobase=", 7)) {
			dst = &c->debug_exit.iobase;
			max = 0xffff;
		} else if (olen > 7 && !strncmp(o, "iosize=", 7)) {
			dst = &c->debug_exit.iosize;
			max = 0x100;
		}
		if (!dst) {
			fprintf(stderr, "corral: --device '%s': unknown option '%.*s' (known: iobase=N, iosize=N)\n",
				arg, (int)olen, o);
			return -1;
		}
		if (olen - 7 >= sizeof(val) || (memcpy(val, o + 7, olen - 7), val[olen - 7] = 0, 0) ||
		    parse_port_num(val, max, dst) < 0 || (dst == &c->debug_exit.iosize && !*dst)) {
			fprintf(stderr,
				"corral: --device '%s': '%.*s' must be a number (0x hex allowed) up to 0x%lx%s\n", arg,
				(int)olen, o, max, dst == &c->debug_exit.iosize ? ", at least 1" : "");
			return -1;
		}
		opt = next;
	}
	if ((uint32_t)c->debug_exit.iobase + c->debug_exit.iosize > 0x10000) {
		fprintf(stderr, "corral: --device '%s': ports 0x%x + %u run past 0xffff\n", arg, c->debug_exit.iobase,
			c->debug_exit.iosize);
		return -1;
	}
	return 0;
}

static void disks_free(struct run_opts *o)
{
	for (unsigned k = 0; k < o->cfg.ndisks; k++)
		free(o->disk_copy[k]);
	o->cfg.ndisks = 0;
}

static void restore_usage(FILE *f)
{
	fprintf(f, "usage: corral restore DIR [--engine E] [--serial stdio|file:PATH|none] [--paused]\n"
		   "                      [--api-sock PATH] [--disk-dir PATH] [--keep-vmgenid]\n"
		   "                      [--keep-mac] [--net SPEC]... [--gdb SPEC [--gdb-wait]]\n"
		   "                      [--record FILE | --replay FILE [--replay-snapshots N[,KEEP]|off]]\n\n"
		   "Continues a VM from the snapshot in DIR ('corral snapshot', or the API's\n"
		   "PUT /snapshot/create) in this process: the guest goes on where it stood.\n"
		   "The machine's configuration comes from the snapshot, which is never written:\n"
		   "each writable disk gets a new qcow2 overlay on the snapshot's image of it, in\n"
		   "a new directory DIR.restore-N beside DIR (the first N not taken), so every\n"
		   "restore writes files of its own and keeps them after it ends. Each restore is\n"
		   "a clone: the guest gets a new VM generation ID (its vmgenid driver reseeds\n"
		   "the random number generator), unless --keep-vmgenid, and each NIC a fresh MAC\n"
		   "address, unless --keep-mac. The user network's state (DHCP leases) comes\n"
		   "back and its hostfwd ports are bound again; connections through it are not\n"
		   "carried over (docs/snapshots.md).\n\n"
		   "  --engine E       emu, kvm or auto (default): either restores a snapshot\n"
		   "                   taken under either\n"
		   "  --serial S       COM1 on stdio (default), file:PATH, or none\n"
		   "  --paused         stay paused until the API's PATCH /vm {\"state\": \"Resumed\"}\n"
		   "  --api-sock PATH  serve the control API on a unix socket at PATH\n"
		   "  --disk-dir PATH  put the disks' overlays (diskK.qcow2) in PATH instead\n"
		   "                   (created if needed; an existing overlay is never replaced)\n"
		   "  --keep-vmgenid   keep the saved VM generation ID: the guest is not told it\n"
		   "                   is a clone (clones then draw the same random numbers)\n"
		   "  --keep-mac       keep each NIC's saved MAC address (else fresh ones, which\n"
		   "                   the guest reads at its driver's next probe)\n"
		   "  --net SPEC       the network of each saved NIC in order, instead of the\n"
		   "                   saved spec (e.g. other hostfwd ports); as many as saved\n"
		   "  --record FILE    record every input from outside the machine from the\n"
		   "                   snapshot on (emu; docs/replay.md): the recording names the\n"
		   "                   snapshot, which its replay restores\n"
		   "  --replay FILE    restore the snapshot FILE was recorded from and run it\n"
		   "                   again with its inputs; another snapshot is refused\n"
		   "  --gdb SPEC       serve GDB's remote protocol (emu), as 'corral run --gdb';\n"
		   "                   with --replay a debugger also goes backwards, as far back\n"
		   "                   as the restore\n"
		   "  --gdb-wait       with --gdb: hold the VM before its first instruction\n"
		   "  --replay-snapshots N[,KEEP]|off\n"
		   "                   with --replay and --gdb: a snapshot in memory every N\n"
		   "                   instructions, from which going back replays (see run)\n"
		   "  -h, --help       show this help\n");
}

/* restore: DIR is the one argument, and the guest's options are refused. */
static int parse_args(int argc, char **argv, struct run_opts *o, enum serial_mode *serial, int restore)
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
		OPT_ACCEL_THREADS,
		OPT_HANDOVER,
		OPT_DISK,
		OPT_NET,
		OPT_RNG,
		OPT_BALLOON,
		OPT_HVC,
		OPT_DEVICE,
		OPT_API_SOCK,
		OPT_PAUSED,
		OPT_DISK_DIR,
		OPT_KEEP_VMGENID,
		OPT_KEEP_MAC,
		OPT_INCOMING,
		OPT_GDB,
		OPT_GDB_WAIT,
		OPT_RECORD,
		OPT_REPLAY,
		OPT_REPLAY_SNAPSHOTS,
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
		{"accel-threads", required_argument, NULL, OPT_ACCEL_THREADS},
		/* hidden, tests: hand the vCPU over to the other engine after N
		 * instructions (emu) or exits (kvm) */
		{"handover", required_argument, NULL, OPT_HANDOVER},
		{"disk", required_argument, NULL, OPT_DISK},
		{"net", required_argument, NULL, OPT_NET},
		{"rng", no_argument, NULL, OPT_RNG},
		{"balloon", required_argument, NULL, OPT_BALLOON},
		{"virtio-console", no_argument, NULL, OPT_HVC},
		{"device", required_argument, NULL, OPT_DEVICE},
		{"api-sock", required_argument, NULL, OPT_API_SOCK},
		{"paused", no_argument, NULL, OPT_PAUSED},
		{"disk-dir", required_argument, NULL, OPT_DISK_DIR},
		{"keep-vmgenid", no_argument, NULL, OPT_KEEP_VMGENID},
		{"keep-mac", no_argument, NULL, OPT_KEEP_MAC},
		{"incoming", required_argument, NULL, OPT_INCOMING},
		{"gdb", required_argument, NULL, OPT_GDB},
		{"gdb-wait", no_argument, NULL, OPT_GDB_WAIT},
		{"record", required_argument, NULL, OPT_RECORD},
		{"replay", required_argument, NULL, OPT_REPLAY},
		{"replay-snapshots", required_argument, NULL, OPT_REPLAY_SNAPSHOTS},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	int opt;
	char *end;
	unsigned long n;

	struct vm_config *c = &o->cfg;
	memset(o, 0, sizeof(*o));
	vm_config_init(c);
	*serial = SERIAL_STDIO;
	optind = 1;
	opterr = 0;
	int li = -1;
	while ((opt = getopt_long(argc, argv, "h", longopts, &li)) != -1) {
		/* the option's name (argv[optind - 1] is its value when that
		 * comes as a word of its own) */
		const char *name = li >= 0 ? longopts[li].name : argv[optind - 1];
		li = -1;
		/* --net replaces the saved networks' specs (other hostfwd ports);
		 * the engine is the restoring side's choice (either engine loads
		 * what either saved) */
		if (opt >= OPT_KERNEL && opt <= OPT_HVC && opt != OPT_SERIAL && opt != OPT_ENGINE && opt != OPT_NET &&
		    !o->guest_opt)
			o->guest_opt = name;
		if (opt >= OPT_KERNEL && opt <= OPT_HVC && opt != OPT_SERIAL && opt != OPT_ENGINE && opt != OPT_DISK &&
		    opt != OPT_NET && !o->not_override)
			o->not_override = name;
		switch (opt) {
		case OPT_INCOMING: o->incoming = optarg; break;
		case OPT_API_SOCK: o->api_sock = optarg; break;
		case OPT_PAUSED: o->paused = 1; break;
		case OPT_DISK_DIR: o->disk_dir = optarg; break;
		case OPT_KEEP_VMGENID: o->keep_vmgenid = 1; break;
		case OPT_KEEP_MAC: o->keep_mac = 1; break;
		case OPT_GDB: o->gdb = optarg; break;
		case OPT_GDB_WAIT: o->gdb_wait = 1; break;
		case OPT_RECORD: c->record = optarg; break;
		case OPT_REPLAY: c->replay = optarg; break;
		case OPT_REPLAY_SNAPSHOTS: {
			if (!strcmp(optarg, "off")) {
				c->replay_snap_every = UINT64_MAX;
				break;
			}
			char *rest;
			errno = 0;
			unsigned long long every = strtoull(optarg, &rest, 10), keep = 0;
			int bad = errno || rest == optarg || optarg[0] == '-' || every < 1000 || every == UINT64_MAX;
			if (!bad && *rest == ',') {
				const char *k = rest + 1;
				keep = strtoull(k, &rest, 10);
				bad = errno || rest == k || *k == '-' || keep < 2 || keep > 4096;
			}
			if (bad || *rest) {
				fprintf(stderr,
					"corral: --replay-snapshots '%s': must be N[,KEEP] (N instructions, at least "
					"1000; "
					"KEEP 2 to 4096) or off\n",
					optarg);
				return -1;
			}
			c->replay_snap_every = every;
			c->replay_snap_keep = (unsigned)keep;
			break;
		}
		case OPT_KERNEL: c->kernel = optarg; break;
		case OPT_INITRD: c->initrd = optarg; break;
		case OPT_APPEND: c->cmdline = optarg; break;
		case OPT_FLAT: c->flat = optarg; break;
		case OPT_NO_REBOOT: c->no_reboot = 1; break;
		case OPT_RNG: c->rng = 1; break;
		case OPT_HVC: c->hvc = 1; break;
		case OPT_BALLOON:
			if (parse_balloon(optarg, c) < 0)
				return -1;
			break;
		case OPT_DISK:
			if (parse_disk(optarg, o) < 0)
				return -1;
			break;
		case OPT_DEVICE:
			if (parse_device(optarg, c) < 0)
				return -1;
			break;
		case OPT_NET:
			if (c->nnets == VM_MAX_NETS) {
				fprintf(stderr, "corral: --net '%s': at most %d networks\n", optarg, VM_MAX_NETS);
				return -1;
			}
			c->net[c->nnets++] = optarg;
			break;
		case OPT_MEM:
			if (cli_parse_size(optarg, 20, &c->mem) < 0) {
				fprintf(stderr, "corral: --mem '%s': not a size (use e.g. 512M or 2G)\n", optarg);
				return -1;
			}
			if (c->mem < VM_MEM_MIN || c->mem > VM_MEM_MAX) {
				fprintf(stderr, "corral: --mem '%s': must be between 16M and 1T\n", optarg);
				return -1;
			}
			if (c->mem & 0xfff) {
				fprintf(stderr, "corral: --mem '%s': must be a multiple of 4K\n", optarg);
				return -1;
			}
			break;
		case OPT_CPUS:
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || n < 1 || n > VM_MAX_CPUS) {
				fprintf(stderr, "corral: --cpus '%s': must be a number from 1 to %d\n", optarg,
					VM_MAX_CPUS);
				return -1;
			}
			c->cpus = (unsigned)n;
			break;
		case OPT_ENGINE:
			if (!strcmp(optarg, "kvm")) {
				c->engine = VM_ENGINE_KVM;
			} else if (!strcmp(optarg, "emu")) {
				c->engine = VM_ENGINE_EMU;
			} else if (!strcmp(optarg, "auto")) {
				c->engine = VM_ENGINE_AUTO;
			} else {
				fprintf(stderr, "corral: --engine '%s': must be emu, kvm or auto\n", optarg);
				return -1;
			}
			break;
		case OPT_CPU_MODEL:
			if (!strcmp(optarg, "corral")) {
				c->cpu_model = CPU_MODEL_CORRAL;
			} else if (!strcmp(optarg, "host")) {
				c->cpu_model = CPU_MODEL_HOST;
			} else {
				fprintf(stderr, "corral: --cpu-model '%s': must be corral or host\n", optarg);
				return -1;
			}
			break;
		case OPT_ACCEL_THREADS:
			if (!strcmp(optarg, "single")) {
				c->threads = ENGINE_THREADS_SINGLE;
			} else if (!strcmp(optarg, "multi")) {
				c->threads = ENGINE_THREADS_MULTI;
			} else {
				fprintf(stderr, "corral: --accel-threads '%s': must be single or multi\n", optarg);
				return -1;
			}
			break;
		case OPT_HANDOVER:
			errno = 0;
			c->handover = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || !c->handover) {
				fprintf(stderr, "corral: --handover '%s': must be a positive count\n", optarg);
				return -1;
			}
			break;
		case OPT_SERIAL:
			if (!strcmp(optarg, "stdio")) {
				*serial = SERIAL_STDIO;
			} else if (!strcmp(optarg, "none")) {
				*serial = SERIAL_NONE;
			} else if (!strncmp(optarg, "file:", 5) && optarg[5]) {
				*serial = SERIAL_FILE;
				c->serial_path = optarg + 5;
			} else {
				fprintf(stderr, "corral: --serial '%s': must be stdio, file:PATH or none\n", optarg);
				return -1;
			}
			break;
		case 'h':
		case OPT_HELP:
			if (restore)
				restore_usage(stdout);
			else
				run_usage(stdout);
			return 1;
		default:
			fprintf(stderr, "corral: %s: unknown or incomplete option '%s' (see 'corral %s --help')\n",
				argv[0], argv[optind - 1], argv[0]);
			return -1;
		}
	}
	if (c->replay_snap_every && (!c->replay || !o->gdb)) {
		fprintf(stderr, "corral: --replay-snapshots goes with --replay and --gdb\n");
		return -1;
	}
	if (c->record || c->replay) {
		const char *rropt = c->record ? "--record" : "--replay";
		const char *with = o->paused		    ? "--paused"
				   : o->incoming	    ? "--incoming"
				   : o->gdb && c->record    ? "--gdb"
				   : o->api_sock	    ? "--api-sock"
				   : o->disk_dir	    ? "--disk-dir" /* the overlay is FILE.diskK.qcow2 */
				   : c->record && c->replay ? "--replay"
							    : NULL;
		if (with) {
			/* a replay runs exactly what the recording ran, with
			 * nobody else changing the machine on the way */
			fprintf(stderr, "corral: %s cannot be combined with %s\n", rropt, with);
			return -1;
		}
		if (c->engine == VM_ENGINE_KVM) {
			fprintf(stderr,
				"corral: %s needs --engine emu: under kvm no instruction count tells when an input "
				"arrived\n",
				rropt);
			return -1;
		}
	}
	if (restore) {
		if (o->guest_opt) {
			fprintf(stderr, "corral: restore: --%s: the VM's configuration comes from the snapshot\n",
				o->guest_opt);
			return -1;
		}
		if (optind + 1 != argc) {
			fprintf(stderr, "corral: restore: give the snapshot directory (see 'corral restore --help')\n");
			return -1;
		}
		if (o->incoming) {
			fprintf(stderr, "corral: restore: --incoming is an option of 'corral run'\n");
			return -1;
		}
		o->restore = argv[optind];
		return 0;
	}
	if (o->paused || o->disk_dir || o->keep_vmgenid || o->keep_mac) {
		fprintf(stderr, "corral: run: %s is an option of 'corral restore'\n",
			o->paused	  ? "--paused"
			: o->disk_dir	  ? "--disk-dir"
			: o->keep_vmgenid ? "--keep-vmgenid"
					  : "--keep-mac");
		return -1;
	}
	if (o->incoming && !strcmp(o->incoming, "defer") && !o->api_sock) {
		fprintf(stderr,
			"corral: run: --incoming defer needs --api-sock (PUT /migrate/incoming starts the wait)\n");
		return -1;
	}
	if (o->incoming && o->not_override) {
		fprintf(stderr, "corral: run: --%s: with --incoming the VM's configuration comes from the source\n",
			o->not_override);
		return -1;
	}
	if (o->gdb_wait && !o->gdb) {
		fprintf(stderr, "corral: run: --gdb-wait needs --gdb\n");
		return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "corral: run: unexpected argument '%s' (see 'corral run --help')\n", argv[optind]);
		return -1;
	}
	if (c->cpu_model == CPU_MODEL_HOST && c->engine != VM_ENGINE_KVM) {
		fprintf(stderr, "corral: --cpu-model host needs --engine kvm (emu implements only the corral model)\n");
		return -1;
	}
	if (c->handover && (c->engine == VM_ENGINE_AUTO || c->cpus != 1)) {
		fprintf(stderr, "corral: --handover needs --engine emu or kvm and one vCPU\n");
		return -1;
	}
	if ((c->initrd || c->cmdline) && !c->kernel && !c->flat) {
		/* the default guest brings its own initramfs; --append still applies */
		if (c->initrd) {
			fprintf(stderr, "corral: --initrd needs --kernel\n");
			return -1;
		}
	}
	return 0;
}

/* ---- Running ---- */

static void run_log(void *opaque, const char *line)
{
	(void)opaque;
	fprintf(stderr, "corral: %s\n", line);
}

/* Between a guest reset and the next boot, as around every run. */
static void run_reboot(void *opaque)
{
	int in_fd = *(const int *)opaque;
	term_restore();
	if (in_fd >= 0)
		term_make_raw();
}

/* --incoming defer: the API first, with no VM; each PUT /migrate/incoming
 * starts a wait for one; a failed one is reported and the next PUT may
 * come. 0 and *vm, or 1 (a signal, or no API). */
static int run_incoming_deferred(const char *api_sock, struct vm_config *c, struct api **api, struct vm **vm)
{
	char err[512], url[MIGRATE_URL_MAX];
	if (api_start(api_sock, NULL, CORRAL_VERSION, api, err, sizeof(err)) < 0) {
		fprintf(stderr, "corral: %s\n", err);
		return 1;
	}
	for (;;) {
		int ls = api_wait_incoming(*api, &run_signal, url, sizeof(url));
		if (ls < 0)
			break;
		if (vm_incoming_on(ls, url, c, vm, err, sizeof(err)) == 0) {
			api_incoming_done(*api, *vm, NULL);
			return 0;
		}
		fprintf(stderr, "corral: %s\n", err);
		api_incoming_done(*api, NULL, err);
	}
	api_stop(*api);
	*api = NULL;
	return 1;
}

/* What of a parsed command line a static corral cannot serve (a library
 * loaded on demand, backend/dynlib.h), or NULL. A snapshot's own user
 * network shows in vm_restore's -ELIBACC instead. The gdb stub resolves its
 * host name with getaddrinfo, which in a static glibc loads NSS modules
 * with dlopen. */
static const char *run_needs_dynamic(const struct run_opts *o)
{
	char err[256];
	if (o->api_sock)
		return "--api-sock";
	if (o->incoming)
		return "--incoming";
	if (o->gdb)
		return "--gdb";
	for (unsigned k = 0; k < o->cfg.nnets; k++)
		if (net_preload(o->cfg.net[k], err, sizeof(err)) == -ELIBACC)
			return "--net user";
	return NULL;
}

static int run_main(int argc, char **argv, int restore)
{
	struct run_opts o;
	enum serial_mode serial;
	char err[512];
	int r = parse_args(argc, argv, &o, &serial, restore);
	if (r) {
		disks_free(&o);
		return r > 0 ? 0 : 2;
	}
	struct vm_config *c = &o.cfg;
	const char *why = dynlib_static() ? run_needs_dynamic(&o) : NULL;
	if (why) {
		disks_free(&o);
		return cli_exec_dynamic(why);
	}
	/* what the restore allocates from here to the guest's first
	 * instruction: on one huge page (corral-dyn's too, not the static
	 * corral's that hands over) */
	if (restore)
		cli_heap_huge();

	/* The environment tunes the library; it is read here, once. */
	cpu_opts_from_env(&c->cpu_opts);
	/* CORRAL_EMU_CLOCK: picoseconds per instruction, 0 for host time */
	const char *env = getenv("CORRAL_EMU_CLOCK");
	if (env)
		c->ps_per_insn = strtoull(env, NULL, 10);
	if ((env = getenv("CORRAL_BENCH_T0")))
		c->bench_t0 = strtoull(env, NULL, 10);
	c->verbose = getenv("CORRAL_VERBOSE") != NULL;
	char guest_dir[PATH_MAX], kernel_cache[PATH_MAX];
	if (boot_dirs_from_env(guest_dir, kernel_cache, sizeof(guest_dir)) == 0) {
		c->guest_dir = guest_dir;
		c->kernel_cache = kernel_cache[0] ? kernel_cache : NULL;
	}
	c->log = run_log;

	int in_fd = -1;
	if (serial == SERIAL_STDIO) {
		c->serial_fd = STDOUT_FILENO;
		in_fd = STDIN_FILENO;
	}
	struct term_in tin = {.fd = in_fd};
	c->poll_input = in_fd >= 0 ? term_poll_input : NULL;
	c->input_opaque = &tin;
	c->realtime_idle = in_fd >= 0 && isatty(in_fd);
	c->on_reboot = run_reboot;
	c->reboot_opaque = &in_fd;

	c->version = CORRAL_VERSION;
	c->disk_dir = o.disk_dir;
	c->keep_vmgenid = o.keep_vmgenid;
	c->keep_mac = o.keep_mac;
	signals_install();
	if (in_fd >= 0)
		term_make_raw();
	struct vm *vm;
	struct api *api = NULL;
	if (o.incoming && !strcmp(o.incoming, "defer")) {
		if (run_incoming_deferred(o.api_sock, c, &api, &vm)) {
			term_restore();
			disks_free(&o);
			return run_signal ? 128 + run_signal : 1;
		}
	} else if ((r = o.restore    ? vm_restore(o.restore, c, &vm, err, sizeof(err))
			: o.incoming ? vm_incoming(o.incoming, c, &vm, err, sizeof(err))
				     : vm_create(c, &vm, err, sizeof(err))) < 0) {
		term_restore();
		disks_free(&o);
		/* a static corral, a snapshot with a user network: nothing
		 * was written yet (vm_restore_from), corral-dyn restores it */
		if (r == -ELIBACC && o.restore && !run_signal)
			return cli_exec_dynamic("the snapshot's user network (--net user)");
		fprintf(stderr, "corral: %s\n", err);
		return 1;
	}
	if (o.paused)
		vm_pause_async(vm);
	if (o.api_sock && !api && api_start(o.api_sock, vm, CORRAL_VERSION, &api, err, sizeof(err)) < 0) {
		term_restore();
		fprintf(stderr, "corral: %s\n", err);
		vm_destroy(vm);
		disks_free(&o);
		return 1;
	}
	struct gdbstub *gdb = NULL;
	if (o.gdb && gdbstub_start(vm, o.gdb, o.gdb_wait, &gdb, err, sizeof(err)) < 0) {
		term_restore();
		fprintf(stderr, "corral: %s\n", err);
		api_stop(api);
		vm_destroy(vm);
		disks_free(&o);
		return 1;
	}
	if (gdb)
		fprintf(stderr, "corral: gdb: listening on %s%s\n", gdbstub_address(gdb),
			o.gdb_wait ? "; the VM waits for a debugger" : "");
	tin.vm = vm;
	run_vm = vm;
	if (run_signal)
		vm_stop_async(vm);

	struct vm_exit ex;
	int status;
	vm_run(vm, &ex);
	term_restore();
	switch (ex.end) {
	case VM_END_POWER_OFF:
		if (c->verbose)
			fprintf(stderr, "corral: the guest powered off\n");
		status = 0;
		break;
	case VM_END_RESET:
		if (run_signal) {
			status = 128 + run_signal;
			break;
		}
		fprintf(stderr, "corral: guest requested a reset; stopping (--no-reboot)\n");
		status = 0;
		break;
	case VM_END_TRIPLE_FAULT:
		fprintf(stderr, "corral: guest triple fault at rip 0x%" PRIx64 " (vCPU %u); stopping\n", ex.rip,
			ex.cpu);
		status = 1;
		break;
	case VM_END_HUNG:
		fprintf(stderr,
			"corral: every vCPU is halted and nothing can wake them "
			"(vCPU 0 at rip 0x%" PRIx64 "); stopping\n",
			ex.rip);
		status = 1;
		break;
	case VM_END_QUIT:
		if (c->verbose)
			fprintf(stderr, "corral: stopped (%s)\n", run_signal ? "a signal" : "asked to");
		status = run_signal ? 128 + run_signal : 0;
		break;
	/* as QEMU: exit((V << 1) | 1), of which the host keeps the low byte */
	case VM_END_EXIT_DEVICE: status = (int)(ex.status & 0xff); break;
	default:
		if (ex.msg[0])
			fprintf(stderr, "corral: %s\n", ex.msg);
		else
			fprintf(stderr, "corral: the %s engine failed: %s\n", vm_engine_name(vm),
				strerror(ex.err ? -ex.err : EINVAL));
		status = 1;
		break;
	}
	run_vm = NULL;
	gdbstub_stop(gdb);
	api_stop(api);
	vm_destroy(vm);
	disks_free(&o);
	return status;
}

int cmd_run(int argc, char **argv)
{
	return run_main(argc, argv, 0);
}

int cmd_restore(int argc, char **argv)
{
	return run_main(argc, argv, 1);
}

char *run_config_json(int argc, char **argv)
{
	struct run_opts o;
	enum serial_mode serial;
	char *text = NULL;
	int r = parse_args(argc, argv, &o, &serial, 0);
	if (r > 0)
		fprintf(stderr, "corral: vm create: --help: see 'corral vm create --help'\n");
	else if (r == 0 && o.api_sock)
		fprintf(stderr, "corral: vm create: --api-sock: corrald serves each VM's API itself\n");
	else if (r == 0 && (o.cfg.record || o.cfg.replay))
		fprintf(stderr, "corral: vm create: --record and --replay are options of 'corral run'\n");
	else if (r == 0 && serial != SERIAL_STDIO)
		fprintf(stderr, "corral: vm create: --serial: corrald keeps the console in a log ('corral vm logs')\n");
	else if (r == 0 && !(text = vm_config_to_json(&o.cfg)))
		fprintf(stderr, "corral: vm create: out of memory\n");
	disks_free(&o);
	return text;
}
