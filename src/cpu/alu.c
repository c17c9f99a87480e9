/* General-purpose data instructions: arithmetic, logic, shifts, multiply and
 * divide, bit operations, moves and exchanges (with LOCK atomics). */
#include <pthread.h>

#include "ops.h"

/* ---- Atomic read-modify-write support ---- */

/* Every LOCK'd operation is atomic against every other access, as on
 * hardware. Aligned ones on RAM are host atomics on the guest word. The
 * others (an operand that crosses a cache line or a page or is misaligned,
 * MMIO, and CMPXCHG16B on hosts without a 16-byte CAS) are a read and a
 * write that no host atomic covers: hardware takes a bus lock, which holds
 * off every other agent's loads and stores, and so does corral. They run in
 * an exclusive section (QEMU's start_exclusive): every other thread that
 * runs guest code (a vCPU thread of a system VM, a guest thread of a
 * process VM) is asked to stop at a block boundary, and the operation runs
 * once all of them stand outside cpu_run. Nothing else is needed by the
 * aligned atomics or by plain code, which therefore cost what they would
 * alone; entering and leaving cpu_run costs a store, a fence and a load.
 *
 * The protocol is QEMU's (cpus-common.c): a thread marks itself running
 * when it enters cpu_run and not running when it leaves, with a full
 * fence before it looks at excl_pending; the thread that starts a section
 * sets excl_pending, then counts the running threads under excl_lock,
 * stops them (cpu_request_stop) and waits until each has left. A thread
 * that enters cpu_run while a section is pending, uncounted, waits for its
 * end. Limits: device DMA and a process VM's system calls (futex
 * operations on guest words, copies to guest memory) run outside cpu_run
 * and are not held off, as they would be by a real bus lock. */
struct excl_thread {
	int running;	 /* in cpu_run (atomic) */
	bool waiter;	 /* the pending section waits for it to leave (excl_lock) */
	struct cpu *cpu; /* what it runs, to stop it (atomic) */
	struct excl_thread *prev, *next;
};
static pthread_mutex_t excl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t excl_stopped = PTHREAD_COND_INITIALIZER; /* the last counted thread left */
static pthread_cond_t excl_resume = PTHREAD_COND_INITIALIZER;  /* the section ended */
static unsigned excl_pending;		 /* 0; or 1 + the threads still to leave cpu_run (atomic) */
static struct excl_thread *excl_threads; /* every thread that has run guest code (excl_lock) */
static pthread_key_t excl_key;		 /* unlists a thread when it ends */
static __thread struct excl_thread excl_self;
static __thread bool excl_listed;
static __thread bool excl_was_running;	 /* the section's thread was in cpu_run */
static __thread unsigned char lock_held; /* in an exclusive section */

static void excl_unlist_locked(struct excl_thread *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else if (excl_threads == t)
		excl_threads = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
}

/* A thread's record goes when the thread ends (pthread key destructor). */
static void excl_unlist(void *p)
{
	struct excl_thread *t = p;
	pthread_mutex_lock(&excl_lock);
	if (t->waiter) { /* cannot be (it left cpu_run), but never strand a section */
		t->waiter = false;
		if (__atomic_sub_fetch(&excl_pending, 1, __ATOMIC_SEQ_CST) == 1)
			pthread_cond_signal(&excl_stopped);
	}
	excl_unlist_locked(t);
	pthread_mutex_unlock(&excl_lock);
}

static void excl_list(void)
{
	struct excl_thread *t = &excl_self;
	pthread_mutex_lock(&excl_lock);
	t->prev = NULL;
	t->next = excl_threads;
	if (excl_threads)
		excl_threads->prev = t;
	excl_threads = t;
	pthread_mutex_unlock(&excl_lock);
	pthread_setspecific(excl_key, t);
	excl_listed = true;
}

void cpu_excl_run_begin(struct cpu *c)
{
	struct excl_thread *t = &excl_self;
	if (unlikely(!excl_listed))
		excl_list();
	__atomic_store_n(&t->cpu, c, __ATOMIC_RELAXED);
	__atomic_store_n(&t->running, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST); /* Dekker with excl_start's scan */
	if (unlikely(__atomic_load_n(&excl_pending, __ATOMIC_RELAXED))) {
		pthread_mutex_lock(&excl_lock);
		if (!t->waiter) {
			/* not counted: let the section run first. excl_pending
			 * is set and cleared under the lock, so running may be
			 * set again here without a second look */
			__atomic_store_n(&t->running, 0, __ATOMIC_RELAXED);
			while (__atomic_load_n(&excl_pending, __ATOMIC_RELAXED))
				pthread_cond_wait(&excl_resume, &excl_lock);
			__atomic_store_n(&t->running, 1, __ATOMIC_RELAXED);
		} /* else counted: the section waits for run_end */
		pthread_mutex_unlock(&excl_lock);
	}
}

void cpu_excl_run_end(void)
{
	struct excl_thread *t = &excl_self;
	__atomic_store_n(&t->running, 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (unlikely(__atomic_load_n(&excl_pending, __ATOMIC_RELAXED))) {
		pthread_mutex_lock(&excl_lock);
		if (t->waiter) {
			t->waiter = false;
			if (__atomic_sub_fetch(&excl_pending, 1, __ATOMIC_SEQ_CST) == 1)
				pthread_cond_signal(&excl_stopped);
		}
		pthread_mutex_unlock(&excl_lock);
	}
}

/* Enters an exclusive section: returns once no other thread runs guest
 * code. The caller is between the start of its instruction and its first
 * store, so it counts as stopped while it waits for another section. */
static void split_enter(void)
{
	struct excl_thread *self = &excl_self;
	excl_was_running = excl_listed && __atomic_load_n(&self->running, __ATOMIC_RELAXED);
	if (excl_was_running)
		cpu_excl_run_end();
	pthread_mutex_lock(&excl_lock);
	while (__atomic_load_n(&excl_pending, __ATOMIC_RELAXED))
		pthread_cond_wait(&excl_resume, &excl_lock);
	__atomic_store_n(&excl_pending, 1, __ATOMIC_SEQ_CST);
	__atomic_thread_fence(__ATOMIC_SEQ_CST); /* Dekker with cpu_excl_run_begin */
	unsigned n = 0;
	for (struct excl_thread *t = excl_threads; t; t = t->next) {
		if (t == self || !__atomic_load_n(&t->running, __ATOMIC_RELAXED))
			continue;
		t->waiter = true;
		n++;
		cpu_request_stop(__atomic_load_n(&t->cpu, __ATOMIC_RELAXED));
	}
	__atomic_store_n(&excl_pending, n + 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&excl_pending, __ATOMIC_RELAXED) > 1)
		pthread_cond_wait(&excl_stopped, &excl_lock);
	/* the lock goes: nobody starts a section while excl_pending is set */
	pthread_mutex_unlock(&excl_lock);
	lock_held = 1;
}

