/* Users, passwords and web sessions in the SQLite store (migration 5). The
 * store keeps only hashes: the password's KDF output (made by broker/auth.c)
 * and the SHA-256 of each session id. */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "sqlite_internal.h"
#include "store.h"
#include "util.h"

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(out, len, "%s", t ? (const char *)t : "");
}

int store_user_upsert(struct store *s, int64_t tenant_id, const char *email, const char *role,
		      int64_t now, int64_t *user_id)
{
	sqlite3_stmt *st = sqlstore__prepare(
		s, "INSERT INTO users(tenant_id, email, role, created_at) VALUES(?1,?2,?3,?4) "
		   "ON CONFLICT(tenant_id, email) DO UPDATE SET role=excluded.role RETURNING id");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, email, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*user_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : sqlstore__db_error(s);
}

int store_user_find(struct store *s, int64_t tenant_id, const char *email, int64_t *user_id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT id FROM users WHERE tenant_id=?1 AND "
						"email=?2 COLLATE NOCASE");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_text(st, 2, email, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*user_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND
							     : sqlstore__db_error(s);
}

int store_password_set(struct store *s, int64_t user_id, const char *hash, int64_t now)
{
	sqlite3_stmt *st = NULL;
	int rc = APS_ERR_DB;

	if (aps_db_begin(s->db))
		return APS_ERR_DB;
	st = sqlstore__prepare(s, "INSERT INTO passwords(user_id, hash, updated_at) VALUES(?1,?2,?3) "
				  "ON CONFLICT(user_id) DO UPDATE SET hash=excluded.hash, "
				  "updated_at=excluded.updated_at");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	/* a new password ends every session signed in with the old one */
	if (sqlstore__exec_bind2(s, "DELETE FROM sessions WHERE user_id=?1", user_id, 0))
		goto out;
	rc = aps_db_commit(s->db) ? APS_ERR_DB : APS_OK;
out:
	if (rc)
		sqlstore__db_error(s);
	sqlite3_finalize(st);
	if (rc)
		aps_db_rollback(s->db);
	return rc;
}

int store_password_get(struct store *s, const char *tenant, const char *email, int64_t *user_id,
		       char *hash, size_t len)
{
	sqlite3_stmt *st = sqlstore__prepare(
		s, "SELECT u.id, p.hash FROM users u JOIN tenants t ON t.id=u.tenant_id "
		   "JOIN passwords p ON p.user_id=u.id WHERE t.name=?1 AND u.email=?2 COLLATE NOCASE");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, email, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*user_id = sqlite3_column_int64(st, 0);
		col_copy(st, 1, hash, len);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND
							     : sqlstore__db_error(s);
}

