/* The GDB stub (gdbstub.h): GDB's remote serial protocol over a socket,
 * turned into the VM's debugging calls (vm.h, "Debugging"). One thread
 * accepts a debugger at a time and serves it; the VM's own thread never
 * waits for it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "debug/gdbstub.h"

/* The largest packet we take or send (its payload), announced in
 * qSupported; anything longer is refused with a NAK. */
#define GDB_PACKET_MAX 0x4000
#define GDB_CMD_MAX 512 /* a monitor command's text */

struct gdbstub {
	struct vm *vm;
	int lfd, cfd;
	int quit[2]; /* a pipe: gdbstub_stop writes, the thread wakes */
	pthread_t thr;
	int thr_started;
	char addr[300];
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	/* The connection: receive state, acks, threads, what the VM does. */
	enum { RX_IDLE, RX_DATA, RX_CK1, RX_CK2 } rx;
	size_t in_len;
	int in_over; /* the packet outgrew in[]: NAK it */
	uint8_t in_sum, in_ck;
	int noack;
	unsigned gcpu, ccpu; /* Hg and Hc: the vCPU of register reads, of steps */
	int running;	     /* the VM runs for the debugger (after c, s, vCont) */
	int closing;	     /* detach or kill: end the connection */
	char in[GDB_PACKET_MAX + 1];
	char out[2 * GDB_PACKET_MAX + 8]; /* the last packet sent (framed), for a NAK */
	size_t out_len;
};

/* ---- Registers: GDB's x86-64 numbering (the target description below) ---- */

enum {
	GR_RIP = 16,
	GR_EFLAGS,
	GR_CS,
	GR_GS = 23,
	GR_ST0,
	GR_FCTRL = 32,
	GR_FOP = 39,
	GR_XMM0,
	GR_MXCSR = 56,
	GR_FS_BASE,
	GR_GS_BASE,
	GR_CR0,
	GR_CR2,
	GR_CR3,
	GR_CR4,
	GR_CR8,
	GR_EFER,
	GR_COUNT
};
/* GDB's order of the general registers, as corral's indices */
static const uint8_t gpr_map[16] = {R_RAX, R_RBX, R_RCX, R_RDX, R_RSI, R_RDI, R_RBP, R_RSP,
				    R_R8,  R_R9,  R_R10, R_R11, R_R12, R_R13, R_R14, R_R15};
/* GDB's order of the segment registers: cs ss ds es fs gs */
static const uint8_t seg_map[6] = {SEG_CS, SEG_SS, SEG_DS, SEG_ES, SEG_FS, SEG_GS};

static unsigned reg_size(unsigned n)
{
	if (n <= GR_RIP)
		return 8;
	if (n < GR_ST0)
		return 4;
	if (n < GR_FCTRL)
		return 10;
	if (n < GR_XMM0)
		return 4;
	if (n < GR_MXCSR)
		return 16;
	if (n == GR_MXCSR)
		return 4;
	return 8;
}

static struct cpu_f80 *x87_st(struct cpu_state *s, unsigned i)
{
	unsigned top = (s->x87.fsw >> 11) & 7;
	return &s->x87.st[(top + i) & 7];
}

/* Register n of s, little-endian, reg_size(n) bytes into out. */
static void reg_get(struct cpu_state *s, unsigned n, uint8_t *out)
{
	uint64_t v = 0;
	if (n < 16) {
		v = s->gpr[gpr_map[n]];
	} else if (n == GR_RIP) {
		v = s->rip;
	} else if (n == GR_EFLAGS) {
		v = s->rflags;
	} else if (n <= GR_GS) {
		v = s->seg[seg_map[n - GR_CS]].sel;
	} else if (n < GR_FCTRL) {
		const struct cpu_f80 *f = x87_st(s, n - GR_ST0);
		memcpy(out, &f->mant, 8);
		memcpy(out + 8, &f->sexp, 2);
		return;
	} else if (n <= GR_FOP) {
		const struct cpu_x87 *x = &s->x87;
		uint64_t fv[8] = {x->fcw,	    x->fsw,	  x->ftw,	    x->fip >> 32,
				  (uint32_t)x->fip, x->fdp >> 32, (uint32_t)x->fdp, x->fop};
		v = fv[n - GR_FCTRL];
	} else if (n < GR_MXCSR) {
		memcpy(out, s->xmm[n - GR_XMM0].b, 16);
		return;
	} else {
		uint64_t sv[] = {
			s->mxcsr, s->seg[SEG_FS].base, s->seg[SEG_GS].base, s->cr0, s->cr2, s->cr3, s->cr4, s->cr8,
			s->efer};
		v = sv[n - GR_MXCSR];
	}
	for (unsigned k = 0; k < reg_size(n); k++)
		out[k] = (uint8_t)(v >> (8 * k));
}

/* Sets register n of s from in (reg_size(n) bytes): 0, or -EINVAL for a
 * change corral does not make this way (CS, whose selector sets the
 * privilege level, and the x87 pointers' segment halves stay as they are).
 * The whole state is checked before it reaches the vCPU. */
static int reg_set(struct cpu_state *s, unsigned n, const uint8_t *in)
{
	uint64_t v = 0;
	unsigned sz = reg_size(n);
	if (sz <= 8)
		for (unsigned k = 0; k < sz; k++)
			v |= (uint64_t)in[k] << (8 * k);
	if (n < 16) {
		s->gpr[gpr_map[n]] = v;
	} else if (n == GR_RIP) {
		s->rip = v;
	} else if (n == GR_EFLAGS) {
		s->rflags = v;
	} else if (n <= GR_GS) {
		struct cpu_seg *g = &s->seg[seg_map[n - GR_CS]];
		if (v > 0xffff || (n == GR_CS && v != g->sel))
			return -EINVAL;
		g->sel = (uint16_t)v;
	} else if (n < GR_FCTRL) {
		struct cpu_f80 *f = x87_st(s, n - GR_ST0);
		memcpy(&f->mant, in, 8);
		memcpy(&f->sexp, in + 8, 2);
	} else if (n <= GR_FOP) {
		struct cpu_x87 *x = &s->x87;
		switch (n - GR_FCTRL) {
		case 0: x->fcw = (uint16_t)v; break;
		case 1: x->fsw = (uint16_t)v; break;
		case 2: x->ftw = (uint16_t)v; break;
		case 3: x->fip = (x->fip & 0xffffffffull) | (v << 32); break;
		case 4: x->fip = (x->fip & ~0xffffffffull) | v; break;
		case 5: x->fdp = (x->fdp & 0xffffffffull) | (v << 32); break;
		case 6: x->fdp = (x->fdp & ~0xffffffffull) | v; break;
		default: x->fop = (uint16_t)(v & 0x7ff); break;
		}
	} else if (n < GR_MXCSR) {
		memcpy(s->xmm[n - GR_XMM0].b, in, 16);
	} else {
		uint64_t *dst[] = {NULL,
				   &s->seg[SEG_FS].base,
				   &s->seg[SEG_GS].base,
				   &s->cr0,
				   &s->cr2,
				   &s->cr3,
				   &s->cr4,
				   &s->cr8,
				   &s->efer};
		if (n == GR_MXCSR)
			s->mxcsr = (uint32_t)v;
		else
			*dst[n - GR_MXCSR] = v;
	}
	return 0;
}

/* The target description (GDB's "Target Descriptions" appendix): the
 * standard i386 core, SSE and segments features, which GDB's amd64 code
 * knows by name, and the control registers in a feature of corral's own,
 * which GDB shows as plain registers ($cr3, info registers cr0). */
