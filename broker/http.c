/*
 * REST plumbing on libwebsockets: one struct http_req per connection (reset
 * for each request of a keep-alive connection), the request body gathered
 * up to --max-request bytes, a route table, and JSON replies written from
 * the WRITEABLE callback in chunks.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apsync_proto.h"
#include "broker_internal.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define CHUNK 16384

struct route {
	int method;
	const char *pattern; /* '#' matches a positive integer id, '*' one name */
	api_fn fn;
	int auth;            /* needs a Bearer token or a session cookie */
};

/*
 * Every route of the API. tests/integration/test_tenancy.py reads this table
 * and calls each route across tenants and roles; test_web.py checks that the
 * OpenAPI file (broker/web/openapi.json) describes each one.
 */

static const struct route routes[] = {
	{WSI_TOKEN_GET_URI, "/api/v1/health", api_health, 0},
	{WSI_TOKEN_GET_URI, "/api/v1/openapi.json", api_openapi, 0},
	{WSI_TOKEN_POST_URI, "/api/v1/enroll", api_enroll, 0},
	{WSI_TOKEN_POST_URI, "/api/v1/agent/check", api_agent_check, 0},
	{WSI_TOKEN_POST_URI, "/api/v1/session", api_session_create, 0},
	{WSI_TOKEN_POST_URI, "/api/v1/session/end", api_session_end, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/me", api_me, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/users", api_users_list, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/users", api_users_create, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/users/#/role", api_user_role, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/users/#/password", api_user_password, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/erps", api_erps, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/entities/#/exports", api_exports_create, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/exports", api_export_runs, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/exports/#", api_export_run_get, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/documents", api_documents_list, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/documents/#", api_document_get, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/documents/#/retry", api_document_retry, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/documents/#/mark-exported", api_document_mark, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/rules", api_rules_list, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/rules", api_rules_add, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/rules/#/delete", api_rules_delete, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/synctools", api_synctools_list, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/synctools/codes", api_synctools_code, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/synctools/*/revoke", api_synctools_revoke, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/entities", api_entities_list, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/entities/#", api_entity_get, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/entities/#/lists", api_entity_lists, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/entities/#/lists/*", api_items_page, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/overview", api_overview, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/syncs/all", api_syncs_all, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/syncs/#/cancel", api_syncs_cancel, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/syncs", api_syncs_list, 1},
	{WSI_TOKEN_POST_URI, "/api/v1/syncs", api_syncs_create, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/syncs/#", api_syncs_get, 1},
	{WSI_TOKEN_GET_URI, "/api/v1/syncs/#/log", api_syncs_log, 1},
};

static const int methods[] = {
	WSI_TOKEN_GET_URI,   WSI_TOKEN_POST_URI,   WSI_TOKEN_PUT_URI,
	WSI_TOKEN_PATCH_URI, WSI_TOKEN_DELETE_URI, WSI_TOKEN_OPTIONS_URI,
};

static void req_reset(struct http_req *r)
{
	aps_buf_free(&r->body);
	aps_buf_free(&r->resp);
	memset(r, 0, sizeof(*r));
}

/* Matches path against pattern; fills params with the '#' segments. */
static int route_match(const char *pattern, const char *path, int64_t *params)
{
	int np = 0;
	char seg[32];
	size_t n;

	while (*pattern && *path) {
		if (*pattern == '#') {
			n = strcspn(path, "/");
			if (n == 0 || n >= sizeof(seg) || np == HTTP_MAX_PARAMS)
				return 0;
			memcpy(seg, path, n);
			seg[n] = '\0';
			if (aps_parse_i64(seg, 1, INT64_MAX, &params[np++]))
				return 0;
			pattern++;
			path += n;
			continue;
		}
		if (*pattern == '*') {
			n = strcspn(path, "/");
			if (n == 0)
				return 0;
			pattern++;
			path += n;
			continue;
		}
		if (*pattern++ != *path++)
			return 0;
	}
	/* a trailing slash is forgiven */
	if (*path == '/' && path[1] == '\0')
		path++;
	return !*pattern && !*path;
}

static void http_send(struct http_req *r, unsigned int status)
{
	uint8_t hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
	static const char nosniff[] = "nosniff", nostore[] = "no-store";

	r->status = status;
	r->responded = 1;
	if (lws_add_http_common_headers(r->wsi, status, "application/json", r->resp.len, &p, end) ||
	    lws_add_http_header_by_name(r->wsi, (const unsigned char *)"cache-control:",
					(const unsigned char *)nostore, sizeof(nostore) - 1, &p,
					end) ||
	    lws_add_http_header_by_name(r->wsi, (const unsigned char *)"x-content-type-options:",
					(const unsigned char *)nosniff, sizeof(nosniff) - 1, &p,
					end) ||
	    (r->location[0] &&
	     lws_add_http_header_by_name(r->wsi, (const unsigned char *)"location:",
					 (const unsigned char *)r->location,
					 (int)strlen(r->location), &p, end)) ||
	    (r->set_cookie[0] &&
	     lws_add_http_header_by_name(r->wsi, (const unsigned char *)"set-cookie:",
					 (const unsigned char *)r->set_cookie,
					 (int)strlen(r->set_cookie), &p, end)) ||
	    lws_finalize_write_http_header(r->wsi, start, &p, end)) {
		r->responded = -1;
		return;
	}
	lws_callback_on_writable(r->wsi);
}

void http__reply_list(struct http_req *r, const char *name, cJSON *list)
{
	cJSON *o;

	if (!list) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, name, list);
	http__reply_json(r, 200, o);
}

void http__reply_json(struct http_req *r, unsigned int status, cJSON *body)
{
	char *text;

	if (r->responded) {
		cJSON_Delete(body);
		return;
	}
	text = body ? cJSON_PrintUnformatted(body) : NULL;
	cJSON_Delete(body);
	r->resp.len = 0;
	if (!text || aps_buf_append_str(&r->resp, text) || aps_buf_append(&r->resp, "\n", 1)) {
		cJSON_free(text);
		r->resp.len = 0;
		aps_buf_append_str(&r->resp, "{\"error\":{\"code\":\"out_of_memory\","
					     "\"message\":\"the broker is out of memory\"}}\n");
		http_send(r, 500);
		return;
	}
	cJSON_free(text);
	http_send(r, status);
}

void http__reply_error(struct http_req *r, unsigned int status, const char *code,
		       const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	cJSON *body, *e;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	body = cJSON_CreateObject();
	e = cJSON_AddObjectToObject(body, "error");
	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	http__reply_json(r, status, body);
}

cJSON *http__body_json(struct http_req *r)
{
	cJSON *j = NULL;

	if (!r->body.len) {
		http__reply_error(r, 400, "bad_request", "this request needs a JSON object as body");
		return NULL;
	}
	if (!aps_json_precheck((const char *)r->body.data, r->body.len, APSYNC_MAX_JSON_DEPTH))
		j = cJSON_ParseWithLength((const char *)r->body.data, r->body.len);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		http__reply_error(r, 400, "bad_json", "the request body is not a JSON object");
		return NULL;
	}
	return j;
}

