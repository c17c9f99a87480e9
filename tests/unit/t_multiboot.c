/* Multiboot loader and isa-debug-exit tests: a.out-kludge, ELF32 and ELF64
 * kernels (Multiboot 1 and 2) built in memory and booted into a real machine's RAM; the entry
 * state, the information structure, memory map and modules read back;
 * hostile kernels, modules and command lines refused with one line; random
 * mutations of valid kernels never crash; the exit device's status. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testhelp.h"

#include "boot/boot.h"
#include "boot/boot_internal.h"
#include "cpu/cpu.h"
#include "machine/debug_exit.h"
#include "machine/machine_impl.h"

#define MiB (1ull << 20)
#define HOFF 0x40 /* where the test images keep their Multiboot header */
#define LOAD 0x100000u
#define IMG_LEN 0x2000u

static char tmpdir[] = "/tmp/t_multiboot.XXXXXX";
static char errbuf[512];

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

static void header(uint8_t *img, size_t off, uint32_t flags)
{
	wr32(img + off, MULTIBOOT_HEADER_MAGIC);
	wr32(img + off + 4, flags);
	wr32(img + off + 8, (uint32_t) - (MULTIBOOT_HEADER_MAGIC + flags));
}

/* A flat a.out-kludge image of IMG_LEN bytes loaded at LOAD, bss to LOAD +
 * 0x4000, entry at LOAD + 0x100. */
static uint8_t *make_aout(void)
{
	uint8_t *img = malloc(IMG_LEN);
	for (size_t i = 0; i < IMG_LEN; i++)
		img[i] = (uint8_t)(i * 13 + 5);
	header(img, HOFF, 0x00010003);
	wr32(img + HOFF + 12, LOAD + HOFF); /* header_addr */
	wr32(img + HOFF + 16, LOAD);	    /* load_addr */
	wr32(img + HOFF + 20, 0);	    /* load_end_addr: the whole file */
	wr32(img + HOFF + 24, LOAD + 0x4000);
	wr32(img + HOFF + 28, LOAD + 0x100);
	return img;
}

/* An ELF image (class 1 or 2) with two PT_LOAD segments: 0x800 bytes from
 * file offset 0x1000 at physical 0x200000 (virtual 0xc0200000), memsz
 * 0x3000; and 0x400 bytes from 0x1800 at 0x400000 (virtual = physical).
 * The entry is virtual 0xc0200010; the Multiboot header is at 0x1000, the
 * first segment's start. */
static uint8_t *make_elf(int cls, size_t *len)
{
	int is64 = cls == 2;
	size_t n = 0x2000, phoff = 0x100, phsz = is64 ? 56 : 32;
	uint8_t *e = calloc(1, n);
	memcpy(e,
	       "\x7f"
	       "ELF",
	       4);
	e[4] = (uint8_t)cls;
	e[5] = 1;
	e[6] = 1;
	wr16(e + 16, 2);
	wr16(e + 18, is64 ? 62 : 3);
	if (is64) {
		wr64(e + 24, 0xc0200010);
		wr64(e + 32, phoff);
		wr16(e + 54, (uint16_t)phsz);
		wr16(e + 56, 2);
	} else {
		wr32(e + 24, 0xc0200010);
		wr32(e + 28, (uint32_t)phoff);
		wr16(e + 42, (uint16_t)phsz);
		wr16(e + 44, 2);
	}
	uint64_t seg[2][5] = {{0x1000, 0xc0200000, 0x200000, 0x800, 0x3000},
			      {0x1800, 0x400000, 0x400000, 0x400, 0x400}};
	for (int k = 0; k < 2; k++) {
		uint8_t *ph = e + phoff + k * phsz;
		wr32(ph, 1);
		if (is64) {
			wr64(ph + 8, seg[k][0]);
			wr64(ph + 16, seg[k][1]);
			wr64(ph + 24, seg[k][2]);
			wr64(ph + 32, seg[k][3]);
			wr64(ph + 40, seg[k][4]);
		} else {
			wr32(ph + 4, (uint32_t)seg[k][0]);
			wr32(ph + 8, (uint32_t)seg[k][1]);
			wr32(ph + 12, (uint32_t)seg[k][2]);
			wr32(ph + 16, (uint32_t)seg[k][3]);
			wr32(ph + 20, (uint32_t)seg[k][4]);
		}
	}
	for (size_t i = 0x1000; i < n; i++)
		e[i] = (uint8_t)(i * 7 + 3);
	header(e, 0x1000, 0x00000003);
	*len = n;
	return e;
}

static void write_file(const char *name, const void *p, size_t n, char *path, size_t pathlen)
{
	snprintf(path, pathlen, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n)
		abort();
	fclose(f);
}

static struct machine *new_machine(uint64_t mem)
{
	struct machine_config mc = {.mem_size = mem, .ncpus = 1, .serial_out_fd = -1};
	struct machine *m = NULL;
	if (machine_create(&m, &mc) < 0)
		abort();
	return m;
}

/* Boots kernel bytes k through boot_linux (which must see the Multiboot
 * header) with the modules list (or NULL). */
