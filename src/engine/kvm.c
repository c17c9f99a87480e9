/* The kvm engine: runs a machine's vCPUs on the host processor through
 * /dev/kvm, one host thread per vCPU. I/O exits go to the machine's port
 * and MMIO buses under one machine lock, so the devices are the same code
 * as under emu; the caller's thread runs the timers, host input and the
 * idle-time skip. corral's own PIC/IOAPIC/LAPIC are the interrupt
 * controllers (no in-kernel irqchip): their state is the one snapshots
 * store, and interrupts reach the guest through KVM_INTERRUPT. */
#if defined(__x86_64__)
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "engine/kvm_internal.h"
#include "machine/machine_impl.h"

/* This thread's vCPU, for the kick signal's handler. */
static __thread struct kvm_run *volatile kvm_tls_run;
/* The kick: a real-time signal no one else in corral uses. */
#define KVM_SIG_KICK (SIGRTMIN + 2)

/* The kick signal: makes this thread's KVM_RUN return (or not start). */
static void kvm_on_kick(int sig)
{
	(void)sig;
	struct kvm_run *r = kvm_tls_run;
	if (r)
		r->immediate_exit = 1;
}

/* ---- Interrupts and wake-ups (all under the machine lock) ---- */

static void vcpu_kick(struct kvm_vcpu *v)
{
	struct vcpu_loop *l = &v->k->loop;
	if (l->t && l->t[v->index].started)
		pthread_kill(l->t[v->index].thr, KVM_SIG_KICK);
}

static int vcpu_wakeable(struct kvm_eng *k, unsigned i)
{
	struct lapic_state *s = &k->m->lapic[i].s;
	if (s->init_pending || s->sipi_pending || s->nmi_pending)
		return 1;
	return k->v[i].if_flag && intr_pending(k->m, i);
}

static void kvm_fail(struct kvm_eng *k, unsigned cpu, int err, const char *fmt, unsigned long long a,
		     unsigned long long b)
{
	vcpu_loop_fail(&k->loop, cpu, err, fmt, a, b);
}

/* Out of HLT: KVM completed the HLT at its exit, so the guest resumes
 * after it; what KVM reported then (ready_for_interrupt_injection, IF)
 * still holds, so an interrupt is injected or a window requested. */
static void vcpu_wake(struct kvm_vcpu *v)
{
	v->state = KV_RUNNING;
}

/* INIT, SIPI and NMI requests from IPIs. */
static void vcpu_requests(struct kvm_eng *k, struct kvm_vcpu *v)
{
	uint8_t vec = 0;
	unsigned r = vcpu_take_requests(k->m, v->index, &vec);
	if (r & VCPU_REQ_INIT) {
		if (v->index == 0) {
			/* no firmware in the VM: INIT on the BSP is a reset */
			machine_request_power(k->m, POWER_RESET);
			return;
		}
		lapic_init_ipi_reset(&k->m->lapic[v->index]);
		v->state = KV_WAIT_SIPI;
	}
	if ((r & VCPU_REQ_SIPI) && v->state == KV_WAIT_SIPI) {
		/* SDM 8.4.4.1: real mode at vector * 4 KiB */
		struct cpu_state s;
		kvm_state_power_on(&s, v->index);
		s.seg[SEG_CS].sel = (uint16_t)(vec << 8);
		s.seg[SEG_CS].base = (uint64_t)vec << 12;
		s.rip = 0;
		/* writing the power-on TSC (0) here would put this vCPU's TSC
		 * seconds behind the others' */
		int err = kvm_vcpu_set_state_keep_tsc(v, &s);
		if (err < 0) {
			kvm_fail(k, v->index, err, "kvm: cannot start vCPU %llu after its SIPI (%llu)", v->index,
				 (unsigned long long)-err);
			return;
		}
		v->run->ready_for_interrupt_injection = 0;
		v->if_flag = 0;
		v->state = KV_RUNNING;
	}
	if ((r & VCPU_REQ_NMI) && v->state != KV_WAIT_SIPI) {
		/* queued in KVM, delivered at the next entry: a halted vCPU wakes */
		(void)ioctl(v->fd, KVM_NMI);
		if (v->state == KV_HALTED)
			vcpu_wake(v);
	}
}

