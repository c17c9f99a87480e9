/* The disks of a snapshot: a save freezes each writable disk's image into
 * the snapshot directory and the running VM goes on in a new overlay; two
 * restores of one snapshot each write an overlay of their own and never
 * each other's or the snapshot's; a copied snapshot directory restores;
 * a backing chain named relative goes into the snapshot too. Disk I/O is
 * done as virtio-blk does it, on the VM's open disk, with the VM paused. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testhelp.h"

#include "tiny_guests.h"
#include "vm/vm_internal.h"

static char tmpdir[] = "/tmp/t_snapdisk.XXXXXX";

static void tmp_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

#define DISK_SIZE (1u << 20)
#define SECTOR_OFF 4096

static int write_all(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(p, 1, n, f);
	return fclose(f) == 0 && w == n ? 0 : -1;
}

/* A raw disk of DISK_SIZE bytes whose sector at SECTOR_OFF holds tag. */
static void make_raw(const char *path, const char *tag)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && ftruncate(fd, DISK_SIZE) == 0);
	CHECK(pwrite(fd, tag, strlen(tag) + 1, SECTOR_OFF) == (ssize_t)strlen(tag) + 1);
	close(fd);
}

/* What the image at path (and its chain) reads at SECTOR_OFF. */
static void read_tag(const char *path, char *tag, size_t len)
{
	struct blk *b;
	char err[512];
	tag[0] = 0;
	if (blk_open(&b, path, BLK_FMT_PROBE, 1, err, sizeof(err)) < 0) {
		fprintf(stderr, "  %s\n", err);
		snprintf(tag, len, "(cannot open)");
		return;
	}
	char buf[64] = "";
	if (blk_pread(b, SECTOR_OFF, buf, sizeof(buf)) < 0)
		snprintf(buf, sizeof(buf), "(read error)");
	buf[sizeof(buf) - 1] = 0;
	snprintf(tag, len, "%s", buf);
	blk_close(b);
}

static int tag_is(const char *path, const char *want)
{
	char got[64];
	read_tag(path, got, sizeof(got));
	if (strcmp(got, want)) {
		fprintf(stderr, "  '%s' reads '%s', not '%s'\n", path, got, want);
		return 0;
	}
	return 1;
}

/* The VM's disk k, as the guest sees it. */
static void vm_disk_write(struct vm *vm, unsigned k, const char *tag)
{
	CHECK(vm->blk[k] != NULL);
	if (vm->blk[k])
		CHECK(blk_pwrite(vm->blk[k], SECTOR_OFF, tag, strlen(tag) + 1) == 0);
}

static int vm_disk_is(struct vm *vm, unsigned k, const char *want)
{
	char buf[64] = "";
	if (!vm->blk[k] || blk_pread(vm->blk[k], SECTOR_OFF, buf, sizeof(buf)) < 0)
		return 0;
	buf[sizeof(buf) - 1] = 0;
	if (strcmp(buf, want)) {
		fprintf(stderr, "  the VM's disk %u reads '%s', not '%s'\n", k, buf, want);
		return 0;
	}
	return 1;
}

static int is_qcow2(const char *path)
{
	uint8_t m[4] = {0};
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t n = fread(m, 1, 4, f);
	fclose(f);
	return n == 4 && !memcmp(m, "QFI\xfb", 4);
}

