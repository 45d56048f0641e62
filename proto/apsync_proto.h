/*
 * apsync wire protocol v1: names, numbers and limits.
 *
 * This header is the machine-readable half of proto/PROTOCOL.md; the two
 * must agree. Nothing here opens a socket or holds state.
 */
#ifndef APSYNC_PROTO_H
#define APSYNC_PROTO_H

#define APSYNC_PROTO_VERSION 1

/* WebSocket subprotocol (Sec-WebSocket-Protocol) and path on the broker. */
#define APSYNC_WS_SUBPROTOCOL "apsync.v1"
#define APSYNC_WS_PATH "/agent"

/* Envelope: every WebSocket message is one binary frame of this layout.
 *
 *   off len field
 *    0   1  magic    0xA5
 *    1   1  version  1
 *    2   1  type     enum apsync_msg_type
 *    3   1  flags    APSYNC_FLAG_*; unknown bits, or both codecs, are an error
 *    4   4  body_len length of the body after inflation, big-endian
 *    8   8  seq      sender's sequence number, big-endian; 0 = unsequenced
 *   16   8  ack      highest peer seq durably processed, big-endian
 *   24   …  body     one JSON object (UTF-8): plain, raw DEFLATE (RFC 1951) with
 *                    APSYNC_FLAG_DEFLATE, or one Zstandard frame (RFC 8878) with
 *                    APSYNC_FLAG_ZSTD
 */
#define APSYNC_FRAME_MAGIC 0xA5u
#define APSYNC_HEADER_LEN 24u
#define APSYNC_FLAG_DEFLATE 0x01u
#define APSYNC_FLAG_ZSTD 0x02u
#define APSYNC_FLAGS_CODECS (APSYNC_FLAG_DEFLATE | APSYNC_FLAG_ZSTD)
#define APSYNC_FLAGS_KNOWN APSYNC_FLAGS_CODECS
#define APSYNC_ZSTD_WINDOW_LOG_MAX 23u                /* decoder memory: 8 MiB */

/* Limits. Both sides enforce them on everything they receive. */
#define APSYNC_MAX_FRAME (4u * 1024u * 1024u)      /* whole message, bytes */
#define APSYNC_MAX_INFLATED (16u * 1024u * 1024u)  /* body after inflation */
#define APSYNC_MAX_RATIO 100u                      /* inflated / compressed */
#define APSYNC_MAX_JSON_DEPTH 16u                  /* nesting of [ and { */
#define APSYNC_MAX_PREAUTH_FRAME (64u * 1024u)     /* before WELCOME */
#define APSYNC_HELLO_TIMEOUT_S 10u                 /* connect → HELLO */
#define APSYNC_MAX_BATCH_ROWS 10000u
#define APSYNC_MAX_COLUMNS 64u
#define APSYNC_MAX_KEY_LEN 256u                    /* bytes of a row key */
#define APSYNC_MAX_NAME_LEN 128u                   /* list, entity code, … */

/* Defaults the broker announces in WELCOME. */
#define APSYNC_DEFAULT_HEARTBEAT_S 20u
#define APSYNC_DEFAULT_MISSED_BEATS 3u
#define APSYNC_DEFAULT_WINDOW_FRAMES 32u
#define APSYNC_DEFAULT_WINDOW_BYTES (8u * 1024u * 1024u)

enum apsync_msg_type {
	/* connection-scoped, always unsequenced (seq = 0) */
	APSYNC_MSG_HELLO = 0x01,      /* agent → broker, first frame */
	APSYNC_MSG_WELCOME = 0x02,    /* broker → agent, answer to HELLO */
	APSYNC_MSG_HEARTBEAT = 0x03,  /* both ways */
	APSYNC_MSG_ACK = 0x04,        /* both ways, carries only the ack field */
	APSYNC_MSG_ERROR = 0x05,      /* both ways, then the sender closes */

	/* broker → agent, sequenced */
	APSYNC_MSG_SYNC_START = 0x10,
	APSYNC_MSG_JOB_RESULT = 0x12,  /* the broker's verdict: ends or cancels a job */
	APSYNC_MSG_EXPORT = 0x13,      /* a document to write into the ERP */

	/* agent → broker, sequenced */
	APSYNC_MSG_JOB_STATUS = 0x20,
	APSYNC_MSG_LIST_BEGIN = 0x21,
	APSYNC_MSG_BATCH = 0x22,
	APSYNC_MSG_LIST_END = 0x23,
	APSYNC_MSG_JOB_END = 0x24,
	APSYNC_MSG_LOG = 0x25,
	APSYNC_MSG_ROWS_DELETED = 0x26, /* keys gone from the ERP, found by row hashes */
	APSYNC_MSG_EXPORT_RESULT = 0x27, /* what the ERP made of an EXPORT */
};

/* WebSocket close codes (RFC 6455 private range 4000-4999). */
enum apsync_close_code {
	APSYNC_CLOSE_PROTOCOL = 4000,   /* malformed frame or message */
	APSYNC_CLOSE_TOO_BIG = 4001,    /* a limit was exceeded */
	APSYNC_CLOSE_AUTH = 4003,       /* credential refused */
	APSYNC_CLOSE_VERSION = 4005,    /* protocol version not supported */
	APSYNC_CLOSE_TIMEOUT = 4008,    /* no HELLO in time, heartbeats missed */
	APSYNC_CLOSE_REPLACED = 4009,   /* the same agent connected again */
	APSYNC_CLOSE_INTERNAL = 4011,   /* the sender hit an internal error */
	APSYNC_CLOSE_SHUTDOWN = 4012,   /* the sender is shutting down */
};

#endif
