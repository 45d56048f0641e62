/*
 * The broker's store: tenants, users, SyncTools (agents), entities, sync jobs,
 * synced items and the per-agent outbox.
 *
 * This header is the whole interface the rest of the broker uses; the SQLite
 * implementation is store/sqlite.c. A PostgreSQL store implements the same
 * functions (behind a table of function pointers chosen by the --store
 * setting), so nothing outside store/ changes when it lands.
 *
 * A `struct store` is one connection and is used by one thread only; each
 * thread that needs the store opens its own. Times are milliseconds since the
 * epoch. Functions return APS_OK or an APS_ERR_*; read functions for the API
 * hand back cJSON trees the caller deletes.
 */
#ifndef APS_STORE_H
#define APS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct store;

int store_open(const char *data_dir, struct store **out, char *err, size_t errlen);
void store_close(struct store *s);

/* Checkpoints of the write-ahead log: the writer's connection stops making
 * them inside its commits (store_writer_setup(), which also keeps its
 * savepoints' undo records in memory); another connection makes them
 * (PASSIVE: never waiting for the writer) and tells the log's size and what
 * it copied. */
int store_writer_setup(struct store *s);
int store_checkpoint(struct store *s, int *wal_pages, int *copied);

/* Transactions (for the ingest writer, which applies many messages in one). */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);
/* A savepoint inside a transaction: one message's changes, undone alone. */
int store_savepoint(struct store *s);
int store_savepoint_release(struct store *s);
void store_savepoint_rollback(struct store *s);

/* ---- tenants, users, tokens ---- */

struct store_user {
	int64_t id;
	int64_t tenant_id;
	char email[256];
	char role[64];
	char tenant[128];
};

int store_tenant_create(struct store *s, const char *name, int64_t *id);
int store_tenant_find(struct store *s, const char *name, int64_t *id);
/* Creates the user if new; adds an API token (by its SHA-256) either way. */
int store_user_token_add(struct store *s, int64_t tenant_id, const char *email, const char *role,
			 const uint8_t token_hash[32], int64_t *user_id);
int store_token_auth(struct store *s, const uint8_t token_hash[32], struct store_user *u);

/* ---- users, passwords, web sessions (users.c) ---- */

/* Creates the user or changes their role. */
int store_user_upsert(struct store *s, int64_t tenant_id, const char *email, const char *role,
		      int64_t now, int64_t *user_id);
int store_user_find(struct store *s, int64_t tenant_id, const char *email, int64_t *user_id);
/* Sets a user's password hash (auth.c's format); ends the user's sessions. */
int store_password_set(struct store *s, int64_t user_id, const char *hash, int64_t now);
/* The password hash of the user (tenant by name); APS_ERR_NOTFOUND when the
 * user or their password does not exist. */
int store_password_get(struct store *s, const char *tenant, const char *email, int64_t *user_id,
		       char *hash, size_t len);
int store_session_create(struct store *s, int64_t user_id, const uint8_t id_hash[32],
			 const char *csrf, int64_t now, int64_t expires_at);
/* The user of a live session (not expired, used within idle_ms) and its
 * CSRF token; APS_ERR_AUTH otherwise. */
int store_session_auth(struct store *s, const uint8_t id_hash[32], int64_t now, int64_t idle_ms,
		       struct store_user *u, char *csrf, size_t csrf_len);
int store_session_end(struct store *s, const uint8_t id_hash[32]);
cJSON *store_users_list(struct store *s, int64_t tenant_id);
/* One user of the tenant; NULL if not found. */
cJSON *store_user_get(struct store *s, int64_t tenant_id, int64_t user_id);
int store_user_role_set(struct store *s, int64_t tenant_id, int64_t user_id, const char *role);
int store_admins_count(struct store *s, int64_t tenant_id, int64_t *n);

/* ---- enrollment and agents ---- */

struct store_agent {
	int64_t id;
	int64_t tenant_id;
	char name[128];
	char tenant[128];
	uint8_t secret_hash[32];
	int64_t revoked_at;      /* 0 if live */
	uint64_t rx_seq;         /* last agent seq applied */
	uint64_t tx_seq;         /* last broker seq assigned */
};

int store_code_create(struct store *s, int64_t tenant_id, const char *synctool,
		      const uint8_t code_hash[32], int64_t expires_at);
