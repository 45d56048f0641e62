/*
 * The demo ERP: generation (determinism, refusal to overwrite) and the
 * connector (identity, counts, paging by key and by modification time,
 * windows, the PO profile, lines, bank account masking, locks, errors),
 * on real files generated in a temporary directory.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "erp/demo.h"
#include "erp/erp.h"
#include "err.h"
#include "tap.h"
#include "util.h"

#define ROWS 2000
#define SEED 42
#define PAGE 7

static char dir[64];
static char path_a[128], path_b[128], path_c[128];

static void tmp_path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

/* ---- helpers over the file ---------------------------------------------- */

static sqlite3 *db_open(const char *path, int rw)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, rw ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static int64_t sql_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int sql_exec(const char *path, const char *sql)
{
	sqlite3 *db = db_open(path, 1);
	int rc = db ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_ERROR;

	sqlite3_close(db);
	return rc;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ULL;
	return h;
}

/* A hash over every row of the tables (all of them if table is NULL), in order. */
static uint64_t content_hash(const char *path, const char *table)
{
	sqlite3 *db = db_open(path, 0);
	sqlite3_stmt *tabs = NULL, *st = NULL;
	uint64_t h = 0xcbf29ce484222325ULL;
	char sql[256];
	int i, type;

	if (!db)
		return 0;
	sqlite3_prepare_v2(db,
	                   "SELECT name FROM sqlite_master WHERE type = 'table' AND name"
	                   " NOT LIKE 'sqlite_%' AND (?1 IS NULL OR name = ?1) ORDER BY name",
	                   -1, &tabs, NULL);
	sqlite3_bind_text(tabs, 1, table, -1, SQLITE_STATIC);
	while (sqlite3_step(tabs) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(tabs, 0);

		h = fnv(h, name, strlen(name) + 1);
		snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\" ORDER BY rowid", name);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
			continue;
		while (sqlite3_step(st) == SQLITE_ROW) {
			for (i = 0; i < sqlite3_column_count(st); i++) {
				type = sqlite3_column_type(st, i);
				h = fnv(h, &type, sizeof(type));
				if (type != SQLITE_NULL)
					h = fnv(h, sqlite3_column_text(st, i),
					        (size_t)sqlite3_column_bytes(st, i) + 1);
			}
		}
		sqlite3_finalize(st);
	}
	sqlite3_finalize(tabs);
	sqlite3_close(db);
	return h;
}

/* "12", "12.5", "12.50" → 1250; -1 if malformed. */
static int64_t hundredths(const char *s)
{
	int64_t v = 0;
	int frac = -1;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s == '.' && frac < 0) {
			frac = 0;
			continue;
		}
		if (*s < '0' || *s > '9' || frac >= 2 || v > INT64_MAX / 100)
			return -1;
		v = v * 10 + (*s - '0');
		if (frac >= 0)
			frac++;
	}
	for (frac = frac < 0 ? 0 : frac; frac < 2; frac++)
		v *= 10;
	return v;
}

/* ---- helpers over the connector ----------------------------------------- */

struct rows {
	cJSON *all; /* array of arrays; owned */
	int n, ncols, stop_after;
};

/* The connector's borrowed values, copied as cJSON for the assertions. */
static cJSON *to_json(const struct aps_value *v)
{
	switch (v->type) {
	case APS_V_FALSE:
		return cJSON_CreateFalse();
	case APS_V_TRUE:
		return cJSON_CreateTrue();
	case APS_V_INT:
		return cJSON_CreateNumber((double)v->i);
	case APS_V_TEXT:
		return cJSON_CreateString(v->s);
	case APS_V_JSON:
		return cJSON_Parse(v->s);
	default:
		return cJSON_CreateNull();
	}
}

static int collect(void *ud, const struct aps_value *vals)
{
	struct rows *r = ud;
	cJSON *row = cJSON_CreateArray();
	int i;

	for (i = 0; i < r->ncols; i++)
		cJSON_AddItemToArray(row, to_json(&vals[i]));
	cJSON_AddItemToArray(r->all, row);
	r->n++;
	return r->stop_after && r->n >= r->stop_after;
}

