/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * malloc(9) (kern/kern_malloc.c) with what an INVARIANTS kernel adds (vm/uma_dbg.c): fresh
 * memory holds the 0xdeadc0de junk, freed memory is junked and kept in a quarantine that is
 * checked for writes when it leaves it, each block carries its malloc type, and malloc_uninit
 * of a type with blocks left is reported. Plus what only a harness can do: fail the Nth call
 * once (M_NOWAIT), remembering the caller's frame-pointer backtrace.
 */
#include "kpi.h"

#define KM_MAGIC	0x6b6d616c6c6f6321ULL
#define KM_FREED	0x6b6d667265656421ULL
#define JUNK		0xdeadc0deU
#define QUARANTINE	512
#define BT_MAX		16

struct khdr {
	uint64_t magic;
	struct khdr *prev, *next;	/* live list */
	void *base;
	struct malloc_type *type;
	size_t size;
	unsigned long caller;
	uint64_t pad;			/* keeps the block 16-byte aligned (64-byte header) */
};

struct kmstat {
	struct malloc_type *type;
	long allocs, frees, bytes, peak_bytes;
};

static struct kmstat stats[8];
static int nstats;
static struct khdr live;		/* list head */
static struct khdr *quarantine[QUARANTINE];
static int q_next;
static void *kmcv;
static hi64 calls;
static hi64 nowait_calls;	/* the calls failmalloc can fail */
static hi64 fail_at = -1;
static hsize_t failed_bt[BT_MAX];
static int failed_n;
static int failed_count;

void *
kmem_alloc(hsize_t size)
{
	void *p = host_alloc(16, size == 0 ? 1 : size);

	host_memset(p, 0, size);
	return (p);
}

void
kmem_free(void *p)
{
	host_free(p);
}

static void
km_lock(void)
{
	if (kmcv == NULL) {
		kmcv = host_cv_new();
		live.prev = live.next = &live;
	}
	host_cv_lock(kmcv);
}

static void
km_unlock(void)
{
	host_cv_unlock(kmcv);
}

static struct kmstat *
stat_of(struct malloc_type *t)
{
	int i;

	for (i = 0; i < nstats; i++)
		if (stats[i].type == t)
			return (&stats[i]);
	if (nstats == (int)nitems(stats))
		host_panic("kmodsim: more than 8 malloc types");
	stats[nstats].type = t;
	return (&stats[nstats++]);
}

static void
junk(void *p, size_t size)
{
	uint32_t *w = p;
	size_t i;

	for (i = 0; i < size / 4; i++)
		w[i] = JUNK;
	for (i = size & ~(size_t)3; i < size; i++)
		((unsigned char *)p)[i] = 0xde;
}

static int
junk_intact(const struct khdr *h)
{
	const uint32_t *w = (const uint32_t *)(h + 1);
	size_t i;

	for (i = 0; i < h->size / 4; i++)
		if (w[i] != JUNK)
			return (0);
	return (1);
}

static void
release_block(struct khdr *h)
{
	if (!junk_intact(h))
		rule(R_MODIFIED_AFTER_FREE, "memory modified after free %p(%zu) (caller %#lx)",
		    (void *)(h + 1), h->size, h->caller);
	h->magic = 0;
	host_free(h->base);
}

/* Frame-pointer walk: the module and the harness are built with frame pointers. */
static int
backtrace_fp(hsize_t *out, int max)
{
	void **fp = __builtin_frame_address(0);
	int n = 0;

	while (fp != NULL && n < max) {
		void *ret = fp[1];
		void **next = fp[0];

		if (ret == NULL)
			break;
		out[n++] = (hsize_t)ret;
		if (next <= fp || (char *)next - (char *)fp > (1 << 20))
			break;
		fp = next;
	}
	return (n);
}

