/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Loading and unloading a KLD (kern/kern_linker.c linker_load_file/linker_file_unload,
 * kern/kern_module.c module_register_init/module_unload), its linker sets (sysinit, sysuninit,
 * modmetadata, sysctl), static sysctls and tunables (kern/kern_sysctl.c, kern/kern_environment.c),
 * event handlers (kern/subr_eventhandler.c), root mount holds (kern/vfs_mountroot.c) and the
 * shutdown sequence (kern/kern_shutdown.c kern_reboot).
 */
#include <sys/reboot.h>

#include "kpi.h"

#include <sys/kenv.h>

SET_DECLARE(sysinit_set, struct sysinit);
SET_DECLARE(sysuninit_set, struct sysinit);
SET_DECLARE(modmetadata_set, struct mod_metadata);
SET_DECLARE(sysctl_set, struct sysctl_oid);

/* ---- kenv (kern/kern_environment.c) ---- */

/*
 * The kernel environment after init_dynamic_kenv: "name=value" strings the loader passed
 * (kpi_tunable, before load). As init_dynamic_kenv_from does, a string longer than
 * KENV_MNAMELEN + 1 + kenv_mvallen + 1 bytes with its NUL is dropped with the kernel's warning,
 * so a test sees what a real boot would keep.
 */
#define KENV_MAX 64
#define KENV_ENTRY_MAX (KENV_MNAMELEN + 1 + KENV_MVALLEN + 1)
static char *kenv_entries[KENV_MAX];
static int kenv_n;
/* kern_getenv copies handed out and not released with freeenv yet. */
#define KENV_COPIES 32
static char *kenv_copies[KENV_COPIES];
static int kenv_copies_total;

static char *
kenv_dup(const char *s)
{
	hsize_t n = strlen(s) + 1;
	char *d = kmem_alloc(n);

	host_memcpy(d, s, n);
	return (d);
}

/* Whether entry is "name=...". */
static int
kenv_is(const char *entry, const char *name)
{
	while (*name != '\0' && *entry == *name)
		entry++, name++;
	return (*name == '\0' && *entry == '=');
}

/* explicit_bzero and free, as zfree(M_KENV) does for unset entries. */
static void
kenv_zfree(char *p)
{
	host_memset(p, 0, strlen(p));
	kmem_free(p);
}

void
kpi_tunable(const char *name, const char *value)
{
	char buf[1024];
	int i;

	if (strlen(name) + 1 + strlen(value) + 1 > KENV_ENTRY_MAX) {
		printf("WARNING: too long kenv string, ignoring %s=%s\n", name, value);
		return;
	}
	snprintf(buf, sizeof(buf), "%s=%s", name, value);
	for (i = 0; i < kenv_n; i++) {
		if (kenv_is(kenv_entries[i], name)) {
			kenv_zfree(kenv_entries[i]);
			kenv_entries[i] = kenv_dup(buf);
			return;
		}
	}
	if (kenv_n == KENV_MAX)
		host_panic("kmodsim: too many tunables");
	kenv_entries[kenv_n++] = kenv_dup(buf);
}

/* _getenv_dynamic_locked: the value of name, or NULL (and its index). */
static const char *
kenv_get_idx(const char *name, int *idx)
{
	hsize_t n = strlen(name);
	int i;

	for (i = 0; i < kenv_n; i++)
		if (kenv_is(kenv_entries[i], name)) {
			if (idx != NULL)
				*idx = i;
			return (kenv_entries[i] + n + 1);
		}
	return (NULL);
}

static const char *
kenv_get(const char *name)
{
	return (kenv_get_idx(name, NULL));
}

/*
 * kern_getenv: a copy from kenv_zone (uma_zalloc M_WAITOK: it may sleep; the value is copied
 * under kenv_lock, a sleep mutex), owned by the caller until freeenv.
 */
