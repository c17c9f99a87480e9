/* Token-bucket rate limits for disks and NICs, in Firecracker's
 * rate_limiter shape: a bandwidth bucket (bytes) and an operations bucket
 * (requests or frames), each with a size (tokens it holds when full), a
 * refill_time (milliseconds to fill it from empty) and a one_time_burst
 * (extra tokens spent first and never refilled). A bucket of size 0 is no
 * limit. Both buckets start full.
 *
 * A transfer takes its tokens at once, going into debt when there are not
 * enough, and its caller waits until the debt is paid: the average rate is
 * size per refill_time whatever the request sizes, and a request larger
 * than the bucket still passes. Every function may be called from several
 * threads at once; rate_limit_set changes a limit while transfers wait. */
#ifndef CORRAL_RATELIMIT_H
#define CORRAL_RATELIMIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define RATE_SIZE_MAX (1ull << 40)	    /* tokens in a bucket, or in a burst */
#define RATE_REFILL_MAX_MS (3600ull * 1000) /* an hour */

struct rate_bucket_cfg {
	uint64_t size;		 /* 0: unlimited */
	uint64_t refill_time;	 /* ms, 1..RATE_REFILL_MAX_MS when size > 0 */
	uint64_t one_time_burst; /* tokens */
};

struct rate_cfg {
	struct rate_bucket_cfg bw, ops;
};

struct rate_bucket {
	struct rate_bucket_cfg cfg;
	double tokens; /* below 0: a debt that waiting callers pay */
	uint64_t burst;
};

struct rate_limit {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct rate_bucket bw, ops;
	uint64_t last_ns; /* when the buckets were last refilled */
	unsigned gen;	  /* bumped by rate_limit_set and rate_limit_cancel */
	int cancelled;	  /* waits return at once (the device is going away) */
};

/* 1 when c limits nothing. */
int rate_cfg_unlimited(const struct rate_cfg *c);
/* 0, or -EINVAL and one line in err naming what (what.bandwidth.size...). */
int rate_cfg_check(const struct rate_cfg *c, const char *what, char *err, size_t len);
/* One option of a disk or network spec: "bw=SIZE[:REFILL_MS[:BURST]]" or
 * "ops=COUNT[:REFILL_MS[:BURST]]" (SIZE and BURST of bw take K, M, G
 * suffixes, powers of 1024; REFILL_MS defaults to 1000). Returns 1 when opt
 * was one and set it in c, 0 when opt is no rate option, -EINVAL with a
 * message in err (to follow the option's name) when it was one but
 * malformed. */
int rate_cfg_parse_opt(const char *opt, struct rate_cfg *c, char *err, size_t len);
/* The spec form of c (what rate_cfg_parse_opt reads back), "" if unlimited. */
void rate_cfg_format(const struct rate_cfg *c, char *buf, size_t len);

void rate_limit_init(struct rate_limit *rl, const struct rate_cfg *c);
void rate_limit_destroy(struct rate_limit *rl);
/* A new limit, buckets full again (as Firecracker's PATCH); callers waiting
 * on the old one stop waiting. */
void rate_limit_set(struct rate_limit *rl, const struct rate_cfg *c);
void rate_limit_get(struct rate_limit *rl, struct rate_cfg *c);
/* Every wait ends now and later ones do not wait (teardown). */
void rate_limit_cancel(struct rate_limit *rl);
/* Takes bytes and ops tokens at time now_ns (CLOCK_MONOTONIC) and returns
 * how many nanoseconds the caller must wait before its transfer. */
uint64_t rate_limit_take(struct rate_limit *rl, uint64_t bytes, uint64_t ops, uint64_t now_ns);
/* rate_limit_take, then the wait (cut short by set or cancel). */
void rate_limit_wait(struct rate_limit *rl, uint64_t bytes, uint64_t ops);

#endif
