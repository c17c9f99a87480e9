/* The kvm engine's state moves: struct cpu_state (the state both engines
 * and snapshots share) into a KVM vCPU and back, and the CPU model the
 * guest sees under kvm (corral's, filtered by what KVM supports). */
#if defined(__x86_64__) /* see kvm.c */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "engine/kvm_internal.h"
#include "machine/machine.h"

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
	/* A whole standard-format image (XCOMP_BV 0): x87 and SSE as given,
	 * every other component in its init state (cpu_state has none). */
	struct kvm_xsave xs;
	memset(&xs, 0, sizeof(xs));
	uint8_t *img = (uint8_t *)xs.region;
	fx_from_fpu(f, img);
	uint64_t bv = 3;
	memcpy(img + 512, &bv, 8);
	if (ioctl(v->fd, KVM_SET_XSAVE, &xs) == 0)
		return 0;
	return ioctl(v->fd, KVM_SET_FPU, f) < 0 ? -errno : 0;
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
static int vcpu_set_state(struct kvm_vcpu *v, const struct cpu_state *s, int keep_tsc)
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

	/* XCR0 (AVX state enabled by the guest); 0 in a state that never set
	 * it means x87 only, the power-on value */
	struct kvm_xcrs x = {.nr_xcrs = 1, .xcrs = {{.xcr = 0, .value = s->xcr0 ? s->xcr0 : 1}}};
	if (ioctl(v->fd, KVM_SET_XCRS, &x) < 0 && x.xcrs[0].value != 1)
		return -errno;

	/* One KVM_SET_MSRS for all; KVM stops at the first MSR it refuses (a
	 * host without MTRRs...), which is skipped and the rest sent again. */
	struct cpu_state tmp = *s;
	struct kvm_msr_buf b = {.hdr = {.nmsrs = 0}};
	for (unsigned i = 0; i < KVM_NMSR; i++) {
		struct kvm_msr_entry *e = &b.e[b.hdr.nmsrs];
		memset(e, 0, sizeof(*e));
		e->data = *msr_slot(&tmp, i, &e->index);
		if (e->index != MSR_MISC_ENABLE && e->index != MSR_TSC_ADJUST && /* KVM keeps its own */
		    !(keep_tsc && e->index == MSR_TSC))
			b.hdr.nmsrs++;
	}
	for (unsigned done = 0; done < b.hdr.nmsrs;) {
		struct kvm_msr_buf part = {.hdr = {.nmsrs = b.hdr.nmsrs - done}};
		memcpy(part.e, b.e + done, part.hdr.nmsrs * sizeof(part.e[0]));
		int n = ioctl(v->fd, KVM_SET_MSRS, &part);
		if (n < 0)
			return -errno;
		done += (unsigned)n + 1; /* n set, then one refused (or the end) */
	}
	return 0;
}

int kvm_vcpu_set_state(struct kvm_vcpu *v, const struct cpu_state *s)
{
	return vcpu_set_state(v, s, 0);
}

int kvm_vcpu_set_state_keep_tsc(struct kvm_vcpu *v, const struct cpu_state *s)
{
	return vcpu_set_state(v, s, 1);
}

int kvm_vcpu_get_state(struct kvm_vcpu *v, struct cpu_state *s)
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
	struct kvm_xcrs x;
	if (ioctl(v->fd, KVM_GET_XCRS, &x) == 0)
		for (uint32_t i = 0; i < x.nr_xcrs && i < KVM_MAX_XCRS; i++)
			if (x.xcrs[i].xcr == 0)
				s->xcr0 = x.xcrs[i].value;
	for (unsigned i = 0; i < KVM_NMSR; i++) {
		struct kvm_msr_buf b = {.hdr = {.nmsrs = 1}};
		uint64_t *slot = msr_slot(s, i, &b.e[0].index);
		if (ioctl(v->fd, KVM_GET_MSRS, &b) == 1)
			*slot = b.e[0].data;
	}
	return 0;
}

