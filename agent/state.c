/*
 * The agent's state database, DIR/state.db:
 *   meta      session counters: tx_seq (last seq given to an outgoing frame),
 *             rx_seq (last broker seq processed), the last ERP identity
 *   outbox    encoded frames not yet acknowledged by the broker
 *   jobs      sync commands from the broker and how far each has got
 *   cursors   per company and list, the end of the last confirmed window
 *   pending_cursors, overlap: see worker.c
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
	/* Partial syncs: per-list cursors and the overlap set. */
	{2, "ALTER TABLE jobs ADD COLUMN fallback_since TEXT;"
	    "ALTER TABLE jobs ADD COLUMN po_enabled INTEGER NOT NULL DEFAULT 1;"
	    "ALTER TABLE jobs ADD COLUMN po_since TEXT;"
	    "ALTER TABLE jobs ADD COLUMN window_to TEXT;"
	    "ALTER TABLE jobs ADD COLUMN last_modified TEXT;"
	    "ALTER TABLE jobs ADD COLUMN deferred INTEGER NOT NULL DEFAULT 0;"
	    /* the upper bound of the last window the broker confirmed, per list */
	    "CREATE TABLE cursors("
	    " entity TEXT NOT NULL,"
	    " list TEXT NOT NULL,"
	    " checkpoint TEXT NOT NULL,"
	    " job INTEGER NOT NULL,"
	    " updated_at INTEGER NOT NULL,"
	    " PRIMARY KEY(entity, list)) WITHOUT ROWID;"
	    /* a finished list's window end, until the broker's verdict */
	    "CREATE TABLE pending_cursors("
	    " job INTEGER NOT NULL,"
	    " entity TEXT NOT NULL,"
	    " list TEXT NOT NULL,"
	    " checkpoint TEXT NOT NULL,"
	    " PRIMARY KEY(job, list)) WITHOUT ROWID;"
	    /* row versions sent near a window's end: the next window starts an
	     * overlap earlier and skips these (key, modified) pairs */
	    "CREATE TABLE overlap("
	    " entity TEXT NOT NULL,"
	    " list TEXT NOT NULL,"
	    " key TEXT NOT NULL,"
	    " modified TEXT NOT NULL,"
	    " modified_ms INTEGER NOT NULL,"
	    " job INTEGER NOT NULL,"
	    " confirmed INTEGER NOT NULL DEFAULT 0,"
	    " PRIMARY KEY(entity, list, key, modified)) WITHOUT ROWID;"
	    "CREATE INDEX overlap_job ON overlap(job, list);"},
	/* Lists without modification times: the hash of every row the broker
	 * confirmed, and the list's last confirmed fingerprint; pending ones
	 * until the broker's verdict (hash NULL: the key was found deleted). */
	{3, "CREATE TABLE row_hashes("
	    " entity TEXT NOT NULL,"
	    " list TEXT NOT NULL,"
	    " key TEXT NOT NULL,"
	    " hash INTEGER NOT NULL,"
	    " PRIMARY KEY(entity, list, key)) WITHOUT ROWID;"
	    "CREATE TABLE pending_hashes("
	    " job INTEGER NOT NULL,"
	    " list TEXT NOT NULL,"
	    " key TEXT NOT NULL,"
	    " hash INTEGER,"
	    " PRIMARY KEY(job, list, key)) WITHOUT ROWID;"
	    "CREATE TABLE fingerprints("
	    " entity TEXT NOT NULL,"
	    " list TEXT NOT NULL,"
	    " fingerprint TEXT NOT NULL,"
	    " PRIMARY KEY(entity, list)) WITHOUT ROWID;"
	    "CREATE TABLE pending_lists("
	    " job INTEGER NOT NULL,"
	    " list TEXT NOT NULL,"
	    " entity TEXT NOT NULL,"
	    " full INTEGER NOT NULL,"
	    " fingerprint TEXT,"
	    " PRIMARY KEY(job, list)) WITHOUT ROWID;"},
	/* The write journal: every document the broker sent for export, from
	 * intent through writing to done; the result goes out with the change to
	 * done, in the same transaction. */
	{4, "CREATE TABLE exports("
	    " doc INTEGER PRIMARY KEY,"
	    " entity TEXT NOT NULL,"
	    " type TEXT NOT NULL,"
	    " attempt INTEGER NOT NULL,"
	    " body TEXT NOT NULL,"
	    " state TEXT NOT NULL," /* intent, writing, done */
	    " result TEXT,"
	    " received_at INTEGER NOT NULL,"
	    " updated_at INTEGER NOT NULL);"
	    "CREATE INDEX exports_state ON exports(state, doc);"},
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
		      int compress, uint64_t *seq)
{
	char *text = cJSON_PrintUnformatted(body);
	int rc;

	if (!text)
		return APS_ERR_NOMEM;
	rc = state__outbox_add_text(db, codec, type, text, strlen(text), compress, seq);
	cJSON_free(text);
	return rc;
}

int state__outbox_add_text(sqlite3 *db, struct aps_codec *codec, int type, const char *json,
			   size_t len, int compress, uint64_t *seq)
{
	struct aps_buf frame = {0};
	sqlite3_stmt *st = NULL;
	int64_t tx;
	int rc;

	rc = state__meta_get(db, "tx_seq", &tx);
	if (rc)
		return rc;
	tx++;
	rc = aps_frame_encode(codec, &frame, (uint8_t)type, (uint64_t)tx, 0, json, len, compress);
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

/* Runs one statement binding ?1 = a (integer) and ?2, ?3 = texts. */
static int exec3(sqlite3 *db, const char *sql, int64_t a, const char *t2, const char *t3)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL))
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		aps_db_bind_text(st, 2, t2);
	if (sqlite3_bind_parameter_count(st) >= 3)
		aps_db_bind_text(st, 3, t3);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : APS_ERR_DB;
}

