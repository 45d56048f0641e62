/*
 * The store writer, in two stages. The prep thread decodes each queued frame
 * (inflate, parse) and, for a BATCH, reads its rows' keys, hashes and
 * stored text straight from the JSON text (batchscan.c): work that needs no
 * store, done beside the writer. The writer:
 * one thread with its own store connection that applies the
 * agents' sequenced messages in order. It takes whatever is queued, applies
 * it in one transaction (each message in its own savepoint, so one agent's
 * bad message undoes nothing of another's), records each agent's last
 * applied seq in the same transaction, commits, and only then reports the
 * seqs to the loop thread, which acknowledges them to the agents. A message
 * whose seq was already applied is skipped: replays change nothing.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "apsync_proto.h"
#include "arena.h"
#include "batch.h"
#include "batchscan.h"
#include "broker_internal.h"
#include "err.h"
#include "log.h"
#include "util.h"

/* At most this many messages per transaction. */
#define GROUP_MAX 64
/* Decoded frames waiting for the writer (each may hold a batch's rows). */
#define READY_MAX 3
/* Preps kept for reuse, with their arena and text buffer: a batch's are
 * about a MB, which malloc maps fresh each time, and the kernel then
 * zeroes page by page as the prep thread first writes it. */
#define PREP_POOL 4
#define PREP_KEEP (8 << 20) /* a prep that held more is not kept */

/* A frame as the prep thread leaves it for the writer: its tree (for a
 * BATCH, every member but "data") and, for a BATCH, its rows ready to store.
 * Everything lives in its own arena, freed with it. */
struct ingest_prep {
	struct aps_arena arena;
	int rc;                 /* decoding failed: why says so */
	char why[240];
	struct aps_frame f;
	/* BATCH */
	int batch_rc;           /* the batch is malformed: why says so */
	struct aps_batch b;
	int ranged;
	const char *after;
	struct store_row *rows;
	int n;
	char *cols;
	uint64_t checksum;
	struct aps_buf text;    /* the rows' stored texts (malloc) */
};

struct done {
	struct done *next;
	int64_t agent_id;
	uint64_t seq;
	int err;
	int job_ended;
	char why[240];
};

/* Last applied seq per agent, as committed (the writer's own cache). */
struct rx_entry {
	int64_t agent_id;
	uint64_t rx;
};

struct ingest {
	struct broker *b;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ingest_item *head, *tail;     /* received, for the prep thread */
	struct ingest_item *ready, *ready_tail; /* decoded, for the writer */
	int nready;
	size_t queued_bytes;
	struct done *done_head, *done_tail;
	int stop;
	int started, prep_started, ckpt_started;
	pthread_t prep_thread, ckpt_thread;
	int commits;                  /* since the last checkpoint (under mu) */
	struct store *ckpt_store;     /* the checkpoint thread's connection */
	struct ingest_prep *pool[PREP_POOL]; /* under mu */
	int npool;
	/* prep thread only */
	struct aps_codec codec;
	struct batch_scanner scanner;
	/* writer thread only */
	struct store *store;
	struct rx_entry *rx;
	size_t nrx, caprx;
};

static struct rx_entry *rx_find(struct ingest *in, int64_t agent_id)
{
	struct store_agent a;
	struct rx_entry *e;
	size_t i;

	for (i = 0; i < in->nrx; i++)
		if (in->rx[i].agent_id == agent_id)
			return &in->rx[i];
	if (store_agent_get(in->store, agent_id, &a))
		return NULL;
	if (in->nrx == in->caprx) {
		size_t cap = in->caprx ? in->caprx * 2 : 16;

		e = realloc(in->rx, cap * sizeof(*e));
		if (!e)
			return NULL;
		in->rx = e;
		in->caprx = cap;
	}
	e = &in->rx[in->nrx++];
	e->agent_id = agent_id;
	e->rx = a.rx_seq;
	return e;
}

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t int_field(const cJSON *o, const char *name, int64_t dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740991.0)
		return dflt;
	return (int64_t)v->valuedouble;
}

#define WHY(...) snprintf(why, whylen, __VA_ARGS__)