static int boot_mb(const uint8_t *k, size_t klen, const char *mods, const char *cmdline, uint64_t mem,
		   struct machine **mp, struct cpu_state *s)
{
	char kpath[256];
	struct boot_config cfg = {.kernel = kpath, .initrd = mods, .cmdline = cmdline, .mem_size = mem, .ncpus = 1};
	struct machine *m = new_machine(mem);
	struct cpu_state dummy;
	write_file("kernel", k, klen, kpath, sizeof(kpath));
	errbuf[0] = 0;
	int ret = boot_linux(m, s ? s : &dummy, &cfg, errbuf, sizeof(errbuf));
	if (ret < 0 && !errbuf[0])
		strcpy(errbuf, "(no message)");
	if (mp)
		*mp = m;
	else
		machine_destroy(m);
	return ret;
}

static void expect_err(int ret, const char *want)
{
	CHECK(ret < 0);
	CHECK(strstr(errbuf, want) != NULL);
	if (!strstr(errbuf, want))
		fprintf(stderr, "  message was: %s (wanted '%s')\n", errbuf, want);
	CHECK(strchr(errbuf, '\n') == NULL);
}

static void test_find(void)
{
	uint8_t img[MULTIBOOT_SEARCH + 64] = {0};
	CHECK(multiboot_find(img, sizeof(img)) == -1);
	header(img, 0, 0);
	CHECK(multiboot_find(img, sizeof(img)) == 0);
	CHECK(multiboot_find(img, 11) == -1); /* cut off */
	memset(img, 0, sizeof(img));
	header(img, 2, 0); /* not 4-byte aligned */
	CHECK(multiboot_find(img, sizeof(img)) == -1);
	memset(img, 0, sizeof(img));
	header(img, 0x100, 3);
	wr32(img + 0x108, rd32(img + 0x108) + 1); /* bad checksum */
	CHECK(multiboot_find(img, sizeof(img)) == -1);
	memset(img, 0, sizeof(img));
	header(img, MULTIBOOT_SEARCH - 12, 0); /* the last place it may be */
	CHECK(multiboot_find(img, sizeof(img)) == MULTIBOOT_SEARCH - 12);
	memset(img, 0, sizeof(img));
	header(img, MULTIBOOT_SEARCH - 8, 0); /* past the first 8 KiB */
	CHECK(multiboot_find(img, sizeof(img)) == -1);
}

/* The entry state of §3.2 and the information structure of §3.3. */
static void check_entry(struct machine *m, const struct cpu_state *s, uint64_t entry, uint64_t mem, const char *cmdline)
{
	CHECK_EQ_U64(s->rip, entry);
	CHECK_EQ_U64(s->gpr[R_RAX], 0x2badb002);
	CHECK_EQ_U64(s->cr0 & 0x80000001u, 1); /* PE, no PG */
	CHECK_EQ_U64(s->efer, 0);
	CHECK_EQ_U64(s->rflags & 0x20200, 0); /* IF, VM clear */
	CHECK_EQ_U64(s->seg[SEG_CS].attr, 0xc09b);
	CHECK_EQ_U64(s->seg[SEG_CS].base, 0);
	CHECK_EQ_U64(s->seg[SEG_CS].limit, 0xffffffff);
	for (int k = 0; k < 6; k++) {
		if (k == SEG_CS)
			continue;
		CHECK_EQ_U64(s->seg[k].attr, 0xc093);
		CHECK_EQ_U64(s->seg[k].base, 0);
		CHECK_EQ_U64(s->seg[k].limit, 0xffffffff);
	}
	/* the GDT holds what the selectors name */
	uint8_t gdt[32];
	CHECK(gpa_read(m, s->gdtr.base, gdt, sizeof(gdt)) == 0);
	CHECK_EQ_U64(rd64(gdt + s->seg[SEG_CS].sel), 0x00cf9b000000ffffull);
	CHECK_EQ_U64(rd64(gdt + s->seg[SEG_DS].sel), 0x00cf93000000ffffull);

	uint64_t info = s->gpr[R_RBX];
	uint8_t *mbi = gpa_ptr(m, info, 116);
	CHECK(mbi != NULL);
	if (!mbi)
		return;
	uint32_t flags = rd32(mbi);
	CHECK((flags & 0x245) == 0x245);
	CHECK_EQ_U64(rd32(mbi + 4), 639);
	uint64_t low_end = mem < MEM_LOW_END ? mem : MEM_LOW_END;
	CHECK_EQ_U64(rd32(mbi + 8), (low_end - MiB) >> 10);
	const char *cl = gpa_ptr(m, rd32(mbi + 16), strlen(cmdline) + 1);
	CHECK(cl && !strcmp(cl, cmdline));
	const char *name = gpa_ptr(m, rd32(mbi + 64), 7);
	CHECK(name && !strcmp(name, "corral"));
	/* the memory map is the e820 map */
	struct boot_e820 e820[BOOT_E820_MAX];
	unsigned ne = boot_e820(mem, e820);
	CHECK_EQ_U64(rd32(mbi + 44), ne * 24);
	const uint8_t *mm = gpa_ptr(m, rd32(mbi + 48), ne * 24);
	CHECK(mm != NULL);
	for (unsigned k = 0; mm && k < ne; k++) {
		CHECK_EQ_U64(rd32(mm + k * 24), 20);
		CHECK_EQ_U64(rd64(mm + k * 24 + 4), e820[k].addr);
		CHECK_EQ_U64(rd64(mm + k * 24 + 12), e820[k].size);
		CHECK_EQ_U64(rd32(mm + k * 24 + 20), e820[k].type);
	}
	/* nothing of the boot data overlaps the kernel at 1 MiB and up */
	CHECK(info + 116 <= MiB);
}

