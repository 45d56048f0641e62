/*
 * The demo ERP connector (scheme "demo", target = the path of a file made by
 * demo_erp_generate()): maps the file's ERP-native tables, codes and local
 * timestamps onto the canonical lists of proto/LISTS.md.
 *
 * Each list is a table of column expressions (demo_lists below); the SELECT
 * of a read is built from it once per (list, order, bounds given) and kept
 * prepared for the life of the connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "db.h"
#include "decimal.h"
#include "demo.h"
#include "erp.h"
#include "err.h"
#include "util.h"

#define LOCAL_TS_LEN    23 /* "YYYY-MM-DD HH:MM:SS.mmm" */
#define ISO_TS_LEN      29 /* "YYYY-MM-DDTHH:MM:SS.mmm-05:00" */
#define MAX_COLS        32
#define BUSY_TIMEOUT_MS 5000

/* Purchase order types the demo ERP's import profile syncs (as Sage 100). */
#define IMPORTED_PO_TYPES      "('S', 'D')"
#define IMPORTED_PO_TYPE_NAMES "standard,drop_ship"

/* ---- the mapping -------------------------------------------------------- */

struct code_map {
	const char *code, *name;
};

static const struct code_map status_map[] = {{"A", "active"}, {"I", "inactive"}, {NULL, NULL}};
static const struct code_map account_type_map[] = {{"A", "asset"},   {"L", "liability"},
                                                   {"Q", "equity"},  {"I", "income"},
                                                   {"E", "expense"}, {NULL, NULL}};
static const struct code_map item_type_map[] = {
    {"I", "inventory"}, {"N", "non_inventory"}, {"S", "service"}, {NULL, NULL}};
static const struct code_map po_type_map[] = {
    {"S", "standard"}, {"D", "drop_ship"}, {"R", "repair"}, {"M", "master"}, {NULL, NULL}};
static const struct code_map po_status_map[] = {{"N", "new"},         {"O", "open"},
                                                {"B", "backordered"}, {"C", "completed"},
                                                {"X", "cancelled"},   {NULL, NULL}};

enum kind {
	K_TEXT,     /* text or NULL, as is */
	K_TS,       /* local time text → ISO 8601 with the ERP's offset */
	K_FLAG,     /* 0/1 → false/true */
	K_MAP,      /* an ERP code → its canonical name */
	K_NULL,     /* a column the ERP does not have */
	K_CURRENCY, /* the company's currency */
	K_PO_LINES, /* the PO number → its lines as a JSON array */
	K_RC_LINES, /* the receipt number → its lines as a JSON array */
	K_PAY_LINES, /* the payment number → the invoices it pays as a JSON array */
};

struct col {
	const char *expr; /* SQL over the list's table, aliased t */
	enum kind kind;
	const struct code_map *map;
};

/* clang-format off */
#define TXT(e) {e, K_TEXT, NULL}
#define TS(e) {e, K_TS, NULL}
#define MAP(e, m) {e, K_MAP, m}
#define NUL {"NULL", K_NULL, NULL}
/* clang-format on */

static const struct col vendor_cols[] = {
    TXT("t.vendor_no"),  TXT("t.name"),       MAP("t.status", status_map),
    TXT("t.address1"),   TXT("t.address2"),   TXT("t.city"),
    TXT("t.state"),      TXT("t.zip"),        NUL,
    TXT("t.phone"),      TXT("t.email"),      TXT("t.tax_id"),
    TXT("t.terms_code"), TXT("t.currency"),   {"t.separate_check", K_FLAG, NULL},
    TS("t.created_at"),  TS("t.modified_at"),
};
static const struct col gl_cols[] = {
    TXT("t.account_no"),         TXT("t.description"), MAP("t.account_type", account_type_map),
    MAP("t.status", status_map), TS("t.created_at"),   TS("t.modified_at"),
};
static const struct col item_cols[] = {
    TXT("t.item_no"),   TXT("t.description"),   MAP("t.item_type", item_type_map),
    TXT("t.unit_code"), TXT("t.standard_cost"), MAP("t.status", status_map),
    TS("t.created_at"), TS("t.modified_at"),
};
static const struct col tax_cols[] = {
    TXT("t.tax_code"),           TXT("t.description"), TXT("t.rate"),
    MAP("t.status", status_map), TS("t.created_at"),   TS("t.modified_at"),
};
static const struct col unit_cols[] = {
    TXT("t.unit_code"), TXT("t.description"), MAP("t.status", status_map),
    TS("t.created_at"), TS("t.modified_at"),
};
static const struct col warehouse_cols[] = {
    TXT("t.warehouse_code"),
    TXT("t.name"),
    TXT("t.address1"),
    TXT("t.city"),
    TXT("t.state"),
    TXT("t.zip"),
    NUL,
    MAP("t.status", status_map),
    TS("t.created_at"),
    TS("t.modified_at"),
};
static const struct col division_cols[] = {
    TXT("t.division_no"), TXT("t.name"),       MAP("t.status", status_map),
    TS("t.created_at"),   TS("t.modified_at"),
};
/* Only the last four digits of an account number are ever read. */
static const struct col bank_cols[] = {
    TXT("t.bank_code"), TXT("t.name"),       TXT("substr(t.account_number, -4)"),
    TXT("t.currency"),  TXT("t.gl_account"), MAP("t.status", status_map),
    TS("t.created_at"), TS("t.modified_at"),
};
static const struct col sepchk_cols[] = {
    TXT("t.vendor_no"),
    TXT("t.name"),
    MAP("t.status", status_map),
    TS("t.modified_at"),
};
static const struct col po_cols[] = {
    TXT("t.po_no"),
    MAP("t.po_type", po_type_map),
    MAP("t.status", po_status_map),
    TXT("t.vendor_no"),
    TXT("t.order_date"),
    TXT("t.warehouse_code"),
    TXT("t.division_no"),
    {"NULL", K_CURRENCY, NULL},
    TXT("t.total"),
    {"t.po_no", K_PO_LINES, NULL},
    TS("t.created_at"),
    TS("t.modified_at"),
};
static const struct col receipt_cols[] = {
    TXT("t.receipt_no"),
    TXT("t.po_no"),
    TXT("t.vendor_no"),
    TXT("t.receipt_date"),
    {"t.receipt_no", K_RC_LINES, NULL},
    TS("t.created_at"),
    TS("t.modified_at"),
};

static const struct code_map pay_status_map[] = {{"P", "posted"}, {"V", "void"}, {NULL, NULL}};
static const struct col payment_cols[] = {
    TXT("t.payment_no"),
    TXT("t.vendor_no"),
    TXT("t.reference"),
    TXT("t.payment_date"),
    TXT("t.bank_code"),
    TXT("t.method"),
    TXT("t.amount"),
    {"NULL", K_CURRENCY, NULL},
    {"t.payment_no", K_PAY_LINES, NULL},
    MAP("t.status", pay_status_map),
    TS("t.created_at"),
    TS("t.modified_at"),
};

struct demo_list {
	const char *name;   /* canonical */
	const char *table;  /* aliased t */
	const char *key;    /* key column of t */
	const char *filter; /* more of the WHERE clause, or NULL */
	const struct col *cols;
	int ncols;
};

/* clang-format off */
#define LIST(n, tab, key, filter, cols) {n, tab, key, filter, cols, (int)APS_ARRAY_LEN(cols)}
/* clang-format on */

