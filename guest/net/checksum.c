// SPDX-License-Identifier: MIT
/*
 * The Internet checksum (RFC 1071).  Words are added as they lie in memory
 * (little-endian loads): a one's-complement sum is the same in either byte
 * order, so the folded result is stored back as is.
 */
#include "guest/net/net_internal.h"

typedef uint32_t __attribute__((aligned(1))) u32_unaligned;
typedef uint16_t __attribute__((aligned(1))) u16_unaligned;

uint64_t csum_partial(const void *data, size_t len, uint64_t sum)
{
	const uint8_t *p = data;

	for (; len >= 4; p += 4, len -= 4)
		sum += *(const u32_unaligned *)p;
	if (len >= 2) {
		sum += *(const u16_unaligned *)p;
		p += 2;
		len -= 2;
	}
	if (len)
		sum += *p;	/* the odd byte, padded with a zero after it */
	return sum;
}

uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}