static void split_exit(void)
{
	lock_held = 0;
	pthread_mutex_lock(&excl_lock);
	__atomic_store_n(&excl_pending, 0, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&excl_resume);
	pthread_mutex_unlock(&excl_lock);
	if (excl_was_running)
		cpu_excl_run_begin(excl_self.cpu);
}

/* A guest exception leaves the instruction by longjmp (cpu_raise), also
 * from a host fault on guest memory that another thread unmapped between
 * the probe and the access: a section this thread holds ends, or every
 * other guest thread (and the next fork) would wait for it forever. */
void cpu_lock_abandon(void)
{
	if (lock_held)
		split_exit();
}

/* fork (a process VM's guest forking) copies only the calling thread: it
 * forks outside any section, and the child forgets the other threads. */
static void excl_fork_prepare(void)
{
	pthread_mutex_lock(&excl_lock);
	while (__atomic_load_n(&excl_pending, __ATOMIC_RELAXED))
		pthread_cond_wait(&excl_resume, &excl_lock);
}

static void excl_fork_parent(void)
{
	pthread_mutex_unlock(&excl_lock);
}

static void excl_fork_child(void)
{
	excl_threads = NULL;
	if (excl_listed) {
		excl_self.prev = excl_self.next = NULL;
		excl_self.waiter = false;
		excl_threads = &excl_self;
	}
	pthread_mutex_unlock(&excl_lock);
}

__attribute__((constructor)) static void split_init(void)
{
	pthread_key_create(&excl_key, excl_unlist);
	pthread_atfork(excl_fork_prepare, excl_fork_parent, excl_fork_child);
}

static uint64_t atomic_load_sz(void *p, unsigned sz)
{
	switch (sz) {
	case 1: return __atomic_load_n((uint8_t *)p, __ATOMIC_SEQ_CST);
	case 2: return __atomic_load_n((uint16_t *)p, __ATOMIC_SEQ_CST);
	case 4: return __atomic_load_n((uint32_t *)p, __ATOMIC_SEQ_CST);
	default: return __atomic_load_n((uint64_t *)p, __ATOMIC_SEQ_CST);
	}
}

static bool atomic_cas_sz(void *p, unsigned sz, uint64_t *expect, uint64_t desired)
{
	bool ok;
	switch (sz) {
	case 1: {
		uint8_t e = (uint8_t)*expect;
		ok = __atomic_compare_exchange_n((uint8_t *)p, &e, (uint8_t)desired, false, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST);
		*expect = e;
		break;
	}
	case 2: {
		uint16_t e = (uint16_t)*expect;
		ok = __atomic_compare_exchange_n((uint16_t *)p, &e, (uint16_t)desired, false, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST);
		*expect = e;
		break;
	}
	case 4: {
		uint32_t e = (uint32_t)*expect;
		ok = __atomic_compare_exchange_n((uint32_t *)p, &e, (uint32_t)desired, false, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST);
		*expect = e;
		break;
	}
	default:
		ok = __atomic_compare_exchange_n((uint64_t *)p, expect, desired, false, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST);
	}
	return ok;
}

/* A locked RMW: the page is probed for writing first, so nothing faults
 * while the operation is entered. Returns a host pointer for a CAS loop
 * (a host atomic), or NULL in an exclusive section (the caller uses
 * mem_read/mem_write). Either way locked_end(p) ends it. */
static void *locked_begin(struct cpu *c, uint64_t ea, unsigned sz)
{
	void *p = mem_rmw_ptr(c, ea, sz);
	if (p && !((uintptr_t)p & (sz - 1)))
		return p; /* a host atomic: no section runs while this thread is in cpu_run */
	mem_probe_write(c, ea, sz);
	split_enter();
	return NULL;
}

static inline void locked_end(const void *p)
{
	if (!p)
		split_exit();
}

/* ---- ALU core ---- */

enum { ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR, ALU_CMP };

static inline uint64_t alu_calc(unsigned op, uint64_t a, uint64_t b, unsigned cf, uint64_t mask)
{
	switch (op) {
	case ALU_ADD: return (a + b) & mask;
	case ALU_OR: return a | b;
	case ALU_ADC: return (a + b + cf) & mask;
	case ALU_SBB: return (a - b - cf) & mask;
	case ALU_AND: return a & b;
	case ALU_XOR: return a ^ b;
	default: return (a - b) & mask; /* SUB, CMP */
	}
}

static inline void alu_flags(struct cpu *c, unsigned op, unsigned sz, uint64_t a, uint64_t b, uint64_t r, unsigned cf)
{
	switch (op) {
	case ALU_ADD:
	case ALU_ADC: lf_set(c, LF_ADD, sz, r, a, b); break;
	case ALU_SUB:
	case ALU_CMP: lf_set(c, LF_SUB, sz, r, a, b); break;
	case ALU_SBB:
		lf_set(c, LF_SUB, sz, r, a, b);
		c->lf_aux = cf;
		break;
	default: lf_set(c, LF_LOGIC, sz, r, a, b);
	}
}

/* dst op= src where dst is the r/m operand (register or memory). */
static inline void alu_rm(struct cpu *c, const struct insn *i, unsigned op, uint64_t b)
{
	unsigned sz = i->opsz;
	uint64_t mask = size_mask(sz);
	b &= mask;
	if (i->mod3) {
		uint64_t a = reg_read(c, i->rm, sz);
		unsigned cf = (op == ALU_ADC || op == ALU_SBB) ? flag_cf(c) : 0;
		uint64_t r = alu_calc(op, a, b, cf, mask);
		if (op != ALU_CMP)
			reg_write(c, i->rm, sz, r);
		if (!i->noflags)
			alu_flags(c, op, sz, a, b, r, cf);
		insn_next(c, i);
		return;
	}
	uint64_t ea = insn_ea(c, i);
	if (op == ALU_CMP) {
		uint64_t a = mem_read(c, ea, sz);
		if (!i->noflags)
			alu_flags(c, op, sz, a, b, (a - b) & mask, 0);
		insn_next(c, i);
		return;
	}
	unsigned cf = (op == ALU_ADC || op == ALU_SBB) ? flag_cf(c) : 0;
	uint64_t a, r;
	if (i->lock) {
		void *p = locked_begin(c, ea, sz);
		if (p) {
			a = atomic_load_sz(p, sz);
			do
				r = alu_calc(op, a, b, cf, mask);
			while (!atomic_cas_sz(p, sz, &a, r));
			locked_end(p);
		} else {
			a = mem_read(c, ea, sz);
			r = alu_calc(op, a, b, cf, mask);
			mem_write(c, ea, sz, r);
			locked_end(NULL);
		}
	} else {
		a = mem_read(c, ea, sz);
		r = alu_calc(op, a, b, cf, mask);
		mem_write(c, ea, sz, r);
	}
	if (!i->noflags)
		alu_flags(c, op, sz, a, b, r, cf);
	insn_next(c, i);
}

