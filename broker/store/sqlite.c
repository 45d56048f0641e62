/* The broker's store on SQLite (one file, DIR/broker.db, WAL). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apsync_proto.h"
#include "batch.h"
#include "db.h"
#include "err.h"
#include "log.h"
#include "sqlite_internal.h"
#include "store.h"
#include "util.h"

static const struct aps_migration migrations[] = {
	{1, "CREATE TABLE tenants("
	    " id INTEGER PRIMARY KEY,"
	    " name TEXT NOT NULL UNIQUE,"
	    " created_at INTEGER NOT NULL);"
	    "CREATE TABLE users("
	    " id INTEGER PRIMARY KEY,"
	    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
	    " email TEXT NOT NULL,"
	    " role TEXT NOT NULL,"
	    " created_at INTEGER NOT NULL,"
	    " UNIQUE(tenant_id, email));"
	    "CREATE TABLE api_tokens("
	    " id INTEGER PRIMARY KEY,"
	    " user_id INTEGER NOT NULL REFERENCES users(id),"
	    " token_hash BLOB NOT NULL UNIQUE,"
	    " created_at INTEGER NOT NULL,"
	    " revoked_at INTEGER);"
	    "CREATE TABLE agents("
	    " id INTEGER PRIMARY KEY,"
	    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
	    " name TEXT NOT NULL,"
	    " secret_hash BLOB NOT NULL,"
	    " created_at INTEGER NOT NULL,"
	    " revoked_at INTEGER,"
	    " revoked_reason TEXT,"
	    " online INTEGER NOT NULL DEFAULT 0,"
	    " last_seen INTEGER,"
	    " connected_at INTEGER,"
	    " remote_addr TEXT,"
	    " version TEXT, os TEXT, hostname TEXT,"
	    " erp_product TEXT, erp_version TEXT, erp_error TEXT,"
	    " rx_seq INTEGER NOT NULL DEFAULT 0,"
	    " tx_seq INTEGER NOT NULL DEFAULT 0);"
	    "CREATE UNIQUE INDEX agents_live_name ON agents(tenant_id, name)"
	    " WHERE revoked_at IS NULL;"
	    "CREATE TABLE enroll_codes("
	    " id INTEGER PRIMARY KEY,"
	    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
	    " synctool_name TEXT NOT NULL,"
	    " code_hash BLOB NOT NULL UNIQUE,"
	    " created_at INTEGER NOT NULL,"
	    " expires_at INTEGER NOT NULL,"
	    " used_at INTEGER,"
	    " agent_id INTEGER REFERENCES agents(id));"
	    "CREATE TABLE entities("
	    " id INTEGER PRIMARY KEY,"
	    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
	    " erp_product TEXT NOT NULL,"
	    " code TEXT NOT NULL,"
	    " name TEXT NOT NULL,"
	    " currency TEXT,"
	    " lists TEXT NOT NULL DEFAULT '[]',"
	    " po_types TEXT,"
	    " created_at INTEGER NOT NULL,"
	    " updated_at INTEGER NOT NULL,"
	    " UNIQUE(tenant_id, erp_product, code));"
	    "CREATE TABLE entity_agents("
	    " entity_id INTEGER NOT NULL REFERENCES entities(id),"
	    " agent_id INTEGER NOT NULL REFERENCES agents(id),"
	    " last_hello INTEGER NOT NULL,"
	    " PRIMARY KEY(entity_id, agent_id)) WITHOUT ROWID;"
	    "CREATE TABLE jobs("
	    " id INTEGER PRIMARY KEY,"
	    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
	    " entity_id INTEGER NOT NULL REFERENCES entities(id),"
	    " agent_id INTEGER NOT NULL REFERENCES agents(id),"
	    " mode TEXT NOT NULL,"
	    " lists TEXT,"
	    " since TEXT,"
	    " status TEXT NOT NULL,"
	    " reason TEXT,"
	    " requested_by TEXT,"
	    " created_at INTEGER NOT NULL,"
	    " dispatched_at INTEGER, started_at INTEGER, finished_at INTEGER,"
	    " error_code TEXT, error_message TEXT);"
	    "CREATE INDEX jobs_entity ON jobs(entity_id, id);"
	    "CREATE INDEX jobs_agent_status ON jobs(agent_id, status, id);"
	    "CREATE INDEX jobs_tenant ON jobs(tenant_id, id);"
	    "CREATE TABLE job_lists("
	    " job_id INTEGER NOT NULL REFERENCES jobs(id),"
	    " list TEXT NOT NULL,"
	    " status TEXT NOT NULL,"
	    " estimate INTEGER,"
	    " received INTEGER NOT NULL DEFAULT 0,"
	    " inserted INTEGER NOT NULL DEFAULT 0,"
	    " updated INTEGER NOT NULL DEFAULT 0,"
	    " unchanged INTEGER NOT NULL DEFAULT 0,"
	    " deleted INTEGER NOT NULL DEFAULT 0,"
	    " reported INTEGER,"
	    " checksum INTEGER NOT NULL DEFAULT 0,"
	    " checksum_agent TEXT,"
	    " started_at INTEGER, finished_at INTEGER,"
	    " error_code TEXT, error_message TEXT,"
	    " PRIMARY KEY(job_id, list)) WITHOUT ROWID;"
	    "CREATE TABLE job_log("
	    " id INTEGER PRIMARY KEY,"
	    " job_id INTEGER NOT NULL REFERENCES jobs(id),"
	    " ts INTEGER NOT NULL,"
	    " level TEXT NOT NULL,"
	    " message TEXT NOT NULL);"
	    "CREATE INDEX job_log_job ON job_log(job_id, id);"
	    "CREATE TABLE items("
	    " entity_id INTEGER NOT NULL,"
	    " list TEXT NOT NULL,"
	    " key TEXT NOT NULL,"
	    " hash INTEGER NOT NULL,"
	    " status TEXT,"
	    " modified TEXT,"
	    " deleted INTEGER NOT NULL DEFAULT 0,"
	    " last_job INTEGER NOT NULL,"
	    " updated_at INTEGER NOT NULL,"
	    " data TEXT NOT NULL,"
	    " PRIMARY KEY(entity_id, list, key)) WITHOUT ROWID;"
	    "CREATE TABLE outbox("
	    " agent_id INTEGER NOT NULL,"
	    " seq INTEGER NOT NULL,"
	    " type INTEGER NOT NULL,"
	    " body TEXT NOT NULL,"
	    " created_at INTEGER NOT NULL,"
	    " PRIMARY KEY(agent_id, seq)) WITHOUT ROWID;"},
	/* Partial syncs, PO & Receivings, waiting reasons; item paging. */
	{2, "ALTER TABLE jobs ADD COLUMN po_enabled INTEGER NOT NULL DEFAULT 1;"
	    "ALTER TABLE jobs ADD COLUMN po_since TEXT;"
	    "ALTER TABLE jobs ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;"
	    "CREATE INDEX jobs_entity_status ON jobs(entity_id, status, id);"
	    "CREATE INDEX items_changed ON items(entity_id, list, updated_at, key);"},
	/* Items hold the array of their values; list names and column lists are
	 * stored once and referenced by number: rows 40% shorter to write. */
	{3, "CREATE TABLE lists(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
	    "CREATE TABLE columns(id INTEGER PRIMARY KEY, names TEXT NOT NULL UNIQUE);"
	    "CREATE TABLE items3("
	    " entity_id INTEGER NOT NULL,"
	    " list_id INTEGER NOT NULL,"
	    " key TEXT NOT NULL,"
	    " hash INTEGER NOT NULL,"
	    " status TEXT,"
	    " modified TEXT,"
	    " deleted INTEGER NOT NULL DEFAULT 0,"
	    " last_job INTEGER NOT NULL,"
	    " updated_at INTEGER NOT NULL,"
	    " cols INTEGER NOT NULL,"
	    " data TEXT NOT NULL,"
	    " PRIMARY KEY(entity_id, list_id, key)) WITHOUT ROWID;"
	    "INSERT INTO lists(name) SELECT DISTINCT list FROM items;"
	    "INSERT OR IGNORE INTO columns(names) SELECT DISTINCT (SELECT json_group_array(key) "
	    " FROM json_each(items.data)) FROM items;"
	    "INSERT INTO items3 SELECT i.entity_id, l.id, i.key, i.hash, i.status, i.modified, "
	    " i.deleted, i.last_job, i.updated_at, c.id, (SELECT json_group_array(value) FROM "
	    " json_each(i.data)) FROM items i JOIN lists l ON l.name=i.list JOIN columns c ON "
	    " c.names=(SELECT json_group_array(key) FROM json_each(i.data));"
	    "DROP INDEX items_changed;"
	    "DROP TABLE items;"
	    "ALTER TABLE items3 RENAME TO items;"
	    "CREATE INDEX items_changed ON items(entity_id, list_id, updated_at, key);"},
	/* Exports: documents written into the ERP exactly once (documents.c). */
	{4, "CREATE TABLE documents("
	    " id INTEGER PRIMARY KEY,"
	    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
	    " entity_id INTEGER NOT NULL REFERENCES entities(id),"
	    " agent_id INTEGER,"
	    " type TEXT NOT NULL,"          /* invoice, payment */
	    " vendor TEXT NOT NULL,"
	    " natural_key TEXT NOT NULL,"   /* the invoice number or payment reference */
	    " body TEXT NOT NULL,"
	    " amount TEXT,"
	    " status TEXT NOT NULL,"        /* on_hold blocked queued in_progress success failed uncertain */
	    " reason TEXT,"
	    " error_code TEXT,"
	    " retryable INTEGER NOT NULL DEFAULT 0,"
	    " attempts INTEGER NOT NULL DEFAULT 0,"
	    " next_retry_at INTEGER,"
	    " erp_id TEXT, erp_number TEXT, erp_state TEXT, erp_link TEXT,"
	    " manual INTEGER NOT NULL DEFAULT 0,"
	    " created_by TEXT,"
	    " created_at INTEGER NOT NULL,"
	    " updated_at INTEGER NOT NULL,"
	    " UNIQUE(entity_id, type, vendor, natural_key));"
	    "CREATE INDEX documents_status ON documents(tenant_id, status, id);"
	    "CREATE INDEX documents_agent ON documents(agent_id, status);"
	    "CREATE TABLE idempotency("
	    " tenant_id INTEGER NOT NULL,"
	    " key TEXT NOT NULL,"
	    " request_hash TEXT NOT NULL,"
	    " status INTEGER NOT NULL,"
	    " response TEXT NOT NULL,"
	    " created_at INTEGER NOT NULL,"
	    " PRIMARY KEY(tenant_id, key)) WITHOUT ROWID;"
	    "CREATE TABLE rules("
	    " id INTEGER PRIMARY KEY,"
	    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
	    " kind TEXT NOT NULL,"          /* block_vendor block_amount_above block_type */
	    " value TEXT NOT NULL,"
	    " created_by TEXT,"
	    " created_at INTEGER NOT NULL,"
	    " UNIQUE(tenant_id, kind, value));"},
	/* Password sign-in (users.c): a KDF hash per user, and web sessions
	 * known by the SHA-256 of their cookie, each with its CSRF token. */
	{5, "CREATE TABLE passwords("
	    " user_id INTEGER PRIMARY KEY REFERENCES users(id),"
	    " hash TEXT NOT NULL,"           /* scrypt$LOG2N$R$P$SALT$KEY (hex) */
	    " updated_at INTEGER NOT NULL);"
	    "CREATE TABLE sessions("
	    " id INTEGER PRIMARY KEY,"
	    " id_hash BLOB NOT NULL UNIQUE,"
	    " user_id INTEGER NOT NULL REFERENCES users(id),"
	    " csrf TEXT NOT NULL,"
	    " created_at INTEGER NOT NULL,"
	    " last_used INTEGER NOT NULL,"
	    " expires_at INTEGER NOT NULL);"
	    "CREATE INDEX sessions_user ON sessions(user_id);"},
	/* Export runs: the documents of one export request, with the run's
	 * outcome and log (documents.c). */
	{6, "CREATE TABLE export_runs("
	    " id INTEGER PRIMARY KEY,"
	    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
	    " entity_id INTEGER NOT NULL REFERENCES entities(id),"
	    " status TEXT NOT NULL," /* running, success, partial, failed */
	    " documents INTEGER NOT NULL DEFAULT 0,"
	    " created_by TEXT,"
	    " created_at INTEGER NOT NULL,"
	    " finished_at INTEGER);"
	    "CREATE INDEX export_runs_tenant ON export_runs(tenant_id, entity_id, id);"
	    "CREATE TABLE export_run_log("
	    " run_id INTEGER NOT NULL REFERENCES export_runs(id),"
	    " ts INTEGER NOT NULL,"
	    " level TEXT NOT NULL,"
	    " message TEXT NOT NULL);"
	    "CREATE INDEX export_run_log_run ON export_run_log(run_id);"
	    "ALTER TABLE documents ADD COLUMN run_id INTEGER;"
	    "CREATE INDEX documents_run ON documents(run_id);"},
};