static const char target_xml[] =
	"<?xml version=\"1.0\"?>\n"
	"<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
	"<target version=\"1.0\">\n"
	"<architecture>i386:x86-64</architecture>\n"
	"<feature name=\"org.gnu.gdb.i386.core\">\n"
	"<flags id=\"i386_eflags\" size=\"4\">\n"
	"<field name=\"CF\" start=\"0\" end=\"0\"/><field name=\"\" start=\"1\" end=\"1\"/>\n"
	"<field name=\"PF\" start=\"2\" end=\"2\"/><field name=\"AF\" start=\"4\" end=\"4\"/>\n"
	"<field name=\"ZF\" start=\"6\" end=\"6\"/><field name=\"SF\" start=\"7\" end=\"7\"/>\n"
	"<field name=\"TF\" start=\"8\" end=\"8\"/><field name=\"IF\" start=\"9\" end=\"9\"/>\n"
	"<field name=\"DF\" start=\"10\" end=\"10\"/><field name=\"OF\" start=\"11\" end=\"11\"/>\n"
	"<field name=\"NT\" start=\"14\" end=\"14\"/><field name=\"RF\" start=\"16\" end=\"16\"/>\n"
	"<field name=\"VM\" start=\"17\" end=\"17\"/><field name=\"AC\" start=\"18\" end=\"18\"/>\n"
	"<field name=\"VIF\" start=\"19\" end=\"19\"/><field name=\"VIP\" start=\"20\" end=\"20\"/>\n"
	"<field name=\"ID\" start=\"21\" end=\"21\"/>\n"
	"</flags>\n"
	"<reg name=\"rax\" bitsize=\"64\" type=\"int64\" regnum=\"0\"/>\n"
	"<reg name=\"rbx\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"rcx\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"rdx\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"rsi\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"rdi\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"rbp\" bitsize=\"64\" type=\"data_ptr\"/>\n"
	"<reg name=\"rsp\" bitsize=\"64\" type=\"data_ptr\"/>\n"
	"<reg name=\"r8\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"r9\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"r10\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"r11\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"r12\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"r13\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"r14\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"r15\" bitsize=\"64\" type=\"int64\"/>\n"
	"<reg name=\"rip\" bitsize=\"64\" type=\"code_ptr\"/>\n"
	"<reg name=\"eflags\" bitsize=\"32\" type=\"i386_eflags\"/>\n"
	"<reg name=\"cs\" bitsize=\"32\" type=\"int32\"/>\n"
	"<reg name=\"ss\" bitsize=\"32\" type=\"int32\"/>\n"
	"<reg name=\"ds\" bitsize=\"32\" type=\"int32\"/>\n"
	"<reg name=\"es\" bitsize=\"32\" type=\"int32\"/>\n"
	"<reg name=\"fs\" bitsize=\"32\" type=\"int32\"/>\n"
	"<reg name=\"gs\" bitsize=\"32\" type=\"int32\"/>\n"
	"<reg name=\"st0\" bitsize=\"80\" type=\"i387_ext\"/>\n"
	"<reg name=\"st1\" bitsize=\"80\" type=\"i387_ext\"/>\n"
	"<reg name=\"st2\" bitsize=\"80\" type=\"i387_ext\"/>\n"
	"<reg name=\"st3\" bitsize=\"80\" type=\"i387_ext\"/>\n"
	"<reg name=\"st4\" bitsize=\"80\" type=\"i387_ext\"/>\n"
	"<reg name=\"st5\" bitsize=\"80\" type=\"i387_ext\"/>\n"
	"<reg name=\"st6\" bitsize=\"80\" type=\"i387_ext\"/>\n"
	"<reg name=\"st7\" bitsize=\"80\" type=\"i387_ext\"/>\n"
	"<reg name=\"fctrl\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
	"<reg name=\"fstat\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
	"<reg name=\"ftag\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
	"<reg name=\"fiseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
	"<reg name=\"fioff\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
	"<reg name=\"foseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
	"<reg name=\"fooff\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
	"<reg name=\"fop\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
	"</feature>\n"
	"<feature name=\"org.gnu.gdb.i386.sse\">\n"
	"<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>\n"
	"<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>\n"
	"<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>\n"
	"<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>\n"
	"<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>\n"
	"<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>\n"
	"<union id=\"vec128\">\n"
	"<field name=\"v4_float\" type=\"v4f\"/><field name=\"v2_double\" type=\"v2d\"/>\n"
	"<field name=\"v16_int8\" type=\"v16i8\"/><field name=\"v8_int16\" type=\"v8i16\"/>\n"
	"<field name=\"v4_int32\" type=\"v4i32\"/><field name=\"v2_int64\" type=\"v2i64\"/>\n"
	"<field name=\"uint128\" type=\"uint128\"/>\n"
	"</union>\n"
	"<flags id=\"i386_mxcsr\" size=\"4\">\n"
	"<field name=\"IE\" start=\"0\" end=\"0\"/><field name=\"DE\" start=\"1\" end=\"1\"/>\n"
	"<field name=\"ZE\" start=\"2\" end=\"2\"/><field name=\"OE\" start=\"3\" end=\"3\"/>\n"
	"<field name=\"UE\" start=\"4\" end=\"4\"/><field name=\"PE\" start=\"5\" end=\"5\"/>\n"
	"<field name=\"DAZ\" start=\"6\" end=\"6\"/><field name=\"IM\" start=\"7\" end=\"7\"/>\n"
	"<field name=\"DM\" start=\"8\" end=\"8\"/><field name=\"ZM\" start=\"9\" end=\"9\"/>\n"
	"<field name=\"OM\" start=\"10\" end=\"10\"/><field name=\"UM\" start=\"11\" end=\"11\"/>\n"
	"<field name=\"PM\" start=\"12\" end=\"12\"/><field name=\"FZ\" start=\"15\" end=\"15\"/>\n"
	"</flags>\n"
	"<reg name=\"xmm0\" bitsize=\"128\" type=\"vec128\" regnum=\"40\"/>\n"
	"<reg name=\"xmm1\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm2\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm3\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm4\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm5\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm6\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm7\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm8\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm9\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm10\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm11\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm12\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm13\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm14\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"xmm15\" bitsize=\"128\" type=\"vec128\"/>\n"
	"<reg name=\"mxcsr\" bitsize=\"32\" type=\"i386_mxcsr\" group=\"vector\"/>\n"
	"</feature>\n"
	"<feature name=\"org.gnu.gdb.i386.segments\">\n"
	"<reg name=\"fs_base\" bitsize=\"64\" type=\"int\" regnum=\"57\"/>\n"
	"<reg name=\"gs_base\" bitsize=\"64\" type=\"int\"/>\n"
	"</feature>\n"
	"<feature name=\"org.corral.x86-64.sys\">\n"
	"<reg name=\"cr0\" bitsize=\"64\" type=\"int\" group=\"system\" regnum=\"59\"/>\n"
	"<reg name=\"cr2\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
	"<reg name=\"cr3\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
	"<reg name=\"cr4\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
	"<reg name=\"cr8\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
	"<reg name=\"efer\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
	"</feature>\n"
	"</target>\n";

/* ---- Guest memory by virtual address ---- */

#define PTE_P 0x1ull
#define PTE_PS 0x80ull
#define PTE_ADDR 0x000ffffffffff000ull

/* The physical address behind virtual address va as s's page tables map
 * it (read only: no A/D bits): 0 or -EFAULT. Paging off, and 4-level
 * paging in long mode, as corral's CPU implements them. */
