/* PCI: the host bridge of bus 0 (ports 0xcf8/0xcfc and ECAM), and the
 * generic function model: configuration space with write masks, BARs on
 * the MMIO bus, MSI-X and INTx. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "machine/machine_impl.h"
#include "state/stream.h"

#define PCI_CAP_START 0x40

/* The host bridge: Red Hat's "QEMU PCIe host bridge" ID, which carries no
 * quirks in guest kernels. */
#define BRIDGE_VENDOR 0x1b36
#define BRIDGE_DEVICE 0x0008

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

/* ---- BARs on the MMIO bus ---- */

static uint64_t bar_addr(const struct pci_dev *d, unsigned i)
{
	uint64_t a = get32(d->s.cfg + PCI_BAR0 + 4 * i) & ~0xfull;
	if (d->bar[i].is64)
		a |= (uint64_t)get32(d->s.cfg + PCI_BAR0 + 4 * (i + 1)) << 32;
	return a;
}

/* MSI-X table and PBA accesses, relative to the BAR (PCI 3.0 §6.8.2). */
static int msix_covers(const struct pci_dev *d, unsigned i, uint64_t off, unsigned size)
{
	if (!d->msix_nvec || d->msix_bar != i)
		return 0;
	if (off >= d->msix_table_off && off + size <= d->msix_table_off + 16ull * d->msix_nvec)
		return 1;
	return off >= d->msix_pba_off && off + size <= d->msix_pba_off + 8ull * ((d->msix_nvec + 63) / 64);
}

static void msix_send(struct pci_dev *d, unsigned vec)
{
	uint64_t addr = d->s.msix[vec][0] | (uint64_t)d->s.msix[vec][1] << 32;
	uint32_t data = d->s.msix[vec][2];
	/* Intel SDM 11.11: messages go to 0xfeeXXXXX; bits 19:12 destination,
	 * bit 2 destination mode. Anything else is dropped (it would be a
	 * DMA write elsewhere). */
	if ((addr >> 20) != (MEM_LAPIC_BASE >> 20))
		return;
	unsigned mode = (data >> 8) & 7;
	if (mode != APIC_DM_FIXED && mode != APIC_DM_LOWEST && mode != APIC_DM_NMI)
		return;
	apic_deliver(d->m, (uint32_t)(addr >> 12) & 0xff, (addr >> 2) & 1, mode, (uint8_t)data, 0, 0);
}

static int msix_masked(const struct pci_dev *d, unsigned vec)
{
	uint16_t ctl = get16(d->s.cfg + d->msix_cap + 2);
	return (ctl & PCI_MSIX_MASKALL) || (d->s.msix[vec][3] & 1);
}

/* Deliver what became unmasked. */
static void msix_flush_pending(struct pci_dev *d)
{
	if (!pci_msix_enabled(d))
		return;
	for (unsigned v = 0; v < d->msix_nvec; v++)
		if ((d->s.msix_pba >> v & 1) && !msix_masked(d, v)) {
			d->s.msix_pba &= ~(1ull << v);
			msix_send(d, v);
		}
}

static uint64_t msix_read(struct pci_dev *d, uint64_t off, unsigned size)
{
	if (off >= d->msix_pba_off && off < d->msix_pba_off + 8) {
		uint64_t v = d->s.msix_pba >> ((off - d->msix_pba_off) * 8);
		return size == 8 ? v : v & ((1ull << (size * 8)) - 1);
	}
	off -= d->msix_table_off;
	unsigned vec = (unsigned)(off / 16), w = (unsigned)(off % 16);
	if (w + size > 16)
		return ~0ull;
	uint8_t entry[16];
	for (unsigned k = 0; k < 4; k++)
		put32(entry + 4 * k, d->s.msix[vec][k]);
	uint64_t v = 0;
	memcpy(&v, entry + w, size);
	return v;
}

