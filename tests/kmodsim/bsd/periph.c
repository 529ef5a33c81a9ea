/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The periph side of CAM, as a model of what FreeBSD does above a SIM:
 *  - the bus scan (cam/scsi/scsi_xpt.c probestart/probedone, scsi_scan_bus): TEST UNIT READY
 *    (a unit attention is retried), INQUIRY, REPORT LUNS on LUN 0, then each reported LUN;
 *    LUNs of the previous REPORT LUNS that are missing now are announced lost, except LUN 0
 *    (probe_purge_old), which destroys their da;
 *  - da (cam/scsi/scsi_da.c): attach on a direct-access LUN with READ CAPACITY(10) and (16),
 *    a first read of the label (what GEOM's taste does), reads and writes at the device's
 *    openings, the error policy of cam/cam_periph.c cam_periph_error (requeue, retries with
 *    a count, invalid requests fail, CAM_DEV_QFRZN released after the retry is queued), and
 *    dumps only when the SIM can be polled (daregister: d_dump when cam_sim_pollable).
 */
#include "cam.h"

#include <machine/bus.h>
#include <sys/bus_dma.h>

#define DA_RETRIES	4	/* scsi_da.c da_retry_count */
#define DA_TIMEOUT_MS	60000	/* scsi_da.c da_default_timeout */

struct kio {
	struct kio *next;
	hu64 cookie;
	int error;
	int write;
	struct kperiph *kp;
	struct kccb *k;
	struct kio *sync_next;
	int done;
	bus_dma_segment_t segs[4];	/* the S/G list in S/G mode */
};

static struct kio *completed_head, *completed_tail;
static int io_inflight;
static int io_sg;	/* kpi_io_sg: buffers as CAM_DATA_SG lists of kernel virtual addresses */
static int da_units;
static hu64 io_errors, io_retries, io_requeues;
static hu64 max_latency_ns;

/* ---- issuing one CCB and the error policy ---- */

static void
scsi_ccb_setup(struct kccb *k, struct cam_path *path, const unsigned char *cdb, int cdb_len,
    uint32_t dir, void *buf, uint32_t len)
{
	struct ccb_scsiio *csio = &k->ccb.csio;

	host_memset(&k->ccb, 0, sizeof(k->ccb));
	csio->ccb_h.func_code = XPT_SCSI_IO;
	csio->ccb_h.path = path;
	csio->ccb_h.target_id = 0;
	csio->ccb_h.target_lun = k->dev->lun;
	csio->ccb_h.flags = dir;
	csio->ccb_h.timeout = DA_TIMEOUT_MS;
	csio->ccb_h.retry_count = DA_RETRIES;
	csio->data_ptr = buf;
	csio->dxfer_len = len;
	csio->sense_len = SSD_FULL_SIZE;
	csio->cdb_len = (u_int8_t)cdb_len;
	csio->tag_action = MSG_SIMPLE_Q_TAG;
	host_memcpy(csio->cdb_io.cdb_bytes, cdb, cdb_len);
	k->retries = DA_RETRIES;
}

/*
 * cam/cam_periph.c cam_periph_error: 0 done, ERESTART send again, else the errno.
 * *requeue_only is set when the retry does not consume the count.
 */
static int
periph_error(struct kccb *k, hu64 *delay_ms)
{
	struct ccb_scsiio *csio = &k->ccb.csio;
	cam_status st = k->ccb.ccb_h.status & CAM_STATUS_MASK;

	*delay_ms = 0;
	switch (st) {
	case CAM_REQ_CMP:
		return (0);
	case CAM_REQ_INVALID:
	case CAM_PATH_INVALID:
	case CAM_NO_HBA:
	case CAM_PROVIDE_FAIL:
	case CAM_REQ_TOO_BIG:
	case CAM_LUN_INVALID:
	case CAM_TID_INVALID:
		return (EINVAL);
	case CAM_DEV_NOT_THERE:
		return (ENXIO);
	case CAM_SCSI_BUS_RESET:
	case CAM_BDR_SENT:
	case CAM_REQUEUE_REQ:
		io_requeues++;
		return (ERESTART);
	case CAM_RESRC_UNAVAIL:
		*delay_ms = 500;	/* periph_noresrc_delay */
		break;
	case CAM_SCSI_STATUS_ERROR:
		if (csio->scsi_status == SCSI_STATUS_CHECK_COND &&
		    (k->ccb.ccb_h.status & CAM_AUTOSNS_VALID) != 0) {
			int key = csio->sense_data.error_code == 0x72 ||
			    csio->sense_data.error_code == 0x73 ?
			    ((u_int8_t *)&csio->sense_data)[1] & 0xf :
			    ((u_int8_t *)&csio->sense_data)[2] & 0xf;

			if (key == SSD_KEY_ILLEGAL_REQUEST || key == SSD_KEY_DATA_PROTECT)
				return (EINVAL);
			if (key == SSD_KEY_NO_SENSE || key == SSD_KEY_RECOVERED_ERROR)
				return (0);
			if (key == SSD_KEY_NOT_READY)
				*delay_ms = 200;
		} else if (csio->scsi_status == SCSI_STATUS_BUSY ||
		    csio->scsi_status == SCSI_STATUS_QUEUE_FULL)
			*delay_ms = 100;
		else if (csio->scsi_status == SCSI_STATUS_OK)
			return (0);
		break;
	default:
		break;
	}
	if (k->retries <= 0)
		return (EIO);
	k->retries--;
	io_retries++;
	return (ERESTART);
}

/* The completion of a CCB: returns 1 when it was sent again (not finished). */
static int
periph_finish(struct kccb *k, int *error)
{
	hu64 delay;
	int frozen = (k->ccb.ccb_h.status & CAM_DEV_QFRZN) != 0;
	int e = periph_error(k, &delay);
	hu64 lat = host_now_ns() - k->sent_ns;

	if (lat > max_latency_ns)
		max_latency_ns = lat;
	k->ccb.ccb_h.status &= ~CAM_DEV_QFRZN;
	if (e == ERESTART && k->dev->da != NULL && k->dev->da->invalid &&
	    k->owner != NULL)
		e = ENXIO;
	if (e == ERESTART) {
		if (delay > 0)
			host_sleep_ns(delay * 1000000ULL);
		k->ccb.ccb_h.status = 0;
		k->ccb.csio.scsi_status = 0;
		k->ccb.csio.resid = 0;
		cam_action_queued(k);
		if (frozen)
			kcam_release_devq(k->dev, 1);
		return (1);
	}
	if (frozen)
		kcam_release_devq(k->dev, 1);
	*error = e;
	return (0);
}

/* A synchronous command (probe, capacity): cam_periph_runccb with the default error policy. */
struct ksync {
	void *cv;
	int done, error;
};

static void
sync_done(struct kccb *k)
{
	struct ksync *s = k->owner;
	int error = 0;

	if (periph_finish(k, &error))
		return;
	host_cv_lock(s->cv);
	s->error = error;
	s->done = 1;
	host_cv_broadcast(s->cv);
	host_cv_unlock(s->cv);
}

static int
periph_cmd(struct kdev *dev, struct cam_path *path, const unsigned char *cdb, int cdb_len,
    uint32_t dir, void *buf, uint32_t len, uint32_t *resid)
{
	struct kccb *k = kccb_alloc(dev);
	struct ksync s = { .cv = host_cv_new() };
	hu64 deadline = host_now_ns() + (DA_TIMEOUT_MS + 30000ULL) * 1000000ULL;
	int timed_out = 0;

	scsi_ccb_setup(k, path, cdb, cdb_len, dir, buf, len);
	k->owner = NULL;
	k->done = sync_done;
	k->owner = &s;
	cam_action_queued(k);
	host_cv_lock(s.cv);
	while (!s.done && !timed_out)
		timed_out = host_cv_wait(s.cv, deadline);
	host_cv_unlock(s.cv);
	if (!s.done) {
		/* The SIM never completed it: leave the CCB (CAM would wait forever). */
		kpi_log("probe command %#x never completed", cdb[0]);
		return (ETIMEDOUT);
	}
	if (resid != NULL)
		*resid = k->ccb.csio.resid;
	host_cv_free(s.cv);
	kccb_free(k);
	return (s.error);
}

/* ---- da ---- */

static void
da_free(struct kperiph *kp)
{
	struct kdev *dev = kp->dev;

	kpi_log("da%d: periph destroyed", kp->periph.unit_number);
	printf("da%d: <%.8s %.16s> detached\n", kp->periph.unit_number,
	    (const char *)dev->inq + 8, (const char *)dev->inq + 16);
	host_cv_lock(cam_cv);
	if (dev->da == kp)
		dev->da = NULL;
	host_cv_unlock(cam_cv);
	cam_path_free(kp->path);
	kmem_free(kp);
}

static uint32_t
be32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static uint64_t
be64(const unsigned char *p)
{
	return ((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* scsi_da.c daregister/dastart/dadone: capacity, then the disk appears and GEOM tastes it. */
static void
da_attach(struct kdev *dev)
{
	struct kperiph *kp = kmem_alloc(sizeof(*kp));
	unsigned char cdb[16], rc[32], *label;
	int e, version = dev->inq[2];

	kp->dev = dev;
	kp->path = cam_path_new(dev->bus, dev->target, dev->lun, 0);
	kp->periph.periph_name = "da";
	kp->periph.unit_number = (uint32_t)da_units++;
	kp->periph.path = kp->path;
	kp->periph.sim = dev->bus->sim;
	kp->dump_enabled = cam_sim_pollable(dev->bus->sim);

	host_memset(cdb, 0, sizeof(cdb));
	cdb[0] = READ_CAPACITY;
	host_memset(rc, 0, sizeof(rc));
	e = periph_cmd(dev, kp->path, cdb, 10, CAM_DIR_IN, rc, 8, NULL);
	if (e == 0) {
		kp->blocks = (hu64)be32(rc) + 1;
		kp->block_size = be32(rc + 4);
	}
	if (e != 0 || be32(rc) == 0xffffffffU || version >= SCSI_REV_SPC3) {
		host_memset(cdb, 0, sizeof(cdb));
		cdb[0] = SERVICE_ACTION_IN;
		cdb[1] = SRC16_SERVICE_ACTION;
		cdb[13] = 32;
		host_memset(rc, 0, sizeof(rc));
		if (periph_cmd(dev, kp->path, cdb, 16, CAM_DIR_IN, rc, 32, NULL) == 0) {
			kp->blocks = be64(rc) + 1;
			kp->block_size = be32(rc + 8);
			e = 0;
		}
	}
	if (e != 0 || kp->block_size == 0 || kp->block_size > 65536) {
		printf("(da%d:%s%u:%u:%u:%jd): READ CAPACITY failed (%d)\n", kp->periph.unit_number,
		    dev->bus->sim->sim_name, dev->bus->sim->unit_number, dev->bus->sim->bus_id,
		    dev->target, (intmax_t)dev->lun, e);
		cam_path_free(kp->path);
		kmem_free(kp);
		return;
	}
	kfmt(kp->ppname, sizeof(kp->ppname), "da%u", kp->periph.unit_number);
	kp->pp.name = kp->ppname;
	kp->pp.mediasize = (off_t)(kp->blocks * kp->block_size);
	kp->pp.sectorsize = kp->block_size;
	host_cv_lock(cam_cv);
	kp->ready = 1;
	dev->da = kp;
	host_cv_unlock(cam_cv);
	printf("da%d at %s%u bus %u scbus%u target %u lun %jd\n", kp->periph.unit_number,
	    dev->bus->sim->sim_name, dev->bus->sim->unit_number, dev->bus->sim->bus_id,
	    dev->bus->id, dev->target, (intmax_t)dev->lun);
	printf("da%d: %juMB (%ju %u byte sectors)\n", kp->periph.unit_number,
	    (uintmax_t)(kp->blocks * kp->block_size >> 20), (uintmax_t)kp->blocks,
	    kp->block_size);
	/*
	 * GEOM tastes the new disk: g_part reads the label and the GPT header and entries, the
	 * first 64 KiB here, in one command (several Data-In PDUs).
	 */
	kp->label_len = kp->blocks * kp->block_size < 65536 ?
	    (unsigned int)(kp->blocks * kp->block_size) : 65536;
	label = kmem_alloc(kp->label_len);
	host_memset(cdb, 0, sizeof(cdb));
	cdb[0] = READ_10;
	cdb[7] = (kp->label_len / kp->block_size) >> 8;
	cdb[8] = (kp->label_len / kp->block_size) & 0xff;
	if (periph_cmd(dev, kp->path, cdb, 10, CAM_DIR_IN, label, kp->label_len, NULL) == 0)
		kp->label = label;
	else
		kmem_free(label);
}

/* What the taste read returned, for the scenario to compare. */
int
kpi_disk_label(hu64 lun, void *buf, hsize_t len)
{
	struct kbus *bus;
	struct kdev *dev;
	int e = ENXIO;

	host_cv_lock(cam_cv);
	bus = cam_first_bus();
	dev = bus != NULL ? cam_dev_find(bus, 0, (lun_id_t)lun, 0) : NULL;
	if (dev != NULL && dev->da != NULL && dev->da->label != NULL &&
	    len <= dev->da->label_len) {
		host_memcpy(buf, dev->da->label, len);
		e = 0;
	}
	host_cv_unlock(cam_cv);
	return (e);
}

/* cam_periph_invalidate + daoninvalidate: queued I/O fails, the disk goes. */
void
periph_async_lost(struct kdev *dev)
{
	struct kperiph *kp;
	int free_now;

	host_cv_lock(cam_cv);
	kp = dev->da;
	if (kp == NULL || kp->invalid) {
		host_cv_unlock(cam_cv);
		return;
	}
	kp->invalid = 1;
	dev->present = 0;
	cam_lost_devices++;
	free_now = kp->opens == 0;
	host_cv_unlock(cam_cv);
	printf("(da%d:%s%u:%u:%u:%jd): lost device - %d outstanding, %d opens\n",
	    kp->periph.unit_number, dev->bus->sim->sim_name, dev->bus->sim->unit_number,
	    dev->bus->sim->bus_id, dev->target, (intmax_t)dev->lun, dev->active, kp->opens);
	if (free_now)
		da_free(kp);
}

/* ---- the bus scan ---- */

static int
probe_lun(struct kbus *bus, lun_id_t lun)
{
	struct kdev *dev;
	struct cam_path *path;
	unsigned char cdb[16], inq[36];
	int e, pq;

	host_cv_lock(cam_cv);
	dev = cam_dev_find(bus, 0, lun, 1);
	host_cv_unlock(cam_cv);
	path = cam_path_new(bus, 0, lun, 0);
	/* PROBE_TUR: a unit attention after login is retried (cam_periph_error). */
	host_memset(cdb, 0, sizeof(cdb));
	cdb[0] = TEST_UNIT_READY;
	(void)periph_cmd(dev, path, cdb, 6, CAM_DIR_NONE, NULL, 0, NULL);
	host_memset(cdb, 0, sizeof(cdb));
	host_memset(inq, 0, sizeof(inq));
	cdb[0] = INQUIRY;
	cdb[4] = sizeof(inq);
	e = periph_cmd(dev, path, cdb, 6, CAM_DIR_IN, inq, sizeof(inq), NULL);
	cam_path_free(path);
	pq = inq[0] >> 5;
	host_cv_lock(cam_cv);
	if (e != 0 || pq != 0) {
		int was = dev->present;

		dev->present = 0;
		host_cv_unlock(cam_cv);
		if (was)
			periph_async_lost(dev);
		return (0);
	}
	host_memcpy(dev->inq, inq, sizeof(inq));
	dev->present = 1;
	host_cv_unlock(cam_cv);
	return (1);
}

static int
report_luns(struct kbus *bus, uint64_t *luns, int max)
{
	struct kdev *dev;
	struct cam_path *path;
	unsigned char cdb[16], *buf;
	uint32_t len, i, n = 0;
	int e;

	host_cv_lock(cam_cv);
	dev = cam_dev_find(bus, 0, 0, 1);
	host_cv_unlock(cam_cv);
	path = cam_path_new(bus, 0, 0, 0);
	buf = kmem_alloc(8 + 8 * 64);
	host_memset(cdb, 0, sizeof(cdb));
	cdb[0] = REPORT_LUNS;
	cdb[9] = (8 + 8 * 64) & 0xff;
	cdb[8] = ((8 + 8 * 64) >> 8) & 0xff;
	e = periph_cmd(dev, path, cdb, 12, CAM_DIR_IN, buf, 8 + 8 * 64, NULL);
	cam_path_free(path);
	if (e == 0) {
		len = be32(buf) / 8;
		for (i = 0; i < len && (int)n < max && i < 64; i++) {
			const unsigned char *l = buf + 8 + 8 * i;

			/* Peripheral (00b) and flat (01b) addressing of a single-level LUN. */
			luns[n++] = (uint64_t)(((l[0] & 0x3f) << 8) | l[1]);
		}
	}
	kmem_free(buf);
	return (e == 0 ? (int)n : -1);
}

int
periph_bus_scan(struct kbus *bus)
{
	uint64_t luns[64];
	int n, i, j, attached = 0;

	kpi_log("bus %u: scan", bus->id);
	if (!probe_lun(bus, 0)) {
		/* Nothing at LUN 0 answered: still ask the reported LUNs of the target. */
	}
	n = report_luns(bus, luns, 64);
	if (n < 0) {
		luns[0] = 0;
		n = 1;
	}
	/* scsi_xpt.c probe_purge_old: LUNs gone from the list are lost, except LUN 0. */
	if (bus->have_luns)
		for (i = 0; i < bus->nluns; i++) {
			int found = 0;

			for (j = 0; j < n; j++)
				found |= luns[j] == bus->luns[i];
			if (!found && bus->luns[i] != 0) {
				struct kdev *dev;

				host_cv_lock(cam_cv);
				dev = cam_dev_find(bus, 0, (lun_id_t)bus->luns[i], 0);
				host_cv_unlock(cam_cv);
				kpi_log("bus %u: lun %ju no longer reported: lost", bus->id,
				    (uintmax_t)bus->luns[i]);
				if (dev != NULL) {
					dev->present = 0;
					periph_async_lost(dev);
				}
			}
		}
	host_memcpy(bus->luns, luns, sizeof(luns[0]) * n);
	bus->nluns = n;
	bus->have_luns = 1;
	for (i = 0; i < n; i++) {
		struct kdev *dev;

		if (luns[i] != 0 && !probe_lun(bus, (lun_id_t)luns[i]))
			continue;
		host_cv_lock(cam_cv);
		dev = cam_dev_find(bus, 0, (lun_id_t)luns[i], 0);
		host_cv_unlock(cam_cv);
		if (dev == NULL || !dev->present || (dev->inq[0] & 0x1f) != T_DIRECT)
			continue;
		if (dev->da == NULL || dev->da->invalid) {
			da_attach(dev);
			attached++;
		}
	}
	kpi_log("bus %u: scan done, %d LUNs reported, %d da attached", bus->id, n, attached);
	return (attached);
}

/* ---- the disk, for the scenario driver ---- */

static struct kperiph *
da_at(hu64 lun)
{
	struct kbus *bus;
	struct kdev *dev;
	struct kperiph *kp = NULL;

	host_cv_lock(cam_cv);
	bus = cam_first_bus();
	if (bus != NULL) {
		dev = cam_dev_find(bus, 0, (lun_id_t)lun, 0);
		if (dev != NULL && dev->da != NULL && dev->da->ready && !dev->da->invalid)
			kp = dev->da;
	}
	host_cv_unlock(cam_cv);
	return (kp);
}

int
kpi_disk_wait(hu64 lun, int ms)
{
	hu64 deadline = host_now_ns() + (hu64)ms * 1000000ULL;

	while (da_at(lun) == NULL) {
		if (host_now_ns() >= deadline)
			return (ETIMEDOUT);
		host_sleep_ns(20000000ULL);
	}
	return (0);
}

int
kpi_disk_info(hu64 lun, hu64 *blocks, unsigned int *block_size, int *openings)
{
	struct kperiph *kp = da_at(lun);

	if (kp == NULL)
		return (ENXIO);
	*blocks = kp->blocks;
	*block_size = kp->block_size;
	*openings = kp->dev->openings;
	return (0);
}

int
kpi_disk_open(hu64 lun)
{
	struct kperiph *kp = da_at(lun);

	if (kp == NULL)
		return (ENXIO);
	host_cv_lock(cam_cv);
	kp->opens++;
	kp->pp.acr++;
	kp->pp.acw++;
	kp->pp.ace++;
	host_cv_unlock(cam_cv);
	return (0);
}

int
kpi_disk_close(hu64 lun)
{
	struct kbus *bus;
	struct kdev *dev;
	struct kperiph *kp;
	int free_now = 0;

	host_cv_lock(cam_cv);
	bus = cam_first_bus();
	dev = bus != NULL ? cam_dev_find(bus, 0, (lun_id_t)lun, 0) : NULL;
	kp = dev != NULL ? dev->da : NULL;
	if (kp != NULL && kp->opens > 0) {
		kp->opens--;
		kp->pp.acr--;
		kp->pp.acw--;
		kp->pp.ace--;
		free_now = kp->invalid && kp->opens == 0;
	}
	host_cv_unlock(cam_cv);
	if (free_now)
		da_free(kp);
	return (kp != NULL ? 0 : ENXIO);
}

int
periph_open_count(void)
{
	int n = 0;
	struct kbus *bus;
	lun_id_t l;

	host_cv_lock(cam_cv);
	bus = cam_first_bus();
	for (l = 0; bus != NULL && l < 8; l++) {
		struct kdev *d = cam_dev_find(bus, 0, l, 0);

		if (d != NULL && d->da != NULL)
			n += d->da->opens;
	}
	host_cv_unlock(cam_cv);
	return (n);
}

static void
io_done(struct kccb *k)
{
	struct kio *io = k->owner;
	int error = 0;

	if (periph_finish(k, &error))
		return;
	if (error == 0 && k->ccb.csio.resid != 0)
		error = EIO;
	host_cv_lock(cam_cv);
	io->error = error;
	if (error != 0)
		io_errors++;
	io->next = NULL;
	if (completed_tail != NULL)
		completed_tail->next = io;
	else
		completed_head = io;
	completed_tail = io;
	io_inflight--;
	host_cv_broadcast(cam_cv);
	host_cv_unlock(cam_cv);
	if (error != 0)
		kpi_log("I/O error %d (CAM status %#x, SCSI status %#x)", error,
		    k->ccb.ccb_h.status, k->ccb.csio.scsi_status);
}

/*
 * S/G mode: the buffer as up to four CAM_DATA_SG segments of kernel virtual addresses (as a
 * periph that builds its own list sends them), cut at odd places: 1 byte, 511, then the rest
 * in two halves, so that no PDU or block boundary falls on a segment boundary.
 */
void
kpi_io_sg(int on)
{
	io_sg = on;
}

static void
sg_split(struct ccb_scsiio *csio, bus_dma_segment_t *segs, void *buf, uint32_t len)
{
	uint32_t cut[4], off = 0;
	int i, n = 0;

	cut[0] = len < 1 ? len : 1;
	cut[1] = len - cut[0] < 511 ? len - cut[0] : 511;
	cut[2] = (len - cut[0] - cut[1]) / 2;
	cut[3] = len - cut[0] - cut[1] - cut[2];
	for (i = 0; i < 4; i++) {
		if (cut[i] == 0)
			continue;
		segs[n].ds_addr = (bus_addr_t)(uintptr_t)((char *)buf + off);
		segs[n].ds_len = cut[i];
		off += cut[i];
		n++;
	}
	csio->ccb_h.flags = (csio->ccb_h.flags & ~CAM_DATA_MASK) | CAM_DATA_SG;
	csio->data_ptr = (u_int8_t *)segs;
	csio->sglist_cnt = (u_int16_t)n;
}

int
kpi_io_submit(hu64 lun, int write, hu64 lba, unsigned int blocks, void *buf, hu64 cookie)
{
	struct kperiph *kp = da_at(lun);
	struct kio *io;
	struct kccb *k;
	unsigned char cdb[16];
	int len;

	if (kp == NULL)
		return (ENXIO);
	host_memset(cdb, 0, sizeof(cdb));
	if (lba < (1ULL << 32) && blocks <= 0xffff) {
		cdb[0] = write ? WRITE_10 : READ_10;
		cdb[2] = lba >> 24; cdb[3] = lba >> 16; cdb[4] = lba >> 8; cdb[5] = lba;
		cdb[7] = blocks >> 8; cdb[8] = blocks;
		len = 10;
	} else {
		int i;

		cdb[0] = write ? WRITE_16 : READ_16;
		for (i = 0; i < 8; i++)
			cdb[2 + i] = lba >> (56 - 8 * i);
		cdb[10] = blocks >> 24; cdb[11] = blocks >> 16; cdb[12] = blocks >> 8;
		cdb[13] = blocks;
		len = 16;
	}
	io = kmem_alloc(sizeof(*io));
	io->cookie = cookie;
	io->write = write;
	io->kp = kp;
	k = kccb_alloc(kp->dev);
	scsi_ccb_setup(k, kp->path, cdb, len, write ? CAM_DIR_OUT : CAM_DIR_IN, buf,
	    blocks * kp->block_size);
	if (io_sg)
		sg_split(&k->ccb.csio, io->segs, buf, blocks * kp->block_size);
	k->owner = io;
	k->done = io_done;
	io->k = k;
	host_cv_lock(cam_cv);
	io_inflight++;
	host_cv_unlock(cam_cv);
	cam_action_queued(k);
	return (0);
}

int
kpi_io_reap(int ms, hu64 *cookie, int *error)
{
	hu64 deadline = host_now_ns() + (hu64)ms * 1000000ULL;
	struct kio *io;
	int timeout = 0;

	host_cv_lock(cam_cv);
	while (completed_head == NULL && !timeout)
		timeout = host_cv_wait(cam_cv, deadline);
	io = completed_head;
	if (io != NULL) {
		completed_head = io->next;
		if (completed_head == NULL)
			completed_tail = NULL;
	}
	host_cv_unlock(cam_cv);
	if (io == NULL)
		return (ETIMEDOUT);
	*cookie = io->cookie;
	*error = io->error;
	kccb_free(io->k);
	kmem_free(io);
	return (0);
}

int
kpi_io_inflight(void)
{
	int n;

	host_cv_lock(cam_cv);
	n = io_inflight;
	host_cv_unlock(cam_cv);
	return (n);
}

/* camcontrol rescan: an XPT_SCAN_BUS of the first bus. */
int
kpi_rescan(void)
{
	struct kbus *bus;
	struct kccb *k;

	host_cv_lock(cam_cv);
	bus = cam_first_bus();
	host_cv_unlock(cam_cv);
	if (bus == NULL)
		return (ENXIO);
	k = kccb_alloc(NULL);
	k->ccb.ccb_h.path = cam_path_new(bus, CAM_TARGET_WILDCARD, CAM_LUN_WILDCARD, 0);
	k->ccb.ccb_h.func_code = XPT_SCAN_BUS;
	xpt_rescan(&k->ccb);
	return (0);
}

/*
 * A kernel dump to the disk after a panic (scsi_da.c dadump -> cam_periph_runccb, which with
 * the scheduler stopped polls: cam_xpt.c xpt_pollwait calls the SIM's poll routine and the
 * done queue, DELAY(100) between, for ccb_h.timeout * 10 rounds). No other thread runs.
 * The delays are counted, not slept: waited_ns is the time the loop would take.
 */
int kpi_dump_write(hu64 lun, hu64 lba, void *buf, unsigned int blocks, hu64 *waited_ns);
extern int kmodsim_sched_stopped;

int
kpi_dump_write(hu64 lun, hu64 lba, void *buf, unsigned int blocks, hu64 *waited_ns)
{
	struct kperiph *kp = da_at(lun);
	struct cam_sim *sim;
	struct kccb *k;
	unsigned char cdb[16];
	hu64 rounds, i;
	int done = 0;

	*waited_ns = 0;
	if (kp == NULL)
		return (ENXIO);
	if (!kp->dump_enabled)
		return (ENODEV);
	sim = kp->dev->bus->sim;
	kmodsim_sched_stopped = 1;
#if __FreeBSD_version < 1500000
	panicked = true;
#else
	scheduler_stopped = true;
#endif
	panicstr = "kmodsim: dump test";
	host_memset(cdb, 0, sizeof(cdb));
	cdb[0] = WRITE_10;
	cdb[2] = lba >> 24; cdb[3] = lba >> 16; cdb[4] = lba >> 8; cdb[5] = lba;
	cdb[7] = blocks >> 8; cdb[8] = blocks;
	k = kccb_alloc(kp->dev);
	scsi_ccb_setup(k, kp->path, cdb, 10, CAM_DIR_OUT, buf, blocks * kp->block_size);
	host_cv_lock(cam_cv);
	cam_dumping = 1;
	k->state = KCCB_AT_SIM;
	kp->dev->active++;
	host_cv_unlock(cam_cv);
	k->ccb.ccb_h.status = CAM_REQ_INPROG;
	mtx_lock(sim->mtx);
	(*sim->sim_action)(sim, &k->ccb);
	mtx_unlock(sim->mtx);
	rounds = (hu64)k->ccb.ccb_h.timeout * 10;
	for (i = 0; i < rounds && !done; i++) {
		mtx_lock(sim->mtx);
		(*sim->sim_poll)(sim);
		mtx_unlock(sim->mtx);
		host_cv_lock(cam_cv);
		done = k->state == KCCB_DONEQ;
		host_cv_unlock(cam_cv);
		*waited_ns += 100000ULL;	/* DELAY(100) */
	}
	if (!done)
		return (ETIMEDOUT);
	return ((k->ccb.ccb_h.status & CAM_STATUS_MASK) == CAM_REQ_CMP ? 0 : EIO);
}

void
periph_counts(char *buf, hsize_t len)
{
	int cam_frozen_total(void);
	int cam_max_active(void);

	kappend(buf, len, "%sio errors %ju, retries %ju, requeues %ju, max ccb latency %ju ms, "
	    "max at SIM %d, lost devices %d, scans %d, devq frozen %d",
	    buf[0] != '\0' ? "; " : "", (uintmax_t)io_errors, (uintmax_t)io_retries,
	    (uintmax_t)io_requeues, (uintmax_t)(max_latency_ns / 1000000), cam_max_active(),
	    cam_lost_devices, cam_scans, cam_frozen_total());
}

hu64
periph_io_errors(void)
{
	return (io_errors);
}
