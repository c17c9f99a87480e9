/* Replays every checkpoint fuzz seed and saved crash input through the
 * fuzz entry, so that the normal (and the ASan) test build covers them. */
#include "fuzz/fuzz_ckpt.h"
#include "fuzz/replay.h"

int main(void)
{
	test_cur_name = "t_regress_ckpt";
	test_cur_failed = 0;
	replay_dir("t_regress_ckpt", "seeds/ckpt", 1, fuzz_ckpt_one);
	replay_dir("t_regress_ckpt", "regress/ckpt", 0, fuzz_ckpt_one);
	return test_report();
}