const char *http__query(struct http_req *r, const char *name, char *buf, int len)
{
	char key[64];

	snprintf(key, sizeof(key), "%s=", name);
	return lws_get_urlarg_by_name(r->wsi, key, buf, len);
}

int http__require_sync_role(struct http_req *r)
{
	if (auth__role_may_sync(r->user.role))
		return 1;
	http__reply_error(r, 403, "forbidden",
			  "role %s may not run syncs; ask a System Administrator", r->user.role);
	return 0;
}

int http__require_admin(struct http_req *r)
{
	if (!strcmp(r->user.role, "system_administrator"))
		return 1;
	http__reply_error(r, 403, "forbidden", "only a System Administrator may do this");
	return 0;
}

/* Web sessions last 12 hours at most, and end after 2 idle hours. */
#define SESSION_IDLE_MS (2 * 3600 * 1000LL)

/* The session cookie's value, copied into out (NUL-terminated); 0 if none. */
static int session_cookie(struct http_req *r, char *out, size_t len)
{
	static const char name[] = HTTP_SESSION_COOKIE "=";
	char hdr[2048];
	const char *p;
	size_t n;

	if (lws_hdr_copy(r->wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_COOKIE) <= 0)
		return 0;
	for (p = hdr; p && *p;) {
		while (*p == ' ' || *p == ';')
			p++;
		if (!strncmp(p, name, sizeof(name) - 1)) {
			p += sizeof(name) - 1;
			n = strcspn(p, ";");
			if (n == 0 || n >= len)
				break;
			memcpy(out, p, n);
			out[n] = '\0';
			aps_wipe(hdr, sizeof(hdr));
			return 1;
		}
		p = strchr(p, ';');
	}
	aps_wipe(hdr, sizeof(hdr));
	return 0;
}

