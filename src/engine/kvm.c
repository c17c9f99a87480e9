/* The kvm engine: runs a machine's vCPUs on the host processor through
 * /dev/kvm, one host thread per vCPU. I/O exits go to the machine's port
 * and MMIO buses under one machine lock, so the devices are the same code
 * as under emu; the caller's thread runs the timers, host input and the
 * idle-time skip. corral's own PIC/IOAPIC/LAPIC are the interrupt
 * controllers (no in-kernel irqchip): their state is the one snapshots
 * store, and interrupts reach the guest through KVM_INTERRUPT. */
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

#include "cpu/cpu.h"
#include "engine/engine.h"
#include "machine/machine_impl.h"

#define KVM_DEV "/dev/kvm"
#define KVM_WAIT_NS 10000000ull			  /* the main loop looks at input and signals this often */
#define KVM_IDLE_LEAD_NS (300ull * 1000000000ull) /* as emu: idle guest time may lead the wall clock by this */
#define KVM_CPUID_MAX 128
#define KVM_TSC_KHZ 1000000u /* corral's model: a 1 GHz TSC (CPUID leaf 0x15) */

enum kvm_vstate { KV_RUNNING, KV_HALTED, KV_WAIT_SIPI };

struct kvm_eng;

struct kvm_vcpu {
	struct kvm_eng *k;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thr;
	int started;
	enum kvm_vstate state;
	int if_flag; /* RFLAGS.IF at the last exit */
	uint64_t exits;
};

struct kvm_eng {
	struct machine *m;
	const struct emu_host *host;
	int sys_fd, vm_fd;
	size_t run_size;
	struct kvm_vcpu *v;
	unsigned n;
	struct kvm_cpuid2 *cpuid;

	pthread_mutex_t lock; /* the machine: devices, clock, timers, vCPU states */
	pthread_cond_t vcpu_cond, main_cond;
	int done;
	struct emu_result res;
};

static volatile sig_atomic_t kvm_stopping;
static __thread struct kvm_run *volatile kvm_tls_run;
static int kvm_sig_kick;

void kvm_stop_async(void)
{
	kvm_stopping = 1;
}

