/* ACPI tables for the virtual PC: RSDP -> XSDT -> FADT (-> FACS, DSDT) and
 * MADT, built in the BIOS area so both boot_params and the legacy scan find them. */
#include <errno.h>
#include <string.h>

#include "boot/boot.h"
#include "boot/boot_internal.h"
#include "machine/machine.h"

/*
 * Layout (boot_internal.h): RSDP 0xe0000, XSDT 0xe0040, FADT 0xe0100,
 * FACS 0xe0240, MADT 0xe0280 (at most 44 + 8*64 + 12 + 20 + 6 bytes),
 * DSDT 0xe0800. Offsets below are from ACPI 6.4 §5.2.
 */
#define FADT_LEN 276 /* revision 6 */
#define FACS_LEN 64
#define OEM_ID "CORRAL"
#define OEM_TABLE "CORRALPC"

/* The DSDT's AML body, assembled by hand (ACPI 6.4 §20; a PkgLength of two
 * bytes is 0x40 | (len & 0xf), len >> 4, and counts itself):
 *
 *   Name (_S5, Package (4) { 5, 5, 0, 0 })    S5: SLP_TYPa = SLP_TYPb = 5
 *   Scope (\_SB) {
 *     Device (PCI0) {                          the PCI host bridge, so the
 *       Name (_HID, EisaId ("PNP0A03"))        kernel scans bus 0 through
 *       Name (_BBN, 0)                         PORT_PCI_CONF (an ACPI kernel
 *       Name (_UID, 0)                         scans no PCI bus it is not told of)
 *       Name (_CRS, ResourceTemplate () {
 *         WordBusNumber: buses 0-0xff
 *         IO: 0xcf8-0xcff (configuration mechanism #1)
 *         WordIO: 0-0xcf7, 0xd00-0xffff (ports PCI devices may get)
 *         DWordMemory: MEM_PCI_MMIO_BASE-MEM_PCI_MMIO_END, non-cacheable
 *       })
 *     }
 *   }
 *
 * No _PRT yet: with none, the kernel takes INTx from each function's
 * interrupt line register; virtio devices use MSI-X. The power button is
 * the FADT's fixed-feature button, so \_SB needs no PNP0C0C device. */
/* clang-format off */
static const uint8_t dsdt_aml[] = {
	/* Name (_S5, Package (4) { 5, 5, 0, 0 }) */
	0x08, '_', 'S', '5', '_',         /* NameOp "_S5_" */
	0x12, 0x08, 0x04,                 /* PackageOp, PkgLength 8, NumElements 4 */
	0x0a, ACPI_SLP_TYP_S5,            /* BytePrefix 5: SLP_TYPa */
	0x0a, ACPI_SLP_TYP_S5,            /* BytePrefix 5: SLP_TYPb */
	0x00, 0x00,                       /* Zero, Zero: reserved */
	/* Scope (\_SB): 1 + 131 bytes */
	0x10, 0x43, 0x08,                 /* ScopeOp, PkgLength 131 */
	'\\', '_', 'S', 'B', '_',        /* RootChar, "_SB_" */
	/* Device (PCI0): 2 + 122 bytes */
	0x5b, 0x82, 0x4a, 0x07,           /* DeviceOp, PkgLength 122 */
	'P', 'C', 'I', '0',
	0x08, '_', 'H', 'I', 'D',         /* Name (_HID, */
	0x0c, 0x41, 0xd0, 0x0a, 0x03,     /*   DWordPrefix EisaId ("PNP0A03")) */
	0x08, '_', 'B', 'B', 'N', 0x00,   /* Name (_BBN, Zero) */
	0x08, '_', 'U', 'I', 'D', 0x00,   /* Name (_UID, Zero) */
	0x08, '_', 'C', 'R', 'S',         /* Name (_CRS, */
	0x11, 0x48, 0x05, 0x0a, 0x54,     /*   BufferOp, PkgLength 88, BytePrefix 84 bytes: */
	/* Word Address Space (0x88, 13 bytes): bus numbers, producer, MinFixed
	 * MaxFixed; granularity 0, 0x00-0xff, translation 0, length 0x100 */
	0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00,
	0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x01,
	/* I/O port (0x47): 16-bit decode, 0xcf8-0xcf8, alignment 1, length 8 */
	0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08,
	/* Word Address Space: I/O, EntireRange, 0x0000-0x0cf7, length 0xcf8 */
	0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03,
	0x00, 0x00, 0x00, 0x00, 0xf7, 0x0c, 0x00, 0x00, 0xf8, 0x0c,
	/* Word Address Space: I/O, EntireRange, 0x0d00-0xffff, length 0xf300 */
	0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03,
	0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3,
	/* DWord Address Space (0x87, 23 bytes): memory, producer, MinFixed
	 * MaxFixed, read-write non-cacheable; 0xc0000000-0xfebfffff */
	0x87, 0x17, 0x00, 0x00, 0x0c, 0x01,
	0x00, 0x00, 0x00, 0x00,           /* granularity */
	0x00, 0x00, 0x00, 0xc0,           /* minimum: MEM_PCI_MMIO_BASE */
	0xff, 0xff, 0xbf, 0xfe,           /* maximum: MEM_PCI_MMIO_END */
	0x00, 0x00, 0x00, 0x00,           /* translation */
	0x00, 0x00, 0xc0, 0x3e,           /* length */
	0x79, 0x00,                       /* End Tag */
};
/* clang-format on */

