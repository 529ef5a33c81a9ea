/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Shared declarations of the FreeBSD half. Every file of bsd/ is compiled with the module's
 * own preprocessor view (tests/kmod-env.sh: -D_KERNEL -DKLD_MODULE, opt_global.h, the release's
 * __FreeBSD_version), so the structures below are the kernel's real layouts.
 */
#ifndef KMODSIM_KPI_H
#define KMODSIM_KPI_H

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/linker_set.h>
#include <sys/malloc.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/sx.h>
#include <sys/sysctl.h>
#include <sys/eventhandler.h>
#include <sys/proc.h>
#include <sys/pcpu.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/socketvar.h>
#include <sys/sockio.h>
#include <sys/sockopt.h>
#include <sys/protosw.h>
#include <sys/taskqueue.h>
#include <sys/callout.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/epoch.h>
#include <net/if.h>
#include <net/if_var.h>
#include <net/if_private.h>
#include <net/if_types.h>
#include <net/if_clone.h>
#include <net/route.h>
#include <net/route/route_ctl.h>
#include <net/vnet.h>
#include <netinet/in.h>
#include <netinet/in_var.h>
#include <netinet/tcp.h>
#include <netinet6/in6_var.h>
#include <cam/cam.h>
#include <cam/cam_ccb.h>
#include <cam/cam_sim.h>
#include <cam/cam_xpt_sim.h>
#include <cam/cam_xpt.h>
#include <cam/cam_xpt_internal.h>
#include <cam/cam_periph.h>
#include <cam/cam_queue.h>
#include <cam/scsi/scsi_all.h>
#include <cam/scsi/scsi_message.h>
#include <geom/geom.h>
#include <vm/vm.h>
#include <vm/pmap.h>
#include <machine/md_var.h>
#include <contrib/dev/acpica/include/acpi.h>

#include "../host.h"

#define KMODSIM_V14 (__FreeBSD_version >= 1400000 && __FreeBSD_version < 1500000)

/* ---- rules (rules.c) ---- */

/*
 * Every rule the emulation enforces. Each has an id, the FreeBSD source it is written from
 * (file and function) and a self-test (selftest.c) that proves it fires. The table in
 * rules.c is the catalogue; `run.sh --rules` prints it.
 */
enum rule {
	R_MTX_CLASS,		/* spin op on a sleep mutex or the reverse */
	R_MTX_DESTROYED,	/* lock/unlock of a destroyed or never initialised mutex */
	R_MTX_REINIT,		/* mtx_init of an initialised mutex */
	R_MTX_NOT_OWNER,	/* unlock by a thread that does not own it */
	R_MTX_RECURSE,		/* recursion on a non-recursive mutex */
	R_MTX_DESTROY_BUSY,	/* mtx_destroy of a mutex another thread holds */
	R_SLEEP_SPIN_HELD,	/* acquiring a sleep mutex with a spin mutex held */
	R_LOCK_ORDER,		/* lock order reversal (WITNESS-lite graph) */
	R_SLEEP_LOCKED,		/* sleeping with a mutex held */
	R_SLEEP_EPOCH,		/* sleeping inside a net epoch section */
	R_EPOCH_BALANCE,	/* epoch exit without enter / left entered */
	R_NEED_EPOCH,		/* a KPI that needs the net epoch called outside it */
	R_NEED_VNET,		/* a KPI that reads V_ variables called without curvnet */
	R_CONTEXT_LOCKS,	/* a task/callout/upcall/SIM action returned with locks held */
	R_MALLOC_FLAGS,		/* malloc flags without exactly one of M_WAITOK/M_NOWAIT */
	R_FREE_BAD,		/* free of memory not allocated (or freed twice) */
	R_FREE_TYPE,		/* free with a malloc type other than the allocation's */
	R_MODIFIED_AFTER_FREE,	/* freed memory written */
	R_MALLOC_LEAK,		/* allocations left at malloc_uninit */
	R_FREE_PENDING,		/* memory freed with a callout or task still pending/running in it */
	R_CALLOUT_LOCK,		/* callout_reset/stop without the callout's lock */
	R_CALLOUT_DRAIN_LOCKED,	/* callout_drain with the callout's lock held */
	R_TQ_MISUSE,		/* taskqueue created/freed wrongly (threads, pending at free) */
	R_UPCALL_LOCK,		/* soupcall_set/clear without the sockbuf lock */
	R_UPCALL_CLEAR_NONE,	/* soupcall_clear with no upcall set */
	R_UPCALL_RETURN,	/* an upcall returned something other than SU_OK */
	R_RCV_LOWAT,		/* receive low-water mark above what the buffer can hold */
	R_SOCKET_STATE,		/* socket used after soclose, or closed twice */
	R_SIM_LOCK,		/* xpt_bus_register/deregister, cam_sim_free without the SIM lock */
	R_SIM_FREE_BUSY,	/* cam_sim_free would sleep forever (bus registered, da open) */
	R_CCB_DONE_TWICE,	/* xpt_done of a CCB that is not outstanding */
	R_CCB_INPROG,		/* xpt_done with CAM_REQ_INPROG status */
	R_CCB_IMMEDIATE_LATE,	/* an immediate CCB left unanswered by the action routine */
	R_CCB_AFTER_DETACH,	/* a CCB or path touched after its bus was deregistered */
	R_DEVQ_BALANCE,		/* CAM_DEV_QFRZN without a freeze, or a queue left frozen */
	R_PERIPH_FIND_LOCK,	/* cam_periph_find matched without the path lock */
	R_PATH_LEAK,		/* paths or CCBs of the module left */
	R_ACPI_BALANCE,		/* AcpiGetTable without AcpiPutTable */
	R_ROOT_HOLD,		/* root_mount_hold tokens left or released twice */
	R_EVENTHANDLER,		/* handlers left registered at unload, or bad deregister */
	R_IFNET_REF,		/* if_ref/if_rele unbalanced */
	R_UNLOAD_LEFTOVER,	/* sockets, taskqueues, callouts, sysctl state left at unload */
	R_NET_LEFTOVER,		/* interface configuration the module added left at unload */
	R_SHUTDOWN_CONTEXT,	/* shutdown handler waited when the scheduler is stopped */
	R_GEOM_TOPOLOGY,	/* g_provider_by_name without the GEOM topology lock */
	R_KENV_COPY,		/* a kern_getenv copy never released with freeenv */
	R_KENV_FREE,		/* freeenv of a pointer kern_getenv did not return */
	R_COUNT
};

