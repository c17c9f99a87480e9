/* Linux loader: bzImage (payload decompressed on the host) or vmlinux ELF,
 * entered directly through the 64-bit boot protocol (Documentation/x86/boot.rst). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lz4.h>
#include <lzma.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "boot/boot.h"
#include "boot/boot_internal.h"
#include "cpu/cpu.h"
#include "machine/machine.h"

/*
 * Guest physical layout at entry (everything below 1 MiB is fixed):
 *   0x00500  GDT (4 entries: null, null, __BOOT_CS 0x10, __BOOT_DS 0x18)
 *   0x07000  zero page (struct boot_params); the entry stack grows down below it
 *   0x09000  PML4, 0x0a000 PDPT, 0x0b000-0x0efff four page directories:
 *            an identity map of [0, 4 GiB) in 2 MiB pages
 *   0x20000  kernel command line (at most BOOT_CMDLINE_MAX bytes)
 *   0xe0000  ACPI tables (RSDP first, found by the kernel's legacy scan too)
 *   kernel   its PT_LOAD segments at their p_paddr (16 MiB for Debian's)
 *   initrd   page-aligned at the top of RAM below 4 GiB (and below the
 *            kernel's initrd_addr_max)
 */

/* Caps on what a kernel file may make us allocate. */
#define KERNEL_FILE_MAX (512ull << 20)
#define KERNEL_IMAGE_MAX (512ull << 20) /* decompressed vmlinux */
#define ELF_PHNUM_MAX 64
#define LZ4_LEGACY_MAGIC 0x184c2102u
#define LZ4_LEGACY_BLOCK (8u << 20) /* the kernel's lz4 -l block size */

/* struct boot_params offsets (arch/x86/include/uapi/asm/bootparam.h) */
#define BP_ACPI_RSDP 0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128
/* setup header fields, at their offsets in boot_params and in the bzImage */
#define HDR_SETUP_SECTS 0x1f1
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PAYLOAD_OFFSET 0x248
#define HDR_PAYLOAD_LENGTH 0x24c
#define HDR_END_MIN 0x268 /* through init_size: all a 2.08+ loader reads */
#define LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x01
#define E820_RAM 1
#define E820_RESERVED 2

void boot_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

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

int boot_open_file(const char *what, const char *path, uint64_t *size, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not hang the open */
	if (fd < 0) {
		int e = errno;
		boot_err(err, errlen, "%s '%s': %s", what, path, strerror(e));
		return -e;
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;
		boot_err(err, errlen, "%s '%s': %s", what, path, strerror(e));
		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		boot_err(err, errlen, "%s '%s': not a regular file", what, path);
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

int boot_read_all(int fd, uint8_t *dst, uint64_t n, const char *what, const char *path, char *err, size_t errlen)
{
	uint64_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, dst + done, (size_t)(n - done));
		if (r <= 0) {
			int e = r < 0 ? errno : EIO;
			boot_err(err, errlen, "%s '%s': read failed: %s", what, path, strerror(e));
			return -e;
		}
		done += (uint64_t)r;
	}
	return 0;
}

/* Reads a whole file of at most max bytes into a new buffer. */
static int file_read(const char *what, const char *path, uint64_t max, uint8_t **out, size_t *outlen, char *err,
		     size_t errlen)
{
	uint64_t size;
	uint8_t *buf;
	int fd, e;

	fd = boot_open_file(what, path, &size, err, errlen);
	if (fd < 0)
		return fd;
	if (size > max) {
		e = -EFBIG;
		boot_err(err, errlen, "%s '%s': too large (%llu bytes, at most %llu)", what, path,
			 (unsigned long long)size, (unsigned long long)max);
		goto err_fd;
	}
	buf = malloc(size ? (size_t)size : 1);
	if (!buf) {
		e = -ENOMEM;
		boot_err(err, errlen, "%s '%s': out of memory", what, path);
		goto err_fd;
	}
	if ((e = boot_read_all(fd, buf, size, what, path, err, errlen))) {
		free(buf);
		goto err_fd;
	}
	close(fd);
	*out = buf;
	*outlen = (size_t)size;
	return 0;
err_fd:
	close(fd);
	return e;
}

/* ---- Decompressors: in -> a new buffer of at most cap bytes ---- */

/* A growing output buffer; hint is the expected size (may be wrong). */
struct obuf {
	uint8_t *p;
	size_t len, size, cap;
};

static int obuf_grow(struct obuf *o)
{
	size_t n;
	uint8_t *p;

	if (o->size >= o->cap)
		return -EFBIG;
	n = o->size ? o->size * 2 : (16u << 20);
	if (n > o->cap)
		n = o->cap;
	p = realloc(o->p, n);
	if (!p)
		return -ENOMEM;
	o->p = p;
	o->size = n;
	return 0;
}

