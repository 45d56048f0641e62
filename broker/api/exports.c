/*
 * Exports and documents:
 *   POST /api/v1/entities/ID/exports       (Idempotency-Key) documents to write
 *   GET  /api/v1/documents?entity=&status=&type=&limit=&before=
 *   GET  /api/v1/documents/ID
 *   POST /api/v1/documents/ID/retry
 *   POST /api/v1/documents/ID/mark-exported {"erp_id": …}
 *   GET  /api/v1/rules, POST /api/v1/rules {"kind", "value"},
 *   POST /api/v1/rules/ID/delete
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "broker_internal.h"
#include "decimal.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define MAX_DOCS_PER_REQUEST 200
#define IDEM_KEY_MAX         128

static const char *const statuses[] = {"on_hold", "blocked", "queued", "in_progress",
				       "success", "failed",  "uncertain", NULL};

/* The Idempotency-Key header, copied; 0 if absent or unusable. */
static int idem_key(struct http_req *r, char *out, int len)
{
	static const char name[] = "idempotency-key:";
	int n = lws_hdr_custom_length(r->wsi, name, (int)sizeof(name) - 1);

	if (n <= 0 || n >= len)
		return 0;
	if (lws_hdr_custom_copy(r->wsi, out, len, name, (int)sizeof(name) - 1) < 0)
		return 0;
	return out[0] != '\0';
}

static void body_hash(const struct aps_buf *b, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	int i;

	EVP_Digest(b->data, b->len, md, &n, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + i * 2, 3, "%02x", md[i]);
}

/* Export roles: those that may run syncs (the product's exporters). */
static int may_export(struct http_req *r)
{
	return http__require_sync_role(r);
}

