/*
 * Force-included (gcc -include) in the Windows build only: the few POSIX
 * names the portable code uses that mingw-w64's C runtime lacks or spells
 * differently. What truly differs between the systems is in plat.h.
 */
#ifndef APS_WIN32_COMPAT_H
#define APS_WIN32_COMPAT_H

/* gmtime_r and localtime_r from mingw-w64's time.h */
#ifndef _POSIX_THREAD_SAFE_FUNCTIONS
#define _POSIX_THREAD_SAFE_FUNCTIONS 200112L
#endif

#include <winsock2.h> /* before windows.h, which would take the old winsock */
#include <ws2tcpip.h>
#include <windows.h>

#include <direct.h>
#include <fcntl.h>
#include <io.h>
#include <pthread_time.h> /* clock_gettime */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Handles not inherited by child processes, as O_CLOEXEC means. */
#define O_CLOEXEC _O_NOINHERIT
/* Directories have access lists, not modes (plat.h's aps_dir_private). */
#define mkdir(path, mode) _mkdir(path)
/* No symbolic links to tell apart here. */
#define lstat stat
#define timegm _mkgmtime
/* The C runtime's access() knows no execute bit: a directory is entered if it
 * can be read. */
#undef X_OK
#define X_OK 0

char *strndup(const char *s, size_t n);
int unsetenv(const char *name);
char *strcasestr(const char *haystack, const char *needle);
char *mkdtemp(char *tmpl);

#endif
