/* The kvm engine's part of live migration's dirty log (machine.h,
 * machine_dirty_*): KVM logs the guest's writes to RAM per memory slot
 * (KVM_MEM_LOG_DIRTY_PAGES); each collection reads and clears KVM's log
 * (KVM_GET_DIRTY_LOG, which write-protects the pages again) into the
 * machine's byte-per-page log, where the devices' writes already are. */
#if defined(__x86_64__)
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "engine/kvm_internal.h"
#include "machine/machine_impl.h"

/* The machine's RAM as KVM's memory slots: slot 0 the RAM below the
 * 32-bit hole, slot 1 the rest from 4 GiB. *first: the slot's first page
 * in the machine's log (its offset in m->ram). 0: no such slot. */
static int kvm_slot(const struct machine *m, unsigned slot, struct kvm_userspace_memory_region *r, uint64_t *first)
{
	memset(r, 0, sizeof(*r));
	r->slot = slot;
	if (slot == 0) {
		r->guest_phys_addr = 0;
		r->memory_size = m->low_size;
		r->userspace_addr = (uintptr_t)m->ram;
		*first = 0;
		return m->low_size != 0;
	}
	if (slot == 1 && m->mem_size > m->low_size) {
		r->guest_phys_addr = MEM_HIGH_START;
		r->memory_size = m->mem_size - m->low_size;
		r->userspace_addr = (uintptr_t)(m->ram + m->low_size);
		*first = m->low_size >> 12;
		return 1;
	}
	return 0;
}

int kvm_slots_set(struct kvm_eng *k, uint32_t flags)
{
	for (unsigned s = 0; s < KVM_RAM_SLOTS; s++) {
		struct kvm_userspace_memory_region r;
		uint64_t first;
		if (!kvm_slot(k->m, s, &r, &first))
			continue;
		r.flags = flags;
		if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return -errno;
	}
	return 0;
}

/* KVM's log of every slot, read and cleared, ORed into log. 0 or -errno
 * (then the caller counts every page as written: nothing may be missed). */
static int kvm_dirty_sync(struct kvm_eng *k, uint8_t *log)
{
	for (unsigned s = 0; s < KVM_RAM_SLOTS; s++) {
		struct kvm_userspace_memory_region r;
		uint64_t first;
		if (!kvm_slot(k->m, s, &r, &first))
			continue;
		uint64_t pages = r.memory_size >> 12;
		/* KVM writes whole longs: the bitmap's length rounds up to 64 */
		size_t words = (size_t)((pages + 63) / 64);
		if (words > k->dirty_words) {
			uint64_t *bm = realloc(k->dirty_bm, words * 8);
			if (!bm)
				return -ENOMEM;
			k->dirty_bm = bm;
			k->dirty_words = words;
		}
		memset(k->dirty_bm, 0, words * 8);
		struct kvm_dirty_log dl = {.slot = s, .dirty_bitmap = k->dirty_bm};
		if (ioctl(k->vm_fd, KVM_GET_DIRTY_LOG, &dl) < 0)
			return -errno;
		for (size_t w = 0; w < words; w++) {
			uint64_t b = k->dirty_bm[w];
			while (b) {
				uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(b);
				b &= b - 1;
				if (p < pages)
					__atomic_store_n(&log[first + p], 1, __ATOMIC_RELAXED);
			}
		}
	}
	return 0;
}

/* Every page counts as written: what a failed KVM log leaves to do, so
 * that a migration sends too much rather than too little. */
static void kvm_dirty_all(struct kvm_eng *k, uint8_t *log)
{
	memset(log, 1, k->m->mem_size >> 12);
}

/* The machine's hook (machine_set_dirty_hook), called with the vCPUs
 * out of KVM_RUN: log on (the first call turns KVM's logging on; later
 * ones bring what KVM logged since into log), or NULL: off. */
static void kvm_dirty_arm(void *opaque, uint8_t *log)
{
	struct kvm_eng *k = opaque;
	pthread_mutex_lock(&k->dirty_lock);
	if (!log) {
		if (k->dirty_on)
			(void)kvm_slots_set(k, 0);
		k->dirty_on = 0;
		k->dirty_broken = 0;
	} else if (!k->dirty_on) {
		int r = kvm_slots_set(k, KVM_MEM_LOG_DIRTY_PAGES);
		k->dirty_on = 1;
		if (r < 0) {
			k->dirty_broken = 1;
			kvm_dirty_all(k, log);
		}
	} else if (k->dirty_broken || kvm_dirty_sync(k, log) < 0) {
		k->dirty_broken = 1;
		kvm_dirty_all(k, log);
	}
	pthread_mutex_unlock(&k->dirty_lock);
}

void kvm_dirty_attach(struct kvm_eng *k)
{
	pthread_mutex_init(&k->dirty_lock, NULL);
	machine_set_dirty_hook(k->m, kvm_dirty_arm, k);
}

void kvm_dirty_detach(struct kvm_eng *k)
{
	struct machine *m = k->m;
	/* the pages KVM logged since the last collection go to the machine's
	 * log, which outlives this engine (a hand-over mid-migration) */
	pthread_mutex_lock(&k->dirty_lock);
	uint8_t *log = m->dirty;
	if (log && k->dirty_on && (k->dirty_broken || kvm_dirty_sync(k, log) < 0))
		kvm_dirty_all(k, log);
	pthread_mutex_unlock(&k->dirty_lock);
	machine_set_dirty_hook(m, NULL, NULL);
	pthread_mutex_destroy(&k->dirty_lock);
	free(k->dirty_bm);
	k->dirty_bm = NULL;
	k->dirty_words = 0;
}
#endif
