/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * One deliberately wrong caller per rule: each must make its rule fire, or the rule is not
 * working and the harness cannot be trusted to find that mistake in the module.
 * `run.sh --self-test` runs them all in one process (no module loaded).
 */
#include "cam.h"

void net_snapshot(void);
void malloc_check_quarantine(void);
void kpi_boot_prepare(void);
extern int kmodsim_sched_stopped;
extern int kmodsim_sim_free_wait_ms;

static struct malloc_type st_type = { .ks_version = M_VERSION, .ks_shortdesc = "st-a" };
static struct malloc_type st_type2 = { .ks_version = M_VERSION, .ks_shortdesc = "st-b" };
static struct malloc_type st_leaky = { .ks_version = M_VERSION, .ks_shortdesc = "st-leaky" };

static struct mtx *
new_mtx(const char *name, int opts)
{
	struct mtx *m = kmem_alloc(sizeof(*m));

	mtx_init(m, name, NULL, opts);
	return (m);
}

static void st_mtx_class(void) { struct mtx *m = new_mtx("st-class", MTX_DEF); mtx_lock_spin(m); }
static void st_mtx_destroyed(void) { struct mtx *m = new_mtx("st-d", MTX_DEF); mtx_destroy(m); mtx_lock(m); }
static void st_mtx_reinit(void) { struct mtx *m = new_mtx("st-r", MTX_DEF); mtx_init(m, "st-r", NULL, MTX_DEF); }
static void st_mtx_not_owner(void) { struct mtx *m = new_mtx("st-n", MTX_DEF); mtx_unlock(m); }

static void
st_mtx_recurse(void)
{
	struct mtx *m = new_mtx("st-rec", MTX_DEF);

	mtx_lock(m);
	mtx_lock(m);
	mtx_unlock(m);
	mtx_unlock(m);
}

static struct mtx *busy_m;
static volatile int busy_state;

static void
busy_holder(void *arg __unused)
{
	mtx_lock(busy_m);
	__atomic_store_n(&busy_state, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&busy_state, __ATOMIC_SEQ_CST) != 2)
		host_sleep_ns(1000000);
	/* The mutex was destroyed under us: it is simply left. */
}

static void
st_mtx_destroy_busy(void)
{
	busy_m = new_mtx("st-busy", MTX_DEF);
	busy_state = 0;
	host_thread_start(busy_holder, NULL, "st-holder");
	while (__atomic_load_n(&busy_state, __ATOMIC_SEQ_CST) != 1)
		host_sleep_ns(1000000);
	mtx_destroy(busy_m);
	__atomic_store_n(&busy_state, 2, __ATOMIC_SEQ_CST);
}

static void
st_sleep_spin_held(void)
{
	struct mtx *s = new_mtx("st-spin", MTX_SPIN), *m = new_mtx("st-sleep", MTX_DEF);

	mtx_lock_spin(s);
	mtx_lock(m);
	mtx_unlock(m);
	mtx_unlock_spin(s);
}

static void
st_lock_order(void)
{
	struct mtx *a = new_mtx("st-order-a", MTX_DEF), *b = new_mtx("st-order-b", MTX_DEF);

	mtx_lock(a);
	mtx_lock(b);
	mtx_unlock(b);
	mtx_unlock(a);
	mtx_lock(b);
	mtx_lock(a);
	mtx_unlock(a);
	mtx_unlock(b);
}

static void
st_sleep_locked(void)
{
	struct mtx *m = new_mtx("st-sl", MTX_DEF);

	mtx_lock(m);
	pause_sbt("st", SBT_1MS, 0, 0);
	mtx_unlock(m);
}

static void
st_sleep_epoch(void)
{
	struct epoch_tracker et;

	NET_EPOCH_ENTER(et);
	pause_sbt("st", SBT_1MS, 0, 0);
	NET_EPOCH_EXIT(et);
}

static void
st_epoch_balance(void)
{
	struct epoch_tracker et;

	host_memset(&et, 0, sizeof(et));
	NET_EPOCH_EXIT(et);
}

static int
st_if_cb(if_t ifp __unused, void *arg __unused)
{
	return (0);
}

static void
st_need_epoch(void)
{
	CURVNET_SET(vnet0);
	if_foreach(st_if_cb, NULL);
	CURVNET_RESTORE();
}

static void
st_need_vnet(void)
{
	struct epoch_tracker et;

	NET_EPOCH_ENTER(et);
	if_foreach(st_if_cb, NULL);
	NET_EPOCH_EXIT(et);
}

