/* `--net user` for the sandbox: a tap device inside the sandbox's network
 * namespace, joined to libslirp's user-mode NAT (the system VMs' `--net
 * user` backend) running in the host's namespace, as slirp4netns does for
 * rootless containers. No privileges on the host are needed. The program
 * sees eth0 as 10.0.2.15/24 with 10.0.2.2 as its gateway (the host's
 * loopback) and 10.0.2.3 as its name server; hostfwd rules publish its
 * ports on the host. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/net.h"
#include "process/internal.h"

/* The NAT runs in a process of its own, forked before the sandbox's
 * namespaces are made: it stays in the host's network namespace, its
 * threads never live in a process that forks (a fork while another thread
 * holds a lock, the allocator's among them, leaves the child stuck on it),
 * and none of its host sockets is ever open in the sandbox. */
struct usernet {
	struct net *net; /* in the NAT's process */
	int tap, wake;	 /* in the NAT's process */
	int ctl;	 /* the sandbox's end of the socket pair to the NAT */
	unsigned mtu;	 /* the link's, as the NAT told it */
};

/* What the NAT's process answers once it has started (or failed to). */
struct usernet_hello {
	uint32_t mtu;
	char msg[256]; /* empty: started */
};

static struct usernet un = {.tap = -1, .wake = -1, .ctl = -1};

static void usernet_notify(void *opaque)
{
	(void)opaque;
	uint64_t one = 1;
	ssize_t w = write(un.wake, &one, sizeof(one));
	(void)w;
}

/* The tap device, sent by the sandbox once it has made it: its descriptor,
 * or -1 if the sandbox ended first. */
static int recv_tap(int sock)
{
	char byte;
	struct iovec iov = {&byte, 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	ssize_t n;
	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&m) : NULL;
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	return fd;
}

/* The NAT's process: frames between the tap device and the NAT, both ways,
 * until the sandbox's outer process ends (its end of sock closes); then
 * what the program sent last is flushed to the host's sockets. */
_Noreturn static void usernet_serve(int sock)
{
	static uint8_t buf[NET_FRAME_MAX];
	un.tap = recv_tap(sock);
	struct pollfd pf[3] = {
		{.fd = un.tap, .events = POLLIN}, {.fd = un.wake, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
	while (un.tap >= 0) {
		if (poll(pf, 3, -1) < 0)
			continue;
		if ((pf[0].revents & (POLLERR | POLLHUP | POLLNVAL)) || pf[2].revents)
			break;
		if (pf[0].revents & POLLIN) {
			ssize_t n = read(un.tap, buf, sizeof(buf));
			if (n > 0) {
				struct iovec iov = {buf, (size_t)n};
				net_send(un.net, &iov, 1);
			}
		}
		if (pf[1].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(un.wake, &v, sizeof(v));
			(void)r;
		}
		for (;;) { /* whatever the NAT queued, notified or not */
			ssize_t n = net_recv(un.net, buf, sizeof(buf));
			if (n < 0)
				break;
			ssize_t w = write(un.tap, buf, (size_t)n);
			(void)w;
		}
	}
	net_close(un.net);
	_exit(0);
}

int usernet_open(const char *spec, char *err, size_t errn)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(err, errn, "--net user: socketpair: %s", strerror(errno));
		return -errno;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		snprintf(err, errn, "--net user: fork: %s", strerror(e));
		close(sp[0]);
		close(sp[1]);
		return -e;
	}
	if (pid == 0) {
		/* Nothing of the program's: no terminal signals (the sandbox's
		 * end closing is what ends this process), no descriptor but the
		 * socket pair, so nobody waits for it on a pipe. */
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		prctl(PR_SET_NAME, "corral-net");
		if (dup2(sp[1], 3) < 0)
			_exit(1);
		int null = open("/dev/null", O_RDWR);
		if (null < 0)
			_exit(1);
		for (int fd = 0; fd < 3; fd++)
			dup2(null, fd);
		if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
			for (int fd = 4; fd < 1024; fd++)
				close(fd);
		struct usernet_hello h;
		memset(&h, 0, sizeof(h));
		un.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (un.wake < 0)
			snprintf(h.msg, sizeof(h.msg), "--net user: eventfd: %s", strerror(errno));
		else if (net_open(&un.net, spec, usernet_notify, NULL, h.msg, sizeof(h.msg)) && !h.msg[0])
			snprintf(h.msg, sizeof(h.msg), "--net user: cannot start the NAT");
		if (!h.msg[0])
			h.mtu = net_mtu(un.net);
		ssize_t w = write(3, &h, sizeof(h));
		(void)w;
		if (h.msg[0])
			_exit(1);
		usernet_serve(3);
	}
	close(sp[1]);
	struct usernet_hello h;
	ssize_t n;
	do
		n = read(sp[0], &h, sizeof(h));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(h) || h.msg[0] || h.mtu < 68) {
		if (n == (ssize_t)sizeof(h) && h.msg[0]) {
			h.msg[sizeof(h.msg) - 1] = 0;
			snprintf(err, errn, "%s", h.msg);
		} else {
			snprintf(err, errn, "--net user: the NAT's process ended at start");
		}
		close(sp[0]);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return -EINVAL;
	}
	un.ctl = sp[0];
	un.mtu = h.mtu;
	return 0;
}

