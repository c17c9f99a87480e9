/* The VM's control API on a unix socket (libmicrohttpd serves HTTP on a
 * socket bound here, jansson reads and writes the JSON): instance info,
 * machine configuration, pause/resume, snapshots, migration, stop. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/httpd.h"
#include "virtio/virtio.h"
#include "vm/migrate.h"
#include "vm/vm.h"

/* --incoming defer: where PUT /migrate/incoming stands */
enum incoming_state { INCOMING_NONE, INCOMING_ACTIVE, INCOMING_FAILED, INCOMING_COMPLETED };

struct api {
	struct MHD_Daemon *d;
	struct vm *vm;	       /* atomic: NULL until an incoming VM came (--incoming defer) */
	struct migration *mig; /* the last migration started (PUT /migrate) */
	/* --incoming defer: the socket PUT /migrate/incoming listens on, for
	 * api_wait_incoming to take (-1: none) */
	pthread_mutex_t inc_lock;
	pthread_cond_t inc_cond;
	enum incoming_state inc_state; /* inc_lock, as the rest */
	int inc_fd;
	char inc_url[MIGRATE_URL_MAX];
	char inc_error[512];
	int fd;
	int inflight; /* atomic: requests begun and not yet answered to the end */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char version[32];
};

/* One request's body, gathered as it arrives. */
struct req {
	size_t len;
	int too_big;
	char body[API_BODY_MAX];
};

static const char *state_name(struct vm *vm)
{
	if (!vm || !vm_is_running(vm))
		return "Not started";
	return vm_is_paused(vm) ? "Paused" : "Running";
}

static enum MHD_Result get_root(struct api *a, struct MHD_Connection *c)
{
	return httpd_reply(c, 200,
			   json_pack("{s:s,s:s,s:s,s:s}", "id", "corral", "state",
				     state_name(__atomic_load_n(&a->vm, __ATOMIC_ACQUIRE)), "vmm_version", a->version,
				     "app_name", "corral"));
}

static enum MHD_Result get_machine_config(struct api *a, struct MHD_Connection *c)
{
	const struct vm_config *cfg = vm_get_config(a->vm);
	return httpd_reply(c, 200,
			   json_pack("{s:I,s:I,s:b}", "vcpu_count", (json_int_t)cfg->cpus, "mem_size_mib",
				     (json_int_t)(cfg->mem >> 20), "smt", 0));
}

static enum MHD_Result patch_vm(struct api *a, struct MHD_Connection *c, struct req *q)
{
	static const char *const keys[] = {"state", NULL};
	char why[256];
	const char *st = NULL;
	json_t *j = httpd_body_object(q->body, q->len, keys, why, sizeof(why));
	int got = j ? httpd_get_str(j, "state", 16, &st, why, sizeof(why)) : -1;
	if (got <= 0) {
		json_decref(j);
		return httpd_fault(c, 400, "%s", got == 0 ? "'state' is required: \"Paused\" or \"Resumed\"" : why);
	}
	enum MHD_Result r;
	if (!strcmp(st, "Paused")) {
		r = vm_pause(a->vm) < 0 ? httpd_fault(c, 400, "the VM is not running") : httpd_reply(c, 204, NULL);
	} else if (!strcmp(st, "Resumed")) {
		if (vm_is_running(a->vm)) {
			vm_resume(a->vm);
			r = httpd_reply(c, 204, NULL);
		} else {
			r = httpd_fault(c, 400, "the VM is not running");
		}
	} else {
		r = httpd_fault(c, 400, "'state' must be \"Paused\" or \"Resumed\", not '%.32s'", st);
	}
	json_decref(j);
	return r;
}

