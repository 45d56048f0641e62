/*
 * Tryton 6.0: lists are read by SQL on Tryton's database through the tryton
 * profile (agent/erp/profiles/tryton.json); documents are written through
 * Tryton's own JSON-RPC so that its rules apply (tryton_rpc.c).
 *
 *   --erp tryton:PATH.sqlite            a Tryton database on SQLite
 *   --erp tryton:odbc:CONNECTION        (PostgreSQL: the profile's dialect
 *                                        is not written yet)
 *   --erp-url http://HOST:8000/DATABASE/ --erp-user U --erp-password-file F
 *                                       for writes
 *
 * Writes (proto/EXPORTS.md; tests/fixtures/tryton/NOTES.md has the calls):
 *
 * - Companies are company_company ids. Tryton's record rules follow the
 *   company stored on the user, so a write for another company first makes it
 *   the user's current one (set_preferences), as the Tryton client does. Two
 *   writers sharing one Tryton user for different companies would race: give
 *   each its own user.
 * - An invoice is a supplier invoice (type "in") whose reference is the
 *   vendor's invoice number; (party, reference, company), not cancelled, is
 *   the natural key. Nothing runs Tryton's on_change over JSON-RPC, so the
 *   writer fills in what the client would: the invoice address, the payable
 *   account, the expense journal, the payment term, and per line the
 *   product's unit, expense account and supplier taxes. A due date replaces
 *   the payment term (payment_term_date, no term). Warehouses have no place
 *   on a Tryton invoice line; a po + po_line links the line to that purchase
 *   order line (its origin).
 * - It is created as a draft, its total compared with the document's `total`
 *   (Tryton computes taxes its own way, so the draft is the cheapest exact
 *   answer), then validated and posted. A mismatch or a refusal deletes the
 *   draft this call created (or cancels it once it has a number), so nothing
 *   wrong is ever posted. A crash between create and post leaves a draft with
 *   the natural key: lookup does not count it as written, and the next write
 *   finishes it (validate, post) instead of creating another. A draft left by
 *   someone else with a different total is refused, not deleted.
 * - A payment pays each listed invoice with the account.invoice.pay wizard
 *   (partial payments included): one account move per invoice, whose
 *   description is the payment's reference. Vendor + reference is found again
 *   through the invoices' payment lines; a payment whose invoices are only
 *   partly paid by it (a crash between two) is finished, never repeated. The
 *   payment method is the company's only one, or the one whose name holds the
 *   last four digits of the bank account (Tryton links no GL account to bank
 *   accounts). The reference returned is the first invoice's payment move.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "erp.h"
#include "err.h"
#include "sqlmap.h"
#include "tryton_rpc.h"
#include "util.h"

#define MAX_DOC_LINES 500
#define DOING_LEN     256

struct tryton {
	struct trpc *rpc; /* NULL: writes are not configured */
	char why[512];    /* then why */
};

/* A supplier invoice as Tryton has it. */
struct inv {
	int64_t id;
	char number[64], state[32], total[40], to_pay[40];
	cJSON *payment_lines; /* ids of account.move.line */
};

/* One invoice a payment pays. */
struct pay {
	const char *number, *amount_text;
	int64_t amount;
	struct inv inv;
	int64_t move; /* its payment move with the reference, 0 if none yet */
	char move_number[64];
};

static int nomem(char *err, size_t errlen)
{
	snprintf(err, errlen, "out of memory");
	return APS_ERR_NOMEM;
}