static int virt_to_phys(struct vm *vm, const struct cpu_state *s, uint64_t va, uint64_t *pa)
{
	if (!(s->cr0 & 0x80000000ull)) {
		*pa = (s->efer & 0x400) ? va : (va & 0xffffffffull);
		return 0;
	}
	if (!(s->efer & 0x400) || !(s->cr4 & 0x20))
		return -EFAULT;
	if ((uint64_t)((int64_t)(va << 16) >> 16) != va)
		return -EFAULT;
	uint64_t table = s->cr3 & PTE_ADDR;
	for (int level = 3; level >= 0; level--) {
		uint64_t e;
		unsigned idx = (unsigned)(va >> (12 + 9 * level)) & 511;
		if (vm_ram_read(vm, table + idx * 8ull, &e, 8) < 0 || !(e & PTE_P))
			return -EFAULT;
		if ((e & PTE_PS) && (level == 1 || level == 2)) {
			uint64_t mask = (1ull << (12 + 9 * level)) - 1;
			*pa = (e & PTE_ADDR & ~mask) | (va & mask);
			return 0;
		}
		if ((e & PTE_PS) && level == 3)
			return -EFAULT;
		table = e & PTE_ADDR;
	}
	*pa = table | (va & 0xfff);
	return 0;
}

/* Reads up to len bytes at va; returns how many could be read (stopping at
 * the first page that is not mapped to RAM). */
static size_t virt_read(struct vm *vm, const struct cpu_state *s, uint64_t va, uint8_t *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		size_t chunk = 0x1000 - ((va + done) & 0xfff);
		if (chunk > len - done)
			chunk = len - done;
		uint64_t pa;
		if (virt_to_phys(vm, s, va + done, &pa) < 0 || vm_ram_read(vm, pa, buf + done, chunk) < 0)
			break;
		done += chunk;
	}
	return done;
}

/* Writes all of len bytes at va, or nothing (-EFAULT). */
static int virt_write(struct vm *vm, const struct cpu_state *s, uint64_t va, const uint8_t *buf, size_t len)
{
	uint64_t pa;
	uint8_t probe;
	for (size_t done = 0; done < len;) { /* every page first */
		if (virt_to_phys(vm, s, va + done, &pa) < 0 || vm_ram_read(vm, pa, &probe, 1) < 0)
			return -EFAULT;
		done += 0x1000 - ((va + done) & 0xfff);
	}
	for (size_t done = 0; done < len;) {
		size_t chunk = 0x1000 - ((va + done) & 0xfff);
		if (chunk > len - done)
			chunk = len - done;
		if (virt_to_phys(vm, s, va + done, &pa) < 0 || vm_ram_write(vm, pa, buf + done, chunk) < 0)
			return -EFAULT;
		done += chunk;
	}
	return 0;
}

/* ---- Packets ---- */

static const char hexdig[] = "0123456789abcdef";

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A hex number of 1-16 digits at *p: 0 with *v and *p past it, or -1. */
static int parse_hex(const char **p, uint64_t *v)
{
	uint64_t x = 0;
	int n = 0;
	while (hexval(**p) >= 0) {
		if (++n > 16)
			return -1;
		x = x << 4 | (uint64_t)hexval(**p);
		(*p)++;
	}
	if (!n)
		return -1;
	*v = x;
	return 0;
}

