/*
 * Tryton's JSON-RPC over libcurl (see tryton_rpc.h and
 * tests/fixtures/tryton/NOTES.md, "Writing … over JSON-RPC").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "tryton_rpc.h"
#include "util.h"

#define CONNECT_TIMEOUT_MS 10000L
/* Posting a long invoice keeps trytond busy for seconds; a call that takes
 * longer than this is abandoned as not answered (the lookup by natural key
 * before any retry covers a write that went through meanwhile). */
#define CALL_TIMEOUT_MS 300000L
#define MAX_REPLY       (64u << 20)
#define MAX_PASSWORD    4096

struct trpc {
	CURL *curl;
	char *url; /* ends with '/' */
	char *user;
	char *password_file;
	char host[300]; /* host[:port], for links */
	char db[128];
	int64_t uid;
	char *session; /* NULL: not logged in */
	cJSON *ctx;    /* the user's preferences: the context of model calls */
	int next_id;
	int in_login;
	int curl_inited;
	char curl_err[CURL_ERROR_SIZE];
};

static int nomem(char *err, size_t errlen)
{
	snprintf(err, errlen, "out of memory");
	return APS_ERR_NOMEM;
}

/* ---- values ---------------------------------------------------------------- */

cJSON *trpc_decimal(const char *text)
{
	cJSON *o = cJSON_CreateObject();

	if (!cJSON_AddStringToObject(o, "__class__", "Decimal") ||
	    !cJSON_AddStringToObject(o, "decimal", text)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int digits(const char *s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

cJSON *trpc_date(const char *ymd)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d, leap;
	cJSON *o;

	if (!ymd || strlen(ymd) != 10 || ymd[4] != '-' || ymd[7] != '-' || digits(ymd, 4, &y) ||
	    digits(ymd + 5, 2, &m) || digits(ymd + 8, 2, &d) || y < 1 || m < 1 || m > 12 || d < 1 ||
	    d > mdays[m - 1])
		return NULL;
	leap = (y % 4 == 0 && y % 100) || y % 400 == 0;
	if (m == 2 && d == 29 && !leap)
		return NULL;
	o = cJSON_CreateObject();
	if (!cJSON_AddStringToObject(o, "__class__", "date") ||
	    !cJSON_AddNumberToObject(o, "year", y) || !cJSON_AddNumberToObject(o, "month", m) ||
	    !cJSON_AddNumberToObject(o, "day", d)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

const char *trpc_decimal_text(const cJSON *v, char buf[40])
{
	const cJSON *cls = cJSON_GetObjectItemCaseSensitive(v, "__class__");
	const cJSON *dec = cJSON_GetObjectItemCaseSensitive(v, "decimal");

	if (cJSON_IsNumber(v)) {
		snprintf(buf, 40, "%.15g", v->valuedouble);
		return buf;
	}
	if (cJSON_IsString(cls) && !strcmp(cls->valuestring, "Decimal") && cJSON_IsString(dec))
		return dec->valuestring;
	return NULL;
}

/* ---- the client ------------------------------------------------------------ */

/* Splits the URL into what links need: host[:port] and the database, the
 * last segment of the path. */
static int parse_url(struct trpc *c, char *err, size_t errlen)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	const char *seg = NULL, *p;
	CURLU *u = curl_url();
	int rc = APS_ERR_INVAL;
	size_t n = 0;

	if (!u)
		return nomem(err, errlen);
	if (curl_url_set(u, CURLUPART_URL, c->url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    (!strcmp(scheme, "http") || !strcmp(scheme, "https")) &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
		for (p = path; *p; p++)
			if (*p != '/' && (p == path || p[-1] == '/'))
				seg = p;
		if (seg)
			n = strcspn(seg, "/");
		if (seg && n < sizeof(c->db)) {
			memcpy(c->db, seg, n);
			c->db[n] = '\0';
			if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
				snprintf(c->host, sizeof(c->host), "%s:%s", host, port);
			else
				snprintf(c->host, sizeof(c->host), "%s", host);
			rc = APS_OK;
		}
	}
	if (rc)
		snprintf(
		    err, errlen,
		    "--erp-url \"%.200s\" is not the address of a Tryton database; write it as "
		    "http://HOST:8000/DATABASE/",
		    c->url);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return rc;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct aps_buf *b = ud;

	if (n && size > MAX_REPLY / n)
		return 0;
	if (b->len + size * n > MAX_REPLY || aps_buf_append(b, p, size * n))
		return 0;
	return size * n;
}

int trpc_new(const char *url, const char *user, const char *password_file, struct trpc **out,
             char *err, size_t errlen)
{
	struct trpc *c;
	size_t n;
	int rc;

	*out = NULL;
	if (!url || !*url || !user || !*user || !password_file || !*password_file) {
		snprintf(err, errlen,
		         "writing into Tryton needs --erp-url (http://HOST:8000/DATABASE/), "
		         "--erp-user and --erp-password-file");
		return APS_ERR_INVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return nomem(err, errlen);
	c->curl_inited = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
	n = strlen(url);
	c->url = malloc(n + 2);
	if (!c->curl_inited || !c->url || !(c->user = strdup(user)) ||
	    !(c->password_file = strdup(password_file)) || !(c->curl = curl_easy_init())) {
		trpc_free(c);
		return nomem(err, errlen);
	}
	/* trytond redirects .../DATABASE to .../DATABASE/; POSTs do not follow. */
	memcpy(c->url, url, n + 1);
	if (url[n - 1] != '/')
		memcpy(c->url + n, "/", 2);
	rc = parse_url(c, err, errlen);
	if (rc) {
		trpc_free(c);
		return rc;
	}
	curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, CALL_TIMEOUT_MS);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "apsync-agent");
	*out = c;
	return APS_OK;
}

static void logout(struct trpc *c)
{
	if (c->session) {
		aps_wipe(c->session, strlen(c->session));
		APS_FREE(c->session);
	}
	cJSON_Delete(c->ctx);
	c->ctx = NULL;
}

void trpc_free(struct trpc *c)
{
	if (!c)
		return;
	logout(c);
	if (c->curl)
		curl_easy_cleanup(c->curl);
	if (c->curl_inited)
		curl_global_cleanup();
	free(c->url);
	free(c->user);
	free(c->password_file);
	free(c);
}

void trpc_link(const struct trpc *c, const char *model, int64_t id, char *out, size_t outlen)
{
	if (!c || !c->db[0] ||
	    snprintf(out, outlen, "tryton://%s/%s/model/%s/%lld", c->host, c->db, model,
	             (long long)id) >= (int)outlen)
		out[0] = '\0';
}

/* ---- one request ------------------------------------------------------------- */

static int net_fail(struct trpc *c, CURLcode cc, const char *doing, char *err, size_t errlen)
{
	const char *why = c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		snprintf(err, errlen, "the TLS connection to Tryton at %s failed while %s: %s",
		         c->url, doing, why);
		return APS_ERR_TLS;
	case CURLE_WRITE_ERROR:
		snprintf(err, errlen, "Tryton at %s answered more than %u MB while %s", c->url,
		         MAX_REPLY >> 20, doing);
		return APS_ERR_ERP;
	default:
		snprintf(err, errlen,
		         "Tryton at %s does not answer while %s (%s): check that trytond runs "
		         "there; it will be tried again",
		         c->url, doing, why);
		return APS_ERR_IO;
	}
}

/* POSTs body; *status is the HTTP status. */
static int post(struct trpc *c, const char *doing, const char *body, long *status,
                struct aps_buf *reply, char *err, size_t errlen)
{
	char token[600], b64[820], auth[860];
	struct curl_slist *h = NULL, *h2;
	CURLcode cc;
	int n;

	h = curl_slist_append(h, "Content-Type: application/json");
	if (h && (h2 = curl_slist_append(h, "Accept: application/json")))
		h = h2;
	if (h && c->session) {
		n = snprintf(token, sizeof(token), "%s:%lld:%s", c->user, (long long)c->uid,
		             c->session);
		if (n < 0 || n >= (int)sizeof(token)) {
			curl_slist_free_all(h);
			snprintf(err, errlen, "the Tryton user name is too long");
			return APS_ERR_RANGE;
		}
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)token, n);
		snprintf(auth, sizeof(auth), "Authorization: Session %s", b64);
		h2 = curl_slist_append(h, auth);
		aps_wipe(token, sizeof(token));
		aps_wipe(b64, sizeof(b64));
		aps_wipe(auth, sizeof(auth));
		if (!h2)
			curl_slist_free_all(h);
		h = h2;
	}
	if (!h)
		return nomem(err, errlen);
	c->curl_err[0] = '\0';
	reply->len = 0;
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, reply);
	cc = curl_easy_perform(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
	curl_slist_free_all(h);
	if (cc != CURLE_OK)
		return net_fail(c, cc, doing, err, errlen);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	return APS_OK;
}

