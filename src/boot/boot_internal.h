/* Helpers shared by the boot loader's files and its tests; not part of the
 * module's contract (that is boot.h). */
#ifndef CORRAL_BOOT_INTERNAL_H
#define CORRAL_BOOT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

struct machine;

void boot_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

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

/* ACPI layout inside [BOOT_ACPI_RSDP, BOOT_ACPI_END) */
#define ACPI_XSDT_ADDR 0xe0040ull
#define ACPI_FADT_ADDR 0xe0100ull
#define ACPI_FACS_ADDR 0xe0240ull /* 64-byte aligned, as the spec requires */
#define ACPI_MADT_ADDR 0xe0280ull
#define ACPI_MCFG_ADDR 0xe0700ull
#define ACPI_DSDT_ADDR 0xe0800ull

#endif