static void test_aout(void)
{
	uint8_t *img = make_aout();
	struct machine *m;
	struct cpu_state s;
	char m1[256], m2[256], mods[600];
	const char a[] = "first module", b[] = "second";
	write_file("m1", a, sizeof(a) - 1, m1, sizeof(m1));
	write_file("m2", b, sizeof(b) - 1, m2, sizeof(m2));
	snprintf(mods, sizeof(mods), "%s,%s", m1, m2);

	int r = boot_mb(img, IMG_LEN, mods, "root=x y", 64 * MiB, &m, &s);
	CHECK(r == 0);
	if (r < 0) {
		fprintf(stderr, "  %s\n", errbuf);
		goto out;
	}
	check_entry(m, &s, LOAD + 0x100, 64 * MiB, "root=x y");
	uint8_t *k = gpa_ptr(m, LOAD, 0x4000);
	CHECK(k && !memcmp(k, img, IMG_LEN));
	for (unsigned i = IMG_LEN; k && i < 0x4000; i++)
		CHECK(k[i] == 0);
	/* modules: page-aligned above the bss, named by their file */
	uint8_t *mbi = gpa_ptr(m, s.gpr[R_RBX], 116);
	CHECK(rd32(mbi) & 8);
	CHECK_EQ_U64(rd32(mbi + 20), 2);
	uint8_t *mt = gpa_ptr(m, rd32(mbi + 24), 32);
	CHECK(mt != NULL);
	if (mt) {
		CHECK_EQ_U64(rd32(mt), LOAD + 0x4000);
		CHECK_EQ_U64(rd32(mt + 4), LOAD + 0x4000 + sizeof(a) - 1);
		CHECK_EQ_U64(rd32(mt + 16), LOAD + 0x5000);
		CHECK_EQ_U64(rd32(mt + 20), LOAD + 0x5000 + sizeof(b) - 1);
		CHECK(!memcmp(gpa_ptr(m, rd32(mt), sizeof(a) - 1), a, sizeof(a) - 1));
		CHECK(!memcmp(gpa_ptr(m, rd32(mt + 16), sizeof(b) - 1), b, sizeof(b) - 1));
		const char *n1 = gpa_ptr(m, rd32(mt + 8), strlen(m1) + 1);
		const char *n2 = gpa_ptr(m, rd32(mt + 24), strlen(m2) + 1);
		CHECK(n1 && !strcmp(n1, m1));
		CHECK(n2 && !strcmp(n2, m2));
	}
	machine_destroy(m);

	/* no modules, no command line: flag 3 clear, an empty command line;
	 * RAM above 4 GiB in the map */
	r = boot_mb(img, IMG_LEN, NULL, NULL, 3200 * MiB, &m, &s);
	CHECK(r == 0);
	if (r == 0) {
		check_entry(m, &s, LOAD + 0x100, 3200 * MiB, "");
		CHECK_EQ_U64(rd32(gpa_ptr(m, s.gpr[R_RBX], 4)) & 8, 0);
	}
	machine_destroy(m);
	/* the caller's Linux default is not the user's command line */
	char kpath[256];
	write_file("kernel", img, IMG_LEN, kpath, sizeof(kpath));
	struct boot_config cfg = {
		.kernel = kpath, .cmdline = "console=ttyS0", .cmdline_default = 1, .mem_size = 64 * MiB, .ncpus = 1};
	m = new_machine(64 * MiB);
	CHECK(boot_linux(m, &s, &cfg, errbuf, sizeof(errbuf)) == 0);
	check_entry(m, &s, LOAD + 0x100, 64 * MiB, "");
out:
	machine_destroy(m);
	free(img);
}

static void test_elf(void)
{
	for (int cls = 1; cls <= 2; cls++) {
		size_t len;
		uint8_t *e = make_elf(cls, &len);
		struct machine *m;
		struct cpu_state s;
		int r = boot_mb(e, len, NULL, "x", 64 * MiB, &m, &s);
		CHECK(r == 0);
		if (r == 0) {
			/* virtual 0xc0200010 in the segment at physical 0x200000 */
			check_entry(m, &s, 0x200010, 64 * MiB, "x");
			uint8_t *p = gpa_ptr(m, 0x200000, 0x3000);
			CHECK(p && !memcmp(p, e + 0x1000, 0x800));
			for (unsigned i = 0x800; p && i < 0x3000; i++)
				CHECK(p[i] == 0);
			CHECK(!memcmp(gpa_ptr(m, 0x400000, 0x400), e + 0x1800, 0x400));
		} else {
			fprintf(stderr, "  ELF class %d: %s\n", cls, errbuf);
		}
		machine_destroy(m);
		free(e);
	}
}

