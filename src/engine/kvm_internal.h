/* The kvm engine's inside, shared by its files: kvm.c (vCPU threads,
 * exits, the main loop), kvm_state.c (struct cpu_state <-> KVM, the CPU
 * model) and kvm_probe.c (corral info, --engine auto). */
#ifndef CORRAL_KVM_INTERNAL_H
#define CORRAL_KVM_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cpu/cpu.h"
#include "engine/engine.h"
#include "engine/vcpu_loop.h"

#define KVM_DEV "/dev/kvm"
#define KVM_CPUID_MAX 128
#define KVM_TSC_KHZ 1000000u /* corral's model: a 1 GHz TSC (CPUID leaf 0x15) */

enum kvm_vstate { KV_RUNNING, KV_HALTED, KV_WAIT_SIPI };

struct kvm_eng;

struct kvm_vcpu {
	struct kvm_eng *k;
	unsigned index;
	int fd;
	struct kvm_run *run;
	enum kvm_vstate state;
	int if_flag; /* RFLAGS.IF at the last exit */
	uint64_t exits;
};

struct kvm_eng {
	struct machine *m;
	const struct engine_host *host;
	int sys_fd, vm_fd;
	size_t run_size;
	struct kvm_vcpu *v;
	unsigned n;
	struct kvm_cpuid2 *cpuid;

	/* the vCPU threads, the machine lock (devices, clock, timers, vCPU
	 * states) and the main loop: vcpu_loop.h */
	struct vcpu_loop loop;

	/* live migration's dirty log (kvm_dirty.c), under dirty_lock */
	pthread_mutex_t dirty_lock;
	int dirty_on;	  /* KVM logs the slots' writes */
	int dirty_broken; /* KVM's log failed: every page counts as written */
	uint64_t *dirty_bm;
	size_t dirty_words;
};

static inline uint64_t kvm_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- kvm_dirty.c ---- */
#define KVM_RAM_SLOTS 2 /* RAM below the 32-bit hole, RAM from 4 GiB */
/* The machine's RAM into KVM's memory slots, with flags
 * (KVM_MEM_LOG_DIRTY_PAGES or 0). 0 or -errno. */
int kvm_slots_set(struct kvm_eng *k, uint32_t flags);
/* The engine's hook into the machine's dirty log (machine_dirty_*), set
 * once the VM is made / taken away (what KVM logged since the last
 * collection goes into the machine's log first) with the vCPUs stopped. */
void kvm_dirty_attach(struct kvm_eng *k);
void kvm_dirty_detach(struct kvm_eng *k);

/* ---- kvm_state.c ---- */
/* Load *s into the vCPU / read its state into *s: registers, segments,
 * control registers, x87/SSE (through XSAVE where KVM has it), debug
 * registers, MSRs. 0 or -errno. */
int kvm_vcpu_set_state(struct kvm_vcpu *v, const struct cpu_state *s);
/* The same, leaving the vCPU's time stamp counter as it runs (INIT and
 * SIPI do not touch the TSC, SDM vol. 3 table 10-1; KVM keeps all vCPUs'
 * TSCs in step from their creation). */
int kvm_vcpu_set_state_keep_tsc(struct kvm_vcpu *v, const struct cpu_state *s);
int kvm_vcpu_get_state(struct kvm_vcpu *v, struct cpu_state *s);
/* What struct cpu_state leaves out, as struct engine_vcpu keeps it (NMI
 * pending and blocked, the interrupt shadow), from a vCPU out of KVM_RUN:
 * an NMI KVM was delivering is pending again, an exception it was
 * delivering is dropped (a fault's RIP is the instruction, which raises it
 * again). *irq: a hardware interrupt KVM holds injected but not yet
 * delivered (its vector), or -1; kvm_vcpu_cancel_interrupt drops it from
 * the vCPU, so the interrupt controller can take it back. 0 or -errno. */
int kvm_vcpu_get_events(struct kvm_vcpu *v, struct engine_vcpu *o, int *irq);
int kvm_vcpu_cancel_interrupt(struct kvm_vcpu *v);
/* Loads those events (a restore). 0 or -errno. */
int kvm_vcpu_set_events(struct kvm_vcpu *v, const struct engine_vcpu *e);
/* The power-on state of vCPU index (as cpu_reset_system). */
void kvm_state_power_on(struct cpu_state *s, unsigned index);
/* A CPUID table with room for KVM_CPUID_MAX entries. */
struct kvm_cpuid2 *kvm_cpuid_alloc(void);
const struct kvm_cpuid_entry2 *kvm_cpuid_find(const struct kvm_cpuid2 *c, uint32_t leaf, uint32_t sub);
/* KVM_GET_SUPPORTED_CPUID into a new table (*out, to free). */
int kvm_cpuid_supported(int sys_fd, struct kvm_cpuid2 **out);
/* corral's CPU model filtered by what KVM supports; the gaps go to
 * missing[] (may be NULL). */
void kvm_cpuid_model(const struct kvm_cpuid2 *sup, struct kvm_cpuid2 *out, char *missing, size_t mlen);
/* The vCPU's copy of the table, with its APIC ID. */
int kvm_vcpu_set_cpuid(struct kvm_vcpu *v, const struct kvm_cpuid2 *model);

#endif
