/* A cache of decompressed kernel payloads: the second boot of a bzImage
 * skips its decompression (about half a second for Debian's xz kernel).
 * Entries live in the directory boot_config.kernel_cache names (none: no
 * cache); programs take it from boot_dirs_from_env: $CORRAL_KERNEL_CACHE,
 * else $XDG_CACHE_HOME/corral/kernels, else ~/.cache/corral/kernels, and
 * CORRAL_KERNEL_CACHE=off disables the cache.
 * An entry is named by the compressed payload's length, CRC-32 and CRC-64
 * and starts with a header repeating them; anything that does not match is
 * ignored, and what is loaded is checked as an ELF image like a freshly
 * decompressed one. At most KCACHE_KEEP entries are kept. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "boot/boot.h"
#include "boot/boot_internal.h"

#define KCACHE_MAGIC "corralK1"
#define KCACHE_KEEP 4

struct kcache_hdr {
	char magic[8];
	uint64_t in_len, crc64, out_len;
	uint32_t crc32, pad;
};

int boot_dirs_from_env(char *guest_dir, char *kernel_cache, size_t len)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	const char *g = getenv("CORRAL_GUEST_DIR"), *k = getenv("CORRAL_KERNEL_CACHE");
	int n;
	if (g && *g)
		n = snprintf(guest_dir, len, "%s", g);
	else if (xdg && *xdg)
		n = snprintf(guest_dir, len, "%s/corral/guest", xdg);
	else
		n = snprintf(guest_dir, len, "%s/.cache/corral/guest", home && *home ? home : "/root");
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	if (k && (!strcmp(k, "off") || !strcmp(k, "0") || !*k))
		n = snprintf(kernel_cache, len, "%s", "");
	else if (k)
		n = snprintf(kernel_cache, len, "%s", k);
	else if (xdg && *xdg)
		n = snprintf(kernel_cache, len, "%s/corral/kernels", xdg);
	else if (home && *home)
		n = snprintf(kernel_cache, len, "%s/.cache/corral/kernels", home);
	else
		n = snprintf(kernel_cache, len, "%s", "");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int kcache_dir(const char *cache, char *dir, size_t len)
{
	if (!cache || !*cache)
		return -1;
	int n = snprintf(dir, len, "%s", cache);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

static void kcache_key(const uint8_t *in, size_t inlen, struct kcache_hdr *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, KCACHE_MAGIC, 8);
	h->in_len = inlen;
	h->crc64 = lzma_crc64(in, inlen, 0);
	uLong c = crc32(0L, Z_NULL, 0);
	for (size_t off = 0; off < inlen;) {
		uInt n = inlen - off > (1u << 30) ? (1u << 30) : (uInt)(inlen - off);
		c = crc32(c, in + off, n);
		off += n;
	}
	h->crc32 = (uint32_t)c;
}

static int kcache_path(char *path, size_t len, const char *dir, const struct kcache_hdr *h)
{
	int n = snprintf(path, len, "%s/%" PRIx64 "-%08" PRIx32 "-%016" PRIx64 ".vmlinux", dir, h->in_len, h->crc32,
			 h->crc64);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

static int read_all(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t k = read(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int kcache_get(const char *cache, const uint8_t *in, size_t inlen, size_t cap, uint8_t **out, size_t *outlen)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];
	struct kcache_hdr want, got;
	if (kcache_dir(cache, dir, sizeof(dir)) < 0)
		return -1;
	kcache_key(in, inlen, &want);
	if (kcache_path(path, sizeof(path), dir, &want) < 0)
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	uint8_t *buf = NULL;
	if (fstat(fd, &st) < 0 || read_all(fd, &got, sizeof(got)) < 0 || memcmp(got.magic, want.magic, 8) ||
	    got.in_len != want.in_len || got.crc32 != want.crc32 || got.crc64 != want.crc64 || got.out_len == 0 ||
	    got.out_len > cap || (uint64_t)st.st_size != sizeof(got) + got.out_len || !(buf = malloc(got.out_len)) ||
	    read_all(fd, buf, got.out_len) < 0) {
		free(buf);
		close(fd);
		return -1;
	}
	close(fd);
	*out = buf;
	*outlen = got.out_len;
	return 0;
}

/* Removes the oldest entries beyond KCACHE_KEEP. */
static void kcache_trim(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	for (;;) {
		struct dirent *e;
		char oldest[PATH_MAX + 300] = "";
		time_t oldest_t = 0;
		unsigned n = 0;
		rewinddir(d);
		while ((e = readdir(d))) {
			size_t l = strlen(e->d_name);
			if (l < 9 || strcmp(e->d_name + l - 8, ".vmlinux"))
				continue;
			char p[PATH_MAX + 300];
			struct stat st;
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			if (stat(p, &st) < 0)
				continue;
			n++;
			if (!oldest[0] || st.st_mtime < oldest_t) {
				oldest_t = st.st_mtime;
				snprintf(oldest, sizeof(oldest), "%s", p);
			}
		}
		if (n <= KCACHE_KEEP || !oldest[0] || unlink(oldest) < 0)
			break;
	}
	closedir(d);
}

void kcache_put(const char *cache, const uint8_t *in, size_t inlen, const uint8_t *img, size_t len)
{
	char dir[PATH_MAX], path[PATH_MAX + 64], tmp[PATH_MAX + 80];
	struct kcache_hdr h;
	if (kcache_dir(cache, dir, sizeof(dir)) < 0)
		return;
	/* mkdir -p of the last two levels is enough for the defaults */
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = 0;
		mkdir(parent, 0755);
	}
	mkdir(dir, 0755);
	kcache_key(in, inlen, &h);
	h.out_len = len;
	if (kcache_path(path, sizeof(path), dir, &h) < 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	int bad = write_all(fd, &h, sizeof(h)) < 0 || write_all(fd, img, len) < 0;
	bad |= close(fd) < 0;
	if (bad || rename(tmp, path) < 0) {
		unlink(tmp);
		return;
	}
	kcache_trim(dir);
}