/* ELF program header k's field at offset off32 (ELF32) / off64 (ELF64) */
static void ph_set(uint8_t *e, int k, unsigned off32, unsigned off64, uint64_t v)
{
	if (e[4] == 2)
		wr64(e + 0x100 + k * 56 + off64, v);
	else
		wr32(e + 0x100 + k * 32 + off32, (uint32_t)v);
}

static void test_hostile(void)
{
	uint8_t *a = make_aout(), *t = malloc(0x4000);
	size_t elen;
	uint8_t *e32 = make_elf(1, &elen), *e64 = make_elf(2, &elen);
	const uint64_t mem = 64 * MiB;

	/* a.out kludge fields */
	struct {
		unsigned off;
		uint32_t val;
		const char *want;
	} ac[] = {
		{12, LOAD - 4, "put the load start outside the file"},	    /* header_addr < load_addr */
		{16, LOAD - 0x1000, "put the load start outside the file"}, /* header before the file */
		{20, LOAD - 1, "load_end_addr"},			    /* before load_addr */
		{20, LOAD + IMG_LEN + 1, "load_end_addr"},		    /* past the file */
		{24, LOAD + 0x10, "bss_end_addr"},			    /* before the image's end */
		{28, LOAD + 0x4000, "entry_addr 0x104000 is outside"},
		{28, 0x1000, "entry_addr"},
	};
	for (size_t k = 0; k < sizeof(ac) / sizeof(ac[0]); k++) {
		memcpy(t, a, IMG_LEN);
		wr32(t + HOFF + ac[k].off, ac[k].val);
		expect_err(boot_mb(t, IMG_LEN, NULL, NULL, mem, NULL, NULL), ac[k].want);
	}
	/* below 1 MiB, past RAM, wrapping around 4 GiB */
	memcpy(t, a, IMG_LEN);
	wr32(t + HOFF + 12, 0x1000 + HOFF);
	wr32(t + HOFF + 16, 0x1000);
	wr32(t + HOFF + 24, 0x5000);
	wr32(t + HOFF + 28, 0x1100);
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, mem, NULL, NULL), "outside guest RAM from 1 MiB");
	memcpy(t, a, IMG_LEN);
	wr32(t + HOFF + 24, 0xfffff000);
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, mem, NULL, NULL), "outside guest RAM");
	memcpy(t, a, IMG_LEN);
	wr32(t + HOFF + 12, 0xfffff000 + HOFF);
	wr32(t + HOFF + 16, 0xfffff000);
	wr32(t + HOFF + 24, 0);
	wr32(t + HOFF + 28, 0xfffff100);
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, mem, NULL, NULL), "outside guest RAM");
	/* the header's address fields cut off by the file's end */
	memcpy(t, a, IMG_LEN);
	header(t, IMG_LEN - 16, 0x00010000);
	memset(t + HOFF, 0, 12);
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, mem, NULL, NULL), "cut off");
	/* requirements corral does not know; neither ELF nor a.out */
	memcpy(t, a, IMG_LEN);
	header(t, HOFF, 0x00010008);
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, mem, NULL, NULL), "features corral does not offer (flags 0x10008)");
	memcpy(t, a, IMG_LEN);
	header(t, HOFF, 0x00000003);
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, mem, NULL, NULL), "neither ELF nor");

	/* ELF */
	for (int cls = 1; cls <= 2; cls++) {
		uint8_t *e = cls == 1 ? e32 : e64;
		unsigned phnum_off = cls == 1 ? 44 : 56;
		memcpy(t, e, elen);
		wr16(t + 18, cls == 1 ? 62 : 3);
		expect_err(boot_mb(t, elen, NULL, NULL, mem, NULL, NULL), "must be i386 ELF32 or x86-64 ELF64");
		memcpy(t, e, elen);
		wr16(t + 16, 3);
		expect_err(boot_mb(t, elen, NULL, NULL, mem, NULL, NULL), "not an executable");
		memcpy(t, e, elen);
		wr16(t + phnum_off, 0);
		expect_err(boot_mb(t, elen, NULL, NULL, mem, NULL, NULL), "bad ELF program headers");
		memcpy(t, e, elen);
		wr16(t + phnum_off, 1000);
		expect_err(boot_mb(t, elen, NULL, NULL, mem, NULL, NULL), "bad ELF program headers");
		memcpy(t, e, elen);
		ph_set(t, 0, 16, 32, 0x4000); /* filesz > memsz */
		expect_err(boot_mb(t, elen, NULL, NULL, mem, NULL, NULL), "out of the file's bounds");
		memcpy(t, e, elen);
		ph_set(t, 1, 4, 8, 0x1f00); /* offset + filesz past the end */
		expect_err(boot_mb(t, elen, NULL, NULL, mem, NULL, NULL), "out of the file's bounds");
		memcpy(t, e, elen);
		ph_set(t, 1, 12, 24, 0x201000); /* inside the first segment */
		expect_err(boot_mb(t, elen, NULL, NULL, mem, NULL, NULL), "overlap");
		memcpy(t, e, elen);
		ph_set(t, 0, 8, 16, 0xd0000000); /* the entry's segment moves away */
		expect_err(boot_mb(t, elen, NULL, NULL, mem, NULL, NULL), "is in no loaded segment");
		memcpy(t, e, elen);
		ph_set(t, 1, 12, 24, 0x7ff00000); /* past RAM */
		expect_err(boot_mb(t, elen, NULL, NULL, mem, NULL, NULL), "outside guest RAM");
		memcpy(t, e, elen);
		ph_set(t, 0, 20, 40, cls == 1 ? 0xfffff000u : 0xffffffffffff0000ull); /* wraps */
		expect_err(boot_mb(t, elen, NULL, NULL, mem, NULL, NULL), "outside guest RAM");
		if (cls == 2) {
			memcpy(t, e, elen);
			ph_set(t, 1, 12, 24, 0x100000000ull); /* above 4 GiB: not for a 32-bit entry */
			expect_err(boot_mb(t, elen, NULL, NULL, 8192 * MiB, NULL, NULL), "outside guest RAM");
		}
	}

	/* modules and the command line */
	char m1[256], big[256], list[8192];
	write_file("m1", "abc", 3, m1, sizeof(m1));
	expect_err(boot_mb(a, IMG_LEN, "/nonexistent/mod", NULL, mem, NULL, NULL),
		   "module '/nonexistent/mod': No such file");
	expect_err(boot_mb(a, IMG_LEN, tmpdir, NULL, mem, NULL, NULL), "not a regular file");
	snprintf(list, sizeof(list), "%s,,%s", m1, m1);
	expect_err(boot_mb(a, IMG_LEN, list, NULL, mem, NULL, NULL), "an empty module name");
	snprintf(list, sizeof(list), "%s,", m1);
	expect_err(boot_mb(a, IMG_LEN, list, NULL, mem, NULL, NULL), "an empty module name");
	expect_err(boot_mb(a, IMG_LEN, "", NULL, mem, NULL, NULL), "an empty module name");
	size_t n = 0;
	for (int k = 0; k < 65; k++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", k ? "," : "", m1);
	expect_err(boot_mb(a, IMG_LEN, list, NULL, mem, NULL, NULL), "more than 64 Multiboot modules");
	uint8_t *blob = calloc(1, 9 * MiB);
	write_file("big", blob, 9 * MiB, big, sizeof(big));
	free(blob);
	snprintf(list, sizeof(list), "%s,%s", big, big);
	expect_err(boot_mb(a, IMG_LEN, list, NULL, 16 * MiB, NULL, NULL), "do not fit in guest RAM");
	CHECK(boot_mb(a, IMG_LEN, big, NULL, 16 * MiB, NULL, NULL) == 0); /* one fits */
	char *cl = malloc(700 * 1024);
	memset(cl, 'x', 700 * 1024 - 1);
	cl[700 * 1024 - 1] = 0;
	expect_err(boot_mb(a, IMG_LEN, NULL, cl, mem, NULL, NULL), "does not fit in the Multiboot boot data area");
	free(cl);
	unlink(big);
	unlink(m1);
	free(a);
	free(t);
	free(e32);
	free(e64);
}

