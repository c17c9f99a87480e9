/* The stream of a process VM's checkpoint (kind "process"): writing a
 * struct ckpt_image field by field, and parsing one back with every value
 * checked (ckpt.h; the sections are listed in docs/checkpoint.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/vmem.h"
#include "process/ckpt.h"
#include "state/cpu_fields.h"

#define TASK_SIZE 0x7ffffffff000ull /* Linux x86-64's user address space */

static void put_ident(struct state_writer *w, const struct ckpt_ident *id)
{
	state_put_u64(w, id->size);
	state_put_u64(w, (uint64_t)id->mtime_s);
	state_put_u32(w, id->mtime_ns);
}

/* A user-mode thread's CPU: what user code can reach. */
static void put_cpu(struct state_writer *w, const struct cpu_state *s)
{
	for (unsigned k = 0; k < 16; k++)
		state_put_u64(w, s->gpr[k]);
	state_put_u64(w, s->rip);
	state_put_u64(w, s->rflags);
	for (unsigned k = 0; k < 6; k++)
		state_put_seg(w, &s->seg[k]);
	state_put_fpu(w, s);
}

static void put_queue(struct state_writer *w, const struct ckpt_queue *q)
{
	state_put_u32(w, q->nmsg);
	for (uint32_t k = 0; k < q->nmsg; k++)
		state_put_u32(w, q->len[k]);
	if (q->size)
		state_put_bytes(w, q->data, q->size);
}

/* the version of "chan" in a checkpoint of version fmt */
static uint32_t chan_version(uint32_t fmt)
{
	return fmt >= 4 ? 3 : fmt >= 3 ? 2 : 1;
}

