/* Multiboot loader (versions 1 and 2): finds the header, loads an ELF32, ELF64 or
 * a.out-kludge image, loads the modules, builds the Multiboot information
 * structure and sets the BSP up as the specification's "machine state". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/boot.h"
#include "boot/boot_internal.h"
#include "cpu/cpu.h"
#include "machine/machine.h"

/*
 * Guest physical layout at entry:
 *   0x00500  GDT: null, null, 0x10 flat 32-bit code, 0x18 flat 32-bit data
 *   0x08000  the information structure, then the memory map, the boot
 *            loader's name, the command line, the module list and the
 *            modules' command lines (all below MB_DATA_END)
 *   0x07ff0  the initial stack (the specification leaves ESP undefined)
 *   0xe0000  ACPI tables, as for Linux
 *   kernel   at its load addresses, at or above 1 MiB
 *   modules  page-aligned, one after the other above the kernel's end
 */
#define MB_INFO 0x8000ull
#define MB_DATA_END 0x9f000ull /* below the EBDA */
#define MB_STACK 0x7ff0ull
#define MB_LOAD_MIN 0x100000ull
#define MB_CS 0x10
#define MB_DS 0x18

/* Multiboot 0.6.96 §3.1.2: header flags. Bits 0-15 are requirements a
 * loader must refuse when it does not know them. */
#define MBH_PAGE_ALIGN (1u << 0) /* modules page-aligned: always so here */
#define MBH_MEMORY_INFO (1u << 1)
#define MBH_VIDEO_MODE (1u << 2) /* a preference only: corral offers text mode, as QEMU */
#define MBH_AOUT_KLUDGE (1u << 16)
#define MBH_KNOWN_REQUIRED (MBH_PAGE_ALIGN | MBH_MEMORY_INFO | MBH_VIDEO_MODE)

/* §3.3: the information structure's flags and offsets */
#define MBI_MEMORY (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MODS (1u << 3)
#define MBI_MMAP (1u << 6)
#define MBI_LOADER_NAME (1u << 9)
#define MBI_SIZE 116
#define MBI_FLAGS 0
#define MBI_MEM_LOWER 4
#define MBI_MEM_UPPER 8
#define MBI_CMDLINE_PTR 16
#define MBI_MODS_COUNT 20
#define MBI_MODS_ADDR 24
#define MBI_MMAP_LENGTH 44
#define MBI_MMAP_ADDR 48
#define MBI_LOADER_NAME_PTR 64
#define MB_MOD_SIZE 16	 /* mod_start, mod_end, string, reserved */
#define MB_MMAP_ENTRY 24 /* size (20), base_addr, length, type */

/* Caps on what a hostile kernel may make us do. */
#define MB_PHNUM_MAX 64
#define MB_MODS_MAX 64

struct mb_seg {
	uint64_t paddr, memsz, off, filesz;
};

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int k = 0; k < 4; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

long multiboot_find(const uint8_t *img, size_t len)
{
	size_t end = len < MULTIBOOT_SEARCH ? len : MULTIBOOT_SEARCH;
	for (size_t off = 0; off + 12 <= end; off += 4) {
		uint32_t magic = get32(img + off), flags = get32(img + off + 4), sum = get32(img + off + 8);
		if (magic == MULTIBOOT_HEADER_MAGIC && (uint32_t)(magic + flags + sum) == 0)
			return (long)off;
	}
	return -1;
}

/* Checks segs against each other and guest RAM [MB_LOAD_MIN, low_end). */
static int segs_check(const char *path, const struct mb_seg *s, unsigned n, uint64_t low_end, char *err, size_t errlen)
{
	for (unsigned i = 0; i < n; i++) {
		if (s[i].paddr < MB_LOAD_MIN || s[i].paddr > low_end || s[i].memsz > low_end - s[i].paddr) {
			boot_err(err, errlen,
				 "kernel '%s': loads at 0x%llx-0x%llx, outside guest RAM from 1 MiB to 0x%llx "
				 "(more --mem?)",
				 path, (unsigned long long)s[i].paddr,
				 (unsigned long long)(s[i].paddr + (s[i].memsz < UINT64_MAX - s[i].paddr
									    ? s[i].memsz
									    : UINT64_MAX - s[i].paddr)),
				 (unsigned long long)low_end);
			return -ENOEXEC;
		}
		for (unsigned j = 0; j < i; j++) {
			if (s[i].paddr < s[j].paddr + s[j].memsz && s[j].paddr < s[i].paddr + s[i].memsz) {
				boot_err(err, errlen, "kernel '%s': segments at 0x%llx and 0x%llx overlap", path,
					 (unsigned long long)s[j].paddr, (unsigned long long)s[i].paddr);
				return -ENOEXEC;
			}
		}
	}
	return 0;
}

