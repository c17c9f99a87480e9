/* The network backends without a guest: raw Ethernet frames into the
 * libslirp backend, and the answers a guest's stack would get (ARP, DHCP,
 * a TCP connection to a listener on the host's loopback, a host-forwarded
 * port), plus spec errors. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backend/net.h"
#include "backend/net_impl.h"
#include "state/stream.h"
#include "testhelp.h"

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static pthread_mutex_t note_lock = PTHREAD_MUTEX_INITIALIZER;
static int notes;

static void on_notify(void *opaque)
{
	(void)opaque;
	pthread_mutex_lock(&note_lock);
	notes++;
	pthread_mutex_unlock(&note_lock);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t csum(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static size_t eth(uint8_t *f, const uint8_t *dst, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, guest_mac, 6);
	put16(f + 12, type);
	return 14;
}

/* IPv4 header at f+14 with total length, protocol; returns header size. */
static size_t ip4(uint8_t *p, size_t payload, uint8_t proto, uint32_t src, uint32_t dst)
{
	memset(p, 0, 20);
	p[0] = 0x45;
	put16(p + 2, (uint16_t)(20 + payload));
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, &src, 4);
	memcpy(p + 16, &dst, 4);
	put16(p + 10, csum(p, 20, 0));
	return 20;
}

