/* Control transfer, stack, and the system-facing instructions a user-mode
 * program can execute (SYSCALL, CPUID, RDTSC, fences). */
#include <sys/random.h>
#include <time.h>

#include "ops.h"
#include "system.h"

/* Stack operations fault before RSP changes, so a fault leaves state intact. */
static inline void push64(struct cpu *c, uint64_t v)
{
	uint64_t sp = c->s.gpr[R_RSP] - 8;
	mem_write(c, sp, 8, v);
	c->s.gpr[R_RSP] = sp;
}

static inline void push_sz(struct cpu *c, unsigned sz, uint64_t v)
{
	uint64_t sp = c->s.gpr[R_RSP] - sz;
	mem_write(c, sp, sz, v);
	c->s.gpr[R_RSP] = sp;
}

/* A near branch to a non-canonical address faults (#GP) on the branch. */
static inline uint64_t branch_target(struct cpu *c, uint64_t t)
{
	if (unlikely((uint64_t)((int64_t)(t << 16) >> 16) != t))
		cpu_raise(c, EXC_GP, 0);
	return t;
}

void op_push_r(struct cpu *c, const struct insn *i)
{
	push_sz(c, i->opsz, reg_read(c, i->reg, i->opsz));
	insn_next(c, i);
}

void op_pop_r(struct cpu *c, const struct insn *i)
{
	uint64_t sp = c->s.gpr[R_RSP];
	uint64_t v = mem_read(c, sp, i->opsz);
	c->s.gpr[R_RSP] = sp + i->opsz;
	reg_write(c, i->reg, i->opsz, v);
	insn_next(c, i);
}

void op_push_imm(struct cpu *c, const struct insn *i)
{
	push_sz(c, i->opsz, i->imm);
	insn_next(c, i);
}

void op_push_rm(struct cpu *c, const struct insn *i)
{
	push_sz(c, i->opsz, rm_read(c, i, i->opsz));
	insn_next(c, i);
}

void op_pop_rm(struct cpu *c, const struct insn *i)
{
	/* SDM: a memory destination using RSP is computed after the increment. */
	uint64_t sp = c->s.gpr[R_RSP];
	uint64_t v = mem_read(c, sp, i->opsz);
	if (i->mod3) {
		c->s.gpr[R_RSP] = sp + i->opsz;
		reg_write(c, i->rm, i->opsz, v);
	} else {
		c->s.gpr[R_RSP] = sp + i->opsz;
		uint64_t ea = insn_ea(c, i);
		c->s.gpr[R_RSP] = sp;
		mem_write(c, ea, i->opsz, v);
		c->s.gpr[R_RSP] = sp + i->opsz;
	}
	insn_next(c, i);
}

void op_pushf(struct cpu *c, const struct insn *i)
{
	/* VM and RF read as 0 in the pushed image */
	push_sz(c, i->opsz, cpu_get_rflags(c) & ~(uint64_t)(FL_VM | FL_RF));
	insn_next(c, i);
}

void op_popf(struct cpu *c, const struct insn *i)
{
	if (c->mode == CPU_MODE_SYSTEM) {
		op_sys_popf(c, i);
		return;
	}
	uint64_t sp = c->s.gpr[R_RSP];
	uint64_t v = mem_read(c, sp, i->opsz);
	c->s.gpr[R_RSP] = sp + i->opsz;
	uint64_t keep, cur = cpu_get_rflags(c);
	/* CPL 3 with IOPL 0: IF and IOPL do not change; VM, VIF, VIP never by POPF. */
	uint64_t changeable = FL_ARITH | FL_TF | FL_DF | FL_NT | FL_AC | FL_ID;
	if (c->mode == CPU_MODE_SYSTEM)
		changeable |= FL_IF | FL_IOPL; /* refined by the system-mode work */
	if (i->opsz == 2)
		changeable &= 0xffff;
	keep = cur & ~changeable;
	cpu_set_rflags(c, keep | (v & changeable));
	c->end_block = c->end_block || (v & FL_TF);
	insn_next(c, i);
}

void op_enter(struct cpu *c, const struct insn *i)
{
	unsigned size = (unsigned)(i->imm & 0xffff), level = (unsigned)(i->imm >> 16) & 31;
	unsigned sz = i->opsz;
	uint64_t sp = c->s.gpr[R_RSP], bp = c->s.gpr[R_RBP];
	/* Probe the whole frame area first so a fault leaves RSP/RBP alone. */
	uint64_t frame_top = sp - sz;
	mem_probe_write(c, sp - sz * (level + 1), sz * (level + 1));
	mem_write(c, frame_top, sz, bp);
	uint64_t t = frame_top;
	if (level) {
		for (unsigned k = 1; k < level; k++) {
			bp -= sz;
			uint64_t v = mem_read(c, bp, sz);
			t -= sz;
			mem_write(c, t, sz, v);
		}
		t -= sz;
		mem_write(c, t, sz, frame_top);
	}
	reg_write(c, R_RBP, sz, frame_top);
	c->s.gpr[R_RSP] = t - size;
	insn_next(c, i);
}

