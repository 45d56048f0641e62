/* /api/v1/syncs: start a sync of a legal entity, follow it, read its log. */
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "broker_internal.h"
#include "err.h"
#include "log.h"
#include "util.h"

static int get_id(const cJSON *o, const char *name, int64_t *id)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!v || cJSON_IsNull(v)) {
		*id = 0;
		return APS_ERR_NOTFOUND;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 9007199254740991.0 ||
	    v->valuedouble != (double)(int64_t)v->valuedouble)
		return APS_ERR_INVAL;
	*id = (int64_t)v->valuedouble;
	return APS_OK;
}

void api_syncs_create(struct http_req *r, const int64_t *p)
{
	struct store_job_req req = {0};
	cJSON *body, *mode, *lists, *it, *job;
	char *lists_text = NULL, msg[300];
	int64_t synctool = 0, job_id;
	int rc;

	if (!http__require_sync_role(r))
		return;
	body = http__body_json(r);
	if (!body)
		return;
	if (get_id(body, "entity", &req.entity_id)) {
		http__reply_error(r, 400, "bad_request",
				  "\"entity\" must be an entity id (see GET /api/v1/entities)");
		goto out;
	}
	if (get_id(body, "synctool", &synctool) == APS_ERR_INVAL) {
		http__reply_error(r, 400, "bad_request",
				  "\"synctool\" must be a SyncTool id (see GET /api/v1/synctools)");
		goto out;
	}
	mode = cJSON_GetObjectItemCaseSensitive(body, "mode");
	if (!cJSON_IsString(mode) || strcmp(mode->valuestring, "full")) {
		http__reply_error(r, 400, "bad_request", "\"mode\" must be \"full\"");
		goto out;
	}
	lists = cJSON_GetObjectItemCaseSensitive(body, "lists");
	if (lists && !cJSON_IsNull(lists)) {
		if (!cJSON_IsArray(lists) || !cJSON_GetArraySize(lists)) {
			http__reply_error(r, 400, "bad_request",
					  "\"lists\" must be a non-empty array of list names");
			goto out;
		}
		cJSON_ArrayForEach(it, lists) {
			if (!cJSON_IsString(it) || !aps_name_valid(it->valuestring)) {
				http__reply_error(r, 400, "bad_request",
						  "\"lists\" holds something that is not a list "
						  "name");
				goto out;
			}
		}
		lists_text = cJSON_PrintUnformatted(lists);
	}
	rc = store_entity_agent(r->b->store, r->user.tenant_id, req.entity_id, synctool,
				&req.agent_id);
	if (rc == APS_ERR_NOTFOUND) {
		if (synctool)
			http__reply_error(r, 404, "not_found",
					  "entity %lld has no SyncTool %lld in your tenant",
					  (long long)req.entity_id, (long long)synctool);
		else
			http__reply_error(r, 404, "not_found",
					  "entity %lld does not exist in your tenant or has no "
					  "enrolled SyncTool",
					  (long long)req.entity_id);
		goto out;
	}
	if (rc) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		goto out;
	}
	req.tenant_id = r->user.tenant_id;
	req.mode = mode->valuestring;
	req.lists = lists_text;
	req.requested_by = r->user.email;
	rc = store_job_create(r->b->store, &req, aps_now_ms(), &job_id);
	if (rc) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		goto out;
	}
	snprintf(msg, sizeof(msg), "%s sync requested by %s", req.mode, r->user.email);
	store_job_log_add(r->b->store, job_id, aps_now_ms(), "info", msg);
	log_notice("job %lld: %s sync of entity %lld requested by %s", (long long)job_id, req.mode,
		   (long long)req.entity_id, r->user.email);
	agents__kick(r->b, req.agent_id);
	job = store_job_get(r->b->store, r->user.tenant_id, job_id);
	snprintf(r->location, sizeof(r->location), "/api/v1/syncs/%lld", (long long)job_id);
	http__reply_json(r, 202, job);
out:
	cJSON_free(lists_text);
	cJSON_Delete(body);
}

void api_syncs_get(struct http_req *r, const int64_t *p)
{
	cJSON *job = store_job_get(r->b->store, r->user.tenant_id, p[0]);

	if (!job) {
		http__reply_error(r, 404, "not_found", "sync %lld not found", (long long)p[0]);
		return;
	}
	http__reply_json(r, 200, job);
}

void api_syncs_log(struct http_req *r, const int64_t *p)
{
	cJSON *job = store_job_get(r->b->store, r->user.tenant_id, p[0]), *o;

	if (!job) {
		http__reply_error(r, 404, "not_found", "sync %lld not found", (long long)p[0]);
		return;
	}
	cJSON_Delete(job);
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "sync", (double)p[0]);
	cJSON_AddItemToObject(o, "log", store_job_log(r->b->store, r->user.tenant_id, p[0]));
	http__reply_json(r, 200, o);
}

void api_syncs_list(struct http_req *r, const int64_t *p)
{
	char buf[32];
	const char *v;
	int64_t entity = 0, limit = 10;
	cJSON *list, *o;

	v = http__query(r, "entity", buf, sizeof(buf));
	if (v && aps_parse_i64(v, 1, INT64_MAX, &entity)) {
		http__reply_error(r, 400, "bad_request", "entity must be an entity id");
		return;
	}
	v = http__query(r, "limit", buf, sizeof(buf));
	if (v && aps_parse_i64(v, 1, 500, &limit)) {
		http__reply_error(r, 400, "bad_request", "limit must be 1 to 500");
		return;
	}
	list = store_jobs_list(r->b->store, r->user.tenant_id, entity, (int)limit);
	if (!list) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "syncs", list);
	http__reply_json(r, 200, o);
}
