/*
 * apsync-agent doctor: checks what the SyncTool needs, in the order it needs
 * it, and explains each failure with a fix: the configuration, the state
 * directory and credential, the broker (name, route, proxy, TLS and its
 * certificate, the broker itself, the credential), and the ERP (reachable,
 * its companies and lists, writes). Read-only: it changes nothing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "agent_internal.h"
#include "apsync_proto.h"
#include "db.h"
#include "err.h"
#include "plat.h"
#include "util.h"

#define TIMEOUT_MS 10000

struct doctor {
	int fails, warns;
	struct agent_tls *tls; /* for the verify callback */
	char tls_err[300];
};

static struct doctor *the_doctor;

__attribute__((format(printf, 4, 5))) static void report(struct doctor *d, const char *what,
							   const char *fix, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("[%s] %-18s %s\n", !fix ? " ok " : what[0] == '!' ? "warn" : "FAIL",
	       what[0] == '!' ? what + 1 : what, msg);
	if (fix) {
		printf("       %-18s fix: %s\n", "", fix);
		if (what[0] == '!')
			d->warns++;
		else
			d->fails++;
	}
	fflush(stdout);
}

/* ---- the state directory and credential ---- */

static int check_state(struct doctor *d, struct agent_opts *o, struct agent_cred *c)
{
	char path[4200], err[600], why[600];
	struct stat st;
	sqlite3 *db = NULL;
	int open;

	if (stat(o->state, &st) || !S_ISDIR(st.st_mode)) {
		report(d, "state directory", "enroll the SyncTool: apsync-agent enroll --broker "
					     "wss://HOST:PORT --code CODE --state DIR",
		       "%s is not a directory (%s)", o->state,
		       errno ? strerror(errno) : "not a directory");
		return APS_ERR_NOTFOUND;
	}
	if (access(o->state, R_OK | W_OK | X_OK))
		report(d, "state directory", "run the agent as the user that owns it, or chown it",
		       "%s is not writable by this user", o->state);
	else if ((open = aps_path_open_to_others(o->state, why, sizeof(why))) == 1)
		report(d, "!state directory", "let only the agent's user in: it holds the credential "
					      "and the outbox",
		       "%s is open to other users: %s", o->state, why);
	else if (open < 0)
		report(d, "!state directory", "make sure only the agent's user may enter it",
		       "cannot tell who may enter: %s", why);
	else
		report(d, "state directory", NULL, "%s (only its owner may enter)", o->state);
	if (agent_cred__load(o->state, c, err, sizeof(err))) {
		report(d, "credential", "enroll the SyncTool again with a new code from the broker's "
					"administrator",
		       "%s", err);
		return APS_ERR_AUTH;
	}
	report(d, "credential", NULL, "SyncTool \"%s\" of tenant %s, broker %s", c->synctool,
	       c->tenant, c->broker);
	if (state__open(o->state, &db, err, sizeof(err))) {
		report(d, "state database", "move state.db aside and restart: the agent makes a new "
					    "one (unsent data in it is lost)",
		       "%s", err);
	} else {
		snprintf(path, sizeof(path), "%s/state.db", o->state);
		report(d, "state database", NULL, "%s opens and is up to date", path);
	}
	aps_db_close(db);
	return APS_OK;
}

/* ---- the route to the broker ---- */

/* The probes use OpenSSL's socket layer (BIO_lookup_ex, BIO_socket,
 * BIO_connect): one code for every platform. */

/* The reason OpenSSL's resolver or socket layer recorded: the system's own
 * error text ("Connection refused") where there is one. */
static const char *ossl_reason(char *buf, size_t len)
{
	const char *data = NULL, *r;
	unsigned long e;
	int flags = 0;

	buf[0] = '\0';
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags))) {
		if (ERR_SYSTEM_ERROR(e)) {
			/* "error:8000006F:system library::Connection refused" */
			ERR_error_string_n(e, buf, len);
			r = strrchr(buf, ':');
			if (r && r[1])
				memmove(buf, r + 1, strlen(r + 1) + 1);
		} else if (!buf[0] && data && *data && (flags & ERR_TXT_STRING))
			snprintf(buf, len, "%s", data);
		else if (!buf[0])
			ERR_error_string_n(e, buf, len);
	}
	if (!buf[0])
		snprintf(buf, len, "%s", strerror(errno));
	return buf;
}

