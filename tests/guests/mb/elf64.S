/* A Multiboot kernel as an x86-64 ELF64 executable: 32-bit code at entry,
 * as the Multiboot specification has it (mb.h). */
#include "mb.h"
	.code32
	.text
	.globl _start
	MB_HEADER 0x00000003
_start:
	MB_CODE
	MB_LIB
	MB_DATA
