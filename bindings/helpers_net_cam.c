/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Wrappers for kernel macros and inline functions used by the runtime glue. See
 * helpers_net_cam.h for the contract of each; nothing here decides anything.
 */
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/proc.h>
#include <sys/priority.h>
#include <sys/socket.h>
#include <sys/socketvar.h>
#include <sys/sockio.h>
#include <sys/sockopt.h>
#include <sys/taskqueue.h>
#include <sys/callout.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/epoch.h>

#include <net/if.h>
#include <net/if_var.h>
#include <net/if_clone.h>
#include <net/route.h>
#include <net/route/route_ctl.h>
#include <net/vnet.h>

#include <netinet/in.h>
#include <netinet/in_var.h>
#include <netinet6/in6_var.h>
#include <netinet6/nd6.h>
#include <netinet6/scope6_var.h>

#include <cam/cam.h>
#include <cam/cam_ccb.h>
#include <cam/cam_xpt.h>
#include <cam/cam_periph.h>
#include <geom/geom.h>

#include "helpers_net_cam.h"

/* ---- context ---- */

int
isboot_with_vnet0(int (*fn)(void *), void *arg)
{
	int error;

	CURVNET_SET(vnet0);
	error = fn(arg);
	CURVNET_RESTORE();
	return (error);
}

/*
 * NET_EPOCH_ENTER depends on a kernel option: with options EPOCH_TRACE, struct epoch_tracker
 * grows five fields and _epoch_enter_preempt()/_epoch_exit_preempt() take (file, line) too
 * (sys/epoch.h), and the kernel fills the larger tracker. A module built without the kernel's
 * opt_global.h (no KERNBUILDDIR) would hand such a kernel a tracker that is too small: the
 * kernel writes past it on our stack. So the tracker here has room for the traced layout and
 * the calls always pass file and line: a kernel without EPOCH_TRACE ignores both (two extra
 * register arguments in the amd64 calling convention), one with it gets what it expects.
 */
struct isboot_epoch_tracker_traced {
	struct epoch_tracker et;
#ifndef EPOCH_TRACE
	/* et_epoch, et_tlink, et_file, et_line, et_flags of the traced layout. */
	void *trace[3];
	int trace_line, trace_flags;
#endif
};
typedef void isboot_epoch_call_t(epoch_t, epoch_tracker_t, const char *, int);

int
isboot_with_net_epoch(int (*fn)(void *), void *arg)
{
	struct isboot_epoch_tracker_traced t;
	int error;

	memset(&t, 0, sizeof(t));
	((isboot_epoch_call_t *)(uintptr_t)_epoch_enter_preempt)(net_epoch_preempt, &t.et,
	    __FILE__, __LINE__);
	error = fn(arg);
	((isboot_epoch_call_t *)(uintptr_t)_epoch_exit_preempt)(net_epoch_preempt, &t.et,
	    __FILE__, __LINE__);
	return (error);
}

struct thread *
isboot_curthread(void)
{
	return (curthread);
}

int
isboot_ifnet_foreach(int (*cb)(struct ifnet *, void *), void *arg)
{
#if __FreeBSD_version >= 1400000
	return (if_foreach(cb, arg));
#else
	struct ifnet *ifp;
	int error = 0;

	NET_EPOCH_ASSERT();
	CK_STAILQ_FOREACH(ifp, &V_ifnet, if_link) {
		error = cb(ifp, arg);
		if (error != 0)
			break;
	}
	return (error);
#endif
}

/* ---- interface configuration ---- */

int
isboot_if_up(struct socket *so, const char *ifname)
{
	struct ifreq ifr;
	int error, flags;

	memset(&ifr, 0, sizeof(ifr));
	strlcpy(ifr.ifr_name, ifname, sizeof(ifr.ifr_name));
	error = ifioctl(so, SIOCGIFFLAGS, (caddr_t)&ifr, curthread);
	if (error != 0)
		return (error);
	flags = (ifr.ifr_flags & 0xffff) | (ifr.ifr_flagshigh << 16);
	if ((flags & IFF_UP) != 0)
		return (0);
	flags |= IFF_UP;
	ifr.ifr_flags = flags & 0xffff;
	ifr.ifr_flagshigh = flags >> 16;
	return (ifioctl(so, SIOCSIFFLAGS, (caddr_t)&ifr, curthread));
}

