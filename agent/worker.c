/*
 * The ERP worker: one thread that owns the ERP connection. It reports the
 * ERP's identity for HELLO and runs the broker's sync jobs one at a time,
 * oldest first.
 *
 * A job starts by freezing its plan: which lists, and for each how it is
 * read, and the window's upper bound `window_to`, the ERP's clock minus a
 * lag. A list is read either
 *   - in full: key order (binary), resumable by key; every batch names the
 *     key it starts after, so the broker can mark keys it holds that the ERP
 *     no longer has as deleted; or
 *   - in a window: rows with from <= modified < window_to, in (modified, key)
 *     order, resumable by that pair. `from` is the user's Sync From date, or
 *     the list's checkpoint minus an overlap. Rows of the overlap the broker
 *     already confirmed are skipped by (key, modified).
 *
 * Every batch is committed together with the job's resume point, so a job
 * interrupted anywhere resumes from its outbox's end and the broker gets each
 * row exactly once. A list's checkpoint (window_to) becomes the cursor only
 * when the broker's JOB_RESULT says the list succeeded (link.c), never on a
 * failed run. The outbox is bounded by the broker's window: memory stays flat
 * whatever a list's size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "agent_internal.h"
#include "apsync_proto.h"
#include "arena.h"
#include "batch.h"
#include "db.h"
#include "err.h"
#include "log.h"
#include "plat.h"
#include "util.h"

struct worker {
	struct agent *a;
	sqlite3 *db;
	struct aps_codec codec;
	const struct erp_ops *ops;
	struct erp *erp;
	struct erp_identity id;
	char erp_error[512];
	struct aps_hasher hasher;
	struct aps_arena arena;   /* the ERP's nested values (PO lines), per batch */
	struct aps_batch_builder bb; /* column buffers, kept between batches */
	struct aps_buf body;      /* a batch's JSON text */
	sqlite3_stmt *dedup;
	sqlite3_stmt *tail;
	sqlite3_stmt *hash_scan;  /* confirmed hashes of a key range */
	sqlite3_stmt *pend_ins;   /* a pending hash (NULL: deleted) */
};

static struct worker *the_worker;

/* ---- identity ---- */

static void publish_identity(struct worker *w)
{
	cJSON *o = cJSON_CreateObject(), *erp, *ents, *e, *lists;
	struct erp_company *c;
	char *text, *cached = NULL;
	int i, j;

	erp = cJSON_AddObjectToObject(o, "erp");
	ents = cJSON_AddArrayToObject(o, "entities");
	if (w->erp) {
		cJSON_AddStringToObject(erp, "product", w->id.product);
		cJSON_AddStringToObject(erp, "version", w->id.version);
		cJSON_AddStringToObject(erp, "connector", w->ops->scheme);
		for (i = 0; i < w->id.ncompanies; i++) {
			c = &w->id.companies[i];
			e = cJSON_CreateObject();
			cJSON_AddItemToArray(ents, e);
			cJSON_AddStringToObject(e, "code", c->code);
			cJSON_AddStringToObject(e, "name", c->name);
			cJSON_AddStringToObject(e, "currency", c->currency);
			lists = cJSON_AddArrayToObject(e, "lists");
			for (j = 0; j < c->nlists; j++)
				cJSON_AddItemToArray(lists, cJSON_CreateString(c->lists[j]));
			if (c->po_types)
				cJSON_AddStringToObject(e, "po_types", c->po_types);
		}
		text = cJSON_PrintUnformatted(o);
		if (text)
			state__meta_set_text(w->db, "identity", text);
	} else {
		/* The ERP is unreachable: say why, and keep the last known entities
		 * so the broker does not lose them. */
		cJSON_Delete(o);
		o = NULL;
		if (state__meta_get_text(w->db, "identity", &cached) == APS_OK && cached)
			o = cJSON_Parse(cached);
		free(cached);
		if (!o) {
			o = cJSON_CreateObject();
			cJSON_AddArrayToObject(o, "entities");
		}
		erp = cJSON_GetObjectItemCaseSensitive(o, "erp");
		if (!erp)
			erp = cJSON_AddObjectToObject(o, "erp");
		cJSON_DeleteItemFromObjectCaseSensitive(erp, "error");
		cJSON_AddStringToObject(erp, "error", w->erp_error);
		text = cJSON_PrintUnformatted(o);
	}
	cJSON_Delete(o);
	pthread_mutex_lock(&w->a->mu);
	if (!w->a->identity || !text || strcmp(w->a->identity, text)) {
		free(w->a->identity);
		w->a->identity = text ? strdup(text) : NULL;
		w->a->identity_gen++;
	}
	w->a->identity_ready = 1;
	pthread_mutex_unlock(&w->a->mu);
	cJSON_free(text);
	agent__wake_loop(w->a);
}

static int erp_connect(struct worker *w)
{
	struct erp_settings cfg = {.profiles = w->a->opts->profiles,
				   .url = w->a->opts->erp_url,
				   .user = w->a->opts->erp_user,
				   .password_file = w->a->opts->erp_password_file};
	int rc;

	if (w->erp)
		return APS_OK;
	rc = erp_open(w->a->opts->erp, &cfg, &w->ops, &w->erp, w->erp_error, sizeof(w->erp_error));
	if (!rc)
		rc = w->ops->identity(w->erp, &w->id, w->erp_error, sizeof(w->erp_error));
	if (rc) {
		if (w->erp)
			w->ops->close(w->erp);
		w->erp = NULL;
		log_err("ERP %s: %s", w->a->opts->erp, w->erp_error);
	} else {
		w->erp_error[0] = '\0';
		log_notice("ERP: %s %s, %d companies", w->id.product, w->id.version,
			   w->id.ncompanies);
	}
	publish_identity(w);
	return rc;
}

static const struct erp_company *company(struct worker *w, const char *code)
{
	int i;

	for (i = 0; i < w->id.ncompanies; i++)
		if (!strcmp(w->id.companies[i].code, code))
			return &w->id.companies[i];
	return NULL;
}

static int has_list(const struct erp_company *c, const char *list)
{
	int i;

	for (i = 0; i < c->nlists; i++)
		if (!strcmp(c->lists[i], list))
			return 1;
	return 0;
}

/* ---- waiting ---- */

static int cancelled(struct worker *w, int64_t job)
{
	sqlite3_stmt *st = NULL;
	int c = 0;

	if (sqlite3_prepare_v2(w->db, "SELECT cancel FROM jobs WHERE id=?1", -1, &st, NULL))
		return 0;
	sqlite3_bind_int64(st, 1, job);
	if (sqlite3_step(st) == SQLITE_ROW)
		c = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return c;
}

/* Sleeps up to ms, waking early for a command or a stop. APS_ERR_CONFLICT
 * when the agent stops or the job was cancelled. */
static int pause_for(struct worker *w, int64_t job, int64_t ms)
{
	struct agent *a = w->a;
	struct timespec ts;
	int64_t ns;
	int stop;

	pthread_mutex_lock(&a->mu);
	if (!a->stop && !a->jobs_changed) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ns = ts.tv_nsec + (ms % 1000) * 1000000;
		ts.tv_sec += ms / 1000 + ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		pthread_cond_timedwait(&a->cv, &a->mu, &ts);
	}
	a->jobs_changed = 0;
	stop = a->stop;
	pthread_mutex_unlock(&a->mu);
	return stop || (job && cancelled(w, job)) ? APS_ERR_CONFLICT : APS_OK;
}

