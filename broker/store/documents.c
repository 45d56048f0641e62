/*
 * Exported documents in the SQLite store: invoices and payments on their way
 * into the ERP (proto/EXPORTS.md), their statuses, the idempotency keys of
 * the requests that made them, and the tenant's export rules.
 *
 * A document's natural key (entity, type, vendor, number or reference) is
 * unique: the same invoice is never exported twice, whatever the request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apsync_proto.h"
#include "db.h"
#include "err.h"
#include "log.h"
#include "sqlite_internal.h"
#include "store.h"
#include "util.h"

#define DOC_COLS                                                                           \
	"d.id, e.code, d.type, d.vendor, d.natural_key, d.amount, d.status, d.reason, "        \
	"d.error_code, d.retryable, d.attempts, d.next_retry_at, d.erp_id, d.erp_number, "     \
	"d.erp_state, d.erp_link, d.manual, d.created_at, d.updated_at, d.entity_id, d.body, " \
	"d.created_by, d.tenant_id"

static void add_time(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
	char iso[APS_TIME_LEN];

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddStringToObject(o, name, aps_time_iso(sqlite3_column_int64(st, col), iso));
}

/* A row of DOC_COLS as the API shows it. */
static cJSON *doc_json(sqlite3_stmt *st, int with_body)
{
	cJSON *o = cJSON_CreateObject(), *erp, *e;
	const char *type = (const char *)sqlite3_column_text(st, 2);

	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
	cJSON_AddNumberToObject(o, "entity", (double)sqlite3_column_int64(st, 19));
	cJSON_AddStringToObject(o, "entity_code", (const char *)sqlite3_column_text(st, 1));
	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddStringToObject(o, "vendor", (const char *)sqlite3_column_text(st, 3));
	cJSON_AddStringToObject(o, strcmp(type, "payment") ? "number" : "reference",
				(const char *)sqlite3_column_text(st, 4));
	sqlstore__add_opt(o, "amount", st, 5);
	cJSON_AddStringToObject(o, "status", (const char *)sqlite3_column_text(st, 6));
	sqlstore__add_opt(o, "reason", st, 7);
	if (sqlite3_column_type(st, 8) != SQLITE_NULL) {
		e = cJSON_AddObjectToObject(o, "error");
		cJSON_AddStringToObject(e, "code", (const char *)sqlite3_column_text(st, 8));
		cJSON_AddBoolToObject(e, "retryable", sqlite3_column_int(st, 9));
	} else {
		cJSON_AddNullToObject(o, "error");
	}
	cJSON_AddNumberToObject(o, "attempts", sqlite3_column_int(st, 10));
	add_time(o, "next_retry_at", st, 11);
	if (sqlite3_column_type(st, 12) != SQLITE_NULL) {
		erp = cJSON_AddObjectToObject(o, "erp");
		sqlstore__add_opt(erp, "id", st, 12);
		sqlstore__add_opt(erp, "number", st, 13);
		sqlstore__add_opt(erp, "state", st, 14);
		sqlstore__add_opt(erp, "link", st, 15);
	} else {
		cJSON_AddNullToObject(o, "erp");
	}
	cJSON_AddBoolToObject(o, "marked_by_hand", sqlite3_column_int(st, 16));
	add_time(o, "created_at", st, 17);
	add_time(o, "updated_at", st, 18);
	sqlstore__add_opt(o, "created_by", st, 21);
	if (with_body) {
		cJSON_AddNumberToObject(o, "tenant", (double)sqlite3_column_int64(st, 22));
		cJSON_AddItemToObject(o, "document",
				      cJSON_Parse((const char *)sqlite3_column_text(st, 20)));
	}
	return o;
}

