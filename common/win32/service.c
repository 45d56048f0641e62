/*
 * service.h for Windows: the program installs itself with the Service Control
 * Manager (SCM), which then starts `PROGRAM service run --config FILE`; the
 * service reports start, running and stop to the SCM, stops on its Stop
 * control, restarts after a failure (the SCM's failure actions, like
 * systemd's Restart=on-failure), and writes warnings and errors to the
 * Application Event Log and every line to %ProgramData%\apsync\logs.
 */
#include <stdarg.h>
#include <stdio.h>

#include "err.h"
#include "log.h"
#include "plat.h"
#include "service.h"
#include "util.h"
#include "win.h"

#include "messages.h" /* made by windmc from messages.mc */

#define WAIT_MS 30000 /* for the service to start or stop */

static struct {
	const struct aps_service *svc;
	SERVICE_STATUS_HANDLE handle; /* set while running as a service */
	SERVICE_STATUS status;
	HANDLE events;                /* the Event Log source */
	int argc;                     /* `run`'s arguments */
	char **argv;
	char log_path[MAX_PATH + 64];
} sv;

static void report_state(DWORD state, DWORD wait_hint)
{
	if (!sv.handle)
		return;
	sv.status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
	sv.status.dwCurrentState = state;
	sv.status.dwControlsAccepted =
		state == SERVICE_RUNNING
			? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PARAMCHANGE
			: 0;
	sv.status.dwWaitHint = wait_hint;
	if (state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING)
		sv.status.dwCheckPoint++;
	else
		sv.status.dwCheckPoint = 0;
	SetServiceStatus(sv.handle, &sv.status);
}

void aps_service_ready(const char *fmt, ...)
{
	(void)fmt;
	report_state(SERVICE_RUNNING, 0);
}

void aps_service_status(const char *fmt, ...)
{
	/* the SCM keeps no status line; the log has it */
	(void)fmt;
}

void aps_service_watchdog_start(struct lws_context *ctx)
{
	/* the SCM has no watchdog: a hung service is seen by its log */
	(void)ctx;
}

void aps_service_stopping(void)
{
	report_state(SERVICE_STOP_PENDING, WAIT_MS);
}

void aps_plat_syslog(int level, const char *msg, size_t len)
{
	char line[2048];
	const char *strs[1] = {line};
	WORD type;

	/* the Event Log gets what an administrator should see; the file has all */
	if (!sv.events || level > APS_LOG_NOTICE)
		return;
	type = level == APS_LOG_ERROR  ? EVENTLOG_ERROR_TYPE
	       : level == APS_LOG_WARN ? EVENTLOG_WARNING_TYPE
				       : EVENTLOG_INFORMATION_TYPE;
	snprintf(line, sizeof(line), "%.*s", (int)len, msg);
	ReportEventA(sv.events, type, 0, APS_MSG_LINE, NULL, 1, 0, strs, NULL);
}

const char *aps_service_log_file(const char *program)
{
	char dir[MAX_PATH + 16], err[300];

	if (!sv.handle)
		return NULL;
	if (!sv.log_path[0]) {
		snprintf(dir, sizeof(dir), "%s\\logs", aps__win_data_dir());
		if (aps_dir_private(dir, err, sizeof(err)))
			return NULL;
		snprintf(sv.log_path, sizeof(sv.log_path), "%s\\%s.log", dir, program);
	}
	return sv.log_path;
}

/* ---- the service itself, as the SCM runs it ---- */

static DWORD WINAPI on_control(DWORD control, DWORD type, void *data, void *ctx)
{
	(void)type;
	(void)data;
	(void)ctx;
	switch (control) {
	case SERVICE_CONTROL_STOP:
	case SERVICE_CONTROL_SHUTDOWN:
		report_state(SERVICE_STOP_PENDING, WAIT_MS);
		aps__win_request_stop();
		return NO_ERROR;
	case SERVICE_CONTROL_PARAMCHANGE:
		aps__win_request_reload();
		return NO_ERROR;
	case SERVICE_CONTROL_INTERROGATE:
		return NO_ERROR;
	default:
		return ERROR_CALL_NOT_IMPLEMENTED;
	}
}

static void WINAPI service_main(DWORD argc, char **argv)
{
	int rc;

	(void)argc;
	(void)argv;
	sv.handle = RegisterServiceCtrlHandlerExA(sv.svc->name, on_control, NULL);
	if (!sv.handle)
		return;
	report_state(SERVICE_START_PENDING, WAIT_MS);
	rc = sv.svc->run(sv.argc, sv.argv);
	/* a failure's exit code makes the SCM's failure actions restart it */
	sv.status.dwWin32ExitCode = rc ? ERROR_SERVICE_SPECIFIC_ERROR : NO_ERROR;
	sv.status.dwServiceSpecificExitCode = (DWORD)rc;
	report_state(SERVICE_STOPPED, 0);
}

