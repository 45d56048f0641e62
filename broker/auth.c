/* Secrets the broker hands out: API tokens ("apt_<secret>"), agent
 * credentials ("apsa_<agent id>_<secret>") and enrollment codes. Only the
 * SHA-256 of the secret part is stored; secrets carry 256 random bits and
 * codes 80, so a fast hash is the right one (no password stretching). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "broker_internal.h"
#include "err.h"
#include "util.h"

const char *const broker_roles[] = {
	/* may run syncs */
	"system_administrator",
	"invoice_exporter",
	"invoice_administrator",
	"purchase_order_administrator",
	"payment_administrator",
	/* may look */
	"approver",
	"viewer",
	NULL,
};

#define SYNC_ROLES 5

int auth__role_valid(const char *role)
{
	int i;

	for (i = 0; broker_roles[i]; i++)
		if (!strcmp(broker_roles[i], role))
			return 1;
	return 0;
}

int auth__role_may_sync(const char *role)
{
	int i;

	for (i = 0; i < SYNC_ROLES; i++)
		if (!strcmp(broker_roles[i], role))
			return 1;
	return 0;
}

int auth__secret_new(char out[AUTH_SECRET_LEN], uint8_t hash[32])
{
	uint8_t raw[32];
	int rc;

	rc = aps_random(raw, sizeof(raw));
	if (rc)
		return rc;
	aps_b64url(raw, sizeof(raw), out);
	aps_wipe(raw, sizeof(raw));
	aps_sha256(out, strlen(out), hash);
	return APS_OK;
}

int auth__api_token(const char *token, uint8_t hash[32])
{
	size_t n;

	if (strncmp(token, "apt_", 4))
		return APS_ERR_AUTH;
	n = strlen(token + 4);
	if (n < 32 || n > 128)
		return APS_ERR_AUTH;
	aps_sha256(token + 4, n, hash);
	return APS_OK;
}

/* Crockford's base32: no I, L, O, U, so codes read aloud or typed survive. */
static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int auth__code_new(char out[20], uint8_t hash[32])
{
	uint8_t raw[16];
	int i, o = 0, rc;

	rc = aps_random(raw, sizeof(raw));
	if (rc)
		return rc;
	for (i = 0; i < 16; i++) {
		if (i && i % 4 == 0)
			out[o++] = '-';
		out[o++] = crockford[raw[i] & 31];
	}
	out[o] = '\0';
	aps_wipe(raw, sizeof(raw));
	return auth__code_hash(out, hash);
}

int auth__code_hash(const char *code, uint8_t hash[32])
{
	char norm[17];
	int n = 0;

	for (; *code; code++) {
		char c = (char)toupper((unsigned char)*code);

		if (c == '-' || c == ' ')
			continue;
		/* Crockford's decoding of look-alikes. */
		if (c == 'O')
			c = '0';
		else if (c == 'I' || c == 'L')
			c = '1';
		if (!strchr(crockford, c) || n == 16)
			return APS_ERR_INVAL;
		norm[n++] = c;
	}
	if (n != 16)
		return APS_ERR_INVAL;
	aps_sha256(norm, 16, hash);
	return APS_OK;
}

int auth__agent_credential(const char *cred, int64_t *agent_id, uint8_t hash[32])
{
	char id[24];
	const char *p, *us;
	size_t n, slen;

	if (strncmp(cred, "apsa_", 5))
		return APS_ERR_AUTH;
	p = cred + 5;
	us = strchr(p, '_');
	if (!us)
		return APS_ERR_AUTH;
	n = (size_t)(us - p);
	slen = strlen(us + 1);
	if (n == 0 || n >= sizeof(id) || slen < 32 || slen > 128)
		return APS_ERR_AUTH;
	memcpy(id, p, n);
	id[n] = '\0';
	if (aps_parse_i64(id, 1, INT64_MAX, agent_id))
		return APS_ERR_AUTH;
	aps_sha256(us + 1, slen, hash);
	return APS_OK;
}
