/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The module declaration, malloc type, sysctls/tunables and macro wrappers of the isboot core.
 * See helpers.h for each function's contract.
 */
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/malloc.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/sysctl.h>
#include <sys/limits.h>
#include <sys/eventhandler.h>
#include <sys/proc.h>
#include <machine/atomic.h>

#include <vm/vm.h>
#include <vm/pmap.h>

#if defined(__amd64__)
#include <machine/md_var.h>
#endif
#if defined(__amd64__) || defined(__i386__)
#define ISBOOT_HAVE_ACPI 1
#include <contrib/dev/acpica/include/acpi.h>
#endif

#include "helpers.h"

MALLOC_DEFINE(M_ISBOOT, "isboot", "iSCSI boot driver");

/* ---- module ---- */

static int
isboot_modevent(module_t mod __unused, int what, void *arg __unused)
{
	switch (what) {
	case MOD_LOAD:
		return (isboot_rust_load());
	case MOD_QUIESCE:
		return (isboot_rust_quiesce());
	case MOD_UNLOAD:
		return (isboot_rust_unload());
	case MOD_SHUTDOWN:
		/* Logout happens in shutdown_post_sync, after the file systems are synced. */
		return (0);
	default:
		return (EOPNOTSUPP);
	}
}

static moduledata_t isboot_mod = {
	"isboot",
	isboot_modevent,
	NULL
};

/*
 * NIC drivers attach at SI_SUB_DRIVERS/SI_SUB_CONFIGURE and finish in the interrupt config hooks;
 * the root file system is mounted after every SYSINIT has run. Loading just before
 * SI_SUB_ROOT_CONF (as isboot always has) sees every NIC, and root_mount_hold() then keeps
 * mountroot waiting for the disk.
 */
DECLARE_MODULE(isboot, isboot_mod, SI_SUB_ROOT_CONF - 1, SI_ORDER_ANY);
MODULE_VERSION(isboot, 1);
MODULE_DEPEND(isboot, cam, 1, 1, 1);
MODULE_DEPEND(isboot, ether, 1, 1, 1);
#ifdef ISBOOT_HAVE_ACPI
MODULE_DEPEND(isboot, acpi, 1, 1, 1);
#endif

/* ---- memory ---- */

void *
isboot_malloc(size_t size, size_t align, int zero, int wait)
{
	int flags = (wait ? M_WAITOK : M_NOWAIT) | (zero ? M_ZERO : 0);

	if (size == 0)
		size = 1;
	if (align <= ISBOOT_MALLOC_ALIGN)
		return (malloc(size, M_ISBOOT, flags));
	/* malloc_aligned() accepts powers of two up to a page. */
	if (align > PAGE_SIZE || !powerof2(align))
		return (NULL);
	return (malloc_aligned(size, align, M_ISBOOT, flags));
}

void *
isboot_realloc(void *ptr, size_t size, int wait)
{
	return (realloc(ptr, size == 0 ? 1 : size, M_ISBOOT, wait ? M_WAITOK : M_NOWAIT));
}

void
isboot_free(void *ptr)
{
	free(ptr, M_ISBOOT);
}

/* ---- panic and console ---- */

void
isboot_panic(const char *msg, size_t len)
{
	panic("isboot: %.*s", (int)MIN(len, (size_t)INT_MAX), msg);
}

void
isboot_log(const char *msg, size_t len)
{
	printf("isboot: %.*s\n", (int)MIN(len, (size_t)INT_MAX), msg);
}

/* ---- sysctls ---- */

static int isboot_acpi_table = 1;
static int isboot_verbose = 0;
static int isboot_debug = 0;
static int isboot_timeouts[ISBOOT_TMO_COUNT];
static uint64_t isboot_counters[ISBOOT_CNT_COUNT];
static char isboot_strs[ISBOOT_STR_COUNT][ISBOOT_STR_MAX];
static struct mtx isboot_str_mtx;
MTX_SYSINIT(isboot_str_mtx, &isboot_str_mtx, "isboot sysctl strings", MTX_DEF);

