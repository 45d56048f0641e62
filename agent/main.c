/* apsync-agent: command-line entry. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "apsync_proto.h"
#include "erp/demo.h"
#include "erp/erp.h"
#include "erp/sqlmap.h"
#include "arena.h"
#include "err.h"
#include "log.h"
#include "plat.h"
#include "service.h"
#include "util.h"

#define OPT(field) offsetof(struct agent_opts, field)

/* How to reach the ERP: the same options for run, doctor, erp and export
 * (their option structs name these fields alike). */
#define ERP_OPTIONS(OFF)                                                                   \
	{"erp", APS_CFG_STR, OFF(erp), 0, 4096, NULL, 0,                                   \
	 "the ERP, SCHEME:TARGET (e.g. demo:/path/erp.db; see `run --help`)"},             \
	{"profiles", APS_CFG_STR, OFF(profiles), 0, 4096, APSYNC_PROFILE_DIR, 0,           \
	 "directory of ERP mapping profiles (odbc:, sqlite:, tryton: and gnucash: ERPs)"}, \
	{"erp-url", APS_CFG_STR, OFF(erp_url), 0, 2048, NULL, 0,                           \
	 "the ERP's API or drop folder for writes, e.g. Tryton's "                          \
	 "http://HOST:8000/DATABASE/ or file:///DIR for import files"},                    \
	{"erp-user", APS_CFG_STR, OFF(erp_user), 0, 128, NULL, 0,                          \
	 "the ERP user writes are made as"},                                              \
	{"erp-password-file", APS_CFG_STR, OFF(erp_password_file), 0, 4096, NULL, 0,       \
	 "a file holding that user's password (keep it mode 0600)"}

const struct aps_cfg_entry agent_run_cfg[] = {
	{"state", APS_CFG_STR, OPT(state), 0, 0, NULL, 0,
	 "state directory: credential, outbox, checkpoints (from `enroll`)"},
	ERP_OPTIONS(OPT),
	{"proxy", APS_CFG_STR, OPT(proxy), 0, 1024, NULL, 0,
	 "HTTP proxy to the broker (CONNECT), HOST:PORT or http://[USER:PASS@]HOST:PORT; "
	 "default: HTTPS_PROXY or HTTP_PROXY from the environment, unless NO_PROXY covers "
	 "the broker"},
	{"log-level", APS_CFG_STR, OPT(log_level), 0, 16, "notice", 1,
	 "error, warn, notice, info or debug"},
	{"log-file", APS_CFG_STR, OPT(log_file), 0, 4096, NULL, 1,
	 "also write the log to this file, renamed to FILE.1 when it reaches --log-max-mb "
	 "(3 old files kept); for hosts without journald (a Windows service defaults to "
	 "%ProgramData%\\apsync\\logs\\agent.log)"},
	{"log-max-mb", APS_CFG_INT, OPT(log_max_mb), 1, 1024, "10", 1,
	 "size of a --log-file before it is renamed, MB"},
	{"reconnect-min", APS_CFG_INT, OPT(reconnect_min), 10, 600000, "1000", 0,
	 "first reconnect delay, ms (doubles up to --reconnect-max, plus up to 30% jitter)"},
	{"reconnect-max", APS_CFG_INT, OPT(reconnect_max), 100, 3600000, "60000", 0,
	 "longest reconnect delay, ms"},
	{"batch-rows", APS_CFG_INT, OPT(batch_rows), 1, APSYNC_MAX_BATCH_ROWS, "4000", 0,
	 "rows per batch at most"},
	{"batch-bytes", APS_CFG_INT, OPT(batch_bytes), 4096, APSYNC_MAX_INFLATED / 2, "1048576", 0,
	 "JSON bytes per batch at most (before compression)"},
	{"compression", APS_CFG_STR, OPT(compression), 0, 16, "zstd", 0,
	 "compression of batches: zstd, deflate or none"},
	{"compression-level", APS_CFG_INT, OPT(compression_level), 1, 19, "1", 0,
	 "1 fastest … 19 smallest (deflate stops at 9)"},
	{"erp-retry", APS_CFG_INT, OPT(erp_retry), 100, 3600000, "30000", 0,
	 "ms between attempts to reach an ERP that is absent or locked"},
	{"cursor-lag", APS_CFG_INT, OPT(cursor_lag), 0, 3600000, "5000", 0,
	 "ms: a sync window ends this long before the ERP's clock, for rows still being "
	 "written"},
	{"cursor-overlap", APS_CFG_INT, OPT(cursor_overlap), 0, 86400000, "600000", 0,
	 "ms: a partial sync re-reads this much before its checkpoint (rows stamped "
	 "before they were committed); rows already confirmed are skipped"},
	APS_CFG_END,
};

