/* corrald: one host, many VMs. The daemon (server.c) keeps the VM table
 * and serves docs/corrald.yaml on a unix socket; each VM runs in a process
 * of its own (vmproc.c: the VM layer and its control API, docs/api.yaml),
 * started and supervised by the daemon and driven through that API.
 *
 * Contract:
 * - corrald_serve runs until SIGTERM or SIGINT and returns the exit status;
 *   running VM processes outlive it, and the next corrald takes them back
 *   (state_dir/vms/NAME/run.json names the process).
 * - corrald_vm_process is a VM process's whole life: it runs in dir (the
 *   VM's directory: vm.json, console.log, api.sock), from restore (a
 *   snapshot directory) if not NULL, or from a live migration's stream
 *   on DIR/vm/incoming.sock if incoming (the stream relayed by corrald:
 *   relay.h), and returns the exit status. kcache: corrald's kernel
 *   cache (read-only in the jail), or NULL or "" for none. */
#ifndef CORRAL_DAEMON_H
#define CORRAL_DAEMON_H

#define CORRALD_SOCKET_DEFAULT "/run/corral/corrald.sock"
#define CORRALD_STATE_DEFAULT "/var/lib/corral"
#define CORRALD_MAX_IMAGE_DIRS 8
#define CORRALD_MAX_VMS 1024
#define CORRALD_NAME_MAX 64
/* Each jailed VM process's own limits (setrlimit), whether or not cgroups
 * are there: open files (RLIMIT_NOFILE, "limits": {"nofile"}) and tasks
 * (RLIMIT_NPROC on its uid, which is its alone: "pids_max" when given). */
#define CORRALD_NOFILE_DEFAULT 4096
#define CORRALD_NOFILE_MIN 64
#define CORRALD_NOFILE_MAX 1048576
#define CORRALD_NPROC_DEFAULT 256
/* Jailed VM processes take uids from here, one each (2 * CORRALD_MAX_VMS). */
#define CORRALD_UID_BASE 2100000000

struct corrald_opts {
	const char *socket;			       /* where the API is served (ignored with socket activation) */
	const char *state_dir;			       /* definitions, runtime files, snapshots */
	const char *image_dir[CORRALD_MAX_IMAGE_DIRS]; /* where VM images may come from */
	unsigned nimage_dirs;			       /* 0: state_dir/images */
	int foreground;
	const char *cgroup;   /* the VMs' cgroup hierarchy: "auto" (NULL), "v1" or "v2" */
	int balloon_policy;   /* move balloon memory towards guests under pressure (policy.h) */
	const char *incoming; /* tcp:ADDR:PORT where VMs migrated from other corralds arrive, or NULL */
};

int corrald_serve(const struct corrald_opts *o);
int corrald_vm_process(const char *dir, const char *restore, int incoming, const char *kcache);

/* 1 if s is a VM or snapshot name: 1..64 of [A-Za-z0-9_.-], starting with
 * a letter or digit, without "..". */
int corrald_name_ok(const char *s);

#endif
