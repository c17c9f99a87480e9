/* The shared libraries corral loads on demand (libslirp for --net user,
 * libmicrohttpd for the control API): dlopen in a dynamically linked
 * process, a clear refusal in a statically linked one, where glibc's
 * dlopen brings a second libc whose libraries crash at their first use.
 * A static corral re-executes its dynamically linked sibling, corral-dyn,
 * before it starts a VM that needs one (cli/main.c). */
#ifndef CORRAL_DYNLIB_H
#define CORRAL_DYNLIB_H

#include <stddef.h>

/* 1 when this process has no dynamic loader (linked -static or
 * -static-pie), else 0. */
int dynlib_static(void);

/* dlopen(name, RTLD_NOW | RTLD_LOCAL). NULL with a sentence in err (what
 * names the need, "--net user", "the HTTP/JSON API"; pkg the Debian package
 * that ships name) and *why: -ELIBACC in a static process, -ENOENT when the
 * library cannot be loaded. */
void *dynlib_open(const char *name, const char *what, const char *pkg, int *why, char *err, size_t errlen);

#endif
