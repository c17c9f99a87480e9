/* Pipes and socket pairs in a process VM's checkpoint: finding which of
 * the program's descriptors are the two ends of one pipe or socket pair,
 * reading what waits in them without taking it (tee for pipes, MSG_PEEK
 * with SO_PEEK_OFF for sockets), and making them again at restore with
 * their data, message boundaries, buffer sizes and shutdowns. Every
 * guest thread is parked while a checkpoint is gathered, so nothing else
 * reads or writes them meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "process/ckpt_chan.h"

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif
#define PEEK_BUF (8u << 20) /* larger than any datagram a unix socket takes */

/* Where each channel's ends are while a checkpoint is gathered. */
struct chan_src {
	ino_t ino[2]; /* a pipe's one inode twice; a socket pair's two sockets */
	int fd[2];    /* a descriptor of each held end */
	int fl[2];    /* its F_GETFL */
};

static struct chan_src *src;
static int diag_fd = -1;
/* pipes whose two ends are held within the process tree (sorted inodes) */
static uint64_t *tree_keys;
static size_t ntree_keys;
/* the sockets of socket pairs between processes of the tree: who reads
 * each one's queue (the first process that holds it) and on which
 * descriptor there (sorted by inode) */
static struct ckpt_tree_sock *tree_socks;
static size_t ntree_socks;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int ckpt_chan_set_tree(const uint64_t *keys, size_t n)
{
	free(tree_keys);
	tree_keys = NULL;
	ntree_keys = 0;
	if (!n)
		return 0;
	if (!(tree_keys = malloc(n * sizeof(*keys))))
		return -ENOMEM;
	memcpy(tree_keys, keys, n * sizeof(*keys));
	qsort(tree_keys, n, sizeof(*keys), cmp_u64);
	ntree_keys = n;
	return 0;
}

static int cmp_sock(const void *a, const void *b)
{
	return cmp_u64(&((const struct ckpt_tree_sock *)a)->ino, &((const struct ckpt_tree_sock *)b)->ino);
}

int ckpt_chan_set_tree_socks(const struct ckpt_tree_sock *v, size_t n)
{
	free(tree_socks);
	tree_socks = NULL;
	ntree_socks = 0;
	if (!n)
		return 0;
	if (!(tree_socks = malloc(n * sizeof(*v))))
		return -ENOMEM;
	memcpy(tree_socks, v, n * sizeof(*v));
	qsort(tree_socks, n, sizeof(*v), cmp_sock);
	ntree_socks = n;
	return 0;
}

static bool in_tree(uint64_t key)
{
	return key && ntree_keys && bsearch(&key, tree_keys, ntree_keys, sizeof(key), cmp_u64);
}

static const struct ckpt_tree_sock *tree_sock(uint64_t ino)
{
	struct ckpt_tree_sock k = {.ino = ino};
	return ino && ntree_socks ? bsearch(&k, tree_socks, ntree_socks, sizeof(k), cmp_sock) : NULL;
}

bool ckpt_chan_tree_pipe(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return false;
	return S_ISFIFO(st.st_mode) ? in_tree((uint64_t)st.st_ino)
				    : S_ISSOCK(st.st_mode) && tree_sock((uint64_t)st.st_ino);
}

void ckpt_chan_reset(void)
{
	free(src);
	src = NULL;
	if (diag_fd >= 0)
		close(diag_fd);
	diag_fd = -1;
}

/* A unix socket's peer (its inode), shutdown state (sk_shutdown: 1
 * receive, 2 send) and the memory of what it sent that is still waiting
 * to be read (SK_MEMINFO_WMEM_ALLOC: 0 when nothing is), through sock_diag
 * (NETLINK_SOCK_DIAG, unix_diag). */
