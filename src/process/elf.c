/* Program loading for process VMs: #! scripts, x86-64 ELF executables
 * (static, static-PIE, dynamic with the guest's own ld.so) and the initial
 * stack with argv, envp and auxv, laid out as Linux does. Files are hostile:
 * every header field is checked against the file before use. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "process/internal.h"

#define ELF_MAX_PHNUM 1024	  /* Linux: phdrs must fit in 64 KiB */
#define ELF_MAX_SCRIPT_DEPTH 4	  /* nested #! interpreters */
#define ELF_HDR_BUF 256		  /* Linux's BINPRM_BUF_SIZE */
#define STACK_MAX_ARGS (2u << 20) /* argv + envp strings: 1/4 of the stack */

/* argv rewritten by #! lines: lives as long as the process */
static char **volatile script_argv[ELF_MAX_SCRIPT_DEPTH + 1];

struct elf_img {
	uint64_t bias, entry, phdr, phnum;
	uint64_t end; /* highest mapped address (for brk) */
	char interp[4096];
	int has_interp;
};

static const char *machine_name(unsigned m)
{
	switch (m) {
	case EM_386: return "i386";
	case EM_ARM: return "arm";
	case EM_AARCH64: return "aarch64";
	case EM_RISCV: return "riscv";
	case EM_MIPS: return "mips";
	case EM_PPC: return "powerpc";
	case EM_PPC64: return "powerpc64";
	case EM_S390: return "s390";
	case EM_SPARCV9: return "sparc64";
	case EM_LOONGARCH: return "loongarch";
	default: return "unknown";
	}
}

/* Read exactly n bytes at off; -EIO on a short file. */
static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return 0;
}

/* Check the ELF header and program headers; *msg says why on failure.
 * Returns 0, -ENOEXEC (wrong format) or another -errno. */
static int elf_parse(int fd, Elf64_Ehdr *eh, Elf64_Phdr **php, char *msg, size_t msgn)
{
	struct stat st;
	*php = NULL;
	if (fstat(fd, &st) < 0)
		return -errno;
	uint64_t fsize = (uint64_t)st.st_size;
	if (fsize < sizeof(*eh) || read_at(fd, eh, sizeof(*eh), 0)) {
		snprintf(msg, msgn, "truncated ELF header");
		return -ENOEXEC;
	}
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG)) {
		snprintf(msg, msgn, "not an ELF file or script");
		return -ENOEXEC;
	}
	if (eh->e_ident[EI_CLASS] != ELFCLASS64) {
		const Elf32_Ehdr *e32 = (const void *)eh;
		snprintf(msg, msgn, "not an x86-64 program (32-bit ELF, machine %u: %s)", e32->e_machine,
			 machine_name(e32->e_machine));
		return -ENOEXEC;
	}
	if (eh->e_machine != EM_X86_64) {
		snprintf(msg, msgn, "not an x86-64 program (ELF machine %u: %s)", eh->e_machine,
			 machine_name(eh->e_machine));
		return -ENOEXEC;
	}
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_ident[EI_VERSION] != EV_CURRENT) {
		snprintf(msg, msgn, "bad ELF header (byte order or version)");
		return -ENOEXEC;
	}
	if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN) {
		snprintf(msg, msgn, "not an executable ELF file (type %u)", eh->e_type);
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phnum > ELF_MAX_PHNUM) {
		snprintf(msg, msgn, "bad program header table (entry size %u, count %u)", eh->e_phentsize, eh->e_phnum);
		return -ENOEXEC;
	}
	uint64_t phsz = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
	if (eh->e_phoff > fsize || phsz > fsize - eh->e_phoff) {
		snprintf(msg, msgn, "truncated ELF file (program headers past the end)");
		return -ENOEXEC;
	}
	Elf64_Phdr *ph = malloc(phsz);
	if (!ph)
		return -ENOMEM;
	if (read_at(fd, ph, phsz, eh->e_phoff)) {
		free(ph);
		snprintf(msg, msgn, "cannot read program headers");
		return -EIO;
	}
	uint64_t prev_end = 0;
	int nload = 0, ninterp = 0;
	for (unsigned k = 0; k < eh->e_phnum; k++) {
		const Elf64_Phdr *q = &ph[k];
		if (q->p_type == PT_INTERP) {
			if (ninterp++ || q->p_filesz < 2 || q->p_filesz > 4096 || q->p_offset > fsize ||
			    q->p_filesz > fsize - q->p_offset) {
				snprintf(msg, msgn, "bad PT_INTERP");
				goto bad;
			}
		}
		if (q->p_type != PT_LOAD)
			continue;
		if (q->p_filesz > q->p_memsz || q->p_offset > fsize || q->p_filesz > fsize - q->p_offset) {
			snprintf(msg, msgn, "truncated ELF file (segment %u past the end of the file)", k);
			goto bad;
		}
		if (q->p_vaddr >= VMEM_LIMIT || q->p_memsz > VMEM_LIMIT - q->p_vaddr ||
		    ((q->p_vaddr ^ q->p_offset) & (GPAGE - 1))) {
			snprintf(msg, msgn, "bad segment %u (address 0x%llx, size 0x%llx)", k,
				 (unsigned long long)q->p_vaddr, (unsigned long long)q->p_memsz);
			goto bad;
		}
		if (nload && q->p_vaddr < prev_end) {
			snprintf(msg, msgn, "overlapping or unordered segments");
			goto bad;
		}
		prev_end = q->p_vaddr + q->p_memsz;
		nload++;
	}
	if (!nload) {
		snprintf(msg, msgn, "no loadable segments");
		goto bad;
	}
	*php = ph;
	return 0;
