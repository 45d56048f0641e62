/*
 * Agent sessions: the "apsync.v1" WebSocket protocol on the broker side.
 *
 * A connection starts in HELLO state: the agent must authenticate with its
 * credential in a HELLO within APSYNC_HELLO_TIMEOUT_S, in a frame no larger
 * than APSYNC_MAX_PREAUTH_FRAME. Once welcomed, sequenced messages from the
 * agent go, in order, to the store writer (ingest.c); the ack the broker
 * sends back only ever covers what the writer has committed. Messages to the
 * agent come from its outbox in the store and are resent after a reconnect
 * until the agent acknowledges them.
 *
 * Everything here runs on the libwebsockets loop thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apsync_proto.h"
#include "batch.h"
#include "broker_internal.h"
#include "err.h"
#include "log.h"
#include "util.h"

enum conn_state { CONN_HELLO, CONN_READY, CONN_CLOSING };

struct agent_conn {
	struct lws *wsi;
	struct broker *b;
	enum conn_state state;
	int64_t agent_id;
	int64_t tenant_id;
	char name[128];
	char remote[64];
	uint64_t rx_queued;     /* last agent seq handed to the store writer */
	uint64_t rx_durable;    /* last agent seq committed: what we ack */
	uint64_t ack_sent;      /* last ack value written */
	uint64_t tx_sent;       /* last broker seq written */
	uint64_t peer_ack;      /* agent acknowledged broker seqs up to this */
	int64_t connected_mono;
	int64_t last_rx_mono;
	int64_t last_check_mono;
	struct aps_buf rx;      /* message being reassembled */
	cJSON *welcome;         /* WELCOME to send */
	int want_heartbeat;
	int flow_off;           /* reading paused: the store writer is behind */
	/* an error to report before closing */
	int err;
	char err_msg[200];
	int close_status;
	int err_sent;
	struct agent_conn *hnext;           /* in the agent id hash table */
	struct agent_conn *prev, *next;     /* in the list of all sessions */
};

static struct agent_conn *all_conns;

/* ---- agent id → live session ---- */

static size_t bucket(const struct broker *b, int64_t id)
{
	return (size_t)((uint64_t)id * 0x9E3779B97F4A7C15ull >> 7) & (b->agents_cap - 1);
}

static struct agent_conn *map_get(struct broker *b, int64_t id)
{
	struct agent_conn *c;

	if (!b->agents_cap)
		return NULL;
	for (c = b->agents[bucket(b, id)]; c; c = c->hnext)
		if (c->agent_id == id)
			return c;
	return NULL;
}

static void map_del(struct broker *b, struct agent_conn *conn)
{
	struct agent_conn **pp;

	if (!b->agents_cap)
		return;
	for (pp = &b->agents[bucket(b, conn->agent_id)]; *pp; pp = &(*pp)->hnext)
		if (*pp == conn) {
			*pp = conn->hnext;
			conn->hnext = NULL;
			b->agents_n--;
			return;
		}
}

static int map_put(struct broker *b, struct agent_conn *conn)
{
	struct agent_conn **old = b->agents, *c, *n;
	size_t oldcap = b->agents_cap, i;

	if (b->agents_n + 1 > b->agents_cap / 2) {
		size_t cap = b->agents_cap ? b->agents_cap * 2 : 64;

		b->agents = calloc(cap, sizeof(*b->agents));
		if (!b->agents) {
			b->agents = old;
			return APS_ERR_NOMEM;
		}
		b->agents_cap = cap;
		for (i = 0; i < oldcap; i++)
			for (c = old[i]; c; c = n) {
				n = c->hnext;
				c->hnext = b->agents[bucket(b, c->agent_id)];
				b->agents[bucket(b, c->agent_id)] = c;
			}
		free(old);
	}
	conn->hnext = b->agents[bucket(b, conn->agent_id)];
	b->agents[bucket(b, conn->agent_id)] = conn;
	b->agents_n++;
	return APS_OK;
}

/* ---- errors and writing ---- */

