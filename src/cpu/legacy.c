/* Stack and near-branch instructions of legacy (16- and 32-bit) code, as
 * the SMP trampoline runs it: the stack is SS:SP or SS:ESP by SS's B bit. */
#include "ops.h"
#include "system.h"

static inline unsigned stack_asz(const struct cpu *c)
{
	return (c->s.seg[SEG_SS].attr & 0x4000) ? 4 : 2;
}

static inline uint64_t sp_mask(const struct cpu *c)
{
	return stack_asz(c) == 4 ? 0xffffffffull : 0xffffull;
}

static inline uint64_t stack_lin(const struct cpu *c, uint64_t sp)
{
	return c->s.seg[SEG_SS].base + (sp & sp_mask(c));
}

static void sp_set(struct cpu *c, uint64_t sp)
{
	uint64_t m = sp_mask(c);
	c->s.gpr[R_RSP] = (c->s.gpr[R_RSP] & ~m) | (sp & m);
}

static void lpush(struct cpu *c, unsigned sz, uint64_t v)
{
	uint64_t sp = c->s.gpr[R_RSP] - sz;
	mem_write(c, stack_lin(c, sp), sz, v);
	sp_set(c, sp);
}

static uint64_t lpop(struct cpu *c, unsigned sz)
{
	uint64_t sp = c->s.gpr[R_RSP];
	uint64_t v = mem_read(c, stack_lin(c, sp), sz);
	sp_set(c, sp + sz);
	return v;
}

static uint64_t ip_mask(const struct insn *i)
{
	return i->opsz == 2 ? 0xffff : 0xffffffff;
}

void op_lpush_r(struct cpu *c, const struct insn *i)
{
	lpush(c, i->opsz, reg_read(c, i->reg, i->opsz));
	insn_next(c, i);
}

void op_lpop_r(struct cpu *c, const struct insn *i)
{
	uint64_t v = lpop(c, i->opsz);
	reg_write(c, i->reg, i->opsz, v);
	insn_next(c, i);
}

void op_lpush_imm(struct cpu *c, const struct insn *i)
{
	lpush(c, i->opsz, i->imm);
	insn_next(c, i);
}

void op_lpush_rm(struct cpu *c, const struct insn *i)
{
	lpush(c, i->opsz, rm_read(c, i, i->opsz));
	insn_next(c, i);
}

void op_lpop_rm(struct cpu *c, const struct insn *i)
{
	uint64_t sp = c->s.gpr[R_RSP];
	uint64_t v = lpop(c, i->opsz);
	if (i->mod3) {
		reg_write(c, i->rm, i->opsz, v);
	} else {
		uint64_t ea = insn_ea(c, i);
		uint64_t after = c->s.gpr[R_RSP];
		c->s.gpr[R_RSP] = sp;
		mem_write(c, ea, i->opsz, v);
		c->s.gpr[R_RSP] = after;
	}
	insn_next(c, i);
}

void op_lpushf(struct cpu *c, const struct insn *i)
{
	lpush(c, i->opsz, cpu_get_rflags(c) & ~(uint64_t)(FL_VM | FL_RF));
	insn_next(c, i);
}

void op_lpopf(struct cpu *c, const struct insn *i)
{
	/* Same rules as the 64-bit form, through the legacy stack */
	uint64_t sp = c->s.gpr[R_RSP];
	uint64_t v = mem_read(c, stack_lin(c, sp), i->opsz);
	unsigned cpl = c->cpl, iopl = (unsigned)(c->s.rflags >> 12) & 3;
	uint64_t changeable = FL_ARITH | FL_TF | FL_DF | FL_NT | FL_AC | FL_ID;
	if (!(c->s.cr0 & 1) || cpl <= iopl)
		changeable |= FL_IF;
	if (!(c->s.cr0 & 1) || cpl == 0)
		changeable |= FL_IOPL;
	if (i->opsz == 2)
		changeable &= 0xffff;
	sp_set(c, sp + i->opsz);
	cpu_set_rflags(c, (cpu_get_rflags(c) & ~changeable) | (v & changeable));
	insn_next(c, i);
	c->end_block = 1;
}

void op_lcall_rel(struct cpu *c, const struct insn *i)
{
	uint64_t next = (c->s.rip + i->len) & ip_mask(i);
	lpush(c, i->opsz, next);
	c->s.rip = (next + i->imm) & ip_mask(i);
}

void op_lcall_rm(struct cpu *c, const struct insn *i)
{
	uint64_t target = rm_read(c, i, i->opsz);
	lpush(c, i->opsz, (c->s.rip + i->len) & ip_mask(i));
	c->s.rip = target;
}

void op_lret(struct cpu *c, const struct insn *i)
{
	uint64_t ip = lpop(c, i->opsz);
	if (i->op == 0xc2)
		sp_set(c, c->s.gpr[R_RSP] + (i->imm & 0xffff));
	c->s.rip = ip & ip_mask(i);
}

void op_ljmp_rm(struct cpu *c, const struct insn *i)
{
	c->s.rip = rm_read(c, i, i->opsz);
}

void op_lleave(struct cpu *c, const struct insn *i)
{
	uint64_t m = sp_mask(c);
	uint64_t bp = c->s.gpr[R_RBP] & m;
	uint64_t v = mem_read(c, c->s.seg[SEG_SS].base + bp, i->opsz);
	sp_set(c, bp + i->opsz);
	reg_write(c, R_RBP, i->opsz, v);
	insn_next(c, i);
}
