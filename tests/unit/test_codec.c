/* The frame codec and batch rules against proto/vectors/frames.json, plus
 * round trips and the encoder's own limits. */
#include <stdlib.h>
#include <string.h>

#include "apsync_proto.h"
#include "batch.h"
#include "codec.h"
#include "err.h"
#include "tap.h"
#include "util.h"

static cJSON *vectors;

static uint8_t *unhex(const char *hex, size_t *len)
{
	size_t n = strlen(hex) / 2, i;
	uint8_t *b = malloc(n ? n : 1);
	unsigned int v;

	for (i = 0; i < n; i++) {
		sscanf(hex + 2 * i, "%2x", &v);
		b[i] = (uint8_t)v;
	}
	*len = n;
	return b;
}

/* A vector's bytes: its hex, or a prefix followed by a fill byte. */
static uint8_t *vector_bytes(const cJSON *v, size_t *len)
{
	const cJSON *fill = cJSON_GetObjectItem(v, "fill");
	uint8_t *prefix, *b;
	size_t plen, total;

	if (!fill)
		return unhex(cJSON_GetObjectItem(v, "hex")->valuestring, len);
	prefix = unhex(cJSON_GetObjectItem(fill, "prefix_hex")->valuestring, &plen);
	total = (size_t)cJSON_GetObjectItem(fill, "length")->valuedouble;
	b = malloc(total);
	memcpy(b, prefix, plen);
	memset(b + plen, (int)cJSON_GetObjectItem(fill, "byte")->valuedouble, total - plen);
	free(prefix);
	*len = total;
	return b;
}

TEST(vectors_frames)
{
	const cJSON *v, *frames = cJSON_GetObjectItem(vectors, "frames");
	struct aps_codec c;
	struct aps_frame f;
	char why[256];
	int n = 0;

	aps_codec_init(&c, NULL);
	cJSON_ArrayForEach(v, frames) {
		const char *name = cJSON_GetObjectItem(v, "name")->valuestring;
		const char *expect = cJSON_GetObjectItem(v, "expect")->valuestring;
		size_t len;
		uint8_t *b = vector_bytes(v, &len);
		int rc = aps_frame_decode(&c, b, len, &f, why, sizeof(why));

		if (strcmp(aps_errcode(rc), expect)) {
			printf("#   vector %s: got %s (%s), expected %s\n", name, aps_errcode(rc), why,
			       expect);
			tap_case_failed = 1;
		}
		if (rc == APS_OK) {
			CHECK_EQ_INT(f.type, cJSON_GetObjectItem(v, "type")->valuedouble);
			CHECK(f.seq == strtoull(cJSON_GetObjectItem(v, "seq")->valuestring, NULL, 10));
			CHECK(f.ack == strtoull(cJSON_GetObjectItem(v, "ack")->valuestring, NULL, 10));
			if (!cJSON_Compare(f.body, cJSON_GetObjectItem(v, "body"), 1)) {
				printf("#   vector %s: body differs\n", name);
				tap_case_failed = 1;
			}
		} else {
			CHECK(why[0] != '\0'); /* every refusal explains itself */
			CHECK(f.body == NULL);
		}
		aps_frame_clear(&f);
		free(b);
		n++;
	}
	CHECK(n >= 25);
	aps_codec_free(&c);
}

TEST(vectors_batches)
{
	const cJSON *v, *batches = cJSON_GetObjectItem(vectors, "batches");
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct aps_batch b;
	struct aps_batch_iter it;
	const cJSON *vals[APSYNC_MAX_COLUMNS];
	char why[256], hex[17];
	int n = 0;

	cJSON_ArrayForEach(v, batches) {
		const char *name = cJSON_GetObjectItem(v, "name")->valuestring;
		const char *expect = cJSON_GetObjectItem(v, "expect")->valuestring;
		int rc = aps_batch_parse(cJSON_GetObjectItem(v, "body"), &b, why, sizeof(why));
		uint64_t sum = 0;
		int row = 0;

		n++;
		if (strcmp(aps_errcode(rc), expect)) {
			printf("#   batch %s: got %s (%s), expected %s\n", name, aps_errcode(rc), why,
			       expect);
			tap_case_failed = 1;
			continue;
		}
		if (rc)
			continue;
		aps_batch_iter_init(&it, &b);
		while (aps_batch_iter_next(&it, vals)) {
			uint64_t h = aps_row_hash(md, vals, b.ncols);

			aps_checksum_hex(h, hex);
			CHECK_EQ_STR(hex, cJSON_GetArrayItem(cJSON_GetObjectItem(v, "row_hashes"),
							     row)
						  ->valuestring);
			sum += h;
			row++;
		}
		CHECK_EQ_INT(row, b.nrows);
		aps_checksum_hex(sum, hex);
		CHECK_EQ_STR(hex, cJSON_GetObjectItem(v, "checksum")->valuestring);
	}
	CHECK(n >= 10);
	EVP_MD_CTX_free(md);
}