/* Reports an error to the agent (ERROR frame), then closes with `status`. */
static void conn_fail(struct agent_conn *c, int err, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void conn_fail(struct agent_conn *c, int err, int status, const char *fmt, ...)
{
	va_list ap;

	if (c->state == CONN_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err_msg, sizeof(c->err_msg), fmt, ap);
	va_end(ap);
	c->err = err;
	c->close_status = status;
	c->state = CONN_CLOSING;
	log_warn("agent %s (%s): %s: %s", c->name[0] ? c->name : "?", c->remote, aps_errcode(err),
		 c->err_msg);
	/* Reading goes on (on_receive discards while closing): a socket closed
	 * with unread input is reset, and the peer would lose the ERROR. */
	if (c->flow_off) {
		c->flow_off = 0;
		lws_rx_flow_control(c->wsi, 1);
	}
	lws_callback_on_writable(c->wsi);
}

static int send_frame(struct agent_conn *c, int type, uint64_t seq, const cJSON *body,
		      const char *text)
{
	struct aps_buf out = {0};
	int rc, n;

	rc = aps_buf_reserve(&out, LWS_PRE + 256);
	if (rc)
		return -1;
	out.len = LWS_PRE;
	if (body)
		rc = aps_frame_encode_json(&c->b->codec, &out, (uint8_t)type, seq, c->rx_durable,
					   body, 1);
	else
		rc = aps_frame_encode(&c->b->codec, &out, (uint8_t)type, seq, c->rx_durable,
				      text ? text : "{}", text ? strlen(text) : 2, 1);
	if (rc) {
		log_err("agent %s: cannot encode %s: %s", c->name, aps_msg_name(type),
			aps_strerror(rc));
		aps_buf_free(&out);
		return -1;
	}
	n = lws_write(c->wsi, out.data + LWS_PRE, out.len - LWS_PRE, LWS_WRITE_BINARY);
	rc = n < (int)(out.len - LWS_PRE) ? -1 : 0;
	aps_buf_free(&out);
	if (!rc)
		c->ack_sent = c->rx_durable;
	return rc;
}

/* One frame per WRITEABLE callback, in priority order. */
static int conn_writeable(struct agent_conn *c)
{
	uint64_t seq;
	char *body = NULL;
	cJSON *e;
	int type, rc;

	if (c->state == CONN_CLOSING) {
		if (!c->err_sent) {
			c->err_sent = 1;
			e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "code", aps_errcode(c->err));
			cJSON_AddStringToObject(e, "message", c->err_msg);
			send_frame(c, APSYNC_MSG_ERROR, 0, e, NULL);
			cJSON_Delete(e);
			lws_callback_on_writable(c->wsi);
			return 0;
		}
		lws_close_reason(c->wsi, (enum lws_close_status)c->close_status,
				 (unsigned char *)c->err_msg,
				 strlen(c->err_msg) > 120 ? 120 : strlen(c->err_msg));
		return -1;
	}
	if (c->welcome) {
		rc = send_frame(c, APSYNC_MSG_WELCOME, 0, c->welcome, NULL);
		cJSON_Delete(c->welcome);
		c->welcome = NULL;
		agents__kick(c->b, c->agent_id);
		lws_callback_on_writable(c->wsi);
		return rc;
	}
	if (c->state != CONN_READY)
		return 0;
	if (c->want_heartbeat) {
		c->want_heartbeat = 0;
		rc = send_frame(c, APSYNC_MSG_HEARTBEAT, 0, NULL, NULL);
		lws_callback_on_writable(c->wsi);
		return rc;
	}
	rc = store_outbox_next(c->b->store, c->agent_id, c->tx_sent, &seq, &type, &body);
	if (rc == APS_OK) {
		rc = send_frame(c, type, seq, NULL, body);
		free(body);
		if (!rc) {
			c->tx_sent = seq;
			log_info("agent %s: sent %s seq %llu", c->name, aps_msg_name(type),
				 (unsigned long long)seq);
		}
		lws_callback_on_writable(c->wsi);
		return rc;
	}
	if (c->rx_durable > c->ack_sent)
		return send_frame(c, APSYNC_MSG_ACK, 0, NULL, NULL);
	return 0;
}

