/* `corral info`: what this host offers corral's engines (/dev/kvm, its
 * capabilities, whether it is hardware virtualization or a software layer)
 * and which engine `--engine auto` picks, with the reason. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/engine.h"

static const char *yesno(int v)
{
	return v ? "yes" : "no";
}

int cmd_info(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
			printf("usage: corral info\n\nReports what /dev/kvm offers on this host and which engine "
			       "'corral run --engine auto' picks.\n\n"
			       "  -h, --help     show this help\n");
			return 0;
		}
		fprintf(stderr, "corral: info: unexpected argument '%s' (see 'corral info --help')\n", argv[1]);
		return 2;
	}
	struct kvm_info ki;
	kvm_probe(&ki, 1);
	char why[256];
	int kvm = kvm_auto_choice(&ki, why, sizeof(why));

	printf("corral %s\n", CORRAL_VERSION);
	printf("host:       %s\n", ki.host_hv[0] ? "a virtual machine" : "no hypervisor reported (bare metal)");
	if (ki.host_hv[0])
		printf("            hypervisor signature \"%s\" (CPUID 0x40000000)\n", ki.host_hv);
	printf("emu:        available (corral's x86-64 interpreter)\n");
	if (!ki.usable) {
		printf("kvm:        not usable: %s\n", kvm_strerror(&ki));
	} else {
		printf("kvm:        /dev/kvm, API version %d, up to %d vCPUs\n", ki.api_version, ki.max_vcpus);
		printf("            irqfd %s, ioeventfd %s, immediate_exit %s, TSC scaling %s,\n", yesno(ki.irqfd),
		       yesno(ki.ioeventfd), yesno(ki.immediate_exit), yesno(ki.tsc_control));
		printf("            split irqchip %s, user-space MSR exits %s\n", yesno(ki.split_irqchip),
		       yesno(ki.user_msr));
		printf("            provider: %s\n",
		       ki.sw_layer[0] ? ki.sw_layer : "hardware virtualization (no known software layer loaded)");
		if (ki.probe_ok)
			printf("            probe guest: %.2f us per I/O exit, %.2f ns per loop iteration\n",
			       ki.exit_us, ki.loop_ns);
		else
			printf("            probe guest: failed (%s)\n", ki.probe_err);
		printf("            CPU model 'corral': %s%s\n", ki.missing[0] ? "host lacks " : "fully supported",
		       ki.missing);
	}
	printf("auto picks: %s: %s\n", kvm ? "kvm" : "emu", why);
	return 0;
}
