/* Logging: one line per event on stderr. Under systemd (JOURNAL_STREAM names
 * our stderr) each line starts with its syslog priority, <3> error … <7>
 * debug, and journald adds the time. Optionally also a size-capped file
 * (aps_log_file) and, for a Windows service, the Event Log. The level is
 * checked before formatting. */
#ifndef APS_LOG_H
#define APS_LOG_H

#include <stddef.h>
#include <stdint.h>

enum aps_log_level {
	APS_LOG_ERROR = 0,
	APS_LOG_WARN,
	APS_LOG_NOTICE,
	APS_LOG_INFO,
	APS_LOG_DEBUG,
};

extern int aps_log_level;

/* Names the program in every line ("broker", "agent"); not copied. */
void aps_log_init(const char *program, int level);
/* Also writes every line to path, renamed to path.1 when it would pass
 * max_bytes (path.1 to path.2, … 3 old files kept): for a service without
 * journald. NULL closes the file. */
int aps_log_file(const char *path, long max_bytes, char *err, size_t errlen);
/* "error", "warn", "notice", "info", "debug" → level; -1 if unknown. */
int aps_log_level_parse(const char *name);
const char *aps_log_level_name(int level);

void aps_log_emit(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define aps_log(level, ...)                                                    \
	do {                                                                   \
		if ((level) <= aps_log_level)                                  \
			aps_log_emit((level), __VA_ARGS__);                    \
	} while (0)
#define log_err(...) aps_log(APS_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) aps_log(APS_LOG_WARN, __VA_ARGS__)
#define log_notice(...) aps_log(APS_LOG_NOTICE, __VA_ARGS__)
#define log_info(...) aps_log(APS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) aps_log(APS_LOG_DEBUG, __VA_ARGS__)

struct aps_cfg_entry;
/* What SIGHUP (a Windows service: its paramchange control) reloads. */
struct aps_log_reload {
	const struct aps_cfg_entry *table;
	size_t opts_size;
	const void *live;          /* the options the program started with */
	const char *config_path;   /* NULL: none */
	int argc;                  /* the command line: the options it sets stay */
	char **argv;
	int has_log_file;          /* the options have log-file and log-max-mb, */
	size_t log_file_offset;    /* char *, here */
	size_t log_max_mb_offset;  /* int64_t, here */
};
/* SIGHUP makes the event loop (which calls aps_log_reload_poll() after each
 * wake) reopen the log file (for logrotate) and read the config file again:
 * the options marked reload take their new values (the log level; the log
 * file's name and size), each changed option that needs a restart is named
 * in a warning. r is copied; what it points to must live on. */
void aps_log_reload_setup(const struct aps_log_reload *r);
void aps_log_reload_poll(void);

/* Routes libwebsockets' own log lines into ours (errors and warnings). */
void aps_log_route_lws(void);

#endif
