/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The narrow interface between the two halves of the in-process harness.
 *
 *   bsd/   the FreeBSD half: compiled by zig cc against the same release's kernel headers
 *          and preprocessor view as isboot.ko (-D_KERNEL -DKLD_MODULE, opt_global.h); it
 *          defines the kernel KPI the module imports, checks the kernel's rules, and offers
 *          the kpi_* driver entry points below in FreeBSD terms.
 *   linux/ the Linux half: compiled by gcc against glibc; threads, the %gs base, the clock,
 *          TCP over loopback, files, and the scenario driver (main).
 *
 * Only C scalars, byte buffers and opaque pointers cross this line: no struct of either
 * system, so neither half ever sees the other's headers. Errors of the host come back as
 * neutral HE_* codes, which the FreeBSD half maps to FreeBSD errno values.
 */
#ifndef KMODSIM_HOST_H
#define KMODSIM_HOST_H

typedef unsigned long hsize_t;
typedef unsigned long long hu64;
typedef long long hi64;

/* ---- provided by the Linux half ---- */

/* Diagnostics go to stderr (the scenario's log); never the scenario's result line. */
void host_vlog(const char *fmt, __builtin_va_list ap);
void host_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* vsnprintf of the host's C library (standard conversions only). */
int host_vformat(char *buf, hsize_t len, const char *fmt, __builtin_va_list ap);
/* A kernel panic: the message, a frame-pointer backtrace, exit status 70. */
void host_panic(const char *why) __attribute__((noreturn));

void *host_alloc(hsize_t align, hsize_t size);	/* aligned; never NULL (aborts) */
void host_free(void *p);
void host_memcpy(void *dst, const void *src, hsize_t n);
void host_memmove(void *dst, const void *src, hsize_t n);
void host_memset(void *dst, int c, hsize_t n);

hu64 host_now_ns(void);				/* CLOCK_MONOTONIC */
void host_sleep_ns(hu64 ns);
void host_yield(void);
void host_random(void *buf, hsize_t len);

/* Starts a thread that calls kpi_thread_attach(name) and then fn(arg); 0 or -1. */
int host_thread_start(void (*fn)(void *), void *arg, const char *name);
void host_set_gs(void *base);			/* arch_prctl(ARCH_SET_GS) for this thread */
int host_thread_id(void);

/* A host mutex with one condition variable, opaque. */
void *host_cv_new(void);
void host_cv_free(void *cv);
void host_cv_lock(void *cv);
void host_cv_unlock(void *cv);
/* Waits until broadcast or abs_deadline_ns (0: none); returns 1 on timeout. */
int host_cv_wait(void *cv, hu64 abs_deadline_ns);
void host_cv_broadcast(void *cv);

/* TCP over the host's loopback. */
enum {
	HE_OK = 0, HE_AGAIN, HE_INPROGRESS, HE_CONNREFUSED, HE_CONNRESET, HE_PIPE,
	HE_TIMEDOUT, HE_NETUNREACH, HE_HOSTUNREACH, HE_NOTCONN, HE_NOMEM, HE_OTHER
};
/* Events for kpi_sock_event. */
#define HEV_READ	1
#define HEV_WRITE	2
#define HEV_HUP		4
#define HEV_ERR		8
/* family: 4 or 6. kso comes back in kpi_sock_event. */
int host_tcp_open(int family, void *kso, int *handle);
/*
 * Refuses (HE_NETUNREACH, nothing sent) any destination outside 127.0.0.0/8 and ::1, before
 * a host socket call is made for it. addr is 4 or 16 bytes in network order.
 */
int host_tcp_connect(int handle, const unsigned char *addr, unsigned short port);
int host_tcp_send(int handle, const void *buf, hsize_t len, hsize_t *done);
int host_tcp_recv2(int handle, void *a, hsize_t alen, void *b, hsize_t blen, hsize_t *done,
    int *eof);
hsize_t host_tcp_avail(int handle);		/* bytes readable now */
int host_tcp_state(int handle);			/* 1 connected, 0 connecting, -1 failed/closed */
int host_tcp_error(int handle);			/* pending error (HE_*), cleared */
void host_tcp_close(int handle);		/* no kpi_sock_event for it once this returns */

