/* Snapshots of a system VM: a tiny guest counting in RAM and printing the
 * count is saved mid-run, the VM is killed, and a fresh process (this
 * program run again) restores it: the printed sequence goes on where it
 * stood. A truncated, corrupted or crafted state file fails with one line.
 * A snapshot made by the format's first version (the fixture) restores. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "testhelp.h"

#include "engine/engine.h"
#include "state/stream.h"
#include "tiny_guests.h"
#include "vm/vm.h"

static char tmpdir[] = "/tmp/t_snap.XXXXXX";
static char self[4096];

static void path_in_tmp(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static int write_all(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(p, 1, n, f);
	return fclose(f) == 0 && w == n ? 0 : -1;
}

static unsigned count_lines(const char *path)
{
	size_t n = 0;
	char *b = test_read_file(path, &n);
	unsigned lines = 0;
	for (size_t k = 0; b && k < n; k++)
		lines += b[k] == '\n';
	free(b);
	return lines;
}

/* Waits up to 20 s for path to hold at least n lines. */
static int wait_lines(const char *path, unsigned n)
{
	for (int k = 0; k < 2000; k++) {
		if (count_lines(path) >= n)
			return 0;
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

static void make_tick_guest(const char *path, uint64_t delay)
{
	uint8_t img[sizeof(g_tick)];
	memcpy(img, g_tick, sizeof(img));
	memcpy(img + G_TICK_DELAY, &delay, 8);
	CHECK(write_all(path, img, sizeof(img)) == 0);
}

static void tick_config(struct vm_config *c, const char *guest, const char *out)
{
	vm_config_init(c);
	c->flat = guest;
	c->mem = 16 << 20;
	c->engine = VM_ENGINE_EMU;
	c->serial_path = out;
}

/* The fresh process: restore dir with output to out, run until out has
 * lines lines, stop. Exit status 0 on success, 2 if the restore failed
 * (its message on stderr), 3 if the guest printed too little. */
static int restore_main(const char *dir, const char *out, unsigned lines, const char *engine)
{
	struct vm_config o;
	vm_config_init(&o);
	o.serial_path = out;
	o.engine = !strcmp(engine, "kvm") ? VM_ENGINE_KVM : VM_ENGINE_EMU;
	struct vm *vm;
	char err[512];
	if (vm_restore(dir, &o, &vm, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (vm_start(vm) < 0)
		return 2;
	int r = wait_lines(out, lines) < 0 ? 3 : 0;
	vm_stop(vm);
	vm_wait(vm, NULL);
	vm_destroy(vm);
	return r;
}

/* Restores dir in a fresh process (this program run again) on engine. */
static int run_restore_on(const char *dir, const char *out, unsigned lines, const char *engine)
{
	char n[16];
	snprintf(n, sizeof(n), "%u", lines);
	pid_t pid = fork();
	if (pid == 0) {
		execl(self, self, "restore", dir, out, n, engine, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int run_restore(const char *dir, const char *out, unsigned lines)
{
	return run_restore_on(dir, out, lines, "emu");
}

/* The lines of a and b together must be 1, 2, 3, ... (hex), with more of
 * them than a alone holds. */
static void check_sequence(const char *a, const char *b)
{
	size_t na = 0, nb = 0;
	char *ta = test_read_file(a, &na), *tb = test_read_file(b, &nb);
	CHECK(ta && tb);
	if (!ta || !tb) {
		free(ta);
		free(tb);
		return;
	}
	/* b's VM was stopped where it stood, perhaps in the middle of a line
	 * (likely under kvm in the nested machine, where each OUT is a slow
	 * exit): that unfinished line is left out */
	while (nb && tb[nb - 1] != '\n')
		tb[--nb] = 0;
	char *all = malloc(na + nb + 1);
	memcpy(all, ta, na);
	memcpy(all + na, tb, nb + 1);
	unsigned lines_a = 0;
	for (size_t k = 0; k < na; k++)
		lines_a += ta[k] == '\n';
	unsigned long want = 1, bad = 0;
	char *save = NULL;
	for (char *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strtoul(l, NULL, 16) != want && !bad) {
			fprintf(stderr, "  line %lu reads '%s'\n", want, l);
			bad = want;
		}
		want++;
	}
	CHECK(bad == 0);
	CHECK(want - 1 > lines_a + 5);
	free(all);
	free(ta);
	free(tb);
}

static char snapdir[300];

static void test_save_restore(void)
{
	char guest[300], out1[300], out2[300], dir2[300];
	path_in_tmp(guest, sizeof(guest), "tick.bin");
	path_in_tmp(out1, sizeof(out1), "out1");
	path_in_tmp(out2, sizeof(out2), "out2");
	path_in_tmp(snapdir, sizeof(snapdir), "snap");
	path_in_tmp(dir2, sizeof(dir2), "snap2");
	make_tick_guest(guest, 200000);
	struct vm_config c;
	tick_config(&c, guest, out1);
	struct vm *vm;
	char err[512];
	CHECK(vm_create(&c, &vm, err, sizeof(err)) == 0);
	CHECK(vm_start(vm) == 0);
	CHECK(wait_lines(out1, 20) == 0);
	/* a save of a running VM pauses it and resumes it after */
	CHECK(vm_save(vm, dir2, err, sizeof(err)) == 0);
	unsigned before = count_lines(out1);
	CHECK(wait_lines(out1, before + 5) == 0);
	/* paused first, so that out1 ends where the snapshot stands */
	CHECK(vm_pause(vm) == 0);
	uint64_t counter = 0;
	CHECK(vm_ram_read(vm, G_COUNTER, &counter, 8) == 0);
	int r = vm_save(vm, snapdir, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "  vm_save: %s\n", err);
	CHECK(r == 0);
	vm_stop(vm);
	vm_wait(vm, NULL);
	vm_destroy(vm);
	CHECK(counter >= 25);
	struct stat st;
	CHECK(stat(snapdir, &st) == 0);
	char mem[400];
	snprintf(mem, sizeof(mem), "%s/memory", snapdir);
	/* sparse: 16 MiB of RAM, a few pages written */
	CHECK(stat(mem, &st) == 0 && st.st_size == 16 << 20 && st.st_blocks * 512 < (1 << 20));

	CHECK(run_restore(snapdir, out2, 30) == 0);
	check_sequence(out1, out2);
}

static void copy_snap(const char *to, size_t state_len, const void *state)
{
	char cmd[1024], p[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s'", to, snapdir, to);
	CHECK(system(cmd) == 0);
	snprintf(p, sizeof(p), "%s/state", to);
	CHECK(write_all(p, state, state_len) == 0);
}

/* vm_restore must fail with one line naming the problem. */
static void check_refused(const char *dir, const char *want)
{
	struct vm *vm = NULL;
	char err[512] = "";
	int r = vm_restore(dir, NULL, &vm, err, sizeof(err));
	CHECK(r < 0 && vm == NULL);
	CHECK(err[0] && !strchr(err, '\n'));
	if (want && !strstr(err, want)) {
		fprintf(stderr, "  '%s' does not say '%s'\n", err, want);
		CHECK(0);
	}
	if (r >= 0)
		vm_destroy(vm);
}

static void test_hostile(void)
{
	char p[400], d[300];
	size_t n = 0;
	snprintf(p, sizeof(p), "%s/state", snapdir);
	uint8_t *s = (uint8_t *)test_read_file(p, &n);
	CHECK(s && n > 100);
	if (!s)
		return;
	path_in_tmp(d, sizeof(d), "bad");
	/* truncated, at every length in steps */
	for (size_t cut = 0; cut < n; cut += 1 + n / 97) {
		copy_snap(d, cut, s);
		check_refused(d, NULL);
	}
	/* one byte flipped: the CRC catches it */
	s[n / 2] ^= 0x40;
	copy_snap(d, n, s);
	check_refused(d, "checksum");
	s[n / 2] ^= 0x40;
	/* a crafted cpu section with a valid CRC and an impossible MXCSR */
	uint8_t *sec = memmem(s, n,
			      "SECT\x03"
			      "cpu",
			      8);
	CHECK(sec != NULL);
	if (sec) {
		uint64_t len;
		memcpy(&len, sec + 16, 8);
		uint8_t *body = sec + 24;
		uint32_t bad = 0xffffffffu;
		memcpy(body + 668, &bad, 4);
		uint32_t crc = (uint32_t)crc32(0, sec + 4, (uInt)(20 + len));
		memcpy(body + len, &crc, 4);
		copy_snap(d, n, s);
		check_refused(d, "MXCSR");
	}
	/* the memory file of another size */
	copy_snap(d, n, s);
	snprintf(p, sizeof(p), "%s/memory", d);
	CHECK(truncate(p, 8 << 20) == 0);
	check_refused(d, "memory file");
	/* no snapshot at all */
	snprintf(p, sizeof(p), "%s/none", tmpdir);
	check_refused(p, "No such file");
	free(s);
}

/* ---- The format's fixture ----
 * tests/vm/fixtures/snap-v1: a snapshot of tests/guests/idle_tick.S (the
 * LAPIC timer interrupting a HLT loop, a line printed every 10 ticks) made
 * by the first version of the snapshot format, which every later corral
 * must restore (docs/state-format.md). It holds the state file as written,
 * the memory file gzipped (16 MiB of RAM, nearly all holes) and what the
 * guest printed up to the snapshot. `t_snap make-fixture DIR GUEST.bin`
 * made it; it is never made again, or it would test nothing. */

/* The fixture's directory, beside this source file (the tests run from the
 * top of the tree). */
static void fixture_path(char *buf, size_t len, const char *name)
{
	char src[] = __FILE__;
	char *slash = strrchr(src, '/');
	if (slash)
		*slash = 0;
	snprintf(buf, len, "%s/fixtures/snap-v1/%s", slash ? src : ".", name);
}

/* gz (a gzipped memory file) into a sparse file at path, as the snapshot
 * writer lays memory files out (state_ram_write). */
static int inflate_memory(const char *gz, const char *path)
{
	gzFile in = gzopen(gz, "rb");
	if (!in)
		return -1;
	size_t cap = 64 << 20, n = 0;
	uint8_t *buf = malloc(cap);
	int k = 0;
	while (buf && n < cap && (k = gzread(in, buf + n, (unsigned)(cap - n < (1u << 20) ? cap - n : 1u << 20))) > 0)
		n += (size_t)k;
	gzclose(in);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = buf && k == 0 && n > 0 && fd >= 0 && state_ram_write(fd, buf, n) == 0 ? 0 : -1;
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

static int gzip_file(const char *from, const char *to)
{
	size_t n = 0;
	char *b = test_read_file(from, &n);
	gzFile out = gzopen(to, "wb9");
	int r = b && out && gzwrite(out, b, (unsigned)n) == (int)n ? 0 : -1;
	if (out && gzclose(out) != Z_OK)
		r = -1;
	free(b);
	return r;
}

/* Makes the fixture in dir (which must exist), working inside it with the
 * guest copied there, so that the saved configuration names no path of the
 * machine that made it. */
static int make_fixture_main(const char *dir, const char *guest)
{
	size_t n = 0;
	char *g = test_read_file(guest, &n);
	if (!g || chdir(dir) < 0 || write_all("idle_tick.bin", g, n) < 0)
		return 1;
	free(g);
	struct vm_config c;
	tick_config(&c, "idle_tick.bin", "serial.txt");
	struct vm *vm;
	char err[512] = "";
	if (vm_create(&c, &vm, err, sizeof(err)) < 0 || vm_start(vm) < 0 || wait_lines("serial.txt", 20) < 0 ||
	    vm_pause(vm) < 0 || vm_save(vm, "snap.tmp", err, sizeof(err)) < 0) {
		fprintf(stderr, "make-fixture: %s\n", err);
		return 1;
	}
	vm_stop(vm);
	vm_wait(vm, NULL);
	vm_destroy(vm);
	if (rename("snap.tmp/state", "state") < 0 || gzip_file("snap.tmp/memory", "memory.gz") < 0 ||
	    unlink("snap.tmp/memory") < 0 || rmdir("snap.tmp") < 0 || unlink("idle_tick.bin") < 0)
		return 1;
	return 0;
}

/* The fixture as a snapshot directory dir: its state, and its memory file
 * inflated, sparse. */
static void fixture_unpack(const char *dir)
{
	char state[400], gz[400], p[400];
	fixture_path(state, sizeof(state), "state");
	fixture_path(gz, sizeof(gz), "memory.gz");
	size_t n = 0;
	char *s = test_read_file(state, &n);
	CHECK(s != NULL && mkdir(dir, 0700) == 0);
	snprintf(p, sizeof(p), "%s/state", dir);
	CHECK(s && write_all(p, s, n) == 0);
	free(s);
	snprintf(p, sizeof(p), "%s/memory", dir);
	CHECK(inflate_memory(gz, p) == 0);
	struct stat st;
	CHECK(stat(p, &st) == 0 && st.st_size == 16 << 20 && st.st_blocks * 512 < (1 << 20));
}

/* The fixture restored by this corral, in a fresh process: the guest's
 * timer goes on interrupting it and its lines go on from the last one it
 * printed before the snapshot, without a gap or a restart. */
static void test_fixture_v1(void)
{
	char state[400], serial[400], dir[300], out[300];
	fixture_path(state, sizeof(state), "state");
	fixture_path(serial, sizeof(serial), "serial.txt");
	path_in_tmp(dir, sizeof(dir), "fixture");
	path_in_tmp(out, sizeof(out), "fixture.out");
	size_t n = 0;
	char *s = test_read_file(state, &n);
	if (!s)
		fprintf(stderr, "  the fixture '%s' is missing\n", state);
	CHECK(s && n > 100);
	/* what it is: a stream of kind vm in format 1, sections of version 1 */
	struct state_reader rd;
	CHECK(s && state_reader_init(&rd, s, n, "vm") == 0 && rd.format == 1);
	struct state_section sec;
	unsigned sections = 0;
	while (s && state_next_section(&rd, &sec) == 1) {
		CHECK_EQ_U64(sec.version, 1);
		sections++;
	}
	CHECK(s && rd.pos == n && !rd.failed && sections >= 12);
	free(s);
	fixture_unpack(dir);
	CHECK(count_lines(serial) >= 20);
	CHECK_EQ_U64(run_restore(dir, out, 30), 0);
	check_sequence(serial, out);
}

/* ---- Across engines: a snapshot taken under one restores under the
 * other. Where /dev/kvm is not usable these are counted as skipped. ---- */

static int kvm_usable(void)
{
	struct kvm_info ki;
	kvm_probe(&ki, 0);
	return ki.usable;
}

/* emu -> kvm: the fixture (made under emu: LAPIC timer, HLT) and the tick
 * guest's snapshot from test_save_restore (port I/O in a busy loop). */
static void test_emu_to_kvm(void)
{
	if (!kvm_usable()) {
		TEST_SKIP("no usable /dev/kvm (the emu -> kvm restore runs where there is one)");
		return;
	}
	char serial[400], dir[300], out[300], out1[300];
	fixture_path(serial, sizeof(serial), "serial.txt");
	path_in_tmp(dir, sizeof(dir), "fixture-kvm");
	path_in_tmp(out, sizeof(out), "fixture-kvm.out");
	fixture_unpack(dir);
	CHECK_EQ_U64(run_restore_on(dir, out, 30, "kvm"), 0);
	check_sequence(serial, out);
	path_in_tmp(out1, sizeof(out1), "out1");
	path_in_tmp(out, sizeof(out), "tick-kvm.out");
	CHECK_EQ_U64(run_restore_on(snapdir, out, 30, "kvm"), 0);
	check_sequence(out1, out);
}

/* kvm -> emu: the tick guest run under kvm and saved mid-run; and the
 * fixture run on under kvm, saved again there (a vCPU halted with its
 * LAPIC timer armed, as kvm describes it), restored under emu. */
static void test_kvm_to_emu(void)
{
	if (!kvm_usable()) {
		TEST_SKIP("no usable /dev/kvm (the kvm -> emu restore runs where there is one)");
		return;
	}
	char guest[300], a[300], b[300], dir[300], fx[300], serial[400], ab[300];
	path_in_tmp(guest, sizeof(guest), "tick.bin");
	path_in_tmp(a, sizeof(a), "kvm-a.out");
	path_in_tmp(b, sizeof(b), "kvm-b.out");
	path_in_tmp(dir, sizeof(dir), "snap-kvm");
	struct vm_config c;
	tick_config(&c, guest, a);
	c.engine = VM_ENGINE_KVM;
	struct vm *vm;
	char err[512] = "";
	int r = vm_create(&c, &vm, err, sizeof(err));
	CHECK(r == 0);
	if (r == 0) {
		CHECK(vm_start(vm) == 0);
		CHECK(wait_lines(a, 20) == 0);
		CHECK(vm_pause(vm) == 0);
		if (vm_save(vm, dir, err, sizeof(err)) < 0) {
			fprintf(stderr, "  vm_save under kvm: %s\n", err);
			CHECK(0);
		}
		vm_stop(vm);
		vm_wait(vm, NULL);
		vm_destroy(vm);
		CHECK_EQ_U64(run_restore_on(dir, b, 30, "emu"), 0);
		check_sequence(a, b);
	} else {
		fprintf(stderr, "  vm_create under kvm: %s\n", err);
	}

	/* the fixture, on under kvm, then saved and restored under emu */
	path_in_tmp(fx, sizeof(fx), "fixture-kvm2");
	path_in_tmp(a, sizeof(a), "fixture-kvm2.out");
	path_in_tmp(b, sizeof(b), "fixture-emu2.out");
	path_in_tmp(ab, sizeof(ab), "fixture-both.out");
	path_in_tmp(dir, sizeof(dir), "snap-kvm2");
	fixture_path(serial, sizeof(serial), "serial.txt");
	fixture_unpack(fx);
	struct vm_config o;
	vm_config_init(&o);
	o.serial_path = a;
	o.engine = VM_ENGINE_KVM;
	r = vm_restore(fx, &o, &vm, err, sizeof(err));
	CHECK(r == 0);
	if (r < 0) {
		fprintf(stderr, "  vm_restore under kvm: %s\n", err);
		return;
	}
	CHECK(vm_start(vm) == 0);
	CHECK(wait_lines(a, 10) == 0);
	CHECK(vm_pause(vm) == 0);
	if (vm_save(vm, dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "  vm_save under kvm: %s\n", err);
		CHECK(0);
	}
	vm_stop(vm);
	vm_wait(vm, NULL);
	vm_destroy(vm);
	/* what the guest printed: the fixture's lines, then kvm's */
	size_t n1 = 0, n2 = 0;
	char *t1 = test_read_file(serial, &n1), *t2 = test_read_file(a, &n2);
	FILE *f = fopen(ab, "wb");
	CHECK(t1 && t2 && f && fwrite(t1, 1, n1, f) == n1 && fwrite(t2, 1, n2, f) == n2);
	if (f)
		fclose(f);
	free(t1);
	free(t2);
	CHECK_EQ_U64(run_restore_on(dir, b, 30, "emu"), 0);
	check_sequence(ab, b);
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "restore"))
		return restore_main(argv[2], argv[3], (unsigned)atoi(argv[4]), argv[5]);
	if (argc == 4 && !strcmp(argv[1], "make-fixture"))
		return make_fixture_main(argv[2], argv[3]);
	ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (k <= 0 || !mkdtemp(tmpdir)) {
		perror("t_snap");
		return 1;
	}
	self[k] = 0;
	RUN(test_save_restore);
	RUN(test_hostile);
	RUN(test_fixture_v1);
	RUN(test_emu_to_kvm);
	RUN(test_kvm_to_emu);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return test_report();
}