static int dial(const BIO_ADDRINFO *ai, char *err, size_t errlen)
{
	int fd, soerr;

	ERR_clear_error();
	fd = BIO_socket(BIO_ADDRINFO_family(ai), BIO_ADDRINFO_socktype(ai),
			BIO_ADDRINFO_protocol(ai), 0);
	if (fd == -1) {
		ossl_reason(err, errlen);
		return -1;
	}
	if (!BIO_socket_nbio(fd, 1) ||
	    (!BIO_connect(fd, BIO_ADDRINFO_address(ai), 0) && !BIO_sock_should_retry(-1))) {
		ossl_reason(err, errlen);
		BIO_closesocket(fd);
		return -1;
	}
	if (BIO_socket_wait(fd, 0, time(NULL) + TIMEOUT_MS / 1000) != 1) {
		snprintf(err, errlen, "no answer within %d s", TIMEOUT_MS / 1000);
		BIO_closesocket(fd);
		return -1;
	}
	soerr = BIO_sock_error(fd);
	if (soerr) {
		snprintf(err, errlen, "%s", strerror(soerr));
		BIO_closesocket(fd);
		return -1;
	}
	/* blocking from here, each read and write bounded by the timeout */
	BIO_socket_nbio(fd, 0);
	aps_sock_timeout(fd, TIMEOUT_MS);
	return fd;
}

static int resolve(struct doctor *d, const char *what, const char *host, int port,
		   BIO_ADDRINFO **res)
{
	char portstr[8], why[300], *addr;

	snprintf(portstr, sizeof(portstr), "%d", port);
	ERR_clear_error();
	if (!BIO_lookup_ex(host, portstr, BIO_LOOKUP_CLIENT, AF_UNSPEC, SOCK_STREAM, 0, res)) {
		report(d, what, "check the name, or this machine's DNS (resolv.conf); a proxy may be "
				"needed (--proxy)",
		       "cannot resolve %s: %s", host, ossl_reason(why, sizeof(why)));
		return -1;
	}
	addr = BIO_ADDR_hostname_string(BIO_ADDRINFO_address(*res), 1);
	report(d, what, NULL, "%s is %s", host, addr ? addr : "?");
	OPENSSL_free(addr);
	return 0;
}

/* Reads an HTTP response's status and headers' end from the socket (plain). */
static int http_status(BIO *b, char *buf, size_t len)
{
	size_t n = 0;
	int r;

	while (n + 1 < len && !strstr(buf, "\r\n\r\n")) {
		r = BIO_read(b, buf + n, (int)(len - n - 1));
		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
	}
	return strncmp(buf, "HTTP/1.", 7) ? -1 : atoi(buf + 9);
}