static int unix_peer(ino_t ino, ino_t *peer, uint32_t *shut, uint32_t *wmem)
{
	if (diag_fd < 0 && (diag_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) < 0)
		return -errno;
	struct {
		struct nlmsghdr nh;
		struct unix_diag_req r;
	} req;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = AF_UNIX;
	req.r.udiag_states = ~0u;
	req.r.udiag_ino = (uint32_t)ino;
	req.r.udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_MEMINFO;
	req.r.udiag_cookie[0] = req.r.udiag_cookie[1] = ~0u;
	if (send(diag_fd, &req, sizeof(req), 0) != (ssize_t)sizeof(req))
		return -errno;
	union {
		struct nlmsghdr nh;
		uint8_t b[8192];
	} ans;
	ssize_t n = recv(diag_fd, &ans, sizeof(ans), 0);
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct unix_diag_msg)) || ans.nh.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    ans.nh.nlmsg_len > (uint32_t)n)
		return n < 0 ? -errno : -EPROTO;
	const struct unix_diag_msg *m = NLMSG_DATA(&ans.nh);
	if (m->udiag_ino != (uint32_t)ino)
		return -EPROTO;
	*peer = 0;
	*shut = 0;
	*wmem = UINT32_MAX;
	size_t off = NLMSG_LENGTH(sizeof(*m)), end = ans.nh.nlmsg_len;
	while (off + sizeof(struct nlattr) <= end) {
		const struct nlattr *a = (const struct nlattr *)(ans.b + off);
		if (a->nla_len < sizeof(*a) || off + a->nla_len > end)
			break;
		const uint8_t *v = (const uint8_t *)a + NLA_HDRLEN;
		if (a->nla_type == UNIX_DIAG_PEER && a->nla_len >= NLA_HDRLEN + 4) {
			uint32_t p;
			memcpy(&p, v, 4);
			*peer = p;
		} else if (a->nla_type == UNIX_DIAG_SHUTDOWN && a->nla_len >= NLA_HDRLEN + 1) {
			*shut = *v & 3;
		} else if (a->nla_type == UNIX_DIAG_MEMINFO &&
			   a->nla_len >= NLA_HDRLEN + 4 * (SK_MEMINFO_WMEM_ALLOC + 1)) {
			memcpy(wmem, v + 4 * SK_MEMINFO_WMEM_ALLOC, 4);
		}
		off += NLA_ALIGN(a->nla_len);
	}
	return 0;
}

uint64_t ckpt_chan_sock_peer(uint64_t ino)
{
	ino_t peer;
	uint32_t shut, wmem;
	bool had = diag_fd >= 0;
	int r = unix_peer((ino_t)ino, &peer, &shut, &wmem);
	/* not left open among the program's descriptors, which a checkpoint
	 * gathers next */
	if (!had && diag_fd >= 0) {
		close(diag_fd);
		diag_fd = -1;
	}
	return r ? 0 : (uint64_t)peer;
}

