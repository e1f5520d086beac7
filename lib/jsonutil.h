/* jsonutil.h: JSON strings from untrusted bytes (NUL, control bytes, bad UTF-8) */
#ifndef JSONUTIL_H
#define JSONUTIL_H

#include <stddef.h>
#include <jansson.h>

#include "buf.h"

/*
 * A malloc'd copy of s[0..len) in which every byte sequence that is not
 * valid UTF-8 is replaced by U+FFFD.  The copy is NUL-terminated and its
 * length goes to *outlen.  NULL only when out of memory.
 */
char	*json_utf8_clean(const char *, size_t, size_t *);
/* A JSON string for any bytes; NULL only when out of memory. */
json_t	*json_bytes(const char *, size_t);
json_t	*json_cstr(const char *);	/* json_null() for NULL */
/*
 * Append s[0..len) as the inside of a JSON string literal (no quotes):
 * control bytes escaped, invalid UTF-8 replaced by U+FFFD.  0, or -1 if
 * the buffer could not take it (out of memory or at its bound).
 */
int	 json_buf_escape(struct buf *, const char *, size_t);
/* The same with the quotes around it. */
int	 json_buf_string(struct buf *, const char *, size_t);
/*
 * 1 if s[0..len) is exactly one JSON value (any type) that jansson
 * accepts (valid UTF-8, no \u0000, no lone surrogate, integers within
 * 64 bits, finite reals) nested at most maxdepth deep; else 0.
 */
int	 json_valid(const char *, size_t, int);
/*
 * json_valid(), and if it is, its raw CR, LF and TAB (JSON allows them
 * only between tokens) become spaces in place, so that the value can
 * stand inside one log line as it is.
 */
int	 json_oneline(char *, size_t, int);

#endif