int kvm_vcpu_get_events(struct kvm_vcpu *v, struct engine_vcpu *o, int *irq)
{
	struct kvm_vcpu_events ev;
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	/* an injected software interrupt (INT n) is dropped like an exception:
	 * RIP is still at its instruction, which raises it again */
	*irq = ev.interrupt.injected && !ev.interrupt.soft ? ev.interrupt.nr : -1;
	/* an NMI being delivered has not blocked NMIs yet: it is pending */
	o->nmi_pending = ev.nmi.pending || ev.nmi.injected;
	o->nmi_blocked = ev.nmi.masked && !ev.nmi.injected;
	o->irq_shadow = ev.interrupt.shadow != 0;
	return 0;
}

int kvm_vcpu_cancel_interrupt(struct kvm_vcpu *v)
{
	struct kvm_vcpu_events ev;
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	ev.interrupt.injected = 0;
	ev.flags = 0; /* NMI pending, shadow and SIPI vector stay as they are */
	return ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0 ? -errno : 0;
}

int kvm_vcpu_set_events(struct kvm_vcpu *v, const struct engine_vcpu *e)
{
	struct kvm_vcpu_events ev;
	memset(&ev, 0, sizeof(ev));
	ev.nmi.pending = e->nmi_pending;
	ev.nmi.masked = e->nmi_blocked;
	/* struct engine_vcpu does not say which instruction made the shadow:
	 * STI's needs IF set (VM entry checks it, SDM 26.3.1.5), MOV SS's not */
	if (e->irq_shadow)
		ev.interrupt.shadow = (e->s.rflags & FL_IF) ? KVM_X86_SHADOW_INT_STI : KVM_X86_SHADOW_INT_MOV_SS;
	ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
	return ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0 ? -errno : 0;
}

/* The power-on state of an AP before its SIPI (as cpu_reset_system). */
void kvm_state_power_on(struct cpu_state *s, unsigned index)
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

struct kvm_cpuid2 *kvm_cpuid_alloc(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + KVM_CPUID_MAX * sizeof(struct kvm_cpuid_entry2));
	if (c)
		c->nent = KVM_CPUID_MAX;
	return c;
}

const struct kvm_cpuid_entry2 *kvm_cpuid_find(const struct kvm_cpuid2 *c, uint32_t leaf, uint32_t sub)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == leaf && (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == sub))
			return e;
	}
	return NULL;
}

/* Bits a VMM sets itself whatever KVM_GET_SUPPORTED_CPUID says: the
 * hypervisor bit, CPUID.1.ECX[31] (Intel SDM vol. 2A, CPUID: "not used,
 * always returns 0" on hardware; KVM leaves it to user space). */
#define KVM_CPUID_1_ECX_VMM (1u << 31)

/* corral's model (cpu/cpuid.c) for the leaves a guest reads, with each
 * feature register ANDed with what KVM can give; what the host lacks goes to
 * missing[] (the guest's view then differs from emu's). */
void kvm_cpuid_model(const struct kvm_cpuid2 *sup, struct kvm_cpuid2 *out, char *missing, size_t mlen)
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
				const struct kvm_cpuid_entry2 *h = kvm_cpuid_find(sup, leaf, 0);
				uint32_t have = 0;
				if (h)
					have = feat[fi].reg == 0   ? h->eax
					       : feat[fi].reg == 1 ? h->ebx
					       : feat[fi].reg == 2 ? h->ecx
								   : h->edx;
				if (leaf == 1 && feat[fi].reg == 2)
					have |= KVM_CPUID_1_ECX_VMM;
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

int kvm_cpuid_supported(int sys_fd, struct kvm_cpuid2 **out)
{
	struct kvm_cpuid2 *c = kvm_cpuid_alloc();
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
int kvm_vcpu_set_cpuid(struct kvm_vcpu *v, const struct kvm_cpuid2 *model)
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

#endif
