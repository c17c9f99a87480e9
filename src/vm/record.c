/* Record and replay at the VM's level (docs/replay.md): what a recording
 * may be made of, the replay file's header (the configuration, the images'
 * hashes) and its checks, the console's input, the result at the end. The
 * log itself is machine/replay.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "backend/block.h"
#include "machine/machine_impl.h"
#include "machine/replay.h"
#include "virtio/virtio.h"
#include "vm/vm_internal.h"

_Static_assert(REPLAY_HOW_POWER_OFF == (int)VM_END_POWER_OFF && REPLAY_HOW_QUIT == (int)VM_END_QUIT &&
		       REPLAY_HOW_EXIT_DEVICE == (int)VM_END_EXIT_DEVICE,
	       "replay.h's ends are vm.h's");

/* The configuration as both runs must share it: the host's side of it
 * (where output goes, caches, paths of files whose contents are hashed
 * instead, diagnostics) left out. A malloc'd JSON text or NULL. */
static char *config_text(const struct vm_config *c)
{
	char *raw = vm_config_to_json(c);
	json_t *o = raw ? json_loads(raw, 0, NULL) : NULL;
	free(raw);
	if (!o)
		return NULL;
	static const char *const host_keys[] = {"kernel",    "initrd",	     "flat",	     "serial_path",
						"guest_dir", "kernel_cache", "realtime_idle"};
	for (size_t k = 0; k < sizeof(host_keys) / sizeof(host_keys[0]); k++)
		json_object_del(o, host_keys[k]);
	json_t *cpu = json_object_get(o, "cpu");
	if (cpu) {
		json_object_del(cpu, "jit_stats");
		json_object_del(cpu, "jit_perfmap");
		json_object_del(cpu, "trace");
	}
	json_t *disks = json_object_get(o, "disks");
	for (size_t k = 0; disks && k < json_array_size(disks); k++)
		json_object_del(json_array_get(disks, k), "path");
	char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return text;
}

/* The first key whose value differs between two configurations, for the
 * message; "configuration" if they cannot be told apart by key. */
static void config_diff(const char *a, const char *b, char *key, size_t len)
{
	json_t *x = json_loads(a, 0, NULL), *y = json_loads(b, 0, NULL);
	snprintf(key, len, "the configuration");
	const char *k;
	json_t *v;
	if (x && y) {
		json_object_foreach(x, k, v) if (!json_equal(v, json_object_get(y, k)))
		{
			snprintf(key, len, "'%s'", k);
			goto out;
		}
		json_object_foreach(y, k, v) if (!json_object_get(x, k))
		{
			snprintf(key, len, "'%s'", k);
			goto out;
		}
	}
out:
	json_decref(x);
	json_decref(y);
}

static int add_image(struct replay_header *h, const char *role, const char *path, char *err, size_t errlen)
{
	if (h->nimages >= REPLAY_IMAGES_MAX) {
		snprintf(err, errlen, "too many images to record");
		return -E2BIG;
	}
	struct replay_image *im = &h->image[h->nimages++];
	snprintf(im->role, sizeof(im->role), "%s", role);
	if (!path)
		return 0;
	int r = replay_hash_file(path, &im->size, &im->hash);
	if (r < 0)
		snprintf(err, errlen, "%s '%s': %s", role, path, strerror(-r));
	return r;
}

/* A restored VM's recording starts from the snapshot: its images are
 * these two, first (roles fit replay_image.role). */
#define ROLE_SNAP_STATE "snapshot state"
#define ROLE_SNAP_MEM "snapshot memory"

static int from_snapshot(const struct replay_header *h)
{
	return h->nimages > 0 && !strcmp(h->image[0].role, ROLE_SNAP_STATE);
}

/* The header this VM would write: its configuration, the RTC's start,
 * the hashes of what it boots from and reads, its NICs' MTUs. */
