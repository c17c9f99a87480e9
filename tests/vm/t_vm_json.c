/* A VM's configuration as JSON: configurations survive a round trip
 * (config -> JSON -> config -> the same JSON, field by field), absent keys
 * keep the defaults, and malformed or hostile texts are refused with one
 * sentence that names the problem. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testhelp.h"

#include "vm/vm.h"

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void check_same(const struct vm_config *a, const struct vm_config *b)
{
	CHECK(same_str(a->kernel, b->kernel));
	CHECK(same_str(a->initrd, b->initrd));
	CHECK(same_str(a->cmdline, b->cmdline));
	CHECK(same_str(a->flat, b->flat));
	CHECK(same_str(a->serial_path, b->serial_path));
	CHECK(same_str(a->guest_dir, b->guest_dir));
	CHECK(same_str(a->kernel_cache, b->kernel_cache));
	CHECK_EQ_U64(a->mem, b->mem);
	CHECK_EQ_U64(a->cpus, b->cpus);
	CHECK_EQ_U64(a->engine, b->engine);
	CHECK_EQ_U64(a->cpu_model, b->cpu_model);
	CHECK_EQ_U64(a->ndisks, b->ndisks);
	for (unsigned k = 0; k < a->ndisks && k < b->ndisks; k++) {
		CHECK(same_str(a->disk[k].path, b->disk[k].path));
		CHECK(same_str(a->disk[k].serial, b->disk[k].serial));
		CHECK_EQ_U64(a->disk[k].format, b->disk[k].format);
		CHECK_EQ_U64(a->disk[k].cache, b->disk[k].cache);
		CHECK_EQ_U64(a->disk[k].readonly, b->disk[k].readonly);
	}
	CHECK_EQ_U64(a->nnets, b->nnets);
	for (unsigned k = 0; k < a->nnets && k < b->nnets; k++)
		CHECK(same_str(a->net[k], b->net[k]));
	CHECK_EQ_U64(a->rng, b->rng);
	CHECK_EQ_U64(a->hvc, b->hvc);
	CHECK_EQ_U64(a->no_reboot, b->no_reboot);
	CHECK_EQ_U64(a->realtime_idle, b->realtime_idle);
	CHECK_EQ_U64(a->ps_per_insn, b->ps_per_insn);
	CHECK_EQ_U64(a->cpu_opts.jit, b->cpu_opts.jit);
	CHECK_EQ_U64(a->cpu_opts.jit_hot, b->cpu_opts.jit_hot);
	CHECK_EQ_U64(a->cpu_opts.jit_stats, b->cpu_opts.jit_stats);
	CHECK_EQ_U64(a->cpu_opts.jit_perfmap, b->cpu_opts.jit_perfmap);
	CHECK_EQ_U64(a->cpu_opts.trace, b->cpu_opts.trace);
	CHECK_EQ_U64(a->balloon.on, b->balloon.on);
	CHECK_EQ_U64(a->balloon.amount_mib, b->balloon.amount_mib);
	CHECK_EQ_U64(a->balloon.deflate_on_oom, b->balloon.deflate_on_oom);
	CHECK_EQ_U64(a->balloon.stats_s, b->balloon.stats_s);
	CHECK_EQ_U64(a->balloon.free_page_reporting, b->balloon.free_page_reporting);
	CHECK_EQ_U64(a->debug_exit.on, b->debug_exit.on);
	if (a->debug_exit.on && b->debug_exit.on) {
		CHECK_EQ_U64(a->debug_exit.iobase, b->debug_exit.iobase);
		CHECK_EQ_U64(a->debug_exit.iosize, b->debug_exit.iosize);
	}
}

/* c -> JSON -> c2 -> JSON again: both texts and both configs agree. */
static void roundtrip(const struct vm_config *c)
{
	char err[256] = "";
	char *t1 = vm_config_to_json(c);
	CHECK(t1 != NULL);
	if (!t1)
		return;
	struct vm_config c2;
	void *strs = NULL;
	int r = vm_config_from_json(t1, strlen(t1), &c2, &strs, err, sizeof(err));
	CHECK(r == 0);
	if (r) {
		fprintf(stderr, "  %s\n  in %s\n", err, t1);
		free(t1);
		return;
	}
	check_same(c, &c2);
	char *t2 = vm_config_to_json(&c2);
	CHECK(t2 && !strcmp(t1, t2));
	free(t1);
	free(t2);
	free(strs);
}