bad:
	free(ph);
	return -ENOEXEC;
}

static unsigned pflags_prot(uint32_t f)
{
	return ((f & PF_R) ? VMEM_R : 0) | ((f & PF_W) ? VMEM_W | VMEM_R : 0) | ((f & PF_X) ? VMEM_X | VMEM_R : 0);
}

static int elf_map(struct proc *p, int fd, const char *name, int is_interp, struct elf_img *img, char *msg, size_t msgn)
{
	Elf64_Ehdr eh;
	Elf64_Phdr *ph;
	int r = elf_parse(fd, &eh, &ph, msg, msgn);
	if (r)
		return r;
	uint64_t lo = ~0ull, hi = 0;
	img->has_interp = 0;
	for (unsigned k = 0; k < eh.e_phnum; k++) {
		if (ph[k].p_type == PT_LOAD) {
			if (ph[k].p_vaddr < lo)
				lo = ph[k].p_vaddr;
			if (ph[k].p_vaddr + ph[k].p_memsz > hi)
				hi = ph[k].p_vaddr + ph[k].p_memsz;
		} else if (ph[k].p_type == PT_INTERP && !is_interp) {
			r = read_at(fd, img->interp, ph[k].p_filesz, ph[k].p_offset);
			if (r || img->interp[ph[k].p_filesz - 1] || strlen(img->interp) + 1 != ph[k].p_filesz) {
				snprintf(msg, msgn, "bad PT_INTERP");
				r = -ENOEXEC;
				goto out;
			}
			img->has_interp = 1;
		}
	}
	lo = gpage_down(lo);
	hi = gpage_up(hi);
	uint64_t bias = 0;
	if (eh.e_type == ET_DYN) {
		uint64_t base = is_interp ? mm_find_free(p, hi - lo, p->mmap_base) : GUEST_ET_DYN_BASE;
		if (!base || hi - lo > p->mmap_base - GUEST_MIN_ADDR) {
			snprintf(msg, msgn, "program too large (0x%llx bytes)", (unsigned long long)(hi - lo));
			r = -ENOMEM;
			goto out;
		}
		bias = base - lo;
	}
	if (lo + bias < GUEST_MIN_ADDR || hi + bias > GUEST_STACK_TOP - GUEST_STACK_SIZE ||
	    !mm_range_free(p, lo + bias, hi + bias)) {
		snprintf(msg, msgn, "segments at 0x%llx-0x%llx do not fit the address space",
			 (unsigned long long)(lo + bias), (unsigned long long)(hi + bias));
		r = -ENOEXEC;
		goto out;
	}
	img->bias = bias;
	img->entry = eh.e_entry + bias;
	img->phnum = eh.e_phnum;
	img->phdr = 0;
	img->end = hi + bias;
	for (unsigned k = 0; k < eh.e_phnum; k++) {
		const Elf64_Phdr *q = &ph[k];
		if (q->p_type == PT_PHDR)
			img->phdr = q->p_vaddr + bias;
		if (q->p_type != PT_LOAD)
			continue;
		if (!img->phdr && eh.e_phoff >= q->p_offset && eh.e_phoff - q->p_offset < q->p_filesz)
			img->phdr = q->p_vaddr + (eh.e_phoff - q->p_offset) + bias;
		unsigned prot = pflags_prot(q->p_flags);
		uint64_t s = gpage_down(q->p_vaddr + bias);
		uint64_t fend = q->p_vaddr + bias + q->p_filesz;
		uint64_t mend = gpage_up(q->p_vaddr + bias + q->p_memsz);
		uint64_t fpend = q->p_filesz ? gpage_up(fend) : s;
		if (q->p_filesz) {
			long m = mm_map(p, s, fpend - s, prot, 0, fd, gpage_down(q->p_offset), name);
			if (m < 0) {
				r = (int)m;
				snprintf(msg, msgn, "cannot map segment %u: %s", k, strerror(-r));
				goto out;
			}
			/* The rest of the last file page belongs to the bss: zero it
			 * (the host copy is private and writable whatever the guest
			 * protection). */
			if (q->p_memsz > q->p_filesz && (fend & (GPAGE - 1))) {
				unsigned pr;
				uint8_t *h = vmem_lookup(&p->vm, gpage_down(fend), &pr);
				if (h)
					memset(h + (fend & (GPAGE - 1)), 0, GPAGE - (fend & (GPAGE - 1)));
			}
		}
		if (mend > fpend) {
			long m = mm_map(p, fpend, mend - fpend, prot, 0, -1, 0, NULL);
			if (m < 0) {
				r = (int)m;
				snprintf(msg, msgn, "cannot map bss of segment %u: %s", k, strerror(-r));
				goto out;
			}
		}
	}
	r = 0;
out:
	free(ph);
	return r;
}