static void msix_write(struct pci_dev *d, uint64_t off, unsigned size, uint64_t val)
{
	if (off >= d->msix_pba_off && off < d->msix_pba_off + 8)
		return; /* the PBA is read-only */
	off -= d->msix_table_off;
	unsigned vec = (unsigned)(off / 16), w = (unsigned)(off % 16);
	if (w + size > 16)
		return;
	uint8_t entry[16];
	for (unsigned k = 0; k < 4; k++)
		put32(entry + 4 * k, d->s.msix[vec][k]);
	memcpy(entry + w, &val, size);
	for (unsigned k = 0; k < 4; k++)
		d->s.msix[vec][k] = get32(entry + 4 * k);
	d->s.msix[vec][3] &= 1; /* vector control: only the mask bit */
	msix_flush_pending(d);
}

static uint64_t bar_rd(void *opaque, uint64_t off, unsigned size)
{
	struct pci_bar *b = opaque;
	struct pci_dev *d = b->dev;
	if (msix_covers(d, b->idx, off, size))
		return msix_read(d, off, size);
	return b->rd ? b->rd(b->opaque, off, size) : ~0ull;
}

static void bar_wr(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct pci_bar *b = opaque;
	struct pci_dev *d = b->dev;
	if (msix_covers(d, b->idx, off, size)) {
		msix_write(d, off, size, val);
		return;
	}
	if (b->wr)
		b->wr(b->opaque, off, size, val);
}

/* After a command or BAR write: each memory BAR is on the bus exactly when
 * decoding is on and its address is sane (not 0, below 2^52, no wrap). */
static void pci_update_mappings(struct pci_dev *d)
{
	int decode = !!(get16(d->s.cfg + PCI_COMMAND) & PCI_CMD_MEMORY);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		if (!b->size)
			continue;
		uint64_t a = bar_addr(d, i);
		int want = decode && a != 0 && a < (1ull << 52) && a + b->size > a;
		if (b->mapped && (!want || b->mapped_at != a)) {
			bus_unregister_mmio(d->m, b->mapped_at, b);
			b->mapped = 0;
		}
		if (want && !b->mapped) {
			/* A clash with another region (same base and size) or a
			 * full table leaves the BAR unmapped: what the guest
			 * asked for is broken, the host is not. */
			if (bus_register_mmio(d->m, a, b->size, bar_rd, bar_wr, b) == 0) {
				b->mapped = 1;
				b->mapped_at = a;
			}
		}
	}
}

/* ---- INTx ---- */

/* Functions share GSIs (the _PRT swizzle): a line is asserted while any
 * function on it asserts and has INTx enabled. */
static void intx_update(struct machine *m, unsigned gsi)
{
	int level = 0;
	for (unsigned s = 0; s < PCI_SLOTS; s++) {
		struct pci_dev *d = m->pci.dev[s];
		if (d && d->gsi == gsi && d->s.intx && !(get16(d->s.cfg + PCI_COMMAND) & PCI_CMD_INTX_DISABLE))
			level = 1;
	}
	irq_set_level(m, gsi, level);
}

void pci_intx_set(struct pci_dev *d, int level)
{
	d->s.intx = !!level;
	uint16_t st = get16(d->s.cfg + PCI_STATUS);
	put16(d->s.cfg + PCI_STATUS, level ? st | PCI_STATUS_INTX : st & ~PCI_STATUS_INTX);
	if (d->m && d->gsi)
		intx_update(d->m, d->gsi);
}

int pci_msix_enabled(const struct pci_dev *d)
{
	return d->msix_nvec && (get16(d->s.cfg + d->msix_cap + 2) & PCI_MSIX_ENABLE);
}

void pci_msix_notify(struct pci_dev *d, unsigned vec)
{
	if (!pci_msix_enabled(d) || vec >= d->msix_nvec)
		return;
	if (msix_masked(d, vec)) {
		d->s.msix_pba |= 1ull << vec;
		return;
	}
	msix_send(d, vec);
}

/* ---- Configuration space ---- */

