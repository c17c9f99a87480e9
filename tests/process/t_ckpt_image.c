/* The checkpoint stream's writer and parser (src/process/ckpt_image.c):
 * an image written and parsed back is the same; values no process can
 * have are refused with a message saying which; every truncation and
 * every flipped byte of a real stream is refused without a crash. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu/vmem.h"
#include "process/ckpt.h"
#include "testhelp.h"

static struct ckpt_run runs[2] = {{0, 2}, {5, 1}};

static void queue(struct ckpt_queue *q, const char *data, const uint32_t *len, uint32_t n)
{
	q->nmsg = n;
	q->len = malloc(n * sizeof(*len) + 1);
	memcpy(q->len, len, n * sizeof(*len));
	q->size = 0;
	for (uint32_t k = 0; k < n; k++)
		q->size += len[k];
	q->data = malloc(q->size + 1);
	memcpy(q->data, data, q->size);
}

/* A small, valid image: one thread, a file mapping, an anonymous one with
 * saved pages, an open file, a pipe and a datagram socket pair, one end of
 * a stream socket pair shared with another process (v4); the first
 * process of a tree (a child, and a grandchild that has exited). */
static void sample(struct ckpt_image *img)
{
	memset(img, 0, sizeof(*img));
	strcpy(img->version, "1.2.3");
	strcpy(img->cwd, "/tmp");
	strcpy(img->exe_path, "/bin/prog");
	img->umask = 022;
	img->brk_start = img->brk_cur = 0x600000;
	img->mmap_base = 0x7ffff7fff000ull;
	img->memsize = 8 * CKPT_PAGE;
	img->auxv_n = 2;
	img->auxv[0] = 6;
	img->auxv[1] = 4096;
	for (int k = 0; k < CKPT_NRLIMIT; k++)
		img->rlim[k].cur = img->rlim[k].max = 1000 + (uint64_t)k;
	img->act[10].handler = 0x401000;
	img->act[10].flags = 0x04000000;
	img->nthreads = 1;
	img->threads = calloc(1, sizeof(*img->threads));
	img->threads->s.rip = 0x401234;
	img->threads->s.rflags = 0x202;
	img->threads->s.gpr[3] = 0x1122334455667788ull;
	img->threads->s.seg[4].base = 0x7ffff7ff0000ull;
	img->threads->s.mxcsr = 0x1f80;
	img->threads->tid = 42;
	img->threads->pending = 1ull << 11; /* SIGUSR2 */
	img->threads->sigmask = 1ull << 11;
	img->threads->info[12].pid = 7;
	img->threads->info[12].code = -6;
	img->nvma = 2;
	img->vmas = calloc(2, sizeof(*img->vmas));
	img->vmas[0] = (struct ckpt_vma){.start = 0x400000,
					 .end = 0x402000,
					 .prot = VMEM_R | VMEM_X,
					 .path = strdup("/bin/prog"),
					 .id = {8192, 1000, 5}};
	img->vmas[1] = (struct ckpt_vma){
		.start = 0x600000, .end = 0x608000, .prot = VMEM_R | VMEM_W, .flags = CKV_ANON | CKV_HEAP, .nruns = 2};
	img->vmas[1].runs = malloc(sizeof(runs));
	memcpy(img->vmas[1].runs, runs, sizeof(runs));
	img->nfd = 6;
	img->fds = calloc(6, sizeof(*img->fds));
	img->fds[0] = (struct ckpt_fd){.fd = 3,
				       .kind = CKFD_FILE,
				       .flags = CKF_READ,
				       .path = strdup("/tmp/in"),
				       .offset = 512,
				       .id = {4096, 2000, 7}};
	img->fds[1] = (struct ckpt_fd){.fd = 4, .kind = CKFD_CHAN, .flags = CKF_READ | CKF_NONBLOCK};
	img->fds[2] = (struct ckpt_fd){.fd = 5, .kind = CKFD_CHAN, .flags = CKF_WRITE | CKF_CLOEXEC, .end = 1};
	img->fds[3] = (struct ckpt_fd){.fd = 6, .kind = CKFD_CHAN, .flags = CKF_READ | CKF_WRITE, .chan = 1};
	img->fds[4] = (struct ckpt_fd){.fd = 9, .kind = CKFD_CHAN, .flags = CKF_READ | CKF_WRITE, .chan = 1, .end = 1};
	img->fds[5] = (struct ckpt_fd){.fd = 10, .kind = CKFD_CHAN, .flags = CKF_READ | CKF_WRITE, .chan = 2, .end = 1};
	img->format = CKPT_VERSION;
	img->nchan = 3;
	img->chans = calloc(3, sizeof(*img->chans));
	img->chans[0] = (struct ckpt_chan){.kind = CKCH_PIPE, .held = 3, .bufsize = {65536, 0}};
	static const uint32_t hello[] = {5}, msgs[] = {3, 0, 2};
	queue(&img->chans[0].q[0], "hello", hello, 1);
	img->chans[1] =
		(struct ckpt_chan){.kind = CKCH_DGRAM, .held = 3, .shut = CKCH_SHUT_WR << 2, .bufsize = {212992, 4608}};
	queue(&img->chans[1].q[0], "abcde", msgs, 3);
	img->chans[0].key = 777;
	/* end 1 here, end 0 in another process's image: its size and queue there */
	static const uint32_t xyz[] = {3};
	img->chans[2] = (struct ckpt_chan){.key = 555, .kind = CKCH_STREAM, .held = 2, .bufsize = {0, 8192}};
	queue(&img->chans[2].q[1], "xyz", xyz, 1);
	img->pid = 4242;
	img->pgid = 4242;
	img->sid = 100;
	img->ntree = 2;
	img->tree = calloc(2, sizeof(*img->tree));
	img->tree[0] = (struct ckpt_tree_proc){4300, 4242, CKTP_PROCESS, 0};
	img->tree[1] = (struct ckpt_tree_proc){4301, 4300, CKTP_ZOMBIE, 7 << 8};
}

