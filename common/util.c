#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "err.h"
#include "plat.h"
#include "util.h"

int64_t aps_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t aps_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *aps_time_iso(int64_t ms, char out[APS_TIME_LEN])
{
	time_t secs = (time_t)(ms / 1000);
	int frac = (int)(ms % 1000);
	struct tm tm;

	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	gmtime_r(&secs, &tm);
	size_t n = strftime(out, APS_TIME_LEN - 6, "%Y-%m-%dT%H:%M:%S", &tm);

	snprintf(out + n, APS_TIME_LEN - n, ".%03dZ", frac);
	return out;
}

/* Reads exactly n digits. */
static int digits(const char **s, int n, int *out)
{
	int v = 0;

	while (n--) {
		if (**s < '0' || **s > '9')
			return APS_ERR_INVAL;
		v = v * 10 + (*(*s)++ - '0');
	}
	*out = v;
	return APS_OK;
}

int aps_time_parse(const char *s, int64_t *ms)
{
	int off;

	return aps_time_parse_offset(s, ms, &off);
}

char *aps_time_format_offset(int64_t ms, int offset_min, char out[APS_TIME_LEN])
{
	int64_t local = ms + (int64_t)offset_min * 60000;
	time_t secs = (time_t)(local / 1000);
	int frac = (int)(local % 1000), a = offset_min < 0 ? -offset_min : offset_min;
	struct tm tm;
	size_t n;

	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	gmtime_r(&secs, &tm);
	n = strftime(out, APS_TIME_LEN - 11, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, APS_TIME_LEN - n, ".%03d%c%02d:%02d", frac, offset_min < 0 ? '-' : '+',
		 (a / 60) % 100, a % 60);
	return out;
}

int aps_time_parse_offset(const char *s, int64_t *ms, int *offset_min)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, oh = 0, om = 0, sign = 0, n;
	struct tm tm;
	time_t t;

	if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
	    digits(&s, 2, &d))
		return APS_ERR_INVAL;
	if (*s == 'T' || *s == ' ') {
		s++;
		if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi))
			return APS_ERR_INVAL;
		if (*s == ':') {
			s++;
			if (digits(&s, 2, &sec))
				return APS_ERR_INVAL;
			if (*s == '.') {
				s++;
				for (n = 0; *s >= '0' && *s <= '9'; s++, n++)
					if (n < 3)
						frac = frac * 10 + (*s - '0');
				if (!n)
					return APS_ERR_INVAL;
				for (; n < 3; n++)
					frac *= 10;
			}
		}
		if (*s == 'Z') {
			s++;
		} else if (*s == '+' || *s == '-') {
			sign = *s++ == '-' ? -1 : 1;
			if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om))
				return APS_ERR_INVAL;
		}
	}
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
	    oh > 23 || om > 59)
		return APS_ERR_INVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return APS_ERR_INVAL;
	*ms = ((int64_t)t - sign * (oh * 3600 + om * 60)) * 1000 + frac;
	*offset_min = sign * (oh * 60 + om);
	return APS_OK;
}

int aps_random(void *buf, size_t n)
{
	return RAND_bytes(buf, (int)n) == 1 ? APS_OK : APS_ERR_INTERNAL;
}

void aps_hex(const void *p, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[2 * n] = '\0';
}

void aps_b64url(const void *p, size_t n, char *out)
{
	int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n), i;

	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
}

void aps_sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 32;

	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

int aps_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

void aps_wipe(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}

int aps_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
		return APS_ERR_INVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end)
		return APS_ERR_INVAL;
	if (errno == ERANGE || v < min || v > max)
		return APS_ERR_RANGE;
	*out = v;
	return APS_OK;
}

int aps_read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd, rc = APS_ERR_IO;
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? APS_ERR_NOTFOUND : APS_ERR_IO;
	if (fstat(fd, &st))
		goto out;
	if ((uint64_t)st.st_size > max) {
		rc = APS_ERR_RANGE;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = APS_ERR_NOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	buf = NULL;
	if (len)
		*len = got;
	rc = APS_OK;
out:
	free(buf);
	close(fd);
	return rc;
}

int aps_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int aps_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[4096];
	int fd, rc = APS_ERR_IO;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return APS_ERR_RANGE;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return APS_ERR_IO;
	if (aps_file_private(fd, (int)mode) || aps_write_all(fd, data, len))
		goto out;
	if (aps_file_sync(fd))
		goto out;
	rc = APS_OK;
out:
	close(fd);
	if (rc == APS_OK)
		rc = aps_file_replace(tmp, path);
	if (rc)
		unlink(tmp);
	return rc;
}

int aps_mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t len = strlen(path), i;

	if (len == 0 || len >= sizeof(buf))
		return APS_ERR_RANGE;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		char sep = buf[i];
		struct stat st;

		if (!aps_path_sep(sep) && sep != '\0')
			continue;
		buf[i] = '\0';
		/* "C:" on Windows is no directory to make, but is one */
		if (mkdir(buf, mode) && errno != EEXIST && (stat(buf, &st) || !S_ISDIR(st.st_mode)))
			return APS_ERR_IO;
		buf[i] = sep;
	}
	return APS_OK;
}

int aps_path_join(char *out, size_t outlen, const char *dir, const char *name)
{
	int n = snprintf(out, outlen, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= outlen ? APS_ERR_RANGE : APS_OK;
}

int aps_host_is_loopback(const char *host)
{
	return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1") ||
	       !strcmp(host, "[::1]");
}

/* "+HH:MM" / "-HH:MM" → minutes. */
int aps_utc_offset_parse(const char *s, int *min)
{
	if (strlen(s) != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':' || s[1] < '0' ||
	    s[1] > '1' || s[2] < '0' || s[2] > '9' || s[4] < '0' || s[4] > '5' || s[5] < '0' ||
	    s[5] > '9')
		return APS_ERR_INVAL;
	*min = ((s[1] - '0') * 10 + (s[2] - '0')) * 60 + (s[4] - '0') * 10 + (s[5] - '0');
	if (*min > 14 * 60)
		return APS_ERR_INVAL;
	if (s[0] == '-')
		*min = -*min;
	return APS_OK;
}