/* A request signed in by cookie: state changes must carry the session's CSRF
 * token in X-CSRF-Token (a page of another site cannot read it). */
static int csrf_ok(struct http_req *r)
{
	static const char name[] = "x-csrf-token:";
	char tok[96];
	int n = lws_hdr_custom_length(r->wsi, name, (int)sizeof(name) - 1);

	if (r->method == WSI_TOKEN_GET_URI)
		return 1;
	if (n <= 0 || n >= (int)sizeof(tok) ||
	    lws_hdr_custom_copy(r->wsi, tok, sizeof(tok), name, (int)sizeof(name) - 1) < 0 ||
	    strlen(tok) != strlen(r->csrf) || !aps_ct_equal(tok, r->csrf, strlen(tok))) {
		http__reply_error(r, 403, "csrf",
				  "this request needs the session's X-CSRF-Token header (from "
				  "sign-in or GET /api/v1/me)");
		return 0;
	}
	return 1;
}

static int authenticate_session(struct http_req *r, const char *sid)
{
	int rc;

	aps_sha256(sid, strlen(sid), r->session_hash);
	rc = store_session_auth(r->b->store, r->session_hash, aps_now_ms(), SESSION_IDLE_MS,
				&r->user, r->csrf, sizeof(r->csrf));
	if (rc == APS_ERR_DB) {
		http__reply_error(r, 503, "unavailable", "the broker's store is not answering");
		return 0;
	}
	if (rc) {
		http__reply_error(r, 401, "unauthorized",
				  "your session has ended; sign in again");
		return 0;
	}
	r->by_session = 1;
	return csrf_ok(r);
}

static int authenticate(struct http_req *r)
{
	char hdr[300], sid[96];
	uint8_t hash[32];
	int n, rc;

	n = lws_hdr_copy(r->wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n <= 0 && session_cookie(r, sid, sizeof(sid))) {
		rc = authenticate_session(r, sid);
		aps_wipe(sid, sizeof(sid));
		return rc;
	}
	if (n <= 7 || strncasecmp(hdr, "Bearer ", 7)) {
		http__reply_error(r, 401, "unauthorized",
				  "sign in, or send an API token as \"Authorization: Bearer "
				  "apt_…\"");
		return 0;
	}
	rc = auth__api_token(hdr + 7, hash);
	aps_wipe(hdr, sizeof(hdr));
	if (!rc)
		rc = store_token_auth(r->b->store, hash, &r->user);
	if (rc == APS_ERR_DB) {
		http__reply_error(r, 503, "unavailable", "the broker's store is not answering");
		return 0;
	}
	if (rc) {
		http__reply_error(r, 401, "unauthorized", "the API token is unknown or revoked");
		return 0;
	}
	return 1;
}

