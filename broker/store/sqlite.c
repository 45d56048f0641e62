/* The broker's store on SQLite (one file, DIR/broker.db, WAL). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apsync_proto.h"
#include "batch.h"
#include "db.h"
#include "err.h"
#include "log.h"
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
};

/* Statements used on hot or frequent paths, prepared once per connection. */
enum stmt_id {
	ST_ITEM_GET,
	ST_ITEM_INSERT,
	ST_ITEM_UPDATE,
	ST_ITEM_TOUCH,
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

static const char *const stmt_sql[ST__COUNT] = {
	[ST_ITEM_GET] = "SELECT hash, deleted FROM items WHERE entity_id=?1 AND list=?2 AND key=?3",
	[ST_ITEM_INSERT] = "INSERT INTO items(entity_id, list, key, hash, status, modified, "
			   "deleted, last_job, updated_at, data) "
			   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9)",
	[ST_ITEM_UPDATE] = "UPDATE items SET hash=?4, status=?5, modified=?6, deleted=0, "
			   "last_job=?7, updated_at=?8, data=?9 "
			   "WHERE entity_id=?1 AND list=?2 AND key=?3",
	[ST_ITEM_TOUCH] = "UPDATE items SET last_job=?4 WHERE entity_id=?1 AND list=?2 AND key=?3",
	/* checksum: SQLite integers do not wrap, so the sum is made in C */
	[ST_LIST_SUM] = "SELECT checksum FROM job_lists WHERE job_id=?1 AND list=?2",
	[ST_LIST_ADD] = "UPDATE job_lists SET received=received+?3, inserted=inserted+?4, "
			"updated=updated+?5, unchanged=unchanged+?6, checksum=?7 "
			"WHERE job_id=?1 AND list=?2",
	[ST_RX_SET] = "UPDATE agents SET rx_seq=?2 WHERE id=?1",
	[ST_JOB_REF] = "SELECT entity_id, agent_id, status FROM jobs WHERE id=?1",
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

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST__COUNT];
};

static sqlite3_stmt *stmt(struct store *s, enum stmt_id id)
{
	if (!s->st[id] && sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					     &s->st[id], NULL) != SQLITE_OK) {
		log_err("store: cannot prepare statement %d: %s", id, sqlite3_errmsg(s->db));
		return NULL;
	}
	return s->st[id];
}

static sqlite3_stmt *prepare(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_err("store: %s (in: %.80s)", sqlite3_errmsg(s->db), sql);
		return NULL;
	}
	return st;
}

static int db_error(struct store *s)
{
	log_err("store: %s", sqlite3_errmsg(s->db));
	return APS_ERR_DB;
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
	aps_db_close(s->db);
	free(s);
}

