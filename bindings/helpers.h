/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * C side of the isboot module core: the module declaration, the malloc type, sysctls and
 * tunables, and wrappers for the kernel macros and inline functions the Rust core calls
 * (isboot_<name>). Nothing here decides anything; the Rust side does.
 */
#ifndef ISBOOT_HELPERS_H
#define ISBOOT_HELPERS_H

#include <sys/types.h>
#include <sys/socket.h>

/* Longest string a sysctl of ours holds, NUL included (iSCSI names are at most 223 bytes). */
#define ISBOOT_STR_MAX 224
/* Alignment malloc(9) guarantees for every allocation (its smallest zone is 16 bytes). */
#define ISBOOT_MALLOC_ALIGN 16

/*
 * Constants whose C definition differs between releases (FreeBSD 15 turned SHUT_* into enum
 * members), evaluated by the C compiler so the Rust side sees one name.
 */
enum {
	ISBOOT_SHUT_RD = SHUT_RD,
	ISBOOT_SHUT_WR = SHUT_WR,
	ISBOOT_SHUT_RDWR = SHUT_RDWR
};

/* String sysctls, set by isboot_str_set() and read through one handler under a mutex. */
enum isboot_str {
	ISBOOT_STR_INITIATOR_NAME,	/* hw.ibft.initiator_name */
	ISBOOT_STR_INITIATOR_ADDRESS,	/* hw.ibft.initiator_address */
	ISBOOT_STR_TARGET_NAME,		/* hw.ibft.target_name */
	ISBOOT_STR_TARGET_ADDRESS,	/* hw.ibft.target_address */
	ISBOOT_STR_TARGET_PORT,		/* hw.ibft.target_port */
	ISBOOT_STR_TARGET_LUN,		/* hw.ibft.target_lun */
	ISBOOT_STR_NIC_PREFIX,		/* hw.ibft.nic_prefix */
	ISBOOT_STR_NIC_GATEWAY,		/* hw.ibft.nic_gateway */
	ISBOOT_STR_VERSION,		/* net.isboot.version */
	ISBOOT_STR_NIC,			/* net.isboot.nic */
	ISBOOT_STR_SESSION_STATE,	/* net.isboot.session.state */
	ISBOOT_STR_SESSION_LAST_ERROR,	/* net.isboot.session.last_error */
	ISBOOT_STR_DEVICE,		/* net.isboot.device */
	ISBOOT_STR_DIGESTS,		/* net.isboot.digests (the setting in use) */
	ISBOOT_STR_COUNT
};

/*
 * The session's timeouts in seconds (net.isboot.*, tunables and read-only sysctls), in the order
 * of isboot_core::bootcfg::tunables::ALL. The module reads the loader's text itself (bounds,
 * messages) and stores here what it uses, which is what the sysctls show.
 */
enum isboot_timeout {
	ISBOOT_TMO_CONNECT,		/* net.isboot.connect_timeout */
	ISBOOT_TMO_LOGIN,		/* net.isboot.login_timeout */
	ISBOOT_TMO_NOP_INTERVAL,	/* net.isboot.nop_interval */
	ISBOOT_TMO_NOP_TIMEOUT,		/* net.isboot.nop_timeout */
	ISBOOT_TMO_COMMAND,		/* net.isboot.command_timeout */
	ISBOOT_TMO_ROOT_WAIT,		/* net.isboot.root_wait */
	ISBOOT_TMO_TIME2WAIT_MAX,	/* net.isboot.time2wait_max */
	ISBOOT_TMO_COUNT
};

/* 64-bit session counters under net.isboot.session. */
enum isboot_counter {
	ISBOOT_CNT_RECONNECTS,
	ISBOOT_CNT_COMMANDS,
	ISBOOT_CNT_BYTES_IN,
	ISBOOT_CNT_BYTES_OUT,
	ISBOOT_CNT_COUNT
};

/* ---- memory (M_ISBOOT) ---- */

/* wait: M_WAITOK (the caller may sleep and holds no lock), else M_NOWAIT. Returns NULL on
 * failure (M_NOWAIT only) or when align exceeds a page. */
void *isboot_malloc(size_t size, size_t align, int zero, int wait);
/* Only for allocations of alignment <= ISBOOT_MALLOC_ALIGN. */
void *isboot_realloc(void *ptr, size_t size, int wait);
void isboot_free(void *ptr);

/* ---- panic and console ---- */

void isboot_panic(const char *msg, size_t len) __dead2;
/* Prints "isboot: <msg>\n" on the console and in the message buffer. */
void isboot_log(const char *msg, size_t len);
/* net.isboot.debug, read atomically (it may change at any time). */
int isboot_debug_level(void);

/* ---- sysctl values and tunables ---- */

/* Copies (and NUL-terminates) s; returns 0, EINVAL for a bad index, or ENAMETOOLONG when s
 * was truncated. */
int isboot_str_set(unsigned int which, const char *s, size_t len);
void isboot_counter_add(unsigned int which, uint64_t n);
/* Clears every counter and string of net.isboot.session. */
void isboot_session_stats_reset(void);
int isboot_tunable_acpi_table(void);	/* hw.ibft.acpi_table */
int isboot_tunable_verbose(void);	/* hw.ibft.verbose */
/* Stores the value in use of a timeout sysctl (ignored for a bad index). */
void isboot_timeout_set(unsigned int which, int seconds);

/* ---- shutdown ---- */

/* Registers fn in shutdown_post_sync after every other handler (disks flush their caches
 * first); returns NULL on failure. */
void *isboot_shutdown_register(void (*fn)(void *, int), void *arg);
void isboot_shutdown_deregister(void *tag);
/* Registers fn in shutdown_pre_sync before every other handler (before the file systems are
 * synced); returns NULL on failure. */
void *isboot_shutdown_pre_register(void (*fn)(void *, int), void *arg);
void isboot_shutdown_pre_deregister(void *tag);
/* 0 while the kernel panics or the scheduler is stopped: nothing may wait for other threads. */
int isboot_shutdown_may_wait(void);

/* ---- finding the iBFT ---- */

/* Copies up to buflen bytes of ACPI table sig (4 characters) instance (1-based) into buf
 * (which may be NULL) and stores the table's length in *tablelen. Returns 0, ENOENT (no such
 * table), or ENXIO (no ACPI on this platform). */
int isboot_acpi_table_copy(const char *sig, uint32_t instance, void *buf, size_t buflen,
    size_t *tablelen);
/* 1 when the kernel was booted by UEFI (no legacy low-memory scan then). */
int isboot_efi_boot(void);
/* Maps physical memory for reading (pmap_mapbios); NULL when unavailable. */
void *isboot_mapbios(uint64_t pa, size_t len);
void isboot_unmapbios(void *va, size_t len);

/* ---- implemented in Rust (driver/kmod/src/module.rs), called by the module handler ---- */

int isboot_rust_load(void);
int isboot_rust_quiesce(void);
int isboot_rust_unload(void);

#endif
