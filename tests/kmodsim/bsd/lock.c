/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Mutexes (kern/kern_mutex.c, kern/subr_lock.c), a WITNESS-lite lock-order graph
 * (kern/subr_witness.c) and the network epoch (kern/subr_epoch.c).
 *
 * A KLD never inlines lock operations (sys/_lock.h: KLD_MODULE forces the function forms), so
 * every lock the module takes comes through here, and so do the harness's own locks (taskqueue,
 * callout, sockbuf, CAM), which are the kernel's locks of the same names and kinds. The mutex
 * word holds the owning struct thread exactly as in FreeBSD (MTX_UNOWNED, MTX_DESTROYED,
 * MTX_RECURSED), so the module's inline mtx_owned() reads give the right answer.
 */
#include "kpi.h"

#define mtxlock2mtx(c) (__containerof((c), struct mtx, mtx_lock))

static void lc_assert_mtx(const struct lock_object *lock, int what);
static void lc_lock_mtx(struct lock_object *lock, uintptr_t how);
static uintptr_t lc_unlock_mtx(struct lock_object *lock);
static void lc_lock_spin(struct lock_object *lock, uintptr_t how);
static uintptr_t lc_unlock_spin(struct lock_object *lock);

/* kern/subr_lock.c: index 0 spin, 1 sleep mutex, as lock_classes[] there. */
struct lock_class lock_class_mtx_spin = {
	.lc_name = "spin mutex",
	.lc_flags = LC_SPINLOCK | LC_RECURSABLE,
	.lc_assert = lc_assert_mtx,
	.lc_lock = lc_lock_spin,
	.lc_unlock = lc_unlock_spin,
};
struct lock_class lock_class_mtx_sleep = {
	.lc_name = "sleep mutex",
	.lc_flags = LC_SLEEPLOCK | LC_RECURSABLE,
	.lc_assert = lc_assert_mtx,
	.lc_lock = lc_lock_mtx,
	.lc_unlock = lc_unlock_mtx,
};
struct lock_class *lock_classes[LOCK_CLASS_MAX + 1] = {
	&lock_class_mtx_spin,
	&lock_class_mtx_sleep,
};

static int
is_spin(const struct lock_object *lo)
{
	return (LO_CLASSINDEX(lo) == 0);
}

/* ---- held-lock bookkeeping ---- */

const char *
held_names(void)
{
	struct kthr *k = kthr();
	char *buf = k->names;
	int i;

	buf[0] = '\0';
	for (i = 0; i < k->nheld; i++)
		kappend(buf, sizeof(k->names), "%s\"%s\"", i > 0 ? ", " : "", k->held[i]->lo_name);
	return (buf);
}

static void
held_push(struct lock_object *lo)
{
	struct kthr *k = kthr();

	if (k->nheld == KTHR_MAXHELD)
		host_panic("kmodsim: more than 16 locks held by one thread");
	k->held[k->nheld++] = lo;
	if (is_spin(lo))
		k->spin_held++;
	else
		curthread->td_locks++;
}

static void
held_pop(struct lock_object *lo)
{
	struct kthr *k = kthr();
	int i;

	for (i = k->nheld - 1; i >= 0; i--)
		if (k->held[i] == lo) {
			for (; i < k->nheld - 1; i++)
				k->held[i] = k->held[i + 1];
			k->nheld--;
			if (is_spin(lo))
				k->spin_held--;
			else
				curthread->td_locks--;
			return;
		}
}

/* ---- WITNESS-lite: lock classes are names, edges "held -> acquired" ---- */

#define W_MAX 96
static const char *w_name[W_MAX];
static unsigned char w_edge[W_MAX][W_MAX];	/* 1: first seen held-then-acquired */
static int w_n;
static struct mtx *w_giant;			/* Giant is sleepable across (WARN_GIANTOK) */
static int w_lock;				/* a tiny spin lock of the harness itself */

static void
w_acquire(void)
{
	while (__atomic_exchange_n(&w_lock, 1, __ATOMIC_ACQUIRE) != 0)
		host_yield();
}

static void
w_release(void)
{
	__atomic_store_n(&w_lock, 0, __ATOMIC_RELEASE);
}