static const struct demo_list demo_lists[] = {
    LIST("bank_accounts", "bank_accounts", "bank_code", NULL, bank_cols),
    LIST("divisions", "divisions", "division_no", NULL, division_cols),
    LIST("gl_accounts", "gl_accounts", "account_no", NULL, gl_cols),
    LIST("items", "items", "item_no", NULL, item_cols),
    LIST("separate_checks", "vendors", "vendor_no", "t.separate_check = 1", sepchk_cols),
    LIST("tax_codes", "tax_codes", "tax_code", NULL, tax_cols),
    LIST("units", "units", "unit_code", NULL, unit_cols),
    LIST("vendors", "vendors", "vendor_no", NULL, vendor_cols),
    LIST("warehouses", "warehouses", "warehouse_code", NULL, warehouse_cols),
    LIST("purchase_orders", "po_headers", "po_no", "t.po_type IN " IMPORTED_PO_TYPES, po_cols),
    LIST("receivings", "receipts", "receipt_no",
         "EXISTS (SELECT 1 FROM po_headers p WHERE p.company_code = t.company_code"
         " AND p.po_no = t.po_no AND p.po_type IN " IMPORTED_PO_TYPES ")",
         receipt_cols),
    /* payments made in the ERP (by apsync's exports or by hand): last, and only
     * in files that have the AP tables */
    LIST("payments", "ap_payments", "payment_no", NULL, payment_cols),
};
#define PAYMENTS_LIST (NLISTS - 1)

#define NLISTS ((int)APS_ARRAY_LEN(demo_lists))

/* Bounds of a read, as bits: which parameters its statement has. */
#define B_AFTER 0x1
#define B_FROM  0x2
#define B_TO    0x4
#define NBOUNDS 8

static const char po_lines_sql[] =
    "SELECT line_no, item_no, description, qty_ordered, qty_received, unit_code, unit_cost,"
    " gl_account FROM po_lines WHERE company_code = ?1 AND po_no = ?2 ORDER BY line_no";
static const char rc_lines_sql[] =
    "SELECT line_no, po_line_no, item_no, qty_received, unit_cost FROM receipt_lines"
    " WHERE company_code = ?1 AND receipt_no = ?2 ORDER BY line_no";
static const char pay_lines_sql[] =
    "SELECT i.invoice_no, l.amount FROM ap_payment_lines l JOIN ap_invoices i ON"
    " i.invoice_id = l.invoice_id JOIN ap_payments p ON p.payment_id = l.payment_id"
    " WHERE p.company_code = ?1 AND p.payment_no = ?2 ORDER BY i.invoice_no";
static const char lock_sql[] =
    "SELECT user_name, reason, since FROM locks WHERE company_code = ?1 LIMIT 1";

/* ---- the connection ----------------------------------------------------- */

struct company {
	char code[64], name[128], currency[8];
};

struct erp {
	sqlite3 *db;
	char *path; /* owned */
	char product[64], version[32];
	int offset_min; /* local time minus UTC, minutes */
	char offset[8]; /* "-05:00" */
	int ncompanies;
	struct company companies[ERP_MAX_COMPANIES];
	/* Prepared once, finalized at close; NULL until first needed. */
	sqlite3_stmt *read_st[APS_ARRAY_LEN(demo_lists)][2][NBOUNDS];
	sqlite3_stmt *count_st[APS_ARRAY_LEN(demo_lists)];
	sqlite3_stmt *po_lines_st, *rc_lines_st, *pay_lines_st, *lock_st;
	int has_ap; /* the file has the AP tables (files made before them do not) */
	sqlite3 *wdb; /* for writes, opened at the first one */
	/* Scratch for the row being handed over: values point here. */
	char ts[MAX_COLS][ISO_TS_LEN + 8];
	struct aps_buf lines;
};

/* A bounded string builder: `over` is set if anything did not fit. */
struct sb {
	char *p;
	size_t len, n;
	int over;
};

__attribute__((format(printf, 2, 3))) static void sb_add(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->over)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->n, b->len - b->n, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->len - b->n)
		b->over = 1;
	else
		b->n += (size_t)n;
}

/* A failed sqlite call: busy → APS_ERR_BUSY, damage → APS_ERR_DB, with a sentence. */
static int db_fail(struct erp *e, int src, const char *what, char *err, size_t errlen)
{
	switch (src & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		snprintf(err, errlen,
		         "the demo ERP file %s is busy (another program is writing "
		         "it) while %s; the sync will retry",
		         e->path, what);
		return APS_ERR_BUSY;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		snprintf(err, errlen,
		         "%s is not a SQLite database or is damaged (%s while %s); "
		         "make a new one with `apsync-agent demo-erp --out PATH`",
		         e->path, sqlite3_errstr(src), what);
		return APS_ERR_DB;
	default:
		snprintf(err, errlen, "cannot read the demo ERP file %s while %s: %s", e->path,
		         what, sqlite3_errmsg(e->db));
		return APS_ERR_DB;
	}
}

static int prepare(struct erp *e, const char *sql, sqlite3_stmt **st, const char *what, char *err,
                   size_t errlen)
{
	int src = sqlite3_prepare_v3(e->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);

	if (src == SQLITE_OK)
		return APS_OK;
	*st = NULL;
	if ((src & 0xff) == SQLITE_ERROR) {
		/* A table or column is missing: not the file the generator writes. */
		snprintf(err, errlen,
		         "%s is not a complete apsync demo ERP file (%s while %s); "
		         "make a new one with `apsync-agent demo-erp --out PATH`",
		         e->path, sqlite3_errmsg(e->db), what);
		return APS_ERR_ERP;
	}
	return db_fail(e, src, what, err, errlen);
}

/* Copies text into a fixed field; APS_ERR_ERP if it does not fit or is missing. */
static int copy_field(struct erp *e, char *dst, size_t len, const unsigned char *src,
                      const char *what, char *err, size_t errlen)
{
	size_t n = src ? strlen((const char *)src) : 0;

	if (!src || n == 0 || n >= len) {
		snprintf(err, errlen, "the demo ERP file %s is damaged: %s is %s", e->path, what,
		         !src || !n ? "empty" : "too long");
		return APS_ERR_ERP;
	}
	memcpy(dst, src, n + 1);
	return APS_OK;
}

static int load_info(struct erp *e, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *k, *v;
	int rc = APS_OK, src, have_offset = 0;

	src = sqlite3_prepare_v2(e->db, "SELECT key, value FROM erp_info", -1, &st, NULL);
	if ((src & 0xff) == SQLITE_ERROR) {
		snprintf(err, errlen,
		         "%s is a SQLite database but not an apsync demo ERP file (it "
		         "has no erp_info table); point --erp demo:PATH at a file made by "
		         "`apsync-agent demo-erp --out PATH`",
		         e->path);
		rc = APS_ERR_ERP;
		goto out;
	}
	if (src != SQLITE_OK) {
		rc = db_fail(e, src, "opening it", err, errlen);
		goto out;
	}
	while ((src = sqlite3_step(st)) == SQLITE_ROW && !rc) {
		k = sqlite3_column_text(st, 0);
		v = sqlite3_column_text(st, 1);
		if (!k || !v)
			continue;
		if (!strcmp((const char *)k, "product")) {
			if (strcmp((const char *)v, DEMO_ERP_PRODUCT)) {
				snprintf(err, errlen,
				         "%s is not an apsync demo ERP file (its product "
				         "is \"%.64s\"); point --erp demo:PATH at a file made by "
				         "`apsync-agent demo-erp --out PATH`",
				         e->path, v);
				rc = APS_ERR_ERP;
			} else {
				rc = copy_field(e, e->product, sizeof(e->product), v, "the product",
				                err, errlen);
			}
		} else if (!strcmp((const char *)k, "version")) {
			rc = copy_field(e, e->version, sizeof(e->version), v, "the version", err,
			                errlen);
		} else if (!strcmp((const char *)k, "utc_offset")) {
			if (aps_utc_offset_parse((const char *)v, &e->offset_min)) {
				snprintf(err, errlen,
				         "the demo ERP file %s is damaged: its utc_offset "
				         "\"%.16s\" is not of the form -05:00",
				         e->path, v);
				rc = APS_ERR_ERP;
			} else {
				memcpy(e->offset, v, 7);
				have_offset = 1;
			}
		}
	}
	if (rc)
		goto out;
	if (src != SQLITE_DONE) {
		rc = db_fail(e, src, "reading erp_info", err, errlen);
		goto out;
	}
	if (!e->product[0] || !have_offset || !e->version[0]) {
		snprintf(err, errlen,
		         "%s is not an apsync demo ERP file (erp_info lacks the %s); "
		         "make a new one with `apsync-agent demo-erp --out PATH`",
		         e->path,
		         !e->product[0] ? "product"
		         : !have_offset ? "utc_offset"
		                        : "version");
		rc = APS_ERR_ERP;
		goto out;
	}
	if (strcmp(e->version, "1") && strncmp(e->version, "1.", 2)) {
		snprintf(err, errlen,
		         "the demo ERP file %s has version %s; this agent reads "
		         "version 1 files: make a new one with `apsync-agent demo-erp --out PATH`",
		         e->path, e->version);
		rc = APS_ERR_ERP;
	}
out:
	sqlite3_finalize(st);
	return rc;
}

