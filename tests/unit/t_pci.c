/* The PCI host: configuration mechanism #1 and ECAM reach the same
 * registers, BAR sizing reads back size masks, BARs appear on and vanish
 * from the MMIO bus as the guest programs them, MSI-X respects its masks,
 * INTx lines shared by two functions, and a function's state restored
 * onto a fresh machine, also from hostile input. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devstate.h"
#include "machine/machine_impl.h"
#include "testhelp.h"

struct tdev {
	struct pci_dev pci;
	unsigned reads, writes;
	uint64_t last_off, last_val;
};

static uint64_t tdev_rd(void *opaque, uint64_t off, unsigned size)
{
	struct tdev *t = opaque;
	t->reads++;
	t->last_off = off;
	(void)size;
	return 0x5a5a0000 | off;
}

static void tdev_wr(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct tdev *t = opaque;
	(void)size;
	t->writes++;
	t->last_off = off;
	t->last_val = val;
}

static struct machine *mk(void)
{
	struct machine *m = NULL;
	struct machine_config cfg = {.mem_size = 16 << 20, .ncpus = 1, .serial_out_fd = -1};
	if (machine_create(&m, &cfg) < 0)
		return NULL;
	return m;
}

/* A function with a 32-bit BAR 0 (4 KiB, registers), a 64-bit BAR 2
 * (16 KiB), and MSI-X with 4 vectors in BAR 0 at 0x800 (PBA 0xc00). */
static int tdev_add(struct machine *m, struct tdev *t)
{
	memset(t, 0, sizeof(*t));
	pci_dev_init(&t->pci, "test", 0x1234, 0x5678, 0x0780, 3, 0x1234, 0x9);
	if (pci_bar_add(&t->pci, 0, 0x1000, 0, tdev_rd, tdev_wr, t) < 0 ||
	    pci_bar_add(&t->pci, 2, 0x4000, 1, tdev_rd, tdev_wr, t) < 0 ||
	    pci_msix_add(&t->pci, 0, 4, 0x800, 0xc00) < 0)
		return -1;
	return pci_dev_register(m, &t->pci);
}

static uint32_t conf1_read(struct machine *m, unsigned slot, unsigned reg, unsigned size)
{
	bus_pio_write(m, PORT_PCI_CONF, 4, 0x80000000u | slot << 11 | (reg & 0xfc));
	return (uint32_t)bus_pio_read(m, (uint16_t)(0xcfc + (reg & 3)), size);
}

static void conf1_write(struct machine *m, unsigned slot, unsigned reg, unsigned size, uint32_t v)
{
	bus_pio_write(m, PORT_PCI_CONF, 4, 0x80000000u | slot << 11 | (reg & 0xfc));
	bus_pio_write(m, (uint16_t)(0xcfc + (reg & 3)), size, v);
}

static uint64_t ecam(unsigned bus, unsigned slot, unsigned reg)
{
	return MEM_PCI_ECAM_BASE + ((uint64_t)bus << 20 | slot << 15 | reg);
}

static void test_host_bridge(void)
{
	struct machine *m = mk();
	CHECK(m != NULL);
	if (!m)
		return;
	/* Linux's type 1 probe: 0xcf8 keeps a dword, byte writes to 0xcfb are ignored */
	bus_pio_write(m, 0xcfb, 1, 1);
	bus_pio_write(m, PORT_PCI_CONF, 4, 0x80000000u);
	CHECK_EQ_U64(bus_pio_read(m, PORT_PCI_CONF, 4), 0x80000000u);
	CHECK_EQ_U64(conf1_read(m, 0, 0, 4), 0x00081b36);
	CHECK_EQ_U64(conf1_read(m, 0, 0x0a, 2), 0x0600); /* host bridge class */
	CHECK_EQ_U64(conf1_read(m, 0, 0x02, 2), 0x0008);
	CHECK_EQ_U64(bus_mmio_read(m, ecam(0, 0, 0), 4), 0x00081b36);
	CHECK_EQ_U64(bus_mmio_read(m, ecam(0, 0, 0x100), 4), 0); /* no extended capabilities */
	/* nothing else is there */
	CHECK_EQ_U64(conf1_read(m, 5, 0, 4), 0xffffffffu);
	CHECK_EQ_U64(bus_mmio_read(m, ecam(1, 0, 0), 4), 0xffffffffu);
	CHECK_EQ_U64(bus_mmio_read(m, ecam(0, 0, 0) | 1 << 12, 2), 0xffff); /* function 1 */
	/* disabled mechanism #1 reads all ones */
	bus_pio_write(m, PORT_PCI_CONF, 4, 0);
	CHECK_EQ_U64(bus_pio_read(m, 0xcfc, 4), 0xffffffffu);
	/* 0xcf9 is still the reset register, not PCI */
	bus_pio_write(m, PORT_ACPI_RESET, 1, 0x06);
	CHECK_EQ_U64(machine_take_power(m), POWER_RESET);
	machine_destroy(m);
}

