/* Replays the migration stream parser's fuzz seeds (a real stream of the
 * tick guest and damaged copies of it) and saved crash inputs through the
 * fuzz entry, so that the normal (and the ASan) test build covers them;
 * and checks that the real stream is taken and each damaged one refused
 * for its own reason. */
#include <fcntl.h>
#include <stdio.h>

#include "fuzz/fuzz_migrate.h"
#include "fuzz/replay.h"

/* The parser's verdict on seed name: its return, and its message in err. */
static int verdict(const char *name, char *err, size_t errlen)
{
	const char *root = getenv("CORRAL_SRC");
	char path[4096];
	snprintf(path, sizeof(path), "%s/tests/fuzz/seeds/migrate/%s", root ? root : ".", name);
	int fd = open(path, O_RDONLY | O_CLOEXEC), mem = -1;
	void *state = NULL;
	size_t len;
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %.200s", name);
		return -1000;
	}
	int r = migrate_recv_stream(fd, -1, FUZZ_MIGRATE_MEM, &mem, &state, &len, err, errlen);
	close(fd);
	if (mem >= 0)
		close(mem);
	free(state);
	return r;
}

static void test_verdicts(void)
{
	static const struct {
		const char *seed, *why; /* why NULL: taken */
	} cases[] = {
		{"tick-16m", NULL},
		{"truncated-header", "no migration stream"},
		{"truncated-mid", "broke off"},
		{"flipped-page-index", "beyond the RAM"}, /* checked before its data is read */
		{"flipped-state", "checksum mismatch"},
		{"version-9", "checksum mismatch"}, /* the header's CRC sees it first */
		{"huge-ram", "checksum mismatch"},
		{"unknown-record", "checksum mismatch"},
		{"too-many-pages", "checksum mismatch"},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char err[512] = "";
		int r = verdict(cases[k].seed, err, sizeof(err));
		if (cases[k].why ? r == 0 || !strstr(err, cases[k].why) : r != 0) {
			printf("FAIL %s: got %d '%s', want %s\n", cases[k].seed, r, err,
			       cases[k].why ? cases[k].why : "taken");
			test_failed++;
		} else {
			test_passed++;
		}
	}
}

int main(void)
{
	test_cur_name = "t_regress_migrate";
	test_cur_failed = 0;
	test_verdicts();
	replay_dir("t_regress_migrate", "seeds/migrate", 1, fuzz_migrate_one);
	replay_dir("t_regress_migrate", "regress/migrate", 0, fuzz_migrate_one);
	return test_report();
}
