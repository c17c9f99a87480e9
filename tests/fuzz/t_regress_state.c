/* Replays every state-stream fuzz seed and saved crash input through the
 * fuzz entry, so that the normal (and the ASan) test build covers them. */
#include "fuzz/fuzz_state.h"
#include "fuzz/replay.h"

int main(void)
{
	test_cur_name = "t_regress_state";
	test_cur_failed = 0;
	replay_dir("t_regress_state", "seeds/state", 1, fuzz_state_one);
	replay_dir("t_regress_state", "regress/state", 0, fuzz_state_one);
	return test_report();
}
