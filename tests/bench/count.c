/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What an initiator allocates, copies and zero-fills in user space, counted the same way for
 * every initiator the benchmark compares: an LD_PRELOAD object that interposes malloc and its
 * family, memcpy/memmove and memset (and their _chk forms) and adds to counters in a file the
 * measured program reads at the edges of its measurement window.
 *
 *   ISBOOT_COUNT_FILE=/path LD_PRELOAD=.../libisboot-count.so PROGRAM ...
 *
 * The file holds struct counts (below), 64-bit little-endian fields in this order. Without
 * ISBOOT_COUNT_FILE nothing is counted. Copies made inside the C library by its own internal
 * calls (and by the kernel for read/write) are not seen: what is counted is what the program
 * and its libraries (libiscsi, Rust's std) ask the C library for.
 *
 * A copy of at least BULK bytes is counted apart as "bulk": payload moves (blocks are at least
 * 512 bytes), as opposed to the moves of small structures a compiler makes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BULK 512

struct counts {
	uint64_t allocs;	/* malloc, calloc, realloc, memalign family */
	uint64_t frees;
	uint64_t alloc_bytes;
	uint64_t copied;	/* memcpy, memmove (all sizes) */
	uint64_t copied_bulk;	/* the part in calls of at least BULK bytes */
	uint64_t zeroed;	/* memset with 0 and calloc */
	uint64_t copy_calls;
};

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static struct counts *c;
static void *(*real_memcpy)(void *, const void *, size_t);
static void *(*real_memmove)(void *, const void *, size_t);
static void *(*real_memset)(void *, int, size_t);

#define ADD(field, n) do { if (c) __atomic_fetch_add(&c->field, (uint64_t)(n), __ATOMIC_RELAXED); } while (0)

__attribute__((constructor)) static void count_init(void)
{
	const char *path = getenv("ISBOOT_COUNT_FILE");
	void *p;
	int fd;

	real_memcpy = (void *(*)(void *, const void *, size_t))dlsym(RTLD_NEXT, "memcpy");
	real_memmove = (void *(*)(void *, const void *, size_t))dlsym(RTLD_NEXT, "memmove");
	real_memset = (void *(*)(void *, int, size_t))dlsym(RTLD_NEXT, "memset");
	if (path == NULL)
		return;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return;
	if (ftruncate(fd, 4096) != 0) {
		close(fd);
		return;
	}
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p != MAP_FAILED)
		c = p;
}

void *malloc(size_t n)
{
	ADD(allocs, 1);
	ADD(alloc_bytes, n);
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	ADD(allocs, 1);
	ADD(alloc_bytes, n * size);
	ADD(zeroed, n * size);
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
	ADD(allocs, 1);
	ADD(alloc_bytes, n);
	return __libc_realloc(p, n);
}

void free(void *p)
{
	if (p != NULL)
		ADD(frees, 1);
	__libc_free(p);
}

void *memalign(size_t align, size_t n)
{
	ADD(allocs, 1);
	ADD(alloc_bytes, n);
	return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
	return memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p = memalign(align, n);

	if (p == NULL)
		return 12; /* ENOMEM */
	*out = p;
	return 0;
}

/* Before the constructor has looked the real functions up (the dynamic loader's own early
 * calls), a plain loop; the build keeps the compiler from turning it into a memcpy call. */
static void *slow_copy(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;

	if (dp < sp) {
		while (n--)
			*dp++ = *sp++;
	} else {
		while (n--)
			dp[n] = sp[n];
	}
	return d;
}

static void count_copy(size_t n)
{
	ADD(copy_calls, 1);
	ADD(copied, n);
	if (n >= BULK)
		ADD(copied_bulk, n);
}

void *memcpy(void *d, const void *s, size_t n)
{
	count_copy(n);
	return real_memcpy ? real_memcpy(d, s, n) : slow_copy(d, s, n);
}

void *memmove(void *d, const void *s, size_t n)
{
	count_copy(n);
	return real_memmove ? real_memmove(d, s, n) : slow_copy(d, s, n);
}

void *memset(void *d, int v, size_t n)
{
	unsigned char *p = d;

	if (v == 0)
		ADD(zeroed, n);
	if (real_memset)
		return real_memset(d, v, n);
	while (n--)
		p[n] = (unsigned char)v;
	return d;
}

void *__memcpy_chk(void *d, const void *s, size_t n, size_t dlen)
{
	if (n > dlen)
		abort();
	return memcpy(d, s, n);
}

void *__memmove_chk(void *d, const void *s, size_t n, size_t dlen)
{
	if (n > dlen)
		abort();
	return memmove(d, s, n);
}

void *__memset_chk(void *d, int v, size_t n, size_t dlen)
{
	if (n > dlen)
		abort();
	return memset(d, v, n);
}
