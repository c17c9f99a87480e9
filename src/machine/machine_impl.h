/* The virtual PC's inside: struct machine, the device structs and their
 * functions (register, save/load), for the engines, the CLI and the tests. */
#ifndef CORRAL_MACHINE_IMPL_H
#define CORRAL_MACHINE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "machine/machine.h"
#include "machine/pci.h"

/* ---- Save/load ----
 * Through the state stream (state/stream.h) alone, field by field, never
 * as a copy of a device's struct: xxx_state_save writes the contents of the
 * device's section, xxx_state_load reads them into a local, validates and
 * commits only if all is valid (0, or -EINVAL with the reader failed and
 * the device unchanged). The section's framing is the caller's
 * (vm/snapshot.c). */
struct state_writer;
struct state_reader;

/* ---- 8259A PIC pair ---- */
struct pic_chip {
	uint8_t irr, isr, imr, last_irr; /* last_irr: input levels, for edge detection */
	uint8_t vector_base, priority_add, irq_base_set;
	uint8_t read_isr, poll, special_mask, init_state, auto_eoi;
	uint8_t rotate_on_aeoi, special_fully_nested, init4, single;
	uint8_t elcr, elcr_mask;
};
struct pic_state {
	struct pic_chip chip[2];
};
struct pic {
	struct pic_state s;
	struct machine *m;
};
int pic_register(struct pic *p, struct machine *m);
void pic_reset(struct pic *p);
void pic_set_irq(struct pic *p, unsigned irq, int level);
int pic_output(struct pic *p); /* 1 if INTR is asserted */
int pic_intack(struct pic *p); /* vector of the interrupt acknowledged */
void pic_state_save(const struct pic *p, struct state_writer *w);
int pic_state_load(struct pic *p, struct state_reader *r);

/* ---- IOAPIC ---- */
#define IOAPIC_PINS 24
struct ioapic_state {
	uint32_t id, ioregsel;
	uint32_t irr; /* pin asserted (level) */
	uint64_t redir[IOAPIC_PINS];
};
struct ioapic {
	struct ioapic_state s;
	struct machine *m;
};
int ioapic_register(struct ioapic *io, struct machine *m);
void ioapic_reset(struct ioapic *io);
void ioapic_set_irq(struct ioapic *io, unsigned pin, int level);
void ioapic_eoi(struct ioapic *io, uint8_t vector);
void ioapic_state_save(const struct ioapic *io, struct state_writer *w);
int ioapic_state_load(struct ioapic *io, struct state_reader *r);

/* ---- Local APIC (one per vCPU) ---- */
#define LAPIC_BUS_HZ 1000000000ull   /* timer input clock before the divider: 1 ns */
#define LAPIC_MIN_PERIOD_NS 50000ull /* periodic timer floor, against interrupt storms */
struct lapic_state {
	uint64_t apic_base;
	uint32_t id, tpr, ldr, dfr, svr, esr, esr_pending;
	uint32_t isr[8], irr[8], tmr[8];
	uint32_t icr_lo, icr_hi;
	uint32_t lvt[7]; /* CMCI unused, timer, thermal, perf, LINT0, LINT1, error */
	uint32_t timer_init, timer_dcr;
	uint64_t timer_start, timer_deadline; /* clock_ns; deadline 0 = not running */
	uint64_t tsc_deadline;
	uint8_t nmi_pending, init_pending, sipi_pending, sipi_vector;
};
enum { LVT_CMCI, LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR };
struct lapic {
	struct lapic_state s;
	struct machine *m;
	struct mtimer *timer;
	unsigned index;
};
int lapic_init(struct lapic *a, struct machine *m, unsigned index);
void lapic_reset(struct lapic *a, int bsp);
void lapic_init_ipi_reset(struct lapic *a);
/* Accept an interrupt message: delivery mode (APIC_DM_*), vector, level-triggered. */
void lapic_accept(struct lapic *a, unsigned mode, uint8_t vector, int level_trig);
int lapic_pending(struct lapic *a); /* highest deliverable vector or -1 */
int lapic_ack(struct lapic *a);	    /* IRR -> ISR; returns the vector or -1 */
/* Takes back an acknowledged vector that the CPU never took (ISR -> IRR):
 * 0, or -1 if it is not in service here (it came from the 8259 PIC). */
int lapic_unack(struct lapic *a, uint8_t vector);
int lapic_ext_int_ok(struct lapic *a); /* LINT0 passes the PIC through */
uint64_t lapic_mmio_read(struct lapic *a, uint64_t off, unsigned size);
void lapic_mmio_write(struct lapic *a, uint64_t off, unsigned size, uint64_t val);
void lapic_state_save(const struct lapic *a, struct state_writer *w);
int lapic_state_load(struct lapic *a, struct state_reader *r);
/* Delivery to the LAPICs by destination (IOAPIC messages and IPIs). */
enum {
	APIC_DM_FIXED = 0,
	APIC_DM_LOWEST = 1,
	APIC_DM_SMI = 2,
	APIC_DM_NMI = 4,
	APIC_DM_INIT = 5,
	APIC_DM_SIPI = 6,
	APIC_DM_EXTINT = 7
};
void apic_deliver(struct machine *m, uint32_t dest, int logical, unsigned mode, uint8_t vector, int level_trig,
		  int x2apic);

