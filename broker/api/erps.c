/*
 * GET /api/v1/erps: the ERP matrix. Every ERP the product documents name,
 * plus the ones apsync runs here, with how it is reached (a SyncTool next to
 * a desktop ERP, or agentless for a cloud ERP: the page then hides the
 * SyncTool name), its lists and exports, and its state in this build. The
 * same table is in README.md; a test keeps the two in step.
 */
#include <stdio.h>
#include <string.h>

#include "broker_internal.h"

enum erp_state {
	ERP_TESTED,  /* a connector, tested end to end in `make check` */
	ERP_PROFILE, /* a mapping profile tested on schema-faithful fixtures */
	ERP_NOT_YET, /* named by the product, not built yet */
};

struct erp_row {
	const char *id, *name;
	int cloud;
	const char *access;    /* how the data is reached */
	const char *connector; /* --erp scheme (and profile), or NULL */
	const char *lists;     /* canonical lists, comma-separated */
	const char *exports;   /* "invoice,payment", or "" */
	enum erp_state state;
	const char *note;
};

#define ALL_LISTS                                                                          \
	"bank_accounts,divisions,gl_accounts,items,separate_checks,tax_codes,units,vendors,"   \
	"warehouses,purchase_orders,receivings"
#define MASTER_LISTS "bank_accounts,gl_accounts,items,tax_codes,vendors"

static const struct erp_row erps[] = {
	{"demo", "apsync demo ERP", 0, "SQLite file (apsync-agent demo-erp)", "demo", ALL_LISTS,
	 "invoice,payment",
	 ERP_TESTED, "generated, deterministic; used by make demo and the sync engine's tests"},
	{"tryton", "Tryton 6.0", 0, "SQL on its database; JSON-RPC for writes", "tryton",
	 "bank_accounts,divisions,gl_accounts,items,tax_codes,units,vendors,warehouses,"
	 "purchase_orders,receivings",
	 "invoice,payment", ERP_TESTED,
	 "tested against a real trytond: reads by SQL (SQLite dialect; PostgreSQL not yet), "
	 "supplier invoices and payments through Tryton's own JSON-RPC"},
	{"gnucash", "GnuCash 4.13", 0, "its SQLite book", "gnucash",
	 "bank_accounts,gl_accounts,tax_codes,vendors", "invoice,payment", ERP_TESTED,
	 "no change times: partial syncs compare row hashes; bills and payments written by SQL "
	 "as GnuCash writes them, checked with GnuCash's own engine"},
	{"sage100", "Sage 100", 0, "ProvideX ODBC driver (read-only)", "odbc:sage100", ALL_LISTS,
	 "invoice,payment", ERP_PROFILE,
	 "reads: a mapping profile tested on schema-faithful fixtures; writes: Visual Integrator "
	 "import files for the customer's VI jobs (never run through the real importer here)"},
	{"gp", "Microsoft Dynamics GP", 0, "SQL Server through ODBC", "odbc:gp",
	 "bank_accounts,divisions,gl_accounts,items,tax_codes,units,vendors,warehouses,"
	 "purchase_orders,receivings",
	 "invoice,payment", ERP_PROFILE,
	 "reads: a mapping profile tested on schema-faithful fixtures; writes: eConnect XML "
	 "files (taPMTransactionInsert, taPMManualCheck) for the customer's eConnect side"},
	{"sage300", "Sage 300", 0, "SQL Server through ODBC", "odbc:sage300", ALL_LISTS,
	 "invoice,payment", ERP_PROFILE,
	 "reads: a mapping profile tested on schema-faithful fixtures; writes: AP invoice and "
	 "payment batch import files for the customer's Sage 300 import"},
	{"sage50ca", "Sage 50 CA", 0, "its MySQL database through ODBC", NULL, MASTER_LISTS,
	 "invoice,payment", ERP_NOT_YET, NULL},
	{"sage50us", "Sage 50 US", 0, "Actian Zen (Pervasive) ODBC driver", NULL, MASTER_LISTS,
	 "invoice,payment", ERP_NOT_YET, NULL},
	{"qbd", "QuickBooks Desktop", 0, "qbXML through the QuickBooks SDK (Windows)", NULL,
	 "bank_accounts,divisions,gl_accounts,items,tax_codes,units,vendors,warehouses,"
	 "purchase_orders,receivings",
	 "invoice,payment", ERP_NOT_YET,
	 "no external id: a bill is looked up by vendor + RefNumber before BillAddRq"},
	{"accountview", "AccountView", 0, "its database through ODBC", NULL, MASTER_LISTS,
	 "invoice,payment", ERP_NOT_YET, NULL},
	{"snelstart", "SnelStart", 0, "SnelStart B2B API", NULL, MASTER_LISTS, "invoice,payment",
	 ERP_NOT_YET, NULL},
	{"netsuite", "NetSuite", 1, "SuiteTalk REST web services", NULL, ALL_LISTS,
	 "invoice,payment", ERP_NOT_YET, "cloud: agentless, the broker calls the ERP's API"},
	{"intacct", "Sage Intacct", 1, "Intacct XML web services", NULL, ALL_LISTS,
	 "invoice,payment", ERP_NOT_YET, "cloud: agentless"},
	{"qbo", "QuickBooks Online", 1, "QuickBooks Online Accounting API", NULL,
	 "bank_accounts,divisions,gl_accounts,items,tax_codes,vendors,purchase_orders",
	 "invoice,payment", ERP_NOT_YET, "cloud: agentless"},
	{"twinfield", "Twinfield", 1, "Twinfield web services", NULL, MASTER_LISTS,
	 "invoice,payment", ERP_NOT_YET, "cloud: agentless"},
	{"afas", "AFAS", 1, "AFAS Profit REST connectors", NULL, MASTER_LISTS, "invoice,payment",
	 ERP_NOT_YET, "cloud: agentless"},
	{"exact", "Exact Online", 1, "Exact Online REST API", NULL, MASTER_LISTS,
	 "invoice,payment", ERP_NOT_YET, "cloud: agentless"},
	{"eaccounting", "Visma eAccounting", 1, "Visma eAccounting API", NULL, MASTER_LISTS,
	 "invoice,payment", ERP_NOT_YET, "cloud: agentless"},
	{"vismanet", "Visma.net", 1, "Visma.net ERP API", NULL, MASTER_LISTS, "invoice,payment",
	 ERP_NOT_YET, "cloud: agentless"},
};

static const char *state_name(enum erp_state s)
{
	return s == ERP_TESTED ? "tested" : s == ERP_PROFILE ? "profile" : "not_yet";
}

/* "a,b,c" → ["a", "b", "c"]; "" → []. */
static cJSON *csv_array(const char *csv)
{
	cJSON *a = cJSON_CreateArray();
	const char *p = csv, *comma;
	char item[64];

	while (a && *p) {
		comma = strchr(p, ',');
		if (!comma)
			comma = p + strlen(p);
		snprintf(item, sizeof(item), "%.*s", (int)(comma - p), p);
		cJSON_AddItemToArray(a, cJSON_CreateString(item));
		p = *comma ? comma + 1 : comma;
	}
	return a;
}

void api_erps(struct http_req *r, const int64_t *p)
{
	cJSON *o = cJSON_CreateObject(), *arr, *e;
	size_t i;

	(void)p;
	arr = cJSON_AddArrayToObject(o, "erps");
	for (i = 0; arr && i < sizeof(erps) / sizeof(erps[0]); i++) {
		e = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, e);
		cJSON_AddStringToObject(e, "id", erps[i].id);
		cJSON_AddStringToObject(e, "name", erps[i].name);
		cJSON_AddStringToObject(e, "deployment", erps[i].cloud ? "cloud" : "desktop");
		cJSON_AddBoolToObject(e, "synctool", !erps[i].cloud);
		cJSON_AddStringToObject(e, "access", erps[i].access);
		if (erps[i].connector)
			cJSON_AddStringToObject(e, "connector", erps[i].connector);
		else
			cJSON_AddNullToObject(e, "connector");
		cJSON_AddItemToObject(e, "lists", csv_array(erps[i].lists));
		cJSON_AddItemToObject(e, "exports", csv_array(erps[i].exports));
		cJSON_AddStringToObject(e, "state", state_name(erps[i].state));
		if (erps[i].note)
			cJSON_AddStringToObject(e, "note", erps[i].note);
	}
	http__reply_json(r, 200, o);
}
