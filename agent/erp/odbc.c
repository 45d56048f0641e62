/*
 * The ODBC connector (--erp odbc:PROFILE:CONNECTION): an ERP's SQL database
 * read through a mapping profile (sqlmap.c), and invoices and payments
 * written as the import files the ERP's own import takes, because the write
 * APIs of these ERPs (Sage 100 Visual Integrator, Dynamics GP eConnect, the
 * Sage 300 views) cannot run on the agent's machine.
 *
 * The profile's "writes" object names the file format and the queries that
 * find a document in the ERP's own AP tables. Each document becomes one file
 * in a drop folder (--erp-url file:///DIR), named from its natural key,
 * written atomically and never over an existing one; a job on the ERP's side
 * imports it. Until the ERP's tables show the document, a lookup finds its
 * file (in the folder or its done/ or processed/ subfolder), so a document is
 * never written twice. agent/erp/profiles/README.md says what each format
 * holds and what is not done here.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "decimal.h"
#include "erp.h"
#include "err.h"
#include "sqldb.h"
#include "sqlmap.h"
#include "plat.h"
#include "util.h"

#define MAX_DOC_LINES 500
#define MAX_PARAMS    16
#define NCOLS         3 /* the columns a profile query hands back */
#define COL_LEN       128
#define TEXT_LEN      256 /* a clipped text field: 60 characters of UTF-8 at most */
#define ID_LEN        64  /* a file name is the record id */
/* A line's quantity × unit price, still scaled twice, stays below 10^12. */
#define LINE_LIMIT ((__int128)INT64_C(1000000000000) * APS_DEC_SCALE * APS_DEC_SCALE)

/* ---- profile queries ------------------------------------------------------------ */

/* What a profile's query may name; each becomes a bound ?. */
enum ph { PH_COMPANY, PH_VENDOR, PH_NUMBER, PH_REFERENCE, PH_VALUE, PH__COUNT };

static const char *const ph_names[PH__COUNT] = {"{company}", "{vendor}", "{number}", "{reference}",
                                                "{value}"};

enum { Q_INVOICE, Q_PAYMENT, Q_VENDOR, Q_ACCOUNT, Q_BANK, Q_CURRENCY, Q__COUNT };

static const struct {
	const char *group, *name;
} q_names[Q__COUNT] = {{"lookup", "invoice"},  {"lookup", "payment"}, {"resolve", "vendor"},
                       {"resolve", "account"}, {"resolve", "bank"},   {"resolve", "currency"}};

_Static_assert(ID_LEN == sizeof(((struct erp_doc_ref *)0)->id), "ID_LEN is a record id");

struct query {
	char *sql; /* the profile's text; NULL: not given */
	struct sqldb_stmt *st;
	int n;
	enum ph ph[MAX_PARAMS];
};

/* The first row of a query: up to NCOLS columns, right-trimmed. */
struct row {
	int found;
	char col[NCOLS][COL_LEN]; /* "" for NULL */
};

/* ---- documents ------------------------------------------------------------------ */

struct line {
	const char *account, *text;
	char erp_account[COL_LEN]; /* as the import file names it */
	int64_t amount;            /* quantity × unit price, rounded to cents */
};

struct paid {
	const char *number;
	int64_t amount;
};

/* An invoice or a payment, checked, with what the ERP's queries resolved. */
struct doc {
	int invoice;
	const char *company, *vendor, *key; /* key: the number or the reference */
	const char *date, *due, *currency, *text, *po, *bank, *method;
	int64_t amount; /* the invoice's total or the payment's amount */
	int n;
	struct line *lines;
	struct paid *paid;
	char erp_vendor[COL_LEN];
	char payables[COL_LEN];     /* the vendor's payables account (GP) */
	char erp_currency[COL_LEN]; /* "": the company's */
	char erp_bank[COL_LEN];
	char div[8], vno[16]; /* Sage 100: APDivisionNo and VendorNo */
	char number[32];      /* GP: the voucher or payment number */
	char name[ID_LEN];    /* the import file's name */
};

/* A file being built. */
struct out {
	struct aps_buf b;
	int nomem;
};

struct odbc;
typedef void (*render_fn)(const struct odbc *o, const struct doc *d, struct out *w);

/* An import file format. Lengths are the ERP's field lengths in characters:
 * keys longer than theirs are refused, texts are cut. */
struct format {
	const char *name;     /* as profiles spell it */
	const char *ext;      /* of the file */
	const char *importer; /* "the folder …": who takes the files, for sentences */
	int vendor_len, number_len, reference_len, bank_len, head_len, line_len;
	int currencies;     /* 0: the company's only; 1: ISO codes as given; 2: mapped by a query */
	int split_division; /* vendor codes are APDivisionNo-VendorNo */
	render_fn invoice, payment;
};

struct odbc {
	const struct format *f; /* NULL: the profile has no "writes" */
	char profile[64];
	char batch[16]; /* the prefix of GP batch numbers */
	struct query q[Q__COUNT];
	char dir[PATH_MAX];   /* the drop folder; "" when --erp-url does not give one */
	char why_no_dir[600]; /* then, why not */
};

/* A bounded copy: as much of src as fits. */
static void copy(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int nomem(char *err, size_t errlen)
{
	snprintf(err, errlen, "out of memory");
	return APS_ERR_NOMEM;
}

/* ---- text and output ------------------------------------------------------------ */

static void out_str(struct out *w, const char *s)
{
	if (aps_buf_append_str(&w->b, s))
		w->nomem = 1;
}

static void out_fmt(struct out *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_fmt(struct out *w, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		w->nomem = 1;
	else
		out_str(w, line);
}

/* Text for a field of `max` characters: control characters become spaces and
 * longer text is cut at a character boundary. out holds TEXT_LEN bytes. */
static void clip(const char *s, int max, char out[TEXT_LEN])
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t o = 0;
	int chars = 0, start;

	for (; *p; p++) {
		start = (*p & 0xC0) != 0x80;
		if (start && (chars == max || o + 5 > TEXT_LEN))
			break;
		chars += start;
		out[o++] = *p < 0x20 || *p == 0x7f ? ' ' : (char)*p;
	}
	out[o] = '\0';
}

/* 1 when a key fits `max` characters and has no control characters. */
static int key_fits(const char *s, int max)
{
	const unsigned char *p = (const unsigned char *)s;
	int chars = 0;

	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return 0;
		chars += (*p & 0xC0) != 0x80;
	}
	return chars <= max;
}

static void xml_text(struct out *w, const char *s)
{
	char one[2] = {0, 0};

	for (; *s; s++) {
		switch (*s) {
		case '&':
			out_str(w, "&amp;");
			break;
		case '<':
			out_str(w, "&lt;");
			break;
		case '>':
			out_str(w, "&gt;");
			break;
		case '"':
			out_str(w, "&quot;");
			break;
		case '\'':
			out_str(w, "&apos;");
			break;
		default:
			one[0] = *s;
			out_str(w, one);
		}
	}
}

/* <TAG>value</TAG> on a line of its own; nothing when value is NULL. */
static void xml_el(struct out *w, int indent, const char *tag, const char *value)
{
	if (!value)
		return;
	out_fmt(w, "%*s<%s>", indent, "", tag);
	xml_text(w, value);
	out_fmt(w, "</%s>\n", tag);
}

/* One CSV field: quoted when asked, or when it holds a comma, a quote or
 * leading or trailing spaces; quotes inside are doubled. */
static void csv_field(struct out *w, const char *s, int quote)
{
	size_t n = strlen(s);
	const char *q;

	if (!quote)
		quote = strpbrk(s, ",\"") || (n && (s[0] == ' ' || s[n - 1] == ' '));
	if (!quote) {
		out_str(w, s);
		return;
	}
	out_str(w, "\"");
	while ((q = strchr(s, '"'))) {
		if (aps_buf_append(&w->b, s, (size_t)(q - s)))
			w->nomem = 1;
		out_str(w, "\"\"");
		s = q + 1;
	}
	out_str(w, s);
	out_str(w, "\"");
}