static int svc_run(const struct aps_service *s, int argc, char **argv)
{
	SERVICE_TABLE_ENTRYA table[] = {{(char *)s->name, service_main}, {NULL, NULL}};

	sv.argc = argc;
	sv.argv = argv;
	sv.events = RegisterEventSourceA(NULL, s->name);
	if (!StartServiceCtrlDispatcherA(table)) {
		DWORD e = GetLastError();

		if (sv.events)
			DeregisterEventSource(sv.events);
		sv.events = NULL;
		if (e == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
			fprintf(stderr, "%s service run: only the Service Control Manager starts "
					"this; in a console use `%s service start`, or `run` to "
					"run it here\n",
				s->name, s->name);
			return 2;
		}
		fprintf(stderr, "%s service run: the Service Control Manager refused (error %lu)\n",
			s->name, (unsigned long)e);
		return 1;
	}
	if (sv.events)
		DeregisterEventSource(sv.events);
	return (int)sv.status.dwServiceSpecificExitCode;
}

/* ---- install, uninstall, start, stop, status ---- */

static const char *scm_error(DWORD e, char *buf, size_t len)
{
	switch (e) {
	case ERROR_ACCESS_DENIED:
		return "access denied: run this from a command prompt opened with \"Run as "
		       "administrator\"";
	case ERROR_SERVICE_DOES_NOT_EXIST:
		return "the service is not installed (`service install` first)";
	case ERROR_SERVICE_EXISTS:
		return "the service is installed already (`service uninstall` first to change it)";
	case ERROR_SERVICE_MARKED_FOR_DELETE:
		return "the service is being removed: close services.msc and try again";
	case ERROR_SERVICE_ALREADY_RUNNING:
		return "the service is running already";
	case ERROR_SERVICE_NOT_ACTIVE:
		return "the service is not running";
	default:
		if (!FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e,
				    0, buf, (DWORD)len, NULL))
			snprintf(buf, len, "error %lu", (unsigned long)e);
		buf[strcspn(buf, "\r\n")] = '\0';
		return buf;
	}
}

static int fail(const struct aps_service *s, const char *what, DWORD e)
{
	char buf[256];

	fprintf(stderr, "%s service %s: %s\n", s->name, what, scm_error(e, buf, sizeof(buf)));
	return 1;
}

/* The SCM and the service, opened together. */
struct svc_handles {
	SC_HANDLE scm, h;
};

static void svc_close(struct svc_handles *p)
{
	if (p->h)
		CloseServiceHandle(p->h);
	if (p->scm)
		CloseServiceHandle(p->scm);
	p->h = p->scm = NULL;
}

/* Reports the last error of a step of `what` and closes the handles. */
static int svc_fail(const struct aps_service *s, const char *what, struct svc_handles *p)
{
	DWORD e = GetLastError();

	svc_close(p);
	return fail(s, what, e);
}

static int open_service(const struct aps_service *s, DWORD access, struct svc_handles *p)
{
	p->h = NULL;
	p->scm = OpenSCManagerA(NULL, NULL, SC_MANAGER_CONNECT);
	if (p->scm)
		p->h = OpenServiceA(p->scm, s->name, access);
	return p->h ? 0 : -1;
}

/* The program's own exit code where it gave one. */
static unsigned long exit_code(const SERVICE_STATUS_PROCESS *ss)
{
	return ss->dwWin32ExitCode == ERROR_SERVICE_SPECIFIC_ERROR ? ss->dwServiceSpecificExitCode
								   : ss->dwWin32ExitCode;
}

static const char *state_name(DWORD st)
{
	switch (st) {
	case SERVICE_STOPPED:
		return "stopped";
	case SERVICE_START_PENDING:
		return "starting";
	case SERVICE_STOP_PENDING:
		return "stopping";
	case SERVICE_RUNNING:
		return "running";
	default:
		return "paused";
	}
}

/* Waits while the service is in the pending state; its final state. */
static DWORD wait_state(SC_HANDLE h, DWORD pending, SERVICE_STATUS_PROCESS *ss)
{
	DWORD n, waited = 0;

	for (;;) {
		if (!QueryServiceStatusEx(h, SC_STATUS_PROCESS_INFO, (BYTE *)ss, sizeof(*ss), &n))
			return 0;
		if (ss->dwCurrentState != pending || waited >= WAIT_MS)
			return ss->dwCurrentState;
		Sleep(250);
		waited += 250;
	}
}

