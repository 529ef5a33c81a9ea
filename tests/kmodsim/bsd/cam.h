/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The harness's CAM (shared by cam.c, the transport layer a SIM sees, and periph.c, the
 * probe and da models above it). The module only ever holds opaque pointers to paths, buses
 * and devices; what it reads and writes are the real struct cam_sim and union ccb.
 */
#ifndef KMODSIM_CAM_H
#define KMODSIM_CAM_H

#include "kpi.h"
#include <geom/geom.h>

#define KBUS_MAX 16
#define KDEV_MAX 64
#define KPATH_MAX 64

struct kdev;

/* A CCB of the harness (periph requests, probe commands, rescans); ccb first. */
enum kccb_state { KCCB_FREE, KCCB_HELD, KCCB_QUEUED, KCCB_AT_SIM, KCCB_DONEQ };
struct kccb {
	union ccb ccb;
	uint64_t magic;
	enum kccb_state state;
	struct kdev *dev;
	struct kccb *next;		/* device queue / done queue */
	void (*done)(struct kccb *);	/* the periph's completion, on the done thread */
	void *owner;			/* the periph request it belongs to */
	int retries;
	int module_owned;		/* from xpt_alloc_ccb_nowait */
	hu64 sent_ns;
};

struct kbus {
	struct cam_eb eb;		/* first: a struct cam_eb * is a struct kbus * */
	struct cam_sim *sim;
	path_id_t id;
	int registered;
	int refs;			/* registration + paths (xpt_release_bus frees at 0) */
	int gone;			/* deregistered */
	int openings;			/* XPT_PATH_INQ's view: the devq size */
	int scan_queued;
	struct ccb_pathinq cpi;
	/* REPORT LUNS answer kept per target (scsi_xpt.c: target->luns) */
	uint64_t luns[64];
	int nluns, have_luns;
};

struct kdev {
	struct cam_ed ed;		/* first: device_mtx is the path lock */
	struct kbus *bus;
	target_id_t target;
	lun_id_t lun;
	int refs;
	int frozen;			/* qfrozen_cnt */
	int active;			/* CCBs at the SIM */
	int openings;			/* tagged openings (max_tagged_dev_openings) */
	int max_active;
	struct kccb *qhead, *qtail;	/* waiting for an opening */
	int present;			/* probed and there */
	unsigned char inq[36];
	struct kperiph *da;
};

struct kperiph {
	struct cam_periph periph;	/* first: what cam_periph_find returns */
	struct kdev *dev;
	struct cam_path *path;
	int invalid;
	int opens;
	hu64 blocks;
	unsigned int block_size;
	int ready;
	int dump_enabled;
	unsigned char *label;		/* what GEOM's taste read (the first 64 KiB) */
	struct g_provider pp;		/* the disk's GEOM provider, daN */
	char ppname[16];
	unsigned int label_len;
};

extern void *cam_cv;
struct kdev *path_dev(struct cam_path *path);
struct kbus *path_bus(struct cam_path *path);
struct cam_path *cam_path_new(struct kbus *bus, target_id_t target, lun_id_t lun, int module);
void cam_path_free(struct cam_path *path);
struct kccb *kccb_alloc(struct kdev *dev);
void kccb_free(struct kccb *k);
/* Queues a queued-class CCB (SCSI I/O) on its device and runs the queue. */
void cam_action_queued(struct kccb *k);
/* Sends an immediate CCB to the SIM (PATH_INQ, GET_TRAN_SETTINGS) with the SIM lock. */
void cam_action_immediate(struct kbus *bus, union ccb *ccb);
void kcam_release_devq(struct kdev *dev, int count);
void cam_run_devq(struct kdev *dev);
struct kbus *cam_bus_by_id(path_id_t id);
struct kbus *cam_first_bus(void);
struct kdev *cam_dev_find(struct kbus *bus, target_id_t target, lun_id_t lun, int create);
void cam_dev_release(struct kdev *dev);
int cam_ccbs_at_sim(struct kbus *bus);
extern int cam_dumping;
extern int cam_lost_devices;
extern int cam_scans;

/* periph.c */
void periph_async_lost(struct kdev *dev);
int periph_bus_scan(struct kbus *bus);

#endif
