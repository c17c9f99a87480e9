/* ACPI tables for the virtual PC: RSDP -> XSDT -> FADT (-> FACS, DSDT) and
 * MADT, built in the BIOS area so both boot_params and the legacy scan find them. */
#include <errno.h>
#include <string.h>

#include "boot/boot.h"
#include "boot/boot_internal.h"
#include "machine/machine.h"
#include "machine/pci.h"
#include "machine/replay.h"

/*
 * Layout (boot_internal.h): RSDP 0xe0000, XSDT 0xe0040, FADT 0xe0100,
 * FACS 0xe0240, MADT 0xe0280 (at most 44 + 8*64 + 12 + 20 + 6 bytes),
 * MCFG 0xe0700, DSDT 0xe0800 (built by the AML writer below). Offsets below are from ACPI 6.4 §5.2.
 */
#define FADT_LEN 276 /* revision 6 */
#define FACS_LEN 64
#define ACPI_XSDT_LEN (36 + 3 * 8)
#define ACPI_MCFG_LEN (44 + 16)
#define OEM_ID "CORRAL"
#define OEM_TABLE "CORRALPC"

/* AML (ACPI 6.4 §20) is written by a tiny builder: terms are appended to a
 * buffer, and a PkgLength is patched in front of a package's contents when
 * it closes, so no length is ever counted by hand. */
#define AML_MAX 8192

struct aml {
	uint8_t b[AML_MAX];
	size_t len;
	int overflow;
};

static void aml_byte(struct aml *a, uint8_t v)
{
	if (a->len < AML_MAX)
		a->b[a->len++] = v;
	else
		a->overflow = 1;
}

static void aml_bytes(struct aml *a, const void *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		aml_byte(a, ((const uint8_t *)p)[k]);
}

/* A NameSeg or a rooted path given as one string ("_HID", "\\_SB_"). */
static void aml_nameseg(struct aml *a, const char *n)
{
	aml_bytes(a, n, strlen(n));
}

static void aml_int(struct aml *a, uint64_t v)
{
	if (v == 0)
		aml_byte(a, 0x00); /* ZeroOp */
	else if (v == 1)
		aml_byte(a, 0x01); /* OneOp */
	else if (v <= 0xff) {
		aml_byte(a, 0x0a);
		aml_byte(a, (uint8_t)v);
	} else if (v <= 0xffff) {
		aml_byte(a, 0x0b);
		aml_byte(a, (uint8_t)v);
		aml_byte(a, (uint8_t)(v >> 8));
	} else if (v <= 0xffffffffull) {
		aml_byte(a, 0x0c);
		for (int k = 0; k < 4; k++)
			aml_byte(a, (uint8_t)(v >> (8 * k)));
	} else {
		aml_byte(a, 0x0e);
		for (int k = 0; k < 8; k++)
			aml_byte(a, (uint8_t)(v >> (8 * k)));
	}
}

/* Opens a package: returns where its contents start. */
static size_t aml_open(struct aml *a)
{
	return a->len;
}

/* Closes the package opened at start: inserts its PkgLength (§20.2.4),
 * which counts itself: one byte up to 63, else 0x40 | n-1 << 6 with the low
 * nibble in the lead byte and the rest in the following bytes. */
static void aml_close(struct aml *a, size_t start)
{
	size_t body = a->len - start, total;
	unsigned n;
	if (body + 1 <= 0x3f)
		n = 1;
	else if (body + 2 <= 0xfff)
		n = 2;
	else
		n = 3;
	total = body + n;
	if (a->len + n > AML_MAX) {
		a->overflow = 1;
		return;
	}
	memmove(a->b + start + n, a->b + start, body);
	if (n == 1) {
		a->b[start] = (uint8_t)total;
	} else {
		a->b[start] = (uint8_t)((n - 1) << 6 | (total & 0xf));
		for (unsigned k = 1; k < n; k++)
			a->b[start + k] = (uint8_t)(total >> (4 + 8 * (k - 1)));
	}
	a->len += n;
}