void ckpt_write(struct state_writer *w, const struct ckpt_image *img)
{
	uint32_t fmt = img->format ? img->format : CKPT_VERSION;
	state_section_begin(w, "process", 0, fmt);
	state_put_str(w, img->version);
	state_put_str(w, img->root);
	state_put_u64(w, img->mem_cap);
	state_put_u64(w, img->brk_start);
	state_put_u64(w, img->brk_cur);
	state_put_u64(w, img->mmap_base);
	state_put_u64(w, img->memsize);
	state_put_str(w, img->exe_path);
	state_put_str(w, img->cwd);
	state_put_u32(w, img->umask);
	state_put_u32(w, img->auxv_n);
	for (uint32_t k = 0; k < img->auxv_n; k++)
		state_put_u64(w, img->auxv[k]);
	state_put_u32(w, img->nthreads);
	state_put_u32(w, img->nvma);
	state_put_u32(w, img->nfd);
	if (fmt >= 2)
		state_put_u32(w, img->nchan);
	if (fmt >= 3) {
		state_put_u32(w, (uint32_t)img->pid);
		state_put_u32(w, img->ntree);
	}
	if (fmt >= 4) {
		state_put_u32(w, (uint32_t)img->pgid);
		state_put_u32(w, (uint32_t)img->sid);
	}
	state_section_end(w);

	state_section_begin(w, "rlimits", 0, 1);
	state_put_u32(w, CKPT_NRLIMIT);
	for (unsigned k = 0; k < CKPT_NRLIMIT; k++) {
		state_put_u64(w, img->rlim[k].cur);
		state_put_u64(w, img->rlim[k].max);
	}
	state_section_end(w);

	state_section_begin(w, "sigactions", 0, 1);
	for (unsigned k = 1; k <= CKPT_NSIG; k++) {
		state_put_u64(w, img->act[k].handler);
		state_put_u64(w, img->act[k].flags);
		state_put_u64(w, img->act[k].restorer);
		state_put_u64(w, img->act[k].mask);
	}
	state_section_end(w);

	state_section_begin(w, "itimers", 0, 1);
	for (unsigned k = 0; k < 3; k++) {
		state_put_u64(w, img->itimer[k].int_s);
		state_put_u64(w, img->itimer[k].int_us);
		state_put_u64(w, img->itimer[k].val_s);
		state_put_u64(w, img->itimer[k].val_us);
	}
	state_section_end(w);

	for (uint32_t k = 0; k < img->nthreads; k++) {
		const struct ckpt_thread *t = &img->threads[k];
		state_section_begin(w, "thread", k, 1);
		put_cpu(w, &t->s);
		state_put_u32(w, (uint32_t)t->tid);
		state_put_u64(w, t->clear_child_tid);
		state_put_u64(w, t->robust_list);
		state_put_u64(w, t->robust_len);
		state_put_u64(w, t->sigmask);
		state_put_u64(w, t->pending);
		state_put_u64(w, t->saved_mask);
		state_put_bool(w, t->sigsuspended);
		state_put_u64(w, t->ss_sp);
		state_put_u64(w, t->ss_size);
		state_put_u32(w, t->ss_flags);
		for (unsigned s = 1; s <= CKPT_NSIG; s++) {
			if (!(t->pending & (1ull << (s - 1))))
				continue;
			const struct ckpt_siginfo *i = &t->info[s];
			state_put_u32(w, (uint32_t)i->code);
			state_put_u32(w, (uint32_t)i->err);
			state_put_u32(w, (uint32_t)i->pid);
			state_put_u32(w, (uint32_t)i->uid);
			state_put_u32(w, (uint32_t)i->status);
			state_put_u64(w, i->value);
			state_put_u64(w, i->addr);
		}
		state_section_end(w);
	}

	for (uint32_t k = 0; k < img->nvma; k++) {
		const struct ckpt_vma *v = &img->vmas[k];
		state_section_begin(w, "vma", k, 1);
		state_put_u64(w, v->start);
		state_put_u64(w, v->end);
		state_put_u64(w, v->off);
		state_put_u32(w, v->prot);
		state_put_u32(w, v->flags);
		state_put_str(w, v->path ? v->path : "");
		put_ident(w, &v->id);
		state_put_u64(w, v->memoff);
		state_put_u32(w, v->nruns);
		for (uint32_t r = 0; r < v->nruns; r++) {
			state_put_u64(w, v->runs[r].page);
			state_put_u64(w, v->runs[r].count);
		}
		state_section_end(w);
	}

	for (uint32_t k = 0; k < img->nfd; k++) {
		const struct ckpt_fd *f = &img->fds[k];
		state_section_begin(w, "fd", k, fmt);
		state_put_u32(w, (uint32_t)f->fd);
		state_put_u32(w, f->kind);
		state_put_u32(w, f->flags);
		state_put_str(w, f->path ? f->path : "");
		state_put_u64(w, f->offset);
		put_ident(w, &f->id);
		if (fmt >= 2) {
			state_put_u32(w, f->chan);
			state_put_u32(w, f->end);
		}
		state_section_end(w);
	}

	for (uint32_t k = 0; fmt >= 2 && k < img->nchan; k++) {
		const struct ckpt_chan *c = &img->chans[k];
		state_section_begin(w, "chan", k, chan_version(fmt));
		if (fmt >= 3)
			state_put_u64(w, c->key);
		state_put_u32(w, c->kind);
		state_put_u32(w, c->held);
		state_put_u32(w, c->shut);
		state_put_u64(w, c->bufsize[0]);
		state_put_u64(w, c->bufsize[1]);
		put_queue(w, &c->q[0]);
		put_queue(w, &c->q[1]);
		state_section_end(w);
	}

	if (fmt >= 3 && img->ntree) {
		state_section_begin(w, "tree", 0, 1);
		for (uint32_t k = 0; k < img->ntree; k++) {
			const struct ckpt_tree_proc *t = &img->tree[k];
			state_put_u32(w, (uint32_t)t->pid);
			state_put_u32(w, (uint32_t)t->ppid);
			state_put_u32(w, t->kind);
			state_put_u32(w, (uint32_t)t->status);
		}
		state_section_end(w);
	}
}

/* ---- parsing ---- */

static uint64_t canonical(uint64_t a)
{
	return (uint64_t)((int64_t)(a << 16) >> 16);
}

static void get_ident(struct state_reader *r, struct ckpt_ident *id)
{
	id->size = state_get_u64(r);
	id->mtime_s = (int64_t)state_get_u64(r);
	id->mtime_ns = state_get_u32(r);
	if (id->mtime_ns >= 1000000000u)
		state_fail(r, "a file time out of range");
}

/* A string that must be an absolute path (or empty when may_empty). */
static char *get_path(struct state_reader *r, bool may_empty, const char *what)
{
	char buf[CKPT_PATH_MAX];
	state_get_str(r, buf, sizeof(buf));
	if (!state_reader_ok(r))
		return NULL;
	if (!buf[0] && may_empty)
		return NULL;
	if (buf[0] != '/') {
		state_fail(r, "%s: not an absolute path", what);
		return NULL;
	}
	char *p = strdup(buf);
	if (!p)
		state_fail(r, "out of memory");
	return p;
}