/* The kick signal: makes this thread's KVM_RUN return (or not start). */
static void kvm_on_kick(int sig)
{
	(void)sig;
	struct kvm_run *r = kvm_tls_run;
	if (r)
		r->immediate_exit = 1;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- State: struct cpu_state <-> KVM ---- */

static void seg_to_kvm(const struct cpu_seg *s, struct kvm_segment *k)
{
	memset(k, 0, sizeof(*k));
	k->base = s->base;
	k->limit = s->limit;
	k->selector = s->sel;
	k->type = s->attr & 15;
	k->s = (s->attr >> 4) & 1;
	k->dpl = (s->attr >> 5) & 3;
	k->present = (s->attr >> 7) & 1;
	k->avl = (s->attr >> 12) & 1;
	k->l = (s->attr >> 13) & 1;
	k->db = (s->attr >> 14) & 1;
	k->g = (s->attr >> 15) & 1;
	k->unusable = !k->present;
}

static void seg_from_kvm(const struct kvm_segment *k, struct cpu_seg *s)
{
	s->base = k->base;
	s->limit = k->limit;
	s->sel = k->selector;
	s->attr = (uint16_t)((k->type & 15) | (k->s & 1) << 4 | (k->dpl & 3) << 5 | (k->present & 1) << 7 |
			     (k->avl & 1) << 12 | (k->l & 1) << 13 | (k->db & 1) << 14 | (k->g & 1) << 15);
	if (k->unusable)
		s->attr &= (uint16_t)~0x80u;
}

/* KVM's segment order in struct kvm_sregs, by corral's SEG_* index */
static struct kvm_segment *sreg_seg(struct kvm_sregs *sr, int k)
{
	switch (k) {
	case SEG_ES: return &sr->es;
	case SEG_CS: return &sr->cs;
	case SEG_SS: return &sr->ss;
	case SEG_DS: return &sr->ds;
	case SEG_FS: return &sr->fs;
	default: return &sr->gs;
	}
}

/* x87 tag of a register from its contents (FXSAVE keeps only empty or not):
 * 0 valid, 1 zero, 2 special. */
static unsigned f80_tag(const struct cpu_f80 *f)
{
	unsigned exp = f->sexp & 0x7fff;
	if (exp == 0x7fff)
		return 2;
	if (exp == 0)
		return f->mant ? 2 : 1;
	return (f->mant >> 63) ? 0 : 2;
}

static void fpu_to_kvm(const struct cpu_state *s, struct kvm_fpu *f)
{
	memset(f, 0, sizeof(*f));
	unsigned top = (s->x87.fsw >> 11) & 7;
	/* FXSAVE's register area is in stack order: ST(0) first */
	for (unsigned i = 0; i < 8; i++) {
		const struct cpu_f80 *r = &s->x87.st[(top + i) & 7];
		memcpy(f->fpr[i], &r->mant, 8);
		memcpy(f->fpr[i] + 8, &r->sexp, 2);
	}
	f->fcw = s->x87.fcw;
	f->fsw = s->x87.fsw;
	for (unsigned p = 0; p < 8; p++)
		if (((s->x87.ftw >> (2 * p)) & 3) != 3)
			f->ftwx |= (uint8_t)(1u << p);
	f->last_opcode = s->x87.fop;
	f->last_ip = s->x87.fip;
	f->last_dp = s->x87.fdp;
	for (unsigned i = 0; i < 16; i++)
		memcpy(f->xmm[i], s->xmm[i].b, 16);
	f->mxcsr = s->mxcsr;
}

static void fpu_from_kvm(const struct kvm_fpu *f, struct cpu_state *s)
{
	unsigned top = (f->fsw >> 11) & 7;
	for (unsigned i = 0; i < 8; i++) {
		struct cpu_f80 *r = &s->x87.st[(top + i) & 7];
		memcpy(&r->mant, f->fpr[i], 8);
		memcpy(&r->sexp, f->fpr[i] + 8, 2);
	}
	s->x87.fcw = f->fcw;
	s->x87.fsw = f->fsw;
	s->x87.ftw = 0;
	for (unsigned p = 0; p < 8; p++) {
		unsigned t = (f->ftwx >> p) & 1 ? f80_tag(&s->x87.st[p]) : 3;
		s->x87.ftw |= (uint16_t)(t << (2 * p));
	}
	s->x87.fop = f->last_opcode;
	s->x87.fip = f->last_ip;
	s->x87.fdp = f->last_dp;
	for (unsigned i = 0; i < 16; i++)
		memcpy(s->xmm[i].b, f->xmm[i], 16);
	s->mxcsr = f->mxcsr;
}

/* FPU/SSE state through KVM_{GET,SET}_XSAVE where KVM has it: KVM_SET_FPU
 * writes the legacy area but leaves XSTATE_BV alone, so registers in their
 * init state (XSTATE_BV bits clear) would come back as zeros on the next
 * XRSTOR. The legacy area is FXSAVE's 512-byte image (SDM vol. 1 10.5.1). */
static void fx_from_fpu(const struct kvm_fpu *f, uint8_t *img)
{
	memset(img, 0, 512);
	memcpy(img + 0, &f->fcw, 2);
	memcpy(img + 2, &f->fsw, 2);
	img[4] = f->ftwx;
	memcpy(img + 6, &f->last_opcode, 2);
	memcpy(img + 8, &f->last_ip, 8);
	memcpy(img + 16, &f->last_dp, 8);
	memcpy(img + 24, &f->mxcsr, 4);
	uint32_t mask = 0xffff;
	memcpy(img + 28, &mask, 4);
	for (unsigned i = 0; i < 8; i++)
		memcpy(img + 32 + 16 * i, f->fpr[i], 10);
	for (unsigned i = 0; i < 16; i++)
		memcpy(img + 160 + 16 * i, f->xmm[i], 16);
}

static void fx_to_fpu(const uint8_t *img, uint64_t xstate_bv, struct kvm_fpu *f)
{
	memset(f, 0, sizeof(*f));
	memcpy(&f->mxcsr, img + 24, 4);
	if (xstate_bv & 1) {
		memcpy(&f->fcw, img + 0, 2);
		memcpy(&f->fsw, img + 2, 2);
		f->ftwx = img[4];
		memcpy(&f->last_opcode, img + 6, 2);
		memcpy(&f->last_ip, img + 8, 8);
		memcpy(&f->last_dp, img + 16, 8);
		for (unsigned i = 0; i < 8; i++)
			memcpy(f->fpr[i], img + 32 + 16 * i, 10);
	} else {
		f->fcw = 0x37f; /* x87 in its init state (FNINIT) */
	}
	if (xstate_bv & 2)
		for (unsigned i = 0; i < 16; i++)
			memcpy(f->xmm[i], img + 160 + 16 * i, 16);
}

static int vcpu_set_fpu(struct kvm_vcpu *v, const struct kvm_fpu *f)
{
	struct kvm_xsave xs;
	if (ioctl(v->fd, KVM_GET_XSAVE, &xs) < 0)
		return ioctl(v->fd, KVM_SET_FPU, f) < 0 ? -errno : 0;
	uint8_t *img = (uint8_t *)xs.region;
	uint64_t bv;
	fx_from_fpu(f, img);
	memcpy(&bv, img + 512, 8);
	bv |= 3; /* x87 and SSE state are what the image says */
	memcpy(img + 512, &bv, 8);
	return ioctl(v->fd, KVM_SET_XSAVE, &xs) < 0 ? -errno : 0;
}

static int vcpu_get_fpu(struct kvm_vcpu *v, struct kvm_fpu *f)
{
	struct kvm_xsave xs;
	if (ioctl(v->fd, KVM_GET_XSAVE, &xs) < 0)
		return ioctl(v->fd, KVM_GET_FPU, f) < 0 ? -errno : 0;
	const uint8_t *img = (const uint8_t *)xs.region;
	uint64_t bv;
	memcpy(&bv, img + 512, 8);
	fx_to_fpu(img, bv, f);
	return 0;
}

/* The MSRs that move with the vCPU (EFER, FS/GS base and APIC base travel
 * in kvm_sregs). */
enum {
	MSR_TSC = 0x10,
	MSR_TSC_ADJUST = 0x3b,
	MSR_SYSENTER_CS = 0x174,
	MSR_SYSENTER_ESP = 0x175,
	MSR_SYSENTER_EIP = 0x176,
	MSR_MISC_ENABLE = 0x1a0,
	MSR_MTRR_VAR = 0x200,
	MSR_MTRR_FIX64K = 0x250,
	MSR_MTRR_FIX16K = 0x258,
	MSR_MTRR_FIX4K = 0x268,
	MSR_PAT = 0x277,
	MSR_MTRR_DEF = 0x2ff,
	MSR_STAR = 0xc0000081,
	MSR_LSTAR = 0xc0000082,
	MSR_CSTAR = 0xc0000083,
	MSR_SFMASK = 0xc0000084,
	MSR_KGS_BASE = 0xc0000102,
	MSR_TSC_AUX = 0xc0000103,
};

#define KVM_NMSR (13 + 11 + 16)

/* index <-> MSR number and the cpu_state field */
static uint64_t *msr_slot(struct cpu_state *s, unsigned i, uint32_t *num)
{
	static const uint32_t fixed[11] = {MSR_MTRR_FIX64K,    MSR_MTRR_FIX16K,	   MSR_MTRR_FIX16K + 1,
					   MSR_MTRR_FIX4K,     MSR_MTRR_FIX4K + 1, MSR_MTRR_FIX4K + 2,
					   MSR_MTRR_FIX4K + 3, MSR_MTRR_FIX4K + 4, MSR_MTRR_FIX4K + 5,
					   MSR_MTRR_FIX4K + 6, MSR_MTRR_FIX4K + 7};
	struct cpu_msrs *m = &s->msr;
	switch (i) {
	case 0: *num = MSR_STAR; return &m->star;
	case 1: *num = MSR_LSTAR; return &m->lstar;
	case 2: *num = MSR_CSTAR; return &m->cstar;
	case 3: *num = MSR_SFMASK; return &m->sfmask;
	case 4: *num = MSR_KGS_BASE; return &m->kernel_gs_base;
	case 5: *num = MSR_SYSENTER_CS; return &m->sysenter_cs;
	case 6: *num = MSR_SYSENTER_ESP; return &m->sysenter_esp;
	case 7: *num = MSR_SYSENTER_EIP; return &m->sysenter_eip;
	case 8: *num = MSR_PAT; return &m->pat;
	case 9: *num = MSR_TSC_AUX; return &m->tsc_aux;
	case 10: *num = MSR_MISC_ENABLE; return &m->misc_enable;
	case 11: *num = MSR_MTRR_DEF; return &m->mtrr_def_type;
	case 12: *num = MSR_TSC; return &s->tsc;
	default: break;
	}
	if (i < 13 + 11) {
		*num = fixed[i - 13];
		return &m->mtrr_fixed[i - 13];
	}
	*num = MSR_MTRR_VAR + (i - 24);
	return &m->mtrr_var[i - 24];
}

struct kvm_msr_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[KVM_NMSR];
};