/* The lengths above were counted by hand; the layout constants are spelled
 * out in the bytes. */
_Static_assert(sizeof(dsdt_aml) == 14 + 132, "DSDT AML: a PkgLength is stale");
_Static_assert(MEM_PCI_MMIO_BASE == 0xc0000000ull && MEM_PCI_MMIO_END == 0xfebfffffull,
	       "DSDT _CRS: update the PCI memory window");
_Static_assert(PORT_PCI_CONF == 0xcf8, "DSDT _CRS: update the configuration ports");

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

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *p++);
	return (uint8_t)-sum;
}

/* The common 36-byte table header; the checksum is filled in by seal(). */
static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, OEM_ID, 6);
	memcpy(t + 16, OEM_TABLE, 8);
	put32(t + 24, 1);	   /* OEM revision */
	memcpy(t + 28, "CRRL", 4); /* creator ID */
	put32(t + 32, 1);	   /* creator revision */
}

static void seal(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = checksum(t, len);
}

/* Generic Address Structure for an I/O port block (§5.2.3.2). */
static void gas_io(uint8_t *g, uint16_t port, unsigned bytes, unsigned access)
{
	g[0] = 1; /* System I/O */
	g[1] = (uint8_t)(bytes * 8);
	g[2] = 0;
	g[3] = (uint8_t)access; /* 0 undefined (legacy), 1 byte, 2 word, 3 dword */
	put64(g + 4, port);
}

static void build_fadt(uint8_t *t)
{
	header(t, "FACP", FADT_LEN, 6);
	put32(t + 36, (uint32_t)ACPI_FACS_ADDR); /* FIRMWARE_CTRL */
	put32(t + 40, (uint32_t)ACPI_DSDT_ADDR); /* DSDT */
	t[45] = 0;				 /* Preferred_PM_Profile: unspecified */
	put16(t + 46, IRQ_ACPI_SCI);		 /* SCI_INT */
	put32(t + 48, 0);			 /* SMI_CMD 0: no SMM; ACPI mode is always on */
	put32(t + 56, PORT_ACPI_PM);		 /* PM1a_EVT_BLK */
	put32(t + 64, PORT_ACPI_PM1_CNT);	 /* PM1a_CNT_BLK */
	put32(t + 76, PORT_ACPI_PM_TMR);	 /* PM_TMR_BLK */
	t[88] = 4;				 /* PM1_EVT_LEN */
	t[89] = 2;				 /* PM1_CNT_LEN */
	t[91] = 4;				 /* PM_TMR_LEN */
	put16(t + 96, 101);			 /* P_LVL2_LAT > 100: no C2 */
	put16(t + 98, 1001);			 /* P_LVL3_LAT > 1000: no C3 */
	t[108] = 0;				 /* CENTURY: no RTC century register */
	/* IAPC_BOOT_ARCH: LEGACY_DEVICES | 8042 | VGA Not Present */
	put16(t + 109, 0x1 | 0x2 | 0x4);
	/* Flags: WBINVD | PROC_C1 | SLP_BUTTON (none) | FIX_RTC | TMR_VAL_EXT
	 * (32-bit PM timer) | RESET_REG_SUP; PWR_BUTTON clear: the power
	 * button is the fixed-feature one in PM1. */
	put32(t + 112, (1u << 0) | (1u << 2) | (1u << 5) | (1u << 6) | (1u << 8) | (1u << 10));
	gas_io(t + 116, PORT_ACPI_RESET, 1, 1); /* RESET_REG */
	t[128] = ACPI_RESET_VALUE;
	t[131] = 4;			     /* FADT minor version: 6.4 */
	put64(t + 132, ACPI_FACS_ADDR);	     /* X_FIRMWARE_CTRL */
	put64(t + 140, ACPI_DSDT_ADDR);	     /* X_DSDT */
	gas_io(t + 148, PORT_ACPI_PM, 4, 0); /* X_PM1a_EVT_BLK */
	gas_io(t + 172, PORT_ACPI_PM1_CNT, 2, 0);
	gas_io(t + 208, PORT_ACPI_PM_TMR, 4, 0);
	memcpy(t + 268, "CORRALVM", 8); /* hypervisor vendor identity */
	seal(t, FADT_LEN);
}

