/* The machine's plumbing: gpa_ptr range checks, port/MMIO dispatch, the
 * virtual clock and timers, and hostile traffic: random accesses of every
 * size to every port and the MMIO windows, and random device states,
 * must never crash or corrupt the host; a device's state restored onto a
 * fresh machine must look the same to the guest. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "devstate.h"
#include "machine/machine_impl.h"
#include "state/stream.h"
#include "testhelp.h"

static struct machine *mk(uint64_t mem, unsigned ncpus)
{
	struct machine *m = NULL;
	struct machine_config cfg = {.mem_size = mem, .ncpus = ncpus, .serial_out_fd = -1};
	if (machine_create(&m, &cfg) < 0)
		return NULL;
	return m;
}

static void test_gpa_low_only(void)
{
	struct machine *m = mk(64 << 20, 1);
	CHECK(m != NULL);
	if (!m)
		return;
	uint8_t *base = gpa_ptr(m, 0, 1);
	CHECK(base != NULL);
	CHECK(gpa_ptr(m, (64 << 20) - 4, 4) == base + (64 << 20) - 4);
	CHECK(gpa_ptr(m, (64 << 20) - 4, 5) == NULL);
	CHECK(gpa_ptr(m, 64 << 20, 1) == NULL);
	CHECK(gpa_ptr(m, 0, (64 << 20) + 1) == NULL);
	CHECK(gpa_ptr(m, UINT64_MAX, 2) == NULL);      /* wraps */
	CHECK(gpa_ptr(m, 16, UINT64_MAX - 8) == NULL); /* wraps */
	CHECK(gpa_ptr(m, MEM_HIGH_START, 1) == NULL);  /* no high RAM */
	CHECK(gpa_ptr(m, MEM_LAPIC_BASE, 4) == NULL);
	uint32_t v = 0x12345678, r = 0;
	CHECK(gpa_write(m, 0x1000, &v, 4) == 0);
	CHECK(gpa_read(m, 0x1000, &r, 4) == 0 && r == v);
	CHECK(gpa_write(m, (64 << 20) - 2, &v, 4) == -EFAULT);
	CHECK(gpa_read(m, UINT64_MAX - 1, &r, 4) == -EFAULT);
	machine_destroy(m);
}

static void test_gpa_split(void)
{
	/* 3 GiB + 64 MiB: low RAM ends at the hole, the rest is above 4 GiB */
	uint64_t size = MEM_LOW_END + (64ull << 20);
	struct machine *m = mk(size, 1);
	CHECK(m != NULL);
	if (!m)
		return;
	uint8_t *base = gpa_ptr(m, 0, 1);
	CHECK(gpa_ptr(m, MEM_LOW_END - 1, 1) == base + MEM_LOW_END - 1);
	CHECK(gpa_ptr(m, MEM_LOW_END - 1, 2) == NULL); /* runs into the hole */
	CHECK(gpa_ptr(m, MEM_LOW_END, 1) == NULL);
	CHECK(gpa_ptr(m, MEM_HOLE_END - 1, 1) == NULL);
	CHECK(gpa_ptr(m, MEM_HIGH_START, 1) == base + MEM_LOW_END);
	CHECK(gpa_ptr(m, MEM_HIGH_START + (64ull << 20) - 8, 8) == base + size - 8);
	CHECK(gpa_ptr(m, MEM_HIGH_START + (64ull << 20) - 8, 9) == NULL);
	CHECK(gpa_ptr(m, MEM_HIGH_START - 1, 2) == NULL);
	/* the guest writes through the mapping it sees */
	uint64_t v = 0xdeadbeefcafef00dull, r = 0;
	CHECK(gpa_write(m, MEM_HIGH_START + 0x100, &v, 8) == 0);
	memcpy(&r, base + MEM_LOW_END + 0x100, 8);
	CHECK_EQ_U64(r, v);
	machine_destroy(m);
}

static void test_create_bad(void)
{
	struct machine *m = NULL;
	struct machine_config cfg = {.mem_size = 64 << 20, .ncpus = 0, .serial_out_fd = -1};
	CHECK(machine_create(&m, &cfg) == -EINVAL);
	cfg.ncpus = MACHINE_MAX_CPUS + 1;
	CHECK(machine_create(&m, &cfg) == -EINVAL);
	cfg.ncpus = 1;
	cfg.mem_size = (64 << 20) + 1;
	CHECK(machine_create(&m, &cfg) == -EINVAL);
	cfg.mem_size = 4096;
	CHECK(machine_create(&m, &cfg) == -EINVAL);
}

