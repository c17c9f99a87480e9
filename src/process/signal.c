/* Guest signals: dispositions and masks mirrored onto the host (so the host
 * kernel routes, queues and interrupts for us), delivery with real x86-64
 * rt_sigframes, rt_sigreturn, and synchronous signals from CPU exceptions. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "process/internal.h"

/* The x86-64 signal frame (arch/x86/include/uapi/asm/sigcontext.h and
 * ucontext.h); plain uint64_t fields give the same layout on any 64-bit
 * little-endian host. */
struct g_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2, fpstate;
	uint64_t reserved1[8];
};

struct g_ucontext {
	uint64_t uc_flags, uc_link;
	uint64_t ss_sp;
	int32_t ss_flags, pad;
	uint64_t ss_size;
	struct g_sigcontext mc;
	uint64_t sigmask;
};

struct g_rt_sigframe {
	uint64_t pretcode;
	struct g_ucontext uc;
	uint8_t info[128];
};

_Static_assert(sizeof(struct g_sigcontext) == 256, "sigcontext layout");
_Static_assert(sizeof(struct g_ucontext) == 304, "ucontext layout");
_Static_assert(sizeof(struct g_rt_sigframe) == 440, "rt_sigframe layout");
_Static_assert(sizeof(siginfo_t) == 128, "siginfo layout");

#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
#define G_SS_ONSTACK 1
#define G_SS_DISABLE 2
#define G_SS_AUTODISARM (1u << 31)
#define G_MINSIGSTKSZ 2048
#define FXSAVE_SIZE 512
/* RFLAGS bits a signal handler may change (Linux's FIX_EFLAGS) */
#define FIX_EFLAGS (FL_AC | FL_OF | FL_DF | FL_TF | FL_SF | FL_ZF | FL_AF | FL_PF | FL_CF | FL_RF)

#define G_SIGCANCEL 32 /* used by the guest's libc; corral's libc owns the host's */
#define G_SIGSETXID 33

/* x86-64 and the generic Linux ABI (arm64, riscv) number signals alike. */
int sig_internal(int sig)
{
	return sig == G_SIGCANCEL || sig == G_SIGSETXID || sig == HOST_SIG_WAKE || (ckpt_signal && sig == ckpt_signal);
}

static void host_mask(uint64_t gmask, sigset_t *hs)
{
	sigemptyset(hs);
	for (int s = 1; s <= GSIG_MAX; s++)
		if ((gmask & GSIG_BIT(s)) && s != SIGKILL && s != SIGSTOP && !sig_internal(s))
			sigaddset(hs, s);
}

static uint64_t guest_mask(const sigset_t *hs)
{
	uint64_t m = 0;
	for (int s = 1; s <= GSIG_MAX; s++)
		if (!sig_internal(s) && sigismember(hs, s) == 1)
			m |= GSIG_BIT(s);
	return m;
}

/* t->sigready from pending and the mask. Cleared first and set after the
 * test, so that a host_handler running in between (it only ever sets the
 * word) is never undone. */
static void ready_update(struct gthread *t)
{
	__atomic_store_n(&t->sigready, 0, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&t->pending, __ATOMIC_SEQ_CST) & ~__atomic_load_n(&t->sigmask, __ATOMIC_SEQ_CST))
		__atomic_store_n(&t->sigready, 1, __ATOMIC_SEQ_CST);
}

void sig_setmask(struct gthread *t, uint64_t mask)
{
	sigset_t hs;
	mask &= ~(GSIG_BIT(SIGKILL) | GSIG_BIT(SIGSTOP));
	__atomic_store_n(&t->sigmask, mask, __ATOMIC_SEQ_CST);
	ready_update(t);
	host_mask(mask, &hs);
	pthread_sigmask(SIG_SETMASK, &hs, NULL);
}

