/*
 * The service manager. Under systemd (Type=notify) tells it when the program
 * is ready, that it is alive (watchdog) and when it stops, through
 * libsystemd's sd_notify; when the program was not started that way
 * (NOTIFY_SOCKET unset) every call does nothing. On Windows the program is
 * its own installer: `service install|uninstall|start|stop|status`, and the
 * Service Control Manager starts `service run` (common/win32/service.c).
 */
#ifndef APS_SERVICE_H
#define APS_SERVICE_H

struct lws_context;

/* READY=1, with a one-line STATUS= for `systemctl status`. */
void aps_service_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* STATUS= only: what the program is doing now. */
void aps_service_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * With WatchdogSec= set (WATCHDOG_USEC for this process), pings WATCHDOG=1
 * from ctx's event loop every half period, so a loop that hangs gets the
 * program restarted. Call on the loop thread.
 */
void aps_service_watchdog_start(struct lws_context *ctx);
/* STOPPING=1, and ends the watchdog pings: call on the loop thread before
 * the context is destroyed. Harmless when nothing was started. */
void aps_service_stopping(void);

struct aps_service {
	const char *name;        /* "apsync-agent": the service's and Event Log source's name */
	const char *display;     /* shown in services.msc */
	const char *description;
	const char *program;     /* "agent": names the log file, logs\agent.log */
	/* the program's `run` command, given "--config FILE" */
	int (*run)(int argc, char **argv);
};

/* `PROGRAM service install [--config FILE] | uninstall | start | stop |
 * status | run --config FILE`. On Linux it says to use systemctl. */
int aps_service_command(const struct aps_service *s, int argc, char **argv);
/* While running as a Windows service: the log file to write when the
 * configuration names none (%ProgramData%\apsync\logs\PROGRAM.log); else
 * NULL. */
const char *aps_service_log_file(const char *program);

#endif