char *
kern_getenv(const char *name)
{
	const char *v;
	char *ret;
	int i;

	may_sleep("kern_getenv");
	v = kenv_get(name);
	if (v == NULL)
		return (NULL);
	ret = kmem_alloc(KENV_ENTRY_MAX);
	host_memset(ret, 0, KENV_ENTRY_MAX);
	strlcpy(ret, v, KENV_ENTRY_MAX);
	for (i = 0; i < KENV_COPIES; i++)
		if (kenv_copies[i] == NULL) {
			kenv_copies[i] = ret;
			kenv_copies_total++;
			return (ret);
		}
	host_panic("kmodsim: too many kern_getenv copies outstanding");
}

/* freeenv: explicit_bzero and uma_zfree(kenv_zone) of a kern_getenv copy; NULL is fine. */
void
freeenv(char *env)
{
	int i;

	if (env == NULL)
		return;
	for (i = 0; i < KENV_COPIES; i++)
		if (kenv_copies[i] == env) {
			kenv_copies[i] = NULL;
			host_memset(env, 0, KENV_ENTRY_MAX);
			kmem_free(env);
			return;
		}
	rule(R_KENV_FREE, "freeenv(%p): not a copy kern_getenv returned", env);
}

/* kern_unsetenv: 0, or -1 when unset; the entry is zeroed and freed (zfree M_KENV). */
int
kern_unsetenv(const char *name)
{
	int i, j;

	may_sleep("kern_unsetenv");
	if (kenv_get_idx(name, &i) == NULL)
		return (-1);
	kenv_zfree(kenv_entries[i]);
	for (j = i + 1; j < kenv_n; j++)
		kenv_entries[j - 1] = kenv_entries[j];
	kenv_entries[--kenv_n] = NULL;
	return (0);
}

int
kpi_kenv_get(const char *name, char *buf, hsize_t len)
{
	const char *v = kenv_get(name);

	if (v == NULL)
		return (0);
	strlcpy(buf, v, len);
	return (1);
}

int
kpi_kenv_copies_out(void)
{
	int i, n = 0;

	for (i = 0; i < KENV_COPIES; i++)
		n += kenv_copies[i] != NULL;
	return (n);
}

static long long
parse_ll(const char *s)
{
	long long v = 0;
	int neg = 0;

	if (*s == '-')
		neg = 1, s++;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return (neg ? -v : v);
}

/* ---- sysctl ---- */

struct sysctl_oid_list sysctl__children;
struct sysctl_oid sysctl___hw = { .oid_parent = &sysctl__children, .oid_name = "hw",
    .oid_kind = CTLTYPE_NODE | CTLFLAG_RW, .oid_number = CTL_HW };
struct sysctl_oid sysctl___net = { .oid_parent = &sysctl__children, .oid_name = "net",
    .oid_kind = CTLTYPE_NODE | CTLFLAG_RW, .oid_number = CTL_NET };

#define OID_MAX 64
static struct sysctl_oid *oids[OID_MAX];
static char oid_names[OID_MAX][96];
static int noids;
static int sysctls_registered;

static void
oid_fullname(struct sysctl_oid *oidp, char *buf, hsize_t len)
{
	const char *parts[8];
	int n = 0, i;

	while (oidp != NULL && n < 8) {
		parts[n++] = oidp->oid_name;
		if (oidp->oid_parent == &sysctl__children || oidp->oid_parent == NULL)
			break;
		oidp = __containerof(oidp->oid_parent, struct sysctl_oid, oid_children);
	}
	buf[0] = '\0';
	for (i = n - 1; i >= 0; i--)
		kappend(buf, len, "%s%s", i == n - 1 ? "" : ".", parts[i]);
}

/*
 * kern/kern_sysctl.c sysctl_register_oid -> sysctl_load_tunable_by_oid_locked: a CTLFLAG_TUN
 * oid takes its kenv value when registered, i.e. before the module's SYSINITs run.
 */