#define ALU_HANDLERS(OPC, name)                                                                                        \
	static void op_alu_rm_r_##name(struct cpu *c, const struct insn *i)                                            \
	{                                                                                                              \
		alu_rm(c, i, OPC, reg_read(c, i->reg, i->opsz));                                                       \
	}                                                                                                              \
	static void op_alu_rm_imm_##name(struct cpu *c, const struct insn *i)                                          \
	{                                                                                                              \
		alu_rm(c, i, OPC, i->imm);                                                                             \
	}                                                                                                              \
	static void op_alu_r_rm_##name(struct cpu *c, const struct insn *i)                                            \
	{                                                                                                              \
		unsigned sz = i->opsz;                                                                                 \
		uint64_t mask = size_mask(sz);                                                                         \
		uint64_t b = rm_read(c, i, sz);                                                                        \
		uint64_t a = reg_read(c, i->reg, sz);                                                                  \
		unsigned cf = (OPC == ALU_ADC || OPC == ALU_SBB) ? flag_cf(c) : 0;                                     \
		uint64_t r = alu_calc(OPC, a, b, cf, mask);                                                            \
		if (OPC != ALU_CMP)                                                                                    \
			reg_write(c, i->reg, sz, r);                                                                   \
		if (!i->noflags)                                                                                       \
			alu_flags(c, OPC, sz, a, b, r, cf);                                                            \
		insn_next(c, i);                                                                                       \
	}

ALU_HANDLERS(ALU_ADD, add)
ALU_HANDLERS(ALU_OR, or)
ALU_HANDLERS(ALU_ADC, adc)
ALU_HANDLERS(ALU_SBB, sbb)
ALU_HANDLERS(ALU_AND, and)
ALU_HANDLERS(ALU_SUB, sub)
ALU_HANDLERS(ALU_XOR, xor)
ALU_HANDLERS(ALU_CMP, cmp)

const insn_fn alu_rm_r[8] = {
	op_alu_rm_r_add, op_alu_rm_r_or,  op_alu_rm_r_adc, op_alu_rm_r_sbb,
	op_alu_rm_r_and, op_alu_rm_r_sub, op_alu_rm_r_xor, op_alu_rm_r_cmp,
};
const insn_fn alu_r_rm[8] = {
	op_alu_r_rm_add, op_alu_r_rm_or,  op_alu_r_rm_adc, op_alu_r_rm_sbb,
	op_alu_r_rm_and, op_alu_r_rm_sub, op_alu_r_rm_xor, op_alu_r_rm_cmp,
};
const insn_fn alu_rm_imm[8] = {
	op_alu_rm_imm_add, op_alu_rm_imm_or,  op_alu_rm_imm_adc, op_alu_rm_imm_sbb,
	op_alu_rm_imm_and, op_alu_rm_imm_sub, op_alu_rm_imm_xor, op_alu_rm_imm_cmp,
};

/* Register-register fast forms (rm is the destination, reg the source). */
#define ALU_RR(OPC, name, SZ, KIND)                                                                                    \
	void op_alu_rr##SZ##_##name(struct cpu *c, const struct insn *i)                                               \
	{                                                                                                              \
		uint64_t a = reg_read(c, i->rm, SZ / 8), b = reg_read(c, i->reg, SZ / 8);                              \
		uint64_t r = alu_calc(OPC, a, b, 0, size_mask(SZ / 8));                                                \
		if (OPC != ALU_CMP)                                                                                    \
			reg_write(c, i->rm, SZ / 8, r);                                                                \
		if (!i->noflags) {                                                                                     \
			c->lf_op = KIND | (SZ == 64 ? 3 : 2);                                                          \
			c->lf_res = r;                                                                                 \
			c->lf_src1 = a;                                                                                \
			c->lf_src2 = b;                                                                                \
			c->lf_aux = 0;                                                                                 \
		}                                                                                                      \
		c->s.rip += i->len;                                                                                    \
	}
ALU_RR(ALU_ADD, add, 64, LF_ADD)
ALU_RR(ALU_SUB, sub, 64, LF_SUB)
ALU_RR(ALU_XOR, xor, 64, LF_LOGIC)
ALU_RR(ALU_AND, and, 64, LF_LOGIC)
ALU_RR(ALU_OR, or, 64, LF_LOGIC)
ALU_RR(ALU_CMP, cmp, 64, LF_SUB)
ALU_RR(ALU_ADD, add, 32, LF_ADD)
ALU_RR(ALU_SUB, sub, 32, LF_SUB)
ALU_RR(ALU_XOR, xor, 32, LF_LOGIC)
ALU_RR(ALU_AND, and, 32, LF_LOGIC)
ALU_RR(ALU_OR, or, 32, LF_LOGIC)
ALU_RR(ALU_CMP, cmp, 32, LF_SUB)

void op_test_rm_r(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	uint64_t a = rm_read(c, i, sz), b = reg_read(c, i->reg, sz);
	if (!i->noflags)
		lf_set(c, LF_LOGIC, sz, a & b, a, b);
	insn_next(c, i);
}

void op_test_rm_imm(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	uint64_t a = rm_read(c, i, sz), b = i->imm & size_mask(sz);
	if (!i->noflags)
		lf_set(c, LF_LOGIC, sz, a & b, a, b);
	insn_next(c, i);
}

/* ---- Unary: INC DEC NOT NEG ---- */

enum { UN_INC, UN_DEC, UN_NOT, UN_NEG };

static inline uint64_t unary_calc(unsigned op, uint64_t a, uint64_t mask)
{
	switch (op) {
	case UN_INC: return (a + 1) & mask;
	case UN_DEC: return (a - 1) & mask;
	case UN_NOT: return ~a & mask;
	default: return (0 - a) & mask;
	}
}

static inline void unary(struct cpu *c, const struct insn *i, unsigned op)
{
	unsigned sz = i->opsz;
	uint64_t mask = size_mask(sz), a, r;
	if (i->mod3) {
		a = reg_read(c, i->rm, sz);
		r = unary_calc(op, a, mask);
		reg_write(c, i->rm, sz, r);
	} else {
		uint64_t ea = insn_ea(c, i);
		if (i->lock) {
			void *p = locked_begin(c, ea, sz);
			if (p) {
				a = atomic_load_sz(p, sz);
				do
					r = unary_calc(op, a, mask);
				while (!atomic_cas_sz(p, sz, &a, r));
				locked_end(p);
			} else {
				a = mem_read(c, ea, sz);
				r = unary_calc(op, a, mask);
				mem_write(c, ea, sz, r);
				locked_end(NULL);
			}
		} else {
			a = mem_read(c, ea, sz);
			r = unary_calc(op, a, mask);
			mem_write(c, ea, sz, r);
		}
	}
	switch (i->noflags ? UN_NOT : op) {
	case UN_INC:
	case UN_DEC: {
		uint32_t cf = flag_cf(c) ? FL_CF : 0;
		lf_set(c, op == UN_INC ? LF_INC : LF_DEC, sz, r, a, 1);
		c->lf_aux = cf;
		break;
	}
	case UN_NEG: lf_set(c, LF_SUB, sz, r, 0, a); break;
	default: break; /* NOT changes no flags */
	}
	insn_next(c, i);
}