/* A list read by row hashes succeeded: its pending hashes and fingerprint
 * become the confirmed ones (a full read replaces them all). */
static int promote_hashes(sqlite3 *db, int64_t job, const char *list)
{
	static const char *const steps[] = {
		"DELETE FROM row_hashes WHERE (entity, list) IN (SELECT entity, list FROM "
		"pending_lists WHERE job=?1 AND list=?2 AND full=1)",
		"INSERT OR REPLACE INTO row_hashes(entity, list, key, hash) SELECT l.entity, "
		"h.list, h.key, h.hash FROM pending_hashes h JOIN pending_lists l ON l.job=h.job "
		"AND l.list=h.list WHERE h.job=?1 AND h.list=?2 AND h.hash IS NOT NULL",
		"DELETE FROM row_hashes WHERE (entity, list, key) IN (SELECT l.entity, h.list, "
		"h.key FROM pending_hashes h JOIN pending_lists l ON l.job=h.job AND l.list=h.list "
		"WHERE h.job=?1 AND h.list=?2 AND h.hash IS NULL)",
		"DELETE FROM fingerprints WHERE (entity, list) IN (SELECT entity, list FROM "
		"pending_lists WHERE job=?1 AND list=?2)",
		"INSERT INTO fingerprints(entity, list, fingerprint) SELECT entity, list, "
		"fingerprint FROM pending_lists WHERE job=?1 AND list=?2 AND fingerprint IS NOT "
		"NULL",
	};
	size_t i;
	int rc = APS_OK;

	for (i = 0; i < APS_ARRAY_LEN(steps) && !rc; i++)
		rc = exec3(db, steps[i], job, list, NULL);
	return rc;
}

int state__apply_result(sqlite3 *db, int64_t job, const cJSON *lists, int64_t overlap_ms)
{
	sqlite3_stmt *st = NULL;
	const cJSON *it;
	char *entity = NULL, *checkpoint = NULL;
	int64_t cp_ms;
	int rc = APS_OK;

	cJSON_ArrayForEach(it, lists) {
		if (!cJSON_IsString(it) || strcmp(it->valuestring, "success") || !it->string)
			continue;
		rc = promote_hashes(db, job, it->string);
		if (rc)
			goto out;
		if (sqlite3_prepare_v2(db, "SELECT entity, checkpoint FROM pending_cursors WHERE "
					   "job=?1 AND list=?2",
				       -1, &st, NULL))
			return APS_ERR_DB;
		sqlite3_bind_int64(st, 1, job);
		sqlite3_bind_text(st, 2, it->string, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			entity = strdup((const char *)sqlite3_column_text(st, 0));
			checkpoint = strdup((const char *)sqlite3_column_text(st, 1));
		}
		sqlite3_finalize(st);
		st = NULL;
		if (!entity || !checkpoint || aps_time_parse(checkpoint, &cp_ms))
			goto next;
		/* The broker has every row of this window: the cursor moves, the
		 * overlap rows become confirmed, and those older than the next
		 * window's start are no longer needed. */
		rc = APS_ERR_DB;
		if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO cursors(entity, list, checkpoint, "
					   "job, updated_at) VALUES(?1, ?2, ?3, ?4, ?5)",
				       -1, &st, NULL))
			goto out;
		sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, it->string, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, checkpoint, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, job);
		sqlite3_bind_int64(st, 5, aps_now_ms());
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
		sqlite3_finalize(st);
		st = NULL;
		if (exec3(db, "UPDATE overlap SET confirmed=1 WHERE job=?1 AND list=?2", job,
			  it->string, NULL))
			goto out;
		if (sqlite3_prepare_v2(db, "DELETE FROM overlap WHERE entity=?1 AND list=?2 AND "
					   "modified_ms<?3",
				       -1, &st, NULL))
			goto out;
		sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, it->string, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, cp_ms - overlap_ms);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
		sqlite3_finalize(st);
		st = NULL;
		rc = APS_OK;
next:
		free(entity);
		free(checkpoint);
		entity = checkpoint = NULL;
	}
	/* Rows of lists that did not succeed were never confirmed: forget them,
	 * so the next run sends them again. */
	rc = exec3(db, "DELETE FROM overlap WHERE job=?1 AND confirmed=0", job, NULL, NULL);
	if (!rc)
		rc = exec3(db, "DELETE FROM pending_cursors WHERE job=?1", job, NULL, NULL);
	if (!rc)
		rc = exec3(db, "DELETE FROM pending_hashes WHERE job=?1", job, NULL, NULL);
	if (!rc)
		rc = exec3(db, "DELETE FROM pending_lists WHERE job=?1", job, NULL, NULL);
	/* A job the broker ended (cancelled, timed out) stops here too. */
	if (!rc)
		rc = exec3(db, "UPDATE jobs SET cancel=1 WHERE id=?1 AND state<>'done'", job, NULL,
			   NULL);
out:
	sqlite3_finalize(st);
	free(entity);
	free(checkpoint);
	return rc;
}
