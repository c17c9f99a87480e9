/* What makes each VM restored from one snapshot a machine of its own: a
 * new VM generation ID (the guest's vmgenid driver then reseeds its random
 * number generator, so clones never share the keys and nonces they make
 * next) and a fresh MAC address per NIC. Disks: snapdisk.c.
 * docs/architecture.md ("Clones"). */
#include <string.h>

#include "boot/boot.h"
#include "machine/machine_impl.h"
#include "machine/replay.h"
#include "virtio/virtio.h"
#include "vm/vm_internal.h"

void vm_new_generation(struct vm *vm)
{
	struct machine *m = vm->m;
	/* only a guest booted on corral's ACPI tables with the device has the
	 * ID there; elsewhere those bytes may be a flat guest's own */
	if (!m || vm->cfg.flat || !acpi_has_vmgenid(m))
		return;
	uint8_t *id = gpa_ptr(m, BOOT_VMGENID_ADDR, BOOT_VMGENID_LEN);
	uint8_t fresh[BOOT_VMGENID_LEN];
	/* through the log: a recording of the restored run replays it */
	if (!id || replay_random(m, fresh, sizeof(fresh)) < 0)
		return;
	memcpy(id, fresh, sizeof(fresh)); /* a private page of the memory file now */
	/* Linux's _E00 handler reads the ID again and mixes it in
	 * (add_vmfork_randomness), which reseeds the RNG at once */
	acpi_pm_gpe(&m->pm, ACPI_GPE_VMGENID);
}

void vm_new_macs(struct vm *vm)
{
	for (unsigned k = 0; k < vm->cfg.nnets; k++) {
		uint8_t mac[6] = {0x52, 0x54, 0x00}; /* the locally administered range QEMU and libvirt use */
		unsigned tries = 0;
		do {
			/* a replay that diverged gives zeros: no endless loop */
			if (replay_random(vm->m, mac + 3, 3) < 0 || ++tries > 8)
				return;
		} while (!memcmp(mac, vm->mac[k], 6));
		/* The device offers the new address from now on and at every
		 * later boot. The running guest keeps the one its driver read at
		 * probe (Linux's virtio_net never reads it again, and a device
		 * cannot change a running interface's address): it takes the
		 * new one when the driver probes again, after a reboot or a
		 * rebind, as with a NIC swapped while the machine was off. */
		memcpy(vm->mac[k], mac, 6);
		if (vm->netdev[k])
			virtio_net_set_mac(vm->netdev[k], mac);
	}
}
