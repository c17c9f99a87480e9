/* What the HTTP/JSON servers on libmicrohttpd share (the VM's control API,
 * api.c, and corrald's, daemon/server.c): answers with a JSON body, errors
 * as {"fault_message": "one sentence"}, request bodies read as a JSON
 * object whose keys are all known. */
#ifndef CORRAL_HTTPD_H
#define CORRAL_HTTPD_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

/* Queues status with j as the body (NULL: empty); takes j's reference. */
enum MHD_Result httpd_reply(struct MHD_Connection *c, unsigned status, json_t *j);
enum MHD_Result httpd_fault(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* body (len bytes) as a JSON object whose keys are all in allowed
 * (NULL-ended); NULL with the reason in why. */
json_t *httpd_body_object(const char *body, size_t len, const char *const *allowed, char *why, size_t whylen);
/* A string member: 1 and *out, 0 if absent, -1 (why) if not a string
 * without NULs of 1..max-1 bytes. */
int httpd_get_str(json_t *j, const char *key, size_t max, const char **out, char *why, size_t whylen);

#endif