/* Before KVM_RUN: inject the highest pending interrupt if the guest can take
 * one now, else ask KVM to exit as soon as it can. */
static void vcpu_inject(struct kvm_eng *k, struct kvm_vcpu *v)
{
	struct kvm_run *r = v->run;
	struct lapic *a = &k->m->lapic[v->index];
	r->cr8 = (a->s.tpr >> 4) & 15;
	r->request_interrupt_window = 0;
	if (!intr_pending(k->m, v->index))
		return;
	if (r->ready_for_interrupt_injection && r->if_flag) {
		int vec = intr_ack(k->m, v->index);
		if (vec >= 0) {
			struct kvm_interrupt irq = {.irq = (uint32_t)vec};
			if (ioctl(v->fd, KVM_INTERRUPT, &irq) < 0)
				kvm_fail(k, v->index, -errno, "kvm: KVM_INTERRUPT vector %llu failed (%llu)",
					 (unsigned long long)vec, (unsigned long long)errno);
		}
		/* one per entry: the next waits for the next window */
		if (intr_pending(k->m, v->index))
			r->request_interrupt_window = 1;
	} else {
		r->request_interrupt_window = 1;
	}
}

/* ---- Exits ---- */

static void exit_io(struct kvm_eng *k, struct kvm_vcpu *v)
{
	struct kvm_run *r = v->run;
	unsigned size = r->io.size;
	uint64_t count = r->io.count, off = r->io.data_offset;
	/* The exit data comes from the kernel, but a corral bug or a kernel
	 * change must not become an out-of-bounds access. */
	if ((size != 1 && size != 2 && size != 4) || count == 0 || off > k->run_size ||
	    count > (k->run_size - off) / size) {
		kvm_fail(k, v->index, -EINVAL, "kvm: malformed I/O exit (size %llu, count %llu)", size,
			 (unsigned long long)count);
		return;
	}
	uint8_t *p = (uint8_t *)r + off;
	for (uint64_t i = 0; i < count; i++, p += size) {
		uint64_t val = 0;
		if (r->io.direction == KVM_EXIT_IO_OUT) {
			memcpy(&val, p, size);
			bus_pio_write(k->m, r->io.port, size, val);
		} else {
			val = bus_pio_read(k->m, r->io.port, size);
			memcpy(p, &val, size);
		}
	}
}

static void exit_mmio(struct kvm_eng *k, struct kvm_vcpu *v)
{
	struct kvm_run *r = v->run;
	unsigned len = r->mmio.len;
	if (len == 0 || len > 8) {
		kvm_fail(k, v->index, -EINVAL, "kvm: malformed MMIO exit (length %llu at 0x%llx)", len,
			 (unsigned long long)r->mmio.phys_addr);
		return;
	}
	uint64_t val = 0;
	if (r->mmio.is_write) {
		memcpy(&val, r->mmio.data, len);
		bus_mmio_write(k->m, r->mmio.phys_addr, len, val);
	} else {
		val = bus_mmio_read(k->m, r->mmio.phys_addr, len);
		memcpy(r->mmio.data, &val, len);
	}
}

static uint64_t vcpu_rip(struct kvm_vcpu *v)
{
	struct kvm_regs r;
	return ioctl(v->fd, KVM_GET_REGS, &r) < 0 ? 0 : r.rip;
}

