/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * CAM as a SIM sees it (cam/cam_sim.c, cam/cam_xpt.c): device queues, SIM allocation and its
 * reference count, bus registration (with the bus scan it starts), paths, CCB allocation,
 * dispatch of queued CCBs to the action routine under the SIM lock, completion through a done
 * queue and thread, device queue freezes, async events, rescans and cam_periph_find. The
 * periph side (probe, da) is periph.c.
 */
#include "cam.h"

#define KCCB_MAGIC 0x6b63636200000001ULL

void *cam_cv;
int cam_dumping;
int cam_lost_devices;
int cam_scans;
int kmodsim_sim_free_wait_ms = 3000;
struct mtx cam_topo_mtx;

static struct kbus *buses[KBUS_MAX];
static struct kdev *devs[KDEV_MAX];
static int ndevs;
static struct cam_path *paths[KPATH_MAX];
static unsigned char path_module[KPATH_MAX];
static struct kccb *doneq_head, *doneq_tail;
static struct kccb *scanq[8];
static int nscanq;
static int threads_started;
static int module_ccbs;		/* xpt_alloc_ccb_nowait minus frees */
static int dispatching;
static int dispatch_again;

static struct cam_et wildcard_target;	/* targets are not modelled beyond their id */

/* ---- objects ---- */

struct kdev *
path_dev(struct cam_path *path)
{
	return (path != NULL && path->device != NULL ? (struct kdev *)path->device : NULL);
}

struct kbus *
path_bus(struct cam_path *path)
{
	return (path != NULL && path->bus != NULL ? (struct kbus *)path->bus : NULL);
}

struct kbus *
cam_bus_by_id(path_id_t id)
{
	int i;

	for (i = 0; i < KBUS_MAX; i++)
		if (buses[i] != NULL && buses[i]->id == id && !buses[i]->gone)
			return (buses[i]);
	return (NULL);
}

struct kbus *
cam_first_bus(void)
{
	int i;

	for (i = 0; i < KBUS_MAX; i++)
		if (buses[i] != NULL && !buses[i]->gone)
			return (buses[i]);
	return (NULL);
}

struct kdev *
cam_dev_find(struct kbus *bus, target_id_t target, lun_id_t lun, int create)
{
	struct kdev *d;
	int i;

	for (i = 0; i < ndevs; i++)
		if (devs[i]->bus == bus && devs[i]->target == target && devs[i]->lun == lun)
			return (devs[i]);
	if (!create)
		return (NULL);
	if (ndevs == KDEV_MAX)
		host_panic("kmodsim: too many CAM devices");
	d = kmem_alloc(sizeof(*d));
	d->bus = bus;
	d->target = target;
	d->lun = lun;
	d->ed.lun_id = lun;
	/* scsi_xpt.c scsi_alloc_device -> xpt_alloc_device: the path lock of the device. */
	mtx_init(&d->ed.device_mtx, "CAM device lock", NULL, MTX_DEF);
	d->openings = bus->sim != NULL ? bus->sim->max_tagged_dev_openings : 1;
	if (d->openings < 1)
		d->openings = 1;
	devs[ndevs++] = d;
	return (d);
}

void
cam_dev_release(struct kdev *dev)
{
	dev->refs--;
}

static void
bus_release(struct kbus *bus)
{
	/* cam_xpt.c xpt_release_bus: at zero the bus is freed and its SIM reference dropped. */
	if (--bus->refs == 0) {
		kpi_log("bus %u freed", bus->id);
		bus->gone = 2;
		if (bus->sim != NULL) {
			bus->sim->refcount--;
			host_cv_broadcast(cam_cv);
		}
	}
}

struct cam_path *
cam_path_new(struct kbus *bus, target_id_t target, lun_id_t lun, int module)
{
	struct cam_path *p;
	struct kdev *d;
	int i;

	host_cv_lock(cam_cv);
	d = cam_dev_find(bus, target, lun, 1);
	d->refs++;
	bus->refs++;
	p = kmem_alloc(sizeof(*p));
	p->bus = &bus->eb;
	p->target = &wildcard_target;
	p->device = &d->ed;
	for (i = 0; i < KPATH_MAX; i++)
		if (paths[i] == NULL) {
			paths[i] = p;
			path_module[i] = (unsigned char)module;
			break;
		}
	host_cv_unlock(cam_cv);
	if (i == KPATH_MAX)
		host_panic("kmodsim: too many CAM paths");
	return (p);
}

