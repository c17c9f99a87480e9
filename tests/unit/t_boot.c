/* Linux loader tests: synthetic bzImages (every payload compression) and ELF
 * kernels loaded into a real machine's RAM; boot_params, e820, page tables,
 * GDT, entry state and ACPI tables parsed back; hostile kernels rejected. */
#include <dirent.h>
#include <errno.h>
#include <lz4.h>
#include <lzma.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "testhelp.h"

#include "boot/boot.h"
#include "boot/boot_internal.h"
#include "cpu/cpu.h"
#include "machine/machine_impl.h"

#define MiB (1ull << 20)
#define KPHYS 0x1000000ull
#define KVIRT 0xffffffff81000000ull
#define KENTRY_OFF 0x200
#define KFILESZ 0x3000
#define KMEMSZ 0x5000

static char tmpdir[] = "/tmp/t_boot.XXXXXX";
static char errbuf[256];
/* the tests' kernels stay out of the user's cache */
static const char *test_kcache;

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)v);
	wr16(p + 2, (uint16_t)(v >> 16));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

/* Byte i of the synthetic kernel image. */
static uint8_t kbyte(size_t i)
{
	return (uint8_t)(i * 7 + (i >> 8) + 1);
}

/* A minimal x86-64 ELF64 executable: one PT_LOAD of KFILESZ bytes (memsz
 * KMEMSZ) linked at KVIRT, loaded at KPHYS. */
static uint8_t *make_elf(size_t *len, uint16_t machine, uint64_t entry)
{
	size_t n = 0x1000 + KFILESZ;
	uint8_t *e = calloc(1, n), *ph = e + 64;

	memcpy(e,
	       "\x7f"
	       "ELF",
	       4);
	e[4] = 2; /* ELFCLASS64 */
	e[5] = 1; /* little endian */
	e[6] = 1;
	wr16(e + 16, 2); /* ET_EXEC */
	wr16(e + 18, machine);
	wr32(e + 20, 1);
	wr64(e + 24, entry);
	wr64(e + 32, 64); /* phoff */
	wr16(e + 52, 64);
	wr16(e + 54, 56);
	wr16(e + 56, 1);
	wr32(ph, 1); /* PT_LOAD */
	wr32(ph + 4, 7);
	wr64(ph + 8, 0x1000);
	wr64(ph + 16, KVIRT);
	wr64(ph + 24, KPHYS);
	wr64(ph + 32, KFILESZ);
	wr64(ph + 40, KMEMSZ);
	for (size_t i = 0; i < KFILESZ; i++)
		e[0x1000 + i] = kbyte(i);
	*len = n;
	return e;
}

/* Compresses in as the kernel build does (payload + le32 size appended). */
static uint8_t *pack(const char *fmt, const uint8_t *in, size_t inlen, size_t *outlen)
{
	size_t cap = inlen * 2 + 1024, n = 0;
	uint8_t *out = malloc(cap + 4);

	if (!strcmp(fmt, "gzip")) {
		z_stream z;
		memset(&z, 0, sizeof(z));
		deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
		z.next_in = (Bytef *)in;
		z.avail_in = (uInt)inlen;
		z.next_out = out;
		z.avail_out = (uInt)cap;
		deflate(&z, Z_FINISH);
		n = z.total_out;
		deflateEnd(&z);
	} else if (!strcmp(fmt, "xz")) {
		lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, in, inlen, out, &n, cap);
	} else if (!strcmp(fmt, "zstd")) {
		n = ZSTD_compress(out, cap, in, inlen, 19);
	} else if (!strcmp(fmt, "lz4")) { /* legacy frame: magic, [le32 len][block]... */
		size_t pos = 0;
		wr32(out, 0x184c2102);
		n = 4;
		while (pos < inlen) {
			size_t chunk = inlen - pos > (8u << 20) ? (8u << 20) : inlen - pos;
			int c = LZ4_compress_default((const char *)in + pos, (char *)out + n + 4, (int)chunk,
						     (int)(cap - n - 4));
			wr32(out + n, (uint32_t)c);
			n += 4 + (size_t)c;
			pos += chunk;
		}
	}
	wr32(out + n, (uint32_t)inlen);
	*outlen = n + 4;
	return out;
}

/* A bzImage: boot sector + one setup sector holding the header, then the
 * payload right at the start of the protected-mode part. */
static uint8_t *make_bzimage(const uint8_t *payload, size_t plen, uint16_t version, size_t *len)
{
	size_t n = 1024 + plen;
	uint8_t *b = calloc(1, n);

	b[0x1f1] = 1; /* setup_sects */
	wr16(b + 0x1fe, 0xaa55);
	b[0x200] = 0xeb;
	b[0x201] = 0x6a; /* jump to 0x26c: the header's end */
	memcpy(b + 0x202, "HdrS", 4);
	wr16(b + 0x206, version);
	b[0x211] = 1;		     /* LOADED_HIGH */
	wr32(b + 0x22c, 0x7fffffff); /* initrd_addr_max */
	wr32(b + 0x230, 0x200000);
	b[0x234] = 1;
	wr16(b + 0x236, 0x7f); /* xloadflags: XLF_KERNEL_64 ... */
	wr32(b + 0x238, 2047); /* cmdline_size */
	wr32(b + 0x248, 0);    /* payload_offset */
	wr32(b + 0x24c, (uint32_t)plen);
	wr32(b + 0x260, 0x2000000); /* init_size */
	memcpy(b + 1024, payload, plen);
	*len = n;
	return b;
}

