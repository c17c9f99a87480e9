/* Loading the libraries corral needs only sometimes (dynlib.h). */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <sys/auxv.h>

#include "backend/dynlib.h"

int dynlib_static(void)
{
	static int known = -1;
	int s = __atomic_load_n(&known, __ATOMIC_RELAXED);
	if (s >= 0)
		return s;
	/* The program's own headers name an interpreter (PT_INTERP) exactly
	 * when the kernel started the dynamic loader for it. (AT_BASE alone
	 * would call a program started as `ld.so PROGRAM` static: the loader
	 * then rewrites AT_PHDR to the program's headers.) */
	const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
	unsigned long n = getauxval(AT_PHNUM);
	s = 1;
	for (unsigned long k = 0; ph && k < n; k++)
		if (ph[k].p_type == PT_INTERP)
			s = 0;
	__atomic_store_n(&known, s, __ATOMIC_RELAXED);
	return s;
}

void *dynlib_open(const char *name, const char *what, const char *pkg, int *why, char *err, size_t errlen)
{
	if (dynlib_static()) {
		*why = -ELIBACC;
		snprintf(err, errlen,
			 "%s: this corral is linked statically and cannot load %s: run corral-dyn, "
			 "installed beside it",
			 what, name);
		return NULL;
	}
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		*why = -ENOENT;
		snprintf(err, errlen, "%s: cannot load %s (Debian: apt-get install %s): %s", what, name, pkg,
			 dlerror());
	}
	return h;
}
