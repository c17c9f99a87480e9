/* The token buckets of backend/ratelimit.c on a clock the test moves:
 * refill, debt, one-time burst, both buckets, live changes, cancel, and the
 * spec options with their errors. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "backend/ratelimit.h"
#include "testhelp.h"

#define MS 1000000ull

static uint64_t t0(struct rate_limit *rl)
{
	return rl->last_ns;
}

static void test_bandwidth(void)
{
	struct rate_limit rl;
	struct rate_cfg c = {.bw = {.size = 1000, .refill_time = 100}};
	rate_limit_init(&rl, &c);
	uint64_t t = t0(&rl);
	/* full at start: 1000 bytes pass at once */
	CHECK_EQ_U64(rate_limit_take(&rl, 1000, 1, t), 0);
	/* empty: 500 more owe 50 ms (1000 per 100 ms) */
	uint64_t w = rate_limit_take(&rl, 500, 1, t);
	CHECK(w >= 49 * MS && w <= 51 * MS);
	/* after those 50 ms the debt is paid and nothing is left */
	CHECK_EQ_U64(rate_limit_take(&rl, 0, 0, t + 50 * MS), 0);
	w = rate_limit_take(&rl, 100, 1, t + 50 * MS);
	CHECK(w >= 9 * MS && w <= 11 * MS);
	/* a long idle time refills to the size, not beyond */
	t += 10000 * MS;
	CHECK_EQ_U64(rate_limit_take(&rl, 1000, 1, t), 0);
	w = rate_limit_take(&rl, 1, 1, t);
	CHECK(w > 0 && w <= MS / 10);
	/* a request larger than the bucket passes, and its debt is waited */
	t += 10000 * MS;
	w = rate_limit_take(&rl, 5000, 1, t);
	CHECK(w >= 399 * MS && w <= 401 * MS);
	/* the average: 100 requests of 100 bytes, each waited, take 1 s */
	t += 10000 * MS;
	uint64_t now = t;
	for (int i = 0; i < 110; i++)
		now += rate_limit_take(&rl, 100, 1, now);
	CHECK(now - t >= 999 * MS && now - t <= 1001 * MS);
	rate_limit_destroy(&rl);
}

static void test_ops_and_burst(void)
{
	struct rate_limit rl;
	struct rate_cfg c = {.ops = {.size = 10, .refill_time = 1000, .one_time_burst = 5}};
	rate_limit_init(&rl, &c);
	uint64_t t = t0(&rl);
	/* 5 from the burst, 10 from the bucket */
	for (int i = 0; i < 15; i++)
		CHECK_EQ_U64(rate_limit_take(&rl, 1 << 20, 1, t), 0);
	uint64_t w = rate_limit_take(&rl, 0, 1, t);
	CHECK(w >= 99 * MS && w <= 101 * MS);
	/* the burst never comes back */
	t += 100000 * MS;
	for (int i = 0; i < 10; i++)
		CHECK_EQ_U64(rate_limit_take(&rl, 0, 1, t), 0);
	CHECK(rate_limit_take(&rl, 0, 1, t) > 0);
	rate_limit_destroy(&rl);
}

static void test_both(void)
{
	struct rate_limit rl;
	struct rate_cfg c = {.bw = {.size = 100, .refill_time = 1000}, .ops = {.size = 1, .refill_time = 10}};
	rate_limit_init(&rl, &c);
	uint64_t t = t0(&rl);
	CHECK_EQ_U64(rate_limit_take(&rl, 100, 1, t), 0);
	/* bandwidth owes 1 s, ops 10 ms: the longer wins */
	uint64_t w = rate_limit_take(&rl, 100, 1, t);
	CHECK(w >= 999 * MS && w <= 1001 * MS);
	rate_limit_destroy(&rl);
	/* unlimited: never a wait */
	struct rate_cfg none = {0};
	CHECK(rate_cfg_unlimited(&none));
	rate_limit_init(&rl, &none);
	CHECK_EQ_U64(rate_limit_take(&rl, 1ull << 40, 1000000, t0(&rl)), 0);
	rate_limit_destroy(&rl);
}