/* Parse "#!interp [arg]" from the first line; 0, or -ENOEXEC if not a script. */
static int parse_shebang(const char *buf, size_t n, char *interp, size_t in, char *arg, size_t an)
{
	if (n < 2 || buf[0] != '#' || buf[1] != '!')
		return -ENOEXEC;
	char line[ELF_HDR_BUF + 1];
	size_t len = 0;
	for (size_t k = 2; k < n && buf[k] != '\n' && len < ELF_HDR_BUF; k++)
		line[len++] = buf[k];
	line[len] = 0;
	char *s = line;
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s;
	while (*e && *e != ' ' && *e != '\t')
		e++;
	if (e == s)
		return -ENOEXEC;
	char *a = e;
	while (*a == ' ' || *a == '\t')
		a++;
	*e = 0;
	/* Linux passes everything after the interpreter, trailing blanks cut,
	 * as one argument */
	char *ae = a + strlen(a);
	while (ae > a && (ae[-1] == ' ' || ae[-1] == '\t' || ae[-1] == '\r'))
		*--ae = 0;
	if (strlen(s) >= in || strlen(a) >= an)
		return -ENAMETOOLONG;
	strcpy(interp, s);
	strcpy(arg, a);
	return 0;
}

static int can_exec(int fd)
{
	struct stat st;
	char lnk[64];
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EACCES;
	snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", fd);
	if (faccessat(AT_FDCWD, lnk, X_OK, AT_EACCESS) < 0)
		return -EACCES;
	return 0;
}