/* ---- Multiboot 2 ---- */

/* A Multiboot 2 header at img + off: magic, architecture, then the tags
 * given as (type, flags, u32 words...) and the end tag; returns its length. */
struct mb2_tag_spec {
	uint16_t type, flags;
	unsigned nwords;
	uint32_t w[4];
};

static uint32_t mb2_header(uint8_t *img, size_t off, uint32_t arch, const struct mb2_tag_spec *tags, unsigned ntags,
			   int end)
{
	size_t at = off + 16;
	for (unsigned k = 0; k < ntags; k++) {
		wr16(img + at, tags[k].type);
		wr16(img + at + 2, tags[k].flags);
		wr32(img + at + 4, 8 + 4 * tags[k].nwords);
		for (unsigned i = 0; i < tags[k].nwords; i++)
			wr32(img + at + 8 + 4 * i, tags[k].w[i]);
		at += (8 + 4 * tags[k].nwords + 7) & ~7u;
	}
	if (end) {
		wr32(img + at, 0);
		wr32(img + at + 4, 8);
		at += 8;
	}
	uint32_t hlen = (uint32_t)(at - off);
	wr32(img + off, MULTIBOOT2_HEADER_MAGIC);
	wr32(img + off + 4, arch);
	wr32(img + off + 8, hlen);
	wr32(img + off + 12, (uint32_t) - (MULTIBOOT2_HEADER_MAGIC + arch + hlen));
	return hlen;
}

/* In make_mb2's header: the information request tag takes 24 bytes from
 * +16, the address tag 24 from +40, the entry tag 16 from +64. */
#define MB2_LOAD_ADDR (HOFF + 52)
#define MB2_ENTRY (HOFF + 72)

/* The flat image of make_aout with a Multiboot 2 header instead: an
 * information request, the address and entry tags, then extra. */
static uint8_t *make_mb2(const struct mb2_tag_spec *extra, unsigned nextra, int end)
{
	uint8_t *img = make_aout();
	memset(img + HOFF, 0, 0x100);
	struct mb2_tag_spec t[8] = {
		{1, 0, 3, {1, 6, 15}},
		{2, 0, 4, {LOAD + HOFF, LOAD, 0, LOAD + 0x4000}},
		{3, 0, 1, {LOAD + 0x100}},
	};
	for (unsigned k = 0; k < nextra && k < 5; k++)
		t[3 + k] = extra[k];
	mb2_header(img, HOFF, 0, t, 3 + nextra, end);
	return img;
}