static void append(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *err, size_t errlen, const char *fmt, ...)
{
	size_t n = strlen(err);
	va_list ap;

	if (n + 1 >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
}

/* ---- JSON helpers ------------------------------------------------------------ */

static const char *dstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* A number (a Many2One id) of a row; 0 when null. */
static int64_t dnum(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static int dtrue(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsTrue(v) || (cJSON_IsNumber(v) && v->valuedouble != 0);
}

static void copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

static const char *ddec(const cJSON *o, const char *name, char buf[40])
{
	return trpc_decimal_text(cJSON_GetObjectItemCaseSensitive(o, name), buf);
}

/* A domain clause [field, op, value]; value is consumed. */
static cJSON *clause(const char *field, const char *op, cJSON *value)
{
	cJSON *c = cJSON_CreateArray();

	if (!value || !cJSON_AddItemToArray(c, cJSON_CreateString(field)) ||
	    !cJSON_AddItemToArray(c, cJSON_CreateString(op)) || !cJSON_AddItemToArray(c, value)) {
		cJSON_Delete(value);
		cJSON_Delete(c);
		return NULL;
	}
	return c;
}

static cJSON *cl_s(const char *field, const char *op, const char *v)
{
	return clause(field, op, cJSON_CreateString(v));
}

static cJSON *cl_i(const char *field, const char *op, int64_t v)
{
	return clause(field, op, cJSON_CreateNumber((double)v));
}

/* A canonical code: "#ID" (lists.sql's key of records without a code) is the
 * record's id, anything else the code column. */
static cJSON *cl_code(const char *field, const char *code)
{
	int64_t id;

	if (code[0] == '#' && !aps_parse_i64(code + 1, 1, INT64_MAX, &id))
		return cl_i("id", "=", id);
	return cl_s(field, "=", code);
}

/* A domain of n clauses (all of them, or NULL). */
static cJSON *domain(int n, ...)
{
	cJSON *d = cJSON_CreateArray(), *c;
	int i, ok = d != NULL;
	va_list ap;

	va_start(ap, n);
	for (i = 0; i < n; i++) {
		c = va_arg(ap, cJSON *);
		if (!ok || !c || !cJSON_AddItemToArray(d, c)) {
			cJSON_Delete(c);
			ok = 0;
		}
	}
	va_end(ap);
	if (!ok) {
		cJSON_Delete(d);
		return NULL;
	}
	return d;
}

static cJSON *params(int n, ...);

/* "a,b" → ["a", "b"]; with `order`, [["a", "ASC"], ["b", "ASC"]]. */
static cJSON *names(const char *csv, int order)
{
	cJSON *a = cJSON_CreateArray(), *x;
	char name[64];
	size_t n;

	while (a && *csv) {
		n = strcspn(csv, ",");
		snprintf(name, sizeof(name), "%.*s", (int)n, csv);
		x = order ? params(2, cJSON_CreateString(name), cJSON_CreateString("ASC"))
		          : cJSON_CreateString(name);
		if (!cJSON_AddItemToArray(a, x)) {
			cJSON_Delete(x);
			cJSON_Delete(a);
			return NULL;
		}
		csv += n + (csv[n] == ',');
	}
	return a;
}

/* A JSON array of n items (all of them, or NULL). */
static cJSON *params(int n, ...)
{
	cJSON *p = cJSON_CreateArray(), *x;
	int i, ok = p != NULL;
	va_list ap;

	va_start(ap, n);
	for (i = 0; i < n; i++) {
		x = va_arg(ap, cJSON *);
		if (!ok || !x || !cJSON_AddItemToArray(p, x)) {
			cJSON_Delete(x);
			ok = 0;
		}
	}
	va_end(ap);
	if (!ok) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

static cJSON *id_list(int64_t id)
{
	cJSON *a = cJSON_CreateArray();

	if (!cJSON_AddItemToArray(a, cJSON_CreateNumber((double)id))) {
		cJSON_Delete(a);
		return NULL;
	}
	return a;
}

/* ---- calls ---------------------------------------------------------------------- */

static int call(struct tryton *t, const char *doing, const char *model, const char *fn, cJSON *p,
                const cJSON *extra, cJSON **res, char *err, size_t errlen)
{
	char method[128];

	snprintf(method, sizeof(method), "model.%s.%s", model, fn);
	return trpc_call(t->rpc, doing, method, p, extra, res, err, errlen);
}

/* search_read(domain, 0, limit, order, fields); `all` also finds inactive
 * records. dom is consumed. */
static int search_read(struct tryton *t, const char *doing, const char *model, cJSON *dom,
                       const char *fields, const char *order, int limit, int all, cJSON **rows,
                       char *err, size_t errlen)
{
	cJSON *extra = NULL;
	int rc;

	*rows = NULL;
	if (all) {
		extra = cJSON_CreateObject();
		if (!cJSON_AddFalseToObject(extra, "active_test")) {
			cJSON_Delete(extra);
			cJSON_Delete(dom);
			return nomem(err, errlen);
		}
	}
	rc = call(t, doing, model, "search_read",
	          params(5, dom, cJSON_CreateNumber(0),
	                 limit ? cJSON_CreateNumber(limit) : cJSON_CreateNull(),
	                 order ? names(order, 1) : cJSON_CreateNull(), names(fields, 0)),
	          extra, rows, err, errlen);
	cJSON_Delete(extra);
	if (!rc && !cJSON_IsArray(*rows)) {
		snprintf(err, errlen, "Tryton answered no list while %s", doing);
		rc = APS_ERR_ERP;
	}
	if (rc) {
		cJSON_Delete(*rows);
		*rows = NULL;
	}
	return rc;
}

/* The first row found; APS_ERR_NOTFOUND (err untouched) when none. */
static int first(struct tryton *t, const char *doing, const char *model, cJSON *dom,
                 const char *fields, const char *order, int all, cJSON **row, char *err,
                 size_t errlen)
{
	cJSON *rows;
	int rc;

	*row = NULL;
	rc = search_read(t, doing, model, dom, fields, order, 1, all, &rows, err, errlen);
	if (rc)
		return rc;
	*row = cJSON_DetachItemFromArray(rows, 0);
	cJSON_Delete(rows);
	return *row ? APS_OK : APS_ERR_NOTFOUND;
}

static int read1(struct tryton *t, const char *doing, const char *model, int64_t id,
                 const char *fields, cJSON **row, char *err, size_t errlen)
{
	cJSON *rows = NULL;
	int rc;

	*row = NULL;
	rc = call(t, doing, model, "read", params(2, id_list(id), names(fields, 0)), NULL, &rows,
	          err, errlen);
	if (!rc && !(*row = cJSON_DetachItemFromArray(rows, 0))) {
		snprintf(err, errlen, "Tryton has no %s %lld while %s", model, (long long)id,
		         doing);
		rc = APS_ERR_NOTFOUND;
	}
	cJSON_Delete(rows);
	return rc;
}

/* A button or method on one record, e.g. account.invoice.post([id]). */
static int on_record(struct tryton *t, const char *doing, const char *model, const char *fn,
                     int64_t id, char *err, size_t errlen)
{
	cJSON *res = NULL;
	int rc;

	rc = call(t, doing, model, fn, params(1, id_list(id)), NULL, &res, err, errlen);
	cJSON_Delete(res);
	return rc;
}

/* ---- the connection and the company ---------------------------------------------- */

static void tryton_free(void *ext)
{
	struct tryton *t = ext;

	if (t)
		trpc_free(t->rpc);
	free(t);
}

static int tryton_open(const char *target, const struct erp_settings *cfg, struct erp **out,
                       char *err, size_t errlen)
{
	struct tryton *t;
	int rc;

	if (!strncmp(target, "odbc:", 5))
		rc = sqlmap_open("tryton", "odbc", target + 5, cfg, out, err, errlen);
	else
		rc = sqlmap_open("tryton", "sqlite", target, cfg, out, err, errlen);
	if (rc)
		return rc;
	t = calloc(1, sizeof(*t));
	if (!t) {
		sqlmap_close(*out);
		*out = NULL;
		return nomem(err, errlen);
	}
	/* Reads do not need the JSON-RPC settings: a missing or wrong one only
	 * stops writes, which say why. */
	if (trpc_new(cfg ? cfg->url : NULL, cfg ? cfg->user : NULL, cfg ? cfg->password_file : NULL,
	             &t->rpc, t->why, sizeof(t->why)) == APS_ERR_NOMEM) {
		free(t);
		sqlmap_close(*out);
		*out = NULL;
		return nomem(err, errlen);
	}
	sqlmap_set_ext(*out, t, tryton_free);
	return APS_OK;
}

/* The connector's state, with the Tryton user switched to the company. */
static int begin(struct erp *e, const char *company, struct tryton **t, int64_t *cid, char *err,
                 size_t errlen)
{
	*t = sqlmap_ext(e);
	if (!*t || !(*t)->rpc) {
		snprintf(err, errlen, "%s", *t ? (*t)->why : "the Tryton connector is not open");
		return APS_ERR_INVAL;
	}
	if (aps_parse_i64(company, 1, INT32_MAX, cid) || !sqlmap_company_currency(e, company)) {
		snprintf(err, errlen,
		         "company %.64s is not in Tryton (its companies are company_company ids)",
		         company);
		return APS_ERR_NOTFOUND;
	}
	return trpc_use_company((*t)->rpc, *cid, err, errlen);
}

/* ---- documents ------------------------------------------------------------------- */

static int valid_date(const char *s)
{
	cJSON *d = trpc_date(s);
	int ok = d != NULL;

	cJSON_Delete(d);
	return ok;
}

/* A decimal member; APS_ERR_NOTFOUND when absent and optional. */
static int money(const cJSON *o, const char *name, int required, const char *what, int64_t *v,
                 char *err, size_t errlen)
{
	const char *s = dstr(o, name);

	if (!s && !required)
		return APS_ERR_NOTFOUND;
	if (!s || aps_dec_parse(s, v)) {
		snprintf(err, errlen, "%s: \"%s\" %s a decimal string with at most 4 decimals",
		         what, name, s ? "is not" : "must be");
		return APS_ERR_INVAL;
	}
	return APS_OK;
}

static int check_line(const cJSON *l, int n, char *err, size_t errlen)
{
	const cJSON *pl = cJSON_GetObjectItemCaseSensitive(l, "po_line");
	char what[32];
	int64_t v;
	int rc;

	snprintf(what, sizeof(what), "line %d", n);
	if (!cJSON_IsObject(l) || (!dstr(l, "gl_account") && !dstr(l, "item"))) {
		snprintf(err, errlen, "%s has neither gl_account nor item", what);
		return APS_ERR_INVAL;
	}
	rc = money(l, "quantity", 1, what, &v, err, errlen);
	if (!rc)
		rc = money(l, "unit_price", 1, what, &v, err, errlen);
	if (!rc && pl &&
	    (!cJSON_IsNumber(pl) || pl->valuedouble < 1 || pl->valuedouble > 1e6 ||
	     pl->valuedouble != (double)(int64_t)pl->valuedouble)) {
		snprintf(err, errlen, "%s: \"po_line\" must be a line number (1, 2, …)", what);
		rc = APS_ERR_INVAL;
	}
	return rc;
}

static int check_invoice(const cJSON *doc, char *err, size_t errlen)
{
	const cJSON *lines = cJSON_GetObjectItemCaseSensitive(doc, "lines"), *l;
	const char *due = dstr(doc, "due_date");
	int64_t v;
	int rc = APS_OK, n = 0;

	if (!dstr(doc, "vendor") || !dstr(doc, "number") || !valid_date(dstr(doc, "date")) ||
	    (due && !valid_date(due)) || !cJSON_IsArray(lines) || !cJSON_GetArraySize(lines) ||
	    cJSON_GetArraySize(lines) > MAX_DOC_LINES) {
		snprintf(err, errlen,
		         "an invoice needs vendor, number, date (YYYY-MM-DD) and 1..%d lines",
		         MAX_DOC_LINES);
		return APS_ERR_INVAL;
	}
	rc = money(doc, "total", 0, "the invoice", &v, err, errlen);
	if (rc == APS_ERR_NOTFOUND)
		rc = APS_OK;
	cJSON_ArrayForEach(l, lines) {
		if (!rc)
			rc = check_line(l, ++n, err, errlen);
	}
	return rc;
}

/* The party of a vendor code, active or not. */
static int find_party(struct tryton *t, const char *vendor, int64_t *id, int *active, char *err,
                      size_t errlen)
{
	char doing[DOING_LEN];
	cJSON *row;
	int rc;

	snprintf(doing, sizeof(doing), "looking up vendor %.64s", vendor);
	rc = first(t, doing, "party.party", domain(1, cl_code("code", vendor)), "id,active", NULL,
	           1, &row, err, errlen);
	if (rc == APS_ERR_NOTFOUND)
		snprintf(err, errlen, "vendor %.64s is not in Tryton (no party has that code)",
		         vendor);
	if (!rc) {
		*id = dnum(row, "id");
		*active = dtrue(row, "active");
	}
	cJSON_Delete(row);
	return rc;
}

static void inv_free(struct inv *v)
{
	cJSON_Delete(v->payment_lines);
	memset(v, 0, sizeof(*v));
}

static int inv_set(struct inv *v, cJSON *row, char *err, size_t errlen)
{
	char buf[40];

	inv_free(v);
	v->id = dnum(row, "id");
	copy(v->number, sizeof(v->number), dstr(row, "number"));
	copy(v->state, sizeof(v->state), dstr(row, "state"));
	copy(v->total, sizeof(v->total), ddec(row, "total_amount", buf));
	copy(v->to_pay, sizeof(v->to_pay), ddec(row, "amount_to_pay", buf));
	v->payment_lines = cJSON_DetachItemFromObjectCaseSensitive(row, "payment_lines");
	if (!v->payment_lines)
		v->payment_lines = cJSON_CreateArray();
	return v->payment_lines ? APS_OK : nomem(err, errlen);
}

#define INV_FIELDS "id,number,state,total_amount,amount_to_pay,payment_lines"

static int finished(const struct inv *v)
{
	return !strcmp(v->state, "posted") || !strcmp(v->state, "paid");
}

/* The vendor's invoice `number` in the company: posted or paid first, else a
 * draft (or validated) one left behind. */
static int find_invoice(struct tryton *t, int64_t cid, int64_t party, const char *vendor,
                        const char *number, struct inv *v, char *err, size_t errlen)
{
	char doing[DOING_LEN];
	cJSON *rows, *row, *pick = NULL;
	int rc;

	snprintf(doing, sizeof(doing), "looking up invoice %.64s of vendor %.64s", number, vendor);
	rc = search_read(t, doing, "account.invoice",
	                 domain(5, cl_s("type", "=", "in"), cl_i("party", "=", party),
	                        cl_s("reference", "=", number), cl_s("state", "!=", "cancelled"),
	                        cl_i("company", "=", cid)),
	                 INV_FIELDS, "id", 0, 0, &rows, err, errlen);
	if (rc)
		return rc;
	cJSON_ArrayForEach(row, rows) {
		const char *s = dstr(row, "state");

		if (!pick || (s && (!strcmp(s, "posted") || !strcmp(s, "paid")) &&
		              !(dstr(pick, "state") && (!strcmp(dstr(pick, "state"), "posted") ||
		                                        !strcmp(dstr(pick, "state"), "paid")))))
			pick = row;
	}
	rc = pick ? inv_set(v, pick, err, errlen) : APS_ERR_NOTFOUND;
	cJSON_Delete(rows);
	return rc;
}

static int reload_invoice(struct tryton *t, struct inv *v, char *err, size_t errlen)
{
	cJSON *row;
	int rc;

	rc = first(t, "reading the invoice back", "account.invoice",
	           domain(1, cl_i("id", "=", v->id)), INV_FIELDS, NULL, 0, &row, err, errlen);
	if (rc == APS_ERR_NOTFOUND)
		snprintf(err, errlen, "invoice id %lld vanished from Tryton", (long long)v->id);
	if (!rc)
		rc = inv_set(v, row, err, errlen);
	cJSON_Delete(row);
	return rc;
}

static void invoice_ref(struct tryton *t, const struct inv *v, struct erp_doc_ref *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%lld", (long long)v->id);
	copy(out->number, sizeof(out->number), v->number);
	copy(out->state, sizeof(out->state), v->state);
	trpc_link(t->rpc, "account.invoice", v->id, out->link, sizeof(out->link));
}

/* ---- invoices: what Tryton's client would fill in ----------------------------------- */

struct head {
	int64_t company, party, address, account, journal, currency, term;
};

static int config_account(struct tryton *t, const char *field, int64_t *id, char *err,
                          size_t errlen)
{
	cJSON *row;
	int rc;

	rc = read1(t, "reading the accounting configuration", "account.configuration", 1, field,
	           &row, err, errlen);
	*id = rc ? 0 : dnum(row, field);
	cJSON_Delete(row);
	return rc;
}

static int invoice_address(struct tryton *t, const char *vendor, struct head *h, char *err,
                           size_t errlen)
{
	cJSON *row;
	int rc;

	rc = first(t, "looking up the vendor's address", "party.address",
	           domain(1, cl_i("party", "=", h->party)), "id", "sequence,id", 0, &row, err,
	           errlen);
	if (rc == APS_ERR_NOTFOUND) {
		snprintf(err, errlen,
		         "vendor %.64s has no address in Tryton, which an invoice needs: add one",
		         vendor);
		rc = APS_ERR_ERP;
	}
	h->address = rc ? 0 : dnum(row, "id");
	cJSON_Delete(row);
	return rc;
}

/* Payable account and payment term: the party's for this company, else the
 * company's default account. */
static int party_accounting(struct tryton *t, const char *vendor, struct head *h, char *err,
                            size_t errlen)
{
	cJSON *row;
	int rc;

	rc = read1(t, "reading the vendor's accounts", "party.party", h->party,
	           "account_payable,supplier_payment_term", &row, err, errlen);
	if (!rc) {
		h->account = dnum(row, "account_payable");
		h->term = dnum(row, "supplier_payment_term");
	}
	cJSON_Delete(row);
	if (!rc && !h->account)
		rc = config_account(t, "default_account_payable", &h->account, err, errlen);
	if (!rc && !h->account) {
		snprintf(err, errlen,
		         "Tryton has no payable account for vendor %.64s: set one on "
		         "the party or a default in the accounting configuration",
		         vendor);
		rc = APS_ERR_ERP;
	}
	return rc;
}

static int journal_and_currency(struct tryton *t, const cJSON *doc, struct head *h, char *err,
                                size_t errlen)
{
	const char *cur = dstr(doc, "currency");
	cJSON *row = NULL;
	int rc;

	rc = first(t, "looking up the expense journal", "account.journal",
	           domain(1, cl_s("type", "=", "expense")), "id", "id", 0, &row, err, errlen);
	if (rc == APS_ERR_NOTFOUND) {
		snprintf(err, errlen,
		         "Tryton has no journal of type expense for supplier invoices");
		rc = APS_ERR_ERP;
	}
	h->journal = rc ? 0 : dnum(row, "id");
	cJSON_Delete(row);
	row = NULL;
	if (!rc && cur) {
		rc = first(t, "looking up the invoice's currency", "currency.currency",
		           domain(1, cl_s("code", "=", cur)), "id", NULL, 0, &row, err, errlen);
		if (rc == APS_ERR_NOTFOUND)
			snprintf(err, errlen, "currency %.8s is not in Tryton", cur);
		h->currency = rc ? 0 : dnum(row, "id");
	} else if (!rc) {
		rc = read1(t, "reading the company", "company.company", h->company, "currency",
		           &row, err, errlen);
		h->currency = rc ? 0 : dnum(row, "currency");
	}
	cJSON_Delete(row);
	return rc;
}

static int resolve_head(struct tryton *t, const cJSON *doc, struct head *h, char *err,
                        size_t errlen)
{
	const char *vendor = dstr(doc, "vendor");
	int rc;

	rc = invoice_address(t, vendor, h, err, errlen);
	if (!rc)
		rc = party_accounting(t, vendor, h, err, errlen);
	if (!rc)
		rc = journal_and_currency(t, doc, h, err, errlen);
	return rc;
}

/* What a line's product brings: its unit, accounting category, name. */
struct product {
	int64_t id, unit, category;
	char name[256];
};

static int find_product(struct tryton *t, const char *item, int n, struct product *p, char *err,
                        size_t errlen)
{
	char doing[DOING_LEN];
	cJSON *row = NULL, *tmpl = NULL;
	int rc;

	snprintf(doing, sizeof(doing), "looking up item %.64s (line %d)", item, n);
	rc = first(t, doing, "product.product", domain(1, cl_code("code", item)),
	           "id,active,template,rec_name", NULL, 1, &row, err, errlen);
	if (rc == APS_ERR_NOTFOUND)
		snprintf(err, errlen, "item %.64s (line %d) is not in Tryton", item, n);
	if (!rc)
		rc = read1(t, doing, "product.template", dnum(row, "template"),
		           "active,purchasable,default_uom,purchase_uom,account_category", &tmpl,
		           err, errlen);
	if (!rc && (!dtrue(row, "active") || !dtrue(tmpl, "active"))) {
		snprintf(err, errlen, "item %.64s (line %d) is inactive in Tryton", item, n);
		rc = APS_ERR_ERP;
	} else if (!rc && !dtrue(tmpl, "purchasable")) {
		snprintf(err, errlen, "item %.64s (line %d) is not purchasable in Tryton", item, n);
		rc = APS_ERR_ERP;
	}
	if (!rc) {
		p->id = dnum(row, "id");
		p->unit = dnum(tmpl, "purchase_uom") ? dnum(tmpl, "purchase_uom")
		                                     : dnum(tmpl, "default_uom");
		p->category = dnum(tmpl, "account_category");
		copy(p->name, sizeof(p->name), dstr(row, "rec_name"));
	}
	cJSON_Delete(row);
	cJSON_Delete(tmpl);
	return rc;
}

/* The expense account and the company's supplier taxes of a product's
 * accounting category (as the client's on_change fills them in). */
static int category_defaults(struct tryton *t, int64_t cid, const struct product *p,
                             int64_t *account, cJSON **taxes, char *err, size_t errlen)
{
	cJSON *row = NULL, *ids, *rows = NULL, *r;
	int rc = APS_OK;

	*account = 0;
	*taxes = cJSON_CreateArray();
	if (!*taxes)
		return nomem(err, errlen);
	if (p->category)
		rc = read1(t, "reading the item's accounting category", "product.category",
		           p->category, "account_expense,supplier_taxes_used", &row, err, errlen);
	if (!rc && p->category) {
		*account = dnum(row, "account_expense");
		ids = cJSON_DetachItemFromObjectCaseSensitive(row, "supplier_taxes_used");
		if (cJSON_GetArraySize(ids))
			rc = search_read(
			    t, "reading the item's taxes", "account.tax",
			    domain(2, clause("id", "in", ids), cl_i("company", "=", cid)), "id",
			    "id", 0, 0, &rows, err, errlen);
		else
			cJSON_Delete(ids);
	}
	cJSON_ArrayForEach(r, rows) {
		cJSON_AddItemToArray(*taxes, cJSON_CreateNumber((double)dnum(r, "id")));
	}
	cJSON_Delete(rows);
	cJSON_Delete(row);
	if (!rc && !*account)
		rc = config_account(t, "default_category_account_expense", account, err, errlen);
	return rc;
}

static int find_account(struct tryton *t, int64_t cid, const char *code, int n, int64_t *id,
                        char *err, size_t errlen)
{
	char doing[DOING_LEN];
	cJSON *row;
	int rc;

	snprintf(doing, sizeof(doing), "looking up GL account %.64s (line %d)", code, n);
	rc = first(t, doing, "account.account",
	           domain(2, cl_code("code", code), cl_i("company", "=", cid)),
	           "id,closed,type,replaced_by", NULL, 1, &row, err, errlen);
	if (rc == APS_ERR_NOTFOUND)
		snprintf(err, errlen,
		         "GL account %.64s (line %d) is not in Tryton for company %lld", code, n,
		         (long long)cid);
	if (!rc && (dtrue(row, "closed") || dnum(row, "replaced_by") || !dnum(row, "type"))) {
		snprintf(err, errlen, "GL account %.64s (line %d) is %s in Tryton", code, n,
		         dnum(row, "type") ? "closed" : "a view account, not postable,");
		rc = APS_ERR_ERP;
	}
	*id = rc ? 0 : dnum(row, "id");
	cJSON_Delete(row);
	return rc;
}

static int find_tax(struct tryton *t, int64_t cid, const char *code, int n, int64_t *id, char *err,
                    size_t errlen)
{
	char doing[DOING_LEN];
	cJSON *row = NULL;
	int64_t v;
	int rc = APS_ERR_NOTFOUND;

	snprintf(doing, sizeof(doing), "looking up tax code %.64s (line %d)", code, n);
	if (!aps_parse_i64(code, 1, INT64_MAX, &v))
		rc = first(t, doing, "account.tax",
		           domain(2, cl_i("id", "=", v), cl_i("company", "=", cid)), "id,active",
		           NULL, 1, &row, err, errlen);
	if (rc == APS_ERR_NOTFOUND)
		snprintf(err, errlen, "tax code %.64s (line %d) is not in Tryton for company %lld",
		         code, n, (long long)cid);
	if (!rc && !dtrue(row, "active")) {
		snprintf(err, errlen, "tax code %.64s (line %d) is inactive in Tryton", code, n);
		rc = APS_ERR_ERP;
	}
	*id = rc ? 0 : dnum(row, "id");
	cJSON_Delete(row);
	return rc;
}

static int find_unit(struct tryton *t, const char *code, int n, int64_t *id, char *err,
                     size_t errlen)
{
	char doing[DOING_LEN];
	cJSON *row;
	int rc;

	snprintf(doing, sizeof(doing), "looking up unit %.64s (line %d)", code, n);
	rc = first(t, doing, "product.uom", domain(1, cl_code("symbol", code)), "id,active", "id",
	           1, &row, err, errlen);
	if (rc == APS_ERR_NOTFOUND)
		snprintf(err, errlen, "unit %.64s (line %d) is not in Tryton", code, n);
	if (!rc && !dtrue(row, "active")) {
		snprintf(err, errlen, "unit %.64s (line %d) is inactive in Tryton", code, n);
		rc = APS_ERR_ERP;
	}
	*id = rc ? 0 : dnum(row, "id");
	cJSON_Delete(row);
	return rc;
}

/* The analytic entry of a division: [["create", [{"root": R, "account": A}]]]. */
static int division(struct tryton *t, int64_t cid, const char *code, int n, cJSON **out, char *err,
                    size_t errlen)
{
	char doing[DOING_LEN];
	cJSON *row, *entry;
	int rc;

	*out = NULL;
	snprintf(doing, sizeof(doing), "looking up division %.64s (line %d)", code, n);
	rc = first(t, doing, "analytic_account.account",
	           domain(3, cl_code("code", code), cl_i("company", "=", cid),
	                  cl_s("type", "=", "normal")),
	           "id,root,state,active", NULL, 1, &row, err, errlen);
	if (rc == APS_ERR_NOTFOUND)
		snprintf(err, errlen, "division %.64s (line %d) is not in Tryton for company %lld",
		         code, n, (long long)cid);
	if (!rc && (!dtrue(row, "active") || !dstr(row, "state") ||
	            strcmp(dstr(row, "state"), "opened"))) {
		snprintf(err, errlen, "division %.64s (line %d) is %s in Tryton", code, n,
		         dtrue(row, "active") ? "not open" : "inactive");
		rc = APS_ERR_ERP;
	}
	if (!rc) {
		entry = cJSON_CreateObject();
		cJSON_AddNumberToObject(entry, "root", (double)dnum(row, "root"));
		cJSON_AddNumberToObject(entry, "account", (double)dnum(row, "id"));
		*out = params(1, params(2, cJSON_CreateString("create"), params(1, entry)));
		if (!*out)
			rc = nomem(err, errlen);
	}
	cJSON_Delete(row);
	return rc;
}

/* The id of line `line` of purchase order `po`, numbered as the
 * purchase_order_lines list numbers them (lists.sql). */
static int po_line(struct erp *e, int64_t cid, const char *po, int line, int n, int64_t *id,
                   char *err, size_t errlen)
{
	static const char sql[] =
	    "SELECT id FROM (SELECT l.id AS id, ROW_NUMBER() OVER "
	    "(ORDER BY l.sequence NULLS FIRST, l.id) AS n FROM purchase_line l "
	    "JOIN purchase_purchase p ON p.id = l.purchase "
	    "WHERE p.company = ? AND p.number = ? AND l.type = 'line') x WHERE n = ?";
	struct sqldb_stmt *st = NULL;
	int rc, row = 0;

	*id = 0;
	rc = sqldb_prepare(sqlmap_db(e), sql, &st, err, errlen);
	if (!rc)
		rc = sqldb_bind_int(st, 1, cid);
	if (!rc)
		rc = sqldb_bind_text(st, 2, po);
	if (!rc)
		rc = sqldb_bind_int(st, 3, line);
	if (!rc)
		rc = sqldb_step(st, &row, err, errlen);
	if (!rc && row)
		aps_parse_i64(sqldb_text(st, 0), 1, INT64_MAX, id);
	sqldb_finalize(st);
	if (!rc && !*id) {
		snprintf(err, errlen,
		         "line %d of purchase order %.64s (invoice line %d) is not in "
		         "Tryton for company %lld",
		         line, po, n, (long long)cid);
		rc = APS_ERR_NOTFOUND;
	}
	return rc;
}

static int add_id(cJSON *o, const char *name, int64_t id)
{
	return id && !cJSON_AddNumberToObject(o, name, (double)id);
}

/* Line `n` of the document as account.invoice.line values. */
static int line_values(struct tryton *t, struct erp *e, int64_t cid, const cJSON *l, int n,
                       cJSON *v, char *err, size_t errlen)
{
	const char *gl = dstr(l, "gl_account"), *item = dstr(l, "item"), *tax = dstr(l, "tax_code");
	const char *unit = dstr(l, "unit"), *div = dstr(l, "division"), *po = dstr(l, "po");
	const char *desc = dstr(l, "description");
	const cJSON *pl = cJSON_GetObjectItemCaseSensitive(l, "po_line");
	struct product p = {0};
	int64_t account = 0, tax_id = 0, uom = 0, origin = 0;
	cJSON *taxes = NULL, *analytic = NULL;
	char ref[64];
	int rc = APS_OK;

	if (item)
		rc = find_product(t, item, n, &p, err, errlen);
	if (!rc && item)
		rc = category_defaults(t, cid, &p, &account, &taxes, err, errlen);
	if (!rc && gl)
		rc = find_account(t, cid, gl, n, &account, err, errlen);
	if (!rc && !account) {
		snprintf(err, errlen,
		         "Tryton has no expense account for item %.64s (line %d): set "
		         "one on its accounting category",
		         item, n);
		rc = APS_ERR_ERP;
	}
	if (!rc && tax)
		rc = find_tax(t, cid, tax, n, &tax_id, err, errlen);
	if (!rc && unit)
		rc = find_unit(t, unit, n, &uom, err, errlen);
	if (!rc && div)
		rc = division(t, cid, div, n, &analytic, err, errlen);
	if (!rc && po && cJSON_IsNumber(pl))
		rc = po_line(e, cid, po, (int)pl->valuedouble, n, &origin, err, errlen);
	if (!rc && tax_id) {
		cJSON_Delete(taxes);
		taxes = id_list(tax_id);
	}
	if (!rc) {
		snprintf(ref, sizeof(ref), "purchase.line,%lld", (long long)origin);
		if (!cJSON_AddStringToObject(v, "type", "line") ||
		    !cJSON_AddNumberToObject(v, "quantity", strtod(dstr(l, "quantity"), NULL)) ||
		    !cJSON_AddItemToObject(v, "unit_price", trpc_decimal(dstr(l, "unit_price"))) ||
		    !cJSON_AddStringToObject(v, "description", desc ? desc : p.name) ||
		    add_id(v, "product", p.id) || add_id(v, "unit", uom ? uom : p.unit) ||
		    add_id(v, "account", account) ||
		    (origin && !cJSON_AddStringToObject(v, "origin", ref)))
			rc = nomem(err, errlen);
	}
	if (!rc && cJSON_GetArraySize(taxes)) {
		if (!cJSON_AddItemToObject(v, "taxes",
		                           params(1, params(2, cJSON_CreateString("add"), taxes))))
			rc = nomem(err, errlen);
		taxes = NULL;
	}
	if (!rc && analytic) {
		if (!cJSON_AddItemToObject(v, "analytic_accounts", analytic))
			rc = nomem(err, errlen);
		analytic = NULL;
	}
	cJSON_Delete(taxes);
	cJSON_Delete(analytic);
	return rc;
}

static int head_values(const cJSON *doc, const struct head *h, cJSON *v, char *err, size_t errlen)
{
	const char *desc = dstr(doc, "description"), *due = dstr(doc, "due_date");

	if (!cJSON_AddStringToObject(v, "type", "in") || add_id(v, "company", h->company) ||
	    add_id(v, "party", h->party) || add_id(v, "invoice_address", h->address) ||
	    add_id(v, "account", h->account) || add_id(v, "journal", h->journal) ||
	    add_id(v, "currency", h->currency) ||
	    !cJSON_AddStringToObject(v, "reference", dstr(doc, "number")) ||
	    !cJSON_AddItemToObject(v, "description",
	                           desc ? cJSON_CreateString(desc) : cJSON_CreateNull()) ||
	    !cJSON_AddItemToObject(v, "invoice_date", trpc_date(dstr(doc, "date"))))
		return nomem(err, errlen);
	/* A due date stands for the payment term: no term, and that date. */
	if (due ? !cJSON_AddNullToObject(v, "payment_term") ||
	              !cJSON_AddItemToObject(v, "payment_term_date", trpc_date(due))
	        : h->term && add_id(v, "payment_term", h->term))
		return nomem(err, errlen);
	return APS_OK;
}

/* Creates the invoice as a draft: *id. */
static int create_invoice(struct tryton *t, struct erp *e, const cJSON *doc, const struct head *h,
                          int64_t *id, char *err, size_t errlen)
{
	const cJSON *l;
	cJSON *v = cJSON_CreateObject(), *lines = cJSON_CreateArray(), *x, *res = NULL;
	char doing[DOING_LEN];
	int rc = v && lines ? APS_OK : nomem(err, errlen), n = 0;

	cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(doc, "lines")) {
		if (rc)
			break;
		x = cJSON_CreateObject();
		if (!cJSON_AddItemToArray(lines, x)) {
			cJSON_Delete(x);
			rc = nomem(err, errlen);
			break;
		}
		rc = line_values(t, e, h->company, l, ++n, x, err, errlen);
	}
	if (!rc)
		rc = head_values(doc, h, v, err, errlen);
	if (!rc) {
		if (!cJSON_AddItemToObject(
		        v, "lines", params(1, params(2, cJSON_CreateString("create"), lines))))
			rc = nomem(err, errlen);
		lines = NULL;
	}
	cJSON_Delete(lines);
	if (rc) {
		cJSON_Delete(v);
		return rc;
	}
	snprintf(doing, sizeof(doing), "creating invoice %.64s of vendor %.64s",
	         dstr(doc, "number"), dstr(doc, "vendor"));
	rc = call(t, doing, "account.invoice", "create", params(1, params(1, v)), NULL, &res, err,
	          errlen);
	x = cJSON_GetArrayItem(res, 0);
	if (!rc && !cJSON_IsNumber(x)) {
		snprintf(err, errlen, "Tryton created no invoice while %s", doing);
		rc = APS_ERR_ERP;
	}
	*id = rc ? 0 : (int64_t)x->valuedouble;
	cJSON_Delete(res);
	return rc;
}

static int search_ids(struct tryton *t, const char *doing, const char *model, cJSON *dom,
                      cJSON **ids, char *err, size_t errlen)
{
	int rc;

	rc = call(t, doing, model, "search",
	          params(4, dom, cJSON_CreateNumber(0), cJSON_CreateNull(), cJSON_CreateNull()),
	          NULL, ids, err, errlen);
	if (!rc && !cJSON_IsArray(*ids)) {
		snprintf(err, errlen, "Tryton answered no list while %s", doing);
		rc = APS_ERR_ERP;
	}
	return rc;
}

/* Deleting an invoice leaves its lines' analytic entries behind, pointing at
 * nothing: delete them first (where the analytic modules are installed). */
static void drop_analytic(struct tryton *t, int64_t id)
{
	cJSON *lines = NULL, *origins = cJSON_CreateArray(), *ids = NULL, *res = NULL;
	const cJSON *l;
	char why[256], ref[64];

	if (!search_ids(t, "reading the draft's lines", "account.invoice.line",
	                domain(1, cl_i("invoice", "=", id)), &lines, why, sizeof(why))) {
		cJSON_ArrayForEach(l, lines) {
			snprintf(ref, sizeof(ref), "account.invoice.line,%lld",
			         (long long)l->valuedouble);
			cJSON_AddItemToArray(origins, cJSON_CreateString(ref));
		}
	}
	cJSON_Delete(lines);
	if (!cJSON_GetArraySize(origins)) {
		cJSON_Delete(origins);
		return;
	}
	if (!search_ids(t, "reading the draft's analytic entries", "analytic.account.entry",
	                domain(1, clause("origin", "in", origins)), &ids, why, sizeof(why)) &&
	    cJSON_GetArraySize(ids)) {
		call(t, "deleting the draft's analytic entries", "analytic.account.entry", "delete",
		     params(1, ids), NULL, &res, why, sizeof(why));
		ids = NULL;
	}
	cJSON_Delete(ids);
	cJSON_Delete(res);
}

/* Removes an invoice this call created: deleted while it has no number,
 * else cancelled. Says so in err. */
static void drop_invoice(struct tryton *t, int64_t id, char *err, size_t errlen)
{
	char why[256];

	drop_analytic(t, id);
	if (!on_record(t, "deleting the draft", "account.invoice", "delete", id, why,
	               sizeof(why))) {
		append(err, errlen, "; nothing was posted");
		return;
	}
	if (!on_record(t, "cancelling the invoice", "account.invoice", "cancel", id, why,
	               sizeof(why))) {
		append(err, errlen, "; nothing was posted and the invoice (id %lld) was cancelled",
		       (long long)id);
		return;
	}
	append(err, errlen, "; the unposted invoice (id %lld) could not be removed: %s",
	       (long long)id, why);
}

/* Compares Tryton's total with the document's, when it has one. */
static int check_total(const cJSON *doc, const struct inv *v, char *err, size_t errlen)
{
	const char *want = dstr(doc, "total");
	int64_t a, b;

	if (!want || (!aps_dec_parse(want, &a) && !aps_dec_parse(v->total, &b) && a == b))
		return APS_OK;
	snprintf(err, errlen,
	         "total_mismatch: Tryton computes %s (lines and taxes) for invoice "
	         "%.64s of vendor %.64s but the document says %s",
	         v->total[0] ? v->total : "no total", dstr(doc, "number"), dstr(doc, "vendor"),
	         want);
	return APS_ERR_ERP;
}

/* A draft's taxes are computed when it is written (Invoice.write runs
 * update_taxes on drafts), not when it is created: write it, read it back. */
static int update_taxes(struct tryton *t, const cJSON *doc, struct inv *v, char *err, size_t errlen)
{
	cJSON *vals = cJSON_CreateObject(), *res = NULL;
	int rc;

	if (!cJSON_AddStringToObject(vals, "reference", dstr(doc, "number"))) {
		cJSON_Delete(vals);
		return nomem(err, errlen);
	}
	rc = call(t, "computing the invoice's taxes", "account.invoice", "write",
	          params(2, id_list(v->id), vals), NULL, &res, err, errlen);
	cJSON_Delete(res);
	return rc ? rc : reload_invoice(t, v, err, errlen);
}

/* Validates and posts a draft (created now, or left by a crash). */
static int finish_invoice(struct tryton *t, const cJSON *doc, struct inv *v, int created, char *err,
                          size_t errlen)
{
	char doing[DOING_LEN];
	int rc = APS_OK;

	snprintf(doing, sizeof(doing), "posting invoice %.64s of vendor %.64s", dstr(doc, "number"),
	         dstr(doc, "vendor"));
	if (!strcmp(v->state, "draft"))
		rc = update_taxes(t, doc, v, err, errlen);
	if (!rc)
		rc = check_total(doc, v, err, errlen);
	if (!rc && !strcmp(v->state, "draft"))
		rc = on_record(t, doing, "account.invoice", "validate_invoice", v->id, err, errlen);
	if (!rc)
		rc = on_record(t, doing, "account.invoice", "post", v->id, err, errlen);
	if (!rc)
		return reload_invoice(t, v, err, errlen);
	if (rc == APS_ERR_ERP && created)
		drop_invoice(t, v->id, err, errlen);
	else if (rc == APS_ERR_ERP)
		append(err, errlen,
		       "; the unposted invoice found in Tryton (id %lld) was left as "
		       "it is: correct or delete it there",
		       (long long)v->id);
	return rc;
}

static int tryton_write_invoice(struct erp *e, const char *company, const cJSON *doc,
                                struct erp_doc_ref *out, char *err, size_t errlen)
{
	const char *vendor = dstr(doc, "vendor"), *number = dstr(doc, "number");
	struct head h = {0};
	struct inv v = {0};
	struct tryton *t;
	int rc, active = 0, created = 0;

	rc = check_invoice(doc, err, errlen);
	if (!rc)
		rc = begin(e, company, &t, &h.company, err, errlen);
	if (!rc)
		rc = find_party(t, vendor, &h.party, &active, err, errlen);
	if (!rc) {
		/* Exactly once: written meanwhile, or left unposted by a crash. */
		rc = find_invoice(t, h.company, h.party, vendor, number, &v, err, errlen);
		if (!rc && finished(&v)) {
			invoice_ref(t, &v, out);
			goto out;
		}
		if (rc == APS_ERR_NOTFOUND) {
			rc = APS_OK;
			created = 1;
		}
	}
	if (!rc && created && !active) {
		snprintf(err, errlen, "vendor %.64s is inactive in Tryton", vendor);
		rc = APS_ERR_ERP;
	}
	if (!rc && created)
		rc = resolve_head(t, doc, &h, err, errlen);
	if (!rc && created)
		rc = create_invoice(t, e, doc, &h, &v.id, err, errlen);
	if (!rc && created)
		copy(v.state, sizeof(v.state), "draft");
	if (!rc)
		rc = finish_invoice(t, doc, &v, created, err, errlen);
	if (!rc)
		invoice_ref(t, &v, out);
out:
	inv_free(&v);
	return rc;
}

static int lookup_invoice(struct erp *e, const char *company, const cJSON *doc,
                          struct erp_doc_ref *out, char *err, size_t errlen)
{
	const char *vendor = dstr(doc, "vendor"), *number = dstr(doc, "number");
	struct inv v = {0};
	struct tryton *t;
	int64_t cid, party;
	int rc, active;

	if (!vendor || !number) {
		snprintf(err, errlen, "the invoice lacks its natural key (vendor and number)");
		return APS_ERR_INVAL;
	}
	rc = begin(e, company, &t, &cid, err, errlen);
	if (!rc)
		rc = find_party(t, vendor, &party, &active, err, errlen);
	if (!rc)
		rc = find_invoice(t, cid, party, vendor, number, &v, err, errlen);
	if (rc == APS_ERR_NOTFOUND)
		snprintf(err, errlen, "invoice %.64s of vendor %.64s is not in Tryton", number,
		         vendor);
	if (!rc && !finished(&v)) {
		/* Not written until posted: writing it finishes this one. */
		snprintf(err, errlen,
		         "invoice %.64s of vendor %.64s is in Tryton unposted (%s, id "
		         "%lld): writing it posts that one",
		         number, vendor, v.state, (long long)v.id);
		rc = APS_ERR_NOTFOUND;
	}
	if (!rc)
		invoice_ref(t, &v, out);
	inv_free(&v);
	return rc;
}

/* ---- payments ------------------------------------------------------------------------- */

static void pays_free(struct pay *p, int n)
{
	int i;

	for (i = 0; p && i < n; i++)
		inv_free(&p[i].inv);
	free(p);
}

/* The document's invoices, checked: *np of them. */
static int check_payment(const cJSON *doc, struct pay **out, int *np, char *err, size_t errlen)
{
	const cJSON *invs = cJSON_GetObjectItemCaseSensitive(doc, "invoices"), *it;
	struct pay *p;
	int64_t amount, sum = 0;
	int rc, i, n = 0;

	*out = NULL;
	*np = 0;
	if (!dstr(doc, "vendor") || !dstr(doc, "reference") || !valid_date(dstr(doc, "date")) ||
	    !dstr(doc, "bank_account") || !cJSON_IsArray(invs) || !cJSON_GetArraySize(invs) ||
	    cJSON_GetArraySize(invs) > MAX_DOC_LINES) {
		snprintf(err, errlen,
		         "a payment needs vendor, reference, date (YYYY-MM-DD), "
		         "bank_account, amount and the 1..%d invoices it pays",
		         MAX_DOC_LINES);
		return APS_ERR_INVAL;
	}
	rc = money(doc, "amount", 1, "the payment", &amount, err, errlen);
	if (rc)
		return rc;
	p = calloc((size_t)cJSON_GetArraySize(invs), sizeof(*p));
	if (!p)
		return nomem(err, errlen);
	cJSON_ArrayForEach(it, invs) {
		p[n].number = dstr(it, "number");
		p[n].amount_text = dstr(it, "amount");
		if (!p[n].number) {
			snprintf(err, errlen, "paid invoice %d lacks its number", n + 1);
			rc = APS_ERR_INVAL;
		}
		if (!rc)
			rc = money(it, "amount", 1, p[n].number, &p[n].amount, err, errlen);
		if (!rc && p[n].amount <= 0) {
			snprintf(err, errlen, "%.64s: the amount paid must be more than 0",
			         p[n].number);
			rc = APS_ERR_INVAL;
		}
		for (i = 0; !rc && i < n; i++)
			if (!strcmp(p[i].number, p[n].number)) {
				snprintf(err, errlen, "invoice %.64s is listed twice", p[n].number);
				rc = APS_ERR_INVAL;
			}
		if (rc)
			break;
		sum += p[n++].amount;
	}
	if (!rc && sum != amount) {
		char a[32], b[32];

		snprintf(err, errlen,
		         "the payment's amount %s is not the sum %s of what it pays on "
		         "each invoice",
		         aps_dec_format(amount, 2, a), aps_dec_format(sum, 2, b));
		rc = APS_ERR_INVAL;
	}
	if (rc) {
		free(p);
		return rc;
	}
	*out = p;
	*np = n;
	return APS_OK;
}

/* The invoice's payment move whose description is the reference, if any. */
static int find_payment_move(struct tryton *t, struct pay *p, const char *ref, char *err,
                             size_t errlen)
{
	cJSON *row = NULL, *move = NULL;
	int rc;

	p->move = 0;
	p->move_number[0] = '\0';
	if (!cJSON_GetArraySize(p->inv.payment_lines))
		return APS_OK;
	rc = first(t, "looking up the payment", "account.move.line",
	           domain(2, clause("id", "in", cJSON_Duplicate(p->inv.payment_lines, 1)),
	                  cl_s("move.description", "=", ref)),
	           "move", "id", 0, &row, err, errlen);
	if (rc == APS_ERR_NOTFOUND)
		return APS_OK;
	if (!rc)
		rc = read1(t, "reading the payment", "account.move", dnum(row, "move"),
		           "number,post_number", &move, err, errlen);
	if (!rc) {
		p->move = dnum(row, "move");
		copy(p->move_number, sizeof(p->move_number),
		     dstr(move, "post_number") ? dstr(move, "post_number") : dstr(move, "number"));
	}
	cJSON_Delete(row);
	cJSON_Delete(move);
	return rc;
}

/* Finds each invoice and what this payment already paid of it; *done: how
 * many are paid by it. */
static int load_payment(struct tryton *t, int64_t cid, const cJSON *doc, struct pay *p, int n,
                        int *done, char *err, size_t errlen)
{
	const char *vendor = dstr(doc, "vendor"), *ref = dstr(doc, "reference");
	int64_t party;
	int rc, i, active;

	*done = 0;
	rc = find_party(t, vendor, &party, &active, err, errlen);
	for (i = 0; !rc && i < n; i++) {
		rc = find_invoice(t, cid, party, vendor, p[i].number, &p[i].inv, err, errlen);
		if (rc == APS_ERR_NOTFOUND)
			snprintf(err, errlen, "invoice %.64s of vendor %.64s is not in Tryton",
			         p[i].number, vendor);
		if (!rc)
			rc = find_payment_move(t, &p[i], ref, err, errlen);
		if (!rc && p[i].move)
			(*done)++;
	}
	return rc;
}

static void payment_ref(struct tryton *t, const struct pay *p, int n, struct erp_doc_ref *out)
{
	int i, paid = 1;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++)
		paid &= !strcmp(p[i].inv.state, "paid");
	snprintf(out->id, sizeof(out->id), "%lld", (long long)p[0].move);
	copy(out->number, sizeof(out->number), p[0].move_number);
	copy(out->state, sizeof(out->state), paid ? "paid" : "posted");
	trpc_link(t->rpc, "account.move", p[0].move, out->link, sizeof(out->link));
}

/* Each invoice still to pay can take what is paid on it. */
static int check_payable(const cJSON *doc, const struct pay *p, int n, char *err, size_t errlen)
{
	const char *vendor = dstr(doc, "vendor");
	int64_t left;
	int i;

	for (i = 0; i < n; i++) {
		if (p[i].move)
			continue;
		if (!strcmp(p[i].inv.state, "paid")) {
			snprintf(err, errlen,
			         "invoice %.64s of vendor %.64s is already paid in Tryton",
			         p[i].number, vendor);
			return APS_ERR_ERP;
		}
		if (strcmp(p[i].inv.state, "posted")) {
			snprintf(err, errlen,
			         "invoice %.64s of vendor %.64s is not posted in Tryton "
			         "(%s), so it cannot be paid",
			         p[i].number, vendor, p[i].inv.state);
			return APS_ERR_ERP;
		}
		if (aps_dec_parse(p[i].inv.to_pay, &left) || p[i].amount > left) {
			snprintf(err, errlen,
			         "paying %s on invoice %.64s of vendor %.64s is more than "
			         "the %s left to pay in Tryton",
			         p[i].amount_text, p[i].number, vendor, p[i].inv.to_pay);
			return APS_ERR_ERP;
		}
	}
	return APS_OK;
}

/* The last four digits of a bank account's first number. */
static int bank_last4(struct tryton *t, const cJSON *account, char last4[5], char *err,
                      size_t errlen)
{
	const cJSON *nums = cJSON_GetObjectItemCaseSensitive(account, "numbers");
	const char *s;
	cJSON *row = NULL;
	int rc = APS_OK, k = 4;
	size_t i;

	last4[0] = '\0';
	if (cJSON_IsNumber(cJSON_GetArrayItem(nums, 0)))
		rc = read1(t, "reading the bank account's number", "bank.account.number",
		           (int64_t)cJSON_GetArrayItem(nums, 0)->valuedouble, "number", &row, err,
		           errlen);
	s = rc ? NULL : dstr(row, "number");
	last4[4] = '\0';
	for (i = s ? strlen(s) : 0; i > 0 && k > 0; i--)
		if (s[i - 1] >= '0' && s[i - 1] <= '9')
			last4[--k] = s[i - 1];
	if (k)
		last4[0] = '\0';
	cJSON_Delete(row);
	return rc;
}

/* The company's bank account and the payment method to pay from it. */
static int payment_method(struct tryton *t, int64_t cid, const char *bank, int64_t *method,
                          char *err, size_t errlen)
{
	cJSON *acc = NULL, *co = NULL, *rows = NULL, *r;
	const cJSON *o;
	char last4[5] = "";
	int64_t id = 0, owner;
	int rc = APS_ERR_NOTFOUND, found = 0, n = 0;

	*method = 0;
	if (!aps_parse_i64(bank, 1, INT64_MAX, &id))
		rc = first(t, "looking up the bank account", "bank.account",
		           domain(1, cl_i("id", "=", id)), "id,active,owners,numbers", NULL, 1,
		           &acc, err, errlen);
	if (!rc)
		rc = read1(t, "reading the company", "company.company", cid, "party", &co, err,
		           errlen);
	owner = dnum(co, "party");
	cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(acc, "owners")) {
		found |= cJSON_IsNumber(o) && (int64_t)o->valuedouble == owner;
	}
	if (rc == APS_ERR_NOTFOUND || (!rc && !found)) {
		snprintf(err, errlen, "bank account %.64s is not in Tryton for company %lld", bank,
		         (long long)cid);
		rc = APS_ERR_NOTFOUND;
	} else if (!rc && !dtrue(acc, "active")) {
		snprintf(err, errlen, "bank account %.64s is inactive in Tryton", bank);
		rc = APS_ERR_ERP;
	}
	if (!rc)
		rc = search_read(t, "looking up the payment methods",
		                 "account.invoice.payment.method",
		                 domain(1, cl_i("company", "=", cid)), "id,name", "id", 0, 0, &rows,
		                 err, errlen);
	if (!rc && cJSON_GetArraySize(rows) > 1)
		rc = bank_last4(t, acc, last4, err, errlen);
	cJSON_ArrayForEach(r, rows) {
		const char *name = dstr(r, "name");

		if (cJSON_GetArraySize(rows) == 1 || (last4[0] && name && strstr(name, last4))) {
			*method = dnum(r, "id");
			n++;
		}
	}
	if (!rc && !cJSON_GetArraySize(rows)) {
		snprintf(err, errlen,
		         "Tryton has no invoice payment method for company %lld: add "
		         "one for bank account %.64s",
		         (long long)cid, bank);
		rc = APS_ERR_ERP;
	} else if (!rc && n != 1) {
		snprintf(
		    err, errlen,
		    "Tryton has several invoice payment methods for company %lld "
		    "and not exactly one whose name holds the last four digits of bank account "
		    "%.64s (%s): put them in the name of the one to use",
		    (long long)cid, bank, last4[0] ? last4 : "it has no number");
		rc = APS_ERR_ERP;
	}
	cJSON_Delete(acc);
	cJSON_Delete(co);
	cJSON_Delete(rows);
	return rc;
}