static const struct aps_cfg_entry enroll_cfg[] = {
	{"broker", APS_CFG_STR, OPT(broker), 0, 500, NULL, 0, "the broker, wss://HOST[:PORT]"},
	{"code", APS_CFG_STR, OPT(code), 0, 64, NULL, 0, "one-time enrollment code"},
	{"state", APS_CFG_STR, OPT(state), 0, 0, NULL, 0, "state directory to create"},
	{"ca", APS_CFG_STR, OPT(ca), 0, 0, NULL, 0,
	 "trust the broker's certificate through this CA file (PEM)"},
	{"pin", APS_CFG_STR, OPT(pin), 0, 200, NULL, 0,
	 "trust only a broker certificate with this SHA-256 fingerprint"},
	{"insecure", APS_CFG_BOOL, OPT(insecure), 0, 0, "false", 0,
	 "no certificate check: only for a broker on this machine"},
	{"log-level", APS_CFG_STR, OPT(log_level), 0, 16, "notice", 0,
	 "error, warn, notice, info or debug"},
	APS_CFG_END,
};

/* `erp` and `export`: an ERP, reached as `run` reaches it. */
struct erp_cli_opts {
	char *erp;
	char *profiles;
	char *erp_url;
	char *erp_user;
	char *erp_password_file;
	char *company;
	char *list;
	int64_t limit;
	char *file;
	int lookup_only;
};

#define EOPT(field) offsetof(struct erp_cli_opts, field)

static const struct aps_cfg_entry erp_cfg[] = {
	ERP_OPTIONS(EOPT),
	{"company", APS_CFG_STR, EOPT(company), 0, 64, NULL, 0, "with --list: the company to read"},
	{"list", APS_CFG_STR, EOPT(list), 0, 64, NULL, 0,
	 "print this list's rows (JSON, one per line) instead of the summary"},
	{"limit", APS_CFG_INT, EOPT(limit), 1, 100000000, "20", 0, "with --list: rows at most"},
	APS_CFG_END,
};

static const struct aps_cfg_entry export_cfg[] = {
	ERP_OPTIONS(EOPT),
	{"company", APS_CFG_STR, EOPT(company), 0, 64, NULL, 0, "the company to write into"},
	{"file", APS_CFG_STR, EOPT(file), 0, 4096, NULL, 0,
	 "the document, JSON as proto/EXPORTS.md describes (- for standard input)"},
	{"lookup-only", APS_CFG_BOOL, EOPT(lookup_only), 0, 0, "false", 0,
	 "only look the document up by its natural key; write nothing"},
	APS_CFG_END,
};

static void cli_settings(const struct erp_cli_opts *o, struct erp_settings *cfg)
{
	cfg->profiles = o->profiles;
	cfg->url = o->erp_url;
	cfg->user = o->erp_user;
	cfg->password_file = o->erp_password_file;
}

struct demo_opts {
	char *out;
	int64_t rows;
	int64_t seed;
};

static const struct aps_cfg_entry demo_cfg[] = {
	{"out", APS_CFG_STR, offsetof(struct demo_opts, out), 0, 0, NULL, 0,
	 "the file to write (must not exist)"},
	{"rows", APS_CFG_INT, offsetof(struct demo_opts, rows), DEMO_ERP_MIN_ROWS, DEMO_ERP_MAX_ROWS,
	 "2000", 0, "vendors of the first company; the other lists scale with it"},
	{"seed", APS_CFG_INT, offsetof(struct demo_opts, seed), 0, INT64_MAX, "1", 0,
	 "random seed: the same seed and rows give the same data"},
	APS_CFG_END,
};