static void test_roundtrip(void)
{
	struct vm_config c;
	vm_config_init(&c);
	roundtrip(&c); /* the defaults */

	c.kernel = "/boot/vmlinuz";
	c.initrd = "/boot/initrd \"quoted\" \\ and ünïcode";
	c.cmdline = "console=ttyS0 quiet -- echo hi";
	c.mem = 2ull << 30;
	c.cpus = 4;
	c.engine = VM_ENGINE_KVM;
	c.cpu_model = CPU_MODEL_HOST;
	c.disk[0] = (struct vm_disk){.path = "a.img", .format = BLK_FMT_RAW, .readonly = 1, .serial = "disk-a"};
	c.disk[1] = (struct vm_disk){.path = "b.qcow2", .format = BLK_FMT_QCOW2, .cache = BLK_CACHE_NONE};
	c.ndisks = 2;
	c.net[0] = "user,hostfwd=tcp::2222-:22";
	c.net[1] = "tap,ifname=tap0";
	c.nnets = 2;
	c.rng = c.hvc = c.no_reboot = c.realtime_idle = 1;
	c.serial_path = "/tmp/serial.log";
	c.guest_dir = "/var/lib/corral/guest";
	c.kernel_cache = "/var/cache/corral";
	c.ps_per_insn = 0;
	c.cpu_opts = (struct cpu_opts){.jit = 0, .jit_hot = 3, .jit_stats = 1, .jit_perfmap = 1, .trace = 1};
	c.balloon = (struct vm_balloon){
		.on = 1, .amount_mib = 64, .deflate_on_oom = 1, .stats_s = 5, .free_page_reporting = 1};
	c.debug_exit.on = 1;
	c.debug_exit.iobase = 0xf4;
	c.debug_exit.iosize = 4;
	roundtrip(&c);

	vm_config_init(&c);
	c.flat = "guest.bin";
	c.mem = VM_MEM_MIN;
	c.cpus = 64;
	c.engine = VM_ENGINE_EMU;
	for (unsigned k = 0; k < VM_MAX_DISKS; k++)
		c.disk[k] = (struct vm_disk){.path = "d.img", .serial = "12345678901234567890"};
	c.ndisks = VM_MAX_DISKS;
	roundtrip(&c);
}

/* Absent keys are the defaults; what is given is taken. */
static void test_defaults(void)
{
	struct vm_config c, d;
	void *strs = NULL;
	char err[256];
	const char *t = "{\"flat\": \"g.bin\", \"cpus\": 2, \"disks\": [{\"path\": \"x.img\"}]}";
	CHECK(vm_config_from_json(t, strlen(t), &c, &strs, err, sizeof(err)) == 0);
	vm_config_init(&d);
	d.flat = "g.bin";
	d.cpus = 2;
	d.disk[0] = (struct vm_disk){.path = "x.img", .format = BLK_FMT_PROBE};
	d.ndisks = 1;
	check_same(&c, &d);
	CHECK_EQ_U64(c.serial_fd, -1);
	free(strs);
}

static void expect_error(const char *text, const char *want)
{
	struct vm_config c;
	void *strs = (void *)1;
	char err[512] = "";
	int r = vm_config_from_json(text, strlen(text), &c, &strs, err, sizeof(err));
	CHECK_EQ_U64(r, -EINVAL);
	CHECK(strs == NULL);
	CHECK(strchr(err, '\n') == NULL);
	CHECK(strstr(err, want) != NULL);
	if (!strstr(err, want))
		fprintf(stderr, "  for %s\n  got '%s', want '%s'\n", text, err, want);
	/* a refused text leaves the defaults, not half a configuration */
	CHECK_EQ_U64(c.cpus, 1);
	CHECK(c.kernel == NULL);
}