/* The PC where the host kernel resumes this thread after the handler. */
static uintptr_t *interrupted_pc(void *uc)
{
#if defined(__x86_64__)
	return (uintptr_t *)&((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	return (uintptr_t *)&((ucontext_t *)uc)->uc_mcontext.pc;
#else
	(void)uc;
	return NULL;
#endif
}

static void host_handler(int sig, siginfo_t *si, void *uc);
static size_t fault_page; /* the host's page size, for arena_fault */

/* Did the faulting access write? (x86-64: the page-fault error code) */
static int fault_was_write(void *uc)
{
#if defined(__x86_64__)
	return (((ucontext_t *)uc)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#else
	(void)uc;
	return 0;
#endif
}

/* The host faulted on guest memory (an address in the arena): a page of a
 * file mapping past the file's end (SIGBUS), or a page that another guest
 * thread unmapped while this one still used it (SIGSEGV on the arena's
 * reservation). Never corral's death: the guest sees what Linux would
 * show it, as precisely as the place of the fault allows. */
static void arena_fault(struct gthread *t, int sig, siginfo_t *si, void *uc)
{
	/* A copy for a system call (gmem_read, gmem_write): it fails with
	 * EFAULT, as the kernel's own copies do. */
	if (t->in_copy) {
		t->in_copy = 0;
		siglongjmp(t->copy_jb, 1);
	}
	/* Interpreted code and the helpers translations call: a precise
	 * exception at the instruction (does not return). */
	t->fault_sig = sig;
	uintptr_t *pc = interrupted_pc(uc);
	cpu_host_fault(&t->cpu, si->si_addr, pc ? *pc : 0, fault_was_write(uc));
	t->fault_sig = 0;
	/* Inside a translation, or a direct access of corral's: the page
	 * becomes a private zero page so the access completes harmlessly, and
	 * a guest in cpu_run gets the signal when the block ends. */
	uint64_t gva = 0;
	bool known = t->cpu.in_run && cpu_guest_addr(&t->cpu, si->si_addr, &gva);
	size_t pg = fault_page;
	void *page = (void *)((uintptr_t)si->si_addr & ~(uintptr_t)(pg - 1));
	if (mmap(page, pg, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED) {
		signal(sig, SIG_DFL);
		return;
	}
	if (t->cpu.in_run) {
		siginfo_t g;
		memset(&g, 0, sizeof(g));
		g.si_signo = sig;
		g.si_code = sig == SIGBUS ? BUS_ADRERR : SEGV_ACCERR;
		g.si_addr = known ? (void *)(uintptr_t)gva : NULL;
		t->pinfo[sig] = g;
		__atomic_or_fetch(&t->pending, GSIG_BIT(sig), __ATOMIC_SEQ_CST);
		__atomic_store_n(&t->sigready, 1, __ATOMIC_SEQ_CST);
		cpu_request_stop(&t->cpu);
	}
}

/* SIGSEGV and SIGBUS always come here: faults on guest memory are the
 * guest's, faults elsewhere are corral's own (it dies of them), and the
 * signals sent by someone are the guest's to take as it chose. */
static void fault_handler(int sig, siginfo_t *si, void *uc)
{
	struct gthread *t = cur_thread;
	if (si->si_code > 0 && si->si_code < 0x80) {
		if (t && mm_in_arena(&proc, si->si_addr)) {
			arena_fault(t, sig, si, uc);
			return;
		}
		signal(sig, SIG_DFL); /* a fault in corral itself: die of it */
		return;
	}
	if (proc.act[sig].handler == GSIG_IGN)
		return;
	host_handler(sig, si, uc);
}

static void host_handler(int sig, siginfo_t *si, void *uc)
{
	struct gthread *t = cur_thread;
	if ((sig == SIGFPE || sig == SIGILL) && si->si_code > 0 && si->si_code < 0x80) {
		/* a fault in corral itself, not a signal for the guest: die of it */
		signal(sig, SIG_DFL);
		return;
	}
	if (!t)
		return;
	if (sig != HOST_SIG_WAKE) {
		t->pinfo[sig] = *si;
		__atomic_or_fetch(&t->pending, GSIG_BIT(sig), __ATOMIC_SEQ_CST);
		/* Keep sig blocked in this thread until the guest has taken it, so
		 * that further instances (queued real-time signals) wait in the
		 * host kernel instead of overwriting this one. */
		sigaddset(&((ucontext_t *)uc)->uc_sigmask, sig);
	}
	/* Signals the guest blocks wait (the host's mask mirrors the guest's,
	 * but sig_setmask changes them one after the other). */
	if ((__atomic_load_n(&t->pending, __ATOMIC_SEQ_CST) & ~__atomic_load_n(&t->sigmask, __ATOMIC_SEQ_CST)) ||
	    __atomic_load_n(&ckpt_stopping, __ATOMIC_SEQ_CST)) {
		/* (a checkpoint stops the thread like a signal would) */
		__atomic_store_n(&t->sigready, 1, __ATOMIC_SEQ_CST);
		/* Past sigwin_syscall's test of sigready but not yet in the host
		 * kernel: do not enter it (it might sleep with the signal
		 * untaken), return as if the test had seen the word set. */
		uintptr_t *pc = interrupted_pc(uc);
		if (pc && *pc >= (uintptr_t)sigwin_start && *pc < (uintptr_t)sigwin_end)
			*pc = (uintptr_t)sigwin_bail;
	}
	cpu_request_stop(&t->cpu);
}

#ifndef SIGWIN_ASM
/* Hosts without sigwin.S keep the window open: a signal between the test
 * and the syscall is taken when the syscall returns. */
const char sigwin_start[1], sigwin_end[1], sigwin_bail[1];

long sigwin_syscall(const volatile int *ready, long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	if (*ready)
		return -SIGWIN_ERESTART;
	long r = syscall(nr, a1, a2, a3, a4, a5, a6);
	return r < 0 ? -errno : r;
}
#endif

long sig_host_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	return sigwin_syscall(&cur_thread->sigready, nr, a1, a2, a3, a4, a5, a6);
}

/* SIGSEGV and SIGBUS: fault_handler, whatever the guest's disposition. It
 * may leave by longjmp (into cpu_run or a guest-memory copy), so it blocks
 * nothing while it runs (SA_NODEFER, empty mask). */
static void fault_install(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(sig, &sa, NULL);
}

/* Mirror the guest's disposition of sig onto the host. */
static void host_disposition(int sig, const struct gsigaction *a)
{
	if (sig_internal(sig) || sig == SIGKILL || sig == SIGSTOP)
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	if (sig == SIGSEGV || sig == SIGBUS) {
		fault_install(sig);
		return;
	}
	if (a->handler == GSIG_IGN) {
		sa.sa_handler = SIG_IGN;
	} else if (a->handler == GSIG_DFL) {
		sa.sa_handler = SIG_DFL;
	} else {
		sa.sa_sigaction = host_handler;
		sa.sa_flags = SA_SIGINFO;
	}
	if (sig == SIGCHLD)
		sa.sa_flags |= ((a->flags & GSA_NOCLDSTOP) ? SA_NOCLDSTOP : 0) |
			       ((a->flags & GSA_NOCLDWAIT) ? SA_NOCLDWAIT : 0);
	sigaction(sig, &sa, NULL);
}

int host_sig_wake = 64;

/* The highest real-time signal a thread can send itself. */
static int pick_wake_signal(void)
{
	sigset_t one, old;
	for (int s = SIGRTMAX; s > SIGRTMAX - 8 && s > SIGRTMIN; s--) {
		sigemptyset(&one);
		sigaddset(&one, s);
		pthread_sigmask(SIG_BLOCK, &one, &old);
		int sent = syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), s) == 0;
		struct timespec zero = {0, 0};
		int got = sent && sigtimedwait(&one, NULL, &zero) == s;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (got)
			return s;
	}
	return SIGRTMAX;
}

int sig_init(struct proc *p)
{
	host_sig_wake = pick_wake_signal();
	if (pthread_mutex_init(&p->sig_lock, NULL))
		return -ENOMEM;
	/* What the guest inherits: ignored signals stay ignored across exec. */
	for (int s = 1; s <= GSIG_MAX; s++) {
		struct sigaction old;
		memset(&p->act[s], 0, sizeof(p->act[s]));
		if (!sig_internal(s) && sigaction(s, NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			p->act[s].handler = GSIG_IGN;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	sa.sa_sigaction = host_handler;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(HOST_SIG_WAKE, &sa, NULL) < 0)
		return -errno;
	fault_page = (size_t)sysconf(_SC_PAGESIZE);
	fault_install(SIGSEGV);
	fault_install(SIGBUS);
	return 0;
}

void sig_thread_init(struct gthread *t)
{
	sigset_t hs;
	pthread_sigmask(SIG_SETMASK, NULL, &hs);
	t->sigmask = guest_mask(&hs);
	t->ss_flags = G_SS_DISABLE;
}

bool sig_pending_now(struct gthread *t)
{
	return (t->pending & ~t->sigmask) != 0;
}

void sig_send_thread(struct gthread *t, int sig, const siginfo_t *si)
{
	t->pinfo[sig] = *si;
	__atomic_or_fetch(&t->pending, GSIG_BIT(sig), __ATOMIC_SEQ_CST);
	cpu_request_stop(&t->cpu);
	if (t != cur_thread)
		syscall(SYS_tgkill, proc.pid, t->tid, HOST_SIG_WAKE); /* its host_handler sets sigready */
	else
		ready_update(t);
}

_Noreturn void sig_die(int sig)
{
	ctl_exit();
	fflush(stdout);
	fflush(stderr);
	if (sig > 0 && sig < SIGRTMIN) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(sig, &sa, NULL);
		/* native runs do not dump core unless asked; neither does corral */
		struct rlimit rl = {0, 0};
		setrlimit(RLIMIT_CORE, &rl);
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, sig);
		pthread_sigmask(SIG_UNBLOCK, &s, NULL);
		syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
		raise(sig);
	} else if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
		signal(sig, SIG_DFL);
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, sig);
		pthread_sigmask(SIG_UNBLOCK, &s, NULL);
		raise(sig);
	}
	_exit(128 + sig);
}