static void usage(FILE *f)
{
	fprintf(f, "apsync-agent %s: the SyncTool. Reads an ERP's lists and streams them to the "
		   "apsync broker over an outbound TLS WebSocket.\n\n"
		   "usage:\n"
		   "  apsync-agent enroll --broker wss://HOST:PORT --code CODE --state DIR\n"
		   "                      [--ca FILE | --pin SHA256 | --insecure]\n"
		   "  apsync-agent run --state DIR --erp SCHEME:TARGET [options]\n"
		   "  apsync-agent demo-erp --out PATH [--rows N] [--seed S]\n"
		   "  apsync-agent erp --erp SCHEME:TARGET [--company C --list L]\n"
		   "  apsync-agent export --erp SCHEME:TARGET --company C --file DOC.json\n"
		   "  apsync-agent doctor --state DIR --erp SCHEME:TARGET [options]\n"
		   "  apsync-agent service install [--config FILE] | uninstall | start | stop | "
		   "status\n"
		   "                      (Windows; systemd runs it on Linux)\n"
		   "  apsync-agent --version\n\n"
		   "`apsync-agent COMMAND --help` lists a command's options.\n",
		APSYNC_VERSION);
}

static int wants_help(int argc, char **argv)
{
	int i;

	for (i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	return 0;
}

/* Parses a command's options; 0 on success, else the exit code. */
static int parse(const char *cmd, const struct aps_cfg_entry *t, void *opts, int argc,
		 char **argv)
{
	char err[512];
	int argi = 0;

	if (aps_cfg_defaults(t, opts) ||
	    aps_cfg_parse_args(t, opts, argc, argv, &argi, err, sizeof(err))) {
		fprintf(stderr, "apsync-agent %s: %s\n", cmd, err);
		return 2;
	}
	if (argi < argc) {
		fprintf(stderr, "apsync-agent %s: unexpected argument \"%s\" (see --help)\n", cmd,
			argv[argi]);
		return 2;
	}
	return 0;
}

static int set_log_level(const char *cmd, const char *name)
{
	int level = aps_log_level_parse(name);

	if (level < 0) {
		fprintf(stderr, "apsync-agent %s: --log-level %s is not one of error, warn, notice, "
				"info, debug\n",
			cmd, name);
		return 2;
	}
	aps_log_init("agent", level);
	return 0;
}

static struct agent *running;

static void on_stop(void)
{
	struct agent *a = running;

	if (a) {
		a->stop = 1;
		/* wakes the loop thread wherever the request came from: a signal
		 * (which interrupts its poll() anyway) or another thread */
		if (a->ctx)
			lws_cancel_service(a->ctx);
	}
}

int agent_run(struct agent_opts *opts)
{
	struct agent a;
	char err[1024], proxy[512], why[600];
	unsigned proxy_port;
	int rc;

	memset(&a, 0, sizeof(a));
	a.opts = opts;
	a.window_frames = APSYNC_DEFAULT_WINDOW_FRAMES;
	a.window_bytes = APSYNC_DEFAULT_WINDOW_BYTES;
	if (!opts->state || !opts->erp) {
		fprintf(stderr, "apsync-agent run: needs --state DIR and --erp SCHEME:TARGET\n");
		return 2;
	}
	if (aps_compression_parse(opts->compression) < 0) {
		fprintf(stderr, "apsync-agent run: --compression must be zstd, deflate or none\n");
		return 2;
	}
	if (opts->proxy && *opts->proxy &&
	    agent__parse_proxy(opts->proxy, proxy, sizeof(proxy), &proxy_port, err, sizeof(err))) {
		fprintf(stderr, "apsync-agent run: --proxy: %s\n", err);
		return 2;
	}
	if (opts->reconnect_min > opts->reconnect_max) {
		fprintf(stderr, "apsync-agent run: --reconnect-min is above --reconnect-max\n");
		return 2;
	}
	if (agent_cred__load(opts->state, &a.cred, err, sizeof(err))) {
		log_err("%s", err);
		return 1;
	}
	if (aps_path_open_to_others(opts->state, why, sizeof(why)) == 1)
		log_warn("state directory %s is open to other users: %s", opts->state, why);
	pthread_mutex_init(&a.mu, NULL);
	pthread_cond_init(&a.cv, NULL);
	running = &a;
	aps_plat_on_stop(on_stop);
	log_notice("apsync-agent %s: SyncTool \"%s\" of tenant %s, broker %s, ERP %s",
		   APSYNC_VERSION, a.cred.synctool, a.cred.tenant, a.cred.broker, opts->erp);
	rc = worker__start(&a, err, sizeof(err));
	if (rc) {
		log_err("%s", err);
		rc = 1;
		goto out;
	}
	rc = link__run(&a);
	worker__stop(&a);
	if (!rc)
		rc = a.exit_code;
	log_notice("stopped");
out:
	running = NULL;
	aps_wipe(a.cred.credential, sizeof(a.cred.credential));
	free(a.identity);
	pthread_mutex_destroy(&a.mu);
	pthread_cond_destroy(&a.cv);
	return rc;
}

static int cmd_run(int argc, char **argv)
{
	struct agent_opts o;
	char err[600];
	int rc;

	memset(&o, 0, sizeof(o));
	if (wants_help(argc, argv)) {
		printf("usage: apsync-agent run --state DIR --erp SCHEME:TARGET [--config FILE] "
		       "[options]\n\nERPs: demo:PATH (a file made by `apsync-agent demo-erp`),\n"
		       "  tryton:PATH.sqlite or tryton:odbc:CONNECTION (Tryton 6.0),\n"
		       "  odbc:PROFILE:CONNECTION (e.g. odbc:sage100:DSN=SAGE), sqlite:PROFILE:PATH\n\n"
		       "options (also \"name = value\" lines in a --config file):\n");
		aps_cfg_help(agent_run_cfg, stdout);
		return 0;
	}
	rc = parse("run", agent_run_cfg, &o, argc, argv);
	if (!rc)
		rc = set_log_level("run", o.log_level);
	if (!rc && !o.log_file && aps_service_log_file("agent"))
		o.log_file = strdup(aps_service_log_file("agent"));
	if (!rc && o.log_file &&
	    aps_log_file(o.log_file, (long)o.log_max_mb << 20, err, sizeof(err))) {
		fprintf(stderr, "apsync-agent run: %s\n", err);
		rc = 2;
	}
	if (!rc) {
		struct aps_log_reload r = {
			.table = agent_run_cfg,
			.opts_size = sizeof(o),
			.live = &o,
			.config_path = aps_cfg_arg(argc, argv, "config"),
			.argc = argc,
			.argv = argv,
			.has_log_file = 1,
			.log_file_offset = OPT(log_file),
			.log_max_mb_offset = OPT(log_max_mb),
		};

		aps_log_reload_setup(&r);
		rc = agent_run(&o);
		aps_log_file(NULL, 0, err, sizeof(err));
	}
	aps_cfg_free(agent_run_cfg, &o);
	return rc;
}

static int cmd_enroll(int argc, char **argv)
{
	struct agent_opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	if (wants_help(argc, argv)) {
		printf("usage: apsync-agent enroll --broker wss://HOST:PORT --code CODE --state DIR "
		       "[--ca FILE | --pin SHA256 | --insecure]\n\n"
		       "Trades a one-time code from the broker's administrator for this SyncTool's "
		       "credential,\nkept in DIR/credential.json (mode 0600).\n\noptions:\n");
		aps_cfg_help(enroll_cfg, stdout);
		return 0;
	}
	rc = parse("enroll", enroll_cfg, &o, argc, argv);
	if (!rc)
		rc = set_log_level("enroll", o.log_level);
	if (!rc)
		rc = agent_enroll(&o);
	aps_cfg_free(enroll_cfg, &o);
	return rc;
}

static int cmd_demo_erp(int argc, char **argv)
{
	struct demo_opts o;
	char err[512];
	int64_t t0;
	int rc;

	memset(&o, 0, sizeof(o));
	if (wants_help(argc, argv)) {
		printf("usage: apsync-agent demo-erp --out PATH [--rows N] [--seed S]\n\n"
		       "Writes a demo ERP: a SQLite file shaped like a desktop ERP with two "
		       "companies and\nevery list (vendors, GL accounts, items, tax codes, units, "
		       "warehouses, divisions,\nbank accounts, purchase orders with lines, "
		       "receivings). Sync it with --erp demo:PATH.\n\noptions:\n");
		aps_cfg_help(demo_cfg, stdout);
		return 0;
	}
	rc = parse("demo-erp", demo_cfg, &o, argc, argv);
	if (rc)
		goto out;
	if (!o.out) {
		fprintf(stderr, "apsync-agent demo-erp: needs --out PATH\n");
		rc = 2;
		goto out;
	}
	t0 = aps_mono_ms();
	rc = demo_erp_generate(o.out, o.rows, (uint64_t)o.seed, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "apsync-agent demo-erp: %s\n", err);
		rc = rc == APS_ERR_EXISTS || rc == APS_ERR_RANGE ? 2 : 1;
		goto out;
	}
	printf("wrote %s: demo ERP with %lld vendors in company BLUE (seed %lld) in %.1f s\n", o.out,
	       (long long)o.rows, (long long)o.seed, (double)(aps_mono_ms() - t0) / 1000.0);
out:
	aps_cfg_free(demo_cfg, &o);
	return rc;
}