static enum MHD_Result put_snapshot_create(struct api *a, struct MHD_Connection *c, struct req *q)
{
	static const char *const keys[] = {"snapshot_path", "mem_file_path", "snapshot_type", "version", NULL};
	char why[256], err[512];
	const char *sp = NULL, *mp = NULL, *type = NULL;
	json_t *j = httpd_body_object(q->body, q->len, keys, why, sizeof(why));
	if (!j)
		return httpd_fault(c, 400, "%s", why);
	enum MHD_Result r;
	int a1 = httpd_get_str(j, "snapshot_path", PATH_MAX, &sp, why, sizeof(why));
	int a2 = a1 < 0 ? -1 : httpd_get_str(j, "mem_file_path", PATH_MAX, &mp, why, sizeof(why));
	int a3 = a2 < 0 ? -1 : httpd_get_str(j, "snapshot_type", 16, &type, why, sizeof(why));
	if (a1 < 0 || a2 < 0 || a3 < 0) {
		r = httpd_fault(c, 400, "%s", why);
	} else if (!sp || !mp) {
		r = httpd_fault(c, 400, "'snapshot_path' and 'mem_file_path' are required");
	} else if (type && strcmp(type, "Full")) {
		r = httpd_fault(c, 400, "snapshot_type '%.16s': only \"Full\" snapshots are made", type);
	} else if (json_object_get(j, "version")) {
		r = httpd_fault(c, 400, "'version': snapshots are written in this corral's format only");
	} else if (vm_save_files(a->vm, sp, mp, err, sizeof(err)) < 0) {
		r = httpd_fault(c, 400, "%s", err);
	} else {
		r = httpd_reply(c, 204, NULL);
	}
	json_decref(j);
	return r;
}

static enum MHD_Result put_snapshot_load(struct MHD_Connection *c, struct req *q)
{
	static const char *const keys[] = {"snapshot_path",	    "mem_file_path", "mem_backend",
					   "enable_diff_snapshots", "resume_vm",     NULL};
	char why[256];
	json_t *j = httpd_body_object(q->body, q->len, keys, why, sizeof(why));
	if (!j)
		return httpd_fault(c, 400, "%s", why);
	json_decref(j);
	/* as Firecracker's: a snapshot loads only into a VM that never ran */
	return httpd_fault(c, 400,
			   "this VM has already started: a snapshot loads into a new corral (corral restore DIR)");
}

static int migrating(struct api *a);

static enum MHD_Result put_actions(struct api *a, struct MHD_Connection *c, struct req *q)
{
	static const char *const keys[] = {"action_type", NULL};
	char why[256];
	const char *act = NULL;
	json_t *j = httpd_body_object(q->body, q->len, keys, why, sizeof(why));
	int got = j ? httpd_get_str(j, "action_type", 32, &act, why, sizeof(why)) : -1;
	if (got <= 0) {
		json_decref(j);
		return httpd_fault(c, 400, "%s", got == 0 ? "'action_type' is required" : why);
	}
	enum MHD_Result r;
	if (!strcmp(act, "Stop")) {
		vm_stop(a->vm);
		r = httpd_reply(c, 204, NULL);
	} else if (!strcmp(act, "SendCtrlAltDel") && migrating(a)) {
		r = httpd_fault(c, 409, "the VM is being migrated (GET /migrate)");
	} else if (!strcmp(act, "SendCtrlAltDel")) {
		r = vm_reset(a->vm) < 0 ? httpd_fault(c, 400, "the VM is not running") : httpd_reply(c, 204, NULL);
	} else {
		r = httpd_fault(c, 400, "action_type '%.32s': must be Stop or SendCtrlAltDel", act);
	}
	json_decref(j);
	return r;
}

/* While a migration moves the VM, nothing else may pause, resume or
 * save it. */
static int migrating(struct api *a)
{
	return a->mig && migrate_busy(a->mig);
}