static int load_companies(struct erp *e, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	struct company *c;
	int rc, src;

	rc = prepare(e, "SELECT company_code, name, currency FROM companies ORDER BY company_code",
	             &st, "listing the companies", err, errlen);
	if (rc)
		goto out;
	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		if (e->ncompanies == ERP_MAX_COMPANIES) {
			snprintf(err, errlen, "the demo ERP file %s has more than %d companies",
			         e->path, ERP_MAX_COMPANIES);
			rc = APS_ERR_ERP;
			goto out;
		}
		c = &e->companies[e->ncompanies++];
		rc = copy_field(e, c->code, sizeof(c->code), sqlite3_column_text(st, 0),
		                "a company code", err, errlen);
		if (!rc)
			rc = copy_field(e, c->name, sizeof(c->name), sqlite3_column_text(st, 1),
			                "a company name", err, errlen);
		if (!rc)
			rc = copy_field(e, c->currency, sizeof(c->currency),
			                sqlite3_column_text(st, 2), "a company currency", err,
			                errlen);
		if (rc)
			goto out;
	}
	if (src != SQLITE_DONE) {
		rc = db_fail(e, src, "listing the companies", err, errlen);
		goto out;
	}
	if (!e->ncompanies) {
		snprintf(err, errlen,
		         "the demo ERP file %s has no companies; make a new one with "
		         "`apsync-agent demo-erp --out PATH`",
		         e->path);
		rc = APS_ERR_ERP;
	}
out:
	sqlite3_finalize(st);
	return rc;
}

static void demo_close(struct erp *e)
{
	size_t i, j, k;

	if (!e)
		return;
	for (i = 0; i < APS_ARRAY_LEN(e->read_st); i++) {
		for (j = 0; j < 2; j++)
			for (k = 0; k < NBOUNDS; k++)
				sqlite3_finalize(e->read_st[i][j][k]);
		sqlite3_finalize(e->count_st[i]);
	}
	sqlite3_finalize(e->po_lines_st);
	sqlite3_finalize(e->rc_lines_st);
	sqlite3_finalize(e->pay_lines_st);
	sqlite3_finalize(e->lock_st);
	sqlite3_close(e->wdb);
	sqlite3_close(e->db);
	aps_buf_free(&e->lines);
	free(e->path);
	free(e);
}

static int prepare_counts(struct erp *e, char *err, size_t errlen)
{
	char sql[512];
	struct sb b;
	int i, rc = APS_OK;

	for (i = 0; i < NLISTS && !rc; i++) {
		if (i == PAYMENTS_LIST && !e->has_ap)
			continue;
		b = (struct sb){sql, sizeof(sql), 0, 0};
		sb_add(&b, "SELECT count(*) FROM %s t WHERE t.company_code = ?1",
		       demo_lists[i].table);
		if (demo_lists[i].filter)
			sb_add(&b, " AND %s", demo_lists[i].filter);
		if (b.over) {
			snprintf(err, errlen, "internal error: the count of %s does not fit",
			         demo_lists[i].name);
			return APS_ERR_INTERNAL;
		}
		rc = prepare(e, sql, &e->count_st[i], "preparing to count", err, errlen);
	}
	return rc;
}

static int demo_open(const char *target, const struct erp_settings *cfg, struct erp **out,
                     char *err, size_t errlen)
{
	const struct erp_list *cl;
	struct erp *e = NULL;
	struct stat st;
	int rc, src, i;

	*out = NULL;
	if (!target || !*target) {
		snprintf(err, errlen,
		         "no demo ERP file given: use --erp demo:PATH, with a file made "
		         "by `apsync-agent demo-erp --out PATH`");
		return APS_ERR_INVAL;
	}
	/* The mapping must match the canonical lists column for column. */
	for (i = 0; i < NLISTS; i++) {
		cl = erp_list_find(demo_lists[i].name);
		if (!cl || cl->ncols != demo_lists[i].ncols || demo_lists[i].ncols > MAX_COLS) {
			snprintf(err, errlen,
			         "internal error: the demo ERP's mapping of %s does not "
			         "match the canonical list",
			         demo_lists[i].name);
			return APS_ERR_INTERNAL;
		}
	}
	if (stat(target, &st)) {
		if (errno == ENOENT) {
			snprintf(err, errlen,
			         "the demo ERP file %s does not exist; make one with "
			         "`apsync-agent demo-erp --out %s`",
			         target, target);
			return APS_ERR_NOTFOUND;
		}
		snprintf(err, errlen, "cannot read the demo ERP file %s: %s", target,
		         strerror(errno));
		return APS_ERR_IO;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen,
		         "%s is not a file; point --erp demo:PATH at a file made by "
		         "`apsync-agent demo-erp --out PATH`",
		         target);
		return APS_ERR_ERP;
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->path = strdup(target))) {
		snprintf(err, errlen, "out of memory opening the demo ERP file %s", target);
		rc = APS_ERR_NOMEM;
		goto out;
	}
	src = sqlite3_open_v2(target, &e->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (src != SQLITE_OK) {
		rc = db_fail(e, src, "opening it", err, errlen);
		goto out;
	}
	sqlite3_extended_result_codes(e->db, 1);
	sqlite3_busy_timeout(e->db, BUSY_TIMEOUT_MS);
	rc = load_info(e, err, errlen);
	if (!rc)
		rc = load_companies(e, err, errlen);
	if (!rc) {
		sqlite3_stmt *t = NULL;

		if (sqlite3_prepare_v2(e->db, "SELECT 1 FROM sqlite_master WHERE name = 'ap_payments'",
		                       -1, &t, NULL) == SQLITE_OK)
			e->has_ap = sqlite3_step(t) == SQLITE_ROW;
		sqlite3_finalize(t);
	}
	if (!rc)
		rc = prepare_counts(e, err, errlen);
	if (!rc && e->has_ap)
		rc = prepare(e, pay_lines_sql, &e->pay_lines_st, "preparing to read", err, errlen);
	if (!rc)
		rc = prepare(e, po_lines_sql, &e->po_lines_st, "preparing to read", err, errlen);
	if (!rc)
		rc = prepare(e, rc_lines_sql, &e->rc_lines_st, "preparing to read", err, errlen);
	if (!rc)
		rc = prepare(e, lock_sql, &e->lock_st, "preparing to read", err, errlen);
out:
	if (rc) {
		demo_close(e);
		return rc;
	}
	*out = e;
	return APS_OK;
}

