/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Kernel sockets (kern/uipc_socket.c, kern/uipc_sockbuf.c) over host TCP. A struct socket has
 * its real layout and locks (so_lock "socket", so_rcv_mtx "so_rcv", so_snd_mtx "so_snd", the
 * sockbufs' sb_mtx pointing at them); the bytes live in the host's socket. The host's network
 * thread reports readiness (kpi_sock_event), and this file plays the protocol's part: it
 * updates sb_acc, SBS_CANTRCVMORE, so_error and so_state under the right locks and calls the
 * upcalls with the sockbuf lock held, as sorwakeup_locked/sowwakeup_locked -> sowakeup do.
 */
#include "kpi.h"

#define SOCK_MAX 32

struct ksock {
	struct socket *so;
	int handle;		/* host TCP handle, -1 for a datagram (ioctl) socket */
	int family;
	int closed;
	int connected_seen;
};

static struct ksock socks[SOCK_MAX];
static void *sock_cv;
static int nopen;

static struct ksock *
ks_of(struct socket *so, const char *op)
{
	int i;

	for (i = 0; i < SOCK_MAX; i++)
		if (socks[i].so == so) {
			if (socks[i].closed) {
				rule(R_SOCKET_STATE, "%s on a socket already closed (freed)", op);
				return (NULL);
			}
			return (&socks[i]);
		}
	rule(R_SOCKET_STATE, "%s on %p, which is not a socket", op, so);
	return (NULL);
}

static int
he_errno(int he)
{
	switch (he) {
	case HE_OK:		return (0);
	case HE_AGAIN:		return (EWOULDBLOCK);
	case HE_INPROGRESS:	return (EINPROGRESS);
	case HE_CONNREFUSED:	return (ECONNREFUSED);
	case HE_CONNRESET:	return (ECONNRESET);
	case HE_PIPE:		return (EPIPE);
	case HE_TIMEDOUT:	return (ETIMEDOUT);
	case HE_NETUNREACH:	return (ENETUNREACH);
	case HE_HOSTUNREACH:	return (EHOSTUNREACH);
	case HE_NOTCONN:	return (ENOTCONN);
	case HE_NOMEM:		return (ENOBUFS);
	default:		return (EIO);
	}
}

/* kern/uipc_socket.c socreate -> soalloc (M_WAITOK): may sleep. */
int
socreate(int dom, struct socket **aso, int type, int proto, struct ucred *cred,
    struct thread *td __unused)
{
	struct socket *so;
	struct ksock *ks = NULL;
	int i, e;

	stack_probe();
	may_sleep("socreate");
	if (cred == NULL)
		return (EINVAL);
	if (dom != AF_INET && dom != AF_INET6)
		return (EAFNOSUPPORT);
	so = kmem_alloc(sizeof(*so));
	so->so_type = (short)type;
	so->so_vnet = vnet0;
	so->so_cred = cred;
	mtx_init(&so->so_lock, "socket", NULL, MTX_DEF | MTX_DUPOK);
	mtx_init(&so->so_snd_mtx, "so_snd", NULL, MTX_DEF);
	mtx_init(&so->so_rcv_mtx, "so_rcv", NULL, MTX_DEF);
	so->so_snd.sb_mtx = &so->so_snd_mtx;
	so->so_rcv.sb_mtx = &so->so_rcv_mtx;
	so->so_rcv.sb_lowat = 1;
	so->so_snd.sb_lowat = 2048;
	/*
	 * netinet/tcp_usrreq.c tcp_usr_attach: soreserve(so, V_tcp_sendspace, V_tcp_recvspace),
	 * net.inet.tcp.sendspace 32 KiB (tcp_output.c) and recvspace 64 KiB (tcp_input.c). The
	 * receive buffer's automatic growth (tcp_input.c tcp_autorcvbuf, up to
	 * net.inet.tcp.recvbuf_max) is not modelled: sb_hiwat stays at its smallest, the value a
	 * reader must cope with.
	 */
	so->so_snd.sb_hiwat = 32 * 1024;
	so->so_rcv.sb_hiwat = 64 * 1024;
	host_cv_lock(sock_cv);
	for (i = 0; i < SOCK_MAX; i++)
		if (socks[i].so == NULL || socks[i].closed) {
			ks = &socks[i];
			break;
		}
	if (ks == NULL)
		host_panic("kmodsim: too many sockets");
	host_memset(ks, 0, sizeof(*ks));
	ks->so = so;
	ks->handle = -1;
	ks->family = dom;
	nopen++;
	host_cv_unlock(sock_cv);
	if (type == SOCK_STREAM) {
		(void)proto;
		e = host_tcp_open(dom == AF_INET ? 4 : 6, so, &ks->handle);
		if (e != HE_OK) {
			host_cv_lock(sock_cv);
			ks->closed = 1;
			nopen--;
			host_cv_unlock(sock_cv);
			return (he_errno(e));
		}
	}
	*aso = so;
	return (0);
}

/* kern/uipc_socket.c sosetopt: with sopt_td NULL the value is copied from kernel space. */
int
sosetopt(struct socket *so, struct sockopt *sopt)
{
	stack_probe();
	if (ks_of(so, "sosetopt") == NULL)
		return (EINVAL);
	if (sopt->sopt_dir != SOPT_SET || sopt->sopt_val == NULL)
		return (EINVAL);
	return (0);
}

/* kern/uipc_socket.c soupcall_set: SOCK_BUF_LOCK_ASSERT(so, which). */
void
soupcall_set(struct socket *so, sb_which which, so_upcall_t func, void *arg)
{
	struct sockbuf *sb = which == SO_RCV ? &so->so_rcv : &so->so_snd;

	stack_probe();
	if (!mtx_is_owned(soeventmtx(so, which)))
		rule(R_UPCALL_LOCK, "soupcall_set(%s) without the sockbuf lock",
		    which == SO_RCV ? "SO_RCV" : "SO_SND");
	sb->sb_upcall = func;
	sb->sb_upcallarg = arg;
	sb->sb_flags |= SB_UPCALL;
}

/* kern/uipc_socket.c soupcall_clear: lock asserted, an upcall must be set. */
void
soupcall_clear(struct socket *so, sb_which which)
{
	struct sockbuf *sb = which == SO_RCV ? &so->so_rcv : &so->so_snd;

	stack_probe();
	if (!mtx_is_owned(soeventmtx(so, which)))
		rule(R_UPCALL_LOCK, "soupcall_clear(%s) without the sockbuf lock",
		    which == SO_RCV ? "SO_RCV" : "SO_SND");
	if (sb->sb_upcall == NULL)
		rule(R_UPCALL_CLEAR_NONE, "soupcall_clear: no upcall to clear");
	sb->sb_upcall = NULL;
	sb->sb_upcallarg = NULL;
	sb->sb_flags &= ~SB_UPCALL;
}

/* Whether this IPv6 destination can be reached: link-local needs a valid zone. */
int net_v6_linklocal(const unsigned char *a);
int net_zone_valid(int zone);

/*
 * kern/uipc_socket.c soconnect -> tcp_usr_connect/tcp6_usr_connect: the handshake starts,
 * SS_ISCONNECTING is set and completion comes later (soisconnected). IPv6: in6_pcbconnect
 * embeds the zone of a link-local address from sin6_scope_id (netinet6/scope6.c
 * sa6_embedscope); without one, no route matches the unscoped fe80:: address.
 */
int
soconnect(struct socket *so, struct sockaddr *nam, struct thread *td __unused)
{
	struct ksock *ks = ks_of(so, "soconnect");
	unsigned char addr[16];
	unsigned short port;
	int e;

	stack_probe();
	if (ks == NULL)
		return (EINVAL);
	if (ks->handle < 0)
		return (EOPNOTSUPP);
	if (nam->sa_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)nam;

		host_memcpy(addr, &sin->sin_addr, 4);
		port = sin->sin_port;
		kpi_log("soconnect(%u.%u.%u.%u:%u)", addr[0], addr[1], addr[2], addr[3],
		    ntohs(port));
	} else if (nam->sa_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)nam;

		host_memcpy(addr, &sin6->sin6_addr, 16);
		port = sin6->sin6_port;
		if (net_v6_linklocal(addr)) {
			int zone = sin6->sin6_scope_id;

			if (zone == 0)
				zone = (addr[2] << 8) | addr[3];	/* embedded (KAME) */
			if (zone == 0)
				return (EHOSTUNREACH);
			if (!net_zone_valid(zone))
				return (ENXIO);
			/* The emulated link: the neighbour on the boot link is the host's ::1. */
			host_memset(addr, 0, 16);
			addr[15] = 1;
		}
	} else
		return (EAFNOSUPPORT);
	SOCK_LOCK(so);
	so->so_state |= SS_ISCONNECTING;
	SOCK_UNLOCK(so);
	e = host_tcp_connect(ks->handle, addr, port);
	if (e == HE_OK || e == HE_INPROGRESS)
		return (0);
	SOCK_LOCK(so);
	so->so_state &= ~SS_ISCONNECTING;
	SOCK_UNLOCK(so);
	return (he_errno(e));
}

