/* The jail of a VM process, as Firecracker's jailer and OpenBSD vmd lock
 * theirs in.
 *
 * Contract:
 * - jail_enter, before the process starts any thread (a mount namespace
 *   cannot be entered by one thread of many): its own mount, IPC and UTS
 *   namespaces (and network, unless keep_net: user networking needs the
 *   host's), and a root (a small tmpfs) holding only dir (read-write) and
 *   the files given, at their host paths; the working directory is dir.
 *   Needs root (CAP_SYS_ADMIN).
 * - jail_lock, after the VM is built and before guest code runs: the
 *   process (every thread) takes uid and gid uid with no supplementary
 *   groups and so no capabilities, sets no_new_privs, and loads a seccomp
 *   allow-list; any other system call kills the process (SIGSYS).
 * Both return 0 or -errno with one line in err. */
#ifndef CORRAL_JAIL_H
#define CORRAL_JAIL_H

#include <stddef.h>
#include <sys/types.h>

#define JAIL_MAX_FILES 24

struct jail_spec {
	const char *dir;
	const char *file[JAIL_MAX_FILES];
	int readonly[JAIL_MAX_FILES];
	unsigned nfiles;
	int keep_net;
};

int jail_enter(const struct jail_spec *j, char *err, size_t len);
int jail_lock(uid_t uid, char *err, size_t len);

#endif
