/*
 * plat.h for Windows (mingw-w64). File names are UTF-8: the program's
 * manifest (apsync.rc) makes UTF-8 the process's code page, so the C
 * runtime's and the *A functions' narrow strings are UTF-8 throughout.
 */
#include <aclapi.h>
#include <ctype.h>
#include <errno.h>
#include <sddl.h>
#include <shlobj.h>
#include <stdio.h>

#include "err.h"
#include "plat.h"
#include "util.h"
#include "win.h"

static void (*stop_fn)(void);
static void (*reload_fn)(void);

void aps__win_request_stop(void)
{
	if (stop_fn)
		stop_fn();
}

void aps__win_request_reload(void)
{
	if (reload_fn)
		reload_fn();
}

static BOOL WINAPI on_console(DWORD ev)
{
	switch (ev) {
	case CTRL_C_EVENT:
	case CTRL_BREAK_EVENT:
	case CTRL_CLOSE_EVENT:
	case CTRL_LOGOFF_EVENT:
	case CTRL_SHUTDOWN_EVENT:
		aps__win_request_stop();
		return TRUE;
	default:
		return FALSE;
	}
}

void aps_plat_init(void)
{
	WSADATA wsa;

	/* open() and fopen() without "b" would translate line ends */
	_fmode = _O_BINARY;
	WSAStartup(MAKEWORD(2, 2), &wsa);
}

void aps_plat_on_stop(void (*fn)(void))
{
	stop_fn = fn;
	SetConsoleCtrlHandler(on_console, TRUE);
}

void aps_plat_on_reload(void (*fn)(void))
{
	reload_fn = fn;
}

int aps_plat_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	return pthread_create(t, NULL, fn, arg);
}

/* errno for a Win32 error, for the callers' strerror(). */
static void set_errno(DWORD e)
{
	switch (e) {
	case ERROR_FILE_NOT_FOUND:
	case ERROR_PATH_NOT_FOUND:
		errno = ENOENT;
		break;
	case ERROR_ACCESS_DENIED:
	case ERROR_SHARING_VIOLATION:
	case ERROR_LOCK_VIOLATION:
		errno = EACCES;
		break;
	case ERROR_FILE_EXISTS:
	case ERROR_ALREADY_EXISTS:
		errno = EEXIST;
		break;
	case ERROR_DISK_FULL:
		errno = ENOSPC;
		break;
	default:
		errno = EIO;
	}
}

int aps_file_sync(int fd)
{
	return _commit(fd);
}

void aps_dir_sync(const char *dir)
{
	/* NTFS journals its directories; the moves below write through */
	(void)dir;
}

int aps_file_replace(const char *from, const char *to)
{
	if (MoveFileExA(from, to, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
		return APS_OK;
	set_errno(GetLastError());
	return APS_ERR_IO;
}

int aps_file_publish(const char *tmp, const char *path)
{
	DWORD e;

	/* without MOVEFILE_REPLACE_EXISTING the move fails if path exists */
	if (MoveFileExA(tmp, path, MOVEFILE_WRITE_THROUGH))
		return APS_OK;
	e = GetLastError();
	set_errno(e);
	return e == ERROR_ALREADY_EXISTS || e == ERROR_FILE_EXISTS ? APS_ERR_EXISTS : APS_ERR_IO;
}

int aps_file_stamp(const char *path, int64_t *size, int64_t *mtime_ns)
{
	WIN32_FILE_ATTRIBUTE_DATA a;
	DWORD e;

	if (!GetFileAttributesExA(path, GetFileExInfoStandard, &a)) {
		e = GetLastError();
		set_errno(e);
		return e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND ? APS_ERR_NOTFOUND
									     : APS_ERR_IO;
	}
	*size = (int64_t)(((uint64_t)a.nFileSizeHigh << 32) | a.nFileSizeLow);
	/* 100 ns ticks since 1601 */
	*mtime_ns = (int64_t)((((uint64_t)a.ftLastWriteTime.dwHighDateTime << 32) |
			       a.ftLastWriteTime.dwLowDateTime) -
			      116444736000000000ULL) *
		    100;
	return APS_OK;
}

int aps_file_private(int fd, int mode)
{
	/* the file inherits its directory's access list (aps_dir_private) */
	(void)fd;
	(void)mode;
	return APS_OK;
}

/* The access list of a private directory: SYSTEM, Administrators and this
 * process's user, inherited by what is made in it; nothing from above. */
static int private_sddl(char *out, size_t len)
{
	HANDLE tok = NULL;
	char buf[256], *sid = NULL;
	DWORD n = 0;
	int ok;

	if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok))
		return -1;
	ok = GetTokenInformation(tok, TokenUser, buf, sizeof(buf), &n) &&
	     ConvertSidToStringSidA(((TOKEN_USER *)buf)->User.Sid, &sid);
	CloseHandle(tok);
	if (!ok)
		return -1;
	snprintf(out, len, "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;%s)", sid);
	LocalFree(sid);
	return 0;
}