static int new_chan(struct ckpt_image *img, uint32_t kind, ino_t a, ino_t b, char *err, size_t errn)
{
	if (img->nchan == CKPT_MAX_CHANS) {
		snprintf(err, errn, "more pipes and socket pairs than a checkpoint holds");
		return -EOPNOTSUPP;
	}
	struct ckpt_chan *nc = realloc(img->chans, (img->nchan + 1) * sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	img->chans = nc;
	struct chan_src *ns = realloc(src, (img->nchan + 1) * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	src = ns;
	memset(&img->chans[img->nchan], 0, sizeof(*nc));
	img->chans[img->nchan].kind = kind;
	src[img->nchan] = (struct chan_src){{a, b}, {-1, -1}, {0, 0}};
	return (int)img->nchan++;
}

/* Descriptor fd is end e of channel k: the first one of that end is the
 * one read from; others must share its flags (one open file description,
 * dup'ed, is what a restore gives back). */
static int hold(struct ckpt_image *img, struct ckpt_fd *c, uint32_t k, uint32_t e, int fd, int fl, char *err,
		size_t errn)
{
	struct ckpt_chan *ch = &img->chans[k];
	if (ch->held & (1u << e)) {
		if ((fl & O_NONBLOCK) != (src[k].fl[e] & O_NONBLOCK)) {
			snprintf(err, errn,
				 "descriptors %d and %d: one end of a pipe or socket pair opened twice with different "
				 "flags is not carried",
				 src[k].fd[e], fd);
			return -EOPNOTSUPP;
		}
	} else {
		ch->held |= 1u << e;
		src[k].fd[e] = fd;
		src[k].fl[e] = fl;
	}
	c->kind = CKFD_CHAN;
	c->chan = k;
	c->end = e;
	return 0;
}

static int add_pipe(struct ckpt_image *img, struct ckpt_fd *c, int fd, const struct stat *st, int fl, char *err,
		    size_t errn)
{
	int acc = fl & O_ACCMODE;
	if (acc == O_RDWR || (fl & O_DIRECT)) {
		snprintf(err, errn,
			 "descriptor %d: a pipe open for reading and writing, or in packet mode, is not carried", fd);
		return -EOPNOTSUPP;
	}
	uint32_t k;
	for (k = 0; k < img->nchan; k++)
		if (img->chans[k].kind == CKCH_PIPE && src[k].ino[0] == st->st_ino)
			break;
	if (k == img->nchan) {
		int n = new_chan(img, CKCH_PIPE, st->st_ino, st->st_ino, err, errn);
		if (n < 0)
			return n;
		img->chans[n].key = (uint64_t)st->st_ino;
	}
	return hold(img, c, k, acc == O_WRONLY, fd, fl, err, errn);
}

static int sockopt(int fd, int opt)
{
	int v = 0;
	socklen_t l = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, opt, &v, &l) < 0 ? -1 : v;
}

static int add_socket(struct ckpt_image *img, struct ckpt_fd *c, int fd, const struct stat *st, int fl, char *err,
		      size_t errn)
{
	int type = sockopt(fd, SO_TYPE);
	struct sockaddr_un sa;
	socklen_t sl = sizeof(sa);
	if (sockopt(fd, SO_DOMAIN) != AF_UNIX) {
		snprintf(err, errn,
			 "descriptor %d: a network socket is not carried (a connection cannot move with the program)",
			 fd);
		return -EOPNOTSUPP;
	}
	if (sockopt(fd, SO_ACCEPTCONN) != 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) < 0 ||
	    sl > sizeof(sa_family_t) || (type != SOCK_STREAM && type != SOCK_DGRAM && type != SOCK_SEQPACKET)) {
		snprintf(err, errn,
			 "descriptor %d: a unix socket with a name, or listening, is not carried (only socket pairs)",
			 fd);
		return -EOPNOTSUPP;
	}
	if (sockopt(fd, SO_PEEK_OFF) != -1) {
		snprintf(err, errn, "descriptor %d: a socket with SO_PEEK_OFF set is not carried yet", fd);
		return -EOPNOTSUPP;
	}
	uint32_t kind = type == SOCK_STREAM ? CKCH_STREAM : type == SOCK_DGRAM ? CKCH_DGRAM : CKCH_SEQPACKET;
	for (uint32_t k = 0; k < img->nchan; k++) {
		if (img->chans[k].kind == CKCH_PIPE)
			continue;
		for (uint32_t e = 0; e < 2; e++)
			if (src[k].ino[e] == st->st_ino) {
				if (img->chans[k].kind != kind)
					break;
				return hold(img, c, k, e, fd, fl, err, errn);
			}
	}
	ino_t peer;
	uint32_t shut, wmem;
	int r = unix_peer(st->st_ino, &peer, &shut, &wmem);
	if (r) {
		snprintf(err, errn, "descriptor %d: cannot find the other end of a socket (sock_diag: %s)", fd,
			 strerror(-r));
		return r;
	}
	if (!peer) {
		snprintf(err, errn,
			 "descriptor %d: a socket whose other end is closed or unconnected is not carried yet", fd);
		return -EOPNOTSUPP;
	}
	if (tree_sock((uint64_t)st->st_ino) && tree_sock((uint64_t)peer)) {
		/* a pair between processes of the tree: named by its lower
		 * inode in every process's image, end 0 that socket */
		ino_t lo = st->st_ino < peer ? st->st_ino : peer, hi = st->st_ino < peer ? peer : st->st_ino;
		int n = new_chan(img, kind, lo, hi, err, errn);
		if (n < 0)
			return n;
		img->chans[n].key = (uint64_t)lo;
		return hold(img, c, (uint32_t)n, st->st_ino != lo, fd, fl, err, errn);
	}
	int n = new_chan(img, kind, st->st_ino, peer, err, errn);
	if (n < 0)
		return n;
	return hold(img, c, (uint32_t)n, 0, fd, fl, err, errn);
}