static int demo_identity(struct erp *e, struct erp_identity *id, char *err, size_t errlen)
{
	struct erp_company *c;
	int i, j;

	memset(id, 0, sizeof(*id));
	snprintf(id->product, sizeof(id->product), "%s", e->product);
	snprintf(id->version, sizeof(id->version), "%s", e->version);
	for (i = 0; i < e->ncompanies; i++) {
		c = &id->companies[i];
		memcpy(c->code, e->companies[i].code, sizeof(c->code));
		memcpy(c->name, e->companies[i].name, sizeof(c->name));
		memcpy(c->currency, e->companies[i].currency, sizeof(c->currency));
		for (j = 0; j < NLISTS && c->nlists < ERP_MAX_LISTS; j++)
			if (j != PAYMENTS_LIST || e->has_ap)
				c->lists[c->nlists++] = demo_lists[j].name;
		c->po_types = IMPORTED_PO_TYPE_NAMES;
	}
	id->ncompanies = e->ncompanies;
	return APS_OK;
}

/* Finds the list and company of a request and refuses a locked company. */
static int find_target(struct erp *e, const char *company, const char *list, int *li,
                       const struct company **co, char *err, size_t errlen)
{
	char codes_buf[256] = "";
	struct sb codes = {codes_buf, sizeof(codes_buf), 0, 0};
	const unsigned char *user, *reason, *since;
	int i, rc = APS_OK, src;

	for (*li = -1, i = 0; list && i < NLISTS; i++)
		if (!strcmp(demo_lists[i].name, list) && (i != PAYMENTS_LIST || e->has_ap))
			*li = i;
	if (*li < 0) {
		snprintf(
		    err, errlen,
		    "the demo ERP has no list \"%.64s\" (it offers bank_accounts, "
		    "divisions, gl_accounts, items, separate_checks, tax_codes, units, vendors, "
		    "warehouses, purchase_orders and receivings)",
		    list ? list : "");
		return APS_ERR_NOTFOUND;
	}
	for (*co = NULL, i = 0; company && i < e->ncompanies; i++)
		if (!strcmp(e->companies[i].code, company))
			*co = &e->companies[i];
	if (!*co) {
		for (i = 0; i < e->ncompanies; i++)
			sb_add(&codes, "%s%s", i ? ", " : "", e->companies[i].code);
		snprintf(
		    err, errlen,
		    "company \"%.64s\" is not in the demo ERP file %s (it has %s%s); check the "
		    "company code",
		    company ? company : "", e->path, codes_buf, codes.over ? ", …" : "");
		return APS_ERR_NOTFOUND;
	}
	sqlite3_bind_text(e->lock_st, 1, company, -1, SQLITE_STATIC);
	src = sqlite3_step(e->lock_st);
	if (src == SQLITE_ROW) {
		user = sqlite3_column_text(e->lock_st, 0);
		reason = sqlite3_column_text(e->lock_st, 1);
		since = sqlite3_column_text(e->lock_st, 2);
		snprintf(err, errlen,
		         "company %s is locked by user '%.64s' (%.128s) since %.32s; "
		         "the sync will retry",
		         company, user ? (const char *)user : "?",
		         reason ? (const char *)reason : "no reason given",
		         since ? (const char *)since : "?");
		rc = APS_ERR_BUSY;
	} else if (src != SQLITE_DONE) {
		rc = db_fail(e, src, "checking the company's lock", err, errlen);
	}
	sqlite3_reset(e->lock_st);
	sqlite3_clear_bindings(e->lock_st);
	return rc;
}

static int demo_count(struct erp *e, const char *company, const char *list, int64_t *n, char *err,
                      size_t errlen)
{
	const struct company *co;
	sqlite3_stmt *st;
	int rc, src, li;

	*n = 0;
	rc = find_target(e, company, list, &li, &co, err, errlen);
	if (rc)
		return rc;
	st = e->count_st[li];
	sqlite3_bind_text(st, 1, company, -1, SQLITE_STATIC);
	src = sqlite3_step(st);
	if (src == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	else
		rc = db_fail(e, src, "counting", err, errlen);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* A request's ISO 8601 time → the ERP's local text "YYYY-MM-DD HH:MM:SS.mmm". */
static int to_local(const struct erp *e, const char *iso, const char *what,
                    char out[LOCAL_TS_LEN + 1], char *err, size_t errlen)
{
	int64_t ms;
	time_t secs;
	struct tm tm;
	int frac;

	if (aps_time_parse(iso, &ms)) {
		snprintf(err, errlen,
		         "%s \"%.64s\" is not an ISO 8601 time such as "
		         "2024-05-01T10:22:33.120-05:00",
		         what, iso);
		return APS_ERR_INVAL;
	}
	ms += (int64_t)e->offset_min * 60000;
	secs = (time_t)(ms / 1000 - (ms % 1000 < 0));
	if (!gmtime_r(&secs, &tm) || tm.tm_year < 1000 - 1900 || tm.tm_year > 9999 - 1900) {
		snprintf(err, errlen, "%s \"%.64s\" is out of range", what, iso);
		return APS_ERR_RANGE;
	}
	frac = (int)(((ms % 1000) + 1000) % 1000);
	if (strftime(out, LOCAL_TS_LEN + 1, "%Y-%m-%d %H:%M:%S", &tm) != LOCAL_TS_LEN - 4) {
		snprintf(err, errlen, "%s \"%.64s\" is out of range", what, iso);
		return APS_ERR_RANGE;
	}
	out[19] = '.';
	out[20] = (char)('0' + frac / 100);
	out[21] = (char)('0' + frac / 10 % 10);
	out[22] = (char)('0' + frac % 10);
	out[23] = '\0';
	return APS_OK;
}

static int read_stmt(struct erp *e, int li, enum erp_order order, unsigned mask, sqlite3_stmt **out,
                     char *err, size_t errlen)
{
	const struct demo_list *l = &demo_lists[li];
	sqlite3_stmt **slot = &e->read_st[li][order][mask];
	char sql[2048];
	struct sb b = {sql, sizeof(sql), 0, 0};
	int i, rc;

	if (*slot) {
		*out = *slot;
		return APS_OK;
	}
	sb_add(&b, "SELECT ");
	for (i = 0; i < l->ncols; i++)
		sb_add(&b, "%s%s", i ? ", " : "", l->cols[i].expr);
	sb_add(&b, " FROM %s t WHERE t.company_code = :co", l->table);
	if (l->filter)
		sb_add(&b, " AND %s", l->filter);
	if ((mask & B_AFTER) && order == ERP_ORDER_KEY)
		sb_add(&b, " AND t.%s > :ak", l->key);
	if ((mask & B_AFTER) && order == ERP_ORDER_MODIFIED)
		sb_add(&b, " AND (t.modified_at, t.%s) > (:am, :ak)", l->key);
	if (mask & B_FROM)
		sb_add(&b, " AND t.modified_at >= :mf");
	if (mask & B_TO)
		sb_add(&b, " AND t.modified_at < :mt");
	if (order == ERP_ORDER_KEY)
		sb_add(&b, " ORDER BY t.%s LIMIT :lim", l->key);
	else
		sb_add(&b, " ORDER BY t.modified_at, t.%s LIMIT :lim", l->key);
	if (b.over) {
		snprintf(err, errlen, "internal error: the query of %s does not fit", l->name);
		return APS_ERR_INTERNAL;
	}
	rc = prepare(e, sql, slot, "preparing to read", err, errlen);
	*out = *slot;
	return rc;
}

static int bind_named(sqlite3_stmt *st, const char *name, const char *val)
{
	int i = sqlite3_bind_parameter_index(st, name);

	if (!i)
		return SQLITE_OK;
	return sqlite3_bind_text(st, i, val, -1, SQLITE_TRANSIENT);
}

/* A text column as a JSON string, or null. */
static cJSON *json_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? cJSON_CreateString((const char *)s) : cJSON_CreateNull();
}

/* Adds to obj, consuming v; 0 if v is NULL (out of memory) or adding failed. */
static int add(cJSON *obj, const char *name, cJSON *v)
{
	if (!v)
		return 0;
	if (!cJSON_AddItemToObject(obj, name, v)) {
		cJSON_Delete(v);
		return 0;
	}
	return 1;
}

static int lines_json(struct erp *e, enum kind kind, const char *company, const char *no,
                      struct aps_buf *out, char *err, size_t errlen)
{
	int po = kind == K_PO_LINES;
	sqlite3_stmt *st = po ? e->po_lines_st
	                   : kind == K_RC_LINES ? e->rc_lines_st
	                                        : e->pay_lines_st;
	cJSON *arr = cJSON_CreateArray(), *o;
	char *text;
	int rc = APS_OK, src, ok;

	out->len = 0;
	if (!arr)
		return APS_ERR_NOMEM;
	sqlite3_bind_text(st, 1, company, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, no, -1, SQLITE_TRANSIENT);
	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			rc = APS_ERR_NOMEM;
			goto out;
		}
		if (kind == K_PAY_LINES) {
			if (!add(o, "number", json_text(st, 0)) || !add(o, "amount", json_text(st, 1))) {
				rc = APS_ERR_NOMEM;
				goto out;
			}
			continue;
		}
		ok = add(o, "line", cJSON_CreateNumber((double)sqlite3_column_int64(st, 0)));
		if (po) {
			ok = ok && add(o, "item", json_text(st, 1)) &&
			     add(o, "description", json_text(st, 2)) &&
			     add(o, "quantity", json_text(st, 3)) &&
			     add(o, "received", json_text(st, 4)) &&
			     add(o, "unit", json_text(st, 5)) &&
			     add(o, "unit_cost", json_text(st, 6)) &&
			     add(o, "gl_account", json_text(st, 7));
		} else {
			ok = ok &&
			     add(o, "po_line",
			         cJSON_CreateNumber((double)sqlite3_column_int64(st, 1))) &&
			     add(o, "item", json_text(st, 2)) &&
			     add(o, "quantity", json_text(st, 3)) &&
			     add(o, "unit_cost", json_text(st, 4));
		}
		if (!ok) {
			rc = APS_ERR_NOMEM;
			goto out;
		}
	}
	if (src != SQLITE_DONE)
		rc = db_fail(e, src, po ? "reading purchase order lines" : "reading receipt lines",
		             err, errlen);
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc) {
		if (rc == APS_ERR_NOMEM)
			snprintf(err, errlen, "out of memory reading the demo ERP file %s",
			         e->path);
		cJSON_Delete(arr);
		return rc;
	}
	/* The lines travel as one compact JSON value, valid until the next row. */
	text = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	rc = text ? aps_buf_append_str(out, text) : APS_ERR_NOMEM;
	if (!rc)
		rc = aps_buf_terminate(out);
	cJSON_free(text);
	if (rc)
		snprintf(err, errlen, "out of memory reading the demo ERP file %s", e->path);
	return rc;
}

