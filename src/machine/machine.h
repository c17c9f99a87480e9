/* The virtual PC: guest physical memory, port and MMIO buses, interrupt
 * routing, the virtual clock, and the devices that hang off them. Engine-
 * independent: the emu engine (cpu/ in system mode) and later kvm call into
 * it for every I/O access. */
#ifndef CORRAL_MACHINE_H
#define CORRAL_MACHINE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---- The PC memory map ---- */
#define MEM_LOW_END 0xc0000000ull	/* RAM below 4 GiB ends here at most */
#define MEM_HOLE_END 0x100000000ull	/* 32-bit MMIO hole [MEM_LOW_END, 4 GiB) */
#define MEM_PCI_MMIO_BASE 0xc0000000ull /* 32-bit window for PCI BARs */
#define MEM_PCI_MMIO_END 0xdfffffffull
#define MEM_PCI_ECAM_BASE 0xe0000000ull /* PCIe ECAM, buses 0-255 (MCFG) */
#define MEM_PCI_ECAM_SIZE 0x10000000ull
#define MEM_IOAPIC_BASE 0xfec00000ull
#define MEM_HPET_BASE 0xfed00000ull
#define MEM_LAPIC_BASE 0xfee00000ull
#define MEM_EBDA_START 0x9fc00ull     /* 0x9fc00-0xfffff: reserved in e820 */
#define MEM_HIGH_START 0x100000000ull /* RAM above the hole continues here */

/* ---- Fixed ISA ports and IRQs ---- */
#define PORT_COM1 0x3f8
#define IRQ_COM1 4
#define PORT_PIT 0x40	   /* 0x40-0x43, IRQ 0 */
#define PORT_PIT_GATE 0x61 /* speaker/gate port B */
#define PORT_PIC1 0x20
#define PORT_PIC2 0xa0
#define PORT_ELCR 0x4d0	   /* 0x4d0-0x4d1 edge/level control */
#define PORT_RTC 0x70	   /* 0x70-0x71, IRQ 8 */
#define PORT_I8042 0x60	   /* 0x60 data, 0x64 command/status */
#define PORT_ACPI_PM 0x600 /* PM1a_EVT 0x600-0x603, PM1a_CNT 0x604-0x605, PM_TMR 0x608 */
#define PORT_ACPI_PM1_CNT (PORT_ACPI_PM + 4)
#define PORT_ACPI_PM_TMR (PORT_ACPI_PM + 8)
#define PORT_ACPI_GPE0 (PORT_ACPI_PM + 12) /* GPE0_STS 0x60c-0x60d, GPE0_EN 0x60e-0x60f */
#define ACPI_GPE0_LEN 4
#define ACPI_GPE_VMGENID 0 /* the DSDT's \_GPE._E00: the VM generation ID changed */
#define PORT_ACPI_RESET 0xcf9
#define IRQ_ACPI_SCI 9
#define PORT_PCI_CONF 0xcf8 /* 0xcf8-0xcff, configuration mechanism #1 */
#define GSI_PCI_BASE 16	    /* PCI INTx: GSIs 16-23, level (DSDT _PRT) */
#define GSI_PCI_COUNT 8

#define MACHINE_MAX_CPUS 64

struct machine;

/* An I/O handler: off is relative to the region's base; size 1, 2, 4 or 8.
 * Reads of unclaimed ports/addresses return all ones; writes are dropped. */
typedef uint64_t (*io_read_fn)(void *dev, uint64_t off, unsigned size);
typedef void (*io_write_fn)(void *dev, uint64_t off, unsigned size, uint64_t val);

int bus_register_pio(struct machine *m, uint16_t base, uint16_t len, io_read_fn rd, io_write_fn wr, void *dev);
int bus_register_mmio(struct machine *m, uint64_t base, uint64_t len, io_read_fn rd, io_write_fn wr, void *dev);
/* Removes the MMIO region at base registered with dev: 0 or -ENOENT. */
int bus_unregister_mmio(struct machine *m, uint64_t base, void *dev);
uint64_t bus_pio_read(struct machine *m, uint16_t port, unsigned size);
void bus_pio_write(struct machine *m, uint16_t port, unsigned size, uint64_t val);
uint64_t bus_mmio_read(struct machine *m, uint64_t gpa, unsigned size);
void bus_mmio_write(struct machine *m, uint64_t gpa, unsigned size, uint64_t val);

/* ---- Guest physical memory ----
 * The one checked helper for device and loader access to guest RAM: a host
 * pointer to [gpa, gpa+len) if that range is entirely RAM, else NULL. */
void *gpa_ptr(struct machine *m, uint64_t gpa, uint64_t len);
int gpa_read(struct machine *m, uint64_t gpa, void *dst, size_t len);
int gpa_write(struct machine *m, uint64_t gpa, const void *src, size_t len);
/* A device is about to write [host, host+len) of guest RAM (a host pointer
 * from gpa_ptr) without a vCPU: decoded code cached from those pages must
 * go (the CPU's hook, when one is set). gpa_write calls it itself. */
