/* corral image: create, inspect, check and convert disk images, with the
 * options and output a qemu-img user expects. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/block.h"
#include "cli/cli.h"

#define IMAGE_CHUNK (1u << 20)
#define IMAGE_DEFAULT_CLUSTER_BITS 16

static void image_usage(FILE *f)
{
	fprintf(f, "usage: corral image create [-f raw|qcow2] [-b BACKING -F raw|qcow2 [-u]] [-o OPTIONS] [-q] FILE "
		   "[SIZE]\n"
		   "       corral image info [-f FMT] [--output human|json] FILE\n"
		   "       corral image check [-f FMT] [-r leaks] FILE\n"
		   "       corral image convert [-f FMT] [-O raw|qcow2] [-o cluster_size=N] [-p] IN OUT\n"
		   "       corral image commit [-f qcow2] [-d] [-p] [-q] OVERLAY\n"
		   "\n"
		   "Creates, inspects, checks, converts and commits disk images (raw, qcow2) with qemu-img's\n"
		   "options. 'corral image SUBCOMMAND --help' describes a subcommand.\n"
		   "\n"
		   "  -h, --help     show this help\n");
}

static void image_create_usage(FILE *f)
{
	fprintf(f, "usage: corral image create [-f raw|qcow2] [-b BACKING -F raw|qcow2 [-u]] [-o OPTIONS] [-q] FILE "
		   "[SIZE]\n"
		   "\n"
		   "Creates a new disk image. SIZE takes the suffixes K, M, G, T (powers of 1024), as in\n"
		   "qemu-img; with a backing file it defaults to the backing file's size.\n"
		   "\n"
		   "  -f FMT         the new image's format: raw (default) or qcow2\n"
		   "  -b BACKING     a backing file (qcow2 only); a relative name is relative to\n"
		   "                 the new image's folder\n"
		   "  -F FMT         the backing file's format: raw or qcow2 (default: probed)\n"
		   "  -u             do not open the backing file (SIZE and -F needed)\n"
		   "  -o OPTIONS     cluster_size=N, backing_file=F, backing_fmt=raw|qcow2\n"
		   "  -q             quiet (accepted for qemu-img habits)\n"
		   "  -h, --help     show this help\n");
}

static void image_info_usage(FILE *f)
{
	fprintf(f, "usage: corral image info [-f FMT] [--output human|json] FILE\n"
		   "\n"
		   "Shows an image's format, virtual and disk size, cluster size and backing file.\n"
		   "\n"
		   "  -f FMT         the image's format: raw or qcow2 (default: probed)\n"
		   "  --output OUT   human (default) or json, as qemu-img info prints them\n"
		   "  -h, --help     show this help\n");
}

static void image_check_usage(FILE *f)
{
	fprintf(f, "usage: corral image check [-f FMT] [-r leaks] FILE\n"
		   "\n"
		   "Checks a qcow2 image's consistency (refcounts against references, leaks, offsets\n"
		   "past the end). Exits 0 when clean, 2 on errors, 3 on leaks only.\n"
		   "\n"
		   "  -f FMT         the image's format: raw or qcow2 (default: probed)\n"
		   "  -r leaks       free leaked clusters\n"
		   "  -h, --help     show this help\n");
}

static void image_convert_usage(FILE *f)
{
	fprintf(f, "usage: corral image convert [-f FMT] [-O raw|qcow2] [-o cluster_size=N] [-p] IN OUT\n"
		   "\n"
		   "Copies the disk IN into a new image OUT, skipping zero clusters.\n"
		   "\n"
		   "  -f FMT         IN's format: raw or qcow2 (default: probed)\n"
		   "  -O FMT         OUT's format: raw (default) or qcow2\n"
		   "  -o OPTIONS     cluster_size=N\n"
		   "  -p             show progress as a percentage, updated in place\n"
		   "  -h, --help     show this help\n");
}

static void image_commit_usage(FILE *f)
{
	fprintf(f, "usage: corral image commit [-f qcow2] [-d] [-p] [-q] OVERLAY\n"
		   "\n"
		   "Folds the qcow2 image OVERLAY into its backing file, as qemu-img commit: every\n"
		   "cluster OVERLAY holds itself is written into the backing file, which then reads\n"
		   "as OVERLAY did. OVERLAY is then emptied (an empty overlay on the same backing\n"
		   "file again), unless -d. Neither file may be in use by a VM, and other overlays\n"
		   "on the same backing file see the change too.\n"
		   "\n"
		   "  -f FMT         OVERLAY's format: qcow2 (the only one with a backing file)\n"
		   "  -d             leave OVERLAY's contents as they are\n"
		   "  -p             show progress as a percentage, updated in place\n"
		   "  -q             quiet: no 'Image committed.'\n"
		   "  -h, --help     show this help\n");
}

/* Each subcommand takes --help as well as -h. */
static const struct option image_help_opt[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

/* qemu-img's -o: cluster_size=N, and for create backing_file=F and
 * backing_fmt=raw|qcow2 (the same as -b and -F). */
struct image_opts {
	unsigned cluster_bits;
	char backing[1024];
	char backing_fmt[16];
};

static int image_parse_opts(const char *o, struct image_opts *io)
{
	char buf[2048];
	snprintf(buf, sizeof(buf), "%s", o);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		unsigned *cluster_bits = &io->cluster_bits;
		if (!strncmp(tok, "backing_file=", 13)) {
			snprintf(io->backing, sizeof(io->backing), "%s", tok + 13);
		} else if (!strncmp(tok, "backing_fmt=", 12)) {
			snprintf(io->backing_fmt, sizeof(io->backing_fmt), "%s", tok + 12);
		} else if (!strncmp(tok, "cluster_size=", 13)) {
			if (cli_parse_size(tok + 13, 0, &v) < 0 || v < 512 || v > (2u << 20) || (v & (v - 1))) {
				fprintf(stderr, "corral: cluster_size must be a power of two from 512 to 2M\n");
				return -1;
			}
			*cluster_bits = (unsigned)__builtin_ctzll(v);
		} else {
			fprintf(stderr, "corral: unknown option '%s' (cluster_size, backing_file, backing_fmt)\n", tok);
			return -1;
		}
	}
	return 0;
}