/* EisaId ("PNPxxxx"): three letters in 5 bits each, four hex digits. */
static void aml_eisaid(struct aml *a, const char *id)
{
	uint16_t v = (uint16_t)((id[0] - '@') << 10 | (id[1] - '@') << 5 | (id[2] - '@'));
	unsigned hex = 0;
	for (int k = 3; k < 7; k++)
		hex = hex << 4 | (unsigned)(id[k] <= '9' ? id[k] - '0' : id[k] - 'A' + 10);
	aml_byte(a, 0x0c); /* DWordPrefix, bytes in this order */
	aml_byte(a, (uint8_t)(v >> 8));
	aml_byte(a, (uint8_t)v);
	aml_byte(a, (uint8_t)(hex >> 8));
	aml_byte(a, (uint8_t)hex);
}

static void aml_name_int(struct aml *a, const char *name, uint64_t v)
{
	aml_byte(a, 0x08); /* NameOp */
	aml_nameseg(a, name);
	aml_int(a, v);
}

static void aml_name_eisaid(struct aml *a, const char *name, const char *id)
{
	aml_byte(a, 0x08);
	aml_nameseg(a, name);
	aml_eisaid(a, id);
}

/* Name (name, "string") */
static void aml_name_string(struct aml *a, const char *name, const char *s)
{
	aml_byte(a, 0x08);
	aml_nameseg(a, name);
	aml_byte(a, 0x0d); /* StringPrefix */
	aml_bytes(a, s, strlen(s) + 1);
}

/* Name (name, Buffer () { resource template bytes, End Tag }) */
static void aml_name_resources(struct aml *a, const char *name, const uint8_t *res, size_t n)
{
	aml_byte(a, 0x08);
	aml_nameseg(a, name);
	aml_byte(a, 0x11); /* BufferOp */
	size_t pk = aml_open(a);
	aml_int(a, n + 2);
	aml_bytes(a, res, n);
	aml_byte(a, 0x79); /* End Tag, checksum 0: "treat as correct" */
	aml_byte(a, 0x00);
	aml_close(a, pk);
}

/* Resource descriptors (ACPI 6.4 §6.4.3) */
static void res_word(uint8_t *r, uint8_t type, uint8_t flags, uint16_t min, uint16_t max)
{
	/* Word Address Space: producer, MinFixed, MaxFixed; granularity 0 */
	uint8_t d[16] = {0x88, 0x0d, 0x00, type, 0x0c, flags};
	d[8] = (uint8_t)min;
	d[9] = (uint8_t)(min >> 8);
	d[10] = (uint8_t)max;
	d[11] = (uint8_t)(max >> 8);
	uint16_t len = (uint16_t)(max - min + 1);
	d[14] = (uint8_t)len;
	d[15] = (uint8_t)(len >> 8);
	memcpy(r, d, 16);
}

static void res_dword_mem(uint8_t *r, uint32_t min, uint32_t max)
{
	/* DWord Address Space: memory, producer, MinFixed, MaxFixed,
	 * read-write, non-cacheable */
	uint8_t d[26] = {0x87, 0x17, 0x00, 0x00, 0x0c, 0x01};
	for (int k = 0; k < 4; k++) {
		d[10 + k] = (uint8_t)(min >> (8 * k));
		d[14 + k] = (uint8_t)(max >> (8 * k));
		d[22 + k] = (uint8_t)((max - min + 1) >> (8 * k));
	}
	memcpy(r, d, 26);
}

