/* A tiny test harness: a test is a function with CHECK()s; main() runs
 * them with RUN() and ends with test_report(), which prints
 * "N passed, N failed[, N skipped]" as the last line and returns the exit
 * status. A test that cannot run here calls TEST_SKIP(reason) and returns:
 * it is counted as skipped, never as passed. */
#ifndef CORRAL_TESTHELP_H
#define CORRAL_TESTHELP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int test_passed, test_failed, test_cur_failed;
static int __attribute__((unused)) test_skipped, test_cur_skipped;
static const char *test_cur_name;

#define TEST_SKIP(why)                                                                                                 \
	do {                                                                                                           \
		fprintf(stderr, "  skipped %s: %s\n", test_cur_name, why);                                             \
		test_cur_skipped = 1;                                                                                  \
	} while (0)

#define CHECK(cond)                                                                                                    \
	do {                                                                                                           \
		if (!(cond)) {                                                                                         \
			fprintf(stderr, "  FAIL %s: %s:%d: %s\n", test_cur_name, __FILE__, __LINE__, #cond);           \
			test_cur_failed++;                                                                             \
		}                                                                                                      \
	} while (0)

#define CHECK_EQ_U64(a, b)                                                                                             \
	do {                                                                                                           \
		unsigned long long va_ = (unsigned long long)(a), vb_ = (unsigned long long)(b);                       \
		if (va_ != vb_) {                                                                                      \
			fprintf(stderr, "  FAIL %s: %s:%d: %s == %s (0x%llx != 0x%llx)\n", test_cur_name, __FILE__,    \
				__LINE__, #a, #b, va_, vb_);                                                           \
			test_cur_failed++;                                                                             \
		}                                                                                                      \
	} while (0)

#define RUN(fn)                                                                                                        \
	do {                                                                                                           \
		test_cur_name = #fn;                                                                                   \
		test_cur_failed = 0;                                                                                   \
		test_cur_skipped = 0;                                                                                  \
		fn();                                                                                                  \
		if (test_cur_failed) {                                                                                 \
			test_failed++;                                                                                 \
			fprintf(stderr, "FAIL %s\n", #fn);                                                             \
		} else if (test_cur_skipped) {                                                                         \
			test_skipped++;                                                                                \
		} else {                                                                                               \
			test_passed++;                                                                                 \
			if (getenv("TEST_VERBOSE"))                                                                    \
				fprintf(stderr, "ok   %s\n", #fn);                                                     \
		}                                                                                                      \
	} while (0)

/* Test inputs: xorshift with a fixed seed, so failures reproduce (a test
 * may set test_rng to a seed of its own). */
static uint64_t test_rng = 0x9e3779b97f4a7c15ull;

static inline uint64_t rnd(void)
{
	test_rng ^= test_rng << 13;
	test_rng ^= test_rng >> 7;
	test_rng ^= test_rng << 17;
	return test_rng;
}

static inline void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

static inline int test_report(void)
{
	if (test_skipped)
		printf("%d passed, %d failed, %d skipped\n", test_passed, test_failed, test_skipped);
	else
		printf("%d passed, %d failed\n", test_passed, test_failed);
	return test_failed ? 1 : 0;
}

#endif