static const char *str_at(cJSON *row, int i)
{
	cJSON *v = cJSON_GetArrayItem(row, i);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static struct erp *open_demo(const char *path)
{
	const struct erp_ops *ops;
	struct erp *e = NULL;
	char spec[256], err[512];

	snprintf(spec, sizeof(spec), "demo:%s", path);
	if (erp_open(spec, NULL, &ops, &e, err, sizeof(err))) {
		printf("# open %s: %s\n", path, err);
		return NULL;
	}
	return e;
}

/*
 * Reads a whole list in pages of `page`, resuming from the last row each
 * time; checks the order is strictly ascending; returns the rows (caller
 * frees) and how many reads it took.
 */
static cJSON *read_all(struct erp *e, const char *co, const char *list, enum erp_order order,
                       const char *from, const char *to, int page, int *ok)
{
	const struct erp_list *l = erp_list_find(list);
	int mcol = erp_list_col(l, "modified_at"), nread, rc, guard = 0;
	struct rows r = {cJSON_CreateArray(), 0, l->ncols, 0};
	struct erp_read req = {co, list, order, NULL, NULL, from, to, page};
	const char *pk = NULL, *pm = NULL, *k, *m;
	char err[512];
	cJSON *row;

	*ok = 1;
	do {
		int before = r.n;

		rc = erp_demo_ops.read(e, &req, collect, &r, &nread, err, sizeof(err));
		if (rc || nread != r.n - before || nread > page) {
			printf("# read %s/%s: rc %d (%s), nread %d\n", co, list, rc, err, nread);
			*ok = 0;
			break;
		}
		for (row = cJSON_GetArrayItem(r.all, before); row; row = row->next) {
			k = str_at(row, 0);
			m = str_at(row, mcol);
			if (!k || !m) {
				*ok = 0;
				continue;
			}
			/* Strictly ascending: no duplicates across pages. */
			if (pk &&
			    (order == ERP_ORDER_KEY
			         ? strcmp(pk, k) >= 0
			         : strcmp(pm, m) > 0 || (!strcmp(pm, m) && strcmp(pk, k) >= 0))) {
				printf("# %s/%s: (%s, %s) after (%s, %s)\n", co, list, m, k, pm,
				       pk);
				*ok = 0;
			}
			pk = k;
			pm = m;
		}
		req.after_key = pk;
		req.after_modified = order == ERP_ORDER_MODIFIED ? pm : NULL;
	} while (nread == page && ++guard < 5000);
	if (guard == 5000) {
		printf("# %s/%s: the read does not end\n", co, list);
		*ok = 0;
	}
	return r.all;
}

static int64_t count_of(struct erp *e, const char *co, const char *list)
{
	char err[512];
	int64_t n = -1;

	if (erp_demo_ops.count(e, co, list, &n, err, sizeof(err)))
		printf("# count %s/%s: %s\n", co, list, err);
	return n;
}

static int is_iso_local(const char *s)
{
	int64_t ms;

	return s && strlen(s) == 29 && s[10] == 'T' && s[19] == '.' &&
	       !strcmp(s + 23, DEMO_ERP_UTC_OFFSET) && !aps_time_parse(s, &ms);
}

/* ---- tests -------------------------------------------------------------- */

TEST(generate_is_deterministic)
{
	uint64_t a = content_hash(path_a, NULL), b = content_hash(path_b, NULL);

	CHECK(a != 0);
	CHECK(a == b);
	CHECK(content_hash(path_a, "vendors") == content_hash(path_b, "vendors"));
	CHECK(content_hash(path_a, "vendors") != content_hash(path_c, "vendors"));
	CHECK(content_hash(path_a, "po_lines") != content_hash(path_c, "po_lines"));
}

TEST(generate_shape)
{
	sqlite3 *db = db_open(path_a, 0);
	char p[160];

	CHECK(db != NULL);
	if (!db)
		return;
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM vendors WHERE company_code = 'BLUE'"), ROWS);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM vendors WHERE company_code = 'HARBOR'"),
	             ROWS / 4);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM items WHERE company_code = 'BLUE'"),
	             ROWS / 2);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM locks"), 0);
	/* Every list in both companies. */
	CHECK_EQ_INT(sql_int(db, "SELECT count(DISTINCT company_code) FROM bank_accounts"), 2);
	CHECK_EQ_INT(sql_int(db, "SELECT count(DISTINCT company_code) FROM receipts"), 2);
	/* Every PO type and status, ~5 % separate checks, ~10 % inactive. */
	CHECK_EQ_INT(sql_int(db, "SELECT count(DISTINCT po_type) FROM po_headers"), 4);
	CHECK_EQ_INT(sql_int(db, "SELECT count(DISTINCT status) FROM po_headers"), 5);
	CHECK(sql_int(db, "SELECT count(*) FROM vendors WHERE separate_check = 1") > ROWS / 50);
	CHECK(sql_int(db, "SELECT count(*) FROM vendors WHERE status = 'I'") > ROWS / 20);
	/* created ≤ modified; many identical modified times (batch imports). */
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM vendors WHERE created_at > modified_at"), 0);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM po_headers WHERE created_at > modified_at"),
	             0);
	CHECK(sql_int(db, "SELECT count(*) FROM vendors v WHERE EXISTS (SELECT 1 FROM vendors w"
	                  " WHERE w.company_code = v.company_code AND w.modified_at = v.modified_at"
	                  " AND w.vendor_no <> v.vendor_no)") > ROWS / 5);
	/* Receipts add up to what each PO line received (all types). */
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM po_lines l LEFT JOIN"
	                         " (SELECT r.company_code c, r.po_no p, rl.po_line_no n,"
	                         " sum(rl.qty_received) q FROM receipt_lines rl JOIN receipts r"
	                         " USING (company_code, receipt_no) GROUP BY 1, 2, 3) s"
	                         " ON s.c = l.company_code AND s.p = l.po_no AND s.n = l.line_no"
	                         " WHERE round(l.qty_received, 2) <> round(coalesce(s.q, 0), 2)"),
	             0);
	CHECK(sql_int(db, "SELECT count(*) FROM receipt_lines") > 100);
	sqlite3_close(db);
	/* No temporary file left behind. */
	snprintf(p, sizeof(p), "%s.tmp", path_a);
	CHECK(access(p, F_OK) != 0);
}

