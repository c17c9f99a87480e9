/* The kvm engine's pieces: struct cpu_state moved into a real KVM vCPU and
 * back (registers, segments, control registers, x87/SSE, MSRs), the x87
 * tag and segment conversions, the CPU model filter, and exit data that
 * does not add up (it must fail the run cleanly, never touch memory out of
 * bounds). The round trip needs /dev/kvm and is skipped without it. */
#include "../src/engine/kvm.c"
#include "../src/engine/kvm_probe.c"
#include "../src/engine/kvm_state.c"

#include <sys/eventfd.h>

#include "testhelp.h"

/* a canonical 48-bit address */
static uint64_t rnd_canon(void)
{
	uint64_t v = rnd() & 0x00007fffffffffffull;
	return v & ~0xfull;
}

/* a 64-bit long-mode state like the flat test guests', with random contents */
static void state_random(struct cpu_state *s)
{
	kvm_state_power_on(s, 0);
	for (int i = 0; i < 16; i++)
		s->gpr[i] = rnd();
	s->rip = 0x100000 + (rnd() & 0xfff);
	s->rflags = 2 | (rnd() & (FL_ARITH | FL_DF));
	s->cr0 = 0x80050033;
	s->cr2 = rnd_canon();
	s->cr3 = 0x2000;
	s->cr4 = 0x6a0;
	s->efer = 0xd01;
	s->seg[SEG_CS] = (struct cpu_seg){.limit = 0xffffffff, .sel = 0x08, .attr = 0xa09b};
	for (int k = 0; k < 6; k++)
		if (k != SEG_CS)
			s->seg[k] = (struct cpu_seg){.limit = 0xffffffff, .sel = 0x10, .attr = 0xc093};
	s->seg[SEG_FS].base = rnd_canon();
	s->seg[SEG_GS].base = rnd_canon();
	s->gdtr = (struct cpu_dtr){.base = 0x1000, .limit = 23};
	s->idtr = (struct cpu_dtr){.base = 0x10000, .limit = 4095};
	s->tr = (struct cpu_seg){.base = 0x3000, .limit = 0x67, .sel = 0x18, .attr = 0x8b};
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 2; j++)
			s->xmm[i].q[j] = rnd();
	s->mxcsr = MXCSR_DEFAULT | MXCSR_PE | (2u << MXCSR_RC_SHIFT);
	/* x87: TOP = 5, three registers in use (valid, zero, special) */
	s->x87.fcw = 0x27f;
	s->x87.fsw = 5u << 11;
	s->x87.ftw = 0xffff;
	s->x87.st[5] = (struct cpu_f80){.mant = 0xc000000000000000ull, .sexp = 0x3fff}; /* 1.5 */
	s->x87.st[6] = (struct cpu_f80){.mant = 0, .sexp = 0x8000};			/* -0 */
	s->x87.st[7] = (struct cpu_f80){.mant = 0xc000000000000000ull, .sexp = 0x7fff}; /* NaN */
	s->x87.ftw = (uint16_t)(0x03ff | (0u << 10) | (1u << 12) | (2u << 14));
	s->x87.fop = 0x123;
	s->x87.fip = rnd_canon();
	s->x87.fdp = rnd_canon();
	s->msr.star = 0x0023001000000000ull;
	s->msr.lstar = rnd_canon();
	s->msr.cstar = rnd_canon();
	s->msr.sfmask = 0x47700;
	s->msr.kernel_gs_base = rnd_canon();
	s->msr.sysenter_cs = 0x10;
	s->msr.sysenter_esp = rnd_canon();
	s->msr.sysenter_eip = rnd_canon();
	s->msr.tsc_aux = 7;
	s->dr[0] = rnd_canon();
	s->dr[1] = rnd_canon();
	s->dr[7] = 0x400;
	s->dr[6] = 0xffff0ff0;
	s->tsc = 500000000000000ull + (rnd() & 0xffffffffull);
}

static int tsc_fixed; /* a software layer whose guest TSC is the host's */

