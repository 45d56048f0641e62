/*
 * The store writer: one thread with its own store connection that applies the
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

#include <openssl/evp.h>

#include "apsync_proto.h"
#include "batch.h"
#include "broker_internal.h"
#include "err.h"
#include "log.h"
#include "util.h"

/* At most this many messages per transaction. */
#define GROUP_MAX 64

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
	struct ingest_item *head, *tail;
	size_t queued_bytes;
	struct done *done_head, *done_tail;
	int stop;
	int started;
	/* writer thread only */
	struct store *store;
	EVP_MD_CTX *md;
	struct aps_buf row;
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
static int job_check(struct ingest *in, const struct ingest_item *it, int64_t job_id,
		     struct store_job_ref *ref, char *why, size_t whylen)
{
	int rc = job_id > 0 ? store_job_ref(in->store, job_id, ref) : APS_ERR_NOTFOUND;

	if (rc == APS_ERR_DB)
		return rc;
	if (rc || ref->agent_id != it->agent_id) {
		WHY("%s names job %lld, which is not this SyncTool's", aps_msg_name(it->frame.type),
		    (long long)job_id);
		return APS_ERR_MESSAGE;
	}
	return APS_OK;
}

static int job_active(const struct store_job_ref *ref)
{
	return !strcmp(ref->status, "dispatched") || !strcmp(ref->status, "running");
}

static int apply_batch(struct ingest *in, const struct ingest_item *it, char *why, size_t whylen)
{
	struct store_list_counts counts = {0};
	struct store_job_ref ref;
	struct aps_batch b;
	struct aps_batch_iter iter;
	const cJSON *vals[APSYNC_MAX_COLUMNS];
	enum store_put_outcome outcome;
	int status_col = -1, modified_col = -1, i, rc;
	cJSON *obj;
	uint64_t h;

	rc = aps_batch_parse(it->frame.body, &b, why, whylen);
	if (rc)
		return rc;
	rc = job_check(in, it, b.job, &ref, why, whylen);
	if (rc || !job_active(&ref))
		return rc;
	for (i = 0; i < b.ncols; i++) {
		if (!strcmp(b.cols[i], "status"))
			status_col = i;
		else if (!strcmp(b.cols[i], "modified_at"))
			modified_col = i;
	}
	aps_batch_iter_init(&iter, &b);
	while (aps_batch_iter_next(&iter, vals)) {
		h = aps_row_hash(in->md, vals, b.ncols);
		/* The row as one JSON object, printed into a reused buffer. */
		obj = cJSON_CreateObject();
		if (!obj)
			return APS_ERR_NOMEM;
		for (i = 0; i < b.ncols; i++)
			cJSON_AddItemReferenceToObject(obj, b.cols[i], (cJSON *)vals[i]);
		while (!cJSON_PrintPreallocated(obj, (char *)in->row.data, (int)in->row.cap, 0)) {
			if (in->row.cap > APSYNC_MAX_INFLATED ||
			    aps_buf_reserve(&in->row, in->row.cap ? in->row.cap * 2 : 65536)) {
				cJSON_Delete(obj);
				return APS_ERR_NOMEM;
			}
		}
		cJSON_Delete(obj);
		rc = store_item_put(
			in->store, ref.entity_id, b.list, b.job, vals[b.key_col]->valuestring, h,
			status_col >= 0 && cJSON_IsString(vals[status_col])
				? vals[status_col]->valuestring
				: NULL,
			modified_col >= 0 && cJSON_IsString(vals[modified_col])
				? vals[modified_col]->valuestring
				: NULL,
			(const char *)in->row.data, strlen((const char *)in->row.data), &outcome);
		if (rc)
			return rc;
		counts.received++;
		counts.checksum += h;
		if (outcome == STORE_INSERTED)
			counts.inserted++;
		else if (outcome == STORE_UPDATED)
			counts.updated++;
		else
			counts.unchanged++;
	}
	rc = store_job_list_add(in->store, b.job, b.list, &counts);
	if (rc == APS_ERR_NOTFOUND) {
		WHY("BATCH for list %s of job %lld before its LIST_BEGIN", b.list, (long long)b.job);
		return APS_ERR_MESSAGE;
	}
	return rc;
}