static void
sysctls_register(void)
{
	struct sysctl_oid **oidpp;

	SET_FOREACH(oidpp, sysctl_set) {
		struct sysctl_oid *oidp = *oidpp;
		const char *v;

		if (noids == OID_MAX)
			host_panic("kmodsim: too many sysctl oids");
		oids[noids] = oidp;
		oid_fullname(oidp, oid_names[noids], sizeof(oid_names[0]));
		if ((oidp->oid_kind & CTLFLAG_TUN) != 0 &&
		    (v = kenv_get(oid_names[noids])) != NULL) {
			switch (oidp->oid_kind & CTLTYPE) {
			case CTLTYPE_INT:
				*(int *)oidp->oid_arg1 = (int)parse_ll(v);
				break;
			case CTLTYPE_U64:
			case CTLTYPE_S64:
				*(int64_t *)oidp->oid_arg1 = parse_ll(v);
				break;
			default:
				break;
			}
			kpi_log("tunable %s=%s", oid_names[noids], v);
		}
		noids++;
	}
	sysctls_registered = 1;
	kpi_log("%d sysctl oids registered from set_sysctl_set", noids);
}

static int
sysctl_old_kernel(struct sysctl_req *req, const void *p, size_t l)
{
	size_t i = 0;

	if (req->oldptr != NULL && req->oldidx <= req->oldlen) {
		i = l;
		if (req->oldlen - req->oldidx < l)
			i = req->oldlen - req->oldidx;
		if (i > 0)
			host_memcpy((char *)req->oldptr + req->oldidx, p, i);
	}
	req->oldidx += l;
	if (req->oldptr != NULL && i != l)
		return (ENOMEM);
	return (0);
}

static int
sysctl_new_none(struct sysctl_req *req __unused, void *p __unused, size_t l __unused)
{
	return (0);
}

/* kern/kern_sysctl.c sysctl_handle_string: copies out the string with its NUL. */
int
sysctl_handle_string(SYSCTL_HANDLER_ARGS)
{
	char *s = arg1;
	size_t outlen = strlen(s) + 1;

	(void)oidp;
	if (arg2 > 0 && outlen > (size_t)arg2)
		outlen = (size_t)arg2;
	return (SYSCTL_OUT(req, s, outlen));
}

int
sysctl_handle_int(SYSCTL_HANDLER_ARGS)
{
	int v = arg1 != NULL ? *(int *)arg1 : (int)arg2;

	(void)oidp;
	return (SYSCTL_OUT(req, &v, sizeof(v)));
}

int
sysctl_handle_64(SYSCTL_HANDLER_ARGS)
{
	uint64_t v = arg1 != NULL ? __atomic_load_n((uint64_t *)arg1, __ATOMIC_RELAXED) :
	    (uint64_t)arg2;

	(void)oidp;
	return (SYSCTL_OUT(req, &v, sizeof(v)));
}

static int
sysctl_read(const char *name, void *buf, hsize_t len, hsize_t *got)
{
	struct sysctl_req req;
	int i, error;

	if (!sysctls_registered)
		return (ENOENT);
	for (i = 0; i < noids; i++) {
		struct sysctl_oid *oidp = oids[i];

		if (!kstreq(oid_names[i], name))
			continue;
		if (oidp->oid_handler == NULL)
			return (EISDIR);
		host_memset(&req, 0, sizeof(req));
		req.td = curthread;
		req.oldptr = buf;
		req.oldlen = len;
		req.oldfunc = sysctl_old_kernel;
		req.newfunc = sysctl_new_none;
		req.validlen = len;
		error = oidp->oid_handler(oidp, oidp->oid_arg1, oidp->oid_arg2, &req);
		*got = req.oldidx;
		return (error);
	}
	return (ENOENT);
}

int
kpi_sysctl_str(const char *name, char *buf, hsize_t len)
{
	hsize_t got = 0;
	int error;

	buf[0] = '\0';
	error = sysctl_read(name, buf, len, &got);
	if (len > 0)
		buf[len - 1] = '\0';
	return (error);
}

int
kpi_sysctl_u64(const char *name, hu64 *value)
{
	hsize_t got = 0;
	uint64_t v64 = 0;
	int error;

	error = sysctl_read(name, &v64, sizeof(v64), &got);
	if (error == 0 && got == sizeof(int))
		v64 = (uint64_t)(int64_t)*(int *)&v64;
	*value = v64;
	return (error);
}

