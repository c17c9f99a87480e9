/* Instruction-length agreement with objdump: every instruction of real code
 * (busybox, libc, python3, libstdc++) must decode in corral to the length
 * objdump gives, unless it needs a CPUID feature corral does not advertise. */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "cpu/cpu_internal.h"
#include "testhelp.h"

/* The corpus: files that are missing are reported and skipped. */
static const char *const corpus[] = {
	"/bin/busybox",
	"/lib/x86_64-linux-gnu/libc.so.6",
	"/usr/bin/python3",
	"/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
};

/* Skipped when corral does not advertise the feature (it then answers 0,
 * #UD): mnemonics by prefix, with the CPUID bit that enables them. */
enum { F1C, F1D, F7B, F7C, F81C, F81D };
static const struct {
	const char *mn; /* mnemonic prefix as objdump spells it (AT&T) */
	int reg, bit;
} feature_mnemonics[] = {
	/* SSE3 */
	{"addsubp", F1C, 0},
	{"haddp", F1C, 0},
	{"hsubp", F1C, 0},
	{"lddqu", F1C, 0},
	{"movddup", F1C, 0},
	{"movshdup", F1C, 0},
	{"movsldup", F1C, 0},
	{"fisttp", F1C, 0},
	{"monitor", F1C, 3},
	{"mwait", F1C, 3},
	/* SSSE3 */
	{"pshufb", F1C, 9},
	{"phadd", F1C, 9},
	{"phsub", F1C, 9},
	{"pmaddubsw", F1C, 9},
	{"pmulhrsw", F1C, 9},
	{"psign", F1C, 9},
	{"pabs", F1C, 9},
	{"palignr", F1C, 9},
	/* SSE4.1 */
	{"pblend", F1C, 19},
	{"blendp", F1C, 19},
	{"blendvp", F1C, 19},
	{"ptest", F1C, 19},
	{"pmovsx", F1C, 19},
	{"pmovzx", F1C, 19},
	{"pmins", F1C, 19},
	{"pminu", F1C, 19},
	{"pmaxs", F1C, 19},
	{"pmaxu", F1C, 19},
	{"round", F1C, 19},
	{"dpp", F1C, 19},
	{"insertps", F1C, 19},
	{"extractps", F1C, 19},
	{"pextrb", F1C, 19},
	{"pextrd", F1C, 19},
	{"pextrq", F1C, 19},
	{"pinsrb", F1C, 19},
	{"pinsrd", F1C, 19},
	{"pinsrq", F1C, 19},
	{"mpsadbw", F1C, 19},
	{"phminposuw", F1C, 19},
	{"pcmpeqq", F1C, 19},
	{"packusdw", F1C, 19},
	{"movntdqa", F1C, 19},
	{"pmuldq", F1C, 19},
	{"pmulld", F1C, 19},
	/* SSE4.2, POPCNT */
	{"pcmpestr", F1C, 20},
	{"pcmpistr", F1C, 20},
	{"pcmpgtq", F1C, 20},
	{"crc32", F1C, 20},
	{"popcnt", F1C, 23},
	/* others */
	{"pclmul", F1C, 1},
	{"aes", F1C, 25},
	{"xsave", F1C, 26},
	{"xrstor", F1C, 26},
	{"xgetbv", F1C, 26},
	{"movbe", F1C, 22},
	{"rdrand", F1C, 30},
	{"f16c", F1C, 29},
	{"rdfsbase", F7B, 0},
	{"rdgsbase", F7B, 0},
	{"wrfsbase", F7B, 0},
	{"wrgsbase", F7B, 0},
	{"xbegin", F7B, 11},
	{"xend", F7B, 11},
	{"xabort", F7B, 11},
	{"xtest", F7B, 11},
	{"rdseed", F7B, 18},
	{"adcx", F7B, 19},
	{"adox", F7B, 19},
	{"clflushopt", F7B, 23},
	{"clwb", F7B, 24},
	{"sha1", F7B, 29},
	{"sha256", F7B, 29},
	{"rdpkru", F7C, 3},
	{"wrpkru", F7C, 3},
	{"rdpid", F7C, 22},
	{"tpause", F7C, 5},
	{"umonitor", F7C, 5},
	{"umwait", F7C, 5},
	{"movdiri", F7C, 27},
	{"movdir64b", F7C, 28},
	{"prefetchw", F81C, 8},
	{"extrq", F81C, 6},
	{"insertq", F81C, 6},
	{"movntss", F81C, 6},
	{"movntsd", F81C, 6},
	{"clzero", F81D, -1},
	{"rdtscp", F81D, 27},
	/* CET shadow-stack ops outside the hint-NOP space */
	{"incssp", F7C, 7},
	{"rstorssp", F7C, 7},
	{"saveprevssp", F7C, 7},
	{"wrss", F7C, 7},
	{"wruss", F7C, 7},
	{"setssbsy", F7C, 7},
	{"clrssbsy", F7C, 7},
};