/* The job a message names must be this agent's and still going. */
static int job_check(struct ingest *in, const struct ingest_item *it, int type, int64_t job_id,
		     struct store_job_ref *ref, char *why, size_t whylen)
{
	int rc = job_id > 0 ? store_job_ref(in->store, job_id, ref) : APS_ERR_NOTFOUND;

	if (rc == APS_ERR_DB)
		return rc;
	if (rc || ref->agent_id != it->agent_id) {
		WHY("%s names job %lld, which is not this SyncTool's", aps_msg_name(type),
		    (long long)job_id);
		return APS_ERR_MESSAGE;
	}
	return APS_OK;
}

static int job_active(const struct store_job_ref *ref)
{
	return !strcmp(ref->status, "dispatched") || !strcmp(ref->status, "running");
}

/* Prep thread: a BATCH's rows, keys, hashes and texts, read from its body
 * text by the batch scanner without a tree of its values. APS_ERR_JSON: the
 * body is not one JSON object. */
static int prepare_batch(struct ingest *in, struct ingest_prep *p, const char *text, char *why,
			 size_t whylen)
{
	struct batch_rows br;
	const cJSON *after;
	const char *prev;
	int i, rc;

	rc = batch_scan(&in->scanner, &p->arena, text, p->f.body_len, &br, &p->text, why, whylen);
	p->f.body = br.head; /* lives in the arena */
	if (rc)
		return rc;
	p->b = br.b;
	p->rows = br.rows;
	p->n = br.b.nrows;
	p->checksum = br.checksum;
	/* A full read names the key its batch starts after: the batch then covers
	 * a whole key range, and keys missing from it were deleted in the ERP. */
	after = cJSON_GetObjectItemCaseSensitive(br.head, "after");
	p->ranged = after != NULL;
	if (p->ranged && !(cJSON_IsNull(after) || cJSON_IsString(after))) {
		WHY("BATCH \"after\" is a key or null");
		return APS_ERR_MESSAGE;
	}
	p->after = p->ranged && cJSON_IsString(after) ? after->valuestring : NULL;
	prev = p->after;
	for (i = 0; p->ranged && i < p->n; i++) {
		if (prev && strcmp(prev, p->rows[i].key) >= 0) {
			WHY("BATCH of a full read: key \"%.60s\" does not follow \"%.60s\" in "
			    "byte order",
			    p->rows[i].key, prev);
			return APS_ERR_MESSAGE;
		}
		prev = p->rows[i].key;
	}
	p->cols = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(br.head, "cols"));
	return p->cols ? APS_OK : APS_ERR_NOMEM;
}

/* Writer: stores a prepared BATCH. */
static int apply_batch(struct ingest *in, const struct ingest_item *it, char *why, size_t whylen)
{
	struct ingest_prep *p = it->prep;
	struct store_list_counts counts = {0};
	struct store_job_ref ref;
	int rc;

	if (p->batch_rc) {
		snprintf(why, whylen, "%s", p->why);
		return p->batch_rc;
	}
	rc = job_check(in, it, p->f.type, p->b.job, &ref, why, whylen);
	if (rc || !job_active(&ref))
		return rc;
	if (p->ranged && strcmp(ref.mode, "full")) {
		WHY("BATCH \"after\" belongs to full syncs");
		return APS_ERR_MESSAGE;
	}
	counts.received = p->n;
	counts.checksum = p->checksum;
	rc = store_items_apply(in->store, ref.entity_id, p->b.list, p->b.job, p->cols, p->rows, p->n,
			       p->ranged, p->after, &counts);
	if (!rc)
		rc = store_job_list_add(in->store, p->b.job, p->b.list, &counts);
	if (rc == APS_ERR_NOTFOUND) {
		WHY("BATCH for list %s of job %lld before its LIST_BEGIN", p->b.list,
		    (long long)p->b.job);
		rc = APS_ERR_MESSAGE;
	}
	return rc;
}

/* Keys the agent found gone from the ERP by comparing row hashes (lists
 * without modification times): held items are marked deleted. */
