/* The x86-64 CPU core: architectural state and the interpreter's entry points.
 * struct cpu_state is plain data: snapshots store it and the kvm engine loads it. */
#ifndef CORRAL_CPU_H
#define CORRAL_CPU_H

#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	R_RAX,
	R_RCX,
	R_RDX,
	R_RBX,
	R_RSP,
	R_RBP,
	R_RSI,
	R_RDI,
	R_R8,
	R_R9,
	R_R10,
	R_R11,
	R_R12,
	R_R13,
	R_R14,
	R_R15,
};

enum { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_NONE = 7 };

/* RFLAGS bits */
#define FL_CF 0x0001u
#define FL_PF 0x0004u
#define FL_AF 0x0010u
#define FL_ZF 0x0040u
#define FL_SF 0x0080u
#define FL_TF 0x0100u
#define FL_IF 0x0200u
#define FL_DF 0x0400u
#define FL_OF 0x0800u
#define FL_IOPL 0x3000u
#define FL_NT 0x4000u
#define FL_RF 0x10000u
#define FL_VM 0x20000u
#define FL_AC 0x40000u
#define FL_VIF 0x80000u
#define FL_VIP 0x100000u
#define FL_ID 0x200000u
#define FL_ARITH (FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF)

/* Exception vectors */
enum {
	EXC_DE = 0,
	EXC_DB = 1,
	EXC_NMI = 2,
	EXC_BP = 3,
	EXC_OF = 4,
	EXC_BR = 5,
	EXC_UD = 6,
	EXC_NM = 7,
	EXC_DF = 8,
	EXC_TS = 10,
	EXC_NP = 11,
	EXC_SS = 12,
	EXC_GP = 13,
	EXC_PF = 14,
	EXC_MF = 16,
	EXC_AC = 17,
	EXC_MC = 18,
	EXC_XM = 19,
};

/* #PF error code bits */
#define PFERR_P 0x1u
#define PFERR_W 0x2u
#define PFERR_U 0x4u
#define PFERR_I 0x10u

/* MXCSR bits */
#define MXCSR_IE 0x0001u
#define MXCSR_DE 0x0002u
#define MXCSR_ZE 0x0004u
#define MXCSR_OE 0x0008u
#define MXCSR_UE 0x0010u
#define MXCSR_PE 0x0020u
#define MXCSR_DAZ 0x0040u
#define MXCSR_MASKS 0x1f80u /* IM DM ZM OM UM PM: bits 7-12 */
#define MXCSR_RC_SHIFT 13   /* 00 nearest, 01 down, 10 up, 11 toward zero */
#define MXCSR_FZ 0x8000u
#define MXCSR_DEFAULT 0x1f80u
#define MXCSR_VALID 0xffffu

struct cpu_seg {
	uint64_t base;
	uint32_t limit;
	uint16_t sel;
	uint16_t attr; /* descriptor bits 40-47 and 52-55, as VMX "access rights" packed: type|S|DPL|P in 0-7,
			  AVL|L|DB|G in 12-15 */
};

struct cpu_dtr {
	uint64_t base;
	uint16_t limit;
};

union cpu_xmm {
	uint8_t b[16];
	uint16_t w[8];
	uint32_t d[4];
	uint64_t q[2];
	float f[4];
	double f64[2];
};

/* One x87 register: 64-bit significand (explicit integer bit) and
 * sign+15-bit exponent, as in memory (FXSAVE's layout). */
struct cpu_f80 {
	uint64_t mant;
	uint16_t sexp;
};

struct cpu_x87 {
	struct cpu_f80 st[8]; /* physical registers R0-R7; ST(i) = st[(TOP+i)&7] */
	uint16_t fcw;	      /* control word; 0x037f after FNINIT */
	uint16_t fsw;	      /* status word, TOP in bits 11-13 */
	uint16_t ftw;	      /* full tag word, 2 bits per physical register, 3 = empty */
	uint16_t fop;
	uint64_t fip, fdp;
};

struct cpu_msrs {
	uint64_t star, lstar, cstar, sfmask, kernel_gs_base;
	uint64_t sysenter_cs, sysenter_esp, sysenter_eip;
	uint64_t pat, apic_base, tsc_aux, misc_enable, tsc_adjust;
	uint64_t mtrr_def_type, mtrr_fixed[11], mtrr_var[16];
};

