/* Replays every CPU fuzz seed and every saved crash input through the fuzz
 * entry, so that the normal (and the ASan) test build covers them. */
#include "fuzz/fuzz_cpu.h"
#include "fuzz/replay.h"

int main(void)
{
	test_cur_name = "t_regress";
	test_cur_failed = 0;
	replay_dir("t_regress", "seeds/cpu", 1, fuzz_cpu_one);
	replay_dir("t_regress", "regress/cpu", 0, fuzz_cpu_one);
	return test_report();
}
