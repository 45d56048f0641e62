/*
 * Table-driven configuration. Each program describes its options once in a
 * table; the same table reads "name = value" config files, "--name value"
 * command-line options, fills defaults and prints --help. Precedence:
 * defaults < config file (--config FILE) < command line.
 */
#ifndef APS_CONFIG_H
#define APS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum aps_cfg_type {
	APS_CFG_STR,  /* char *, owned by the options struct */
	APS_CFG_INT,  /* int64_t within [min, max] */
	APS_CFG_BOOL, /* int 0/1; "--name" alone sets it */
};

struct aps_cfg_entry {
	const char *name;
	enum aps_cfg_type type;
	size_t offset;      /* of the field in the options struct */
	int64_t min, max;   /* INT bounds; STR: max max length (0 = 4096) */
	const char *def;    /* default as text; NULL = unset */
	int reload;         /* 1 if SIGHUP may change it */
	const char *help;
};

#define APS_CFG_END {NULL, 0, 0, 0, 0, NULL, 0, NULL}

int aps_cfg_defaults(const struct aps_cfg_entry *t, void *opts);
/* Sets one option from text; err receives a sentence naming the option. */
int aps_cfg_set(const struct aps_cfg_entry *t, void *opts, const char *name, const char *value,
		char *err, size_t errlen);
int aps_cfg_load_file(const struct aps_cfg_entry *t, void *opts, const char *path, char *err,
		      size_t errlen);
/*
 * Applies argv[*argi..argc): options of the table, --config FILE (loaded
 * before the other options whatever its place) and "--". Stops at the first
 * argument that is not an option and leaves *argi there. Returns
 * APS_ERR_INVAL with err set on an unknown option or a bad value.
 */
int aps_cfg_parse_args(const struct aps_cfg_entry *t, void *opts, int argc, char **argv,
		       int *argi, char *err, size_t errlen);
void aps_cfg_help(const struct aps_cfg_entry *t, FILE *f);
/* The value of "--name VALUE" or "--name=VALUE" on a command line, or NULL. */
const char *aps_cfg_arg(int argc, char **argv, const char *name);
void aps_cfg_free(const struct aps_cfg_entry *t, void *opts);
/* 1 when the option has the same value in a and b. */
int aps_cfg_same(const struct aps_cfg_entry *e, const void *a, const void *b);

#endif
