/*
 * sqldb: SQLite files directly, everything else through unixODBC.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sql.h>
#include <sqlext.h>
#include <sqlite3.h>

#include "err.h"
#include "plat.h"
#include "sqldb.h"

#define BUSY_TIMEOUT_MS 5000
#define MAX_PARAMS      32
#define MAX_COLS        64

struct param {
	int set, is_null, is_int;
	int64_t i;
	char *s;
	SQLLEN ind;
};

struct sqldb {
	enum sqldb_dialect dialect;
	char *path; /* a SQLite file */
	char what[300];
	sqlite3 *lite;
	SQLHENV env;
	SQLHDBC dbc;
};

struct sqldb_stmt {
	struct sqldb *db;
	sqlite3_stmt *lite;
	SQLHSTMT h;
	int executed, ncols;
	struct param params[MAX_PARAMS];
	/* ODBC: the current row's values, fetched eagerly in column order. */
	char *vals[MAX_COLS];
	size_t caps[MAX_COLS];
	int nulls[MAX_COLS];
};

const char *sqldb_dialect_name(enum sqldb_dialect d)
{
	switch (d) {
	case SQLDB_SQLITE:
		return "sqlite";
	case SQLDB_POSTGRESQL:
		return "postgresql";
	case SQLDB_MSSQL:
		return "mssql";
	default:
		return "other";
	}
}

enum sqldb_dialect sqldb_dialect(const struct sqldb *db)
{
	return db->dialect;
}

const char *sqldb_describe(const struct sqldb *db)
{
	return db->what;
}

/* ---- SQLite --------------------------------------------------------------- */

static int lite_fail(struct sqldb *db, int src, const char *doing, char *err, size_t errlen)
{
	switch (src & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		snprintf(err, errlen, "the %s is locked by another program while %s; it will be "
			 "tried again", db->what, doing);
		return APS_ERR_BUSY;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		snprintf(err, errlen, "the %s is not a SQLite database or is damaged (%s) while %s",
			 db->what, sqlite3_errstr(src), doing);
		return APS_ERR_ERP;
	case SQLITE_CANTOPEN:
		snprintf(err, errlen, "cannot open the %s while %s: %s", db->what, doing,
			 db->lite ? sqlite3_errmsg(db->lite) : sqlite3_errstr(src));
		return APS_ERR_NOTFOUND;
	default:
		snprintf(err, errlen, "the %s failed while %s: %s", db->what, doing,
			 db->lite ? sqlite3_errmsg(db->lite) : sqlite3_errstr(src));
		return APS_ERR_ERP;
	}
}

int sqldb_open_sqlite(const char *path, int writable, struct sqldb **out, char *err,
		      size_t errlen)
{
	struct sqldb *db;
	int src, rc;

	*out = NULL;
	db = calloc(1, sizeof(*db));
	if (!db) {
		snprintf(err, errlen, "out of memory");
		return APS_ERR_NOMEM;
	}
	db->dialect = SQLDB_SQLITE;
	snprintf(db->what, sizeof(db->what), "SQLite file %s", path);
	db->path = strdup(path);
	if (!db->path) {
		free(db);
		snprintf(err, errlen, "out of memory");
		return APS_ERR_NOMEM;
	}
	src = sqlite3_open_v2(path, &db->lite,
			      (writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) |
				      SQLITE_OPEN_NOMUTEX,
			      NULL);
	if (src == SQLITE_OK) {
		sqlite3_extended_result_codes(db->lite, 1);
		sqlite3_busy_timeout(db->lite, BUSY_TIMEOUT_MS);
		/* The first read of the file: a foreign or damaged file fails here. */
		src = sqlite3_exec(db->lite, "PRAGMA schema_version", NULL, NULL, NULL);
	}
	if (src != SQLITE_OK) {
		rc = lite_fail(db, src, "opening it", err, errlen);
		sqldb_close(db);
		return rc;
	}
	*out = db;
	return APS_OK;
}

