/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The benchmark's peer initiator: libiscsi's asynchronous API driving READ(16)/WRITE(16) at a
 * fixed queue depth, because libiscsi-bin's iscsi-perf only reads. Same workload shape and output
 * line as isboot's bench binary (tests/bench/main.rs), so compare.sh can put them side by side.
 *
 *   libiscsi-peer URL read|write|randread BLOCK_BYTES QUEUE_DEPTH SECONDS
 *
 * Used as a well-written libiscsi program would be: reads land in the caller's buffers
 * (scsi_task_add_data_in_buffer, as iscsi-perf does; without it libiscsi allocates and copies
 * every Data-In), writes go out of them (libiscsi sends the caller's buffer), one buffer per
 * command slot, and a completion refills its slot at once.
 *
 * Output: "ops=N bytes=N secs=F mbps=F iops=F cpu_ns=N utick=N stick=N" on stdout, plus
 * "allocs=N copied=N copied_bulk=N zeroed=N" when tests/bench/count.c is preloaded, all over the
 * measurement window (from the first completion after a warm-up of a fifth of the run, at most
 * 0.5 s, to the last completion); errors on stderr with exit code 1.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

enum mode { SEQ_READ, SEQ_WRITE, RAND_READ };

/* The counters of tests/bench/count.c, in its order. */
struct counts {
	uint64_t allocs, frees, alloc_bytes, copied, copied_bulk, zeroed, copy_calls;
};

struct snap {
	double t;
	uint64_t cpu_ns, utick, stick, ops;
	struct counts c;
};

struct slot {
	struct bench *b;
	unsigned char *buf;
};

struct bench {
	struct iscsi_context *iscsi;
	int lun;
	enum mode mode;
	uint32_t block_size;    /* bytes per command */
	uint32_t lba_size;      /* bytes per logical block */
	uint64_t lbas;          /* capacity in logical blocks */
	uint64_t next_lba;      /* sequential position */
	uint64_t rng;
	double deadline;
	double warm;            /* the window starts at the first completion after this */
	int in_flight;
	int failed;
	int counting;
	int count_fd;
	uint64_t ops;
	struct snap start;
	int started;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* CPU time of the process: nanoseconds on a CPU summed over its threads (schedstat), and user
 * and system clock ticks (stat), the same way isboot's bench reads them. */
static void cpu(struct snap *s)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	char path[300], buf[512];
	unsigned long long ns, ut, st;
	FILE *f;

	s->cpu_ns = 0;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fscanf(f, "%llu", &ns) == 1)
			s->cpu_ns += ns;
		fclose(f);
	}
	if (d != NULL)
		closedir(d);
	s->utick = s->stick = 0;
	f = fopen("/proc/self/stat", "r");
	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) != NULL) {
			/* Fields 14 and 15, counted after the command name's closing parenthesis. */
			char *p = strrchr(buf, ')');

			if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			    &ut, &st) == 2) {
				s->utick = ut;
				s->stick = st;
			}
		}
		fclose(f);
	}
}

static void counts(struct bench *b, struct counts *c)
{
	memset(c, 0, sizeof(*c));
	if (b->counting && pread(b->count_fd, c, sizeof(*c), 0) != (ssize_t)sizeof(*c))
		memset(c, 0, sizeof(*c));
}

/* Opens the window: CPU first, counters last, so the snapshot's own allocations fall outside. */
static void window_start(struct bench *b)
{
	cpu(&b->start);
	b->start.ops = b->ops;
	b->start.t = now();
	counts(b, &b->start.c);
	b->started = 1;
}

static void issue(struct slot *s);

#ifdef PEER_EXTRA_CODE
/*
 * A control for tests/README.md, built by hand only (cc -DPEER_EXTRA_CODE): 32 KiB of
 * straight-line code (4,096 eight-byte NOPs) run before every command, more than isboot's whole
 * hot path per command, to see whether a longer user path slows the kernel's through the caches.
 */
