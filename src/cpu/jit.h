/* The block translator: hot decoded blocks become host code (x86-64 hosts
 * only; elsewhere, or built with -DCORRAL_NO_JIT, every function here is a
 * no-op and the interpreter runs everything).
 *
 * Contract with the run loop (run.c): a translation runs the block's
 * instructions with exactly the interpreter's semantics (same struct cpu
 * state, same lazy flags, same handlers for what it does not emit inline),
 * leaves RIP at the next instruction to run and adds the instructions it
 * retired to c->icount as each block ends. It may follow direct jumps into
 * other translations (chaining); it returns to the loop when a handler sets
 * end_block, on indirect branches, on stop requests, TLB or code generation
 * changes, and when c->icount reaches c->jit_limit. Faults unwind with
 * longjmp from the handlers or slow paths it calls, RIP at the faulting
 * instruction. Translations live in a per-cpu buffer, flushed with the
 * decoded-code cache.
 *
 * System mode (a vCPU of a machine): only 64-bit code is translated; a
 * translation belongs to one physical code page and one linear address (the
 * run loop keys blocks by both); memory goes through the TLB bank of the
 * current privilege (c->tlbp); direct jumps are linked only within the
 * block's own page, because other pages may be mapped differently the next
 * time a translation runs; other jumps look their target up in the jump
 * cache after checking, through the TLB, that its page may be executed and
 * where it is now. */
#ifndef CORRAL_CPU_JIT_H
#define CORRAL_CPU_JIT_H

#include <stddef.h>
#include <stdint.h>

#include "cpu_internal.h"

/* Make [p, p + len) resident now, in one system call, where a process
 * VM's caches grow: each first touch of a page is otherwise a fault, and
 * faults are dear (under a hypervisor most of a short program's start-up).
 * write: for writing (else mapped readable). Pages only partly inside are
 * left alone; failure (an older kernel) leaves them to fault in as before. */
void cpu_prefault(void *p, size_t len, int write);

/* Executions of a block before it is translated. */
#define JIT_HOT_DEFAULT 16

/* Set c->jit up if the translator is available and enabled (environment:
 * CORRAL_JIT=0 turns it off; CORRAL_JIT_HOT=n sets the threshold). Returns
 * 0 (c->jit may stay NULL: interpreter only) or a negative errno. */
int jit_init(struct cpu *c, const struct cpu_opts *opts);
void jit_destroy(struct cpu *c);
/* Drop every translation (with the decoded blocks they call into). */
void jit_flush(struct cpu *c);
/* In the child of a fork: a buffer of its own (the buffer is shared
 * memory); the caller drops the decoded blocks, as cpu_after_fork does. */
void jit_after_fork(struct cpu *c);
/* True when the buffer is too full for another block: flush first. */
int jit_full(const struct cpu *c);
/* Is host_pc inside this cpu's translations? */
int jit_owns_pc(const struct cpu *c, uintptr_t pc);
/* Translate the n decoded instructions at guest address rip; NULL if the
 * block cannot be translated (it then stays interpreted). */
void *jit_translate(struct cpu *c, const struct insn *insn, unsigned n, uint64_t rip);
/* Run from translation entry (c->icount counts what it retires). */
void jit_run(struct cpu *c, void *entry);
/* Enter the translation of the block at rip (key: its run-loop key) in
 * the jump cache that indirect branches of translations look up. */
void jit_note(struct cpu *c, uint64_t rip, uint64_t key, void *entry);
/* Empty the jump cache (translations in it are going away). */
void jit_drop_jumps(struct cpu *c);
/* The translation just left asked (c->jit_patch) to be linked to the one
 * at c->jit_patch_rip: entry is that one's. */
void jit_link(struct cpu *c, void *entry);

#endif