static void
sowakeup(struct socket *so, struct sockbuf *sb, const char *which)
{
	int before, ret;

	if (sb->sb_upcall == NULL)
		return;
	if (sb == &so->so_rcv && sb->sb_lowat > sb->sb_hiwat)
		rule(R_RCV_LOWAT, "receive low-water mark %u above the buffer's %u bytes",
		    sb->sb_lowat, sb->sb_hiwat);
	before = context_enter("a socket upcall");
	ret = sb->sb_upcall(so, sb->sb_upcallarg, M_NOWAIT);
	context_leave("a socket upcall", before);
	if (ret == SU_ISCONNECTED && sb == &so->so_snd)
		rule(R_UPCALL_RETURN, "SO_SND upcall returned SU_ISCONNECTED");
	else if (ret != SU_OK && ret != SU_ISCONNECTED)
		rule(R_UPCALL_RETURN, "%s upcall returned %d", which, ret);
}

/*
 * From the host's network thread: new data, send space, EOF or an error on so. As the
 * protocol would: soisconnected/soisdisconnected, socantrcvmore, so_error, then
 * sorwakeup_locked/sowwakeup_locked with the sockbuf lock held around the upcall.
 */
void
kpi_sock_event(void *kso, int ev)
{
	struct socket *so = kso;
	struct ksock *ks = NULL;
	int i, err, state, connected_now = 0;

	host_cv_lock(sock_cv);
	for (i = 0; i < SOCK_MAX; i++)
		if (socks[i].so == so && !socks[i].closed)
			ks = &socks[i];
	host_cv_unlock(sock_cv);
	if (ks == NULL)
		return;
	state = host_tcp_state(ks->handle);
	err = (ev & HEV_ERR) ? he_errno(host_tcp_error(ks->handle)) : 0;
	SOCK_LOCK(so);
	if (err != 0 && so->so_error == 0)
		so->so_error = (u_short)err;
	if (state == 1 && (so->so_state & SS_ISCONNECTED) == 0) {
		so->so_state = (so->so_state & ~SS_ISCONNECTING) | SS_ISCONNECTED;
		connected_now = 1;
	} else if (state < 0 && (so->so_state & SS_ISCONNECTING) != 0) {
		so->so_state &= ~SS_ISCONNECTING;
		if (so->so_error == 0)
			so->so_error = ECONNREFUSED;
	}
	SOCK_UNLOCK(so);
	if (connected_now)
		ks->connected_seen = 1;

	SOCKBUF_LOCK(&so->so_rcv);
	so->so_rcv.sb_acc = (u_int)host_tcp_avail(ks->handle);
	if ((ev & HEV_HUP) != 0 || state < 0 || err != 0)
		so->so_rcv.sb_state |= SBS_CANTRCVMORE;
	if ((ev & (HEV_READ | HEV_HUP | HEV_ERR)) != 0)
		sowakeup(so, &so->so_rcv, "SO_RCV");
	SOCKBUF_UNLOCK(&so->so_rcv);

	if ((ev & (HEV_WRITE | HEV_ERR | HEV_HUP)) != 0 || connected_now) {
		SOCKBUF_LOCK(&so->so_snd);
		if (err != 0 || state < 0)
			so->so_snd.sb_state |= SBS_CANTSENDMORE;
		sowakeup(so, &so->so_snd, "SO_SND");
		SOCKBUF_UNLOCK(&so->so_snd);
	}
}