int store_doc_create(struct store *s, const struct store_doc *d, int64_t now, int64_t *id)
{
	sqlite3_stmt *st;
	int rc;

	*id = 0;
	st = sqlstore__prepare(s, "SELECT id FROM documents WHERE entity_id=?1 AND type=?2 AND "
				  "vendor=?3 AND natural_key=?4");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, d->entity_id);
	sqlite3_bind_text(st, 2, d->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, d->vendor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, d->natural_key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return APS_ERR_EXISTS;
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	st = sqlstore__prepare(s, "INSERT INTO documents(tenant_id, entity_id, agent_id, type, "
				  "vendor, natural_key, body, amount, status, reason, created_by, "
				  "created_at, updated_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,"
				  "?12,?12)");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, d->tenant_id);
	sqlite3_bind_int64(st, 2, d->entity_id);
	if (d->agent_id)
		sqlite3_bind_int64(st, 3, d->agent_id);
	sqlite3_bind_text(st, 4, d->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, d->vendor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, d->natural_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, d->body, -1, SQLITE_STATIC);
	aps_db_bind_text(st, 8, d->amount);
	sqlite3_bind_text(st, 9, d->status, -1, SQLITE_STATIC);
	aps_db_bind_text(st, 10, d->reason);
	aps_db_bind_text(st, 11, d->created_by);
	sqlite3_bind_int64(st, 12, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	*id = sqlite3_last_insert_rowid(s->db);
	return APS_OK;
}

cJSON *store_doc_get(struct store *s, int64_t tenant_id, int64_t id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT " DOC_COLS " FROM documents d JOIN entities "
					    "e ON e.id=d.entity_id WHERE d.id=?1 AND d.tenant_id=?2");
	cJSON *o = NULL;

	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, tenant_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		o = doc_json(st, 1);
	sqlite3_finalize(st);
	return o;
}

cJSON *store_docs_list(struct store *s, int64_t tenant_id, int64_t entity_id, const char *status,
		       const char *type, int64_t before, int limit)
{
	sqlite3_stmt *st = sqlstore__prepare(
		s, "SELECT " DOC_COLS " FROM documents d JOIN entities e ON e.id=d.entity_id WHERE "
		   "d.tenant_id=?1 AND (?2=0 OR d.entity_id=?2) AND (?3 IS NULL OR d.status=?3) AND "
		   "(?4 IS NULL OR d.type=?4) AND (?5=0 OR d.id<?5) ORDER BY d.id DESC LIMIT ?6");
	cJSON *arr;

	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_int64(st, 2, entity_id);
	aps_db_bind_text(st, 3, status);
	aps_db_bind_text(st, 4, type);
	sqlite3_bind_int64(st, 5, before);
	sqlite3_bind_int(st, 6, limit);
	arr = cJSON_CreateArray();
	while (arr && sqlite3_step(st) == SQLITE_ROW)
		cJSON_AddItemToArray(arr, doc_json(st, 0));
	sqlite3_finalize(st);
	return arr;
}

cJSON *store_docs_waiting(struct store *s, int64_t tenant_id, int64_t entity_id)
{
	sqlite3_stmt *st = sqlstore__prepare(
		s, "SELECT " DOC_COLS " FROM documents d JOIN entities e ON e.id=d.entity_id WHERE "
		   "(?1=0 OR d.tenant_id=?1) AND (?2=0 OR d.entity_id=?2) AND d.status IN "
		   "('on_hold', 'blocked') ORDER BY d.tenant_id, d.id");
	cJSON *arr;

	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_int64(st, 2, entity_id);
	arr = cJSON_CreateArray();
	while (arr && sqlite3_step(st) == SQLITE_ROW)
		cJSON_AddItemToArray(arr, doc_json(st, 1));
	sqlite3_finalize(st);
	return arr;
}

int store_doc_status(struct store *s, int64_t id, const char *status, const char *reason,
		     int64_t now)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "UPDATE documents SET status=?2, reason=?3, "
					    "updated_at=?4 WHERE id=?1");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	aps_db_bind_text(st, 3, reason);
	sqlite3_bind_int64(st, 4, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	return store_export_run_refresh(s, id, now);
}