void api_exports_create(struct http_req *r, const int64_t *p)
{
	char key[IDEM_KEY_MAX + 1], hash[65], old_hash[65], why[1024], amount[32];
	const cJSON *docs, *d, *dry;
	cJSON *body, *res = NULL, *arr, *o, *rules = NULL, *ent;
	char *old = NULL, *text = NULL;
	int64_t agent_id = 0, id, run_id = 0, last_new = 0, now = aps_now_ms();
	const char *status;
	int old_status, rc, dry_run, n = 0, queued = 0;

	if (!may_export(r))
		return;
	if (!idem_key(r, key, sizeof(key))) {
		http__reply_error(r, 400, "idempotency_key_required",
				  "send an \"Idempotency-Key\" header (at most %d characters): a "
				  "retried request with the same key replays the first answer",
				  IDEM_KEY_MAX);
		return;
	}
	ent = store_entity_get(r->b->store, r->user.tenant_id, p[0]);
	if (!ent) {
		http__reply_error(r, 404, "not_found", "no entity %lld in your tenant",
				  (long long)p[0]);
		return;
	}
	cJSON_Delete(ent);
	body_hash(&r->body, hash);
	rc = store_idem_get(r->b->store, r->user.tenant_id, key, old_hash, &old_status, &old);
	if (!rc) {
		if (strcmp(hash, old_hash)) {
			free(old);
			http__reply_error(r, 409, "idempotency_key_reused",
					  "this Idempotency-Key was used for another request; use a "
					  "new key for new documents");
			return;
		}
		http__reply_json(r, (unsigned)old_status, cJSON_Parse(old)); /* the first answer */
		free(old);
		return;
	}
	if (rc != APS_ERR_NOTFOUND) {
		http__reply_error(r, 500, "internal", "the store failed");
		return;
	}
	body = http__body_json(r);
	if (!body)
		return;
	docs = cJSON_GetObjectItemCaseSensitive(body, "documents");
	dry = cJSON_GetObjectItemCaseSensitive(body, "dry_run");
	dry_run = cJSON_IsTrue(dry);
	if (!cJSON_IsArray(docs) || !cJSON_GetArraySize(docs) ||
	    cJSON_GetArraySize(docs) > MAX_DOCS_PER_REQUEST || (dry && !cJSON_IsBool(dry))) {
		http__reply_error(r, 400, "bad_request",
				  "send {\"documents\": [1..%d invoices or payments], \"dry_run\": "
				  "false}",
				  MAX_DOCS_PER_REQUEST);
		goto out;
	}
	cJSON_ArrayForEach(d, docs) {
		n++;
		if (exports__shape(d, why, sizeof(why))) {
			http__reply_error(r, 400, "bad_document", "document %d: %s", n, why);
			goto out;
		}
	}
	/* The entity's SyncTool, if it has one; documents wait for it otherwise. */
	store_entity_agent(r->b->store, r->user.tenant_id, p[0], 0, &agent_id);
	rules = store_rules_list(r->b->store, r->user.tenant_id);
	res = cJSON_CreateObject();
	cJSON_AddBoolToObject(res, "dry_run", dry_run);
	arr = cJSON_AddArrayToObject(res, "documents");
	if (!dry_run && store_begin(r->b->store)) {
		http__reply_error(r, 500, "internal", "the store failed");
		goto out;
	}
	cJSON_ArrayForEach(d, docs) {
		const char *type = cJSON_GetObjectItemCaseSensitive(d, "type")->valuestring;
		const char *nk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
			d, strcmp(type, "payment") ? "number" : "reference"));
		const char *vendor =
			cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "vendor"));

		status = exports__check(r->b->store, r->user.tenant_id, p[0], d, rules, why,
					sizeof(why));
		o = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "type", type);
		cJSON_AddStringToObject(o, "vendor", vendor);
		cJSON_AddStringToObject(o, strcmp(type, "payment") ? "number" : "reference", nk);
		if (dry_run) {
			cJSON_AddStringToObject(o, "status", status);
			cJSON_AddStringToObject(o, "reason", why);
			continue;
		}
		text = cJSON_PrintUnformatted(d);
		exports__amount(d, amount);
		rc = text ? store_doc_create(r->b->store,
					     &(struct store_doc){.tenant_id = r->user.tenant_id,
								 .entity_id = p[0],
								 .agent_id = agent_id,
								 .type = type,
								 .vendor = vendor,
								 .natural_key = nk,
								 .body = text,
								 .amount = amount,
								 .status = status,
								 .reason = why[0] ? why : NULL,
								 .created_by = r->user.email},
					     now, &id)
			  : APS_ERR_NOMEM;
		cJSON_free(text);
		text = NULL;
		if (rc && rc != APS_ERR_EXISTS) {
			store_rollback(r->b->store);
			http__reply_error(r, 500, "internal", "the store failed");
			goto out;
		}
		cJSON_AddNumberToObject(o, "id", (double)id);
		if (rc == APS_ERR_EXISTS) {
			/* Exported before under another request: never twice. */
			cJSON *prev = store_doc_get(r->b->store, r->user.tenant_id, id);

			cJSON_AddStringToObject(o, "status",
						prev ? cJSON_GetStringValue(cJSON_GetObjectItem(
							       prev, "status"))
						     : "unknown");
			cJSON_AddStringToObject(o, "reason", "this document was exported before "
							     "(same vendor and number); not sent "
							     "again");
			cJSON_AddBoolToObject(o, "duplicate", 1);
			cJSON_Delete(prev);
			continue;
		}
		cJSON_AddStringToObject(o, "status", status);
		if (why[0])
			cJSON_AddStringToObject(o, "reason", why);
		queued += !strcmp(status, "queued");
		/* the request's new documents make one export run */
		if (!run_id && store_export_run_create(r->b->store, r->user.tenant_id, p[0],
						       r->user.email, now, &run_id))
			rc = APS_ERR_DB;
		else
			rc = store_export_run_add(r->b->store, run_id, id);
		if (rc) {
			store_rollback(r->b->store);
			http__reply_error(r, 500, "internal", "the store failed");
			goto out;
		}
		last_new = id;
	}
	if (!dry_run && run_id) {
		cJSON_AddNumberToObject(res, "run", (double)run_id);
		if (store_export_run_refresh(r->b->store, last_new, now)) {
			store_rollback(r->b->store);
			http__reply_error(r, 500, "internal", "the store failed");
			goto out;
		}
	}
	if (!dry_run) {
		text = cJSON_PrintUnformatted(res);
		if (!text || store_idem_put(r->b->store, r->user.tenant_id, key, hash, 201, text,
					    now) ||
		    store_commit(r->b->store)) {
			store_rollback(r->b->store);
			http__reply_error(r, 500, "internal", "the store failed");
			goto out;
		}
		log_notice("tenant %s: %d document(s) for export by %s (%d queued)", r->user.tenant,
			   n, r->user.email, queued);
		if (queued && agent_id)
			agents__kick(r->b, agent_id);
	}
	http__reply_json(r, dry_run ? 200 : 201, res);
	res = NULL;
out:
	cJSON_free(text);
	cJSON_Delete(res);
	cJSON_Delete(rules);
	cJSON_Delete(body);
}

static int valid_status(const char *s)
{
	int i;

	for (i = 0; statuses[i]; i++)
		if (!strcmp(statuses[i], s))
			return 1;
	return 0;
}

