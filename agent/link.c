/*
 * The agent's session with the broker, on the libwebsockets loop thread.
 *
 * Connect (resolving the broker's name each time), send HELLO with the
 * credential, the ERP's identity and the last broker seq processed; on
 * WELCOME, drop what the broker already stored from the outbox and send the
 * rest, at most a window of frames unacknowledged. Commands are recorded in
 * the state database, with the seq they carry, before they are acknowledged.
 * Heartbeats both ways; silence for `missed` beats drops the connection.
 * Between connections: jittered exponential backoff, capped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "apsync_proto.h"
#include "db.h"
#include "err.h"
#include "log.h"
#include "plat.h"
#include "service.h"
#include "util.h"

#define EXIT_CREDENTIAL 77 /* EX_NOPERM: enrolling again is the fix */

enum link_state { LINK_IDLE, LINK_CONNECTING, LINK_HELLO, LINK_READY, LINK_CLOSING };

struct link {
	struct agent *a;
	struct lws *wsi;
	enum link_state state;
	char proxy[300];        /* "host:port" of the HTTP proxy in use, for messages */
	sqlite3 *db;
	struct aps_codec codec;
	struct aps_buf rx;
	lws_sorted_usec_list_t sul_connect;
	lws_sorted_usec_list_t sul_beat;
	int connect_scheduled;
	uint16_t retry_count;
	lws_retry_bo_t retry;
	uint32_t retry_table[AGENT_BACKOFF_STEPS];
	int64_t heartbeat_ms;
	int64_t missed;
	int64_t last_rx_mono;
	uint64_t rx_seq;    /* last broker seq processed (also in meta) */
	uint64_t ack_sent;
	uint64_t acked;     /* the broker stored our frames up to this seq */
	uint64_t sent;      /* last seq written in this session */
	int want_hello;
	int hello_gen;      /* identity generation announced in this session */
	int want_beat;
	int fatal;
	char err_msg[200];
	int err_code;
	int close_status;
	int err_sent;
	char tls_err[512];
};

static struct link *the_link;

void agent__backoff_table(uint32_t *table, uint16_t *count, int64_t min_ms, int64_t max_ms)
{
	int64_t d = min_ms < 1 ? 1 : min_ms;
	uint16_t n = 0;

	while (n < AGENT_BACKOFF_STEPS) {
		table[n++] = (uint32_t)(d < max_ms ? d : max_ms);
		if (d >= max_ms)
			break;
		d *= 2;
	}
	*count = n;
}

void agent__wake_loop(struct agent *a)
{
	pthread_mutex_lock(&a->mu);
	if (a->ctx)
		lws_cancel_service(a->ctx);
	pthread_mutex_unlock(&a->mu);
}

/* ---- connecting ---- */

static void connect_now(lws_sorted_usec_list_t *sul);

static void schedule_connect(struct link *l)
{
	if (l->a->stop || l->fatal || l->connect_scheduled)
		return;
	l->connect_scheduled = 1;
	lws_retry_sul_schedule(l->a->ctx, 0, &l->sul_connect, &l->retry, connect_now,
			       &l->retry_count);
}

static void connect_now(lws_sorted_usec_list_t *sul)
{
	struct link *l = lws_container_of(sul, struct link, sul_connect);
	struct agent_cred *c = &l->a->cred;
	struct lws_client_connect_info i;

	l->connect_scheduled = 0;
	if (l->a->stop || l->wsi)
		return;
	if (c->tls.insecure)
		log_warn("TLS CERTIFICATE CHECKS ARE OFF (--insecure): anyone on the path could "
			 "pose as the broker. Use this only for a broker on this machine.");
	memset(&i, 0, sizeof(i));
	i.context = l->a->ctx;
	i.address = c->host;
	i.port = c->port;
	i.path = APSYNC_WS_PATH;
	i.host = c->host;
	i.origin = c->host;
	i.ssl_connection = agent_tls__flags(&c->tls);
	i.protocol = APSYNC_WS_SUBPROTOCOL;
	i.pwsi = &l->wsi;
	i.retry_and_idle_policy = &l->retry;
	i.userdata = l;
	l->tls_err[0] = '\0';
	l->state = LINK_CONNECTING;
	log_info("connecting to %s", c->broker);
	if (!lws_client_connect_via_info(&i)) {
		l->wsi = NULL;
		l->state = LINK_IDLE;
		log_warn("cannot start a connection to %s; retrying", c->broker);
		schedule_connect(l);
	}
}