/* APSYNC_TRYTON_TRACE=FILE appends every request and answer to FILE (as the
 * test fixture does), the login's without its parameters. */
static void trace(const char *method, const char *body, long status, const struct aps_buf *reply,
                  int64_t ms)
{
	const char *path = getenv("APSYNC_TRYTON_TRACE");
	FILE *f;

	if (!path || !*path || !(f = fopen(path, "a")))
		return;
	fprintf(f, ">>> %s %s\n<<< %ld in %lld ms\n%.*s\n\n", method, body ? body : "(secret)",
	        status, (long long)ms, (int)(reply->len > 100000 ? 100000 : reply->len),
	        reply->data ? (const char *)reply->data : "");
	fclose(f);
}

/* Sends one request; *reply is the parsed answer when the status is 200. The
 * params stay the caller's. */
static int request(struct trpc *c, const char *doing, const char *method, cJSON *params, int secret,
                   long *status, cJSON **reply, char *err, size_t errlen)
{
	struct aps_buf buf = {0};
	cJSON *req = cJSON_CreateObject();
	char *body = NULL;
	int64_t t0;
	int rc;

	*reply = NULL;
	if (cJSON_AddNumberToObject(req, "id", ++c->next_id) &&
	    cJSON_AddStringToObject(req, "method", method)) {
		cJSON_AddItemToObject(req, "params", params);
		body = cJSON_PrintUnformatted(req);
		cJSON_DetachItemFromObjectCaseSensitive(req, "params");
	}
	cJSON_Delete(req);
	if (!body)
		return nomem(err, errlen);
	log_debug("tryton: %s (%s)", method, doing);
	t0 = aps_mono_ms();
	rc = post(c, doing, body, status, &buf, err, errlen);
	trace(method, secret ? NULL : body, rc ? -1 : *status, &buf, aps_mono_ms() - t0);
	if (secret)
		aps_wipe(body, strlen(body));
	cJSON_free(body);
	if (!rc && *status == 200) {
		*reply = buf.len ? cJSON_ParseWithLength((const char *)buf.data, buf.len) : NULL;
		if (!cJSON_IsObject(*reply)) {
			snprintf(err, errlen,
			         "Tryton at %s did not answer in JSON-RPC while %s: is it the "
			         "address of a Tryton database?",
			         c->url, doing);
			rc = APS_ERR_ERP;
		}
	}
	if (rc) {
		cJSON_Delete(*reply);
		*reply = NULL;
	}
	aps_buf_free(&buf);
	return rc;
}