/* Handles one exit under the lock. */
static void vcpu_exit(struct kvm_eng *k, struct kvm_vcpu *v, int ret, int err)
{
	struct kvm_run *r = v->run;
	struct lapic *a = &k->m->lapic[v->index];
	if (ret < 0) {
		if (err == EINTR || err == EAGAIN)
			return;
		kvm_fail(k, v->index, -err, "kvm: KVM_RUN failed on vCPU %llu (errno %llu)", v->index,
			 (unsigned long long)err);
		return;
	}
	v->exits++;
	v->if_flag = r->if_flag;
	/* CR8 is the LAPIC's TPR (SDM 10.8.6.1); KVM reports the guest's */
	a->s.tpr = (a->s.tpr & 0x0f) | (uint32_t)(r->cr8 & 15) << 4;
	k->m->cur_cpu = v->index;
	switch (r->exit_reason) {
	case KVM_EXIT_IO:
		exit_io(k, v);
		vcpu_loop_notify(&k->loop, v->index);
		break;
	case KVM_EXIT_MMIO:
		exit_mmio(k, v);
		vcpu_loop_notify(&k->loop, v->index);
		break;
	case KVM_EXIT_HLT:
		v->state = KV_HALTED;
		vcpu_loop_wake_main(&k->loop); /* maybe every vCPU is idle now */
		break;
	case KVM_EXIT_IRQ_WINDOW_OPEN:
	case KVM_EXIT_INTR: break;
	case KVM_EXIT_SHUTDOWN: vcpu_loop_finish(&k->loop, ENGINE_TRIPLE_FAULT, v->index, vcpu_rip(v)); break;
	case KVM_EXIT_SYSTEM_EVENT:
		machine_request_power(k->m, r->system_event.type == KVM_SYSTEM_EVENT_RESET ? POWER_RESET : POWER_OFF);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		kvm_fail(k, v->index, -EIO, "kvm: the processor refused to enter the guest (reason 0x%llx, vCPU %llu)",
			 (unsigned long long)r->fail_entry.hardware_entry_failure_reason, v->index);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		k->loop.res.rip = vcpu_rip(v);
		kvm_fail(k, v->index, -EIO,
			 r->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
				 ? "kvm: /dev/kvm could not emulate an instruction at rip 0x%llx (vCPU %llu)"
				 : "kvm: internal error at rip 0x%llx (vCPU %llu)",
			 (unsigned long long)vcpu_rip(v), v->index);
		break;
	default:
		kvm_fail(k, v->index, -EIO, "kvm: unexpected exit reason %llu at rip 0x%llx", r->exit_reason,
			 (unsigned long long)vcpu_rip(v));
		break;
	}
}

/* Stop vCPU 0 for a hand-over: KVM completes a pending I/O instruction
 * on the next KVM_RUN, which immediate_exit makes return at once. */
static void vcpu_pause(struct kvm_eng *k, struct kvm_vcpu *v)
{
	v->run->immediate_exit = 1;
	pthread_mutex_unlock(&k->loop.lock);
	(void)ioctl(v->fd, KVM_RUN, 0);
	pthread_mutex_lock(&k->loop.lock);
	v->run->immediate_exit = 0;
	/* struct cpu_state has no place for an event in flight, an interrupt
	 * shadow or NMI masking: with any of them, try again at a later exit */
	struct kvm_vcpu_events ev;
	if (v->state == KV_HALTED || (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) == 0 &&
				      (ev.exception.injected || ev.exception.pending || ev.interrupt.injected ||
				       ev.interrupt.shadow || ev.nmi.injected || ev.nmi.pending || ev.nmi.masked)))
		return;
	int err = kvm_vcpu_get_state(v, k->host->final);
	if (err < 0) {
		kvm_fail(k, v->index, err, "kvm: cannot read vCPU %llu's state (%llu)", v->index,
			 (unsigned long long)-err);
		return;
	}
	vcpu_loop_finish(&k->loop, ENGINE_HANDED_OVER, v->index, k->host->final->rip);
}

/* vCPU i's thread (vcpu_loop_ops.thread: under the machine lock, released
 * around KVM_RUN). */
