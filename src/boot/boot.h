/* Booting a kernel: loads a Linux bzImage or vmlinux ELF kernel and an
 * initrd into a machine's RAM, builds boot_params, e820, GDT, identity page
 * tables and the ACPI tables, and sets the BSP up for the 64-bit boot
 * protocol; or loads a Multiboot kernel and its modules and enters it in
 * 32-bit protected mode as the Multiboot specification says. */
#ifndef CORRAL_BOOT_H
#define CORRAL_BOOT_H

#include <stddef.h>
#include <stdint.h>

struct machine;
struct cpu_state;

struct boot_config {
	/* initrd may be NULL (for a Multiboot kernel: FILE[,FILE...], its
	 * modules); cmdline NULL: BOOT_DEFAULT_CMDLINE (Multiboot: "") */
	const char *kernel, *initrd, *cmdline;
	uint64_t mem_size;	  /* guest RAM in bytes (as the machine was made) */
	unsigned ncpus;		  /* 1..MACHINE_MAX_CPUS */
	const char *kernel_cache; /* decompressed kernels are kept here; NULL: nowhere */
	int cmdline_default;	  /* cmdline is the caller's default for Linux, not the user's: Multiboot gets "" */
};

/* Loads cfg->kernel (and initrd, cmdline) into m and sets *bsp to the
 * kernel's entry state (the caller then loads it into vCPU 0 and calls
 * cpu_flush): 64-bit for Linux; for a Multiboot kernel (a Multiboot 1 or 2
 * header and no Linux setup header) 32-bit protected mode with EAX
 * 0x2badb002 or 0x36d76289 and EBX the information structure. Returns 0,
 * or -errno with a one-line message in err ("kernel 'x': not a bzImage or
 * ELF file (bad magic 0x1234)"). The kernel and initrd are hostile input:
 * every size and offset is checked. */
int boot_linux(struct machine *m, struct cpu_state *bsp, const struct boot_config *cfg, char *err, size_t errlen);

/* The command line when none is given: the console on COM1, kernel
 * messages only from warnings up. */
#define BOOT_DEFAULT_CMDLINE "console=ttyS0 quiet"

/* Builds the ACPI tables (RSDP at BOOT_ACPI_RSDP, XSDT, FADT, FACS, MADT,
 * DSDT) for ncpus CPUs in guest RAM. boot_linux calls it; exposed for
 * tests. Returns 0 or -errno. */
int acpi_build(struct machine *m, unsigned ncpus);
/* 1 if guest RAM holds a DSDT of acpi_build's with the VM generation ID
 * device (a guest booted by an older corral has none), else 0. */
int acpi_has_vmgenid(struct machine *m);

/* Fixed low-memory layout used for the 64-bit entry (all below 1 MiB,
 * inside RAM [0, 0x9fc00) or the BIOS area the e820 map reserves). */
#define BOOT_GDT 0x500ull	 /* GDT: null, null, __BOOT_CS, __BOOT_DS */
#define BOOT_ZERO_PAGE 0x7000ull /* struct boot_params, 4 KiB */
#define BOOT_PML4 0x9000ull	 /* identity map: PML4, PDPT, four PDs */
#define BOOT_PDPT 0xa000ull
#define BOOT_PD 0xb000ull	  /* 0xb000-0xefff: 4 x 512 2 MiB pages = 4 GiB */
#define BOOT_CMDLINE 0x20000ull	  /* kernel command line */
#define BOOT_CMDLINE_MAX 2048u	  /* bytes including the NUL (boot protocol 2.06+ default) */
#define BOOT_ACPI_RSDP 0xe0000ull /* ACPI tables from here up to 0xfffff */
#define BOOT_ACPI_END 0x100000ull
/* The VM generation ID (Microsoft's "Virtual Machine Generation ID" paper,
 * as QEMU and Hyper-V offer it): 16 bytes in the reserved BIOS area that
 * the DSDT's device VGEN names (ADDR). A clone gets new bytes there and
 * general-purpose event ACPI_GPE_VMGENID, whose \_GPE._E00 notifies VGEN. */
#define BOOT_VMGENID_ADDR 0xef000ull
#define BOOT_VMGENID_LEN 16
#define BOOT_CS 0x10
#define BOOT_DS 0x18

/* ACPI S5 (soft off): the DSDT's \_S5 package gives SLP_TYP 5, so the
 * guest powers off by writing SLP_TYP=5 | SLP_EN to PM1a_CNT
 * (PORT_ACPI_PM1_CNT): the value below. The PM device must treat a write
 * with SLP_EN set and SLP_TYP 5 as power off. */
#define ACPI_SLP_TYP_S5 5u
#define ACPI_SLP_TYP_SHIFT 10
#define ACPI_SLP_EN (1u << 13)
#define ACPI_PM1_CNT_S5 ((ACPI_SLP_TYP_S5 << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN) /* 0x3400 */
/* FADT RESET_REG: the guest writes this value to PORT_ACPI_RESET to reboot. */
#define ACPI_RESET_VALUE 0x06u

/* The default guest built by tools/mkguest.sh, in the directory dir
 * (programs take it from boot_dirs_from_env: $CORRAL_GUEST_DIR, else
 * $XDG_CACHE_HOME/corral/guest, else $HOME/.cache/corral/guest): it holds
 * BOOT_GUEST_KERNEL and BOOT_GUEST_INITRD. boot_default_guest writes both
 * paths (each buffer len bytes); returns 0, -ENOENT with a message in err
 * telling to run tools/mkguest.sh if they are missing, or -ENAMETOOLONG. */
#define BOOT_GUEST_KERNEL "vmlinuz"
#define BOOT_GUEST_INITRD "initrd.img"
int boot_default_guest(const char *dir, char *kernel, char *initrd, size_t len, char *err, size_t errlen);
/* For programs, once at start (the library reads no environment): the
 * default guest's directory and the kernel cache's ("" for none), each
 * buffer len bytes. 0 or -ENAMETOOLONG. */
int boot_dirs_from_env(char *guest_dir, char *kernel_cache, size_t len);
/* Puts the decompressed payload of the bzImage at path into the kernel
 * cache (kcache.c) unless it is there: corrald fills the cache its jailed
 * VM processes may only read. 1 if it decompressed, 0 if there was nothing
 * to do (cached, no cache, not a bzImage), or -errno with one line in err
 * (an unreadable file). A VM process still checks what it loads. */
int boot_kcache_fill(const char *cache, const char *path, char *err, size_t errlen);

#endif
