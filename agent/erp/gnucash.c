/*
 * GnuCash 4.x books saved in SQLite format.
 *
 *   --erp gnucash:PATH.gnucash
 *
 * A book is one company. Its lists are read through the gnucash profile
 * (agent/erp/profiles/gnucash.json) by sqlmap, on a read-only connection that
 * is safe while GnuCash has the book open. GnuCash keeps no modification
 * times: partial syncs compare row hashes, and the fingerprint below (file
 * size, times, inode and SQLite's change counter) skips an unchanged book.
 *
 * Documents are written by plain SQL, the recipe of
 * tests/fixtures/gnucash/NOTES.md section 4, which was compared row by row
 * with what GnuCash's own engine writes: a posted vendor bill (the invoice,
 * its entries, the posting transaction and its splits, the bill's lot in A/P,
 * their slots, frozen copies of the tax tables and terms) and a payment (a
 * transaction whose A/P splits sit in the bills' lots, which is what makes
 * GnuCash see them paid). Each document is one BEGIN IMMEDIATE transaction on
 * a separate writable connection; while GnuCash has the book open (a row in
 * gnclock) nothing is written and the answer is APS_ERR_BUSY.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "erp.h"
#include "err.h"
#include "sqlmap.h"
#include "util.h"

#define BUSY_TIMEOUT_MS 2000
#define MAX_LINES       500
#define MAX_INVOICES    500
#define MAX_TAXES       16 /* distinct tax tables on one bill */
#define MAX_TAX_ENTRIES 8  /* entries of one tax table */
#define GUID_LEN        33 /* 32 hex digits and a NUL */
#define TIME_LEN        80 /* room for any int in each field */

/* slots.slot_type (GnuCash's KvpValue::Type) */
#define SLOT_INT64  1
#define SLOT_STRING 4
#define SLOT_GUID   5
#define SLOT_TIME64 6
#define SLOT_FRAME  9
#define SLOT_GDATE  10

#define OWNER_JOB    3 /* invoices.owner_type */
#define OWNER_VENDOR 4
#define TAX_PERCENT  2 /* taxtable_entries.type */
#define PAYMENT_CASH 1 /* entries.b_paytype */

/* What GnuCash writes with an English locale; it only displays them. */
#define READ_ONLY_TEXT "Generated from an invoice. Try unposting the invoice."
#define ACTION_BILL    "Bill"
#define ACTION_PAYMENT "Payment"
#define ISO_FEATURE    "features/ISO-8601 formatted date strings in SQLite3 databases."

/* The state the connector keeps beside sqlmap's. */
struct gnc {
	char *path;
	sqlite3 *db;      /* writable; opened at the first write or lookup */
	char version[32]; /* the GnuCash that last saved the book, e.g. "4.13" */
};

/* ---- exact decimal arithmetic -------------------------------------------- */

typedef __int128 i128;

/* A rational number, d > 0, in lowest terms. */
struct rat {
	i128 n, d;
};

static i128 gcd128(i128 a, i128 b)
{
	i128 t;

	if (a < 0)
		a = -a;
	while (b) {
		t = a % b;
		a = b;
		b = t;
	}
	return a ? a : 1;
}

static struct rat rat_make(i128 n, i128 d)
{
	i128 g = gcd128(n, d);

	return (struct rat){n / g, d / g};
}

/* 0, or -1 when the result does not fit. */
static int rat_add(struct rat *r, struct rat a, struct rat b)
{
	i128 x, y, d;

	if (a.d == b.d) {
		if (__builtin_add_overflow(a.n, b.n, &x))
			return -1;
		*r = rat_make(x, a.d);
		return 0;
	}
	if (__builtin_mul_overflow(a.n, b.d, &x) || __builtin_mul_overflow(b.n, a.d, &y) ||
	    __builtin_add_overflow(x, y, &x) || __builtin_mul_overflow(a.d, b.d, &d))
		return -1;
	*r = rat_make(x, d);
	return 0;
}

static int rat_mul(struct rat *r, struct rat a, struct rat b)
{
	i128 n, d, g1 = gcd128(a.n, b.d), g2 = gcd128(b.n, a.d);

	if (__builtin_mul_overflow(a.n / g1, b.n / g2, &n) ||
	    __builtin_mul_overflow(a.d / g2, b.d / g1, &d))
		return -1;
	*r = rat_make(n, d);
	return 0;
}

/* -1, 0 or 1; 2 when it cannot tell (too large). */
static int rat_cmp(struct rat a, struct rat b)
{
	struct rat neg = {-b.n, b.d}, diff;

	if (rat_add(&diff, a, neg))
		return 2;
	return diff.n < 0 ? -1 : diff.n > 0;
}

/* A decimal string ("12.50", "-3", "0.335") exactly; -1 if it is not one. */
static int rat_parse(const char *s, struct rat *out)
{
	i128 n = 0, d = 1;
	int neg = 0, digits = 0, frac = -1;

	if (!s)
		return -1;
	if (*s == '-')
		neg = 1, s++;
	for (; *s; s++) {
		if (*s == '.' && frac < 0 && digits) {
			frac = 0;
			continue;
		}
		if (*s < '0' || *s > '9' || ++digits > 24)
			return -1;
		n = n * 10 + (*s - '0');
		if (frac >= 0) {
			frac++;
			d *= 10;
		}
	}
	if (!digits || frac == 0)
		return -1;
	*out = rat_make(neg ? -n : n, d);
	return 0;
}

/* x rounded to a multiple of 1/scu, halves away from zero (GnuCash's
 * ROUND_HALF_UP), as a count of 1/scu; -1 if it does not fit. */
static int rat_units(struct rat x, long long scu, long long *out)
{
	i128 n, q, r;
	int neg = x.n < 0;

	if (__builtin_mul_overflow(neg ? -x.n : x.n, (i128)scu, &n))
		return -1;
	q = n / x.d;
	r = n % x.d;
	if (2 * r >= x.d)
		q++;
	if (q > (i128)INT64_MAX)
		return -1;
	*out = neg ? -(long long)q : (long long)q;
	return 0;
}

/* The shortest decimal num/denom of x (12.50 → 125/10), as GnuCash's
 * entries keep quantities and prices; -1 if x is not a short decimal. */
static int rat_decimal(struct rat x, long long *num, long long *den)
{
	i128 d = 1;

	while (d % x.d) {
		if (d > (i128)1000000000000LL)
			return -1;
		d *= 10;
	}
	if (x.n * (d / x.d) > (i128)INT64_MAX || x.n * (d / x.d) < (i128)INT64_MIN)
		return -1;
	*num = (long long)(x.n * (d / x.d));
	*den = (long long)d;
	return 0;
}

/* A count of 1/scu (scu a power of ten) as a decimal: 1110.57. */
static char *fmt_units(long long units, long long scu, char *buf, size_t len)
{
	unsigned long long a = units < 0 ? 0ULL - (unsigned long long)units
					 : (unsigned long long)units;
	char digits[48], *p = digits + sizeof(digits) - 1;
	int places = 0, i;
	long long s;

	for (s = scu; s > 1; s /= 10)
		places++;
	*p = '\0';
	for (i = 0; i <= places || a; i++) {
		if (i == places && places)
			*--p = '.';
		*--p = (char)('0' + a % 10);
		a /= 10;
	}
	if (units < 0)
		*--p = '-';
	snprintf(buf, len, "%s", p);
	return buf;
}

/* ---- calendar dates -------------------------------------------------------- */

struct ymd {
	int y, m, d;
};