struct cpu_state {
	uint64_t gpr[16];
	uint64_t rip;
	uint64_t rflags;
	struct cpu_seg seg[6];
	struct cpu_seg ldtr, tr;
	struct cpu_dtr gdtr, idtr;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer;
	uint64_t dr[8];
	uint64_t xcr0;
	union cpu_xmm xmm[16];
	uint32_t mxcsr;
	struct cpu_x87 x87;
	uint64_t tsc;
	struct cpu_msrs msr;
};

/* Why cpu_run returned. */
enum cpu_exit {
	CPU_EXIT_LIMIT,	    /* ran the number of instructions asked for */
	CPU_EXIT_SYSCALL,   /* user mode: SYSCALL executed; RIP is past it */
	CPU_EXIT_EXCEPTION, /* user mode: exception; exc_* say which, RIP at the faulting insn */
	CPU_EXIT_HLT,	    /* HLT (user mode: that is #GP, reported as an exception) */
	CPU_EXIT_STOP,	    /* cpu_request_stop() was called (e.g. a host signal arrived) */
	CPU_EXIT_SHUTDOWN,  /* system mode: triple fault (the machine resets or stops) */
	CPU_EXIT_DEBUG,	    /* system mode: a debugger's breakpoint or watchpoint (dbg_hit) */
};

enum cpu_mode {
	CPU_MODE_USER,	 /* process VM: CPL 3, flat 64-bit, vmem address space */
	CPU_MODE_SYSTEM, /* system VM: full privileged architecture */
};

/* Soft TLB sizes. A system-mode vCPU uses CPU_TLB_SYS entries of each
 * of its two banks (supervisor, user): every CR3 write and INVLPG scans
 * them. A user-mode cpu (process VM) has no privilege levels and few
 * flushes (mmap, munmap, mprotect): both banks form one table of
 * CPU_TLB_USER entries, because a large program's working set (perl's
 * or python's heap, stacks, libraries' data) thrashes 256 entries. */
#define CPU_TLB_BITS 11 /* a bank's room */
#define CPU_TLB_SIZE (1u << CPU_TLB_BITS)
#define CPU_TLB_SYS 256u
#define CPU_TLB_USER (2 * CPU_TLB_SIZE)

/* Soft TLB entry: host address = guest address + addend. A tag is a guest
 * page address (low 12 bits zero) or CPU_TLB_INVALID. */
struct cpu_tlb_entry {
	uint64_t tag_r, tag_w, tag_x;
	uintptr_t addend;
};
#define CPU_TLB_INVALID 1u
#define TLBK_GLOBAL 1u /* from a global page: kept across CR3 writes when CR4.PGE is set */
#define TLBK_2M 2u     /* part of a 2 MiB page */
#define TLBK_1G 4u     /* part of a 1 GiB page */

/* ---- A debugger's view (system mode; the GDB stub through the engine) ----
 * Breakpoints are linear addresses of instructions: the run loop stops
 * before executing one (CPU_EXIT_DEBUG, dbg_hit.kind CPU_DBG_BREAK).
 * Watchpoints are linear ranges of any length: pages that hold one get no
 * fast TLB entry for the watched kind of access, so every such access
 * takes the slow path, which checks the ranges; a hit lets the
 * instruction finish (as x86's data breakpoints, a trap) and then stops.
 * The owner changes the table only while the vCPU is not running and
 * bumps gen, after which the vCPU drops its decoded code and TLB. */
#define CPU_DBG_MAX_BP 64
#define CPU_DBG_MAX_WP 16
enum cpu_dbg_kind { CPU_DBG_NONE, CPU_DBG_BREAK, CPU_DBG_STEP, CPU_DBG_WATCH_W, CPU_DBG_WATCH_R, CPU_DBG_WATCH_RW };
struct cpu_debug {
	unsigned gen;
	unsigned nbp, nwp;
	uint64_t bp[CPU_DBG_MAX_BP];
	struct {
		uint64_t addr, len; /* len >= 1, addr + len does not wrap */
		int kind;	    /* CPU_DBG_WATCH_W, _R (read) or _RW (access) */
	} wp[CPU_DBG_MAX_WP];
};
struct cpu_dbg_hit {
	int kind; /* enum cpu_dbg_kind */
	uint64_t addr;
};

struct vmem;
struct dcache;
struct jit;
struct cpu_platform;

struct cpu {
	struct cpu_state s;