/* n bytes from 2n hex digits: 0, or -1 if they are not all hex. */
static int hex_to_bytes(const char *p, uint8_t *out, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		int hi = hexval(p[2 * k]), lo = hi < 0 ? -1 : hexval(p[2 * k + 1]);
		if (lo < 0)
			return -1;
		out[k] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void bytes_to_hex(const uint8_t *in, size_t n, char *out)
{
	for (size_t k = 0; k < n; k++) {
		out[2 * k] = hexdig[in[k] >> 4];
		out[2 * k + 1] = hexdig[in[k] & 15];
	}
	out[2 * n] = 0;
}

static int send_all(struct gdbstub *g, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = send(g->cfd, buf, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			g->closing = 1;
			return -1;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Sends data (len bytes, already escaped where binary) as one packet. */
static void put_packet_len(struct gdbstub *g, const char *data, size_t len)
{
	if (len > GDB_PACKET_MAX * 2)
		len = GDB_PACKET_MAX * 2;
	uint8_t sum = 0;
	g->out[0] = '$';
	for (size_t k = 0; k < len; k++) {
		sum = (uint8_t)(sum + (uint8_t)data[k]);
		g->out[1 + k] = data[k];
	}
	g->out[1 + len] = '#';
	g->out[2 + len] = hexdig[sum >> 4];
	g->out[3 + len] = hexdig[sum & 15];
	g->out_len = 4 + len;
	send_all(g, g->out, g->out_len);
}

static void put_packet(struct gdbstub *g, const char *s)
{
	put_packet_len(g, s, strlen(s));
}

static void put_error(struct gdbstub *g, int err)
{
	char buf[8];
	snprintf(buf, sizeof(buf), "E%02x", err & 0xff);
	put_packet(g, buf);
}

/* Console output for a monitor command: "O" packets of hex text. */
static void put_output(struct gdbstub *g, const char *text)
{
	size_t len = strlen(text);
	char buf[1 + 2 * 1024 + 1];
	while (len) {
		size_t n = len > 1024 ? 1024 : len;
		buf[0] = 'O';
		bytes_to_hex((const uint8_t *)text, n, buf + 1);
		put_packet(g, buf);
		text += n;
		len -= n;
	}
}

static void put_outputf(struct gdbstub *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_outputf(struct gdbstub *g, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	put_output(g, buf);
}

/* ---- Stops and resumes ---- */

static void put_stop(struct gdbstub *g, const struct vm_debug_stop *st, int sig)
{
	char buf[96];
	unsigned thread = (st ? st->cpu : g->gcpu) + 1;
	const char *why = "";
	char what[48] = "";
	if (st) {
		switch (st->kind) {
		case CPU_DBG_BREAK: why = "swbreak:;"; break;
		case ENGINE_DEBUG_STOP_END:
			why = "replaylog:end;";
			break; /* GDB: "No more reverse-execution history" */
		case CPU_DBG_WATCH_W: snprintf(what, sizeof(what), "watch:%" PRIx64 ";", st->addr); break;
		case CPU_DBG_WATCH_R: snprintf(what, sizeof(what), "rwatch:%" PRIx64 ";", st->addr); break;
		case CPU_DBG_WATCH_RW: snprintf(what, sizeof(what), "awatch:%" PRIx64 ";", st->addr); break;
		default: break;
		}
	}
	snprintf(buf, sizeof(buf), "T%02xthread:%x;%s%s", sig, thread, why, what);
	put_packet(g, buf);
}

/* Stops the VM (Ctrl-C, an attach) and reports why: its own stop if one
 * came first, else SIGINT (attach: SIGTRAP). -1 if the VM has ended. */
static int halt_and_report(struct gdbstub *g, int sig)
{
	if (vm_debug_halt(g->vm) < 0)
		return -1;
	g->running = 0;
	struct vm_debug_stop st;
	if (vm_debug_take_stop(g->vm, &st)) {
		g->gcpu = g->ccpu = st.cpu;
		put_stop(g, &st, 5);
	} else {
		put_stop(g, NULL, sig);
	}
	return 0;
}

static void resume(struct gdbstub *g, int step_cpu)
{
	struct vm_debug_stop st;
	uint64_t count, total;
	vm_debug_take_stop(g->vm, &st); /* nothing old may count as the next stop */
	if (step_cpu >= 0 && vm_debug_position(g->vm, (unsigned)step_cpu, &count, &total) == 0) {
		/* a replay steps by running on until the vCPU has run one more
		 * instruction: the others take their turns as they did */
		struct vm_debug_run r = {.cpu = (unsigned)step_cpu, .to = count + 1, .hits = ENGINE_HITS_STOP};
		vm_debug_replay_run(g->vm, &r);
	} else {
		/* a replay's vCPU never steps alone: that would change the run */
		vm_debug_resume(g->vm, vm_debug_replaying(g->vm) ? -1 : step_cpu);
	}
	g->running = 1;
}

/* ---- Going backwards in a replay (bs, bc) ----
 * From the recording's start the replay reaches any earlier position
 * again (vm.h, "A replay's debugger"). GDB waits for the stop of a
 * reverse command as for a forward one; the stub answers when the
 * replay got there. */

/* Runs the replay as r says and waits until it stands again: 0 with *st,
 * or -1 if the VM ended (or the stub stops). */
static int rr_go(struct gdbstub *g, const struct vm_debug_run *r, struct vm_debug_stop *st)
{
	int nfd = vm_debug_notify_fd(g->vm);
	vm_debug_take_stop(g->vm, st);
	vm_debug_replay_run(g->vm, r);
	for (;;) {
		struct pollfd p[2] = {{.fd = nfd, .events = POLLIN}, {.fd = g->quit[0], .events = POLLIN}};
		if (poll(p, 2, 100) < 0 && errno != EINTR)
			return -1;
		if (p[1].revents)
			return -1;
		if (vm_debug_take_stop(g->vm, st))
			return vm_debug_halt(g->vm) < 0 ? -1 : 0;
		if (!vm_is_running(g->vm))
			return -1;
	}
}

/* The start of the recording: GDB's "no more reverse-execution history". */
static void put_stop_begin(struct gdbstub *g, unsigned cpu)
{
	char buf[64];
	g->gcpu = g->ccpu = cpu;
	snprintf(buf, sizeof(buf), "T05thread:%x;replaylog:begin;", cpu + 1);
	put_packet(g, buf);
}

static void rr_ended(struct gdbstub *g)
{
	put_packet(g, "W00");
	g->closing = 2;
}

/* A replay's writable disk goes back with the guest through its undo log;
 * once the log passed its limit (or could not grow) it no longer can. */
static int rr_refused(struct gdbstub *g)
{
	if (!vm_debug_replaying(g->vm) || vm_debug_can_go_back(g->vm))
		return 0;
	put_outputf(g, "corral: going back is no longer possible in this replay: a writable disk's undo log is "
		       "full (1 GiB of overwritten data)\n");
	put_error(g, 1);
	return 1;
}

/* bs: back to just after the current vCPU's previous instruction. */
static void cmd_reverse_step(struct gdbstub *g)
{
	uint64_t count, total;
	struct vm_debug_stop st;
	unsigned cpu = g->gcpu;
	if (rr_refused(g))
		return;
	if (vm_debug_position(g->vm, cpu, &count, &total) < 0) {
		put_error(g, 1);
		return;
	}
	if (count == 0) {
		put_stop_begin(g, cpu);
		return;
	}
	struct vm_debug_run r = {.rewind = 1, .cpu = cpu, .to = count - 1, .hits = ENGINE_HITS_IGNORE};
	if (rr_go(g, &r, &st) < 0) {
		rr_ended(g);
		return;
	}
	put_stop(g, &st, 5);
}

/* bc: back to the last breakpoint or watchpoint hit before here (a
 * watchpoint: just before the instruction that hit it), or to the start.
 * A first replay from the start finds that hit, a second goes there. */
static void cmd_reverse_continue(struct gdbstub *g)
{
	uint64_t count, total;
	struct vm_debug_stop st;
	struct engine_debug_hit hit;
	unsigned cpu = g->gcpu;
	if (rr_refused(g))
		return;
	if (vm_debug_position(g->vm, cpu, &count, &total) < 0) {
		put_error(g, 1);
		return;
	}
	/* The last hit before here: scanned from the newest snapshot before
	 * here up to here, then from the one before it up to that one, and so
	 * on back to the start, until a part has a hit. A part ends once this
	 * vCPU has run one instruction past the next part's start, so every
	 * vCPU has passed that snapshot's total and no hit below it is missed;
	 * hits at or above it were that part's. */
	struct vm_debug_run r = {.rewind = 1,
				 .cpu = cpu,
				 .to = count,
				 .hits = ENGINE_HITS_SCAN,
				 .scan_below = total,
				 .scan_from = total};
	int found = 0;
	while (total > 0) {
		if (rr_go(g, &r, &st) < 0) {
			rr_ended(g);
			return;
		}
		if ((found = vm_debug_last_hit(g->vm, &hit)) != 0)
			break;
		uint64_t from_total, from_count;
		vm_debug_run_start(g->vm, cpu, &from_total, &from_count);
		if (from_total == 0 || from_total >= r.scan_from)
			break; /* that part began at the start */
		r.scan_below = r.scan_from = from_total;
		r.to = from_count + 1;
	}
	if (!found) {
		r = (struct vm_debug_run){.rewind = 1, .cpu = 0, .to = 0, .hits = ENGINE_HITS_IGNORE};
		if (rr_go(g, &r, &st) < 0)
			rr_ended(g);
		else
			put_stop_begin(g, cpu);
		return;
	}
	if (hit.why.kind == CPU_DBG_BREAK)
		r = (struct vm_debug_run){.rewind = 1, .cpu = cpu, .to = count, .hits = ENGINE_HITS_SEEK, .seek = hit};
	else /* the instruction that hit a watchpoint is undone */
		r = (struct vm_debug_run){.rewind = 1, .cpu = hit.cpu, .to = hit.count - 1, .hits = ENGINE_HITS_IGNORE};
	if (rr_go(g, &r, &st) < 0) {
		rr_ended(g);
		return;
	}
	st = (struct vm_debug_stop){.cpu = hit.cpu, .kind = hit.why.kind, .addr = hit.why.addr};
	g->gcpu = g->ccpu = hit.cpu;
	put_stop(g, &st, 5);
}

/* A thread id of the protocol (hex; -1 all, 0 any) as a vCPU: 0 or -1. */
static int parse_thread(struct gdbstub *g, const char **p, int *cpu)
{
	uint64_t v;
	if (**p == '-' && (*p)[1] == '1') {
		*p += 2;
		*cpu = -1;
		return 0;
	}
	if (parse_hex(p, &v) < 0)
		return -1;
	if (v == 0) {
		*cpu = (int)g->gcpu;
		return 0;
	}
	if (v > vm_ncpus(g->vm))
		return -1;
	*cpu = (int)v - 1;
	return 0;
}

/* ---- Commands ---- */

static int get_regs(struct gdbstub *g, unsigned cpu, struct cpu_state *s)
{
	return vm_debug_get_regs(g->vm, cpu, s);
}

static void cmd_read_regs(struct gdbstub *g)
{
	struct cpu_state s;
	if (get_regs(g, g->gcpu, &s) < 0) {
		put_error(g, 1);
		return;
	}
	static char hex[2 * 1024];
	size_t pos = 0;
	for (unsigned n = 0; n < GR_COUNT; n++) {
		uint8_t b[16];
		reg_get(&s, n, b);
		bytes_to_hex(b, reg_size(n), hex + pos);
		pos += 2 * reg_size(n);
	}
	put_packet_len(g, hex, pos);
}

/* A replay's state is the recording's: nothing is written into it. */
static int replay_refuses(struct gdbstub *g)
{
	if (!vm_debug_replaying(g->vm))
		return 0;
	put_error(g, 1); /* EPERM */
	return 1;
}

static void cmd_write_regs(struct gdbstub *g, const char *p)
{
	struct cpu_state s;
	if (replay_refuses(g))
		return;
	size_t want = 0;
	for (unsigned n = 0; n < GR_COUNT; n++)
		want += 2 * reg_size(n);
	if (strlen(p) != want || get_regs(g, g->gcpu, &s) < 0) {
		put_error(g, 22);
		return;
	}
	for (unsigned n = 0; n < GR_COUNT; n++) {
		uint8_t b[16];
		if (hex_to_bytes(p, b, reg_size(n)) < 0 || reg_set(&s, n, b) < 0) {
			put_error(g, 22);
			return;
		}
		p += 2 * reg_size(n);
	}
	put_packet(g, vm_debug_set_regs(g->vm, g->gcpu, &s) < 0 ? "E16" : "OK");
}

static void cmd_read_reg(struct gdbstub *g, const char *p)
{
	uint64_t n;
	struct cpu_state s;
	if (parse_hex(&p, &n) < 0 || *p) {
		put_error(g, 22);
		return;
	}
	if (n >= GR_COUNT) { /* not ours: GDB then knows it is unavailable */
		put_error(g, 14);
		return;
	}
	if (get_regs(g, g->gcpu, &s) < 0) {
		put_error(g, 1);
		return;
	}
	uint8_t b[16];
	char hex[33];
	reg_get(&s, (unsigned)n, b);
	bytes_to_hex(b, reg_size((unsigned)n), hex);
	put_packet(g, hex);
}

static void cmd_write_reg(struct gdbstub *g, const char *p)
{
	uint64_t n;
	struct cpu_state s;
	uint8_t b[16];
	if (replay_refuses(g))
		return;
	if (parse_hex(&p, &n) < 0 || *p++ != '=' || n >= GR_COUNT || strlen(p) != 2 * reg_size((unsigned)n) ||
	    hex_to_bytes(p, b, reg_size((unsigned)n)) < 0) {
		put_error(g, 22);
		return;
	}
	if (get_regs(g, g->gcpu, &s) < 0 || reg_set(&s, (unsigned)n, b) < 0 ||
	    vm_debug_set_regs(g->vm, g->gcpu, &s) < 0) {
		put_error(g, 22);
		return;
	}
	put_packet(g, "OK");
}

/* "ADDR,LEN" then what follows: 0 with p after it, or -1. */
static int parse_addr_len(const char **p, uint64_t *addr, uint64_t *len)
{
	if (parse_hex(p, addr) < 0 || *(*p)++ != ',' || parse_hex(p, len) < 0)
		return -1;
	return 0;
}

static void cmd_read_mem(struct gdbstub *g, const char *p)
{
	uint64_t addr, len;
	struct cpu_state s;
	if (parse_addr_len(&p, &addr, &len) < 0 || *p) {
		put_error(g, 22);
		return;
	}
	if (len > GDB_PACKET_MAX / 2)
		len = GDB_PACKET_MAX / 2;
	if (get_regs(g, g->gcpu, &s) < 0) {
		put_error(g, 1);
		return;
	}
	static uint8_t buf[GDB_PACKET_MAX / 2];
	static char hex[GDB_PACKET_MAX + 1];
	size_t got = virt_read(g->vm, &s, addr, buf, len);
	if (!got && len) {
		put_error(g, 14);
		return;
	}
	bytes_to_hex(buf, got, hex);
	put_packet(g, hex);
}

/* M (hex data) and X (binary, escaped with '}'). */
static void cmd_write_mem(struct gdbstub *g, const char *p, size_t plen, int binary)
{
	const char *end = p + plen;
	uint64_t addr, len;
	struct cpu_state s;
	static uint8_t buf[GDB_PACKET_MAX];
	if (parse_addr_len(&p, &addr, &len) < 0 || *p++ != ':' || len > sizeof(buf)) {
		put_error(g, 22);
		return;
	}
	size_t n = 0;
	if (binary) {
		while (p < end && n < len) {
			uint8_t c = (uint8_t)*p++;
			if (c == '}') {
				if (p == end)
					break;
				c = (uint8_t)(*p++ ^ 0x20);
			}
			buf[n++] = c;
		}
		if (n != len || p != end) {
			put_error(g, 22);
			return;
		}
	} else {
		if ((size_t)(end - p) != 2 * len || hex_to_bytes(p, buf, len) < 0) {
			put_error(g, 22);
			return;
		}
		n = len;
	}
	if (!n) { /* X addr,0: GDB asks whether X works */
		put_packet(g, "OK");
		return;
	}
	if (replay_refuses(g))
		return;
	if (get_regs(g, g->gcpu, &s) < 0) {
		put_error(g, 1);
		return;
	}
	put_packet(g, virt_write(g->vm, &s, addr, buf, n) < 0 ? "E0e" : "OK");
}

/* Z/z TYPE,ADDR,KIND: breakpoints (0 software, 1 hardware: the same
 * here, neither patches guest memory) and watchpoints (2 write, 3 read,
 * 4 access; KIND is the length). */
static void cmd_breakpoint(struct gdbstub *g, const char *p, int insert)
{
	uint64_t type, addr, kind;
	if (parse_hex(&p, &type) < 0 || *p++ != ',' || parse_addr_len(&p, &addr, &kind) < 0 || (*p && *p != ';')) {
		put_error(g, 22);
		return;
	}
	int r;
	if (type <= 1) {
		r = vm_debug_set_bp(g->vm, addr, insert);
	} else if (type <= 4) {
		static const int kinds[] = {CPU_DBG_WATCH_W, CPU_DBG_WATCH_R, CPU_DBG_WATCH_RW};
		r = vm_debug_set_wp(g->vm, kinds[type - 2], addr, kind, insert);
	} else {
		put_packet(g, ""); /* not supported */
		return;
	}
	if (r == -ENOENT)
		r = 0; /* removing what is not there: done */
	if (r < 0)
		put_error(g, -r);
	else
		put_packet(g, "OK");
}

/* c/s [ADDR], C/S SIG[;ADDR]: the whole VM, or one vCPU one instruction. */
static void cmd_resume(struct gdbstub *g, const char *p, int step, int with_sig)
{
	uint64_t v;
	if (with_sig && *p) {
		if (parse_hex(&p, &v) < 0) {
			put_error(g, 22);
			return;
		}
		if (*p == ';')
			p++;
	}
	if (*p) {
		struct cpu_state s;
		if (parse_hex(&p, &v) < 0 || *p || get_regs(g, g->gcpu, &s) < 0) {
			put_error(g, 22);
			return;
		}
		s.rip = v;
		if (vm_debug_set_regs(g->vm, g->gcpu, &s) < 0) {
			put_error(g, 22);
			return;
		}
	}
	resume(g, step ? (int)g->gcpu : -1);
}

/* vCont;ACTION[:THREAD]...: s/S on a thread steps it alone; c/C runs all. */
static void cmd_vcont(struct gdbstub *g, const char *p)
{
	int step = -2; /* -2: no step asked */
	while (*p == ';') {
		p++;
		char a = *p++;
		uint64_t sig;
		if ((a == 'C' || a == 'S') && parse_hex(&p, &sig) < 0) {
			put_error(g, 22);
			return;
		}
		if (a != 'c' && a != 'C' && a != 's' && a != 'S') {
			put_error(g, 22);
			return;
		}
		int cpu = -1;
		if (*p == ':') {
			p++;
			if (parse_thread(g, &p, &cpu) < 0) {
				put_error(g, 22);
				return;
			}
		}
		if ((a == 's' || a == 'S') && step == -2)
			step = cpu >= 0 ? cpu : (int)g->gcpu;
	}
	if (*p) {
		put_error(g, 22);
		return;
	}
	if (step >= 0)
		g->gcpu = (unsigned)step;
	resume(g, step >= 0 ? step : -1);
}

static void cmd_xfer(struct gdbstub *g, const char *p)
{
	const char *pre = "features:read:target.xml:";
	uint64_t off, len;
	if (strncmp(p, pre, strlen(pre))) {
		put_packet(g, strncmp(p, "features:read:", 14) ? "" : "E00");
		return;
	}
	p += strlen(pre);
	if (parse_addr_len(&p, &off, &len) < 0 || *p) {
		put_error(g, 22);
		return;
	}
	size_t size = sizeof(target_xml) - 1;
	if (off >= size) {
		put_packet(g, "l");
		return;
	}
	if (len > GDB_PACKET_MAX / 2 - 1)
		len = GDB_PACKET_MAX / 2 - 1;
	size_t n = size - off < len ? size - off : len;
	static char buf[GDB_PACKET_MAX + 2];
	size_t o = 0;
	buf[o++] = off + n < size ? 'm' : 'l';
	for (size_t k = 0; k < n; k++) {
		char c = target_xml[off + k];
		if (c == '#' || c == '$' || c == '}' || c == '*') {
			buf[o++] = '}';
			c ^= 0x20;
		}
		buf[o++] = c;
	}
	put_packet_len(g, buf, o);
}

/* ---- monitor commands ---- */

static void mon_regs(struct gdbstub *g)
{
	struct cpu_state s;
	if (get_regs(g, g->gcpu, &s) < 0) {
		put_output(g, "the VM does not stand\n");
		return;
	}
	static const char *names[16] = {"RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI",
					"R8",  "R9",  "R10", "R11", "R12", "R13", "R14", "R15"};
	static const char *segs[6] = {"ES", "CS", "SS", "DS", "FS", "GS"};
	char buf[2048];
	int o = snprintf(buf, sizeof(buf), "vCPU %u\n", g->gcpu);
	for (unsigned k = 0; k < 16; k++)
		o += snprintf(buf + o, sizeof(buf) - (size_t)o, "%-3s=%016" PRIx64 "%s", names[k], s.gpr[k],
			      k % 4 == 3 ? "\n" : " ");
	o += snprintf(buf + o, sizeof(buf) - (size_t)o, "RIP=%016" PRIx64 " RFL=%08" PRIx64 "\n", s.rip, s.rflags);
	for (unsigned k = 0; k < 6; k++)
		o += snprintf(buf + o, sizeof(buf) - (size_t)o, "%s =%04x %016" PRIx64 " %08x %04x\n", segs[k],
			      s.seg[k].sel, s.seg[k].base, s.seg[k].limit, s.seg[k].attr);
	o += snprintf(buf + o, sizeof(buf) - (size_t)o,
		      "LDT=%04x %016" PRIx64 " %08x %04x\nTR =%04x %016" PRIx64 " %08x %04x\n", s.ldtr.sel, s.ldtr.base,
		      s.ldtr.limit, s.ldtr.attr, s.tr.sel, s.tr.base, s.tr.limit, s.tr.attr);
	o += snprintf(buf + o, sizeof(buf) - (size_t)o, "GDT=     %016" PRIx64 " %08x\nIDT=     %016" PRIx64 " %08x\n",
		      s.gdtr.base, s.gdtr.limit, s.idtr.base, s.idtr.limit);
	o += snprintf(buf + o, sizeof(buf) - (size_t)o,
		      "CR0=%08" PRIx64 " CR2=%016" PRIx64 " CR3=%016" PRIx64 " CR4=%08" PRIx64 "\n", s.cr0, s.cr2,
		      s.cr3, s.cr4);
	o += snprintf(buf + o, sizeof(buf) - (size_t)o,
		      "CR8=%" PRIx64 " EFER=%016" PRIx64 " KERNEL_GS_BASE=%016" PRIx64 " LSTAR=%016" PRIx64 "\n", s.cr8,
		      s.efer, s.msr.kernel_gs_base, s.msr.lstar);
	for (unsigned k = 0; k < 8; k++)
		if (k != 4 && k != 5)
			o += snprintf(buf + o, sizeof(buf) - (size_t)o, "DR%u=%016" PRIx64 "%s", k, s.dr[k],
				      k == 3 || k == 7 ? "\n" : " ");
	snprintf(buf + o, sizeof(buf) - (size_t)o, "MXCSR=%08x FCW=%04x FSW=%04x\n", s.mxcsr, s.x87.fcw, s.x87.fsw);
	put_output(g, buf);
}

#define MON_PHYS_MAX 4096

/* phys ADDR [LEN]: guest physical memory, 16 bytes a line. */
static void mon_phys(struct gdbstub *g, const char *args)
{
	char *end;
	errno = 0;
	uint64_t addr = strtoull(args, &end, 0), len = 64;
	if (end == args || errno) {
		put_output(g, "usage: monitor phys ADDR [LEN]\n");
		return;
	}
	args = end;
	while (*args == ' ')
		args++;
	if (*args) {
		len = strtoull(args, &end, 0);
		if (end == args || *end || errno || !len) {
			put_output(g, "usage: monitor phys ADDR [LEN]\n");
			return;
		}
	}
	if (len > MON_PHYS_MAX)
		len = MON_PHYS_MAX;
	static uint8_t buf[MON_PHYS_MAX];
	if (addr + len < addr || vm_ram_read(g->vm, addr, buf, len) < 0) {
		put_outputf(g, "0x%" PRIx64 "+%" PRIu64 ": not guest RAM\n", addr, len);
		return;
	}
	char line[128];
	for (uint64_t k = 0; k < len; k += 16) {
		int o = snprintf(line, sizeof(line), "%016" PRIx64 ":", addr + k);
		for (uint64_t j = k; j < k + 16 && j < len; j++)
			o += snprintf(line + o, sizeof(line) - (size_t)o, " %02x", buf[j]);
		snprintf(line + o, sizeof(line) - (size_t)o, "\n");
		put_output(g, line);
	}
}

static void cmd_monitor(struct gdbstub *g, const char *p)
{
	size_t n = strlen(p);
	char cmd[GDB_CMD_MAX + 1];
	if (n % 2 || n / 2 > GDB_CMD_MAX || hex_to_bytes(p, (uint8_t *)cmd, n / 2) < 0) {
		put_error(g, 22);
		return;
	}
	cmd[n / 2] = 0;
	if (memchr(cmd, 0, n / 2)) {
		put_error(g, 22);
		return;
	}
	char *c = cmd;
	while (*c == ' ')
		c++;
	for (char *e = c + strlen(c); e > c && e[-1] == ' ';)
		*--e = 0;
	if (!strcmp(c, "help") || !*c) {
		put_output(g, "info registers   all registers of the current vCPU (thread), control and\n"
			      "                 descriptor-table registers included\n"
			      "phys ADDR [LEN]  guest physical memory (at most 4096 bytes)\n"
			      "tlb flush        every vCPU drops its TLB and decoded code\n"
			      "snapshot DIR     save the VM to DIR (corral restore DIR)\n");
	} else if (!strcmp(c, "info registers") || !strcmp(c, "info regs")) {
		mon_regs(g);
	} else if (!strncmp(c, "phys ", 5)) {
		mon_phys(g, c + 5);
	} else if (!strcmp(c, "tlb flush")) {
		put_output(g, vm_debug_flush(g->vm) < 0 ? "the VM does not stand\n" : "TLB flushed\n");
	} else if (!strncmp(c, "snapshot ", 9)) {
		char err[512];
		const char *dir = c + 9;
		while (*dir == ' ')
			dir++;
		if (vm_save(g->vm, dir, err, sizeof(err)) < 0)
			put_outputf(g, "snapshot: %s\n", err);
		else
			put_outputf(g, "saved to %s\n", dir);
	} else {
		put_outputf(g, "unknown command '%s' (monitor help lists them)\n", c);
	}
	put_packet(g, "OK");
}

static void handle_packet(struct gdbstub *g, char *p, size_t len)
{
	p[len] = 0;
	if (strlen(p) != len && p[0] != 'X') { /* a NUL inside: nothing of ours has one */
		put_error(g, 22);
		return;
	}
	if (g->running && p[0] != '?') { /* all-stop: GDB waits for the stop first */
		put_error(g, 16);
		return;
	}
	char tmp[128];
	switch (p[0]) {
	case '?':
		if (!g->running)
			put_stop(g, NULL, 5);
		return;
	case 'g': cmd_read_regs(g); return;
	case 'G': cmd_write_regs(g, p + 1); return;
	case 'p': cmd_read_reg(g, p + 1); return;
	case 'P': cmd_write_reg(g, p + 1); return;
	case 'm': cmd_read_mem(g, p + 1); return;
	case 'M': cmd_write_mem(g, p + 1, len - 1, 0); return;
	case 'X': cmd_write_mem(g, p + 1, len - 1, 1); return;
	case 'Z': cmd_breakpoint(g, p + 1, 1); return;
	case 'z': cmd_breakpoint(g, p + 1, 0); return;
	case 'c': cmd_resume(g, p + 1, 0, 0); return;
	case 's': cmd_resume(g, p + 1, 1, 0); return;
	case 'C': cmd_resume(g, p + 1, 0, 1); return;
	case 'S': cmd_resume(g, p + 1, 1, 1); return;
	case 'b':
		if (!vm_debug_replaying(g->vm) || (strcmp(p, "bs") && strcmp(p, "bc")))
			put_packet(g, ""); /* only a replay goes backwards */
		else if (p[1] == 's')
			cmd_reverse_step(g);
		else
			cmd_reverse_continue(g);
		return;
	case 'H': {
		const char *q = p + 2;
		int cpu;
		if ((p[1] != 'g' && p[1] != 'c') || parse_thread(g, &q, &cpu) < 0 || *q) {
			put_error(g, 22);
			return;
		}
		if (cpu >= 0) {
			if (p[1] == 'g')
				g->gcpu = (unsigned)cpu;
			else
				g->ccpu = (unsigned)cpu;
		}
		put_packet(g, "OK");
		return;
	}
	case 'T': {
		const char *q = p + 1;
		int cpu;
		put_packet(g, parse_thread(g, &q, &cpu) < 0 || *q || cpu < 0 ? "E16" : "OK");
		return;
	}
	case 'D':
		put_packet(g, "OK");
		g->closing = 1;
		return;
	case 'k':
		vm_stop(g->vm);
		g->closing = 2;
		return;
	case 'v':
		if (!strcmp(p, "vCont?")) {
			put_packet(g, "vCont;c;C;s;S");
		} else if (!strncmp(p, "vCont;", 6)) {
			cmd_vcont(g, p + 5);
		} else if (!strncmp(p, "vKill", 5)) {
			put_packet(g, "OK");
			vm_stop(g->vm);
			g->closing = 2;
		} else {
			put_packet(g, "");
		}
		return;
	case 'q':
		if (!strncmp(p, "qSupported", 10)) {
			snprintf(tmp, sizeof(tmp),
				 "PacketSize=%x;qXfer:features:read+;QStartNoAckMode+;swbreak+;hwbreak+%s",
				 GDB_PACKET_MAX, vm_debug_replaying(g->vm) ? ";ReverseStep+;ReverseContinue+" : "");
			put_packet(g, tmp);
		} else if (!strncmp(p, "qXfer:", 6)) {
			cmd_xfer(g, p + 6);
		} else if (!strcmp(p, "qC")) {
			snprintf(tmp, sizeof(tmp), "QC%x", g->gcpu + 1);
			put_packet(g, tmp);
		} else if (!strncmp(p, "qAttached", 9)) {
			put_packet(g, "1");
		} else if (!strcmp(p, "qfThreadInfo")) {
			char list[VM_MAX_CPUS * 3 + 2];
			int o = snprintf(list, sizeof(list), "m");
			for (unsigned k = 0; k < vm_ncpus(g->vm) && k < VM_MAX_CPUS; k++)
				o += snprintf(list + o, sizeof(list) - (size_t)o, "%s%x", k ? "," : "", k + 1);
			put_packet(g, list);
		} else if (!strcmp(p, "qsThreadInfo")) {
			put_packet(g, "l");
		} else if (!strncmp(p, "qThreadExtraInfo,", 17)) {
			const char *q = p + 17;
			int cpu;
			if (parse_thread(g, &q, &cpu) < 0 || *q || cpu < 0) {
				put_error(g, 22);
				return;
			}
			char name[32], hex[65];
			snprintf(name, sizeof(name), "vCPU %d", cpu);
			bytes_to_hex((const uint8_t *)name, strlen(name), hex);
			put_packet(g, hex);
		} else if (!strncmp(p, "qRcmd,", 6)) {
			cmd_monitor(g, p + 6);
		} else {
			put_packet(g, "");
		}
		return;
	case 'Q':
		if (!strcmp(p, "QStartNoAckMode")) {
			put_packet(g, "OK");
			g->noack = 1;
		} else {
			put_packet(g, "");
		}
		return;
	default: put_packet(g, ""); return;
	}
}

/* Feeds received bytes through the framing ($data#ck, acks, Ctrl-C). */
static void receive(struct gdbstub *g, const uint8_t *buf, size_t n)
{
	for (size_t k = 0; k < n && !g->closing; k++) {
		uint8_t c = buf[k];
		switch (g->rx) {
		case RX_IDLE:
			if (c == '$') {
				g->rx = RX_DATA;
				g->in_len = 0;
				g->in_over = 0;
				g->in_sum = 0;
			} else if (c == 0x03) {
				if (g->running && halt_and_report(g, 2) < 0)
					g->closing = 1;
			} else if (c == '-' && !g->noack && g->out_len) {
				send_all(g, g->out, g->out_len);
			}
			break; /* '+' and noise between packets: nothing to do */
		case RX_DATA:
			if (c == '$') { /* a new start: the old packet was cut off */
				g->in_len = 0;
				g->in_over = 0;
				g->in_sum = 0;
			} else if (c == '#') {
				g->rx = RX_CK1;
			} else {
				g->in_sum = (uint8_t)(g->in_sum + c);
				if (g->in_len < GDB_PACKET_MAX)
					g->in[g->in_len++] = (char)c;
				else
					g->in_over = 1;
			}
			break;
		case RX_CK1:
			g->in_ck = (uint8_t)(hexval(c) < 0 ? 0 : hexval(c));
			g->in_over |= hexval(c) < 0; /* a bad checksum digit: NAK */
			g->rx = RX_CK2;
			break;
		case RX_CK2:
			g->rx = RX_IDLE;
			if (hexval(c) < 0 || g->in_over || (uint8_t)(g->in_ck << 4 | hexval(c)) != g->in_sum) {
				if (!g->noack)
					send_all(g, "-", 1);
				break;
			}
			if (!g->noack)
				send_all(g, "+", 1);
			handle_packet(g, g->in, g->in_len);
			break;
		}
	}
}

/* One debugger, from its attach to its detach or its connection's end. */
static void serve(struct gdbstub *g)
{
	g->rx = RX_IDLE;
	g->noack = 0;
	g->gcpu = g->ccpu = 0;
	g->running = 1;
	g->closing = 0;
	g->out_len = 0;
	int nfd = vm_debug_notify_fd(g->vm);
	/* GDB expects a stopped target when it attaches */
	if (vm_debug_halt(g->vm) < 0)
		return;
	g->running = 0;
	vm_debug_attach(g->vm, 1);
	struct vm_debug_stop st;
	vm_debug_take_stop(g->vm, &st);
	uint8_t buf[4096];
	while (!g->closing) {
		struct pollfd p[3] = {{.fd = g->cfd, .events = POLLIN},
				      {.fd = g->quit[0], .events = POLLIN},
				      {.fd = g->running ? nfd : -1, .events = POLLIN}};
		int r = poll(p, 3, g->running ? 100 : -1);
		if (r < 0 && errno != EINTR)
			break;
		if (g->running && !vm_is_running(g->vm)) {
			put_packet(g, "W00"); /* the VM has ended */
			g->closing = 2;
			break;
		}
		if (p[1].revents)
			break;
		if (g->running && (p[2].revents & POLLIN) && vm_debug_take_stop(g->vm, &st)) {
			if (vm_debug_halt(g->vm) < 0)
				break;
			g->running = 0;
			g->gcpu = g->ccpu = st.cpu;
			put_stop(g, &st, 5);
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(g->cfd, buf, sizeof(buf), 0);
			if (n <= 0 && (n == 0 || errno != EINTR))
				break;
			if (n > 0)
				receive(g, buf, (size_t)n);
		}
	}
	vm_debug_attach(g->vm, 0);
	if (g->closing != 2 && vm_debug_halt(g->vm) == 0) {
		/* the debugger goes: its breakpoints go with it, the VM runs on */
		vm_debug_clear(g->vm);
		vm_debug_take_stop(g->vm, &st);
		vm_debug_resume(g->vm, -1);
	}
}

static void *stub_thread(void *arg)
{
	struct gdbstub *g = arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = g->lfd, .events = POLLIN}, {.fd = g->quit[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		g->cfd = accept4(g->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (g->cfd < 0)
			continue;
		int one = 1;
		setsockopt(g->cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on unix sockets: fine */
		/* a debugger that stops reading cannot hold the stub (and corral's
		 * exit) for good */
		struct timeval tv = {.tv_sec = 10};
		setsockopt(g->cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		serve(g);
		close(g->cfd);
		g->cfd = -1;
	}
	return NULL;
}

/* ---- Setting up ---- */

static int listen_tcp(struct gdbstub *g, const char *host, const char *port, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
			*res, *ai;
	int r = getaddrinfo(host, port, &hints, &res);
	if (r) {
		snprintf(err, errlen, "--gdb tcp:%s:%s: %s", host, port, gai_strerror(r));
		return -EINVAL;
	}
	int e = EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1) < 0) {
			e = errno;
			close(fd);
			continue;
		}
		struct sockaddr_storage sa;
		socklen_t sl = sizeof(sa);
		unsigned bound = 0;
		if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
			bound = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
							       : ((struct sockaddr_in *)&sa)->sin_port);
		snprintf(g->addr, sizeof(g->addr), "tcp:%s:%u", host, bound);
		g->lfd = fd;
		freeaddrinfo(res);
		return 0;
	}
	freeaddrinfo(res);
	snprintf(err, errlen, "--gdb tcp:%s:%s: %s", host, port, strerror(e));
	return -e;
}

static int listen_unix(struct gdbstub *g, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "--gdb unix:%s: the path must have 1 to %zu characters", path,
			 sizeof(sa.sun_path) - 1);
		return -EINVAL;
	}
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "--gdb unix:%s: exists and is not a socket", path);
			return -EEXIST;
		}
		unlink(path); /* a socket left by an earlier run */
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "--gdb unix:%s: %s", path, strerror(e));
		return -e;
	}
	g->lfd = fd;
	snprintf(g->unix_path, sizeof(g->unix_path), "%s", path);
	snprintf(g->addr, sizeof(g->addr), "unix:%s", path);
	return 0;
}

