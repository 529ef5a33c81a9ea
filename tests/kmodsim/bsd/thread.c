/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Threads and the machine: a struct thread and struct pcpu per host thread (curthread is
 * %gs:0, PCPU's pc_curthread, which is all the module reads through %gs), the clock, sleeping,
 * randomness, the console, panic, the stack protector, and the libc functions a KLD imports.
 */
#include "kpi.h"

int kmodsim_release;
int kpi_verbose;
bool kmodsim_panicking;

/* sys/kassert.h: 14 reads `panicked`, 15 `panicstr` (KERNEL_PANICKED) and `scheduler_stopped`. */
const char *panicstr;
#if __FreeBSD_version < 1500000
bool panicked;
#else
bool scheduler_stopped;
#endif

/* kern/stack_protector.c */
long __stack_chk_guard[8] = { 0x5ca1ab1e0ddba11L, 0x2d5f3a17c0ffee11L };
void __stack_chk_fail(void);

static struct ucred cred0;

struct kthr *
kthr(void)
{
	return (curthread->td_emuldata);
}

void
kpi_thread_attach(const char *name)
{
	struct pcpu *pc = host_alloc(64, sizeof(*pc));
	struct thread *td = host_alloc(64, sizeof(*td));
	struct kthr *k = host_alloc(16, sizeof(*k));
	char here;

	host_memset(pc, 0, sizeof(*pc));
	host_memset(td, 0, sizeof(*td));
	host_memset(k, 0, sizeof(*k));
	k->stack_top = &here;
	td->td_ucred = &cred0;
	td->td_emuldata = k;
	td->td_tid = 100000 + host_thread_id();
	strlcpy(td->td_name, name, sizeof(td->td_name));
	pc->pc_curthread = td;
	pc->pc_cpuid = 0;
	host_set_gs(pc);
	if (curthread != td)
		host_panic("kmodsim: %gs base not in effect");
}

/* ---- contexts that may not sleep ---- */

void
may_sleep(const char *what)
{
	struct kthr *k = kthr();
	extern int kmodsim_sched_stopped;

	if (kmodsim_sched_stopped)
		rule(R_SHUTDOWN_CONTEXT, "%s with the scheduler stopped (a panic is in progress)",
		    what);
	if (locks_held_except_giant() > 0)
		rule(R_SLEEP_LOCKED, "%s with locks held: %s", what, held_names());
	if (k->no_sleep > 0)
		rule(R_SLEEP_LOCKED, "%s in %s, which runs with locks held by the kernel", what,
		    k->context != NULL ? k->context : "a no-sleep context");
	if (k->epoch_nest > 0)
		rule(R_SLEEP_EPOCH, "%s inside a net epoch section", what);
}

int
context_enter(const char *what)
{
	struct kthr *k = kthr();

	k->no_sleep++;
	k->context = what;
	return (k->nheld);
}

void
context_leave(const char *what, int nheld_before)
{
	struct kthr *k = kthr();

	if (k->nheld > nheld_before)
		rule(R_CONTEXT_LOCKS, "%s returned with locks held: %s", what, held_names());
	k->no_sleep--;
	if (k->no_sleep == 0)
		k->context = NULL;
}

/* ---- stack use ---- */

static hsize_t stack_max_all;

void
stack_probe(void)
{
	struct kthr *k = kthr();
	char here;
	hsize_t used;

	if (k == NULL || k->stack_top == NULL || &here > k->stack_top)
		return;
	used = (hsize_t)(k->stack_top - &here);
	if (used > k->stack_max)
		k->stack_max = used;
	if (used > __atomic_load_n(&stack_max_all, __ATOMIC_RELAXED))
		__atomic_store_n(&stack_max_all, used, __ATOMIC_RELAXED);
}

hsize_t
stack_max_used(void)
{
	return (__atomic_load_n(&stack_max_all, __ATOMIC_RELAXED));
}

/* ---- time ---- */

hu64
now_ns(void)
{
	return (host_now_ns());
}

void
binuptime(struct bintime *bt)
{
	hu64 ns = host_now_ns();

	bt->sec = ns / 1000000000ULL;
	/* 2^64 / 10^9, rounded down: frac is in units of 2^-64 s. */
	bt->frac = (ns % 1000000000ULL) * 18446744073ULL;
}

sbintime_t
now_sbt(void)
{
	struct bintime bt;

	binuptime(&bt);
	return (bttosbt(bt));
}

hu64
sbt_to_ns(sbintime_t sbt)
{
	if (sbt <= 0)
		return (0);
	return ((hu64)(sbt >> 32) * 1000000000ULL +
	    ((((hu64)sbt & 0xffffffffULL) * 1000000000ULL) >> 32));
}

/*
 * kern/kern_synch.c pause_sbt: sleeps (a _sleep without interlock) unless cold or the scheduler
 * is stopped, where it busy-waits.
 */
int
pause_sbt(const char *wmesg, sbintime_t sbt, sbintime_t pr __unused, int flags __unused)
{
	stack_probe();
	if (sbt < 0)
		host_panic("pause_sbt: timeout must be >= 0");
	may_sleep(wmesg);
	host_sleep_ns(sbt_to_ns(sbt));
	return (EWOULDBLOCK);
}

void
arc4random_buf(void *p, size_t n)
{
	host_random(p, n);
}

/* ---- console ---- */

#define CONSOLE_LINES 4096
static char *console[CONSOLE_LINES];
static int console_n;
static void *console_cv;

static void
console_keep(const char *line)
{
	hsize_t n = strlen(line);
	char *copy;

	if (console_cv == NULL)
		return;
	copy = host_alloc(1, n + 1);
	host_memcpy(copy, line, n + 1);
	host_cv_lock(console_cv);
	if (console_n < CONSOLE_LINES)
		console[console_n++] = copy;
	else
		host_free(copy);
	host_cv_unlock(console_cv);
}

int
kpi_console_count(const char *needle)
{
	int i, n = 0;
	hsize_t l = strlen(needle);

	host_cv_lock(console_cv);
	for (i = 0; i < console_n; i++) {
		const char *s;

		for (s = console[i]; *s != '\0'; s++)
			if (memcmp(s, needle, l) == 0) {
				n++;
				break;
			}
	}
	host_cv_unlock(console_cv);
	return (n);
}

int
printf(const char *fmt, ...)
{
	char line[1024];
	__builtin_va_list ap;
	int n;

	__builtin_va_start(ap, fmt);
	n = host_vformat(line, sizeof(line), fmt, ap);
	__builtin_va_end(ap);
	console_keep(line);
	host_log("[console] %s", line);
	return (n);
}

int
snprintf(char *buf, size_t len, const char *fmt, ...)
{
	__builtin_va_list ap;
	int n;

	__builtin_va_start(ap, fmt);
	n = host_vformat(buf, len, fmt, ap);
	__builtin_va_end(ap);
	return (n);
}

/* kern/kern_shutdown.c panic(): here the process ends with the message and a backtrace. */
void
panic(const char *fmt, ...)
{
	char line[1024];
	__builtin_va_list ap;

	__builtin_va_start(ap, fmt);
	host_vformat(line, sizeof(line), fmt, ap);
	__builtin_va_end(ap);
	kmodsim_panicking = true;
	host_panic(line);
}

void
__stack_chk_fail(void)
{
	panic("stack overflow detected; backtrace may be corrupted");
}

void
kpi_log(const char *fmt, ...)
{
	char line[1024];
	__builtin_va_list ap;

	if (!kpi_verbose)
		return;
	__builtin_va_start(ap, fmt);
	host_vformat(line, sizeof(line), fmt, ap);
	__builtin_va_end(ap);
	host_log("[kpi] %s\n", line);
}

void
kfmt(char *buf, hsize_t len, const char *fmt, ...)
{
	__builtin_va_list ap;

	__builtin_va_start(ap, fmt);
	host_vformat(buf, len, fmt, ap);
	__builtin_va_end(ap);
}

void
kappend(char *buf, hsize_t len, const char *fmt, ...)
{
	__builtin_va_list ap;
	hsize_t used = strlen(buf);

	if (used + 1 >= len)
		return;
	__builtin_va_start(ap, fmt);
	host_vformat(buf + used, len - used, fmt, ap);
	__builtin_va_end(ap);
}

/* ---- libc a KLD links against (libkern) ---- */

/* The emulation copies with host_memcpy; what reaches these is the module's own copying. */
static hu64 cp_bytes, cp_bulk, cp_zero, cp_zero_bulk, cp_calls;

static void
count_copy(size_t n)
{
	__atomic_fetch_add(&cp_calls, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&cp_bytes, n, __ATOMIC_RELAXED);
	if (n >= 512)
		__atomic_fetch_add(&cp_bulk, n, __ATOMIC_RELAXED);
}

void *
(memcpy)(void *d, const void *s, size_t n)
{
	count_copy(n);
	host_memcpy(d, s, n);
	return (d);
}

void *
(memmove)(void *d, const void *s, size_t n)
{
	count_copy(n);
	host_memmove(d, s, n);
	return (d);
}

void *
(memset)(void *d, int c, size_t n)
{
	if (c == 0)
		__atomic_fetch_add(&cp_zero, n, __ATOMIC_RELAXED);
	if (c == 0 && n >= 512)
		__atomic_fetch_add(&cp_zero_bulk, n, __ATOMIC_RELAXED);
	host_memset(d, c, n);
	return (d);
}

void
kpi_copy_counts(struct kpi_copies *c)
{
	c->copied = __atomic_load_n(&cp_bytes, __ATOMIC_RELAXED);
	c->copied_bulk = __atomic_load_n(&cp_bulk, __ATOMIC_RELAXED);
	c->zeroed = __atomic_load_n(&cp_zero, __ATOMIC_RELAXED);
	c->zeroed_bulk = __atomic_load_n(&cp_zero_bulk, __ATOMIC_RELAXED);
	c->calls = __atomic_load_n(&cp_calls, __ATOMIC_RELAXED);
	sock_moved(&c->sock_sent, &c->sock_received);
	sock_calls(&c->recv_calls, &c->recv_empty, &c->send_calls);
}

int
(memcmp)(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (; n > 0; n--, x++, y++)
		if (*x != *y)
			return (*x - *y);
	return (0);
}

size_t
(strlen)(const char *s)
{
	size_t n = 0;

	while (s[n] != '\0')
		n++;
	return (n);
}

size_t
(strlcpy)(char *d, const char *s, size_t size)
{
	size_t n = strlen(s);

	if (size > 0) {
		size_t c = n < size - 1 ? n : size - 1;

		host_memcpy(d, s, c);
		d[c] = '\0';
	}
	return (n);
}

int
kstreq(const char *a, const char *b)
{
	while (*a != '\0' && *a == *b)
		a++, b++;
	return (*a == *b);
}

void
kpi_init(int release_major)
{
	kmodsim_release = release_major != 0 ? release_major : __FreeBSD_version / 100000;
	if (console_cv == NULL)
		console_cv = host_cv_new();
	void module_init(void);
	void sock_init(void);

	void kmodsim_geom_init(void);

	module_init();
	kmodsim_geom_init();
	sched_init();
	net_init();
	sock_init();
	cam_init();
}
