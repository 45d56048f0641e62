#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apsync_proto.h"
#include "codec.h"
#include "err.h"

const struct aps_limits aps_limits_default = {
	.max_frame = APSYNC_MAX_FRAME,
	.max_inflated = APSYNC_MAX_INFLATED,
	.max_ratio = APSYNC_MAX_RATIO,
	.max_depth = APSYNC_MAX_JSON_DEPTH,
};

/* Bodies shorter than this are never worth compressing. */
#define MIN_DEFLATE_LEN 256

static const struct {
	int type;
	const char *name;
	int sequenced;
} msg_types[] = {
	{APSYNC_MSG_HELLO, "HELLO", 0},
	{APSYNC_MSG_WELCOME, "WELCOME", 0},
	{APSYNC_MSG_HEARTBEAT, "HEARTBEAT", 0},
	{APSYNC_MSG_ACK, "ACK", 0},
	{APSYNC_MSG_ERROR, "ERROR", 0},
	{APSYNC_MSG_SYNC_START, "SYNC_START", 1},
	{APSYNC_MSG_JOB_RESULT, "JOB_RESULT", 1},
	{APSYNC_MSG_EXPORT, "EXPORT", 1},
	{APSYNC_MSG_JOB_STATUS, "JOB_STATUS", 1},
	{APSYNC_MSG_LIST_BEGIN, "LIST_BEGIN", 1},
	{APSYNC_MSG_BATCH, "BATCH", 1},
	{APSYNC_MSG_LIST_END, "LIST_END", 1},
	{APSYNC_MSG_JOB_END, "JOB_END", 1},
	{APSYNC_MSG_LOG, "LOG", 1},
	{APSYNC_MSG_ROWS_DELETED, "ROWS_DELETED", 1},
	{APSYNC_MSG_EXPORT_RESULT, "EXPORT_RESULT", 1},
};

const char *aps_msg_name(int type)
{
	size_t i;

	for (i = 0; i < sizeof(msg_types) / sizeof(msg_types[0]); i++)
		if (msg_types[i].type == type)
			return msg_types[i].name;
	return NULL;
}

int aps_msg_sequenced(int type)
{
	size_t i;

	for (i = 0; i < sizeof(msg_types) / sizeof(msg_types[0]); i++)
		if (msg_types[i].type == type)
			return msg_types[i].sequenced;
	return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

void aps_frame_set_ack(uint8_t *frame, uint64_t ack)
{
	put_be64(frame + 16, ack);
}

uint64_t aps_frame_get_seq(const uint8_t *frame)
{
	return get_be64(frame + 8);
}

void aps_codec_init(struct aps_codec *c, const struct aps_limits *lim)
{
	memset(c, 0, sizeof(*c));
	c->lim = lim ? *lim : aps_limits_default;
	c->zd_level = -1;
	c->algo = APS_COMPRESS_ZSTD;
	c->level = 3;
}

void aps_codec_set_compression(struct aps_codec *c, enum aps_compression algo, int level)
{
	c->algo = algo;
	c->level = level;
}

int aps_compression_parse(const char *name)
{
	if (!strcmp(name, "zstd"))
		return APS_COMPRESS_ZSTD;
	if (!strcmp(name, "deflate"))
		return APS_COMPRESS_DEFLATE;
	if (!strcmp(name, "none"))
		return APS_COMPRESS_NONE;
	return -1;
}

void aps_codec_free(struct aps_codec *c)
{
	ZSTD_freeCCtx(c->zc);
	ZSTD_freeDCtx(c->zdc);
	c->zc = NULL;
	c->zdc = NULL;
	if (c->zd_level >= 0)
		deflateEnd(&c->zd);
	if (c->zi_ready)
		inflateEnd(&c->zi);
	aps_buf_free(&c->scratch);
	c->zd_level = -1;
	c->zi_ready = 0;
}

void aps_frame_clear(struct aps_frame *f)
{
	cJSON_Delete(f->body);
	memset(f, 0, sizeof(*f));
}

/* Length of the UTF-8 sequence starting with byte b, 0 if b cannot start one. */
static int utf8_len(uint8_t b)
{
	if (b < 0x80)
		return 1;
	if (b >= 0xC2 && b <= 0xDF)
		return 2;
	if (b >= 0xE0 && b <= 0xEF)
		return 3;
	if (b >= 0xF0 && b <= 0xF4)
		return 4;
	return 0;
}

int aps_json_precheck(const char *text, size_t len, uint32_t max_depth)
{
	const uint8_t *p = (const uint8_t *)text, *end = p + len;
	uint32_t depth = 0;
	int in_str = 0, n, i;
	uint32_t cp;

	while (p < end) {
		if (*p >= 0x80) {
			n = utf8_len(*p);
			if (!n || end - p < n)
				return APS_ERR_JSON;
			cp = *p & (0x7F >> n);
			for (i = 1; i < n; i++) {
				if ((p[i] & 0xC0) != 0x80)
					return APS_ERR_JSON;
				cp = cp << 6 | (p[i] & 0x3F);
			}
			/* overlong forms, surrogates and values past U+10FFFF */
			if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
			    (cp >= 0xD800 && cp <= 0xDFFF))
				return APS_ERR_JSON;
			p += n;
			continue;
		}
		if (in_str) {
			if (*p == '\\') {
				if (end - p < 2)
					return APS_ERR_JSON;
				p += 2;
				continue;
			}
			if (*p == '"')
				in_str = 0;
		} else if (*p == '"') {
			in_str = 1;
		} else if (*p == '[' || *p == '{') {
			if (++depth > max_depth)
				return APS_ERR_JSON_DEPTH;
		} else if (*p == ']' || *p == '}') {
			if (!depth)
				return APS_ERR_JSON;
			depth--;
		}
		p++;
	}
	return in_str ? APS_ERR_JSON : APS_OK;
}