/* Waits until the outbox has room. APS_ERR_CONFLICT when the agent stops or
 * the job is cancelled meanwhile. */
static int wait_window(struct worker *w, int64_t job)
{
	int64_t frames, bytes;
	struct agent *a = w->a;
	int command;

	for (;;) {
		if (cancelled(w, job))
			return APS_ERR_CONFLICT;
		if (state__outbox_size(w->db, &frames, &bytes))
			return APS_ERR_DB;
		pthread_mutex_lock(&a->mu);
		if (a->stop) {
			pthread_mutex_unlock(&a->mu);
			return APS_ERR_CONFLICT;
		}
		if (frames < a->window_frames && bytes < a->window_bytes) {
			pthread_mutex_unlock(&a->mu);
			return APS_OK;
		}
		if (!a->window_changed && !a->jobs_changed)
			pthread_cond_wait(&a->cv, &a->mu);
		command = a->jobs_changed;
		a->window_changed = 0;
		a->jobs_changed = 0;
		pthread_mutex_unlock(&a->mu);
		(void)command;
	}
}

/* ---- producing frames ---- */

/* Row versions near the window's end, recorded with their batch. */
struct tail_row {
	char *key;
	char *modified;
	int64_t modified_ms;
};

/* A row hash to confirm with the list (lists read by hashes). */
struct pend_row {
	char *key;
	int64_t hash;
};

struct progress {
	const char *sql;      /* applied to the job, ?1 = job */
	const char *key;      /* ?2 */
	int64_t count;        /* ?3 */
	uint64_t checksum;    /* ?4 */
	const char *modified; /* ?5 */
	/* rows for the overlap set */
	const char *entity, *list;
	struct tail_row *tail;
	int ntail;
	/* a pending checkpoint for the list */
	const char *checkpoint;
	/* lists read by hashes: the rows' hashes, and keys found deleted (sent
	 * first, in ROWS_DELETED frames of the same transaction) */
	struct pend_row *pend;
	int npend;
	char **deleted;
	int ndeleted;
};

static cJSON *job_body(int64_t job)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "job", (double)job);
	return o;
}

/* ROWS_DELETED frames for keys found gone, each key recorded as a pending
 * deletion: inside the caller's transaction. */