/* Loads *s into the vCPU. MSRs KVM refuses (a host without MTRRs...) are
 * skipped one by one rather than failing the whole load. */
static int vcpu_set_state(struct kvm_vcpu *v, const struct cpu_state *s)
{
	struct kvm_sregs sr;
	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return -errno;
	for (int k = 0; k < 6; k++)
		seg_to_kvm(&s->seg[k], sreg_seg(&sr, k));
	seg_to_kvm(&s->tr, &sr.tr);
	seg_to_kvm(&s->ldtr, &sr.ldt);
	sr.tr.unusable = 0;
	sr.gdt = (struct kvm_dtable){.base = s->gdtr.base, .limit = s->gdtr.limit};
	sr.idt = (struct kvm_dtable){.base = s->idtr.base, .limit = s->idtr.limit};
	sr.cr0 = s->cr0;
	sr.cr2 = s->cr2;
	sr.cr3 = s->cr3;
	sr.cr4 = s->cr4;
	sr.cr8 = s->cr8;
	sr.efer = s->efer;
	sr.apic_base = s->msr.apic_base;
	memset(sr.interrupt_bitmap, 0, sizeof(sr.interrupt_bitmap));
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0)
		return -errno;

	struct kvm_regs r = {
		.rax = s->gpr[R_RAX],
		.rbx = s->gpr[R_RBX],
		.rcx = s->gpr[R_RCX],
		.rdx = s->gpr[R_RDX],
		.rsi = s->gpr[R_RSI],
		.rdi = s->gpr[R_RDI],
		.rsp = s->gpr[R_RSP],
		.rbp = s->gpr[R_RBP],
		.r8 = s->gpr[R_R8],
		.r9 = s->gpr[R_R9],
		.r10 = s->gpr[R_R10],
		.r11 = s->gpr[R_R11],
		.r12 = s->gpr[R_R12],
		.r13 = s->gpr[R_R13],
		.r14 = s->gpr[R_R14],
		.r15 = s->gpr[R_R15],
		.rip = s->rip,
		.rflags = s->rflags | 2,
	};
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return -errno;

	struct kvm_fpu f;
	fpu_to_kvm(s, &f);
	int err = vcpu_set_fpu(v, &f);
	if (err < 0)
		return err;

	struct kvm_debugregs d = {.dr6 = s->dr[6] & 0xffffffff, .dr7 = s->dr[7] & 0xffffffff};
	memcpy(d.db, s->dr, sizeof(d.db));
	if (ioctl(v->fd, KVM_SET_DEBUGREGS, &d) < 0)
		return -errno;

	struct cpu_state tmp = *s;
	for (unsigned i = 0; i < KVM_NMSR; i++) {
		struct kvm_msr_buf b = {.hdr = {.nmsrs = 1}};
		b.e[0].data = *msr_slot(&tmp, i, &b.e[0].index);
		if (b.e[0].index == MSR_MISC_ENABLE || b.e[0].index == MSR_TSC_ADJUST)
			continue; /* KVM keeps its own view of these */
		(void)ioctl(v->fd, KVM_SET_MSRS, &b);
	}
	return 0;
}

static int vcpu_get_state(struct kvm_vcpu *v, struct cpu_state *s)
{
	struct kvm_regs r;
	struct kvm_sregs sr;
	struct kvm_fpu f;
	struct kvm_debugregs d;
	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sr) < 0 ||
	    ioctl(v->fd, KVM_GET_DEBUGREGS, &d) < 0)
		return -errno;
	int err = vcpu_get_fpu(v, &f);
	if (err < 0)
		return err;
	memset(s, 0, sizeof(*s));
	s->gpr[R_RAX] = r.rax;
	s->gpr[R_RBX] = r.rbx;
	s->gpr[R_RCX] = r.rcx;
	s->gpr[R_RDX] = r.rdx;
	s->gpr[R_RSI] = r.rsi;
	s->gpr[R_RDI] = r.rdi;
	s->gpr[R_RSP] = r.rsp;
	s->gpr[R_RBP] = r.rbp;
	s->gpr[R_R8] = r.r8;
	s->gpr[R_R9] = r.r9;
	s->gpr[R_R10] = r.r10;
	s->gpr[R_R11] = r.r11;
	s->gpr[R_R12] = r.r12;
	s->gpr[R_R13] = r.r13;
	s->gpr[R_R14] = r.r14;
	s->gpr[R_R15] = r.r15;
	s->rip = r.rip;
	s->rflags = r.rflags;
	for (int k = 0; k < 6; k++)
		seg_from_kvm(sreg_seg(&sr, k), &s->seg[k]);
	seg_from_kvm(&sr.tr, &s->tr);
	seg_from_kvm(&sr.ldt, &s->ldtr);
	s->gdtr = (struct cpu_dtr){.base = sr.gdt.base, .limit = sr.gdt.limit};
	s->idtr = (struct cpu_dtr){.base = sr.idt.base, .limit = sr.idt.limit};
	s->cr0 = sr.cr0;
	s->cr2 = sr.cr2;
	s->cr3 = sr.cr3;
	s->cr4 = sr.cr4;
	s->cr8 = sr.cr8;
	s->efer = sr.efer;
	s->msr.apic_base = sr.apic_base;
	fpu_from_kvm(&f, s);
	memcpy(s->dr, d.db, sizeof(d.db));
	s->dr[6] = d.dr6;
	s->dr[7] = d.dr7;
	s->xcr0 = 1;
	for (unsigned i = 0; i < KVM_NMSR; i++) {
		struct kvm_msr_buf b = {.hdr = {.nmsrs = 1}};
		uint64_t *slot = msr_slot(s, i, &b.e[0].index);
		if (ioctl(v->fd, KVM_GET_MSRS, &b) == 1)
			*slot = b.e[0].data;
	}
	return 0;
}

