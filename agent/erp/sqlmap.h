/*
 * The profile-driven SQL connector (sqlmap.c): erp_ops for the schemes
 * odbc, sqlite and tryton, and what other connectors built on it use.
 */
#ifndef APS_SQLMAP_H
#define APS_SQLMAP_H

#include "erp.h"
#include "sqldb.h"

/* Opens TARGET ("sqlite": a file path; "odbc": a connection string) mapped by
 * PROFILE (a name in cfg->profiles or a path to a .json file). */
int sqlmap_open(const char *profile, const char *kind, const char *target,
		const struct erp_settings *cfg, struct erp **out, char *err, size_t errlen);
int sqlmap_has_list(const struct erp *e, const char *name);
const char *sqlmap_product(const struct erp *e);
struct sqldb *sqlmap_db(struct erp *e);
/* The currency of a company, NULL if it is not in the ERP. */
const char *sqlmap_company_currency(const struct erp *e, const char *company);

/*
 * Connectors built on sqlmap (Tryton, GnuCash) read through these and add
 * their own writes, keeping their state in the extension slot; sqlmap_close
 * calls ext_free.
 */
void *sqlmap_ext(struct erp *e);
void sqlmap_set_ext(struct erp *e, void *ext, void (*ext_free)(void *ext));
void sqlmap_close(struct erp *e);
int sqlmap_identity(struct erp *e, struct erp_identity *id, char *err, size_t errlen);
int sqlmap_count(struct erp *e, const char *company, const char *list, int64_t *n, char *err,
		 size_t errlen);
int sqlmap_clock(struct erp *e, char out[40], char *err, size_t errlen);
int sqlmap_read(struct erp *e, const struct erp_read *req, erp_row_fn fn, void *ud, int *nread,
		char *err, size_t errlen);
int sqlmap_stamped(struct erp *e, const char *list);
int sqlmap_fingerprint(struct erp *e, const char *company, const char *list, char out[128],
		       char *err, size_t errlen);

#endif