/* The information tags at info: checks what corral gives. */
static void check_mb2_info(struct machine *m, uint64_t info, uint64_t mem, const char *cmdline, unsigned want_mods,
			   const char *const *mod_names)
{
	uint8_t *p = gpa_ptr(m, info, 8);
	CHECK(p != NULL && (info & 7) == 0);
	if (!p)
		return;
	uint32_t total = rd32(p);
	p = gpa_ptr(m, info, total);
	CHECK(p != NULL);
	if (!p)
		return;
	unsigned seen = 0, mods = 0, ended = 0;
	uint64_t low_end = mem < MEM_LOW_END ? mem : MEM_LOW_END;
	for (uint32_t off = 8; off + 8 <= total && !ended;) {
		uint32_t type = rd32(p + off), size = rd32(p + off + 4);
		CHECK(size >= 8 && size <= total - off);
		if (size < 8 || size > total - off)
			return;
		const uint8_t *b = p + off + 8;
		seen |= 1u << (type & 31);
		switch (type) {
		case 0:
			ended = 1;
			CHECK_EQ_U64(off + 8, total);
			break;
		case 1: CHECK(!strcmp((const char *)b, cmdline)); break;
		case 2: CHECK(!strcmp((const char *)b, "corral")); break;
		case 3:
			CHECK(mods < want_mods);
			if (mods < want_mods)
				CHECK(!strcmp((const char *)b + 8, mod_names[mods]));
			CHECK_EQ_U64(rd32(b) & 0xfff, 0);
			mods++;
			break;
		case 4:
			CHECK_EQ_U64(rd32(b), 639);
			CHECK_EQ_U64(rd32(b + 4), (low_end - MiB) >> 10);
			break;
		case 6: {
			struct boot_e820 e820[BOOT_E820_MAX];
			unsigned ne = boot_e820(mem, e820);
			CHECK_EQ_U64(rd32(b), 24);
			CHECK_EQ_U64(size, 16 + ne * 24);
			for (unsigned k = 0; k < ne && 16 + k * 24 + 24 <= size; k++) {
				CHECK_EQ_U64(rd64(b + 8 + k * 24), e820[k].addr);
				CHECK_EQ_U64(rd64(b + 8 + k * 24 + 8), e820[k].size);
				CHECK_EQ_U64(rd32(b + 8 + k * 24 + 16), e820[k].type);
			}
			break;
		}
		case 14:
		case 15: CHECK(!memcmp(b, "RSD PTR ", 8)); break;
		default: CHECK(!"unexpected tag type");
		}
		off += (size + 7) & ~7u;
	}
	CHECK(ended);
	CHECK_EQ_U64(mods, want_mods);
	CHECK_EQ_U64(seen & 0xc05e, 0xc056 | (want_mods ? 8 : 0)); /* 1 2 4 6 14 15 (+3), and 0 */
	CHECK(seen & 1);
}