/* Waits up to ms for a frame matching want() and returns its length. */
static ssize_t wait_frame(struct net *n, uint8_t *buf, size_t len, int (*want)(const uint8_t *, size_t), int ms)
{
	for (int t = 0; t < ms; t++) {
		ssize_t r;
		while ((r = net_recv(n, buf, len)) > 0)
			if (want(buf, (size_t)r))
				return r;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

static int is_arp_reply(const uint8_t *f, size_t n)
{
	return n >= 42 && get16(f + 12) == 0x0806 && get16(f + 20) == 2;
}

/* Who has `target`? asked by the guest (which also tells slirp our MAC) */
static int send_arp(struct net *n, const char *target)
{
	uint8_t f[64] = {0};
	size_t o = eth(f, bcast, 0x0806);
	put16(f + o, 1);	  /* Ethernet */
	put16(f + o + 2, 0x0800); /* IPv4 */
	f[o + 4] = 6;
	f[o + 5] = 4;
	put16(f + o + 6, 1); /* request */
	memcpy(f + o + 8, guest_mac, 6);
	inet_pton(AF_INET, "10.0.2.15", f + o + 14);
	inet_pton(AF_INET, target, f + o + 24);
	struct iovec iov = {f, 60};
	return net_send(n, &iov, 1);
}

static void test_arp(void)
{
	struct net *n;
	char err[256];
	CHECK(net_open(&n, "user", on_notify, NULL, err, sizeof(err)) == 0);
	pthread_mutex_lock(&note_lock);
	int before = notes;
	pthread_mutex_unlock(&note_lock);
	CHECK(send_arp(n, "10.0.2.2") == 0);
	uint8_t r[2048];
	ssize_t len = wait_frame(n, r, sizeof(r), is_arp_reply, 2000);
	CHECK(len >= 42);
	if (len >= 42) {
		uint8_t want_ip[4];
		inet_pton(AF_INET, "10.0.2.2", want_ip);
		CHECK(!memcmp(r + 28, want_ip, 4)); /* sender: the gateway */
		CHECK(!memcmp(r, guest_mac, 6));    /* to us */
	}
	pthread_mutex_lock(&note_lock);
	CHECK(notes > before);
	pthread_mutex_unlock(&note_lock);
	net_close(n);
}

static int is_dhcp_offer(const uint8_t *f, size_t n)
{
	/* UDP from port 67 to 68, BOOTREPLY, message type option 2 */
	if (n < 14 + 20 + 8 + 240 || get16(f + 12) != 0x0800 || f[23] != 17)
		return 0;
	const uint8_t *udp = f + 14 + (f[14] & 15) * 4;
	if (get16(udp) != 67 || get16(udp + 2) != 68)
		return 0;
	const uint8_t *b = udp + 8;
	return b[0] == 2;
}

/* A DHCPDISCOVER from mac; the address offered (0 if none). */
static uint32_t dhcp_discover(struct net *n, const uint8_t *mac)
{
	uint8_t f[400] = {0};
	memcpy(f, bcast, 6);
	memcpy(f + 6, mac, 6);
	put16(f + 12, 0x0800);
	size_t o = 14;
	size_t bootp = 240 + 4; /* fixed part + magic is inside 240; options after */
	uint8_t *udp = f + o + 20, *b = udp + 8;
	b[0] = 1; /* BOOTREQUEST */
	b[1] = 1;
	b[2] = 6;
	b[4] = 0x12; /* xid */
	memcpy(b + 28, mac, 6);
	b[236] = 99, b[237] = 130, b[238] = 83, b[239] = 99; /* magic cookie */
	b[240] = 53, b[241] = 1, b[242] = 1;		     /* DHCPDISCOVER */
	b[243] = 255;
	size_t ulen = 8 + bootp;
	put16(udp, 68);
	put16(udp + 2, 67);
	put16(udp + 4, (uint16_t)ulen);
	ip4(f + o, ulen, 17, 0, 0xffffffff);
	struct iovec iov = {f, o + 20 + ulen};
	if (net_send(n, &iov, 1) != 0)
		return 0;
	uint8_t r[2048];
	ssize_t len = wait_frame(n, r, sizeof(r), is_dhcp_offer, 2000);
	if (len <= 0)
		return 0;
	const uint8_t *rb = r + 14 + (r[14] & 15) * 4 + 8;
	uint32_t yiaddr;
	memcpy(&yiaddr, rb + 16, 4);
	return yiaddr;
}

static void test_dhcp(void)
{
	struct net *n;
	char err[256];
	CHECK(net_open(&n, "user", NULL, NULL, err, sizeof(err)) == 0);
	struct in_addr want;
	inet_pton(AF_INET, "10.0.2.15", &want);
	CHECK(dhcp_discover(n, guest_mac) == want.s_addr);
	net_close(n);
}

static uint16_t syn_port;
static int is_synack(const uint8_t *f, size_t n)
{
	if (n < 54 || get16(f + 12) != 0x0800 || f[23] != 6)
		return 0;
	const uint8_t *tcp = f + 14 + (f[14] & 15) * 4;
	return get16(tcp) == syn_port && (tcp[13] & 0x12) == 0x12;
}

static void send_syn(struct net *n, uint32_t dst, uint16_t sport, uint16_t dport)
{
	uint8_t f[80] = {0};
	uint8_t gw_mac[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};
	size_t o = eth(f, gw_mac, 0x0800);
	uint32_t src;
	inet_pton(AF_INET, "10.0.2.15", &src);
	uint8_t *tcp = f + o + 20;
	put16(tcp, sport);
	put16(tcp + 2, dport);
	tcp[7] = 1;	  /* seq */
	tcp[12] = 5 << 4; /* header 20 bytes */
	tcp[13] = 0x02;	  /* SYN */
	put16(tcp + 14, 65535);
	/* checksum over the pseudo header */
	uint8_t ph[12];
	memcpy(ph, &src, 4);
	memcpy(ph + 4, &dst, 4);
	ph[8] = 0;
	ph[9] = 6;
	put16(ph + 10, 20);
	uint32_t sum = 0;
	for (int i = 0; i < 12; i += 2)
		sum += get16(ph + i);
	put16(tcp + 16, csum(tcp, 20, sum));
	ip4(f + o, 20, 6, src, dst);
	struct iovec iov = {f, o + 40};
	net_send(n, &iov, 1);
}

static void test_tcp_to_host(void)
{
	/* A listener on the host's loopback, reached as 10.0.2.2 from the guest. */
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(ls, (struct sockaddr *)&a, sizeof(a)) == 0);
	socklen_t al = sizeof(a);
	getsockname(ls, (struct sockaddr *)&a, &al);
	CHECK(listen(ls, 1) == 0);
	uint16_t port = ntohs(a.sin_port);

	struct net *n;
	char err[256];
	CHECK(net_open(&n, "user", NULL, NULL, err, sizeof(err)) == 0);
	uint32_t dst;
	inet_pton(AF_INET, "10.0.2.2", &dst);
	syn_port = port;
	uint8_t r[2048];
	send_arp(n, "10.0.2.2");
	CHECK(wait_frame(n, r, sizeof(r), is_arp_reply, 2000) > 0);
	send_syn(n, dst, 40000, port);
	CHECK(wait_frame(n, r, sizeof(r), is_synack, 3000) > 0);
	net_close(n);

	/* restrict=on: the guest reaches nothing outside. */
	CHECK(net_open(&n, "user,restrict=on", NULL, NULL, err, sizeof(err)) == 0);
	send_arp(n, "10.0.2.2");
	send_syn(n, dst, 40001, port);
	CHECK(wait_frame(n, r, sizeof(r), is_synack, 500) < 0);
	net_close(n);
	close(ls);
}

static int is_to_guest_15(const uint8_t *f, size_t n)
{
	/* slirp first asks who has 10.0.2.15 (ARP), or sends the SYN itself */
	uint8_t ip[4];
	inet_pton(AF_INET, "10.0.2.15", ip);
	if (n >= 42 && get16(f + 12) == 0x0806 && get16(f + 20) == 1)
		return !memcmp(f + 38, ip, 4);
	if (n >= 54 && get16(f + 12) == 0x0800 && f[23] == 6)
		return !memcmp(f + 30, ip, 4) && get16(f + 14 + 20 + 2) == 22;
	return 0;
}

static void test_hostfwd(void)
{
	/* A free host port */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	socklen_t al = sizeof(a);
	getsockname(s, (struct sockaddr *)&a, &al);
	close(s);
	char spec[128];
	snprintf(spec, sizeof(spec), "user,hostfwd=tcp:127.0.0.1:%u-:22", ntohs(a.sin_port));

	struct net *n;
	char err[256];
	CHECK(net_open(&n, spec, NULL, NULL, err, sizeof(err)) == 0);
	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	connect(s, (struct sockaddr *)&a, sizeof(a));
	uint8_t r[2048];
	CHECK(wait_frame(n, r, sizeof(r), is_to_guest_15, 3000) > 0);
	close(s);
	net_close(n);
}

static void test_bad_specs(void)
{
	static const char *bad[] = {
		"",
		"bogus",
		"user,hostfwd=tcp:127.0.0.1:2222",
		"user,hostfwd=tcp:127.0.0.1:99999-:22",
		"user,hostfwd=sctp::1-:2",
		"user,hostfwd=tcp:1.2.3:5-:22",
		"user,nosuch=1",
		"tap",
		"tap,ifname=",
		"tap,color=red",
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		struct net *n = NULL;
		char err[256] = "";
		int r = net_open(&n, bad[k], NULL, NULL, err, sizeof(err));
		CHECK(r < 0);
		CHECK(err[0] != 0);
		if (r == 0)
			net_close(n);
	}
}

static void test_queue_limits(void)
{
	struct net *n;
	char err[256];
	CHECK(net_open(&n, "user", NULL, NULL, err, sizeof(err)) == 0);
	/* too big for the buffer: stays queued; oversized frames never queue */
	send_arp(n, "10.0.2.3");
	ssize_t len = -EAGAIN;
	for (int t = 0; t < 2000 && len == -EAGAIN; t++) {
		len = net_peek(n);
		if (len == -EAGAIN)
			usleep(1000);
	}
	CHECK(len > 10);
	uint8_t small[10];
	CHECK(net_recv(n, small, sizeof(small)) == -EMSGSIZE);
	CHECK(net_peek(n) == len);
	uint8_t big[2048];
	CHECK(net_recv(n, big, sizeof(big)) == len);
	CHECK(net_dropped(n) == 0);
	net_close(n);
}

/* ---- The user network's state (net_state_save / net_state_load) ---- */

static const uint8_t other_mac[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};

/* n's state as one section "net" 0 of a stream in memory; its length. */
static size_t save_state(struct net *n, uint8_t *buf, size_t cap)
{
	int fd = memfd_create("t_net", MFD_CLOEXEC);
	struct state_writer w;
	size_t len = 0;
	if (fd < 0 || state_writer_init(&w, fd, "test") < 0)
		return 0;
	state_section_begin(&w, "net", 0, 1);
	int r = net_state_save(n, &w);
	state_section_end(&w);
	if (r >= 0 && state_writer_finish(&w) >= 0) {
		ssize_t k = pread(fd, buf, cap, 0);
		len = k > 0 ? (size_t)k : 0;
	}
	state_writer_free(&w);
	close(fd);
	return len;
}

/* A stream of one section "net" 0 holding the given fields. */
static size_t make_state(uint8_t *buf, size_t cap, uint8_t kind, uint32_t version, uint32_t len, const uint8_t *blob,
			 size_t blob_len)
{
	int fd = memfd_create("t_net", MFD_CLOEXEC);
	struct state_writer w;
	size_t out = 0;
	if (fd < 0 || state_writer_init(&w, fd, "test") < 0)
		return 0;
	state_section_begin(&w, "net", 0, 1);
	state_put_u8(&w, kind);
	state_put_u32(&w, version);
	state_put_u32(&w, len);
	state_put_bytes(&w, blob, blob_len);
	state_put_u32(&w, 0); /* connections */
	state_section_end(&w);
	if (state_writer_finish(&w) >= 0) {
		ssize_t k = pread(fd, buf, cap, 0);
		out = k > 0 ? (size_t)k : 0;
	}
	state_writer_free(&w);
	close(fd);
	return out;
}

/* Loads the stream into n; 0, or -EINVAL with the reader's message in msg. */
static int load_state(struct net *n, const uint8_t *buf, size_t len, char *msg, size_t msglen)
{
	struct state_reader r;
	struct state_section sec;
	msg[0] = 0;
	if (state_reader_init(&r, buf, len, "test") < 0 || state_next_section(&r, &sec) != 1) {
		snprintf(msg, msglen, "%s", r.err);
		return -EINVAL;
	}
	unsigned lost;
	int ret = net_state_load(n, &r, &lost);
	if (ret >= 0 && !state_section_done(&r))
		ret = -EINVAL;
	if (ret < 0)
		snprintf(msg, msglen, "%s", r.err);
	return ret;
}

static void test_state_roundtrip(void)
{
	struct net *a, *b;
	char err[256];
	CHECK(net_open(&a, "user", NULL, NULL, err, sizeof(err)) == 0);
	struct in_addr a15, a16;
	inet_pton(AF_INET, "10.0.2.15", &a15);
	inet_pton(AF_INET, "10.0.2.16", &a16);
	CHECK(dhcp_discover(a, guest_mac) == a15.s_addr); /* a lease for guest_mac */
	static uint8_t buf[8192];
	size_t len = save_state(a, buf, sizeof(buf));
	net_close(a);
	CHECK(len > 0);
	/* the layout corral checks: kind 1, libslirp version 4, 131 bytes
	 * holding the lease (allocated 1, then the MAC) */
	const uint8_t *p = memmem(buf, len, "net", 3);
	CHECK(p != NULL);
	if (!p)
		return;
	const uint8_t *body = p + 3 + 4 + 4 + 8;
	CHECK(body[0] == NET_STATE_USER);
	CHECK(body[1] == 4 && body[5] == 131 && body[6] == 0);
	CHECK(body[9] == 0);							   /* no guestfwd sockets */
	CHECK(body[12] == 0 && body[13] == 1 && !memcmp(body + 14, guest_mac, 6)); /* lease 0 */

	/* a fresh backend with the state: guest_mac's lease is taken, so
	 * another NIC is offered the next address (without the load: .15) */
	CHECK(net_open(&b, "user", NULL, NULL, err, sizeof(err)) == 0);
	char msg[STATE_ERR_MAX];
	CHECK(load_state(b, buf, len, msg, sizeof(msg)) == 0);
	CHECK(dhcp_discover(b, other_mac) == a16.s_addr);
	CHECK(dhcp_discover(b, guest_mac) == a15.s_addr);
	net_close(b);
}

static void test_state_hostile(void)
{
	struct net *n;
	char err[256], msg[STATE_ERR_MAX];
	CHECK(net_open(&n, "user", NULL, NULL, err, sizeof(err)) == 0);
	uint8_t good[131] = {0}, blob[NET_STATE_MAX + 16];
	static uint8_t buf[NET_STATE_MAX + 256];
	struct {
		uint8_t kind;
		uint32_t version, len;
		size_t blob_len;
		int patch_at, patch;
		const char *says;
	} bad[] = {
		{1, 5, 131, 131, -1, 0, "version"},
		{1, 4, 130, 130, -1, 0, "wrong length"},
		{1, 4, 132, 132, -1, 0, "wrong length"},
		{1, 4, 131, 131, 0, 42, "guestfwd"},
		{1, 4, 131, 131, 3 + 5 * 8, 1, "DHCP lease"},
		{1, 4, 131, 131, 3 + 5 * 8 + 1, 2, "DHCP lease"},
		{1, 4, NET_STATE_MAX + 1, 16, -1, 0, "at most"},
		{1, 4, 131, 100, -1, 0, "ends early"},
		{9, 4, 131, 131, -1, 0, "unknown kind"},
	};
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		memset(blob, 0, sizeof(blob));
		memcpy(blob, good, sizeof(good));
		if (bad[k].patch_at >= 0)
			blob[bad[k].patch_at] = (uint8_t)bad[k].patch;
		size_t len =
			make_state(buf, sizeof(buf), bad[k].kind, bad[k].version, bad[k].len, blob, bad[k].blob_len);
		CHECK(len > 0);
		int r = load_state(n, buf, len, msg, sizeof(msg));
		CHECK(r < 0);
		if (r >= 0 || !strstr(msg, bad[k].says))
			fprintf(stderr, "  case %u: %d '%s' (wanted '%s')\n", k, r, msg, bad[k].says);
		CHECK(strstr(msg, bad[k].says) != NULL);
	}
	/* the good layout loads, and the backend still answers */
	size_t len = make_state(buf, sizeof(buf), 1, 4, 131, good, sizeof(good));
	CHECK(load_state(n, buf, len, msg, sizeof(msg)) == 0);
	struct in_addr a15;
	inet_pton(AF_INET, "10.0.2.15", &a15);
	CHECK(dhcp_discover(n, guest_mac) == a15.s_addr);
	net_close(n);
}