static void test_bar_sizing(void)
{
	struct machine *m = mk();
	struct tdev t;
	CHECK(m && tdev_add(m, &t) == 0);
	if (!m)
		return;
	unsigned s = t.pci.slot;
	CHECK_EQ_U64(s, 1);
	/* firmware placed the BARs and enabled decoding */
	uint32_t bar0 = conf1_read(m, s, PCI_BAR0, 4), bar2 = conf1_read(m, s, PCI_BAR0 + 8, 4);
	CHECK(bar0 >= MEM_PCI_MMIO_BASE && bar0 <= MEM_PCI_MMIO_END && !(bar0 & 0xfff));
	CHECK_EQ_U64(bar2 & 0xf, PCI_BAR_MEM64);
	CHECK(conf1_read(m, s, PCI_COMMAND, 2) & PCI_CMD_MEMORY);
	CHECK_EQ_U64(bus_mmio_read(m, bar0 + 0x10, 4), 0x5a5a0010);

	/* sizing: decoding off, all ones, read the mask, restore */
	conf1_write(m, s, PCI_COMMAND, 2, 0);
	CHECK_EQ_U64(bus_mmio_read(m, bar0 + 0x10, 4), 0xffffffffu); /* unmapped */
	conf1_write(m, s, PCI_BAR0, 4, 0xffffffffu);
	CHECK_EQ_U64(conf1_read(m, s, PCI_BAR0, 4), 0xfffff000u);
	conf1_write(m, s, PCI_BAR0 + 8, 4, 0xffffffffu);
	conf1_write(m, s, PCI_BAR0 + 12, 4, 0xffffffffu);
	CHECK_EQ_U64(conf1_read(m, s, PCI_BAR0 + 8, 4), 0xffffc000u | PCI_BAR_MEM64);
	CHECK_EQ_U64(conf1_read(m, s, PCI_BAR0 + 12, 4), 0xffffffffu);
	/* unimplemented BARs read 0 and stay 0 */
	conf1_write(m, s, PCI_BAR0 + 4, 4, 0xffffffffu);
	CHECK_EQ_U64(conf1_read(m, s, PCI_BAR0 + 4, 4), 0);
	conf1_write(m, s, PCI_BAR0 + 20, 4, 0xffffffffu);
	CHECK_EQ_U64(conf1_read(m, s, PCI_BAR0 + 20, 4), 0);
	/* read-only IDs */
	conf1_write(m, s, 0, 4, 0);
	CHECK_EQ_U64(conf1_read(m, s, 0, 4), 0x56781234);

	/* the guest moves both BARs (through ECAM this time) and enables decoding */
	bus_mmio_write(m, ecam(0, s, PCI_BAR0), 4, 0xd0000000);
	bus_mmio_write(m, ecam(0, s, PCI_BAR0 + 8), 4, 0xd0010000);
	bus_mmio_write(m, ecam(0, s, PCI_BAR0 + 12), 4, 0);
	CHECK_EQ_U64(bus_mmio_read(m, 0xd0000020, 4), 0xffffffffu); /* not yet */
	bus_mmio_write(m, ecam(0, s, PCI_COMMAND), 2, PCI_CMD_MEMORY);
	CHECK_EQ_U64(bus_mmio_read(m, 0xd0000020, 4), 0x5a5a0020);
	CHECK_EQ_U64(bus_mmio_read(m, 0xd0013ff8, 8), 0x5a5a3ff8);
	CHECK_EQ_U64(bus_mmio_read(m, bar0 + 0x10, 4), 0xffffffffu); /* the old place is empty */
	bus_mmio_write(m, 0xd0010008, 4, 77);
	CHECK_EQ_U64(t.last_val, 77);
	/* a 64-bit BAR above 4 GiB */
	bus_mmio_write(m, ecam(0, s, PCI_BAR0 + 12), 4, 0x1);
	CHECK_EQ_U64(bus_mmio_read(m, 0x1d0010000ull, 4), 0x5a5a0000);
	CHECK_EQ_U64(bus_mmio_read(m, 0xd0010000, 4), 0xffffffffu);
	/* moving BARs around many times leaves the bus table as it was */
	unsigned n = m->nmmio;
	for (unsigned k = 0; k < 200; k++)
		conf1_write(m, s, PCI_BAR0, 4, 0xd1000000 + (k << 12));
	CHECK_EQ_U64(m->nmmio, n);
	CHECK_EQ_U64(bus_mmio_read(m, 0xd1000000 + (199 << 12), 4), 0x5a5a0000);
	machine_destroy(m);
}

