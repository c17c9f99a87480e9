/* Network backends: the host side of a virtual NIC. Frames the guest sends
 * go out with net_send (any thread); frames for the guest are queued by the
 * backend's own thread, which then calls the device's notify callback; the
 * device takes them with net_recv when the guest has buffers. A full queue
 * drops frames, as a NIC without buffers would (TCP recovers).
 *
 * Specs, as QEMU users write them:
 *   user[,hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...
 *       NAT through libslirp: guest 10.0.2.15 (DHCP), gateway and host
 *       10.0.2.2, DNS 10.0.2.3; no privileges needed.
 *   tap,ifname=NAME
 *       an existing or new tap device (bridged setups; needs CAP_NET_ADMIN
 *       or a device owned by the user).
 * Either takes rate limits (backend/ratelimit.h), per direction as seen
 * from the guest: tx_bw=SIZE[:MS[:BURST]], tx_ops=N[:MS[:BURST]] (frames
 * the guest sends; the sender waits), rx_bw=..., rx_ops=... (frames for the
 * guest are held back until their tokens are there; a full queue drops). */
#ifndef CORRAL_NET_H
#define CORRAL_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "backend/ratelimit.h"

#define NET_FRAME_MAX 65550 /* an Ethernet frame with a 64 KiB payload */
#define NET_RXQ_FRAMES 256  /* frames queued for the guest at most */
#define NET_RXQ_BYTES (1u << 20)

struct net;
struct state_writer;
struct state_reader;

/* notify(opaque) is called whenever frames were queued for the guest: from
 * the backend's thread, or from inside net_send when the backend answers at
 * once (an ARP reply). It must only record the fact and wake whoever runs
 * the device, never call back into the backend. On error: -errno and one line for the user
 * in err. */
int net_open(struct net **out, const char *spec, void (*notify)(void *opaque), void *opaque, char *err, size_t errlen);
void net_close(struct net *n);
/* A NIC's backend that drops what the guest sends and never has a frame
 * for it, with the given MTU (a replay's: its frames come from the log). */
int net_open_null(struct net **out, unsigned mtu);
/* Loads what the backend of spec needs from the host (libslirp for "user")
 * now, for a process about to lose sight of the host's files (corrald's
 * jail), or before a restore commits anything; 0, or -errno and one line
 * in err (-ELIBACC: a static corral, which cannot load libslirp,
 * backend/dynlib.h). net_open loads it anyway. */
int net_preload(const char *spec, char *err, size_t errlen);
/* Points the backend's notify at a new device (NULL: nobody listens; frames
 * queue until the queue is full). A backend outlives the VM's devices, which
 * are made anew at every guest reboot. */
void net_attach(struct net *n, void (*notify)(void *opaque), void *opaque);
/* One frame from the guest (Ethernet header first, no virtio header). */
int net_send(struct net *n, const struct iovec *iov, int iovcnt);
/* Length of the next frame for the guest, or -EAGAIN if none. */
ssize_t net_peek(struct net *n);
/* Moves the next frame into buf (len >= net_peek) and returns its length,
 * or -EAGAIN, or -EMSGSIZE (the frame stays queued). */
ssize_t net_recv(struct net *n, void *buf, size_t len);
/* The largest IP packet the link carries (the frame without its Ethernet
 * header): what the NIC tells the guest to use. */
unsigned net_mtu(const struct net *n);
/* Frames dropped because the queue was full. */
uint64_t net_dropped(const struct net *n);
/* The limits of n now, and new ones while it runs (buckets full again). */
void net_get_rate(struct net *n, struct rate_cfg *tx, struct rate_cfg *rx);
void net_set_rate(struct net *n, const struct rate_cfg *tx, const struct rate_cfg *rx);

/* The backend's own state for a snapshot or a migration (the user
 * network's: libslirp's DHCP leases and IP ID counter), as fields of the
 * open section of w; a backend without state writes nothing. Any thread;
 * the guest should stand still. 0 or -errno. */
int net_state_save(struct net *n, struct state_writer *w);
/* Reads what net_state_save wrote into a backend just opened from the same
 * spec's kind; everything is validated before the backend sees it. 0 and
 * *lost the number of TCP connections that were open through the backend
 * when it was saved (no backend carries them over), or -EINVAL with the
 * reason in r. */
int net_state_load(struct net *n, struct state_reader *r, unsigned *lost);
/* A migration's switch on one host: the backend closes the host ports it
 * listens on (hostfwd) so that the destination can bind them, and opens
 * them again if the migration fails (0, or -errno and one line in err: the
 * VM runs on without them). */
void net_ports_release(struct net *n);
int net_ports_take(struct net *n, char *err, size_t errlen);
/* TCP connections open through the backend now (the user network's,
 * hostfwd ones included): what a snapshot or a migration cannot carry. */
unsigned net_connections(struct net *n);

#endif
