/* The VM's balloon (vm.h): its JSON (Firecracker's balloon object) and the
 * calls that change it while the VM runs; the device is
 * src/virtio/balloon.c. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "virtio/virtio.h"
#include "vm/vm_internal.h"

int vm_balloon_from_json(json_t *v, int full, struct vm_balloon *b, char *err, size_t errlen)
{
	const char *key;
	json_t *x;
	int seen_amount = 0, seen_oom = 0;
	if (!json_is_object(v)) {
		snprintf(err, errlen, "'balloon' must be an object with amount_mib and deflate_on_oom");
		return -EINVAL;
	}
	*b = (struct vm_balloon){.on = 1};
	json_object_foreach(v, key, x)
	{
		if (!strcmp(key, "amount_mib")) {
			if (!json_is_integer(x) || json_integer_value(x) < 0 ||
			    json_integer_value(x) > (json_int_t)(VM_MEM_MAX >> 20)) {
				snprintf(err, errlen, "'amount_mib' must be an integer from 0 to %llu",
					 (unsigned long long)(VM_MEM_MAX >> 20));
				return -EINVAL;
			}
			b->amount_mib = (uint32_t)json_integer_value(x);
			seen_amount = 1;
		} else if (!strcmp(key, "stats_polling_interval_s")) {
			if (!json_is_integer(x) || json_integer_value(x) < 0 ||
			    json_integer_value(x) > VM_BALLOON_STATS_MAX) {
				snprintf(err, errlen, "'stats_polling_interval_s' must be an integer from 0 to %d",
					 VM_BALLOON_STATS_MAX);
				return -EINVAL;
			}
			b->stats_s = (unsigned)json_integer_value(x);
		} else if (!strcmp(key, "deflate_on_oom") || !strcmp(key, "free_page_reporting")) {
			if (!json_is_boolean(x)) {
				snprintf(err, errlen, "'%s' must be true or false", key);
				return -EINVAL;
			}
			if (key[0] == 'd') {
				b->deflate_on_oom = json_is_true(x);
				seen_oom = 1;
			} else {
				b->free_page_reporting = json_is_true(x);
			}
		} else {
			snprintf(err, errlen,
				 "unknown key 'balloon.%.64s' (known: amount_mib, deflate_on_oom, "
				 "stats_polling_interval_s, free_page_reporting)",
				 key);
			return -EINVAL;
		}
	}
	if (full && (!seen_amount || !seen_oom)) {
		snprintf(err, errlen, "'amount_mib' and 'deflate_on_oom' are required");
		return -EINVAL;
	}
	return 0;
}

json_t *vm_balloon_to_json(const struct vm_balloon *b)
{
	return json_pack("{s:I,s:b,s:I,s:b}", "amount_mib", (json_int_t)b->amount_mib, "deflate_on_oom",
			 b->deflate_on_oom, "stats_polling_interval_s", (json_int_t)b->stats_s, "free_page_reporting",
			 b->free_page_reporting);
}

int vm_balloon_set(struct vm *vm, uint32_t amount_mib)
{
	if (!vm->cfg.balloon.on)
		return -ENODEV;
	if ((uint64_t)amount_mib << 20 > vm->cfg.mem)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	vm->cfg.balloon.amount_mib = amount_mib; /* snapshots and reboots keep it */
	if (vm->balloon)
		virtio_balloon_set_target(vm->balloon, amount_mib << 8);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vm_balloon_set_stats(struct vm *vm, unsigned stats_s)
{
	if (!vm->cfg.balloon.on)
		return -ENODEV;
	/* the statistics queue exists or not from the device's creation */
	if (!stats_s || !vm->cfg.balloon.stats_s || stats_s > VM_BALLOON_STATS_MAX)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	vm->cfg.balloon.stats_s = stats_s;
	if (vm->balloon)
		virtio_balloon_set_stats_interval(vm->balloon, stats_s);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vm_balloon_get(struct vm *vm, struct vm_balloon *b, struct balloon_info *bi)
{
	if (!vm->cfg.balloon.on)
		return -ENODEV;
	pthread_mutex_lock(&vm->lock);
	*b = vm->cfg.balloon;
	if (vm->balloon)
		virtio_balloon_get(vm->balloon, bi);
	else
		*bi = (struct balloon_info){.target_pages = b->amount_mib << 8, .stats_s = b->stats_s};
	pthread_mutex_unlock(&vm->lock);
	return 0;
}
