/* Replays every qcow2 fuzz seed and every saved crash input through the fuzz
 * entry, so that the normal (and the ASan) test build covers them. */
#include "fuzz/fuzz_qcow2.h"
#include "fuzz/replay.h"

int main(void)
{
	test_cur_name = "t_regress_qcow2";
	test_cur_failed = 0;
	replay_dir("t_regress_qcow2", "seeds/qcow2", 1, fuzz_qcow2_one);
	replay_dir("t_regress_qcow2", "regress/qcow2", 0, fuzz_qcow2_one);
	return test_report();
}