void op_inc(struct cpu *c, const struct insn *i)
{
	unary(c, i, UN_INC);
}
void op_dec(struct cpu *c, const struct insn *i)
{
	unary(c, i, UN_DEC);
}
void op_not(struct cpu *c, const struct insn *i)
{
	unary(c, i, UN_NOT);
}
void op_neg(struct cpu *c, const struct insn *i)
{
	unary(c, i, UN_NEG);
}

/* ---- Multiply and divide ---- */

typedef unsigned __int128 u128;
typedef __int128 s128;

void op_mul(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	uint64_t b = rm_read(c, i, sz);
	uint64_t *g = c->s.gpr;
	bool hi;
	switch (sz) {
	case 1: {
		uint32_t r = (uint32_t)(g[R_RAX] & 0xff) * (uint32_t)b;
		reg_write(c, R_RAX, 2, r);
		hi = (r >> 8) != 0;
		break;
	}
	case 2: {
		uint32_t r = (uint32_t)(g[R_RAX] & 0xffff) * (uint32_t)b;
		reg_write(c, R_RAX, 2, r);
		reg_write(c, R_RDX, 2, r >> 16);
		hi = (r >> 16) != 0;
		break;
	}
	case 4: {
		uint64_t r = (g[R_RAX] & 0xffffffff) * b;
		reg_write(c, R_RAX, 4, r);
		reg_write(c, R_RDX, 4, r >> 32);
		hi = (r >> 32) != 0;
		break;
	}
	default: {
		u128 r = (u128)g[R_RAX] * b;
		g[R_RAX] = (uint64_t)r;
		g[R_RDX] = (uint64_t)(r >> 64);
		hi = g[R_RDX] != 0;
	}
	}
	if (!i->noflags)
		flags_set(c, FL_CF | FL_OF, hi ? (FL_CF | FL_OF) : 0);
	insn_next(c, i);
}

void op_imul1(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	int64_t b = sext(rm_read(c, i, sz), sz);
	uint64_t *g = c->s.gpr;
	bool ovf;
	switch (sz) {
	case 1: {
		int32_t r = (int8_t)g[R_RAX] * (int32_t)b;
		reg_write(c, R_RAX, 2, (uint32_t)r);
		ovf = r != (int8_t)r;
		break;
	}
	case 2: {
		int32_t r = (int16_t)g[R_RAX] * (int32_t)b;
		reg_write(c, R_RAX, 2, (uint32_t)r);
		reg_write(c, R_RDX, 2, (uint32_t)r >> 16);
		ovf = r != (int16_t)r;
		break;
	}
	case 4: {
		int64_t r = (int64_t)(int32_t)g[R_RAX] * b;
		reg_write(c, R_RAX, 4, (uint64_t)r);
		reg_write(c, R_RDX, 4, (uint64_t)r >> 32);
		ovf = r != (int32_t)r;
		break;
	}
	default: {
		s128 r = (s128)(int64_t)g[R_RAX] * b;
		g[R_RAX] = (uint64_t)r;
		g[R_RDX] = (uint64_t)((u128)r >> 64);
		ovf = r != (int64_t)r;
	}
	}
	if (!i->noflags)
		flags_set(c, FL_CF | FL_OF, ovf ? (FL_CF | FL_OF) : 0);
	insn_next(c, i);
}

static void imul2(struct cpu *c, const struct insn *i, int64_t a, int64_t b)
{
	unsigned sz = i->opsz;
	s128 r = (s128)a * b;
	int64_t t = sext((uint64_t)r, sz);
	reg_write(c, i->reg, sz, (uint64_t)r);
	if (!i->noflags)
		flags_set(c, FL_CF | FL_OF, (s128)t != r ? (FL_CF | FL_OF) : 0);
	insn_next(c, i);
}

void op_imul_r_rm(struct cpu *c, const struct insn *i)
{
	int64_t b = sext(rm_read(c, i, i->opsz), i->opsz);
	imul2(c, i, sext(reg_read(c, i->reg, i->opsz), i->opsz), b);
}

void op_imul_r_rm_imm(struct cpu *c, const struct insn *i)
{
	int64_t a = sext(rm_read(c, i, i->opsz), i->opsz);
	imul2(c, i, a, sext(i->imm, i->opsz));
}

void op_div(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	uint64_t d = rm_read(c, i, sz);
	uint64_t *g = c->s.gpr;
	if (!d)
		cpu_raise(c, EXC_DE, 0);
	switch (sz) {
	case 1: {
		uint32_t n = (uint32_t)(g[R_RAX] & 0xffff);
		uint32_t q = n / (uint32_t)d;
		if (q > 0xff)
			cpu_raise(c, EXC_DE, 0);
		reg_write(c, R_RAX, 2, q | ((n % (uint32_t)d) << 8));
		break;
	}
	case 2: {
		uint32_t n = (uint32_t)((g[R_RDX] & 0xffff) << 16 | (g[R_RAX] & 0xffff));
		uint32_t q = n / (uint32_t)d;
		if (q > 0xffff)
			cpu_raise(c, EXC_DE, 0);
		reg_write(c, R_RAX, 2, q);
		reg_write(c, R_RDX, 2, n % (uint32_t)d);
		break;
	}
	case 4: {
		uint64_t n = (g[R_RDX] & 0xffffffff) << 32 | (g[R_RAX] & 0xffffffff);
		uint64_t q = n / d;
		if (q > 0xffffffff)
			cpu_raise(c, EXC_DE, 0);
		reg_write(c, R_RAX, 4, q);
		reg_write(c, R_RDX, 4, n % d);
		break;
	}
	default: {
		if (g[R_RDX] >= d)
			cpu_raise(c, EXC_DE, 0);
		u128 n = (u128)g[R_RDX] << 64 | g[R_RAX];
		g[R_RAX] = (uint64_t)(n / d);
		g[R_RDX] = (uint64_t)(n % d);
	}
	}
	insn_next(c, i);
}

