/* The migration relay: a jailed VM process has no network, so the live
 * migration stream (docs/migration.md) between two VM processes goes
 * through their corralds, which forward it byte for byte. Before the
 * stream, the source corrald and the destination corrald exchange one
 * line each (corrald's incoming hand-shake, docs/architecture.md):
 * the VM's definition, then the destination's answer.
 *
 * Contract:
 * - relay_pump copies a to b and b to a until both directions have ended
 *   (an end of file is passed on as a shutdown of the other side's
 *   writing), an error, or idle_ms with nothing moving either way. 0 (both
 *   ended cleanly), or -errno with one line in err. Neither fd is closed.
 * - relay_read_line reads one line of at most max - 1 bytes (byte by byte:
 *   nothing after the newline is taken from fd) within timeout_ms, into
 *   buf without the newline, NUL-terminated. Its length, or -errno (an end
 *   of file before the newline: -ECONNRESET; too long: -EMSGSIZE).
 * - relay_write_all writes n bytes within timeout_ms: 0 or -errno.
 * - relay_connect connects to tcp:HOST:PORT or to the unix socket at a
 *   path of any length: the fd, or -errno with one line in err. */
#ifndef CORRAL_RELAY_H
#define CORRAL_RELAY_H

#include <stddef.h>

#define RELAY_LINE_MAX (256 * 1024)

int relay_pump(int a, int b, int idle_ms, char *err, size_t errlen);
int relay_read_line(int fd, char *buf, size_t max, int timeout_ms);
int relay_write_all(int fd, const void *p, size_t n, int timeout_ms);
int relay_connect(const char *dest, int timeout_ms, char *err, size_t errlen);

#endif
