/* virtio-balloon driven like Linux's virtio_balloon over the PCI transport:
 * inflated and reported pages read as zeros afterwards (anonymous RAM and
 * RAM mapped from a snapshot's file) and the CPU's decoded-code hook hears
 * of them; hostile PFNs (past RAM, in the PCI hole, all ones), odd
 * lengths, device-writable PFN lists and descriptors outside RAM never
 * crash and never touch other pages; statistics are parsed and handed back
 * on the timer; the target reaches the configuration space with a change
 * interrupt; the device's state section round-trips onto a fresh machine
 * and damaged ones are refused. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devstate.h"
#include "testhelp.h"
#include "virtio/virtio.h"

#define MEM (16ull << 20)
#define QSZ 8
#define RINGS 0x10000ull /* queue q: desc at RINGS + q * 0x1000, avail +0x400, used +0x800 */
#define BUF 0x20000ull
#define PAGE 4096u

/* virtio-balloon feature bits */
#define F_STATS 1
#define F_OOM 2
#define F_REPORTING 5

static struct machine *mk(void)
{
	struct machine *m = NULL;
	struct machine_config cfg = {.mem_size = MEM, .ncpus = 1, .serial_out_fd = -1};
	return machine_create(&m, &cfg) < 0 ? NULL : m;
}

struct drv {
	struct machine *m;
	struct virtio_dev *v;
	uint64_t bar;
	uint16_t avail[4], used_seen[4];
};

static uint64_t rd(struct drv *d, unsigned off, unsigned size)
{
	return bus_mmio_read(d->m, d->bar + off, size);
}

static void wr(struct drv *d, unsigned off, unsigned size, uint64_t val)
{
	bus_mmio_write(d->m, d->bar + off, size, val);
}

static void put16(struct machine *m, uint64_t gpa, uint16_t v)
{
	gpa_write(m, gpa, &v, 2);
}

static uint16_t get16(struct machine *m, uint64_t gpa)
{
	uint16_t v = 0;
	gpa_read(m, gpa, &v, 2);
	return v;
}

static void set_desc(struct machine *m, unsigned q, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t b[16];
	memcpy(b, &addr, 8);
	memcpy(b + 8, &len, 4);
	memcpy(b + 12, &flags, 2);
	memcpy(b + 14, &next, 2);
	gpa_write(m, RINGS + q * 0x1000ull + 16ull * i, b, 16);
}

/* Offers descriptor head on queue q and notifies the device. */
static void kick(struct drv *d, unsigned q, uint16_t head)
{
	uint64_t avail = RINGS + q * 0x1000ull + 0x400;
	put16(d->m, avail + 4 + 2 * (d->avail[q] % QSZ), head);
	put16(d->m, avail + 2, ++d->avail[q]);
	wr(d, VIRTIO_NOTIFY_OFF + VIRTIO_NOTIFY_MULT * q, 2, q);
}

static uint16_t used_idx(struct drv *d, unsigned q)
{
	return get16(d->m, RINGS + q * 0x1000ull + 0x800 + 2);
}