static int
take_error(struct socket *so)
{
	int e;

	SOCK_LOCK(so);
	e = so->so_error;
	so->so_error = 0;
	SOCK_UNLOCK(so);
	return (e);
}

/* Bytes sosend and soreceive moved between the module's memory and the sockets (the socket's own
 * copy, m_uiotombuf / m_copydata in FreeBSD). */
static hu64 sock_sent_bytes, sock_received_bytes;
/* Calls of soreceive (and how many found nothing: EWOULDBLOCK) and of sosend: the system calls a
 * kernel consumer makes per I/O. */
static hu64 sock_recv_calls, sock_recv_empty, sock_send_calls;

void
sock_moved(hu64 *sent, hu64 *received)
{
	*sent = __atomic_load_n(&sock_sent_bytes, __ATOMIC_RELAXED);
	*received = __atomic_load_n(&sock_received_bytes, __ATOMIC_RELAXED);
}

void
sock_calls(hu64 *recv, hu64 *recv_empty, hu64 *send)
{
	*recv = __atomic_load_n(&sock_recv_calls, __ATOMIC_RELAXED);
	*recv_empty = __atomic_load_n(&sock_recv_empty, __ATOMIC_RELAXED);
	*send = __atomic_load_n(&sock_send_calls, __ATOMIC_RELAXED);
}

