/* The VM's control API: HTTP/1.1 with JSON bodies on a unix socket, with
 * Firecracker's paths and shapes where the concept is the same.
 * docs/api.yaml is the contract.
 *
 * Contract:
 * - api_start binds path (which must not exist) and serves requests on a
 *   thread of its own until api_stop, which also removes the socket.
 * - Requests act on vm through its thread-safe calls (vm_pause, vm_resume,
 *   vm_save_files, vm_stop); the VM runs on another thread.
 * - A request is hostile input: bodies are capped at API_BODY_MAX bytes,
 *   unknown or duplicate keys and wrong types are refused; every error is
 *   a status and {"fault_message": "one sentence"}. */
#ifndef CORRAL_API_H
#define CORRAL_API_H

#include <signal.h>
#include <stddef.h>

#define API_BODY_MAX 16384

struct vm;
struct api;

/* 0 and *out, or -errno with one line in err; version is what GET /
 * reports as vmm_version. */
int api_start(const char *path, struct vm *vm, const char *version, struct api **out, char *err, size_t errlen);
void api_stop(struct api *a);

/* An empty VM process (corral run --incoming defer): api_start with vm
 * NULL answers GET / and PUT/GET /migrate/incoming, and 409 to the rest.
 * api_wait_incoming waits for a PUT /migrate/incoming and returns the
 * socket it listens on (url in url), or -EINTR once *stop is set (checked
 * every 0.1 s). api_incoming_done says how it went: vm, the VM that came
 * (every request acts on it from now on), or NULL and one line in err (a
 * new PUT may come). */
int api_wait_incoming(struct api *a, volatile sig_atomic_t *stop, char *url, size_t urllen);
void api_incoming_done(struct api *a, struct vm *vm, const char *err);

#endif