static void csv_row(struct out *w, int quote, int n, const char *const *fields)
{
	int i;

	for (i = 0; i < n; i++) {
		if (i)
			out_str(w, ",");
		csv_field(w, fields[i] ? fields[i] : "", quote);
	}
	out_str(w, "\r\n");
}

/* 2025-03-05 → 20250305 */
static const char *ymd(const char *date, char out[9])
{
	if (!date)
		return "";
	snprintf(out, 9, "%.4s%.2s%.2s", date, date + 5, date + 8);
	return out;
}

static const char *cents(int64_t v, char out[32])
{
	return aps_dec_format(v, 2, out);
}

/* ---- Sage 100: Visual Integrator import jobs ------------------------------------ */

static const char *const s100_invoice_cols[] = {"APDivisionNo", "VendorNo",        "InvoiceNo",
                                                "InvoiceDate",  "InvoiceDueDate",  "Comment",
                                                "AccountKey",   "DistributionAmt", "CommentText"};

static const char *const s100_payment_cols[] = {"BankCode",  "CheckNo",   "CheckType",
                                                "CheckDate", "CheckAmt",  "APDivisionNo",
                                                "VendorNo",  "InvoiceNo", "InvoiceAmt"};

/* Into AP Invoice Data Entry: one row per distribution, the header repeated. */
static void s100_invoice(const struct odbc *o, const struct doc *d, struct out *w)
{
	char date[9], due[9], amount[32], head[TEXT_LEN], text[TEXT_LEN];
	const char *f[APS_ARRAY_LEN(s100_invoice_cols)];
	int i;

	clip(d->text, o->f->head_len, head);
	csv_row(w, 0, APS_ARRAY_LEN(f), s100_invoice_cols);
	for (i = 0; i < d->n; i++) {
		if (!d->lines[i].amount)
			continue;
		clip(d->lines[i].text, o->f->line_len, text);
		f[0] = d->div;
		f[1] = d->vno;
		f[2] = d->key;
		f[3] = ymd(d->date, date);
		f[4] = ymd(d->due, due);
		f[5] = head;
		f[6] = d->lines[i].erp_account;
		f[7] = cents(d->lines[i].amount, amount);
		f[8] = text;
		csv_row(w, 0, APS_ARRAY_LEN(f), f);
	}
}

/* Into Manual Check Entry: one row per invoice paid, the check repeated. */
static void s100_payment(const struct odbc *o, const struct doc *d, struct out *w)
{
	char date[9], total[32], amount[32];
	const char *f[APS_ARRAY_LEN(s100_payment_cols)];
	int i;

	(void)o;
	csv_row(w, 0, APS_ARRAY_LEN(f), s100_payment_cols);
	for (i = 0; i < d->n; i++) {
		f[0] = d->erp_bank;
		f[1] = d->key;
		f[2] = "M";
		f[3] = ymd(d->date, date);
		f[4] = cents(d->amount, total);
		f[5] = d->div;
		f[6] = d->vno;
		f[7] = d->paid[i].number;
		f[8] = cents(d->paid[i].amount, amount);
		csv_row(w, 0, APS_ARRAY_LEN(f), f);
	}
}

/* ---- Dynamics GP: eConnect XML documents -------------------------------------- */

static void gp_open(struct out *w, const char *type)
{
	out_str(w, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	           "<eConnect xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n");
	out_fmt(w, "  <%s>\n", type);
}

static void gp_close(struct out *w, const char *type)
{
	out_fmt(w, "  </%s>\n</eConnect>\n", type);
}

/* The batch a document goes into: the prefix, P for payments, its date. */
static const char *gp_batch(const struct odbc *o, const struct doc *d, char out[40])
{
	snprintf(out, 40, "%.8s%s%.2s%.2s%.2s", o->batch, d->invoice ? "" : "P", d->date + 2,
	         d->date + 5, d->date + 8);
	return out;
}

/* One distribution: a positive amount is a debit, a negative one a credit. */
static void gp_dist(struct out *w, const struct odbc *o, const struct doc *d, int seq, int type,
                    const char *account, int64_t amount, const char *text)
{
	char a[32], ref[TEXT_LEN];

	out_str(w, "      <taPMDistribution>\n");
	xml_el(w, 8, "DOCTYPE", "1");
	xml_el(w, 8, "VCHRNMBR", d->number);
	xml_el(w, 8, "VENDORID", d->erp_vendor);
	out_fmt(w, "        <DSTSQNUM>%d</DSTSQNUM>\n", seq);
	out_fmt(w, "        <DISTTYPE>%d</DISTTYPE>\n", type);
	xml_el(w, 8, "ACTNUMST", account);
	xml_el(w, 8, "DEBITAMT", amount > 0 ? cents(amount, a) : "0.00");
	xml_el(w, 8, "CRDTAMNT", amount < 0 ? cents(-amount, a) : "0.00");
	if (text) {
		clip(text, o->f->line_len, ref);
		xml_el(w, 8, "DistRef", ref);
	}
	out_str(w, "      </taPMDistribution>\n");
}

/* PMTransactionType: the purchase distributions (DISTTYPE 6) and the
 * payables one (2), then the voucher. */
static void gp_invoice(const struct odbc *o, const struct doc *d, struct out *w)
{
	char batch[40], amount[32], text[TEXT_LEN];
	int i, seq = 0;

	gp_open(w, "PMTransactionType");
	out_str(w, "    <taPMDistribution_Items>\n");
	for (i = 0; i < d->n; i++)
		if (d->lines[i].amount)
			gp_dist(w, o, d, ++seq, 6, d->lines[i].erp_account, d->lines[i].amount,
			        d->lines[i].text);
	gp_dist(w, o, d, ++seq, 2, d->payables, -d->amount, NULL);
	out_str(w, "    </taPMDistribution_Items>\n    <taPMTransactionInsert>\n");
	xml_el(w, 6, "BACHNUMB", gp_batch(o, d, batch));
	xml_el(w, 6, "VCHNUMWK", d->number);
	xml_el(w, 6, "VENDORID", d->erp_vendor);
	xml_el(w, 6, "DOCNUMBR", d->key);
	xml_el(w, 6, "DOCTYPE", "1");
	xml_el(w, 6, "DOCAMNT", cents(d->amount, amount));
	xml_el(w, 6, "DOCDATE", d->date);
	xml_el(w, 6, "DUEDATE", d->due);
	xml_el(w, 6, "PRCHAMNT", amount);
	xml_el(w, 6, "CHRGAMNT", amount);
	if (d->text) {
		clip(d->text, o->f->head_len, text);
		xml_el(w, 6, "TRXDSCRN", text);
	}
	if (d->po) {
		clip(d->po, 20, text);
		xml_el(w, 6, "PORDNMBR", text);
	}
	xml_el(w, 6, "CURNCYID", d->erp_currency[0] ? d->erp_currency : NULL);
	xml_el(w, 6, "CREATEDIST", "0");
	out_str(w, "    </taPMTransactionInsert>\n");
	gp_close(w, "PMTransactionType");
}

/* "Pays INV-1, INV-2": GP's manual check is not applied to them by this
 * document, so its description says what to apply it to. */
static const char *paid_list(const struct doc *d, char out[TEXT_LEN])
{
	size_t o = (size_t)snprintf(out, TEXT_LEN, "Pays");
	int i;

	for (i = 0; i < d->n && o < TEXT_LEN; i++)
		o += (size_t)snprintf(out + o, TEXT_LEN - o, "%s %.60s", i ? "," : "",
		                      d->paid[i].number);
	return out;
}

