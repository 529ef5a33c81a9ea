/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The benchmark's peer initiator: libiscsi's asynchronous API driving READ(16)/WRITE(16) at a
 * fixed queue depth, because libiscsi-bin's iscsi-perf only reads. Same workload shape and output
 * line as isboot's bench binary (tests/bench/main.rs), so compare.sh can put them side by side.
 *
 *   libiscsi-peer URL read|write|randread BLOCK_BYTES QUEUE_DEPTH SECONDS
 *
 * Output: "ops=N bytes=N secs=F mbps=F iops=F" on stdout; errors on stderr with exit code 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

enum mode { SEQ_READ, SEQ_WRITE, RAND_READ };

struct bench {
	struct iscsi_context *iscsi;
	int lun;
	enum mode mode;
	uint32_t block_size;    /* bytes per command */
	uint32_t lba_size;      /* bytes per logical block */
	uint64_t lbas;          /* capacity in logical blocks */
	uint64_t next_lba;      /* sequential position */
	uint64_t rng;
	unsigned char *wbuf;
	double deadline;
	int in_flight;
	int failed;
	uint64_t ops;
	uint64_t bytes;
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

static void issue(struct bench *b);

static void done(struct iscsi_context *iscsi, int status, void *command_data, void *private_data)
{
	struct bench *b = private_data;
	struct scsi_task *task = command_data;

	b->in_flight--;
	if (status != SCSI_STATUS_GOOD) {
		fprintf(stderr, "command failed: %s\n", iscsi_get_error(iscsi));
		b->failed = 1;
	} else {
		b->ops++;
		b->bytes += b->block_size;
	}
	scsi_free_scsi_task(task);
	if (!b->failed && now() < b->deadline)
		issue(b);
}

static void issue(struct bench *b)
{
	uint64_t per = b->block_size / b->lba_size;
	uint64_t slots = b->lbas / per;
	uint64_t lba;
	struct scsi_task *t;

	if (b->mode == RAND_READ) {
		lba = (xorshift(&b->rng) % slots) * per;
	} else {
		lba = b->next_lba;
		b->next_lba += per;
		if (b->next_lba + per > b->lbas)
			b->next_lba = 0;
	}
	if (b->mode == SEQ_WRITE)
		t = iscsi_write16_task(b->iscsi, b->lun, lba, b->wbuf, b->block_size, b->lba_size,
		    0, 0, 0, 0, 0, done, b);
	else
		t = iscsi_read16_task(b->iscsi, b->lun, lba, b->block_size, b->lba_size,
		    0, 0, 0, 0, 0, done, b);
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
	struct iscsi_url *url;
	struct scsi_task *cap;
	struct scsi_readcapacity16 *rc16;
	double start, secs;
	int qd, i;

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
	b.wbuf = malloc(b.block_size);
	if (b.wbuf == NULL)
		return 1;
	for (i = 0; i < (int)b.block_size; i++)
		b.wbuf[i] = (unsigned char)(i * 7 + 3);

	start = now();
	b.deadline = start + secs;
	for (i = 0; i < qd && !b.failed; i++)
		issue(&b);
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
	secs = now() - start;
	if (b.failed)
		return 1;
	printf("ops=%" PRIu64 " bytes=%" PRIu64 " secs=%.3f mbps=%.1f iops=%.0f\n", b.ops, b.bytes,
	    secs, (double)b.bytes / secs / 1e6, (double)b.ops / secs);
	iscsi_logout_sync(b.iscsi);
	iscsi_destroy_url(url);
	iscsi_destroy_context(b.iscsi);
	free(b.wbuf);
	return 0;
}