static bool feature_has(int reg, int bit)
{
	uint32_t w;
	switch (reg) {
	case F1C: w = cpu_feat_1_ecx; break;
	case F1D: w = cpu_feat_1_edx; break;
	case F7B: w = cpu_feat_7_ebx; break;
	case F7C: w = cpu_feat_7_ecx; break;
	case F81C: w = cpu_feat_81_ecx; break;
	default: w = cpu_feat_81_edx; break;
	}
	return bit >= 0 && (w >> bit) & 1;
}

/* Is the instruction one corral may reject because of a feature it does
 * not advertise? Encodings first: VEX (C4/C5: AVX, BMI, ...), EVEX (62:
 * AVX-512), XOP (8F with ModRM.reg != 0), 3DNow! (0F 0F); then mnemonics. */
static const char *skip_reason(const uint8_t *b, unsigned n, const char *mn)
{
	unsigned k = 0;
	while (k < n && (b[k] == 0x66 || b[k] == 0x67 || b[k] == 0xf0 || b[k] == 0xf2 || b[k] == 0xf3 || b[k] == 0x2e ||
			 b[k] == 0x36 || b[k] == 0x3e || b[k] == 0x26 || b[k] == 0x64 || b[k] == 0x65))
		k++;
	while (k < n && (b[k] & 0xf0) == 0x40)
		k++;
	if (k < n && (b[k] == 0xc4 || b[k] == 0xc5))
		return feature_has(F1C, 28) ? NULL : "VEX";
	if (k < n && b[k] == 0x62)
		return "EVEX";
	if (k + 1 < n && b[k] == 0x8f && (b[k + 1] & 0x38))
		return "XOP";
	if (k + 1 < n && b[k] == 0x0f && b[k + 1] == 0x0f)
		return "3DNow!";
	for (unsigned j = 0; j < sizeof(feature_mnemonics) / sizeof(feature_mnemonics[0]); j++) {
		size_t l = strlen(feature_mnemonics[j].mn);
		if (!strncmp(mn, feature_mnemonics[j].mn, l) &&
		    !feature_has(feature_mnemonics[j].reg, feature_mnemonics[j].bit))
			return feature_mnemonics[j].mn;
	}
	return NULL;
}

/* objdump's text: prefixes it prints as words, then the mnemonic */
static void mnemonic_of(const char *text, char *mn, size_t mnsz)
{
	static const char *const pfx[] = {"lock",   "rep",     "repz", "repnz",	   "repe",     "repne", "data16",
					  "data32", "addr32",  "cs",   "ds",	   "es",       "ss",	"fs",
					  "gs",	    "notrack", "bnd",  "xacquire", "xrelease", NULL};
	const char *p = text;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t l = 0;
		while (p[l] && p[l] != ' ' && p[l] != '\t')
			l++;
		bool is_pfx = !strncmp(p, "rex", 3) || p[0] == '{';
		for (unsigned k = 0; pfx[k] && !is_pfx; k++)
			is_pfx = strlen(pfx[k]) == l && !strncmp(p, pfx[k], l);
		if (!is_pfx || !p[l]) {
			snprintf(mn, mnsz, "%.*s", (int)l, p);
			return;
		}
		p += l;
	}
}

struct insn_rec {
	uint64_t addr;
	uint32_t off; /* in the run's byte stream */
	uint8_t len;
	uint32_t text; /* offset in the text pool */
};

struct stats {
	unsigned long checked, skipped, bad, len_mismatch, unrecognized;
	unsigned printed;
};

#define MAX_PRINT 40

static uint8_t *bytes;
static size_t nbytes, capbytes;
static struct insn_rec *recs;
static size_t nrecs, caprecs;
static char *texts;
static size_t ntexts, captexts;
static unsigned long skip_counts[64];
static const char *skip_names[64];

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	p = realloc(p, n * elem);
	if (!p) {
		fprintf(stderr, "t_length: out of memory\n");
		exit(2);
	}
	*cap = n;
	return p;
}

static void count_skip(const char *why)
{
	for (unsigned k = 0; k < 64; k++) {
		if (!skip_names[k]) {
			skip_names[k] = why;
			skip_counts[k] = 1;
			return;
		}
		if (!strcmp(skip_names[k], why)) {
			skip_counts[k]++;
			return;
		}
	}
}