static int header_build(struct vm *vm, struct replay_header *h, char *err, size_t errlen)
{
	const struct vm_config *c = &vm->cfg;
	memset(h, 0, sizeof(*h));
	snprintf(h->version, sizeof(h->version), "%s", c->version ? c->version : "");
	h->config = config_text(c);
	if (!h->config) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	h->rtc_sec = (int64_t)time(NULL);
	int r = 0;
	if (vm->restoring) {
		/* a restore: the snapshot holds what was booted, in its RAM */
		if ((r = add_image(h, ROLE_SNAP_STATE, NULL, err, errlen)) == 0) {
			h->image[h->nimages - 1].size = vm->origin.state_size;
			h->image[h->nimages - 1].hash = vm->origin.state_hash;
		}
		if (!r && (r = add_image(h, ROLE_SNAP_MEM, NULL, err, errlen)) == 0) {
			h->image[h->nimages - 1].size = vm->origin.mem_size;
			h->image[h->nimages - 1].hash = vm->origin.mem_hash;
		}
	} else if (c->kernel) {
		r = add_image(h, "kernel", c->kernel, err, errlen);
	}
	if (!r && !vm->restoring && c->initrd)
		r = add_image(h, "initrd", c->initrd, err, errlen);
	if (!r && !vm->restoring && c->flat)
		r = add_image(h, "flat", c->flat, err, errlen);
	char role[16];
	for (unsigned k = 0; !r && k < c->ndisks; k++) {
		snprintf(role, sizeof(role), "disk%u", k);
		r = add_image(h, role, vm->rr_base[k][0] ? vm->rr_base[k] : c->disk[k].path, err, errlen);
	}
	for (unsigned k = 0; !r && k < c->nnets; k++) {
		snprintf(role, sizeof(role), "net%u", k);
		if ((r = add_image(h, role, NULL, err, errlen)) == 0)
			h->image[h->nimages - 1].size = net_mtu(vm->netbe[k]);
	}
	if (r < 0) {
		free(h->config);
		h->config = NULL;
	}
	return r;
}

/* What cannot be recorded or replayed, before anything is opened. */
int vm_rr_check(const struct vm_config *c, const struct vm_origin *from, char *err, size_t errlen)
{
	const char *opt = c->record ? "--record" : "--replay";
	if (!c->record && !c->replay)
		return 0;
	if (c->record && c->replay)
		snprintf(err, errlen, "--record and --replay: one or the other");
	else if (c->engine == VM_ENGINE_KVM)
		snprintf(err, errlen,
			 "%s needs the emu engine: under kvm the host CPU runs the guest and no instruction count "
			 "tells when an input arrived",
			 opt);
	else if ((from && (!from->snapshot || !from->hashed)) || c->handover)
		snprintf(err, errlen, "%s starts from a fresh boot or a snapshot (no migration, no hand-over)", opt);
	else if (!c->ps_per_insn)
		snprintf(err, errlen, "%s needs instruction-driven time (CORRAL_EMU_CLOCK is 0)", opt);
	else
		return 0;
	return -EINVAL;
}

/* The snapshot a restore starts from, as the header names it: the state
 * stream and the memory file, each by size and hash (the memory file is
 * read whole: a replay's starting RAM must be the recording's). */
