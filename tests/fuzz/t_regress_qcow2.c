/* Replays every qcow2 fuzz seed and every saved crash input through the fuzz
 * entry, so that the normal (and the ASan) test build covers them. */
#include <dirent.h>

#include "fuzz/fuzz_qcow2.h"
#include "testhelp.h"

#define REGRESS_MAX_INPUT (4u << 20)

static unsigned replay_dir(const char *dir, int required)
{
	DIR *d = opendir(dir);
	unsigned n = 0;
	if (!d) {
		printf("t_regress_qcow2: cannot open %s\n", dir);
		if (required)
			test_failed++;
		return 0;
	}
	static uint8_t buf[REGRESS_MAX_INPUT];
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "README"))
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		fuzz_qcow2_one(buf, len);
		n++;
	}
	closedir(d);
	printf("t_regress_qcow2: %s: %u inputs replayed\n", dir, n);
	return n;
}

int main(void)
{
	const char *root = getenv("CORRAL_SRC");
	char seeds[4096], regress[4096];
	snprintf(seeds, sizeof(seeds), "%s/tests/fuzz/seeds/qcow2", root ? root : ".");
	snprintf(regress, sizeof(regress), "%s/tests/fuzz/regress/qcow2", root ? root : ".");
	test_cur_name = "t_regress_qcow2";
	test_cur_failed = 0;
	unsigned s = replay_dir(seeds, 1);
	unsigned r = replay_dir(regress, 0);
	if (s == 0) {
		printf("t_regress_qcow2: no seeds found\n");
		test_failed++;
	}
	test_passed += (int)(s + r);
	return test_report();
}