struct probe {
	uint64_t last_off, last_val;
	unsigned last_size, reads, writes;
};

static uint64_t probe_rd(void *dev, uint64_t off, unsigned size)
{
	struct probe *p = dev;
	p->last_off = off;
	p->last_size = size;
	p->reads++;
	return 0x1122334455667788ull;
}

static void probe_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct probe *p = dev;
	p->last_off = off;
	p->last_size = size;
	p->last_val = val;
	p->writes++;
}

static void test_bus_dispatch(void)
{
	struct machine *m = mk(16 << 20, 1);
	if (!m)
		return;
	struct probe a = {0}, b = {0};
	CHECK(bus_register_pio(m, 0x500, 8, probe_rd, probe_wr, &a) == 0);
	CHECK(bus_register_pio(m, 0x502, 1, probe_rd, probe_wr, &b) == 0); /* inside a */
	CHECK(bus_register_pio(m, 0x500, 8, probe_rd, probe_wr, &a) == -EBUSY);
	CHECK(bus_register_pio(m, 0xfffe, 4, probe_rd, probe_wr, &a) == -EINVAL);
	CHECK_EQ_U64(bus_pio_read(m, 0x504, 2), 0x7788); /* truncated to the size */
	CHECK_EQ_U64(a.last_off, 4);
	CHECK_EQ_U64(a.last_size, 2);
	bus_pio_write(m, 0x502, 1, 0x1ff); /* the smaller region wins */
	CHECK_EQ_U64(b.writes, 1);
	CHECK_EQ_U64(b.last_val, 0xff);
	CHECK_EQ_U64(a.writes, 0);
	bus_pio_write(m, 0x502, 2, 0xabcd); /* does not fit b: goes to a */
	CHECK_EQ_U64(a.writes, 1);
	CHECK_EQ_U64(a.last_off, 2);
	CHECK_EQ_U64(bus_pio_read(m, 0x507, 2), 0xffff); /* straddles the end: unclaimed */
	CHECK_EQ_U64(bus_pio_read(m, 0x510, 4), 0xffffffff);
	CHECK_EQ_U64(bus_pio_read(m, 0x500, 3), ~0ull); /* bad size */

	CHECK(bus_register_mmio(m, 0xd0000000, 0x1000, probe_rd, probe_wr, &a) == 0);
	CHECK_EQ_U64(bus_mmio_read(m, 0xd0000ff8, 8), 0x1122334455667788ull);
	CHECK_EQ_U64(a.last_off, 0xff8);
	CHECK_EQ_U64(bus_mmio_read(m, 0xd0000ffc, 8), ~0ull);
	CHECK_EQ_U64(bus_mmio_read(m, 0xd8000000, 4), 0xffffffffull);
	bus_mmio_write(m, 0xd0000010, 4, 0x1234567890ull);
	CHECK_EQ_U64(a.last_val, 0x34567890);
	/* regions go away (PCI BARs move) */
	CHECK(bus_unregister_mmio(m, 0xd0000000, &b) == -ENOENT); /* not b's */
	CHECK(bus_unregister_mmio(m, 0xd0000000, &a) == 0);
	CHECK_EQ_U64(bus_mmio_read(m, 0xd0000ff8, 8), ~0ull);
	CHECK(bus_unregister_mmio(m, 0xd0000000, &a) == -ENOENT);
	CHECK(bus_register_mmio(m, 0xd0001000, 0x1000, probe_rd, probe_wr, &a) == 0);
	CHECK_EQ_U64(bus_mmio_read(m, 0xd0001ff8, 8), 0x1122334455667788ull);
	machine_destroy(m);
}

static int fired;
static void timer_cb(void *opaque)
{
	(void)opaque;
	fired++;
}

