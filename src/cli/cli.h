/* The corral command's subcommands: each takes its own argv (argv[0] is the
 * subcommand's name) and returns the process exit status. */
#ifndef CORRAL_CLI_H
#define CORRAL_CLI_H

#define CORRAL_VERSION "0.1.0"

int cmd_exec(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_image(int argc, char **argv);

#endif
