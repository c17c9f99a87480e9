/* Disk and network rate limits of a running VM (vm.h): the limiters live
 * with the backends, so they outlive the devices a guest reboot remakes. */
#include <errno.h>

#include "backend/net.h"
#include "vm/vm_internal.h"

int vm_set_disk_rate(struct vm *vm, unsigned k, const struct rate_cfg *c)
{
	if (k >= vm->cfg.ndisks || !vm->rates_on)
		return -ENOENT;
	rate_limit_set(&vm->blkrate[k], c);
	pthread_mutex_lock(&vm->lock);
	vm->cfg.disk[k].rate = *c; /* snapshots and migration carry it on */
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vm_get_disk_rate(struct vm *vm, unsigned k, struct rate_cfg *c)
{
	if (k >= vm->cfg.ndisks || !vm->rates_on)
		return -ENOENT;
	rate_limit_get(&vm->blkrate[k], c);
	return 0;
}

int vm_set_net_rate(struct vm *vm, unsigned k, const struct rate_cfg *tx, const struct rate_cfg *rx)
{
	if (k >= vm->cfg.nnets || !vm->netbe[k])
		return -ENOENT;
	net_set_rate(vm->netbe[k], tx, rx);
	return 0;
}

int vm_get_net_rate(struct vm *vm, unsigned k, struct rate_cfg *tx, struct rate_cfg *rx)
{
	if (k >= vm->cfg.nnets || !vm->netbe[k])
		return -ENOENT;
	net_get_rate(vm->netbe[k], tx, rx);
	return 0;
}
