/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Queue depth 1 over loopback without iSCSI: a 48-byte request and a 4,144-byte answer (a 4 KiB
 * Data-In with its header), to measure what the way an initiator waits for the answer costs on
 * this machine, apart from any initiator's own code. Not run by any test; see tests/README.md.
 *
 *   cc -O2 -o /tmp/pingpong tests/bench/pingpong.c     (-DPINGPONG_URING -luring adds "uring")
 *   taskset -c 0 /tmp/pingpong server PORT &
 *   taskset -c 1 /tmp/pingpong epoll|poll|pollset|readv|peek|block|uring PORT SECONDS
 *
 * Client modes: "epoll", isboot's host loop (send, then epoll_wait, then readv of the header with
 * the data); "poll", libiscsi's (poll, send, poll, recv of the header, recv of the data);
 * "pollset", ours with poll(2) over the socket, an eventfd and a timerfd for epoll_wait; "readv",
 * a blocking readv of the header with the data after the send (the thread sleeps in the read
 * itself); "peek", a blocking one-byte MSG_PEEK recv, then a non-blocking read of what came
 * (asleep in the socket, with as many system calls as "epoll"); "block", one blocking recvmsg
 * with MSG_WAITALL; "uring", the send and the receive submitted together to io_uring and waited
 * for in one call.
 *
 * Output: "MODE ops=N iops=F cpu_us=F", CPU being the process's user+sys time per answer.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#ifdef PINGPONG_URING
#include <liburing.h>
#endif

#define REQ 48
#define HDR 48
#define DATA 4096
#define ANS (HDR + DATA)

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage r;

	getrusage(RUSAGE_SELF, &r);
	return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
	    (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

/* Moves exactly n bytes; -1 when the peer is gone. */
static int whole(int fd, char *b, int n, int reading)
{
	int done = 0;

	while (done < n) {
		ssize_t r = reading ? read(fd, b + done, n - done) : write(fd, b + done, n - done);
		if (r <= 0)
			return -1;
		done += (int)r;
	}
	return 0;
}

static int serve(struct sockaddr_in *a)
{
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
	char req[REQ], ans[ANS];

	memset(ans, 7, sizeof(ans));
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)a, sizeof(*a)) != 0 || listen(l, 8) != 0) {
		perror("pingpong: bind");
		return 1;
	}
	for (;;) {
		int c = accept(l, NULL, NULL);

		if (c < 0)
			continue;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while (whole(c, req, REQ, 1) == 0 && whole(c, ans, ANS, 0) == 0)
			;
		close(c);
	}
}

