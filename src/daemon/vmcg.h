/* The cgroups of corrald's VM processes, on either cgroup hierarchy: v1 (a
 * hierarchy per controller under /sys/fs/cgroup, through the OCI runtime's
 * oci/cgroup.c) or v2 (one unified hierarchy, as Debian 12 mounts it at
 * /sys/fs/cgroup). Each VM gets corral/NAME under corrald's own cgroup.
 *
 * Contract:
 * - vmcg_detect picks the hierarchy for mode "auto", "v1" or "v2" and
 *   fills root (the v2 mount; "" for v1): 1 or 2, or -errno with one line
 *   in err (asked for v2 where none is mounted).
 * - vmcg_create makes (or, when they exist, updates) NAME's cgroups with
 *   res's limits (cpu_shares, cpu_quota/period, cpus, mem_limit,
 *   pids_limit) and moves pid into them; the directories go into dirs (a
 *   JSON list kept in run.json). A limit whose controller the hierarchy
 *   lacks is refused, naming the controller. 0 or -errno with err.
 * - vmcg_limit_hits: how often the memory limit was reached (v1
 *   memory.failcnt, v2 memory.events' max); 0 when unknown.
 * - vmcg_destroy removes the directories (the process has ended). */
#ifndef CORRAL_VMCG_H
#define CORRAL_VMCG_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

struct oci_resources;

#define VMCG_ROOT_MAX 256

int vmcg_detect(const char *mode, char *root, size_t rootlen, char *err, size_t errlen);
int vmcg_create(int version, const char *root, const char *name, const struct oci_resources *res, pid_t pid,
		json_t *dirs, char *err, size_t errlen);
unsigned long long vmcg_limit_hits(json_t *dirs);
void vmcg_destroy(json_t *dirs);

#endif