/* PMManualCheckType: a check (PYENTTYP 0) from the checkbook. */
static void gp_payment(const struct odbc *o, const struct doc *d, struct out *w)
{
	char batch[40], amount[32], list[TEXT_LEN], text[TEXT_LEN];

	gp_open(w, "PMManualCheckType");
	out_str(w, "    <taPMManualCheck>\n");
	xml_el(w, 6, "BACHNUMB", gp_batch(o, d, batch));
	xml_el(w, 6, "PMNTNMBR", d->number);
	xml_el(w, 6, "VENDORID", d->erp_vendor);
	xml_el(w, 6, "DOCNUMBR", d->key);
	xml_el(w, 6, "DOCAMNT", cents(d->amount, amount));
	xml_el(w, 6, "DOCDATE", d->date);
	xml_el(w, 6, "PYENTTYP", "0");
	xml_el(w, 6, "CHEKBKID", d->erp_bank);
	clip(paid_list(d, list), o->f->head_len, text);
	xml_el(w, 6, "TRXDSCRN", text);
	out_str(w, "    </taPMManualCheck>\n");
	gp_close(w, "PMManualCheckType");
}

/* ---- Sage 300: AP invoice and payment batch imports ------------------------------ */

static const char *const s300_batch_cols[] = {"RECTYPE", "CNTBTCH", "BTCHDESC", "DATEBTCH"};
static const char *const s300_invoice_cols[] = {"RECTYPE",  "CNTBTCH", "CNTITEM",  "IDVEND",
                                                "IDINVC",   "TEXTTRX", "IDTRX",    "INVCDESC",
                                                "DATEINVC", "PONBR",   "CODECURN", "AMTGROSTOT"};
static const char *const s300_detail_cols[] = {"RECTYPE",  "CNTBTCH",  "CNTITEM", "CNTLINE",
                                               "IDGLACCT", "TEXTDESC", "AMTDIST"};
static const char *const s300_schedule_cols[] = {"RECTYPE", "CNTBTCH", "CNTITEM",
                                                 "CNTPAYM", "DATEDUE", "AMTDUE"};
static const char *const s300_pbatch_cols[] = {"RECTYPE",  "PAYMTYPE",  "CNTBTCH",
                                               "DATEBTCH", "BATCHDESC", "IDBANK"};
static const char *const s300_payment_cols[] = {"RECTYPE",  "BTCHTYPE", "CNTBTCH",  "CNTENTR",
                                                "IDVEND",   "IDRMIT",   "DATERMIT", "RMITTYPE",
                                                "PAYMTYPE", "AMTRMIT"};
static const char *const s300_applied_cols[] = {"RECTYPE", "BATCHTYPE", "CNTBTCH",
                                                "CNTRMIT", "CNTLINE",   "IDVEND",
                                                "IDINVC",  "CNTPAYM",   "AMTPAYM"};

#define S300_ROW(w, f) csv_row(w, 1, APS_ARRAY_LEN(f), f)

/* The batch's description names the one document it holds. */
static const char *s300_batch_desc(const struct doc *d, char out[TEXT_LEN])
{
	char all[400];

	snprintf(all, sizeof(all), "apsync %s %.150s %.150s", d->invoice ? "invoice" : "payment",
	         d->vendor, d->key);
	clip(all, 60, out);
	return out;
}

/* Record types 1 batch (APIBC), 2 invoice (APIBH), 3 details (APIBD), 4 the
 * payment schedule (APIBS, when the document has a due date); the first
 * lines name each record type's fields. */
static void s300_invoice(const struct odbc *o, const struct doc *d, struct out *w)
{
	char date[9], due[9], amount[32], line[32], cnt[16], desc[TEXT_LEN], head[TEXT_LEN],
	    text[TEXT_LEN], po[TEXT_LEN];
	int i, n = 0;

	csv_row(w, 1, APS_ARRAY_LEN(s300_batch_cols), s300_batch_cols);
	csv_row(w, 1, APS_ARRAY_LEN(s300_invoice_cols), s300_invoice_cols);
	csv_row(w, 1, APS_ARRAY_LEN(s300_detail_cols), s300_detail_cols);
	csv_row(w, 1, APS_ARRAY_LEN(s300_schedule_cols), s300_schedule_cols);
	clip(d->text, o->f->head_len, head);
	clip(d->po, 22, po);
	cents(d->amount, amount);
	{
		const char *f[] = {"1", "1", s300_batch_desc(d, desc), ymd(d->date, date)};
		const char *g[] = {"2",  "1",  "1", d->erp_vendor,   d->key, "1", "12",
		                   head, date, po,  d->erp_currency, amount};

		S300_ROW(w, f);
		S300_ROW(w, g);
	}
	for (i = 0; i < d->n; i++) {
		if (!d->lines[i].amount)
			continue;
		snprintf(cnt, sizeof(cnt), "%d", ++n);
		clip(d->lines[i].text, o->f->line_len, text);
		{
			const char *f[] = {"3",
			                   "1",
			                   "1",
			                   cnt,
			                   d->lines[i].erp_account,
			                   text,
			                   cents(d->lines[i].amount, line)};

			S300_ROW(w, f);
		}
	}
	if (d->due) {
		const char *f[] = {"4", "1", "1", "1", ymd(d->due, due), amount};

		S300_ROW(w, f);
	}
}

/* Sage 300's PAYMTYPE: 1 cash, 2 check, 3 credit card, 4 other. */
static const char *s300_paymtype(const char *method)
{
	if (!method || !strcmp(method, "check"))
		return "2";
	return !strcmp(method, "card") ? "3" : "4";
}

/* Record types 1 batch (APBTA), 2 payment (APTCR, RMITTYPE 1 payment), 3 the
 * documents it applies to (APTCP, the first payment schedule of each). */
static void s300_payment(const struct odbc *o, const struct doc *d, struct out *w)
{
	char date[9], amount[32], paid[32], cnt[16], desc[TEXT_LEN];
	int i;

	(void)o;
	csv_row(w, 1, APS_ARRAY_LEN(s300_pbatch_cols), s300_pbatch_cols);
	csv_row(w, 1, APS_ARRAY_LEN(s300_payment_cols), s300_payment_cols);
	csv_row(w, 1, APS_ARRAY_LEN(s300_applied_cols), s300_applied_cols);
	{
		const char *f[] = {
		    "1", "PY", "1", ymd(d->date, date), s300_batch_desc(d, desc), d->erp_bank};
		const char *g[] = {"2",
		                   "PY",
		                   "1",
		                   "1",
		                   d->erp_vendor,
		                   d->key,
		                   date,
		                   "1",
		                   s300_paymtype(d->method),
		                   cents(d->amount, amount)};

		S300_ROW(w, f);
		S300_ROW(w, g);
	}
	for (i = 0; i < d->n; i++) {
		snprintf(cnt, sizeof(cnt), "%d", i + 1);
		{
			const char *f[] = {"3",
			                   "PY",
			                   "1",
			                   "1",
			                   cnt,
			                   d->erp_vendor,
			                   d->paid[i].number,
			                   "1",
			                   cents(d->paid[i].amount, paid)};

			S300_ROW(w, f);
		}
	}
}

static const struct format formats[] = {
    {"sage100_vi", ".csv", "your Visual Integrator jobs import from", 10, 10, 10, 1, 30, 30, 0, 1,
     s100_invoice, s100_payment},
    {"gp_econnect", ".xml", "from which your job hands each file to eConnect", 15, 20, 20, 15, 30,
     30, 2, 0, gp_invoice, gp_payment},
    {"sage300_import", ".csv", "your Sage 300 AP imports read", 12, 22, 18, 8, 60, 60, 1, 0,
     s300_invoice, s300_payment},
};

/* ---- checking documents --------------------------------------------------------- */

static const char *dstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* YYYY-MM-DD, a real day. */
static int valid_date(const char *s)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int i, y, m, d, leap;

	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return 0;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return y >= 1900 && m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1] + (m == 2 && leap);
}

/* A decimal member; APS_ERR_NOTFOUND when absent and optional. Money
 * (whole_cents) has at most 2 decimals. */
