/* Token buckets for disk and network rate limits (ratelimit.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/ratelimit.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int rate_cfg_unlimited(const struct rate_cfg *c)
{
	return c->bw.size == 0 && c->ops.size == 0;
}

static int bucket_check(const struct rate_bucket_cfg *b, const char *what, const char *which, char *err, size_t len)
{
	if (b->size > RATE_SIZE_MAX || b->one_time_burst > RATE_SIZE_MAX) {
		snprintf(err, len, "%s.%s: size and one_time_burst must be at most %llu", what, which, RATE_SIZE_MAX);
		return -EINVAL;
	}
	if (b->size && (b->refill_time == 0 || b->refill_time > RATE_REFILL_MAX_MS)) {
		snprintf(err, len, "%s.%s: refill_time must be from 1 to %llu ms", what, which, RATE_REFILL_MAX_MS);
		return -EINVAL;
	}
	if (!b->size && b->one_time_burst) {
		snprintf(err, len, "%s.%s: a one_time_burst needs a size (a bucket of size 0 limits nothing)", what,
			 which);
		return -EINVAL;
	}
	return 0;
}

int rate_cfg_check(const struct rate_cfg *c, const char *what, char *err, size_t len)
{
	int r = bucket_check(&c->bw, what, "bandwidth", err, len);
	return r ? r : bucket_check(&c->ops, what, "ops", err, len);
}

/* A count with an optional K/M/G suffix (binary), at most RATE_SIZE_MAX. */
static int parse_count(const char *s, const char *end, int suffixes, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	while (p < end && *p >= '0' && *p <= '9') {
		if (v > RATE_SIZE_MAX)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p++ - '0');
	}
	if (p == s)
		return -EINVAL;
	if (suffixes && p < end) {
		const char *u = strchr("KMG", *p);
		if (!u || !*p)
			return -EINVAL;
		unsigned shift = 10 * (unsigned)(u - "KMG" + 1);
		if (v > (RATE_SIZE_MAX >> shift))
			return -EINVAL;
		v <<= shift;
		p++;
	}
	if (p != end || v > RATE_SIZE_MAX)
		return -EINVAL;
	*out = v;
	return 0;
}

int rate_cfg_parse_opt(const char *opt, struct rate_cfg *c, char *err, size_t len)
{
	struct rate_bucket_cfg *b;
	int bytes;
	if (!strncmp(opt, "bw=", 3)) {
		b = &c->bw;
		bytes = 1;
	} else if (!strncmp(opt, "ops=", 4)) {
		b = &c->ops;
		bytes = 0;
	} else {
		return 0;
	}
	const char *s = opt + (bytes ? 3 : 4);
	struct rate_bucket_cfg n = {.refill_time = 1000};
	const char *c1 = strchr(s, ':');
	const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	const char *e1 = c1 ? c1 : s + strlen(s);
	int r = parse_count(s, e1, bytes, &n.size);
	if (!r && c1)
		r = parse_count(c1 + 1, c2 ? c2 : c1 + strlen(c1), 0, &n.refill_time);
	if (!r && c2)
		r = parse_count(c2 + 1, c2 + strlen(c2), bytes, &n.one_time_burst);
	if (!r && n.size == 0)
		r = -EINVAL;
	if (!r && (r = bucket_check(&n, "rate", bytes ? "bandwidth" : "ops", err, len)) < 0)
		return r;
	if (r) {
		snprintf(err, len, "give %s[:REFILL_MS[:BURST]], e.g. %s", bytes ? "bw=SIZE" : "ops=COUNT",
			 bytes ? "bw=20M (20 MiB/s) or bw=2M:100:64M" : "ops=1000 (1000 per second)");
		return -EINVAL;
	}
	*b = n;
	return 1;
}

static size_t format_bucket(char *buf, size_t len, const char *key, const struct rate_bucket_cfg *b)
{
	if (!b->size)
		return 0;
	int n = b->one_time_burst ? snprintf(buf, len, "%s=%" PRIu64 ":%" PRIu64 ":%" PRIu64, key, b->size,
					     b->refill_time, b->one_time_burst)
				  : snprintf(buf, len, "%s=%" PRIu64 ":%" PRIu64, key, b->size, b->refill_time);
	return n < 0 ? 0 : (size_t)n;
}

