#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "buf.h"
#include "err.h"

#define WHY(...)                                                               \
	do {                                                                   \
		if (why)                                                       \
			snprintf(why, whylen, __VA_ARGS__);                    \
	} while (0)

int aps_name_valid(const char *s)
{
	size_t n = 0;

	if (!s)
		return 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
			return 0;
	return n > 0 && n <= APSYNC_MAX_NAME_LEN;
}

int aps_batch_head(const cJSON *body, int ndata, struct aps_batch *b, char *why, size_t whylen)
{
	const cJSON *job, *list, *key, *rows, *cols, *it;
	int i, j;

	memset(b, 0, sizeof(*b));
	b->key_col = -1;
	job = cJSON_GetObjectItemCaseSensitive(body, "job");
	list = cJSON_GetObjectItemCaseSensitive(body, "list");
	key = cJSON_GetObjectItemCaseSensitive(body, "key");
	rows = cJSON_GetObjectItemCaseSensitive(body, "rows");
	cols = cJSON_GetObjectItemCaseSensitive(body, "cols");
	if (!cJSON_IsNumber(job) || job->valuedouble < 1 || job->valuedouble > 9007199254740991.0) {
		WHY("BATCH needs a positive integer \"job\"");
		return APS_ERR_MESSAGE;
	}
	b->job = (int64_t)job->valuedouble;
	if (!cJSON_IsString(list) || !aps_name_valid(list->valuestring)) {
		WHY("BATCH needs a \"list\" name of [a-z0-9_]");
		return APS_ERR_MESSAGE;
	}
	b->list = list->valuestring;
	if (!cJSON_IsNumber(rows) || rows->valuedouble < 1 ||
	    rows->valuedouble > APSYNC_MAX_BATCH_ROWS) {
		WHY("BATCH \"rows\" must be 1..%u", APSYNC_MAX_BATCH_ROWS);
		return APS_ERR_MESSAGE;
	}
	b->nrows = (int)rows->valuedouble;
	if (!cJSON_IsArray(cols) || ndata < 0) {
		WHY("BATCH needs \"cols\" and \"data\" arrays");
		return APS_ERR_MESSAGE;
	}
	b->ncols = cJSON_GetArraySize(cols);
	if (b->ncols < 1 || b->ncols > (int)APSYNC_MAX_COLUMNS || ndata != b->ncols) {
		WHY("BATCH has %d columns and %d data arrays (1..%u, equal)", b->ncols, ndata,
		    APSYNC_MAX_COLUMNS);
		return APS_ERR_MESSAGE;
	}
	if (!cJSON_IsString(key)) {
		WHY("BATCH needs a \"key\" column name");
		return APS_ERR_MESSAGE;
	}
	b->key = key->valuestring;
	i = 0;
	cJSON_ArrayForEach(it, cols) {
		if (!cJSON_IsString(it) || !aps_name_valid(it->valuestring)) {
			WHY("BATCH column %d is not a name of [a-z0-9_]", i);
			return APS_ERR_MESSAGE;
		}
		for (j = 0; j < i; j++)
			if (!strcmp(b->cols[j], it->valuestring)) {
				WHY("BATCH column \"%s\" appears twice", it->valuestring);
				return APS_ERR_MESSAGE;
			}
		b->cols[i] = it->valuestring;
		if (!strcmp(it->valuestring, b->key))
			b->key_col = i;
		i++;
	}
	if (b->key_col < 0) {
		WHY("BATCH key column \"%s\" is not among its columns", b->key);
		return APS_ERR_MESSAGE;
	}
	return APS_OK;
}