/* The sample as version 3 wrote it: no socket pair between processes. */
static void sample_v3(struct ckpt_image *img)
{
	sample(img);
	img->format = 3;
	img->pgid = img->sid = 0;
	ckpt_queue_free(&img->chans[2].q[1]);
	img->nchan = 2;
	img->nfd = 5;
}

/* The sample as version 2 wrote it: pipes and sockets, no tree or ids. */
static void sample_v2(struct ckpt_image *img)
{
	sample_v3(img);
	img->format = 2;
	img->pid = 0;
	img->ntree = 0;
	free(img->tree);
	img->tree = NULL;
	img->chans[0].key = 0;
}

/* The sample as version 1 wrote it: no pipes or sockets. */
static void sample_v1(struct ckpt_image *img)
{
	sample_v3(img);
	img->format = 1;
	img->nfd = 1;
}

static uint8_t *encode(const struct ckpt_image *img, size_t *len)
{
	int fd = memfd_create("t", 0);
	struct state_writer w;
	state_writer_init(&w, fd, "process");
	ckpt_write(&w, img);
	CHECK(state_writer_finish(&w) == 0);
	state_writer_free(&w);
	*len = (size_t)lseek(fd, 0, SEEK_END);
	uint8_t *b = malloc(*len);
	CHECK(pread(fd, b, *len, 0) == (ssize_t)*len);
	close(fd);
	return b;
}

static char err[256];

/* Parse the sample after change(img): the error text, or "" if accepted. */
static const char *parse_changed(void (*change)(struct ckpt_image *))
{
	struct ckpt_image img, out;
	sample(&img);
	change(&img);
	size_t len;
	uint8_t *b = encode(&img, &len);
	ckpt_image_free(&img);
	err[0] = 0;
	if (ckpt_parse(b, len, &out, err, sizeof(err)) == 0)
		ckpt_image_free(&out);
	free(b);
	return err;
}