static bool sig_default_ignored(int sig)
{
	return sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH || sig == SIGCONT;
}

static bool sig_default_stops(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/* ---- FXSAVE image of the FP state ---- */

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}
static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}
static uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}
static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void fx_save(const struct cpu *c, uint8_t *fx)
{
	const struct cpu_x87 *x = &c->s.x87;
	memset(fx, 0, FXSAVE_SIZE);
	put16(fx + 0, x->fcw);
	put16(fx + 2, x->fsw);
	uint8_t abr = 0;
	for (int i = 0; i < 8; i++)
		if (((x->ftw >> (2 * i)) & 3) != 3)
			abr |= (uint8_t)(1u << i);
	fx[4] = abr;
	put16(fx + 6, x->fop);
	put64(fx + 8, x->fip);
	put64(fx + 16, x->fdp);
	put32(fx + 24, c->s.mxcsr);
	put32(fx + 28, MXCSR_VALID);
	unsigned top = (x->fsw >> 11) & 7;
	for (int i = 0; i < 8; i++) {
		const struct cpu_f80 *r = &x->st[(top + (unsigned)i) & 7];
		put64(fx + 32 + 16 * i, r->mant);
		put16(fx + 40 + 16 * i, r->sexp);
	}
	for (int i = 0; i < 16; i++)
		memcpy(fx + 160 + 16 * i, c->s.xmm[i].b, 16);
}

