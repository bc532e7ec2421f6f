// SPDX-License-Identifier: MIT
/*
 * udpflood: send UDP datagrams as fast as sendmmsg allows, for the network
 * benchmarks' uplink -> guest direction.  Bounded by both a duration and a
 * packet count; prints "sent N packets in S seconds".
 *
 *   udpflood DST_IP PORT SIZE SECONDS [MAX_PACKETS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sockaddr_in dst = { .sin_family = AF_INET };
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	static char payload[65536];
	unsigned long long sent = 0, max;
	double t0, secs;
	int fd, size, sndbuf = 4 << 20;

	if (argc < 5 || inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "usage: udpflood DST_IP PORT SIZE SECONDS [MAX_PACKETS]\n");
		return 2;
	}
	dst.sin_port = htons(atoi(argv[2]));
	size = atoi(argv[3]);
	secs = atof(argv[4]);
	max = argc > 5 ? strtoull(argv[5], NULL, 0) : 100000000ULL;
	if (size < 1 || size > 1472 || secs <= 0 || secs > 60) {
		fprintf(stderr, "udpflood: SIZE must be 1..1472 and SECONDS 0..60\n");
		return 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ payload, size };
		msgs[i].msg_hdr.msg_name = &dst;
		msgs[i].msg_hdr.msg_namelen = sizeof(dst);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	t0 = now();
	while (sent < max && now() - t0 < secs) {
		int n = sendmmsg(fd, msgs, BATCH, 0);

		if (n < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED ||
			    errno == EINTR)
				continue;
			perror("sendmmsg");
			return 1;
		}
		sent += n;
	}
	printf("sent %llu packets in %.3f seconds\n", sent, now() - t0);
	return 0;
}