/* tcp:[ADDR]:PORT, unix:PATH or PORT. */
static int stub_listen(struct gdbstub *g, const char *spec, char *err, size_t errlen)
{
	if (!strncmp(spec, "unix:", 5))
		return listen_unix(g, spec + 5, err, errlen);
	const char *hostport = spec;
	if (!strncmp(spec, "tcp:", 4))
		hostport = spec + 4;
	else if (strspn(spec, "0123456789") != strlen(spec) || !*spec)
		goto bad;
	const char *colon = strrchr(hostport, ':');
	char host[256];
	const char *port = colon ? colon + 1 : hostport;
	size_t hl = colon ? (size_t)(colon - hostport) : 0;
	if (hl >= sizeof(host) || !*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
	    atoi(port) > 65535)
		goto bad;
	memcpy(host, hostport, hl);
	host[hl] = 0;
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1] */
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	/* no address: this host only (a debugger owns the VM) */
	return listen_tcp(g, host[0] ? host : "127.0.0.1", port, err, errlen);
bad:
	snprintf(err, errlen, "--gdb '%s': must be tcp:[ADDR]:PORT, unix:PATH or a port number", spec);
	return -EINVAL;
}

int gdbstub_start(struct vm *vm, const char *spec, int wait, struct gdbstub **out, char *err, size_t errlen)
{
	*out = NULL;
	struct gdbstub *g = calloc(1, sizeof(*g));
	if (!g) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	g->vm = vm;
	g->lfd = g->cfd = g->quit[0] = g->quit[1] = -1;
	int r = vm_debug_enable(vm, err, errlen);
	if (r < 0)
		goto err_free;
	if ((r = stub_listen(g, spec, err, errlen)) < 0)
		goto err_free;
	if (pipe2(g->quit, O_CLOEXEC) < 0) {
		r = -errno;
		snprintf(err, errlen, "pipe: %s", strerror(-r));
		goto err_listen;
	}
	if (wait)
		vm_pause_async(vm); /* the first instruction waits for the debugger */
	r = -pthread_create(&g->thr, NULL, stub_thread, g);
	if (r < 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(-r));
		goto err_pipe;
	}
	g->thr_started = 1;
	*out = g;
	return 0;

err_pipe:
	close(g->quit[0]);
	close(g->quit[1]);
err_listen:
	close(g->lfd);
	if (g->unix_path[0])
		unlink(g->unix_path);
err_free:
	free(g);
	return r;
}

const char *gdbstub_address(const struct gdbstub *g)
{
	return g->addr;
}

void gdbstub_stop(struct gdbstub *g)
{
	if (!g)
		return;
	if (g->thr_started) {
		if (write(g->quit[1], "q", 1) < 0) {
			/* the pipe cannot be full: one byte ever */
		}
		pthread_join(g->thr, NULL);
	}
	close(g->quit[0]);
	close(g->quit[1]);
	close(g->lfd);
	if (g->unix_path[0])
		unlink(g->unix_path);
	free(g);
}