/* ---- event handlers ---- */

struct kevh {
	struct eventhandler_entry ee;	/* first: the tag the module holds points here */
	void (*func)(void *, int);
	struct kevh *next;
	int dead;
};

#define EVH_LISTS 4
static struct eventhandler_list evh_lists[EVH_LISTS];
static char evh_names[EVH_LISTS][32];
static struct kevh *evh_entries[EVH_LISTS];
static int evh_n;
static void *evh_cv;

static struct eventhandler_list *
evh_list(const char *name, int create)
{
	int i;

	for (i = 0; i < evh_n; i++)
		if (kstreq(evh_names[i], name))
			return (&evh_lists[i]);
	if (!create || evh_n == EVH_LISTS)
		return (NULL);
	strlcpy(evh_names[evh_n], name, sizeof(evh_names[0]));
	evh_lists[evh_n].el_name = evh_names[evh_n];
	return (&evh_lists[evh_n++]);
}

struct eventhandler_list *
eventhandler_find_list(const char *name)
{
	stack_probe();
	return (evh_list(name, 0));
}

/* kern/subr_eventhandler.c eventhandler_register: M_WAITOK allocation, priority order. */
eventhandler_tag
eventhandler_register(struct eventhandler_list *list, const char *name, void *func, void *arg,
    int priority)
{
	struct kevh *e, **pp;
	int li;

	stack_probe();
	may_sleep("eventhandler_register (malloc M_WAITOK)");
	if (list == NULL)
		list = evh_list(name, 1);
	if (list == NULL)
		host_panic("kmodsim: too many event handler lists");
	li = (int)(list - evh_lists);
	e = kmem_alloc(sizeof(*e));
	e->ee.ee_priority = priority;
	e->ee.ee_arg = arg;
	e->func = (void (*)(void *, int))func;
	host_cv_lock(evh_cv);
	for (pp = &evh_entries[li]; *pp != NULL && (*pp)->ee.ee_priority <= priority;
	    pp = &(*pp)->next)
		;
	e->next = *pp;
	*pp = e;
	host_cv_unlock(evh_cv);
	kpi_log("eventhandler_register(%s, pri %d)", list->el_name, priority);
	return (&e->ee);
}

/* kern/subr_eventhandler.c _eventhandler_deregister: waits while the list runs (sleeps). */
void
eventhandler_deregister(struct eventhandler_list *list, eventhandler_tag tag)
{
	struct kevh **pp, *e = NULL;
	int li = (int)(list - evh_lists);

	stack_probe();
	may_sleep("eventhandler_deregister");
	host_cv_lock(evh_cv);
	for (pp = &evh_entries[li]; *pp != NULL; pp = &(*pp)->next)
		if (&(*pp)->ee == tag) {
			e = *pp;
			*pp = e->next;
			break;
		}
	host_cv_unlock(evh_cv);
	if (e == NULL) {
		rule(R_EVENTHANDLER, "eventhandler_deregister(%s) of a tag not on the list",
		    list->el_name);
		return;
	}
	kmem_free(e);
}

int
eventhandler_invoke(const char *name, int howto)
{
	struct eventhandler_list *list = evh_list(name, 0);
	struct kevh *e;
	int li, n = 0;

	if (list == NULL)
		return (0);
	li = (int)(list - evh_lists);
	/* Handlers are called without the list lock; deregistration waits (el_runcount). */
	for (e = evh_entries[li]; e != NULL; e = e->next) {
		int before = kthr()->nheld;

		kpi_log("invoking %s handler (pri %d)", name, e->ee.ee_priority);
		e->func(e->ee.ee_arg, howto);
		if (kthr()->nheld != before)
			rule(R_CONTEXT_LOCKS, "%s handler returned with locks held: %s", name,
			    held_names());
		n++;
	}
	return (n);
}