static struct mtx *ctx_m;

static void
st_ctx_handler(void *arg __unused, int howto __unused)
{
	mtx_lock(ctx_m);
}

static void
st_context_locks(void)
{
	eventhandler_tag tag;

	ctx_m = new_mtx("st-ctx", MTX_DEF);
	tag = eventhandler_register(NULL, "st_list", st_ctx_handler, NULL, 0);
	eventhandler_invoke("st_list", 0);
	mtx_unlock(ctx_m);
	eventhandler_deregister(eventhandler_find_list("st_list"), tag);
}

static void st_malloc_flags(void) { free(malloc(16, &st_type, 0), &st_type); }

static void
st_free_bad(void)
{
	void *p = malloc(16, &st_type, M_NOWAIT);

	free(p, &st_type);
	free(p, &st_type);
}

static void st_free_type(void) { free(malloc(16, &st_type, M_NOWAIT), &st_type2); }

static void
st_modified_after_free(void)
{
	char *p = malloc(32, &st_type, M_NOWAIT);

	free(p, &st_type);
	p[3] = 1;
	malloc_check_quarantine();
}

static void
st_malloc_leak(void)
{
	malloc_init(&st_leaky);
	(void)malloc(8, &st_leaky, M_NOWAIT);
	malloc_uninit(&st_leaky);
}

static void
st_nop_task(void *ctx __unused, int pending __unused)
{
}

static void
st_free_pending(void)
{
	struct taskqueue *tq = taskqueue_create("st-tq", M_WAITOK, taskqueue_thread_enqueue, &tq);
	struct task *t = malloc(sizeof(*t), &st_type, M_NOWAIT | M_ZERO);

	/* No thread: the task stays queued while its memory is freed. */
	TASK_INIT(t, 0, st_nop_task, NULL);
	taskqueue_enqueue(tq, t);
	free(t, &st_type);
}

static struct callout *
new_callout(struct mtx *m)
{
	struct callout *c = kmem_alloc(sizeof(*c));

	callout_init_mtx(c, m, 0);
	return (c);
}

static void
st_callout_lock(void)
{
	struct mtx *m = new_mtx("st-co", MTX_DEF);

	callout_stop(new_callout(m));
}

static void
st_callout_drain_locked(void)
{
	struct mtx *m = new_mtx("st-cod", MTX_DEF);
	struct callout *c = new_callout(m);

	mtx_lock(m);
	callout_drain(c);
	mtx_unlock(m);
}

static void
st_tq_misuse(void)
{
	struct taskqueue *tq = taskqueue_create("st-tq2", M_WAITOK, taskqueue_thread_enqueue,
	    &tq);
	struct task *t = kmem_alloc(sizeof(*t));

	TASK_INIT(t, 0, st_nop_task, NULL);
	taskqueue_free(tq);
	taskqueue_enqueue(tq, t);
}

static int
st_upcall(struct socket *so __unused, void *arg __unused, int wait __unused)
{
	return (SU_OK);
}

static int
st_bad_upcall(struct socket *so __unused, void *arg __unused, int wait __unused)
{
	return (42);
}

static struct socket *
new_socket(int type)
{
	struct socket *so = NULL;

	socreate(AF_INET, &so, type, type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP,
	    curthread->td_ucred, curthread);
	return (so);
}

static void
st_upcall_lock(void)
{
	struct socket *so = new_socket(SOCK_DGRAM);

	soupcall_set(so, SO_RCV, st_upcall, NULL);
	SOCKBUF_LOCK(&so->so_rcv);
	soupcall_clear(so, SO_RCV);
	SOCKBUF_UNLOCK(&so->so_rcv);
	soclose(so);
}

static void
st_upcall_clear_none(void)
{
	struct socket *so = new_socket(SOCK_DGRAM);

	SOCKBUF_LOCK(&so->so_rcv);
	soupcall_clear(so, SO_RCV);
	SOCKBUF_UNLOCK(&so->so_rcv);
	soclose(so);
}