int
isboot_if_set_vlan_pcp(struct socket *so, const char *ifname, int pcp)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	strlcpy(ifr.ifr_name, ifname, sizeof(ifr.ifr_name));
	ifr.ifr_lan_pcp = pcp;
	return (ifioctl(so, SIOCSLANPCP, (caddr_t)&ifr, curthread));
}

int
isboot_if_add_addr4(struct socket *so, const char *ifname, const struct sockaddr_in *addr,
    const struct sockaddr_in *mask, const struct sockaddr_in *broadcast)
{
	struct in_aliasreq ifra;

	memset(&ifra, 0, sizeof(ifra));
	strlcpy(ifra.ifra_name, ifname, sizeof(ifra.ifra_name));
	ifra.ifra_addr = *addr;
	ifra.ifra_mask = *mask;
	if (broadcast != NULL)
		ifra.ifra_broadaddr = *broadcast;
	return (ifioctl(so, SIOCAIFADDR, (caddr_t)&ifra, curthread));
}

int
isboot_if_add_addr6(struct socket *so, const char *ifname, const struct sockaddr_in6 *addr,
    const struct sockaddr_in6 *mask, int nodad)
{
	struct in6_aliasreq ifra;

	memset(&ifra, 0, sizeof(ifra));
	strlcpy(ifra.ifra_name, ifname, sizeof(ifra.ifra_name));
	ifra.ifra_addr = *addr;
	ifra.ifra_prefixmask = *mask;
	ifra.ifra_lifetime.ia6t_vltime = ND6_INFINITE_LIFETIME;
	ifra.ifra_lifetime.ia6t_pltime = ND6_INFINITE_LIFETIME;
	if (nodad)
		ifra.ifra_flags |= IN6_IFF_NODAD;
	return (ifioctl(so, SIOCAIFADDR_IN6, (caddr_t)&ifra, curthread));
}

int
isboot_in6_setscope(struct sockaddr_in6 *sa, struct ifnet *ifp)
{
	return (in6_setscope(&sa->sin6_addr, ifp, NULL));
}

struct route_args {
	int cmd;
	struct rt_addrinfo info;
	struct rib_cmd_info rc;
};

static int
isboot_route_epoch(void *arg)
{
	struct route_args *a = arg;

	return (rib_action(RT_DEFAULT_FIB, a->cmd, &a->info, &a->rc));
}

/* One static route, added or deleted: the same rt_addrinfo describes both. */
static int
isboot_route(int cmd, int flags, struct sockaddr *dst, struct sockaddr *mask,
    struct sockaddr *gw, struct ifnet *ifp)
{
	struct route_args a;

	memset(&a, 0, sizeof(a));
	a.cmd = cmd;
	a.info.rti_flags = flags | RTF_STATIC;
	a.info.rti_info[RTAX_DST] = dst;
	if (mask != NULL)
		a.info.rti_info[RTAX_NETMASK] = mask;
	else
		a.info.rti_flags |= RTF_HOST;
	if (gw != NULL) {
		a.info.rti_flags |= RTF_GATEWAY;
		a.info.rti_info[RTAX_GATEWAY] = gw;
	}
	a.info.rti_ifp = ifp;
	return (isboot_with_net_epoch(isboot_route_epoch, &a));
}

int
isboot_route_add(struct sockaddr *dst, struct sockaddr *mask, struct sockaddr *gw,
    struct ifnet *ifp)
{
	return (isboot_route(RTM_ADD, RTF_UP, dst, mask, gw, ifp));
}