static void vcpu_thread(struct vcpu_loop *l, unsigned i)
{
	struct kvm_eng *k = l->opaque;
	struct kvm_vcpu *v = &k->v[i];
	kvm_tls_run = v->run;
	/* the kick (the loop unblocked the faults) */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, KVM_SIG_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	while (!l->done) {
		if (l->pausing) {
			/* a pause: stand still out of KVM_RUN until it ends, with the
			 * I/O instruction of the last exit completed (KVM finishes it at
			 * the next KVM_RUN, which immediate_exit ends before the guest
			 * runs), so that the vCPU's state is whole for a snapshot. A
			 * string I/O instruction may exit again for its next part:
			 * that exit is handled like any other. */
			for (unsigned part = 0; part < 64 && !l->done; part++) {
				v->run->immediate_exit = 1;
				pthread_mutex_unlock(&l->lock);
				int ret = ioctl(v->fd, KVM_RUN, 0);
				int err = errno;
				pthread_mutex_lock(&l->lock);
				v->run->immediate_exit = 0;
				if (ret < 0)
					break;
				vcpu_exit(k, v, ret, err);
			}
			vcpu_loop_park(l);
			continue;
		}
		vcpu_requests(k, v);
		if (l->done)
			break;
		if (v->state == KV_WAIT_SIPI || (v->state == KV_HALTED && !vcpu_wakeable(k, v->index))) {
			pthread_cond_wait(&l->vcpu_cond, &l->lock);
			continue;
		}
		if (v->state == KV_HALTED)
			vcpu_wake(v);
		vcpu_inject(k, v);
		if (l->done || l->pausing)
			continue;
		pthread_mutex_unlock(&l->lock);
		int ret = ioctl(v->fd, KVM_RUN, 0);
		int err = errno;
		v->run->immediate_exit = 0;
		pthread_mutex_lock(&l->lock);
		vcpu_exit(k, v, ret, err);
		/* a power-off or reset takes effect now, not at the main loop's
		 * next look: the guest must not run past the instruction */
		vcpu_loop_power(l, v->index);
		if (!l->done && v->index == 0 && k->host && k->host->stop_after && ret >= 0 &&
		    v->exits >= k->host->stop_after)
			vcpu_pause(k, v);
	}
	kvm_tls_run = NULL;
}

/* ---- Set-up ---- */

