/* The HTTP/JSON servers' shared answers and body checks (httpd.h). */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/httpd.h"
#include "backend/dynlib.h"

struct httpd_mhd httpd_mhd;

int httpd_load(char *err, size_t errlen)
{
	static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
	int r = 0;
	pthread_mutex_lock(&once);
	if (!httpd_mhd.start_daemon) {
		void *h = dynlib_open("libmicrohttpd.so.12", "the HTTP/JSON API", "libmicrohttpd12", &r, err, errlen);
		if (!h)
			goto out;
#define MHD_SYM(field, name)                                                                                           \
	if (!(*(void **)&httpd_mhd.field = dlsym(h, name)))                                                            \
		r = -ENOENT;
		MHD_SYM(stop_daemon, "MHD_stop_daemon")
		MHD_SYM(create_response_from_buffer, "MHD_create_response_from_buffer")
		MHD_SYM(add_response_header, "MHD_add_response_header")
		MHD_SYM(queue_response, "MHD_queue_response")
		MHD_SYM(destroy_response, "MHD_destroy_response")
		MHD_SYM(get_connection_info, "MHD_get_connection_info")
		MHD_SYM(lookup_connection_value, "MHD_lookup_connection_value")
#undef MHD_SYM
		void *fn = dlsym(h, "MHD_start_daemon");
		if (r < 0 || !fn) {
			snprintf(err, errlen, "libmicrohttpd.so.12 lacks the functions corral needs");
			r = -ENOENT;
			goto out;
		}
		*(void **)&httpd_mhd.start_daemon = fn; /* last: it marks the table complete */
	}
out:
	pthread_mutex_unlock(&once);
	return r;
}

enum MHD_Result httpd_reply(struct MHD_Connection *c, unsigned status, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	struct MHD_Response *resp =
		text ? httpd_mhd.create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE)
		     : httpd_mhd.create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	if (text)
		httpd_mhd.add_response_header(resp, "Content-Type", "application/json");
	enum MHD_Result r = httpd_mhd.queue_response(c, status, resp);
	httpd_mhd.destroy_response(resp);
	return r;
}

enum MHD_Result httpd_fault(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return httpd_reply(c, status, json_pack("{s:s}", "fault_message", msg));
}

json_t *httpd_body_object(const char *body, size_t len, const char *const *allowed, char *why, size_t whylen)
{
	json_error_t je;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(why, whylen, "the body is not valid JSON: %s", je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		snprintf(why, whylen, "the body must be a JSON object");
		json_decref(j);
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v)
	{
		unsigned k = 0;
		while (allowed[k] && strcmp(allowed[k], key))
			k++;
		if (!allowed[k]) {
			snprintf(why, whylen, "unknown key '%.64s'", key);
			json_decref(j);
			return NULL;
		}
	}
	return j;
}

int httpd_get_str(json_t *j, const char *key, size_t max, const char **out, char *why, size_t whylen)
{
	json_t *v = json_object_get(j, key);
	if (!v)
		return 0;
	if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= max ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(why, whylen, "'%s' must be a non-empty string of fewer than %zu bytes", key, max);
		return -1;
	}
	*out = json_string_value(v);
	return 1;
}