static int apply_deleted(struct ingest *in, const struct store_job_ref *ref, int64_t job,
			 const char *list, const cJSON *keys, char *why, size_t whylen)
{
	struct store_list_counts del = {0};
	const char **k = NULL;
	const cJSON *it;
	int n = 0, rc;

	if (!aps_name_valid(list) || !cJSON_IsArray(keys) || cJSON_GetArraySize(keys) < 1 ||
	    cJSON_GetArraySize(keys) > (int)APSYNC_MAX_BATCH_ROWS) {
		WHY("ROWS_DELETED needs a list name and 1..%u keys", APSYNC_MAX_BATCH_ROWS);
		return APS_ERR_MESSAGE;
	}
	k = calloc((size_t)cJSON_GetArraySize(keys), sizeof(*k));
	if (!k)
		return APS_ERR_NOMEM;
	cJSON_ArrayForEach(it, keys) {
		if (!cJSON_IsString(it) || !it->valuestring[0] ||
		    strlen(it->valuestring) > APSYNC_MAX_KEY_LEN) {
			free(k);
			WHY("ROWS_DELETED keys are non-empty strings of at most %u bytes",
			    APSYNC_MAX_KEY_LEN);
			return APS_ERR_MESSAGE;
		}
		k[n++] = it->valuestring;
	}
	rc = store_items_delete_keys(in->store, ref->entity_id, list, job, k, n, &del.deleted);
	free(k);
	if (!rc)
		rc = store_job_list_add(in->store, job, list, &del);
	if (rc == APS_ERR_NOTFOUND) {
		WHY("ROWS_DELETED for list %s of job %lld before its LIST_BEGIN", list,
		    (long long)job);
		rc = APS_ERR_MESSAGE;
	}
	return rc;
}