static int
evh_count(void)
{
	int i, n = 0;
	struct kevh *e;

	for (i = 0; i < evh_n; i++)
		for (e = evh_entries[i]; e != NULL; e = e->next)
			n++;
	return (n);
}

/* ---- root mount holds ---- */

/* struct root_hold_token is sys/systm.h's; flags 1 while held. */
static TAILQ_HEAD(, root_hold_token) holds = TAILQ_HEAD_INITIALIZER(holds);
static void *hold_cv;

struct root_hold_token *
root_mount_hold(const char *identifier)
{
	struct root_hold_token *h;

	stack_probe();
	/* kern/vfs_mountroot.c root_mount_hold: malloc(M_DEVBUF, M_ZERO | M_WAITOK). */
	may_sleep("root_mount_hold (malloc M_WAITOK)");
	h = kmem_alloc(sizeof(*h));
	h->who = identifier;
	h->flags = 1;
	host_cv_lock(hold_cv);
	TAILQ_INSERT_TAIL(&holds, h, list);
	host_cv_unlock(hold_cv);
	kpi_log("root_mount_hold(%s)", identifier);
	return (h);
}

void
root_mount_rel(struct root_hold_token *h)
{
	int found;

	stack_probe();
	if (h == NULL)
		return;
	host_cv_lock(hold_cv);
	found = h->flags == 1;
	if (found) {
		TAILQ_REMOVE(&holds, h, list);
		h->flags = 0;
	}
	host_cv_broadcast(hold_cv);
	host_cv_unlock(hold_cv);
	if (!found) {
		rule(R_ROOT_HOLD, "root_mount_rel of a token not held (released twice?)");
		return;
	}
	kpi_log("root_mount_rel(%s)", h->who);
	/* The token stays allocated (flags 0) so that a second release is caught. */
}

int
root_holds(void)
{
	struct root_hold_token *h;
	int n = 0;

	host_cv_lock(hold_cv);
	TAILQ_FOREACH(h, &holds, list)
		n++;
	host_cv_unlock(hold_cv);
	return (n);
}

/* vfs_mountroot_wait: mountroot goes on once no hold is left. */
int
kpi_wait_root(int ms)
{
	hu64 deadline = host_now_ns() + (hu64)ms * 1000000ULL;
	int timeout = 0;

	host_cv_lock(hold_cv);
	while (!TAILQ_EMPTY(&holds) && !timeout)
		timeout = host_cv_wait(hold_cv, deadline);
	timeout = !TAILQ_EMPTY(&holds);
	host_cv_unlock(hold_cv);
	return (timeout ? ETIMEDOUT : 0);
}

/* ---- the module ---- */

static int loaded;		/* the file is linked */
static int mod_loaded;		/* MOD_LOAD succeeded and no MOD_UNLOAD since */
static moduledata_t *modp;

static int
sysinit_before(const struct sysinit *a, const struct sysinit *b)
{
	if (a->subsystem != b->subsystem)
		return (a->subsystem < b->subsystem);
	return (a->order < b->order);
}

/* kern/kern_linker.c linker_file_sysinit: sorted by subsystem, then order. */
static void
run_set(struct sysinit **start, struct sysinit **stop, int reverse)
{
	struct sysinit *list[32];
	struct sysinit **sipp;
	int n = 0, i, j;

	for (sipp = start; sipp < stop; sipp++)
		if (n < 32)
			list[n++] = *sipp;
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && sysinit_before(list[j], list[j - 1]); j--) {
			struct sysinit *t = list[j];

			list[j] = list[j - 1];
			list[j - 1] = t;
		}
	for (i = 0; i < n; i++) {
		struct sysinit *si = list[reverse ? n - 1 - i : i];

		kpi_log("%s subsystem %#x order %#x", reverse ? "sysuninit" : "sysinit",
		    si->subsystem, si->order);
		(*si->func)(si->udata);
	}
}

/* kern/kern_module.c module_register_init: MOD_LOAD under Giant; on error MOD_UNLOAD. */
static int load_error;