/* The power-on state of an AP before its SIPI (as cpu_reset_system). */
static void state_power_on(struct cpu_state *s, unsigned index)
{
	memset(s, 0, sizeof(*s));
	s->rflags = 2;
	s->rip = 0xfff0;
	s->seg[SEG_CS] = (struct cpu_seg){.sel = 0xf000, .base = 0xffff0000, .limit = 0xffff, .attr = 0x9b};
	for (int k = 0; k < 6; k++)
		if (k != SEG_CS)
			s->seg[k] = (struct cpu_seg){.limit = 0xffff, .attr = 0x93};
	s->gdtr.limit = s->idtr.limit = 0xffff;
	s->ldtr = (struct cpu_seg){.limit = 0xffff, .attr = 0x82};
	s->tr = (struct cpu_seg){.limit = 0xffff, .attr = 0x8b};
	s->cr0 = 0x60000010;
	s->gpr[R_RDX] = 0x000206a7;
	s->mxcsr = MXCSR_DEFAULT;
	s->x87.fcw = 0x40;
	s->x87.ftw = 0xffff;
	s->msr.pat = 0x0007040600070406ull;
	s->msr.apic_base = MEM_LAPIC_BASE | (1u << 11) | (index == 0 ? (1u << 8) : 0);
	s->msr.misc_enable = 1;
}

/* ---- CPUID ---- */

static struct kvm_cpuid2 *cpuid_alloc(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + KVM_CPUID_MAX * sizeof(struct kvm_cpuid_entry2));
	if (c)
		c->nent = KVM_CPUID_MAX;
	return c;
}

static const struct kvm_cpuid_entry2 *cpuid_find(const struct kvm_cpuid2 *c, uint32_t leaf, uint32_t sub)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == leaf && (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == sub))
			return e;
	}
	return NULL;
}

/* corral's model (cpu/cpuid.c) for the leaves a guest reads, with each
 * feature register ANDed with what KVM can give; what the host lacks goes to
 * missing[] (the guest's view then differs from emu's). */
static void cpuid_model(const struct kvm_cpuid2 *sup, struct kvm_cpuid2 *out, char *missing, size_t mlen)
{
	static const uint32_t leaves[] = {0,	      1,	  2,	      4,	  7,
					  0x15,	      0x80000000, 0x80000001, 0x80000002, 0x80000003,
					  0x80000004, 0x80000006, 0x80000007, 0x80000008};
	static const struct {
		uint32_t leaf;
		int reg;
		const char *name;
	} feat[] = {{1, 2, "1.ecx"}, {1, 3, "1.edx"},		{7, 1, "7.ebx"},
		    {7, 3, "7.edx"}, {0x80000001, 2, "81.ecx"}, {0x80000001, 3, "81.edx"}};
	uint32_t n = 0;
	if (missing && mlen)
		missing[0] = 0;
	for (size_t li = 0; li < sizeof(leaves) / sizeof(leaves[0]); li++) {
		uint32_t leaf = leaves[li];
		unsigned nsub = leaf == 4 ? 5 : 1;
		for (unsigned sub = 0; sub < nsub && n < KVM_CPUID_MAX; sub++) {
			uint32_t r[4];
			cpu_cpuid(NULL, leaf, sub, r);
			struct kvm_cpuid_entry2 *e = &out->entries[n++];
			memset(e, 0, sizeof(*e));
			e->function = leaf;
			e->index = sub;
			if (leaf == 4 || leaf == 7)
				e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
			for (size_t fi = 0; fi < sizeof(feat) / sizeof(feat[0]); fi++) {
				if (feat[fi].leaf != leaf || sub != 0)
					continue;
				const struct kvm_cpuid_entry2 *h = cpuid_find(sup, leaf, 0);
				uint32_t have = 0;
				if (h)
					have = feat[fi].reg == 0   ? h->eax
					       : feat[fi].reg == 1 ? h->ebx
					       : feat[fi].reg == 2 ? h->ecx
								   : h->edx;
				uint32_t lack = r[feat[fi].reg] & ~have;
				r[feat[fi].reg] &= have;
				if (lack && missing && strlen(missing) + 24 < mlen)
					snprintf(missing + strlen(missing), mlen - strlen(missing), "%s%s:%08x",
						 missing[0] ? " " : "", feat[fi].name, lack);
			}
			e->eax = r[0];
			e->ebx = r[1];
			e->ecx = r[2];
			e->edx = r[3];
		}
	}
	out->nent = n;
}