/* A wizard form's values without the "field." display entries. */
static cJSON *form(const cJSON *result)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(result, "view"), "defaults");
	cJSON *f = cJSON_CreateObject();
	const cJSON *x;

	cJSON_ArrayForEach(x, d) {
		if (!strchr(x->string, '.') &&
		    !cJSON_AddItemToObject(f, x->string, cJSON_Duplicate(x, 1))) {
			cJSON_Delete(f);
			return NULL;
		}
	}
	return f;
}

static const char *view_state(const cJSON *result)
{
	return dstr(cJSON_GetObjectItemCaseSensitive(result, "view"), "state");
}

/* Executes a state of the wizard with its forms: {"start": …[, "ask": …]}. */
static int execute(struct tryton *t, const char *doing, int64_t wid, const cJSON *start,
                   const cJSON *ask, const char *state, const cJSON *extra, cJSON **res, char *err,
                   size_t errlen)
{
	cJSON *data = cJSON_CreateObject();

	if ((start && !cJSON_AddItemToObject(data, "start", cJSON_Duplicate(start, 1))) ||
	    (ask && !cJSON_AddItemToObject(data, "ask", cJSON_Duplicate(ask, 1)))) {
		cJSON_Delete(data);
		data = NULL;
	}
	return trpc_call(
	    t->rpc, doing, "wizard.account.invoice.pay.execute",
	    params(3, cJSON_CreateNumber((double)wid), data, cJSON_CreateString(state)), extra, res,
	    err, errlen);
}