/*
 * The DSDT:
 *
 *   Name (_S5, Package (4) { 5, 5, 0, 0 })     S5: SLP_TYPa = SLP_TYPb = 5
 *   Scope (\_SB) {
 *     Device (PCI0) {                           the host bridge of bus 0
 *       Name (_HID, EisaId ("PNP0A08"))         PCI Express root (ECAM via MCFG)
 *       Name (_CID, EisaId ("PNP0A03"))         and plain PCI
 *       Name (_SEG, 0)  Name (_BBN, 0)  Name (_UID, 0)
 *       Method (_OSC, 4) { Return (Arg3) }      the OS may control every
 *                                               PCIe feature it asks for
 *       Name (_CRS, ResourceTemplate () {
 *         WordBusNumber: buses 0-0xff
 *         IO: 0xcf8-0xcff (configuration mechanism #1)
 *         WordIO: 0-0xcf7, 0xd00-0xffff (ports PCI devices may get)
 *         DWordMemory: MEM_PCI_MMIO_BASE-MEM_PCI_MMIO_END, non-cacheable
 *       })
 *       Name (_PRT, Package () {                INTx of slot s pin p (INTA=0)
 *         Package () { s << 16 | 0xffff, p, 0, 16 + (s + p) % 8 }, ...
 *       })                                       on GSIs 16-23 (level, low)
 *     }
 *     Device (MRES) {                           motherboard resources: the
 *       Name (_HID, EisaId ("PNP0C02"))         ECAM window, so the kernel
 *       Name (_CRS, ResourceTemplate () {       trusts the MCFG table
 *         Memory32Fixed (ReadWrite, MEM_PCI_ECAM_BASE, MEM_PCI_ECAM_SIZE)
 *       })
 *     }
 *   }
 *
 * The power button is the FADT's fixed-feature button, so \_SB needs no
 * PNP0C0C device.
 *
 * The VM generation ID (Linux: drivers/virt/vmgenid.c, which matches the
 * _HID; QEMU's hw/acpi/vmgenid.c builds the same device):
 *   Scope (\_SB) {
 *     Device (VGEN) {
 *       Name (_HID, "VMGENCTR")  Name (_CID, "VM_Gen_Counter")
 *       Name (_DDN, "VM_Gen_Counter")
 *       Method (ADDR, 0) { Return (Package (2) { low, high }) }   of the 16 bytes
 *     }
 *   }
 *   Scope (\_GPE) {
 *     Method (_E00, 0) { Notify (\_SB.VGEN, 0x80) }   GPE0 bit 0: the ID changed
 *   }
 */