static int
w_class(const char *name)
{
	int i;

	for (i = 0; i < w_n; i++)
		if (w_name[i] == name || kstreq(w_name[i], name))
			return (i);
	if (w_n == W_MAX)
		return (-1);
	w_name[w_n] = name;
	return (w_n++);
}

static int
w_reaches(int from, int to, int depth)
{
	int i;

	if (from == to)
		return (1);
	if (depth > W_MAX)
		return (0);
	for (i = 0; i < w_n; i++)
		if (w_edge[from][i] && w_reaches(i, to, depth + 1))
			return (1);
	return (0);
}

void
witness_reset(void)
{
	w_acquire();
	host_memset(w_edge, 0, sizeof(w_edge));
	w_n = 0;
	w_release();
}

/* kern/subr_witness.c witness_checkorder(): the checks before an acquisition. */
static void
w_checkorder(struct lock_object *lo)
{
	struct kthr *k = kthr();
	int i, to;

	if (!is_spin(lo) && k->spin_held > 0)
		rule(R_SLEEP_SPIN_HELD, "acquiring blockable sleep lock \"%s\" with spinlock held: %s",
		    lo->lo_name, held_names());
	if (k->nheld == 0)
		return;
	w_acquire();
	to = w_class(lo->lo_name);
	for (i = 0; i < k->nheld && to >= 0; i++) {
		struct lock_object *h = k->held[i];
		int from = w_class(h->lo_name);

		if (h == lo || from < 0)
			continue;
		if (from == to) {
			if ((lo->lo_flags & LO_DUPOK) == 0 || (h->lo_flags & LO_DUPOK) == 0) {
				w_release();
				rule(R_LOCK_ORDER, "acquiring duplicate lock of same type \"%s\"",
				    lo->lo_name);
				w_acquire();
			}
			continue;
		}
		/* Spin locks after sleep locks are the kernel's fixed order (checked above). */
		if (is_spin(lo) != is_spin(h))
			continue;
		if (!w_edge[from][to] && w_reaches(to, from, 0)) {
			w_release();
			rule(R_LOCK_ORDER, "lock order reversal: \"%s\" then \"%s\", established "
			    "order is the reverse", h->lo_name, lo->lo_name);
			w_acquire();
			continue;
		}
		w_edge[from][to] = 1;
	}
	w_release();
}

/* ---- mutex operations ---- */

static struct mtx *
checked(volatile uintptr_t *c, const char *op, int want_spin)
{
	struct mtx *m = mtxlock2mtx(c);

	stack_probe();
	if (m->mtx_lock == MTX_DESTROYED || (m->lock_object.lo_flags & LO_INITIALIZED) == 0) {
		rule(R_MTX_DESTROYED, "%s of a destroyed or uninitialised mutex %p", op, m);
		return (NULL);
	}
	if (is_spin(&m->lock_object) != want_spin) {
		rule(R_MTX_CLASS, "%s of %s mutex \"%s\"", op, want_spin ? "sleep" : "spin",
		    m->lock_object.lo_name);
		return (NULL);
	}
	return (m);
}

static void
acquire(struct mtx *m, int opts)
{
	uintptr_t tid = (uintptr_t)curthread, v;
	int spins = 0;

	if ((m->mtx_lock & ~MTX_FLAGMASK) == tid) {
		if ((m->lock_object.lo_flags & LO_RECURSABLE) == 0 && (opts & MTX_RECURSE) == 0)
			rule(R_MTX_RECURSE, "recursed on non-recursive mutex \"%s\"",
			    m->lock_object.lo_name);
		m->mtx_recurse++;
		__atomic_or_fetch(&m->mtx_lock, MTX_RECURSED, __ATOMIC_SEQ_CST);
		return;
	}
	w_checkorder(&m->lock_object);
	for (;;) {
		v = MTX_UNOWNED;
		if (__atomic_compare_exchange_n(&m->mtx_lock, &v, tid, 0, __ATOMIC_ACQUIRE,
		    __ATOMIC_RELAXED))
			break;
		if (v == MTX_DESTROYED) {
			rule(R_MTX_DESTROYED, "mutex \"%s\" destroyed while waiting for it",
			    m->lock_object.lo_name);
			return;
		}
		/* Contended: let the owner run (it may be on this CPU). */
		if (++spins > 64)
			host_sleep_ns(20000);
		else
			host_yield();
	}
	held_push(&m->lock_object);
}

