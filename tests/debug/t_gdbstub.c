/* The GDB stub's protocol against hostile input: a VM from a tiny guest
 * with the stub on a unix socket, driven packet by packet. Bad checksums
 * and overlong packets get a NAK; malformed commands, huge lengths,
 * addresses outside RAM, out-of-range registers and breakpoints get an
 * error reply; thousands of random and mutated packets leave the stub
 * answering; memory writes land in guest RAM; Ctrl-C stops a running VM. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testhelp.h"

#include "debug/gdbstub.h"
#include "vm/tiny_guests.h"
#include "vm/vm.h"

static char tmpdir[] = "/tmp/t_gdbstub.XXXXXX";
static char sock_path[100];
static struct vm *vm;
static struct gdbstub *stub;
static int fd = -1;

/* Reads what arrives within ms into buf (NUL-terminated): its length. */
static size_t read_some(char *buf, size_t cap, int ms)
{
	size_t n = 0;
	while (n + 1 < cap) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, ms) <= 0)
			break;
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		ms = 50; /* the rest of a reply follows at once */
	}
	buf[n] = 0;
	return n;
}

static void send_raw(const void *p, size_t n)
{
	CHECK(write(fd, p, n) == (ssize_t)n);
}

static void send_packet(const char *payload, size_t len)
{
	static char buf[70000];
	unsigned sum = 0;
	buf[0] = '$';
	memcpy(buf + 1, payload, len);
	for (size_t k = 0; k < len; k++)
		sum += (uint8_t)payload[k];
	snprintf(buf + 1 + len, 4, "#%02x", sum & 0xff);
	send_raw(buf, len + 4);
}

/* Sends payload, returns the reply's payload (no-ack mode: no '+'), in a
 * static buffer; "" for an empty reply, "<none>" if none came. */
static const char *xchg_len(const char *payload, size_t len)
{
	static char reply[70000];
	send_packet(payload, len);
	size_t n = read_some(reply, sizeof(reply), 5000);
	char *s = memchr(reply, '$', n), *e = s ? memchr(s, '#', n - (size_t)(s - reply)) : NULL;
	if (!s || !e)
		return "<none>";
	*e = 0;
	return s + 1;
}

static const char *xchg(const char *payload)
{
	return xchg_len(payload, strlen(payload));
}

static void test_setup(void)
{
	CHECK(mkdtemp(tmpdir) != NULL);
	char guest[300], serial[300];
	snprintf(guest, sizeof(guest), "%s/count.bin", tmpdir);
	snprintf(serial, sizeof(serial), "%s/serial", tmpdir);
	snprintf(sock_path, sizeof(sock_path), "unix:%s/sock", tmpdir);
	FILE *f = fopen(guest, "wb");
	CHECK(f && fwrite(g_count, 1, sizeof(g_count), f) == sizeof(g_count));
	if (f)
		fclose(f);
	struct vm_config c;
	vm_config_init(&c);
	c.flat = guest;
	c.mem = 32ull << 20;
	c.engine = VM_ENGINE_EMU;
	c.serial_path = serial;
	c.cpus = 2;
	char err[512];
	CHECK(vm_create(&c, &vm, err, sizeof(err)) == 0);
	if (!vm)
		exit(1);
	/* bad specs first: one line each, nothing left behind */
	struct gdbstub *bad = NULL;
	CHECK(gdbstub_start(vm, "tcp:1.2.3.4.5:x", 0, &bad, err, sizeof(err)) < 0 && !strchr(err, '\n'));
	CHECK(gdbstub_start(vm, "12ab", 0, &bad, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "tcp:[ADDR]:PORT") != NULL);
	CHECK(gdbstub_start(vm, "tcp::99999", 0, &bad, err, sizeof(err)) == -EINVAL);
	CHECK(gdbstub_start(vm, "unix:", 0, &bad, err, sizeof(err)) == -EINVAL);
	CHECK(bad == NULL);
	CHECK(gdbstub_start(vm, sock_path, 1, &stub, err, sizeof(err)) == 0);
	CHECK(vm_start(vm) == 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, sock_path + 5, strlen(sock_path + 5) + 1);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
}

static void test_acks(void)
{
	char buf[256];
	send_packet("?", 1);
	read_some(buf, sizeof(buf), 5000);
	CHECK(buf[0] == '+' && strstr(buf, "$T05thread:1;#") != NULL);
	/* a bad checksum: NAK, no reply */
	send_raw("$g#00", 5);
	read_some(buf, sizeof(buf), 300);
	CHECK(!strcmp(buf, "-"));
	/* a NAK from us: the last reply again */
	send_raw("-", 1);
	read_some(buf, sizeof(buf), 1000);
	CHECK(strstr(buf, "$T05thread:1;#") != NULL);
	/* a checksum that is not hex */
	send_raw("$?#zz", 5);
	read_some(buf, sizeof(buf), 300);
	CHECK(!strcmp(buf, "-"));
	/* longer than PacketSize: NAK, and the stream is in step again after */
	static char big[0x5000];
	memset(big, 'm', sizeof(big));
	send_packet(big, sizeof(big));
	read_some(buf, sizeof(buf), 1000);
	CHECK(!strcmp(buf, "-"));
	send_packet("QStartNoAckMode", 15);
	read_some(buf, sizeof(buf), 5000);
	CHECK(!strncmp(buf, "+$OK#", 5));
	CHECK(!strncmp(xchg("qSupported:multiprocess+;swbreak+"), "PacketSize=4000;", 16));
	CHECK(!strstr(xchg("qSupported"), "Reverse")); /* a live VM does not go backwards */
}

