/*
 * The profile-driven SQL connector (sqlmap.c): erp_ops for the schemes
 * odbc, sqlite and tryton, and what other connectors built on it use.
 */
#ifndef APS_SQLMAP_H
#define APS_SQLMAP_H

#include "erp.h"
#include "sqldb.h"

/* Where profiles are found by name; set from --profiles. */
extern const char *sqlmap_profile_dir;

/* Opens TARGET ("sqlite": a file path; "odbc": a connection string) mapped by
 * PROFILE (a name in sqlmap_profile_dir or a path to a .json file). */
int sqlmap_open(const char *profile, const char *kind, const char *target, struct erp **out,
		char *err, size_t errlen);
int sqlmap_has_list(const struct erp *e, const char *name);
const char *sqlmap_product(const struct erp *e);
struct sqldb *sqlmap_db(struct erp *e);

#endif
