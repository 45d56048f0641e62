/*
 * Profile-driven SQL connector: an ERP whose data sits in SQL tables is
 * described by a mapping profile, a JSON data file (agent/erp/profiles/),
 * and read through sqldb (a SQLite file directly, anything else by ODBC).
 * See agent/erp/profiles/README.md for the profile format.
 *
 *   --erp odbc:PROFILE:CONNECTION    e.g. odbc:sage100:DSN=SAGE100_ABC
 *   --erp sqlite:PROFILE:PATH        a SQLite file mapped by PROFILE
 *
 * PROFILE is a name found in the profile directory (--profiles, default the
 * installed one) or a path to a .json file.
 *
 * Each read becomes one SELECT built from the list's expressions, prepared
 * once per (list, order, bounds) and kept for the life of the connection.
 * Keys are compared and ordered in binary collation whatever the database,
 * because the broker detects deletions by key ranges in byte order; times
 * keep the ERP's own text (never truncated) with the profile's offset.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erp.h"
#include "err.h"
#include "sqldb.h"
#include "sqlmap.h"
#include "plat.h"
#include "util.h"

#define MAX_COLS   32
#define MAX_FIELDS 16
#define MAX_BINDS  16
#define TS_LEN     48
#define SQL_LEN    8192

enum kind {
	K_NULL = 0, /* the ERP does not have it */
	K_TEXT,
	K_TS,       /* the ERP's time text + the profile's offset */
	K_BOOL,     /* 0/1, true/false, Y/N → JSON true/false */
	K_MAP,      /* an ERP code → a canonical value */
	K_CURRENCY, /* the company's currency */
	K_LINES,    /* a value → rows of a sub-query as a JSON array */
	K_JSON,     /* the expression yields JSON text */
};

/* What the ?s of a statement are, in order. */
enum bind {
	BD_COMPANY,
	BD_AFTER_KEY,
	BD_AFTER_MOD,
	BD_FROM,
	BD_TO,
	BD_LIMIT,
	BD_VALUE, /* a lines query's parent value */
};

#define B_AFTER 0x1
#define B_FROM  0x2
#define B_TO    0x4
#define NBOUNDS 8

struct pair {
	char *code, *name;
};

struct field {
	char *name;
	int is_int;
};

struct stmt {
	struct sqldb_stmt *st;
	int nbinds;
	enum bind binds[MAX_BINDS];
};

struct col {
	enum kind kind;
	char *sql; /* expression over the list's tables */
	int npairs;
	struct pair *pairs;
	char *dflt;  /* K_MAP: the value of an unmapped code; NULL: the row is refused */
	char *lines; /* K_LINES: the sub-query, with {value} (and {company}) */
	int nfields;
	struct field fields[MAX_FIELDS];
	struct stmt lines_st;
};

struct list {
	const struct erp_list *canon;
	char *from, *where, *key, *modified;
	struct col cols[MAX_COLS];
	struct stmt read[2][NBOUNDS];
	struct stmt count;
};

struct company {
	char code[64], name[128], currency[8];
};

struct erp {
	struct sqldb *db;
	void *ext; /* the state of a connector built on sqlmap (its writes) */
	void (*ext_free)(void *ext);
	char profile_name[64];
	char product[64], version[32];
	int offset_min;
	char offset[8];
	char *stamp_param; /* how a time parameter is written, e.g. CAST(? AS TIMESTAMP) */
	char *clock_sql, *busy_sql, *po_types;
	int ncompanies;
	struct company companies[ERP_MAX_COMPANIES];
	int nlists;
	struct list lists[ERP_MAX_LISTS];
	struct stmt clock_st, busy_st;
	/* Scratch for the row being handed over. */
	char ts[MAX_COLS][TS_LEN];
	struct aps_buf lines[MAX_COLS];
};

/* ---- profile loading -------------------------------------------------------- */

/* A SQL text in a profile: a string, or an object keyed by dialect with an
 * optional "default". NULL when absent for this dialect. */
static const char *dialect_sql(const struct erp *e, const cJSON *v)
{
	const cJSON *d;

	if (cJSON_IsString(v))
		return v->valuestring;
	if (!cJSON_IsObject(v))
		return NULL;
	d = cJSON_GetObjectItemCaseSensitive(v, sqldb_dialect_name(sqldb_dialect(e->db)));
	if (!cJSON_IsString(d))
		d = cJSON_GetObjectItemCaseSensitive(v, "default");
	return cJSON_IsString(d) ? d->valuestring : NULL;
}

static char *dup_sql(const struct erp *e, const cJSON *v)
{
	const char *s = dialect_sql(e, v);

	return s ? strdup(s) : NULL;
}

static int bad_profile(char *err, size_t errlen, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int bad_profile(char *err, size_t errlen, const char *name, const char *fmt, ...)
{
	char what[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "the ERP profile %s is not valid: %s", name, what);
	return APS_ERR_INVAL;
}

static cJSON *read_profile(const char *dir, const char *name, char *path, size_t pathlen,
			   char *err, size_t errlen)
{
	char *text = NULL;
	cJSON *j;
	int rc;

	if (strchr(name, '/') || strstr(name, ".json"))
		snprintf(path, pathlen, "%s", name);
	else
		snprintf(path, pathlen, "%s/%s.json", dir, name);
	rc = aps_read_file(path, 4u << 20, &text, NULL);
	if (rc) {
		snprintf(err, errlen,
			 "cannot read the ERP profile %s: %s (profiles are looked up in %s; "
			 "give a name found there or a path to a .json file)",
			 path, rc == APS_ERR_IO || rc == APS_ERR_NOTFOUND ? strerror(errno)
									: aps_strerror(rc),
			 dir);
		return NULL;
	}
	j = cJSON_Parse(text);
	free(text);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		snprintf(err, errlen, "the ERP profile %s is not a JSON object", path);
		return NULL;
	}
	return j;
}

