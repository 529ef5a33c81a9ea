/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The Linux half's services to the FreeBSD half (host.h): logging, memory, the clock, threads
 * with their own %gs base, a mutex/condvar pair, and TCP over the loopback interface only.
 *
 * TCP: one network thread (epoll, edge-triggered) reports readiness to the FreeBSD half with
 * kpi_sock_event, as a NIC interrupt thread would. Connections to anything but 127.0.0.0/8 and
 * ::1 are refused before a socket call is made for them. Faults are injected here: a connection
 * can be reset (RST) once a given number of bytes went through it (either way).
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../host.h"
#include "linux.h"

/* ---- logging and panics ---- */

static pthread_mutex_t log_mtx = PTHREAD_MUTEX_INITIALIZER;
int host_quiet;

void
host_vlog(const char *fmt, va_list ap)
{
	if (host_quiet)
		return;
	pthread_mutex_lock(&log_mtx);
	vfprintf(stderr, fmt, ap);
	pthread_mutex_unlock(&log_mtx);
}

void
host_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	host_vlog(fmt, ap);
	va_end(ap);
}

int
host_vformat(char *buf, hsize_t len, const char *fmt, va_list ap)
{
	return (vsnprintf(buf, len, fmt, ap));
}

/* Frame pointers all the way: the module, the FreeBSD half and this file keep them. */
int
host_backtrace(void **frame, hsize_t *out, int max)
{
	void **fp = frame;
	int n = 0;

	while (fp != NULL && n < max) {
		void **next = fp[0];

		if (fp[1] == NULL)
			break;
		out[n++] = (hsize_t)fp[1];
		if (next <= fp || (char *)next - (char *)fp > (1 << 20))
			break;
		fp = next;
	}
	return (n);
}

void
host_panic(const char *why)
{
	hsize_t bt[24];
	int i, n = host_backtrace(__builtin_frame_address(0), bt, 24);

	pthread_mutex_lock(&log_mtx);
	fprintf(stderr, "PANIC: %s\n", why);
	fprintf(stderr, "PANIC-BACKTRACE:");
	for (i = 0; i < n; i++)
		fprintf(stderr, " %#lx", bt[i]);
	fprintf(stderr, "\n");
	fflush(stderr);
	/* The result line, for run.sh: a panic is a scenario's end. */
	printf("PANIC %s\n", why);
	fflush(stdout);
	_exit(70);
}

/* ---- memory and time ---- */

void *
host_alloc(hsize_t align, hsize_t size)
{
	void *p;

	if (align < sizeof(void *))
		align = sizeof(void *);
	if (posix_memalign(&p, align, size ? size : 1) != 0) {
		fprintf(stderr, "kmodsim: out of host memory\n");
		abort();
	}
	return (p);
}

void host_free(void *p) { free(p); }
void host_memcpy(void *d, const void *s, hsize_t n) { memcpy(d, s, n); }
void host_memmove(void *d, const void *s, hsize_t n) { memmove(d, s, n); }
void host_memset(void *d, int c, hsize_t n) { memset(d, c, n); }

hu64
host_now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ((hu64)t.tv_sec * 1000000000ULL + (hu64)t.tv_nsec);
}

void
host_sleep_ns(hu64 ns)
{
	struct timespec t = { (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) };

	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

void host_yield(void) { sched_yield(); }

void
host_random(void *buf, hsize_t len)
{
	if (getrandom(buf, len, 0) != (ssize_t)len)
		host_panic("getrandom failed");
}

/* ---- threads ---- */

void
host_set_gs(void *base)
{
	if (syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)base) != 0)
		host_panic("arch_prctl(ARCH_SET_GS) failed");
}

int
host_thread_id(void)
{
	return ((int)syscall(SYS_gettid));
}

struct tstart {
	void (*fn)(void *);
	void *arg;
	char name[20];
};

static void *
trampoline(void *p)
{
	struct tstart t = *(struct tstart *)p;

	free(p);
	pthread_setname_np(pthread_self(), t.name);
	kpi_thread_attach(t.name);
	t.fn(t.arg);
	return (NULL);
}

int
host_thread_start(void (*fn)(void *), void *arg, const char *name)
{
	pthread_t th;
	pthread_attr_t a;
	struct tstart *t = malloc(sizeof(*t));

	t->fn = fn;
	t->arg = arg;
	snprintf(t->name, sizeof(t->name), "%s", name);
	pthread_attr_init(&a);
	/* Kernel threads get a 16 KiB kernel stack; the harness's own frames need more room. */
	pthread_attr_setstacksize(&a, 1 << 20);
	if (pthread_create(&th, &a, trampoline, t) != 0) {
		free(t);
		return (-1);
	}
	pthread_detach(th);
	return (0);
}

