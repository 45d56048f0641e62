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
#include "buf.h"

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
/* The rules of its members but "data", of which a reader found ndata column
 * arrays (-1: no "data" array); b->data is left empty. For readers that read
 * "data" their own way (the broker's batchscan.c). */
int aps_batch_head(const cJSON *body, int ndata, struct aps_batch *b, char *why, size_t whylen);

/* Walks the rows of a parsed batch: vals[c] is row i's value in column c. */
struct aps_batch_iter {
	int ncols;
	cJSON *cur[APSYNC_MAX_COLUMNS];
};
void aps_batch_iter_init(struct aps_batch_iter *it, const struct aps_batch *b);
/* 1 and fills vals while rows remain, 0 at the end. */
int aps_batch_iter_next(struct aps_batch_iter *it, const cJSON **vals);

/* A value as a connector hands it over: typed, borrowed (valid only during
 * the call that received it), no allocation per value. */
enum aps_vtype { APS_V_NULL = 0, APS_V_FALSE, APS_V_TRUE, APS_V_INT, APS_V_TEXT, APS_V_JSON };

struct aps_value {
	enum aps_vtype type;
	int64_t i;         /* APS_V_INT, within +-2^53 */
	const char *s;     /* APS_V_TEXT: NUL-terminated UTF-8; APS_V_JSON: a compact
			    * JSON array or object, as cJSON_PrintUnformatted writes it */
};

/*
 * Builds a batch body as JSON text, row by row: each column's values are
 * printed straight into that column's buffer. The buffers are kept between
 * batches (init resets them).
 */
struct aps_batch_builder {
	int64_t job;
	const char *list;                       /* borrowed until finish */
	const char *key;
	const char *const *cols;
	int ncols;
	int nrows;
	size_t approx_bytes;                    /* JSON text size so far */
	struct aps_buf col[APSYNC_MAX_COLUMNS];
};
int aps_batch_builder_init(struct aps_batch_builder *bb, int64_t job, const char *list,
			   const char *key, const char *const *cols, int ncols);
int aps_batch_builder_add(struct aps_batch_builder *bb, const struct aps_value *vals);
/* Writes the body into out (replacing its content, NUL-terminated after
 * out->len). `after`: for full
 * reads, the key the batch starts after; has_after 0 leaves the field out. */
int aps_batch_builder_finish(struct aps_batch_builder *bb, int has_after, const char *after,
			     struct aps_buf *out);
void aps_batch_builder_free(struct aps_batch_builder *bb);

/* Appends a string as a JSON string literal (escaped by cJSON's printer). */
int aps_json_string(struct aps_buf *out, const char *s);

/* Reusable state for row hashes: the digest fetched once (OpenSSL 3 looks an
 * implicit EVP_sha256() up again at every init), a context and the encoding
 * buffer. */
struct aps_hasher {
	EVP_MD *sha256;
	EVP_MD_CTX *md;
	struct aps_buf enc;
};
int aps_hasher_init(struct aps_hasher *h);
void aps_hasher_free(struct aps_hasher *h);

/*
 * 64-bit hash of a row: SHA-256 over a canonical encoding of its values in
 * column order, first 8 bytes, big-endian.
 */
uint64_t aps_row_hash(struct aps_hasher *h, const cJSON *const *vals, int ncols);
/* The same hash over a connector's values (the agent's side). */
uint64_t aps_row_hash_values(struct aps_hasher *h, const struct aps_value *vals, int ncols);
/* A list checksum is the sum of its rows' hashes modulo 2^64, written as 16
 * hex digits on the wire. */
void aps_checksum_hex(uint64_t sum, char out[17]);
int aps_checksum_parse(const char *hex, uint64_t *sum);

/* 1 if s is a valid list or code name: 1..APSYNC_MAX_NAME_LEN of [a-z0-9_]. */
int aps_name_valid(const char *s);

#endif
