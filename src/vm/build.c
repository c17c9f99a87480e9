/* Assembling a VM from its configuration: the backends (opened once, they
 * outlive guest reboots), the engine choice, and at every boot a machine
 * with its devices and the guest (a Linux kernel or a flat test guest). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "boot/boot.h"
#include "machine/machine_impl.h"
#include "virtio/virtio.h"
#include "vm/vm_internal.h"

#define FLAT_LOAD 0x100000ull
#define FLAT_MAX (64ull << 20)

void vm_log(struct vm *vm, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	if (!vm->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	vm->cfg.log(vm->cfg.log_opaque, line);
}

int vm_open_backends(struct vm *vm, char *err, size_t errlen)
{
	const struct vm_config *c = &vm->cfg;
	int r;
	for (unsigned k = 0; k < VM_MAX_DISKS; k++)
		rate_limit_init(&vm->blkrate[k], k < c->ndisks ? &c->disk[k].rate : &(struct rate_cfg){0});
	vm->rates_on = 1;
	for (unsigned k = 0; k < c->ndisks; k++) {
		const struct vm_disk *d = &c->disk[k];
		if ((r = rate_cfg_check(&d->rate, "rate_limiter", err, errlen)) < 0)
			return r;
		if ((r = blk_open_cache(&vm->blk[k], d->path, d->format, d->readonly, d->cache, err, errlen)) < 0)
			return r;
		/* a replay's writable disk goes back with a debugger (record.c) */
		if (c->replay && vm->rr_base[k][0] && (r = blk_undo_wrap(&vm->blk[k], RR_UNDO_MAX)) < 0) {
			snprintf(err, errlen, "%s", strerror(-r));
			return r;
		}
	}
	for (unsigned k = 0; k < c->nnets; k++) {
		if (!vm->netbe[k] && (r = net_open(&vm->netbe[k], c->net[k], NULL, NULL, err, errlen)) < 0)
			return r;
		/* QEMU's locally administered range, one address per NIC */
		const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, (uint8_t)(0x56 + k)};
		memcpy(vm->mac[k], mac, 6);
	}
	if (!c->kernel && !c->flat) {
		if (!c->guest_dir) {
			snprintf(err, errlen, "no kernel given, and no directory for the default guest");
			return -ENOENT;
		}
		r = boot_default_guest(c->guest_dir, vm->kpath, vm->ipath, sizeof(vm->kpath), err, errlen);
		if (r < 0)
			return r;
		vm->cfg.kernel = vm->kpath;
		vm->cfg.initrd = vm->ipath;
	}
	return 0;
}

void vm_close_backends(struct vm *vm)
{
	for (unsigned k = 0; k < VM_MAX_DISKS; k++) {
		blk_close(vm->blk[k]);
		vm->blk[k] = NULL;
		if (vm->rates_on)
			rate_limit_destroy(&vm->blkrate[k]);
	}
	vm->rates_on = 0;
	for (unsigned k = 0; k < VM_MAX_NETS; k++) {
		net_close(vm->netbe[k]);
		vm->netbe[k] = NULL;
	}
}

/* auto/kvm: is /dev/kvm there, and does it run at hardware speed? */
int vm_pick_engine(struct vm *vm, char *err, size_t errlen)
{
	const struct vm_config *c = &vm->cfg;
	struct kvm_info ki;
	vm->kind = ENGINE_EMU;
	if (c->engine == VM_ENGINE_EMU)
		return 0;
	if (c->engine == VM_ENGINE_KVM) {
		kvm_probe(&ki, 0);
		if (!ki.usable) {
			snprintf(err, errlen, "--engine kvm: %s", kvm_strerror(&ki));
			return ki.err ? ki.err : -ENODEV;
		}
		/* a VM that moves between engines would see its CPU change */
		if (c->cpu_model == CPU_MODEL_CORRAL && ki.missing[0])
			vm_log(vm,
			       "note: this host's KVM lacks features of the corral CPU model (%s); "
			       "the guest sees fewer under kvm than under emu",
			       ki.missing);
		vm->kind = ENGINE_KVM;
		return 0;
	}
	kvm_probe(&ki, 0);
	/* the timed probe only where nothing already rules kvm out */
	if (ki.usable && !ki.sw_layer[0])
		kvm_probe(&ki, 1);
	char why[256];
	int kvm = kvm_auto_choice(&ki, why, sizeof(why));
	if (c->verbose)
		vm_log(vm, "--engine auto: %s (%s)", kvm ? "kvm" : "emu", why);
	vm->kind = kvm ? ENGINE_KVM : ENGINE_EMU;
	return 0;
}