static void *
kalloc(size_t size, size_t align, struct malloc_type *type, int flags, unsigned long caller)
{
	size_t hdr = sizeof(struct khdr);
	struct kmstat *s;
	struct khdr *h;
	char *base, *p;
	int how = flags & (M_WAITOK | M_NOWAIT);

	stack_probe();
	if (how != M_WAITOK && how != M_NOWAIT)
		rule(R_MALLOC_FLAGS, "Bad malloc flags: %x (type %s)", how, type->ks_shortdesc);
	if (how & M_WAITOK)
		may_sleep("malloc(M_WAITOK)");
	if (align < 16)
		align = 16;
	if (align > hdr)
		hdr = align;
	km_lock();
	calls++;
	if (how & M_NOWAIT)
		nowait_calls++;
	if (fail_at >= 0 && (how & M_NOWAIT)) {
		if (fail_at == 0) {
			fail_at = -1;
			failed_count++;
			failed_n = backtrace_fp(failed_bt, BT_MAX);
			km_unlock();
			kpi_log("malloc(%zu, %s, M_NOWAIT) fails (injected)", size, type->ks_shortdesc);
			return (NULL);
		}
		fail_at--;
	}
	s = stat_of(type);
	s->allocs++;
	s->bytes += size;
	if (s->bytes > s->peak_bytes)
		s->peak_bytes = s->bytes;
	km_unlock();
	base = host_alloc(align, hdr + size);
	p = base + hdr;
	h = (struct khdr *)p - 1;
	h->magic = KM_MAGIC;
	h->base = base;
	h->type = type;
	h->size = size;
	h->caller = caller;
	if (flags & M_ZERO)
		host_memset(p, 0, size);
	else
		junk(p, size);
	km_lock();
	h->next = live.next;
	h->prev = &live;
	live.next->prev = h;
	live.next = h;
	km_unlock();
	return (p);
}

void *
(malloc)(size_t size, struct malloc_type *type, int flags)
{
	return (kalloc(size, 16, type, flags, (unsigned long)__builtin_return_address(0)));
}

void *
(malloc_aligned)(size_t size, size_t align, struct malloc_type *type, int flags)
{
	if (align == 0 || (align & (align - 1)) != 0 || align > PAGE_SIZE)
		panic("malloc_aligned: wrong align %#zx size %#zx", align, size);
	return (kalloc(size, align, type, flags, (unsigned long)__builtin_return_address(0)));
}

static struct khdr *
header_of(void *p, const char *op)
{
	struct khdr *h = (struct khdr *)p - 1;

	if (h->magic == KM_FREED) {
		rule(R_FREE_BAD, "%s: duplicate free of %p", op, p);
		return (NULL);
	}
	if (h->magic != KM_MAGIC) {
		rule(R_FREE_BAD, "%s: address %p has not been allocated", op, p);
		return (NULL);
	}
	return (h);
}

void
(free)(void *p, struct malloc_type *type)
{
	struct khdr *h, *old;
	struct kmstat *s;

	stack_probe();
	if (p == NULL)
		return;
	h = header_of(p, "free");
	if (h == NULL)
		return;
	if (h->type != type)
		rule(R_FREE_TYPE, "free(%p) as type %s, allocated as %s", p, type->ks_shortdesc,
		    h->type->ks_shortdesc);
	sched_check_free(p, h->size);
	km_lock();
	h->prev->next = h->next;
	h->next->prev = h->prev;
	s = stat_of(h->type);
	s->frees++;
	s->bytes -= h->size;
	h->magic = KM_FREED;
	junk(p, h->size);
	old = quarantine[q_next];
	quarantine[q_next] = h;
	q_next = (q_next + 1) % QUARANTINE;
	km_unlock();
	if (old != NULL)
		release_block(old);
}

void *
(realloc)(void *p, size_t size, struct malloc_type *type, int flags)
{
	struct khdr *h;
	void *n;

	if (p == NULL)
		return (kalloc(size, 16, type, flags, (unsigned long)__builtin_return_address(0)));
	h = header_of(p, "realloc");
	if (h == NULL)
		return (NULL);
	n = kalloc(size, 16, type, flags, (unsigned long)__builtin_return_address(0));
	if (n == NULL)
		return (NULL);
	host_memcpy(n, p, h->size < size ? h->size : size);
	free(p, type);
	return (n);
}