int ckpt_chan_add(struct ckpt_image *img, struct ckpt_fd *c, int fd, const struct stat *st, int fl, const char *link,
		  char *err, size_t errn)
{
	if (S_ISFIFO(st->st_mode) && !strncmp(link, "pipe:", 5))
		return add_pipe(img, c, fd, st, fl, err, errn);
	if (S_ISSOCK(st->st_mode))
		return add_socket(img, c, fd, st, fl, err, errn);
	snprintf(err, errn, "descriptor %d (%.300s): a named FIFO is not carried yet", fd, link);
	return -EOPNOTSUPP;
}

/* What waits in a pipe, read without taking it: tee into a pipe of our
 * own as large, then read that. */
static int peek_pipe(int rfd, uint64_t cap, struct ckpt_queue *q, char *err, size_t errn)
{
	int n = 0;
	if (ioctl(rfd, FIONREAD, &n) < 0 || n < 0)
		return -errno;
	if (!n)
		return 0;
	int t[2];
	if (pipe2(t, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	int r = 0;
	q->len = malloc(sizeof(*q->len));
	q->data = malloc((size_t)n);
	if (!q->len || !q->data) {
		r = -ENOMEM;
		goto out;
	}
	if (fcntl(t[1], F_SETPIPE_SZ, (int)cap) < 0) {
		r = -errno;
		goto out;
	}
	ssize_t got = tee(rfd, t[1], (size_t)n, SPLICE_F_NONBLOCK);
	if (got != n || read(t[0], q->data, (size_t)n) != n) {
		snprintf(err, errn, "cannot read the %d bytes waiting in a pipe without taking them", n);
		r = -EIO;
		goto out;
	}
	q->nmsg = 1;
	q->len[0] = (uint32_t)n;
	q->size = (uint64_t)n;
out:
	close(t[0]);
	close(t[1]);
	return r;
}

static int queue_push(struct ckpt_queue *q, const uint8_t *p, size_t n, uint32_t *cap)
{
	if (q->nmsg == CKPT_MAX_MSGS || q->size + n > CKPT_MAX_QUEUE)
		return -E2BIG;
	if (q->nmsg == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		uint32_t *nl = realloc(q->len, *cap * sizeof(*nl));
		if (!nl)
			return -ENOMEM;
		q->len = nl;
	}
	uint8_t *nd = n ? realloc(q->data, q->size + n) : q->data;
	if (n && !nd)
		return -ENOMEM;
	q->data = nd;
	if (n)
		memcpy(q->data + q->size, p, n);
	q->len[q->nmsg++] = (uint32_t)n;
	q->size += n;
	return 0;
}

/* What waits at a socket, read without taking it: MSG_PEEK from a peek
 * offset (SO_PEEK_OFF) that walks the queue, message by message. A stream
 * is kept as one run of bytes. */
static int peek_socket(int fd, uint32_t kind, bool rcv_shut, struct ckpt_queue *q, uint8_t *buf, char *err, size_t errn)
{
	int inq = 0;
	if (ioctl(fd, FIONREAD, &inq) < 0)
		return -errno;
	int zero = 0, none = -1, r = 0;
	uint32_t cap = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) < 0)
		return -errno;
	for (;;) {
		/* what a stream or seqpacket socket has once its sender is
		 * gone or shut ends in a read of 0, like an empty message:
		 * its byte count (FIONREAD, the whole queue) says where */
		if (rcv_shut && kind != CKCH_DGRAM && q->size == (uint64_t)inq)
			break;
		struct iovec iov = {buf, PEEK_BUF};
		union {
			struct cmsghdr h;
			uint8_t b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(64 * sizeof(int))];
		} ctl;
		struct msghdr m = {
			.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
		ssize_t n = recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno != EAGAIN)
				r = -errno;
			break;
		}
		bool rights = false;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
			if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
				rights = true;
				int *fds = (int *)CMSG_DATA(h);
				for (size_t i = 0; i < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
					close(fds[i]);
			}
		if (rights || (m.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
			snprintf(err, errn,
				 rights || (m.msg_flags & MSG_CTRUNC)
					 ? "a socket pair carries descriptors in flight (SCM_RIGHTS): not carried"
					 : "a socket pair holds a message larger than a checkpoint reads");
			r = -EOPNOTSUPP;
			break;
		}
		if (n == 0 && kind == CKCH_STREAM)
			break;
		if (kind == CKCH_STREAM && q->nmsg) {
			/* one run of bytes */
			if (q->size + (size_t)n > CKPT_MAX_QUEUE) {
				r = -E2BIG;
				break;
			}
			uint8_t *nd = realloc(q->data, q->size + (size_t)n);
			if (!nd) {
				r = -ENOMEM;
				break;
			}
			q->data = nd;
			memcpy(q->data + q->size, buf, (size_t)n);
			q->size += (uint64_t)n;
			q->len[0] += (uint32_t)n;
		} else if ((r = queue_push(q, buf, (size_t)n, &cap))) {
			break;
		}
	}
	setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &none, sizeof(none));
	if (!r && kind != CKCH_DGRAM && q->size != (uint64_t)inq) {
		snprintf(err, errn, "a socket pair's waiting data changed while it was read");
		r = -EIO;
	}
	if (r == -E2BIG)
		snprintf(err, errn, "a socket pair holds more waiting data than a checkpoint holds");
	return r;
}