/* ---- HELLO ---- */

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int hello_companies(const cJSON *list, struct store_company *out, char **texts, int max,
			   int *n)
{
	const cJSON *e, *lists, *l;
	const char *code, *name;

	*n = 0;
	cJSON_ArrayForEach(e, list) {
		if (*n == max)
			return APS_ERR_RANGE;
		code = str_field(e, "code");
		name = str_field(e, "name");
		lists = cJSON_GetObjectItemCaseSensitive(e, "lists");
		if (!code || !*code || strlen(code) > APSYNC_MAX_NAME_LEN || !name ||
		    strlen(name) > 256 || !cJSON_IsArray(lists))
			return APS_ERR_MESSAGE;
		cJSON_ArrayForEach(l, lists)
			if (!cJSON_IsString(l) || !aps_name_valid(l->valuestring))
				return APS_ERR_MESSAGE;
		texts[*n] = cJSON_PrintUnformatted(lists);
		out[*n] = (struct store_company){
			.code = code,
			.name = name,
			.currency = str_field(e, "currency"),
			.lists = texts[*n],
			.po_types = str_field(e, "po_types"),
		};
		(*n)++;
	}
	return APS_OK;
}

#define MAX_COMPANIES 64

static void on_hello(struct agent_conn *c, const struct aps_frame *f)
{
	struct broker *b = c->b;
	const cJSON *proto, *agent, *erp, *rx, *companies;
	struct store_company comp[MAX_COMPANIES];
	char *texts[MAX_COMPANIES] = {0}, revoked[APS_TIME_LEN];
	struct store_hello h = {0};
	struct store_agent a;
	struct agent_conn *old;
	const char *cred;
	uint8_t hash[32];
	int64_t agent_id;
	cJSON *entities = NULL, *w, *win, *ag;
	int n = 0, rc, i;

	proto = cJSON_GetObjectItemCaseSensitive(f->body, "proto");
	if (!cJSON_IsNumber(proto) || proto->valuedouble != APSYNC_PROTO_VERSION) {
		conn_fail(c, APS_ERR_VERSION, APSYNC_CLOSE_VERSION,
			  "this broker speaks protocol %d; upgrade or downgrade the SyncTool",
			  APSYNC_PROTO_VERSION);
		return;
	}
	cred = str_field(f->body, "credential");
	if (!cred || auth__agent_credential(cred, &agent_id, hash)) {
		conn_fail(c, APS_ERR_AUTH, APSYNC_CLOSE_AUTH,
			  "HELLO carries no valid credential; enroll the SyncTool with a code");
		return;
	}
	rc = store_agent_get(b->store, agent_id, &a);
	if (rc == APS_ERR_DB) {
		conn_fail(c, APS_ERR_INTERNAL, APSYNC_CLOSE_INTERNAL,
			  "the broker's store failed; the SyncTool will retry");
		return;
	}
	if (rc || !aps_ct_equal(a.secret_hash, hash, 32)) {
		conn_fail(c, APS_ERR_AUTH, APSYNC_CLOSE_AUTH,
			  "credential refused: unknown to this broker; enroll the SyncTool again "
			  "with a new code");
		return;
	}
	snprintf(c->name, sizeof(c->name), "%s", a.name);
	if (a.revoked_at) {
		conn_fail(c, APS_ERR_REVOKED, APSYNC_CLOSE_AUTH,
			  "credential of SyncTool \"%s\" was revoked at %s; enroll again with a "
			  "new code",
			  a.name, aps_time_iso(a.revoked_at, revoked));
		return;
	}
	agent = cJSON_GetObjectItemCaseSensitive(f->body, "agent");
	erp = cJSON_GetObjectItemCaseSensitive(f->body, "erp");
	rx = cJSON_GetObjectItemCaseSensitive(f->body, "rx");
	companies = cJSON_GetObjectItemCaseSensitive(f->body, "entities");
	if (!cJSON_IsObject(agent) || !cJSON_IsObject(erp) || !cJSON_IsNumber(rx) ||
	    rx->valuedouble < 0 || !cJSON_IsArray(companies) ||
	    hello_companies(companies, comp, texts, MAX_COMPANIES, &n)) {
		conn_fail(c, APS_ERR_MESSAGE, APSYNC_CLOSE_PROTOCOL,
			  "HELLO lacks agent, erp, rx or a valid entities array");
		goto out;
	}
	if ((uint64_t)rx->valuedouble > a.tx_seq) {
		conn_fail(c, APS_ERR_SEQ, APSYNC_CLOSE_PROTOCOL,
			  "HELLO says %.0f broker messages were processed, the broker sent %llu",
			  rx->valuedouble, (unsigned long long)a.tx_seq);
		goto out;
	}
	h.version = str_field(agent, "version");
	h.os = str_field(agent, "os");
	h.hostname = str_field(agent, "hostname");
	h.erp_product = str_field(erp, "product");
	h.erp_version = str_field(erp, "version");
	h.erp_error = str_field(erp, "error");
	h.remote_addr = c->remote;
	h.ncompanies = n;
	h.companies = comp;
	rc = store_agent_hello(b->store, a.id, &h, aps_now_ms(), &entities);
	if (rc) {
		conn_fail(c, APS_ERR_INTERNAL, APSYNC_CLOSE_INTERNAL,
			  "the broker's store failed; the SyncTool will retry");
		goto out;
	}
	old = map_get(b, a.id);
	if (old) {
		map_del(b, old);
		old->agent_id = 0; /* its close must not mark the agent offline */
		conn_fail(old, APS_ERR_CONFLICT, APSYNC_CLOSE_REPLACED,
			  "the same SyncTool connected again; this older session is closed");
	}
	c->agent_id = a.id;
	c->tenant_id = a.tenant_id;
	c->rx_queued = c->rx_durable = a.rx_seq;
	c->peer_ack = c->tx_sent = (uint64_t)rx->valuedouble;
	store_outbox_ack(b->store, a.id, c->peer_ack);
	if (map_put(b, c)) {
		conn_fail(c, APS_ERR_NOMEM, APSYNC_CLOSE_INTERNAL, "out of memory");
		goto out;
	}
	c->state = CONN_READY;
	w = cJSON_CreateObject();
	ag = cJSON_AddObjectToObject(w, "agent");
	cJSON_AddNumberToObject(ag, "id", (double)a.id);
	cJSON_AddStringToObject(ag, "name", a.name);
	cJSON_AddStringToObject(w, "tenant", a.tenant);
	cJSON_AddNumberToObject(w, "rx", (double)a.rx_seq);
	cJSON_AddNumberToObject(w, "heartbeat", (double)b->opts->heartbeat);
	win = cJSON_AddObjectToObject(w, "window");
	cJSON_AddNumberToObject(win, "frames", (double)b->opts->window_frames);
	cJSON_AddNumberToObject(win, "bytes", (double)b->opts->window_bytes);
	cJSON_AddItemToObject(w, "entities", entities);
	entities = NULL;
	c->welcome = w;
	lws_callback_on_writable(c->wsi);
	log_notice("SyncTool \"%s\" (tenant %s, agent %lld) connected from %s: agent %s, ERP %s %s, "
		   "%d entities, resumes after seq %llu",
		   a.name, a.tenant, (long long)a.id, c->remote, h.version ? h.version : "?",
		   h.erp_product ? h.erp_product : "?", h.erp_version ? h.erp_version : "", n,
		   (unsigned long long)a.rx_seq);
	if (h.erp_error)
		log_warn("SyncTool \"%s\" cannot reach its ERP: %s", a.name, h.erp_error);
out:
	for (i = 0; i < n; i++)
		cJSON_free(texts[i]);
	cJSON_Delete(entities);
}