/* The pay wizard's forms once started: amount, date, method, reference. */
static int pay_forms(struct tryton *t, const char *doing, int64_t wid, const cJSON *extra,
                     const struct pay *p, const cJSON *doc, int64_t method, cJSON **res, char *err,
                     size_t errlen)
{
	cJSON *start = NULL, *ask = NULL, *r = NULL;
	const char *s;
	int rc;

	*res = NULL;
	rc = execute(t, doing, wid, NULL, NULL, "start", extra, &r, err, errlen);
	if (!rc) {
		start = form(r);
		cJSON_DeleteItemFromObjectCaseSensitive(start, "payment_method");
		cJSON_DeleteItemFromObjectCaseSensitive(start, "date");
		cJSON_DeleteItemFromObjectCaseSensitive(start, "description");
		cJSON_DeleteItemFromObjectCaseSensitive(start, "amount");
		if (!cJSON_AddNumberToObject(start, "payment_method", (double)method) ||
		    !cJSON_AddItemToObject(start, "date", trpc_date(dstr(doc, "date"))) ||
		    !cJSON_AddStringToObject(start, "description", dstr(doc, "reference")) ||
		    !cJSON_AddItemToObject(start, "amount", trpc_decimal(p->amount_text)))
			rc = nomem(err, errlen);
	}
	cJSON_Delete(r);
	r = NULL;
	if (!rc)
		rc = execute(t, doing, wid, start, NULL, "choice", extra, &r, err, errlen);
	s = rc ? NULL : view_state(r);
	if (s && !strcmp(s, "ask")) {
		/* Less than what is left: Tryton asks whether it is partial. */
		ask = form(r);
		if (!ask || !dstr(ask, "type") || strcmp(dstr(ask, "type"), "partial")) {
			snprintf(err, errlen,
			         "Tryton does not take %s on invoice %.64s as a partial payment",
			         p->amount_text, p->number);
			rc = APS_ERR_ERP;
		}
		cJSON_Delete(r);
		r = NULL;
		if (!rc)
			rc = execute(t, doing, wid, start, ask, "pay", extra, &r, err, errlen);
	}
	cJSON_Delete(start);
	cJSON_Delete(ask);
	*res = r;
	return rc;
}

