/* Replays the virtio fuzz seeds and every saved crash input through the fuzz
 * entries (fuzz_virtio.h), so that the normal and the ASan test builds
 * cover them. */
#include "fuzz/fuzz_virtio.h"
#include "fuzz/replay.h"

int main(void)
{
	test_cur_name = "t_virtio_regress";
	test_cur_failed = 0;
	replay_dir("t_virtio_regress", "seeds/virtq", 1, fuzz_virtq_one);
	replay_dir("t_virtio_regress", "seeds/blk", 1, fuzz_blk_one);
	replay_dir("t_virtio_regress", "seeds/net", 1, fuzz_net_one);
	replay_dir("t_virtio_regress", "regress/virtq", 0, fuzz_virtq_one);
	replay_dir("t_virtio_regress", "regress/blk", 0, fuzz_blk_one);
	replay_dir("t_virtio_regress", "regress/net", 0, fuzz_net_one);
	return test_report();
}
