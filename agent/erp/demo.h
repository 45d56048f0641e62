/*
 * The demo ERP: a generated SQLite file shaped like a desktop ERP (its own
 * table and column names, status codes and local-time timestamps), and the
 * connector that reads it (erp_demo_ops in erp.h, scheme "demo", target = the
 * file's path).
 *
 * The file's tables, as the generator writes them and the connector reads
 * them (all timestamps are ERP local time text 'YYYY-MM-DD HH:MM:SS.mmm' at
 * the offset in erp_info.utc_offset):
 *   erp_info(key, value)          product, version, utc_offset, seed, rows
 *   companies, vendors, gl_accounts, items, tax_codes, units, warehouses,
 *   divisions, bank_accounts, po_headers, po_lines, receipts, receipt_lines,
 *   locks(company_code, user_name, reason, since): a row means the company is
 *   locked by a user (period-end close); reads of it are then APS_ERR_BUSY.
 */
#ifndef APS_DEMO_H
#define APS_DEMO_H

#include <stddef.h>
#include <stdint.h>

#define DEMO_ERP_PRODUCT    "apsync Demo ERP"
#define DEMO_ERP_VERSION    "1.0"
#define DEMO_ERP_UTC_OFFSET "-05:00"

/* The AP tables exports write into (invoices, their lines, payments and
 * what they pay); made by the generator, and at the first write into an
 * older file. Times are ERP local time "YYYY-MM-DD HH:MM:SS.mmm". */
extern const char demo_ap_schema_sql[];
/* Bounds of the size knob: the number of vendors of company BLUE. */
#define DEMO_ERP_MIN_ROWS 1
#define DEMO_ERP_MAX_ROWS 5000000

/*
 * Writes a new demo ERP database at path, deterministic from (rows, seed):
 * the same pair gives the same contents of every table. rows is the number
 * of vendors of company BLUE (HARBOR gets rows/4, at least 1; the other lists
 * scale from these). The file is written as path.tmp and renamed at the end,
 * so a failure leaves nothing at path (a stale path.tmp is replaced).
 *
 * Returns APS_OK; APS_ERR_EXISTS if path exists (never overwritten);
 * APS_ERR_RANGE if rows is outside [DEMO_ERP_MIN_ROWS, DEMO_ERP_MAX_ROWS] or
 * the path is too long; APS_ERR_IO / APS_ERR_DB if writing fails. On failure
 * err holds a sentence for the user.
 */
int demo_erp_generate(const char *path, int64_t rows, uint64_t seed, char *err, size_t errlen);

#endif