/* ---- ODBC ----------------------------------------------------------------- */

/* The first diagnostic record of a handle: SQLSTATE and message. */
static void odbc_diag(SQLSMALLINT type, SQLHANDLE h, char state[6], char *msg, size_t msglen)
{
	SQLCHAR st[6] = "", text[512] = "";
	SQLINTEGER native = 0;
	SQLSMALLINT len = 0;

	if (!SQL_SUCCEEDED(SQLGetDiagRec(type, h, 1, st, &native, text, sizeof(text), &len))) {
		snprintf(state, 6, "?????");
		snprintf(msg, msglen, "no diagnostic from the driver");
		return;
	}
	memcpy(state, st, 6);
	state[5] = '\0';
	snprintf(msg, msglen, "%s", (const char *)text);
}

/* SQLSTATEs and messages that mean "locked or busy now, try later". */
static int odbc_busy(const char *state, const char *msg)
{
	static const char *const states[] = {"HYT00", "HYT01", "40001", "40P01", "55P03", "57014",
					     NULL};
	int i;

	for (i = 0; states[i]; i++)
		if (!strcmp(state, states[i]))
			return 1;
	return strstr(msg, "database is locked") || strstr(msg, "is busy");
}

static int odbc_fail(struct sqldb *db, SQLSMALLINT type, SQLHANDLE h, const char *doing,
		     char *err, size_t errlen)
{
	char state[6], msg[512];

	odbc_diag(type, h, state, msg, sizeof(msg));
	if (odbc_busy(state, msg)) {
		snprintf(err, errlen, "the %s is busy while %s (%s %s); it will be tried again",
			 db->what, doing, state, msg);
		return APS_ERR_BUSY;
	}
	snprintf(err, errlen, "the %s failed while %s: %s %s", db->what, doing, state, msg);
	/* Class 08: connection problems; IM: driver manager (no such DSN or driver). */
	if (!strncmp(state, "08", 2) || !strncmp(state, "IM", 2))
		return APS_ERR_IO;
	return APS_ERR_ERP;
}

/* The connection string without secrets, for messages. */
static void describe_odbc(char *out, size_t len, const char *connstr)
{
	const char *p = connstr, *semi, *eq;
	size_t n = 0;
	int w;

	n = (size_t)snprintf(out, len, "ODBC data source ");
	while (*p && n < len) {
		semi = strchr(p, ';');
		if (!semi)
			semi = p + strlen(p);
		eq = memchr(p, '=', (size_t)(semi - p));
		if (eq && ((eq - p == 3 && !strncasecmp(p, "PWD", 3)) ||
			   (eq - p == 8 && !strncasecmp(p, "PASSWORD", 8))))
			w = snprintf(out + n, len - n, "%.*s=***%s", (int)(eq - p), p,
				     *semi ? ";" : "");
		else
			w = snprintf(out + n, len - n, "%.*s", (int)(semi - p + (*semi != 0)), p);
		if (w < 0)
			break;
		n += (size_t)w;
		p = *semi ? semi + 1 : semi;
	}
}