/* Every byte of a good state set to values that matter to the layout (and
 * the header's fields to random ones): a load succeeds exactly when the
 * layout says it may, and never hurts the backend (run under ASan by
 * `make SANITIZE=1`). */
static void test_state_mutations(void)
{
	struct net *n;
	char err[256], msg[STATE_ERR_MAX];
	CHECK(net_open(&n, "user", NULL, NULL, err, sizeof(err)) == 0);
	static uint8_t buf[NET_STATE_MAX + 256];
	static const uint8_t values[] = {0, 1, 2, 42, 0x80, 0xff};
	unsigned loaded = 0, refused = 0, wrong = 0;
	for (unsigned i = 0; i < 131; i++) {
		for (unsigned v = 0; v < sizeof(values); v++) {
			uint8_t blob[131] = {0};
			blob[i] = values[v];
			int want = blob[0] == 0;
			for (unsigned k = 0; k < 16; k++)
				want &= blob[3 + k * 8] == 0 && blob[4 + k * 8] <= 1;
			size_t len = make_state(buf, sizeof(buf), 1, 4, 131, blob, sizeof(blob));
			int r = load_state(n, buf, len, msg, sizeof(msg));
			if ((r == 0) != want)
				wrong++;
			r == 0 ? loaded++ : refused++;
		}
	}
	/* random header fields around the blob */
	unsigned seed = 12345;
	for (unsigned it = 0; it < 2000; it++) {
		seed = seed * 1103515245u + 12345u;
		uint8_t kind = (uint8_t)(seed >> 16) % 4;
		seed = seed * 1103515245u + 12345u;
		uint32_t version = (seed >> 16) % 8;
		seed = seed * 1103515245u + 12345u;
		uint32_t blen = (seed >> 8) % (NET_STATE_MAX + 64);
		uint8_t blob[NET_STATE_MAX + 64] = {0};
		size_t have = blen < sizeof(blob) ? blen : sizeof(blob);
		size_t len = make_state(buf, sizeof(buf), kind, version, blen, blob, have);
		int r = load_state(n, buf, len, msg, sizeof(msg));
		int want = kind == 0 ? 0 : kind == 1 && version == 4 && blen == 131 ? 1 : -1;
		/* kind 0 has no more fields: the rest is left over and refused */
		if (r == 0 && want != 1)
			wrong++;
	}
	CHECK(wrong == 0);
	CHECK(loaded > 0 && refused > 0);
	struct in_addr a15;
	inet_pton(AF_INET, "10.0.2.15", &a15);
	CHECK(load_state(n, buf, make_state(buf, sizeof(buf), 1, 4, 131, (const uint8_t[131]){0}, 131), msg,
			 sizeof(msg)) == 0);
	CHECK(dhcp_discover(n, guest_mac) == a15.s_addr); /* still answers */
	net_close(n);
}

int main(void)
{
	RUN(test_arp);
	RUN(test_dhcp);
	RUN(test_tcp_to_host);
	RUN(test_hostfwd);
	RUN(test_bad_specs);
	RUN(test_queue_limits);
	RUN(test_state_roundtrip);
	RUN(test_state_hostile);
	RUN(test_state_mutations);
	return test_report();
}
