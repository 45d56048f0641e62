/* /api/v1/synctools (list, enrollment codes, revoke) and /api/v1/entities. */
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "broker_internal.h"
#include "err.h"
#include "log.h"
#include "util.h"

void api_synctools_list(struct http_req *r, const int64_t *p)
{
	cJSON *list = store_synctools_list(r->b->store, r->user.tenant_id);

	http__reply_list(r, "synctools", list);
}

static int synctool_name_ok(const char *name)
{
	const unsigned char *c;

	if (!name || !name[0] || strlen(name) > 128)
		return 0;
	for (c = (const unsigned char *)name; *c; c++)
		if (*c < 0x20 || *c == 0x7f || *c == '/')
			return 0;
	return 1;
}

/* POST /api/v1/synctools/codes {"name", "ttl_hours"?}: a one-time enrollment
 * code for a SyncTool of the tenant (System Administrators). */
void api_synctools_code(struct http_req *r, const int64_t *p)
{
	char code[20], when[APS_TIME_LEN];
	uint8_t hash[32];
	const char *name;
	const cJSON *ttl;
	int64_t hours = 24, expires;
	cJSON *body, *o;

	(void)p;
	if (!http__require_admin(r))
		return;
	body = http__body_json(r);
	if (!body)
		return;
	name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "name"));
	ttl = cJSON_GetObjectItemCaseSensitive(body, "ttl_hours");
	if (!synctool_name_ok(name)) {
		http__reply_error(r, 400, "bad_request",
				  "\"name\" is the SyncTool's name: 1 to 128 characters, no '/'");
		goto out;
	}
	if (ttl && !cJSON_IsNull(ttl)) {
		if (!cJSON_IsNumber(ttl) || ttl->valuedouble < 1 || ttl->valuedouble > 720) {
			http__reply_error(r, 400, "bad_request", "\"ttl_hours\" is 1 to 720");
			goto out;
		}
		hours = (int64_t)ttl->valuedouble;
	}
	expires = aps_now_ms() + hours * 3600 * 1000;
	if (auth__code_new(code, hash) ||
	    store_code_create(r->b->store, r->user.tenant_id, name, hash, expires)) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		goto out;
	}
	log_notice("enrollment code for SyncTool \"%s\" of tenant \"%s\" made by %s", name,
		   r->user.tenant, r->user.email);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "synctool", name);
	cJSON_AddStringToObject(o, "code", code);
	cJSON_AddStringToObject(o, "expires_at", aps_time_iso(expires, when));
	http__reply_json(r, 201, o);
	aps_wipe(code, sizeof(code));
out:
	cJSON_Delete(body);
}

/* POST /api/v1/synctools/NAME/revoke: the agent's credential stops working;
 * a connected agent is dropped within a heartbeat. */
void api_synctools_revoke(struct http_req *r, const int64_t *p)
{
	static const char prefix[] = "/api/v1/synctools/";
	char name[200];
	const char *start = r->path + sizeof(prefix) - 1, *slash = strchr(start, '/');
	int64_t agent_id;
	cJSON *o;
	int rc;

	(void)p;
	if (!http__require_admin(r))
		return;
	if (!slash || slash - start >= (int)sizeof(name)) {
		http__reply_error(r, 404, "not_found", "no such SyncTool");
		return;
	}
	snprintf(name, sizeof(name), "%.*s", (int)(slash - start), start);
	rc = store_agent_revoke(r->b->store, r->user.tenant_id, name, "revoked by an administrator",
				aps_now_ms(), &agent_id);
	if (rc == APS_ERR_NOTFOUND) {
		http__reply_error(r, 404, "not_found", "no enrolled SyncTool of that name in your "
						       "tenant");
		return;
	}
	if (rc) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		return;
	}
	log_notice("SyncTool \"%s\" (agent %lld) of tenant \"%s\" revoked by %s", name,
		   (long long)agent_id, r->user.tenant, r->user.email);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "synctool", name);
	cJSON_AddNumberToObject(o, "agent_id", (double)agent_id);
	cJSON_AddBoolToObject(o, "revoked", 1);
	http__reply_json(r, 200, o);
}

void api_entities_list(struct http_req *r, const int64_t *p)
{
	cJSON *list = store_entities_list(r->b->store, r->user.tenant_id);

	http__reply_list(r, "entities", list);
}

void api_entity_get(struct http_req *r, const int64_t *p)
{
	cJSON *e = store_entity_get(r->b->store, r->user.tenant_id, p[0]);

	if (!e) {
		http__reply_error(r, 404, "not_found", "entity %lld not found", (long long)p[0]);
		return;
	}
	http__reply_json(r, 200, e);
}

void api_entity_lists(struct http_req *r, const int64_t *p)
{
	cJSON *lists = store_entity_lists(r->b->store, r->user.tenant_id, p[0]), *o;

	if (!lists) {
		http__reply_error(r, 404, "not_found", "entity %lld not found", (long long)p[0]);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "entity", (double)p[0]);
	cJSON_AddItemToObject(o, "lists", lists);
	http__reply_json(r, 200, o);
}

void api_overview(struct http_req *r, const int64_t *p)
{
	cJSON *list = store_overview(r->b->store, r->user.tenant_id);

	http__reply_list(r, "overview", list);
}

/* GET /api/v1/entities/ID/lists/LIST: the synced items, a page at a time. */
void api_items_page(struct http_req *r, const int64_t *p)
{
	struct store_page pg = {.limit = 100};
	char list[APSYNC_MAX_NAME_LEN + 1], buf[APSYNC_MAX_KEY_LEN + 40], sbuf[16], tbuf[48];
	const char *slash = strrchr(r->path, '/'), *v;
	int64_t n;
	cJSON *out;
	int rc;

	if (!slash || strlen(slash + 1) > APSYNC_MAX_NAME_LEN || !aps_name_valid(slash + 1)) {
		http__reply_error(r, 404, "not_found", "no such list");
		return;
	}
	snprintf(list, sizeof(list), "%s", slash + 1);
	v = http__query(r, "limit", sbuf, sizeof(sbuf));
	if (v && aps_parse_i64(v, 1, 1000, &n)) {
		http__reply_error(r, 400, "bad_request", "limit must be 1 to 1000");
		return;
	}
	if (v)
		pg.limit = (int)n;
	pg.status = http__query(r, "status", sbuf, sizeof(sbuf));
	if (pg.status && strcmp(pg.status, "active") && strcmp(pg.status, "inactive") &&
	    strcmp(pg.status, "deleted")) {
		http__reply_error(r, 400, "bad_request", "status must be active, inactive or deleted");
		return;
	}
	v = http__query(r, "changed_since", tbuf, sizeof(tbuf));
	if (v && aps_time_parse(v, &pg.changed_since)) {
		http__reply_error(r, 400, "bad_request",
				  "changed_since must be a date or an ISO 8601 time");
		return;
	}
	pg.cursor = http__query(r, "cursor", buf, sizeof(buf));
	rc = store_items_page(r->b->store, r->user.tenant_id, p[0], list, &pg, &out);
	if (rc == APS_ERR_NOTFOUND) {
		http__reply_error(r, 404, "not_found", "entity %lld not found", (long long)p[0]);
		return;
	}
	if (rc == APS_ERR_INVAL) {
		http__reply_error(r, 400, "bad_request", "cursor is not one this API gave");
		return;
	}
	if (rc) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		return;
	}
	cJSON_AddNumberToObject(out, "entity", (double)p[0]);
	cJSON_AddStringToObject(out, "list", list);
	http__reply_json(r, 200, out);
}
