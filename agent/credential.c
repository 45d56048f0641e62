/* DIR/credential.json: what `enroll` obtained, read by `run`. Mode 0600. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "agent_internal.h"
#include "err.h"
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
	char path[4096], *text = NULL;
	struct stat st;
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
	if (!stat(path, &st) && (st.st_mode & 077)) {
		snprintf(err, errlen, "%s is readable by other users (mode %03o); run `chmod 600 %s`",
			 path, st.st_mode & 0777, path);
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