/* ---- messages from a welcomed agent ---- */

static int close_code_for(int err)
{
	return err == APS_ERR_TOO_BIG || err == APS_ERR_INFLATED_TOO_BIG || err == APS_ERR_RATIO
		       ? APSYNC_CLOSE_TOO_BIG
	       : err == APS_ERR_VERSION ? APSYNC_CLOSE_VERSION
	       : err == APS_ERR_INTERNAL || err == APS_ERR_NOMEM ? APSYNC_CLOSE_INTERNAL
								: APSYNC_CLOSE_PROTOCOL;
}

static void on_ack(struct agent_conn *c, uint64_t ack)
{
	if (ack <= c->peer_ack)
		return;
	if (ack > c->tx_sent) {
		conn_fail(c, APS_ERR_SEQ, APSYNC_CLOSE_PROTOCOL,
			  "ack %llu is beyond the last message sent (%llu)", (unsigned long long)ack,
			  (unsigned long long)c->tx_sent);
		return;
	}
	c->peer_ack = ack;
	store_outbox_ack(c->b->store, c->agent_id, ack);
}

/* A sequenced message goes, undecoded, to the store writer; its header has
 * been checked (peek). The receive buffer moves into the item. */
static void queue_sequenced(struct agent_conn *c, const struct aps_frame *h)
{
	struct broker *b = c->b;
	struct ingest_item *it;

	if (h->seq <= c->rx_queued) {
		/* A resend of something already stored or queued: ack, do not apply. */
		lws_callback_on_writable(c->wsi);
		return;
	}
	if (h->seq != c->rx_queued + 1) {
		conn_fail(c, APS_ERR_SEQ, APSYNC_CLOSE_PROTOCOL,
			  "message seq %llu after %llu: messages were lost",
			  (unsigned long long)h->seq, (unsigned long long)c->rx_queued);
		return;
	}
	it = calloc(1, sizeof(*it));
	if (!it) {
		conn_fail(c, APS_ERR_NOMEM, APSYNC_CLOSE_INTERNAL, "out of memory");
		return;
	}
	it->agent_id = c->agent_id;
	it->tenant_id = c->tenant_id;
	it->seq = h->seq;
	it->type = h->type;
	it->raw = c->rx;
	memset(&c->rx, 0, sizeof(c->rx));
	c->rx_queued = h->seq;
	ingest__push(b->ingest, it);
	if (ingest__queued_bytes(b->ingest) > (size_t)b->opts->ingest_queue && !c->flow_off) {
		c->flow_off = 1;
		lws_rx_flow_control(c->wsi, 0);
	}
}

