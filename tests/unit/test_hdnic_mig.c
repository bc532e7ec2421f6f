// SPDX-License-Identifier: MIT
/*
 * A function's migration state machine (vdev_mig.c) on a real hdnic
 * function with its driver up (tests/fuzz/fuzz_common.h: no sockets): every
 * (from, to) pair of the eight states, the number of direct arcs each walk
 * takes (the kernel's shortest paths), what is refused and with which
 * errno, the data path stopped in every state but RUNNING, and the
 * STOP_COPY / RESUMING stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/fuzz/fuzz_common.h"

enum { ERR = 0, STOP = 1, RUN = 2, SCOPY = 3, RES = 4, P2P = 5, PRE = 6, PRE_P2P = 7, NSTATES = 8 };

/*
 * Direct arcs from -> to with STOP_COPY | P2P | PRE_COPY offered (0: the
 * same state; -1: refused, STOP_COPY cannot go back to pre-copy).
 */
static const int path_len[NSTATES][NSTATES] = {
	[STOP] = { [RUN] = 2, [SCOPY] = 1, [RES] = 1, [P2P] = 1, [PRE] = 3, [PRE_P2P] = 2 },
	[RUN] = { [STOP] = 2, [SCOPY] = 3, [RES] = 3, [P2P] = 1, [PRE] = 1, [PRE_P2P] = 2 },
	[SCOPY] = { [STOP] = 1, [RUN] = 3, [RES] = 2, [P2P] = 2, [PRE] = -1, [PRE_P2P] = -1 },
	[RES] = { [STOP] = 1, [RUN] = 3, [SCOPY] = 2, [P2P] = 2, [PRE] = 4, [PRE_P2P] = 3 },
	[P2P] = { [STOP] = 1, [RUN] = 1, [SCOPY] = 2, [RES] = 2, [PRE] = 2, [PRE_P2P] = 1 },
	[PRE] = { [STOP] = 3, [RUN] = 1, [SCOPY] = 2, [RES] = 4, [P2P] = 2, [PRE_P2P] = 1 },
	[PRE_P2P] = { [STOP] = 2, [RUN] = 2, [SCOPY] = 1, [RES] = 3, [P2P] = 1, [PRE] = 1 },
};

static bool offered(int s)
{
	return s >= STOP && s < NSTATES;
}

static struct vdev *vf;
static struct state_buf stream;	/* a valid state of vf, for RESUMING */

static int setup(void **state)
{
	fz_setup();
	vf = fz_devs[0];
	fz_driver_up(vf);
	fz_pass();
	assert_true(vf->running);
	state_init_writer(&stream);
	assert_int_equal(vdev_save(vf, &stream), 0);
	return 0;
}

static int teardown(void **state)
{
	state_free(&stream);
	fz_reset();
	return 0;
}

/* Put vf in state s (RESUMING with a valid stream written). */
static void reach(int s)
{
	vdev_function_reset(vf);
	fz_driver_up(vf);
	if (s == ERR) {
		assert_int_equal(vdev_mig_set_state(vf, RES), 0);
		assert_int_equal(vdev_mig_write(vf, "junk", 4), 0);
		assert_int_equal(vdev_mig_set_state(vf, STOP), -EINVAL);
		assert_int_equal(vdev_mig_get_state(vf), ERR);
		return;
	}
	assert_int_equal(vdev_mig_set_state(vf, (uint32_t)s), 0);
	if (s == RES)
		assert_int_equal(vdev_mig_write(vf, stream.data, (uint32_t)stream.len), 0);
	assert_int_equal(vdev_mig_get_state(vf), s);
}

static void test_every_pair_of_states(void **state)
{
	for (int from = 0; from < NSTATES; from++) {
		for (int to = 0; to <= NSTATES; to++) {
			uint64_t arcs;
			int err;

			reach(from);
			arcs = vf->mig.arcs;
			err = vdev_mig_set_state(vf, (uint32_t)to);
			if (from == ERR || !offered(to) || path_len[from][to] < 0) {
				/* ERROR, out of range, STOP_COPY -> PRE_COPY*; nothing leaves ERROR but a reset */
				assert_int_equal(err, -EINVAL);
				assert_int_equal(vdev_mig_get_state(vf), from);
				assert_int_equal(vf->mig.arcs, arcs);
				continue;
			}
			assert_int_equal(err, 0);
			assert_int_equal(vdev_mig_get_state(vf), to);
			assert_int_equal(vf->mig.arcs - arcs, path_len[from][to]);
			/* quiesced everywhere but RUNNING and PRE_COPY */
			assert_int_equal(vf->running, to == RUN || to == PRE);
			assert_int_equal(vf->dev.paused, to != RUN && to != PRE);
		}
	}
}

static void test_reset_leaves_every_state(void **state)
{
	for (int s = ERR; s < NSTATES; s++) {
		reach(s);
		vdev_function_reset(vf);
		assert_int_equal(vdev_mig_get_state(vf), RUN);
		assert_false(vf->dev.paused);
	}
}

