/* The broker's BATCH reader (broker/batchscan.c) against the reader it
 * replaced: cJSON's parse of the whole body, aps_batch_parse(),
 * aps_row_hash() and cJSON's print of each row's values. Both must accept
 * and refuse the same bodies with the same codes, and agree on every key,
 * status, modification time, row hash and stored text. */
#include <stdlib.h>
#include <string.h>

#include "apsync_proto.h"
#include "arena.h"
#include "batch.h"
#include "batchscan.h"
#include "codec.h"
#include "err.h"
#include "tap.h"
#include "util.h"

static cJSON *vectors;

/* What a reader made of a body. */
struct result {
	int rc;
	int nrows;
	uint64_t checksum;
	uint64_t hash[64];
	char *key[64], *status[64], *modified[64], *text[64];
	char why[300];
};

static void result_free(struct result *r)
{
	int i;

	for (i = 0; i < r->nrows && i < 64; i++) {
		free(r->key[i]);
		free(r->status[i]);
		free(r->modified[i]);
		free(r->text[i]);
	}
	memset(r, 0, sizeof(*r));
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The reader as it was: a cJSON tree of the body. */
static void old_reader(const char *text, size_t len, struct result *r)
{
	struct aps_hasher h;
	struct aps_batch b;
	struct aps_batch_iter it;
	const cJSON *vals[APSYNC_MAX_COLUMNS];
	const char *end = NULL;
	struct aps_buf row = {0};
	cJSON *body;
	char *p;
	int i, c, sc = -1, mc = -1;

	memset(r, 0, sizeof(*r));
	aps_hasher_init(&h);
	body = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (body && end)
		while (end < text + len && strchr(" \t\r\n", *end))
			end++;
	if (!body || !cJSON_IsObject(body) || end != text + len) {
		r->rc = APS_ERR_JSON;
		goto out;
	}
	r->rc = aps_batch_parse(body, &b, r->why, sizeof(r->why));
	if (r->rc)
		goto out;
	for (c = 0; c < b.ncols; c++) {
		if (!strcmp(b.cols[c], "status"))
			sc = c;
		else if (!strcmp(b.cols[c], "modified_at"))
			mc = c;
	}
	aps_batch_iter_init(&it, &b);
	for (i = 0; aps_batch_iter_next(&it, vals); i++) {
		r->hash[i % 64] = aps_row_hash(&h, vals, b.ncols);
		r->checksum += aps_row_hash(&h, vals, b.ncols);
		if (i >= 64)
			continue;
		row.len = 0;
		aps_buf_append(&row, "[", 1);
		for (c = 0; c < b.ncols; c++) {
			p = cJSON_PrintUnformatted(vals[c]);
			if (c)
				aps_buf_append(&row, ",", 1);
			aps_buf_append_str(&row, p);
			cJSON_free(p);
		}
		aps_buf_append(&row, "]", 1);
		aps_buf_terminate(&row);
		r->text[i] = strdup((const char *)row.data);
		r->key[i] = strdup(vals[b.key_col]->valuestring);
		r->status[i] = dup_or_null(sc >= 0 && cJSON_IsString(vals[sc]) ? vals[sc]->valuestring
									: NULL);
		r->modified[i] = dup_or_null(
			mc >= 0 && cJSON_IsString(vals[mc]) ? vals[mc]->valuestring : NULL);
	}
	r->nrows = i;
out:
	cJSON_Delete(body);
	aps_buf_free(&row);
	aps_hasher_free(&h);
}

/* The broker's reader. */
static void new_reader(struct batch_scanner *bs, const char *text, size_t len, struct result *r)
{
	struct aps_arena arena = {0};
	struct aps_buf rows = {0};
	struct batch_rows br;
	int i;

	memset(r, 0, sizeof(*r));
	aps_arena_use(&arena);
	r->rc = batch_scan(bs, &arena, text, len, &br, &rows, r->why, sizeof(r->why));
	aps_arena_use(NULL);
	if (!r->rc) {
		r->nrows = br.b.nrows;
		r->checksum = br.checksum;
		for (i = 0; i < br.b.nrows; i++) {
			r->hash[i % 64] = br.rows[i].hash;
			if (i >= 64)
				continue;
			r->text[i] = strndup(br.rows[i].data, br.rows[i].data_len);
			r->key[i] = strdup(br.rows[i].key);
			r->status[i] = dup_or_null(br.rows[i].status);
			r->modified[i] = dup_or_null(br.rows[i].modified);
		}
	}
	aps_arena_free(&arena);
	aps_buf_free(&rows);
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* 1 if both readers agree on text; prints the difference otherwise. */
static int agree(struct batch_scanner *bs, const char *text, size_t len, const char *label)
{
	struct result o, n;
	int i, ok = 1;

	old_reader(text, len, &o);
	new_reader(bs, text, len, &n);
	if (o.rc != n.rc) {
		printf("#   %s: old %s (%s), new %s (%s)\n#   body: %.*s\n", label,
		       aps_errcode(o.rc), o.why, aps_errcode(n.rc), n.why, (int)(len > 300 ? 300 : len),
		       text);
		ok = 0;
	} else if (!o.rc) {
		if (o.nrows != n.nrows || o.checksum != n.checksum) {
			printf("#   %s: rows %d/%d checksum %016llx/%016llx\n", label, o.nrows, n.nrows,
			       (unsigned long long)o.checksum, (unsigned long long)n.checksum);
			ok = 0;
		}
		for (i = 0; ok && i < o.nrows && i < 64; i++) {
			if (o.hash[i] != n.hash[i] || !same_str(o.key[i], n.key[i]) ||
			    !same_str(o.status[i], n.status[i]) ||
			    !same_str(o.modified[i], n.modified[i]) || !same_str(o.text[i], n.text[i])) {
				printf("#   %s row %d: key %s/%s text\n#     %s\n#     %s\n", label, i,
				       o.key[i], n.key[i], o.text[i], n.text[i]);
				ok = 0;
			}
		}
	}
	result_free(&o);
	result_free(&n);
	return ok;
}

TEST(vectors_batches)
{
	const cJSON *v, *batches = cJSON_GetObjectItem(vectors, "batches");
	struct batch_scanner bs;
	struct result r;
	char hex[17], *text;
	int n = 0, i, pretty;

	batch_scanner_init(&bs);
	cJSON_ArrayForEach(v, batches) {
		const char *name = cJSON_GetObjectItem(v, "name")->valuestring;
		const char *expect = cJSON_GetObjectItem(v, "expect")->valuestring;

		for (pretty = 0; pretty < 2; pretty++) {
			/* compact as agents send it, and with whitespace everywhere */
			text = pretty ? cJSON_Print(cJSON_GetObjectItem(v, "body"))
				      : cJSON_PrintUnformatted(cJSON_GetObjectItem(v, "body"));
			new_reader(&bs, text, strlen(text), &r);
			if (strcmp(aps_errcode(r.rc), expect)) {
				printf("#   batch %s: got %s (%s), expected %s\n", name,
				       aps_errcode(r.rc), r.why, expect);
				tap_case_failed = 1;
			} else if (!r.rc) {
				for (i = 0; i < r.nrows; i++) {
					aps_checksum_hex(r.hash[i], hex);
					CHECK_EQ_STR(hex, cJSON_GetArrayItem(
								  cJSON_GetObjectItem(v, "row_hashes"), i)
								  ->valuestring);
				}
				aps_checksum_hex(r.checksum, hex);
				CHECK_EQ_STR(hex, cJSON_GetObjectItem(v, "checksum")->valuestring);
			}
			CHECK(agree(&bs, text, strlen(text), name));
			result_free(&r);
			cJSON_free(text);
		}
		n++;
	}
	CHECK(n >= 10);
	batch_scanner_free(&bs);
}

/* Hand-written bodies: odd but valid values, and broken ones. */
TEST(agrees_on_edge_cases)
{
	static const char *const bodies[] = {
		/* escapes, unicode, surrogate pairs, every escape letter */
		"{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":2,\"cols\":[\"code\",\"name\"],"
		"\"data\":[[\"A\\u00e9\",\"\\ud83d\\ude00\"],[\"q\\\"b\\\\s\\/f\\b\\f\\n\\r\\t\","
		"\"\\u001f\\u007f\\u2028\"]]}",
		/* numbers in every form cJSON takes, nested values, literals */
		"{\"job\":1,\"list\":\"po\",\"key\":\"k\",\"rows\":3,\"cols\":[\"k\",\"n\",\"j\",\"b\"],"
		"\"data\":[[\"a\",\"b\",\"c\"],[1e300,-0.5,12345678901234567890],"
		"[[1,{\"a\":[true,null,\"x\\u00e9\"]}],{},[]],[true,false,null]]}",
		"{\"job\":1,\"list\":\"po\",\"key\":\"k\",\"rows\":2,\"cols\":[\"k\",\"n\"],"
		"\"data\":[[\"a\",\"b\"],[0,-0]]}",
		"{\"job\":1,\"list\":\"po\",\"key\":\"k\",\"rows\":2,\"cols\":[\"k\",\"n\"],"
		"\"data\":[[\"a\",\"b\"],[1E5,2.50]]}",
		/* whitespace everywhere, members in another order, after, unknown members */
		" \r\n{ \"data\" : [ [ \"V1\" , \"V2\" ] , [ \"active\" ,\t\"x\" ] , [ null , "
		"\"2024-01-01T00:00:00.000-05:00\" ] ] , \"rows\" : 2 , \"extra\" : {\"a\":[1,2]} ,"
		" \"cols\" : [ \"code\" , \"status\" , \"modified_at\" ] , \"key\" : \"code\" , "
		"\"list\" : \"vendors\" , \"job\" : 3 , \"after\" : null } \n",
		/* duplicate members: the first counts, as with cJSON */
		"{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,\"cols\":[\"code\"],"
		"\"data\":[[\"A\"]],\"data\":[[\"B\",\"C\"]],\"rows\":9}",
		/* escaped member names */
		"{\"j\\u006fb\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,\"cols\":[\"code\"],"
		"\"d\\u0061ta\":[[\"A\"]]}",
		/* keys: escaped, 256 bytes decoded, not strings */
		"{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,\"cols\":[\"code\"],"
		"\"data\":[[\"\\u00e9\\u00e9\"]]}",
		"{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,\"cols\":[\"code\"],"
		"\"data\":[[true]]}",
		"{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,\"cols\":[\"code\"],"
		"\"data\":[[\"\"]]}",
		/* rules broken */
		"{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,\"cols\":[\"code\"],"
		"\"data\":{}}",
		"{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,\"cols\":[\"code\"]}",
		"{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,\"cols\":[\"code\"],"
		"\"data\":[\"A\"]}",
		"{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,\"cols\":[\"code\"],"
		"\"data\":[[\"A\"],[\"B\"]]}",
		"{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,\"cols\":[\"code\"],"
		"\"data\":[]}",
		"{\"job\":0,\"list\":\"units\",\"key\":\"code\",\"rows\":1,\"cols\":[\"code\"],"
		"\"data\":[[\"A\"]]}",
		"{}",
		/* not JSON, or not one object */
		"[]",
		"{\"job\":1,\"data\":[[\"A\",]]}",
		"{\"job\":1,\"data\":[[\"A\"]}",
		"{\"job\":1,\"data\":[[\"A\" \"B\"]]}",
		"{\"job\":1,\"data\":[[tru]]}",
		"{\"job\":1,\"data\":[[\"\\x\"]]}",
		"{\"job\":1,\"data\":[[\"\\u12\"]]}",
		"{\"job\":1,\"data\":[[\"\\ud800\"]]}",
		"{\"job\":1,\"data\":[[\"\\udc00x\"]]}",
		"{\"job\":1,\"data\":[[\"\\ud800\\u0041\"]]}",
		"{\"job\":1,\"data\":[[+1]]}",
		"{\"job\":1,\"data\":[[.5]]}",
		"{\"job\":1,\"data\":[[1.2.3]]}",
		"{\"job\":1,\"data\":[[\"A\"]]} x",
		"{\"job\":1,\"data\":[[\"A\"]]}{}",
		"{\"job\":1 \"data\":[]}",
		"{\"job\":1,}",
		"{job:1}",
		"",
	};
	struct batch_scanner bs;
	char label[32];
	size_t i;

	batch_scanner_init(&bs);
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		snprintf(label, sizeof(label), "body %zu", i);
		CHECK(agree(&bs, bodies[i], strlen(bodies[i]), label));
	}
	batch_scanner_free(&bs);
}

/* What the new reader refuses and the old one let through: raw control
 * characters in strings, and U+0000 (which cut cJSON's strings short). */
TEST(refuses_control_characters_and_nul)
{
	static const char ctl[] = "{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,"
				  "\"cols\":[\"code\"],\"data\":[[\"A\tB\"]]}";
	static const char nul[] = "{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,"
				  "\"cols\":[\"code\"],\"data\":[[\"A\\u0000B\"]]}";
	struct batch_scanner bs;
	struct result r;

	batch_scanner_init(&bs);
	new_reader(&bs, ctl, strlen(ctl), &r);
	CHECK_EQ_INT(r.rc, APS_ERR_JSON);
	CHECK(strstr(r.why, "control character") != NULL);
	result_free(&r);
	new_reader(&bs, nul, strlen(nul), &r);
	CHECK_EQ_INT(r.rc, APS_ERR_MESSAGE);
	CHECK(strstr(r.why, "U+0000") != NULL);
	result_free(&r);
	batch_scanner_free(&bs);
}

/* A realistic batch, built by the agent's builder: every prefix of it is
 * refused as not JSON (a cut frame loses nothing silently); every
 * single-byte change either is refused by both readers alike or read alike. */
TEST(truncations_and_mutations)
{
	static const char *const cols[] = {"code", "name", "status", "lines", "qty", "flag",
					   "modified_at"};
	struct aps_batch_builder bb = {0};
	struct aps_buf body = {0};
	struct aps_value row[7];
	struct batch_scanner bs;
	struct result r;
	char code[16], name[64], lines[64], *text;
	size_t len, i;
	unsigned seed = 12345;
	int k, bad = 0, mutated = 0;

	batch_scanner_init(&bs);
	aps_batch_builder_init(&bb, 4, "vendors", "code", cols, 7);
	for (k = 0; k < 40; k++) {
		snprintf(code, sizeof(code), "V%04d", k);
		snprintf(name, sizeof(name), "Name \"%d\" \\ é\t%c", k, 'a' + k % 26);
		snprintf(lines, sizeof(lines), "[{\"line\":%d,\"qty\":%d.5}]", k, k);
		row[0] = (struct aps_value){.type = APS_V_TEXT, .s = code};
		row[1] = (struct aps_value){.type = APS_V_TEXT, .s = name};
		row[2] = (struct aps_value){.type = APS_V_TEXT, .s = k % 3 ? "active" : "inactive"};
		row[3] = (struct aps_value){.type = k % 5 ? APS_V_JSON : APS_V_NULL, .s = lines};
		row[4] = (struct aps_value){.type = APS_V_INT, .i = k * 1000 - 7};
		row[5] = (struct aps_value){.type = k % 2 ? APS_V_TRUE : APS_V_FALSE};
		row[6] = (struct aps_value){.type = APS_V_TEXT, .s = "2024-05-01T09:50:00.000-05:00"};
		aps_batch_builder_add(&bb, row);
	}
	aps_batch_builder_finish(&bb, 1, "V", &body);
	text = (char *)body.data;
	len = body.len;
	CHECK(agree(&bs, text, len, "built"));
	new_reader(&bs, text, len, &r);
	CHECK_EQ_INT(r.rc, APS_OK);
	CHECK_EQ_INT(r.nrows, 40);
	result_free(&r);
	for (i = 0; i < len; i++) {
		new_reader(&bs, text, i, &r);
		if (r.rc != APS_ERR_JSON && !bad++)
			printf("#   prefix of %zu bytes: %s\n", i, aps_errcode(r.rc));
		result_free(&r);
	}
	CHECK_EQ_INT(bad, 0);
	for (k = 0; k < 3000; k++) {
		char *m = malloc(len), label[64];
		size_t at;

		memcpy(m, text, len);
		seed = seed * 1103515245 + 12345;
		at = (seed >> 8) % len;
		seed = seed * 1103515245 + 12345;
		/* printable ASCII only: the frame decoder's UTF-8 check comes first,
		 * and raw control characters are refused on purpose (test above) */
		m[at] = (char)(0x20 + (seed >> 8) % 95);
		if (aps_json_precheck(m, len, APSYNC_MAX_JSON_DEPTH) == APS_OK &&
		    !memmem(m, len, "\\u0000", 6)) {
			snprintf(label, sizeof(label), "byte %zu -> '%c'", at, m[at]);
			if (!agree(&bs, m, len, label))
				tap_case_failed = 1;
			mutated++;
		}
		free(m);
	}
	CHECK(mutated > 1000);
	aps_buf_free(&body);
	aps_batch_builder_free(&bb);
	batch_scanner_free(&bs);
}

/* Past the limits the reader keeps nothing more, yet checks the syntax to
 * the end: a syntax error after the limit is still bad_json. */
TEST(limits)
{
	struct aps_buf t = {0};
	struct batch_scanner bs;
	struct result r;
	int i;

	batch_scanner_init(&bs);
	/* 65 column arrays */
	aps_buf_append_str(&t, "{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":1,"
			       "\"cols\":[\"code\"],\"data\":[");
	for (i = 0; i < 65; i++)
		aps_buf_append_str(&t, i ? ",[\"A\"]" : "[\"A\"]");
	aps_buf_append_str(&t, "]}");
	new_reader(&bs, (const char *)t.data, t.len, &r);
	CHECK_EQ_INT(r.rc, APS_ERR_MESSAGE);
	CHECK(strstr(r.why, "65 data arrays") != NULL);
	result_free(&r);
	CHECK(agree(&bs, (const char *)t.data, t.len, "65 columns"));
	/* 10001 values in a column, then a syntax error */
	t.len = 0;
	aps_buf_append_str(&t, "{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":10000,"
			       "\"cols\":[\"code\"],\"data\":[[");
	for (i = 0; i < 10001; i++)
		aps_buf_printf(&t, i ? ",\"K%d\"" : "\"K%d\"", i);
	aps_buf_append_str(&t, "]]}");
	new_reader(&bs, (const char *)t.data, t.len, &r);
	CHECK_EQ_INT(r.rc, APS_ERR_MESSAGE);
	result_free(&r);
	CHECK(bs.nspans <= APSYNC_MAX_BATCH_ROWS);
	t.len -= 2;
	aps_buf_append_str(&t, ",]}");
	new_reader(&bs, (const char *)t.data, t.len, &r);
	CHECK_EQ_INT(r.rc, APS_ERR_JSON);
	result_free(&r);
	/* numbers past the row limit are checked, not kept */
	t.len = 0;
	aps_buf_append_str(&t, "{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":10000,"
			       "\"cols\":[\"code\"],\"data\":[[");
	for (i = 0; i < 30000; i++)
		aps_buf_printf(&t, i ? ",%d.5" : "%d.5", i);
	aps_buf_append_str(&t, "]],\"unknown\":[1,2,3]}");
	new_reader(&bs, (const char *)t.data, t.len, &r);
	CHECK_EQ_INT(r.rc, APS_ERR_MESSAGE);
	result_free(&r);
	CHECK(bs.naux <= APSYNC_MAX_BATCH_ROWS);
	CHECK(agree(&bs, (const char *)t.data, t.len, "30000 numbers"));
	/* exactly at the limit: fine */
	t.len = 0;
	aps_buf_append_str(&t, "{\"job\":1,\"list\":\"units\",\"key\":\"code\",\"rows\":10000,"
			       "\"cols\":[\"code\"],\"data\":[[");
	for (i = 0; i < 10000; i++)
		aps_buf_printf(&t, i ? ",\"K%d\"" : "\"K%d\"", i);
	aps_buf_append_str(&t, "]]}");
	CHECK(agree(&bs, (const char *)t.data, t.len, "10000 rows"));
	aps_buf_free(&t);
	batch_scanner_free(&bs);
}

/* The agent writes strings with aps_json_string(); the broker keeps a string
 * without escapes as it came: both rest on it writing what cJSON writes. */
TEST(json_string_is_cjsons)
{
	struct aps_buf out = {0};
	char s[64], *want;
	cJSON *item;
	unsigned seed = 7;
	int c, k, i;

	for (k = 0; k < 2000; k++) {
		if (k < 255) {
			s[0] = (char)(k + 1); /* every byte alone */
			s[1] = '\0';
		} else {
			for (i = 0; i < 20; i++) {
				seed = seed * 1103515245 + 12345;
				c = (int)((seed >> 8) % 255) + 1;
				s[i] = (char)(c < 128 || i % 3 ? c % 128 + (c % 128 == 0) : c);
			}
			s[20] = '\0';
		}
		item = cJSON_CreateString(s);
		want = cJSON_PrintUnformatted(item);
		out.len = 0;
		CHECK_EQ_INT(aps_json_string(&out, s), APS_OK);
		CHECK(out.len == strlen(want) && !memcmp(out.data, want, out.len));
		CHECK_EQ_INT(out.data[out.len], 0);
		cJSON_free(want);
		cJSON_Delete(item);
	}
	out.len = 0;
	CHECK_EQ_INT(aps_json_string(&out, ""), APS_OK);
	CHECK(out.len == 2 && !memcmp(out.data, "\"\"", 2));
	aps_buf_free(&out);
}

int main(void)
{
	char *text = NULL;
	const char *path = getenv("APSYNC_VECTORS") ? getenv("APSYNC_VECTORS")
						    : "proto/vectors/frames.json";

	aps_arena_hooks_install();
	if (aps_read_file(path, 1 << 24, &text, NULL) || !(vectors = cJSON_Parse(text))) {
		printf("not ok 1 - cannot read the vectors %s\n1..1\n", path);
		return 1;
	}
	free(text);
	RUN(vectors_batches);
	RUN(agrees_on_edge_cases);
	RUN(refuses_control_characters_and_nul);
	RUN(truncations_and_mutations);
	RUN(limits);
	RUN(json_string_is_cjsons);
	cJSON_Delete(vectors);
	return tap_done();
}
