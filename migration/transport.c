// SPDX-License-Identifier: MIT
#include "migration/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "migration/tls.h"

int mig_uri_parse(const char *uri, struct mig_uri *u, char *why, size_t len)
{
	const char *rest, *colon;
	char *end;
	long port;

	memset(u, 0, sizeof(*u));
	if (!strncmp(uri, "unix:", 5) || !strncmp(uri, "file:", 5)) {
		u->kind = uri[0] == 'u' ? MIG_UNIX : MIG_FILE;
		rest = uri + 5;
		size_t max = u->kind == MIG_UNIX ? MIG_UNIX_PATH_MAX : sizeof(u->path) - 1;

		if (!*rest || strlen(rest) > max) {
			snprintf(why, len, "'%.200s': the path must be 1 to %zu bytes", uri, max);
			return -EINVAL;
		}
		snprintf(u->path, sizeof(u->path), "%s", rest);
		return 0;
	}
	if (strncmp(uri, "tcp:", 4)) {
		snprintf(why, len, "'%s' is not a migration URI (tcp:HOST:PORT, unix:PATH or "
			 "file:PATH)", uri);
		return -EINVAL;
	}
	u->kind = MIG_TCP;
	rest = uri + 4;
	colon = strrchr(rest, ':');
	if (!colon || colon == rest || (size_t)(colon - rest) >= sizeof(u->host)) {
		snprintf(why, len, "'%s': expected tcp:HOST:PORT", uri);
		return -EINVAL;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 1 || port > 65535) {
		snprintf(why, len, "'%s': the port must be 1 to 65535", uri);
		return -EINVAL;
	}
	memcpy(u->host, rest, colon - rest);
	/* [v6]:port */
	if (u->host[0] == '[' && u->host[strlen(u->host) - 1] == ']') {
		memmove(u->host, u->host + 1, strlen(u->host));
		u->host[strlen(u->host) - 1] = 0;
	}
	snprintf(u->port, sizeof(u->port), "%ld", port);
	return 0;
}

static void unix_addr(const struct mig_uri *u, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, u->path, strlen(u->path));
}

/*
 * HOST is an IPv4 or IPv6 address (or "localhost"): hdvm is linked
 * statically, and glibc's name service needs shared libraries at run time.
 */
static int tcp_addr(const struct mig_uri *u, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	const char *host = strcmp(u->host, "localhost") ? u->host : "127.0.0.1";
	uint16_t port = htons((uint16_t)atoi(u->port));

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = port;
		*len = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = port;
		*len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

static int tcp_socket(const struct mig_uri *u, bool listen_side, char *why, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t alen;
	int fd, ret, one = 1;

	if (tcp_addr(u, &ss, &alen)) {
		snprintf(why, len, "tcp:%s:%s: the host must be an IP address", u->host, u->port);
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (listen_side) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		ret = bind(fd, (struct sockaddr *)&ss, alen) || listen(fd, 1) ? -errno : 0;
	} else {
		ret = connect(fd, (struct sockaddr *)&ss, alen) ? -errno : 0;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (ret) {
		snprintf(why, len, "tcp:%s:%s: %s %s", u->host, u->port,
			 listen_side ? "listening:" : "connecting:", strerror(-ret));
		close(fd);
		return ret;
	}
	return fd;
}

int mig_tls_check(const struct mig_uri *u, const char *tls_dir, char *why, size_t len)
{
	if (tls_dir && u->kind != MIG_TCP) {
		snprintf(why, len, "--tls-creds is for tcp: streams only");
		return -EINVAL;
	}
	return 0;
}

/* TLS over a connected tcp: socket; a refused handshake closes it. */
static int maybe_tls(struct mig_io *io, const char *tls_dir, const char *peer, bool server,
		     char *why, size_t len)
{
	int ret;

	if (!tls_dir)
		return 0;
	ret = mig_tls_wrap(io, tls_dir, peer[0] ? peer : NULL, server, why, len);
	if (ret)
		mig_io_close(io);
	return ret;
}

int mig_connect(const struct mig_uri *u, const char *tls_dir, struct mig_io *io,
		char *why, size_t len)
{
	struct sockaddr_un a;
	int fd;

	if (mig_tls_check(u, tls_dir, why, len))
		return -EINVAL;
	switch (u->kind) {
	case MIG_TCP:
		fd = tcp_socket(u, false, why, len);
		if (fd < 0)
			return fd;
		mig_io_fd(io, fd);
		return maybe_tls(io, tls_dir, u->tls_hostname, false, why, len);
	case MIG_UNIX:
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		unix_addr(u, &a);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			int ret = -errno;

			snprintf(why, len, "unix:%s: connecting: %s", u->path, strerror(-ret));
			close(fd);
			return ret;
		}
		mig_io_unix(io, fd);
		return 0;
	case MIG_FILE:
		fd = open(u->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			int ret = -errno;

			snprintf(why, len, "file:%s: %s", u->path, strerror(-ret));
			return ret;
		}
		mig_io_fd(io, fd);
		io->one_way = true;
		return 0;
	}
	return -EINVAL;
}

int mig_listen(const struct mig_uri *u, int *listen_fd, char *why, size_t len)
{
	struct sockaddr_un a;
	int fd, ret;

	*listen_fd = -1;
	if (u->kind == MIG_FILE)
		return 0;
	if (u->kind == MIG_TCP) {
		fd = tcp_socket(u, true, why, len);
		if (fd < 0)
			return fd;
		*listen_fd = fd;
		return 0;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unix_addr(u, &a);
	unlink(u->path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0) {
		ret = -errno;
		snprintf(why, len, "unix:%s: listening: %s", u->path, strerror(-ret));
		close(fd);
		return ret;
	}
	*listen_fd = fd;
	return 0;
}

int mig_accept(const struct mig_uri *u, const char *tls_dir, int listen_fd, int timeout_ms,
	       struct mig_io *io, char *why, size_t len)
{
	struct pollfd p = { .fd = listen_fd, .events = POLLIN };
	int fd, ret;

	if (u->kind == MIG_FILE) {
		fd = open(u->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			ret = -errno;
			snprintf(why, len, "file:%s: %s", u->path, strerror(-ret));
			return ret;
		}
		mig_io_fd(io, fd);
		io->one_way = true;
		return 0;
	}
	do
		ret = poll(&p, 1, timeout_ms ? timeout_ms : -1);
	while (ret < 0 && errno == EINTR);
	if (ret == 0) {
		snprintf(why, len, "no source connected within %d ms", timeout_ms);
		return -ETIMEDOUT;
	}
	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, len, "accepting the source: %s", strerror(-ret));
		return ret;
	}
	if (u->kind == MIG_UNIX) {
		mig_io_unix(io, fd);
		return 0;
	}
	mig_io_fd(io, fd);
	return maybe_tls(io, tls_dir, u->tls_hostname, true, why, len);
}

void mig_listen_close(const struct mig_uri *u, int listen_fd)
{
	if (listen_fd < 0)
		return;
	close(listen_fd);
	if (u->kind == MIG_UNIX)
		unlink(u->path);
}
