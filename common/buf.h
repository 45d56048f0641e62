/* A growable byte buffer. The buffer owns data; aps_buf_free() releases it. */
#ifndef APS_BUF_H
#define APS_BUF_H

#include <stddef.h>
#include <stdint.h>

struct aps_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Makes room for `extra` more bytes. APS_ERR_NOMEM on failure. */
int aps_buf_reserve(struct aps_buf *b, size_t extra);
int aps_buf_append(struct aps_buf *b, const void *p, size_t n);
int aps_buf_append_str(struct aps_buf *b, const char *s);
int aps_buf_printf(struct aps_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Keeps the buffer NUL-terminated after its length (not counted in len). */
int aps_buf_terminate(struct aps_buf *b);
void aps_buf_free(struct aps_buf *b);

#endif
