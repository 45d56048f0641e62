/*
 * Password sign-in and users:
 *   POST /api/v1/session      {email, password, tenant} → a session cookie and its CSRF token
 *   POST /api/v1/session/end
 *   GET  /api/v1/users, POST /api/v1/users {email, role, password?}
 *   POST /api/v1/users/ID/role {role}, POST /api/v1/users/ID/password {password}
 * (the last four for System Administrators).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "broker_internal.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define SESSION_TTL_MS (12 * 3600 * 1000LL)

/*
 * Failed sign-ins are throttled per account (tenant + e-mail, whether it
 * exists or not) and broker-wide: 5 failures lock an account for 15 minutes;
 * 60 failures a minute across the broker stop every sign-in for the rest of
 * the minute. The table is small and in memory: a restart forgets it, and a
 * flood of accounts evicts the oldest entry, which the global limit covers.
 */
#define FAIL_SLOTS        256
#define FAILS_PER_ACCOUNT 5
#define LOCK_MS           (15 * 60 * 1000LL)
#define FAILS_PER_MINUTE  60

struct fail_slot {
	uint8_t key[32];
	int fails;
	int64_t first;     /* first failure of the window */
	int64_t last;
};

static struct fail_slot fail_slots[FAIL_SLOTS];
static int64_t global_window;
static int global_fails;

static void account_key(const char *tenant, const char *email, uint8_t key[32])
{
	char buf[512];
	size_t i;

	snprintf(buf, sizeof(buf), "%s\n%s", tenant, email);
	for (i = 0; buf[i]; i++)
		buf[i] = (char)tolower((unsigned char)buf[i]);
	aps_sha256(buf, strlen(buf), key);
}

static struct fail_slot *slot_find(const uint8_t key[32], int make, int64_t now)
{
	struct fail_slot *oldest = &fail_slots[0];
	int i;

	for (i = 0; i < FAIL_SLOTS; i++) {
		struct fail_slot *f = &fail_slots[i];

		if (f->fails && now - f->first > LOCK_MS)
			f->fails = 0; /* the window passed */
		if (f->fails && !memcmp(f->key, key, 32))
			return f;
		if (!f->fails || (oldest->fails && f->last < oldest->last))
			oldest = f;
	}
	if (!make)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	memcpy(oldest->key, key, 32);
	oldest->first = now;
	return oldest;
}

static void note_failure(const uint8_t key[32], int64_t now)
{
	struct fail_slot *f = slot_find(key, 1, now);

	f->fails++;
	f->last = now;
	global_fails++;
}

static int text_field(const cJSON *body, const char *name, size_t max, const char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);

	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > max)
		return 0;
	*out = v->valuestring;
	return 1;
}

static cJSON *me_json(const struct store_user *u)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "id", (double)u->id);
	cJSON_AddStringToObject(o, "email", u->email);
	cJSON_AddStringToObject(o, "role", u->role);
	cJSON_AddStringToObject(o, "tenant", u->tenant);
	cJSON_AddBoolToObject(o, "may_sync", auth__role_may_sync(u->role));
	cJSON_AddBoolToObject(o, "may_manage", !strcmp(u->role, "system_administrator"));
	return o;
}

void api_me(struct http_req *r, const int64_t *p)
{
	cJSON *o = me_json(&r->user);

	(void)p;
	cJSON_AddStringToObject(o, "auth", r->by_session ? "session" : "token");
	if (r->by_session)
		cJSON_AddStringToObject(o, "csrf_token", r->csrf);
	http__reply_json(r, 200, o);
}

