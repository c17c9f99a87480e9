/* The RTC's own UTC calendar (src/machine/rtc.c) against glibc's gmtime_r
 * and timegm, which it replaces so that no VM start reads the host's time
 * zone: every field and the weekday for times across years 0-9999, and
 * timegm's carrying of out-of-range fields (what a guest writing odd BCD
 * values produces). */
#include "../src/machine/rtc.c"

#include <stdlib.h>

#include "testhelp.h"

#define YEAR0 (-62167219200ll)	  /* 0000-01-01T00:00:00 */
#define YEAR9999 (253402300799ll) /* 9999-12-31T23:59:59 */

static int same_tm(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm want, got;
	memset(&got, 0x5a, sizeof(got));
	if (!gmtime_r(&tt, &want))
		return 0;
	rtc_utc_tm(t, &got);
	int ok = got.tm_year == want.tm_year && got.tm_mon == want.tm_mon && got.tm_mday == want.tm_mday &&
		 got.tm_hour == want.tm_hour && got.tm_min == want.tm_min && got.tm_sec == want.tm_sec &&
		 got.tm_wday == want.tm_wday;
	if (!ok)
		fprintf(stderr, "  %lld: %d-%d-%d %d:%d:%d wday %d, want %d-%d-%d %d:%d:%d wday %d\n", (long long)t,
			got.tm_year, got.tm_mon, got.tm_mday, got.tm_hour, got.tm_min, got.tm_sec, got.tm_wday,
			want.tm_year, want.tm_mon, want.tm_mday, want.tm_hour, want.tm_min, want.tm_sec, want.tm_wday);
	return ok;
}

static void test_edges(void)
{
	static const int64_t t[] = {
		0,
		-1,
		1,
		86399,
		86400,
		-86400,
		-86401,
		951782400 /* 2000-02-29 */,
		951868800,
		4107542400 /* 2100-03-01 */,
		-2203891200 /* 1900-03-01 */,
		1700000000,
		2147483647,
		2147483648ll,
		YEAR0,
		YEAR0 + 1,
		YEAR9999,
		YEAR9999 - 86400,
		253402300799ll - (1ll << 34),
	};
	for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++)
		CHECK(same_tm(t[k]));
}

/* every day of the years around each leap-rule change, at a random time of day */
static void test_every_day(void)
{
	static const int64_t from[] = {-2208988800 /* 1900 */, 946684800 /* 2000 */, 4102444800 /* 2100 */, YEAR0,
				       YEAR9999 - 3 * 366 * 86400ll};
	for (size_t k = 0; k < sizeof(from) / sizeof(from[0]); k++) {
		unsigned bad = 0;
		for (int64_t d = 0; d < 3 * 366; d++)
			bad += !same_tm(from[k] + d * 86400 + (int64_t)(rnd() % 86400));
		CHECK(bad == 0);
	}
}

static void test_random(void)
{
	unsigned bad = 0;
	for (int n = 0; n < 200000; n++)
		bad += !same_tm(YEAR0 + (int64_t)(rnd() % (uint64_t)(YEAR9999 - YEAR0 + 1)));
	CHECK(bad == 0);
}

/* What the guest's fields can be: BCD digits up to 0xff read as 165. */
static void test_timegm_carries(void)
{
	unsigned bad = 0;
	for (int n = 0; n < 200000; n++) {
		struct tm tm = {0};
		tm.tm_sec = (int)(rnd() % 166);
		tm.tm_min = (int)(rnd() % 166);
		tm.tm_hour = (int)(rnd() % 166);
		tm.tm_mday = (int)(rnd() % 166);
		tm.tm_mon = (int)(rnd() % 166) - 1;
		tm.tm_year = (int)(rnd() % (165 * 100 + 166)) - 1900;
		struct tm copy = tm;
		time_t want = timegm(&copy);
		if (rtc_utc_sec(&tm) != (int64_t)want) {
			if (bad++ < 5)
				fprintf(stderr, "  %d-%d-%d %d:%d:%d: %lld, timegm %lld\n", tm.tm_year, tm.tm_mon,
					tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)rtc_utc_sec(&tm),
					(long long)want);
		}
	}
	CHECK(bad == 0);
	/* and both ways round for valid dates */
	for (int n = 0; n < 100000; n++) {
		int64_t t = YEAR0 + (int64_t)(rnd() % (uint64_t)(YEAR9999 - YEAR0 + 1));
		struct tm tm;
		rtc_utc_tm(t, &tm);
		bad += rtc_utc_sec(&tm) != t;
	}
	CHECK(bad == 0);
}

int main(void)
{
	RUN(test_edges);
	RUN(test_every_day);
	RUN(test_random);
	RUN(test_timegm_carries);
	return test_report();
}