static void get_cpu(struct state_reader *r, struct cpu_state *s, uint32_t k)
{
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < 16; i++)
		s->gpr[i] = state_get_u64(r);
	s->rip = state_get_u64(r);
	s->rflags = state_get_u64(r);
	for (unsigned i = 0; i < 6; i++)
		state_get_seg(r, &s->seg[i]);
	state_get_fpu(r, s);
	if (!state_reader_ok(r))
		return;
	/* what user code on corral's CPU cannot reach is refused */
	if (canonical(s->rip) != s->rip || s->rip >= TASK_SIZE)
		state_fail(r, "thread %u: RIP out of range", k);
	else if (s->rflags >> 22 || !(s->rflags & 2) || (s->rflags & 0x3000)) /* IOPL 0 in user mode */
		state_fail(r, "thread %u: RFLAGS out of range", k);
	else if (s->mxcsr & ~MXCSR_VALID)
		state_fail(r, "thread %u: MXCSR out of range", k);
	else if ((s->xcr0 && !(s->xcr0 & 1)) || (s->xcr0 & ~7ull))
		state_fail(r, "thread %u: XCR0 out of range", k);
	else if (canonical(s->seg[4].base) != s->seg[4].base || canonical(s->seg[5].base) != s->seg[5].base)
		state_fail(r, "thread %u: FS or GS base not canonical", k);
}

/* The next section must be name/instance at version CKPT_VERSION_MIN..max;
 * its version in *version (if not NULL). */
static bool expect_v(struct state_reader *r, const char *name, uint32_t instance, uint32_t max, uint32_t *version)
{
	struct state_section s;
	int n = state_next_section(r, &s);
	if (n < 0)
		return false;
	if (n == 0) {
		state_fail(r, "the stream ends before section '%s' %u", name, instance);
		return false;
	}
	if (strcmp(s.name, name) || s.instance != instance) {
		state_fail(r, "section '%s' %u where '%s' %u was expected", s.name, s.instance, name, instance);
		return false;
	}
	if (s.version < CKPT_VERSION_MIN || s.version > max) {
		state_fail(r, "section '%s' has version %u; this corral reads versions %u to %u", name, s.version,
			   CKPT_VERSION_MIN, max);
		return false;
	}
	if (version)
		*version = s.version;
	return true;
}

/* Sections whose layout is still that of version 1. */
static bool expect(struct state_reader *r, const char *name, uint32_t instance)
{
	return expect_v(r, name, instance, 1, NULL);
}

static bool done(struct state_reader *r)
{
	return state_reader_ok(r) && state_section_done(r);
}

static void parse_thread(struct state_reader *r, struct ckpt_thread *t, uint32_t k)
{
	get_cpu(r, &t->s, k);
	t->tid = (int32_t)state_get_u32(r);
	t->clear_child_tid = state_get_u64(r);
	t->robust_list = state_get_u64(r);
	t->robust_len = state_get_u64(r);
	t->sigmask = state_get_u64(r);
	t->pending = state_get_u64(r);
	t->saved_mask = state_get_u64(r);
	t->sigsuspended = state_get_bool(r);
	t->ss_sp = state_get_u64(r);
	t->ss_size = state_get_u64(r);
	t->ss_flags = state_get_u32(r);
	for (unsigned s = 1; s <= CKPT_NSIG && state_reader_ok(r); s++) {
		if (!(t->pending & (1ull << (s - 1))))
			continue;
		struct ckpt_siginfo *i = &t->info[s];
		i->code = (int32_t)state_get_u32(r);
		i->err = (int32_t)state_get_u32(r);
		i->pid = (int32_t)state_get_u32(r);
		i->uid = (int32_t)state_get_u32(r);
		i->status = (int32_t)state_get_u32(r);
		i->value = state_get_u64(r);
		i->addr = state_get_u64(r);
	}
	if (state_reader_ok(r) && (t->tid <= 0 || (t->ss_flags & ~(3u | (1u << 31)))))
		state_fail(r, "thread %u: thread id or signal stack out of range", k);
}