void
cam_path_free(struct cam_path *p)
{
	int i;

	host_cv_lock(cam_cv);
	for (i = 0; i < KPATH_MAX; i++)
		if (paths[i] == p)
			break;
	if (i == KPATH_MAX) {
		host_cv_unlock(cam_cv);
		rule(R_PATH_LEAK, "xpt_free_path of %p, which is not a live path", p);
		return;
	}
	paths[i] = NULL;
	cam_dev_release(path_dev(p));
	bus_release(path_bus(p));
	host_cv_unlock(cam_cv);
	kmem_free(p);
}

static int
module_paths(void)
{
	int i, n = 0;

	for (i = 0; i < KPATH_MAX; i++)
		if (paths[i] != NULL && path_module[i])
			n++;
	return (n);
}

/* cam_xpt.c xpt_create_path: NOWAIT allocation; the bus must be registered. */
cam_status
xpt_create_path(struct cam_path **new_path_ptr, struct cam_periph *perph __unused,
    path_id_t path_id, target_id_t target_id, lun_id_t lun_id)
{
	struct kbus *bus;

	stack_probe();
	host_cv_lock(cam_cv);
	bus = cam_bus_by_id(path_id);
	host_cv_unlock(cam_cv);
	if (bus == NULL) {
		*new_path_ptr = NULL;
		return (CAM_PATH_INVALID);
	}
	*new_path_ptr = cam_path_new(bus, target_id, lun_id, 1);
	return (CAM_REQ_CMP);
}

void
xpt_free_path(struct cam_path *path)
{
	stack_probe();
	cam_path_free(path);
}

/* cam_xpt.c xpt_path_mtx: the device's lock (cam_xpt.h xpt_path_lock). */
struct mtx *
xpt_path_mtx(struct cam_path *path)
{
	stack_probe();
	return (&path->device->device_mtx);
}

/* ---- CCBs ---- */

struct kccb *
kccb_alloc(struct kdev *dev)
{
	struct kccb *k = kmem_alloc(sizeof(*k));

	k->magic = KCCB_MAGIC;
	k->state = KCCB_HELD;
	k->dev = dev;
	return (k);
}

void
kccb_free(struct kccb *k)
{
	k->magic = 0;
	k->state = KCCB_FREE;
	kmem_free(k);
}

/* cam_xpt.c xpt_alloc_ccb_nowait: malloc(M_CAMCCB, M_ZERO | M_NOWAIT). */
union ccb *
xpt_alloc_ccb_nowait(void)
{
	struct kccb *k;

	stack_probe();
	k = kccb_alloc(NULL);
	k->module_owned = 1;
	host_cv_lock(cam_cv);
	module_ccbs++;
	host_cv_unlock(cam_cv);
	return (&k->ccb);
}

void
xpt_free_ccb(union ccb *ccb)
{
	struct kccb *k = (struct kccb *)ccb;

	stack_probe();
	if (k->magic != KCCB_MAGIC) {
		rule(R_FREE_BAD, "xpt_free_ccb of %p, not an allocated CCB", ccb);
		return;
	}
	if (k->module_owned) {
		host_cv_lock(cam_cv);
		module_ccbs--;
		host_cv_unlock(cam_cv);
	}
	kccb_free(k);
}

/* ---- dispatch to the SIM ---- */

static void
sim_call(struct cam_sim *sim, union ccb *ccb)
{
	int locked = 0, before;

	if (sim->mtx != NULL && !mtx_is_owned(sim->mtx)) {
		mtx_lock(sim->mtx);
		locked = 1;
	}
	before = context_enter("the SIM action routine");
	(*sim->sim_action)(sim, ccb);
	context_leave("the SIM action routine", before);
	if (locked)
		mtx_unlock(sim->mtx);
}

/*
 * cam_xpt.c xpt_action_default for an immediate CCB (no XPT_FC_QUEUED): the SIM answers
 * before the action routine returns and the caller reads ccb_h.status right away.
 */
void
cam_action_immediate(struct kbus *bus, union ccb *ccb)
{
	ccb->ccb_h.status = CAM_REQ_INPROG;
	sim_call(bus->sim, ccb);
	if ((ccb->ccb_h.status & CAM_STATUS_MASK) == CAM_REQ_INPROG)
		rule(R_CCB_IMMEDIATE_LATE, "immediate CCB (func %#x) still in progress when the "
		    "action routine returned", ccb->ccb_h.func_code);
}