/* A TCP connection to the broker, directly or through the proxy. */
static int route(struct doctor *d, struct agent_opts *o, const struct agent_cred *c)
{
	const char *spec, *at;
	BIO_ADDRINFO *ai = NULL;
	BIO *b;
	char err[300], addr[512], req[1024], resp[2048], *auth = NULL;
	unsigned pport = 0;
	int fd = -1, status, bypassed;

	spec = agent__proxy_spec(o->proxy, c->host, &bypassed);
	if (!spec) {
		if (resolve(d, "broker name", c->host, c->port, &ai))
			return -1;
		fd = dial(ai, err, sizeof(err));
		BIO_ADDRINFO_free(ai);
		if (fd < 0)
			report(d, "broker route", "check that the broker runs and that a firewall lets "
						  "this machine out to that port (or set --proxy)",
			       "cannot connect to %s:%d: %s", c->host, c->port, err);
		else
			report(d, "broker route", NULL, "TCP to %s:%d", c->host, c->port);
		return fd;
	}
	if (agent__parse_proxy(spec, addr, sizeof(addr), &pport, err, sizeof(err))) {
		report(d, "proxy", "set --proxy HOST:PORT or fix HTTPS_PROXY", "%s", err);
		return -1;
	}
	at = strrchr(addr, '@');
	if (resolve(d, "proxy name", at ? at + 1 : addr, (int)pport, &ai))
		return -1;
	fd = dial(ai, err, sizeof(err));
	BIO_ADDRINFO_free(ai);
	if (fd < 0) {
		report(d, "proxy", "check the proxy's address and that it runs", "cannot connect to "
		       "the proxy %s:%u: %s", at ? at + 1 : addr, pport, err);
		return -1;
	}
	if (at) {
		/* Basic credentials, as the agent's libwebsockets sends them. */
		size_t n = (size_t)(at - addr);

		auth = malloc(4 * ((n + 2) / 3) + 1);
		if (auth)
			EVP_EncodeBlock((unsigned char *)auth, (const unsigned char *)addr, (int)n);
	}
	snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n%s%s%s\r\n", c->host,
		 c->port, c->host, c->port, auth ? "Proxy-Authorization: Basic " : "",
		 auth ? auth : "", auth ? "\r\n" : "");
	free(auth);
	memset(resp, 0, sizeof(resp));
	b = BIO_new_socket(fd, BIO_NOCLOSE);
	status = !b || BIO_write(b, req, (int)strlen(req)) != (int)strlen(req)
			 ? -1
			 : http_status(b, resp, sizeof(resp));
	BIO_free(b);
	if (status != 200) {
		report(d, "proxy", "the proxy must allow CONNECT to the broker's port (ask its "
				   "administrator; squid: http_access and SSL_ports; tinyproxy: "
				   "ConnectPort)",
		       "the proxy %s:%u refused CONNECT %s:%d: %.60s", at ? at + 1 : addr, pport,
		       c->host, c->port, resp[0] ? resp : "no answer");
		BIO_closesocket(fd);
		return -1;
	}
	report(d, "proxy", NULL, "%s:%u tunnels to %s:%d", at ? at + 1 : addr, pport, c->host,
	       c->port);
	return fd;
}

/* ---- TLS and the broker ---- */

static int is_address(const char *host)
{
	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);

	ASN1_OCTET_STRING_free(ip);
	return ip != NULL;
}

static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
	struct doctor *d = the_doctor;
	char err[300] = "";

	if (agent_tls__verify(d->tls, ctx, ok, err, sizeof(err)))
		ok = 0;
	else if (d->tls->insecure || d->tls->pin[0])
		ok = 1;
	if (err[0] && !d->tls_err[0])
		snprintf(d->tls_err, sizeof(d->tls_err), "%s", err);
	return ok;
}

