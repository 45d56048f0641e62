/*
 * BATCH bodies read in one pass (batchscan.h says what and why).
 *
 * The body is an object; every member but "data" is parsed by cJSON into a
 * small object (job, list, key, rows, cols, after, and whatever else comes),
 * so those follow exactly the rules they always did. "data" is read here:
 * an array of column arrays whose values are recorded as spans of the text.
 * A plain string (no backslash) is its own stored text and its own hash
 * input; a string with escapes is decoded once; numbers and nested arrays or
 * objects (rare: PO lines) go through cJSON, value by value, so their stored
 * text and hash input are cJSON's print as before. Rows are then assembled
 * from the spans: hash input and stored text, one copy each.
 *
 * The frame decoder has already checked that the text is valid UTF-8 and
 * nests at most APSYNC_MAX_JSON_DEPTH deep (aps_frame_decode_text()).
 *
 * Limits are enforced while reading: no more than APSYNC_MAX_COLUMNS column
 * arrays nor APSYNC_MAX_BATCH_ROWS values per column are recorded, and what
 * cJSON parses of "data" (and members no one reads) is freed at once, so a
 * hostile body cannot make the reader hold a tree of its values (a cJSON
 * tree costs 64 bytes a value: a 16 MiB body of tiny values, hundreds of
 * MB). Past a limit the reader goes on checking the syntax only: a syntax
 * error anywhere in the body is reported first (bad_json), as when cJSON
 * parsed it whole, and the rule that was broken after that (bad_message).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "apsync_proto.h"
#include "batchscan.h"
#include "err.h"

enum { K_STR = 's', K_NUM = 'd', K_TRUE = 't', K_FALSE = 'f', K_NULL = 'n', K_JSON = 'j' };

struct bscan_span {
	uint32_t off;  /* plain string: offset of its first byte (after the quote); else aux index */
	uint32_t len;  /* plain string: its length */
	uint8_t kind;  /* K_* */
	uint8_t aux;   /* off indexes bs->aux: a decoded string, a number or a nested value */
};

struct bscan_aux {
	uint32_t val, val_len;   /* in bs->dec: what the row hash covers (decoded string,
				  * number as %.17g, nested value as compact JSON) */
	uint32_t text, text_len; /* in bs->txt: the value as stored */
};

/* Where the reader is. */
struct scan {
	struct batch_scanner *bs;
	const char *s;
	size_t n, pos;
	/* the "data" member */
	int data_seen, data_array;   /* present; an array */
	int ncols_data;              /* its elements, counted past the limit too */
	uint32_t col_start[APSYNC_MAX_COLUMNS];
	int col_n[APSYNC_MAX_COLUMNS]; /* values; -1: the element is not an array */
	/* the first rule broken (reported if the syntax is good) */
	int broken;
	char broken_why[200];
	char *why;
	size_t whylen;
};

/* A byte that may stand in a string as it is: not '"', '\\' nor a control
 * character. */
#define PLAIN_BYTE(c) ((c) >= 0x20 && (c) != '"' && (c) != '\\')
/* The same test on eight bytes at once (as aps_json_string() does): nonzero
 * if any of them is not plain; exact, a borrow only flags bytes above one
 * that is flagged rightly. */
#define APS_ONES8 0x0101010101010101ULL
static inline uint64_t special8(uint64_t w)
{
	return ((w - APS_ONES8 * 0x20) | ((w ^ APS_ONES8 * '"') - APS_ONES8) |
		((w ^ APS_ONES8 * '\\') - APS_ONES8)) &
	       ~w & (APS_ONES8 * 0x80);
}

static int syntax(struct scan *sc, const char *what)
{
	if (sc->why)
		snprintf(sc->why, sc->whylen, "BATCH body is not one JSON object: %s at byte %zu",
			 what, sc->pos);
	return APS_ERR_JSON;
}

static void rule(struct scan *sc, const char *what)
{
	if (!sc->broken) {
		sc->broken = 1;
		snprintf(sc->broken_why, sizeof(sc->broken_why), "%s", what);
	}
}

static void skip_ws(struct scan *sc)
{
	while (sc->pos < sc->n && (sc->s[sc->pos] == ' ' || sc->s[sc->pos] == '\t' ||
				   sc->s[sc->pos] == '\n' || sc->s[sc->pos] == '\r'))
		sc->pos++;
}