void op_idiv(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	int64_t d = sext(rm_read(c, i, sz), sz);
	uint64_t *g = c->s.gpr;
	if (!d)
		cpu_raise(c, EXC_DE, 0);
	switch (sz) {
	case 1: {
		int32_t n = (int16_t)g[R_RAX];
		int32_t q = n / (int32_t)d, r = n % (int32_t)d;
		if (q != (int8_t)q)
			cpu_raise(c, EXC_DE, 0);
		reg_write(c, R_RAX, 2, ((uint32_t)q & 0xff) | (((uint32_t)r & 0xff) << 8));
		break;
	}
	case 2: {
		int32_t n = (int32_t)(uint32_t)((g[R_RDX] & 0xffff) << 16 | (g[R_RAX] & 0xffff));
		int32_t q = n / (int32_t)d, r = n % (int32_t)d;
		if (q != (int16_t)q)
			cpu_raise(c, EXC_DE, 0);
		reg_write(c, R_RAX, 2, (uint32_t)q);
		reg_write(c, R_RDX, 2, (uint32_t)r);
		break;
	}
	case 4: {
		int64_t n = (int64_t)((g[R_RDX] & 0xffffffff) << 32 | (g[R_RAX] & 0xffffffff));
		if (n == INT64_MIN && d == -1)
			cpu_raise(c, EXC_DE, 0);
		int64_t q = n / d, r = n % d;
		if (q != (int32_t)q)
			cpu_raise(c, EXC_DE, 0);
		reg_write(c, R_RAX, 4, (uint64_t)q);
		reg_write(c, R_RDX, 4, (uint64_t)r);
		break;
	}
	default: {
		s128 n = (s128)((u128)g[R_RDX] << 64 | g[R_RAX]);
		/* |quotient| must fit: check without overflowing the 128-bit division. */
		u128 un = n < 0 ? -(u128)n : (u128)n;
		u128 ud = d < 0 ? -(u128)(s128)d : (u128)d;
		u128 uq = un / ud;
		bool neg = (n < 0) != (d < 0);
		if (neg ? uq > ((u128)1 << 63) : uq > (u128)INT64_MAX)
			cpu_raise(c, EXC_DE, 0);
		u128 ur = un % ud;
		g[R_RAX] = neg ? (uint64_t)(0 - (uint64_t)uq) : (uint64_t)uq;
		g[R_RDX] = n < 0 ? (uint64_t)(0 - (uint64_t)ur) : (uint64_t)ur;
	}
	}
	insn_next(c, i);
}

/* ---- Shifts and rotates ---- */

static void shift_exec(struct cpu *c, const struct insn *i, unsigned raw)
{
	unsigned sz = i->opsz, bits = sz * 8, op = i->aux;
	unsigned cnt = raw & (sz == 8 ? 63 : 31);
	uint64_t mask = size_mask(sz);
	uint64_t ea = 0, v;
	if (i->mod3) {
		v = reg_read(c, i->rm, sz);
	} else {
		ea = insn_ea(c, i);
		v = mem_read(c, ea, sz);
	}
	if (!cnt) {
		/* Flags are unchanged; the destination is still written (a 32-bit
		 * register is zero-extended, memory must be writable). */
		if (!i->mod3)
			mem_probe_write(c, ea, sz);
		else if (sz == 4)
			reg_write(c, i->rm, 4, v);
		insn_next(c, i);
		return;
	}
	uint64_t r;
	uint32_t f = 0, fmask;
	unsigned cf, of;
	uint64_t msb = sign_bit(sz);
	switch (op) {
	case 0: { /* ROL */
		unsigned n = cnt % bits;
		r = n ? ((v << n) | (v >> (bits - n))) & mask : v;
		cf = r & 1;
		of = ((r & msb) != 0) ^ cf;
		fmask = FL_CF | FL_OF;
		break;
	}
	case 1: { /* ROR */
		unsigned n = cnt % bits;
		r = n ? ((v >> n) | (v << (bits - n))) & mask : v;
		cf = (r & msb) != 0;
		of = cf ^ ((r & (msb >> 1)) != 0);
		fmask = FL_CF | FL_OF;
		break;
	}
	case 2:	  /* RCL */
	case 3: { /* RCR */
		unsigned n = sz == 1 ? cnt % 9 : sz == 2 ? cnt % 17 : cnt;
		unsigned oldcf = flag_cf(c);
		u128 x = ((u128)oldcf << bits) | v, m = ((u128)1 << (bits + 1)) - 1;
		if (n) {
			if (op == 2)
				x = ((x << n) | (x >> (bits + 1 - n))) & m;
			else
				x = ((x >> n) | (x << (bits + 1 - n))) & m;
		}
		r = (uint64_t)x & mask;
		cf = (unsigned)(x >> bits) & 1;
		if (op == 2)
			of = ((r & msb) != 0) ^ cf;
		else
			of = ((v & msb) != 0) ^ oldcf;
		fmask = FL_CF | FL_OF;
		break;
	}
	case 4:
	case 6: /* SHL/SAL */
		r = cnt < 64 ? (v << cnt) & mask : 0;
		cf = cnt <= bits ? (unsigned)(v >> (bits - cnt)) & 1 : 0;
		of = ((r & msb) != 0) ^ cf;
		fmask = FL_ARITH;
		break;
	case 5: /* SHR */
		r = cnt < 64 ? v >> cnt : 0;
		cf = cnt <= bits ? (unsigned)(v >> (cnt - 1)) & 1 : 0;
		of = (v & msb) != 0;
		fmask = FL_ARITH;
		break;
	default: { /* SAR */
		int64_t sv = sext(v, sz);
		r = (uint64_t)(sv >> (cnt < bits ? cnt : bits - 1)) & mask;
		cf = (unsigned)(sv >> (cnt <= bits ? cnt - 1 : bits - 1)) & 1;
		of = 0;
		fmask = FL_ARITH;
	}
	}
	if (i->mod3)
		reg_write(c, i->rm, sz, r);
	else
		mem_write(c, ea, sz, r);
	if (i->noflags) {
		insn_next(c, i);
		return;
	}
	if (cf)
		f |= FL_CF;
	if (of)
		f |= FL_OF;
	if (fmask == FL_ARITH) {
		if (!r)
			f |= FL_ZF;
		if (r & msb)
			f |= FL_SF;
		f |= parity8(r);
	}
	flags_set(c, fmask, f);
	insn_next(c, i);
}

void op_shift_imm(struct cpu *c, const struct insn *i)
{
	shift_exec(c, i, i->imm8);
}
void op_shift_cl(struct cpu *c, const struct insn *i)
{
	shift_exec(c, i, (unsigned)c->s.gpr[R_RCX] & 0xff);
}

