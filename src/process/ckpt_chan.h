/* Pipes and socket pairs of a process VM's checkpoint (ckpt_chan.c):
 * gathered while every guest thread is parked, made again at restore.
 * Each returns 0 or a negative errno with one sentence in err. */
#ifndef CORRAL_PROCESS_CKPT_CHAN_H
#define CORRAL_PROCESS_CKPT_CHAN_H

#include <stdbool.h>
#include <sys/stat.h>

#include "process/ckpt.h"

/* Descriptor fd (st, F_GETFL fl, /proc link text) is a pipe or socket:
 * make c an end of one of img's channels, adding the channel if new. */
int ckpt_chan_add(struct ckpt_image *img, struct ckpt_fd *c, int fd, const struct stat *st, int fl, const char *link,
		  char *err, size_t errn);
/* Every channel whole (or its missing end closed), its waiting data read. */
int ckpt_chan_finish(struct ckpt_image *img, char *err, size_t errn);
/* The pipes (inodes) whose two ends are held within the process tree:
 * one end of such a pipe is carried, on any descriptor, 0-2 included. */
int ckpt_chan_set_tree(const uint64_t *keys, size_t n);
/* A socket of a socket pair between processes of the tree: the host pid
 * of the process that reads its queue at a checkpoint, and its
 * descriptor there. */
struct ckpt_tree_sock {
	uint64_t ino;
	int32_t pid, fd;
};
/* The other end of unix socket ino (its inode), 0 if none or unknown. */
uint64_t ckpt_chan_sock_peer(uint64_t ino);
/* The sockets of the pairs both of whose ends the tree holds. */
int ckpt_chan_set_tree_socks(const struct ckpt_tree_sock *v, size_t n);
/* Descriptor fd is such a pipe or socket. */
bool ckpt_chan_tree_pipe(int fd);
/* Forget what the last gathering kept (after ckpt_chan_finish or a failure). */
void ckpt_chan_reset(void);
/* Channel k of a checkpoint made again, its descriptors at low or above
 * (close-on-exec, non-blocking) in out[end], -1 for an end not held. */
int ckpt_chan_make(const struct ckpt_chan *c, uint32_t k, int out[2], int low, char *err, size_t errn);

#endif
