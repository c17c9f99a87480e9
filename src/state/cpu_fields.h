/* The parts of a CPU's state that every kind of state stream carries the
 * same way (a system VM's vCPUs in src/vm/snapshot.c, a process VM's
 * threads in src/process/ckpt_image.c): field by field, in this order,
 * little-endian through the stream, never a copy of a C struct. Reading
 * checks nothing but the stream; the caller checks the values. */
#ifndef CORRAL_STATE_CPU_FIELDS_H
#define CORRAL_STATE_CPU_FIELDS_H

#include "cpu/cpu.h"
#include "state/stream.h"

/* A segment register: base, limit, selector, attributes. */
void state_put_seg(struct state_writer *w, const struct cpu_seg *s);
void state_get_seg(struct state_reader *r, struct cpu_seg *s);

/* XCR0, XMM0-15, MXCSR, the x87 registers and environment. */
void state_put_fpu(struct state_writer *w, const struct cpu_state *s);
void state_get_fpu(struct state_reader *r, struct cpu_state *s);

#endif
