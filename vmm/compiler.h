/* SPDX-License-Identifier: MIT */
/*
 * The one home of container_of, READ_ONCE/WRITE_ONCE and the memory
 * barriers, for hdvm, hdnic, the tests and hdguest (freestanding: nothing
 * here needs more than <stddef.h>).
 *
 * Memory another party changes at any moment (virtqueue rings, doorbells,
 * MMIO) is read and written through READ_ONCE/WRITE_ONCE so the compiler
 * neither tears, repeats nor drops the access.  The barriers follow the
 * Linux names:
 *	smp_rmb()	loads before it happen before loads after it
 *	smp_wmb()	stores before it happen before stores after it
 *	smp_mb()	everything before it before everything after it,
 *			including a store before a load of another location
 * On x86 the first two only stop the compiler; smp_mb() is an mfence.
 */
#ifndef HDVM_COMPILER_H
#define HDVM_COMPILER_H

#include <stddef.h>

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define READ_ONCE(x)		(*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v)	(*(volatile __typeof__(x) *)&(x) = (v))

#define barrier()		__asm__ __volatile__("" ::: "memory")
#define smp_rmb()		__atomic_thread_fence(__ATOMIC_ACQUIRE)
#define smp_wmb()		__atomic_thread_fence(__ATOMIC_RELEASE)
#define smp_mb()		__atomic_thread_fence(__ATOMIC_SEQ_CST)

#define likely(x)		__builtin_expect(!!(x), 1)
#define unlikely(x)		__builtin_expect(!!(x), 0)

#endif
