/* The cgroups of corrald's VM processes (vmcg.h): v1 through the OCI
 * runtime's code, v2 here. In v2 a limit needs its controller enabled in
 * cgroup.subtree_control of every level above the VM's cgroup, and a cgroup
 * that enables controllers for its children may hold no process itself
 * (the root excepted): corrald, when it lives in the cgroup it starts from,
 * moves into a leaf of its own (corrald/) first, as systemd asks of a
 * service with Delegate=yes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "daemon/vmcg.h"
#include "oci/oci.h"

#define CG_MOUNT "/sys/fs/cgroup"
#define CG_PATH_MAX 4200

static int is_cgroup2(const char *path)
{
	struct statfs sf;
	return statfs(path, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

int vmcg_detect(const char *mode, char *root, size_t rootlen, char *err, size_t errlen)
{
	root[0] = 0;
	if (!strcmp(mode, "v1"))
		return 1;
	if (is_cgroup2(CG_MOUNT)) {
		snprintf(root, rootlen, "%s", CG_MOUNT);
		return 2;
	}
	if (!strcmp(mode, "auto"))
		return 1;
	if (!strcmp(mode, "v2") && is_cgroup2(CG_MOUNT "/unified")) {
		/* systemd's hybrid layout: v1 controllers beside an empty v2 */
		snprintf(root, rootlen, "%s", CG_MOUNT "/unified");
		return 2;
	}
	snprintf(err, errlen, "--cgroup %s: %s", mode,
		 strcmp(mode, "v2") ? "give auto, v1 or v2"
				    : "no cgroup2 hierarchy at " CG_MOUNT " or " CG_MOUNT "/unified");
	return -EINVAL;
}

static int write_at(const char *dir, const char *file, const char *text)
{
	char p[CG_PATH_MAX];
	if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, file) >= sizeof(p))
		return -ENAMETOOLONG;
	int fd = open(p, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	int r = n < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int read_at(const char *dir, const char *file, char *buf, size_t len)
{
	char p[CG_PATH_MAX];
	buf[0] = 0;
	if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, file) >= sizeof(p))
		return -ENAMETOOLONG;
	int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int r = n < 0 ? -errno : 0;
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return r;
}

/* 1 if the space-separated list holds word. */
static int has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ' || p[-1] == '\n') && (!p[n] || p[n] == ' ' || p[n] == '\n'))
			return 1;
	return 0;
}

/* This process's cgroup in the v2 hierarchy ("" for the root). */
static int own_cgroup_v2(char *out, size_t len)
{
	char line[CG_PATH_MAX];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int r = -ENOENT;
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = 0;
		snprintf(out, len, "%s", strcmp(line + 3, "/") ? line + 3 : "");
		r = 0;
	}
	if (f)
		fclose(f);
	return f ? r : -errno;
}

/* Enables ctrl for dir's children; when dir holds this process (not the
 * root: EBUSY), this process moves into the leaf dir/corrald first. */
static int enable(const char *dir, const char *ctrl, int may_move)
{
	char plus[32], leaf[CG_PATH_MAX];
	snprintf(plus, sizeof(plus), "+%s", ctrl);
	int r = write_at(dir, "cgroup.subtree_control", plus);
	if (r != -EBUSY || !may_move)
		return r;
	if ((size_t)snprintf(leaf, sizeof(leaf), "%s/corrald", dir) >= sizeof(leaf))
		return -ENAMETOOLONG;
	if (mkdir(leaf, 0755) < 0 && errno != EEXIST)
		return -errno;
	if ((r = write_at(leaf, "cgroup.procs", "0")) < 0)
		return r;
	return write_at(dir, "cgroup.subtree_control", plus);
}

/* v1 cpu.shares (2..262144, 1024 one share) as v2's cpu.weight (1..10000),
 * the conversion runc and crun use. */
static uint64_t shares_to_weight(uint64_t shares)
{
	if (shares < 2)
		shares = 2;
	if (shares > 262144)
		shares = 262144;
	return 1 + ((shares - 2) * 9999) / 262142;
}

#define FAIL(code, ...) (snprintf(err, errlen, __VA_ARGS__), (code))