TEST(generate_refuses_overwrite_and_bad_input)
{
	uint64_t before = content_hash(path_a, NULL);
	char err[512] = "", p[160];
	int rc;

	rc = demo_erp_generate(path_a, ROWS, SEED + 1, err, sizeof(err));
	CHECK_EQ_INT(rc, APS_ERR_EXISTS);
	CHECK(strstr(err, path_a) != NULL);
	CHECK(strstr(err, "already exists") != NULL);
	CHECK(content_hash(path_a, NULL) == before);

	tmp_path(p, sizeof(p), "range.db");
	CHECK_EQ_INT(demo_erp_generate(p, 0, 1, err, sizeof(err)), APS_ERR_RANGE);
	CHECK_EQ_INT(demo_erp_generate(p, DEMO_ERP_MAX_ROWS + 1, 1, err, sizeof(err)),
	             APS_ERR_RANGE);
	CHECK(access(p, F_OK) != 0);

	/* A directory that does not exist: an error, and nothing at the path. */
	tmp_path(p, sizeof(p), "no/such/dir.db");
	rc = demo_erp_generate(p, 10, 1, err, sizeof(err));
	CHECK(rc == APS_ERR_IO || rc == APS_ERR_DB);
	CHECK(strstr(err, "dir.db") != NULL);
	CHECK(access(p, F_OK) != 0);

	/* A stale PATH.tmp from a crash is replaced; the smallest size works. */
	tmp_path(p, sizeof(p), "tiny.db.tmp");
	CHECK(aps_write_file(p, "garbage", 7, 0600) == APS_OK);
	tmp_path(p, sizeof(p), "tiny.db");
	CHECK_EQ_INT(demo_erp_generate(p, 1, 1, err, sizeof(err)), APS_OK);
	CHECK(access(p, F_OK) == 0);
	{
		struct erp *e = open_demo(p);

		CHECK(e != NULL);
		CHECK_EQ_INT(count_of(e, "BLUE", "vendors"), 1);
		CHECK_EQ_INT(count_of(e, "HARBOR", "vendors"), 1);
		CHECK(count_of(e, "HARBOR", "purchase_orders") >= 0);
		erp_demo_ops.close(e);
	}
}

TEST(open_errors)
{
	const struct erp_ops *ops = NULL;
	struct erp *e = NULL;
	char err[512] = "", p[160], spec[200];
	sqlite3 *db;

	tmp_path(p, sizeof(p), "missing.db");
	CHECK_EQ_INT(erp_demo_ops.open(p, NULL, &e, err, sizeof(err)), APS_ERR_NOTFOUND);
	CHECK(e == NULL);
	CHECK(strstr(err, "apsync-agent demo-erp --out") != NULL);

	/* Not SQLite at all. */
	tmp_path(p, sizeof(p), "text.db");
	CHECK(aps_write_file(p, "this is not a database, just some text that is long enough\n", 59,
	                     0600) == APS_OK);
	CHECK_EQ_INT(erp_demo_ops.open(p, NULL, &e, err, sizeof(err)), APS_ERR_DB);
	CHECK(strstr(err, "not a SQLite database") != NULL);

	/* SQLite, but another program's file. */
	tmp_path(p, sizeof(p), "other.db");
	db = NULL;
	sqlite3_open(p, &db);
	sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL);
	sqlite3_close(db);
	CHECK_EQ_INT(erp_demo_ops.open(p, NULL, &e, err, sizeof(err)), APS_ERR_ERP);
	CHECK(strstr(err, "not an apsync demo ERP") != NULL);
	CHECK(sql_exec(p, "CREATE TABLE erp_info(key TEXT PRIMARY KEY, value TEXT);"
	                  "INSERT INTO erp_info VALUES('product', 'Sage 100')") == SQLITE_OK);
	CHECK_EQ_INT(erp_demo_ops.open(p, NULL, &e, err, sizeof(err)), APS_ERR_ERP);
	CHECK(strstr(err, "Sage 100") != NULL);
	/* The right product, but tables missing: damaged. */
	CHECK(sql_exec(p, "UPDATE erp_info SET value = 'apsync Demo ERP';"
	                  "INSERT INTO erp_info VALUES('version', '1.0');"
	                  "INSERT INTO erp_info VALUES('utc_offset', '-05:00');") == SQLITE_OK);
	CHECK_EQ_INT(erp_demo_ops.open(p, NULL, &e, err, sizeof(err)), APS_ERR_ERP);
	CHECK(strstr(err, "not a complete apsync demo ERP") != NULL);

	/* A directory is not a file. */
	CHECK_EQ_INT(erp_demo_ops.open(dir, NULL, &e, err, sizeof(err)), APS_ERR_ERP);
	CHECK(e == NULL);

	/* Through the registry. */
	snprintf(spec, sizeof(spec), "demo:%s", path_a);
	CHECK_EQ_INT(erp_open(spec, NULL, &ops, &e, err, sizeof(err)), APS_OK);
	CHECK(ops == &erp_demo_ops);
	CHECK_EQ_STR(erp_demo_ops.scheme, "demo");
	CHECK_EQ_STR(erp_demo_ops.description, "apsync demo ERP (generated SQLite file)");
	if (e)
		ops->close(e);
}