static unsigned f80_tag(const struct cpu_f80 *r)
{
	unsigned e = r->sexp & 0x7fff;
	if (e == 0x7fff)
		return 2;
	if (e == 0)
		return r->mant ? 2 : 1;
	return (r->mant >> 63) ? 0 : 2;
}

static void fx_restore(struct cpu *c, const uint8_t *fx)
{
	struct cpu_x87 *x = &c->s.x87;
	x->fcw = get16(fx + 0);
	x->fsw = get16(fx + 2);
	x->fop = get16(fx + 6);
	x->fip = get64(fx + 8);
	x->fdp = get64(fx + 16);
	c->s.mxcsr = get32(fx + 24) & MXCSR_VALID;
	unsigned top = (x->fsw >> 11) & 7;
	for (int i = 0; i < 8; i++) {
		struct cpu_f80 *r = &x->st[(top + (unsigned)i) & 7];
		r->mant = get64(fx + 32 + 16 * i);
		r->sexp = get16(fx + 40 + 16 * i);
	}
	uint16_t ftw = 0;
	for (int i = 0; i < 8; i++) {
		unsigned tag = (fx[4] & (1u << i)) ? f80_tag(&x->st[i]) : 3;
		ftw |= (uint16_t)(tag << (2 * i));
	}
	x->ftw = ftw;
	for (int i = 0; i < 16; i++)
		memcpy(c->s.xmm[i].b, fx + 160 + 16 * i, 16);
}

static void fpu_init_state(struct cpu *c)
{
	struct cpu_x87 *x = &c->s.x87;
	x->fcw = 0x037f;
	x->fsw = 0;
	x->ftw = 0xffff;
	x->fop = 0;
	x->fip = x->fdp = 0;
	c->s.mxcsr = MXCSR_DEFAULT;
	memset(c->s.xmm, 0, sizeof(c->s.xmm));
}

/* ---- Delivery ---- */

static bool on_altstack(const struct gthread *t, uint64_t sp)
{
	return t->ss_size && sp > t->ss_sp && sp - t->ss_sp <= t->ss_size;
}

/* Build the frame for sig on t's stack and enter the handler. Returns
 * false if the frame could not be written (the caller kills with SIGSEGV). */
static bool setup_frame(struct gthread *t, int sig, const struct gsigaction *a, const siginfo_t *si, uint64_t oldmask,
			uint64_t err, uint64_t trapno, uint64_t cr2)
{
	struct cpu *c = &t->cpu;
	uint64_t *g = c->s.gpr;
	uint64_t sp = g[R_RSP] - 128; /* the ABI's red zone */
	bool onstack = on_altstack(t, g[R_RSP]);
	if ((a->flags & GSA_ONSTACK) && t->ss_size && !(t->ss_flags & G_SS_DISABLE) && !onstack)
		sp = t->ss_sp + t->ss_size;
	uint64_t fp = (sp - FXSAVE_SIZE) & ~63ull;
	uint64_t fa = ((fp - sizeof(struct g_rt_sigframe)) & ~15ull) - 8;

	struct g_rt_sigframe f;
	memset(&f, 0, sizeof(f));
	f.pretcode = a->restorer;
	f.uc.uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	f.uc.ss_sp = t->ss_sp;
	f.uc.ss_size = t->ss_size;
	f.uc.ss_flags = !t->ss_size || (t->ss_flags & G_SS_DISABLE) ? G_SS_DISABLE : onstack ? G_SS_ONSTACK : 0;
	struct g_sigcontext *m = &f.uc.mc;
	m->r8 = g[R_R8], m->r9 = g[R_R9], m->r10 = g[R_R10], m->r11 = g[R_R11];
	m->r12 = g[R_R12], m->r13 = g[R_R13], m->r14 = g[R_R14], m->r15 = g[R_R15];
	m->rdi = g[R_RDI], m->rsi = g[R_RSI], m->rbp = g[R_RBP], m->rbx = g[R_RBX];
	m->rdx = g[R_RDX], m->rax = g[R_RAX], m->rcx = g[R_RCX], m->rsp = g[R_RSP];
	m->rip = c->s.rip;
	m->eflags = cpu_get_rflags(c);
	m->cs = 0x33;
	m->ss = 0x2b;
	m->err = err;
	m->trapno = trapno;
	m->oldmask = oldmask;
	m->cr2 = cr2;
	m->fpstate = fp;
	f.uc.sigmask = oldmask;
	memcpy(f.info, si, sizeof(f.info));

	uint8_t fx[FXSAVE_SIZE];
	fx_save(c, fx);
	if (gmem_write(fp, fx, sizeof(fx)) || gmem_write(fa, &f, sizeof(f)))
		return false;

	g[R_RSP] = fa;
	g[R_RDI] = (uint64_t)sig;
	g[R_RSI] = fa + offsetof(struct g_rt_sigframe, info);
	g[R_RDX] = fa + offsetof(struct g_rt_sigframe, uc);
	g[R_RAX] = 0;
	c->s.rip = a->handler;
	cpu_set_rflags(c, m->eflags & ~(uint64_t)(FL_DF | FL_RF | FL_TF));
	fpu_init_state(c);
	if ((a->flags & GSA_ONSTACK) && (t->ss_flags & G_SS_AUTODISARM)) {
		t->ss_sp = 0;
		t->ss_size = 0;
		t->ss_flags = G_SS_DISABLE;
	}
	return true;
}