int store_doc_retry(struct store *s, int64_t tenant_id, int64_t id, int64_t now,
		    int64_t *agent_id)
{
	sqlite3_stmt *st = sqlstore__prepare(
		s, "UPDATE documents SET status='queued', reason='retry requested', "
		   "next_retry_at=NULL, updated_at=?3 WHERE id=?1 AND tenant_id=?2 AND status IN "
		   "('failed', 'uncertain') RETURNING agent_id");
	int rc;

	*agent_id = 0;
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, tenant_id);
	sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*agent_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return store_export_run_refresh(s, id, now);
	return rc == SQLITE_DONE ? APS_ERR_CONFLICT : sqlstore__db_error(s);
}

int store_doc_mark_exported(struct store *s, int64_t tenant_id, int64_t id, const char *erp_id,
			    const char *by, int64_t now)
{
	sqlite3_stmt *st = sqlstore__prepare(
		s, "UPDATE documents SET status='success', manual=1, erp_id=COALESCE(?3, erp_id), "
		   "erp_state='entered by hand', reason='marked as exported by ' || ?4, error_code="
		   "NULL, retryable=0, next_retry_at=NULL, updated_at=?5 WHERE id=?1 AND tenant_id=?2 "
		   "AND status IN ('on_hold', 'blocked', 'failed', 'uncertain', 'queued')");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, tenant_id);
	aps_db_bind_text(st, 3, erp_id);
	sqlite3_bind_text(st, 4, by, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	if (!sqlite3_changes(s->db))
		return APS_ERR_CONFLICT;
	return store_export_run_refresh(s, id, now);
}

/* Queued documents of this agent, and failed ones whose retry is due, go out
 * as EXPORT messages: in progress until the agent's EXPORT_RESULT. */
int store_docs_dispatch(struct store *s, int64_t agent_id, int64_t now, int *n)
{
	sqlite3_stmt *pick = NULL;
	cJSON *body;
	char *text;
	int64_t id;
	int rc = APS_ERR_DB, attempt;

	*n = 0;
	if (aps_db_begin(s->db))
		return APS_ERR_DB;
	pick = sqlstore__prepare(s, "SELECT d.id, e.code, d.type, d.body, d.attempts FROM documents "
				    "d JOIN entities e ON e.id=d.entity_id WHERE d.agent_id=?1 AND "
				    "(d.status='queued' OR (d.status='failed' AND d.retryable=1 AND "
				    "d.next_retry_at<=?2)) ORDER BY d.id");
	if (!pick)
		goto out;
	sqlite3_bind_int64(pick, 1, agent_id);
	sqlite3_bind_int64(pick, 2, now);
	while (sqlite3_step(pick) == SQLITE_ROW) {
		id = sqlite3_column_int64(pick, 0);
		attempt = sqlite3_column_int(pick, 4) + 1;
		body = cJSON_CreateObject();
		cJSON_AddNumberToObject(body, "doc", (double)id);
		cJSON_AddStringToObject(body, "entity", (const char *)sqlite3_column_text(pick, 1));
		cJSON_AddStringToObject(body, "type", (const char *)sqlite3_column_text(pick, 2));
		cJSON_AddNumberToObject(body, "attempt", attempt);
		cJSON_AddItemToObject(body, "document",
				      cJSON_Parse((const char *)sqlite3_column_text(pick, 3)));
		text = cJSON_PrintUnformatted(body);
		cJSON_Delete(body);
		if (!text)
			goto out;
		rc = sqlstore__outbox_add(s, agent_id, APSYNC_MSG_EXPORT, text, now);
		cJSON_free(text);
		if (rc || sqlstore__exec_bind2(s, "UPDATE documents SET status='in_progress', "
						  "attempts=attempts+1, next_retry_at=NULL, "
						  "updated_at=?2 WHERE id=?1",
					       id, now)) {
			rc = APS_ERR_DB;
			goto out;
		}
		(*n)++;
	}
	rc = aps_db_commit(s->db) ? APS_ERR_DB : APS_OK;
out:
	sqlite3_finalize(pick);
	if (rc) {
		*n = 0;
		aps_db_rollback(s->db);
	}
	return rc;
}

