/* Snapshots of a system VM: a tiny guest counting in RAM and printing the
 * count is saved mid-run, the VM is killed, and a fresh process (this
 * program run again) restores it: the printed sequence goes on where it
 * stood. A truncated, corrupted or crafted state file fails with one line. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "testhelp.h"

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
static int restore_main(const char *dir, const char *out, unsigned lines)
{
	struct vm_config o;
	vm_config_init(&o);
	o.serial_path = out;
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

static int run_restore(const char *dir, const char *out, unsigned lines)
{
	char n[16];
	snprintf(n, sizeof(n), "%u", lines);
	pid_t pid = fork();
	if (pid == 0) {
		execl(self, self, "restore", dir, out, n, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
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

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "restore"))
		return restore_main(argv[2], argv[3], (unsigned)atoi(argv[4]));
	ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (k <= 0 || !mkdtemp(tmpdir)) {
		perror("t_snap");
		return 1;
	}
	self[k] = 0;
	RUN(test_save_restore);
	RUN(test_hostile);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return test_report();
}