/* A string of an error's arguments, NULL if absent or empty. */
static const char *arg(const cJSON *args, int i)
{
	const cJSON *a = cJSON_GetArrayItem(args, i);

	return cJSON_IsString(a) && a->valuestring[0] ? a->valuestring : NULL;
}

/* Tryton's error value: ["UserError", [message, description, domain]],
 * ["UserWarning", [name, message, description]], ["LoginException", …],
 * ["ConcurrencyException", message], or [exception text, traceback]. */
static int rpc_error(struct trpc *c, const char *doing, const cJSON *error, char *err,
                     size_t errlen)
{
	const cJSON *k = cJSON_IsArray(error) ? cJSON_GetArrayItem(error, 0) : error;
	const cJSON *args = cJSON_IsArray(error) ? cJSON_GetArrayItem(error, 1) : NULL;
	const char *kind = cJSON_IsString(k) ? k->valuestring : "an unknown error";
	const char *msg = NULL, *desc = NULL;
	int n;

	if (!strcmp(kind, "UserError")) {
		msg = arg(args, 0);
		desc = arg(args, 1);
	} else if (!strcmp(kind, "UserWarning")) {
		msg = arg(args, 1);
		desc = arg(args, 2);
	}
	if (msg) {
		/* Its sentence without the full stop: callers may add to it. */
		n = (int)strlen(msg);
		if (n && msg[n - 1] == '.')
			n--;
		snprintf(err, errlen, "Tryton refused %s: %.*s%s%s%s", doing, n, msg,
		         desc ? " (" : "", desc ? desc : "", desc ? ")" : "");
		return APS_ERR_ERP;
	}
	if (!strcmp(kind, "LoginException")) {
		snprintf(err, errlen,
		         "Tryton at %s asks user \"%s\" for more than a password while "
		         "%s: give apsync a user that logs in with its password only",
		         c->url, c->user, doing);
		return APS_ERR_AUTH;
	}
	if (!strcmp(kind, "ConcurrencyException")) {
		snprintf(err, errlen, "a record changed in Tryton while %s; it will be tried again",
		         doing);
		return APS_ERR_BUSY;
	}
	if (strstr(kind, "database is locked") || strstr(kind, "could not serialize")) {
		snprintf(err, errlen,
		         "Tryton's database is busy while %s (%s); it will be tried again", doing,
		         kind);
		return APS_ERR_BUSY;
	}
	snprintf(err, errlen, "Tryton failed while %s: %s", doing, kind);
	return APS_ERR_ERP;
}

