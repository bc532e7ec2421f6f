// SPDX-License-Identifier: MIT
/* Token buckets and rate strings. */
#include "devices/hdnic/qos.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/hdnic/nic.h"

#define NSEC	1000000000ULL

void tb_set(struct token_bucket *tb, uint64_t bits_per_sec, uint64_t now_ns)
{
	uint64_t depth;

	tb->rate = bits_per_sec;
	tb->last_ns = now_ns;
	if (!bits_per_sec) {
		tb->cap = tb->tokens = tb->fill_ns = 0;
		return;
	}
	depth = bits_per_sec * QOS_BURST_MS / 1000;
	if (depth < 2 * 8 * HDNIC_MAX_FRAME)
		depth = 2 * 8 * HDNIC_MAX_FRAME;
	tb->cap = depth * NSEC;		/* <= 5e9 bits * 1e9: fits, and so does 2 * cap */
	tb->tokens = tb->cap;
	tb->fill_ns = tb->cap / bits_per_sec;
}

static void refill(struct token_bucket *tb, uint64_t now_ns)
{
	uint64_t dt = now_ns - tb->last_ns;

	if (now_ns < tb->last_ns)
		return;		/* callers pass a clock sampled earlier */
	tb->last_ns = now_ns;
	if (dt >= tb->fill_ns) {
		tb->tokens = tb->cap;
		return;
	}
	tb->tokens += tb->rate * dt;	/* < cap + rate * fill_ns: no overflow */
	if (tb->tokens > tb->cap)
		tb->tokens = tb->cap;
}

bool tb_conform(struct token_bucket *tb, uint32_t len, uint64_t now_ns)
{
	if (!tb->rate)
		return true;
	refill(tb, now_ns);
	return tb->tokens >= (uint64_t)len * 8 * NSEC;
}

void tb_charge(struct token_bucket *tb, uint32_t len)
{
	uint64_t need = (uint64_t)len * 8 * NSEC;

	if (!tb->rate)
		return;
	tb->tokens = tb->tokens > need ? tb->tokens - need : 0;
}

uint64_t tb_delay_ns(const struct token_bucket *tb, uint32_t len)
{
	uint64_t need = (uint64_t)len * 8 * NSEC;

	if (!tb->rate || tb->tokens >= need)
		return 0;
	return (need - tb->tokens + tb->rate - 1) / tb->rate;
}

int qos_parse_rate(const char *s, uint64_t *bits)
{
	static const struct { char c; uint64_t mult; } units[] = {
		{ 'k', 1000ULL }, { 'm', 1000000ULL }, { 'g', 1000000000ULL },
	};
	uint64_t whole = 0, frac = 0, frac_div = 1, mult = 1, v;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (whole > QOS_RATE_MAX)
			return -EINVAL;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return -EINVAL;
	if (*p == '.') {
		const char *f = ++p;

		for (; *p >= '0' && *p <= '9'; p++) {
			if (frac_div >= NSEC)
				return -EINVAL;	/* more precision than a bit */
			frac = frac * 10 + (uint64_t)(*p - '0');
			frac_div *= 10;
		}
		if (p == f)
			return -EINVAL;
	}
	for (unsigned i = 0; *p && i < sizeof(units) / sizeof(units[0]); i++) {
		if ((*p | 0x20) == units[i].c) {
			mult = units[i].mult;
			p++;
			break;
		}
	}
	if (!strcmp(p, "bit") || !strcmp(p, "bps"))
		p += 3;
	if (*p || whole > QOS_RATE_MAX)
		return -EINVAL;
	v = whole * mult + frac * mult / frac_div;
	if (frac * mult % frac_div)
		return -EINVAL;	/* "1.5" bit/s and friends */
	if (v && (v < QOS_RATE_MIN || v > QOS_RATE_MAX))
		return -EINVAL;
	*bits = v;
	return 0;
}

void qos_format_rate(uint64_t bits, char *out, size_t len)
{
	static const struct { const char *sfx; uint64_t div; } units[] = {
		{ "G", 1000000000ULL }, { "M", 1000000ULL }, { "k", 1000ULL },
	};

	for (unsigned i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t d = units[i].div;

		if (bits >= d && bits % (d / 1000) == 0) {
			char frac[24] = "";

			if (bits % d) {
				size_t n;

				snprintf(frac, sizeof(frac), ".%03llu",
					 (unsigned long long)(bits % d / (d / 1000)));
				for (n = strlen(frac); frac[n - 1] == '0'; n--)
					frac[n - 1] = '\0';
			}
			snprintf(out, len, "%llu%s%s", (unsigned long long)(bits / d), frac,
				 units[i].sfx);
			return;
		}
	}
	snprintf(out, len, "%llu", (unsigned long long)bits);
}
