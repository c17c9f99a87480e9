/* The corral command's subcommands: each takes its own argv (argv[0] is the
 * subcommand's name) and returns the process exit status. */
#ifndef CORRAL_CLI_H
#define CORRAL_CLI_H

#define CORRAL_VERSION "0.1.0"

#include <stdint.h>

/* A size: "512M", "2G", "65536K", "1073741824B" (an i and a B may follow
 * the unit); a bare number is shifted by bare_shift (20 for MiB, as QEMU's
 * -m; 0 for bytes, as qemu-img's). 0, or -1 if malformed or too large. */
int cli_parse_size(const char *s, unsigned bare_shift, uint64_t *out);

/* corral vm create: corral run's options (argv[0] the command's name) as
 * the VM layer's JSON configuration (malloc'd), or NULL after a message. */
char *run_config_json(int argc, char **argv);

int cmd_vm(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_oci(int argc, char **argv);

#endif
