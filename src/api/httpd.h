/* What the HTTP/JSON servers on libmicrohttpd share (the VM's control API,
 * api.c, and corrald's, daemon/server.c): answers with a JSON body, errors
 * as {"fault_message": "one sentence"}, request bodies read as a JSON
 * object whose keys are all known. */
#ifndef CORRAL_HTTPD_H
#define CORRAL_HTTPD_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

/* libmicrohttpd, loaded with dlopen by httpd_load, not linked: linked in,
 * it and GnuTLS (which it pulls in) cost every corral process milliseconds
 * of loading and initialising at start (a restore's start-up most of its
 * time, bench/snapshot.sh), though only a VM with --api-sock and corrald
 * serve HTTP. Every call into the library goes through this table. */
struct httpd_mhd {
	__typeof__(&MHD_start_daemon) start_daemon;
	__typeof__(&MHD_stop_daemon) stop_daemon;
	__typeof__(&MHD_create_response_from_buffer) create_response_from_buffer;
	__typeof__(&MHD_add_response_header) add_response_header;
	__typeof__(&MHD_queue_response) queue_response;
	__typeof__(&MHD_destroy_response) destroy_response;
	__typeof__(&MHD_get_connection_info) get_connection_info;
	__typeof__(&MHD_lookup_connection_value) lookup_connection_value;
};
extern struct httpd_mhd httpd_mhd;
/* Loads the library once (any thread); 0, or with a sentence in err
 * -ENOENT (not installed) or -ELIBACC (a static corral: backend/dynlib.h). */
int httpd_load(char *err, size_t errlen);

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