void api_documents_list(struct http_req *r, const int64_t *p)
{
	char ebuf[24], sbuf[24], tbuf[24], lbuf[24], bbuf[24];
	const char *entity = http__query(r, "entity", ebuf, sizeof(ebuf));
	const char *status = http__query(r, "status", sbuf, sizeof(sbuf));
	const char *type = http__query(r, "type", tbuf, sizeof(tbuf));
	const char *limit = http__query(r, "limit", lbuf, sizeof(lbuf));
	const char *before = http__query(r, "before", bbuf, sizeof(bbuf));
	int64_t eid = 0, lim = 50, bef = 0;
	cJSON *docs, *o;

	(void)p;
	if ((entity && aps_parse_i64(entity, 1, INT64_MAX, &eid)) ||
	    (limit && aps_parse_i64(limit, 1, 500, &lim)) ||
	    (before && aps_parse_i64(before, 1, INT64_MAX, &bef)) ||
	    (status && !valid_status(status)) ||
	    (type && strcmp(type, "invoice") && strcmp(type, "payment"))) {
		http__reply_error(r, 400, "bad_request",
				  "filters: entity=ID, status=on_hold|blocked|queued|in_progress|"
				  "success|failed|uncertain, type=invoice|payment, limit=1..500, "
				  "before=ID");
		return;
	}
	docs = store_docs_list(r->b->store, r->user.tenant_id, eid, status, type, bef, (int)lim);
	if (!docs) {
		http__reply_error(r, 500, "internal", "the store failed");
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "documents", docs);
	http__reply_json(r, 200, o);
}

void api_document_get(struct http_req *r, const int64_t *p)
{
	cJSON *d = store_doc_get(r->b->store, r->user.tenant_id, p[0]), *pays;
	const char *type, *number;

	if (!d) {
		http__reply_error(r, 404, "not_found", "no document %lld in your tenant",
				  (long long)p[0]);
		return;
	}
	cJSON_DeleteItemFromObject(d, "tenant");
	type = cJSON_GetStringValue(cJSON_GetObjectItem(d, "type"));
	number = cJSON_GetStringValue(cJSON_GetObjectItem(d, "number"));
	if (type && !strcmp(type, "invoice") && number) {
		/* Payments made in the ERP (by an export or by hand) that pay it. */
		pays = store_doc_payments(
			r->b->store,
			(int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(d, "entity")),
			cJSON_GetStringValue(cJSON_GetObjectItem(d, "vendor")), number);
		if (pays)
			cJSON_AddItemToObject(d, "payments", pays);
	}
	http__reply_json(r, 200, d);
}

void api_document_retry(struct http_req *r, const int64_t *p)
{
	int64_t agent_id = 0;
	int rc;

	if (!may_export(r))
		return;
	rc = store_doc_retry(r->b->store, r->user.tenant_id, p[0], aps_now_ms(), &agent_id);
	if (rc == APS_ERR_CONFLICT) {
		cJSON *d = store_doc_get(r->b->store, r->user.tenant_id, p[0]);

		if (!d)
			http__reply_error(r, 404, "not_found", "no document %lld in your tenant",
					  (long long)p[0]);
		else
			http__reply_error(r, 409, "conflict",
					  "document %lld is %s; only failed or uncertain documents "
					  "are retried",
					  (long long)p[0],
					  cJSON_GetStringValue(cJSON_GetObjectItem(d, "status")));
		cJSON_Delete(d);
		return;
	}
	if (rc) {
		http__reply_error(r, 500, "internal", "the store failed");
		return;
	}
	if (agent_id)
		agents__kick(r->b, agent_id);
	api_document_get(r, p);
}

void api_document_mark(struct http_req *r, const int64_t *p)
{
	cJSON *body = r->body.len ? http__body_json(r) : cJSON_CreateObject(), *d;
	const cJSON *erp_id;
	int rc;

	if (!body)
		return;
	if (!may_export(r))
		goto out;
	erp_id = cJSON_GetObjectItemCaseSensitive(body, "erp_id");
	if (erp_id && !cJSON_IsString(erp_id) && !cJSON_IsNull(erp_id)) {
		http__reply_error(r, 400, "bad_request", "\"erp_id\" is the ERP's record id, a string");
		goto out;
	}
	rc = store_doc_mark_exported(r->b->store, r->user.tenant_id, p[0],
				     cJSON_GetStringValue(erp_id), r->user.email, aps_now_ms());
	if (rc == APS_ERR_CONFLICT) {
		d = store_doc_get(r->b->store, r->user.tenant_id, p[0]);
		if (!d)
			http__reply_error(r, 404, "not_found", "no document %lld in your tenant",
					  (long long)p[0]);
		else
			http__reply_error(r, 409, "conflict",
					  "document %lld is %s: it cannot be marked as exported by "
					  "hand now",
					  (long long)p[0],
					  cJSON_GetStringValue(cJSON_GetObjectItem(d, "status")));
		cJSON_Delete(d);
		goto out;
	}
	if (rc) {
		http__reply_error(r, 500, "internal", "the store failed");
		goto out;
	}
	log_notice("document %lld marked as exported by %s", (long long)p[0], r->user.email);
	api_document_get(r, p);
out:
	cJSON_Delete(body);
}

