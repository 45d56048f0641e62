/* How the agent trusts the broker: a CA file (the broker's own certificate
 * when it is self-signed), a pinned SHA-256 fingerprint, the system's CAs,
 * or, on loopback only, nothing at all (--insecure, said loudly). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "agent_internal.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

int agent_tls__flags(const struct agent_tls *t)
{
	if (t->insecure)
		return LCCSCF_USE_SSL | LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
		       LCCSCF_ALLOW_EXPIRED;
	if (t->pin[0])
		/* The pin identifies the certificate; names and chains do not matter. */
		return LCCSCF_USE_SSL | LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
	return LCCSCF_USE_SSL;
}

const char *agent_tls__ca_file(const struct agent_tls *t)
{
	if (t->ca[0])
		return t->ca;
	if (!t->pin[0] && !t->insecure && access(SYSTEM_CA_FILE, R_OK) == 0)
		return SYSTEM_CA_FILE;
	return NULL;
}

int agent_tls__parse_pin(const char *in, char out[65])
{
	const char *p = in;
	int n = 0;

	if (!strncasecmp(p, "sha256:", 7))
		p += 7;
	else if (!strncasecmp(p, "sha256 fingerprint=", 19))
		p += 19;
	for (; *p; p++) {
		if (*p == ':' || *p == ' ')
			continue;
		if (!isxdigit((unsigned char)*p) || n == 64)
			return APS_ERR_INVAL;
		out[n++] = (char)tolower((unsigned char)*p);
	}
	out[n] = '\0';
	return n == 64 ? APS_OK : APS_ERR_INVAL;
}

int agent_tls__verify(const struct agent_tls *t, void *x509_ctx, int preverify_ok, char *err,
		      size_t errlen)
{
	X509_STORE_CTX *ctx = x509_ctx;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	X509 *cert;
	int depth = X509_STORE_CTX_get_error_depth(ctx);

	if (t->insecure) {
		X509_STORE_CTX_set_error(ctx, X509_V_OK);
		return 0;
	}
	if (t->pin[0]) {
		if (depth > 0) {
			/* Only the broker's own certificate is checked, against the pin. */
			X509_STORE_CTX_set_error(ctx, X509_V_OK);
			return 0;
		}
		cert = X509_STORE_CTX_get_current_cert(ctx);
		if (!cert || !X509_digest(cert, EVP_sha256(), md, &n)) {
			snprintf(err, errlen, "cannot read the broker's certificate");
			return 1;
		}
		aps_hex(md, n, hex);
		if (strcmp(hex, t->pin)) {
			snprintf(err, errlen,
				 "the broker's certificate (SHA-256 %s) does not match the pinned "
				 "fingerprint %s",
				 hex, t->pin);
			return 1;
		}
		X509_STORE_CTX_set_error(ctx, X509_V_OK);
		return 0;
	}
	if (!preverify_ok)
		snprintf(err, errlen, "the broker's certificate is not trusted: %s (depth %d)%s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)), depth,
			 t->ca[0] ? "; is --ca the broker's certificate or its CA?"
				  : "; give the broker's CA with --ca or its fingerprint with --pin");
	return 0; /* keep OpenSSL's verdict */
}