int aps_dir_private(const char *dir, char *err, size_t errlen)
{
	PSECURITY_DESCRIPTOR sd = NULL;
	BOOL present = FALSE, defaulted = FALSE;
	PACL dacl = NULL;
	char sddl[512];
	DWORD e;

	if (aps_mkdir_p(dir, 0700)) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return APS_ERR_IO;
	}
	if (private_sddl(sddl, sizeof(sddl)) ||
	    !ConvertStringSecurityDescriptorToSecurityDescriptorA(sddl, SDDL_REVISION_1, &sd,
								   NULL) ||
	    !GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted)) {
		snprintf(err, errlen, "cannot make the access list of %s (error %lu)", dir,
			 (unsigned long)GetLastError());
		LocalFree(sd);
		return APS_ERR_IO;
	}
	e = SetNamedSecurityInfoA((char *)dir, SE_FILE_OBJECT,
				  DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
				  NULL, NULL, dacl, NULL);
	LocalFree(sd);
	if (e != ERROR_SUCCESS) {
		snprintf(err, errlen, "cannot restrict %s to its owner, SYSTEM and Administrators "
				      "(error %lu)",
			 dir, (unsigned long)e);
		return APS_ERR_IO;
	}
	return APS_OK;
}

/* Wine keeps no access lists on files: it shows every file readable by
 * Everyone, whatever was set. */