static int unpack_gzip(const uint8_t *in, size_t inlen, struct obuf *o)
{
	z_stream z;
	int r, ret = 0;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)(inlen > UINT_MAX ? UINT_MAX : inlen);
	for (;;) {
		if (o->len == o->size && (ret = obuf_grow(o)) < 0)
			break;
		z.next_out = o->p + o->len;
		z.avail_out = (uInt)((o->size - o->len) > UINT_MAX ? UINT_MAX : (o->size - o->len));
		r = inflate(&z, Z_NO_FLUSH);
		o->len = (size_t)(z.next_out - o->p);
		if (r == Z_STREAM_END)
			break;
		if (r == Z_BUF_ERROR && z.avail_out) {
			ret = -EIO; /* truncated input */
			break;
		}
		if (r != Z_OK && r != Z_BUF_ERROR) {
			ret = -EIO;
			break;
		}
	}
	inflateEnd(&z);
	return ret;
}

static int unpack_xz(const uint8_t *in, size_t inlen, struct obuf *o)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_ret r;
	int ret = 0;

	/* The kernel's xz uses a 32 MiB dictionary at most; a header asking
	 * for more memory than this is hostile, not a kernel. */
	if (lzma_stream_decoder(&s, 256u << 20, 0) != LZMA_OK)
		return -ENOMEM;
	s.next_in = in;
	s.avail_in = inlen;
	for (;;) {
		if (o->len == o->size && (ret = obuf_grow(o)) < 0)
			break;
		s.next_out = o->p + o->len;
		s.avail_out = o->size - o->len;
		r = lzma_code(&s, LZMA_FINISH);
		o->len = (size_t)(s.next_out - o->p);
		if (r == LZMA_STREAM_END)
			break;
		if (r != LZMA_OK && !(r == LZMA_BUF_ERROR && !s.avail_out)) {
			ret = r == LZMA_MEM_ERROR ? -ENOMEM : -EIO;
			break;
		}
	}
	lzma_end(&s);
	return ret;
}

static int unpack_zstd(const uint8_t *in, size_t inlen, struct obuf *o)
{
	ZSTD_DStream *d = ZSTD_createDStream();
	ZSTD_inBuffer ib = {in, inlen, 0};
	size_t r;
	int ret = 0;

	if (!d)
		return -ENOMEM;
	/* The kernel's zstd payload is one frame; cap the window like the
	 * kernel's own decompressor does (it allows up to 128 MiB). */
	ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 27);
	for (;;) {
		ZSTD_outBuffer ob;
		if (o->len == o->size && (ret = obuf_grow(o)) < 0)
			break;
		ob.dst = o->p;
		ob.size = o->size;
		ob.pos = o->len;
		r = ZSTD_decompressStream(d, &ob, &ib);
		o->len = ob.pos;
		if (ZSTD_isError(r)) {
			ret = -EIO;
			break;
		}
		if (r == 0)
			break; /* end of the frame */
		if (ib.pos == ib.size && ob.pos < ob.size) {
			ret = -EIO; /* truncated */
			break;
		}
	}
	ZSTD_freeDStream(d);
	return ret;
}

/* lz4 legacy format (lz4 -l, what the kernel uses): a magic, then blocks of
 * [le32 compressed size][data], each decoding to at most 8 MiB. The kernel
 * build appends the le32 decompressed size after the last block. */
static int unpack_lz4(const uint8_t *in, size_t inlen, struct obuf *o)
{
	size_t pos = 4;
	int ret;

	while (inlen - pos >= 4) {
		uint32_t n = get32(in + pos);
		int r;

		if (n == LZ4_LEGACY_MAGIC) { /* concatenated stream */
			pos += 4;
			continue;
		}
		if (inlen - pos == 4 && o->len)
			break; /* the appended size */
		pos += 4;
		if (n > inlen - pos || n > (unsigned)LZ4_compressBound(LZ4_LEGACY_BLOCK))
			return -EIO;
		while (o->size - o->len < LZ4_LEGACY_BLOCK && o->size < o->cap)
			if ((ret = obuf_grow(o)) < 0)
				return ret;
		{
			size_t room = o->size - o->len;
			if (room > LZ4_LEGACY_BLOCK)
				room = LZ4_LEGACY_BLOCK;
			r = LZ4_decompress_safe((const char *)in + pos, (char *)o->p + o->len, (int)n, (int)room);
		}
		if (r < 0)
			return o->size - o->len < LZ4_LEGACY_BLOCK ? -EFBIG : -EIO;
		o->len += (size_t)r;
		pos += n;
	}
	return o->len ? 0 : -EIO;
}