/* ---- heartbeats ---- */

static void beat(lws_sorted_usec_list_t *sul)
{
	struct link *l = lws_container_of(sul, struct link, sul_beat);
	int64_t silent = aps_mono_ms() - l->last_rx_mono;

	if (l->state != LINK_READY || !l->wsi)
		return;
	if (silent > l->heartbeat_ms * l->missed) {
		log_warn("no word from the broker for %lld s; reconnecting", (long long)silent / 1000);
		lws_set_timeout(l->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
		return;
	}
	l->want_beat = 1;
	lws_callback_on_writable(l->wsi);
	lws_sul_schedule(l->a->ctx, 0, &l->sul_beat, beat, l->heartbeat_ms * LWS_US_PER_MS);
}

/* ---- writing ---- */

static int write_frame(struct link *l, const uint8_t *frame, size_t len)
{
	uint8_t *buf = malloc(LWS_PRE + len);
	int n;

	if (!buf)
		return -1;
	memcpy(buf + LWS_PRE, frame, len);
	aps_frame_set_ack(buf + LWS_PRE, l->rx_seq);
	n = lws_write(l->wsi, buf + LWS_PRE, len, LWS_WRITE_BINARY);
	free(buf);
	if (n < (int)len)
		return -1;
	l->ack_sent = l->rx_seq;
	return 0;
}

static int send_json(struct link *l, int type, const cJSON *body)
{
	struct aps_buf out = {0};
	int rc;

	if (aps_frame_encode_json(&l->codec, &out, (uint8_t)type, 0, l->rx_seq, body, 0)) {
		aps_buf_free(&out);
		return -1;
	}
	rc = write_frame(l, out.data, out.len);
	aps_buf_free(&out);
	return rc;
}

static int send_empty(struct link *l, int type)
{
	cJSON *o = cJSON_CreateObject();
	int rc = send_json(l, type, o);

	cJSON_Delete(o);
	return rc;
}

static int send_hello(struct link *l)
{
	struct agent *a = l->a;
	char host[256] = "", os[200] = "unknown";
	cJSON *o, *id = NULL, *ag, *it;
	int rc;

	pthread_mutex_lock(&a->mu);
	if (a->identity)
		id = cJSON_Parse(a->identity);
	l->hello_gen = a->identity_gen;
	pthread_mutex_unlock(&a->mu);
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "proto", APSYNC_PROTO_VERSION);
	cJSON_AddStringToObject(o, "credential", a->cred.credential);
	ag = cJSON_AddObjectToObject(o, "agent");
	cJSON_AddStringToObject(ag, "version", APSYNC_VERSION);
	aps_plat_os(os, sizeof(os));
	cJSON_AddStringToObject(ag, "os", os);
	aps_plat_hostname(host, sizeof(host));
	cJSON_AddStringToObject(ag, "hostname", host);
	it = id ? cJSON_DetachItemFromObjectCaseSensitive(id, "erp") : NULL;
	cJSON_AddItemToObject(o, "erp", it ? it : cJSON_CreateObject());
	it = id ? cJSON_DetachItemFromObjectCaseSensitive(id, "entities") : NULL;
	cJSON_AddItemToObject(o, "entities", it ? it : cJSON_CreateArray());
	cJSON_AddNumberToObject(o, "rx", (double)l->rx_seq);
	rc = send_json(l, APSYNC_MSG_HELLO, o);
	cJSON_Delete(o);
	cJSON_Delete(id);
	return rc;
}

