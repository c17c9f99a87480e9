/* The VM layer: two VMs from tiny guests running at once on two threads,
 * each with its own output and its own pause; pause/resume of a busy and
 * an idle guest (guest RAM does not change while paused); stop, reset and
 * the errors of vm_create. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testhelp.h"

#include "tiny_guests.h"
#include "vm/vm.h"

static char tmpdir[] = "/tmp/t_vm.XXXXXX";

static void path_in_tmp(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static int write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(p, 1, n, f);
	return fclose(f) == 0 && w == n ? 0 : -1;
}

static void make_print_guest(const char *path, const char *msg, uint64_t count)
{
	size_t n = G_PRINT_COUNT + 8 + strlen(msg) + 1;
	uint8_t *img = calloc(1, n);
	CHECK(img != NULL);
	if (!img)
		return;
	memcpy(img, g_print, sizeof(g_print));
	memcpy(img + G_PRINT_COUNT, &count, 8);
	memcpy(img + G_PRINT_COUNT + 8, msg, strlen(msg) + 1);
	CHECK(write_file(path, img, n) == 0);
	free(img);
}

static void make_idle_guest(const char *path, uint32_t period_ns)
{
	size_t n = sizeof(g_idle) + 4096;
	uint8_t *img = calloc(1, n);
	CHECK(img != NULL);
	if (!img)
		return;
	memcpy(img, g_idle, sizeof(g_idle));
	memcpy(img + G_IDLE_PERIOD, &period_ns, 4);
	CHECK(write_file(path, img, n) == 0);
	free(img);
}

static void flat_config(struct vm_config *c, const char *guest, const char *serial_path)
{
	vm_config_init(c);
	c->flat = guest;
	c->mem = 32ull << 20;
	c->engine = VM_ENGINE_EMU;
	c->serial_path = serial_path;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static uint64_t ram64(struct vm *vm, uint64_t gpa)
{
	uint64_t v = 0;
	CHECK(vm_ram_read(vm, gpa, &v, 8) == 0);
	return v;
}

/* Waits up to 10 s for the guest's counter at gpa to pass 0. */
static uint64_t wait_started(struct vm *vm, uint64_t gpa)
{
	uint64_t v = 0, t0 = now_ns();
	while ((vm_ram_read(vm, gpa, &v, 8) < 0 || v == 0) && now_ns() - t0 < 10000000000ull)
		sleep_ms(1);
	return v;
}

/* 1 once the counter at gpa has gone past from (within 10 s: a loaded
 * host may not run the vCPU's thread for a while), else 0. */
static int runs_on(struct vm *vm, uint64_t gpa, uint64_t from)
{
	uint64_t t0 = now_ns();
	while (now_ns() - t0 < 10000000000ull) {
		if (ram64(vm, gpa) > from)
			return 1;
		sleep_ms(1);
	}
	return 0;
}

/* Two VMs at once, each printing its own line many times to its own file;
 * they differ in the translator too (one interprets only). */
static void test_two_vms(void)
{
	static const char *msg[2] = {"alpha: the first VM\n", "bravo, bravo: the second one\n"};
	static const uint64_t count[2] = {20000, 15000};
	char guest[2][256], out[2][256];
	struct vm *vm[2] = {NULL, NULL};
	char err[512];
	for (int k = 0; k < 2; k++) {
		char name[32];
		snprintf(name, sizeof(name), "print%d.bin", k);
		path_in_tmp(guest[k], sizeof(guest[k]), name);
		snprintf(name, sizeof(name), "out%d.txt", k);
		path_in_tmp(out[k], sizeof(out[k]), name);
		make_print_guest(guest[k], msg[k], count[k]);
		struct vm_config c;
		flat_config(&c, guest[k], out[k]);
		c.cpu_opts.jit = k == 0;
		int r = vm_create(&c, &vm[k], err, sizeof(err));
		CHECK(r == 0);
		if (r) {
			fprintf(stderr, "  vm_create: %s\n", err);
			goto out;
		}
	}
	CHECK(vm_start(vm[0]) == 0);
	CHECK(vm_start(vm[1]) == 0);
	for (int k = 0; k < 2; k++) {
		struct vm_exit ex;
		CHECK(vm_wait(vm[k], &ex) == 0);
		CHECK_EQ_U64(ex.end, VM_END_POWER_OFF);
	}
	for (int k = 0; k < 2; k++) {
		size_t len = 0, ml = strlen(msg[k]);
		char *text = test_read_file(out[k], &len);
		CHECK(text != NULL);
		if (!text)
			continue;
		CHECK_EQ_U64(len, ml * count[k]);
		int same = len == ml * count[k];
		for (size_t i = 0; same && i < count[k]; i++)
			same = !memcmp(text + i * ml, msg[k], ml);
		CHECK(same);
		free(text);
	}
out:
	vm_destroy(vm[0]);
	vm_destroy(vm[1]);
}