static void test_mb2(void)
{
	uint8_t *img = make_mb2(NULL, 0, 1);
	struct machine *m;
	struct cpu_state s;
	char m1[256], m2[256], mods[600];
	write_file("m1", "first module", 12, m1, sizeof(m1));
	write_file("m2", "second", 6, m2, sizeof(m2));
	snprintf(mods, sizeof(mods), "%s,%s", m1, m2);
	const char *names[] = {m1, m2};

	CHECK(multiboot2_find(img, IMG_LEN) == HOFF);
	CHECK(multiboot_find(img, IMG_LEN) == -1);
	int r = boot_mb(img, IMG_LEN, mods, "mb2 line", 64 * MiB, &m, &s);
	CHECK(r == 0);
	if (r == 0) {
		CHECK_EQ_U64(s.gpr[R_RAX], 0x36d76289);
		CHECK_EQ_U64(s.rip, LOAD + 0x100);
		CHECK_EQ_U64(s.cr0 & 0x80000001u, 1);
		CHECK_EQ_U64(s.seg[SEG_CS].attr, 0xc09b);
		CHECK(!memcmp(gpa_ptr(m, LOAD, IMG_LEN), img, IMG_LEN));
		check_mb2_info(m, s.gpr[R_RBX], 64 * MiB, "mb2 line", 2, names);
	} else {
		fprintf(stderr, "  %s\n", errbuf);
	}
	machine_destroy(m);

	/* no modules; optional tags corral does not know are skipped */
	struct mb2_tag_spec opt[2] = {{99, 1, 1, {7}}, {1, 1, 1, {8}}};
	free(img);
	img = make_mb2(opt, 2, 1);
	r = boot_mb(img, IMG_LEN, NULL, NULL, 64 * MiB, &m, &s);
	CHECK(r == 0);
	if (r == 0)
		check_mb2_info(m, s.gpr[R_RBX], 64 * MiB, "", 0, NULL);
	machine_destroy(m);

	/* load_addr -1: from the file's start */
	free(img);
	img = make_mb2(NULL, 0, 1);
	wr32(img + MB2_LOAD_ADDR, 0xffffffff);
	CHECK(boot_mb(img, IMG_LEN, NULL, NULL, 64 * MiB, NULL, &s) == 0);
	CHECK_EQ_U64(s.rip, LOAD + 0x100);

	/* an ELF with a Multiboot 2 header: the ELF's entry, or the entry tag's */
	size_t elen;
	uint8_t *e = make_elf(1, &elen);
	memset(e + 0x1000, 0, 16);
	mb2_header(e, 0x1000, 0, NULL, 0, 1);
	CHECK(boot_mb(e, elen, NULL, NULL, 64 * MiB, NULL, &s) == 0);
	CHECK_EQ_U64(s.rip, 0x200010);
	struct mb2_tag_spec ent = {3, 0, 1, {0x400010}};
	mb2_header(e, 0x1000, 0, &ent, 1, 1);
	CHECK(boot_mb(e, elen, NULL, NULL, 64 * MiB, NULL, &s) == 0);
	CHECK_EQ_U64(s.rip, 0x400010);
	ent.w[0] = 0x300000;
	mb2_header(e, 0x1000, 0, &ent, 1, 1);
	expect_err(boot_mb(e, elen, NULL, NULL, 64 * MiB, NULL, NULL),
		   "entry address 0x300000 is in no loaded segment");
	/* both headers: Multiboot 1 wins, as QEMU would boot it */
	free(e);
	e = make_elf(1, &elen);
	mb2_header(e, 0x1010, 0, NULL, 0, 1);
	CHECK(boot_mb(e, elen, NULL, NULL, 64 * MiB, NULL, &s) == 0);
	CHECK_EQ_U64(s.gpr[R_RAX], 0x2badb002);
	free(e);

	/* hostile headers */
	uint8_t *t = malloc(IMG_LEN);
	memcpy(t, img, IMG_LEN);
	free(img);
	img = make_mb2(NULL, 0, 1);
	memcpy(t, img, IMG_LEN);
	mb2_header(t, HOFF, 4, NULL, 0, 1);
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, 64 * MiB, NULL, NULL), "architecture 4 is not i386");
	memcpy(t, img, IMG_LEN);
	wr32(t + HOFF + 8, IMG_LEN);
	wr32(t + HOFF + 12, (uint32_t) - (MULTIBOOT2_HEADER_MAGIC + IMG_LEN));
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, 64 * MiB, NULL, NULL), "header length");
	memcpy(t, img, IMG_LEN);
	wr32(t + HOFF + 16 + 4, 4); /* the first tag's size */
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, 64 * MiB, NULL, NULL), "has a bad size 4");
	memcpy(t, img, IMG_LEN);
	wr32(t + HOFF + 16 + 4, 0x1000); /* past the header */
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, 64 * MiB, NULL, NULL), "has a bad size");
	free(img);
	img = make_mb2(NULL, 0, 0);
	memcpy(t, img, IMG_LEN);
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, 64 * MiB, NULL, NULL), "no end tag");
	struct mb2_tag_spec bad[] = {{5, 0, 3, {1024, 768, 32}}, {99, 0, 0, {0}}, {1, 0, 2, {6, 8}}};
	const char *why[] = {"(tag type 5)", "(tag type 99)", "information corral does not give (type 8)"};
	for (int k = 0; k < 3; k++) {
		free(img);
		img = make_mb2(&bad[k], 1, 1);
		expect_err(boot_mb(img, IMG_LEN, NULL, NULL, 64 * MiB, NULL, NULL), why[k]);
	}
	free(img);
	img = make_mb2(NULL, 0, 1);
	memcpy(t, img, IMG_LEN);
	struct mb2_tag_spec noentry[] = {{2, 0, 4, {LOAD + HOFF, LOAD, 0, LOAD + 0x4000}}};
	mb2_header(t, HOFF, 0, noentry, 1, 1);
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, 64 * MiB, NULL, NULL), "address tag without an entry address tag");
	memcpy(t, img, IMG_LEN);
	wr32(t + MB2_ENTRY, LOAD + 0x5000); /* the entry tag's address */
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, 64 * MiB, NULL, NULL), "entry_addr 0x105000 is outside");
	memcpy(t, img, IMG_LEN);
	wr32(t + MB2_LOAD_ADDR, 0x1000); /* load_addr below 1 MiB */
	wr32(t + MB2_LOAD_ADDR - 4, 0x1000 + HOFF);
	wr32(t + MB2_LOAD_ADDR + 8, 0x5000);
	wr32(t + MB2_ENTRY, 0x1100);
	expect_err(boot_mb(t, IMG_LEN, NULL, NULL, 64 * MiB, NULL, NULL), "outside guest RAM");
	/* a command line that leaves no room for the information */
	char *cl = malloc(700 * 1024);
	memset(cl, 'x', 700 * 1024 - 1);
	cl[700 * 1024 - 1] = 0;
	expect_err(boot_mb(img, IMG_LEN, NULL, cl, 64 * MiB, NULL, NULL), "do not fit in the Multiboot boot data area");
	free(cl);
	free(t);
	free(img);
}

/* Random changes to the headers of valid kernels: each boots or fails
 * with one line, never crashes (ASan/UBSan build). */