/* One row of `erp --list`: the canonical columns as a JSON object. */
struct print_ctx {
	const struct erp_list *list;
	struct aps_buf line;
};

static int print_row(void *ud, const struct aps_value *vals)
{
	struct print_ctx *p = ud;
	int i, rc = 0;

	p->line.len = 0;
	rc |= aps_buf_append_str(&p->line, "{");
	for (i = 0; i < p->list->ncols; i++) {
		rc |= aps_buf_append_str(&p->line, i ? ", " : "");
		rc |= aps_json_string(&p->line, p->list->cols[i]);
		rc |= aps_buf_append_str(&p->line, ": ");
		switch (vals[i].type) {
		case APS_V_NULL:
			rc |= aps_buf_append_str(&p->line, "null");
			break;
		case APS_V_FALSE:
			rc |= aps_buf_append_str(&p->line, "false");
			break;
		case APS_V_TRUE:
			rc |= aps_buf_append_str(&p->line, "true");
			break;
		case APS_V_INT:
			rc |= aps_buf_printf(&p->line, "%lld", (long long)vals[i].i);
			break;
		case APS_V_TEXT:
			rc |= aps_json_string(&p->line, vals[i].s);
			break;
		case APS_V_JSON:
			rc |= aps_buf_append_str(&p->line, vals[i].s);
			break;
		}
	}
	rc |= aps_buf_append_str(&p->line, "}\n");
	if (!rc)
		fwrite(p->line.data, 1, p->line.len, stdout);
	return rc;
}