static void build_dsdt_aml(struct aml *a)
{
	size_t pk, dev, pkg;

	aml_byte(a, 0x08); /* Name (_S5, Package (4) { 5, 5, 0, 0 }) */
	aml_nameseg(a, "_S5_");
	aml_byte(a, 0x12); /* PackageOp */
	pk = aml_open(a);
	aml_byte(a, 4);
	aml_int(a, ACPI_SLP_TYP_S5);
	aml_int(a, ACPI_SLP_TYP_S5);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_close(a, pk);

	aml_byte(a, 0x10); /* ScopeOp */
	size_t sb = aml_open(a);
	aml_nameseg(a, "\\_SB_");

	aml_byte(a, 0x5b); /* DeviceOp */
	aml_byte(a, 0x82);
	dev = aml_open(a);
	aml_nameseg(a, "PCI0");
	aml_name_eisaid(a, "_HID", "PNP0A08");
	aml_name_eisaid(a, "_CID", "PNP0A03");
	aml_name_int(a, "_SEG", 0);
	aml_name_int(a, "_BBN", 0);
	aml_name_int(a, "_UID", 0);
	aml_byte(a, 0x14); /* MethodOp */
	pk = aml_open(a);
	aml_nameseg(a, "_OSC");
	aml_byte(a, 0x04); /* 4 arguments, not serialized */
	aml_byte(a, 0xa4); /* ReturnOp */
	aml_byte(a, 0x6b); /* Arg3 */
	aml_close(a, pk);

	uint8_t res[16 * 3 + 8 + 26];
	res_word(res, 2, 0x00, 0x00, 0xff); /* bus numbers */
	static const uint8_t io_conf[8] = {0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08};
	memcpy(res + 16, io_conf, 8);
	res_word(res + 24, 1, 0x03, 0x0000, 0x0cf7); /* I/O, EntireRange */
	res_word(res + 40, 1, 0x03, 0x0d00, 0xffff);
	res_dword_mem(res + 56, (uint32_t)MEM_PCI_MMIO_BASE, (uint32_t)MEM_PCI_MMIO_END);
	aml_name_resources(a, "_CRS", res, sizeof(res));

	aml_byte(a, 0x08); /* Name (_PRT, Package (128) { ... }) */
	aml_nameseg(a, "_PRT");
	aml_byte(a, 0x12);
	pkg = aml_open(a);
	aml_byte(a, PCI_SLOTS * 4);
	for (unsigned slot = 0; slot < PCI_SLOTS; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			aml_byte(a, 0x12);
			pk = aml_open(a);
			aml_byte(a, 4);
			aml_int(a, (uint64_t)slot << 16 | 0xffff);
			aml_int(a, pin);
			aml_int(a, 0); /* no link device: the next field is a GSI */
			aml_int(a, GSI_PCI_BASE + (slot + pin) % GSI_PCI_COUNT);
			aml_close(a, pk);
		}
	}
	aml_close(a, pkg);
	aml_close(a, dev);

	aml_byte(a, 0x5b);
	aml_byte(a, 0x82);
	dev = aml_open(a);
	aml_nameseg(a, "MRES");
	aml_name_eisaid(a, "_HID", "PNP0C02");
	aml_name_int(a, "_UID", 1);
	uint8_t mem[12] = {0x86, 0x09, 0x00, 0x01};
	for (int k = 0; k < 4; k++) {
		mem[4 + k] = (uint8_t)(MEM_PCI_ECAM_BASE >> (8 * k));
		mem[8 + k] = (uint8_t)(MEM_PCI_ECAM_SIZE >> (8 * k));
	}
	aml_name_resources(a, "_CRS", mem, sizeof(mem));
	aml_close(a, dev);

	aml_byte(a, 0x5b);
	aml_byte(a, 0x82);
	dev = aml_open(a);
	aml_nameseg(a, "VGEN");
	aml_name_string(a, "_HID", "VMGENCTR");
	aml_name_string(a, "_CID", "VM_Gen_Counter");
	aml_name_string(a, "_DDN", "VM_Gen_Counter");
	aml_byte(a, 0x14); /* MethodOp */
	pk = aml_open(a);
	aml_nameseg(a, "ADDR");
	aml_byte(a, 0x00); /* no arguments */
	aml_byte(a, 0xa4); /* ReturnOp */
	aml_byte(a, 0x12); /* PackageOp */
	pkg = aml_open(a);
	aml_byte(a, 2);
	aml_int(a, BOOT_VMGENID_ADDR & 0xffffffffu);
	aml_int(a, BOOT_VMGENID_ADDR >> 32);
	aml_close(a, pkg);
	aml_close(a, pk);
	aml_close(a, dev);

	aml_close(a, sb);

	aml_byte(a, 0x10); /* Scope (\_GPE) */
	size_t gpe = aml_open(a);
	aml_nameseg(a, "\\_GPE");
	aml_byte(a, 0x14);
	pk = aml_open(a);
	aml_nameseg(a, "_E00");
	aml_byte(a, 0x00);
	aml_byte(a, 0x86);		  /* NotifyOp */
	aml_nameseg(a, "\\\x2e_SB_VGEN"); /* \ DualNamePrefix _SB_ VGEN */
	aml_int(a, 0x80);
	aml_close(a, pk);
	aml_close(a, gpe);
}

/* pci_dev_register routes slot s's INTA# like the _PRT above. */
_Static_assert(GSI_PCI_BASE + GSI_PCI_COUNT <= 24, "PCI GSIs must be IOAPIC pins");

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
	put32(t + 80, PORT_ACPI_GPE0);		 /* GPE0_BLK */
	t[92] = ACPI_GPE0_LEN;			 /* GPE0_BLK_LEN */
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
	gas_io(t + 220, PORT_ACPI_GPE0, ACPI_GPE0_LEN, 0); /* X_GPE0_BLK */
	memcpy(t + 268, "CORRALVM", 8);			   /* hypervisor vendor identity */
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

/* MCFG (PCI Firmware 3.2 §4.1.2): one ECAM window for segment 0, buses 0-255. */
static void build_mcfg(uint8_t *t)
{
	header(t, "MCFG", ACPI_MCFG_LEN, 1);
	put64(t + 44, MEM_PCI_ECAM_BASE);
	put16(t + 52, 0); /* segment */
	t[54] = 0;	  /* start bus */
	t[55] = (uint8_t)((MEM_PCI_ECAM_SIZE >> 20) - 1);
	seal(t, ACPI_MCFG_LEN);
}

