/* Containers' cgroups on a cgroup v1 host (a controller per hierarchy under
 * /sys/fs/cgroup). A cgroupsPath is taken under the cgroup that the runtime
 * itself runs in, controller by controller, as under a cgroup namespace: a
 * container never leaves the limits its caller runs under. The directories
 * made are kept in the container's state (a JSON list) for the commands
 * that come later. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/oci.h"

#define CG_ROOT "/sys/fs/cgroup"

static const char *const controllers[] = {"freezer", "pids", "memory", "cpu", "cpuacct", "cpuset", "devices"};

static int write_text(const char *dir, const char *file, const char *text)
{
	char p[4200];
	if (snprintf(p, sizeof(p), "%s/%s", dir, file) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	int e = n < 0 ? -errno : 0;
	close(fd);
	return e;
}

static int read_text(const char *dir, const char *file, char *buf, size_t n)
{
	char p[4200];
	if (snprintf(p, sizeof(p), "%s/%s", dir, file) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t r = read(fd, buf, n - 1);
	int e = r < 0 ? -errno : 0;
	close(fd);
	buf[r < 0 ? 0 : r] = 0;
	return e;
}

/* This process's cgroup in hierarchy ctrl ("" for the root). */
static int own_cgroup(const char *ctrl, char *out, size_t n)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	char line[4200];
	int r = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		line[strcspn(line, "\n")] = 0;
		c2[1 + strcspn(c2 + 1, "\n")] = 0;
		/* the controller list may name several: "cpu,cpuacct" */
		for (char *tok = strtok(c1 + 1, ","); tok; tok = strtok(NULL, ","))
			if (!strcmp(tok, ctrl)) {
				snprintf(out, n, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
				r = 0;
			}
	}
	fclose(f);
	return r;
}

/* mkdir -p under the controller's root; a new cpuset level gets its
 * parent's CPUs and nodes (v1 leaves them empty, and tasks cannot join). */
static int mkdir_cg(const char *ctrl, const char *dir)
{
	char p[4200];
	size_t base = strlen(CG_ROOT) + 1 + strlen(ctrl);
	snprintf(p, sizeof(p), "%s", dir);
	for (char *s = p + base + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = 0;
		if (mkdir(p, 0755) == 0) {
			if (!strcmp(ctrl, "cpuset")) {
				char parent[4200], v[4096];
				snprintf(parent, sizeof(parent), "%s", p);
				*strrchr(parent, '/') = 0;
				if (!read_text(parent, "cpuset.cpus", v, sizeof(v)))
					write_text(p, "cpuset.cpus", v);
				if (!read_text(parent, "cpuset.mems", v, sizeof(v)))
					write_text(p, "cpuset.mems", v);
			}
		} else if (errno != EEXIST) {
			return -errno;
		}
		*s = c;
		if (!c)
			return 0;
	}
}

static const char *dir_of(json_t *dirs, const char *ctrl)
{
	size_t k;
	json_t *v;
	size_t cl = strlen(CG_ROOT) + 1 + strlen(ctrl);
	json_array_foreach(dirs, k, v)
	{
		const char *d = json_string_value(v);
		if (d && !strncmp(d, CG_ROOT "/", strlen(CG_ROOT) + 1) &&
		    !strncmp(d + strlen(CG_ROOT) + 1, ctrl, strlen(ctrl)) && d[cl] == '/')
			return d;
	}
	return NULL;
}

#define ERR(...) (oci_errf(err, errn, __VA_ARGS__), r)

