/* plat.h for Linux and other POSIX systems. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "err.h"
#include "plat.h"
#include "util.h"

static void (*stop_fn)(void);
static void (*reload_fn)(void);

static void on_signal(int sig)
{
	if (sig == SIGHUP) {
		if (reload_fn)
			reload_fn();
	} else if (stop_fn) {
		stop_fn();
	}
}

void aps_plat_init(void)
{
	signal(SIGPIPE, SIG_IGN);
}

void aps_plat_on_stop(void (*fn)(void))
{
	stop_fn = fn;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
}

void aps_plat_on_reload(void (*fn)(void))
{
	reload_fn = fn;
	signal(SIGHUP, on_signal);
}

int aps_plat_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t block, old;
	int rc;

	/* The new thread inherits the mask: the signals stay with this one,
	 * whose poll() they interrupt. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int aps_file_sync(int fd)
{
	return fsync(fd);
}

void aps_dir_sync(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd); /* some shares cannot: the file itself was synced */
		close(fd);
	}
}

int aps_file_replace(const char *from, const char *to)
{
	return rename(from, to) ? APS_ERR_IO : APS_OK;
}

int aps_file_publish(const char *tmp, const char *path)
{
	/* A hard link never replaces an existing file. */
	if (!link(tmp, path)) {
		unlink(tmp);
		return APS_OK;
	}
	if (errno == EEXIST)
		return APS_ERR_EXISTS;
	if (errno != EPERM && errno != ENOTSUP && errno != EOPNOTSUPP && errno != ENOSYS &&
	    errno != EMLINK && errno != EXDEV)
		return APS_ERR_IO;
	/* No hard links on this file system (some shares): rename after looking. */
	if (!access(path, F_OK)) {
		errno = EEXIST;
		return APS_ERR_EXISTS;
	}
	return rename(tmp, path) ? APS_ERR_IO : APS_OK;
}

int aps_file_stamp(const char *path, int64_t *size, int64_t *mtime_ns)
{
	struct stat st;

	if (stat(path, &st))
		return errno == ENOENT ? APS_ERR_NOTFOUND : APS_ERR_IO;
	*size = (int64_t)st.st_size;
	*mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	return APS_OK;
}

int aps_file_private(int fd, int mode)
{
	return fchmod(fd, (mode_t)mode) ? APS_ERR_IO : APS_OK;
}

int aps_dir_private(const char *dir, char *err, size_t errlen)
{
	if (aps_mkdir_p(dir, 0700) || chmod(dir, 0700)) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return APS_ERR_IO;
	}
	return APS_OK;
}

int aps_path_open_to_others(const char *path, char *why, size_t whylen)
{
	struct stat st;

	if (stat(path, &st)) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!(st.st_mode & 077))
		return 0;
	snprintf(why, whylen, "mode %03o; run `chmod %s %s`", (unsigned)(st.st_mode & 0777),
		 S_ISDIR(st.st_mode) ? "700" : "600", path);
	return 1;
}

int aps_path_sep(char c)
{
	return c == '/';
}

void aps_plat_os(char *out, size_t len)
{
	struct utsname u;

	if (uname(&u))
		snprintf(out, len, "unknown");
	else
		snprintf(out, len, "%s %s %s", u.sysname, u.release, u.machine);
}

void aps_plat_hostname(char *out, size_t len)
{
	if (!len)
		return;
	if (gethostname(out, len - 1))
		snprintf(out, len, "unknown");
	out[len - 1] = '\0';
}

int aps_plat_utc_offset(time_t t)
{
	struct tm tm;

	if (!localtime_r(&t, &tm))
		return 0;
	return (int)(tm.tm_gmtoff / 60);
}

int aps_sock_timeout(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
			       setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))
		       ? APS_ERR_IO
		       : APS_OK;
}

void aps_plat_syslog(int level, const char *msg, size_t len)
{
	/* journald reads stderr (log.c marks each line's priority) */
	(void)level;
	(void)msg;
	(void)len;
}
