/* The control API's client side for the CLI's commands that act on a
 * running corral (snapshot, migrate, checkpoint): JSON requests over
 * daemon/http.c's HTTP/1.1 client on its unix socket. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "daemon/http.h"

/* A snapshot or checkpoint of a large guest takes its time. */
#define API_TIMEOUT_MS (30 * 60 * 1000)

int cli_api_request(const char *sock, const char *method, const char *path, json_t *body, json_t **answer, char *msg,
		    size_t msglen)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL, *ans = NULL, err[400];
	size_t len;
	int status = 0;
	msg[0] = 0;
	if (answer)
		*answer = NULL;
	if (http_call(sock, method, path, text, API_TIMEOUT_MS, &status, &ans, &len, err, sizeof(err)) < 0) {
		snprintf(msg, msglen, "%s (is a corral serving its API there?)", err);
		status = 0;
	} else {
		json_t *j = len ? json_loadb(ans, len, 0, NULL) : NULL;
		json_t *fm = j ? json_object_get(j, "fault_message") : NULL;
		if (json_is_string(fm))
			snprintf(msg, msglen, "%s", json_string_value(fm));
		if (answer)
			*answer = j;
		else
			json_decref(j);
	}
	free(ans);
	free(text);
	json_decref(body);
	return status;
}