static void test_mutations(void)
{
	uint8_t *img[4], *t = malloc(0x2000);
	size_t len[4] = {IMG_LEN, 0, 0, IMG_LEN};
	img[0] = make_aout();
	img[1] = make_elf(1, &len[1]);
	img[2] = make_elf(2, &len[2]);
	img[3] = make_mb2(NULL, 0, 1);
	struct machine *m = new_machine(32 * MiB);
	struct boot_config cfg = {.kernel = "mutant", .mem_size = 32 * MiB, .ncpus = 1};
	int booted = 0;
	for (int round = 0; round < 4000; round++) {
		int k = round % 4;
		memcpy(t, img[k], len[k]);
		unsigned flips = 1 + (unsigned)(rnd() % 4);
		for (unsigned f = 0; f < flips; f++) {
			/* the ELF and program headers, the Multiboot header */
			size_t at = k == 3	? HOFF + 8 + rnd() % 0x60 /* past the magic */
				    : rnd() & 1 ? rnd() % 0x180
						: (k ? 0x1000 : HOFF) + rnd() % 32;
			t[at] = (uint8_t)rnd();
		}
		if (k == 3) /* a valid checksum, so that the tags are read */
			wr32(t + HOFF + 12,
			     (uint32_t) - (MULTIBOOT2_HEADER_MAGIC + rd32(t + HOFF + 4) + rd32(t + HOFF + 8)));
		long hoff = k == 3 ? multiboot2_find(t, len[k]) : multiboot_find(t, len[k]);
		if (hoff < 0)
			continue;
		struct cpu_state s;
		errbuf[0] = 0;
		int r = k == 3 ? boot_multiboot2(m, &s, &cfg, t, len[k], (size_t)hoff, errbuf, sizeof(errbuf))
			       : boot_multiboot(m, &s, &cfg, t, len[k], (size_t)hoff, errbuf, sizeof(errbuf));
		if (r == 0) {
			booted++;
			CHECK(s.rip >= MiB && s.rip < 32 * MiB);
		} else {
			CHECK(errbuf[0] && !strchr(errbuf, '\n'));
		}
	}
	CHECK(booted > 0);
	machine_destroy(m);
	for (int k = 0; k < 4; k++)
		free(img[k]);
	free(t);
}

/* The fuzzer's Multiboot seeds (tests/guests/mb's kernels) boot. */
static void test_seed_files(void)
{
	static const char *const seeds[] = {"mb-elf32", "mb-elf64", "mb-aout", "mb2-flat"};
	for (unsigned i = 0; i < 4; i++) {
		char path[256];
		snprintf(path, sizeof(path), "tests/fuzz/seeds/boot/%s", seeds[i]);
		if (access(path, R_OK) < 0) {
			printf("note: %s missing (not run from the source tree?)\n", path);
			continue;
		}
		struct machine *m = new_machine(32 * MiB);
		struct cpu_state s;
		struct boot_config cfg = {.kernel = path, .cmdline = "", .mem_size = 32 * MiB, .ncpus = 1};
		int ret = boot_linux(m, &s, &cfg, errbuf, sizeof(errbuf));
		if (ret < 0)
			fprintf(stderr, "  %s: %s\n", seeds[i], errbuf);
		CHECK_EQ_U64(ret, 0);
		CHECK_EQ_U64(s.gpr[R_RAX], i < 3 ? 0x2badb002 : 0x36d76289);
		CHECK(s.rip > MiB && s.rip < MiB + 0x1000);
		machine_destroy(m);
	}
}

static void test_debug_exit(void)
{
	struct machine *m = new_machine(16 * MiB);
	struct debug_exit d, d2;
	CHECK(debug_exit_register(&d, m, 0x501, 2) == 0);
	CHECK(debug_exit_register(&d2, m, 0x501, 2) == -EBUSY);
	CHECK(debug_exit_register(&d2, m, 0xfffe, 4) == -EINVAL);
	CHECK(debug_exit_register(&d2, m, 0xf4, 0) == -EINVAL);
	CHECK_EQ_U64(bus_pio_read(m, 0x501, 1), 0xff);
	CHECK(!d.written);
	CHECK_EQ_U64(machine_take_power(m), POWER_ON);
	bus_pio_write(m, 0x502, 1, 0x10); /* any port of it */
	CHECK(d.written);
	CHECK_EQ_U64(d.status, 0x21);
	CHECK_EQ_U64(machine_take_power(m), POWER_OFF);
	bus_pio_write(m, 0x501, 2, 0x1234); /* the first write decides */
	CHECK_EQ_U64(d.status, 0x21);
	machine_destroy(m);

	m = new_machine(16 * MiB);
	CHECK(debug_exit_register(&d, m, 0xf4, 4) == 0);
	bus_pio_write(m, 0xf4, 4, 0x7fffffff);
	CHECK_EQ_U64(d.status, 0xffffffffu);
	machine_destroy(m);
}

int main(void)
{
	if (!mkdtemp(tmpdir))
		return 1;
	RUN(test_find);
	RUN(test_aout);
	RUN(test_elf);
	RUN(test_hostile);
	RUN(test_mb2);
	RUN(test_mutations);
	RUN(test_seed_files);
	RUN(test_debug_exit);
	char path[300];
	const char *names[] = {"kernel", "m1", "m2", "big"};
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[k]);
		unlink(path);
	}
	rmdir(tmpdir);
	return test_report();
}
