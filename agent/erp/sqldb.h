/*
 * A small read interface over the SQL databases ERPs keep their data in:
 * SQLite files (opened directly with libsqlite3) and anything an ODBC driver
 * reaches (SQL Server, PostgreSQL, ProvideX, SQLite, … through unixODBC).
 *
 * Statements use `?` placeholders only (what ODBC understands). Every value
 * comes back as text (UTF-8) or NULL, valid until the next step or reset.
 * Functions return an APS_ERR_*; on failure `err` holds a sentence for the
 * user. APS_ERR_BUSY means the database is there but locked right now.
 */
#ifndef APS_SQLDB_H
#define APS_SQLDB_H

#include <stddef.h>
#include <stdint.h>

struct sqldb;
struct sqldb_stmt;

/* The SQL dialect a profile writes its expressions in. */
enum sqldb_dialect {
	SQLDB_SQLITE = 0,
	SQLDB_POSTGRESQL,
	SQLDB_MSSQL,
	SQLDB_OTHER,
};

/* A SQLite file, read-only unless `writable`. */
int sqldb_open_sqlite(const char *path, int writable, struct sqldb **out, char *err,
		      size_t errlen);
/* An ODBC connection string ("DSN=…;UID=…" or "Driver=…;Database=…"). */
int sqldb_open_odbc(const char *connstr, struct sqldb **out, char *err, size_t errlen);
void sqldb_close(struct sqldb *db);

enum sqldb_dialect sqldb_dialect(const struct sqldb *db);
/* The dialect's name as profiles spell it: sqlite, postgresql, mssql, other. */
const char *sqldb_dialect_name(enum sqldb_dialect d);
/* What the database is, for messages: "SQLite file X", "ODBC DSN=Y". */
const char *sqldb_describe(const struct sqldb *db);

/* A cheap fingerprint of the whole database when it is a file (size and
 * modification times of the file and its journal): APS_ERR_NOTFOUND for
 * databases behind ODBC. */
int sqldb_fingerprint(const struct sqldb *db, char out[128]);

int sqldb_prepare(struct sqldb *db, const char *sql, struct sqldb_stmt **out, char *err,
		  size_t errlen);
/* Parameters are numbered from 1 and copied; NULL binds SQL NULL. */
int sqldb_bind_text(struct sqldb_stmt *st, int i, const char *v);
int sqldb_bind_int(struct sqldb_stmt *st, int i, int64_t v);
/* Executes on the first call after a prepare or reset. *row is 1 with a row,
 * 0 when there are no more. */
int sqldb_step(struct sqldb_stmt *st, int *row, char *err, size_t errlen);
int sqldb_ncols(const struct sqldb_stmt *st);
/* Column i (from 0) of the current row as text; NULL for SQL NULL. */
const char *sqldb_text(struct sqldb_stmt *st, int i);
/* Ends the current execution; bindings stay. */
void sqldb_reset(struct sqldb_stmt *st);
void sqldb_finalize(struct sqldb_stmt *st);

#endif