/* `apsync-agent erp`: what the agent sees of an ERP, without a broker. */
static int cmd_erp(int argc, char **argv)
{
	const struct erp_ops *ops = NULL;
	struct erp_identity *id = NULL;
	struct erp_settings settings = {0};
	struct erp *e = NULL;
	struct erp_cli_opts o;
	struct print_ctx pc = {0};
	struct erp_read req = {0};
	char err[1024], clock[40];
	int64_t n;
	int rc, i, j, got;

	memset(&o, 0, sizeof(o));
	if (wants_help(argc, argv)) {
		printf("usage: apsync-agent erp --erp SCHEME:TARGET [--company C --list L [--limit N]]\n\n"
		       "Opens an ERP as `run` would and prints what the agent sees: product, version,\n"
		       "companies and their lists with row counts; or, with --company and --list, the\n"
		       "list's first rows in key order as JSON lines.\n\noptions:\n");
		aps_cfg_help(erp_cfg, stdout);
		return 0;
	}
	rc = parse("erp", erp_cfg, &o, argc, argv);
	if (rc)
		goto out;
	if (!o.erp || (!o.company != !o.list)) {
		fprintf(stderr, "apsync-agent erp: needs --erp, and --company with --list\n");
		rc = 2;
		goto out;
	}
	cli_settings(&o, &settings);
	id = calloc(1, sizeof(*id));
	rc = id ? erp_open(o.erp, &settings, &ops, &e, err, sizeof(err)) : APS_ERR_NOMEM;
	if (!rc)
		rc = ops->identity(e, id, err, sizeof(err));
	if (!rc && o.list) {
		pc.list = erp_list_find(o.list);
		if (!pc.list) {
			snprintf(err, sizeof(err), "\"%s\" is not a canonical list", o.list);
			rc = APS_ERR_NOTFOUND;
		} else {
			req.company = o.company;
			req.list = o.list;
			req.limit = (int)o.limit;
			rc = ops->read(e, &req, print_row, &pc, &got, err, sizeof(err));
		}
	} else if (!rc) {
		rc = ops->clock(e, clock, err, sizeof(err));
		if (!rc)
			printf("%s %s (clock %s)\n", id->product, id->version, clock);
		for (i = 0; !rc && i < id->ncompanies; i++) {
			printf("company %s: %s (%s)%s%s\n", id->companies[i].code,
			       id->companies[i].name, id->companies[i].currency,
			       id->companies[i].po_types ? ", imports POs of type " : "",
			       id->companies[i].po_types ? id->companies[i].po_types : "");
			for (j = 0; !rc && j < id->companies[i].nlists; j++) {
				rc = ops->count(e, id->companies[i].code, id->companies[i].lists[j],
						&n, err, sizeof(err));
				if (!rc)
					printf("  %-16s %lld\n", id->companies[i].lists[j],
					       (long long)n);
			}
		}
	}
	if (rc) {
		fprintf(stderr, "apsync-agent erp: %s\n", err);
		rc = rc == APS_ERR_BUSY ? 75 : 1;
	}
out:
	if (e)
		ops->close(e);
	free(id);
	aps_buf_free(&pc.line);
	aps_cfg_free(erp_cfg, &o);
	return rc;
}

