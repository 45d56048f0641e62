/*
 * POST /api/v1/agent/check {"credential": "apsa_…"}: whether this broker
 * accepts a SyncTool's credential, for `apsync-agent doctor`. It says no more
 * than the websocket handshake would: the SyncTool's name and tenant, or why
 * it is refused. Failures are throttled broker-wide like enrollments.
 */
#include <stdio.h>
#include <string.h>

#include "broker_internal.h"
#include "err.h"
#include "util.h"

#define CHECK_FAILS_PER_MINUTE 30

void api_agent_check(struct http_req *r, const int64_t *p)
{
	static int64_t window_start;
	static int fails;
	struct store_agent a;
	const cJSON *cred;
	cJSON *body, *o;
	uint8_t hash[32];
	int64_t agent_id, now = aps_now_ms();
	int rc;

	(void)p;
	if (now - window_start > 60000) {
		window_start = now;
		fails = 0;
	}
	if (fails >= CHECK_FAILS_PER_MINUTE) {
		http__reply_error(r, 429, "too_many_attempts",
				  "too many refused credentials; try again in a minute");
		return;
	}
	body = http__body_json(r);
	if (!body)
		return;
	cred = cJSON_GetObjectItemCaseSensitive(body, "credential");
	rc = cJSON_IsString(cred) ? auth__agent_credential(cred->valuestring, &agent_id, hash)
				  : APS_ERR_INVAL;
	if (!rc)
		rc = store_agent_get(r->b->store, agent_id, &a);
	if (rc == APS_ERR_DB) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
	} else if (rc || !aps_ct_equal(a.secret_hash, hash, 32)) {
		fails++;
		http__reply_error(r, 401, "credential_refused",
				  "this broker does not know this SyncTool credential; enroll the "
				  "SyncTool again with a new code");
	} else if (a.revoked_at) {
		char when[APS_TIME_LEN];

		fails++;
		http__reply_error(r, 403, "credential_revoked",
				  "SyncTool \"%s\" was revoked on %s; enroll it again with a new code",
				  a.name, aps_time_iso(a.revoked_at, when));
	} else {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "synctool", a.name);
		cJSON_AddStringToObject(o, "tenant", a.tenant);
		cJSON_AddStringToObject(o, "status", "accepted");
		http__reply_json(r, 200, o);
	}
	cJSON_Delete(body);
}
