/* A Multiboot kernel as a flat binary: the header's a.out kludge (flag 16)
 * gives the load addresses, a bss and the entry (mb.h). */
#include "mb.h"
	.code32
	.text
	.globl _start
_start:
	jmp entry
	MB_HEADER 0x00010003
	.long mb_header /* header_addr */
	.long _start    /* load_addr */
	.long load_end  /* load_end_addr */
	.long bss_end   /* bss_end_addr */
	.long entry     /* entry_addr */
	MB_CODE
	MB_LIB
	MB_DATA
load_end:
	.bss
	.space 8192
bss_end:
