/* Canonical lists (proto/LISTS.md) and the connector registry. */
#include <stdio.h>
#include <string.h>

#include "erp.h"
#include "err.h"

#define LIST(n, k, ...)                                                        \
	static const char *const n##_cols[] = {__VA_ARGS__};                   \
	static const struct erp_list n##_list = {                              \
		#n, k, n##_cols, (int)(sizeof(n##_cols) / sizeof(n##_cols[0]))}

LIST(vendors, "code", "code", "name", "status", "address1", "address2", "city", "region",
     "postal_code", "country", "phone", "email", "tax_id", "terms", "currency",
     "separate_check", "created_at", "modified_at");
LIST(gl_accounts, "code", "code", "name", "type", "status", "created_at", "modified_at");
LIST(items, "code", "code", "name", "type", "unit", "cost", "status", "created_at",
     "modified_at");
LIST(tax_codes, "code", "code", "name", "rate", "status", "created_at", "modified_at");
LIST(units, "code", "code", "name", "status", "created_at", "modified_at");
LIST(warehouses, "code", "code", "name", "address1", "city", "region", "postal_code",
     "country", "status", "created_at", "modified_at");
LIST(divisions, "code", "code", "name", "status", "created_at", "modified_at");
LIST(bank_accounts, "code", "code", "name", "account_last4", "currency", "gl_account",
     "status", "created_at", "modified_at");
LIST(separate_checks, "code", "code", "name", "status", "modified_at");
LIST(purchase_orders, "code", "code", "type", "status", "vendor", "order_date", "warehouse",
     "division", "currency", "total", "lines", "created_at", "modified_at");
LIST(receivings, "code", "code", "po", "vendor", "receipt_date", "lines", "created_at",
     "modified_at");
LIST(payments, "code", "code", "vendor", "reference", "payment_date", "bank_account", "method",
     "amount", "currency", "invoices", "status", "created_at", "modified_at");

const struct erp_list *const erp_lists[] = {
	&bank_accounts_list, &divisions_list,       &gl_accounts_list, &items_list,
	&separate_checks_list, &tax_codes_list,     &units_list,       &vendors_list,
	&warehouses_list,    &purchase_orders_list, &receivings_list,  &payments_list, NULL,
};

const struct erp_list *erp_list_find(const char *name)
{
	int i;

	for (i = 0; erp_lists[i]; i++)
		if (!strcmp(erp_lists[i]->name, name))
			return erp_lists[i];
	return NULL;
}

int erp_list_col(const struct erp_list *l, const char *col)
{
	int i;

	for (i = 0; i < l->ncols; i++)
		if (!strcmp(l->cols[i], col))
			return i;
	return -1;
}

static const struct erp_ops *const connectors[] = {
	&erp_demo_ops,
	&erp_tryton_ops,
	&erp_odbc_ops,
	&erp_sqlite_ops,
	&erp_gnucash_ops,
	NULL,
};

int erp_open(const char *spec, const struct erp_settings *cfg, const struct erp_ops **ops,
	     struct erp **out, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	size_t len;
	int i;

	if (!colon) {
		snprintf(err, errlen, "ERP \"%s\" is not of the form SCHEME:TARGET (e.g. demo:erp.db)",
			 spec);
		return APS_ERR_INVAL;
	}
	len = (size_t)(colon - spec);
	for (i = 0; connectors[i]; i++) {
		if (strlen(connectors[i]->scheme) == len &&
		    !strncmp(connectors[i]->scheme, spec, len)) {
			*ops = connectors[i];
			return connectors[i]->open(colon + 1, cfg, out, err, errlen);
		}
	}
	snprintf(err, errlen, "no connector for ERP scheme \"%.*s\" (known: demo, tryton, odbc, sqlite, gnucash)", (int)len, spec);
	return APS_ERR_INVAL;
}