/* cam_xpt.c xpt_run_devq: while the device has openings and is not frozen, send. */
void
cam_run_devq(struct kdev *dev)
{
	struct kccb *k;

	host_cv_lock(cam_cv);
	if (dispatching) {
		dispatch_again = 1;
		host_cv_unlock(cam_cv);
		return;
	}
	dispatching = 1;
	for (;;) {
		if (cam_dumping || dev->bus->gone || dev->frozen > 0 || dev->qhead == NULL ||
		    dev->active >= dev->openings) {
			if (!dispatch_again)
				break;
			dispatch_again = 0;
			continue;
		}
		k = dev->qhead;
		dev->qhead = k->next;
		if (dev->qhead == NULL)
			dev->qtail = NULL;
		k->next = NULL;
		k->state = KCCB_AT_SIM;
		k->sent_ns = host_now_ns();
		dev->active++;
		if (dev->active > dev->max_active)
			dev->max_active = dev->active;
		k->ccb.ccb_h.status = CAM_REQ_INPROG;
		host_cv_unlock(cam_cv);
		sim_call(dev->bus->sim, &k->ccb);
		host_cv_lock(cam_cv);
	}
	dispatching = 0;
	host_cv_unlock(cam_cv);
}

void
cam_action_queued(struct kccb *k)
{
	struct kdev *dev = k->dev;

	host_cv_lock(cam_cv);
	k->state = KCCB_QUEUED;
	k->next = NULL;
	if (dev->qtail != NULL)
		dev->qtail->next = k;
	else
		dev->qhead = k;
	dev->qtail = k;
	host_cv_unlock(cam_cv);
	cam_run_devq(dev);
}

/*
 * cam_xpt.c xpt_done: an immediate CCB is ignored; a queued one goes on the done queue, where
 * xpt_done_process gives the opening back and calls the periph.
 */
void
xpt_done(union ccb *ccb)
{
	struct kccb *k = (struct kccb *)ccb;

	stack_probe();
	if ((ccb->ccb_h.func_code & XPT_FC_QUEUED) == 0)
		return;
	host_cv_lock(cam_cv);
	if (k->magic != KCCB_MAGIC || k->state != KCCB_AT_SIM) {
		int gone = k->magic == KCCB_MAGIC && k->dev != NULL && k->dev->bus->gone;

		host_cv_unlock(cam_cv);
		if (gone)
			rule(R_CCB_AFTER_DETACH, "xpt_done of a CCB after its bus was deregistered");
		else
			rule(R_CCB_DONE_TWICE, "xpt_done of CCB %p, which is not outstanding at the "
			    "SIM (state %d)", ccb, k->magic == KCCB_MAGIC ? (int)k->state : -1);
		return;
	}
	if (k->dev->bus->gone == 2)
		rule(R_CCB_AFTER_DETACH, "xpt_done of a CCB of a freed bus");
	if ((ccb->ccb_h.status & CAM_STATUS_MASK) == CAM_REQ_INPROG)
		rule(R_CCB_INPROG, "xpt_done with status CAM_REQ_INPROG (func %#x)",
		    ccb->ccb_h.func_code);
	if ((ccb->ccb_h.status & CAM_DEV_QFRZN) != 0 && k->dev->frozen == 0)
		rule(R_DEVQ_BALANCE, "CCB completed with CAM_DEV_QFRZN but the device queue is "
		    "not frozen (no xpt_freeze_devq)");
	k->state = KCCB_DONEQ;
	k->next = NULL;
	if (doneq_tail != NULL)
		doneq_tail->next = k;
	else
		doneq_head = k;
	doneq_tail = k;
	host_cv_broadcast(cam_cv);
	host_cv_unlock(cam_cv);
}

static void
done_thread(void *arg __unused)
{
	host_cv_lock(cam_cv);
	for (;;) {
		struct kccb *k;
		struct kdev *dev;

		while (doneq_head == NULL || cam_dumping)
			host_cv_wait(cam_cv, 0);
		k = doneq_head;
		doneq_head = k->next;
		if (doneq_head == NULL)
			doneq_tail = NULL;
		k->next = NULL;
		k->state = KCCB_HELD;
		dev = k->dev;
		dev->active--;
		host_cv_unlock(cam_cv);
		if (k->done != NULL)
			k->done(k);
		cam_run_devq(dev);
		host_cv_lock(cam_cv);
	}
}

