/* bench/startup.sh: the first instruction writes port 0x80 (corral notes
 * the time with CORRAL_BENCH_T0), then the guest powers off. */
#include "guest.h"
	.code64
	.globl _start
_start:
	out %al, $0x80
	jmp poweroff
GUEST_LIB