int
isboot_route_delete(struct sockaddr *dst, struct sockaddr *mask, struct sockaddr *gw,
    struct ifnet *ifp)
{
	return (isboot_route(RTM_DELETE, 0, dst, mask, gw, ifp));
}

int
isboot_addr_exists(const struct sockaddr *sa)
{
	return (ifa_ifwithaddr_check(sa));
}

int
isboot_if_del_addr4(struct socket *so, const char *ifname, const struct sockaddr_in *addr)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	strlcpy(ifr.ifr_name, ifname, sizeof(ifr.ifr_name));
	memcpy(&ifr.ifr_addr, addr, sizeof(*addr));
	return (ifioctl(so, SIOCDIFADDR, (caddr_t)&ifr, curthread));
}

int
isboot_if_del_addr6(struct socket *so, const char *ifname, const struct sockaddr_in6 *addr)
{
	struct in6_ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	strlcpy(ifr.ifr_name, ifname, sizeof(ifr.ifr_name));
	ifr.ifr_addr = *addr;
	return (ifioctl(so, SIOCDIFADDR_IN6, (caddr_t)&ifr, curthread));
}

int
isboot_if_index(struct ifnet *ifp)
{
	return (if_getindex(ifp));
}

int
isboot_if_clone_create(char *name, size_t len)
{
	return (if_clone_create(name, len, NULL));
}

int
isboot_if_clone_destroy(const char *name)
{
	return (if_clone_destroy(name));
}

/* ---- kernel sockets ---- */

int
isboot_socreate(int domain, struct socket **so, int type, int proto)
{
	return (socreate(domain, so, type, proto, curthread->td_ucred, curthread));
}

int
isboot_so_setopt_int(struct socket *so, int level, int name, int value)
{
	struct sockopt sopt;

	memset(&sopt, 0, sizeof(sopt));
	sopt.sopt_dir = SOPT_SET;
	sopt.sopt_level = level;
	sopt.sopt_name = name;
	sopt.sopt_val = &value;
	sopt.sopt_valsize = sizeof(value);
	sopt.sopt_td = NULL;
	return (sosetopt(so, &sopt));
}

void
isboot_so_upcalls_set(struct socket *so, int (*rcv)(struct socket *, void *, int),
    int (*snd)(struct socket *, void *, int), void *arg, int rcv_lowat)
{
	SOCKBUF_LOCK(&so->so_rcv);
	so->so_rcv.sb_lowat = rcv_lowat;
	soupcall_set(so, SO_RCV, rcv, arg);
	SOCKBUF_UNLOCK(&so->so_rcv);
	SOCKBUF_LOCK(&so->so_snd);
	soupcall_set(so, SO_SND, snd, arg);
	SOCKBUF_UNLOCK(&so->so_snd);
}

void
isboot_so_upcalls_clear(struct socket *so)
{
	/*
	 * Upcalls run with their sockbuf lock held; clearing under the same lock means none runs
	 * after this returns, so the argument may be freed afterwards.
	 */
	SOCKBUF_LOCK(&so->so_rcv);
	if (so->so_rcv.sb_upcall != NULL)
		soupcall_clear(so, SO_RCV);
	SOCKBUF_UNLOCK(&so->so_rcv);
	SOCKBUF_LOCK(&so->so_snd);
	if (so->so_snd.sb_upcall != NULL)
		soupcall_clear(so, SO_SND);
	SOCKBUF_UNLOCK(&so->so_snd);
}

/*
 * Never above half the buffer: sosetopt(SO_RCVLOWAT) caps the mark at sb_hiwat, since the buffer
 * never holds more, and waiting for a full buffer would also close the receive window and stop
 * the sender until the reader catches up.
 */
void
isboot_so_set_rcv_lowat(struct socket *so, int lowat)
{
	u_int cap, want;

	want = lowat > 1 ? (u_int)lowat : 1;
	SOCKBUF_LOCK(&so->so_rcv);
	cap = so->so_rcv.sb_hiwat / 2;
	so->so_rcv.sb_lowat = want > cap ? (cap > 0 ? cap : 1) : want;
	SOCKBUF_UNLOCK(&so->so_rcv);
}

