#include <stdio.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "log.h"

int aps_db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_err("database: %s (in: %.80s)", msg ? msg : sqlite3_errstr(rc), sql);
		sqlite3_free(msg);
		return APS_ERR_DB;
	}
	return APS_OK;
}

int aps_db_begin(sqlite3 *db)
{
	return aps_db_exec(db, "BEGIN IMMEDIATE");
}

int aps_db_commit(sqlite3 *db)
{
	return aps_db_exec(db, "COMMIT");
}

void aps_db_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int aps_db_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_err("database: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
		return APS_ERR_DB;
	}
	return APS_OK;
}

int aps_db_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (!s)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

int aps_db_schema_version(sqlite3 *db, int *version)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*version = 0;
	rc = sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*version = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

int aps_db_open(const char *path, int flags, const struct aps_migration *migs, int nmigs,
		sqlite3 **out, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc, version = 0, i, oflags;
	char *msg = NULL;
	char sql[96];

	*out = NULL;
	oflags = (flags & APS_DB_READONLY) ? SQLITE_OPEN_READONLY
					   : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(path, &db, oflags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open database %s: %s", path,
			 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(db, 10000);
	sqlite3_extended_result_codes(db, 1);
	/* The first read of the file: a damaged or foreign file fails here. */
	rc = sqlite3_exec(db, (flags & APS_DB_READONLY)
				      ? "PRAGMA schema_version"
				      : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
					"PRAGMA foreign_keys=ON",
			  NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
			snprintf(err, errlen,
				 "%s is not a SQLite database or is damaged (%s); move it aside "
				 "and restore it from a backup",
				 path, msg ? msg : sqlite3_errstr(rc));
		else
			snprintf(err, errlen, "cannot use database %s: %s", path,
				 msg ? msg : sqlite3_errstr(rc));
		goto fail;
	}
	if (!migs)
		goto done;
	rc = sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)",
			  NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = aps_db_schema_version(db, &version);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot read the schema version of %s: %s", path,
			 msg ? msg : sqlite3_errmsg(db));
		goto fail;
	}
	if (nmigs > 0 && version > migs[nmigs - 1].version) {
		snprintf(err, errlen,
			 "%s has schema version %d, newer than this program knows (%d); run a "
			 "newer apsync",
			 path, version, migs[nmigs - 1].version);
		goto fail;
	}
	for (i = 0; i < nmigs; i++) {
		if (migs[i].version <= version)
			continue;
		snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES(%d)", migs[i].version);
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, migs[i].sql, NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, errlen, "cannot migrate %s to schema version %d: %s", path,
				 migs[i].version, msg ? msg : sqlite3_errmsg(db));
			aps_db_rollback(db);
			goto fail;
		}
		log_info("database %s: migrated to schema version %d", path, migs[i].version);
	}
done:
	*out = db;
	return APS_OK;
fail:
	sqlite3_free(msg);
	sqlite3_close(db);
	return APS_ERR_DB;
}

void aps_db_close(sqlite3 *db)
{
	sqlite3_close(db);
}