/* cam_xpt.c xpt_freeze_devq. */
uint32_t
xpt_freeze_devq(struct cam_path *path, u_int count)
{
	struct kdev *dev = path_dev(path);
	uint32_t n;

	stack_probe();
	host_cv_lock(cam_cv);
	if (dev == NULL || dev->bus->gone == 2) {
		host_cv_unlock(cam_cv);
		rule(R_CCB_AFTER_DETACH, "xpt_freeze_devq on a path of a freed bus");
		return (0);
	}
	dev->frozen += count;
	n = dev->frozen;
	host_cv_unlock(cam_cv);
	return (n);
}

/* cam_xpt.c xpt_release_devq_device: "requested %u > present %u". */
void
kcam_release_devq(struct kdev *dev, int count)
{
	host_cv_lock(cam_cv);
	if (dev->frozen < count) {
		host_cv_unlock(cam_cv);
		rule(R_DEVQ_BALANCE, "xpt_release_devq(): requested %d > present %d", count,
		    dev->frozen);
		host_cv_lock(cam_cv);
		count = dev->frozen;
	}
	dev->frozen -= count;
	host_cv_unlock(cam_cv);
	cam_run_devq(dev);
}

void
xpt_release_devq(struct cam_path *path, u_int count, int run_queue __unused)
{
	kcam_release_devq(path_dev(path), (int)count);
}

int
cam_ccbs_at_sim(struct kbus *bus)
{
	int i, n = 0;

	for (i = 0; i < ndevs; i++)
		if (devs[i]->bus == bus)
			n += devs[i]->active;
	return (n);
}

/* ---- SIMs and buses ---- */

/* cam_queue.c cam_simq_alloc: M_NOWAIT. */
struct cam_devq *
cam_simq_alloc(uint32_t max_sim_transactions)
{
	struct cam_devq *devq;

	stack_probe();
	devq = kmem_alloc(sizeof(*devq));
	devq->send_openings = (int)max_sim_transactions;
	return (devq);
}

void
cam_simq_free(struct cam_devq *devq)
{
	stack_probe();
	kmem_free(devq);
}

/* cam_sim.c cam_sim_alloc: refcount 1. */
struct cam_sim *
cam_sim_alloc(sim_action_func sim_action, sim_poll_func sim_poll, const char *sim_name,
    void *softc, uint32_t unit, struct mtx *mtx, int max_dev_transactions,
    int max_tagged_dev_transactions, struct cam_devq *queue)
{
	struct cam_sim *sim;

	stack_probe();
	sim = kmem_alloc(sizeof(*sim));
	sim->sim_action = sim_action;
	sim->sim_poll = sim_poll;
	sim->sim_name = sim_name;
	sim->softc = softc;
	sim->path_id = ~(uint32_t)0;	/* CAM_PATH_ANY */
	sim->unit_number = unit;
	sim->bus_id = 0;
	sim->max_tagged_dev_openings = max_tagged_dev_transactions;
	sim->max_dev_openings = max_dev_transactions;
	sim->refcount = 1;
	sim->devq = queue;
	sim->mtx = mtx;
	kpi_log("cam_sim_alloc(%s%u, openings %d, poll %s)", sim_name, unit,
	    max_tagged_dev_transactions, sim_poll != NULL ? "set" : "NULL");
	return (sim);
}

