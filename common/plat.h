/*
 * What differs between the operating systems, in one small interface: the
 * process (start-up, the stop and reload requests), durable and private
 * files, what the machine is called, and the service manager (service.h).
 * common/posix/ implements it for Linux, common/win32/ for Windows; the rest
 * of the code calls these and never tests the platform itself.
 */
#ifndef APS_PLAT_H
#define APS_PLAT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* First thing in main: SIGPIPE ignored (POSIX); sockets and binary file
 * modes (Windows). */
void aps_plat_init(void);

/*
 * fn runs when the program is asked to stop: SIGINT or SIGTERM on POSIX;
 * Ctrl-C, Ctrl-Break, the console closing, log-off or shut-down, or the
 * Service Control Manager's Stop on Windows. It runs in a signal handler or
 * on another thread, so it may only set flags and wake the event loop
 * (lws_cancel_service is safe for that).
 */
void aps_plat_on_stop(void (*fn)(void));
/* fn runs when the configuration should be read again: SIGHUP on POSIX,
 * the service's "paramchange" control on Windows. Same rules as on_stop. */
void aps_plat_on_reload(void (*fn)(void));
/* Starts a thread that the stop and reload requests never interrupt (they
 * go to the thread that waits in the event loop). */
int aps_plat_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* ---- files ---- */

/* Makes the data written to fd durable. */
int aps_file_sync(int fd);
/* Makes a rename or a new name in dir durable; where the file system cannot
 * (some network shares) the synced file itself has to do. */
void aps_dir_sync(const char *dir);
/* Renames from to to, replacing to if it exists (atomically on both). */
int aps_file_replace(const char *from, const char *to);
/* Gives the finished file tmp the name path unless a file of that name is
 * there already, which it never replaces: APS_ERR_EXISTS then, and tmp is
 * left for the caller. APS_ERR_IO with errno set on failure. */
int aps_file_publish(const char *tmp, const char *path);
/* Only the owner may use a file created through fd (chmod on POSIX; on
 * Windows files inherit their private directory's access list). */
int aps_file_private(int fd, int mode);
/* A file's size and last modification, to the nanosecond where the file
 * system keeps it (100 ns on NTFS): APS_ERR_NOTFOUND if there is none. */
int aps_file_stamp(const char *path, int64_t *size, int64_t *mtime_ns);
/* Creates dir (and its parents) if needed and lets only its owner (and, on
 * Windows, SYSTEM and Administrators) in. */
int aps_dir_private(const char *dir, char *err, size_t errlen);
/* 1 when users other than the owner can read path (why says how and what
 * to do), 0 when not, -1 when it cannot be told (why says why). */
int aps_path_open_to_others(const char *path, char *why, size_t whylen);

/* 1 for a character that separates a path's parts: '/', and '\\' too on
 * Windows. */
int aps_path_sep(char c);

/* ---- the machine ---- */

/* "Linux 6.1.0-18-amd64 x86_64", "Windows 10.0.20348 x86_64" */
void aps_plat_os(char *out, size_t len);
void aps_plat_hostname(char *out, size_t len);
/* The local time zone's offset from UTC at t, in minutes east. */
int aps_plat_utc_offset(time_t t);
/* ---- sockets (the doctor's own probes) ---- */

/* Reads and writes on the socket fail after ms without progress. */
int aps_sock_timeout(int fd, int ms);

/* ---- the system log ---- */

/* Passes a log line to the platform's own log where the program has one
 * beside stderr: the Windows Event Log for a service. */
void aps_plat_syslog(int level, const char *msg, size_t len);

#endif
