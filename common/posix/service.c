/* sd_notify for systemd's Type=notify services: see service.h. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <systemd/sd-daemon.h>

#include "service.h"

static struct {
	lws_sorted_usec_list_t sul;
	struct lws_context *ctx; /* set while pings are scheduled */
	uint64_t every_us;
} wd;

/* STATUS= is one line: newlines would start another assignment. */
static void notify(const char *head, const char *fmt, va_list ap)
{
	char status[256], *p;

	if (!getenv("NOTIFY_SOCKET"))
		return;
	vsnprintf(status, sizeof(status), fmt, ap);
	for (p = status; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	sd_notifyf(0, "%sSTATUS=%s", head, status);
}

void aps_service_ready(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	notify("READY=1\n", fmt, ap);
	va_end(ap);
}

void aps_service_status(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	notify("", fmt, ap);
	va_end(ap);
}

static void ping(lws_sorted_usec_list_t *sul)
{
	sd_notify(0, "WATCHDOG=1");
	lws_sul_schedule(wd.ctx, 0, sul, ping, (lws_usec_t)wd.every_us);
}

void aps_service_watchdog_start(struct lws_context *ctx)
{
	uint64_t usec = 0;

	if (wd.ctx || !ctx || sd_watchdog_enabled(0, &usec) <= 0 || !usec)
		return;
	wd.ctx = ctx;
	wd.every_us = usec / 2 ? usec / 2 : 1;
	memset(&wd.sul, 0, sizeof(wd.sul));
	sd_notify(0, "WATCHDOG=1");
	lws_sul_schedule(ctx, 0, &wd.sul, ping, (lws_usec_t)wd.every_us);
}

void aps_service_stopping(void)
{
	if (wd.ctx) {
		lws_sul_cancel(&wd.sul);
		wd.ctx = NULL;
	}
	if (getenv("NOTIFY_SOCKET"))
		sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

int aps_service_command(const struct aps_service *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr,
		"%s service: on this system the %s runs under systemd, from the package's unit:\n"
		"  systemctl enable --now %s     (start now and at boot)\n"
		"  systemctl status %s           (is it running; its latest log lines)\n"
		"  journalctl -u %s              (its log)\n",
		s->name, s->program, s->name, s->name, s->name);
	return 2;
}

const char *aps_service_log_file(const char *program)
{
	(void)program;
	return NULL;
}