/* cam_sim.c cam_sim_free: lock asserted; sleeps until every reference is gone. */
void
cam_sim_free(struct cam_sim *sim, int free_devq)
{
	hu64 deadline;
	int i, left, at_sim = 0, opened = 0, registered = 0;

	stack_probe();
	if (sim->mtx != NULL && !mtx_is_owned(sim->mtx))
		rule(R_SIM_LOCK, "cam_sim_free without the SIM lock \"%s\"",
		    sim->mtx->lock_object.lo_name);
	host_cv_lock(cam_cv);
	sim->refcount--;
	left = sim->refcount;
	host_cv_unlock(cam_cv);
	if (left > 0) {
		/* msleep(sim, sim->mtx, ...): the SIM lock is the interlock. */
		if (sim->mtx != NULL && mtx_is_owned(sim->mtx))
			mtx_unlock(sim->mtx);
		may_sleep("cam_sim_free (msleep \"simfree\")");
		deadline = host_now_ns() + (hu64)kmodsim_sim_free_wait_ms * 1000000ULL;
		host_cv_lock(cam_cv);
		while (sim->refcount > 0 && host_now_ns() < deadline)
			host_cv_wait(cam_cv, deadline);
		left = sim->refcount;
		for (i = 0; i < KBUS_MAX; i++)
			if (buses[i] != NULL && buses[i]->sim == sim) {
				struct kbus *b = buses[i];
				int j;

				registered |= b->gone == 0;
				at_sim += cam_ccbs_at_sim(b);
				for (j = 0; j < ndevs; j++)
					if (devs[j]->bus == b && devs[j]->da != NULL)
						opened += devs[j]->da->opens;
			}
		host_cv_unlock(cam_cv);
		if (sim->mtx != NULL)
			mtx_lock(sim->mtx);
		if (left > 0)
			rule(R_SIM_FREE_BUSY, "cam_sim_free would sleep forever: %d references left "
			    "(bus registered: %s, da opens: %d)", left, registered ? "yes" : "no",
			    opened);
	}
	if (at_sim > 0)
		rule(R_CCB_AFTER_DETACH, "SIM freed with %d CCBs never returned", at_sim);
	if (free_devq)
		cam_simq_free(sim->devq);
	kpi_log("cam_sim_free(%s%u)", sim->sim_name, sim->unit_number);
	/* The SIM is kept so that a late action or completion is reported, not a crash. */
}

/*
 * cam/cam_xpt.c xpt_bus_register: the bus holds a SIM reference until xpt_bus_deregister,
 * XPT_PATH_INQ goes to the SIM (under its lock), and unless PIM_NOSCAN a scan of the bus is
 * queued (xpt_rescan).
 */
int
xpt_bus_register(struct cam_sim *sim, device_t parent __unused, uint32_t bus_no)
{
	struct kbus *bus;
	union ccb *ccb;
	int i;

	stack_probe();
	bus = kmem_alloc(sizeof(*bus));
	host_cv_lock(cam_cv);
	for (i = 0; i < KBUS_MAX; i++)
		if (buses[i] == NULL)
			break;
	if (i == KBUS_MAX) {
		host_cv_unlock(cam_cv);
		return (ENOMEM);
	}
	buses[i] = bus;
	bus->id = (path_id_t)(2 + i);
	bus->sim = sim;
	bus->registered = 1;
	bus->refs = 1;		/* "Held until a bus_deregister event" */
	sim->refcount++;	/* cam_sim_hold */
	sim->path_id = bus->id;
	sim->bus_id = bus_no;
	host_cv_unlock(cam_cv);
	/* xpt_bus_register: XPT_PATH_INQ through xpt_action (the SIM lock is held). */
	ccb = kmem_alloc(sizeof(*ccb));
	ccb->ccb_h.func_code = XPT_PATH_INQ;
	ccb->ccb_h.path = cam_path_new(bus, CAM_TARGET_WILDCARD, CAM_LUN_WILDCARD, 0);
	cam_action_immediate(bus, ccb);
	bus->cpi = ccb->cpi;
	cam_path_free(ccb->ccb_h.path);
	kmem_free(ccb);
	kpi_log("xpt_bus_register(%s%u): path %u, PATH_INQ max_lun %u maxio %u hba_misc %#x",
	    sim->sim_name, sim->unit_number, bus->id, bus->cpi.max_lun, bus->cpi.maxio,
	    bus->cpi.hba_misc);
	/* "Initiate bus rescan" unless PIM_NOSCAN. */
	if ((bus->cpi.hba_misc & PIM_NOSCAN) == 0) {
		struct kccb *k = kccb_alloc(NULL);

		k->ccb.ccb_h.path = cam_path_new(bus, CAM_TARGET_WILDCARD, CAM_LUN_WILDCARD, 0);
		k->ccb.ccb_h.func_code = XPT_SCAN_BUS;
		xpt_rescan(&k->ccb);
	}
	return (CAM_SUCCESS);
}

