/* basic_file_auth.c: a Squid basic auth helper checking user:hash lines with crypt(3) */
/*
 * usage: basic_file_auth FILE
 *
 * As Squid's basic_ncsa_auth (helpers/basic_auth/NCSA), for connectd's
 * or Squid's `auth_param basic program`: each request line on stdin is
 * "[ID ]USER PASSWORD", both URL-escaped (RFC 1738, as Squid sends
 * them); the answer is "[ID ]OK", "[ID ]ERR message=..." or, when the
 * file cannot be read, "[ID ]BH message=...".  A channel ID is there when
 * the line has three fields (auth_param basic concurrency N, N > 0).
 *
 * FILE has one "user:hash" per line (htpasswd's format; '#' starts a
 * comment).  The hash is checked with libcrypt's crypt_r(), so what it
 * supports works: bcrypt ($2b$, $2y$, $2a$: htpasswd -B, Python's
 * crypt.METHOD_BLOWFISH) and SHA-256-crypt / SHA-512-crypt ($5$, $6$:
 * `openssl passwd -5`, mkpasswd -m sha-256).  Weaker schemes (DES, MD5,
 * {SHA}) are refused when the file is read, with a line on stderr that
 * names the user and the line, never the hash.  The file is read again
 * when its inode, size or mtime changes, at the next request.
 *
 * No password or hash is ever written anywhere; decoded passwords are
 * wiped after each check.
 */
#include <sys/stat.h>

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define USER_MAX	256
#define LINE_MAX_LEN	4096

struct entry {
	char	*user;
	char	*hash;
};

static struct entry	*entries;
static size_t		 nentries;
static struct stat	 file_st;
static int		 file_ok;

static void
entries_free(void)
{
	size_t	i;

	for (i = 0; i < nentries; i++) {
		free(entries[i].user);
		explicit_bzero(entries[i].hash, strlen(entries[i].hash));
		free(entries[i].hash);
	}
	free(entries);
	entries = NULL;
	nentries = 0;
}

static int
hash_supported(const char *h)
{
	return strncmp(h, "$2b$", 4) == 0 || strncmp(h, "$2y$", 4) == 0 ||
	    strncmp(h, "$2a$", 4) == 0 || strncmp(h, "$5$", 3) == 0 ||
	    strncmp(h, "$6$", 3) == 0;
}

/* (Re)read path; 0, or -1 with the old entries gone (answers are BH). */
static int
load(const char *path)
{
	struct entry	*e;
	FILE		*fp;
	char		*line = NULL, *colon, *end;
	size_t		 cap = 0, lineno = 0;
	ssize_t		 n;

	entries_free();
	file_ok = 0;
	if ((fp = fopen(path, "r")) == NULL) {
		fprintf(stderr, "basic_file_auth: %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &file_st) == -1) {
		fclose(fp);
		return -1;
	}
	while ((n = getline(&line, &cap, fp)) != -1) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if ((colon = strchr(line, ':')) == NULL || colon == line) {
			fprintf(stderr, "basic_file_auth: %s:%zu: not "
			    "user:hash; line ignored\n", path, lineno);
			continue;
		}
		*colon = '\0';
		/* htpasswd may add ":comment" after the hash */
		if ((end = strchr(colon + 1, ':')) != NULL)
			*end = '\0';
		if (!hash_supported(colon + 1)) {
			fprintf(stderr, "basic_file_auth: %s:%zu: user '%.64s': "
			    "not a bcrypt ($2b$) or SHA-crypt ($5$, $6$) hash; "
			    "user ignored\n", path, lineno, line);
			continue;
		}
		if ((e = realloc(entries, (nentries + 1) * sizeof(*e))) ==
		    NULL) {
			fclose(fp);
			free(line);
			return -1;
		}
		entries = e;
		if ((e[nentries].user = strdup(line)) == NULL ||
		    (e[nentries].hash = strdup(colon + 1)) == NULL) {
			free(e[nentries].user);
			fclose(fp);
			free(line);
			return -1;
		}
		nentries++;
	}
	if (line != NULL)
		explicit_bzero(line, cap);
	free(line);
	fclose(fp);
	file_ok = 1;
	return 0;
}

/* Read the file again if it changed since; a vanished file keeps BH. */
static void
refresh(const char *path)
{
	struct stat	st;

	if (stat(path, &st) == -1) {
		if (file_ok)
			fprintf(stderr, "basic_file_auth: %s: %s\n", path,
			    strerror(errno));
		entries_free();
		file_ok = 0;
		return;
	}
	if (file_ok && st.st_ino == file_st.st_ino &&
	    st.st_size == file_st.st_size &&
	    st.st_mtim.tv_sec == file_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == file_st.st_mtim.tv_nsec)
		return;
	(void)load(path);
}

/* RFC 1738 %XX unescaping in place, as Squid's rfc1738_unescape(). */
static void
unescape(char *s)
{
	char	*o = s;
	int	 hi, lo;

	for (; *s != '\0'; s++) {
		if (s[0] == '%' && isxdigit((unsigned char)s[1]) &&
		    isxdigit((unsigned char)s[2])) {
			hi = isdigit((unsigned char)s[1]) ? s[1] - '0' :
			    tolower((unsigned char)s[1]) - 'a' + 10;
			lo = isdigit((unsigned char)s[2]) ? s[2] - '0' :
			    tolower((unsigned char)s[2]) - 'a' + 10;
			*o++ = (char)(hi * 16 + lo);
			s += 2;
		} else
			*o++ = *s;
	}
	*o = '\0';
}

/* a and b equal, in a time that depends only on their lengths */
static int
same(const char *a, const char *b)
{
	size_t		 la = strlen(a), lb = strlen(b), i;
	unsigned char	 d = la != lb;

	for (i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* "OK", or the reason it is not */
static const char *
check(const char *user, const char *pass)
{
	static struct crypt_data	 cd;
	const char			*out;
	size_t				 i;

	if (!file_ok)
		return "BH message=\"the password file cannot be read\"";
	for (i = 0; i < nentries; i++)
		if (strcmp(entries[i].user, user) == 0)
			break;
	if (i == nentries)
		return "ERR message=\"unknown user or wrong password\"";
	memset(&cd, 0, sizeof(cd));
	out = crypt_r(pass, entries[i].hash, &cd);
	if (out == NULL || out[0] == '*') {
		explicit_bzero(&cd, sizeof(cd));
		return "BH message=\"the hash cannot be checked\"";
	}
	i = same(out, entries[i].hash);
	explicit_bzero(&cd, sizeof(cd));
	return i ? "OK" : "ERR message=\"unknown user or wrong password\"";
}

int
main(int argc, char **argv)
{
	char	*line = NULL, *f[3], *p;
	size_t	 cap = 0, nf;
	ssize_t	 n;

	if (argc != 2) {
		fprintf(stderr, "usage: basic_file_auth FILE\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	(void)load(argv[1]);
	while ((n = getline(&line, &cap, stdin)) != -1) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		for (nf = 0, p = strtok(line, " "); p != NULL && nf < 3;
		    p = strtok(NULL, " "))
			f[nf++] = p;
		refresh(argv[1]);
		if (nf == 3 && strspn(f[0], "0123456789") == strlen(f[0])) {
			unescape(f[1]);
			unescape(f[2]);
			printf("%s %s\n", f[0], check(f[1], f[2]));
		} else if (nf == 2) {
			unescape(f[0]);
			unescape(f[1]);
			printf("%s\n", check(f[0], f[1]));
		} else
			printf("ERR message=\"expected: user password\"\n");
		explicit_bzero(line, cap);
	}
	free(line);
	entries_free();
	return 0;
}