static int apply(json_t *dirs, const struct oci_resources *res, char *err, size_t errn)
{
	char v[64];
	int r = 0;
	const char *d;
	d = dir_of(dirs, "memory");
	if ((res->has_mem_limit || res->has_mem_reservation || res->has_mem_swap) && !d)
		return r = -ENOTSUP, ERR("linux.resources.memory: no memory controller on this host");
	if (res->has_mem_limit) {
		snprintf(v, sizeof(v), "%lld", (long long)res->mem_limit);
		if ((r = write_text(d, "memory.limit_in_bytes", v)))
			return ERR("cgroup: memory.limit_in_bytes = %s: %s", v, strerror(-r));
	}
	if (res->has_mem_reservation) {
		snprintf(v, sizeof(v), "%lld", (long long)res->mem_reservation);
		if ((r = write_text(d, "memory.soft_limit_in_bytes", v)))
			return ERR("cgroup: memory.soft_limit_in_bytes = %s: %s", v, strerror(-r));
	}
	if (res->has_mem_swap) {
		snprintf(v, sizeof(v), "%lld", (long long)res->mem_swap);
		r = write_text(d, "memory.memsw.limit_in_bytes", v);
		if (r == -ENOENT)
			return ERR("linux.resources.memory.swap: this host's kernel does not account swap");
		if (r)
			return ERR("cgroup: memory.memsw.limit_in_bytes = %s: %s", v, strerror(-r));
	}
	d = dir_of(dirs, "cpu");
	if ((res->cpu_shares || res->cpu_quota || res->cpu_period) && !d)
		return r = -ENOTSUP, ERR("linux.resources.cpu: no cpu controller on this host");
	if (res->cpu_shares) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)(res->cpu_shares < 2 ? 2 : res->cpu_shares));
		if ((r = write_text(d, "cpu.shares", v)))
			return ERR("cgroup: cpu.shares = %s: %s", v, strerror(-r));
	}
	if (res->cpu_period) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)res->cpu_period);
		if ((r = write_text(d, "cpu.cfs_period_us", v)))
			return ERR("cgroup: cpu.cfs_period_us = %s: %s", v, strerror(-r));
	}
	if (res->cpu_quota) {
		snprintf(v, sizeof(v), "%lld", (long long)res->cpu_quota);
		if ((r = write_text(d, "cpu.cfs_quota_us", v)))
			return ERR("cgroup: cpu.cfs_quota_us = %s: %s", v, strerror(-r));
	}
	d = dir_of(dirs, "cpuset");
	if ((res->cpus && *res->cpus) || (res->mems && *res->mems)) {
		if (!d)
			return r = -ENOTSUP, ERR("linux.resources.cpu.cpus: no cpuset controller on this host");
		if (res->cpus && *res->cpus && (r = write_text(d, "cpuset.cpus", res->cpus)))
			return ERR("cgroup: cpuset.cpus = %.64s: %s", res->cpus, strerror(-r));
		if (res->mems && *res->mems && (r = write_text(d, "cpuset.mems", res->mems)))
			return ERR("cgroup: cpuset.mems = %.64s: %s", res->mems, strerror(-r));
	}
	d = dir_of(dirs, "pids");
	if (res->has_pids) {
		if (!d)
			return r = -ENOTSUP, ERR("linux.resources.pids: no pids controller on this host");
		if (res->pids_limit > 0)
			snprintf(v, sizeof(v), "%lld", (long long)res->pids_limit);
		else
			snprintf(v, sizeof(v), "max");
		if ((r = write_text(d, "pids.max", v)))
			return ERR("cgroup: pids.max = %s: %s", v, strerror(-r));
	}
	if (res->ndevices && !dir_of(dirs, "devices"))
		return r = -ENOTSUP, ERR("linux.resources.devices: no devices controller on this host");
	return 0;
}

int oci_cgroup_devices(json_t *dirs, const struct oci_resources *res, char *err, size_t errn)
{
	char v[64];
	int r = 0;
	const char *d = dir_of(dirs, "devices");
	if (res->ndevices && !d)
		return r = -ENOTSUP, ERR("linux.resources.devices: no devices controller on this host");
	for (size_t k = 0; k < res->ndevices; k++) {
		const struct oci_devrule *dr = &res->devices[k];
		char maj[16], min[16];
		if (dr->type == 'a') {
			snprintf(v, sizeof(v), "a");
		} else {
			snprintf(maj, sizeof(maj), dr->major < 0 ? "*" : "%ld", dr->major);
			snprintf(min, sizeof(min), dr->minor < 0 ? "*" : "%ld", dr->minor);
			snprintf(v, sizeof(v), "%c %s:%s %s", dr->type, maj, min, dr->access);
		}
		if ((r = write_text(d, dr->allow ? "devices.allow" : "devices.deny", v)))
			return ERR("cgroup: devices.%s = %s: %s", dr->allow ? "allow" : "deny", v, strerror(-r));
	}
	/* the devices every container has (container.c binds them in), after
	 * the config's rules as runc adds them: null, zero, full, random,
	 * urandom, tty, console, ptmx and the ptys */
	static const char *const always[] = {"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",  "c 1:9 rwm",
					     "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"};
	for (size_t k = 0; d && res->ndevices && k < sizeof(always) / sizeof(always[0]); k++)
		if ((r = write_text(d, "devices.allow", always[k])))
			return ERR("cgroup: devices.allow = %s: %s", always[k], strerror(-r));
	return 0;
}

