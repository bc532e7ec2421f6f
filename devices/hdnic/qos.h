/* SPDX-License-Identifier: MIT */
/*
 * Device-level QoS.  Each VF/ADI has an egress token bucket (tx-rate), an
 * ingress policer (rx-rate) and a weight for the deficit-weighted round
 * robin the uplink and the internal switch serve devices by (sched.h).
 * Rates are bits per second of Ethernet frames (no virtio-net header, no
 * preamble or FCS); 0 means unlimited.
 */
#ifndef HDNIC_QOS_H
#define HDNIC_QOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QOS_RATE_MAX		100000000000ULL	/* 100 Gbit/s: depth * 1e9 fits in 64 bits */
#define QOS_RATE_MIN		8000ULL		/* 8 kbit/s, when not 0 */
#define QOS_WEIGHT_DEFAULT	1
#define QOS_WEIGHT_MAX		1000
#define QOS_BURST_MS		50		/* bucket depth, in time at the rate */

struct token_bucket {
	uint64_t rate;		/* bit/s; 0 = unlimited */
	uint64_t cap;		/* depth, in nano-bits (bits * 1e9) */
	uint64_t tokens;	/* nano-bits */
	uint64_t fill_ns;	/* time to fill from empty */
	uint64_t last_ns;
};

/*
 * (Re)configure: a full bucket QOS_BURST_MS deep at the rate, at least two
 * frames.  Policing needs the depth to absorb how bursty arrivals are: a
 * bucket shallower than the gaps between bursts admits less than the rate.
 */
void tb_set(struct token_bucket *tb, uint64_t bits_per_sec, uint64_t now_ns);
/* Would a len-byte frame conform now?  Refills first. */
bool tb_conform(struct token_bucket *tb, uint32_t len, uint64_t now_ns);
/* Charge a frame that conformed. */
void tb_charge(struct token_bucket *tb, uint32_t len);
/* Nanoseconds until a len-byte frame conforms (0 if it does). */
uint64_t tb_delay_ns(const struct token_bucket *tb, uint32_t len);

/*
 * "10M" = 10 Mbit/s.  Digits with an optional fraction, an optional
 * decimal multiplier k/K, m/M, g/G (x1000 each step) and an optional
 * "bit" or "bps"; "0" turns the limit off.  Returns 0, or -EINVAL if malformed
 * or outside QOS_RATE_MIN..QOS_RATE_MAX.
 */
int qos_parse_rate(const char *s, uint64_t *bits);
/* The shortest exact form: "0", "2500k", "10M", "1.5G"... */
void qos_format_rate(uint64_t bits, char *out, size_t len);

#endif