void rate_cfg_format(const struct rate_cfg *c, char *buf, size_t len)
{
	if (!len)
		return;
	buf[0] = 0;
	size_t n = format_bucket(buf, len, "bw", &c->bw);
	if (n < len && c->bw.size && c->ops.size)
		n += (size_t)snprintf(buf + n, len - n, ",");
	if (n < len)
		format_bucket(buf + n, len - n, "ops", &c->ops);
}

static void bucket_reset(struct rate_bucket *b, const struct rate_bucket_cfg *c)
{
	b->cfg = *c;
	b->tokens = (double)c->size;
	b->burst = c->one_time_burst;
}

void rate_limit_init(struct rate_limit *rl, const struct rate_cfg *c)
{
	memset(rl, 0, sizeof(*rl));
	pthread_mutex_init(&rl->lock, NULL);
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&rl->changed, &a);
	pthread_condattr_destroy(&a);
	bucket_reset(&rl->bw, &c->bw);
	bucket_reset(&rl->ops, &c->ops);
	rl->last_ns = now_ns();
}

void rate_limit_destroy(struct rate_limit *rl)
{
	pthread_cond_destroy(&rl->changed);
	pthread_mutex_destroy(&rl->lock);
}

void rate_limit_set(struct rate_limit *rl, const struct rate_cfg *c)
{
	pthread_mutex_lock(&rl->lock);
	bucket_reset(&rl->bw, &c->bw);
	bucket_reset(&rl->ops, &c->ops);
	rl->last_ns = now_ns();
	rl->gen++;
	pthread_cond_broadcast(&rl->changed);
	pthread_mutex_unlock(&rl->lock);
}

void rate_limit_get(struct rate_limit *rl, struct rate_cfg *c)
{
	pthread_mutex_lock(&rl->lock);
	c->bw = rl->bw.cfg;
	c->ops = rl->ops.cfg;
	pthread_mutex_unlock(&rl->lock);
}

void rate_limit_cancel(struct rate_limit *rl)
{
	pthread_mutex_lock(&rl->lock);
	rl->cancelled = 1;
	rl->gen++;
	pthread_cond_broadcast(&rl->changed);
	pthread_mutex_unlock(&rl->lock);
}

/* Refills b for elapsed ns, then takes n tokens (burst first); returns the
 * ns until the bucket is out of debt. */
static uint64_t bucket_take(struct rate_bucket *b, uint64_t elapsed, uint64_t n)
{
	if (!b->cfg.size)
		return 0;
	double refill_ns = (double)b->cfg.refill_time * 1e6;
	double size = (double)b->cfg.size;
	b->tokens += (double)elapsed * size / refill_ns;
	if (b->tokens > size)
		b->tokens = size;
	uint64_t from_burst = n < b->burst ? n : b->burst;
	b->burst -= from_burst;
	b->tokens -= (double)(n - from_burst);
	if (b->tokens >= 0)
		return 0;
	return (uint64_t)(-b->tokens * refill_ns / size);
}

uint64_t rate_limit_take(struct rate_limit *rl, uint64_t bytes, uint64_t ops, uint64_t now)
{
	pthread_mutex_lock(&rl->lock);
	uint64_t elapsed = now > rl->last_ns ? now - rl->last_ns : 0;
	if (now > rl->last_ns)
		rl->last_ns = now;
	uint64_t w1 = bucket_take(&rl->bw, elapsed, bytes);
	uint64_t w2 = bucket_take(&rl->ops, elapsed, ops);
	uint64_t w = rl->cancelled ? 0 : w1 > w2 ? w1 : w2;
	pthread_mutex_unlock(&rl->lock);
	return w;
}

void rate_limit_wait(struct rate_limit *rl, uint64_t bytes, uint64_t ops)
{
	uint64_t now = now_ns();
	uint64_t w = rate_limit_take(rl, bytes, ops, now);
	if (!w)
		return;
	uint64_t until = now + w;
	struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ull), .tv_nsec = (long)(until % 1000000000ull)};
	pthread_mutex_lock(&rl->lock);
	unsigned gen = rl->gen;
	while (rl->gen == gen && pthread_cond_timedwait(&rl->changed, &rl->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&rl->lock);
}