TEST(identity)
{
	struct erp *e = open_demo(path_a);
	struct erp_identity *id = calloc(1, sizeof(*id));
	char err[512];
	int i, j;

	CHECK(e && id);
	if (!e || !id)
		goto out;
	CHECK_EQ_INT(erp_demo_ops.identity(e, id, err, sizeof(err)), APS_OK);
	CHECK_EQ_STR(id->product, "apsync Demo ERP");
	CHECK_EQ_STR(id->version, "1.0");
	CHECK_EQ_INT(id->ncompanies, 2);
	CHECK_EQ_STR(id->companies[0].code, "BLUE");
	CHECK_EQ_STR(id->companies[0].name, "Blue Ridge Manufacturing Inc.");
	CHECK_EQ_STR(id->companies[1].code, "HARBOR");
	CHECK_EQ_STR(id->companies[1].name, "Harbor Foods LLC");
	for (i = 0; i < id->ncompanies; i++) {
		CHECK_EQ_STR(id->companies[i].currency, "USD");
		CHECK_EQ_STR(id->companies[i].po_types, "standard,drop_ship");
		CHECK_EQ_INT(id->companies[i].nlists, 12); /* every list, payments included */
		for (j = 0; j < id->companies[i].nlists; j++)
			CHECK(erp_list_find(id->companies[i].lists[j]) != NULL);
	}
out:
	free(id);
	if (e)
		erp_demo_ops.close(e);
}

/* Every list of both companies, paged by key: count() = rows read, keys ascending. */
TEST(count_and_key_paging)
{
	static const char *const cos[] = {"BLUE", "HARBOR"};
	struct erp *e = open_demo(path_a);
	sqlite3 *db = db_open(path_a, 0);
	const struct erp_list *l;
	int c, i, ok, scol, ccol, mcol, n;
	cJSON *rows, *row;
	char sql[512];
	int64_t want;

	CHECK(e && db);
	if (!e || !db)
		goto out;
	for (c = 0; c < 2; c++) {
		for (i = 0; erp_lists[i]; i++) {
			l = erp_lists[i];
			rows = read_all(e, cos[c], l->name, ERP_ORDER_KEY, NULL, NULL, PAGE, &ok);
			n = cJSON_GetArraySize(rows);
			CHECK(ok);
			/* a new file holds no payments yet: apsync's exports make them */
			CHECK(n > 0 || !strcmp(l->name, "payments"));
			CHECK_EQ_INT(count_of(e, cos[c], l->name), n);
			scol = erp_list_col(l, "status");
			ccol = erp_list_col(l, "created_at");
			mcol = erp_list_col(l, "modified_at");
			cJSON_ArrayForEach(row, rows)
			{
				CHECK_EQ_INT(cJSON_GetArraySize(row), l->ncols);
				CHECK(str_at(row, 0) && *str_at(row, 0));
				CHECK(is_iso_local(str_at(row, mcol)));
				if (ccol >= 0) {
					CHECK(is_iso_local(str_at(row, ccol)));
					CHECK(strcmp(str_at(row, ccol), str_at(row, mcol)) <= 0);
				}
				if (scol >= 0 && strcmp(l->name, "purchase_orders"))
					CHECK(!strcmp(str_at(row, scol), "active") ||
					      !strcmp(str_at(row, scol), "inactive"));
			}
			cJSON_Delete(rows);
		}
		/* Against the file itself. */
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM vendors WHERE company_code = '%s'",
		         cos[c]);
		want = sql_int(db, sql);
		CHECK_EQ_INT(count_of(e, cos[c], "vendors"), want);
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM vendors WHERE company_code = '%s'"
		         " AND separate_check = 1",
		         cos[c]);
		CHECK_EQ_INT(count_of(e, cos[c], "separate_checks"), sql_int(db, sql));
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM po_headers WHERE company_code = '%s'"
		         " AND po_type IN ('S', 'D')",
		         cos[c]);
		CHECK_EQ_INT(count_of(e, cos[c], "purchase_orders"), sql_int(db, sql));
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM receipts r JOIN po_headers p ON"
		         " p.company_code = r.company_code AND p.po_no = r.po_no WHERE"
		         " r.company_code = '%s' AND p.po_type IN ('S', 'D')",
		         cos[c]);
		CHECK_EQ_INT(count_of(e, cos[c], "receivings"), sql_int(db, sql));
	}
	CHECK_EQ_INT(count_of(e, "BLUE", "vendors"), ROWS);
out:
	sqlite3_close(db);
	if (e)
		erp_demo_ops.close(e);
}

