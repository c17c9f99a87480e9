/* `--net user` for the sandbox: a tap device inside the sandbox's network
 * namespace, joined to libslirp's user-mode NAT (the system VMs' `--net
 * user` backend) running in the host's namespace, as slirp4netns does for
 * rootless containers. No privileges on the host are needed. The program
 * sees eth0 as 10.0.2.15/24 with 10.0.2.2 as its gateway (the host's
 * loopback) and 10.0.2.3 as its name server; hostfwd rules publish its
 * ports on the host. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/net.h"
#include "process/internal.h"

struct usernet {
	struct net *net;
	int tap, wake;
	pthread_t pump;
	uint8_t *before; /* fds open before the NAT started (bitmap) */
	int nbefore;
};

static struct usernet un = {.tap = -1, .wake = -1};

static void usernet_notify(void *opaque)
{
	(void)opaque;
	uint64_t one = 1;
	ssize_t w = write(un.wake, &one, sizeof(one));
	(void)w;
}

/* Frames between the tap device and the NAT, both ways. */
static void *usernet_pump(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	static uint8_t buf[NET_FRAME_MAX];
	struct pollfd pf[2] = {{.fd = -1, .events = POLLIN}, {.fd = un.wake, .events = POLLIN}};
	for (;;) {
		/* the tap comes later, from the sandbox's namespace (attach) */
		pf[0].fd = __atomic_load_n(&un.tap, __ATOMIC_ACQUIRE);
		if (poll(pf, 2, -1) < 0)
			continue;
		if (pf[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			return NULL;
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
		for (; pf[0].fd >= 0;) { /* whatever the NAT queued, notified or not */
			ssize_t n = net_recv(un.net, buf, sizeof(buf));
			if (n < 0)
				break;
			ssize_t w = write(un.tap, buf, (size_t)n);
			(void)w;
		}
	}
}

/* Calls fn(fd) for every open descriptor. */
static void each_fd(void (*fn)(int fd, void *arg), void *arg)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int self = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end || end == e->d_name || fd == self)
			continue;
		fn((int)fd, arg);
	}
	closedir(d);
}

static void note_fd(int fd, void *arg)
{
	(void)arg;
	if (fd < un.nbefore)
		un.before[fd / 8] |= (uint8_t)(1u << (fd % 8));
}

static void drop_fd(int fd, void *arg)
{
	int keep = *(int *)arg;
	if (fd != keep && (fd >= un.nbefore || !(un.before[fd / 8] & (1u << (fd % 8)))))
		close(fd);
}

int usernet_open(const char *spec, char *err, size_t errn)
{
	un.nbefore = 1 << 16;
	un.before = calloc((size_t)un.nbefore / 8, 1);
	if (!un.before) {
		snprintf(err, errn, "--net user: out of memory");
		return -ENOMEM;
	}
	each_fd(note_fd, NULL);
	un.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (un.wake < 0) {
		snprintf(err, errn, "--net user: eventfd: %s", strerror(errno));
		return -errno;
	}
	int r = net_open(&un.net, spec, usernet_notify, NULL, err, errn);
	if (r)
		return r;
	/* The pump hands frames to the NAT, which makes its host sockets in
	 * the calling thread: it starts here, in the host's namespace. */
	if (pthread_create(&un.pump, NULL, usernet_pump, NULL)) {
		snprintf(err, errn, "--net user: cannot start the network thread");
		return -EAGAIN;
	}
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
	mtu.ifr_mtu = (int)net_mtu(un.net);
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
	__atomic_store_n(&un.tap, tap, __ATOMIC_RELEASE);
	usernet_notify(NULL);
	return 0;
}

void usernet_forget(int keep)
{
	/* In the processes inside the sandbox: every descriptor the NAT made
	 * (its sockets live in the host's network namespace, and would be a
	 * way out), and the tap, belong to the outer process alone. */
	if (!un.before)
		return;
	each_fd(drop_fd, &keep);
	un.tap = un.wake = -1;
}