static enum kind kind_of(const char *t)
{
	static const struct {
		const char *name;
		enum kind kind;
	} kinds[] = {{"text", K_TEXT},	   {"timestamp", K_TS},		    {"bool", K_BOOL},
		     {"map", K_MAP},	   {"company_currency", K_CURRENCY}, {"lines", K_LINES},
		     {"json", K_JSON},	   {"null", K_NULL}};
	size_t i;

	for (i = 0; i < APS_ARRAY_LEN(kinds); i++)
		if (!strcmp(t, kinds[i].name))
			return kinds[i].kind;
	return (enum kind) - 1;
}

static int load_col(struct erp *e, const char *pname, const char *lname, const char *cname,
		    const cJSON *v, struct col *c, char *err, size_t errlen)
{
	const cJSON *t, *m, *it, *f;
	int n;

	if (cJSON_IsString(v) || (cJSON_IsObject(v) && !cJSON_GetObjectItem(v, "sql") &&
				  !cJSON_GetObjectItem(v, "type"))) {
		c->kind = K_TEXT;
		c->sql = dup_sql(e, v);
		return c->sql ? APS_OK
			      : bad_profile(err, errlen, pname, "%s.%s has no SQL for %s", lname,
					    cname, sqldb_dialect_name(sqldb_dialect(e->db)));
	}
	if (!cJSON_IsObject(v))
		return bad_profile(err, errlen, pname, "%s.%s is neither SQL nor an object", lname,
				   cname);
	t = cJSON_GetObjectItemCaseSensitive(v, "type");
	m = cJSON_GetObjectItemCaseSensitive(v, "map");
	c->kind = cJSON_IsString(t) ? kind_of(t->valuestring) : m ? K_MAP : K_TEXT;
	if ((int)c->kind < 0)
		return bad_profile(err, errlen, pname, "%s.%s has an unknown type \"%.32s\"", lname,
				   cname, t->valuestring);
	if (c->kind != K_NULL && c->kind != K_CURRENCY) {
		c->sql = dup_sql(e, cJSON_GetObjectItemCaseSensitive(v, "sql"));
		if (!c->sql)
			return bad_profile(err, errlen, pname, "%s.%s has no \"sql\" for %s", lname,
					   cname, sqldb_dialect_name(sqldb_dialect(e->db)));
	}
	if (c->kind == K_MAP) {
		if (!cJSON_IsObject(m))
			return bad_profile(err, errlen, pname, "%s.%s has no \"map\" object", lname,
					   cname);
		n = cJSON_GetArraySize(m);
		c->pairs = calloc((size_t)n + 1, sizeof(*c->pairs));
		if (!c->pairs)
			return APS_ERR_NOMEM;
		cJSON_ArrayForEach(it, m)
		{
			if (!cJSON_IsString(it))
				return bad_profile(err, errlen, pname, "%s.%s maps \"%.32s\" to a non-string",
						   lname, cname, it->string);
			c->pairs[c->npairs].code = strdup(it->string);
			c->pairs[c->npairs].name = strdup(it->valuestring);
			if (!c->pairs[c->npairs].code || !c->pairs[c->npairs].name)
				return APS_ERR_NOMEM;
			c->npairs++;
		}
		it = cJSON_GetObjectItemCaseSensitive(v, "default");
		if (cJSON_IsString(it) && !(c->dflt = strdup(it->valuestring)))
			return APS_ERR_NOMEM;
	}
	if (c->kind == K_LINES) {
		c->lines = dup_sql(e, cJSON_GetObjectItemCaseSensitive(v, "query"));
		f = cJSON_GetObjectItemCaseSensitive(v, "fields");
		if (!c->lines || !cJSON_IsArray(f) || cJSON_GetArraySize(f) < 1 ||
		    cJSON_GetArraySize(f) > MAX_FIELDS)
			return bad_profile(err, errlen, pname,
					   "%s.%s needs a \"query\" and 1..%d \"fields\"", lname,
					   cname, MAX_FIELDS);
		cJSON_ArrayForEach(it, f)
		{
			const char *colon;

			if (!cJSON_IsString(it))
				return bad_profile(err, errlen, pname, "%s.%s has a non-string field",
						   lname, cname);
			colon = strchr(it->valuestring, ':');
			c->fields[c->nfields].name =
				colon ? strndup(it->valuestring, (size_t)(colon - it->valuestring))
				      : strdup(it->valuestring);
			if (!c->fields[c->nfields].name)
				return APS_ERR_NOMEM;
			c->fields[c->nfields].is_int = colon && !strcmp(colon, ":int");
			c->nfields++;
		}
	}
	return APS_OK;
}

static int load_list(struct erp *e, const char *pname, const char *lname, const cJSON *v,
		     struct list *l, char *err, size_t errlen)
{
	const cJSON *cols, *cv;
	int i, rc;