TEST(roundtrip_levels)
{
	struct aps_codec c;
	struct aps_buf out = {0};
	struct aps_frame f;
	cJSON *body = cJSON_CreateObject(), *arr;
	int level, i, rc;

	aps_codec_init(&c, NULL);
	arr = cJSON_AddArrayToObject(body, "values");
	for (i = 0; i < 2000; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateNumber(i * 7 % 1013));
	for (level = 0; level <= 9; level++) {
		out.len = 0;
		rc = aps_frame_encode_json(&c, &out, APSYNC_MSG_LOG, 42, 7, body, level);
		CHECK_EQ_INT(rc, APS_OK);
		CHECK_EQ_INT(out.data[3] & APSYNC_FLAG_DEFLATE, level ? 1 : 0);
		rc = aps_frame_decode(&c, out.data, out.len, &f, NULL, 0);
		CHECK_EQ_INT(rc, APS_OK);
		CHECK(f.seq == 42 && f.ack == 7 && f.type == APSYNC_MSG_LOG);
		CHECK(cJSON_Compare(f.body, body, 1));
		aps_frame_clear(&f);
	}
	/* the ack can be rewritten in place */
	aps_frame_set_ack(out.data, 99);
	CHECK_EQ_INT(aps_frame_decode(&c, out.data, out.len, &f, NULL, 0), APS_OK);
	CHECK(f.ack == 99);
	CHECK(aps_frame_get_seq(out.data) == 42);
	aps_frame_clear(&f);
	aps_buf_free(&out);
	cJSON_Delete(body);
	aps_codec_free(&c);
}

TEST(encoder_keeps_ratio_below_limit)
{
	struct aps_codec c;
	struct aps_buf out = {0};
	struct aps_frame f;
	size_t n = 2 * 1024 * 1024;
	char *text = malloc(n + 16);

	/* 2 MB of one repeated value would compress ~1000:1: sent plain instead. */
	memcpy(text, "{\"x\":\"", 6);
	memset(text + 6, 'a', n);
	memcpy(text + 6 + n, "\"}", 3);
	aps_codec_init(&c, NULL);
	CHECK_EQ_INT(aps_frame_encode(&c, &out, APSYNC_MSG_LOG, 1, 0, text, n + 8, 9), APS_OK);
	CHECK_EQ_INT(out.data[3] & APSYNC_FLAG_DEFLATE, 0);
	CHECK_EQ_INT(aps_frame_decode(&c, out.data, out.len, &f, NULL, 0), APS_OK);
	aps_frame_clear(&f);
	aps_buf_free(&out);
	aps_codec_free(&c);
	free(text);
}

TEST(encoder_refuses_oversize)
{
	struct aps_codec c;
	struct aps_buf out = {0};
	struct aps_limits lim = aps_limits_default;
	char body[600];

	lim.max_frame = 512;
	lim.max_inflated = 1024;
	aps_codec_init(&c, &lim);
	memset(body, ' ', sizeof(body));
	body[0] = '{';
	body[sizeof(body) - 1] = '}';
	/* 600 bytes of whitespace compress well under 512: accepted deflated */
	CHECK_EQ_INT(aps_frame_encode(&c, &out, APSYNC_MSG_LOG, 1, 0, body, sizeof(body), 1),
		     APS_OK);
	out.len = 0;
	/* plain it does not fit */
	CHECK_EQ_INT(aps_frame_encode(&c, &out, APSYNC_MSG_LOG, 1, 0, body, sizeof(body), 0),
		     APS_ERR_TOO_BIG);
	CHECK_EQ_INT(out.len, 0);
	CHECK_EQ_INT(aps_frame_encode(&c, &out, APSYNC_MSG_LOG, 1, 0, body, 2000, 1),
		     APS_ERR_INFLATED_TOO_BIG);
	aps_buf_free(&out);
	aps_codec_free(&c);
}

TEST(decoder_limits_are_configurable)
{
	struct aps_codec c;
	struct aps_limits lim = aps_limits_default;
	struct aps_buf out = {0};
	struct aps_frame f;

	aps_codec_init(&c, NULL);
	aps_frame_encode(&c, &out, APSYNC_MSG_HEARTBEAT, 0, 0, "{\"pad\":\"0123456789\"}", 20, 0);
	aps_codec_free(&c);
	lim.max_frame = 30; /* the frame is 44 bytes */
	aps_codec_init(&c, &lim);
	CHECK_EQ_INT(aps_frame_decode(&c, out.data, out.len, &f, NULL, 0), APS_ERR_TOO_BIG);
	aps_codec_free(&c);
	aps_buf_free(&out);
}

