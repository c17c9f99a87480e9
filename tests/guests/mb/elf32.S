/* A Multiboot kernel as an i386 ELF32 executable (mb.h). */
#include "mb.h"
	.code32
	.text
	.globl _start
	MB_HEADER 0x00000003 /* page-aligned modules, memory information */
_start:
	MB_CODE
	MB_LIB
	MB_DATA
