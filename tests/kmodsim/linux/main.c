/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kmodsim: the real isboot.ko in this process. One scenario per process; run.sh starts the
 * targets and calls this once per scenario. The result is one line on stdout ("OK figure",
 * "FAIL reason; figure", or "PANIC message"); everything else goes to stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "linux.h"

/* FreeBSD errno values the scenarios compare with (sys/errno.h). */
#define F_ENXIO		6
#define F_EBUSY		16
#define F_ENODEV	19
#define F_ETIMEDOUT	60
#define F_ENOEXEC	8

struct opts {
	const char *scenario;
	const char *ibft;
	const char *backing;
	const char *ctl;
	unsigned char mac[6];
	hu64 lun;
	hu64 lowmem_pa;
	int debug;
	int mib;
	int qd;
	hi64 fail_nth;
	int fake_pattern;
	int root_ms;
	/* --kenv NAME=VALUE: the loader's environment beyond the debug and verbose tunables. */
	const char *kenv[32];
	int nkenv;
};

static struct opts o;
static char figure[2048];
static int failed;

static void
fig(const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(figure);

	if (n > 0 && n + 2 < sizeof(figure)) {
		figure[n++] = ',';
		figure[n++] = ' ';
		figure[n] = '\0';
	}
	va_start(ap, fmt);
	vsnprintf(figure + n, sizeof(figure) - n, fmt, ap);
	va_end(ap);
}

static void
fail(const char *fmt, ...)
{
	va_list ap;
	char why[512];

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fprintf(stderr, "[scenario] FAIL: %s\n", why);
	if (!failed)
		fig("FAILED: %s", why);
	failed = 1;
}

static void
note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "[scenario] ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static hu64
ms_since(hu64 t0)
{
	return ((host_now_ns() - t0) / 1000000ULL);
}

/* ---- the target, through run.sh's control command ---- */

