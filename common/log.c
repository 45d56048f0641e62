#include <errno.h>
#include <pthread.h>
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
#include "err.h"
#include "log.h"
#include "plat.h"

int aps_log_level = APS_LOG_NOTICE;
static const char *log_program = "apsync";
/* stderr is journald's stream: lines carry a priority, journald the time. */
static int to_journal;
/* syslog priorities of our levels */
static const int journal_priority[] = {3, 4, 5, 6, 7};

/* --log-file: lines also go to a file, renamed to FILE.1 (FILE.1 to FILE.2
 * …) when it would pass max bytes; LOG_KEEP old files are kept. */
#define LOG_KEEP 3
static struct {
	pthread_mutex_t mu;
	FILE *f;
	char path[4096];
	long size, max;
} lf = {.mu = PTHREAD_MUTEX_INITIALIZER};

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

static void rotate(void)
{
	char from[4120], to[4120];
	int i;

	fclose(lf.f);
	/* FILE.2 → FILE.3 (replacing the oldest), FILE.1 → FILE.2, FILE → FILE.1;
	 * a missing one is skipped */
	for (i = LOG_KEEP; i >= 1; i--) {
		snprintf(to, sizeof(to), "%s.%d", lf.path, i);
		if (i > 1)
			snprintf(from, sizeof(from), "%s.%d", lf.path, i - 1);
		else
			snprintf(from, sizeof(from), "%s", lf.path);
		aps_file_replace(from, to);
	}
	lf.f = fopen(lf.path, "ab");
	lf.size = 0;
}

static void file_line(const char *line, size_t n)
{
	pthread_mutex_lock(&lf.mu);
	if (lf.f && lf.size > 0 && lf.size + (long)n > lf.max)
		rotate();
	if (lf.f && fwrite(line, 1, n, lf.f) == n) {
		lf.size += (long)n;
		fflush(lf.f);
	}
	pthread_mutex_unlock(&lf.mu);
}

int aps_log_file(const char *path, long max_bytes, char *err, size_t errlen)
{
	FILE *f;

	if (!path) {
		pthread_mutex_lock(&lf.mu);
		if (lf.f)
			fclose(lf.f);
		lf.f = NULL;
		pthread_mutex_unlock(&lf.mu);
		return APS_OK;
	}
	if (strlen(path) >= sizeof(lf.path)) {
		snprintf(err, errlen, "--log-file: the path is too long");
		return APS_ERR_RANGE;
	}
	f = fopen(path, "ab");
	if (!f) {
		snprintf(err, errlen, "--log-file %s: %s", path, strerror(errno));
		return APS_ERR_IO;
	}
	pthread_mutex_lock(&lf.mu);
	if (lf.f)
		fclose(lf.f);
	lf.f = f;
	snprintf(lf.path, sizeof(lf.path), "%s", path);
	fseek(f, 0, SEEK_END);
	lf.size = ftell(f);
	lf.max = max_bytes;
	pthread_mutex_unlock(&lf.mu);
	return APS_OK;
}

static void emit_line(int level, const char *msg, size_t len)
{
	char line[2048], jline[2048];
	struct timespec ts;
	struct tm tm;
	int n, jn = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		len--;
	if (len > 1900)
		len = 1900;
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-6s %s: %.*s\n",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000, aps_log_level_name(level), log_program,
		     (int)len, msg);
	if (to_journal)
		jn = snprintf(jline, sizeof(jline), "<%d>%s: %.*s\n",
			      journal_priority[level < 0 ? 0 : level > APS_LOG_DEBUG ? APS_LOG_DEBUG
										      : level],
			      log_program, (int)len, msg);
	if (n < 0 || jn < 0)
		return;
	/* One write per line, so lines from several threads never interleave.
	 * A service may have no stderr: the file and the system log still
	 * get the line. */
	if (write(STDERR_FILENO, to_journal ? jline : line, (size_t)(to_journal ? jn : n)) < 0)
		errno = 0;
	if (lf.f)
		file_line(line, (size_t)n);
	aps_plat_syslog(level, msg, len);
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