/* base: corrald's cgroup in the v2 hierarchy; the VM's is base/corral/name. */
static int v2_create(const char *base, const char *name, const struct oci_resources *res, pid_t pid, json_t *dirs,
		     char *err, size_t errlen)
{
	static const char *const all[] = {"cpu", "cpuset", "memory", "pids"};
	int need[4] = {res->cpu_shares || res->cpu_quota, res->cpus && *res->cpus, res->has_mem_limit, res->has_pids};
	char avail[512], parent[CG_PATH_MAX], dir[CG_PATH_MAX], v[64];
	int r;
	if ((size_t)snprintf(parent, sizeof(parent), "%s/corral", base) >= sizeof(parent) ||
	    (size_t)snprintf(dir, sizeof(dir), "%s/%s", parent, name) >= sizeof(dir))
		return FAIL(-ENAMETOOLONG, "cgroup v2: the path under '%.200s' is too long", base);
	if ((r = read_at(base, "cgroup.controllers", avail, sizeof(avail))) < 0)
		return FAIL(r, "cgroup v2: '%.200s/cgroup.controllers': %s", base, strerror(-r));
	avail[strcspn(avail, "\n")] = 0;
	for (unsigned k = 0; k < 4; k++)
		if (need[k] && !has_word(avail, all[k]))
			return FAIL(-ENOTSUP,
				    "cgroup v2: no %s controller for corrald's cgroups in '%.200s' (it has: %s); "
				    "a v1 hierarchy may hold it",
				    all[k], base, avail[0] ? avail : "none");
	if (mkdir(parent, 0755) < 0 && errno != EEXIST)
		return FAIL(-errno, "cgroup v2: '%.200s': %s", parent, strerror(errno));
	for (unsigned k = 0; k < 4; k++) {
		if (need[k] && ((r = enable(base, all[k], 1)) < 0 || (r = enable(parent, all[k], 0)) < 0))
			return FAIL(r, "cgroup v2: enabling %s under '%.200s': %s", all[k], base, strerror(-r));
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return FAIL(-errno, "cgroup v2: '%.200s': %s", dir, strerror(errno));
	if (json_array_append_new(dirs, json_string(dir)) < 0)
		return FAIL(-ENOMEM, "out of memory");
	if (res->cpu_shares) {
		snprintf(v, sizeof(v), "%" PRIu64, shares_to_weight(res->cpu_shares));
		if ((r = write_at(dir, "cpu.weight", v)) < 0)
			return FAIL(r, "cgroup v2: cpu.weight = %s: %s", v, strerror(-r));
	}
	if (res->cpu_quota) {
		snprintf(v, sizeof(v), "%" PRId64 " %" PRIu64, res->cpu_quota,
			 res->cpu_period ? res->cpu_period : (uint64_t)100000);
		if ((r = write_at(dir, "cpu.max", v)) < 0)
			return FAIL(r, "cgroup v2: cpu.max = %s: %s", v, strerror(-r));
	}
	if (res->cpus && *res->cpus && (r = write_at(dir, "cpuset.cpus", res->cpus)) < 0)
		return FAIL(r, "cgroup v2: cpuset.cpus = %.64s: %s", res->cpus, strerror(-r));
	if (res->has_mem_limit) {
		snprintf(v, sizeof(v), "%" PRId64, res->mem_limit);
		if ((r = write_at(dir, "memory.max", v)) < 0)
			return FAIL(r, "cgroup v2: memory.max = %s: %s", v, strerror(-r));
	}
	if (res->has_pids) {
		snprintf(v, sizeof(v), res->pids_limit > 0 ? "%" PRId64 : "max", res->pids_limit);
		if ((r = write_at(dir, "pids.max", v)) < 0)
			return FAIL(r, "cgroup v2: pids.max = %s: %s", v, strerror(-r));
	}
	snprintf(v, sizeof(v), "%d", (int)pid);
	if ((r = write_at(dir, "cgroup.procs", v)) < 0)
		return FAIL(r, "cgroup v2: moving the VM process into '%.200s': %s", dir, strerror(-r));
	return 0;
}

int vmcg_create(int version, const char *root, const char *name, const struct oci_resources *res, pid_t pid,
		json_t *dirs, char *err, size_t errlen)
{
	char path[CG_PATH_MAX], own[CG_PATH_MAX];
	if (version != 2) {
		snprintf(path, sizeof(path), "corral/%s", name);
		return oci_cgroup_create(path, res, pid, dirs, err, errlen);
	}
	int r = own_cgroup_v2(own, sizeof(own));
	if (r < 0)
		return FAIL(r, "cgroup v2: corrald's own cgroup: %s", strerror(-r));
	/* corrald moved into its leaf: the VMs stay beside it */
	size_t n = strlen(own);
	if (n >= 8 && !strcmp(own + n - 8, "/corrald"))
		own[n - 8] = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s%s", root, own) >= sizeof(path))
		return FAIL(-ENAMETOOLONG, "cgroup v2: corrald's cgroup path is too long");
	return v2_create(path, name, res, pid, dirs, err, errlen);
}

unsigned long long vmcg_limit_hits(json_t *dirs)
{
	unsigned long long hits = 0;
	size_t k;
	json_t *d;
	json_array_foreach(dirs, k, d)
	{
		char buf[1024];
		const char *dir = json_string_value(d);
		if (!dir)
			continue;
		if (read_at(dir, "memory.failcnt", buf, sizeof(buf)) == 0) {
			hits += strtoull(buf, NULL, 10);
		} else if (read_at(dir, "memory.events", buf, sizeof(buf)) == 0) {
			/* "low N\nhigh N\nmax N\noom N\noom_kill N" */
			for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
				if (!strncmp(line, "max ", 4))
					hits += strtoull(line + 4, NULL, 10);
		}
	}
	return hits;
}

void vmcg_destroy(json_t *dirs)
{
	oci_cgroup_destroy(dirs);
}