/* One message sent again through peer, with the descriptors fl (count
 * first) it carried; the first time the buffer is full, with the largest
 * send buffer this host allows. 0 or -errno. */
static int send_again(int peer, const void *p, size_t len, const int *fl, bool *raised)
{
	struct iovec iov = {(void *)p, len};
	union {
		struct cmsghdr h;
		uint8_t b[CMSG_SPACE(253 * sizeof(int))];
	} ctl;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fl) {
		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = &ctl;
		m.msg_controllen = CMSG_SPACE((size_t)fl[0] * sizeof(int));
		struct cmsghdr *h = CMSG_FIRSTHDR(&m);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN((size_t)fl[0] * sizeof(int));
		memcpy(CMSG_DATA(h), fl + 1, (size_t)fl[0] * sizeof(int));
	}
	ssize_t w = sendmsg(peer, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w < 0 && errno == EAGAIN && !*raised) {
		int big = INT_MAX / 2;
		*raised = true;
		setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		w = sendmsg(peer, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	return w == (ssize_t)len ? 0 : w < 0 ? -errno : -EIO;
}

/* Datagrams and sequenced packets: MSG_PEEK at a peek offset skips empty
 * messages the program (or an earlier checkpoint) has peeked at, so each
 * message is taken instead and sent again through the other end, in
 * order: the queue is as it was, descriptors in flight included. */
static int cycle_messages(int fd, int peer, struct ckpt_queue *q, char *err, size_t errn)
{
	uint32_t cap = 0, fdcap = 0;
	int **rights = NULL, *last_rights = NULL, r = 0;
	bool any_rights = false;
	uint8_t *buf = NULL;
	size_t last_len = SIZE_MAX; /* a message taken but not kept */
	for (;;) {
		ssize_t len = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
		if (len < 0) {
			if (errno != EAGAIN)
				r = -errno;
			break;
		}
		if ((size_t)len > CKPT_MAX_QUEUE) {
			r = -E2BIG;
			break;
		}
		uint8_t *nb = realloc(buf, (size_t)len + 1);
		if (!nb) {
			r = -ENOMEM;
			break;
		}
		buf = nb;
		struct iovec iov = {buf, (size_t)len};
		union {
			struct cmsghdr h;
			uint8_t b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(253 * sizeof(int))];
		} ctl;
		struct msghdr m = {
			.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
		/* from here on the message is ours: it must go back */
		ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n != len) {
			snprintf(err, errn, "a socket pair's message changed while it was read");
			r = -EIO;
			break;
		}
		int *fl = NULL;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
			if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS && !fl) {
				size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				if ((fl = malloc((k + 1) * sizeof(int)))) {
					fl[0] = (int)k;
					memcpy(fl + 1, CMSG_DATA(h), k * sizeof(int));
				}
				any_rights = true;
			}
		if (q->nmsg == fdcap) {
			fdcap = fdcap ? fdcap * 2 : 16;
			int **nr = realloc(rights, fdcap * sizeof(*nr));
			if (nr)
				rights = nr;
		}
		if (q->nmsg >= fdcap || (r = queue_push(q, buf, (size_t)n, &cap))) {
			/* cannot keep it: it goes back last, then this fails */
			last_len = (size_t)n;
			last_rights = fl;
			r = r ? r : -ENOMEM;
			break;
		}
		rights[q->nmsg - 1] = fl;
	}
	/* every message taken goes back, in order */
	const uint8_t *p = q->data;
	bool raised = false;
	int sb = sockopt(peer, SO_SNDBUF) / 2;
	for (uint32_t i = 0; i <= q->nmsg; i++) {
		size_t len = i < q->nmsg ? q->len[i] : last_len;
		if (len == SIZE_MAX)
			break;
		int w = send_again(peer, i < q->nmsg ? p : buf, len, i < q->nmsg ? rights[i] : last_rights, &raised);
		if (w && !r) {
			snprintf(err, errn, "a socket pair's message could not be put back (%s): data lost",
				 strerror(-w));
			r = -EIO;
		}
		if (i < q->nmsg)
			p += len;
	}
	if (raised && sb > 0)
		setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
	for (uint32_t i = 0; i <= q->nmsg; i++) {
		int *fl = i < q->nmsg ? rights[i] : last_rights;
		for (int k = 0; fl && k < fl[0]; k++)
			close(fl[k + 1]);
		free(fl);
	}
	free(rights);
	free(buf);
	if (!r && any_rights) {
		snprintf(err, errn, "a socket pair carries descriptors in flight (SCM_RIGHTS): not carried");
		r = -EOPNOTSUPP;
	}
	if (r == -E2BIG)
		snprintf(err, errn, "a socket pair holds more waiting data than a checkpoint holds");
	return r;
}