/* The result of an answer, or why there is none. */
static int take_result(struct trpc *c, const char *doing, long status, cJSON *reply, cJSON **result,
                       char *err, size_t errlen)
{
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(reply, "error");

	if (status == 401 || status == 403) {
		snprintf(err, errlen,
		         "Tryton at %s refused user \"%s\" (HTTP %ld) while %s: check "
		         "its rights in Tryton",
		         c->url, c->user, status, doing);
		return APS_ERR_AUTH;
	}
	if (status == 429 || status == 503) {
		snprintf(err, errlen,
		         "Tryton at %s is busy (HTTP %ld) while %s; it will be tried again", c->url,
		         status, doing);
		return APS_ERR_BUSY;
	}
	if (status != 200) {
		snprintf(err, errlen,
		         "Tryton at %s answered HTTP %ld while %s: is it the address of "
		         "a Tryton database?",
		         c->url, status, doing);
		return APS_ERR_ERP;
	}
	if (error && !cJSON_IsNull(error))
		return rpc_error(c, doing, error, err, errlen);
	*result = cJSON_DetachItemFromObjectCaseSensitive(reply, "result");
	if (!*result)
		*result = cJSON_CreateNull();
	return *result ? APS_OK : nomem(err, errlen);
}

/* ---- session ------------------------------------------------------------------ */

static int read_password(struct trpc *c, char **pw, char *err, size_t errlen)
{
	size_t len = 0;
	int rc;

	rc = aps_read_file(c->password_file, MAX_PASSWORD, pw, &len);
	if (rc == APS_ERR_NOMEM)
		return nomem(err, errlen);
	if (rc) {
		snprintf(err, errlen,
		         "cannot read the Tryton password from %s (%s): check --erp-password-file",
		         c->password_file,
		         rc == APS_ERR_NOTFOUND ? "no such file" : aps_strerror(rc));
		return APS_ERR_AUTH;
	}
	while (len && ((*pw)[len - 1] == '\n' || (*pw)[len - 1] == '\r'))
		(*pw)[--len] = '\0';
	if (!len) {
		free(*pw);
		*pw = NULL;
		snprintf(err, errlen, "the Tryton password file %s is empty", c->password_file);
		return APS_ERR_AUTH;
	}
	return APS_OK;
}