/* The a.out kludge (§3.1.3; Multiboot 2's address tag, §3.1.5, is the
 * same): the header's own addresses say what to load. hoff is where the
 * header lies in the file, header_addr where it lands in memory. */
static int aout_segs(const char *path, size_t len, size_t hoff, uint32_t header_addr, uint32_t load_addr,
		     uint32_t load_end, uint32_t bss_end, uint32_t ent, struct mb_seg *seg, uint64_t *entry, char *err,
		     size_t errlen)
{
	if (header_addr < load_addr || header_addr - load_addr > hoff) {
		boot_err(err, errlen,
			 "kernel '%s': Multiboot header_addr 0x%x and load_addr 0x%x put the load start "
			 "outside the file",
			 path, header_addr, load_addr);
		return -ENOEXEC;
	}
	uint64_t off = hoff - (header_addr - load_addr);
	uint64_t filesz = load_end ? (uint64_t)load_end - load_addr : len - off;
	if (load_end && (load_end < load_addr || filesz > len - off)) {
		boot_err(err, errlen,
			 "kernel '%s': Multiboot load_end_addr 0x%x is before load_addr 0x%x or past the "
			 "file's end",
			 path, load_end, load_addr);
		return -ENOEXEC;
	}
	uint64_t memsz = filesz;
	if (bss_end) {
		if ((uint64_t)bss_end < load_addr + filesz) {
			boot_err(err, errlen,
				 "kernel '%s': Multiboot bss_end_addr 0x%x is before the loaded image's end", path,
				 bss_end);
			return -ENOEXEC;
		}
		memsz = (uint64_t)bss_end - load_addr;
	}
	if (!memsz || ent < load_addr || ent - load_addr >= memsz) {
		boot_err(err, errlen, "kernel '%s': Multiboot entry_addr 0x%x is outside the loaded image 0x%x-0x%llx",
			 path, ent, load_addr, (unsigned long long)(load_addr + memsz));
		return -ENOEXEC;
	}
	*seg = (struct mb_seg){.paddr = load_addr, .memsz = memsz, .off = off, .filesz = filesz};
	*entry = ent;
	return 0;
}

/* ELF32 (i386) or ELF64 (x86-64): PT_LOAD segments at their physical
 * addresses; the entry translated from virtual to physical through the
 * segment that holds it, as GRUB does. */
static int elf_segs(const char *path, const uint8_t *img, size_t len, struct mb_seg *seg, unsigned *nseg,
		    uint64_t *entry, char *err, size_t errlen)
{
	int is64 = len >= 5 && img[4] == 2;
	unsigned need = is64 ? 64 : 52, phmin = is64 ? 56 : 32;
	if (len < need || (img[4] != 1 && img[4] != 2) || img[5] != 1 ||
	    get16(img + 18) != (is64 ? 62 /* EM_X86_64 */ : 3 /* EM_386 */)) {
		boot_err(err, errlen, "kernel '%s': a Multiboot ELF kernel must be i386 ELF32 or x86-64 ELF64", path);
		return -ENOEXEC;
	}
	if (get16(img + 16) != 2) {
		boot_err(err, errlen, "kernel '%s': ELF type %u is not an executable", path, get16(img + 16));
		return -ENOEXEC;
	}
	uint64_t e_entry = is64 ? get64(img + 24) : get32(img + 24);
	uint64_t phoff = is64 ? get64(img + 32) : get32(img + 28);
	unsigned phentsize = get16(img + (is64 ? 54 : 42)), phnum = get16(img + (is64 ? 56 : 44));
	if (phentsize < phmin || phnum == 0 || phnum > MB_PHNUM_MAX || phoff > len ||
	    (uint64_t)phnum * phentsize > len - phoff) {
		boot_err(err, errlen, "kernel '%s': bad ELF program headers (%u at 0x%llx, size %u)", path, phnum,
			 (unsigned long long)phoff, phentsize);
		return -ENOEXEC;
	}
	unsigned n = 0;
	uint64_t pentry = UINT64_MAX;
	for (unsigned i = 0; i < phnum; i++) {
		const uint8_t *ph = img + phoff + (uint64_t)i * phentsize;
		struct mb_seg s;
		uint64_t vaddr;
		if (get32(ph) != 1 /* PT_LOAD */)
			continue;
		if (is64) {
			s = (struct mb_seg){.off = get64(ph + 8),
					    .paddr = get64(ph + 24),
					    .filesz = get64(ph + 32),
					    .memsz = get64(ph + 40)};
			vaddr = get64(ph + 16);
		} else {
			s = (struct mb_seg){.off = get32(ph + 4),
					    .paddr = get32(ph + 12),
					    .filesz = get32(ph + 16),
					    .memsz = get32(ph + 20)};
			vaddr = get32(ph + 8);
		}
		if (!s.memsz)
			continue;
		if (s.filesz > s.memsz || s.off > len || s.filesz > len - s.off) {
			boot_err(err, errlen, "kernel '%s': ELF segment %u is out of the file's bounds", path, i);
			return -ENOEXEC;
		}
		if (e_entry >= vaddr && e_entry - vaddr < s.memsz)
			pentry = s.paddr + (e_entry - vaddr);
		seg[n++] = s;
	}
	if (!n) {
		boot_err(err, errlen, "kernel '%s': ELF file has no loadable segment", path);
		return -ENOEXEC;
	}
	if (pentry == UINT64_MAX) {
		boot_err(err, errlen, "kernel '%s': ELF entry 0x%llx is in no loaded segment", path,
			 (unsigned long long)e_entry);
		return -ENOEXEC;
	}
	*nseg = n;
	*entry = pentry;
	return 0;
}

