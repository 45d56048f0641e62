/* `apsync-agent enroll`: trade a one-time code for this SyncTool's credential
 * (POST /api/v1/enroll over HTTPS, trusting the broker as `run` will), and
 * keep it in STATE/credential.json, mode 0600. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent_internal.h"
#include "err.h"
#include "log.h"
#include "plat.h"
#include "util.h"

struct enroll {
	struct agent_tls *tls;
	char body[256];
	struct aps_buf resp;
	unsigned int status;
	int done;
	char error[512];
};

static int enroll_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			   size_t len)
{
	struct enroll *e = lws_context_user(lws_get_context(wsi));
	uint8_t buf[LWS_PRE + 1024];
	char clen[16], err[512];
	unsigned char **p, *end;
	char *px;
	int n;

	switch (reason) {
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
		err[0] = '\0';
		n = agent_tls__verify(e->tls, user, (int)len, err, sizeof(err));
		if (err[0])
			snprintf(e->error, sizeof(e->error), "%s", err);
		return n;
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		p = (unsigned char **)in;
		end = *p + len;
		n = snprintf(clen, sizeof(clen), "%zu", strlen(e->body));
		if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
						 (const unsigned char *)"application/json", 16, p,
						 end) ||
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
						 (const unsigned char *)clen, n, p, end))
			return -1;
		lws_client_http_body_pending(wsi, 1);
		lws_callback_on_writable(wsi);
		return 0;
	case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
		n = (int)strlen(e->body);
		memcpy(buf + LWS_PRE, e->body, (size_t)n);
		if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_FINAL) != n)
			return -1;
		lws_client_http_body_pending(wsi, 0);
		return 0;
	case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
		e->status = lws_http_client_http_response(wsi);
		return 0;
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
		if (e->resp.len + len > 65536 || aps_buf_append(&e->resp, in, len))
			return -1;
		return 0;
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP:
		px = (char *)buf + LWS_PRE;
		n = (int)sizeof(buf) - LWS_PRE;
		if (lws_http_client_read(wsi, &px, &n) < 0)
			return -1;
		return 0;
	case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		e->done = 1;
		lws_cancel_service(lws_get_context(wsi));
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (!e->error[0])
			snprintf(e->error, sizeof(e->error), "%s", in ? (const char *)in : "failed");
		e->done = 1;
		lws_cancel_service(lws_get_context(wsi));
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols enroll_protocols[] = {
	{.name = "apsync-enroll", .callback = enroll_callback},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* POSTs the code; fills the credential from the answer. */
static int post_code(struct agent_cred *c, const char *code, char *err, size_t errlen)
{
	struct lws_context_creation_info info;
	struct lws_client_connect_info ci;
	struct lws_context *ctx;
	struct enroll e;
	const cJSON *v, *eo;
	cJSON *body = NULL, *req;
	char *text;
	int64_t deadline = aps_mono_ms() + 30000;
	int rc = APS_ERR_NET;

	memset(&e, 0, sizeof(e));
	e.tls = &c->tls;
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "code", code);
	text = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!text || strlen(text) >= sizeof(e.body)) {
		cJSON_free(text);
		snprintf(err, errlen, "the code is too long");
		return APS_ERR_INVAL;
	}
	snprintf(e.body, sizeof(e.body), "%s", text);
	cJSON_free(text);

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = enroll_protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.client_ssl_ca_filepath = agent_tls__ca_file(&c->tls);
	info.user = &e;
	info.connect_timeout_secs = 20;
	aps_log_route_lws();
	ctx = lws_create_context(&info);
	if (!ctx) {
		snprintf(err, errlen, "cannot set up TLS (CA file %s readable?)",
			 info.client_ssl_ca_filepath ? info.client_ssl_ca_filepath : "none");
		return APS_ERR_TLS;
	}
	memset(&ci, 0, sizeof(ci));
	ci.context = ctx;
	ci.address = c->host;
	ci.port = c->port;
	ci.path = "/api/v1/enroll";
	ci.host = c->host;
	ci.origin = c->host;
	ci.method = "POST";
	ci.ssl_connection = agent_tls__flags(&c->tls) | LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
	ci.protocol = enroll_protocols[0].name;
	if (c->tls.insecure)
		log_warn("TLS CERTIFICATE CHECKS ARE OFF (--insecure): use this only for a broker on "
			 "this machine.");
	if (!lws_client_connect_via_info(&ci))
		e.done = 1;
	while (!e.done && aps_mono_ms() < deadline)
		if (lws_service(ctx, 0) < 0)
			break;
	lws_context_destroy(ctx);
	if (!e.done) {
		snprintf(err, errlen, "the broker at %s did not answer within 30 s", c->broker);
		goto out;
	}
	if (!e.status) {
		snprintf(err, errlen, "cannot reach the broker at %s: %.400s", c->broker,
			 e.error[0] ? e.error : "connection failed");
		goto out;
	}
	aps_buf_terminate(&e.resp);
	body = e.resp.len ? cJSON_Parse((const char *)e.resp.data) : NULL;
	if (e.status != 201) {
		eo = cJSON_GetObjectItemCaseSensitive(body, "error");
		v = cJSON_GetObjectItemCaseSensitive(eo, "message");
		snprintf(err, errlen, "the broker refused the code (HTTP %u): %s", e.status,
			 cJSON_IsString(v) ? v->valuestring : "no reason given");
		rc = APS_ERR_AUTH;
		goto out;
	}
	rc = APS_ERR_INVAL;
	v = cJSON_GetObjectItemCaseSensitive(body, "credential");
	if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof(c->credential)) {
		snprintf(err, errlen, "the broker's answer holds no credential");
		goto out;
	}
	snprintf(c->credential, sizeof(c->credential), "%s", v->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(body, "synctool");
	snprintf(c->synctool, sizeof(c->synctool), "%s", cJSON_IsString(v) ? v->valuestring : "");
	v = cJSON_GetObjectItemCaseSensitive(body, "tenant");
	snprintf(c->tenant, sizeof(c->tenant), "%s", cJSON_IsString(v) ? v->valuestring : "");
	v = cJSON_GetObjectItemCaseSensitive(body, "agent_id");
	c->agent_id = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
	rc = APS_OK;
out:
	cJSON_Delete(body);
	if (e.resp.data)
		aps_wipe(e.resp.data, e.resp.cap);
	aps_buf_free(&e.resp);
	return rc;
}