static void test_roundtrip(void)
{
	struct ckpt_image img, out;
	sample(&img);
	size_t len;
	uint8_t *b = encode(&img, &len);
	CHECK(ckpt_parse(b, len, &out, err, sizeof(err)) == 0);
	CHECK(!strcmp(out.version, "1.2.3") && !strcmp(out.cwd, "/tmp") && out.umask == 022);
	CHECK_EQ_U64(out.nthreads, 1);
	CHECK_EQ_U64(out.threads->s.rip, 0x401234);
	CHECK_EQ_U64(out.threads->s.gpr[3], 0x1122334455667788ull);
	CHECK_EQ_U64(out.threads->s.seg[4].base, 0x7ffff7ff0000ull);
	CHECK_EQ_U64(out.threads->tid, 42);
	CHECK_EQ_U64(out.threads->info[12].pid, 7);
	CHECK_EQ_U64(out.act[10].handler, 0x401000);
	CHECK_EQ_U64(out.rlim[7].max, 1007);
	CHECK_EQ_U64(out.nvma, 2);
	CHECK(out.vmas[0].path && !strcmp(out.vmas[0].path, "/bin/prog") && out.vmas[0].id.mtime_ns == 5);
	CHECK(!out.vmas[1].path && out.vmas[1].nruns == 2 && out.vmas[1].runs[1].page == 5);
	CHECK(out.nfd == 6 && out.fds[0].offset == 512 && !strcmp(out.fds[0].path, "/tmp/in"));
	CHECK(out.format == CKPT_VERSION && out.nchan == 3);
	CHECK(out.chans[2].key == 555 && out.chans[2].kind == CKCH_STREAM && out.chans[2].held == 2 &&
	      out.chans[2].bufsize[0] == 0 && out.chans[2].bufsize[1] == 8192 && out.chans[2].q[0].nmsg == 0 &&
	      out.chans[2].q[1].size == 3 && !memcmp(out.chans[2].q[1].data, "xyz", 3));
	CHECK(out.fds[5].chan == 2 && out.fds[5].end == 1);
	CHECK(out.pid == 4242 && out.ntree == 2 && out.chans[0].key == 777 && out.chans[1].key == 0);
	CHECK(out.pgid == 4242 && out.sid == 100);
	CHECK(out.tree[0].pid == 4300 && out.tree[0].ppid == 4242 && out.tree[0].kind == CKTP_PROCESS);
	CHECK(out.tree[1].pid == 4301 && out.tree[1].ppid == 4300 && out.tree[1].kind == CKTP_ZOMBIE &&
	      out.tree[1].status == 7 << 8);
	CHECK(out.fds[2].kind == CKFD_CHAN && out.fds[2].end == 1 && out.fds[2].flags == (CKF_WRITE | CKF_CLOEXEC));
	CHECK(out.fds[4].chan == 1 && out.fds[4].fd == 9 && !out.fds[4].path);
	CHECK(out.chans[0].kind == CKCH_PIPE && out.chans[0].bufsize[0] == 65536 && out.chans[0].q[0].nmsg == 1 &&
	      out.chans[0].q[0].size == 5 && !memcmp(out.chans[0].q[0].data, "hello", 5));
	CHECK(out.chans[1].kind == CKCH_DGRAM && out.chans[1].shut == CKCH_SHUT_WR << 2 &&
	      out.chans[1].bufsize[1] == 4608 && out.chans[1].q[0].nmsg == 3 && out.chans[1].q[0].len[1] == 0 &&
	      out.chans[1].q[0].len[2] == 2 && !memcmp(out.chans[1].q[0].data, "abcde", 5) &&
	      out.chans[1].q[1].nmsg == 0);
	/* written back: the same bytes */
	size_t len2;
	uint8_t *b2 = encode(&out, &len2);
	CHECK(len2 == len && !memcmp(b, b2, len));
	free(b2);
	ckpt_image_free(&out);
	ckpt_image_free(&img);
	free(b);
}

/* A program in a pid namespace whose session and group are led from
 * outside it sees 0 for both (getsid, getpgrp): such a checkpoint is read,
 * and written back the same. */
static void test_outside_ids(void)
{
	struct ckpt_image img, out;
	sample(&img);
	img.pgid = img.sid = 0;
	size_t len;
	uint8_t *b = encode(&img, &len);
	CHECK(ckpt_parse(b, len, &out, err, sizeof(err)) == 0);
	CHECK(out.format == CKPT_VERSION && out.pgid == 0 && out.sid == 0 && out.pid == 4242);
	size_t len2;
	uint8_t *b2 = encode(&out, &len2);
	CHECK(len2 == len && !memcmp(b, b2, len));
	free(b2);
	ckpt_image_free(&out);
	ckpt_image_free(&img);
	free(b);
}

/* A checkpoint of version 1 (no channels) is still read, and written back
 * the same. */
static void test_v1(void)
{
	struct ckpt_image img, out;
	sample_v1(&img);
	size_t len;
	uint8_t *b = encode(&img, &len);
	CHECK(ckpt_parse(b, len, &out, err, sizeof(err)) == 0);
	CHECK(out.format == 1 && out.nfd == 1 && out.nchan == 0 && !strcmp(out.fds[0].path, "/tmp/in"));
	size_t len2;
	uint8_t *b2 = encode(&out, &len2);
	CHECK(len2 == len && !memcmp(b, b2, len));
	free(b2);
	ckpt_image_free(&out);
	ckpt_image_free(&img);
	free(b);
}

