/* What the broker's files share. Not installed, not used by the agent. */
#ifndef APS_BROKER_INTERNAL_H
#define APS_BROKER_INTERNAL_H

#include <signal.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "buf.h"
#include "codec.h"
#include "config.h"
#include "store/store.h"

/* ---- options (broker/main.c) ---- */

struct broker_opts {
	char *listen;          /* HOST:PORT */
	char *data;            /* data directory: store, TLS material */
	char *tls_cert;
	char *tls_key;
	char *web_root;
	char *log_level;
	int64_t heartbeat;     /* seconds between agent heartbeats */
	int64_t missed_beats;  /* offline after this many missed beats */
	int64_t window_frames; /* unacknowledged frames an agent may have in flight */
	int64_t window_bytes;
	int64_t max_request;   /* REST request body, bytes */
	int64_t ingest_queue;  /* bytes of decoded frames waiting for the store */
	int64_t stale_after;   /* s: a sync not started by then says why */
	int64_t job_timeout;   /* s: a sync whose SyncTool is gone this long times out */
	int64_t export_retry;  /* s: first wait before a failed export is tried again */
};

extern const struct aps_cfg_entry broker_serve_cfg[];

/* ---- the running broker (broker/server.c) ---- */

struct agent_conn;
struct ingest;

struct broker {
	struct broker_opts *opts;
	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct store *store;          /* the loop thread's connection */
	struct ingest *ingest;        /* the store writer thread */
	struct aps_codec codec;       /* loop thread's codec */
	struct agent_conn **agents;   /* hash table: agent id → live connection */
	size_t agents_cap;
	size_t agents_n;
	lws_sorted_usec_list_t tick;
	int64_t last_check;    /* mono ms of the last job check */
	int port;
	char host[256];
	char cert_path[4096];
	char key_path[4096];
	volatile sig_atomic_t stop;
};

int broker_serve(struct broker_opts *opts);

/* ---- agent sessions (broker/agents.c) ---- */

extern const struct lws_protocols agents_protocol;
/* Sends queued jobs to the agent if it is connected. */
void agents__kick(struct broker *b, int64_t agent_id);
/* Kicks every connected agent (after something any of them may wait for). */
void agents__kick_all(struct broker *b);
/* Once a second: hello timeouts, missed heartbeats, revocations. */
void agents__tick(struct broker *b);
/* The store writer finished messages of an agent. */
void agents__applied(struct broker *b, int64_t agent_id, uint64_t seq, int err,
		     const char *why, int job_ended);

/* ---- store writer thread (broker/ingest.c) ---- */

struct ingest_item {
	struct ingest_item *next;
	int64_t agent_id;
	int64_t tenant_id;
	uint64_t seq;
	int type;
	struct aps_buf raw;           /* the frame as received, header checked; owned */
	struct ingest_prep *prep;     /* decoded by the store's prep thread; owned */
};

int ingest__start(struct broker *b, struct ingest **out, char *err, size_t errlen);
void ingest__stop(struct ingest *in);
/* Queues an item (ownership passes). */
void ingest__push(struct ingest *in, struct ingest_item *it);
size_t ingest__queued_bytes(struct ingest *in);
/* Hands completions to agents__applied(); called by the loop when woken. */
void ingest__drain(struct ingest *in);

/* ---- HTTP and REST (broker/http.c, broker/api/) ---- */

struct http_req {
	struct lws *wsi;
	struct broker *b;
	int method;                   /* WSI_TOKEN_GET_URI, … */
	char path[512];
	struct aps_buf body;
	int body_expected;
	int body_too_big;
	struct store_user user;       /* valid after authentication */
	int by_session;               /* authenticated by the session cookie */
	uint8_t session_hash[32];     /* its id's SHA-256 */
	char csrf[64];                /* its CSRF token */
	/* response */
	unsigned int status;
	struct aps_buf resp;
	size_t resp_off;
	char location[128];
	char set_cookie[256];
	int responded;
};

extern const struct lws_protocols http_protocol;

/* Route parameters: numeric ids from the path, in order. */
#define HTTP_MAX_PARAMS 4
typedef void (*api_fn)(struct http_req *r, const int64_t *params);

