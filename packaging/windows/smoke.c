/*
 * Smoke test of the Windows libraries built by packaging/windows/deps.sh:
 * linked statically into one smoke.exe with the same pkg-config line the
 * agent uses, it prints each library's version and does one small real thing
 * with each. Exits 0 when every check passed, else the number that failed.
 */

/* libwebsockets.h brings winsock2.h; it must come before windows.h (whose
 * older winsock.h would clash). mingw-w64's sql.h needs windows.h first. */
#include <libwebsockets.h>
#include <windows.h>
#include <sql.h>
#include <sqlext.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sqlite3.h>
#include <zlib.h>
#include <zstd.h>
#ifdef SMOKE_WITH_CURL
#include <curl/curl.h>
#endif

#include <stdio.h>
#include <string.h>

static int checks, failures;

static void report(const char *lib, const char *version, int ok, const char *what)
{
	printf("%-14s %-40s %s (%s)\n", lib, version, ok ? "ok" : "FAILED", what);
	checks++;
	if (!ok)
		failures++;
}

static const char sample[] = "apsync smoke test: the same bytes, again and again and again";

static void check_openssl(void)
{
	static const char want[] =
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
	int ok = EVP_Digest("abc", 3, md, &len, EVP_sha256(), NULL) == 1;
	for (unsigned int i = 0; ok && i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	ok = ok && !strcmp(hex, want) && ctx != NULL;
	SSL_CTX_free(ctx);
	report("openssl", OpenSSL_version(OPENSSL_VERSION), ok, "SHA-256, TLS client context");
	printf("%-14s %s\n", "", OpenSSL_version(OPENSSL_DIR));
}

static const struct lws_protocols protocols[] = {
    {"smoke", lws_callback_http_dummy, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void check_lws(void)
{
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	lws_set_log_level(LLL_ERR, NULL);
	struct lws_context *context = lws_create_context(&info);
	report("libwebsockets", lws_get_library_version(), context != NULL,
	       "client context with TLS");
	if (context)
		lws_context_destroy(context);
}

static void check_cjson(void)
{
	cJSON *json = cJSON_Parse("{\"list\": [1, 2, \"three\"]}");
	char *text = json ? cJSON_PrintUnformatted(json) : NULL;
	report("cjson", cJSON_Version(), text && !strcmp(text, "{\"list\":[1,2,\"three\"]}"),
	       "parse and print");
	cJSON_free(text);
	cJSON_Delete(json);
}

static void check_sqlite(void)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int ok = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	         sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (20), (22);", NULL, NULL,
	                      NULL) == SQLITE_OK &&
	         sqlite3_prepare_v2(db, "SELECT sum(x) FROM t", -1, &st, NULL) == SQLITE_OK &&
	         sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 42;
	sqlite3_finalize(st);
	sqlite3_close(db);
	report("sqlite3", sqlite3_libversion(), ok && sqlite3_threadsafe() == 1,
	       "in-memory query, thread-safe");
}

static void check_zstd(void)
{
	char packed[256], unpacked[sizeof(sample)];
	size_t n = ZSTD_compress(packed, sizeof(packed), sample, sizeof(sample), 3);
	size_t m = ZSTD_isError(n) ? n : ZSTD_decompress(unpacked, sizeof(unpacked), packed, n);
	report("zstd", ZSTD_versionString(),
	       !ZSTD_isError(m) && m == sizeof(sample) && !memcmp(sample, unpacked, m),
	       "round trip");
}

static void check_zlib(void)
{
	Bytef packed[256], unpacked[sizeof(sample)];
	uLongf n = sizeof(packed), m = sizeof(unpacked);
	int ok = compress(packed, &n, (const Bytef *)sample, sizeof(sample)) == Z_OK &&
	         uncompress(unpacked, &m, packed, n) == Z_OK && m == sizeof(sample) &&
	         !memcmp(sample, unpacked, m);
	report("zlib", zlibVersion(), ok, "round trip");
}

#ifdef SMOKE_WITH_CURL
static void check_curl(void)
{
	int ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
	curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
	CURL *easy = ok ? curl_easy_init() : NULL;
	ok = ok && easy && info->ssl_version && (info->features & CURL_VERSION_SSL) &&
	     (info->features & CURL_VERSION_LIBZ);
	curl_easy_cleanup(easy);
	curl_global_cleanup();
	report("curl", curl_version(), ok, "easy handle, built with SSL and zlib");
}
#endif

/* The ODBC driver manager is the system's odbc32.dll: only linking is checked,
 * since what it can do depends on the Windows (or wine) it runs on. */
static void check_odbc(void)
{
	SQLHENV env = SQL_NULL_HENV;
	SQLRETURN rc = SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env);
	printf("%-14s %-40s %s\n", "odbc32", "(system DLL)",
	       SQL_SUCCEEDED(rc) ? "ok (environment handle)" : "linked (no driver manager here)");
	if (SQL_SUCCEEDED(rc))
		SQLFreeHandle(SQL_HANDLE_ENV, env);
}

int main(void)
{
	check_openssl();
	check_lws();
	check_cjson();
	check_sqlite();
	check_zstd();
	check_zlib();
#ifdef SMOKE_WITH_CURL
	check_curl();
#endif
	check_odbc();
	printf("%d passed, %d failed\n", checks - failures, failures);
	return failures;
}