/* Pays one invoice with the account.invoice.pay wizard. */
static int pay_invoice(struct tryton *t, const struct pay *p, const cJSON *doc, int64_t method,
                       char *err, size_t errlen)
{
	cJSON *extra = cJSON_CreateObject(), *res = NULL, *ids = id_list(p->inv.id);
	char doing[DOING_LEN], why[256];
	int64_t wid = 0;
	int rc;

	snprintf(doing, sizeof(doing), "paying invoice %.64s of vendor %.64s", p->number,
	         dstr(doc, "vendor") ? dstr(doc, "vendor") : "");
	if (!ids || !cJSON_AddStringToObject(extra, "active_model", "account.invoice") ||
	    !cJSON_AddNumberToObject(extra, "active_id", (double)p->inv.id) ||
	    !cJSON_AddItemToObject(extra, "active_ids", ids)) {
		cJSON_Delete(extra);
		return nomem(err, errlen);
	}
	rc = trpc_call(t->rpc, doing, "wizard.account.invoice.pay.create", cJSON_CreateArray(),
	               extra, &res, err, errlen);
	if (!rc && !cJSON_IsNumber(cJSON_GetArrayItem(res, 0))) {
		snprintf(err, errlen, "Tryton started no payment wizard while %s", doing);
		rc = APS_ERR_ERP;
	}
	if (!rc)
		wid = (int64_t)cJSON_GetArrayItem(res, 0)->valuedouble;
	cJSON_Delete(res);
	res = NULL;
	if (!rc)
		rc = pay_forms(t, doing, wid, extra, p, doc, method, &res, err, errlen);
	cJSON_Delete(res);
	res = NULL;
	if (wid) {
		/* Always end the wizard's session, also after an error. */
		trpc_call(t->rpc, doing, "wizard.account.invoice.pay.delete",
		          params(1, cJSON_CreateNumber((double)wid)), extra, &res, why,
		          sizeof(why));
		cJSON_Delete(res);
	}
	cJSON_Delete(extra);
	return rc;
}