static int
ctl(const char *verb, char *out, size_t outlen)
{
	char cmd[1024];
	FILE *p;
	size_t n = 0;
	int st;

	if (o.ctl == NULL)
		return (-1);
	snprintf(cmd, sizeof(cmd), "timeout 60 %s %s", o.ctl, verb);
	p = popen(cmd, "r");
	if (p == NULL)
		return (-1);
	if (out != NULL && outlen > 0) {
		n = fread(out, 1, outlen - 1, p);
		out[n] = '\0';
	} else {
		char sink[256];

		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	st = pclose(p);
	note("target control: %s -> %d", verb, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return (WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static int
ctl_nexus(void)
{
	char out[64];

	if (ctl("nexus", out, sizeof(out)) != 0)
		return (-1);
	return (atoi(out));
}

/* ---- data patterns ---- */

static uint64_t
word_of(hu64 lba, unsigned gen, unsigned i)
{
	uint64_t x = lba * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)gen << 56) ^ (uint64_t)i;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	return (x ^ (x >> 32));
}

static void
fill(void *buf, hu64 lba, unsigned blocks, unsigned bs, unsigned gen)
{
	uint64_t *w = buf;
	unsigned b, i;

	for (b = 0; b < blocks; b++)
		for (i = 0; i < bs / 8; i++)
			w[b * (bs / 8) + i] = word_of(lba + b, gen, i);
}

/* How many bytes differ from what generation gen wrote. */
static hu64
check(const void *buf, hu64 lba, unsigned blocks, unsigned bs, unsigned gen)
{
	const uint64_t *w = buf;
	unsigned b, i;
	hu64 bad = 0;

	for (b = 0; b < blocks; b++)
		for (i = 0; i < bs / 8; i++)
			if (w[b * (bs / 8) + i] != word_of(lba + b, gen, i))
				bad += 8;
	return (bad);
}

/* tests/it/fake.rs pattern(): distinct per 4-byte word, never the poison byte 0xee. */
static unsigned char
fake_pattern(hu64 offset)
{
	uint32_t word = (uint32_t)(offset / 4);
	uint32_t v = (word * 0x9e3779b9U) ^ 0x5a5a5a5aU;
	unsigned char b = (unsigned char)(v >> (8 * (offset % 4)));

	return (b == 0xee ? 0x11 : b);
}

static int backing_fd = -1;

static hu64
check_backing(hu64 lba, unsigned blocks, unsigned bs, unsigned gen)
{
	size_t len = (size_t)blocks * bs;
	void *buf = malloc(len);
	hu64 bad;

	if (pread(backing_fd, buf, len, (off_t)(lba * bs)) != (ssize_t)len) {
		free(buf);
		return (len);
	}
	bad = check(buf, lba, blocks, bs, gen);
	free(buf);
	return (bad);
}

/* ---- booting the module ---- */

static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;
	long n;

	if (f == NULL)
		return (NULL);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n);
	if (fread(b, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(b);
		return (NULL);
	}
	fclose(f);
	*len = (size_t)n;
	return (b);
}

extern char __executable_start[], edata[];

static void
setup(void)
{
	char dbg[16];

	kpi_thread_attach("kldload");
	kpi_init(0);
	kpi_text_range((unsigned long)__executable_start, (unsigned long)edata);
	host_net_init();
	kpi_nic("em0", o.mac, 1, 1000000000ULL);
	snprintf(dbg, sizeof(dbg), "%d", o.debug);
	kpi_tunable("net.isboot.debug", dbg);
	kpi_tunable("hw.ibft.verbose", "1");
	for (int k = 0; k < o.nkenv; k++) {
		char name[256];
		const char *eq = strchr(o.kenv[k], '=');

		snprintf(name, sizeof(name), "%.*s", (int)(eq - o.kenv[k]), o.kenv[k]);
		kpi_tunable(name, eq + 1);
	}
	if (o.ibft != NULL) {
		size_t len;
		unsigned char *t = read_file(o.ibft, &len);

		if (t == NULL) {
			fprintf(stderr, "kmodsim: cannot read %s\n", o.ibft);
			exit(2);
		}
		if (o.lowmem_pa != 0)
			kpi_lowmem_table(o.lowmem_pa, t, len);
		else
			kpi_acpi_table("iBFT", t, len);
		free(t);
	}
	kpi_efi_boot(o.lowmem_pa == 0);
	kpi_boot_prepare();
}

static hu64 t_load;

static int
load(void)
{
	int e;

	t_load = host_now_ns();
	e = kpi_load();
	note("kldload: %d", e);
	return (e);
}

/* Load, wait for root and the boot disk; 0 when the disk is there. */
static int
boot_to_disk(hu64 *blocks, unsigned *bs, int *openings)
{
	int e = load();

	if (e != 0) {
		fail("kldload returned %d", e);
		return (e);
	}
	if (kpi_wait_root(o.root_ms) != 0) {
		fail("root mount hold still held after %d ms", o.root_ms);
		return (F_ETIMEDOUT);
	}
	fig("root released %ju ms after load", (uintmax_t)ms_since(t_load));
	if (kpi_disk_wait(o.lun, 1000) != 0 || kpi_disk_info(o.lun, blocks, bs, openings) != 0) {
		fail("no da on LUN %ju", (uintmax_t)o.lun);
		return (F_ENXIO);
	}
	note("da on LUN %ju: %ju blocks of %u, %d openings", (uintmax_t)o.lun,
	    (uintmax_t)*blocks, *bs, *openings);
	return (0);
}

/* One synchronous I/O; returns the error. */
static int
io_sync(int write, hu64 lba, unsigned blocks, void *buf, int ms)
{
	hu64 cookie;
	int e, err;

	e = kpi_io_submit(o.lun, write, lba, blocks, buf, 1);
	if (e != 0)
		return (e);
	e = kpi_io_reap(ms, &cookie, &err);
	return (e != 0 ? e : err);
}

/*
 * Writes (gen > 0) or reads and checks `total` blocks from `start` at queue depth qd with
 * chunks of `chunk` blocks. hook(fraction_done) runs between completions (faults). Returns
 * I/O errors; *corrupt counts bad bytes read.
 */
static int
io_pass(int write, hu64 start, hu64 total, unsigned chunk, unsigned bs, int qd, unsigned gen,
    hu64 *corrupt, void (*hook)(double))
{
	struct slot { unsigned char *buf; hu64 lba; unsigned n; int busy; } *s;
	hu64 next = start, end = start + total, done = 0;
	int i, inflight = 0, errors = 0;

	s = calloc((size_t)qd, sizeof(*s));
	for (i = 0; i < qd; i++)
		s[i].buf = aligned_alloc(4096, (size_t)chunk * bs);
	for (;;) {
		hu64 cookie;
		int err, e;

		for (i = 0; i < qd && next < end; i++) {
			if (s[i].busy)
				continue;
			s[i].lba = next;
			s[i].n = (unsigned)(end - next < chunk ? end - next : chunk);
			if (write)
				fill(s[i].buf, s[i].lba, s[i].n, bs, gen);
			else
				memset(s[i].buf, 0xa5, (size_t)s[i].n * bs);
			if (kpi_io_submit(o.lun, write, s[i].lba, s[i].n, s[i].buf, (hu64)i) != 0) {
				errors++;
				next = end;
				break;
			}
			s[i].busy = 1;
			next += s[i].n;
			inflight++;
		}
		if (inflight == 0)
			break;
		e = kpi_io_reap(180000, &cookie, &err);
		if (e != 0) {
			fail("an I/O did not complete within 180 s");
			errors++;
			break;
		}
		i = (int)cookie;
		s[i].busy = 0;
		inflight--;
		if (err != 0) {
			errors++;
			note("I/O error %d at LBA %ju", err, (uintmax_t)s[i].lba);
		} else if (!write && corrupt != NULL) {
			*corrupt += o.fake_pattern ? 0 : check(s[i].buf, s[i].lba, s[i].n, bs, gen);
			if (o.fake_pattern) {
				hu64 b;

				for (b = 0; b < (hu64)s[i].n * bs; b++)
					if (s[i].buf[b] != fake_pattern(s[i].lba * bs + b))
						(*corrupt)++;
			}
		}
		done += s[i].n;
		if (hook != NULL)
			hook((double)done / (double)total);
	}
	for (i = 0; i < qd; i++)
		free(s[i].buf);
	free(s);
	return (errors);
}

static void
counts_note(void)
{
	char c[1024];

	kpi_counts(c, sizeof(c));
	note("counts: %s", c);
}

static hu64
sysctl_u64(const char *name)
{
	hu64 v = 0;

	kpi_sysctl_u64(name, &v);
	return (v);
}

static int
state_is(const char *want)
{
	char s[64];

	kpi_sysctl_str("net.isboot.session.state", s, sizeof(s));
	return (strcmp(s, want) == 0);
}

/* Rules and final checks; every scenario ends here. */
static void
finish(int unloaded)
{
	int v = kpi_final_checks(unloaded);
	struct host_net_stats *ns = host_net_stats();

	counts_note();
	if (ns->refused_nonloopback != 0)
		fail("%ju connects outside loopback refused", (uintmax_t)ns->refused_nonloopback);
	if (kpi_console_count("isboot: isboot:") != 0)
		fail("console lines carry the \"isboot: \" prefix twice (%d)",
		    kpi_console_count("isboot: isboot:"));
	if (v != 0)
		fail("%d rule violations", v);
}

/* ---- scenarios ---- */

static int
sc_boot(void)
{
	hu64 blocks, corrupt = 0;
	unsigned bs;
	int openings;
	unsigned char *buf;
	char name[256];

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	buf = aligned_alloc(4096, 1 << 20);
	if (io_sync(0, 0, (1 << 20) / bs, buf, 60000) != 0)
		fail("reading the first MiB failed");
	else if (backing_fd >= 0) {
		unsigned char *ref = malloc(1 << 20);

		if (pread(backing_fd, ref, 1 << 20, 0) != 1 << 20 || memcmp(ref, buf, 1 << 20) != 0)
			corrupt = 1;
		free(ref);
		if (corrupt)
			fail("the first MiB differs from the backing file");
	}
	free(buf);
	kpi_sysctl_str("hw.ibft.target_name", name, sizeof(name));
	if (!state_is("up"))
		fail("net.isboot.session.state is not \"up\"");
	if (kpi_console_count("rescan already queued") != 0)
		fail("\"rescan already queued\": a second scan of the bus at attach");
	fig("da %ju MiB, openings %d, first MiB %s", (uintmax_t)(blocks * bs >> 20), openings,
	    corrupt ? "differs" : "matches the backing file");
	kpi_shutdown_pre_sync();
	kpi_shutdown_post_sync();
	if (!state_is("closed") && !state_is(""))
		note("state after shutdown: not closed");
	finish(0);
	return (failed);
}

static int
sc_io(void)
{
	hu64 blocks, corrupt = 0, total, bad_backing = 0, lba;
	unsigned bs;
	int openings, errors, qd;
	hu64 t0, wms, rms;

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	qd = o.qd < openings ? o.qd : openings;
	if (qd < 8) {
		fail("the SIM offers %d openings, fewer than 8", openings);
		return (1);
	}
	total = (hu64)o.mib * (1 << 20) / bs;
	if (total > blocks)
		total = blocks;
	t0 = host_now_ns();
	errors = io_pass(1, 0, total, (64 << 10) / bs, bs, qd, 1, NULL, NULL);
	wms = ms_since(t0);
	t0 = host_now_ns();
	errors += io_pass(0, 0, total, (64 << 10) / bs, bs, qd, 1, &corrupt, NULL);
	rms = ms_since(t0);
	for (lba = 0; backing_fd >= 0 && lba < total; lba += 2048)
		bad_backing += check_backing(lba, (unsigned)(total - lba < 2048 ? total - lba : 2048),
		    bs, 1);
	if (errors != 0)
		fail("%d I/O errors", errors);
	if (corrupt != 0 || bad_backing != 0)
		fail("%ju corrupt bytes read, %ju wrong in the backing file", (uintmax_t)corrupt,
		    (uintmax_t)bad_backing);
	if (kpi_cam_max_active() < 8)
		fail("at most %d CCBs were at the SIM at once", kpi_cam_max_active());
	fig("%ju MiB written (%ju MB/s) and read back (%ju MB/s) at QD %d (%d at the SIM at "
	    "once), %d errors, %ju corrupt, backing file %s", (uintmax_t)(total * bs >> 20),
	    (uintmax_t)(wms ? total * bs / 1000 / wms : 0),
	    (uintmax_t)(rms ? total * bs / 1000 / rms : 0), qd, kpi_cam_max_active(), errors,
	    (uintmax_t)corrupt, bad_backing == 0 ? "matches" : "DIFFERS");
	kpi_shutdown_pre_sync();
	kpi_shutdown_post_sync();
	finish(0);
	return (failed);
}

/* CPU time of this process (the module, the emulated kernel around it and the host's TCP) in
 * microseconds. */
static double
cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec +
	    (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec);
}