static void wait_running(struct vm *vm)
{
	for (int k = 0; k < 200 && !vm_is_running(vm); k++) {
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
}

static struct vm *start_vm(const char *disk, const char *disk2_ro)
{
	char guest[300];
	tmp_path(guest, sizeof(guest), "count.bin");
	CHECK(write_all(guest, g_count, sizeof(g_count)) == 0);
	struct vm_config c;
	vm_config_init(&c);
	c.flat = guest;
	c.mem = 16 << 20;
	c.engine = VM_ENGINE_EMU;
	c.disk[0].path = disk;
	c.ndisks = 1;
	if (disk2_ro) {
		c.disk[1].path = disk2_ro;
		c.disk[1].readonly = 1;
		c.ndisks = 2;
	}
	struct vm *vm = NULL;
	char err[512];
	if (vm_create(&c, &vm, err, sizeof(err)) < 0) {
		fprintf(stderr, "  vm_create: %s\n", err);
		return NULL;
	}
	CHECK(vm_start(vm) == 0);
	wait_running(vm);
	return vm;
}

static void end_vm(struct vm *vm)
{
	vm_stop(vm);
	vm_wait(vm, NULL);
	vm_destroy(vm);
}

static struct vm *restore(const char *dir, const char *disk_dir, char *err, size_t errlen)
{
	struct vm_config o;
	vm_config_init(&o);
	o.disk_dir = disk_dir;
	struct vm *vm = NULL;
	if (vm_restore(dir, &o, &vm, err, errlen) < 0)
		return NULL;
	return vm;
}

static void test_save_switches_to_overlay(void)
{
	char disk[300], ro[300], snap_a[300], snap_b[300], p[400], err[512];
	tmp_path(disk, sizeof(disk), "d.raw");
	tmp_path(ro, sizeof(ro), "ro.raw");
	tmp_path(snap_a, sizeof(snap_a), "snapA");
	tmp_path(snap_b, sizeof(snap_b), "snapB");
	make_raw(disk, "A");
	make_raw(ro, "R");
	struct stat st0, st1;
	CHECK(stat(disk, &st0) == 0);
	struct vm *vm = start_vm(disk, ro);
	CHECK(vm != NULL);
	if (!vm)
		return;
	int r = vm_save(vm, snap_a, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "  vm_save: %s\n", err);
	CHECK(r == 0);
	/* the image that was the disk is now the snapshot's, by a hard link */
	snprintf(p, sizeof(p), "%s/disk0.raw", snap_a);
	CHECK(stat(p, &st1) == 0 && st1.st_ino == st0.st_ino && st1.st_dev == st0.st_dev);
	CHECK(tag_is(p, "A"));
	/* the disk's name is a new overlay on it, and the VM writes there */
	CHECK(is_qcow2(disk));
	CHECK(stat(disk, &st1) == 0 && st1.st_ino != st0.st_ino);
	CHECK(vm_pause(vm) == 0);
	CHECK(vm_disk_is(vm, 0, "A"));
	vm_disk_write(vm, 0, "B");
	CHECK(vm_disk_is(vm, 0, "B"));
	/* a read-only disk is shared, not frozen */
	snprintf(p, sizeof(p), "%s/disk1.raw", snap_a);
	CHECK(access(p, F_OK) < 0);
	vm_resume(vm);
	/* a second snapshot freezes the overlay, with the first below it */
	CHECK(vm_save(vm, snap_b, err, sizeof(err)) == 0);
	snprintf(p, sizeof(p), "%s/disk0.qcow2", snap_b);
	CHECK(tag_is(p, "B"));
	CHECK(vm_pause(vm) == 0);
	vm_disk_write(vm, 0, "C");
	vm_resume(vm);
	/* saved again into the second directory: the files there stay (the
	 * VM's image is on them), the new image gets a name of its own */
	r = vm_save(vm, snap_b, err, sizeof(err));
	CHECK(r == 0);
	snprintf(p, sizeof(p), "%s/disk0-1.qcow2", snap_b);
	CHECK(tag_is(p, "C"));
	CHECK(vm_pause(vm) == 0);
	vm_disk_write(vm, 0, "D");
	vm_resume(vm);
	CHECK(vm_is_running(vm));
	end_vm(vm);
	CHECK(tag_is(disk, "D"));
	snprintf(p, sizeof(p), "%s/disk0.raw", snap_a);
	CHECK(tag_is(p, "A"));
	snprintf(p, sizeof(p), "%s/disk0.qcow2", snap_b);
	CHECK(tag_is(p, "B"));
	snprintf(p, sizeof(p), "%s/disk0-1.qcow2", snap_b);
	CHECK(tag_is(p, "C"));
}

static void test_two_restores(void)
{
	char snap_a[300], snap_b[300], p[400], err[512];
	tmp_path(snap_a, sizeof(snap_a), "snapA");
	tmp_path(snap_b, sizeof(snap_b), "snapB");
	/* two restores of one snapshot at once */
	struct vm *v1 = restore(snap_a, NULL, err, sizeof(err));
	if (!v1)
		fprintf(stderr, "  restore: %s\n", err);
	struct vm *v2 = restore(snap_a, NULL, err, sizeof(err));
	CHECK(v1 && v2);
	if (!v1 || !v2)
		return;
	CHECK(vm_disk_is(v1, 0, "A") && vm_disk_is(v2, 0, "A"));
	vm_disk_write(v1, 0, "one");
	vm_disk_write(v2, 0, "two");
	CHECK(vm_disk_is(v1, 0, "one") && vm_disk_is(v2, 0, "two"));
	/* the read-only disk is the very file it was */
	CHECK(!strcmp(vm_get_config(v1)->disk[1].path, vm_get_config(v2)->disk[1].path));
	CHECK(vm_get_config(v1)->disk[1].readonly && vm_disk_is(v1, 1, "R"));
	vm_destroy(v1);
	vm_destroy(v2);
	snprintf(p, sizeof(p), "%s.restore-1/disk0.qcow2", snap_a);
	CHECK(tag_is(p, "one"));
	snprintf(p, sizeof(p), "%s.restore-2/disk0.qcow2", snap_a);
	CHECK(tag_is(p, "two"));
	snprintf(p, sizeof(p), "%s/disk0.raw", snap_a);
	CHECK(tag_is(p, "A"));
	/* the last snapshot's chain reads what was written before it */
	struct vm *v3 = restore(snap_b, NULL, err, sizeof(err));
	CHECK(v3 && vm_disk_is(v3, 0, "C"));
	if (v3)
		vm_destroy(v3);
	/* --disk-dir: there, and never over an overlay that exists */
	char dd[300];
	tmp_path(dd, sizeof(dd), "mine");
	struct vm *v4 = restore(snap_a, dd, err, sizeof(err));
	CHECK(v4 != NULL);
	if (v4) {
		vm_disk_write(v4, 0, "four");
		vm_destroy(v4);
	}
	struct vm *v5 = restore(snap_a, dd, err, sizeof(err));
	CHECK(v5 == NULL && strstr(err, "File exists") && strstr(err, "disk0.qcow2"));
	if (v5)
		vm_destroy(v5);
	snprintf(p, sizeof(p), "%s/disk0.qcow2", dd);
	CHECK(tag_is(p, "four"));
}

/* A snapshot directory copied elsewhere restores there, its disk chain
 * included (a qcow2 image on a base named relative). */
static void test_copied_dir_and_chain(void)
{
	char base[300], top[300], snap[300], moved[300], p[400], err[512], cmd[2048];
	tmp_path(base, sizeof(base), "base.raw");
	tmp_path(top, sizeof(top), "top.qcow2");
	tmp_path(snap, sizeof(snap), "snapC");
	tmp_path(moved, sizeof(moved), "elsewhere");
	make_raw(base, "base");
	CHECK(qcow2_create(top, DISK_SIZE, 16, "base.raw", "raw", err, sizeof(err)) == 0);
	struct vm *vm = start_vm(top, NULL);
	CHECK(vm != NULL);
	if (!vm)
		return;
	CHECK(vm_save(vm, snap, err, sizeof(err)) == 0);
	end_vm(vm);
	snprintf(p, sizeof(p), "%s/base.raw", snap);
	CHECK(access(p, F_OK) == 0);
	/* copied (not linked) elsewhere, the originals gone */
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp -r '%s' '%s/' && rm -rf '%s' '%s' '%s'", moved, snap, moved,
		 snap, base, top);
	CHECK(system(cmd) == 0);
	snprintf(p, sizeof(p), "%s/snapC", moved);
	struct vm *v = restore(p, NULL, err, sizeof(err));
	if (!v)
		fprintf(stderr, "  restore: %s\n", err);
	CHECK(v && vm_disk_is(v, 0, "base"));
	if (v)
		vm_destroy(v);
}

/* A saved configuration naming a disk outside the snapshot is refused. */
static void test_hostile_names(void)
{
	const char *bad[] = {"../d.raw", "x/../../etc/passwd", "..", "", "sub/disk0.raw"};
	struct snapdisk_names *names = malloc(sizeof(*names));
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		struct vm_config c;
		vm_config_init(&c);
		c.disk[0].path = bad[k];
		c.ndisks = 1;
		char err[512] = "";
		CHECK(snapdisk_overlays(&c, tmpdir, NULL, names, 1, err, sizeof(err)) == -EINVAL);
		CHECK(strstr(err, "not a file of the snapshot") != NULL);
	}
	/* without its directory (the fuzzer's entry) a writable disk is refused */
	struct vm_config c;
	vm_config_init(&c);
	c.disk[0].path = "disk0.raw";
	c.ndisks = 1;
	char err[512] = "";
	CHECK(snapdisk_overlays(&c, NULL, NULL, names, 1, err, sizeof(err)) == -EINVAL);
	free(names);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("t_snapdisk");
		return 1;
	}
	RUN(test_save_switches_to_overlay);
	RUN(test_two_restores);
	RUN(test_copied_dir_and_chain);
	RUN(test_hostile_names);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return test_report();
}