int boot_unpack(const uint8_t *in, size_t inlen, size_t cap, uint8_t **out, size_t *outlen, const char **format)
{
	struct obuf o = {NULL, 0, 0, cap};
	int ret;

	*format = "unknown";
	if (inlen >= 2 && in[0] == 0x1f && in[1] == 0x8b) {
		*format = "gzip";
		ret = unpack_gzip(in, inlen, &o);
	} else if (inlen >= 6 && !memcmp(in,
					 "\xfd"
					 "7zXZ\0",
					 6)) {
		*format = "xz";
		ret = unpack_xz(in, inlen, &o);
	} else if (inlen >= 4 && get32(in) == 0xfd2fb528u) {
		*format = "zstd";
		ret = unpack_zstd(in, inlen, &o);
	} else if (inlen >= 4 && get32(in) == LZ4_LEGACY_MAGIC) {
		*format = "lz4";
		ret = unpack_lz4(in, inlen, &o);
	} else {
		if (inlen >= 3 && !memcmp(in, "BZh", 3))
			*format = "bzip2";
		else if (inlen >= 3 && in[0] == 0x5d && in[1] == 0 && in[2] == 0)
			*format = "lzma";
		else if (inlen >= 4 && !memcmp(in, "\x89LZO", 4))
			*format = "lzo";
		return -EPROTONOSUPPORT;
	}
	if (ret < 0) {
		free(o.p);
		return ret;
	}
	*out = o.p;
	*outlen = o.len;
	return 0;
}

/* ---- ELF64 vmlinux ---- */

/* Loads the PT_LOAD segments of an x86-64 ELF64 image at their physical
 * addresses; returns the physical entry point and the end of the image. */
int boot_load_elf(struct machine *m, const char *path, const uint8_t *img, size_t len, uint64_t *entry, uint64_t *kend,
		  char *err, size_t errlen)
{
	uint64_t phoff, e_entry, end = 0, pentry = UINT64_MAX;
	unsigned phnum, phentsize, i, loads = 0;

	if (len < 64 || memcmp(img,
			       "\x7f"
			       "ELF",
			       4)) {
		boot_err(err, errlen, "kernel '%s': not an ELF file", path);
		return -ENOEXEC;
	}
	if (img[4] != 2 || img[5] != 1 || get16(img + 18) != 62) {
		boot_err(err, errlen, "kernel '%s': not an x86-64 kernel (ELF class %u, data %u, machine %u)", path,
			 img[4], img[5], img[4] == 2 && len >= 20 ? get16(img + 18) : 0);
		return -ENOEXEC;
	}
	if (get16(img + 16) != 2) {
		boot_err(err, errlen, "kernel '%s': ELF type %u is not an executable", path, get16(img + 16));
		return -ENOEXEC;
	}
	e_entry = get64(img + 24);
	phoff = get64(img + 32);
	phentsize = get16(img + 54);
	phnum = get16(img + 56);
	if (phentsize < 56 || phnum == 0 || phnum > ELF_PHNUM_MAX || phoff > len ||
	    (uint64_t)phnum * phentsize > len - phoff) {
		boot_err(err, errlen, "kernel '%s': bad ELF program headers (%u at 0x%llx, size %u)", path, phnum,
			 (unsigned long long)phoff, phentsize);
		return -ENOEXEC;
	}
	for (i = 0; i < phnum; i++) {
		const uint8_t *ph = img + phoff + (uint64_t)i * phentsize;
		uint64_t off = get64(ph + 8), vaddr = get64(ph + 16), paddr = get64(ph + 24);
		uint64_t filesz = get64(ph + 32), memsz = get64(ph + 40);
		uint8_t *dst;

		if (get32(ph) != 1 /* PT_LOAD */ || memsz == 0)
			continue;
		if (filesz > memsz || off > len || filesz > len - off || memsz > KERNEL_IMAGE_MAX) {
			boot_err(err, errlen, "kernel '%s': ELF segment %u out of the file's bounds", path, i);
			return -ENOEXEC;
		}
		if (paddr > UINT64_MAX - memsz || !(dst = gpa_ptr(m, paddr, memsz))) {
			if (paddr + memsz > paddr && paddr + memsz <= MEM_LOW_END) {
				boot_err(err, errlen,
					 "kernel '%s' needs more guest RAM: it loads up to %llu MiB "
					 "(give more --mem)",
					 path, (unsigned long long)((paddr + memsz + (1u << 20) - 1) >> 20));
				return -ENOMEM;
			}
			boot_err(err, errlen, "kernel '%s': segment at 0x%llx-0x%llx is outside guest RAM", path,
				 (unsigned long long)paddr, (unsigned long long)(paddr + memsz));
			return -ENOEXEC;
		}
		if (paddr < BOOT_CMDLINE + BOOT_CMDLINE_MAX && paddr + memsz > BOOT_GDT) {
			boot_err(err, errlen, "kernel '%s': segment at 0x%llx overlaps the boot data below 1 MiB", path,
				 (unsigned long long)paddr);
			return -ENOEXEC;
		}
		memcpy(dst, img + off, filesz);
		memset(dst + filesz, 0, memsz - filesz);
		if (paddr + memsz > end)
			end = paddr + memsz;
		/* e_entry is a kernel virtual address (upper half) or already
		 * physical (x86 vmlinux links ENTRY(phys_startup_64)); a lower-
		 * half e_entry is never matched against virtual addresses, since
		 * the per-CPU segment is linked at virtual 0. */
		if (e_entry >> 63) {
			if (e_entry >= vaddr && e_entry - vaddr < memsz)
				pentry = paddr + (e_entry - vaddr);
		} else if (e_entry >= paddr && e_entry - paddr < memsz) {
			pentry = e_entry;
		}
		loads++;
	}
	if (!loads) {
		boot_err(err, errlen, "kernel '%s': ELF file has no loadable segment", path);
		return -ENOEXEC;
	}
	if (pentry == UINT64_MAX) {
		boot_err(err, errlen, "kernel '%s': ELF entry 0x%llx is in no loaded segment", path,
			 (unsigned long long)e_entry);
		return -ENOEXEC;
	}
	*entry = pentry;
	*kend = end;
	return 0;
}