/* A descriptor of socket t (another process's, fetched with
 * pidfd_getfd: every process of the tree is parked meanwhile). */
static int tree_sock_fd(const struct ckpt_tree_sock *t)
{
	int fd;
	if (t->pid == getpid()) {
		fd = fcntl(t->fd, F_DUPFD_CLOEXEC, 0);
	} else {
		int pfd = (int)syscall(SYS_pidfd_open, (pid_t)t->pid, 0);
		if (pfd < 0)
			return -errno;
		fd = (int)syscall(SYS_pidfd_getfd, pfd, t->fd, 0);
		int e = errno;
		close(pfd);
		errno = e;
	}
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_ino != t->ino) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/* A socket pair between processes of the tree: this process gives the
 * state of the ends it holds, and reads the queue of each socket it is
 * the reader of (the first holder in the tree); the others' images give
 * the rest, joined at restore by the key. */
static int finish_tree_pair(struct ckpt_chan *c, struct chan_src *s, uint8_t *buf, char *err, size_t errn)
{
	ino_t peer[2];
	uint32_t shut[2], wmem[2];
	int r = 0;
	for (uint32_t e = 0; e < 2; e++) {
		if ((r = unix_peer(s->ino[e], &peer[e], &shut[e], &wmem[e]))) {
			snprintf(err, errn, "a socket pair between processes: sock_diag: %s", strerror(-r));
			return r;
		}
		if (peer[e] != s->ino[1 - e]) {
			snprintf(err, errn, "sockets %llu and %llu: not the two ends of one socket pair",
				 (unsigned long long)s->ino[0], (unsigned long long)s->ino[1]);
			return -EOPNOTSUPP;
		}
	}
	for (uint32_t e = 0; e < 2; e++) {
		if (!(c->held & (1u << e)))
			continue;
		c->shut |= shut[e] << (2 * e);
		int sb = sockopt(s->fd[e], SO_SNDBUF);
		c->bufsize[e] = sb > 0 ? (uint64_t)sb : 1;
	}
	for (uint32_t e = 0; e < 2 && !r; e++) {
		const struct ckpt_tree_sock *t = tree_sock((uint64_t)s->ino[e]);
		if (!(c->held & (1u << e)) || !t || t->pid != getpid())
			continue; /* another process reads it */
		if (c->kind == CKCH_STREAM) {
			r = peek_socket(s->fd[e], c->kind, shut[e] & CKCH_SHUT_RD, &c->q[e], buf, err, errn);
		} else if ((shut[e] & CKCH_SHUT_RD) || (shut[1 - e] & CKCH_SHUT_WR)) {
			if (wmem[1 - e]) {
				snprintf(err, errn,
					 "descriptor %d: messages waiting in a socket pair shut down for them are not "
					 "carried yet",
					 s->fd[e]);
				r = -EOPNOTSUPP;
			}
		} else {
			/* taken and sent again through the other end, which
			 * another process may hold */
			const struct ckpt_tree_sock *o = tree_sock((uint64_t)s->ino[1 - e]);
			int pfd = o ? tree_sock_fd(o) : -ENOENT;
			if (pfd < 0) {
				snprintf(err, errn,
					 "descriptor %d: cannot reach the other end of a socket pair in process %d "
					 "(pidfd_getfd: %s)",
					 s->fd[e], o ? (int)o->pid : 0, strerror(-pfd));
				return pfd;
			}
			r = cycle_messages(s->fd[e], pfd, &c->q[e], err, errn);
			close(pfd);
		}
	}
	return r;
}

