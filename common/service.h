/*
 * Running under systemd (Type=notify): tells the service manager when the
 * program is ready, that it is alive (watchdog) and when it stops, through
 * libsystemd's sd_notify. When the program was not started that way
 * (NOTIFY_SOCKET unset) every call does nothing.
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

#endif