/* ---- mutex + condition variable ---- */

struct hcv {
	pthread_mutex_t m;
	pthread_cond_t c;
};

void *
host_cv_new(void)
{
	struct hcv *h = malloc(sizeof(*h));
	pthread_condattr_t a;
	pthread_mutexattr_t ma;

	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&h->m, &ma);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&h->c, &a);
	return (h);
}

void
host_cv_free(void *cv)
{
	struct hcv *h = cv;

	pthread_cond_destroy(&h->c);
	pthread_mutex_destroy(&h->m);
	free(h);
}

void
host_cv_lock(void *cv)
{
	if (pthread_mutex_lock(&((struct hcv *)cv)->m) != 0)
		host_panic("kmodsim: host mutex misused (relocked)");
}

void
host_cv_unlock(void *cv)
{
	if (pthread_mutex_unlock(&((struct hcv *)cv)->m) != 0)
		host_panic("kmodsim: host mutex misused (unlock)");
}

void host_cv_broadcast(void *cv) { pthread_cond_broadcast(&((struct hcv *)cv)->c); }

int
host_cv_wait(void *cv, hu64 abs_ns)
{
	struct hcv *h = cv;
	struct timespec t;

	if (abs_ns == 0) {
		pthread_cond_wait(&h->c, &h->m);
		return (0);
	}
	t.tv_sec = (time_t)(abs_ns / 1000000000ULL);
	t.tv_nsec = (long)(abs_ns % 1000000000ULL);
	return (pthread_cond_timedwait(&h->c, &h->m, &t) == ETIMEDOUT);
}

/* ---- TCP ---- */

#define HS_MAX 64

enum { HS_FREE, HS_OPEN, HS_CONNECTING, HS_CONNECTED, HS_FAILED };

struct hsock {
	int fd;
	void *kso;
	int state;
	int error;		/* pending HE_*, cleared by host_tcp_error */
	hu64 traffic;		/* bytes both ways, for the reset mark */
	int reset_armed;	/* 1 armed, 2 reset (kernel not told yet), 3 told */
	hu64 reset_at;
};

static struct hsock hs[HS_MAX];
static pthread_mutex_t io_mtx;
static int epfd = -1, evfd = -1;
static struct host_faults faults;
static struct host_net_stats nstats;

struct host_net_stats *
host_net_stats(void)
{
	return (&nstats);
}

/*
 * New faults apply to the connections open now (the first one still unarmed gets the first
 * reset) and to the next ones, until resets_left is used up.
 */
void
host_set_faults(const struct host_faults *f)
{
	int h, armed = 0;

	pthread_mutex_lock(&io_mtx);
	faults = *f;
	for (h = 0; h < HS_MAX; h++) {
		if (hs[h].state != HS_CONNECTED || hs[h].reset_armed != 0)
			continue;
		if (faults.reset_after > 0 && armed < faults.resets_left) {
			hs[h].reset_at = hs[h].traffic + faults.reset_after;
			hs[h].reset_armed = 1;
			armed++;
		}
	}
	pthread_mutex_unlock(&io_mtx);
}

static int
he(int e)
{
	switch (e) {
	case 0: return (HE_OK);
	case EAGAIN: return (HE_AGAIN);
	case EINPROGRESS: return (HE_INPROGRESS);
	case ECONNREFUSED: return (HE_CONNREFUSED);
	case ECONNRESET: return (HE_CONNRESET);
	case EPIPE: return (HE_PIPE);
	case ETIMEDOUT: return (HE_TIMEDOUT);
	case ENETUNREACH: return (HE_NETUNREACH);
	case EHOSTUNREACH: return (HE_HOSTUNREACH);
	case ENOTCONN: return (HE_NOTCONN);
	case ENOMEM: case ENOBUFS: return (HE_NOMEM);
	default: return (HE_OTHER);
	}
}

static void
deliver(int h, int ev)
{
	pthread_mutex_lock(&io_mtx);
	if (hs[h].state != HS_FREE && hs[h].kso != NULL)
		kpi_sock_event(hs[h].kso, ev);
	pthread_mutex_unlock(&io_mtx);
}

