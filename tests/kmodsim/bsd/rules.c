/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The rule catalogue: what the emulation enforces, and where FreeBSD enforces (or depends on)
 * it. Sources were read in FreeBSD main (fel1x-developer/freebsd-src 2d614aa2); "14:" says what
 * was checked for 14.x (the 14.3 headers the module builds against; no stable/14 .c tree was
 * available to read, so a .c rule rests on code older than 14.0 where that is said).
 */
#include "kpi.h"

struct rule_info {
	const char *id;
	const char *source;
};

static const struct rule_info rules[R_COUNT] = {
	[R_MTX_CLASS] = { "mtx-class",
	    "kern/kern_mutex.c __mtx_lock_flags/__mtx_unlock_flags: KASSERT \"mtx_lock() of spin "
	    "mutex\"; __mtx_lock_spin_flags: \"mtx_lock_spin() of sleep mutex\" (14: same)" },
	[R_MTX_DESTROYED] = { "mtx-destroyed",
	    "kern/kern_mutex.c __mtx_lock_flags: KASSERT \"mtx_lock() of destroyed mutex\"; "
	    "kern/subr_lock.c lock_destroy: \"lock %p is not initialized\" (14: same)" },
	[R_MTX_REINIT] = { "mtx-reinit",
	    "kern/subr_lock.c lock_init: KASSERT \"lock %s %p already initialized\" (14: same)" },
	[R_MTX_NOT_OWNER] = { "mtx-not-owner",
	    "kern/kern_mutex.c __mtx_unlock_flags: __mtx_assert(MA_OWNED) \"mutex %s not owned\" "
	    "(14: same)" },
	[R_MTX_RECURSE] = { "mtx-recurse",
	    "kern/kern_mutex.c _mtx_lock_sleep/__mtx_lock_spin_flags: KASSERT \"recursed on "
	    "non-recursive mutex\" unless LO_RECURSABLE or MTX_RECURSE (14: same)" },
	[R_MTX_DESTROY_BUSY] = { "mtx-destroy-busy",
	    "kern/kern_mutex.c _mtx_destroy: MPASS(mtx_unowned(m)) unless curthread owns it "
	    "(14: same)" },
	[R_SLEEP_SPIN_HELD] = { "sleep-lock-under-spin",
	    "kern/subr_witness.c witness_checkorder: \"acquiring blockable sleep lock with "
	    "spinlock or critical section held\" (14: same)" },
	[R_LOCK_ORDER] = { "lock-order",
	    "kern/subr_witness.c witness_checkorder: \"lock order reversal\" between lock "
	    "classes (names); DUPOK classes may nest (14: same)" },
	[R_SLEEP_LOCKED] = { "sleep-with-mutex",
	    "kern/kern_synch.c _sleep: WITNESS_WARN \"Sleeping on ... with the following "
	    "non-sleepable locks held\"; pause_sbt, malloc(M_WAITOK) (kern_malloc.c malloc_dbg "
	    "WITNESS_WARN), taskqueue_drain, callout_drain, soclose all reach it (14: same)" },
	[R_SLEEP_EPOCH] = { "sleep-in-epoch",
	    "kern/subr_epoch.c _epoch_enter_preempt: THREAD_NO_SLEEPING(); kern/subr_sleepqueue.c "
	    "sleepq_add: KASSERT \"sleeping prohibited\" (14: same)" },
	[R_EPOCH_BALANCE] = { "epoch-balance",
	    "kern/subr_epoch.c _epoch_exit_preempt: MPASS(td->td_epochnest) and the tracker "
	    "must be the entered one (14: same)" },
	[R_NEED_EPOCH] = { "needs-net-epoch",
	    "net/if.c if_foreach: NET_EPOCH_ASSERT(); net/route/route_ctl.c rib_action: "
	    "NET_EPOCH_ASSERT() (14: if_foreach exists from 14.0, same assert)" },
	[R_NEED_VNET] = { "needs-curvnet",
	    "net/vnet.h VNET_VNET_PTR dereferences curvnet: if_foreach (V_ifnet), ifunit_ref, "
	    "rib_action (V_rt_tables) with curvnet NULL fault; socreate/ifioctl set it "
	    "themselves (uipc_socket.c, if.c) (14: same)" },
	[R_CONTEXT_LOCKS] = { "context-returns-locked",
	    "a task (subr_taskqueue.c taskqueue_run_locked), callout (kern_timeout.c "
	    "softclock_call_cc), upcall (uipc_sockbuf.c sowakeup) or SIM action (cam_xpt.c "
	    "xpt_run_devq) that returns holding a lock leaves it held by a kernel thread that "
	    "sleeps next: kern_synch.c _sleep WITNESS_WARN (14: same)" },
	[R_MALLOC_FLAGS] = { "malloc-flags",
	    "kern/kern_malloc.c malloc_dbg: \"Bad malloc flags\" unless exactly one of "
	    "M_WAITOK/M_NOWAIT (14: same)" },
	[R_FREE_BAD] = { "free-bad",
	    "kern/kern_malloc.c free: panic \"free: address %p(%p) has not been allocated\"; "
	    "vm/uma_dbg.c uma_dbg_free: \"Duplicate free\" (14: same)" },
	[R_FREE_TYPE] = { "free-type",
	    "kern/kern_malloc.c free: malloc_type_freed(mtp) charges the type passed, not the "
	    "allocation's: vmstat -m goes wrong and malloc_uninit of the real type reports a leak "
	    "(14: same)" },
	[R_MODIFIED_AFTER_FREE] = { "modified-after-free",
	    "vm/uma_dbg.c trash_ctor: panic \"Memory modified after free\" (14: same)" },
	[R_MALLOC_LEAK] = { "malloc-leak",
	    "kern/kern_malloc.c malloc_uninit: \"Warning: memory type %s leaked memory on "
	    "destroy\" (14: same)" },
	[R_FREE_PENDING] = { "free-while-pending",
	    "kern/kern_timeout.c softclock_call_cc calls c->c_func of a pending callout, "
	    "kern/subr_taskqueue.c taskqueue_run_locked calls ta_func of a queued task: freed "
	    "memory is used (14: same)" },
	[R_CALLOUT_LOCK] = { "callout-lock",
	    "kern/kern_timeout.c callout_reset_sbt_on and _callout_stop_safe: "
	    "lc_assert(c->c_lock, LA_XLOCKED) for a callout initialised with a lock "
	    "(14: same)" },
	[R_CALLOUT_DRAIN_LOCKED] = { "callout-drain-locked",
	    "kern/kern_timeout.c _callout_stop_safe(CS_DRAIN): WITNESS_WARN(WARN_SLEEPOK, "
	    "c->c_lock) then sleeps until the handler, which takes c_lock, has run: deadlock "
	    "(14: same; 14 takes a drain function argument)" },
	[R_TQ_MISUSE] = { "taskqueue-misuse",
	    "kern/subr_taskqueue.c taskqueue_free: KASSERT \"Tasks still running?\"; "
	    "taskqueue_drain/taskqueue_free sleep (WITNESS_WARN); a task enqueued after free "
	    "uses freed memory (14: same)" },
	[R_UPCALL_LOCK] = { "upcall-lock",
	    "kern/uipc_socket.c soupcall_set/soupcall_clear: SOCK_BUF_LOCK_ASSERT(so, which) "
	    "(14: same, sockbuf.h 14.3)" },
	[R_UPCALL_CLEAR_NONE] = { "upcall-clear-none",
	    "kern/uipc_socket.c soupcall_clear: KASSERT \"no upcall to clear\" (14: same)" },
	[R_UPCALL_RETURN] = { "upcall-return",
	    "kern/uipc_sockbuf.c sowakeup: only SU_OK, or SU_ISCONNECTED from the receive "
	    "upcall; KASSERT \"SO_SND upcall returned SU_ISCONNECTED\" (14: same)" },
	[R_RCV_LOWAT] = { "rcv-lowat",
	    "kern/uipc_socket.c sosetopt(SO_RCVLOWAT): \"Make sure the low-water is never greater "
	    "than the high-water\", sb_lowat is capped at sb_hiwat; a mark above it asks for more "
	    "than the buffer holds, so sbavail >= sb_lowat (soreadable, the module's upcall test) "
	    "never holds and the reader is never woken (14: same)" },
	[R_SOCKET_STATE] = { "socket-state",
	    "kern/uipc_socket.c soclose: KASSERT \"soclose: SS_NOFDREF on enter\"; a socket "
	    "is freed by its last soclose (sorele), so any later use is a use after free "
	    "(14: same)" },
	[R_SIM_LOCK] = { "sim-lock",
	    "cam/cam_sim.c cam_sim_free: mtx_assert(sim->mtx, MA_OWNED), the lock msleep drops "
	    "while it waits (14: same; xpt_bus_register lost its mtx_assert with the 2013 CAM "
	    "locking rework, before 10.0, so it is not checked)" },
	[R_SIM_FREE_BUSY] = { "sim-free-sleeps",
	    "cam/cam_sim.c cam_sim_free: msleep(sim, \"simfree\") until sim->refcount is 0; "
	    "the registered bus and every path and periph (da open) hold references "
	    "(cam_xpt.c xpt_release_bus): freeing with one left never returns (14: same)" },
	[R_CCB_DONE_TWICE] = { "ccb-done-twice",
	    "cam/cam_xpt.c xpt_done: STAILQ_INSERT_TAIL on the done queue and xpt_done_process: "
	    "send_openings++ per completion: a second xpt_done corrupts both (14: same)" },
	[R_CCB_INPROG] = { "ccb-done-inprog",
	    "cam/cam_xpt.c xpt_done_process hands the CCB to the periph as finished; "
	    "cam_periph.c cam_periph_error has no case for CAM_REQ_INPROG (unknown status, "
	    "retried as an error) (14: same)" },
	[R_CCB_IMMEDIATE_LATE] = { "immediate-ccb",
	    "cam/cam_xpt.c xpt_action: a CCB without XPT_FC_QUEUED is finished when the action "
	    "routine returns (callers read ccb_h.status at once, e.g. xpt_path_inq); xpt_done "
	    "ignores it (14: same)" },
	[R_CCB_AFTER_DETACH] = { "ccb-after-detach",
	    "cam/cam_xpt.c xpt_bus_deregister marks the bus gone and xpt_release_bus frees it "
	    "with its devices; xpt_done/xpt_freeze_devq on its CCBs touch freed memory "
	    "(14: same)" },
	[R_DEVQ_BALANCE] = { "devq-balance",
	    "cam/cam_xpt.c xpt_release_devq_device: \"xpt_release_devq(): requested %u > "
	    "present %u\"; a freeze nobody releases stops the device queue (xpt_run_devq skips "
	    "frozen devices); cam_ccb.h: CAM_DEV_QFRZN means the SIM froze the queue (14: same)" },
	[R_PERIPH_FIND_LOCK] = { "periph-find-lock",
	    "cam/cam_periph.c cam_periph_find: cam_periph_assert(periph, MA_OWNED) on a match; "
	    "cam_periph.h: mtx_assert(xpt_path_mtx(periph->path)) (14: same, assert since 2013)" },
	[R_PATH_LEAK] = { "cam-leak",
	    "cam/cam_xpt.c xpt_free_path/xpt_free_ccb: paths hold bus, target and device "
	    "references (xpt_compile_path) that keep cam_sim_free sleeping (14: same)" },
	[R_ACPI_BALANCE] = { "acpi-balance",
	    "contrib/dev/acpica/components/tables/tbxface.c AcpiGetTable takes a validation "
	    "reference, AcpiPutTable drops it (AcpiTbReleaseTable unmaps at zero) (14: same)" },
	[R_ROOT_HOLD] = { "root-hold",
	    "kern/vfs_mountroot.c root_mount_rel: TAILQ_REMOVE and free of the token; "
	    "vfs_mountroot_wait waits while root_holds is not empty (14: same)" },
	[R_EVENTHANDLER] = { "eventhandler",
	    "kern/subr_eventhandler.c _eventhandler_deregister; a handler of an unloaded module "
	    "left on shutdown_pre_sync/post_sync is called into freed text by kern_reboot "
	    "(14: same)" },
	[R_IFNET_REF] = { "ifnet-ref",
	    "net/if.c if_ref/if_rele: a reference never released keeps the ifnet (and a "
	    "detached driver's softc) from being freed (14: same)" },
	[R_UNLOAD_LEFTOVER] = { "unload-leftover",
	    "kern/kern_linker.c linker_file_unload frees the module's text and data: a socket "
	    "upcall, taskqueue thread, callout or sysctl handler left behind runs freed code "
	    "(14: same)" },
	[R_NET_LEFTOVER] = { "net-leftover",
	    "isboot's contract (driver/kmod/README.md): what MOD_LOAD added to the network "
	    "(VLAN clone: net/if_clone.c if_clone_destroy; addresses: netinet/in.c SIOCDIFADDR; "
	    "routes: route_ctl.c RTM_DELETE) is removed at unload or failed load, nothing else" },
	[R_SHUTDOWN_CONTEXT] = { "shutdown-context",
	    "kern/kern_shutdown.c kern_reboot: during a panic the handlers run with the "
	    "scheduler stopped (SCHEDULER_STOPPED, KERNEL_PANICKED); a handler that waits for "
	    "another thread never returns (14: panicked; 15: panicstr/scheduler_stopped)" },
	[R_GEOM_TOPOLOGY] = { "geom-topology",
	    "geom/geom_subr.c g_provider_by_name walks g_classes and their providers, which the "
	    "topology lock (g_topology_lock, an sx) protects; providers come and go under it "
	    "(14: same)" },
	[R_KENV_COPY] = { "kenv-copy",
	    "kern/kern_environment.c kern_getenv: \"The pointer has to be freed with freeenv() "
	    "after use\": the copy is a kenv_zone item (uma_zalloc M_WAITOK); one never released "
	    "leaks the zone and leaves the value (a CHAP secret) in memory, where freeenv would "
	    "have zeroed it (explicit_bzero) (14: same)" },
	[R_KENV_FREE] = { "kenv-free",
	    "kern/kern_environment.c freeenv: explicit_bzero(env, strlen(env)) and "
	    "uma_zfree(kenv_zone, env): anything but a kern_getenv copy corrupts the zone "
	    "(vm/uma_dbg.c uma_dbg_free under INVARIANTS: \"Freed item not in slab\") (14: same)" },
};

static int hits[R_COUNT];
static int total;
static int quiet;

void
rules_quiet(int q)
{
	quiet = q;
}

void
rule(enum rule r, const char *fmt, ...)
{
	char msg[512];
	__builtin_va_list ap;

	__atomic_fetch_add(&hits[r], 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&total, 1, __ATOMIC_SEQ_CST);
	if (quiet)
		return;
	__builtin_va_start(ap, fmt);
	host_vformat(msg, sizeof(msg), fmt, ap);
	__builtin_va_end(ap);
	host_log("RULE %s: %s [thread %s]\n", rules[r].id, msg,
	    curthread != NULL ? curthread->td_name : "?");
}

int
rule_hits(enum rule r)
{
	return (__atomic_load_n(&hits[r], __ATOMIC_SEQ_CST));
}

int
kpi_violations(void)
{
	return (__atomic_load_n(&total, __ATOMIC_SEQ_CST));
}

int
kpi_rule_count(void)
{
	return (R_COUNT);
}

const char *
kpi_rule_id(int i)
{
	return (i >= 0 && i < R_COUNT ? rules[i].id : NULL);
}

const char *
kpi_rule_source(int i)
{
	return (i >= 0 && i < R_COUNT ? rules[i].source : NULL);
}
