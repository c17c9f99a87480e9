/* A GDB remote serial protocol server for a system VM (docs/gdbstub.md):
 * GDB attaches over TCP or a unix socket and sees one thread per vCPU, the
 * x86-64 registers (general, x87, SSE, segment bases, control registers),
 * memory by guest virtual address, breakpoints, watchpoints, single steps
 * and `monitor` commands.
 *
 * Contract:
 * - gdbstub_start gives the VM a debugger (vm_debug_enable: emu only),
 *   binds the socket and serves it on a thread of its own, one debugger at
 *   a time; with wait, the VM stands before its first instruction until a
 *   debugger attaches and lets it go. Call it before vm_run/vm_start.
 *   Errors: -errno with one line in err (no "corral: " prefix).
 * - A debugger that attaches stops the VM; one that detaches (or whose
 *   connection ends) removes its breakpoints and lets the VM run; kill ends
 *   the VM (vm_stop).
 * - Everything the debugger sends is hostile input: a malformed packet gets
 *   an error reply (Exx) or a NAK, never a crash.
 * - gdbstub_stop (NULL is fine) ends the thread and closes the sockets; call
 *   it before vm_destroy. */
#ifndef CORRAL_GDBSTUB_H
#define CORRAL_GDBSTUB_H

#include <stddef.h>

#include "vm/vm.h"

struct gdbstub;

/* spec: tcp:[ADDR]:PORT (ADDR empty: 127.0.0.1; PORT 0: any free port),
 * unix:PATH, or a bare PORT (tcp::PORT). */
int gdbstub_start(struct vm *vm, const char *spec, int wait, struct gdbstub **out, char *err, size_t errlen);
/* Where it listens, as a spec ("tcp:127.0.0.1:1234", "unix:/tmp/s"). */
const char *gdbstub_address(const struct gdbstub *g);
void gdbstub_stop(struct gdbstub *g);

#endif