static int damaged(struct erp *e, const struct demo_list *l, sqlite3_stmt *st, int col, char *err,
                   size_t errlen)
{
	const unsigned char *key = sqlite3_column_text(st, 0);
	const unsigned char *v = sqlite3_column_text(st, col);

	snprintf(err, errlen,
	         "the demo ERP file %s is damaged: %s %.64s has %s \"%.32s\", which "
	         "the demo ERP does not define",
	         e->path, l->name, key ? (const char *)key : "?", l->cols[col].expr + 2,
	         v ? (const char *)v : "NULL");
	return APS_ERR_ERP;
}

/* Builds the canonical values of the current row into vals[0..ncols). */
static int row_values(struct erp *e, const struct demo_list *l, const struct company *co,
                      sqlite3_stmt *st, struct aps_value *vals, char *err, size_t errlen)
{
	const struct code_map *m;
	const unsigned char *s;
	char *ts;
	int i, rc = APS_OK;

	memset(vals, 0, sizeof(*vals) * (size_t)l->ncols);
	for (i = 0; i < l->ncols && !rc; i++) {
		switch (l->cols[i].kind) {
		case K_TEXT:
			s = sqlite3_column_text(st, i);
			vals[i].type = s ? APS_V_TEXT : APS_V_NULL;
			vals[i].s = (const char *)s;
			break;
		case K_TS:
			s = sqlite3_column_text(st, i);
			if (!s)
				break; /* null */
			if (sqlite3_column_bytes(st, i) != LOCAL_TS_LEN || s[10] != ' ') {
				rc = damaged(e, l, st, i, err, errlen);
				break;
			}
			/* local time text + the ERP's offset, in the row's scratch space */
			ts = e->ts[i];
			memcpy(ts, s, LOCAL_TS_LEN);
			ts[10] = 'T';
			memcpy(ts + LOCAL_TS_LEN, e->offset, 7);
			vals[i].type = APS_V_TEXT;
			vals[i].s = ts;
			break;
		case K_FLAG:
			vals[i].type = sqlite3_column_int(st, i) ? APS_V_TRUE : APS_V_FALSE;
			break;
		case K_MAP:
			s = sqlite3_column_text(st, i);
			for (m = l->cols[i].map; s && m->code && strcmp(m->code, (const char *)s);
			     m++)
				;
			if (!s || !m->code) {
				rc = damaged(e, l, st, i, err, errlen);
			} else {
				vals[i].type = APS_V_TEXT;
				vals[i].s = m->name;
			}
			break;
		case K_NULL:
			break;
		case K_CURRENCY:
			vals[i].type = APS_V_TEXT;
			vals[i].s = co->currency;
			break;
		case K_PO_LINES:
		case K_RC_LINES:
		case K_PAY_LINES:
			s = sqlite3_column_text(st, i);
			rc = lines_json(e, l->cols[i].kind, co->code,
			                s ? (const char *)s : "", &e->lines, err, errlen);
			vals[i].type = APS_V_JSON;
			vals[i].s = (const char *)e->lines.data;
			break;
		}
	}
	return rc;
}

static int demo_read(struct erp *e, const struct erp_read *req, erp_row_fn fn, void *ud, int *nread,
                     char *err, size_t errlen)
{
	char am[LOCAL_TS_LEN + 1], mf[LOCAL_TS_LEN + 1], mt[LOCAL_TS_LEN + 1];
	const struct company *co;
	const struct demo_list *l;
	sqlite3_stmt *st = NULL;
	struct aps_value vals[MAX_COLS];
	unsigned mask = 0;
	int rc, src = SQLITE_OK, li, n = 0;

	*nread = 0;
	rc = find_target(e, req->company, req->list, &li, &co, err, errlen);
	if (rc)
		goto out;
	l = &demo_lists[li];
	if (req->order != ERP_ORDER_KEY && req->order != ERP_ORDER_MODIFIED) {
		snprintf(err, errlen, "internal error: unknown read order %d", (int)req->order);
		rc = APS_ERR_INVAL;
		goto out;
	}
	if (req->limit < 1) {
		snprintf(err, errlen, "internal error: a read of %s asks for %d rows", l->name,
		         req->limit);
		rc = APS_ERR_INVAL;
		goto out;
	}
	if (req->order == ERP_ORDER_MODIFIED && !req->after_key != !req->after_modified) {
		snprintf(err, errlen,
		         "internal error: a read of %s by modification time resumes "
		         "from a key and a time together, not one of them",
		         l->name);
		rc = APS_ERR_INVAL;
		goto out;
	}
	if (req->after_key)
		mask |= B_AFTER;
	if (req->order == ERP_ORDER_MODIFIED && req->after_modified)
		rc = to_local(e, req->after_modified, "the resume time", am, err, errlen);
	if (!rc && req->modified_from) {
		mask |= B_FROM;
		rc = to_local(e, req->modified_from, "the window start", mf, err, errlen);
	}
	if (!rc && req->modified_to) {
		mask |= B_TO;
		rc = to_local(e, req->modified_to, "the window end", mt, err, errlen);
	}
	if (!rc)
		rc = read_stmt(e, li, req->order, mask, &st, err, errlen);
	if (rc)
		goto out;
	src = bind_named(st, ":co", req->company);
	if (src == SQLITE_OK && (mask & B_AFTER))
		src = bind_named(st, ":ak", req->after_key);
	if (src == SQLITE_OK && (mask & B_AFTER) && req->order == ERP_ORDER_MODIFIED)
		src = bind_named(st, ":am", am);
	if (src == SQLITE_OK && (mask & B_FROM))
		src = bind_named(st, ":mf", mf);
	if (src == SQLITE_OK && (mask & B_TO))
		src = bind_named(st, ":mt", mt);
	if (src == SQLITE_OK)
		src = sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":lim"), req->limit);
	if (src != SQLITE_OK) {
		rc = db_fail(e, src, "preparing to read", err, errlen);
		goto out;
	}
	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		rc = row_values(e, l, co, st, vals, err, errlen);
		if (rc)
			goto out;
		n++;
		if (fn(ud, vals))
			break;
	}
	if (src != SQLITE_ROW && src != SQLITE_DONE)
		rc = db_fail(e, src, "reading", err, errlen);
