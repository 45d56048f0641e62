#include <string.h>

#include "err.h"

static const struct {
	const char *code;
	const char *text;
} errs[APS_ERR__COUNT] = {
	[APS_OK] = {"ok", "success"},
	[APS_ERR_NOMEM] = {"out_of_memory", "out of memory"},
	[APS_ERR_INVAL] = {"invalid", "invalid value"},
	[APS_ERR_RANGE] = {"out_of_range", "value out of range"},
	[APS_ERR_IO] = {"io_error", "input/output error"},
	[APS_ERR_DB] = {"database_error", "database error"},
	[APS_ERR_NOTFOUND] = {"not_found", "not found"},
	[APS_ERR_EXISTS] = {"already_exists", "already exists"},
	[APS_ERR_AUTH] = {"unauthorized", "credential unknown or wrong"},
	[APS_ERR_REVOKED] = {"revoked", "credential revoked"},
	[APS_ERR_EXPIRED] = {"expired", "expired"},
	[APS_ERR_USED] = {"already_used", "one-time code already used"},
	[APS_ERR_FORBIDDEN] = {"forbidden", "not allowed for this user"},
	[APS_ERR_CONFLICT] = {"conflict", "conflicts with the current state"},
	[APS_ERR_BUSY] = {"busy", "busy, try again later"},
	[APS_ERR_TLS] = {"tls_error", "TLS error"},
	[APS_ERR_NET] = {"network_error", "network error"},
	[APS_ERR_ERP] = {"erp_error", "the ERP reported an error"},
	[APS_ERR_SHORT] = {"frame_short", "frame shorter than its header"},
	[APS_ERR_MAGIC] = {"bad_magic", "not an apsync frame (bad magic byte)"},
	[APS_ERR_VERSION] = {"unsupported_version", "unsupported protocol version"},
	[APS_ERR_FLAGS] = {"bad_flags", "unknown flag bits set"},
	[APS_ERR_TYPE] = {"bad_type", "unknown or misplaced message type"},
	[APS_ERR_TOO_BIG] = {"frame_too_big", "frame larger than the limit"},
	[APS_ERR_INFLATE] = {"inflate_failed", "compressed body is corrupt"},
	[APS_ERR_INFLATED_TOO_BIG] = {"inflated_too_big", "inflated body larger than the limit"},
	[APS_ERR_RATIO] = {"ratio_exceeded", "compression ratio above the limit"},
	[APS_ERR_LENGTH] = {"bad_length", "body length does not match the header"},
	[APS_ERR_JSON] = {"bad_json", "body is not a JSON object"},
	[APS_ERR_JSON_DEPTH] = {"json_too_deep", "JSON nested deeper than the limit"},
	[APS_ERR_MESSAGE] = {"bad_message", "message fields missing or invalid"},
	[APS_ERR_SEQ] = {"bad_seq", "sequence number out of order"},
	[APS_ERR_INTERNAL] = {"internal", "internal error"},
};

const char *aps_strerror(int err)
{
	if (err < 0 || err >= APS_ERR__COUNT || !errs[err].text)
		return "unknown error";
	return errs[err].text;
}

const char *aps_errcode(int err)
{
	if (err < 0 || err >= APS_ERR__COUNT || !errs[err].code)
		return "internal";
	return errs[err].code;
}

int aps_err_from_code(const char *code)
{
	int i;

	for (i = 0; code && i < APS_ERR__COUNT; i++)
		if (errs[i].code && !strcmp(errs[i].code, code))
			return i;
	return APS_ERR_INTERNAL;
}