static cJSON *read_json_file(const char *path, char *err, size_t errlen)
{
	struct aps_buf text = {0};
	char chunk[4096];
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	cJSON *j;
	size_t n;

	if (!f) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (aps_buf_append(&text, chunk, n) || text.len > (16u << 20))
			break;
	if (f != stdin)
		fclose(f);
	j = aps_buf_terminate(&text) ? NULL : cJSON_Parse((const char *)text.data);
	aps_buf_free(&text);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		snprintf(err, errlen, "%s is not a JSON object", path);
		return NULL;
	}
	return j;
}

static void print_ref(const char *what, const struct erp_doc_ref *ref)
{
	cJSON *o = cJSON_CreateObject();
	char *text;

	cJSON_AddStringToObject(o, "result", what);
	cJSON_AddStringToObject(o, "id", ref->id);
	cJSON_AddStringToObject(o, "number", ref->number);
	cJSON_AddStringToObject(o, "state", ref->state);
	if (ref->link[0])
		cJSON_AddStringToObject(o, "link", ref->link);
	text = cJSON_PrintUnformatted(o);
	if (text)
		printf("%s\n", text);
	cJSON_free(text);
	cJSON_Delete(o);
}

/* `apsync-agent export`: writes one document into the ERP, exactly once. */
static int cmd_export(int argc, char **argv)
{
	const struct erp_ops *ops = NULL;
	struct erp_settings settings = {0};
	struct erp_doc_ref ref;
	struct erp_cli_opts o;
	struct erp *e = NULL;
	const cJSON *type;
	cJSON *doc = NULL;
	char err[1024];
	int rc, invoice;

	memset(&o, 0, sizeof(o));
	memset(&ref, 0, sizeof(ref));
	if (wants_help(argc, argv)) {
		printf("usage: apsync-agent export --erp SCHEME:TARGET --company C --file DOC.json\n\n"
		       "Writes one invoice or payment (proto/EXPORTS.md) into the ERP, as the SyncTool\n"
		       "does for exports: it first looks the document up by its natural key (vendor +\n"
		       "number or reference) and writes it only if the ERP does not have it. Prints\n"
		       "what the ERP made of it as JSON. Exit 0: written or found; 1: refused or\n"
		       "failed; 3: --lookup-only and not found; 75: ERP busy, try later.\n\noptions:\n");
		aps_cfg_help(export_cfg, stdout);
		return 0;
	}
	rc = parse("export", export_cfg, &o, argc, argv);
	if (rc)
		goto out;
	if (!o.erp || !o.company || !o.file) {
		fprintf(stderr, "apsync-agent export: needs --erp, --company and --file\n");
		rc = 2;
		goto out;
	}
	doc = read_json_file(o.file, err, sizeof(err));
	type = cJSON_GetObjectItemCaseSensitive(doc, "type");
	if (doc && !cJSON_IsString(type)) {
		snprintf(err, sizeof(err), "the document has no \"type\" (invoice or payment)");
		rc = APS_ERR_INVAL;
		goto failed;
	}
	if (!doc) {
		rc = APS_ERR_INVAL;
		goto failed;
	}
	invoice = !strcmp(type->valuestring, "invoice");
	if (!invoice && strcmp(type->valuestring, "payment")) {
		snprintf(err, sizeof(err), "the document's type is \"%.32s\", not invoice or payment",
			 type->valuestring);
		rc = APS_ERR_INVAL;
		goto failed;
	}
	cli_settings(&o, &settings);
	rc = erp_open(o.erp, &settings, &ops, &e, err, sizeof(err));
	if (rc)
		goto failed;
	if (!ops->lookup || !(invoice ? ops->write_invoice : ops->write_payment)) {
		snprintf(err, sizeof(err), "the %s connector does not write %ss into the ERP",
			 ops->scheme, type->valuestring);
		rc = APS_ERR_CONFLICT;
		goto failed;
	}
	rc = ops->lookup(e, o.company, doc, &ref, err, sizeof(err));
	if (!rc) {
		print_ref("found", &ref);
		goto out;
	}
	if (rc != APS_ERR_NOTFOUND)
		goto failed;
	if (o.lookup_only) {
		printf("{\"result\":\"not_found\"}\n");
		rc = 3;
		goto out;
	}
	rc = (invoice ? ops->write_invoice : ops->write_payment)(e, o.company, doc, &ref, err,
								  sizeof(err));
	if (rc)
		goto failed;
	print_ref("written", &ref);
	goto out;
failed:
	fprintf(stderr, "apsync-agent export: %s (%s)\n", err, aps_errcode(rc));
	rc = rc == APS_ERR_BUSY ? 75 : 1;
out:
	if (e)
		ops->close(e);
	cJSON_Delete(doc);
	aps_cfg_free(export_cfg, &o);
	return rc;
}