	l->canon = erp_list_find(lname);
	if (!l->canon)
		return bad_profile(err, errlen, pname,
				   "\"%.64s\" is not a canonical list (see proto/LISTS.md)", lname);
	if (!cJSON_IsObject(v))
		return bad_profile(err, errlen, pname, "list %s is not an object", lname);
	l->from = dup_sql(e, cJSON_GetObjectItemCaseSensitive(v, "from"));
	l->key = dup_sql(e, cJSON_GetObjectItemCaseSensitive(v, "key"));
	l->where = dup_sql(e, cJSON_GetObjectItemCaseSensitive(v, "where"));
	l->modified = dup_sql(e, cJSON_GetObjectItemCaseSensitive(v, "modified"));
	if (!l->from || !l->key)
		return bad_profile(err, errlen, pname, "list %s needs \"from\" and \"key\"", lname);
	cols = cJSON_GetObjectItemCaseSensitive(v, "columns");
	if (!cJSON_IsObject(cols))
		return bad_profile(err, errlen, pname, "list %s has no \"columns\" object", lname);
	cJSON_ArrayForEach(cv, cols)
	{
		if (erp_list_col(l->canon, cv->string) < 0)
			return bad_profile(err, errlen, pname,
					   "list %s has no column \"%.64s\" (see proto/LISTS.md)",
					   lname, cv->string);
	}
	for (i = 0; i < l->canon->ncols; i++) {
		cv = cJSON_GetObjectItemCaseSensitive(cols, l->canon->cols[i]);
		if (!cv && !strcmp(l->canon->cols[i], l->canon->key)) {
			l->cols[i].kind = K_TEXT; /* the key column defaults to the key */
			l->cols[i].sql = strdup(l->key);
			if (!l->cols[i].sql)
				return APS_ERR_NOMEM;
			continue;
		}
		if (!cv)
			continue; /* K_NULL */
		rc = load_col(e, pname, lname, l->canon->cols[i], cv, &l->cols[i], err, errlen);
		if (rc)
			return rc == APS_ERR_NOMEM ? (snprintf(err, errlen, "out of memory"), rc) : rc;
	}
	return APS_OK;
}

static int parse_offset(const char *s, int *min)
{
	if (!strcmp(s, "UTC") || !strcmp(s, "Z")) {
		*min = 0;
		return APS_OK;
	}
	if (!strcmp(s, "local")) {
		*min = aps_plat_utc_offset(time(NULL));
		return APS_OK;
	}
	return aps_utc_offset_parse(s, min);
}