/* A stream socket with upcall `up` and receive mark `lowat` sees data arrive, then closes. */
static void
rcv_event(so_upcall_t up, u_int lowat)
{
	struct socket *so = new_socket(SOCK_STREAM);

	SOCKBUF_LOCK(&so->so_rcv);
	soupcall_set(so, SO_RCV, up, NULL);
	so->so_rcv.sb_lowat = lowat;
	SOCKBUF_UNLOCK(&so->so_rcv);
	kpi_sock_event(so, HEV_READ);
	SOCKBUF_LOCK(&so->so_rcv);
	soupcall_clear(so, SO_RCV);
	SOCKBUF_UNLOCK(&so->so_rcv);
	soclose(so);
}

static void
st_upcall_return(void)
{
	rcv_event(st_bad_upcall, 1);
}

static void
st_rcv_lowat(void)
{
	/* socreate's sb_hiwat for TCP: 64 KiB (tcp_usr_attach). */
	rcv_event(st_upcall, 64 * 1024 + 1);
}

static void
st_socket_state(void)
{
	struct socket *so = new_socket(SOCK_DGRAM);

	soclose(so);
	soclose(so);
}

/* A SIM that answers what xpt_bus_register asks and nothing else. */
static int st_sim_late;

static void
st_sim_action(struct cam_sim *sim __unused, union ccb *ccb)
{
	if (ccb->ccb_h.func_code == XPT_PATH_INQ && !st_sim_late) {
		ccb->cpi.hba_misc = PIM_NOSCAN;
		ccb->cpi.max_lun = 0;
		ccb->ccb_h.status = CAM_REQ_CMP;
	}
}

static struct cam_sim *
new_sim(struct mtx *m)
{
	return (cam_sim_alloc(st_sim_action, NULL, "stsim", NULL, 0, m, 1, 4,
	    cam_simq_alloc(4)));
}

static void
st_sim_lock(void)
{
	cam_sim_free(new_sim(new_mtx("st-sim", MTX_DEF)), 1);
}

static void
st_sim_free_busy(void)
{
	struct mtx *m = new_mtx("st-sim2", MTX_DEF);
	struct cam_sim *sim = new_sim(m);

	mtx_lock(m);
	xpt_bus_register(sim, NULL, 0);
	kmodsim_sim_free_wait_ms = 100;
	cam_sim_free(sim, 1);
	mtx_unlock(m);
}

static struct kbus *
registered_bus(const char *name)
{
	struct mtx *m = new_mtx(name, MTX_DEF);
	struct cam_sim *sim = new_sim(m);

	mtx_lock(m);
	xpt_bus_register(sim, NULL, 0);
	mtx_unlock(m);
	return (cam_bus_by_id(sim->path_id));
}

static struct kccb *
bus_ccb(struct kbus *bus, lun_id_t lun)
{
	struct kccb *k;

	host_cv_lock(cam_cv);
	k = kccb_alloc(cam_dev_find(bus, 0, lun, 1));
	host_cv_unlock(cam_cv);
	k->ccb.ccb_h.func_code = XPT_SCSI_IO;
	return (k);
}

static void
st_ccb_done_twice(void)
{
	struct kccb *k = bus_ccb(cam_first_bus() != NULL ? cam_first_bus() :
	    registered_bus("st-sim3"), 0);

	k->ccb.ccb_h.status = CAM_REQ_CMP;
	xpt_done(&k->ccb);	/* never sent to the SIM */
}

static void
st_ccb_inprog(void)
{
	struct kccb *k = bus_ccb(registered_bus("st-sim4"), 0);

	k->state = KCCB_AT_SIM;
	k->dev->active++;
	k->ccb.ccb_h.status = CAM_REQ_INPROG;
	xpt_done(&k->ccb);
}

static void
st_ccb_immediate_late(void)
{
	struct kbus *bus = registered_bus("st-sim5");
	union ccb *ccb = kmem_alloc(sizeof(*ccb));

	st_sim_late = 1;
	ccb->ccb_h.func_code = XPT_PATH_INQ;
	cam_action_immediate(bus, ccb);
	st_sim_late = 0;
}

static void
st_ccb_after_detach(void)
{
	struct kbus *bus = registered_bus("st-sim6");
	struct cam_path *p = cam_path_new(bus, 0, 0, 0);
	struct kccb *k = bus_ccb(bus, 0);

	k->state = KCCB_AT_SIM;
	xpt_bus_deregister(bus->id);
	k->state = KCCB_HELD;
	k->ccb.ccb_h.status = CAM_REQ_CMP;
	xpt_done(&k->ccb);
	cam_path_free(p);
}

static void
st_devq_balance(void)
{
	struct kccb *k = bus_ccb(registered_bus("st-sim7"), 0);

	kcam_release_devq(k->dev, 1);
}