static int
isboot_sysctl_str(SYSCTL_HANDLER_ARGS)
{
	char buf[ISBOOT_STR_MAX];

	if (arg2 < 0 || arg2 >= ISBOOT_STR_COUNT)
		return (EINVAL);
	/* Copy under the lock, copy out without it: SYSCTL_OUT may sleep. */
	mtx_lock(&isboot_str_mtx);
	memcpy(buf, isboot_strs[arg2], sizeof(buf));
	mtx_unlock(&isboot_str_mtx);
	return (sysctl_handle_string(oidp, buf, sizeof(buf), req));
}

#define	ISBOOT_SYSCTL_STR(parent, name, which, descr)				\
	SYSCTL_PROC(parent, OID_AUTO, name,					\
	    CTLTYPE_STRING | CTLFLAG_RD | CTLFLAG_MPSAFE, NULL, which,		\
	    isboot_sysctl_str, "A", descr)

SYSCTL_NODE(_hw, OID_AUTO, ibft, CTLFLAG_RD | CTLFLAG_MPSAFE, 0,
    "iSCSI Boot Firmware Table");
ISBOOT_SYSCTL_STR(_hw_ibft, initiator_name, ISBOOT_STR_INITIATOR_NAME,
    "iSCSI name of the initiator");
ISBOOT_SYSCTL_STR(_hw_ibft, initiator_address, ISBOOT_STR_INITIATOR_ADDRESS,
    "IP address of the boot NIC");
ISBOOT_SYSCTL_STR(_hw_ibft, target_name, ISBOOT_STR_TARGET_NAME,
    "iSCSI name of the boot target");
ISBOOT_SYSCTL_STR(_hw_ibft, target_address, ISBOOT_STR_TARGET_ADDRESS,
    "IP address of the boot target");
ISBOOT_SYSCTL_STR(_hw_ibft, target_port, ISBOOT_STR_TARGET_PORT,
    "TCP port of the boot target");
ISBOOT_SYSCTL_STR(_hw_ibft, target_lun, ISBOOT_STR_TARGET_LUN,
    "LUN of the boot disk");
ISBOOT_SYSCTL_STR(_hw_ibft, nic_prefix, ISBOOT_STR_NIC_PREFIX,
    "Prefix length of the boot NIC's address");
ISBOOT_SYSCTL_STR(_hw_ibft, nic_gateway, ISBOOT_STR_NIC_GATEWAY,
    "Default gateway of the boot NIC");
SYSCTL_INT(_hw_ibft, OID_AUTO, acpi_table, CTLFLAG_RDTUN, &isboot_acpi_table, 0,
    "ACPI instance of the iBFT to use when several firmwares publish one (1 = first)");
SYSCTL_INT(_hw_ibft, OID_AUTO, verbose, CTLFLAG_RDTUN, &isboot_verbose, 0,
    "Print the iBFT contents (never its secrets) at load");

SYSCTL_NODE(_net, OID_AUTO, isboot, CTLFLAG_RD | CTLFLAG_MPSAFE, 0, "iSCSI boot driver");
ISBOOT_SYSCTL_STR(_net_isboot, version, ISBOOT_STR_VERSION, "isboot version");
ISBOOT_SYSCTL_STR(_net_isboot, nic, ISBOOT_STR_NIC, "Name of the boot NIC");
ISBOOT_SYSCTL_STR(_net_isboot, device, ISBOOT_STR_DEVICE,
    "The disk of the boot LUN (daN) once attached");
SYSCTL_INT(_net_isboot, OID_AUTO, debug, CTLFLAG_RWTUN, &isboot_debug, 0,
    "Messages: 0 failures and milestones (repeats limited), 1 high-level, 2 informational, "
    "3 full trace");
/* Read-only: the session takes them at load (the module reads the loader's values itself). */
SYSCTL_INT(_net_isboot, OID_AUTO, connect_timeout, CTLFLAG_RDTUN,
    &isboot_timeouts[ISBOOT_TMO_CONNECT], 0,
    "Seconds a TCP connection to the target may take");
