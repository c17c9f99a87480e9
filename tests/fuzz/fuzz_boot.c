/* libFuzzer target: the input is a kernel file handed to boot_linux (bzImage
 * header and payload decompression, ELF parsing), against a small fake RAM. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "boot/boot.h"
#include "cpu/cpu.h"
#include "machine/machine.h"

/* Only the loader is linked (src/boot/), so the machine is a plain buffer
 * with the same checked accessors as machine.c's. */
#define FUZZ_MEM (40ull << 20)

struct machine {
	uint8_t *ram;
	uint64_t size;
};

void *gpa_ptr(struct machine *m, uint64_t gpa, uint64_t len)
{
	if (gpa > m->size || len > m->size - gpa)
		return NULL;
	return m->ram + gpa;
}

int gpa_write(struct machine *m, uint64_t gpa, const void *src, size_t len)
{
	void *p = gpa_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

int gpa_read(struct machine *m, uint64_t gpa, void *dst, size_t len)
{
	void *p = gpa_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct machine m;
	static int fd = -1;
	static char path[64];
	struct cpu_state s;
	char err[256];
	struct boot_config cfg = {path, NULL, "console=ttyS0", FUZZ_MEM, 2, NULL, 0};

	if (fd < 0) {
		/* fuzz inputs never go into the user's kernel cache */
		setenv("CORRAL_KERNEL_CACHE", "off", 1);
		fd = memfd_create("fuzz-kernel", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		m.ram = mmap(NULL, FUZZ_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m.ram == MAP_FAILED)
			abort();
		m.size = FUZZ_MEM;
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	memset(&s, 0, sizeof(s));
	err[0] = 0;
	if (boot_linux(&m, &s, &cfg, err, sizeof(err)) < 0 && !err[0])
		abort(); /* every error comes with a message */
	return 0;
}
