/* The x86-64 instruction decoder: bytes to a struct insn with its handler. */
#ifndef CORRAL_CPU_DECODE_H
#define CORRAL_CPU_DECODE_H

#include "cpu_internal.h"

#define DEC_BRANCH 1u /* control transfer or CPU-state change: ends a block */
/* Reads the clock or takes an input (RDTSC, RDRAND, RDSEED, port I/O):
 * in system mode a block of its own, so the instruction count it sees is
 * exact wherever blocks before it end (breakpoints, single steps): a
 * replay under a debugger takes its inputs at the recorded positions. */
#define DEC_EXACT 2u

/* Decode one instruction from p[0..n). Returns its length; 0 if the bytes
 * are not a valid instruction for corral's CPU (i->fn is then op_ud and
 * i->len 1); -1 if more bytes are needed than n. */
int decode_insn(const uint8_t *p, size_t n, struct insn *i, unsigned *flags);
/* The same for code of the given size (64, or legacy 32/16-bit code). */
int decode_insn_mode(const uint8_t *p, size_t n, struct insn *i, unsigned *flags, unsigned bits);

/* Arithmetic flags (FL_* bits) the instruction reads, and those it always
 * writes; conservative (reads all, writes none) where unknown. */
void decode_flag_use(const struct insn *i, unsigned *rd, unsigned *wr);

/* Called when the instruction's written flags are dead: sets i->noflags and
 * may switch to a cheaper handler. */
void decode_flags_dead(struct insn *i);

/* The instruction accesses the stack implicitly (push, pop, call, ...). */
int decode_uses_stack(const struct insn *i);

#endif
