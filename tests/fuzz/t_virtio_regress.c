/* Replays the virtio fuzz seeds and every saved crash input through the
 * fuzz entries (fuzz_virtio.h), so that the normal and the ASan test builds
 * cover them. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_virtio.h"
#include "testhelp.h"

#define REGRESS_MAX_INPUT (1u << 20)

static unsigned replay_dir(const char *root, const char *sub, int (*one)(const uint8_t *, size_t))
{
	static uint8_t buf[REGRESS_MAX_INPUT];
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/%s", root, sub);
	DIR *d = opendir(dir);
	unsigned n = 0;
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "README"))
			continue;
		char path[8192];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		one(buf, len);
		n++;
	}
	closedir(d);
	printf("t_virtio_regress: %s: %u inputs replayed\n", sub, n);
	return n;
}

int main(void)
{
	const char *root = getenv("CORRAL_SRC");
	if (!root)
		root = ".";
	test_cur_name = "t_virtio_regress";
	test_cur_failed = 0;
	unsigned q = replay_dir(root, "seeds/virtq", fuzz_virtq_one);
	unsigned b = replay_dir(root, "seeds/blk", fuzz_blk_one);
	unsigned nt = replay_dir(root, "seeds/net", fuzz_net_one);
	unsigned r = replay_dir(root, "regress/virtq", fuzz_virtq_one) + replay_dir(root, "regress/blk", fuzz_blk_one) +
		     replay_dir(root, "regress/net", fuzz_net_one);
	if (q == 0 || b == 0 || nt == 0) {
		printf("t_virtio_regress: seeds missing under %s/tests/fuzz/seeds\n", root);
		test_failed++;
	}
	test_passed += (int)(q + b + nt + r);
	return test_report();
}
