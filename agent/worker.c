/*
 * The ERP worker: one thread that owns the ERP connection. It reports the
 * ERP's identity for HELLO, and runs the sync jobs the broker sent, one at a
 * time, oldest first: each list is read locally in pages in key order and
 * streamed into the outbox as compressed, sequenced batches. Every batch is
 * committed together with the job's resume point (last key, running count
 * and checksum), so a job interrupted at any point resumes from its outbox's
 * end and the broker receives every row exactly once. The outbox is bounded
 * by the window the broker announced: the worker waits when it is full, so
 * memory stays flat whatever the list's size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "agent_internal.h"
#include "apsync_proto.h"
#include "batch.h"
#include "db.h"
#include "err.h"
#include "log.h"
#include "util.h"

struct worker {
	struct agent *a;
	sqlite3 *db;
	struct aps_codec codec;
	const struct erp_ops *ops;
	struct erp *erp;
	struct erp_identity id;
	char erp_error[512];
	EVP_MD_CTX *md;
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
	int rc;

	if (w->erp)
		return APS_OK;
	rc = erp_open(w->a->opts->erp, &w->ops, &w->erp, w->erp_error, sizeof(w->erp_error));
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

/* ---- waiting ---- */

/* Waits until the outbox has room (or the agent stops). */
static int wait_window(struct worker *w)
{
	int64_t frames, bytes;
	struct agent *a = w->a;

	for (;;) {
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
		if (!a->window_changed)
			pthread_cond_wait(&a->cv, &a->mu);
		a->window_changed = 0;
		pthread_mutex_unlock(&a->mu);
	}
}

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

/* ---- producing frames ---- */

/* Adds one frame to the outbox and applies `progress_sql` (bound ?1 = job)
 * to the job, in one transaction. */
static int produce(struct worker *w, int type, const cJSON *body, int level, int64_t job,
		   const char *progress_sql, const char *key, int64_t count, uint64_t checksum)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = aps_db_begin(w->db);
	if (rc)
		return rc;
	rc = state__outbox_add(w->db, &w->codec, type, body, level, NULL);
	if (rc)
		goto out;
	if (progress_sql) {
		rc = APS_ERR_DB;
		if (sqlite3_prepare_v2(w->db, progress_sql, -1, &st, NULL))
			goto out;
		sqlite3_bind_int64(st, 1, job);
		if (sqlite3_bind_parameter_count(st) >= 2)
			aps_db_bind_text(st, 2, key);
		if (sqlite3_bind_parameter_count(st) >= 3)
			sqlite3_bind_int64(st, 3, count);
		if (sqlite3_bind_parameter_count(st) >= 4)
			sqlite3_bind_int64(st, 4, (int64_t)checksum);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
	}
	rc = aps_db_commit(w->db);
out:
	sqlite3_finalize(st);
	if (rc) {
		log_err("state: cannot record progress: %s", sqlite3_errmsg(w->db));
		aps_db_rollback(w->db);
	} else {
		agent__wake_loop(w->a);
	}
	return rc;
}

static cJSON *job_body(int64_t job)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "job", (double)job);
	return o;
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
	cJSON *o = code ? error_body(job, NULL, code, msg) : job_body(job);
	int rc;

	cJSON_AddStringToObject(o, "status", status);
	rc = produce(w, APSYNC_MSG_JOB_END, o, 0, job,
		     "UPDATE jobs SET state='done', finished_at=strftime('%s','now')*1000 "
		     "WHERE id=?1",
		     NULL, 0, 0);
	cJSON_Delete(o);
	if (!rc)
		log_notice("job %lld: ended %s%s%s", (long long)job, status, msg ? ": " : "",
			   msg ? msg : "");
	return rc;
}

/* The row reader's state for one batch. */
struct reader {
	struct worker *w;
	struct aps_batch_builder bb;
	const struct erp_list *list;
	int64_t count;
	uint64_t checksum;
	char last_key[APSYNC_MAX_KEY_LEN + 1];
	int err;
};

static int on_row(void *ud, cJSON **vals)
{
	struct reader *r = ud;
	const cJSON *key = vals[0];
	int i;

	for (i = 0; i < r->list->ncols; i++)
		if (!strcmp(r->list->cols[i], r->list->key))
			key = vals[i];
	if (!cJSON_IsString(key) || !key->valuestring[0] ||
	    strlen(key->valuestring) > APSYNC_MAX_KEY_LEN) {
		for (i = 0; i < r->list->ncols; i++)
			cJSON_Delete(vals[i]);
		r->err = APS_ERR_ERP;
		return 1;
	}
	snprintf(r->last_key, sizeof(r->last_key), "%s", key->valuestring);
	r->checksum += aps_row_hash(r->w->md, (const cJSON *const *)vals, r->list->ncols);
	r->count++;
	if (aps_batch_builder_add(&r->bb, vals)) {
		r->err = APS_ERR_NOMEM;
		return 1;
	}
	return 0;
}

