/*
 * The agent's state database, DIR/state.db:
 *   meta      session counters: tx_seq (last seq given to an outgoing frame),
 *             rx_seq (last broker seq processed), the last ERP identity
 *   outbox    encoded frames not yet acknowledged by the broker
 *   jobs      sync commands from the broker and how far each has got
 * Producing a frame and recording the progress it represents happen in one
 * transaction, so after a crash the agent resumes exactly where its outbox
 * ends: nothing is lost or sent twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "db.h"
#include "err.h"
#include "log.h"
#include "util.h"

static const struct aps_migration migrations[] = {
	{1, "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	    "INSERT INTO meta VALUES('tx_seq', 0), ('rx_seq', 0);"
	    "CREATE TABLE outbox("
	    " seq INTEGER PRIMARY KEY,"
	    " type INTEGER NOT NULL,"
	    " frame BLOB NOT NULL,"
	    " created_at INTEGER NOT NULL);"
	    "CREATE TABLE jobs("
	    " id INTEGER PRIMARY KEY,"
	    " entity TEXT NOT NULL,"
	    " mode TEXT NOT NULL,"
	    " lists TEXT,"
	    " since TEXT,"
	    " state TEXT NOT NULL DEFAULT 'pending',"
	    " cancel INTEGER NOT NULL DEFAULT 0,"
	    " plan TEXT,"
	    " list_index INTEGER NOT NULL DEFAULT 0,"
	    " list_begun INTEGER NOT NULL DEFAULT 0,"
	    " last_key TEXT,"
	    " list_count INTEGER NOT NULL DEFAULT 0,"
	    " list_checksum INTEGER NOT NULL DEFAULT 0,"
	    " received_at INTEGER NOT NULL,"
	    " started_at INTEGER,"
	    " finished_at INTEGER);"},
};

int state__open(const char *dir, sqlite3 **db, char *err, size_t errlen)
{
	char path[4096];

	if (aps_path_join(path, sizeof(path), dir, "state.db")) {
		snprintf(err, errlen, "state directory path too long: %s", dir);
		return APS_ERR_RANGE;
	}
	return aps_db_open(path, 0, migrations, (int)APS_ARRAY_LEN(migrations), db, err, errlen);
}

int state__meta_get(sqlite3 *db, const char *key, int64_t *v)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key=?1", -1, &st, NULL))
		return APS_ERR_DB;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? APS_OK : APS_ERR_DB;
}

int state__meta_set(sqlite3 *db, const char *key, int64_t v)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta VALUES(?1, ?2)", -1, &st, NULL))
		return APS_ERR_DB;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : APS_ERR_DB;
}

int state__meta_get_text(sqlite3 *db, const char *key, char **v)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*v = NULL;
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key=?1", -1, &st, NULL))
		return APS_ERR_DB;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
		*v = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : APS_ERR_DB;
}

int state__meta_set_text(sqlite3 *db, const char *key, const char *v)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta VALUES(?1, ?2)", -1, &st, NULL))
		return APS_ERR_DB;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, v, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : APS_ERR_DB;
}

int state__outbox_add(sqlite3 *db, struct aps_codec *codec, int type, const cJSON *body,
		      int level, uint64_t *seq)
{
	struct aps_buf frame = {0};
	sqlite3_stmt *st = NULL;
	int64_t tx;
	int rc;

	rc = state__meta_get(db, "tx_seq", &tx);
	if (rc)
		return rc;
	tx++;
	rc = aps_frame_encode_json(codec, &frame, (uint8_t)type, (uint64_t)tx, 0, body, level);
	if (rc)
		goto out;
	rc = APS_ERR_DB;
	if (sqlite3_prepare_v2(db, "INSERT INTO outbox(seq, type, frame, created_at) "
				   "VALUES(?1, ?2, ?3, ?4)",
			       -1, &st, NULL))
		goto out;
	sqlite3_bind_int64(st, 1, tx);
	sqlite3_bind_int(st, 2, type);
	sqlite3_bind_blob(st, 3, frame.data, (int)frame.len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, aps_now_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	rc = state__meta_set(db, "tx_seq", tx);
	if (!rc && seq)
		*seq = (uint64_t)tx;
out:
	if (rc == APS_ERR_DB)
		log_err("state: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	aps_buf_free(&frame);
	return rc;
}

int state__outbox_size(sqlite3 *db, int64_t *frames, int64_t *bytes)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(length(frame)), 0) FROM outbox",
			       -1, &st, NULL))
		return APS_ERR_DB;
	rc = sqlite3_step(st);
	*frames = sqlite3_column_int64(st, 0);
	*bytes = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : APS_ERR_DB;
}
