/*
 * Inside the SQLite store: the connection and helpers its files share
 * (sqlite.c: tenants, agents, jobs, items; documents.c: exports).
 */
#ifndef APS_SQLITE_INTERNAL_H
#define APS_SQLITE_INTERNAL_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "apsync_proto.h"

#define ST__SLOTS 32

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST__SLOTS]; /* hot statements (sqlite.c's stmt_id) */
	/* the last list and column set looked up: batches come in runs */
	char last_list[APSYNC_MAX_NAME_LEN + 1];
	int64_t last_list_id;
	char *last_cols;
	int64_t last_cols_id;
};

/* A statement for one use (finalize it); NULL after logging the error. */
sqlite3_stmt *sqlstore__prepare(struct store *s, const char *sql);
/* Logs the connection's error: APS_ERR_DB. */
int sqlstore__db_error(struct store *s);
int sqlstore__exec_bind2(struct store *s, const char *sql, int64_t a, int64_t b);
/* Appends a message to an agent's outbox with the agent's next seq. */
int sqlstore__outbox_add(struct store *s, int64_t agent_id, int type, const char *body,
			 int64_t now);
/* Adds an optional text column to a JSON object (null when NULL). */
void sqlstore__add_opt(cJSON *o, const char *name, sqlite3_stmt *st, int col);

#endif