/*
 * Steady-state I/O through the module: after a warm-up, 10,000 writes and 10,000 reads of
 * `kib` KiB at the disk's queue depth must not make the module allocate (malloc type
 * M_ISBOOT), and are reported with what the module copied and cleared (its memcpy, memmove
 * and memset calls) and what the sockets moved, per payload byte, and the process's CPU time
 * per I/O.
 */
static int
steady(unsigned kib, int n, hu64 blocks, unsigned bs, int qd)
{
	struct kpi_copies c0, c1;
	unsigned chunk = kib * 1024 / bs;
	hu64 total = (hu64)chunk * (hu64)n, a0, a1, corrupt = 0, payload;
	double u0, u1;
	int errors;

	if (total > blocks)
		total = blocks / chunk * chunk;
	n = (int)(total / chunk);
	/* Warm-up: the first commands size what keeps its size afterwards. */
	errors = io_pass(1, 0, (hu64)chunk * 64, chunk, bs, qd, 3, NULL, NULL);
	errors += io_pass(0, 0, (hu64)chunk * 64, chunk, bs, qd, 3, &corrupt, NULL);
	a0 = (hu64)kpi_malloc_type_allocs("isboot");
	kpi_copy_counts(&c0);
	u0 = cpu_us();
	errors += io_pass(1, 0, total, chunk, bs, qd, 4, NULL, NULL);
	errors += io_pass(0, 0, total, chunk, bs, qd, 4, &corrupt, NULL);
	u1 = cpu_us();
	kpi_copy_counts(&c1);
	a1 = (hu64)kpi_malloc_type_allocs("isboot");
	payload = 2 * total * bs;
	if (errors != 0 || corrupt != 0)
		fail("%d I/O errors, %ju corrupt bytes", errors, (uintmax_t)corrupt);
	if (a1 != a0)
		fail("%ju M_ISBOOT allocations in %d writes and %d reads of %u KiB",
		    (uintmax_t)(a1 - a0), n, n, kib);
	/* The socket's copy is the one copy per direction; the module itself moves no payload
	 * (anything but its own structures would show as copies of 512 bytes or more). */
	if ((c1.copied_bulk - c0.copied_bulk) * 100 > payload ||
	    (c1.zeroed_bulk - c0.zeroed_bulk) * 100 > payload)
		fail("the module copied %ju and zero-filled %ju bytes in blocks of 512+ for %ju "
		    "payload bytes", (uintmax_t)(c1.copied_bulk - c0.copied_bulk),
		    (uintmax_t)(c1.zeroed_bulk - c0.zeroed_bulk), (uintmax_t)payload);
	fig("%d writes + %d reads of %u KiB at QD %d: %ju allocations, module copies %.2f B/B "
	    "(bulk; all %.2f), zero fills %.2f B/B (bulk; all %.2f), socket copies %.2f B/B sent + %.2f B/B received, "
	    "soreceive %.2f/IO (%.2f EWOULDBLOCK), sosend %.2f/IO, "
	    "CPU %.1f us/IO (process)", n, n, kib, qd, (uintmax_t)(a1 - a0),
	    (double)(c1.copied_bulk - c0.copied_bulk) / (double)payload,
	    (double)(c1.copied - c0.copied) / (double)payload,
	    (double)(c1.zeroed_bulk - c0.zeroed_bulk) / (double)payload,
	    (double)(c1.zeroed - c0.zeroed) / (double)payload,
	    (double)(c1.sock_sent - c0.sock_sent) / (double)(payload / 2),
	    (double)(c1.sock_received - c0.sock_received) / (double)(payload / 2),
	    (double)(c1.recv_calls - c0.recv_calls) / (2.0 * n),
	    (double)(c1.recv_empty - c0.recv_empty) / (2.0 * n),
	    (double)(c1.send_calls - c0.send_calls) / (2.0 * n),
	    (u1 - u0) / (2.0 * n));
	return (failed);
}

static int
sc_noalloc(void)
{
	hu64 blocks;
	unsigned bs;
	int openings, qd;

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	qd = o.qd < openings ? o.qd : openings;
	steady(4, 10000, blocks, bs, qd);
	steady(1024, 128, blocks, bs, 8 < qd ? 8 : qd);
	/* The same in place through CAM_DATA_SG lists cut at odd places (the data is verified). */
	kpi_io_sg(1);
	steady(64, 500, blocks, bs, qd);
	kpi_io_sg(0);
	kpi_shutdown_pre_sync();
	kpi_shutdown_post_sync();
	finish(0);
	return (failed);
}

/* Scenario 3: the target killed and restarted, and resets, during the write loop. */
static int fault_stage;

static void
fault_hook(double done)
{
	if (fault_stage == 0 && done >= 0.25) {
		fault_stage = 1;
		ctl("kill", NULL, 0);
		host_sleep_ns(2000000000ULL);
		if (ctl("restart", NULL, 0) != 0)
			fail("the target did not restart");
	} else if (fault_stage == 1 && done >= 0.55) {
		struct host_faults f = { .reset_after = 3 << 20, .resets_left = 2 };

		fault_stage = 2;
		note("arming 2 TCP resets, each after 3 MiB on a connection");
		host_set_faults(&f);
	}
}

