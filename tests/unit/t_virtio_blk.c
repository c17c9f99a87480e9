/* virtio-blk request parsing on a raw file: reads and writes land at the
 * right offsets with headers and data split anyhow across buffers; bad
 * sectors, short headers, missing status bytes, writes to read-only disks,
 * get-id, flush, discard and write-zeroes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/block.h"
#include "testhelp.h"
#include "virtio/virtio.h"

#define DISK_SECTORS 64
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2

static char path[64], path_rw[64];
static struct machine *m;
static struct virtio_dev *dev, *ro_dev;
static struct blk *disk, *ro_disk;
static struct virtq_elem e;
static uint8_t status;

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

static void elem_reset(void)
{
	memset(&e, 0, sizeof(e));
	status = 0xee;
}

static void add(void *p, size_t len, int writable)
{
	e.iov[e.n_out + e.n_in] = (struct iovec){p, len};
	if (writable) {
		e.n_in++;
		e.in_len += len;
	} else {
		e.n_out++;
		e.out_len += len;
	}
}

static int run(struct virtio_dev *d)
{
	const char *why = "";
	return virtio_blk_request(d, &e, &why);
}

static int setup(void)
{
	strcpy(path, "/tmp/t_virtio_blk.XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	uint8_t sec[512];
	for (int s = 0; s < DISK_SECTORS; s++) {
		memset(sec, s, sizeof(sec));
		if (write(fd, sec, sizeof(sec)) != (ssize_t)sizeof(sec))
			return -1;
	}
	/* a partial sector at the end is not part of the disk */
	if (write(fd, sec, 100) != 100)
		return -1;
	close(fd);
	char err[256];
	struct machine_config cfg = {.mem_size = 16 << 20, .ncpus = 1, .serial_out_fd = -1};
	if (machine_create(&m, &cfg) < 0 || blk_open(&ro_disk, path, BLK_FMT_PROBE, 1, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	/* The same image writable next to a reader: the image lock says no,
	 * as it does to QEMU (two writers, or a writer under a reader, corrupt
	 * what the other sees). */
	if (blk_open(&disk, path, BLK_FMT_RAW, 0, err, sizeof(err)) == 0) {
		fprintf(stderr, "a writer was let in next to a reader\n");
		return -1;
	}
	/* the writable disk is a copy */
	char cmd[600];
	strcpy(path_rw, "/tmp/t_virtio_blk_rw.XXXXXX");
	int fd2 = mkstemp(path_rw);
	if (fd2 < 0)
		return -1;
	close(fd2);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", path, path_rw);
	if (system(cmd) != 0 || blk_open(&disk, path_rw, BLK_FMT_RAW, 0, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	if (virtio_blk_create(m, disk, "serial-0123456789abcdef", &dev) < 0 ||
	    virtio_blk_create(m, ro_disk, "ro", &ro_dev) < 0)
		return -1;
	return 0;
}

static void test_config(void)
{
	uint64_t cap;
	memcpy(&cap, dev->config, 8);
	CHECK_EQ_U64(cap, DISK_SECTORS);
	CHECK(dev->host_features & (1ull << 9));	/* FLUSH */
	CHECK(dev->host_features & (1ull << 13));	/* DISCARD */
	CHECK(!(dev->host_features & (1ull << 5)));	/* not RO */
	CHECK(ro_dev->host_features & (1ull << 5));	/* RO */
	CHECK(!(ro_dev->host_features & (1ull << 14))); /* no WRITE_ZEROES on RO */
	CHECK(dev->pci.slot != ro_dev->pci.slot);
}

static void test_read_write(void)
{
	struct hdr h = {0, 0, 3};
	uint8_t a[100], b[924], c[512 * 2];
	/* read 2 sectors at 3, the data split 100 + 924 bytes, then status */
	elem_reset();
	add(&h, sizeof(h), 0);
	add(a, sizeof(a), 1);
	add(b, sizeof(b), 1);
	add(&status, 1, 1);
	CHECK_EQ_U64(run(dev), 1024 + 1);
	CHECK_EQ_U64(status, S_OK);
	CHECK(a[0] == 3 && a[99] == 3 && b[411] == 3 && b[412] == 4 && b[923] == 4);

	/* write 2 sectors at 10: header split 4 + 12 bytes, header and data
	 * sharing one buffer */
	uint8_t raw[4 + 12 + 1024];
	struct hdr w = {1, 0, 10};
	memcpy(raw, &w, 16);
	memset(raw + 16, 0xab, 1024);
	elem_reset();
	add(raw, 4, 0);
	add(raw + 4, 12 + 1024, 0);
	add(&status, 1, 1);
	CHECK_EQ_U64(run(dev), 1);
	CHECK_EQ_U64(status, S_OK);
	CHECK(blk_pread(disk, 10 * 512, c, sizeof(c)) == 0);
	CHECK(c[0] == 0xab && c[1023] == 0xab);
	CHECK(blk_pread(disk, 12 * 512, c, 1) == 0 && c[0] == 12);

	/* status shares the last buffer with read data */
	uint8_t rs[513];
	h.sector = 12;
	elem_reset();
	add(&h, sizeof(h), 0);
	add(rs, sizeof(rs), 1);
	CHECK_EQ_U64(run(dev), 513);
	CHECK(rs[0] == 12 && rs[511] == 12 && rs[512] == S_OK);

	/* flush */
	h.type = 4;
	elem_reset();
	add(&h, sizeof(h), 0);
	add(&status, 1, 1);
	CHECK_EQ_U64(run(dev), 1);
	CHECK_EQ_U64(status, S_OK);
}

static void test_bad_requests(void)
{
	struct hdr h = {0, 0, DISK_SECTORS - 1};
	uint8_t buf[1024];

	/* past the end: the last sector reads, two do not */
	elem_reset();
	add(&h, sizeof(h), 0);
	add(buf, 512, 1);
	add(&status, 1, 1);
	CHECK_EQ_U64(run(dev), 513);
	CHECK_EQ_U64(status, S_OK);
	elem_reset();
	add(&h, sizeof(h), 0);
	add(buf, 1024, 1);
	add(&status, 1, 1);
	run(dev);
	CHECK_EQ_U64(status, S_IOERR);
	/* sector numbers that overflow when scaled */
	uint64_t bad[] = {DISK_SECTORS, UINT64_MAX, UINT64_MAX / 512 + 1, 1ull << 55};
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		for (uint32_t type = 0; type < 2; type++) {
			h = (struct hdr){type, 0, bad[k]};
			elem_reset();
			add(&h, sizeof(h), 0);
			add(buf, 512, type == 0);
			add(&status, 1, 1);
			run(dev);
			CHECK_EQ_U64(status, S_IOERR);
		}
	}
	/* not a whole number of sectors */
	h = (struct hdr){0, 0, 0};
	elem_reset();
	add(&h, sizeof(h), 0);
	add(buf, 100, 1);
	add(&status, 1, 1);
	run(dev);
	CHECK_EQ_U64(status, S_IOERR);
	/* short header */
	elem_reset();
	add(&h, 12, 0);
	add(&status, 1, 1);
	CHECK_EQ_U64(run(dev), 1);
	CHECK_EQ_U64(status, S_IOERR);
	/* no header at all, just a status byte */
	elem_reset();
	add(&status, 1, 1);
	run(dev);
	CHECK_EQ_U64(status, S_IOERR);
	/* no status byte: cannot be answered */
	elem_reset();
	add(&h, sizeof(h), 0);
	CHECK_EQ_U64(run(dev), -EINVAL);
	elem_reset();
	add(&h, sizeof(h), 0);
	add(buf, 0, 1);
	CHECK_EQ_U64(run(dev), -EINVAL);
	/* unknown type */
	h.type = 77;
	elem_reset();
	add(&h, sizeof(h), 0);
	add(&status, 1, 1);
	run(dev);
	CHECK_EQ_U64(status, S_UNSUPP);
}

static void test_readonly(void)
{
	struct hdr h = {1, 0, 5};
	uint8_t buf[512], seg[16] = {0};
	memset(buf, 0x77, sizeof(buf));
	elem_reset();
	add(&h, sizeof(h), 0);
	add(buf, sizeof(buf), 0);
	add(&status, 1, 1);
	run(ro_dev);
	CHECK_EQ_U64(status, S_IOERR);
	CHECK(blk_pread(disk, 5 * 512, buf, 1) == 0 && buf[0] == 5);
	h.type = 13; /* write zeroes */
	seg[0] = 5;
	seg[8] = 1;
	elem_reset();
	add(&h, sizeof(h), 0);
	add(seg, sizeof(seg), 0);
	add(&status, 1, 1);
	run(ro_dev);
	CHECK_EQ_U64(status, S_IOERR);
	/* reads work */
	h.type = 0;
	elem_reset();
	add(&h, sizeof(h), 0);
	add(buf, sizeof(buf), 1);
	add(&status, 1, 1);
	run(ro_dev);
	CHECK_EQ_U64(status, S_OK);
	CHECK_EQ_U64(buf[0], 5);
}

static void test_get_id(void)
{
	struct hdr h = {8, 0, 0};
	uint8_t id[20];
	elem_reset();
	add(&h, sizeof(h), 0);
	add(id, sizeof(id), 1);
	add(&status, 1, 1);
	CHECK_EQ_U64(run(dev), 21);
	CHECK_EQ_U64(status, S_OK);
	CHECK(!memcmp(id, "serial-0123456789abc", 20)); /* 20 bytes, no NUL */
	elem_reset();
	add(&h, sizeof(h), 0);
	add(id, sizeof(id), 1);
	add(&status, 1, 1);
	run(ro_dev);
	CHECK(!memcmp(id, "ro\0", 3));
	/* a short buffer gets what fits */
	memset(id, 0xff, sizeof(id));
	elem_reset();
	add(&h, sizeof(h), 0);
	add(id, 4, 1);
	add(&status, 1, 1);
	CHECK_EQ_U64(run(dev), 5);
	CHECK(!memcmp(id, "seri", 4) && id[4] == 0xff);
}

static void test_zeroes(void)
{
	struct hdr h = {13, 0, 0};
	uint8_t seg[16] = {0}, buf[512];
	uint64_t sector = 20;
	uint32_t num = 2, flags = 0;
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &num, 4);
	memcpy(seg + 12, &flags, 4);
	elem_reset();
	add(&h, sizeof(h), 0);
	add(seg, sizeof(seg), 0);
	add(&status, 1, 1);
	run(dev);
	CHECK_EQ_U64(status, S_OK);
	CHECK(blk_pread(disk, 21 * 512, buf, 512) == 0 && buf[0] == 0 && buf[511] == 0);
	CHECK(blk_pread(disk, 22 * 512, buf, 1) == 0 && buf[0] == 22);
	/* discard */
	h.type = 11;
	sector = 30;
	memcpy(seg, &sector, 8);
	elem_reset();
	add(&h, sizeof(h), 0);
	add(seg, sizeof(seg), 0);
	add(&status, 1, 1);
	run(dev);
	CHECK_EQ_U64(status, S_OK);
	CHECK(blk_pread(disk, 31 * 512, buf, 512) == 0 && buf[0] == 0);
	/* discard with the unmap flag is not allowed; out of range; two segments */
	flags = 1;
	memcpy(seg + 12, &flags, 4);
	elem_reset();
	add(&h, sizeof(h), 0);
	add(seg, sizeof(seg), 0);
	add(&status, 1, 1);
	run(dev);
	CHECK_EQ_U64(status, S_UNSUPP);
	flags = 0;
	sector = DISK_SECTORS - 1;
	memcpy(seg, &sector, 8);
	memcpy(seg + 12, &flags, 4);
	elem_reset();
	add(&h, sizeof(h), 0);
	add(seg, sizeof(seg), 0);
	add(&status, 1, 1);
	run(dev);
	CHECK_EQ_U64(status, S_IOERR);
	uint8_t two[32] = {0};
	elem_reset();
	add(&h, sizeof(h), 0);
	add(two, sizeof(two), 0);
	add(&status, 1, 1);
	run(dev);
	CHECK_EQ_U64(status, S_UNSUPP);
}

int main(void)
{
	if (setup() < 0) {
		fprintf(stderr, "setup failed\n");
		printf("0 passed, 1 failed\n");
		return 1;
	}
	RUN(test_config);
	RUN(test_read_write);
	RUN(test_bad_requests);
	RUN(test_readonly);
	RUN(test_get_id);
	RUN(test_zeroes);
	machine_destroy(m);
	blk_close(disk);
	blk_close(ro_disk);
	unlink(path);
	unlink(path_rw);
	return test_report();
}