/* After a value of an array or object: 1 past a ',' (another value
 * follows), 0 past the closing character, -1 at anything else. */
static int after_value(struct scan *sc, char close)
{
	skip_ws(sc);
	if (sc->pos < sc->n && (sc->s[sc->pos] == ',' || sc->s[sc->pos] == close))
		return sc->s[sc->pos++] == ',';
	return -1;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* A string at pos (on its quote): its raw content [*off, *off + *len) and
 * whether it holds escapes, checked for their form. */
static int scan_string(struct scan *sc, size_t *off, size_t *len, int *esc)
{
	const unsigned char *s = (const unsigned char *)sc->s;
	size_t p = sc->pos + 1, n = sc->n;
	int i;

	*esc = 0;
	*off = p;
	for (;;) {
		uint64_t w;

		while (n - p >= 8) {
			memcpy(&w, s + p, 8);
			if (special8(w))
				break;
			p += 8;
		}
		while (p < n && PLAIN_BYTE(s[p]))
			p++;
		if (p >= n) {
			sc->pos = p;
			return syntax(sc, "unterminated string");
		}
		if (s[p] == '"')
			break;
		if (s[p] != '\\') {
			sc->pos = p;
			return syntax(sc, "control character in a string");
		}
		*esc = 1;
		if (p + 1 >= n) {
			sc->pos = p;
			return syntax(sc, "unterminated string");
		}
		switch (s[p + 1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			p += 2;
			break;
		case 'u':
			for (i = 0; i < 4; i++)
				if (p + 2 + i >= n || hexval((char)s[p + 2 + i]) < 0) {
					sc->pos = p;
					return syntax(sc, "bad \\u escape");
				}
			p += 6;
			break;
		default:
			sc->pos = p;
			return syntax(sc, "bad escape");
		}
	}
	*len = p - *off;
	sc->pos = p + 1;
	return APS_OK;
}

static unsigned read_u4(const char *p)
{
	return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

/* Decodes a string's raw content (escapes checked by scan_string) onto out,
 * NUL-terminated. U+0000 is a broken rule (C strings end there); a lone
 * surrogate is a syntax error, as it was for cJSON. */
static int decode_string(struct scan *sc, const char *p, size_t len, struct aps_buf *out)
{
	const char *end = p + len;
	unsigned cp, lo;
	uint8_t *o;
	int rc = aps_buf_reserve(out, len + 1);

	if (rc)
		return rc;
	o = out->data + out->len;
	while (p < end) {
		if (*p != '\\') {
			*o++ = (uint8_t)*p++;
			continue;
		}
		switch (p[1]) {
		case 'b': *o++ = '\b'; p += 2; continue;
		case 'f': *o++ = '\f'; p += 2; continue;
		case 'n': *o++ = '\n'; p += 2; continue;
		case 'r': *o++ = '\r'; p += 2; continue;
		case 't': *o++ = '\t'; p += 2; continue;
		case 'u': break;
		default: *o++ = (uint8_t)p[1]; p += 2; continue; /* " \ / */
		}
		cp = read_u4(p + 2);
		p += 6;
		if (cp >= 0xDC00 && cp <= 0xDFFF)
			return syntax(sc, "lone low surrogate in a string");
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
				return syntax(sc, "lone high surrogate in a string");
			lo = read_u4(p + 2);
			if (lo < 0xDC00 || lo > 0xDFFF)
				return syntax(sc, "lone high surrogate in a string");
			p += 6;
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		}
		if (cp == 0) {
			rule(sc, "BATCH strings may not hold U+0000");
			cp = 0xFFFD; /* keeps going; the batch is refused anyway */
		}
		/* 3 bytes at most from 6 escaped, 4 from 12: never longer than the input */
		if (cp < 0x80) {
			*o++ = (uint8_t)cp;
		} else if (cp < 0x800) {
			*o++ = (uint8_t)(0xC0 | cp >> 6);
			*o++ = (uint8_t)(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			*o++ = (uint8_t)(0xE0 | cp >> 12);
			*o++ = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
			*o++ = (uint8_t)(0x80 | (cp & 0x3F));
		} else {
			*o++ = (uint8_t)(0xF0 | cp >> 18);
			*o++ = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
			*o++ = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
			*o++ = (uint8_t)(0x80 | (cp & 0x3F));
		}
	}
	*o = '\0';
	out->len = (size_t)(o - out->data);
	return APS_OK;
}

static int add_aux(struct batch_scanner *bs, struct bscan_aux **a)
{
	if (bs->naux == bs->capaux) {
		size_t cap = bs->capaux ? bs->capaux * 2 : 256;
		struct bscan_aux *p = realloc(bs->aux, cap * sizeof(*p));

		if (!p)
			return APS_ERR_NOMEM;
		bs->aux = p;
		bs->capaux = cap;
	}
	*a = &bs->aux[bs->naux++];
	return APS_OK;
}

static int put_txt(struct aps_buf *b, const char *s, size_t n, uint32_t *off, uint32_t *len)
{
	*off = (uint32_t)b->len;
	*len = (uint32_t)n;
	return aps_buf_append(b, s, n);
}

/* A value parsed by cJSON at pos: a number, an array or an object. Its
 * tree is made outside the thread's arena, so that it goes as soon as it is
 * printed: a batch never holds more than the texts of its kept values. */
static int scan_cjson_value(struct scan *sc, struct bscan_span *sp, int keep)
{
	struct batch_scanner *bs = sc->bs;
	struct aps_arena *arena = aps_arena_use(NULL);
	const char *end = NULL;
	struct bscan_aux *a;
	char num[64], *printed;
	cJSON *v;
	int rc;

	v = cJSON_ParseWithLengthOpts(sc->s + sc->pos, sc->n - sc->pos, &end, 0);
	if (!v || !end) {
		aps_arena_use(arena);
		return syntax(sc, "bad value");
	}
	sc->pos = (size_t)(end - sc->s);
	if (!keep) {
		cJSON_Delete(v);
		aps_arena_use(arena);
		return APS_OK;
	}
	rc = add_aux(bs, &a);
	if (!rc && cJSON_IsNumber(v)) {
		/* hash: %.17g (aps_row_hash); stored: cJSON's print */
		snprintf(num, sizeof(num), "%.17g", v->valuedouble);
		rc = put_txt(&bs->dec, num, strlen(num), &a->val, &a->val_len);
		if (!rc && !cJSON_PrintPreallocated(v, num, (int)sizeof(num), 0))
			rc = APS_ERR_NOMEM;
		if (!rc)
			rc = put_txt(&bs->txt, num, strlen(num), &a->text, &a->text_len);
		sp->kind = K_NUM;
	} else if (!rc) {
		printed = cJSON_PrintUnformatted(v);
		if (!printed)
			rc = APS_ERR_NOMEM;
		if (!rc)
			rc = put_txt(&bs->dec, printed, strlen(printed), &a->val, &a->val_len);
		if (!rc)
			rc = put_txt(&bs->txt, printed, strlen(printed), &a->text, &a->text_len);
		cJSON_free(printed);
		sp->kind = K_JSON;
	}
	cJSON_Delete(v);
	aps_arena_use(arena);
	sp->aux = 1;
	sp->off = (uint32_t)(bs->naux - 1);
	sp->len = 0;
	return rc;
}

/* One value of a column at pos; keep: it is recorded (else only checked,
 * and nothing of it is held). */
static int scan_value(struct scan *sc, struct bscan_span *sp, int keep)
{
	struct batch_scanner *bs = sc->bs;
	const char *s = sc->s + sc->pos;
	size_t left = sc->n - sc->pos, off, len;
	struct bscan_aux *a;
	int esc, rc;

	if (!left)
		return syntax(sc, "a value is missing");
	switch (*s) {
	case '"':
		rc = scan_string(sc, &off, &len, &esc);
		if (rc)
			return rc;
		sp->kind = K_STR;
		if (!esc) {
			sp->off = (uint32_t)off;
			sp->len = (uint32_t)len;
			sp->aux = 0;
			return APS_OK;
		}
		if (!keep) {
			/* decoded for its checks (surrogates, U+0000), then dropped */
			size_t mark = bs->dec.len;

			rc = decode_string(sc, sc->s + off, len, &bs->dec);
			bs->dec.len = mark;
			return rc;
		}
		/* decoded once; stored as cJSON prints the decoded string */
		rc = add_aux(bs, &a);
		if (rc)
			return rc;
		a->val = (uint32_t)bs->dec.len;
		rc = decode_string(sc, sc->s + off, len, &bs->dec);
		if (rc)
			return rc;
		a->val_len = (uint32_t)(bs->dec.len - a->val);
		a->text = (uint32_t)bs->txt.len;
		rc = aps_json_string(&bs->txt, (const char *)bs->dec.data + a->val);
		if (rc)
			return rc;
		bs->dec.len++; /* keep the NUL: keys and statuses are copied as C strings */
		a->text_len = (uint32_t)(bs->txt.len - a->text);
		sp->aux = 1;
		sp->off = (uint32_t)(bs->naux - 1);
		sp->len = 0;
		return APS_OK;
	case 't':
	case 'f':
	case 'n': {
		const char *word = *s == 't' ? "true" : *s == 'f' ? "false" : "null";
		size_t wl = strlen(word);

		if (left < wl || memcmp(s, word, wl))
			return syntax(sc, "bad literal");
		sc->pos += wl;
		sp->kind = (uint8_t)*s;
		sp->aux = 0;
		sp->off = sp->len = 0;
		return APS_OK;
	}
	case '[':
	case '{':
	case '-':
		return scan_cjson_value(sc, sp, keep);
	default:
		if (*s >= '0' && *s <= '9')
			return scan_cjson_value(sc, sp, keep);
		return syntax(sc, "unexpected character");
	}
}

static int add_span(struct batch_scanner *bs, const struct bscan_span *sp)
{
	if (bs->nspans == bs->capspans) {
		size_t cap = bs->capspans ? bs->capspans * 2 : 4096;
		struct bscan_span *p = realloc(bs->spans, cap * sizeof(*p));

		if (!p)
			return APS_ERR_NOMEM;
		bs->spans = p;
		bs->capspans = cap;
	}
	bs->spans[bs->nspans++] = *sp;
	return APS_OK;
}

/* The value of "data" at pos; keep: record it (the first "data" only). */
static int scan_data(struct scan *sc, int keep)
{
	struct bscan_span sp;
	int col, n, record, rc, k;

	if (keep)
		sc->data_seen = 1;
	if (sc->pos >= sc->n || sc->s[sc->pos] != '[') {
		/* not an array: checked for its syntax; the rule comes later */
		return scan_value(sc, &sp, 0);
	}
	if (keep)
		sc->data_array = 1;
	sc->pos++;
	skip_ws(sc);
	if (sc->pos < sc->n && sc->s[sc->pos] == ']') {
		sc->pos++;
		return APS_OK;
	}
	for (col = 0;; col++) {
		record = keep && col < (int)APSYNC_MAX_COLUMNS;
		if (keep)
			sc->ncols_data = col + 1;
		skip_ws(sc);
		if (sc->pos < sc->n && sc->s[sc->pos] == '[') {
			if (record) {
				sc->col_start[col] = (uint32_t)sc->bs->nspans;
				sc->col_n[col] = 0;
			}
			sc->pos++;
			skip_ws(sc);
			n = 0;
			if (sc->pos < sc->n && sc->s[sc->pos] == ']') {
				sc->pos++;
			} else {
				for (;;) {
					/* past the limits, values are checked, not kept */
					int kept = record && n < (int)APSYNC_MAX_BATCH_ROWS;

					skip_ws(sc);
					rc = scan_value(sc, &sp, kept);
					if (rc)
						return rc;
					if (kept && (rc = add_span(sc->bs, &sp)))
						return rc;
					n++;
					k = after_value(sc, ']');
					if (k > 0)
						continue;
					if (!k)
						break;
					return syntax(sc, "expected ',' or ']' in a column");
				}
			}
			if (record)
				sc->col_n[col] = n;
		} else {
			rc = scan_value(sc, &sp, 0);
			if (rc)
				return rc;
			if (record)
				sc->col_n[col] = -1;
		}
		k = after_value(sc, ']');
		if (k > 0)
			continue;
		if (!k)
			return APS_OK;
		return syntax(sc, "expected ',' or ']' in \"data\"");
	}
}

/* The body: one object, then nothing but whitespace. */
/* The members of a BATCH the broker reads; receivers ignore the others. */
static int is_known_member(const char *name)
{
	static const char *const known[] = {"job", "list", "key", "rows", "cols", "after"};
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(name, known[i]))
			return 1;
	return 0;
}

static int scan_body(struct scan *sc, cJSON *head)
{
	struct aps_buf *dec = &sc->bs->dec;
	struct aps_arena *arena;
	size_t off, len, mark;
	const char *name, *end;
	cJSON *v;
	int esc, rc, known, k;

	skip_ws(sc);
	if (sc->pos >= sc->n || sc->s[sc->pos] != '{')
		return syntax(sc, "expected '{'");
	sc->pos++;
	skip_ws(sc);
	if (sc->pos < sc->n && sc->s[sc->pos] == '}') {
		sc->pos++;
	} else {
		for (;;) {
			skip_ws(sc);
			if (sc->pos >= sc->n || sc->s[sc->pos] != '"')
				return syntax(sc, "expected a member name");
			rc = scan_string(sc, &off, &len, &esc);
			if (rc)
				return rc;
			mark = dec->len;
			if (esc)
				rc = decode_string(sc, sc->s + off, len, dec);
			else if (!(rc = aps_buf_append(dec, sc->s + off, len)))
				rc = aps_buf_terminate(dec);
			if (rc)
				return rc;
			name = (const char *)dec->data + mark;
			skip_ws(sc);
			if (sc->pos >= sc->n || sc->s[sc->pos] != ':')
				return syntax(sc, "expected ':'");
			sc->pos++;
			skip_ws(sc);
			if (!strcmp(name, "data")) {
				/* its values' decoded strings go on after the name in dec */
				rc = scan_data(sc, !sc->data_seen);
				if (rc)
					return rc;
			} else {
				/* Only a JSON value may start here (cJSON would also skip
				 * a byte order mark). */
				if (sc->pos >= sc->n || !sc->s[sc->pos] ||
				    !strchr("\"-0123456789[{tfn", sc->s[sc->pos]))
					return syntax(sc, "expected a value");
				known = is_known_member(name);
				/* members no one reads are checked and dropped at once */
				arena = known ? NULL : aps_arena_use(NULL);
				end = NULL;
				v = cJSON_ParseWithLengthOpts(sc->s + sc->pos, sc->n - sc->pos, &end, 0);
				if (!known)
					aps_arena_use(arena);
				if (!v || !end)
					return syntax(sc, "bad value");
				sc->pos = (size_t)(end - sc->s);
				if (known)
					cJSON_AddItemToObject(head, name, v); /* copies the name */
				else
					cJSON_Delete(v); /* made outside the arena: freed */
				dec->len = mark;
			}
			k = after_value(sc, '}');
			if (k > 0)
				continue;
			if (!k)
				break;
			return syntax(sc, "expected ',' or '}'");
		}
	}
	skip_ws(sc);
	if (sc->pos != sc->n)
		return syntax(sc, "something follows the object");
	return APS_OK;
}

#define WHY(...) snprintf(why, whylen, __VA_ARGS__)

/* The rules of aps_batch_parse(), in its order and with its words, over the
 * members cJSON parsed and what the reader recorded of "data". */
static int check_rules(struct scan *sc, cJSON *head, struct aps_batch *b, char *why,
		       size_t whylen)
{
	const struct bscan_span *sp;
	const struct bscan_aux *a;
	size_t klen;
	int i, j, rc;

	rc = aps_batch_head(head, sc->data_array ? sc->ncols_data : -1, b, why, whylen);
	if (rc)
		return rc;
	for (i = 0; i < b->ncols; i++)
		if (sc->col_n[i] != b->nrows) {
			WHY("BATCH column \"%s\" does not hold %d values", b->cols[i], b->nrows);
			return APS_ERR_MESSAGE;
		}
	for (j = 0; j < b->nrows; j++) {
		sp = &sc->bs->spans[sc->col_start[b->key_col] + (uint32_t)j];
		a = sp->aux ? &sc->bs->aux[sp->off] : NULL;
		klen = sp->kind != K_STR ? 0 : a ? a->val_len : sp->len;
		if (!klen || klen > APSYNC_MAX_KEY_LEN) {
			WHY("BATCH row %d: key must be a non-empty string of at most %u bytes", j,
			    APSYNC_MAX_KEY_LEN);
			return APS_ERR_MESSAGE;
		}
	}
	return APS_OK;
}

/* A string value as a C string in the arena; NULL if the value is none. */
static const char *span_cstr(struct scan *sc, struct aps_arena *arena,
			     const struct bscan_span *sp)
{
	const struct bscan_aux *a = sp->aux ? &sc->bs->aux[sp->off] : NULL;
	const char *src = a ? (const char *)sc->bs->dec.data + a->val : sc->s + sp->off;
	size_t n = a ? a->val_len : sp->len;
	char *p;

	if (sp->kind != K_STR)
		return NULL;
	p = aps_arena_alloc(arena, n + 1);
	if (p) {
		memcpy(p, src, n);
		p[n] = '\0';
	}
	return p;
}

/* What a value adds to the row's hash input and to its stored text. */
static void value_sizes(const struct batch_scanner *bs, const struct bscan_span *sp, size_t *enc,
			size_t *text)
{
	const struct bscan_aux *a = sp->aux ? &bs->aux[sp->off] : NULL;

	switch (sp->kind) {
	case K_TRUE:
	case K_NULL:
		*enc = 1, *text = 4;
		return;
	case K_FALSE:
		*enc = 1, *text = 5;
		return;
	default:
		*enc = 5 + (a ? a->val_len : sp->len);
		*text = a ? a->text_len : sp->len + 2;
	}
}

/* Writes one value's hash encoding (aps_row_hash's: a tag, then for
 * strings, numbers and nested values a 4-byte big-endian length and the
 * bytes) at *e and its stored text at *t, into space the caller reserved
 * (value_sizes()). */
static void put_value(const struct scan *sc, const struct bscan_span *sp, uint8_t **e,
		      uint8_t **t)
{
	const struct batch_scanner *bs = sc->bs;
	const struct bscan_aux *a = sp->aux ? &bs->aux[sp->off] : NULL;
	const char *v = NULL, *tx;
	size_t vl = 0, tl;
	uint8_t *p = *e;

	switch (sp->kind) {
	case K_TRUE:
		tx = "true", tl = 4;
		break;
	case K_FALSE:
		tx = "false", tl = 5;
		break;
	case K_NULL:
		tx = "null", tl = 4;
		break;
	default:
		if (a) {
			v = (const char *)bs->dec.data + a->val;
			vl = a->val_len;
			tx = (const char *)bs->txt.data + a->text;
			tl = a->text_len;
		} else {
			/* a plain string is its own text, quotes included */
			v = sc->s + sp->off;
			vl = sp->len;
			tx = v - 1;
			tl = vl + 2;
		}
	}
	memcpy(*t, tx, tl);
	*t += tl;
	*p++ = sp->kind;
	if (v) {
		*p++ = (uint8_t)(vl >> 24);
		*p++ = (uint8_t)(vl >> 16);
		*p++ = (uint8_t)(vl >> 8);
		*p++ = (uint8_t)vl;
		memcpy(p, v, vl);
		p += vl;
	}
	*e = p;
}

static uint64_t digest(struct aps_hasher *h)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint64_t v = 0;
	int i;

	if (!EVP_DigestInit_ex2(h->md, h->sha256, NULL) ||
	    !EVP_DigestUpdate(h->md, h->enc.data, h->enc.len) ||
	    !EVP_DigestFinal_ex(h->md, md, &mdlen))
		return 0; /* a zero hash fails the list's checksum, loudly */
	for (i = 0; i < 8; i++)
		v = v << 8 | md[i];
	return v;
}

int batch_scan(struct batch_scanner *bs, struct aps_arena *arena, const char *text, size_t len,
	       struct batch_rows *out, struct aps_buf *rowtext, char *why, size_t whylen)
{
	struct scan sc;
	struct aps_batch *b = &out->b;
	struct aps_buf *enc = &bs->hasher.enc;
	struct store_row *r;
	size_t *offs, total = 0, rowmax = 0, row, ve, vt;
	uint8_t *e, *t;
	int status_col = -1, modified_col = -1, i, c, rc;

	memset(out, 0, sizeof(*out));
	memset(&sc, 0, sizeof(sc));
	sc.bs = bs;
	sc.s = text;
	sc.n = len;
	sc.why = why;
	sc.whylen = whylen;
	bs->nspans = bs->naux = 0;
	bs->dec.len = bs->txt.len = 0;
	if (len > UINT32_MAX) {
		WHY("BATCH body too long");
		return APS_ERR_MESSAGE;
	}
	out->head = cJSON_CreateObject();
	if (!out->head)
		return APS_ERR_NOMEM;
	rc = scan_body(&sc, out->head);
	if (rc)
		return rc;
	if (sc.broken) {
		WHY("%s", sc.broken_why);
		return APS_ERR_MESSAGE;
	}
	rc = check_rules(&sc, out->head, b, why, whylen);
	if (rc)
		return rc;

	for (i = 0; i < b->ncols; i++) {
		if (!strcmp(b->cols[i], "status"))
			status_col = i;
		else if (!strcmp(b->cols[i], "modified_at"))
			modified_col = i;
	}
	out->rows = aps_arena_alloc(arena, (size_t)b->nrows * sizeof(*out->rows));
	offs = aps_arena_alloc(arena, (size_t)b->nrows * sizeof(*offs));
	if (!out->rows || !offs)
		return APS_ERR_NOMEM;
	/* The exact room the texts and the largest row's hash input take: the
	 * rows are then written without a check per value. */
	for (i = 0; i < b->nrows; i++) {
		for (c = 0, row = 0; c < b->ncols; c++) {
			value_sizes(bs, &bs->spans[sc.col_start[c] + (uint32_t)i], &ve, &vt);
			total += vt + 1; /* a comma, or the closing bracket */
			row += ve;
		}
		total++; /* the opening bracket */
		if (row > rowmax)
			rowmax = row;
	}
	enc->len = 0;
	if (aps_buf_reserve(rowtext, total) || aps_buf_reserve(enc, rowmax))
		return APS_ERR_NOMEM;
	t = rowtext->data + rowtext->len;
	for (i = 0; i < b->nrows; i++) {
		r = &out->rows[i];
		memset(r, 0, sizeof(*r));
		offs[i] = (size_t)(t - rowtext->data);
		e = enc->data;
		*t++ = '[';
		for (c = 0; c < b->ncols; c++) {
			if (c)
				*t++ = ',';
			put_value(&sc, &bs->spans[sc.col_start[c] + (uint32_t)i], &e, &t);
		}
		*t++ = ']';
		enc->len = (size_t)(e - enc->data);
		r->data_len = (size_t)(t - rowtext->data) - offs[i];
		r->hash = digest(&bs->hasher);
		r->key = span_cstr(&sc, arena, &bs->spans[sc.col_start[b->key_col] + (uint32_t)i]);
		if (!r->key)
			return APS_ERR_NOMEM;
		if (status_col >= 0)
			r->status = span_cstr(&sc, arena,
					      &bs->spans[sc.col_start[status_col] + (uint32_t)i]);
		if (modified_col >= 0)
			r->modified = span_cstr(
				&sc, arena, &bs->spans[sc.col_start[modified_col] + (uint32_t)i]);
		out->checksum += r->hash;
	}
	rowtext->len = (size_t)(t - rowtext->data);
	for (i = 0; i < b->nrows; i++)
		out->rows[i].data = (const char *)rowtext->data + offs[i];
	if (enc->cap > (1 << 20))
		aps_buf_free(enc); /* a huge row does not pin memory */
	return APS_OK;
}

int batch_scanner_init(struct batch_scanner *bs)
{
	memset(bs, 0, sizeof(*bs));
	return aps_hasher_init(&bs->hasher);
}

void batch_scanner_free(struct batch_scanner *bs)
{
	aps_hasher_free(&bs->hasher);
	free(bs->spans);
	free(bs->aux);
	aps_buf_free(&bs->dec);
	aps_buf_free(&bs->txt);
	memset(bs, 0, sizeof(*bs));
}