void op_leave(struct cpu *c, const struct insn *i)
{
	uint64_t bp = c->s.gpr[R_RBP];
	uint64_t v = mem_read(c, bp, i->opsz);
	c->s.gpr[R_RSP] = bp + i->opsz;
	reg_write(c, R_RBP, i->opsz, v);
	insn_next(c, i);
}

void op_jmp_rel(struct cpu *c, const struct insn *i)
{
	c->s.rip += i->len + i->imm;
}

void op_jcc(struct cpu *c, const struct insn *i)
{
	c->s.rip += i->len + (cond_eval(c, i->aux) ? i->imm : 0);
}

void op_call_rel(struct cpu *c, const struct insn *i)
{
	uint64_t next = c->s.rip + i->len;
	push64(c, next);
	c->s.rip = next + i->imm;
}

void op_ret(struct cpu *c, const struct insn *i)
{
	(void)i;
	uint64_t sp = c->s.gpr[R_RSP];
	c->s.rip = branch_target(c, mem_read(c, sp, 8));
	c->s.gpr[R_RSP] = sp + 8;
}

void op_ret_imm(struct cpu *c, const struct insn *i)
{
	uint64_t sp = c->s.gpr[R_RSP];
	c->s.rip = branch_target(c, mem_read(c, sp, 8));
	c->s.gpr[R_RSP] = sp + 8 + (i->imm & 0xffff);
}

void op_jmp_rm(struct cpu *c, const struct insn *i)
{
	c->s.rip = branch_target(c, rm_read(c, i, 8));
}

void op_call_rm(struct cpu *c, const struct insn *i)
{
	uint64_t target = branch_target(c, rm_read(c, i, 8));
	push64(c, c->s.rip + i->len);
	c->s.rip = target;
}

/* aux: 0 LOOPNE, 1 LOOPE, 2 LOOP */
void op_loop(struct cpu *c, const struct insn *i)
{
	uint64_t cnt = (reg_read(c, R_RCX, i->adsz) - 1) & size_mask(i->adsz);
	reg_write(c, R_RCX, i->adsz, cnt);
	bool take = cnt != 0;
	if (i->aux == 0)
		take = take && !cond_eval(c, 4);
	else if (i->aux == 1)
		take = take && cond_eval(c, 4);
	c->s.rip += i->len + (take ? i->imm : 0);
}

void op_jrcxz(struct cpu *c, const struct insn *i)
{
	c->s.rip += i->len + (reg_read(c, R_RCX, i->adsz) == 0 ? i->imm : 0);
}

void op_nop(struct cpu *c, const struct insn *i)
{
	insn_next(c, i);
}

void op_syscall(struct cpu *c, const struct insn *i)
{
	if (c->mode == CPU_MODE_SYSTEM) {
		op_sys_syscall(c, i);
		return;
	}
	uint64_t next = c->s.rip + i->len;
	c->s.gpr[R_RCX] = next;
	c->s.gpr[R_R11] = cpu_get_rflags(c) & ~(uint64_t)FL_RF;
	c->s.rip = next;
	c->exit = CPU_EXIT_SYSCALL;
	c->end_block = 1;
}

void op_cpuid(struct cpu *c, const struct insn *i)
{
	uint32_t r[4];
	cpu_cpuid(c, (uint32_t)c->s.gpr[R_RAX], (uint32_t)c->s.gpr[R_RCX], r);
	c->s.gpr[R_RAX] = r[0];
	c->s.gpr[R_RBX] = r[1];
	c->s.gpr[R_RCX] = r[2];
	c->s.gpr[R_RDX] = r[3];
	insn_next(c, i);
}

/* RDRAND and RDSEED (Intel SDM vol. 2B): a value from the host kernel's
 * generator, CF=1 and the other arithmetic flags clear. Each instruction
 * asks the host anew, with no pool kept here, so a forked process VM never
 * repeats its parent's values. Should the host have none to give, CF=0 and
 * a zero result: the architecture allows that ("retry"), software loops.
 * A guest kernel that finds the instruction seeds its generator at boot
 * instead of gathering timer jitter for a second of guest time. */
void op_rdrand(struct cpu *c, const struct insn *i)
{
	uint64_t v = 0;
	int ok;
	if (c->plat && c->plat->random) /* a system VM's: recorded and replayed */
		ok = c->plat->random(c->plat->opaque, &v, i->opsz) == 0;
	else
		ok = getrandom(&v, i->opsz, GRND_NONBLOCK) == (ssize_t)i->opsz;
	reg_write(c, i->rm, i->opsz, ok ? v : 0);
	flags_set(c, FL_ARITH, ok ? FL_CF : 0);
	insn_next(c, i);
}