/* Applies one message; *job_ended set when a job finished. */
static int apply(struct ingest *in, const struct ingest_item *it, const struct aps_frame *f,
		 int *job_ended, char *why, size_t whylen)
{
	const cJSON *body = f->body, *err;
	int64_t job = int_field(body, "job", 0), now = aps_now_ms();
	const char *list = str_field(body, "list"), *s, *code = NULL, *msg = NULL;
	struct store_job_ref ref;
	char final[16], line[600];
	int rc;

	if (f->type == APSYNC_MSG_BATCH)
		return apply_batch(in, it, why, whylen);
	if (f->type == APSYNC_MSG_EXPORT_RESULT)
		return store_doc_result(in->store, it->agent_id, body, now,
					in->b->opts->export_retry * 1000, why, whylen);
	rc = job_check(in, it, f->type, job, &ref, why, whylen);
	if (rc)
		return rc;
	if (!job_active(&ref) && f->type != APSYNC_MSG_LOG) {
		/* The broker ended the job meanwhile (cancelled, timed out). */
		log_info("job %lld: %s after the job ended (%s); ignored", (long long)job,
			 aps_msg_name(f->type), ref.status);
		return APS_OK;
	}
	err = cJSON_GetObjectItemCaseSensitive(body, "error");
	if (cJSON_IsObject(err)) {
		code = str_field(err, "code");
		msg = str_field(err, "message");
		if (!code) {
			WHY("%s error lacks a code", aps_msg_name(f->type));
			return APS_ERR_MESSAGE;
		}
	}
	switch (f->type) {
	case APSYNC_MSG_JOB_STATUS:
		s = str_field(body, "state");
		if (!s) {
			WHY("JOB_STATUS lacks a state");
			return APS_ERR_MESSAGE;
		}
		msg = str_field(body, "message");
		if (!strcmp(s, "running"))
			rc = store_job_running(in->store, job, now);
		else if (!strcmp(s, "deferred"))
			rc = store_job_reason(in->store, job, msg ? msg : "waiting for the ERP");
		if (!rc && msg)
			rc = store_job_log_add(in->store, job, now,
					       strcmp(s, "deferred") ? "info" : "warn", msg);
		return rc;
	case APSYNC_MSG_LIST_BEGIN:
		if (!aps_name_valid(list)) {
			WHY("LIST_BEGIN lacks a list name");
			return APS_ERR_MESSAGE;
		}
		rc = store_job_list_begin(in->store, job, list, int_field(body, "estimate", -1), now);
		return rc;
	case APSYNC_MSG_LIST_END:
		if (!aps_name_valid(list) || (!code && int_field(body, "count", -1) < 0)) {
			WHY("LIST_END lacks a list name or a count");
			return APS_ERR_MESSAGE;
		}
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "complete")) && !code) {
			/* The full read reached the list's end: later keys are gone. */
			struct store_list_counts del = {0};
			const cJSON *after = cJSON_GetObjectItemCaseSensitive(body, "after");

			if (strcmp(ref.mode, "full") || !(cJSON_IsNull(after) || cJSON_IsString(after))) {
				WHY("LIST_END \"complete\" belongs to full syncs, with an \"after\" key");
				return APS_ERR_MESSAGE;
			}
			rc = store_items_delete_after(in->store, ref.entity_id, list, job,
						      cJSON_IsString(after) ? after->valuestring : NULL,
						      &del.deleted);
			if (!rc)
				rc = store_job_list_add(in->store, job, list, &del);
			if (rc && rc != APS_ERR_NOTFOUND)
				return rc;
		}
		rc = store_job_list_end(in->store, job, list, int_field(body, "count", 0),
					str_field(body, "checksum"), code, msg, now);
		if (rc == APS_ERR_NOTFOUND) {
			WHY("LIST_END for list %s of job %lld before its LIST_BEGIN", list,
			    (long long)job);
			return APS_ERR_MESSAGE;
		}
		return rc;
	case APSYNC_MSG_ROWS_DELETED:
		return apply_deleted(in, &ref, job, list, cJSON_GetObjectItemCaseSensitive(body, "keys"),
				     why, whylen);
	case APSYNC_MSG_JOB_END:
		s = str_field(body, "status");
		if (!s || (strcmp(s, "success") && strcmp(s, "failed") && strcmp(s, "cancelled"))) {
			WHY("JOB_END status must be success, failed or cancelled");
			return APS_ERR_MESSAGE;
		}
		rc = store_job_end(in->store, job, s, code, msg, now, final);
		if (!rc)
			rc = store_job_result(in->store, job, now);
		if (!rc && (!strcmp(final, "success") || !strcmp(final, "partial"))) {
			/* What this sync brought may release documents on hold. */
			int released = 0;

			rc = exports__recheck(in->store, 0, ref.entity_id, now, &released);
			if (!rc && released)
				log_notice("job %lld: %d document(s) on hold can go out now",
					   (long long)job, released);
		}
		if (!rc) {
			snprintf(line, sizeof(line), "sync ended: %s%s%s", final, msg ? ": " : "",
				 msg ? msg : "");
			rc = store_job_log_add(in->store, job, now,
					       strcmp(final, "success") ? "warn" : "info", line);
			log_notice("job %lld: %s", (long long)job, line);
			*job_ended = 1;
		}
		return rc;
	case APSYNC_MSG_LOG:
		s = str_field(body, "message");
		if (!s) {
			WHY("LOG lacks a message");
			return APS_ERR_MESSAGE;
		}
		return store_job_log_add(in->store, job, int_field(body, "ts", now),
					 str_field(body, "level") ? str_field(body, "level") : "info",
					 s);
	default:
		WHY("unexpected %s", aps_msg_name(f->type));
		return APS_ERR_TYPE;
	}
}

static void post_done(struct ingest *in, struct done *d)
{
	pthread_mutex_lock(&in->mu);
	if (in->done_tail)
		in->done_tail->next = d;
	else
		in->done_head = d;
	in->done_tail = d;
	pthread_mutex_unlock(&in->mu);
}

/* Per agent in a group: its highest applied seq or its error. */
static struct done *done_for(struct done **list, int64_t agent_id)
{
	struct done *d;

	for (d = *list; d; d = d->next)
		if (d->agent_id == agent_id)
			return d;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->agent_id = agent_id;
	d->next = *list;
	*list = d;
	return d;
}

