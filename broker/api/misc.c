/* /api/v1/health, /api/v1/openapi.json and /api/v1/enroll. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apsync_proto.h"
#include "broker_internal.h"
#include "err.h"
#include "log.h"
#include "util.h"

void api_health(struct http_req *r, const int64_t *p)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "status", "ok");
	cJSON_AddStringToObject(o, "version", APSYNC_VERSION);
	cJSON_AddNumberToObject(o, "protocol", APSYNC_PROTO_VERSION);
	http__reply_json(r, 200, o);
}

/* GET /api/v1/openapi.json: the API's description, a file of the web page. */
void api_openapi(struct http_req *r, const int64_t *p)
{
	char path[4096], *text = NULL;
	size_t len;
	cJSON *doc = NULL;

	(void)p;
	if (!aps_path_join(path, sizeof(path), r->b->opts->web_root, "openapi.json") &&
	    !aps_read_file(path, 4 << 20, &text, &len))
		doc = cJSON_ParseWithLength(text, len);
	free(text);
	if (!doc) {
		http__reply_error(r, 404, "not_found", "this broker has no openapi.json in %s",
				  r->b->opts->web_root);
		return;
	}
	http__reply_json(r, 200, doc);
}

/* Failed enrollments are throttled broker-wide: codes carry 80 random bits,
 * so this guards the store against floods rather than against guessing. */
#define ENROLL_FAILS_PER_MINUTE 30

void api_enroll(struct http_req *r, const int64_t *p)
{
	static int64_t window_start;
	static int fails;
	char secret[AUTH_SECRET_LEN], cred[200];
	uint8_t code_hash[32], secret_hash[32];
	struct store_agent agent;
	int64_t now = aps_now_ms();
	cJSON *body, *code, *o;
	int rc;

	if (now - window_start > 60000) {
		window_start = now;
		fails = 0;
	}
	if (fails >= ENROLL_FAILS_PER_MINUTE) {
		http__reply_error(r, 429, "too_many_attempts",
				  "too many failed enrollments; try again in a minute");
		return;
	}
	body = http__body_json(r);
	if (!body)
		return;
	code = cJSON_GetObjectItemCaseSensitive(body, "code");
	if (!cJSON_IsString(code) || auth__code_hash(code->valuestring, code_hash)) {
		fails++;
		http__reply_error(r, 400, "bad_code",
				  "\"code\" must be an enrollment code like ABCD-EFGH-JKMN-PQRS");
		goto out;
	}
	rc = auth__secret_new(secret, secret_hash);
	if (!rc)
		rc = store_code_redeem(r->b->store, code_hash, now, secret_hash, &agent);
	switch (rc) {
	case APS_OK:
		break;
	case APS_ERR_NOTFOUND:
		fails++;
		http__reply_error(r, 401, "invalid_code",
				  "this enrollment code is unknown; ask your administrator for a "
				  "new one");
		goto out;
	case APS_ERR_USED:
		fails++;
		http__reply_error(r, 409, "code_used",
				  "this enrollment code was already used; ask your administrator "
				  "for a new one");
		goto out;
	case APS_ERR_EXPIRED:
		fails++;
		http__reply_error(r, 410, "code_expired",
				  "this enrollment code has expired; ask your administrator for a "
				  "new one");
		goto out;
	default:
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		goto out;
	}
	snprintf(cred, sizeof(cred), "apsa_%lld_%s", (long long)agent.id, secret);
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "agent_id", (double)agent.id);
	cJSON_AddStringToObject(o, "synctool", agent.name);
	cJSON_AddStringToObject(o, "tenant", agent.tenant);
	cJSON_AddStringToObject(o, "credential", cred);
	http__reply_json(r, 201, o);
	log_notice("SyncTool \"%s\" enrolled in tenant \"%s\" (agent %lld)", agent.name,
		   agent.tenant, (long long)agent.id);
out:
	aps_wipe(secret, sizeof(secret));
	aps_wipe(cred, sizeof(cred));
	cJSON_Delete(body);
}
