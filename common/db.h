/* SQLite helpers: open with WAL, busy timeout, full sync and migrations. */
#ifndef APS_DB_H
#define APS_DB_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* Migration `version` brings the schema from version-1 to version. */
struct aps_migration {
	int version;
	const char *sql;
};

#define APS_DB_READONLY 0x1

/*
 * Opens (creating if needed) the database at path, sets WAL, busy timeout and
 * synchronous=FULL (a commit that returned is on disk), then applies the
 * migrations the file lacks, each in its own transaction. A file that is not
 * a database, is damaged, or comes from a newer program gives APS_ERR_DB with
 * a sentence in err saying what to do.
 */
int aps_db_open(const char *path, int flags, const struct aps_migration *migs, int nmigs,
		sqlite3 **out, char *err, size_t errlen);
void aps_db_close(sqlite3 *db);
int aps_db_schema_version(sqlite3 *db, int *version);

/* Runs SQL without results; err gets sqlite's message. */
int aps_db_exec(sqlite3 *db, const char *sql);
int aps_db_begin(sqlite3 *db); /* BEGIN IMMEDIATE */
int aps_db_commit(sqlite3 *db);
void aps_db_rollback(sqlite3 *db);

/* Steps a statement that returns no row, then resets it. */
int aps_db_step_done(sqlite3_stmt *st);

/* Binds a text that may be NULL. */
int aps_db_bind_text(sqlite3_stmt *st, int i, const char *s);

#endif
