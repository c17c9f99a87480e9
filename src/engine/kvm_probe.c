/* What /dev/kvm offers on this host, for `corral info` and `--engine
 * auto`: API version and capabilities, the host's hypervisor, known
 * software layers, and a timed probe guest. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/kvm_internal.h"

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
	uint64_t t0 = kvm_mono_ns();
	for (unsigned guard = 0; guard < PROBE_EXITS * 2 + 16; guard++) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (v->run->exit_reason == KVM_EXIT_HLT) {
			*ns = kvm_mono_ns() - t0;
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
	if ((err = kvm_vcpu_set_cpuid(&v, model)) < 0)
		goto fail;
	struct cpu_state s;
	kvm_state_power_on(&s, 0);
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
	if ((err = kvm_vcpu_set_state(&v, &s)) < 0)
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
#if !defined(__x86_64__)
	/* KVM here runs the host's own architecture, not x86-64 */
	(void)probe;
	ki->err = -EXDEV;
	return;
#endif
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
	struct kvm_cpuid2 *sup, *model = kvm_cpuid_alloc();
	if (model && kvm_cpuid_supported(fd, &sup) == 0) {
		kvm_cpuid_model(sup, model, ki->missing, sizeof(ki->missing));
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
	else if (ki->err == -EXDEV)
		snprintf(buf, sizeof(buf), "%s: this host is not x86-64; its KVM cannot run x86-64 guests", KVM_DEV);
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
