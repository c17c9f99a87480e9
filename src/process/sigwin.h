/* A host syscall that a guest signal can always interrupt (sigwin.S), for
 * the syscalls that may sleep: the contract of the window between testing
 * for a deliverable guest signal and entering the host kernel. */
#ifndef CORRAL_PROCESS_SIGWIN_H
#define CORRAL_PROCESS_SIGWIN_H

/* What sigwin_syscall returns, negated, when a guest signal came first: the
 * host syscall was not made, and the guest's syscall is made again after the
 * signal is taken (Linux's ERESTARTNOINTR, never seen by user space). */
#define SIGWIN_ERESTART 513

#if defined(__x86_64__) || defined(__aarch64__)
#define SIGWIN_ASM 1
#endif

#ifndef __ASSEMBLER__
/* Host syscall nr unless *ready is nonzero: the host's raw result (a
 * negative errno on failure) or -SIGWIN_ERESTART. */
long sigwin_syscall(const volatile int *ready, long nr, long a1, long a2, long a3, long a4, long a5, long a6);
#ifdef SIGWIN_ASM
/* The window: a signal whose interrupted PC is in [sigwin_start,
 * sigwin_end) resumes at sigwin_bail, which returns -SIGWIN_ERESTART. */
extern const char sigwin_start[], sigwin_end[], sigwin_bail[];
#endif
#endif

#endif
