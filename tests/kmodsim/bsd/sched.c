/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Thread taskqueues (kern/subr_taskqueue.c) and callouts (kern/kern_timeout.c), with their real
 * semantics: a pending task is queued once (ta_pending counts the extra enqueues), a running
 * task may be queued again, drain waits for pending and running, free runs what is left and
 * stops the threads; a callout with a lock runs with it held, a callout_stop under that lock
 * cancels a run that is waiting for it, callout_drain waits for a running handler.
 */
#include "kpi.h"

/* ---- taskqueues ---- */

#define TQ_MAX 4
#define TQ_TASKS 64

struct taskqueue {
	char name[32];
	struct mtx tq_mutex;		/* the kernel's TQ lock (MTX_DEF, named like the queue) */
	void *cv;			/* the harness's own bookkeeping and sleep */
	taskqueue_enqueue_fn enqueue;
	void *context;
	struct task *queue[TQ_TASKS];	/* FIFO of pending tasks */
	int nqueued;
	struct task *running;
	int threads;			/* started */
	int alive;			/* still running */
	int active;			/* TQ_FLAGS_ACTIVE */
	int freed;
	struct thread *td;		/* its (one) thread */
};

static struct taskqueue *tqs[TQ_MAX];
static void *sched_cv;			/* guards tqs[] and the callout wheel */

static void
tq_register(struct taskqueue *tq)
{
	int i;

	host_cv_lock(sched_cv);
	for (i = 0; i < TQ_MAX; i++)
		if (tqs[i] == NULL) {
			tqs[i] = tq;
			break;
		}
	host_cv_unlock(sched_cv);
	if (i == TQ_MAX)
		host_panic("kmodsim: too many taskqueues");
}

int
taskqueues_live(void)
{
	int i, n = 0;

	host_cv_lock(sched_cv);
	for (i = 0; i < TQ_MAX; i++)
		if (tqs[i] != NULL)
			n++;
	host_cv_unlock(sched_cv);
	return (n);
}

/* kern/subr_taskqueue.c taskqueue_create -> _taskqueue_create: malloc(mflags | M_ZERO). */
struct taskqueue *
taskqueue_create(const char *name, int mflags, taskqueue_enqueue_fn enqueue, void *context)
{
	struct taskqueue *tq;

	stack_probe();
	if (mflags & M_WAITOK)
		may_sleep("taskqueue_create(M_WAITOK)");
	tq = kmem_alloc(sizeof(*tq));
	strlcpy(tq->name, name != NULL ? name : "taskqueue", sizeof(tq->name));
	mtx_init(&tq->tq_mutex, tq->name, NULL, MTX_DEF);
	tq->cv = host_cv_new();
	tq->enqueue = enqueue;
	tq->context = context;
	tq->active = 1;
	tq_register(tq);
	kpi_log("taskqueue_create(%s)", tq->name);
	return (tq);
}

/* kern/subr_taskqueue.c taskqueue_thread_enqueue: wakes the queue stored at *context. */
void
taskqueue_thread_enqueue(void *context)
{
	struct taskqueue *tq = *(struct taskqueue **)context;

	host_cv_broadcast(tq->cv);
}

static void
run_task(struct taskqueue *tq, struct task *t)
{
	int pending, before;

	pending = t->ta_pending;
	t->ta_pending = 0;
	tq->running = t;
	host_cv_unlock(tq->cv);
	before = kthr()->nheld;
	t->ta_func(t->ta_context, pending);
	if (kthr()->nheld != before)
		rule(R_CONTEXT_LOCKS, "task %p of taskqueue %s returned with locks held: %s",
		    t->ta_func, tq->name, held_names());
	host_cv_lock(tq->cv);
	tq->running = NULL;
	host_cv_broadcast(tq->cv);
}

/* kern/subr_taskqueue.c taskqueue_thread_loop/taskqueue_run_locked. */
static void
tq_thread(void *arg)
{
	struct taskqueue *tq = arg;
	extern int kmodsim_sched_stopped;

	tq->td = curthread;
	host_cv_lock(tq->cv);
	for (;;) {
		while (tq->nqueued > 0 && !kmodsim_sched_stopped) {
			struct task *t = tq->queue[0];
			int i;

			for (i = 1; i < tq->nqueued; i++)
				tq->queue[i - 1] = tq->queue[i];
			tq->nqueued--;
			run_task(tq, t);
		}
		if (!tq->active)
			break;
		host_cv_wait(tq->cv, kmodsim_sched_stopped ? host_now_ns() + 100000000ULL : 0);
	}
	tq->alive--;
	host_cv_broadcast(tq->cv);
	host_cv_unlock(tq->cv);
}