/* ---- bzImage ---- */

int boot_kcache_fill(const char *cache, const char *path, char *err, size_t errlen)
{
	uint8_t *img, *vmlinux = NULL;
	size_t len, vlen;
	const char *format;
	if (!cache || !*cache)
		return 0;
	int ret = file_read("kernel", path, KERNEL_FILE_MAX, &img, &len, err, errlen);
	if (ret < 0)
		return ret;
	ret = 0;
	if (len >= HDR_MAGIC + 8 && !memcmp(img + HDR_MAGIC, "HdrS", 4) && get16(img + HDR_VERSION) >= 0x208) {
		unsigned setup_sects = img[HDR_SETUP_SECTS] ? img[HDR_SETUP_SECTS] : 4;
		uint64_t pm_off = ((uint64_t)setup_sects + 1) * 512, poff = get32(img + HDR_PAYLOAD_OFFSET),
			 plen = get32(img + HDR_PAYLOAD_LENGTH);
		/* the same bounds load_bzimage checks; what it would refuse is left to it */
		if (pm_off <= len && poff <= len - pm_off && plen <= len - pm_off - poff && plen >= 4 &&
		    kcache_get(cache, img + pm_off + poff, plen, KERNEL_IMAGE_MAX, &vmlinux, &vlen) < 0 &&
		    boot_unpack(img + pm_off + poff, plen, KERNEL_IMAGE_MAX, &vmlinux, &vlen, &format) == 0) {
			kcache_put(cache, img + pm_off + poff, plen, vmlinux, vlen);
			ret = 1;
		}
	}
	free(vmlinux);
	free(img);
	return ret;
}

/* Validates a bzImage's setup header, decompresses its payload and loads
 * the vmlinux inside. hdr gets the setup header (at boot_params offsets). */