TEST(vendor_values)
{
	struct erp *e = open_demo(path_a);
	const struct erp_list *l = erp_list_find("vendors");
	int ok, inactive = 0, sep = 0;
	cJSON *rows, *row, *v;
	sqlite3 *db = db_open(path_a, 0);

	CHECK(e && db);
	if (!e || !db)
		goto out;
	rows = read_all(e, "BLUE", "vendors", ERP_ORDER_KEY, NULL, NULL, 500, &ok);
	CHECK(ok);
	cJSON_ArrayForEach(row, rows)
	{
		v = cJSON_GetArrayItem(row, erp_list_col(l, "separate_check"));
		CHECK(cJSON_IsBool(v));
		sep += cJSON_IsTrue(v);
		inactive += !strcmp(str_at(row, erp_list_col(l, "status")), "inactive");
		CHECK(cJSON_IsNull(cJSON_GetArrayItem(row, erp_list_col(l, "country"))));
		CHECK_EQ_STR(str_at(row, erp_list_col(l, "currency")), "USD");
		CHECK(str_at(row, erp_list_col(l, "region")) &&
		      strlen(str_at(row, erp_list_col(l, "region"))) == 2);
	}
	CHECK_EQ_INT(sep, sql_int(db, "SELECT count(*) FROM vendors WHERE company_code = 'BLUE'"
	                              " AND separate_check = 1"));
	CHECK_EQ_INT(inactive, sql_int(db, "SELECT count(*) FROM vendors WHERE company_code ="
	                                   " 'BLUE' AND status = 'I'"));
	/* The first vendor, column by column against the table. */
	row = rows->child;
	{
		sqlite3_stmt *st = NULL;

		sqlite3_prepare_v2(db,
		                   "SELECT vendor_no, name, city, zip, terms_code, created_at"
		                   " FROM vendors WHERE company_code = 'BLUE' ORDER BY vendor_no"
		                   " LIMIT 1",
		                   -1, &st, NULL);
		CHECK(sqlite3_step(st) == SQLITE_ROW);
		CHECK_EQ_STR(str_at(row, 0), (const char *)sqlite3_column_text(st, 0));
		CHECK_EQ_STR(str_at(row, 1), (const char *)sqlite3_column_text(st, 1));
		CHECK_EQ_STR(str_at(row, erp_list_col(l, "city")),
		             (const char *)sqlite3_column_text(st, 2));
		CHECK_EQ_STR(str_at(row, erp_list_col(l, "postal_code")),
		             (const char *)sqlite3_column_text(st, 3));
		CHECK_EQ_STR(str_at(row, erp_list_col(l, "terms")),
		             (const char *)sqlite3_column_text(st, 4));
		/* Same wall-clock text, with a T and the offset. */
		CHECK(!strncmp(str_at(row, erp_list_col(l, "created_at")),
		               (const char *)sqlite3_column_text(st, 5), 10));
		CHECK(!strncmp(str_at(row, erp_list_col(l, "created_at")) + 11,
		               (const char *)sqlite3_column_text(st, 5) + 11, 12));
		sqlite3_finalize(st);
	}
	cJSON_Delete(rows);
out:
	sqlite3_close(db);
	if (e)
		erp_demo_ops.close(e);
}

/* Paging by (modified, key) with many ties: every row exactly once. */
TEST(modified_paging_with_ties)
{
	static const char *const lists[] = {"vendors", "purchase_orders", "receivings", "items"};
	struct erp *e = open_demo(path_a);
	cJSON *by_key, *by_mod, *row;
	int ok, ties, mcol;
	size_t i;

	CHECK(e != NULL);
	if (!e)
		return;
	for (i = 0; i < APS_ARRAY_LEN(lists); i++) {
		mcol = erp_list_col(erp_list_find(lists[i]), "modified_at");
		by_key = read_all(e, "BLUE", lists[i], ERP_ORDER_KEY, NULL, NULL, 1000, &ok);
		CHECK(ok);
		by_mod = read_all(e, "BLUE", lists[i], ERP_ORDER_MODIFIED, NULL, NULL, PAGE, &ok);
		CHECK(ok); /* strictly ascending (modified, key): no row twice */
		CHECK_EQ_INT(cJSON_GetArraySize(by_mod), cJSON_GetArraySize(by_key));
		ties = 0;
		for (row = by_mod->child; row && row->next; row = row->next)
			ties += !strcmp(str_at(row, mcol), str_at(row->next, mcol));
		CHECK(ties > cJSON_GetArraySize(by_mod) / 10);
		cJSON_Delete(by_key);
		cJSON_Delete(by_mod);
	}
	erp_demo_ops.close(e);
}

static int count_in(cJSON *rows, int mcol, const char *from, const char *to)
{
	cJSON *row;
	int n = 0;

	cJSON_ArrayForEach(row, rows) n +=
	    strcmp(str_at(row, mcol), from) >= 0 && strcmp(str_at(row, mcol), to) < 0;
	return n;
}

TEST(window_bounds)
{
	struct erp *e = open_demo(path_a);
	int mcol = erp_list_col(erp_list_find("vendors"), "modified_at"), ok, n, want;
	char from[64], to[64], from_z[APS_TIME_LEN], to_z[APS_TIME_LEN];
	cJSON *all, *win;
	int64_t ms;

	CHECK(e != NULL);
	if (!e)
		return;
	all = read_all(e, "BLUE", "vendors", ERP_ORDER_MODIFIED, NULL, NULL, 1000, &ok);
	n = cJSON_GetArraySize(all);
	/* Bounds on existing values, so the inclusive / exclusive ends matter. */
	snprintf(from, sizeof(from), "%s", str_at(cJSON_GetArrayItem(all, n / 4), mcol));
	snprintf(to, sizeof(to), "%s", str_at(cJSON_GetArrayItem(all, 3 * n / 4), mcol));
	want = count_in(all, mcol, from, to);
	CHECK(want > 0 && want < n);

	win = read_all(e, "BLUE", "vendors", ERP_ORDER_MODIFIED, from, to, PAGE, &ok);
	CHECK(ok);
	CHECK_EQ_INT(cJSON_GetArraySize(win), want);
	CHECK_EQ_INT(count_in(win, mcol, from, to), want);
	CHECK_EQ_STR(str_at(win->child, mcol), from);
	cJSON_Delete(win);

	win = read_all(e, "BLUE", "vendors", ERP_ORDER_KEY, from, to, PAGE, &ok);
	CHECK(ok);
	CHECK_EQ_INT(cJSON_GetArraySize(win), want);
	cJSON_Delete(win);

	/* The same instants written in UTC select the same rows. */
	CHECK(aps_time_parse(from, &ms) == APS_OK);
	aps_time_iso(ms, from_z);
	CHECK(aps_time_parse(to, &ms) == APS_OK);
	aps_time_iso(ms, to_z);
	win = read_all(e, "BLUE", "vendors", ERP_ORDER_MODIFIED, from_z, to_z, 100, &ok);
	CHECK(ok);
	CHECK_EQ_INT(cJSON_GetArraySize(win), want);
	cJSON_Delete(win);

	/* Open-ended windows. */
	win = read_all(e, "BLUE", "vendors", ERP_ORDER_MODIFIED, from, NULL, 500, &ok);
	CHECK_EQ_INT(cJSON_GetArraySize(win), count_in(all, mcol, from, "9999"));
	cJSON_Delete(win);
	win = read_all(e, "BLUE", "vendors", ERP_ORDER_MODIFIED, NULL, to, 500, &ok);
	CHECK_EQ_INT(cJSON_GetArraySize(win), count_in(all, mcol, "0000", to));
	cJSON_Delete(win);
	cJSON_Delete(all);
	erp_demo_ops.close(e);
}

