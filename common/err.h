/* One error enum for the whole project; functions return it and hand results
 * back through out-parameters. */
#ifndef APS_ERR_H
#define APS_ERR_H

enum aps_err {
	APS_OK = 0,
	APS_ERR_NOMEM,
	APS_ERR_INVAL,       /* a value is not of the expected form */
	APS_ERR_RANGE,       /* a number or length is out of bounds */
	APS_ERR_IO,          /* a file or socket operation failed */
	APS_ERR_DB,          /* the local database failed */
	APS_ERR_NOTFOUND,
	APS_ERR_EXISTS,
	APS_ERR_AUTH,        /* unknown or wrong credential */
	APS_ERR_REVOKED,     /* credential revoked */
	APS_ERR_EXPIRED,     /* code or credential expired */
	APS_ERR_USED,        /* one-time code already used */
	APS_ERR_FORBIDDEN,   /* authenticated, but not allowed */
	APS_ERR_CONFLICT,    /* state does not allow the operation */
	APS_ERR_BUSY,        /* resource busy (ERP locked, …); try later */
	APS_ERR_TLS,
	APS_ERR_NET,
	APS_ERR_ERP,         /* the ERP refused or failed */
	/* wire protocol */
	APS_ERR_SHORT,       /* need more bytes: not an error in a stream */
	APS_ERR_MAGIC,
	APS_ERR_VERSION,
	APS_ERR_FLAGS,
	APS_ERR_TYPE,
	APS_ERR_TOO_BIG,     /* frame longer than the limit */
	APS_ERR_INFLATE,     /* compressed body is corrupt */
	APS_ERR_INFLATED_TOO_BIG,
	APS_ERR_RATIO,       /* compression ratio above the limit */
	APS_ERR_LENGTH,      /* body length does not match the header */
	APS_ERR_JSON,        /* body is not one JSON object */
	APS_ERR_JSON_DEPTH,
	APS_ERR_MESSAGE,     /* JSON is fine, the message's fields are not */
	APS_ERR_SEQ,         /* sequence number out of order */
	APS_ERR_INTERNAL,
	APS_ERR__COUNT
};

/* A sentence for people, e.g. "frame larger than the limit". */
const char *aps_strerror(int err);
/* The stable code used on the wire and in the REST API, e.g. "frame_too_big". */
const char *aps_errcode(int err);
/* Reverse of aps_errcode(); APS_ERR_INTERNAL when unknown. */
int aps_err_from_code(const char *code);

#endif