void gpa_dma_written(struct machine *m, void *host, uint64_t len);
void machine_set_dma_hook(struct machine *m, void (*fn)(void *opaque, void *host, uint64_t len), void *opaque);

/* Gives the host memory under [host, host+len) of guest RAM back (the
 * balloon): both page aligned and inside RAM, else -EINVAL. Afterwards the
 * pages read as zeros and are ordinary RAM again when touched; decoded code
 * there is dropped and the dirty log marks them. Anonymous RAM is
 * madvise(MADV_DONTNEED)'d; RAM mapped from a snapshot's file (which
 * MADV_DONTNEED would show again) gets anonymous pages mapped over it, up
 * to MACHINE_DISCARD_MAPS such mappings, and is zeroed in place beyond. */
#define MACHINE_DISCARD_MAPS 16384
int machine_ram_discard(struct machine *m, void *host, uint64_t len);

/* Live migration's dirty log: which RAM pages were written since the last
 * collection, by vCPUs and devices alike. machine_dirty_start (every page
 * counts as clean), machine_dirty_collect and machine_dirty_stop are called
 * while the engine stands paused (or before it runs). collect ORs the pages
 * written since the last call into bitmap (a bit per page, from bit 0 of
 * word 0), clears the log, arms the engine again and returns how many pages
 * it found. A running engine sets its hook (NULL: none): arm(opaque, log)
 * makes its vCPUs log into log from now on (NULL: stop), and is called at
 * once when the log is on. A machine reset marks every page. */
int machine_dirty_start(struct machine *m);
uint64_t machine_dirty_collect(struct machine *m, uint64_t *bitmap);
void machine_dirty_stop(struct machine *m);
void machine_set_dirty_hook(struct machine *m, void (*arm)(void *opaque, uint8_t *log), void *opaque);

/* ---- Interrupts ----
 * ISA IRQ 0-15 go to both the 8259 pair and IOAPIC pins (IRQ 0 to pin 2, as
 * ACPI's interrupt source override says); GSIs 16-23 only to the IOAPIC. */
void irq_set_level(struct machine *m, unsigned gsi, int level);
void irq_pulse(struct machine *m, unsigned gsi);
/* Per vCPU: a maskable interrupt is ready (LAPIC, or the PIC in ExtINT/
 * virtual-wire mode); ack returns its vector and moves it in service. */
int intr_pending(struct machine *m, unsigned cpu);
int intr_ack(struct machine *m, unsigned cpu);
/* NMI/INIT/SIPI requests for a vCPU (from IPIs), consumed by the engine. */
enum { VCPU_REQ_NMI = 1, VCPU_REQ_INIT = 2, VCPU_REQ_SIPI = 4 };
unsigned vcpu_take_requests(struct machine *m, unsigned cpu, uint8_t *sipi_vector);
/* LAPIC registers in x2APIC MSR form (0x800-0x8ff) and IA32_APIC_BASE:
 * return 0, or -1 for #GP. */
int lapic_msr_read(struct machine *m, unsigned cpu, uint32_t msr, uint64_t *val);
int lapic_msr_write(struct machine *m, unsigned cpu, uint32_t msr, uint64_t val);

/* ---- Virtual time ----
 * Nanoseconds since the machine started. When every vCPU is halted the
 * clock jumps to the next timer deadline instead of sleeping. */
uint64_t clock_ns(struct machine *m);
struct mtimer;
typedef void (*mtimer_fn)(void *opaque);
struct mtimer *mtimer_new(struct machine *m, mtimer_fn fn, void *opaque);
void mtimer_arm(struct mtimer *t, uint64_t deadline_ns); /* absolute, clock_ns() time */
void mtimer_cancel(struct mtimer *t);
/* Run expired timers; returns the next deadline (UINT64_MAX if none). */
uint64_t mtimer_run_expired(struct machine *m);

/* ---- Work from host threads ----
 * Device state belongs to the thread that runs the machine's devices; a
 * backend's own thread (a network's) must not touch it. The device
 * registers a handler, the backend's thread calls machine_io_request, and
 * the engine runs the handler soon on its own thread (machine_io_run): at
 * once if every vCPU is idle, else after the running vCPU's turn (a slice
 * of at most a few milliseconds). */
#define MACHINE_MAX_IO 8
typedef void (*mio_fn)(void *opaque);
/* Returns the handler's id, or -ENOSPC / -errno. */
int machine_io_register(struct machine *m, mio_fn fn, void *opaque);
/* Any thread, any time (also from inside a handler). */
void machine_io_request(struct machine *m, int id);
/* Engine: runs the requested handlers; returns how many ran. */
int machine_io_run(struct machine *m);
/* Engine: readable while requests wait (poll it when idle); -1 when no
 * handler is registered, so that nothing can ever arrive from the host. */
int machine_io_fd(const struct machine *m);

/* ---- Power ---- */
enum machine_power { POWER_ON, POWER_OFF, POWER_RESET };
void machine_request_power(struct machine *m, enum machine_power p);

#endif