/* Statements used on hot or frequent paths, prepared once per connection. */
enum stmt_id {
	ST_ITEM_GET,
	ST_ITEM_INSERT_MANY,
	ST_ITEM_DELETE_LIVE,
	ST_ITEM_INSERT,
	ST_ITEM_UPDATE,
	ST_ITEM_RANGE,
	ST_ITEM_DELETE,
	ST_LIST_ID,
	ST_COLS_ID,
	ST_LIST_SUM,
	ST_LIST_ADD,
	ST_RX_SET,
	ST_JOB_REF,
	ST_TOKEN_AUTH,
	ST_AGENT_GET,
	ST_AGENT_SEEN,
	ST_OUTBOX_NEXT,
	ST_LOG_ADD,
	ST__COUNT
};

_Static_assert(ST__COUNT <= ST__SLOTS, "more hot statements than slots in struct store");

static const char *const stmt_sql[ST__COUNT] = {
	[ST_ITEM_GET] = "SELECT hash, deleted FROM items WHERE entity_id=?1 AND list_id=?2 AND "
			"key=?3",
	[ST_ITEM_INSERT] = "INSERT INTO items(entity_id, list_id, key, hash, status, modified, "
			   "deleted, last_job, updated_at, data, cols) "
			   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10)",
	[ST_ITEM_UPDATE] = "UPDATE items SET hash=?4, status=?5, modified=?6, deleted=0, "
			   "last_job=?7, updated_at=?8, data=?9, cols=?10 "
			   "WHERE entity_id=?1 AND list_id=?2 AND key=?3",
	[ST_ITEM_RANGE] = "SELECT key, hash, deleted FROM items WHERE entity_id=?1 AND list_id=?2 "
			  "AND key>?3 AND key<=?4 ORDER BY key",
	[ST_ITEM_DELETE] = "UPDATE items SET deleted=1, last_job=?4, updated_at=?5 "
			   "WHERE entity_id=?1 AND list_id=?2 AND key=?3",
	[ST_ITEM_DELETE_LIVE] = "UPDATE items SET deleted=1, last_job=?4, updated_at=?5 "
				"WHERE entity_id=?1 AND list_id=?2 AND key=?3 AND deleted=0",
	[ST_LIST_ID] = "INSERT INTO lists(name) VALUES(?1) ON CONFLICT DO UPDATE SET name=name "
		       "RETURNING id",
	[ST_COLS_ID] = "INSERT INTO columns(names) VALUES(?1) ON CONFLICT DO UPDATE SET "
		       "names=names RETURNING id",
	/* checksum: SQLite integers do not wrap, so the sum is made in C */
	[ST_LIST_SUM] = "SELECT checksum FROM job_lists WHERE job_id=?1 AND list=?2",
	[ST_LIST_ADD] = "UPDATE job_lists SET received=received+?3, inserted=inserted+?4, "
			"updated=updated+?5, unchanged=unchanged+?6, checksum=?7, "
			"deleted=deleted+?8 WHERE job_id=?1 AND list=?2",
	[ST_RX_SET] = "UPDATE agents SET rx_seq=?2 WHERE id=?1",
	[ST_JOB_REF] = "SELECT entity_id, agent_id, status, mode FROM jobs WHERE id=?1",
	[ST_TOKEN_AUTH] = "SELECT u.id, u.tenant_id, u.email, u.role, t.name FROM api_tokens k "
			  "JOIN users u ON u.id=k.user_id JOIN tenants t ON t.id=u.tenant_id "
			  "WHERE k.token_hash=?1 AND k.revoked_at IS NULL",
	[ST_AGENT_GET] = "SELECT a.id, a.tenant_id, a.name, t.name, a.secret_hash, "
			 "coalesce(a.revoked_at, 0), a.rx_seq, a.tx_seq "
			 "FROM agents a JOIN tenants t ON t.id=a.tenant_id WHERE a.id=?1",
	[ST_AGENT_SEEN] = "UPDATE agents SET last_seen=?2 WHERE id=?1",
	[ST_OUTBOX_NEXT] = "SELECT seq, type, body FROM outbox WHERE agent_id=?1 AND seq>?2 "
			   "ORDER BY seq LIMIT 1",
	[ST_LOG_ADD] = "INSERT INTO job_log(job_id, ts, level, message) VALUES(?1, ?2, ?3, ?4)",
};


/*
 * New rows of a full read are inserted this many to a statement. SQLite's
 * cost of executing a statement (binding, cursors opened and closed, the
 * program set up and halted) was about half of what a one-row INSERT of an
 * item cost; with 64 rows a statement, and the values every row shares bound
 * once, a million new rows take about 2 CPU-seconds less to store.
 * OR FAIL: a statement of many rows that may ABORT makes SQLite keep a
 * statement journal of the pages it changes, to undo its own rows alone. A
 * failure here undoes the whole message anyway (its savepoint), so the
 * statement need not undo itself.
 */
#define INSERT_MANY 64

/* INSERT INTO items … VALUES (…), (…), …: ?1 entity, ?2 list, ?3 job,
 * ?4 now, ?5 columns; then per row key, hash, status, modified, data. */
static const char *insert_many_sql(char *sql, size_t len)
{
	size_t o;
	int k, p;

	o = (size_t)snprintf(sql, len, "INSERT OR FAIL INTO items(entity_id, list_id, key, hash, "
				 "status, modified, deleted, last_job, updated_at, data, cols) VALUES");
	for (k = 0; k < INSERT_MANY; k++) {
		p = 6 + 5 * k;
		o += (size_t)snprintf(sql + o, len - o,
				      "%s(?1,?2,?%d,?%d,?%d,?%d,0,?3,?4,?%d,?5)", k ? "," : "", p,
				      p + 1, p + 2, p + 3, p + 4);
	}
	return sql;
}

static sqlite3_stmt *stmt(struct store *s, enum stmt_id id)
{
	char many[INSERT_MANY * 48 + 160];
	const char *sql;

	if (s->st[id])
		return s->st[id];
	sql = id == ST_ITEM_INSERT_MANY ? insert_many_sql(many, sizeof(many)) : stmt_sql[id];
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[id], NULL) !=
	    SQLITE_OK) {
		log_err("store: cannot prepare statement %d: %s", id, sqlite3_errmsg(s->db));
		return NULL;
	}
	return s->st[id];
}

/* The number of a list name or a column list, made on first use. */
static int name_id(struct store *s, enum stmt_id which, const char *name, int64_t *id)
{
	sqlite3_stmt *st = stmt(s, which);
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? APS_OK : APS_ERR_DB;
}

static int list_id(struct store *s, const char *list, int64_t *id)
{
	int rc;

	if (s->last_list_id && !strcmp(s->last_list, list)) {
		*id = s->last_list_id;
		return APS_OK;
	}
	rc = name_id(s, ST_LIST_ID, list, id);
	if (!rc) {
		snprintf(s->last_list, sizeof(s->last_list), "%s", list);
		s->last_list_id = *id;
	}
	return rc;
}

static int cols_id(struct store *s, const char *cols, int64_t *id)
{
	int rc;

	if (s->last_cols && !strcmp(s->last_cols, cols)) {
		*id = s->last_cols_id;
		return APS_OK;
	}
	rc = name_id(s, ST_COLS_ID, cols, id);
	if (!rc) {
		free(s->last_cols);
		s->last_cols = strdup(cols);
		s->last_cols_id = s->last_cols ? *id : 0;
	}
	return rc;
}


sqlite3_stmt *sqlstore__prepare(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_err("store: %s (in: %.80s)", sqlite3_errmsg(s->db), sql);
		return NULL;
	}
	return st;
}

int sqlstore__db_error(struct store *s)
{
	log_err("store: %s", sqlite3_errmsg(s->db));
	return APS_ERR_DB;
}

/*
 * A new store is made with 8 KiB pages (SQLite's default is 4 KiB): items
 * are rows of a few hundred bytes, and a full sync writes and checkpoints
 * them by the page; with 8 KiB, a million new rows cost the writer and the
 * checkpoint thread about 0.4 CPU-seconds less. The size is set before the
 * first write (journal_mode=WAL writes the header); a store that exists,
 * or a file that is not one, is left as it is for aps_db_open() to judge.
 */
static void store_make_new(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int empty = 0;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) ==
		    SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		empty = sqlite3_column_int64(st, 0) == 0;
	sqlite3_finalize(st);
	if (empty)
		sqlite3_exec(db, "PRAGMA page_size=8192; PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	sqlite3_close(db);
}

int store_open(const char *data_dir, struct store **out, char *err, size_t errlen)
{
	struct store *s;
	char path[4096];
	int rc;

	*out = NULL;
	rc = aps_path_join(path, sizeof(path), data_dir, "broker.db");
	if (rc) {
		snprintf(err, errlen, "data directory path too long: %s", data_dir);
		return rc;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return APS_ERR_NOMEM;
	store_make_new(path);
	rc = aps_db_open(path, 0, migrations, (int)APS_ARRAY_LEN(migrations), &s->db, err, errlen);
	if (rc) {
		free(s);
		return rc;
	}
	*out = s;
	return APS_OK;
}

void store_close(struct store *s)
{
	int i;

	if (!s)
		return;
	for (i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(s->st[i]);
	free(s->last_cols);
	aps_db_close(s->db);
	free(s);
}

int store_begin(struct store *s)
{
	return aps_db_begin(s->db);
}

int store_writer_setup(struct store *s)
{
	/* temp_store=MEMORY: the undo records of the writer's savepoints (one
	 * per message) stay in memory. On disk, SQLite made a temporary file for
	 * them in every transaction and wrote to it about one page for every
	 * two it wrote to the log: b-tree splits rewrite pages that earlier
	 * messages of the same transaction had written. They hold at most the
	 * pages one message changes (a few MB for a batch of 10,000 rows). */
	return sqlite3_exec(s->db, "PRAGMA wal_autocheckpoint=0; PRAGMA temp_store=MEMORY", NULL,
			    NULL, NULL) == SQLITE_OK
		       ? APS_OK
		       : sqlstore__db_error(s);
}

int store_checkpoint(struct store *s, int *wal_pages, int *copied)
{
	int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, wal_pages,
					   copied);

	return rc == SQLITE_OK || rc == SQLITE_BUSY ? APS_OK : sqlstore__db_error(s);
}

int store_commit(struct store *s)
{
	return aps_db_commit(s->db);
}

void store_rollback(struct store *s)
{
	aps_db_rollback(s->db);
}

int store_savepoint(struct store *s)
{
	return aps_db_exec(s->db, "SAVEPOINT msg");
}

int store_savepoint_release(struct store *s)
{
	return aps_db_exec(s->db, "RELEASE msg");
}

void store_savepoint_rollback(struct store *s)
{
	sqlite3_exec(s->db, "ROLLBACK TO msg; RELEASE msg", NULL, NULL, NULL);
}

/* Runs a one-shot statement with integer/text parameters given as text. */
static int col_text(sqlite3_stmt *st, int i, char *out, size_t outlen)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(out, outlen, "%s", t ? (const char *)t : "");
	return APS_OK;
}

