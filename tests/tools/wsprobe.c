/*
 * wsprobe: a test tool that speaks raw apsync frames over a real TLS
 * WebSocket, to check how a real broker or agent treats bad input.
 *
 *   wsprobe client --url wss://127.0.0.1:PORT/agent --ca CERT
 *                  [--credential CRED] [--frame F]...
 *       connects as an agent; with --credential sends a valid HELLO and
 *       waits for WELCOME first; then sends each frame.
 *   wsprobe server --cert CERT --key KEY --portfile FILE [--frame F]...
 *       accepts one agent, waits for its HELLO, answers WELCOME, then sends
 *       each frame.
 *
 * A frame F is hex, or fill:PREFIXHEX:BYTE:LENGTH (a prefix padded with a
 * byte to LENGTH). Afterwards the tool waits up to 5 s for an ERROR frame and
 * the close, and prints one JSON line:
 *   {"welcome":true,"error":"frame_too_big","message":"…","close":4001}
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "apsync_proto.h"
#include "codec.h"
#include "err.h"
#include "util.h"

#define MAX_FRAMES 16

static struct {
	int server;
	const char *credential;
	uint8_t *frames[MAX_FRAMES];
	size_t lens[MAX_FRAMES];
	int nframes, sent, hello_done, welcome, done;
	char error[64], message[256];
	int close_code;
	struct aps_codec codec;
	struct aps_buf rx;
} P;

static uint8_t *parse_frame(const char *spec, size_t *len)
{
	const char *hex = spec;
	size_t n, total = 0, i;
	unsigned int v, fill = 0;
	uint8_t *b;

	if (!strncmp(spec, "fill:", 5)) {
		hex = spec + 5;
		n = strcspn(hex, ":");
		if (sscanf(hex + n, ":%u:%zu", &fill, &total) != 2)
			return NULL;
	} else {
		n = strlen(hex);
	}
	if (total < n / 2)
		total = n / 2;
	b = malloc(total ? total : 1);
	for (i = 0; i < n / 2; i++) {
		sscanf(hex + 2 * i, "%2x", &v);
		b[i] = (uint8_t)v;
	}
	memset(b + n / 2, (int)fill, total - n / 2);
	*len = total;
	return b;
}

static void send_bytes(struct lws *wsi, const uint8_t *p, size_t len)
{
	uint8_t *buf = malloc(LWS_PRE + len);

	memcpy(buf + LWS_PRE, p, len);
	lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_BINARY);
	free(buf);
}

static void send_json(struct lws *wsi, int type, const char *json)
{
	struct aps_buf out = {0};

	aps_frame_encode(&P.codec, &out, (uint8_t)type, 0, 0, json, strlen(json), 0);
	send_bytes(wsi, out.data, out.len);
	aps_buf_free(&out);
}

static void on_frame(struct lws *wsi)
{
	struct aps_frame f;
	const cJSON *v;

	if (aps_frame_decode(&P.codec, P.rx.data, P.rx.len, &f, NULL, 0)) {
		P.rx.len = 0;
		return;
	}
	P.rx.len = 0;
	if (f.type == APSYNC_MSG_ERROR) {
		v = cJSON_GetObjectItem(f.body, "code");
		snprintf(P.error, sizeof(P.error), "%s", cJSON_IsString(v) ? v->valuestring : "?");
		v = cJSON_GetObjectItem(f.body, "message");
		snprintf(P.message, sizeof(P.message), "%s", cJSON_IsString(v) ? v->valuestring : "");
	} else if (!P.server && f.type == APSYNC_MSG_WELCOME) {
		P.welcome = P.hello_done = 1;
		lws_callback_on_writable(wsi);
	} else if (P.server && f.type == APSYNC_MSG_HELLO && !P.hello_done) {
		P.hello_done = 1;
		lws_callback_on_writable(wsi);
	}
	aps_frame_clear(&f);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	char hello[512];

	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (!P.credential)
			P.hello_done = 1;
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_ESTABLISHED:
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!P.server && P.credential && !P.hello_done && !P.sent) {
			snprintf(hello, sizeof(hello),
				 "{\"proto\":1,\"credential\":\"%s\",\"agent\":{\"version\":\"probe\"},"
				 "\"erp\":{\"product\":\"probe\"},\"entities\":[],\"rx\":0}",
				 P.credential);
			send_json(wsi, APSYNC_MSG_HELLO, hello);
			P.sent = -1; /* HELLO out, waiting for WELCOME */
			break;
		}
		if (P.server && P.hello_done && !P.welcome) {
			send_json(wsi, APSYNC_MSG_WELCOME,
				  "{\"agent\":{\"id\":1,\"name\":\"probe\"},\"tenant\":\"probe\","
				  "\"rx\":0,\"heartbeat\":20,\"window\":{\"frames\":32,"
				  "\"bytes\":8388608},\"entities\":[]}");
			P.welcome = 1;
			lws_callback_on_writable(wsi);
			break;
		}
		if (!P.hello_done || (P.server && !P.welcome))
			break;
		if (P.sent < 0)
			P.sent = 0;
		if (P.sent < P.nframes) {
			send_bytes(wsi, P.frames[P.sent], P.lens[P.sent]);
			P.sent++;
			lws_callback_on_writable(wsi);
		}
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
	case LWS_CALLBACK_RECEIVE:
		aps_buf_append(&P.rx, in, len);
		if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
			on_frame(wsi);
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2)
			P.close_code = ((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1];
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		snprintf(P.message, sizeof(P.message), "connection error: %s",
			 in ? (const char *)in : "?");
		P.done = 1;
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_CLOSED:
		P.done = 1;
		break;
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
		return 0;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{APSYNC_WS_SUBPROTOCOL, callback, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct lws_client_connect_info ci;
	struct lws_context *ctx;
	const char *url = NULL, *ca = NULL, *cert = NULL, *key = NULL, *portfile = NULL;
	char host[256], portbuf[16];
	int port = 0, i;
	int64_t deadline;

	if (argc < 2)
		return 2;
	P.server = !strcmp(argv[1], "server");
	for (i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--url"))
			url = argv[i + 1];
		else if (!strcmp(argv[i], "--ca"))
			ca = argv[i + 1];
		else if (!strcmp(argv[i], "--cert"))
			cert = argv[i + 1];
		else if (!strcmp(argv[i], "--key"))
			key = argv[i + 1];
		else if (!strcmp(argv[i], "--portfile"))
			portfile = argv[i + 1];
		else if (!strcmp(argv[i], "--credential"))
			P.credential = argv[i + 1];
		else if (!strcmp(argv[i], "--frame") && P.nframes < MAX_FRAMES)
			P.frames[P.nframes] = parse_frame(argv[i + 1], &P.lens[P.nframes]), P.nframes++;
	}
	aps_codec_init(&P.codec, NULL);
	P.codec.lim.max_frame = 64u << 20; /* the probe accepts anything to report it */
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_DISABLE_IPV6;
	if (P.server) {
		info.port = 0;
		info.iface = "127.0.0.1";
		info.ssl_cert_filepath = cert;
		info.ssl_private_key_filepath = key;
	} else {
		info.port = CONTEXT_PORT_NO_LISTEN;
		info.client_ssl_ca_filepath = ca;
	}
	ctx = lws_create_context(&info);
	if (!ctx)
		return 1;
	if (P.server) {
		snprintf(portbuf, sizeof(portbuf), "%d\n",
			 lws_get_vhost_listen_port(lws_get_vhost_by_name(ctx, "default")));
		aps_write_file(portfile, portbuf, strlen(portbuf), 0644);
		deadline = aps_mono_ms() + 30000;
	} else {
		if (!url || sscanf(url, "wss://%255[^:]:%d", host, &port) != 2)
			return 2;
		memset(&ci, 0, sizeof(ci));
		ci.context = ctx;
		ci.address = host;
		ci.port = port;
		ci.path = APSYNC_WS_PATH;
		ci.host = host;
		ci.origin = host;
		ci.ssl_connection = LCCSCF_USE_SSL;
		ci.protocol = APSYNC_WS_SUBPROTOCOL;
		if (!lws_client_connect_via_info(&ci))
			return 1;
		deadline = aps_mono_ms() + 15000;
	}
	while (!P.done && aps_mono_ms() < deadline)
		lws_service(ctx, 0);
	lws_context_destroy(ctx);
	printf("{\"welcome\":%s,\"sent\":%d,\"error\":\"%s\",\"message\":\"%s\",\"close\":%d}\n",
	       P.welcome ? "true" : "false", P.sent < 0 ? 0 : P.sent, P.error, P.message,
	       P.close_code);
	return 0;
}