static int inflate_body(struct aps_codec *c, const uint8_t *in, size_t in_len, uint32_t out_len)
{
	int rc, zrc;

	rc = aps_buf_reserve(&c->scratch, (size_t)out_len + 1);
	if (rc)
		return rc;
	c->scratch.len = 0;
	if (!c->zi_ready) {
		memset(&c->zi, 0, sizeof(c->zi));
		if (inflateInit2(&c->zi, -15) != Z_OK)
			return APS_ERR_NOMEM;
		c->zi_ready = 1;
	} else if (inflateReset(&c->zi) != Z_OK) {
		return APS_ERR_INTERNAL;
	}
	c->zi.next_in = (Bytef *)in;
	c->zi.avail_in = (uInt)in_len;
	c->zi.next_out = c->scratch.data;
	/* One byte more than declared: a body that inflates longer is caught. */
	c->zi.avail_out = out_len + 1;
	zrc = inflate(&c->zi, Z_FINISH);
	if (zrc == Z_STREAM_END) {
		if (c->zi.total_out != out_len || c->zi.avail_in != 0)
			return APS_ERR_LENGTH;
	} else if (zrc == Z_BUF_ERROR && c->zi.avail_out == 0) {
		return APS_ERR_LENGTH; /* longer than declared */
	} else {
		return APS_ERR_INFLATE;
	}
	c->scratch.len = out_len;
	return APS_OK;
}

/* One complete Zstandard frame declaring, and holding, exactly out_len bytes;
 * the decoder's window is bounded, so no frame makes it allocate more. */
static int zstd_body(struct aps_codec *c, const uint8_t *in, size_t in_len, uint32_t out_len)
{
	unsigned long long declared;
	size_t n;
	int rc;

	declared = ZSTD_getFrameContentSize(in, in_len);
	if (declared == ZSTD_CONTENTSIZE_ERROR)
		return APS_ERR_INFLATE;
	if (declared != out_len) /* also ZSTD_CONTENTSIZE_UNKNOWN */
		return APS_ERR_LENGTH;
	n = ZSTD_findFrameCompressedSize(in, in_len);
	if (ZSTD_isError(n) || n != in_len)
		return APS_ERR_INFLATE; /* truncated, or something after the frame */
	if (!c->zdc) {
		c->zdc = ZSTD_createDCtx();
		if (!c->zdc ||
		    ZSTD_isError(ZSTD_DCtx_setParameter(c->zdc, ZSTD_d_windowLogMax,
							(int)APSYNC_ZSTD_WINDOW_LOG_MAX)))
			return APS_ERR_NOMEM;
	}
	rc = aps_buf_reserve(&c->scratch, (size_t)out_len + 1);
	if (rc)
		return rc;
	n = ZSTD_decompressDCtx(c->zdc, c->scratch.data, out_len, in, in_len);
	if (ZSTD_isError(n))
		return APS_ERR_INFLATE;
	if (n != out_len)
		return APS_ERR_LENGTH;
	c->scratch.len = out_len;
	return APS_OK;
}

#define WHY(...)                                                               \
	do {                                                                   \
		if (why)                                                       \
			snprintf(why, whylen, __VA_ARGS__);                    \
	} while (0)

int aps_frame_peek(const struct aps_limits *lim, const uint8_t *buf, size_t len,
		   struct aps_frame *out, char *why, size_t whylen)
{
	size_t plen;