/* kern/uipc_socket.c soreceive (soreceive_stream for TCP) with MSG_DONTWAIT, one or two kernel
 * iovecs (what the module passes): what the receive buffer holds goes into them in order
 * (m_mbuftouio walks uio_iov with uiomove), up to uio_resid; 0 once anything moved, EWOULDBLOCK
 * when nothing was there. */
int
soreceive(struct socket *so, struct sockaddr **psa, struct uio *uio, struct mbuf **mp0,
    struct mbuf **controlp, int *flagsp)
{
	struct ksock *ks = ks_of(so, "soreceive");
	struct iovec none = { NULL, 0 }, *v, *v1;
	hsize_t done, total = 0;
	int eof = 0, e = 0, error = 0;

	stack_probe();
	if (ks == NULL)
		return (EBADF);
	if (psa != NULL || mp0 != NULL || controlp != NULL || uio->uio_iovcnt < 1 ||
	    uio->uio_iovcnt > 2 || uio->uio_segflg != UIO_SYSSPACE)
		return (EOPNOTSUPP);
	if (flagsp == NULL || (*flagsp & MSG_DONTWAIT) == 0)
		may_sleep("soreceive without MSG_DONTWAIT");
	__atomic_fetch_add(&sock_recv_calls, 1, __ATOMIC_RELAXED);
	SOCKBUF_LOCK(&so->so_rcv);
	v = uio->uio_iov;
	v1 = uio->uio_iovcnt == 2 ? &v[1] : &none;
	/* One host read for both, as soreceive fills a uio in one pass. */
	e = host_tcp_recv2(ks->handle, v->iov_base, v->iov_len, v1->iov_base, v1->iov_len, &total,
	    &eof);
	done = total < v->iov_len ? total : v->iov_len;
	v->iov_base = (char *)v->iov_base + done;
	v->iov_len -= done;
	v1->iov_base = (char *)v1->iov_base + (total - done);
	v1->iov_len -= total - done;
	uio->uio_resid -= total;
	so->so_rcv.sb_acc = (u_int)host_tcp_avail(ks->handle);
	if (eof)
		so->so_rcv.sb_state |= SBS_CANTRCVMORE;
	SOCKBUF_UNLOCK(&so->so_rcv);
	__atomic_fetch_add(&sock_received_bytes, total, __ATOMIC_RELAXED);
	if (total > 0 || eof)
		return (0);
	if ((error = take_error(so)) != 0)
		return (error);
	if (e == HE_AGAIN) {
		__atomic_fetch_add(&sock_recv_empty, 1, __ATOMIC_RELAXED);
		return (EWOULDBLOCK);
	}
	return (he_errno(e));
}