static void parse_vma(struct state_reader *r, struct ckpt_vma *v, uint32_t k, uint64_t prev_end, uint64_t memsize)
{
	v->start = state_get_u64(r);
	v->end = state_get_u64(r);
	v->off = state_get_u64(r);
	v->prot = state_get_u32(r);
	v->flags = state_get_u32(r);
	v->path = get_path(r, true, "a mapped file");
	get_ident(r, &v->id);
	v->memoff = state_get_u64(r);
	v->nruns = state_get_count(r, CKPT_MAX_RUNS, "runs of saved pages");
	if (!state_reader_ok(r))
		return;
	if ((v->start | v->end | v->off | v->memoff) & (CKPT_PAGE - 1) || v->start >= v->end || v->end > TASK_SIZE ||
	    v->start < prev_end) {
		state_fail(r, "mapping %u: addresses out of range or out of order", k);
		return;
	}
	if ((v->prot & ~(unsigned)(VMEM_R | VMEM_W | VMEM_X)) || (v->flags & ~CKV_KNOWN)) {
		state_fail(r, "mapping %u: unknown protection or flags", k);
		return;
	}
	bool anon = v->flags & CKV_ANON;
	if (anon == (v->path != NULL)) {
		state_fail(r, "mapping %u: %s", k, anon ? "anonymous with a file" : "a file mapping without a file");
		return;
	}
	if ((v->flags & CKV_RESERVED) && (v->prot || !anon || (v->flags & CKV_SHARED) || v->nruns)) {
		state_fail(r, "mapping %u: a reservation with access or contents", k);
		return;
	}
	if (v->off > UINT64_MAX - (v->end - v->start)) {
		state_fail(r, "mapping %u: file offset out of range", k);
		return;
	}
	uint64_t pages = (v->end - v->start) / CKPT_PAGE;
	if (v->nruns && !(v->runs = calloc(v->nruns, sizeof(*v->runs)))) {
		state_fail(r, "out of memory");
		return;
	}
	uint64_t next = 0;
	for (uint32_t i = 0; i < v->nruns && state_reader_ok(r); i++) {
		struct ckpt_run *u = &v->runs[i];
		u->page = state_get_u64(r);
		u->count = state_get_u64(r);
		if (!state_reader_ok(r))
			return;
		if (u->page < next || u->count == 0 || u->page >= pages || u->count > pages - u->page) {
			state_fail(r, "mapping %u: saved pages out of range or out of order", k);
			return;
		}
		next = u->page + u->count;
	}
	/* every saved page lies inside the memory file */
	if (v->nruns && (v->memoff > memsize || pages > (memsize - v->memoff) / CKPT_PAGE))
		state_fail(r, "mapping %u: its pages lie beyond the memory file", k);
	if ((v->flags & CKV_SHARED) && v->path && v->nruns)
		state_fail(r, "mapping %u: a shared file mapping with saved pages", k);
}

static void parse_fd(struct state_reader *r, struct ckpt_fd *f, uint32_t k, int32_t prev, uint32_t fmt)
{
	f->fd = (int32_t)state_get_u32(r);
	f->kind = state_get_u32(r);
	f->flags = state_get_u32(r);
	bool chan = fmt >= 2 && f->kind == CKFD_CHAN;
	if (state_reader_ok(r) && (f->kind < CKFD_FILE || f->kind > (fmt >= 2 ? CKFD_CHAN : CKFD_DEV))) {
		state_fail(r, "file %u: unknown kind %u", k, f->kind);
		return;
	}
	f->path = get_path(r, chan, "an open file");
	f->offset = state_get_u64(r);
	get_ident(r, &f->id);
	if (fmt >= 2) {
		f->chan = state_get_u32(r);
		f->end = state_get_u32(r);
	}
	if (!state_reader_ok(r))
		return;
	/* v3: a pipe between processes of a tree may be on 0-2 */
	if (f->fd < (fmt >= 3 && chan ? 0 : 3) || f->fd <= prev || f->fd >= CKPT_MAX_FDS)
		state_fail(r, "file %u: descriptor %d out of range or out of order", k, f->fd);
	else if (f->kind < CKFD_FILE || f->kind > (fmt >= 2 ? CKFD_CHAN : CKFD_DEV))
		state_fail(r, "file %u: unknown kind %u", k, f->kind);
	else if (chan ? f->path || f->offset || f->id.size || f->id.mtime_s || f->id.mtime_ns || f->end > 1 ||
				 (f->flags & CKF_APPEND)
		      : f->chan || f->end)
		state_fail(r, "file %u: a %s with the fields of a %s", k, chan ? "pipe or socket" : "file",
			   chan ? "file" : "pipe or socket");
	else if ((f->flags & ~CKF_KNOWN) || !(f->flags & (CKF_READ | CKF_WRITE)))
		state_fail(r, "file %u: unknown flags 0x%x", k, f->flags);
	else if (f->offset > INT64_MAX)
		state_fail(r, "file %u: offset out of range", k);
}