static void test_clock_timers(void)
{
	struct machine *m = mk(16 << 20, 1);
	if (!m)
		return;
	uint64_t t0 = clock_ns(m);
	uint64_t t1 = clock_ns(m);
	CHECK(t1 >= t0);
	clock_advance_to(m, t1 + 5000000000ull); /* a jump of 5 s */
	CHECK(clock_ns(m) >= t1 + 5000000000ull);
	CHECK(clock_ns(m) < t1 + 6000000000ull);
	clock_advance_to(m, 1); /* never backwards */
	CHECK(clock_ns(m) >= t1 + 5000000000ull);

	m->clock_manual = 1;
	uint64_t now = clock_ns(m);
	struct mtimer *t = mtimer_new(m, timer_cb, NULL);
	CHECK(t != NULL);
	if (!t)
		goto out;
	fired = 0;
	mtimer_arm(t, now + 1000);
	CHECK_EQ_U64(mtimer_next_deadline(m), now + 1000);
	CHECK_EQ_U64(mtimer_run_expired(m), now + 1000);
	CHECK_EQ_U64(fired, 0);
	clock_advance_to(m, now + 999);
	mtimer_run_expired(m);
	CHECK_EQ_U64(fired, 0);
	clock_advance_to(m, now + 1000);
	CHECK_EQ_U64(mtimer_run_expired(m), UINT64_MAX);
	CHECK_EQ_U64(fired, 1);
	mtimer_arm(t, now);
	mtimer_cancel(t);
	mtimer_run_expired(m);
	CHECK_EQ_U64(fired, 1);
out:
	machine_destroy(m);
}

static void test_power_requests(void)
{
	struct machine *m = mk(16 << 20, 1);
	if (!m)
		return;
	CHECK_EQ_U64(machine_take_power(m), POWER_ON);
	bus_pio_write(m, PORT_ACPI_RESET, 1, 0x06);
	CHECK_EQ_U64(machine_take_power(m), POWER_RESET);
	bus_pio_write(m, PORT_ACPI_PM1_CNT, 2, 0x3400); /* SLP_TYP 5 | SLP_EN */
	CHECK_EQ_U64(machine_take_power(m), POWER_OFF);
	bus_pio_write(m, PORT_ACPI_PM1_CNT, 2, 0x2000 | (1 << 10)); /* S1: not offered */
	CHECK_EQ_U64(machine_take_power(m), POWER_ON);
	bus_pio_write(m, PORT_I8042 + 4, 1, 0xfe);
	CHECK_EQ_U64(machine_take_power(m), POWER_RESET);
	/* the PM timer runs at 3.579545 MHz */
	m->clock_manual = 1;
	uint32_t a = (uint32_t)bus_pio_read(m, PORT_ACPI_PM_TMR, 4);
	clock_advance_to(m, clock_ns(m) + 1000000000ull);
	uint32_t b = (uint32_t)bus_pio_read(m, PORT_ACPI_PM_TMR, 4);
	CHECK((uint32_t)(b - a) >= 3579544 && (uint32_t)(b - a) <= 3579546);
	machine_destroy(m);
}

/* The GPE0 block: an event raises the SCI only once the guest enables it,
 * the status is write-1-to-clear, and a snapshot carries both registers
 * (a version 1 acpi_pm section, from before the block, reads as clear). */