static int
sc_faults(void)
{
	hu64 blocks, corrupt = 0, total, bad_backing = 0, lba, reconnects;
	unsigned bs;
	int openings, errors, qd;
	struct host_net_stats *ns = host_net_stats();

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	qd = o.qd < openings ? o.qd : openings;
	total = (hu64)o.mib * (1 << 20) / bs;
	if (total > blocks)
		total = blocks;
	errors = io_pass(1, 0, total, (64 << 10) / bs, bs, qd, 2, NULL, fault_hook);
	{
		struct host_faults none = { 0, 0 };

		host_set_faults(&none);
	}
	errors += io_pass(0, 0, total, (64 << 10) / bs, bs, qd, 2, &corrupt, NULL);
	for (lba = 0; backing_fd >= 0 && lba < total; lba += 2048)
		bad_backing += check_backing(lba, (unsigned)(total - lba < 2048 ? total - lba : 2048),
		    bs, 2);
	reconnects = sysctl_u64("net.isboot.session.reconnects");
	if (errors != 0)
		fail("%d I/O errors seen by the periph", errors);
	if (corrupt != 0 || bad_backing != 0)
		fail("%ju corrupt bytes, %ju wrong in the backing file", (uintmax_t)corrupt,
		    (uintmax_t)bad_backing);
	if (fault_stage < 2)
		fail("the faults were not all injected");
	if (reconnects < 1 + ns->resets_injected)
		fail("net.isboot.session.reconnects is %ju for 1 kill and %ju resets",
		    (uintmax_t)reconnects, (uintmax_t)ns->resets_injected);
	fig("%ju MiB through 1 target kill/restart and %ju TCP resets: %d I/O errors, %ju corrupt "
	    "bytes, backing file %s, reconnects %ju", (uintmax_t)(total * bs >> 20),
	    (uintmax_t)ns->resets_injected, errors, (uintmax_t)corrupt,
	    bad_backing == 0 ? "matches" : "DIFFERS", (uintmax_t)reconnects);
	kpi_shutdown_pre_sync();
	kpi_shutdown_post_sync();
	finish(0);
	return (failed);
}

static int
sc_shutdown_live(void)
{
	hu64 blocks, t0;
	unsigned bs;
	int openings, before, after;
	unsigned char *buf;

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	kpi_disk_open(o.lun);
	buf = aligned_alloc(4096, 64 << 10);
	fill(buf, 100, (64 << 10) / bs, bs, 3);
	before = ctl_nexus();
	t0 = host_now_ns();
	kpi_shutdown_pre_sync();
	/* The sync after pre_sync: the live session must still serve it. */
	if (io_sync(1, 100, (64 << 10) / bs, buf, 30000) != 0)
		fail("the sync's write after shutdown_pre_sync failed");
	kpi_shutdown_post_sync();
	after = ctl_nexus();
	if (before != 1 || after != 0)
		fail("I_T nexus at the target: %d before, %d after shutdown_post_sync (want 1, 0)",
		    before, after);
	if (check_backing(100, (64 << 10) / bs, bs, 3) != 0)
		fail("the sync's write is not in the backing file");
	fig("sync write served after pre_sync, logout seen at the target (nexus %d -> %d), "
	    "shutdown took %ju ms", before, after, (uintmax_t)ms_since(t0));
	free(buf);
	finish(0);
	return (failed);
}

static int
sc_shutdown_dead(void)
{
	hu64 blocks, t0, cookie, fail_ms = 0, post_ms;
	unsigned bs;
	int openings, e, err = 0;
	unsigned char *buf;

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	kpi_disk_open(o.lun);
	ctl("kill", NULL, 0);
	buf = aligned_alloc(4096, 64 << 10);
	fill(buf, 200, (64 << 10) / bs, bs, 4);
	kpi_io_submit(o.lun, 1, 200, (64 << 10) / bs, buf, 7);
	host_sleep_ns(500000000ULL);
	t0 = host_now_ns();
	kpi_shutdown_pre_sync();
	e = kpi_io_reap(30000, &cookie, &err);
	if (e != 0)
		fail("the write to the dead target still hangs 30 s after shutdown_pre_sync");
	else
		fail_ms = ms_since(t0);
	t0 = host_now_ns();
	kpi_shutdown_post_sync();
	post_ms = ms_since(t0);
	if (e == 0 && err == 0)
		fail("the write to a dead target succeeded");
	if (e == 0 && fail_ms > 12000)
		fail("the write failed %ju ms after pre_sync, past the 10 s bound",
		    (uintmax_t)fail_ms);
	if (post_ms > 11000)
		fail("shutdown_post_sync took %ju ms", (uintmax_t)post_ms);
	fig("dead target: pending write failed (errno %d) %ju ms after shutdown_pre_sync (bound "
	    "10 s), shutdown_post_sync %ju ms", err, (uintmax_t)fail_ms, (uintmax_t)post_ms);
	free(buf);
	finish(0);
	return (failed);
}

/* Scenario 6a: refused with EBUSY while root is mounted on the disk. */
static int
sc_unload_busy(void)
{
	hu64 blocks;
	unsigned bs;
	int openings, e;
	unsigned char *buf;

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	kpi_disk_open(o.lun);
	e = kpi_unload();
	if (e != F_EBUSY)
		fail("kldunload with root on the disk returned %d, want EBUSY", e);
	buf = aligned_alloc(4096, 4096);
	if (io_sync(0, 0, 4096 / bs, buf, 30000) != 0 || !state_is("up"))
		fail("the session stopped serving after the refused unload");
	free(buf);
	fig("kldunload with root mounted: %s, session still serving", e == F_EBUSY ? "EBUSY" :
	    "NOT REFUSED");
	kpi_shutdown_pre_sync();
	kpi_shutdown_post_sync();
	finish(0);
	return (failed);
}

/* Scenario 6b: no session (the target refuses): unload leaves nothing. */
static int
sc_unload_idle(void)
{
	int e = load(), u;
	char c[1024];

	if (e != 0) {
		fail("kldload returned %d", e);
		return (1);
	}
	host_sleep_ns(1500000000ULL);
	u = kpi_unload();
	if (u != 0)
		fail("kldunload without a session returned %d", u);
	finish(u == 0);
	kpi_counts(c, sizeof(c));
	fig("unloaded: %d; %s", u, c);
	return (failed);
}

/* The CHAP secret variables: gone from the kernel environment after every load. */
static const char *secret_vars[] = { "net.isboot.chap_secret", "net.isboot.reverse_chap_secret" };

static int
secrets_left(void)
{
	char v[300];
	int n = 0;

	for (size_t i = 0; i < sizeof(secret_vars) / sizeof(secret_vars[0]); i++)
		if (kpi_kenv_get(secret_vars[i], v, sizeof(v))) {
			fail("%s is still in the kernel environment after load", secret_vars[i]);
			n++;
		}
	return (n);
}

/* A secret's value on the console is a failure, wherever it came from. */
static void
secrets_on_console(void)
{
	for (int k = 0; k < o.nkenv; k++)
		if (strstr(o.kenv[k], "_secret=") != NULL &&
		    kpi_console_count(strchr(o.kenv[k], '=') + 1) != 0)
			fail("the value of %.*s reached the console",
			    (int)(strchr(o.kenv[k], '=') - o.kenv[k]), o.kenv[k]);
}

/* How many secrets the scenario gave (so that "none left" means something). */
static int
secrets_given(void)
{
	int n = 0;

	for (int k = 0; k < o.nkenv; k++)
		for (size_t i = 0; i < sizeof(secret_vars) / sizeof(secret_vars[0]); i++)
			if (strncmp(o.kenv[k], secret_vars[i], strlen(secret_vars[i])) == 0 &&
			    o.kenv[k][strlen(secret_vars[i])] == '=')
				n++;
	return (n);
}