int aps_batch_parse(const cJSON *body, struct aps_batch *b, char *why, size_t whylen)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data"), *it, *v;
	int i, j, rc;

	rc = aps_batch_head(body, cJSON_IsArray(data) ? cJSON_GetArraySize(data) : -1, b, why,
			    whylen);
	if (rc)
		return rc;
	i = 0;
	cJSON_ArrayForEach(it, data) {
		if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != b->nrows) {
			WHY("BATCH column \"%s\" does not hold %d values", b->cols[i], b->nrows);
			return APS_ERR_MESSAGE;
		}
		b->data[i++] = (cJSON *)it;
	}
	j = 0;
	cJSON_ArrayForEach(v, b->data[b->key_col]) {
		if (!cJSON_IsString(v) || !v->valuestring[0] ||
		    strlen(v->valuestring) > APSYNC_MAX_KEY_LEN) {
			WHY("BATCH row %d: key must be a non-empty string of at most %u bytes", j,
			    APSYNC_MAX_KEY_LEN);
			return APS_ERR_MESSAGE;
		}
		j++;
	}
	return APS_OK;
}

void aps_batch_iter_init(struct aps_batch_iter *it, const struct aps_batch *b)
{
	int i;

	it->ncols = b->ncols;
	for (i = 0; i < b->ncols; i++)
		it->cur[i] = b->data[i]->child;
}

int aps_batch_iter_next(struct aps_batch_iter *it, const cJSON **vals)
{
	int i;

	for (i = 0; i < it->ncols; i++)
		if (!it->cur[i])
			return 0;
	for (i = 0; i < it->ncols; i++) {
		vals[i] = it->cur[i];
		it->cur[i] = it->cur[i]->next;
	}
	return 1;
}

/* Eight bytes at a time: nonzero if any of them is a control character, '"'
 * or '\\' (bytes from 0x80 on pass as they are). A borrow can only flag a
 * byte above one that is flagged rightly, so the answer is exact. */
#define APS_ONES8 0x0101010101010101ULL
static inline uint64_t json_special8(uint64_t w)
{
	return ((w - APS_ONES8 * 0x20) | ((w ^ APS_ONES8 * '"') - APS_ONES8) |
		((w ^ APS_ONES8 * '\\') - APS_ONES8)) &
	       ~w & (APS_ONES8 * 0x80);
}

/*
 * Writes exactly what cJSON's printer writes for a string (the broker stores
 * and compares that text): '"' and '\\' and the control characters escaped,
 * \b \f \n \r \t by name and the others as \u00xx, every other byte as it
 * is. Done here in one pass, eight plain bytes at a time: through cJSON it
 * was a tenth of the agent's CPU per row (a cJSON item per value, two scans
 * and a strlen of the output).
 */
int aps_json_string(struct aps_buf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(s);
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	unsigned char c;
	uint64_t w;
	uint8_t *o;
	int rc = aps_buf_reserve(out, n * 6 + 3);

	if (rc)
		return rc;
	o = out->data + out->len;
	*o++ = '"';
	while (p < end) {
		while (end - p >= 8) {
			memcpy(&w, p, 8);
			if (json_special8(w))
				break;
			memcpy(o, &w, 8);
			o += 8;
			p += 8;
		}
		if (p == end)
			break;
		c = *p++;
		if (c > 31 && c != '"' && c != '\\') {
			*o++ = c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = (uint8_t)hex[c >> 4];
			*o++ = (uint8_t)hex[c & 15];
		}
	}
	*o++ = '"';
	*o = '\0'; /* as cJSON left it: reserved above */
	out->len = (size_t)(o - out->data);
	return APS_OK;
}

int aps_batch_builder_init(struct aps_batch_builder *bb, int64_t job, const char *list,
			   const char *key, const char *const *cols, int ncols)
{
	int i;

	if (ncols < 1 || ncols > (int)APSYNC_MAX_COLUMNS)
		return APS_ERR_RANGE;
	bb->job = job;
	bb->list = list;
	bb->key = key;
	bb->cols = cols;
	bb->ncols = ncols;
	bb->nrows = 0;
	bb->approx_bytes = 64;
	for (i = 0; i < (int)APSYNC_MAX_COLUMNS; i++)
		bb->col[i].len = 0;
	return APS_OK;
}

