/* PCI on the virtual PC: the host bridge of bus 0 (configuration mechanism
 * #1 at PORT_PCI_CONF and ECAM at MEM_PCI_ECAM_BASE, which the MCFG table
 * describes) and the generic part of a PCI function: its configuration
 * space, memory BARs mapped on the MMIO bus while the guest enables them,
 * MSI-X, and INTx on the IOAPIC's GSIs 16-23 (the DSDT's _PRT).
 *
 * A device embeds struct pci_dev, fills it with pci_dev_init, pci_bar_add,
 * pci_cap_add and pci_msix_add, then plugs it with pci_dev_register, which
 * plays firmware: it gives the BARs addresses in MEM_PCI_MMIO_BASE.. and
 * enables memory decoding. The guest may move them. */
#ifndef CORRAL_PCI_H
#define CORRAL_PCI_H

#include <stddef.h>
#include <stdint.h>

#include "machine/machine.h"

#define PCI_SLOTS 32 /* devices on bus 0, one function each; slot 0 is the host bridge */
#define PCI_NUM_BARS 6
#define PCI_MSIX_MAX 64
#define PCI_CFG_SIZE 256 /* conventional space; ECAM's extended space reads as zeroes */

/* Configuration space registers (PCI Local Bus 3.0 §6.1) */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID 0x2e
#define PCI_CAP_PTR 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d
#define PCI_CMD_IO 0x1
#define PCI_CMD_MEMORY 0x2
#define PCI_CMD_MASTER 0x4
#define PCI_CMD_INTX_DISABLE 0x400
#define PCI_STATUS_INTX 0x8
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_BAR_MEM64 0x4
#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09
#define PCI_MSIX_ENABLE 0x8000 /* message control */
#define PCI_MSIX_MASKALL 0x4000

struct pci_dev;

/* What lives in a BAR: accesses at off from its start. */
struct pci_bar {
	uint64_t size; /* a power of two >= 16; 0: no BAR */
	int is64;      /* a 64-bit BAR also uses the next BAR register */
	io_read_fn rd;
	io_write_fn wr;
	void *opaque;
	/* runtime: where the BAR is on the MMIO bus */
	uint64_t mapped_at;
	int mapped;
	struct pci_dev *dev; /* back to the function, for the bus handlers */
	unsigned idx;
};

/* Saved state: everything the guest can change. */
struct pci_dev_state {
	uint8_t cfg[PCI_CFG_SIZE];
	uint32_t msix[PCI_MSIX_MAX][4]; /* address lo, hi, data, vector control */
	uint64_t msix_pba;
	uint8_t intx; /* the device asserts INTx */
	uint8_t pad[7];
};

struct pci_dev {
	struct pci_dev_state s;
	struct machine *m;
	const char *name;		/* for log lines: "virtio-blk" */
	uint8_t wmask[PCI_CFG_SIZE];	/* bits the guest may write */
	uint8_t cfg_init[PCI_CFG_SIZE]; /* power-on contents, for reset */
	struct pci_bar bar[PCI_NUM_BARS];
	unsigned slot, gsi;
	unsigned cap_end; /* where the next capability goes */
	uint8_t last_cap; /* offset of the last capability, 0 = none */
	/* MSI-X: table and PBA inside one BAR */
	unsigned msix_cap, msix_bar, msix_nvec;
	uint32_t msix_table_off, msix_pba_off;
	/* Device hooks, all optional. cfg_access runs before a configuration
	 * read and after a write of [off, off + size), for registers whose
	 * meaning is the device's (virtio's PCI configuration access window). */
	void (*cfg_access)(struct pci_dev *d, unsigned off, unsigned size, int write);
	void (*reset)(struct pci_dev *d);
	void (*destroy)(struct pci_dev *d);
};

struct pci_host {
	uint32_t conf_addr; /* 0xcf8 */
	struct pci_dev *dev[PCI_SLOTS];
	struct pci_dev bridge; /* 00:00.0 */
	uint64_t mmio_next;    /* firmware's BAR allocator */
};

/* Machine side: machine_create registers the host bridge, machine_reset_
 * devices resets every function, machine_destroy calls each destroy hook. */
int pci_host_register(struct machine *m);
void pci_reset(struct machine *m);
void pci_destroy_all(struct machine *m);

/* Configuration access as the host bridge decodes it (devfn = slot << 3 |
 * function); off < 4096, size 1, 2 or 4, naturally aligned. Absent
 * functions read as all ones. */
uint32_t pci_host_cfg_read(struct machine *m, unsigned bus, unsigned devfn, unsigned off, unsigned size);
void pci_host_cfg_write(struct machine *m, unsigned bus, unsigned devfn, unsigned off, unsigned size, uint32_t val);

/* Building a function. class is base << 16 | sub << 8 | prog-if. */
void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor, uint16_t device, uint32_t class,
		  uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id);
int pci_bar_add(struct pci_dev *d, unsigned idx, uint64_t size, int is64, io_read_fn rd, io_write_fn wr, void *opaque);
/* Appends a capability (data[0] is its ID; data[1], the next pointer, is
 * filled in); returns its offset in configuration space or -ENOSPC. */
int pci_cap_add(struct pci_dev *d, const uint8_t *data, unsigned len);
int pci_msix_add(struct pci_dev *d, unsigned bar, unsigned nvec, uint32_t table_off, uint32_t pba_off);
/* Plugs d into the first free slot: -ENOSPC when bus 0 is full. */
int pci_dev_register(struct machine *m, struct pci_dev *d);

/* Configuration space of one function (what the host bridge forwards). */
uint32_t pci_cfg_read(struct pci_dev *d, unsigned off, unsigned size);
void pci_cfg_write(struct pci_dev *d, unsigned off, unsigned size, uint32_t val);

/* Interrupts. pci_msix_enabled: the guest turned MSI-X on, so INTx is
 * unused. pci_msix_notify sends vector vec's message, or marks it pending
 * while masked. pci_intx_set drives the function's INTx pin (level). */
int pci_msix_enabled(const struct pci_dev *d);
void pci_msix_notify(struct pci_dev *d, unsigned vec);
void pci_intx_set(struct pci_dev *d, int level);

/* Save/load of the generic state in the state stream (machine_impl.h's
 * contract; the device saves its own beside it); load keeps read-only
 * registers as built and remaps the BARs. */
struct state_writer;
struct state_reader;
void pci_dev_state_save(const struct pci_dev *d, struct state_writer *w);
int pci_dev_state_load(struct pci_dev *d, struct state_reader *r);

#endif