static void test_caps_msix(void)
{
	struct machine *m = mk();
	struct tdev t;
	CHECK(m && tdev_add(m, &t) == 0);
	if (!m)
		return;
	unsigned s = t.pci.slot;
	uint32_t bar0 = conf1_read(m, s, PCI_BAR0, 4) & ~0xfu;
	CHECK(conf1_read(m, s, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	unsigned cap = conf1_read(m, s, PCI_CAP_PTR, 1);
	CHECK_EQ_U64(conf1_read(m, s, cap, 1), PCI_CAP_ID_MSIX);
	CHECK_EQ_U64(conf1_read(m, s, cap + 2, 2), 3);		 /* 4 vectors */
	CHECK_EQ_U64(conf1_read(m, s, cap + 4, 4), 0x800);	 /* BIR 0 */
	CHECK_EQ_U64(conf1_read(m, s, cap + 8, 4), 0xc00);	 /* PBA */
	CHECK_EQ_U64(conf1_read(m, s, cap + 1, 1), 0);		 /* last */
	CHECK_EQ_U64(bus_mmio_read(m, bar0 + 0x800 + 12, 4), 1); /* vectors start masked */

	/* vector 2 -> LAPIC 0, vector 0x45 */
	bus_mmio_write(m, bar0 + 0x800 + 32, 8, MEM_LAPIC_BASE);
	bus_mmio_write(m, bar0 + 0x800 + 40, 4, 0x45);
	CHECK_EQ_U64(bus_mmio_read(m, bar0 + 0x800 + 32, 4), MEM_LAPIC_BASE);
	pci_msix_notify(&t.pci, 2); /* MSI-X off: nothing */
	CHECK(lapic_pending(&m->lapic[0]) < 0);
	conf1_write(m, s, cap + 2, 2, PCI_MSIX_ENABLE);
	CHECK(pci_msix_enabled(&t.pci));
	pci_msix_notify(&t.pci, 2); /* masked: pending */
	CHECK(lapic_pending(&m->lapic[0]) < 0);
	CHECK_EQ_U64(bus_mmio_read(m, bar0 + 0xc00, 8), 1u << 2);
	bus_mmio_write(m, bar0 + 0xc00, 8, 0); /* the PBA is read-only */
	CHECK_EQ_U64(bus_mmio_read(m, bar0 + 0xc00, 8), 1u << 2);
	bus_mmio_write(m, bar0 + 0x800 + 44, 4, 0); /* unmask: delivered now */
	CHECK_EQ_U64(lapic_pending(&m->lapic[0]), 0x45);
	CHECK_EQ_U64(bus_mmio_read(m, bar0 + 0xc00, 8), 0);
	CHECK_EQ_U64(lapic_ack(&m->lapic[0]), 0x45);
	/* function mask */
	conf1_write(m, s, cap + 2, 2, PCI_MSIX_ENABLE | PCI_MSIX_MASKALL);
	pci_msix_notify(&t.pci, 2);
	CHECK(lapic_pending(&m->lapic[0]) < 0);
	conf1_write(m, s, cap + 2, 2, PCI_MSIX_ENABLE);
	CHECK(lapic_pending(&m->lapic[0]) < 0 || lapic_pending(&m->lapic[0]) == 0x45);
	CHECK_EQ_U64(bus_mmio_read(m, bar0 + 0xc00, 8), 0);
	/* hostile: vectors out of range, a message not aimed at the LAPICs */
	pci_msix_notify(&t.pci, 4);
	pci_msix_notify(&t.pci, 1000);
	bus_mmio_write(m, bar0 + 0x800 + 16, 8, 0x1000);
	bus_mmio_write(m, bar0 + 0x800 + 28, 4, 0);
	pci_msix_notify(&t.pci, 1);
	bus_mmio_write(m, bar0 + 0x800 + 60, 8, ~0ull); /* straddles the table end */
	CHECK_EQ_U64(bus_mmio_read(m, bar0 + 0x800 + 12 + 16 * 3, 4), 1);
	machine_destroy(m);
}

static void test_intx_shared(void)
{
	struct machine *m = mk();
	struct tdev t[9];
	CHECK(m != NULL);
	if (!m)
		return;
	for (int k = 0; k < 9; k++)
		CHECK(tdev_add(m, &t[k]) == 0);
	/* slots 1 and 9 share GSI 17, as the _PRT says: 16 + (slot + pin) % 8 */
	CHECK_EQ_U64(t[0].pci.gsi, 17);
	CHECK_EQ_U64(t[8].pci.gsi, 17);
	CHECK_EQ_U64(conf1_read(m, 9, PCI_INTERRUPT_LINE, 1), 17);
	CHECK_EQ_U64(conf1_read(m, 9, PCI_INTERRUPT_PIN, 1), 1);
	pci_intx_set(&t[0].pci, 1);
	pci_intx_set(&t[8].pci, 1);
	CHECK(m->ioapic.s.irr & (1u << 17));
	CHECK(conf1_read(m, 1, PCI_STATUS, 2) & PCI_STATUS_INTX);
	pci_intx_set(&t[0].pci, 0);
	CHECK(m->ioapic.s.irr & (1u << 17)); /* slot 9 still asserts */
	conf1_write(m, 9, PCI_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_INTX_DISABLE);
	CHECK(!(m->ioapic.s.irr & (1u << 17)));
	conf1_write(m, 9, PCI_COMMAND, 2, PCI_CMD_MEMORY);
	CHECK(m->ioapic.s.irr & (1u << 17));
	pci_intx_set(&t[8].pci, 0);
	CHECK(!(m->ioapic.s.irr & (1u << 17)));
	machine_destroy(m);
}

/* A function's state restored onto a fresh machine's function, never the
 * one that saved it: its BAR moves to where the saved one was (the old
 * address answers on the saving machine only), the command register and
 * MSI-X table come along; damaged state keeps the IDs and BAR sizes as
 * built. */
static void test_save_load(void)
{
	struct machine *m = mk(), *f = mk();
	static struct tdev t, u;
	static struct devstate saved, fresh, back, bad;
	CHECK(m && f && tdev_add(m, &t) == 0 && tdev_add(f, &u) == 0);
	if (!m || !f)
		return;
	unsigned s = t.pci.slot;
	CHECK_EQ_U64(u.pci.slot, s);
	conf1_write(m, s, PCI_BAR0, 4, 0xd2000000);
	conf1_write(m, s, PCI_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_INTX_DISABLE);
	bus_mmio_write(m, 0xd2000800 + 16 + 8, 4, 0x4321); /* MSI-X entry 1's data */
	DEVSTATE_SAVE(&saved, pci_dev_state_save, &t.pci);
	DEVSTATE_SAVE(&fresh, pci_dev_state_save, &u.pci);
	CHECK(saved.ok && fresh.ok && !devstate_equal(&saved, &fresh));
	CHECK_EQ_U64(bus_mmio_read(f, 0xd2000004, 4), 0xffffffffu); /* nothing there yet */
	uint32_t bar_as_built = conf1_read(f, s, PCI_BAR0, 4);
	CHECK(DEVSTATE_LOAD(pci_dev_state_load, &u.pci, saved.b, saved.n - 1) == -EINVAL);
	CHECK_EQ_U64(conf1_read(f, s, PCI_BAR0, 4), bar_as_built);
	CHECK(DEVSTATE_LOAD(pci_dev_state_load, &u.pci, saved.b, saved.n) == 0);
	DEVSTATE_SAVE(&back, pci_dev_state_save, &u.pci);
	CHECK(devstate_equal(&back, &saved));
	CHECK_EQ_U64(conf1_read(f, s, PCI_BAR0, 4) & ~0xfu, 0xd2000000);
	CHECK_EQ_U64(conf1_read(f, s, PCI_COMMAND, 2), PCI_CMD_MEMORY | PCI_CMD_INTX_DISABLE);
	CHECK_EQ_U64(bus_mmio_read(f, 0xd2000004, 4), 0x5a5a0004);
	CHECK_EQ_U64(bus_mmio_read(f, 0xd2000800 + 16 + 8, 4), 0x4321);
	/* hostile contents: refused or made consistent; IDs stay, nothing breaks */
	for (int k = 0; k < 500; k++) {
		bad = saved;
		for (size_t b = 0; b < bad.n; b++)
			bad.b[b] = (k & 1) ? (uint8_t)rand() : (uint8_t)(saved.b[b] ^ ((rand() % 13) ? 0 : rand()));
		(void)DEVSTATE_LOAD(pci_dev_state_load, &u.pci, bad.b, bad.n);
		CHECK_EQ_U64(conf1_read(f, s, 0, 4), 0x56781234);
		CHECK_EQ_U64(conf1_read(f, s, PCI_BAR0, 4) & 0xfff, 0);
		(void)bus_mmio_read(f, 0xd2000004, 4);
	}
	CHECK(DEVSTATE_LOAD(pci_dev_state_load, &u.pci, saved.b, saved.n) == 0);
	CHECK_EQ_U64(bus_mmio_read(f, 0xd2000004, 4), 0x5a5a0004);
	machine_destroy(f);
	machine_destroy(m);
}

int main(void)
{
	RUN(test_host_bridge);
	RUN(test_bar_sizing);
	RUN(test_caps_msix);
	RUN(test_intx_shared);
	RUN(test_save_load);
	return test_report();
}