int store_session_create(struct store *s, int64_t user_id, const uint8_t id_hash[32],
			 const char *csrf, int64_t now, int64_t expires_at)
{
	sqlite3_stmt *st;
	int rc;

	/* the expired ones go as new ones come */
	if (sqlstore__exec_bind2(s, "DELETE FROM sessions WHERE expires_at<?1", now, 0))
		return APS_ERR_DB;
	st = sqlstore__prepare(s, "INSERT INTO sessions(id_hash, user_id, csrf, created_at, "
				  "last_used, expires_at) VALUES(?1,?2,?3,?4,?4,?5)");
	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_blob(st, 1, id_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, user_id);
	sqlite3_bind_text(st, 3, csrf, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_int64(st, 5, expires_at);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : sqlstore__db_error(s);
}

int store_session_auth(struct store *s, const uint8_t id_hash[32], int64_t now, int64_t idle_ms,
		       struct store_user *u, char *csrf, size_t csrf_len)
{
	sqlite3_stmt *st = sqlstore__prepare(
		s, "SELECT k.id, k.last_used, k.csrf, u.id, u.tenant_id, u.email, u.role, t.name "
		   "FROM sessions k JOIN users u ON u.id=k.user_id JOIN tenants t ON "
		   "t.id=u.tenant_id WHERE k.id_hash=?1 AND k.expires_at>?2 AND k.last_used>?3");
	int64_t sid = 0, last = 0;
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_blob(st, 1, id_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int64(st, 3, now - idle_ms);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		sid = sqlite3_column_int64(st, 0);
		last = sqlite3_column_int64(st, 1);
		col_copy(st, 2, csrf, csrf_len);
		u->id = sqlite3_column_int64(st, 3);
		u->tenant_id = sqlite3_column_int64(st, 4);
		col_copy(st, 5, u->email, sizeof(u->email));
		col_copy(st, 6, u->role, sizeof(u->role));
		col_copy(st, 7, u->tenant, sizeof(u->tenant));
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return APS_ERR_AUTH;
	if (rc != SQLITE_ROW)
		return sqlstore__db_error(s);
	/* the idle clock, moved at most once a minute (a write per request is waste) */
	if (now - last > 60000)
		sqlstore__exec_bind2(s, "UPDATE sessions SET last_used=?2 WHERE id=?1", sid, now);
	return APS_OK;
}

int store_session_end(struct store *s, const uint8_t id_hash[32])
{
	sqlite3_stmt *st = sqlstore__prepare(s, "DELETE FROM sessions WHERE id_hash=?1");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_blob(st, 1, id_hash, 32, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? APS_OK : sqlstore__db_error(s);
}

#define USER_COLS                                                                              \
	"SELECT u.id, u.email, u.role, u.created_at, p.user_id IS NOT NULL, "                    \
	"(SELECT count(*) FROM api_tokens k WHERE k.user_id=u.id AND k.revoked_at IS NULL), "     \
	"(SELECT max(last_used) FROM sessions k WHERE k.user_id=u.id) "                          \
	"FROM users u LEFT JOIN passwords p ON p.user_id=u.id "

static cJSON *user_json(sqlite3_stmt *st)
{
	cJSON *o = cJSON_CreateObject();
	char iso[APS_TIME_LEN];

	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
	cJSON_AddStringToObject(o, "email", (const char *)sqlite3_column_text(st, 1));
	cJSON_AddStringToObject(o, "role", (const char *)sqlite3_column_text(st, 2));
	cJSON_AddStringToObject(o, "created_at", aps_time_iso(sqlite3_column_int64(st, 3), iso));
	cJSON_AddBoolToObject(o, "password", sqlite3_column_int(st, 4));
	cJSON_AddNumberToObject(o, "api_tokens", (double)sqlite3_column_int64(st, 5));
	if (sqlite3_column_type(st, 6) == SQLITE_NULL)
		cJSON_AddNullToObject(o, "last_active");
	else
		cJSON_AddStringToObject(o, "last_active",
					aps_time_iso(sqlite3_column_int64(st, 6), iso));
	return o;
}

cJSON *store_users_list(struct store *s, int64_t tenant_id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, USER_COLS "WHERE u.tenant_id=?1 ORDER BY u.email");
	cJSON *arr = cJSON_CreateArray();

	if (!st || !arr) {
		sqlite3_finalize(st);
		cJSON_Delete(arr);
		return NULL;
	}
	sqlite3_bind_int64(st, 1, tenant_id);
	while (sqlite3_step(st) == SQLITE_ROW)
		cJSON_AddItemToArray(arr, user_json(st));
	sqlite3_finalize(st);
	return arr;
}

cJSON *store_user_get(struct store *s, int64_t tenant_id, int64_t user_id)
{
	sqlite3_stmt *st = sqlstore__prepare(s, USER_COLS "WHERE u.tenant_id=?1 AND u.id=?2");
	cJSON *o = NULL;

	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_int64(st, 2, user_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		o = user_json(st);
	sqlite3_finalize(st);
	return o;
}

int store_user_role_set(struct store *s, int64_t tenant_id, int64_t user_id, const char *role)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "UPDATE users SET role=?3 WHERE tenant_id=?1 AND "
						"id=?2 RETURNING id");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_int64(st, 2, user_id);
	sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND
							     : sqlstore__db_error(s);
}

int store_admins_count(struct store *s, int64_t tenant_id, int64_t *n)
{
	sqlite3_stmt *st = sqlstore__prepare(s, "SELECT count(*) FROM users WHERE tenant_id=?1 AND "
						"role='system_administrator'");
	int rc;

	if (!st)
		return APS_ERR_DB;
	sqlite3_bind_int64(st, 1, tenant_id);
	rc = sqlite3_step(st);
	*n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : sqlstore__db_error(s);
}
