/* /api/v1/synctools and /api/v1/entities. */
#include "broker_internal.h"

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
