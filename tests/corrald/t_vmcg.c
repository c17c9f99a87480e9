/* corrald's cgroup v2 code (src/daemon/vmcg.c) against a fake hierarchy
 * in a temporary directory: the files a VM's limits write, the controllers
 * enabled above it, refusals when a controller is missing, the shares to
 * weight conversion and the memory limit's events. (tests/corrald/
 * t_isolation.sh runs it on the machine's real v2 hierarchy.) */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/daemon/vmcg.c"
#include "../testhelp.h"

static char base[64];

static void put(const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", base, rel);
	FILE *f = fopen(p, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static const char *get(const char *rel)
{
	static char buf[256];
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", base, rel);
	buf[0] = 0;
	FILE *f = fopen(p, "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = 0;
		fclose(f);
	}
	return buf;
}

/* A hierarchy whose root offers controllers, with the files the kernel
 * would create in corral/ and corral/vm1/ (a plain directory makes none). */
static void fake(const char *controllers)
{
	static const char *const files[] = {"cgroup.procs", "cpu.weight", "cpu.max",	  "cpuset.cpus",
					    "memory.max",   "pids.max",	  "memory.events"};
	char p[256];
	snprintf(base, sizeof(base), "/tmp/t_vmcg.XXXXXX");
	if (!mkdtemp(base))
		abort();
	put("cgroup.controllers", controllers);
	put("cgroup.subtree_control", "");
	snprintf(p, sizeof(p), "%s/corral", base);
	mkdir(p, 0755);
	put("corral/cgroup.subtree_control", "");
	snprintf(p, sizeof(p), "%s/corral/vm1", base);
	mkdir(p, 0755);
	for (unsigned k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
		snprintf(p, sizeof(p), "corral/vm1/%s", files[k]);
		put(p, "");
	}
}

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd) != 0)
		fprintf(stderr, "  (cannot remove %s)\n", base);
}

static void test_limits_written(void)
{
	fake("cpuset cpu io memory hugetlb pids rdma misc\n");
	struct oci_resources res = {.cpu_shares = 1024,
				    .cpu_quota = 50000,
				    .cpu_period = 100000,
				    .cpus = "0-1",
				    .mem_limit = 268435456,
				    .has_mem_limit = 1,
				    .pids_limit = 64,
				    .has_pids = 1};
	json_t *dirs = json_array();
	char err[512] = "";
	int r = v2_create(base, "vm1", &res, 4321, dirs, err, sizeof(err));
	CHECK(r == 0);
	if (r)
		fprintf(stderr, "  %s\n", err);
	CHECK(!strcmp(get("corral/vm1/cpu.weight"), "39"));
	CHECK(!strcmp(get("corral/vm1/cpu.max"), "50000 100000"));
	CHECK(!strcmp(get("corral/vm1/cpuset.cpus"), "0-1"));
	CHECK(!strcmp(get("corral/vm1/memory.max"), "268435456"));
	CHECK(!strcmp(get("corral/vm1/pids.max"), "64"));
	CHECK(!strcmp(get("corral/vm1/cgroup.procs"), "4321"));
	/* the last controller enabled at both levels above (each write replaces
	 * the fake file's head) */
	CHECK(!strncmp(get("cgroup.subtree_control"), "+pids", 5));
	CHECK(!strncmp(get("corral/cgroup.subtree_control"), "+pids", 5));
	CHECK(json_array_size(dirs) == 1);
	CHECK(json_array_size(dirs) == 1 && strstr(json_string_value(json_array_get(dirs, 0)), "/corral/vm1"));
	/* the memory limit's events */
	put("corral/vm1/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
	CHECK_EQ_U64(vmcg_limit_hits(dirs), 3);
	json_decref(dirs);
	cleanup();
}

static void test_only_what_is_asked(void)
{
	/* a cpu_max alone needs the cpu controller alone */
	fake("cpu\n");
	struct oci_resources res = {.cpu_quota = 25000, .cpu_period = 100000};
	json_t *dirs = json_array();
	char err[512] = "";
	CHECK(v2_create(base, "vm1", &res, 77, dirs, err, sizeof(err)) == 0);
	CHECK(!strcmp(get("corral/vm1/cpu.max"), "25000 100000"));
	CHECK(!strcmp(get("corral/vm1/memory.max"), ""));
	CHECK(!strcmp(get("cgroup.subtree_control"), "+cpu"));
	CHECK(!strcmp(get("corral/vm1/cgroup.procs"), "77"));
	json_decref(dirs);
	cleanup();
}

static void test_missing_controller(void)
{
	/* "cpuset" is not "cpu"; no memory at all */
	static const struct {
		const char *have;
		struct oci_resources res;
		const char *named;
	} cases[] = {
		{"cpuset memory pids\n", {.cpu_shares = 512}, "no cpu controller"},
		{"cpu cpuset pids\n", {.mem_limit = 1 << 26, .has_mem_limit = 1}, "no memory controller"},
		{"", {.pids_limit = 10, .has_pids = 1}, "(it has: none)"},
	};
	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		fake(cases[k].have);
		json_t *dirs = json_array();
		char err[512] = "";
		int r = v2_create(base, "vm1", &cases[k].res, 99, dirs, err, sizeof(err));
		CHECK(r == -ENOTSUP);
		CHECK(strstr(err, cases[k].named) != NULL);
		CHECK(strchr(err, '\n') == NULL);
		if (!strstr(err, cases[k].named))
			fprintf(stderr, "  case %u: '%s'\n", k, err);
		/* nothing joined, nothing enabled */
		CHECK(!strcmp(get("corral/vm1/cgroup.procs"), ""));
		CHECK(!strcmp(get("cgroup.subtree_control"), ""));
		CHECK(json_array_size(dirs) == 0);
		json_decref(dirs);
		cleanup();
	}
}