/* Deliver one signal to its handler, or apply the default action.
 * Returns true if a handler frame was set up. */
/* A sender's pid (kill, sigqueue, a child's SIGCHLD) as the program knows it */
static void si_to_guest(siginfo_t *si, int sig)
{
	if (pidmap && (si->si_code <= 0 || sig == SIGCHLD))
		si->si_pid = pid_to_guest(si->si_pid);
}

static bool deliver_one(struct gthread *t, int sig, const siginfo_t *si, uint64_t err, uint64_t trapno, uint64_t cr2,
			bool forced)
{
	pthread_mutex_lock(&proc.sig_lock);
	struct gsigaction a = proc.act[sig];
	if (a.handler > GSIG_IGN && (a.flags & GSA_RESETHAND)) {
		proc.act[sig].handler = GSIG_DFL;
		proc.act[sig].flags &= ~GSA_SIGINFO;
		host_disposition(sig, &proc.act[sig]);
	}
	pthread_mutex_unlock(&proc.sig_lock);
	if (forced && (a.handler <= GSIG_IGN || (t->sigmask & GSIG_BIT(sig))))
		sig_die(sig);
	if (a.handler == GSIG_IGN)
		return false;
	if (a.handler == GSIG_DFL) {
		if (sig_default_ignored(sig))
			return false;
		if (sig_default_stops(sig)) {
			raise(SIGSTOP);
			return false;
		}
		sig_die(sig);
	}
	/* An interrupted syscall restarts if the handler asked for it. */
	if (t->restart) {
		int how = t->restart;
		t->restart = 0;
		if (how == 3 || (how == 1 && (a.flags & GSA_RESTART))) {
			t->cpu.s.rip -= 2;
			t->cpu.s.gpr[R_RAX] = t->restart_nr;
		}
	}
	uint64_t old = t->sigsuspended ? t->saved_mask : t->sigmask;
	t->sigsuspended = 0;
	if (!setup_frame(t, sig, &a, si, old, err, trapno, cr2)) {
		if (sig == SIGSEGV)
			sig_die(SIGSEGV);
		siginfo_t s2;
		memset(&s2, 0, sizeof(s2));
		s2.si_signo = SIGSEGV;
		s2.si_code = SI_KERNEL;
		proc.act[SIGSEGV].handler = GSIG_DFL;
		sig_die(SIGSEGV);
	}
	uint64_t nm = old | a.mask;
	if (!(a.flags & GSA_NODEFER))
		nm |= GSIG_BIT(sig);
	sig_setmask(t, nm);
	return true;
}

void sig_deliver(struct gthread *t)
{
	bool took = false;
	for (;;) {
		uint64_t ready = t->pending & ~t->sigmask;
		if (!ready)
			break;
		took = true;
		/* synchronous-looking signals first, then lowest number */
		int sig = __builtin_ctzll(ready) + 1;
		__atomic_and_fetch(&t->pending, ~GSIG_BIT(sig), __ATOMIC_SEQ_CST);
		siginfo_t si = t->pinfo[sig];
		si_to_guest(&si, sig);
		deliver_one(t, sig, &si, 0, 0, 0, false);
	}
	if (t->restart) {
		/* interrupted by a signal that ran no handler: as if nothing happened */
		t->restart = 0;
		t->cpu.s.rip -= 2;
		t->cpu.s.gpr[R_RAX] = t->restart_nr;
	}
	if (t->sigsuspended) {
		t->sigsuspended = 0;
		sig_setmask(t, t->saved_mask);
	} else if (took) {
		/* unblock what host_handler held back */
		sig_setmask(t, t->sigmask);
	} else if (t->sigready) {
		ready_update(t);
	}
}