/* ---- Flat test guests ----
 * tests/guests: a flat binary loaded at 1 MiB and entered in 64-bit mode:
 * GDT at 0x1000 (0x08 code, 0x10 data), identity map of the first 4 GiB
 * with 2 MiB pages (PML4 0x2000, PDPT 0x3000, PDs 0x4000-0x7fff), RSP
 * 0x80000, RFLAGS 0x2 (interrupts off), RIP 0x100000. */
static int flat_load(struct machine *m, const char *path, struct cpu_state *s, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not hang the open */
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "flat guest '%s': %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > FLAT_MAX ||
	    (uint64_t)st.st_size > m->low_size - FLAT_LOAD) {
		snprintf(err, errlen, "flat guest '%s': not a regular file that fits in guest RAM", path);
		close(fd);
		return -EINVAL;
	}
	uint8_t *dst = gpa_ptr(m, FLAT_LOAD, (uint64_t)st.st_size);
	size_t done = 0;
	while (dst && done < (size_t)st.st_size) {
		ssize_t n = read(fd, dst + done, (size_t)st.st_size - done);
		if (n <= 0) {
			snprintf(err, errlen, "flat guest '%s': read failed", path);
			close(fd);
			return -EIO;
		}
		done += (size_t)n;
	}
	close(fd);

	uint64_t gdt[3] = {0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
	gpa_write(m, 0x1000, gdt, sizeof(gdt));
	uint64_t e = 0x3000 | 3;
	gpa_write(m, 0x2000, &e, 8);
	for (uint64_t k = 0; k < 4; k++) {
		e = (0x4000 + k * 0x1000) | 3;
		gpa_write(m, 0x3000 + k * 8, &e, 8);
	}
	for (uint64_t k = 0; k < 4 * 512; k++) {
		e = (k << 21) | 0x83; /* present, writable, 2 MiB */
		gpa_write(m, 0x4000 + k * 8, &e, 8);
	}

	memset(s, 0, sizeof(*s));
	s->rip = FLAT_LOAD;
	s->rflags = 2;
	s->gpr[R_RSP] = 0x80000;
	s->cr0 = 0x80050033; /* PG WP NE ET MP PE */
	s->cr3 = 0x2000;
	s->cr4 = 0x6a0;	 /* PAE PGE OSFXSR OSXMMEXCPT */
	s->efer = 0xd01; /* SCE LME LMA NXE */
	s->seg[SEG_CS] = (struct cpu_seg){.base = 0, .limit = 0xffffffff, .sel = 0x08, .attr = 0xa09b};
	for (int k = 0; k < 6; k++)
		if (k != SEG_CS)
			s->seg[k] = (struct cpu_seg){.base = 0, .limit = 0xffffffff, .sel = 0x10, .attr = 0xc093};
	s->gdtr = (struct cpu_dtr){.base = 0x1000, .limit = sizeof(gdt) - 1};
	s->idtr = (struct cpu_dtr){.base = 0, .limit = 0xffff};
	s->ldtr = (struct cpu_seg){.limit = 0xffff, .attr = 0x82};
	s->tr = (struct cpu_seg){.limit = 0xffff, .attr = 0x8b};
	s->mxcsr = MXCSR_DEFAULT;
	s->x87.fcw = 0x37f;
	s->x87.ftw = 0xffff;
	s->msr.pat = 0x0007040600070406ull;
	s->msr.apic_base = MEM_LAPIC_BASE | (1u << 11) | (1u << 8);
	return 0;
}

/* ---- bench/startup.sh ----
 * With cfg.bench_t0 set (CLOCK_MONOTONIC ns taken just before corral was
 * started), the guest's first write to port 0x80 (the POST code port) logs
 * how long after T0 it came: the time from `corral run` to the first guest
 * instruction, the same way for both engines. */
static void bench_port_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct vm *vm = dev;
	(void)off, (void)size, (void)val;
	if (vm->bench_seen++)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	vm_log(vm, "bench: first guest instruction %.3f ms after start", (double)(now - vm->cfg.bench_t0) / 1e6);
}

/* The guest into m's RAM, vCPU 0's entry state into vm->bsp. */
static int load_guest(struct vm *vm, struct machine *m, char *err, size_t errlen)
{
	const struct vm_config *o = &vm->cfg;
	if (o->flat)
		return flat_load(m, o->flat, &vm->bsp, err, errlen);
	/* Without a command line the console is COM1, where the host sees it. */
	struct boot_config bc = {.kernel = o->kernel,
				 .initrd = o->initrd,
				 .cmdline = o->cmdline ? o->cmdline : "console=ttyS0",
				 .cmdline_default = !o->cmdline,
				 .mem_size = o->mem,
				 .ncpus = o->cpus,
				 .kernel_cache = o->kernel_cache};
	return boot_linux(m, &vm->bsp, &bc, err, errlen);
}