static void shxd(struct cpu *c, const struct insn *i, unsigned raw, bool left)
{
	unsigned sz = i->opsz, bits = sz * 8;
	unsigned cnt = raw & (sz == 8 ? 63 : 31);
	uint64_t mask = size_mask(sz), msb = sign_bit(sz);
	uint64_t ea = 0, d;
	if (i->mod3) {
		d = reg_read(c, i->rm, sz);
	} else {
		ea = insn_ea(c, i);
		d = mem_read(c, ea, sz);
	}
	if (!cnt) {
		if (!i->mod3)
			mem_probe_write(c, ea, sz);
		else if (sz == 4)
			reg_write(c, i->rm, 4, d);
		insn_next(c, i);
		return;
	}
	uint64_t s = reg_read(c, i->reg, sz), r;
	unsigned cf;
	if (sz == 2) {
		/* 16-bit with counts above 16 is undefined; model the 48-bit
		 * concatenation d:s:d that hardware shifts through. */
		u128 x = ((u128)d << 32) | (s << 16) | d;
		if (left) {
			r = (uint64_t)((x << cnt) >> 32) & mask;
			cf = (unsigned)(x >> (48 - cnt)) & 1;
		} else {
			r = (uint64_t)(x >> cnt) & mask;
			cf = (unsigned)(x >> (cnt - 1)) & 1;
		}
	} else if (left) {
		r = ((d << cnt) | (cnt == bits ? s : s >> (bits - cnt))) & mask;
		cf = (unsigned)(d >> (bits - cnt)) & 1;
	} else {
		r = ((d >> cnt) | (s << (bits - cnt))) & mask;
		cf = (unsigned)(d >> (cnt - 1)) & 1;
	}
	if (i->mod3)
		reg_write(c, i->rm, sz, r);
	else
		mem_write(c, ea, sz, r);
	uint32_t f = cf ? FL_CF : 0;
	if (((r ^ d) & msb) != 0)
		f |= FL_OF;
	if (!r)
		f |= FL_ZF;
	if (r & msb)
		f |= FL_SF;
	f |= parity8(r);
	flags_set(c, FL_ARITH, f);
	insn_next(c, i);
}

void op_shld_imm(struct cpu *c, const struct insn *i)
{
	shxd(c, i, i->imm8, true);
}
void op_shld_cl(struct cpu *c, const struct insn *i)
{
	shxd(c, i, (unsigned)c->s.gpr[R_RCX] & 0xff, true);
}
void op_shrd_imm(struct cpu *c, const struct insn *i)
{
	shxd(c, i, i->imm8, false);
}
void op_shrd_cl(struct cpu *c, const struct insn *i)
{
	shxd(c, i, (unsigned)c->s.gpr[R_RCX] & 0xff, false);
}

/* ---- Bit test and scan ---- */

static void bt_exec(struct cpu *c, const struct insn *i, int64_t off, bool reg_offset)
{
	unsigned sz = i->opsz, bits = sz * 8, op = i->aux;
	uint64_t bit, v, r, ea = 0;
	if (i->mod3) {
		bit = (uint64_t)off & (bits - 1);
		v = reg_read(c, i->rm, sz);
	} else {
		ea = insn_ea(c, i);
		if (reg_offset) {
			/* The bit offset is signed and may reach far outside the operand. */
			ea += (uint64_t)((off >> (sz == 2 ? 4 : sz == 4 ? 5 : 6)) * (int64_t)sz);
			if (i->adsz == 4)
				ea &= 0xffffffff;
		}
		bit = (uint64_t)off & (bits - 1);
		if (op && i->lock) {
			void *p = locked_begin(c, ea, sz);
			if (p) {
				v = atomic_load_sz(p, sz);
				do {
					r = op == 1   ? v | (1ull << bit)
					    : op == 2 ? v & ~(1ull << bit)
						      : v ^ (1ull << bit);
				} while (!atomic_cas_sz(p, sz, &v, r));
				locked_end(p);
			} else {
				v = mem_read(c, ea, sz);
				r = op == 1 ? v | (1ull << bit) : op == 2 ? v & ~(1ull << bit) : v ^ (1ull << bit);
				mem_write(c, ea, sz, r);
				locked_end(NULL);
			}
			flags_set(c, FL_CF, (v >> bit) & 1 ? FL_CF : 0);
			insn_next(c, i);
			return;
		}
		v = mem_read(c, ea, sz);
	}
	if (op) {
		r = op == 1 ? v | (1ull << bit) : op == 2 ? v & ~(1ull << bit) : v ^ (1ull << bit);
		if (i->mod3)
			reg_write(c, i->rm, sz, r);
		else
			mem_write(c, ea, sz, r);
	}
	flags_set(c, FL_CF, (v >> bit) & 1 ? FL_CF : 0);
	insn_next(c, i);
}

void op_bt_r(struct cpu *c, const struct insn *i)
{
	bt_exec(c, i, sext(reg_read(c, i->reg, i->opsz), i->opsz), true);
}

void op_bt_imm(struct cpu *c, const struct insn *i)
{
	bt_exec(c, i, i->imm8, false);
}

void op_bsf(struct cpu *c, const struct insn *i)
{
	uint64_t v = rm_read(c, i, i->opsz);
	if (!v) {
		flags_set(c, FL_ZF, FL_ZF);
	} else {
		reg_write(c, i->reg, i->opsz, (uint64_t)__builtin_ctzll(v));
		flags_set(c, FL_ZF, 0);
	}
	insn_next(c, i);
}

void op_bsr(struct cpu *c, const struct insn *i)
{
	uint64_t v = rm_read(c, i, i->opsz);
	if (!v) {
		flags_set(c, FL_ZF, FL_ZF);
	} else {
		reg_write(c, i->reg, i->opsz, (uint64_t)(63 - __builtin_clzll(v)));
		flags_set(c, FL_ZF, 0);
	}
	insn_next(c, i);
}

void op_popcnt(struct cpu *c, const struct insn *i)
{
	uint64_t v = rm_read(c, i, i->opsz);
	reg_write(c, i->reg, i->opsz, (uint64_t)__builtin_popcountll(v));
	flags_set(c, FL_ARITH, v ? 0 : FL_ZF);
	insn_next(c, i);
}

/* ---- Moves ---- */

void op_mov_rm_r(struct cpu *c, const struct insn *i)
{
	rm_write(c, i, i->opsz, reg_read(c, i->reg, i->opsz));
	insn_next(c, i);
}

void op_mov_r_rm(struct cpu *c, const struct insn *i)
{
	reg_write(c, i->reg, i->opsz, rm_read(c, i, i->opsz));
	insn_next(c, i);
}

void op_mov_rr64(struct cpu *c, const struct insn *i)
{
	c->s.gpr[i->rm] = c->s.gpr[i->reg];
	c->s.rip += i->len;
}

void op_mov_rr32(struct cpu *c, const struct insn *i)
{
	c->s.gpr[i->rm] = c->s.gpr[i->reg] & 0xffffffff;
	c->s.rip += i->len;
}

void op_mov_r_m64(struct cpu *c, const struct insn *i)
{
	c->s.gpr[i->reg] = mem_read(c, insn_ea(c, i), 8);
	c->s.rip += i->len;
}

