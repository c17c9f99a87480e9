/* corral's OCI runtime (`corral oci`, `corral-runc`): runc's command line
 * over process VMs. A bundle's config.json is parsed and checked in full
 * (spec.c) before anything is created; the container's process is a
 * process VM in namespaces, mounts and cgroups the runtime made itself
 * (container.c, cgroup.c); runtime.c holds the commands and their state. */
#ifndef CORRAL_OCI_H
#define CORRAL_OCI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#define OCI_VERSION "1.0.2"
/* Caps on what a bundle may ask for: config.json is hostile input. */
#define OCI_MAX_CONFIG (4u << 20)
#define OCI_MAX_LIST 1024 /* args, env, mounts, hooks, paths... */
#define OCI_MAX_STR 65536
#define OCI_MAX_ID 1024

enum {
	OCI_HOOK_PRESTART,
	OCI_HOOK_CREATE_RUNTIME,
	OCI_HOOK_CREATE_CONTAINER,
	OCI_HOOK_START_CONTAINER,
	OCI_HOOK_POSTSTART,
	OCI_HOOK_POSTSTOP,
	OCI_HOOK_KINDS
};

struct oci_hook {
	const char *path;
	const char **args; /* NULL-terminated; NULL: path alone */
	const char **env;  /* NULL-terminated or NULL */
	int timeout;	   /* seconds, 0: none */
};

struct oci_mount {
	const char *dest, *type, *source, *data; /* data: the options mount(2) takes as text */
	unsigned long flags;			 /* MS_* */
	unsigned long propagation;		 /* MS_PRIVATE, MS_SLAVE, ... with MS_REC, or 0 */
	int bind;
	int tmpcopyup; /* a tmpfs that starts with what the image had there */
};

struct oci_ns {
	int type;	  /* CLONE_NEW* */
	const char *path; /* join this one (setns), or NULL: a new one */
};

struct oci_idmap {
	unsigned container, host, size;
};

struct oci_devrule {
	int allow;
	char type;	    /* a, c or b */
	long major, minor;  /* -1: any */
	const char *access; /* rwm */
};

struct oci_process {
	int terminal;
	unsigned short console_rows, console_cols; /* consoleSize; 0: the pty's default */
	const char **args, **env;		   /* NULL-terminated */
	size_t nargs;
	const char *cwd;
	uid_t uid;
	gid_t gid;
	gid_t *gids;
	size_t ngids;
	struct {
		int res;
		struct rlimit lim;
	} * rlimits;
	size_t nrlimits;
	int no_new_privs;
	int has_caps;
	uint64_t caps[5]; /* bounding, effective, inheritable, permitted, ambient */
	int has_oom;
	int oom_score_adj;
	int has_umask;
	mode_t umask;
	json_t *seccomp; /* linux.seccomp (checked), or NULL */
};

struct oci_resources {
	int64_t mem_limit, mem_reservation, mem_swap; /* bytes, -1: unset (and -1 in swap: unlimited) */
	int has_mem_limit, has_mem_reservation, has_mem_swap;
	uint64_t cpu_shares;
	int64_t cpu_quota;
	uint64_t cpu_period;
	const char *cpus, *mems;
	int64_t pids_limit;
	int has_pids;
	struct oci_devrule *devices;
	size_t ndevices;
};

/* linux.devices[]: a node made in the container's root */
struct oci_device {
	const char *path; /* absolute, inside the container */
	mode_t type;	  /* S_IFCHR, S_IFBLK or S_IFIFO */
	unsigned major, minor;
	mode_t mode; /* permission bits (fileMode; 0666 when not given) */
	uid_t uid;
	gid_t gid;
};

struct oci_spec {
	json_t *json; /* owns every string below */
	const char *root_path;
	int root_readonly;
	const char *hostname;
	struct oci_process proc;
	struct oci_mount *mounts;
	size_t nmounts;
	struct oci_ns ns[8];
	size_t nns;
	struct oci_idmap uidmap[16], gidmap[16];
	size_t nuidmap, ngidmap;
	const char *cgroups_path;
	struct oci_resources res;
	const char **masked, **readonly;
	size_t nmasked, nreadonly;
	struct oci_hook *hooks[OCI_HOOK_KINDS];
	size_t nhooks[OCI_HOOK_KINDS];
	const char **sysctl_keys, **sysctl_vals;
	size_t nsysctl;
	unsigned long rootfs_propagation;
	struct oci_device *devices;
	size_t ndevices;
};

