/* Snapshots of a system VM: vm_save writes DIR/state (a state stream of
 * kind "vm": the configuration, every vCPU, every device, field by field)
 * and DIR/memory (guest RAM, sparse); vm_restore builds a fresh machine
 * from the saved configuration, maps the memory file privately and lazily
 * and loads every section. docs/architecture.md explains the design. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "machine/machine_impl.h"
#include "state/cpu_fields.h"
#include "state/stream.h"
#include "virtio/virtio.h"
#include "vm/vm_internal.h"

/* A state file holds the configuration, some KiB per vCPU and device:
 * anything larger is not one of ours. */
#define SNAP_STATE_MAX (16u << 20)
#define SNAP_VERSION 1 /* of every section below */

/* Times beyond this (146 years of guest time) are refused as corrupt. */
#define SNAP_CLOCK_MAX (1ull << 62)

/* ---- The sections' names, in the order they are written ---- */

/* One vCPU, field by field (struct engine_vcpu). */
static void cpu_save(struct state_writer *w, const struct engine_vcpu *v)
{
	const struct cpu_state *s = &v->s;
	for (unsigned k = 0; k < 16; k++)
		state_put_u64(w, s->gpr[k]);
	state_put_u64(w, s->rip);
	state_put_u64(w, s->rflags);
	for (unsigned k = 0; k < 6; k++)
		state_put_seg(w, &s->seg[k]);
	state_put_seg(w, &s->ldtr);
	state_put_seg(w, &s->tr);
	state_put_u64(w, s->gdtr.base);
	state_put_u16(w, s->gdtr.limit);
	state_put_u64(w, s->idtr.base);
	state_put_u16(w, s->idtr.limit);
	state_put_u64(w, s->cr0);
	state_put_u64(w, s->cr2);
	state_put_u64(w, s->cr3);
	state_put_u64(w, s->cr4);
	state_put_u64(w, s->cr8);
	state_put_u64(w, s->efer);
	for (unsigned k = 0; k < 8; k++)
		state_put_u64(w, s->dr[k]);
	state_put_fpu(w, s);
	state_put_u64(w, s->tsc);
	const struct cpu_msrs *m = &s->msr;
	const uint64_t msrs[] = {m->star,	 m->lstar,	  m->cstar,	   m->sfmask,	    m->kernel_gs_base,
				 m->sysenter_cs, m->sysenter_esp, m->sysenter_eip, m->pat,	    m->apic_base,
				 m->tsc_aux,	 m->misc_enable,  m->tsc_adjust,   m->mtrr_def_type};
	for (unsigned k = 0; k < sizeof(msrs) / sizeof(msrs[0]); k++)
		state_put_u64(w, msrs[k]);
	for (unsigned k = 0; k < 11; k++)
		state_put_u64(w, m->mtrr_fixed[k]);
	for (unsigned k = 0; k < 16; k++)
		state_put_u64(w, m->mtrr_var[k]);
	state_put_u8(w, v->mp_state);
	state_put_bool(w, v->nmi_pending);
	state_put_bool(w, v->nmi_blocked);
	state_put_bool(w, v->irq_shadow);
}

/* Bits a guest can set, as corral's CPU lets it (cpu/ctrl.c). */
#define CR0_PE 1ull
#define CR0_PG (1ull << 31)
#define CR4_KNOWN 0x007fffffull
#define EFER_KNOWN 0xd01ull /* SCE, LME, LMA, NXE */
#define XCR0_KNOWN 0x7ull

static uint64_t canonical(uint64_t a)
{
	return (uint64_t)((int64_t)(a << 16) >> 16);
}

const char *vm_cpu_state_check(const struct cpu_state *s)
{
	if ((s->cr0 & CR0_PG) && !(s->cr0 & CR0_PE))
		return "CR0 (paging without protection)";
	if (s->cr0 >> 32 || s->cr4 & ~CR4_KNOWN || s->cr8 > 15)
		return "CR0, CR4 or CR8";
	if (s->efer & ~EFER_KNOWN)
		return "EFER";
	if ((s->xcr0 && !(s->xcr0 & 1)) || (s->xcr0 & ~XCR0_KNOWN)) /* 0: never set */
		return "XCR0";
	if (s->mxcsr & ~MXCSR_VALID)
		return "MXCSR";
	if (s->rflags >> 22 || !(s->rflags & 2))
		return "RFLAGS";
	if ((s->efer & 0x400) && canonical(s->rip) != s->rip)
		return "RIP (not canonical)";
	return NULL;
}