int store_docs_due(struct store *s, int64_t now, cJSON **agents)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT DISTINCT agent_id FROM documents WHERE "
					       "status='failed' AND retryable=1 AND "
					       "next_retry_at<=?1 AND agent_id IS NOT NULL");

	*agents = cJSON_CreateArray();
	if (!st || !*agents) {
		sqlite3_finalize(st);
		return APS_ERR_DB;
	}
	sqlite3_bind_int64(st, 1, now);
	while (sqlite3_step(st) == SQLITE_ROW)
		cJSON_AddItemToArray(*agents, cJSON_CreateNumber((double)sqlite3_column_int64(st, 0)));
	sqlite3_finalize(st);
	return APS_OK;
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int store_doc_result(struct store *s, int64_t agent_id, const cJSON *body, int64_t now,
		     int64_t retry_base_ms, char *why, size_t whylen)
{
	const cJSON *doc = cJSON_GetObjectItemCaseSensitive(body, "doc");
	const cJSON *erp = cJSON_GetObjectItemCaseSensitive(body, "erp");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(body, "error");
	const char *status = jstr(body, "status"), *msg = jstr(err, "message");
	int retryable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(err, "retryable"));
	sqlite3_stmt *st;
	int64_t attempts = 0, delay;
	int rc;

	if (!cJSON_IsNumber(doc) || !status ||
	    (strcmp(status, "success") && strcmp(status, "failed") && strcmp(status, "uncertain"))) {
		snprintf(why, whylen, "EXPORT_RESULT needs a doc and a status of success, failed or "
				      "uncertain");
		return APS_ERR_MESSAGE;
	}
	st = sqlstore__prepare(s, "SELECT attempts, status FROM documents WHERE id=?1 AND "
				  "agent_id=?2");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, (int64_t)doc->valuedouble);
	sqlite3_bind_int64(st, 2, agent_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		attempts = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE) {
		snprintf(why, whylen, "EXPORT_RESULT names document %.0f, which is not this "
				      "SyncTool's",
			 doc->valuedouble);
		return APS_ERR_MESSAGE;
	}
	if (rc != SQLITE_ROW)
		return sqlstore__db_error(s);
	/* Retryable failures wait 1, 2, 4, … times the base, at most an hour. */
	delay = retry_base_ms;
	while (delay < 3600000 && attempts-- > 1)
		delay *= 2;
	if (delay > 3600000)
		delay = 3600000;
	st = sqlstore__prepare(
		s, "UPDATE documents SET status=?2, reason=?3, error_code=?4, retryable=?5, "
		   "next_retry_at=?6, erp_id=COALESCE(?7, erp_id), erp_number=COALESCE(?8, "
		   "erp_number), erp_state=COALESCE(?9, erp_state), erp_link=COALESCE(?10, erp_link), "
		   "updated_at=?11 WHERE id=?1 AND status NOT IN ('success')");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, (int64_t)doc->valuedouble);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	aps_db_bind_text(st, 3, msg);
	aps_db_bind_text(st, 4, jstr(err, "code"));
	sqlite3_bind_int(st, 5, retryable);
	if (!strcmp(status, "failed") && retryable)
		sqlite3_bind_int64(st, 6, now + delay);
	aps_db_bind_text(st, 7, jstr(erp, "id"));
	aps_db_bind_text(st, 8, jstr(erp, "number"));
	aps_db_bind_text(st, 9, jstr(erp, "state"));
	aps_db_bind_text(st, 10, jstr(erp, "link"));
	sqlite3_bind_int64(st, 11, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	return store_export_run_refresh(s, (int64_t)doc->valuedouble, now);
}

/* A column of a stored item, by name, through its column list. */
#define COL(name)                                                                          \
	"json_extract(i.data, '$[' || (SELECT j.key FROM json_each(c.names) j WHERE "     \
	"j.value='" name "') || ']')"

