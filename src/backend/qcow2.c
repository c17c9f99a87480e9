/* qcow2 disk images, versions 2 and 3 (qemu's docs/interop/qcow2.txt): L1/L2
 * lookup, refcounts, allocation on write, backing files, compressed clusters
 * (read only), and the offline create/check used by `corral image`.
 *
 * Crash safety: metadata is cached and written at flush (or when the caches
 * evict) in an order that keeps the image consistent at every point: data and
 * refcount increments first, then L2 tables, then the L1 table, with an
 * fdatasync between stages. Clusters that stop being referenced are freed
 * only after the metadata that dropped them is durable. A crash can leak
 * clusters (qemu-img check -r leaks), never make a reference without a
 * refcount. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "backend/block.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u << 20) /* qemu's QCOW_MAX_L1_SIZE */
#define QCOW2_MAX_RT_BYTES (8u << 20)  /* qemu's QCOW_MAX_REFTABLE_SIZE */
#define QCOW2_MAX_SIZE (1ull << 60)    /* 1 EiB of virtual disk */
#define QCOW2_MAX_HOST (1ull << 56)    /* offsets are 56 bits */
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_DEPTH 16 /* backing chain length */
#define QCOW2_L2_CACHE_BYTES (4u << 20)
#define QCOW2_RB_CACHE_BYTES (1u << 20)
#define QCOW2_MAX_PENDING_FREES 4096
#define QCOW2_V3_HEADER_LEN 112
#define QCOW2_MAX_BACKING_NAME 1023

#define OFF_MASK 0x00fffffffffffe00ull /* L1 and L2 entries: bits 9..55 */
#define OFLAG_COPIED (1ull << 63)
#define OFLAG_COMPRESSED (1ull << 62)
#define OFLAG_ZERO 1ull
#define L1E_RESERVED 0x7f000000000001ffull
#define RT_OFF_MASK 0xfffffffffffffe00ull

#define INCOMPAT_DIRTY (1ull << 0)
#define INCOMPAT_CORRUPT (1ull << 1)
#define INCOMPAT_DATA_FILE (1ull << 2)
#define INCOMPAT_COMPRESSION (1ull << 3)
#define INCOMPAT_EXTL2 (1ull << 4)
#define INCOMPAT_KNOWN 0x1full
#define COMPAT_LAZY_REFCOUNTS (1ull << 0)

#define EXT_END 0u
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_FEATURE_TABLE 0x6803f857u
#define EXT_DATA_FILE 0x44415441u
#define EXT_CRYPTO 0x0537be77u

/* Header fields (big-endian), as offsets into the first cluster. */
#define H_VERSION 4
#define H_BACKING_OFFSET 8
#define H_BACKING_SIZE 16
#define H_CLUSTER_BITS 20
#define H_SIZE 24
#define H_CRYPT 32
#define H_L1_SIZE 36
#define H_L1_OFFSET 40
#define H_RT_OFFSET 48
#define H_RT_CLUSTERS 56
#define H_NB_SNAPSHOTS 60
#define H_SNAPSHOTS_OFFSET 64
#define H_INCOMPAT 72
#define H_COMPAT 80
#define H_AUTOCLEAR 88
#define H_REFCOUNT_ORDER 96
#define H_HEADER_LEN 100
#define H_COMPRESSION_TYPE 104

/* A small write-back cache of metadata clusters (L2 tables, refcount blocks). */
struct tcache_ent {
	uint64_t off; /* 0: empty slot */
	uint8_t *data;
	uint64_t stamp;
	int dirty;
};

struct tcache {
	struct tcache_ent *e;
	unsigned n;
	uint64_t clock;
};

struct qcow2_free {
	uint64_t off, len;
};

struct qcow2 {
	struct blk b;
	int fd;
	char *path;
	pthread_mutex_t lock;
	unsigned version, cluster_bits, l2_bits, refcount_order;
	uint64_t cs; /* cluster size */
	uint64_t incompat, compat, autoclear;
	uint32_t header_len;
	uint64_t l1_offset;
	uint32_t l1_size;
	uint64_t *l1;			   /* host byte order */
	uint32_t l1_dirty_lo, l1_dirty_hi; /* dirty entries [lo, hi) */
	uint64_t rt_offset;
	uint32_t rt_clusters;
	uint64_t rt_size; /* entries */
	uint64_t *rt;	  /* host byte order */
	int rt_dirty;
	uint64_t rb_entries; /* refcounts per refcount block */
	struct tcache l2c, rbc;
	uint64_t file_end; /* bytes: the file's size plus clusters allocated since */
	uint64_t free_idx; /* no free cluster below this index (allocation hint) */
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	struct blk *backing;
	char backing_name[QCOW2_MAX_BACKING_NAME + 1];
	char backing_fmt[32];
	uint8_t *cbuf; /* compressed input */
	uint8_t *zbuf; /* the last decompressed cluster */
	uint64_t zentry;
	uint8_t *tmp; /* one cluster, for copy-on-write */
	struct qcow2_free *frees;
	size_t nfrees, capfrees;
	char errmsg[256];
	long crash_at_sync; /* fault injection for tests, see qcow2_sync */
};

struct qcow2_chain {
	dev_t dev[QCOW2_MAX_DEPTH + 1];
	ino_t ino[QCOW2_MAX_DEPTH + 1];
	int depth;
	unsigned flags;
};

static const struct blk_ops qcow2_ops;

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return be64toh(v);
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return be32toh(v);
}

static void wr64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

/* Records an I/O-time error for blk_last_error and returns -EIO. */
__attribute__((format(printf, 2, 3))) static int qcow2_fail(struct qcow2 *q, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(q->errmsg, sizeof(q->errmsg), "disk '%s': ", q->path);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(q->errmsg))
		vsnprintf(q->errmsg + n, sizeof(q->errmsg) - (size_t)n, fmt, ap);
	va_end(ap);
	return -EIO;
}

/* ---- file I/O ---- */

