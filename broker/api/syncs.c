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

/* The options every sync request shares: mode, Sync From, lists, PO &
 * Receivings. On failure replies 400 and returns non-zero. */
struct sync_opts {
	const char *mode;
	const char *since;
	char *lists;        /* JSON text, cJSON_free'd */
	int po_enabled;
	const char *po_since;
};

static int valid_time(const char *s)
{
	int64_t ms;

	return aps_time_parse(s, &ms) == APS_OK;
}

static int parse_sync_opts(struct http_req *r, const cJSON *body, struct sync_opts *o)
{
	const cJSON *mode, *since, *lists, *po, *it, *v;

	memset(o, 0, sizeof(*o));
	o->po_enabled = 1;
	mode = cJSON_GetObjectItemCaseSensitive(body, "mode");
	if (!cJSON_IsString(mode) ||
	    (strcmp(mode->valuestring, "full") && strcmp(mode->valuestring, "partial"))) {
		http__reply_error(r, 400, "bad_request", "\"mode\" must be \"full\" or \"partial\"");
		return 1;
	}
	o->mode = mode->valuestring;
	since = cJSON_GetObjectItemCaseSensitive(body, "since");
	if (since && !cJSON_IsNull(since)) {
		if (!cJSON_IsString(since) || !valid_time(since->valuestring)) {
			http__reply_error(r, 400, "bad_request",
					  "\"since\" must be a date (2024-05-01) or an ISO 8601 time");
			return 1;
		}
		if (strcmp(o->mode, "partial")) {
			http__reply_error(r, 400, "bad_request",
					  "\"since\" is the Sync From date of a partial sync");
			return 1;
		}
		o->since = since->valuestring;
	}
	po = cJSON_GetObjectItemCaseSensitive(body, "po");
	if (po && !cJSON_IsNull(po)) {
		v = cJSON_GetObjectItemCaseSensitive(po, "enabled");
		if (!cJSON_IsObject(po) || (v && !cJSON_IsBool(v))) {
			http__reply_error(r, 400, "bad_request",
					  "\"po\" is {\"enabled\": true|false, \"since\": date}");
			return 1;
		}
		o->po_enabled = !cJSON_IsFalse(v);
		v = cJSON_GetObjectItemCaseSensitive(po, "since");
		if (v && !cJSON_IsNull(v)) {
			if (!cJSON_IsString(v) || !valid_time(v->valuestring)) {
				http__reply_error(r, 400, "bad_request",
						  "\"po.since\" must be a date or an ISO 8601 time");
				return 1;
			}
			o->po_since = v->valuestring;
		}
	}
	lists = cJSON_GetObjectItemCaseSensitive(body, "lists");
	if (lists && !cJSON_IsNull(lists)) {
		if (!cJSON_IsArray(lists) || !cJSON_GetArraySize(lists)) {
			http__reply_error(r, 400, "bad_request",
					  "\"lists\" must be a non-empty array of list names");
			return 1;
		}
		cJSON_ArrayForEach(it, lists) {
			if (!cJSON_IsString(it) || !aps_name_valid(it->valuestring)) {
				http__reply_error(r, 400, "bad_request",
						  "\"lists\" holds something that is not a list "
						  "name");
				return 1;
			}
		}
		o->lists = cJSON_PrintUnformatted(lists);
	}
	return 0;
}

/* Queues one sync; returns the job (to reply) or NULL after replying. */
static cJSON *queue_sync(struct http_req *r, int64_t entity_id, int64_t synctool,
			 const struct sync_opts *o, int reply_errors)
{
	struct store_job_req req = {0};
	char msg[400];
	int64_t job_id;
	int rc;

	rc = store_entity_agent(r->b->store, r->user.tenant_id, entity_id, synctool,
				&req.agent_id);
	if (rc) {
		if (!reply_errors)
			return NULL;
		if (rc != APS_ERR_NOTFOUND)
			http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		else if (synctool)
			http__reply_error(r, 404, "not_found",
					  "entity %lld has no SyncTool %lld in your tenant",
					  (long long)entity_id, (long long)synctool);
		else
			http__reply_error(r, 404, "not_found",
					  "entity %lld does not exist in your tenant or has no "
					  "enrolled SyncTool",
					  (long long)entity_id);
		return NULL;
	}
	req.tenant_id = r->user.tenant_id;
	req.entity_id = entity_id;
	req.mode = o->mode;
	req.lists = o->lists;
	req.since = o->since;
	req.po_enabled = o->po_enabled;
	req.po_since = o->po_since;
	req.requested_by = r->user.email;
	if (store_job_create(r->b->store, &req, aps_now_ms(), &job_id)) {
		if (reply_errors)
			http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		return NULL;
	}
	snprintf(msg, sizeof(msg), "%s sync requested by %s%s%s%s", o->mode, r->user.email,
		 o->since ? ", from " : "", o->since ? o->since : "",
		 o->po_enabled ? "" : ", without purchase orders and receivings");
	store_job_log_add(r->b->store, job_id, aps_now_ms(), "info", msg);
	log_notice("job %lld: %s sync of entity %lld requested by %s", (long long)job_id, o->mode,
		   (long long)entity_id, r->user.email);
	agents__kick(r->b, req.agent_id);
	return store_job_get(r->b->store, r->user.tenant_id, job_id);
}