	/* Lazy arithmetic flags: while lf_op != LF_NONE the arithmetic bits of
	 * s.rflags are stale and are computed from these (see flags.c). */
	uint64_t lf_res, lf_src1, lf_src2;
	uint32_t lf_op;
	uint32_t lf_aux;

	enum cpu_mode mode;
	struct vmem *vm;
	const struct cpu_platform *plat; /* system mode: the PC this vCPU belongs to */
	unsigned index;			 /* system mode: vCPU number (= initial APIC ID) */
	int halted;			 /* system mode: in HLT, waiting for an interrupt */
	int nmi_pending;		 /* system mode: an NMI waits for delivery */
	int nmi_blocked;		 /* system mode: in an NMI handler (until IRET) */
	int irq_check;			 /* system mode: interrupt state may have changed: poll */
	unsigned code_bits;		 /* size of the code being decoded: 64, 32 or 16 */
	struct dcache *dc;
	/* Translator (jit.h): NULL when off; jit_hot executions make a block
	 * hot; a jit_run returns once icount reaches jit_limit; jit_patch is the
	 * jump a finished translation asks to link to the block at
	 * jit_patch_rip. */
	struct jit *jit;
	unsigned jit_hot;
	uint64_t jit_limit;
	void *jit_patch;
	uint64_t jit_patch_rip;
	/* Soft TLB: bank 0 for supervisor accesses, bank 1 for user (CPL 3);
	 * tlbp is the current one, so privilege changes need no flush. */
	struct cpu_tlb_entry tlb[2][CPU_TLB_SIZE];
	struct cpu_tlb_entry *tlbp;
	unsigned tlb_n, tlb_mask;	   /* entries of each bank in use; index mask from tlbp */
	uint8_t tlb_kind[2][CPU_TLB_SIZE]; /* system mode: TLBK_* of each entry's translation */
	uint8_t walk_kind;		   /* system mode: TLBK_* of the last page walk */
	unsigned tlb_gen, code_gen;	   /* last seen vmem/physmem generations */
	unsigned cpl;			   /* current privilege level (3 in user mode) */
	struct cpu_physmem *phys;	   /* system mode: code-page marks shared by the machine's vCPUs */
	volatile unsigned *phys_code_gen;  /* system mode: &phys->code_gen, read every block */

	/* Exception details for CPU_EXIT_EXCEPTION. */
	int exc_vector;
	uint32_t exc_error;
	uint64_t exc_addr; /* faulting data address (#PF, #GP on memory) */
	int exc_noncanon;  /* the fault was a non-canonical address (#GP or #SS) */
	int exc_soft;	   /* system mode: raised by INT n/INT3/INTO (a trap; gate DPL checked) */
	int delivering;	   /* system mode: delivering exc_vector; a fault now is nested */
	int deliver_vec;
	uint64_t shadow_rip; /* system mode: interrupts inhibited while RIP equals this (after STI/MOV SS) */
	uint64_t tsc_offset;
	uint64_t mmio_gpa; /* system mode: physical address of the last MMIO translation */

	int end_block;	       /* set by a handler: leave the current block */
	int exit;	       /* with end_block: an enum cpu_exit to return, or -1 */
	volatile int stop_req; /* set asynchronously: stop at a block boundary */
	/* System mode, optional: a flag that nobody can kick this vCPU for
	 * (an owner's stop from a signal handler), looked at wherever a block
	 * ends early, as a long REP string instruction's pieces do. */
	const volatile sig_atomic_t *stop_watch;
	int in_run;
	jmp_buf fault_jb;

	/* A debugger (system mode, set by the engine between runs): dbg is its
	 * table (NULL: none); dbg_on says it has breakpoints or watchpoints or
	 * this vCPU single-steps (dbg_step: blocks of one instruction, run
	 * interpreted, interrupts held off as QEMU does), the one thing the run
	 * loop looks at per block. */
	const struct cpu_debug *dbg;
	int dbg_on, dbg_step;
	unsigned dbg_gen;
	struct cpu_dbg_hit dbg_hit; /* why CPU_EXIT_DEBUG */
	/* With dbg_skip_on, a breakpoint at dbg_skip is passed over once, at
	 * the next block start (the engine going on past a hit it does not
	 * stop at). */
	int dbg_skip_on;
	uint64_t dbg_skip;
	/* Record and replay (system mode, set by the engine): cpu_run stops
	 * exactly at its instruction limit, whatever the blocks and
	 * translations are, so a turn ends at the same instruction in every
	 * run, with or without a debugger cutting blocks at breakpoints. */
	int exact;