int elf_check_exec(int dirfd, const char *path)
{
	char cur[4096], interp[4096], arg[4096];
	snprintf(cur, sizeof(cur), "%s", path);
	for (int depth = 0;; depth++) {
		/* O_NONBLOCK: a FIFO named as a program must not hang the open
		 * (can_exec then refuses it, as execve does) */
		int fd = fs_openat(depth ? AT_FDCWD : dirfd, cur, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
		if (fd < 0)
			return fd;
		int r = can_exec(fd);
		char buf[ELF_HDR_BUF];
		ssize_t n = r ? 0 : pread(fd, buf, sizeof(buf), 0);
		if (!r && n < 0)
			r = -EIO;
		if (r) {
			close(fd);
			return r;
		}
		if (n >= 4 && !memcmp(buf, ELFMAG, SELFMAG)) {
			Elf64_Ehdr eh;
			Elf64_Phdr *ph;
			char msg[128];
			r = elf_parse(fd, &eh, &ph, msg, sizeof(msg));
			free(ph);
			close(fd);
			return r;
		}
		close(fd);
		r = parse_shebang(buf, (size_t)n, interp, sizeof(interp), arg, sizeof(arg));
		if (r)
			return r;
		if (depth >= ELF_MAX_SCRIPT_DEPTH)
			return -ELOOP;
		snprintf(cur, sizeof(cur), "%s", interp);
	}
}

/* ---- Initial stack ---- */

struct stk {
	uint8_t *buf; /* host image of [top - size, top) */
	uint64_t top, size, sp;
};

static uint64_t stk_push_bytes(struct stk *s, const void *d, size_t n)
{
	if (n > s->sp - (s->top - s->size))
		return 0;
	s->sp -= n;
	memcpy(s->buf + (s->sp - (s->top - s->size)), d, n);
	return s->sp;
}

static int build_stack(struct proc *p, struct gthread *t, const struct elf_img *main_img,
		       const struct elf_img *interp_img, const char *execfn, int argc, char **argv, char **envp)
{
	uint64_t top = GUEST_STACK_TOP, size = GUEST_STACK_SIZE;
	long m = mm_map(p, top - size, size, VMEM_R | VMEM_W, VMA_STACK, -1, 0, NULL);
	if (m < 0)
		return (int)m;
	unsigned pr;
	int envc = 0;
	while (envp && envp[envc])
		envc++;
	/* Work on a copy of the top 2 MiB + slack, then write it into the guest. */
	struct stk s = {.top = top, .size = STACK_MAX_ARGS + 65536, .sp = top};
	s.buf = calloc(1, s.size);
	uint64_t *ptrs = calloc((size_t)argc + (size_t)envc + 2, sizeof(uint64_t));
	if (!s.buf || !ptrs) {
		free(s.buf);
		free(ptrs);
		return -ENOMEM;
	}
	int r = -E2BIG;
	uint64_t zero = 0;
	stk_push_bytes(&s, &zero, 8);
	uint64_t fn = stk_push_bytes(&s, execfn, strlen(execfn) + 1);
	for (int k = envc - 1; k >= 0; k--)
		if (!(ptrs[argc + 1 + k] = stk_push_bytes(&s, envp[k], strlen(envp[k]) + 1)))
			goto out;
	for (int k = argc - 1; k >= 0; k--)
		if (!(ptrs[k] = stk_push_bytes(&s, argv[k], strlen(argv[k]) + 1)))
			goto out;
	uint64_t plat = stk_push_bytes(&s, "x86_64", 7);
	uint8_t rnd[16];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, 0x5a, sizeof(rnd));
	uint64_t rndp = stk_push_bytes(&s, rnd, sizeof(rnd));
	if (!fn || !plat || !rndp)
		goto out;

	uint32_t id[4];
	cpu_cpuid(&t->cpu, 1, 0, id);
	uint64_t aux[] = {
		AT_HWCAP,	id[3],
		AT_PAGESZ,	GPAGE,
		AT_CLKTCK,	(uint64_t)sysconf(_SC_CLK_TCK),
		AT_PHDR,	main_img->phdr,
		AT_PHENT,	sizeof(Elf64_Phdr),
		AT_PHNUM,	main_img->phnum,
		AT_BASE,	interp_img ? interp_img->bias : 0,
		AT_FLAGS,	0,
		AT_ENTRY,	main_img->entry,
		AT_UID,		(uint64_t)getuid(),
		AT_EUID,	(uint64_t)geteuid(),
		AT_GID,		(uint64_t)getgid(),
		AT_EGID,	(uint64_t)getegid(),
		AT_SECURE,	0,
		AT_RANDOM,	rndp,
		AT_HWCAP2,	0,
		AT_EXECFN,	fn,
		AT_PLATFORM,	plat,
		AT_MINSIGSTKSZ, 2048,
		AT_NULL,	0,
	};
	size_t nwords = 1 + (size_t)argc + 1 + (size_t)envc + 1 + sizeof(aux) / 8;
	uint64_t sp = (s.sp - nwords * 8) & ~15ull;
	if (sp < s.top - s.size)
		goto out;
	uint64_t *w = (uint64_t *)(s.buf + (sp - (s.top - s.size)));
	size_t k = 0;
	w[k++] = (uint64_t)argc;
	for (int a = 0; a < argc; a++)
		w[k++] = ptrs[a];
	w[k++] = 0;
	for (int e = 0; e < envc; e++)
		w[k++] = ptrs[argc + 1 + e];
	w[k++] = 0;
	memcpy(&w[k], aux, sizeof(aux));
	memcpy(p->auxv, aux, sizeof(aux));
	p->auxv_n = (int)(sizeof(aux) / 8);
	uint8_t *h = vmem_lookup(&p->vm, gpage_down(sp), &pr);
	if (!h)
		goto out;
	/* the stack is one host mapping: copy the used part in one go */
	memcpy(h + (sp & (GPAGE - 1)), s.buf + (sp - (s.top - s.size)), top - sp);
	t->cpu.s.gpr[R_RSP] = sp;
	r = 0;
out:
	free(s.buf);
	free(ptrs);
	return r;
}