int ckpt_chan_finish(struct ckpt_image *img, char *err, size_t errn)
{
	uint8_t *buf = NULL;
	int r = 0;
	for (uint32_t k = 0; k < img->nchan && !r; k++) {
		struct ckpt_chan *c = &img->chans[k];
		struct chan_src *s = &src[k];
		if (c->kind == CKCH_PIPE) {
			int any = s->fd[(c->held & 1) ? 0 : 1];
			if (c->held != 3 && !in_tree(c->key)) {
				/* one end held: the other must be another process's
				 * of the tree, or closed (a reader
				 * sees POLLHUP, a writer POLLERR), not outside */
				struct pollfd p = {any, c->held & 1 ? POLLIN : POLLOUT, 0};
				if (poll(&p, 1, 0) < 0 || !(p.revents & (c->held & 1 ? POLLHUP : POLLERR))) {
					snprintf(err, errn,
						 "descriptor %d: a pipe whose other end is outside the program and its "
						 "child processes (or on its standard input, output or error) is not "
						 "carried",
						 any);
					r = -EOPNOTSUPP;
					break;
				}
			}
			int sz = fcntl(any, F_GETPIPE_SZ);
			if (sz <= 0) {
				r = -errno;
				break;
			}
			c->bufsize[0] = (uint64_t)sz;
			if ((c->held & 1) && (r = peek_pipe(s->fd[0], c->bufsize[0], &c->q[0], err, errn)))
				break;
			continue;
		}
		if (c->key) {
			if (!buf && !(buf = malloc(PEEK_BUF))) {
				r = -ENOMEM;
				break;
			}
			r = finish_tree_pair(c, s, buf, err, errn);
			continue;
		}
		if (c->held != 3) {
			snprintf(err, errn,
				 "descriptor %d: a socket whose other end is outside the program (or on its standard "
				 "input, output or error) is not carried",
				 s->fd[0]);
			r = -EOPNOTSUPP;
			break;
		}
		if (!buf && !(buf = malloc(PEEK_BUF))) {
			r = -ENOMEM;
			break;
		}
		ino_t peer[2];
		uint32_t shut[2], wmem[2];
		for (uint32_t e = 0; e < 2 && !r; e++) {
			if ((r = unix_peer(s->ino[e], &peer[e], &shut[e], &wmem[e]))) {
				snprintf(err, errn, "descriptor %d: sock_diag: %s", s->fd[e], strerror(-r));
				break;
			}
			if (peer[e] != s->ino[1 - e]) {
				snprintf(err, errn, "descriptors %d and %d: not the two ends of one socket pair",
					 s->fd[0], s->fd[1]);
				r = -EOPNOTSUPP;
			}
		}
		for (uint32_t e = 0; e < 2 && !r; e++) {
			c->shut |= shut[e] << (2 * e);
			int sb = sockopt(s->fd[e], SO_SNDBUF);
			c->bufsize[e] = sb > 0 ? (uint64_t)sb : 1;
		}
		/* q[e]: what end e reads, which end 1 - e sent */
		for (uint32_t e = 0; e < 2 && !r; e++) {
			if (c->kind == CKCH_STREAM) {
				r = peek_socket(s->fd[e], c->kind, shut[e] & CKCH_SHUT_RD, &c->q[e], buf, err, errn);
			} else if ((shut[e] & CKCH_SHUT_RD) || (shut[1 - e] & CKCH_SHUT_WR)) {
				/* messages could not be sent again: carried only
				 * when none wait (nothing of the sender's in flight) */
				if (wmem[1 - e]) {
					snprintf(err, errn,
						 "descriptor %d: messages waiting in a socket pair shut down for "
						 "them are not carried yet",
						 s->fd[e]);
					r = -EOPNOTSUPP;
				}
			} else {
				r = cycle_messages(s->fd[e], s->fd[1 - e], &c->q[e], err, errn);
			}
		}
	}
	free(buf);
	if (r && !err[0])
		snprintf(err, errn, "pipes and socket pairs: %s", strerror(-r));
	return r;
}