static void on_control(struct agent_conn *c, struct aps_frame *f)
{
	const char *code, *msg;

	switch (f->type) {
	case APSYNC_MSG_HEARTBEAT:
		c->want_heartbeat = 1;
		lws_callback_on_writable(c->wsi);
		return;
	case APSYNC_MSG_ACK:
		return;
	case APSYNC_MSG_ERROR:
		code = str_field(f->body, "code");
		msg = str_field(f->body, "message");
		log_warn("SyncTool \"%s\" reports an error: %s: %s", c->name, code ? code : "?",
			 msg ? msg : "");
		return;
	case APSYNC_MSG_HELLO:
		conn_fail(c, APS_ERR_TYPE, APSYNC_CLOSE_PROTOCOL, "HELLO sent twice");
		return;
	default:
		conn_fail(c, APS_ERR_TYPE, APSYNC_CLOSE_PROTOCOL, "%s is not a message an agent sends",
			  aps_msg_name(f->type));
	}
}

static void on_complete_message(struct agent_conn *c)
{
	struct aps_frame f;
	struct aps_codec *codec = &c->b->codec;
	struct aps_limits lim = codec->lim;
	char why[200];
	int rc;

	if (c->state == CONN_HELLO)
		lim.max_frame = APSYNC_MAX_PREAUTH_FRAME;
	rc = aps_frame_peek(&lim, c->rx.data, c->rx.len, &f, why, sizeof(why));
	if (rc) {
		conn_fail(c, rc, close_code_for(rc), "%s", why);
		goto out;
	}
	if (c->state == CONN_READY) {
		c->last_rx_mono = aps_mono_ms();
		on_ack(c, f.ack);
		if (c->state != CONN_READY)
			goto out;
		if (f.type >= APSYNC_MSG_JOB_STATUS && f.type <= APSYNC_MSG_EXPORT_RESULT) {
			queue_sequenced(c, &f);
			goto out;
		}
	}
	/* HELLO and control messages are small: decoded here. */
	rc = aps_frame_decode(codec, c->rx.data, c->rx.len, &f, why, sizeof(why));
	if (rc) {
		conn_fail(c, rc, close_code_for(rc), "%s", why);
		goto out;
	}
	if (c->state == CONN_HELLO) {
		if (f.type != APSYNC_MSG_HELLO)
			conn_fail(c, APS_ERR_TYPE, APSYNC_CLOSE_PROTOCOL,
				  "the first message must be HELLO, not %s", aps_msg_name(f.type));
		else
			on_hello(c, &f);
	} else if (c->state == CONN_READY) {
		on_control(c, &f);
	}
	aps_frame_clear(&f);
out:
	c->rx.len = 0;
	if (c->rx.cap > 1024 * 1024)
		aps_buf_free(&c->rx);
}

