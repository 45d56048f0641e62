#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "log.h"

int aps_log_level = APS_LOG_NOTICE;
static const char *log_program = "apsync";

static const char *const level_names[] = {"error", "warn", "notice", "info", "debug"};

void aps_log_init(const char *program, int level)
{
	log_program = program;
	aps_log_level = level;
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