int sqldb_open_odbc(const char *connstr, struct sqldb **out, char *err, size_t errlen)
{
	struct sqldb *db;
	SQLCHAR name[128] = "";
	SQLSMALLINT len = 0;
	SQLRETURN r;
	int rc;

	*out = NULL;
	db = calloc(1, sizeof(*db));
	if (!db) {
		snprintf(err, errlen, "out of memory");
		return APS_ERR_NOMEM;
	}
	describe_odbc(db->what, sizeof(db->what), connstr);
	if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &db->env)) ||
	    !SQL_SUCCEEDED(SQLSetEnvAttr(db->env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3,
					 0)) ||
	    !SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, db->env, &db->dbc))) {
		snprintf(err, errlen, "cannot start the ODBC driver manager (unixODBC)");
		sqldb_close(db);
		return APS_ERR_INTERNAL;
	}
	SQLSetConnectAttr(db->dbc, SQL_ATTR_LOGIN_TIMEOUT, (SQLPOINTER)15, 0);
	r = SQLDriverConnect(db->dbc, NULL, (SQLCHAR *)connstr, SQL_NTS, NULL, 0, NULL,
			     SQL_DRIVER_NOPROMPT);
	if (!SQL_SUCCEEDED(r)) {
		rc = odbc_fail(db, SQL_HANDLE_DBC, db->dbc, "connecting", err, errlen);
		SQLFreeHandle(SQL_HANDLE_DBC, db->dbc);
		db->dbc = NULL;
		sqldb_close(db);
		return rc == APS_ERR_ERP ? APS_ERR_IO : rc;
	}
	/* Reads only: a hint drivers may use to avoid locks. */
	SQLSetConnectAttr(db->dbc, SQL_ATTR_ACCESS_MODE, (SQLPOINTER)SQL_MODE_READ_ONLY, 0);
	if (SQL_SUCCEEDED(SQLGetInfo(db->dbc, SQL_DBMS_NAME, name, sizeof(name), &len))) {
		if (strstr((char *)name, "PostgreSQL"))
			db->dialect = SQLDB_POSTGRESQL;
		else if (strstr((char *)name, "SQLite"))
			db->dialect = SQLDB_SQLITE;
		else if (strstr((char *)name, "SQL Server"))
			db->dialect = SQLDB_MSSQL;
		else
			db->dialect = SQLDB_OTHER;
	} else {
		db->dialect = SQLDB_OTHER;
	}
	*out = db;
	return APS_OK;
}

void sqldb_close(struct sqldb *db)
{
	if (!db)
		return;
	if (db->lite)
		sqlite3_close(db->lite);
	if (db->dbc) {
		SQLDisconnect(db->dbc);
		SQLFreeHandle(SQL_HANDLE_DBC, db->dbc);
	}
	if (db->env)
		SQLFreeHandle(SQL_HANDLE_ENV, db->env);
	free(db->path);
	free(db);
}

int sqldb_fingerprint(const struct sqldb *db, char out[128])
{
	static const char *const suffixes[] = {"", "-wal", "-journal"};
	char path[4200];
	int64_t size, mtime;
	size_t i, n = 0;

	if (!db->path)
		return APS_ERR_NOTFOUND;
	out[0] = '\0';
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", db->path, suffixes[i]);
		if (aps_file_stamp(path, &size, &mtime)) {
			if (!i)
				return APS_ERR_NOTFOUND;
			continue;
		}
		n += (size_t)snprintf(out + n, 128 - n, "%s%lld.%lld.%09lld", i ? "/" : "",
				      (long long)size, (long long)(mtime / 1000000000),
				      (long long)(mtime % 1000000000));
		if (n >= 128)
			return APS_ERR_RANGE;
	}
	return APS_OK;
}

/* ---- statements ------------------------------------------------------------ */

int sqldb_prepare(struct sqldb *db, const char *sql, struct sqldb_stmt **out, char *err,
		  size_t errlen)
{
	struct sqldb_stmt *st;
	int src, rc;

	*out = NULL;
	st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return APS_ERR_NOMEM;
	}
	st->db = db;
	if (db->lite) {
		src = sqlite3_prepare_v3(db->lite, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->lite,
					 NULL);
		if (src != SQLITE_OK) {
			rc = lite_fail(db, src, "preparing a query", err, errlen);
			/* A missing table or column: not the ERP or version expected. */
			if ((src & 0xff) == SQLITE_ERROR)
				snprintf(err, errlen,
					 "the %s does not have what this ERP's profile reads (%s); "
					 "check that it is the right ERP and version",
					 db->what, sqlite3_errmsg(db->lite));
			free(st);
			return rc;
		}
		st->ncols = sqlite3_column_count(st->lite);
		*out = st;
		return APS_OK;
	}
	if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, db->dbc, &st->h))) {
		rc = odbc_fail(db, SQL_HANDLE_DBC, db->dbc, "preparing a query", err, errlen);
		free(st);
		return rc;
	}
	if (!SQL_SUCCEEDED(SQLPrepare(st->h, (SQLCHAR *)sql, SQL_NTS))) {
		rc = odbc_fail(db, SQL_HANDLE_STMT, st->h, "preparing a query", err, errlen);
		SQLFreeHandle(SQL_HANDLE_STMT, st->h);
		free(st);
		return rc;
	}
	*out = st;
	return APS_OK;
}

