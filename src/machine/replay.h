/* Record and replay of a whole machine on the emu engine (docs/replay.md):
 * every input the machine does not decide itself is logged with the
 * position at which it entered, and a replay feeds the same inputs at the
 * same positions.
 *
 * Contract:
 * - A position is (point, icount): point counts the engine's injection
 *   points (replay_point, called at fixed places of its single-thread loop,
 *   the only places where host input enters between turns), icount is the
 *   sum of every vCPU's retired instructions (exact inside a turn too, so a
 *   device that draws input in the middle of a turn is logged there).
 * - The replay file is a state stream (state/stream.h) of kind "replay": a
 *   "replay-header" section (corral version, the machine's configuration,
 *   the RTC's start, the hashes of the images), "replay-events" sections
 *   (each checksummed), a "replay-end" section (how the run ended, where,
 *   the hash of guest RAM and of the console output), the end marker.
 *   replay_open parses and checks the whole file before anything runs: a
 *   truncated, corrupt or foreign file is one error.
 * - During a replay any mismatch (a device asking for input the recording
 *   does not have there, an input the replay did not take where the
 *   recording did) marks the replay diverged with a message naming the
 *   instruction count; replay_point then returns -1 and the engine stops.
 * - One machine, one thread (the engine's); nothing here is thread-safe. */
#ifndef CORRAL_REPLAY_H
#define CORRAL_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define REPLAY_VERSION 1
#define REPLAY_PAYLOAD_MAX (1u << 20) /* bytes in one event */
#define REPLAY_IMAGES_MAX 20	      /* kernel, initrd, disks */
#define REPLAY_STR_MAX 65536	      /* the configuration's JSON */

enum replay_mode { REPLAY_RECORD = 1, REPLAY_PLAY = 2 };

enum replay_kind {
	REPLAY_CONSOLE = 1, /* host bytes the console took (payload: the bytes) */
	REPLAY_NET = 2,	    /* a frame into virtio-net NIC dev */
	REPLAY_RANDOM = 3,  /* random bytes a device drew */
	REPLAY_CLOCK = 4,   /* idle time passed: the clock's new value (u64) */
	REPLAY_KIND_MAX = 4,
};

/* How a run ended: vm.h's enum vm_end, by number. */
enum replay_how {
	REPLAY_HOW_POWER_OFF,
	REPLAY_HOW_RESET,
	REPLAY_HOW_TRIPLE_FAULT,
	REPLAY_HOW_HUNG,
	REPLAY_HOW_QUIT,
	REPLAY_HOW_ERROR,
	REPLAY_HOW_EXIT_DEVICE,
};

/* How a recorded run ended, where, and what it left. */
struct replay_end {
	uint32_t how;
	uint64_t point, icount;
	uint64_t ram_hash, console_hash;
	uint64_t events;
};

struct replay_image {
	char role[16]; /* "kernel", "initrd", "disk0", ... */
	uint64_t size, hash;
};

struct replay_header {
	char version[64];
	char *config; /* malloc'd JSON text */
	int64_t rtc_sec;
	uint32_t nimages;
	struct replay_image image[REPLAY_IMAGES_MAX];
};

struct machine;
struct replay;

/* Record: creates path (refuses to replace nothing: it is truncated) and
 * writes the header. 0 or -errno with one line in err. */
int replay_create(struct replay **out, const char *path, const struct replay_header *h, char *err, size_t errlen);
/* Replay: reads and checks the whole file; *h points into the replay.
 * 0 or -errno/-EINVAL with one line in err. */
int replay_open(struct replay **out, const char *path, char *err, size_t errlen);
/* The same for a file in memory (copied); the fuzzer's entry. */
int replay_open_mem(struct replay **out, const void *data, size_t size, char *err, size_t errlen);
const struct replay_header *replay_header(const struct replay *rr);
const struct replay_end *replay_recorded_end(const struct replay *rr);
void replay_free(struct replay *rr);