static int kvm_open_dev(void)
{
	int fd = open(KVM_DEV, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int v = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

static int kvm_vcpu_create(struct kvm_eng *k, unsigned i)
{
	struct kvm_vcpu *v = &k->v[i];
	v->k = k;
	v->index = i;
	v->fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
	if (v->fd < 0)
		return -errno;
	v->run = mmap(NULL, k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return -errno;
	}
	v->state = i == 0 ? KV_RUNNING : KV_WAIT_SIPI;
	return 0;
}

/* virtio's queue notifies as ioeventfds: a write there signals the fd
 * inside KVM. Without the capability they stay ordinary bus writes. */
static int kvm_doorbells(struct kvm_eng *k, const struct engine_host *host)
{
	if (!host || !host->ndoorbells || ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) <= 0)
		return 0;
	for (unsigned i = 0; i < host->ndoorbells; i++) {
		const struct engine_doorbell *d = &host->doorbells[i];
		if (d->len != 1 && d->len != 2 && d->len != 4 && d->len != 8)
			return -EINVAL;
		struct kvm_ioeventfd ev = {
			.addr = d->addr, .len = d->len, .fd = d->fd, .flags = d->pio ? KVM_IOEVENTFD_FLAG_PIO : 0};
		if (ioctl(k->vm_fd, KVM_IOEVENTFD, &ev) < 0)
			return -errno;
	}
	return 0;
}

static int kvm_setup(struct kvm_eng *k, const struct engine_host *host)
{
	int err;
	k->sys_fd = kvm_open_dev();
	if (k->sys_fd < 0)
		return k->sys_fd;
	k->vm_fd = ioctl(k->sys_fd, KVM_CREATE_VM, 0);
	if (k->vm_fd < 0)
		return -errno;
	int rs = ioctl(k->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (rs < (int)sizeof(struct kvm_run))
		return -EPROTO;
	k->run_size = (size_t)rs;
	/* Intel needs these for real mode (the SMP trampoline); harmless elsewhere */
	(void)ioctl(k->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	uint64_t idmap = 0xfffbc000ull;
	(void)ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap);

	if ((err = kvm_slots_set(k, 0)) < 0)
		return err;

	struct kvm_cpuid2 *sup;
	if ((err = kvm_cpuid_supported(k->sys_fd, &sup)) < 0)
		return err;
	if (host && host->cpu_model == CPU_MODEL_HOST) {
		k->cpuid = sup;
	} else {
		k->cpuid = kvm_cpuid_alloc();
		if (!k->cpuid) {
			free(sup);
			return -ENOMEM;
		}
		kvm_cpuid_model(sup, k->cpuid, NULL, 0);
		free(sup);
	}
	for (unsigned i = 0; i < k->n; i++)
		if ((err = kvm_vcpu_create(k, i)) < 0)
			return err;
	if ((err = kvm_doorbells(k, host)) < 0)
		return err;
	if (!host || host->cpu_model != CPU_MODEL_HOST) {
		/* The model's TSC runs at 1 GHz (leaf 0x15). Where KVM cannot scale
		 * the TSC, leaf 0x15 tells the guest the rate it really runs at:
		 * the host's. A refused KVM_SET_TSC_KHZ still leaves the rate
		 * asked for in the vCPU's clock arithmetic (and in
		 * KVM_GET_TSC_KHZ), so every vCPU is set back to the host's rate;
		 * otherwise KVM's catch-up on a host with an unstable TSC (a nested
		 * machine) moves each vCPU's TSC by the wrong rate, and Linux
		 * finds them warped by seconds. */
		int host_khz = ioctl(k->v[0].fd, KVM_GET_TSC_KHZ, 0);
		int scaled = 1;
		for (unsigned i = 0; i < k->n; i++)
			if (ioctl(k->v[i].fd, KVM_SET_TSC_KHZ, KVM_TSC_KHZ) < 0)
				scaled = 0;
		for (unsigned i = 0; !scaled && host_khz > 0 && i < k->n; i++)
			(void)ioctl(k->v[i].fd, KVM_SET_TSC_KHZ, (unsigned long)host_khz);
		for (uint32_t i = 0; !scaled && host_khz > 0 && i < k->cpuid->nent; i++)
			if (k->cpuid->entries[i].function == 0x15)
				k->cpuid->entries[i].ecx = (uint32_t)host_khz * 1000u;
	}
	for (unsigned i = 0; i < k->n; i++)
		if ((err = kvm_vcpu_set_cpuid(&k->v[i], k->cpuid)) < 0)
			return err;
	return 0;
}

static void kvm_teardown(struct kvm_eng *k)
{
	for (unsigned i = 0; i < k->n; i++) {
		struct kvm_vcpu *v = &k->v[i];
		if (v->run)
			munmap(v->run, k->run_size);
		if (v->fd >= 0)
			close(v->fd);
	}
	free(k->v);
	free(k->cpuid);
	if (k->vm_fd >= 0)
		close(k->vm_fd);
	if (k->sys_fd >= 0)
		close(k->sys_fd);
}

/* One TSC for the whole machine, as on hardware, where every core's TSC
 * starts at reset and counts at one rate. KVM gives each vCPU its own
 * offset, fixed when its TSC is written; the boot CPU's is written seconds
 * after the others were created (seconds in a nested machine), and KVM's
 * "a write within a second is a sync" heuristic does not apply across
 * KVM_SET_TSC_KHZ, so the APs' TSCs ran ahead and Linux found the TSC
 * warped between CPUs. Every vCPU takes vCPU 0's offset
 * (KVM_VCPU_TSC_OFFSET, Linux 5.16); without that attribute, vCPU 0's TSC
 * is written to the others at once, which KVM's heuristic then matches.
 * 0 or -errno. */
static int kvm_tsc_align(struct kvm_eng *k)
{
	if (k->n < 2)
		return 0;
	uint64_t off;
	struct kvm_device_attr a = {.group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET, .addr = (uintptr_t)&off};
	if (ioctl(k->v[0].fd, KVM_GET_DEVICE_ATTR, &a) == 0) {
		for (unsigned i = 1; i < k->n; i++)
			if (ioctl(k->v[i].fd, KVM_SET_DEVICE_ATTR, &a) < 0)
				return -errno;
		return 0;
	}
	if (errno != ENXIO && errno != ENOTTY && errno != EINVAL)
		return -errno;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} b = {.hdr = {.nmsrs = 1}, .e = {.index = 0x10}};
	if (ioctl(k->v[0].fd, KVM_GET_MSRS, &b) != 1)
		return -EIO;
	for (unsigned i = 1; i < k->n; i++)
		if (ioctl(k->v[i].fd, KVM_SET_MSRS, &b) != 1)
			return -EIO;
	return 0;
}

/* ---- The vCPU loop's hooks (vcpu_loop.h) ---- */

static void loop_kick(struct vcpu_loop *l, unsigned i)
{
	struct kvm_eng *k = l->opaque;
	vcpu_kick(&k->v[i]);
}

static enum engine_mp_state loop_state(struct vcpu_loop *l, unsigned i)
{
	struct kvm_eng *k = l->opaque;
	enum kvm_vstate s = k->v[i].state;
	return s == KV_HALTED ? ENGINE_VCPU_HALTED : s == KV_WAIT_SIPI ? ENGINE_VCPU_WAIT_SIPI : ENGINE_VCPU_RUNNING;
}

static int loop_wakeable(struct vcpu_loop *l, unsigned i)
{
	return vcpu_wakeable(l->opaque, i);
}

static int loop_may_wake(struct vcpu_loop *l, unsigned i)
{
	struct kvm_eng *k = l->opaque;
	return k->v[i].if_flag;
}

static uint64_t loop_rip(struct vcpu_loop *l, unsigned i)
{
	struct kvm_eng *k = l->opaque;
	return vcpu_rip(&k->v[i]);
}

/* Every vCPU as a snapshot keeps it (host->ctl->vcpus), while all stand
 * parked out of KVM_RUN (under k->lock): registers, MSRs, TSC, NMI and
 * shadow state, run state. An interrupt KVM holds injected but not yet
 * delivered goes back to the LAPIC (ISR to IRR), so that the snapshot's
 * LAPIC has it pending and this VM injects it again when it runs on.
 * Returns 0, or -1 with the reason in why. */
static int kvm_describe(struct kvm_eng *k, char *why, size_t len)
{
	struct engine_ctl *ctl = k->host->ctl;
	for (unsigned i = 0; i < k->n; i++) {
		struct kvm_vcpu *v = &k->v[i];
		struct engine_vcpu *o = &ctl->vcpus[i];
		int irq, err;
		if ((err = kvm_vcpu_get_state(v, &o->s)) < 0 || (err = kvm_vcpu_get_events(v, o, &irq)) < 0) {
			snprintf(why, len, "kvm: cannot read vCPU %u's state: %s", i, strerror(-err));
			return -1;
		}
		if (irq >= 0) {
			if ((err = kvm_vcpu_cancel_interrupt(v)) < 0) {
				snprintf(why, len, "kvm: cannot take back vCPU %u's interrupt: %s", i, strerror(-err));
				return -1;
			}
			if (lapic_unack(&k->m->lapic[i], (uint8_t)irq) < 0) {
				/* from the 8259 PIC: into the vCPU again, as it was */
				struct kvm_interrupt in = {.irq = (uint32_t)irq};
				(void)ioctl(v->fd, KVM_INTERRUPT, &in);
				snprintf(why, len, "vCPU %u is taking an interrupt from the 8259 PIC; try again", i);
				return -1;
			}
		}
		o->mp_state = v->state == KV_HALTED	 ? ENGINE_VCPU_HALTED
			      : v->state == KV_WAIT_SIPI ? ENGINE_VCPU_WAIT_SIPI
							 : ENGINE_VCPU_RUNNING;
	}
	return 0;
}

/* vcpu_loop_ops.describe: the pause's snapshot of the vCPUs, if asked for. */
static int loop_describe(struct vcpu_loop *l, char *why, size_t len)
{
	struct kvm_eng *k = l->opaque;
	struct engine_ctl *ctl = l->ctl;
	if (!ctl || !ctl->vcpus || ctl->nvcpus < k->n)
		return 1;
	return kvm_describe(k, why, len);
}

static const struct vcpu_loop_ops kvm_loop_ops = {.thread = vcpu_thread,
						  .kick = loop_kick,
						  .state = loop_state,
						  .wakeable = loop_wakeable,
						  .may_wake = loop_may_wake,
						  .describe = loop_describe,
						  .rip = loop_rip};

static int kick_signal_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kvm_on_kick;
	sigemptyset(&sa.sa_mask);
	return sigaction(KVM_SIG_KICK, &sa, NULL) < 0 ? -errno : 0;
}