TEST(batch_builder_roundtrip)
{
	static const char *const cols[] = {"code", "name", "lines"};
	struct aps_batch_builder bb;
	struct aps_batch b;
	struct aps_batch_iter it;
	const cJSON *vals[3];
	cJSON *row[3], *body;
	char why[200];
	int i, n = 0;

	CHECK_EQ_INT(aps_batch_builder_init(&bb, 9, "purchase_orders", "code", cols, 3), APS_OK);
	for (i = 0; i < 50; i++) {
		char code[16];

		snprintf(code, sizeof(code), "PO%03d", i);
		row[0] = cJSON_CreateString(code);
		row[1] = cJSON_CreateString("order");
		row[2] = cJSON_CreateArray();
		cJSON_AddItemToArray(row[2], cJSON_CreateNumber(i));
		CHECK_EQ_INT(aps_batch_builder_add(&bb, row), APS_OK);
	}
	CHECK(bb.approx_bytes > 50 * 10);
	body = aps_batch_builder_take(&bb);
	CHECK_EQ_INT(aps_batch_parse(body, &b, why, sizeof(why)), APS_OK);
	CHECK_EQ_INT(b.nrows, 50);
	CHECK_EQ_INT(b.key_col, 0);
	CHECK_EQ_STR(b.list, "purchase_orders");
	aps_batch_iter_init(&it, &b);
	while (aps_batch_iter_next(&it, vals)) {
		CHECK(cJSON_IsArray(vals[2]));
		CHECK_EQ_INT(cJSON_GetArrayItem(vals[2], 0)->valuedouble, n);
		n++;
	}
	CHECK_EQ_INT(n, 50);
	cJSON_Delete(body);
}

TEST(json_precheck)
{
	CHECK_EQ_INT(aps_json_precheck("{\"a\":\"[[[[\"}", 12, 1), APS_OK); /* brackets in strings */
	CHECK_EQ_INT(aps_json_precheck("{\"a\":\"\\\"[\"}", 11, 1), APS_OK); /* escaped quote */
	CHECK_EQ_INT(aps_json_precheck("[[", 2, 1), APS_ERR_JSON_DEPTH);
	CHECK_EQ_INT(aps_json_precheck("}", 1, 4), APS_ERR_JSON);
	CHECK_EQ_INT(aps_json_precheck("\"open", 5, 4), APS_ERR_JSON);
	CHECK_EQ_INT(aps_json_precheck("\"\xed\xa0\x80\"", 5, 4), APS_ERR_JSON); /* surrogate */
	CHECK_EQ_INT(aps_json_precheck("\"\xf4\x90\x80\x80\"", 6, 4), APS_ERR_JSON);
	CHECK_EQ_INT(aps_json_precheck("\"\xe2\x82\xac\"", 5, 4), APS_OK); /* euro sign */
}

TEST(message_names)
{
	CHECK_EQ_STR(aps_msg_name(APSYNC_MSG_BATCH), "BATCH");
	CHECK(aps_msg_name(0x7f) == NULL);
	CHECK(aps_msg_sequenced(APSYNC_MSG_BATCH));
	CHECK(!aps_msg_sequenced(APSYNC_MSG_HEARTBEAT));
	CHECK_EQ_INT(aps_err_from_code("frame_too_big"), APS_ERR_TOO_BIG);
	CHECK_EQ_INT(aps_err_from_code("no such code"), APS_ERR_INTERNAL);
}

int main(void)
{
	char *text = NULL;
	const char *path = getenv("APSYNC_VECTORS") ? getenv("APSYNC_VECTORS")
						    : "proto/vectors/frames.json";

	if (aps_read_file(path, 1 << 24, &text, NULL) || !(vectors = cJSON_Parse(text))) {
		printf("not ok 1 - cannot read the vectors %s\n1..1\n", path);
		return 1;
	}
	free(text);
	RUN(vectors_frames);
	RUN(vectors_batches);
	RUN(roundtrip_levels);
	RUN(encoder_keeps_ratio_below_limit);
	RUN(encoder_refuses_oversize);
	RUN(decoder_limits_are_configurable);
	RUN(batch_builder_roundtrip);
	RUN(json_precheck);
	RUN(message_names);
	cJSON_Delete(vectors);
	return tap_done();
}