int vm_reboot(struct vm *vm, char *err, size_t errlen)
{
	/* only this thread swaps vm->m; others look under the lock */
	pthread_mutex_lock(&vm->lock);
	machine_reset(vm->m);
	pthread_mutex_unlock(&vm->lock);
	err[0] = 0;
	int r = load_guest(vm, vm->m, err, errlen);
	if (r < 0 && !err[0])
		snprintf(err, errlen, "%s", strerror(-r));
	return r;
}

int vm_build(struct vm *vm, char *err, size_t errlen)
{
	const struct vm_config *o = &vm->cfg;
	struct machine_config mc = {.mem_size = o->mem,
				    .ncpus = o->cpus,
				    .serial_out_fd = vm->out_fd,
				    .rtc_host_sec = vm->rtc_sec,
				    .clock_frozen = vm->rr != NULL};
	struct machine *m;
	struct virtio_dev *hvc = NULL;
	int r = machine_create(&m, &mc);
	if (r < 0) {
		snprintf(err, errlen, "cannot create the virtual machine (%d MiB, %u CPUs): %s", (int)(o->mem >> 20),
			 o->cpus, strerror(-r));
		return r;
	}
	err[0] = 0;
	vm_rr_attach(vm, m);
	if (o->bench_t0)
		bus_register_pio(m, 0x80, 1, NULL, bench_port_write, vm);
	if (o->debug_exit.on &&
	    (r = debug_exit_register(&vm->dbgexit, m, o->debug_exit.iobase, o->debug_exit.iosize)) < 0) {
		snprintf(err, errlen, "isa-debug-exit: cannot use ports 0x%x-0x%x: %s", o->debug_exit.iobase,
			 o->debug_exit.iobase + o->debug_exit.iosize - 1,
			 r == -EBUSY ? "another device has them" : strerror(-r));
		machine_destroy(m);
		return r;
	}
	/* a restore's RAM comes from the snapshot: no guest to load */
	r = vm->restoring ? 0 : load_guest(vm, m, err, errlen);
	/* virtio devices: disks first (vda, vdb, ... in slot order), then rng */
	for (unsigned k = 0; r >= 0 && k < o->ndisks; k++) {
		r = virtio_blk_create(m, vm->blk[k], o->disk[k].serial, &vm->blkdev[k]);
		if (r >= 0) /* also unlimited: a limit may come while it runs */
			virtio_blk_set_rate(vm->blkdev[k], &vm->blkrate[k]);
		if (r < 0)
			snprintf(err, errlen, "disk '%s': cannot add a virtio-blk device: %s", o->disk[k].path,
				 strerror(-r));
	}
	for (unsigned k = 0; r >= 0 && k < o->nnets; k++) {
		r = virtio_net_create(m, vm->netbe[k], vm->mac[k], &vm->netdev[k]);
		if (r < 0)
			snprintf(err, errlen, "--net '%s': cannot add a virtio-net device: %s", o->net[k],
				 strerror(-r));
	}
	if (r >= 0 && o->rng && (r = virtio_rng_create(m, NULL)) < 0)
		snprintf(err, errlen, "cannot add a virtio-rng device: %s", strerror(-r));
	if (r >= 0 && o->hvc && (r = virtio_console_create(m, vm->out_fd, &hvc)) < 0)
		snprintf(err, errlen, "cannot add a virtio-console device: %s", strerror(-r));
	struct virtio_dev *balloon = NULL;
	if (r >= 0 && o->balloon.on) {
		struct balloon_opts bo = {.deflate_on_oom = o->balloon.deflate_on_oom,
					  .stats_s = o->balloon.stats_s,
					  .reporting = o->balloon.free_page_reporting,
					  .target_pages = o->balloon.amount_mib << 8};
		if ((r = virtio_balloon_create(m, &bo, &balloon)) < 0)
			snprintf(err, errlen, "cannot add a virtio-balloon device: %s", strerror(-r));
	}
	if (r < 0) {
		if (!err[0])
			snprintf(err, errlen, "%s", strerror(-r));
		machine_destroy(m);
		return r;
	}
	pthread_mutex_lock(&vm->lock);
	vm->m = m;
	vm->hvc = hvc;
	vm->balloon = balloon;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}