	memset(out, 0, sizeof(*out));
	if (why && whylen)
		why[0] = '\0';
	if (len < APSYNC_HEADER_LEN) {
		WHY("frame is %zu bytes, shorter than the %u-byte header", len, APSYNC_HEADER_LEN);
		return APS_ERR_SHORT;
	}
	if (len > lim->max_frame) {
		WHY("frame is %zu bytes, the limit is %u", len, lim->max_frame);
		return APS_ERR_TOO_BIG;
	}
	if (buf[0] != APSYNC_FRAME_MAGIC) {
		WHY("first byte is 0x%02x, not 0x%02x", buf[0], APSYNC_FRAME_MAGIC);
		return APS_ERR_MAGIC;
	}
	if (buf[1] != APSYNC_PROTO_VERSION) {
		WHY("protocol version %u, this program speaks %u", buf[1], APSYNC_PROTO_VERSION);
		return APS_ERR_VERSION;
	}
	out->type = buf[2];
	out->flags = buf[3];
	out->body_len = get_be32(buf + 4);
	out->seq = get_be64(buf + 8);
	out->ack = get_be64(buf + 16);
	if (!aps_msg_name(out->type)) {
		WHY("unknown message type 0x%02x", out->type);
		return APS_ERR_TYPE;
	}
	if ((out->flags & ~APSYNC_FLAGS_KNOWN) ||
	    (out->flags & APSYNC_FLAGS_CODECS) == APSYNC_FLAGS_CODECS) {
		WHY("unknown flag bits 0x%02x", out->flags);
		return APS_ERR_FLAGS;
	}
	if (aps_msg_sequenced(out->type) ? out->seq == 0 : out->seq != 0) {
		WHY("%s must carry %s sequence number", aps_msg_name(out->type),
		    aps_msg_sequenced(out->type) ? "a" : "no");
		return APS_ERR_SEQ;
	}
	if (out->body_len > lim->max_inflated) {
		WHY("body is %u bytes, the limit is %u", out->body_len, lim->max_inflated);
		return APS_ERR_INFLATED_TOO_BIG;
	}
	plen = len - APSYNC_HEADER_LEN;
	if (out->flags & APSYNC_FLAGS_CODECS) {
		if (plen == 0 || out->body_len / plen >= lim->max_ratio) {
			WHY("body of %u bytes from %zu compressed, ratio limit %u", out->body_len,
			    plen, lim->max_ratio);
			return plen ? APS_ERR_RATIO : APS_ERR_INFLATE;
		}
	} else if (plen != out->body_len) {
		WHY("header says %u body bytes, frame holds %zu", out->body_len, plen);
		return APS_ERR_LENGTH;
	}
	return APS_OK;
}

int aps_frame_decode_text(struct aps_codec *c, const uint8_t *buf, size_t len,
			  struct aps_frame *out, const char **body_text, char *why, size_t whylen)
{
	const struct aps_limits *lim = &c->lim;
	const uint8_t *payload;
	const char *text;
	size_t plen;
	int rc;

	rc = aps_frame_peek(lim, buf, len, out, why, whylen);
	if (rc)
		return rc;
	payload = buf + APSYNC_HEADER_LEN;
	plen = len - APSYNC_HEADER_LEN;
	if (out->flags & APSYNC_FLAGS_CODECS) {
		rc = (out->flags & APSYNC_FLAG_ZSTD) ? zstd_body(c, payload, plen, out->body_len)
						     : inflate_body(c, payload, plen, out->body_len);
		if (rc) {
			WHY("%s", rc == APS_ERR_LENGTH ? "inflated length differs from the header"
						       : "compressed body is corrupt");
			return rc;
		}
		text = (const char *)c->scratch.data;
	} else {
		text = (const char *)payload;
	}
	rc = aps_json_precheck(text, out->body_len, lim->max_depth);
	if (rc) {
		if (rc == APS_ERR_JSON_DEPTH)
			WHY("JSON nests deeper than %u", lim->max_depth);
		else
			WHY("body is not valid UTF-8 JSON");
		return rc;
	}
	*body_text = text;
	return APS_OK;
}

int aps_frame_decode(struct aps_codec *c, const uint8_t *buf, size_t len, struct aps_frame *out,
		     char *why, size_t whylen)
{
	const char *text, *end = NULL;
	int rc = aps_frame_decode_text(c, buf, len, out, &text, why, whylen);

	if (rc)
		return rc;
	out->body = cJSON_ParseWithLengthOpts(text, out->body_len, &end, 0);
	if (out->body && end)
		while (end < text + out->body_len && strchr(" \t\r\n", *end))
			end++;
	if (!out->body || !cJSON_IsObject(out->body) || end != text + out->body_len) {
		WHY("body is not one JSON object");
		cJSON_Delete(out->body);
		out->body = NULL;
		return APS_ERR_JSON;
	}
	return APS_OK;
}