/* cam_xpt.c xpt_bus_deregister: AC_LOST_DEVICE for the bus, registration reference dropped. */
int
xpt_bus_deregister(path_id_t pathid)
{
	struct kbus *bus;
	int i;

	stack_probe();
	host_cv_lock(cam_cv);
	bus = cam_bus_by_id(pathid);
	host_cv_unlock(cam_cv);
	if (bus == NULL)
		return (CAM_PATH_INVALID);
	for (i = 0; i < ndevs; i++)
		if (devs[i]->bus == bus && devs[i]->da != NULL)
			periph_async_lost(devs[i]);
	host_cv_lock(cam_cv);
	bus->gone = 1;
	bus->registered = 0;
	bus_release(bus);
	host_cv_unlock(cam_cv);
	kpi_log("xpt_bus_deregister(%u)", pathid);
	return (CAM_REQ_CMP);
}

/* ---- async events, rescans, periph lookup ---- */

static int
path_matches(struct cam_path *path, struct kdev *d)
{
	struct kdev *p = path_dev(path);

	if (path_bus(path) != d->bus)
		return (0);
	if (p->target != CAM_TARGET_WILDCARD && p->target != d->target)
		return (0);
	if (p->lun != CAM_LUN_WILDCARD && p->lun != d->lun)
		return (0);
	return (1);
}

void
xpt_async(uint32_t async_code, struct cam_path *path, void *async_arg __unused)
{
	int i;

	stack_probe();
	if (path_bus(path) == NULL || path_bus(path)->gone == 2) {
		rule(R_CCB_AFTER_DETACH, "xpt_async on a path of a freed bus");
		return;
	}
	if (async_code != AC_LOST_DEVICE)
		return;
	for (i = 0; i < ndevs; i++)
		if (path_matches(path, devs[i]) && devs[i]->da != NULL)
			periph_async_lost(devs[i]);
}

/*
 * cam_xpt.c xpt_rescan: a scan of a path already queued is not queued twice ("rescan already
 * queued"); the scanner thread (xpt_scanner_thread) runs them in order and frees the CCB and
 * path when done (xpt_rescan_done).
 */
void
xpt_rescan(union ccb *ccb)
{
	struct kccb *k = (struct kccb *)ccb;
	struct kbus *bus = path_bus(ccb->ccb_h.path);
	int i;

	stack_probe();
	host_cv_lock(cam_cv);
	for (i = 0; i < nscanq; i++) {
		struct cam_path *q = scanq[i]->ccb.ccb_h.path;

		if (path_bus(q) == bus && path_dev(q) == path_dev(ccb->ccb_h.path)) {
			host_cv_unlock(cam_cv);
			/* xpt_print -> xpt_path_sbuf: "(noperiph:sim0:bus:target:lun): " */
			printf("(noperiph:%s%u:%u:%d:%jx): rescan already queued\n",
			    bus->sim->sim_name, bus->sim->unit_number, bus->sim->bus_id,
			    (int)path_dev(q)->target, (uintmax_t)path_dev(q)->lun);
			cam_path_free(ccb->ccb_h.path);
			xpt_free_ccb(ccb);
			return;
		}
	}
	if (nscanq == (int)nitems(scanq)) {
		host_cv_unlock(cam_cv);
		cam_path_free(ccb->ccb_h.path);
		xpt_free_ccb(ccb);
		return;
	}
	scanq[nscanq++] = k;
	host_cv_broadcast(cam_cv);
	host_cv_unlock(cam_cv);
}

static void
scanner_thread(void *arg __unused)
{
	host_cv_lock(cam_cv);
	for (;;) {
		struct kccb *k;
		int i;

		while (nscanq == 0)
			host_cv_wait(cam_cv, 0);
		/*
		 * The scanner is an ordinary kernel thread: a request queued right behind another
		 * finds it still queued. Waiting a little before taking the queue makes that the
		 * case here every time, as it is on a busy boot.
		 */
		host_cv_unlock(cam_cv);
		host_sleep_ns(30000000ULL);
		host_cv_lock(cam_cv);
		k = scanq[0];
		for (i = 1; i < nscanq; i++)
			scanq[i - 1] = scanq[i];
		nscanq--;
		host_cv_unlock(cam_cv);
		cam_scans++;
		periph_bus_scan(path_bus(k->ccb.ccb_h.path));
		cam_path_free(k->ccb.ccb_h.path);
		if (k->module_owned)
			xpt_free_ccb(&k->ccb);
		else
			kccb_free(k);
		host_cv_lock(cam_cv);
	}
}

