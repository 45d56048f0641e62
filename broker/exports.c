/*
 * Exports: checking a document before it goes to the ERP.
 *
 * A document is first checked for its own shape (a malformed one is refused
 * with 400 and stored nowhere). Then against what the entity's last syncs
 * brought: a vendor, GL account, item, tax code, unit, warehouse, division or
 * bank account the synced lists do not hold, or hold as inactive, puts the
 * document On Hold naming it; a tenant rule puts it Blocked naming the rule.
 * Held documents are checked again after every sync of their entity, blocked
 * ones when the rules change: what passes goes out by itself.
 */
#include <stdio.h>
#include <string.h>

#include "apsync_proto.h"
#include "broker_internal.h"
#include "decimal.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define MAX_LINES 500

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static int is_date(const char *s)
{
	int64_t ms;

	return s && strlen(s) == 10 && !aps_time_parse(s, &ms);
}

/* A decimal string field: 1 if fine (or absent and optional). */
static int decimal(const cJSON *o, const char *name, int required, int64_t *v)
{
	const char *s = str(o, name);
	int64_t dummy;

	if (!s)
		return !required && !cJSON_GetObjectItemCaseSensitive(o, name);
	return !aps_dec_parse(s, v ? v : &dummy);
}

int exports__shape(const cJSON *doc, char *why, size_t len)
{
	const char *type = str(doc, "type");
	const cJSON *lines, *l;
	int64_t sum = 0, amount = 0, part;
	int n = 0;

	if (!cJSON_IsObject(doc) || !type || (strcmp(type, "invoice") && strcmp(type, "payment"))) {
		snprintf(why, len, "a document is an object whose \"type\" is invoice or payment");
		return APS_ERR_INVAL;
	}
	if (!str(doc, "vendor") || strlen(str(doc, "vendor")) > APSYNC_MAX_KEY_LEN) {
		snprintf(why, len, "%s: \"vendor\" must be a vendor code", type);
		return APS_ERR_INVAL;
	}
	if (!is_date(str(doc, "date"))) {
		snprintf(why, len, "%s: \"date\" must be a date YYYY-MM-DD", type);
		return APS_ERR_INVAL;
	}
	if (!strcmp(type, "invoice")) {
		lines = cJSON_GetObjectItemCaseSensitive(doc, "lines");
		if (!str(doc, "number") || strlen(str(doc, "number")) > 64) {
			snprintf(why, len, "invoice: \"number\" (the vendor's invoice number, at most "
					   "64 characters) is required");
			return APS_ERR_INVAL;
		}
		if (str(doc, "due_date") && !is_date(str(doc, "due_date"))) {
			snprintf(why, len, "invoice %s: \"due_date\" must be a date", str(doc, "number"));
			return APS_ERR_INVAL;
		}
		if (!decimal(doc, "total", 0, NULL)) {
			snprintf(why, len, "invoice %s: \"total\" must be a decimal string",
				 str(doc, "number"));
			return APS_ERR_INVAL;
		}
		if (!cJSON_IsArray(lines) || !cJSON_GetArraySize(lines) ||
		    cJSON_GetArraySize(lines) > MAX_LINES) {
			snprintf(why, len, "invoice %s: \"lines\" must hold 1..%d lines",
				 str(doc, "number"), MAX_LINES);
			return APS_ERR_INVAL;
		}
		cJSON_ArrayForEach(l, lines) {
			n++;
			if (!cJSON_IsObject(l) || (!str(l, "gl_account") && !str(l, "item")) ||
			    !decimal(l, "quantity", 1, NULL) || !decimal(l, "unit_price", 1, NULL)) {
				snprintf(why, len,
					 "invoice %s line %d: needs gl_account or item, and quantity "
					 "and unit_price as decimal strings",
					 str(doc, "number"), n);
				return APS_ERR_INVAL;
			}
		}
		return APS_OK;
	}
	lines = cJSON_GetObjectItemCaseSensitive(doc, "invoices");
	if (!str(doc, "reference") || strlen(str(doc, "reference")) > 64 ||
	    !str(doc, "bank_account") || !decimal(doc, "amount", 1, &amount)) {
		snprintf(why, len, "payment: \"reference\", \"bank_account\" and \"amount\" (a decimal "
				   "string) are required");
		return APS_ERR_INVAL;
	}
	if (!cJSON_IsArray(lines) || !cJSON_GetArraySize(lines) ||
	    cJSON_GetArraySize(lines) > MAX_LINES) {
		snprintf(why, len, "payment %s: \"invoices\" must name 1..%d invoices paid",
			 str(doc, "reference"), MAX_LINES);
		return APS_ERR_INVAL;
	}
	cJSON_ArrayForEach(l, lines) {
		if (!str(l, "number") || !decimal(l, "amount", 1, &part) || part <= 0) {
			snprintf(why, len, "payment %s: each paid invoice has a \"number\" and a "
					   "positive \"amount\"",
				 str(doc, "reference"));
			return APS_ERR_INVAL;
		}
		sum += part;
	}
	if (sum != amount) {
		snprintf(why, len, "payment %s: \"amount\" is not the sum of the invoices' amounts",
			 str(doc, "reference"));
		return APS_ERR_INVAL;
	}
	return APS_OK;
}

/* The document's amount: the invoice's total (given, else its lines before
 * tax), the payment's amount. */
