/* System mode internals shared by mem.c, run.c, decode.c and system.c. */
#ifndef CORRAL_CPU_SYSTEM_H
#define CORRAL_CPU_SYSTEM_H

#include "cpu_internal.h"

void cpu_tlb_flush(struct cpu *c);
/* Drop the entries of non-global pages (a CR3 write with CR4.PGE set). */
void cpu_tlb_flush_nonglobal(struct cpu *c);
/* INVLPG: drop the translations of linear address a (its 4 KiB entry, and
 * every entry of the large page that contains it). */
void cpu_tlb_flush_page(struct cpu *c, uint64_t a);

/* Paging + TLB refill: host pointer, or NULL for MMIO (c->mmio_gpa says where). */
uint8_t *sys_tlb_fill(struct cpu *c, uint64_t a, int acc, int *code);
uint64_t sys_mmio_read(struct cpu *c, uint64_t a, unsigned sz);
void sys_mmio_write(struct cpu *c, uint64_t a, unsigned sz, uint64_t v);
static inline int sys_long_mode(const struct cpu *c)
{
	return (c->s.efer & 0x400) != 0; /* EFER.LMA */
}

/* Decoded code: fetch without faulting, mark pages, notice writes. */
uint8_t *sys_code_host(struct cpu *c, uint64_t a); /* host page of a if fetchable RAM now, else NULL */
size_t sys_fetch_code(struct cpu *c, uint64_t a, uint8_t *buf, uint64_t *phys);
void sys_mark_code(struct cpu *c, uint64_t a);
void sys_code_written(struct cpu *c, uint8_t *host);
int sys_is_code(struct cpu *c, uint8_t *host);
/* Catch up with the machine's code-page events since c->code_gen: drops
 * the decoded code of written pages (dcache_drop_page) and fast write
 * entries to pages other vCPUs marked. -1: too far behind, the caller
 * drops everything (decoded code and TLB). */
int sys_code_sync(struct cpu *c);
/* run.c: forget the decoded blocks (and translations) of the RAM page at host. */
void dcache_drop_page(struct cpu *c, const uint8_t *host);
/* The machine-wide decoded-code generation (bumped by code writes and new marks). */
static inline unsigned sys_code_gen(const struct cpu *c)
{
	return __atomic_load_n(c->phys_code_gen, __ATOMIC_ACQUIRE);
}

/* Events */
int sys_exception(struct cpu *c); /* 1: triple fault */
int sys_poll_interrupts(struct cpu *c);
void sys_deliver(struct cpu *c, int v, uint32_t err, int soft, int ext);
void sys_destroy(struct cpu *c);
uint64_t sys_tsc(struct cpu *c);

/* Handlers */
#define SYSOP(name) void name(struct cpu *c, const struct insn *i)
SYSOP(op_sys_hlt);
SYSOP(op_sys_cli);
SYSOP(op_sys_sti);
SYSOP(op_sys_in);
SYSOP(op_sys_out);
SYSOP(op_sys_ins);
SYSOP(op_sys_outs);
SYSOP(op_sys_mov_cr);
SYSOP(op_sys_mov_dr);
SYSOP(op_sys_rdmsr);
SYSOP(op_sys_wrmsr);
SYSOP(op_sys_rdtsc);
SYSOP(op_sys_syscall);
SYSOP(op_sys_sysret);
SYSOP(op_sys_swapgs);
SYSOP(op_sys_rdtscp);
SYSOP(op_sys_iret);
SYSOP(op_sys_retf);
SYSOP(op_sys_int);
SYSOP(op_sys_mov_sreg);
SYSOP(op_sys_pop_sreg);
SYSOP(op_sys_grp6);
SYSOP(op_sys_grp7);
SYSOP(op_sys_grp7_reg);
SYSOP(op_sys_clts);
SYSOP(op_sys_wbinvd);
SYSOP(op_sys_popf);
SYSOP(op_sys_ljmp);
SYSOP(op_sys_ljmp_m);

#endif