static int cpu_load(struct state_reader *r, unsigned k, struct engine_vcpu *out)
{
	struct engine_vcpu v = {0};
	struct cpu_state *s = &v.s;
	for (unsigned i = 0; i < 16; i++)
		s->gpr[i] = state_get_u64(r);
	s->rip = state_get_u64(r);
	s->rflags = state_get_u64(r);
	for (unsigned i = 0; i < 6; i++)
		state_get_seg(r, &s->seg[i]);
	state_get_seg(r, &s->ldtr);
	state_get_seg(r, &s->tr);
	s->gdtr.base = state_get_u64(r);
	s->gdtr.limit = state_get_u16(r);
	s->idtr.base = state_get_u64(r);
	s->idtr.limit = state_get_u16(r);
	s->cr0 = state_get_u64(r);
	s->cr2 = state_get_u64(r);
	s->cr3 = state_get_u64(r);
	s->cr4 = state_get_u64(r);
	s->cr8 = state_get_u64(r);
	s->efer = state_get_u64(r);
	for (unsigned i = 0; i < 8; i++)
		s->dr[i] = state_get_u64(r);
	state_get_fpu(r, s);
	s->tsc = state_get_u64(r);
	struct cpu_msrs *m = &s->msr;
	uint64_t *msrs[] = {&m->star,	     &m->lstar,	       &m->cstar,	 &m->sfmask,	   &m->kernel_gs_base,
			    &m->sysenter_cs, &m->sysenter_esp, &m->sysenter_eip, &m->pat,	   &m->apic_base,
			    &m->tsc_aux,     &m->misc_enable,  &m->tsc_adjust,	 &m->mtrr_def_type};
	for (unsigned i = 0; i < sizeof(msrs) / sizeof(msrs[0]); i++)
		*msrs[i] = state_get_u64(r);
	for (unsigned i = 0; i < 11; i++)
		m->mtrr_fixed[i] = state_get_u64(r);
	for (unsigned i = 0; i < 16; i++)
		m->mtrr_var[i] = state_get_u64(r);
	v.mp_state = state_get_u8(r);
	v.nmi_pending = state_get_bool(r);
	v.nmi_blocked = state_get_bool(r);
	v.irq_shadow = state_get_bool(r);
	if (!state_section_done(r))
		return -EINVAL;
	/* what no guest can reach on corral's CPU is refused, not repaired */
	const char *bad = NULL;
	if (v.mp_state > ENGINE_VCPU_WAIT_SIPI)
		bad = "run state";
	else if ((bad = vm_cpu_state_check(s)))
		;
	else if (s->tsc > SNAP_CLOCK_MAX)
		bad = "TSC";
	if (bad) {
		state_fail(r, "vCPU %u: %s out of range", k, bad);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* The machine itself: the clock every device's times are measured on
 * (they are saved as they stand, so after a restore sets the clock to the
 * same instant every deadline keeps its distance from now), and the PCI
 * host's address latch. */
static void machine_save(struct state_writer *w, struct machine *m)
{
	state_put_u64(w, clock_ns(m));
	state_put_u32(w, m->pci.conf_addr);
}

static int machine_load(struct state_reader *r, struct machine *m)
{
	uint64_t now = state_get_u64(r);
	uint32_t conf_addr = state_get_u32(r);
	if (!state_section_done(r))
		return -EINVAL;
	if (now > SNAP_CLOCK_MAX) {
		state_fail(r, "machine: clock %" PRIu64 " ns out of range", now);
		return -EINVAL;
	}
	clock_advance_to(m, now);
	m->pci.conf_addr = conf_addr;
	return 0;
}

/* One NIC ("net" K): its MAC address, then its backend's own state (the
 * user network's libslirp state; backend/net.c). */
static int net_section_save(struct state_writer *w, struct vm *vm, unsigned k)
{
	uint8_t mac[6];
	memcpy(mac, vm->mac[k], 6);
	if (vm->netdev[k])
		virtio_net_get_mac(vm->netdev[k], mac);
	state_put_bytes(w, mac, 6);
	return net_state_save(vm->netbe[k], w);
}

static int net_section_load(struct state_reader *r, struct vm *vm, unsigned k)
{
	uint8_t mac[6];
	state_get_bytes(r, mac, 6);
	if (!state_reader_ok(r))
		return -EINVAL;
	/* a NIC's own address is unicast and not all zeros */
	if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5])) {
		state_fail(r, "net %u: MAC address %02x:%02x:%02x:%02x:%02x:%02x is not a unicast address", k, mac[0],
			   mac[1], mac[2], mac[3], mac[4], mac[5]);
		return -EINVAL;
	}
	unsigned lost;
	if (net_state_load(vm->netbe[k], r, &lost) < 0 || !state_section_done(r))
		return -EINVAL;
	if (lost)
		vm_log(vm,
		       "--net '%s': %u TCP connection%s through the user network at the save: not carried over "
		       "(the guest's end is reset at its next segment; the host's closed with the saving process)",
		       vm->cfg.net[k], lost, lost == 1 ? " was open" : "s were open");
	memcpy(vm->mac[k], mac, 6);
	if (vm->netdev[k])
		virtio_net_set_mac(vm->netdev[k], mac);
	return 0;
}

