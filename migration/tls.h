/* SPDX-License-Identifier: MIT */
/*
 * TLS for tcp: migration streams (--tls-creds DIR), with OpenSSL.
 *
 * DIR holds QEMU's x509 file names: ca-cert.pem (the CA both ends trust),
 * server-cert.pem + server-key.pem (the destination), client-cert.pem +
 * client-key.pem (the source).  Both ends verify the other's certificate
 * against the CA (TLS 1.2 at least); a peer without a certificate, or with
 * one the CA did not sign, is refused during the handshake with the reason;
 * with --tls-hostname NAME its certificate must also name NAME (QEMU's
 * tls-hostname; on the destination this is what stops any holder of a
 * certificate from that CA from handing it a VM).
 *
 * Why OpenSSL and not GnuTLS: hdvm is linked statically, and Debian ships
 * no static libp11-kit or libunistring, which a static GnuTLS needs;
 * libssl.a and libcrypto.a are in libssl-dev.
 */
#ifndef HDVM_MIG_TLS_H
#define HDVM_MIG_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "migration/stream.h"

/*
 * Handshake on io's connected fd and make io a TLS io.  peer_name (NULL:
 * none): the name the peer's certificate must carry besides being signed by
 * the CA (--tls-hostname); a certificate naming someone else is refused with
 * what it names.  0 or -errno with why.
 */
int mig_tls_wrap(struct mig_io *io, const char *dir, const char *peer_name, bool server,
		 char *why, size_t len);

#endif