static void parse_queue(struct state_reader *r, struct ckpt_queue *q, uint32_t kind, uint32_t k)
{
	bool msgs = kind == CKCH_DGRAM || kind == CKCH_SEQPACKET;
	q->nmsg = state_get_count(r, msgs ? CKPT_MAX_MSGS : 1, "waiting messages");
	if (!state_reader_ok(r))
		return;
	/* each length is 4 bytes of the section: never more than it holds */
	if ((uint64_t)q->nmsg * 4 > r->sec_len - r->sec_pos) {
		state_fail(r, "channel %u: more messages than its section holds", k);
		return;
	}
	if (q->nmsg && !(q->len = calloc(q->nmsg, sizeof(*q->len)))) {
		state_fail(r, "out of memory");
		return;
	}
	for (uint32_t i = 0; i < q->nmsg && state_reader_ok(r); i++) {
		q->len[i] = state_get_u32(r);
		if (!msgs && !q->len[i])
			state_fail(r, "channel %u: an empty run of bytes", k);
		q->size += q->len[i];
		if (q->size > CKPT_MAX_QUEUE)
			state_fail(r, "channel %u: more waiting data than a checkpoint holds", k);
	}
	if (!state_reader_ok(r) || !q->size)
		return;
	if (q->size > r->sec_len - r->sec_pos) {
		state_fail(r, "channel %u: its data runs past its section", k);
		return;
	}
	if (!(q->data = malloc(q->size))) {
		state_fail(r, "out of memory");
		return;
	}
	state_get_bytes(r, q->data, q->size);
}

static void parse_chan(struct state_reader *r, struct ckpt_chan *c, uint32_t k, uint32_t v)
{
	if (v >= 2)
		c->key = state_get_u64(r);
	c->kind = state_get_u32(r);
	c->held = state_get_u32(r);
	c->shut = state_get_u32(r);
	c->bufsize[0] = state_get_u64(r);
	c->bufsize[1] = state_get_u64(r);
	if (!state_reader_ok(r))
		return;
	if (c->kind < CKCH_PIPE || c->kind > CKCH_SEQPACKET) {
		state_fail(r, "channel %u: unknown kind %u", k, c->kind);
		return;
	}
	bool pipe = c->kind == CKCH_PIPE;
	/* v3: a socket pair between processes holds one end or both here;
	 * an end's buffer size is known where it is held */
	bool shared = !pipe && v >= 3 && c->key;
	bool bad = pipe ? c->held < 1 || c->held > 3 || c->shut || !c->bufsize[0] || c->bufsize[0] > INT32_MAX ||
				   c->bufsize[1]
			: c->held < (shared ? 1u : 3u) || c->held > 3 || c->shut > 15;
	for (uint32_t e = 0; e < 2 && !pipe; e++)
		if ((c->held & (1u << e)) ? !c->bufsize[e] || c->bufsize[e] > INT32_MAX : c->bufsize[e] != 0)
			bad = true;
	if (bad) {
		state_fail(r, "channel %u: ends, shutdown or buffer sizes out of range", k);
		return;
	}
	parse_queue(r, &c->q[0], c->kind, k);
	parse_queue(r, &c->q[1], c->kind, k);
	if (!state_reader_ok(r))
		return;
	/* a pipe's data waits at its read end, which the program must hold
	 * for there to be any; and it fits in the pipe */
	if (pipe && (c->q[1].nmsg || (c->q[0].nmsg && (!(c->held & 1) || c->q[0].size > c->bufsize[0]))))
		state_fail(r, "channel %u: a pipe's data where it cannot be", k);
	else if (c->key && !pipe && v < 3)
		state_fail(r, "channel %u: a socket pair shared between processes", k);
	else if (!pipe && ((c->q[0].nmsg && !(c->held & 1)) || (c->q[1].nmsg && !(c->held & 2))))
		state_fail(r, "channel %u: a socket's data at an end the process does not hold", k);
}