int replay_mode(const struct replay *rr);
/* The machine the inputs go to, and the engine's count of instructions
 * (NULL between engine runs: the last value is kept). */
void replay_attach(struct replay *rr, struct machine *m);
void replay_set_icount(struct replay *rr, uint64_t (*icount)(void *opaque), void *opaque);
/* A replay delivers console bytes through this (returns how many fitted). */
void replay_set_console(struct replay *rr, size_t (*in)(void *opaque, const uint8_t *buf, size_t n), void *opaque);

/* The engine, at an injection point. Record: 1 if stop (the user asked to
 * end) so the run ends here, else 0. Replay: delivers the inputs logged at
 * this point; 1 when the recording ended here, -1 if the replay diverged,
 * else 0. */
int replay_point(struct replay *rr, int stop);
/* Replay, an idle point with a timer pending: 1 if the recording stepped
 * the clock here (it has been), else the replay is marked diverged. */
int replay_clock_stepped(struct replay *rr);
/* Replay: 1 while the recording goes on after this point. */
int replay_more(const struct replay *rr);
/* Record: the clock after an idle wait. */
void replay_log_clock(struct replay *rr, uint64_t ns);

/* Inputs. Record: log what entered. Replay: the logged input for this
 * kind and device at the current position. */
void replay_log(struct replay *rr, enum replay_kind kind, unsigned dev, const void *data, size_t len);
/* Replay: the length of the input waiting at this position, or -1. */
ssize_t replay_peek(struct replay *rr, enum replay_kind kind, unsigned dev);
/* Replay: copies the waiting input (at most cap bytes) and returns its
 * length, or -1 (none here: for a kind that must be there, diverged). */
ssize_t replay_take(struct replay *rr, enum replay_kind kind, unsigned dev, void *buf, size_t cap);
/* Random bytes for a device: the host's (logged when recording) or, in a
 * replay, the recording's. m->rr NULL: just the host's. 0 or -EIO. */
int replay_random(struct machine *m, void *buf, size_t len);
/* Console output (COM1, hvc0), hashed in order. Returns how many of the
 * n bytes were shown already (a replay run again from its start by a
 * debugger going back): the device writes out only those after them. */
size_t replay_console_out(struct replay *rr, const uint8_t *buf, size_t n);
/* Replay: back to the recording's start (the position, the inputs, the
 * console's hash; a new machine attaches). */
void replay_rewind(struct replay *rr);

/* Replay: where the replay stands, for a snapshot taken between two
 * turns (its injection points' count, the next input, the instruction
 * count, the console's hash so far), and back there (the machine is the
 * snapshot's; the next engine run's vCPUs count from 0 on from there).
 * replay_seek: 0, or -EINVAL for a mark that is not of this recording. */
struct replay_mark {
	uint64_t point, next, icount;
	uint64_t console_hash, console_bytes;
};
void replay_mark(struct replay *rr, struct replay_mark *mk);
int replay_seek(struct replay *rr, const struct replay_mark *mk);

/* The end of a run. Record: writes the end section and the end marker
 * (0 or -errno with err). Replay: compares with the recording's end
 * (0 identical, -1 diverged with err). how is the engine's end. */
int replay_finish(struct replay *rr, uint32_t how, char *err, size_t errlen);
/* 1 if the replay diverged; its message. */
int replay_failed(const struct replay *rr);
const char *replay_message(const struct replay *rr);
/* What was measured: the final hashes, events, bytes written (or read)
 * and the guest's clock at the end (ns). */
void replay_result(const struct replay *rr, struct replay_end *out, uint64_t *bytes, uint64_t *guest_ns);

/* The hash of the format: 64 bits over bytes, incremental. */
#define REPLAY_HASH_INIT 0xcbf29ce484222325ull
uint64_t replay_hash(uint64_t h, const void *p, size_t n);
/* The hash of a file's contents (and its size): 0 or -errno. */
int replay_hash_file(const char *path, uint64_t *size, uint64_t *hash);

#endif