out:
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	*nread = n;
	return rc;
}

/* The demo ERP is a file: its clock is the machine's, at the file's offset. */
static int demo_clock(struct erp *e, char out[40], char *err, size_t errlen)
{
	char iso[APS_TIME_LEN];

	(void)err;
	(void)errlen;
	snprintf(out, 40, "%s", aps_time_format_offset(aps_now_ms(), e->offset_min, iso));
	return APS_OK;
}

/* ---- writes: invoices and payments into the demo ERP's AP tables -------- */

#define MAX_DOC_LINES 500

static const char *doc_str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static int wfail(struct erp *e, int src, const char *what, char *err, size_t errlen)
{
	if ((src & 0xff) == SQLITE_BUSY || (src & 0xff) == SQLITE_LOCKED) {
		snprintf(err, errlen, "the demo ERP file %s is busy while %s; try again later",
		         e->path, what);
		return APS_ERR_BUSY;
	}
	snprintf(err, errlen, "cannot write the demo ERP file %s while %s: %s", e->path, what,
	         e->wdb ? sqlite3_errmsg(e->wdb) : sqlite3_errstr(src));
	return APS_ERR_IO;
}

static int wopen(struct erp *e, char *err, size_t errlen)
{
	int src;

	if (e->wdb)
		return APS_OK;
	src = sqlite3_open_v2(e->path, &e->wdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (src == SQLITE_OK) {
		sqlite3_extended_result_codes(e->wdb, 1);
		sqlite3_busy_timeout(e->wdb, BUSY_TIMEOUT_MS);
		src = sqlite3_exec(e->wdb, demo_ap_schema_sql, NULL, NULL, NULL);
	}
	if (src != SQLITE_OK) {
		int rc = wfail(e, src, "opening it for writing", err, errlen);

		sqlite3_close(e->wdb);
		e->wdb = NULL;
		return rc;
	}
	return APS_OK;
}

/* One row of a one-column-or-more query with text parameters; 1 found,
 * 0 not, <0 an sqlite error (negated). Copies up to two text columns. */
static int wquery(struct erp *e, const char *sql, const char *const *params, int nparams,
                  char *c0, size_t l0, char *c1, size_t l1)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *t;
	int src, i, found = 0;

	src = sqlite3_prepare_v2(e->wdb, sql, -1, &st, NULL);
	for (i = 0; src == SQLITE_OK && i < nparams; i++)
		src = sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_STATIC);
	if (src == SQLITE_OK) {
		src = sqlite3_step(st);
		if (src == SQLITE_ROW) {
			found = 1;
			if (c0 && (t = sqlite3_column_text(st, 0)))
				snprintf(c0, l0, "%s", t);
			if (c1 && (t = sqlite3_column_text(st, 1)))
				snprintf(c1, l1, "%s", t);
			src = SQLITE_OK;
		} else if (src == SQLITE_DONE) {
			src = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return src == SQLITE_OK ? found : -src;
}

static int wexec(struct erp *e, const char *sql)
{
	return sqlite3_exec(e->wdb, sql, NULL, NULL, NULL);
}

/* Inside a write's transaction: the company exists and is not locked. */
static int wcompany(struct erp *e, const char *company, char *currency, char *err, size_t errlen)
{
	const char *p[1] = {company};
	char user[80] = "", reason[160] = "";
	int r;

	r = wquery(e, "SELECT currency FROM companies WHERE company_code = ?1", p, 1, currency, 8,
	           NULL, 0);
	if (r < 0)
		return wfail(e, -r, "reading the company", err, errlen);
	if (!r) {
		snprintf(err, errlen, "company \"%.64s\" is not in the demo ERP file %s", company,
		         e->path);
		return APS_ERR_NOTFOUND;
	}
	r = wquery(e, "SELECT user_name, reason FROM locks WHERE company_code = ?1", p, 1, user,
	           sizeof(user), reason, sizeof(reason));
	if (r < 0)
		return wfail(e, -r, "checking the company's lock", err, errlen);
	if (r) {
		snprintf(err, errlen, "company %s is locked by user '%s' (%s); the export will retry",
		         company, user, reason);
		return APS_ERR_BUSY;
	}
	return APS_OK;
}

/* A code of a master list that must exist and be active in the company. */
static int wactive(struct erp *e, const char *company, const char *table, const char *col,
                   const char *what, const char *code, char *extra, size_t extralen, char *err,
                   size_t errlen)
{
	char sql[256], status[4] = "";
	const char *p[2] = {company, code};
	int r;

	snprintf(sql, sizeof(sql), "SELECT status%s FROM %s WHERE company_code = ?1 AND %s = ?2",
	         extra ? !strcmp(table, "tax_codes") ? ", rate" : ", currency" : "", table, col);
	r = wquery(e, sql, p, 2, status, sizeof(status), extra, extralen);
	if (r < 0)
		return wfail(e, -r, "checking the document's references", err, errlen);
	if (!r) {
		snprintf(err, errlen, "%s \"%.64s\" is not in company %s of the demo ERP", what, code,
		         company);
		return APS_ERR_NOTFOUND;
	}
	if (strcmp(status, "A")) {
		snprintf(err, errlen, "%s \"%.64s\" is inactive in company %s", what, code, company);
		return APS_ERR_ERP;
	}
	return APS_OK;
}

/* The ERP's local time now, "YYYY-MM-DD HH:MM:SS.mmm", as its rows keep it. */
static const char *local_now(const struct erp *e, char out[32])
{
	char iso[APS_TIME_LEN];

	aps_time_format_offset(aps_now_ms(), e->offset_min, iso);
	snprintf(out, 32, "%.23s", iso);
	out[10] = ' ';
	return out;
}

static void demo_ref(struct erp_doc_ref *out, int invoice, int64_t id, int paid)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%lld", (long long)id);
	snprintf(out->number, sizeof(out->number), "%s%06lld", invoice ? "AP" : "PY", (long long)id);
	snprintf(out->state, sizeof(out->state), "%s", paid ? "paid" : "posted");
}

static int demo_lookup(struct erp *e, const char *company, const cJSON *doc,
                       struct erp_doc_ref *out, char *err, size_t errlen)
{
	const char *type = doc_str(doc, "type"), *vendor = doc_str(doc, "vendor");
	int invoice = type && !strcmp(type, "invoice");
	const char *p[3] = {company, vendor, doc_str(doc, invoice ? "number" : "reference")};
	char id[24] = "", status[4] = "";
	int rc, r;