static int image_format_arg(const char *s, enum blk_format *f)
{
	if (blk_format_parse(s, f) < 0) {
		fprintf(stderr, "corral: unknown image format '%s' (raw or qcow2)\n", s);
		return -1;
	}
	return 0;
}

static int image_open(struct blk **b, const char *path, enum blk_format fmt, int readonly)
{
	char err[512];
	if (blk_open(b, path, fmt, readonly, err, sizeof(err)) < 0) {
		fprintf(stderr, "corral: %s\n", err);
		return -1;
	}
	return 0;
}

static void image_io_error(struct blk *b, const char *what, const char *path, int rc)
{
	const char *e = blk_last_error(b);
	if (e)
		fprintf(stderr, "corral: %s\n", e);
	else
		fprintf(stderr, "corral: %s '%s': %s\n", what, path, strerror(-rc));
}

static int image_create_file(const char *path, enum blk_format fmt, uint64_t size, unsigned cluster_bits,
			     const char *backing, const char *backing_fmt)
{
	char err[512];
	if (fmt == BLK_FMT_QCOW2) {
		if (qcow2_create(path, size, cluster_bits, backing, backing_fmt, err, sizeof(err)) < 0) {
			fprintf(stderr, "corral: %s\n", err);
			return -1;
		}
		return 0;
	}
	if (backing) {
		fprintf(stderr, "corral: disk '%s': raw images cannot have a backing file (use -f qcow2)\n", path);
		return -1;
	}
	const char *kind;
	int fd = blk_open_file(path, O_RDWR | O_CREAT, 0, &kind);
	if (fd < 0) {
		if (kind)
			fprintf(stderr, "corral: disk '%s': not a regular file (%s)\n", path, kind);
		else
			fprintf(stderr, "corral: disk '%s': %s\n", path, strerror(-fd));
		return -1;
	}
	if (blk_lock(fd, 0, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "corral: %s\n", err);
		close(fd);
		return -1;
	}
	/* Truncated only once locked: an image in use is left alone. */
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)size) < 0) {
		fprintf(stderr, "corral: disk '%s': %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int image_create(int argc, char **argv)
{
	enum blk_format fmt = BLK_FMT_RAW, bfmt = BLK_FMT_PROBE;
	const char *backing = NULL;
	struct image_opts io = {IMAGE_DEFAULT_CLUSTER_BITS, "", ""};
	int opt, unsafe = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "f:b:F:o:uqh", image_help_opt, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (image_format_arg(optarg, &fmt) < 0)
				return 2;
			break;
		case 'b': backing = optarg; break;
		case 'F':
			if (image_format_arg(optarg, &bfmt) < 0)
				return 2;
			break;
		case 'o':
			if (image_parse_opts(optarg, &io) < 0)
				return 2;
			break;
		case 'u': unsafe = 1; break;
		case 'q': break;
		case 'h': image_create_usage(stdout); return 0;
		default: image_create_usage(stderr); return 2;
		}
	}
	unsigned cluster_bits = io.cluster_bits;
	if (!backing && io.backing[0])
		backing = io.backing;
	if (bfmt == BLK_FMT_PROBE && io.backing_fmt[0] && image_format_arg(io.backing_fmt, &bfmt) < 0)
		return 2;
	if (optind >= argc || argc - optind > 2) {
		image_create_usage(stderr);
		return 2;
	}
	const char *path = argv[optind];
	uint64_t size = 0;
	int have_size = argc - optind == 2;
	if (have_size && cli_parse_size(argv[optind + 1], 0, &size) < 0) {
		fprintf(stderr, "corral: bad size '%s' (e.g. 10G, 512M, 4096)\n", argv[optind + 1]);
		return 2;
	}
	if (backing && unsafe) {
		/* -u: the backing file is not opened (it may not exist yet). */
		if (!have_size || bfmt == BLK_FMT_PROBE) {
			fprintf(stderr, "corral: image create -u needs a SIZE and a backing format (-F)\n");
			return 2;
		}
	} else if (backing) {
		/* The backing file must open; its size is the default. Relative
		 * names are relative to the new image's folder, as qemu-img. */
		char bpath[8192];
		const char *slash = strrchr(path, '/');
		if (backing[0] == '/' || !slash)
			snprintf(bpath, sizeof(bpath), "%s", backing);
		else
			snprintf(bpath, sizeof(bpath), "%.*s/%s", (int)(slash - path), path, backing);
		struct stat sb, sf;
		if (stat(bpath, &sb) == 0 && stat(path, &sf) == 0 && sb.st_dev == sf.st_dev && sb.st_ino == sf.st_ino) {
			fprintf(stderr, "corral: image create: '%s' would be its own backing file\n", path);
			return 2;
		}
		struct blk *bb;
		if (image_open(&bb, bpath, bfmt, 1) < 0)
			return 1;
		if (bfmt == BLK_FMT_PROBE)
			bfmt = bb->format;
		if (!have_size)
			size = bb->size;
		blk_close(bb);
	} else if (!have_size) {
		fprintf(stderr, "corral: image create: a SIZE is needed without a backing file\n");
		return 2;
	}
	if (image_create_file(path, fmt, size, cluster_bits, backing, backing ? blk_format_name(bfmt) : NULL) < 0)
		return 1;
	printf("Formatting '%s', fmt=%s size=%llu%s%s%s%s\n", path, blk_format_name(fmt), (unsigned long long)size,
	       backing ? " backing_file=" : "", backing ? backing : "", backing ? " backing_fmt=" : "",
	       backing ? blk_format_name(bfmt) : "");
	return 0;
}

