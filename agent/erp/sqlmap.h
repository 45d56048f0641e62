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

#endif