	if (!type || !vendor || !p[2]) {
		snprintf(err, errlen, "the document lacks its natural key (vendor and %s)",
		         invoice ? "number" : "reference");
		return APS_ERR_INVAL;
	}
	rc = wopen(e, err, errlen);
	if (rc)
		return rc;
	r = wquery(e,
	           invoice ? "SELECT invoice_id, status FROM ap_invoices WHERE company_code = ?1 "
	                     "AND vendor_no = ?2 AND invoice_no = ?3"
	                   : "SELECT payment_id, 'O' FROM ap_payments WHERE company_code = ?1 AND "
	                     "vendor_no = ?2 AND reference = ?3",
	           p, 3, id, sizeof(id), status, sizeof(status));
	if (r < 0)
		return wfail(e, -r, "looking the document up", err, errlen);
	if (!r)
		return APS_ERR_NOTFOUND;
	demo_ref(out, invoice, strtoll(id, NULL, 10), !strcmp(status, "P"));
	return APS_OK;
}

static int money(const cJSON *o, const char *name, int required, int64_t *v, const char *what,
                 char *err, size_t errlen)
{
	const char *s = doc_str(o, name);

	if (!s && !required)
		return APS_ERR_NOTFOUND;
	if (!s || aps_dec_parse(s, v)) {
		snprintf(err, errlen, "%s: \"%s\" %s a decimal string with at most 4 decimals", what,
		         name, s ? "is not" : "must be");
		return APS_ERR_INVAL;
	}
	return APS_OK;
}

static int demo_write_invoice(struct erp *e, const char *company, const cJSON *doc,
                              struct erp_doc_ref *out, char *err, size_t errlen)
{
	const char *vendor = doc_str(doc, "vendor"), *number = doc_str(doc, "number");
	const char *date = doc_str(doc, "date"), *s;
	const cJSON *lines = cJSON_GetObjectItemCaseSensitive(doc, "lines"), *l;
	char currency[8] = "", rate[24], what[64], a[32], t[32], vcur[8], nowbuf[32];
	int64_t qty, price, amount, tax, r, total = 0, want, id;
	sqlite3_stmt *st = NULL;
	int rc, n = 0, src, in_tx = 0;

	if (!vendor || !number || !date || !cJSON_IsArray(lines) || !cJSON_GetArraySize(lines) ||
	    cJSON_GetArraySize(lines) > MAX_DOC_LINES) {
		snprintf(err, errlen, "an invoice needs vendor, number, date and 1..%d lines",
		         MAX_DOC_LINES);
		return APS_ERR_INVAL;
	}
	rc = wopen(e, err, errlen);
	if (rc)
		return rc;
	src = wexec(e, "BEGIN IMMEDIATE");
	if (src != SQLITE_OK)
		return wfail(e, src, "starting the invoice", err, errlen);
	in_tx = 1;
	rc = wcompany(e, company, currency, err, errlen);
	if (!rc && !demo_lookup(e, company, doc, out, err, errlen))
		goto done; /* written meanwhile: exactly once */
	if (!rc)
		rc = wactive(e, company, "vendors", "vendor_no", "vendor", vendor, vcur, sizeof(vcur),
		             err, errlen);
	s = doc_str(doc, "currency");
	if (!rc && s && strcmp(s, currency)) {
		snprintf(err, errlen, "the invoice is in %.8s but company %s keeps its books in %s",
		         s, company, currency);
		rc = APS_ERR_ERP;
	}
	if (!rc) {
		src = sqlite3_prepare_v2(e->wdb,
		                         "INSERT INTO ap_invoices(company_code, vendor_no, invoice_no, "
		                         "invoice_date, due_date, currency, description, total, "
		                         "amount_paid, status, posted_at) VALUES(?1, ?2, ?3, ?4, ?5, "
		                         "?6, ?7, '0.00', '0.00', 'O', ?8)",
		                         -1, &st, NULL);
		if (src == SQLITE_OK) {
			sqlite3_bind_text(st, 1, company, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, vendor, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, number, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, date, -1, SQLITE_STATIC);
			aps_db_bind_text(st, 5, doc_str(doc, "due_date"));
			sqlite3_bind_text(st, 6, currency, -1, SQLITE_STATIC);
			aps_db_bind_text(st, 7, doc_str(doc, "description"));
			sqlite3_bind_text(st, 8, local_now(e, nowbuf), -1, SQLITE_TRANSIENT);
			src = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(e->wdb);
		}
		sqlite3_finalize(st);
		st = NULL;
		if (src != SQLITE_OK)
			rc = wfail(e, src, "writing the invoice", err, errlen);
	}
	id = sqlite3_last_insert_rowid(e->wdb);
	cJSON_ArrayForEach(l, lines) {
		const char *gl = doc_str(l, "gl_account"), *item = doc_str(l, "item");
		const char *taxc = doc_str(l, "tax_code"), *div = doc_str(l, "division");
		const char *wh = doc_str(l, "warehouse");

		if (rc)
			break;
		n++;
		snprintf(what, sizeof(what), "line %d", n);
		if (!gl && !item) {
			snprintf(err, errlen, "%s has neither gl_account nor item", what);
			rc = APS_ERR_INVAL;
			break;
		}
		if (!rc)
			rc = money(l, "quantity", 1, &qty, what, err, errlen);
		if (!rc)
			rc = money(l, "unit_price", 1, &price, what, err, errlen);
		if (!rc && gl)
			rc = wactive(e, company, "gl_accounts", "account_no", "GL account", gl, NULL,
			             0, err, errlen);
		if (!rc && item)
			rc = wactive(e, company, "items", "item_no", "item", item, NULL, 0, err,
			             errlen);
		if (!rc && div)
			rc = wactive(e, company, "divisions", "division_no", "division", div, NULL, 0,
			             err, errlen);
		if (!rc && wh)
			rc = wactive(e, company, "warehouses", "warehouse_code", "warehouse", wh, NULL,
			             0, err, errlen);
		r = 0;
		if (!rc && taxc) {
			rc = wactive(e, company, "tax_codes", "tax_code", "tax code", taxc, rate,
			             sizeof(rate), err, errlen);
			if (!rc && aps_dec_parse(rate, &r)) {
				snprintf(err, errlen, "tax code %s has rate \"%s\"", taxc, rate);
				rc = APS_ERR_ERP;
			}
		}
		if (rc)
			break;
		/* amount and tax per line, each rounded to cents */
		amount = aps_dec_round(aps_dec_mul(qty, price), 2);
		tax = aps_dec_round(aps_dec_mul(amount, r) / 100, 2);
		total += amount + tax;
		src = sqlite3_prepare_v2(e->wdb,
		                         "INSERT INTO ap_invoice_lines(invoice_id, line_no, gl_account, "
		                         "item_no, description, quantity, unit_price, amount, tax_code, "
		                         "tax_amount, division_no, warehouse_code, po_no, po_line_no) "
		                         "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
		                         "?13, ?14)",
		                         -1, &st, NULL);
		if (src == SQLITE_OK) {
			const cJSON *pl = cJSON_GetObjectItemCaseSensitive(l, "po_line");

			sqlite3_bind_int64(st, 1, id);
			sqlite3_bind_int(st, 2, n);
			aps_db_bind_text(st, 3, gl);
			aps_db_bind_text(st, 4, item);
			aps_db_bind_text(st, 5, doc_str(l, "description"));
			sqlite3_bind_text(st, 6, doc_str(l, "quantity"), -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 7, doc_str(l, "unit_price"), -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 8, aps_dec_format(amount, 2, a), -1, SQLITE_TRANSIENT);
			aps_db_bind_text(st, 9, taxc);
			sqlite3_bind_text(st, 10, aps_dec_format(tax, 2, t), -1, SQLITE_TRANSIENT);
			aps_db_bind_text(st, 11, div);
			aps_db_bind_text(st, 12, wh);
			aps_db_bind_text(st, 13, doc_str(l, "po"));
			if (cJSON_IsNumber(pl))
				sqlite3_bind_int(st, 14, pl->valueint);
			src = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(e->wdb);
		}
		sqlite3_finalize(st);
		st = NULL;
		if (src != SQLITE_OK)
			rc = wfail(e, src, "writing the invoice's lines", err, errlen);
	}
	if (!rc && !money(doc, "total", 0, &want, "the invoice", err, errlen) && want != total) {
		snprintf(err, errlen,
		         "total_mismatch: the demo ERP computes %s (lines and taxes) but the "
		         "document says %s; nothing was posted",
		         aps_dec_format(total, 2, a), aps_dec_format(want, 2, t));
		rc = APS_ERR_ERP;
	} else if (!rc && doc_str(doc, "total") && aps_dec_parse(doc_str(doc, "total"), &want)) {
		rc = APS_ERR_INVAL; /* money() wrote why */
	}
	if (!rc) {
		char sql[160];

		snprintf(sql, sizeof(sql), "UPDATE ap_invoices SET total = '%s' WHERE invoice_id = %lld",
		         aps_dec_format(total, 2, a), (long long)id);
		src = wexec(e, sql);
		if (src != SQLITE_OK)
			rc = wfail(e, src, "writing the invoice", err, errlen);
	}
	if (!rc) {
		src = wexec(e, "COMMIT");
		in_tx = 0;
		if (src != SQLITE_OK)
			rc = wfail(e, src, "committing the invoice", err, errlen);
		else
			demo_ref(out, 1, id, 0);
	}
done:
	if (in_tx)
		wexec(e, rc ? "ROLLBACK" : "COMMIT");
	return rc;
}