static void test_gpe(void)
{
	struct machine *m = mk(16 << 20, 1);
	if (!m)
		return;
	const uint32_t sci = 1u << IRQ_ACPI_SCI;
	CHECK_EQ_U64(acpi_pm_gpe(&m->pm, ACPI_GPE_VMGENID), 0);
	CHECK_EQ_U64(bus_pio_read(m, PORT_ACPI_GPE0, 2), 1);
	CHECK_EQ_U64(m->ioapic.s.irr & sci, 0); /* not enabled: no SCI */
	bus_pio_write(m, PORT_ACPI_GPE0 + 2, 2, 1);
	CHECK_EQ_U64(bus_pio_read(m, PORT_ACPI_GPE0 + 2, 2), 1);
	CHECK(m->ioapic.s.irr & sci);
	bus_pio_write(m, PORT_ACPI_GPE0, 2, 0); /* writing 0 clears nothing */
	CHECK(m->ioapic.s.irr & sci);
	bus_pio_write(m, PORT_ACPI_GPE0, 1, 1);
	CHECK_EQ_U64(bus_pio_read(m, PORT_ACPI_GPE0, 2), 0);
	CHECK_EQ_U64(m->ioapic.s.irr & sci, 0);
	CHECK_EQ_U64(acpi_pm_gpe(&m->pm, ACPI_GPE_VMGENID), 1);
	CHECK(m->ioapic.s.irr & sci);
	CHECK_EQ_U64(acpi_pm_gpe(&m->pm, 16), 0); /* no such event */

	struct machine *m2 = mk(16 << 20, 1);
	for (uint32_t ver = 1; m2 && ver <= ACPI_PM_STATE_VERSION; ver++) {
		char path[] = "/tmp/t_dev_bus.XXXXXX";
		int fd = mkstemp(path);
		struct state_writer w;
		CHECK(fd >= 0 && state_writer_init(&w, fd, "test") == 0);
		state_section_begin(&w, "acpi_pm", 0, ver);
		if (ver == 1) { /* as corral wrote it before the GPE0 block */
			state_put_u16(&w, m->pm.s.sts);
			state_put_u16(&w, m->pm.s.en);
			state_put_u16(&w, m->pm.s.cnt);
		} else {
			acpi_pm_state_save(&m->pm, &w);
		}
		state_section_end(&w);
		CHECK(state_writer_finish(&w) == 0);
		state_writer_free(&w);
		off_t len = lseek(fd, 0, SEEK_END);
		uint8_t *buf = malloc((size_t)len);
		CHECK(buf && pread(fd, buf, (size_t)len, 0) == len);
		close(fd);
		unlink(path);
		struct state_reader r;
		struct state_section sec;
		CHECK(state_reader_init(&r, buf, (size_t)len, "test") == 0 && state_next_section(&r, &sec) == 1);
		CHECK(acpi_pm_state_load(&m2->pm, &r) == 0);
		CHECK_EQ_U64(m2->pm.s.gpe_sts, ver == 1 ? 0 : 1);
		CHECK_EQ_U64(m2->pm.s.gpe_en, ver == 1 ? 0 : 1);
		CHECK_EQ_U64(!!(m2->ioapic.s.irr & sci), ver != 1);
		free(buf);
	}
	if (m2)
		machine_destroy(m2);
	machine_destroy(m);
}

/* Every port, every size, random values; then the MMIO windows. The only
 * requirement: no crash, no sanitizer report, and RAM outside the devices'
 * reach untouched. */
static void test_hostile_io(void)
{
	struct machine *m = mk(32 << 20, 4);
	if (!m)
		return;
	m->clock_manual = 1;
	uint8_t *ram = gpa_ptr(m, 0, 32 << 20);
	memset(ram, 0x5a, 32 << 20);
	static const unsigned sizes[] = {1, 2, 4, 8, 3, 0, 16};
	for (unsigned round = 0; round < 4; round++) {
		for (uint32_t port = 0; port < 0x10000; port++) {
			unsigned sz = sizes[rnd() % 7];
			m->cur_cpu = (unsigned)(rnd() % 6); /* includes invalid CPU numbers */
			if (rnd() & 1)
				bus_pio_write(m, (uint16_t)port, sz, rnd());
			else
				(void)bus_pio_read(m, (uint16_t)port, sz);
		}
		for (unsigned k = 0; k < 200000; k++) {
			uint64_t base = (rnd() & 1) ? MEM_LAPIC_BASE : MEM_IOAPIC_BASE;
			uint64_t gpa = base + (rnd() % 0x1100) - 0x40;
			unsigned sz = sizes[rnd() % 7];
			m->cur_cpu = (unsigned)(rnd() % 6);
			if (rnd() & 1)
				bus_mmio_write(m, gpa, sz, rnd());
			else
				(void)bus_mmio_read(m, gpa, sz);
			if ((k & 255) == 0) {
				clock_advance_to(m, clock_ns(m) + rnd() % 10000000);
				mtimer_run_expired(m);
				for (unsigned c = 0; c < 4; c++) {
					for (int n = 0; n < 8 && intr_pending(m, c); n++)
						(void)intr_ack(m, c);
					(void)vcpu_take_requests(m, c, NULL);
				}
				machine_take_power(m);
			}
		}
		for (unsigned k = 0; k < 10000; k++) {
			irq_set_level(m, (unsigned)(rnd() % 40), (int)(rnd() & 1));
			uint64_t v;
			(void)lapic_msr_read(m, (unsigned)(rnd() % 6), (uint32_t)(0x7f0 + rnd() % 0x120), &v);
			(void)lapic_msr_write(m, (unsigned)(rnd() % 6), (uint32_t)(0x7f0 + rnd() % 0x120), rnd());
			(void)lapic_msr_write(m, (unsigned)(rnd() % 6), 0x1b, rnd() & 0xfee00d00ull);
		}
	}
	/* no device wrote to RAM */
	size_t bad = 0;
	for (size_t k = 0; k < (32u << 20); k++)
		bad += ram[k] != 0x5a;
	CHECK_EQ_U64(bad, 0);
	machine_destroy(m);
}