/* Applies one message; *job_ended set when a job finished. */
static int apply(struct ingest *in, const struct ingest_item *it, int *job_ended, char *why,
		 size_t whylen)
{
	const cJSON *body = it->frame.body, *err;
	int64_t job = int_field(body, "job", 0), now = aps_now_ms();
	const char *list = str_field(body, "list"), *s, *code = NULL, *msg = NULL;
	struct store_job_ref ref;
	char final[16], line[600];
	int rc;

	if (it->frame.type == APSYNC_MSG_BATCH)
		return apply_batch(in, it, why, whylen);
	rc = job_check(in, it, job, &ref, why, whylen);
	if (rc)
		return rc;
	if (!job_active(&ref) && it->frame.type != APSYNC_MSG_LOG) {
		/* The broker ended the job meanwhile (cancelled, timed out). */
		log_info("job %lld: %s after the job ended (%s); ignored", (long long)job,
			 aps_msg_name(it->frame.type), ref.status);
		return APS_OK;
	}
	err = cJSON_GetObjectItemCaseSensitive(body, "error");
	if (cJSON_IsObject(err)) {
		code = str_field(err, "code");
		msg = str_field(err, "message");
		if (!code) {
			WHY("%s error lacks a code", aps_msg_name(it->frame.type));
			return APS_ERR_MESSAGE;
		}
	}
	switch (it->frame.type) {
	case APSYNC_MSG_JOB_STATUS:
		s = str_field(body, "state");
		if (!s) {
			WHY("JOB_STATUS lacks a state");
			return APS_ERR_MESSAGE;
		}
		if (!strcmp(s, "running"))
			rc = store_job_running(in->store, job, now);
		if (!rc && (msg = str_field(body, "message")))
			rc = store_job_log_add(in->store, job, now, "info", msg);
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
		rc = store_job_list_end(in->store, job, list, int_field(body, "count", 0),
					str_field(body, "checksum"), code, msg, now);
		if (rc == APS_ERR_NOTFOUND) {
			WHY("LIST_END for list %s of job %lld before its LIST_BEGIN", list,
			    (long long)job);
			return APS_ERR_MESSAGE;
		}
		return rc;
	case APSYNC_MSG_JOB_END:
		s = str_field(body, "status");
		if (!s || (strcmp(s, "success") && strcmp(s, "failed") && strcmp(s, "cancelled"))) {
			WHY("JOB_END status must be success, failed or cancelled");
			return APS_ERR_MESSAGE;
		}
		rc = store_job_end(in->store, job, s, code, msg, now, final);
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
		WHY("unexpected %s", aps_msg_name(it->frame.type));
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
		if (d->err || it->frame.seq <= rx->rx)
			continue; /* this agent failed earlier in the group, or a replay */
		ended = 0;
		why[0] = '\0';
		if (store_savepoint(in->store)) {
			store_rollback(in->store);
			rc = APS_ERR_INTERNAL;
			goto failed;
		}
		rc = apply(in, it, &ended, why, sizeof(why));
		if (!rc)
			rc = store_agent_rx_set(in->store, it->agent_id, it->frame.seq);
		if (rc) {
			store_savepoint_rollback(in->store);
			d->err = rc == APS_ERR_DB || rc == APS_ERR_NOMEM ? APS_ERR_INTERNAL : rc;
			snprintf(d->why, sizeof(d->why), "%s seq %llu: %.200s",
				 aps_msg_name(it->frame.type), (unsigned long long)it->frame.seq,
				 why[0] ? why : aps_strerror(rc));
			continue;
		}
		store_savepoint_release(in->store);
		d->seq = it->frame.seq;
		d->job_ended |= ended;
		rx->rx = it->frame.seq;
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

static void *writer_main(void *arg)
{
	struct ingest *in = arg;
	struct ingest_item *group, *it, *last;
	size_t bytes;
	int n;

	for (;;) {
		pthread_mutex_lock(&in->mu);
		while (!in->head && !in->stop)
			pthread_cond_wait(&in->cv, &in->mu);
		if (!in->head) {
			pthread_mutex_unlock(&in->mu);
			break;
		}
		group = last = in->head;
		bytes = group->cost;
		for (n = 1; last->next && n < GROUP_MAX; n++) {
			last = last->next;
			bytes += last->cost;
		}
		in->head = last->next;
		if (!in->head)
			in->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&in->mu);

		apply_group(in, group);

		pthread_mutex_lock(&in->mu);
		in->queued_bytes -= bytes;
		pthread_mutex_unlock(&in->mu);
		while (group) {
			it = group->next;
			aps_frame_clear(&group->frame);
			free(group);
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
	pthread_mutex_init(&in->mu, NULL);
	pthread_cond_init(&in->cv, NULL);
	rc = store_open(b->opts->data, &in->store, err, errlen);
	if (rc)
		goto fail;
	in->md = EVP_MD_CTX_new();
	if (!in->md || aps_buf_reserve(&in->row, 65536)) {
		rc = APS_ERR_NOMEM;
		goto fail;
	}
	if (pthread_create(&in->thread, NULL, writer_main, in)) {
		snprintf(err, errlen, "cannot start the store writer thread");
		rc = APS_ERR_INTERNAL;
		goto fail;
	}
	in->started = 1;
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
	if (in->started) {
		pthread_mutex_lock(&in->mu);
		in->stop = 1;
		pthread_cond_signal(&in->cv);
		pthread_mutex_unlock(&in->mu);
		pthread_join(in->thread, NULL);
	}
	while ((d = in->done_head)) {
		in->done_head = d->next;
		free(d);
	}
	store_close(in->store);
	EVP_MD_CTX_free(in->md);
	aps_buf_free(&in->row);
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
	in->queued_bytes += it->cost;
	pthread_cond_signal(&in->cv);
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