static int decimal(const cJSON *o, const char *name, int required, int whole_cents,
                   const char *what, int64_t *v, char *err, size_t errlen)
{
	const char *s = dstr(o, name);

	if (!s && !required)
		return APS_ERR_NOTFOUND;
	if (!s || aps_dec_parse(s, v)) {
		snprintf(err, errlen, "%s: \"%s\" %s a decimal string such as \"12.50\"", what,
		         name, s ? "is not" : "must be");
		return APS_ERR_INVAL;
	}
	if (whole_cents && *v % 100) {
		snprintf(err, errlen, "%s: \"%s\" is %s, with more than 2 decimals", what, name, s);
		return APS_ERR_INVAL;
	}
	return APS_OK;
}

/* A key the ERP keeps in a field of `max` characters. */
static int check_key(const char *what, const char *s, int max, const char *product, char *err,
                     size_t errlen)
{
	if (key_fits(s, max))
		return APS_OK;
	snprintf(err, errlen,
	         "%s \"%.64s\" does not fit %s, which keeps at most %d characters "
	         "without control characters",
	         what, s, product, max);
	return APS_ERR_ERP;
}

static int check_line(const cJSON *l, int n, struct line *out, char *err, size_t errlen)
{
	char what[32];
	int64_t q, p;
	__int128 v;
	int rc;

	snprintf(what, sizeof(what), "line %d", n);
	if (!cJSON_IsObject(l)) {
		snprintf(err, errlen, "%s is not an object", what);
		return APS_ERR_INVAL;
	}
	rc = decimal(l, "quantity", 1, 0, what, &q, err, errlen);
	if (!rc)
		rc = decimal(l, "unit_price", 1, 0, what, &p, err, errlen);
	if (rc)
		return rc;
	v = (__int128)q * p;
	if (v >= LINE_LIMIT || v <= -LINE_LIMIT) {
		snprintf(err, errlen, "%s: quantity × unit_price is too large", what);
		return APS_ERR_INVAL;
	}
	out->amount = aps_dec_round(aps_dec_mul(q, p), 2);
	out->account = dstr(l, "gl_account");
	out->text = dstr(l, "description") ? dstr(l, "description") : dstr(l, "item");
	if (!out->account) {
		snprintf(err, errlen,
		         "%s has no gl_account: the AP import takes GL distributions only (an "
		         "invoice of items or matched to a PO is entered in the ERP's purchasing)",
		         what);
		return APS_ERR_ERP;
	}
	if (dstr(l, "tax_code")) {
		snprintf(err, errlen,
		         "%s has tax code \"%.32s\": import files carry no tax codes (the ERP "
		         "would compute its own tax); send the tax as a line on the tax account",
		         what, dstr(l, "tax_code"));
		return APS_ERR_ERP;
	}
	return APS_OK;
}

static int check_currency(const char *c, char *err, size_t errlen)
{
	if (!c || (strlen(c) == 3 && isupper((unsigned char)c[0]) && isupper((unsigned char)c[1]) &&
	           isupper((unsigned char)c[2])))
		return APS_OK;
	snprintf(err, errlen, "\"currency\" is \"%.16s\", not an ISO 4217 code such as USD", c);
	return APS_ERR_INVAL;
}

/* The PO the invoice names: the one all its lines with a PO share, if any. */
static const char *invoice_po(const cJSON *lines)
{
	const cJSON *l;
	const char *po = NULL, *s;

	cJSON_ArrayForEach(l, lines)
	{
		s = dstr(l, "po");
		if (s && po && strcmp(s, po))
			return NULL;
		if (s)
			po = s;
	}
	return po;
}

static int check_total(const cJSON *j, struct doc *d, int64_t sum, char *err, size_t errlen)
{
	char a[32], b[32];
	int64_t total;
	int rc;

	if (sum <= 0) {
		snprintf(err, errlen,
		         "the lines add up to %s: an invoice's total must be more than 0 (credit "
		         "notes are not written)",
		         cents(sum, a));
		return APS_ERR_ERP;
	}
	d->amount = sum;
	rc = decimal(j, "total", 0, 1, "the invoice", &total, err, errlen);
	if (rc == APS_ERR_NOTFOUND)
		return APS_OK;
	if (!rc && total != sum) {
		snprintf(
		    err, errlen,
		    "total_mismatch: the lines of invoice %.64s add up to %s (quantity × unit "
		    "price, each rounded to cents; import files carry no tax) but the document "
		    "says %s",
		    d->key, cents(sum, a), cents(total, b));
		rc = APS_ERR_ERP;
	}
	return rc;
}

static int check_invoice(const struct format *f, const char *product, const cJSON *j, struct doc *d,
                         char *err, size_t errlen)
{
	const cJSON *lines = cJSON_GetObjectItemCaseSensitive(j, "lines"), *l;
	int64_t sum = 0;
	int rc = APS_OK;

	d->invoice = 1;
	d->vendor = dstr(j, "vendor");
	d->key = dstr(j, "number");
	d->date = dstr(j, "date");
	d->due = dstr(j, "due_date");
	if (!d->vendor || !d->key || !valid_date(d->date) || (d->due && !valid_date(d->due)) ||
	    !cJSON_IsArray(lines) || cJSON_GetArraySize(lines) < 1 ||
	    cJSON_GetArraySize(lines) > MAX_DOC_LINES) {
		snprintf(
		    err, errlen,
		    "an invoice needs vendor, number, date (YYYY-MM-DD, as due_date) and 1..%d "
		    "lines",
		    MAX_DOC_LINES);
		return APS_ERR_INVAL;
	}
	d->currency = dstr(j, "currency");
	d->text = dstr(j, "description");
	d->po = invoice_po(lines);
	d->lines = calloc((size_t)cJSON_GetArraySize(lines), sizeof(*d->lines));
	if (!d->lines)
		return nomem(err, errlen);
	cJSON_ArrayForEach(l, lines)
	{
		rc = check_line(l, d->n + 1, &d->lines[d->n], err, errlen);
		if (rc)
			return rc;
		sum += d->lines[d->n++].amount;
	}
	rc = check_currency(d->currency, err, errlen);
	if (!rc)
		rc = check_key("vendor", d->vendor, f->vendor_len, product, err, errlen);
	if (!rc)
		rc = check_key("invoice number", d->key, f->number_len, product, err, errlen);
	return rc ? rc : check_total(j, d, sum, err, errlen);
}

static int check_paid(const cJSON *it, struct doc *d, char *err, size_t errlen)
{
	struct paid *p = &d->paid[d->n];
	int i, rc;

	p->number = dstr(it, "number");
	if (!p->number) {
		snprintf(err, errlen, "paid invoice %d lacks its number", d->n + 1);
		return APS_ERR_INVAL;
	}
	rc = decimal(it, "amount", 1, 1, p->number, &p->amount, err, errlen);
	if (!rc && p->amount <= 0) {
		snprintf(err, errlen, "%.64s: the amount paid must be more than 0", p->number);
		rc = APS_ERR_INVAL;
	}
	for (i = 0; !rc && i < d->n; i++)
		if (!strcmp(d->paid[i].number, p->number)) {
			snprintf(err, errlen, "invoice %.64s is listed twice", p->number);
			rc = APS_ERR_INVAL;
		}
	return rc;
}

static int check_method(const char *m, char *err, size_t errlen)
{
	if (!m || !strcmp(m, "check") || !strcmp(m, "ach") || !strcmp(m, "wire") ||
	    !strcmp(m, "card"))
		return APS_OK;
	snprintf(err, errlen, "\"method\" is \"%.32s\", not check, ach, wire or card", m);
	return APS_ERR_INVAL;
}

