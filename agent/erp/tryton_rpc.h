/*
 * A JSON-RPC client for Tryton (trytond 6.0), as the Tryton client speaks it:
 * POST {"id", "method", "params"} to http://HOST:PORT/DATABASE/, a session
 * from common.db.login sent as "Authorization: Session base64(user:uid:key)",
 * and the user's preferences as the context of every model and wizard call.
 *
 * One libcurl handle per client, kept for its life; one caller at a time.
 * The login happens on the first call and again when Tryton answers HTTP 401
 * or 403 (an expired session). The password is read from its file at each
 * login, trailing newlines stripped, and never logged.
 *
 * Errors: Tryton not answering (refused, timed out) → APS_ERR_IO; HTTP 429
 * or 503, or a concurrent update → APS_ERR_BUSY; a wrong login → APS_ERR_AUTH;
 * a UserError or any other error Tryton raises → APS_ERR_ERP with Tryton's
 * message.
 */
#ifndef APS_TRYTON_RPC_H
#define APS_TRYTON_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct trpc;

/* A client for the database at url ("http://HOST:8000/DATABASE/"); nothing
 * is sent before the first call. */
int trpc_new(const char *url, const char *user, const char *password_file, struct trpc **out,
             char *err, size_t errlen);
void trpc_free(struct trpc *c);

/*
 * Calls method with params (a JSON array, consumed). model.* and wizard.*
 * calls get the context appended: the user's preferences with `extra`'s
 * members over them (extra may be NULL). *result is the call's result, to be
 * freed by the caller (a JSON null when Tryton returns None). `doing` says
 * what the call is for in error messages ("creating the invoice").
 */
int trpc_call(struct trpc *c, const char *doing, const char *method, cJSON *params,
              const cJSON *extra, cJSON **result, char *err, size_t errlen);

/* Makes company the user's current company (set_preferences), which Tryton's
 * record rules follow; a no-op when it is already. */
int trpc_use_company(struct trpc *c, int64_t company, char *err, size_t errlen);

/* tryton://HOST[:PORT]/DATABASE/model/MODEL/ID, the Tryton client's link to
 * a record; empty when the URL cannot be parsed. */
void trpc_link(const struct trpc *c, const char *model, int64_t id, char *out, size_t outlen);

/* Tryton's tagged values: {"__class__": "Decimal", "decimal": "10.00"} and
 * {"__class__": "date", "year": …}. trpc_date is NULL unless ymd is a valid
 * YYYY-MM-DD. */
cJSON *trpc_decimal(const char *text);
cJSON *trpc_date(const char *ymd);
/* The text of a Decimal value (or of a plain number, formatted into buf of
 * 40 bytes); NULL for anything else. */
const char *trpc_decimal_text(const cJSON *v, char buf[40]);

#endif
