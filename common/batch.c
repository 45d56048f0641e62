#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
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

int aps_batch_parse(const cJSON *body, struct aps_batch *b, char *why, size_t whylen)
{
	const cJSON *job, *list, *key, *rows, *cols, *data, *it, *v;
	int i, j;

	memset(b, 0, sizeof(*b));
	b->key_col = -1;
	job = cJSON_GetObjectItemCaseSensitive(body, "job");
	list = cJSON_GetObjectItemCaseSensitive(body, "list");
	key = cJSON_GetObjectItemCaseSensitive(body, "key");
	rows = cJSON_GetObjectItemCaseSensitive(body, "rows");
	cols = cJSON_GetObjectItemCaseSensitive(body, "cols");
	data = cJSON_GetObjectItemCaseSensitive(body, "data");
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
	if (!cJSON_IsArray(cols) || !cJSON_IsArray(data)) {
		WHY("BATCH needs \"cols\" and \"data\" arrays");
		return APS_ERR_MESSAGE;
	}
	b->ncols = cJSON_GetArraySize(cols);
	if (b->ncols < 1 || b->ncols > (int)APSYNC_MAX_COLUMNS ||
	    cJSON_GetArraySize(data) != b->ncols) {
		WHY("BATCH has %d columns and %d data arrays (1..%u, equal)", b->ncols,
		    cJSON_GetArraySize(data), APSYNC_MAX_COLUMNS);
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

int aps_batch_builder_init(struct aps_batch_builder *bb, int64_t job, const char *list,
			   const char *key, const char *const *cols, int ncols)
{
	cJSON *c, *d;
	int i;

	memset(bb, 0, sizeof(*bb));
	if (ncols < 1 || ncols > (int)APSYNC_MAX_COLUMNS)
		return APS_ERR_RANGE;
	bb->root = cJSON_CreateObject();
	if (!bb->root)
		return APS_ERR_NOMEM;
	cJSON_AddNumberToObject(bb->root, "job", (double)job);
	cJSON_AddStringToObject(bb->root, "list", list);
	cJSON_AddStringToObject(bb->root, "key", key);
	cJSON_AddNumberToObject(bb->root, "rows", 0);
	c = cJSON_AddArrayToObject(bb->root, "cols");
	d = cJSON_AddArrayToObject(bb->root, "data");
	if (!c || !d)
		goto nomem;
	for (i = 0; i < ncols; i++) {
		if (!cJSON_AddItemToArray(c, cJSON_CreateString(cols[i])))
			goto nomem;
		bb->data[i] = cJSON_CreateArray();
		if (!cJSON_AddItemToArray(d, bb->data[i]))
			goto nomem;
	}
	bb->ncols = ncols;
	bb->approx_bytes = 64;
	return APS_OK;
nomem:
	aps_batch_builder_free(bb);
	return APS_ERR_NOMEM;
}

/* A rough size of a value printed as JSON, for batch byte limits. */
static size_t approx_size(const cJSON *v)
{
	const cJSON *c;
	size_t n = 2;

	if (cJSON_IsString(v))
		return strlen(v->valuestring) + 3;
	if (cJSON_IsNumber(v))
		return 12;
	if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
		cJSON_ArrayForEach(c, v)
			n += approx_size(c) + (c->string ? strlen(c->string) + 4 : 1);
		return n;
	}
	return 5;
}

int aps_batch_builder_add(struct aps_batch_builder *bb, cJSON **vals)
{
	int i, rc = APS_OK;

	for (i = 0; i < bb->ncols; i++) {
		if (rc == APS_OK && vals[i]) {
			bb->approx_bytes += approx_size(vals[i]);
			cJSON_AddItemToArray(bb->data[i], vals[i]);
		} else {
			cJSON_Delete(vals[i]);
			rc = APS_ERR_NOMEM;
		}
		vals[i] = NULL;
	}
	if (rc == APS_OK)
		bb->nrows++;
	return rc;
}

cJSON *aps_batch_builder_take(struct aps_batch_builder *bb)
{
	cJSON *root = bb->root;

	if (root)
		cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(root, "rows"), bb->nrows);
	memset(bb, 0, sizeof(*bb));
	return root;
}

void aps_batch_builder_free(struct aps_batch_builder *bb)
{
	cJSON_Delete(bb->root);
	memset(bb, 0, sizeof(*bb));
}

/* Canonical encoding: per value a tag byte, then for strings and nested values
 * a 4-byte big-endian length and the bytes. */
static void hash_value(EVP_MD_CTX *md, const cJSON *v)
{
	unsigned char tag, len[4];
	const char *s = NULL;
	char num[32], *printed = NULL;
	size_t n;

	if (cJSON_IsString(v)) {
		tag = 's';
		s = v->valuestring;
	} else if (cJSON_IsNumber(v)) {
		tag = 'd';
		snprintf(num, sizeof(num), "%.17g", v->valuedouble);
		s = num;
	} else if (cJSON_IsTrue(v)) {
		tag = 't';
	} else if (cJSON_IsFalse(v)) {
		tag = 'f';
	} else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
		tag = 'j';
		printed = cJSON_PrintUnformatted(v);
		s = printed ? printed : "";
	} else {
		tag = 'n';
	}
	EVP_DigestUpdate(md, &tag, 1);
	if (s) {
		n = strlen(s);
		len[0] = (unsigned char)(n >> 24);
		len[1] = (unsigned char)(n >> 16);
		len[2] = (unsigned char)(n >> 8);
		len[3] = (unsigned char)n;
		EVP_DigestUpdate(md, len, 4);
		EVP_DigestUpdate(md, s, n);
	}
	cJSON_free(printed);
}

uint64_t aps_row_hash(EVP_MD_CTX *md, const cJSON *const *vals, int ncols)
{
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned int outlen = 0;
	uint64_t h = 0;
	int i;

	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (i = 0; i < ncols; i++)
		hash_value(md, vals[i]);
	EVP_DigestFinal_ex(md, out, &outlen);
	for (i = 0; i < 8; i++)
		h = h << 8 | out[i];
	return h;
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
