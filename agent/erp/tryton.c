/*
 * Tryton 6.0: lists are read by SQL on Tryton's database through the tryton
 * profile (agent/erp/profiles/tryton.json); documents are written through
 * Tryton's own JSON-RPC so that its rules apply (tryton_rpc.c).
 *
 *   --erp tryton:PATH.sqlite            a Tryton database on SQLite
 *   --erp tryton:odbc:CONNECTION        (PostgreSQL: the profile's dialect
 *                                        is not written yet)
 *   --erp-url http://HOST:8000/DATABASE/ --erp-user U --erp-password-file F
 *                                       for writes
 */
#include <string.h>

#include "erp.h"
#include "err.h"
#include "sqlmap.h"

static int tryton_open(const char *target, const struct erp_settings *cfg, struct erp **out,
		       char *err, size_t errlen)
{
	if (!strncmp(target, "odbc:", 5))
		return sqlmap_open("tryton", "odbc", target + 5, cfg, out, err, errlen);
	return sqlmap_open("tryton", "sqlite", target, cfg, out, err, errlen);
}

const struct erp_ops erp_tryton_ops = {
	.scheme = "tryton",
	.description = "Tryton 6.0 (tryton:PATH.sqlite or tryton:odbc:CONNECTION)",
	.open = tryton_open,
	.close = sqlmap_close,
	.identity = sqlmap_identity,
	.count = sqlmap_count,
	.clock = sqlmap_clock,
	.read = sqlmap_read,
	.stamped = sqlmap_stamped,
	.fingerprint = sqlmap_fingerprint,
};
