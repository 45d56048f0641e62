/* `apsync-broker admin`: tenants, users and SyncTools, straight on the store
 * (safe while the broker runs: SQLite WAL serialises the writers). Secrets
 * (API tokens, enrollment codes) go to stdout alone, so scripts can capture
 * them; everything else goes to stderr. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "broker_internal.h"
#include "err.h"
#include "log.h"
#include "util.h"

struct admin_opts {
	char *data;
	char *tenant;
	char *email;
	char *role;
	char *name;
	char *password_file;
	int64_t ttl;
};

#define OPT(field) offsetof(struct admin_opts, field)

static const struct aps_cfg_entry admin_cfg[] = {
	{"data", APS_CFG_STR, OPT(data), 0, 0, "./broker-data", 0, "the broker's data directory"},
	{"tenant", APS_CFG_STR, OPT(tenant), 0, 128, NULL, 0, "tenant name"},
	{"email", APS_CFG_STR, OPT(email), 0, 254, NULL, 0, "user e-mail address"},
	{"role", APS_CFG_STR, OPT(role), 0, 64, NULL, 0, "user role (see below)"},
	{"name", APS_CFG_STR, OPT(name), 0, 128, NULL, 0, "SyncTool name"},
	{"password-file", APS_CFG_STR, OPT(password_file), 0, 4096, NULL, 0,
	 "a file whose first line is the user's password (for web sign-in)"},
	{"ttl", APS_CFG_INT, OPT(ttl), 1, 24 * 30, "24", 0,
	 "hours an enrollment code stays valid"},
	APS_CFG_END,
};

static void usage(FILE *f)
{
	int i;

	fprintf(f, "usage: apsync-broker admin --data DIR COMMAND [options]\n\n"
		   "commands:\n"
		   "  tenant create NAME\n"
		   "  user create --tenant NAME --email E --role ROLE [--password-file F]\n"
		   "                                                    prints an API token\n"
		   "  user password --tenant NAME --email E --password-file F\n"
		   "                                                    sets the web sign-in "
		   "password\n"
		   "  synctool code --tenant NAME --name SYNCTOOL [--ttl HOURS]\n"
		   "                                                    prints a one-time "
		   "enrollment code\n"
		   "  synctool revoke --tenant NAME --name SYNCTOOL\n\n"
		   "roles:");
	for (i = 0; broker_roles[i]; i++)
		fprintf(f, " %s", broker_roles[i]);
	fprintf(f, "\n(the first five may run syncs)\n\noptions:\n");
	aps_cfg_help(admin_cfg, f);
}

static int need(const char *value, const char *option)
{
	if (value && *value)
		return 1;
	fprintf(stderr, "apsync-broker admin: this command needs --%s\n", option);
	return 0;
}

static int find_tenant(struct store *s, const char *name, int64_t *id)
{
	int rc = store_tenant_find(s, name, id);

	if (rc == APS_ERR_NOTFOUND)
		fprintf(stderr, "apsync-broker admin: no tenant \"%s\" (create it with `tenant "
				"create %s`)\n",
			name, name);
	else if (rc)
		fprintf(stderr, "apsync-broker admin: the store failed: %s\n", aps_strerror(rc));
	return rc;
}

static int cmd_tenant_create(struct store *s, const char *name)
{
	int64_t id;
	int rc;

	if (!name[0] || strlen(name) > 128) {
		fprintf(stderr, "apsync-broker admin: a tenant name is 1 to 128 characters\n");
		return 2;
	}
	rc = store_tenant_create(s, name, &id);
	if (rc == APS_ERR_EXISTS) {
		fprintf(stderr, "apsync-broker admin: tenant \"%s\" already exists\n", name);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "apsync-broker admin: cannot create tenant: %s\n", aps_strerror(rc));
		return 1;
	}
	fprintf(stderr, "tenant \"%s\" created (id %lld)\n", name, (long long)id);
	return 0;
}

/* Reads the password file's first line and stores its hash for the user. */
static int set_password(struct store *s, int64_t user_id, const char *file)
{
	char *text = NULL, hash[AUTH_HASH_LEN], why[128];
	size_t len;
	int rc;

	rc = aps_read_file(file, AUTH_PASSWORD_MAX + 2, &text, &len);
	if (rc) {
		fprintf(stderr, "apsync-broker admin: cannot read %s: %s\n", file, aps_strerror(rc));
		return 1;
	}
	text[strcspn(text, "\r\n")] = '\0';
	if (!auth__password_ok(text, why, sizeof(why))) {
		fprintf(stderr, "apsync-broker admin: %s: %s\n", file, why);
		rc = 2;
		goto out;
	}
	rc = auth__password_hash(text, hash);
	if (!rc)
		rc = store_password_set(s, user_id, hash, aps_now_ms());
	if (rc) {
		fprintf(stderr, "apsync-broker admin: cannot set the password: %s\n",
			aps_strerror(rc));
		rc = 1;
	}
out:
	aps_wipe(text, len);
	free(text);
	return rc;
}