static int load_bzimage(struct machine *m, const char *path, const char *kcache, const uint8_t *img, size_t len,
			uint64_t mem_cap, uint8_t *zp, uint64_t *entry, uint64_t *kend, char *err, size_t errlen)
{
	unsigned version = get16(img + HDR_VERSION), setup_sects = img[HDR_SETUP_SECTS];
	uint64_t pm_off, poff, plen, hdr_end;
	const char *format;
	uint8_t *vmlinux;
	size_t vlen, cap;
	int ret;

	if (version < 0x206) {
		boot_err(err, errlen, "kernel '%s': boot protocol %u.%02u is too old (need 2.08)", path, version >> 8,
			 version & 0xff);
		return -ENOEXEC;
	}
	if (version < 0x208) {
		boot_err(err, errlen, "kernel '%s': boot protocol %u.%02u has no payload fields (need 2.08)", path,
			 version >> 8, version & 0xff);
		return -ENOEXEC;
	}
	/* The setup header ends where its jump instruction lands. */
	hdr_end = HDR_JUMP + 2 + (uint64_t)img[HDR_JUMP + 1];
	if (hdr_end < HDR_END_MIN)
		hdr_end = HDR_END_MIN;
	if (hdr_end > 0x290 /* edd_mbr_sig_buffer follows the header */ || hdr_end > len) {
		boot_err(err, errlen, "kernel '%s': truncated setup header", path);
		return -ENOEXEC;
	}
	if (version >= 0x20c && !(get16(img + HDR_XLOADFLAGS) & XLF_KERNEL_64)) {
		boot_err(err, errlen, "kernel '%s': not a 64-bit kernel (no XLF_KERNEL_64)", path);
		return -ENOEXEC;
	}
	if (!setup_sects)
		setup_sects = 4;
	pm_off = ((uint64_t)setup_sects + 1) * 512;
	poff = get32(img + HDR_PAYLOAD_OFFSET);
	plen = get32(img + HDR_PAYLOAD_LENGTH);
	if (pm_off > len || poff > len - pm_off || plen > len - pm_off - poff || plen < 4) {
		boot_err(err, errlen,
			 "kernel '%s': payload (offset 0x%llx, length %llu) lies outside the %zu-byte "
			 "file",
			 path, (unsigned long long)(pm_off + poff), (unsigned long long)plen, len);
		return -ENOEXEC;
	}
	cap = mem_cap < KERNEL_IMAGE_MAX ? (size_t)mem_cap : (size_t)KERNEL_IMAGE_MAX;
	int cached = kcache_get(kcache, img + pm_off + poff, plen, cap, &vmlinux, &vlen) == 0;
	ret = cached ? 0 : boot_unpack(img + pm_off + poff, plen, cap, &vmlinux, &vlen, &format);
	if (ret == -EPROTONOSUPPORT) {
		boot_err(err, errlen,
			 "kernel '%s': %s-compressed payload is not supported "
			 "(gzip, xz, zstd, lz4 are)",
			 path, format);
		return -ENOEXEC;
	}
	if (ret == -EFBIG) {
		boot_err(err, errlen,
			 "kernel '%s': %s payload decompresses to more than %zu MiB "
			 "(more --mem?)",
			 path, format, cap >> 20);
		return mem_cap < KERNEL_IMAGE_MAX ? -ENOMEM : -EFBIG;
	}
	if (ret < 0) {
		boot_err(err, errlen, "kernel '%s': %s payload: %s", path, format,
			 ret == -ENOMEM ? "out of memory" : "corrupt or truncated data");
		return ret == -ENOMEM ? -ENOMEM : -ENOEXEC;
	}
	ret = boot_load_elf(m, path, vmlinux, vlen, entry, kend, err, errlen);
	if (ret < 0 && cached) {
		/* a cache entry gone bad: decompress after all */
		free(vmlinux);
		vmlinux = NULL;
		cached = 0;
		ret = boot_unpack(img + pm_off + poff, plen, cap, &vmlinux, &vlen, &format);
		if (ret < 0) {
			boot_err(err, errlen, "kernel '%s': %s payload: corrupt or truncated data", path, format);
			return ret == -ENOMEM ? -ENOMEM : -ENOEXEC;
		}
		ret = boot_load_elf(m, path, vmlinux, vlen, entry, kend, err, errlen);
	}
	if (ret == 0 && !cached)
		kcache_put(kcache, img + pm_off + poff, plen, vmlinux, vlen);
	free(vmlinux);
	if (ret < 0)
		return ret;
	memcpy(zp + BP_HDR, img + BP_HDR, (size_t)hdr_end - BP_HDR);
	return 0;
}

/* A setup header for a kernel that came without one (vmlinux ELF). */
static void synth_header(uint8_t *zp)
{
	put16(zp + HDR_BOOT_FLAG, 0xaa55);
	memcpy(zp + HDR_MAGIC, "HdrS", 4);
	put16(zp + HDR_VERSION, 0x020f);
	zp[HDR_LOADFLAGS] = LOADED_HIGH;
	put32(zp + HDR_INITRD_ADDR_MAX, 0x7fffffff);
	put32(zp + HDR_KERNEL_ALIGNMENT, 0x200000);
	put16(zp + HDR_XLOADFLAGS, XLF_KERNEL_64);
	put32(zp + HDR_CMDLINE_SIZE, BOOT_CMDLINE_MAX - 1);
}

/* ---- Tables and CPU state ---- */