static int call(struct trpc *c, const char *doing, const char *method, cJSON *params,
                const cJSON *extra, cJSON **result, char *err, size_t errlen);

static int store_session(struct trpc *c, const cJSON *res, char *err, size_t errlen)
{
	const cJSON *uid = cJSON_GetArrayItem(res, 0), *key = cJSON_GetArrayItem(res, 1);

	if (!cJSON_IsArray(res) || !cJSON_IsNumber(uid) || !cJSON_IsString(key)) {
		snprintf(err, errlen,
		         "Tryton at %s refused the login of user \"%s\": check "
		         "--erp-user and the password in %s",
		         c->url, c->user, c->password_file);
		return APS_ERR_AUTH;
	}
	c->uid = (int64_t)uid->valuedouble;
	c->session = strdup(key->valuestring);
	return c->session ? APS_OK : nomem(err, errlen);
}

/* common.db.login, then the user's preferences as the context. */
static int login(struct trpc *c, char *err, size_t errlen)
{
	cJSON *params = NULL, *opts, *reply = NULL, *res = NULL, *pw_item = NULL;
	char *pw = NULL;
	long status = 0;
	int rc;

	logout(c);
	rc = read_password(c, &pw, err, errlen);
	if (rc)
		return rc;
	params = cJSON_CreateArray();
	opts = cJSON_CreateObject();
	pw_item = cJSON_AddStringToObject(opts, "password", pw);
	aps_wipe(pw, strlen(pw));
	if (pw_item && cJSON_AddItemToArray(params, cJSON_CreateString(c->user)) &&
	    cJSON_AddItemToArray(params, opts)) {
		opts = NULL;
		if (cJSON_AddItemToArray(params, cJSON_CreateString("en")))
			rc = request(c, "logging in", "common.db.login", params, 1, &status, &reply,
			             err, errlen);
		else
			rc = nomem(err, errlen);
	} else {
		rc = nomem(err, errlen);
	}
	if (pw_item)
		aps_wipe(pw_item->valuestring, strlen(pw_item->valuestring));
	cJSON_Delete(opts);
	free(pw);
	cJSON_Delete(params);
	if (!rc && (status == 401 || status == 403)) {
		snprintf(err, errlen,
		         "Tryton at %s refused the login of user \"%s\": check "
		         "--erp-user and the password in %s",
		         c->url, c->user, c->password_file);
		rc = APS_ERR_AUTH;
	} else if (!rc && status == 429) {
		snprintf(err, errlen,
		         "Tryton at %s refuses logins for a while after failed ones; it "
		         "will be tried again",
		         c->url);
		rc = APS_ERR_BUSY;
	}
	if (!rc)
		rc = take_result(c, "logging in", status, reply, &res, err, errlen);
	if (!rc)
		rc = store_session(c, res, err, errlen);
	cJSON_Delete(reply);
	cJSON_Delete(res);
	if (!rc) {
		c->in_login = 1;
		params = cJSON_CreateArray();
		cJSON_AddItemToArray(params, cJSON_CreateTrue());
		rc = call(c, "reading the user's preferences", "model.res.user.get_preferences",
		          params, NULL, &c->ctx, err, errlen);
		c->in_login = 0;
		if (!rc && !cJSON_IsObject(c->ctx)) {
			snprintf(err, errlen, "Tryton at %s gave no preferences for user \"%s\"",
			         c->url, c->user);
			rc = APS_ERR_ERP;
		}
	}
	if (rc)
		logout(c);
	else
		log_info("tryton: logged in to %s as %s", c->url, c->user);
	return rc;
}