static enum MHD_Result put_migrate(struct api *a, struct MHD_Connection *c, struct req *q)
{
	static const char *const keys[] = {"destination_url", "downtime_limit_ms", "auto_converge",
					   "copy_disks",      "compress",	   NULL};
	char why[256];
	const char *url = NULL;
	json_t *j = httpd_body_object(q->body, q->len, keys, why, sizeof(why));
	int got = j ? httpd_get_str(j, "destination_url", MIGRATE_URL_MAX, &url, why, sizeof(why)) : -1;
	if (got <= 0) {
		json_decref(j);
		return httpd_fault(c, 400, "%s", got == 0 ? "'destination_url' is required" : why);
	}
	struct migrate_params p = {.url = url};
	json_t *dl = json_object_get(j, "downtime_limit_ms"), *ac = json_object_get(j, "auto_converge"),
	       *cd = json_object_get(j, "copy_disks"), *zs = json_object_get(j, "compress");
	enum MHD_Result r;
	if (dl &&
	    (!json_is_integer(dl) || json_integer_value(dl) < 1 || json_integer_value(dl) > MIGRATE_DOWNTIME_MAX_MS)) {
		r = httpd_fault(c, 400, "'downtime_limit_ms' must be an integer from 1 to %d", MIGRATE_DOWNTIME_MAX_MS);
		goto out;
	}
	if (ac && !json_is_boolean(ac)) {
		r = httpd_fault(c, 400, "'auto_converge' must be true or false");
		goto out;
	}
	if ((cd && !json_is_boolean(cd)) || (zs && !json_is_boolean(zs))) {
		r = httpd_fault(c, 400, "'%s' must be true or false",
				cd && !json_is_boolean(cd) ? "copy_disks" : "compress");
		goto out;
	}
	p.compress = zs && json_is_true(zs);
	p.copy_disks = cd && json_is_true(cd);
	if (dl)
		p.downtime_ms = (unsigned)json_integer_value(dl);
	p.no_auto_converge = ac && json_is_false(ac);
	if (migrating(a)) {
		r = httpd_fault(c, 409, "a migration is already under way (GET /migrate)");
		goto out;
	}
	struct migration *m;
	char err[512];
	if (migrate_start(a->vm, &p, &m, err, sizeof(err)) < 0) {
		r = httpd_fault(c, 400, "%s", err);
		goto out;
	}
	migrate_free(a->mig);
	a->mig = m;
	r = httpd_reply(c, 204, NULL);
out:
	json_decref(j);
	return r;
}

static enum MHD_Result get_migrate(struct api *a, struct MHD_Connection *c)
{
	if (!a->mig)
		return httpd_reply(c, 200, json_pack("{s:s}", "state", "none"));
	struct migrate_status st;
	migrate_get(a->mig, &st);
	json_t *j = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "state",
			      migrate_state_name(st.state), "iteration", (json_int_t)st.iteration, "ram_total",
			      (json_int_t)st.ram_total, "ram_remaining", (json_int_t)st.ram_remaining, "bytes_sent",
			      (json_int_t)st.bytes_sent, "pages_sent", (json_int_t)st.pages_sent, "zero_pages",
			      (json_int_t)st.zero_pages, "dirty_rate", (json_int_t)st.dirty_rate, "bandwidth",
			      (json_int_t)st.bandwidth, "expected_downtime_ms",
			      (json_int_t)(st.expected_downtime_ms > INT64_MAX ? INT64_MAX : st.expected_downtime_ms),
			      "downtime_ms", (json_int_t)st.downtime_ms, "total_ms", (json_int_t)st.total_ms,
			      "throttle_percent", (json_int_t)st.throttle_pct);
	if (j && st.disk_total) {
		json_object_set_new(j, "disk_total", json_integer((json_int_t)st.disk_total));
		json_object_set_new(j, "disk_remaining", json_integer((json_int_t)st.disk_remaining));
		json_object_set_new(j, "disk_sent", json_integer((json_int_t)st.disk_sent));
	}
	if (j && st.warning[0])
		json_object_set_new(j, "warning", json_string(st.warning));
	if (j && st.state == MIGRATE_FAILED)
		json_object_set_new(j, "error", json_string(st.error));
	return httpd_reply(c, 200, j);
}

static const char *incoming_state_name(enum incoming_state s)
{
	switch (s) {
	case INCOMING_NONE: return "none";
	case INCOMING_ACTIVE: return "active";
	case INCOMING_FAILED: return "failed";
	case INCOMING_COMPLETED: return "completed";
	}
	return "?";
}