int oci_cgroup_create(const char *path, const struct oci_resources *res, pid_t pid, json_t *dirs, char *err,
		      size_t errn)
{
	int r = 0;
	for (size_t k = 0; k < sizeof(controllers) / sizeof(controllers[0]); k++) {
		char own[4096], dir[4200], root[256];
		snprintf(root, sizeof(root), CG_ROOT "/%s", controllers[k]);
		struct stat st;
		if (stat(root, &st) < 0 || own_cgroup(controllers[k], own, sizeof(own)))
			continue; /* not mounted here: apply() refuses limits that need it */
		if (snprintf(dir, sizeof(dir), "%s%s/%s", root, own, path[0] == '/' ? path + 1 : path) >=
		    (int)sizeof(dir))
			return r = -ENAMETOOLONG, ERR("cgroup path too long");
		size_t l = strlen(dir);
		while (l > 1 && dir[l - 1] == '/')
			dir[--l] = 0;
		if ((r = mkdir_cg(controllers[k], dir)))
			return ERR("cgroup %s: %s", dir, strerror(-r));
		if (json_array_append_new(dirs, json_string(dir)))
			return r = -ENOMEM, ERR("out of memory");
	}
	if ((r = apply(dirs, res, err, errn)))
		return r;
	return oci_cgroup_join(dirs, pid) ? (r = -errno, ERR("cannot join cgroup: %s", strerror(errno))) : 0;
}

int oci_cgroup_join(json_t *dirs, pid_t pid)
{
	size_t k;
	json_t *v;
	char p[32];
	snprintf(p, sizeof(p), "%d", (int)pid);
	json_array_foreach(dirs, k, v)
	{
		int r = write_text(json_string_value(v), "cgroup.procs", p);
		if (r) {
			errno = -r;
			return -1;
		}
	}
	return 0;
}

int oci_cgroup_freeze(json_t *dirs, int frozen)
{
	const char *d = dir_of(dirs, "freezer");
	if (!d)
		return -ENOTSUP;
	int r = write_text(d, "freezer.state", frozen ? "FROZEN" : "THAWED");
	if (r)
		return r;
	/* FREEZING settles into FROZEN once every task stopped */
	for (int k = 0; k < 1000; k++) {
		char s[64];
		if ((r = read_text(d, "freezer.state", s, sizeof(s))))
			return r;
		if (!strncmp(s, frozen ? "FROZEN" : "THAWED", 6))
			return 0;
		usleep(1000);
	}
	return -EBUSY;
}

int oci_cgroup_frozen(json_t *dirs)
{
	const char *d = dir_of(dirs, "freezer");
	char s[64];
	if (!d || read_text(d, "freezer.state", s, sizeof(s)))
		return 0;
	return !strncmp(s, "FROZEN", 6);
}

int oci_cgroup_pids(json_t *dirs, pid_t *out, int max)
{
	const char *d = dir_of(dirs, "pids");
	if (!d)
		d = dir_of(dirs, "freezer");
	if (!d)
		return -ENOTSUP;
	char p[4200];
	snprintf(p, sizeof(p), "%s/cgroup.procs", d);
	FILE *f = fopen(p, "re");
	if (!f)
		return -errno;
	int n = 0;
	long x;
	while (n < max && fscanf(f, "%ld", &x) == 1)
		out[n++] = (pid_t)x;
	fclose(f);
	return n;
}

void oci_cgroup_destroy(json_t *dirs)
{
	size_t k;
	json_t *v;
	json_array_foreach(dirs, k, v)
	{
		/* a cgroup whose last task just died may take a moment to empty */
		for (int t = 0; t < 100 && rmdir(json_string_value(v)) < 0 && errno == EBUSY; t++)
			usleep(10000);
	}
}