static bool wait_status_ok(int32_t s)
{
	if ((s & 0x7f) == 0) /* exited: its code in bits 8-15 */
		return !(s & ~0xff00);
	/* killed: the signal in bits 0-6, a core dump in bit 7; not by one
	 * that stops or is ignored by default (SIGCHLD, SIGCONT, SIGSTOP,
	 * SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH), which kills no one */
	int sig = s & 0x7f;
	return !(s & ~0xff) && sig <= CKPT_NSIG && (sig < 17 || sig > 23) && sig != 28;
}

/* The tree's other processes: known kinds and statuses, distinct pids,
 * each one's parent the first process or a process listed before it. */
static void parse_tree(struct state_reader *r, struct ckpt_image *img)
{
	for (uint32_t k = 0; k < img->ntree && state_reader_ok(r); k++) {
		struct ckpt_tree_proc *t = &img->tree[k];
		t->pid = (int32_t)state_get_u32(r);
		t->ppid = (int32_t)state_get_u32(r);
		t->kind = state_get_u32(r);
		t->status = (int32_t)state_get_u32(r);
		if (!state_reader_ok(r))
			return;
		if (t->pid <= 0 || t->pid >= CKPT_PID_MAX || t->pid == img->pid) {
			state_fail(r, "process %u: pid %d out of range", k, t->pid);
			return;
		}
		if (t->kind != CKTP_PROCESS && t->kind != CKTP_ZOMBIE) {
			state_fail(r, "process %u: unknown kind %u", k, t->kind);
			return;
		}
		if (t->kind == CKTP_PROCESS ? t->status != 0 : !wait_status_ok(t->status)) {
			state_fail(r, "process %u: wait status 0x%x out of range", k, (unsigned)t->status);
			return;
		}
		bool parent = t->ppid == img->pid;
		for (uint32_t j = 0; j < k; j++) {
			if (img->tree[j].pid == t->pid) {
				state_fail(r, "process %u: pid %d twice", k, t->pid);
				return;
			}
			parent |= img->tree[j].pid == t->ppid && img->tree[j].kind == CKTP_PROCESS;
		}
		if (!parent)
			state_fail(r, "process %u: its parent %d is not a process before it", k, t->ppid);
	}
}

/* Every descriptor of a channel names a held end, with that end's access;
 * every held end has a descriptor. */
static void check_chan_fds(struct state_reader *r, const struct ckpt_image *img)
{
	for (uint32_t k = 0; k < img->nfd && state_reader_ok(r); k++) {
		const struct ckpt_fd *f = &img->fds[k];
		if (f->kind != CKFD_CHAN)
			continue;
		if (f->chan >= img->nchan) {
			state_fail(r, "file %u: channel %u out of range", k, f->chan);
			return;
		}
		const struct ckpt_chan *c = &img->chans[f->chan];
		uint32_t acc = f->flags & (CKF_READ | CKF_WRITE);
		uint32_t want = c->kind != CKCH_PIPE ? CKF_READ | CKF_WRITE : f->end ? CKF_WRITE : CKF_READ;
		if (!(c->held & (1u << f->end)) || acc != want)
			state_fail(r, "file %u: an end of channel %u it cannot be", k, f->chan);
	}
	for (uint32_t c = 0; c < img->nchan && state_reader_ok(r); c++)
		for (uint32_t e = 0; e < 2; e++) {
			if (!(img->chans[c].held & (1u << e)))
				continue;
			bool found = false;
			for (uint32_t k = 0; k < img->nfd && !found; k++)
				found = img->fds[k].kind == CKFD_CHAN && img->fds[k].chan == c && img->fds[k].end == e;
			if (!found)
				state_fail(r, "channel %u: end %u is held by no descriptor", c, e);
		}
}

