/*
 * A bump allocator for cJSON trees that live briefly: a batch the agent
 * builds, a message the broker applies. cJSON allocates a node and a string
 * per value; with an arena made current for the thread, those allocations are
 * pointer bumps and the whole tree goes at once with aps_arena_reset(),
 * instead of tens of thousands of malloc/free calls per batch.
 *
 * aps_arena_hooks_install() routes cJSON's allocations (process-wide, once at
 * start) through the current thread's arena when there is one, else malloc.
 * free() of arena memory is a no-op; of other memory, a real free.
 * Anything allocated by cJSON while an arena is current dies with its reset:
 * print what must outlive it with the arena switched off.
 */
#ifndef APS_ARENA_H
#define APS_ARENA_H

#include <stddef.h>

struct aps_arena_chunk;

struct aps_arena {
	struct aps_arena_chunk *chunks;
	size_t chunk_size;
};

void aps_arena_hooks_install(void);
/* Makes `a` the current arena of this thread (NULL: none); returns the old. */
struct aps_arena *aps_arena_use(struct aps_arena *a);
void *aps_arena_alloc(struct aps_arena *a, size_t n);
/* Frees everything allocated, keeping one chunk for reuse. */
void aps_arena_reset(struct aps_arena *a);
void aps_arena_free(struct aps_arena *a);

#endif