static void check_same_state(const struct cpu_state *a, const struct cpu_state *b)
{
	for (int i = 0; i < 16; i++)
		CHECK_EQ_U64(a->gpr[i], b->gpr[i]);
	CHECK_EQ_U64(a->rip, b->rip);
	CHECK_EQ_U64(a->rflags, b->rflags);
	for (int k = 0; k < 6; k++) {
		CHECK_EQ_U64(a->seg[k].sel, b->seg[k].sel);
		CHECK_EQ_U64(a->seg[k].base, b->seg[k].base);
		CHECK_EQ_U64(a->seg[k].attr, b->seg[k].attr);
	}
	CHECK_EQ_U64(a->tr.base, b->tr.base);
	CHECK_EQ_U64(a->tr.sel, b->tr.sel);
	CHECK_EQ_U64(a->gdtr.base, b->gdtr.base);
	CHECK_EQ_U64(a->gdtr.limit, b->gdtr.limit);
	CHECK_EQ_U64(a->idtr.base, b->idtr.base);
	CHECK_EQ_U64(a->idtr.limit, b->idtr.limit);
	CHECK_EQ_U64(a->cr0, b->cr0);
	CHECK_EQ_U64(a->cr2, b->cr2);
	CHECK_EQ_U64(a->cr3, b->cr3);
	CHECK_EQ_U64(a->cr4, b->cr4);
	CHECK_EQ_U64(a->efer, b->efer);
	for (int i = 0; i < 16; i++) {
		CHECK_EQ_U64(a->xmm[i].q[0], b->xmm[i].q[0]);
		CHECK_EQ_U64(a->xmm[i].q[1], b->xmm[i].q[1]);
	}
	CHECK_EQ_U64(a->mxcsr, b->mxcsr);
	CHECK_EQ_U64(a->x87.fcw, b->x87.fcw);
	CHECK_EQ_U64(a->x87.fsw, b->x87.fsw);
	CHECK_EQ_U64(a->x87.ftw, b->x87.ftw);
	for (int i = 5; i < 8; i++) {
		CHECK_EQ_U64(a->x87.st[i].mant, b->x87.st[i].mant);
		CHECK_EQ_U64(a->x87.st[i].sexp, b->x87.st[i].sexp);
	}
	CHECK_EQ_U64(a->msr.star, b->msr.star);
	CHECK_EQ_U64(a->msr.lstar, b->msr.lstar);
	CHECK_EQ_U64(a->msr.cstar, b->msr.cstar);
	CHECK_EQ_U64(a->msr.sfmask, b->msr.sfmask);
	CHECK_EQ_U64(a->msr.kernel_gs_base, b->msr.kernel_gs_base);
	CHECK_EQ_U64(a->msr.sysenter_cs, b->msr.sysenter_cs);
	CHECK_EQ_U64(a->msr.sysenter_esp, b->msr.sysenter_esp);
	CHECK_EQ_U64(a->msr.sysenter_eip, b->msr.sysenter_eip);
	CHECK_EQ_U64(a->msr.pat, b->msr.pat);
	CHECK_EQ_U64(a->msr.tsc_aux, b->msr.tsc_aux);
	CHECK_EQ_U64(a->dr[0], b->dr[0]);
	CHECK_EQ_U64(a->dr[1], b->dr[1]);
	/* the TSC keeps counting: it only has to be at or past what was set
	 * (PVM does not offset the guest's TSC: it is the host's) */
	if (!tsc_fixed)
		CHECK(b->tsc >= a->tsc && b->tsc - a->tsc < 1000000000000ull);
}

/* 1 if /dev/kvm is there (then it must work: a present but unusable
 * /dev/kvm fails the test), 0 to skip when the host has none. */
static int have_kvm(void)
{
	struct kvm_info ki;
	kvm_probe(&ki, 0);
	if (ki.err == -ENOENT)
		return 0;
	if (!ki.usable) {
		fprintf(stderr, "  %s\n", kvm_strerror(&ki));
		CHECK(ki.usable);
		return 0;
	}
	if (ki.sw_layer[0] && strstr(ki.sw_layer, "PVM") && !tsc_fixed) {
		printf("known limit: %s keeps the guest TSC at the host's (TSC not checked)\n", ki.sw_layer);
		tsc_fixed = 1;
	}
	return ki.usable;
}