static int print_value(struct aps_buf *b, const struct aps_value *v)
{
	switch (v->type) {
	case APS_V_NULL:
		return aps_buf_append(b, "null", 4);
	case APS_V_FALSE:
		return aps_buf_append(b, "false", 5);
	case APS_V_TRUE:
		return aps_buf_append(b, "true", 4);
	case APS_V_INT:
		return aps_buf_printf(b, "%lld", (long long)v->i);
	case APS_V_TEXT:
		return aps_json_string(b, v->s ? v->s : "");
	case APS_V_JSON:
		return aps_buf_append_str(b, v->s ? v->s : "null");
	}
	return APS_ERR_INVAL;
}

int aps_batch_builder_add(struct aps_batch_builder *bb, const struct aps_value *vals)
{
	size_t before;
	int i, rc = APS_OK;

	for (i = 0; i < bb->ncols && !rc; i++) {
		before = bb->col[i].len;
		if (bb->nrows)
			rc = aps_buf_append(&bb->col[i], ",", 1);
		if (!rc)
			rc = print_value(&bb->col[i], &vals[i]);
		bb->approx_bytes += bb->col[i].len - before;
	}
	if (!rc)
		bb->nrows++;
	return rc;
}

int aps_batch_builder_finish(struct aps_batch_builder *bb, int has_after, const char *after,
			     struct aps_buf *out)
{
	int i, rc;

	out->len = 0;
	rc = aps_buf_reserve(out, bb->approx_bytes + 256);
	if (!rc)
		rc = aps_buf_printf(out, "{\"job\":%lld,\"list\":", (long long)bb->job);
	if (!rc)
		rc = aps_json_string(out, bb->list);
	if (!rc)
		rc = aps_buf_append_str(out, ",\"key\":");
	if (!rc)
		rc = aps_json_string(out, bb->key);
	if (!rc)
		rc = aps_buf_printf(out, ",\"rows\":%d,\"cols\":[", bb->nrows);
	for (i = 0; i < bb->ncols && !rc; i++) {
		if (i)
			rc = aps_buf_append(out, ",", 1);
		if (!rc)
			rc = aps_json_string(out, bb->cols[i]);
	}
	if (!rc)
		rc = aps_buf_append_str(out, "],\"data\":[");
	for (i = 0; i < bb->ncols && !rc; i++) {
		rc = aps_buf_append(out, i ? ",[" : "[", i ? 2 : 1);
		if (!rc)
			rc = aps_buf_append(out, bb->col[i].data, bb->col[i].len);
		if (!rc)
			rc = aps_buf_append(out, "]", 1);
	}
	if (!rc)
		rc = aps_buf_append(out, "]", 1);
	if (!rc && has_after) {
		rc = aps_buf_append_str(out, ",\"after\":");
		if (!rc)
			rc = after ? aps_json_string(out, after) : aps_buf_append_str(out, "null");
	}
	if (!rc)
		rc = aps_buf_append(out, "}", 1);
	if (!rc)
		rc = aps_buf_terminate(out);
	return rc;
}

void aps_batch_builder_free(struct aps_batch_builder *bb)
{
	int i;

	for (i = 0; i < (int)APSYNC_MAX_COLUMNS; i++)
		aps_buf_free(&bb->col[i]);
	memset(bb, 0, sizeof(*bb));
}

/* Canonical encoding: per value a tag byte, then for strings, numbers and
 * nested values a 4-byte big-endian length and the bytes. Built in one
 * buffer and digested in one call. */
static int encode(struct aps_buf *b, char tag, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	int rc = aps_buf_reserve(b, 5 + n);

	if (rc)
		return rc;
	b->data[b->len++] = (uint8_t)tag;
	if (s) {
		b->data[b->len++] = (uint8_t)(n >> 24);
		b->data[b->len++] = (uint8_t)(n >> 16);
		b->data[b->len++] = (uint8_t)(n >> 8);
		b->data[b->len++] = (uint8_t)n;
		memcpy(b->data + b->len, s, n);
		b->len += n;
	}
	return APS_OK;
}