/* `apsync-agent doctor`: the run options, checked one by one. */
static int cmd_doctor(int argc, char **argv)
{
	struct agent_opts o;
	const char *config = NULL;
	int rc, i;

	memset(&o, 0, sizeof(o));
	if (wants_help(argc, argv)) {
		printf("usage: apsync-agent doctor --state DIR --erp SCHEME:TARGET [--config FILE] "
		       "[options]\n\n"
		       "Checks, with the same options as `run`, what the SyncTool needs and explains "
		       "each\nfailure with a fix: the configuration, the state directory and "
		       "credential, the\nbroker (name, route or proxy, TLS and its certificate, the "
		       "broker, the credential)\nand the ERP (its companies, lists and writes). It "
		       "changes nothing.\nExit 0: no problem; 1: a problem; 2: the options themselves."
		       "\n\noptions:\n");
		aps_cfg_help(agent_run_cfg, stdout);
		return 0;
	}
	for (i = 0; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--config"))
			config = argv[i + 1];
	rc = parse("doctor", agent_run_cfg, &o, argc, argv);
	if (!rc && !o.state) {
		fprintf(stderr, "apsync-agent doctor: needs --state DIR (and --erp to check the ERP)\n");
		rc = 2;
	}
	if (!rc) {
		aps_log_init("agent", APS_LOG_ERROR);
		rc = agent_doctor(&o, config);
	}
	aps_cfg_free(agent_run_cfg, &o);
	return rc;
}

/* `apsync-agent service …`: the Service Control Manager runs `service run`,
 * which runs `run` with the same options. */
static const struct aps_service agent_service = {
	.name = "apsync-agent",
	.display = "apsync SyncTool agent",
	.description = "Keeps the AP application in step with this ERP (apsync SyncTool).",
	.program = "agent",
	.run = cmd_run,
};

int main(int argc, char **argv)
{
	aps_plat_init();
	aps_arena_hooks_install();
	aps_log_init("agent", APS_LOG_NOTICE);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("apsync-agent %s (protocol %d)\n", APSYNC_VERSION, APSYNC_PROTO_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 2, argv + 2);
	if (!strcmp(argv[1], "enroll"))
		return cmd_enroll(argc - 2, argv + 2);
	if (!strcmp(argv[1], "demo-erp"))
		return cmd_demo_erp(argc - 2, argv + 2);
	if (!strcmp(argv[1], "erp"))
		return cmd_erp(argc - 2, argv + 2);
	if (!strcmp(argv[1], "export"))
		return cmd_export(argc - 2, argv + 2);
	if (!strcmp(argv[1], "doctor"))
		return cmd_doctor(argc - 2, argv + 2);
	if (!strcmp(argv[1], "service"))
		return aps_service_command(&agent_service, argc - 2, argv + 2);
	fprintf(stderr, "apsync-agent: unknown command \"%s\"\n\n", argv[1]);
	usage(stderr);
	return 2;
}