static void
net_thread(void *arg)
{
	struct epoll_event evs[32];

	(void)arg;
	for (;;) {
		int n = epoll_wait(epfd, evs, 32, 1000), i;

		for (i = 0; i < n; i++) {
			uint32_t e = evs[i].events;
			int h = (int)evs[i].data.u32, k = 0;

			if (h == HS_MAX) {
				uint64_t v;
				int j;

				/* Injected resets: tell the kernel about each dead connection. */
				if (read(evfd, &v, sizeof(v)) < 0)
					continue;
				for (j = 0; j < HS_MAX; j++)
					if (__atomic_load_n(&hs[j].reset_armed, __ATOMIC_SEQ_CST) == 2) {
						__atomic_store_n(&hs[j].reset_armed, 3, __ATOMIC_SEQ_CST);
						deliver(j, HEV_HUP | HEV_ERR);
					}
				continue;
			}
			pthread_mutex_lock(&io_mtx);
			if (hs[h].state == HS_CONNECTING && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
				int err = 0;
				socklen_t l = sizeof(err);

				getsockopt(hs[h].fd, SOL_SOCKET, SO_ERROR, &err, &l);
				if (err == 0 && (e & EPOLLOUT)) {
					hs[h].state = HS_CONNECTED;
				} else {
					hs[h].state = HS_FAILED;
					hs[h].error = he(err != 0 ? err : ECONNREFUSED);
					k |= HEV_ERR;
				}
			}
			pthread_mutex_unlock(&io_mtx);
			if (e & EPOLLIN)
				k |= HEV_READ;
			if (e & EPOLLOUT)
				k |= HEV_WRITE;
			if (e & (EPOLLRDHUP | EPOLLHUP))
				k |= HEV_HUP;
			if (e & EPOLLERR) {
				int err = 0;
				socklen_t l = sizeof(err);

				getsockopt(hs[h].fd, SOL_SOCKET, SO_ERROR, &err, &l);
				if (err != 0)
					hs[h].error = he(err);
				k |= HEV_ERR;
			}
			deliver(h, k);
		}
	}
}

static void
net_start(void)
{
	pthread_mutexattr_t a;
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = HS_MAX };

	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&io_mtx, &a);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, &ev);
	host_thread_start(net_thread, NULL, "swi1: netisr 0");
}

void
host_net_init(void)
{
	if (epfd < 0)
		net_start();
}

int
host_tcp_open(int family, void *kso, int *handle)
{
	int h, fd;

	pthread_mutex_lock(&io_mtx);
	for (h = 0; h < HS_MAX && hs[h].state != HS_FREE; h++)
		;
	if (h == HS_MAX) {
		pthread_mutex_unlock(&io_mtx);
		return (HE_NOMEM);
	}
	fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		pthread_mutex_unlock(&io_mtx);
		return (he(errno));
	}
	memset(&hs[h], 0, sizeof(hs[h]));
	hs[h].fd = fd;
	hs[h].kso = kso;
	hs[h].state = HS_OPEN;
	pthread_mutex_unlock(&io_mtx);
	*handle = h;
	return (HE_OK);
}

static int
loopback(const unsigned char *addr, int v6)
{
	static const unsigned char one[16] = { [15] = 1 };

	return (v6 ? memcmp(addr, one, 16) == 0 : addr[0] == 127);
}

int
host_tcp_connect(int h, const unsigned char *addr, unsigned short port_be)
{
	int v6, e;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
	    .data.u32 = (uint32_t)h };
	struct sockaddr_storage ss;
	socklen_t sl;
	int domain;
	socklen_t dl = sizeof(domain);

	getsockopt(hs[h].fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl);
	v6 = domain == AF_INET6;
	/* The only place the harness reaches the network: loopback or nothing. */
	if (!loopback(addr, v6)) {
		__atomic_fetch_add(&nstats.refused_nonloopback, 1, __ATOMIC_SEQ_CST);
		return (HE_NETUNREACH);
	}
	memset(&ss, 0, sizeof(ss));
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = port_be;
		memcpy(&s6->sin6_addr, addr, 16);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = port_be;
		memcpy(&s4->sin_addr, addr, 4);
		sl = sizeof(*s4);
	}
	pthread_mutex_lock(&io_mtx);
	hs[h].state = HS_CONNECTING;
	if (faults.reset_after > 0 && faults.resets_left > 0) {
		hs[h].reset_armed = 1;
		hs[h].reset_at = faults.reset_after;
	}
	pthread_mutex_unlock(&io_mtx);
	__atomic_fetch_add(&nstats.connects, 1, __ATOMIC_SEQ_CST);
	e = connect(hs[h].fd, (struct sockaddr *)&ss, sl) == 0 ? 0 : errno;
	if (e == 0 || e == EINPROGRESS) {
		epoll_ctl(epfd, EPOLL_CTL_ADD, hs[h].fd, &ev);
		return (e == 0 ? HE_OK : HE_INPROGRESS);
	}
	pthread_mutex_lock(&io_mtx);
	hs[h].state = HS_FAILED;
	pthread_mutex_unlock(&io_mtx);
	return (he(e));
}