/* The boot data area [MB_INFO, MB_DATA_END): a bump allocator. */
struct mb_area {
	struct machine *m;
	uint64_t next;
};

static uint64_t area_put(struct mb_area *a, const void *p, size_t n, unsigned align)
{
	uint64_t at = (a->next + align - 1) & ~(uint64_t)(align - 1);
	if (at > MB_DATA_END || n > MB_DATA_END - at || gpa_write(a->m, at, p, n) < 0)
		return 0;
	a->next = at + n;
	return at;
}

/* Reads module path to guest RAM at *at (page-aligned, below low_end);
 * moves *at past it. */
static int module_load(struct machine *m, const char *path, uint64_t *at, uint64_t low_end, uint64_t *start,
		       uint64_t *end, char *err, size_t errlen)
{
	uint64_t size;
	uint8_t *dst;
	int fd, e;

	fd = boot_open_file("module", path, &size, err, errlen);
	if (fd < 0)
		return fd;
	if (*at > low_end || size > low_end - *at) {
		boot_err(err, errlen, "module '%s': %llu bytes do not fit in guest RAM above the kernel (more --mem?)",
			 path, (unsigned long long)size);
		e = -ENOMEM;
		goto err_fd;
	}
	dst = gpa_ptr(m, *at, size ? size : 1);
	if (!dst) {
		boot_err(err, errlen, "module '%s': no guest RAM at 0x%llx", path, (unsigned long long)*at);
		e = -ENOMEM;
		goto err_fd;
	}
	if ((e = boot_read_all(fd, dst, size, "module", path, err, errlen)))
		goto err_fd;
	close(fd);
	*start = *at;
	*end = *at + size;
	*at = (*end + 0xfff) & ~0xfffull;
	return 0;
err_fd:
	close(fd);
	return e;
}

/* Loads the modules named in list (comma-separated) and writes the module
 * list; *count and *addr for the information structure. */
struct mb_mod {
	uint32_t start, end, str; /* str: the name's address in the boot data */
};

static int modules_load(struct machine *m, struct mb_area *a, const char *list, uint64_t kend, uint64_t low_end,
			uint32_t *count, uint32_t *addr, struct mb_mod *mods, char *err, size_t errlen)
{
	char *copy = strdup(list), *save = NULL;
	uint8_t tab[MB_MODS_MAX * MB_MOD_SIZE];
	uint64_t at = (kend + 0xfff) & ~0xfffull;
	unsigned n = 0;
	int r = 0;

	if (!copy) {
		boot_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!list[0] || list[0] == ',' || list[strlen(list) - 1] == ',' || strstr(list, ",,")) {
		boot_err(err, errlen, "--initrd '%s': an empty module name (give FILE[,FILE...])", list);
		r = -EINVAL;
		goto out;
	}
	for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		uint64_t start = 0, end = 0, str;
		if (n == MB_MODS_MAX) {
			boot_err(err, errlen, "--initrd: more than %d Multiboot modules", MB_MODS_MAX);
			r = -E2BIG;
			goto out;
		}
		if ((r = module_load(m, name, &at, low_end, &start, &end, err, errlen)) < 0)
			goto out;
		/* QEMU's convention: a module's command line is its file name */
		if (!(str = area_put(a, name, strlen(name) + 1, 1))) {
			boot_err(err, errlen, "module names do not fit in the Multiboot boot data area");
			r = -E2BIG;
			goto out;
		}
		put32(tab + n * MB_MOD_SIZE, (uint32_t)start);
		put32(tab + n * MB_MOD_SIZE + 4, (uint32_t)end);
		put32(tab + n * MB_MOD_SIZE + 8, (uint32_t)str);
		put32(tab + n * MB_MOD_SIZE + 12, 0);
		mods[n] = (struct mb_mod){(uint32_t)start, (uint32_t)end, (uint32_t)str};
		n++;
	}
	*count = n;
	if (!(*addr = (uint32_t)area_put(a, tab, n * MB_MOD_SIZE, 16))) {
		boot_err(err, errlen, "the module list does not fit in the Multiboot boot data area");
		r = -E2BIG;
	}
