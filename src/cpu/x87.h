/* The x87 FPU's state helpers shared with the rest of the CPU core. */
#ifndef CORRAL_CPU_X87_H
#define CORRAL_CPU_X87_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu.h"

/* FNINIT state: FCW 0x037f, FSW 0, all registers empty, FIP/FDP/FOP 0.
 * The register contents are kept (as on hardware). */
void x87_reset(struct cpu_x87 *x);

/* The x87/SSE state as the first 416 bytes of an FXSAVE image (SDM vol. 1
 * 10.5.1; rex_w: FXSAVE64's 64-bit FIP/FDP) and back, for whoever needs the
 * hardware layout: signal frames, core dumps, the instructions themselves.
 * x87_fxrstor_image fails with -EINVAL (and changes nothing) when reserved
 * MXCSR bits are set, where FXRSTOR raises #GP. */
void x87_fxsave_image(const struct cpu *c, uint8_t img[416], bool rex_w);
int x87_fxrstor_image(struct cpu *c, const uint8_t img[416], bool rex_w);

#endif