static void test_errors(void)
{
	expect_error("{\"kernel\": \"k\", \"colour\": \"red\"}", "unknown key 'colour' (known: kernel,");
	expect_error("{\"disks\": [{\"path\": \"a\", \"speed\": 1}]}", "unknown key 'disks[0].speed'");
	expect_error("{\"cpu\": {\"jit\": true, \"turbo\": true}}", "unknown key 'cpu.turbo'");
	expect_error("{\"debug_exit\": {\"port\": 1}}", "unknown key 'debug_exit.port' (known: iobase, iosize)");
	expect_error("{\"debug_exit\": {\"iosize\": 0}}", "'debug_exit.iosize' is 0: must be from 1 to 256");
	expect_error("{\"debug_exit\": {\"iobase\": 65534, \"iosize\": 4}}", "run past 0xffff");
	expect_error("{\"debug_exit\": true}", "'debug_exit' must be an object");
	expect_error("{\"balloon\": {\"amount\": 1}}", "unknown key 'balloon.amount'");
	expect_error("{\"balloon\": {\"amount_mib\": -1}}", "'amount_mib' must be an integer from 0");
	expect_error("{\"balloon\": {\"stats_polling_interval_s\": 86401}}", "from 0 to 86400");
	expect_error("{\"balloon\": {\"deflate_on_oom\": 1}}", "'deflate_on_oom' must be true or false");
	expect_error("{\"balloon\": []}", "'balloon' must be an object");
	expect_error("{\"cpus\": 0}", "'cpus' is 0: must be from 1 to 64");
	expect_error("{\"cpus\": 65}", "'cpus' is 65: must be from 1 to 64");
	expect_error("{\"cpus\": -1}", "'cpus' is -1: must be from 1 to 64");
	expect_error("{\"cpus\": 1.5}", "'cpus' must be an integer");
	expect_error("{\"cpus\": \"2\"}", "'cpus' must be an integer");
	expect_error("{\"mem\": 1024}", "'mem' is 1024: must be from 16777216 to 1099511627776");
	expect_error("{\"mem\": 99999999999999999999}", "not valid JSON");
	expect_error("{\"mem\": 16777217}", "'mem' is 16777217: must be a multiple of 4096");
	expect_error("{\"engine\": \"qemu\"}", "'engine' must be one of auto, emu, kvm");
	expect_error("{\"cpu_model\": 1}", "'cpu_model' must be one of corral, host");
	expect_error("{\"rng\": 1}", "'rng' must be true or false");
	expect_error("{\"kernel\": \"\"}", "'kernel' must be a non-empty string");
	expect_error("{\"kernel\": 7}", "'kernel' must be a string");
	expect_error("{\"kernel\": \"a\", \"kernel\": \"b\"}", "not valid JSON");
	expect_error("{\"kernel\": \"a\"", "not valid JSON at line 1");
	expect_error("[1, 2]", "the configuration must be a JSON object");
	expect_error("{\"disks\": {}}", "'disks' must be an array of at most 16 disks");
	expect_error("{\"disks\": [{\"readonly\": true}]}", "'disks[0]' needs a 'path'");
	expect_error("{\"disks\": [{\"path\": \"a\", \"serial\": \"123456789012345678901\"}]}",
		     "'disks[0].serial' must be at most 20 characters");
	expect_error("{\"disks\": [{\"path\": \"a\", \"format\": \"vmdk\"}]}",
		     "'disks[0].format' must be one of probe, raw, qcow2");
	expect_error("{\"nets\": [\"user\", \"user\", \"user\", \"user\", \"user\"]}",
		     "'nets' must be an array of at most 4 network specs");
	expect_error("{\"cpu\": {\"jit_hot\": 10000001}}", "'cpu.jit_hot' is 10000001: must be from 0 to 1000000");

	/* a path longer than any file name the host takes */
	size_t n = 5000;
	char *big = malloc(n + 32);
	CHECK(big != NULL);
	if (big) {
		strcpy(big, "{\"kernel\": \"");
		memset(big + strlen(big), 'a', n);
		strcpy(big + 12 + n, "\"}");
		expect_error(big, "'kernel' must be a non-empty string of at most");
		free(big);
	}
	/* the size cap comes before parsing */
	char *huge = malloc(VM_CONFIG_JSON_MAX + 2);
	CHECK(huge != NULL);
	if (huge) {
		memset(huge, ' ', VM_CONFIG_JSON_MAX + 1);
		huge[0] = '{';
		huge[VM_CONFIG_JSON_MAX] = '}';
		huge[VM_CONFIG_JSON_MAX + 1] = 0;
		expect_error(huge, "at most 65536 are accepted");
		free(huge);
	}
}

int main(void)
{
	RUN(test_roundtrip);
	RUN(test_defaults);
	RUN(test_errors);
	return test_report();
}