int store_begin(struct store *s)
{
	return aps_db_begin(s->db);
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

/* ---- tenants, users, tokens ---- */

int store_tenant_create(struct store *s, const char *name, int64_t *id)
{
	sqlite3_stmt *st = prepare(s, "INSERT INTO tenants(name, created_at) VALUES(?1, ?2)");
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
		return db_error(s);
	*id = sqlite3_last_insert_rowid(s->db);
	return APS_OK;
}

int store_tenant_find(struct store *s, const char *name, int64_t *id)
{
	sqlite3_stmt *st = prepare(s, "SELECT id FROM tenants WHERE name=?1");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : db_error(s);
}

int store_user_token_add(struct store *s, int64_t tenant_id, const char *email, const char *role,
			 const uint8_t token_hash[32], int64_t *user_id)
{
	sqlite3_stmt *st = NULL;
	int64_t now = aps_now_ms();
	int rc = APS_ERR_DB;

	if (aps_db_begin(s->db))
		return APS_ERR_DB;
	st = prepare(s, "INSERT INTO users(tenant_id, email, role, created_at) VALUES(?1,?2,?3,?4) "
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
	st = prepare(s, "SELECT id FROM users WHERE tenant_id=?1 AND email=?2");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, email, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	*user_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = prepare(s, "INSERT INTO api_tokens(user_id, token_hash, created_at) VALUES(?1,?2,?3)");
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
		db_error(s);
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
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_AUTH : db_error(s);
}

/* ---- enrollment and agents ---- */

int store_code_create(struct store *s, int64_t tenant_id, const char *synctool,
		      const uint8_t code_hash[32], int64_t expires_at)
{
	sqlite3_stmt *st = prepare(s, "INSERT INTO enroll_codes(tenant_id, synctool_name, "
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
	return rc == SQLITE_DONE ? APS_OK : db_error(s);
}

/* Runs `sql` with ?1=a, ?2=b, ?3=c; if `out` is given, the statement must return
 * one integer row (RETURNING) and *out receives it. */
static int exec_bind3(struct store *s, const char *sql, int64_t a, int64_t b, int64_t c,
		      int64_t *out)
{
	sqlite3_stmt *st = prepare(s, sql);
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
	return rc == SQLITE_DONE ? APS_OK : db_error(s);
}

static int exec_bind2(struct store *s, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st = prepare(s, sql);
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : db_error(s);
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
	st = prepare(s, "SELECT id, tenant_id, synctool_name, expires_at, used_at IS NOT NULL "
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
	st = prepare(s, "SELECT id FROM agents WHERE tenant_id=?1 AND name=?2 AND revoked_at IS NULL");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		old_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (old_id && exec_bind2(s, "UPDATE agents SET revoked_at=?2, online=0, revoked_reason="
				    "'replaced by a new enrollment' WHERE id=?1",
				 old_id, now))
		goto out;
	st = prepare(s, "INSERT INTO agents(tenant_id, name, secret_hash, created_at) "
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
	    (exec_bind2(s, "INSERT OR IGNORE INTO entity_agents(entity_id, agent_id, last_hello) "
			   "SELECT entity_id, ?2, last_hello FROM entity_agents WHERE agent_id=?1",
			old_id, agent_id) ||
	     exec_bind2(s, "UPDATE jobs SET agent_id=?2 WHERE agent_id=?1 AND status='queued'", old_id,
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
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : db_error(s);
}

int store_agent_revoke(struct store *s, int64_t tenant_id, const char *name, const char *reason,
		       int64_t now, int64_t *agent_id)
{
	sqlite3_stmt *st = prepare(s, "UPDATE agents SET revoked_at=?3, revoked_reason=?4, online=0 "
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
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : db_error(s);
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
	st = prepare(s, "UPDATE agents SET online=1, last_seen=?2, connected_at=?2, version=?3, "
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
	ent = prepare(s, "INSERT INTO entities(tenant_id, erp_product, code, name, currency, lists, "
			 "po_types, created_at, updated_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?8) "
			 "ON CONFLICT(tenant_id, erp_product, code) DO UPDATE SET "
			 "name=excluded.name, currency=excluded.currency, lists=excluded.lists, "
			 "po_types=excluded.po_types, updated_at=excluded.updated_at RETURNING id");
	link = prepare(s, "INSERT INTO entity_agents(entity_id, agent_id, last_hello) "
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
		db_error(s);
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
	return exec_bind2(s, "UPDATE agents SET online=0, last_seen=?2 WHERE id=?1", agent_id,
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

	st = prepare(s, "SELECT id, name, online, last_seen, version, os, hostname, erp_product, "
			"erp_version, erp_error, created_at, connected_at FROM agents "
			"WHERE tenant_id=?1 AND revoked_at IS NULL ORDER BY name");
	ents = prepare(s, "SELECT e.id, e.code, e.name FROM entity_agents l JOIN entities e ON "
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

cJSON *store_entities_list(struct store *s, int64_t tenant_id)
{
	sqlite3_stmt *st, *tools;
	cJSON *arr = cJSON_CreateArray(), *o, *list, *t;

	st = prepare(s, "SELECT id, code, name, erp_product, currency, lists, po_types, created_at "
			"FROM entities WHERE tenant_id=?1 ORDER BY name");
	tools = prepare(s, "SELECT a.id, a.name, a.online, a.last_seen FROM entity_agents l "
			   "JOIN agents a ON a.id=l.agent_id WHERE l.entity_id=?1 AND "
			   "a.revoked_at IS NULL ORDER BY l.last_hello DESC");
	if (!st || !tools || !arr)
		goto fail;
	sqlite3_bind_int64(st, 1, tenant_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, o);
		cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
		add_text(o, "code", st, 1);
		add_text(o, "name", st, 2);
		add_text(o, "erp", st, 3);
		add_text(o, "currency", st, 4);
		add_json(o, "lists", st, 5);
		add_text(o, "po_types", st, 6);
		add_time(o, "created_at", st, 7);
		list = cJSON_AddArrayToObject(o, "synctools");
		sqlite3_bind_int64(tools, 1, sqlite3_column_int64(st, 0));
		while (sqlite3_step(tools) == SQLITE_ROW) {
			t = cJSON_CreateObject();
			cJSON_AddNumberToObject(t, "id", (double)sqlite3_column_int64(tools, 0));
			add_text(t, "name", tools, 1);
			cJSON_AddStringToObject(t, "status",
						sqlite3_column_int(tools, 2) ? "online" : "offline");
			add_time(t, "last_seen", tools, 3);
			cJSON_AddItemToArray(list, t);
		}
		sqlite3_reset(tools);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(tools);
	return arr;
fail:
	sqlite3_finalize(st);
	sqlite3_finalize(tools);
	cJSON_Delete(arr);
	return NULL;
}

int store_entity_agent(struct store *s, int64_t tenant_id, int64_t entity_id,
		       int64_t want_agent, int64_t *agent_id)
{
	sqlite3_stmt *st = prepare(s, "SELECT l.agent_id FROM entities e JOIN entity_agents l ON "
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
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : db_error(s);
}

/* ---- jobs ---- */

int store_job_create(struct store *s, const struct store_job_req *r, int64_t now, int64_t *job_id)
{
	sqlite3_stmt *st = prepare(s, "INSERT INTO jobs(tenant_id, entity_id, agent_id, mode, lists, "
				      "since, status, requested_by, created_at) "
				      "VALUES(?1,?2,?3,?4,?5,?6,'queued',?7,?8)");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, r->tenant_id);
	sqlite3_bind_int64(st, 2, r->entity_id);
	sqlite3_bind_int64(st, 3, r->agent_id);
	aps_db_bind_text(st, 4, r->mode);
	aps_db_bind_text(st, 5, r->lists);
	aps_db_bind_text(st, 6, r->since);
	aps_db_bind_text(st, 7, r->requested_by);
	sqlite3_bind_int64(st, 8, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(s);
	*job_id = sqlite3_last_insert_rowid(s->db);
	return APS_OK;
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

cJSON *store_job_get(struct store *s, int64_t tenant_id, int64_t job_id)
{
	sqlite3_stmt *st, *ls = NULL;
	cJSON *o = NULL, *lists, *l, *counts, *ent, *tool, *totals;
	int64_t tot[6] = {0};
	char sum[17];
	int i;

	st = prepare(s, "SELECT j.id, j.mode, j.lists, j.since, j.status, j.reason, j.requested_by, "
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
	ls = prepare(s, "SELECT list, status, estimate, received, inserted, updated, unchanged, "
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

	st = prepare(s, "SELECT j.id, j.mode, j.status, j.reason, j.requested_by, j.created_at, "
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

	st = prepare(s, "SELECT l.ts, l.level, l.message FROM job_log l JOIN jobs j ON j.id=l.job_id "
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

int store_dispatch(struct store *s, int64_t agent_id, int64_t now, int *n)
{
	sqlite3_stmt *pick = NULL, *ins = NULL;
	int64_t job_id, seq_i = 0;
	uint64_t seq;
	cJSON *body;
	char *text;
	int rc = APS_ERR_DB;

	*n = 0;
	if (aps_db_begin(s->db))
		return APS_ERR_DB;
	/* The oldest queued job of each entity that has nothing in progress. */
	pick = prepare(s, "SELECT j.id, e.code, j.mode, j.lists, j.since FROM jobs j "
			  "JOIN entities e ON e.id=j.entity_id "
			  "WHERE j.agent_id=?1 AND j.status='queued' AND NOT EXISTS (SELECT 1 FROM "
			  "jobs k WHERE k.entity_id=j.entity_id AND k.status IN ('dispatched', "
			  "'running')) AND j.id=(SELECT min(m.id) FROM jobs m WHERE "
			  "m.entity_id=j.entity_id AND m.status='queued') ORDER BY j.id");
	ins = prepare(s, "INSERT INTO outbox(agent_id, seq, type, body, created_at) "
			 "VALUES(?1,?2,?3,?4,?5)");
	if (!pick || !ins)
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
		if (sqlite3_column_type(pick, 4) == SQLITE_NULL)
			cJSON_AddNullToObject(body, "since");
		else
			cJSON_AddStringToObject(body, "since",
						(const char *)sqlite3_column_text(pick, 4));
		text = cJSON_PrintUnformatted(body);
		cJSON_Delete(body);
		if (!text)
			goto out;
		if (exec_bind3(s, "UPDATE agents SET tx_seq=tx_seq+1 WHERE id=?1 RETURNING tx_seq",
			       agent_id, 0, 0, &seq_i)) {
			cJSON_free(text);
			goto out;
		}
		seq = (uint64_t)seq_i;
		sqlite3_bind_int64(ins, 1, agent_id);
		sqlite3_bind_int64(ins, 2, (int64_t)seq);
		sqlite3_bind_int(ins, 3, APSYNC_MSG_SYNC_START);
		sqlite3_bind_text(ins, 4, text, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(ins, 5, now);
		cJSON_free(text);
		if (aps_db_step_done(ins))
			goto out;
		if (exec_bind2(s, "UPDATE jobs SET status='dispatched', dispatched_at=?2, reason=NULL "
				  "WHERE id=?1",
			       job_id, now))
			goto out;
		if (store_job_log_add(s, job_id, now, "info", "sent to the SyncTool"))
			goto out;
		(*n)++;
	}
	rc = aps_db_commit(s->db) ? APS_ERR_DB : APS_OK;
out:
	sqlite3_finalize(pick);
	sqlite3_finalize(ins);
	if (rc) {
		*n = 0;
		aps_db_rollback(s->db);
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
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : db_error(s);
}

int store_outbox_ack(struct store *s, int64_t agent_id, uint64_t seq)
{
	return exec_bind2(s, "DELETE FROM outbox WHERE agent_id=?1 AND seq<=?2", agent_id,
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
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : db_error(s);
}

int store_job_running(struct store *s, int64_t job_id, int64_t now)
{
	return exec_bind2(s, "UPDATE jobs SET status='running', started_at=coalesce(started_at, ?2), "
			     "reason=NULL WHERE id=?1 AND status IN ('queued', 'dispatched')",
			  job_id, now);
}

int store_job_list_begin(struct store *s, int64_t job_id, const char *list, int64_t estimate,
			 int64_t now)
{
	sqlite3_stmt *st = prepare(s, "INSERT INTO job_lists(job_id, list, status, estimate, "
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
	return rc == SQLITE_DONE ? APS_OK : db_error(s);
}

int store_item_put(struct store *s, int64_t entity_id, const char *list, int64_t job_id,
		   const char *key, uint64_t hash, const char *status, const char *modified,
		   const char *data, size_t data_len, enum store_put_outcome *outcome)
{
	sqlite3_stmt *get = stmt(s, ST_ITEM_GET), *put;
	int rc, exists = 0, same = 0;

	if (!get)
		return APS_ERR_DB;
	sqlite3_bind_int64(get, 1, entity_id);
	sqlite3_bind_text(get, 2, list, -1, SQLITE_STATIC);
	sqlite3_bind_text(get, 3, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(get);
	if (rc == SQLITE_ROW) {
		exists = 1;
		same = (uint64_t)sqlite3_column_int64(get, 0) == hash && !sqlite3_column_int(get, 1);
	}
	sqlite3_reset(get);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(s);
	if (same) {
		put = stmt(s, ST_ITEM_TOUCH);
		if (!put)
			return APS_ERR_DB;
		sqlite3_bind_int64(put, 1, entity_id);
		sqlite3_bind_text(put, 2, list, -1, SQLITE_STATIC);
		sqlite3_bind_text(put, 3, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(put, 4, job_id);
		*outcome = STORE_UNCHANGED;
		return aps_db_step_done(put);
	}
	put = stmt(s, exists ? ST_ITEM_UPDATE : ST_ITEM_INSERT);
	if (!put)
		return APS_ERR_DB;
	sqlite3_bind_int64(put, 1, entity_id);
	sqlite3_bind_text(put, 2, list, -1, SQLITE_STATIC);
	sqlite3_bind_text(put, 3, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(put, 4, (int64_t)hash);
	aps_db_bind_text(put, 5, status);
	aps_db_bind_text(put, 6, modified);
	sqlite3_bind_int64(put, 7, job_id);
	sqlite3_bind_int64(put, 8, aps_now_ms());
	sqlite3_bind_text(put, 9, data, (int)data_len, SQLITE_STATIC);
	*outcome = exists ? STORE_UPDATED : STORE_INSERTED;
	return aps_db_step_done(put);
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
		return db_error(s);
	total += c->checksum; /* modulo 2^64 */
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_text(st, 2, list, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, c->received);
	sqlite3_bind_int64(st, 4, c->inserted);
	sqlite3_bind_int64(st, 5, c->updated);
	sqlite3_bind_int64(st, 6, c->unchanged);
	sqlite3_bind_int64(st, 7, (int64_t)total);
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

	st = prepare(s, "SELECT received, checksum FROM job_lists WHERE job_id=?1 AND list=?2");
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
		return rc == SQLITE_DONE ? APS_ERR_NOTFOUND : db_error(s);
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
	st = prepare(s, "UPDATE job_lists SET status=?3, reported=?4, checksum_agent=?5, "
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
		return db_error(s);
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

	st = prepare(s, "SELECT count(*) FILTER (WHERE status='success'), count(*) FILTER (WHERE "
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
	st = prepare(s, "UPDATE jobs SET status=?2, finished_at=?3, error_code=?4, "
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
	return rc == SQLITE_DONE ? APS_OK : db_error(s);
}