/* A checkpoint of version 3 (no socket pair between processes) is still
 * read, and written back the same. */
static void test_v3(void)
{
	struct ckpt_image img, out;
	sample_v3(&img);
	size_t len;
	uint8_t *b = encode(&img, &len);
	CHECK(ckpt_parse(b, len, &out, err, sizeof(err)) == 0);
	CHECK(out.format == 3 && out.nchan == 2 && out.pid == 4242 && out.ntree == 2 && out.chans[0].key == 777);
	CHECK(out.pgid == 0 && out.sid == 0);
	size_t len2;
	uint8_t *b2 = encode(&out, &len2);
	CHECK(len2 == len && !memcmp(b, b2, len));
	free(b2);
	ckpt_image_free(&out);
	ckpt_image_free(&img);
	free(b);
}

/* A checkpoint of version 2 (no tree, no ids) is still read, and written
 * back the same. */
static void test_v2(void)
{
	struct ckpt_image img, out;
	sample_v2(&img);
	size_t len;
	uint8_t *b = encode(&img, &len);
	CHECK(ckpt_parse(b, len, &out, err, sizeof(err)) == 0);
	CHECK(out.format == 2 && out.nchan == 2 && out.pid == 0 && out.ntree == 0 && out.chans[0].key == 0);
	CHECK(out.chans[0].q[0].size == 5);
	size_t len2;
	uint8_t *b2 = encode(&out, &len2);
	CHECK(len2 == len && !memcmp(b, b2, len));
	free(b2);
	ckpt_image_free(&out);
	ckpt_image_free(&img);
	free(b);
}

/* A pipe between processes of a tree may be on descriptors 0-2 (v3 only). */
static void pipe_on_stdin(struct ckpt_image *i)
{
	struct ckpt_fd f = i->fds[0];
	i->fds[0] = i->fds[1];
	i->fds[0].fd = 0;
	i->fds[1] = f;
}
static void pipe_on_stdin_v2(struct ckpt_image *i)
{
	pipe_on_stdin(i);
	i->format = 2;
	i->pid = 0;
	i->ntree = 0;
	i->chans[0].key = 0;
}

static void test_stdio_pipe(void)
{
	CHECK(!strcmp(parse_changed(pipe_on_stdin), ""));
	CHECK(strstr(parse_changed(pipe_on_stdin_v2), "file 0: descriptor 0 out of range") != NULL);
}

static void tree_parent(struct ckpt_image *i)
{
	i->tree[0].ppid = 4301;
}
static void tree_zombie_parent(struct ckpt_image *i)
{
	i->tree[0].kind = CKTP_ZOMBIE;
}
static void tree_dup(struct ckpt_image *i)
{
	i->tree[1].pid = 4300;
}
static void tree_self(struct ckpt_image *i)
{
	i->tree[0].pid = 4242;
}
static void tree_kind(struct ckpt_image *i)
{
	i->tree[1].kind = 3;
}
static void tree_status(struct ckpt_image *i)
{
	i->tree[1].status = 0x7f; /* stopped, not exited */
}
static void tree_status_stop(struct ckpt_image *i)
{
	i->tree[1].status = 19; /* "killed" by SIGSTOP: no process ever was */
}
static void tree_status_proc(struct ckpt_image *i)
{
	i->tree[0].status = 1;
}
static void tree_pid_range(struct ckpt_image *i)
{
	i->tree[1].pid = -5;
}
static void pid_zero(struct ckpt_image *i)
{
	i->pid = 0;
}
/* a socket pair between processes in a checkpoint of version 3 */
static void socket_key(struct ckpt_image *i)
{
	ckpt_queue_free(&i->chans[2].q[1]);
	i->nchan = 2;
	i->nfd = 5;
	i->format = 3;
	i->chans[1].key = 9;
}
/* 0 is a group or session led outside the program's pid namespace (what
 * getpgrp() and getsid() return there); below 0 is nothing */