/*
 * Issue 17: no iBFT, the target and NIC from loader tunables alone. The boot is the boot
 * scenario's; beyond it: the secrets are gone from kenv, the boot configuration came from the
 * tunables, hw.ibft.* and net.isboot.device describe it, the out-of-range root wait was
 * clamped and said so.
 */
static int
sc_tunables(void)
{
	char name[256], dev[64], initiator[256];
	hu64 root_wait = 0;
	int rc;

	rc = sc_boot();
	secrets_left();
	if (kpi_kenv_copies_out() != 0)
		fail("%d kern_getenv copies not released", kpi_kenv_copies_out());
	{
		int netif = 0, nic = 0;
		const char *want;

		for (int k = 0; k < o.nkenv; k++) {
			netif |= strncmp(o.kenv[k], "boot.netif.", 11) == 0;
			nic |= strncmp(o.kenv[k], "net.isboot.nic_", 15) == 0;
		}
		want = netif && !nic ? "boot configuration from loader tunables, NIC from boot.netif.*" :
		    "boot configuration from loader tunables, NIC from net.isboot.nic_*";
		if (kpi_console_count(want) != 1)
			fail("no \"%s\" line", want);
	}
	if (kpi_console_count("iBFT found") != 0)
		fail("an iBFT was found, but the scenario gave none");
	kpi_sysctl_str("hw.ibft.target_name", name, sizeof(name));
	kpi_sysctl_str("hw.ibft.initiator_name", initiator, sizeof(initiator));
	kpi_sysctl_str("net.isboot.device", dev, sizeof(dev));
	if (strncmp(name, "iqn.", 4) != 0)
		fail("hw.ibft.target_name is \"%s\"", name);
	if (strcmp(dev, "da0") != 0)
		fail("net.isboot.device is \"%s\", want da0", dev);
	kpi_sysctl_u64("net.isboot.root_wait", &root_wait);
	if (root_wait != 3600 || kpi_console_count("net.isboot.root_wait=99999 is outside") != 1)
		fail("net.isboot.root_wait=99999 not clamped to 3600 with a message (sysctl %ju)",
		    (uintmax_t)root_wait);
	secrets_on_console();
	finish(0);
	fig("initiator %s, target %s on %s, %d secret(s) given, 0 left in kenv", initiator, name,
	    dev, secrets_given());
	return (rc || failed);
}

/* Issue 14/17: neither an iBFT nor net.isboot.root_path: the module loads and stays idle. */
static int
sc_idle(void)
{
	char state[64], last[256];
	int e = load(), u;

	if (e != 0)
		fail("kldload without an iBFT or tunables returned %d, want 0 (idle)", e);
	kpi_sysctl_str("net.isboot.session.state", state, sizeof(state));
	kpi_sysctl_str("net.isboot.session.last_error", last, sizeof(last));
	if (strcmp(state, "idle") != 0)
		fail("net.isboot.session.state is \"%s\", want idle", state);
	if (kpi_console_count("nothing to boot from, staying idle") != 1)
		fail("no \"staying idle\" line on the console");
	if (kpi_wait_root(0) != 0)
		fail("an idle module holds root mount");
	secrets_left();
	u = kpi_unload();
	if (u != 0)
		fail("kldunload of the idle module returned %d", u);
	finish(u == 0);
	fig("kldload %d, state \"%s\", last_error \"%s\", kldunload %d", e, state, last, u);
	return (failed);
}

/*
 * A wrong tunable: the load fails (ENOEXEC from kldload) naming the variable, leaves nothing,
 * and the secrets are gone from kenv all the same.
 */
static int
sc_tunables_bad(void)
{
	char last[256], name[256];
	int e = load();

	kpi_sysctl_str("net.isboot.session.last_error", last, sizeof(last));
	kpi_sysctl_str("hw.ibft.target_name", name, sizeof(name));
	if (e != F_ENOEXEC)
		fail("kldload with a wrong tunable returned %d, want ENOEXEC", e);
	if (strstr(last, "net.isboot.") == NULL)
		fail("last_error \"%s\" names no variable", last);
	if (kpi_console_count("not started: net.isboot.") != 1)
		fail("no \"not started: net.isboot....\" line");
	if (name[0] != '\0')
		fail("hw.ibft.target_name \"%s\" after a failed load", name);
	secrets_left();
	secrets_on_console();
	if (secrets_given() == 0)
		fail("the scenario gave no secret to remove");
	kpi_unload();
	finish(1);
	fig("kldload %d, last_error \"%s\", %d secret(s) given, 0 left in kenv", e, last,
	    secrets_given());
	return (failed);
}

/*
 * Issue 16: istgt configured with "UseDigest Header Data" requires CRC32C. With the default
 * net.isboot.digests (allow: None,CRC32C, as the C isboot offered) the module boots it with
 * both digests on; the scenario checks the negotiated line (net.isboot.debug=2) and the sysctl.
 */
static int
sc_digests_istgt(void)
{
	char setting[32];

	if (sc_boot() != 0)
		return (1);
	kpi_sysctl_str("net.isboot.digests", setting, sizeof(setting));
	if (strcmp(setting, "allow") != 0)
		fail("net.isboot.digests is \"%s\", want allow", setting);
	if (kpi_console_count("HeaderDigest true, DataDigest true") < 1)
		fail("no login negotiated both digests (the \"negotiated\" line at level 2)");
	fig("net.isboot.digests=%s, istgt requiring digests: HeaderDigest and DataDigest CRC32C",
	    setting);
	return (failed);
}

/*
 * Issue 16: the same target with net.isboot.digests=forbid: the login must fail with one
 * clear reason naming the key, in the console and net.isboot.session.last_error, and the
 * session must keep retrying (the admin can fix the target) without taking the disk.
 */
static int
sc_digests_forbid(void)
{
	char last[256] = "", setting[32];
	int e = load(), i, u;

	if (e != 0)
		fail("kldload returned %d", e);
	for (i = 0; i < 200; i++) {
		kpi_sysctl_str("net.isboot.session.last_error", last, sizeof(last));
		if (strstr(last, "HeaderDigest") != NULL)
			break;
		host_sleep_ns(50000000ULL);
	}
	kpi_sysctl_str("net.isboot.digests", setting, sizeof(setting));
	if (strcmp(setting, "forbid") != 0)
		fail("net.isboot.digests is \"%s\", want forbid", setting);
	if (strstr(last, "HeaderDigest") == NULL)
		fail("last_error \"%s\" does not name HeaderDigest within 10 s", last);
	if (kpi_console_count("HeaderDigest") < 1)
		fail("the console does not name HeaderDigest at net.isboot.debug=2");
	if (state_is("up"))
		fail("the session is up although the target requires what we forbid");
	u = kpi_unload();
	if (u != 0)
		fail("kldunload of the waiting module returned %d", u);
	finish(u == 0);
	fig("net.isboot.digests=%s: last_error \"%s\"", setting, last);
	return (failed);
}