static int on_receive(struct agent_conn *c, const void *in, size_t len)
{
	size_t limit = c->state == CONN_HELLO ? APSYNC_MAX_PREAUTH_FRAME : c->b->codec.lim.max_frame;

	if (c->state == CONN_CLOSING)
		return 0;
	if (!lws_frame_is_binary(c->wsi)) {
		conn_fail(c, APS_ERR_MAGIC, APSYNC_CLOSE_PROTOCOL,
			  "text WebSocket messages are not apsync frames");
		return 0;
	}
	if (c->rx.len + len > limit) {
		conn_fail(c, APS_ERR_TOO_BIG, APSYNC_CLOSE_TOO_BIG,
			  "message longer than %zu bytes%s", limit,
			  c->state == CONN_HELLO ? " before authentication" : "");
		return 0;
	}
	if (aps_buf_append(&c->rx, in, len)) {
		conn_fail(c, APS_ERR_NOMEM, APSYNC_CLOSE_INTERNAL, "out of memory");
		return 0;
	}
	if (lws_is_final_fragment(c->wsi) && !lws_remaining_packet_payload(c->wsi))
		on_complete_message(c);
	return 0;
}

/* ---- called from elsewhere in the broker ---- */

void agents__kick(struct broker *b, int64_t agent_id)
{
	struct agent_conn *c = map_get(b, agent_id);
	int n = 0;

	if (!c || c->state != CONN_READY || c->welcome)
		return;
	if (store_dispatch(b->store, agent_id, aps_now_ms(), &n))
		log_err("agent %s: cannot dispatch jobs (store failed)", c->name);
	if (n)
		log_info("agent %s: %d job(s) dispatched", c->name, n);
	if (store_docs_dispatch(b->store, agent_id, aps_now_ms(), &n))
		log_err("agent %s: cannot dispatch exports (store failed)", c->name);
	if (n)
		log_info("agent %s: %d document(s) sent for export", c->name, n);
	lws_callback_on_writable(c->wsi);
}

void agents__kick_all(struct broker *b)
{
	struct agent_conn *c;

	for (c = all_conns; c; c = c->next)
		if (c->state == CONN_READY)
			agents__kick(b, c->agent_id);
}