	uint64_t icount; /* instructions retired (counted per block; exact at cpu_run's return) */
	int trace;	 /* log unimplemented instructions to stderr */
	int jit_stats;	 /* print block counts at cpu_destroy */
	void *opaque;	 /* owner's data (the process VM thread, ...) */
};

/* How a cpu runs (the translator, diagnostics): plain data its owner fills
 * (a VM's configuration); the library never reads the environment for it. */
struct cpu_opts {
	int jit;	  /* translate hot blocks (on hosts with a translator) */
	unsigned jit_hot; /* executions that make a block hot (0: translate at once) */
	int jit_stats;	  /* print decoded/translated block counts at cpu_destroy */
	int jit_perfmap;  /* append translations to /tmp/perf-PID.map */
	int trace;	  /* log unimplemented instructions to stderr */
};
void cpu_opts_default(struct cpu_opts *o);
/* For programs (the CLI, tests), once at start: the defaults changed by
 * CORRAL_JIT=0, CORRAL_JIT_HOT=N, CORRAL_JIT_STATS, CORRAL_JIT_PERFMAP and
 * CORRAL_TRACE_CPU. */
void cpu_opts_from_env(struct cpu_opts *o);

/* Create/destroy. user mode: vm is the guest address space. cpu_init is
 * cpu_init_opts with cpu_opts_from_env, for programs and tests; the
 * library's own callers pass their options. */
int cpu_init(struct cpu *c, enum cpu_mode mode, struct vmem *vm);
int cpu_init_opts(struct cpu *c, enum cpu_mode mode, struct vmem *vm, const struct cpu_opts *opts);
void cpu_destroy(struct cpu *c);

/* ---- System mode ----
 * What a system-mode vCPU reaches outside itself, given by its engine: the
 * CPU knows no PC, only these (the emu engine binds them to a machine).
 * opaque is passed to each. */
struct cpu_platform {
	void *opaque;
	/* Guest RAM: a host pointer to [gpa, gpa+len) if all of it is RAM,
	 * else NULL (MMIO, or nothing). */
	void *(*ram_ptr)(void *opaque, uint64_t gpa, uint64_t len);
	/* Port and MMIO accesses (size 1, 2, 4 or 8). */
	uint64_t (*pio_read)(void *opaque, uint16_t port, unsigned size);
	void (*pio_write)(void *opaque, uint16_t port, unsigned size, uint64_t val);
	uint64_t (*mmio_read)(void *opaque, uint64_t gpa, unsigned size);
	void (*mmio_write)(void *opaque, uint64_t gpa, unsigned size, uint64_t val);
	/* The interrupt controller: is a maskable interrupt ready for vCPU
	 * cpu; ack takes it (its vector, or -1). */
	int (*intr_pending)(void *opaque, unsigned cpu);
	int (*intr_ack)(void *opaque, unsigned cpu);
	/* The local APIC's MSRs (x2APIC 0x800-0x8ff, IA32_APIC_BASE): 0, or -1
	 * for #GP. */
	int (*apic_msr_read)(void *opaque, unsigned cpu, uint32_t msr, uint64_t *val);
	int (*apic_msr_write)(void *opaque, unsigned cpu, uint32_t msr, uint64_t val);
	/* The clock the TSC counts, in nanoseconds. */
	uint64_t (*clock_ns)(void *opaque);
	/* RDRAND's and RDSEED's bytes: 0, or <0 if there are none (CF=0).
	 * NULL: the host's generator. */
	int (*random)(void *opaque, void *buf, size_t len);
	uint64_t apic_base; /* the local APIC's physical address at power-on */
};

/* The guest RAM bookkeeping a machine's vCPUs share (which pages hold
 * decoded code): one per VM, made by the engine before its vCPUs and freed
 * after them, over guest RAM's host mapping [ram, ram+size). A device's
 * write into guest RAM must be reported (cpu_physmem_dma_written, opaque
 * is the cpu_physmem). */