void api_session_create(struct http_req *r, const int64_t *p)
{
	/* Spent on unknown accounts too, so timing does not tell who exists. */
	static char dummy[AUTH_HASH_LEN];
	char hash[AUTH_HASH_LEN], sid[AUTH_SECRET_LEN], csrf[AUTH_SECRET_LEN], iso[APS_TIME_LEN];
	const char *email, *password, *tenant;
	uint8_t key[32], sid_hash[32], csrf_hash[32];
	struct fail_slot *f;
	struct store_user u;
	int64_t now = aps_now_ms(), user_id = 0;
	cJSON *body, *o;
	int rc;

	(void)p;
	if (now - global_window > 60000) {
		global_window = now;
		global_fails = 0;
	}
	body = http__body_json(r);
	if (!body)
		return;
	if (!text_field(body, "email", 254, &email) || !text_field(body, "tenant", 128, &tenant) ||
	    !text_field(body, "password", AUTH_PASSWORD_MAX, &password)) {
		http__reply_error(r, 400, "bad_request",
				  "send {\"email\": …, \"password\": …, \"tenant\": …}");
		goto out;
	}
	account_key(tenant, email, key);
	f = slot_find(key, 0, now);
	if (global_fails >= FAILS_PER_MINUTE || (f && f->fails >= FAILS_PER_ACCOUNT)) {
		http__reply_error(r, 429, "too_many_attempts",
				  "too many failed sign-ins; try again in %s",
				  f && f->fails >= FAILS_PER_ACCOUNT ? "15 minutes" : "a minute");
		log_warn("sign-in refused for a throttled account of tenant \"%s\"", tenant);
		goto out;
	}
	rc = store_password_get(r->b->store, tenant, email, &user_id, hash, sizeof(hash));
	if (rc == APS_ERR_NOTFOUND) {
		if (!dummy[0] && auth__password_hash("not a password of anyone", dummy))
			dummy[0] = '\0';
		auth__password_verify(password, dummy[0] ? dummy : "none");
		rc = APS_ERR_AUTH;
	} else if (!rc) {
		rc = auth__password_verify(password, hash);
	}
	if (rc == APS_ERR_DB) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		goto out;
	}
	if (rc) {
		note_failure(key, now);
		log_notice("failed sign-in to tenant \"%s\"", tenant);
		http__reply_error(r, 401, "unauthorized",
				  "the e-mail address, tenant or password is not right");
		goto out;
	}
	if (f)
		f->fails = 0;
	rc = auth__secret_new(sid, sid_hash);
	if (!rc)
		rc = auth__secret_new(csrf, csrf_hash);
	if (!rc)
		rc = store_session_create(r->b->store, user_id, sid_hash, csrf, now,
					  now + SESSION_TTL_MS);
	if (!rc)
		rc = store_session_auth(r->b->store, sid_hash, now, SESSION_TTL_MS, &u, r->csrf,
					sizeof(r->csrf));
	if (rc) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		goto out;
	}
	snprintf(r->set_cookie, sizeof(r->set_cookie),
		 "%s=%s; Path=/; Max-Age=%lld; HttpOnly; Secure; SameSite=Strict",
		 HTTP_SESSION_COOKIE, sid, (long long)(SESSION_TTL_MS / 1000));
	o = me_json(&u);
	cJSON_AddStringToObject(o, "auth", "session");
	cJSON_AddStringToObject(o, "csrf_token", csrf);
	cJSON_AddStringToObject(o, "expires_at", aps_time_iso(now + SESSION_TTL_MS, iso));
	http__reply_json(r, 201, o);
	log_notice("%s signed in to tenant \"%s\"", u.email, u.tenant);
out:
	aps_wipe(sid, sizeof(sid));
	aps_wipe(hash, sizeof(hash));
	if (body) {
		cJSON *pw = cJSON_GetObjectItemCaseSensitive(body, "password");

		if (cJSON_IsString(pw))
			aps_wipe(pw->valuestring, strlen(pw->valuestring));
	}
	cJSON_Delete(body);
}

void api_session_end(struct http_req *r, const int64_t *p)
{
	(void)p;
	if (r->by_session) {
		if (store_session_end(r->b->store, r->session_hash)) {
			http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
			return;
		}
		log_notice("%s signed out", r->user.email);
	}
	snprintf(r->set_cookie, sizeof(r->set_cookie),
		 "%s=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict", HTTP_SESSION_COOKIE);
	http__reply_json(r, 200, cJSON_CreateObject());
}

/* ---- users (System Administrators) ---- */

void api_users_list(struct http_req *r, const int64_t *p)
{
	cJSON *list;

	(void)p;
	if (!http__require_admin(r))
		return;
	list = store_users_list(r->b->store, r->user.tenant_id);
	http__reply_list(r, "users", list);
}

/* Sets a password from a request body; replies on failure. */
static int set_password(struct http_req *r, int64_t user_id, const char *pw)
{
	char hash[AUTH_HASH_LEN], why[128];
	int rc;

	if (!auth__password_ok(pw, why, sizeof(why))) {
		http__reply_error(r, 400, "weak_password", "%s", why);
		return 0;
	}
	rc = auth__password_hash(pw, hash);
	if (!rc)
		rc = store_password_set(r->b->store, user_id, hash, aps_now_ms());
	aps_wipe(hash, sizeof(hash));
	if (rc) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		return 0;
	}
	return 1;
}

static int valid_role(struct http_req *r, const char *role)
{
	if (role && auth__role_valid(role))
		return 1;
	http__reply_error(r, 400, "bad_role",
			  "\"role\" must be one of system_administrator, invoice_exporter, "
			  "invoice_administrator, purchase_order_administrator, "
			  "payment_administrator, approver, viewer");
	return 0;
}