/* Pausing one VM leaves the other running; paused, guest RAM stands still
 * for 50 ms; resumed, it moves on; stopped, the VM ends with QUIT. */
static void test_pause_busy(void)
{
	char guest[256];
	char err[512];
	struct vm *vm[2] = {NULL, NULL};
	path_in_tmp(guest, sizeof(guest), "count.bin");
	CHECK(write_file(guest, g_count, sizeof(g_count)) == 0);
	for (int k = 0; k < 2; k++) {
		struct vm_config c;
		flat_config(&c, guest, NULL);
		int r = vm_create(&c, &vm[k], err, sizeof(err));
		CHECK(r == 0);
		if (r) {
			fprintf(stderr, "  vm_create: %s\n", err);
			goto out;
		}
		CHECK(vm_start(vm[k]) == 0);
	}
	CHECK(wait_started(vm[0], G_COUNTER) != 0);
	CHECK(wait_started(vm[1], G_COUNTER) != 0);

	CHECK(vm_pause(vm[0]) == 0);
	uint64_t a0 = ram64(vm[0], G_COUNTER), b0 = ram64(vm[1], G_COUNTER);
	sleep_ms(50);
	uint64_t a1 = ram64(vm[0], G_COUNTER);
	CHECK_EQ_U64(a1, a0);		      /* paused */
	CHECK(runs_on(vm[1], G_COUNTER, b0)); /* the other VM runs on */
	CHECK(vm_pause(vm[0]) == 0);	      /* a no-op */
	vm_resume(vm[0]);
	CHECK(runs_on(vm[0], G_COUNTER, a1));

	/* again, a few times: every pause holds */
	for (int i = 0; i < 5; i++) {
		CHECK(vm_pause(vm[1]) == 0);
		uint64_t v = ram64(vm[1], G_COUNTER);
		sleep_ms(10);
		CHECK_EQ_U64(ram64(vm[1], G_COUNTER), v);
		vm_resume(vm[1]);
	}

	/* stopping one leaves the other running */
	for (int k = 0; k < 2; k++) {
		struct vm_exit ex;
		vm_stop(vm[k]);
		CHECK(vm_wait(vm[k], &ex) == 0);
		CHECK_EQ_U64(ex.end, VM_END_QUIT);
		CHECK(vm_pause(vm[k]) == -ESRCH); /* ended */
		if (k == 0)
			CHECK(runs_on(vm[1], G_COUNTER, ram64(vm[1], G_COUNTER)));
	}
out:
	vm_destroy(vm[0]);
	vm_destroy(vm[1]);
}

/* A console that never types: it waits on the VM's wake-ups for the time
 * asked, so idle time passes in real time with the engine's thread asleep
 * in poll (as under `corral run` on a terminal). */
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

/* An idle guest (halted between LAPIC timer interrupts, with idle time
 * passing in real time, the engine asleep): no interrupt while paused,
 * ticks again after. */
static void test_pause_idle(void)
{
	char guest[256], err[512];
	struct vm *vm = NULL;
	path_in_tmp(guest, sizeof(guest), "idle.bin");
	make_idle_guest(guest, 10000000); /* 10 ms */
	struct vm_config c;
	flat_config(&c, guest, NULL);
	c.realtime_idle = 1;
	c.poll_input = quiet_input;
	int r = vm_create(&c, &vm, err, sizeof(err));
	CHECK(r == 0);
	if (r) {
		fprintf(stderr, "  vm_create: %s\n", err);
		return;
	}
	CHECK(vm_start(vm) == 0);
	CHECK(wait_started(vm, G_TICKS) != 0);
	/* real time: about ten ticks in 100 ms, not thousands */
	uint64_t s0 = ram64(vm, G_TICKS);
	sleep_ms(100);
	uint64_t s1 = ram64(vm, G_TICKS);
	CHECK(s1 - s0 >= 3 && s1 - s0 <= 50);
	if (s1 - s0 < 3 || s1 - s0 > 50)
		fprintf(stderr, "  %llu ticks in 100 ms\n", (unsigned long long)(s1 - s0));
	CHECK(vm_pause(vm) == 0);
	uint64_t t0 = ram64(vm, G_TICKS);
	sleep_ms(50);
	CHECK_EQ_U64(ram64(vm, G_TICKS), t0);
	vm_resume(vm);
	sleep_ms(50);
	CHECK(ram64(vm, G_TICKS) > t0);
	vm_destroy(vm); /* stops it */
}

/* The same under kvm: vCPU threads kicked out of KVM_RUN and parked.
 * Skipped without a usable /dev/kvm. */