/* Reports a list that could not be read; the run goes on with the next. */
static int list_failed(struct worker *w, int64_t job, const struct erp_list *l, int rc,
		       const char *why, int64_t count)
{
	cJSON *body = error_body(job, l->name, aps_errcode(rc), why);

	cJSON_AddNumberToObject(body, "count", (double)count);
	rc = produce(w, APSYNC_MSG_LIST_END, body, 0, job,
		     "UPDATE jobs SET list_index=list_index+1, list_begun=0, last_key=NULL, "
		     "list_count=0, list_checksum=0 WHERE id=?1",
		     NULL, 0, 0);
	cJSON_Delete(body);
	log_err("job %lld: list %s failed: %s", (long long)job, l->name, why);
	return rc;
}

/* Reads one list from its resume point to its end, one batch per round. */
static int run_list(struct worker *w, int64_t job, const char *entity, const struct erp_list *l,
		    const char *resume_key, int64_t count, uint64_t checksum)
{
	struct agent_opts *o = w->a->opts;
	struct erp_read req = {0};
	struct reader r;
	char err[512], key[APSYNC_MAX_KEY_LEN + 1], sum[17];
	cJSON *body;
	int64_t t0 = aps_mono_ms(), start_count = count;
	int nread, rc, end = 0;

	snprintf(key, sizeof(key), "%s", resume_key ? resume_key : "");
	while (!end) {
		rc = wait_window(w);
		if (rc)
			return rc;
		if (cancelled(w, job))
			return APS_ERR_CONFLICT;
		memset(&r, 0, sizeof(r));
		r.w = w;
		r.list = l;
		rc = aps_batch_builder_init(&r.bb, job, l->name, l->key, l->cols, l->ncols);
		if (rc)
			return rc;
		/* Fill the batch up to its row and byte bounds, page by page. */
		while (r.bb.nrows < o->batch_rows && r.bb.approx_bytes < (size_t)o->batch_bytes) {
			req.company = entity;
			req.list = l->name;
			req.order = ERP_ORDER_KEY;
			req.after_key = key[0] ? key : NULL;
			req.limit = (int)(o->batch_rows - r.bb.nrows);
			nread = 0;
			rc = w->ops->read(w->erp, &req, on_row, &r, &nread, err, sizeof(err));
			if (!rc && r.err) {
				rc = r.err;
				snprintf(err, sizeof(err), "the ERP returned a row without a valid key");
			}
			if (rc) {
				aps_batch_builder_free(&r.bb);
				return list_failed(w, job, l, rc, err, count);
			}
			if (nread)
				snprintf(key, sizeof(key), "%s", r.last_key);
			if (nread < req.limit) {
				end = 1;
				break;
			}
		}
		if (!r.bb.nrows) {
			aps_batch_builder_free(&r.bb);
			continue;
		}
		count += r.count;
		checksum += r.checksum;
		body = aps_batch_builder_take(&r.bb);
		rc = produce(w, APSYNC_MSG_BATCH, body, (int)o->deflate_level, job,
			     "UPDATE jobs SET last_key=?2, list_count=?3, list_checksum=?4 "
			     "WHERE id=?1",
			     key, count, checksum);
		cJSON_Delete(body);
		if (rc)
			return rc;
	}
	body = job_body(job);
	aps_checksum_hex(checksum, sum);
	cJSON_AddStringToObject(body, "list", l->name);
	cJSON_AddNumberToObject(body, "count", (double)count);
	cJSON_AddStringToObject(body, "checksum", sum);
	rc = produce(w, APSYNC_MSG_LIST_END, body, 0, job,
		     "UPDATE jobs SET list_index=list_index+1, list_begun=0, last_key=NULL, "
		     "list_count=0, list_checksum=0 WHERE id=?1",
		     NULL, 0, 0);
	cJSON_Delete(body);
	log_info("job %lld: list %s: %lld rows (%lld in this run) in %lld ms", (long long)job,
		 l->name, (long long)count, (long long)(count - start_count),
		 (long long)(aps_mono_ms() - t0));
	return rc;
}

/* ---- jobs ---- */

struct job {
	int64_t id;
	char entity[APSYNC_MAX_NAME_LEN + 1];
	char mode[16];
	char *lists;       /* requested, JSON */
	char *plan;        /* fixed when the job starts, JSON */
	char state[16];
	int64_t list_index;
	int list_begun;
	char *last_key;
	int64_t list_count;
	uint64_t list_checksum;
};