void op_mov_m64_r(struct cpu *c, const struct insn *i)
{
	mem_write(c, insn_ea(c, i), 8, c->s.gpr[i->reg]);
	c->s.rip += i->len;
}

void op_mov_rm_imm(struct cpu *c, const struct insn *i)
{
	rm_write(c, i, i->opsz, i->imm);
	insn_next(c, i);
}

void op_mov_r_imm(struct cpu *c, const struct insn *i)
{
	reg_write(c, i->reg, i->opsz, i->imm);
	insn_next(c, i);
}

static uint64_t moffs_addr(const struct cpu *c, const struct insn *i)
{
	uint64_t a = i->imm;
	if (i->seg != SEG_NONE)
		a += c->s.seg[i->seg].base;
	return a;
}

void op_mov_a_moffs(struct cpu *c, const struct insn *i)
{
	reg_write(c, R_RAX, i->opsz, mem_read(c, moffs_addr(c, i), i->opsz));
	insn_next(c, i);
}

void op_mov_moffs_a(struct cpu *c, const struct insn *i)
{
	mem_write(c, moffs_addr(c, i), i->opsz, reg_read(c, R_RAX, i->opsz));
	insn_next(c, i);
}

void op_movzx(struct cpu *c, const struct insn *i)
{
	reg_write(c, i->reg, i->opsz, rm_read(c, i, i->aux));
	insn_next(c, i);
}

void op_movsx(struct cpu *c, const struct insn *i)
{
	reg_write(c, i->reg, i->opsz, (uint64_t)sext(rm_read(c, i, i->aux), i->aux));
	insn_next(c, i);
}

void op_movsxd(struct cpu *c, const struct insn *i)
{
	uint64_t v = rm_read(c, i, 4);
	reg_write(c, i->reg, i->opsz, i->opsz == 8 ? (uint64_t)(int64_t)(int32_t)v : v);
	insn_next(c, i);
}

void op_lea(struct cpu *c, const struct insn *i)
{
	/* LEA ignores segments: compute the offset only. */
	uint64_t a = (uint64_t)(int64_t)i->disp;
	if (i->base == RIPREL)
		a += c->s.rip + i->len;
	else if (i->base != NOREG)
		a += c->s.gpr[i->base];
	if (i->index != NOREG)
		a += c->s.gpr[i->index] << i->scale;
	if (i->adsz == 4)
		a &= 0xffffffff;
	else if (i->adsz == 2)
		a &= 0xffff;
	reg_write(c, i->reg, i->opsz, a);
	insn_next(c, i);
}

/* XCHG with memory is always locked (SDM: implicit LOCK). */
void op_xchg_rm_r(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	uint64_t b = reg_read(c, i->reg, sz);
	if (i->mod3) {
		uint64_t a = reg_read(c, i->rm, sz);
		reg_write(c, i->rm, sz, b);
		reg_write(c, i->reg, sz, a);
		insn_next(c, i);
		return;
	}
	uint64_t ea = insn_ea(c, i), a;
	void *p = locked_begin(c, ea, sz);
	if (p) {
		switch (sz) {
		case 1: a = __atomic_exchange_n((uint8_t *)p, (uint8_t)b, __ATOMIC_SEQ_CST); break;
		case 2: a = __atomic_exchange_n((uint16_t *)p, (uint16_t)b, __ATOMIC_SEQ_CST); break;
		case 4: a = __atomic_exchange_n((uint32_t *)p, (uint32_t)b, __ATOMIC_SEQ_CST); break;
		default: a = __atomic_exchange_n((uint64_t *)p, b, __ATOMIC_SEQ_CST);
		}
		locked_end(p);
	} else {
		a = mem_read(c, ea, sz);
		mem_write(c, ea, sz, b);
		locked_end(NULL);
	}
	reg_write(c, i->reg, sz, a);
	insn_next(c, i);
}

void op_xchg_ax(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	uint64_t a = reg_read(c, R_RAX, sz), b = reg_read(c, i->reg, sz);
	reg_write(c, R_RAX, sz, b);
	reg_write(c, i->reg, sz, a);
	insn_next(c, i);
}

void op_cmpxchg(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	uint64_t mask = size_mask(sz);
	uint64_t acc = reg_read(c, R_RAX, sz), src = reg_read(c, i->reg, sz), d;
	if (i->mod3) {
		d = reg_read(c, i->rm, sz);
		if (d == acc)
			reg_write(c, i->rm, sz, src);
		else
			reg_write(c, R_RAX, sz, d);
	} else {
		uint64_t ea = insn_ea(c, i);
		if (i->lock) {
			void *p = locked_begin(c, ea, sz);
			if (p) {
				d = acc;
				atomic_cas_sz(p, sz, &d, src);
				locked_end(p);
			} else {
				d = mem_read(c, ea, sz);
				mem_write(c, ea, sz, d == acc ? src : d);
				locked_end(NULL);
			}
		} else {
			d = mem_read(c, ea, sz);
			/* The destination is written either way, as on hardware. */
			mem_write(c, ea, sz, d == acc ? src : d);
		}
		if (d != acc)
			reg_write(c, R_RAX, sz, d);
	}
	lf_set(c, LF_SUB, sz, (acc - d) & mask, acc, d);
	insn_next(c, i);
}

void op_xadd(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	uint64_t mask = size_mask(sz);
	uint64_t s = reg_read(c, i->reg, sz), d, r;
	if (i->mod3) {
		d = reg_read(c, i->rm, sz);
		r = (d + s) & mask;
		reg_write(c, i->reg, sz, d);
		reg_write(c, i->rm, sz, r);
	} else {
		uint64_t ea = insn_ea(c, i);
		if (i->lock) {
			void *p = locked_begin(c, ea, sz);
			if (p) {
				d = atomic_load_sz(p, sz);
				do
					r = (d + s) & mask;
				while (!atomic_cas_sz(p, sz, &d, r));
				locked_end(p);
			} else {
				d = mem_read(c, ea, sz);
				r = (d + s) & mask;
				mem_write(c, ea, sz, r);
				locked_end(NULL);
			}
		} else {
			d = mem_read(c, ea, sz);
			r = (d + s) & mask;
			mem_write(c, ea, sz, r);
		}
		reg_write(c, i->reg, sz, d);
	}
	lf_set(c, LF_ADD, sz, r, d, s);
	insn_next(c, i);
}