static void test_state_roundtrip_kvm(void)
{
	if (!have_kvm()) {
		TEST_SKIP("no /dev/kvm (state round trip)");
		return;
	}
	struct machine *m = NULL;
	struct machine_config cfg = {.mem_size = 16 << 20, .ncpus = 1, .serial_out_fd = -1};
	CHECK(machine_create(&m, &cfg) == 0);
	if (!m)
		return;
	struct kvm_eng k = {.m = m, .n = 1, .sys_fd = -1, .vm_fd = -1};
	k.v = calloc(1, sizeof(*k.v));
	k.v[0].fd = -1;
	CHECK(kvm_setup(&k, NULL) == 0);
	for (int round = 0; round < 20 && k.v[0].fd >= 0; round++) {
		struct cpu_state a, b;
		state_random(&a);
		CHECK(kvm_vcpu_set_state(&k.v[0], &a) == 0);
		CHECK(kvm_vcpu_get_state(&k.v[0], &b) == 0);
		check_same_state(&a, &b);
		/* and again from what KVM gave back: a fixed point */
		struct cpu_state c;
		CHECK(kvm_vcpu_set_state(&k.v[0], &b) == 0);
		CHECK(kvm_vcpu_get_state(&k.v[0], &c) == 0);
		check_same_state(&b, &c);
	}
	kvm_teardown(&k);
	machine_destroy(m);
}

static void test_fpu_conversion(void)
{
	struct cpu_state a, b;
	memset(&b, 0, sizeof(b));
	state_random(&a);
	struct kvm_fpu f, g;
	fpu_to_kvm(&a, &f);
	/* abridged tags: physical registers 5, 6, 7 in use */
	CHECK_EQ_U64(f.ftwx, 0xe0);
	/* stack order: ST(0) is physical register TOP = 5 */
	CHECK(memcmp(f.fpr[0], &a.x87.st[5].mant, 8) == 0);
	uint8_t img[512];
	fx_from_fpu(&f, img);
	fx_to_fpu(img, 3, &g);
	CHECK(memcmp(&f, &g, sizeof(f)) == 0);
	fpu_from_kvm(&g, &b);
	CHECK_EQ_U64(b.x87.ftw, a.x87.ftw); /* valid, zero, special rebuilt from contents */
	CHECK_EQ_U64(b.x87.st[7].sexp, 0x7fff);
	CHECK_EQ_U64(b.xmm[15].q[1], a.xmm[15].q[1]);
	/* XSTATE_BV clear: x87 and SSE in their init state */
	fx_to_fpu(img, 0, &g);
	CHECK_EQ_U64(g.fcw, 0x37f);
	CHECK_EQ_U64(g.ftwx, 0);
	CHECK_EQ_U64(g.xmm[3][0], 0);
}

static void test_segments(void)
{
	static const uint16_t attrs[] = {0xa09b, 0xc093, 0x9b, 0x93, 0x8b, 0x82, 0x00f3, 0x40fb};
	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		struct cpu_seg s = {.base = 0x1234000, .limit = 0xfffff, .sel = 0x2b, .attr = attrs[i]}, t;
		struct kvm_segment ks;
		seg_to_kvm(&s, &ks);
		CHECK_EQ_U64(ks.unusable, !(attrs[i] & 0x80));
		seg_from_kvm(&ks, &t);
		CHECK_EQ_U64(t.attr, s.attr);
		CHECK_EQ_U64(t.base, s.base);
		CHECK_EQ_U64(t.sel, s.sel);
	}
}

/* corral's model under KVM: exactly emu's CPUID where the host has it all,
 * and the host's gaps named. */