cJSON *store_doc_payments(struct store *s, int64_t entity_id, const char *vendor,
			  const char *number)
{
	sqlite3_stmt *st = sqlstore__prepare(
		s, "SELECT i.key, " COL("reference") ", " COL("payment_date") ", " COL(
			   "bank_account") ", json_extract(p.value, '$.amount'), " COL("status") " "
		   "FROM items i JOIN lists l ON l.id=i.list_id JOIN columns c ON c.id=i.cols, "
		   "json_each(" COL("invoices") ") p WHERE i.entity_id=?1 AND l.name='payments' "
		   "AND i.deleted=0 AND " COL("vendor") "=?2 AND json_extract(p.value, "
		   "'$.number')=?3 ORDER BY 3, 1");
	cJSON *arr, *o;

	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, entity_id);
	sqlite3_bind_text(st, 2, vendor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, number, -1, SQLITE_STATIC);
	arr = cJSON_CreateArray();
	while (arr && sqlite3_step(st) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "payment", (const char *)sqlite3_column_text(st, 0));
		sqlstore__add_opt(o, "reference", st, 1);
		sqlstore__add_opt(o, "date", st, 2);
		sqlstore__add_opt(o, "bank_account", st, 3);
		sqlstore__add_opt(o, "amount", st, 4);
		sqlstore__add_opt(o, "status", st, 5);
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

int store_item_state(struct store *s, int64_t entity_id, const char *list, const char *key,
		     char *status, size_t len)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT i.status, i.deleted FROM items i JOIN lists "
					       "l ON l.id=i.list_id WHERE i.entity_id=?1 AND "
					       "l.name=?2 AND i.key=?3");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, entity_id);
	sqlite3_bind_text(st, 2, list, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(status, len, "%s",
			 sqlite3_column_int(st, 1) ? "deleted"
			 : sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0)
						      : "active");
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return APS_OK;
	return rc == SQLITE_DONE ? APS_ERR_NOTFOUND : sqlstore__db_error(s);
}

int store_list_synced(struct store *s, int64_t entity_id, const char *list)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT 1 FROM items i JOIN lists l ON "
					       "l.id=i.list_id WHERE i.entity_id=?1 AND l.name=?2 "
					       "LIMIT 1");
	int rc;

	if (!st)
		return 0;
	sqlite3_bind_int64(st, 1, entity_id);
	sqlite3_bind_text(st, 2, list, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW;
}

int store_idem_get(struct store *s, int64_t tenant_id, const char *key, char hash[65],
		   int *status, char **response)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT request_hash, status, response FROM "
					       "idempotency WHERE tenant_id=?1 AND key=?2");
	int rc;

	*response = NULL;
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(hash, 65, "%s", (const char *)sqlite3_column_text(st, 0));
		*status = sqlite3_column_int(st, 1);
		*response = strdup((const char *)sqlite3_column_text(st, 2));
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return *response ? APS_OK : APS_ERR_NOMEM;
	return rc == SQLITE_DONE ? APS_ERR_NOTFOUND : sqlstore__db_error(s);
}

int store_idem_put(struct store *s, int64_t tenant_id, const char *key, const char *hash,
		   int status, const char *response, int64_t now)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "INSERT INTO idempotency(tenant_id, key, "
					       "request_hash, status, response, created_at) "
					       "VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, status);
	sqlite3_bind_text(st, 5, response, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : sqlstore__db_error(s);
}

cJSON *store_rules_list(struct store *s, int64_t tenant_id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT id, kind, value, created_by, created_at "
					       "FROM rules WHERE tenant_id=?1 ORDER BY id");
	cJSON *arr, *o;

	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, tenant_id);
	arr = cJSON_CreateArray();
	while (arr && sqlite3_step(st) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
		cJSON_AddStringToObject(o, "kind", (const char *)sqlite3_column_text(st, 1));
		cJSON_AddStringToObject(o, "value", (const char *)sqlite3_column_text(st, 2));
		sqlstore__add_opt(o, "created_by", st, 3);
		add_time(o, "created_at", st, 4);
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

int store_rule_add(struct store *s, int64_t tenant_id, const char *kind, const char *value,
		   const char *by, int64_t now, int64_t *id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "INSERT INTO rules(tenant_id, kind, value, "
					       "created_by, created_at) VALUES(?1, ?2, ?3, ?4, ?5) "
					       "ON CONFLICT DO NOTHING RETURNING id");
	int rc;

	*id = 0;
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
	aps_db_bind_text(st, 4, by);
	sqlite3_bind_int64(st, 5, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return APS_OK;
	return rc == SQLITE_DONE ? APS_ERR_EXISTS : sqlstore__db_error(s);
}

int store_rule_delete(struct store *s, int64_t tenant_id, int64_t id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "DELETE FROM rules WHERE id=?1 AND tenant_id=?2");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, tenant_id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	return sqlite3_changes(s->db) ? APS_OK : APS_ERR_NOTFOUND;
}

