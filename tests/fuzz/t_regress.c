/* Replays every CPU fuzz seed and every saved crash input through the fuzz
 * entry, so that the normal (and the ASan) test build covers them. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_cpu.h"
#include "testhelp.h"

#define REGRESS_MAX_INPUT (1u << 20)

static unsigned replay_dir(const char *dir, int required)
{
	DIR *d = opendir(dir);
	unsigned n = 0;
	if (!d) {
		printf("t_regress: cannot open %s\n", dir);
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
		fuzz_cpu_one(buf, len);
		n++;
	}
	closedir(d);
	printf("t_regress: %s: %u inputs replayed\n", dir, n);
	return n;
}

int main(void)
{
	const char *root = getenv("CORRAL_SRC");
	char seeds[4096], regress[4096];
	snprintf(seeds, sizeof(seeds), "%s/tests/fuzz/seeds/cpu", root ? root : ".");
	snprintf(regress, sizeof(regress), "%s/tests/fuzz/regress/cpu", root ? root : ".");
	test_cur_name = "t_regress";
	test_cur_failed = 0;
	unsigned s = replay_dir(seeds, 1);
	unsigned r = replay_dir(regress, 0);
	if (s == 0) {
		printf("t_regress: no seeds found\n");
		test_failed++;
	}
	test_passed += (int)(s + r);
	return test_report();
}
