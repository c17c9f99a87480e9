/* virtio-blk request parsing on a raw file: reads and writes land at the
 * right offsets with headers and data split anyhow across buffers; bad
 * sectors, short headers, missing status bytes, writes to read-only disks,
 * get-id, flush, discard and write-zeroes. Then whole notifications driven
 * through the transport: 64 mixed reads and writes with a flush among them,
 * on raw (whose transfers must run on several threads at once) and on
 * qcow2 (one at a time), give what running them in order gives; a
 * malformed chain in a batch still returns the chains before it. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/block.h"
#include "fuzz/fuzz_virtio.h"
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

/* ---- whole notifications ---- */

/* A spy between the device and a real backend: counts transfers in flight
 * and the threads they run on, and sees where the flush falls. On a
 * backend that allows concurrent transfers, the first transfer waits (up
 * to 5 s) for a second one to start, so that a device that runs them at
 * once shows it every time, and one that runs them one at a time fails.
 * Transfers at the offsets in slow take 20 ms, so that one overlapping
 * them and sent later would overtake them if the device let it. */
static struct {
	const struct blk_ops *real;
	struct blk_ops ops;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned inflight, max_inflight, flushes, waited;
	uint64_t slow[2];
	unsigned started[2]; /* transfers started before / after a flush */
	unsigned done_at_flush, inflight_at_flush;
	pthread_t threads[8];
	unsigned nthreads;
} spy = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static int spy_xfer(struct blk *b, uint64_t off, const struct iovec *iov, int n, int write)
{
	pthread_mutex_lock(&spy.lock);
	unsigned k;
	for (k = 0; k < spy.nthreads && !pthread_equal(spy.threads[k], pthread_self()); k++)
		;
	if (k == spy.nthreads && k < 8)
		spy.threads[spy.nthreads++] = pthread_self();
	spy.started[spy.flushes ? 1 : 0]++;
	if (++spy.inflight > spy.max_inflight)
		spy.max_inflight = spy.inflight;
	pthread_cond_broadcast(&spy.cond);
	if (spy.real->concurrent_xfer && !spy.waited++) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 5;
		while (spy.max_inflight < 2 && pthread_cond_timedwait(&spy.cond, &spy.lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&spy.lock);
	if (off == spy.slow[0] || off == spy.slow[1])
		usleep(20000);
	int rc = write ? spy.real->writev(b, off, iov, n) : spy.real->readv(b, off, iov, n);
	pthread_mutex_lock(&spy.lock);
	spy.inflight--;
	pthread_mutex_unlock(&spy.lock);
	return rc;
}

static int spy_readv(struct blk *b, uint64_t off, const struct iovec *iov, int n)
{
	return spy_xfer(b, off, iov, n, 0);
}

static int spy_writev(struct blk *b, uint64_t off, const struct iovec *iov, int n)
{
	return spy_xfer(b, off, iov, n, 1);
}

static int spy_flush(struct blk *b)
{
	pthread_mutex_lock(&spy.lock);
	spy.done_at_flush = spy.started[0];
	spy.inflight_at_flush = spy.inflight;
	spy.flushes++;
	pthread_mutex_unlock(&spy.lock);
	return spy.real->flush(b);
}

static void spy_install(struct blk *d)
{
	spy.real = d->ops;
	spy.ops = *d->ops;
	spy.ops.readv = spy_readv;
	spy.ops.writev = spy_writev;
	spy.ops.flush = spy_flush;
	spy.inflight = spy.max_inflight = spy.flushes = spy.nthreads = spy.waited = 0;
	spy.started[0] = spy.started[1] = 0;
	spy.done_at_flush = spy.inflight_at_flush = 0;
	d->ops = &spy.ops;
}

#define B_MEM (16u << 20)
#define B_DESC 0x10000
#define B_AVAIL 0x11000
#define B_USED 0x12000
#define B_HDRS 0x20000	/* 32 bytes a request: header, status at +16 */
#define B_DATA 0x100000 /* 32 KiB a request */
#define B_SLOT 64	/* sectors of the disk a request may use */
#define B_REQS 64
#define B_FLUSH 20 /* request 20 is a flush */
#define B_DISK_SECTORS (B_REQS * B_SLOT)

static uint8_t pattern(uint64_t sector, unsigned j)
{
	return (uint8_t)((sector * 7 + j) ^ 0x5a);
}

/* Every sector its pattern, on the disk d and in model. */
static void disk_fill(struct blk *d, uint8_t *model)
{
	for (uint64_t s = 0; s < B_DISK_SECTORS; s++)
		for (unsigned j = 0; j < 512; j++)
			model[s * 512 + j] = pattern(s, j);
	CHECK(blk_pwrite(d, 0, model, B_DISK_SECTORS * 512) == 0);
}

/* A disk image file of format fmt. */
static int batch_disk(char *file, enum blk_format fmt, struct blk **out)
{
	char err[256];
	strcpy(file, "/tmp/t_virtio_blk_batch.XXXXXX");
	int fd = mkstemp(file);
	if (fd < 0)
		return -1;
	close(fd);
	if (fmt == BLK_FMT_QCOW2 &&
	    qcow2_create(file, (uint64_t)B_DISK_SECTORS * 512, 16, NULL, NULL, err, sizeof(err)) < 0)
		return -1;
	if (fmt == BLK_FMT_RAW && truncate(file, (off_t)B_DISK_SECTORS * 512) < 0)
		return -1;
	if (blk_open(out, file, fmt, 0, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

/* A machine with one virtio-blk on d, queue 0 of 256 entries set up and
 * the driver ready, as Linux leaves it. */
static struct virtio_dev *batch_machine(struct machine **mp, struct blk *d)
{
	struct machine_config cfg = {.mem_size = B_MEM, .ncpus = 1, .serial_out_fd = -1};
	struct virtio_dev *v;
	if (machine_create(mp, &cfg) < 0 || virtio_blk_create(*mp, d, "batch", &v) < 0)
		return NULL;
	uint64_t bar = v->pci.bar[VIRTIO_BAR].mapped_at;
	fz_negotiate(*mp, v, bar, 0);
	fz_wr(*mp, bar, 0x16, 2, 0);
	fz_wr(*mp, bar, 0x18, 2, 256);
	fz_wr(*mp, bar, 0x20, 8, B_DESC);
	fz_wr(*mp, bar, 0x28, 8, B_AVAIL);
	fz_wr(*mp, bar, 0x30, 8, B_USED);
	fz_wr(*mp, bar, 0x1c, 2, 1);
	fz_wr(*mp, bar, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	return v;
}

static void put_desc(struct machine *mm, unsigned i, uint64_t addr, uint32_t len, uint16_t flags)
{
	uint8_t d[16];
	uint16_t next = (uint16_t)(i + 1);
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	gpa_write(mm, B_DESC + 16ull * i, d, 16);
}

/* Request i of the batch: what it does where. Most requests have a slot of
 * the disk of their own; a few touch another's on purpose (7 reads what 2
 * wrote, 9 writes where 3 read, 41 reads what 4 wrote, across the flush). */
struct breq {
	uint32_t type;
	uint64_t sector;
	uint32_t nsec;
};

static struct breq batch_req(unsigned i)
{
	if (i == B_FLUSH)
		return (struct breq){4, 0, 0};
	unsigned slot = i == 7 ? 2 : i == 9 ? 3 : i == 41 ? 4 : i;
	uint32_t type = i == 9 ? 1 : i == 7 || i == 41 ? 0 : (i + 1) % 2;
	return (struct breq){type, (uint64_t)slot * B_SLOT + slot % 3, 1 + (slot * 13) % (B_SLOT - 3)};
}

/* Writes the 64 chains (header; data in one or two buffers; status) into
 * guest memory, makes them available, notifies once, and checks every
 * used entry, status, read buffer and finally the disk against the same
 * requests run one after the other on a copy of the disk in memory. */
static void batch_run(struct blk *d, int want_parallel)
{
	struct machine *mm;
	struct virtio_dev *v = batch_machine(&mm, d);
	CHECK(v != NULL);
	if (!v)
		return;
	static uint8_t model[B_DISK_SECTORS * 512], want[B_REQS][B_SLOT * 512];
	disk_fill(d, model);
	unsigned nd = 0;
	for (unsigned i = 0; i < B_REQS; i++) {
		struct breq r = batch_req(i);
		struct hdr h = {r.type, 0, r.sector};
		uint64_t ha = B_HDRS + 32ull * i, da = B_DATA + 32768ull * i;
		uint32_t len = r.nsec * 512;
		uint8_t *buf = gpa_ptr(mm, da, len ? len : 1), st = 0xee;
		gpa_write(mm, ha, &h, sizeof(h));
		gpa_write(mm, ha + 16, &st, 1);
		uint16_t head = (uint16_t)nd;
		put_desc(mm, nd++, ha, 16, VIRTQ_DESC_F_NEXT);
		if (len) {
			uint16_t w = r.type == 0 ? VIRTQ_DESC_F_WRITE : 0;
			uint32_t cut = i % 4 == 1 && len > 512 ? len / 2 + 100 : len; /* split anywhere */
			if (r.type == 1)
				for (uint32_t j = 0; j < len; j++)
					buf[j] = (uint8_t)(i * 31 + j / 3);
			else
				memset(buf, 0xcc, len);
			put_desc(mm, nd++, da, cut, w | VIRTQ_DESC_F_NEXT);
			if (cut < len)
				put_desc(mm, nd++, da + cut, len - cut, w | VIRTQ_DESC_F_NEXT);
			if (r.type == 1)
				memcpy(model + r.sector * 512, buf, len);
			else
				memcpy(want[i], model + r.sector * 512, len);
		}
		put_desc(mm, nd++, ha + 16, 1, VIRTQ_DESC_F_WRITE);
		gpa_write(mm, B_AVAIL + 4 + 2ull * i, &head, 2);
	}
	CHECK(nd <= 256);
	spy_install(d);
	spy.slow[0] = batch_req(2).sector * 512;
	spy.slow[1] = batch_req(3).sector * 512;
	uint16_t idx = B_REQS;
	gpa_write(mm, B_AVAIL + 2, &idx, 2);
	fz_wr(mm, v->pci.bar[VIRTIO_BAR].mapped_at, VIRTIO_NOTIFY_OFF, 2, 0);
	d->ops = spy.real;

	uint16_t used = 0;
	gpa_read(mm, B_USED + 2, &used, 2);
	CHECK_EQ_U64(used, B_REQS);
	unsigned bad = 0, head = 0;
	for (unsigned i = 0; i < B_REQS; i++) {
		struct breq r = batch_req(i);
		uint32_t ent[2] = {0, 0};
		uint8_t st = 0xee;
		gpa_read(mm, B_USED + 4 + 8ull * i, ent, 8);
		gpa_read(mm, B_HDRS + 32ull * i + 16, &st, 1);
		/* in submission order, with the bytes written */
		bad += ent[0] != head || ent[1] != (r.type == 0 ? r.nsec * 512 : 0) + 1 || st != S_OK;
		if (r.type == 0)
			bad += memcmp(gpa_ptr(mm, B_DATA + 32768ull * i, r.nsec * 512), want[i], r.nsec * 512) != 0;
		head += 2 + (r.nsec > 0) + (i % 4 == 1 && r.nsec > 1);
	}
	CHECK_EQ_U64(bad, 0);
	static uint8_t disk_now[B_DISK_SECTORS * 512];
	CHECK(blk_pread(d, 0, disk_now, sizeof(disk_now)) == 0);
	CHECK(!memcmp(disk_now, model, sizeof(model)));
	/* the flush is a barrier: the 20 transfers before it were done, the
	 * 43 after it had not started */
	CHECK_EQ_U64(spy.flushes, 1);
	CHECK_EQ_U64(spy.done_at_flush, B_FLUSH);
	CHECK_EQ_U64(spy.inflight_at_flush, 0);
	CHECK_EQ_U64(spy.started[1], B_REQS - B_FLUSH - 1);
	if (want_parallel) {
		CHECK(spy.max_inflight >= 2);
		CHECK(spy.nthreads >= 2);
	} else {
		CHECK_EQ_U64(spy.max_inflight, 1);
	}
	machine_destroy(mm); /* joins the device's threads */
}

static void test_batch_raw(void)
{
	char file[64];
	struct blk *d;
	CHECK(batch_disk(file, BLK_FMT_RAW, &d) == 0);
	CHECK(d->ops->concurrent_xfer);
	batch_run(d, 1);
	/* a second device on the same disk starts its own threads */
	batch_run(d, 1);
	blk_close(d);
	unlink(file);
}

static void test_batch_qcow2(void)
{
	char file[64];
	struct blk *d;
	CHECK(batch_disk(file, BLK_FMT_QCOW2, &d) == 0);
	CHECK(!d->ops->concurrent_xfer);
	batch_run(d, 0);
	struct qcow2_check res;
	CHECK(qcow2_check(d, &res, NULL, 0) == 0 && res.errors == 0);
	blk_close(d);
	unlink(file);
}

/* A chain without a status byte among good ones: the ones before it are
 * done and returned, it and the ones after are not, and the device asks
 * for a reset. */
static void test_batch_malformed(void)
{
	char file[64];
	struct blk *d;
	struct machine *mm;
	static uint8_t model[B_DISK_SECTORS * 512];
	CHECK(batch_disk(file, BLK_FMT_RAW, &d) == 0);
	disk_fill(d, model);
	struct virtio_dev *v = batch_machine(&mm, d);
	CHECK(v != NULL);
	if (!v)
		return;
	for (unsigned i = 0; i < 4; i++) {
		struct hdr h = {0, 0, i * 8};
		uint8_t st = 0xee;
		uint16_t head = (uint16_t)(3 * i);
		gpa_write(mm, B_HDRS + 32ull * i, &h, sizeof(h));
		gpa_write(mm, B_HDRS + 32ull * i + 16, &st, 1);
		put_desc(mm, 3 * i, B_HDRS + 32ull * i, 16, VIRTQ_DESC_F_NEXT);
		/* request 2's buffers are all device-readable */
		uint16_t w = i == 2 ? 0 : VIRTQ_DESC_F_WRITE;
		put_desc(mm, 3 * i + 1, B_DATA + 32768ull * i, 4096, w | VIRTQ_DESC_F_NEXT);
		put_desc(mm, 3 * i + 2, B_HDRS + 32ull * i + 16, 1, w);
		gpa_write(mm, B_AVAIL + 4 + 2ull * i, &head, 2);
	}
	uint16_t idx = 4, used = 0;
	gpa_write(mm, B_AVAIL + 2, &idx, 2);
	uint64_t bar = v->pci.bar[VIRTIO_BAR].mapped_at;
	fz_wr(mm, bar, VIRTIO_NOTIFY_OFF, 2, 0);
	gpa_read(mm, B_USED + 2, &used, 2);
	CHECK_EQ_U64(used, 2);
	for (unsigned i = 0; i < 4; i++) {
		uint8_t st = 0;
		gpa_read(mm, B_HDRS + 32ull * i + 16, &st, 1);
		CHECK_EQ_U64(st, i < 2 ? S_OK : 0xee);
	}
	uint8_t *got = gpa_ptr(mm, B_DATA + 32768ull, 4096);
	CHECK(got[0] == pattern(8, 0) && got[4095] == pattern(15, 511));
	CHECK(bus_mmio_read(mm, bar + 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET);
	machine_destroy(mm);
	blk_close(d);
	unlink(file);
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
	RUN(test_batch_raw);
	RUN(test_batch_qcow2);
	RUN(test_batch_malformed);
	machine_destroy(m);
	blk_close(disk);
	blk_close(ro_disk);
	unlink(path);
	unlink(path_rw);
	return test_report();
}