/* kern/uipc_socket.c sosend (sosend_generic) with MSG_DONTWAIT | MSG_NOSIGNAL: takes what the
 * send buffer has room for, from each iovec in order (m_uiotombuf), and returns 0 once anything
 * moved; EWOULDBLOCK when nothing could. */
int
sosend(struct socket *so, struct sockaddr *addr, struct uio *uio, struct mbuf *top,
    struct mbuf *control, int flags, struct thread *td __unused)
{
	struct ksock *ks = ks_of(so, "sosend");
	hsize_t done, total = 0;
	int e = 0, error, i;

	stack_probe();
	if (ks == NULL)
		return (EBADF);
	if (addr != NULL || top != NULL || control != NULL || uio->uio_iovcnt < 1 ||
	    uio->uio_segflg != UIO_SYSSPACE)
		return (EOPNOTSUPP);
	if ((flags & MSG_DONTWAIT) == 0)
		may_sleep("sosend without MSG_DONTWAIT");
	__atomic_fetch_add(&sock_send_calls, 1, __ATOMIC_RELAXED);
	if ((error = take_error(so)) != 0)
		return (error);
	SOCKBUF_LOCK(&so->so_snd);
	for (i = 0; i < uio->uio_iovcnt && uio->uio_resid > 0; i++) {
		struct iovec *v = &uio->uio_iov[i];

		if (v->iov_len == 0)
			continue;
		done = 0;
		e = host_tcp_send(ks->handle, v->iov_base, v->iov_len, &done);
		v->iov_base = (char *)v->iov_base + done;
		v->iov_len -= done;
		uio->uio_resid -= done;
		total += done;
		if (v->iov_len > 0)
			break;		/* the send buffer is full */
	}
	SOCKBUF_UNLOCK(&so->so_snd);
	__atomic_fetch_add(&sock_sent_bytes, total, __ATOMIC_RELAXED);
	if (total > 0)
		return (0);
	return (he_errno(e));
}

/* kern/uipc_socket.c soclose: may sleep (disconnect, sx locks); frees the socket. */
int
soclose(struct socket *so)
{
	struct ksock *ks = ks_of(so, "soclose");

	stack_probe();
	if (ks == NULL)
		return (EINVAL);
	may_sleep("soclose");
	if (ks->handle >= 0)
		host_tcp_close(ks->handle);
	mtx_destroy(&so->so_lock);
	mtx_destroy(&so->so_snd_mtx);
	mtx_destroy(&so->so_rcv_mtx);
	host_cv_lock(sock_cv);
	ks->closed = 1;
	nopen--;
	host_cv_unlock(sock_cv);
	/* The struct stays allocated so that a use after close is reported, not undefined. */
	return (0);
}

int
sockets_open(void)
{
	int n;

	host_cv_lock(sock_cv);
	n = nopen;
	host_cv_unlock(sock_cv);
	return (n);
}

void
sock_final_checks(int unloaded)
{
	if (unloaded && sockets_open() != 0)
		rule(R_UNLOAD_LEFTOVER, "%d sockets left open after unload", sockets_open());
}

void
sock_init(void)
{
	if (sock_cv == NULL)
		sock_cv = host_cv_new();
}