/* An injected reset: RST to the peer (SO_LINGER 0), the kernel told through the event fd. */
static void
inject_reset(int h)
{
	struct linger lg = { 1, 0 };
	uint64_t one = 1;

	setsockopt(hs[h].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	shutdown(hs[h].fd, SHUT_RDWR);
	hs[h].error = HE_CONNRESET;
	__atomic_store_n(&hs[h].reset_armed, 2, __ATOMIC_SEQ_CST);
	/*
	 * No io_mtx here: this runs inside sosend/soreceive with a sockbuf lock held, and the
	 * network thread holds io_mtx while it takes sockbuf locks to deliver events.
	 */
	if (__atomic_load_n(&faults.resets_left, __ATOMIC_SEQ_CST) > 0)
		__atomic_fetch_sub(&faults.resets_left, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&nstats.resets_injected, 1, __ATOMIC_SEQ_CST);
	if (write(evfd, &one, sizeof(one)) < 0)
		return;
}

/*
 * An armed connection moves at most up to its mark (so the cut lands mid-PDU), then the
 * next call resets it.
 */
static int
past_mark(int h, hsize_t *len)
{
	if (hs[h].reset_armed != 1)
		return (0);
	if (hs[h].traffic >= hs[h].reset_at) {
		inject_reset(h);
		return (1);
	}
	if (hs[h].traffic + *len > hs[h].reset_at)
		*len = hs[h].reset_at - hs[h].traffic;
	return (0);
}

int
host_tcp_send(int h, const void *buf, hsize_t len, hsize_t *done)
{
	ssize_t n;

	*done = 0;
	if (__atomic_load_n(&hs[h].reset_armed, __ATOMIC_SEQ_CST) >= 2)
		return (HE_CONNRESET);
	if (past_mark(h, &len))
		return (HE_CONNRESET);
	n = send(hs[h].fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0)
		return (he(errno));
	*done = (hsize_t)n;
	hs[h].traffic += (hu64)n;
	__atomic_fetch_add(&nstats.bytes_sent, (hu64)n, __ATOMIC_RELAXED);
	return ((hsize_t)n < len ? HE_AGAIN : HE_OK);
}

/* Receives into `a`, then on into `b` (may be empty), in one recvmsg(2) with MSG_DONTWAIT: what
 * the emulated soreceive does with its one or two iovecs (FreeBSD's m_mbuftouio fills them in
 * order under one sockbuf lock). */
int
host_tcp_recv2(int h, void *a, hsize_t alen, void *b, hsize_t blen, hsize_t *done, int *eof)
{
	struct iovec iov[2];
	struct msghdr msg;
	hsize_t len = alen + blen;
	ssize_t n;

	*done = 0;
	*eof = 0;
	if (__atomic_load_n(&hs[h].reset_armed, __ATOMIC_SEQ_CST) >= 2)
		return (HE_CONNRESET);
	if (past_mark(h, &len))
		return (HE_CONNRESET);
	iov[0].iov_base = a;
	iov[0].iov_len = len < alen ? len : alen;
	iov[1].iov_base = b;
	iov[1].iov_len = len - iov[0].iov_len;
	msg = (struct msghdr){ .msg_iov = iov, .msg_iovlen = iov[1].iov_len > 0 ? 2 : 1 };
	n = recvmsg(hs[h].fd, &msg, MSG_DONTWAIT);
	if (n < 0)
		return (he(errno));
	if (n == 0 && len > 0)
		*eof = 1;
	*done = (hsize_t)n;
	hs[h].traffic += (hu64)n;
	__atomic_fetch_add(&nstats.bytes_received, (hu64)n, __ATOMIC_RELAXED);
	return (HE_OK);
}

hsize_t
host_tcp_avail(int h)
{
	int n = 0;

	if (__atomic_load_n(&hs[h].reset_armed, __ATOMIC_SEQ_CST) >= 2)
		return (0);
	if (ioctl(hs[h].fd, FIONREAD, &n) < 0)
		return (0);
	return ((hsize_t)n);
}

int
host_tcp_state(int h)
{
	int s = hs[h].state;

	if (__atomic_load_n(&hs[h].reset_armed, __ATOMIC_SEQ_CST) >= 2)
		return (-1);
	return (s == HS_CONNECTED ? 1 : (s == HS_CONNECTING || s == HS_OPEN) ? 0 : -1);
}

int
host_tcp_error(int h)
{
	int e = hs[h].error;

	hs[h].error = HE_OK;
	return (e);
}

void
host_tcp_close(int h)
{
	pthread_mutex_lock(&io_mtx);
	epoll_ctl(epfd, EPOLL_CTL_DEL, hs[h].fd, NULL);
	close(hs[h].fd);
	hs[h].state = HS_FREE;
	hs[h].kso = NULL;
	pthread_mutex_unlock(&io_mtx);
}