static int load_profile(struct erp *e, const cJSON *p, const char *pname, char *err,
			size_t errlen)
{
	const cJSON *lists, *lv, *v;
	const char *s;
	int rc, a;

	v = cJSON_GetObjectItemCaseSensitive(p, "product");
	if (!cJSON_IsString(v))
		return bad_profile(err, errlen, pname, "it has no \"product\"");
	snprintf(e->product, sizeof(e->product), "%s", v->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(p, "version");
	snprintf(e->version, sizeof(e->version), "%s",
		 cJSON_IsString(v) ? v->valuestring : "unknown");
	v = cJSON_GetObjectItemCaseSensitive(p, "timezone");
	if (parse_offset(cJSON_IsString(v) ? v->valuestring : "local", &e->offset_min))
		return bad_profile(err, errlen, pname,
				   "\"timezone\" is UTC, local or an offset such as -05:00");
	a = e->offset_min < 0 ? -e->offset_min : e->offset_min;
	snprintf(e->offset, sizeof(e->offset), "%c%02d:%02d", e->offset_min < 0 ? '-' : '+',
		 (a / 60) % 100, a % 60);
	s = dialect_sql(e, cJSON_GetObjectItemCaseSensitive(p, "stamp_param"));
	e->stamp_param = strdup(s ? s : "?");
	e->clock_sql = dup_sql(e, cJSON_GetObjectItemCaseSensitive(p, "clock"));
	e->busy_sql = dup_sql(e, cJSON_GetObjectItemCaseSensitive(p, "busy"));
	v = cJSON_GetObjectItemCaseSensitive(p, "po_types");
	if (cJSON_IsString(v))
		e->po_types = strdup(v->valuestring);
	if (!e->stamp_param)
		return APS_ERR_NOMEM;
	lists = cJSON_GetObjectItemCaseSensitive(p, "lists");
	if (!cJSON_IsObject(lists) || !cJSON_GetArraySize(lists))
		return bad_profile(err, errlen, pname, "it has no \"lists\"");
	cJSON_ArrayForEach(lv, lists)
	{
		if (e->nlists == ERP_MAX_LISTS)
			return bad_profile(err, errlen, pname, "more than %d lists", ERP_MAX_LISTS);
		rc = load_list(e, pname, lv->string, lv, &e->lists[e->nlists], err, errlen);
		if (rc)
			return rc;
		e->nlists++;
	}
	return APS_OK;
}

/* ---- statements ------------------------------------------------------------- */

struct sql_builder {
	struct aps_buf b;
	struct stmt *st;
	int over;
};

static void add(struct sql_builder *sb, const char *s)
{
	if (aps_buf_append_str(&sb->b, s))
		sb->over = 1;
}

static void add_bind(struct sql_builder *sb, enum bind what, const char *form)
{
	const char *q = strchr(form, '?');

	if (sb->st->nbinds == MAX_BINDS || !q) {
		sb->over = 1;
		return;
	}
	sb->st->binds[sb->st->nbinds++] = what;
	if (aps_buf_append(&sb->b, form, (size_t)(q - form)) || aps_buf_append_str(&sb->b, "?") ||
	    aps_buf_append_str(&sb->b, q + 1))
		sb->over = 1;
}

/* Adds a profile's SQL text, turning {company} (and {value}) into bound ?s. */
static void add_expr(struct sql_builder *sb, const char *s)
{
	const char *p;

	while ((p = strchr(s, '{'))) {
		if (aps_buf_append(&sb->b, s, (size_t)(p - s)))
			sb->over = 1;
		if (!strncmp(p, "{company}", 9)) {
			add_bind(sb, BD_COMPANY, "?");
			s = p + 9;
		} else if (!strncmp(p, "{value}", 7)) {
			add_bind(sb, BD_VALUE, "?");
			s = p + 7;
		} else {
			add(sb, "{");
			s = p + 1;
		}
	}
	add(sb, s);
}

/* The key in binary (byte) order, whatever the database's default collation. */
static void add_key(struct sql_builder *sb, const struct erp *e, const struct list *l)
{
	add_expr(sb, l->key);
	switch (sqldb_dialect(e->db)) {
	case SQLDB_POSTGRESQL:
		add(sb, " COLLATE \"C\"");
		break;
	case SQLDB_MSSQL:
		add(sb, " COLLATE Latin1_General_BIN2");
		break;
	default:
		break;
	}
}

static int finish_stmt(struct erp *e, struct sql_builder *sb, char *err, size_t errlen)
{
	int rc;

	if (sb->over || aps_buf_terminate(&sb->b)) {
		aps_buf_free(&sb->b);
		snprintf(err, errlen, "internal error: a query of the ERP profile %s does not fit",
			 e->profile_name);
		return APS_ERR_INTERNAL;
	}
	rc = sqldb_prepare(e->db, (const char *)sb->b.data, &sb->st->st, err, errlen);
	aps_buf_free(&sb->b);
	return rc;
}

static int read_stmt(struct erp *e, struct list *l, enum erp_order order, unsigned mask,
		     struct stmt **out, char *err, size_t errlen)
{
	struct stmt *st = &l->read[order][mask];
	struct sql_builder sb = {.st = st};
	enum sqldb_dialect d = sqldb_dialect(e->db);
	int i, rc;

	*out = st;
	if (st->st)
		return APS_OK;
	st->nbinds = 0;
	add(&sb, "SELECT ");
	for (i = 0; i < l->canon->ncols; i++) {
		if (i)
			add(&sb, ", ");
		add_expr(&sb, l->cols[i].sql ? l->cols[i].sql : "NULL");
	}
	add(&sb, " FROM ");
	add_expr(&sb, l->from);
	add(&sb, " WHERE 1=1");
	if (l->where) {
		add(&sb, " AND (");
		add_expr(&sb, l->where);
		add(&sb, ")");
	}
	if ((mask & B_AFTER) && order == ERP_ORDER_KEY) {
		add(&sb, " AND ");
		add_key(&sb, e, l);
		add_bind(&sb, BD_AFTER_KEY, " > ?");
	}
	if ((mask & B_AFTER) && order == ERP_ORDER_MODIFIED) {
		add(&sb, " AND ((");
		add_expr(&sb, l->modified);
		add(&sb, " > ");
		add_bind(&sb, BD_AFTER_MOD, e->stamp_param);
		add(&sb, ") OR (");
		add_expr(&sb, l->modified);
		add(&sb, " = ");
		add_bind(&sb, BD_AFTER_MOD, e->stamp_param);
		add(&sb, " AND ");
		add_key(&sb, e, l);
		add_bind(&sb, BD_AFTER_KEY, " > ?");
		add(&sb, "))");
	}
	if (mask & B_FROM) {
		add(&sb, " AND ");
		add_expr(&sb, l->modified);
		add(&sb, " >= ");
		add_bind(&sb, BD_FROM, e->stamp_param);
	}
	if (mask & B_TO) {
		add(&sb, " AND ");
		add_expr(&sb, l->modified);
		add(&sb, " < ");
		add_bind(&sb, BD_TO, e->stamp_param);
	}
	add(&sb, " ORDER BY ");
	if (order == ERP_ORDER_MODIFIED) {
		add_expr(&sb, l->modified);
		add(&sb, ", ");
	}
	add_key(&sb, e, l);
	if (d == SQLDB_SQLITE || d == SQLDB_POSTGRESQL)
		add_bind(&sb, BD_LIMIT, " LIMIT ?");
	else if (d == SQLDB_MSSQL)
		add_bind(&sb, BD_LIMIT, " OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY");
	/* other dialects: the read stops fetching at the limit */
	rc = finish_stmt(e, &sb, err, errlen);
	return rc;
}

static int bind_all(struct stmt *st, const char *company, const char *after_key,
		    const char *after_mod, const char *from, const char *to, int limit,
		    const char *value)
{
	int i, rc = APS_OK;

	for (i = 0; i < st->nbinds && !rc; i++) {
		switch (st->binds[i]) {
		case BD_COMPANY:
			rc = sqldb_bind_text(st->st, i + 1, company);
			break;
		case BD_AFTER_KEY:
			rc = sqldb_bind_text(st->st, i + 1, after_key);
			break;
		case BD_AFTER_MOD:
			rc = sqldb_bind_text(st->st, i + 1, after_mod);
			break;
		case BD_FROM:
			rc = sqldb_bind_text(st->st, i + 1, from);
			break;
		case BD_TO:
			rc = sqldb_bind_text(st->st, i + 1, to);
			break;
		case BD_LIMIT:
			rc = sqldb_bind_int(st->st, i + 1, limit);
			break;
		case BD_VALUE:
			rc = sqldb_bind_text(st->st, i + 1, value);
			break;
		}
	}
	return rc;
}

/* ---- connection --------------------------------------------------------------- */

static void free_stmt(struct stmt *st)
{
	sqldb_finalize(st->st);
	st->st = NULL;
}

void sqlmap_close(struct erp *e)
{
	int i, j, k, m;
	struct col *c;

	if (!e)
		return;
	if (e->ext_free)
		e->ext_free(e->ext);
	for (i = 0; i < e->nlists; i++) {
		struct list *l = &e->lists[i];

		for (j = 0; j < 2; j++)
			for (k = 0; k < NBOUNDS; k++)
				free_stmt(&l->read[j][k]);
		free_stmt(&l->count);
		for (j = 0; j < MAX_COLS; j++) {
			c = &l->cols[j];
			free(c->sql);
			free(c->dflt);
			free(c->lines);
			for (m = 0; m < c->npairs; m++) {
				free(c->pairs[m].code);
				free(c->pairs[m].name);
			}
			free(c->pairs);
			for (m = 0; m < c->nfields; m++)
				free(c->fields[m].name);
			free_stmt(&c->lines_st);
		}
		free(l->from);
		free(l->where);
		free(l->key);
		free(l->modified);
	}
	for (i = 0; i < MAX_COLS; i++)
		aps_buf_free(&e->lines[i]);
	free_stmt(&e->clock_st);
	free_stmt(&e->busy_st);
	free(e->stamp_param);
	free(e->clock_sql);
	free(e->busy_sql);
	free(e->po_types);
	sqldb_close(e->db);
	free(e);
}

static int copy_text(char *dst, size_t len, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (!n || n >= len)
		return APS_ERR_ERP;
	memcpy(dst, src, n + 1);
	return APS_OK;
}

static int load_companies(struct erp *e, const cJSON *p, char *err, size_t errlen)
{
	struct stmt st = {0};
	struct sql_builder sb = {.st = &st};
	const char *sql = dialect_sql(e, cJSON_GetObjectItemCaseSensitive(p, "companies"));
	struct company *c;
	int rc, row;

	if (!sql)
		return bad_profile(err, errlen, e->profile_name,
				   "it has no \"companies\" query for %s",
				   sqldb_dialect_name(sqldb_dialect(e->db)));
	add(&sb, sql);
	rc = finish_stmt(e, &sb, err, errlen);
	while (!rc && !(rc = sqldb_step(st.st, &row, err, errlen)) && row) {
		if (e->ncompanies == ERP_MAX_COMPANIES) {
			snprintf(err, errlen, "the %s has more than %d companies",
				 sqldb_describe(e->db), ERP_MAX_COMPANIES);
			rc = APS_ERR_ERP;
			break;
		}
		c = &e->companies[e->ncompanies];
		if (copy_text(c->code, sizeof(c->code), sqldb_text(st.st, 0)) ||
		    copy_text(c->name, sizeof(c->name), sqldb_text(st.st, 1))) {
			snprintf(err, errlen,
				 "the %s has a company whose code or name is empty or too long "
				 "(\"%.64s\")",
				 sqldb_describe(e->db),
				 sqldb_text(st.st, 0) ? sqldb_text(st.st, 0) : "");
			rc = APS_ERR_ERP;
			break;
		}
		if (copy_text(c->currency, sizeof(c->currency), sqldb_text(st.st, 2)))
			c->currency[0] = '\0';
		e->ncompanies++;
	}
	free_stmt(&st);
	if (!rc && !e->ncompanies) {
		snprintf(err, errlen,
			 "the %s has no company (the %s profile found none); is it the right "
			 "database?",
			 sqldb_describe(e->db), e->profile_name);
		rc = APS_ERR_ERP;
	}
	return rc;
}

int sqlmap_open(const char *profile, const char *kind, const char *target,
		const struct erp_settings *cfg, struct erp **out, char *err, size_t errlen)
{
	char path[1024];
	struct erp *e;
	cJSON *p = NULL;
	int rc;

	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return APS_ERR_NOMEM;
	}
	p = read_profile(cfg && cfg->profiles ? cfg->profiles : APSYNC_PROFILE_DIR, profile, path,
			 sizeof(path), err, errlen);
	if (!p) {
		free(e);
		return APS_ERR_INVAL;
	}
	snprintf(e->profile_name, sizeof(e->profile_name), "%s", profile);
	if (!strcmp(kind, "sqlite"))
		rc = sqldb_open_sqlite(target, 0, &e->db, err, errlen);
	else
		rc = sqldb_open_odbc(target, &e->db, err, errlen);
	if (!rc)
		rc = load_profile(e, p, path, err, errlen);
	if (!rc)
		rc = load_companies(e, p, err, errlen);
	cJSON_Delete(p);
	if (rc) {
		sqlmap_close(e);
		return rc;
	}
	*out = e;
	return APS_OK;
}