SYSCTL_INT(_net_isboot, OID_AUTO, login_timeout, CTLFLAG_RDTUN,
    &isboot_timeouts[ISBOOT_TMO_LOGIN], 0,
    "Seconds a login may take");
SYSCTL_INT(_net_isboot, OID_AUTO, nop_interval, CTLFLAG_RDTUN,
    &isboot_timeouts[ISBOOT_TMO_NOP_INTERVAL], 0,
    "Seconds of silence from the target before a NOP-Out ping");
SYSCTL_INT(_net_isboot, OID_AUTO, nop_timeout, CTLFLAG_RDTUN,
    &isboot_timeouts[ISBOOT_TMO_NOP_TIMEOUT], 0,
    "Seconds the target may stay silent after a ping before the connection is dropped");
SYSCTL_INT(_net_isboot, OID_AUTO, command_timeout, CTLFLAG_RDTUN,
    &isboot_timeouts[ISBOOT_TMO_COMMAND], 0,
    "Seconds a SCSI command may take (0: the timeout CAM sets)");
SYSCTL_INT(_net_isboot, OID_AUTO, root_wait, CTLFLAG_RDTUN,
    &isboot_timeouts[ISBOOT_TMO_ROOT_WAIT], 0,
    "Seconds root mounting waits for the boot disk");
SYSCTL_INT(_net_isboot, OID_AUTO, time2wait_max, CTLFLAG_RDTUN,
    &isboot_timeouts[ISBOOT_TMO_TIME2WAIT_MAX], 0,
    "Longest wait before reconnecting that a target may ask for, in seconds");
/*
 * A string tunable the module reads from kenv itself; CTLFLAG_RD (not RDTUN): the kernel's
 * sysctl_handle_string would otherwise copy the loader's unchecked text over the value in use.
 */
ISBOOT_SYSCTL_STR(_net_isboot, digests, ISBOOT_STR_DIGESTS,
    "CRC32C digests offered: allow (None,CRC32C), prefer (CRC32C,None), require, forbid");

SYSCTL_NODE(_net_isboot, OID_AUTO, session, CTLFLAG_RD | CTLFLAG_MPSAFE, 0,
    "Boot session statistics");
ISBOOT_SYSCTL_STR(_net_isboot_session, state, ISBOOT_STR_SESSION_STATE, "Session state");
ISBOOT_SYSCTL_STR(_net_isboot_session, last_error, ISBOOT_STR_SESSION_LAST_ERROR,
    "Last session error");
SYSCTL_U64(_net_isboot_session, OID_AUTO, reconnects, CTLFLAG_RD,
    &isboot_counters[ISBOOT_CNT_RECONNECTS], 0, "Reconnections since load");
SYSCTL_U64(_net_isboot_session, OID_AUTO, commands, CTLFLAG_RD,
    &isboot_counters[ISBOOT_CNT_COMMANDS], 0, "SCSI commands completed");
SYSCTL_U64(_net_isboot_session, OID_AUTO, bytes_in, CTLFLAG_RD,
    &isboot_counters[ISBOOT_CNT_BYTES_IN], 0, "Data bytes read from the target");
SYSCTL_U64(_net_isboot_session, OID_AUTO, bytes_out, CTLFLAG_RD,
    &isboot_counters[ISBOOT_CNT_BYTES_OUT], 0, "Data bytes written to the target");

int
isboot_debug_level(void)
{
	return (atomic_load_int(&isboot_debug));
}

int
isboot_str_set(unsigned int which, const char *s, size_t len)
{
	size_t n;

	if (which >= ISBOOT_STR_COUNT)
		return (EINVAL);
	n = MIN(len, ISBOOT_STR_MAX - 1);
	mtx_lock(&isboot_str_mtx);
	memcpy(isboot_strs[which], s, n);
	isboot_strs[which][n] = '\0';
	mtx_unlock(&isboot_str_mtx);
	return (n == len ? 0 : ENAMETOOLONG);
}