/* --incoming defer (QEMU's migrate-incoming): listen on the URL now, so
 * that a source may connect as soon as this answers. */
static enum MHD_Result put_incoming(struct api *a, struct MHD_Connection *c, struct req *q)
{
	static const char *const keys[] = {"url", NULL};
	char why[256], err[512];
	const char *url = NULL;
	json_t *j = httpd_body_object(q->body, q->len, keys, why, sizeof(why));
	int got = j ? httpd_get_str(j, "url", MIGRATE_URL_MAX, &url, why, sizeof(why)) : -1;
	enum MHD_Result r;
	if (got <= 0) {
		r = httpd_fault(c, 400, "%s", got == 0 ? "'url' is required" : why);
		goto out;
	}
	pthread_mutex_lock(&a->inc_lock);
	if (a->inc_fd == -2) {
		pthread_mutex_unlock(&a->inc_lock);
		r = httpd_fault(c, 409, "this corral was not started with --incoming defer");
		goto out;
	}
	if (a->inc_state == INCOMING_ACTIVE || a->inc_state == INCOMING_COMPLETED) {
		pthread_mutex_unlock(&a->inc_lock);
		r = httpd_fault(c, 409, "an incoming migration is %s (GET /migrate/incoming)",
				a->inc_state == INCOMING_ACTIVE ? "under way" : "done");
		goto out;
	}
	int fd = migrate_listen(url, err, sizeof(err));
	if (fd < 0) {
		pthread_mutex_unlock(&a->inc_lock);
		r = httpd_fault(c, 400, "%s", err);
		goto out;
	}
	a->inc_fd = fd;
	a->inc_state = INCOMING_ACTIVE;
	a->inc_error[0] = 0;
	snprintf(a->inc_url, sizeof(a->inc_url), "%s", url);
	pthread_cond_signal(&a->inc_cond);
	pthread_mutex_unlock(&a->inc_lock);
	r = httpd_reply(c, 204, NULL);
out:
	json_decref(j);
	return r;
}

static enum MHD_Result get_incoming(struct api *a, struct MHD_Connection *c)
{
	pthread_mutex_lock(&a->inc_lock);
	json_t *j = json_pack("{s:s}", "state", incoming_state_name(a->inc_state));
	if (j && a->inc_state != INCOMING_NONE)
		json_object_set_new(j, "url", json_string(a->inc_url));
	if (j && a->inc_state == INCOMING_FAILED)
		json_object_set_new(j, "error", json_string(a->inc_error));
	pthread_mutex_unlock(&a->inc_lock);
	return httpd_reply(c, 200, j);
}

int api_wait_incoming(struct api *a, volatile sig_atomic_t *stop, char *url, size_t urllen)
{
	pthread_mutex_lock(&a->inc_lock);
	while (a->inc_fd < 0 && !*stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000 * 1000; /* a signal's stop is seen within 0.1 s */
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&a->inc_cond, &a->inc_lock, &ts);
	}
	int fd = *stop ? -EINTR : a->inc_fd;
	if (fd >= 0) {
		a->inc_fd = -1;
		snprintf(url, urllen, "%s", a->inc_url);
	}
	pthread_mutex_unlock(&a->inc_lock);
	return fd;
}

void api_incoming_done(struct api *a, struct vm *vm, const char *err)
{
	pthread_mutex_lock(&a->inc_lock);
	a->inc_state = vm ? INCOMING_COMPLETED : INCOMING_FAILED;
	snprintf(a->inc_error, sizeof(a->inc_error), "%s", vm ? "" : err);
	pthread_mutex_unlock(&a->inc_lock);
	if (vm)
		__atomic_store_n(&a->vm, vm, __ATOMIC_RELEASE);
}

/* "/drives/K" or "/network-interfaces/K" (K: the device's index in the
 * configuration, decimal): its index, -1 when url is neither, -2 when K is
 * malformed. */