/* ---- Saving ---- */

int vm_state_write(struct vm *vm, int fd, char *err, size_t errlen)
{
	struct machine *m = vm->m;
	struct state_writer w;
	int r = state_writer_init(&w, fd, "vm");
	if (r < 0)
		goto out;
	/* the disks as the snapshot holds them (snapdisk.c) */
	char *json = vm_config_to_json(vm->saving ? vm->saving : &vm->cfg);
	if (!json) {
		r = -ENOMEM;
		goto out;
	}
	state_section_begin(&w, "config", 0, SNAP_VERSION);
	state_put_str(&w, json);
	free(json);
	state_section_end(&w);
	state_section_begin(&w, "machine", 0, SNAP_VERSION);
	machine_save(&w, m);
	state_section_end(&w);
	for (unsigned k = 0; k < m->ncpus; k++) {
		state_section_begin(&w, "cpu", k, SNAP_VERSION);
		cpu_save(&w, &vm->vcpus[k]);
		state_section_end(&w);
	}
	state_section_begin(&w, "pic", 0, SNAP_VERSION);
	pic_state_save(&m->pic, &w);
	state_section_end(&w);
	state_section_begin(&w, "ioapic", 0, SNAP_VERSION);
	ioapic_state_save(&m->ioapic, &w);
	state_section_end(&w);
	for (unsigned k = 0; k < m->ncpus; k++) {
		state_section_begin(&w, "lapic", k, SNAP_VERSION);
		lapic_state_save(&m->lapic[k], &w);
		state_section_end(&w);
	}
	state_section_begin(&w, "pit", 0, SNAP_VERSION);
	pit_state_save(&m->pit, &w);
	state_section_end(&w);
	state_section_begin(&w, "rtc", 0, SNAP_VERSION);
	rtc_state_save(&m->rtc, &w);
	state_section_end(&w);
	state_section_begin(&w, "uart", 0, SNAP_VERSION);
	uart_state_save(&m->com1, &w);
	state_section_end(&w);
	state_section_begin(&w, "i8042", 0, SNAP_VERSION);
	i8042_state_save(&m->kbd, &w);
	state_section_end(&w);
	state_section_begin(&w, "acpi_pm", 0, ACPI_PM_STATE_VERSION);
	acpi_pm_state_save(&m->pm, &w);
	state_section_end(&w);
	for (unsigned s = 0; s < PCI_SLOTS; s++) {
		struct pci_dev *d = m->pci.dev[s];
		if (!d)
			continue;
		state_section_begin(&w, "pci", s, SNAP_VERSION);
		pci_dev_state_save(d, &w);
		state_section_end(&w);
		struct virtio_dev *v = virtio_from_pci(d);
		if (v) {
			state_section_begin(&w, "virtio", s, SNAP_VERSION);
			virtio_state_save(v, &w);
			state_section_end(&w);
		}
		if (v && v->state_save) { /* the device's own (the balloon's) */
			state_section_begin(&w, v->state_name, s, v->state_version);
			v->state_save(v, &w);
			state_section_end(&w);
		}
	}
	/* last, so that a snapshot from before they existed still loads */
	for (unsigned k = 0; k < vm->cfg.nnets && r >= 0; k++) {
		state_section_begin(&w, "net", k, SNAP_VERSION);
		r = net_section_save(&w, vm, k);
		state_section_end(&w);
	}
	if (r >= 0)
		r = state_writer_finish(&w);
out:
	state_writer_free(&w);
	if (r < 0)
		snprintf(err, errlen, "cannot write the state: %s", strerror(-r));
	return r;
}

