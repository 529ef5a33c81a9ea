/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * C wrappers for the kernel macros and inline functions the isboot runtime glue needs (network
 * setup, kernel sockets, taskqueue, callout, mutex, clock). Each wrapper does what its macro does
 * and nothing else, so that all decisions stay in Rust. Owned by the runtime glue
 * (driver/kmod/src/{net,sock,exec,cam,boot}.rs); compiled next to helpers.c.
 */
#ifndef ISBOOT_HELPERS_NET_CAM_H
#define ISBOOT_HELPERS_NET_CAM_H

#include <sys/types.h>
#include <sys/_callout.h>
#include <sys/_task.h>
/* bus_dma_segment_t: the layout of a CAM_DATA_SG list. */
#include <machine/bus.h>
#include <sys/bus_dma.h>

struct socket;
struct ifnet;
struct cam_path;
struct sockaddr;
struct sockaddr_in;
struct sockaddr_in6;
struct mtx;
struct callout;
struct taskqueue;
struct thread;

/* ---- context: vnet, net epoch, current thread ---- */

/* Runs fn(arg) with curvnet set to vnet0 (CURVNET_SET/CURVNET_RESTORE); returns fn's result. */
int isboot_with_vnet0(int (*fn)(void *), void *arg);
/*
 * Runs fn(arg) inside the network epoch. Works on kernels built with or without
 * options EPOCH_TRACE (see helpers_net_cam.c), whatever opt_global.h this file was built with.
 */
int isboot_with_net_epoch(int (*fn)(void *), void *arg);
struct thread *isboot_curthread(void);
/* Calls cb(ifp, arg) for each interface of the current vnet until cb returns non-zero.
 * Must run inside the network epoch. */
int isboot_ifnet_foreach(int (*cb)(struct ifnet *, void *), void *arg);

/* ---- interface configuration (ifioctl on a socket of the right family) ---- */

/* SIOCGIFFLAGS + SIOCSIFFLAGS with IFF_UP added. */
int isboot_if_up(struct socket *so, const char *ifname);
/* SIOCSLANPCP: the 802.1p priority (0..7) a VLAN interface tags its frames with. */
int isboot_if_set_vlan_pcp(struct socket *so, const char *ifname, int pcp);
/* SIOCAIFADDR: IPv4 address, netmask and (optional, may be NULL) broadcast. */
int isboot_if_add_addr4(struct socket *so, const char *ifname, const struct sockaddr_in *addr,
    const struct sockaddr_in *mask, const struct sockaddr_in *broadcast);
/* SIOCAIFADDR_IN6: IPv6 address with infinite lifetimes; nodad skips duplicate address
 * detection (the firmware has been using the address already). */
int isboot_if_add_addr6(struct socket *so, const char *ifname, const struct sockaddr_in6 *addr,
    const struct sockaddr_in6 *mask, int nodad);
/* Embeds the interface's zone into a link-local IPv6 address (in6_setscope). */
int isboot_in6_setscope(struct sockaddr_in6 *sa, struct ifnet *ifp);
/* Adds a static route in FIB 0 (rib_action RTM_ADD in the network epoch). mask NULL makes a
 * host route; gw NULL an interface (on-link) route through ifp. */
int isboot_route_add(struct sockaddr *dst, struct sockaddr *mask, struct sockaddr *gw,
    struct ifnet *ifp);
/* Deletes a static route added by isboot_route_add (rib_action RTM_DELETE in the epoch). */
int isboot_route_delete(struct sockaddr *dst, struct sockaddr *mask, struct sockaddr *gw,
    struct ifnet *ifp);
/* 1 when some interface already has this address (ifa_ifwithaddr_check; needs curvnet). */
int isboot_addr_exists(const struct sockaddr *sa);
/* SIOCDIFADDR / SIOCDIFADDR_IN6: removes one address from the interface. */
int isboot_if_del_addr4(struct socket *so, const char *ifname, const struct sockaddr_in *addr);
int isboot_if_del_addr6(struct socket *so, const char *ifname, const struct sockaddr_in6 *addr);
/* The interface's index (its IPv6 zone for link-local addresses). */
int isboot_if_index(struct ifnet *ifp);
/* Creates a clone interface by name, e.g. "em0.100" for VLAN 100 on em0 (if_clone_create). */
int isboot_if_clone_create(char *name, size_t len);
int isboot_if_clone_destroy(const char *name);