void agents__applied(struct broker *b, int64_t agent_id, uint64_t seq, int err, const char *why,
		     int job_ended)
{
	struct agent_conn *c = map_get(b, agent_id), *it;

	if (c && err) {
		conn_fail(c, err, close_code_for(err), "%s", why);
	} else if (c && seq > c->rx_durable) {
		c->rx_durable = seq;
		lws_callback_on_writable(c->wsi);
	}
	if (job_ended)
		agents__kick(b, agent_id);
	if (ingest__queued_bytes(b->ingest) <= (size_t)b->opts->ingest_queue / 2)
		for (it = all_conns; it; it = it->next)
			if (it->flow_off && it->state == CONN_READY) {
				it->flow_off = 0;
				lws_rx_flow_control(it->wsi, 1);
			}
}

void agents__tick(struct broker *b)
{
	int64_t now = aps_mono_ms(), limit = b->opts->heartbeat * b->opts->missed_beats * 1000;
	struct agent_conn *c, *next;
	struct store_agent a;

	for (c = all_conns; c; c = next) {
		next = c->next;
		if (c->state == CONN_HELLO &&
		    now - c->connected_mono > (int64_t)APSYNC_HELLO_TIMEOUT_S * 1000) {
			conn_fail(c, APS_ERR_AUTH, APSYNC_CLOSE_TIMEOUT, "no HELLO within %u seconds",
				  APSYNC_HELLO_TIMEOUT_S);
			continue;
		}
		if (c->state != CONN_READY)
			continue;
		if (now - c->last_rx_mono > limit) {
			/* A silent peer cannot take part in a closing handshake: drop it
			 * now, so it shows offline at once. */
			log_warn("SyncTool \"%s\": nothing heard for %lld s (%lld heartbeats "
				 "missed); dropping the connection",
				 c->name, (long long)(now - c->last_rx_mono) / 1000,
				 (long long)b->opts->missed_beats);
			c->state = CONN_CLOSING;
			c->err_sent = 1;
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
			continue;
		}
		if (now - c->last_check_mono < b->opts->heartbeat * 1000)
			continue;
		/* Once per heartbeat: last_seen, and whether it was revoked meanwhile. */
		c->last_check_mono = now;
		store_agent_seen(b->store, c->agent_id, aps_now_ms() - (now - c->last_rx_mono));
		if (store_agent_get(b->store, c->agent_id, &a) == APS_OK && a.revoked_at)
			conn_fail(c, APS_ERR_REVOKED, APSYNC_CLOSE_AUTH,
				  "credential of SyncTool \"%s\" was revoked; enroll again with a "
				  "new code",
				  a.name);
	}
}

/* ---- the protocol callback ---- */

static int agents_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
			   void *in, size_t len)
{
	struct agent_conn *c = user;
	struct broker *b = lws_context_user(lws_get_context(wsi));

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		memset(c, 0, sizeof(*c));
		c->wsi = wsi;
		c->b = b;
		c->state = CONN_HELLO;
		c->connected_mono = c->last_rx_mono = aps_mono_ms();
		lws_get_peer_simple(wsi, c->remote, sizeof(c->remote));
		c->next = all_conns;
		if (all_conns)
			all_conns->prev = c;
		all_conns = c;
		log_info("agent connection from %s", c->remote);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		return on_receive(c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return conn_writeable(c);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2)
			log_info("agent %s closed the session: %u %.*s", c->name,
				 ((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1],
				 (int)(len - 2), (const char *)in + 2);
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (c->agent_id && map_get(b, c->agent_id) == c) {
			map_del(b, c);
			store_agent_offline(b->store, c->agent_id,
					    aps_now_ms() - (aps_mono_ms() - c->last_rx_mono));
			log_notice("SyncTool \"%s\" disconnected", c->name);
		}
		if (c->prev)
			c->prev->next = c->next;
		else if (all_conns == c)
			all_conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		aps_buf_free(&c->rx);
		cJSON_Delete(c->welcome);
		c->welcome = NULL;
		return 0;
	default:
		return 0;
	}
}

const struct lws_protocols agents_protocol = {
	.name = APSYNC_WS_SUBPROTOCOL,
	.callback = agents_callback,
	.per_session_data_size = sizeof(struct agent_conn),
	.rx_buffer_size = 65536,
};