static void job_free(struct job *j)
{
	free(j->lists);
	free(j->plan);
	free(j->last_key);
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
	if (sqlite3_prepare_v2(w->db, "SELECT id, entity, mode, lists, plan, state, list_index, "
				      "list_begun, last_key, list_count, list_checksum FROM jobs "
				      "WHERE state IN ('pending', 'running') ORDER BY id LIMIT 1",
			       -1, &st, NULL))
		return APS_ERR_DB;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		j->id = sqlite3_column_int64(st, 0);
		snprintf(j->entity, sizeof(j->entity), "%s", sqlite3_column_text(st, 1));
		snprintf(j->mode, sizeof(j->mode), "%s", sqlite3_column_text(st, 2));
		j->lists = col_dup(st, 3);
		j->plan = col_dup(st, 4);
		snprintf(j->state, sizeof(j->state), "%s", sqlite3_column_text(st, 5));
		j->list_index = sqlite3_column_int64(st, 6);
		j->list_begun = sqlite3_column_int(st, 7);
		j->last_key = col_dup(st, 8);
		j->list_count = sqlite3_column_int64(st, 9);
		j->list_checksum = (uint64_t)sqlite3_column_int64(st, 10);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? APS_OK : rc == SQLITE_DONE ? APS_ERR_NOTFOUND : APS_ERR_DB;
}

/* The lists a job reads: the requested ones (or all) the company offers, in
 * canonical order; requested lists it lacks are reported as failed. */
static cJSON *make_plan(const struct erp_company *c, const char *requested, cJSON **missing)
{
	cJSON *want = requested ? cJSON_Parse(requested) : NULL, *plan = cJSON_CreateArray(), *it;
	int i, j, offered;

	*missing = cJSON_CreateArray();
	for (i = 0; erp_lists[i]; i++) {
		offered = 0;
		for (j = 0; j < c->nlists; j++)
			if (!strcmp(c->lists[j], erp_lists[i]->name))
				offered = 1;
		if (!offered)
			continue;
		if (want) {
			offered = 0;
			cJSON_ArrayForEach(it, want)
				if (cJSON_IsString(it) && !strcmp(it->valuestring, erp_lists[i]->name))
					offered = 1;
		}
		if (offered)
			cJSON_AddItemToArray(plan, cJSON_CreateString(erp_lists[i]->name));
	}
	cJSON_ArrayForEach(it, want) {
		int found = 0;

		for (j = 0; cJSON_IsString(it) && j < c->nlists; j++)
			if (!strcmp(c->lists[j], it->valuestring))
				found = 1;
		if (!found && cJSON_IsString(it))
			cJSON_AddItemToArray(*missing, cJSON_CreateString(it->valuestring));
	}
	cJSON_Delete(want);
	return plan;
}

