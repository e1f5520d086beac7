/* net.h: non-blocking descriptor I/O shared by the daemons (anet-style: no daemon state, the caller owns the error) */
#ifndef NET_H
#define NET_H

#include <stddef.h>

/*
 * Write as much of p[0..n) to the non-blocking fd as it takes now,
 * retrying EINTR.  Returns the bytes written, which is n unless the fd
 * would block or failed.  *err is 0 if it went on until done or until it
 * would block (EAGAIN), else the errno that stopped it (EPIPE for a
 * write of 0 bytes); the bytes written before a failure are counted.
 */
size_t	 net_write(int fd, const void *p, size_t n, int *err);

/*
 * Read and discard what the non-blocking fd holds, retrying EINTR: the
 * lingering close's read side (a peer that still sends after our reply
 * would otherwise get an RST that can destroy the reply in flight).
 * Returns 0 when the fd would block (more may come), -1 at EOF or on an
 * error: time to close it.
 */
int	 net_drain(int fd);

#endif