static int produce_deleted(struct worker *w, int64_t job, const struct progress *p)
{
	cJSON *body, *keys;
	int i = 0, j, rc = APS_OK;

	while (!rc && i < p->ndeleted) {
		body = job_body(job);
		cJSON_AddStringToObject(body, "list", p->list);
		keys = cJSON_AddArrayToObject(body, "keys");
		for (j = 0; i < p->ndeleted && j < (int)APSYNC_MAX_BATCH_ROWS; i++, j++) {
			cJSON_AddItemToArray(keys, cJSON_CreateString(p->deleted[i]));
			sqlite3_bind_int64(w->pend_ins, 1, job);
			sqlite3_bind_text(w->pend_ins, 2, p->list, -1, SQLITE_STATIC);
			sqlite3_bind_text(w->pend_ins, 3, p->deleted[i], -1, SQLITE_STATIC);
			sqlite3_bind_null(w->pend_ins, 4);
			if (aps_db_step_done(w->pend_ins))
				rc = APS_ERR_DB;
		}
		if (!rc)
			rc = state__outbox_add(w->db, &w->codec, APSYNC_MSG_ROWS_DELETED, body, 1,
					       NULL);
		cJSON_Delete(body);
	}
	for (i = 0; !rc && i < p->npend; i++) {
		sqlite3_bind_int64(w->pend_ins, 1, job);
		sqlite3_bind_text(w->pend_ins, 2, p->list, -1, SQLITE_STATIC);
		sqlite3_bind_text(w->pend_ins, 3, p->pend[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(w->pend_ins, 4, p->pend[i].hash);
		if (aps_db_step_done(w->pend_ins))
			rc = APS_ERR_DB;
	}
	return rc;
}

/* Adds one frame (a cJSON body, or JSON text; neither: only the progress and
 * deletions) to the outbox and records the progress it stands for, in one
 * transaction. */
static int produce_any(struct worker *w, int type, const cJSON *body, const char *text,
		       size_t len, int compress, int64_t job, const struct progress *p)
{
	sqlite3_stmt *st = NULL;
	int rc, i, n;

	rc = aps_db_begin(w->db);
	if (rc)
		return rc;
	if (p && (p->ndeleted || p->npend))
		rc = produce_deleted(w, job, p);
	if (!rc && body)
		rc = state__outbox_add(w->db, &w->codec, type, body, compress, NULL);
	else if (!rc && text)
		rc = state__outbox_add_text(w->db, &w->codec, type, text, len, compress, NULL);
	if (rc || !p)
		goto done;
	rc = APS_ERR_DB;
	if (p->sql) {
		if (sqlite3_prepare_v2(w->db, p->sql, -1, &st, NULL))
			goto done;
		n = sqlite3_bind_parameter_count(st);
		sqlite3_bind_int64(st, 1, job);
		if (n >= 2)
			aps_db_bind_text(st, 2, p->key);
		if (n >= 3)
			sqlite3_bind_int64(st, 3, p->count);
		if (n >= 4)
			sqlite3_bind_int64(st, 4, (int64_t)p->checksum);
		if (n >= 5)
			aps_db_bind_text(st, 5, p->modified);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto done;
		sqlite3_finalize(st);
		st = NULL;
	}
	for (i = 0; i < p->ntail; i++) {
		sqlite3_bind_text(w->tail, 1, p->entity, -1, SQLITE_STATIC);
		sqlite3_bind_text(w->tail, 2, p->list, -1, SQLITE_STATIC);
		sqlite3_bind_text(w->tail, 3, p->tail[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(w->tail, 4, p->tail[i].modified, -1, SQLITE_STATIC);
		sqlite3_bind_int64(w->tail, 5, p->tail[i].modified_ms);
		sqlite3_bind_int64(w->tail, 6, job);
		if (aps_db_step_done(w->tail))
			goto done;
	}
	if (p->checkpoint) {
		if (sqlite3_prepare_v2(w->db, "INSERT OR REPLACE INTO pending_cursors(job, entity, "
					      "list, checkpoint) VALUES(?1, ?2, ?3, ?4)",
				       -1, &st, NULL))
			goto done;
		sqlite3_bind_int64(st, 1, job);
		sqlite3_bind_text(st, 2, p->entity, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, p->list, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, p->checkpoint, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto done;
	}
	rc = APS_OK;
done:
	sqlite3_finalize(st);
	if (!rc)
		rc = aps_db_commit(w->db);
	if (rc) {
		log_err("state: cannot record progress: %s", sqlite3_errmsg(w->db));
		aps_db_rollback(w->db);
	} else {
		agent__wake_loop(w->a);
	}
	return rc;
}

static int produce(struct worker *w, int type, const cJSON *body, int compress, int64_t job,
		   const struct progress *p)
{
	return produce_any(w, type, body, NULL, 0, compress, job, p);
}

/* A batch: JSON text built by the batch builder, compressed. */
static int produce_text(struct worker *w, int type, const char *text, size_t len, int64_t job,
			const struct progress *p)
{
	return produce_any(w, type, NULL, text, len, 1, job, p);
}

static cJSON *error_body(int64_t job, const char *list, const char *code, const char *msg)
{
	cJSON *o = job_body(job), *e;

	if (list)
		cJSON_AddStringToObject(o, "list", list);
	e = cJSON_AddObjectToObject(o, "error");
	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	return o;
}

static int job_end(struct worker *w, int64_t job, const char *status, const char *code,
		   const char *msg)
{
	struct progress p = {.sql = "UPDATE jobs SET state='done', "
				    "finished_at=strftime('%s','now')*1000 WHERE id=?1"};
	cJSON *o = code ? error_body(job, NULL, code, msg) : job_body(job);
	int rc;

	cJSON_AddStringToObject(o, "status", status);
	rc = produce(w, APSYNC_MSG_JOB_END, o, 0, job, &p);
	cJSON_Delete(o);
	if (!rc)
		log_notice("job %lld: ended %s%s%s", (long long)job, status, msg ? ": " : "",
			   msg ? msg : "");
	return rc;
}

/* Tells the broker the job waits for the ERP (once per episode), or that it
 * goes on again. */
static int job_deferred(struct worker *w, int64_t job, int deferred, const char *why)
{
	struct progress p = {.sql = deferred ? "UPDATE jobs SET deferred=1 WHERE id=?1"
					     : "UPDATE jobs SET deferred=0 WHERE id=?1"};
	cJSON *o = job_body(job);
	char msg[700];
	int rc;

	cJSON_AddStringToObject(o, "state", deferred ? "deferred" : "running");
	snprintf(msg, sizeof(msg), deferred ? "waiting for the ERP: %s" : "the ERP answers again",
		 why);
	cJSON_AddStringToObject(o, "message", msg);
	rc = produce(w, APSYNC_MSG_JOB_STATUS, o, 0, job, &p);
	cJSON_Delete(o);
	log_warn("job %lld: %s", (long long)job, msg);
	return rc;
}

/* ---- reading a list ---- */

struct plan_entry {
	const struct erp_list *list;
	int window;           /* read a window by modification time */
	const char *from;     /* window start (ERP local ISO), NULL: none */
	int hashed;           /* a partial read of a list without modification times */
};

/* The state of a job's read of one list. */
struct reader {
	struct worker *w;
	struct aps_batch_builder *bb;
	const struct erp_list *list;
	const char *entity;
	int key_col, mod_col;
	int window;
	int64_t tail_from_ms;  /* rows modified at or after this go to the overlap set */
	char tail_cutoff[11];  /* a local date before this is older, whatever its offset */
	/* per batch */
	int64_t count;
	uint64_t checksum;
	int64_t skipped;
	struct tail_row *tail;
	int ntail, captail;
	/* the last row read (kept or skipped): the resume point */
	char last_key[APSYNC_MAX_KEY_LEN + 1];
	char last_modified[64];
	int err;
	/* lists without modification times */
	int record;           /* keep every sent row's hash, to compare next time */
	int hashed;           /* send only rows whose hash changed, and deletions */
	struct pend_row *pend;
	int npend, cappend;
	char **deleted;
	int ndeleted, capdeleted;
};

static void reader_reset_batch(struct reader *r)
{
	int i;

	for (i = 0; i < r->ntail; i++) {
		free(r->tail[i].key);
		free(r->tail[i].modified);
	}
	for (i = 0; i < r->npend; i++)
		free(r->pend[i].key);
	for (i = 0; i < r->ndeleted; i++)
		free(r->deleted[i]);
	r->npend = 0;
	r->ndeleted = 0;
	r->ntail = 0;
	r->count = 0;
	r->checksum = 0;
}

static int is_duplicate(struct reader *r, const char *key, const char *modified)
{
	sqlite3_stmt *st = r->w->dedup;
	int dup;

	sqlite3_bind_text(st, 1, r->entity, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->list->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, modified, -1, SQLITE_STATIC);
	dup = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return dup;
}

static int add_deleted(struct reader *r, const char *key)
{
	char **d;
	int cap;

	if (r->ndeleted == r->capdeleted) {
		cap = r->capdeleted ? r->capdeleted * 2 : 64;
		d = realloc(r->deleted, (size_t)cap * sizeof(*d));
		if (!d)
			return APS_ERR_NOMEM;
		r->deleted = d;
		r->capdeleted = cap;
	}
	r->deleted[r->ndeleted] = strdup(key);
	return r->deleted[r->ndeleted++] ? APS_OK : APS_ERR_NOMEM;
}

static int add_pend(struct reader *r, const char *key, uint64_t hash)
{
	struct pend_row *p;
	int cap;

	if (r->npend == r->cappend) {
		cap = r->cappend ? r->cappend * 2 : 64;
		p = realloc(r->pend, (size_t)cap * sizeof(*p));
		if (!p)
			return APS_ERR_NOMEM;
		r->pend = p;
		r->cappend = cap;
	}
	r->pend[r->npend].key = strdup(key);
	r->pend[r->npend].hash = (int64_t)hash;
	return r->pend[r->npend++].key ? APS_OK : APS_ERR_NOMEM;
}

/*
 * A list read by hashes: confirmed keys after `prev` and before `key` are
 * gone from the ERP (the read is in key order); *same is 1 when `key` is held
 * with this very hash. key NULL: every confirmed key after prev (the end).
 */
static int compare_confirmed(struct reader *r, const char *prev, const char *key, uint64_t hash,
			     int *same)
{
	sqlite3_stmt *st = r->w->hash_scan;
	const char *k;
	int rc = APS_OK, src;

	*same = 0;
	sqlite3_bind_text(st, 1, r->entity, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->list->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, prev, -1, SQLITE_STATIC);
	if (key)
		sqlite3_bind_text(st, 4, key, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	while (!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
		k = (const char *)sqlite3_column_text(st, 0);
		if (key && !strcmp(k, key))
			*same = (uint64_t)sqlite3_column_int64(st, 1) == hash;
		else
			rc = add_deleted(r, k);
	}
	if (!rc && src != SQLITE_DONE)
		rc = APS_ERR_DB;
	sqlite3_reset(st);
	return rc;
}

static int on_row(void *ud, const struct aps_value *vals)
{
	struct reader *r = ud;
	const struct aps_value *key = &vals[r->key_col];
	const struct aps_value *mod = r->mod_col >= 0 ? &vals[r->mod_col] : NULL;
	const char *modified = mod && mod->type == APS_V_TEXT ? mod->s : NULL;
	size_t klen = key->type == APS_V_TEXT ? strlen(key->s) : 0;
	size_t mlen = modified ? strlen(modified) : 0;
	int64_t mod_ms = 0;
	uint64_t hash;
	int same = 0;

	if (!klen || klen > APSYNC_MAX_KEY_LEN ||
	    (r->window && (!modified || aps_time_parse(modified, &mod_ms))) ||
	    mlen >= sizeof(r->last_modified)) {
		r->err = APS_ERR_ERP;
		return 1;
	}
	hash = aps_row_hash_values(&r->w->hasher, vals, r->list->ncols);
	if (r->hashed) {
		r->err = compare_confirmed(r, r->last_key, key->s, hash, &same);
		if (r->err)
			return 1;
	}
	memcpy(r->last_key, key->s, klen + 1); /* lengths checked above */
	memcpy(r->last_modified, modified ? modified : "", mlen + 1);
	if (same) {
		r->skipped++; /* the broker holds this very row */
		return 0;
	}
	if (r->window && is_duplicate(r, key->s, modified)) {
		r->skipped++; /* the broker confirmed this very version last time */
		return 0;
	}
	/* A full read parses a row's time only when its date may be near the
	 * tail (the ISO dates compare as text): most rows are far older. */
	if (modified &&
	    (r->window ||
	     (strncmp(modified, r->tail_cutoff, 10) >= 0 && !aps_time_parse(modified, &mod_ms))) &&
	    mod_ms >= r->tail_from_ms) {
		if (r->ntail == r->captail) {
			int cap = r->captail ? r->captail * 2 : 64;
			struct tail_row *t = realloc(r->tail, (size_t)cap * sizeof(*t));

			if (!t) {
				r->err = APS_ERR_NOMEM;
				return 1;
			}
			r->tail = t;
			r->captail = cap;
		}
		r->tail[r->ntail].key = strdup(key->s);
		r->tail[r->ntail].modified = strdup(modified);
		r->tail[r->ntail].modified_ms = mod_ms;
		r->ntail++;
	}
	if (r->record && add_pend(r, key->s, hash)) {
		r->err = APS_ERR_NOMEM;
		return 1;
	}
	r->checksum += hash;
	r->count++;
	if (aps_batch_builder_add(r->bb, vals)) {
		r->err = APS_ERR_NOMEM;
		return 1;
	}
	return 0;
}

/* Ends a list that could not be read; the run goes on with the next. */
static int list_failed(struct worker *w, int64_t job, const struct erp_list *l, int rc,
		       const char *why, int64_t count)
{
	struct progress p = {.sql = "UPDATE jobs SET list_index=list_index+1, list_begun=0, "
				    "last_key=NULL, last_modified=NULL, list_count=0, "
				    "list_checksum=0 WHERE id=?1"};
	cJSON *body = error_body(job, l->name, aps_errcode(rc), why);

	cJSON_AddNumberToObject(body, "count", (double)count);
	rc = produce(w, APSYNC_MSG_LIST_END, body, 0, job, &p);
	cJSON_Delete(body);
	log_err("job %lld: list %s failed: %s", (long long)job, l->name, why);
	return rc;
}

struct resume {
	const char *key;
	const char *modified;
	int64_t count;
	uint64_t checksum;
};

/* 1 when the list's read was skipped: its fingerprint had not changed. */
static int end_unchanged(struct worker *w, int64_t job, const char *list)
{
	sqlite3_stmt *st = NULL;
	int same = 0;

	if (!sqlite3_prepare_v2(w->db, "SELECT 1 FROM pending_lists l JOIN fingerprints f ON "
				       "f.entity=l.entity AND f.list=l.list AND "
				       "f.fingerprint=l.fingerprint WHERE l.job=?1 AND l.list=?2",
				-1, &st, NULL)) {
		sqlite3_bind_int64(st, 1, job);
		sqlite3_bind_text(st, 2, list, -1, SQLITE_STATIC);
		same = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return same;
}

/*
 * A list without modification times: its fingerprint (when the ERP has a
 * cheap one) is taken before reading and recorded with the job, to become
 * the confirmed one if the list succeeds. A partial read whose fingerprint
 * equals the confirmed one reads nothing (*end = 1).
 */
static int begin_hashed(struct worker *w, int64_t job, const char *entity,
			const struct plan_entry *pe, const struct resume *res, int *end)
{
	char fp[128] = "", err[256];
	sqlite3_stmt *st = NULL;
	int rc = APS_ERR_DB, have_fp;

	have_fp = w->ops->fingerprint &&
		  w->ops->fingerprint(w->erp, entity, pe->list->name, fp, err, sizeof(err)) ==
			  APS_OK;
	/* The first attempt's fingerprint stays when the list resumes. */
	if (sqlite3_prepare_v2(w->db, "INSERT OR IGNORE INTO pending_lists(job, list, entity, "
				      "full, fingerprint) VALUES(?1, ?2, ?3, ?4, ?5)",
			       -1, &st, NULL))
		goto out;
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_text(st, 2, pe->list->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, entity, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, !pe->hashed);
	if (have_fp)
		sqlite3_bind_text(st, 5, fp, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	rc = APS_OK;
	if (pe->hashed && !res->key && end_unchanged(w, job, pe->list->name)) {
		*end = 1;
		log_info("job %lld: list %s unchanged since the last sync (fingerprint %s)",
			 (long long)job, pe->list->name, fp);
	}
out:
	if (rc)
		log_err("state: cannot record the list's fingerprint: %s", sqlite3_errmsg(w->db));
	sqlite3_finalize(st);
	return rc;
}

/* Reads one list from its resume point to its end, one batch per round. */
static int run_list(struct worker *w, int64_t job, const char *entity,
		    const struct plan_entry *pe, const char *window_to, const struct resume *res)
{
	struct agent_opts *o = w->a->opts;
	const struct erp_list *l = pe->list;
	struct erp_read req = {0};
	struct reader r;
	struct progress p;
	char err[512], key[APSYNC_MAX_KEY_LEN + 1], modified[64], sum[17];
	char after[APSYNC_MAX_KEY_LEN + 1];
	int64_t t0 = aps_mono_ms(), count = res->count, start_count = res->count, to_ms = 0;
	int64_t skipped = 0;
	uint64_t checksum = res->checksum;
	cJSON *body;
	int nread, rc, end = 0, deferred = 0, has_after, same, unchanged = 0;

	memset(&r, 0, sizeof(r));
	r.w = w;
	r.bb = &w->bb;
	r.list = l;
	r.entity = entity;
	r.window = pe->window;
	r.key_col = erp_list_col(l, l->key);
	r.mod_col = erp_list_col(l, "modified_at");
	r.hashed = pe->hashed;
	r.record = w->ops->stamped && !w->ops->stamped(w->erp, l->name);
	aps_time_parse(window_to, &to_ms);
	r.tail_from_ms = to_ms - o->cursor_overlap;
	/* Two days before tail_from's date: a time written with a date before
	 * that is older than tail_from at any UTC offset (they stay within a
	 * day). */
	{
		char iso[APS_TIME_LEN];

		aps_time_format_offset(r.tail_from_ms - 2 * 86400000LL, 0, iso);
		memcpy(r.tail_cutoff, iso, 10);
		r.tail_cutoff[10] = '\0';
	}
	snprintf(key, sizeof(key), "%s", res->key ? res->key : "");
	snprintf(modified, sizeof(modified), "%s", res->modified ? res->modified : "");
	snprintf(r.last_key, sizeof(r.last_key), "%s", key);
	if (r.record) {
		rc = begin_hashed(w, job, entity, pe, res, &end);
		if (rc)
			goto out;
		unchanged = end;
	}
	while (!end) {
		aps_arena_use(NULL);
		aps_arena_reset(&w->arena);
		rc = wait_window(w, job);
		if (rc)
			goto out;
		/* Nested values the ERP builds (PO lines) live in the arena until
		 * the next round. */
		aps_arena_use(&w->arena);
		rc = aps_batch_builder_init(r.bb, job, l->name, l->key, l->cols, l->ncols);
		if (rc)
			goto out;
		/* A full read tells the broker where this batch's key range starts. */
		has_after = key[0] != '\0';
		snprintf(after, sizeof(after), "%s", key);
		/* Fill the batch up to its row and byte bounds, page by page. */
		while (r.bb->nrows < o->batch_rows && r.bb->approx_bytes < (size_t)o->batch_bytes &&
		       r.ndeleted < o->batch_rows) {
			req.company = entity;
			req.list = l->name;
			req.order = pe->window ? ERP_ORDER_MODIFIED : ERP_ORDER_KEY;
			req.after_key = key[0] ? key : NULL;
			req.after_modified = pe->window && key[0] ? modified : NULL;
			req.modified_from = pe->window ? pe->from : NULL;
			req.modified_to = pe->window ? window_to : NULL;
			req.limit = (int)(o->batch_rows - r.bb->nrows);
			nread = 0;
			r.err = 0;
			rc = w->ops->read(w->erp, &req, on_row, &r, &nread, err, sizeof(err));
			if (!rc && r.err) {
				rc = r.err;
				if (rc == APS_ERR_DB || rc == APS_ERR_NOMEM)
					snprintf(err, sizeof(err), "the agent's state database failed "
						 "comparing row hashes");
				else
					snprintf(err, sizeof(err),
						 "the ERP returned a row without a valid key%s",
						 pe->window ? " or modification time" : "");
			}
			if (rc == APS_ERR_BUSY) {
				/* The ERP is there but will not serve us now: wait, say why. */
				if (!deferred && job_deferred(w, job, 1, err))
					goto out;
				deferred = 1;
				rc = pause_for(w, job, o->erp_retry);
				if (rc)
					goto out;
				continue;
			}
			if (rc) {
				reader_reset_batch(&r);
				rc = list_failed(w, job, l, rc, err, count);
				goto out;
			}
			if (deferred) {
				deferred = 0;
				if (job_deferred(w, job, 0, ""))
					goto out;
			}
			if (nread) {
				snprintf(key, sizeof(key), "%s", r.last_key);
				snprintf(modified, sizeof(modified), "%s", r.last_modified);
			}
			if (nread < req.limit) {
				end = 1;
				break;
			}
		}
		skipped += r.skipped;
		r.skipped = 0;
		count += r.count;
		checksum += r.checksum;
		memset(&p, 0, sizeof(p));
		p.sql = "UPDATE jobs SET last_key=?2, list_count=?3, list_checksum=?4, "
			"last_modified=?5 WHERE id=?1";
		p.key = key[0] ? key : NULL;
		p.count = count;
		p.checksum = checksum;
		p.modified = modified[0] ? modified : NULL;
		p.entity = entity;
		p.list = l->name;
		p.tail = r.tail;
		p.ntail = r.ntail;
		p.pend = r.pend;
		p.npend = r.npend;
		p.deleted = r.deleted;
		p.ndeleted = r.ndeleted;
		if (!r.bb->nrows && r.ndeleted) {
			/* Only keys found gone: they go out with the resume point. */
			rc = produce_any(w, 0, NULL, NULL, 0, 0, job, &p);
			reader_reset_batch(&r);
			if (rc)
				goto out;
			continue;
		}
		if (!r.bb->nrows) {
			/* Nothing kept (all skipped, or the list ended): only progress. */
			reader_reset_batch(&r);
			continue;
		}
		rc = aps_batch_builder_finish(r.bb, !pe->window && !pe->hashed,
					      has_after ? after : NULL, &w->body);
		if (!rc)
			rc = produce_text(w, APSYNC_MSG_BATCH, (const char *)w->body.data, w->body.len,
					  job, &p);
		reader_reset_batch(&r);
		if (w->body.cap > (8u << 20))
			aps_buf_free(&w->body); /* an outsized batch does not pin memory */
		if (rc)
			goto out;
	}
	aps_arena_use(NULL);
	aps_arena_reset(&w->arena);
	body = job_body(job);
	aps_checksum_hex(checksum, sum);
	cJSON_AddStringToObject(body, "list", l->name);
	cJSON_AddNumberToObject(body, "count", (double)count);
	cJSON_AddStringToObject(body, "checksum", sum);
	if (!pe->window && !pe->hashed) {
		/* The list ended: keys after the last one are gone from the ERP. */
		cJSON_AddItemToObject(body, "after",
				      key[0] ? cJSON_CreateString(key) : cJSON_CreateNull());
		cJSON_AddBoolToObject(body, "complete", 1);
	}
	memset(&p, 0, sizeof(p));
	p.sql = "UPDATE jobs SET list_index=list_index+1, list_begun=0, last_key=NULL, "
		"last_modified=NULL, list_count=0, list_checksum=0 WHERE id=?1";
	p.entity = entity;
	p.list = l->name;
	p.checkpoint = window_to;
	/* A read by hashes reached the end: confirmed keys after the last one
	 * read are gone; they go out just before LIST_END. */
	if (pe->hashed && !unchanged) {
		rc = compare_confirmed(&r, key, NULL, 0, &same);
		if (rc) {
			cJSON_Delete(body);
			goto out;
		}
		p.deleted = r.deleted;
		p.ndeleted = r.ndeleted;
	}
	rc = produce(w, APSYNC_MSG_LIST_END, body, 0, job, &p);
	cJSON_Delete(body);
	log_info("job %lld: list %s: %lld rows (%lld in this run, %lld already confirmed skipped) "
		 "in %lld ms",
		 (long long)job, l->name, (long long)count, (long long)(count - start_count),
		 (long long)skipped, (long long)(aps_mono_ms() - t0));
out:
	aps_arena_use(NULL);
	aps_arena_reset(&w->arena);
	reader_reset_batch(&r);
	free(r.tail);
	free(r.pend);
	free(r.deleted);
	return rc;
}

/* ---- jobs ---- */

struct job {
	int64_t id;
	char entity[APSYNC_MAX_NAME_LEN + 1];
	char mode[16];
	char *lists;          /* requested, JSON */
	char *since;
	char *fallback_since;
	int po_enabled;
	char *po_since;
	char *plan;           /* fixed when the job starts, JSON */
	char *window_to;
	char state[16];
	int64_t list_index;
	int list_begun;
	char *last_key;
	char *last_modified;
	int64_t list_count;
	uint64_t list_checksum;
	int deferred;
};

static void job_free(struct job *j)
{
	free(j->lists);
	free(j->since);
	free(j->fallback_since);
	free(j->po_since);
	free(j->plan);
	free(j->window_to);
	free(j->last_key);
	free(j->last_modified);
	memset(j, 0, sizeof(*j));
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? strdup((const char *)t) : NULL;
}

/* The oldest job still to run; APS_ERR_NOTFOUND when none. */
static int next_job(struct worker *w, struct job *j)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(j, 0, sizeof(*j));
	if (sqlite3_prepare_v2(w->db, "SELECT id, entity, mode, lists, since, fallback_since, "
				      "po_enabled, po_since, plan, window_to, state, list_index, "
				      "list_begun, last_key, last_modified, list_count, "
				      "list_checksum, deferred FROM jobs WHERE state IN "
				      "('pending', 'running') ORDER BY id LIMIT 1",
			       -1, &st, NULL))
		return APS_ERR_DB;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		j->id = sqlite3_column_int64(st, 0);
		snprintf(j->entity, sizeof(j->entity), "%s", sqlite3_column_text(st, 1));
		snprintf(j->mode, sizeof(j->mode), "%s", sqlite3_column_text(st, 2));
		j->lists = col_dup(st, 3);
		j->since = col_dup(st, 4);
		j->fallback_since = col_dup(st, 5);
		j->po_enabled = sqlite3_column_int(st, 6);
		j->po_since = col_dup(st, 7);
		j->plan = col_dup(st, 8);
		j->window_to = col_dup(st, 9);
		snprintf(j->state, sizeof(j->state), "%s", sqlite3_column_text(st, 10));
		j->list_index = sqlite3_column_int64(st, 11);
		j->list_begun = sqlite3_column_int(st, 12);
		j->last_key = col_dup(st, 13);
		j->last_modified = col_dup(st, 14);
		j->list_count = sqlite3_column_int64(st, 15);
		j->list_checksum = (uint64_t)sqlite3_column_int64(st, 16);
		j->deferred = sqlite3_column_int(st, 17);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : APS_ERR_DB;
}

static int is_po_list(const char *name)
{
	return !strcmp(name, "purchase_orders") || !strcmp(name, "receivings");
}

/* The window start of a partial read of a list: the user's date, else the
 * list's checkpoint minus the overlap, else the entity's last successful
 * sync minus the overlap; NULL when there is no baseline (read in full). */
static char *window_from(struct worker *w, const struct job *j, const char *list)
{
	const char *explicit_since = is_po_list(list) && j->po_since ? j->po_since : j->since;
	sqlite3_stmt *st = NULL;
	char *base = NULL, iso[APS_TIME_LEN];
	int64_t ms;
	int off;

	if (explicit_since)
		return strdup(explicit_since);
	if (!sqlite3_prepare_v2(w->db, "SELECT checkpoint FROM cursors WHERE entity=?1 AND list=?2",
				-1, &st, NULL)) {
		sqlite3_bind_text(st, 1, j->entity, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, list, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			base = col_dup(st, 0);
	}
	sqlite3_finalize(st);
	if (!base && j->fallback_since)
		base = strdup(j->fallback_since);
	if (!base)
		return NULL;
	if (aps_time_parse_offset(base, &ms, &off)) {
		free(base);
		return NULL;
	}
	free(base);
	return strdup(aps_time_format_offset(ms - w->a->opts->cursor_overlap, off, iso));
}

/* The lists a job reads and how: requested ones (or all) the company offers,
 * in canonical order; requested lists it lacks are reported as failed. */
static cJSON *make_plan(struct worker *w, const struct job *j, const struct erp_company *c,
			cJSON **missing)
{
	cJSON *want = j->lists ? cJSON_Parse(j->lists) : NULL, *plan = cJSON_CreateArray(), *it, *e;
	const char *name;
	char *from;
	int i, chosen, hashed;

	*missing = cJSON_CreateArray();
	for (i = 0; erp_lists[i]; i++) {
		name = erp_lists[i]->name;
		if (!has_list(c, name))
			continue;
		chosen = !want;
		cJSON_ArrayForEach(it, want)
			if (cJSON_IsString(it) && !strcmp(it->valuestring, name))
				chosen = 1;
		if (!want && is_po_list(name) && !j->po_enabled)
			chosen = 0; /* the PO & Receivings toggle is off */
		if (!chosen)
			continue;
		e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "list", name);
		from = NULL;
		hashed = 0;
		if (!strcmp(j->mode, "partial") || (is_po_list(name) && j->po_since)) {
			if (!w->ops->stamped || w->ops->stamped(w->erp, name))
				from = window_from(w, j, name);
			else
				hashed = 1; /* no modification times: compare row hashes */
		}
		cJSON_AddStringToObject(e, "read", from ? "window" : hashed ? "hashed" : "full");
		if (from)
			cJSON_AddStringToObject(e, "from", from);
		free(from);
		cJSON_AddItemToArray(plan, e);
	}
	cJSON_ArrayForEach(it, want)
		if (cJSON_IsString(it) && !has_list(c, it->valuestring))
			cJSON_AddItemToArray(*missing, cJSON_CreateString(it->valuestring));
	cJSON_Delete(want);
	return plan;
}

static int start_job(struct worker *w, struct job *j, const struct erp_company *c, char *err,
		     size_t errlen)
{
	cJSON *plan, *missing, *body, *it;
	char *text, msg[300], now[40], to[APS_TIME_LEN];
	sqlite3_stmt *st = NULL;
	int64_t ms;
	int rc, off;

	rc = w->ops->clock(w->erp, now, err, errlen);
	if (!rc && aps_time_parse_offset(now, &ms, &off)) {
		snprintf(err, errlen, "the ERP's clock reads \"%s\", not a time", now);
		rc = APS_ERR_ERP;
	}
	if (rc)
		return rc;
	/* The window ends a lag before the ERP's now: rows stamped just before
	 * it but committed later fall in the next window's overlap. */
	aps_time_format_offset(ms - w->a->opts->cursor_lag, off, to);
	plan = make_plan(w, j, c, &missing);
	text = cJSON_PrintUnformatted(plan);
	body = job_body(j->id);
	cJSON_AddStringToObject(body, "state", "running");
	snprintf(msg, sizeof(msg), "SyncTool started the %s sync of %d list(s), up to %s", j->mode,
		 cJSON_GetArraySize(plan), to);
	cJSON_AddStringToObject(body, "message", msg);
	rc = aps_db_begin(w->db);
	if (!rc)
		rc = state__outbox_add(w->db, &w->codec, APSYNC_MSG_JOB_STATUS, body, 0, NULL);
	/* Requested lists this ERP does not have: each reported as failed. */
	cJSON_ArrayForEach(it, missing) {
		cJSON *b;

		if (rc)
			break;
		b = job_body(j->id);
		cJSON_AddStringToObject(b, "list", it->valuestring);
		rc = state__outbox_add(w->db, &w->codec, APSYNC_MSG_LIST_BEGIN, b, 0, NULL);
		cJSON_Delete(b);
		if (rc)
			break;
		snprintf(msg, sizeof(msg), "this ERP (%s) has no list %s", w->id.product,
			 it->valuestring);
		b = error_body(j->id, it->valuestring, "not_supported", msg);
		rc = state__outbox_add(w->db, &w->codec, APSYNC_MSG_LIST_END, b, 0, NULL);
		cJSON_Delete(b);
	}
	if (!rc) {
		rc = APS_ERR_DB;
		if (!sqlite3_prepare_v2(w->db, "UPDATE jobs SET state='running', plan=?2, "
					       "window_to=?3, started_at=strftime('%s','now')*1000 "
					       "WHERE id=?1",
					-1, &st, NULL)) {
			sqlite3_bind_int64(st, 1, j->id);
			sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, to, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_DONE)
				rc = APS_OK;
		}
		sqlite3_finalize(st);
	}
	if (!rc)
		rc = aps_db_commit(w->db);
	if (rc)
		aps_db_rollback(w->db);
	else
		agent__wake_loop(w->a);
	free(j->plan);
	free(j->window_to);
	j->plan = text ? strdup(text) : NULL;
	j->window_to = strdup(to);
	cJSON_free(text);
	cJSON_Delete(body);
	cJSON_Delete(plan);
	cJSON_Delete(missing);
	return rc;
}

static int begin_list(struct worker *w, struct job *j, const struct erp_company *c,
		      const struct plan_entry *pe)
{
	struct progress p = {.sql = "UPDATE jobs SET list_begun=1, last_key=NULL, "
				    "last_modified=NULL, list_count=0, list_checksum=0 WHERE id=?1"};
	char msg[512];
	int64_t n;
	cJSON *body = job_body(j->id), *win;
	int rc;

	cJSON_AddStringToObject(body, "list", pe->list->name);
	/* An estimate for the progress bar, when the ERP counts cheaply. */
	if (!pe->window && w->ops->count(w->erp, c->code, pe->list->name, &n, msg, sizeof(msg)) ==
				   APS_OK)
		cJSON_AddNumberToObject(body, "estimate", (double)n);
	win = cJSON_AddObjectToObject(body, "window");
	if (pe->window)
		cJSON_AddStringToObject(win, "from", pe->from);
	else
		cJSON_AddNullToObject(win, "from");
	cJSON_AddStringToObject(win, "to", j->window_to);
	cJSON_AddStringToObject(body, "read", pe->window ? "window" : pe->hashed ? "hashed" : "full");
	rc = produce(w, APSYNC_MSG_LIST_BEGIN, body, 0, j->id, &p);
	cJSON_Delete(body);
	return rc;
}

static int run_job(struct worker *w, struct job *j)
{
	const struct erp_company *c;
	struct plan_entry pe;
	struct resume res;
	cJSON *plan, *e, *name, *from, *read;
	char msg[600] = "";
	int rc = APS_OK;

	if (erp_connect(w)) {
		/* The job waits for the ERP; the broker sees why. */
		if (!j->deferred && job_deferred(w, j->id, 1, w->erp_error) == APS_OK)
			j->deferred = 1;
		return APS_ERR_BUSY;
	}
	c = company(w, j->entity);
	if (!c) {
		snprintf(msg, sizeof(msg), "company %s is not in this ERP (%s)", j->entity,
			 w->id.product);
		return job_end(w, j->id, "failed", "unknown_entity", msg);
	}
	if (cancelled(w, j->id))
		return job_end(w, j->id, "cancelled", NULL, NULL);
	if (!strcmp(j->state, "pending")) {
		rc = start_job(w, j, c, msg, sizeof(msg));
		if (rc == APS_ERR_BUSY || rc == APS_ERR_ERP) {
			if (!j->deferred && job_deferred(w, j->id, 1, msg) == APS_OK)
				j->deferred = 1;
			return APS_ERR_BUSY;
		}
		if (rc)
			return rc;
		log_notice("job %lld: %s sync of %s started, up to %s", (long long)j->id, j->mode,
			   j->entity, j->window_to);
	} else {
		log_notice("job %lld: resuming at list %lld%s%s", (long long)j->id,
			   (long long)j->list_index, j->last_key ? " after key " : "",
			   j->last_key ? j->last_key : "");
	}
	if (j->deferred && job_deferred(w, j->id, 0, "") == APS_OK)
		j->deferred = 0;
	plan = j->plan ? cJSON_Parse(j->plan) : NULL;
	if (!plan || !j->window_to)
		return job_end(w, j->id, "failed", "internal", "the job's list plan is damaged");
	for (; j->list_index < cJSON_GetArraySize(plan); j->list_index++) {
		e = cJSON_GetArrayItem(plan, (int)j->list_index);
		name = cJSON_GetObjectItemCaseSensitive(e, "list");
		from = cJSON_GetObjectItemCaseSensitive(e, "from");
		read = cJSON_GetObjectItemCaseSensitive(e, "read");
		pe.list = cJSON_IsString(name) ? erp_list_find(name->valuestring) : NULL;
		pe.window = cJSON_IsString(from);
		pe.from = pe.window ? from->valuestring : NULL;
		pe.hashed = cJSON_IsString(read) && !strcmp(read->valuestring, "hashed");
		if (!pe.list)
			continue;
		if (cancelled(w, j->id))
			break;
		if (!j->list_begun) {
			rc = begin_list(w, j, c, &pe);
			if (rc)
				break;
			j->list_begun = 1;
			free(j->last_key);
			free(j->last_modified);
			j->last_key = j->last_modified = NULL;
			j->list_count = 0;
			j->list_checksum = 0;
		}
		res.key = j->last_key;
		res.modified = j->last_modified;
		res.count = j->list_count;
		res.checksum = j->list_checksum;
		rc = run_list(w, j->id, c->code, &pe, j->window_to, &res);
		free(j->last_key);
		free(j->last_modified);
		j->last_key = j->last_modified = NULL;
		j->list_count = 0;
		j->list_checksum = 0;
		j->list_begun = 0;
		if (rc)
			break;
	}
	cJSON_Delete(plan);
	if (cancelled(w, j->id))
		return job_end(w, j->id, "cancelled", NULL, NULL);
	if (rc)
		return rc; /* stopping, or the state database failed: resumed later */
	return job_end(w, j->id, "success", NULL, NULL);
}

/* ---- exports: the write journal ---- */

struct export_item {
	int64_t doc;
	char entity[APSYNC_MAX_NAME_LEN + 1];
	char type[16];
	int64_t attempt;
	char *body;
	char state[16];
};

static int next_export(struct worker *w, struct export_item *x)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(x, 0, sizeof(*x));
	if (sqlite3_prepare_v2(w->db, "SELECT doc, entity, type, attempt, body, state FROM exports "
				      "WHERE state IN ('intent', 'writing') ORDER BY doc LIMIT 1",
			       -1, &st, NULL))
		return APS_ERR_DB;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		x->doc = sqlite3_column_int64(st, 0);
		snprintf(x->entity, sizeof(x->entity), "%s", sqlite3_column_text(st, 1));
		snprintf(x->type, sizeof(x->type), "%s", sqlite3_column_text(st, 2));
		x->attempt = sqlite3_column_int64(st, 3);
		x->body = col_dup(st, 4);
		snprintf(x->state, sizeof(x->state), "%s", sqlite3_column_text(st, 5));
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return x->body ? APS_OK : APS_ERR_NOMEM;
	return rc == SQLITE_DONE ? APS_ERR_NOTFOUND : APS_ERR_DB;
}

/* The journal says a write may have begun: a crash after this point makes
 * the next attempt look the document up before anything else. */
static int export_writing(struct worker *w, int64_t doc)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "UPDATE exports SET state='writing', updated_at=%lld WHERE doc="
				   "%lld",
		 (long long)aps_now_ms(), (long long)doc);
	return sqlite3_exec(w->db, sql, NULL, NULL, NULL) == SQLITE_OK ? APS_OK : APS_ERR_DB;
}

/* Ends a journal entry: its result goes out in the same transaction. */
static int export_done(struct worker *w, const struct export_item *x, const char *status,
		       int found, const struct erp_doc_ref *ref, int rc, const char *why)
{
	struct progress p = {.sql = "UPDATE exports SET state='done', result=?2, "
				    "updated_at=strftime('%s','now')*1000 WHERE doc=?1"};
	cJSON *body = cJSON_CreateObject(), *e;
	char *text;
	int retryable = rc == APS_ERR_BUSY || rc == APS_ERR_IO || rc == APS_ERR_NET;

	cJSON_AddNumberToObject(body, "doc", (double)x->doc);
	cJSON_AddNumberToObject(body, "attempt", (double)x->attempt);
	cJSON_AddStringToObject(body, "status", status);
	cJSON_AddBoolToObject(body, "found", found);
	if (ref) {
		e = cJSON_AddObjectToObject(body, "erp");
		cJSON_AddStringToObject(e, "id", ref->id);
		if (ref->number[0])
			cJSON_AddStringToObject(e, "number", ref->number);
		if (ref->state[0])
			cJSON_AddStringToObject(e, "state", ref->state);
		if (ref->link[0])
			cJSON_AddStringToObject(e, "link", ref->link);
	}
	if (why) {
		e = cJSON_AddObjectToObject(body, "error");
		cJSON_AddStringToObject(e, "code", aps_errcode(rc));
		cJSON_AddStringToObject(e, "message", why);
		cJSON_AddBoolToObject(e, "retryable", retryable);
	}
	text = cJSON_PrintUnformatted(body);
	p.key = text; /* ?2: the result, kept in the journal */
	rc = text ? produce(w, APSYNC_MSG_EXPORT_RESULT, body, 0, x->doc, &p) : APS_ERR_NOMEM;
	log_notice("document %lld (%s): %s%s%s%s", (long long)x->doc, x->type, status,
		   found ? " (found in the ERP, not written again)" : "", why ? ": " : "",
		   why ? why : "");
	cJSON_free(text);
	cJSON_Delete(body);
	return rc;
}

/* One document: looked up by its natural key first, written only if the ERP
 * does not have it. */
static int run_export(struct worker *w, const struct export_item *x)
{
	struct erp_doc_ref ref;
	char err[1024] = "";
	cJSON *doc;
	int rc, invoice = !strcmp(x->type, "invoice");
	int (*write)(struct erp *, const char *, const cJSON *, struct erp_doc_ref *, char *, size_t);

	if (erp_connect(w))
		return export_done(w, x, "failed", 0, NULL, APS_ERR_IO, w->erp_error);
	if (!company(w, x->entity)) {
		snprintf(err, sizeof(err), "company %s is not in this ERP (%s)", x->entity,
			 w->id.product);
		return export_done(w, x, "failed", 0, NULL, APS_ERR_NOTFOUND, err);
	}
	write = invoice ? w->ops->write_invoice : w->ops->write_payment;
	if (!w->ops->lookup || !write) {
		snprintf(err, sizeof(err), "the %s connector does not write %ss into %s",
			 w->ops->scheme, x->type, w->id.product);
		return export_done(w, x, "failed", 0, NULL, APS_ERR_CONFLICT, err);
	}
	doc = cJSON_Parse(x->body);
	if (!doc)
		return export_done(w, x, "failed", 0, NULL, APS_ERR_INVAL,
				   "the journaled document is not JSON");
	memset(&ref, 0, sizeof(ref));
	rc = w->ops->lookup(w->erp, x->entity, doc, &ref, err, sizeof(err));
	if (!rc) {
		rc = export_done(w, x, "success", 1, &ref, APS_OK, NULL);
		goto out;
	}
	if (rc != APS_ERR_NOTFOUND) {
		/* After a crash mid-write, not knowing is not a reason to write again. */
		rc = export_done(w, x,
				 !strcmp(x->state, "writing") && rc != APS_ERR_BUSY &&
						 rc != APS_ERR_IO
					 ? "uncertain"
					 : "failed",
				 0, NULL, rc, err);
		goto out;
	}
	rc = export_writing(w, x->doc);
	if (rc)
		goto out;
	memset(&ref, 0, sizeof(ref));
	rc = write(w->erp, x->entity, doc, &ref, err, sizeof(err));
	if (!rc)
		rc = export_done(w, x, "success", 0, &ref, APS_OK, NULL);
	else
		rc = export_done(w, x, "failed", 0, NULL, rc, err);
out:
	cJSON_Delete(doc);
	return rc;
}

/* Every journaled document still to do, oldest first. */
static void run_exports(struct worker *w)
{
	struct export_item x;

	while (!w->a->stop && next_export(w, &x) == APS_OK) {
		int rc = run_export(w, &x);

		free(x.body);
		if (rc)
			break; /* the state database failed: tried again later */
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct agent *a = w->a;
	struct job j;
	int rc;

	erp_connect(w);
	for (;;) {
		pthread_mutex_lock(&a->mu);
		if (a->stop) {
			pthread_mutex_unlock(&a->mu);
			break;
		}
		a->jobs_changed = 0;
		pthread_mutex_unlock(&a->mu);

		run_exports(w);
		rc = next_job(w, &j);
		if (rc == APS_OK) {
			rc = run_job(w, &j);
			job_free(&j);
			if (rc == APS_OK)
				continue;
		}
		/* Nothing to do, or the ERP is away: wait for a command or retry later. */
		pause_for(w, 0, a->opts->erp_retry);
		if (!w->erp)
			erp_connect(w);
	}
	return NULL;
}

static void worker_free(struct worker *w)
{
	if (w->erp)
		w->ops->close(w->erp);
	sqlite3_finalize(w->dedup);
	sqlite3_finalize(w->tail);
	sqlite3_finalize(w->hash_scan);
	sqlite3_finalize(w->pend_ins);
	aps_arena_free(&w->arena);
	aps_batch_builder_free(&w->bb);
	aps_buf_free(&w->body);
	aps_db_close(w->db);
	aps_hasher_free(&w->hasher);
	aps_codec_free(&w->codec);
	free(w);
}

int worker__start(struct agent *a, char *err, size_t errlen)
{
	struct worker *w = calloc(1, sizeof(*w));
	int rc;

	if (!w)
		return APS_ERR_NOMEM;
	w->a = a;
	aps_codec_init(&w->codec, NULL);
	aps_codec_set_compression(&w->codec, aps_compression_parse(a->opts->compression),
				  (int)a->opts->compression_level);
	rc = state__open(a->opts->state, &w->db, err, errlen);
	if (rc)
		goto fail;
	rc = APS_ERR_DB;
	if (sqlite3_prepare_v2(w->db, "SELECT 1 FROM overlap WHERE entity=?1 AND list=?2 AND "
				      "key=?3 AND modified=?4 AND confirmed=1",
			       -1, &w->dedup, NULL) ||
	    sqlite3_prepare_v2(w->db, "INSERT OR REPLACE INTO overlap(entity, list, key, modified, "
				      "modified_ms, job, confirmed) VALUES(?1,?2,?3,?4,?5,?6,0)",
			       -1, &w->tail, NULL) ||
	    sqlite3_prepare_v2(w->db, "SELECT key, hash FROM row_hashes WHERE entity=?1 AND "
				      "list=?2 AND key>?3 AND (?4 IS NULL OR key<=?4) ORDER BY key",
			       -1, &w->hash_scan, NULL) ||
	    sqlite3_prepare_v2(w->db, "INSERT OR REPLACE INTO pending_hashes(job, list, key, "
				      "hash) VALUES(?1, ?2, ?3, ?4)",
			       -1, &w->pend_ins, NULL)) {
		snprintf(err, errlen, "state database: %s", sqlite3_errmsg(w->db));
		goto fail;
	}
	if (aps_hasher_init(&w->hasher)) {
		rc = APS_ERR_NOMEM;
		goto fail;
	}
	if (aps_plat_thread_start(&a->worker, worker_main, w)) {
		snprintf(err, errlen, "cannot start the ERP worker thread");
		rc = APS_ERR_INTERNAL;
		goto fail;
	}
	a->worker_started = 1;
	the_worker = w;
	return APS_OK;
fail:
	worker_free(w);
	return rc;
}

void worker__stop(struct agent *a)
{
	if (!a->worker_started)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->worker, NULL);
	a->worker_started = 0;
	worker_free(the_worker);
	the_worker = NULL;
}