void sig_fault(struct gthread *t)
{
	struct cpu *c = &t->cpu;
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	int sig;
	uint64_t err = c->exc_error, cr2 = 0;
	switch (c->exc_vector) {
	case EXC_PF:
		if (t->fault_sig == SIGBUS) { /* a file page past the file's end */
			t->fault_sig = 0;
			sig = SIGBUS;
			si.si_code = BUS_ADRERR;
			si.si_addr = (void *)(uintptr_t)c->exc_addr;
			break;
		}
		t->fault_sig = 0;
		sig = SIGSEGV;
		si.si_code = (c->exc_error & PFERR_P) ? SEGV_ACCERR : SEGV_MAPERR;
		si.si_addr = (void *)(uintptr_t)c->exc_addr;
		cr2 = c->exc_addr;
		err |= PFERR_U;
		break;
	case EXC_UD:
		sig = SIGILL;
		si.si_code = ILL_ILLOPN;
		si.si_addr = (void *)(uintptr_t)c->s.rip;
		break;
	case EXC_DE:
		sig = SIGFPE;
		si.si_code = FPE_INTDIV;
		si.si_addr = (void *)(uintptr_t)c->s.rip;
		break;
	case EXC_XM:
	case EXC_MF: {
		sig = SIGFPE;
		unsigned st;
		if (c->exc_vector == EXC_XM)
			st = c->s.mxcsr & ~(c->s.mxcsr >> 7) & 0x3f;
		else
			st = c->s.x87.fsw & ~c->s.x87.fcw & 0x3f;
		si.si_code = (st & MXCSR_IE)   ? FPE_FLTINV
			     : (st & MXCSR_DE) ? FPE_FLTUND
			     : (st & MXCSR_ZE) ? FPE_FLTDIV
			     : (st & MXCSR_OE) ? FPE_FLTOVF
			     : (st & MXCSR_UE) ? FPE_FLTUND
			     : (st & MXCSR_PE) ? FPE_FLTRES
					       : 0;
		si.si_addr = (void *)(uintptr_t)c->s.rip;
		break;
	}
	case EXC_BP:
		sig = SIGTRAP;
		si.si_code = SI_KERNEL;
		break;
	case EXC_DB:
		sig = SIGTRAP;
		si.si_code = TRAP_TRACE;
		break;
	case EXC_AC:
		sig = SIGBUS;
		si.si_code = BUS_ADRALN;
		break;
	default: /* #GP, #SS, #NP, HLT and the rest */
		sig = SIGSEGV;
		si.si_code = SI_KERNEL;
		break;
	}
	si.si_signo = sig;
	if (proc.opts.trace)
		sys_trace("--- %s at rip 0x%llx (addr 0x%llx, error 0x%x): signal %d\n", cpu_exc_name(c->exc_vector),
			  (unsigned long long)c->s.rip, (unsigned long long)c->exc_addr, c->exc_error, sig);
	deliver_one(t, sig, &si, err, (uint64_t)c->exc_vector, cr2, true);
}

/* ---- Syscalls ---- */

static long do_sigreturn(struct gthread *t)
{
	struct cpu *c = &t->cpu;
	uint64_t *g = c->s.gpr;
	struct g_ucontext uc;
	uint8_t fx[FXSAVE_SIZE];
	uint64_t ua = g[R_RSP];
	if (gmem_read(ua, &uc, sizeof(uc)) || (uc.mc.fpstate && gmem_read(uc.mc.fpstate, fx, sizeof(fx)))) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		si.si_signo = SIGSEGV;
		si.si_code = SI_KERNEL;
		deliver_one(t, SIGSEGV, &si, 0, 0, 0, true);
		return 0;
	}
	const struct g_sigcontext *m = &uc.mc;
	g[R_R8] = m->r8, g[R_R9] = m->r9, g[R_R10] = m->r10, g[R_R11] = m->r11;
	g[R_R12] = m->r12, g[R_R13] = m->r13, g[R_R14] = m->r14, g[R_R15] = m->r15;
	g[R_RDI] = m->rdi, g[R_RSI] = m->rsi, g[R_RBP] = m->rbp, g[R_RBX] = m->rbx;
	g[R_RDX] = m->rdx, g[R_RAX] = m->rax, g[R_RCX] = m->rcx, g[R_RSP] = m->rsp;
	c->s.rip = m->rip;
	uint64_t fl = cpu_get_rflags(c);
	cpu_set_rflags(c, (fl & ~(uint64_t)FIX_EFLAGS) | (m->eflags & FIX_EFLAGS));
	if (m->fpstate)
		fx_restore(c, fx);
	else
		fpu_init_state(c);
	/* restore_altstack: like sigaltstack(), errors ignored */
	if (!on_altstack(t, g[R_RSP])) {
		if (uc.ss_flags & G_SS_DISABLE) {
			t->ss_sp = t->ss_size = 0;
			t->ss_flags = G_SS_DISABLE;
		} else if (uc.ss_size >= G_MINSIGSTKSZ) {
			t->ss_sp = uc.ss_sp;
			t->ss_size = uc.ss_size;
			t->ss_flags = uc.ss_flags & (int32_t)G_SS_AUTODISARM;
		}
	}
	sig_setmask(t, uc.sigmask);
	return 0;
}