/* MALLOC_DEFINE's SYSINIT/SYSUNINIT (kern/kern_malloc.c malloc_init/malloc_uninit). */
void
malloc_init(void *data)
{
	struct malloc_type *mtp = __DECONST(void *, data);

	km_lock();
	(void)stat_of(mtp);
	km_unlock();
	kpi_log("malloc_init(%s)", mtp->ks_shortdesc);
}

void
malloc_uninit(void *data)
{
	struct malloc_type *mtp = __DECONST(void *, data);
	struct kmstat *s;
	long left, bytes;

	km_lock();
	s = stat_of(mtp);
	left = s->allocs - s->frees;
	bytes = s->bytes;
	km_unlock();
	if (left != 0)
		rule(R_MALLOC_LEAK, "Warning: memory type %s leaked memory on destroy (%ld "
		    "allocations, %ld bytes leaked)", mtp->ks_shortdesc, left, bytes);
	else
		kpi_log("malloc_uninit(%s): no leak (%ld allocations)", mtp->ks_shortdesc,
		    s->allocs);
}

long
malloc_outstanding(struct malloc_type *mtp)
{
	long n;

	km_lock();
	n = stat_of(mtp)->allocs - stat_of(mtp)->frees;
	km_unlock();
	return (n);
}

int
malloc_live_in(const void *start, hsize_t len)
{
	const char *a = start, *b = a + len;
	struct khdr *h;
	int n = 0;

	km_lock();
	for (h = live.next; h != &live; h = h->next) {
		const char *p = (const char *)(h + 1);

		if (p < b && p + h->size > a)
			n++;
	}
	km_unlock();
	return (n);
}

/* Every quarantined block still junked (called at the end of a run). */
void
malloc_check_quarantine(void)
{
	int i;

	km_lock();
	for (i = 0; i < QUARANTINE; i++) {
		struct khdr *h = quarantine[i];

		if (h != NULL && !junk_intact(h))
			rule(R_MODIFIED_AFTER_FREE, "memory modified after free %p(%zu)",
			    (void *)(h + 1), h->size);
	}
	km_unlock();
}

void
malloc_report(char *buf, hsize_t len)
{
	int i;

	km_lock();
	for (i = 0; i < nstats; i++)
		kappend(buf, len, "%smalloc %s: %ld allocs, %ld frees, %ld bytes left, peak %ld",
		    buf[0] != '\0' ? "; " : "", stats[i].type->ks_shortdesc, stats[i].allocs,
		    stats[i].frees, stats[i].bytes, stats[i].peak_bytes);
	km_unlock();
}

void
kpi_malloc_fail_nth(hi64 n)
{
	km_lock();
	fail_at = n;
	failed_n = 0;
	km_unlock();
}

hi64
kpi_malloc_calls(void)
{
	hi64 n;

	km_lock();
	n = calls;
	km_unlock();
	return (n);
}

hi64
kpi_malloc_nowait_calls(void)
{
	hi64 n;

	km_lock();
	n = nowait_calls;
	km_unlock();
	return (n);
}

hi64
kpi_malloc_type_allocs(const char *shortdesc)
{
	hi64 n = 0;
	int i;

	km_lock();
	for (i = 0; i < nstats; i++)
		if (kstreq(stats[i].type->ks_shortdesc, shortdesc))
			n = stats[i].allocs;
	km_unlock();
	return (n);
}

int
kpi_malloc_failed_site(hsize_t *frames, int max)
{
	int i, n;

	km_lock();
	n = failed_count == 0 ? -1 : (failed_n < max ? failed_n : max);
	for (i = 0; i < n; i++)
		frames[i] = failed_bt[i];
	km_unlock();
	return (n);
}