/* Lines the session prints for N in a row: the first time, then after 2, 4, 8, ... */
static int
powers_of_two_upto(long n, long from)
{
	long k;
	int c = 0;

	for (k = 1; k <= n; k *= 2)
		if (k >= from)
			c++;
	return (c);
}

/* "... dies on its first commands (N in a row, ...": N, or 0. */
static long
dies_in_a_row(const char *last)
{
	const char *p = strstr(last, "dies on its first commands (");

	return (p != NULL ? strtol(p + strlen("dies on its first commands ("), NULL, 10) : 0);
}

/*
 * Issue 16: a target that takes every login and then rejects the first command of each
 * connection. The boot must not look like a silent hang: net.isboot.session.last_error says
 * the logins work and the connections die on their first commands, and the console says it at
 * net.isboot.debug=0 after 2, 4, 8, ... such connections (not once per connection).
 */
static int
sc_dies_after_login(void)
{
	hu64 blocks, recon, cookie;
	unsigned bs;
	int openings, lines, want_lo, want_hi, i, u, err;
	char last[256] = "", again[256] = "";
	unsigned char *buf;

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	buf = aligned_alloc(4096, 65536);
	kpi_io_submit(o.lun, 0, 0, 8, buf, 1);
	for (i = 0; i < 400 && dies_in_a_row(last) < 2; i++) {
		host_sleep_ns(50000000ULL);
		kpi_sysctl_str("net.isboot.session.last_error", last, sizeof(last));
	}
	lines = kpi_console_count("dies on its first commands");
	kpi_sysctl_str("net.isboot.session.last_error", again, sizeof(again));
	recon = sysctl_u64("net.isboot.session.reconnects");
	if (dies_in_a_row(last) < 2)
		fail("after 20 s last_error is \"%s\", not the connections dying after login", last);
	want_lo = powers_of_two_upto(dies_in_a_row(last), 2);
	want_hi = powers_of_two_upto(dies_in_a_row(again), 2);
	if (lines < want_lo || lines > want_hi)
		fail("%d console lines for %ld connections dying in a row, want %d", lines,
		    dies_in_a_row(again), want_lo);
	u = kpi_unload();
	if (u != 0)
		fail("kldunload with the disk attached, not open, returned %d", u);
	if (kpi_io_reap(15000, &cookie, &err) != 0)
		fail("the READ in flight never came back after the unload");
	free(buf);
	finish(u == 0);
	fig("%ju reconnects, %d console lines at net.isboot.debug=0, last_error \"%.90s\"",
	    (uintmax_t)recon, lines, again);
	return (failed);
}

/*
 * Issues 14 and 12: at net.isboot.debug=0 the failures print, but a login refused again and
 * again prints the first time and then after 2, 4, 8, ... in a row (the session's own limit,
 * driver/core/src/session/report.rs): over 12 s of attempts against a port nothing listens
 * on, one line per power of two of the attempts, each counting them.
 */
static int
sc_quiet(void)
{
	int e = load(), lines, u, want = 0;
	hu64 attempts, k;

	if (e != 0)
		fail("kldload returned %d", e);
	host_sleep_ns(12000000000ULL);
	attempts = host_net_stats()->connects;
	lines = kpi_console_count("failed: connection refused");
	for (k = 1; k <= attempts; k *= 2)
		want++;
	if (lines != want)
		fail("%d \"connection refused\" lines for %ju attempts at level 0, want %d", lines,
		    (uintmax_t)attempts, want);
	if (attempts < 3)
		fail("only %ju connection attempts in 12 s: nothing was left out", (uintmax_t)attempts);
	if (attempts >= 4 && kpi_console_count("(4 failures in a row)") != 1)
		fail("the fourth refusal's line does not count the failures in a row");
	if (kpi_console_count("boot NIC em0 configured") != 1)
		fail("the milestone \"boot NIC em0 configured\" was not printed at level 0");
	u = kpi_unload();
	finish(u == 0);
	fig("%ju login attempts refused, %d console lines at net.isboot.debug=0", (uintmax_t)attempts,
	    lines);
	return (failed);
}

/* Issue 10 item 4: attached disk, nothing open, the session up: unload must work. */
static int
sc_unload_attached(void)
{
	hu64 blocks;
	unsigned bs;
	int openings, u;
	char c[1024];

	unsigned char *buf;
	int i, done = 0, bad = 0;

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	/*
	 * Reads in flight when the unload comes (CAM's own commands can be, with nothing
	 * open): every CCB must come back, and none may be touched after the detach.
	 */
	buf = aligned_alloc(4096, 8 * 65536);
	for (i = 0; i < 8; i++)
		kpi_io_submit(o.lun, 0, (hu64)i * 128, 128, buf + i * 65536, (hu64)i);
	u = kpi_unload();
	if (u != 0)
		fail("kldunload with the disk attached but not open returned %d, want 0", u);
	for (i = 0; i < 8; i++) {
		hu64 cookie;
		int err;

		if (kpi_io_reap(15000, &cookie, &err) != 0)
			break;
		done++;
		bad += err != 0;
	}
	if (done != 8)
		fail("%d of 8 reads in flight at the unload never came back", 8 - done);
	finish(u == 0);
	kpi_counts(c, sizeof(c));
	fig("unload with the disk attached, not open, 8 reads in flight (%d came back, %d "
	    "failed): %d; %s", done, bad, u, c);
	return (failed);
}

/* Scenario 4: the first target dead, the alternate serves the disk. */
static int
sc_twotarget(void)
{
	hu64 blocks, corrupt = 0;
	unsigned bs;
	int openings;
	unsigned char *buf, *ref;

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	buf = aligned_alloc(4096, 1 << 20);
	ref = malloc(1 << 20);
	if (io_sync(0, 0, (1 << 20) / bs, buf, 60000) != 0)
		fail("reading the alternate's disk failed");
	else if (backing_fd >= 0 && (pread(backing_fd, ref, 1 << 20, 0) != 1 << 20 ||
	    memcmp(ref, buf, 1 << 20) != 0))
		corrupt = 1;
	if (corrupt)
		fail("the data read is not the alternate's disk");
	fig("first target dead: the alternate (LUN %ju) served the disk, first MiB %s",
	    (uintmax_t)o.lun, corrupt ? "differs" : "matches");
	free(buf);
	free(ref);
	kpi_shutdown_pre_sync();
	kpi_shutdown_post_sync();
	finish(0);
	return (failed);
}

