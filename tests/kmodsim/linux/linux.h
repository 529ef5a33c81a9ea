/* SPDX-License-Identifier: BSD-2-Clause */
/* Declarations shared by the Linux half's files (never seen by the FreeBSD half). */
#ifndef KMODSIM_LINUX_H
#define KMODSIM_LINUX_H

#include "../host.h"

/* Faults the socket layer injects, set by a scenario. */
struct host_faults {
	hu64 reset_after;	/* reset a connection once this many bytes went through it */
	int resets_left;	/* how many connections still get that treatment */
};

struct host_net_stats {
	hu64 connects;
	hu64 refused_nonloopback;
	hu64 resets_injected;
	hu64 bytes_sent, bytes_received;
};

extern int host_quiet;
void host_net_init(void);
void host_set_faults(const struct host_faults *f);
struct host_net_stats *host_net_stats(void);
int host_backtrace(void **frame, hsize_t *out, int max);

/* FreeBSD-half entry points not in host.h because only the scenario driver uses them. */
void kpi_boot_prepare(void);
void kpi_lowmem_table(hu64 pa, const void *table, hsize_t len);
void kpi_efi_boot(int yes);
int kpi_console_count(const char *needle);
int kpi_selftest_rule(int i);
int kpi_module_loaded(void);
void kpi_epoch_trace(int on);
void kpi_fail_kthreads(int on);
int kpi_disk_label(hu64 lun, void *buf, hsize_t len);
int kpi_cam_max_active(void);
void kpi_text_range(unsigned long lo, unsigned long hi);
int kpi_frozen_total(void);
extern int kpi_verbose;

#endif
