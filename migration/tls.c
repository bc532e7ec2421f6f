// SPDX-License-Identifier: MIT
#include "migration/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct tls {
	SSL_CTX *ctx;
	SSL *ssl;
	char peer[200];		/* what the peer's certificate names (for a refusal) */
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

/* The peer's certificate must name `name`: a DNS SAN (or CN without one), or an IP SAN. */
static int expect_peer_name(SSL *ssl, const char *name)
{
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	unsigned char ip[16];

	if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(vp, name) == 1 ? 0 : -EINVAL;
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return X509_VERIFY_PARAM_set1_host(vp, name, 0) == 1 ? 0 : -EINVAL;
}

/* "x, DNS:y": the CN and DNS SANs of a certificate. */
static void cert_names(X509 *c, char *out, size_t len)
{
	GENERAL_NAMES *sans;
	size_t n;

	out[0] = 0;
	X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, out, (int)len);
	sans = X509_get_ext_d2i(c, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);

		n = strlen(out);
		if (g->type == GEN_DNS && n + 8 < len)
			snprintf(out + n, len - n, "%sDNS:%s", n ? ", " : "",
				 (const char *)ASN1_STRING_get0_data(g->d.dNSName));
	}
	GENERAL_NAMES_free(sans);
}

/* Remember the peer's names while OpenSSL verifies: a refused peer's are gone after. */
static int note_peer(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls *t = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *c = X509_STORE_CTX_get_current_cert(x);

	if (t && c && X509_STORE_CTX_get_error_depth(x) == 0)
		cert_names(c, t->peer, sizeof(t->peer));
	return ok;
}

int mig_tls_wrap(struct mig_io *io, const char *dir, const char *peer_name, bool server,
		 char *why, size_t len)
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
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, note_peer);
	ret = load(t->ctx, dir, server ? "server" : "client", why, len);
	if (!ret) {
		t->ssl = SSL_new(t->ctx);
		if (!t->ssl || SSL_set_fd(t->ssl, io->fd) != 1)
			ret = -ENOMEM;
		else
			SSL_set_app_data(t->ssl, t);
	}
	if (!ret && peer_name && expect_peer_name(t->ssl, peer_name)) {
		snprintf(why, len, "--tls-hostname '%s' is not a usable name", peer_name);
		ret = -EINVAL;
	}
	if (!ret) {
		errno = 0;
		ret = server ? SSL_accept(t->ssl) : SSL_connect(t->ssl);
		if (ret == 1) {
			ret = 0;
		} else {
			long v = SSL_get_verify_result(t->ssl);
			const char *names = t->peer;

			ssl_reason(r, sizeof(r));
			if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
				snprintf(why, len, "TLS: the %s's certificate (signed by the CA) "
					 "names %s%s%s, not '%s' (--tls-hostname): refused",
					 server ? "source" : "destination", names[0] ? "'" : "",
					 names[0] ? names : "nothing", names[0] ? "'" : "",
					 peer_name);
			} else {
				snprintf(why, len, "TLS handshake with the %s failed: %s%s%s",
					 server ? "source" : "destination", r,
					 v != X509_V_OK ? "; certificate: " : "",
					 v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
			}
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