static int64_t doc_amount(const cJSON *doc)
{
	const cJSON *l;
	int64_t v = 0, q, p;

	if (decimal(doc, "total", 1, &v) || decimal(doc, "amount", 1, &v))
		return v;
	cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(doc, "lines"))
		if (decimal(l, "quantity", 1, &q) && decimal(l, "unit_price", 1, &p))
			v += aps_dec_mul(q, p);
	return v;
}

void exports__amount(const cJSON *doc, char out[32])
{
	aps_dec_format(doc_amount(doc), 2, out);
}

/* A reference must be synced and active; appends what is wrong to why. */
static int ref_ok(struct store *s, int64_t entity_id, const char *list, const char *what,
		  const char *code, int required, char *why, size_t len)
{
	char status[16];
	size_t n = strlen(why);
	int rc;

	if (!code)
		return 1;
	if (!required && !store_list_synced(s, entity_id, list))
		return 1; /* this ERP does not sync that list: the ERP itself checks */
	rc = store_item_state(s, entity_id, list, code, status, sizeof(status));
	if (!rc && !strcmp(status, "active"))
		return 1;
	snprintf(why + n, len - n, "%s%s %s %s", n ? "; " : "", what, code,
		 rc ? "is not in the synced list"
		 : !strcmp(status, "deleted") ? "was deleted in the ERP"
					      : "is inactive in the ERP");
	return 0;
}

const char *exports__check(struct store *s, int64_t tenant_id, int64_t entity_id,
			   const cJSON *doc, const cJSON *rules, char *why, size_t len)
{
	const char *type = str(doc, "type"), *kind, *value;
	const cJSON *l, *r;
	int64_t limit, amount;
	char a[32];
	int ok = 1;

	why[0] = '\0';
	(void)tenant_id;
	cJSON_ArrayForEach(r, rules) {
		kind = str(r, "kind");
		value = str(r, "value");
		if (!kind || !value)
			continue;
		if ((!strcmp(kind, "block_vendor") && !strcmp(value, str(doc, "vendor"))) ||
		    (!strcmp(kind, "block_type") && !strcmp(value, type))) {
			snprintf(why, len, "blocked by rule %d: %s %s", (int)cJSON_GetNumberValue(
				 cJSON_GetObjectItemCaseSensitive(r, "id")),
				 !strcmp(kind, "block_vendor") ? "vendor" : "document type", value);
			return "blocked";
		}
		amount = doc_amount(doc);
		if (!strcmp(kind, "block_amount_above") && !aps_dec_parse(value, &limit) &&
		    amount > limit) {
			snprintf(why, len, "blocked by rule %d: amount %s is above %s",
				 (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "id")),
				 aps_dec_format(amount, 2, a), value);
			return "blocked";
		}
	}
	ok &= ref_ok(s, entity_id, "vendors", "vendor", str(doc, "vendor"), 1, why, len);
	if (!strcmp(type, "payment")) {
		ok &= ref_ok(s, entity_id, "bank_accounts", "bank account", str(doc, "bank_account"),
			     0, why, len);
	} else {
		cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(doc, "lines")) {
			ok &= ref_ok(s, entity_id, "gl_accounts", "GL account", str(l, "gl_account"),
				     0, why, len);
			ok &= ref_ok(s, entity_id, "items", "item", str(l, "item"), 0, why, len);
			ok &= ref_ok(s, entity_id, "tax_codes", "tax code", str(l, "tax_code"), 0,
				     why, len);
			ok &= ref_ok(s, entity_id, "units", "unit", str(l, "unit"), 0, why, len);
			ok &= ref_ok(s, entity_id, "warehouses", "warehouse", str(l, "warehouse"), 0,
				     why, len);
			ok &= ref_ok(s, entity_id, "divisions", "division", str(l, "division"), 0,
				     why, len);
		}
	}
	if (!ok) {
		size_t n = strlen(why);

		snprintf(why + n, len - n, "; it goes out by itself once a sync brings it");
		return "on_hold";
	}
	return "queued";
}

int exports__recheck(struct store *s, int64_t tenant_id, int64_t entity_id, int64_t now,
		     int *released)
{
	cJSON *docs = store_docs_waiting(s, tenant_id, entity_id), *d, *rules = NULL;
	int64_t tid = -1;
	const char *status;
	char why[1024];
	int rc = APS_OK;

	*released = 0;
	if (!docs)
		return APS_ERR_DB;
	cJSON_ArrayForEach(d, docs) {
		int64_t id = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "id"));
		int64_t eid = (int64_t)cJSON_GetNumberValue(
			cJSON_GetObjectItemCaseSensitive(d, "entity"));
		int64_t t = (int64_t)cJSON_GetNumberValue(
			cJSON_GetObjectItemCaseSensitive(d, "tenant"));
		const cJSON *body = cJSON_GetObjectItemCaseSensitive(d, "document");
		const char *old = str(d, "status"), *old_why = str(d, "reason");

		if (t != tid) {
			cJSON_Delete(rules);
			rules = store_rules_list(s, t);
			tid = t;
		}
		status = exports__check(s, t, eid, body, rules, why, sizeof(why));
		if (!strcmp(status, old) && old_why && !strcmp(why, old_why))
			continue;
		rc = store_doc_status(s, id, status, why[0] ? why : NULL, now);
		if (rc)
			break;
		if (!strcmp(status, "queued"))
			(*released)++;
	}
	cJSON_Delete(rules);
	cJSON_Delete(docs);
	return rc;
}
