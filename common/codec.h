/*
 * Frame codec for protocol v1 (proto/PROTOCOL.md): the 24-byte envelope,
 * optional raw DEFLATE of the body, and the JSON body with its limits.
 *
 * A codec context owns reusable zlib streams and scratch memory; use one per
 * thread.
 */
#ifndef APS_CODEC_H
#define APS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <zlib.h>
#include <zstd.h>

#include "buf.h"

struct aps_limits {
	uint32_t max_frame;    /* whole frame, header included */
	uint32_t max_inflated; /* body after inflation */
	uint32_t max_ratio;    /* inflated / compressed */
	uint32_t max_depth;    /* JSON nesting */
};

/* The limits of proto/apsync_proto.h. */
extern const struct aps_limits aps_limits_default;

struct aps_frame {
	uint8_t type;
	uint8_t flags;
	uint32_t body_len; /* inflated length from the header */
	uint64_t seq;
	uint64_t ack;
	cJSON *body;       /* owned; freed by aps_frame_clear() */
};

enum aps_compression {
	APS_COMPRESS_NONE = 0,
	APS_COMPRESS_DEFLATE,
	APS_COMPRESS_ZSTD,
};

struct aps_codec {
	struct aps_limits lim;
	enum aps_compression algo; /* what the encoder uses (default zstd) */
	int level;                 /* its level (default 3) */
	ZSTD_CCtx *zc;
	ZSTD_DCtx *zdc;
	z_stream zd;       /* deflate, reset per frame */
	int zd_level;      /* level zd was initialised with, -1 if none */
	z_stream zi;       /* inflate, reset per frame */
	int zi_ready;
	struct aps_buf scratch;
};

void aps_codec_init(struct aps_codec *c, const struct aps_limits *lim);
/* Chooses the encoder's algorithm and level (deflate 1-9, zstd 1-19). */
void aps_codec_set_compression(struct aps_codec *c, enum aps_compression algo, int level);
/* "zstd", "deflate", "none" → algorithm; -1 if unknown. */
int aps_compression_parse(const char *name);
void aps_codec_free(struct aps_codec *c);

/*
 * Checks a frame's header against every rule that needs no inflating (size,
 * magic, version, type, flags, seq, declared and compressed lengths, ratio)
 * and fills out's header fields; out->body stays NULL.
 */
int aps_frame_peek(const struct aps_limits *lim, const uint8_t *buf, size_t len,
		   struct aps_frame *out, char *why, size_t whylen);

/*
 * Decodes one whole frame. On success out->body holds the JSON object. On
 * failure returns the APS_ERR_* that names the first violated rule, and `why`
 * (if not NULL) a sentence with the figures, e.g. "frame is 5000000 bytes, the
 * limit is 4194304".
 */
int aps_frame_decode(struct aps_codec *c, const uint8_t *buf, size_t len, struct aps_frame *out,
		     char *why, size_t whylen);
void aps_frame_clear(struct aps_frame *f);
/*
 * The same checks, up to and including the UTF-8 and nesting check of the
 * body, without parsing it: *body_text is the body (out->body_len bytes, not
 * NUL-terminated), valid until the codec's next call or until buf goes. For
 * a receiver that reads a large body with its own parser (the broker's
 * BATCH scanner); out->body stays NULL.
 */
int aps_frame_decode_text(struct aps_codec *c, const uint8_t *buf, size_t len,
			  struct aps_frame *out, const char **body_text, char *why, size_t whylen);

/*
 * Appends one frame to `out`: header and the JSON text `json` as body. With
 * `compress`, the body is compressed with the codec's algorithm and level
 * when it is long enough, that makes it smaller and the ratio stays within
 * the limit. Fails with APS_ERR_INFLATED_TOO_BIG or APS_ERR_TOO_BIG when the
 * result would break a limit, leaving `out` as it was.
 */
int aps_frame_encode(struct aps_codec *c, struct aps_buf *out, uint8_t type, uint64_t seq,
		     uint64_t ack, const char *json, size_t json_len, int compress);
/* Same, printing a cJSON object first. */
int aps_frame_encode_json(struct aps_codec *c, struct aps_buf *out, uint8_t type, uint64_t seq,
			  uint64_t ack, const cJSON *body, int compress);

/* Rewrites the ack field of an encoded frame (the outbox stores frames before
 * the ack they will carry is known). */
void aps_frame_set_ack(uint8_t *frame, uint64_t ack);
uint64_t aps_frame_get_seq(const uint8_t *frame);

/* "HELLO", "BATCH", …; NULL for an unknown type. */
const char *aps_msg_name(int type);
/* 1 if messages of this type carry a sequence number. */
int aps_msg_sequenced(int type);

/*
 * Checks that text is valid UTF-8 and that [ and { nest at most max_depth
 * deep outside strings. APS_OK, APS_ERR_JSON or APS_ERR_JSON_DEPTH.
 */
int aps_json_precheck(const char *text, size_t len, uint32_t max_depth);

#endif