static int leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int mdays(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* "YYYY-MM-DD", a real day; -1 if not. */
static int parse_date(const char *s, struct ymd *out)
{
	int i;

	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	out->y = atoi(s);
	out->m = atoi(s + 5);
	out->d = atoi(s + 8);
	if (out->y < 1900 || out->m < 1 || out->m > 12 || out->d < 1 ||
	    out->d > mdays(out->y, out->m))
		return -1;
	return 0;
}

static struct ymd add_days(struct ymd t, int days)
{
	while (days > 0) {
		if (t.d < mdays(t.y, t.m)) {
			t.d++;
		} else {
			t.d = 1;
			if (++t.m > 12) {
				t.m = 1;
				t.y++;
			}
		}
		days--;
	}
	return t;
}

/* gncBillTermComputeDueDate: DAYS is the post date + duedays; PROXIMO is day
 * duedays (at most the month's length) of the next month, or of the month
 * after when the post date is past the cutoff day (cutoff <= 0 counts back
 * from the month's end). */
static struct ymd due_from_terms(struct ymd post, const char *type, int days, int cutoff)
{
	struct ymd due = post;

	if (!type || strcmp(type, "GNC_TERM_TYPE_PROXIMO"))
		return add_days(post, days > 0 ? days : 0);
	if (cutoff <= 0)
		cutoff += mdays(post.y, post.m);
	due.m += post.d <= cutoff ? 1 : 2;
	if (due.m > 12) {
		due.m -= 12;
		due.y++;
	}
	due.d = days < 1 ? 1 : days > mdays(due.y, due.m) ? mdays(due.y, due.m) : days;
	return due;
}

/* ---- one document's transaction ------------------------------------------ */

struct acct {
	char guid[GUID_LEN];
	char type[24];
	char commodity[GUID_LEN];
	long long scu;
	int placeholder;
	char *key, *path;
};

struct wr {
	struct gnc *g;
	sqlite3 *db;
	int iso;                         /* times as YYYY-MM-DD HH:MM:SS, else YYYYMMDDHHMMSS */
	char now[TIME_LEN], epoch[TIME_LEN];
	char book[GUID_LEN];
	struct acct *accts;              /* the account tree, loaded when needed */
	int naccts;
	char *err;
	size_t errlen;
};

static int refuse(struct wr *w, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int refuse(struct wr *w, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->err, w->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static int db_fail(struct wr *w, int src)
{
	if ((src & 0xff) == SQLITE_BUSY || (src & 0xff) == SQLITE_LOCKED)
		return refuse(w, APS_ERR_BUSY,
			      "another program is writing to the GnuCash book %s right now; "
			      "try again in a moment",
			      w->g->path);
	return refuse(w, APS_ERR_ERP, "the GnuCash book %s failed: %s", w->g->path,
		      sqlite3_errmsg(w->db));
}

/* Binds parameters described by TYPES: 's' a string (NULL binds NULL), 'i' a
 * long long. */
static int bind_va(sqlite3_stmt *st, const char *types, va_list ap)
{
	const char *s;
	int i, src = SQLITE_OK;

	for (i = 0; types[i] && src == SQLITE_OK; i++) {
		if (types[i] == 'i') {
			src = sqlite3_bind_int64(st, i + 1, va_arg(ap, long long));
		} else {
			s = va_arg(ap, const char *);
			src = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT)
				: sqlite3_bind_null(st, i + 1);
		}
	}
	return src;
}

/* Prepares SQL with its parameters bound; the caller steps and finalizes. */
static int q_open(struct wr *w, sqlite3_stmt **st, const char *sql, const char *types, ...)
{
	va_list ap;
	int src;

	*st = NULL;
	src = sqlite3_prepare_v2(w->db, sql, -1, st, NULL);
	if (src == SQLITE_OK) {
		va_start(ap, types);
		src = bind_va(*st, types, ap);
		va_end(ap);
	}
	if (src != SQLITE_OK) {
		src = db_fail(w, src);
		sqlite3_finalize(*st);
		*st = NULL;
		return src;
	}
	return APS_OK;
}

/* *row = 1 with a row, 0 at the end. */
static int q_step(struct wr *w, sqlite3_stmt *st, int *row)
{
	int src = sqlite3_step(st);

	*row = src == SQLITE_ROW;
	return src == SQLITE_ROW || src == SQLITE_DONE ? APS_OK : db_fail(w, src);
}

/* Runs a statement that returns no rows. */
static int q_exec(struct wr *w, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int src;

	src = sqlite3_prepare_v2(w->db, sql, -1, &st, NULL);
	if (src == SQLITE_OK) {
		va_start(ap, types);
		src = bind_va(st, types, ap);
		va_end(ap);
	}
	if (src == SQLITE_OK)
		src = sqlite3_step(st);
	sqlite3_finalize(st);
	return src == SQLITE_DONE || src == SQLITE_ROW ? APS_OK : db_fail(w, src);
}

static const char *col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* Copies at most len - 1 bytes of SRC (NULL: empty). */
static void copy(char *dst, size_t len, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= len)
		n = len - 1;
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

static int new_guid(struct wr *w, char out[GUID_LEN])
{
	unsigned char b[16];

	if (aps_random(b, sizeof(b)))
		return refuse(w, APS_ERR_INTERNAL, "the system's random generator failed");
	aps_hex(b, sizeof(b), out);
	return APS_OK;
}

static void fmt_time(const struct wr *w, int y, int mo, int d, int h, int mi, int s,
		     char out[TIME_LEN])
{
	if (w->iso)
		snprintf(out, TIME_LEN, "%04d-%02d-%02d %02d:%02d:%02d", y, mo, d, h, mi, s);
	else
		snprintf(out, TIME_LEN, "%04d%02d%02d%02d%02d%02d", y, mo, d, h, mi, s);
}

/* A calendar date as GnuCash stores one: 10:59:00 UTC that day (its
 * "neutral time"), so it shows as the same day in every time zone. */
static void fmt_date(const struct wr *w, struct ymd t, char out[TIME_LEN])
{
	fmt_time(w, t.y, t.m, t.d, 10, 59, 0, out);
}

/* One slots row as GnuCash writes it: every column at its neutral value
 * except the one of its type. VAL is the string, GUID, time or date; NUM the
 * integer. */
static int slot(struct wr *w, const char *obj, const char *name, int type, const char *val,
		long long num)
{
	return q_exec(w,
		      "INSERT INTO slots (obj_guid, name, slot_type, int64_val, string_val, "
		      "double_val, timespec_val, guid_val, numeric_val_num, numeric_val_denom, "
		      "gdate_val) VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7, 0, 1, ?8)",
		      "ssiissss", obj, name, (long long)type,
		      type == SLOT_INT64 ? num : 0LL, type == SLOT_STRING ? val : NULL,
		      type == SLOT_TIME64 ? val : w->epoch,
		      type == SLOT_GUID || type == SLOT_FRAME ? val : NULL,
		      type == SLOT_GDATE ? val : NULL);
}

/* A frame slot; FRAME receives the GUID its children hang from (their names
 * are the full path, "frame/child"). */
static int slot_frame(struct wr *w, const char *obj, const char *name, char frame[GUID_LEN])
{
	int rc = new_guid(w, frame);

	return rc ? rc : slot(w, obj, name, SLOT_FRAME, frame, 0);
}

/* ---- the book --------------------------------------------------------------- */

/* GnuCash 4.13's table versions: the writer refuses other versions rather
 * than guess at their columns. */
static const struct {
	const char *table;
	int version;
} schema[] = {
	{"invoices", 4}, {"entries", 4},  {"transactions", 4},     {"splits", 5},
	{"lots", 2},     {"slots", 4},    {"taxtables", 2},        {"taxtable_entries", 3},
	{"billterms", 2}, {"vendors", 1}, {"accounts", 1},         {"books", 1},
	{"commodities", 1}, {"jobs", 1},
};

static int open_writer(struct wr *w)
{
	int src;

	if (w->g->db)
		return APS_OK;
	src = sqlite3_open_v2(w->g->path, &w->g->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			      NULL);
	if (src != SQLITE_OK) {
		refuse(w, (src & 0xff) == SQLITE_CANTOPEN ? APS_ERR_IO : APS_ERR_ERP,
		       "cannot open the GnuCash book %s for writing: %s", w->g->path,
		       w->g->db ? sqlite3_errmsg(w->g->db) : sqlite3_errstr(src));
		sqlite3_close(w->g->db);
		w->g->db = NULL;
		return (src & 0xff) == SQLITE_CANTOPEN ? APS_ERR_IO : APS_ERR_ERP;
	}
	sqlite3_extended_result_codes(w->g->db, 1);
	sqlite3_busy_timeout(w->g->db, BUSY_TIMEOUT_MS);
	return APS_OK;
}

/* APS_ERR_BUSY with the sentence while GnuCash has the book open. */
static int check_lock(struct wr *w)
{
	sqlite3_stmt *st;
	int rc, row;

	rc = q_open(w, &st, "SELECT Hostname, PID FROM gnclock LIMIT 1", "");
	if (!rc)
		rc = q_step(w, st, &row);
	if (!rc && row)
		rc = refuse(w, APS_ERR_BUSY,
			    "GnuCash has the book open (on host %s, process %s); close it there "
			    "or wait, then try again",
			    col(st, 0) ? col(st, 0) : "unknown", col(st, 1) ? col(st, 1) : "unknown");
	sqlite3_finalize(st);
	return rc;
}

static int check_schema(struct wr *w)
{
	sqlite3_stmt *st;
	size_t i;
	int rc = APS_OK, row, v;

	for (i = 0; i < APS_ARRAY_LEN(schema) && !rc; i++) {
		rc = q_open(w, &st, "SELECT table_version FROM versions WHERE table_name = ?1", "s",
			    schema[i].table);
		if (!rc)
			rc = q_step(w, st, &row);
		v = !rc && row ? sqlite3_column_int(st, 0) : -1;
		sqlite3_finalize(st);
		if (!rc && v != schema[i].version)
			rc = refuse(w, APS_ERR_ERP,
				    "the GnuCash book %s has table %s at version %d; apsync writes "
				    "only into books of GnuCash 4 (version %d)",
				    w->g->path, schema[i].table, v, schema[i].version);
	}
	return rc;
}

/* The book's GUID and how it writes times. */
static int book_facts(struct wr *w)
{
	sqlite3_stmt *st;
	struct tm tm;
	time_t now = time(NULL);
	int rc, row;

	rc = q_open(w, &st,
		    "SELECT b.guid, EXISTS (SELECT 1 FROM slots f JOIN slots c ON c.obj_guid = "
		    "f.guid_val WHERE f.obj_guid = b.guid AND f.name = 'features' AND "
		    "f.slot_type = 9 AND c.name = ?1) FROM books b LIMIT 1",
		    "s", ISO_FEATURE);
	if (!rc)
		rc = q_step(w, st, &row);
	if (!rc && !row)
		rc = refuse(w, APS_ERR_ERP, "the GnuCash book %s has no book row", w->g->path);
	if (!rc) {
		copy(w->book, sizeof(w->book), col(st, 0));
		w->iso = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	gmtime_r(&now, &tm);
	fmt_time(w, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, w->now);
	fmt_time(w, 1970, 1, 1, 0, 0, 0, w->epoch);
	return rc;
}

static void wr_init(struct wr *w, struct erp *e, char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->g = sqlmap_ext(e);
	w->err = err;
	w->errlen = errlen;
}

/* Starts a document's transaction: IMMEDIATE (SQLite's write lock, taken
 * now) for writes, a plain read transaction for lookups. A write refuses
 * while GnuCash has the book open; checked inside the transaction, so the
 * answer cannot go stale before COMMIT. */
static int wr_begin(struct wr *w, int write)
{
	int rc;

	rc = open_writer(w);
	if (rc)
		return rc;
	w->db = w->g->db;
	rc = q_exec(w, write ? "BEGIN IMMEDIATE" : "BEGIN", "");
	if (rc)
		return rc;
	if (write)
		rc = check_lock(w);
	if (!rc && write)
		rc = check_schema(w);
	if (!rc)
		rc = book_facts(w);
	if (rc)
		sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static void free_accts(struct wr *w)
{
	int i;

	for (i = 0; i < w->naccts; i++) {
		free(w->accts[i].key);
		free(w->accts[i].path);
	}
	free(w->accts);
	w->accts = NULL;
	w->naccts = 0;
}

/* Ends it: COMMIT when rc is APS_OK and `commit`, else ROLLBACK. */
static int wr_end(struct wr *w, int rc, int commit)
{
	if (!rc && commit)
		rc = q_exec(w, "COMMIT", "");
	if (w->db && sqlite3_get_autocommit(w->db) == 0)
		sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
	free_accts(w);
	return rc;
}

/* ---- what a document names ------------------------------------------------ */

struct vendor {
	char guid[GUID_LEN], currency[GUID_LEN], terms[GUID_LEN];
	char id[256];
	char name[2049];
	char mnemonic[16];
	long long scu;
	int active;
};

/* APS_ERR_NOTFOUND when GnuCash has no vendor with that id (its "Vendor
 * Number", the vendors list's code). */
static int find_vendor(struct wr *w, const char *id, struct vendor *v)
{
	sqlite3_stmt *st;
	int rc, row, n = 0;

	memset(v, 0, sizeof(*v));
	copy(v->id, sizeof(v->id), id);
	rc = q_open(w, &st,
		    "SELECT v.guid, v.name, v.currency, v.terms, v.active, c.mnemonic, c.fraction "
		    "FROM vendors v LEFT JOIN commodities c ON c.guid = v.currency WHERE v.id = ?1",
		    "s", id);
	while (!rc && !(rc = q_step(w, st, &row)) && row) {
		if (!n++) {
			copy(v->guid, sizeof(v->guid), col(st, 0));
			copy(v->name, sizeof(v->name), col(st, 1));
			copy(v->currency, sizeof(v->currency), col(st, 2));
			copy(v->terms, sizeof(v->terms), col(st, 3));
			v->active = sqlite3_column_int(st, 4);
			copy(v->mnemonic, sizeof(v->mnemonic), col(st, 5));
			v->scu = sqlite3_column_int64(st, 6);
		}
	}
	sqlite3_finalize(st);
	if (rc)
		return rc;
	if (!n)
		return refuse(w, APS_ERR_NOTFOUND,
			      "GnuCash has no vendor \"%.64s\" (the vendor code is GnuCash's Vendor "
			      "Number); check the code against the synced vendors list",
			      id);
	if (n > 1)
		return refuse(w, APS_ERR_ERP,
			      "%d GnuCash vendors have the Vendor Number \"%.64s\"; give them "
			      "different numbers in GnuCash",
			      n, id);
	return APS_OK;
}

/* The vendor as a write needs it: there, and with a currency of whole
 * decimal units. */
static int need_vendor(struct wr *w, const char *id, struct vendor *v)
{
	long long s;
	int rc = find_vendor(w, id, v);

	if (rc == APS_ERR_NOTFOUND)
		return APS_ERR_ERP; /* a refusal, not "the document is not there" */
	if (rc)
		return rc;
	for (s = v->scu; s > 1 && s % 10 == 0; s /= 10)
		;
	if (v->scu < 1 || s != 1)
		return refuse(w, APS_ERR_ERP,
			      "vendor %.64s's currency %s has a smallest unit of 1/%lld; apsync "
			      "writes only currencies with decimal units",
			      id, v->mnemonic, v->scu);
	return APS_OK;
}

struct bill {
	char guid[GUID_LEN], txn[GUID_LEN], lot[GUID_LEN], acc[GUID_LEN], currency[GUID_LEN];
	char id[256];
};

/* The vendor's bills with a billing id (the vendor's invoice number), owned
 * by the vendor or one of its jobs: the natural key of a bill. At most two
 * are returned; *n tells how many there are. */
static int find_bills(struct wr *w, const struct vendor *v, const char *billing_id,
		      struct bill out[2], int *n)
{
	sqlite3_stmt *st;
	struct bill *b;
	int rc, row;

	*n = 0;
	rc = q_open(w, &st,
		    "SELECT i.guid, i.id, i.post_txn, i.post_lot, i.post_acc, i.currency "
		    "FROM invoices i WHERE i.billing_id = ?1 AND ((i.owner_type = ?3 AND "
		    "i.owner_guid = ?2) OR (i.owner_type = ?4 AND i.owner_guid IN (SELECT j.guid "
		    "FROM jobs j WHERE j.owner_type = ?3 AND j.owner_guid = ?2))) "
		    "ORDER BY i.date_opened, i.id",
		    "ssii", billing_id, v->guid, (long long)OWNER_VENDOR, (long long)OWNER_JOB);
	while (!rc && !(rc = q_step(w, st, &row)) && row) {
		if (*n < 2) {
			b = &out[*n];
			copy(b->guid, sizeof(b->guid), col(st, 0));
			copy(b->id, sizeof(b->id), col(st, 1));
			copy(b->txn, sizeof(b->txn), col(st, 2));
			copy(b->lot, sizeof(b->lot), col(st, 3));
			copy(b->acc, sizeof(b->acc), col(st, 4));
			copy(b->currency, sizeof(b->currency), col(st, 5));
		}
		(*n)++;
	}
	sqlite3_finalize(st);
	return rc;
}

/* What is still owed on a posted bill: minus the sum of its lot's splits. */
static int lot_open(struct wr *w, const char *lot, struct rat *open)
{
	sqlite3_stmt *st;
	struct rat sum = {0, 1}, v;
	int rc, row;

	rc = q_open(w, &st, "SELECT value_num, value_denom FROM splits WHERE lot_guid = ?1", "s",
		    lot);
	while (!rc && !(rc = q_step(w, st, &row)) && row) {
		if (sqlite3_column_int64(st, 1) <= 0)
			continue;
		v = rat_make(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1));
		if (rat_add(&sum, sum, v))
			rc = refuse(w, APS_ERR_ERP, "the amounts of a GnuCash lot are too large");
	}
	sqlite3_finalize(st);
	*open = (struct rat){-sum.n, sum.d};
	return rc;
}

static int bill_ref(struct wr *w, const struct bill *b, struct erp_doc_ref *out)
{
	struct rat open;
	int rc = APS_OK;

	memset(out, 0, sizeof(*out));
	copy(out->id, sizeof(out->id), b->guid);
	copy(out->number, sizeof(out->number), b->id);
	if (!b->txn[0] || !b->lot[0]) {
		copy(out->state, sizeof(out->state), "draft");
		return APS_OK;
	}
	rc = lot_open(w, b->lot, &open);
	copy(out->state, sizeof(out->state), !rc && open.n <= 0 ? "paid" : "posted");
	return rc;
}

/* The account tree with the gl_accounts list's keys: the account code when
 * it is set, unique and not some account's path, else the full path (the
 * same CTE as the gnucash profile's gl_accounts; keep them equal). */
static const char accounts_sql[] =
	"WITH RECURSIVE tree(guid, path, code) AS ("
	"SELECT a.guid, a.name, NULLIF(TRIM(a.code), '') FROM accounts a JOIN books b "
	"ON a.parent_guid = b.root_account_guid "
	"UNION ALL SELECT a.guid, t.path || ':' || a.name, NULLIF(TRIM(a.code), '') "
	"FROM accounts a JOIN tree t ON a.parent_guid = t.guid), "
	"counted AS (SELECT t.*, COUNT(*) OVER (PARTITION BY code) AS n_code, "
	"COUNT(*) OVER (PARTITION BY path) AS n_path FROM tree t), "
	"keyed AS (SELECT c.*, CASE WHEN code IS NOT NULL AND n_code = 1 AND code NOT IN "
	"(SELECT path FROM tree) THEN code WHEN n_path > 1 THEN path || ' [' || "
	"substr(guid, 1, 8) || ']' ELSE path END AS key FROM counted c) "
	"SELECT k.guid, k.key, k.path, a.account_type, a.commodity_guid, a.commodity_scu, "
	"COALESCE(a.placeholder, 0) FROM keyed k JOIN accounts a ON a.guid = k.guid";

static int load_accts(struct wr *w)
{
	sqlite3_stmt *st;
	struct acct *a, *grown;
	int rc, row, cap = 0;

	if (w->accts)
		return APS_OK;
	rc = q_open(w, &st, accounts_sql, "");
	while (!rc && !(rc = q_step(w, st, &row)) && row) {
		if (w->naccts == cap) {
			cap = cap ? cap * 2 : 64;
			grown = realloc(w->accts, sizeof(*grown) * (size_t)cap);
			if (!grown) {
				rc = refuse(w, APS_ERR_NOMEM, "out of memory");
				break;
			}
			w->accts = grown;
		}
		a = &w->accts[w->naccts];
		memset(a, 0, sizeof(*a));
		copy(a->guid, sizeof(a->guid), col(st, 0));
		a->key = strdup(col(st, 1) ? col(st, 1) : "");
		a->path = strdup(col(st, 2) ? col(st, 2) : "");
		copy(a->type, sizeof(a->type), col(st, 3));
		copy(a->commodity, sizeof(a->commodity), col(st, 4));
		a->scu = sqlite3_column_int64(st, 5);
		a->placeholder = sqlite3_column_int(st, 6) != 0;
		w->naccts++;
		if (!a->key || !a->path)
			rc = refuse(w, APS_ERR_NOMEM, "out of memory");
	}
	sqlite3_finalize(st);
	return rc;
}

/* An account by its gl_accounts code, else by its full path. */
static const struct acct *find_acct(struct wr *w, const char *code)
{
	const struct acct *found = NULL;
	int i;

	for (i = 0; i < w->naccts; i++)
		if (!strcmp(w->accts[i].key, code))
			found = &w->accts[i];
	for (i = 0; !found && i < w->naccts; i++)
		if (!strcmp(w->accts[i].path, code))
			found = &w->accts[i];
	return found;
}

/* ---- the document ---------------------------------------------------------- */

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* A decimal field: a string ("12.50") or a JSON number written as one. */
static int jdec(const cJSON *o, const char *name, struct rat *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	char buf[64];

	if (cJSON_IsString(v))
		return rat_parse(v->valuestring, out);
	if (!cJSON_IsNumber(v))
		return -1;
	if (v->valuedouble == (double)(long long)v->valuedouble) {
		snprintf(buf, sizeof(buf), "%lld", (long long)v->valuedouble);
		return rat_parse(buf, out);
	}
	return -1; /* a binary fraction is not an amount */
}

static int bad_doc(struct wr *w, const char *what, const char *field, int line)
{
	if (line)
		return refuse(w, APS_ERR_INVAL, "the %s's line %d has no valid \"%s\" (see "
			      "proto/EXPORTS.md)", what, line, field);
	return refuse(w, APS_ERR_INVAL, "the %s has no valid \"%s\" (see proto/EXPORTS.md)", what,
		      field);
}

/* ---- posting a bill ---------------------------------------------------------- */

struct tax {
	char parent[GUID_LEN], child[GUID_LEN];
	const char *name;
	int n;
	char account[MAX_TAX_ENTRIES][GUID_LEN];
	struct rat pct[MAX_TAX_ENTRIES];
};

struct line {
	const char *account, *desc, *tax;
	struct rat qty, price;
	const struct acct *acct;
	struct tax *t;
};

/* A split of the posting transaction. */
struct split {
	const char *account;
	long long units;
	struct rat exact; /* a tax before rounding */
};

struct invoice {
	const char *vendor, *number, *currency, *notes;
	struct ymd date, due;
	int has_due, has_total;
	struct rat total;
	int nlines;
	struct line *lines;
	int ntaxes;
	struct tax taxes[MAX_TAXES];
	int nexp, ntax;
	struct split *exp; /* one per expense account, in order of first use */
	struct split tax[MAX_TAXES * MAX_TAX_ENTRIES];
	long long total_units;
};

static int parse_line(struct wr *w, const cJSON *j, int i, struct line *l)
{
	if (!cJSON_IsObject(j))
		return refuse(w, APS_ERR_INVAL, "the invoice's line %d is not an object", i);
	l->account = jstr(j, "gl_account");
	l->desc = jstr(j, "description");
	l->tax = jstr(j, "tax_code");
	if (!l->account && jstr(j, "item"))
		return refuse(w, APS_ERR_ERP,
			      "line %d names item \"%.64s\" but no gl_account; GnuCash has no items, "
			      "so every line needs a gl_account",
			      i, jstr(j, "item"));
	if (!l->account)
		return bad_doc(w, "invoice", "gl_account", i);
	if (jdec(j, "quantity", &l->qty))
		return bad_doc(w, "invoice", "quantity", i);
	if (jdec(j, "unit_price", &l->price))
		return bad_doc(w, "invoice", "unit_price", i);
	if (l->qty.n <= 0)
		return refuse(w, APS_ERR_ERP,
			      "line %d has quantity %s; GnuCash bills are written with quantities "
			      "above 0 only (credit notes are not written)",
			      i, jstr(j, "quantity") ? jstr(j, "quantity") : "0");
	if (l->price.n < 0)
		return refuse(w, APS_ERR_ERP, "line %d has a negative unit price", i);
	return APS_OK;
}

static int parse_invoice(struct wr *w, const cJSON *doc, struct invoice *inv)
{
	const cJSON *lines = cJSON_GetObjectItemCaseSensitive(doc, "lines"), *j;
	int i = 0, rc;

	inv->vendor = jstr(doc, "vendor");
	inv->number = jstr(doc, "number");
	inv->currency = jstr(doc, "currency");
	inv->notes = jstr(doc, "description");
	if (!inv->vendor)
		return bad_doc(w, "invoice", "vendor", 0);
	if (!inv->number)
		return bad_doc(w, "invoice", "number", 0);
	if (parse_date(jstr(doc, "date"), &inv->date))
		return bad_doc(w, "invoice", "date", 0);
	inv->has_due = jstr(doc, "due_date") != NULL;
	if (inv->has_due && parse_date(jstr(doc, "due_date"), &inv->due))
		return bad_doc(w, "invoice", "due_date", 0);
	inv->has_total = cJSON_GetObjectItemCaseSensitive(doc, "total") &&
			 !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(doc, "total"));
	if (inv->has_total && jdec(doc, "total", &inv->total))
		return bad_doc(w, "invoice", "total", 0);
	inv->nlines = cJSON_GetArraySize(lines);
	if (!cJSON_IsArray(lines) || inv->nlines < 1 || inv->nlines > MAX_LINES)
		return refuse(w, APS_ERR_INVAL, "the invoice needs 1 to %d lines", MAX_LINES);
	inv->lines = calloc((size_t)inv->nlines, sizeof(*inv->lines));
	inv->exp = calloc((size_t)inv->nlines, sizeof(*inv->exp));
	if (!inv->lines || !inv->exp)
		return refuse(w, APS_ERR_NOMEM, "out of memory");
	cJSON_ArrayForEach(j, lines)
	{
		rc = parse_line(w, j, i + 1, &inv->lines[i]);
		if (rc)
			return rc;
		i++;
	}
	return APS_OK;
}

/* The tax table a posted bill's entries point to: an invisible copy of the
 * table (same name, invisible 1, parent = the table, refcount 0) with copies
 * of its entries, as GnuCash makes when it posts. A copy whose entries equal
 * the table's is reused. */
static int freeze_taxtable(struct wr *w, struct tax *t)
{
	sqlite3_stmt *st;
	int rc, row;

	rc = q_open(w, &st,
		    "SELECT c.guid FROM taxtables c WHERE c.parent = ?1 AND c.invisible = 1 AND "
		    "(SELECT count(*) FROM taxtable_entries WHERE taxtable = c.guid) = "
		    "(SELECT count(*) FROM taxtable_entries WHERE taxtable = ?1) AND NOT EXISTS "
		    "(SELECT account, amount_num, amount_denom, type FROM taxtable_entries WHERE "
		    "taxtable = ?1 EXCEPT SELECT account, amount_num, amount_denom, type FROM "
		    "taxtable_entries WHERE taxtable = c.guid) AND NOT EXISTS (SELECT account, "
		    "amount_num, amount_denom, type FROM taxtable_entries WHERE taxtable = c.guid "
		    "EXCEPT SELECT account, amount_num, amount_denom, type FROM taxtable_entries "
		    "WHERE taxtable = ?1) ORDER BY c.guid LIMIT 1",
		    "s", t->parent);
	if (!rc)
		rc = q_step(w, st, &row);
	if (!rc && row)
		copy(t->child, sizeof(t->child), col(st, 0));
	sqlite3_finalize(st);
	if (rc || t->child[0])
		return rc;
	rc = new_guid(w, t->child);
	if (!rc)
		rc = q_exec(w,
			    "INSERT INTO taxtables (guid, name, refcount, invisible, parent) "
			    "SELECT ?1, name, 0, 1, guid FROM taxtables WHERE guid = ?2",
			    "ss", t->child, t->parent);
	if (!rc)
		rc = q_exec(w,
			    "INSERT INTO taxtable_entries (taxtable, account, amount_num, "
			    "amount_denom, type) SELECT ?1, account, amount_num, amount_denom, type "
			    "FROM taxtable_entries WHERE taxtable = ?2 ORDER BY account, amount_num, "
			    "amount_denom, type",
			    "ss", t->child, t->parent);
	return rc;
}

/* Loads a tax table by name (only percentage entries are taken). */
static int load_tax(struct wr *w, const char *name, struct tax *t)
{
	sqlite3_stmt *st;
	int rc, row, n = 0, fixed = 0;

	memset(t, 0, sizeof(*t));
	t->name = name;
	rc = q_open(w, &st,
		    "SELECT guid FROM taxtables WHERE name = ?1 AND parent IS NULL AND invisible = 0",
		    "s", name);
	while (!rc && !(rc = q_step(w, st, &row)) && row)
		if (!n++)
			copy(t->parent, sizeof(t->parent), col(st, 0));
	sqlite3_finalize(st);
	if (rc)
		return rc;
	if (n != 1)
		return refuse(w, APS_ERR_ERP,
			      "GnuCash has %s tax table \"%.64s\"; check the tax code against the "
			      "synced tax codes",
			      n ? "more than one" : "no", name);
	rc = q_open(w, &st,
		    "SELECT account, amount_num, amount_denom, type FROM taxtable_entries WHERE "
		    "taxtable = ?1 ORDER BY id",
		    "s", t->parent);
	while (!rc && !(rc = q_step(w, st, &row)) && row) {
		if (sqlite3_column_int(st, 3) != TAX_PERCENT || sqlite3_column_int64(st, 2) <= 0) {
			fixed = 1;
			continue;
		}
		if (t->n == MAX_TAX_ENTRIES) {
			rc = refuse(w, APS_ERR_ERP, "tax table \"%.64s\" has more than %d entries",
				    name, MAX_TAX_ENTRIES);
			break;
		}
		copy(t->account[t->n], GUID_LEN, col(st, 0));
		t->pct[t->n] = rat_make(sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2));
		t->n++;
	}
	sqlite3_finalize(st);
	if (!rc && fixed)
		rc = refuse(w, APS_ERR_ERP,
			    "tax table \"%.64s\" has fixed-amount entries; apsync writes only "
			    "percentage taxes",
			    name);
	return rc ? rc : freeze_taxtable(w, t);
}

static int line_tax(struct wr *w, struct invoice *inv, struct line *l)
{
	int i, rc;

	for (i = 0; i < inv->ntaxes; i++)
		if (!strcmp(inv->taxes[i].name, l->tax)) {
			l->t = &inv->taxes[i];
			return APS_OK;
		}
	if (inv->ntaxes == MAX_TAXES)
		return refuse(w, APS_ERR_ERP, "a bill may use at most %d tax tables", MAX_TAXES);
	rc = load_tax(w, l->tax, &inv->taxes[inv->ntaxes]);
	if (!rc)
		l->t = &inv->taxes[inv->ntaxes++];
	return rc;
}

/* Each line's account (not a placeholder, in the bill's currency) and tax. */
static int resolve_lines(struct wr *w, const struct vendor *v, struct invoice *inv)
{
	struct line *l;
	int i, rc = APS_OK;

	for (i = 0; i < inv->nlines && !rc; i++) {
		l = &inv->lines[i];
		l->acct = find_acct(w, l->account);
		if (!l->acct)
			return refuse(w, APS_ERR_ERP,
				      "line %d: GnuCash has no account \"%.128s\" (give a code of the "
				      "gl_accounts list or an account's full path)",
				      i + 1, l->account);
		if (l->acct->placeholder)
			return refuse(w, APS_ERR_ERP,
				      "line %d: account %.128s is a placeholder in GnuCash; "
				      "nothing can be posted to it",
				      i + 1, l->acct->path);
		if (strcmp(l->acct->commodity, v->currency) || l->acct->scu != v->scu)
			return refuse(w, APS_ERR_ERP,
				      "line %d: account %.128s is not in the bill's currency %s", i + 1,
				      l->acct->path, v->mnemonic);
		if (l->tax)
			rc = line_tax(w, inv, l);
	}
	return rc;
}

static int add_units(struct split *s, int *n, const char *account, long long units)
{
	int i;

	for (i = 0; i < *n && strcmp(s[i].account, account); i++)
		;
	if (i == *n) {
		s[i] = (struct split){account, 0, {0, 1}};
		(*n)++;
	}
	return __builtin_add_overflow(s[i].units, units, &s[i].units) ? -1 : 0;
}

static int add_exact(struct split *s, int *n, const char *account, struct rat x)
{
	int i;

	for (i = 0; i < *n && strcmp(s[i].account, account); i++)
		;
	if (i == *n) {
		s[i] = (struct split){account, 0, {0, 1}};
		(*n)++;
	}
	return rat_add(&s[i].exact, s[i].exact, x);
}

/* GnuCash 4.13's amounts (NOTES.md 4.1): each line's value is qty × price
 * rounded on its own; one expense split per account sums them; one tax split
 * per tax account rounds once the sum of the UNROUNDED qty × price × percent
 * / 100 of its lines; the total is the sum of the splits. */
static int compute_bill(struct wr *w, const struct vendor *v, struct invoice *inv)
{
	static const struct rat hundredth = {1, 100};
	struct rat pretax = {0, 1}, tax = {0, 1};
	struct line *l;
	long long units;
	int i, k, bad = 0;

	for (i = 0; i < inv->nlines && !bad; i++) {
		l = &inv->lines[i];
		bad = rat_mul(&pretax, l->qty, l->price) || rat_units(pretax, v->scu, &units) ||
		      add_units(inv->exp, &inv->nexp, l->acct->guid, units);
		for (k = 0; l->t && k < l->t->n && !bad; k++)
			bad = rat_mul(&tax, pretax, l->t->pct[k]) ||
			      rat_mul(&tax, tax, hundredth) ||
			      add_exact(inv->tax, &inv->ntax, l->t->account[k], tax);
	}
	inv->total_units = 0;
	for (i = 0; i < inv->nexp && !bad; i++)
		bad = __builtin_add_overflow(inv->total_units, inv->exp[i].units, &inv->total_units);
	for (i = 0; i < inv->ntax && !bad; i++)
		bad = rat_units(inv->tax[i].exact, v->scu, &inv->tax[i].units) ||
		      __builtin_add_overflow(inv->total_units, inv->tax[i].units, &inv->total_units);
	if (bad)
		return refuse(w, APS_ERR_ERP,
			      "the invoice's amounts are too large or have too many decimals to "
			      "compute exactly");
	return APS_OK;
}

static int check_total(struct wr *w, const struct vendor *v, const struct invoice *inv)
{
	struct rat got = rat_make(inv->total_units, v->scu);
	long long want;
	char a[48], b[48];

	if (!inv->has_total || rat_cmp(got, inv->total) == 0)
		return APS_OK;
	if (rat_units(inv->total, v->scu, &want))
		want = 0;
	return refuse(w, APS_ERR_ERP,
		      "total_mismatch: the invoice's total is %s but GnuCash computes %s %s (lines "
		      "rounded each, taxes rounded once per tax account); nothing was written",
		      fmt_units(want, v->scu, a, sizeof(a)), fmt_units(inv->total_units, v->scu, b,
									 sizeof(b)),
		      v->mnemonic);
}

/* The only PAYABLE account, not a placeholder, in the vendor's currency. */
static int find_ap(struct wr *w, const struct vendor *v, const struct acct **ap)
{
	int i, n = 0;

	*ap = NULL;
	for (i = 0; i < w->naccts; i++) {
		if (strcmp(w->accts[i].type, "PAYABLE") || w->accts[i].placeholder ||
		    strcmp(w->accts[i].commodity, v->currency))
			continue;
		if (!n++)
			*ap = &w->accts[i];
	}
	if (n != 1)
		return refuse(w, APS_ERR_ERP,
			      "GnuCash has %d Accounts Payable accounts in %s; apsync posts bills "
			      "only into a book with exactly one",
			      n, v->mnemonic);
	if ((*ap)->scu != v->scu)
		return refuse(w, APS_ERR_ERP, "the A/P account %.128s does not count in %s's units",
			      (*ap)->path, v->mnemonic);
	return APS_OK;
}

/* The vendor's terms, frozen as GnuCash does when it posts (an invisible
 * copy, reused when equal), and the due date they give. */
static int freeze_terms(struct wr *w, const struct vendor *v, struct invoice *inv,
			char terms[GUID_LEN])
{
	sqlite3_stmt *st;
	char type[64] = "";
	int rc, row, days = 0, cutoff = 0;

	terms[0] = '\0';
	if (!v->terms[0]) {
		if (!inv->has_due)
			inv->due = inv->date;
		return APS_OK;
	}
	rc = q_open(w, &st,
		    "SELECT p.type, p.duedays, p.cutoff, (SELECT c.guid FROM billterms c WHERE "
		    "c.parent = p.guid AND c.invisible = 1 AND c.name IS p.name AND c.description "
		    "IS p.description AND c.type IS p.type AND c.duedays IS p.duedays AND "
		    "c.discountdays IS p.discountdays AND c.discount_num IS p.discount_num AND "
		    "c.discount_denom IS p.discount_denom AND c.cutoff IS p.cutoff ORDER BY c.guid "
		    "LIMIT 1) FROM billterms p WHERE p.guid = ?1",
		    "s", v->terms);
	if (!rc)
		rc = q_step(w, st, &row);
	if (!rc && !row)
		rc = refuse(w, APS_ERR_ERP, "vendor %.64s's terms are missing from the book", v->id);
	if (!rc) {
		copy(type, sizeof(type), col(st, 0));
		days = sqlite3_column_int(st, 1);
		cutoff = sqlite3_column_int(st, 2);
		copy(terms, GUID_LEN, col(st, 3));
	}
	sqlite3_finalize(st);
	if (!rc && !inv->has_due)
		inv->due = due_from_terms(inv->date, type, days, cutoff);
	if (rc || terms[0])
		return rc;
	rc = new_guid(w, terms);
	if (!rc)
		rc = q_exec(w,
			    "INSERT INTO billterms (guid, name, description, type, duedays, "
			    "discountdays, discount_num, discount_denom, cutoff, refcount, invisible, "
			    "parent) SELECT ?1, name, description, type, duedays, discountdays, "
			    "discount_num, discount_denom, cutoff, 0, 1, guid FROM billterms WHERE "
			    "guid = ?2",
			    "ss", terms, v->terms);
	return rc;
}

/* A bill-number format the user set (counter_formats/gncBill): text, one
 * printf integer conversion ([-0 ] flag, width, precision, length
 * modifier, d or i) and text, applied here piece by piece so that the user's
 * text never becomes a format. -1 if the format is not of that form. */
static int apply_counter_format(const char *fmt, long long n, char *out, size_t len)
{
	const char *p = strchr(fmt, '%'), *c;
	char flag = 0, digits[160], body[160];
	int width = 0, prec = -1, r;

	if (!p)
		return -1;
	c = p + 1;
	if (*c == '-' || *c == '0' || *c == ' ')
		flag = *c++;
	for (; *c >= '0' && *c <= '9'; c++)
		if ((width = width * 10 + (*c - '0')) > 64)
			return -1;
	if (*c == '.') {
		if (*++c < '0' || *c > '9')
			return -1;
		for (prec = 0; *c >= '0' && *c <= '9'; c++)
			if ((prec = prec * 10 + (*c - '0')) > 64)
				return -1;
	}
	if (!strncmp(c, "ll", 2))
		c += 2;
	else if (!strncmp(c, "I64", 3))
		c += 3;
	else if (*c == 'l' || *c == 'j' || *c == 'q')
		c++;
	if ((*c != 'd' && *c != 'i') || strchr(c + 1, '%'))
		return -1;
	if (flag == '0' && prec < 0)
		snprintf(body, sizeof(body), "%0*lld", width, n);
	else {
		snprintf(digits, sizeof(digits), "%s%.*lld", flag == ' ' ? " " : "",
			 prec < 0 ? 1 : prec, n);
		snprintf(body, sizeof(body), flag == '-' ? "%-*s" : "%*s", width, digits);
	}
	r = snprintf(out, len, "%.*s%s%s", (int)(p - fmt), fmt, body, c + 1);
	return r < 0 || (size_t)r >= len ? -1 : 0;
}

/* The next bill number from the book's counter (gncInvoiceNextID): the INT64
 * slot counters/gncBill under the book's "counters" frame. */
static int next_bill_id(struct wr *w, char *out, size_t len)
{
	sqlite3_stmt *st;
	char frame[GUID_LEN] = "";
	long long n = 1, id = 0;
	int rc, row;

	rc = q_open(w, &st,
		    "SELECT s.id, s.int64_val, (SELECT f.guid_val FROM slots f WHERE f.obj_guid = "
		    "?1 AND f.name = 'counters' AND f.slot_type = 9 LIMIT 1) FROM (SELECT 1) LEFT "
		    "JOIN slots s ON s.name = 'counters/gncBill' AND s.obj_guid IN (SELECT guid_val "
		    "FROM slots WHERE obj_guid = ?1 AND name = 'counters' AND slot_type = 9) LIMIT 1",
		    "s", w->book);
	if (!rc)
		rc = q_step(w, st, &row);
	if (!rc && row) {
		id = sqlite3_column_int64(st, 0);
		n = sqlite3_column_type(st, 0) == SQLITE_NULL ? 1 : sqlite3_column_int64(st, 1) + 1;
		copy(frame, sizeof(frame), col(st, 2));
	}
	sqlite3_finalize(st);
	if (!rc && id)
		rc = q_exec(w, "UPDATE slots SET int64_val = ?1 WHERE id = ?2", "ii", n, id);
	else if (!rc && !frame[0])
		rc = slot_frame(w, w->book, "counters", frame);
	if (!rc && !id)
		rc = slot(w, frame, "counters/gncBill", SLOT_INT64, NULL, n);
	if (rc)
		return rc;
	rc = q_open(w, &st,
		    "SELECT string_val FROM slots WHERE name = 'counter_formats/gncBill' AND "
		    "obj_guid IN (SELECT guid_val FROM slots WHERE obj_guid = ?1 AND name = "
		    "'counter_formats') LIMIT 1",
		    "s", w->book);
	if (!rc)
		rc = q_step(w, st, &row);
	if (rc || !row || !col(st, 0) || apply_counter_format(col(st, 0), n, out, len))
		snprintf(out, len, "%06lld", n);
	sqlite3_finalize(st);
	return rc;
}

static int insert_split(struct wr *w, const char *txn, const char *account, long long units,
			long long scu, const char *lot, const char *action)
{
	char guid[GUID_LEN];
	int rc = new_guid(w, guid);

	if (!rc)
		rc = q_exec(w,
			    "INSERT INTO splits (guid, tx_guid, account_guid, memo, action, "
			    "reconcile_state, reconcile_date, value_num, value_denom, quantity_num, "
			    "quantity_denom, lot_guid) VALUES (?1, ?2, ?3, '', ?4, 'n', ?5, ?6, ?7, "
			    "?6, ?7, ?8)",
			    "sssssiis", guid, txn, account, action, w->epoch, units, scu, lot);
	return rc;
}

static int insert_entry(struct wr *w, const struct line *l, const char *inv_guid,
			const char *posted)
{
	char guid[GUID_LEN];
	long long qn, qd, pn, pd;
	int rc;

	if (rat_decimal(l->qty, &qn, &qd) || rat_decimal(l->price, &pn, &pd))
		return refuse(w, APS_ERR_ERP, "a quantity or price has more than 12 decimals");
	rc = new_guid(w, guid);
	if (!rc)
		rc = q_exec(w,
			    "INSERT INTO entries (guid, date, date_entered, description, action, "
			    "notes, quantity_num, quantity_denom, i_acct, i_price_num, i_price_denom, "
			    "i_discount_num, i_discount_denom, invoice, i_disc_type, i_disc_how, "
			    "i_taxable, i_taxincluded, i_taxtable, b_acct, b_price_num, b_price_denom, "
			    "bill, b_taxable, b_taxincluded, b_taxtable, b_paytype, billable, "
			    "billto_type, billto_guid, order_guid) VALUES (?1, ?2, ?3, ?4, '', '', ?5, "
			    "?6, NULL, 0, 1, 0, 1, NULL, 'PERCENT', 'PRETAX', 1, 0, NULL, ?7, ?8, ?9, "
			    "?10, ?11, 0, ?12, ?13, 0, NULL, NULL, NULL)",
			    "ssssiisiisisi", guid, posted, w->now, l->desc ? l->desc : "", qn, qd,
			    l->acct->guid, pn, pd, inv_guid, l->t ? 1LL : 0LL,
			    l->t ? l->t->child : NULL, (long long)PAYMENT_CASH);
	return rc;
}

/* The rows of a posted bill, after everything was checked (NOTES.md 4.2
 * steps 11-17). */
static int insert_bill(struct wr *w, const struct vendor *v, const struct invoice *inv,
		       const struct acct *ap, const char *terms, const char *bill_id,
		       struct erp_doc_ref *out)
{
	char inv_guid[GUID_LEN], txn[GUID_LEN], lot[GUID_LEN], frame[GUID_LEN];
	char posted[TIME_LEN], due[TIME_LEN], gdate[16], title[300];
	int i, rc;

	rc = new_guid(w, inv_guid);
	if (!rc)
		rc = new_guid(w, txn);
	if (!rc)
		rc = new_guid(w, lot);
	if (rc)
		return rc;
	fmt_date(w, inv->date, posted);
	fmt_date(w, inv->due, due);
	snprintf(gdate, sizeof(gdate), "%04d%02d%02d", inv->date.y, inv->date.m, inv->date.d);
	snprintf(title, sizeof(title), "Bill %s", bill_id);
	rc = q_exec(w,
		    "INSERT INTO transactions (guid, currency_guid, num, post_date, enter_date, "
		    "description) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
		    "ssssss", txn, v->currency, bill_id, posted, w->now, v->name);
	if (!rc)
		rc = q_exec(w, "INSERT INTO lots (guid, account_guid, is_closed) VALUES (?1, ?2, -1)",
			    "ss", lot, ap->guid);
	if (!rc)
		rc = q_exec(w,
			    "INSERT INTO invoices (guid, id, date_opened, date_posted, notes, active, "
			    "currency, owner_type, owner_guid, terms, billing_id, post_txn, post_lot, "
			    "post_acc, billto_type, billto_guid, charge_amt_num, charge_amt_denom) "
			    "VALUES (?1, ?2, ?3, ?3, ?4, 1, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL, "
			    "NULL, 0, 1)",
			    "sssssissssss", inv_guid, bill_id, posted,
			    inv->notes ? inv->notes : "", v->currency, (long long)OWNER_VENDOR, v->guid,
			    terms[0] ? terms : NULL, inv->number, txn, lot, ap->guid);
	for (i = 0; i < inv->nlines && !rc; i++)
		rc = insert_entry(w, &inv->lines[i], inv_guid, posted);
	for (i = 0; i < inv->nexp && !rc; i++)
		rc = insert_split(w, txn, inv->exp[i].account, inv->exp[i].units, v->scu, NULL,
				  ACTION_BILL);
	for (i = 0; i < inv->ntax && !rc; i++)
		rc = insert_split(w, txn, inv->tax[i].account, inv->tax[i].units, v->scu, NULL,
				  ACTION_BILL);
	if (!rc)
		rc = insert_split(w, txn, ap->guid, -inv->total_units, v->scu, lot, ACTION_BILL);
	if (!rc)
		rc = slot(w, txn, "date-posted", SLOT_GDATE, gdate, 0);
	if (!rc)
		rc = slot_frame(w, txn, "gncInvoice", frame);
	if (!rc)
		rc = slot(w, frame, "gncInvoice/invoice-guid", SLOT_GUID, inv_guid, 0);
	if (!rc)
		rc = slot(w, txn, "trans-date-due", SLOT_TIME64, due, 0);
	if (!rc)
		rc = slot(w, txn, "trans-read-only", SLOT_STRING, READ_ONLY_TEXT, 0);
	if (!rc)
		rc = slot(w, txn, "trans-txn-type", SLOT_STRING, "I", 0);
	if (!rc)
		rc = slot_frame(w, lot, "gncInvoice", frame);
	if (!rc)
		rc = slot(w, frame, "gncInvoice/invoice-guid", SLOT_GUID, inv_guid, 0);
	if (!rc)
		rc = slot(w, lot, "title", SLOT_STRING, title, 0);
	if (!rc) {
		memset(out, 0, sizeof(*out));
		copy(out->id, sizeof(out->id), inv_guid);
		copy(out->number, sizeof(out->number), bill_id);
		copy(out->state, sizeof(out->state), "posted");
	}
	return rc;
}

/* Everything a posted bill needs, checked, then its rows. *found is set
 * when the bill was already there (nothing written). */
static int post_bill(struct wr *w, struct invoice *inv, struct erp_doc_ref *out, int *found)
{
	struct vendor v;
	struct bill bills[2];
	const struct acct *ap;
	char terms[GUID_LEN], bill_id[256];
	int rc, n;

	rc = need_vendor(w, inv->vendor, &v);
	if (rc)
		return rc;
	if (!v.active)
		return refuse(w, APS_ERR_ERP,
			      "vendor %.64s (%.128s) is inactive in GnuCash; make it active there "
			      "to post bills to it",
			      v.id, v.name);
	rc = find_bills(w, &v, inv->number, bills, &n);
	if (!rc && n) {
		*found = 1;
		return bill_ref(w, &bills[0], out);
	}
	if (!rc && inv->currency && strcmp(inv->currency, v.mnemonic))
		rc = refuse(w, APS_ERR_ERP,
			    "the invoice is in %.16s but vendor %.64s bills in %s in GnuCash",
			    inv->currency, v.id, v.mnemonic);
	if (!rc)
		rc = load_accts(w);
	if (!rc)
		rc = find_ap(w, &v, &ap);
	if (!rc)
		rc = resolve_lines(w, &v, inv);
	if (!rc)
		rc = compute_bill(w, &v, inv);
	if (!rc)
		rc = check_total(w, &v, inv);
	if (!rc)
		rc = freeze_terms(w, &v, inv, terms);
	if (!rc)
		rc = next_bill_id(w, bill_id, sizeof(bill_id));
	if (!rc)
		rc = insert_bill(w, &v, inv, ap, terms, bill_id, out);
	return rc;
}

/* ---- paying bills -------------------------------------------------------------- */

struct paid {
	const char *number;
	struct rat amount;
	struct bill b;
	long long units;
};

struct payment {
	const char *vendor, *reference, *bank;
	struct ymd date;
	struct rat amount;
	int n;
	struct paid *bills;
};

static int parse_payment(struct wr *w, const cJSON *doc, struct payment *p)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "invoices"), *j;
	int i = 0;

	p->vendor = jstr(doc, "vendor");
	p->reference = jstr(doc, "reference");
	p->bank = jstr(doc, "bank_account");
	if (!p->vendor)
		return bad_doc(w, "payment", "vendor", 0);
	if (!p->reference)
		return bad_doc(w, "payment", "reference", 0);
	if (!p->bank)
		return bad_doc(w, "payment", "bank_account", 0);
	if (parse_date(jstr(doc, "date"), &p->date))
		return bad_doc(w, "payment", "date", 0);
	if (jdec(doc, "amount", &p->amount))
		return bad_doc(w, "payment", "amount", 0);
	p->n = cJSON_GetArraySize(list);
	if (!cJSON_IsArray(list) || p->n < 1 || p->n > MAX_INVOICES)
		return refuse(w, APS_ERR_INVAL, "the payment needs 1 to %d invoices", MAX_INVOICES);
	p->bills = calloc((size_t)p->n, sizeof(*p->bills));
	if (!p->bills)
		return refuse(w, APS_ERR_NOMEM, "out of memory");
	cJSON_ArrayForEach(j, list)
	{
		p->bills[i].number = jstr(j, "number");
		if (!p->bills[i].number)
			return refuse(w, APS_ERR_INVAL, "the payment's invoice %d has no \"number\"",
				      i + 1);
		if (jdec(j, "amount", &p->bills[i].amount))
			return refuse(w, APS_ERR_INVAL, "the payment's invoice %d has no valid "
				      "\"amount\"", i + 1);
		i++;
	}
	return APS_OK;
}

