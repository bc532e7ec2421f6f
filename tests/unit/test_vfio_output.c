// SPDX-License-Identifier: MIT
/*
 * hdvm's side of hdnic's output commit (devices/vfio/vfio_output.c) against
 * the fake vfio-user server: what goes on the wire for start / epoch /
 * commit / stop, the device's refusals reaching the caller as -errno, the
 * status read back, and a device without the feature.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_output.h"
#include "tests/unit/vfio_fake_server.h"

static void assert_op(const struct fake_srv *s, unsigned i, uint32_t op, uint64_t epoch,
		      uint32_t max_frames)
{
	assert_true(i < s->nr_oc);
	assert_int_equal(s->oc[i].op, op);
	assert_int_equal(s->oc[i].epoch, epoch);
	assert_int_equal(s->oc[i].max_frames, max_frames);
}

static void test_an_epoch_cycle_goes_on_the_wire(void **state)
{
	struct fake_srv *s = srv_new();
	struct hdnic_output_status st;
	struct vfio_device *dev;

	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(vfio_output_commit_probe(dev), 0);
	assert_int_equal(s->nr_oc, 0);		/* a probe sets nothing */
	assert_int_equal(vfio_output_commit_start(dev, 7, 64), 0);
	assert_int_equal(vfio_output_commit_epoch(dev, 8), 0);
	assert_int_equal(vfio_output_commit_commit(dev, 7), 0);
	assert_int_equal(vfio_output_commit_status(dev, &st), 0);
	assert_int_equal(st.holding, 1);
	assert_int_equal(st.epoch, 8);
	assert_int_equal(st.committed, 7);
	assert_int_equal(vfio_output_commit_discard(dev), 0);
	assert_int_equal(vfio_output_commit_stop(dev), 0);
	assert_int_equal(s->nr_oc, 5);
	assert_op(s, 0, HDNIC_OUTPUT_START, 7, 64);
	assert_op(s, 1, HDNIC_OUTPUT_EPOCH, 8, 0);
	assert_op(s, 2, HDNIC_OUTPUT_COMMIT, 7, 0);
	assert_op(s, 3, HDNIC_OUTPUT_DISCARD, 0, 0);
	assert_op(s, 4, HDNIC_OUTPUT_STOP, 0, 0);
	assert_false(s->oc_holding);
	srv_finish(s, dev);
}

static void test_refusals_reach_the_caller(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;

	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(vfio_output_commit_commit(dev, 1), -EINVAL);	/* not holding */
	assert_int_equal(vfio_output_commit_start(dev, 3, 0), 0);
	assert_int_equal(vfio_output_commit_commit(dev, 3), -EINVAL);	/* still open */
	assert_int_equal(vfio_output_commit_epoch(dev, 2), -EINVAL);	/* backwards */
	assert_false(vfio_device_dead(dev));	/* a refusal is not a broken device */
	assert_int_equal(vfio_output_commit_epoch(dev, 4), 0);
	assert_int_equal(vfio_output_commit_commit(dev, 3), 0);
	srv_finish(s, dev);
}

static void test_device_without_the_feature(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;

	s->no_output_commit = true;
	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(vfio_output_commit_probe(dev), -EOPNOTSUPP);
	assert_int_equal(vfio_output_commit_start(dev, 1, 0), -EOPNOTSUPP);
	srv_finish(s, dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_an_epoch_cycle_goes_on_the_wire),
		cmocka_unit_test(test_refusals_reach_the_caller),
		cmocka_unit_test(test_device_without_the_feature),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