static int device_index(const char *url, const char *prefix)
{
	size_t l = strlen(prefix);
	if (strncmp(url, prefix, l))
		return -1;
	const char *s = url + l;
	if (!*s || strlen(s) > 2 || strspn(s, "0123456789") != strlen(s) || (s[0] == '0' && s[1]))
		return -2;
	return atoi(s);
}

/* Firecracker's PATCH /drives/{id} and /network-interfaces/{id}, for the
 * rate limits (the rest of a device is fixed while it runs), and GET. */
static enum MHD_Result device_rate(struct api *a, struct MHD_Connection *c, const char *url, const char *method,
				   struct req *q, int drive)
{
	int k = device_index(url, drive ? "/drives/" : "/network-interfaces/");
	if (k == -2)
		return httpd_fault(c, 404, "no device %.64s: give its index, e.g. %s0", url,
				   drive ? "/drives/" : "/network-interfaces/");
	struct rate_cfg one, tx, rx;
	int have = drive ? vm_get_disk_rate(a->vm, (unsigned)k, &one) : vm_get_net_rate(a->vm, (unsigned)k, &tx, &rx);
	if (have < 0)
		return httpd_fault(c, 404, "no %s %d in this VM", drive ? "disk" : "network interface", k);
	if (!strcmp(method, "GET")) {
		if (q->len)
			return httpd_fault(c, 400, "GET %.64s takes no body", url);
		return httpd_reply(c, 200,
				   drive ? json_pack("{s:i,s:o}", "drive_id", k, "rate_limiter", vm_rate_to_json(&one))
					 : json_pack("{s:i,s:o,s:o}", "iface_id", k, "rx_rate_limiter",
						     vm_rate_to_json(&rx), "tx_rate_limiter", vm_rate_to_json(&tx)));
	}
	if (strcmp(method, "PATCH"))
		return httpd_fault(c, 405, "%.16s is not a method of %.64s", method, url);
	static const char *const dkeys[] = {"drive_id", "rate_limiter", NULL};
	static const char *const nkeys[] = {"iface_id", "rx_rate_limiter", "tx_rate_limiter", NULL};
	char why[256];
	json_t *j = httpd_body_object(q->body, q->len, drive ? dkeys : nkeys, why, sizeof(why));
	if (!j)
		return httpd_fault(c, 400, "%s", why);
	json_t *id = json_object_get(j, drive ? "drive_id" : "iface_id");
	enum MHD_Result r;
	char kid[8];
	snprintf(kid, sizeof(kid), "%d", k);
	if (id && !(json_is_integer(id) && json_integer_value(id) == k) &&
	    !(json_is_string(id) && !strcmp(json_string_value(id), kid))) {
		r = httpd_fault(c, 400, "'%s' does not name the device of the path", drive ? "drive_id" : "iface_id");
		goto out;
	}
	static const char *const dnames[] = {"rate_limiter"}, *const nnames[] = {"tx_rate_limiter", "rx_rate_limiter"};
	struct rate_cfg *dst[2] = {drive ? &one : &tx, &rx};
	for (int n = 0; n < (drive ? 1 : 2); n++) {
		const char *key = drive ? dnames[n] : nnames[n];
		json_t *v = json_object_get(j, key);
		if (v && vm_rate_from_json(v, key, dst[n], why, sizeof(why)) < 0) {
			r = httpd_fault(c, 400, "%s", why);
			goto out;
		}
	}
	if (drive)
		vm_set_disk_rate(a->vm, (unsigned)k, &one);
	else
		vm_set_net_rate(a->vm, (unsigned)k, &tx, &rx);
	r = httpd_reply(c, 204, NULL);
out:
	json_decref(j);
	return r;
}

/* Firecracker's balloon: GET, PUT (the device is made with the VM, from
 * --balloon or its configuration: a PUT may only set a new target and
 * repeat the rest), PATCH {"amount_mib"}. */