/* path.tmp, written by fn, then renamed over path. */
static int write_file(struct vm *vm, const char *path, int (*fn)(struct vm *vm, int fd, char *err, size_t errlen),
		      char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "'%s': name too long", path);
		return -ENAMETOOLONG;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		int r = -errno;
		snprintf(err, errlen, "'%s': %s", tmp, strerror(-r));
		return r;
	}
	int r = fn(vm, fd, err, errlen);
	if (r >= 0 && fsync(fd) < 0) {
		r = -errno;
		snprintf(err, errlen, "'%s': %s", tmp, strerror(-r));
	}
	close(fd);
	if (r >= 0 && rename(tmp, path) < 0) {
		r = -errno;
		snprintf(err, errlen, "'%s': %s", path, strerror(-r));
	}
	if (r < 0)
		unlink(tmp);
	return r;
}

static int write_memory(struct vm *vm, int fd, char *err, size_t errlen)
{
	int r = state_ram_write(fd, vm->m->ram, vm->m->mem_size);
	if (r < 0)
		snprintf(err, errlen, "cannot write guest memory: %s", strerror(-r));
	return r;
}

int vm_save_files(struct vm *vm, const char *state_path, const char *mem_path, char *err, size_t errlen)
{
	int paused = vm_is_paused(vm);
	int r = vm_pause(vm);
	if (r < 0) {
		snprintf(err, errlen, "the VM is not running");
		return r;
	}
	/* paused: the engine stands still, its machine and vCPUs are ours */
	pthread_mutex_lock(&vm->ctl.lock);
	int valid = vm->ctl.vcpus_valid;
	char why[sizeof(vm->ctl.vcpus_why)];
	snprintf(why, sizeof(why), "%s", vm->ctl.vcpus_why);
	pthread_mutex_unlock(&vm->ctl.lock);
	/* the disks go beside the state file */
	char dir[PATH_MAX];
	const char *slash = strrchr(state_path, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - state_path) : 1, slash ? state_path : ".");
	if (!dir[0])
		snprintf(dir, sizeof(dir), "/");
	struct vm_config saved;
	struct snapdisk_names *names = malloc(sizeof(*names));
	pthread_mutex_lock(&vm->lock);
	if (vm->m && !valid && why[0]) {
		snprintf(err, errlen, "%s", why);
		r = -EAGAIN;
	} else if (!vm->m || !valid) {
		snprintf(err, errlen, "the VM is not running");
		r = -ESRCH;
	} else if (!names) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		r = -ENOMEM;
	} else if ((r = snapdisk_freeze(vm, dir, &saved, names, err, errlen)) >= 0 &&
		   (r = write_file(vm, mem_path, write_memory, err, errlen)) >= 0) {
		vm->saving = &saved;
		r = write_file(vm, state_path, vm_state_write, err, errlen);
		vm->saving = NULL;
	}
	pthread_mutex_unlock(&vm->lock);
	free(names);
	if (!paused)
		vm_resume(vm);
	return r;
}