/* "odbc:PROFILE:CONNECTION" and "sqlite:PROFILE:PATH" */
static int open_with_profile(const char *kind, const char *target,
			     const struct erp_settings *cfg, struct erp **out, char *err,
			     size_t errlen)
{
	const char *colon = strchr(target, ':');
	char profile[256];

	if (!colon || colon == target || (size_t)(colon - target) >= sizeof(profile)) {
		snprintf(err, errlen,
			 "--erp %s: needs PROFILE:%s, e.g. %s:sage100:%s", kind,
			 !strcmp(kind, "odbc") ? "CONNECTION" : "PATH", kind,
			 !strcmp(kind, "odbc") ? "DSN=SAGE100_ABC" : "/path/erp.db");
		return APS_ERR_INVAL;
	}
	memcpy(profile, target, (size_t)(colon - target));
	profile[colon - target] = '\0';
	return sqlmap_open(profile, kind, colon + 1, cfg, out, err, errlen);
}

static int sqlite_open(const char *target, const struct erp_settings *cfg, struct erp **out,
		       char *err, size_t errlen)
{
	return open_with_profile("sqlite", target, cfg, out, err, errlen);
}

int sqlmap_identity(struct erp *e, struct erp_identity *id, char *err, size_t errlen)
{
	struct erp_company *c;
	int i, j;

	(void)err;
	(void)errlen;
	memset(id, 0, sizeof(*id));
	snprintf(id->product, sizeof(id->product), "%s", e->product);
	snprintf(id->version, sizeof(id->version), "%s", e->version);
	for (i = 0; i < e->ncompanies; i++) {
		c = &id->companies[i];
		memcpy(c->code, e->companies[i].code, sizeof(c->code));
		memcpy(c->name, e->companies[i].name, sizeof(c->name));
		memcpy(c->currency, e->companies[i].currency, sizeof(c->currency));
		/* in canonical order, as a full sync reads them */
		for (j = 0; erp_lists[j]; j++)
			if (sqlmap_has_list(e, erp_lists[j]->name))
				c->lists[c->nlists++] = erp_lists[j]->name;
		c->po_types = e->po_types;
	}
	id->ncompanies = e->ncompanies;
	return APS_OK;
}