void op_rdtsc(struct cpu *c, const struct insn *i)
{
	if (c->mode == CPU_MODE_SYSTEM) {
		op_sys_rdtsc(c, i);
		return;
	}
	/* User mode: the host's monotonic clock in nanoseconds (a 1 GHz TSC). */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + c->s.tsc;
	c->s.gpr[R_RAX] = t & 0xffffffff;
	c->s.gpr[R_RDX] = t >> 32;
	insn_next(c, i);
}

void op_int3(struct cpu *c, const struct insn *i)
{
	if (c->mode == CPU_MODE_SYSTEM) {
		op_sys_int(c, i);
		return;
	}
	/* A trap: the reported RIP is after the instruction. */
	insn_next(c, i);
	cpu_raise(c, EXC_BP, 0);
}

void op_int(struct cpu *c, const struct insn *i)
{
	if (c->mode == CPU_MODE_SYSTEM) {
		op_sys_int(c, i);
		return;
	}
	/* User mode: Linux's IDT gates other than #BP/#OF are DPL 0, so INT n
	 * is #GP with an IDT error code. */
	cpu_raise(c, EXC_GP, ((uint32_t)i->imm8 << 3) | 2);
}

void op_hlt(struct cpu *c, const struct insn *i)
{
	(void)i;
	cpu_raise(c, EXC_GP, 0);
}

void op_priv(struct cpu *c, const struct insn *i)
{
	(void)i;
	cpu_raise(c, EXC_GP, 0);
}

void op_fence(struct cpu *c, const struct insn *i)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	insn_next(c, i);
}

void op_clflush(struct cpu *c, const struct insn *i)
{
	(void)mem_read(c, insn_ea(c, i), 1);
	insn_next(c, i);
}

void op_xlat(struct cpu *c, const struct insn *i)
{
	uint64_t a = c->s.gpr[R_RBX] + (c->s.gpr[R_RAX] & 0xff);
	if (i->adsz == 4)
		a &= 0xffffffff;
	if (i->seg == SEG_FS || i->seg == SEG_GS)
		a += c->s.seg[i->seg].base;
	reg_write(c, R_RAX, 1, mem_read(c, a, 1));
	insn_next(c, i);
}

void op_mov_r_sreg(struct cpu *c, const struct insn *i)
{
	unsigned sr = i->aux;
	uint64_t v = c->s.seg[sr].sel;
	if (i->mod3)
		reg_write(c, i->rm, i->opsz == 2 ? 2 : i->opsz, v);
	else
		mem_write(c, insn_ea(c, i), 2, v);
	insn_next(c, i);
}

void op_mov_sreg_r(struct cpu *c, const struct insn *i)
{
	if (c->mode == CPU_MODE_SYSTEM) {
		op_sys_mov_sreg(c, i);
		return;
	}
	/* User mode: only null selectors and Linux's own user selectors load. */
	unsigned sr = i->aux;
	uint16_t v = (uint16_t)rm_read(c, i, 2);
	if (sr == SEG_CS || sr > SEG_GS)
		cpu_undefined(c, i);
	if (v > 3 && v != 0x2b && v != 0x33 && v != 0x23)
		cpu_raise(c, EXC_GP, v & 0xfffc);
	if (sr == SEG_SS && v <= 3)
		cpu_raise(c, EXC_GP, 0);
	c->s.seg[sr].sel = v;
	if (sr == SEG_FS || sr == SEG_GS)
		c->s.seg[sr].base = 0;
	insn_next(c, i);
}

void op_push_sreg(struct cpu *c, const struct insn *i)
{
	push_sz(c, i->opsz, c->s.seg[i->aux].sel);
	insn_next(c, i);
}

void op_pop_sreg(struct cpu *c, const struct insn *i)
{
	if (c->mode == CPU_MODE_SYSTEM) {
		op_sys_pop_sreg(c, i);
		return;
	}
	uint64_t sp = c->s.gpr[R_RSP];
	uint16_t v = (uint16_t)mem_read(c, sp, i->opsz);
	if (v > 3 && v != 0x2b && v != 0x23)
		cpu_raise(c, EXC_GP, v & 0xfffc);
	c->s.gpr[R_RSP] = sp + i->opsz;
	c->s.seg[i->aux].sel = v;
	c->s.seg[i->aux].base = 0;
	insn_next(c, i);
}

void op_ud2(struct cpu *c, const struct insn *i)
{
	(void)i;
	cpu_raise(c, EXC_UD, 0);
}