static int fail_kthreads;

/* kern_kthread.c kthread_add can fail (fork1: no memory, process limit). */
void
kpi_fail_kthreads(int on)
{
	fail_kthreads = on;
}

/*
 * kern/subr_taskqueue.c _taskqueue_start_threads: a kthread_add that fails is printed and
 * skipped; with none started, ENOMEM.
 */
int
taskqueue_start_threads(struct taskqueue **tqp, int count, int pri __unused, const char *name,
    ...)
{
	struct taskqueue *tq = *tqp;
	char tname[32];
	__builtin_va_list ap;
	int i;

	stack_probe();
	may_sleep("taskqueue_start_threads (kthread_add)");
	if (fail_kthreads) {
		printf("_taskqueue_start_threads: kthread_add(%s): error %d", tq->name, ENOMEM);
		return (ENOMEM);
	}
	__builtin_va_start(ap, name);
	host_vformat(tname, sizeof(tname), name, ap);
	__builtin_va_end(ap);
	for (i = 0; i < count; i++) {
		host_cv_lock(tq->cv);
		tq->threads++;
		tq->alive++;
		host_cv_unlock(tq->cv);
		if (host_thread_start(tq_thread, tq, tname) != 0)
			return (ENOMEM);
	}
	return (0);
}

int
taskqueue_enqueue(struct taskqueue *tq, struct task *t)
{
	int i;

	stack_probe();
	if (tq->freed) {
		rule(R_TQ_MISUSE, "taskqueue_enqueue on a freed taskqueue");
		return (0);
	}
	/* TQ_LOCK: a sleep mutex, so the lock rules (spin held, order) apply here. */
	mtx_lock(&tq->tq_mutex);
	host_cv_lock(tq->cv);
	if (t->ta_pending > 0) {
		if (t->ta_pending < USHRT_MAX)
			t->ta_pending++;
	} else {
		for (i = 0; i < tq->nqueued; i++)
			if (tq->queue[i] == t)
				break;
		if (i == tq->nqueued) {
			if (tq->nqueued == TQ_TASKS)
				host_panic("kmodsim: taskqueue full");
			tq->queue[tq->nqueued++] = t;
		}
		t->ta_pending = 1;
		if (tq->enqueue != NULL)
			tq->enqueue(tq->context);
	}
	host_cv_unlock(tq->cv);
	mtx_unlock(&tq->tq_mutex);
	return (0);
}

static int
task_busy(struct taskqueue *tq, struct task *t)
{
	int i;

	if (tq->running == t || t->ta_pending > 0)
		return (1);
	for (i = 0; i < tq->nqueued; i++)
		if (tq->queue[i] == t)
			return (1);
	return (0);
}

/* kern/subr_taskqueue.c taskqueue_drain: WITNESS_WARN(WARN_SLEEPOK), sleeps while busy. */
void
taskqueue_drain(struct taskqueue *tq, struct task *t)
{
	stack_probe();
	may_sleep("taskqueue_drain");
	if (tq_thread_is_current() && tq->running == t) {
		rule(R_TQ_MISUSE, "taskqueue_drain of the running task from its own thread");
		return;
	}
	host_cv_lock(tq->cv);
	while (task_busy(tq, t))
		host_cv_wait(tq->cv, 0);
	host_cv_unlock(tq->cv);
}

/* kern/subr_taskqueue.c taskqueue_free: runs what is queued, stops the threads, frees. */
void
taskqueue_free(struct taskqueue *tq)
{
	int i;

	stack_probe();
	may_sleep("taskqueue_free");
	host_cv_lock(tq->cv);
	tq->active = 0;
	host_cv_broadcast(tq->cv);
	while (tq->alive > 0)
		host_cv_wait(tq->cv, 0);
	if (tq->running != NULL)
		rule(R_TQ_MISUSE, "taskqueue_free: Tasks still running?");
	host_cv_unlock(tq->cv);
	tq->freed = 1;
	mtx_destroy(&tq->tq_mutex);
	host_cv_lock(sched_cv);
	for (i = 0; i < TQ_MAX; i++)
		if (tqs[i] == tq)
			tqs[i] = NULL;
	host_cv_unlock(sched_cv);
	kpi_log("taskqueue_free(%s)", tq->name);
	/* Kept (not freed) so that a late enqueue is reported instead of corrupting memory. */
}