struct po {
	const char *code;
	cJSON *lines;
};

static struct po *po_find(struct po *pos, int n, const char *code)
{
	int lo = 0, hi = n - 1, mid, c;

	while (lo <= hi) {
		mid = (lo + hi) / 2;
		c = strcmp(pos[mid].code, code);
		if (!c)
			return &pos[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/* Only standard and drop ship orders; lines as LISTS.md says; receivings match them. */
TEST(purchase_orders_and_receivings)
{
	const struct erp_list *pl = erp_list_find("purchase_orders");
	const struct erp_list *rl = erp_list_find("receivings");
	struct erp *e = open_demo(path_a);
	int ok, n, i, types[2] = {0, 0}, statuses = 0, nlines, lineno;
	int64_t total, q, r, *recv = NULL;
	cJSON *pos_rows, *rc_rows, *row, *lines, *ln, *v;
	struct po *pos = NULL, *po;
	const char *type, *status;
	static const char *const all_statuses[] = {"new", "open", "backordered", "completed",
	                                           "cancelled"};

	CHECK(e != NULL);
	if (!e)
		return;
	pos_rows = read_all(e, "BLUE", "purchase_orders", ERP_ORDER_KEY, NULL, NULL, PAGE, &ok);
	CHECK(ok);
	n = cJSON_GetArraySize(pos_rows);
	pos = calloc((size_t)n + 1, sizeof(*pos));
	i = 0;
	cJSON_ArrayForEach(row, pos_rows)
	{
		type = str_at(row, erp_list_col(pl, "type"));
		status = str_at(row, erp_list_col(pl, "status"));
		CHECK(type && (!strcmp(type, "standard") || !strcmp(type, "drop_ship")));
		types[!strcmp(type, "drop_ship")]++;
		for (size_t s = 0; s < APS_ARRAY_LEN(all_statuses); s++)
			if (!strcmp(status, all_statuses[s]))
				statuses |= 1 << s;
		CHECK_EQ_STR(str_at(row, erp_list_col(pl, "currency")), "USD");
		CHECK(str_at(row, erp_list_col(pl, "vendor")) != NULL);
		CHECK(strlen(str_at(row, erp_list_col(pl, "order_date"))) == 10);
		lines = cJSON_GetArrayItem(row, erp_list_col(pl, "lines"));
		CHECK(cJSON_IsArray(lines));
		nlines = cJSON_GetArraySize(lines);
		CHECK(nlines >= 1 && nlines <= 5);
		total = 0;
		lineno = 0;
		cJSON_ArrayForEach(ln, lines)
		{
			v = cJSON_GetObjectItemCaseSensitive(ln, "line");
			CHECK(cJSON_IsNumber(v) && v->valueint == ++lineno);
			v = cJSON_GetObjectItemCaseSensitive(ln, "item");
			CHECK(cJSON_IsString(v) || cJSON_IsNull(v));
			CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ln, "description")));
			CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ln, "unit")));
			CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ln, "gl_account")));
			q = hundredths(
			    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ln, "quantity")));
			r = hundredths(
			    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ln, "received")));
			CHECK(q > 0 && r >= 0 && r <= q);
			if (!strcmp(status, "completed"))
				CHECK(r == q);
			if (!strcmp(status, "new") || !strcmp(status, "cancelled"))
				CHECK(r == 0);
			total += (q * hundredths(cJSON_GetStringValue(
			                  cJSON_GetObjectItemCaseSensitive(ln, "unit_cost"))) +
			          50) /
			         100;
			CHECK_EQ_INT(cJSON_GetArraySize(ln), 8);
		}
		CHECK_EQ_INT(hundredths(str_at(row, erp_list_col(pl, "total"))), total);
		pos[i].code = str_at(row, 0);
		pos[i++].lines = lines;
	}
	CHECK(types[0] > types[1] && types[1] > 0);
	CHECK_EQ_INT(statuses, 0x1f);
	{
		sqlite3 *db = db_open(path_a, 0);

		CHECK(sql_int(db, "SELECT count(*) FROM po_headers WHERE company_code = 'BLUE'"
		                  " AND po_type IN ('R', 'M')") > 0);
		sqlite3_close(db);
	}

	/* Receivings: each line points to an existing line of an imported PO. */
	recv = calloc((size_t)n * 5 + 5, sizeof(*recv));
	rc_rows = read_all(e, "BLUE", "receivings", ERP_ORDER_KEY, NULL, NULL, PAGE, &ok);
	CHECK(ok);
	CHECK(cJSON_GetArraySize(rc_rows) > 0);
	cJSON_ArrayForEach(row, rc_rows)
	{
		po = po_find(pos, n, str_at(row, erp_list_col(rl, "po")));
		CHECK(po != NULL);
		if (!po)
			continue;
		CHECK(strlen(str_at(row, erp_list_col(rl, "receipt_date"))) == 10);
		lines = cJSON_GetArrayItem(row, erp_list_col(rl, "lines"));
		CHECK(cJSON_IsArray(lines) && cJSON_GetArraySize(lines) > 0);
		lineno = 0;
		cJSON_ArrayForEach(ln, lines)
		{
			int pol = cJSON_GetObjectItemCaseSensitive(ln, "po_line")->valueint;
			cJSON *pln = cJSON_GetArrayItem(po->lines, pol - 1);

			CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(ln, "line")->valueint,
			             ++lineno);
			CHECK_EQ_INT(cJSON_GetArraySize(ln), 5);
			CHECK(pln != NULL);
			if (!pln)
				continue;
			v = cJSON_GetObjectItemCaseSensitive(ln, "item");
			CHECK(cJSON_IsNull(v) ==
			      cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(pln, "item")));
			if (cJSON_IsString(v))
				CHECK_EQ_STR(v->valuestring,
				             cJSON_GetStringValue(
				                 cJSON_GetObjectItemCaseSensitive(pln, "item")));
			CHECK_EQ_STR(
			    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ln, "unit_cost")),
			    cJSON_GetStringValue(
			        cJSON_GetObjectItemCaseSensitive(pln, "unit_cost")));
			recv[(po - pos) * 5 + pol - 1] += hundredths(
			    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ln, "quantity")));
		}
	}
	/* What the receivings add up to is what the POs say was received. */
	for (i = 0; i < n; i++) {
		lineno = 0;
		cJSON_ArrayForEach(ln, pos[i].lines)
		{
			CHECK_EQ_INT(recv[i * 5 + lineno],
			             hundredths(cJSON_GetStringValue(
			                 cJSON_GetObjectItemCaseSensitive(ln, "received"))));
			lineno++;
		}
	}
	cJSON_Delete(rc_rows);
	cJSON_Delete(pos_rows);
	free(pos);
	free(recv);
	erp_demo_ops.close(e);
}