static void add_time(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
	char iso[APS_TIME_LEN];

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddStringToObject(o, name, aps_time_iso(sqlite3_column_int64(st, col), iso));
}

static void add_text(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	if (t)
		cJSON_AddStringToObject(o, name, (const char *)t);
	else
		cJSON_AddNullToObject(o, name);
}

static void add_json(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	cJSON *v = t ? cJSON_Parse((const char *)t) : NULL;

	cJSON_AddItemToObject(o, name, v ? v : cJSON_CreateNull());
}

static void add_duration(cJSON *o, sqlite3_stmt *st, int start_col, int end_col)
{
	if (sqlite3_column_type(st, start_col) == SQLITE_NULL ||
	    sqlite3_column_type(st, end_col) == SQLITE_NULL)
		cJSON_AddNullToObject(o, "duration_ms");
	else
		cJSON_AddNumberToObject(o, "duration_ms",
					(double)(sqlite3_column_int64(st, end_col) -
						 sqlite3_column_int64(st, start_col)));
}

static void add_error(cJSON *o, sqlite3_stmt *st, int code_col, int msg_col)
{
	cJSON *e;

	if (sqlite3_column_type(st, code_col) == SQLITE_NULL) {
		cJSON_AddNullToObject(o, "error");
		return;
	}
	e = cJSON_AddObjectToObject(o, "error");
	add_text(e, "code", st, code_col);
	add_text(e, "message", st, msg_col);
}

/* ---- tenants, users, tokens ---- */

int store_tenant_create(struct store *s, const char *name, int64_t *id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "INSERT INTO tenants(name, created_at) VALUES(?1, ?2)");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, aps_now_ms());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return APS_ERR_EXISTS;
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	*id = sqlite3_last_insert_rowid(s->db);
	return APS_OK;
}

int store_tenant_find(struct store *s, const char *name, int64_t *id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT id FROM tenants WHERE name=?1");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : sqlstore__db_error(s);
}

int store_user_token_add(struct store *s, int64_t tenant_id, const char *email, const char *role,
			 const uint8_t token_hash[32], int64_t *user_id)
{
	sqlite3_stmt *st = NULL;
	int64_t now = aps_now_ms();
	int rc = APS_ERR_DB;

	if (aps_db_begin(s->db))
		return APS_ERR_DB;
	st = sqlstore__prepare(s, "INSERT INTO users(tenant_id, email, role, created_at) VALUES(?1,?2,?3,?4) "
			"ON CONFLICT(tenant_id, email) DO UPDATE SET role=excluded.role");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, email, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	sqlite3_finalize(st);
	st = sqlstore__prepare(s, "SELECT id FROM users WHERE tenant_id=?1 AND email=?2");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, email, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	*user_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = sqlstore__prepare(s, "INSERT INTO api_tokens(user_id, token_hash, created_at) VALUES(?1,?2,?3)");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, *user_id);
	sqlite3_bind_blob(st, 2, token_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	rc = aps_db_commit(s->db);
out:
	if (rc)
		sqlstore__db_error(s);
	sqlite3_finalize(st);
	if (rc)
		aps_db_rollback(s->db);
	return rc;
}

int store_token_auth(struct store *s, const uint8_t token_hash[32], struct store_user *u)
{
	sqlite3_stmt *st = stmt(s, ST_TOKEN_AUTH);
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_blob(st, 1, token_hash, 32, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		u->id = sqlite3_column_int64(st, 0);
		u->tenant_id = sqlite3_column_int64(st, 1);
		col_text(st, 2, u->email, sizeof(u->email));
		col_text(st, 3, u->role, sizeof(u->role));
		col_text(st, 4, u->tenant, sizeof(u->tenant));
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_AUTH : sqlstore__db_error(s);
}

/* ---- enrollment and agents ---- */

int store_code_create(struct store *s, int64_t tenant_id, const char *synctool,
		      const uint8_t code_hash[32], int64_t expires_at)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "INSERT INTO enroll_codes(tenant_id, synctool_name, "
				      "code_hash, created_at, expires_at) VALUES(?1,?2,?3,?4,?5)");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, synctool, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, code_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, aps_now_ms());
	sqlite3_bind_int64(st, 5, expires_at);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : sqlstore__db_error(s);
}

/* Runs `sql` with ?1=a, ?2=b, ?3=c; if `out` is given, the statement must return
 * one integer row (RETURNING) and *out receives it. */
static int exec_bind3(struct store *s, const char *sql, int64_t a, int64_t b, int64_t c,
		      int64_t *out)
{
	sqlite3_stmt *st = sqlstore__prepare(s, sql);
	int rc;

	if (!st)
		return APS_ERR_DB;
	/* Binding past the statement's parameters is a harmless SQLITE_RANGE. */
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	sqlite3_bind_int64(st, 3, c);
	rc = sqlite3_step(st);
	if (out && rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : sqlstore__db_error(s);
}

int sqlstore__exec_bind2(struct store *s, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st = sqlstore__prepare(s, sql);
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : sqlstore__db_error(s);
}

int store_code_redeem(struct store *s, const uint8_t code_hash[32], int64_t now,
		      const uint8_t secret_hash[32], struct store_agent *agent)
{
	sqlite3_stmt *st = NULL;
	int64_t code_id, tenant_id, expires_at, old_id = 0, agent_id;
	char name[128];
	int rc = APS_ERR_DB, used;

	if (aps_db_begin(s->db))
		return APS_ERR_DB;
	st = sqlstore__prepare(s, "SELECT id, tenant_id, synctool_name, expires_at, used_at IS NOT NULL "
			"FROM enroll_codes WHERE code_hash=?1");
	if (!st)
		goto out;
	sqlite3_bind_blob(st, 1, code_hash, 32, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? APS_ERR_NOTFOUND : APS_ERR_DB;
		goto out;
	}
	code_id = sqlite3_column_int64(st, 0);
	tenant_id = sqlite3_column_int64(st, 1);
	col_text(st, 2, name, sizeof(name));
	expires_at = sqlite3_column_int64(st, 3);
	used = sqlite3_column_int(st, 4);
	sqlite3_finalize(st);
	st = NULL;
	if (used) {
		rc = APS_ERR_USED;
		goto out;
	}
	if (now >= expires_at) {
		rc = APS_ERR_EXPIRED;
		goto out;
	}
	rc = APS_ERR_DB;
	/* A live agent of the same name is replaced (reinstall on a new server). */
	st = sqlstore__prepare(s, "SELECT id FROM agents WHERE tenant_id=?1 AND name=?2 AND revoked_at IS NULL");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		old_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (old_id && sqlstore__exec_bind2(s, "UPDATE agents SET revoked_at=?2, online=0, revoked_reason="
				    "'replaced by a new enrollment' WHERE id=?1",
				 old_id, now))
		goto out;
	st = sqlstore__prepare(s, "INSERT INTO agents(tenant_id, name, secret_hash, created_at) "
			"VALUES(?1,?2,?3,?4)");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, secret_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	sqlite3_finalize(st);
	st = NULL;
	agent_id = sqlite3_last_insert_rowid(s->db);
	if (exec_bind3(s, "UPDATE enroll_codes SET agent_id=?1, used_at=?2 WHERE id=?3", agent_id,
		       now, code_id, NULL))
		goto out;
	if (old_id &&
	    (sqlstore__exec_bind2(s, "INSERT OR IGNORE INTO entity_agents(entity_id, agent_id, last_hello) "
			   "SELECT entity_id, ?2, last_hello FROM entity_agents WHERE agent_id=?1",
			old_id, agent_id) ||
	     sqlstore__exec_bind2(s, "UPDATE jobs SET agent_id=?2 WHERE agent_id=?1 AND status='queued'", old_id,
			agent_id)))
		goto out;
	rc = aps_db_commit(s->db) ? APS_ERR_DB : APS_OK;
	if (rc == APS_OK)
		rc = store_agent_get(s, agent_id, agent);
out:
	sqlite3_finalize(st);
	if (rc)
		aps_db_rollback(s->db);
	return rc;
}

int store_agent_get(struct store *s, int64_t agent_id, struct store_agent *a)
{
	sqlite3_stmt *st = stmt(s, ST_AGENT_GET);
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, agent_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		a->id = sqlite3_column_int64(st, 0);
		a->tenant_id = sqlite3_column_int64(st, 1);
		col_text(st, 2, a->name, sizeof(a->name));
		col_text(st, 3, a->tenant, sizeof(a->tenant));
		memset(a->secret_hash, 0, sizeof(a->secret_hash));
		if (sqlite3_column_bytes(st, 4) == 32)
			memcpy(a->secret_hash, sqlite3_column_blob(st, 4), 32);
		a->revoked_at = sqlite3_column_int64(st, 5);
		a->rx_seq = (uint64_t)sqlite3_column_int64(st, 6);
		a->tx_seq = (uint64_t)sqlite3_column_int64(st, 7);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : sqlstore__db_error(s);
}

int store_agent_revoke(struct store *s, int64_t tenant_id, const char *name, const char *reason,
		       int64_t now, int64_t *agent_id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "UPDATE agents SET revoked_at=?3, revoked_reason=?4, online=0 "
				      "WHERE tenant_id=?1 AND name=?2 AND revoked_at IS NULL "
				      "RETURNING id");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*agent_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : sqlstore__db_error(s);
}

int store_agent_hello(struct store *s, int64_t agent_id, const struct store_hello *h,
		      int64_t now, cJSON **entities)
{
	sqlite3_stmt *st = NULL, *ent = NULL, *link = NULL;
	int64_t tenant_id = 0, entity_id;
	cJSON *arr = cJSON_CreateArray(), *o;
	int rc = APS_ERR_DB, i;

	*entities = NULL;
	if (!arr)
		return APS_ERR_NOMEM;
	if (aps_db_begin(s->db))
		goto out_nobegin;
	st = sqlstore__prepare(s, "UPDATE agents SET online=1, last_seen=?2, connected_at=?2, version=?3, "
			"os=?4, hostname=?5, erp_product=?6, erp_version=?7, erp_error=?8, "
			"remote_addr=?9 WHERE id=?1 RETURNING tenant_id");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, now);
	aps_db_bind_text(st, 3, h->version);
	aps_db_bind_text(st, 4, h->os);
	aps_db_bind_text(st, 5, h->hostname);
	aps_db_bind_text(st, 6, h->erp_product);
	aps_db_bind_text(st, 7, h->erp_version);
	aps_db_bind_text(st, 8, h->erp_error);
	aps_db_bind_text(st, 9, h->remote_addr);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	tenant_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	ent = sqlstore__prepare(s, "INSERT INTO entities(tenant_id, erp_product, code, name, currency, lists, "
			 "po_types, created_at, updated_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?8) "
			 "ON CONFLICT(tenant_id, erp_product, code) DO UPDATE SET "
			 "name=excluded.name, currency=excluded.currency, lists=excluded.lists, "
			 "po_types=excluded.po_types, updated_at=excluded.updated_at RETURNING id");
	link = sqlstore__prepare(s, "INSERT INTO entity_agents(entity_id, agent_id, last_hello) "
			  "VALUES(?1,?2,?3) ON CONFLICT DO UPDATE SET last_hello=excluded.last_hello");
	if (!ent || !link)
		goto out;
	for (i = 0; i < h->ncompanies; i++) {
		const struct store_company *c = &h->companies[i];

		sqlite3_bind_int64(ent, 1, tenant_id);
		aps_db_bind_text(ent, 2, h->erp_product ? h->erp_product : "unknown");
		aps_db_bind_text(ent, 3, c->code);
		aps_db_bind_text(ent, 4, c->name);
		aps_db_bind_text(ent, 5, c->currency);
		aps_db_bind_text(ent, 6, c->lists ? c->lists : "[]");
		aps_db_bind_text(ent, 7, c->po_types);
		sqlite3_bind_int64(ent, 8, now);
		if (sqlite3_step(ent) != SQLITE_ROW)
			goto out;
		entity_id = sqlite3_column_int64(ent, 0);
		sqlite3_reset(ent);
		sqlite3_bind_int64(link, 1, entity_id);
		sqlite3_bind_int64(link, 2, agent_id);
		sqlite3_bind_int64(link, 3, now);
		if (aps_db_step_done(link))
			goto out;
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "code", c->code);
		cJSON_AddNumberToObject(o, "id", (double)entity_id);
		cJSON_AddItemToArray(arr, o);
	}
	if (aps_db_commit(s->db))
		goto out;
	*entities = arr;
	arr = NULL;
	rc = APS_OK;