/* An HTTPS request to the broker on fd; the body (JSON) into out. */
static int https(SSL *ssl, const char *host, const char *method, const char *path,
		 const char *body, char *out, size_t outlen)
{
	char req[2048];
	size_t n = 0;
	int r, status;

	snprintf(req, sizeof(req),
		 "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		 method, path, host, body ? strlen(body) : 0, body ? body : "");
	if (SSL_write(ssl, req, (int)strlen(req)) <= 0)
		return -1;
	out[0] = '\0';
	while (n + 1 < outlen) {
		char *hdr_end = strstr(out, "\r\n\r\n"), *cl;

		if (hdr_end && (cl = strcasestr(out, "content-length:")) && cl < hdr_end &&
		    strlen(hdr_end + 4) >= (size_t)atoi(cl + 15))
			break;
		r = SSL_read(ssl, out + n, (int)(outlen - n - 1));
		if (r <= 0)
			break;
		n += (size_t)r;
		out[n] = '\0';
	}
	if (strncmp(out, "HTTP/1.", 7))
		return -1;
	status = atoi(out + 9);
	if (strstr(out, "\r\n\r\n"))
		memmove(out, strstr(out, "\r\n\r\n") + 4, strlen(strstr(out, "\r\n\r\n") + 4) + 1);
	return status;
}

static void check_broker(struct doctor *d, struct agent_opts *o, struct agent_cred *c)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	const char *ca = agent_tls__ca_file(&c->tls);
	char body[4096], req[400];
	cJSON *j = NULL;
	int fd, status;

	fd = route(d, o, c);
	if (fd < 0)
		return;
	ctx = SSL_CTX_new(TLS_client_method());
	ssl = ctx ? SSL_new(ctx) : NULL;
	if (!ssl) {
		report(d, "broker TLS", "reinstall the agent (OpenSSL failed)", "cannot set up TLS");
		goto out;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (ca && !SSL_CTX_load_verify_locations(ctx, ca, NULL)) {
		report(d, "broker TLS", "give a readable PEM file with --ca (the broker's "
					"DATA/tls/cert.pem for a self-signed broker)",
		       "cannot read the CA file %s", ca);
		goto out;
	}
	d->tls = &c->tls;
	d->tls_err[0] = '\0';
	SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_cb);
	/* the name, or the address, the certificate must be for (SNI: names only) */
	if (is_address(c->host)) {
		if (!c->tls.insecure && !c->tls.pin[0])
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->host);
	} else {
		if (!c->tls.insecure && !c->tls.pin[0])
			SSL_set1_host(ssl, c->host);
		SSL_set_tlsext_host_name(ssl, c->host);
	}
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		char why[256];
		unsigned long e = ERR_get_error();

		if (e)
			ERR_error_string_n(e, why, sizeof(why));
		else
			snprintf(why, sizeof(why), "the broker closed the connection (%s)",
				 errno ? strerror(errno) : "no reason given");
		report(d, "broker TLS",
		       c->tls.pin[0] ? "check the pin: the broker logs its certificate's fingerprint at "
				       "start; enroll again with the new --pin after a certificate "
				       "change"
				     : "give the broker's CA with --ca, or pin its certificate with --pin "
				       "(enroll again to change the trust)",
		       "the TLS handshake with %s failed: %s", c->broker,
		       d->tls_err[0] ? d->tls_err
		       : SSL_get_verify_result(ssl) != X509_V_OK
			       ? X509_verify_cert_error_string(SSL_get_verify_result(ssl))
			       : why);
		goto out;
	}
	report(d, "broker TLS", NULL, "%s, certificate %s", SSL_get_version(ssl),
	       c->tls.insecure ? "NOT CHECKED (--insecure)"
	       : c->tls.pin[0] ? "matches the pin"
			       : "trusted");
	status = https(ssl, c->host, "GET", "/api/v1/health", NULL, body, sizeof(body));
	j = status == 200 ? cJSON_Parse(body) : NULL;
	if (!j) {
		report(d, "broker", "is this an apsync broker? check the broker URL you enrolled with",
		       "%s does not answer /api/v1/health (HTTP %d)", c->broker, status);
		goto out;
	}
	if (cJSON_GetNumberValue(cJSON_GetObjectItem(j, "protocol")) != APSYNC_PROTO_VERSION) {
		report(d, "broker", "upgrade the agent or the broker so that they speak one protocol",
		       "apsync-broker %s speaks protocol %g, this agent %d",
		       cJSON_GetStringValue(cJSON_GetObjectItem(j, "version")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(j, "protocol")),
		       APSYNC_PROTO_VERSION);
		goto out;
	}
	report(d, "broker", NULL, "apsync-broker %s, protocol %d",
	       cJSON_GetStringValue(cJSON_GetObjectItem(j, "version")), APSYNC_PROTO_VERSION);
	snprintf(req, sizeof(req), "{\"credential\": \"%s\"}", c->credential);
	status = https(ssl, c->host, "POST", "/api/v1/agent/check", req, body, sizeof(body));
	aps_wipe(req, sizeof(req));
	cJSON_Delete(j);
	j = cJSON_Parse(body);
	if (status == 200)
		report(d, "broker credential", NULL, "accepted: SyncTool \"%s\" of tenant %s",
		       cJSON_GetStringValue(cJSON_GetObjectItem(j, "synctool")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(j, "tenant")));
	else
		report(d, "broker credential", "ask the broker's administrator for a new enrollment "
					       "code and run apsync-agent enroll again",
		       "refused (HTTP %d): %s", status,
		       cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"),
							      "message"))
			       ?: "no reason given");