static void
release(struct mtx *m, const char *op)
{
	uintptr_t tid = (uintptr_t)curthread;

	if ((m->mtx_lock & ~MTX_FLAGMASK) != tid) {
		rule(R_MTX_NOT_OWNER, "%s of mutex \"%s\" not owned by this thread", op,
		    m->lock_object.lo_name);
		return;
	}
	if (m->mtx_recurse > 0) {
		if (--m->mtx_recurse == 0)
			__atomic_and_fetch(&m->mtx_lock, ~(uintptr_t)MTX_RECURSED, __ATOMIC_SEQ_CST);
		return;
	}
	held_pop(&m->lock_object);
	__atomic_store_n(&m->mtx_lock, MTX_UNOWNED, __ATOMIC_RELEASE);
}

void
__mtx_lock_flags(volatile uintptr_t *c, int opts, const char *file __unused,
    int line __unused)
{
	struct mtx *m = checked(c, "mtx_lock()", 0);

	if (m != NULL)
		acquire(m, opts);
}

void
__mtx_unlock_flags(volatile uintptr_t *c, int opts __unused, const char *file __unused,
    int line __unused)
{
	struct mtx *m = checked(c, "mtx_unlock()", 0);

	if (m != NULL)
		release(m, "mtx_unlock()");
}

void
__mtx_lock_spin_flags(volatile uintptr_t *c, int opts, const char *file __unused,
    int line __unused)
{
	struct mtx *m = checked(c, "mtx_lock_spin()", 1);

	if (m != NULL)
		acquire(m, opts);
}

void
__mtx_unlock_spin_flags(volatile uintptr_t *c, int opts __unused, const char *file __unused,
    int line __unused)
{
	struct mtx *m = checked(c, "mtx_unlock_spin()", 1);

	if (m != NULL)
		release(m, "mtx_unlock_spin()");
}

/* kern/kern_mutex.c _mtx_init -> kern/subr_lock.c lock_init. */
void
_mtx_init(volatile uintptr_t *c, const char *name, const char *type __unused, int opts)
{
	struct mtx *m = mtxlock2mtx(c);
	u_int flags = LO_INITIALIZED;

	stack_probe();
	if ((m->lock_object.lo_flags & LO_INITIALIZED) != 0 && m->mtx_lock != MTX_DESTROYED)
		rule(R_MTX_REINIT, "lock \"%s\" %p already initialized", name, m);
	if (opts & MTX_RECURSE)
		flags |= LO_RECURSABLE;
	if (opts & MTX_DUPOK)
		flags |= LO_DUPOK;
	if ((opts & MTX_NOWITNESS) == 0)
		flags |= LO_WITNESS;
	flags |= (u_int)((opts & MTX_SPIN) ? 0 : 1) << LO_CLASSSHIFT;
	m->lock_object.lo_name = name;
	m->lock_object.lo_flags = flags;
	m->lock_object.lo_data = 0;
	m->mtx_recurse = 0;
	m->mtx_lock = MTX_UNOWNED;
}

/* kern/kern_mutex.c _mtx_destroy: owned by us is fine, owned by another thread is not. */
void
_mtx_destroy(volatile uintptr_t *c)
{
	struct mtx *m = mtxlock2mtx(c);
	uintptr_t owner = m->mtx_lock & ~MTX_FLAGMASK;

	stack_probe();
	if ((m->lock_object.lo_flags & LO_INITIALIZED) == 0 || m->mtx_lock == MTX_DESTROYED) {
		rule(R_MTX_DESTROYED, "lock %p (\"%s\") is not initialized", m,
		    m->lock_object.lo_name != NULL ? m->lock_object.lo_name : "?");
		return;
	}
	if (owner == (uintptr_t)curthread)
		held_pop(&m->lock_object);
	else if (m->mtx_lock != MTX_UNOWNED)
		rule(R_MTX_DESTROY_BUSY, "mtx_destroy of \"%s\" held by another thread",
		    m->lock_object.lo_name);
	m->mtx_lock = MTX_DESTROYED;
	m->lock_object.lo_flags &= ~LO_INITIALIZED;
}

