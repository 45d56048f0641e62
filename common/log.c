#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "config.h"
#include "log.h"

int aps_log_level = APS_LOG_NOTICE;
static const char *log_program = "apsync";
/* stderr is journald's stream: lines carry a priority, journald the time. */
static int to_journal;
/* syslog priorities of our levels */
static const int journal_priority[] = {3, 4, 5, 6, 7};

static const char *const level_names[] = {"error", "warn", "notice", "info", "debug"};

void aps_log_init(const char *program, int level)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	log_program = program;
	aps_log_level = level;
	/* systemd names the stream it gives us; a redirected stderr is not it */
	to_journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && !fstat(STDERR_FILENO, &st) &&
		     (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int aps_log_level_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (!strcmp(name, level_names[i]))
			return (int)i;
	return -1;
}

const char *aps_log_level_name(int level)
{
	if (level < 0 || level > APS_LOG_DEBUG)
		return "?";
	return level_names[level];
}

static void emit_line(int level, const char *msg, size_t len)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		len--;
	if (to_journal)
		n = snprintf(line, sizeof(line), "<%d>%s: %.*s\n",
			     journal_priority[level < 0 ? 0 : level > APS_LOG_DEBUG ? APS_LOG_DEBUG
										     : level],
			     log_program, (int)len, msg);
	else
		n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-6s %s: %.*s\n",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000, aps_log_level_name(level), log_program,
		     (int)len, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* One write per line, so lines from several threads never interleave. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void aps_log_emit(int level, const char *fmt, ...)
{
	char msg[1900];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	emit_line(level, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

static void lws_emit(int level, const char *line)
{
	int ours = level == LLL_ERR ? APS_LOG_ERROR : level == LLL_WARN ? APS_LOG_WARN : APS_LOG_DEBUG;

	if (ours <= aps_log_level)
		emit_line(ours, line, strlen(line));
}

void aps_log_route_lws(void)
{
	int mask = LLL_ERR | LLL_WARN;

	if (aps_log_level >= APS_LOG_DEBUG)
		mask |= LLL_NOTICE;
	lws_set_log_level(mask, lws_emit);
}

/* ---- SIGHUP: the log level from the config file again ---- */

static volatile sig_atomic_t reload_wanted;
static const struct aps_cfg_entry *reload_table;
static size_t reload_size, reload_offset;
static const char *reload_path;

static void on_hup(int sig)
{
	(void)sig;
	reload_wanted = 1;
}

void aps_log_reload_setup(const struct aps_cfg_entry *t, size_t opts_size, size_t level_offset,
			  const char *config_path)
{
	reload_table = t;
	reload_size = opts_size;
	reload_offset = level_offset;
	reload_path = config_path;
	signal(SIGHUP, on_hup);
}

void aps_log_reload_poll(void)
{
	char err[600];
	void *opts;
	const char *name;
	int level;

	if (!reload_wanted)
		return;
	reload_wanted = 0;
	if (!reload_path) {
		aps_log_emit(APS_LOG_NOTICE, "SIGHUP: no --config file to read again (the command "
					     "line sets the log level)");
		return;
	}
	opts = calloc(1, reload_size);
	if (!opts)
		return;
	if (aps_cfg_defaults(reload_table, opts) ||
	    aps_cfg_load_file(reload_table, opts, reload_path, err, sizeof(err))) {
		aps_log_emit(APS_LOG_ERROR, "SIGHUP: %s; keeping the log level %s", err,
			     aps_log_level_name(aps_log_level));
	} else {
		name = *(char **)((char *)opts + reload_offset);
		level = name ? aps_log_level_parse(name) : -1;
		if (level < 0) {
			aps_log_emit(APS_LOG_ERROR, "SIGHUP: %s: log-level \"%s\" is not error, warn, "
						    "notice, info or debug",
				     reload_path, name ? name : "");
		} else {
			aps_log_level = level;
			aps_log_emit(APS_LOG_NOTICE, "SIGHUP: %s read again: log level %s",
				     reload_path, aps_log_level_name(level));
		}
	}
	aps_cfg_free(reload_table, opts);
	free(opts);
}