void api_rules_list(struct http_req *r, const int64_t *p)
{
	cJSON *o = cJSON_CreateObject();

	(void)p;
	cJSON_AddItemToObject(o, "rules", store_rules_list(r->b->store, r->user.tenant_id));
	http__reply_json(r, 200, o);
}

/* After the rules change, blocked documents are checked again. */
static void rules_changed(struct http_req *r)
{
	int released = 0;

	if (exports__recheck(r->b->store, r->user.tenant_id, 0, aps_now_ms(), &released))
		log_err("tenant %s: cannot check documents against the new rules", r->user.tenant);
	else if (released)
		agents__kick_all(r->b);
}

void api_rules_add(struct http_req *r, const int64_t *p)
{
	cJSON *body, *o;
	const char *kind, *value;
	int64_t id, v;
	int rc;

	(void)p;
	if (strcmp(r->user.role, "system_administrator")) {
		http__reply_error(r, 403, "forbidden", "only a system administrator sets rules");
		return;
	}
	body = http__body_json(r);
	if (!body)
		return;
	kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "kind"));
	value = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "value"));
	if (!kind || !value || !value[0] || strlen(value) > 256 ||
	    (strcmp(kind, "block_vendor") && strcmp(kind, "block_type") &&
	     strcmp(kind, "block_amount_above")) ||
	    (!strcmp(kind, "block_type") && strcmp(value, "invoice") && strcmp(value, "payment")) ||
	    (!strcmp(kind, "block_amount_above") && aps_dec_parse(value, &v))) {
		http__reply_error(r, 400, "bad_request",
				  "a rule is {\"kind\": \"block_vendor\" | \"block_type\" | "
				  "\"block_amount_above\", \"value\": a vendor code | invoice or "
				  "payment | a decimal amount}");
		cJSON_Delete(body);
		return;
	}
	rc = store_rule_add(r->b->store, r->user.tenant_id, kind, value, r->user.email,
			    aps_now_ms(), &id);
	if (rc == APS_ERR_EXISTS) {
		http__reply_error(r, 409, "conflict", "this rule exists already");
	} else if (rc) {
		http__reply_error(r, 500, "internal", "the store failed");
	} else {
		rules_changed(r);
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", (double)id);
		cJSON_AddStringToObject(o, "kind", kind);
		cJSON_AddStringToObject(o, "value", value);
		http__reply_json(r, 201, o);
	}
	cJSON_Delete(body);
}

void api_rules_delete(struct http_req *r, const int64_t *p)
{
	int rc;

	if (strcmp(r->user.role, "system_administrator")) {
		http__reply_error(r, 403, "forbidden", "only a system administrator sets rules");
		return;
	}
	rc = store_rule_delete(r->b->store, r->user.tenant_id, p[0]);
	if (rc == APS_ERR_NOTFOUND) {
		http__reply_error(r, 404, "not_found", "no rule %lld in your tenant",
				  (long long)p[0]);
		return;
	}
	if (rc) {
		http__reply_error(r, 500, "internal", "the store failed");
		return;
	}
	rules_changed(r);
	http__reply_json(r, 200, cJSON_CreateObject());
}

void api_export_runs(struct http_req *r, const int64_t *p)
{
	char ebuf[24], lbuf[24];
	const char *entity = http__query(r, "entity", ebuf, sizeof(ebuf));
	const char *limit = http__query(r, "limit", lbuf, sizeof(lbuf));
	int64_t eid = 0, lim = 10;
	cJSON *runs, *o;

	(void)p;
	if ((entity && aps_parse_i64(entity, 1, INT64_MAX, &eid)) ||
	    (limit && aps_parse_i64(limit, 1, 200, &lim))) {
		http__reply_error(r, 400, "bad_request", "filters: entity=ID, limit=1..200");
		return;
	}
	runs = store_export_runs(r->b->store, r->user.tenant_id, eid, (int)lim);
	if (!runs) {
		http__reply_error(r, 500, "internal", "the store failed");
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "runs", runs);
	http__reply_json(r, 200, o);
}

void api_export_run_get(struct http_req *r, const int64_t *p)
{
	cJSON *run = store_export_run_get(r->b->store, r->user.tenant_id, p[0]);

	if (!run) {
		http__reply_error(r, 404, "not_found", "no export run %lld in your tenant",
				  (long long)p[0]);
		return;
	}
	http__reply_json(r, 200, run);
}