/* ---- restore ---- */

static int fd_above(int fd, int low)
{
	if (fd < 0 || fd >= low)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, low);
	int e = errno;
	close(fd);
	errno = e;
	return n;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int ckpt_chan_make(const struct ckpt_chan *c, uint32_t k, int out[2], int low, char *err, size_t errn)
{
	int f[2] = {-1, -1}, r = 0;
	const char *what = c->kind == CKCH_PIPE ? "pipe" : "socket pair";
	if (c->kind == CKCH_PIPE) {
		if (pipe2(f, O_CLOEXEC | O_NONBLOCK) < 0)
			f[0] = f[1] = -1;
	} else {
		int type = c->kind == CKCH_STREAM ? SOCK_STREAM : c->kind == CKCH_DGRAM ? SOCK_DGRAM : SOCK_SEQPACKET;
		if (socketpair(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, f) < 0)
			f[0] = f[1] = -1;
	}
	if (f[0] < 0 || (f[0] = fd_above(f[0], low)) < 0 || (f[1] = fd_above(f[1], low)) < 0) {
		snprintf(err, errn, "%s %u: %s", what, k, strerror(errno));
		r = -errno;
		goto fail;
	}
	if (c->kind == CKCH_PIPE) {
		if (fcntl(f[1], F_SETPIPE_SZ, (int)c->bufsize[0]) < 0) {
			snprintf(err, errn, "pipe %u: cannot make it %llu bytes large (%s; fs.pipe-max-size?)", k,
				 (unsigned long long)c->bufsize[0], strerror(errno));
			r = -errno;
			goto fail;
		}
		if (c->q[0].size && (r = write_all(f[1], c->q[0].data, c->q[0].size))) {
			snprintf(err, errn, "pipe %u: cannot put its data back (%s)", k, strerror(-r));
			goto fail;
		}
	} else {
		for (int e = 0; e < 2; e++) {
			/* q[e] waits at end e: the other end sends it, with the
			 * largest buffer this host allows, then its own size */
			const struct ckpt_queue *q = &c->q[e];
			int big = INT_MAX / 2, sb = (int)(c->bufsize[1 - e] / 2);
			setsockopt(f[1 - e], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
			const uint8_t *p = q->data;
			for (uint32_t i = 0; i < q->nmsg && !r; i++) {
				size_t n = q->len[i];
				if (c->kind == CKCH_STREAM) {
					r = write_all(f[1 - e], p, n);
				} else {
					ssize_t w = send(f[1 - e], p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
					r = w == (ssize_t)n ? 0 : w < 0 ? -errno : -EIO;
				}
				p += n;
			}
			if (r) {
				snprintf(
					err, errn,
					"socket pair %u: its waiting data does not fit this host's socket buffers (%s)",
					k, strerror(-r));
				goto fail;
			}
			setsockopt(f[1 - e], SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
		}
		for (int e = 0; e < 2; e++) {
			uint32_t s = (c->shut >> (2 * e)) & 3;
			int how = s == 3 ? SHUT_RDWR : s == CKCH_SHUT_WR ? SHUT_WR : SHUT_RD;
			if (s && shutdown(f[e], how) < 0) {
				snprintf(err, errn, "socket pair %u: shutdown: %s", k, strerror(errno));
				r = -errno;
				goto fail;
			}
		}
	}
	for (int e = 0; e < 2; e++) {
		if (!(c->held & (1u << e))) {
			close(f[e]);
			f[e] = -1;
		}
		out[e] = f[e];
	}
	return 0;
fail:
	for (int e = 0; e < 2; e++)
		if (f[e] >= 0)
			close(f[e]);
	return r ? r : -EIO;
}