int vm_save(struct vm *vm, const char *dir, char *err, size_t errlen)
{
	char sp[PATH_MAX], mp[PATH_MAX];
	if (snprintf(sp, sizeof(sp), "%s/state", dir) >= (int)sizeof(sp) ||
	    snprintf(mp, sizeof(mp), "%s/memory", dir) >= (int)sizeof(mp)) {
		snprintf(err, errlen, "snapshot directory '%s': name too long", dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		int r = -errno;
		snprintf(err, errlen, "snapshot directory '%s': %s", dir, strerror(-r));
		return r;
	}
	return vm_save_files(vm, sp, mp, err, errlen);
}

/* ---- Restoring ---- */

/* The next section must be name/instance, of a version this corral reads
 * (SNAP_VERSION, or 1 to max for a section that grew). */
static int expect_upto(struct state_reader *r, const char *name, uint32_t instance, uint32_t max)
{
	struct state_section s;
	int k = state_next_section(r, &s);
	if (k < 0)
		return -EINVAL;
	if (k == 0) {
		state_fail(r, "the state ends before section %s %u", name, instance);
		return -EINVAL;
	}
	if (strcmp(s.name, name) || s.instance != instance) {
		state_fail(r, "section %s %u where %s %u was expected (a different machine)", s.name, s.instance, name,
			   instance);
		return -EINVAL;
	}
	if (max ? s.version < 1 || s.version > max : s.version != SNAP_VERSION) {
		state_fail(r, "section %s %u: version %u, this corral reads %u", name, instance, s.version,
			   max ? max : SNAP_VERSION);
		return -EINVAL;
	}
	return 0;
}

static int expect(struct state_reader *r, const char *name, uint32_t instance)
{
	return expect_upto(r, name, instance, 0);
}

/* Every section after the configuration, into the fresh VM. */
static int load_sections(struct state_reader *r, struct vm *vm, struct engine_vcpu *cpus)
{
	struct machine *m = vm->m;
	if (expect(r, "machine", 0) < 0 || machine_load(r, m) < 0)
		return -EINVAL;
	for (unsigned k = 0; k < m->ncpus; k++)
		if (expect(r, "cpu", k) < 0 || cpu_load(r, k, &cpus[k]) < 0)
			return -EINVAL;
	if (expect(r, "pic", 0) < 0 || pic_state_load(&m->pic, r) < 0 || expect(r, "ioapic", 0) < 0 ||
	    ioapic_state_load(&m->ioapic, r) < 0)
		return -EINVAL;
	for (unsigned k = 0; k < m->ncpus; k++)
		if (expect(r, "lapic", k) < 0 || lapic_state_load(&m->lapic[k], r) < 0)
			return -EINVAL;
	if (expect(r, "pit", 0) < 0 || pit_state_load(&m->pit, r) < 0 || expect(r, "rtc", 0) < 0 ||
	    rtc_state_load(&m->rtc, r) < 0 || expect(r, "uart", 0) < 0 || uart_state_load(&m->com1, r) < 0 ||
	    expect(r, "i8042", 0) < 0 || i8042_state_load(&m->kbd, r) < 0 ||
	    expect_upto(r, "acpi_pm", 0, ACPI_PM_STATE_VERSION) < 0 || acpi_pm_state_load(&m->pm, r) < 0)
		return -EINVAL;
	for (unsigned s = 0; s < PCI_SLOTS; s++) {
		struct pci_dev *d = m->pci.dev[s];
		if (!d)
			continue;
		if (expect(r, "pci", s) < 0 || pci_dev_state_load(d, r) < 0)
			return -EINVAL;
		struct virtio_dev *v = virtio_from_pci(d);
		if (v && (expect(r, "virtio", s) < 0 || virtio_state_load(v, r) < 0))
			return -EINVAL;
		if (v && v->state_load &&
		    (expect_upto(r, v->state_name, s, v->state_version) < 0 || v->state_load(v, r) < 0))
			return -EINVAL;
	}
	/* one "net" section per NIC, or none (a snapshot from before they
	 * existed: the NICs keep their default addresses, the user network
	 * starts afresh) */
	struct state_section s;
	int k = state_next_section(r, &s);
	unsigned nets = 0;
	for (; k > 0 && !strcmp(s.name, "net") && s.instance == nets && nets < vm->cfg.nnets; nets++) {
		if (s.version != SNAP_VERSION) {
			state_fail(r, "section net %u: version %u, this corral reads %u", nets, s.version,
				   SNAP_VERSION);
			return -EINVAL;
		}
		if (net_section_load(r, vm, nets) < 0)
			return -EINVAL;
		k = state_next_section(r, &s);
	}
	if (k > 0)
		state_fail(r, "section %s %u: not part of this machine", s.name, s.instance);
	else if (k == 0 && nets && nets != vm->cfg.nnets)
		state_fail(r, "the state ends before section net %u", nets);
	return k == 0 && state_reader_ok(r) ? 0 : -EINVAL;
}

int vm_state_load_into(struct vm *vm, const void *state, size_t len, struct engine_vcpu *cpus, char *err, size_t errlen)
{
	struct state_reader rd;
	char *json = malloc(VM_CONFIG_JSON_MAX + 1);
	int r = -EINVAL;
	if (json && state_reader_init(&rd, state, len, "vm") == 0 && expect(&rd, "config", 0) == 0) {
		state_get_str(&rd, json, VM_CONFIG_JSON_MAX + 1);
		if (state_section_done(&rd) && load_sections(&rd, vm, cpus) == 0)
			r = 0;
	}
	if (r < 0)
		snprintf(err, errlen, "%s", !json ? strerror(ENOMEM) : rd.err[0] ? rd.err : "malformed state");
	free(json);
	return r;
}

/* The host side is the restoring process's, never the snapshot's. */
static void take_host_side(struct vm_config *c, const struct vm_config *o)
{
	/* either engine restores what either saved; the restoring side picks
	 * (without overrides: emu, which needs no probe) */
	c->engine = o ? o->engine : VM_ENGINE_EMU;
	c->handover = 0;
	c->serial_path = o ? o->serial_path : NULL;
	c->serial_fd = o ? o->serial_fd : -1;
	c->poll_input = o ? o->poll_input : NULL;
	c->input_opaque = o ? o->input_opaque : NULL;
	c->realtime_idle = o ? o->realtime_idle : 0;
	c->disk_dir = NULL; /* used by the restore alone */
	c->keep_vmgenid = 0;
	c->keep_mac = 0;
	/* other network specs (other hostfwd ports), one per saved NIC */
	for (unsigned k = 0; o && o->nnets && k < o->nnets && k < c->nnets; k++)
		c->net[k] = o->net[k];
	/* a recording of the restored run, or its replay (record.c) */
	c->record = o ? o->record : NULL;
	c->replay = o ? o->replay : NULL;
	c->replay_snap_every = o ? o->replay_snap_every : 0;
	c->replay_snap_keep = o ? o->replay_snap_keep : 0;
	c->version = o ? o->version : NULL;
	c->verbose = o ? o->verbose : 0;
	c->bench_t0 = o ? o->bench_t0 : 0; /* bench/snapshot.sh: restore to first instruction */
	c->log = o ? o->log : NULL;
	c->log_opaque = o ? o->log_opaque : NULL;
	c->on_reboot = o ? o->on_reboot : NULL;
	c->reboot_opaque = o ? o->reboot_opaque : NULL;
	if (o && o->guest_dir)
		c->guest_dir = o->guest_dir;
	/* the same disks at other paths (a migration's destination) */
	for (unsigned k = 0; o && k < o->ndisks && k < c->ndisks; k++)
		c->disk[k].path = o->disk[k].path;
}

int vm_restore_from(const void *state, size_t len, int mem_fd, const char *dir, const struct vm_config *overrides,
		    struct vm **out, char *err, size_t errlen)
{
	*out = NULL;
	struct state_reader rd;
	struct vm_config cfg;
	void *strings = NULL;
	struct vm *vm = NULL;
	struct engine_vcpu *cpus = NULL;
	char *json = malloc(VM_CONFIG_JSON_MAX + 1);
	struct snapdisk_names *names = malloc(sizeof(*names));
	int r = -ENOMEM;
	if (!json || !names) {
		free(json);
		free(names);
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return r;
	}
	r = -EINVAL;
	if (state_reader_init(&rd, state, len, "vm") < 0 || expect(&rd, "config", 0) < 0)
		goto err_reader;
	state_get_str(&rd, json, VM_CONFIG_JSON_MAX + 1);
	if (!state_section_done(&rd))
		goto err_reader;
	vm_config_init(&cfg);
	char cerr[256];
	if (vm_config_from_json(json, strlen(json), &cfg, &strings, cerr, sizeof(cerr)) < 0) {
		snprintf(err, errlen, "the saved configuration: %s", cerr);
		goto err_json;
	}
	if (overrides && overrides->nnets && overrides->nnets != cfg.nnets) {
		snprintf(err, errlen, "the VM has %u network%s: give as many --net options, or none", cfg.nnets,
			 cfg.nnets == 1 ? "" : "s");
		r = -EINVAL;
		goto err_json;
	}
	take_host_side(&cfg, overrides);
	/* A library a network needs (libslirp) is loaded before anything is
	 * written: a static corral learns here, from -ELIBACC, that the
	 * snapshot needs its dynamically linked sibling (backend/dynlib.h). */
	for (unsigned k = 0; k < cfg.nnets; k++)
		if ((r = net_preload(cfg.net[k], err, errlen)) < 0)
			goto err_json;
	r = -EINVAL;
	struct stat st;
	if (fstat(mem_fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != cfg.mem) {
		snprintf(err, errlen, "the memory file is not a regular file of the saved RAM size (%" PRIu64 " bytes)",
			 cfg.mem);
		goto err_json;
	}
	/* A snapshot's restore (dir) writes disk overlays of its own and is a
	 * new generation of the machine; a migration's (no dir) is the same
	 * machine going on with the same disks. */
	/* (a recording or replay of the restore writes to an overlay of its
	 * own on each frozen image instead: record.c) */
	if (dir && (r = snapdisk_overlays(&cfg, dir, overrides ? overrides->disk_dir : NULL, names,
					  !cfg.record && !cfg.replay, err, errlen)) < 0)
		goto err_json;
	struct vm_origin from = {.snapshot = dir != NULL};
	if (dir && (cfg.record || cfg.replay) && (r = vm_rr_origin(&from, state, len, mem_fd, err, errlen)) < 0)
		goto err_json;
	if ((r = vm_create_as(&cfg, &from, &vm, err, errlen)) < 0)
		goto err_json;
	r = -ENOMEM;
	cpus = calloc(cfg.cpus, sizeof(*cpus));
	if (!cpus) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		goto err_vm;
	}
	if ((r = machine_map_ram(vm->m, mem_fd)) < 0) {
		snprintf(err, errlen, "cannot map the memory file: %s", strerror(-r));
		goto err_vm;
	}
	r = -EINVAL;
	if (load_sections(&rd, vm, cpus) < 0)
		goto err_reader;
	vm->origin_newgen = dir && !(overrides && overrides->keep_vmgenid);
	vm->origin_newmac = dir && !(overrides && overrides->keep_mac);
	if (vm->origin_newgen)
		vm_new_generation(vm);
	if (vm->origin_newmac)
		vm_new_macs(vm);
	/* a replay's debugger may go back to here (vm_rr_rewind) */
	if (dir && cfg.replay) {
		r = -ENOMEM;
		vm->origin_state = malloc(len ? len : 1);
		if (!vm->origin_state || (vm->origin_mfd = fcntl(mem_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			r = vm->origin_state ? -errno : -ENOMEM;
			snprintf(err, errlen, "%s", strerror(-r));
			goto err_vm;
		}
		memcpy(vm->origin_state, state, len);
		vm->origin_len = len;
	}
	vm->restore = cpus;
	free(strings);
	free(json);
	free(names);
	*out = vm;
	return 0;

err_reader:
	snprintf(err, errlen, "%s", rd.err[0] ? rd.err : "malformed state");
err_vm:
	free(cpus);
	vm_destroy(vm);
err_json:
	free(strings);
	free(json);
	free(names);
	return r;
}

int vm_restore(const char *dir, const struct vm_config *overrides, struct vm **out, char *err, size_t errlen)
{
	char path[PATH_MAX], msg[STATE_ERR_MAX + 64];
	int r, fd = -1, mfd = -1;
	void *buf = NULL;
	struct stat st;
	*out = NULL;
	if (snprintf(path, sizeof(path), "%s/state", dir) >= (int)sizeof(path)) {
		snprintf(err, errlen, "snapshot directory '%s': name too long", dir);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "'%s': %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > SNAP_STATE_MAX) {
		r = -EINVAL;
		snprintf(err, errlen, "'%s': not a state file (a regular file of at most %u MiB)", path,
			 SNAP_STATE_MAX >> 20);
		goto out;
	}
	size_t n = (size_t)st.st_size;
	buf = malloc(n ? n : 1);
	if (!buf) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		goto out;
	}
	for (size_t got = 0; got < n;) {
		ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = k < 0 ? -errno : -EIO;
			snprintf(err, errlen, "'%s': %s", path, k < 0 ? strerror(-r) : "changed while read");
			goto out;
		}
		got += (size_t)k;
	}
	snprintf(path, sizeof(path), "%s/memory", dir);
	mfd = open(path, O_RDONLY | O_CLOEXEC);
	if (mfd < 0) {
		r = -errno;
		snprintf(err, errlen, "'%s': %s", path, strerror(-r));
		goto out;
	}
	r = vm_restore_from(buf, n, mfd, dir, overrides, out, msg, sizeof(msg));
	if (r < 0)
		snprintf(err, errlen, "snapshot '%s': %s", dir, msg);
out:
	/* the mapping keeps the memory file open */
	if (mfd >= 0)
		close(mfd);
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}
