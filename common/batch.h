/*
 * BATCH messages: column-major rows (proto/PROTOCOL.md, "BATCH").
 *
 *   {"job":12,"list":"vendors","key":"code","rows":2,
 *    "cols":["code","name"],"data":[["V1","V2"],["Acme","Bolt"]]}
 *
 * The builder is used by the agent, the parser by the broker; both compute
 * row hashes with aps_row_hash() so their per-list checksums agree.
 */
#ifndef APS_BATCH_H
#define APS_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "apsync_proto.h"

struct aps_batch {
	int64_t job;
	const char *list;                       /* borrowed from the body */
	const char *key;                        /* borrowed */
	int key_col;
	int ncols;
	int nrows;
	const char *cols[APSYNC_MAX_COLUMNS];    /* borrowed */
	cJSON *data[APSYNC_MAX_COLUMNS];        /* column arrays, borrowed */
};

/* Validates a BATCH body; the result borrows from `body`. */
int aps_batch_parse(const cJSON *body, struct aps_batch *b, char *why, size_t whylen);

/* Walks the rows of a parsed batch: vals[c] is row i's value in column c. */
struct aps_batch_iter {
	int ncols;
	cJSON *cur[APSYNC_MAX_COLUMNS];
};
void aps_batch_iter_init(struct aps_batch_iter *it, const struct aps_batch *b);
/* 1 and fills vals while rows remain, 0 at the end. */
int aps_batch_iter_next(struct aps_batch_iter *it, const cJSON **vals);

/* Builds a batch body row by row. */
struct aps_batch_builder {
	cJSON *root;
	cJSON *data[APSYNC_MAX_COLUMNS];
	int ncols;
	int nrows;
	size_t approx_bytes;                    /* JSON text size estimate */
};
int aps_batch_builder_init(struct aps_batch_builder *bb, int64_t job, const char *list,
			   const char *key, const char *const *cols, int ncols);
/* Takes ownership of vals[0..ncols) (cJSON items), whatever the result. */
int aps_batch_builder_add(struct aps_batch_builder *bb, cJSON **vals);
/* Hands the body over (caller deletes it) and resets the builder. */
cJSON *aps_batch_builder_take(struct aps_batch_builder *bb);
void aps_batch_builder_free(struct aps_batch_builder *bb);

/*
 * 64-bit hash of a row: SHA-256 over a canonical encoding of its values in
 * column order, first 8 bytes, big-endian. `md` is a reusable digest context.
 */
uint64_t aps_row_hash(EVP_MD_CTX *md, const cJSON *const *vals, int ncols);
/* A list checksum is the sum of its rows' hashes modulo 2^64, written as 16
 * hex digits on the wire. */
void aps_checksum_hex(uint64_t sum, char out[17]);
int aps_checksum_parse(const char *hex, uint64_t *sum);

/* 1 if s is a valid list or code name: 1..APSYNC_MAX_NAME_LEN of [a-z0-9_]. */
int aps_name_valid(const char *s);

#endif
