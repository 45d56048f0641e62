/* apsync-broker: command-line entry. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apsync_proto.h"
#include "broker_internal.h"
#include "arena.h"
#include "err.h"
#include "log.h"

#define OPT(field) offsetof(struct broker_opts, field)

const struct aps_cfg_entry broker_serve_cfg[] = {
	{"listen", APS_CFG_STR, OPT(listen), 0, 300, "127.0.0.1:8443", 0,
	 "address and port to listen on (port 0: any free port, written to DATA/broker.port)"},
	{"data", APS_CFG_STR, OPT(data), 0, 0, "./broker-data", 0,
	 "data directory: store (broker.db) and TLS material"},
	{"tls-cert", APS_CFG_STR, OPT(tls_cert), 0, 0, NULL, 0,
	 "TLS certificate chain, PEM (default: a self-signed one made in DATA/tls)"},
	{"tls-key", APS_CFG_STR, OPT(tls_key), 0, 0, NULL, 0, "TLS private key, PEM"},
	{"web-root", APS_CFG_STR, OPT(web_root), 0, 0, APSYNC_WEB_ROOT, 0,
	 "directory of the web page"},
	{"log-level", APS_CFG_STR, OPT(log_level), 0, 16, "notice", 1,
	 "error, warn, notice, info or debug"},
	{"heartbeat", APS_CFG_INT, OPT(heartbeat), 1, 3600, "20", 0,
	 "seconds between agent heartbeats"},
	{"missed-beats", APS_CFG_INT, OPT(missed_beats), 2, 100, "3", 0,
	 "an agent silent for this many heartbeats is offline"},
	{"window-frames", APS_CFG_INT, OPT(window_frames), 1, 4096, "32", 0,
	 "unacknowledged frames an agent may have in flight"},
	{"window-bytes", APS_CFG_INT, OPT(window_bytes), 65536, 1073741824, "8388608", 0,
	 "unacknowledged bytes an agent may have in flight"},
	{"max-request", APS_CFG_INT, OPT(max_request), 1024, 268435456, "8388608", 0,
	 "largest REST request body, bytes"},
	{"ingest-queue", APS_CFG_INT, OPT(ingest_queue), 1048576, 4294967296, "134217728", 0,
	 "bytes of received messages waiting for the store before reading pauses"},
	{"stale-after", APS_CFG_INT, OPT(stale_after), 1, 86400, "120", 0,
	 "seconds after which a sync that has not started says why"},
	{"job-timeout", APS_CFG_INT, OPT(job_timeout), 10, 604800, "900", 0,
	 "seconds a SyncTool may be offline during its sync before the sync times out"},
	{"export-retry", APS_CFG_INT, OPT(export_retry), 1, 86400, "60", 0,
	 "s: first wait before a document that failed for a passing cause (ERP busy, "
	 "unreachable) goes out again; it doubles each time, up to an hour"},
	APS_CFG_END,
};

static void usage(FILE *f)
{
	fprintf(f, "apsync-broker %s: holds SyncTool connections, stores what they sync, serves the "
		   "REST API and web page.\n\n"
		   "usage:\n"
		   "  apsync-broker serve [--config FILE] [options]   run the broker\n"
		   "  apsync-broker admin --data DIR COMMAND ...      manage tenants, users, "
		   "SyncTools\n"
		   "  apsync-broker --version\n\n"
		   "`apsync-broker serve --help` and `apsync-broker admin --help` list the "
		   "options.\n",
		APSYNC_VERSION);
}

static int serve_main(int argc, char **argv)
{
	struct broker_opts opts;
	struct aps_log_reload reload = {.table = broker_serve_cfg, .opts_size = sizeof(opts)};
	char err[512];
	int argi = 0, level, rc;

	memset(&opts, 0, sizeof(opts));
	if (argc > 0 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
		printf("usage: apsync-broker serve [--config FILE] [options]\n\n"
		       "A config file holds \"name = value\" lines with the option names below.\n\n"
		       "options:\n");
		aps_cfg_help(broker_serve_cfg, stdout);
		return 0;
	}
	if (aps_cfg_defaults(broker_serve_cfg, &opts) ||
	    aps_cfg_parse_args(broker_serve_cfg, &opts, argc, argv, &argi, err, sizeof(err))) {
		fprintf(stderr, "apsync-broker serve: %s\n", err);
		aps_cfg_free(broker_serve_cfg, &opts);
		return 2;
	}
	if (argi < argc) {
		fprintf(stderr, "apsync-broker serve: unexpected argument \"%s\" (see --help)\n",
			argv[argi]);
		aps_cfg_free(broker_serve_cfg, &opts);
		return 2;
	}
	level = aps_log_level_parse(opts.log_level);
	if (level < 0) {
		fprintf(stderr, "apsync-broker serve: --log-level %s is not one of error, warn, "
				"notice, info, debug\n",
			opts.log_level);
		aps_cfg_free(broker_serve_cfg, &opts);
		return 2;
	}
	aps_log_init("broker", level);
	/* SIGHUP reads the config's log level again, unless the command line set it */
	reload.live = &opts;
	reload.config_path = aps_cfg_arg(argc, argv, "config");
	reload.argc = argc;
	reload.argv = argv;
	aps_log_reload_setup(&reload);
	rc = broker_serve(&opts);
	aps_cfg_free(broker_serve_cfg, &opts);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("apsync-broker %s (protocol %d)\n", APSYNC_VERSION, APSYNC_PROTO_VERSION);
		return 0;
	}
	aps_arena_hooks_install();
	aps_log_init("broker", APS_LOG_NOTICE);
	if (!strcmp(argv[1], "serve"))
		return serve_main(argc - 2, argv + 2);
	if (!strcmp(argv[1], "admin"))
		return admin_main(argc - 2, argv + 2);
	fprintf(stderr, "apsync-broker: unknown command \"%s\"\n\n", argv[1]);
	usage(stderr);
	return 2;
}