int vm_rr_origin(struct vm_origin *o, const void *state, size_t len, int mem_fd, char *err, size_t errlen)
{
	enum { CHUNK = 1 << 20 }; /* a multiple of replay_hash's word */
	uint8_t *buf = malloc(CHUNK);
	if (!buf) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	o->state_size = len;
	o->state_hash = replay_hash(REPLAY_HASH_INIT, state, len);
	uint64_t h = REPLAY_HASH_INIT, off = 0;
	int r = 0;
	for (;;) {
		ssize_t n = pread(mem_fd, buf, CHUNK, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, errlen, "the memory file: %s", strerror(-r));
			break;
		}
		if (n == 0)
			break;
		h = replay_hash(h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	o->mem_size = off;
	o->mem_hash = h;
	o->hashed = r == 0;
	return r;
}

/* Writable disks: the run writes to a qcow2 overlay on the image, so the
 * image keeps the contents the recording started from (hashed into the
 * header like a read-only disk's) and a replay reads what the recording
 * read. The recording's overlay is FILE.diskK.qcow2, kept (the recorded
 * run's writes; `corral image commit` puts them into the image); a
 * replay's is a temporary file, gone when the replay ends, so a replay
 * writes nowhere that lasts. */
static int rr_disks(struct vm *vm, char *err, size_t errlen)
{
	struct vm_config *c = &vm->cfg;
	const char *file = c->record ? c->record : c->replay;
	for (unsigned k = 0; k < c->ndisks; k++) {
		struct vm_disk *d = &c->disk[k];
		if (d->readonly)
			continue;
		if (!realpath(d->path, vm->rr_base[k])) {
			int r = -errno;
			snprintf(err, errlen, "disk '%s': %s", d->path, strerror(-r));
			return r;
		}
		struct blk *b;
		int r = blk_open(&b, vm->rr_base[k], d->format, 1, err, errlen);
		if (r < 0)
			return r;
		uint64_t size = b->size;
		enum blk_format fmt = b->format;
		blk_close(b);
		char *o = vm->rr_overlay[k];
		int fd;
		if (c->record) {
			if (snprintf(o, PATH_MAX, "%s.disk%u.qcow2", file, k) >= PATH_MAX) {
				snprintf(err, errlen, "--record %s: name too long for the disk overlay", file);
				return -ENAMETOOLONG;
			}
			/* a new recording under that name replaces the old one's, as
			 * the recording file itself is replaced */
			fd = open(o, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		} else {
			const char *tmp = getenv("TMPDIR");
			if (snprintf(o, PATH_MAX, "%s/corral-replay-disk%u.XXXXXX", tmp && tmp[0] ? tmp : "/tmp", k) >=
			    PATH_MAX) {
				snprintf(err, errlen, "TMPDIR: name too long");
				return -ENAMETOOLONG;
			}
			fd = mkostemp(o, O_CLOEXEC);
		}
		if (fd < 0) {
			r = -errno;
			snprintf(err, errlen, "disk overlay '%s': %s", o, strerror(-r));
			o[0] = 0;
			return r;
		}
		close(fd);
		if ((r = qcow2_create(o, size, 16, vm->rr_base[k], blk_format_name(fmt), err, errlen)) < 0) {
			unlink(o);
			o[0] = 0;
			return r;
		}
		d->path = o;
		d->format = BLK_FMT_QCOW2;
		if (c->record)
			vm_log(vm, "record: disk %u writes to %s (the image stays as the recording starts from)", k, o);
	}
	return 0;
}

/* A replay's temporary overlays go once open (or on an error). */
static void rr_disks_unlink(struct vm *vm)
{
	if (!vm->cfg.replay)
		return;
	for (unsigned k = 0; k < VM_MAX_DISKS; k++)
		if (vm->rr_overlay[k][0]) {
			unlink(vm->rr_overlay[k]);
			vm->rr_overlay[k][0] = 0;
		}
}

void vm_rr_cleanup(struct vm *vm)
{
	rr_disks_unlink(vm);
}

int vm_rr_open(struct vm *vm, char *err, size_t errlen)
{
	const struct vm_config *c = &vm->cfg;
	if (!c->record && !c->replay)
		return 0;
	int r = rr_disks(vm, err, errlen);
	if (r < 0) {
		rr_disks_unlink(vm);
		return r;
	}
	if (!c->replay)
		return 0;
	r = replay_open(&vm->rr, c->replay, err, errlen);
	if (r < 0)
		return r;
	/* the NICs' frames come from the log */
	const struct replay_header *h = replay_header(vm->rr);
	for (unsigned k = 0; k < c->nnets; k++) {
		unsigned mtu = 1500;
		char role[16];
		snprintf(role, sizeof(role), "net%u", k);
		for (uint32_t i = 0; i < h->nimages; i++)
			if (!strcmp(h->image[i].role, role) && h->image[i].size >= 68 && h->image[i].size <= 65535)
				mtu = (unsigned)h->image[i].size;
		if ((r = net_open_null(&vm->netbe[k], mtu)) < 0) {
			snprintf(err, errlen, "%s", strerror(-r));
			return r;
		}
	}
	return 0;
}

static void console_in_init(struct vm *vm);

int vm_rr_start(struct vm *vm, char *err, size_t errlen)
{
	const struct vm_config *c = &vm->cfg;
	if (!c->record && !c->replay)
		return 0;
	rr_disks_unlink(vm); /* open by now */
	struct replay_header now;
	int r = header_build(vm, &now, err, errlen);
	if (r < 0)
		return r;
	if (c->record) {
		r = replay_create(&vm->rr, c->record, &now, err, errlen);
		vm->rtc_sec = now.rtc_sec;
		free(now.config);
		if (r == 0)
			console_in_init(vm);
		return r;
	}
	const struct replay_header *h = replay_header(vm->rr);
	char what[80];
	r = -EINVAL;
	if (strcmp(h->version, now.version)) {
		snprintf(err, errlen,
			 "--replay %s: recorded by corral %s, this is %s: a replay runs on the corral that "
			 "recorded it (its CPU and devices); record the run again with this one",
			 c->replay, h->version, now.version);
	} else if (from_snapshot(h) != from_snapshot(&now)) {
		snprintf(err, errlen,
			 from_snapshot(h) ? "--replay %s: a recording of a restored snapshot: replay it with "
					    "'corral restore SNAPSHOT --replay %s'"
					  : "--replay %s: a recording from a boot, not from a snapshot: replay it with "
					    "'corral run --replay %s' and the options of the recording",
			 c->replay, c->replay);
	} else if (strcmp(h->config, now.config)) {
		config_diff(h->config, now.config, what, sizeof(what));
		if (from_snapshot(h))
			snprintf(err, errlen,
				 "--replay %s: recorded from another snapshot (its machine's %s differs); give the "
				 "snapshot the recording started from",
				 c->replay, what);
		else
			snprintf(err, errlen,
				 "--replay %s: recorded with another machine (%s differs); give the options "
				 "of the recording",
				 c->replay, what);
	} else if (h->nimages != now.nimages) {
		snprintf(err, errlen, "--replay %s: recorded with other images (%u, now %u)", c->replay, h->nimages,
			 now.nimages);
	} else {
		r = 0;
		for (uint32_t k = 0; k < h->nimages; k++)
			if (strcmp(h->image[k].role, now.image[k].role) || h->image[k].size != now.image[k].size ||
			    h->image[k].hash != now.image[k].hash) {
				snprintf(err, errlen,
					 "--replay %s: the %s is not the one recorded (%" PRIu64
					 " bytes, hash %016" PRIx64 "; recorded %" PRIu64 " bytes, hash %016" PRIx64
					 ")%s",
					 c->replay, now.image[k].role, now.image[k].size, now.image[k].hash,
					 h->image[k].size, h->image[k].hash,
					 from_snapshot(h) ? ": give the snapshot the recording started from" : "");
				r = -EINVAL;
				break;
			}
	}
	free(now.config);
	vm->rtc_sec = h->rtc_sec;
	if (r == 0)
		console_in_init(vm);
	return r;
}

/* A replay's console input, as the host's would go in. */
static size_t console_in(void *opaque, const uint8_t *buf, size_t n)
{
	struct vm *vm = opaque;
	if (!vm->m)
		return 0;
	return vm->hvc ? virtio_console_receive(vm->hvc, buf, n) : uart_receive(&vm->m->com1, buf, n);
}

static void console_in_init(struct vm *vm)
{
	replay_set_console(vm->rr, console_in, vm);
}

void vm_rr_attach(struct vm *vm, struct machine *m)
{
	if (!vm->rr)
		return;
	m->rr = vm->rr;
	replay_attach(vm->rr, m);
}

void vm_rr_finish(struct vm *vm, struct vm_exit *ex)
{
	if (!vm->rr)
		return;
	char err[512];
	struct replay_end got;
	uint64_t bytes, ns;
	int playing = replay_mode(vm->rr) == REPLAY_PLAY;
	if (playing && ex->end == VM_END_QUIT && vm->ctl.stop) {
		vm_log(vm, "replay: stopped before the recording's end; nothing compared");
		return;
	}
	if (ex->end == VM_END_ERROR && !replay_failed(vm->rr)) {
		/* the engine's own failure: the recording has no usable end */
		if (!playing)
			vm_log(vm, "record: the run failed; the recording is incomplete");
		return;
	}
	int r = replay_finish(vm->rr, (uint32_t)ex->end, err, sizeof(err));
	replay_result(vm->rr, &got, &bytes, &ns);
	if (r < 0) {
		*ex = (struct vm_exit){.end = VM_END_ERROR, .err = playing ? -EINVAL : r};
		snprintf(ex->msg, sizeof(ex->msg), "%s", err);
		return;
	}
	vm_log(vm,
	       "%s: %" PRIu64 " inputs, %" PRIu64 " bytes, %" PRIu64 " instructions, %.3f s of guest time; RAM hash "
	       "%016" PRIx64 ", console hash %016" PRIx64 "%s",
	       playing ? "replay" : "record", got.events, bytes, got.icount, (double)ns / 1e9, got.ram_hash,
	       got.console_hash, playing ? ": identical to the recording" : "");
}

/* ---- Snapshots of a replay for its debugger ----
 * A step back replays from the nearest snapshot before the target instead
 * of from the recording's start. Snapshots are taken by the engine's
 * thread between two rounds of turns (engine_debug.snap), every `every`
 * instructions of the replay's total, and kept in memory: the machine's
 * state stream (vm_state_write, as a snapshot on disk holds it), the RAM
 * pages written since the one before (struct rr_snap), where the log
 * stands (replay_mark) and every vCPU's count. At most `keep`, and no more
 * than RR_SNAP_RAM_MAX bytes of RAM pages (at least two snapshots): when full,
 * the one whose removal leaves the smallest gap goes (not the newest), so
 * old ones thin out and the spacing grows with distance, as QEMU does
 * with its icount snapshots. A recording is deterministic, so a snapshot
 * of a position is the same whichever run took it. */
#define RR_SNAP_EVERY_DEFAULT 20000000ull /* instructions: ~0.2 s of replay */
#define RR_SNAP_KEEP_DEFAULT 32
#define RR_SNAP_KEEP_MAX 4096
#define RR_SNAP_RAM_MAX (2ull << 30) /* bytes of RAM pages, together */

/* A snapshot's RAM is the pages written since the snapshot before it in
 * the list (the machine's dirty log, as live migration uses it), in page
 * order, with a bitmap of which they are; the first in the list holds
 * every page. A page of snapshot k is then the one of the newest snapshot
 * at or before k that holds it (snap_ram_fill). Pages a run wrote since
 * it started (from a snapshot at or before the newest, or from the start)
 * are a superset of those written since the newest, so a run from an
 * earlier snapshot can take the next one. */
struct rr_snap {
	uint64_t total;
	uint64_t count[ENGINE_DEBUG_MAX_CPUS];
	struct replay_mark mark;
	void *state;
	size_t state_len;
	uint64_t undo[VM_MAX_DISKS]; /* each writable disk's undo log mark */
	uint64_t *bits;		     /* a bit per RAM page: held here */
	uint8_t *pages;		     /* those pages, in page order */
	uint64_t npages;	     /* how many */
};

struct rr_snaps {
	struct vm *vm;
	struct engine_debug *d;
	uint64_t every;
	unsigned keep, n;
	uint64_t taken, restored;     /* for the log */
	uint64_t held;		      /* bytes of RAM pages held, now */
	int adaptive;		      /* the default spacing: stretched to bound the cost */
	uint64_t mark_ns, mark_total; /* the engine thread's CPU time and the total after the last one */
	struct rr_snap *s;	      /* by total, ascending */
	/* where the last run that went back started (zeros: the start) */
	uint64_t from_total, from_count[ENGINE_DEBUG_MAX_CPUS];
};

#define PAGE 4096ull

static void snap_drop(struct rr_snap *sn)
{
	free(sn->state);
	free(sn->bits);
	free(sn->pages);
}

static int bit_get(const uint64_t *bits, uint64_t k)
{
	return (int)(bits[k >> 6] >> (k & 63)) & 1;
}

/* Snapshot k's RAM into ram: each page from the newest snapshot at or
 * before k that holds it (the first holds every page). */
static void snap_ram_fill(const struct rr_snaps *ss, unsigned k, uint8_t *ram, uint64_t mem_size)
{
	uint64_t pages = mem_size / PAGE;
	uint64_t *done = calloc((pages + 63) / 64, 8);
	for (unsigned j = k + 1; done && j-- > 0;) {
		const struct rr_snap *sn = &ss->s[j];
		uint64_t at = 0;
		for (uint64_t p = 0; p < pages; p++) {
			if (!bit_get(sn->bits, p))
				continue;
			if (!bit_get(done, p)) {
				memcpy(ram + p * PAGE, sn->pages + at * PAGE, PAGE);
				done[p >> 6] |= 1ull << (p & 63);
			}
			at++;
		}
	}
	if (!done) {
		/* no memory for the bookkeeping: every snapshot's pages, oldest
		 * first, so the newer ones end on top */
		for (unsigned j = 0; j <= k; j++) {
			const struct rr_snap *sn = &ss->s[j];
			uint64_t at = 0;
			for (uint64_t p = 0; p < pages; p++)
				if (bit_get(sn->bits, p))
					memcpy(ram + p * PAGE, sn->pages + at++ * PAGE, PAGE);
		}
	}
	free(done);
}

/* Snapshot k leaves the list: its pages that snapshot k + 1 lacks go into
 * k + 1, which then stands on k - 1 (or holds every page, for k = 0).
 * -ENOMEM leaves both as they were. */
static int snap_merge_into_next(struct rr_snaps *ss, unsigned k, uint64_t mem_size)
{
	struct rr_snap *a = &ss->s[k], *b = &ss->s[k + 1];
	uint64_t pages = mem_size / PAGE, words = (pages + 63) / 64, n = 0;
	for (uint64_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(a->bits[w] | b->bits[w]);
	uint8_t *out = malloc(n ? n * PAGE : 1);
	if (!out)
		return -ENOMEM;
	uint64_t ia = 0, ib = 0, io = 0;
	for (uint64_t p = 0; p < pages; p++) {
		int ha = bit_get(a->bits, p), hb = bit_get(b->bits, p);
		if (hb)
			memcpy(out + io++ * PAGE, b->pages + ib * PAGE, PAGE);
		else if (ha)
			memcpy(out + io++ * PAGE, a->pages + ia * PAGE, PAGE);
		ia += (uint64_t)ha;
		ib += (uint64_t)hb;
	}
	for (uint64_t w = 0; w < words; w++)
		b->bits[w] |= a->bits[w];
	ss->held += (n - b->npages) * PAGE;
	free(b->pages);
	b->pages = out;
	b->npages = n;
	return 0;
}

/* The whole of a memfd's contents, malloc'd. */
static void *fd_slurp(int fd, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	if (end <= 0 || (uint64_t)end > (64u << 20))
		return NULL;
	uint8_t *buf = malloc((size_t)end);
	if (buf && pread(fd, buf, (size_t)end, 0) != end) {
		free(buf);
		buf = NULL;
	}
	*len = (size_t)end;
	return buf;
}

/* engine_debug.snap: the engine stands between two rounds, ctl.vcpus and
 * the counts filled. A snapshot that cannot be taken is simply not there
 * (going back then starts from an earlier one). */
static uint64_t thread_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The next snapshot's total: `every` on; with the default spacing at
 * least so far that the replay runs twice as long between two snapshots
 * as one takes (a snapshot of a large RAM costs more than `every`
 * instructions take to run): forward, snapshots cost at most half again
 * the replay's time, and a step back replays at most about twice what a
 * snapshot costs, which its restore costs anyway. Both are measured in
 * the engine thread's CPU time, so a debugger's pauses do not count. A
 * spacing the user gave is kept. */
static void snap_schedule(struct rr_snaps *ss, uint64_t from, uint64_t t0)
{
	struct engine_debug *d = ss->d;
	uint64_t now = thread_ns(), cost = now - t0, gap = ss->every;
	if (ss->adaptive && ss->mark_ns && t0 > ss->mark_ns && from > ss->mark_total) {
		/* instructions per ns of running, times two costs */
		double rate = (double)(from - ss->mark_total) / (double)(t0 - ss->mark_ns);
		double need = rate * (double)cost * 2.0;
		if (need > (double)gap && need < 1e18)
			gap = (uint64_t)need;
	}
	d->snap_next = from + gap;
	ss->mark_ns = now;
	ss->mark_total = from;
}

/* The snapshot's pages: those written since the previous snapshot (the
 * dirty log, collected and so cleared), or every page for the first in
 * the list or when the log is off. */
static int snap_pages(struct rr_snaps *ss, struct rr_snap *sn)
{
	struct machine *m = ss->vm->m;
	uint64_t pages = m->mem_size / PAGE, words = (pages + 63) / 64, n = 0;
	sn->bits = calloc(words, 8);
	if (!sn->bits)
		return -ENOMEM;
	int full = ss->n == 0 || !m->dirty;
	if (m->dirty)
		machine_dirty_collect(m, sn->bits);
	else
		machine_dirty_start(m); /* for the next one */
	if (full)
		for (uint64_t p = 0; p < pages; p++)
			sn->bits[p >> 6] |= 1ull << (p & 63);
	for (uint64_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(sn->bits[w]);
	sn->pages = malloc(n ? n * PAGE : 1);
	if (!sn->pages) {
		/* the pages written since the last one are forgotten: the
		 * next snapshot holds every page */
		machine_dirty_stop(m);
		return -ENOMEM;
	}
	uint64_t at = 0;
	for (uint64_t p = 0; p < pages; p++)
		if (bit_get(sn->bits, p))
			memcpy(sn->pages + at++ * PAGE, m->ram + p * PAGE, PAGE);
	sn->npages = n;
	ss->held += n * PAGE;
	return 0;
}

/* One snapshot fewer: the one (not the first nor the newest) between the
 * closest neighbours, its pages merged into the next one; of two, the
 * first. 0, or -ENOMEM with the list as it was. */
static int snap_thin(struct rr_snaps *ss)
{
	unsigned drop = ss->n - 1;
	uint64_t best = UINT64_MAX;
	for (unsigned k = 1; k + 1 < ss->n; k++) {
		uint64_t gap = ss->s[k + 1].total - ss->s[k - 1].total;
		if (gap < best) {
			best = gap;
			drop = k;
		}
	}
	if (ss->n < 3)
		drop = 0;
	if (drop + 1 >= ss->n || snap_merge_into_next(ss, drop, ss->vm->m->mem_size) < 0)
		return -ENOMEM;
	ss->held -= ss->s[drop].npages * PAGE;
	snap_drop(&ss->s[drop]);
	memmove(&ss->s[drop], &ss->s[drop + 1], (ss->n - drop - 1) * sizeof(ss->s[0]));
	ss->n--;
	return 0;
}

static void rr_snap_take(void *opaque)
{
	struct rr_snaps *ss = opaque;
	struct vm *vm = ss->vm;
	struct engine_debug *d = ss->d;
	uint64_t t0 = thread_ns();
	d->snap_next = d->total + ss->every;
	if (ss->n && d->total <= ss->s[ss->n - 1].total) {
		/* a run from an earlier snapshot: this part is covered */
		d->snap_next = ss->s[ss->n - 1].total + ss->every;
		ss->mark_ns = 0;
		return;
	}
	struct rr_snap sn = {.total = d->total};
	memcpy(sn.count, d->count, sizeof(sn.count));
	for (unsigned k = 0; k < vm->cfg.ndisks; k++)
		sn.undo[k] = blk_undo_mark(vm->blk[k]);
	replay_mark(vm->rr, &sn.mark);
	char err[256];
	int fd = memfd_create("corral-replay-snap", MFD_CLOEXEC);
	if (fd < 0)
		return;
	if (vm_state_write(vm, fd, err, sizeof(err)) == 0)
		sn.state = fd_slurp(fd, &sn.state_len);
	close(fd);
	if (ss->n == ss->keep && snap_thin(ss) < 0) {
		snap_drop(&sn);
		return;
	}
	if (!sn.state || snap_pages(ss, &sn) < 0) {
		snap_drop(&sn);
		return;
	}
	ss->s[ss->n++] = sn;
	ss->taken++;
	/* the pages held, capped: older ones thin out further */
	while (ss->held > RR_SNAP_RAM_MAX && ss->n > 2 && snap_thin(ss) == 0)
		;
	snap_schedule(ss, sn.total, t0);
}

int vm_rr_snaps_init(struct vm *vm, struct engine_debug *d)
{
	const struct vm_config *c = &vm->cfg;
	if (!vm->rr || replay_mode(vm->rr) != REPLAY_PLAY || c->replay_snap_every == UINT64_MAX ||
	    !vm_debug_can_go_back(vm))
		return 0;
	struct rr_snaps *ss = calloc(1, sizeof(*ss));
	if (!ss)
		return -ENOMEM;
	ss->vm = vm;
	ss->d = d;
	ss->every = c->replay_snap_every ? c->replay_snap_every : RR_SNAP_EVERY_DEFAULT;
	ss->adaptive = !c->replay_snap_every;
	ss->keep = c->replay_snap_keep ? c->replay_snap_keep : RR_SNAP_KEEP_DEFAULT;
	if (ss->keep > RR_SNAP_KEEP_MAX)
		ss->keep = RR_SNAP_KEEP_MAX;
	ss->s = calloc(ss->keep, sizeof(*ss->s));
	if (!ss->s) {
		free(ss);
		return -ENOMEM;
	}
	vm->snaps = ss;
	/* pages written between snapshots (without the log: every
	 * snapshot holds all of RAM) */
	if (vm->m)
		machine_dirty_start(vm->m);
	d->snap_opaque = ss;
	d->snap_next = ss->every;
	d->snap = rr_snap_take;
	return 0;
}

void vm_rr_snaps_free(struct vm *vm)
{
	struct rr_snaps *ss = vm->snaps;
	if (!ss)
		return;
	if (ss->taken)
		vm_log(vm,
		       "replay: %" PRIu64 " snapshots taken, %" PRIu64 " restored for going back; the %u kept hold "
		       "%.1f MiB of RAM pages (whole copies: %.1f MiB)",
		       ss->taken, ss->restored, ss->n, (double)ss->held / (1 << 20),
		       (double)ss->n * (double)vm->cfg.mem / (1 << 20));
	for (unsigned k = 0; k < ss->n; k++)
		snap_drop(&ss->s[k]);
	free(ss->s);
	free(ss);
	vm->snaps = NULL;
}

/* The latest snapshot from which the run the debugger asked for (d, under
 * the lock) reaches its target, or NULL (the start). Its target must lie
 * strictly after the snapshot, so the run stops where one from the start
 * would: a count reached inside a turn, not at a round's end. A scan for
 * the last hit before here starts from a snapshot below scan_from (the
 * stub goes through them newest first, each scan up to the one before),
 * or from the start with scan_from 0. */
static const struct rr_snap *snap_for(const struct rr_snaps *ss, const struct engine_debug *d)
{
	if (!ss || d->hits == ENGINE_HITS_STOP || (d->hits == ENGINE_HITS_SCAN && !d->scan_from))
		return NULL;
	for (unsigned k = ss->n; k-- > 0;) {
		const struct rr_snap *sn = &ss->s[k];
		if (d->hits == ENGINE_HITS_SCAN && sn->total >= d->scan_from)
			continue;
		if (d->run_to != UINT64_MAX && d->run_cpu < ENGINE_DEBUG_MAX_CPUS && sn->count[d->run_cpu] >= d->run_to)
			continue;
		if (d->hits == ENGINE_HITS_SEEK &&
		    (d->seek.cpu >= ENGINE_DEBUG_MAX_CPUS || sn->count[d->seek.cpu] >= d->seek.count))
			continue;
		return sn;
	}
	return NULL;
}

/* A state stream loaded into the fresh machine: its vCPUs become the
 * next run's start (vm->restore). */
static int state_load(struct vm *vm, const void *state, size_t len, char *err, size_t errlen)
{
	struct engine_vcpu *cpus = calloc(vm->cfg.cpus, sizeof(*cpus));
	if (!cpus) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	int r = vm_state_load_into(vm, state, len, cpus, err, errlen);
	if (r < 0) {
		free(cpus);
		return r;
	}
	free(vm->restore);
	vm->restore = cpus;
	return 0;
}

/* A restored VM's replay: the fresh machine (vm_build) gets the snapshot's
 * memory and state back, as the restore gave them; with fresh set, the
 * restore's new generation ID and MACs are drawn again from the replay (a
 * replay snapshot's state, loaded over this, holds them otherwise). */
static int origin_load(struct vm *vm, int fresh, char *err, size_t errlen)
{
	if (!vm->origin_state)
		return 0;
	int r = machine_map_ram(vm->m, vm->origin_mfd);
	if (r < 0) {
		snprintf(err, errlen, "cannot map the snapshot's memory file again: %s", strerror(-r));
		return r;
	}
	if ((r = state_load(vm, vm->origin_state, vm->origin_len, err, errlen)) < 0)
		return r;
	if (fresh && vm->origin_newgen)
		vm_new_generation(vm);
	if (fresh && vm->origin_newmac)
		vm_new_macs(vm);
	return 0;
}

/* A replay's writable disks back to where the run starts: the writes
 * logged since the snapshot's mark (sn) or since the start (NULL) undone. */
static int disks_back(struct vm *vm, const struct rr_snap *sn, char *err, size_t errlen)
{
	for (unsigned k = 0; k < vm->cfg.ndisks; k++) {
		if (!vm->rr_base[k][0])
			continue;
		int r = blk_undo_to(vm->blk[k], sn ? sn->undo[k] : 0);
		if (r < 0) {
			snprintf(err, errlen, "disk %u: cannot take back the replay's writes: %s", k, strerror(-r));
			return r;
		}
	}
	return 0;
}

int vm_rr_rewind(struct vm *vm, char *err, size_t errlen)
{
	struct engine_debug *d = vm->ctl.debug;
	if (!vm->rr || replay_mode(vm->rr) != REPLAY_PLAY || !d) {
		snprintf(err, errlen, "only a replay goes back");
		return -EINVAL;
	}
	vm_drop_machine(vm);
	pthread_mutex_lock(&vm->ctl.lock);
	const struct rr_snap *sn = snap_for(vm->snaps, d);
	memset(d->base, 0, sizeof(d->base));
	memset(d->count, 0, sizeof(d->count));
	d->total = 0;
	if (sn) {
		memcpy(d->base, sn->count, sizeof(d->base));
		memcpy(d->count, sn->count, sizeof(d->count));
		d->total = sn->total;
	}
	d->rewind = 0;
	if (vm->snaps) {
		vm->snaps->from_total = sn ? sn->total : 0;
		memcpy(vm->snaps->from_count, sn ? sn->count : d->base, sizeof(vm->snaps->from_count));
	}
	pthread_mutex_unlock(&vm->ctl.lock);
	if (!sn || replay_seek(vm->rr, &sn->mark) < 0) {
		if (vm->snaps) {
			vm->snaps->from_total = 0;
			memset(vm->snaps->from_count, 0, sizeof(vm->snaps->from_count));
		}
		replay_rewind(vm->rr);
		int r = disks_back(vm, NULL, err, errlen);
		if (r == 0)
			r = vm_build(vm, err, errlen);
		if (r == 0)
			r = origin_load(vm, 1, err, errlen);
		if (r == 0 && vm->snaps)
			machine_dirty_start(vm->m);
		return r;
	}
	/* the recording's machine, then the snapshot's state over it; its
	 * RAM comes whole from the snapshots, so no guest is loaded (which
	 * would draw a boot's VM generation ID, an input the recording has
	 * at the start, not here) */
	int r = disks_back(vm, sn, err, errlen);
	if (r == 0) {
		int restoring = vm->restoring;
		vm->restoring = 1;
		r = vm_build(vm, err, errlen);
		vm->restoring = restoring;
	}
	if (r == 0)
		r = origin_load(vm, 0, err, errlen);
	if (r == 0)
		r = state_load(vm, sn->state, sn->state_len, err, errlen);
	if (r < 0)
		return r;
	snap_ram_fill(vm->snaps, (unsigned)(sn - vm->snaps->s), vm->m->ram, vm->m->mem_size);
	machine_dirty_start(vm->m); /* the next snapshot's pages: written from here on */
	vm->snaps->restored++;
	return 0;
}

void vm_debug_run_start(struct vm *vm, unsigned cpu, uint64_t *total, uint64_t *count)
{
	pthread_mutex_lock(&vm->ctl.lock);
	const struct rr_snaps *ss = vm->snaps;
	*total = ss ? ss->from_total : 0;
	*count = ss && cpu < ENGINE_DEBUG_MAX_CPUS ? ss->from_count[cpu] : 0;
	pthread_mutex_unlock(&vm->ctl.lock);
}