/*
 * Trades a code for a new agent with the given secret hash. APS_ERR_NOTFOUND
 * (unknown code), APS_ERR_USED or APS_ERR_EXPIRED. A live agent of the same
 * name in the tenant is revoked ("replaced by a new enrollment") and its
 * entities and queued jobs move to the new agent.
 */
int store_code_redeem(struct store *s, const uint8_t code_hash[32], int64_t now,
		      const uint8_t secret_hash[32], struct store_agent *agent);
int store_agent_get(struct store *s, int64_t agent_id, struct store_agent *a);
/* Revokes a live agent by tenant and name. */
int store_agent_revoke(struct store *s, int64_t tenant_id, const char *name, const char *reason,
		       int64_t now, int64_t *agent_id);

struct store_company {
	const char *code;
	const char *name;
	const char *currency;
	const char *lists;       /* JSON array text */
	const char *po_types;
};

struct store_hello {
	const char *version, *os, *hostname;
	const char *erp_product, *erp_version, *erp_error;
	const char *remote_addr;
	int ncompanies;
	const struct store_company *companies;
};

/*
 * Records a connected agent's hello: marks it online, registers its
 * companies as entities of its tenant and links them to the agent. Returns
 * through `entities` a JSON array [{"code":…,"id":…}] for WELCOME.
 */
int store_agent_hello(struct store *s, int64_t agent_id, const struct store_hello *h,
		      int64_t now, cJSON **entities);
int store_agent_offline(struct store *s, int64_t agent_id, int64_t last_seen);
int store_agent_seen(struct store *s, int64_t agent_id, int64_t last_seen);
/* Marks every agent offline (broker start: no socket survives a restart). */
int store_agents_all_offline(struct store *s);

/* ---- entities and SyncTools for the API ---- */

cJSON *store_synctools_list(struct store *s, int64_t tenant_id);
cJSON *store_entities_list(struct store *s, int64_t tenant_id);
/*
 * One entity of the tenant; *agent_id gets its SyncTool (the one seen most
 * recently, or `want_agent` if it serves the entity). APS_ERR_NOTFOUND if the
 * entity is not the tenant's or `want_agent` does not serve it.
 */
int store_entity_agent(struct store *s, int64_t tenant_id, int64_t entity_id,
		       int64_t want_agent, int64_t *agent_id);

/* One entity of the tenant as GET /api/v1/entities shows it, with its last
 * successful sync (the default Sync From), whether Sync All may include it
 * and why not, and duration estimates from history. NULL if not found. */
cJSON *store_entity_get(struct store *s, int64_t tenant_id, int64_t entity_id);
/* The latest sync of each of the tenant's entities. */
cJSON *store_overview(struct store *s, int64_t tenant_id);
/* Per list of an entity: last synced, last duration, last status and error,
 * progress of a running sync, items held, an estimate. NULL if not found. */
cJSON *store_entity_lists(struct store *s, int64_t tenant_id, int64_t entity_id);

struct store_page {
	const char *status;        /* "active", "inactive", "deleted" or NULL */
	int64_t changed_since;     /* ms, 0: none; orders by change time */
	const char *cursor;        /* from the previous page's "next" */
	int limit;
};
/* A page of an entity's synced items; APS_ERR_NOTFOUND if the entity is not
 * the tenant's, APS_ERR_INVAL for a bad cursor. */
int store_items_page(struct store *s, int64_t tenant_id, int64_t entity_id, const char *list,
		     const struct store_page *pg, cJSON **out);

/* ---- jobs ---- */

struct store_job_req {
	int64_t tenant_id, entity_id, agent_id;
	const char *mode;          /* "full" or "partial" */
	const char *lists;         /* JSON array text, NULL = every list */
	const char *since;         /* Sync From (ISO time or date), NULL: the default */
	int po_enabled;            /* the PO & Receivings toggle */
	const char *po_since;      /* its own start date, NULL */
	const char *requested_by;
};

int store_job_create(struct store *s, const struct store_job_req *r, int64_t now, int64_t *job_id);
/* The job as the API shows it, with per-list counts; NULL if not the tenant's. */
cJSON *store_job_get(struct store *s, int64_t tenant_id, int64_t job_id);
/* The tenant's syncs, newest first; entity_id 0 for every entity. */
cJSON *store_jobs_list(struct store *s, int64_t tenant_id, int64_t entity_id, int limit);
cJSON *store_job_log(struct store *s, int64_t tenant_id, int64_t job_id);
int store_job_log_add(struct store *s, int64_t job_id, int64_t ts, const char *level,
		      const char *message);

