#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

int aps_buf_reserve(struct aps_buf *b, size_t extra)
{
	size_t want, cap;
	uint8_t *p;

	if (extra > SIZE_MAX / 2 - b->len)
		return APS_ERR_NOMEM;
	want = b->len + extra;
	if (want <= b->cap)
		return APS_OK;
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return APS_ERR_NOMEM;
	b->data = p;
	b->cap = cap;
	return APS_OK;
}

int aps_buf_append(struct aps_buf *b, const void *p, size_t n)
{
	int rc;

	if (!n)
		return APS_OK;
	rc = aps_buf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return APS_OK;
}

int aps_buf_append_str(struct aps_buf *b, const char *s)
{
	return aps_buf_append(b, s, strlen(s));
}

int aps_buf_printf(struct aps_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return APS_ERR_INVAL;
	rc = aps_buf_reserve(b, (size_t)n + 1);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return APS_OK;
}

int aps_buf_terminate(struct aps_buf *b)
{
	int rc = aps_buf_reserve(b, 1);

	if (rc)
		return rc;
	b->data[b->len] = '\0';
	return APS_OK;
}

void aps_buf_free(struct aps_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