static void image_human(char *buf, size_t n, uint64_t v)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double d = (double)v;
	unsigned u = 0;
	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%llu B", (unsigned long long)v);
	else
		snprintf(buf, n, "%.3g %s", d, units[u]);
}

/* Names from an image file are hostile too: no control characters reach
 * the terminal. */
static void image_print_safe(const char *label, const char *s)
{
	printf("%s", label);
	for (; *s; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
	putchar('\n');
}

static void image_json_str(const char *key, const char *s, int last)
{
	printf("    \"%s\": \"", key);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	printf("\"%s\n", last ? "" : ",");
}

static void image_info_json(const char *path, const struct blk_info *info, const struct stat *st, int have_st)
{
	printf("{\n");
	image_json_str("filename", path, 0);
	image_json_str("format", blk_format_name(info->format), 0);
	printf("    \"virtual-size\": %llu,\n", (unsigned long long)info->size);
	if (have_st)
		printf("    \"actual-size\": %llu,\n", (unsigned long long)st->st_blocks * 512);
	if (info->format == BLK_FMT_QCOW2) {
		printf("    \"cluster-size\": %llu,\n", (unsigned long long)info->cluster_size);
		if (info->backing[0]) {
			image_json_str("backing-filename", info->backing, 0);
			if (info->backing_fmt[0])
				image_json_str("backing-filename-format", info->backing_fmt, 0);
		}
		printf("    \"format-specific\": {\"type\": \"qcow2\", \"data\": {\"compat\": \"%s\", "
		       "\"lazy-refcounts\": %s, \"refcount-bits\": %u, \"corrupt\": %s}},\n",
		       info->version >= 3 ? "1.1" : "0.10", info->lazy_refcounts ? "true" : "false",
		       info->refcount_bits, info->corrupt ? "true" : "false");
		printf("    \"snapshots\": %u,\n", info->nb_snapshots);
	}
	printf("    \"dirty-flag\": %s\n}\n", info->dirty ? "true" : "false");
}

static int image_info(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'J'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	enum blk_format fmt = BLK_FMT_PROBE;
	int opt, json = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (image_format_arg(optarg, &fmt) < 0)
				return 2;
			break;
		case 'J':
			if (strcmp(optarg, "json") && strcmp(optarg, "human")) {
				fprintf(stderr, "corral: --output must be human or json\n");
				return 2;
			}
			json = !strcmp(optarg, "json");
			break;
		case 'h': image_info_usage(stdout); return 0;
		default: image_info_usage(stderr); return 2;
		}
	}
	if (argc - optind != 1) {
		image_info_usage(stderr);
		return 2;
	}
	const char *path = argv[optind];
	struct blk *b;
	if (image_open(&b, path, fmt, 1) < 0)
		return 1;
	struct blk_info info;
	struct stat st;
	char h[64];
	blk_get_info(b, &info);
	int have_st = stat(path, &st) == 0;
	if (json) {
		image_info_json(path, &info, &st, have_st);
		blk_close(b);
		return 0;
	}
	image_print_safe("image: ", path);
	printf("file format: %s\n", blk_format_name(info.format));
	image_human(h, sizeof(h), info.size);
	printf("virtual size: %s (%llu bytes)\n", h, (unsigned long long)info.size);
	if (have_st) {
		image_human(h, sizeof(h), (uint64_t)st.st_blocks * 512);
		printf("disk size: %s\n", h);
	}
	if (info.format == BLK_FMT_QCOW2) {
		printf("cluster_size: %llu\n", (unsigned long long)info.cluster_size);
		if (info.backing[0]) {
			image_print_safe("backing file: ", info.backing);
			if (info.backing_fmt[0])
				image_print_safe("backing file format: ", info.backing_fmt);
		}
		if (info.nb_snapshots)
			printf("internal snapshots: %u\n", info.nb_snapshots);
		printf("Format specific information:\n");
		printf("    compat: %s\n", info.version >= 3 ? "1.1" : "0.10");
		printf("    lazy refcounts: %s\n", info.lazy_refcounts ? "true" : "false");
		printf("    refcount bits: %u\n", info.refcount_bits);
		printf("    corrupt: %s\n", info.corrupt ? "true" : "false");
		if (info.dirty)
			printf("    dirty: true (not closed cleanly)\n");
	}
	blk_close(b);
	return 0;
}