/* Probe as Linux does: reset, features, nq queues, DRIVER_OK. */
static int probe(struct drv *d, uint32_t features, unsigned nq)
{
	unsigned slot = d->v->pci.slot;
	d->bar = (pci_host_cfg_read(d->m, 0, slot << 3, PCI_BAR0 + 16, 4) & ~0xfu) |
		 (uint64_t)pci_host_cfg_read(d->m, 0, slot << 3, PCI_BAR0 + 20, 4) << 32;
	memset(gpa_ptr(d->m, RINGS, 0x4000), 0, 0x4000);
	memset(d->avail, 0, sizeof(d->avail));
	wr(d, 0x14, 1, 0);
	wr(d, 0x14, 1, 3);
	wr(d, 0x08, 4, 0);
	wr(d, 0x0c, 4, features);
	wr(d, 0x08, 4, 1);
	wr(d, 0x0c, 4, 1); /* VERSION_1 */
	wr(d, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK);
	if (!(rd(d, 0x14, 1) & VIRTIO_STATUS_FEATURES_OK) || rd(d, 0x12, 2) != nq)
		return -1;
	for (unsigned q = 0; q < nq; q++) {
		wr(d, 0x16, 2, q);
		wr(d, 0x18, 2, QSZ);
		wr(d, 0x20, 8, RINGS + q * 0x1000ull);
		wr(d, 0x28, 8, RINGS + q * 0x1000ull + 0x400);
		wr(d, 0x30, 8, RINGS + q * 0x1000ull + 0x800);
		wr(d, 0x1c, 2, 1);
	}
	wr(d, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	return rd(d, 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET ? -1 : 0;
}

static int page_is(struct machine *m, uint64_t gpa, uint8_t val)
{
	const uint8_t *p = gpa_ptr(m, gpa, PAGE);
	for (unsigned k = 0; p && k < PAGE; k++)
		if (p[k] != val)
			return 0;
	return p != NULL;
}

static void fill(struct machine *m, uint64_t gpa, size_t len, uint8_t val)
{
	memset(gpa_ptr(m, gpa, len), val, len);
}

/* The CPU's decoded-code hook saw [want, want + 2 pages) go. */
static uint8_t *hook_want;
static int hook_saw;
static void dma_hook(void *opaque, void *host, uint64_t len)
{
	(void)opaque;
	if ((uint8_t *)host <= hook_want && (uint8_t *)host + len >= hook_want + 2 * PAGE)
		hook_saw = 1;
}

static struct drv setup(struct machine *m, const struct balloon_opts *o, uint32_t features, unsigned nq)
{
	struct drv d = {.m = m};
	CHECK(m && virtio_balloon_create(m, o, &d.v) == 0);
	if (d.v)
		CHECK(probe(&d, features, nq) == 0);
	return d;
}

static void inflate_checks(struct machine *m, struct drv *d)
{
	struct balloon_info bi;
	/* PFNs: two good pages, then past RAM, all ones, the PCI hole */
	uint32_t pfns[] = {0x800, 0x801, (uint32_t)(MEM >> 12), 0xffffffffu, 0xc0000, 0xfee00};
	fill(m, 0x800000, 3 * PAGE, 0xaa);
	gpa_write(m, BUF, pfns, sizeof(pfns));
	hook_want = gpa_ptr(m, 0x800000, PAGE);
	hook_saw = 0;
	set_desc(m, 0, 0, BUF, sizeof(pfns), 0, 0);
	kick(d, 0, 0);
	CHECK_EQ_U64(used_idx(d, 0), 1);
	CHECK(page_is(m, 0x800000, 0) && page_is(m, 0x801000, 0));
	CHECK(page_is(m, 0x802000, 0xaa)); /* the neighbour stays */
	CHECK(hook_saw);		   /* the CPU drops decoded code there */
	virtio_balloon_get(d->v, &bi);
	CHECK_EQ_U64(bi.inflated, 2);
	CHECK_EQ_U64(bi.ignored, 4);

	/* a PFN list of odd length straddling two buffers: 0x802 whole, 3 bytes left over */
	uint8_t odd[7] = {0x02, 0x08, 0, 0, 0x03, 0x08, 0};
	gpa_write(m, BUF, odd, 2);
	gpa_write(m, BUF + 0x100, odd + 2, 5);
	set_desc(m, 0, 1, BUF, 2, VIRTQ_DESC_F_NEXT, 2);
	set_desc(m, 0, 2, BUF + 0x100, 5, 0, 0);
	fill(m, 0x803000, PAGE, 0xbb);
	kick(d, 0, 1);
	CHECK_EQ_U64(used_idx(d, 0), 2);
	CHECK(page_is(m, 0x802000, 0));
	CHECK(page_is(m, 0x803000, 0xbb));
	/* a device-writable PFN list is no list */
	uint32_t w = 0x803;
	gpa_write(m, BUF, &w, 4);
	set_desc(m, 0, 3, BUF, 4, VIRTQ_DESC_F_WRITE, 0);
	kick(d, 0, 3);
	CHECK_EQ_U64(used_idx(d, 0), 3);
	CHECK(page_is(m, 0x803000, 0xbb));
	/* deflate: counted, nothing touched */
	gpa_write(m, BUF, pfns, sizeof(pfns));
	set_desc(m, 1, 0, BUF, sizeof(pfns), 0, 0);
	kick(d, 1, 0);
	CHECK_EQ_U64(used_idx(d, 1), 1);
	virtio_balloon_get(d->v, &bi);
	CHECK_EQ_U64(bi.deflated, 2);
	CHECK_EQ_U64(bi.inflated, 3);
	/* a page given back is RAM again */
	fill(m, 0x800000, PAGE, 0x11);
	CHECK(page_is(m, 0x800000, 0x11));
}

static void test_inflate(void)
{
	struct machine *m = mk();
	if (!m) {
		CHECK(m != NULL);
		return;
	}
	machine_set_dma_hook(m, dma_hook, NULL);
	struct balloon_opts o = {0};
	struct drv d = setup(m, &o, 0, 2);
	if (d.v)
		inflate_checks(m, &d);
	machine_destroy(m);
}

/* RAM mapped from a snapshot's memory file: a page given back reads as
 * zeros, not as the file. */
static void test_inflate_file_ram(void)
{
	struct machine *m = mk();
	int fd = memfd_create("mem", MFD_CLOEXEC);
	CHECK(m && fd >= 0 && ftruncate(fd, (off_t)MEM) == 0);
	if (!m || fd < 0) {
		machine_destroy(m);
		return;
	}
	uint8_t *f = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(f != MAP_FAILED);
	if (f != MAP_FAILED) {
		memset(f + 0x800000, 0x55, 0x10000);
		munmap(f, MEM);
	}
	CHECK(machine_map_ram(m, fd) == 0);
	close(fd);
	CHECK(page_is(m, 0x800000, 0x55));
	machine_set_dma_hook(m, dma_hook, NULL);
	struct balloon_opts o = {0};
	struct drv d = setup(m, &o, 0, 2);
	if (d.v)
		inflate_checks(m, &d);
	machine_destroy(m);
}

/* Malformed rings: a descriptor outside RAM puts the device in
 * NEEDS_RESET; a reset and a new probe make it work again. */
static void test_malformed(void)
{
	struct machine *m = mk();
	struct balloon_opts o = {0};
	struct drv d = setup(m, &o, 0, 2);
	if (!d.v) {
		machine_destroy(m);
		return;
	}
	set_desc(m, 0, 0, MEM - 2, 4, 0, 0); /* runs past RAM */
	kick(&d, 0, 0);
	CHECK(rd(&d, 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ_U64(used_idx(&d, 0), 0);
	CHECK(probe(&d, 0, 2) == 0);
	set_desc(m, 0, 0, 0xc0000000ull, 4096, 0, 0); /* the PCI hole */
	kick(&d, 0, 0);
	CHECK(rd(&d, 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(probe(&d, 0, 2) == 0);
	set_desc(m, 0, 0, BUF, 4, VIRTQ_DESC_F_NEXT, 0); /* a loop */
	kick(&d, 0, 0);
	CHECK(rd(&d, 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET);
	/* a driver taking a feature not offered is refused */
	wr(&d, 0x14, 1, 0);
	wr(&d, 0x14, 1, 3);
	wr(&d, 0x08, 4, 0);
	wr(&d, 0x0c, 4, 1u << F_REPORTING);
	wr(&d, 0x08, 4, 1);
	wr(&d, 0x0c, 4, 1);
	wr(&d, 0x14, 1, 3 | VIRTIO_STATUS_FEATURES_OK);
	CHECK(!(rd(&d, 0x14, 1) & VIRTIO_STATUS_FEATURES_OK));
	/* random rings and descriptors: never a crash */
	srand(7);
	for (int k = 0; k < 2000; k++) {
		if (k % 50 == 0)
			probe(&d, 0, 2);
		uint8_t junk[64];
		for (unsigned b = 0; b < sizeof(junk); b++)
			junk[b] = (uint8_t)rand();
		gpa_write(m, RINGS + (uint64_t)(rand() % 2) * 0x1000, junk, sizeof(junk));
		uint32_t pf = (uint32_t)rand() % 0x1400;
		gpa_write(m, BUF + 16 * (uint64_t)(rand() % 8), &pf, 4);
		kick(&d, (unsigned)rand() % 3, (uint16_t)(rand() % 12));
	}
	machine_destroy(m);
}

static void put_stat(uint8_t *p, uint16_t tag, uint64_t val)
{
	memcpy(p, &tag, 2);
	memcpy(p + 2, &val, 8);
}

/* Statistics: entries parsed, unknown tags and a partial entry ignored,
 * the buffer held until the interval passes. Free page reporting on the
 * queue after it. */
static void test_stats_reporting(void)
{
	struct machine *m = mk();
	struct balloon_opts o = {.stats_s = 2, .reporting = 1, .deflate_on_oom = 1};
	struct drv d = setup(m, &o, 1u << F_STATS | 1u << F_REPORTING | 1u << F_OOM, 4);
	if (!d.v) {
		machine_destroy(m);
		return;
	}
	uint8_t st[45];
	put_stat(st, 4, 123 << 12); /* free memory */
	put_stat(st + 10, 5, 456);  /* total */
	put_stat(st + 20, 99, 7);   /* unknown */
	put_stat(st + 30, 0, 1);    /* swap in */
	memset(st + 40, 0xff, 5);   /* half an entry */
	gpa_write(m, BUF, st, sizeof(st));
	set_desc(m, 2, 0, BUF, sizeof(st), 0, 0);
	kick(&d, 2, 0);
	struct balloon_info bi;
	virtio_balloon_get(d.v, &bi);
	CHECK_EQ_U64(bi.have, 1u << 4 | 1u << 5 | 1u << 0);
	CHECK_EQ_U64(bi.stat[4], 123 << 12);
	CHECK_EQ_U64(bi.stat[5], 456);
	CHECK_EQ_U64(bi.stat[0], 1);
	CHECK_EQ_U64(used_idx(&d, 2), 0); /* held */
	clock_advance_to(m, clock_ns(m) + 1000000000ull);
	mtimer_run_expired(m);
	CHECK_EQ_U64(used_idx(&d, 2), 0);
	clock_advance_to(m, clock_ns(m) + 1100000000ull);
	mtimer_run_expired(m);
	CHECK_EQ_U64(used_idx(&d, 2), 1); /* handed back: the driver refills it */
	CHECK(virtio_balloon_set_stats_interval(d.v, 0) == -EINVAL);
	CHECK(virtio_balloon_set_stats_interval(d.v, 5) == 0);

	/* reporting (queue 3 here): 2 pages and a ragged block whose inner
	 * page only is whole */
	fill(m, 0x900000, 0x5000, 0xcc);
	set_desc(m, 3, 0, 0x900000, 2 * PAGE, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(m, 3, 1, 0x902800, 0x2000, VIRTQ_DESC_F_WRITE, 0);
	kick(&d, 3, 0);
	CHECK_EQ_U64(used_idx(&d, 3), 1);
	CHECK(page_is(m, 0x900000, 0) && page_is(m, 0x901000, 0) && page_is(m, 0x903000, 0));
	CHECK(page_is(m, 0x902000, 0xcc) && page_is(m, 0x904000, 0xcc));
	virtio_balloon_get(d.v, &bi);
	CHECK_EQ_U64(bi.reported, 3);
	machine_destroy(m);
}

/* Without the statistics feature negotiated, reporting is the third queue
 * (Linux numbers only the queues that exist). */
static void test_queue_numbering(void)
{
	struct machine *m = mk();
	struct balloon_opts o = {.reporting = 1};
	struct drv d = setup(m, &o, 1u << F_REPORTING, 3);
	if (!d.v) {
		machine_destroy(m);
		return;
	}
	fill(m, 0x900000, PAGE, 0xcc);
	set_desc(m, 2, 0, 0x900000, PAGE, VIRTQ_DESC_F_WRITE, 0);
	kick(&d, 2, 0);
	CHECK(page_is(m, 0x900000, 0));
	machine_destroy(m);
}

static void test_target_config(void)
{
	struct machine *m = mk();
	struct balloon_opts o = {.target_pages = 16};
	struct drv d = setup(m, &o, 0, 2);
	if (!d.v) {
		machine_destroy(m);
		return;
	}
	CHECK_EQ_U64(rd(&d, VIRTIO_DEVCFG_OFF, 4), 16);
	uint64_t gen = rd(&d, 0x15, 1);
	virtio_balloon_set_target(d.v, 1000);
	CHECK_EQ_U64(rd(&d, VIRTIO_DEVCFG_OFF, 4), 16); /* on the machine's thread, not this one */
	machine_io_run(m);
	CHECK_EQ_U64(rd(&d, VIRTIO_DEVCFG_OFF, 4), 1000);
	CHECK(rd(&d, 0x15, 1) != gen);
	CHECK(rd(&d, VIRTIO_ISR_OFF, 1) & 2);	     /* a configuration change */
	virtio_balloon_set_target(d.v, 0xffffffffu); /* capped at RAM */
	machine_io_run(m);
	CHECK_EQ_U64(rd(&d, VIRTIO_DEVCFG_OFF, 4), MEM >> 12);
	wr(&d, VIRTIO_DEVCFG_OFF + 4, 4, 900);	 /* actual: the driver's */
	wr(&d, VIRTIO_DEVCFG_OFF, 4, 1);	 /* num_pages: not */
	wr(&d, VIRTIO_DEVCFG_OFF + 4, 2, 1);	 /* half a register */
	wr(&d, VIRTIO_DEVCFG_OFF + 0x100, 4, 1); /* past the structure */
	CHECK_EQ_U64(rd(&d, VIRTIO_DEVCFG_OFF, 4), MEM >> 12);
	CHECK_EQ_U64(rd(&d, VIRTIO_DEVCFG_OFF + 4, 4), 900);
	struct balloon_info bi;
	virtio_balloon_get(d.v, &bi);
	CHECK_EQ_U64(bi.actual_pages, 900);
	CHECK_EQ_U64(bi.target_pages, MEM >> 12);
	/* a reset keeps the target and drops actual */
	wr(&d, 0x14, 1, 0);
	CHECK_EQ_U64(rd(&d, VIRTIO_DEVCFG_OFF, 4), MEM >> 12);
	CHECK_EQ_U64(rd(&d, VIRTIO_DEVCFG_OFF + 4, 4), 0);
	machine_destroy(m);
}

static void bsave(const struct virtio_dev *v, struct state_writer *w)
{
	v->state_save(v, w);
}

static int bload(struct virtio_dev *v, struct state_reader *r)
{
	return v->state_load(v, r);
}

/* The device's section onto a fresh machine, as a restore does. */
static void test_state(void)
{
	static struct devstate ps, vs, bs, bs2, bad;
	struct machine *m = mk();
	struct balloon_opts o = {.stats_s = 1};
	struct drv d = setup(m, &o, 1u << F_STATS, 3);
	if (!d.v) {
		machine_destroy(m);
		return;
	}
	uint8_t st[10];
	put_stat(st, 6, 777);
	gpa_write(m, BUF, st, sizeof(st));
	set_desc(m, 2, 3, BUF, sizeof(st), 0, 0);
	kick(&d, 2, 3);
	virtio_balloon_set_target(d.v, 300);
	machine_io_run(m);
	wr(&d, VIRTIO_DEVCFG_OFF + 4, 4, 250);
	CHECK(!strcmp(d.v->state_name, "balloon"));
	DEVSTATE_SAVE(&ps, pci_dev_state_save, &d.v->pci);
	DEVSTATE_SAVE(&vs, virtio_state_save, d.v);
	DEVSTATE_SAVE(&bs, bsave, d.v);
	CHECK(ps.ok && vs.ok && bs.ok);

	struct machine *f = mk();
	struct drv e = {.m = f, .bar = d.bar};
	CHECK(f && virtio_balloon_create(f, &o, &e.v) == 0);
	if (!e.v) {
		machine_destroy(f);
		machine_destroy(m);
		return;
	}
	CHECK(DEVSTATE_LOAD(pci_dev_state_load, &e.v->pci, ps.b, ps.n) == 0);
	CHECK(DEVSTATE_LOAD(virtio_state_load, e.v, vs.b, vs.n) == 0);
	CHECK(DEVSTATE_LOAD(bload, e.v, bs.b, bs.n - 1) == -EINVAL);
	CHECK(DEVSTATE_LOAD(bload, e.v, bs.b, bs.n) == 0);
	struct balloon_info bi;
	virtio_balloon_get(e.v, &bi);
	CHECK_EQ_U64(bi.target_pages, 300);
	CHECK_EQ_U64(bi.actual_pages, 250);
	CHECK_EQ_U64(bi.stat[6], 777);
	CHECK_EQ_U64(rd(&e, VIRTIO_DEVCFG_OFF, 4), 300);
	DEVSTATE_SAVE(&bs2, bsave, e.v);
	CHECK(devstate_equal(&bs, &bs2));
	/* the held statistics buffer goes back on the restored machine's timer */
	clock_advance_to(f, clock_ns(f) + 1100000000ull);
	mtimer_run_expired(f);
	CHECK_EQ_U64(used_idx(&e, 2), 1);
	CHECK_EQ_U64(get16(f, RINGS + 2 * 0x1000ull + 0x800 + 4), 3); /* the head saved */

	/* hostile: a target past RAM (bytes 0-3), a held buffer with no
	 * statistics, random damage */
	bad = bs;
	uint32_t big = (uint32_t)(MEM >> 12) + 1;
	memcpy(bad.b, &big, 4);
	CHECK(DEVSTATE_LOAD(bload, e.v, bad.b, bad.n) == -EINVAL);
	struct balloon_opts none = {0};
	struct machine *g = mk();
	struct virtio_dev *gv = NULL;
	CHECK(g && virtio_balloon_create(g, &none, &gv) == 0);
	if (gv)
		CHECK(DEVSTATE_LOAD(bload, gv, bs.b, bs.n) == -EINVAL);
	machine_destroy(g);
	srand(11);
	for (int k = 0; k < 1000; k++) {
		bad = bs;
		for (size_t b = 0; b < bad.n; b++)
			bad.b[b] = (k & 1) ? (uint8_t)rand() : (uint8_t)(bs.b[b] ^ ((rand() % 11) ? 0 : rand()));
		(void)DEVSTATE_LOAD(bload, e.v, bad.b, bad.n);
		clock_advance_to(f, clock_ns(f) + 3000000000ull);
		mtimer_run_expired(f);
		machine_io_run(f);
	}
	machine_destroy(f);
	machine_destroy(m);
}

int main(void)
{
	RUN(test_inflate);
	RUN(test_inflate_file_ram);
	RUN(test_malformed);
	RUN(test_stats_reporting);
	RUN(test_queue_numbering);
	RUN(test_target_config);
	RUN(test_state);
	return test_report();
}