out:
	if (rc) {
		sqlstore__db_error(s);
		aps_db_rollback(s->db);
	}
out_nobegin:
	sqlite3_finalize(st);
	sqlite3_finalize(ent);
	sqlite3_finalize(link);
	cJSON_Delete(arr);
	return rc;
}

int store_agent_offline(struct store *s, int64_t agent_id, int64_t last_seen)
{
	return sqlstore__exec_bind2(s, "UPDATE agents SET online=0, last_seen=?2 WHERE id=?1", agent_id,
			  last_seen);
}

int store_agent_seen(struct store *s, int64_t agent_id, int64_t last_seen)
{
	sqlite3_stmt *st = stmt(s, ST_AGENT_SEEN);

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, last_seen);
	return aps_db_step_done(st);
}

int store_agents_all_offline(struct store *s)
{
	return aps_db_exec(s->db, "UPDATE agents SET online=0 WHERE online=1");
}

/* ---- entities and SyncTools for the API ---- */

cJSON *store_synctools_list(struct store *s, int64_t tenant_id)
{
	sqlite3_stmt *st, *ents;
	cJSON *arr = cJSON_CreateArray(), *o, *erp, *list, *e;

	st = sqlstore__prepare(s, "SELECT id, name, online, last_seen, version, os, hostname, erp_product, "
			"erp_version, erp_error, created_at, connected_at FROM agents "
			"WHERE tenant_id=?1 AND revoked_at IS NULL ORDER BY name");
	ents = sqlstore__prepare(s, "SELECT e.id, e.code, e.name FROM entity_agents l JOIN entities e ON "
			  "e.id=l.entity_id WHERE l.agent_id=?1 ORDER BY e.name");
	if (!st || !ents || !arr)
		goto fail;
	sqlite3_bind_int64(st, 1, tenant_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, o);
		cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
		add_text(o, "name", st, 1);
		cJSON_AddStringToObject(o, "status", sqlite3_column_int(st, 2) ? "online" : "offline");
		add_time(o, "last_seen", st, 3);
		add_text(o, "version", st, 4);
		add_text(o, "os", st, 5);
		add_text(o, "hostname", st, 6);
		erp = cJSON_AddObjectToObject(o, "erp");
		add_text(erp, "product", st, 7);
		add_text(erp, "version", st, 8);
		add_text(erp, "error", st, 9);
		add_time(o, "enrolled_at", st, 10);
		add_time(o, "connected_at", st, 11);
		list = cJSON_AddArrayToObject(o, "entities");
		sqlite3_bind_int64(ents, 1, sqlite3_column_int64(st, 0));
		while (sqlite3_step(ents) == SQLITE_ROW) {
			e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "id", (double)sqlite3_column_int64(ents, 0));
			add_text(e, "code", ents, 1);
			add_text(e, "name", ents, 2);
			cJSON_AddItemToArray(list, e);
		}
		sqlite3_reset(ents);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(ents);
	return arr;
fail:
	sqlite3_finalize(st);
	sqlite3_finalize(ents);
	cJSON_Delete(arr);
	return NULL;
}

/* Milliseconds: the average duration of the entity's last five successful
 * syncs of a mode, or null. */
static void add_estimate(struct store *s, cJSON *o, const char *name, int64_t entity_id,
			 const char *mode)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT avg(d) FROM (SELECT finished_at-started_at AS d FROM "
				      "jobs WHERE entity_id=?1 AND mode=?2 AND status='success' "
				      "ORDER BY id DESC LIMIT 5)");

	if (st) {
		sqlite3_bind_int64(st, 1, entity_id);
		sqlite3_bind_text(st, 2, mode, -1, SQLITE_STATIC);
	}
	if (st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		cJSON_AddNumberToObject(o, name, (double)(int64_t)sqlite3_column_double(st, 0));
	else
		cJSON_AddNullToObject(o, name);
	sqlite3_finalize(st);
}

static cJSON *entity_json(struct store *s, sqlite3_stmt *st, sqlite3_stmt *tools,
			  sqlite3_stmt *last)
{
	cJSON *o = cJSON_CreateObject(), *list, *t, *all, *est, *ls;
	int64_t id = sqlite3_column_int64(st, 0);
	int live = 0, nlists;
	const char *lists;

	cJSON_AddNumberToObject(o, "id", (double)id);
	add_text(o, "code", st, 1);
	add_text(o, "name", st, 2);
	add_text(o, "erp", st, 3);
	add_text(o, "currency", st, 4);
	add_json(o, "lists", st, 5);
	add_text(o, "po_types", st, 6);
	add_time(o, "created_at", st, 7);
	lists = (const char *)sqlite3_column_text(st, 5);
	nlists = lists && strcmp(lists, "[]") ? 1 : 0;
	list = cJSON_AddArrayToObject(o, "synctools");
	sqlite3_bind_int64(tools, 1, id);
	while (sqlite3_step(tools) == SQLITE_ROW) {
		t = cJSON_CreateObject();
		cJSON_AddNumberToObject(t, "id", (double)sqlite3_column_int64(tools, 0));
		add_text(t, "name", tools, 1);
		cJSON_AddStringToObject(t, "status", sqlite3_column_int(tools, 2) ? "online" : "offline");
		add_time(t, "last_seen", tools, 3);
		cJSON_AddItemToArray(list, t);
		live++;
	}
	sqlite3_reset(tools);
	/* the last successful sync: its start is the default Sync From */
	sqlite3_bind_int64(last, 1, id);
	ls = NULL;
	if (sqlite3_step(last) == SQLITE_ROW) {
		ls = cJSON_AddObjectToObject(o, "last_success");
		cJSON_AddNumberToObject(ls, "sync", (double)sqlite3_column_int64(last, 0));
		add_text(ls, "mode", last, 1);
		add_time(ls, "started_at", last, 2);
		add_time(ls, "finished_at", last, 3);
		add_duration(ls, last, 2, 3);
	} else {
		cJSON_AddNullToObject(o, "last_success");
	}
	sqlite3_reset(last);
	all = cJSON_AddObjectToObject(o, "sync_all");
	if (!live || !nlists) {
		cJSON_AddBoolToObject(all, "eligible", 0);
		cJSON_AddStringToObject(all, "reason",
					!live ? "no enrolled SyncTool serves this entity"
					      : "its ERP offers no list the SyncTool can sync");
	} else if (!ls) {
		cJSON_AddBoolToObject(all, "eligible", 0);
		cJSON_AddStringToObject(all, "reason",
					"it has never synced successfully; run a full sync of it "
					"first");
	} else {
		cJSON_AddBoolToObject(all, "eligible", 1);
		cJSON_AddNullToObject(all, "reason");
	}
	est = cJSON_AddObjectToObject(o, "estimate_ms");
	add_estimate(s, est, "full", id, "full");
	add_estimate(s, est, "partial", id, "partial");
	return o;
}

#define ENTITY_COLS "SELECT id, code, name, erp_product, currency, lists, po_types, created_at "
#define TOOLS_SQL                                                                              \
	"SELECT a.id, a.name, a.online, a.last_seen FROM entity_agents l JOIN agents a ON "      \
	"a.id=l.agent_id WHERE l.entity_id=?1 AND a.revoked_at IS NULL ORDER BY l.last_hello DESC"
#define LAST_SQL                                                                               \
	"SELECT id, mode, started_at, finished_at FROM jobs WHERE entity_id=?1 AND "            \
	"status='success' ORDER BY id DESC LIMIT 1"

static cJSON *entities_query(struct store *s, int64_t tenant_id, int64_t entity_id)
{
	sqlite3_stmt *st, *tools, *last;
	cJSON *arr = cJSON_CreateArray();

	st = sqlstore__prepare(s, ENTITY_COLS "FROM entities WHERE tenant_id=?1 AND (?2=0 OR id=?2) "
				    "ORDER BY name");
	tools = sqlstore__prepare(s, TOOLS_SQL);
	last = sqlstore__prepare(s, LAST_SQL);
	if (!st || !tools || !last || !arr) {
		cJSON_Delete(arr);
		arr = NULL;
		goto out;
	}
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_int64(st, 2, entity_id);
	while (sqlite3_step(st) == SQLITE_ROW)
		cJSON_AddItemToArray(arr, entity_json(s, st, tools, last));
out:
	sqlite3_finalize(st);
	sqlite3_finalize(tools);
	sqlite3_finalize(last);
	return arr;
}

cJSON *store_entities_list(struct store *s, int64_t tenant_id)
{
	return entities_query(s, tenant_id, 0);
}

cJSON *store_entity_get(struct store *s, int64_t tenant_id, int64_t entity_id)
{
	cJSON *arr = entities_query(s, tenant_id, entity_id), *e;

	e = arr ? cJSON_DetachItemFromArray(arr, 0) : NULL;
	cJSON_Delete(arr);
	return e;
}

cJSON *store_overview(struct store *s, int64_t tenant_id)
{
	sqlite3_stmt *st;
	cJSON *arr = cJSON_CreateArray(), *o, *job;

	st = sqlstore__prepare(s, "SELECT e.id, e.code, e.name, (SELECT max(j.id) FROM jobs j WHERE "
			"j.entity_id=e.id) FROM entities e WHERE e.tenant_id=?1 ORDER BY e.name");
	if (!st || !arr) {
		cJSON_Delete(arr);
		sqlite3_finalize(st);
		return NULL;
	}
	sqlite3_bind_int64(st, 1, tenant_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, o);
		cJSON_AddNumberToObject(o, "entity", (double)sqlite3_column_int64(st, 0));
		add_text(o, "code", st, 1);
		add_text(o, "name", st, 2);
		job = sqlite3_column_type(st, 3) == SQLITE_NULL
			      ? NULL
			      : store_job_get(s, tenant_id, sqlite3_column_int64(st, 3));
		cJSON_AddItemToObject(o, "latest", job ? job : cJSON_CreateNull());
	}
	sqlite3_finalize(st);
	return arr;
}