static void test_stopped_function_takes_no_frame(void **state)
{
	uint8_t frame[60] = { 0 };
	uint8_t *ram = mmap(NULL, FUZZ_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fz_memfd, 0);
	uint8_t *before = malloc(FUZZ_MEM_SIZE);
	uint64_t stopped = vf->stats.rx_stopped, packets = vf->stats.rx_packets;

	assert_ptr_not_equal(ram, MAP_FAILED);
	memcpy(frame, vf->mac, 6);
	memcpy(frame + 6, "\x02\xaa\xbb\xcc\xdd\x01", 6);
	reach(STOP);
	/* one RX buffer posted (queue 0: descriptors at 0, avail at 0x1000) */
	*(struct vring_desc *)ram = (struct vring_desc){ .addr = 0x10000, .len = 2048,
							 .flags = VRING_DESC_F_WRITE };
	((uint16_t *)(ram + 0x1000))[2] = 0;
	((uint16_t *)(ram + 0x1000))[1] = 1;
	memcpy(before, ram, FUZZ_MEM_SIZE);
	for (int i = 0; i < 10; i++)
		nic_forward_from_uplink(fz_nic, frame, sizeof(frame));
	fz_pass();
	assert_memory_equal(before, ram, FUZZ_MEM_SIZE);
	assert_int_equal(vf->stats.rx_stopped - stopped, 10);
	assert_int_equal(vf->stats.rx_packets, packets);
	/* RUNNING again: the next frame lands in that buffer */
	assert_int_equal(vdev_mig_set_state(vf, RUN), 0);
	nic_forward_from_uplink(fz_nic, frame, sizeof(frame));
	fz_pass();
	assert_int_equal(vf->stats.rx_packets, packets + 1);
	assert_memory_equal(ram + 0x10000 + 12, frame, sizeof(frame));
	assert_int_equal(((uint16_t *)(ram + 0x2000))[1], 1);	/* used->idx */
	free(before);
	munmap(ram, FUZZ_MEM_SIZE);
}

static void test_state_stream_reads_to_its_end(void **state)
{
	struct state_buf now;
	uint8_t buf[64];
	uint32_t got, total = 0;

	reach(SCOPY);
	state_init_writer(&now);
	assert_int_equal(vdev_save(vf, &now), 0);
	do {
		assert_int_equal(vdev_mig_read(vf, buf, sizeof(buf), &got), 0);
		assert_memory_equal(buf, now.data + total, got);
		total += got;
	} while (got == sizeof(buf));
	assert_int_equal(total, now.len);
	state_free(&now);
	/* reading is for STOP_COPY, writing for RESUMING */
	assert_int_equal(vdev_mig_write(vf, buf, 1), -EINVAL);
	reach(RES);
	assert_int_equal(vdev_mig_read(vf, buf, 1, &got), -EINVAL);
	/* trailing bytes: not one function's state */
	assert_int_equal(vdev_mig_write(vf, "x", 1), 0);
	assert_int_equal(vdev_mig_set_state(vf, STOP), -EINVAL);
	assert_int_equal(vdev_mig_get_state(vf), ERR);
}

/* PRE_COPY gives the pre-copy part while running; STOP_COPY appends the state; it loads. */
static void test_precopy_stream_loads(void **state)
{
	struct state_buf all;
	uint8_t buf[64];
	uint64_t initial, dirty;
	uint32_t got;

	reach(PRE);
	assert_true(vf->running);
	assert_int_equal(vdev_mig_precopy_info(vf, &initial, &dirty), 0);
	assert_true(initial > 0 && initial < 64);
	assert_int_equal(dirty, 0);
	state_init_writer(&all);
	assert_int_equal(vdev_mig_read(vf, buf, sizeof(buf), &got), 0);
	assert_int_equal(got, initial);
	state_put_bytes(&all, buf, got);
	assert_int_equal(vdev_mig_precopy_info(vf, &initial, &dirty), 0);
	assert_int_equal(initial, 0);
	assert_int_equal(vdev_mig_set_state(vf, SCOPY), 0);
	assert_int_equal(vdev_mig_precopy_info(vf, &initial, &dirty), -EINVAL);
	assert_int_equal(vdev_mig_stop_copy_size(vf), stream.len);
	do {
		assert_int_equal(vdev_mig_read(vf, buf, sizeof(buf), &got), 0);
		state_put_bytes(&all, buf, got);
	} while (got == sizeof(buf));
	assert_int_equal(all.len, 8 + 22 + stream.len);	/* pre-copy section + state */
	reach(RES);
	vdev_function_reset(vf);
	fz_driver_up(vf);
	assert_int_equal(vdev_mig_set_state(vf, RES), 0);
	assert_int_equal(vdev_mig_write(vf, all.data, (uint32_t)all.len), 0);
	assert_int_equal(vdev_mig_set_state(vf, RUN), 0);
	assert_true(vf->running);
	state_free(&all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_pair_of_states),
		cmocka_unit_test(test_reset_leaves_every_state),
		cmocka_unit_test(test_stopped_function_takes_no_frame),
		cmocka_unit_test(test_state_stream_reads_to_its_end),
		cmocka_unit_test(test_precopy_stream_loads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