/* ---- export runs ---- */

int store_export_run_create(struct store *s, int64_t tenant_id, int64_t entity_id,
			    const char *by, int64_t now, int64_t *id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "INSERT INTO export_runs(tenant_id, entity_id, "
					       "status, created_by, created_at) VALUES(?1, ?2, "
					       "'running', ?3, ?4)");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_int64(st, 2, entity_id);
	aps_db_bind_text(st, 3, by);
	sqlite3_bind_int64(st, 4, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	*id = sqlite3_last_insert_rowid(s->db);
	return APS_OK;
}

int store_export_run_add(struct store *s, int64_t run_id, int64_t doc_id)
{
	int rc = sqlstore__exec_bind2(s, "UPDATE documents SET run_id=?2 WHERE id=?1", doc_id,
				      run_id);

	if (!rc)
		rc = sqlstore__exec_bind2(s, "UPDATE export_runs SET documents=documents+1 WHERE "
					     "id=?1 OR ?2<0",
					  run_id, 0);
	return rc;
}

static int run_log(struct store *s, int64_t run_id, int64_t now, const char *level,
		   const char *msg)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "INSERT INTO export_run_log(run_id, ts, level, "
					       "message) VALUES(?1, ?2, ?3, ?4)");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_text(st, 3, level, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, msg, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : sqlstore__db_error(s);
}

/*
 * A run ends when none of its documents is queued or in progress any more:
 * success when all went into the ERP, failed when none did, partial
 * otherwise, its log naming each document that did not and why. A document
 * retried later reopens the run, and ends it again.
 */
int store_export_run_refresh(struct store *s, int64_t doc_id, int64_t now)
{
	sqlite3_stmt *st;
	int64_t run_id = 0, total = 0, ok = 0, open_ = 0;
	char status_was[16] = "", msg[700];
	const char *status;
	int rc;

	st = sqlstore__prepare(s, "SELECT r.id, r.status, count(d.id), count(d.id) FILTER (WHERE "
				  "d.status='success'), count(d.id) FILTER (WHERE d.status IN "
				  "('queued', 'in_progress')) FROM documents x JOIN export_runs r ON "
				  "r.id=x.run_id JOIN documents d ON d.run_id=r.id WHERE x.id=?1 "
				  "GROUP BY r.id");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, doc_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		run_id = sqlite3_column_int64(st, 0);
		snprintf(status_was, sizeof(status_was), "%s", sqlite3_column_text(st, 1));
		total = sqlite3_column_int64(st, 2);
		ok = sqlite3_column_int64(st, 3);
		open_ = sqlite3_column_int64(st, 4);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return APS_OK; /* not part of a run */
	if (rc != SQLITE_ROW)
		return sqlstore__db_error(s);
	status = open_ ? "running" : ok == total ? "success" : ok ? "partial" : "failed";
	if (!strcmp(status, status_was))
		return APS_OK;
	st = sqlstore__prepare(s, "UPDATE export_runs SET status=?2, finished_at=?3 WHERE id=?1");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	if (!open_)
		sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	if (open_)
		return run_log(s, run_id, now, "info", "a document goes out again: the run goes on");
	/* The documents that did not go into the ERP, by name, with why. */
	st = sqlstore__prepare(s, "SELECT id, type, natural_key, vendor, status, coalesce(reason, "
				  "'') FROM documents WHERE run_id=?1 AND status<>'success' ORDER BY "
				  "id");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, run_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		snprintf(msg, sizeof(msg), "document %lld, %s %s of vendor %s: %s%s%.500s",
			 (long long)sqlite3_column_int64(st, 0), sqlite3_column_text(st, 1),
			 sqlite3_column_text(st, 2), sqlite3_column_text(st, 3),
			 sqlite3_column_text(st, 4), *sqlite3_column_text(st, 5) ? ": " : "",
			 sqlite3_column_text(st, 5));
		if (run_log(s, run_id, now, "warn", msg))
			break;
	}
	sqlite3_finalize(st);
	snprintf(msg, sizeof(msg), "export run ended %s: %lld of %lld document%s in the ERP",
		 status, (long long)ok, (long long)total, total == 1 ? "" : "s");
	return run_log(s, run_id, now, strcmp(status, "success") ? "warn" : "info", msg);
}