cJSON *store_entity_lists(struct store *s, int64_t tenant_id, int64_t entity_id)
{
	sqlite3_stmt *ent, *last_ok = NULL, *latest = NULL, *held = NULL, *est = NULL;
	cJSON *names = NULL, *arr = NULL, *o, *it, *run;

	ent = sqlstore__prepare(s, "SELECT lists FROM entities WHERE id=?1 AND tenant_id=?2");
	if (!ent)
		return NULL;
	sqlite3_bind_int64(ent, 1, entity_id);
	sqlite3_bind_int64(ent, 2, tenant_id);
	if (sqlite3_step(ent) == SQLITE_ROW)
		names = cJSON_Parse((const char *)sqlite3_column_text(ent, 0));
	sqlite3_finalize(ent);
	if (!names)
		return NULL;
	last_ok = sqlstore__prepare(s, "SELECT l.finished_at, l.started_at, j.id FROM job_lists l JOIN jobs j "
			     "ON j.id=l.job_id WHERE j.entity_id=?1 AND l.list=?2 AND "
			     "l.status='success' ORDER BY j.id DESC LIMIT 1");
	latest = sqlstore__prepare(s, "SELECT j.id, l.status, l.error_code, l.error_message, l.received, "
			    "l.estimate, j.status FROM job_lists l JOIN jobs j ON j.id=l.job_id "
			    "WHERE j.entity_id=?1 AND l.list=?2 ORDER BY j.id DESC LIMIT 1");
	held = sqlstore__prepare(s, "SELECT count(*) FROM items WHERE entity_id=?1 AND list_id=(SELECT id FROM "
			  "lists WHERE name=?2) AND deleted=0");
	est = sqlstore__prepare(s, "SELECT avg(d) FROM (SELECT l.finished_at-l.started_at AS d FROM job_lists "
			 "l JOIN jobs j ON j.id=l.job_id WHERE j.entity_id=?1 AND l.list=?2 AND "
			 "l.status='success' ORDER BY j.id DESC LIMIT 5)");
	arr = cJSON_CreateArray();
	if (!last_ok || !latest || !held || !est || !arr) {
		cJSON_Delete(arr);
		arr = NULL;
		goto out;
	}
	cJSON_ArrayForEach(it, names) {
		if (!cJSON_IsString(it))
			continue;
		o = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "list", it->valuestring);
		sqlite3_bind_int64(last_ok, 1, entity_id);
		sqlite3_bind_text(last_ok, 2, it->valuestring, -1, SQLITE_STATIC);
		if (sqlite3_step(last_ok) == SQLITE_ROW) {
			add_time(o, "last_synced", last_ok, 0);
			add_duration(o, last_ok, 1, 0);
			cJSON_AddNumberToObject(o, "last_sync", (double)sqlite3_column_int64(last_ok, 2));
		} else {
			cJSON_AddNullToObject(o, "last_synced");
			cJSON_AddNullToObject(o, "duration_ms");
			cJSON_AddNullToObject(o, "last_sync");
		}
		sqlite3_reset(last_ok);
		sqlite3_bind_int64(latest, 1, entity_id);
		sqlite3_bind_text(latest, 2, it->valuestring, -1, SQLITE_STATIC);
		run = NULL;
		if (sqlite3_step(latest) == SQLITE_ROW) {
			add_text(o, "status", latest, 1);
			add_error(o, latest, 2, 3);
			if (!strcmp((const char *)sqlite3_column_text(latest, 1), "running")) {
				run = cJSON_AddObjectToObject(o, "running");
				cJSON_AddNumberToObject(run, "sync",
							(double)sqlite3_column_int64(latest, 0));
				cJSON_AddNumberToObject(run, "done",
							(double)sqlite3_column_int64(latest, 4));
				if (sqlite3_column_type(latest, 5) == SQLITE_NULL)
					cJSON_AddNullToObject(run, "estimate");
				else
					cJSON_AddNumberToObject(run, "estimate",
								(double)sqlite3_column_int64(latest, 5));
			}
		} else {
			cJSON_AddNullToObject(o, "status");
			cJSON_AddNullToObject(o, "error");
		}
		if (!run)
			cJSON_AddNullToObject(o, "running");
		sqlite3_reset(latest);
		sqlite3_bind_int64(held, 1, entity_id);
		sqlite3_bind_text(held, 2, it->valuestring, -1, SQLITE_STATIC);
		if (sqlite3_step(held) == SQLITE_ROW)
			cJSON_AddNumberToObject(o, "items", (double)sqlite3_column_int64(held, 0));
		sqlite3_reset(held);
		sqlite3_bind_int64(est, 1, entity_id);
		sqlite3_bind_text(est, 2, it->valuestring, -1, SQLITE_STATIC);
		if (sqlite3_step(est) == SQLITE_ROW && sqlite3_column_type(est, 0) != SQLITE_NULL)
			cJSON_AddNumberToObject(o, "estimate_ms",
						(double)(int64_t)sqlite3_column_double(est, 0));
		else
			cJSON_AddNullToObject(o, "estimate_ms");
		sqlite3_reset(est);
	}
out:
	cJSON_Delete(names);
	sqlite3_finalize(last_ok);
	sqlite3_finalize(latest);
	sqlite3_finalize(held);
	sqlite3_finalize(est);
	return arr;
}

/* An item as the API shows it: {column: value}, from its value array and
 * its column set (cached across the rows of a page in *names). */
static cJSON *item_object(struct store *s, int64_t cols, const char *data, cJSON **names,
			  int64_t *names_id)
{
	sqlite3_stmt *st;
	cJSON *vals, *o, *n, *v, *next;

	if (!*names || *names_id != cols) {
		cJSON_Delete(*names);
		*names = NULL;
		st = sqlstore__prepare(s, "SELECT names FROM columns WHERE id=?1");
		if (st) {
			sqlite3_bind_int64(st, 1, cols);
			if (sqlite3_step(st) == SQLITE_ROW)
				*names = cJSON_Parse((const char *)sqlite3_column_text(st, 0));
		}
		sqlite3_finalize(st);
		*names_id = cols;
	}
	vals = data ? cJSON_Parse(data) : NULL;
	if (!vals || !*names)
		return vals ? vals : cJSON_CreateNull();
	o = cJSON_CreateObject();
	n = (*names)->child;
	for (v = vals->child; v && n; v = next, n = n->next) {
		next = v->next;
		cJSON_AddItemToObject(o, n->valuestring, cJSON_DetachItemViaPointer(vals, v));
	}
	cJSON_Delete(vals);
	return o;
}

int store_items_page(struct store *s, int64_t tenant_id, int64_t entity_id, const char *list,
		     const struct store_page *pg, cJSON **out)
{
	sqlite3_stmt *st = NULL;
	cJSON *o = NULL, *items, *it, *names = NULL;
	int64_t names_id = 0;
	char cur_key[APSYNC_MAX_KEY_LEN + 1] = "", next[APSYNC_MAX_KEY_LEN + 32];
	int64_t cur_ms = -1, last_ms = 0;
	const char *colon;
	int n = 0, rc = APS_ERR_DB;

	*out = NULL;
	st = sqlstore__prepare(s, "SELECT 1 FROM entities WHERE id=?1 AND tenant_id=?2");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, entity_id);
	sqlite3_bind_int64(st, 2, tenant_id);
	rc = sqlite3_step(st) == SQLITE_ROW ? APS_OK : APS_ERR_NOTFOUND;
	sqlite3_finalize(st);
	st = NULL;
	if (rc)
		return rc;
	/* The cursor is the last key, or "ms:key" when ordered by change time. */
	if (pg->cursor) {
		colon = pg->changed_since ? strchr(pg->cursor, ':') : NULL;
		if (pg->changed_since) {
			char num[24];

			if (!colon || colon == pg->cursor || (size_t)(colon - pg->cursor) >= sizeof(num))
				return APS_ERR_INVAL;
			memcpy(num, pg->cursor, (size_t)(colon - pg->cursor));
			num[colon - pg->cursor] = '\0';
			if (aps_parse_i64(num, 0, INT64_MAX, &cur_ms))
				return APS_ERR_INVAL;
		}
		if (strlen(colon ? colon + 1 : pg->cursor) > APSYNC_MAX_KEY_LEN)
			return APS_ERR_INVAL;
		snprintf(cur_key, sizeof(cur_key), "%s", colon ? colon + 1 : pg->cursor);
	}
	st = sqlstore__prepare(s, pg->changed_since
			       ? "SELECT key, status, deleted, modified, updated_at, data, cols FROM "
				 "items WHERE entity_id=?1 AND list_id=(SELECT id FROM lists WHERE "
				 "name=?2) AND updated_at>=?3 AND "
				 "(updated_at>?4 OR (updated_at=?4 AND key>?5)) AND (?6 IS NULL OR "
				 "(?6='deleted' AND deleted=1) OR (deleted=0 AND status=?6)) "
				 "ORDER BY updated_at, key LIMIT ?7"
			       : "SELECT key, status, deleted, modified, updated_at, data, cols FROM "
				 "items WHERE entity_id=?1 AND list_id=(SELECT id FROM lists WHERE "
				 "name=?2) AND key>?5 AND (?6 IS NULL OR "
				 "(?6='deleted' AND deleted=1) OR (deleted=0 AND status=?6)) "
				 "ORDER BY key LIMIT ?7");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, entity_id);
	sqlite3_bind_text(st, 2, list, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, pg->changed_since);
	sqlite3_bind_int64(st, 4, cur_ms);
	sqlite3_bind_text(st, 5, cur_key, -1, SQLITE_STATIC);
	aps_db_bind_text(st, 6, pg->status);
	sqlite3_bind_int(st, 7, pg->limit + 1);
	o = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(o, "items");
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == pg->limit) {
			/* one more exists: the page ends at the previous row */
			if (pg->changed_since)
				snprintf(next, sizeof(next), "%lld:%s", (long long)last_ms, cur_key);
			else
				snprintf(next, sizeof(next), "%s", cur_key);
			cJSON_AddStringToObject(o, "next", next);
			break;
		}
		it = cJSON_CreateObject();
		cJSON_AddItemToArray(items, it);
		add_text(it, "key", st, 0);
		add_text(it, "status", st, 1);
		cJSON_AddBoolToObject(it, "deleted", sqlite3_column_int(st, 2));
		add_text(it, "modified_at", st, 3);
		add_time(it, "updated_at", st, 4);
		cJSON_AddItemToObject(it, "data", item_object(s, sqlite3_column_int64(st, 6),
							      (const char *)sqlite3_column_text(st, 5),
							      &names, &names_id));
		snprintf(cur_key, sizeof(cur_key), "%s", (const char *)sqlite3_column_text(st, 0));
		last_ms = sqlite3_column_int64(st, 4);
		n++;
	}
	if (!cJSON_GetObjectItemCaseSensitive(o, "next"))
		cJSON_AddNullToObject(o, "next");
	sqlite3_finalize(st);
	cJSON_Delete(names);
	*out = o;
	return APS_OK;
}

int store_entity_agent(struct store *s, int64_t tenant_id, int64_t entity_id,
		       int64_t want_agent, int64_t *agent_id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT l.agent_id FROM entities e JOIN entity_agents l ON "
				      "l.entity_id=e.id JOIN agents a ON a.id=l.agent_id "
				      "WHERE e.id=?1 AND e.tenant_id=?2 AND a.revoked_at IS NULL "
				      "AND (?3=0 OR a.id=?3) ORDER BY l.last_hello DESC LIMIT 1");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, entity_id);
	sqlite3_bind_int64(st, 2, tenant_id);
	sqlite3_bind_int64(st, 3, want_agent);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*agent_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : sqlstore__db_error(s);
}

/* ---- jobs ---- */

int store_job_create(struct store *s, const struct store_job_req *r, int64_t now, int64_t *job_id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "INSERT INTO jobs(tenant_id, entity_id, agent_id, mode, lists, "
				      "since, po_enabled, po_since, status, requested_by, created_at) "
				      "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,'queued',?9,?10)");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, r->tenant_id);
	sqlite3_bind_int64(st, 2, r->entity_id);
	sqlite3_bind_int64(st, 3, r->agent_id);
	aps_db_bind_text(st, 4, r->mode);
	aps_db_bind_text(st, 5, r->lists);
	aps_db_bind_text(st, 6, r->since);
	sqlite3_bind_int(st, 7, r->po_enabled);
	aps_db_bind_text(st, 8, r->po_since);
	aps_db_bind_text(st, 9, r->requested_by);
	sqlite3_bind_int64(st, 10, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	*job_id = sqlite3_last_insert_rowid(s->db);
	return APS_OK;
}