/* A payment made before: a payment transaction (trans-txn-type P) whose
 * number is the reference and which pays a bill of the vendor. */
static int find_payment(struct wr *w, const struct vendor *v, const char *reference,
			char txn[GUID_LEN])
{
	sqlite3_stmt *st;
	int rc, row;

	txn[0] = '\0';
	rc = q_open(w, &st,
		    "SELECT t.guid FROM transactions t WHERE t.num = ?1 AND EXISTS (SELECT 1 FROM "
		    "slots s WHERE s.obj_guid = t.guid AND s.name = 'trans-txn-type' AND "
		    "s.slot_type = 4 AND s.string_val = 'P') AND EXISTS (SELECT 1 FROM splits sp "
		    "JOIN invoices i ON i.post_lot = sp.lot_guid WHERE sp.tx_guid = t.guid AND "
		    "i.post_txn <> t.guid AND ((i.owner_type = ?3 AND i.owner_guid = ?2) OR "
		    "(i.owner_type = ?4 AND i.owner_guid IN (SELECT j.guid FROM jobs j WHERE "
		    "j.owner_type = ?3 AND j.owner_guid = ?2)))) ORDER BY t.enter_date LIMIT 1",
		    "ssii", reference, v->guid, (long long)OWNER_VENDOR, (long long)OWNER_JOB);
	if (!rc)
		rc = q_step(w, st, &row);
	if (!rc && row)
		copy(txn, GUID_LEN, col(st, 0));
	sqlite3_finalize(st);
	return rc;
}

