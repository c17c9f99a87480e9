/* Replays fuzz inputs (seeds, saved crash inputs) through a fuzz entry, so
 * that the normal and the ASan test builds cover them: the t_regress*
 * programs. Inputs live in $CORRAL_SRC/tests/fuzz/<sub>/ (CORRAL_SRC
 * defaults to "."); inputs larger than REPLAY_MAX_INPUT are cut there. */
#ifndef CORRAL_FUZZ_REPLAY_H
#define CORRAL_FUZZ_REPLAY_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testhelp.h"

#define REPLAY_MAX_INPUT (4u << 20)

/* Runs one(input) for every file in the folder and counts each as a passed
 * check; a required folder that is missing or empty is a failure. */
static inline unsigned replay_dir(const char *name, const char *sub, int required, int (*one)(const uint8_t *, size_t))
{
	static uint8_t buf[REPLAY_MAX_INPUT];
	const char *root = getenv("CORRAL_SRC");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/%s", root ? root : ".", sub);
	DIR *d = opendir(dir);
	unsigned n = 0;
	if (d) {
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
	}
	printf("%s: %s: %u inputs replayed\n", name, sub, n);
	if (required && n == 0) {
		printf("%s: no inputs in %s\n", name, dir);
		test_failed++;
	}
	test_passed += (int)n;
	return n;
}

#endif
