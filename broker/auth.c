/* Secrets the broker hands out: API tokens ("apt_<secret>"), agent
 * credentials ("apsa_<agent id>_<secret>"), web session ids and enrollment
 * codes. Only the SHA-256 of the secret part is stored; secrets carry 256
 * random bits and codes 80, so a fast hash is the right one (no password
 * stretching). Passwords, chosen by people, are stretched with scrypt. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/kdf.h>

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

/* ---- passwords: scrypt through OpenSSL's EVP_PKEY KDF ---- */

/* N = 2^15, r = 8, p = 1: 32 MiB and some 50 ms per hash on this kind of
 * machine. The parameters are stored with each hash, so raising them later
 * leaves the old hashes readable. */
#define PW_LOG2N   15
#define PW_R       8
#define PW_P       1
#define PW_SALT    16
#define PW_KEY     32

static int scrypt_derive(const char *pw, const uint8_t *salt, size_t saltlen, int log2n, int r,
			 int p, uint8_t *key, size_t keylen)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_SCRYPT, NULL);
	uint64_t n = (uint64_t)1 << log2n;
	size_t outlen = keylen;
	int ok;

	ok = ctx && EVP_PKEY_derive_init(ctx) > 0 &&
	     EVP_PKEY_CTX_set1_pbe_pass(ctx, pw, (int)strlen(pw)) > 0 &&
	     EVP_PKEY_CTX_set1_scrypt_salt(ctx, salt, (int)saltlen) > 0 &&
	     EVP_PKEY_CTX_set_scrypt_N(ctx, n) > 0 &&
	     EVP_PKEY_CTX_set_scrypt_r(ctx, (uint64_t)r) > 0 &&
	     EVP_PKEY_CTX_set_scrypt_p(ctx, (uint64_t)p) > 0 &&
	     /* scrypt needs 128 r N bytes (and 128 r p); leave room */
	     EVP_PKEY_CTX_set_scrypt_maxmem_bytes(ctx, 129ULL * (uint64_t)r * (n + (uint64_t)p) +
							       (1u << 20)) > 0 &&
	     EVP_PKEY_derive(ctx, key, &outlen) > 0 && outlen == keylen;
	EVP_PKEY_CTX_free(ctx);
	return ok ? APS_OK : APS_ERR_INTERNAL;
}

int auth__password_ok(const char *pw, char *why, size_t len)
{
	size_t n = strlen(pw);

	if (n < AUTH_PASSWORD_MIN) {
		snprintf(why, len, "a password has at least %d characters", AUTH_PASSWORD_MIN);
		return 0;
	}
	if (n > AUTH_PASSWORD_MAX) {
		snprintf(why, len, "a password has at most %d characters", AUTH_PASSWORD_MAX);
		return 0;
	}
	return 1;
}

int auth__password_hash(const char *pw, char out[AUTH_HASH_LEN])
{
	uint8_t salt[PW_SALT], key[PW_KEY];
	char salt_hex[2 * PW_SALT + 1], key_hex[2 * PW_KEY + 1];
	int rc;

	rc = aps_random(salt, sizeof(salt));
	if (!rc)
		rc = scrypt_derive(pw, salt, sizeof(salt), PW_LOG2N, PW_R, PW_P, key, sizeof(key));
	if (rc)
		return rc;
	aps_hex(salt, sizeof(salt), salt_hex);
	aps_hex(key, sizeof(key), key_hex);
	snprintf(out, AUTH_HASH_LEN, "scrypt$%d$%d$%d$%s$%s", PW_LOG2N, PW_R, PW_P, salt_hex,
		 key_hex);
	aps_wipe(key, sizeof(key));
	aps_wipe(key_hex, sizeof(key_hex));
	return APS_OK;
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
	size_t i;
	unsigned int v;

	if (strlen(s) != 2 * n)
		return APS_ERR_INVAL;
	for (i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
		    sscanf(s + 2 * i, "%2x", &v) != 1)
			return APS_ERR_INVAL;
		out[i] = (uint8_t)v;
	}
	return APS_OK;
}

int auth__password_verify(const char *pw, const char *stored)
{
	char salt_hex[2 * PW_SALT + 2], key_hex[2 * PW_KEY + 2];
	uint8_t salt[PW_SALT], want[PW_KEY], got[PW_KEY];
	int log2n, r, p, rc;

	if (sscanf(stored, "scrypt$%d$%d$%d$%33[0-9a-f]$%65[0-9a-f]", &log2n, &r, &p, salt_hex,
		   key_hex) != 5 ||
	    log2n < 10 || log2n > 20 || r < 1 || r > 32 || p < 1 || p > 16 ||
	    unhex(salt_hex, salt, sizeof(salt)) || unhex(key_hex, want, sizeof(want)))
		return APS_ERR_INVAL;
	rc = scrypt_derive(pw, salt, sizeof(salt), log2n, r, p, got, sizeof(got));
	if (rc)
		return rc;
	rc = aps_ct_equal(got, want, sizeof(got)) ? APS_OK : APS_ERR_AUTH;
	aps_wipe(got, sizeof(got));
	return rc;
}