static int start_fail(const char *path, const char *what)
{
	fprintf(stderr, "corral: %s: %s\n", path, what);
	return PROC_EXIT_NOEXEC;
}

int elf_start(struct proc *p, struct gthread *t, const char *path, int argc, char **argv, char **envp)
{
	char cur[4096], interp[4096], arg[4096], msg[256];
	char **av = argv;
	int ac = argc, depth = 0, fd;
	snprintf(cur, sizeof(cur), "%s", path);
	for (;;) {
		fd = fs_openat(AT_FDCWD, cur, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
		if (fd < 0) {
			fprintf(stderr, "corral: %s: %s\n", cur, strerror(-fd));
			return fd == -ENOENT || fd == -ENOTDIR ? PROC_EXIT_NOTFOUND : PROC_EXIT_NOEXEC;
		}
		int r = can_exec(fd);
		if (r) {
			close(fd);
			return start_fail(cur,
					  r == -EACCES ? "Permission denied (not an executable file)" : strerror(-r));
		}
		char buf[ELF_HDR_BUF];
		ssize_t n = pread(fd, buf, sizeof(buf), 0);
		if (n < 0)
			n = 0;
		if (n >= 4 && !memcmp(buf, ELFMAG, SELFMAG))
			break;
		close(fd);
		r = parse_shebang(buf, (size_t)n, interp, sizeof(interp), arg, sizeof(arg));
		if (r)
			return start_fail(cur, n >= 4 ? "not an x86-64 program (not an ELF file or script)"
						      : "not an x86-64 program (file too short)");
		if (depth++ >= ELF_MAX_SCRIPT_DEPTH)
			return start_fail(cur, "too many levels of #! interpreters");
		/* argv becomes: interp [arg] script args[1..] */
		char **nav = calloc((size_t)ac + 3, sizeof(char *));
		if (!nav)
			return start_fail(cur, "out of memory");
		int k = 0;
		nav[k++] = strdup(interp);
		if (arg[0])
			nav[k++] = strdup(arg);
		nav[k++] = strdup(cur);
		for (int j = 1; j < ac; j++)
			nav[k++] = av[j];
		nav[k] = NULL;
		script_argv[depth - 1] = nav;
		av = nav;
		ac = k;
		snprintf(cur, sizeof(cur), "%s", interp);
	}

	/* /proc/self/exe: the canonical guest path of what runs */
	char lnk[64], host[4096];
	snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", fd);
	ssize_t hl = readlink(lnk, host, sizeof(host) - 1);
	if (hl > 0) {
		host[hl] = 0;
		if (fs_guest_path(host, p->exe_path, sizeof(p->exe_path)))
			snprintf(p->exe_path, sizeof(p->exe_path), "%s", cur);
	} else {
		snprintf(p->exe_path, sizeof(p->exe_path), "%s", cur);
	}

	static struct elf_img main_img, interp_img;
	int r = elf_map(p, fd, p->exe_path, 0, &main_img, msg, sizeof(msg));
	close(fd);
	if (r)
		return start_fail(cur, msg);
	p->brk_start = p->brk_cur = gpage_up(main_img.end);
	uint64_t entry = main_img.entry;
	if (main_img.has_interp) {
		int ifd = fs_openat(AT_FDCWD, main_img.interp, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
		if (ifd < 0) {
			fprintf(stderr, "corral: %s: cannot open ELF interpreter %s: %s\n", cur, main_img.interp,
				strerror(-ifd));
			return PROC_EXIT_NOTFOUND;
		}
		char iname[4096];
		snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", ifd);
		hl = readlink(lnk, host, sizeof(host) - 1);
		if (hl <= 0 || (host[hl] = 0, fs_guest_path(host, iname, sizeof(iname))))
			snprintf(iname, sizeof(iname), "%s", main_img.interp);
		r = elf_map(p, ifd, iname, 1, &interp_img, msg, sizeof(msg));
		close(ifd);
		if (r) {
			fprintf(stderr, "corral: %s: ELF interpreter %s: %s\n", cur, main_img.interp, msg);
			return PROC_EXIT_NOEXEC;
		}
		entry = interp_img.entry;
	}
	r = build_stack(p, t, &main_img, main_img.has_interp ? &interp_img : NULL, path, ac, av, envp);
	if (r)
		return start_fail(cur, r == -E2BIG ? "argument list too long" : strerror(-r));
	t->cpu.s.rip = entry;
	return 0;
}