static void pgid_negative(struct ckpt_image *i)
{
	i->pgid = -2;
}
static void sid_range(struct ckpt_image *i)
{
	i->sid = CKPT_PID_MAX;
}
static void shared_unheld_size(struct ckpt_image *i)
{
	i->chans[2].bufsize[0] = 4096;
}
static void shared_no_size(struct ckpt_image *i)
{
	i->chans[2].bufsize[1] = 0;
}
static void shared_unheld_data(struct ckpt_image *i)
{
	static const uint32_t one[] = {1};
	queue(&i->chans[2].q[0], "q", one, 1);
}
static void shared_none_held(struct ckpt_image *i)
{
	i->chans[2].held = 0;
	i->chans[2].bufsize[1] = 0;
}
static void unshared_half(struct ckpt_image *i)
{
	i->chans[2].key = 0;
}

static void rip_bad(struct ckpt_image *i)
{
	i->threads->s.rip = 0x800000000000ull;
}
static void rflags_bad(struct ckpt_image *i)
{
	i->threads->s.rflags = 0x3202;
}
static void fsbase_bad(struct ckpt_image *i)
{
	i->threads->s.seg[4].base = 0x8000000000000000ull >> 1;
}
static void vma_overlap(struct ckpt_image *i)
{
	i->vmas[1].start = 0x401000;
}
static void vma_unaligned(struct ckpt_image *i)
{
	i->vmas[0].end = 0x402001;
}
static void vma_high(struct ckpt_image *i)
{
	i->vmas[1].end = 0x800000000000ull;
}
static void run_beyond(struct ckpt_image *i)
{
	i->memsize = 4 * CKPT_PAGE;
}
static void run_outside(struct ckpt_image *i)
{
	i->vmas[1].runs[1].page = 8;
}
static void run_order(struct ckpt_image *i)
{
	i->vmas[1].runs[1].page = 1;
}
static void anon_path(struct ckpt_image *i)
{
	i->vmas[1].path = strdup("/x");
}
static void rel_path(struct ckpt_image *i)
{
	i->fds[0].path[0] = 'x';
}
static void fd_low(struct ckpt_image *i)
{
	i->fds[0].fd = 2;
}
static void fd_kind(struct ckpt_image *i)
{
	i->fds[0].kind = 9;
}
static void rlimit_bad(struct ckpt_image *i)
{
	i->rlim[3].cur = 2000;
}
static void no_threads(struct ckpt_image *i)
{
	i->nthreads = 0;
}
static void umask_bad(struct ckpt_image *i)
{
	i->umask = 01000;
}
static void itimer_bad(struct ckpt_image *i)
{
	i->itimer[0].val_us = 1000000;
}

static void chan_index(struct ckpt_image *i)
{
	i->fds[1].chan = 5;
}
static void chan_access(struct ckpt_image *i)
{
	i->fds[2].flags = CKF_READ;
}
static void chan_unheld(struct ckpt_image *i)
{
	i->fds[4].end = 0;
}
static void chan_overfull(struct ckpt_image *i)
{
	i->chans[0].bufsize[0] = 4;
}
static void chan_kind(struct ckpt_image *i)
{
	i->chans[0].kind = 9;
}
static void chan_half(struct ckpt_image *i)
{
	i->chans[1].held = 1;
}
static void chan_empty_run(struct ckpt_image *i)
{
	i->chans[0].q[0].len[0] = 0;
	i->chans[0].q[0].size = 0;
}
static void chan_path(struct ckpt_image *i)
{
	i->fds[1].path = strdup("/x");
}
static void chan_shut(struct ckpt_image *i)
{
	i->chans[1].shut = 16;
}
static void pipe_wrong_queue(struct ckpt_image *i)
{
	ckpt_queue_free(&i->chans[0].q[0]);
	static const uint32_t one[] = {1};
	queue(&i->chans[0].q[1], "z", one, 1);
}
static void pipe_unread_data(struct ckpt_image *i)
{
	i->chans[0].held = 2;
	i->fds[1].kind = CKFD_FILE;
	i->fds[1].path = strdup("/tmp/x");
}
static void v1_with_chan(struct ckpt_image *i)
{
	i->format = 1;
}