static int demo_write_payment(struct erp *e, const char *company, const cJSON *doc,
                              struct erp_doc_ref *out, char *err, size_t errlen)
{
	const char *vendor = doc_str(doc, "vendor"), *ref = doc_str(doc, "reference");
	const char *date = doc_str(doc, "date"), *bank = doc_str(doc, "bank_account");
	const cJSON *invs = cJSON_GetObjectItemCaseSensitive(doc, "invoices"), *it;
	char currency[8], a[32], b[32], sql[512], idt[24], tot[32], paid[32];
	int64_t amount, sum = 0, part, total, done_amt, pid;
	int rc, src, in_tx = 0, r;

	if (!vendor || !ref || !date || !bank || !cJSON_IsArray(invs) ||
	    !cJSON_GetArraySize(invs)) {
		snprintf(err, errlen, "a payment needs vendor, reference, date, bank_account, amount "
		                      "and the invoices it pays");
		return APS_ERR_INVAL;
	}
	rc = money(doc, "amount", 1, &amount, "the payment", err, errlen);
	if (!rc)
		rc = wopen(e, err, errlen);
	if (rc)
		return rc;
	src = wexec(e, "BEGIN IMMEDIATE");
	if (src != SQLITE_OK)
		return wfail(e, src, "starting the payment", err, errlen);
	in_tx = 1;
	rc = wcompany(e, company, currency, err, errlen);
	if (!rc && !demo_lookup(e, company, doc, out, err, errlen))
		goto done; /* written meanwhile */
	if (!rc)
		rc = wactive(e, company, "vendors", "vendor_no", "vendor", vendor, NULL, 0, err,
		             errlen);
	if (!rc)
		rc = wactive(e, company, "bank_accounts", "bank_code", "bank account", bank, NULL, 0,
		             err, errlen);
	if (!rc) {
		char now[32];
		char *q = sqlite3_mprintf("INSERT INTO ap_payments(company_code, payment_no, vendor_no, "
		                          "reference, payment_date, bank_code, method, amount, status, "
		                          "created_at, modified_at) VALUES(%Q, 'new:' || %Q || ':' || "
		                          "%Q, %Q, %Q, %Q, %Q, %Q, %Q, 'P', %Q, %Q); UPDATE ap_payments SET payment_no = "
		                          "printf('PY%%06d', payment_id) WHERE payment_id = "
		                          "last_insert_rowid()",
		                          company, vendor, ref, vendor, ref, date, bank,
		                          doc_str(doc, "method"), aps_dec_format(amount, 2, a),
		                          local_now(e, now), now);
		src = q ? wexec(e, q) : SQLITE_NOMEM;
		sqlite3_free(q);
		if (src != SQLITE_OK)
			rc = wfail(e, src, "writing the payment", err, errlen);
	}
	pid = sqlite3_last_insert_rowid(e->wdb);
	cJSON_ArrayForEach(it, invs) {
		const char *num = doc_str(it, "number");
		const char *p[3] = {company, vendor, num};

		if (rc)
			break;
		if (!num) {
			snprintf(err, errlen, "a paid invoice lacks its number");
			rc = APS_ERR_INVAL;
			break;
		}
		rc = money(it, "amount", 1, &part, "a paid invoice", err, errlen);
		if (rc)
			break;
		r = wquery(e, "SELECT invoice_id, total || '|' || amount_paid FROM ap_invoices WHERE "
		              "company_code = ?1 AND vendor_no = ?2 AND invoice_no = ?3",
		           p, 3, idt, sizeof(idt), sql, sizeof(sql));
		if (r < 0) {
			rc = wfail(e, -r, "finding the paid invoice", err, errlen);
			break;
		}
		if (!r) {
			snprintf(err, errlen, "invoice %.64s of vendor %s is not in the demo ERP", num,
			         vendor);
			rc = APS_ERR_NOTFOUND;
			break;
		}
		snprintf(tot, sizeof(tot), "%.*s", (int)strcspn(sql, "|"), sql);
		snprintf(paid, sizeof(paid), "%s", strchr(sql, '|') ? strchr(sql, '|') + 1 : "0");
		if (aps_dec_parse(tot, &total) || aps_dec_parse(paid, &done_amt)) {
			snprintf(err, errlen, "invoice %s has a damaged total", num);
			rc = APS_ERR_ERP;
			break;
		}
		if (part <= 0 || part > total - done_amt) {
			snprintf(err, errlen, "the payment puts %s on invoice %s, which has %s open",
			         aps_dec_format(part, 2, a), num,
			         aps_dec_format(total - done_amt, 2, b));
			rc = APS_ERR_ERP;
			break;
		}
		sum += part;
		{
			char *q = sqlite3_mprintf(
			    "INSERT INTO ap_payment_lines(payment_id, invoice_id, amount) VALUES(%lld, "
			    "%s, %Q); UPDATE ap_invoices SET amount_paid = %Q, status = CASE WHEN %d "
			    "THEN 'P' ELSE 'O' END WHERE invoice_id = %s",
			    (long long)pid, idt, aps_dec_format(part, 2, a),
			    aps_dec_format(done_amt + part, 2, b), done_amt + part == total, idt);

			src = q ? wexec(e, q) : SQLITE_NOMEM;
			sqlite3_free(q);
			if (src != SQLITE_OK)
				rc = wfail(e, src, "applying the payment", err, errlen);
		}
	}
	if (!rc && sum != amount) {
		snprintf(err, errlen, "the payment's amount %s is not the sum %s of what it pays",
		         aps_dec_format(amount, 2, a), aps_dec_format(sum, 2, b));
		rc = APS_ERR_ERP;
	}
	if (!rc) {
		src = wexec(e, "COMMIT");
		in_tx = 0;
		if (src != SQLITE_OK)
			rc = wfail(e, src, "committing the payment", err, errlen);
		else
			demo_ref(out, 0, pid, 0);
	}
done:
	if (in_tx)
		wexec(e, rc ? "ROLLBACK" : "COMMIT");
	return rc;
}

const struct erp_ops erp_demo_ops = {
    .scheme = "demo",
    .description = "apsync demo ERP (generated SQLite file)",
    .open = demo_open,
    .close = demo_close,
    .identity = demo_identity,
    .count = demo_count,
    .clock = demo_clock,
    .read = demo_read,
    .write_invoice = demo_write_invoice,
    .write_payment = demo_write_payment,
    .lookup = demo_lookup,
};
