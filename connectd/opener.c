/* opener.c: a small root process, kept from before the privilege drop, that reopens the access logs */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectd.h"

/*
 * Started as root with cache_effective_user set, connectd opens its logs
 * and then becomes that user, who usually may not create files in the
 * log directory (/var/log/connectd is root's).  SIGUSR1 must still
 * reopen the logs after logrotate or mv, as Squid's do.  So before the
 * drop connectd forks this opener: it stays root, holds nothing but one
 * end of a socketpair, and opens, on request, only the access_log paths
 * of the configuration connectd started with (O_NOFOLLOW, so that a link
 * planted in a writable directory cannot send it elsewhere), handing the
 * descriptor back with SCM_RIGHTS.  It exits when connectd closes its
 * end.  This is OpenBSD's privilege separation in the small.
 */

#define OPENER_FLAGS	(O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC)
#define OPENER_MODE	0640

static int		 opener_sock = -1;
static pthread_mutex_t	 opener_mtx = PTHREAD_MUTEX_INITIALIZER;

/*
 * Open path for appending, as connectd's access logs are: O_NONBLOCK
 * only for open(2) itself, so that a FIFO with no reader fails (ENXIO)
 * instead of hanging; writes then block, in a writer thread.
 */
static int
opener_open_file(const char *path, int extra)
{
	int	 fd, fl;

	if ((fd = open(path, OPENER_FLAGS | O_NONBLOCK | extra,
	    OPENER_MODE)) == -1)
		return -1;
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The opener's reply: an errno (0: success, the descriptor attached). */
static void
opener_reply(int sock, int error, int fd)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct cmsghdr	*c;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = &error;
	iov.iov_len = sizeof(error);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd != -1) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while (sendmsg(sock, &msg, MSG_NOSIGNAL) == -1 && errno == EINTR)
		;
}

/* The opener itself: one request per datagram, until connectd goes. */
static __attribute__((noreturn)) void
opener_main(int sock, char **paths, size_t npaths)
{
	char	 path[PATH_MAX + 1];
	ssize_t	 n;
	size_t	 i;
	int	 fd, error;

	for (;;) {
		if ((n = recv(sock, path, sizeof(path) - 1, 0)) == -1) {
			if (errno == EINTR)
				continue;
			_exit(0);
		}
		if (n == 0)
			_exit(0);
		path[n] = '\0';
		for (i = 0; i < npaths; i++)
			if (strcmp(paths[i], path) == 0)
				break;
		fd = -1;
		error = EPERM;
		if (i < npaths)
			error = (fd = opener_open_file(path, O_NOFOLLOW)) == -1 ?
			    errno : 0;
		opener_reply(sock, error, fd);
		if (fd != -1)
			close(fd);
	}
}

/*
 * Called as root before the privilege drop, and before any thread is
 * started: fork the opener for cf's access_log files if connectd will
 * drop privileges.  0, or -1 with a message in err.
 */
int
opener_start(const struct conf *cf, char *err, size_t errlen)
{
	struct access_log_conf	*alc;
	char			**paths;
	size_t			 n = 0;
	pid_t			 pid;
	int			 sv[2], fd;

	if (geteuid() != 0 || cf->c_effective_user == NULL ||
	    strcmp(cf->c_effective_user, "root") == 0)
		return 0;
	TAILQ_FOREACH(alc, &cf->c_access_logs, alc_entry)
		n++;
	if ((paths = calloc(n + 1, sizeof(*paths))) == NULL) {
		snprintf(err, errlen, "log opener: %s", strerror(errno));
		return -1;
	}
	n = 0;
	TAILQ_FOREACH(alc, &cf->c_access_logs, alc_entry)
		if (alc->alc_kind == ALK_STDIO &&
		    strcmp(alc->alc_path, "/dev/stdout") != 0 &&
		    strcmp(alc->alc_path, "/dev/stderr") != 0)
			paths[n++] = alc->alc_path;
	if (n == 0) {
		free(paths);
		return 0;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		snprintf(err, errlen, "log opener: socketpair: %s",
		    strerror(errno));
		free(paths);
		return -1;
	}
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "log opener: fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		free(paths);
		return -1;
	}
	if (pid == 0) {
		/* nothing of connectd's but its end and stdio */
		for (fd = STDERR_FILENO + 1; fd < 1024; fd++)
			if (fd != sv[1])
				close(fd);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGHUP, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGUSR1, SIG_IGN);
		opener_main(sv[1], paths, n);
	}
	close(sv[1]);
	free(paths);
	opener_sock = sv[0];
	log_debug("log opener %ld started for %zu files", (long)pid, n);
	return 0;
}

/* Ask the opener; -1 with errno (EPERM: not one of its files). */
static int
opener_ask(const char *path)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct cmsghdr	*c;
	ssize_t		 n;
	int		 error = EIO, fd = -1;

	pthread_mutex_lock(&opener_mtx);
	if (send(opener_sock, path, strlen(path), MSG_NOSIGNAL) == -1) {
		error = errno;
		goto out;
	}
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = &error;
	iov.iov_len = sizeof(error);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	while ((n = recvmsg(opener_sock, &msg, MSG_CMSG_CLOEXEC)) == -1 &&
	    errno == EINTR)
		;
	if (n != (ssize_t)sizeof(error)) {
		error = n == -1 ? errno : EPIPE;
		goto out;
	}
	if (error == 0 && (c = CMSG_FIRSTHDR(&msg)) != NULL &&
	    c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	else if (error == 0)
		error = EIO;
 out:
	pthread_mutex_unlock(&opener_mtx);
	if (fd == -1)
		errno = error;
	return fd;
}

/*
 * Open an access log for appending.  After the privilege drop the files
 * connectd started with are opened by the opener, as root; others (a
 * reload's new paths), or all of them when there is no opener, as the
 * current user.  Safe from any thread.  Returns the descriptor, or -1
 * with errno (ENXIO: a FIFO without a reader).
 */
int
opener_open(const char *path)
{
	int	 fd;

	/* not one of its files, or the opener is gone: as ourselves */
	if (opener_sock != -1 && ((fd = opener_ask(path)) != -1 ||
	    (errno != EPERM && errno != EPIPE && errno != ECONNRESET)))
		return fd;
	return opener_open_file(path, 0);
}
