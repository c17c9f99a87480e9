/* How long vm_pause takes to stop a VM: a busy guest (a counting loop,
 * translated and interpreted) and an idle one (halted between LAPIC timer
 * interrupts; idle time passing in real time, the engine's thread asleep
 * in poll, or skipped, the engine running from deadline to deadline), on the emu
 * engine. Prints the median, 99th percentile and maximum of N pauses. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tests/vm/tiny_guests.h"
#include "vm/vm.h"

#define ROUNDS 300

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)us * 1000};
	nanosleep(&ts, NULL);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int write_guest(const char *path, const uint8_t *code, size_t n, size_t total, size_t patch_at, uint32_t patch)
{
	uint8_t *img = calloc(1, total);
	if (!img)
		return -1;
	memcpy(img, code, n);
	if (patch_at)
		memcpy(img + patch_at, &patch, 4);
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(img, 1, total, f) == total;
	if (f && fclose(f) != 0)
		ok = 0;
	free(img);
	return ok ? 0 : -1;
}

/* A console that never types: it waits on the VM's wake-ups for the time
 * asked, so idle time passes in real time on a sleeping host thread, as
 * under `corral run` on a terminal. */
static int quiet_input(void *opaque, const int *wake, unsigned nwake, int timeout_ms)
{
	(void)opaque;
	struct pollfd p[4];
	unsigned n = 0;
	for (unsigned k = 0; k < nwake && n < 4; k++)
		p[n++] = (struct pollfd){.fd = wake[k], .events = POLLIN};
	poll(p, n, timeout_ms);
	return 0;
}

static void measure(const char *name, const char *guest, int jit, int realtime_idle)
{
	struct vm_config c;
	struct vm *vm;
	char err[512];
	vm_config_init(&c);
	c.flat = guest;
	c.mem = 32ull << 20;
	c.engine = VM_ENGINE_EMU;
	c.cpu_opts.jit = jit;
	c.realtime_idle = realtime_idle;
	if (realtime_idle)
		c.poll_input = quiet_input;
	if (vm_create(&c, &vm, err, sizeof(err)) < 0 || vm_start(vm) < 0) {
		fprintf(stderr, "pause: %s: %s\n", name, err);
		exit(1);
	}
	sleep_us(200000); /* boot, warm up, and let skipped idle time reach its lead */
	uint64_t t[ROUNDS];
	for (int i = 0; i < ROUNDS; i++) {
		uint64_t t0 = now_ns();
		if (vm_pause(vm) < 0) {
			fprintf(stderr, "pause: %s: the VM ended\n", name);
			exit(1);
		}
		t[i] = now_ns() - t0;
		vm_resume(vm);
		sleep_us(1000 + (unsigned)(rand() % 2000));
	}
	vm_destroy(vm);
	qsort(t, ROUNDS, sizeof(t[0]), cmp_u64);
	printf("%-34s median %7.1f us   p99 %7.1f us   max %7.1f us\n", name, t[ROUNDS / 2] / 1e3,
	       t[ROUNDS * 99 / 100] / 1e3, t[ROUNDS - 1] / 1e3);
}

int main(void)
{
	char dir[] = "/tmp/corral-pause.XXXXXX", count[64], idle[64];
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(count, sizeof(count), "%s/count.bin", dir);
	snprintf(idle, sizeof(idle), "%s/idle.bin", dir);
	if (write_guest(count, g_count, sizeof(g_count), sizeof(g_count), 0, 0) < 0 ||
	    write_guest(idle, g_idle, sizeof(g_idle), sizeof(g_idle) + 4096, G_IDLE_PERIOD, 10000000) < 0) {
		perror("pause: writing the guests");
		return 1;
	}
	printf("vm_pause latency, emu engine, %d pauses each (target: within 1 ms)\n", ROUNDS);
	measure("busy loop, translated", count, 1, 0);
	measure("busy loop, interpreted", count, 0, 0);
	measure("idle (HLT, 10 ms timer, real time)", idle, 1, 1);
	measure("idle (HLT, 10 ms timer, skipped)", idle, 1, 0);
	unlink(count);
	unlink(idle);
	rmdir(dir);
	return 0;
}