static int event_source(const struct aps_service *s, const char *exe, int add)
{
	char key[256];
	HKEY k;
	DWORD types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE;
	LONG e;

	snprintf(key, sizeof(key), "SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\%s",
		 s->name);
	if (!add)
		return RegDeleteKeyA(HKEY_LOCAL_MACHINE, key) == ERROR_SUCCESS ? 0 : -1;
	e = RegCreateKeyExA(HKEY_LOCAL_MACHINE, key, 0, NULL, 0, KEY_SET_VALUE, NULL, &k, NULL);
	if (e != ERROR_SUCCESS)
		return -1;
	/* the program holds the message table (messages.mc) */
	e = RegSetValueExA(k, "EventMessageFile", 0, REG_EXPAND_SZ, (const BYTE *)exe,
			   (DWORD)strlen(exe) + 1);
	if (e == ERROR_SUCCESS)
		e = RegSetValueExA(k, "TypesSupported", 0, REG_DWORD, (const BYTE *)&types,
				   sizeof(types));
	RegCloseKey(k);
	return e == ERROR_SUCCESS ? 0 : -1;
}

static int svc_install(const struct aps_service *s, int argc, char **argv)
{
	char exe[MAX_PATH], conf[MAX_PATH + 64], cmd[3 * MAX_PATH], logpath[MAX_PATH + 64];
	SERVICE_DESCRIPTIONA desc = {(char *)s->description};
	SC_ACTION restart[3] = {{SC_ACTION_RESTART, 5000}, {SC_ACTION_RESTART, 30000},
				{SC_ACTION_RESTART, 60000}};
	SERVICE_FAILURE_ACTIONSA fa = {86400, NULL, NULL, 3, restart};
	SERVICE_FAILURE_ACTIONS_FLAG fa_flag = {TRUE};
	SERVICE_DELAYED_AUTO_START_INFO delayed = {TRUE};
	struct svc_handles p;
	FILE *f;

	if (argc == 2 && !strcmp(argv[0], "--config"))
		snprintf(conf, sizeof(conf), "%s", argv[1]);
	else if (argc == 0)
		snprintf(conf, sizeof(conf), "%s\\%s.conf", aps__win_data_dir(), s->program);
	else {
		fprintf(stderr, "usage: %s service install [--config FILE]\n", s->name);
		return 2;
	}
	if (!GetFullPathNameA(conf, sizeof(conf), conf, NULL) ||
	    !GetModuleFileNameA(NULL, exe, sizeof(exe))) {
		fprintf(stderr, "%s service install: cannot tell the program's or the config's "
				"full path\n",
			s->name);
		return 1;
	}
	/* the service runs with this file: make sure it is there and readable */
	f = fopen(conf, "rb");
	if (!f) {
		fprintf(stderr, "%s service install: the configuration %s: %s\n  write it first "
				"(packaging/apsync-%s.conf is a commented example), or give "
				"--config FILE\n",
			s->name, conf, strerror(errno), s->program);
		return 1;
	}
	fclose(f);
	snprintf(cmd, sizeof(cmd), "\"%s\" service run --config \"%s\"", exe, conf);
	p.h = NULL;
	p.scm = OpenSCManagerA(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
	if (!p.scm)
		return svc_fail(s, "install", &p);
	/* said plainly, before CreateService would */
	p.h = OpenServiceA(p.scm, s->name, SERVICE_QUERY_STATUS);
	if (p.h) {
		svc_close(&p);
		return fail(s, "install", ERROR_SERVICE_EXISTS);
	}
	/* LocalSystem, started at boot once the network is up */
	p.h = CreateServiceA(p.scm, s->name, s->display, SERVICE_ALL_ACCESS,
			     SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, cmd,
			     NULL, NULL, "Tcpip\0", NULL, NULL);
	if (!p.h)
		return svc_fail(s, "install", &p);
	ChangeServiceConfig2A(p.h, SERVICE_CONFIG_DESCRIPTION, &desc);
	ChangeServiceConfig2A(p.h, SERVICE_CONFIG_FAILURE_ACTIONS, &fa);
	ChangeServiceConfig2A(p.h, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &fa_flag);
	ChangeServiceConfig2A(p.h, SERVICE_CONFIG_DELAYED_AUTO_START_INFO, &delayed);
	svc_close(&p);
	if (event_source(s, exe, 1))
		fprintf(stderr, "%s service install: warning: the Event Log source was not "
				"registered; events will show without their text\n",
			s->name);
	snprintf(logpath, sizeof(logpath), "%s\\logs\\%s.log", aps__win_data_dir(), s->program);
	printf("installed the service %s (\"%s\"): it runs\n  %s\nas LocalSystem at boot, "
	       "restarts after a failure, and logs to %s\nand the Application Event Log.\n"
	       "Start it now: %s service start\n",
	       s->name, s->display, cmd, logpath, s->name);
	return 0;
}

static int svc_uninstall(const struct aps_service *s)
{
	SERVICE_STATUS_PROCESS ss;
	SERVICE_STATUS st;
	struct svc_handles p;

	if (open_service(s, SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE, &p))
		return svc_fail(s, "uninstall", &p);
	if (ControlService(p.h, SERVICE_CONTROL_STOP, &st))
		wait_state(p.h, SERVICE_STOP_PENDING, &ss);
	if (!DeleteService(p.h))
		return svc_fail(s, "uninstall", &p);
	svc_close(&p);
	event_source(s, NULL, 0);
	printf("removed the service %s; its configuration, state and logs under %s are kept\n",
	       s->name, aps__win_data_dir());
	return 0;
}

static int svc_start(const struct aps_service *s)
{
	SERVICE_STATUS_PROCESS ss;
	struct svc_handles p;
	DWORD state;

	if (open_service(s, SERVICE_START | SERVICE_QUERY_STATUS, &p))
		return svc_fail(s, "start", &p);
	/* starting a running service is no error: it runs */
	if (!StartServiceA(p.h, 0, NULL) && GetLastError() != ERROR_SERVICE_ALREADY_RUNNING)
		return svc_fail(s, "start", &p);
	state = wait_state(p.h, SERVICE_START_PENDING, &ss);
	svc_close(&p);
	if (state != SERVICE_RUNNING) {
		fprintf(stderr, "%s service start: the service is %s (exit code %lu); see "
				"%s\\logs\\%s.log and the Application Event Log\n",
			s->name, state_name(state), exit_code(&ss), aps__win_data_dir(), s->program);
		return 1;
	}
	printf("%s is running (process %lu)\n", s->name, (unsigned long)ss.dwProcessId);
	return 0;
}

static int svc_stop(const struct aps_service *s)
{
	SERVICE_STATUS_PROCESS ss;
	SERVICE_STATUS st;
	struct svc_handles p;
	DWORD state;

	if (open_service(s, SERVICE_STOP | SERVICE_QUERY_STATUS, &p))
		return svc_fail(s, "stop", &p);
	/* stopping a stopped service is no error: it is stopped */
	if (!ControlService(p.h, SERVICE_CONTROL_STOP, &st) &&
	    GetLastError() != ERROR_SERVICE_NOT_ACTIVE)
		return svc_fail(s, "stop", &p);
	state = wait_state(p.h, SERVICE_STOP_PENDING, &ss);
	svc_close(&p);
	if (state != SERVICE_STOPPED) {
		fprintf(stderr, "%s service stop: still %s after %d s\n", s->name, state_name(state),
			WAIT_MS / 1000);
		return 1;
	}
	printf("%s stopped\n", s->name);
	return 0;
}

static int svc_status(const struct aps_service *s)
{
	SERVICE_STATUS_PROCESS ss;
	struct svc_handles p;
	DWORD n;

	if (open_service(s, SERVICE_QUERY_STATUS, &p) ||
	    !QueryServiceStatusEx(p.h, SC_STATUS_PROCESS_INFO, (BYTE *)&ss, sizeof(ss), &n))
		return svc_fail(s, "status", &p);
	svc_close(&p);
	printf("%s is %s", s->name, state_name(ss.dwCurrentState));
	if (ss.dwCurrentState == SERVICE_RUNNING)
		printf(" (process %lu)", (unsigned long)ss.dwProcessId);
	else if (ss.dwCurrentState == SERVICE_STOPPED && ss.dwWin32ExitCode &&
		 ss.dwWin32ExitCode != ERROR_SERVICE_NEVER_STARTED)
		printf(" (exit code %lu)", exit_code(&ss));
	printf("\n");
	return ss.dwCurrentState == SERVICE_RUNNING ? 0 : 3;
}

int aps_service_command(const struct aps_service *s, int argc, char **argv)
{
	const char *verb = argc ? argv[0] : "";

	sv.svc = s;
	if (!strcmp(verb, "run"))
		return svc_run(s, argc - 1, argv + 1);
	if (!strcmp(verb, "install"))
		return svc_install(s, argc - 1, argv + 1);
	if (argc == 1 && !strcmp(verb, "uninstall"))
		return svc_uninstall(s);
	if (argc == 1 && !strcmp(verb, "start"))
		return svc_start(s);
	if (argc == 1 && !strcmp(verb, "stop"))
		return svc_stop(s);
	if (argc == 1 && !strcmp(verb, "status"))
		return svc_status(s);
	fprintf(stderr,
		"usage: %s service install [--config FILE]   (as Administrator; default config "
		"%s\\%s.conf)\n"
		"       %s service uninstall | start | stop | status\n",
		s->name, aps__win_data_dir(), s->program, s->name);
	return 2;
}