static void payment_ref(const char *txn, const char *reference, struct erp_doc_ref *out)
{
	memset(out, 0, sizeof(*out));
	copy(out->id, sizeof(out->id), txn);
	copy(out->number, sizeof(out->number), reference);
	copy(out->state, sizeof(out->state), "posted");
}

/* One bill the payment names: posted, owing, and not paid beyond that. */
static int check_paid_bill(struct wr *w, const struct vendor *v, struct payment *p, int i)
{
	struct paid *pb = &p->bills[i];
	struct bill bills[2];
	struct rat open;
	long long units;
	int rc, n, k;
	char a[48], b[48];

	for (k = 0; k < i; k++)
		if (!strcmp(p->bills[k].number, pb->number))
			return refuse(w, APS_ERR_ERP, "the payment names bill %.64s twice", pb->number);
	rc = find_bills(w, v, pb->number, bills, &n);
	if (rc)
		return rc;
	if (!n)
		return refuse(w, APS_ERR_ERP, "vendor %.64s has no bill numbered %.64s in GnuCash",
			      v->id, pb->number);
	if (n > 1)
		return refuse(w, APS_ERR_ERP,
			      "vendor %.64s has %d bills numbered %.64s in GnuCash; pay them there",
			      v->id, n, pb->number);
	pb->b = bills[0];
	if (!pb->b.txn[0] || !pb->b.lot[0])
		return refuse(w, APS_ERR_ERP, "bill %.64s of vendor %.64s is not posted in GnuCash",
			      pb->number, v->id);
	if (strcmp(pb->b.currency, v->currency))
		return refuse(w, APS_ERR_ERP, "bill %.64s is not in the vendor's currency %s",
			      pb->number, v->mnemonic);
	rc = lot_open(w, pb->b.lot, &open);
	if (rc)
		return rc;
	if (open.n <= 0)
		return refuse(w, APS_ERR_ERP, "bill %.64s of vendor %.64s is already paid in GnuCash",
			      pb->number, v->id);
	if (pb->amount.n <= 0 || rat_cmp(pb->amount, open) > 0 ||
	    rat_units(pb->amount, v->scu, &pb->units))
		return refuse(w, APS_ERR_ERP,
			      "the payment of %s on bill %.64s is not between 0 and the %s still "
			      "owed",
			      rat_units(pb->amount, v->scu, &units) ? "?" :
			      fmt_units(units, v->scu, a, sizeof(a)), pb->number,
			      rat_units(open, v->scu, &units) ? "?" :
			      fmt_units(units, v->scu, b, sizeof(b)));
	return APS_OK;
}

