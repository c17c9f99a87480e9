/* The x87 FPU's state helpers shared with the rest of the CPU core. */
#ifndef CORRAL_CPU_X87_H
#define CORRAL_CPU_X87_H

#include "cpu.h"

/* FNINIT state: FCW 0x037f, FSW 0, all registers empty, FIP/FDP/FOP 0.
 * The register contents are kept (as on hardware). */
void x87_reset(struct cpu_x87 *x);

#endif