/* The next outbox frame if the window allows; 1 if one was sent. */
static int send_outbox(struct link *l, int *sent)
{
	sqlite3_stmt *st = NULL;
	int64_t inflight_bytes = 0;
	int rc = 0;

	*sent = 0;
	if ((int64_t)(l->sent - l->acked) >= l->a->window_frames)
		return 0;
	if (sqlite3_prepare_v2(l->db, "SELECT coalesce(sum(length(frame)), 0) FROM outbox "
				      "WHERE seq<=?1",
			       -1, &st, NULL))
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)l->sent);
	if (sqlite3_step(st) == SQLITE_ROW)
		inflight_bytes = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (inflight_bytes >= l->a->window_bytes)
		return 0;
	if (sqlite3_prepare_v2(l->db, "SELECT seq, frame FROM outbox WHERE seq>?1 ORDER BY seq "
				      "LIMIT 1",
			       -1, &st, NULL))
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)l->sent);
	if (sqlite3_step(st) == SQLITE_ROW) {
		rc = write_frame(l, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
		if (!rc) {
			l->sent = (uint64_t)sqlite3_column_int64(st, 0);
			*sent = 1;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

static int on_writeable(struct link *l)
{
	cJSON *e;
	int sent = 0, rc;

	if (l->state == LINK_CLOSING) {
		if (!l->err_sent) {
			l->err_sent = 1;
			e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "code", aps_errcode(l->err_code));
			cJSON_AddStringToObject(e, "message", l->err_msg);
			send_json(l, APSYNC_MSG_ERROR, e);
			cJSON_Delete(e);
			lws_callback_on_writable(l->wsi);
			return 0;
		}
		lws_close_reason(l->wsi, (enum lws_close_status)l->close_status,
				 (unsigned char *)l->err_msg,
				 strlen(l->err_msg) > 120 ? 120 : strlen(l->err_msg));
		return -1;
	}
	if (l->want_hello) {
		l->want_hello = 0;
		return send_hello(l);
	}
	if (l->state != LINK_READY)
		return 0;
	if (l->want_beat) {
		l->want_beat = 0;
		rc = send_empty(l, APSYNC_MSG_HEARTBEAT);
		lws_callback_on_writable(l->wsi);
		return rc;
	}
	rc = send_outbox(l, &sent);
	if (rc)
		return -1;
	if (sent) {
		lws_callback_on_writable(l->wsi);
		return 0;
	}
	if (l->rx_seq > l->ack_sent)
		return send_empty(l, APSYNC_MSG_ACK);
	return 0;
}

/* ---- receiving ---- */

static void link_fail(struct link *l, int err, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void link_fail(struct link *l, int err, int status, const char *fmt, ...)
{
	va_list ap;

	if (l->state == LINK_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(l->err_msg, sizeof(l->err_msg), fmt, ap);
	va_end(ap);
	l->err_code = err;
	l->close_status = status;
	l->err_sent = 0;
	l->state = LINK_CLOSING;
	log_err("broker link: %s: %s", aps_errcode(err), l->err_msg);
	lws_callback_on_writable(l->wsi);
}

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t num_field(const cJSON *o, const char *name, int64_t dflt, int64_t min, int64_t max)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(v) || v->valuedouble < (double)min || v->valuedouble > (double)max)
		return dflt;
	return (int64_t)v->valuedouble;
}

static void on_ack(struct link *l, uint64_t ack)
{
	sqlite3_stmt *st = NULL;

	if (ack <= l->acked)
		return;
	if (ack > l->sent && l->state == LINK_READY) {
		link_fail(l, APS_ERR_SEQ, APSYNC_CLOSE_PROTOCOL,
			  "the broker acknowledged seq %llu, beyond the last sent (%llu)",
			  (unsigned long long)ack, (unsigned long long)l->sent);
		return;
	}
	if (!sqlite3_prepare_v2(l->db, "DELETE FROM outbox WHERE seq<=?1", -1, &st, NULL)) {
		sqlite3_bind_int64(st, 1, (int64_t)ack);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
	l->acked = ack;
	pthread_mutex_lock(&l->a->mu);
	l->a->window_changed = 1;
	pthread_cond_broadcast(&l->a->cv);
	pthread_mutex_unlock(&l->a->mu);
	lws_callback_on_writable(l->wsi);
}

static void on_welcome(struct link *l, const struct aps_frame *f)
{
	struct agent *a = l->a;
	const cJSON *win = cJSON_GetObjectItemCaseSensitive(f->body, "window");
	int64_t rx = num_field(f->body, "rx", -1, 0, INT64_MAX), tx = 0, frames = 0, bytes = 0;
	sqlite3_stmt *st = NULL;

	state__meta_get(l->db, "tx_seq", &tx);
	if (rx < 0 || rx > tx) {
		link_fail(l, APS_ERR_SEQ, APSYNC_CLOSE_PROTOCOL,
			  "WELCOME says the broker stored up to seq %lld, this agent sent only %lld",
			  (long long)rx, (long long)tx);
		return;
	}
	if (!sqlite3_prepare_v2(l->db, "DELETE FROM outbox WHERE seq<=?1", -1, &st, NULL)) {
		sqlite3_bind_int64(st, 1, rx);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
	l->acked = l->sent = (uint64_t)rx;
	l->heartbeat_ms = num_field(f->body, "heartbeat", APSYNC_DEFAULT_HEARTBEAT_S, 1, 3600) * 1000;
	pthread_mutex_lock(&a->mu);
	a->window_frames = num_field(win, "frames", APSYNC_DEFAULT_WINDOW_FRAMES, 1, 4096);
	a->window_bytes = num_field(win, "bytes", APSYNC_DEFAULT_WINDOW_BYTES, 65536, 1 << 30);
	a->window_changed = 1;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	l->state = LINK_READY;
	l->retry_count = 0;
	state__outbox_size(l->db, &frames, &bytes);
	log_notice("connected to %s as SyncTool \"%s\" (tenant %s); the broker has everything up to "
		   "seq %lld; %lld frames to send",
		   a->cred.broker, a->cred.synctool, a->cred.tenant, (long long)rx,
		   (long long)frames);
	aps_service_status("connected to %s as SyncTool \"%s\"", a->cred.broker, a->cred.synctool);
	lws_sul_schedule(a->ctx, 0, &l->sul_beat, beat, l->heartbeat_ms * LWS_US_PER_MS);
	lws_callback_on_writable(l->wsi);
}

static void on_error_frame(struct link *l, const struct aps_frame *f)
{
	const char *code = str_field(f->body, "code"), *msg = str_field(f->body, "message");
	int err = aps_err_from_code(code);

	log_err("the broker refused: %s: %s", code ? code : "?", msg ? msg : "");
	if (err == APS_ERR_AUTH || err == APS_ERR_REVOKED || err == APS_ERR_VERSION) {
		log_err("this SyncTool cannot connect until it is enrolled again: run `apsync-agent "
			"enroll --broker %s --code NEW-CODE --state %s` with a code from your "
			"administrator",
			l->a->cred.broker, l->a->opts->state);
		l->fatal = 1;
		l->a->exit_code = EXIT_CREDENTIAL;
	}
}

static int record_start(struct link *l, const struct aps_frame *f, int64_t job)
{
	const cJSON *lists = cJSON_GetObjectItemCaseSensitive(f->body, "lists");
	const cJSON *po = cJSON_GetObjectItemCaseSensitive(f->body, "po");
	sqlite3_stmt *st = NULL;
	char *lists_text = cJSON_IsArray(lists) ? cJSON_PrintUnformatted(lists) : NULL;
	int rc = APS_ERR_DB;

	if (sqlite3_prepare_v2(l->db, "INSERT OR IGNORE INTO jobs(id, entity, mode, lists, since, "
				      "fallback_since, po_enabled, po_since, received_at) "
				      "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
			       -1, &st, NULL))
		goto out;
	sqlite3_bind_int64(st, 1, job);
	aps_db_bind_text(st, 2, str_field(f->body, "entity"));
	aps_db_bind_text(st, 3, str_field(f->body, "mode"));
	aps_db_bind_text(st, 4, lists_text);
	aps_db_bind_text(st, 5, str_field(f->body, "since"));
	aps_db_bind_text(st, 6, str_field(f->body, "fallback_since"));
	sqlite3_bind_int(st, 7, !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(po, "enabled")));
	aps_db_bind_text(st, 8, str_field(po, "since"));
	sqlite3_bind_int64(st, 9, aps_now_ms());
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = APS_OK;
out:
	sqlite3_finalize(st);
	cJSON_free(lists_text);
	return rc;
}

/* A document to write: into the journal as an intent. A new attempt of a
 * document already journaled starts it again (the worker looks it up in the
 * ERP before writing anything). */
static int record_export(struct link *l, const struct aps_frame *f, int64_t doc)
{
	const cJSON *document = cJSON_GetObjectItemCaseSensitive(f->body, "document");
	sqlite3_stmt *st = NULL;
	char *text = cJSON_PrintUnformatted(document);
	int64_t now = aps_now_ms();
	int rc = APS_ERR_DB;

	if (!text || sqlite3_prepare_v2(l->db, "INSERT INTO exports(doc, entity, type, attempt, "
					       "body, state, received_at, updated_at) VALUES(?1, "
					       "?2, ?3, ?4, ?5, 'intent', ?6, ?6) ON CONFLICT(doc) "
					       "DO UPDATE SET attempt=excluded.attempt, "
					       "state='intent', updated_at=excluded.updated_at "
					       "WHERE excluded.attempt > exports.attempt AND "
					       "exports.state='done'",
					-1, &st, NULL))
		goto out;
	sqlite3_bind_int64(st, 1, doc);
	aps_db_bind_text(st, 2, str_field(f->body, "entity"));
	aps_db_bind_text(st, 3, str_field(f->body, "type"));
	sqlite3_bind_int64(st, 4, num_field(f->body, "attempt", 1, 1, INT32_MAX));
	sqlite3_bind_text(st, 5, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, now);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = APS_OK;
out:
	sqlite3_finalize(st);
	cJSON_free(text);
	return rc;
}

/* Records a command and the seq it came with, then lets the worker know. */
static void on_command(struct link *l, const struct aps_frame *f)
{
	int64_t job = num_field(f->body, "job", 0, 1, INT64_MAX);
	int64_t doc = num_field(f->body, "doc", 0, 1, INT64_MAX);
	const char *type = str_field(f->body, "type");
	const char *mode = str_field(f->body, "mode");
	const cJSON *lists = cJSON_GetObjectItemCaseSensitive(f->body, "lists");
	int rc = APS_ERR_DB;

	if (f->seq <= l->rx_seq) {
		lws_callback_on_writable(l->wsi); /* already recorded: just ack again */
		return;
	}
	if (f->seq != l->rx_seq + 1) {
		link_fail(l, APS_ERR_SEQ, APSYNC_CLOSE_PROTOCOL,
			  "command seq %llu after %llu: commands were lost",
			  (unsigned long long)f->seq, (unsigned long long)l->rx_seq);
		return;
	}
	if (f->type == APSYNC_MSG_EXPORT) {
		if (!doc || !str_field(f->body, "entity") || !type ||
		    (strcmp(type, "invoice") && strcmp(type, "payment")) ||
		    !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(f->body, "document"))) {
			link_fail(l, APS_ERR_MESSAGE, APSYNC_CLOSE_PROTOCOL,
				  "EXPORT lacks doc, entity, a type or the document");
			return;
		}
	} else if (!job || (f->type == APSYNC_MSG_SYNC_START &&
			    (!str_field(f->body, "entity") || !mode ||
			     (strcmp(mode, "full") && strcmp(mode, "partial")))) ||
		   (f->type == APSYNC_MSG_JOB_RESULT && !cJSON_IsObject(lists))) {
		link_fail(l, APS_ERR_MESSAGE, APSYNC_CLOSE_PROTOCOL,
			  "%s lacks job, entity, a known mode or lists", aps_msg_name(f->type));
		return;
	}
	if (aps_db_begin(l->db))
		goto out;
	if (f->type == APSYNC_MSG_EXPORT) {
		rc = record_export(l, f, doc);
	} else if (f->type == APSYNC_MSG_SYNC_START) {
		rc = record_start(l, f, job);
	} else {
		rc = state__apply_result(l->db, job, lists, l->a->opts->cursor_overlap);
	}
	if (rc || state__meta_set(l->db, "rx_seq", (int64_t)f->seq) || aps_db_commit(l->db)) {
		rc = APS_ERR_DB;
		goto out;
	}
	l->rx_seq = f->seq;
	if (f->type == APSYNC_MSG_EXPORT)
		log_notice("document %lld: EXPORT %s (attempt %lld)", (long long)doc, type,
			   (long long)num_field(f->body, "attempt", 1, 1, INT32_MAX));
	else
		log_notice("job %lld: %s %s", (long long)job, aps_msg_name(f->type),
			   mode ? mode
			   : str_field(f->body, "status") ? str_field(f->body, "status")
							   : "");
	pthread_mutex_lock(&l->a->mu);
	l->a->jobs_changed = 1;
	pthread_cond_broadcast(&l->a->cv);
	pthread_mutex_unlock(&l->a->mu);
	lws_callback_on_writable(l->wsi);
out:
	if (rc) {
		aps_db_rollback(l->db);
		link_fail(l, APS_ERR_INTERNAL, APSYNC_CLOSE_INTERNAL,
			  "cannot record the command in the state database: %s",
			  sqlite3_errmsg(l->db));
	}
}

static void on_message(struct link *l)
{
	struct aps_frame f;
	char why[200];
	int rc;

	rc = aps_frame_decode(&l->codec, l->rx.data, l->rx.len, &f, why, sizeof(why));
	l->rx.len = 0;
	if (rc) {
		link_fail(l, rc,
			  rc == APS_ERR_TOO_BIG || rc == APS_ERR_INFLATED_TOO_BIG || rc == APS_ERR_RATIO
				  ? APSYNC_CLOSE_TOO_BIG
				  : APSYNC_CLOSE_PROTOCOL,
			  "bad frame from the broker: %s", why);
		return;
	}
	l->last_rx_mono = aps_mono_ms();
	if (f.type == APSYNC_MSG_ERROR) {
		on_error_frame(l, &f);
	} else if (l->state == LINK_HELLO) {
		if (f.type == APSYNC_MSG_WELCOME)
			on_welcome(l, &f);
		else
			link_fail(l, APS_ERR_TYPE, APSYNC_CLOSE_PROTOCOL,
				  "expected WELCOME, got %s", aps_msg_name(f.type));
	} else if (l->state == LINK_READY) {
		on_ack(l, f.ack);
		switch (f.type) {
		case APSYNC_MSG_HEARTBEAT:
		case APSYNC_MSG_ACK:
			break;
		case APSYNC_MSG_SYNC_START:
		case APSYNC_MSG_JOB_RESULT:
		case APSYNC_MSG_EXPORT:
			if (l->state == LINK_READY)
				on_command(l, &f);
			break;
		default:
			link_fail(l, APS_ERR_TYPE, APSYNC_CLOSE_PROTOCOL,
				  "%s is not a message a broker sends", aps_msg_name(f.type));
		}
	}
	aps_frame_clear(&f);
}

static int on_receive(struct link *l, const void *in, size_t len)
{
	if (l->state == LINK_CLOSING)
		return 0;
	if (!lws_frame_is_binary(l->wsi)) {
		link_fail(l, APS_ERR_MAGIC, APSYNC_CLOSE_PROTOCOL,
			  "the broker sent a text message; not an apsync frame");
		return 0;
	}
	if (l->rx.len + len > l->codec.lim.max_frame) {
		link_fail(l, APS_ERR_TOO_BIG, APSYNC_CLOSE_TOO_BIG,
			  "the broker sent a message longer than %u bytes", l->codec.lim.max_frame);
		return 0;
	}
	if (aps_buf_append(&l->rx, in, len))
		return -1;
	if (lws_is_final_fragment(l->wsi) && !lws_remaining_packet_payload(l->wsi))
		on_message(l);
	return 0;
}

static void on_closed(struct link *l, const char *why)
{
	l->wsi = NULL;
	l->state = LINK_IDLE;
	l->want_hello = l->want_beat = 0;
	aps_buf_free(&l->rx);
	lws_sul_cancel(&l->sul_beat);
	if (l->fatal) {
		l->a->stop = 1;
		return;
	}
	if (!l->a->stop) {
		log_warn("broker link down%s%s; reconnecting", why ? ": " : "", why ? why : "");
		aps_service_status("broker link down; reconnecting");
		schedule_connect(l);
	}
}

static int link_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			 size_t len)
{
	struct link *l = the_link;
	char err[1200];

	if (!l)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
		/* the explanation of a refusal is kept for the connection error */
		return agent_tls__verify(&l->a->cred.tls, user, (int)len, l->tls_err,
					 sizeof(l->tls_err));
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		snprintf(err, sizeof(err), "cannot connect to %s%s%s: %.300s", l->a->cred.broker,
			 l->proxy[0] ? " through the HTTP proxy " : "", l->proxy,
			 l->tls_err[0] ? l->tls_err : in ? (const char *)in : "unknown error");
		on_closed(l, err);
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		l->state = LINK_HELLO;
		l->want_hello = 1;
		l->err_sent = 0;
		l->last_rx_mono = aps_mono_ms();
		lws_callback_on_writable(wsi);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return on_receive(l, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(l);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2) {
			int code = ((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1];

			log_info("the broker closed the session: %d %.*s", code, (int)len - 2,
				 (const char *)in + 2);
			if (code == APSYNC_CLOSE_AUTH || code == APSYNC_CLOSE_VERSION) {
				l->fatal = 1;
				l->a->exit_code = EXIT_CREDENTIAL;
			}
		}
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		on_closed(l, NULL);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (l->a->stop)
			return 0;
		pthread_mutex_lock(&l->a->mu);
		if (l->a->identity_ready && l->state == LINK_IDLE && !l->wsi)
			schedule_connect(l);
		if (l->wsi && l->state == LINK_READY && l->hello_gen != l->a->identity_gen) {
			/* The ERP came back or changed: reconnect to announce it. */
			log_notice("the ERP's identity changed; reconnecting to announce it");
			snprintf(l->err_msg, sizeof(l->err_msg), "announcing a new ERP identity");
			l->close_status = LWS_CLOSE_STATUS_NORMAL;
			l->err_sent = 1; /* a clean close, no ERROR */
			l->state = LINK_CLOSING;
			lws_callback_on_writable(l->wsi);
		}
		pthread_mutex_unlock(&l->a->mu);
		if (l->wsi && l->state == LINK_READY)
			lws_callback_on_writable(l->wsi);
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols link_protocols[] = {
	{.name = APSYNC_WS_SUBPROTOCOL, .callback = link_callback, .rx_buffer_size = 65536},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The proxy to reach the broker through: --proxy, else the environment's
 * HTTPS_PROXY / HTTP_PROXY unless NO_PROXY covers the broker. libwebsockets
 * reads http_proxy by itself: it is cleared when the broker goes direct. */
static int proxy_setup(struct agent *a, struct lws_context_creation_info *info, char *addr,
		       size_t addrlen)
{
	const char *spec, *at;
	char err[300];
	unsigned port;
	int bypassed;

	spec = agent__proxy_spec(a->opts->proxy, a->cred.host, &bypassed);
	if (bypassed)
		log_info("NO_PROXY covers %s: connecting directly", a->cred.host);
	unsetenv("http_proxy");
	if (!spec)
		return APS_OK;
	if (agent__parse_proxy(spec, addr, addrlen, &port, err, sizeof(err))) {
		log_err("%s", err);
		return APS_ERR_INVAL;
	}
	info->http_proxy_address = addr;
	info->http_proxy_port = port;
	at = strchr(addr, '@');
	snprintf(the_link->proxy, sizeof(the_link->proxy), "%.250s:%u", at ? at + 1 : addr, port);
	log_notice("reaching the broker through the HTTP proxy %s:%u%s", at ? at + 1 : addr, port,
		   at ? " (with credentials)" : "");
	return APS_OK;
}

int link__run(struct agent *a)
{
	char proxy[512];
	struct lws_context_creation_info info;
	struct lws_context *ctx;
	struct link l;
	char err[512];
	int64_t rx = 0;
	int rc = 1;

	memset(&l, 0, sizeof(l));
	l.a = a;
	l.missed = APSYNC_DEFAULT_MISSED_BEATS;
	l.heartbeat_ms = APSYNC_DEFAULT_HEARTBEAT_S * 1000;
	aps_codec_init(&l.codec, NULL);
	if (state__open(a->opts->state, &l.db, err, sizeof(err))) {
		log_err("%s", err);
		goto out;
	}
	state__meta_get(l.db, "rx_seq", &rx);
	l.rx_seq = (uint64_t)rx;
	agent__backoff_table(l.retry_table, &l.retry.retry_ms_table_count, a->opts->reconnect_min,
			     a->opts->reconnect_max);
	l.retry.retry_ms_table = l.retry_table;
	l.retry.conceal_count = LWS_RETRY_CONCEAL_ALWAYS;
	l.retry.jitter_percent = 30;
	the_link = &l;

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = link_protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.client_ssl_ca_filepath = agent_tls__ca_file(&a->cred.tls);
	info.user = a;
	info.timeout_secs = 30;
	info.connect_timeout_secs = 20;
	if (proxy_setup(a, &info, proxy, sizeof(proxy)))
		goto out;
	aps_log_route_lws();
	ctx = lws_create_context(&info);
	pthread_mutex_lock(&a->mu);
	a->ctx = ctx;
	pthread_mutex_unlock(&a->mu);
	if (!ctx) {
		log_err("cannot set up the network layer (TLS CA file %s?)",
			info.client_ssl_ca_filepath ? info.client_ssl_ca_filepath : "none");
		goto out;
	}
	pthread_mutex_lock(&a->mu);
	if (a->identity_ready)
		schedule_connect(&l);
	pthread_mutex_unlock(&a->mu);
	aps_service_ready("running; broker %s", a->cred.broker);
	aps_service_watchdog_start(ctx);
	while (!a->stop) {
		if (lws_service(a->ctx, 0) < 0)
			break;
		aps_log_reload_poll();
	}
	rc = 0;
out:
	aps_service_stopping();
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_broadcast(&a->cv);
	ctx = a->ctx;
	a->ctx = NULL; /* under mu: the worker no longer wakes this context */
	pthread_mutex_unlock(&a->mu);
	if (ctx) {
		lws_sul_cancel(&l.sul_connect);
		lws_sul_cancel(&l.sul_beat);
		lws_context_destroy(ctx);
	}
	the_link = NULL;
	aps_db_close(l.db);
	aps_buf_free(&l.rx);
	aps_codec_free(&l.codec);
	return rc;
}