/* ---- 8254 PIT ---- */
#define PIT_HZ 1193182ull
struct pit_channel {
	uint32_t count;	     /* reload value, 1..0x10000 */
	uint16_t latched;    /* count latch */
	uint8_t latch_state; /* 0 none, else RW_* bytes of the latch still to read */
	uint8_t status, status_latched;
	uint8_t rw_mode, read_state, write_state, write_latch;
	uint8_t mode, bcd, gate, null_count;
	uint64_t load_time; /* clock_ns when counting (re)started */
	uint64_t next_irq;  /* channel 0: clock_ns of the next IRQ edge, 0 = none */
};
struct pit_state {
	struct pit_channel ch[3];
	uint8_t speaker; /* port 0x61 bit 1 */
};
struct pit {
	struct pit_state s;
	struct machine *m;
	struct mtimer *timer;
};
int pit_register(struct pit *p, struct machine *m);
void pit_reset(struct pit *p);
int pit_get_out(struct pit *p, unsigned ch);
void pit_state_save(const struct pit *p, struct state_writer *w);
int pit_state_load(struct pit *p, struct state_reader *r);

/* ---- CMOS RTC ---- */
struct rtc_state {
	uint8_t cmos[128];
	uint8_t index, nmi_masked;
	int64_t base_sec;     /* wall time (Unix seconds) at clock_ns() == 0 */
	uint64_t last_c_read; /* clock_ns of the last register C read */
	uint64_t next_event;  /* armed interrupt time, 0 = none */
};
struct rtc {
	struct rtc_state s;
	struct machine *m;
	struct mtimer *timer;
};
int rtc_register(struct rtc *r, struct machine *m, int64_t host_sec);
void rtc_reset(struct rtc *r);
void rtc_state_save(const struct rtc *rtc, struct state_writer *w);
int rtc_state_load(struct rtc *rtc, struct state_reader *sr);

/* ---- 16550A UART ---- */
#define UART_FIFO 16
struct uart_state {
	uint8_t rbr, ier, iir, lcr, mcr, lsr, msr, scr, fcr;
	uint16_t divider;
	uint8_t thr_ipending, irq_level;
	uint8_t rx[UART_FIFO];
	uint8_t rx_head, rx_count;
};
#define UART_OUTBUF 4096
struct uart {
	struct uart_state s;
	struct machine *m;
	int out_fd; /* -1: output dropped */
	size_t out_len;
	uint8_t out[UART_OUTBUF];
};
int uart_register(struct uart *u, struct machine *m, uint16_t base, int out_fd);
/* Host input: queue up to n bytes; returns how many fitted. */
size_t uart_receive(struct uart *u, const uint8_t *buf, size_t n);
size_t uart_rx_space(struct uart *u);
void uart_reset(struct uart *u); /* power-on registers; pending output is written first */
void uart_flush(struct uart *u);
void uart_state_save(const struct uart *u, struct state_writer *w);
int uart_state_load(struct uart *u, struct state_reader *r);

/* ---- i8042 ---- */
struct i8042_state {
	uint8_t status, cmd_byte, pending_cmd, outport;
	uint8_t q[16];
	uint8_t q_head, q_count;
	uint16_t q_aux; /* bit n: q[n] came from the AUX port */
};
struct i8042 {
	struct i8042_state s;
	struct machine *m;
};
int i8042_register(struct i8042 *k, struct machine *m);
void i8042_reset(struct i8042 *k);
void i8042_state_save(const struct i8042 *k, struct state_writer *w);
int i8042_state_load(struct i8042 *k, struct state_reader *r);

/* ---- ACPI PM (PM1a event/control, PM timer, reset register) ---- */
#define ACPI_PM_TMR_HZ 3579545ull
struct acpi_pm_state {
	uint16_t sts, en, cnt;
	uint16_t gpe_sts, gpe_en; /* GPE0 block: general-purpose events 0-15 */
};
struct acpi_pm {
	struct acpi_pm_state s;
	struct machine *m;
};
int acpi_pm_register(struct acpi_pm *pm, struct machine *m);
void acpi_pm_power_button(struct acpi_pm *pm);
/* Signals general-purpose event gpe (< 16): its status bit is set, and
 * the SCI raised if the guest enabled it. 1 if it was enabled, else 0. */
int acpi_pm_gpe(struct acpi_pm *pm, unsigned gpe);
/* acpi_pm sections of version 2 carry the GPE0 block; version 1 (older
 * snapshots) has none, which reads as all clear. */
#define ACPI_PM_STATE_VERSION 2
void acpi_pm_state_save(const struct acpi_pm *pm, struct state_writer *w);
int acpi_pm_state_load(struct acpi_pm *pm, struct state_reader *r);

/* ---- The machine ---- */
#define MACHINE_MAX_PIO 64
#define MACHINE_MAX_MMIO 64 /* fixed devices, ECAM, and PCI BARs */
#define MACHINE_MAX_TIMERS (MACHINE_MAX_CPUS + 16)