static void
st_periph_find_lock(void)
{
	struct kbus *bus = registered_bus("st-sim8");
	struct kdev *dev;
	struct kperiph *kp = kmem_alloc(sizeof(*kp));
	struct cam_path *p;

	host_cv_lock(cam_cv);
	dev = cam_dev_find(bus, 0, 1, 1);
	kp->dev = dev;
	kp->ready = 1;
	kp->periph.periph_name = "da";
	dev->da = kp;
	host_cv_unlock(cam_cv);
	p = cam_path_new(bus, 0, 1, 0);
	(void)cam_periph_find(p, "da");
	cam_path_free(p);
}

static void st_path_leak(void) { xpt_free_path((struct cam_path *)kmem_alloc(64)); }
static void st_acpi_balance(void) { AcpiPutTable((ACPI_TABLE_HEADER *)kmem_alloc(64)); }

static void
st_root_hold(void)
{
	struct root_hold_token *h = root_mount_hold("st");

	root_mount_rel(h);
	root_mount_rel(h);
}

static void
st_eventhandler(void)
{
	eventhandler_tag tag = eventhandler_register(NULL, "st_list2", st_ctx_handler, NULL, 0);

	eventhandler_deregister(eventhandler_find_list("st_list2"), tag);
	eventhandler_deregister(eventhandler_find_list("st_list2"), tag);
}

static void
st_ifnet_ref(void)
{
	static const unsigned char mac[6] = { 2, 0, 0, 0, 0, 1 };
	if_t ifp;

	kpi_nic("st0", mac, 1, 0);
	CURVNET_SET(vnet0);
	ifp = ifunit_ref("st0");
	CURVNET_RESTORE();
	if_rele(ifp);
	if_rele(ifp);
}

static void
st_unload_leftover(void)
{
	struct socket *so = new_socket(SOCK_DGRAM);

	sock_final_checks(1);
	soclose(so);
}

static void
st_net_leftover(void)
{
	static const unsigned char mac[6] = { 2, 0, 0, 0, 0, 2 };
	struct socket *so;
	struct in_aliasreq ifra;

	kpi_nic("st1", mac, 1, 0);
	net_snapshot();
	so = new_socket(SOCK_DGRAM);
	host_memset(&ifra, 0, sizeof(ifra));
	strlcpy(ifra.ifra_name, "st1", sizeof(ifra.ifra_name));
	ifra.ifra_addr.sin_family = AF_INET;
	ifra.ifra_addr.sin_addr.s_addr = htonl(0x0a000001);
	ifra.ifra_mask.sin_addr.s_addr = htonl(0xffffff00);
	ifioctl(so, SIOCAIFADDR, (caddr_t)&ifra, curthread);
	soclose(so);
	net_final_checks(1);
}

static void
st_shutdown_context(void)
{
	kmodsim_sched_stopped = 1;
	pause_sbt("st", SBT_1MS, 0, 0);
	kmodsim_sched_stopped = 0;
}

static void
st_geom_topology(void)
{
	(void)g_provider_by_name("da0");
}

static void
st_kenv_copy(void)
{
	int kpi_kenv_copies_out(void);
	char *v;

	kpi_tunable("st.kenv", "1");
	v = kern_getenv("st.kenv");
	module_final_checks(0);
	freeenv(v);
	kern_unsetenv("st.kenv");
}

static void
st_kenv_free(void)
{
	static char not_a_copy[] = "x";

	freeenv(not_a_copy);
}