int
isboot_so_rcv_ready(struct socket *so)
{
	SOCKBUF_LOCK_ASSERT(&so->so_rcv);
	return (sbavail(&so->so_rcv) >= (u_int)so->so_rcv.sb_lowat ||
	    (so->so_rcv.sb_state & SBS_CANTRCVMORE) != 0 || so->so_error != 0);
}

int
isboot_so_conn_state(struct socket *so, int *error)
{
	int state;

	SOCK_LOCK(so);
	if (so->so_error != 0) {
		*error = so->so_error;
		state = -1;
	} else if ((so->so_state & SS_ISCONNECTED) != 0) {
		state = 1;
	} else if ((so->so_state & SS_ISCONNECTING) != 0) {
		state = 0;
	} else {
		*error = ECONNABORTED;
		state = -1;
	}
	SOCK_UNLOCK(so);
	return (state);
}

static void
isboot_uio_init(struct uio *uio, struct iovec *iov, void *buf, size_t len, enum uio_rw rw)
{
	iov->iov_base = buf;
	iov->iov_len = len;
	memset(uio, 0, sizeof(*uio));
	uio->uio_iov = iov;
	uio->uio_iovcnt = 1;
	uio->uio_offset = 0;
	uio->uio_resid = len;
	uio->uio_segflg = UIO_SYSSPACE;
	uio->uio_rw = rw;
	uio->uio_td = curthread;
}

int
isboot_so_recv2(struct socket *so, void *a, size_t alen, void *b, size_t blen, size_t *done)
{
	struct iovec iov[2];
	struct uio uio;
	int error, flags;

	iov[0].iov_base = a;
	iov[0].iov_len = alen;
	iov[1].iov_base = b;
	iov[1].iov_len = blen;
	isboot_uio_init(&uio, iov, a, alen, UIO_READ);
	uio.uio_iovcnt = blen > 0 ? 2 : 1;
	uio.uio_resid = alen + blen;
	/* soreceive_stream moves the sockbuf's mbufs into the iovecs in order (m_mbuftouio). */
	flags = MSG_DONTWAIT;
	error = soreceive(so, NULL, &uio, NULL, NULL, &flags);
	*done = alen + blen - uio.uio_resid;
	return (error);
}

int
isboot_so_send(struct socket *so, const void *buf, size_t len, size_t *done)
{
	struct uio uio;
	struct iovec iov;
	int error;

	isboot_uio_init(&uio, &iov, __DECONST(void *, buf), len, UIO_WRITE);
	error = sosend(so, NULL, &uio, NULL, NULL, MSG_DONTWAIT | MSG_NOSIGNAL, curthread);
	*done = len - uio.uio_resid;
	return (error);
}

int
isboot_so_sendv(struct socket *so, const struct isboot_iov *v, int n, size_t *done)
{
	struct iovec iov[ISBOOT_IOV_MAX];
	struct uio uio;
	size_t len = 0;
	int error, i;

	if (n < 1 || n > ISBOOT_IOV_MAX)
		return (EINVAL);
	for (i = 0; i < n; i++) {
		iov[i].iov_base = __DECONST(void *, v[i].base);
		iov[i].iov_len = v[i].len;
		len += v[i].len;
	}
	isboot_uio_init(&uio, iov, iov[0].iov_base, iov[0].iov_len, UIO_WRITE);
	uio.uio_iovcnt = n;
	uio.uio_resid = len;
	/* sosend copies what the send buffer takes from every iovec, in order, before returning. */
	error = sosend(so, NULL, &uio, NULL, NULL, MSG_DONTWAIT | MSG_NOSIGNAL, curthread);
	*done = len - uio.uio_resid;
	return (error);
}

/* ---- CAM ---- */