static void apply_group(struct ingest *in, struct ingest_item *group)
{
	struct done *results = NULL, *d, *next;
	struct ingest_item *it;
	struct rx_entry *rx;
	char why[240];
	int rc, ended;

	if (store_begin(in->store)) {
		rc = APS_ERR_INTERNAL;
		goto failed;
	}
	for (it = group; it; it = it->next) {
		d = done_for(&results, it->agent_id);
		rx = rx_find(in, it->agent_id);
		if (!d || !rx) {
			store_rollback(in->store);
			rc = APS_ERR_INTERNAL;
			goto failed;
		}
		if (d->err || it->seq <= rx->rx)
			continue; /* this agent failed earlier in the group, or a replay */
		ended = 0;
		why[0] = '\0';
		if (it->prep->rc) {
			d->err = it->prep->rc;
			snprintf(d->why, sizeof(d->why), "%s seq %llu: %.200s", aps_msg_name(it->type),
				 (unsigned long long)it->seq, it->prep->why);
			continue;
		}
		if (store_savepoint(in->store)) {
			store_rollback(in->store);
			rc = APS_ERR_INTERNAL;
			goto failed;
		}
		/* Anything the store or cJSON allocates for this frame goes with it. */
		aps_arena_use(&it->prep->arena);
		rc = apply(in, it, &it->prep->f, &ended, why, sizeof(why));
		aps_arena_use(NULL);
		if (!rc)
			rc = store_agent_rx_set(in->store, it->agent_id, it->seq);
		if (rc) {
			store_savepoint_rollback(in->store);
			d->err = rc == APS_ERR_DB || rc == APS_ERR_NOMEM ? APS_ERR_INTERNAL : rc;
			snprintf(d->why, sizeof(d->why), "%s seq %llu: %.200s", aps_msg_name(it->type),
				 (unsigned long long)it->seq, why[0] ? why : aps_strerror(rc));
			continue;
		}
		store_savepoint_release(in->store);
		d->seq = it->seq;
		d->job_ended |= ended;
		rx->rx = it->seq;
	}
	if (store_commit(in->store)) {
		store_rollback(in->store);
		rc = APS_ERR_INTERNAL;
		goto failed;
	}
	for (d = results; d; d = next) {
		next = d->next;
		d->next = NULL;
		post_done(in, d);
	}
	return;
failed:
	/* Nothing of the group is stored: the agents resend after reconnecting.
	 * Forget the cached seqs; they are read again from the store. */
	in->nrx = 0;
	for (d = results; d; d = next) {
		next = d->next;
		free(d);
	}
	results = NULL;
	for (it = group; it; it = it->next) {
		d = done_for(&results, it->agent_id);
		if (d) {
			d->err = APS_ERR_INTERNAL;
			snprintf(d->why, sizeof(d->why), "the broker could not store messages: %s",
				 aps_strerror(rc));
		}
	}
	log_err("store writer: a transaction of messages failed; affected agents reconnect");
	for (d = results; d; d = next) {
		next = d->next;
		d->next = NULL;
		post_done(in, d);
	}
}

static void prep_free(struct ingest_prep *p)
{
	if (!p)
		return;
	aps_arena_free(&p->arena);
	aps_buf_free(&p->text);
	free(p);
}

/* Keeps a prep for reuse, emptied, or frees it. */
static void prep_put(struct ingest *in, struct ingest_prep *p)
{
	struct aps_arena arena;
	struct aps_buf text;
	int kept = 0;

	if (!p)
		return;
	if (p->text.cap <= PREP_KEEP) {
		arena = p->arena;
		text = p->text;
		aps_arena_reset(&arena);
		text.len = 0;
		memset(p, 0, sizeof(*p));
		p->arena = arena;
		p->text = text;
		pthread_mutex_lock(&in->mu);
		if (in->npool < PREP_POOL) {
			in->pool[in->npool++] = p;
			kept = 1;
		}
		pthread_mutex_unlock(&in->mu);
	}
	if (!kept)
		prep_free(p);
}

static struct ingest_prep *prep_get(struct ingest *in)
{
	struct ingest_prep *p = NULL;

	pthread_mutex_lock(&in->mu);
	if (in->npool)
		p = in->pool[--in->npool];
	pthread_mutex_unlock(&in->mu);
	return p ? p : calloc(1, sizeof(*p));
}

static void item_free(struct ingest *in, struct ingest_item *it)
{
	prep_put(in, it->prep);
	aps_buf_free(&it->raw);
	free(it);
}

/* Prep thread: decodes one frame into its own arena. */
static struct ingest_prep *prepare(struct ingest *in, const struct ingest_item *it)
{
	struct ingest_prep *p = prep_get(in);
	int rc;