static int under_wine(void)
{
	HMODULE ntdll = GetModuleHandleA("ntdll.dll");

	return ntdll && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

int aps_path_open_to_others(const char *path, char *why, size_t whylen)
{
	static const WELL_KNOWN_SID_TYPE others[] = {WinWorldSid, WinBuiltinUsersSid,
						     WinAuthenticatedUserSid, WinInteractiveSid};
	static const char *const names[] = {"Everyone", "Users", "Authenticated Users",
					    "INTERACTIVE"};
	const DWORD reads = GENERIC_READ | GENERIC_ALL | FILE_READ_DATA;
	PSECURITY_DESCRIPTOR sd = NULL;
	PACL dacl = NULL;
	ACCESS_ALLOWED_ACE *ace;
	DWORD e, i;
	size_t k;
	int open = 0;

	if (under_wine()) {
		snprintf(why, whylen, "%s: wine keeps no access lists on files", path);
		return -1;
	}
	e = GetNamedSecurityInfoA(path, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL,
				  &dacl, NULL, &sd);
	if (e != ERROR_SUCCESS) {
		snprintf(why, whylen, "%s: cannot read its access list (error %lu)", path,
			 (unsigned long)e);
		return -1;
	}
	if (!dacl) {
		snprintf(why, whylen, "it has no access list at all (everyone may use it)");
		open = 1;
	}
	for (i = 0; dacl && !open && i < dacl->AceCount; i++) {
		if (!GetAce(dacl, i, (void **)&ace) || ace->Header.AceType != ACCESS_ALLOWED_ACE_TYPE ||
		    !(ace->Mask & reads) || (ace->Header.AceFlags & INHERIT_ONLY_ACE))
			continue;
		for (k = 0; k < APS_ARRAY_LEN(others); k++)
			if (IsWellKnownSid((PSID)&ace->SidStart, others[k])) {
				snprintf(why, whylen, "%s may read it", names[k]);
				open = 1;
				break;
			}
	}
	LocalFree(sd);
	if (open) {
		size_t n = strlen(why);

		snprintf(why + n, whylen - n,
			 "; run `icacls \"%s\" /inheritance:r /grant:r SYSTEM:(OI)(CI)F "
			 "Administrators:(OI)(CI)F`",
			 path);
	}
	return open;
}

int aps_path_sep(char c)
{
	return c == '/' || c == '\\';
}

typedef LONG(WINAPI *rtl_get_version_fn)(OSVERSIONINFOW *);

void aps_plat_os(char *out, size_t len)
{
	OSVERSIONINFOW v = {.dwOSVersionInfoSize = sizeof(v)};
	SYSTEM_INFO si;
	HMODULE ntdll = GetModuleHandleA("ntdll.dll");
	rtl_get_version_fn get = NULL;
	const char *arch;

	/* GetVersionEx lies to programs without a compatibility manifest;
	 * RtlGetVersion does not */
	if (ntdll)
		get = (rtl_get_version_fn)(void (*)(void))GetProcAddress(ntdll, "RtlGetVersion");
	if (!get || get(&v))
		v.dwMajorVersion = v.dwMinorVersion = v.dwBuildNumber = 0;
	GetNativeSystemInfo(&si);
	arch = si.wProcessorArchitecture == PROCESSOR_ARCHITECTURE_AMD64   ? "x86_64"
	       : si.wProcessorArchitecture == PROCESSOR_ARCHITECTURE_ARM64 ? "arm64"
	       : si.wProcessorArchitecture == PROCESSOR_ARCHITECTURE_INTEL ? "x86"
									   : "unknown";
	snprintf(out, len, "Windows %lu.%lu.%lu %s", (unsigned long)v.dwMajorVersion,
		 (unsigned long)v.dwMinorVersion, (unsigned long)v.dwBuildNumber, arch);
}

void aps_plat_hostname(char *out, size_t len)
{
	DWORD n = (DWORD)len;

	if (!len)
		return;
	if (!GetComputerNameExA(ComputerNameDnsHostname, out, &n))
		snprintf(out, len, "unknown");
}

int aps_plat_utc_offset(time_t t)
{
	struct tm tm;
	time_t as_utc;

	/* the local wall time read as if it were UTC, minus the instant */
	if (localtime_s(&tm, &t))
		return 0;
	as_utc = _mkgmtime(&tm);
	return as_utc == (time_t)-1 ? 0 : (int)((as_utc - t) / 60);
}

const char *aps__win_data_dir(void)
{
	static char dir[MAX_PATH + 8];
	char pd[MAX_PATH];

	/* the shell's folder, not %ProgramData%: a service's environment may
	 * name another (wine's names C:\users\Public) */
	if (!dir[0]) {
		if (SHGetFolderPathA(NULL, CSIDL_COMMON_APPDATA, NULL, SHGFP_TYPE_CURRENT, pd) != S_OK)
			snprintf(pd, sizeof(pd), "C:\\ProgramData");
		snprintf(dir, sizeof(dir), "%s\\apsync", pd);
	}
	return dir;
}

int aps_sock_timeout(int fd, int ms)
{
	DWORD t = (DWORD)ms;

	return setsockopt((SOCKET)fd, SOL_SOCKET, SO_RCVTIMEO, (const char *)&t, sizeof(t)) ||
			       setsockopt((SOCKET)fd, SOL_SOCKET, SO_SNDTIMEO, (const char *)&t,
					  sizeof(t))
		       ? APS_ERR_IO
		       : APS_OK;
}

/* ---- what mingw-w64's C runtime lacks (compat.h) ---- */

char *strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = malloc(len + 1);

	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

int unsetenv(const char *name)
{
	return _putenv_s(name, "") ? -1 : 0;
}

char *mkdtemp(char *tmpl)
{
	static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	size_t n = strlen(tmpl), i;
	unsigned char r[6];
	int tries;

	if (n < 6 || strcmp(tmpl + n - 6, "XXXXXX")) {
		errno = EINVAL;
		return NULL;
	}
	for (tries = 0; tries < 100; tries++) {
		if (aps_random(r, sizeof(r)))
			return NULL;
		for (i = 0; i < 6; i++)
			tmpl[n - 6 + i] = digits[r[i] % (sizeof(digits) - 1)];
		if (!_mkdir(tmpl))
			return tmpl;
		if (errno != EEXIST)
			return NULL;
	}
	return NULL;
}

char *strcasestr(const char *haystack, const char *needle)
{
	size_t n = strlen(needle);

	for (; *haystack; haystack++)
		if (!_strnicmp(haystack, needle, n))
			return (char *)haystack;
	return n ? NULL : (char *)haystack;
}