static void test_malformed(void)
{
	const struct {
		const char *in, *want;
	} cases[] = {
		{"mzz,10", "E16"},
		{"m0", "E16"},
		{"m0,", "E16"},
		{"m,10", "E16"},
		{"m00000000000000000001,1", "E16"}, /* 17 digits */
		{"m100000000000,10", "E0e"},	    /* no RAM there */
		{"m8000000000000000,10", "E0e"},    /* not canonical */
		{"M0,4:zz", "E16"},
		{"M0,4:0011", "E16"},		   /* short */
		{"M0,ffffffffffffffff:00", "E16"}, /* huge */
		{"M100000000000,1:00", "E0e"},
		{"X20000,4:ab", "E16"},	 /* short */
		{"X20000,1:abc", "E16"}, /* long */
		{"G00", "E16"},
		{"P99=00", "E16"},
		{"P0=0011", "E16"},		 /* short for rax */
		{"P10=0000000000000080", "E16"}, /* rip not canonical */
		{"P11=00000000", "E16"},	 /* eflags without bit 1 */
		{"P12=18000000", "E16"},	 /* CS is not written this way */
		{"P3b=0000008000000000", "E16"}, /* CR0: paging without protection */
		{"p99", "E0e"},
		{"pzz", "E16"},
		{"Z9,0,1", ""},
		{"Z2,20000,0", "E16"},		   /* zero length */
		{"Z2,ffffffffffffffff,10", "E16"}, /* wraps */
		{"Z0,zz,1", "E16"},
		{"Z0,10", "E16"},
		{"Hg99", "E16"},
		{"Hx1", "E16"},
		{"T5", "E16"},
		{"T1", "OK"},
		{"T2", "OK"},
		{"vCont;x", "E16"},
		{"vCont;s:9", "E16"},
		{"qRcmd,123", "E16"}, /* odd */
		{"qRcmd,zz", "E16"},
		{"qXfer:features:read:other.xml:0,10", "E00"},
		{"qXfer:features:read:target.xml:ffffff,10", "l"},
		{"qXfer:features:read:target.xml:0", "E16"},
		{"qfThreadInfo", "m1,2"},
		{"qC", "QC1"},
		{"xyzzy", ""},
		{"bs", ""}, /* no reverse execution but in a replay */
		{"bc", ""},
		{"bx", ""},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const char *got = xchg(cases[k].in);
		if (strcmp(got, cases[k].want)) {
			fprintf(stderr, "  %s: got '%s', want '%s'\n", cases[k].in, got, cases[k].want);
			CHECK(0);
		}
	}
	/* a huge read is cut to what a packet holds, not refused */
	CHECK(strlen(xchg("m0,ffffffffffffffff")) == 0x4000);
	/* a monitor command's physical read outside RAM: one sentence, OK */
	const char *r = xchg("qRcmd,7068797320307866666666666666666666"); /* phys 0xffffffffff */
	CHECK(r[0] == 'O');
	/* 65 breakpoints: the 65th does not fit */
	char pkt[64];
	int full = 0;
	for (unsigned k = 0; k < 65; k++) {
		snprintf(pkt, sizeof(pkt), "Z0,%x,1", 0x200000 + k);
		full += !strcmp(xchg(pkt), "E1c");
	}
	CHECK(full == 1);
	for (unsigned k = 0; k < 65; k++) {
		snprintf(pkt, sizeof(pkt), "z0,%x,1", 0x200000 + k);
		CHECK(!strcmp(xchg(pkt), "OK"));
	}
}

static void test_memory(void)
{
	/* virtual = physical below 4 GiB in the tiny guests' page tables */
	CHECK(!strcmp(xchg("M300000,4:deadbeef"), "OK"));
	uint8_t b[4];
	CHECK(vm_ram_read(vm, 0x300000, b, 4) == 0);
	CHECK(b[0] == 0xde && b[1] == 0xad && b[2] == 0xbe && b[3] == 0xef);
	/* X with escapes: '}' 0x03 is '#' ^ 0x20 */
	static const char x[] = {'X', '3', '0', '0', '0', '1', '0', ',', '2', ':', '}', 0x03, 'A'};
	CHECK(!strcmp(xchg_len(x, sizeof(x)), "OK"));
	CHECK(vm_ram_read(vm, 0x300010, b, 2) == 0 && b[0] == '#' && b[1] == 'A');
	CHECK(!strcmp(xchg("m300000,4"), "deadbeef"));
	/* a write that runs off RAM changes nothing */
	CHECK(!strcmp(xchg("M1fffffe,4:01020304"), "E0e"));
}