static struct engine_result kvm_run(struct machine *m, const struct cpu_state *bsp, const struct engine_host *host)
{
	struct kvm_eng k = {.m = m, .host = host, .n = m->ncpus, .sys_fd = -1, .vm_fd = -1};
	struct engine_result res = {.end = ENGINE_ERROR};
	int err;

	if (host && host->stop_after && (!host->final || m->ncpus != 1)) {
		res.err = -EINVAL;
		snprintf(res.msg, sizeof(res.msg), "kvm: a hand-over needs a single-vCPU machine");
		return res;
	}
	k.v = calloc(k.n, sizeof(*k.v));
	if (!k.v) {
		res.err = -ENOMEM;
		return res;
	}
	for (unsigned i = 0; i < k.n; i++)
		k.v[i].fd = -1;
	if ((err = kick_signal_install()) < 0 || (err = kvm_setup(&k, host)) < 0) {
		res.err = err;
		snprintf(res.msg, sizeof(res.msg), "kvm: cannot set up the VM: %s", strerror(-err));
		goto out;
	}
	if (host && host->restore) {
		/* a snapshot's vCPUs, every one as it stood (under either engine):
		 * registers, MSRs and the TSC (MSR 0x10: the guest's TSC goes on
		 * from the saved value), NMI and shadow state, run state */
		for (unsigned i = 0; i < k.n; i++) {
			const struct engine_vcpu *r = &host->restore[i];
			struct kvm_vcpu *v = &k.v[i];
			if ((err = kvm_vcpu_set_state(v, &r->s)) < 0 || (err = kvm_vcpu_set_events(v, r)) < 0) {
				res.err = err;
				snprintf(res.msg, sizeof(res.msg), "kvm: cannot load vCPU %u's saved state: %s", i,
					 strerror(-err));
				goto out;
			}
			v->state = r->mp_state == ENGINE_VCPU_HALTED	  ? KV_HALTED
				   : r->mp_state == ENGINE_VCPU_WAIT_SIPI ? KV_WAIT_SIPI
									  : KV_RUNNING;
			v->if_flag = (r->s.rflags & FL_IF) != 0;
		}
	} else if ((err = kvm_vcpu_set_state(&k.v[0], bsp)) < 0) {
		res.err = err;
		snprintf(res.msg, sizeof(res.msg), "kvm: cannot load the boot CPU state: %s", strerror(-err));
		goto out;
	} else {
		k.v[0].if_flag = (bsp->rflags & FL_IF) != 0;
	}
	if ((err = kvm_tsc_align(&k)) < 0) {
		res.err = err;
		snprintf(res.msg, sizeof(res.msg), "kvm: cannot give the vCPUs one TSC: %s", strerror(-err));
		goto out;
	}