int
isboot_periph_attached(struct cam_path *path, const char *name)
{
	struct cam_periph *periph;

	/* cam_periph_find() asserts the path lock of the periph it finds (cam_periph.c). */
	xpt_path_lock(path);
	periph = cam_periph_find(path, __DECONST(char *, name));
	xpt_path_unlock(path);
	return (periph != NULL);
}

int
isboot_periph_unit(struct cam_path *path, const char *name)
{
	struct cam_periph *periph;
	int unit = -1;

	xpt_path_lock(path);
	periph = cam_periph_find(path, __DECONST(char *, name));
	if (periph != NULL)
		unit = (int)periph->unit_number;
	xpt_path_unlock(path);
	return (unit);
}

int
isboot_disk_held(struct cam_path *path)
{
	struct cam_periph *periph;
	struct g_provider *pp;
	char name[32];
	int held = 0;

	xpt_path_lock(path);
	periph = cam_periph_find(path, __DECONST(char *, "da"));
	if (periph != NULL)
		snprintf(name, sizeof(name), "%s%u", periph->periph_name, periph->unit_number);
	xpt_path_unlock(path);
	if (periph == NULL)
		return (0);
	/* da's disk is the GEOM provider daN; open partitions and mounts count on it. */
	g_topology_lock();
	pp = g_provider_by_name(name);
	if (pp != NULL)
		held = pp->acr > 0 || pp->acw > 0 || pp->ace > 0;
	g_topology_unlock();
	return (held);
}

/* ---- executor hosting ---- */

void
isboot_task_init(struct task *task, void (*fn)(void *, int), void *ctx)
{
	TASK_INIT(task, 0, fn, ctx);
}

int
isboot_taskqueue_create(const char *name, struct taskqueue **tqp)
{
	/*
	 * taskqueue_thread_enqueue() wakes the queue whose address is stored at its context
	 * argument, so tqp must stay valid until taskqueue_free().
	 */
	*tqp = taskqueue_create(name, M_WAITOK, taskqueue_thread_enqueue, tqp);
	return (*tqp == NULL ? ENOMEM : 0);
}

int
isboot_taskqueue_start(struct taskqueue **tq, const char *name)
{
	return (taskqueue_start_threads(tq, 1, PI_NET, "%s", name));
}

void
isboot_callout_init_mtx(struct callout *c, struct mtx *m)
{
	callout_init_mtx(c, m, 0);
}

int
isboot_callout_drain(struct callout *c)
{
	return (callout_drain(c));
}

int
isboot_callout_stop(struct callout *c)
{
	return (callout_stop(c));
}

void
isboot_mtx_init(struct mtx *m, const char *name, int spin)
{
	/*
	 * Every executor lock shares one name (one WITNESS class); DUPOK keeps WITNESS from
	 * treating two different instances held together as a recursion.
	 */
	mtx_init(m, name, NULL, spin ? (MTX_SPIN | MTX_DUPOK) : MTX_DEF);
}

void
isboot_mtx_lock(struct mtx *m)
{
	mtx_lock(m);
}

void
isboot_mtx_unlock(struct mtx *m)
{
	mtx_unlock(m);
}

void
isboot_mtx_lock_spin(struct mtx *m)
{
	mtx_lock_spin(m);
}

void
isboot_mtx_unlock_spin(struct mtx *m)
{
	mtx_unlock_spin(m);
}

void
isboot_mtx_destroy(struct mtx *m)
{
	mtx_destroy(m);
}

int64_t
isboot_sbinuptime(void)
{
	return (sbinuptime());
}

void
isboot_pause_ms(const char *wmesg, unsigned int ms)
{
	if (ms == 0)
		ms = 1;
	(void)pause_sbt(wmesg, SBT_1MS * (sbintime_t)ms, 0, 0);
}

unsigned long
isboot_maxphys(void)
{
#if __FreeBSD_version >= 1300000
	return (maxphys);
#else
	return (MAXPHYS);
#endif
}