uint32_t pci_cfg_read(struct pci_dev *d, unsigned off, unsigned size)
{
	if (off >= PCI_CFG_SIZE)
		return 0; /* PCIe extended space: no extended capabilities */
	if (off + size > PCI_CFG_SIZE)
		return ~0u;
	if (d->cfg_access)
		d->cfg_access(d, off, size, 0);
	uint32_t v = 0;
	for (unsigned k = 0; k < size; k++)
		v |= (uint32_t)d->s.cfg[off + k] << (8 * k);
	return v;
}

void pci_cfg_write(struct pci_dev *d, unsigned off, unsigned size, uint32_t val)
{
	if (off >= PCI_CFG_SIZE || off + size > PCI_CFG_SIZE)
		return;
	uint16_t old_cmd = get16(d->s.cfg + PCI_COMMAND);
	uint16_t old_msix = d->msix_nvec ? get16(d->s.cfg + d->msix_cap + 2) : 0;
	for (unsigned k = 0; k < size; k++) {
		uint8_t m = d->wmask[off + k], b = (uint8_t)(val >> (8 * k));
		d->s.cfg[off + k] = (uint8_t)((d->s.cfg[off + k] & ~m) | (b & m));
	}
	uint16_t cmd = get16(d->s.cfg + PCI_COMMAND);
	if (cmd != old_cmd || (off < PCI_BAR0 + 24 && off + size > PCI_BAR0))
		pci_update_mappings(d);
	if ((cmd ^ old_cmd) & PCI_CMD_INTX_DISABLE && d->gsi)
		intx_update(d->m, d->gsi);
	if (d->msix_nvec && get16(d->s.cfg + d->msix_cap + 2) != old_msix)
		msix_flush_pending(d);
	if (d->cfg_access)
		d->cfg_access(d, off, size, 1);
}

void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor, uint16_t device, uint32_t class,
		  uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id)
{
	memset(d, 0, sizeof(*d));
	d->name = name;
	uint8_t *c = d->s.cfg;
	put16(c + PCI_VENDOR_ID, vendor);
	put16(c + PCI_DEVICE_ID, device);
	c[PCI_REVISION] = revision;
	c[PCI_CLASS_PROG] = (uint8_t) class;
	c[PCI_CLASS_PROG + 1] = (uint8_t)(class >> 8);
	c[PCI_CLASS_PROG + 2] = (uint8_t)(class >> 16);
	put16(c + PCI_SUBSYS_VENDOR, subsys_vendor);
	put16(c + PCI_SUBSYS_ID, subsys_id);
	put16(d->wmask + PCI_COMMAND, PCI_CMD_MEMORY | PCI_CMD_MASTER | PCI_CMD_INTX_DISABLE);
	d->wmask[0x0c] = 0xff; /* cache line size: kept, unused */
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	d->cap_end = PCI_CAP_START;
}

int pci_bar_add(struct pci_dev *d, unsigned idx, uint64_t size, int is64, io_read_fn rd, io_write_fn wr, void *opaque)
{
	if (idx >= PCI_NUM_BARS || (is64 && idx + 1 >= PCI_NUM_BARS) || size < 16 || (size & (size - 1)) ||
	    (!is64 && size > (1ull << 31)) || d->bar[idx].size)
		return -EINVAL;
	d->bar[idx] = (struct pci_bar){
		.size = size, .is64 = is64, .rd = rd, .wr = wr, .opaque = opaque, .dev = d, .idx = idx};
	/* Sizing (PCI 3.0 §6.2.5.1): the address bits below the size are
	 * hard-wired to zero, so writing all ones reads back the size mask. */
	uint64_t mask = ~(size - 1);
	put32(d->wmask + PCI_BAR0 + 4 * idx, (uint32_t)mask & ~0xfu);
	if (is64) {
		d->s.cfg[PCI_BAR0 + 4 * idx] = PCI_BAR_MEM64;
		put32(d->wmask + PCI_BAR0 + 4 * (idx + 1), (uint32_t)(mask >> 32));
	}
	return 0;
}