struct cpu_physmem *cpu_physmem_new(void *ram, uint64_t size);
void cpu_physmem_free(struct cpu_physmem *p);
void cpu_physmem_dma_written(void *opaque, void *host, uint64_t len);
/* Live migration's dirty log: log (one byte per RAM page, NULL: none) is
 * set to 1 for every page a vCPU writes from now on (stores and the page
 * walker's A/D bits): every vCPU drops its fast write entries at its next
 * block, so the next store to any page is logged. Called while the vCPUs
 * stand paused, it means: pages written after the resume are logged. */
void cpu_physmem_dirty_arm(void *opaque, uint8_t *log);
/* A vCPU of the platform plat (which must outlive it). Starts in the
 * power-on state (real mode at F000:FFF0); a boot loader then sets c->s
 * for its entry and calls cpu_flush. cpu_run then returns CPU_EXIT_HLT
 * when halted with nothing to deliver, CPU_EXIT_LIMIT after max_insns,
 * CPU_EXIT_SHUTDOWN on a triple fault. opts NULL: cpu_opts_default. */
int cpu_init_system(struct cpu *c, const struct cpu_platform *plat, unsigned index, struct cpu_physmem *phys,
		    const struct cpu_opts *opts);
void cpu_reset_system(struct cpu *c);
/* After c->s was set directly (boot loader, engine hand-over, snapshot
 * restore): derive the CPL, drop cached translations and decoded code. A
 * 64-bit code segment has attr 0xa09b (G, L, present, DPL 0, code). */
void cpu_state_loaded(struct cpu *c);
/* Raise an NMI on a system-mode vCPU: delivered through IDT vector 2 at the
 * next block boundary (regardless of IF), held while a previous NMI's
 * handler runs (until its IRET); wakes a halted vCPU. */
void cpu_inject_nmi(struct cpu *c);

/* Reset architectural state for a 64-bit user-mode program: flat segments,
 * RFLAGS=0x202, FNINIT/MXCSR defaults. */
void cpu_reset_user(struct cpu *c);

/* Run until an exit reason or max_insns instructions (0 = no limit). */
enum cpu_exit cpu_run(struct cpu *c, uint64_t max_insns);

/* In the child of a fork(), before the cpu runs again: give it caches of its
 * own where they are shared memory (translations). */
void cpu_after_fork(struct cpu *c);

/* Ask a running cpu to return CPU_EXIT_STOP soon (async-signal-safe). */
void cpu_request_stop(struct cpu *c);
/* User mode, from a host SIGSEGV/SIGBUS handler: the host faulted on guest
 * memory at host_addr while this CPU ran. Where the CPU can take that as a
 * precise guest #PF (interpreted code, or a handler or slow path that a
 * translation called, all of which run with the architectural state
 * written back), this unwinds into cpu_run, which returns
 * CPU_EXIT_EXCEPTION, and does not return. It returns false when it cannot
 * (not in cpu_run, or inside a translation's own code): the caller must
 * then make the access harmless. */
bool cpu_host_fault(struct cpu *c, const void *host_addr, uintptr_t host_pc, int write);
/* The guest address that the soft TLB maps to host_addr, if any. */
bool cpu_guest_addr(const struct cpu *c, const void *host_addr, uint64_t *gva);

/* Full RFLAGS with lazy flags evaluated; set RFLAGS (all bits). */
uint64_t cpu_get_rflags(struct cpu *c);
void cpu_set_rflags(struct cpu *c, uint64_t v);

/* Drop cached translations and decoded code (after a mapping change made by
 * someone other than vmem_*; vmem changes are noticed by generation). */
void cpu_flush(struct cpu *c);

/* A debugger's table and single-stepping for a system-mode vCPU, between
 * runs (dbg NULL: none). cpu_run with step set runs one instruction (an
 * exception delivered counts as one) and returns CPU_EXIT_LIMIT. */
void cpu_set_debug(struct cpu *c, const struct cpu_debug *dbg, int step);

/* Decode the instruction at code[0..n) in 64-bit mode. Returns its length
 * (1-15), 0 if it is not a valid instruction for corral's CPU (#UD), or -1
 * if n bytes are not enough to tell. Used by tests and tools. */
int cpu_insn_length(const uint8_t *code, size_t n);

/* CPUID as corral's CPU answers it (leaf, subleaf) -> eax,ebx,ecx,edx. */
void cpu_cpuid(struct cpu *c, uint32_t leaf, uint32_t sub, uint32_t out[4]);

/* Human-readable exception name ("#PF"), for messages. */
const char *cpu_exc_name(int vector);

#endif