static enum MHD_Result balloon(struct api *a, struct MHD_Connection *c, const char *method, struct req *q)
{
	struct vm_balloon b, nb;
	struct balloon_info bi;
	char why[256];
	if (vm_balloon_get(a->vm, &b, &bi) < 0)
		return httpd_fault(c, 400, "this VM has no balloon device (start it with --balloon)");
	if (!strcmp(method, "GET"))
		return httpd_reply(c, 200, vm_balloon_to_json(&b));
	static const char *const pkeys[] = {"amount_mib", NULL};
	static const char *const keys[] = {"amount_mib", "deflate_on_oom", "stats_polling_interval_s",
					   "free_page_reporting", NULL};
	json_t *j = httpd_body_object(q->body, q->len, !strcmp(method, "PATCH") ? pkeys : keys, why, sizeof(why));
	enum MHD_Result r;
	if (!j) {
		r = httpd_fault(c, 400, "%s", why);
	} else if (!strcmp(method, "PATCH")) {
		json_t *n = json_object_get(j, "amount_mib");
		if (!n || !json_is_integer(n) || json_integer_value(n) < 0 ||
		    json_integer_value(n) > (json_int_t)(vm_get_config(a->vm)->mem >> 20))
			r = httpd_fault(c, 400,
					"'amount_mib' must be an integer from 0 to %" PRIu64 " (the VM's memory)",
					vm_get_config(a->vm)->mem >> 20);
		else
			r = vm_balloon_set(a->vm, (uint32_t)json_integer_value(n)) < 0
				    ? httpd_fault(c, 400, "cannot set the balloon's target")
				    : httpd_reply(c, 204, NULL);
	} else if (vm_balloon_from_json(j, 1, &nb, why, sizeof(why)) < 0) {
		r = httpd_fault(c, 400, "%s", why);
	} else if (nb.deflate_on_oom != b.deflate_on_oom || nb.free_page_reporting != b.free_page_reporting ||
		   (nb.stats_s == 0) != (b.stats_s == 0)) {
		r = httpd_fault(c, 400,
				"the balloon's features are fixed when the VM is made: deflate_on_oom %s, "
				"free_page_reporting %s, statistics %s (PATCH /balloon sets the target)",
				b.deflate_on_oom ? "true" : "false", b.free_page_reporting ? "true" : "false",
				b.stats_s ? "on" : "off");
	} else if ((uint64_t)nb.amount_mib << 20 > vm_get_config(a->vm)->mem) {
		r = httpd_fault(c, 400, "'amount_mib' %u is more than the VM's %" PRIu64 " MiB", nb.amount_mib,
				vm_get_config(a->vm)->mem >> 20);
	} else {
		if (nb.stats_s)
			vm_balloon_set_stats(a->vm, nb.stats_s);
		vm_balloon_set(a->vm, nb.amount_mib);
		r = httpd_reply(c, 204, NULL);
	}
	json_decref(j);
	return r;
}

/* GET /balloon/statistics (Firecracker's names, memory in bytes as the
 * guest reports it; only what the guest reported), PATCH
 * {"stats_polling_interval_s"}. */