/* A snapshot's device state restored onto a fresh machine, never the one
 * that saved it: the fresh device must then look the same to the guest
 * (probe: the same reads give the same values) and save the same contents.
 * The saved state differs from power-on, so a load that does nothing fails.
 * Contents cut short are refused with the device unchanged; damaged ones
 * are refused or made consistent, and the device keeps working. */
#define PROBE_MAX 16
#define DEV_CASE(name, field, probe, ver)                                                                              \
	do {                                                                                                           \
		static struct devstate saved, fresh, back, bad;                                                        \
		uint64_t want[PROBE_MAX] = {0}, got[PROBE_MAX] = {0}, power_on[PROBE_MAX] = {0};                       \
		DEVSTATE_SAVE_V(&saved, name##_state_save, &m->field, ver);                                            \
		CHECK(saved.ok &&saved.n > 0);                                                                         \
		probe(m, want);                                                                                        \
		struct machine *f = mk(16 << 20, 2);                                                                   \
		if (!f)                                                                                                \
			break;                                                                                         \
		f->clock_manual = 1;                                                                                   \
		clock_advance_to(f, clock_ns(m)); /* as a restore: the clock first */                                  \
		probe(f, power_on);                                                                                    \
		DEVSTATE_SAVE_V(&fresh, name##_state_save, &f->field, ver);                                            \
		CHECK(!devstate_equal(&saved, &fresh));                                                                \
		CHECK(memcmp(want, power_on, sizeof(want)) != 0);                                                      \
		CHECK(DEVSTATE_LOAD_V(name##_state_load, &f->field, saved.b, saved.n - 1, ver) == -EINVAL);            \
		DEVSTATE_SAVE_V(&back, name##_state_save, &f->field, ver);                                             \
		CHECK(devstate_equal(&back, &fresh)); /* refused: unchanged */                                         \
		CHECK(DEVSTATE_LOAD_V(name##_state_load, &f->field, saved.b, saved.n, ver) == 0);                      \
		DEVSTATE_SAVE_V(&back, name##_state_save, &f->field, ver);                                             \
		CHECK(devstate_equal(&back, &saved));                                                                  \
		probe(f, got);                                                                                         \
		for (unsigned i_ = 0; i_ < PROBE_MAX; i_++)                                                            \
			CHECK_EQ_U64(got[i_], want[i_]);                                                               \
		for (int k = 0; k < 2000; k++) {                                                                       \
			bad = saved;                                                                                   \
			for (size_t b_ = 0; b_ < bad.n; b_++)                                                          \
				bad.b[b_] = (k & 1) ? (uint8_t)rnd()                                                   \
						    : (uint8_t)(saved.b[b_] ^ ((rnd() % 13) ? 0 : rnd()));             \
			(void)DEVSTATE_LOAD_V(name##_state_load, &f->field, bad.b, bad.n, ver);                        \
			hostile_poke(f);                                                                               \
		}                                                                                                      \
		CHECK(DEVSTATE_LOAD_V(name##_state_load, &f->field, saved.b, saved.n, ver) == 0);                      \
		machine_destroy(f);                                                                                    \
	} while (0)

/* What the guest sees of each device: register reads, in v[]. */
static void probe_pic(struct machine *m, uint64_t *v)
{
	v[0] = bus_pio_read(m, 0x21, 1); /* IMR */
	v[1] = bus_pio_read(m, 0xa1, 1);
	v[2] = bus_pio_read(m, 0x4d0, 1); /* ELCR */
	v[3] = bus_pio_read(m, 0x4d1, 1);
	bus_pio_write(m, 0x20, 1, 0x0b); /* OCW3: read the ISR */
	v[4] = bus_pio_read(m, 0x20, 1);
	bus_pio_write(m, 0x20, 1, 0x0a); /* back to the IRR */
}

static void probe_ioapic(struct machine *m, uint64_t *v)
{
	for (unsigned k = 0; k < 6; k++) {
		bus_mmio_write(m, MEM_IOAPIC_BASE, 4, 0x10 + k); /* pins 0-2, both halves */
		v[k] = bus_mmio_read(m, MEM_IOAPIC_BASE + 0x10, 4);
	}
	bus_mmio_write(m, MEM_IOAPIC_BASE, 4, 0);
	v[6] = bus_mmio_read(m, MEM_IOAPIC_BASE + 0x10, 4); /* ID */
}

static void probe_lapic_k(struct machine *m, unsigned cpu, uint64_t *v)
{
	static const uint16_t regs[] = {0x20, 0x80, 0xd0, 0xe0, 0xf0, 0x320, 0x350, 0x360, 0x380, 0x3e0};
	for (unsigned k = 0; k < sizeof(regs) / sizeof(regs[0]); k++)
		v[k] = lapic_mmio_read(&m->lapic[cpu], regs[k], 4);
}

static void probe_lapic0(struct machine *m, uint64_t *v)
{
	probe_lapic_k(m, 0, v);
}

static void probe_lapic1(struct machine *m, uint64_t *v)
{
	probe_lapic_k(m, 1, v);
}

static void probe_pit(struct machine *m, uint64_t *v)
{
	bus_pio_write(m, 0x43, 1, 0xe2); /* read-back: status of channel 0 */
	v[0] = bus_pio_read(m, 0x40, 1);
	bus_pio_write(m, 0x43, 1, 0x00); /* latch channel 0's count */
	v[1] = bus_pio_read(m, 0x40, 1);
	v[2] = bus_pio_read(m, 0x40, 1);
	bus_pio_write(m, 0x43, 1, 0xe8); /* read-back: status of channel 2 */
	v[3] = bus_pio_read(m, 0x42, 1);
}

static void probe_rtc(struct machine *m, uint64_t *v)
{
	static const uint8_t regs[] = {0x00, 0x02, 0x04, 0x0a, 0x0b, 0x40, 0x41};
	for (unsigned k = 0; k < sizeof(regs) / sizeof(regs[0]); k++) {
		bus_pio_write(m, 0x70, 1, regs[k]);
		v[k] = bus_pio_read(m, 0x71, 1);
	}
}

static void probe_uart(struct machine *m, uint64_t *v)
{
	v[0] = bus_pio_read(m, 0x3fb, 1); /* LCR */
	v[1] = bus_pio_read(m, 0x3f9, 1); /* IER */
	v[2] = bus_pio_read(m, 0x3fc, 1); /* MCR */
	v[3] = bus_pio_read(m, 0x3ff, 1); /* scratch */
}

static void probe_i8042(struct machine *m, uint64_t *v)
{
	bus_pio_write(m, 0x64, 1, 0x20); /* read the command byte */
	v[0] = bus_pio_read(m, 0x60, 1);
	v[1] = bus_pio_read(m, 0x64, 1) & ~1ull; /* status, output buffer read */
}

static void probe_acpi_pm(struct machine *m, uint64_t *v)
{
	v[0] = bus_pio_read(m, 0x600, 2); /* PM1 status */
	v[1] = bus_pio_read(m, 0x602, 2); /* enable */
	v[2] = bus_pio_read(m, 0x604, 2); /* control */
}

static void hostile_poke(struct machine *m)
{
	static const uint16_t ports[] = {0x20,	0x21, 0xa0,  0xa1,  0x40,  0x41,  0x42,	 0x43,	0x61,
					 0x70,	0x71, 0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe,
					 0x3ff, 0x60, 0x64,  0x600, 0x602, 0x604, 0x608, 0x4d0, 0x4d1};
	for (int k = 0; k < 8; k++) {
		uint16_t p = ports[rnd() % (sizeof(ports) / sizeof(ports[0]))];
		if (rnd() & 1)
			bus_pio_write(m, p, 1, rnd());
		else
			(void)bus_pio_read(m, p, 1);
		bus_mmio_write(m, MEM_LAPIC_BASE + (rnd() % 0x400) * 4, 4, rnd());
		(void)bus_mmio_read(m, MEM_IOAPIC_BASE + (rnd() & 0x1f), 4);
	}
	clock_advance_to(m, clock_ns(m) + rnd() % 1000000);
	mtimer_run_expired(m);
	while (intr_pending(m, 0) && rnd() % 16)
		(void)intr_ack(m, 0);
	uint8_t b = 'x';
	(void)uart_receive(&m->com1, &b, 1);
	machine_take_power(m);
}

static void test_save_load(void)
{
	struct machine *m = mk(16 << 20, 2);
	if (!m)
		return;
	m->clock_manual = 1;
	clock_advance_to(m, 123456789);
	/* state a fresh machine does not have, in every device */
	bus_pio_write(m, 0x20, 1, 0x11); /* PIC: ICW1-4, a mask, level lines */
	bus_pio_write(m, 0x21, 1, 0x30);
	bus_pio_write(m, 0x21, 1, 0x04);
	bus_pio_write(m, 0x21, 1, 0x01);
	bus_pio_write(m, 0x21, 1, 0xfa);
	bus_pio_write(m, 0x4d0, 1, 0x20);
	bus_pio_write(m, 0x4d1, 1, 0x0c);
	bus_mmio_write(m, MEM_IOAPIC_BASE, 4, 0x12); /* IOAPIC: pin 1 */
	bus_mmio_write(m, MEM_IOAPIC_BASE + 0x10, 4, 0x0000a041);
	bus_mmio_write(m, MEM_IOAPIC_BASE, 4, 0x13);
	bus_mmio_write(m, MEM_IOAPIC_BASE + 0x10, 4, 0x01000000);
	bus_pio_write(m, 0x43, 1, 0x34); /* PIT: channel 0, mode 2 */
	bus_pio_write(m, 0x40, 1, 0x9c);
	bus_pio_write(m, 0x40, 1, 0x2e);
	bus_pio_write(m, 0x43, 1, 0xb6); /* channel 2, mode 3 */
	bus_pio_write(m, 0x42, 1, 0x00);
	bus_pio_write(m, 0x42, 1, 0x10);
	bus_pio_write(m, 0x3fb, 1, 0x03); /* UART: 8N1, interrupts, scratch */
	bus_pio_write(m, 0x3f9, 1, 0x05);
	bus_pio_write(m, 0x3fc, 1, 0x0b);
	bus_pio_write(m, 0x3ff, 1, 0x77);
	lapic_mmio_write(&m->lapic[0], 0xf0, 4, 0x1ff); /* LAPICs: enabled, timer, TPR */
	lapic_mmio_write(&m->lapic[0], 0x320, 4, 0x20030);
	lapic_mmio_write(&m->lapic[0], 0x3e0, 4, 0x3);
	lapic_mmio_write(&m->lapic[0], 0x380, 4, 100000);
	lapic_mmio_write(&m->lapic[1], 0xf0, 4, 0x1ef);
	lapic_mmio_write(&m->lapic[1], 0x80, 4, 0x20);
	lapic_mmio_write(&m->lapic[1], 0xe0, 4, 0x0fffffff);
	bus_pio_write(m, 0x70, 1, 0x0b); /* RTC: 24-hour binary, update interrupt */
	bus_pio_write(m, 0x71, 1, 0x16);
	bus_pio_write(m, 0x70, 1, 0x40); /* and CMOS RAM */
	bus_pio_write(m, 0x71, 1, 0x5a);
	bus_pio_write(m, 0x70, 1, 0x41);
	bus_pio_write(m, 0x71, 1, 0xa5);
	bus_pio_write(m, 0x64, 1, 0x60); /* i8042: command byte */
	bus_pio_write(m, 0x60, 1, 0x47);
	bus_pio_write(m, 0x602, 2, 0x0121); /* ACPI PM: enables, a sleep type */
	bus_pio_write(m, 0x604, 2, 0x0c00);
	acpi_pm_power_button(&m->pm);
	DEV_CASE(pic, pic, probe_pic, 1);
	DEV_CASE(ioapic, ioapic, probe_ioapic, 1);
	DEV_CASE(lapic, lapic[0], probe_lapic0, 1);
	DEV_CASE(lapic, lapic[1], probe_lapic1, 1);
	DEV_CASE(pit, pit, probe_pit, 1);
	DEV_CASE(rtc, rtc, probe_rtc, 1);
	DEV_CASE(uart, com1, probe_uart, 1);
	DEV_CASE(i8042, kbd, probe_i8042, 1);
	DEV_CASE(acpi_pm, pm, probe_acpi_pm, ACPI_PM_STATE_VERSION);
	machine_destroy(m);
}

int main(void)
{
	RUN(test_gpe);
	RUN(test_gpa_low_only);
	RUN(test_gpa_split);
	RUN(test_create_bad);
	RUN(test_bus_dispatch);
	RUN(test_clock_timers);
	RUN(test_power_requests);
	RUN(test_hostile_io);
	RUN(test_save_load);
	return test_report();
}