/* ---- provided by the FreeBSD half ---- */

/* Gives the calling host thread a struct thread and struct pcpu (%gs). */
void kpi_thread_attach(const char *name);
/* Socket readiness, from the host's network thread. */
void kpi_sock_event(void *kso, int events);

/*
 * The harness driver, in FreeBSD terms. Every function returns a FreeBSD errno (0 = success)
 * unless said otherwise. Called from attached threads.
 */
void kpi_init(int release_major);
void kpi_tunable(const char *name, const char *value);		/* kenv, before load */
/* 1 and the value when name is in the kernel environment (after load: what the module left). */
int kpi_kenv_get(const char *name, char *buf, hsize_t len);
/* kern_getenv copies not released with freeenv. */
int kpi_kenv_copies_out(void);
void kpi_acpi_table(const char *sig, const void *table, hsize_t len);
void kpi_nic(const char *name, const unsigned char *mac, int link_up, hu64 baudrate);
void kpi_malloc_fail_nth(hi64 n);		/* fail the Nth malloc(9) from now, once; -1 off */
hi64 kpi_malloc_calls(void);			/* malloc(9) calls so far */
hi64 kpi_malloc_nowait_calls(void);		/* those with M_NOWAIT (failmalloc's N counts them) */
hi64 kpi_malloc_type_allocs(const char *shortdesc); /* allocations of one malloc type so far */
/* What the module asked libkern to copy and fill (memcpy, memmove, memset): bytes in all, bytes
 * in calls of at least 512 (payload; smaller calls are moves of its own structures), bytes zeroed
 * (all, and in calls of at least 512); and what sosend/soreceive moved. */
struct kpi_copies {
	hu64 copied, copied_bulk, zeroed, zeroed_bulk, calls, sock_sent, sock_received;
	hu64 recv_calls, recv_empty, send_calls;	/* soreceive (EWOULDBLOCK), sosend calls */
};
void kpi_copy_counts(struct kpi_copies *c);
int kpi_malloc_failed_site(hsize_t *frames, int max); /* backtrace of the failed call */
int kpi_load(void);				/* linker sets, SYSINITs, MOD_LOAD */
int kpi_wait_root(int ms);			/* every root_mount_hold released */
int kpi_disk_wait(hu64 lun, int ms);		/* da attached on the boot bus at lun */
int kpi_disk_info(hu64 lun, hu64 *blocks, unsigned int *block_size, int *openings);
int kpi_disk_open(hu64 lun);			/* root mounted on it (GEOM access counts) */
int kpi_disk_close(hu64 lun);
int kpi_io_submit(hu64 lun, int write, hu64 lba, unsigned int blocks, void *buf, hu64 cookie);
void kpi_io_sg(int on);				/* submit buffers as 4-segment S/G lists */
/* Waits up to ms for one completion; ETIMEDOUT if none. */
int kpi_io_reap(int ms, hu64 *cookie, int *error);
int kpi_io_inflight(void);
int kpi_rescan(void);				/* camcontrol rescan of the boot bus */
int kpi_dump_write(hu64 lun, hu64 lba, void *buf, unsigned int blocks, hu64 *waited_ns);
int kpi_shutdown_pre_sync(void);
int kpi_shutdown_post_sync(void);
int kpi_unload(void);				/* MOD_QUIESCE, MOD_UNLOAD, SYSUNINITs */
int kpi_sysctl_str(const char *name, char *buf, hsize_t len);
int kpi_sysctl_u64(const char *name, hu64 *value);
int kpi_net_routes(char *buf, hsize_t len);	/* the routes and addresses added, as text */
/* End-of-run checks (leaks, balances, what must be gone); returns rule violations so far. */
int kpi_final_checks(int unloaded);
int kpi_violations(void);
void kpi_counts(char *buf, hsize_t len);	/* allocations, CCBs, ... as one line */
/* Self-tests: count, name of i, run i (1 = its rule fired as it must). */
int kpi_selftest_count(void);
const char *kpi_selftest_name(int i);
int kpi_selftest_run(int i);
/* The rule catalogue: count, and id/citation of rule i. */
int kpi_rule_count(void);
const char *kpi_rule_id(int i);
const char *kpi_rule_source(int i);

#endif