static long do_sigaction(int sig, uint64_t act, uint64_t oact, uint64_t size)
{
	if (size != 8)
		return -EINVAL;
	if (sig < 1 || sig > GSIG_MAX)
		return -EINVAL;
	struct gsigaction na;
	if (act) {
		if (sig == SIGKILL || sig == SIGSTOP)
			return -EINVAL;
		if (gmem_read(act, &na, sizeof(na)))
			return -EFAULT;
		na.mask &= ~(GSIG_BIT(SIGKILL) | GSIG_BIT(SIGSTOP));
	}
	pthread_mutex_lock(&proc.sig_lock);
	struct gsigaction old = proc.act[sig];
	if (act) {
		proc.act[sig] = na;
		host_disposition(sig, &na);
	}
	pthread_mutex_unlock(&proc.sig_lock);
	if (oact && gmem_write(oact, &old, sizeof(old)))
		return -EFAULT;
	return 0;
}

void sig_restore_actions(const struct gsigaction *act)
{
	pthread_mutex_lock(&proc.sig_lock);
	for (int s = 1; s <= GSIG_MAX; s++) {
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		proc.act[s] = act[s];
		proc.act[s].mask &= ~(GSIG_BIT(SIGKILL) | GSIG_BIT(SIGSTOP));
		host_disposition(s, &proc.act[s]);
	}
	pthread_mutex_unlock(&proc.sig_lock);
}

/* Wait for a signal with mask in force (sigsuspend/pause). */
static long do_suspend(struct gthread *t, uint64_t mask)
{
	sigset_t all, hs;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	mask &= ~(GSIG_BIT(SIGKILL) | GSIG_BIT(SIGSTOP));
	host_mask(mask, &hs);
	while (!(t->pending & ~mask)) {
		if (__atomic_load_n(&ckpt_stopping, __ATOMIC_SEQ_CST)) {
			/* a checkpoint: made again when the thread goes on */
			sig_setmask(t, t->sigmask);
			return -SIGWIN_ERESTART;
		}
		sigsuspend(&hs);
	}
	t->saved_mask = t->sigmask;
	t->sigsuspended = 1;
	t->sigmask = mask;
	pthread_sigmask(SIG_SETMASK, &hs, NULL);
	return -EINTR;
}

static long do_kill_thread(int tgid, int tid, int sig)
{
	if (sig < 0 || sig > GSIG_MAX)
		return -EINVAL;
	tgid = tgid == -1 ? -1 : pid_to_host(tgid);
	tid = pid_to_host(tid);
	if (tgid == proc.pid || (tgid == -1 && thr_find(tid))) {
		struct gthread *t = thr_find(tid);
		if (!t)
			return -ESRCH;
		if (sig && sig_internal(sig)) {
			siginfo_t si;
			memset(&si, 0, sizeof(si));
			si.si_signo = sig;
			si.si_code = SI_TKILL;
			si.si_pid = proc.pid;
			si.si_uid = getuid();
			sig_send_thread(t, sig, &si);
			return 0;
		}
	} else if (sig_internal(sig)) {
		return -EINVAL;
	}
	long r = tgid == -1 ? syscall(SYS_tkill, tid, sig) : syscall(SYS_tgkill, tgid, tid, sig);
	return r < 0 ? -errno : r;
}