void
#if __FreeBSD_version >= 1500000
module_register_init(const void *arg)
#else
module_register_init(const void *arg)
#endif
{
	const moduledata_t *data = arg;
	int error;

	modp = __DECONST(moduledata_t *, data);
	mtx_lock(&Giant);
	error = data->evhand(NULL, MOD_LOAD, data->priv);
	if (error != 0) {
		(void)data->evhand(NULL, MOD_UNLOAD, data->priv);
		printf("module_register_init: MOD_LOAD (%s, %p, %p) error %d\n", data->name,
		    (void *)data->evhand, data->priv, error);
	} else
		mod_loaded = 1;
	mtx_unlock(&Giant);
	load_error = error;
}

int
module_load_all(void)
{
	struct mod_metadata **mdpp;

	SET_FOREACH(mdpp, modmetadata_set)
		kpi_log("modmetadata: type %d name %s", (*mdpp)->md_type, (*mdpp)->md_cval);
	/* kern/kern_linker.c linker_load_file: sysctls first (tunables), then SYSINITs. */
	sysctls_register();
	load_error = 0;
	run_set(SET_BEGIN(sysinit_set), SET_LIMIT(sysinit_set), 0);
	loaded = 1;
	if (load_error != 0) {
		/*
		 * "If all of the modules in this file failed to load, unload the file and return
		 * an error of ENOEXEC" (linker_load_file). A preloaded module stays linked
		 * instead: its sysctls stay readable, which is what the harness keeps here so the
		 * scenario can look at them; the SYSUNINITs run with the final checks.
		 */
		kpi_log("kldload: MOD_LOAD failed with %d: ENOEXEC", load_error);
		return (ENOEXEC);
	}
	return (0);
}

int
kpi_load(void)
{
	int e = module_load_all();

	kpi_log("kldload result: %d", e);
	return (e);
}

/* kern/kern_module.c module_unload: MOD_QUIESCE, then MOD_UNLOAD, under Giant. */
int
module_unload_all(void)
{
	int error;

	if (!loaded)
		return (ENOENT);
	if (mod_loaded) {
		mtx_lock(&Giant);
		error = modp->evhand(NULL, MOD_QUIESCE, modp->priv);
		if (error == EOPNOTSUPP || error == EINVAL)
			error = 0;
		kpi_log("MOD_QUIESCE: %d", error);
		if (error == 0) {
			error = modp->evhand(NULL, MOD_UNLOAD, modp->priv);
			kpi_log("MOD_UNLOAD: %d", error);
		}
		mtx_unlock(&Giant);
		if (error != 0)
			return (error);
		mod_loaded = 0;
	}
	/* kern/kern_linker.c linker_file_unload: SYSUNINITs, then the sysctls go. */
	run_set(SET_BEGIN(sysuninit_set), SET_LIMIT(sysuninit_set), 0);
	sysctls_registered = 0;
	loaded = 0;
	return (0);
}

int
kpi_unload(void)
{
	return (module_unload_all());
}

int
kpi_shutdown_pre_sync(void)
{
	return (eventhandler_invoke("shutdown_pre_sync", RB_AUTOBOOT) >= 0 ? 0 : EIO);
}

int
kpi_shutdown_post_sync(void)
{
	return (eventhandler_invoke("shutdown_post_sync", RB_AUTOBOOT) >= 0 ? 0 : EIO);
}

void
module_final_checks(int unloaded)
{
	if (kpi_kenv_copies_out() != 0)
		rule(R_KENV_COPY, "%d kern_getenv copies never released with freeenv",
		    kpi_kenv_copies_out());
	if (!unloaded)
		return;
	if (evh_count() != 0)
		rule(R_EVENTHANDLER, "%d event handlers left registered by the unloaded module",
		    evh_count());
	if (root_holds() != 0)
		rule(R_ROOT_HOLD, "%d root mount holds left at unload", root_holds());
}

void
module_init(void)
{
	if (hold_cv != NULL)
		return;
	hold_cv = host_cv_new();
	evh_cv = host_cv_new();
	lock_init_giant();
}

int
module_is_loaded(void)
{
	return (loaded);
}