	/* The clock continues from where the previous engine left it (a
	 * hand-over from emu's instruction-driven time), then runs on host
	 * time: vcpu_loop_run. */
	k.loop = (struct vcpu_loop){.m = m, .host = host, .ops = &kvm_loop_ops, .opaque = &k, .n = k.n, .name = "kvm"};
	kvm_dirty_attach(&k);
	res = vcpu_loop_run(&k.loop);
	kvm_dirty_detach(&k);
out:
	kvm_teardown(&k);
	return res;
}

const struct engine_ops engine_kvm_ops = {.name = "kvm", .run = kvm_run};

#else /* !__x86_64__ */

/* Other hosts run x86-64 guests on emu only: KVM there runs the host's own
 * architecture (kvm_probe says so, and auto picks emu). */
#include <errno.h>
#include <stdio.h>

#include "engine/engine.h"

static struct engine_result kvm_run(struct machine *m, const struct cpu_state *bsp, const struct engine_host *host)
{
	(void)m, (void)bsp, (void)host;
	struct engine_result res = {.end = ENGINE_ERROR, .err = -EXDEV};
	snprintf(res.msg, sizeof(res.msg), "kvm: x86-64 guests run under kvm only on x86-64 hosts");
	return res;
}

const struct engine_ops engine_kvm_ops = {.name = "kvm", .run = kvm_run};

#endif
