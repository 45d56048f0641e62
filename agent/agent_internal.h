/* What the agent's files share. */
#ifndef APS_AGENT_INTERNAL_H
#define APS_AGENT_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <sqlite3.h>

#include "buf.h"
#include "codec.h"
#include "config.h"
#include "erp/erp.h"

/* ---- trust in the broker's certificate (agent/tls.c) ---- */

struct agent_tls {
	char ca[4096];      /* CA file; empty: the system's CAs */
	char pin[65];       /* SHA-256 of the broker certificate, lower-case hex */
	int insecure;       /* loopback development only */
};

/* lws client flags for the connection. */
int agent_tls__flags(const struct agent_tls *t);
/* The CA file for the lws context, or NULL. */
const char *agent_tls__ca_file(const struct agent_tls *t);
/* LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION: 0 accepts, 1 refuses;
 * a refusal is explained in err. */
int agent_tls__verify(const struct agent_tls *t, void *x509_ctx, int preverify_ok, char *err,
		      size_t errlen);
/* Normalises "sha256:AB:CD…", "AB CD…" or "abcd…" to 64 hex digits. */
int agent_tls__parse_pin(const char *in, char out[65]);

/* ---- the credential file (agent/credential.c) ---- */

struct agent_cred {
	char broker[512];      /* wss://host:port */
	char host[256];
	int port;
	char credential[256];  /* apsa_<id>_<secret>; never logged */
	char synctool[128];
	char tenant[128];
	int64_t agent_id;
	struct agent_tls tls;
};

/* Splits wss://HOST[:PORT][/] (port defaults to 443). */
int agent__parse_url(const char *url, char *host, size_t hostlen, int *port, char *err,
		     size_t errlen);
int agent_cred__load(const char *state_dir, struct agent_cred *c, char *err, size_t errlen);
/* "HOST:PORT" or "http://[USER:PASS@]HOST:PORT" → "[USER:PASS@]HOST" and port. */
int agent__parse_proxy(const char *spec, char *addr, size_t addrlen, unsigned *port, char *err,
		       size_t errlen);
/* The proxy to reach host through: the configured one, else HTTPS_PROXY or
 * HTTP_PROXY from the environment unless NO_PROXY covers host (*bypassed
 * then says so); NULL: direct. */
const char *agent__proxy_spec(const char *configured, const char *host, int *bypassed);
/* 1 if a NO_PROXY list ("*", names, ".domains", comma-separated) covers host. */
int agent__no_proxy(const char *no_proxy, const char *host);
int agent_cred__save(const char *state_dir, const struct agent_cred *c, char *err, size_t errlen);

/* ---- options ---- */

struct agent_opts {
	char *state;
	char *erp;
	char *profiles;          /* directory of ERP mapping profiles */
	char *erp_url;           /* the ERP's API for writes */
	char *erp_user;
	char *erp_password_file;
	char *proxy;             /* HTTP CONNECT proxy to the broker */
	char *log_level;
	char *log_file;          /* a size-capped log file beside stderr */
	int64_t log_max_mb;
	int64_t reconnect_min;   /* ms */
	int64_t reconnect_max;   /* ms */
	int64_t batch_rows;
	int64_t batch_bytes;
	char *compression;       /* zstd, deflate, none */
	int64_t compression_level;
	int64_t erp_retry;       /* ms between attempts to reach an absent ERP */
	int64_t cursor_lag;      /* ms: a window ends this long before the ERP's now */
	int64_t cursor_overlap;  /* ms: a partial window starts this long before the
				  * checkpoint */
	/* enroll */
	char *broker;
	char *code;
	char *ca;
	char *pin;
	int insecure;
};

extern const struct aps_cfg_entry agent_run_cfg[];

/* apsync-agent doctor (agent/doctor.c): 0 when nothing is wrong, 1 otherwise. */
int agent_doctor(struct agent_opts *o, const char *config);

/* ---- state database (agent/state.c) ---- */

/* Opens DIR/state.db (outbox, jobs, session counters), creating it. */
int state__open(const char *dir, sqlite3 **db, char *err, size_t errlen);
int state__meta_get(sqlite3 *db, const char *key, int64_t *v);
int state__meta_set(sqlite3 *db, const char *key, int64_t v);
int state__meta_get_text(sqlite3 *db, const char *key, char **v);
int state__meta_set_text(sqlite3 *db, const char *key, const char *v);
/* Appends a frame (type, JSON body) with the next seq, inside the caller's
 * transaction. */
int state__outbox_add(sqlite3 *db, struct aps_codec *codec, int type, const cJSON *body,
		      int compress, uint64_t *seq);
/* Same, with the body already printed as JSON text. */
int state__outbox_add_text(sqlite3 *db, struct aps_codec *codec, int type, const char *json,
			   size_t len, int compress, uint64_t *seq);
/* The broker's JOB_RESULT: checkpoints of the lists that succeeded become
 * their cursors (inside the caller's transaction). */
int state__apply_result(sqlite3 *db, int64_t job, const cJSON *lists, int64_t overlap_ms);
/* Unacknowledged frames: how many and how many bytes. */
int state__outbox_size(sqlite3 *db, int64_t *frames, int64_t *bytes);

/* ---- the reconnect policy (agent/link.c) ---- */

#define AGENT_BACKOFF_STEPS 16
/* Fills a libwebsockets backoff table doubling from min to max (ms). */
void agent__backoff_table(uint32_t *table, uint16_t *count, int64_t min_ms, int64_t max_ms);

/* ---- the running agent ---- */

struct agent {
	struct agent_opts *opts;
	struct agent_cred cred;
	struct lws_context *ctx;
	volatile sig_atomic_t stop;
	int exit_code;

	/* shared between the loop and the worker, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *identity;          /* HELLO's erp + entities, JSON text */
	int identity_ready;
	int identity_gen;        /* bumped when the identity changes */
	int outbox_changed;      /* worker → loop: new frames */
	int window_changed;      /* loop → worker: frames acknowledged */
	int jobs_changed;        /* loop → worker: a command arrived */
	int64_t window_frames;
	int64_t window_bytes;

	pthread_t worker;
	int worker_started;
};

int agent_run(struct agent_opts *opts);
int agent_enroll(struct agent_opts *opts);

/* link.c: the session with the broker, on the loop thread. */
int link__run(struct agent *a);

/* worker.c: the ERP worker thread. */
int worker__start(struct agent *a, char *err, size_t errlen);
void worker__stop(struct agent *a);
/* Wakes the loop thread (from the worker). */
void agent__wake_loop(struct agent *a);

#endif