static int image_check(int argc, char **argv)
{
	enum blk_format fmt = BLK_FMT_PROBE;
	int opt, repair = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "f:r:h", image_help_opt, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (image_format_arg(optarg, &fmt) < 0)
				return 2;
			break;
		case 'r':
			if (strcmp(optarg, "leaks")) {
				fprintf(stderr, "corral: check -r: only 'leaks' can be repaired (qemu-img check -r all "
						"repairs corruption)\n");
				return 2;
			}
			repair = 1;
			break;
		case 'h': image_check_usage(stdout); return 0;
		default: image_check_usage(stderr); return 2;
		}
	}
	if (argc - optind != 1) {
		image_check_usage(stderr);
		return 2;
	}
	const char *path = argv[optind];
	struct blk *b;
	if (image_open(&b, path, fmt, !repair) < 0)
		return 1;
	if (b->format != BLK_FMT_QCOW2) {
		printf("Image '%s' is raw: it has no metadata to check.\n", path);
		blk_close(b);
		return 0;
	}
	struct qcow2_check res;
	int rc = qcow2_check(b, &res, stdout, repair ? QCOW2_CHECK_REPAIR_LEAKS : 0);
	if (rc < 0) {
		image_io_error(b, "check of", path, rc);
		blk_close(b);
		return 1;
	}
	blk_close(b);
	if (res.leaks_fixed) {
		printf("The following inconsistencies were found and repaired:\n\n    %llu leaked clusters\n    0 "
		       "corruptions\n\n",
		       (unsigned long long)res.leaks_fixed);
		res.leaks -= res.leaks_fixed;
	} else if (repair && res.leaks && res.errors) {
		printf("Leaks were not repaired: the image has errors (qemu-img check -r all repairs both).\n");
	}
	/* Exit status and wording as qemu-img check: 2 corrupt, 3 leaks only. */
	if (res.errors) {
		printf("\n%llu errors were found on the image.\nData may be corrupted, or further writes to the image "
		       "may corrupt it.\n",
		       (unsigned long long)res.errors);
	}
	if (res.leaks) {
		printf("\n%llu leaked clusters were found on the image.\nThis means waste of disk space, but no harm "
		       "to "
		       "data.\n",
		       (unsigned long long)res.leaks);
	}
	if (!res.errors && !res.leaks)
		printf("No errors were found on the image.\n");
	if (res.total_clusters)
		printf("%llu/%llu = %.2f%% allocated, %llu compressed clusters\n",
		       (unsigned long long)(res.allocated_clusters + res.compressed_clusters),
		       (unsigned long long)res.total_clusters,
		       100.0 * (double)(res.allocated_clusters + res.compressed_clusters) / (double)res.total_clusters,
		       (unsigned long long)res.compressed_clusters);
	printf("Image end offset: %llu\n", (unsigned long long)res.image_end);
	return res.errors ? 2 : res.leaks ? 3 : 0;
}