static struct param *param(struct sqldb_stmt *st, int i)
{
	struct param *p;

	if (i < 1 || i > MAX_PARAMS)
		return NULL;
	p = &st->params[i - 1];
	free(p->s);
	memset(p, 0, sizeof(*p));
	p->set = 1;
	return p;
}

int sqldb_bind_text(struct sqldb_stmt *st, int i, const char *v)
{
	struct param *p = param(st, i);

	if (!p)
		return APS_ERR_RANGE;
	if (!v)
		p->is_null = 1;
	else if (!(p->s = strdup(v)))
		return APS_ERR_NOMEM;
	if (st->lite && (v ? sqlite3_bind_text(st->lite, i, v, -1, SQLITE_TRANSIENT)
			   : sqlite3_bind_null(st->lite, i)) != SQLITE_OK)
		return APS_ERR_RANGE;
	return APS_OK;
}

int sqldb_bind_int(struct sqldb_stmt *st, int i, int64_t v)
{
	struct param *p = param(st, i);

	if (!p)
		return APS_ERR_RANGE;
	p->is_int = 1;
	p->i = v;
	if (st->lite && sqlite3_bind_int64(st->lite, i, v) != SQLITE_OK)
		return APS_ERR_RANGE;
	return APS_OK;
}

static int odbc_execute(struct sqldb_stmt *st, char *err, size_t errlen)
{
	SQLSMALLINT ncols = 0;
	struct param *p;
	SQLRETURN r;
	int i;

	for (i = 0; i < MAX_PARAMS; i++) {
		p = &st->params[i];
		if (!p->set)
			continue;
		if (p->is_int) {
			p->ind = 0;
			r = SQLBindParameter(st->h, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT,
					     SQL_C_SBIGINT, SQL_BIGINT, 0, 0, &p->i, 0, &p->ind);
		} else {
			p->ind = p->is_null ? SQL_NULL_DATA : (SQLLEN)strlen(p->s);
			r = SQLBindParameter(st->h, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT,
					     SQL_C_CHAR, SQL_VARCHAR,
					     p->is_null ? 1 : (SQLULEN)strlen(p->s) + 1, 0,
					     p->is_null ? NULL : p->s, 0, &p->ind);
		}
		if (!SQL_SUCCEEDED(r))
			return odbc_fail(st->db, SQL_HANDLE_STMT, st->h, "binding a parameter",
					 err, errlen);
	}
	r = SQLExecute(st->h);
	if (!SQL_SUCCEEDED(r) && r != SQL_NO_DATA)
		return odbc_fail(st->db, SQL_HANDLE_STMT, st->h, "reading", err, errlen);
	if (!SQL_SUCCEEDED(SQLNumResultCols(st->h, &ncols)))
		ncols = 0;
	if (ncols > MAX_COLS) {
		snprintf(err, errlen, "a query of the %s returns %d columns, more than %d",
			 st->db->what, (int)ncols, MAX_COLS);
		return APS_ERR_RANGE;
	}
	st->ncols = ncols;
	return APS_OK;
}