int sqlmap_has_list(const struct erp *e, const char *name)
{
	int i;

	for (i = 0; i < e->nlists; i++)
		if (!strcmp(e->lists[i].canon->name, name))
			return 1;
	return 0;
}

/* Finds the list and company of a request; refuses a busy ERP. */
static int find_target(struct erp *e, const char *company, const char *list, struct list **l,
		       const struct company **co, char *err, size_t errlen)
{
	struct sql_builder sb = {.st = &e->busy_st};
	int i, rc, row;

	*l = NULL;
	*co = NULL;
	for (i = 0; list && i < e->nlists; i++)
		if (!strcmp(e->lists[i].canon->name, list))
			*l = &e->lists[i];
	if (!*l) {
		snprintf(err, errlen, "%s has no list \"%.64s\" (its profile %s does not map it)",
			 e->product, list ? list : "", e->profile_name);
		return APS_ERR_NOTFOUND;
	}
	for (i = 0; company && i < e->ncompanies; i++)
		if (!strcmp(e->companies[i].code, company))
			*co = &e->companies[i];
	if (!*co) {
		snprintf(err, errlen, "company \"%.64s\" is not in the %s; check the company code",
			 company ? company : "", sqldb_describe(e->db));
		return APS_ERR_NOTFOUND;
	}
	if (!e->busy_sql)
		return APS_OK;
	if (!e->busy_st.st) {
		add_expr(&sb, e->busy_sql);
		rc = finish_stmt(e, &sb, err, errlen);
		if (rc)
			return rc;
	}
	rc = bind_all(&e->busy_st, company, NULL, NULL, NULL, NULL, 0, NULL);
	if (!rc)
		rc = sqldb_step(e->busy_st.st, &row, err, errlen);
	if (!rc && row) {
		snprintf(err, errlen, "%s is in use: %.300s; the sync will retry", e->product,
			 sqldb_text(e->busy_st.st, 0) ? sqldb_text(e->busy_st.st, 0)
						      : "the ERP holds a lock");
		rc = APS_ERR_BUSY;
	}
	sqldb_reset(e->busy_st.st);
	return rc;
}

int sqlmap_count(struct erp *e, const char *company, const char *list, int64_t *n,
			char *err, size_t errlen)
{
	const struct company *co;
	struct list *l;
	struct sql_builder sb;
	const char *v;
	int rc, row;

	*n = 0;
	rc = find_target(e, company, list, &l, &co, err, errlen);
	if (rc)
		return rc;
	if (!l->count.st) {
		sb = (struct sql_builder){.st = &l->count};
		add(&sb, "SELECT count(*) FROM ");
		add_expr(&sb, l->from);
		if (l->where) {
			add(&sb, " WHERE ");
			add_expr(&sb, l->where);
		}
		rc = finish_stmt(e, &sb, err, errlen);
		if (rc)
			return rc;
	}
	rc = bind_all(&l->count, company, NULL, NULL, NULL, NULL, 0, NULL);
	if (!rc)
		rc = sqldb_step(l->count.st, &row, err, errlen);
	if (!rc && row && (v = sqldb_text(l->count.st, 0)))
		*n = strtoll(v, NULL, 10);
	sqldb_reset(l->count.st);
	return rc;
}

/* A request's ISO 8601 time → the ERP's text. A time at the ERP's own offset
 * keeps its text exactly (so a row's own stamp resumes exactly after it);
 * another offset is converted. */
static int to_erp_time(const struct erp *e, const char *iso, char out[TS_LEN], char *err,
		       size_t errlen)
{
	int64_t ms;
	int off;
	size_t n = strlen(iso);
	char tmp[APS_TIME_LEN];

	if (n >= TS_LEN || aps_time_parse_offset(iso, &ms, &off)) {
		snprintf(err, errlen, "\"%.64s\" is not an ISO 8601 time with an offset", iso);
		return APS_ERR_INVAL;
	}
	if (n > 6 && !strcmp(iso + n - 6, e->offset)) {
		memcpy(out, iso, n - 6);
		out[n - 6] = '\0';
	} else {
		aps_time_format_offset(ms, e->offset_min, tmp);
		snprintf(out, TS_LEN, "%.*s", (int)strlen(tmp) - 6, tmp);
	}
	if (out[10] == 'T')
		out[10] = ' ';
	return APS_OK;
}