cJSON *store_job_get(struct store *s, int64_t tenant_id, int64_t job_id)
{
	sqlite3_stmt *st, *ls = NULL;
	cJSON *o = NULL, *lists, *l, *counts, *ent, *tool, *totals;
	int64_t tot[6] = {0};
	char sum[17];
	int i;

	st = sqlstore__prepare(s, "SELECT j.id, j.mode, j.lists, j.since, j.status, j.reason, j.requested_by, "
			"j.created_at, j.dispatched_at, j.started_at, j.finished_at, j.error_code, "
			"j.error_message, e.id, e.code, e.name, a.id, a.name "
			"FROM jobs j JOIN entities e ON e.id=j.entity_id JOIN agents a ON "
			"a.id=j.agent_id WHERE j.id=?1 AND j.tenant_id=?2");
	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int64(st, 2, tenant_id);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
	ent = cJSON_AddObjectToObject(o, "entity");
	cJSON_AddNumberToObject(ent, "id", (double)sqlite3_column_int64(st, 13));
	add_text(ent, "code", st, 14);
	add_text(ent, "name", st, 15);
	tool = cJSON_AddObjectToObject(o, "synctool");
	cJSON_AddNumberToObject(tool, "id", (double)sqlite3_column_int64(st, 16));
	add_text(tool, "name", st, 17);
	add_text(o, "mode", st, 1);
	add_json(o, "requested_lists", st, 2);
	add_text(o, "since", st, 3);
	add_text(o, "status", st, 4);
	add_text(o, "reason", st, 5);
	add_text(o, "requested_by", st, 6);
	add_time(o, "created_at", st, 7);
	add_time(o, "dispatched_at", st, 8);
	add_time(o, "started_at", st, 9);
	add_time(o, "finished_at", st, 10);
	add_duration(o, st, 9, 10);
	add_error(o, st, 11, 12);
	ls = sqlstore__prepare(s, "SELECT list, status, estimate, received, inserted, updated, unchanged, "
			"deleted, reported, checksum, checksum_agent, started_at, finished_at, "
			"error_code, error_message FROM job_lists WHERE job_id=?1 ORDER BY started_at, "
			"list");
	if (!ls)
		goto out;
	sqlite3_bind_int64(ls, 1, job_id);
	lists = cJSON_AddArrayToObject(o, "lists");
	while (sqlite3_step(ls) == SQLITE_ROW) {
		l = cJSON_CreateObject();
		cJSON_AddItemToArray(lists, l);
		add_text(l, "list", ls, 0);
		add_text(l, "status", ls, 1);
		if (sqlite3_column_type(ls, 2) == SQLITE_NULL)
			cJSON_AddNullToObject(l, "estimate");
		else
			cJSON_AddNumberToObject(l, "estimate", (double)sqlite3_column_int64(ls, 2));
		counts = cJSON_AddObjectToObject(l, "counts");
		for (i = 0; i < 5; i++) {
			static const char *const names[] = {"read", "inserted", "updated",
							    "unchanged", "deleted"};

			tot[i] += sqlite3_column_int64(ls, 3 + i);
			cJSON_AddNumberToObject(counts, names[i],
						(double)sqlite3_column_int64(ls, 3 + i));
		}
		if (sqlite3_column_type(ls, 8) == SQLITE_NULL)
			cJSON_AddNullToObject(l, "reported");
		else
			cJSON_AddNumberToObject(l, "reported", (double)sqlite3_column_int64(ls, 8));
		aps_checksum_hex((uint64_t)sqlite3_column_int64(ls, 9), sum);
		cJSON_AddStringToObject(l, "checksum", sum);
		add_text(l, "checksum_agent", ls, 10);
		add_time(l, "started_at", ls, 11);
		add_time(l, "finished_at", ls, 12);
		add_duration(l, ls, 11, 12);
		add_error(l, ls, 13, 14);
	}
	totals = cJSON_AddObjectToObject(o, "totals");
	cJSON_AddNumberToObject(totals, "read", (double)tot[0]);
	cJSON_AddNumberToObject(totals, "inserted", (double)tot[1]);
	cJSON_AddNumberToObject(totals, "updated", (double)tot[2]);
	cJSON_AddNumberToObject(totals, "unchanged", (double)tot[3]);
	cJSON_AddNumberToObject(totals, "deleted", (double)tot[4]);
out:
	sqlite3_finalize(st);
	sqlite3_finalize(ls);
	return o;
}

cJSON *store_jobs_list(struct store *s, int64_t tenant_id, int64_t entity_id, int limit)
{
	sqlite3_stmt *st;
	cJSON *arr, *o, *e, *t, *tot;

	st = sqlstore__prepare(s, "SELECT j.id, j.mode, j.status, j.reason, j.requested_by, j.created_at, "
			"j.started_at, j.finished_at, e.id, e.code, e.name, a.id, a.name, "
			"(SELECT coalesce(sum(received), 0) FROM job_lists WHERE job_id=j.id), "
			"(SELECT coalesce(sum(inserted), 0) FROM job_lists WHERE job_id=j.id), "
			"(SELECT coalesce(sum(updated), 0) FROM job_lists WHERE job_id=j.id), "
			"(SELECT count(*) FROM job_lists WHERE job_id=j.id AND status='failed') "
			"FROM jobs j JOIN entities e ON e.id=j.entity_id JOIN agents a ON "
			"a.id=j.agent_id WHERE j.tenant_id=?1 AND (?2=0 OR j.entity_id=?2) "
			"ORDER BY j.id DESC LIMIT ?3");
	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_int64(st, 2, entity_id);
	sqlite3_bind_int(st, 3, limit);
	arr = cJSON_CreateArray();
	while (arr && sqlite3_step(st) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, o);
		cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
		e = cJSON_AddObjectToObject(o, "entity");
		cJSON_AddNumberToObject(e, "id", (double)sqlite3_column_int64(st, 8));
		add_text(e, "code", st, 9);
		add_text(e, "name", st, 10);
		t = cJSON_AddObjectToObject(o, "synctool");
		cJSON_AddNumberToObject(t, "id", (double)sqlite3_column_int64(st, 11));
		add_text(t, "name", st, 12);
		add_text(o, "mode", st, 1);
		add_text(o, "status", st, 2);
		add_text(o, "reason", st, 3);
		add_text(o, "requested_by", st, 4);
		add_time(o, "created_at", st, 5);
		add_time(o, "started_at", st, 6);
		add_time(o, "finished_at", st, 7);
		add_duration(o, st, 6, 7);
		tot = cJSON_AddObjectToObject(o, "totals");
		cJSON_AddNumberToObject(tot, "read", (double)sqlite3_column_int64(st, 13));
		cJSON_AddNumberToObject(tot, "inserted", (double)sqlite3_column_int64(st, 14));
		cJSON_AddNumberToObject(tot, "updated", (double)sqlite3_column_int64(st, 15));
		cJSON_AddNumberToObject(o, "failed_lists", (double)sqlite3_column_int64(st, 16));
	}
	sqlite3_finalize(st);
	return arr;
}