/* cam_periph.c cam_periph_find: on a match, cam_periph_assert(periph, MA_OWNED). */
struct cam_periph *
cam_periph_find(struct cam_path *path, char *name)
{
	struct cam_periph *found = NULL;
	int i;

	stack_probe();
	if (!kstreq(name, "da"))
		return (NULL);
	mtx_lock(&cam_topo_mtx);
	for (i = 0; i < ndevs; i++) {
		struct kdev *d = devs[i];

		if (d->da == NULL || d->da->invalid || !path_matches(path, d))
			continue;
		if (!mtx_is_owned(&d->ed.device_mtx))
			rule(R_PERIPH_FIND_LOCK, "cam_periph_find found %s%d without its path lock "
			    "(\"CAM device lock\") held", "da", d->da->periph.unit_number);
		found = &d->da->periph;
		break;
	}
	mtx_unlock(&cam_topo_mtx);
	return (found);
}

/* cam/cam.c cam_calc_geometry. */
void
cam_calc_geometry(struct ccb_calc_geometry *ccg, int extended)
{
	uint32_t size_mb, secs_per_cylinder;

	stack_probe();
	if (ccg->block_size == 0) {
		ccg->ccb_h.status = CAM_REQ_CMP_ERR;
		return;
	}
	size_mb = (1024L * 1024L) / ccg->block_size;
	if (size_mb == 0) {
		ccg->ccb_h.status = CAM_REQ_CMP_ERR;
		return;
	}
	size_mb = ccg->volume_size / size_mb;
	if (size_mb > 1024 && extended) {
		ccg->heads = 255;
		ccg->secs_per_track = 63;
	} else {
		ccg->heads = 64;
		ccg->secs_per_track = 32;
	}
	secs_per_cylinder = ccg->heads * ccg->secs_per_track;
	ccg->cylinders = ccg->volume_size / secs_per_cylinder;
	ccg->ccb_h.status = CAM_REQ_CMP;
}

void
cam_init(void)
{
	if (cam_cv != NULL)
		return;
	cam_cv = host_cv_new();
	mtx_init(&cam_topo_mtx, "XPT topology lock", NULL, MTX_DEF);
}

void
cam_start_threads(void)
{
	if (threads_started)
		return;
	threads_started = 1;
	host_thread_start(done_thread, NULL, "cam doneq0");
	host_thread_start(scanner_thread, NULL, "xpt_thrd");
}

void
cam_final_checks(int unloaded)
{
	int i;

	if (!unloaded)
		return;
	host_cv_lock(cam_cv);
	if (module_paths() != 0) {
		host_cv_unlock(cam_cv);
		rule(R_PATH_LEAK, "%d paths created by the module left at unload", module_paths());
		host_cv_lock(cam_cv);
	}
	if (module_ccbs != 0) {
		host_cv_unlock(cam_cv);
		rule(R_PATH_LEAK, "%d CCBs allocated by the module left at unload", module_ccbs);
		host_cv_lock(cam_cv);
	}
	for (i = 0; i < KBUS_MAX; i++)
		if (buses[i] != NULL && buses[i]->gone == 0) {
			host_cv_unlock(cam_cv);
			rule(R_UNLOAD_LEFTOVER, "CAM bus %u (SIM %s) still registered after unload",
			    buses[i]->id, buses[i]->sim->sim_name);
			host_cv_lock(cam_cv);
		}
	for (i = 0; i < ndevs; i++)
		if (devs[i]->frozen != 0 && devs[i]->bus->gone == 0) {
			host_cv_unlock(cam_cv);
			rule(R_DEVQ_BALANCE, "device queue of lun %jd left frozen (%d)",
			    (intmax_t)devs[i]->lun, devs[i]->frozen);
			host_cv_lock(cam_cv);
		}
	host_cv_unlock(cam_cv);
}

/* The frozen counts of every device (an idle check the scenario driver can make). */
int
cam_frozen_total(void)
{
	int i, n = 0;

	host_cv_lock(cam_cv);
	for (i = 0; i < ndevs; i++)
		if (devs[i]->bus->gone == 0)
			n += devs[i]->frozen;
	host_cv_unlock(cam_cv);
	return (n);
}

int kpi_cam_max_active(void);

int
kpi_cam_max_active(void)
{
	int cam_max_active(void);

	return (cam_max_active());
}

int
cam_max_active(void)
{
	int i, n = 0;

	host_cv_lock(cam_cv);
	for (i = 0; i < ndevs; i++)
		if (devs[i]->max_active > n)
			n = devs[i]->max_active;
	host_cv_unlock(cam_cv);
	return (n);
}