static int cmd_user_password(struct store *s, struct admin_opts *o)
{
	int64_t tenant_id, user_id;
	int rc;

	if (!need(o->tenant, "tenant") || !need(o->email, "email") ||
	    !need(o->password_file, "password-file"))
		return 2;
	if (find_tenant(s, o->tenant, &tenant_id))
		return 1;
	rc = store_user_find(s, tenant_id, o->email, &user_id);
	if (rc) {
		fprintf(stderr, "apsync-broker admin: no user %s in tenant \"%s\"\n", o->email,
			o->tenant);
		return 1;
	}
	rc = set_password(s, user_id, o->password_file);
	if (!rc)
		fprintf(stderr, "password of %s in tenant \"%s\" set; their sessions ended\n",
			o->email, o->tenant);
	return rc;
}

static int cmd_user_create(struct store *s, struct admin_opts *o)
{
	char secret[AUTH_SECRET_LEN];
	uint8_t hash[32];
	int64_t tenant_id, user_id;
	int rc;

	if (!need(o->tenant, "tenant") || !need(o->email, "email") || !need(o->role, "role"))
		return 2;
	if (!strchr(o->email, '@')) {
		fprintf(stderr, "apsync-broker admin: \"%s\" is not an e-mail address\n", o->email);
		return 2;
	}
	if (!auth__role_valid(o->role)) {
		fprintf(stderr, "apsync-broker admin: unknown role \"%s\" (see --help)\n", o->role);
		return 2;
	}
	if (find_tenant(s, o->tenant, &tenant_id))
		return 1;
	rc = auth__secret_new(secret, hash);
	if (!rc)
		rc = store_user_token_add(s, tenant_id, o->email, o->role, hash, &user_id);
	if (rc) {
		fprintf(stderr, "apsync-broker admin: cannot create the user: %s\n", aps_strerror(rc));
		return 1;
	}
	if (o->password_file && set_password(s, user_id, o->password_file)) {
		aps_wipe(secret, sizeof(secret));
		return 1;
	}
	fprintf(stderr, "user %s (%s) in tenant \"%s\"; API token:\n", o->email, o->role,
		o->tenant);
	printf("apt_%s\n", secret);
	aps_wipe(secret, sizeof(secret));
	return 0;
}