static int tryton_write_payment(struct erp *e, const char *company, const cJSON *doc,
                                struct erp_doc_ref *out, char *err, size_t errlen)
{
	const char *ref = dstr(doc, "reference");
	struct pay *p = NULL;
	struct tryton *t;
	int64_t cid, method = 0;
	int rc, n = 0, done = 0, i;

	rc = check_payment(doc, &p, &n, err, errlen);
	if (!rc)
		rc = begin(e, company, &t, &cid, err, errlen);
	if (!rc)
		rc = load_payment(t, cid, doc, p, n, &done, err, errlen);
	if (!rc && done < n) {
		/* Exactly once: only the invoices this payment has not paid yet. */
		rc = check_payable(doc, p, n, err, errlen);
		if (!rc)
			rc =
			    payment_method(t, cid, dstr(doc, "bank_account"), &method, err, errlen);
		for (i = 0; !rc && i < n; i++) {
			if (p[i].move)
				continue;
			rc = pay_invoice(t, &p[i], doc, method, err, errlen);
			if (!rc)
				rc = reload_invoice(t, &p[i].inv, err, errlen);
			if (!rc)
				rc = find_payment_move(t, &p[i], ref, err, errlen);
			if (!rc && !p[i].move) {
				snprintf(err, errlen,
				         "Tryton shows no payment %.64s on invoice %.64s "
				         "after paying it",
				         ref, p[i].number);
				rc = APS_ERR_ERP;
			}
		}
	}
	if (!rc)
		payment_ref(t, p, n, out);
	pays_free(p, n);
	return rc;
}