TEST(bank_account_numbers_masked)
{
	struct erp *e = open_demo(path_a);
	sqlite3 *db = db_open(path_a, 0);
	const struct erp_list *l = erp_list_find("bank_accounts");
	sqlite3_stmt *st = NULL;
	cJSON *rows, *row;
	char *json;
	int ok, i, nacct = 0;
	char full[8][32];

	CHECK(e && db);
	if (!e || !db)
		goto out;
	sqlite3_prepare_v2(db, "SELECT account_number, routing_number FROM bank_accounts", -1, &st,
	                   NULL);
	while (sqlite3_step(st) == SQLITE_ROW && nacct < 8)
		snprintf(full[nacct++], sizeof(full[0]), "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	CHECK(nacct > 2);
	rows = read_all(e, "BLUE", "bank_accounts", ERP_ORDER_KEY, NULL, NULL, PAGE, &ok);
	CHECK(ok && cJSON_GetArraySize(rows) > 1);
	cJSON_ArrayForEach(row, rows)
	{
		const char *last4 = str_at(row, erp_list_col(l, "account_last4"));

		CHECK(last4 && strlen(last4) == 4 && strspn(last4, "0123456789") == 4);
		json = cJSON_PrintUnformatted(row);
		for (i = 0; i < nacct; i++) {
			/* No five trailing digits of any account anywhere in the row. */
			CHECK(strstr(json, full[i] + strlen(full[i]) - 5) == NULL);
		}
		free(json);
	}
	/* The last four are the real last four. */
	row = rows->child;
	CHECK_EQ_STR(str_at(row, erp_list_col(l, "account_last4")), full[0] + strlen(full[0]) - 4);
	cJSON_Delete(rows);
out:
	sqlite3_close(db);
	if (e)
		erp_demo_ops.close(e);
}

/* Locks, and a damaged row, on a file of its own. */
TEST(locked_company_is_busy)
{
	struct rows r = {cJSON_CreateArray(), 0, 17, 0};
	struct erp_read req = {"BLUE", "vendors", ERP_ORDER_KEY, NULL, NULL, NULL, NULL, 10};
	char err[512] = "", p[160];
	struct erp *e = NULL;
	int64_t n;
	int nread = -1;

	tmp_path(p, sizeof(p), "locked.db");
	CHECK_EQ_INT(demo_erp_generate(p, 100, SEED, err, sizeof(err)), APS_OK);
	e = open_demo(p);
	CHECK(e != NULL);
	if (!e)
		goto out;
	CHECK(sql_exec(p, "INSERT INTO locks VALUES('BLUE', 'jsmith', 'period-end close',"
	                  " '2024-05-01 17:02:00')") == SQLITE_OK);
	CHECK_EQ_INT(erp_demo_ops.read(e, &req, collect, &r, &nread, err, sizeof(err)),
	             APS_ERR_BUSY);
	CHECK_EQ_INT(nread, 0);
	CHECK(strstr(err, "BLUE") && strstr(err, "jsmith") && strstr(err, "period-end close") &&
	      strstr(err, "2024-05-01 17:02:00"));
	CHECK_EQ_INT(erp_demo_ops.count(e, "BLUE", "purchase_orders", &n, err, sizeof(err)),
	             APS_ERR_BUSY);
	/* The other company is not locked. */
	req.company = "HARBOR";
	CHECK_EQ_INT(erp_demo_ops.read(e, &req, collect, &r, &nread, err, sizeof(err)), APS_OK);
	CHECK_EQ_INT(nread, 10);
	/* Unlocked: reads work again on the same connection. */
	CHECK(sql_exec(p, "DELETE FROM locks") == SQLITE_OK);
	req.company = "BLUE";
	CHECK_EQ_INT(erp_demo_ops.read(e, &req, collect, &r, &nread, err, sizeof(err)), APS_OK);
	CHECK_EQ_INT(nread, 10);
	/* A code the demo ERP does not define: the row is refused, with its key. */
	CHECK(sql_exec(p, "UPDATE vendors SET status = 'Z' WHERE vendor_no = 'V0000003'") ==
	      SQLITE_OK);
	CHECK_EQ_INT(erp_demo_ops.read(e, &req, collect, &r, &nread, err, sizeof(err)),
	             APS_ERR_ERP);
	CHECK_EQ_INT(nread, 2);
	CHECK(strstr(err, "V0000003") && strstr(err, "\"Z\""));
out:
	cJSON_Delete(r.all);
	if (e)
		erp_demo_ops.close(e);
}

TEST(request_errors_and_early_stop)
{
	struct erp *e = open_demo(path_a);
	struct rows r = {cJSON_CreateArray(), 0, 17, 3};
	struct erp_read req = {"BLUE", "vendors", ERP_ORDER_KEY, NULL, NULL, NULL, NULL, 50};
	char err[512] = "";
	int64_t n;
	int nread;

	CHECK(e != NULL);
	if (!e)
		goto out;
	/* The callback stops the read. */
	CHECK_EQ_INT(erp_demo_ops.read(e, &req, collect, &r, &nread, err, sizeof(err)), APS_OK);
	CHECK_EQ_INT(nread, 3);
	CHECK_EQ_INT(r.n, 3);

	CHECK_EQ_INT(erp_demo_ops.count(e, "NOPE", "vendors", &n, err, sizeof(err)),
	             APS_ERR_NOTFOUND);
	CHECK(strstr(err, "NOPE") && strstr(err, "BLUE"));
	CHECK_EQ_INT(erp_demo_ops.count(e, "BLUE", "invoices", &n, err, sizeof(err)),
	             APS_ERR_NOTFOUND);
	CHECK(strstr(err, "invoices") != NULL);
	req.list = "invoices";
	CHECK_EQ_INT(erp_demo_ops.read(e, &req, collect, &r, &nread, err, sizeof(err)),
	             APS_ERR_NOTFOUND);
	req.list = "vendors";
	req.modified_from = "yesterday";
	CHECK_EQ_INT(erp_demo_ops.read(e, &req, collect, &r, &nread, err, sizeof(err)),
	             APS_ERR_INVAL);
	CHECK(strstr(err, "yesterday") != NULL);
	req.modified_from = NULL;
	req.limit = 0;
	CHECK_EQ_INT(erp_demo_ops.read(e, &req, collect, &r, &nread, err, sizeof(err)),
	             APS_ERR_INVAL);
	req.limit = 10;
	req.order = ERP_ORDER_MODIFIED;
	req.after_key = "V0000001";
	CHECK_EQ_INT(erp_demo_ops.read(e, &req, collect, &r, &nread, err, sizeof(err)),
	             APS_ERR_INVAL);
	/* Past the end: nothing, and no error. */
	req.order = ERP_ORDER_KEY;
	req.after_key = "~";
	CHECK_EQ_INT(erp_demo_ops.read(e, &req, collect, &r, &nread, err, sizeof(err)), APS_OK);
	CHECK_EQ_INT(nread, 0);
out:
	cJSON_Delete(r.all);
	if (e)
		erp_demo_ops.close(e);
}

int main(void)
{
	char err[512];
	int ok;

	snprintf(dir, sizeof(dir), "/tmp/apsync-demo-erp-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	tmp_path(path_a, sizeof(path_a), "a.db");
	tmp_path(path_b, sizeof(path_b), "b.db");
	tmp_path(path_c, sizeof(path_c), "c.db");
	ok = !demo_erp_generate(path_a, ROWS, SEED, err, sizeof(err)) &&
	     !demo_erp_generate(path_b, ROWS, SEED, err, sizeof(err)) &&
	     !demo_erp_generate(path_c, ROWS, SEED + 1, err, sizeof(err));
	if (!ok) {
		printf("Bail out! generating the demo ERP: %s\n", err);
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		return 1;
	}
	RUN(generate_is_deterministic);
	RUN(generate_shape);
	RUN(generate_refuses_overwrite_and_bad_input);
	RUN(open_errors);
	RUN(identity);
	RUN(count_and_key_paging);
	RUN(vendor_values);
	RUN(modified_paging_with_ties);
	RUN(window_bounds);
	RUN(purchase_orders_and_receivings);
	RUN(bank_account_numbers_masked);
	RUN(locked_company_is_busy);
	RUN(request_errors_and_early_stop);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