void
isboot_counter_add(unsigned int which, uint64_t n)
{
	if (which < ISBOOT_CNT_COUNT)
		atomic_add_64(&isboot_counters[which], n);
}

void
isboot_session_stats_reset(void)
{
	int i;

	for (i = 0; i < ISBOOT_CNT_COUNT; i++)
		atomic_store_64(&isboot_counters[i], 0);
	mtx_lock(&isboot_str_mtx);
	isboot_strs[ISBOOT_STR_SESSION_STATE][0] = '\0';
	isboot_strs[ISBOOT_STR_SESSION_LAST_ERROR][0] = '\0';
	mtx_unlock(&isboot_str_mtx);
}

int
isboot_tunable_acpi_table(void)
{
	return (isboot_acpi_table);
}

int
isboot_tunable_verbose(void)
{
	return (isboot_verbose);
}

void
isboot_timeout_set(unsigned int which, int seconds)
{
	if (which < ISBOOT_TMO_COUNT)
		atomic_store_int(&isboot_timeouts[which], seconds);
}

/* ---- shutdown ---- */

void *
isboot_shutdown_register(void (*fn)(void *, int), void *arg)
{
	return (EVENTHANDLER_REGISTER(shutdown_post_sync, fn, arg, SHUTDOWN_PRI_LAST));
}

void
isboot_shutdown_deregister(void *tag)
{
	EVENTHANDLER_DEREGISTER(shutdown_post_sync, (eventhandler_tag)tag);
}

void *
isboot_shutdown_pre_register(void (*fn)(void *, int), void *arg)
{
	/*
	 * First, as iscsi(4) does: the session's recovery must be bounded before bufshutdown()
	 * starts writing dirty buffers, or a dead target holds the reboot forever.
	 */
	return (EVENTHANDLER_REGISTER(shutdown_pre_sync, fn, arg, SHUTDOWN_PRI_FIRST));
}

void
isboot_shutdown_pre_deregister(void *tag)
{
	/* Waits for a running invocation, like EVENTHANDLER_DEREGISTER above. */
	EVENTHANDLER_DEREGISTER(shutdown_pre_sync, (eventhandler_tag)tag);
}

int
isboot_shutdown_may_wait(void)
{
#ifdef KERNEL_PANICKED
	if (KERNEL_PANICKED())
		return (0);
#else
	if (panicstr != NULL)
		return (0);
#endif
	return (SCHEDULER_STOPPED() ? 0 : 1);
}

/* ---- finding the iBFT ---- */

int
isboot_acpi_table_copy(const char *sig, uint32_t instance, void *buf, size_t buflen,
    size_t *tablelen)
{
#ifdef ISBOOT_HAVE_ACPI
	ACPI_TABLE_HEADER *hdr;
	char name[ACPI_NAMESEG_SIZE + 1];

	memcpy(name, sig, ACPI_NAMESEG_SIZE);
	name[ACPI_NAMESEG_SIZE] = '\0';
	if (ACPI_FAILURE(AcpiGetTable(name, instance, &hdr)))
		return (ENOENT);
	*tablelen = hdr->Length;
	if (buf != NULL)
		memcpy(buf, hdr, MIN(buflen, (size_t)hdr->Length));
	AcpiPutTable(hdr);
	return (0);
#else
	*tablelen = 0;
	return (ENXIO);
#endif
}

int
isboot_efi_boot(void)
{
#if defined(__amd64__)
	return (efi_boot ? 1 : 0);
#elif defined(__i386__)
	return (0);
#else
	return (1);
#endif
}

void *
isboot_mapbios(uint64_t pa, size_t len)
{
#if defined(__amd64__) || defined(__i386__)
	return (pmap_mapbios((vm_paddr_t)pa, len));
#else
	return (NULL);
#endif
}

void
isboot_unmapbios(void *va, size_t len)
{
#if defined(__amd64__) || defined(__i386__)
#if __FreeBSD_version >= 1400000
	pmap_unmapbios(va, len);
#else
	pmap_unmapbios((vm_offset_t)va, len);
#endif
#endif
}