/* Parse and check config.json of bundle (a directory): 0, or -1 after
 * writing one line to err. */
int oci_spec_load(const char *bundle, struct oci_spec *s, char *err, size_t errn);
/* Parse a process object alone (`exec --process FILE`). */
int oci_process_load(const char *file, json_t **owner, struct oci_process *p, char *err, size_t errn);
int oci_process_parse(json_t *o, struct oci_process *p, int need_args, char *err, size_t errn);
/* The hooks object alone (the poststart and poststop hooks kept in state). */
int oci_spec_hooks(json_t *hooks, struct oci_spec *s, char *err, size_t errn);
void oci_spec_free(struct oci_spec *s);
void oci_process_free(struct oci_process *p);
int oci_ns_has(const struct oci_spec *s, int type);

/* cgroup v1 (cgroup.c): path is the config's cgroupsPath, taken under the
 * runtime's own cgroup; the directories made are appended to dirs (a JSON
 * list kept in the state) that the other calls take. 0 or -errno. */
int oci_cgroup_create(const char *path, const struct oci_resources *r, pid_t pid, json_t *dirs, char *err, size_t errn);
int oci_cgroup_join(json_t *dirs, pid_t pid);
/* linux.resources.devices, written once the container's root is made (as
 * runc sets them after its init's setup): the init itself makes the
 * linux.devices nodes, which a rule could forbid it to. 0 or -errno. */
int oci_cgroup_devices(json_t *dirs, const struct oci_resources *res, char *err, size_t errn);
int oci_cgroup_freeze(json_t *dirs, int frozen);
int oci_cgroup_frozen(json_t *dirs);
/* The pids in the cgroup (pids controller, else freezer): count, or -errno. */
int oci_cgroup_pids(json_t *dirs, pid_t *out, int max);
void oci_cgroup_destroy(json_t *dirs);

/* Run one hook (natively: hooks are host programs) with the state JSON on
 * its stdin: 0 or -1 with err written. */
int oci_hook_run(const struct oci_hook *h, const char *state, char *err, size_t errn);

/* The container's side of create, in container.c: called in the child that
 * will become the container's process; never returns. */
struct oci_init_args {
	const struct oci_spec *spec;
	const char *bundle, *statedir, *id;
	int sync_fd;	 /* to and from the create process */
	json_t *cgroups; /* the container's cgroup directories (sent with the G message) */
	int console_fd;	 /* connected --console-socket, or -1 */
	int preserve_fds;
};
_Noreturn void oci_init_run(struct oci_init_args *a);
/* A pty whose master goes to the console socket sock (SCM_RIGHTS) and
 * whose slave, owned by p's uid and of p's consoleSize, becomes stdio and
 * the controlling terminal: 0 or -1. */
int oci_console_setup(int sock, const struct oci_process *p, char *err, size_t errn);
/* The guest's side of both init and exec: user, rlimits, caps, terminal,
 * then the process VM. Never returns. */
_Noreturn void oci_process_exec(const struct oci_process *p, int console_fd, int preserve_fds);
/* args[0] looked up as execve would from the current root and directory
 * (PATH from the process's env): 0, or -1 with runc's message in err. */
int oci_check_program(const struct oci_process *p, char *err, size_t errn);

/* linux.seccomp as a libseccomp filter (seccomp.c): build checks it all;
 * load installs it on the calling process and frees it. */
int oci_seccomp_build(json_t *sc, int nnp, void **out, char *err, size_t errn);
int oci_seccomp_load(void *f, char *err, size_t errn);
void oci_seccomp_free(void *f);

/* snprintf for messages (truncation is fine there); returns -1. */
__attribute__((format(printf, 3, 4))) int oci_errf(char *buf, size_t n, const char *fmt, ...);

int oci_main(int argc, char **argv);

#endif