void rule(enum rule r, const char *fmt, ...) __printflike(2, 3);
int rule_hits(enum rule r);
/* Quiet mode for self-tests: rules still count, messages are not printed. */
void rules_quiet(int quiet);

/* ---- threads (thread.c) ---- */

/* Harness state of a thread beyond struct thread (td_emuldata). */
#define KTHR_MAXHELD 16
struct kthr {
	struct lock_object *held[KTHR_MAXHELD];
	int nheld;
	int spin_held;
	int epoch_nest;
	int no_sleep;		/* contexts that may not sleep: upcall, callout, SIM action */
	const char *context;	/* name of that context, for messages */
	char *stack_top;	/* highest stack address seen at attach */
	hsize_t stack_max;	/* deepest module stack use observed at a KPI entry */
	char names[256];	/* held_names() output */
};
struct kthr *kthr(void);
void may_sleep(const char *what);
/* Enter/leave a no-sleep context (upcall, callout, action routine); leave checks locks. */
int context_enter(const char *what);
void context_leave(const char *what, int nheld_before);
hu64 now_ns(void);
sbintime_t now_sbt(void);
hu64 sbt_to_ns(sbintime_t sbt);
void stack_probe(void);
hsize_t stack_max_used(void);
extern int kmodsim_release;
extern bool kmodsim_panicking;

/* ---- locks (lock.c) ---- */
void lock_check_held_at_exit(const char *what);
const char *held_names(void);
int mtx_is_owned(struct mtx *m);
void witness_reset(void);
void lock_init_giant(void);
int giant_held(void);
int locks_held_except_giant(void);
int in_net_epoch(void);
extern int kmodsim_epoch_trace;
void kpi_text_range(unsigned long lo, unsigned long hi);
extern struct mtx Giant;
struct sx;
void kmodsim_sx_init(struct sx *sx, const char *name);
int kmodsim_sx_owned(struct sx *sx);

/* ---- malloc (malloc.c) ---- */
void *kmem_alloc(hsize_t size);		/* harness-internal memory, never fails */
void kmem_free(void *p);
int malloc_live_in(const void *start, hsize_t len);	/* module allocations overlapping */
void malloc_report(char *buf, hsize_t len);
long malloc_outstanding(struct malloc_type *mtp);
/* Called by free(): a harness object (callout, task) inside the freed range must be idle. */
void sched_check_free(const void *start, hsize_t len);

/* ---- modules, sysctl, eventhandlers, root holds (module.c) ---- */
int module_load_all(void);
int module_unload_all(void);
int eventhandler_invoke(const char *list, int howto);
int root_holds(void);
void module_final_checks(int unloaded);

/* ---- scheduling (sched.c) ---- */
void sched_init(void);
int sched_final_checks(void);
int taskqueues_live(void);
int callouts_pending(void);
int tq_thread_is_current(void);

/* ---- network (net.c) ---- */
void net_init(void);
void net_final_checks(int unloaded);
int net_routes_text(char *buf, hsize_t len);
int net_ifp_index_of(const char *name);

/* ---- sockets (sock.c) ---- */
int sockets_open(void);
void sock_moved(hu64 *sent, hu64 *received);	/* bytes sosend/soreceive moved */
void sock_calls(hu64 *recv, hu64 *recv_empty, hu64 *send);	/* soreceive/sosend calls */
void sock_final_checks(int unloaded);

/* ---- CAM (cam.c, periph.c) ---- */
void cam_init(void);
void cam_final_checks(int unloaded);
/* periph.c: a scan of a bus (what CAM's probe does), run on the scanner thread. */
void periph_scan_bus(struct cam_eb *bus, int full);
void periph_lost(struct cam_ed *dev);
int periph_open_count(void);
extern struct mtx cam_topo_mtx;

/* ---- ACPI (acpi.c) ---- */
void acpi_final_checks(int unloaded);

/* ---- small helpers ---- */
int kstreq(const char *a, const char *b);
void kfmt(char *buf, hsize_t len, const char *fmt, ...) __printflike(3, 4);
void kappend(char *buf, hsize_t len, const char *fmt, ...) __printflike(3, 4);
/* Harness messages ("[kpi] ..."), printed when the harness is verbose. */
void kpi_log(const char *fmt, ...) __printflike(1, 2);
extern int kpi_verbose;

#endif