static int lookup_payment(struct erp *e, const char *company, const cJSON *doc,
                          struct erp_doc_ref *out, char *err, size_t errlen)
{
	const char *vendor = dstr(doc, "vendor"), *ref = dstr(doc, "reference");
	struct pay *p = NULL;
	struct tryton *t;
	int64_t cid;
	int rc, n = 0, done = 0;

	rc = check_payment(doc, &p, &n, err, errlen);
	if (!rc)
		rc = begin(e, company, &t, &cid, err, errlen);
	if (!rc)
		rc = load_payment(t, cid, doc, p, n, &done, err, errlen);
	if (!rc && done < n) {
		if (done)
			snprintf(err, errlen,
			         "payment %.64s of vendor %.64s is in Tryton for %d of "
			         "its %d invoices: writing it pays the others",
			         ref, vendor, done, n);
		else
			snprintf(err, errlen, "payment %.64s of vendor %.64s is not in Tryton", ref,
			         vendor);
		rc = APS_ERR_NOTFOUND;
	}
	if (!rc)
		payment_ref(t, p, n, out);
	pays_free(p, n);
	return rc;
}

static int tryton_lookup(struct erp *e, const char *company, const cJSON *doc,
                         struct erp_doc_ref *out, char *err, size_t errlen)
{
	const char *type = dstr(doc, "type");

	if (type && !strcmp(type, "invoice"))
		return lookup_invoice(e, company, doc, out, err, errlen);
	if (type && !strcmp(type, "payment"))
		return lookup_payment(e, company, doc, out, err, errlen);
	snprintf(err, errlen, "the document is neither an invoice nor a payment");
	return APS_ERR_INVAL;
}

const struct erp_ops erp_tryton_ops = {
    .scheme = "tryton",
    .description = "Tryton 6.0 (tryton:PATH.sqlite or tryton:odbc:CONNECTION)",
    .open = tryton_open,
    .close = sqlmap_close,
    .identity = sqlmap_identity,
    .count = sqlmap_count,
    .clock = sqlmap_clock,
    .read = sqlmap_read,
    .stamped = sqlmap_stamped,
    .fingerprint = sqlmap_fingerprint,
    .write_invoice = tryton_write_invoice,
    .write_payment = tryton_write_payment,
    .lookup = tryton_lookup,
};