out:
	free(copy);
	return r;
}

/* Checks segs, then copies them from img into guest RAM; *kend: the end
 * of the highest. */
static int segs_load(struct machine *m, const char *path, const uint8_t *img, const struct mb_seg *seg, unsigned nseg,
		     uint64_t low_end, uint64_t *kend, char *err, size_t errlen)
{
	int r = segs_check(path, seg, nseg, low_end, err, errlen);
	if (r < 0)
		return r;
	*kend = 0;
	for (unsigned i = 0; i < nseg; i++) {
		uint8_t *dst = gpa_ptr(m, seg[i].paddr, seg[i].memsz);
		if (!dst) {
			boot_err(err, errlen, "kernel '%s': no guest RAM at 0x%llx", path,
				 (unsigned long long)seg[i].paddr);
			return -ENOMEM;
		}
		memcpy(dst, img + seg[i].off, seg[i].filesz);
		memset(dst + seg[i].filesz, 0, seg[i].memsz - seg[i].filesz);
		if (seg[i].paddr + seg[i].memsz > *kend)
			*kend = seg[i].paddr + seg[i].memsz;
	}
	return 0;
}

static void seg_set(struct cpu_seg *s, uint16_t sel, uint16_t attr)
{
	*s = (struct cpu_seg){.base = 0, .limit = 0xffffffff, .sel = sel, .attr = attr};
}

/* §3.2 "Machine state": EAX magic, EBX the information structure, CS a
 * flat 32-bit code segment, the others flat data, A20 on (corral has no
 * A20 gate), CR0.PG clear and PE set, EFLAGS.VM and IF clear. */
static void setup_bsp(struct cpu_state *s, uint32_t magic, uint64_t entry, uint64_t info)
{
	memset(s, 0, sizeof(*s));
	s->gpr[R_RAX] = magic;
	s->gpr[R_RBX] = info;
	s->gpr[R_RSP] = MB_STACK;
	s->rip = entry;
	s->rflags = 0x2;
	seg_set(&s->seg[SEG_CS], MB_CS, 0xc09b); /* G DB P S type=exec/read,accessed */
	for (int k = 0; k < 6; k++)
		if (k != SEG_CS)
			seg_set(&s->seg[k], MB_DS, 0xc093); /* G DB P S type=rw,accessed */
	s->ldtr = (struct cpu_seg){.limit = 0xffff, .attr = 0x82};
	s->tr = (struct cpu_seg){.limit = 0xffff, .attr = 0x8b};
	s->gdtr = (struct cpu_dtr){.base = BOOT_GDT, .limit = 31};
	s->idtr = (struct cpu_dtr){.base = 0, .limit = 0x3ff};
	s->cr0 = 0x31; /* NE ET PE */
	s->xcr0 = 1;
	s->mxcsr = MXCSR_DEFAULT;
	s->x87.fcw = 0x37f;
	s->x87.ftw = 0xffff;
	s->msr.pat = 0x0007040600070406ull;
	s->msr.apic_base = 0xfee00000ull | (1u << 11) | (1u << 8); /* enabled, BSP */
}

/* A GDT with the selectors the entry state names, for a kernel that
 * reloads them before it has its own; then the entry state. */
static int boot_tables(struct machine *m, const struct boot_config *cfg, struct cpu_state *bsp, uint32_t magic,
		       uint64_t entry, uint64_t info, char *err, size_t errlen)
{
	uint8_t gdt[32] = {0};
	(void)cfg;
	put64(gdt + MB_CS, 0x00cf9b000000ffffull);
	put64(gdt + MB_DS, 0x00cf93000000ffffull);
	if (gpa_write(m, BOOT_GDT, gdt, sizeof(gdt)) < 0) {
		boot_err(err, errlen, "cannot write the boot tables to guest RAM");
		return -ENOMEM;
	}
	setup_bsp(bsp, magic, entry, info);
	return 0;
}

