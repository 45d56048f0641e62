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
	struct aps_hasher md;
	struct aps_batch b;
	struct aps_batch_iter it;
	const cJSON *vals[APSYNC_MAX_COLUMNS];
	char why[256], hex[17];
	int n = 0;

	aps_hasher_init(&md);
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
			uint64_t h = aps_row_hash(&md, vals, b.ncols);

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
	aps_hasher_free(&md);
}

TEST(roundtrip_codecs_and_levels)
{
	static const struct {
		enum aps_compression algo;
		int level, flag;
	} cases[] = {
		{APS_COMPRESS_NONE, 0, 0},           {APS_COMPRESS_DEFLATE, 1, APSYNC_FLAG_DEFLATE},
		{APS_COMPRESS_DEFLATE, 9, APSYNC_FLAG_DEFLATE}, {APS_COMPRESS_ZSTD, 1, APSYNC_FLAG_ZSTD},
		{APS_COMPRESS_ZSTD, 3, APSYNC_FLAG_ZSTD},       {APS_COMPRESS_ZSTD, 19, APSYNC_FLAG_ZSTD},
	};
	struct aps_codec c;
	struct aps_buf out = {0};
	struct aps_frame f;
	cJSON *body = cJSON_CreateObject(), *arr;
	size_t k;
	int i, rc;

	aps_codec_init(&c, NULL);
	arr = cJSON_AddArrayToObject(body, "values");
	for (i = 0; i < 2000; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateNumber(i * 7 % 1013));
	for (k = 0; k < APS_ARRAY_LEN(cases); k++) {
		aps_codec_set_compression(&c, cases[k].algo, cases[k].level);
		out.len = 0;
		rc = aps_frame_encode_json(&c, &out, APSYNC_MSG_LOG, 42, 7, body, 1);
		CHECK_EQ_INT(rc, APS_OK);
		CHECK_EQ_INT(out.data[3], cases[k].flag);
		rc = aps_frame_decode(&c, out.data, out.len, &f, NULL, 0);
		CHECK_EQ_INT(rc, APS_OK);
		CHECK(f.seq == 42 && f.ack == 7 && f.type == APSYNC_MSG_LOG);
		CHECK(cJSON_Compare(f.body, body, 1));
		aps_frame_clear(&f);
	}
	/* compress = 0 never compresses */
	out.len = 0;
	CHECK_EQ_INT(aps_frame_encode_json(&c, &out, APSYNC_MSG_LOG, 42, 7, body, 0), APS_OK);
	CHECK_EQ_INT(out.data[3], 0);
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
	aps_codec_set_compression(&c, APS_COMPRESS_DEFLATE, 9);
	CHECK_EQ_INT(aps_frame_encode(&c, &out, APSYNC_MSG_LOG, 1, 0, text, n + 8, 1), APS_OK);
	CHECK_EQ_INT(out.data[3] & APSYNC_FLAGS_CODECS, 0);
	out.len = 0;
	aps_codec_set_compression(&c, APS_COMPRESS_ZSTD, 19);
	CHECK_EQ_INT(aps_frame_encode(&c, &out, APSYNC_MSG_LOG, 1, 0, text, n + 8, 1), APS_OK);
	CHECK_EQ_INT(out.data[3] & APSYNC_FLAGS_CODECS, 0);
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
	/* 600 bytes of whitespace compress well under 512: accepted compressed */
	CHECK_EQ_INT(aps_frame_encode(&c, &out, APSYNC_MSG_LOG, 1, 0, body, sizeof(body), 1),
		     APS_OK);
	CHECK(out.data[3] & APSYNC_FLAG_ZSTD);
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
	static const char *const cols[] = {"code", "name", "lines", "flag", "qty", "none"};
	struct aps_batch_builder bb = {0};
	struct aps_buf text = {0};
	struct aps_hasher h;
	struct aps_batch b;
	struct aps_batch_iter it;
	struct aps_value row[6];
	const cJSON *vals[6];
	uint64_t agent_sum = 0, broker_sum = 0;
	cJSON *body;
	char why[200], code[16], lines[64];
	int i, n = 0;

	aps_hasher_init(&h);
	CHECK_EQ_INT(aps_batch_builder_init(&bb, 9, "purchase_orders", "code", cols, 6), APS_OK);
	for (i = 0; i < 50; i++) {
		snprintf(code, sizeof(code), "PO%03d", i);
		snprintf(lines, sizeof(lines), "[{\"line\":%d,\"item\":null}]", i);
		row[0] = (struct aps_value){.type = APS_V_TEXT, .s = code};
		row[1] = (struct aps_value){.type = APS_V_TEXT, .s = "Quote \" \\ tab\t é"};
		row[2] = (struct aps_value){.type = APS_V_JSON, .s = lines};
		row[3] = (struct aps_value){.type = i % 2 ? APS_V_TRUE : APS_V_FALSE};
		row[4] = (struct aps_value){.type = APS_V_INT, .i = i * 1000 - 7};
		row[5] = (struct aps_value){.type = APS_V_NULL};
		agent_sum += aps_row_hash_values(&h, row, 6);
		CHECK_EQ_INT(aps_batch_builder_add(&bb, row), APS_OK);
	}
	CHECK(bb.approx_bytes > 50 * 40);
	CHECK_EQ_INT(aps_batch_builder_finish(&bb, 1, "PN999", &text), APS_OK);
	body = cJSON_ParseWithLength((const char *)text.data, text.len);
	CHECK(body != NULL);
	CHECK_EQ_INT(aps_batch_parse(body, &b, why, sizeof(why)), APS_OK);
	CHECK_EQ_INT(b.nrows, 50);
	CHECK_EQ_STR(cJSON_GetObjectItem(body, "after")->valuestring, "PN999");
	aps_batch_iter_init(&it, &b);
	while (aps_batch_iter_next(&it, vals)) {
		CHECK(cJSON_IsArray(vals[2]));
		CHECK_EQ_STR(vals[1]->valuestring, "Quote \" \\ tab\t é");
		CHECK_EQ_INT(vals[4]->valuedouble, n * 1000 - 7);
		broker_sum += aps_row_hash(&h, vals, b.ncols);
		n++;
	}
	CHECK_EQ_INT(n, 50);
	/* the agent's hash of its values equals the broker's of what it parsed */
	CHECK(agent_sum == broker_sum);
	/* a second batch reuses the buffers; without "after" no field */
	CHECK_EQ_INT(aps_batch_builder_init(&bb, 9, "units", "code", cols, 1), APS_OK);
	CHECK_EQ_INT(aps_batch_builder_add(&bb, row), APS_OK);
	CHECK_EQ_INT(aps_batch_builder_finish(&bb, 0, NULL, &text), APS_OK);
	CHECK(strstr((const char *)text.data, "\"after\"") == NULL);
	cJSON_Delete(body);
	aps_buf_free(&text);
	aps_batch_builder_free(&bb);
	aps_hasher_free(&h);
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
	RUN(roundtrip_codecs_and_levels);
	RUN(encoder_keeps_ratio_below_limit);
	RUN(encoder_refuses_oversize);
	RUN(decoder_limits_are_configurable);
	RUN(batch_builder_roundtrip);
	RUN(json_precheck);
	RUN(message_names);
	cJSON_Delete(vectors);
	return tap_done();
}