static int cpuid_supported(int sys_fd, struct kvm_cpuid2 **out)
{
	struct kvm_cpuid2 *c = cpuid_alloc();
	if (!c)
		return -ENOMEM;
	if (ioctl(sys_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		int err = -errno;
		free(c);
		return err;
	}
	*out = c;
	return 0;
}

/* The vCPU's own copy: initial APIC ID in leaf 1 (and leaf 0xb/0x1f under
 * the host model). */
static int vcpu_set_cpuid(struct kvm_vcpu *v, const struct kvm_cpuid2 *model)
{
	size_t sz = sizeof(*model) + model->nent * sizeof(model->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	if (!c)
		return -ENOMEM;
	memcpy(c, model, sz);
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == 1)
			e->ebx = (e->ebx & 0x00ffffff) | (v->index << 24);
		if (e->function == 0xb || e->function == 0x1f)
			e->edx = v->index;
	}
	int r = ioctl(v->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	free(c);
	return r;
}

/* ---- Interrupts and wake-ups (all under k->lock) ---- */

static void vcpu_kick(struct kvm_vcpu *v)
{
	if (v->started)
		pthread_kill(v->thr, kvm_sig_kick);
}

static int vcpu_wakeable(struct kvm_eng *k, unsigned i)
{
	struct lapic_state *s = &k->m->lapic[i].s;
	if (s->init_pending || s->sipi_pending || s->nmi_pending)
		return 1;
	return k->v[i].if_flag && intr_pending(k->m, i);
}

/* Something may have changed for the other vCPUs (an IPI, a device
 * interrupt, a timer): wake the halted, kick the running with work. */
static void kvm_notify(struct kvm_eng *k, unsigned self)
{
	pthread_cond_broadcast(&k->vcpu_cond);
	for (unsigned i = 0; i < k->n; i++) {
		if (i == self || k->v[i].state != KV_RUNNING)
			continue;
		struct lapic_state *s = &k->m->lapic[i].s;
		if (intr_pending(k->m, i) || s->nmi_pending || s->init_pending)
			vcpu_kick(&k->v[i]);
	}
}

static void kvm_finish(struct kvm_eng *k, enum emu_end end, unsigned cpu, uint64_t rip)
{
	if (k->done)
		return;
	k->done = 1;
	k->res.end = end;
	k->res.cpu = cpu;
	k->res.rip = rip;
	pthread_cond_broadcast(&k->vcpu_cond);
	pthread_cond_signal(&k->main_cond);
	for (unsigned i = 0; i < k->n; i++)
		vcpu_kick(&k->v[i]);
}

static void kvm_fail(struct kvm_eng *k, unsigned cpu, int err, const char *fmt, unsigned long long a,
		     unsigned long long b)
{
	if (k->done)
		return;
	snprintf(k->res.msg, sizeof(k->res.msg), fmt, a, b);
	k->res.err = err;
	kvm_finish(k, EMU_ERROR, cpu, k->res.rip);
}

static void machine_kick(void *opaque)
{
	struct kvm_eng *k = opaque;
	pthread_cond_signal(&k->main_cond);
	pthread_cond_broadcast(&k->vcpu_cond);
	for (unsigned i = 0; i < k->n; i++)
		if (k->v[i].state == KV_RUNNING)
			vcpu_kick(&k->v[i]);
}

/* Out of HLT: KVM completed the HLT at its exit, so the guest resumes
 * after it; what it reported then still says whether it takes interrupts. */
static void vcpu_wake(struct kvm_vcpu *v)
{
	v->state = KV_RUNNING;
	v->run->ready_for_interrupt_injection = 1;
	v->run->if_flag = (uint8_t)v->if_flag;
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
		state_power_on(&s, v->index);
		s.seg[SEG_CS].sel = (uint16_t)(vec << 8);
		s.seg[SEG_CS].base = (uint64_t)vec << 12;
		s.rip = 0;
		int err = vcpu_set_state(v, &s);
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
		kvm_notify(k, v->index);
		break;
	case KVM_EXIT_MMIO:
		exit_mmio(k, v);
		kvm_notify(k, v->index);
		break;
	case KVM_EXIT_HLT:
		v->state = KV_HALTED;
		pthread_cond_signal(&k->main_cond);
		break;
	case KVM_EXIT_IRQ_WINDOW_OPEN:
	case KVM_EXIT_INTR: break;
	case KVM_EXIT_SHUTDOWN: kvm_finish(k, EMU_TRIPLE_FAULT, v->index, vcpu_rip(v)); break;
	case KVM_EXIT_SYSTEM_EVENT:
		machine_request_power(k->m, r->system_event.type == KVM_SYSTEM_EVENT_RESET ? POWER_RESET : POWER_OFF);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		kvm_fail(k, v->index, -EIO, "kvm: the processor refused to enter the guest (reason 0x%llx, vCPU %llu)",
			 (unsigned long long)r->fail_entry.hardware_entry_failure_reason, v->index);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		k->res.rip = vcpu_rip(v);
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

/* Stop vCPU 0 at a clean point for a hand-over: KVM completes a pending
 * I/O instruction on the next KVM_RUN, which immediate_exit makes return
 * at once. */
static void vcpu_pause(struct kvm_eng *k, struct kvm_vcpu *v)
{
	v->run->immediate_exit = 1;
	pthread_mutex_unlock(&k->lock);
	(void)ioctl(v->fd, KVM_RUN, 0);
	pthread_mutex_lock(&k->lock);
	v->run->immediate_exit = 0;
	int err = vcpu_get_state(v, k->host->final);
	if (err < 0) {
		kvm_fail(k, v->index, err, "kvm: cannot read vCPU %llu's state (%llu)", v->index,
			 (unsigned long long)-err);
		return;
	}
	kvm_finish(k, EMU_PAUSED, v->index, k->host->final->rip);
}

static void *vcpu_thread(void *arg)
{
	struct kvm_vcpu *v = arg;
	struct kvm_eng *k = v->k;
	kvm_tls_run = v->run;
	sigset_t kick;
	sigemptyset(&kick);
	sigaddset(&kick, kvm_sig_kick);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);

	pthread_mutex_lock(&k->lock);
	while (!k->done) {
		vcpu_requests(k, v);
		if (k->done)
			break;
		if (v->state == KV_WAIT_SIPI || (v->state == KV_HALTED && !vcpu_wakeable(k, v->index))) {
			pthread_cond_wait(&k->vcpu_cond, &k->lock);
			continue;
		}
		if (v->state == KV_HALTED)
			vcpu_wake(v);
		vcpu_inject(k, v);
		if (k->done)
			break;
		pthread_mutex_unlock(&k->lock);
		int ret = ioctl(v->fd, KVM_RUN, 0);
		int err = errno;
		v->run->immediate_exit = 0;
		pthread_mutex_lock(&k->lock);
		vcpu_exit(k, v, ret, err);
		/* a power-off or reset takes effect now, not at the main loop's
		 * next look: the guest must not run past the instruction */
		if (!k->done && k->m->power_req != POWER_ON) {
			enum machine_power p = machine_take_power(k->m);
			kvm_finish(k, p == POWER_OFF ? EMU_POWER_OFF : EMU_RESET, v->index, 0);
		}
		if (!k->done && v->index == 0 && k->host && k->host->stop_after && ret >= 0 &&
		    v->exits >= k->host->stop_after)
			vcpu_pause(k, v);
	}
	pthread_mutex_unlock(&k->lock);
	kvm_tls_run = NULL;
	return NULL;
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
	int err = vcpu_set_cpuid(v, k->cpuid);
	if (err < 0)
		return err;
	v->state = i == 0 ? KV_RUNNING : KV_WAIT_SIPI;
	return 0;
}

/* virtio's queue notifies as ioeventfds: a write there signals the fd
 * inside KVM. Without the capability they stay ordinary bus writes. */
static int kvm_doorbells(struct kvm_eng *k, const struct emu_host *host)
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

static int kvm_setup(struct kvm_eng *k, const struct emu_host *host)
{
	struct machine *m = k->m;
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

	struct kvm_userspace_memory_region low = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = m->low_size, .userspace_addr = (uintptr_t)m->ram};
	if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &low) < 0)
		return -errno;
	if (m->mem_size > m->low_size) {
		struct kvm_userspace_memory_region high = {.slot = 1,
							   .guest_phys_addr = MEM_HIGH_START,
							   .memory_size = m->mem_size - m->low_size,
							   .userspace_addr = (uintptr_t)(m->ram + m->low_size)};
		if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &high) < 0)
			return -errno;
	}

	struct kvm_cpuid2 *sup;
	if ((err = cpuid_supported(k->sys_fd, &sup)) < 0)
		return err;
	if (host && host->cpu_model == CPU_MODEL_HOST) {
		k->cpuid = sup;
	} else {
		k->cpuid = cpuid_alloc();
		if (!k->cpuid) {
			free(sup);
			return -ENOMEM;
		}
		cpuid_model(sup, k->cpuid, NULL, 0);
		free(sup);
	}
	for (unsigned i = 0; i < k->n; i++)
		if ((err = kvm_vcpu_create(k, i)) < 0)
			return err;
	if ((err = kvm_doorbells(k, host)) < 0)
		return err;
	if (host && host->cpu_model == CPU_MODEL_HOST)
		return 0;
	/* The model's TSC runs at 1 GHz (leaf 0x15). Where KVM cannot scale the
	 * TSC, leaf 0x15 tells the guest the rate it really runs at. */
	int scaled = 1;
	for (unsigned i = 0; i < k->n; i++)
		if (ioctl(k->v[i].fd, KVM_SET_TSC_KHZ, KVM_TSC_KHZ) < 0)
			scaled = 0;
	int khz = scaled ? 0 : ioctl(k->v[0].fd, KVM_GET_TSC_KHZ, 0);
	if (khz > 0) {
		for (uint32_t i = 0; i < k->cpuid->nent; i++)
			if (k->cpuid->entries[i].function == 0x15)
				k->cpuid->entries[i].ecx = (uint32_t)khz * 1000u;
		for (unsigned i = 0; i < k->n; i++)
			if ((err = vcpu_set_cpuid(&k->v[i], k->cpuid)) < 0)
				return err;
	}
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