static void test_pause_kvm(void)
{
	struct kvm_info ki;
	kvm_probe(&ki, 0);
	if (!ki.usable) {
		TEST_SKIP("no /dev/kvm (pause under kvm)");
		return;
	}
	char guest[256], err[512];
	struct vm *vm = NULL;
	path_in_tmp(guest, sizeof(guest), "count.bin");
	CHECK(write_file(guest, g_count, sizeof(g_count)) == 0);
	struct vm_config c;
	flat_config(&c, guest, NULL);
	c.engine = VM_ENGINE_KVM;
	int r = vm_create(&c, &vm, err, sizeof(err));
	CHECK(r == 0);
	if (r) {
		fprintf(stderr, "  vm_create: %s\n", err);
		return;
	}
	CHECK(vm_start(vm) == 0);
	CHECK(wait_started(vm, G_COUNTER) != 0);
	for (int i = 0; i < 3; i++) {
		CHECK(vm_pause(vm) == 0);
		uint64_t v = ram64(vm, G_COUNTER);
		sleep_ms(50);
		CHECK_EQ_U64(ram64(vm, G_COUNTER), v);
		vm_resume(vm);
		sleep_ms(20);
		CHECK(ram64(vm, G_COUNTER) > v);
	}
	vm_stop(vm);
	struct vm_exit ex;
	CHECK(vm_wait(vm, &ex) == 0);
	CHECK_EQ_U64(ex.end, VM_END_QUIT);
	vm_destroy(vm);
}

static int reboots;

static void count_reboot(void *opaque)
{
	(void)opaque;
	__atomic_add_fetch(&reboots, 1, __ATOMIC_SEQ_CST);
}

/* vm_reset reboots the guest even with no_reboot (which is about the
 * guest's own resets): the machine is reset in place, RAM starts from
 * zero. */
static void test_reset(void)
{
	char guest[256], err[512];
	struct vm *vm = NULL;
	path_in_tmp(guest, sizeof(guest), "idle.bin");
	make_idle_guest(guest, 1000000); /* 1 ms */
	struct vm_config c;
	flat_config(&c, guest, NULL);
	c.realtime_idle = 1;
	c.no_reboot = 1;
	c.on_reboot = count_reboot;
	int r = vm_create(&c, &vm, err, sizeof(err));
	CHECK(r == 0);
	if (r)
		return;
	CHECK(vm_reset(vm) == -ESRCH); /* not running */
	CHECK(vm_start(vm) == 0);
	CHECK(wait_started(vm, G_TICKS) != 0);
	sleep_ms(50);
	CHECK(vm_pause(vm) == 0);
	uint64_t before = ram64(vm, G_TICKS);
	vm_resume(vm);
	CHECK(vm_reset(vm) == 0);
	uint64_t t0 = now_ns();
	while (__atomic_load_n(&reboots, __ATOMIC_SEQ_CST) == 0 && now_ns() - t0 < 10000000000ull)
		sleep_ms(1);
	CHECK_EQ_U64(reboots, 1);
	/* RAM started from zero: the guest's tick count (incq in memory)
	 * starts over (the new boot has run for about a millisecond, the old
	 * one for 50) */
	uint64_t after = 0;
	CHECK(vm_ram_read(vm, G_TICKS, &after, 8) == 0);
	CHECK(after < before);
	CHECK(wait_started(vm, G_TICKS) != 0); /* runs again */
	vm_stop(vm);
	struct vm_exit ex;
	CHECK(vm_wait(vm, &ex) == 0);
	CHECK_EQ_U64(ex.end, VM_END_QUIT);
	vm_destroy(vm);
}

static void expect_create_error(const struct vm_config *c, const char *want)
{
	struct vm *vm = (struct vm *)1;
	char err[512] = "";
	int r = vm_create(c, &vm, err, sizeof(err));
	CHECK(r < 0);
	CHECK(vm == NULL);
	CHECK(strstr(err, want) != NULL);
	CHECK(strchr(err, '\n') == NULL);
	if (!strstr(err, want))
		fprintf(stderr, "  got '%s', want '%s'\n", err, want);
}

static void test_errors(void)
{
	struct vm_config c;
	char missing[256];
	path_in_tmp(missing, sizeof(missing), "missing.bin");
	flat_config(&c, missing, NULL);
	expect_create_error(&c, "flat guest '");
	expect_create_error(&c, "No such file or directory");
	flat_config(&c, missing, NULL);
	c.cpus = 0;
	expect_create_error(&c, "cpus 0: must be from 1 to");
	flat_config(&c, missing, NULL);
	c.mem = (16ull << 20) + 1;
	expect_create_error(&c, "multiple of 4K");
	flat_config(&c, missing, NULL);
	c.cpu_model = CPU_MODEL_HOST;
	expect_create_error(&c, "needs the kvm engine");
	flat_config(&c, missing, "/nonexistent-dir/out");
	char guest[256];
	path_in_tmp(guest, sizeof(guest), "count.bin");
	CHECK(write_file(guest, g_count, sizeof(g_count)) == 0);
	c.flat = guest;
	expect_create_error(&c, "--serial file:/nonexistent-dir/out: No such file or directory");
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_two_vms);
	RUN(test_pause_busy);
	RUN(test_pause_idle);
	RUN(test_pause_kvm);
	RUN(test_reset);
	RUN(test_errors);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return test_report();
}
