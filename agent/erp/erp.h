/*
 * ERP connector interface.
 *
 * A connector turns one ERP (a demo SQLite file, Tryton, a GnuCash book, an
 * ODBC data source, …) into companies and canonical lists (proto/LISTS.md).
 * The agent's worker thread is the only caller; a connector may block.
 *
 * Every function returns an APS_ERR_*; on failure `err` holds a sentence for
 * the user saying what failed and what to do. APS_ERR_BUSY means the ERP is
 * there but will not serve us now (file locked, book open): the caller defers
 * and shows the reason instead of failing.
 */
#ifndef APS_ERP_H
#define APS_ERP_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "batch.h"

#define ERP_MAX_COMPANIES 64
#define ERP_MAX_LISTS 16

/* A canonical list: its name, key column and columns in wire order. */
struct erp_list {
	const char *name;
	const char *key;
	const char *const *cols;
	int ncols;
};

/* The canonical lists, in the order a full sync reads them. */
extern const struct erp_list *const erp_lists[];
const struct erp_list *erp_list_find(const char *name);
/* Index of a column of a list, -1 if absent. */
int erp_list_col(const struct erp_list *l, const char *col);

struct erp_company {
	char code[64];      /* the ERP's own company code, stable */
	char name[128];
	char currency[8];
	/* Lists this company offers, canonical names. */
	int nlists;
	const char *lists[ERP_MAX_LISTS];
	/* Purchase order types and statuses imported (the ERP's profile). */
	const char *po_types;    /* e.g. "standard,drop_ship"; NULL if no POs */
};

struct erp_identity {
	char product[64];
	char version[32];
	int ncompanies;
	struct erp_company companies[ERP_MAX_COMPANIES];
};

enum erp_order {
	ERP_ORDER_KEY = 0,      /* key ascending: full syncs, resumable by key */
	ERP_ORDER_MODIFIED,     /* (modified, key) ascending: partial syncs */
};

/* One read: a list of a company, in pages, from a resume point. */
struct erp_read {
	const char *company;
	const char *list;
	enum erp_order order;
	const char *after_key;       /* only keys after this (NULL: from start) */
	const char *after_modified;  /* ERP_ORDER_MODIFIED: with after_key */
	const char *modified_from;   /* window start, inclusive; NULL: none */
	const char *modified_to;     /* window end, exclusive; NULL: none */
	int limit;                   /* rows at most */
};

/*
 * Receives one row: vals[0..ncols) in the list's column order. The values
 * are borrowed: valid only during the call (they point into the ERP
 * driver's buffers). Return non-zero to stop the read.
 */
typedef int (*erp_row_fn)(void *ud, const struct aps_value *vals);

struct erp;

/* What the agent's configuration tells connectors (any may be NULL). */
struct erp_settings {
	const char *profiles;      /* directory of mapping profiles */
	const char *url;           /* the ERP's API for writes (Tryton JSON-RPC, …) */
	const char *user;          /* the ERP user writes are made as */
	const char *password_file; /* a file holding that user's password */
};

/* What the ERP made of a document we wrote. */
struct erp_doc_ref {
	char id[64];      /* its record id */
	char number[64];  /* its own document number, if any */
	char state[32];   /* e.g. posted, paid */
	char link[256];   /* a URL that opens it, where the ERP has one */
};

struct erp_ops {
	const char *scheme;        /* "demo" in --erp demo:PATH */
	const char *description;
	int (*open)(const char *target, const struct erp_settings *cfg, struct erp **out,
		    char *err, size_t errlen);
	void (*close)(struct erp *e);
	int (*identity)(struct erp *e, struct erp_identity *id, char *err, size_t errlen);
	int (*count)(struct erp *e, const char *company, const char *list, int64_t *n, char *err,
		     size_t errlen);
	/* The ERP's current time, in its local time with its offset (the same
	 * form as modified_at). Windows of partial syncs end at this minus a lag,
	 * so the ERP's clock, not the agent's, decides what "now" is. */
	int (*clock)(struct erp *e, char out[40], char *err, size_t errlen);
	/* Calls fn for each row, at most req->limit; *nread tells how many.
	 * ERP_ORDER_KEY is byte order of the keys' UTF-8 (binary collation):
	 * the broker detects deleted rows by key ranges in that order. */
	int (*read)(struct erp *e, const struct erp_read *req, erp_row_fn fn, void *ud,
		    int *nread, char *err, size_t errlen);
	/* 1 if the ERP keeps a modification time for the list (ERP_ORDER_MODIFIED
	 * and windows work); 0 if not: a partial sync then reads the list in
	 * full and the broker keeps what did not change. NULL: every list. */
	int (*stamped)(struct erp *e, const char *list);
	/* A cheap fingerprint of a list without modification times (e.g. the
	 * file's size and time): unchanged means nothing to read. NULL or an
	 * error: none, the list is read and compared. */
	int (*fingerprint)(struct erp *e, const char *company, const char *list, char out[128],
			   char *err, size_t errlen);
	/*
	 * Writes (NULL when the connector cannot). A document is an invoice or a
	 * payment as proto/EXPORTS.md describes. APS_ERR_ERP: the ERP refused it
	 * (a business error, `err` says why; not worth retrying); APS_ERR_BUSY or
	 * APS_ERR_IO: try again later; APS_ERR_NOTFOUND: something it names is
	 * not in the ERP.
	 */
	int (*write_invoice)(struct erp *e, const char *company, const cJSON *doc,
			     struct erp_doc_ref *out, char *err, size_t errlen);
	int (*write_payment)(struct erp *e, const char *company, const cJSON *doc,
			     struct erp_doc_ref *out, char *err, size_t errlen);
	/* Finds a document written before by its natural key (an invoice: vendor
	 * and number; a payment: vendor and reference), so that a retry after a
	 * crash never writes it twice: APS_OK with *out, APS_ERR_NOTFOUND, or
	 * another error when the ERP cannot tell now. */
	int (*lookup)(struct erp *e, const char *company, const cJSON *doc,
		      struct erp_doc_ref *out, char *err, size_t errlen);
};

/* Finds the connector for "scheme:target" and opens it. */
int erp_open(const char *spec, const struct erp_settings *cfg, const struct erp_ops **ops,
	     struct erp **out, char *err, size_t errlen);

/* Connectors. */
extern const struct erp_ops erp_demo_ops;
extern const struct erp_ops erp_tryton_ops; /* tryton.c */
extern const struct erp_ops erp_odbc_ops;   /* odbc.c */
extern const struct erp_ops erp_sqlite_ops; /* sqlmap.c */
extern const struct erp_ops erp_gnucash_ops; /* gnucash.c */

#endif