/* ---- The main loop: timers, input, idle ---- */

static int all_idle(struct kvm_eng *k, int *may_wake)
{
	*may_wake = 0;
	for (unsigned i = 0; i < k->n; i++) {
		struct kvm_vcpu *v = &k->v[i];
		if (v->state == KV_RUNNING || (v->state == KV_HALTED && vcpu_wakeable(k, i)))
			return 0;
		if (v->state == KV_HALTED && v->if_flag)
			*may_wake = 1;
	}
	return 1;
}

static void kvm_main_loop(struct kvm_eng *k)
{
	struct machine *m = k->m;
	const struct emu_host *host = k->host;
	int input_dead = !host || !host->poll_input;
	uint64_t wall_start = mono_ns() - clock_ns(m);
	/* host input waits until the guest had a moment to set its UART up
	 * (as under emu, where it comes between turns) */
	uint64_t last_poll = mono_ns();

	while (!k->done) {
		uart_flush(&m->com1);
		uint64_t next = mtimer_run_expired(m);
		enum machine_power p = machine_take_power(m);
		if (p == POWER_OFF || p == POWER_RESET) {
			kvm_finish(k, p == POWER_OFF ? EMU_POWER_OFF : EMU_RESET, 0, 0);
			break;
		}
		if (kvm_stopping) {
			kvm_finish(k, EMU_QUIT, 0, 0);
			break;
		}
		kvm_notify(k, k->n);

		uint64_t now_wall = mono_ns();
		int may_wake;
		int idle = all_idle(k, &may_wake);
		if (!input_dead && (idle || now_wall - last_poll >= KVM_WAIT_NS)) {
			last_poll = now_wall;
			int r = host->poll_input(host->opaque, m, 0);
			if (r < 0) {
				kvm_finish(k, EMU_QUIT, 0, 0);
				break;
			}
			if (r > 0)
				input_dead = 1;
		}

		if (idle && all_idle(k, &may_wake)) {
			if (may_wake && next != UINT64_MAX && !(host && host->realtime_idle && !input_dead)) {
				/* every vCPU waits for a timer: time jumps to it, within
				 * KVM_IDLE_LEAD_NS of the wall clock (as emu) */
				uint64_t wall = mono_ns() - wall_start;
				if (next <= wall + KVM_IDLE_LEAD_NS) {
					clock_advance_to(m, next);
					continue;
				}
			} else if (!may_wake || (next == UINT64_MAX && input_dead)) {
				struct kvm_vcpu *v0 = &k->v[0];
				kvm_finish(k, EMU_HUNG, 0, vcpu_rip(v0));
				break;
			}
		}

		/* wait for the next deadline, a vCPU's news, or KVM_WAIT_NS */
		uint64_t wait = KVM_WAIT_NS, now = clock_ns(m);
		if (next != UINT64_MAX && next > now && next - now < wait)
			wait = next - now;
		else if (next != UINT64_MAX && next <= now)
			continue;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t t = (uint64_t)ts.tv_nsec + wait;
		ts.tv_sec += (time_t)(t / 1000000000ull);
		ts.tv_nsec = (long)(t % 1000000000ull);
		pthread_cond_timedwait(&k->main_cond, &k->lock, &ts);
	}
}

static int kick_signal_install(void)
{
	kvm_sig_kick = SIGRTMIN + 2;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kvm_on_kick;
	sigemptyset(&sa.sa_mask);
	return sigaction(kvm_sig_kick, &sa, NULL) < 0 ? -errno : 0;
}