struct waiter {
	struct rate_limit *rl;
	uint64_t took_ms;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *waiter_run(void *arg)
{
	struct waiter *w = arg;
	uint64_t s = mono_ms();
	rate_limit_wait(w->rl, 1000, 1); /* owes 10 s */
	w->took_ms = mono_ms() - s;
	return NULL;
}

/* A real wait, and one cut short by a new limit and by cancel. */
static void test_wait_set_cancel(void)
{
	struct rate_limit rl;
	struct rate_cfg c = {.bw = {.size = 100, .refill_time = 1000}};
	rate_limit_init(&rl, &c);
	uint64_t s = mono_ms();
	rate_limit_wait(&rl, 120, 1); /* 100 from the bucket, 20 owed: 200 ms */
	uint64_t took = mono_ms() - s;
	CHECK(took >= 190 && took < 1000);

	for (int mode = 0; mode < 2; mode++) {
		struct waiter w = {&rl, 0};
		pthread_t th;
		CHECK(pthread_create(&th, NULL, waiter_run, &w) == 0);
		struct timespec ts = {0, 100 * 1000000};
		nanosleep(&ts, NULL);
		struct rate_cfg faster = {.bw = {.size = 1 << 20, .refill_time = 1000}};
		if (mode == 0)
			rate_limit_set(&rl, &faster);
		else
			rate_limit_cancel(&rl);
		pthread_join(th, NULL);
		CHECK(w.took_ms < 5000);
	}
	struct rate_cfg got;
	rate_limit_get(&rl, &got);
	CHECK_EQ_U64(got.bw.size, 1 << 20);
	/* cancelled: no more waits */
	CHECK_EQ_U64(rate_limit_take(&rl, 1ull << 40, 1, t0(&rl)), 0);
	rate_limit_destroy(&rl);
}

static void test_parse(void)
{
	struct rate_cfg c = {0};
	char err[200], buf[128];
	CHECK(rate_cfg_parse_opt("format=raw", &c, err, sizeof(err)) == 0);
	CHECK(rate_cfg_parse_opt("bw=20M", &c, err, sizeof(err)) == 1);
	CHECK_EQ_U64(c.bw.size, 20 << 20);
	CHECK_EQ_U64(c.bw.refill_time, 1000);
	CHECK_EQ_U64(c.bw.one_time_burst, 0);
	CHECK(rate_cfg_parse_opt("ops=500:100:2000", &c, err, sizeof(err)) == 1);
	CHECK_EQ_U64(c.ops.size, 500);
	CHECK_EQ_U64(c.ops.refill_time, 100);
	CHECK_EQ_U64(c.ops.one_time_burst, 2000);
	CHECK(rate_cfg_parse_opt("bw=2M:100:64K", &c, err, sizeof(err)) == 1);
	CHECK_EQ_U64(c.bw.one_time_burst, 64 << 10);
	rate_cfg_format(&c, buf, sizeof(buf));
	CHECK(!strcmp(buf, "bw=2097152:100:65536,ops=500:100:2000"));
	static const char *const bad[] = {"bw=",
					  "bw=0",
					  "bw=1M:0",
					  "bw=1M:3600001",
					  "bw=x",
					  "bw=1Q",
					  "bw=2T",
					  "ops=1K",
					  "bw=1M:1:",
					  "bw=1M::5",
					  "ops=-1",
					  "bw=1M:10:1T",
					  "bw=99999999999999999999"};
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		struct rate_cfg d = c;
		err[0] = 0;
		int r = rate_cfg_parse_opt(bad[k], &d, err, sizeof(err));
		CHECK(r == -EINVAL);
		CHECK(err[0] && !strchr(err, '\n'));
		CHECK(!memcmp(&d, &c, sizeof(c))); /* untouched */
		if (r != -EINVAL)
			fprintf(stderr, "  accepted '%s'\n", bad[k]);
	}
	struct rate_cfg burst_only = {.bw = {.one_time_burst = 5}};
	CHECK(rate_cfg_check(&burst_only, "x", err, sizeof(err)) == -EINVAL);
	struct rate_cfg no_refill = {.ops = {.size = 5}};
	CHECK(rate_cfg_check(&no_refill, "x", err, sizeof(err)) == -EINVAL);
}

int main(void)
{
	RUN(test_bandwidth);
	RUN(test_ops_and_burst);
	RUN(test_both);
	RUN(test_wait_set_cancel);
	RUN(test_parse);
	return test_report();
}