cJSON *store_job_log(struct store *s, int64_t tenant_id, int64_t job_id)
{
	sqlite3_stmt *st;
	cJSON *arr = NULL, *o;

	st = sqlstore__prepare(s, "SELECT l.ts, l.level, l.message FROM job_log l JOIN jobs j ON j.id=l.job_id "
			"WHERE l.job_id=?1 AND j.tenant_id=?2 ORDER BY l.id");
	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int64(st, 2, tenant_id);
	arr = cJSON_CreateArray();
	while (arr && sqlite3_step(st) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		add_time(o, "ts", st, 0);
		add_text(o, "level", st, 1);
		add_text(o, "message", st, 2);
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

int store_job_log_add(struct store *s, int64_t job_id, int64_t ts, const char *level,
		      const char *message)
{
	sqlite3_stmt *st = stmt(s, ST_LOG_ADD);

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int64(st, 2, ts);
	sqlite3_bind_text(st, 3, level, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, message, -1, SQLITE_STATIC);
	return aps_db_step_done(st);
}

/* Appends a message to an agent's outbox with the agent's next seq. */
int sqlstore__outbox_add(struct store *s, int64_t agent_id, int type, const char *body,
			 int64_t now)
{
	sqlite3_stmt *st;
	int64_t seq = 0;
	int rc;

	rc = exec_bind3(s, "UPDATE agents SET tx_seq=tx_seq+1 WHERE id=?1 RETURNING tx_seq", agent_id,
			0, 0, &seq);
	if (rc)
		return rc;
	st = sqlstore__prepare(s, "INSERT INTO outbox(agent_id, seq, type, body, created_at) "
			"VALUES(?1,?2,?3,?4,?5)");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_int(st, 3, type);
	sqlite3_bind_text(st, 4, body, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : sqlstore__db_error(s);
}

/* Adds an optional text column to a JSON object. */
void sqlstore__add_opt(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddStringToObject(o, name, (const char *)sqlite3_column_text(st, col));
}

int store_dispatch(struct store *s, int64_t agent_id, int64_t now, int *n)
{
	sqlite3_stmt *pick = NULL;
	int64_t job_id;
	cJSON *body, *po;
	char *text, iso[APS_TIME_LEN];
	int rc = APS_ERR_DB;

	*n = 0;
	if (aps_db_begin(s->db))
		return APS_ERR_DB;
	/* The oldest queued job of each entity that has nothing in progress,
	 * with the start of the entity's last successful sync: the default
	 * Sync From of lists the agent has no checkpoint for. */
	pick = sqlstore__prepare(s, "SELECT j.id, e.code, j.mode, j.lists, j.since, j.po_enabled, "
			  "j.po_since, (SELECT max(k.started_at) FROM jobs k WHERE "
			  "k.entity_id=j.entity_id AND k.status='success') FROM jobs j "
			  "JOIN entities e ON e.id=j.entity_id "
			  "WHERE j.agent_id=?1 AND j.status='queued' AND NOT EXISTS (SELECT 1 FROM "
			  "jobs k WHERE k.entity_id=j.entity_id AND k.status IN ('dispatched', "
			  "'running')) AND j.id=(SELECT min(m.id) FROM jobs m WHERE "
			  "m.entity_id=j.entity_id AND m.status='queued') ORDER BY j.id");
	if (!pick)
		goto out;
	sqlite3_bind_int64(pick, 1, agent_id);
	while (sqlite3_step(pick) == SQLITE_ROW) {
		const unsigned char *lists = sqlite3_column_text(pick, 3);

		job_id = sqlite3_column_int64(pick, 0);
		body = cJSON_CreateObject();
		cJSON_AddNumberToObject(body, "job", (double)job_id);
		cJSON_AddStringToObject(body, "entity", (const char *)sqlite3_column_text(pick, 1));
		cJSON_AddStringToObject(body, "mode", (const char *)sqlite3_column_text(pick, 2));
		cJSON_AddItemToObject(body, "lists",
				      lists ? cJSON_Parse((const char *)lists) : cJSON_CreateNull());
		sqlstore__add_opt(body, "since", pick, 4);
		if (sqlite3_column_type(pick, 7) == SQLITE_NULL)
			cJSON_AddNullToObject(body, "fallback_since");
		else
			cJSON_AddStringToObject(body, "fallback_since",
						aps_time_iso(sqlite3_column_int64(pick, 7), iso));
		po = cJSON_AddObjectToObject(body, "po");
		cJSON_AddBoolToObject(po, "enabled", sqlite3_column_int(pick, 5));
		sqlstore__add_opt(po, "since", pick, 6);
		text = cJSON_PrintUnformatted(body);
		cJSON_Delete(body);
		if (!text)
			goto out;
		rc = sqlstore__outbox_add(s, agent_id, APSYNC_MSG_SYNC_START, text, now);
		cJSON_free(text);
		if (rc || sqlstore__exec_bind2(s, "UPDATE jobs SET status='dispatched', dispatched_at=?2, "
					"reason=NULL, stale=0 WHERE id=?1",
				     job_id, now) ||
		    store_job_log_add(s, job_id, now, "info", "sent to the SyncTool")) {
			rc = APS_ERR_DB;
			goto out;
		}
		(*n)++;
	}
	rc = aps_db_commit(s->db) ? APS_ERR_DB : APS_OK;
out:
	sqlite3_finalize(pick);
	if (rc) {
		*n = 0;
		aps_db_rollback(s->db);
	}
	return rc;
}

int store_job_result(struct store *s, int64_t job_id, int64_t now)
{
	sqlite3_stmt *st;
	cJSON *body = cJSON_CreateObject(), *lists;
	int64_t agent_id = 0;
	char *text = NULL;
	int rc = APS_ERR_DB;

	st = sqlstore__prepare(s, "SELECT agent_id, status FROM jobs WHERE id=?1");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, job_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		agent_id = sqlite3_column_int64(st, 0);
		cJSON_AddNumberToObject(body, "job", (double)job_id);
		cJSON_AddStringToObject(body, "status", (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	if (!agent_id)
		goto out;
	lists = cJSON_AddObjectToObject(body, "lists");
	st = sqlstore__prepare(s, "SELECT list, status FROM job_lists WHERE job_id=?1");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, job_id);
	while (sqlite3_step(st) == SQLITE_ROW)
		cJSON_AddStringToObject(lists, (const char *)sqlite3_column_text(st, 0),
					(const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	text = cJSON_PrintUnformatted(body);
	rc = text ? sqlstore__outbox_add(s, agent_id, APSYNC_MSG_JOB_RESULT, text, now) : APS_ERR_NOMEM;
out:
	cJSON_free(text);
	cJSON_Delete(body);
	return rc;
}

/* Ends a job from the broker's side: status, a reason, lists still running
 * marked the same, the log, and the agent told. Inside a transaction. */
static int job_end_here(struct store *s, int64_t job_id, const char *status, const char *code,
			const char *message, int64_t now)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "UPDATE jobs SET status=?2, finished_at=?3, error_code=?4, "
				      "error_message=?5, reason=NULL WHERE id=?1");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	aps_db_bind_text(st, 4, code);
	aps_db_bind_text(st, 5, message);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	st = sqlstore__prepare(s, "UPDATE job_lists SET status=?2, finished_at=?3 WHERE job_id=?1 AND "
			"status='running'");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	rc = store_job_log_add(s, job_id, now, "warn", message);
	return rc ? rc : store_job_result(s, job_id, now);
}

int store_job_cancel(struct store *s, int64_t tenant_id, int64_t job_id, const char *by,
		     int64_t now, int64_t *agent_id)
{
	struct store_job_ref ref;
	sqlite3_stmt *st;
	char msg[400];
	int rc, was_queued, tenant_ok = 0;

	if (aps_db_begin(s->db))
		return APS_ERR_DB;
	st = sqlstore__prepare(s, "SELECT tenant_id=?2 FROM jobs WHERE id=?1");
	if (!st) {
		rc = APS_ERR_DB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int64(st, 2, tenant_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		tenant_ok = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	rc = tenant_ok ? store_job_ref(s, job_id, &ref) : APS_ERR_NOTFOUND;
	if (rc)
		goto out;
	if (strcmp(ref.status, "queued") && strcmp(ref.status, "dispatched") &&
	    strcmp(ref.status, "running")) {
		rc = APS_ERR_CONFLICT;
		goto out;
	}
	was_queued = !strcmp(ref.status, "queued");
	*agent_id = ref.agent_id;
	snprintf(msg, sizeof(msg), "cancelled by %s", by);
	if (was_queued) /* never sent: nothing to tell the agent */
		rc = sqlstore__exec_bind2(s, "UPDATE jobs SET status='cancelled', finished_at=?2, reason=NULL "
				   "WHERE id=?1",
				job_id, now) ||
		     store_job_log_add(s, job_id, now, "warn", msg);
	else
		rc = job_end_here(s, job_id, "cancelled", "cancelled", msg, now);
	if (!rc)
		rc = aps_db_commit(s->db) ? APS_ERR_DB : APS_OK;
out:
	if (rc)
		aps_db_rollback(s->db);
	return rc;
}

/* A job that waits too long gets its reason, once, in the job and its log. */
static int mark_stale(struct store *s, int64_t job_id, const char *reason, int64_t now)
{
	sqlite3_stmt *up = sqlstore__prepare(s, "UPDATE jobs SET stale=1, reason=?2 WHERE id=?1");
	int rc;

	if (!up)
		return APS_ERR_DB;
	sqlite3_bind_int64(up, 1, job_id);
	sqlite3_bind_text(up, 2, reason, -1, SQLITE_STATIC);
	rc = sqlite3_step(up);
	sqlite3_finalize(up);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	return store_job_log_add(s, job_id, now, "warn", reason);
}

int store_jobs_check(struct store *s, int64_t now, int64_t stale_ms, int64_t timeout_ms,
		     cJSON **agents)
{
	sqlite3_stmt *st = NULL;
	char reason[400], since[APS_TIME_LEN];
	int64_t job_id, agent_id, last_seen, busy;
	const char *name, *status;
	int online, rc = APS_ERR_DB;

	*agents = cJSON_CreateArray();
	if (aps_db_begin(s->db))
		return APS_ERR_DB;
	/* Jobs in progress whose SyncTool has been gone too long time out. */
	st = sqlstore__prepare(s, "SELECT j.id, a.id, a.name, coalesce(a.last_seen, 0) FROM jobs j JOIN "
			"agents a ON a.id=j.agent_id WHERE j.status IN ('dispatched', 'running') "
			"AND a.online=0 AND coalesce(a.last_seen, 0) < ?1");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, now - timeout_ms);
	while (sqlite3_step(st) == SQLITE_ROW) {
		job_id = sqlite3_column_int64(st, 0);
		agent_id = sqlite3_column_int64(st, 1);
		name = (const char *)sqlite3_column_text(st, 2);
		last_seen = sqlite3_column_int64(st, 3);
		snprintf(reason, sizeof(reason),
			 "timed out: SyncTool %s has been offline since %s, longer than %lld minutes",
			 name, last_seen ? aps_time_iso(last_seen, since) : "its enrollment",
			 (long long)(timeout_ms / 60000));
		if (job_end_here(s, job_id, "timed_out", "timed_out", reason, now))
			goto out;
		cJSON_AddItemToArray(*agents, cJSON_CreateNumber((double)agent_id));
	}
	sqlite3_finalize(st);
	/* Jobs that have waited too long to start say why. */
	st = sqlstore__prepare(s, "SELECT j.id, j.status, a.name, a.online, coalesce(a.last_seen, 0), "
			"(SELECT min(k.id) FROM jobs k WHERE k.entity_id=j.entity_id AND k.id<>j.id "
			"AND k.status IN ('dispatched', 'running')) FROM jobs j JOIN agents a ON "
			"a.id=j.agent_id WHERE j.status IN ('queued', 'dispatched') AND j.stale=0 "
			"AND j.created_at < ?1");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, now - stale_ms);
	while (sqlite3_step(st) == SQLITE_ROW) {
		job_id = sqlite3_column_int64(st, 0);
		status = (const char *)sqlite3_column_text(st, 1);
		name = (const char *)sqlite3_column_text(st, 2);
		online = sqlite3_column_int(st, 3);
		last_seen = sqlite3_column_int64(st, 4);
		busy = sqlite3_column_int64(st, 5);
		if (!online)
			snprintf(reason, sizeof(reason),
				 "SyncTool %s offline since %s; the sync starts when it reconnects",
				 name, last_seen ? aps_time_iso(last_seen, since) : "its enrollment");
		else if (busy)
			snprintf(reason, sizeof(reason),
				 "waiting for sync %lld of this entity to finish", (long long)busy);
		else if (!strcmp(status, "dispatched"))
			snprintf(reason, sizeof(reason),
				 "SyncTool %s has not started it yet (busy with another company?)",
				 name);
		else
			snprintf(reason, sizeof(reason), "not sent to SyncTool %s yet", name);
		if (mark_stale(s, job_id, reason, now))
			goto out;
	}
	rc = aps_db_commit(s->db) ? APS_ERR_DB : APS_OK;
out:
	sqlite3_finalize(st);
	if (rc) {
		aps_db_rollback(s->db);
		cJSON_Delete(*agents);
		*agents = NULL;
	}
	return rc;
}

int store_outbox_next(struct store *s, int64_t agent_id, uint64_t after_seq, uint64_t *seq,
		      int *type, char **body)
{
	sqlite3_stmt *st = stmt(s, ST_OUTBOX_NEXT);
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, (int64_t)after_seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*seq = (uint64_t)sqlite3_column_int64(st, 0);
		*type = sqlite3_column_int(st, 1);
		*body = strdup((const char *)sqlite3_column_text(st, 2));
		if (!*body)
			rc = SQLITE_NOMEM;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : sqlstore__db_error(s);
}

int store_outbox_ack(struct store *s, int64_t agent_id, uint64_t seq)
{
	return sqlstore__exec_bind2(s, "DELETE FROM outbox WHERE agent_id=?1 AND seq<=?2", agent_id,
			  (int64_t)seq);
}

/* ---- applying agent messages ---- */

int store_agent_rx_set(struct store *s, int64_t agent_id, uint64_t seq)
{
	sqlite3_stmt *st = stmt(s, ST_RX_SET);

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, (int64_t)seq);
	return aps_db_step_done(st);
}

int store_job_ref(struct store *s, int64_t job_id, struct store_job_ref *ref)
{
	sqlite3_stmt *st = stmt(s, ST_JOB_REF);
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, job_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ref->entity_id = sqlite3_column_int64(st, 0);
		ref->agent_id = sqlite3_column_int64(st, 1);
		col_text(st, 2, ref->status, sizeof(ref->status));
		col_text(st, 3, ref->mode, sizeof(ref->mode));
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : sqlstore__db_error(s);
}

int store_job_running(struct store *s, int64_t job_id, int64_t now)
{
	return sqlstore__exec_bind2(s, "UPDATE jobs SET status='running', started_at=coalesce(started_at, ?2), "
			     "reason=NULL, stale=0 WHERE id=?1 AND status IN ('queued', 'dispatched', "
			     "'running')",
			  job_id, now);
}

int store_job_reason(struct store *s, int64_t job_id, const char *reason)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "UPDATE jobs SET reason=?2 WHERE id=?1");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, job_id);
	aps_db_bind_text(st, 2, reason);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : sqlstore__db_error(s);
}

int store_job_list_begin(struct store *s, int64_t job_id, const char *list, int64_t estimate,
			 int64_t now)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "INSERT INTO job_lists(job_id, list, status, estimate, "
				      "started_at) VALUES(?1,?2,'running',?3,?4) ON CONFLICT DO "
				      "UPDATE SET estimate=excluded.estimate");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_text(st, 2, list, -1, SQLITE_STATIC);
	if (estimate >= 0)
		sqlite3_bind_int64(st, 3, estimate);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_int64(st, 4, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : sqlstore__db_error(s);
}

struct apply_ctx {
	int64_t entity_id, list_id, job_id, cols_id, now;
};