static const struct {
	enum rule rule;
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ R_MTX_CLASS, "mtx_lock_spin of a sleep mutex", st_mtx_class },
	{ R_MTX_DESTROYED, "mtx_lock after mtx_destroy", st_mtx_destroyed },
	{ R_MTX_REINIT, "mtx_init twice", st_mtx_reinit },
	{ R_MTX_NOT_OWNER, "mtx_unlock of an unowned mutex", st_mtx_not_owner },
	{ R_MTX_RECURSE, "mtx_lock twice, not MTX_RECURSE", st_mtx_recurse },
	{ R_MTX_DESTROY_BUSY, "mtx_destroy while another thread holds it", st_mtx_destroy_busy },
	{ R_SLEEP_SPIN_HELD, "mtx_lock with a spin mutex held", st_sleep_spin_held },
	{ R_LOCK_ORDER, "a then b, later b then a", st_lock_order },
	{ R_SLEEP_LOCKED, "pause with a mutex held", st_sleep_locked },
	{ R_SLEEP_EPOCH, "pause inside NET_EPOCH_ENTER", st_sleep_epoch },
	{ R_EPOCH_BALANCE, "NET_EPOCH_EXIT without enter", st_epoch_balance },
	{ R_NEED_EPOCH, "if_foreach outside the net epoch", st_need_epoch },
	{ R_NEED_VNET, "if_foreach without CURVNET_SET", st_need_vnet },
	{ R_CONTEXT_LOCKS, "a handler returns holding a mutex", st_context_locks },
	{ R_MALLOC_FLAGS, "malloc without M_WAITOK/M_NOWAIT", st_malloc_flags },
	{ R_FREE_BAD, "free twice", st_free_bad },
	{ R_FREE_TYPE, "free with another malloc type", st_free_type },
	{ R_MODIFIED_AFTER_FREE, "write after free", st_modified_after_free },
	{ R_MALLOC_LEAK, "malloc_uninit with a block left", st_malloc_leak },
	{ R_FREE_PENDING, "free of a queued task", st_free_pending },
	{ R_CALLOUT_LOCK, "callout_stop without the callout's lock", st_callout_lock },
	{ R_CALLOUT_DRAIN_LOCKED, "callout_drain with its lock held", st_callout_drain_locked },
	{ R_TQ_MISUSE, "taskqueue_enqueue after taskqueue_free", st_tq_misuse },
	{ R_UPCALL_LOCK, "soupcall_set without the sockbuf lock", st_upcall_lock },
	{ R_UPCALL_CLEAR_NONE, "soupcall_clear with no upcall", st_upcall_clear_none },
	{ R_UPCALL_RETURN, "an upcall returning 42", st_upcall_return },
	{ R_RCV_LOWAT, "a receive low-water mark above sb_hiwat", st_rcv_lowat },
	{ R_SOCKET_STATE, "soclose twice", st_socket_state },
	{ R_SIM_LOCK, "cam_sim_free without the SIM lock", st_sim_lock },
	{ R_SIM_FREE_BUSY, "cam_sim_free of a registered SIM", st_sim_free_busy },
	{ R_CCB_DONE_TWICE, "xpt_done of a CCB never sent", st_ccb_done_twice },
	{ R_CCB_INPROG, "xpt_done with CAM_REQ_INPROG", st_ccb_inprog },
	{ R_CCB_IMMEDIATE_LATE, "PATH_INQ left unanswered", st_ccb_immediate_late },
	{ R_CCB_AFTER_DETACH, "xpt_done after xpt_bus_deregister", st_ccb_after_detach },
	{ R_DEVQ_BALANCE, "release of an unfrozen device queue", st_devq_balance },
	{ R_PERIPH_FIND_LOCK, "cam_periph_find without the path lock", st_periph_find_lock },
	{ R_PATH_LEAK, "xpt_free_path of a non-path", st_path_leak },
	{ R_ACPI_BALANCE, "AcpiPutTable without AcpiGetTable", st_acpi_balance },
	{ R_ROOT_HOLD, "root_mount_rel twice", st_root_hold },
	{ R_EVENTHANDLER, "eventhandler_deregister twice", st_eventhandler },
	{ R_IFNET_REF, "if_rele twice", st_ifnet_ref },
	{ R_UNLOAD_LEFTOVER, "a socket left open at unload", st_unload_leftover },
	{ R_NET_LEFTOVER, "an address left at unload", st_net_leftover },
	{ R_SHUTDOWN_CONTEXT, "pause with the scheduler stopped", st_shutdown_context },
	{ R_GEOM_TOPOLOGY, "g_provider_by_name without the topology lock", st_geom_topology },
	{ R_KENV_COPY, "a kern_getenv copy not released", st_kenv_copy },
	{ R_KENV_FREE, "freeenv of a string kern_getenv did not return", st_kenv_free },
};

int
kpi_selftest_count(void)
{
	return ((int)nitems(tests));
}

const char *
kpi_selftest_name(int i)
{
	return (tests[i].name);
}

int
kpi_selftest_rule(int i)
{
	return ((int)tests[i].rule);
}

int
kpi_selftest_run(int i)
{
	int before = rule_hits(tests[i].rule);

	rules_quiet(1);
	tests[i].fn();
	rules_quiet(0);
	return (rule_hits(tests[i].rule) > before);
}