static int lines_json(struct erp *e, struct list *l, struct col *c, const struct company *co,
		      const char *value, struct aps_buf *out, char *err, size_t errlen)
{
	struct sql_builder sb = {.st = &c->lines_st};
	const char *v;
	int rc, row, i, first = 1;

	out->len = 0;
	if (!c->lines_st.st) {
		add_expr(&sb, c->lines);
		rc = finish_stmt(e, &sb, err, errlen);
		if (rc)
			return rc;
	}
	rc = bind_all(&c->lines_st, co->code, NULL, NULL, NULL, NULL, 0, value);
	if (rc || aps_buf_append_str(out, "[")) {
		snprintf(err, errlen, "out of memory reading %s", l->canon->name);
		return APS_ERR_NOMEM;
	}
	while (!(rc = sqldb_step(c->lines_st.st, &row, err, errlen)) && row) {
		if (aps_buf_append_str(out, first ? "{" : ",{"))
			rc = APS_ERR_NOMEM;
		first = 0;
		for (i = 0; i < c->nfields && !rc; i++) {
			v = sqldb_text(c->lines_st.st, i);
			if ((i && aps_buf_append_str(out, ",")) ||
			    aps_json_string(out, c->fields[i].name) || aps_buf_append_str(out, ":"))
				rc = APS_ERR_NOMEM;
			else if (!v)
				rc = aps_buf_append_str(out, "null");
			else if (c->fields[i].is_int)
				rc = aps_buf_printf(out, "%lld", strtoll(v, NULL, 10));
			else
				rc = aps_json_string(out, v);
		}
		if (!rc && aps_buf_append_str(out, "}"))
			rc = APS_ERR_NOMEM;
		if (rc) {
			snprintf(err, errlen, "out of memory reading %s", l->canon->name);
			break;
		}
	}
	sqldb_reset(c->lines_st.st);
	if (!rc && (aps_buf_append_str(out, "]") || aps_buf_terminate(out)))
		rc = APS_ERR_NOMEM;
	return rc;
}

static int is_true(const char *s)
{
	return s && (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "t") ||
		     !strcasecmp(s, "y") || !strcasecmp(s, "yes"));
}

/* Builds the canonical values of the current row into vals[0..ncols). */
static int row_values(struct erp *e, struct list *l, const struct company *co,
		      struct sqldb_stmt *st, struct aps_value *vals, char *err, size_t errlen)
{
	struct col *c;
	const char *s;
	size_t n;
	int i, m, rc = APS_OK;

	memset(vals, 0, sizeof(*vals) * (size_t)l->canon->ncols);
	for (i = 0; i < l->canon->ncols && !rc; i++) {
		c = &l->cols[i];
		s = c->sql ? sqldb_text(st, i) : NULL;
		switch (c->kind) {
		case K_NULL:
			break;
		case K_TEXT:
			if (s) {
				vals[i].type = APS_V_TEXT;
				vals[i].s = s;
			}
			break;
		case K_JSON:
			if (s) {
				vals[i].type = APS_V_JSON;
				vals[i].s = s;
			}
			break;
		case K_TS:
			if (!s)
				break;
			n = strlen(s);
			if (n < 19 || n + 7 > TS_LEN || s[4] != '-' || s[7] != '-') {
				snprintf(err, errlen,
					 "%s %s has a time \"%.40s\" that is not YYYY-MM-DD "
					 "HH:MM:SS[.fraction]",
					 l->canon->name, sqldb_text(st, 0) ? sqldb_text(st, 0) : "?", s);
				return APS_ERR_ERP;
			}
			memcpy(e->ts[i], s, n);
			e->ts[i][10] = 'T';
			memcpy(e->ts[i] + n, e->offset, 7);
			vals[i].type = APS_V_TEXT;
			vals[i].s = e->ts[i];
			break;
		case K_BOOL:
			vals[i].type = is_true(s) ? APS_V_TRUE : APS_V_FALSE;
			break;
		case K_MAP:
			for (m = 0; s && m < c->npairs && strcmp(c->pairs[m].code, s); m++)
				;
			if (s && m < c->npairs) {
				vals[i].type = APS_V_TEXT;
				vals[i].s = c->pairs[m].name;
			} else if (c->dflt) {
				vals[i].type = APS_V_TEXT;
				vals[i].s = c->dflt;
			} else {
				snprintf(err, errlen,
					 "%s %s has %s \"%.32s\", which the %s profile does not "
					 "map; add it to the profile's map",
					 l->canon->name, sqldb_text(st, 0) ? sqldb_text(st, 0) : "?",
					 l->canon->cols[i], s ? s : "NULL", e->profile_name);
				return APS_ERR_ERP;
			}
			break;
		case K_CURRENCY:
			if (co->currency[0]) {
				vals[i].type = APS_V_TEXT;
				vals[i].s = co->currency;
			}
			break;
		case K_LINES:
			rc = lines_json(e, l, c, co, s, &e->lines[i], err, errlen);
			vals[i].type = APS_V_JSON;
			vals[i].s = (const char *)e->lines[i].data;
			break;
		}
	}
	return rc;
}