/* ---- kernel sockets ---- */

int isboot_socreate(int domain, struct socket **so, int type, int proto);
int isboot_so_setopt_int(struct socket *so, int level, int name, int value);
/* Installs receive and send upcalls and the receive low-water mark, each under its sockbuf lock. */
void isboot_so_upcalls_set(struct socket *so, int (*rcv)(struct socket *, void *, int),
    int (*snd)(struct socket *, void *, int), void *arg, int rcv_lowat);
/* Removes both upcalls under their sockbuf locks; once it returns, no upcall runs any more. */
void isboot_so_upcalls_clear(struct socket *so);
void isboot_so_set_rcv_lowat(struct socket *so, int lowat);
/* In a receive upcall (sockbuf lock held): enough data for the low-water mark, EOF or an error. */
int isboot_so_rcv_ready(struct socket *so);
/* Connection state: 1 connected, 0 still connecting, -1 failed or closed (*error set). */
int isboot_so_conn_state(struct socket *so, int *error);
/* Non-blocking receive into `a`, then on into `b` (blen may be 0) in the same call: a scatter
 * read of a data segment into a CCB and the next PDU's header into the session's buffer.
 * Non-blocking send of one kernel buffer. *done gets the bytes moved. Return values as
 * soreceive/sosend: 0, EWOULDBLOCK/EAGAIN when nothing could move, else the error. A receive of
 * 0 bytes with result 0 means the peer closed. */
int isboot_so_recv2(struct socket *so, void *a, size_t alen, void *b, size_t blen, size_t *done);
int isboot_so_send(struct socket *so, const void *buf, size_t len, size_t *done);

/* One gather write: `n` (1..ISBOOT_IOV_MAX) pieces, sent in order from the caller's memory
 * (a PDU's header from the session, its data straight from a CCB). */
#define ISBOOT_IOV_MAX 32
struct isboot_iov {
	const void *base;
	size_t len;
};
int isboot_so_sendv(struct socket *so, const struct isboot_iov *v, int n, size_t *done);

/* ---- CAM ---- */

/* Whether a periph of driver `name` (e.g. "da") is attached at path; takes the path lock
 * cam_periph_find() asserts on a match. */
int isboot_periph_attached(struct cam_path *path, const char *name);
/* The unit number of the peripheral driver `name` attached at `path` (da0: 0), or -1. */
int isboot_periph_unit(struct cam_path *path, const char *name);
/* Whether the da disk at path is held: its GEOM provider is open (mounted, or any consumer
 * such as a partition of it open). Sleeps on the GEOM topology lock: thread context only. */
int isboot_disk_held(struct cam_path *path);

/* ---- executor hosting ---- */

void isboot_task_init(struct task *task, void (*fn)(void *, int), void *ctx);
/* Creates a thread taskqueue stored at *tqp; tqp must stay valid until taskqueue_free(). */
int isboot_taskqueue_create(const char *name, struct taskqueue **tqp);
int isboot_taskqueue_start(struct taskqueue **tq, const char *name);
void isboot_callout_init_mtx(struct callout *c, struct mtx *m);
int isboot_callout_drain(struct callout *c);
int isboot_callout_stop(struct callout *c);
void isboot_mtx_init(struct mtx *m, const char *name, int spin);
void isboot_mtx_lock(struct mtx *m);
void isboot_mtx_unlock(struct mtx *m);
void isboot_mtx_lock_spin(struct mtx *m);
void isboot_mtx_unlock_spin(struct mtx *m);
void isboot_mtx_destroy(struct mtx *m);
/* Monotonic uptime in sbintime_t (sbinuptime). */
int64_t isboot_sbinuptime(void);
/* Sleeps at least ms milliseconds (pause_sbt); never sleeps forever. */
void isboot_pause_ms(const char *wmesg, unsigned int ms);
/* The kernel's maximum I/O size (maxphys, MAXPHYS before 13.0). */
unsigned long isboot_maxphys(void);

#endif
