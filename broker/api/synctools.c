/* /api/v1/synctools and /api/v1/entities. */
#include <string.h>

#include "batch.h"
#include "broker_internal.h"
#include "err.h"
#include "util.h"

void api_synctools_list(struct http_req *r, const int64_t *p)
{
	cJSON *list = store_synctools_list(r->b->store, r->user.tenant_id), *o;

	if (!list) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "synctools", list);
	http__reply_json(r, 200, o);
}

void api_entities_list(struct http_req *r, const int64_t *p)
{
	cJSON *list = store_entities_list(r->b->store, r->user.tenant_id), *o;

	if (!list) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "entities", list);
	http__reply_json(r, 200, o);
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
	cJSON *list = store_overview(r->b->store, r->user.tenant_id), *o;

	if (!list) {
		http__reply_error(r, 503, "unavailable", "the broker's store failed; try again");
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "overview", list);
	http__reply_json(r, 200, o);
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