struct emu_result kvm_run(struct machine *m, const struct cpu_state *bsp, const struct emu_host *host)
{
	struct kvm_eng k = {.m = m, .host = host, .n = m->ncpus, .sys_fd = -1, .vm_fd = -1};
	struct emu_result res = {.end = EMU_ERROR};
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
	if ((err = vcpu_set_state(&k.v[0], bsp)) < 0) {
		res.err = err;
		snprintf(res.msg, sizeof(res.msg), "kvm: cannot load the boot CPU state: %s", strerror(-err));
		goto out;
	}
	k.v[0].if_flag = (bsp->rflags & FL_IF) != 0;

	/* The clock continues from where the previous engine left it (a
	 * hand-over from emu's instruction-driven time), then runs on host time. */
	uint64_t last = clock_ns(m);
	m->clock_delta = NULL;
	uint64_t host_now = mono_ns() - m->clock_start;
	m->clock_skip = last > host_now ? last - host_now : 0;

	pthread_mutex_init(&k.lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k.main_cond, &ca);
	pthread_cond_init(&k.vcpu_cond, &ca);
	pthread_condattr_destroy(&ca);

	/* vCPU threads take only the kick signal; SIGINT and friends go to
	 * this thread, which stops the VM */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_mutex_lock(&k.lock);
	m->kick = machine_kick;
	m->kick_opaque = &k;
	for (unsigned i = 0; i < k.n; i++) {
		if ((err = -pthread_create(&k.v[i].thr, NULL, vcpu_thread, &k.v[i])) < 0) {
			kvm_fail(&k, i, err, "kvm: cannot start vCPU thread %llu (%llu)", i, (unsigned long long)-err);
			break;
		}
		k.v[i].started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	kvm_main_loop(&k);
	uart_flush(&m->com1);
	pthread_mutex_unlock(&k.lock);
	for (unsigned i = 0; i < k.n; i++)
		if (k.v[i].started)
			pthread_join(k.v[i].thr, NULL);
	m->kick = NULL;
	m->kick_opaque = NULL;
	pthread_cond_destroy(&k.main_cond);
	pthread_cond_destroy(&k.vcpu_cond);
	pthread_mutex_destroy(&k.lock);
	res = k.res;
out:
	kvm_teardown(&k);
	return res;
}

/* ---- What /dev/kvm offers: corral info and --engine auto ---- */

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static void host_hypervisor(char sig[13])
{
	unsigned a, b, c, d;
	sig[0] = 0;
	__cpuid(1, a, b, c, d);
	if (!(c & (1u << 31)))
		return;
	__cpuid(0x40000000, a, b, c, d);
	memcpy(sig, &b, 4);
	memcpy(sig + 4, &c, 4);
	memcpy(sig + 8, &d, 4);
	sig[12] = 0;
	for (int i = 0; i < 12; i++)
		if (sig[i] && (sig[i] < 0x20 || sig[i] > 0x7e))
			sig[i] = '?';
	if (!sig[0])
		strcpy(sig, "(unnamed)");
}
#else
static void host_hypervisor(char sig[13])
{
	sig[0] = 0;
}
#endif

/* Software layers that offer /dev/kvm without VT-x/AMD-V underneath: they
 * run small guests but not a stock kernel at hardware speed. */
static const struct {
	const char *module, *what;
} kvm_sw_layers[] = {
	{"kvm_pvm", "PVM (module kvm_pvm), a software virtualization layer"},
};

/* The probe guest, 64-bit code at PROBE_CODE: 200 port writes (exits),
 * HLT, then a 200k-iteration dec/jnz loop, HLT. */
#define PROBE_CODE 0x10000
#define PROBE_EXITS 200u
#define PROBE_LOOPS 200000u
#define PROBE_MEM (2u << 20)

static int probe_run_until_hlt(struct kvm_vcpu *v, uint64_t *ns)
{
	uint64_t t0 = mono_ns();
	for (unsigned guard = 0; guard < PROBE_EXITS * 2 + 16; guard++) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (v->run->exit_reason == KVM_EXIT_HLT) {
			*ns = mono_ns() - t0;
			return 0;
		}
		if (v->run->exit_reason != KVM_EXIT_IO)
			return -(int)(1000 + v->run->exit_reason);
	}
	return -ELOOP;
}