/* kern/kern_mutex.c mtx_sysinit (MTX_SYSINIT). */
void
#if __FreeBSD_version >= 1500000
mtx_sysinit(const void *arg)
#else
mtx_sysinit(void *arg)
#endif
{
	const struct mtx_args *margs = arg;

	mtx_init((struct mtx *)margs->ma_mtx, margs->ma_desc, NULL, margs->ma_opts);
}

int
mtx_is_owned(struct mtx *m)
{
	return ((m->mtx_lock & ~MTX_FLAGMASK) == (uintptr_t)curthread);
}

static void
lc_assert_mtx(const struct lock_object *lock, int what)
{
	const struct mtx *m = __containerof(lock, struct mtx, lock_object);
	int owned = (m->mtx_lock & ~MTX_FLAGMASK) == (uintptr_t)curthread;

	if ((what & (LA_XLOCKED | LA_LOCKED)) != 0 && !owned)
		rule(R_MTX_NOT_OWNER, "lock \"%s\" not owned", lock->lo_name);
}

static void
lc_lock_mtx(struct lock_object *lock, uintptr_t how __unused)
{
	mtx_lock(__containerof(lock, struct mtx, lock_object));
}

static uintptr_t
lc_unlock_mtx(struct lock_object *lock)
{
	mtx_unlock(__containerof(lock, struct mtx, lock_object));
	return (0);
}

static void
lc_lock_spin(struct lock_object *lock, uintptr_t how __unused)
{
	mtx_lock_spin(__containerof(lock, struct mtx, lock_object));
}

static uintptr_t
lc_unlock_spin(struct lock_object *lock)
{
	mtx_unlock_spin(__containerof(lock, struct mtx, lock_object));
	return (0);
}

/*
 * sx locks (kern/kern_sx.c), exclusive use only: a KLD calls _sx_xlock/_sx_xunlock. An sx is
 * sleepable: taking one may sleep, so it may not be taken with a mutex held (subr_witness.c
 * orders sleepable locks before non-sleepable ones; Giant is the exception).
 */
int
_sx_xlock(struct sx *sx, int opts __unused, const char *file __unused, int line __unused)
{
	uintptr_t tid = (uintptr_t)curthread, v;

	stack_probe();
	if ((sx->lock_object.lo_flags & LO_INITIALIZED) == 0) {
		rule(R_MTX_DESTROYED, "sx_xlock of an uninitialised sx %p", sx);
		return (0);
	}
	may_sleep("sx_xlock");
	if (sx->sx_lock == tid) {
		rule(R_MTX_RECURSE, "recursed on non-recursive sx \"%s\"", sx->lock_object.lo_name);
		return (0);
	}
	for (;;) {
		v = SX_LOCK_UNLOCKED;
		if (__atomic_compare_exchange_n(&sx->sx_lock, &v, tid, 0, __ATOMIC_ACQUIRE,
		    __ATOMIC_RELAXED))
			break;
		host_sleep_ns(100000);
	}
	return (0);
}

void
_sx_xunlock(struct sx *sx, const char *file __unused, int line __unused)
{
	stack_probe();
	if (sx->sx_lock != (uintptr_t)curthread) {
		rule(R_MTX_NOT_OWNER, "sx_xunlock of \"%s\" not held by this thread",
		    sx->lock_object.lo_name);
		return;
	}
	__atomic_store_n(&sx->sx_lock, SX_LOCK_UNLOCKED, __ATOMIC_RELEASE);
}

void
kmodsim_sx_init(struct sx *sx, const char *name)
{
	sx->lock_object.lo_name = name;
	sx->lock_object.lo_flags = LO_INITIALIZED | LO_SLEEPABLE;
	sx->sx_lock = SX_LOCK_UNLOCKED;
}

int
kmodsim_sx_owned(struct sx *sx)
{
	return (sx->sx_lock == (uintptr_t)curthread);
}

/* Giant: module events run under it (kern/kern_module.c module_register_init). */
struct mtx Giant;

int
giant_held(void)
{
	return (mtx_is_owned(&Giant));
}

