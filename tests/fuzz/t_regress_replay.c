/* Replays every replay-file fuzz seed and saved crash input through the
 * fuzz entry, so that the normal (and the ASan) test build covers them. */
#include "fuzz/fuzz_replay.h"
#include "fuzz/replay.h"

int main(void)
{
	test_cur_name = "t_regress_replay";
	test_cur_failed = 0;
	replay_dir("t_regress_replay", "seeds/replay", 1, fuzz_replay_one);
	replay_dir("t_regress_replay", "regress/replay", 0, fuzz_replay_one);
	return test_report();
}