unsigned boot_e820(uint64_t mem_size, struct boot_e820 *map)
{
	uint64_t low_end = mem_size < MEM_LOW_END ? mem_size : MEM_LOW_END;
	unsigned n = 0;

	/* matches machine.h's PC memory map */
	map[n++] = (struct boot_e820){0, MEM_EBDA_START, E820_RAM};
	map[n++] = (struct boot_e820){MEM_EBDA_START, 0x100000 - MEM_EBDA_START, E820_RESERVED};
	map[n++] = (struct boot_e820){0x100000, low_end - 0x100000, E820_RAM};
	/* The ECAM window, as firmware reserves it: the kernel checks MCFG
	 * against this before it uses the window. */
	map[n++] = (struct boot_e820){MEM_PCI_ECAM_BASE, MEM_PCI_ECAM_SIZE, E820_RESERVED};
	if (mem_size > low_end)
		map[n++] = (struct boot_e820){MEM_HIGH_START, mem_size - low_end, E820_RAM};
	return n;
}

static void e820_add(uint8_t *zp, uint64_t addr, uint64_t size, uint32_t type)
{
	unsigned n = zp[BP_E820_ENTRIES];

	if (n >= BP_E820_MAX || !size)
		return;
	put64(zp + BP_E820_TABLE + n * 20, addr);
	put64(zp + BP_E820_TABLE + n * 20 + 8, size);
	put32(zp + BP_E820_TABLE + n * 20 + 16, type);
	zp[BP_E820_ENTRIES] = (uint8_t)(n + 1);
}

static int build_pagetables(struct machine *m)
{
	uint8_t *pml4 = gpa_ptr(m, BOOT_PML4, 0x1000), *pdpt = gpa_ptr(m, BOOT_PDPT, 0x1000);
	uint8_t *pd = gpa_ptr(m, BOOT_PD, 0x4000);
	unsigned i;

	if (!pml4 || !pdpt || !pd)
		return -ENOMEM;
	memset(pml4, 0, 0x1000);
	memset(pdpt, 0, 0x1000);
	put64(pml4, BOOT_PDPT | 0x3); /* P | RW */
	for (i = 0; i < 4; i++)
		put64(pdpt + i * 8, (BOOT_PD + i * 0x1000ull) | 0x3);
	for (i = 0; i < 4 * 512; i++)
		put64(pd + i * 8, ((uint64_t)i << 21) | 0x83); /* P | RW | PS */
	return 0;
}

static int build_gdt(struct machine *m)
{
	uint8_t gdt[32] = {0};

	put64(gdt + BOOT_CS, 0x00af9b000000ffffull); /* 64-bit code, DPL 0 */
	put64(gdt + BOOT_DS, 0x00cf93000000ffffull); /* flat data, DPL 0 */
	return gpa_write(m, BOOT_GDT, gdt, sizeof(gdt));
}

static void seg_set(struct cpu_seg *s, uint16_t sel, uint16_t attr)
{
	s->base = 0;
	s->limit = 0xffffffff;
	s->sel = sel;
	s->attr = attr;
}

/* 64-bit boot protocol: long mode with paging on an identity map of the
 * loader's tables, __BOOT_CS/__BOOT_DS flat, interrupts off, RSI = boot_params. */
static void setup_bsp(struct cpu_state *s, uint64_t entry)
{
	memset(s->gpr, 0, sizeof(s->gpr));
	s->gpr[R_RSI] = BOOT_ZERO_PAGE;
	s->gpr[R_RSP] = BOOT_ZERO_PAGE;
	s->rip = entry;
	s->rflags = 0x2;
	seg_set(&s->seg[SEG_CS], BOOT_CS, 0xa09b); /* G L P S type=exec/read,accessed */
	seg_set(&s->seg[SEG_DS], BOOT_DS, 0xc093); /* G DB P S type=rw,accessed */
	s->seg[SEG_ES] = s->seg[SEG_SS] = s->seg[SEG_FS] = s->seg[SEG_GS] = s->seg[SEG_DS];
	s->ldtr.base = 0;
	s->ldtr.limit = 0xffff;
	s->ldtr.sel = 0;
	s->ldtr.attr = 0x82; /* LDT, present */
	s->tr.base = 0;
	s->tr.limit = 0xffff;
	s->tr.sel = 0;
	s->tr.attr = 0x8b; /* busy 64-bit TSS, present: what VMX/KVM want */
	s->gdtr.base = BOOT_GDT;
	s->gdtr.limit = 31;
	s->idtr.base = 0;
	s->idtr.limit = 0;
	s->cr0 = 0x80000031; /* PG NE ET PE */
	s->cr3 = BOOT_PML4;
	s->cr4 = 0x20;	 /* PAE */
	s->efer = 0xd00; /* NXE LMA LME */
	s->cr2 = 0;
	s->cr8 = 0;
	s->xcr0 = 1;
	s->mxcsr = MXCSR_DEFAULT;
	s->x87.fcw = 0x37f;
	s->x87.ftw = 0xffff;
	if (!s->msr.pat)
		s->msr.pat = 0x0007040600070406ull;
	/* The LAPIC enabled at its reset base, as firmware leaves it. emu's
	 * CPUID ignores this MSR, but KVM's CPUID.1.EDX APIC bit follows it:
	 * with 0 here Linux on kvm found no local APIC and started no APs. */
	if (!s->msr.apic_base)
		s->msr.apic_base = MEM_LAPIC_BASE | (1u << 11) | (1u << 8); /* enabled, BSP */
}