int sqlmap_read(struct erp *e, const struct erp_read *req, erp_row_fn fn, void *ud,
		       int *nread, char *err, size_t errlen)
{
	char am[TS_LEN], mf[TS_LEN], mt[TS_LEN];
	struct aps_value vals[MAX_COLS];
	const struct company *co;
	struct list *l;
	struct stmt *st = NULL;
	unsigned mask = 0;
	int rc, row, n = 0;

	*nread = 0;
	rc = find_target(e, req->company, req->list, &l, &co, err, errlen);
	if (rc)
		return rc;
	if (req->limit < 1 || (req->order != ERP_ORDER_KEY && req->order != ERP_ORDER_MODIFIED)) {
		snprintf(err, errlen, "internal error: a read of %s with order %d and limit %d",
			 l->canon->name, (int)req->order, req->limit);
		return APS_ERR_INVAL;
	}
	if (!l->modified && (req->order == ERP_ORDER_MODIFIED || req->modified_from ||
			     req->modified_to)) {
		snprintf(err, errlen,
			 "%s keeps no modification time for %s; it is read whole and compared",
			 e->product, l->canon->name);
		return APS_ERR_INVAL;
	}
	if (req->order == ERP_ORDER_MODIFIED && !req->after_key != !req->after_modified) {
		snprintf(err, errlen,
			 "internal error: a read by modification time resumes from a key and "
			 "a time together");
		return APS_ERR_INVAL;
	}
	if (req->after_key)
		mask |= B_AFTER;
	if (req->order == ERP_ORDER_MODIFIED && req->after_modified)
		rc = to_erp_time(e, req->after_modified, am, err, errlen);
	if (!rc && req->modified_from) {
		mask |= B_FROM;
		rc = to_erp_time(e, req->modified_from, mf, err, errlen);
	}
	if (!rc && req->modified_to) {
		mask |= B_TO;
		rc = to_erp_time(e, req->modified_to, mt, err, errlen);
	}
	if (!rc)
		rc = read_stmt(e, l, req->order, mask, &st, err, errlen);
	if (!rc)
		rc = bind_all(st, req->company, req->after_key, am, mf, mt, req->limit, NULL);
	if (rc)
		return rc == APS_ERR_NOMEM ? (snprintf(err, errlen, "out of memory"), rc) : rc;
	while (n < req->limit && !(rc = sqldb_step(st->st, &row, err, errlen)) && row) {
		rc = row_values(e, l, co, st->st, vals, err, errlen);
		if (rc)
			break;
		n++;
		if (fn(ud, vals))
			break;
	}
	sqldb_reset(st->st);
	*nread = n;
	return rc;
}

int sqlmap_clock(struct erp *e, char out[40], char *err, size_t errlen)
{
	struct sql_builder sb = {.st = &e->clock_st};
	char iso[APS_TIME_LEN];
	const char *s;
	int rc, row;
	size_t n;

	if (!e->clock_sql) {
		snprintf(out, 40, "%s", aps_time_format_offset(aps_now_ms(), e->offset_min, iso));
		return APS_OK;
	}
	if (!e->clock_st.st) {
		add(&sb, e->clock_sql);
		rc = finish_stmt(e, &sb, err, errlen);
		if (rc)
			return rc;
	}
	rc = sqldb_step(e->clock_st.st, &row, err, errlen);
	s = !rc && row ? sqldb_text(e->clock_st.st, 0) : NULL;
	n = s ? strlen(s) : 0;
	if (!rc && (n < 19 || n + 7 > 40)) {
		snprintf(err, errlen, "the ERP's clock query gave \"%.40s\", not a time",
			 s ? s : "nothing");
		rc = APS_ERR_ERP;
	}
	if (!rc) {
		memcpy(out, s, n);
		out[10] = 'T';
		memcpy(out + n, e->offset, 7);
	}
	sqldb_reset(e->clock_st.st);
	return rc;
}

int sqlmap_stamped(struct erp *e, const char *list)
{
	int i;

	for (i = 0; i < e->nlists; i++)
		if (!strcmp(e->lists[i].canon->name, list))
			return e->lists[i].modified != NULL;
	return 0;
}

int sqlmap_fingerprint(struct erp *e, const char *company, const char *list,
			      char out[128], char *err, size_t errlen)
{
	(void)company;
	(void)list;
	(void)err;
	(void)errlen;
	return sqldb_fingerprint(e->db, out);
}

const char *sqlmap_product(const struct erp *e)
{
	return e->product;
}

struct sqldb *sqlmap_db(struct erp *e)
{
	return e->db;
}

void *sqlmap_ext(struct erp *e)
{
	return e->ext;
}

void sqlmap_set_ext(struct erp *e, void *ext, void (*ext_free)(void *ext))
{
	e->ext = ext;
	e->ext_free = ext_free;
}

const char *sqlmap_company_currency(const struct erp *e, const char *company)
{
	int i;

	for (i = 0; i < e->ncompanies; i++)
		if (!strcmp(e->companies[i].code, company))
			return e->companies[i].currency;
	return NULL;
}

const struct erp_ops erp_sqlite_ops = {
	.scheme = "sqlite",
	.description = "an ERP's SQLite file, mapped by a profile (sqlite:PROFILE:PATH)",
	.open = sqlite_open,
	.close = sqlmap_close,
	.identity = sqlmap_identity,
	.count = sqlmap_count,
	.clock = sqlmap_clock,
	.read = sqlmap_read,
	.stamped = sqlmap_stamped,
	.fingerprint = sqlmap_fingerprint,
};
