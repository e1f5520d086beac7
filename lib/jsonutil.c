/* jsonutil.c: JSON strings from untrusted bytes (NUL, control bytes, bad UTF-8) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"

/* Length of the valid UTF-8 sequence at s, or 0 if it is not valid. */
static size_t
utf8_seqlen(const unsigned char *s, size_t len)
{
	uint32_t	 cp;
	size_t		 n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

char *
json_utf8_clean(const char *src, size_t len, size_t *outlen)
{
	const unsigned char	*s = (const unsigned char *)src;
	char			*out, *p;
	size_t			 i, n;

	/* worst case: every byte becomes the 3-byte U+FFFD */
	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	if ((out = malloc(len * 3 + 1)) == NULL)
		return NULL;
	p = out;
	for (i = 0; i < len; ) {
		if ((n = utf8_seqlen(s + i, len - i)) == 0) {
			memcpy(p, "\xef\xbf\xbd", 3);
			p += 3;
			i++;
			continue;
		}
		memcpy(p, s + i, n);
		p += n;
		i += n;
	}
	*p = '\0';
	if (outlen != NULL)
		*outlen = (size_t)(p - out);
	return out;
}

json_t *
json_bytes(const char *s, size_t len)
{
	json_t	*j;
	char	*clean;
	size_t	 cleanlen;

	if ((clean = json_utf8_clean(s, len, &cleanlen)) == NULL)
		return NULL;
	j = json_stringn_nocheck(clean, cleanlen);
	free(clean);
	return j;
}

json_t *
json_cstr(const char *s)
{
	if (s == NULL)
		return json_null();
	return json_bytes(s, strlen(s));
}

int
json_buf_escape(struct buf *b, const char *src, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*s = (const unsigned char *)src;
	const char		*e;
	char			 u[7];
	size_t			 i, n, run;

	/* runs that need no escape are copied whole */
	for (i = run = 0; i < len; i += n) {
		/* printable ASCII, most of what a line holds, at once */
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' &&
		    s[i] != '\\') {
			n = 1;
			continue;
		}
		if ((n = utf8_seqlen(s + i, len - i)) > 1 || (n == 1 &&
		    s[i] >= 0x20 && s[i] != 0x7f && s[i] != '"' &&
		    s[i] != '\\'))
			continue;
		if (n == 0) {
			e = "\xef\xbf\xbd";	/* U+FFFD */
			n = 1;
		} else if (s[i] == '"')
			e = "\\\"";
		else if (s[i] == '\\')
			e = "\\\\";
		else if (s[i] == '\n')
			e = "\\n";
		else if (s[i] == '\r')
			e = "\\r";
		else if (s[i] == '\t')
			e = "\\t";
		else {
			memcpy(u, "\\u00", 4);
			u[4] = hex[s[i] >> 4];
			u[5] = hex[s[i] & 0xf];
			u[6] = '\0';
			e = u;
		}
		if (buf_add(b, s + run, i - run) == -1 ||
		    buf_addstr(b, e) == -1)
			return -1;
		run = i + n;
	}
	return buf_add(b, s + run, len - run);
}

int
json_buf_string(struct buf *b, const char *s, size_t len)
{
	if (buf_addc(b, '"') == -1 || json_buf_escape(b, s, len) == -1 ||
	    buf_addc(b, '"') == -1)
		return -1;
	return 0;
}

/* The nesting depth of j: 0 for a scalar. */
static int
json_depth(json_t *j)
{
	const char	*key;
	json_t		*v;
	size_t		 i;
	int		 d, max = 0;

	if (json_is_object(j)) {
		json_object_foreach(j, key, v)
			if ((d = json_depth(v)) > max)
				max = d;
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			if ((d = json_depth(v)) > max)
				max = d;
	} else
		return 0;
	return max + 1;
}

int
json_valid(const char *s, size_t len, int maxdepth)
{
	json_error_t	 err;
	json_t		*j;
	int		 ok;

	if ((j = json_loadb(s, len, JSON_DECODE_ANY, &err)) == NULL)
		return 0;
	ok = json_depth(j) <= maxdepth;
	json_decref(j);
	return ok;
}

int
json_oneline(char *s, size_t len, int maxdepth)
{
	size_t	 i;

	if (!json_valid(s, len, maxdepth))
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\t')
			s[i] = ' ';
	return 1;
}