long sig_syscall(struct gthread *t, uint64_t nr, const uint64_t *a)
{
	long r;
	switch (nr) {
	case 13: /* rt_sigaction */ return do_sigaction((int)a[0], a[1], a[2], a[3]);
	case 14: { /* rt_sigprocmask */
		uint64_t set, old = t->sigmask;
		if (a[3] != 8)
			return -EINVAL;
		if (a[1]) {
			if (gmem_read(a[1], &set, 8))
				return -EFAULT;
			switch (a[0]) {
			case SIG_BLOCK: set = old | set; break;
			case SIG_UNBLOCK: set = old & ~set; break;
			case SIG_SETMASK: break;
			default: return -EINVAL;
			}
		}
		if (a[2] && gmem_write(a[2], &old, 8))
			return -EFAULT;
		if (a[1])
			sig_setmask(t, set);
		return 0;
	}
	case 15: /* rt_sigreturn */ return do_sigreturn(t);
	case 34: /* pause */ return do_suspend(t, t->sigmask);
	case 130: { /* rt_sigsuspend */
		uint64_t m;
		if (a[1] != 8)
			return -EINVAL;
		if (gmem_read(a[0], &m, 8))
			return -EFAULT;
		return do_suspend(t, m);
	}
	case 127: { /* rt_sigpending */
		sigset_t hs;
		if (a[1] > 8)
			return -EINVAL;
		sigpending(&hs);
		uint64_t m = (guest_mask(&hs) | t->pending) & t->sigmask;
		return gmem_write(a[0], &m, a[1]) ? -EFAULT : 0;
	}
	case 128: { /* rt_sigtimedwait */
		uint64_t m;
		struct timespec ts;
		siginfo_t si;
		if (a[3] != 8)
			return -EINVAL;
		if (gmem_read(a[0], &m, 8) || (a[2] && gmem_read(a[2], &ts, sizeof(ts))))
			return -EFAULT;
		uint64_t have = t->pending & m;
		if (have) {
			int sig = __builtin_ctzll(have) + 1;
			__atomic_and_fetch(&t->pending, ~GSIG_BIT(sig), __ATOMIC_SEQ_CST);
			si = t->pinfo[sig];
			r = sig;
		} else {
			sigset_t hs;
			host_mask(m, &hs);
			r = sig_host_syscall(SYS_rt_sigtimedwait, (long)&hs, (long)&si, a[2] ? (long)&ts : 0,
					     GSIG_MAX / 8, 0, 0);
			if (r < 0)
				return r;
		}
		si_to_guest(&si, (int)r);
		if (a[1] && gmem_write(a[1], &si, sizeof(si)))
			return -EFAULT;
		return r;
	}
	case 129:   /* rt_sigqueueinfo */
	case 297: { /* rt_tgsigqueueinfo */
		siginfo_t si;
		uint64_t ia = nr == 129 ? a[2] : a[3];
		if (gmem_read(ia, &si, sizeof(si)))
			return -EFAULT;
		if (nr == 129)
			r = syscall(SYS_rt_sigqueueinfo, pid_to_host((int)a[0]), (int)a[1], &si);
		else
			r = syscall(SYS_rt_tgsigqueueinfo, pid_to_host((int)a[0]), pid_to_host((int)a[1]), (int)a[2],
				    &si);
		return r < 0 ? -errno : r;
	}
	case 131: { /* sigaltstack */
		struct {
			uint64_t sp;
			int32_t flags, pad;
			uint64_t size;
		} ss, os;
		bool on = on_altstack(t, t->cpu.s.gpr[R_RSP]);
		os.sp = t->ss_sp;
		os.size = t->ss_size;
		os.flags = !t->ss_size || (t->ss_flags & G_SS_DISABLE) ? G_SS_DISABLE : on ? G_SS_ONSTACK : 0;
		os.flags |= t->ss_flags & (int32_t)G_SS_AUTODISARM;
		os.pad = 0;
		if (a[0]) {
			if (gmem_read(a[0], &ss, sizeof(ss)))
				return -EFAULT;
			if (on)
				return -EPERM;
			int mode = ss.flags & ~(int32_t)G_SS_AUTODISARM;
			if (mode != 0 && mode != G_SS_ONSTACK && mode != G_SS_DISABLE)
				return -EINVAL;
			if (mode == G_SS_DISABLE) {
				ss.sp = ss.size = 0;
			} else if (ss.size < G_MINSIGSTKSZ) {
				return -ENOMEM;
			}
		}
		if (a[1] && gmem_write(a[1], &os, sizeof(os)))
			return -EFAULT;
		if (a[0]) {
			t->ss_sp = ss.sp;
			t->ss_size = ss.size;
			t->ss_flags = ss.flags & ~G_SS_ONSTACK;
		}
		return 0;
	}
	case 62: { /* kill */
		int pid = (int)a[0], sig = (int)a[1];
		if (sig < 0 || sig > GSIG_MAX)
			return -EINVAL;
		if (sig && sig_internal(sig)) {
			if (pid_to_host(pid) != proc.pid)
				return -EINVAL;
			return do_kill_thread(pid, pid, sig);
		}
		r = kill(pid_arg_to_host(pid), sig);
		return r < 0 ? -errno : 0;
	}
	case 200: /* tkill */ return do_kill_thread(-1, (int)a[0], (int)a[1]);
	case 234: /* tgkill */ return do_kill_thread((int)a[0], (int)a[1], (int)a[2]);
	case 282:   /* signalfd */
	case 289: { /* signalfd4 */
		uint64_t m;
		sigset_t hs;
		if (a[2] != 8)
			return -EINVAL;
		if (gmem_read(a[1], &m, 8))
			return -EFAULT;
		if ((int)a[0] != -1 && fs_fd_reserved((int)a[0]))
			return -EBADF;
		host_mask(m, &hs);
		r = signalfd((int)a[0], &hs, nr == 289 ? (int)a[3] : 0);
		return r < 0 ? -errno : r;
	}
	}
	return -ENOSYS;
}
