/* Handlers of the general-purpose instructions (alu.c, ctrl.c, string.c),
 * for the decoder's tables. */
#ifndef CORRAL_CPU_OPS_H
#define CORRAL_CPU_OPS_H

#include "cpu_internal.h"

#define OP(name) void name(struct cpu *c, const struct insn *i)

/* Elements one execution of a REP string instruction handles at most. The
 * rest runs as the same instruction again (RIP unchanged, RCX, RSI and RDI
 * where they got to), as hardware lets interrupts in between iterations:
 * interrupts, stop requests and signals are seen within a bounded time even
 * when RCX is 2^64 - 1. A count of elements, not of pages, so that where an
 * instruction breaks does not depend on the TLB (replay). */
#define REP_CHUNK 65536

/* alu.c; aux = ALU op 0-7 (ADD OR ADC SBB AND SUB XOR CMP) where noted */
extern const insn_fn alu_rm_r[8], alu_r_rm[8], alu_rm_imm[8];
OP(op_alu_rr64_add);
OP(op_alu_rr64_sub);
OP(op_alu_rr64_xor);
OP(op_alu_rr64_and);
OP(op_alu_rr64_or);
OP(op_alu_rr64_cmp);
OP(op_alu_rr32_add);
OP(op_alu_rr32_sub);
OP(op_alu_rr32_xor);
OP(op_alu_rr32_and);
OP(op_alu_rr32_or);
OP(op_alu_rr32_cmp);
OP(op_test_rm_r);
OP(op_test_rm_imm);
OP(op_inc);
OP(op_dec);
OP(op_not);
OP(op_neg);
OP(op_mul);
OP(op_imul1);
OP(op_div);
OP(op_idiv);
OP(op_imul_r_rm);
OP(op_imul_r_rm_imm);
OP(op_shift_imm);
OP(op_shift_cl); /* aux = 0-7 ROL ROR RCL RCR SHL SHR SAL SAR */
OP(op_rol_r32_nf);
OP(op_ror_r32_nf);
OP(op_shl_r32_nf);
OP(op_shr_r32_nf);
OP(op_sar_r32_nf);
OP(op_rol_r64_nf);
OP(op_ror_r64_nf);
OP(op_shl_r64_nf);
OP(op_shr_r64_nf);
OP(op_sar_r64_nf);
OP(op_shld_imm);
OP(op_shld_cl);
OP(op_shrd_imm);
OP(op_shrd_cl);
OP(op_bt_r);
OP(op_bt_imm); /* aux = 0 BT, 1 BTS, 2 BTR, 3 BTC */
OP(op_bsf);
OP(op_bsr);
OP(op_popcnt);
OP(op_mov_rm_r);
OP(op_mov_r_rm);
OP(op_mov_rm_imm);
OP(op_mov_r_imm);
OP(op_mov_rr64);
OP(op_mov_rr32);
OP(op_mov_r_m64);
OP(op_mov_m64_r);
OP(op_mov_a_moffs);
OP(op_mov_moffs_a);
OP(op_movzx);
OP(op_movsx);
OP(op_movsxd); /* aux = source size */
OP(op_lea);
OP(op_xchg_rm_r);
OP(op_xchg_ax);
OP(op_cmpxchg);
OP(op_xadd);
OP(op_cmpxchg8b16b);
OP(op_bswap);
OP(op_cbw);
OP(op_cwd);
OP(op_setcc);
OP(op_cmov); /* aux = condition */
OP(op_lahf);
OP(op_sahf);
OP(op_clc);
OP(op_stc);
OP(op_cmc);
OP(op_cld);
OP(op_std);

/* ctrl.c */
OP(op_push_r);
OP(op_pop_r);
OP(op_push_imm);
OP(op_push_rm);
OP(op_pop_rm);
OP(op_pushf);
OP(op_popf);
OP(op_enter);
OP(op_leave);
OP(op_jmp_rel);
OP(op_jcc);
OP(op_call_rel);
OP(op_ret);
OP(op_ret_imm);
OP(op_jmp_rm);
OP(op_call_rm);
OP(op_loop);
OP(op_jrcxz);
OP(op_nop);
OP(op_syscall);
OP(op_cpuid);
OP(op_rdrand);
OP(op_rdtsc);
OP(op_int3);
OP(op_int);
OP(op_hlt);
OP(op_priv);
OP(op_fence);
OP(op_xlat);
OP(op_mov_r_sreg);
OP(op_mov_sreg_r);
OP(op_ud2);
OP(op_clflush);
OP(op_push_sreg);
OP(op_pop_sreg);

/* legacy.c: 16/32-bit stack and branch forms */
OP(op_lpush_r);
OP(op_lpop_r);
OP(op_lpush_imm);
OP(op_lpush_rm);
OP(op_lpop_rm);
OP(op_lpushf);
OP(op_lpopf);
OP(op_lcall_rel);
OP(op_lcall_rm);
OP(op_lret);
OP(op_ljmp_rm);
OP(op_lleave);

/* string.c; aux unused, opsz = element size */
OP(op_movs);
OP(op_stos);
OP(op_lods);
OP(op_cmps);
OP(op_scas);

#endif
