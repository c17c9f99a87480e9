/* A VM's configuration as JSON (vm_config_to_json, vm_config_from_json):
 * the guest, its hardware and the host-side settings that are data (not
 * callbacks or descriptors). The text is hostile input: a size cap, unknown
 * and duplicate keys refused, every number range-checked, every string
 * length-capped, one sentence per error. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/vm.h"

/* Strings are paths, kernel command lines and network specs. */
#define JSON_STR_MAX PATH_MAX

static const char *const engine_names[] = {"auto", "emu", "kvm"};
static const char *const model_names[] = {"corral", "host"};
static const char *const threads_names[] = {"single", "multi"};
static const char *const format_names[] = {"probe", "raw", "qcow2"};
static const char *const cache_names[] = {"writeback", "none"};

/* ---- Writing ---- */

static int put(json_t *o, const char *key, json_t *v)
{
	return v && json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

static int put_str(json_t *o, const char *key, const char *s)
{
	return s ? put(o, key, json_string(s)) : 0;
}

static json_t *bucket_to_json(const struct rate_bucket_cfg *b)
{
	return json_pack("{sIsIsI}", "size", (json_int_t)b->size, "refill_time", (json_int_t)b->refill_time,
			 "one_time_burst", (json_int_t)b->one_time_burst);
}

/* Firecracker's RateLimiter object: the buckets that limit something. */
json_t *vm_rate_to_json(const struct rate_cfg *c)
{
	json_t *o = json_object();
	if (o && c->bw.size)
		json_object_set_new(o, "bandwidth", bucket_to_json(&c->bw));
	if (o && c->ops.size)
		json_object_set_new(o, "ops", bucket_to_json(&c->ops));
	return o;
}

char *vm_config_to_json(const struct vm_config *c)
{
	json_t *o = json_object(), *disks = json_array(), *nets = json_array(), *cpu = json_object();
	int r = o && disks && nets && cpu ? 0 : -ENOMEM;
	char *text = NULL;
	if (r || c->engine > VM_ENGINE_KVM || c->cpu_model > CPU_MODEL_HOST || c->threads > ENGINE_THREADS_MULTI ||
	    c->ndisks > VM_MAX_DISKS || c->nnets > VM_MAX_NETS)
		goto out;
	r |= put_str(o, "kernel", c->kernel);
	r |= put_str(o, "initrd", c->initrd);
	r |= put_str(o, "cmdline", c->cmdline);
	r |= put_str(o, "flat", c->flat);
	r |= put(o, "mem", json_integer((json_int_t)c->mem));
	r |= put(o, "cpus", json_integer(c->cpus));
	r |= put(o, "engine", json_string(engine_names[c->engine]));
	r |= put(o, "cpu_model", json_string(model_names[c->cpu_model]));
	r |= put(o, "accel_threads", json_string(threads_names[c->threads]));
	for (unsigned k = 0; !r && k < c->ndisks; k++) {
		const struct vm_disk *d = &c->disk[k];
		json_t *jd = json_object();
		if (!jd || d->format > BLK_FMT_QCOW2 || d->cache > BLK_CACHE_NONE ||
		    json_array_append_new(disks, jd) < 0) {
			json_decref(jd);
			r = -EINVAL;
			break;
		}
		r |= put_str(jd, "path", d->path);
		r |= put(jd, "format", json_string(format_names[d->format]));
		r |= put(jd, "cache", json_string(cache_names[d->cache]));
		r |= put(jd, "readonly", json_boolean(d->readonly));
		r |= put_str(jd, "serial", d->serial);
		if (!rate_cfg_unlimited(&d->rate))
			r |= put(jd, "rate_limiter", vm_rate_to_json(&d->rate));
	}
	for (unsigned k = 0; !r && k < c->nnets; k++)
		r |= json_array_append_new(nets, json_string(c->net[k])) < 0 ? -ENOMEM : 0;
	r |= put(o, "disks", json_incref(disks));
	r |= put(o, "nets", json_incref(nets));
	r |= put(o, "rng", json_boolean(c->rng));
	r |= put(o, "hvc", json_boolean(c->hvc));
	r |= put(o, "no_reboot", json_boolean(c->no_reboot));
	if (c->debug_exit.on) {
		json_t *dx = json_object();
		r |= put(o, "debug_exit", dx);
		r |= dx ? 0 : -ENOMEM;
		if (dx) {
			r |= put(dx, "iobase", json_integer(c->debug_exit.iobase));
			r |= put(dx, "iosize", json_integer(c->debug_exit.iosize));
		}
	}
	if (c->balloon.on)
		r |= put(o, "balloon", vm_balloon_to_json(&c->balloon));
	r |= put_str(o, "serial_path", c->serial_path);
	r |= put_str(o, "guest_dir", c->guest_dir);
	r |= put_str(o, "kernel_cache", c->kernel_cache);
	r |= put(o, "realtime_idle", json_boolean(c->realtime_idle));
	r |= put(o, "ps_per_insn", json_integer((json_int_t)c->ps_per_insn));
	r |= put(cpu, "jit", json_boolean(c->cpu_opts.jit));
	r |= put(cpu, "jit_hot", json_integer(c->cpu_opts.jit_hot));
	r |= put(cpu, "jit_stats", json_boolean(c->cpu_opts.jit_stats));
	r |= put(cpu, "jit_perfmap", json_boolean(c->cpu_opts.jit_perfmap));
	r |= put(cpu, "trace", json_boolean(c->cpu_opts.trace));
	r |= put(o, "cpu", json_incref(cpu));
	if (!r)
		text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	json_decref(o);
	json_decref(disks);
	json_decref(nets);
	json_decref(cpu);
	return text;
}

/* ---- Reading ---- */

struct reader {
	char *store; /* the strings the config points into */
	size_t used, cap;
	char *err;
	size_t errlen;
};

static int fail(struct reader *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct reader *rd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rd->err, rd->errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int get_str(struct reader *rd, const char *what, json_t *v, const char **out)
{
	if (!json_is_string(v))
		return fail(rd, "'%s' must be a string", what);
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);
	if (n == 0 || n >= JSON_STR_MAX || memchr(s, 0, n))
		return fail(rd, "'%s' must be a non-empty string of at most %d bytes without NULs", what,
			    JSON_STR_MAX - 1);
	if (rd->used + n + 1 > rd->cap)
		return fail(rd, "the configuration's strings are too long");
	char *p = rd->store + rd->used;
	memcpy(p, s, n + 1);
	rd->used += n + 1;
	*out = p;
	return 0;
}

static int get_u64(struct reader *rd, const char *what, json_t *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (!json_is_integer(v))
		return fail(rd, "'%s' must be an integer", what);
	json_int_t n = json_integer_value(v);
	if (n < 0 || (uint64_t)n < lo || (uint64_t)n > hi)
		return fail(rd, "'%s' is %" PRId64 ": must be from %" PRIu64 " to %" PRIu64, what, (int64_t)n, lo, hi);
	*out = (uint64_t)n;
	return 0;
}

static int get_bool(struct reader *rd, const char *what, json_t *v, int *out)
{
	if (!json_is_boolean(v))
		return fail(rd, "'%s' must be true or false", what);
	*out = json_is_true(v);
	return 0;
}

static int get_enum(struct reader *rd, const char *what, json_t *v, const char *const *names, unsigned n, unsigned *out)
{
	if (json_is_string(v))
		for (unsigned k = 0; k < n; k++)
			if (!strcmp(json_string_value(v), names[k])) {
				*out = k;
				return 0;
			}
	char list[128] = "";
	for (unsigned k = 0; k < n; k++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", k ? ", " : "", names[k]);
	return fail(rd, "'%s' must be one of %s", what, list);
}

static int read_disk(struct reader *rd, unsigned k, json_t *jd, struct vm_disk *d)
{
	const char *key;
	json_t *v;
	char what[64];
	unsigned e;
	int r = 0;
	if (!json_is_object(jd))
		return fail(rd, "'disks[%u]' must be an object", k);
	*d = (struct vm_disk){.format = BLK_FMT_PROBE};
	json_object_foreach(jd, key, v)
	{
		snprintf(what, sizeof(what), "disks[%u].%.20s", k, key);
		if (!strcmp(key, "path")) {
			r = get_str(rd, what, v, &d->path);
		} else if (!strcmp(key, "format")) {
			if (!(r = get_enum(rd, what, v, format_names, 3, &e)))
				d->format = (enum blk_format)e;
		} else if (!strcmp(key, "cache")) {
			if (!(r = get_enum(rd, what, v, cache_names, 2, &e)))
				d->cache = (enum blk_cache)e;
		} else if (!strcmp(key, "readonly")) {
			r = get_bool(rd, what, v, &d->readonly);
		} else if (!strcmp(key, "serial")) {
			if (!(r = get_str(rd, what, v, &d->serial)) && strlen(d->serial) > VM_DISK_SERIAL_MAX)
				r = fail(rd, "'%s' must be at most %d characters", what, VM_DISK_SERIAL_MAX);
		} else if (!strcmp(key, "rate_limiter")) {
			r = vm_rate_from_json(v, what, &d->rate, rd->err, rd->errlen);
		} else {
			r = fail(rd,
				 "unknown key 'disks[%u].%.64s' (known: path, format, cache, readonly, serial, "
				 "rate_limiter)",
				 k, key);
		}
		if (r)
			return r;
	}
	if (!d->path)
		return fail(rd, "'disks[%u]' needs a 'path'", k);
	return 0;
}

static int bucket_from_json(json_t *jb, const char *what, struct rate_bucket_cfg *b, char *err, size_t len)
{
	const char *key;
	json_t *v;
	if (!json_is_object(jb)) {
		snprintf(err, len, "'%s' must be an object with size, refill_time and one_time_burst", what);
		return -EINVAL;
	}
	*b = (struct rate_bucket_cfg){0};
	json_object_foreach(jb, key, v)
	{
		uint64_t *f = !strcmp(key, "size")	       ? &b->size
			      : !strcmp(key, "refill_time")    ? &b->refill_time
			      : !strcmp(key, "one_time_burst") ? &b->one_time_burst
							       : NULL;
		if (!f) {
			snprintf(err, len, "unknown key '%s.%.64s' (known: size, refill_time, one_time_burst)", what,
				 key);
			return -EINVAL;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    (uint64_t)json_integer_value(v) > RATE_SIZE_MAX) {
			snprintf(err, len, "'%s.%s' must be an integer from 0 to %llu", what, key, RATE_SIZE_MAX);
			return -EINVAL;
		}
		*f = (uint64_t)json_integer_value(v);
	}
	return 0;
}

int vm_rate_from_json(json_t *v, const char *what, struct rate_cfg *c, char *err, size_t len)
{
	const char *key;
	json_t *jb;
	char w[96];
	if (!json_is_object(v)) {
		snprintf(err, len, "'%s' must be an object with bandwidth and/or ops", what);
		return -EINVAL;
	}
	*c = (struct rate_cfg){0};
	json_object_foreach(v, key, jb)
	{
		snprintf(w, sizeof(w), "%.60s.%.20s", what, key);
		int r = !strcmp(key, "bandwidth") ? bucket_from_json(jb, w, &c->bw, err, len)
			: !strcmp(key, "ops")
				? bucket_from_json(jb, w, &c->ops, err, len)
				: (snprintf(err, len, "unknown key '%.64s' (known: bandwidth, ops)", w), -EINVAL);
		if (r)
			return r;
	}
	return rate_cfg_check(c, what, err, len);
}

static int read_cpu(struct reader *rd, json_t *jc, struct cpu_opts *o)
{
	const char *key;
	json_t *v;
	uint64_t n;
	int r = 0;
	if (!json_is_object(jc))
		return fail(rd, "'cpu' must be an object");
	json_object_foreach(jc, key, v)
	{
		if (!strcmp(key, "jit"))
			r = get_bool(rd, "cpu.jit", v, &o->jit);
		else if (!strcmp(key, "jit_hot")) {
			if (!(r = get_u64(rd, "cpu.jit_hot", v, 0, 1000000, &n)))
				o->jit_hot = (unsigned)n;
		} else if (!strcmp(key, "jit_stats"))
			r = get_bool(rd, "cpu.jit_stats", v, &o->jit_stats);
		else if (!strcmp(key, "jit_perfmap"))
			r = get_bool(rd, "cpu.jit_perfmap", v, &o->jit_perfmap);
		else if (!strcmp(key, "trace"))
			r = get_bool(rd, "cpu.trace", v, &o->trace);
		else
			r = fail(rd, "unknown key 'cpu.%.64s' (known: jit, jit_hot, jit_stats, jit_perfmap, trace)",
				 key);
		if (r)
			return r;
	}
	return 0;
}

/* {"iobase": N, "iosize": N}: isa-debug-exit on those ports (absent keys:
 * QEMU's defaults) */
static int read_debug_exit(struct reader *rd, json_t *jx, struct vm_config *c)
{
	const char *key;
	json_t *v;
	uint64_t n;
	int r = 0;
	if (!json_is_object(jx))
		return fail(rd, "'debug_exit' must be an object");
	c->debug_exit.on = 1;
	c->debug_exit.iobase = VM_DEBUG_EXIT_IOBASE;
	c->debug_exit.iosize = VM_DEBUG_EXIT_IOSIZE;
	json_object_foreach(jx, key, v)
	{
		if (!strcmp(key, "iobase")) {
			if (!(r = get_u64(rd, "debug_exit.iobase", v, 0, 0xffff, &n)))
				c->debug_exit.iobase = (uint16_t)n;
		} else if (!strcmp(key, "iosize")) {
			if (!(r = get_u64(rd, "debug_exit.iosize", v, 1, 0x100, &n)))
				c->debug_exit.iosize = (uint16_t)n;
		} else {
			r = fail(rd, "unknown key 'debug_exit.%.64s' (known: iobase, iosize)", key);
		}
		if (r)
			return r;
	}
	if ((uint32_t)c->debug_exit.iobase + c->debug_exit.iosize > 0x10000)
		return fail(rd, "'debug_exit' ports 0x%x + %u run past 0xffff", c->debug_exit.iobase,
			    c->debug_exit.iosize);
	return 0;
}

static int read_top(struct reader *rd, const char *key, json_t *v, struct vm_config *c)
{
	uint64_t n;
	unsigned e;
	int r;
	if (!strcmp(key, "kernel"))
		return get_str(rd, key, v, &c->kernel);
	if (!strcmp(key, "initrd"))
		return get_str(rd, key, v, &c->initrd);
	if (!strcmp(key, "cmdline"))
		return get_str(rd, key, v, &c->cmdline);
	if (!strcmp(key, "flat"))
		return get_str(rd, key, v, &c->flat);
	if (!strcmp(key, "serial_path"))
		return get_str(rd, key, v, &c->serial_path);
	if (!strcmp(key, "guest_dir"))
		return get_str(rd, key, v, &c->guest_dir);
	if (!strcmp(key, "kernel_cache"))
		return get_str(rd, key, v, &c->kernel_cache);
	if (!strcmp(key, "mem")) {
		if ((r = get_u64(rd, key, v, VM_MEM_MIN, VM_MEM_MAX, &c->mem)))
			return r;
		return c->mem & 0xfff ? fail(rd, "'mem' is %" PRIu64 ": must be a multiple of 4096", c->mem) : 0;
	}
	if (!strcmp(key, "cpus")) {
		if (!(r = get_u64(rd, key, v, 1, VM_MAX_CPUS, &n)))
			c->cpus = (unsigned)n;
		return r;
	}
	if (!strcmp(key, "ps_per_insn"))
		return get_u64(rd, key, v, 0, 1000000000, &c->ps_per_insn);
	if (!strcmp(key, "engine")) {
		if (!(r = get_enum(rd, key, v, engine_names, 3, &e)))
			c->engine = (enum vm_engine)e;
		return r;
	}
	if (!strcmp(key, "cpu_model")) {
		if (!(r = get_enum(rd, key, v, model_names, 2, &e)))
			c->cpu_model = (enum cpu_model)e;
		return r;
	}
	if (!strcmp(key, "accel_threads")) {
		if (!(r = get_enum(rd, key, v, threads_names, 2, &e)))
			c->threads = (enum engine_threads)e;
		return r;
	}
	if (!strcmp(key, "rng"))
		return get_bool(rd, key, v, &c->rng);
	if (!strcmp(key, "hvc"))
		return get_bool(rd, key, v, &c->hvc);
	if (!strcmp(key, "no_reboot"))
		return get_bool(rd, key, v, &c->no_reboot);
	if (!strcmp(key, "realtime_idle"))
		return get_bool(rd, key, v, &c->realtime_idle);
	if (!strcmp(key, "cpu"))
		return read_cpu(rd, v, &c->cpu_opts);
	if (!strcmp(key, "debug_exit"))
		return read_debug_exit(rd, v, c);
	if (!strcmp(key, "balloon"))
		return vm_balloon_from_json(v, 0, &c->balloon, rd->err, rd->errlen);
	if (!strcmp(key, "disks")) {
		if (!json_is_array(v) || json_array_size(v) > VM_MAX_DISKS)
			return fail(rd, "'disks' must be an array of at most %d disks", VM_MAX_DISKS);
		c->ndisks = 0;
		for (size_t k = 0; k < json_array_size(v); k++, c->ndisks++)
			if ((r = read_disk(rd, (unsigned)k, json_array_get(v, k), &c->disk[k])))
				return r;
		return 0;
	}
	if (!strcmp(key, "nets")) {
		if (!json_is_array(v) || json_array_size(v) > VM_MAX_NETS)
			return fail(rd, "'nets' must be an array of at most %d network specs", VM_MAX_NETS);
		c->nnets = 0;
		for (size_t k = 0; k < json_array_size(v); k++, c->nnets++)
			if ((r = get_str(rd, "nets[]", json_array_get(v, k), &c->net[k])))
				return r;
		return 0;
	}
	return fail(rd,
		    "unknown key '%.64s' (known: kernel, initrd, cmdline, flat, mem, cpus, engine, cpu_model, "
		    "accel_threads, "
		    "disks, nets, rng, hvc, no_reboot, serial_path, guest_dir, kernel_cache, realtime_idle, "
		    "ps_per_insn, cpu, debug_exit, balloon)",
		    key);
}

int vm_config_from_json(const char *text, size_t len, struct vm_config *c, void **strings, char *err, size_t errlen)
{
	struct reader rd = {.err = err, .errlen = errlen};
	json_error_t je;
	*strings = NULL;
	vm_config_init(c);
	if (len > VM_CONFIG_JSON_MAX)
		return fail(&rd, "the configuration is %zu bytes: at most %d are accepted", len, VM_CONFIG_JSON_MAX);
	/* every string the config keeps is a copy of part of the text */
	rd.cap = len + 1;
	rd.store = malloc(rd.cap);
	if (!rd.store)
		return fail(&rd, "out of memory");
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	int r;
	if (!o) {
		r = fail(&rd, "not valid JSON at line %d, column %d: %s", je.line, je.column, je.text);
	} else if (!json_is_object(o)) {
		r = fail(&rd, "the configuration must be a JSON object");
	} else {
		const char *key;
		json_t *v;
		r = 0;
		json_object_foreach(o, key, v)
		{
			if ((r = read_top(&rd, key, v, c)))
				break;
		}
	}
	json_decref(o);
	if (r) {
		free(rd.store);
		vm_config_init(c);
		return r;
	}
	*strings = rd.store;
	return 0;
}
