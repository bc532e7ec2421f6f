/* SPDX-License-Identifier: MIT */
/*
 * Where a migration stream goes: `tcp:HOST:PORT` (HOST an IP address, [v6]
 * in brackets, or localhost), `unix:PATH`, `file:PATH`.
 *
 *  - tcp: plain TCP, for network namespaces on one machine; between hosts use
 *    --tls-creds DIR (migration/tls.c) -- whoever reaches the port hands the
 *    destination a VM.
 *  - unix: a unix stream socket; the guest-RAM memfd itself is passed
 *    (SCM_RIGHTS), no RAM byte is copied (the same host: binary upgrades).
 *  - file: the stream in a file (written by the source, read by --incoming).
 *
 * The destination listens and accepts exactly one connection.
 */
#ifndef HDVM_MIG_TRANSPORT_H
#define HDVM_MIG_TRANSPORT_H

#include <stddef.h>

#define MIG_UNIX_PATH_MAX	107	/* sun_path less its NUL */

#include "migration/stream.h"

enum mig_kind { MIG_TCP, MIG_UNIX, MIG_FILE };

struct mig_uri {
	enum mig_kind kind;
	char host[256];
	char port[16];
	char path[4096];	/* unix: at most sun_path's 107 bytes */
	/*
	 * --tls-hostname: the name the peer's certificate must carry (DNS SAN,
	 * or CN without one; an IP address matches an IP SAN), as QEMU's
	 * tls-hostname.  Empty: any certificate the CA signed.  Set by the
	 * caller after mig_uri_parse().
	 */
	char tls_hostname[256];
};

/* Syntax only; 0 or -EINVAL with why. */
int mig_uri_parse(const char *uri, struct mig_uri *u, char *why, size_t len);
/*
 * Source: connect (tcp, unix) or create the file.  tls_dir (tcp: only, else
 * NULL): --tls-creds, the handshake done here (migration/tls.h).
 */
int mig_connect(const struct mig_uri *u, const char *tls_dir, struct mig_io *io,
		char *why, size_t len);
/*
 * Destination: listen and accept one peer (tcp, unix; timeout_ms, 0 = wait
 * forever) or open the file.  *listen_fd stays open (-1 for a file) so the
 * caller can refuse later peers; close it with mig_listen_close().
 */
int mig_listen(const struct mig_uri *u, int *listen_fd, char *why, size_t len);
int mig_accept(const struct mig_uri *u, const char *tls_dir, int listen_fd, int timeout_ms,
	       struct mig_io *io, char *why, size_t len);
/* --tls-creds only goes with tcp:; 0 or -EINVAL with why. */
int mig_tls_check(const struct mig_uri *u, const char *tls_dir, char *why, size_t len);
void mig_listen_close(const struct mig_uri *u, int listen_fd);

#endif
