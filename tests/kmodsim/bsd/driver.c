/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The end of a run in FreeBSD terms: what must be gone once the module is unloaded, the
 * counters the scenario prints, and the network snapshot taken before MOD_LOAD.
 */
#include "kpi.h"

void net_snapshot(void);
void malloc_check_quarantine(void);
void periph_counts(char *buf, hsize_t len);
void cam_start_threads(void);
void sock_init(void);
int module_is_loaded(void);

int kmodsim_sched_stopped;

/* Called by kpi_load's caller before MOD_LOAD: CAM's threads run, the network is recorded. */
void
kpi_boot_prepare(void)
{
	sock_init();
	cam_start_threads();
	net_snapshot();
}

int
kpi_final_checks(int unloaded)
{
	module_final_checks(unloaded);
	if (unloaded)
		(void)sched_final_checks();
	sock_final_checks(unloaded);
	cam_final_checks(unloaded);
	net_final_checks(unloaded);
	acpi_final_checks(unloaded);
	malloc_check_quarantine();
	return (kpi_violations());
}

void
kpi_counts(char *buf, hsize_t len)
{
	buf[0] = '\0';
	malloc_report(buf, len);
	periph_counts(buf, len);
	kappend(buf, len, "; sockets open %d, taskqueues %d, callouts %d, root holds %d, "
	    "max stack at a KPI call %zu bytes", sockets_open(), taskqueues_live(),
	    callouts_pending(), root_holds(), (size_t)stack_max_used());
}

int
kpi_module_loaded(void)
{
	return (module_is_loaded());
}