	if (!p)
		return NULL;
	aps_arena_use(&p->arena);
	if (it->type == APSYNC_MSG_BATCH) {
		const char *text = NULL;

		p->rc = aps_frame_decode_text(&in->codec, it->raw.data, it->raw.len, &p->f, &text,
					      p->why, sizeof(p->why));
		if (!p->rc) {
			rc = prepare_batch(in, p, text, p->why, sizeof(p->why));
			if (rc == APS_ERR_JSON)
				p->rc = rc; /* not one JSON object: a frame error, as for any type */
			else
				p->batch_rc = rc;
		}
	} else {
		p->rc = aps_frame_decode(&in->codec, it->raw.data, it->raw.len, &p->f, p->why,
					 sizeof(p->why));
	}
	aps_arena_use(NULL);
	return p;
}

static void *prep_main(void *arg)
{
	struct ingest *in = arg;
	struct ingest_item *it;

	for (;;) {
		pthread_mutex_lock(&in->mu);
		while (!in->stop && (!in->head || in->nready >= READY_MAX))
			pthread_cond_wait(&in->cv, &in->mu);
		if (in->stop) {
			pthread_mutex_unlock(&in->mu);
			break;
		}
		it = in->head;
		in->head = it->next;
		if (!in->head)
			in->tail = NULL;
		it->next = NULL;
		pthread_mutex_unlock(&in->mu);

		it->prep = prepare(in, it);
		if (!it->prep) {
			/* Out of memory: a prep that only says so; the agent resends. */
			it->prep = calloc(1, sizeof(*it->prep));
			if (it->prep) {
				it->prep->rc = APS_ERR_INTERNAL;
				snprintf(it->prep->why, sizeof(it->prep->why), "out of memory");
			}
		}
		pthread_mutex_lock(&in->mu);
		if (in->ready_tail)
			in->ready_tail->next = it;
		else
			in->ready = it;
		in->ready_tail = it;
		in->nready++;
		pthread_cond_broadcast(&in->cv);
		pthread_mutex_unlock(&in->mu);
	}
	return NULL;
}

/* Checkpoint thread: copies the write-ahead log into the store after the
 * writer's commits, so the writer never does that I/O inside a commit. */
static void *ckpt_main(void *arg)
{
	struct ingest *in = arg;
	struct timespec ts;
	int pages, copied;

	pthread_mutex_lock(&in->mu);
	while (!in->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (!in->commits)
			pthread_cond_timedwait(&in->cv, &in->mu, &ts);
		if (in->stop || !in->commits)
			continue;
		in->commits = 0;
		pthread_mutex_unlock(&in->mu);
		if (store_checkpoint(in->ckpt_store, &pages, &copied))
			log_err("store: a checkpoint of the write-ahead log failed");
		pthread_mutex_lock(&in->mu);
	}
	pthread_mutex_unlock(&in->mu);
	return NULL;
}

static void *writer_main(void *arg)
{
	struct ingest *in = arg;
	struct ingest_item *group, *it, *last;
	size_t bytes;
	int n;

	for (;;) {
		pthread_mutex_lock(&in->mu);
		while (!in->ready && !in->stop)
			pthread_cond_wait(&in->cv, &in->mu);
		if (!in->ready) {
			pthread_mutex_unlock(&in->mu);
			break;
		}
		group = last = in->ready;
		bytes = group->raw.len;
		for (n = 1; last->next && n < GROUP_MAX; n++) {
			last = last->next;
			bytes += last->raw.len;
		}
		in->ready = last->next;
		if (!in->ready)
			in->ready_tail = NULL;
		in->nready -= n;
		last->next = NULL;
		pthread_cond_broadcast(&in->cv); /* room for the prep thread */
		pthread_mutex_unlock(&in->mu);

		for (it = group; it; it = it->next)
			if (!it->prep)
				break;
		if (it) {
			/* a prep that could not even be allocated */
			for (it = group; it; it = it->next)
				if (!it->prep && (it->prep = calloc(1, sizeof(*it->prep))))
					it->prep->rc = APS_ERR_INTERNAL;
		}
		apply_group(in, group);

		pthread_mutex_lock(&in->mu);
		in->queued_bytes -= bytes;
		in->commits++;
		pthread_cond_broadcast(&in->cv); /* the checkpoint thread */
		pthread_mutex_unlock(&in->mu);
		while (group) {
			it = group->next;
			item_free(in, group);
			group = it;
		}
		lws_cancel_service(in->b->ctx);
	}
	return NULL;
}