/* Scenario 8: the scripted misbehaving target; reads must be right or fail cleanly. */
static int
sc_hostile(void)
{
	hu64 blocks, corrupt = 0;
	unsigned bs;
	int openings, errors;

	unsigned char label[4096];
	hu64 b, wcorrupt = 0, recon;
	int werrors;
	char last[256] = "";

	o.fake_pattern = 1;
	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	/* The first READ (GEOM's taste) is the one the fault lands on. */
	if (kpi_disk_label(o.lun, label, sizeof(label)) == 0) {
		for (b = 0; b < sizeof(label); b++)
			if (label[b] != fake_pattern(b))
				corrupt++;
	} else
		note("the taste read failed (cleanly)");
	errors = io_pass(0, 0, blocks < 2048 ? blocks : 2048, 64, bs, 4, 0, &corrupt, NULL);
	/*
	 * A write phase for the R2T fault, read back: 128 KiB writes go past the target's
	 * FirstBurstLength (64 KiB), so the rest is asked for with R2Ts.
	 */
	o.fake_pattern = 0;
	werrors = io_pass(1, 4096, 512, 256, bs, 4, 6, NULL, NULL);
	werrors += io_pass(0, 4096, 512, 256, bs, 4, 6, &wcorrupt, NULL);
	if (corrupt != 0 || wcorrupt != 0)
		fail("%ju wrong bytes read from the misbehaving target (%ju after writes)",
		    (uintmax_t)corrupt, (uintmax_t)wcorrupt);
	if (werrors != 0)
		fail("%d errors writing and reading back 256 KiB", werrors);
	/* Issue 12 item 6: the cause of a reconnect is in last_error, not only "timed out". */
	recon = sysctl_u64("net.isboot.session.reconnects");
	kpi_sysctl_str("net.isboot.session.last_error", last, sizeof(last));
	if (recon > 0 && last[0] == '\0')
		fail("%ju reconnects but net.isboot.session.last_error is empty", (uintmax_t)recon);
	fig("%ju KiB read and 256 KiB written back, %d clean read errors, %ju wrong bytes, "
	    "reconnects %ju, last_error \"%.70s\"",
	    (uintmax_t)((blocks < 2048 ? blocks : 2048) * bs >> 10), errors,
	    (uintmax_t)(corrupt + wcorrupt), (uintmax_t)recon, last);
	kpi_shutdown_pre_sync();
	kpi_shutdown_post_sync();
	finish(0);
	return (failed);
}

/* Issue 10 item 2: a panic dump to the iSCSI disk. */
static int
sc_dump(void)
{
	hu64 blocks, waited;
	unsigned bs;
	int openings, e;
	unsigned char *buf;

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	buf = aligned_alloc(4096, 4096);
	memset(buf, 0, 4096);
	e = kpi_dump_write(o.lun, 1000, buf, 4096 / bs, &waited);
	if (e == F_ENODEV)
		fig("dumps to the iSCSI disk are disabled (the SIM has no poll routine, as iscsi(4))");
	else if (e == 0)
		fig("a polled dump write completed");
	else {
		fail("dump enabled but a polled write did not complete: %ju s of polling then "
		    "error %d", (uintmax_t)(waited / 1000000000ULL), e);
	}
	printf("%s %s\n", failed ? "FAIL" : "OK", figure);
	fflush(stdout);
	/* The "machine" is dumping: nothing else may run; end here. */
	_exit(failed);
}

/* Issue 10 item 3: a target that answers REPORT LUNS before its LUN map is back. */
static int
sc_lunmap(void)
{
	hu64 blocks, recon;
	unsigned bs;
	int openings, i;
	unsigned char *buf;

	if (boot_to_disk(&blocks, &bs, &openings) != 0)
		return (1);
	kpi_disk_open(o.lun);
	recon = sysctl_u64("net.isboot.session.reconnects");
	if (ctl("restart-lun-late", NULL, 0) != 0)
		fail("the target did not restart");
	for (i = 0; i < 300 && sysctl_u64("net.isboot.session.reconnects") == recon; i++)
		host_sleep_ns(100000000ULL);
	for (i = 0; i < 300 && !state_is("up"); i++)
		host_sleep_ns(100000000ULL);
	/* The LUN comes back 3 s after the target; let any scan finish. */
	host_sleep_ns(5000000000ULL);
	buf = aligned_alloc(4096, 4096);
	if (kpi_disk_info(o.lun, &blocks, &bs, &openings) != 0)
		fail("the boot disk (da on LUN %ju) was destroyed after the reconnect",
		    (uintmax_t)o.lun);
	else if (io_sync(0, 0, 4096 / bs, buf, 60000) != 0)
		fail("the boot disk does not answer after the reconnect");
	fig("reconnect while the target's LUN map was incomplete: boot disk %s",
	    kpi_disk_info(o.lun, &blocks, &bs, &openings) == 0 ? "kept" : "LOST");
	free(buf);
	kpi_disk_close(o.lun);
	kpi_shutdown_pre_sync();
	kpi_shutdown_post_sync();
	finish(0);
	return (failed);
}

/* A failed or aborted boot, then unload: nothing of the module may remain. */
static int
sc_noboot_unload(void)
{
	int e = load(), u;
	char routes[512];

	if (e != 0)
		note("kldload returned %d", e);
	host_sleep_ns(2000000000ULL);
	kpi_net_routes(routes, sizeof(routes));
	note("network while booting: %s", routes);
	u = e == 0 ? kpi_unload() : kpi_unload();
	kpi_net_routes(routes, sizeof(routes));
	fig("unload: %d; network after: %s", u, routes[0] != '\0' ? routes : "as before load");
	finish(1);
	return (failed);
}

/* Issue 10 item 8: a load that fails must leave hw.ibft.* empty and fail with ENOEXEC. */
static int
sc_badload(void)
{
	int e;

	/* kthread_add fails: the taskqueue has no thread, after hw.ibft.* were published. */
	kpi_fail_kthreads(1);
	e = load();
	char name[256], last[256];

	kpi_sysctl_str("hw.ibft.target_name", name, sizeof(name));
	kpi_sysctl_str("net.isboot.session.last_error", last, sizeof(last));
	if (e != F_ENOEXEC)
		fail("kldload of a failing module returned %d, want ENOEXEC", e);
	if (name[0] != '\0')
		fail("hw.ibft.target_name still \"%s\" after the load failed", name);
	fig("failed load: kldload %d, hw.ibft.target_name \"%s\", last_error \"%s\"", e, name,
	    last);
	kpi_unload();
	finish(1);
	return (failed);
}