void op_cmpxchg8b16b(struct cpu *c, const struct insn *i)
{
	uint64_t ea = insn_ea(c, i);
	uint64_t *g = c->s.gpr;
	if (i->opsz == 8) { /* CMPXCHG16B */
		if (ea & 15)
			cpu_raise(c, EXC_GP, 0);
#if defined(__x86_64__)
		/* RAM: the host's own CMPXCHG16B, so that even a failing one
		 * (which writes the old value back) cannot undo another vCPU's
		 * store in between, as a locked read and write back would */
		void *p = mem_rmw_ptr(c, ea, 16);
		if (p) {
			uint64_t lo = g[R_RAX], hi = g[R_RDX];
			bool eq;
			__asm__ volatile("lock cmpxchg16b %1"
					 : "=@ccz"(eq), "+m"(*(volatile unsigned __int128 *)p), "+a"(lo), "+d"(hi)
					 : "b"(g[R_RBX]), "c"(g[R_RCX])
					 : "memory");
			if (!eq) {
				g[R_RAX] = lo;
				g[R_RDX] = hi;
			}
			flags_set(c, FL_ZF, eq ? FL_ZF : 0);
			insn_next(c, i);
			return;
		}
#endif
		/* MMIO (or a host without a 16-byte CAS): under the split lock */
		mem_probe_write(c, ea, 16);
		split_enter();
		uint64_t lo = mem_read(c, ea, 8), hi = mem_read(c, ea + 8, 8);
		bool eq = lo == g[R_RAX] && hi == g[R_RDX];
		if (eq) {
			mem_write(c, ea, 8, g[R_RBX]);
			mem_write(c, ea + 8, 8, g[R_RCX]);
		} else {
			mem_write(c, ea, 8, lo);
			mem_write(c, ea + 8, 8, hi);
		}
		split_exit();
		if (!eq) {
			g[R_RAX] = lo;
			g[R_RDX] = hi;
		}
		flags_set(c, FL_ZF, eq ? FL_ZF : 0);
	} else {
		uint64_t expect = (g[R_RDX] & 0xffffffff) << 32 | (g[R_RAX] & 0xffffffff);
		uint64_t desired = (g[R_RCX] & 0xffffffff) << 32 | (g[R_RBX] & 0xffffffff), old;
		void *p = locked_begin(c, ea, 8);
		if (p) {
			old = expect;
			atomic_cas_sz(p, 8, &old, desired);
			locked_end(p);
		} else {
			old = mem_read(c, ea, 8);
			mem_write(c, ea, 8, old == expect ? desired : old);
			locked_end(NULL);
		}
		bool eq = old == expect;
		if (!eq) {
			g[R_RAX] = old & 0xffffffff;
			g[R_RDX] = old >> 32;
		}
		flags_set(c, FL_ZF, eq ? FL_ZF : 0);
	}
	insn_next(c, i);
}

void op_bswap(struct cpu *c, const struct insn *i)
{
	uint64_t v = c->s.gpr[i->reg];
	if (i->opsz == 8)
		c->s.gpr[i->reg] = __builtin_bswap64(v);
	else if (i->opsz == 4)
		c->s.gpr[i->reg] = __builtin_bswap32((uint32_t)v);
	else /* 16-bit BSWAP is undefined; hardware zeroes the low word */
		c->s.gpr[i->reg] = v & ~0xffffull;
	insn_next(c, i);
}

void op_cbw(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	reg_write(c, R_RAX, sz, (uint64_t)sext(c->s.gpr[R_RAX], sz / 2));
	insn_next(c, i);
}

void op_cwd(struct cpu *c, const struct insn *i)
{
	unsigned sz = i->opsz;
	int64_t a = sext(c->s.gpr[R_RAX], sz);
	reg_write(c, R_RDX, sz, a < 0 ? ~0ull : 0);
	insn_next(c, i);
}

void op_setcc(struct cpu *c, const struct insn *i)
{
	rm_write(c, i, 1, cond_eval(c, i->aux));
	insn_next(c, i);
}

void op_cmov(struct cpu *c, const struct insn *i)
{
	/* The source is read (and may fault) whatever the condition; a 32-bit
	 * destination is zero-extended even when nothing moves. */
	uint64_t v = rm_read(c, i, i->opsz);
	if (cond_eval(c, i->aux))
		reg_write(c, i->reg, i->opsz, v);
	else if (i->opsz == 4)
		c->s.gpr[i->reg] &= 0xffffffff;
	insn_next(c, i);
}

void op_lahf(struct cpu *c, const struct insn *i)
{
	uint64_t f = cpu_get_rflags(c);
	reg_write(c, 16 + R_RAX, 1, (f & (FL_SF | FL_ZF | FL_AF | FL_PF | FL_CF)) | 2);
	insn_next(c, i);
}

void op_sahf(struct cpu *c, const struct insn *i)
{
	uint32_t ah = (uint32_t)(c->s.gpr[R_RAX] >> 8) & 0xff;
	flags_set(c, FL_SF | FL_ZF | FL_AF | FL_PF | FL_CF, ah);
	insn_next(c, i);
}

void op_clc(struct cpu *c, const struct insn *i)
{
	flags_set(c, FL_CF, 0);
	insn_next(c, i);
}
void op_stc(struct cpu *c, const struct insn *i)
{
	flags_set(c, FL_CF, FL_CF);
	insn_next(c, i);
}
void op_cmc(struct cpu *c, const struct insn *i)
{
	flags_set(c, FL_CF, flag_cf(c) ? 0 : FL_CF);
	insn_next(c, i);
}
void op_cld(struct cpu *c, const struct insn *i)
{
	c->s.rflags &= ~(uint64_t)FL_DF;
	insn_next(c, i);
}
void op_std(struct cpu *c, const struct insn *i)
{
	c->s.rflags |= FL_DF;
	insn_next(c, i);
}

/* Register shifts and rotates by a nonzero immediate whose flags are dead
 * (chosen by decode_flags_dead). */
#define SHIFT_NF(NAME, SZ, EXPR)                                                                                       \
	void op_##NAME##_r##SZ##_nf(struct cpu *c, const struct insn *i)                                               \
	{                                                                                                              \
		uint##SZ##_t v = (uint##SZ##_t)c->s.gpr[i->rm];                                                        \
		unsigned n = i->imm8 & (SZ - 1);                                                                       \
		c->s.gpr[i->rm] = (uint##SZ##_t)(EXPR);                                                                \
		c->s.rip += i->len;                                                                                    \
	}
SHIFT_NF(rol, 32, n ? (v << n) | (v >> (32 - n)) : v)
SHIFT_NF(ror, 32, n ? (v >> n) | (v << (32 - n)) : v)
SHIFT_NF(shl, 32, v << n)
SHIFT_NF(shr, 32, v >> n)
SHIFT_NF(sar, 32, (uint32_t)((int32_t)v >> n))
SHIFT_NF(rol, 64, n ? (v << n) | (v >> (64 - n)) : v)
SHIFT_NF(ror, 64, n ? (v >> n) | (v << (64 - n)) : v)
SHIFT_NF(shl, 64, v << n)
SHIFT_NF(shr, 64, v >> n)
SHIFT_NF(sar, 64, (uint64_t)((int64_t)v >> n))
