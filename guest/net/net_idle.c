// SPDX-License-Identifier: MIT
/*
 * Idle mode of the network loop: after IDLE_CYCLES without a frame received,
 * sent or reclaimed, the vCPU sleeps (sti; hlt in ring 0) until the RX
 * queue's MSI-X interrupt or the periodic LAPIC timer wakes it.  The timer
 * is only a safety net (a lost interrupt, a stalled device server), so it
 * is slow: every wake-up costs hundreds of microseconds of emulated ring-0
 * work on a PVM host, times a thousand sleeping guests.  A wake-up that
 * brings no traffic checks the device (hdvm raises the vectors when it
 * removes a passed-through device).  Set up on the first idle period; if
 * MSI-X cannot be used the loop keeps polling.
 */
#include "guest/cmdline.h"
#include "devices/platform.h"
#include "guest/console.h"
#include "guest/cpu.h"
#include "guest/io.h"
#include "guest/lapic.h"
#include "guest/net/net_internal.h"

/* About 2 ms of nothing at the rough TSC rate before sleeping */
#define IDLE_CYCLES		(TSC_ROUGH_HZ / 500)
/* LAPIC timer calibration window (about 1 ms) */
#define CALIBRATE_CYCLES	(TSC_ROUGH_HZ / 1000)
/* The safety-net wake-up: idle_wake=SECONDS on the command line */
#define IDLE_WAKE_DEFAULT_S	60
#define IDLE_WAKE_MAX_S		3600

enum idle_state { IDLE_UNTRIED, IDLE_ON, IDLE_POLL_ONLY };

static enum idle_state state;
static bool timer_on, woke;
static uint64_t last_progress, last_active;

/* Timer counts (divide by 16) per `seconds`, measured against the TSC. */
static uint32_t timer_period(uint64_t lapic, uint64_t seconds)
{
	uint64_t start, elapsed, counted, period;

	lapic_write(lapic, LAPIC_TIMER_DIV, LAPIC_TIMER_DIV_16);
	lapic_write(lapic, LAPIC_LVT_TIMER, LAPIC_LVT_MASKED | VEC_TIMER);
	lapic_write(lapic, LAPIC_TIMER_INIT, 0xffffffffu);
	start = rdtsc();
	tsc_delay(CALIBRATE_CYCLES);
	counted = 0xffffffffu - lapic_read(lapic, LAPIC_TIMER_CUR);
	elapsed = rdtsc() - start;
	lapic_write(lapic, LAPIC_TIMER_INIT, 0);
	if (!counted || !elapsed)
		return 0;
	period = counted * (seconds * TSC_ROUGH_HZ / 1000) / (elapsed / 1000 ? elapsed / 1000 : 1);
	return period > 0xffffffffu ? 0xffffffffu : period ? (uint32_t)period : 1;
}

static int idle_setup(struct virtio_net *vn)
{
	uint64_t lapic = PLAT_LAPIC_ADDR;
	const char *why;
	uint64_t wake_s;
	uint32_t period;

	if (cmdline_get_u64("net", "idle_wake", IDLE_WAKE_DEFAULT_S, 1, IDLE_WAKE_MAX_S, &wake_s))
		return -1;
	/* Software-enable the LAPIC: the network apps do not otherwise touch it. */
	lapic_write(lapic, LAPIC_SVR,
		    (lapic_read(lapic, LAPIC_SVR) & ~0xffu) | LAPIC_SVR_ENABLE | VEC_SPURIOUS);
	if (virtio_net_rx_irq_setup(vn, (uint8_t)(lapic_read(lapic, LAPIC_ID) >> 24), VEC_NET_RX,
				    &why)) {
		printf("net: idle mode off (%s), polling\n", why);
		return -1;
	}
	period = timer_period(lapic, wake_s);
	timer_on = period != 0;
	if (period) {
		lapic_write(lapic, LAPIC_LVT_TIMER, LAPIC_TIMER_PERIODIC | VEC_TIMER);
		lapic_write(lapic, LAPIC_TIMER_INIT, period);
	}
	if (period)
		printf("net: idle mode on: rx msi-x vector 0x%x, timer ~%u s\n", VEC_NET_RX,
		       (unsigned)wake_s);
	else
		printf("net: idle mode on: rx msi-x vector 0x%x, no timer (LAPIC timer did not count)\n",
		       VEC_NET_RX);
	return 0;
}

void net_idle_reset(void)
{
	if (state == IDLE_ON)
		state = IDLE_UNTRIED;
	last_active = 0;
	woke = false;
}

void net_idle_note(struct virtio_net *vn, uint64_t now)
{
	uint64_t progress = virtio_net_progress(vn);

	if (progress != last_progress || !last_active) {
		last_progress = progress;
		last_active = now;
		woke = false;
		return;
	}
	if (now - last_active < IDLE_CYCLES || state == IDLE_POLL_ONLY || arp_waiting())
		return;
	if (woke) {
		/* Woken, but not by traffic: the timer, or the device going away. */
		woke = false;
		virtio_net_check(vn);
	}
	if (vn->health == VNET_GONE)
		return;		/* net_poll() waits for it to come back, or ends the app */
	if (vn->health != VNET_OK) {
		/* Device stopped: only the health check (surprise removal) is left to do. */
		if (state == IDLE_ON && timer_on) {
			syscall1(SYS_WAIT, 0);
			woke = true;
		}
		return;
	}
	if (state == IDLE_UNTRIED) {
		state = idle_setup(vn) ? IDLE_POLL_ONLY : IDLE_ON;
		if (state != IDLE_ON)
			return;
	}
	if (virtio_net_rx_irq_arm(vn)) {
		syscall1(SYS_WAIT, 0);
		woke = true;
	}
	virtio_net_rx_irq_disarm(vn);
	/*
	 * A wake-up that brings traffic resets last_active at the next pass; one
	 * that brings nothing checks the device and sleeps again right away.
	 */
}