static void run_json_fields(cJSON *o, sqlite3_stmt *st)
{
	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
	cJSON_AddNumberToObject(o, "entity", (double)sqlite3_column_int64(st, 1));
	cJSON_AddStringToObject(o, "entity_code", (const char *)sqlite3_column_text(st, 2));
	cJSON_AddStringToObject(o, "status", (const char *)sqlite3_column_text(st, 3));
	cJSON_AddNumberToObject(o, "documents", (double)sqlite3_column_int64(st, 4));
	sqlstore__add_opt(o, "created_by", st, 5);
	add_time(o, "created_at", st, 6);
	add_time(o, "finished_at", st, 7);
}

#define RUN_COLS                                                                           \
	"r.id, r.entity_id, e.code, r.status, r.documents, r.created_by, r.created_at, "     \
	"r.finished_at"

cJSON *store_export_runs(struct store *s, int64_t tenant_id, int64_t entity_id, int limit)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT " RUN_COLS " FROM export_runs r JOIN "
					       "entities e ON e.id=r.entity_id WHERE "
					       "r.tenant_id=?1 AND (?2=0 OR r.entity_id=?2) ORDER "
					       "BY r.id DESC LIMIT ?3");
	cJSON *arr, *o;

	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_int64(st, 2, entity_id);
	sqlite3_bind_int(st, 3, limit);
	arr = cJSON_CreateArray();
	while (arr && sqlite3_step(st) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		run_json_fields(o, st);
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

cJSON *store_export_run_get(struct store *s, int64_t tenant_id, int64_t run_id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT " RUN_COLS " FROM export_runs r JOIN "
					       "entities e ON e.id=r.entity_id WHERE r.id=?1 AND "
					       "r.tenant_id=?2");
	cJSON *o = NULL, *arr, *l;

	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, tenant_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		run_json_fields(o, st);
	}
	sqlite3_finalize(st);
	if (!o)
		return NULL;
	arr = cJSON_AddArrayToObject(o, "log");
	st = sqlstore__prepare(s, "SELECT ts, level, message FROM export_run_log WHERE run_id=?1 "
				  "ORDER BY rowid");
	if (st) {
		sqlite3_bind_int64(st, 1, run_id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			l = cJSON_CreateObject();
			add_time(l, "ts", st, 0);
			cJSON_AddStringToObject(l, "level", (const char *)sqlite3_column_text(st, 1));
			cJSON_AddStringToObject(l, "message", (const char *)sqlite3_column_text(st, 2));
			cJSON_AddItemToArray(arr, l);
		}
		sqlite3_finalize(st);
	}
	arr = cJSON_AddArrayToObject(o, "document_ids");
	st = sqlstore__prepare(s, "SELECT id FROM documents WHERE run_id=?1 ORDER BY id");
	if (st) {
		sqlite3_bind_int64(st, 1, run_id);
		while (sqlite3_step(st) == SQLITE_ROW)
			cJSON_AddItemToArray(arr,
					     cJSON_CreateNumber((double)sqlite3_column_int64(st, 0)));
		sqlite3_finalize(st);
	}
	return o;
}