int acpi_has_vmgenid(struct machine *m)
{
	const uint8_t *h = gpa_ptr(m, ACPI_DSDT_ADDR, 36);
	if (!h || memcmp(h, "DSDT", 4))
		return 0;
	uint32_t len = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
	if (len < 36 || len > BOOT_ACPI_END - ACPI_DSDT_ADDR)
		return 0;
	const uint8_t *t = gpa_ptr(m, ACPI_DSDT_ADDR, len);
	return t && memmem(t, len, "VMGENCTR", 8) != NULL;
}

int acpi_build(struct machine *m, unsigned ncpus)
{
	uint8_t *rsdp, *xsdt, *fadt, *facs, *madt, *mcfg, *dsdt;
	static struct aml aml; /* 8 KiB: not on the stack */
	uint32_t dsdt_len;

	if (ncpus < 1 || ncpus > MACHINE_MAX_CPUS)
		return -EINVAL;
	aml.len = 0;
	aml.overflow = 0;
	build_dsdt_aml(&aml);
	if (aml.overflow)
		return -ENOSPC;
	dsdt_len = 36 + (uint32_t)aml.len;
	rsdp = gpa_ptr(m, BOOT_ACPI_RSDP, 36);
	xsdt = gpa_ptr(m, ACPI_XSDT_ADDR, ACPI_XSDT_LEN);
	fadt = gpa_ptr(m, ACPI_FADT_ADDR, FADT_LEN);
	facs = gpa_ptr(m, ACPI_FACS_ADDR, FACS_LEN);
	madt = gpa_ptr(m, ACPI_MADT_ADDR, ACPI_MCFG_ADDR - ACPI_MADT_ADDR);
	mcfg = gpa_ptr(m, ACPI_MCFG_ADDR, ACPI_DSDT_ADDR - ACPI_MCFG_ADDR);
	dsdt = gpa_ptr(m, ACPI_DSDT_ADDR, dsdt_len);
	if (!rsdp || !xsdt || !fadt || !facs || !madt || !mcfg || !dsdt || ACPI_DSDT_ADDR + dsdt_len > BOOT_ACPI_END)
		return -ENOMEM;
	/* The whole area is ours: clear it so stale bytes never look like tables. */
	memset(rsdp, 0, 0x40);
	memset(xsdt, 0, ACPI_FADT_ADDR - ACPI_XSDT_ADDR);
	memset(fadt, 0, ACPI_FACS_ADDR - ACPI_FADT_ADDR);
	memset(facs, 0, ACPI_MADT_ADDR - ACPI_FACS_ADDR);
	memset(madt, 0, ACPI_MCFG_ADDR - ACPI_MADT_ADDR);
	memset(mcfg, 0, ACPI_DSDT_ADDR - ACPI_MCFG_ADDR);
	memset(dsdt, 0, dsdt_len);

	header(dsdt, "DSDT", dsdt_len, 2);
	memcpy(dsdt + 36, aml.b, aml.len);
	seal(dsdt, dsdt_len);

	memcpy(facs, "FACS", 4); /* no checksum (§5.2.10) */
	put32(facs + 4, FACS_LEN);
	facs[32] = 2; /* version */

	build_fadt(fadt);
	build_madt(madt, ncpus);
	build_mcfg(mcfg);

	header(xsdt, "XSDT", ACPI_XSDT_LEN, 1);
	put64(xsdt + 36, ACPI_FADT_ADDR);
	put64(xsdt + 44, ACPI_MADT_ADDR);
	put64(xsdt + 52, ACPI_MCFG_ADDR);
	seal(xsdt, ACPI_XSDT_LEN);

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

	/* every boot is a new generation */
	uint8_t *genid = gpa_ptr(m, BOOT_VMGENID_ADDR, BOOT_VMGENID_LEN);
	if (!genid || replay_random(m, genid, BOOT_VMGENID_LEN) < 0)
		return -EIO;
	return 0;
}
