// SPDX-License-Identifier: MIT
#include "migration/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct tls {
	SSL_CTX *ctx;
	SSL *ssl;
};

static void ssl_reason(char *out, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, out, len);
	else
		snprintf(out, len, "%s", errno ? strerror(errno) : "the peer closed the connection");
	ERR_clear_error();
}

static ssize_t tls_read(struct mig_io *io, void *buf, size_t len)
{
	struct tls *t = io->priv;
	int n = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);

	if (n > 0)
		return n;
	if (SSL_get_error(t->ssl, n) == SSL_ERROR_ZERO_RETURN)
		return 0;
	ERR_clear_error();
	return n == 0 ? 0 : -EPROTO;
}

static ssize_t tls_write(struct mig_io *io, const void *buf, size_t len)
{
	struct tls *t = io->priv;
	int n = SSL_write(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);

	if (n > 0)
		return n;
	ERR_clear_error();
	return -EPIPE;
}

static void tls_close(struct mig_io *io)
{
	struct tls *t = io->priv;

	if (t) {
		SSL_shutdown(t->ssl);
		SSL_free(t->ssl);
		SSL_CTX_free(t->ctx);
		free(t);
	}
	io->priv = NULL;
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
}

static const struct mig_io_ops tls_ops = {
	.read = tls_read, .write = tls_write, .close = tls_close,
};

static int load(SSL_CTX *ctx, const char *dir, const char *role, char *why, size_t len)
{
	char cert[4096], key[4096], ca[4096], r[200];

	snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir);
	snprintf(cert, sizeof(cert), "%s/%s-cert.pem", dir, role);
	snprintf(key, sizeof(key), "%s/%s-key.pem", dir, role);
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		ssl_reason(r, sizeof(r));
		snprintf(why, len, "--tls-creds: CA %s: %s", ca, r);
		return -EINVAL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ssl_reason(r, sizeof(r));
		snprintf(why, len, "--tls-creds: %s / %s: %s", cert, key, r);
		return -EINVAL;
	}
	return 0;
}

int mig_tls_wrap(struct mig_io *io, const char *dir, bool server, char *why, size_t len)
{
	struct tls *t = calloc(1, sizeof(*t));
	char r[200];
	int ret;

	if (!t)
		return -ENOMEM;
	t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!t->ctx) {
		free(t);
		return -ENOMEM;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	/*
	 * No session tickets: the destination sends nothing after the handshake
	 * but its answer, so the source's poll for an early answer sees only that.
	 */
	SSL_CTX_set_num_tickets(t->ctx, 0);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET);
	/* both ends present a certificate and verify the other's */
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	ret = load(t->ctx, dir, server ? "server" : "client", why, len);
	if (!ret) {
		t->ssl = SSL_new(t->ctx);
		if (!t->ssl || SSL_set_fd(t->ssl, io->fd) != 1)
			ret = -ENOMEM;
	}
	if (!ret) {
		errno = 0;
		ret = server ? SSL_accept(t->ssl) : SSL_connect(t->ssl);
		if (ret == 1) {
			ret = 0;
		} else {
			long v = SSL_get_verify_result(t->ssl);

			ssl_reason(r, sizeof(r));
			snprintf(why, len, "TLS handshake with the %s failed: %s%s%s",
				 server ? "source" : "destination", r,
				 v != X509_V_OK ? "; certificate: " : "",
				 v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
			ret = -EACCES;
		}
	}
	if (ret) {
		if (t->ssl)
			SSL_free(t->ssl);
		SSL_CTX_free(t->ctx);
		free(t);
		return ret;
	}
	io->ops = &tls_ops;
	io->priv = t;
	return 0;
}