static uint32_t build_madt(uint8_t *t, unsigned ncpus)
{
	uint32_t off = 44;
	unsigned i;

	put32(t + 36, (uint32_t)MEM_LAPIC_BASE);
	put32(t + 40, 1);	      /* PCAT_COMPAT: there is an 8259 pair too */
	for (i = 0; i < ncpus; i++) { /* Processor Local APIC */
		t[off] = 0;
		t[off + 1] = 8;
		t[off + 2] = (uint8_t)i; /* ACPI processor UID */
		t[off + 3] = (uint8_t)i; /* APIC ID */
		put32(t + off + 4, 1);	 /* enabled */
		off += 8;
	}
	t[off] = 1; /* I/O APIC: its ID follows the CPUs' */
	t[off + 1] = 12;
	t[off + 2] = (uint8_t)ncpus;
	t[off + 3] = 0;
	put32(t + off + 4, (uint32_t)MEM_IOAPIC_BASE);
	put32(t + off + 8, 0); /* GSI base */
	off += 12;
	/* Interrupt source overrides: the PIT's IRQ 0 is on IOAPIC pin 2
	 * (edge, active high); the SCI is level-triggered, active high. */
	t[off] = 2;
	t[off + 1] = 10;
	t[off + 2] = 0; /* ISA */
	t[off + 3] = 0;
	put32(t + off + 4, 2);
	put16(t + off + 8, 0x1 | 0x1 << 2);
	off += 10;
	t[off] = 2;
	t[off + 1] = 10;
	t[off + 2] = 0;
	t[off + 3] = IRQ_ACPI_SCI;
	put32(t + off + 4, IRQ_ACPI_SCI);
	put16(t + off + 8, 0x1 | 0x3 << 2);
	off += 10;
	t[off] = 4; /* Local APIC NMI: LINT1 of every processor */
	t[off + 1] = 6;
	t[off + 2] = 0xff;
	put16(t + off + 3, 0);
	t[off + 5] = 1;
	off += 6;
	header(t, "APIC", off, 5);
	seal(t, off);
	return off;
}

int acpi_build(struct machine *m, unsigned ncpus)
{
	uint8_t *rsdp, *xsdt, *fadt, *facs, *madt, *dsdt;
	uint32_t dsdt_len = 36 + sizeof(dsdt_aml);

	if (ncpus < 1 || ncpus > MACHINE_MAX_CPUS)
		return -EINVAL;
	rsdp = gpa_ptr(m, BOOT_ACPI_RSDP, 36);
	xsdt = gpa_ptr(m, ACPI_XSDT_ADDR, 36 + 2 * 8);
	fadt = gpa_ptr(m, ACPI_FADT_ADDR, FADT_LEN);
	facs = gpa_ptr(m, ACPI_FACS_ADDR, FACS_LEN);
	madt = gpa_ptr(m, ACPI_MADT_ADDR, ACPI_DSDT_ADDR - ACPI_MADT_ADDR);
	dsdt = gpa_ptr(m, ACPI_DSDT_ADDR, dsdt_len);
	if (!rsdp || !xsdt || !fadt || !facs || !madt || !dsdt)
		return -ENOMEM;
	/* The whole area is ours: clear it so stale bytes never look like tables. */
	memset(rsdp, 0, 0x40);
	memset(xsdt, 0, ACPI_FADT_ADDR - ACPI_XSDT_ADDR);
	memset(fadt, 0, ACPI_FACS_ADDR - ACPI_FADT_ADDR);
	memset(facs, 0, ACPI_MADT_ADDR - ACPI_FACS_ADDR);
	memset(madt, 0, ACPI_DSDT_ADDR - ACPI_MADT_ADDR);
	memset(dsdt, 0, dsdt_len);

	header(dsdt, "DSDT", dsdt_len, 2);
	memcpy(dsdt + 36, dsdt_aml, sizeof(dsdt_aml));
	seal(dsdt, dsdt_len);

	memcpy(facs, "FACS", 4); /* no checksum (§5.2.10) */
	put32(facs + 4, FACS_LEN);
	facs[32] = 2; /* version */

	build_fadt(fadt);
	build_madt(madt, ncpus);

	header(xsdt, "XSDT", 36 + 2 * 8, 1);
	put64(xsdt + 36, ACPI_FADT_ADDR);
	put64(xsdt + 44, ACPI_MADT_ADDR);
	seal(xsdt, 36 + 2 * 8);

	/* RSDP revision 2 (§5.2.5.3): checksum over the first 20 bytes, extended
	 * checksum over all 36. No RSDT: XSDT only, as ACPI 2.0+ OSes use. */
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, OEM_ID, 6);
	rsdp[15] = 2;
	put32(rsdp + 16, 0);
	put32(rsdp + 20, 36);
	put64(rsdp + 24, ACPI_XSDT_ADDR);
	rsdp[8] = checksum(rsdp, 20);
	rsdp[32] = checksum(rsdp, 36);
	return 0;
}
