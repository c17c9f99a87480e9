/* CPUID: the CPU model corral's interpreter presents. It advertises exactly
 * what the interpreter implements, so programs' feature checks (glibc's
 * ifunc resolvers) only pick code paths that run here. */
#include "cpu_internal.h"

/* Leaf 1 EDX: FPU PSE TSC MSR PAE CX8 APIC MTRR PGE CMOV PAT CLFSH MMX FXSR SSE SSE2 */
const uint32_t cpu_feat_1_edx = (1u << 0) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) | (1u << 9) |
				(1u << 12) | (1u << 13) | (1u << 15) | (1u << 16) | (1u << 19) | (1u << 23) |
				(1u << 24) | (1u << 25) | (1u << 26);
/* Leaf 1 ECX: SSE3 PCLMULQDQ SSSE3 CX16 SSE4.1 SSE4.2 MOVBE POPCNT (each
 * passes the differential tests against the host CPU), RDRAND, hypervisor */
const uint32_t cpu_feat_1_ecx = (1u << 0) | (1u << 1) | (1u << 9) | (1u << 13) | (1u << 19) | (1u << 20) | (1u << 22) |
				(1u << 23) | (1u << 30) | (1u << 31);
/* Leaf 7 EBX: TSC_ADJUST (MSR 0x3b), ERMS (REP MOVSB/STOSB are fast here
 * too), RDSEED. With TSC_ADJUST beside the invariant TSC, Linux trusts the
 * TSC without its clocksource watchdog (arch/x86/kernel/tsc.c,
 * check_system_tsc_reliable), which otherwise wakes an idle guest twice a
 * second to compare it with the ACPI PM timer. */
const uint32_t cpu_feat_7_ebx = (1u << 1) | (1u << 9) | (1u << 18);
const uint32_t cpu_feat_7_ecx = 0;
/* Leaf 7 EDX: ARCH_CAPABILITIES (MSR 0x10a) */
const uint32_t cpu_feat_7_edx = (1u << 29);
/* 0x80000001 ECX: LAHF/SAHF in 64-bit mode */
const uint32_t cpu_feat_81_ecx = (1u << 0);
/* 0x80000001 EDX: SYSCALL NX LM */
const uint32_t cpu_feat_81_edx = (1u << 11) | (1u << 20) | (1u << 29);

static uint32_t str4(const char *s)
{
	return (uint32_t)(uint8_t)s[0] | (uint32_t)(uint8_t)s[1] << 8 | (uint32_t)(uint8_t)s[2] << 16 |
	       (uint32_t)(uint8_t)s[3] << 24;
}

void cpu_cpuid(struct cpu *c, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
	static const char brand[48] = "corral virtual CPU";
	out[0] = out[1] = out[2] = out[3] = 0;
	switch (leaf) {
	case 0:
		out[0] = 0x15;
		out[1] = str4("Genu");
		out[3] = str4("ineI");
		out[2] = str4("ntel");
		break;
	case 1:
		/* family 6, model 0x2a, stepping 7 */
		out[0] = (0x2u << 16) | (6u << 8) | (0xau << 4) | 7u;
		/* CLFLUSH line 64 bytes, 1 logical CPU per package, initial APIC ID */
		out[1] = (8u << 8) | (1u << 16) | ((c && c->mode == CPU_MODE_SYSTEM ? c->index & 0xff : 0) << 24);
		out[2] = cpu_feat_1_ecx;
		out[3] = cpu_feat_1_edx;
		break;
	case 2:
		out[0] = 0x00feff01; /* descriptor 0xff: use leaf 4 */
		break;
	case 4:
		/* Deterministic cache parameters: L1d 32K, L1i 32K, L2 1M, L3 8M */
		switch (sub) {
		case 0:
			out[0] = 0x121;
			out[1] = (7u << 22) | 63;
			out[2] = 63;
			break;
		case 1:
			out[0] = 0x122;
			out[1] = (7u << 22) | 63;
			out[2] = 63;
			break;
		case 2:
			out[0] = 0x143;
			out[1] = (15u << 22) | 63;
			out[2] = 1023;
			break;
		case 3:
			out[0] = 0x163;
			out[1] = (15u << 22) | 63;
			out[2] = 8191;
			break;
		}
		break;
	case 7:
		if (sub == 0) {
			out[1] = cpu_feat_7_ebx;
			out[2] = cpu_feat_7_ecx;
			out[3] = cpu_feat_7_edx;
		}
		break;
	case 0x15:
		/* TSC = 1 GHz crystal * 1/1: the TSC counts virtual nanoseconds */
		out[0] = 1;
		out[1] = 1;
		out[2] = 1000000000;
		break;
	case 0x80000000: out[0] = 0x80000008; break;
	case 0x80000007:
		out[3] = 1u << 8; /* invariant TSC */
		break;
	case 0x80000001:
		out[2] = cpu_feat_81_ecx;
		out[3] = cpu_feat_81_edx;
		break;
	case 0x80000002:
	case 0x80000003:
	case 0x80000004:
		for (unsigned k = 0; k < 4; k++)
			out[k] = str4(brand + (leaf - 0x80000002) * 16 + k * 4);
		break;
	case 0x80000006:
		out[2] = (1024u << 16) | (8u << 12) | 64; /* L2: 1 MiB, 8-way, 64-byte lines */
		break;
	case 0x80000008:
		out[0] = (48u << 8) | 40u; /* 48-bit virtual, 40-bit physical */
		break;
	default:
		/* Intel: leaves above the maximum return the highest basic leaf's data;
		 * zeros are what most software expects from an unknown leaf. */
		break;
	}
}