static enum MHD_Result balloon_stats(struct api *a, struct MHD_Connection *c, const char *method, struct req *q)
{
	static const char *const names[BALLOON_NSTATS] = {
		"swap_in",	"swap_out",	    "major_faults", "minor_faults",	   "free_memory",
		"total_memory", "available_memory", "disk_caches",  "hugetlb_allocations", "hugetlb_failures"};
	struct vm_balloon b;
	struct balloon_info bi;
	char why[256];
	if (vm_balloon_get(a->vm, &b, &bi) < 0)
		return httpd_fault(c, 400, "this VM has no balloon device (start it with --balloon)");
	if (!b.stats_s)
		return httpd_fault(c, 400, "the balloon's statistics are off (stats_polling_interval_s 0)");
	if (!strcmp(method, "PATCH")) {
		static const char *const keys[] = {"stats_polling_interval_s", NULL};
		json_t *j = httpd_body_object(q->body, q->len, keys, why, sizeof(why));
		if (!j)
			return httpd_fault(c, 400, "%s", why);
		json_t *n = json_object_get(j, "stats_polling_interval_s");
		enum MHD_Result r;
		if (!n || !json_is_integer(n) || json_integer_value(n) < 1 ||
		    json_integer_value(n) > VM_BALLOON_STATS_MAX)
			r = httpd_fault(c, 400,
					"'stats_polling_interval_s' must be an integer from 1 to %d (statistics "
					"cannot be turned off while the VM runs)",
					VM_BALLOON_STATS_MAX);
		else
			r = vm_balloon_set_stats(a->vm, (unsigned)json_integer_value(n)) < 0
				    ? httpd_fault(c, 400, "cannot change the statistics interval")
				    : httpd_reply(c, 204, NULL);
		json_decref(j);
		return r;
	}
	json_t *o =
		json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "target_pages", (json_int_t)bi.target_pages, "actual_pages",
			  (json_int_t)bi.actual_pages, "target_mib", (json_int_t)(bi.target_pages >> 8), "actual_mib",
			  (json_int_t)(bi.actual_pages >> 8), "inflated_pages", (json_int_t)bi.inflated,
			  "reported_pages", (json_int_t)bi.reported, "ignored_pfns", (json_int_t)bi.ignored);
	for (unsigned k = 0; o && k < BALLOON_NSTATS; k++)
		if (bi.have >> k & 1)
			json_object_set_new(
				o, names[k],
				json_integer((json_int_t)(bi.stat[k] > INT64_MAX ? INT64_MAX : bi.stat[k])));
	return httpd_reply(c, 200, o);
}

struct route {
	const char *path, *method;
	int body; /* takes a JSON body */
};

static const struct route routes[] = {
	{"/", "GET", 0},
	{"/machine-config", "GET", 0},
	{"/vm", "PATCH", 1},
	{"/snapshot/create", "PUT", 1},
	{"/snapshot/load", "PUT", 1},
	{"/actions", "PUT", 1},
	{"/migrate", "PUT", 1},
	{"/migrate", "GET", 0},
	{"/balloon", "GET", 0},
	{"/balloon", "PUT", 1},
	{"/balloon", "PATCH", 1},
	{"/balloon/statistics", "GET", 0},
	{"/balloon/statistics", "PATCH", 1},
	{"/migrate/incoming", "PUT", 1},
	{"/migrate/incoming", "GET", 0},
};
#define ROUTE_INCOMING 13 /* the first of the /migrate/incoming routes */

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	(void)version;
	struct api *a = cls;
	struct req *q = *con_cls;
	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		*con_cls = q;
		__atomic_add_fetch(&a->inflight, 1, __ATOMIC_SEQ_CST);
		return MHD_YES;
	}
	if (*upload_size) {
		if (q->len + *upload_size > sizeof(q->body))
			q->too_big = 1;
		else
			memcpy(q->body + q->len, upload, *upload_size);
		q->len += q->too_big ? 0 : *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	if (q->too_big)
		return httpd_fault(c, 413, "the body is larger than %d bytes", API_BODY_MAX);
	/* --incoming defer: no VM until one came */
	if (!__atomic_load_n(&a->vm, __ATOMIC_ACQUIRE) && strcmp(url, "/") && strcmp(url, "/migrate/incoming"))
		return httpd_fault(c, 409, "no VM here yet: it comes with PUT /migrate/incoming");
	if (device_index(url, "/drives/") != -1)
		return device_rate(a, c, url, method, q, 1);
	if (device_index(url, "/network-interfaces/") != -1)
		return device_rate(a, c, url, method, q, 0);
	int known = 0;
	for (unsigned k = 0; k < sizeof(routes) / sizeof(routes[0]); k++) {
		if (strcmp(routes[k].path, url))
			continue;
		known = 1;
		if (strcmp(routes[k].method, method))
			continue;
		if (!routes[k].body && q->len)
			return httpd_fault(c, 400, "%s %s takes no body", method, url);
		if ((k == 2 || k == 3) && migrating(a))
			return httpd_fault(c, 409, "the VM is being migrated (GET /migrate)");
		switch (k) {
		case 0: return get_root(a, c);
		case 1: return get_machine_config(a, c);
		case 2: return patch_vm(a, c, q);
		case 3: return put_snapshot_create(a, c, q);
		case 4: return put_snapshot_load(c, q);
		case 5: return put_actions(a, c, q);
		case 6: return put_migrate(a, c, q);
		case 7: return get_migrate(a, c);
		case 8:
		case 9:
		case 10: return balloon(a, c, method, q);
		case ROUTE_INCOMING: return put_incoming(a, c, q);
		case ROUTE_INCOMING + 1: return get_incoming(a, c);
		default: return balloon_stats(a, c, method, q);
		}
	}
	if (known)
		return httpd_fault(c, 405, "%.16s is not a method of %.64s", method, url);
	return httpd_fault(c, 404, "no resource %.64s (see docs/api.yaml)", url);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct api *a = cls;
	(void)c;
	(void)toe;
	if (*con_cls)
		__atomic_sub_fetch(&a->inflight, 1, __ATOMIC_SEQ_CST);
	free(*con_cls);
	*con_cls = NULL;
}