out:
	cJSON_Delete(j);
	if (ssl)
		SSL_free(ssl);
	SSL_CTX_free(ctx);
	BIO_closesocket(fd);
}

/* ---- the ERP ---- */

static void check_erp(struct doctor *d, struct agent_opts *o)
{
	struct erp_settings cfg = {.profiles = o->profiles,
				   .url = o->erp_url,
				   .user = o->erp_user,
				   .password_file = o->erp_password_file};
	const struct erp_ops *ops = NULL;
	struct erp_identity *id = calloc(1, sizeof(*id));
	struct erp *e = NULL;
	char err[1024];
	int64_t n;
	int rc, i, j;

	if (!id)
		return;
	rc = erp_open(o->erp, &cfg, &ops, &e, err, sizeof(err));
	if (!rc)
		rc = ops->identity(e, id, err, sizeof(err));
	if (rc) {
		report(d, rc == APS_ERR_BUSY ? "!ERP" : "ERP",
		       rc == APS_ERR_BUSY ? "the agent waits and retries by itself; nothing to do "
					    "unless it lasts"
					  : "check --erp (apsync-agent run --help lists the forms) and "
					    "that this user may read the ERP's data",
		       "%s: %s", o->erp, err);
		goto out;
	}
	report(d, "ERP", NULL, "%s %s (%s), %d compan%s", id->product, id->version, ops->scheme,
	       id->ncompanies, id->ncompanies == 1 ? "y" : "ies");
	for (i = 0; i < id->ncompanies; i++) {
		char lists[600] = "";
		size_t len = 0;

		for (j = 0; j < id->companies[i].nlists; j++) {
			rc = ops->count(e, id->companies[i].code, id->companies[i].lists[j], &n, err,
					sizeof(err));
			if (rc) {
				report(d, rc == APS_ERR_BUSY ? "!ERP company" : "ERP company",
				       rc == APS_ERR_BUSY ? "syncs wait until it is free"
							  : "check the ERP's data and the profile",
				       "%s: %s: %s", id->companies[i].code, id->companies[i].lists[j],
				       err);
				break;
			}
			len += (size_t)snprintf(lists + len, len < sizeof(lists) ? sizeof(lists) - len : 0,
						"%s%s %lld", j ? ", " : "", id->companies[i].lists[j],
						(long long)n);
		}
		if (!rc)
			report(d, "ERP company", NULL, "%s \"%s\": %s", id->companies[i].code,
			       id->companies[i].name, lists);
	}
	if (!ops->lookup || !ops->write_invoice)
		report(d, "!ERP writes", "exports to this ERP are not possible with this connector",
		       "the %s connector does not write documents", ops->scheme);
	else
		report(d, "ERP writes", NULL, "invoices%s, looked up by natural key before writing",
		       ops->write_payment ? " and payments" : "");
out:
	if (e)
		ops->close(e);
	free(id);
}

int agent_doctor(struct agent_opts *o, const char *config)
{
	struct doctor d = {0};
	struct agent_cred c;
	int rc;

	the_doctor = &d;
	memset(&c, 0, sizeof(c));
	printf("apsync-agent %s doctor\n", APSYNC_VERSION);
	report(&d, "configuration", NULL, "%s", config ? config : "command line only");
	rc = check_state(&d, o, &c);
	if (!rc)
		check_broker(&d, o, &c);
	if (o->erp)
		check_erp(&d, o);
	else
		report(&d, "ERP", "give --erp SCHEME:TARGET (or erp = … in the config)",
		       "no ERP is configured");
	aps_wipe(c.credential, sizeof(c.credential));
	printf("%d problem%s, %d warning%s\n", d.fails, d.fails == 1 ? "" : "s", d.warns,
	       d.warns == 1 ? "" : "s");
	return d.fails ? 1 : 0;
}
