/* Checkpoints of process trees (ckpt_tree.c): the processes a checkpointed
 * program forked (and the programs they exec'd) stop, save and go on
 * together; and a restore makes the tree again. What checkpoint.c offers
 * them is declared here too. */
#ifndef CORRAL_PROCESS_CKPT_TREE_H
#define CORRAL_PROCESS_CKPT_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "process/ckpt.h"

/* checkpoint.c: stop every guest thread of this process / let them go on */
int ckpt_freeze(char *err, size_t errn);
void ckpt_thaw(void);
/* Write this process's checkpoint into DIR/.state.tmp and .memory.tmp
 * (tree: the other processes, for the first one's image). */
int ckpt_save(const char *dir, int leave_running, const struct ckpt_tree_proc *tree, uint32_t ntree, char *err,
	      size_t errn);
/* Rename them to DIR/state and DIR/memory (commit), or remove them. */
int ckpt_commit(const char *dir, int commit, char *err, size_t errn);

/* This process takes part in a tree (as its first process or another). */
bool ckpt_tree_on(void);
/* A descriptor a tree checkpoint holds for itself (not the guest's). */
bool ckpt_tree_own_fd(int fd);
/* The first process, its own threads stopped: stop the others, save all
 * into dir (the others into DIR/p<pid>), commit. 0 or -errno with one
 * line in err (then every process goes on, nothing is left). */
int ckpt_tree_checkpoint(const char *dir, int leave_running, char *err, size_t errn);

#endif