int
tq_thread_is_current(void)
{
	int i;

	for (i = 0; i < TQ_MAX; i++)
		if (tqs[i] != NULL && tqs[i]->td == curthread)
			return (1);
	return (0);
}

/* ---- callouts ---- */

#define CO_MAX 32
static struct callout *wheel[CO_MAX];
static int nwheel;
static struct callout *co_running;
static int co_cancel;			/* cc_exec_cancel of the running callout */
static int clock_started;

static int
wheel_remove(struct callout *c)
{
	int i;

	for (i = 0; i < nwheel; i++)
		if (wheel[i] == c) {
			wheel[i] = wheel[--nwheel];
			return (1);
		}
	return (0);
}

extern int kmodsim_sched_stopped;

/* kern/kern_timeout.c softclock_call_cc. */
static void
clock_thread(void *arg __unused)
{
	host_cv_lock(sched_cv);
	for (;;) {
		sbintime_t now = now_sbt(), next = 0;
		struct callout *c = NULL;
		int i, before;

		for (i = 0; i < nwheel; i++) {
			if (wheel[i]->c_time <= now) {
				c = wheel[i];
				break;
			}
			if (next == 0 || wheel[i]->c_time < next)
				next = wheel[i]->c_time;
		}
		if (c == NULL || kmodsim_sched_stopped) {
			host_cv_wait(sched_cv, next == 0 || kmodsim_sched_stopped ?
			    host_now_ns() + 100000000ULL : host_now_ns() + sbt_to_ns(next - now));
			continue;
		}
		wheel_remove(c);
		c->c_iflags &= ~CALLOUT_PENDING;
		co_running = c;
		co_cancel = 0;
		host_cv_unlock(sched_cv);
		before = context_enter("a callout handler");
		if (c->c_lock != NULL)
			LOCK_CLASS(c->c_lock)->lc_lock(c->c_lock, 0);
		host_cv_lock(sched_cv);
		if (co_cancel) {
			host_cv_unlock(sched_cv);
			if (c->c_lock != NULL)
				LOCK_CLASS(c->c_lock)->lc_unlock(c->c_lock);
		} else {
			void (*fn)(void *) = c->c_func;
			void *a = c->c_arg;
			struct lock_object *lk = c->c_lock;
			int unlock = (c->c_iflags & CALLOUT_RETURNUNLOCKED) == 0;

			host_cv_unlock(sched_cv);
			fn(a);
			if (lk != NULL && unlock)
				LOCK_CLASS(lk)->lc_unlock(lk);
		}
		context_leave("a callout handler", before);
		host_cv_lock(sched_cv);
		co_running = NULL;
		host_cv_broadcast(sched_cv);
	}
}

void
_callout_init_lock(struct callout *c, struct lock_object *lock, int flags)
{
	stack_probe();
	host_memset(c, 0, sizeof(*c));
	c->c_lock = lock;
	c->c_iflags = flags & (CALLOUT_RETURNUNLOCKED | CALLOUT_SHAREDLOCK);
	c->c_cpu = 0;
}

static void
callout_lock_check(struct callout *c, const char *op)
{
	if (c->c_lock != NULL && c->c_lock != &Giant.lock_object) {
		struct mtx *m = __containerof(c->c_lock, struct mtx, lock_object);

		if (!mtx_is_owned(m))
			rule(R_CALLOUT_LOCK, "%s of callout %p without its lock \"%s\"", op, c,
			    c->c_lock->lo_name);
	}
}

/*
 * kern/kern_timeout.c callout_reset_sbt_on. It does not assert the lock, but callout(9)
 * requires it and the cancellation of a run waiting for the lock (cc_exec_cancel) is only
 * right when the caller holds it.
 */
int
callout_reset_sbt_on(struct callout *c, sbintime_t sbt, sbintime_t prec __unused,
    void (*ftn)(void *), void *arg, int cpu __unused, int flags)
{
	int cancelled = 0;

	stack_probe();
	callout_lock_check(c, "callout_reset");
	host_cv_lock(sched_cv);
	if (!clock_started) {
		clock_started = 1;
		host_thread_start(clock_thread, NULL, "clock (0)");
	}
	if (co_running == c && c->c_lock != NULL && !co_cancel)
		cancelled = co_cancel = 1;
	if (wheel_remove(c))
		cancelled = 1;
	c->c_time = (flags & C_ABSOLUTE) ? sbt : now_sbt() + sbt;
	c->c_func = ftn;
	c->c_arg = arg;
	c->c_iflags |= CALLOUT_PENDING;
	c->c_flags |= CALLOUT_ACTIVE;
	if (nwheel == CO_MAX)
		host_panic("kmodsim: too many callouts");
	wheel[nwheel++] = c;
	host_cv_broadcast(sched_cv);
	host_cv_unlock(sched_cv);
	return (cancelled);
}

