/* DIR/credential.json: what `enroll` obtained, read by `run`. Mode 0600. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "agent_internal.h"
#include "err.h"
#include "plat.h"
#include "util.h"

#define CRED_FILE "credential.json"

int agent__parse_url(const char *url, char *host, size_t hostlen, int *port, char *err,
		     size_t errlen)
{
	const char *p, *end, *colon;
	int64_t v = 443;
	char num[8];
	size_t n;

	if (!strncmp(url, "ws://", 5) || !strncmp(url, "http://", 7)) {
		snprintf(err, errlen, "%s: the broker link is always TLS; use wss://", url);
		return APS_ERR_INVAL;
	}
	if (!strncmp(url, "wss://", 6))
		p = url + 6;
	else if (!strncmp(url, "https://", 8))
		p = url + 8;
	else {
		snprintf(err, errlen, "%s is not a wss:// URL (e.g. wss://broker.example.com:443)", url);
		return APS_ERR_INVAL;
	}
	end = p + strcspn(p, "/");
	if (*p == '[') {
		colon = memchr(p, ']', (size_t)(end - p));
		if (!colon)
			goto bad;
		n = (size_t)(colon - p - 1);
		if (n == 0 || n >= hostlen)
			goto bad;
		memcpy(host, p + 1, n);
		host[n] = '\0';
		colon = colon[1] == ':' ? colon + 1 : NULL;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		n = (size_t)((colon ? colon : end) - p);
		if (n == 0 || n >= hostlen)
			goto bad;
		memcpy(host, p, n);
		host[n] = '\0';
	}
	if (colon) {
		n = (size_t)(end - colon - 1);
		if (n == 0 || n >= sizeof(num))
			goto bad;
		memcpy(num, colon + 1, n);
		num[n] = '\0';
		if (aps_parse_i64(num, 1, 65535, &v))
			goto bad;
	}
	*port = (int)v;
	return APS_OK;
bad:
	snprintf(err, errlen, "%s is not a wss://HOST[:PORT] URL", url);
	return APS_ERR_INVAL;
}

static void get_str(const cJSON *o, const char *name, char *out, size_t outlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	snprintf(out, outlen, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

int agent_cred__load(const char *state_dir, struct agent_cred *c, char *err, size_t errlen)
{
	char path[4096], why[600], *text = NULL;
	cJSON *j = NULL;
	const cJSON *v;
	int rc;

	memset(c, 0, sizeof(*c));
	if (aps_path_join(path, sizeof(path), state_dir, CRED_FILE))
		return APS_ERR_RANGE;
	rc = aps_read_file(path, 65536, &text, NULL);
	if (rc == APS_ERR_NOTFOUND) {
		snprintf(err, errlen,
			 "%s does not exist: this SyncTool is not enrolled; run `apsync-agent "
			 "enroll --broker wss://HOST:PORT --code CODE --state %s` first",
			 path, state_dir);
		return rc;
	}
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", path, aps_strerror(rc));
		return rc;
	}
	if (aps_path_open_to_others(path, why, sizeof(why)) == 1) {
		snprintf(err, errlen, "%s is readable by other users: %s", path, why);
		rc = APS_ERR_FORBIDDEN;
		goto out;
	}
	j = cJSON_Parse(text);
	get_str(j, "broker", c->broker, sizeof(c->broker));
	get_str(j, "credential", c->credential, sizeof(c->credential));
	get_str(j, "synctool", c->synctool, sizeof(c->synctool));
	get_str(j, "tenant", c->tenant, sizeof(c->tenant));
	get_str(j, "ca", c->tls.ca, sizeof(c->tls.ca));
	get_str(j, "pin", c->tls.pin, sizeof(c->tls.pin));
	v = cJSON_GetObjectItemCaseSensitive(j, "agent_id");
	c->agent_id = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
	c->tls.insecure = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "insecure"));
	if (!j || !c->broker[0] || strncmp(c->credential, "apsa_", 5) ||
	    agent__parse_url(c->broker, c->host, sizeof(c->host), &c->port, err, errlen)) {
		snprintf(err, errlen, "%s is damaged; enroll again with a new code", path);
		rc = APS_ERR_INVAL;
		goto out;
	}
	rc = APS_OK;
out:
	cJSON_Delete(j);
	if (text) {
		aps_wipe(text, strlen(text));
		free(text);
	}
	return rc;
}

int agent_cred__save(const char *state_dir, const struct agent_cred *c, char *err, size_t errlen)
{
	char path[4096], *text;
	cJSON *j = cJSON_CreateObject();
	int rc;

	if (aps_path_join(path, sizeof(path), state_dir, CRED_FILE) || !j) {
		cJSON_Delete(j);
		return APS_ERR_RANGE;
	}
	cJSON_AddStringToObject(j, "broker", c->broker);
	cJSON_AddStringToObject(j, "synctool", c->synctool);
	cJSON_AddStringToObject(j, "tenant", c->tenant);
	cJSON_AddNumberToObject(j, "agent_id", (double)c->agent_id);
	cJSON_AddStringToObject(j, "credential", c->credential);
	if (c->tls.ca[0])
		cJSON_AddStringToObject(j, "ca", c->tls.ca);
	if (c->tls.pin[0])
		cJSON_AddStringToObject(j, "pin", c->tls.pin);
	cJSON_AddBoolToObject(j, "insecure", c->tls.insecure);
	text = cJSON_Print(j);
	cJSON_Delete(j);
	if (!text)
		return APS_ERR_NOMEM;
	rc = aps_write_file(path, text, strlen(text), 0600);
	aps_wipe(text, strlen(text));
	cJSON_free(text);
	if (rc)
		snprintf(err, errlen, "cannot write %s: %s", path, aps_strerror(rc));
	return rc;
}

/* A proxy's host part must be a name or an address, nothing that could end
 * up somewhere else in the CONNECT line. */