static int deflate_body(struct aps_codec *c, const char *json, size_t len, int level)
{
	int rc;

	if (c->zd_level != level) {
		if (c->zd_level >= 0)
			deflateEnd(&c->zd);
		c->zd_level = -1;
		memset(&c->zd, 0, sizeof(c->zd));
		if (deflateInit2(&c->zd, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			return APS_ERR_NOMEM;
		c->zd_level = level;
	} else if (deflateReset(&c->zd) != Z_OK) {
		return APS_ERR_INTERNAL;
	}
	c->scratch.len = 0;
	rc = aps_buf_reserve(&c->scratch, deflateBound(&c->zd, (uLong)len));
	if (rc)
		return rc;
	c->zd.next_in = (Bytef *)json;
	c->zd.avail_in = (uInt)len;
	c->zd.next_out = c->scratch.data;
	c->zd.avail_out = (uInt)c->scratch.cap;
	if (deflate(&c->zd, Z_FINISH) != Z_STREAM_END)
		return APS_ERR_INTERNAL;
	c->scratch.len = c->zd.total_out;
	return APS_OK;
}

static int zstd_compress(struct aps_codec *c, const char *json, size_t len)
{
	size_t n;
	int rc;

	if (!c->zc) {
		c->zc = ZSTD_createCCtx();
		if (!c->zc)
			return APS_ERR_NOMEM;
	}
	ZSTD_CCtx_reset(c->zc, ZSTD_reset_session_and_parameters);
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, c->level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_windowLog,
						(int)APSYNC_ZSTD_WINDOW_LOG_MAX)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_contentSizeFlag, 1)))
		return APS_ERR_INTERNAL;
	c->scratch.len = 0;
	rc = aps_buf_reserve(&c->scratch, ZSTD_compressBound(len));
	if (rc)
		return rc;
	n = ZSTD_compress2(c->zc, c->scratch.data, c->scratch.cap, json, len);
	if (ZSTD_isError(n))
		return APS_ERR_INTERNAL;
	c->scratch.len = n;
	return APS_OK;
}

int aps_frame_encode(struct aps_codec *c, struct aps_buf *out, uint8_t type, uint64_t seq,
		     uint64_t ack, const char *json, size_t json_len, int compress)
{
	uint8_t hdr[APSYNC_HEADER_LEN];
	const void *body = json;
	size_t body_len = json_len;
	int flags = 0, rc;

	if (json_len > c->lim.max_inflated)
		return APS_ERR_INFLATED_TOO_BIG;
	if (compress && c->algo != APS_COMPRESS_NONE && json_len >= MIN_DEFLATE_LEN) {
		if (c->algo == APS_COMPRESS_ZSTD)
			rc = zstd_compress(c, json, json_len);
		else
			rc = deflate_body(c, json, json_len, c->level < 1 ? 1 : c->level > 9 ? 9 : c->level);
		if (rc)
			return rc;
		/* Keep the ratio strictly below the limit the decoder applies. */
		if (c->scratch.len < json_len && json_len / c->scratch.len < c->lim.max_ratio) {
			body = c->scratch.data;
			body_len = c->scratch.len;
			flags = c->algo == APS_COMPRESS_ZSTD ? APSYNC_FLAG_ZSTD : APSYNC_FLAG_DEFLATE;
		}
	}
	if (APSYNC_HEADER_LEN + body_len > c->lim.max_frame)
		return APS_ERR_TOO_BIG;
	hdr[0] = APSYNC_FRAME_MAGIC;
	hdr[1] = APSYNC_PROTO_VERSION;
	hdr[2] = type;
	hdr[3] = (uint8_t)flags;
	put_be32(hdr + 4, (uint32_t)json_len);
	put_be64(hdr + 8, seq);
	put_be64(hdr + 16, ack);
	rc = aps_buf_reserve(out, sizeof(hdr) + body_len);
	if (rc)
		return rc;
	aps_buf_append(out, hdr, sizeof(hdr));
	aps_buf_append(out, body, body_len);
	return APS_OK;
}

int aps_frame_encode_json(struct aps_codec *c, struct aps_buf *out, uint8_t type, uint64_t seq,
			  uint64_t ack, const cJSON *body, int compress)
{
	char *json = cJSON_PrintUnformatted(body);
	int rc;

	if (!json)
		return APS_ERR_NOMEM;
	rc = aps_frame_encode(c, out, type, seq, ack, json, strlen(json), compress);
	cJSON_free(json);
	return rc;
}
