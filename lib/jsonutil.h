/* jsonutil.h: JSON strings from untrusted bytes (NUL, control bytes, bad UTF-8) */
#ifndef JSONUTIL_H
#define JSONUTIL_H

#include <stddef.h>
#include <jansson.h>

/*
 * A malloc'd copy of s[0..len) in which every byte sequence that is not
 * valid UTF-8 is replaced by U+FFFD.  The copy is NUL-terminated and its
 * length goes to *outlen.  NULL only when out of memory.
 */
char	*json_utf8_clean(const char *, size_t, size_t *);
/* A JSON string for any bytes; NULL only when out of memory. */
json_t	*json_bytes(const char *, size_t);
json_t	*json_cstr(const char *);	/* json_null() for NULL */
/* Append s as the inside of a JSON string literal (no quotes) to a dynamic buffer. */
struct jbuf {
	char	*jb_data;
	size_t	 jb_len;
	size_t	 jb_cap;
};
int	 jbuf_add(struct jbuf *, const char *, size_t);
int	 jbuf_addc(struct jbuf *, char);
int	 jbuf_add_jsonesc(struct jbuf *, const char *, size_t);
void	 jbuf_free(struct jbuf *);

#endif