/* Replies; each takes ownership of `body`. */
void http__reply_json(struct http_req *r, unsigned int status, cJSON *body);
void http__reply_error(struct http_req *r, unsigned int status, const char *code,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* 200 with {name: list}, or 503 when the store gave no list (NULL). */
void http__reply_list(struct http_req *r, const char *name, cJSON *list);
/* The request body as a JSON object, or NULL after replying 400. */
cJSON *http__body_json(struct http_req *r);
/* A query argument ("entity"), copied into buf; NULL if absent. */
const char *http__query(struct http_req *r, const char *name, char *buf, int len);
/* 1 if the user's role may run syncs; otherwise replies 403 and returns 0. */
int http__require_sync_role(struct http_req *r);
/* 1 if the user is a System Administrator; otherwise replies 403, returns 0. */
int http__require_admin(struct http_req *r);
/* The web session's cookie. */
#define HTTP_SESSION_COOKIE "apsync_session"

/* API handlers (broker/api/) */
void api_health(struct http_req *r, const int64_t *p);
void api_me(struct http_req *r, const int64_t *p);
void api_erps(struct http_req *r, const int64_t *p);
void api_agent_check(struct http_req *r, const int64_t *p);
void api_exports_create(struct http_req *r, const int64_t *p);
void api_export_runs(struct http_req *r, const int64_t *p);
void api_export_run_get(struct http_req *r, const int64_t *p);
void api_documents_list(struct http_req *r, const int64_t *p);
void api_document_get(struct http_req *r, const int64_t *p);
void api_document_retry(struct http_req *r, const int64_t *p);
void api_document_mark(struct http_req *r, const int64_t *p);
void api_rules_list(struct http_req *r, const int64_t *p);
void api_rules_add(struct http_req *r, const int64_t *p);
void api_rules_delete(struct http_req *r, const int64_t *p);
void api_openapi(struct http_req *r, const int64_t *p);
void api_session_create(struct http_req *r, const int64_t *p);
void api_session_end(struct http_req *r, const int64_t *p);
void api_users_list(struct http_req *r, const int64_t *p);
void api_users_create(struct http_req *r, const int64_t *p);
void api_user_role(struct http_req *r, const int64_t *p);
void api_user_password(struct http_req *r, const int64_t *p);
void api_synctools_code(struct http_req *r, const int64_t *p);
void api_synctools_revoke(struct http_req *r, const int64_t *p);

/* ---- exports (broker/exports.c) ---- */

/* A document's own shape (proto/EXPORTS.md); APS_ERR_INVAL with why. */
int exports__shape(const cJSON *doc, char *why, size_t len);
/* What a document deserves now: "queued", "on_hold" or "blocked", with why. */
const char *exports__check(struct store *s, int64_t tenant_id, int64_t entity_id,
			   const cJSON *doc, const cJSON *rules, char *why, size_t len);
/* The document's amount as a decimal string. */
void exports__amount(const cJSON *doc, char out[32]);
/* Checks held and blocked documents again (tenant or entity 0: any);
 * *released tells how many can go out now. */
int exports__recheck(struct store *s, int64_t tenant_id, int64_t entity_id, int64_t now,
		     int *released);
void api_enroll(struct http_req *r, const int64_t *p);
void api_synctools_list(struct http_req *r, const int64_t *p);
void api_entities_list(struct http_req *r, const int64_t *p);
void api_syncs_create(struct http_req *r, const int64_t *p);
void api_syncs_list(struct http_req *r, const int64_t *p);
void api_syncs_all(struct http_req *r, const int64_t *p);
void api_syncs_cancel(struct http_req *r, const int64_t *p);
void api_entity_get(struct http_req *r, const int64_t *p);
void api_entity_lists(struct http_req *r, const int64_t *p);
void api_items_page(struct http_req *r, const int64_t *p);
void api_overview(struct http_req *r, const int64_t *p);
void api_syncs_get(struct http_req *r, const int64_t *p);
void api_syncs_log(struct http_req *r, const int64_t *p);

/* ---- credentials and codes (broker/auth.c) ---- */

/* Roles; the first five may run syncs. */
extern const char *const broker_roles[];
int auth__role_valid(const char *role);
int auth__role_may_sync(const char *role);
/* A new random secret (base64url, 43 characters) and its hash. */
#define AUTH_SECRET_LEN 48
int auth__secret_new(char out[AUTH_SECRET_LEN], uint8_t hash[32]);
/* Hash of the secret of an API token "apt_<secret>"; APS_ERR_AUTH if malformed. */
int auth__api_token(const char *token, uint8_t hash[32]);
/* Enrollment codes: 16 characters of Crockford base32 as XXXX-XXXX-XXXX-XXXX;
 * the hash is over the normalised form, so case and dashes do not matter. */
int auth__code_new(char out[20], uint8_t hash[32]);
int auth__code_hash(const char *code, uint8_t hash[32]);
/* Splits an agent credential "apsa_<id>_<secret>" and hashes the secret. */
int auth__agent_credential(const char *cred, int64_t *agent_id, uint8_t hash[32]);
/* Passwords: scrypt (OpenSSL), stored as "scrypt$LOG2N$R$P$SALT$KEY" (hex). */
#define AUTH_PASSWORD_MIN 10
#define AUTH_PASSWORD_MAX 1024
#define AUTH_HASH_LEN     160
/* 1 if a password is acceptable; otherwise 0 and why. */
int auth__password_ok(const char *pw, char *why, size_t len);
int auth__password_hash(const char *pw, char out[AUTH_HASH_LEN]);
/* APS_OK if pw matches, APS_ERR_AUTH if not, APS_ERR_INVAL for a bad hash. */
int auth__password_verify(const char *pw, const char *stored);

/* ---- TLS material (broker/tls.c) ---- */

/* Makes DIR/tls/cert.pem and key.pem (self-signed, for localhost and this
 * host) unless they exist; fills the paths. */
int tls__ensure_self_signed(const char *data_dir, char *cert, size_t certlen, char *key,
			    size_t keylen, char *err, size_t errlen);
/* "AB:CD:…" SHA-256 fingerprint of a PEM certificate file. */
int tls__fingerprint(const char *cert_path, char *out, size_t outlen);

/* ---- admin CLI (broker/admin.c) ---- */

int admin_main(int argc, char **argv);

#endif