struct machine_config {
	uint64_t mem_size;    /* bytes, a multiple of 4 KiB */
	unsigned ncpus;	      /* 1..MACHINE_MAX_CPUS */
	int serial_out_fd;    /* COM1 output, -1 to drop */
	int64_t rtc_host_sec; /* wall time for the RTC; 0 = the host's time now */
	/* Record and replay: the clock stands at 0 until an engine moves it
	 * (no host time leaks into the devices' reset or the guest's load). */
	int clock_frozen;
};

struct io_region {
	uint64_t base, len;
	io_read_fn rd;
	io_write_fn wr;
	void *dev;
};

struct mtimer {
	struct machine *m;
	mtimer_fn fn;
	void *opaque;
	uint64_t deadline;
	int armed, used;
};

struct machine {
	uint64_t mem_size, low_size;
	uint8_t *ram;
	int ram_from_file;     /* machine_map_ram: a snapshot's memory file */
	unsigned discard_maps; /* machine_ram_discard's anonymous mappings over the file */
	unsigned ncpus;

	struct io_region pio[MACHINE_MAX_PIO], mmio[MACHINE_MAX_MMIO];
	unsigned npio, nmmio;

	/* Virtual clock: host monotonic time since start, plus the time skipped
	 * while every vCPU was halted; never goes backwards. */
	uint64_t clock_start, clock_skip, clock_last;
	int clock_manual; /* tests, and record/replay between engine runs: time moves only by clock_advance_to */
	/* Instruction-driven time (the emu engine sets it): clock_ns() is
	 * vclock plus clock_delta(), the running vCPU's progress in its turn,
	 * so guest time advances with the work done, never "late". NULL: host
	 * monotonic time. */
	uint64_t (*clock_delta)(void *opaque);
	void *clock_delta_opaque;
	uint64_t vclock;
	struct mtimer timers[MACHINE_MAX_TIMERS];

	struct {
		mio_fn fn;
		void *opaque;
	} io[MACHINE_MAX_IO];
	unsigned nio;
	unsigned io_pending; /* bit per handler id; atomic */
	int io_fd;	     /* eventfd, -1 until a handler is registered */

	/* Set by the emu engine's CPUs: see gpa_dma_written. */
	void (*dma_written)(void *opaque, void *host, uint64_t len);
	void *dma_opaque;
	/* Live migration's dirty log (machine_dirty_*): a byte per RAM page,
	 * NULL when off; the running engine's way to log its vCPUs' writes
	 * into it (machine_set_dirty_hook). */
	uint8_t *dirty;
	void (*dirty_arm)(void *opaque, uint8_t *log);
	void *dirty_opaque;

	volatile int power_req;	    /* enum machine_power */
	void (*kick)(void *opaque); /* engine: make the running vCPU return soon */
	void *kick_opaque;
	/* Set by an engine whose vCPUs run on threads of their own, whose main
	 * loop then sleeps until its next deadline (with kick_opaque):
	 * timer_armed, from mtimer_arm, lets it know of an earlier one;
	 * input_lock takes (1) or releases (0) its machine lock around host
	 * input delivered while it sleeps (vm_console_input). NULL: none. */
	void (*timer_armed)(void *opaque, uint64_t deadline_ns);
	void (*input_lock)(void *opaque, int lock);
	unsigned cur_cpu; /* the vCPU whose accesses are being handled */
	/* Record or replay (machine/replay.h): the log the devices' inputs go
	 * through; NULL: none. The VM's, set before the guest is loaded. */
	struct replay *rr;

	struct pic pic;
	struct ioapic ioapic;
	struct lapic lapic[MACHINE_MAX_CPUS];
	struct pit pit;
	struct rtc rtc;
	struct uart com1;
	struct i8042 kbd;
	struct acpi_pm pm;
	struct pci_host pci;
};

int machine_create(struct machine **mp, const struct machine_config *cfg);
void machine_destroy(struct machine *m);
/* Back to the power-on device state (RAM kept). */
void machine_reset_devices(struct machine *m);
/* A machine reset, as the reset line of a PC: guest RAM reads as zeros
 * again, every device (PCI functions and virtio devices included) is in
 * its power-on state, the buses are as built; the clock runs on and the
 * devices' backends stay. The caller loads a guest again. */
void machine_reset(struct machine *m);
/* Guest RAM becomes a private, lazily read mapping of fd (a snapshot's
 * memory file, at least mem_size bytes): 0 or -errno (then the machine
 * is only fit to be destroyed). */
int machine_map_ram(struct machine *m, int fd);
/* Virtual time jumps forward to t (no-op if t is not in the future). */
void clock_advance_to(struct machine *m, uint64_t t);
/* The VM stood still for ns of host time (a pause): host-driven time
 * leaves them out, so the guest does not see them pass. */
void clock_pause_skip(struct machine *m, uint64_t ns);
/* The earliest armed timer deadline, UINT64_MAX if none. */
uint64_t mtimer_next_deadline(struct machine *m);
enum machine_power machine_take_power(struct machine *m);

#endif
