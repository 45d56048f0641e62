/* `apsync-broker serve`: one TLS port for agents (wss:///agent), the REST API
 * (/api/v1) and the web page (/), on the libwebsockets event loop. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apsync_proto.h"
#include "broker_internal.h"
#include "err.h"
#include "log.h"
#include "service.h"
#include "util.h"

static struct broker *running;

static void on_signal(int sig)
{
	(void)sig;
	if (running) {
		running->stop = 1;
		lws_cancel_service(running->ctx);
	}
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
	struct broker *b = lws_container_of(sul, struct broker, tick);

	cJSON *agents = NULL, *a;

	agents__tick(b);
	/* Every few seconds: syncs waiting too long say why; syncs whose
	 * SyncTool is gone too long time out (and the SyncTool is told). */
	if (aps_mono_ms() - b->last_check >= 5000) {
		b->last_check = aps_mono_ms();
		if (store_jobs_check(b->store, aps_now_ms(), b->opts->stale_after * 1000,
				     b->opts->job_timeout * 1000, &agents) == APS_OK) {
			cJSON_ArrayForEach(a, agents)
				agents__kick(b, (int64_t)a->valuedouble);
		}
		cJSON_Delete(agents);
		agents = NULL;
		/* Failed exports whose retry time came go out again. */
		if (store_docs_due(b->store, aps_now_ms(), &agents) == APS_OK)
			cJSON_ArrayForEach(a, agents)
				agents__kick(b, (int64_t)a->valuedouble);
		cJSON_Delete(agents);
	}
	lws_sul_schedule(b->ctx, 0, &b->tick, on_tick, LWS_US_PER_SEC);
}

/* Wakes from other threads (the store writer) arrive here. */
static int core_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			 size_t len)
{
	struct broker *b;

	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
		b = lws_context_user(lws_get_context(wsi));
		if (b && b->ingest)
			ingest__drain(b->ingest);
	}
	return 0;
}

static const struct lws_protocols core_protocol = {
	.name = "apsync-core",
	.callback = core_callback,
};

/* Sent with every response: the page runs only its own files, never inside
 * another site's frame, and browsers keep to HTTPS. */
static const struct lws_protocol_vhost_options security_headers[] = {
	{&security_headers[1], NULL, "content-security-policy:",
	 "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
	 "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
	 "frame-ancestors 'none'"},
	{&security_headers[2], NULL, "x-content-type-options:", "nosniff"},
	{&security_headers[3], NULL, "x-frame-options:", "DENY"},
	{&security_headers[4], NULL, "referrer-policy:", "no-referrer"},
	{NULL, NULL, "strict-transport-security:", "max-age=31536000"},
};

static int parse_listen(const char *listen, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(listen, ':');
	int64_t p;
	size_t n;

	if (!colon || colon == listen)
		return APS_ERR_INVAL;
	n = (size_t)(colon - listen);
	if (listen[0] == '[' && colon[-1] == ']') {
		listen++;
		n -= 2;
	}
	if (n >= hostlen || aps_parse_i64(colon + 1, 0, 65535, &p))
		return APS_ERR_INVAL;
	memcpy(host, listen, n);
	host[n] = '\0';
	*port = (int)p;
	return APS_OK;
}