/* ---- SIGHUP: the log file reopened, the config file read again ---- */

static volatile sig_atomic_t reload_wanted;
static struct aps_log_reload rl;

static void on_hup(void)
{
	reload_wanted = 1;
}

#define OPT_AT(opts, off, T) (*(T *)((char *)(opts) + (off)))

void aps_log_reload_setup(const struct aps_log_reload *r)
{
	rl = *r;
	aps_plat_on_reload(on_hup);
}

/* Reopens the log file: after logrotate moved it, or with a new name. */
static void reopen(const char *path, int64_t max_mb)
{
	char err[300];

	if (path && aps_log_file(path, (long)max_mb << 20, err, sizeof(err)))
		aps_log_emit(APS_LOG_ERROR, "SIGHUP: %s; the log file stays closed", err);
}

void aps_log_reload_poll(void)
{
	const struct aps_cfg_entry *e;
	char err[600];
	void *fresh;
	const char *name;
	int level;

	if (!reload_wanted)
		return;
	reload_wanted = 0;
	if (!rl.config_path) {
		if (rl.has_log_file)
			reopen(OPT_AT(rl.live, rl.log_file_offset, char *),
			       OPT_AT(rl.live, rl.log_max_mb_offset, int64_t));
		aps_log_emit(APS_LOG_NOTICE, "SIGHUP: no --config file to read again (the log "
					     "file, if any, was reopened)");
		return;
	}
	fresh = calloc(1, rl.opts_size);
	if (!fresh)
		return;
	if (aps_cfg_defaults(rl.table, fresh) ||
	    aps_cfg_load_file(rl.table, fresh, rl.config_path, err, sizeof(err))) {
		aps_log_emit(APS_LOG_ERROR, "SIGHUP: %s; nothing changed", err);
		goto out;
	}
	/* the log file: reopened in any case, under its new name or size if the
	 * file changed them (the live options keep the start's values) */
	if (rl.has_log_file) {
		const void *from = aps_cfg_arg(rl.argc, rl.argv, "log-file") ? rl.live : fresh;
		const char *path = OPT_AT(from, rl.log_file_offset, char *);
		int64_t mb = OPT_AT(aps_cfg_arg(rl.argc, rl.argv, "log-max-mb") ? rl.live : fresh,
				    rl.log_max_mb_offset, int64_t);

		/* a file open since the start stays open (a Windows service's own
		 * default is in no config file) */
		reopen(path ? path : OPT_AT(rl.live, rl.log_file_offset, char *), mb);
	}
	for (e = rl.table; e->name; e++) {
		if (aps_cfg_same(e, fresh, rl.live))
			continue;
		if (aps_cfg_arg(rl.argc, rl.argv, e->name)) {
			if (e->reload)
				aps_log_emit(APS_LOG_NOTICE, "SIGHUP: the command line sets %s; %s's "
							     "value is not used",
					     e->name, rl.config_path);
			continue;
		}
		if (!e->reload) {
			aps_log_emit(APS_LOG_WARN, "SIGHUP: %s changes %s; restart the %s to use it",
				     rl.config_path, e->name, log_program);
			continue;
		}
		if (!strcmp(e->name, "log-level")) {
			name = *(char **)((char *)fresh + e->offset);
			level = name ? aps_log_level_parse(name) : -1;
			if (level < 0) {
				aps_log_emit(APS_LOG_ERROR, "SIGHUP: %s: log-level \"%s\" is not error, "
							    "warn, notice, info or debug",
					     rl.config_path, name ? name : "");
				continue;
			}
			aps_log_level = level;
			aps_log_emit(APS_LOG_NOTICE, "SIGHUP: %s read again: log level %s",
				     rl.config_path, aps_log_level_name(level));
		}
	}
out:
	aps_cfg_free(rl.table, fresh);
	free(fresh);
}