static int check_payment(const struct format *f, const char *product, const cJSON *j, struct doc *d,
                         char *err, size_t errlen)
{
	const cJSON *invs = cJSON_GetObjectItemCaseSensitive(j, "invoices"), *it;
	char a[32], b[32];
	int64_t sum = 0;
	int rc;

	d->vendor = dstr(j, "vendor");
	d->key = dstr(j, "reference");
	d->date = dstr(j, "date");
	d->bank = dstr(j, "bank_account");
	d->method = dstr(j, "method");
	if (!d->vendor || !d->key || !valid_date(d->date) || !d->bank || !cJSON_IsArray(invs) ||
	    cJSON_GetArraySize(invs) < 1 || cJSON_GetArraySize(invs) > MAX_DOC_LINES) {
		snprintf(err, errlen,
		         "a payment needs vendor, reference, date (YYYY-MM-DD), bank_account, "
		         "amount and the 1..%d invoices it pays",
		         MAX_DOC_LINES);
		return APS_ERR_INVAL;
	}
	rc = decimal(j, "amount", 1, 1, "the payment", &d->amount, err, errlen);
	if (!rc)
		rc = check_method(d->method, err, errlen);
	if (!rc && !(d->paid = calloc((size_t)cJSON_GetArraySize(invs), sizeof(*d->paid))))
		rc = nomem(err, errlen);
	cJSON_ArrayForEach(it, invs)
	{
		if (!rc)
			rc = check_paid(it, d, err, errlen);
		if (!rc)
			sum += d->paid[d->n++].amount;
	}
	if (!rc && sum != d->amount) {
		snprintf(
		    err, errlen,
		    "the payment's amount %s is not the sum %s of what it pays on each invoice",
		    cents(d->amount, a), cents(sum, b));
		rc = APS_ERR_INVAL;
	}
	if (!rc)
		rc = check_key("vendor", d->vendor, f->vendor_len, product, err, errlen);
	if (!rc)
		rc = check_key("payment reference", d->key, f->reference_len, product, err, errlen);
	if (!rc)
		rc = check_key("bank account", d->bank, f->bank_len, product, err, errlen);
	for (it = invs->child; !rc && it; it = it->next)
		rc = check_key("paid invoice number", dstr(it, "number"), f->number_len, product,
		               err, errlen);
	return rc;
}

/* ---- names ---------------------------------------------------------------------- */

/* A hash of a document's natural key, as upper-case hex. */
static int key_hash(int invoice, const char *vendor, const char *key, char hex[65])
{
	size_t lv = strlen(vendor), lk = strlen(key);
	uint8_t h[32];
	char *buf = malloc(lv + lk + 2);
	int i;

	if (!buf)
		return APS_ERR_NOMEM;
	buf[0] = invoice ? 'I' : 'P';
	memcpy(buf + 1, vendor, lv + 1); /* its NUL separates the two */
	memcpy(buf + 2 + lv, key, lk);
	aps_sha256(buf, lv + lk + 2, h);
	free(buf);
	aps_hex(h, sizeof(h), hex);
	for (i = 0; hex[i]; i++)
		hex[i] = (char)toupper((unsigned char)hex[i]);
	return APS_OK;
}

/* A key as file name characters: ASCII letters, digits and '-' stay, every
 * other byte becomes +XX, so that different keys never share a name. */
static void name_part(const char *s, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;

	for (; *p && o + 4 < outlen; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-')
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, outlen - o, "+%02X", *p);
	}
	out[o] = '\0';
}

/* AP-INV_<vendor>_<number>.ext, AP-PAY_<vendor>_<reference>.ext; a name too
 * long for a record id keeps its start and a hash of the whole key. */
static int doc_name(const struct format *f, int invoice, const char *vendor, const char *key,
                    char out[ID_LEN])
{
	const char *prefix = invoice ? "AP-INV_" : "AP-PAY_";
	char v[256], k[256], body[520], hex[65];
	size_t cut = 0, step;

	name_part(vendor, v, sizeof(v));
	name_part(key, k, sizeof(k));
	snprintf(body, sizeof(body), "%s_%s", v, k);
	if (snprintf(out, ID_LEN, "%s%s%s", prefix, body, f->ext) < ID_LEN)
		return APS_OK;
	if (key_hash(invoice, vendor, key, hex))
		return APS_ERR_NOMEM;
	while (body[cut] && cut + (step = body[cut] == '+' ? 3 : 1) <= 28)
		cut += step;
	snprintf(out, ID_LEN, "%s%.*s~%.16s%s", prefix, (int)cut, body, hex, f->ext);
	return APS_OK;
}

/* GP's voucher (invoices) or payment number: 17 characters from the key, the
 * same on every retry. Empty for the other ERPs, which number on import. */
static int doc_number(const struct format *f, int invoice, const char *vendor, const char *key,
                      char out[32])
{
	char hex[65];

	out[0] = '\0';
	if (strcmp(f->name, "gp_econnect"))
		return APS_OK;
	if (key_hash(invoice, vendor, key, hex))
		return APS_ERR_NOMEM;
	snprintf(out, 32, "%s%.*s", invoice ? "APS" : "APSP", invoice ? 14 : 13, hex);
	return APS_OK;
}

/* ---- the ERP's queries ---------------------------------------------------------- */

/* Turns the placeholders into ?s and prepares the statement. */
static int prepare(struct erp *e, struct odbc *o, struct query *q, char *err, size_t errlen)
{
	struct aps_buf b = {0};
	const char *s = q->sql, *p;
	int i, over = 0, rc;

	q->n = 0;
	while ((p = strchr(s, '{'))) {
		over |= aps_buf_append(&b, s, (size_t)(p - s));
		for (i = 0; i < PH__COUNT && strncmp(p, ph_names[i], strlen(ph_names[i])); i++)
			;
		if (i == PH__COUNT || q->n == MAX_PARAMS) {
			over |= aps_buf_append_str(&b, "{");
			s = p + 1;
			continue;
		}
		q->ph[q->n++] = (enum ph)i;
		over |= aps_buf_append_str(&b, "?");
		s = p + strlen(ph_names[i]);
	}
	over |= aps_buf_append_str(&b, s);
	over |= aps_buf_terminate(&b);
	if (over) {
		aps_buf_free(&b);
		return nomem(err, errlen);
	}
	rc = sqldb_prepare(sqlmap_db(e), (const char *)b.data, &q->st, err, errlen);
	aps_buf_free(&b);
	if (rc && rc != APS_ERR_BUSY && rc != APS_ERR_NOMEM) {
		size_t n = strlen(err);

		snprintf(err + n, errlen - n, " (a \"writes\" query of the %s profile)",
		         o->profile);
	}
	return rc;
}

static void copy_trimmed(char *dst, size_t len, const char *src)
{
	size_t n;

	snprintf(dst, len, "%s", src);
	n = strlen(dst);
	while (n && dst[n - 1] == ' ')
		dst[--n] = '\0';
}

/* Runs a query with args[PH_*] bound; r holds its first row, if any. */
static int run_query(struct erp *e, struct odbc *o, struct query *q,
                     const char *const args[PH__COUNT], struct row *r, char *err, size_t errlen)
{
	const char *v;
	int i, rc, got;

	memset(r, 0, sizeof(*r));
	if (!q->st && (rc = prepare(e, o, q, err, errlen)))
		return rc;
	for (i = 0; i < q->n; i++)
		if (sqldb_bind_text(q->st, i + 1, args[q->ph[i]]))
			return nomem(err, errlen);
	rc = sqldb_step(q->st, &got, err, errlen);
	if (!rc && got) {
		r->found = 1;
		for (i = 0; i < NCOLS; i++) {
			v = i < sqldb_ncols(q->st) ? sqldb_text(q->st, i) : NULL;
			copy_trimmed(r->col[i], sizeof(r->col[i]), v ? v : "");
		}
	}
	sqldb_reset(q->st);
	return rc;
}

