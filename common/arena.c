#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "arena.h"

#define CHUNK_MIN (256 * 1024)

struct aps_arena_chunk {
	struct aps_arena_chunk *next;
	size_t size;
	size_t used;
	max_align_t data[];
};

static __thread struct aps_arena *current;

struct aps_arena *aps_arena_use(struct aps_arena *a)
{
	struct aps_arena *old = current;

	current = a;
	return old;
}

void *aps_arena_alloc(struct aps_arena *a, size_t n)
{
	struct aps_arena_chunk *c = a->chunks;
	size_t want = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1), size;
	void *p;

	if (!c || c->size - c->used < want) {
		size = a->chunk_size > CHUNK_MIN ? a->chunk_size : CHUNK_MIN;
		if (size < want)
			size = want;
		c = malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->size = size;
		c->used = 0;
		c->next = a->chunks;
		a->chunks = c;
	}
	p = (char *)c->data + c->used;
	c->used += want;
	return p;
}

static int owns(const struct aps_arena *a, const void *p)
{
	const struct aps_arena_chunk *c;

	for (c = a->chunks; c; c = c->next)
		if ((const char *)p >= (const char *)c->data &&
		    (const char *)p < (const char *)c->data + c->size)
			return 1;
	return 0;
}

void aps_arena_reset(struct aps_arena *a)
{
	struct aps_arena_chunk *c, *next;
	size_t total = 0;

	if (!a->chunks)
		return;
	/* Keep one chunk as large as everything used, so a steady load settles
	 * into one allocation. */
	for (c = a->chunks; c; c = c->next)
		total += c->used;
	if (a->chunks->next || a->chunks->size < total) {
		for (c = a->chunks; c; c = next) {
			next = c->next;
			free(c);
		}
		a->chunks = NULL;
		a->chunk_size = total;
		return;
	}
	a->chunks->used = 0;
}

void aps_arena_free(struct aps_arena *a)
{
	struct aps_arena_chunk *c, *next;

	for (c = a->chunks; c; c = next) {
		next = c->next;
		free(c);
	}
	memset(a, 0, sizeof(*a));
}

static void *hook_malloc(size_t n)
{
	return current ? aps_arena_alloc(current, n) : malloc(n);
}

static void hook_free(void *p)
{
	if (!p || (current && owns(current, p)))
		return;
	free(p);
}

void aps_arena_hooks_install(void)
{
	cJSON_Hooks h = {hook_malloc, hook_free};

	cJSON_InitHooks(&h);
}