#define NOP_8B ".byte 0x0f,0x1f,0x84,0x00,0x00,0x00,0x00,0x00\n"
#define NOP_64B NOP_8B NOP_8B NOP_8B NOP_8B NOP_8B NOP_8B NOP_8B NOP_8B
#define NOP_512B NOP_64B NOP_64B NOP_64B NOP_64B NOP_64B NOP_64B NOP_64B NOP_64B
#define NOP_4K NOP_512B NOP_512B NOP_512B NOP_512B NOP_512B NOP_512B NOP_512B NOP_512B
#define NOP_32K NOP_4K NOP_4K NOP_4K NOP_4K NOP_4K NOP_4K NOP_4K NOP_4K
__attribute__((noinline)) static void extra_code(void)
{
	__asm__ volatile(NOP_32K);
}
#else
static void extra_code(void)
{
}
#endif

static void done(struct iscsi_context *iscsi, int status, void *command_data, void *private_data)
{
	struct slot *s = private_data;
	struct bench *b = s->b;
	struct scsi_task *task = command_data;
	double t;

	b->in_flight--;
	if (status != SCSI_STATUS_GOOD) {
		fprintf(stderr, "command failed: %s\n", iscsi_get_error(iscsi));
		b->failed = 1;
	} else {
		b->ops++;
	}
	scsi_free_scsi_task(task);
	t = now();
	if (!b->started && t >= b->warm)
		window_start(b);
	if (!b->failed && t < b->deadline)
		issue(s);
}

static void issue(struct slot *s)
{
	struct bench *b = s->b;
	uint64_t per = b->block_size / b->lba_size;
	uint64_t slots = b->lbas / per;
	uint64_t lba;
	struct scsi_task *t;

	extra_code();

	if (b->mode == RAND_READ) {
		lba = (xorshift(&b->rng) % slots) * per;
	} else {
		lba = b->next_lba;
		b->next_lba += per;
		if (b->next_lba + per > b->lbas)
			b->next_lba = 0;
	}
	if (b->mode == SEQ_WRITE) {
		t = iscsi_write16_task(b->iscsi, b->lun, lba, s->buf, b->block_size, b->lba_size,
		    0, 0, 0, 0, 0, done, s);
	} else {
		t = iscsi_read16_task(b->iscsi, b->lun, lba, b->block_size, b->lba_size,
		    0, 0, 0, 0, 0, done, s);
		if (t != NULL && scsi_task_add_data_in_buffer(t, (int)b->block_size, s->buf) != 0) {
			fprintf(stderr, "cannot add a read buffer\n");
			b->failed = 1;
		}
	}
	if (t == NULL) {
		fprintf(stderr, "cannot queue a command: %s\n", iscsi_get_error(b->iscsi));
		b->failed = 1;
		return;
	}
	b->in_flight++;
}

