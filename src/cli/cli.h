/* The corral command's subcommands: each takes its own argv (argv[0] is the
 * subcommand's name) and returns the process exit status. */
#ifndef CORRAL_CLI_H
#define CORRAL_CLI_H

#define CORRAL_VERSION "0.1.0"

#include <stddef.h>
#include <stdint.h>

/* A size: "512M", "2G", "65536K", "1073741824B" (an i and a B may follow
 * the unit); a bare number is shifted by bare_shift (20 for MiB, as QEMU's
 * -m; 0 for bytes, as qemu-img's). 0, or -1 if malformed or too large. */
int cli_parse_size(const char *s, unsigned bare_shift, uint64_t *out);

/* One HTTP/1.1 request to the control API on the unix socket sock (corral
 * run --api-sock), body (taken, may be NULL) as JSON. Returns the HTTP
 * status, 0 if there was no answer; the answer's fault_message (or what
 * went wrong) in msg; the answer's JSON in *answer if answer is not NULL
 * (NULL when it had none; the caller json_decref's it). */
struct json_t;
int cli_api_request(const char *sock, const char *method, const char *path, struct json_t *body, struct json_t **answer,
		    char *msg, size_t msglen);

/* corral vm create: corral run's options (argv[0] the command's name) as
 * the VM layer's JSON configuration (malloc'd), or NULL after a message. */
char *run_config_json(int argc, char **argv);

/* A statically linked corral (backend/dynlib.h) cannot load libslirp or
 * libmicrohttpd: when a command needs one (why names the option), it
 * executes corral-dyn from corral's own directory with main's argv and
 * environment before anything else starts, so the command runs as it would
 * have. Returns only on failure (after one line on stderr): 1. */
int cli_exec_dynamic(const char *why);

/* corral restore, before it builds the VM: glibc's heap grows onto a
 * 2 MiB boundary and the kernel is asked for a transparent huge page
 * there, so the restore's start-up allocations cost one page fault rather
 * than one per 4 KiB (cli/heap.c). Returns the huge page's address, or 0
 * if the heap stays on small pages (no glibc heap, no break, no THP). */
uintptr_t cli_heap_huge(void);

/* A signal by name (TERM, SIGTERM, USR1, RTMIN+2) or number: 1..64, or -1. */
int cli_parse_signal(const char *s);

struct proc_opts;
/* exec's checks of --checkpoint-signal and of the checkpoint options
 * together (restore-exec takes them too): -1 after one line on stderr. */
int exec_checkpoint_signal(const char *arg);
int exec_checkpoint_opts(struct proc_opts *o);

int cmd_vm(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_restore_exec(int argc, char **argv);
/* A process VM started by a guest's execve (proc_reexec): main calls this
 * first when PROC_EXEC_FD_ENV is set. */
int exec_reentry(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_oci(int argc, char **argv);

#endif
