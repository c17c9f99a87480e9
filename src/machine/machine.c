/* The machine: guest RAM, the port and MMIO buses, the virtual clock and its
 * timers, power requests, interrupt routing, and device save/load helpers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "machine/machine_impl.h"

/* ---- Save/load helpers ---- */

/* ---- Guest physical memory ---- */

void *gpa_ptr(struct machine *m, uint64_t gpa, uint64_t len)
{
	uint64_t end;
	if (__builtin_add_overflow(gpa, len, &end))
		return NULL;
	if (end <= m->low_size)
		return m->ram + gpa;
	uint64_t high = m->mem_size - m->low_size;
	if (gpa >= MEM_HIGH_START && end - MEM_HIGH_START <= high)
		return m->ram + m->low_size + (gpa - MEM_HIGH_START);
	return NULL;
}

int gpa_read(struct machine *m, uint64_t gpa, void *dst, size_t len)
{
	void *p = gpa_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gpa_write(struct machine *m, uint64_t gpa, const void *src, size_t len)
{
	void *p = gpa_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	gpa_dma_written(m, p, len);
	memcpy(p, src, len);
	return 0;
}

void machine_set_dma_hook(struct machine *m, void (*fn)(void *opaque, void *host, uint64_t len), void *opaque)
{
	m->dma_written = fn;
	m->dma_opaque = opaque;
}

void gpa_dma_written(struct machine *m, void *host, uint64_t len)
{
	if (!len)
		return;
	if (m->dma_written)
		m->dma_written(m->dma_opaque, host, len);
	uint8_t *d = m->dirty;
	if (d && (uint8_t *)host >= m->ram && (uint8_t *)host - m->ram < (ptrdiff_t)m->mem_size) {
		uint64_t first = (uint64_t)((uint8_t *)host - m->ram) >> 12;
		uint64_t last = ((uint64_t)((uint8_t *)host - m->ram) + len - 1) >> 12;
		uint64_t pages = m->mem_size >> 12;
		for (uint64_t k = first; k <= last && k < pages; k++)
			__atomic_store_n(&d[k], 1, __ATOMIC_RELAXED);
	}
}

/* ---- Live migration's dirty log ---- */

int machine_dirty_start(struct machine *m)
{
	if (m->dirty)
		return 0;
	uint8_t *d = calloc(m->mem_size >> 12, 1);
	if (!d)
		return -ENOMEM;
	m->dirty = d;
	if (m->dirty_arm)
		m->dirty_arm(m->dirty_opaque, d);
	return 0;
}

uint64_t machine_dirty_collect(struct machine *m, uint64_t *bitmap)
{
	uint64_t pages = m->mem_size >> 12, n = 0;
	uint8_t *d = m->dirty;
	if (!d)
		return 0;
	/* the vCPUs stand still: re-arm first, so that no write after the
	 * resume goes through an entry filled before this collection */
	if (m->dirty_arm)
		m->dirty_arm(m->dirty_opaque, d);
	for (uint64_t k = 0; k < pages; k += 8) {
		uint64_t w;
		if (k + 8 <= pages) {
			memcpy(&w, d + k, 8);
			if (!w)
				continue;
		}
		for (uint64_t j = k; j < k + 8 && j < pages; j++)
			if (__atomic_exchange_n(&d[j], 0, __ATOMIC_RELAXED)) {
				bitmap[j >> 6] |= 1ull << (j & 63);
				n++;
			}
	}
	return n;
}

void machine_dirty_stop(struct machine *m)
{
	if (m->dirty_arm)
		m->dirty_arm(m->dirty_opaque, NULL);
	free(m->dirty);
	m->dirty = NULL;
}

void machine_set_dirty_hook(struct machine *m, void (*arm)(void *opaque, uint8_t *log), void *opaque)
{
	m->dirty_arm = arm;
	m->dirty_opaque = opaque;
	if (arm && m->dirty)
		arm(opaque, m->dirty);
}

/* ---- Buses ----
 * A handful of regions each, so a linear scan is cheap. Regions may
 * overlap (0xcf9, the reset register, sits inside PCI's 0xcf8-0xcff): an
 * access goes to the smallest region that contains all of it. */

static int bus_add(struct io_region *tab, unsigned *n, unsigned max, uint64_t base, uint64_t len, io_read_fn rd,
		   io_write_fn wr, void *dev)
{
	if (len == 0 || base + len < base)
		return -EINVAL;
	if (*n >= max)
		return -ENOSPC;
	for (unsigned k = 0; k < *n; k++)
		if (tab[k].base == base && tab[k].len == len)
			return -EBUSY;
	tab[*n] = (struct io_region){base, len, rd, wr, dev};
	(*n)++;
	return 0;
}

static struct io_region *bus_find(struct io_region *tab, unsigned n, uint64_t addr, unsigned size)
{
	struct io_region *best = NULL;
	for (unsigned k = 0; k < n; k++) {
		struct io_region *r = &tab[k];
		if (addr >= r->base && addr - r->base < r->len && size <= r->len - (addr - r->base) &&
		    (!best || r->len < best->len))
			best = r;
	}
	return best;
}

static int size_ok(unsigned size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

static uint64_t ones(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

int bus_register_pio(struct machine *m, uint16_t base, uint16_t len, io_read_fn rd, io_write_fn wr, void *dev)
{
	if ((uint32_t)base + len > 0x10000)
		return -EINVAL;
	return bus_add(m->pio, &m->npio, MACHINE_MAX_PIO, base, len, rd, wr, dev);
}

int bus_register_mmio(struct machine *m, uint64_t base, uint64_t len, io_read_fn rd, io_write_fn wr, void *dev)
{
	return bus_add(m->mmio, &m->nmmio, MACHINE_MAX_MMIO, base, len, rd, wr, dev);
}

/* PCI BARs come and go as the guest programs them: the region goes away and
 * the last one takes its slot (the table is unordered). */
int bus_unregister_mmio(struct machine *m, uint64_t base, void *dev)
{
	for (unsigned k = 0; k < m->nmmio; k++) {
		if (m->mmio[k].base == base && m->mmio[k].dev == dev) {
			m->mmio[k] = m->mmio[--m->nmmio];
			return 0;
		}
	}
	return -ENOENT;
}

uint64_t bus_pio_read(struct machine *m, uint16_t port, unsigned size)
{
	if (!size_ok(size) || size == 8)
		return ~0ull;
	struct io_region *r = bus_find(m->pio, m->npio, port, size);
	if (!r || !r->rd)
		return ones(size);
	return r->rd(r->dev, port - r->base, size) & ones(size);
}

void bus_pio_write(struct machine *m, uint16_t port, unsigned size, uint64_t val)
{
	if (!size_ok(size) || size == 8)
		return;
	struct io_region *r = bus_find(m->pio, m->npio, port, size);
	if (r && r->wr)
		r->wr(r->dev, port - r->base, size, val & ones(size));
}

uint64_t bus_mmio_read(struct machine *m, uint64_t gpa, unsigned size)
{
	if (!size_ok(size))
		return ~0ull;
	struct io_region *r = bus_find(m->mmio, m->nmmio, gpa, size);
	if (!r || !r->rd)
		return ones(size);
	return r->rd(r->dev, gpa - r->base, size) & ones(size);
}

void bus_mmio_write(struct machine *m, uint64_t gpa, unsigned size, uint64_t val)
{
	if (!size_ok(size))
		return;
	struct io_region *r = bus_find(m->mmio, m->nmmio, gpa, size);
	if (r && r->wr)
		r->wr(r->dev, gpa - r->base, size, val & ones(size));
}

/* ---- Virtual clock and timers ---- */

static uint64_t host_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t clock_ns(struct machine *m)
{
	if (m->clock_manual)
		return m->clock_last;
	uint64_t t;
	if (m->clock_delta)
		t = m->vclock + m->clock_delta(m->clock_delta_opaque);
	else
		t = host_ns() - m->clock_start + m->clock_skip;
	if (t < m->clock_last)
		t = m->clock_last;
	m->clock_last = t;
	return t;
}

void clock_advance_to(struct machine *m, uint64_t t)
{
	if (m->clock_manual) {
		if (t > m->clock_last && t != UINT64_MAX)
			m->clock_last = t;
		return;
	}
	uint64_t now = clock_ns(m);
	if (t > now && t != UINT64_MAX) {
		if (m->clock_delta)
			m->vclock += t - now;
		else
			m->clock_skip += t - now;
		m->clock_last = t;
	}
}

void clock_pause_skip(struct machine *m, uint64_t ns)
{
	/* clock_ns never goes back: with the start moved by less than the
	 * pause, it continues from where it stood */
	if (!m->clock_manual && !m->clock_delta)
		m->clock_start += ns;
}

struct mtimer *mtimer_new(struct machine *m, mtimer_fn fn, void *opaque)
{
	for (unsigned k = 0; k < MACHINE_MAX_TIMERS; k++) {
		struct mtimer *t = &m->timers[k];
		if (!t->used) {
			*t = (struct mtimer){.m = m, .fn = fn, .opaque = opaque, .used = 1};
			return t;
		}
	}
	return NULL;
}

void mtimer_arm(struct mtimer *t, uint64_t deadline_ns)
{
	t->deadline = deadline_ns;
	t->armed = 1;
	if (t->m->timer_armed)
		t->m->timer_armed(t->m->kick_opaque, deadline_ns);
}

void mtimer_cancel(struct mtimer *t)
{
	t->armed = 0;
}

uint64_t mtimer_next_deadline(struct machine *m)
{
	uint64_t next = UINT64_MAX;
	for (unsigned k = 0; k < MACHINE_MAX_TIMERS; k++)
		if (m->timers[k].armed && m->timers[k].deadline < next)
			next = m->timers[k].deadline;
	return next;
}

/* Each expired timer fires at most once per call, so a timer that re-arms
 * itself in the past cannot keep the caller here forever. */
uint64_t mtimer_run_expired(struct machine *m)
{
	uint64_t now = clock_ns(m);
	for (unsigned k = 0; k < MACHINE_MAX_TIMERS; k++) {
		struct mtimer *t = &m->timers[k];
		if (t->armed && t->deadline <= now) {
			t->armed = 0;
			t->fn(t->opaque);
		}
	}
	return mtimer_next_deadline(m);
}

/* ---- Power ---- */

void machine_request_power(struct machine *m, enum machine_power p)
{
	/* Power off wins over reset when both arrive in one slice. */
	if (m->power_req != POWER_OFF)
		m->power_req = p;
	if (m->kick)
		m->kick(m->kick_opaque);
}

enum machine_power machine_take_power(struct machine *m)
{
	enum machine_power p = (enum machine_power)m->power_req;
	m->power_req = POWER_ON;
	return p;
}

/* ---- Interrupt routing ---- */

void irq_set_level(struct machine *m, unsigned gsi, int level)
{
	if (gsi >= IOAPIC_PINS)
		return;
	if (gsi < 16) {
		/* ISA IRQ 2 does not exist: it is the PIC cascade and IOAPIC pin 2 is IRQ 0 */
		if (gsi == 2)
			return;
		pic_set_irq(&m->pic, gsi, level);
		ioapic_set_irq(&m->ioapic, gsi == 0 ? 2 : gsi, level);
	} else {
		ioapic_set_irq(&m->ioapic, gsi, level);
	}
}

void irq_pulse(struct machine *m, unsigned gsi)
{
	irq_set_level(m, gsi, 1);
	irq_set_level(m, gsi, 0);
}

/* The PIC's INTR reaches vCPU 0 through LINT0 (virtual wire mode). */
static int pic_routed(struct machine *m, unsigned cpu)
{
	return cpu == 0 && pic_output(&m->pic) && lapic_ext_int_ok(&m->lapic[0]);
}

int intr_pending(struct machine *m, unsigned cpu)
{
	if (cpu >= m->ncpus)
		return 0;
	return lapic_pending(&m->lapic[cpu]) >= 0 || pic_routed(m, cpu);
}

int intr_ack(struct machine *m, unsigned cpu)
{
	if (cpu >= m->ncpus)
		return -1;
	int v = lapic_ack(&m->lapic[cpu]);
	if (v >= 0)
		return v;
	if (pic_routed(m, cpu))
		return pic_intack(&m->pic);
	return -1;
}

unsigned vcpu_take_requests(struct machine *m, unsigned cpu, uint8_t *sipi_vector)
{
	if (cpu >= m->ncpus)
		return 0;
	struct lapic_state *s = &m->lapic[cpu].s;
	unsigned r = 0;
	if (s->nmi_pending)
		r |= VCPU_REQ_NMI;
	if (s->init_pending)
		r |= VCPU_REQ_INIT;
	if (s->sipi_pending) {
		r |= VCPU_REQ_SIPI;
		if (sipi_vector)
			*sipi_vector = s->sipi_vector;
	}
	s->nmi_pending = s->init_pending = s->sipi_pending = 0;
	return r;
}

/* ---- Create/destroy ---- */

static uint64_t lapic_mmio_rd(void *dev, uint64_t off, unsigned size)
{
	struct machine *m = dev;
	unsigned cpu = m->cur_cpu < m->ncpus ? m->cur_cpu : 0;
	return lapic_mmio_read(&m->lapic[cpu], off, size);
}

static void lapic_mmio_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct machine *m = dev;
	unsigned cpu = m->cur_cpu < m->ncpus ? m->cur_cpu : 0;
	lapic_mmio_write(&m->lapic[cpu], off, size, val);
}

int machine_ram_discard(struct machine *m, void *host, uint64_t len)
{
	uint8_t *p = host;
	if (!len || p < m->ram || len > m->mem_size || (uint64_t)(p - m->ram) > m->mem_size - len ||
	    ((uintptr_t)p & 0xfff) || (len & 0xfff))
		return -EINVAL;
	gpa_dma_written(m, p, len); /* decoded code goes, the dirty log sees it */
	if (m->ram_from_file) {
		/* a private file mapping shows the file again after
		 * MADV_DONTNEED: map anonymous zero pages over it instead, as
		 * long as the number of mappings stays well inside the host's
		 * vm.max_map_count (MAP_FIXED fails before it unmaps then) */
		if (m->discard_maps < MACHINE_DISCARD_MAPS &&
		    mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1,
			 0) != MAP_FAILED) {
			m->discard_maps++;
			return 0;
		}
		memset(p, 0, len);
		return 0;
	}
	if (madvise(p, len, MADV_DONTNEED) < 0)
		memset(p, 0, len);
	return 0;
}

void machine_reset_devices(struct machine *m)
{
	pic_reset(&m->pic);
	ioapic_reset(&m->ioapic);
	for (unsigned k = 0; k < m->ncpus; k++)
		lapic_reset(&m->lapic[k], k == 0);
	pit_reset(&m->pit);
	pci_reset(m);
	m->pm.s = (struct acpi_pm_state){.cnt = 1};
	m->power_req = POWER_ON;
}

void machine_reset(struct machine *m)
{
	/* private anonymous memory: dropped pages read back as zeros; RAM
	 * mapped from a snapshot's file would read back the file, so it
	 * becomes anonymous memory again */
	if (m->ram_from_file) {
		if (mmap(m->ram, m->mem_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
			memset(m->ram, 0, m->mem_size);
		else
			m->ram_from_file = 0;
		m->discard_maps = 0;
	} else if (madvise(m->ram, m->mem_size, MADV_DONTNEED) < 0) {
		memset(m->ram, 0, m->mem_size);
	}
	if (m->dirty) /* RAM changed behind every vCPU's back */
		memset(m->dirty, 1, m->mem_size >> 12);
	uart_reset(&m->com1);
	i8042_reset(&m->kbd);
	rtc_reset(&m->rtc);
	machine_reset_devices(m);
}

int machine_map_ram(struct machine *m, int fd)
{
	/* MAP_PRIVATE: the guest's writes stay in this process, the file is
	 * never changed and is read page by page as the guest touches it */
	if (mmap(m->ram, m->mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, 0) ==
	    MAP_FAILED) {
		int err = -errno;
		/* MAP_FIXED may have dropped the old mapping: map anonymous memory
		 * again (the caller destroys the machine after a failure anyway) */
		mmap(m->ram, m->mem_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
		return err;
	}
	m->ram_from_file = 1;
	m->discard_maps = 0;
	return 0;
}

int machine_create(struct machine **mp, const struct machine_config *cfg)
{
	int err;
	if (cfg->ncpus < 1 || cfg->ncpus > MACHINE_MAX_CPUS)
		return -EINVAL;
	if (cfg->mem_size < (1u << 20) || (cfg->mem_size & 0xfff) || cfg->mem_size > (1ull << 40))
		return -EINVAL;
	struct machine *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->mem_size = cfg->mem_size;
	m->low_size = cfg->mem_size < MEM_LOW_END ? cfg->mem_size : MEM_LOW_END;
	m->ncpus = cfg->ncpus;
	/* Guest RAM on a 2 MiB boundary, and the host asked for transparent huge
	 * pages there (as QEMU does): fewer host TLB misses for the emulator's
	 * and KVM's accesses, and physically contiguous host memory under the
	 * guest's buffers, so an O_DIRECT transfer into them is a few large
	 * segments rather than hundreds of pages. */
	const size_t huge = 2u << 20;
	uint8_t *res = mmap(NULL, m->mem_size + huge, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED) {
		err = -ENOMEM;
		goto err_free;
	}
	m->ram = (uint8_t *)(((uintptr_t)res + huge - 1) & ~(uintptr_t)(huge - 1));
	if (m->ram > res)
		munmap(res, (size_t)(m->ram - res));
	if (m->ram + m->mem_size < res + m->mem_size + huge)
		munmap(m->ram + m->mem_size, (size_t)(res + m->mem_size + huge - (m->ram + m->mem_size)));
	madvise(m->ram, m->mem_size, MADV_HUGEPAGE);
	m->clock_start = host_ns();
	m->clock_manual = cfg->clock_frozen;
	m->io_fd = -1;

	if ((err = pic_register(&m->pic, m)) < 0 || (err = ioapic_register(&m->ioapic, m)) < 0)
		goto err_unmap;
	for (unsigned k = 0; k < m->ncpus; k++)
		if ((err = lapic_init(&m->lapic[k], m, k)) < 0)
			goto err_unmap;
	/* One page for every vCPU's LAPIC: an access goes to the current vCPU's.
	 * Relocating it through IA32_APIC_BASE is not modelled (Linux never does). */
	if ((err = bus_register_mmio(m, MEM_LAPIC_BASE, 0x1000, lapic_mmio_rd, lapic_mmio_wr, m)) < 0)
		goto err_unmap;
	if ((err = pit_register(&m->pit, m)) < 0 ||
	    (err = rtc_register(&m->rtc, m, cfg->rtc_host_sec ? cfg->rtc_host_sec : (int64_t)time(NULL))) < 0 ||
	    (err = uart_register(&m->com1, m, PORT_COM1, cfg->serial_out_fd)) < 0 ||
	    (err = i8042_register(&m->kbd, m)) < 0 || (err = acpi_pm_register(&m->pm, m)) < 0 ||
	    (err = pci_host_register(m)) < 0)
		goto err_unmap;
	machine_reset_devices(m);
	*mp = m;
	return 0;

err_unmap:
	munmap(m->ram, m->mem_size);
err_free:
	free(m);
	return err;
}

void machine_destroy(struct machine *m)
{
	if (!m)
		return;
	uart_flush(&m->com1);
	if (m->io_fd >= 0)
		close(m->io_fd);
	pci_destroy_all(m);
	munmap(m->ram, m->mem_size);
	free(m->dirty);
	free(m);
}

int machine_io_register(struct machine *m, mio_fn fn, void *opaque)
{
	if (m->nio == MACHINE_MAX_IO)
		return -ENOSPC;
	if (m->io_fd < 0) {
		m->io_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (m->io_fd < 0)
			return -errno;
	}
	m->io[m->nio].fn = fn;
	m->io[m->nio].opaque = opaque;
	return (int)m->nio++;
}

void machine_io_request(struct machine *m, int id)
{
	if (id < 0 || (unsigned)id >= MACHINE_MAX_IO)
		return;
	unsigned old = __atomic_fetch_or(&m->io_pending, 1u << id, __ATOMIC_SEQ_CST);
	if (old & (1u << id))
		return; /* already on its way */
	uint64_t one = 1;
	/* An idle engine waits on io_fd; a running one looks at io_pending
	 * between turns (no kick: the engine's kick target may be gone by the
	 * time a host thread would call it). */
	if (write(m->io_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the engine wakes anyway */
	}
}

int machine_io_run(struct machine *m)
{
	/* the eventfd first, then the bits: a request whose bit an earlier
	 * run took before its write left the eventfd readable with nothing
	 * to do, and a caller that waits on it must find it drained */
	uint64_t v;
	if (m->io_fd >= 0 && read(m->io_fd, &v, sizeof(v)) < 0) {
		/* already drained: fine */
	}
	unsigned bits = __atomic_exchange_n(&m->io_pending, 0, __ATOMIC_SEQ_CST);
	if (!bits)
		return 0;
	int n = 0;
	for (unsigned id = 0; id < m->nio; id++)
		if (bits & (1u << id)) {
			m->io[id].fn(m->io[id].opaque);
			n++;
		}
	return n;
}

int machine_io_fd(const struct machine *m)
{
	return m->io_fd;
}