static int start_job(struct worker *w, struct job *j, const struct erp_company *c)
{
	cJSON *plan, *missing, *body, *it;
	char *text;
	char msg[300];
	int rc;

	plan = make_plan(c, j->lists, &missing);
	text = cJSON_PrintUnformatted(plan);
	body = job_body(j->id);
	cJSON_AddStringToObject(body, "state", "running");
	snprintf(msg, sizeof(msg), "SyncTool started the %s sync of %d list(s)", j->mode,
		 cJSON_GetArraySize(plan));
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
		sqlite3_stmt *st = NULL;

		rc = APS_ERR_DB;
		if (!sqlite3_prepare_v2(w->db, "UPDATE jobs SET state='running', plan=?2, "
					       "started_at=strftime('%s','now')*1000 WHERE id=?1",
					-1, &st, NULL)) {
			sqlite3_bind_int64(st, 1, j->id);
			sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
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
	j->plan = text ? strdup(text) : NULL;
	cJSON_free(text);
	cJSON_Delete(body);
	cJSON_Delete(plan);
	cJSON_Delete(missing);
	return rc;
}

static int run_job(struct worker *w, struct job *j)
{
	const struct erp_company *c;
	const struct erp_list *l;
	cJSON *plan, *name, *body;
	char msg[600];
	int64_t n, estimate;
	int rc;

	if (erp_connect(w)) {
		/* The job waits for the ERP; the broker sees the reason in HELLO. */
		return APS_ERR_BUSY;
	}
	c = company(w, j->entity);
	if (!c) {
		snprintf(msg, sizeof(msg), "company %s is not in this ERP (%s)", j->entity,
			 w->id.product);
		return job_end(w, j->id, "failed", "unknown_entity", msg);
	}
	if (!strcmp(j->state, "pending")) {
		if (cancelled(w, j->id))
			return job_end(w, j->id, "cancelled", NULL, NULL);
		rc = start_job(w, j, c);
		if (rc)
			return rc;
		log_notice("job %lld: %s sync of %s started", (long long)j->id, j->mode, j->entity);
	} else {
		log_notice("job %lld: resuming at list %lld%s%s", (long long)j->id,
			   (long long)j->list_index, j->last_key ? " after key " : "",
			   j->last_key ? j->last_key : "");
	}
	plan = j->plan ? cJSON_Parse(j->plan) : NULL;
	if (!plan)
		return job_end(w, j->id, "failed", "internal", "the job's list plan is damaged");
	for (; j->list_index < cJSON_GetArraySize(plan); j->list_index++) {
		name = cJSON_GetArrayItem(plan, (int)j->list_index);
		l = cJSON_IsString(name) ? erp_list_find(name->valuestring) : NULL;
		if (!l)
			continue;
		if (cancelled(w, j->id)) {
			cJSON_Delete(plan);
			return job_end(w, j->id, "cancelled", NULL, NULL);
		}
		if (!j->list_begun) {
			estimate = -1;
			if (w->ops->count(w->erp, c->code, l->name, &n, msg, sizeof(msg)) == APS_OK)
				estimate = n;
			body = job_body(j->id);
			cJSON_AddStringToObject(body, "list", l->name);
			if (estimate >= 0)
				cJSON_AddNumberToObject(body, "estimate", (double)estimate);
			rc = produce(w, APSYNC_MSG_LIST_BEGIN, body, 0, j->id,
				     "UPDATE jobs SET list_begun=1, last_key=NULL, list_count=0, "
				     "list_checksum=0 WHERE id=?1",
				     NULL, 0, 0);
			cJSON_Delete(body);
			if (rc)
				break;
			j->list_begun = 1;
			free(j->last_key);
			j->last_key = NULL;
			j->list_count = 0;
			j->list_checksum = 0;
		}
		rc = run_list(w, j->id, c->code, l, j->last_key, j->list_count, j->list_checksum);
		free(j->last_key);
		j->last_key = NULL;
		j->list_count = 0;
		j->list_checksum = 0;
		j->list_begun = 0;
		if (rc == APS_ERR_CONFLICT && cancelled(w, j->id)) {
			cJSON_Delete(plan);
			return job_end(w, j->id, "cancelled", NULL, NULL);
		}
		if (rc) {
			cJSON_Delete(plan);
			return rc; /* stopping, or the state database failed */
		}
	}
	cJSON_Delete(plan);
	return job_end(w, j->id, "success", NULL, NULL);
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

		rc = next_job(w, &j);
		if (rc == APS_OK) {
			rc = run_job(w, &j);
			job_free(&j);
			if (rc == APS_OK)
				continue;
		}
		/* Nothing to do, or the ERP is away: wait for a command or retry later. */
		pthread_mutex_lock(&a->mu);
		if (!a->stop && !a->jobs_changed) {
			struct timespec ts;

			int64_t ns;

			clock_gettime(CLOCK_REALTIME, &ts);
			ns = ts.tv_nsec + (a->opts->erp_retry % 1000) * 1000000;
			ts.tv_sec += a->opts->erp_retry / 1000 + ns / 1000000000;
			ts.tv_nsec = ns % 1000000000;
			pthread_cond_timedwait(&a->cv, &a->mu, &ts);
		}
		pthread_mutex_unlock(&a->mu);
		if (!w->erp)
			erp_connect(w);
	}
	return NULL;
}

int worker__start(struct agent *a, char *err, size_t errlen)
{
	struct worker *w = calloc(1, sizeof(*w));
	int rc;

	if (!w)
		return APS_ERR_NOMEM;
	w->a = a;
	aps_codec_init(&w->codec, NULL);
	rc = state__open(a->opts->state, &w->db, err, errlen);
	if (rc)
		goto fail;
	w->md = EVP_MD_CTX_new();
	if (!w->md) {
		rc = APS_ERR_NOMEM;
		goto fail;
	}
	if (pthread_create(&a->worker, NULL, worker_main, w)) {
		snprintf(err, errlen, "cannot start the ERP worker thread");
		rc = APS_ERR_INTERNAL;
		goto fail;
	}
	a->worker_started = 1;
	the_worker = w;
	return APS_OK;
fail:
	aps_db_close(w->db);
	EVP_MD_CTX_free(w->md);
	aps_codec_free(&w->codec);
	free(w);
	return rc;
}

void worker__stop(struct agent *a)
{
	struct worker *w = the_worker;

	if (!a->worker_started)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->worker, NULL);
	a->worker_started = 0;
	if (w->erp)
		w->ops->close(w->erp);
	aps_db_close(w->db);
	EVP_MD_CTX_free(w->md);
	aps_codec_free(&w->codec);
	free(w);
	the_worker = NULL;
}