/* The context of a call: the preferences with extra's members over them. */
static cJSON *context(struct trpc *c, const cJSON *extra)
{
	cJSON *ctx = c->ctx ? cJSON_Duplicate(c->ctx, 1) : cJSON_CreateObject();
	const cJSON *x;

	cJSON_ArrayForEach(x, extra) {
		cJSON_DeleteItemFromObjectCaseSensitive(ctx, x->string);
		if (ctx && !cJSON_AddItemToObject(ctx, x->string, cJSON_Duplicate(x, 1))) {
			cJSON_Delete(ctx);
			return NULL;
		}
	}
	return ctx;
}

static int call(struct trpc *c, const char *doing, const char *method, cJSON *params,
                const cJSON *extra, cJSON **result, char *err, size_t errlen)
{
	cJSON *reply = NULL;
	long status = 0;
	int rc = APS_OK, attempt;

	*result = NULL;
	if (!cJSON_IsArray(params)) {
		cJSON_Delete(params);
		return nomem(err, errlen);
	}
	if (!c->session)
		rc = login(c, err, errlen);
	if (!rc && (!strncmp(method, "model.", 6) || !strncmp(method, "wizard.", 7)) &&
	    !cJSON_AddItemToArray(params, context(c, extra)))
		rc = nomem(err, errlen);
	for (attempt = 0; !rc; attempt++) {
		rc = request(c, doing, method, params, 0, &status, &reply, err, errlen);
		if (!rc && (status == 401 || status == 403) && !attempt && !c->in_login) {
			/* The session expired (or is not fresh enough for a wizard). */
			rc = login(c, err, errlen);
			continue;
		}
		if (!rc)
			rc = take_result(c, doing, status, reply, result, err, errlen);
		break;
	}
	cJSON_Delete(reply);
	cJSON_Delete(params);
	return rc;
}

int trpc_call(struct trpc *c, const char *doing, const char *method, cJSON *params,
              const cJSON *extra, cJSON **result, char *err, size_t errlen)
{
	return call(c, doing, method, params, extra, result, err, errlen);
}

static int64_t ctx_company(const struct trpc *c)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->ctx, "company");

	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

int trpc_use_company(struct trpc *c, int64_t company, char *err, size_t errlen)
{
	cJSON *params, *prefs, *res = NULL;
	int rc = APS_OK;

	if (!c->session || !c->ctx)
		rc = login(c, err, errlen);
	if (rc || ctx_company(c) == company)
		return rc;
	params = cJSON_CreateArray();
	prefs = cJSON_CreateObject();
	if (!cJSON_AddNumberToObject(prefs, "company", (double)company) ||
	    !cJSON_AddItemToArray(params, prefs)) {
		cJSON_Delete(prefs);
		cJSON_Delete(params);
		return nomem(err, errlen);
	}
	rc = call(c, "switching the user to the company", "model.res.user.set_preferences", params,
	          NULL, &res, err, errlen);
	cJSON_Delete(res);
	if (!rc) {
		/* Asked with the old context, Tryton would answer its company. */
		cJSON_Delete(c->ctx);
		c->ctx = NULL;
		params = cJSON_CreateArray();
		cJSON_AddItemToArray(params, cJSON_CreateTrue());
		res = NULL;
		rc = call(c, "reading the user's preferences", "model.res.user.get_preferences",
		          params, NULL, &res, err, errlen);
		cJSON_Delete(c->ctx);
		c->ctx = res;
	}
	if (!rc && !cJSON_IsObject(c->ctx)) {
		snprintf(err, errlen, "Tryton at %s gave no preferences for user \"%s\"", c->url,
		         c->user);
		rc = APS_ERR_ERP;
	}
	if (!rc && ctx_company(c) != company) {
		snprintf(err, errlen,
		         "Tryton did not make company %lld the current company of user "
		         "\"%s\": allow the user that company in Tryton",
		         (long long)company, c->user);
		rc = APS_ERR_ERP;
	}
	return rc;
}