static int image_is_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/* qemu-img convert -p: "    (42.00/100%)" on stdout, rewritten in place
 * (carriage return) whenever the hundredths of a percent change. */
static void image_progress(uint64_t done, uint64_t total, int *shown)
{
	int now = total ? (int)((double)done * 10000.0 / (double)total) : 10000;
	if (now == *shown)
		return;
	*shown = now;
	printf("    (%d.%02d/100%%)\r", now / 100, now % 100);
	fflush(stdout);
}

/* The end of a copy into dst (convert, commit): its flush, the progress
 * line's last state, and what went wrong. Returns the final status. */
static int copy_finish(struct blk *dst, const char *path, int rc, int status, int progress, uint64_t size, int *shown)
{
	if (rc == 0 && (rc = dst->ops->flush(dst)) < 0) {
		image_io_error(dst, "flushing", path, rc);
		status = 1;
	}
	if (progress && status == 0)
		image_progress(size, size, shown);
	if (progress)
		printf("\n");
	if (rc == -ENOMEM) {
		fprintf(stderr, "corral: out of memory\n");
		status = 1;
	}
	return status;
}

static int image_convert(int argc, char **argv)
{
	enum blk_format ifmt = BLK_FMT_PROBE, ofmt = BLK_FMT_RAW;
	struct image_opts io = {IMAGE_DEFAULT_CLUSTER_BITS, "", ""};
	int opt, progress = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "f:O:o:ph", image_help_opt, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (image_format_arg(optarg, &ifmt) < 0)
				return 2;
			break;
		case 'O':
			if (image_format_arg(optarg, &ofmt) < 0)
				return 2;
			break;
		case 'o':
			if (image_parse_opts(optarg, &io) < 0)
				return 2;
			break;
		case 'p': progress = 1; break;
		case 'h': image_convert_usage(stdout); return 0;
		default: image_convert_usage(stderr); return 2;
		}
	}
	if (argc - optind != 2) {
		image_convert_usage(stderr);
		return 2;
	}
	const char *in = argv[optind], *outp = argv[optind + 1];
	unsigned cluster_bits = io.cluster_bits;
	if (io.backing[0]) {
		fprintf(stderr, "corral: image convert: backing_file is not supported (the output is a whole disk)\n");
		return 2;
	}
	struct blk *src, *dst;
	struct stat sin, sout;
	if (stat(in, &sin) == 0 && stat(outp, &sout) == 0 && sin.st_dev == sout.st_dev && sin.st_ino == sout.st_ino) {
		fprintf(stderr, "corral: image convert: '%s' and '%s' are the same file\n", in, outp);
		return 2;
	}
	if (image_open(&src, in, ifmt, 1) < 0)
		return 1;
	if (image_create_file(outp, ofmt, src->size, cluster_bits, NULL, NULL) < 0 ||
	    image_open(&dst, outp, ofmt, 0) < 0) {
		blk_close(src);
		return 1;
	}
	uint8_t *buf = malloc(IMAGE_CHUNK);
	int rc = buf ? 0 : -ENOMEM, status = 0;
	/* Zero stretches are skipped: the new image is sparse (unallocated
	 * clusters, or holes in a raw file). */
	const size_t grain = ofmt == BLK_FMT_QCOW2 ? (size_t)1 << cluster_bits : 4096;
	int shown = -1;
	for (uint64_t off = 0; rc == 0 && off < src->size; off += IMAGE_CHUNK) {
		if (progress)
			image_progress(off, src->size, &shown);
		size_t n = src->size - off < IMAGE_CHUNK ? (size_t)(src->size - off) : IMAGE_CHUNK;
		if ((rc = blk_pread(src, off, buf, n)) < 0) {
			image_io_error(src, "reading", in, rc);
			status = 1;
			break;
		}
		for (size_t p = 0; p < n; p += grain) {
			size_t l = n - p < grain ? n - p : grain;
			if (image_is_zero(buf + p, l))
				continue;
			if ((rc = blk_pwrite(dst, off + p, buf + p, l)) < 0) {
				image_io_error(dst, "writing", outp, rc);
				status = 1;
				break;
			}
		}
	}
	status = copy_finish(dst, outp, rc, status, progress, src->size, &shown);
	free(buf);
	blk_close(src);
	blk_close(dst);
	return status;
}