void api_users_create(struct http_req *r, const int64_t *p)
{
	const char *email, *role = NULL, *pw = NULL;
	char why[128];
	const cJSON *v;
	int64_t id;
	cJSON *body;
	int rc;

	(void)p;
	if (!http__require_admin(r))
		return;
	body = http__body_json(r);
	if (!body)
		return;
	if (!text_field(body, "email", 254, &email) || !strchr(email, '@')) {
		http__reply_error(r, 400, "bad_request", "\"email\" must be an e-mail address");
		goto out;
	}
	text_field(body, "role", 64, &role);
	if (!valid_role(r, role))
		goto out;
	v = cJSON_GetObjectItemCaseSensitive(body, "password");
	if (v && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v)) {
			http__reply_error(r, 400, "bad_request", "\"password\" must be a string");
			goto out;
		}
		pw = v->valuestring;
		if (!auth__password_ok(pw, why, sizeof(why))) {
			http__reply_error(r, 400, "weak_password", "%s", why);
			goto out;
		}
	}
	rc = store_user_find(r->b->store, r->user.tenant_id, email, &id);
	if (!rc) {
		http__reply_error(r, 409, "exists",
				  "%s is a user already; change the role with POST "
				  "/api/v1/users/%lld/role",
				  email, (long long)id);
		goto out;
	}
	if (rc != APS_ERR_NOTFOUND ||
	    store_user_upsert(r->b->store, r->user.tenant_id, email, role, aps_now_ms(), &id)) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		goto out;
	}
	if (pw && !set_password(r, id, pw))
		goto out;
	log_notice("user %s (%s) created in tenant \"%s\" by %s", email, role, r->user.tenant,
		   r->user.email);
	snprintf(r->location, sizeof(r->location), "/api/v1/users/%lld", (long long)id);
	http__reply_json(r, 201, store_user_get(r->b->store, r->user.tenant_id, id));
out:
	if (pw)
		aps_wipe((char *)pw, strlen(pw));
	cJSON_Delete(body);
}

void api_user_role(struct http_req *r, const int64_t *p)
{
	const char *role = NULL;
	cJSON *body, *u;
	int64_t admins = 0;
	int rc;

	if (!http__require_admin(r))
		return;
	body = http__body_json(r);
	if (!body)
		return;
	text_field(body, "role", 64, &role);
	if (!valid_role(r, role))
		goto out;
	u = store_user_get(r->b->store, r->user.tenant_id, p[0]);
	if (!u) {
		http__reply_error(r, 404, "not_found", "no user %lld in your tenant",
				  (long long)p[0]);
		goto out;
	}
	/* A tenant keeps at least one System Administrator. */
	rc = !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(u, "role")), "system_administrator") &&
	     strcmp(role, "system_administrator");
	cJSON_Delete(u);
	if (rc && (store_admins_count(r->b->store, r->user.tenant_id, &admins) || admins < 2)) {
		http__reply_error(r, 409, "last_administrator",
				  "this is the tenant's last System Administrator");
		goto out;
	}
	if (store_user_role_set(r->b->store, r->user.tenant_id, p[0], role)) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		goto out;
	}
	log_notice("user %lld of tenant \"%s\" is now %s (by %s)", (long long)p[0], r->user.tenant,
		   role, r->user.email);
	http__reply_json(r, 200, store_user_get(r->b->store, r->user.tenant_id, p[0]));
out:
	cJSON_Delete(body);
}

void api_user_password(struct http_req *r, const int64_t *p)
{
	const char *pw = NULL;
	cJSON *body, *u;

	if (!http__require_admin(r))
		return;
	body = http__body_json(r);
	if (!body)
		return;
	if (!text_field(body, "password", AUTH_PASSWORD_MAX, &pw)) {
		http__reply_error(r, 400, "bad_request", "send {\"password\": …}");
		goto out;
	}
	u = store_user_get(r->b->store, r->user.tenant_id, p[0]);
	if (!u) {
		http__reply_error(r, 404, "not_found", "no user %lld in your tenant",
				  (long long)p[0]);
		goto out;
	}
	cJSON_Delete(u);
	if (!set_password(r, p[0], pw))
		goto out;
	log_notice("password of user %lld of tenant \"%s\" set by %s", (long long)p[0],
		   r->user.tenant, r->user.email);
	http__reply_json(r, 200, store_user_get(r->b->store, r->user.tenant_id, p[0]));
out:
	if (pw)
		aps_wipe((char *)pw, strlen(pw));
	cJSON_Delete(body);
}