/* The vendor as the file names it, and its payables account (column 3). */
static int resolve_vendor(struct erp *e, struct odbc *o, struct doc *d, char *err, size_t errlen)
{
	const char *args[PH__COUNT] = {d->company, d->vendor, NULL, NULL, d->vendor};
	struct row r;
	int rc;

	snprintf(d->erp_vendor, sizeof(d->erp_vendor), "%s", d->vendor);
	if (!o->q[Q_VENDOR].sql)
		return APS_OK;
	rc = run_query(e, o, &o->q[Q_VENDOR], args, &r, err, errlen);
	if (rc)
		return rc;
	if (!r.found) {
		snprintf(err, errlen, "vendor \"%.64s\" is not in company %.64s of %s", d->vendor,
		         d->company, sqlmap_product(e));
		return APS_ERR_NOTFOUND;
	}
	if (r.col[1][0]) {
		snprintf(err, errlen, "vendor \"%.64s\" is %.64s in %s: it takes no documents",
		         d->vendor, r.col[1], sqlmap_product(e));
		return APS_ERR_ERP;
	}
	if (r.col[0][0])
		snprintf(d->erp_vendor, sizeof(d->erp_vendor), "%s", r.col[0]);
	snprintf(d->payables, sizeof(d->payables), "%s", r.col[2]);
	return APS_OK;
}

/* A value as the file names it (column 1), through the profile's query; the
 * value itself when the profile has none. Column 2 says why it cannot be used. */
static int resolve_value(struct erp *e, struct odbc *o, int qi, const struct doc *d,
                         const char *what, const char *value, char out[COL_LEN], char *err,
                         size_t errlen)
{
	const char *args[PH__COUNT] = {d->company, d->vendor, NULL, NULL, value};
	struct row r;
	int rc;

	snprintf(out, COL_LEN, "%s", value);
	if (!o->q[qi].sql)
		return APS_OK;
	rc = run_query(e, o, &o->q[qi], args, &r, err, errlen);
	if (rc)
		return rc;
	if (!r.found) {
		snprintf(err, errlen, "%s \"%.64s\" is not in company %.64s of %s", what, value,
		         d->company, sqlmap_product(e));
		return APS_ERR_NOTFOUND;
	}
	if (r.col[1][0]) {
		snprintf(err, errlen, "%s \"%.64s\" is %.64s in %s", what, value, r.col[1],
		         sqlmap_product(e));
		return APS_ERR_ERP;
	}
	if (r.col[0][0])
		snprintf(out, COL_LEN, "%s", r.col[0]);
	return APS_OK;
}

/* The currency the file names: Sage 300 always writes one; GP only another
 * than the company's, mapped to its currency id; Sage 100 takes none. */
static int resolve_currency(struct erp *e, struct odbc *o, struct doc *d, const char *home,
                            char *err, size_t errlen)
{
	const char *cur = d->currency ? d->currency : home;

	d->erp_currency[0] = '\0';
	if (o->f->currencies == 1) {
		snprintf(d->erp_currency, sizeof(d->erp_currency), "%s", cur);
		return APS_OK;
	}
	if (!d->currency || !strcmp(d->currency, home))
		return APS_OK;
	if (o->f->currencies == 0 || !o->q[Q_CURRENCY].sql) {
		snprintf(err, errlen,
		         "the document is in %s but %s takes company %.64s's documents in %s only",
		         d->currency, sqlmap_product(e), d->company,
		         home[0] ? home : "its currency");
		return APS_ERR_ERP;
	}
	return resolve_value(e, o, Q_CURRENCY, d, "currency", d->currency, d->erp_currency, err,
	                     errlen);
}

/* Sage 100 vendor codes are APDivisionNo-VendorNo (01-ACME001). */
static int split_division(const char *product, struct doc *d, char *err, size_t errlen)
{
	const char *dash = strchr(d->erp_vendor, '-');

	if (!dash || dash - d->erp_vendor != 2 || !dash[1] || strlen(dash + 1) > 7) {
		snprintf(
		    err, errlen,
		    "vendor \"%.64s\" is not a %s vendor code DD-VENDOR (APDivisionNo-VendorNo, "
		    "as the profile reads vendors)",
		    d->vendor, product);
		return APS_ERR_ERP;
	}
	snprintf(d->div, sizeof(d->div), "%.2s", d->erp_vendor);
	snprintf(d->vno, sizeof(d->vno), "%s", dash + 1);
	return APS_OK;
}

static int resolve_lines(struct erp *e, struct odbc *o, struct doc *d, char *err, size_t errlen)
{
	char what[48];
	int i, rc = APS_OK;

	for (i = 0; i < d->n && !rc; i++) {
		snprintf(what, sizeof(what), "line %d: GL account", i + 1);
		rc = resolve_value(e, o, Q_ACCOUNT, d, what, d->lines[i].account,
		                   d->lines[i].erp_account, err, errlen);
	}
	return rc;
}

/* What the ERP calls what the document names; refuses what it has not. */
static int resolve(struct erp *e, struct odbc *o, struct doc *d, char *err, size_t errlen)
{
	const char *home = sqlmap_company_currency(e, d->company);
	int rc;

	if (!home) {
		snprintf(err, errlen, "company \"%.64s\" is not in %s; check the company code",
		         d->company, sqlmap_product(e));
		return APS_ERR_NOTFOUND;
	}
	rc = resolve_vendor(e, o, d, err, errlen);
	if (!rc && o->f->split_division)
		rc = split_division(sqlmap_product(e), d, err, errlen);
	if (!rc && d->invoice)
		rc = resolve_lines(e, o, d, err, errlen);
	if (!rc && d->invoice)
		rc = resolve_currency(e, o, d, home, err, errlen);
	if (!rc && !d->invoice)
		rc = resolve_value(e, o, Q_BANK, d, "bank account", d->bank, d->erp_bank, err,
		                   errlen);
	if (!rc && d->invoice && !strcmp(o->f->name, "gp_econnect") && !d->payables[0]) {
		snprintf(
		    err, errlen,
		    "vendor \"%.64s\" has no payables account in %s (the profile's vendor query "
		    "gives none): the invoice's payables distribution needs one",
		    d->vendor, sqlmap_product(e));
		rc = APS_ERR_ERP;
	}
	return rc;
}

/* ---- the drop folder -------------------------------------------------------------- */

static int hexdigit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* --erp-url file:///DIR (or file://localhost/DIR, %XX escapes decoded). */
static void parse_url(struct odbc *o, const char *product, const char *url)
{
	const char *p;
	size_t n = 0;
	int c;

	o->dir[0] = '\0';
	if (!url || !url[0]) {
		snprintf(o->why_no_dir, sizeof(o->why_no_dir),
		         "%s takes invoices and payments as import files: give --erp-url "
		         "file:///DIR, the folder %s",
		         product, o->f->importer);
		return;
	}
	p = !strncmp(url, "file://localhost/", 17) ? url + 16 : url + 7;
	if (strncmp(url, "file://", 7) || *p != '/')
		goto bad;
	for (; *p; p++) {
		c = (unsigned char)*p;
		if (c == '%' && (hexdigit(p[1]) < 0 || hexdigit(p[2]) < 0))
			goto bad;
		if (c == '%') {
			c = hexdigit(p[1]) * 16 + hexdigit(p[2]);
			p += 2;
		}
		if (!c || n + 1 >= sizeof(o->dir))
			goto bad;
		o->dir[n++] = (char)c;
	}
	while (n > 1 && o->dir[n - 1] == '/')
		n--;
	o->dir[n] = '\0';
	return;
bad:
	o->dir[0] = '\0';
	snprintf(o->why_no_dir, sizeof(o->why_no_dir),
	         "--erp-url \"%.200s\" is not a file:/// URL of a folder; %s takes invoices and "
	         "payments as import files: give --erp-url file:///DIR, the folder %s",
	         url, product, o->f->importer);
}

static int drop_dir(const struct odbc *o, char *err, size_t errlen)
{
	struct stat st;

	if (!o->dir[0]) {
		snprintf(err, errlen, "%s", o->why_no_dir);
		return APS_ERR_INVAL;
	}
	if (stat(o->dir, &st)) {
		snprintf(err, errlen,
		         "the import folder %s is not there (%s); is its share mounted?", o->dir,
		         strerror(errno));
		return APS_ERR_IO;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "the import folder %s is not a folder; check --erp-url",
		         o->dir);
		return APS_ERR_IO;
	}
	return APS_OK;
}