/*
 * For a connected agent: turns each queued job whose entity has no job in
 * progress into a SYNC_START in the agent's outbox and marks it dispatched.
 * *n receives how many.
 */
int store_dispatch(struct store *s, int64_t agent_id, int64_t now, int *n);

/* The agent's outbox: the next message after `after_seq`, APS_ERR_NOTFOUND
 * when none; *body is malloc'd. */
int store_outbox_next(struct store *s, int64_t agent_id, uint64_t after_seq, uint64_t *seq,
		      int *type, char **body);
/* The agent durably processed everything up to `seq`. */
int store_outbox_ack(struct store *s, int64_t agent_id, uint64_t seq);

/* ---- applying agent messages (ingest writer; inside store_begin/commit) ---- */

int store_agent_rx_set(struct store *s, int64_t agent_id, uint64_t seq);

struct store_job_ref {
	int64_t entity_id;
	int64_t agent_id;
	char status[16];
	char mode[16];
};
int store_job_ref(struct store *s, int64_t job_id, struct store_job_ref *ref);
int store_job_running(struct store *s, int64_t job_id, int64_t now);
/* The agent's word on a running job: waiting for the ERP (reason) or not. */
int store_job_reason(struct store *s, int64_t job_id, const char *reason);
int store_job_list_begin(struct store *s, int64_t job_id, const char *list, int64_t estimate,
			 int64_t now);

struct store_row {
	const char *key;
	uint64_t hash;
	const char *status;     /* NULL if the list has none */
	const char *modified;
	const char *data;       /* the row's values as a JSON array, in column order */
	size_t data_len;
};

struct store_list_counts {
	int64_t received, inserted, updated, unchanged, deleted;
	uint64_t checksum;   /* sum of row hashes mod 2^64 */
};

/*
 * Stores a batch of rows (counts added to *c); `cols` is the JSON array of
 * their column names. With `ranged`, the rows are
 * in ascending key order and cover every key of the ERP in (after, last
 * row's key]; keys the store holds in that range and the batch lacks are
 * marked deleted. `after` NULL means from the first key.
 */
int store_items_apply(struct store *s, int64_t entity_id, const char *list, int64_t job_id,
		      const char *cols, const struct store_row *rows, int n, int ranged,
		      const char *after, struct store_list_counts *c);
/* A full read of a list ended at `after` (NULL: the list is empty): every
 * later key is gone from the ERP. */
/* Marks the given keys of a list deleted (those held and not deleted yet);
 * *deleted tells how many changed. */
int store_items_delete_keys(struct store *s, int64_t entity_id, const char *list, int64_t job_id,
			    const char *const *keys, int n, int64_t *deleted);
int store_items_delete_after(struct store *s, int64_t entity_id, const char *list,
			     int64_t job_id, const char *after, int64_t *deleted);
/* APS_ERR_NOTFOUND if the list was not begun (no LIST_BEGIN). */
int store_job_list_add(struct store *s, int64_t job_id, const char *list,
		       const struct store_list_counts *c);
/*
 * Ends a list: the agent reports `count` rows and `checksum`; the store
 * compares them with what it received and sets the list's status (a mismatch
 * or an agent error makes it failed, with a reason).
 */
int store_job_list_end(struct store *s, int64_t job_id, const char *list, int64_t count,
		       const char *checksum, const char *error_code, const char *error_message,
		       int64_t now);
/*
 * Ends a job. `status` is the agent's ("success", "failed", "cancelled");
 * the stored status also weighs the lists: some failed → partial, all
 * failed → failed. *final receives it (16 bytes).
 */
int store_job_end(struct store *s, int64_t job_id, const char *status, const char *error_code,
		  const char *error_message, int64_t now, char final[16]);
/*
 * Puts a JOB_RESULT for an ended job in its agent's outbox: its status and
 * each list's, so the agent moves the cursors of the lists that succeeded
 * (and stops the job if it still runs).
 */
int store_job_result(struct store *s, int64_t job_id, int64_t now);
/* Cancels a job of the tenant that has not ended. APS_ERR_NOTFOUND,
 * APS_ERR_CONFLICT (already ended); *agent_id tells whom to tell. */
int store_job_cancel(struct store *s, int64_t tenant_id, int64_t job_id, const char *by,
		     int64_t now, int64_t *agent_id);
/*
 * Once in a while: a job waiting longer than stale_ms gets a reason ("SyncTool
 * X offline since …"); a job in progress whose SyncTool has been offline longer
 * than timeout_ms times out. *agents receives a JSON array of the agents whose
 * outbox got a message (caller deletes).
 */