static void test_no_hierarchy(void)
{
	/* a directory that is no cgroup: its controllers cannot be read */
	snprintf(base, sizeof(base), "/tmp/t_vmcg.XXXXXX");
	if (!mkdtemp(base))
		abort();
	struct oci_resources res = {.cpu_shares = 100};
	json_t *dirs = json_array();
	char err[512] = "";
	CHECK(v2_create(base, "vm1", &res, 1, dirs, err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "cgroup.controllers") != NULL);
	json_decref(dirs);
	cleanup();
}

static void test_weight(void)
{
	CHECK_EQ_U64(shares_to_weight(2), 1);
	CHECK_EQ_U64(shares_to_weight(262144), 10000);
	CHECK_EQ_U64(shares_to_weight(1024), 39);
	CHECK_EQ_U64(shares_to_weight(0), 1);
	CHECK_EQ_U64(shares_to_weight(1u << 30), 10000);
}

static void test_words(void)
{
	CHECK(has_word("cpuset cpu io", "cpu"));
	CHECK(!has_word("cpuset io", "cpu"));
	CHECK(!has_word("misc hugetlb", "pids"));
	CHECK(has_word("memory\n", "memory"));
	CHECK(!has_word("", "memory"));
}

static void test_detect(void)
{
	char root[VMCG_ROOT_MAX], err[256];
	CHECK(vmcg_detect("v1", root, sizeof(root), err, sizeof(err)) == 1 && root[0] == 0);
	int v = vmcg_detect("auto", root, sizeof(root), err, sizeof(err));
	CHECK(v == (is_cgroup2("/sys/fs/cgroup") ? 2 : 1));
	v = vmcg_detect("v2", root, sizeof(root), err, sizeof(err));
	if (is_cgroup2("/sys/fs/cgroup") || is_cgroup2("/sys/fs/cgroup/unified"))
		CHECK(v == 2 && is_cgroup2(root));
	else
		CHECK(v == -EINVAL && strstr(err, "no cgroup2 hierarchy"));
}

int main(void)
{
	RUN(test_limits_written);
	RUN(test_only_what_is_asked);
	RUN(test_missing_controller);
	RUN(test_no_hierarchy);
	RUN(test_weight);
	RUN(test_words);
	RUN(test_detect);
	return test_report();
}
