#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "util.h"

#define FIELD(opts, e, T) ((T *)((char *)(opts) + (e)->offset))

static const struct aps_cfg_entry *find(const struct aps_cfg_entry *t, const char *name,
					size_t len)
{
	for (; t->name; t++)
		if (strlen(t->name) == len && !strncmp(t->name, name, len))
			return t;
	return NULL;
}

static int set_entry(const struct aps_cfg_entry *e, void *opts, const char *value, char *err,
		     size_t errlen)
{
	size_t maxlen = e->max ? (size_t)e->max : 4096;
	int64_t v;
	char *s;
	int rc;

	switch (e->type) {
	case APS_CFG_STR:
		if (strlen(value) > maxlen) {
			snprintf(err, errlen, "option %s: value longer than %zu characters",
				 e->name, maxlen);
			return APS_ERR_RANGE;
		}
		s = strdup(value);
		if (!s)
			return APS_ERR_NOMEM;
		free(*FIELD(opts, e, char *));
		*FIELD(opts, e, char *) = s;
		return APS_OK;
	case APS_CFG_INT:
		rc = aps_parse_i64(value, e->min, e->max, &v);
		if (rc) {
			snprintf(err, errlen, "option %s: \"%s\" is not a whole number from %lld to %lld",
				 e->name, value, (long long)e->min, (long long)e->max);
			return rc;
		}
		*FIELD(opts, e, int64_t) = v;
		return APS_OK;
	case APS_CFG_BOOL:
		if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes") ||
		    !strcmp(value, "on"))
			*FIELD(opts, e, int) = 1;
		else if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") ||
			 !strcmp(value, "off"))
			*FIELD(opts, e, int) = 0;
		else {
			snprintf(err, errlen, "option %s: \"%s\" is not true or false", e->name,
				 value);
			return APS_ERR_INVAL;
		}
		return APS_OK;
	}
	return APS_ERR_INTERNAL;
}

int aps_cfg_defaults(const struct aps_cfg_entry *t, void *opts)
{
	char err[256];
	int rc;

	for (; t->name; t++) {
		if (!t->def)
			continue;
		rc = set_entry(t, opts, t->def, err, sizeof(err));
		if (rc)
			return rc;
	}
	return APS_OK;
}

int aps_cfg_set(const struct aps_cfg_entry *t, void *opts, const char *name, const char *value,
		char *err, size_t errlen)
{
	const struct aps_cfg_entry *e = find(t, name, strlen(name));

	if (!e) {
		snprintf(err, errlen, "unknown option \"%s\" (see --help)", name);
		return APS_ERR_INVAL;
	}
	return set_entry(e, opts, value, err, errlen);
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int aps_cfg_load_file(const struct aps_cfg_entry *t, void *opts, const char *path, char *err,
		      size_t errlen)
{
	char *text = NULL, *line, *next, *eq, *name, *value, sub[256];
	int rc, lineno = 0;

	rc = aps_read_file(path, 1 << 20, &text, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot read config file %s: %s", path, aps_strerror(rc));
		return rc;
	}
	/* Notepad starts a UTF-8 file with a byte order mark */
	line = !strncmp(text, "\xEF\xBB\xBF", 3) ? text + 3 : text;
	for (; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		line = trim(line);
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected \"name = value\"", path, lineno);
			rc = APS_ERR_INVAL;
			goto out;
		}
		*eq = '\0';
		name = trim(line);
		value = trim(eq + 1);
		rc = aps_cfg_set(t, opts, name, value, sub, sizeof(sub));
		if (rc) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
			goto out;
		}
	}
	rc = APS_OK;
out:
	free(text);
	return rc;
}

int aps_cfg_parse_args(const struct aps_cfg_entry *t, void *opts, int argc, char **argv,
		       int *argi, char *err, size_t errlen)
{
	const struct aps_cfg_entry *e;
	const char *arg, *name, *value, *eq;
	size_t len;
	int i, rc;

	/* --config first, so the command line overrides the file. */
	for (i = *argi; i < argc && !strncmp(argv[i], "--", 2) && strcmp(argv[i], "--"); i++) {
		name = argv[i] + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		if (len == 6 && !strncmp(name, "config", 6)) {
			value = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
			if (!value) {
				snprintf(err, errlen, "option --config needs a file");
				return APS_ERR_INVAL;
			}
			rc = aps_cfg_load_file(t, opts, value, err, errlen);
			if (rc)
				return rc;
			continue;
		}
		e = find(t, name, len);
		if (e && !eq && e->type != APS_CFG_BOOL)
			i++; /* skip the option's value */
	}
	for (i = *argi; i < argc; i++) {
		arg = argv[i];
		if (!strcmp(arg, "--")) {
			i++;
			break;
		}
		if (strncmp(arg, "--", 2))
			break;
		name = arg + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		if (len == 6 && !strncmp(name, "config", 6)) {
			if (!eq)
				i++;
			continue;
		}
		e = find(t, name, len);
		if (!e) {
			snprintf(err, errlen, "unknown option \"--%.*s\" (see --help)", (int)len, name);
			return APS_ERR_INVAL;
		}
		if (eq) {
			value = eq + 1;
		} else if (e->type == APS_CFG_BOOL) {
			value = "true";
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			snprintf(err, errlen, "option --%s needs a value", e->name);
			return APS_ERR_INVAL;
		}
		rc = set_entry(e, opts, value, err, errlen);
		if (rc)
			return rc;
	}
	*argi = i;
	return APS_OK;
}

void aps_cfg_help(const struct aps_cfg_entry *t, FILE *f)
{
	char left[64];

	for (; t->name; t++) {
		snprintf(left, sizeof(left), "--%s%s", t->name,
			 t->type == APS_CFG_BOOL ? "" : t->type == APS_CFG_INT ? " N" : " VALUE");
		fprintf(f, "  %-28s %s", left, t->help);
		if (t->type == APS_CFG_INT)
			fprintf(f, " [%lld..%lld]", (long long)t->min, (long long)t->max);
		if (t->def)
			fprintf(f, " (default: %s)", t->def);
		if (t->reload)
			fprintf(f, " (SIGHUP reloads)");
		fputc('\n', f);
	}
}

int aps_cfg_same(const struct aps_cfg_entry *e, const void *a, const void *b)
{
	const char *sa, *sb;

	switch (e->type) {
	case APS_CFG_STR:
		sa = *FIELD(a, e, char *);
		sb = *FIELD(b, e, char *);
		return sa == sb || (sa && sb && !strcmp(sa, sb));
	case APS_CFG_INT:
		return *FIELD(a, e, int64_t) == *FIELD(b, e, int64_t);
	default:
		return *FIELD(a, e, int) == *FIELD(b, e, int);
	}
}

void aps_cfg_free(const struct aps_cfg_entry *t, void *opts)
{
	for (; t->name; t++)
		if (t->type == APS_CFG_STR) {
			free(*FIELD(opts, t, char *));
			*FIELD(opts, t, char *) = NULL;
		}
}

const char *aps_cfg_arg(int argc, char **argv, const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = 0; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) || strncmp(argv[i] + 2, name, n))
			continue;
		if (argv[i][2 + n] == '=')
			return argv[i] + 3 + n;
		if (!argv[i][2 + n] && i + 1 < argc)
			return argv[i + 1];
	}
	return NULL;
}