/* Reads the initrd straight into guest RAM at the top of low memory. */
static int load_initrd(struct machine *m, const char *path, uint64_t kend, uint64_t low_end, uint64_t addr_max,
		       uint64_t *addr, uint64_t *size, char *err, size_t errlen)
{
	uint64_t top, at, n;
	uint8_t *dst;
	int fd, e;

	fd = boot_open_file("initrd", path, &n, err, errlen);
	if (fd < 0)
		return fd;
	top = low_end < addr_max + 1 ? low_end : addr_max + 1;
	if (n > top || ((top - n) & ~0xfffull) < kend) {
		boot_err(err, errlen,
			 "initrd '%s': %llu bytes do not fit in guest RAM beside the kernel "
			 "(more --mem?)",
			 path, (unsigned long long)n);
		e = -ENOMEM;
		goto err_fd;
	}
	at = (top - n) & ~0xfffull;
	dst = gpa_ptr(m, at, n ? n : 1);
	if (!dst) {
		boot_err(err, errlen, "initrd '%s': no guest RAM at 0x%llx", path, (unsigned long long)at);
		e = -ENOMEM;
		goto err_fd;
	}
	if ((e = boot_read_all(fd, dst, n, "initrd", path, err, errlen)))
		goto err_fd;
	close(fd);
	*addr = at;
	*size = n;
	return 0;
err_fd:
	close(fd);
	return e;
}