int boot_multiboot(struct machine *m, struct cpu_state *bsp, const struct boot_config *cfg, const uint8_t *img,
		   size_t len, size_t hoff, char *err, size_t errlen)
{
	const char *path = cfg->kernel;
	uint64_t low_end = cfg->mem_size < MEM_LOW_END ? cfg->mem_size : MEM_LOW_END;
	uint32_t flags = get32(img + hoff + 4);
	struct mb_seg seg[MB_PHNUM_MAX];
	unsigned nseg = 1;
	uint64_t entry, kend = 0;
	int r;

	if ((r = acpi_build(m, cfg->ncpus)) < 0) {
		boot_err(err, errlen, "cannot build the ACPI tables in guest RAM");
		return r;
	}
	if (flags & 0xffff & ~MBH_KNOWN_REQUIRED) {
		boot_err(err, errlen,
			 "kernel '%s': Multiboot header asks for features corral does not offer (flags 0x%x)", path,
			 flags);
		return -ENOEXEC;
	}
	if ((flags & MBH_AOUT_KLUDGE) && len - hoff < 32) {
		boot_err(err, errlen, "kernel '%s': Multiboot header at 0x%zx is cut off before its address fields",
			 path, hoff);
		return -ENOEXEC;
	}
	if (flags & MBH_AOUT_KLUDGE)
		r = aout_segs(path, len, hoff, get32(img + hoff + 12), get32(img + hoff + 16), get32(img + hoff + 20),
			      get32(img + hoff + 24), get32(img + hoff + 28), &seg[0], &entry, err, errlen);
	else if (len >= 4 && !memcmp(img,
				     "\x7f"
				     "ELF",
				     4))
		r = elf_segs(path, img, len, seg, &nseg, &entry, err, errlen);
	else {
		boot_err(err, errlen, "kernel '%s': Multiboot kernel is neither ELF nor has the a.out kludge (flag 16)",
			 path);
		r = -ENOEXEC;
	}
	if (r < 0)
		return r;
	if ((r = segs_load(m, path, img, seg, nseg, low_end, &kend, err, errlen)) < 0)
		return r;

	/* The information structure (§3.3). */
	uint8_t info[MBI_SIZE] = {0};
	struct mb_area a = {.m = m, .next = MB_INFO + MBI_SIZE};
	uint8_t mmap[BOOT_E820_MAX * MB_MMAP_ENTRY];
	struct boot_e820 e820[BOOT_E820_MAX];
	unsigned ne = boot_e820(cfg->mem_size, e820);
	for (unsigned k = 0; k < ne; k++) {
		put32(mmap + k * MB_MMAP_ENTRY, MB_MMAP_ENTRY - 4);
		put64(mmap + k * MB_MMAP_ENTRY + 4, e820[k].addr);
		put64(mmap + k * MB_MMAP_ENTRY + 12, e820[k].size);
		put32(mmap + k * MB_MMAP_ENTRY + 20, e820[k].type);
	}
	uint64_t mmap_at = area_put(&a, mmap, ne * MB_MMAP_ENTRY, 8);
	uint64_t name_at = area_put(&a, "corral", 7, 1);
	const char *cmdline = cfg->cmdline && !cfg->cmdline_default ? cfg->cmdline : "";
	uint64_t cmd_at = area_put(&a, cmdline, strlen(cmdline) + 1, 1);
	if (!mmap_at || !name_at || !cmd_at) {
		boot_err(err, errlen, "the kernel command line does not fit in the Multiboot boot data area (%llu KiB)",
			 (unsigned long long)((MB_DATA_END - MB_INFO) >> 10));
		return -E2BIG;
	}
	uint32_t flags_out = MBI_MEMORY | MBI_CMDLINE | MBI_MMAP | MBI_LOADER_NAME;
	put32(info + MBI_MEM_LOWER, (uint32_t)(MEM_EBDA_START >> 10));
	put32(info + MBI_MEM_UPPER, (uint32_t)((low_end - MB_LOAD_MIN) >> 10));
	put32(info + MBI_CMDLINE_PTR, (uint32_t)cmd_at);
	put32(info + MBI_MMAP_LENGTH, ne * MB_MMAP_ENTRY);
	put32(info + MBI_MMAP_ADDR, (uint32_t)mmap_at);
	put32(info + MBI_LOADER_NAME_PTR, (uint32_t)name_at);
	if (cfg->initrd) {
		uint32_t count, addr;
		struct mb_mod mods[MB_MODS_MAX];
		if ((r = modules_load(m, &a, cfg->initrd, kend, low_end, &count, &addr, mods, err, errlen)) < 0)
			return r;
		flags_out |= MBI_MODS;
		put32(info + MBI_MODS_COUNT, count);
		put32(info + MBI_MODS_ADDR, addr);
	}
	put32(info + MBI_FLAGS, flags_out);
	if (gpa_write(m, MB_INFO, info, sizeof(info)) < 0) {
		boot_err(err, errlen, "cannot write the Multiboot information to guest RAM");
		return -ENOMEM;
	}

	return boot_tables(m, cfg, bsp, MULTIBOOT_BOOTLOADER_MAGIC, entry, MB_INFO, err, errlen);
}