/* Reads column i of the fetched row as text, whatever its length. */
static int odbc_get(struct sqldb_stmt *st, int i, char *err, size_t errlen)
{
	size_t have = 0, want;
	SQLLEN ind = 0;
	SQLRETURN r;
	char *p;

	if (!st->caps[i]) {
		st->vals[i] = malloc(256);
		if (!st->vals[i])
			return APS_ERR_NOMEM;
		st->caps[i] = 256;
	}
	for (;;) {
		r = SQLGetData(st->h, (SQLUSMALLINT)(i + 1), SQL_C_CHAR, st->vals[i] + have,
			       (SQLLEN)(st->caps[i] - have), &ind);
		if (r == SQL_NO_DATA)
			break;
		if (!SQL_SUCCEEDED(r))
			return odbc_fail(st->db, SQL_HANDLE_STMT, st->h, "reading a value", err,
					 errlen);
		if (ind == SQL_NULL_DATA) {
			st->nulls[i] = 1;
			return APS_OK;
		}
		if (r == SQL_SUCCESS) {
			have += ind >= 0 ? (size_t)ind : strlen(st->vals[i] + have);
			break;
		}
		/* Truncated: this part filled the buffer but its terminator. */
		have = st->caps[i] - 1;
		want = ind > 0 && ind != SQL_NO_TOTAL ? have + (size_t)ind + 1 : st->caps[i] * 2;
		if (want <= st->caps[i])
			want = st->caps[i] * 2;
		p = realloc(st->vals[i], want);
		if (!p)
			return APS_ERR_NOMEM;
		st->vals[i] = p;
		st->caps[i] = want;
	}
	st->vals[i][have] = '\0';
	st->nulls[i] = 0;
	return APS_OK;
}

int sqldb_step(struct sqldb_stmt *st, int *row, char *err, size_t errlen)
{
	SQLRETURN r;
	int rc, i, src;

	*row = 0;
	if (st->lite) {
		src = sqlite3_step(st->lite);
		if (src == SQLITE_ROW)
			*row = 1;
		else if (src != SQLITE_DONE)
			return lite_fail(st->db, src, "reading", err, errlen);
		return APS_OK;
	}
	if (!st->executed) {
		rc = odbc_execute(st, err, errlen);
		if (rc)
			return rc;
		st->executed = 1;
	}
	if (!st->ncols)
		return APS_OK; /* no result set */
	r = SQLFetch(st->h);
	if (r == SQL_NO_DATA)
		return APS_OK;
	if (!SQL_SUCCEEDED(r))
		return odbc_fail(st->db, SQL_HANDLE_STMT, st->h, "reading", err, errlen);
	for (i = 0; i < st->ncols; i++) {
		rc = odbc_get(st, i, err, errlen);
		if (rc == APS_ERR_NOMEM)
			snprintf(err, errlen, "out of memory reading the %s", st->db->what);
		if (rc)
			return rc;
	}
	*row = 1;
	return APS_OK;
}

int sqldb_ncols(const struct sqldb_stmt *st)
{
	return st->ncols;
}

const char *sqldb_text(struct sqldb_stmt *st, int i)
{
	if (i < 0 || i >= st->ncols)
		return NULL;
	if (st->lite)
		return (const char *)sqlite3_column_text(st->lite, i);
	return st->nulls[i] ? NULL : st->vals[i];
}

void sqldb_reset(struct sqldb_stmt *st)
{
	if (st->lite) {
		sqlite3_reset(st->lite);
		return;
	}
	if (st->executed)
		SQLFreeStmt(st->h, SQL_CLOSE);
	st->executed = 0;
}

void sqldb_finalize(struct sqldb_stmt *st)
{
	int i;

	if (!st)
		return;
	if (st->lite)
		sqlite3_finalize(st->lite);
	if (st->h)
		SQLFreeHandle(SQL_HANDLE_STMT, st->h);
	for (i = 0; i < MAX_PARAMS; i++)
		free(st->params[i].s);
	for (i = 0; i < MAX_COLS; i++)
		free(st->vals[i]);
	free(st);
}