int main(int argc, char **argv)
{
	struct bench b;
	struct slot *slots;
	struct iscsi_url *url;
	struct scsi_task *cap;
	struct scsi_readcapacity16 *rc16;
	struct snap end;
	const char *count_file = getenv("ISBOOT_COUNT_FILE");
	double start, secs, warm;
	uint64_t ops;
	int qd, i, j;

	if (argc != 6) {
		fprintf(stderr, "usage: %s URL read|write|randread BLOCK_BYTES QUEUE_DEPTH SECONDS\n",
		    argv[0]);
		return 2;
	}
	memset(&b, 0, sizeof(b));
	if (strcmp(argv[2], "read") == 0)
		b.mode = SEQ_READ;
	else if (strcmp(argv[2], "write") == 0)
		b.mode = SEQ_WRITE;
	else if (strcmp(argv[2], "randread") == 0)
		b.mode = RAND_READ;
	else {
		fprintf(stderr, "unknown mode %s\n", argv[2]);
		return 2;
	}
	b.block_size = (uint32_t)strtoul(argv[3], NULL, 0);
	qd = atoi(argv[4]);
	secs = atof(argv[5]);
	if (b.block_size == 0 || qd <= 0 || secs <= 0) {
		fprintf(stderr, "bad block size, queue depth or duration\n");
		return 2;
	}
	b.rng = 0x2545f4914f6cdd1dULL;
	if (count_file != NULL) {
		b.count_fd = open(count_file, O_RDONLY);
		b.counting = b.count_fd >= 0;
	}

	b.iscsi = iscsi_create_context("iqn.2026-11.org.isboot:bench-libiscsi");
	if (b.iscsi == NULL) {
		fprintf(stderr, "cannot create an iSCSI context\n");
		return 1;
	}
	url = iscsi_parse_full_url(b.iscsi, argv[1]);
	if (url == NULL) {
		fprintf(stderr, "bad URL: %s\n", iscsi_get_error(b.iscsi));
		return 1;
	}
	iscsi_set_targetname(b.iscsi, url->target);
	iscsi_set_session_type(b.iscsi, ISCSI_SESSION_NORMAL);
	if (iscsi_full_connect_sync(b.iscsi, url->portal, url->lun) != 0) {
		fprintf(stderr, "login failed: %s\n", iscsi_get_error(b.iscsi));
		return 1;
	}
	b.lun = url->lun;
	cap = iscsi_readcapacity16_sync(b.iscsi, b.lun);
	if (cap == NULL || cap->status != SCSI_STATUS_GOOD) {
		fprintf(stderr, "READ CAPACITY(16) failed: %s\n", iscsi_get_error(b.iscsi));
		return 1;
	}
	rc16 = scsi_datain_unmarshall(cap);
	if (rc16 == NULL) {
		fprintf(stderr, "cannot parse READ CAPACITY(16) data\n");
		return 1;
	}
	b.lba_size = rc16->block_length;
	b.lbas = rc16->returned_lba + 1;
	scsi_free_scsi_task(cap);
	if (b.block_size % b.lba_size != 0 || (uint64_t)b.block_size > b.lbas * b.lba_size) {
		fprintf(stderr, "block size %u does not fit the %u-byte blocks of the disk\n",
		    b.block_size, b.lba_size);
		return 1;
	}
	slots = calloc((size_t)qd, sizeof(*slots));
	if (slots == NULL)
		return 1;
	for (i = 0; i < qd; i++) {
		slots[i].b = &b;
		slots[i].buf = malloc(b.block_size);
		if (slots[i].buf == NULL)
			return 1;
		for (j = 0; j < (int)b.block_size; j++)
			slots[i].buf[j] = (unsigned char)(j * 7 + 3);
	}

	start = now();
	b.deadline = start + secs;
	warm = secs / 5 < 0.5 ? secs / 5 : 0.5;
	b.warm = start + warm;
	for (i = 0; i < qd && !b.failed; i++)
		issue(&slots[i]);
	while (b.in_flight > 0) {
		struct pollfd pfd;

		pfd.fd = iscsi_get_fd(b.iscsi);
		pfd.events = iscsi_which_events(b.iscsi);
		pfd.revents = 0;
		if (poll(&pfd, 1, 1000) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 1;
		}
		if (iscsi_service(b.iscsi, pfd.revents) < 0) {
			fprintf(stderr, "iscsi_service: %s\n", iscsi_get_error(b.iscsi));
			return 1;
		}
	}
	if (b.failed)
		return 1;
	if (!b.started) {
		fprintf(stderr, "no completion after the warm-up\n");
		return 1;
	}
	counts(&b, &end.c);
	end.t = now();
	cpu(&end);
	ops = b.ops - b.start.ops;
	secs = end.t - b.start.t;
	printf("ops=%" PRIu64 " bytes=%" PRIu64 " secs=%.3f mbps=%.1f iops=%.0f cpu_ns=%" PRIu64
	    " utick=%" PRIu64 " stick=%" PRIu64, ops, ops * b.block_size, secs,
	    (double)ops * b.block_size / secs / 1e6, (double)ops / secs,
	    end.cpu_ns - b.start.cpu_ns, end.utick - b.start.utick, end.stick - b.start.stick);
	if (b.counting)
		printf(" allocs=%" PRIu64 " copied=%" PRIu64 " copied_bulk=%" PRIu64 " zeroed=%" PRIu64,
		    end.c.allocs - b.start.c.allocs, end.c.copied - b.start.c.copied,
		    end.c.copied_bulk - b.start.c.copied_bulk, end.c.zeroed - b.start.c.zeroed);
	printf("\n");
	iscsi_logout_sync(b.iscsi);
	iscsi_destroy_url(url);
	iscsi_destroy_context(b.iscsi);
	for (i = 0; i < qd; i++)
		free(slots[i].buf);
	free(slots);
	return 0;
}