static int proxy_host_ok(const char *h, size_t n)
{
	size_t i;

	if (!n)
		return 0;
	for (i = 0; i < n; i++)
		if (!(isalnum((unsigned char)h[i]) || h[i] == '.' || h[i] == '-' || h[i] == '_' ||
		      h[i] == ':' || h[i] == '[' || h[i] == ']'))
			return 0;
	return 1;
}

int agent__parse_proxy(const char *spec, char *addr, size_t addrlen, unsigned *port, char *err,
		       size_t errlen)
{
	const char *p = spec, *at, *colon, *end;
	int64_t v;
	char num[8];
	size_t n;

	if (!strncmp(p, "http://", 7))
		p += 7;
	else if (strstr(p, "://")) {
		snprintf(err, errlen, "proxy \"%.100s\": only http:// proxies (HTTP CONNECT) are "
				      "supported",
			 spec);
		return APS_ERR_INVAL;
	}
	end = p + strcspn(p, "/");
	at = memchr(p, '@', (size_t)(end - p));
	colon = NULL;
	for (const char *q = at ? at + 1 : p; q < end; q++)
		if (*q == ':')
			colon = q;
	if (!colon || colon + 1 >= end || (size_t)(end - colon - 1) >= sizeof(num) ||
	    !proxy_host_ok(at ? at + 1 : p, (size_t)(colon - (at ? at + 1 : p)))) {
		snprintf(err, errlen, "proxy \"%.100s\" is not HOST:PORT or http://[USER:PASS@]HOST:PORT",
			 spec);
		return APS_ERR_INVAL;
	}
	memcpy(num, colon + 1, (size_t)(end - colon - 1));
	num[end - colon - 1] = '\0';
	if (aps_parse_i64(num, 1, 65535, &v)) {
		snprintf(err, errlen, "proxy \"%.100s\": the port must be 1..65535", spec);
		return APS_ERR_INVAL;
	}
	n = (size_t)(colon - p);
	if (n >= addrlen) {
		snprintf(err, errlen, "proxy \"%.100s\" is too long", spec);
		return APS_ERR_RANGE;
	}
	memcpy(addr, p, n); /* [user:pass@]host, as libwebsockets takes it */
	addr[n] = '\0';
	*port = (unsigned)v;
	return APS_OK;
}

const char *agent__proxy_spec(const char *configured, const char *host, int *bypassed)
{
	static const char *const vars[] = {"HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
					   "http_proxy", NULL};
	const char *spec = NULL, *np;
	int i;

	*bypassed = 0;
	if (configured && *configured)
		return configured; /* an explicit setting: NO_PROXY does not apply */
	for (i = 0; !spec && vars[i]; i++)
		if (getenv(vars[i]) && *getenv(vars[i]))
			spec = getenv(vars[i]);
	np = getenv("NO_PROXY") ? getenv("NO_PROXY") : getenv("no_proxy");
	if (spec && np && agent__no_proxy(np, host)) {
		*bypassed = 1;
		return NULL;
	}
	return spec;
}

int agent__no_proxy(const char *no_proxy, const char *host)
{
	const char *p = no_proxy;
	size_t hl = strlen(host), n;

	while (p && *p) {
		while (*p == ',' || *p == ' ')
			p++;
		n = strcspn(p, ", ");
		if (n == 1 && *p == '*')
			return 1;
		if (n && *p == '.') {
			p++;
			n--;
		}
		/* the host itself, or a name under that domain */
		if (n && hl >= n && !strncasecmp(host + hl - n, p, n) &&
		    (hl == n || host[hl - n - 1] == '.'))
			return 1;
		p += n;
	}
	return 0;
}