static void write_file(const char *name, const void *p, size_t n, char *path, size_t pathlen)
{
	FILE *f;

	snprintf(path, pathlen, "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	if (!f)
		abort();
	if (n && fwrite(p, 1, n, f) != n)
		abort();
	fclose(f);
}

static struct machine *new_machine(uint64_t mem, unsigned ncpus)
{
	struct machine_config mc = {.mem_size = mem, .ncpus = ncpus, .serial_out_fd = -1};
	struct machine *m = NULL;

	if (machine_create(&m, &mc) < 0)
		abort();
	return m;
}

/* Boots kernel bytes k (and optional initrd) in a fresh machine. */
static int boot_bytes(const uint8_t *k, size_t klen, const void *rd, size_t rdlen, const char *cmdline, uint64_t mem,
		      unsigned ncpus, struct machine **mp, struct cpu_state *s)
{
	char kpath[256], rpath[256];
	struct boot_config cfg = {kpath, rd ? rpath : NULL, cmdline, mem, ncpus, test_kcache, 0};
	struct machine *m = new_machine(mem, ncpus ? ncpus : 1);
	struct cpu_state dummy;
	int ret;

	write_file("kernel", k, klen, kpath, sizeof(kpath));
	if (rd)
		write_file("initrd", rd, rdlen, rpath, sizeof(rpath));
	errbuf[0] = 0;
	memset(s ? s : &dummy, 0, sizeof(dummy));
	ret = boot_linux(m, s ? s : &dummy, &cfg, errbuf, sizeof(errbuf));
	if (ret < 0 && !errbuf[0])
		strcpy(errbuf, "(no message)");
	if (mp)
		*mp = m;
	else
		machine_destroy(m);
	return ret;
}

/* Translates va through the guest's 4-level page tables (no permissions). */
static uint64_t walk(struct machine *m, uint64_t cr3, uint64_t va)
{
	uint64_t table = cr3 & ~0xfffull;
	static const unsigned shifts[4] = {39, 30, 21, 12};

	for (int l = 0; l < 4; l++) {
		uint8_t *p = gpa_ptr(m, table + ((va >> shifts[l]) & 511) * 8, 8);
		uint64_t e;
		if (!p)
			return ~0ull;
		e = rd64(p);
		if (!(e & 1))
			return ~0ull;
		if (l > 0 && l < 3 && (e & 0x80)) {
			uint64_t mask = (1ull << shifts[l]) - 1;
			return ((e & 0x000ffffffffff000ull) & ~mask) | (va & mask);
		}
		table = e & 0x000ffffffffff000ull;
	}
	return table | (va & 0xfff);
}

static int sum_ok(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s = (uint8_t)(s + *p++);
	return s == 0;
}

/* Checks everything boot_linux built for a kernel loaded from k. */
static void check_boot(struct machine *m, const struct cpu_state *s, uint64_t mem, const char *cmdline,
		       const uint8_t *rd, size_t rdlen)
{
	uint8_t *zp = gpa_ptr(m, BOOT_ZERO_PAGE, 4096), *k = gpa_ptr(m, KPHYS, KMEMSZ);
	uint64_t low_end = mem < MEM_LOW_END ? mem : MEM_LOW_END;
	unsigned n, i;

	/* kernel image and bss */
	for (i = 0; i < KFILESZ; i++)
		if (k[i] != kbyte(i))
			break;
	CHECK_EQ_U64(i, KFILESZ);
	for (i = KFILESZ; i < KMEMSZ; i++)
		if (k[i])
			break;
	CHECK_EQ_U64(i, KMEMSZ);

	/* setup header and loader fields */
	CHECK(!memcmp(zp + 0x202, "HdrS", 4));
	CHECK_EQ_U64(zp[0x210], 0xff);
	CHECK(zp[0x211] & 1);
	CHECK_EQ_U64(rd32(zp + 0x228), BOOT_CMDLINE);
	CHECK(!strcmp((char *)gpa_ptr(m, BOOT_CMDLINE, 1), cmdline));
	if (rd) {
		uint64_t at = rd32(zp + 0x218) | (uint64_t)rd32(zp + 0xc0) << 32;
		CHECK_EQ_U64(rd32(zp + 0x21c), rdlen);
		CHECK_EQ_U64(at & 0xfff, 0);
		CHECK(at >= KPHYS + KMEMSZ);
		uint64_t top = (uint64_t)rd32(zp + 0x22c) + 1;
		if (top > low_end)
			top = low_end;
		CHECK(at + rdlen <= top);
		CHECK(top - (at + rdlen) < 4096); /* placed high */
		CHECK(!memcmp(gpa_ptr(m, at, rdlen), rd, rdlen));
	} else {
		CHECK_EQ_U64(rd32(zp + 0x218), 0);
	}
	CHECK_EQ_U64(rd64(zp + 0x070), BOOT_ACPI_RSDP);

	/* e820: sorted, non-overlapping, the PC map of machine.h */
	n = zp[0x1e8];
	CHECK_EQ_U64(n, mem > MEM_LOW_END ? 5 : 4); /* with the ECAM reservation */
	uint64_t ram = 0, prev_end = 0;
	for (i = 0; i < n && i < 128; i++) {
		uint8_t *e = zp + 0x2d0 + i * 20;
		uint64_t a = rd64(e), sz = rd64(e + 8);
		uint32_t t = rd32(e + 16);
		CHECK(a >= prev_end);
		prev_end = a + sz;
		if (t == 1) {
			ram += sz;
			CHECK(gpa_ptr(m, a, sz) != NULL);
		} else {
			CHECK_EQ_U64(t, 2);
		}
	}
	CHECK_EQ_U64(rd64(zp + 0x2d0), 0);
	CHECK_EQ_U64(rd64(zp + 0x2d0 + 8), MEM_EBDA_START);
	CHECK_EQ_U64(rd64(zp + 0x2d0 + 20), MEM_EBDA_START);
	CHECK_EQ_U64(rd64(zp + 0x2d0 + 40), 0x100000);
	CHECK_EQ_U64(ram, mem - (0x100000 - MEM_EBDA_START));

	/* entry state: the 64-bit boot protocol */
	CHECK_EQ_U64(s->rip, KPHYS + KENTRY_OFF);
	CHECK_EQ_U64(s->gpr[R_RSI], BOOT_ZERO_PAGE);
	CHECK_EQ_U64(s->rflags, 2);
	CHECK((s->cr0 & 0x80000001u) == 0x80000001u);
	CHECK(s->cr4 & 0x20);
	CHECK((s->efer & 0x500) == 0x500);
	CHECK_EQ_U64(s->seg[SEG_CS].sel, 0x10);
	CHECK(s->seg[SEG_CS].attr & 0x2000); /* L */
	CHECK_EQ_U64(s->seg[SEG_DS].sel, 0x18);
	CHECK_EQ_U64(s->seg[SEG_SS].sel, 0x18);
	CHECK_EQ_U64(s->seg[SEG_ES].sel, 0x18);

	/* GDT: the selectors name descriptors that agree with the segment state */
	uint8_t *gdt = gpa_ptr(m, s->gdtr.base, s->gdtr.limit + 1u);
	CHECK(gdt != NULL && s->gdtr.limit >= 0x1f);
	if (gdt) {
		uint64_t cs = rd64(gdt + 0x10), ds = rd64(gdt + 0x18);
		CHECK_EQ_U64((cs >> 40) & 0xff, s->seg[SEG_CS].attr & 0xff);
		CHECK_EQ_U64((cs >> 52) & 0xf, s->seg[SEG_CS].attr >> 12);
		CHECK_EQ_U64((ds >> 40) & 0xff, s->seg[SEG_DS].attr & 0xff);
		CHECK(cs & (1ull << 53));    /* L */
		CHECK(!(cs & (1ull << 54))); /* D must be 0 with L */
		CHECK(ds & (1ull << 47));    /* P */
	}

	/* page tables: identity over the first 4 GiB */
	static const uint64_t vas[] = {0,	   0x7000,	    KPHYS + 0x123,	   0x3fffffff,
				       0x40000000, MEM_IOAPIC_BASE, MEM_LAPIC_BASE + 0x30, 0xfffff000};
	for (i = 0; i < sizeof(vas) / sizeof(vas[0]); i++)
		CHECK_EQ_U64(walk(m, s->cr3, vas[i]), vas[i]);
	CHECK_EQ_U64(walk(m, s->cr3, s->rip), s->rip);
	CHECK_EQ_U64(walk(m, s->cr3, s->gdtr.base), s->gdtr.base);
}

static void test_formats(void)
{
	static const char *const fmts[] = {"gzip", "xz", "zstd", "lz4"};
	size_t elen, plen, blen;
	uint8_t *elf = make_elf(&elen, 62, KVIRT + KENTRY_OFF);
	uint8_t rd[10000];

	for (size_t i = 0; i < sizeof(rd); i++)
		rd[i] = (uint8_t)(i * 13);
	for (unsigned f = 0; f < 4; f++) {
		uint8_t *p = pack(fmts[f], elf, elen, &plen);
		uint8_t *bz = make_bzimage(p, plen, 0x20f, &blen);
		struct machine *m;
		struct cpu_state s;
		int ret = boot_bytes(bz, blen, rd, sizeof(rd), "console=ttyS0 quiet", 64 * MiB, 1, &m, &s);
		if (ret < 0)
			fprintf(stderr, "  %s: %s\n", fmts[f], errbuf);
		CHECK_EQ_U64(ret, 0);
		if (!ret)
			check_boot(m, &s, 64 * MiB, "console=ttyS0 quiet", rd, sizeof(rd));
		machine_destroy(m);
		free(p);
		free(bz);
	}
	free(elf);
}

static void test_elf_kernel(void)
{
	size_t elen;
	uint8_t *elf = make_elf(&elen, 62, KVIRT + KENTRY_OFF);
	struct machine *m;
	struct cpu_state s;

	CHECK_EQ_U64(boot_bytes(elf, elen, NULL, 0, "", 48 * MiB, 1, &m, &s), 0);
	check_boot(m, &s, 48 * MiB, "", NULL, 0);
	machine_destroy(m);
	/* a vmlinux whose e_entry is physical */
	free(elf);
	elf = make_elf(&elen, 62, KPHYS + KENTRY_OFF);
	CHECK_EQ_U64(boot_bytes(elf, elen, NULL, 0, "x", 48 * MiB, 1, &m, &s), 0);
	CHECK_EQ_U64(s.rip, KPHYS + KENTRY_OFF);
	machine_destroy(m);
	/* no command line given: the default one */
	CHECK_EQ_U64(boot_bytes(elf, elen, NULL, 0, NULL, 48 * MiB, 1, &m, &s), 0);
	CHECK(!strcmp((char *)gpa_ptr(m, BOOT_CMDLINE, 1), BOOT_DEFAULT_CMDLINE));
	machine_destroy(m);
	free(elf);
}

/* More than 3 GiB of RAM: the rest is above the hole, and e820 says so. */
static void test_high_memory(void)
{
	size_t elen;
	uint8_t *elf = make_elf(&elen, 62, KVIRT + KENTRY_OFF);
	uint64_t mem = MEM_LOW_END + 256 * MiB;
	struct machine *m;
	struct cpu_state s;
	uint8_t rd[100] = {1, 2, 3};

	CHECK_EQ_U64(boot_bytes(elf, elen, rd, sizeof(rd), "a b c", mem, 2, &m, &s), 0);
	check_boot(m, &s, mem, "a b c", rd, sizeof(rd));
	uint8_t *zp = gpa_ptr(m, BOOT_ZERO_PAGE, 4096);
	CHECK_EQ_U64(rd64(zp + 0x2d0 + 80), MEM_HIGH_START); /* after the ECAM entry */
	CHECK_EQ_U64(rd64(zp + 0x2d0 + 88), 256 * MiB);
	machine_destroy(m);
	free(elf);
}

/* An AML PkgLength (ACPI 6.4 §20.2.4): its value and encoded size. */
static uint32_t aml_pkglen(const uint8_t *p, unsigned *nbytes)
{
	unsigned n = (p[0] >> 6) + 1;
	uint32_t len = n == 1 ? p[0] & 0x3fu : p[0] & 0xfu;

	for (unsigned i = 1; i < n; i++)
		len |= (uint32_t)p[i] << (4 + 8 * (i - 1));
	*nbytes = n;
	return len;
}

/* The DSDT's term list: \_S5 package, then \_SB with the PCI0 host bridge,
 * the MRES motherboard resources and the VM generation ID device VGEN, then
 * \_GPE with the method of GPE 0; every PkgLength must end exactly where the
 * next object starts. */
static void check_aml(const uint8_t *d, uint32_t dl)
{
	uint32_t pos = 36, len, end, pci_end, sb_end;
	unsigned nb;

	CHECK(!memcmp(d + pos, "\x08_S5_\x12", 6));
	pos += 5;
	len = aml_pkglen(d + pos + 1, &nb);
	CHECK_EQ_U64(d[pos + 1 + nb], 4); /* NumElements */
	pos += 1 + len;
	CHECK(pos < dl);
	CHECK_EQ_U64(d[pos], 0x10); /* ScopeOp */
	len = aml_pkglen(d + pos + 1, &nb);
	sb_end = pos + 1 + len;
	CHECK(sb_end < dl);
	pos += 1 + nb;
	CHECK(!memcmp(d + pos, "\\_SB_", 5));
	pos += 5;
	CHECK(d[pos] == 0x5b && d[pos + 1] == 0x82); /* DeviceOp */
	len = aml_pkglen(d + pos + 2, &nb);
	end = pci_end = pos + 2 + len;
	CHECK(end < dl);
	pos += 2 + nb;
	CHECK(!memcmp(d + pos, "PCI0\x08_HID\x0c\x41\xd0\x0a\x08", 14)); /* EisaId PNP0A08 */
	CHECK(memmem(d + pos, end - pos, "\x08_CID\x0c\x41\xd0\x0a\x03", 10) != NULL);
	const uint8_t *crs = memmem(d + pos, end - pos, "_CRS\x11", 5);
	CHECK(crs != NULL);
	if (crs) {
		len = aml_pkglen(crs + 5, &nb);
		CHECK(crs[5 + len] == 0x08 && !memcmp(crs + 6 + len, "_PRT", 4)); /* _PRT follows */
		CHECK_EQ_U64(crs[5 + nb], 0x0a);
		CHECK_EQ_U64(crs[6 + nb], len - nb - 2);		  /* buffer size */
		CHECK(crs[5 + len - 2] == 0x79 && crs[5 + len - 1] == 0); /* End Tag */
		/* the memory window is machine.h's */
		const uint8_t *mw = memmem(crs, len, "\x87\x17\x00\x00", 4);
		CHECK(mw && rd32(mw + 10) == MEM_PCI_MMIO_BASE && rd32(mw + 14) == MEM_PCI_MMIO_END);
		const uint8_t *prt = crs + 5 + len + 5;
		CHECK_EQ_U64(prt[0], 0x12);
		len = aml_pkglen(prt + 1, &nb);
		CHECK_EQ_U64((uint32_t)(prt + 1 - d) + len, pci_end); /* _PRT is the last name */
		CHECK_EQ_U64(prt[1 + nb], 128);			      /* 32 slots x 4 pins */
		/* slot 2 INTA: { 0x2ffff, Zero, Zero, 18 } */
		CHECK(memmem(prt, len, "\x12\x0b\x04\x0c\xff\xff\x02\x00\x00\x00\x0a\x12", 12) != NULL);
	}
	pos = pci_end;
	CHECK(d[pos] == 0x5b && d[pos + 1] == 0x82);
	len = aml_pkglen(d + pos + 2, &nb);
	end = pos + 2 + len;
	CHECK(end < sb_end);
	CHECK(!memcmp(d + pos + 2 + nb, "MRES\x08_HID\x0c\x41\xd0\x0c\x02", 14)); /* PNP0C02 */
	const uint8_t *ecam = memmem(d + pos, dl - pos, "\x86\x09\x00\x01", 4);
	CHECK(ecam && rd32(ecam + 4) == MEM_PCI_ECAM_BASE && rd32(ecam + 8) == MEM_PCI_ECAM_SIZE);
	/* VGEN: the names Linux's vmgenid driver matches, and ADDR, a method
	 * returning Package (2) { low, high } of the ID's address */
	pos = end;
	CHECK(d[pos] == 0x5b && d[pos + 1] == 0x82);
	len = aml_pkglen(d + pos + 2, &nb);
	CHECK_EQ_U64(pos + 2 + len, sb_end);
	pos += 2 + nb;
	CHECK(!memcmp(d + pos, "VGEN\x08_HID\x0dVMGENCTR\0", 19));
	CHECK(memmem(d + pos, sb_end - pos, "\x08_CID\x0dVM_Gen_Counter\0", 21) != NULL);
	const uint8_t *addr = memmem(d + pos, sb_end - pos, "\x14", 1);
	CHECK(addr != NULL);
	if (addr) {
		len = aml_pkglen(addr + 1, &nb);
		CHECK_EQ_U64((uint32_t)(addr + 1 - d) + len, sb_end);
		addr += 1 + nb;
		CHECK(!memcmp(addr, "ADDR\x00\xa4\x12", 7));
		CHECK_EQ_U64(addr[7 + nb], 2); /* NumElements */
		CHECK(addr[8 + nb] == 0x0c && rd32(addr + 9 + nb) == BOOT_VMGENID_ADDR && addr[13 + nb] == 0x00);
	}
	/* \_GPE._E00 notifies \_SB.VGEN with 0x80 */
	pos = sb_end;
	CHECK_EQ_U64(d[pos], 0x10);
	len = aml_pkglen(d + pos + 1, &nb);
	CHECK_EQ_U64(pos + 1 + len, dl);
	pos += 1 + nb;
	CHECK(!memcmp(d + pos, "\\_GPE\x14", 6));
	CHECK(memmem(d + pos, dl - pos, "_E00\x00\x86\\\x2e_SB_VGEN\x0a\x80", 18) != NULL);
}

/* ACPI: find the RSDP the way the kernel's legacy scan does, then follow
 * and verify every pointer, length and checksum. */
static void check_acpi(struct machine *m, unsigned ncpus)
{
	uint8_t *rsdp = NULL, *xsdt, *fadt = NULL, *madt = NULL, *mcfg = NULL, *facs, *dsdt;
	uint64_t a;

	for (a = 0xe0000; a < 0x100000; a += 16) {
		uint8_t *p = gpa_ptr(m, a, 36);
		if (p && !memcmp(p, "RSD PTR ", 8) && sum_ok(p, 20)) {
			rsdp = p;
			break;
		}
	}
	CHECK(rsdp != NULL);
	if (!rsdp)
		return;
	CHECK_EQ_U64(a, BOOT_ACPI_RSDP);
	CHECK_EQ_U64(rsdp[15], 2);
	CHECK_EQ_U64(rd32(rsdp + 20), 36);
	CHECK(sum_ok(rsdp, 36));
	xsdt = gpa_ptr(m, rd64(rsdp + 24), 36);
	CHECK(xsdt && !memcmp(xsdt, "XSDT", 4));
	if (!xsdt)
		return;
	uint32_t xlen = rd32(xsdt + 4);
	CHECK(xlen >= 36 && (xlen - 36) % 8 == 0);
	CHECK(sum_ok(xsdt, xlen));
	for (uint32_t off = 36; off + 8 <= xlen; off += 8) {
		uint64_t ta = rd64(xsdt + off);
		uint8_t *t = gpa_ptr(m, ta, 36);
		CHECK(t != NULL);
		if (!t)
			continue;
		uint32_t tl = rd32(t + 4);
		CHECK(ta + tl <= BOOT_ACPI_END);
		t = gpa_ptr(m, ta, tl);
		CHECK(sum_ok(t, tl));
		if (!memcmp(t, "FACP", 4))
			fadt = t;
		else if (!memcmp(t, "MCFG", 4))
			mcfg = t;
		else if (!memcmp(t, "APIC", 4))
			madt = t;
	}
	CHECK(fadt && madt && mcfg);
	if (!fadt || !madt)
		return;
	/* MCFG: one ECAM allocation, segment 0, buses 0-255 */
	if (mcfg) {
		CHECK_EQ_U64(rd32(mcfg + 4), 60);
		CHECK_EQ_U64(rd64(mcfg + 44), MEM_PCI_ECAM_BASE);
		CHECK(mcfg[54] == 0 && mcfg[55] == 0xff);
	}

	/* FADT */
	CHECK(rd32(fadt + 4) >= 244);
	CHECK(fadt[8] >= 5);
	CHECK_EQ_U64(rd32(fadt + 56), PORT_ACPI_PM);
	CHECK_EQ_U64(fadt[88], 4);
	CHECK_EQ_U64(rd32(fadt + 64), PORT_ACPI_PM1_CNT);
	CHECK_EQ_U64(fadt[89], 2);
	CHECK_EQ_U64(rd32(fadt + 76), PORT_ACPI_PM_TMR);
	CHECK_EQ_U64(fadt[91], 4);
	CHECK_EQ_U64(rd32(fadt + 46) & 0xffff, IRQ_ACPI_SCI);
	uint32_t flags = rd32(fadt + 112);
	CHECK(flags & (1u << 8));     /* TMR_VAL_EXT */
	CHECK(flags & (1u << 10));    /* RESET_REG_SUP */
	CHECK(!(flags & (1u << 4)));  /* fixed power button */
	CHECK(!(flags & (1u << 20))); /* not hardware-reduced */
	CHECK_EQ_U64(fadt[116], 1);   /* RESET_REG in I/O space */
	CHECK_EQ_U64(rd64(fadt + 120), PORT_ACPI_RESET);
	CHECK_EQ_U64(fadt[128], ACPI_RESET_VALUE);
	uint16_t boot_arch = (uint16_t)(fadt[109] | fadt[110] << 8);
	CHECK(boot_arch & 2); /* 8042 */
	CHECK(boot_arch & 4); /* no VGA */
	CHECK_EQ_U64(rd64(fadt + 140), rd32(fadt + 40));
	CHECK_EQ_U64(rd64(fadt + 132), rd32(fadt + 36));
	CHECK_EQ_U64(rd64(fadt + 148 + 4), PORT_ACPI_PM);
	CHECK_EQ_U64(rd64(fadt + 172 + 4), PORT_ACPI_PM1_CNT);
	CHECK_EQ_U64(rd64(fadt + 208 + 4), PORT_ACPI_PM_TMR);
	CHECK_EQ_U64(fadt[208 + 1], 32);
	/* GPE0: 16 events, status then enable, in PM's I/O range */
	CHECK_EQ_U64(rd32(fadt + 80), PORT_ACPI_GPE0);
	CHECK_EQ_U64(fadt[92], ACPI_GPE0_LEN);
	CHECK_EQ_U64(rd64(fadt + 220 + 4), PORT_ACPI_GPE0);
	CHECK_EQ_U64(fadt[220 + 1], 8 * ACPI_GPE0_LEN);
	facs = gpa_ptr(m, rd64(fadt + 132), 64);
	CHECK(facs && !memcmp(facs, "FACS", 4) && rd32(facs + 4) >= 64);
	CHECK_EQ_U64(rd64(fadt + 132) & 63, 0);

	/* DSDT: header, checksum and the \_S5 package */
	dsdt = gpa_ptr(m, rd64(fadt + 140), 36);
	CHECK(dsdt && !memcmp(dsdt, "DSDT", 4));
	if (dsdt) {
		uint32_t dl = rd32(dsdt + 4);
		dsdt = gpa_ptr(m, rd64(fadt + 140), dl);
		CHECK(sum_ok(dsdt, dl));
		uint8_t *s5 = memmem(dsdt + 36, dl - 36, "_S5_", 4);
		CHECK(s5 != NULL);
		if (s5) {
			CHECK_EQ_U64(s5[-1], 0x08); /* NameOp */
			CHECK_EQ_U64(s5[4], 0x12);  /* PackageOp */
			CHECK(s5 + 5 + s5[5] <= dsdt + dl);
			CHECK_EQ_U64(s5[7], 0x0a); /* BytePrefix */
			CHECK_EQ_U64(s5[8], ACPI_SLP_TYP_S5);
		}
	}
	if (dsdt)
		check_aml(dsdt, rd32(dsdt + 4));
	CHECK_EQ_U64((ACPI_PM1_CNT_S5 >> 10) & 7, 5);
	CHECK(ACPI_PM1_CNT_S5 & (1u << 13));

	/* MADT */
	uint32_t ml = rd32(madt + 4), off;
	unsigned lapics = 0, ioapics = 0, isos = 0, nmis = 0;
	uint8_t seen[256] = {0};
	CHECK_EQ_U64(rd32(madt + 36), MEM_LAPIC_BASE);
	CHECK(rd32(madt + 40) & 1);
	for (off = 44; off + 2 <= ml;) {
		uint8_t type = madt[off], len = madt[off + 1];
		CHECK(len >= 2 && off + len <= ml);
		if (len < 2)
			break;
		if (type == 0) {
			CHECK_EQ_U64(len, 8);
			CHECK(rd32(madt + off + 4) & 1);
			CHECK(!seen[madt[off + 3]]);
			seen[madt[off + 3]] = 1;
			CHECK(madt[off + 3] < ncpus);
			lapics++;
		} else if (type == 1) {
			CHECK_EQ_U64(len, 12);
			CHECK_EQ_U64(rd32(madt + off + 4), MEM_IOAPIC_BASE);
			CHECK_EQ_U64(rd32(madt + off + 8), 0);
			CHECK(!seen[madt[off + 2]]); /* unique APIC ID */
			ioapics++;
		} else if (type == 2) {
			CHECK_EQ_U64(len, 10);
			uint32_t gsi = rd32(madt + off + 4);
			uint16_t fl = (uint16_t)(madt[off + 8] | madt[off + 9] << 8);
			if (madt[off + 3] == 0) {
				CHECK_EQ_U64(gsi, 2);
				CHECK((fl >> 2 & 3) != 3); /* not level */
			} else if (madt[off + 3] == IRQ_ACPI_SCI) {
				CHECK_EQ_U64(gsi, IRQ_ACPI_SCI);
				CHECK_EQ_U64(fl >> 2 & 3, 3); /* level */
				CHECK_EQ_U64(fl & 3, 1);      /* active high */
			}
			isos++;
		} else if (type == 4) {
			CHECK_EQ_U64(len, 6);
			CHECK_EQ_U64(madt[off + 2], 0xff);
			CHECK_EQ_U64(madt[off + 5], 1);
			nmis++;
		}
		off += len;
	}
	CHECK_EQ_U64(off, ml);
	CHECK_EQ_U64(lapics, ncpus);
	CHECK_EQ_U64(ioapics, 1);
	CHECK_EQ_U64(isos, 2);
	CHECK_EQ_U64(nmis, 1);
}

static void test_acpi(void)
{
	static const unsigned counts[] = {1, 2, 7, MACHINE_MAX_CPUS};
	uint8_t ids[4][BOOT_VMGENID_LEN];

	for (unsigned i = 0; i < 4; i++) {
		struct machine *m = new_machine(32 * MiB, counts[i]);
		CHECK_EQ_U64(acpi_has_vmgenid(m), 0);
		CHECK_EQ_U64(acpi_build(m, counts[i]), 0);
		check_acpi(m, counts[i]);
		CHECK_EQ_U64(acpi_has_vmgenid(m), 1);
		memcpy(ids[i], gpa_ptr(m, BOOT_VMGENID_ADDR, BOOT_VMGENID_LEN), BOOT_VMGENID_LEN);
		/* a DSDT whose length runs past the tables is not trusted */
		uint8_t *dsdt = gpa_ptr(m, 0xe0800, 8);
		uint32_t saved;
		memcpy(&saved, dsdt + 4, 4);
		memcpy(dsdt + 4, "\xff\xff\x0f\x00", 4);
		CHECK_EQ_U64(acpi_has_vmgenid(m), 0);
		memcpy(dsdt + 4, &saved, 4);
		machine_destroy(m);
	}
	/* every boot is a new generation */
	for (unsigned i = 0; i < 4; i++)
		for (unsigned j = i + 1; j < 4; j++)
			CHECK(memcmp(ids[i], ids[j], BOOT_VMGENID_LEN) != 0);
	/* and as boot_linux leaves them */
	size_t elen;
	uint8_t *elf = make_elf(&elen, 62, KVIRT + KENTRY_OFF);
	struct machine *m;
	struct cpu_state s;
	CHECK_EQ_U64(boot_bytes(elf, elen, NULL, 0, "", 64 * MiB, 3, &m, &s), 0);
	check_acpi(m, 3);
	machine_destroy(m);
	free(elf);
}

/* An error: the return value and a message containing want. */
static void expect_err(int ret, int want_errno, const char *want)
{
	CHECK(ret < 0);
	if (want_errno)
		CHECK_EQ_U64(-ret, want_errno);
	CHECK(strstr(errbuf, want) != NULL);
	if (!strstr(errbuf, want))
		fprintf(stderr, "  message was: %s (wanted '%s')\n", errbuf, want);
	CHECK(strchr(errbuf, '\n') == NULL);
}

static void test_hostile(void)
{
	size_t elen, plen, blen;
	uint8_t *elf = make_elf(&elen, 62, KVIRT + KENTRY_OFF);
	uint8_t *p = pack("gzip", elf, elen, &plen);
	uint8_t *bz = make_bzimage(p, plen, 0x20f, &blen), *t = malloc(blen);
	uint8_t junk[64] = {0x34, 0x12};

	expect_err(boot_bytes(junk, sizeof(junk), NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC,
		   "not a bzImage or ELF file (bad magic 0x00001234)");
	expect_err(boot_bytes(junk, 0, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "bad magic");
	expect_err(boot_bytes(bz, 0x210, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "truncated setup header");
	expect_err(boot_bytes(bz, blen - 10, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "outside the");

	memcpy(t, bz, blen);
	wr16(t + 0x206, 0x205);
	expect_err(boot_bytes(t, blen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "too old");
	memcpy(t, bz, blen);
	wr16(t + 0x236, 0);
	expect_err(boot_bytes(t, blen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "not a 64-bit kernel");
	memcpy(t, bz, blen);
	wr32(t + 0x248, 0xfffffff0);
	expect_err(boot_bytes(t, blen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "outside the");
	memcpy(t, bz, blen);
	wr32(t + 0x24c, 0xffffffff);
	expect_err(boot_bytes(t, blen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "outside the");
	memcpy(t, bz, blen);
	t[0x1f1] = 0xff; /* setup_sects past the end */
	expect_err(boot_bytes(t, blen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "outside the");
	memcpy(t, bz, blen);
	memcpy(t + 1024, "BZh9", 4);
	expect_err(boot_bytes(t, blen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC,
		   "bzip2-compressed payload is not supported");
	memcpy(t, bz, blen);
	memset(t + 1024 + 20, 0x55, 40); /* corrupt deflate data */
	expect_err(boot_bytes(t, blen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "gzip payload");
	/* truncated xz and zstd streams */
	{
		static const char *const f2[] = {"xz", "zstd", "lz4"};
		for (int f = 0; f < 3; f++) {
			size_t l2, b2;
			uint8_t *p2 = pack(f2[f], elf, elen, &l2);
			uint8_t *bz2 = make_bzimage(p2, l2 / 2, 0x20f, &b2);
			expect_err(boot_bytes(bz2, b2, NULL, 0, "", 64 * MiB, 1, NULL, NULL), 0, "payload");
			free(p2);
			free(bz2);
		}
	}

	/* ELF problems */
	uint8_t *e2 = malloc(elen);
	memcpy(e2, elf, elen);
	wr16(e2 + 18, 183); /* EM_AARCH64 */
	expect_err(boot_bytes(e2, elen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "not an x86-64 kernel");
	memcpy(e2, elf, elen);
	e2[4] = 1; /* ELFCLASS32 */
	expect_err(boot_bytes(e2, elen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "not an x86-64 kernel");
	memcpy(e2, elf, elen);
	wr64(e2 + 32, 0xfffffffffffffff0ull); /* phoff */
	expect_err(boot_bytes(e2, elen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "program headers");
	memcpy(e2, elf, elen);
	wr16(e2 + 56, 0xffff); /* phnum */
	expect_err(boot_bytes(e2, elen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "program headers");
	memcpy(e2, elf, elen);
	wr64(e2 + 64 + 32, 0xffffffffffffull); /* filesz */
	expect_err(boot_bytes(e2, elen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "bounds");
	memcpy(e2, elf, elen);
	wr64(e2 + 64 + 24, 0xfffffffffffff000ull); /* paddr wraps */
	expect_err(boot_bytes(e2, elen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), 0, "outside guest RAM");
	memcpy(e2, elf, elen);
	wr64(e2 + 64 + 24, 0x100); /* over the boot data */
	expect_err(boot_bytes(e2, elen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "boot data");
	memcpy(e2, elf, elen);
	wr64(e2 + 24, 0x1234); /* entry in no segment */
	expect_err(boot_bytes(e2, elen, NULL, 0, "", 64 * MiB, 1, NULL, NULL), ENOEXEC, "entry");
	free(e2);

	/* the kernel does not fit: 16 MiB of RAM ends below its 16 MiB address */
	expect_err(boot_bytes(elf, elen, NULL, 0, "", 16 * MiB, 1, NULL, NULL), ENOMEM,
		   "needs more guest RAM: it loads up to 17 MiB");
	/* the initrd does not fit beside the kernel */
	{
		size_t big = 40 * MiB;
		uint8_t *rd = calloc(1, big);
		expect_err(boot_bytes(bz, blen, rd, big, "", 48 * MiB, 1, NULL, NULL), ENOMEM, "do not fit");
		free(rd);
	}
	/* command line longer than the header allows */
	{
		char cl[3000];
		memset(cl, 'a', sizeof(cl) - 1);
		cl[sizeof(cl) - 1] = 0;
		expect_err(boot_bytes(bz, blen, NULL, 0, cl, 64 * MiB, 1, NULL, NULL), E2BIG, "command line");
	}
	expect_err(boot_bytes(bz, blen, NULL, 0, "", 64 * MiB, 0, NULL, NULL), EINVAL, "CPUs");

	/* missing files */
	{
		struct machine *m = new_machine(32 * MiB, 1);
		struct cpu_state s;
		struct boot_config cfg = {"/nonexistent/vmlinuz", NULL, "", 32 * MiB, 1, NULL, 0};
		expect_err(boot_linux(m, &s, &cfg, errbuf, sizeof(errbuf)), ENOENT, "kernel '/nonexistent/vmlinuz'");
		cfg.kernel = tmpdir;
		expect_err(boot_linux(m, &s, &cfg, errbuf, sizeof(errbuf)), 0, "not a regular file");
		/* a FIFO is refused at once, not waited on for a writer */
		char fifo[4200];
		snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
		CHECK(mkfifo(fifo, 0600) == 0);
		cfg.kernel = fifo;
		expect_err(boot_linux(m, &s, &cfg, errbuf, sizeof(errbuf)), 0, "not a regular file");
		unlink(fifo);
		machine_destroy(m);
	}
	free(t);
	free(bz);
	free(p);
	free(elf);
}

/* A gzip bomb: the payload claims far more than guest RAM. Decompression
 * stops at the cap with a clear error, whatever the stream says. */
static void test_bomb(void)
{
	size_t n = 256 * MiB, plen, blen;
	uint8_t *zeros = calloc(1, n), *out = malloc(n / 100 + 4096);
	z_stream z;

	memset(&z, 0, sizeof(z));
	deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	z.next_in = zeros;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)(n / 100 + 4096);
	CHECK_EQ_U64(deflate(&z, Z_FINISH), Z_STREAM_END);
	plen = z.total_out;
	deflateEnd(&z);
	free(zeros);
	uint8_t *bz = make_bzimage(out, plen, 0x20f, &blen);
	expect_err(boot_bytes(bz, blen, NULL, 0, "", 32 * MiB, 1, NULL, NULL), ENOMEM,
		   "decompresses to more than 32 MiB");
	free(bz);
	free(out);
}

/* Random corruption of a valid bzImage and ELF: errors or success, never a
 * crash (the ASan build checks every access). */
static void test_mutations(void)
{
	size_t elen, plen, blen;
	uint8_t *elf = make_elf(&elen, 62, KVIRT + KENTRY_OFF);
	uint8_t *p = pack("xz", elf, elen, &plen);
	uint8_t *bz = make_bzimage(p, plen, 0x20f, &blen), *t = malloc(blen > elen ? blen : elen);
	unsigned seed = 12345, ok = 0, bad = 0;

	for (int iter = 0; iter < 600; iter++) {
		const uint8_t *src = iter & 1 ? elf : bz;
		size_t len = iter & 1 ? elen : blen;
		memcpy(t, src, len);
		for (int k = 0; k < 1 + iter % 4; k++) {
			seed = seed * 1103515245 + 12345;
			/* mostly the headers, sometimes anywhere */
			size_t at = (seed >> 8) % (k ? len : (iter & 1 ? 128 : 0x270));
			seed = seed * 1103515245 + 12345;
			t[at] = (uint8_t)(seed >> 16);
		}
		if (boot_bytes(t, len, NULL, 0, "", 32 * MiB, 1, NULL, NULL) == 0)
			ok++;
		else
			bad++;
		CHECK(errbuf[0] || ok);
	}
	CHECK(bad > 0);
	free(t);
	free(bz);
	free(p);
	free(elf);
}

/* The kit's real kernel, if tools/mkguest.sh has built it: what boot_linux
 * loads from the bzImage must equal the segments of the vmlinux that
 * mkguest extracted on its own (with Python's lzma). */
static void test_real_kernel(void)
{
	char kpath[4096], rpath[4096], vpath[4200];
	FILE *f;
	uint8_t *v;
	long vlen;

	char gdir[4096], cdir[4096];
	if (boot_dirs_from_env(gdir, cdir, sizeof(gdir)) < 0 ||
	    boot_default_guest(gdir, kpath, rpath, sizeof(kpath), errbuf, sizeof(errbuf)) < 0) {
		printf("note: %s; real-kernel test not run\n", errbuf);
		return;
	}
	snprintf(vpath, sizeof(vpath), "%.*s/vmlinux", (int)(strrchr(kpath, '/') - kpath), kpath);
	f = fopen(vpath, "rb");
	if (!f) {
		printf("note: no %s; real-kernel test not run\n", vpath);
		return;
	}
	fseek(f, 0, SEEK_END);
	vlen = ftell(f);
	rewind(f);
	v = malloc((size_t)vlen);
	CHECK(fread(v, 1, (size_t)vlen, f) == (size_t)vlen);
	fclose(f);

	struct machine *m = new_machine(512 * MiB, 2);
	struct cpu_state s;
	struct boot_config cfg = {kpath, rpath, "console=ttyS0", 512 * MiB, 2, NULL, 0};
	int ret = boot_linux(m, &s, &cfg, errbuf, sizeof(errbuf));
	if (ret < 0)
		fprintf(stderr, "  %s\n", errbuf);
	CHECK_EQ_U64(ret, 0);
	if (!ret) {
		uint16_t phnum = (uint16_t)(v[56] | v[57] << 8);
		uint64_t phoff = rd64(v + 32), entry = rd64(v + 24);
		int entry_found = 0;
		for (unsigned i = 0; i < phnum; i++) {
			uint8_t *ph = v + phoff + i * 56;
			if (rd32(ph) != 1)
				continue;
			uint64_t off = rd64(ph + 8), va = rd64(ph + 16), pa = rd64(ph + 24);
			uint64_t fs = rd64(ph + 32), ms = rd64(ph + 40);
			uint8_t *g = gpa_ptr(m, pa, ms);
			CHECK(g && !memcmp(g, v + off, fs));
			/* x86 vmlinux: e_entry is phys_startup_64, a physical address */
			if (entry >= pa && entry < pa + ms && va >> 63) {
				CHECK_EQ_U64(s.rip, entry);
				entry_found = 1;
			}
		}
		CHECK(entry_found);
		CHECK(s.rip >= 0x1000000);
		check_acpi(m, 2);
	}
	machine_destroy(m);
	free(v);
}

/* The fuzzing seeds were made by the real tools (python's zlib and lzma,
 * zstd -19, lz4 -l as the kernel build runs it), independently of the
 * encoders above: each must load, entry 0xffffffff81000100 -> 0x1000100. */
static void test_seed_files(void)
{
	static const char *const seeds[] = {"elf", "bz-gzip", "bz-xz", "bz-zstd", "bz-lz4"};
	char path[256];

	for (unsigned i = 0; i < 5; i++) {
		struct machine *m = new_machine(32 * MiB, 1);
		struct cpu_state s;
		struct boot_config cfg = {path, NULL, "", 32 * MiB, 1, NULL, 0};
		int ret;

		snprintf(path, sizeof(path), "tests/fuzz/seeds/boot/%s", seeds[i]);
		if (access(path, R_OK) < 0) {
			printf("note: %s missing (not run from the source tree?)\n", path);
			machine_destroy(m);
			continue;
		}
		memset(&s, 0, sizeof(s));
		ret = boot_linux(m, &s, &cfg, errbuf, sizeof(errbuf));
		if (ret < 0)
			fprintf(stderr, "  %s: %s\n", seeds[i], errbuf);
		CHECK_EQ_U64(ret, 0);
		CHECK_EQ_U64(s.rip, 0x1000100);
		machine_destroy(m);
	}
}

static void test_default_guest(void)
{
	char k[64], r[64];
	expect_err(boot_default_guest("/nonexistent-guest", k, r, sizeof(k), errbuf, sizeof(errbuf)), ENOENT,
		   "tools/mkguest.sh");
	CHECK(!strcmp(k, "/nonexistent-guest/" BOOT_GUEST_KERNEL));
	CHECK(!strcmp(r, "/nonexistent-guest/" BOOT_GUEST_INITRD));
	CHECK_EQ_U64(boot_default_guest("/nonexistent-guest", k, r, 8, errbuf, sizeof(errbuf)), -ENAMETOOLONG);

	/* where programs look: the environment, read when they ask */
	char g[300], c[300], old[4096] = "";
	const char *e = getenv("CORRAL_GUEST_DIR");
	if (e)
		snprintf(old, sizeof(old), "%s", e);
	setenv("CORRAL_GUEST_DIR", "/some/guest", 1);
	setenv("CORRAL_KERNEL_CACHE", "off", 1);
	CHECK(boot_dirs_from_env(g, c, sizeof(g)) == 0);
	CHECK(!strcmp(g, "/some/guest"));
	CHECK(!strcmp(c, ""));
	setenv("CORRAL_KERNEL_CACHE", "/some/cache", 1);
	CHECK(boot_dirs_from_env(g, c, sizeof(g)) == 0);
	CHECK(!strcmp(c, "/some/cache"));
	CHECK(boot_dirs_from_env(g, c, 5) == -ENAMETOOLONG);
	unsetenv("CORRAL_KERNEL_CACHE");
	if (e)
		setenv("CORRAL_GUEST_DIR", old, 1);
	else
		unsetenv("CORRAL_GUEST_DIR");
}

/* The only file in dir ending in .vmlinux (cache entries), into path. */
static int cache_entry(const char *dir, char *path, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".vmlinux")) {
			snprintf(path, len, "%s/%s", dir, e->d_name);
			n++;
		}
	closedir(d);
	return n;
}

static void test_kernel_cache(void)
{
	char dir[300], entry[600];
	size_t e1len, e2len, plen, blen;
	snprintf(dir, sizeof(dir), "%s/kcache", tmpdir);
	test_kcache = dir;
	uint8_t *e1 = make_elf(&e1len, 62, KVIRT + KENTRY_OFF);
	uint8_t *e2 = make_elf(&e2len, 62, KVIRT + KENTRY_OFF + 0x40);
	uint8_t *p = pack("xz", e1, e1len, &plen);
	uint8_t *bz = make_bzimage(p, plen, 0x20f, &blen);
	struct cpu_state s1, s2, s3;

	/* first boot: decompressed, and cached */
	CHECK_EQ_U64(boot_bytes(bz, blen, NULL, 0, "console=ttyS0", 64 * MiB, 1, NULL, &s1), 0);
	CHECK(cache_entry(dir, entry, sizeof(entry)) == 1);
	struct stat st;
	CHECK(stat(entry, &st) == 0 && (size_t)st.st_size > e1len);

	/* an entry for this payload is what boots: swap in another image */
	FILE *f = fopen(entry, "r+b");
	uint8_t hdr[40];
	CHECK(f && fread(hdr, 1, sizeof(hdr), f) == sizeof(hdr));
	if (f) {
		uint64_t n = e2len;
		memcpy(hdr + 24, &n, 8); /* out_len */
		fseek(f, 0, SEEK_SET);
		fwrite(hdr, 1, sizeof(hdr), f);
		fwrite(e2, 1, e2len, f);
		fclose(f);
		CHECK(truncate(entry, (off_t)(sizeof(hdr) + e2len)) == 0);
	}
	CHECK_EQ_U64(boot_bytes(bz, blen, NULL, 0, "console=ttyS0", 64 * MiB, 1, NULL, &s2), 0);
	CHECK(s2.rip == s1.rip + 0x40);

	/* a damaged entry is ignored, and replaced */
	CHECK(truncate(entry, 100) == 0);
	CHECK_EQ_U64(boot_bytes(bz, blen, NULL, 0, "console=ttyS0", 64 * MiB, 1, NULL, &s3), 0);
	CHECK(s3.rip == s1.rip);
	CHECK(stat(entry, &st) == 0 && (size_t)st.st_size == sizeof(hdr) + e1len);

	/* off: nothing is written */
	unlink(entry);
	test_kcache = NULL;
	CHECK_EQ_U64(boot_bytes(bz, blen, NULL, 0, "console=ttyS0", 64 * MiB, 1, NULL, &s3), 0);
	CHECK(cache_entry(dir, entry, sizeof(entry)) == 0);
	rmdir(dir);
	free(e1);
	free(e2);
	free(p);
	free(bz);
}

int main(void)
{
	if (!mkdtemp(tmpdir))
		return 1;
	RUN(test_formats);
	RUN(test_elf_kernel);
	RUN(test_high_memory);
	RUN(test_acpi);
	RUN(test_hostile);
	RUN(test_bomb);
	RUN(test_mutations);
	RUN(test_seed_files);
	RUN(test_real_kernel);
	RUN(test_default_guest);
	RUN(test_kernel_cache);
	char path[300];
	snprintf(path, sizeof(path), "%s/kernel", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/initrd", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return test_report();
}