static int pay_bills(struct wr *w, struct payment *p, struct erp_doc_ref *out, int *found)
{
	struct vendor v;
	const struct acct *bank;
	struct rat sum = {0, 1};
	char txn[GUID_LEN], posted[TIME_LEN];
	long long total = 0;
	int i, rc;

	rc = need_vendor(w, p->vendor, &v);
	if (!rc)
		rc = find_payment(w, &v, p->reference, txn);
	if (!rc && txn[0]) {
		*found = 1;
		payment_ref(txn, p->reference, out);
		return APS_OK;
	}
	for (i = 0; i < p->n && !rc; i++) {
		rc = check_paid_bill(w, &v, p, i);
		if (!rc && (rat_add(&sum, sum, p->bills[i].amount) ||
			    __builtin_add_overflow(total, p->bills[i].units, &total)))
			rc = refuse(w, APS_ERR_ERP, "the payment's amounts are too large");
	}
	if (!rc && rat_cmp(sum, p->amount) != 0)
		rc = refuse(w, APS_ERR_ERP,
			    "the payment's amount is not the sum of the amounts of its invoices");
	if (!rc)
		rc = load_accts(w);
	if (rc)
		return rc;
	bank = find_acct(w, p->bank);
	if (!bank)
		return refuse(w, APS_ERR_ERP,
			      "GnuCash has no account \"%.128s\" to pay from (give a code of the "
			      "bank_accounts list or an account's full path)",
			      p->bank);
	if (bank->placeholder || (strcmp(bank->type, "BANK") && strcmp(bank->type, "CASH") &&
				  strcmp(bank->type, "ASSET") && strcmp(bank->type, "CREDIT") &&
				  strcmp(bank->type, "LIABILITY")))
		return refuse(w, APS_ERR_ERP, "bills cannot be paid from account %.128s (%s%s)",
			      bank->path, bank->type, bank->placeholder ? ", a placeholder" : "");
	if (strcmp(bank->commodity, v.currency) || bank->scu != v.scu)
		return refuse(w, APS_ERR_ERP, "account %.128s is not in the bills' currency %s",
			      bank->path, v.mnemonic);
	rc = new_guid(w, txn);
	fmt_date(w, p->date, posted);
	if (!rc)
		rc = q_exec(w,
			    "INSERT INTO transactions (guid, currency_guid, num, post_date, "
			    "enter_date, description) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			    "ssssss", txn, v.currency, p->reference, posted, w->now, v.name);
	if (!rc)
		rc = insert_split(w, txn, bank->guid, -total, v.scu, NULL, ACTION_PAYMENT);
	for (i = 0; i < p->n && !rc; i++)
		rc = insert_split(w, txn, p->bills[i].b.acc, p->bills[i].units, v.scu,
				  p->bills[i].b.lot, ACTION_PAYMENT);
	if (!rc)
		rc = slot(w, txn, "trans-txn-type", SLOT_STRING, "P", 0);
	if (!rc)
		payment_ref(txn, p->reference, out);
	return rc;
}

/* ---- erp_ops ------------------------------------------------------------------ */

static int check_company(struct erp *e, const char *company, char *err, size_t errlen)
{
	if (company && sqlmap_company_currency(e, company))
		return APS_OK;
	snprintf(err, errlen,
		 "company \"%.64s\" is not this GnuCash book (a book is one company, coded by "
		 "its GUID; see `apsync-agent erp`)",
		 company ? company : "");
	return APS_ERR_NOTFOUND;
}

static int gnucash_write_invoice(struct erp *e, const char *company, const cJSON *doc,
				 struct erp_doc_ref *out, char *err, size_t errlen)
{
	struct invoice *inv;
	struct wr w;
	int rc, found = 0;

	rc = check_company(e, company, err, errlen);
	if (rc)
		return rc;
	inv = calloc(1, sizeof(*inv));
	if (!inv) {
		snprintf(err, errlen, "out of memory");
		return APS_ERR_NOMEM;
	}
	wr_init(&w, e, err, errlen);
	rc = parse_invoice(&w, doc, inv);
	if (!rc)
		rc = wr_begin(&w, 1);
	if (!rc) {
		rc = post_bill(&w, inv, out, &found);
		rc = wr_end(&w, rc, !found);
	}
	free(inv->lines);
	free(inv->exp);
	free(inv);
	return rc;
}

static int gnucash_write_payment(struct erp *e, const char *company, const cJSON *doc,
				 struct erp_doc_ref *out, char *err, size_t errlen)
{
	struct payment p = {0};
	struct wr w;
	int rc, found = 0;

	rc = check_company(e, company, err, errlen);
	if (rc)
		return rc;
	wr_init(&w, e, err, errlen);
	rc = parse_payment(&w, doc, &p);
	if (!rc)
		rc = wr_begin(&w, 1);
	if (!rc) {
		rc = pay_bills(&w, &p, out, &found);
		rc = wr_end(&w, rc, !found);
	}
	free(p.bills);
	return rc;
}

/* The document's natural key in the book: a bill by vendor and billing id,
 * a payment by vendor and reference (the transaction's number). Found
 * documents are reported even while GnuCash has the book open; a document
 * not found then is APS_ERR_BUSY, since it could not be written now. */
static int find_doc(struct wr *w, const cJSON *doc, struct erp_doc_ref *out)
{
	const char *type = jstr(doc, "type"), *vendor = jstr(doc, "vendor");
	const char *key = jstr(doc, type && !strcmp(type, "payment") ? "reference" : "number");
	struct vendor v;
	struct bill bills[2];
	char txn[GUID_LEN];
	int rc, n;

	if (!type || (strcmp(type, "payment") && strcmp(type, "invoice")))
		return bad_doc(w, "document", "type", 0);
	if (!vendor || !key)
		return bad_doc(w, type, vendor ? (strcmp(type, "payment") ? "number" : "reference")
					       : "vendor", 0);
	rc = find_vendor(w, vendor, &v);
	if (rc)
		return rc;
	if (!strcmp(type, "invoice")) {
		rc = find_bills(w, &v, key, bills, &n);
		if (!rc && n)
			return bill_ref(w, &bills[0], out);
	} else {
		rc = find_payment(w, &v, key, txn);
		if (!rc && txn[0]) {
			payment_ref(txn, key, out);
			return APS_OK;
		}
	}
	if (!rc)
		rc = check_lock(w);
	if (!rc)
		rc = refuse(w, APS_ERR_NOTFOUND, "GnuCash has no %s %.64s of vendor %.64s", type,
			    key, vendor);
	return rc;
}

static int gnucash_lookup(struct erp *e, const char *company, const cJSON *doc,
			  struct erp_doc_ref *out, char *err, size_t errlen)
{
	struct wr w;
	int rc;

	rc = check_company(e, company, err, errlen);
	if (rc)
		return rc;
	wr_init(&w, e, err, errlen);
	rc = wr_begin(&w, 0);
	if (!rc) {
		rc = find_doc(&w, doc, out);
		rc = wr_end(&w, rc, 0);
	}
	return rc;
}

static void gnc_free(void *p)
{
	struct gnc *g = p;

	if (!g)
		return;
	sqlite3_close(g->db);
	free(g->path);
	free(g);
}

/* Checks that PATH is a GnuCash book in SQLite format and reads the version
 * of the GnuCash that saved it. */
static int probe_book(struct gnc *g, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int src, v = -1, flags = SQLITE_OPEN_READONLY;

again:
	src = sqlite3_open_v2(g->path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (src == SQLITE_OK) {
		sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
		src = sqlite3_prepare_v2(db, "SELECT table_version FROM versions WHERE table_name "
					 "= 'Gnucash'", -1, &st, NULL);
	}
	/* A writer that died mid-transaction (this agent killed while posting a
	 * bill, or GnuCash) leaves a hot journal, which only a connection that may
	 * write can roll back (SQLite does on its first read): read-write once. */
	if (src != SQLITE_OK && flags == SQLITE_OPEN_READONLY && db &&
	    sqlite3_extended_errcode(db) == SQLITE_READONLY_ROLLBACK) {
		sqlite3_close(db);
		db = NULL;
		flags = SQLITE_OPEN_READWRITE;
		goto again;
	}
	if (src == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	if (src == SQLITE_OK && v > 0)
		snprintf(g->version, sizeof(g->version), "%d.%d", v / 1000000, v % 1000000);
	if (src == SQLITE_OK && v <= 0)
		snprintf(err, errlen, "%s is a SQLite file but not a GnuCash book (it has no "
			 "GnuCash version)", g->path);
	else if ((src & 0xff) == SQLITE_NOTADB)
		snprintf(err, errlen, "%s is not a GnuCash book in SQLite format; GnuCash's "
			 "default XML format cannot be read: in GnuCash use File > Save As with Data "
			 "Format \"sqlite3\"", g->path);
	else if ((src & 0xff) == SQLITE_BUSY)
		snprintf(err, errlen, "the GnuCash book %s is being written right now; it will be "
			 "tried again", g->path);
	else if (src != SQLITE_OK)
		snprintf(err, errlen, "cannot open the GnuCash book %s: %s", g->path,
			 db ? sqlite3_errmsg(db) : sqlite3_errstr(src));
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (src == SQLITE_OK && v > 0)
		return APS_OK;
	if ((src & 0xff) == SQLITE_BUSY)
		return APS_ERR_BUSY;
	return (src & 0xff) == SQLITE_CANTOPEN ? APS_ERR_NOTFOUND : APS_ERR_ERP;
}

static int gnucash_open(const char *target, const struct erp_settings *cfg, struct erp **out,
			char *err, size_t errlen)
{
	struct gnc *g;
	int rc;

	*out = NULL;
	if (!target || !*target) {
		snprintf(err, errlen, "--erp gnucash: needs the book's path, e.g. "
			 "gnucash:/home/me/books.gnucash");
		return APS_ERR_INVAL;
	}
	g = calloc(1, sizeof(*g));
	if (!g || !(g->path = strdup(target))) {
		free(g);
		snprintf(err, errlen, "out of memory");
		return APS_ERR_NOMEM;
	}
	rc = probe_book(g, err, errlen);
	if (!rc)
		rc = sqlmap_open("gnucash", "sqlite", target, cfg, out, err, errlen);
	if (rc) {
		gnc_free(g);
		return rc;
	}
	sqlmap_set_ext(*out, g, gnc_free);
	return APS_OK;
}

static int gnucash_identity(struct erp *e, struct erp_identity *id, char *err, size_t errlen)
{
	struct gnc *g = sqlmap_ext(e);
	int rc = sqlmap_identity(e, id, err, errlen);

	if (!rc && g->version[0])
		snprintf(id->version, sizeof(id->version), "%s", g->version);
	return rc;
}

/* sqlmap's file fingerprint (sizes and times of the book and its journal)
 * with the inode (a Save As over the file) and SQLite's file change counter,
 * which every committed write moves in GnuCash's rollback-journal mode. */
static int gnucash_fingerprint(struct erp *e, const char *company, const char *list,
			       char out[128], char *err, size_t errlen)
{
	struct gnc *g = sqlmap_ext(e);
	unsigned char hdr[28];
	struct stat st;
	size_t n;
	FILE *f;
	int rc;

	rc = sqlmap_fingerprint(e, company, list, out, err, errlen);
	if (rc)
		return rc;
	f = fopen(g->path, "rb");
	if (!f)
		return APS_ERR_IO;
	n = fread(hdr, 1, sizeof(hdr), f);
	rc = fstat(fileno(f), &st);
	fclose(f);
	if (n != sizeof(hdr) || rc)
		return APS_ERR_IO;
	n = strlen(out);
	rc = snprintf(out + n, 128 - n, "/i%llu.c%lu", (unsigned long long)st.st_ino,
		      (unsigned long)hdr[24] << 24 | (unsigned long)hdr[25] << 16 |
			      (unsigned long)hdr[26] << 8 | hdr[27]);
	return rc < 0 || (size_t)rc >= 128 - n ? APS_ERR_RANGE : APS_OK;
}

const struct erp_ops erp_gnucash_ops = {
	.scheme = "gnucash",
	.description = "a GnuCash 4 book in SQLite format (gnucash:PATH.gnucash)",
	.open = gnucash_open,
	.close = sqlmap_close,
	.identity = gnucash_identity,
	.count = sqlmap_count,
	.clock = sqlmap_clock,
	.read = sqlmap_read,
	.stamped = sqlmap_stamped,
	.fingerprint = gnucash_fingerprint,
	.write_invoice = gnucash_write_invoice,
	.write_payment = gnucash_write_payment,
	.lookup = gnucash_lookup,
};
