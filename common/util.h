/* Small helpers shared by both programs: time, randomness, encodings, hashes,
 * bounded number parsing and files. */
#ifndef APS_UTIL_H
#define APS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define APS_FREE(p)                                                            \
	do {                                                                   \
		free(p);                                                       \
		(p) = NULL;                                                    \
	} while (0)

#define APS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Wall clock and monotonic clock, in milliseconds. */
int64_t aps_now_ms(void);
int64_t aps_mono_ms(void);

/* "2026-11-22T10:11:12.345Z"; out must hold APS_TIME_LEN bytes. */
#define APS_TIME_LEN 32
char *aps_time_iso(int64_t ms, char out[APS_TIME_LEN]);
/* Parses "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.fff]]" with "Z" or "±HH:MM"
 * (no zone means UTC) into milliseconds since the epoch. */
int aps_time_parse(const char *s, int64_t *ms);

/* ERP-local times keep their offset: "2024-05-01T10:22:33.120-05:00".
 * Parses such a text into the instant (ms) and the offset (minutes east of
 * UTC; 0 for "Z" or no zone). */
int aps_time_parse_offset(const char *s, int64_t *ms, int *offset_min);
/* "+HH:MM" / "-HH:MM" (at most 14 hours) → minutes east of UTC. */
int aps_utc_offset_parse(const char *s, int *min);
/* Formats an instant at an offset; out holds APS_TIME_LEN bytes. */
char *aps_time_format_offset(int64_t ms, int offset_min, char out[APS_TIME_LEN]);

/* Cryptographically strong random bytes (OpenSSL). */
int aps_random(void *buf, size_t n);
/* Lower-case hex; out holds 2n+1. */
void aps_hex(const void *p, size_t n, char *out);
/* base64url without padding; out holds 4*((n+2)/3)+1. */
void aps_b64url(const void *p, size_t n, char *out);
void aps_sha256(const void *p, size_t n, uint8_t out[32]);
/* Compares in constant time; 1 when equal. */
int aps_ct_equal(const void *a, const void *b, size_t n);
void aps_wipe(void *p, size_t n);

/* Whole-string number parsing within [min, max]; no atoi. */
int aps_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Reads a whole file of at most `max` bytes; *out is NUL-terminated and owned
 * by the caller. */
int aps_read_file(const char *path, size_t max, char **out, size_t *len);
/* Writes all of p to fd, again after EINTR or a short write; -1 with errno
 * set on failure. */
int aps_write_all(int fd, const void *p, size_t len);
/* Writes via a temporary file and rename, with the given mode. */
int aps_write_file(const char *path, const void *data, size_t len, mode_t mode);
int aps_mkdir_p(const char *path, mode_t mode);

/* Joins dir and name into out; APS_ERR_RANGE if it does not fit. */
int aps_path_join(char *out, size_t outlen, const char *dir, const char *name);

/* 1 if host is a loopback name or address (localhost, 127.0.0.0/8, ::1). */
int aps_host_is_loopback(const char *host);

#endif