static void dispatch(struct http_req *r)
{
	int64_t params[HTTP_MAX_PARAMS] = {0};
	int path_known = 0;
	size_t i;

	if (r->body_too_big) {
		http__reply_error(r, 413, "too_large", "request body larger than %lld bytes",
				  (long long)r->b->opts->max_request);
		return;
	}
	for (i = 0; i < APS_ARRAY_LEN(routes); i++) {
		if (!route_match(routes[i].pattern, r->path, params))
			continue;
		path_known = 1;
		if (routes[i].method != r->method)
			continue;
		if (routes[i].auth && !authenticate(r))
			return;
		routes[i].fn(r, params);
		if (!r->responded)
			http__reply_error(r, 500, "internal", "the handler gave no answer");
		return;
	}
	if (path_known)
		http__reply_error(r, 405, "method_not_allowed", "%s does not take this method",
				  r->path);
	else
		http__reply_error(r, 404, "not_found", "no API at %s", r->path);
}

static int on_http(struct http_req *r, struct lws *wsi, struct broker *b)
{
	char clen[24];
	int64_t len = 0;
	size_t i;
	int n;

	req_reset(r);
	r->wsi = wsi;
	r->b = b;
	r->method = -1;
	for (i = 0; i < APS_ARRAY_LEN(methods); i++) {
		n = lws_hdr_total_length(wsi, methods[i]);
		if (n > 0) {
			r->method = methods[i];
			if (n >= (int)sizeof(r->path) ||
			    lws_hdr_copy(wsi, r->path, sizeof(r->path), methods[i]) < 0) {
				http__reply_error(r, 414, "uri_too_long", "the URI is too long");
				return r->responded < 0 ? -1 : 0;
			}
			break;
		}
	}
	if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
	    aps_parse_i64(clen, 0, INT64_MAX, &len) == APS_OK && len > 0) {
		r->body_expected = 1;
		if (len > r->b->opts->max_request)
			r->body_too_big = 1;
		return 0; /* wait for LWS_CALLBACK_HTTP_BODY_COMPLETION */
	}
	dispatch(r);
	return r->responded < 0 ? -1 : 0;
}

static int on_writeable(struct http_req *r)
{
	static uint8_t buf[LWS_PRE + CHUNK];
	struct lws *wsi;
	size_t left, n;

	if (r->responded <= 0)
		return 0;
	left = r->resp.len - r->resp_off;
	n = left < CHUNK ? left : CHUNK;
	memcpy(buf + LWS_PRE, r->resp.data + r->resp_off, n);
	if (lws_write(r->wsi, buf + LWS_PRE, n, n == left ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
	    (int)n)
		return -1;
	r->resp_off += n;
	if (r->resp_off < r->resp.len) {
		lws_callback_on_writable(r->wsi);
		return 0;
	}
	log_info("http %s %u %zu bytes", r->path, r->status, r->resp.len);
	wsi = r->wsi;
	req_reset(r);
	if (lws_http_transaction_completed(wsi))
		return -1;
	return 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			 size_t len)
{
	struct http_req *r = user;
	struct broker *b = lws_context_user(lws_get_context(wsi));

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return on_http(r, wsi, b);
	case LWS_CALLBACK_HTTP_BODY:
		if (r->body_too_big || r->body.len + len > (size_t)b->opts->max_request) {
			r->body_too_big = 1;
			aps_buf_free(&r->body);
			return 0;
		}
		if (aps_buf_append(&r->body, in, len))
			return -1;
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		dispatch(r);
		return r->responded < 0 ? -1 : 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return on_writeable(r);
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (r)
			req_reset(r);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols http_protocol = {
	.name = "apsync-http",
	.callback = http_callback,
	.per_session_data_size = sizeof(struct http_req),
	.rx_buffer_size = 0,
};