int boot_linux(struct machine *m, struct cpu_state *bsp, const struct boot_config *cfg, char *err, size_t errlen)
{
	const char *path = cfg->kernel, *cmdline;
	uint64_t low_end, high, entry = 0, kend = 0, rd_addr = 0, rd_size = 0, addr_max;
	uint8_t *img = NULL, *zp;
	size_t len = 0, cl_len;
	unsigned version, cl_max;
	int ret;

	if (!path) {
		boot_err(err, errlen, "no kernel given");
		return -EINVAL;
	}
	if (cfg->ncpus < 1 || cfg->ncpus > MACHINE_MAX_CPUS) {
		boot_err(err, errlen, "%u CPUs: corral supports 1 to %d", cfg->ncpus, MACHINE_MAX_CPUS);
		return -EINVAL;
	}
	low_end = cfg->mem_size < MEM_LOW_END ? cfg->mem_size : MEM_LOW_END;
	high = cfg->mem_size - low_end;
	if (low_end < (2u << 20) || !gpa_ptr(m, 0, MEM_EBDA_START) || !gpa_ptr(m, 1u << 20, low_end - (1u << 20)) ||
	    (high && !gpa_ptr(m, MEM_HIGH_START, high))) {
		boot_err(err, errlen,
			 "guest memory of %llu MiB is too small or not mapped as the PC "
			 "memory map says",
			 (unsigned long long)(cfg->mem_size >> 20));
		return -ENOMEM;
	}
	zp = gpa_ptr(m, BOOT_ZERO_PAGE, 0x1000);
	if (!zp || !gpa_ptr(m, BOOT_ACPI_RSDP, BOOT_ACPI_END - BOOT_ACPI_RSDP)) {
		boot_err(err, errlen, "guest RAM below 1 MiB is not mapped");
		return -ENOMEM;
	}

	ret = file_read("kernel", path, KERNEL_FILE_MAX, &img, &len, err, errlen);
	if (ret < 0)
		return ret;
	memset(zp, 0, 0x1000);
	long mb = -1, mb2 = -1;
	/* Multiboot 1 before 2 when a kernel has both, as QEMU offers only 1 */
	int linux_hdr = len >= HDR_MAGIC + 8 && !memcmp(img + HDR_MAGIC, "HdrS", 4);
	if (!linux_hdr && ((mb = multiboot_find(img, len)) >= 0 || (mb2 = multiboot2_find(img, len)) >= 0)) {
		ret = mb >= 0 ? boot_multiboot(m, bsp, cfg, img, len, (size_t)mb, err, errlen)
			      : boot_multiboot2(m, bsp, cfg, img, len, (size_t)mb2, err, errlen);
		free(img);
		return ret;
	}
	if (len >= HDR_MAGIC + 8 && !memcmp(img + HDR_MAGIC, "HdrS", 4)) {
		ret = load_bzimage(m, path, cfg->kernel_cache, img, len, low_end, zp, &entry, &kend, err, errlen);
	} else if (len >= 4 && !memcmp(img,
				       "\x7f"
				       "ELF",
				       4)) {
		ret = boot_load_elf(m, path, img, len, &entry, &kend, err, errlen);
		synth_header(zp);
	} else {
		boot_err(err, errlen, "kernel '%s': not a bzImage or ELF file (bad magic 0x%0*x)", path,
			 len >= 4 ? 8 : (int)len * 2,
			 len >= 4   ? get32(img)
			 : len >= 2 ? get16(img)
			 : len	    ? img[0]
				    : 0);
		ret = -ENOEXEC;
	}
	free(img);
	if (ret < 0)
		return ret;

	version = get16(zp + HDR_VERSION);
	zp[HDR_TYPE_OF_LOADER] = 0xff;
	zp[HDR_LOADFLAGS] |= LOADED_HIGH;

	/* Command line: the header says how long it may be (2.06+). */
	cl_max = get32(zp + HDR_CMDLINE_SIZE);
	if (cl_max > BOOT_CMDLINE_MAX - 1)
		cl_max = BOOT_CMDLINE_MAX - 1;
	cmdline = cfg->cmdline ? cfg->cmdline : BOOT_DEFAULT_CMDLINE;
	cl_len = strlen(cmdline);
	if (cl_len > cl_max) {
		boot_err(err, errlen, "kernel command line is %zu bytes; this kernel takes at most %u", cl_len, cl_max);
		return -E2BIG;
	}
	if (gpa_write(m, BOOT_CMDLINE, cmdline, cl_len) < 0 || gpa_write(m, BOOT_CMDLINE + cl_len, "", 1) < 0) {
		boot_err(err, errlen, "cannot write the command line to guest RAM");
		return -ENOMEM;
	}
	put32(zp + HDR_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE);

	if (cfg->initrd) {
		addr_max = get32(zp + HDR_INITRD_ADDR_MAX);
		if (!addr_max)
			addr_max = 0x37ffffff; /* boot.rst: the default for old kernels */
		ret = load_initrd(m, cfg->initrd, kend, low_end, addr_max, &rd_addr, &rd_size, err, errlen);
		if (ret < 0)
			return ret;
		put32(zp + HDR_RAMDISK_IMAGE, (uint32_t)rd_addr);
		put32(zp + HDR_RAMDISK_SIZE, (uint32_t)rd_size);
		put32(zp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(rd_addr >> 32));
		put32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)(rd_size >> 32));
	}

	struct boot_e820 map[BOOT_E820_MAX];
	unsigned nmap = boot_e820(cfg->mem_size, map);
	for (unsigned k = 0; k < nmap; k++)
		e820_add(zp, map[k].addr, map[k].size, map[k].type);

	ret = acpi_build(m, cfg->ncpus);
	if (ret < 0) {
		boot_err(err, errlen, "cannot build the ACPI tables in guest RAM");
		return ret;
	}
	if (version >= 0x20e)
		put64(zp + BP_ACPI_RSDP, BOOT_ACPI_RSDP);
	if (build_gdt(m) < 0 || build_pagetables(m) < 0) {
		boot_err(err, errlen, "cannot write the boot page tables to guest RAM");
		return -ENOMEM;
	}
	setup_bsp(bsp, entry);
	return 0;
}

int boot_default_guest(const char *dir, char *kernel, char *initrd, size_t len, char *err, size_t errlen)
{
	if (!dir || (size_t)snprintf(kernel, len, "%s/" BOOT_GUEST_KERNEL, dir) >= len ||
	    (size_t)snprintf(initrd, len, "%s/" BOOT_GUEST_INITRD, dir) >= len) {
		boot_err(err, errlen, "default guest: path too long");
		return -ENAMETOOLONG;
	}
	if (access(kernel, R_OK) < 0 || access(initrd, R_OK) < 0) {
		boot_err(err, errlen,
			 "no default guest in %s: build it with corral-mkguest (tools/mkguest.sh in a "
			 "source tree), or give --kernel",
			 dir);
		return -ENOENT;
	}
	return 0;
}