int pci_cap_add(struct pci_dev *d, const uint8_t *data, unsigned len)
{
	unsigned at = (d->cap_end + 3) & ~3u;
	if (len < 2 || at + len > PCI_CFG_SIZE)
		return -ENOSPC;
	memcpy(d->s.cfg + at, data, len);
	d->s.cfg[at + 1] = 0;
	if (d->last_cap)
		d->s.cfg[d->last_cap + 1] = (uint8_t)at;
	else
		d->s.cfg[PCI_CAP_PTR] = (uint8_t)at;
	put16(d->s.cfg + PCI_STATUS, get16(d->s.cfg + PCI_STATUS) | PCI_STATUS_CAP_LIST);
	d->last_cap = (uint8_t)at;
	d->cap_end = at + len;
	return (int)at;
}

int pci_msix_add(struct pci_dev *d, unsigned bar, unsigned nvec, uint32_t table_off, uint32_t pba_off)
{
	if (bar >= PCI_NUM_BARS || !d->bar[bar].size || nvec < 1 || nvec > PCI_MSIX_MAX || (table_off & 7) ||
	    (pba_off & 7) || table_off + 16ull * nvec > d->bar[bar].size || pba_off + 8ull > d->bar[bar].size ||
	    (pba_off < table_off + 16ull * nvec && table_off < pba_off + 8ull))
		return -EINVAL;
	uint8_t cap[12] = {PCI_CAP_ID_MSIX, 0};
	put16(cap + 2, (uint16_t)(nvec - 1));
	put32(cap + 4, table_off | bar);
	put32(cap + 8, pba_off | bar);
	int at = pci_cap_add(d, cap, sizeof(cap));
	if (at < 0)
		return at;
	d->wmask[at + 3] = (PCI_MSIX_ENABLE | PCI_MSIX_MASKALL) >> 8;
	d->msix_cap = (unsigned)at;
	d->msix_bar = bar;
	d->msix_nvec = nvec;
	d->msix_table_off = table_off;
	d->msix_pba_off = pba_off;
	return 0;
}

static void pci_dev_reset_state(struct pci_dev *d)
{
	/* Unmap with the old addresses before the registers change. */
	put16(d->s.cfg + PCI_COMMAND, 0);
	pci_update_mappings(d);
	memcpy(d->s.cfg, d->cfg_init, sizeof(d->s.cfg));
	memset(d->s.msix, 0, sizeof(d->s.msix));
	for (unsigned v = 0; v < PCI_MSIX_MAX; v++)
		d->s.msix[v][3] = 1; /* masked */
	d->s.msix_pba = 0;
	d->s.intx = 0;
	pci_update_mappings(d);
	if (d->gsi)
		intx_update(d->m, d->gsi);
}

/* Firmware's part: addresses for the BARs, largest alignment first is not
 * needed for a handful of small BARs; each is aligned to its size. */
static int pci_assign(struct machine *m, struct pci_dev *d)
{
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		if (!b->size)
			continue;
		uint64_t a = (m->pci.mmio_next + b->size - 1) & ~(b->size - 1);
		if (a + b->size - 1 > MEM_PCI_MMIO_END)
			return -ENOSPC;
		m->pci.mmio_next = a + b->size;
		put32(d->s.cfg + PCI_BAR0 + 4 * i, (uint32_t)a | (b->is64 ? PCI_BAR_MEM64 : 0));
		if (b->is64)
			put32(d->s.cfg + PCI_BAR0 + 4 * (i + 1), (uint32_t)(a >> 32));
	}
	put16(d->s.cfg + PCI_COMMAND, PCI_CMD_MEMORY);
	return 0;
}