int api_start(const char *path, struct vm *vm, const char *version, struct api **out, char *err, size_t errlen)
{
	int r;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "--api-sock '%s': longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if ((r = httpd_load(err, errlen)) < 0)
		return r;
	struct api *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	a->vm = vm;
	a->inc_fd = vm ? -2 : -1; /* -2: not an empty VM process */
	pthread_mutex_init(&a->inc_lock, NULL);
	pthread_cond_init(&a->inc_cond, NULL);
	snprintf(a->version, sizeof(a->version), "%s", version);
	snprintf(a->path, sizeof(a->path), "%s", path);
	memcpy(sa.sun_path, path, strlen(path));
	a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->fd < 0) {
		r = -errno;
		snprintf(err, errlen, "--api-sock: socket: %s", strerror(-r));
		goto err_free;
	}
	if (bind(a->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(err, errlen, "--api-sock '%s': %s%s", path, strerror(-r),
			 r == -EADDRINUSE ? " (remove it if no corral serves it)" : "");
		goto err_close;
	}
	if (listen(a->fd, 16) < 0) {
		r = -errno;
		snprintf(err, errlen, "--api-sock '%s': listen: %s", path, strerror(-r));
		goto err_unlink;
	}
	a->d = httpd_mhd.start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, handle, a,
				      MHD_OPTION_LISTEN_SOCKET, a->fd, MHD_OPTION_NOTIFY_COMPLETED, completed, a,
				      MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT,
				      (unsigned)30, MHD_OPTION_END);
	if (!a->d) {
		r = -EIO;
		snprintf(err, errlen, "--api-sock '%s': cannot start the HTTP server", path);
		goto err_unlink;
	}
	*out = a;
	return 0;

err_unlink:
	unlink(path);
err_close:
	close(a->fd);
err_free:
	pthread_mutex_destroy(&a->inc_lock);
	pthread_cond_destroy(&a->inc_cond);
	free(a);
	return r;
}

void api_stop(struct api *a)
{
	if (!a)
		return;
	/* No new clients; the answers under way (the 204 to a Stop that ends
	 * the VM) are sent to the end first, for at most 2 s. */
	unlink(a->path);
	for (int k = 0; k < 400 && __atomic_load_n(&a->inflight, __ATOMIC_SEQ_CST) > 0; k++) {
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	httpd_mhd.stop_daemon(a->d);
	migrate_free(a->mig);
	if (a->inc_fd >= 0) /* a PUT /migrate/incoming nobody took */
		close(a->inc_fd);
	pthread_mutex_destroy(&a->inc_lock);
	pthread_cond_destroy(&a->inc_cond);
	close(a->fd);
	unlink(a->path);
	free(a);
}
