/* A small HTTP/1.1 client on a unix socket: one request per connection
 * (Connection: close), a JSON or empty body out, the whole answer in.
 * corrald uses it to drive each VM process's control API (docs/api.yaml),
 * `corral vm` to talk to corrald (docs/corrald.yaml).
 *
 * Contract: http_call returns 0 with *status and *body (malloc'd,
 * NUL-terminated, *len bytes without the NUL; the caller frees it), or
 * -errno with one line in err (no socket, no answer within timeout_ms, an
 * answer that is not HTTP or larger than HTTP_ANSWER_MAX). */
#ifndef CORRAL_HTTP_H
#define CORRAL_HTTP_H

#include <stddef.h>

#define HTTP_ANSWER_MAX (8u << 20)

int http_call(const char *sock, const char *method, const char *path, const char *body, int timeout_ms, int *status,
	      char **out, size_t *len, char *err, size_t errlen);

#endif