int pci_dev_register(struct machine *m, struct pci_dev *d)
{
	unsigned s;
	for (s = 0; s < PCI_SLOTS && m->pci.dev[s]; s++)
		;
	if (s == PCI_SLOTS)
		return -ENOSPC;
	d->m = m;
	d->slot = s;
	if (s > 0) {
		/* INTA#, swizzled by slot onto GSIs 16-23 as the _PRT says */
		d->s.cfg[PCI_INTERRUPT_PIN] = 1;
		d->gsi = GSI_PCI_BASE + s % GSI_PCI_COUNT;
		d->s.cfg[PCI_INTERRUPT_LINE] = (uint8_t)d->gsi;
	}
	int err = pci_assign(m, d);
	if (err < 0)
		return err;
	memcpy(d->cfg_init, d->s.cfg, sizeof(d->cfg_init));
	m->pci.dev[s] = d;
	pci_dev_reset_state(d);
	return 0;
}

/* ---- The host bridge ---- */

static struct pci_dev *pci_find(struct machine *m, unsigned bus, unsigned devfn)
{
	if (bus != 0 || (devfn & 7))
		return NULL; /* one function per device, on bus 0 */
	return m->pci.dev[devfn >> 3];
}

uint32_t pci_host_cfg_read(struct machine *m, unsigned bus, unsigned devfn, unsigned off, unsigned size)
{
	struct pci_dev *d = pci_find(m, bus, devfn);
	uint32_t ones = size == 4 ? ~0u : (1u << (8 * size)) - 1;
	if (!d || off >= 4096 || (off & (size - 1)))
		return ones;
	return pci_cfg_read(d, off, size);
}

void pci_host_cfg_write(struct machine *m, unsigned bus, unsigned devfn, unsigned off, unsigned size, uint32_t val)
{
	struct pci_dev *d = pci_find(m, bus, devfn);
	if (!d || off >= 4096 || (off & (size - 1)))
		return;
	pci_cfg_write(d, off, size, val);
}

/* Configuration mechanism #1 (PCI 3.0 §3.2.2.3.2): 0xcf8 holds the enable
 * bit, bus, device, function and dword register; 0xcfc-0xcff the data. */
static uint64_t conf1_rd(void *dev, uint64_t off, unsigned size)
{
	struct machine *m = dev;
	uint32_t a = m->pci.conf_addr;
	if (off < 4)
		return size == 4 && off == 0 ? a : ~0ull;
	if (!(a & 0x80000000u) || size == 8)
		return ~0ull;
	return pci_host_cfg_read(m, (a >> 16) & 0xff, (a >> 8) & 0xff, (a & 0xfc) + (unsigned)(off - 4), size);
}

static void conf1_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct machine *m = dev;
	uint32_t a = m->pci.conf_addr;
	if (off < 4) {
		/* only dword writes reach the address register; byte writes to
		 * 0xcfb are mechanism #2 probes and are ignored */
		if (off == 0 && size == 4)
			m->pci.conf_addr = (uint32_t)val & 0x80fffffcu;
		return;
	}
	if (!(a & 0x80000000u) || size == 8)
		return;
	pci_host_cfg_write(m, (a >> 16) & 0xff, (a >> 8) & 0xff, (a & 0xfc) + (unsigned)(off - 4), size, (uint32_t)val);
}

/* ECAM (PCIe 5.0 §7.2.2): bus << 20 | device << 15 | function << 12 | register. */
static uint64_t ecam_rd(void *dev, uint64_t off, unsigned size)
{
	if (size == 8)
		return ecam_rd(dev, off, 4) | ecam_rd(dev, off + 4, 4) << 32;
	return pci_host_cfg_read(dev, (unsigned)(off >> 20), (unsigned)(off >> 12) & 0xff, (unsigned)off & 0xfff, size);
}

static void ecam_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	if (size == 8) {
		ecam_wr(dev, off, 4, (uint32_t)val);
		ecam_wr(dev, off + 4, 4, val >> 32);
		return;
	}
	pci_host_cfg_write(dev, (unsigned)(off >> 20), (unsigned)(off >> 12) & 0xff, (unsigned)off & 0xfff, size,
			   (uint32_t)val);
}