static void test_refused(void)
{
	static const struct {
		void (*change)(struct ckpt_image *);
		const char *want;
	} cases[] = {
		{rip_bad, "thread 0: RIP out of range"},
		{rflags_bad, "thread 0: RFLAGS out of range"},
		{fsbase_bad, "FS or GS base not canonical"},
		{vma_overlap, "mapping 1: addresses out of range or out of order"},
		{vma_unaligned, "mapping 0: addresses"},
		{vma_high, "mapping 1: addresses"},
		{run_beyond, "mapping 1: its pages lie beyond the memory file"},
		{run_outside, "mapping 1: saved pages out of range or out of order"},
		{run_order, "mapping 1: saved pages out of range or out of order"},
		{anon_path, "mapping 1: anonymous with a file"},
		{rel_path, "an open file: not an absolute path"},
		{fd_low, "file 0: descriptor 2 out of range"},
		{fd_kind, "file 0: unknown kind 9"},
		{rlimit_bad, "resource limit 3: soft limit above the hard one"},
		{no_threads, "thread count out of range"},
		{umask_bad, "umask"},
		{itimer_bad, "interval timer 0 out of range"},
		{chan_index, "file 1: channel 5 out of range"},
		{chan_access, "file 2: an end of channel 0 it cannot be"},
		{chan_unheld, "channel 1: end 1 is held by no descriptor"},
		{chan_overfull, "channel 0: a pipe's data where it cannot be"},
		{chan_kind, "channel 0: unknown kind 9"},
		{chan_half, "channel 1: ends, shutdown or buffer sizes out of range"},
		{chan_empty_run, "channel 0: an empty run of bytes"},
		{chan_path, "file 1: a pipe or socket with the fields of a file"},
		{chan_shut, "channel 1: ends, shutdown or buffer sizes out of range"},
		{pipe_wrong_queue, "channel 0: a pipe's data where it cannot be"},
		{pipe_unread_data, "channel 0: a pipe's data where it cannot be"},
		{v1_with_chan, "file 1: unknown kind 4"},
		{tree_parent, "process 0: its parent 4301 is not a process before it"},
		{tree_zombie_parent, "process 1: its parent 4300 is not a process before it"},
		{tree_dup, "process 1: pid 4300 twice"},
		{tree_self, "process 0: pid 4242 out of range"},
		{tree_kind, "process 1: unknown kind 3"},
		{tree_status, "process 1: wait status 0x7f out of range"},
		{tree_status_proc, "process 0: wait status 0x1 out of range"},
		{tree_status_stop, "process 1: wait status 0x13 out of range"},
		{tree_pid_range, "process 1: pid -5 out of range"},
		{pid_zero, "the process id 0 out of range"},
		{socket_key, "channel 1: a socket pair shared between processes"},
		{pgid_negative, "the process group -2 or session 100 out of range"},
		{sid_range, "out of range"},
		{shared_unheld_size, "channel 2: ends, shutdown or buffer sizes out of range"},
		{shared_no_size, "channel 2: ends, shutdown or buffer sizes out of range"},
		{shared_unheld_data, "channel 2: a socket's data at an end the process does not hold"},
		{shared_none_held, "channel 2: ends, shutdown or buffer sizes out of range"},
		{unshared_half, "channel 2: ends, shutdown or buffer sizes out of range"},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const char *got = parse_changed(cases[k].change);
		if (!strstr(got, cases[k].want)) {
			fprintf(stderr, "  case %zu: got '%s', wanted '%s'\n", k, got, cases[k].want);
			CHECK(0);
		}
	}
}

/* Every truncation and every flipped byte: refused, never a crash. */
static void test_damage(void)
{
	struct ckpt_image img, out;
	sample(&img);
	size_t len;
	uint8_t *b = encode(&img, &len);
	ckpt_image_free(&img);
	unsigned accepted = 0;
	for (size_t n = 0; n < len; n++)
		if (ckpt_parse(b, n, &out, err, sizeof(err)) == 0) {
			accepted++;
			ckpt_image_free(&out);
		}
	CHECK_EQ_U64(accepted, 0);
	for (size_t k = 0; k < len; k++) {
		b[k] ^= 0x40;
		if (ckpt_parse(b, len, &out, err, sizeof(err)) == 0) {
			accepted++;
			ckpt_image_free(&out);
		}
		b[k] ^= 0x40;
	}
	CHECK_EQ_U64(accepted, 0);
	free(b);
}

int main(void)
{
	RUN(test_roundtrip);
	RUN(test_outside_ids);
	RUN(test_v1);
	RUN(test_v3);
	RUN(test_v2);
	RUN(test_stdio_pipe);
	RUN(test_refused);
	RUN(test_damage);
	return test_report();
}