static void kvm_timed_probe(struct kvm_info *ki, int sys_fd, const struct kvm_cpuid2 *model)
{
	struct kvm_eng k = {.sys_fd = -1, .vm_fd = -1, .n = 1};
	struct kvm_vcpu v = {.k = &k, .fd = -1};
	uint8_t *mem = MAP_FAILED;
	int err;
	const char *what = "create a VM";

	k.vm_fd = ioctl(sys_fd, KVM_CREATE_VM, 0);
	if (k.vm_fd < 0)
		goto fail_errno;
	int rs = ioctl(sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	k.run_size = rs > 0 ? (size_t)rs : 0;
	what = "map its memory";
	mem = mmap(NULL, PROBE_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		goto fail_errno;
	struct kvm_userspace_memory_region r = {.slot = 0, .memory_size = PROBE_MEM, .userspace_addr = (uintptr_t)mem};
	if (ioctl(k.vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		goto fail_errno;
	/* GDT at 0x500, PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000: one 2 MiB page */
	uint64_t gdt[3] = {0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
	memcpy(mem + 0x500, gdt, sizeof(gdt));
	uint64_t e = 0x2000 | 3;
	memcpy(mem + 0x1000, &e, 8);
	e = 0x3000 | 3;
	memcpy(mem + 0x2000, &e, 8);
	e = 0x83;
	memcpy(mem + 0x3000, &e, 8);
	uint8_t code[] = {0xb9, 0,    0, 0, 0, 0xe6, 0x80, 0xff, 0xc9, 0x75, 0xfa,
			  0xf4, 0xb9, 0, 0, 0, 0,    0xff, 0xc9, 0x75, 0xfc, 0xf4};
	uint32_t n1 = PROBE_EXITS, n2 = PROBE_LOOPS;
	memcpy(code + 1, &n1, 4);
	memcpy(code + 13, &n2, 4);
	memcpy(mem + PROBE_CODE, code, sizeof(code));

	what = "create a vCPU";
	v.fd = ioctl(k.vm_fd, KVM_CREATE_VCPU, 0ul);
	if (v.fd < 0)
		goto fail_errno;
	v.run = mmap(NULL, k.run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v.fd, 0);
	if (v.run == MAP_FAILED) {
		v.run = NULL;
		goto fail_errno;
	}
	what = "set its CPUID";
	if ((err = vcpu_set_cpuid(&v, model)) < 0)
		goto fail;
	struct cpu_state s;
	state_power_on(&s, 0);
	s.rip = PROBE_CODE;
	s.gpr[R_RSP] = 0x8000;
	s.cr0 = 0x80050033;
	s.cr3 = 0x1000;
	s.cr4 = 0x6a0;
	s.efer = 0xd01;
	s.seg[SEG_CS] = (struct cpu_seg){.limit = 0xffffffff, .sel = 0x08, .attr = 0xa09b};
	for (int i = 0; i < 6; i++)
		if (i != SEG_CS)
			s.seg[i] = (struct cpu_seg){.limit = 0xffffffff, .sel = 0x10, .attr = 0xc093};
	s.gdtr = (struct cpu_dtr){.base = 0x500, .limit = sizeof(gdt) - 1};
	s.x87.fcw = 0x37f;
	what = "load its state";
	if ((err = vcpu_set_state(&v, &s)) < 0)
		goto fail;
	uint64_t t_exits, t_loop;
	what = "run it";
	if ((err = probe_run_until_hlt(&v, &t_exits)) < 0 || (err = probe_run_until_hlt(&v, &t_loop)) < 0)
		goto fail;
	ki->probe_ok = 1;
	ki->exit_us = (double)t_exits / PROBE_EXITS / 1000.0;
	ki->loop_ns = (double)t_loop / PROBE_LOOPS;
	goto out;

fail_errno:
	err = -errno;
fail:
	if (err <= -1000)
		snprintf(ki->probe_err, sizeof(ki->probe_err), "could not %s: unexpected exit %d", what, -err - 1000);
	else
		snprintf(ki->probe_err, sizeof(ki->probe_err), "could not %s: %s", what, strerror(-err));
out:
	if (v.run)
		munmap(v.run, k.run_size);
	if (v.fd >= 0)
		close(v.fd);
	if (mem != MAP_FAILED)
		munmap(mem, PROBE_MEM);
	if (k.vm_fd >= 0)
		close(k.vm_fd);
}

void kvm_probe(struct kvm_info *ki, int probe)
{
	memset(ki, 0, sizeof(*ki));
	host_hypervisor(ki->host_hv);
	for (size_t i = 0; i < sizeof(kvm_sw_layers) / sizeof(kvm_sw_layers[0]); i++) {
		char path[128];
		snprintf(path, sizeof(path), "/sys/module/%s", kvm_sw_layers[i].module);
		if (access(path, F_OK) == 0) {
			snprintf(ki->sw_layer, sizeof(ki->sw_layer), "%s", kvm_sw_layers[i].what);
			break;
		}
	}
	int fd = open(KVM_DEV, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ki->err = -errno;
		return;
	}
	ki->api_version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (ki->api_version != KVM_API_VERSION) {
		ki->err = -EPROTO;
		close(fd);
		return;
	}
	ki->usable = 1;
	ki->irqfd = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) > 0;
	ki->ioeventfd = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) > 0;
	ki->immediate_exit = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) > 0;
	ki->tsc_control = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) > 0;
	ki->split_irqchip = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_SPLIT_IRQCHIP) > 0;
	ki->user_msr = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR) > 0;
	ki->max_vcpus = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	struct kvm_cpuid2 *sup, *model = cpuid_alloc();
	if (model && cpuid_supported(fd, &sup) == 0) {
		cpuid_model(sup, model, ki->missing, sizeof(ki->missing));
		free(sup);
		if (probe)
			kvm_timed_probe(ki, fd, model);
	} else if (probe) {
		snprintf(ki->probe_err, sizeof(ki->probe_err), "KVM_GET_SUPPORTED_CPUID failed");
	}
	free(model);
	close(fd);
}

const char *kvm_strerror(const struct kvm_info *ki)
{
	static char buf[160];
	if (ki->err == -EPROTO)
		snprintf(buf, sizeof(buf), "%s: API version %d, corral needs %d", KVM_DEV, ki->api_version,
			 KVM_API_VERSION);
	else if (ki->err == -ENOENT)
		snprintf(buf, sizeof(buf),
			 "%s: No such device (no KVM on this host: no VT-x/AMD-V, or the kvm "
			 "module is not loaded)",
			 KVM_DEV);
	else
		snprintf(buf, sizeof(buf), "%s: %s", KVM_DEV, strerror(ki->err ? -ki->err : EINVAL));
	return buf;
}

/* Hardware speed: a guest exit round trip in the tens of microseconds at
 * most (bare metal ~1-2 us, nested VT-x ~10-50 us) and guest loops at the
 * host's pace (a dec/jnz iteration is a cycle or two). */
#define KVM_FAST_EXIT_US 100.0
#define KVM_FAST_LOOP_NS 5.0

int kvm_auto_choice(const struct kvm_info *ki, char *why, size_t len)
{
	if (!ki->usable) {
		snprintf(why, len, "no usable /dev/kvm (%s)", kvm_strerror(ki));
		return 0;
	}
	if (ki->sw_layer[0]) {
		snprintf(why, len,
			 "/dev/kvm is provided by %s: tiny guests run, a stock kernel does not run at "
			 "hardware speed",
			 ki->sw_layer);
		return 0;
	}
	if (!ki->probe_ok) {
		snprintf(why, len, "the probe guest did not run under /dev/kvm (%s)", ki->probe_err);
		return 0;
	}
	if (ki->exit_us > KVM_FAST_EXIT_US || ki->loop_ns > KVM_FAST_LOOP_NS) {
		snprintf(why, len, "the probe guest ran at software speed (%.1f us per exit, %.2f ns per loop)",
			 ki->exit_us, ki->loop_ns);
		return 0;
	}
	snprintf(why, len, "hardware virtualization (%.1f us per exit, %.2f ns per loop)", ki->exit_us, ki->loop_ns);
	return 1;
}
