/* What makes each VM restored from one snapshot a machine of its own: a
 * new VM generation ID (the guest's vmgenid driver then reseeds its random
 * number generator, so clones never share the keys and nonces they make
 * next). Disks: snapdisk.c. docs/architecture.md ("Clones"). */
#include <string.h>
#include <sys/random.h>

#include "boot/boot.h"
#include "machine/machine_impl.h"
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
	if (!id || getrandom(fresh, sizeof(fresh), 0) != (ssize_t)sizeof(fresh))
		return;
	memcpy(id, fresh, sizeof(fresh)); /* a private page of the memory file now */
	/* Linux's _E00 handler reads the ID again and mixes it in
	 * (add_vmfork_randomness), which reseeds the RNG at once */
	acpi_pm_gpe(&m->pm, ACPI_GPE_VMGENID);
}