/* Where import jobs leave a file once they have taken it. */
static const char *const done_dirs[] = {"", "done/", "processed/", "Done/", "Processed/"};

/* Looks for a document's file in the drop folder and its done subfolders. */
static int find_file(const struct odbc *o, const char *name, char path[PATH_MAX], int *found,
                     char *err, size_t errlen)
{
	struct stat st;
	size_t i;

	*found = 0;
	for (i = 0; i < APS_ARRAY_LEN(done_dirs); i++) {
		if (snprintf(path, PATH_MAX, "%s/%s%s", o->dir, done_dirs[i], name) >= PATH_MAX) {
			snprintf(err, errlen, "the import folder's path %.200s is too long",
			         o->dir);
			return APS_ERR_RANGE;
		}
		if (!stat(path, &st)) {
			*found = S_ISREG(st.st_mode);
			if (*found)
				return APS_OK;
			continue;
		}
		if (errno != ENOENT && errno != ENOTDIR) {
			snprintf(err, errlen, "cannot look for the import file %s: %s", path,
			         strerror(errno));
			return APS_ERR_IO;
		}
	}
	return APS_OK;
}

/* file:///… with the bytes a URL cannot hold escaped; "" when too long. */
static void file_url(const char *path, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)path;
	size_t o = (size_t)snprintf(out, outlen, "file://");

	for (; *p && o + 4 < outlen; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("/._-~", *p))
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, outlen - o, "%%%02X", *p);
	}
	out[o] = '\0';
	if (*p)
		out[0] = '\0';
}

static void file_ref(const char *name, const char *path, const char *number, const char *state,
                     struct erp_doc_ref *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", name);
	snprintf(out->number, sizeof(out->number), "%s", number);
	snprintf(out->state, sizeof(out->state), "%s", state);
	file_url(path, out->link, sizeof(out->link));
}

static int io_fail(const char *doing, const char *path, int e, char *err, size_t errlen)
{
	snprintf(err, errlen, "cannot %s the import file %s: %s", doing, path, strerror(e));
	return APS_ERR_IO;
}

/* Puts the file in place under its name unless one is there already, which
 * it never replaces. *existed: a file of that name was there. */
static int publish(const char *tmp, const char *path, int *existed, char *err, size_t errlen)
{
	int rc = aps_file_publish(tmp, path);

	*existed = rc == APS_ERR_EXISTS;
	if (*existed) {
		unlink(tmp);
		return APS_OK;
	}
	return rc ? io_fail("create", path, errno, err, errlen) : APS_OK;
}

/* Writes NAME in DIR atomically: a hidden temporary file, written and synced,
 * then put in place (the import job never sees a partial file). */
static int write_new(const char *dir, const char *name, const struct aps_buf *b, int *existed,
                     char *err, size_t errlen)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	int fd, bad, e, rc;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.apsync-%ld-%s.part", dir, (long)getpid(), name) >=
	        (int)sizeof(tmp)) {
		snprintf(err, errlen, "the import folder's path %.200s is too long", dir);
		return APS_ERR_RANGE;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		return io_fail("create", tmp, errno, err, errlen);
	bad = aps_write_all(fd, b->data, b->len) || aps_file_sync(fd);
	e = errno;
	if (close(fd) && !bad) {
		bad = 1;
		e = errno;
	}
	if (bad) {
		unlink(tmp);
		return io_fail("write", tmp, e, err, errlen);
	}
	rc = publish(tmp, path, existed, err, errlen);
	if (rc)
		unlink(tmp);
	else
		aps_dir_sync(dir);
	return rc;
}

/* ---- the profile's "writes" ------------------------------------------------------- */

static int bad_writes(const char *path, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "the ERP profile %s is not valid: %s", path, what);
	return APS_ERR_INVAL;
}

/* A SQL text: a string, or an object keyed by dialect with a "default". */
static const char *dialect_sql(struct erp *e, const cJSON *v)
{
	const cJSON *d;

	if (cJSON_IsString(v))
		return v->valuestring;
	d = cJSON_GetObjectItemCaseSensitive(v, sqldb_dialect_name(sqldb_dialect(sqlmap_db(e))));
	if (!cJSON_IsString(d))
		d = cJSON_GetObjectItemCaseSensitive(v, "default");
	return cJSON_IsString(d) ? d->valuestring : NULL;
}

static int parse_batch(struct odbc *o, const cJSON *v)
{
	size_t i;

	if (!v) {
		snprintf(o->batch, sizeof(o->batch), "APSYNC");
		return APS_OK;
	}
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > 8)
		return APS_ERR_INVAL;
	for (i = 0; v->valuestring[i]; i++)
		if (!isupper((unsigned char)v->valuestring[i]) &&
		    !isdigit((unsigned char)v->valuestring[i]))
			return APS_ERR_INVAL;
	snprintf(o->batch, sizeof(o->batch), "%s", v->valuestring);
	return APS_OK;
}

static int parse_writes(struct erp *e, struct odbc *o, const cJSON *w, const char *path, char *err,
                        size_t errlen)
{
	const cJSON *v, *g;
	const char *sql;
	size_t i;

	if (!cJSON_IsObject(w))
		return bad_writes(path, "\"writes\" is not an object", err, errlen);
	v = cJSON_GetObjectItemCaseSensitive(w, "format");
	for (i = 0; cJSON_IsString(v) && i < APS_ARRAY_LEN(formats); i++)
		if (!strcmp(v->valuestring, formats[i].name))
			o->f = &formats[i];
	if (!o->f)
		return bad_writes(path,
		                  "writes.format is sage100_vi, gp_econnect or sage300_import", err,
		                  errlen);
	if (parse_batch(o, cJSON_GetObjectItemCaseSensitive(w, "batch_prefix")))
		return bad_writes(path, "writes.batch_prefix is 1 to 8 capital letters or digits",
		                  err, errlen);
	for (i = 0; i < Q__COUNT; i++) {
		g = cJSON_GetObjectItemCaseSensitive(w, q_names[i].group);
		v = cJSON_GetObjectItemCaseSensitive(g, q_names[i].name);
		if (v && !cJSON_IsString(v) && !cJSON_IsObject(v)) {
			char what[96];

			snprintf(what, sizeof(what),
			         "writes.%s.%s is neither SQL nor an object by dialect",
			         q_names[i].group, q_names[i].name);
			return bad_writes(path, what, err, errlen);
		}
		sql = dialect_sql(e, v);
		if (sql && !(o->q[i].sql = strdup(sql)))
			return nomem(err, errlen);
	}
	return APS_OK;
}

/* Reads the profile again (sqlmap keeps only what it reads) for "writes". */
static int load_writes(struct erp *e, struct odbc *o, const char *profile,
                       const struct erp_settings *cfg, char *err, size_t errlen)
{
	const char *dir = cfg && cfg->profiles ? cfg->profiles : APSYNC_PROFILE_DIR;
	char path[PATH_MAX], *text = NULL;
	cJSON *p, *w;
	int rc;

	if (strchr(profile, '/') || strstr(profile, ".json"))
		snprintf(path, sizeof(path), "%s", profile);
	else
		snprintf(path, sizeof(path), "%s/%s.json", dir, profile);
	snprintf(o->profile, sizeof(o->profile), "%s", profile);
	if (aps_read_file(path, 4u << 20, &text, NULL)) {
		snprintf(err, errlen, "cannot read the ERP profile %s again", path);
		return APS_ERR_IO;
	}
	p = cJSON_Parse(text);
	free(text);
	w = cJSON_GetObjectItemCaseSensitive(p, "writes");
	rc = w ? parse_writes(e, o, w, path, err, errlen) : APS_OK;
	cJSON_Delete(p);
	if (!rc && o->f)
		parse_url(o, sqlmap_product(e), cfg ? cfg->url : NULL);
	return rc;
}