static int
sc_failmalloc(void)
{
	hu64 blocks;
	unsigned bs;
	int openings, e, i;
	unsigned char *buf;
	hsize_t frames[16];
	int n;
	/* Armed after the first loop: the reset falls inside the second (8 reads of 64 KiB), so
	 * the sweep reaches a reconnect and the login after it. */
	struct host_faults f = { .reset_after = 128 << 10, .resets_left = 1 };

	kpi_malloc_fail_nth(o.fail_nth);
	e = load();
	if (e == 0 && kpi_wait_root(15000) == 0 && kpi_disk_info(o.lun, &blocks, &bs,
	    &openings) == 0) {
		buf = aligned_alloc(4096, 64 << 10);
		for (i = 0; i < 8; i++) {
			fill(buf, (hu64)i * 128, 128, bs, 5);
			(void)io_sync(1, (hu64)i * 128, 128, buf, 30000);
			(void)io_sync(0, (hu64)i * 128, 128, buf, 30000);
		}
		host_set_faults(&f);
		for (i = 0; i < 8; i++)
			(void)io_sync(0, 0, 128, buf, 30000);
		free(buf);
	}
	kpi_shutdown_pre_sync();
	kpi_shutdown_post_sync();
	if (e == 0)
		e = kpi_unload();
	n = kpi_malloc_failed_site(frames, 16);
	printf("%s calls %lld nowait %lld", o.fail_nth < 0 ? "COUNT" : "SURVIVED", kpi_malloc_calls(),
	    kpi_malloc_nowait_calls());
	if (n > 0) {
		printf(" site");
		for (i = 0; i < n; i++)
			printf(" %#lx", frames[i]);
	}
	printf("\n");
	fflush(stdout);
	_exit(0);
}

static int
sc_epochtrace(void)
{
	kpi_epoch_trace(1);
	return (sc_boot());
}

static int
sc_selftest(void)
{
	int i, n = kpi_selftest_count(), bad = 0, r;
	int covered[256] = { 0 };

	kpi_thread_attach("selftest");
	kpi_init(0);
	host_net_init();
	kpi_boot_prepare();
	for (i = 0; i < n; i++) {
		int ok = kpi_selftest_run(i);

		covered[kpi_selftest_rule(i)] = 1;
		printf("self-test %-22s %-50s %s\n", kpi_rule_id(kpi_selftest_rule(i)),
		    kpi_selftest_name(i), ok ? "fires" : "DID NOT FIRE");
		bad += !ok;
	}
	for (r = 0; r < kpi_rule_count(); r++)
		if (!covered[r]) {
			printf("rule %s has no self-test\n", kpi_rule_id(r));
			bad++;
		}
	printf("%s %d rules, %d self-tests, %d not firing\n", bad ? "FAIL" : "OK",
	    kpi_rule_count(), n, bad);
	fflush(stdout);
	_exit(bad != 0);
}

static int
sc_rules(void)
{
	int r;

	for (r = 0; r < kpi_rule_count(); r++)
		printf("%-22s %s\n", kpi_rule_id(r), kpi_rule_source(r));
	return (0);
}

static const struct {
	const char *name;
	int (*fn)(void);
} scenarios[] = {
	{ "boot", sc_boot },
	{ "io", sc_io },
	{ "faults", sc_faults },
	{ "twotarget", sc_twotarget },
	{ "shutdown-live", sc_shutdown_live },
	{ "shutdown-dead", sc_shutdown_dead },
	{ "unload-busy", sc_unload_busy },
	{ "unload-idle", sc_unload_idle },
	{ "tunables", sc_tunables },
	{ "idle", sc_idle },
	{ "quiet", sc_quiet },
	{ "dies-after-login", sc_dies_after_login },
	{ "digests-istgt", sc_digests_istgt },
	{ "digests-forbid", sc_digests_forbid },
	{ "tunables-bad", sc_tunables_bad },
	{ "unload-attached", sc_unload_attached },
	{ "hostile", sc_hostile },
	{ "dump", sc_dump },
	{ "lunmap", sc_lunmap },
	{ "noboot-unload", sc_noboot_unload },
	{ "badload", sc_badload },
	{ "epochtrace", sc_epochtrace },
	{ "failmalloc", sc_failmalloc },
	{ "noalloc", sc_noalloc },
	{ "selftest", sc_selftest },
	{ "rules", sc_rules },
};

static void
usage(void)
{
	fprintf(stderr, "usage: kmodsim [--ibft FILE] [--lowmem PA] [--mac MAC] [--lun N] "
	    "[--backing FILE] [--ctl CMD] [--debug N] [--mib N] [--qd N] [--fail-nth N] "
	    "[--kenv NAME=VALUE]... "
	    "[--verbose] [--quiet] SCENARIO\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	int i, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	o.lun = 1;
	o.debug = 1;
	o.mib = 256;
	o.qd = 16;
	o.fail_nth = -1;
	o.root_ms = 60000;
	sscanf("52:54:00:12:34:56", "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &o.mac[0], &o.mac[1],
	    &o.mac[2], &o.mac[3], &o.mac[4], &o.mac[5]);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--verbose") == 0)
			kpi_verbose = 1;
		else if (strcmp(a, "--quiet") == 0)
			host_quiet = 1;
		else if (a[0] != '-')
			o.scenario = a;
		else if (v == NULL)
			usage();
		else {
			i++;
			if (strcmp(a, "--ibft") == 0)
				o.ibft = v;
			else if (strcmp(a, "--lowmem") == 0)
				o.lowmem_pa = strtoull(v, NULL, 0);
			else if (strcmp(a, "--mac") == 0)
				sscanf(v, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &o.mac[0], &o.mac[1],
				    &o.mac[2], &o.mac[3], &o.mac[4], &o.mac[5]);
			else if (strcmp(a, "--lun") == 0)
				o.lun = strtoull(v, NULL, 0);
			else if (strcmp(a, "--backing") == 0)
				o.backing = v;
			else if (strcmp(a, "--ctl") == 0)
				o.ctl = v;
			else if (strcmp(a, "--debug") == 0)
				o.debug = atoi(v);
			else if (strcmp(a, "--mib") == 0)
				o.mib = atoi(v);
			else if (strcmp(a, "--qd") == 0)
				o.qd = atoi(v);
			else if (strcmp(a, "--fail-nth") == 0)
				o.fail_nth = strtoll(v, NULL, 0);
			else if (strcmp(a, "--root-ms") == 0)
				o.root_ms = atoi(v);
			else if (strcmp(a, "--kenv") == 0 && strchr(v, '=') != NULL &&
			    o.nkenv < (int)(sizeof(o.kenv) / sizeof(o.kenv[0])))
				o.kenv[o.nkenv++] = v;
			else
				usage();
		}
	}
	if (o.scenario == NULL)
		usage();
	if (o.backing != NULL && (backing_fd = open(o.backing, O_RDONLY)) < 0) {
		fprintf(stderr, "kmodsim: cannot open %s\n", o.backing);
		return (2);
	}
	for (i = 0; i < (int)(sizeof(scenarios) / sizeof(scenarios[0])); i++)
		if (strcmp(scenarios[i].name, o.scenario) == 0)
			break;
	if (i == (int)(sizeof(scenarios) / sizeof(scenarios[0])))
		usage();
	if (strcmp(o.scenario, "selftest") != 0 && strcmp(o.scenario, "rules") != 0)
		setup();
	rc = scenarios[i].fn();
	if (strcmp(o.scenario, "rules") != 0)
		printf("%s %s\n", rc ? "FAIL" : "OK", figure);
	fflush(stdout);
	/* Threads of the "kernel" may still run: end the process without unwinding them. */
	_exit(rc ? 1 : 0);
}