int pci_host_register(struct machine *m)
{
	int err;
	memset(&m->pci, 0, sizeof(m->pci));
	m->pci.mmio_next = MEM_PCI_MMIO_BASE;
	if ((err = bus_register_pio(m, PORT_PCI_CONF, 8, conf1_rd, conf1_wr, m)) < 0 ||
	    (err = bus_register_mmio(m, MEM_PCI_ECAM_BASE, MEM_PCI_ECAM_SIZE, ecam_rd, ecam_wr, m)) < 0)
		return err;
	pci_dev_init(&m->pci.bridge, "host bridge", BRIDGE_VENDOR, BRIDGE_DEVICE, 0x060000, 0, BRIDGE_VENDOR, 0x1100);
	return pci_dev_register(m, &m->pci.bridge);
}

void pci_reset(struct machine *m)
{
	m->pci.conf_addr = 0;
	for (unsigned s = 0; s < PCI_SLOTS; s++) {
		struct pci_dev *d = m->pci.dev[s];
		if (!d)
			continue;
		pci_dev_reset_state(d);
		if (d->reset)
			d->reset(d);
	}
}

void pci_destroy_all(struct machine *m)
{
	for (unsigned s = 0; s < PCI_SLOTS; s++) {
		struct pci_dev *d = m->pci.dev[s];
		m->pci.dev[s] = NULL;
		if (d && d->destroy)
			d->destroy(d);
	}
}

/* Takes what the guest could have written from st (hostile input). */
static void pci_dev_commit(struct pci_dev *d, const struct pci_dev_state *stp)
{
	const struct pci_dev_state st = *stp;
	/* Unmap at the old addresses, then take only what the guest could
	 * have written; read-only registers stay as built. */
	put16(d->s.cfg + PCI_COMMAND, 0);
	pci_update_mappings(d);
	for (unsigned k = 0; k < PCI_CFG_SIZE; k++)
		d->s.cfg[k] = (uint8_t)((d->cfg_init[k] & ~d->wmask[k]) | (st.cfg[k] & d->wmask[k]));
	for (unsigned v = 0; v < PCI_MSIX_MAX; v++) {
		memcpy(d->s.msix[v], st.msix[v], sizeof(st.msix[v]));
		d->s.msix[v][3] &= 1;
	}
	d->s.msix_pba = d->msix_nvec >= 64 ? st.msix_pba : st.msix_pba & ((1ull << d->msix_nvec) - 1);
	pci_update_mappings(d);
	pci_intx_set(d, st.intx);
}

void pci_dev_state_save(const struct pci_dev *d, struct state_writer *w)
{
	state_put_bytes(w, d->s.cfg, sizeof(d->s.cfg));
	state_put_u32(w, d->msix_nvec);
	for (unsigned v = 0; v < d->msix_nvec && v < PCI_MSIX_MAX; v++)
		for (unsigned k = 0; k < 4; k++)
			state_put_u32(w, d->s.msix[v][k]);
	state_put_u64(w, d->s.msix_pba);
	state_put_bool(w, d->s.intx);
}

int pci_dev_state_load(struct pci_dev *d, struct state_reader *r)
{
	struct pci_dev_state *st = calloc(1, sizeof(*st));
	if (!st) {
		state_fail(r, "out of memory");
		return -ENOMEM;
	}
	state_get_bytes(r, st->cfg, sizeof(st->cfg));
	uint32_t nvec = state_get_u32(r);
	if (state_reader_ok(r) && nvec != d->msix_nvec)
		state_fail(r, "%s: %u MSI-X vectors, this device has %u", d->name, nvec, d->msix_nvec);
	for (unsigned v = 0; v < d->msix_nvec && state_reader_ok(r); v++)
		for (unsigned k = 0; k < 4; k++)
			st->msix[v][k] = state_get_u32(r);
	st->msix_pba = state_get_u64(r);
	st->intx = state_get_bool(r);
	int ok = state_section_done(r);
	if (ok)
		pci_dev_commit(d, st);
	free(st);
	return ok ? 0 : -EINVAL;
}
