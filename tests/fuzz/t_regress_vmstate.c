/* Replays the snapshot loader's fuzz seeds (real snapshots of tiny guests,
 * and damaged copies of them) and saved crash inputs through the fuzz
 * entry, so that the normal (and the ASan) test build covers them. */
#include "fuzz/fuzz_vmstate.h"
#include "fuzz/replay.h"

int main(void)
{
	test_cur_name = "t_regress_vmstate";
	test_cur_failed = 0;
	replay_dir("t_regress_vmstate", "seeds/vmstate", 1, fuzz_vmstate_one);
	replay_dir("t_regress_vmstate", "regress/vmstate", 0, fuzz_vmstate_one);
	return test_report();
}