int ckpt_parse(const void *data, size_t size, struct ckpt_image *img, char *err, size_t errn)
{
	static struct state_reader rd; /* large (its message), one parse at a time */
	struct state_reader *r = &rd;
	memset(img, 0, sizeof(*img));
	if (state_reader_init(r, data, size, "process") < 0)
		goto fail;
	if (!expect_v(r, "process", 0, CKPT_VERSION, &img->format))
		goto fail;
	state_get_str(r, img->version, sizeof(img->version));
	state_get_str(r, img->root, sizeof(img->root));
	img->mem_cap = state_get_u64(r);
	img->brk_start = state_get_u64(r);
	img->brk_cur = state_get_u64(r);
	img->mmap_base = state_get_u64(r);
	img->memsize = state_get_u64(r);
	state_get_str(r, img->exe_path, sizeof(img->exe_path));
	state_get_str(r, img->cwd, sizeof(img->cwd));
	img->umask = state_get_u32(r);
	img->auxv_n = state_get_count(r, 64, "auxiliary vector words");
	for (uint32_t k = 0; k < img->auxv_n; k++)
		img->auxv[k] = state_get_u64(r);
	img->nthreads = state_get_count(r, CKPT_MAX_THREADS, "threads");
	img->nvma = state_get_count(r, CKPT_MAX_VMAS, "mappings");
	img->nfd = state_get_count(r, CKPT_MAX_FDS, "open files");
	if (img->format >= 2)
		img->nchan = state_get_count(r, CKPT_MAX_CHANS, "pipes and socket pairs");
	if (img->format >= 3) {
		img->pid = (int32_t)state_get_u32(r);
		img->ntree = state_get_count(r, CKPT_MAX_PROCS, "processes");
		if (state_reader_ok(r) && (img->pid <= 0 || img->pid >= CKPT_PID_MAX))
			state_fail(r, "the process id %d out of range", img->pid);
	}
	if (img->format >= 4) {
		img->pgid = (int32_t)state_get_u32(r);
		img->sid = (int32_t)state_get_u32(r);
		if (state_reader_ok(r) &&
		    (img->pgid < 0 || img->pgid >= CKPT_PID_MAX || img->sid < 0 || img->sid >= CKPT_PID_MAX))
			state_fail(r, "the process group %d or session %d out of range", img->pgid, img->sid);
	}
	if (!done(r))
		goto fail;
	if (img->root[0] && img->root[0] != '/')
		state_fail(r, "the root is not an absolute path");
	else if (img->cwd[0] != '/')
		state_fail(r, "the working directory is not an absolute path");
	else if (img->umask > 0777 || img->auxv_n % 2 || img->nthreads == 0)
		state_fail(r, "umask, auxiliary vector or thread count out of range");
	else if (img->brk_start > img->brk_cur || img->brk_cur >= TASK_SIZE || img->mmap_base > TASK_SIZE ||
		 (img->memsize & (CKPT_PAGE - 1)) || (img->mem_cap && img->mem_cap < (1u << 20)))
		state_fail(r, "heap, mapping base, memory size or memory cap out of range");
	if (!state_reader_ok(r))
		goto fail;

	if (!expect(r, "rlimits", 0))
		goto fail;
	if (state_get_count(r, CKPT_NRLIMIT, "resource limits") != CKPT_NRLIMIT && state_reader_ok(r))
		state_fail(r, "a different number of resource limits");
	for (unsigned k = 0; k < CKPT_NRLIMIT; k++) {
		img->rlim[k].cur = state_get_u64(r);
		img->rlim[k].max = state_get_u64(r);
		if (img->rlim[k].cur > img->rlim[k].max && state_reader_ok(r))
			state_fail(r, "resource limit %u: soft limit above the hard one", k);
	}
	if (!done(r))
		goto fail;

	if (!expect(r, "sigactions", 0))
		goto fail;
	for (unsigned k = 1; k <= CKPT_NSIG; k++) {
		img->act[k].handler = state_get_u64(r);
		img->act[k].flags = state_get_u64(r);
		img->act[k].restorer = state_get_u64(r);
		img->act[k].mask = state_get_u64(r);
	}
	if (!done(r))
		goto fail;

	if (!expect(r, "itimers", 0))
		goto fail;
	for (unsigned k = 0; k < 3; k++) {
		struct ckpt_itimer *t = &img->itimer[k];
		t->int_s = state_get_u64(r);
		t->int_us = state_get_u64(r);
		t->val_s = state_get_u64(r);
		t->val_us = state_get_u64(r);
		if (state_reader_ok(r) &&
		    (t->int_us >= 1000000 || t->val_us >= 1000000 || t->int_s > INT32_MAX || t->val_s > INT32_MAX))
			state_fail(r, "interval timer %u out of range", k);
	}
	if (!done(r))
		goto fail;

	img->threads = calloc(img->nthreads, sizeof(*img->threads));
	img->vmas = img->nvma ? calloc(img->nvma, sizeof(*img->vmas)) : NULL;
	img->fds = img->nfd ? calloc(img->nfd, sizeof(*img->fds)) : NULL;
	img->chans = img->nchan ? calloc(img->nchan, sizeof(*img->chans)) : NULL;
	img->tree = img->ntree ? calloc(img->ntree, sizeof(*img->tree)) : NULL;
	if (!img->threads || (img->nvma && !img->vmas) || (img->nfd && !img->fds) || (img->nchan && !img->chans) ||
	    (img->ntree && !img->tree)) {
		state_fail(r, "out of memory");
		goto fail;
	}
	for (uint32_t k = 0; k < img->nthreads; k++) {
		if (!expect(r, "thread", k))
			goto fail;
		parse_thread(r, &img->threads[k], k);
		if (!done(r))
			goto fail;
	}
	uint64_t prev_end = 0;
	for (uint32_t k = 0; k < img->nvma; k++) {
		if (!expect(r, "vma", k))
			goto fail;
		parse_vma(r, &img->vmas[k], k, prev_end, img->memsize);
		if (!done(r))
			goto fail;
		prev_end = img->vmas[k].end;
	}
	int32_t prev = img->format >= 3 ? -1 : 2;
	for (uint32_t k = 0; k < img->nfd; k++) {
		uint32_t v;
		if (!expect_v(r, "fd", k, CKPT_VERSION, &v))
			goto fail;
		if (v != img->format) {
			state_fail(r, "section 'fd' %u has version %u in a checkpoint of version %u", k, v,
				   img->format);
			goto fail;
		}
		parse_fd(r, &img->fds[k], k, prev, v);
		if (!done(r))
			goto fail;
		prev = img->fds[k].fd;
	}
	for (uint32_t k = 0; k < img->nchan; k++) {
		uint32_t v;
		if (!expect_v(r, "chan", k, chan_version(img->format), &v))
			goto fail;
		if (v != chan_version(img->format)) {
			state_fail(r, "section 'chan' %u has version %u in a checkpoint of version %u", k, v,
				   img->format);
			goto fail;
		}
		parse_chan(r, &img->chans[k], k, v);
		if (!done(r))
			goto fail;
	}
	check_chan_fds(r, img);
	/* a pipe's key names one pipe: two channels of one key are one split in two */
	for (uint32_t k = 0; k < img->nchan && state_reader_ok(r); k++)
		for (uint32_t j = 0; j < k && img->chans[k].key; j++)
			if (img->chans[j].key == img->chans[k].key) {
				state_fail(r, "channels %u and %u: one key", j, k);
				break;
			}
	if (!state_reader_ok(r))
		goto fail;
	if (img->ntree) {
		if (!expect(r, "tree", 0))
			goto fail;
		parse_tree(r, img);
		if (!done(r))
			goto fail;
	}
	struct state_section s;
	int n = state_next_section(r, &s);
	if (n > 0)
		state_fail(r, "an unexpected section '%s' after the open files", s.name);
	if (n != 0 || !state_reader_ok(r))
		goto fail;
	return 0;
fail:
	snprintf(err, errn, "%s", r->err[0] ? r->err : "malformed checkpoint");
	ckpt_image_free(img);
	return -EINVAL;
}

void ckpt_image_free(struct ckpt_image *img)
{
	for (uint32_t k = 0; img->vmas && k < img->nvma; k++) {
		free(img->vmas[k].path);
		free(img->vmas[k].runs);
	}
	for (uint32_t k = 0; img->fds && k < img->nfd; k++)
		free(img->fds[k].path);
	for (uint32_t k = 0; img->chans && k < img->nchan; k++) {
		ckpt_queue_free(&img->chans[k].q[0]);
		ckpt_queue_free(&img->chans[k].q[1]);
	}
	free(img->threads);
	free(img->vmas);
	free(img->fds);
	free(img->chans);
	free(img->tree);
	img->tree = NULL;
	img->ntree = 0;
	img->threads = NULL;
	img->vmas = NULL;
	img->fds = NULL;
	img->chans = NULL;
	img->nthreads = img->nvma = img->nfd = img->nchan = 0;
}

void ckpt_queue_free(struct ckpt_queue *q)
{
	free(q->len);
	free(q->data);
	memset(q, 0, sizeof(*q));
}