int ingest__start(struct broker *b, struct ingest **out, char *err, size_t errlen)
{
	struct ingest *in = calloc(1, sizeof(*in));
	int rc;

	*out = NULL;
	if (!in)
		return APS_ERR_NOMEM;
	in->b = b;
	aps_codec_init(&in->codec, NULL);
	pthread_mutex_init(&in->mu, NULL);
	pthread_cond_init(&in->cv, NULL);
	rc = store_open(b->opts->data, &in->store, err, errlen);
	if (!rc)
		rc = store_open(b->opts->data, &in->ckpt_store, err, errlen);
	if (!rc)
		rc = store_writer_setup(in->store);
	if (rc)
		goto fail;
	if (batch_scanner_init(&in->scanner)) {
		rc = APS_ERR_NOMEM;
		goto fail;
	}
	if (pthread_create(&in->thread, NULL, writer_main, in)) {
		snprintf(err, errlen, "cannot start the store writer thread");
		rc = APS_ERR_INTERNAL;
		goto fail;
	}
	in->started = 1;
	if (pthread_create(&in->prep_thread, NULL, prep_main, in)) {
		snprintf(err, errlen, "cannot start the store's prep thread");
		rc = APS_ERR_INTERNAL;
		goto fail;
	}
	in->prep_started = 1;
	if (pthread_create(&in->ckpt_thread, NULL, ckpt_main, in)) {
		snprintf(err, errlen, "cannot start the store's checkpoint thread");
		rc = APS_ERR_INTERNAL;
		goto fail;
	}
	in->ckpt_started = 1;
	*out = in;
	return APS_OK;
fail:
	ingest__stop(in);
	return rc;
}

void ingest__stop(struct ingest *in)
{
	struct done *d;

	if (!in)
		return;
	if (in->started || in->prep_started || in->ckpt_started) {
		pthread_mutex_lock(&in->mu);
		in->stop = 1;
		pthread_cond_broadcast(&in->cv);
		pthread_mutex_unlock(&in->mu);
		if (in->ckpt_started)
			pthread_join(in->ckpt_thread, NULL);
		if (in->prep_started)
			pthread_join(in->prep_thread, NULL);
		/* the writer applies what is decoded already, then stops */
		if (in->started)
			pthread_join(in->thread, NULL);
	}
	while (in->head) {
		struct ingest_item *it = in->head;

		in->head = it->next;
		item_free(in, it);
	}
	while ((d = in->done_head)) {
		in->done_head = d->next;
		free(d);
	}
	store_close(in->store);
	store_close(in->ckpt_store);
	while (in->npool)
		prep_free(in->pool[--in->npool]);
	aps_codec_free(&in->codec);
	batch_scanner_free(&in->scanner);
	free(in->rx);
	pthread_mutex_destroy(&in->mu);
	pthread_cond_destroy(&in->cv);
	free(in);
}

void ingest__push(struct ingest *in, struct ingest_item *it)
{
	pthread_mutex_lock(&in->mu);
	it->next = NULL;
	if (in->tail)
		in->tail->next = it;
	else
		in->head = it;
	in->tail = it;
	in->queued_bytes += it->raw.len;
	pthread_cond_broadcast(&in->cv);
	pthread_mutex_unlock(&in->mu);
}

size_t ingest__queued_bytes(struct ingest *in)
{
	size_t n;

	pthread_mutex_lock(&in->mu);
	n = in->queued_bytes;
	pthread_mutex_unlock(&in->mu);
	return n;
}

void ingest__drain(struct ingest *in)
{
	struct done *list, *d;

	pthread_mutex_lock(&in->mu);
	list = in->done_head;
	in->done_head = in->done_tail = NULL;
	pthread_mutex_unlock(&in->mu);
	while ((d = list)) {
		list = d->next;
		agents__applied(in->b, d->agent_id, d->seq, d->err, d->why, d->job_ended);
		free(d);
	}
}