int broker_serve(struct broker_opts *opts)
{
	struct lws_protocols prot[4];
	struct lws_http_mount api_mount, web_mount;
	struct lws_context_creation_info info;
	struct broker b;
	char err[512], fp[100], portfile[4096], portbuf[16], fmt_host[300];
	struct stat st;
	int rc = 1, r;

	memset(&b, 0, sizeof(b));
	b.opts = opts;
	aps_codec_init(&b.codec, NULL);
	if (parse_listen(opts->listen, b.host, sizeof(b.host), &b.port)) {
		log_err("--listen %s is not HOST:PORT (e.g. 127.0.0.1:8443 or 0.0.0.0:443)",
			opts->listen);
		goto out;
	}
	if (aps_mkdir_p(opts->data, 0700)) {
		log_err("cannot create the data directory %s: %s", opts->data, strerror(errno));
		goto out;
	}
	if (opts->tls_cert || opts->tls_key) {
		if (!opts->tls_cert || !opts->tls_key) {
			log_err("give both --tls-cert and --tls-key, or neither for a self-signed "
				"certificate");
			goto out;
		}
		snprintf(b.cert_path, sizeof(b.cert_path), "%s", opts->tls_cert);
		snprintf(b.key_path, sizeof(b.key_path), "%s", opts->tls_key);
	} else if (tls__ensure_self_signed(opts->data, b.cert_path, sizeof(b.cert_path), b.key_path,
					   sizeof(b.key_path), err, sizeof(err))) {
		log_err("%s", err);
		goto out;
	}
	if (store_open(opts->data, &b.store, err, sizeof(err))) {
		log_err("%s", err);
		goto out;
	}
	store_agents_all_offline(b.store);
	if (stat(opts->web_root, &st) || !S_ISDIR(st.st_mode))
		log_warn("web page directory %s is missing; the page will not be served",
			 opts->web_root);

	memset(prot, 0, sizeof(prot));
	prot[0] = http_protocol;
	prot[1] = agents_protocol;
	prot[2] = core_protocol;

	memset(&web_mount, 0, sizeof(web_mount));
	web_mount.mountpoint = "/";
	web_mount.mountpoint_len = 1;
	web_mount.origin = opts->web_root;
	web_mount.def = "index.html";
	web_mount.origin_protocol = LWSMPRO_FILE;
	memset(&api_mount, 0, sizeof(api_mount));
	api_mount.mount_next = &web_mount;
	api_mount.mountpoint = "/api";
	api_mount.mountpoint_len = 4;
	api_mount.protocol = http_protocol.name;
	api_mount.origin_protocol = LWSMPRO_CALLBACK;

	memset(&info, 0, sizeof(info));
	info.headers = security_headers;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	/* With IPv6 on, libwebsockets binds the IPv6 wildcard whatever the
	 * interface: an IPv4 listen address must turn IPv6 off to be honoured. */
	if (!strchr(b.host, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.port = b.port;
	info.iface = b.host[0] && strcmp(b.host, "0.0.0.0") && strcmp(b.host, "*") ? b.host : NULL;
	info.protocols = prot;
	info.mounts = &api_mount;
	info.ssl_cert_filepath = b.cert_path;
	info.ssl_private_key_filepath = b.key_path;
	info.alpn = "http/1.1";
	info.user = &b;
	info.vhost_name = "apsync";
	info.timeout_secs = 30;
	info.pt_serv_buf_size = 65536;
	aps_log_route_lws();
	b.ctx = lws_create_context(&info);
	if (!b.ctx) {
		log_err("cannot listen on %s: the port may be in use, or the TLS certificate %s "
			"and key %s may be unreadable",
			opts->listen, b.cert_path, b.key_path);
		goto out;
	}
	b.vh = lws_get_vhost_by_name(b.ctx, "apsync");
	if (b.vh && b.port == 0)
		b.port = lws_get_vhost_listen_port(b.vh);
	if (ingest__start(&b, &b.ingest, err, sizeof(err))) {
		log_err("%s", err);
		goto out;
	}
	/* Tests and scripts that asked for port 0 read the port from here. */
	snprintf(portbuf, sizeof(portbuf), "%d\n", b.port);
	if (!aps_path_join(portfile, sizeof(portfile), opts->data, "broker.port"))
		aps_write_file(portfile, portbuf, strlen(portbuf), 0644);

	running = &b;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	lws_sul_schedule(b.ctx, 0, &b.tick, on_tick, LWS_US_PER_SEC);
	snprintf(fmt_host, sizeof(fmt_host), strchr(b.host, ':') ? "[%s]" : "%s",
		 info.iface ? b.host : "0.0.0.0");
	if (tls__fingerprint(b.cert_path, fp, sizeof(fp)))
		snprintf(fp, sizeof(fp), "?");
	log_notice("apsync-broker %s listening on https://%s:%d (agents: wss://%s:%d%s)",
		   APSYNC_VERSION, fmt_host, b.port, fmt_host, b.port, APSYNC_WS_PATH);
	log_notice("TLS certificate %s, SHA-256 fingerprint %s", b.cert_path, fp);
	aps_service_ready("listening on https://%s:%d", fmt_host, b.port);
	aps_service_watchdog_start(b.ctx);

	while (!b.stop) {
		r = lws_service(b.ctx, 0);
		if (r < 0)
			break;
		aps_log_reload_poll();
	}
	log_notice("shutting down");
	rc = 0;
out:
	running = NULL;
	aps_service_stopping();
	/* The writer first: it finishes what is queued and needs the context
	 * to wake the loop; then the context, whose closing sessions mark
	 * their agents offline in the store. */
	ingest__stop(b.ingest);
	b.ingest = NULL;
	if (b.ctx)
		lws_sul_cancel(&b.tick);
	lws_context_destroy(b.ctx);
	store_close(b.store);
	free(b.agents);
	aps_codec_free(&b.codec);
	return rc;
}