static void test_cpuid_model(void)
{
	struct kvm_cpuid2 *sup = kvm_cpuid_alloc(), *out = kvm_cpuid_alloc();
	CHECK(sup && out);
	if (!sup || !out)
		return;
	sup->nent = 3;
	sup->entries[0] = (struct kvm_cpuid_entry2){.function = 1, .ecx = ~0u, .edx = ~0u};
	sup->entries[1] = (struct kvm_cpuid_entry2){
		.function = 7, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = ~0u, .ecx = ~0u, .edx = ~0u};
	sup->entries[2] = (struct kvm_cpuid_entry2){.function = 0x80000001, .ecx = ~0u, .edx = ~0u};
	char missing[128];
	kvm_cpuid_model(sup, out, missing, sizeof(missing));
	CHECK_EQ_U64(missing[0], 0);
	for (uint32_t i = 0; i < out->nent; i++) {
		uint32_t r[4];
		const struct kvm_cpuid_entry2 *e = &out->entries[i];
		cpu_cpuid(NULL, e->function, e->index, r);
		CHECK(e->eax == r[0] && e->ebx == r[1] && e->ecx == r[2] && e->edx == r[3]);
	}
	/* a host without SSE4.2 (1.ecx bit 20) */
	sup->entries[0].ecx = ~(1u << 20);
	kvm_cpuid_model(sup, out, missing, sizeof(missing));
	CHECK(strstr(missing, "1.ecx:00100000") != NULL);
	const struct kvm_cpuid_entry2 *e1 = kvm_cpuid_find(out, 1, 0);
	CHECK(e1 && !(e1->ecx & (1u << 20)) && (e1->ecx & (1u << 19)));
	/* KVM does not list the hypervisor bit (1.ecx bit 31): corral sets it
	 * itself, so it is neither missing nor dropped */
	sup->entries[0].ecx = ~(1u << 31);
	kvm_cpuid_model(sup, out, missing, sizeof(missing));
	CHECK_EQ_U64(missing[0], 0);
	e1 = kvm_cpuid_find(out, 1, 0);
	CHECK(e1 && (e1->ecx & (1u << 31)));
	free(sup);
	free(out);
}

/* Exit data that does not add up ends the run with a message. */
static void test_bad_exits(void)
{
	struct machine *m = NULL;
	struct machine_config cfg = {.mem_size = 16 << 20, .ncpus = 1, .serial_out_fd = -1};
	CHECK(machine_create(&m, &cfg) == 0);
	if (!m)
		return;
	static const struct {
		uint8_t size;
		uint32_t count;
		uint64_t off;
	} bad[] = {{3, 1, 64}, {0, 1, 64}, {4, 0, 64}, {4, 2000, 64}, {1, 1, 5000}, {2, 0xffffffffu, 4000}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kvm_eng k = {.m = m, .n = 1, .run_size = 4096};
		k.loop = (struct vcpu_loop){.m = m, .ops = &kvm_loop_ops, .opaque = &k, .n = 1, .notify_fd = -1};
		struct kvm_vcpu v = {.k = &k, .fd = -1};
		k.v = &v;
		v.run = calloc(1, 4096);
		v.run->exit_reason = KVM_EXIT_IO;
		v.run->io.direction = KVM_EXIT_IO_IN;
		v.run->io.size = bad[i].size;
		v.run->io.count = bad[i].count;
		v.run->io.data_offset = bad[i].off;
		v.run->io.port = PORT_COM1;
		exit_io(&k, &v);
		CHECK(k.loop.done && k.loop.res.end == ENGINE_ERROR && strstr(k.loop.res.msg, "malformed I/O exit"));
		free(v.run);
	}
	/* a good one: 4 bytes of rep insb from the UART scratch register */
	struct kvm_eng k = {.m = m, .n = 1, .run_size = 4096};
	k.loop = (struct vcpu_loop){.m = m, .ops = &kvm_loop_ops, .opaque = &k, .n = 1, .notify_fd = -1};
	struct kvm_vcpu v = {.k = &k, .fd = -1};
	k.v = &v;
	v.run = calloc(1, 4096);
	bus_pio_write(m, PORT_COM1 + 7, 1, 0x5a);
	v.run->io = (__typeof__(v.run->io)){
		.direction = KVM_EXIT_IO_IN, .size = 1, .port = PORT_COM1 + 7, .count = 4, .data_offset = 4092};
	exit_io(&k, &v);
	CHECK(!k.loop.done);
	CHECK(memcmp((uint8_t *)v.run + 4092, "\x5a\x5a\x5a\x5a", 4) == 0);
	/* MMIO lengths beyond 8 */
	v.run->mmio.len = 9;
	v.run->mmio.phys_addr = MEM_LAPIC_BASE;
	exit_mmio(&k, &v);
	CHECK(k.loop.done && strstr(k.loop.res.msg, "malformed MMIO exit"));
	free(v.run);
	machine_destroy(m);
}