/* Check the run collected so far (consecutive addresses) */
static void check_run(const char *file, struct stats *st)
{
	for (size_t k = 0; k < nrecs; k++) {
		struct insn_rec *r = &recs[k];
		const uint8_t *b = bytes + r->off;
		size_t avail = nbytes - r->off;
		if (avail > 15)
			avail = 15;
		const char *text = texts + r->text;
		if (strstr(text, "(bad)")) {
			st->bad++;
			continue;
		}
		char mn[32];
		mnemonic_of(text, mn, sizeof(mn));
		int got = cpu_insn_length(b, avail);
		if (got == r->len) {
			st->checked++;
			continue;
		}
		const char *why = skip_reason(b, r->len, mn);
		if (why && got == 0) {
			st->skipped++;
			count_skip(why);
			continue;
		}
		st->checked++;
		if (got == 0)
			st->unrecognized++;
		else
			st->len_mismatch++;
		if (st->printed++ < MAX_PRINT) {
			printf("  %s 0x%llx: objdump %u, corral %d:", file, (unsigned long long)r->addr, r->len, got);
			for (unsigned j = 0; j < r->len; j++)
				printf(" %02x", b[j]);
			printf("  %s\n", text);
		}
	}
	nbytes = nrecs = ntexts = 0;
}

static int check_file(const char *file, struct stats *st)
{
	if (access(file, R_OK)) {
		printf("t_length: %s: not found, skipped\n", file);
		return -1;
	}
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "objdump -d -w '%s' 2>/dev/null", file);
	FILE *p = popen(cmd, "r");
	if (!p) {
		printf("t_length: cannot run objdump\n");
		return -1;
	}
	char line[4096];
	uint64_t next = 0;
	unsigned long lines = 0;
	while (fgets(line, sizeof(line), p)) {
		/* "  401000:\t48 83 ec 08          \tsub    $0x8,%rsp" */
		char *s = line;
		while (*s == ' ')
			s++;
		char *end;
		unsigned long long addr = strtoull(s, &end, 16);
		if (end == s || end[0] != ':' || end[1] != '\t')
			continue;
		s = end + 2;
		uint8_t ib[32];
		unsigned n = 0;
		while (isxdigit((unsigned char)s[0]) && isxdigit((unsigned char)s[1]) &&
		       (s[2] == ' ' || s[2] == '\t')) {
			if (n < sizeof(ib))
				ib[n] = (uint8_t)strtoul((char[3]){s[0], s[1], 0}, NULL, 16);
			n++;
			s += 3;
			if (s[-1] == '\t')
				break;
		}
		if (n == 0 || n > 15)
			continue;
		while (*s == ' ' || *s == '\t')
			s++;
		s[strcspn(s, "\n")] = 0;
		if (addr != next)
			check_run(file, st);
		next = addr + n;
		bytes = grow(bytes, &capbytes, nbytes + n, 1);
		recs = grow(recs, &caprecs, nrecs + 1, sizeof(*recs));
		size_t tl = strlen(s) + 1;
		texts = grow(texts, &captexts, ntexts + tl, 1);
		recs[nrecs++] = (struct insn_rec){addr, (uint32_t)nbytes, (uint8_t)n, (uint32_t)ntexts};
		memcpy(bytes + nbytes, ib, n);
		nbytes += n;
		memcpy(texts + ntexts, s, tl);
		ntexts += tl;
		lines++;
		if (nbytes > (64u << 20))
			check_run(file, st); /* keep memory bounded on huge files */
	}
	check_run(file, st);
	int rc = pclose(p);
	if (rc != 0 || lines == 0) {
		printf("t_length: objdump failed on %s\n", file);
		return -1;
	}
	return 0;
}

int main(void)
{
	int failed_files = 0, files = 0;
	struct stats total = {0};
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (unsigned k = 0; k < sizeof(corpus) / sizeof(corpus[0]); k++) {
		struct stats st = {0};
		if (check_file(corpus[k], &st))
			continue;
		files++;
		printf("t_length: %s: %lu checked, %lu length mismatches, %lu not recognised, %lu skipped (feature), "
		       "%lu (bad)\n",
		       corpus[k], st.checked, st.len_mismatch, st.unrecognized, st.skipped, st.bad);
		if (st.len_mismatch || st.unrecognized)
			failed_files++;
		total.checked += st.checked;
		total.skipped += st.skipped;
	}
	for (unsigned k = 0; k < 64 && skip_names[k]; k++)
		printf("t_length: skipped %-12s %lu\n", skip_names[k], skip_counts[k]);
	test_cur_name = "t_length";
	test_cur_failed = 0;
	if (files == 0) {
		printf("t_length: no corpus file could be disassembled (is binutils installed?)\n");
		failed_files = 1;
	}
	test_passed = files - (failed_files > files ? files : failed_files);
	test_failed = failed_files;
	return test_report();
}