static int encode_value(struct aps_buf *b, const cJSON *v)
{
	char num[32], *printed;
	int rc;

	if (cJSON_IsString(v))
		return encode(b, 's', v->valuestring);
	if (cJSON_IsNumber(v)) {
		snprintf(num, sizeof(num), "%.17g", v->valuedouble);
		return encode(b, 'd', num);
	}
	if (cJSON_IsTrue(v))
		return encode(b, 't', NULL);
	if (cJSON_IsFalse(v))
		return encode(b, 'f', NULL);
	if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
		printed = cJSON_PrintUnformatted(v);
		rc = encode(b, 'j', printed ? printed : "");
		cJSON_free(printed);
		return rc;
	}
	return encode(b, 'n', NULL);
}

static int encode_aval(struct aps_buf *b, const struct aps_value *v)
{
	char num[32];

	switch (v->type) {
	case APS_V_TEXT:
		return encode(b, 's', v->s ? v->s : "");
	case APS_V_INT:
		snprintf(num, sizeof(num), "%.17g", (double)v->i);
		return encode(b, 'd', num);
	case APS_V_TRUE:
		return encode(b, 't', NULL);
	case APS_V_FALSE:
		return encode(b, 'f', NULL);
	case APS_V_JSON:
		return encode(b, 'j', v->s ? v->s : "");
	default:
		return encode(b, 'n', NULL);
	}
}

int aps_hasher_init(struct aps_hasher *h)
{
	memset(h, 0, sizeof(*h));
	h->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->md = EVP_MD_CTX_new();
	if (!h->sha256 || !h->md) {
		aps_hasher_free(h);
		return APS_ERR_NOMEM;
	}
	return APS_OK;
}

void aps_hasher_free(struct aps_hasher *h)
{
	EVP_MD_CTX_free(h->md);
	EVP_MD_free(h->sha256);
	aps_buf_free(&h->enc);
	memset(h, 0, sizeof(*h));
}

static uint64_t digest(struct aps_hasher *hs)
{
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned int outlen = 0;
	uint64_t h = 0;
	int i;

	EVP_DigestInit_ex2(hs->md, hs->sha256, NULL);
	EVP_DigestUpdate(hs->md, hs->enc.data, hs->enc.len);
	EVP_DigestFinal_ex(hs->md, out, &outlen);
	for (i = 0; i < 8; i++)
		h = h << 8 | out[i];
	if (hs->enc.cap > (1 << 20))
		aps_buf_free(&hs->enc); /* a huge row does not pin memory */
	return h;
}

uint64_t aps_row_hash(struct aps_hasher *hs, const cJSON *const *vals, int ncols)
{
	int i;

	hs->enc.len = 0;
	for (i = 0; i < ncols; i++)
		if (encode_value(&hs->enc, vals[i]))
			return 0; /* out of memory: a zero hash fails the checksum, loudly */
	return digest(hs);
}

uint64_t aps_row_hash_values(struct aps_hasher *hs, const struct aps_value *vals, int ncols)
{
	int i;

	hs->enc.len = 0;
	for (i = 0; i < ncols; i++)
		if (encode_aval(&hs->enc, &vals[i]))
			return 0;
	return digest(hs);
}

void aps_checksum_hex(uint64_t sum, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)sum);
}

int aps_checksum_parse(const char *hex, uint64_t *sum)
{
	uint64_t v = 0;
	int i;

	if (!hex || strlen(hex) != 16)
		return APS_ERR_INVAL;
	for (i = 0; i < 16; i++) {
		char c = hex[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint64_t)(c - 'a' + 10);
		else
			return APS_ERR_INVAL;
	}
	*sum = v;
	return APS_OK;
}