static void test_auto_choice(void)
{
	struct kvm_info ki = {.usable = 0, .err = -ENOENT};
	char why[256];
	CHECK(kvm_auto_choice(&ki, why, sizeof(why)) == 0 && strstr(why, "No such device"));
	ki = (struct kvm_info){.usable = 1, .probe_ok = 1, .exit_us = 2, .loop_ns = 0.4};
	CHECK(kvm_auto_choice(&ki, why, sizeof(why)) == 1);
	strcpy(ki.sw_layer, "PVM");
	CHECK(kvm_auto_choice(&ki, why, sizeof(why)) == 0 && strstr(why, "PVM"));
	ki.sw_layer[0] = 0;
	ki.loop_ns = 1000;
	CHECK(kvm_auto_choice(&ki, why, sizeof(why)) == 0 && strstr(why, "software speed"));
	ki.loop_ns = 0.4;
	ki.probe_ok = 0;
	CHECK(kvm_auto_choice(&ki, why, sizeof(why)) == 0);
}

static unsigned doorbell_bus_writes;
static void doorbell_bus_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	(void)dev, (void)off, (void)size, (void)val;
	doorbell_bus_writes++;
}

/* A doorbell registered as an ioeventfd: the guest's write signals the
 * eventfd and never reaches the bus; then an ACPI power-off ends the run. */
static void test_doorbell_kvm(void)
{
	if (!have_kvm()) {
		TEST_SKIP("no /dev/kvm (doorbell)");
		return;
	}
	struct machine *m = NULL;
	struct machine_config cfg = {.mem_size = 16 << 20, .ncpus = 1, .serial_out_fd = -1};
	CHECK(machine_create(&m, &cfg) == 0);
	if (!m)
		return;
	CHECK(bus_register_pio(m, 0x99, 1, NULL, doorbell_bus_write, NULL) == 0);
	uint64_t gdt[3] = {0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
	gpa_write(m, 0x500, gdt, sizeof(gdt));
	uint64_t e = 0x2000 | 3;
	gpa_write(m, 0x1000, &e, 8);
	e = 0x3000 | 3;
	gpa_write(m, 0x2000, &e, 8);
	for (uint64_t i = 0; i < 8; i++) {
		e = (i << 21) | 0x83;
		gpa_write(m, 0x3000 + i * 8, &e, 8);
	}
	/* out %al,$0x99; out %al,$0x99; mov $0x604,%dx; mov $0x3400,%ax; out %ax,%dx; hlt */
	static const uint8_t code[] = {0xe6, 0x99, 0xe6, 0x99, 0x66, 0xba, 0x04, 0x06,
				       0x66, 0xb8, 0x00, 0x34, 0x66, 0xef, 0xf4};
	gpa_write(m, 0x10000, code, sizeof(code));
	struct cpu_state s;
	state_random(&s);
	s.rip = 0x10000;
	s.rflags = 2;
	s.cr3 = 0x1000;
	s.gdtr = (struct cpu_dtr){.base = 0x500, .limit = sizeof(gdt) - 1};
	s.idtr = (struct cpu_dtr){.base = 0, .limit = 0xfff};
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(efd >= 0);
	struct engine_doorbell d = {.addr = 0x99, .len = 1, .pio = 1, .fd = efd};
	struct engine_host host = {.doorbells = &d, .ndoorbells = 1};
	struct engine_result r = engine_run(ENGINE_KVM, m, &s, &host);
	CHECK_EQ_U64(r.end, ENGINE_POWER_OFF);
	uint64_t n = 0;
	CHECK(read(efd, &n, 8) == 8);
	CHECK_EQ_U64(n, 2);
	CHECK_EQ_U64(doorbell_bus_writes, 0);
	close(efd);
	machine_destroy(m);
}

int main(void)
{
	test_rng = 0x243f6a8885a308d3ull; /* this test's own sequence */
	RUN(test_segments);
	RUN(test_fpu_conversion);
	RUN(test_cpuid_model);
	RUN(test_bad_exits);
	RUN(test_auto_choice);
	RUN(test_state_roundtrip_kvm);
	RUN(test_doorbell_kvm);
	return test_report();
}
