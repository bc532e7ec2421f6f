/* SPDX-License-Identifier: MIT */
/*
 * Guest memory: the owner of every KVM memory slot and the only way hdvm code
 * writes guest RAM.
 *
 * RAM is one memfd, mapped once in hdvm and registered with KVM as up to two
 * slots around the MMIO hole below 4 GiB.  The memfd can be passed to other
 * processes (hdnic DMA, migration) so it is the only copy of guest memory.
 * Device memory (a passthrough BAR's doorbell page) gets slots of its own from
 * the same registry.  Each slot carries its KVM flags, so dirty logging
 * (KVM_MEM_LOG_DIRTY_PAGES) is turned on per slot.
 *
 * Writing guest RAM -- the rule every hdvm writer follows:
 *   - copy in with guest_mem_write(), or
 *   - write through a pointer from guest_mem_translate()/gpa_to_hva() and
 *     then call guest_mem_mark_dirty() for the bytes written (after the
 *     write, never before: a harvest between a mark and its write would lose
 *     the page).
 * While logging is on, both set the pages' bits in hdvm's own bitmap, which
 * guest_mem_log_sync() merges with KVM's log (vCPU writes).  Reads use
 * guest_mem_read() or a translated pointer and mark nothing.
 *
 * The loaders (vmm/boot/) and a restore's RAM load write through pointers
 * before the first vCPU runs, when no log can be on: they mark nothing.
 *
 * The split-ring library plugs in through guest_mem_translate() (its
 * translate callback; opaque = the struct guest_mem) and calls
 * guest_mem_mark_dirty() for used entries and buffers it writes.
 *
 * Functions return 0 or -errno unless they say otherwise.
 */
#ifndef HDVM_MEMORY_H
#define HDVM_MEMORY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_ops;

#define GUEST_MEM_MIN		(2ULL << 20)	/* below this nothing fits */
#define GUEST_PAGE_SHIFT	12
#define GUEST_PAGE_SIZE		(1ULL << GUEST_PAGE_SHIFT)
#define GUEST_MEM_MAX_SLOTS	32

enum mem_slot_kind { MEM_SLOT_FREE, MEM_SLOT_RAM, MEM_SLOT_DEVICE };

struct mem_slot {
	enum mem_slot_kind kind;
	uint32_t id;		/* KVM slot number */
	uint32_t flags;		/* KVM_MEM_* as registered with KVM */
	uint64_t gpa, size;
	uint8_t *hva;
	uint64_t offset;	/* RAM: offset in the memfd */
	bool registered;	/* KVM knows it */
	bool logging;		/* hdvm marks its writes (atomic; RAM slots only) */
	/* hdvm's own writes while logging: one bit per page; allocated at the first start */
	uint64_t *dirty;
};

struct guest_mem {
	int memfd;
	uint8_t *host;		/* mapping of the whole memfd */
	uint64_t size;		/* total RAM bytes */
	uint64_t low_size;	/* RAM at GPA [0, low_size) */
	uint64_t high_size;	/* RAM at GPA [4 GiB, 4 GiB + high_size), memfd offset low_size */

	const struct kvm_ops *kvm;	/* set by guest_mem_register() */
	int vm_fd;
	pthread_mutex_t lock;		/* slot table changes (BAR moves on vCPU threads) */
	struct mem_slot slots[GUEST_MEM_MAX_SLOTS];	/* index = KVM slot id */
	/*
	 * Post-copy (vmm/postcopy_dst.h): guest_mem_write() brings the pages in
	 * (memfd offset, length) before it writes; an error (the source is gone)
	 * fails the write.  NULL when no page can be missing.
	 */
	int (*fault_in)(void *opaque, uint64_t off, uint64_t len);
	void *fault_in_opaque;
};

/* Create the memfd and mapping for `size` bytes (multiple of 4 KiB), RAM slots described. */
int guest_mem_init(struct guest_mem *m, uint64_t size);
/*
 * The same over FD, a memfd of exactly SIZE bytes handed over by a migration
 * source (unix:), or a fresh memfd when FD < 0.  FD is ours from here on, on
 * failure too.  Using it from the start (rather than adopting it later) means
 * every mapping made at realize -- a passthrough device's DMA map -- is of it.
 */
int guest_mem_init_fd(struct guest_mem *m, uint64_t size, int fd);
void guest_mem_destroy(struct guest_mem *m);
/*
 * Make `fd` (same size) the VM's RAM: mapped over the old mapping at the same
 * address, so the slots KVM knows stay valid; the old memfd is closed and fd
 * is owned from here.  For a migration over unix: (vmm/migrate.c).
 */
int guest_mem_adopt_fd(struct guest_mem *m, int fd);
/* Describe the RAM slots over an existing mapping (guest_mem_init does this; tests too). */
void guest_mem_layout(struct guest_mem *m, uint8_t *host, uint64_t low, uint64_t high);
/*
 * Register the RAM slots with KVM (slot ids 0 and 1), then any device slot
 * added before this call (it may run on a thread while devices realize).
 */
int guest_mem_register(struct guest_mem *m, const struct kvm_ops *kvm, int vm_fd);

/* Host pointer for [gpa, gpa+len) if it lies entirely inside one RAM range, else NULL. */
void *gpa_to_hva(const struct guest_mem *m, uint64_t gpa, uint64_t len);
/* memfd offset of a GPA inside RAM, or -1. */
int64_t gpa_to_offset(const struct guest_mem *m, uint64_t gpa);

/* The ring library's translate callback: opaque is the struct guest_mem. */
void *guest_mem_translate(void *opaque, uint64_t gpa, uint64_t len);

/*
 * Copy into / out of guest RAM; -EFAULT unless [gpa, gpa+len) is inside one RAM range.
 * During post-copy a write first faults its pages in (-EHOSTDOWN: they will never come).
 */
int guest_mem_write(struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len);
int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len);
/* Record a write made through a translated pointer (after it); no-op unless logging. */
void guest_mem_mark_dirty(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* ---- the slot registry ---- */

/* Map host memory (a passthrough BAR page) into the guest: the slot id, or -errno. */
int guest_mem_slot_add(struct guest_mem *m, uint64_t gpa, uint64_t size, void *hva);
void guest_mem_slot_del(struct guest_mem *m, int id);
/* Call fn for each RAM slot in GPA order; stops at (and returns) the first error. */
int guest_mem_for_each_ram(const struct guest_mem *m,
			   int (*fn)(const struct mem_slot *s, void *opaque), void *opaque);

/* ---- dirty logging (per RAM slot; id -1 = every RAM slot) ---- */

int guest_mem_log_start(struct guest_mem *m, int id);
int guest_mem_log_stop(struct guest_mem *m, int id);
bool guest_mem_logging(const struct guest_mem *m, int id);
/* Words of a slot's dirty bitmap (one bit per page, bit i of word w = page 64w+i). */
size_t guest_mem_bitmap_words(const struct mem_slot *s);
/*
 * Dirty pages of RAM slot `id` since the last sync: KVM's log (KVM_GET_DIRTY_LOG,
 * which also clears it) OR hdvm's own bitmap (cleared as read) into `out`
 * (guest_mem_bitmap_words() words).
 */
int guest_mem_log_sync(struct guest_mem *m, int id, uint64_t *out);

#endif