int agent_enroll(struct agent_opts *o)
{
	struct agent_cred c;
	char err[1024], path[4096], *ca = NULL;
	size_t calen = 0;
	struct stat st;
	int rc;

	memset(&c, 0, sizeof(c));
	if (!o->broker || !o->code || !o->state) {
		fprintf(stderr, "apsync-agent enroll: needs --broker wss://HOST:PORT, --code CODE and "
				"--state DIR\n");
		return 2;
	}
	if (agent__parse_url(o->broker, c.host, sizeof(c.host), &c.port, err, sizeof(err))) {
		fprintf(stderr, "apsync-agent enroll: %s\n", err);
		return 2;
	}
	snprintf(c.broker, sizeof(c.broker), "wss://%s%s%s:%d", strchr(c.host, ':') ? "[" : "",
		 c.host, strchr(c.host, ':') ? "]" : "", c.port);
	if ((o->ca != NULL) + (o->pin != NULL) + (o->insecure != 0) > 1) {
		fprintf(stderr, "apsync-agent enroll: give one of --ca, --pin or --insecure\n");
		return 2;
	}
	if (o->insecure && !aps_host_is_loopback(c.host)) {
		fprintf(stderr, "apsync-agent enroll: --insecure is only allowed for a broker on this "
				"machine (localhost, 127.0.0.1, ::1); for %s give the broker's CA with "
				"--ca FILE or its fingerprint with --pin\n",
			c.host);
		return 2;
	}
	if (o->pin && agent_tls__parse_pin(o->pin, c.tls.pin)) {
		fprintf(stderr, "apsync-agent enroll: --pin must be a SHA-256 fingerprint (64 hex "
				"digits, colons allowed)\n");
		return 2;
	}
	c.tls.insecure = o->insecure;
	if (aps_dir_private(o->state, err, sizeof(err))) {
		fprintf(stderr, "apsync-agent enroll: the state directory: %s\n", err);
		return 1;
	}
	if (aps_path_join(path, sizeof(path), o->state, "credential.json") || !stat(path, &st)) {
		fprintf(stderr, "apsync-agent enroll: %s exists: this state directory is already "
				"enrolled; remove that file (or use another --state) to enroll again\n",
			path);
		return 1;
	}
	if (o->ca) {
		/* The state directory keeps its own copy, so `run` needs only --state. */
		rc = aps_read_file(o->ca, 1 << 20, &ca, &calen);
		if (rc || !strstr(ca, "-----BEGIN CERTIFICATE-----")) {
			fprintf(stderr, "apsync-agent enroll: --ca %s is not a readable PEM certificate "
					"file\n",
				o->ca);
			free(ca);
			return 2;
		}
		if (aps_path_join(c.tls.ca, sizeof(c.tls.ca), o->state, "ca.pem") ||
		    aps_write_file(c.tls.ca, ca, calen, 0644)) {
			fprintf(stderr, "apsync-agent enroll: cannot write %s/ca.pem\n", o->state);
			free(ca);
			return 1;
		}
		free(ca);
	}
	rc = post_code(&c, o->code, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "apsync-agent enroll: %s\n", err);
		return 1;
	}
	rc = agent_cred__save(o->state, &c, err, sizeof(err));
	aps_wipe(c.credential, sizeof(c.credential));
	if (rc) {
		fprintf(stderr, "apsync-agent enroll: %s\n", err);
		return 1;
	}
	printf("enrolled as SyncTool \"%s\" in tenant \"%s\" (agent %lld); credential in %s\n"
	       "next: apsync-agent run --state %s --erp SCHEME:TARGET\n",
	       c.synctool, c.tenant, (long long)c.agent_id, path, o->state);
	return 0;
}