/* ---- Multiboot 2 (the Multiboot2 specification, version 2.0) ---- */

#define MB2_ARCH_I386 0
#define MB2_TAG_END 0
#define MB2_TAG_INFO_REQUEST 1
#define MB2_TAG_ADDRESS 2
#define MB2_TAG_ENTRY 3
#define MB2_TAG_CONSOLE 4
#define MB2_TAG_FRAMEBUFFER 5
#define MB2_TAG_MODULE_ALIGN 6
#define MB2_TAG_RELOCATABLE 10
#define MB2_TAG_OPTIONAL 1
/* information tags corral gives */
#define MB2_INFO_CMDLINE 1
#define MB2_INFO_LOADER_NAME 2
#define MB2_INFO_MODULE 3
#define MB2_INFO_MEMINFO 4
#define MB2_INFO_MMAP 6
#define MB2_INFO_ACPI_OLD 14
#define MB2_INFO_ACPI_NEW 15
#define MB2_RSDP_V1 20
#define MB2_RSDP_V2 36

long multiboot2_find(const uint8_t *img, size_t len)
{
	size_t end = len < MULTIBOOT2_SEARCH ? len : MULTIBOOT2_SEARCH;
	for (size_t off = 0; off + 16 <= end; off += 8) {
		uint32_t magic = get32(img + off), arch = get32(img + off + 4), hlen = get32(img + off + 8);
		if (magic == MULTIBOOT2_HEADER_MAGIC && (uint32_t)(magic + arch + hlen + get32(img + off + 12)) == 0)
			return (long)off;
	}
	return -1;
}

/* The information structure under construction: tags, each 8-aligned. */
struct mb2_info {
	uint8_t *p;
	size_t len, cap;
};

static int mb2_tag(struct mb2_info *b, uint32_t type, const void *body, size_t n, const void *body2, size_t n2)
{
	size_t size = 8 + n + n2, padded = (size + 7) & ~(size_t)7;
	if (padded > b->cap - b->len)
		return -E2BIG;
	put32(b->p + b->len, type);
	put32(b->p + b->len + 4, (uint32_t)size);
	if (n)
		memcpy(b->p + b->len + 8, body, n);
	if (n2)
		memcpy(b->p + b->len + 8 + n, body2, n2);
	memset(b->p + b->len + size, 0, padded - size);
	b->len += padded;
	return 0;
}

static int mb2_info_supported(uint32_t type)
{
	return type == MB2_INFO_CMDLINE || type == MB2_INFO_LOADER_NAME || type == MB2_INFO_MODULE ||
	       type == MB2_INFO_MEMINFO || type == MB2_INFO_MMAP || type == MB2_INFO_ACPI_OLD ||
	       type == MB2_INFO_ACPI_NEW;
}