void api_syncs_create(struct http_req *r, const int64_t *p)
{
	struct sync_opts o = {0};
	int64_t entity, synctool = 0;
	cJSON *body, *job;

	if (!http__require_sync_role(r))
		return;
	body = http__body_json(r);
	if (!body)
		return;
	if (get_id(body, "entity", &entity)) {
		http__reply_error(r, 400, "bad_request",
				  "\"entity\" must be an entity id (see GET /api/v1/entities)");
		goto out;
	}
	if (get_id(body, "synctool", &synctool) == APS_ERR_INVAL) {
		http__reply_error(r, 400, "bad_request",
				  "\"synctool\" must be a SyncTool id (see GET /api/v1/synctools)");
		goto out;
	}
	if (parse_sync_opts(r, body, &o))
		goto out;
	job = queue_sync(r, entity, synctool, &o, 1);
	if (job) {
		snprintf(r->location, sizeof(r->location), "/api/v1/syncs/%lld",
			 (long long)cJSON_GetObjectItem(job, "id")->valuedouble);
		http__reply_json(r, 202, job);
	}
out:
	cJSON_free(o.lists);
	cJSON_Delete(body);
}

/* Sync All: the chosen entities (default: all) that are eligible get a sync;
 * the others are listed with the reason. */
void api_syncs_all(struct http_req *r, const int64_t *p)
{
	struct sync_opts o = {0};
	cJSON *body, *want, *wanted, *ents = NULL, *e, *it, *res = NULL, *started, *refused, *job;
	cJSON *x;
	int64_t id;
	int chosen;

	if (!http__require_sync_role(r))
		return;
	body = http__body_json(r);
	if (!body)
		return;
	want = cJSON_GetObjectItemCaseSensitive(body, "entities");
	if (want && !cJSON_IsNull(want) && !cJSON_IsArray(want)) {
		http__reply_error(r, 400, "bad_request", "\"entities\" must be an array of entity ids");
		goto out;
	}
	if (parse_sync_opts(r, body, &o))
		goto out;
	wanted = cJSON_IsArray(want) ? want : NULL;
	ents = store_entities_list(r->b->store, r->user.tenant_id);
	if (!ents) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		goto out;
	}
	res = cJSON_CreateObject();
	started = cJSON_AddArrayToObject(res, "syncs");
	refused = cJSON_AddArrayToObject(res, "refused");
	cJSON_ArrayForEach(it, wanted) {
		int found = 0;

		cJSON_ArrayForEach(e, ents)
			if (cJSON_IsNumber(it) && cJSON_GetObjectItem(e, "id")->valuedouble ==
							  it->valuedouble)
				found = 1;
		if (!found) {
			x = cJSON_CreateObject();
			cJSON_AddItemToObject(x, "entity", cJSON_Duplicate(it, 1));
			cJSON_AddStringToObject(x, "reason", "no such entity in your tenant");
			cJSON_AddItemToArray(refused, x);
		}
	}
	cJSON_ArrayForEach(e, ents) {
		const cJSON *all = cJSON_GetObjectItem(e, "sync_all");

		id = (int64_t)cJSON_GetObjectItem(e, "id")->valuedouble;
		chosen = !wanted;
		cJSON_ArrayForEach(it, wanted)
			if (cJSON_IsNumber(it) && it->valuedouble == (double)id)
				chosen = 1;
		if (!chosen)
			continue;
		if (!cJSON_IsTrue(cJSON_GetObjectItem(all, "eligible"))) {
			x = cJSON_CreateObject();
			cJSON_AddNumberToObject(x, "entity", (double)id);
			cJSON_AddItemToObject(x, "name",
					      cJSON_Duplicate(cJSON_GetObjectItem(e, "name"), 1));
			cJSON_AddItemToObject(x, "reason",
					      cJSON_Duplicate(cJSON_GetObjectItem(all, "reason"), 1));
			cJSON_AddItemToArray(refused, x);
			continue;
		}
		job = queue_sync(r, id, 0, &o, 0);
		if (job) {
			cJSON_AddItemToArray(started, job);
		} else {
			x = cJSON_CreateObject();
			cJSON_AddNumberToObject(x, "entity", (double)id);
			cJSON_AddStringToObject(x, "reason", "could not be queued");
			cJSON_AddItemToArray(refused, x);
		}
	}
	http__reply_json(r, 202, res);
	res = NULL;
out:
	cJSON_Delete(res);
	cJSON_Delete(ents);
	cJSON_free(o.lists);
	cJSON_Delete(body);
}

void api_syncs_cancel(struct http_req *r, const int64_t *p)
{
	int64_t agent_id = 0;
	int rc;

	if (!http__require_sync_role(r))
		return;
	rc = store_job_cancel(r->b->store, r->user.tenant_id, p[0], r->user.email, aps_now_ms(),
			      &agent_id);
	if (rc == APS_ERR_NOTFOUND) {
		http__reply_error(r, 404, "not_found", "sync %lld not found", (long long)p[0]);
		return;
	}
	if (rc == APS_ERR_CONFLICT) {
		http__reply_error(r, 409, "conflict", "sync %lld has already ended", (long long)p[0]);
		return;
	}
	if (rc) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		return;
	}
	log_notice("job %lld: cancelled by %s", (long long)p[0], r->user.email);
	agents__kick(r->b, agent_id); /* tells the agent, and starts what waited */
	http__reply_json(r, 200, store_job_get(r->b->store, r->user.tenant_id, p[0]));
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
	cJSON *list;

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
	http__reply_list(r, "syncs", list);
}