/* OVERLAY without its backing chain (unallocated clusters are not read),
 * under a reader's lock. */
static int commit_open_overlay(struct blk **out, const char *path)
{
	char err[512];
	const char *kind;
	uint8_t magic[4];
	int fd = blk_open_file(path, O_RDONLY, 1, &kind);
	if (fd < 0) {
		if (kind)
			fprintf(stderr, "corral: image commit: '%s': not a regular file (%s)\n", path, kind);
		else
			fprintf(stderr, "corral: image commit: '%s': %s\n", path, strerror(-fd));
		return -1;
	}
	if (blk_lock(fd, 1, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "corral: image commit: %s\n", err);
		close(fd);
		return -1;
	}
	if (pread(fd, magic, 4, 0) != 4 || memcmp(magic, "QFI\xfb", 4)) {
		fprintf(stderr, "corral: image commit: '%s' is not a qcow2 image (only qcow2 has a backing file)\n",
			path);
		close(fd);
		return -1;
	}
	if (qcow2_open_flags(out, fd, 1, err, sizeof(err), path, QCOW2_OPEN_NO_BACKING) < 0) {
		fprintf(stderr, "corral: image commit: %s\n", err);
		return -1;
	}
	return 0;
}

static int image_commit(int argc, char **argv)
{
	enum blk_format fmt = BLK_FMT_PROBE;
	int opt, keep = 0, progress = 0, quiet = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "f:dpqh", image_help_opt, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (image_format_arg(optarg, &fmt) < 0)
				return 2;
			if (fmt != BLK_FMT_QCOW2) {
				fprintf(stderr, "corral: image commit: a %s image has no backing file\n", optarg);
				return 2;
			}
			break;
		case 'd': keep = 1; break;
		case 'p': progress = 1; break;
		case 'q': quiet = 1; break;
		case 'h': image_commit_usage(stdout); return 0;
		default: image_commit_usage(stderr); return 2;
		}
	}
	if (argc - optind != 1) {
		image_commit_usage(stderr);
		return 2;
	}
	const char *path = argv[optind];
	struct blk *ov, *bk = NULL;
	if (commit_open_overlay(&ov, path) < 0)
		return 1;
	struct blk_info info;
	blk_get_info(ov, &info);
	char bpath[2200];
	const char *slash = strrchr(path, '/');
	if (!info.backing[0]) {
		fprintf(stderr, "corral: image commit: '%s' has no backing file to commit into\n", path);
		blk_close(ov);
		return 1;
	}
	/* as the image reads it: relative to its folder */
	if (info.backing[0] == '/' || !slash)
		snprintf(bpath, sizeof(bpath), "%s", info.backing);
	else
		snprintf(bpath, sizeof(bpath), "%.*s/%s", (int)(slash - path), path, info.backing);
	enum blk_format bfmt = BLK_FMT_PROBE;
	if (info.backing_fmt[0] && blk_format_parse(info.backing_fmt, &bfmt) < 0) {
		fprintf(stderr, "corral: image commit: '%s': backing format '%s' unknown (raw or qcow2)\n", path,
			info.backing_fmt);
		blk_close(ov);
		return 1;
	}
	struct stat so, sb;
	if (stat(path, &so) == 0 && stat(bpath, &sb) == 0 && so.st_dev == sb.st_dev && so.st_ino == sb.st_ino) {
		fprintf(stderr, "corral: image commit: '%s' is its own backing file\n", path);
		blk_close(ov);
		return 1;
	}
	char err[512];
	if (blk_open(&bk, bpath, bfmt, 0, err, sizeof(err)) < 0) {
		fprintf(stderr, "corral: image commit: %s\n", err);
		blk_close(ov);
		return 1;
	}
	if (ov->size > bk->size) {
		fprintf(stderr,
			"corral: image commit: '%s' (%llu bytes) is larger than its backing file '%s' (%llu bytes)\n",
			path, (unsigned long long)ov->size, bpath, (unsigned long long)bk->size);
		blk_close(bk);
		blk_close(ov);
		return 1;
	}
	uint8_t *buf = malloc(2u << 20); /* the largest cluster */
	int rc = buf ? 0 : -ENOMEM, status = 0, shown = -1;
	uint64_t len = 0;
	for (uint64_t off = 0; rc == 0 && off < ov->size; off += len) {
		if (progress)
			image_progress(off, ov->size, &shown);
		int own = qcow2_allocated(ov, off, &len);
		if (own < 0 || len > (2u << 20)) {
			rc = own < 0 ? own : -EIO;
			image_io_error(ov, "reading", path, rc);
			status = 1;
			break;
		}
		if (!own)
			continue;
		if ((rc = blk_pread(ov, off, buf, len)) < 0) {
			image_io_error(ov, "reading", path, rc);
			status = 1;
			break;
		}
		rc = image_is_zero(buf, len) ? bk->ops->write_zeroes(bk, off, len) : blk_pwrite(bk, off, buf, len);
		if (rc < 0) {
			image_io_error(bk, "writing", bpath, rc);
			status = 1;
		}
	}
	status = copy_finish(bk, bpath, rc, status, progress, ov->size, &shown);
	free(buf);
	uint64_t size = ov->size;
	blk_close(bk);
	blk_close(ov);
	if (status == 0 && !keep && info.nb_snapshots) {
		fprintf(stderr, "corral: image commit: '%s' has internal snapshots: left as it was, not emptied\n",
			path);
	} else if (status == 0 && !keep) {
		/* emptied: a new overlay on the same backing file, put in place
		 * in one rename */
		char tmp[4200];
		snprintf(tmp, sizeof(tmp), "%s.commit-new", path);
		unsigned bits = (unsigned)__builtin_ctzll(info.cluster_size);
		err[0] = 0;
		if (qcow2_create(tmp, size, bits, info.backing, info.backing_fmt[0] ? info.backing_fmt : NULL, err,
				 sizeof(err)) < 0 ||
		    rename(tmp, path) < 0) {
			fprintf(stderr, "corral: image commit: committed, but '%s' could not be emptied: %s\n", path,
				err[0] ? err : strerror(errno));
			unlink(tmp);
			status = 1;
		}
	}
	if (status == 0 && !quiet)
		printf("Image committed.\n");
	return status;
}

int cmd_image(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		image_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "create"))
		return image_create(argc - 1, argv + 1);
	if (!strcmp(sub, "info"))
		return image_info(argc - 1, argv + 1);
	if (!strcmp(sub, "check"))
		return image_check(argc - 1, argv + 1);
	if (!strcmp(sub, "convert"))
		return image_convert(argc - 1, argv + 1);
	if (!strcmp(sub, "commit"))
		return image_commit(argc - 1, argv + 1);
	fprintf(stderr, "corral: image: unknown subcommand '%s' (create, info, check, convert, commit)\n", sub);
	return 2;
}