#if __FreeBSD_version >= 1500000
int
_callout_stop_safe(struct callout *c, int flags)
#else
int
_callout_stop_safe(struct callout *c, int flags, void (*drain)(void *) __unused)
#endif
{
	int cancelled, use_lock = 0;

	stack_probe();
	if (flags & CS_DRAIN) {
		struct kthr *k = kthr();
		int i, others = 0;

		/* WITNESS_WARN(WARN_GIANTOK | WARN_SLEEPOK, c->c_lock, ...) */
		for (i = 0; i < k->nheld; i++)
			if (k->held[i] != c->c_lock && k->held[i] != &Giant.lock_object)
				others++;
		if (others > 0)
			rule(R_SLEEP_LOCKED, "callout_drain with locks held: %s", held_names());
		if (c->c_lock != NULL && c->c_lock != &Giant.lock_object &&
		    mtx_is_owned(__containerof(c->c_lock, struct mtx, lock_object)))
			rule(R_CALLOUT_DRAIN_LOCKED, "callout_drain of %p with its lock \"%s\" held",
			    c, c->c_lock->lo_name);
		if (k->epoch_nest > 0 || k->no_sleep > 0)
			may_sleep("callout_drain");
	} else if (c->c_lock != NULL) {
		callout_lock_check(c, "callout_stop");
		use_lock = 1;
	}
	host_cv_lock(sched_cv);
	if (co_running == c) {
		if (flags & CS_DRAIN) {
			while (co_running == c)
				host_cv_wait(sched_cv, 0);
			cancelled = 0;
		} else if (use_lock && !co_cancel) {
			co_cancel = 1;
			host_cv_unlock(sched_cv);
			return (1);
		} else
			cancelled = 0;
	} else
		cancelled = 1;
	if ((c->c_iflags & CALLOUT_PENDING) == 0) {
		if (co_running != c)
			cancelled = -1;
		host_cv_unlock(sched_cv);
		return (cancelled);
	}
	wheel_remove(c);
	c->c_iflags &= ~CALLOUT_PENDING;
	c->c_flags &= ~CALLOUT_ACTIVE;
	host_cv_unlock(sched_cv);
	return (cancelled);
}

int
callouts_pending(void)
{
	int n;

	host_cv_lock(sched_cv);
	n = nwheel + (co_running != NULL);
	host_cv_unlock(sched_cv);
	return (n);
}

/* free() of memory that holds a pending callout or a queued/running task. */
void
sched_check_free(const void *start, hsize_t len)
{
	const char *a = start, *b = a + len;
	int i, j;

#define INSIDE(p) ((const char *)(p) >= a && (const char *)(p) < b)
	host_cv_lock(sched_cv);
	for (i = 0; i < nwheel; i++)
		if (INSIDE(wheel[i]))
			rule(R_FREE_PENDING, "memory %p freed with callout %p still pending", start,
			    wheel[i]);
	if (co_running != NULL && INSIDE(co_running))
		rule(R_FREE_PENDING, "memory %p freed while its callout %p runs", start,
		    co_running);
	for (i = 0; i < TQ_MAX; i++) {
		struct taskqueue *tq = tqs[i];

		if (tq == NULL)
			continue;
		for (j = 0; j < tq->nqueued; j++)
			if (INSIDE(tq->queue[j]))
				rule(R_FREE_PENDING, "memory %p freed with task %p queued on %s",
				    start, tq->queue[j], tq->name);
		if (tq->running != NULL && INSIDE(tq->running))
			rule(R_FREE_PENDING, "memory %p freed while its task %p runs", start,
			    tq->running);
		if (INSIDE(tq))
			rule(R_FREE_PENDING, "taskqueue %s freed with free(9)", tq->name);
	}
	host_cv_unlock(sched_cv);
#undef INSIDE
}

void
sched_init(void)
{
	if (sched_cv == NULL)
		sched_cv = host_cv_new();
}

int
sched_final_checks(void)
{
	int n = 0;

	if (taskqueues_live() != 0) {
		rule(R_UNLOAD_LEFTOVER, "%d taskqueues left after unload", taskqueues_live());
		n++;
	}
	if (callouts_pending() != 0) {
		rule(R_UNLOAD_LEFTOVER, "%d callouts pending after unload", callouts_pending());
		n++;
	}
	return (n);
}
