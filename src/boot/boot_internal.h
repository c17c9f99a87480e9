/* Helpers shared by the boot loader's files and its tests; not part of the
 * module's contract (that is boot.h). */
#ifndef CORRAL_BOOT_INTERNAL_H
#define CORRAL_BOOT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

struct machine;

void boot_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Opens path as a regular file (a FIFO does not block the open): the fd,
 * its size in *size; or -errno and one line in err naming it as what. */
int boot_open_file(const char *what, const char *path, uint64_t *size, char *err, size_t errlen);
/* Reads exactly n bytes of fd into dst: 0, or -errno and one line. */
int boot_read_all(int fd, uint8_t *dst, uint64_t n, const char *what, const char *path, char *err, size_t errlen);

/* Decompresses a kernel payload by its magic (gzip, xz, zstd, lz4 legacy)
 * into a new malloc'd buffer of at most cap bytes. *format names the format
 * found. Returns 0, -EPROTONOSUPPORT (unknown format), -EFBIG (more than
 * cap), -ENOMEM, or -EIO (corrupt or truncated). */
int boot_unpack(const uint8_t *in, size_t inlen, size_t cap, uint8_t **out, size_t *outlen, const char **format);
/* The cache of decompressed payloads in the directory cache (kcache.c;
 * NULL or "": none): get returns 0 and a
 * malloc'd image no longer than cap, or -1; put stores one, best effort. */
int kcache_get(const char *cache, const uint8_t *in, size_t inlen, size_t cap, uint8_t **out, size_t *outlen);
void kcache_put(const char *cache, const uint8_t *in, size_t inlen, const uint8_t *img, size_t len);

/* Loads an x86-64 ELF64 executable's PT_LOAD segments at their physical
 * addresses; *entry is the physical entry point, *kend the image's end. */
int boot_load_elf(struct machine *m, const char *path, const uint8_t *img, size_t len, uint64_t *entry, uint64_t *kend,
		  char *err, size_t errlen);

/* The PC memory map as firmware's e820 reports it (Linux's boot_params,
 * Multiboot's memory map): up to BOOT_E820_MAX entries into map, returns
 * how many. */
#define BOOT_E820_MAX 8
#define E820_TYPE_RAM 1
#define E820_TYPE_RESERVED 2
struct boot_e820 {
	uint64_t addr, size;
	uint32_t type;
};
unsigned boot_e820(uint64_t mem_size, struct boot_e820 *map);

/* ---- Multiboot version 1 (multiboot.c) ---- */
#define MULTIBOOT_SEARCH 8192 /* the header lies in the image's first 8 KiB */
#define MULTIBOOT_HEADER_MAGIC 0x1badb002u
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2badb002u /* EAX at entry */
struct boot_config;
struct cpu_state;
/* The offset of a Multiboot header (magic, 4-byte aligned, checksum) in
 * img's first MULTIBOOT_SEARCH bytes, or -1. */
long multiboot_find(const uint8_t *img, size_t len);
/* Loads the Multiboot kernel img (its header at hoff) and cfg's modules
 * (cfg->initrd: FILE[,FILE...]) into m, builds the information structure
 * and sets *bsp to the 32-bit protected-mode entry state. 0 or -errno with
 * one line in err; the image is hostile input. */
int boot_multiboot(struct machine *m, struct cpu_state *bsp, const struct boot_config *cfg, const uint8_t *img,
		   size_t len, size_t hoff, char *err, size_t errlen);

/* ---- Multiboot 2 (multiboot.c) ---- */
#define MULTIBOOT2_SEARCH 32768 /* the header lies in the image's first 32 KiB, 8-byte aligned */
#define MULTIBOOT2_HEADER_MAGIC 0xe85250d6u
#define MULTIBOOT2_BOOTLOADER_MAGIC 0x36d76289u
/* The offset of a Multiboot 2 header (magic, checksum) or -1. */
long multiboot2_find(const uint8_t *img, size_t len);
/* As boot_multiboot, for a Multiboot 2 kernel (i386 architecture): EAX
 * 0x36d76289, EBX the tagged information structure. */
int boot_multiboot2(struct machine *m, struct cpu_state *bsp, const struct boot_config *cfg, const uint8_t *img,
		    size_t len, size_t hoff, char *err, size_t errlen);

/* ACPI layout inside [BOOT_ACPI_RSDP, BOOT_ACPI_END) */
#define ACPI_XSDT_ADDR 0xe0040ull
#define ACPI_FADT_ADDR 0xe0100ull
#define ACPI_FACS_ADDR 0xe0240ull /* 64-byte aligned, as the spec requires */
#define ACPI_MADT_ADDR 0xe0280ull
#define ACPI_MCFG_ADDR 0xe0700ull
#define ACPI_DSDT_ADDR 0xe0800ull

#endif