/* The iovecs for the part of the answer not read yet (`got` bytes are). */
static int rest(struct iovec *v, char *hdr, char *data, int got)
{
	if (got < HDR) {
		v[0] = (struct iovec){ hdr + got, (size_t)(HDR - got) };
		v[1] = (struct iovec){ data, DATA };
		return 2;
	}
	v[0] = (struct iovec){ data + got - HDR, (size_t)(ANS - got) };
	return 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	char req[REQ] = { 1 }, hdr[HDR], data[DATA];
	int one = 1, fd, ep = -1;
	double secs, t0, c0, end;
	const char *m;
	long ops = 0;
#ifdef PINGPONG_URING
	struct io_uring ring;
#endif

	if (argc < 3) {
		fprintf(stderr, "usage: pingpong server PORT | pingpong MODE PORT SECONDS\n");
		return 1;
	}
	a.sin_port = htons((unsigned short)atoi(argv[2]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (strcmp(argv[1], "server") == 0)
		return serve(&a);
	if (argc < 4)
		return 1;
	m = argv[1];
	secs = atof(argv[3]);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		perror("pingpong: connect");
		return 1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (strcmp(m, "epoll") == 0 || strcmp(m, "poll") == 0 || strcmp(m, "pollset") == 0)
		fcntl(fd, F_SETFL, O_NONBLOCK);
	if (strcmp(m, "epoll") == 0) {
		struct epoll_event e = { .events = EPOLLIN | EPOLLET, .data.fd = fd };

		ep = epoll_create1(0);
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
	}
#ifdef PINGPONG_URING
	if (strcmp(m, "uring") == 0)
		io_uring_queue_init(8, &ring, 0);
#endif
	t0 = now();
	c0 = cpu();
	end = t0 + secs;
	while (now() < end) {
		int got = 0;

		if (strcmp(m, "epoll") == 0) {
			struct iovec o = { req, REQ };
			struct msghdr mh = { .msg_iov = &o, .msg_iovlen = 1 };

			sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
			while (got < ANS) {
				struct epoll_event e;
				struct iovec v[2];
				ssize_t r;

				epoll_wait(ep, &e, 1, -1);
				/* Edge-triggered: read until the socket is drained or the answer whole. */
				while (got < ANS && (r = readv(fd, v, rest(v, hdr, data, got))) > 0)
					got += (int)r;
			}
		} else if (strcmp(m, "poll") == 0) {
			struct pollfd p = { fd, POLLOUT, 0 };

			poll(&p, 1, 1000);
			send(fd, req, REQ, MSG_NOSIGNAL);
			while (got < ANS) {
				ssize_t r;

				p.events = POLLIN;
				poll(&p, 1, 1000);
				if (got < HDR) {
					r = recv(fd, hdr + got, HDR - got, 0);
					got += r > 0 ? (int)r : 0;
					if (got < HDR)
						continue;
				}
				r = recv(fd, data + got - HDR, ANS - got, 0);
				got += r > 0 ? (int)r : 0;
			}
		} else if (strcmp(m, "readv") == 0) {
			send(fd, req, REQ, MSG_NOSIGNAL);
			while (got < ANS) {
				struct iovec v[2];
				ssize_t r = readv(fd, v, rest(v, hdr, data, got));

				if (r <= 0)
					return 1;
				got += (int)r;
			}
		} else if (strcmp(m, "pollset") == 0) {
			/* What a loop on poll(2) instead of epoll would watch: the socket, its eventfd for
			 * other threads and its timerfd. */
			static int efd = -1, tfd = -1;
			struct iovec o = { req, REQ };
			struct msghdr mh = { .msg_iov = &o, .msg_iovlen = 1 };

			if (efd < 0) {
				efd = eventfd(0, EFD_NONBLOCK);
				tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
			}
			sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
			while (got < ANS) {
				struct pollfd p[3] = { { fd, POLLIN, 0 }, { efd, POLLIN, 0 }, { tfd, POLLIN, 0 } };
				struct iovec v[2];
				ssize_t r;

				poll(p, 3, -1);
				while (got < ANS && (r = readv(fd, v, rest(v, hdr, data, got))) > 0)
					got += (int)r;
			}
		} else if (strcmp(m, "peek") == 0) {
			/* Asleep in the socket, as "readv", but reading as "epoll" does after its wait. */
			char b;
			struct iovec v[2];
			struct msghdr mh = { .msg_iov = v };

			send(fd, req, REQ, MSG_NOSIGNAL);
			while (got < ANS) {
				ssize_t r;

				recv(fd, &b, 1, MSG_PEEK);
				mh.msg_iovlen = (size_t)rest(v, hdr, data, got);
				r = recvmsg(fd, &mh, MSG_DONTWAIT);
				if (r > 0)
					got += (int)r;
			}
		} else if (strcmp(m, "block") == 0) {
			struct iovec v[2] = { { hdr, HDR }, { data, DATA } };
			struct msghdr mh = { .msg_iov = v, .msg_iovlen = 2 };

			send(fd, req, REQ, MSG_NOSIGNAL);
			if (recvmsg(fd, &mh, MSG_WAITALL) != ANS)
				return 1;
#ifdef PINGPONG_URING
		} else if (strcmp(m, "uring") == 0) {
			static struct iovec v[2];
			static struct msghdr mh;
			struct io_uring_cqe *c;
			struct io_uring_sqe *s = io_uring_get_sqe(&ring);

			io_uring_prep_send(s, fd, req, REQ, MSG_NOSIGNAL);
			v[0] = (struct iovec){ hdr, HDR };
			v[1] = (struct iovec){ data, DATA };
			mh.msg_iov = v;
			mh.msg_iovlen = 2;
			s = io_uring_get_sqe(&ring);
			io_uring_prep_recvmsg(s, fd, &mh, MSG_WAITALL);
			io_uring_submit_and_wait(&ring, 2);
			for (int seen = 0; seen < 2; seen++) {
				if (io_uring_peek_cqe(&ring, &c) != 0)
					io_uring_wait_cqe(&ring, &c);
				io_uring_cqe_seen(&ring, c);
			}
#endif
		} else {
			fprintf(stderr, "pingpong: unknown mode %s\n", m);
			return 1;
		}
		ops++;
	}
	t0 = now() - t0;
	c0 = cpu() - c0;
	printf("%s ops=%ld iops=%.0f cpu_us=%.2f\n", m, ops, (double)ops / t0,
	    c0 / (double)(ops > 0 ? ops : 1) * 1e6);
	return 0;
}