int store_jobs_check(struct store *s, int64_t now, int64_t stale_ms, int64_t timeout_ms,
		     cJSON **agents);

/* ---- exported documents (documents.c; proto/EXPORTS.md) ---- */

struct store_doc {
	int64_t tenant_id, entity_id, agent_id;
	const char *type;        /* invoice, payment */
	const char *vendor;
	const char *natural_key; /* the invoice number or payment reference */
	const char *body;        /* the document, JSON */
	const char *amount;
	const char *status;      /* on_hold, blocked or queued */
	const char *reason;
	const char *created_by;
};
/* APS_ERR_EXISTS (and *id) when the natural key was exported before. */
int store_doc_create(struct store *s, const struct store_doc *d, int64_t now, int64_t *id);
cJSON *store_doc_get(struct store *s, int64_t tenant_id, int64_t id);
/* Newest first; entity 0, status and type NULL: any; before 0: from the newest. */
cJSON *store_docs_list(struct store *s, int64_t tenant_id, int64_t entity_id, const char *status,
		       const char *type, int64_t before, int limit);
/* On hold or blocked documents (with their bodies and tenant), to check
 * again; tenant or entity 0: any. */
cJSON *store_docs_waiting(struct store *s, int64_t tenant_id, int64_t entity_id);
int store_doc_status(struct store *s, int64_t id, const char *status, const char *reason,
		     int64_t now);
/* A failed or uncertain document goes out again; APS_ERR_CONFLICT otherwise. */
int store_doc_retry(struct store *s, int64_t tenant_id, int64_t id, int64_t now,
		    int64_t *agent_id);
/* Posted in the ERP by hand: success, marked so; APS_ERR_CONFLICT if it is
 * in progress or already succeeded. */
int store_doc_mark_exported(struct store *s, int64_t tenant_id, int64_t id, const char *erp_id,
			    const char *by, int64_t now);
/* Queued documents of an agent (and failed ones due for a retry) into its
 * outbox as EXPORT messages. */
int store_docs_dispatch(struct store *s, int64_t agent_id, int64_t now, int *n);
/* The agents that have failed documents due for a retry. */
int store_docs_due(struct store *s, int64_t now, cJSON **agents);
/* Applies an agent's EXPORT_RESULT. */
int store_doc_result(struct store *s, int64_t agent_id, const cJSON *body, int64_t now,
		     int64_t retry_base_ms, char *why, size_t whylen);
/* A synced item's status ("active", "inactive", "deleted"); APS_ERR_NOTFOUND. */
int store_item_state(struct store *s, int64_t entity_id, const char *list, const char *key,
		     char *status, size_t len);
/* Payments the ERP holds (the synced payments list) that pay the invoice
 * `number` of `vendor`: [{payment, reference, date, bank_account, amount,
 * status}], the amount being what goes to this invoice. */
cJSON *store_doc_payments(struct store *s, int64_t entity_id, const char *vendor,
			  const char *number);
/* 1 if any item of the list was ever synced for the entity. */
int store_list_synced(struct store *s, int64_t entity_id, const char *list);
int store_idem_get(struct store *s, int64_t tenant_id, const char *key, char hash[65],
		   int *status, char **response);
int store_idem_put(struct store *s, int64_t tenant_id, const char *key, const char *hash,
		   int status, const char *response, int64_t now);
cJSON *store_rules_list(struct store *s, int64_t tenant_id);
int store_rule_add(struct store *s, int64_t tenant_id, const char *kind, const char *value,
		   const char *by, int64_t now, int64_t *id);
int store_rule_delete(struct store *s, int64_t tenant_id, int64_t id);

/* ---- export runs (documents.c): the documents of one export request ---- */

int store_export_run_create(struct store *s, int64_t tenant_id, int64_t entity_id,
			    const char *by, int64_t now, int64_t *id);
int store_export_run_add(struct store *s, int64_t run_id, int64_t doc_id);
/* After a document of a run changed: the run ends (success, partial, failed,
 * logging each document not in the ERP and why) or goes on. */
int store_export_run_refresh(struct store *s, int64_t doc_id, int64_t now);
cJSON *store_export_runs(struct store *s, int64_t tenant_id, int64_t entity_id, int limit);
cJSON *store_export_run_get(struct store *s, int64_t tenant_id, int64_t run_id);

#endif
