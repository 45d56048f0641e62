/* Logging: one line per event on stderr. Under systemd (JOURNAL_STREAM names
 * our stderr) each line starts with its syslog priority, <3> error … <7>
 * debug, and journald adds the time. The level is checked before formatting. */
#ifndef APS_LOG_H
#define APS_LOG_H

#include <stddef.h>

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
/* SIGHUP makes the event loop read the log level again from the config file
 * (when the command line did not set it): config_path NULL means none. The
 * loop calls aps_log_reload_poll() after each wake. */
void aps_log_reload_setup(const struct aps_cfg_entry *t, size_t opts_size, size_t level_offset,
			  const char *config_path);
void aps_log_reload_poll(void);

/* Routes libwebsockets' own log lines into ours (errors and warnings). */
void aps_log_route_lws(void);

#endif