static void test_random(void)
{
	static const char cmds[] = "gGpPmMXzZHTqQ?";
	char pkt[600];
	for (unsigned round = 0; round < 3000; round++) {
		size_t n = 1 + rnd() % 80;
		pkt[0] = cmds[rnd() % (sizeof(cmds) - 1)];
		for (size_t k = 1; k < n; k++) {
			static const char alpha[] = "0123456789abcdef,:;=-}#*xX";
			pkt[k] = (rnd() & 3) ? alpha[rnd() % (sizeof(alpha) - 1)] : (char)(rnd() & 0xff);
		}
		if (rnd() % 8 == 0) /* raw bytes without framing */
			send_raw(pkt, n);
		else
			send_packet(pkt, n);
		char buf[4096];
		read_some(buf, sizeof(buf), 0); /* replies must not pile up */
	}
	char buf[4096];
	while (read_some(buf, sizeof(buf), 300) > 0)
		;
	/* should a stray packet have let the VM run: stop it */
	send_raw("\x03", 1);
	while (read_some(buf, sizeof(buf), 300) > 0)
		;
	/* resynchronized and answering */
	CHECK(!strcmp(xchg("qC"), "QC1") || !strcmp(xchg("qC"), "QC2"));
	CHECK(!strcmp(xchg("Hg1"), "OK"));
	CHECK(!strncmp(xchg("?"), "T05thread:", 10));
}

static void test_run_and_interrupt(void)
{
	uint64_t c0 = 0, c1 = 0;
	CHECK(vm_ram_read(vm, G_COUNTER, &c0, 8) == 0);
	send_packet("c", 1);
	usleep(100000);
	/* all-stop: nothing but a stop while it runs */
	CHECK(!strcmp(xchg("g"), "E10"));
	char buf[256];
	send_raw("\x03", 1);
	read_some(buf, sizeof(buf), 5000);
	CHECK(strstr(buf, "$T02thread:") != NULL);
	CHECK(vm_ram_read(vm, G_COUNTER, &c1, 8) == 0);
	CHECK(c1 > c0);
	/* a step of one vCPU: RIP moves by one instruction of the loop */
	CHECK(!strcmp(xchg("Hg1"), "OK"));
	CHECK(!strncmp(xchg("vCont;s:1"), "T05thread:1;", 12));
	/* stopped again: the counter stands */
	CHECK(vm_ram_read(vm, G_COUNTER, &c0, 8) == 0);
	usleep(50000);
	CHECK(vm_ram_read(vm, G_COUNTER, &c1, 8) == 0);
	CHECK(c0 == c1);
	/* a write watchpoint on the counter: the next store stops the VM */
	CHECK(!strcmp(xchg("Z2,20000,8"), "OK"));
	const char *r = xchg("c");
	CHECK(strstr(r, "watch:20000;") != NULL);
	CHECK(!strcmp(xchg("z2,20000,8"), "OK"));
	/* a breakpoint on the loop's store (offset 5) stops there */
	CHECK(!strcmp(xchg("Z0,100005,1"), "OK"));
	r = xchg("c");
	CHECK(strstr(r, "swbreak:") != NULL);
	CHECK(!strcmp(xchg("p10"), "0500100000000000"));
	/* rax written, seen by the guest: the counter goes on from there */
	CHECK(!strcmp(xchg("z0,100005,1"), "OK"));
	CHECK(!strcmp(xchg("P0=0000100000000000"), "OK"));
	CHECK(!strcmp(xchg("p0"), "0000100000000000"));
	CHECK(!strncmp(xchg("s"), "T05", 3));
	CHECK(vm_ram_read(vm, G_COUNTER, &c0, 8) == 0);
	CHECK_EQ_U64(c0, 0x100000);
	CHECK(!strcmp(xchg("D"), "OK"));
}

static void test_teardown(void)
{
	close(fd);
	usleep(100000);
	uint64_t c0 = 0, c1 = 0;
	/* detached: the VM runs on */
	CHECK(vm_ram_read(vm, G_COUNTER, &c0, 8) == 0);
	usleep(100000);
	CHECK(vm_ram_read(vm, G_COUNTER, &c1, 8) == 0);
	CHECK(c1 != c0);
	vm_stop(vm);
	struct vm_exit ex;
	CHECK(vm_wait(vm, &ex) == 0);
	gdbstub_stop(stub);
	vm_destroy(vm);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	CHECK(system(cmd) == 0);
}

int main(void)
{
	RUN(test_setup);
	RUN(test_acks);
	RUN(test_malformed);
	RUN(test_memory);
	RUN(test_random);
	RUN(test_run_and_interrupt);
	RUN(test_teardown);
	return test_report();
}