static void odbc_free(void *ext)
{
	struct odbc *o = ext;
	int i;

	for (i = 0; o && i < Q__COUNT; i++) {
		if (o->q[i].st)
			sqldb_finalize(o->q[i].st);
		free(o->q[i].sql);
	}
	free(o);
}

/* "odbc:PROFILE:CONNECTION" */
static int odbc_open(const char *target, const struct erp_settings *cfg, struct erp **out,
                     char *err, size_t errlen)
{
	const char *colon = strchr(target, ':');
	char profile[256];
	struct odbc *o;
	int rc;

	*out = NULL;
	if (!colon || colon == target || (size_t)(colon - target) >= sizeof(profile)) {
		snprintf(err, errlen,
		         "--erp odbc: needs PROFILE:CONNECTION, e.g. odbc:sage100:DSN=SAGE100_ABC");
		return APS_ERR_INVAL;
	}
	memcpy(profile, target, (size_t)(colon - target));
	profile[colon - target] = '\0';
	rc = sqlmap_open(profile, "odbc", colon + 1, cfg, out, err, errlen);
	if (rc)
		return rc;
	o = calloc(1, sizeof(*o));
	if (!o)
		rc = nomem(err, errlen);
	else
		sqlmap_set_ext(*out, o, odbc_free);
	if (!rc)
		rc = load_writes(*out, o, profile, cfg, err, errlen);
	if (rc) {
		sqlmap_close(*out);
		*out = NULL;
	}
	return rc;
}

/* ---- lookup and writes ------------------------------------------------------------ */

static struct odbc *writes_of(struct erp *e, char *err, size_t errlen)
{
	struct odbc *o = sqlmap_ext(e);

	if (!o->f)
		snprintf(err, errlen,
		         "the %s profile has no \"writes\": it does not say which import files %s "
		         "takes, so no document is written into it",
		         o->profile, sqlmap_product(e));
	return o->f ? o : NULL;
}

/* The ERP's own AP tables, through the profile's lookup query: its id, its
 * number and its state. */
static int lookup_erp(struct erp *e, struct odbc *o, const char *company, int invoice,
                      const char *vendor, const char *key, struct erp_doc_ref *out, int *found,
                      char *err, size_t errlen)
{
	const char *args[PH__COUNT] = {company, vendor, invoice ? key : NULL, invoice ? NULL : key,
	                               NULL};
	struct row r;
	int rc;

	*found = 0;
	if (!o->q[invoice ? Q_INVOICE : Q_PAYMENT].sql)
		return APS_OK;
	rc = run_query(e, o, &o->q[invoice ? Q_INVOICE : Q_PAYMENT], args, &r, err, errlen);
	if (rc || !r.found)
		return rc;
	*found = 1;
	copy(out->id, sizeof(out->id), r.col[0][0] ? r.col[0] : key);
	copy(out->number, sizeof(out->number), r.col[1]);
	copy(out->state, sizeof(out->state), r.col[2][0] ? r.col[2] : "posted");
	return APS_OK;
}

static int odbc_lookup(struct erp *e, const char *company, const cJSON *doc,
                       struct erp_doc_ref *out, char *err, size_t errlen)
{
	const char *type = dstr(doc, "type");
	int invoice = type && !strcmp(type, "invoice"), rc, found;
	const char *vendor = dstr(doc, "vendor"),
	           *key = dstr(doc, invoice ? "number" : "reference");
	char name[ID_LEN], number[32], path[PATH_MAX];
	struct odbc *o = writes_of(e, err, errlen);

	memset(out, 0, sizeof(*out));
	if (!o)
		return APS_ERR_CONFLICT;
	if (!vendor || !key) {
		snprintf(err, errlen, "a%s needs vendor and %s", invoice ? "n invoice" : " payment",
		         invoice ? "number" : "reference");
		return APS_ERR_INVAL;
	}
	rc = lookup_erp(e, o, company, invoice, vendor, key, out, &found, err, errlen);
	if (rc || found)
		return rc;
	rc = drop_dir(o, err, errlen);
	if (!rc && (doc_name(o->f, invoice, vendor, key, name) ||
	            doc_number(o->f, invoice, vendor, key, number)))
		rc = nomem(err, errlen);
	if (!rc)
		rc = find_file(o, name, path, &found, err, errlen);
	if (rc)
		return rc;
	if (found) {
		file_ref(name, path, number, "awaiting_import", out);
		return APS_OK;
	}
	snprintf(err, errlen, "%s has no %s %.64s of vendor %.64s and %s holds no import file %s",
	         sqlmap_product(e), invoice ? "invoice" : "payment", key, vendor, o->dir, name);
	return APS_ERR_NOTFOUND;
}

/* The file of a checked and resolved document: a new one, or the one a
 * previous attempt left. */
static int put_file(struct odbc *o, struct doc *d, struct erp_doc_ref *out, char *err,
                    size_t errlen)
{
	struct out w = {{0}, 0};
	char path[PATH_MAX];
	int rc, found, existed = 0;

	rc = find_file(o, d->name, path, &found, err, errlen);
	if (!rc && found) {
		file_ref(d->name, path, d->number, "awaiting_import", out);
		return APS_OK;
	}
	if (!rc) {
		(d->invoice ? o->f->invoice : o->f->payment)(o, d, &w);
		if (w.nomem)
			rc = nomem(err, errlen);
	}
	if (!rc)
		rc = write_new(o->dir, d->name, &w.b, &existed, err, errlen);
	if (!rc) {
		if (snprintf(path, sizeof(path), "%s/%s", o->dir, d->name) >= (int)sizeof(path))
			path[0] = '\0';
		file_ref(d->name, path, d->number,
		         existed ? "awaiting_import" : "import_file_written", out);
	}
	aps_buf_free(&w.b);
	return rc;
}

static int odbc_write(struct erp *e, const char *company, const cJSON *j, int invoice,
                      struct erp_doc_ref *out, char *err, size_t errlen)
{
	struct odbc *o = writes_of(e, err, errlen);
	struct doc d;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&d, 0, sizeof(d));
	if (!o)
		return APS_ERR_CONFLICT;
	d.company = company;
	rc = invoice ? check_invoice(o->f, sqlmap_product(e), j, &d, err, errlen)
	             : check_payment(o->f, sqlmap_product(e), j, &d, err, errlen);
	if (!rc)
		rc = drop_dir(o, err, errlen);
	if (!rc)
		rc = resolve(e, o, &d, err, errlen);
	if (!rc && (doc_name(o->f, invoice, d.vendor, d.key, d.name) ||
	            doc_number(o->f, invoice, d.vendor, d.key, d.number)))
		rc = nomem(err, errlen);
	if (!rc)
		rc = put_file(o, &d, out, err, errlen);
	free(d.lines);
	free(d.paid);
	return rc;
}

static int odbc_write_invoice(struct erp *e, const char *company, const cJSON *doc,
                              struct erp_doc_ref *out, char *err, size_t errlen)
{
	return odbc_write(e, company, doc, 1, out, err, errlen);
}

static int odbc_write_payment(struct erp *e, const char *company, const cJSON *doc,
                              struct erp_doc_ref *out, char *err, size_t errlen)
{
	return odbc_write(e, company, doc, 0, out, err, errlen);
}

const struct erp_ops erp_odbc_ops = {
    .scheme = "odbc",
    .description =
        "an ERP's SQL database through ODBC, mapped by a profile (odbc:PROFILE:CONNECTION)",
    .open = odbc_open,
    .close = sqlmap_close,
    .identity = sqlmap_identity,
    .count = sqlmap_count,
    .clock = sqlmap_clock,
    .read = sqlmap_read,
    .stamped = sqlmap_stamped,
    .fingerprint = sqlmap_fingerprint,
    .write_invoice = odbc_write_invoice,
    .write_payment = odbc_write_payment,
    .lookup = odbc_lookup,
};