static int file_pread(int fd, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0) { /* past the end of the file: zeroes */
			memset(p, 0, n);
			break;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int file_pwrite(int fd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = pwrite(fd, p, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int file_sync(int fd)
{
	return fdatasync(fd) ? -errno : 0;
}

/* ---- iovec helpers ---- */

/* The part [skip, skip+len) of iov as a new iovec array. */
static void iov_memset(const struct iovec *v, int n, int c)
{
	for (int i = 0; i < n; i++)
		memset(v[i].iov_base, c, v[i].iov_len);
}

static void iov_from_buf(const struct iovec *v, int n, const uint8_t *buf)
{
	for (int i = 0; i < n; i++) {
		memcpy(v[i].iov_base, buf, v[i].iov_len);
		buf += v[i].iov_len;
	}
}

static void iov_to_buf(const struct iovec *v, int n, uint8_t *buf)
{
	for (int i = 0; i < n; i++) {
		memcpy(buf, v[i].iov_base, v[i].iov_len);
		buf += v[i].iov_len;
	}
}

/* ---- refcount block entries (refcount_order 0..6; sub-byte widths are
 * packed from the least significant bit, as qemu does) ---- */

static uint64_t rb_get(const uint8_t *blk, unsigned order, uint64_t i)
{
	switch (order) {
	case 0:
	case 1:
	case 2: {
		unsigned bits = 1u << order;
		uint64_t bit = i * bits;
		return (blk[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
	}
	case 3: return blk[i];
	case 4: return (uint64_t)blk[2 * i] << 8 | blk[2 * i + 1];
	case 5: return rd32(blk + 4 * i);
	default: return rd64(blk + 8 * i);
	}
}

static void rb_set(uint8_t *blk, unsigned order, uint64_t i, uint64_t v)
{
	switch (order) {
	case 0:
	case 1:
	case 2: {
		unsigned bits = 1u << order;
		uint64_t bit = i * bits;
		unsigned mask = ((1u << bits) - 1) << (bit % 8);
		blk[bit / 8] = (uint8_t)((blk[bit / 8] & ~mask) | ((unsigned)v << (bit % 8)));
		break;
	}
	case 3: blk[i] = (uint8_t)v; break;
	case 4:
		blk[2 * i] = (uint8_t)(v >> 8);
		blk[2 * i + 1] = (uint8_t)v;
		break;
	case 5: wr32(blk + 4 * i, (uint32_t)v); break;
	default: wr64(blk + 8 * i, v); break;
	}
}

static uint64_t rb_max(unsigned order)
{
	return order == 6 ? UINT64_MAX : (1ull << (1u << order)) - 1;
}

/* ---- metadata caches ---- */

static int tc_init(struct tcache *c, unsigned n, uint64_t cs)
{
	c->e = calloc(n, sizeof(*c->e));
	if (!c->e)
		return -ENOMEM;
	c->n = n;
	for (unsigned i = 0; i < n; i++) {
		c->e[i].data = malloc(cs);
		if (!c->e[i].data)
			return -ENOMEM;
	}
	return 0;
}

static void tc_free(struct tcache *c)
{
	if (!c->e)
		return;
	for (unsigned i = 0; i < c->n; i++)
		free(c->e[i].data);
	free(c->e);
	c->e = NULL;
}

static int tc_any_dirty(const struct tcache *c)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->e[i].off && c->e[i].dirty)
			return 1;
	return 0;
}

static int tc_write_dirty(struct qcow2 *q, struct tcache *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		struct tcache_ent *e = &c->e[i];
		if (!e->off || !e->dirty)
			continue;
		int rc = file_pwrite(q->fd, e->data, q->cs, e->off);
		if (rc < 0)
			return rc;
		e->dirty = 0;
	}
	return 0;
}

static int qcow2_meta_write(struct qcow2 *q);

/* Every ordering point of the metadata goes through here. For crash tests
 * (as QEMU's blkdebug), qcow2_crash_at_sync(b, N) makes the process exit
 * at its Nth sync of the image, leaving the file as a crash would. */
static int qcow2_sync(struct qcow2 *q)
{
	if (q->crash_at_sync > 0 && --q->crash_at_sync == 0)
		_exit(86);
	return file_sync(q->fd);
}

/* The cached cluster at host offset off; fresh: a new table, all zeroes. The
 * pointer is valid until the next tc_get on the same cache. */
static int tc_get(struct qcow2 *q, struct tcache *c, uint64_t off, int fresh, struct tcache_ent **out)
{
	struct tcache_ent *victim = NULL;
	for (unsigned i = 0; i < c->n; i++) {
		struct tcache_ent *e = &c->e[i];
		if (e->off == off) {
			e->stamp = ++c->clock;
			if (fresh) {
				memset(e->data, 0, q->cs);
				e->dirty = 1;
			}
			*out = e;
			return 0;
		}
		if (!victim || (victim->off && (!e->off || e->stamp < victim->stamp)))
			victim = e;
	}
	if (victim->off && victim->dirty) {
		/* Writing one table out of order could break the ordering that
		 * keeps the image consistent: write all metadata in order. */
		int rc = qcow2_meta_write(q);
		if (rc < 0)
			return rc;
	}
	victim->off = 0;
	victim->dirty = 0;
	if (fresh) {
		memset(victim->data, 0, q->cs);
		victim->dirty = 1;
	} else {
		int rc = file_pread(q->fd, victim->data, q->cs, off);
		if (rc < 0)
			return rc;
	}
	victim->off = off;
	victim->stamp = ++c->clock;
	*out = victim;
	return 0;
}

/* ---- refcounts and allocation ---- */

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Is [off, off+len) part of the header, the L1 table or the refcount table? */
static const char *qcow2_fixed_meta(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	if (overlaps(off, len, 0, q->cs))
		return "the header";
	if (q->l1_size && overlaps(off, len, q->l1_offset, (uint64_t)q->l1_size * 8))
		return "the L1 table";
	if (overlaps(off, len, q->rt_offset, (uint64_t)q->rt_clusters * q->cs))
		return "the refcount table";
	return NULL;
}

static int qcow2_refcount_get(struct qcow2 *q, uint64_t idx, uint64_t *out)
{
	uint64_t k = idx / q->rb_entries;
	*out = 0;
	if (k >= q->rt_size || !q->rt[k])
		return 0;
	struct tcache_ent *e;
	int rc = tc_get(q, &q->rbc, q->rt[k], 0, &e);
	if (rc < 0)
		return rc;
	*out = rb_get(e->data, q->refcount_order, idx % q->rb_entries);
	return 0;
}

/* n free clusters in a row, not yet counted: the caller sets their refcounts.
 * Returns the first cluster index, or a negative errno. */
static int64_t qcow2_alloc_noref(struct qcow2 *q, uint64_t n)
{
	uint64_t idx = q->free_idx;
	for (;;) {
		uint64_t j;
		if ((idx + n) * q->cs > QCOW2_MAX_HOST)
			return qcow2_fail(q, "image file is full (offsets above 64 PiB)");
		for (j = 0; j < n; j++) {
			uint64_t v;
			int rc = qcow2_refcount_get(q, idx + j, &v);
			if (rc < 0)
				return rc;
			if (v || qcow2_fixed_meta(q, (idx + j) * q->cs, q->cs))
				break;
		}
		if (j == n)
			break;
		idx += j + 1;
	}
	q->free_idx = idx + n;
	if ((idx + n) * q->cs > q->file_end)
		q->file_end = (idx + n) * q->cs;
	return (int64_t)idx;
}

static int qcow2_refcount_update(struct qcow2 *q, uint64_t idx, int delta);

/* A bigger refcount table that covers block index k, written with the
 * refcount blocks for its own clusters before the header points to it. */
static int qcow2_rt_grow(struct qcow2 *q, uint64_t k)
{
	uint64_t E = q->rb_entries, cs = q->cs, old_size = q->rt_size;
	uint64_t want = k + 1 > old_size * 2 ? k + 1 : old_size * 2;
	uint64_t tc = (want * 8 + cs - 1) / cs, nb = 0, A, first, last;
	uint8_t *blocks = NULL, *table = NULL;
	uint64_t *newrt = NULL;
	int rc;

	A = (q->file_end + cs - 1) / cs;
	if (A < q->free_idx)
		A = q->free_idx;
	for (int iter = 0;; iter++) {
		if (iter > 64)
			return qcow2_fail(q, "cannot lay out a new refcount table");
		uint64_t total = tc + nb;
		first = A / E;
		last = (A + total - 1) / E;
		uint64_t need = last + 1 > k + 1 ? last + 1 : k + 1;
		if (need * 8 > tc * cs) {
			tc = (need * 8 + cs - 1) / cs;
			continue;
		}
		uint64_t missing = 0;
		for (uint64_t j = first; j <= last; j++)
			if (j >= old_size || !q->rt[j])
				missing++;
		if (missing == nb)
			break;
		nb = missing;
	}
	if (tc * cs > QCOW2_MAX_RT_BYTES)
		return qcow2_fail(q, "the refcount table would exceed %u MiB", QCOW2_MAX_RT_BYTES >> 20);
	if ((A + tc + nb) * cs > QCOW2_MAX_HOST)
		return qcow2_fail(q, "image file is full (offsets above 64 PiB)");

	newrt = calloc(tc * cs / 8, 8);
	table = calloc(tc, cs);
	blocks = calloc(nb ? nb : 1, cs);
	if (!newrt || !table || !blocks) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(newrt, q->rt, old_size * 8);
	uint64_t m = 0;
	for (uint64_t j = first; j <= last; j++)
		if (j >= old_size || !q->rt[j])
			newrt[j] = (A + tc + m++) * cs;
	/* Count the new area's clusters: in the new blocks directly, in the
	 * blocks that exist through the cache (written below, before the
	 * header switches tables: an early increment is at worst a leak). */
	for (uint64_t c = A; c < A + tc + nb; c++) {
		uint64_t j = c / E;
		if (j < old_size && q->rt[j]) {
			rc = qcow2_refcount_update(q, c, +1);
			if (rc < 0)
				goto out;
		} else {
			uint64_t bi = newrt[j] / cs - (A + tc);
			rb_set(blocks + bi * cs, q->refcount_order, c % E, 1);
		}
	}
	for (uint64_t j = 0; j < tc * cs / 8; j++)
		wr64(table + 8 * j, newrt[j]);
	if ((rc = tc_write_dirty(q, &q->rbc)) < 0 || (rc = file_pwrite(q->fd, table, tc * cs, A * cs)) < 0 ||
	    (nb && (rc = file_pwrite(q->fd, blocks, nb * cs, (A + tc) * cs)) < 0) || (rc = qcow2_sync(q)) < 0)
		goto out;
	uint8_t hdr[12];
	wr64(hdr, A * cs);
	wr32(hdr + 8, (uint32_t)tc);
	if ((rc = file_pwrite(q->fd, hdr, sizeof(hdr), H_RT_OFFSET)) < 0 || (rc = qcow2_sync(q)) < 0)
		goto out;

	uint64_t old_off = q->rt_offset, old_clusters = q->rt_clusters;
	free(q->rt);
	q->rt = newrt;
	newrt = NULL;
	q->rt_size = tc * cs / 8;
	q->rt_offset = A * cs;
	q->rt_clusters = (uint32_t)tc;
	q->rt_dirty = 0;
	if ((A + tc + nb) * cs > q->file_end)
		q->file_end = (A + tc + nb) * cs;
	if (q->free_idx < A + tc + nb && q->free_idx >= A)
		q->free_idx = A + tc + nb;
	/* The header no longer points to the old table. */
	for (uint64_t c = 0; c < old_clusters; c++) {
		rc = qcow2_refcount_update(q, old_off / cs + c, -1);
		if (rc < 0)
			goto out;
	}
	rc = 0;
out:
	free(newrt);
	free(table);
	free(blocks);
	return rc;
}

/* A new, empty refcount block for block index k (k < rt_size). */
static int qcow2_rb_new(struct qcow2 *q, uint64_t k)
{
	int64_t b = qcow2_alloc_noref(q, 1);
	if (b < 0)
		return (int)b;
	struct tcache_ent *e;
	int rc = tc_get(q, &q->rbc, (uint64_t)b * q->cs, 1, &e);
	if (rc < 0)
		return rc;
	q->rt[k] = (uint64_t)b * q->cs;
	q->rt_dirty = 1;
	if ((uint64_t)b / q->rb_entries == k) { /* it counts itself */
		rb_set(e->data, q->refcount_order, (uint64_t)b % q->rb_entries, 1);
		return 0;
	}
	return qcow2_refcount_update(q, (uint64_t)b, +1);
}

static int qcow2_refcount_update(struct qcow2 *q, uint64_t idx, int delta)
{
	uint64_t k = idx / q->rb_entries;
	int rc;
	if (k >= q->rt_size) {
		if (delta < 0)
			return qcow2_fail(q, "cluster 0x%llx has no refcount", (unsigned long long)(idx * q->cs));
		if ((rc = qcow2_rt_grow(q, k)) < 0)
			return rc;
	}
	if (!q->rt[k]) {
		if (delta < 0)
			return qcow2_fail(q, "cluster 0x%llx has no refcount", (unsigned long long)(idx * q->cs));
		if ((rc = qcow2_rb_new(q, k)) < 0)
			return rc;
	}
	struct tcache_ent *e;
	if ((rc = tc_get(q, &q->rbc, q->rt[k], 0, &e)) < 0)
		return rc;
	uint64_t v = rb_get(e->data, q->refcount_order, idx % q->rb_entries);
	if (delta < 0 && v == 0)
		return qcow2_fail(q, "refcount of cluster 0x%llx would drop below 0",
				  (unsigned long long)(idx * q->cs));
	if (delta > 0 && v == rb_max(q->refcount_order))
		return qcow2_fail(q, "refcount of cluster 0x%llx would overflow", (unsigned long long)(idx * q->cs));
	v = delta > 0 ? v + 1 : v - 1;
	rb_set(e->data, q->refcount_order, idx % q->rb_entries, v);
	e->dirty = 1;
	if (v == 0 && idx < q->free_idx)
		q->free_idx = idx;
	return 0;
}

/* n new clusters in a row, counted; returns the host offset. */
static int qcow2_alloc(struct qcow2 *q, uint64_t n, uint64_t *off)
{
	int64_t idx = qcow2_alloc_noref(q, n);
	if (idx < 0)
		return (int)idx;
	for (uint64_t i = 0; i < n; i++) {
		int rc = qcow2_refcount_update(q, (uint64_t)idx + i, +1);
		if (rc < 0)
			return rc;
	}
	*off = (uint64_t)idx * q->cs;
	return 0;
}

static int qcow2_meta_flush(struct qcow2 *q);

/* Frees [off, off+len) once the metadata that stopped referencing it is durable. */
static int qcow2_free_later(struct qcow2 *q, uint64_t off, uint64_t len)
{
	if (q->nfrees == q->capfrees) {
		if (q->nfrees >= QCOW2_MAX_PENDING_FREES) {
			int rc = qcow2_meta_flush(q);
			if (rc < 0)
				return rc;
		} else {
			size_t cap = q->capfrees ? q->capfrees * 2 : 64;
			void *p = realloc(q->frees, cap * sizeof(*q->frees));
			if (!p)
				return -ENOMEM;
			q->frees = p;
			q->capfrees = cap;
		}
	}
	q->frees[q->nfrees].off = off;
	q->frees[q->nfrees].len = len;
	q->nfrees++;
	return 0;
}

/* The host range an L2 entry holds (none for unallocated ones). */
static void qcow2_entry_range(const struct qcow2 *q, uint64_t e, uint64_t *off, uint64_t *len)
{
	*off = *len = 0;
	if (e & OFLAG_COMPRESSED) {
		unsigned x = 62 - (q->cluster_bits - 8);
		uint64_t coff = e & ((1ull << x) - 1);
		uint64_t nsec = ((e >> x) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
		*off = coff & ~511ull;
		*len = nsec * 512;
	} else if (e & OFF_MASK) {
		*off = e & OFF_MASK;
		*len = q->cs;
	}
}

static int qcow2_free_entry_later(struct qcow2 *q, uint64_t e)
{
	uint64_t off, len;
	qcow2_entry_range(q, e, &off, &len);
	return len ? qcow2_free_later(q, off, len) : 0;
}

/* ---- flushing ---- */

/* Writes every dirty table: refcount blocks (and the refcount table), then L2
 * tables, then the L1 table, each stage durable before the next. */
static int qcow2_meta_write(struct qcow2 *q)
{
	int rc, wrote = 0;
	if (tc_any_dirty(&q->rbc)) {
		if ((rc = tc_write_dirty(q, &q->rbc)) < 0)
			return rc;
		wrote = 1;
	}
	if (q->rt_dirty) {
		if (wrote && (rc = qcow2_sync(q)) < 0)
			return rc;
		uint64_t n = (uint64_t)q->rt_clusters * q->cs;
		uint8_t *buf = calloc(1, n);
		if (!buf)
			return -ENOMEM;
		for (uint64_t j = 0; j < q->rt_size; j++)
			wr64(buf + 8 * j, q->rt[j]);
		rc = file_pwrite(q->fd, buf, n, q->rt_offset);
		free(buf);
		if (rc < 0)
			return rc;
		q->rt_dirty = 0;
	}
	int l1 = q->l1_dirty_hi > q->l1_dirty_lo;
	if (!tc_any_dirty(&q->l2c) && !l1)
		return 0;
	/* New data clusters and their refcounts before any table points to them. */
	if ((rc = qcow2_sync(q)) < 0 || (rc = tc_write_dirty(q, &q->l2c)) < 0)
		return rc;
	if (l1) {
		uint32_t lo = q->l1_dirty_lo, hi = q->l1_dirty_hi;
		uint8_t *buf = malloc((size_t)(hi - lo) * 8);
		if (!buf)
			return -ENOMEM;
		for (uint32_t i = lo; i < hi; i++)
			wr64(buf + 8 * (i - lo), q->l1[i]);
		if ((rc = qcow2_sync(q)) == 0)
			rc = file_pwrite(q->fd, buf, (size_t)(hi - lo) * 8, q->l1_offset + 8ull * lo);
		free(buf);
		if (rc < 0)
			return rc;
		q->l1_dirty_lo = UINT32_MAX;
		q->l1_dirty_hi = 0;
	}
	return 0;
}

/* Everything written so far durable; then the deferred frees. */
static int qcow2_meta_flush(struct qcow2 *q)
{
	int rc;
	if ((rc = qcow2_meta_write(q)) < 0 || (rc = qcow2_sync(q)) < 0)
		return rc;
	size_t n = q->nfrees;
	q->nfrees = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t off = q->frees[i].off, end = off + q->frees[i].len;
		for (uint64_t c = off / q->cs; c * q->cs < end; c++) {
			if ((rc = qcow2_refcount_update(q, c, -1)) < 0)
				return rc;
			uint64_t v;
			if (qcow2_refcount_get(q, c, &v) == 0 && v == 0)
				(void)fallocate(q->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(c * q->cs),
						(off_t)q->cs);
		}
	}
	return 0;
}

/* ---- lookup ---- */

static void l1_mark(struct qcow2 *q, uint32_t i)
{
	if (i < q->l1_dirty_lo)
		q->l1_dirty_lo = i;
	if (i + 1 > q->l1_dirty_hi)
		q->l1_dirty_hi = i + 1;
}

/* The L2 table for virtual cluster vcl; with alloc, a new one if there is
 * none. *out is NULL when there is none and alloc is 0. */
static int qcow2_l2_get(struct qcow2 *q, uint64_t vcl, int alloc, struct tcache_ent **out)
{
	uint64_t l1i = vcl >> q->l2_bits;
	*out = NULL;
	if (l1i >= q->l1_size)
		return qcow2_fail(q, "offset past the L1 table");
	uint64_t l2off = q->l1[l1i] & OFF_MASK;
	if (!l2off) {
		if (!alloc)
			return 0;
		int rc = qcow2_alloc(q, 1, &l2off);
		if (rc < 0)
			return rc;
		if ((rc = tc_get(q, &q->l2c, l2off, 1, out)) < 0)
			return rc;
		q->l1[l1i] = l2off | OFLAG_COPIED;
		l1_mark(q, (uint32_t)l1i);
		return 0;
	}
	return tc_get(q, &q->l2c, l2off, 0, out);
}

/* The L2 entry for virtual cluster vcl (0 when there is no L2 table). */
static int qcow2_l2_lookup(struct qcow2 *q, uint64_t vcl, uint64_t *entry)
{
	struct tcache_ent *t;
	int rc = qcow2_l2_get(q, vcl, 0, &t);
	if (rc < 0)
		return rc;
	*entry = t ? rd64(t->data + 8 * (vcl & ((1ull << q->l2_bits) - 1))) : 0;
	return 0;
}

static int qcow2_decompress(struct qcow2 *q, uint64_t e)
{
	if (q->zentry == e)
		return 0;
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t coff = e & ((1ull << x) - 1);
	uint64_t nsec = ((e >> x) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
	uint64_t clen = nsec * 512 - (coff & 511);
	if (coff >= q->file_end)
		return qcow2_fail(q, "compressed cluster at 0x%llx is past the end of the file",
				  (unsigned long long)coff);
	if (clen > q->file_end - coff)
		clen = q->file_end - coff;
	int rc = file_pread(q->fd, q->cbuf, clen, coff);
	if (rc < 0)
		return rc;
	z_stream s;
	memset(&s, 0, sizeof(s));
	if (inflateInit2(&s, -15) != Z_OK)
		return -ENOMEM;
	s.next_in = q->cbuf;
	s.avail_in = (uInt)clen;
	s.next_out = q->zbuf;
	s.avail_out = (uInt)q->cs;
	int zr = inflate(&s, Z_FINISH);
	int full = s.avail_out == 0;
	inflateEnd(&s);
	q->zentry = ~0ull;
	if ((zr != Z_STREAM_END && zr != Z_BUF_ERROR) || !full)
		return qcow2_fail(q, "compressed cluster at 0x%llx does not decompress", (unsigned long long)coff);
	q->zentry = e;
	return 0;
}

/* Checks a normal cluster's host offset from an L2 entry. */
static int qcow2_data_offset(struct qcow2 *q, uint64_t e, uint64_t *host)
{
	uint64_t off = e & OFF_MASK;
	if (off & (q->cs - 1))
		return qcow2_fail(q, "data cluster offset 0x%llx is not cluster aligned", (unsigned long long)off);
	if (off >= q->file_end)
		return qcow2_fail(q, "data cluster offset 0x%llx is past the end of the file", (unsigned long long)off);
	*host = off;
	return 0;
}

/* Reads [o, o+len) of virtual cluster vcl, whose L2 entry is e, into v. */
static int qcow2_read_chunk(struct qcow2 *q, uint64_t vcl, uint64_t e, uint64_t o, const struct iovec *v, int vn)
{
	int rc;
	if (e & OFLAG_COMPRESSED) {
		if ((rc = qcow2_decompress(q, e)) < 0)
			return rc;
		iov_from_buf(v, vn, q->zbuf + o);
		return 0;
	}
	if (q->version >= 3 && (e & OFLAG_ZERO)) {
		iov_memset(v, vn, 0);
		return 0;
	}
	if (e & OFF_MASK) {
		uint64_t host = 0;
		if ((rc = qcow2_data_offset(q, e, &host)) < 0)
			return rc;
		return blk_data_xfer(&q->b, q->fd, host + o, v, vn, 0);
	}
	/* Unallocated: the backing file, zeroes past its end. */
	uint64_t voff = vcl * q->cs + o, len = 0;
	for (int i = 0; i < vn; i++)
		len += v[i].iov_len;
	uint64_t avail = 0;
	if (q->backing && q->backing->size > voff)
		avail = q->backing->size - voff < len ? q->backing->size - voff : len;
	if (avail) {
		struct iovec sub[BLK_MAX_IOV];
		int n = blk_iov_slice(v, vn, 0, avail, sub, BLK_MAX_IOV);
		if (n < 0)
			return n;
		if ((rc = q->backing->ops->readv(q->backing, voff, sub, n)) < 0)
			return rc;
	}
	if (avail < len) {
		struct iovec sub[BLK_MAX_IOV];
		int n = blk_iov_slice(v, vn, avail, len - avail, sub, BLK_MAX_IOV);
		if (n < 0)
			return n;
		iov_memset(sub, n, 0);
	}
	return 0;
}

enum { RUN_NONE, RUN_ZERO, RUN_BACKING, RUN_DATA };

static int qcow2_run_kind(const struct qcow2 *q, uint64_t e)
{
	if (e & OFLAG_COMPRESSED)
		return RUN_NONE;
	if (q->version >= 3 && (e & OFLAG_ZERO))
		return RUN_ZERO;
	return (e & OFF_MASK) ? RUN_DATA : RUN_BACKING;
}

/* Does the cluster k after one with entry e continue its run? */
static int qcow2_same_run(const struct qcow2 *q, uint64_t e, uint64_t e2, uint64_t k)
{
	int kind = qcow2_run_kind(q, e);
	if (kind == RUN_NONE || kind != qcow2_run_kind(q, e2))
		return 0;
	return kind != RUN_DATA || ((e2 & OFF_MASK) == (e & OFF_MASK) + k * q->cs && (e2 & OFF_MASK) < q->file_end);
}

static int qcow2_check_range(struct qcow2 *q, uint64_t off, const struct iovec *iov, int iovcnt, uint64_t *total)
{
	uint64_t n = 0;
	if (iovcnt < 0 || iovcnt > BLK_MAX_IOV)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	if (off > q->b.size || n > q->b.size - off)
		return -EINVAL;
	*total = n;
	return 0;
}

static int qcow2_readv(struct blk *b, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct qcow2 *q = (struct qcow2 *)b;
	uint64_t total, done = 0;
	int rc = qcow2_check_range(q, off, iov, iovcnt, &total);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&q->lock);
	while (done < total) {
		uint64_t pos = off + done, vcl = pos >> q->cluster_bits, o = pos & (q->cs - 1);
		uint64_t n = q->cs - o < total - done ? q->cs - o : total - done, e, e2;
		if ((rc = qcow2_l2_lookup(q, vcl, &e)) < 0)
			break;
		/* One transfer for a run of clusters of the same kind: host
		 * contiguous data, zeroes, or the backing file. */
		for (uint64_t k = 1;
		     done + n < total && qcow2_l2_lookup(q, vcl + k, &e2) == 0 && qcow2_same_run(q, e, e2, k); k++)
			n += q->cs < total - done - n ? q->cs : total - done - n;
		struct iovec v[BLK_MAX_IOV];
		int vn = blk_iov_slice(iov, iovcnt, done, n, v, BLK_MAX_IOV);
		if (vn < 0) {
			rc = vn;
			break;
		}
		if ((rc = qcow2_read_chunk(q, vcl, e, o, v, vn)) < 0)
			break;
		done += n;
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* ---- writing ---- */

/* Writes [o, o+len) of virtual cluster vcl from v (NULL: zeroes). */
static int qcow2_write_chunk(struct qcow2 *q, uint64_t vcl, uint64_t o, uint64_t len, const struct iovec *v, int vn)
{
	struct tcache_ent *t;
	int rc = qcow2_l2_get(q, vcl, 1, &t);
	if (rc < 0)
		return rc;
	uint64_t l2i = vcl & ((1ull << q->l2_bits) - 1), l2off = t->off;
	uint64_t e = rd64(t->data + 8 * l2i);

	if ((e & OFLAG_COPIED) && !(e & OFLAG_COMPRESSED) && !(q->version >= 3 && (e & OFLAG_ZERO)) && (e & OFF_MASK)) {
		uint64_t host = 0;
		const char *what;
		if ((rc = qcow2_data_offset(q, e, &host)) < 0)
			return rc;
		if ((what = qcow2_fixed_meta(q, host, q->cs)))
			return qcow2_fail(q, "data cluster 0x%llx overlaps %s", (unsigned long long)host, what);
		if (v)
			return blk_data_xfer(&q->b, q->fd, host + o, v, vn, 1);
		memset(q->tmp, 0, len);
		return file_pwrite(q->fd, q->tmp, len, host + o);
	}

	/* Zeroes over a cluster that reads as zeroes already: nothing to do. */
	if (!v && !(e & OFLAG_COMPRESSED) &&
	    ((q->version >= 3 && (e & OFLAG_ZERO)) ||
	     (!(e & OFF_MASK) && (!q->backing || q->backing->size <= vcl * q->cs))))
		return 0;

	/* A new cluster: the old content around the write, then the write.
	 * Guest data that fills the cluster goes straight from the guest's
	 * buffers (and, with cache=none, past the page cache); the rest is
	 * assembled in tmp. */
	int whole = v && len == q->cs;
	if (len < q->cs) {
		struct iovec all = {q->tmp, q->cs};
		if ((rc = qcow2_read_chunk(q, vcl, e, 0, &all, 1)) < 0)
			return rc;
	}
	if (v && !whole)
		iov_to_buf(v, vn, q->tmp + o);
	else if (!v)
		memset(q->tmp + o, 0, len);
	uint64_t host = 0;
	if ((rc = qcow2_alloc(q, 1, &host)) < 0)
		return rc;
	rc = whole ? blk_data_xfer(&q->b, q->fd, host, v, vn, 1) : file_pwrite(q->fd, q->tmp, q->cs, host);
	if (rc < 0)
		return rc;
	if (host + q->cs > q->file_end)
		q->file_end = host + q->cs;
	/* Allocation may have evicted the table: look it up again. */
	if ((rc = tc_get(q, &q->l2c, l2off, 0, &t)) < 0)
		return rc;
	wr64(t->data + 8 * l2i, host | OFLAG_COPIED);
	t->dirty = 1;
	if (q->zentry == e)
		q->zentry = ~0ull;
	return qcow2_free_entry_later(q, e);
}

static int qcow2_writev(struct blk *b, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct qcow2 *q = (struct qcow2 *)b;
	uint64_t total, done = 0;
	int rc = qcow2_check_range(q, off, iov, iovcnt, &total);
	if (rc < 0)
		return rc;
	if (b->readonly)
		return -EROFS;
	pthread_mutex_lock(&q->lock);
	while (done < total) {
		uint64_t pos = off + done, vcl = pos >> q->cluster_bits, o = pos & (q->cs - 1);
		uint64_t n = q->cs - o < total - done ? q->cs - o : total - done;
		struct iovec v[BLK_MAX_IOV];
		int vn = blk_iov_slice(iov, iovcnt, done, n, v, BLK_MAX_IOV);
		if (vn < 0) {
			rc = vn;
			break;
		}
		if ((rc = qcow2_write_chunk(q, vcl, o, n, v, vn)) < 0)
			break;
		done += n;
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* Whole cluster vcl reads as zeroes afterwards: a zero cluster (v3), or
 * unallocated when nothing shows through; freeing what it held. */
static int qcow2_zero_cluster(struct qcow2 *q, uint64_t vcl)
{
	uint64_t want = q->backing ? OFLAG_ZERO : 0, e;
	int rc;
	if (q->backing && q->version < 3) /* no zero flag in v2 */
		return qcow2_write_chunk(q, vcl, 0, q->cs, NULL, 0);
	if ((rc = qcow2_l2_lookup(q, vcl, &e)) < 0)
		return rc;
	if (e == want)
		return 0;
	struct tcache_ent *t;
	if ((rc = qcow2_l2_get(q, vcl, 1, &t)) < 0)
		return rc;
	uint64_t l2i = vcl & ((1ull << q->l2_bits) - 1);
	wr64(t->data + 8 * l2i, want);
	t->dirty = 1;
	if (q->zentry == e)
		q->zentry = ~0ull;
	return qcow2_free_entry_later(q, e);
}

static int qcow2_zero_range(struct blk *b, uint64_t off, uint64_t len)
{
	struct qcow2 *q = (struct qcow2 *)b;
	int rc = 0;
	if (b->readonly)
		return -EROFS;
	if (off > b->size || len > b->size - off)
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	while (len > 0) {
		uint64_t vcl = off >> q->cluster_bits, o = off & (q->cs - 1);
		uint64_t n = q->cs - o < len ? q->cs - o : len;
		if (n == q->cs || (o == 0 && off + n == b->size))
			rc = qcow2_zero_cluster(q, vcl);
		else
			rc = qcow2_write_chunk(q, vcl, o, n, NULL, 0);
		if (rc < 0)
			break;
		off += n;
		len -= n;
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int qcow2_flush(struct blk *b)
{
	struct qcow2 *q = (struct qcow2 *)b;
	int rc = 0;
	if (b->readonly)
		return 0;
	pthread_mutex_lock(&q->lock);
	rc = qcow2_meta_flush(q);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static void qcow2_free_all(struct qcow2 *q)
{
	if (q->backing)
		blk_close(q->backing);
	tc_free(&q->l2c);
	tc_free(&q->rbc);
	free(q->l1);
	free(q->rt);
	free(q->cbuf);
	free(q->zbuf);
	free(q->tmp);
	free(q->frees);
	free(q->path);
	if (q->fd >= 0)
		close(q->fd);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static void qcow2_close(struct blk *b)
{
	struct qcow2 *q = (struct qcow2 *)b;
	if (!b->readonly) {
		/* Twice: the second writes the frees the first applied. */
		if (qcow2_meta_flush(q) == 0 && (tc_any_dirty(&q->rbc) || q->rt_dirty))
			(void)qcow2_meta_flush(q);
	}
	qcow2_free_all(q);
}

int qcow2_allocated(struct blk *b, uint64_t off, uint64_t *len)
{
	struct qcow2 *q = (struct qcow2 *)b;
	if (b->ops != &qcow2_ops || off >= b->size)
		return -EINVAL;
	uint64_t vcl = off >> q->cluster_bits, e, end = (vcl + 1) << q->cluster_bits;
	pthread_mutex_lock(&q->lock);
	int rc = qcow2_l2_lookup(q, vcl, &e);
	pthread_mutex_unlock(&q->lock);
	if (rc < 0)
		return rc;
	*len = (end < b->size ? end : b->size) - off;
	return qcow2_run_kind(q, e) != RUN_BACKING;
}

int qcow2_crash_at_sync(struct blk *b, long n)
{
	if (b->ops != &qcow2_ops || b->readonly || n < 0)
		return -EINVAL;
	((struct qcow2 *)b)->crash_at_sync = n;
	return 0;
}

static const struct blk_ops qcow2_ops = {
	.readv = qcow2_readv,
	.writev = qcow2_writev,
	.flush = qcow2_flush,
	.discard = qcow2_zero_range,
	.write_zeroes = qcow2_zero_range,
	.close = qcow2_close,
	/* no: a transfer reads and fills the shared table caches */
	.concurrent_xfer = 0,
};

/* ---- opening ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The name the feature table gives an incompatible feature bit, or "". */
static const char *qcow2_feature_name(const uint8_t *ft, uint32_t ftlen, unsigned bit, char *buf, size_t n)
{
	buf[0] = 0;
	for (uint32_t i = 0; ft && i + 48 <= ftlen; i += 48)
		if (ft[i] == 0 && ft[i + 1] == bit) {
			size_t l = strnlen((const char *)ft + i + 2, 46);
			if (l >= n)
				l = n - 1;
			for (size_t k = 0; k < l; k++) {
				char c = (char)ft[i + 2 + k];
				buf[k] = (c >= 0x20 && c < 0x7f) ? c : '?';
			}
			buf[l] = 0;
			break;
		}
	return buf;
}

static int qcow2_open_chain(struct blk **out, int fd, int readonly, char *err, size_t errlen, const char *path,
			    struct qcow2_chain *chain);

/* Opens the backing file named in the header, relative to the image's folder. */
static int qcow2_open_backing(struct qcow2 *q, char *err, size_t errlen, struct qcow2_chain *chain)
{
	char bpath[PATH_MAX + QCOW2_MAX_BACKING_NAME + 2];
	const char *slash = strrchr(q->path, '/');
	if (q->backing_name[0] == '/' || !slash)
		snprintf(bpath, sizeof(bpath), "%s", q->backing_name);
	else
		snprintf(bpath, sizeof(bpath), "%.*s/%s", (int)(slash - q->path), q->path, q->backing_name);

	enum blk_format fmt = BLK_FMT_PROBE;
	if (q->backing_fmt[0] && blk_format_parse(q->backing_fmt, &fmt) < 0) {
		snprintf(err, errlen,
			 "disk '%s': backing file '%s' has unknown format '%s' (corral reads raw and qcow2)", q->path,
			 q->backing_name, q->backing_fmt);
		return -ENOTSUP;
	}
	if (chain->depth >= QCOW2_MAX_DEPTH) {
		snprintf(err, errlen, "disk '%s': backing chain is longer than %d files", q->path, QCOW2_MAX_DEPTH);
		return -ELOOP;
	}
	const char *kind;
	int bfd = blk_open_file(bpath, O_RDONLY, 0, &kind);
	if (bfd < 0) {
		if (kind)
			snprintf(err, errlen, "disk '%s': backing file '%s': not a regular file (%s)", q->path, bpath,
				 kind);
		else
			snprintf(err, errlen, "disk '%s': backing file '%s': %s", q->path, bpath, strerror(-bfd));
		return bfd;
	}
	struct stat st;
	if (fstat(bfd, &st) == 0)
		for (int i = 0; i <= chain->depth; i++)
			if (chain->dev[i] == st.st_dev && chain->ino[i] == st.st_ino) {
				snprintf(err, errlen, "disk '%s': backing file '%s' loops back into its own chain",
					 q->path, bpath);
				close(bfd);
				return -ELOOP;
			}
	int rc = blk_lock(bfd, 1, bpath, err, errlen);
	if (rc < 0) {
		close(bfd);
		return rc;
	}
	if (fmt == BLK_FMT_PROBE) {
		uint8_t m[4];
		ssize_t n = pread(bfd, m, 4, 0);
		fmt = (n == 4 && rd32(m) == QCOW2_MAGIC) ? BLK_FMT_QCOW2 : BLK_FMT_RAW;
	}
	if (fmt == BLK_FMT_RAW)
		return raw_open(&q->backing, bfd, 1, err, errlen, bpath);
	return qcow2_open_chain(&q->backing, bfd, 1, err, errlen, bpath, chain);
}

#define OPEN_FAIL(code, ...)                                                                                           \
	do {                                                                                                           \
		int n_ = snprintf(err, errlen, "disk '%s': ", path);                                                   \
		if (n_ > 0 && (size_t)n_ < errlen)                                                                     \
			snprintf(err + n_, errlen - (size_t)n_, __VA_ARGS__);                                          \
		rc = (code);                                                                                           \
		goto fail;                                                                                             \
	} while (0)

static int qcow2_open_chain(struct blk **out, int fd, int readonly, char *err, size_t errlen, const char *path,
			    struct qcow2_chain *chain)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	uint8_t *hdr = NULL;
	uint64_t *sorted = NULL;
	struct stat st;
	int rc;

	if (!q) {
		close(fd);
		snprintf(err, errlen, "disk '%s': out of memory", path);
		return -ENOMEM;
	}
	pthread_mutex_init(&q->lock, NULL);
	q->fd = fd;
	q->zentry = ~0ull;
	q->l1_dirty_lo = UINT32_MAX;
	q->path = strdup(path);
	if (!q->path)
		OPEN_FAIL(-ENOMEM, "out of memory");
	q->b.ops = &qcow2_ops;
	q->b.format = BLK_FMT_QCOW2;
	q->b.readonly = readonly;
	if (fstat(fd, &st) < 0)
		OPEN_FAIL(-errno, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		OPEN_FAIL(-EINVAL, "not a regular file or block device");
	q->file_end = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(fd, 0, SEEK_END);
		q->file_end = end > 0 ? (uint64_t)end : 0;
	}
	chain->dev[chain->depth] = st.st_dev;
	chain->ino[chain->depth] = st.st_ino;

	uint8_t h0[QCOW2_V3_HEADER_LEN];
	if ((rc = file_pread(fd, h0, sizeof(h0), 0)) < 0)
		OPEN_FAIL(rc, "%s", strerror(-rc));
	if (q->file_end < 72 || rd32(h0) != QCOW2_MAGIC)
		OPEN_FAIL(-EINVAL, "not a qcow2 image (bad magic or shorter than a header)");
	q->version = rd32(h0 + H_VERSION);
	if (q->version != 2 && q->version != 3)
		OPEN_FAIL(-ENOTSUP, "qcow2 version %u is not supported (only 2 and 3)", q->version);
	q->cluster_bits = rd32(h0 + H_CLUSTER_BITS);
	if (q->cluster_bits < QCOW2_MIN_CLUSTER_BITS || q->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		OPEN_FAIL(-EINVAL, "cluster_bits %u is out of range (%d..%d)", q->cluster_bits, QCOW2_MIN_CLUSTER_BITS,
			  QCOW2_MAX_CLUSTER_BITS);
	q->cs = 1ull << q->cluster_bits;
	q->l2_bits = q->cluster_bits - 3;

	/* The header, its extensions and the backing file name live in the
	 * first cluster. */
	hdr = calloc(1, q->cs);
	if (!hdr)
		OPEN_FAIL(-ENOMEM, "out of memory");
	if ((rc = file_pread(fd, hdr, q->cs, 0)) < 0)
		OPEN_FAIL(rc, "%s", strerror(-rc));
	q->b.size = rd64(hdr + H_SIZE);
	q->l1_size = rd32(hdr + H_L1_SIZE);
	q->l1_offset = rd64(hdr + H_L1_OFFSET);
	q->rt_offset = rd64(hdr + H_RT_OFFSET);
	q->rt_clusters = rd32(hdr + H_RT_CLUSTERS);
	q->nb_snapshots = rd32(hdr + H_NB_SNAPSHOTS);
	q->snapshots_offset = rd64(hdr + H_SNAPSHOTS_OFFSET);
	q->refcount_order = 4;
	q->header_len = 72;
	if (q->version >= 3) {
		q->incompat = rd64(hdr + H_INCOMPAT);
		q->compat = rd64(hdr + H_COMPAT);
		q->autoclear = rd64(hdr + H_AUTOCLEAR);
		q->refcount_order = rd32(hdr + H_REFCOUNT_ORDER);
		q->header_len = rd32(hdr + H_HEADER_LEN);
		if (q->header_len < 104 || q->header_len > q->cs || (q->header_len & 7))
			OPEN_FAIL(-EINVAL, "header length %u is invalid", q->header_len);
		if (q->refcount_order > 6)
			OPEN_FAIL(-EINVAL, "refcount_order %u is out of range (0..6)", q->refcount_order);
	}
	uint64_t backing_off = rd64(hdr + H_BACKING_OFFSET);
	uint32_t backing_len = rd32(hdr + H_BACKING_SIZE);
	uint64_t ext_end = q->cs;
	if (backing_off) {
		if (backing_len == 0 || backing_len > QCOW2_MAX_BACKING_NAME || backing_len > q->cs ||
		    backing_off < q->header_len || backing_off > q->cs - backing_len)
			OPEN_FAIL(-EINVAL,
				  "backing file name (offset 0x%llx, %u bytes) is not inside the first cluster",
				  (unsigned long long)backing_off, backing_len);
		memcpy(q->backing_name, hdr + backing_off, backing_len);
		q->backing_name[backing_len] = 0;
		if (strlen(q->backing_name) != backing_len)
			OPEN_FAIL(-EINVAL, "backing file name contains a NUL byte");
		ext_end = backing_off;
	}

	/* Header extensions: type, length, data padded to 8 bytes. */
	const uint8_t *ft = NULL;
	uint32_t ftlen = 0;
	for (uint64_t p = q->header_len; p + 8 <= ext_end;) {
		uint32_t type = rd32(hdr + p), len = rd32(hdr + p + 4);
		if (type == EXT_END)
			break;
		if (len > ext_end - p - 8)
			OPEN_FAIL(-EINVAL, "header extension 0x%08x (%u bytes) runs past the header", type, len);
		const uint8_t *d = hdr + p + 8;
		switch (type) {
		case EXT_BACKING_FORMAT:
			if (len >= sizeof(q->backing_fmt))
				OPEN_FAIL(-EINVAL, "backing format name is %u bytes long", len);
			memcpy(q->backing_fmt, d, len);
			q->backing_fmt[len] = 0;
			break;
		case EXT_FEATURE_TABLE:
			ft = d;
			ftlen = len;
			break;
		case EXT_DATA_FILE: OPEN_FAIL(-ENOTSUP, "external data files are not supported");
		case EXT_CRYPTO: OPEN_FAIL(-ENOTSUP, "encrypted images are not supported");
		default: break; /* bitmaps and unknown extensions: ignored */
		}
		p += 8 + (((uint64_t)len + 7) & ~7ull);
	}

	if (rd32(hdr + H_CRYPT))
		OPEN_FAIL(-ENOTSUP, "encrypted images are not supported");
	uint64_t unknown = q->incompat & ~INCOMPAT_KNOWN;
	if (unknown) {
		unsigned bit = (unsigned)__builtin_ctzll(unknown);
		char name[48];
		qcow2_feature_name(ft, ftlen, bit, name, sizeof(name));
		OPEN_FAIL(-ENOTSUP, "unknown incompatible feature bit %u%s%s%s (written by a newer program?)", bit,
			  name[0] ? " '" : "", name, name[0] ? "'" : "");
	}
	if (q->incompat & INCOMPAT_DATA_FILE)
		OPEN_FAIL(-ENOTSUP, "external data files are not supported");
	if (q->incompat & INCOMPAT_EXTL2)
		OPEN_FAIL(-ENOTSUP, "extended L2 entries (subclusters) are not supported");
	if (q->incompat & INCOMPAT_COMPRESSION) {
		unsigned ct = q->header_len > H_COMPRESSION_TYPE ? hdr[H_COMPRESSION_TYPE] : 0;
		if (ct != 0)
			OPEN_FAIL(-ENOTSUP, "compression type %u is not supported (only zlib)", ct);
	}
	if (!readonly && (q->incompat & INCOMPAT_CORRUPT))
		OPEN_FAIL(-EROFS,
			  "image is marked corrupt; repair it with 'qemu-img check -r all' or open it read-only");
	if (!readonly && (q->incompat & INCOMPAT_DIRTY))
		OPEN_FAIL(-EROFS, "image was not closed cleanly (lazy refcounts, dirty bit set); repair it with "
				  "'qemu-img check -r all' or open it read-only");
	if (q->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
		OPEN_FAIL(-EINVAL, "%u internal snapshots is too many", q->nb_snapshots);
	if (!readonly && q->nb_snapshots)
		OPEN_FAIL(-ENOTSUP, "images with internal snapshots can only be opened read-only");

	/* Sizes and tables. */
	if (q->b.size > QCOW2_MAX_SIZE)
		OPEN_FAIL(-EFBIG, "virtual size %llu bytes is too large (the limit is 1 EiB)",
			  (unsigned long long)q->b.size);
	uint64_t per_l2 = q->cs / 8;
	uint64_t clusters = (q->b.size + q->cs - 1) >> q->cluster_bits;
	uint64_t l1_need = (clusters + per_l2 - 1) / per_l2;
	if ((uint64_t)q->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		OPEN_FAIL(-EFBIG, "L1 table of %u entries is too large", q->l1_size);
	if (q->l1_size < l1_need)
		OPEN_FAIL(-EINVAL, "L1 table has %u entries but the virtual size needs %llu", q->l1_size,
			  (unsigned long long)l1_need);
	if (q->l1_size) {
		if (q->l1_offset & (q->cs - 1))
			OPEN_FAIL(-EINVAL, "L1 table offset 0x%llx is not cluster aligned",
				  (unsigned long long)q->l1_offset);
		if (q->l1_offset >= q->file_end || (uint64_t)q->l1_size * 8 > q->file_end - q->l1_offset)
			OPEN_FAIL(-EINVAL, "L1 table offset 0x%llx is past the end of the file",
				  (unsigned long long)q->l1_offset);
		if (q->l1_offset == 0)
			OPEN_FAIL(-EINVAL, "L1 table overlaps the header");
	}
	if (q->rt_clusters == 0 || (uint64_t)q->rt_clusters * q->cs > QCOW2_MAX_RT_BYTES)
		OPEN_FAIL(-EINVAL, "refcount table of %u clusters is out of range (1..%llu)", q->rt_clusters,
			  (unsigned long long)(QCOW2_MAX_RT_BYTES / q->cs));
	if (q->rt_offset & (q->cs - 1))
		OPEN_FAIL(-EINVAL, "refcount table offset 0x%llx is not cluster aligned",
			  (unsigned long long)q->rt_offset);
	if (q->rt_offset == 0)
		OPEN_FAIL(-EINVAL, "refcount table overlaps the header");
	if (q->rt_offset >= q->file_end)
		OPEN_FAIL(-EINVAL, "refcount table offset 0x%llx is past the end of the file",
			  (unsigned long long)q->rt_offset);
	if (q->l1_size &&
	    overlaps(q->l1_offset, (uint64_t)q->l1_size * 8, q->rt_offset, (uint64_t)q->rt_clusters * q->cs))
		OPEN_FAIL(-EINVAL, "L1 table and refcount table overlap");
	q->rb_entries = (q->cs * 8) >> q->refcount_order;

	/* The L1 and refcount tables, every entry checked: aligned, inside the
	 * file, not pointing into other metadata, no table used twice. */
	q->rt_size = (uint64_t)q->rt_clusters * q->cs / 8;
	q->l1 = calloc(q->l1_size ? q->l1_size : 1, 8);
	q->rt = calloc(q->rt_size, 8);
	sorted = calloc(q->rt_size + q->l1_size, 8);
	if (!q->l1 || !q->rt || !sorted)
		OPEN_FAIL(-ENOMEM, "out of memory");
	if ((rc = file_pread(fd, q->l1, (size_t)q->l1_size * 8, q->l1_offset)) < 0 ||
	    (rc = file_pread(fd, q->rt, q->rt_size * 8, q->rt_offset)) < 0)
		OPEN_FAIL(rc, "%s", strerror(-rc));
	size_t ns = 0;
	for (uint64_t i = 0; i < q->rt_size; i++) {
		uint64_t r = be64toh(q->rt[i]);
		q->rt[i] = r;
		if (!r)
			continue;
		const char *what;
		if ((r & ~RT_OFF_MASK) || (r & (q->cs - 1)))
			OPEN_FAIL(-EINVAL, "refcount table entry %llu (0x%llx) is not cluster aligned",
				  (unsigned long long)i, (unsigned long long)r);
		if (r >= q->file_end)
			OPEN_FAIL(-EINVAL, "refcount block offset 0x%llx is past the end of the file",
				  (unsigned long long)r);
		if ((what = qcow2_fixed_meta(q, r, q->cs)))
			OPEN_FAIL(-EINVAL, "refcount block at 0x%llx overlaps %s (a loop in the tables)",
				  (unsigned long long)r, what);
		sorted[ns++] = r;
	}
	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t l = be64toh(q->l1[i]);
		q->l1[i] = l;
		uint64_t off = l & OFF_MASK;
		const char *what;
		if (!off)
			continue;
		if (off & (q->cs - 1))
			OPEN_FAIL(-EINVAL, "L1 entry %u: L2 table offset 0x%llx is not cluster aligned", i,
				  (unsigned long long)off);
		if (off >= q->file_end)
			OPEN_FAIL(-EINVAL, "L1 entry %u: L2 table offset 0x%llx is past the end of the file", i,
				  (unsigned long long)off);
		if ((what = qcow2_fixed_meta(q, off, q->cs)))
			OPEN_FAIL(-EINVAL, "L1 entry %u: L2 table at 0x%llx overlaps %s (a loop in the tables)", i,
				  (unsigned long long)off, what);
		sorted[ns++] = off;
	}
	qsort(sorted, ns, 8, cmp_u64);
	for (size_t i = 1; i < ns; i++)
		if (sorted[i] == sorted[i - 1])
			OPEN_FAIL(-EINVAL, "metadata cluster 0x%llx is used twice (a loop in the tables)",
				  (unsigned long long)sorted[i]);

	/* Caches and buffers. */
	unsigned nl2 = (unsigned)(QCOW2_L2_CACHE_BYTES / q->cs), nrb = (unsigned)(QCOW2_RB_CACHE_BYTES / q->cs);
	nl2 = nl2 < 4 ? 4 : nl2 > 64 ? 64 : nl2;
	nrb = nrb < 4 ? 4 : nrb > 16 ? 16 : nrb;
	q->cbuf = malloc(2 * q->cs + 512);
	q->zbuf = malloc(q->cs);
	q->tmp = malloc(q->cs);
	if (!q->cbuf || !q->zbuf || !q->tmp || tc_init(&q->l2c, nl2, q->cs) < 0 || tc_init(&q->rbc, nrb, q->cs) < 0)
		OPEN_FAIL(-ENOMEM, "out of memory");

	if (q->backing_name[0] && !(chain->flags & QCOW2_OPEN_NO_BACKING)) {
		chain->depth++;
		rc = qcow2_open_backing(q, err, errlen, chain);
		chain->depth--;
		if (rc < 0)
			goto fail_quiet;
	}

	/* Opening for writing clears the autoclear bits we do not maintain
	 * (bitmaps would go stale). */
	if (!readonly && q->version >= 3 && q->autoclear) {
		uint8_t z[8] = {0};
		if ((rc = file_pwrite(fd, z, 8, H_AUTOCLEAR)) < 0 || (rc = file_sync(fd)) < 0)
			OPEN_FAIL(rc, "%s", strerror(-rc));
		q->autoclear = 0;
	}
	free(hdr);
	free(sorted);
	*out = &q->b;
	return 0;
fail:
fail_quiet:
	free(hdr);
	free(sorted);
	qcow2_free_all(q);
	return rc;
}

int qcow2_open_flags(struct blk **out, int fd, int readonly, char *err, size_t errlen, const char *path, unsigned flags)
{
	struct qcow2_chain chain;
	memset(&chain, 0, sizeof(chain));
	chain.flags = flags;
	return qcow2_open_chain(out, fd, readonly, err, errlen, path, &chain);
}

int qcow2_open(struct blk **out, int fd, int readonly, char *err, size_t errlen, const char *path)
{
	return qcow2_open_flags(out, fd, readonly, err, errlen, path, 0);
}

/* ---- information, creation, checking ---- */

void qcow2_get_info(struct blk *b, struct blk_info *info)
{
	struct qcow2 *q = (struct qcow2 *)b;
	info->cluster_size = q->cs;
	info->version = q->version;
	info->refcount_bits = 1u << q->refcount_order;
	snprintf(info->backing, sizeof(info->backing), "%s", q->backing_name);
	snprintf(info->backing_fmt, sizeof(info->backing_fmt), "%s", q->backing_fmt);
	info->corrupt = !!(q->incompat & INCOMPAT_CORRUPT);
	info->dirty = !!(q->incompat & INCOMPAT_DIRTY);
	info->lazy_refcounts = !!(q->compat & COMPAT_LAZY_REFCOUNTS);
	info->nb_snapshots = q->nb_snapshots;
	info->backing_blk = q->backing;
}

const char *qcow2_last_error(struct blk *b)
{
	struct qcow2 *q = (struct qcow2 *)b;
	return q->errmsg[0] ? q->errmsg : NULL;
}

int qcow2_create(const char *path, uint64_t size, unsigned cluster_bits, const char *backing, const char *backing_fmt,
		 char *err, size_t errlen)
{
	uint64_t cs = 1ull << cluster_bits;
	uint8_t *buf = NULL;
	int fd = -1, r;

	if (cluster_bits < QCOW2_MIN_CLUSTER_BITS || cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
		snprintf(err, errlen, "disk '%s': cluster size must be a power of two from 512 bytes to 2 MiB", path);
		return -EINVAL;
	}
	if (size > QCOW2_MAX_SIZE) {
		snprintf(err, errlen, "disk '%s': size %llu bytes is too large (the limit is 1 EiB)", path,
			 (unsigned long long)size);
		return -EFBIG;
	}
	size_t blen = backing ? strlen(backing) : 0, flen = backing_fmt ? strlen(backing_fmt) : 0;
	if (blen > QCOW2_MAX_BACKING_NAME || flen >= 32 ||
	    QCOW2_V3_HEADER_LEN + 8 + ((flen + 7) & ~7u) + 8 + blen > cs) {
		snprintf(err, errlen, "disk '%s': backing file name is too long", path);
		return -ENAMETOOLONG;
	}
	uint64_t per_l2 = cs / 8, clusters = (size + cs - 1) / cs;
	uint64_t l1_size = (clusters + per_l2 - 1) / per_l2;
	if (l1_size * 8 > QCOW2_MAX_L1_BYTES) {
		snprintf(err, errlen, "disk '%s': size needs an L1 table over 32 MiB; use a larger cluster size", path);
		return -EFBIG;
	}
	uint64_t l1_clusters = (l1_size * 8 + cs - 1) / cs, E = cs * 8 / 16;
	uint64_t nrt = 1, nrb = 1, total;
	for (;;) {
		total = 1 + nrt + nrb + l1_clusters;
		uint64_t need_rb = (total + E - 1) / E, need_rt = (need_rb * 8 + cs - 1) / cs;
		if (need_rb <= nrb && need_rt <= nrt)
			break;
		nrb = need_rb > nrb ? need_rb : nrb;
		nrt = need_rt > nrt ? need_rt : nrt;
	}
	uint64_t rt_off = cs, rb_off = (1 + nrt) * cs, l1_off = (1 + nrt + nrb) * cs;

	buf = calloc(1 + nrt + nrb, cs);
	if (!buf) {
		snprintf(err, errlen, "disk '%s': out of memory", path);
		return -ENOMEM;
	}
	wr32(buf, QCOW2_MAGIC);
	wr32(buf + H_VERSION, 3);
	wr32(buf + H_CLUSTER_BITS, cluster_bits);
	wr64(buf + H_SIZE, size);
	wr32(buf + H_L1_SIZE, (uint32_t)l1_size);
	wr64(buf + H_L1_OFFSET, l1_off);
	wr64(buf + H_RT_OFFSET, rt_off);
	wr32(buf + H_RT_CLUSTERS, (uint32_t)nrt);
	wr32(buf + H_REFCOUNT_ORDER, 4);
	wr32(buf + H_HEADER_LEN, QCOW2_V3_HEADER_LEN);
	uint64_t p = QCOW2_V3_HEADER_LEN;
	if (backing_fmt && flen) {
		wr32(buf + p, EXT_BACKING_FORMAT);
		wr32(buf + p + 4, (uint32_t)flen);
		memcpy(buf + p + 8, backing_fmt, flen);
		p += 8 + ((flen + 7) & ~7u);
	}
	p += 8; /* end of extensions */
	if (backing && blen) {
		wr64(buf + H_BACKING_OFFSET, p);
		wr32(buf + H_BACKING_SIZE, (uint32_t)blen);
		memcpy(buf + p, backing, blen);
	}
	for (uint64_t i = 0; i < nrb; i++)
		wr64(buf + rt_off + 8 * i, rb_off + i * cs);
	for (uint64_t c = 0; c < total; c++)
		rb_set(buf + rb_off, 4, c, 1); /* the blocks are contiguous: one array */

	/* Truncated only once locked: an image in use is left alone. */
	const char *kind;
	fd = blk_open_file(path, O_RDWR | O_CREAT, 0, &kind);
	if (fd < 0) {
		r = fd;
		if (kind)
			snprintf(err, errlen, "disk '%s': not a regular file (%s)", path, kind);
		else
			snprintf(err, errlen, "disk '%s': %s", path, strerror(-r));
		goto out;
	}
	if ((r = blk_lock(fd, 0, path, err, errlen)) < 0)
		goto out;
	if ((ftruncate(fd, 0) < 0 && (r = -errno)) || (r = file_pwrite(fd, buf, (1 + nrt + nrb) * cs, 0)) < 0 ||
	    (ftruncate(fd, (off_t)(total * cs)) < 0 && (r = -errno)) || (r = file_sync(fd)) < 0) {
		snprintf(err, errlen, "disk '%s': %s", path, strerror(-r));
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

static void check_report(FILE *log, int verbose, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void check_report(FILE *log, int verbose, const char *fmt, ...)
{
	va_list ap;
	if (!log || !verbose)
		return;
	va_start(ap, fmt);
	vfprintf(log, fmt, ap);
	va_end(ap);
}

#define QCOW2_CHECK_MAX_CLUSTERS (1ull << 28)
#define CHECK_LOG_MAX 100 /* lines of detail before only counting */

struct check_ctx {
	struct qcow2 *q;
	uint16_t *refs;
	uint64_t nclusters;
	struct qcow2_check *res;
	FILE *log;
	unsigned lines;
};

static void check_ref(struct check_ctx *c, uint64_t off, uint64_t len, const char *what)
{
	for (uint64_t i = off / c->q->cs; i * c->q->cs < off + len; i++) {
		if (i >= c->nclusters) {
			c->res->errors++;
			check_report(c->log, c->lines++ < CHECK_LOG_MAX,
				     "ERROR %s at 0x%llx is past the end of the file\n", what,
				     (unsigned long long)(i * c->q->cs));
			return;
		}
		if (c->refs[i] < UINT16_MAX)
			c->refs[i]++;
	}
}

static void check_copied(struct check_ctx *c, uint64_t entry, uint64_t off, const char *what)
{
	uint64_t v;
	if (qcow2_refcount_get(c->q, off / c->q->cs, &v) < 0)
		return;
	if ((v == 1) != !!(entry & OFLAG_COPIED)) {
		c->res->errors++;
		check_report(c->log, c->lines++ < CHECK_LOG_MAX, "ERROR OFLAG_COPIED %s: entry=0x%llx refcount=%llu\n",
			     what, (unsigned long long)entry, (unsigned long long)v);
	}
}

/* References from one L1 table (the active one, or a snapshot's) and its L2
 * tables. OFLAG_COPIED must match the refcount only in the active tables. */
static int check_l1(struct check_ctx *c, const uint64_t *l1, uint32_t l1_size, int active, uint8_t *l2)
{
	struct qcow2 *q = c->q;
	struct qcow2_check *res = c->res;
	for (uint32_t i = 0; i < l1_size; i++) {
		uint64_t l2off = l1[i] & OFF_MASK;
		if (!l2off)
			continue;
		if (l1[i] & L1E_RESERVED & ~OFF_MASK) {
			res->errors++;
			check_report(c->log, c->lines++ < CHECK_LOG_MAX, "ERROR L1 entry %u has reserved bits set\n",
				     i);
		}
		if ((l2off & (q->cs - 1)) || l2off >= q->file_end) {
			res->errors++;
			check_report(c->log, c->lines++ < CHECK_LOG_MAX,
				     "ERROR L2 table offset 0x%llx is unaligned or past the end of the file\n",
				     (unsigned long long)l2off);
			continue;
		}
		check_ref(c, l2off, q->cs, "L2 table");
		if (active)
			check_copied(c, l1[i], l2off, "L2 table");
		struct tcache_ent *t;
		int rc = tc_get(q, &q->l2c, l2off, 0, &t);
		if (rc < 0)
			return rc;
		memcpy(l2, t->data, q->cs);
		for (uint64_t j = 0; j < q->cs / 8; j++) {
			uint64_t e = rd64(l2 + 8 * j), off, len;
			if (e & OFLAG_COMPRESSED) {
				if (e & OFLAG_COPIED) {
					res->errors++;
					check_report(c->log, c->lines++ < CHECK_LOG_MAX,
						     "ERROR compressed cluster with OFLAG_COPIED: entry=0x%llx\n",
						     (unsigned long long)e);
				}
				qcow2_entry_range(q, e, &off, &len);
				check_ref(c, off, len, "compressed cluster");
				if (active)
					res->compressed_clusters++;
				continue;
			}
			off = e & OFF_MASK;
			if (!off)
				continue;
			if (off & (q->cs - 1)) {
				res->errors++;
				check_report(c->log, c->lines++ < CHECK_LOG_MAX,
					     "ERROR data cluster offset 0x%llx is not cluster aligned\n",
					     (unsigned long long)off);
				continue;
			}
			check_ref(c, off, q->cs, "data cluster");
			if (active) {
				check_copied(c, e, off, "data cluster");
				res->allocated_clusters++;
			}
		}
	}
	return 0;
}

/* The internal snapshot table (qcow2.txt "Snapshot table"): each entry's L1
 * table and what it references. */
#define SNAP_HEADER 40
#define SNAP_MAX_TABLE (64u << 20)

static int check_snapshots(struct check_ctx *c, uint8_t *l2)
{
	struct qcow2 *q = c->q;
	uint64_t pos = q->snapshots_offset;
	int rc = 0;
	if ((pos & (q->cs - 1)) || pos >= q->file_end)
		return qcow2_fail(q, "snapshot table offset 0x%llx is unaligned or past the end of the file",
				  (unsigned long long)pos);
	for (uint32_t s = 0; s < q->nb_snapshots; s++) {
		uint8_t h[SNAP_HEADER];
		if (pos - q->snapshots_offset > SNAP_MAX_TABLE || pos + SNAP_HEADER > q->file_end)
			return qcow2_fail(q, "snapshot table runs past the end of the file");
		if ((rc = file_pread(q->fd, h, sizeof(h), pos)) < 0)
			return rc;
		uint64_t l1off = rd64(h);
		uint32_t l1n = rd32(h + 8);
		uint64_t len = SNAP_HEADER + (uint64_t)rd32(h + 36) + ((uint64_t)h[12] << 8 | h[13]) +
			       ((uint64_t)h[14] << 8 | h[15]);
		pos += (len + 7) & ~7ull;
		if ((uint64_t)l1n * 8 > QCOW2_MAX_L1_BYTES || (l1off & (q->cs - 1)) || l1off >= q->file_end ||
		    (uint64_t)l1n * 8 > q->file_end - l1off) {
			c->res->errors++;
			check_report(c->log, c->lines++ < CHECK_LOG_MAX,
				     "ERROR snapshot %u: L1 table (0x%llx, %u entries) is invalid\n", s,
				     (unsigned long long)l1off, l1n);
			continue;
		}
		check_ref(c, l1off, (uint64_t)l1n * 8, "snapshot L1 table");
		uint64_t *l1 = calloc(l1n ? l1n : 1, 8);
		if (!l1)
			return -ENOMEM;
		if ((rc = file_pread(q->fd, l1, (size_t)l1n * 8, l1off)) == 0) {
			for (uint32_t i = 0; i < l1n; i++)
				l1[i] = be64toh(l1[i]);
			rc = check_l1(c, l1, l1n, 0, l2);
		}
		free(l1);
		if (rc < 0)
			return rc;
	}
	check_ref(c, q->snapshots_offset, pos - q->snapshots_offset, "snapshot table");
	return 0;
}

int qcow2_check(struct blk *b, struct qcow2_check *res, FILE *log, unsigned flags)
{
	struct qcow2 *q = (struct qcow2 *)b;
	struct check_ctx c = {q, NULL, 0, res, log, 0};
	uint8_t *l2 = NULL;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	c.nclusters = (q->file_end + q->cs - 1) / q->cs;
	if (c.nclusters > QCOW2_CHECK_MAX_CLUSTERS)
		return qcow2_fail(q, "file has too many clusters to check (%llu)", (unsigned long long)c.nclusters);
	c.refs = calloc(c.nclusters ? c.nclusters : 1, sizeof(*c.refs));
	l2 = malloc(q->cs);
	if (!c.refs || !l2) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&q->lock);
	check_ref(&c, 0, q->cs, "header");
	check_ref(&c, q->l1_offset, (uint64_t)q->l1_size * 8, "L1 table");
	check_ref(&c, q->rt_offset, (uint64_t)q->rt_clusters * q->cs, "refcount table");
	for (uint64_t k = 0; k < q->rt_size; k++)
		if (q->rt[k])
			check_ref(&c, q->rt[k], q->cs, "refcount block");
	rc = check_l1(&c, q->l1, q->l1_size, 1, l2);
	if (rc == 0 && q->nb_snapshots)
		rc = check_snapshots(&c, l2);
	/* Stored refcounts against the references counted. */
	for (uint64_t i = 0; rc == 0 && i < c.nclusters; i++) {
		uint64_t v;
		if ((rc = qcow2_refcount_get(q, i, &v)) < 0)
			break;
		if (v < c.refs[i]) {
			res->errors++;
			check_report(log, c.lines++ < CHECK_LOG_MAX, "ERROR cluster %llu refcount=%llu reference=%u\n",
				     (unsigned long long)i, (unsigned long long)v, c.refs[i]);
		} else if (v > c.refs[i]) {
			res->leaks++;
			check_report(log, c.lines++ < CHECK_LOG_MAX, "Leaked cluster %llu refcount=%llu reference=%u\n",
				     (unsigned long long)i, (unsigned long long)v, c.refs[i]);
		}
		if (c.refs[i])
			res->image_end = (i + 1) * q->cs;
	}
	/* Refcounts of clusters past the end of the file are harmless (a crash
	 * between writing a refcount and its table) and, as in qemu-img check,
	 * not reported. */
	res->total_clusters = (q->b.size + q->cs - 1) / q->cs;
	/* Leaks are repaired only when the references are known to be right:
	 * with errors, the count may be wrong and freeing could corrupt. */
	if (rc == 0 && (flags & QCOW2_CHECK_REPAIR_LEAKS) && res->leaks && !res->errors && !b->readonly) {
		for (uint64_t i = 0; rc == 0 && i < c.nclusters; i++) {
			uint64_t v;
			if (c.refs[i] == UINT16_MAX || (rc = qcow2_refcount_get(q, i, &v)) < 0 || v <= c.refs[i])
				continue;
			while (rc == 0 && v-- > c.refs[i])
				rc = qcow2_refcount_update(q, i, -1);
			res->leaks_fixed++;
		}
		if (rc == 0)
			rc = qcow2_meta_flush(q);
	}
	pthread_mutex_unlock(&q->lock);
out:
	free(c.refs);
	free(l2);
	return rc;
}