int boot_multiboot2(struct machine *m, struct cpu_state *bsp, const struct boot_config *cfg, const uint8_t *img,
		    size_t len, size_t hoff, char *err, size_t errlen)
{
	const char *path = cfg->kernel;
	uint64_t low_end = cfg->mem_size < MEM_LOW_END ? cfg->mem_size : MEM_LOW_END;
	uint32_t arch = get32(img + hoff + 4), hlen = get32(img + hoff + 8);
	const uint8_t *addr_tag = NULL;
	uint32_t entry_tag = 0;
	int have_entry = 0, ended = 0, r;

	if (arch != MB2_ARCH_I386) {
		boot_err(err, errlen, "kernel '%s': Multiboot 2 architecture %u is not i386 (0)", path, arch);
		return -ENOEXEC;
	}
	if (hlen < 24 || hlen > len - hoff) {
		boot_err(err, errlen, "kernel '%s': Multiboot 2 header length %u runs past the file or holds no tags",
			 path, hlen);
		return -ENOEXEC;
	}
	/* §3.1.3: tags, each 8-aligned, up to the end tag */
	for (size_t off = 16; !ended && off + 8 <= hlen;) {
		const uint8_t *t = img + hoff + off;
		uint16_t type = get16(t), flags = get16(t + 2);
		uint32_t size = get32(t + 4);
		int optional = flags & MB2_TAG_OPTIONAL;
		if (size < 8 || size > hlen - off) {
			boot_err(err, errlen, "kernel '%s': Multiboot 2 header tag at +0x%zx has a bad size %u", path,
				 off, size);
			return -ENOEXEC;
		}
		switch (type) {
		case MB2_TAG_END: ended = 1; break;
		case MB2_TAG_INFO_REQUEST:
			for (uint32_t k = 8; !optional && k + 4 <= size; k += 4) {
				if (!mb2_info_supported(get32(t + k))) {
					boot_err(err, errlen,
						 "kernel '%s': Multiboot 2 header asks for information corral does not "
						 "give (type %u)",
						 path, get32(t + k));
					return -ENOEXEC;
				}
			}
			break;
		case MB2_TAG_ADDRESS:
			if (size < 24) {
				boot_err(err, errlen, "kernel '%s': Multiboot 2 address tag is too short", path);
				return -ENOEXEC;
			}
			addr_tag = t;
			break;
		case MB2_TAG_ENTRY:
			if (size < 12) {
				boot_err(err, errlen, "kernel '%s': Multiboot 2 entry address tag is too short", path);
				return -ENOEXEC;
			}
			entry_tag = get32(t + 8);
			have_entry = 1;
			break;
		case MB2_TAG_CONSOLE:	   /* corral's console is COM1 and text mode: nothing to choose */
		case MB2_TAG_MODULE_ALIGN: /* modules are always page-aligned */
		case MB2_TAG_RELOCATABLE: /* the kernel is loaded where it asks */ break;
		default:
			/* framebuffer, EFI boot services and entries, and the unknown */
			if (!optional) {
				boot_err(err, errlen,
					 "kernel '%s': Multiboot 2 header needs a feature corral does not offer "
					 "(tag type %u)",
					 path, type);
				return -ENOEXEC;
			}
			break;
		}
		off += ((uint64_t)size + 7) & ~7ull;
	}
	if (!ended) {
		boot_err(err, errlen, "kernel '%s': Multiboot 2 header has no end tag", path);
		return -ENOEXEC;
	}

	struct mb_seg seg[MB_PHNUM_MAX];
	unsigned nseg = 1;
	uint64_t entry = 0, kend = 0;
	if (addr_tag) {
		uint32_t header_addr = get32(addr_tag + 8), load_addr = get32(addr_tag + 12);
		if (!have_entry) {
			boot_err(err, errlen, "kernel '%s': Multiboot 2 address tag without an entry address tag",
				 path);
			return -ENOEXEC;
		}
		/* load_addr -1: the file is loaded from its start */
		if (load_addr == 0xffffffffu)
			load_addr = header_addr >= hoff ? header_addr - (uint32_t)hoff : 0xffffffffu;
		r = aout_segs(path, len, hoff, header_addr, load_addr, get32(addr_tag + 16), get32(addr_tag + 20),
			      entry_tag, &seg[0], &entry, err, errlen);
	} else if (len >= 4 && !memcmp(img,
				       "\x7f"
				       "ELF",
				       4)) {
		r = elf_segs(path, img, len, seg, &nseg, &entry, err, errlen);
		if (!r && have_entry) {
			entry = UINT64_MAX;
			for (unsigned i = 0; i < nseg; i++)
				if (entry_tag >= seg[i].paddr && entry_tag - seg[i].paddr < seg[i].memsz)
					entry = entry_tag;
			if (entry == UINT64_MAX) {
				boot_err(err, errlen,
					 "kernel '%s': Multiboot 2 entry address 0x%x is in no loaded segment", path,
					 entry_tag);
				r = -ENOEXEC;
			}
		}
	} else {
		boot_err(err, errlen, "kernel '%s': Multiboot 2 kernel is neither ELF nor has an address tag", path);
		r = -ENOEXEC;
	}
	if (r < 0)
		return r;
	if ((r = acpi_build(m, cfg->ncpus)) < 0) {
		boot_err(err, errlen, "cannot build the ACPI tables in guest RAM");
		return r;
	}
	if ((r = segs_load(m, path, img, seg, nseg, low_end, &kend, err, errlen)) < 0)
		return r;

	/* Modules first (their names land in the boot data), then the
	 * information structure above them (§3.6). */
	struct mb_area a = {.m = m, .next = MB_INFO};
	struct mb_mod mods[MB_MODS_MAX];
	uint32_t nmods = 0, tab;
	if (cfg->initrd && (r = modules_load(m, &a, cfg->initrd, kend, low_end, &nmods, &tab, mods, err, errlen)) < 0)
		return r;
	uint64_t at = (a.next + 7) & ~7ull;
	struct mb2_info b = {.cap = at < MB_DATA_END ? MB_DATA_END - at : 0};
	b.p = malloc(b.cap ? b.cap : 1);
	if (!b.p) {
		boot_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	const char *cmdline = cfg->cmdline && !cfg->cmdline_default ? cfg->cmdline : "";
	uint8_t meminfo[8], mmap_hdr[8], mmap[BOOT_E820_MAX * MB_MMAP_ENTRY], rsdp[MB2_RSDP_V2];
	struct boot_e820 e820[BOOT_E820_MAX];
	unsigned ne = boot_e820(cfg->mem_size, e820);
	put32(meminfo, (uint32_t)(MEM_EBDA_START >> 10));
	put32(meminfo + 4, (uint32_t)((low_end - MB_LOAD_MIN) >> 10));
	put32(mmap_hdr, MB_MMAP_ENTRY); /* entry_size */
	put32(mmap_hdr + 4, 0);		/* entry_version */
	for (unsigned k = 0; k < ne; k++) {
		put64(mmap + k * MB_MMAP_ENTRY, e820[k].addr);
		put64(mmap + k * MB_MMAP_ENTRY + 8, e820[k].size);
		put32(mmap + k * MB_MMAP_ENTRY + 16, e820[k].type);
		put32(mmap + k * MB_MMAP_ENTRY + 20, 0);
	}
	r = gpa_read(m, BOOT_ACPI_RSDP, rsdp, sizeof(rsdp));
	b.len = 8; /* total_size, reserved */
	r = r < 0 ? -ENOMEM : 0;
	if (!r && b.cap < 8)
		r = -E2BIG;
	if (!r)
		r = mb2_tag(&b, MB2_INFO_CMDLINE, cmdline, strlen(cmdline) + 1, NULL, 0);
	if (!r)
		r = mb2_tag(&b, MB2_INFO_LOADER_NAME, "corral", 7, NULL, 0);
	if (!r)
		r = mb2_tag(&b, MB2_INFO_MEMINFO, meminfo, sizeof(meminfo), NULL, 0);
	if (!r)
		r = mb2_tag(&b, MB2_INFO_MMAP, mmap_hdr, sizeof(mmap_hdr), mmap, ne * MB_MMAP_ENTRY);
	if (!r)
		r = mb2_tag(&b, MB2_INFO_ACPI_OLD, rsdp, MB2_RSDP_V1, NULL, 0);
	if (!r && rsdp[15] >= 2)
		r = mb2_tag(&b, MB2_INFO_ACPI_NEW, rsdp, MB2_RSDP_V2, NULL, 0);
	for (uint32_t k = 0; !r && k < nmods; k++) {
		uint8_t mod[8];
		/* the name as modules_load put it into the boot data */
		const char *name = gpa_ptr(m, mods[k].str, MB_DATA_END - mods[k].str);
		size_t nlen = name ? strnlen(name, MB_DATA_END - mods[k].str) : 0;
		put32(mod, mods[k].start);
		put32(mod + 4, mods[k].end);
		r = name && nlen < MB_DATA_END - mods[k].str
			    ? mb2_tag(&b, MB2_INFO_MODULE, mod, sizeof(mod), name, nlen + 1)
			    : -EFAULT;
	}
	if (!r)
		r = mb2_tag(&b, MB2_TAG_END, NULL, 0, NULL, 0);
	if (!r) {
		put32(b.p, (uint32_t)b.len);
		put32(b.p + 4, 0);
		r = gpa_write(m, at, b.p, b.len) < 0 ? -ENOMEM : 0;
	}
	free(b.p);
	if (r < 0) {
		boot_err(err, errlen,
			 "the kernel command line and module names do not fit in the Multiboot boot data area "
			 "(%llu KiB)",
			 (unsigned long long)((MB_DATA_END - MB_INFO) >> 10));
		return r;
	}
	return boot_tables(m, cfg, bsp, MULTIBOOT2_BOOTLOADER_MAGIC, entry, at, err, errlen);
}