void
lock_init_giant(void)
{
	mtx_init(&Giant, "Giant", NULL, MTX_DEF | MTX_RECURSE);
	w_giant = &Giant;
}

/* Locks held except Giant, which _sleep drops and retakes (WARN_GIANTOK). */
int
locks_held_except_giant(void)
{
	struct kthr *k = kthr();
	int i, n = 0;

	for (i = 0; i < k->nheld; i++)
		if (w_giant == NULL || k->held[i] != &w_giant->lock_object)
			n++;
	return (n);
}

/* ---- the network epoch (kern/subr_epoch.c) ---- */

static char net_epoch_store[64];
epoch_t net_epoch_preempt = (epoch_t)net_epoch_store;
int kmodsim_epoch_trace;		/* emulate a kernel built with options EPOCH_TRACE */
static unsigned long text_lo, text_hi;

/* The layout an EPOCH_TRACE kernel uses (sys/epoch.h under #ifdef EPOCH_TRACE). */
struct epoch_tracker_trace {
	TAILQ_ENTRY(epoch_tracker) et_link;
	struct thread *et_td;
	ck_epoch_section_t et_section;
	uint8_t et_old_priority;
	struct epoch *et_epoch;
	SLIST_ENTRY(epoch_tracker) et_tlink;
	const char *et_file;
	int et_line;
	int et_flags;
} __aligned(sizeof(void *));

void
kpi_epoch_trace(int on)
{
	kmodsim_epoch_trace = on;
}

void
kpi_text_range(unsigned long lo, unsigned long hi)
{
	text_lo = lo;
	text_hi = hi;
}

static int
plausible_file(const char *file)
{
	unsigned long a = (unsigned long)file;
	int n;

	if (a < text_lo || a >= text_hi)
		return (0);
	for (n = 0; n < 256 && file[n] != '\0'; n++)
		if (file[n] < 0x20 || file[n] > 0x7e)
			return (0);
	return (n > 2 && file[n] == '\0');
}

/*
 * kern/subr_epoch.c _epoch_enter_preempt: THREAD_NO_SLEEPING(), the tracker linked on the
 * epoch's record. Built with EPOCH_TRACE the kernel's function takes (epoch, et, file, line)
 * and fills the trace fields of a larger tracker; in that mode the harness does the same.
 */
void kmodsim_epoch_enter(epoch_t, epoch_tracker_t, const char *, int)
    __asm__("_epoch_enter_preempt");
void kmodsim_epoch_exit(epoch_t, epoch_tracker_t, const char *, int)
    __asm__("_epoch_exit_preempt");

void
kmodsim_epoch_enter(epoch_t epoch, epoch_tracker_t et, const char *file, int line)
{
	struct kthr *k = kthr();

	stack_probe();
	if (epoch != net_epoch_preempt)
		rule(R_EPOCH_BALANCE, "epoch_enter_preempt of an unknown epoch %p", epoch);
	if (kmodsim_epoch_trace) {
		struct epoch_tracker_trace *t = (void *)et;

		if (!plausible_file(file))
			rule(R_EPOCH_BALANCE, "EPOCH_TRACE kernel: _epoch_enter_preempt(epoch, et, "
			    "file, line) got no file/line: the caller was built without the "
			    "kernel's EPOCH_TRACE option, its tracker is %zu bytes short and the "
			    "kernel writes past it", sizeof(struct epoch_tracker_trace) -
			    sizeof(struct epoch_tracker));
		t->et_epoch = (struct epoch *)epoch;
		t->et_file = file;
		t->et_line = line;
		t->et_flags = 0;
	}
	et->et_td = curthread;
	k->epoch_nest++;
}

void
kmodsim_epoch_exit(epoch_t epoch __unused, epoch_tracker_t et, const char *file __unused,
    int line __unused)
{
	struct kthr *k = kthr();

	stack_probe();
	if (k->epoch_nest <= 0 || et->et_td != curthread) {
		rule(R_EPOCH_BALANCE, "epoch_exit_preempt without a matching enter");
		return;
	}
	k->epoch_nest--;
}

int
in_net_epoch(void)
{
	return (kthr()->epoch_nest > 0);
}
