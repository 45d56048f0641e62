/*
 * The broker's reader of BATCH bodies (proto/PROTOCOL.md, "BATCH"): one pass
 * over the JSON text that validates it and yields each row's key, row hash
 * and stored text, without building a cJSON tree of the values and printing
 * them again (most of what a batch cost the broker before).
 *
 * It accepts and refuses what parsing the body with cJSON and checking it
 * with aps_batch_parse() did, with the same codes: a body that is not one
 * JSON object is APS_ERR_JSON (a frame error: the connection closes); a JSON
 * object that breaks the BATCH rules is APS_ERR_MESSAGE. Row hashes are
 * aps_row_hash()'s and the stored texts are cJSON's compact print of each
 * row's values (tests/unit/test_batchscan.c compares the two readers).
 * Two things are refused that cJSON let through silently: raw control
 * characters inside strings (RFC 8259 requires them escaped) and strings
 * holding U+0000 (cJSON cut them short there).
 */
#ifndef APS_BATCHSCAN_H
#define APS_BATCHSCAN_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "arena.h"
#include "batch.h"
#include "buf.h"
#include "store/store.h"

struct bscan_span;
struct bscan_aux;

/* Reusable scratch of one thread; the results do not point into it. */
struct batch_scanner {
	struct aps_hasher hasher;
	struct bscan_span *spans; /* data[c][r] at col_start[c] + r */
	size_t nspans, capspans;
	struct bscan_aux *aux;    /* values that are not plain strings */
	size_t naux, capaux;
	struct aps_buf dec;       /* decoded strings that held escapes */
	struct aps_buf txt;       /* those values as stored */
};

int batch_scanner_init(struct batch_scanner *bs);
void batch_scanner_free(struct batch_scanner *bs);

/* A BATCH, read. */
struct batch_rows {
	cJSON *head;            /* the body's members but "data" */
	struct aps_batch b;     /* job, list, key, cols (borrowed from head); data unused */
	struct store_row *rows; /* b.nrows of them */
	uint64_t checksum;      /* sum of the row hashes */
};

/*
 * Reads the body text[0..len) into out. Keys, statuses and modification
 * times are copied into `arena`; the rows' stored texts are appended to
 * `rowtext` (rows[i].data points into it: valid until it grows again).
 * cJSON allocates from the thread's current arena (aps_arena_use), which
 * should be `arena`. On failure `why` says what and where.
 */
int batch_scan(struct batch_scanner *bs, struct aps_arena *arena, const char *text, size_t len,
	       struct batch_rows *out, struct aps_buf *rowtext, char *why, size_t whylen);

#endif