static int cmd_synctool_code(struct store *s, struct admin_opts *o)
{
	char code[20], when[APS_TIME_LEN];
	uint8_t hash[32];
	int64_t tenant_id, expires;
	int rc;

	if (!need(o->tenant, "tenant") || !need(o->name, "name"))
		return 2;
	if (strlen(o->name) > 128) {
		fprintf(stderr, "apsync-broker admin: a SyncTool name is 1 to 128 characters\n");
		return 2;
	}
	if (find_tenant(s, o->tenant, &tenant_id))
		return 1;
	expires = aps_now_ms() + o->ttl * 3600 * 1000;
	rc = auth__code_new(code, hash);
	if (!rc)
		rc = store_code_create(s, tenant_id, o->name, hash, expires);
	if (rc) {
		fprintf(stderr, "apsync-broker admin: cannot make a code: %s\n", aps_strerror(rc));
		return 1;
	}
	fprintf(stderr, "one-time enrollment code for SyncTool \"%s\" in tenant \"%s\", valid until "
			"%s:\n",
		o->name, o->tenant, aps_time_iso(expires, when));
	printf("%s\n", code);
	return 0;
}

static int cmd_synctool_revoke(struct store *s, struct admin_opts *o)
{
	int64_t tenant_id, agent_id;
	int rc;

	if (!need(o->tenant, "tenant") || !need(o->name, "name"))
		return 2;
	if (find_tenant(s, o->tenant, &tenant_id))
		return 1;
	rc = store_agent_revoke(s, tenant_id, o->name, "revoked by an administrator", aps_now_ms(),
				&agent_id);
	if (rc == APS_ERR_NOTFOUND) {
		fprintf(stderr, "apsync-broker admin: no enrolled SyncTool \"%s\" in tenant \"%s\"\n",
			o->name, o->tenant);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "apsync-broker admin: cannot revoke: %s\n", aps_strerror(rc));
		return 1;
	}
	fprintf(stderr, "SyncTool \"%s\" (agent %lld) revoked; a running broker drops it within a "
			"heartbeat\n",
		o->name, (long long)agent_id);
	return 0;
}

int admin_main(int argc, char **argv)
{
	struct admin_opts o;
	struct store *s = NULL;
	char err[512];
	const char *cmd, *sub;
	int argi = 0, rc = 2, i;
	char *pos[3] = {0};
	int npos = 0;

	memset(&o, 0, sizeof(o));
	for (i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
	if (aps_cfg_defaults(admin_cfg, &o))
		goto out;
	/* Options and the positional words may come in any order. */
	while (argi < argc) {
		if (aps_cfg_parse_args(admin_cfg, &o, argc, argv, &argi, err, sizeof(err))) {
			fprintf(stderr, "apsync-broker admin: %s\n", err);
			goto out;
		}
		if (argi < argc) {
			if (npos == 3) {
				fprintf(stderr, "apsync-broker admin: too many arguments\n");
				goto out;
			}
			pos[npos++] = argv[argi++];
		}
	}
	if (npos < 2) {
		usage(stderr);
		goto out;
	}
	cmd = pos[0];
	sub = pos[1];
	if (aps_mkdir_p(o.data, 0700) || store_open(o.data, &s, err, sizeof(err))) {
		if (aps_mkdir_p(o.data, 0700))
			snprintf(err, sizeof(err), "cannot create the data directory %s", o.data);
		fprintf(stderr, "apsync-broker admin: %s\n", err);
		rc = 1;
		goto out;
	}
	if (!strcmp(cmd, "tenant") && !strcmp(sub, "create") && npos == 3)
		rc = cmd_tenant_create(s, pos[2]);
	else if (!strcmp(cmd, "user") && !strcmp(sub, "create") && npos == 2)
		rc = cmd_user_create(s, &o);
	else if (!strcmp(cmd, "user") && !strcmp(sub, "password") && npos == 2)
		rc = cmd_user_password(s, &o);
	else if (!strcmp(cmd, "synctool") && !strcmp(sub, "code") && npos == 2)
		rc = cmd_synctool_code(s, &o);
	else if (!strcmp(cmd, "synctool") && !strcmp(sub, "revoke") && npos == 2)
		rc = cmd_synctool_revoke(s, &o);
	else {
		fprintf(stderr, "apsync-broker admin: unknown command \"%s %s\"\n\n", cmd, sub);
		usage(stderr);
	}
out:
	store_close(s);
	aps_cfg_free(admin_cfg, &o);
	return rc;
}