static int item_write(struct store *s, const struct apply_ctx *a, const struct store_row *r,
		      int exists)
{
	sqlite3_stmt *put = stmt(s, exists ? ST_ITEM_UPDATE : ST_ITEM_INSERT);

	if (!put)
		return APS_ERR_DB;
	sqlite3_bind_int64(put, 1, a->entity_id);
	sqlite3_bind_int64(put, 2, a->list_id);
	sqlite3_bind_text(put, 3, r->key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(put, 4, (int64_t)r->hash);
	aps_db_bind_text(put, 5, r->status);
	aps_db_bind_text(put, 6, r->modified);
	sqlite3_bind_int64(put, 7, a->job_id);
	sqlite3_bind_int64(put, 8, a->now);
	sqlite3_bind_text(put, 9, r->data, (int)r->data_len, SQLITE_STATIC);
	sqlite3_bind_int64(put, 10, a->cols_id);
	return aps_db_step_done(put);
}

/* Inserts rows[idx[0..n)], none of which the store holds. */
static int items_insert(struct store *s, const struct apply_ctx *a, const struct store_row *rows,
			const int *idx, int n)
{
	sqlite3_stmt *st = stmt(s, ST_ITEM_INSERT_MANY);
	const struct store_row *r;
	int done = 0, k, p, rc;

	if (!st)
		return APS_ERR_DB;
	for (; n - done >= INSERT_MANY; done += INSERT_MANY) {
		sqlite3_bind_int64(st, 1, a->entity_id);
		sqlite3_bind_int64(st, 2, a->list_id);
		sqlite3_bind_int64(st, 3, a->job_id);
		sqlite3_bind_int64(st, 4, a->now);
		sqlite3_bind_int64(st, 5, a->cols_id);
		for (k = 0; k < INSERT_MANY; k++) {
			r = &rows[idx[done + k]];
			p = 6 + 5 * k;
			/* the rows outlive the statement's run: no copies */
			sqlite3_bind_text(st, p, r->key, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, p + 1, (int64_t)r->hash);
			if (r->status)
				sqlite3_bind_text(st, p + 2, r->status, -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(st, p + 2);
			if (r->modified)
				sqlite3_bind_text(st, p + 3, r->modified, -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(st, p + 3);
			sqlite3_bind_text(st, p + 4, r->data, (int)r->data_len, SQLITE_STATIC);
		}
		rc = aps_db_step_done(st);
		if (rc)
			return rc;
	}
	for (rc = APS_OK; done < n && !rc; done++)
		rc = item_write(s, a, &rows[idx[done]], 0);
	return rc;
}

static int item_delete(struct store *s, const struct apply_ctx *a, const char *key)
{
	sqlite3_stmt *st = stmt(s, ST_ITEM_DELETE);

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, a->entity_id);
	sqlite3_bind_int64(st, 2, a->list_id);
	sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, a->job_id);
	sqlite3_bind_int64(st, 5, a->now);
	return aps_db_step_done(st);
}

/* A row the store holds, read from a range scan. */
struct held {
	char key[APSYNC_MAX_KEY_LEN + 1];
	uint64_t hash;
	int deleted;
	int valid;
};

static int held_next(sqlite3_stmt *st, struct held *h)
{
	int rc = sqlite3_step(st);

	h->valid = rc == SQLITE_ROW;
	if (h->valid) {
		snprintf(h->key, sizeof(h->key), "%s", (const char *)sqlite3_column_text(st, 0));
		h->hash = (uint64_t)sqlite3_column_int64(st, 1);
		h->deleted = sqlite3_column_int(st, 2);
	}
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? APS_OK : APS_ERR_DB;
}

/* Ranged: one scan of the stored keys in (after, last], merged with the
 * sorted batch. A stored key the batch lacks is gone from the ERP. Keys the
 * store does not hold are inserted together once the scan is over (the
 * batch's keys are distinct: they ascend). */
static int apply_ranged(struct store *s, const struct apply_ctx *a, const struct store_row *rows,
			int n, const char *after, struct store_list_counts *c)
{
	sqlite3_stmt *st = stmt(s, ST_ITEM_RANGE);
	struct held h;
	int *fresh, nfresh = 0, i = 0, cmp, rc;

	if (!st)
		return APS_ERR_DB;
	fresh = malloc((size_t)n * sizeof(*fresh));
	if (!fresh)
		return APS_ERR_NOMEM;
	sqlite3_bind_int64(st, 1, a->entity_id);
	sqlite3_bind_int64(st, 2, a->list_id);
	sqlite3_bind_text(st, 3, after ? after : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, rows[n - 1].key, -1, SQLITE_STATIC);
	rc = held_next(st, &h);
	while (!rc && (i < n || h.valid)) {
		cmp = !h.valid ? 1 : i == n ? -1 : strcmp(h.key, rows[i].key);
		if (cmp < 0) {
			/* held, not in the ERP's range any more */
			if (!h.deleted) {
				rc = item_delete(s, a, h.key);
				c->deleted++;
			}
			if (!rc)
				rc = held_next(st, &h);
			continue;
		}
		if (cmp == 0 && h.hash == rows[i].hash && !h.deleted) {
			c->unchanged++;
		} else if (cmp > 0) {
			fresh[nfresh++] = i;
			c->inserted++;
		} else {
			rc = item_write(s, a, &rows[i], 1);
			if (!h.deleted)
				c->updated++;
			else
				c->inserted++; /* back after a deletion */
		}
		i++;
		if (!rc && cmp == 0)
			rc = held_next(st, &h);
	}
	sqlite3_reset(st);
	if (!rc)
		rc = items_insert(s, a, rows, fresh, nfresh);
	free(fresh);
	if (rc)
		sqlstore__db_error(s);
	return rc;
}

int store_items_apply(struct store *s, int64_t entity_id, const char *list, int64_t job_id,
		      const char *cols, const struct store_row *rows, int n, int ranged,
		      const char *after, struct store_list_counts *c)
{
	sqlite3_stmt *get = stmt(s, ST_ITEM_GET);
	struct apply_ctx a = {.entity_id = entity_id, .job_id = job_id, .now = aps_now_ms()};
	int i, rc, exists, same;

	if (n <= 0)
		return APS_OK;
	rc = list_id(s, list, &a.list_id);
	if (!rc)
		rc = cols_id(s, cols, &a.cols_id);
	if (rc)
		return rc;
	if (ranged)
		return apply_ranged(s, &a, rows, n, after, c);
	if (!get)
		return APS_ERR_DB;
	for (i = 0; i < n && !rc; i++) {
		sqlite3_bind_int64(get, 1, entity_id);
		sqlite3_bind_int64(get, 2, a.list_id);
		sqlite3_bind_text(get, 3, rows[i].key, -1, SQLITE_STATIC);
		rc = sqlite3_step(get);
		exists = rc == SQLITE_ROW;
		same = exists && (uint64_t)sqlite3_column_int64(get, 0) == rows[i].hash &&
		       !sqlite3_column_int(get, 1);
		if (exists && !same && sqlite3_column_int(get, 1))
			exists = 2; /* held as deleted: back again */
		sqlite3_reset(get);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return sqlstore__db_error(s);
		rc = APS_OK;
		if (same) {
			c->unchanged++;
			continue;
		}
		rc = item_write(s, &a, &rows[i], exists != 0);
		if (exists == 1)
			c->updated++;
		else
			c->inserted++;
	}
	return rc;
}

int store_items_delete_keys(struct store *s, int64_t entity_id, const char *list, int64_t job_id,
			    const char *const *keys, int n, int64_t *deleted)
{
	struct apply_ctx a = {.entity_id = entity_id, .job_id = job_id, .now = aps_now_ms()};
	sqlite3_stmt *st = stmt(s, ST_ITEM_DELETE_LIVE);
	int i;

	*deleted = 0;
	if (!st || list_id(s, list, &a.list_id))
		return APS_ERR_DB;
	for (i = 0; i < n; i++) {
		sqlite3_bind_int64(st, 1, entity_id);
		sqlite3_bind_int64(st, 2, a.list_id);
		sqlite3_bind_text(st, 3, keys[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, job_id);
		sqlite3_bind_int64(st, 5, a.now);
		if (aps_db_step_done(st))
			return sqlstore__db_error(s);
		*deleted += sqlite3_changes(s->db);
	}
	return APS_OK;
}

int store_items_delete_after(struct store *s, int64_t entity_id, const char *list,
			     int64_t job_id, const char *after, int64_t *deleted)
{
	sqlite3_stmt *st;
	int64_t lid;
	int rc;

	*deleted = 0;
	if (list_id(s, list, &lid))
		return APS_ERR_DB;
	st = sqlstore__prepare(s, "UPDATE items SET deleted=1, last_job=?4, updated_at=?5 "
			"WHERE entity_id=?1 AND list_id=?2 AND key>?3 AND deleted=0");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, entity_id);
	sqlite3_bind_int64(st, 2, lid);
	sqlite3_bind_text(st, 3, after ? after : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, job_id);
	sqlite3_bind_int64(st, 5, aps_now_ms());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	*deleted = sqlite3_changes(s->db);
	return APS_OK;
}

int store_job_list_add(struct store *s, int64_t job_id, const char *list,
		       const struct store_list_counts *c)
{
	sqlite3_stmt *sum = stmt(s, ST_LIST_SUM), *st = stmt(s, ST_LIST_ADD);
	uint64_t total;
	int rc;

	if (!st || !sum)
		return APS_ERR_DB;
	sqlite3_bind_int64(sum, 1, job_id);
	sqlite3_bind_text(sum, 2, list, -1, SQLITE_STATIC);
	rc = sqlite3_step(sum);
	total = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(sum, 0) : 0;
	sqlite3_reset(sum);
	if (rc == SQLITE_DONE)
		return APS_ERR_NOTFOUND;
	if (rc != SQLITE_ROW)
		return sqlstore__db_error(s);
	total += c->checksum; /* modulo 2^64 */
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_text(st, 2, list, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, c->received);
	sqlite3_bind_int64(st, 4, c->inserted);
	sqlite3_bind_int64(st, 5, c->updated);
	sqlite3_bind_int64(st, 6, c->unchanged);
	sqlite3_bind_int64(st, 7, (int64_t)total);
	sqlite3_bind_int64(st, 8, c->deleted);
	if (aps_db_step_done(st))
		return APS_ERR_DB;
	return sqlite3_changes(s->db) ? APS_OK : APS_ERR_NOTFOUND;
}

int store_job_list_end(struct store *s, int64_t job_id, const char *list, int64_t count,
		       const char *checksum, const char *error_code, const char *error_message,
		       int64_t now)
{
	sqlite3_stmt *st;
	int64_t received = 0;
	uint64_t ours = 0, theirs = 0;
	char msg[256], ours_hex[17];
	const char *status = "success";
	int rc;

	st = sqlstore__prepare(s, "SELECT received, checksum FROM job_lists WHERE job_id=?1 AND list=?2");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_text(st, 2, list, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		received = sqlite3_column_int64(st, 0);
		ours = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? APS_ERR_NOTFOUND : sqlstore__db_error(s);
	if (error_code) {
		status = "failed";
	} else if (count != received) {
		status = "failed";
		error_code = "count_mismatch";
		snprintf(msg, sizeof(msg),
			 "the SyncTool read %lld rows but the broker stored %lld; run the sync again",
			 (long long)count, (long long)received);
		error_message = msg;
	} else if (!checksum || aps_checksum_parse(checksum, &theirs) || theirs != ours) {
		status = "failed";
		error_code = "checksum_mismatch";
		aps_checksum_hex(ours, ours_hex);
		snprintf(msg, sizeof(msg),
			 "row checksums differ (SyncTool %s, broker %s); run the sync again",
			 checksum ? checksum : "none", ours_hex);
		error_message = msg;
	}
	st = sqlstore__prepare(s, "UPDATE job_lists SET status=?3, reported=?4, checksum_agent=?5, "
			"finished_at=?6, error_code=?7, error_message=?8 WHERE job_id=?1 AND list=?2");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_text(st, 2, list, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, count);
	aps_db_bind_text(st, 5, checksum);
	sqlite3_bind_int64(st, 6, now);
	aps_db_bind_text(st, 7, error_code);
	aps_db_bind_text(st, 8, error_message);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlstore__db_error(s);
	if (error_code) {
		char line[512];

		snprintf(line, sizeof(line), "list %s failed: %s", list,
			 error_message ? error_message : error_code);
		return store_job_log_add(s, job_id, now, "error", line);
	}
	return APS_OK;
}

int store_job_end(struct store *s, int64_t job_id, const char *status, const char *error_code,
		  const char *error_message, int64_t now, char final[16])
{
	sqlite3_stmt *st;
	int64_t ok = 0, failed = 0;
	int rc;

	st = sqlstore__prepare(s, "SELECT count(*) FILTER (WHERE status='success'), count(*) FILTER (WHERE "
			"status<>'success') FROM job_lists WHERE job_id=?1");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, job_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		ok = sqlite3_column_int64(st, 0);
		failed = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (!strcmp(status, "success") && failed)
		status = ok ? "partial" : "failed";
	snprintf(final, 16, "%s", status);
	st = sqlstore__prepare(s, "UPDATE jobs SET status=?2, finished_at=?3, error_code=?4, "
			"error_message=?5, started_at=coalesce(started_at, ?3) WHERE id=?1");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_text(st, 2, final, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	aps_db_bind_text(st, 4, error_code);
	aps_db_bind_text(st, 5, error_message);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : sqlstore__db_error(s);
}
