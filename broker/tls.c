/* TLS material for a broker started without --tls-cert: a self-signed
 * certificate for localhost and this host, kept in DATA/tls/. Agents trust it
 * with `--ca DATA/tls/cert.pem` or pin its fingerprint. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "broker_internal.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define CERT_DAYS 825

static int add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return 0;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

static int write_pem(const char *path, int is_key, EVP_PKEY *pkey, X509 *cert)
{
	FILE *f;
	int fd, ok;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, is_key ? 0600 : 0644);
	if (fd < 0)
		return 0;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return 0;
	}
	ok = is_key ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL)
		    : PEM_write_X509(f, cert);
	if (fflush(f) || fsync(fileno(f)))
		ok = 0;
	fclose(f);
	return ok;
}

static int make_cert(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	X509_NAME *name;
	char host[256] = "localhost", san[600];
	uint8_t serial[16];
	BIGNUM *bn = NULL;
	int rc = APS_ERR_TLS;

	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "localhost");
	pkey = EVP_EC_gen("P-256");
	cert = X509_new();
	if (!pkey || !cert || aps_random(serial, sizeof(serial)))
		goto out;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
		goto out;
	X509_set_version(cert, 2);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), (long)CERT_DAYS * 86400);
	X509_set_pubkey(cert, pkey);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"apsync", -1,
				   -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host, -1, -1,
				   0);
	X509_set_issuer_name(cert, name);
	if (strcmp(host, "localhost"))
		snprintf(san, sizeof(san), "DNS:localhost,DNS:%s,IP:127.0.0.1,IP:::1", host);
	else
		snprintf(san, sizeof(san), "DNS:localhost,IP:127.0.0.1,IP:::1");
	/* Self-signed and used as its own trust anchor: mark it a CA, as
	 * `openssl req -x509` does, so every TLS stack accepts it as one. */
	if (!add_ext(cert, NID_basic_constraints, "critical,CA:TRUE") ||
	    !add_ext(cert, NID_key_usage, "critical,digitalSignature,keyCertSign") ||
	    !add_ext(cert, NID_ext_key_usage, "serverAuth") ||
	    !add_ext(cert, NID_subject_key_identifier, "hash") ||
	    !add_ext(cert, NID_subject_alt_name, san))
		goto out;
	if (!X509_sign(cert, pkey, EVP_sha256()))
		goto out;
	if (!write_pem(key_path, 1, pkey, NULL) || !write_pem(cert_path, 0, NULL, cert)) {
		snprintf(err, errlen, "cannot write %s or %s", key_path, cert_path);
		rc = APS_ERR_IO;
		goto out;
	}
	log_notice("made a self-signed TLS certificate %s for localhost and %s", cert_path, host);
	rc = APS_OK;
out:
	if (rc == APS_ERR_TLS)
		snprintf(err, errlen, "cannot make a self-signed certificate (OpenSSL error)");
	BN_free(bn);
	X509_free(cert);
	EVP_PKEY_free(pkey);
	return rc;
}

int tls__ensure_self_signed(const char *data_dir, char *cert, size_t certlen, char *key,
			    size_t keylen, char *err, size_t errlen)
{
	char dir[4096];
	struct stat st;

	if (aps_path_join(dir, sizeof(dir), data_dir, "tls") ||
	    aps_path_join(cert, certlen, dir, "cert.pem") ||
	    aps_path_join(key, keylen, dir, "key.pem")) {
		snprintf(err, errlen, "data directory path too long: %s", data_dir);
		return APS_ERR_RANGE;
	}
	if (!stat(cert, &st) && !stat(key, &st))
		return APS_OK;
	if (aps_mkdir_p(dir, 0700)) {
		snprintf(err, errlen, "cannot create %s", dir);
		return APS_ERR_IO;
	}
	return make_cert(cert, key, err, errlen);
}

int tls__fingerprint(const char *cert_path, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;
	X509 *cert = NULL;
	FILE *f;
	size_t o = 0;

	f = fopen(cert_path, "r");
	if (!f)
		return APS_ERR_IO;
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!cert || !X509_digest(cert, EVP_sha256(), md, &n)) {
		X509_free(cert);
		return APS_ERR_TLS;
	}
	X509_free(cert);
	if (outlen < (size_t)n * 3)
		return APS_ERR_RANGE;
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, outlen - o, i ? ":%02X" : "%02X", md[i]);
	return APS_OK;
}