static int addr_ioctl(int s, unsigned long req, const char *ifname, const char *ip)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	struct sockaddr_in *a = (struct sockaddr_in *)&ifr.ifr_addr;
	a->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &a->sin_addr);
	return ioctl(s, req, &ifr);
}

int usernet_attach(char *err, size_t errn)
{
	int tap = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (tap < 0) {
		snprintf(err, errn, "--net user: /dev/net/tun: %s", strerror(errno));
		return -errno;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(tap, TUNSETIFF, &ifr) < 0) {
		snprintf(err, errn, "--net user: cannot make the tap device: %s", strerror(errno));
		return -errno;
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		snprintf(err, errn, "--net user: socket: %s", strerror(errno));
		return -errno;
	}
	int r = 0;
	struct ifreq mtu;
	memset(&mtu, 0, sizeof(mtu));
	snprintf(mtu.ifr_name, sizeof(mtu.ifr_name), "eth0");
	mtu.ifr_mtu = (int)un.mtu;
	if (addr_ioctl(s, SIOCSIFADDR, "eth0", "10.0.2.15") < 0 ||
	    addr_ioctl(s, SIOCSIFNETMASK, "eth0", "255.255.255.0") < 0 || ioctl(s, SIOCSIFMTU, &mtu) < 0)
		r = -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
	if (!r && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			r = -errno;
	}
	if (!r) { /* default route through the NAT's gateway */
		struct rtentry rt;
		memset(&rt, 0, sizeof(rt));
		struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
		gw->sin_family = AF_INET;
		inet_pton(AF_INET, "10.0.2.2", &gw->sin_addr);
		((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
		((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = "eth0";
		if (ioctl(s, SIOCADDRT, &rt) < 0)
			r = -errno;
	}
	close(s);
	if (r) {
		snprintf(err, errn, "--net user: cannot set up eth0: %s", strerror(-r));
		return r;
	}
	char byte = 0;
	struct iovec iov = {&byte, 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &tap, sizeof(tap));
	ssize_t n;
	do
		n = sendmsg(un.ctl, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	int e = errno;
	close(tap); /* the NAT's process holds it now */
	if (n != 1) {
		snprintf(err, errn, "--net user: cannot hand the tap device to the NAT: %s", strerror(e));
		return -e;
	}
	return 0;
}

void usernet_forget(void)
{
	/* In the processes inside the sandbox: the NAT's end stays with the
	 * outer process alone (its closing ends the NAT). */
	if (un.ctl >= 0)
		close(un.ctl);
	un.ctl = -1;
}
