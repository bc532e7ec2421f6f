// SPDX-License-Identifier: MIT
/*
 * The passthrough device's pre-copy without KVM (vfio_pci_harness.h), as
 * vm_migrate_send drives it: PRE_COPY alongside RAM, cancel, a destination
 * that aborts, a device without P2P, one without pre-copy.
 */
#include "tests/unit/vfio_pci_harness.h"

/* The device's precopy sections (devices_save_iterate) hold exactly these bytes. */
static void assert_precopy_section(struct state_buf *sb, const uint8_t *want, size_t n)
{
	struct state_buf rd;

	state_init_reader(&rd, sb->data, sb->len);
	assert_int_equal(state_get_u32(&rd), device_id_tag("vfio0"));
	assert_int_equal(state_get_u32(&rd), n);
	assert_int_equal(sb->len, 8 + n);
	assert_memory_equal(sb->data + 8, want, n);
}

/*
 * Source: RUNNING -> PRE_COPY at setup, PRECOPY_INFO's estimate as pending
 * bytes, the first PRE_BYTES read while the guest runs; the switchover goes
 * PRE_COPY -> PRE_COPY_P2P -> STOP_COPY (no STOP in between: the session
 * goes on) and the final state is only the rest.  Destination: the pre-copy
 * part opens RESUMING, the rest completes the same session, the device gets
 * the whole stream once, in order.
 */
static void test_precopy_alongside_ram(void **st)
{
	static const uint32_t src_seq[] = { PRE, PRE_P2P, SCOPY, STOP, P2P, R };
	static const uint32_t dst_seq[] = { P2P, STOP, RESUME, STOP, P2P, R };
	struct state_buf pre, pre2, fin, rd;
	uint64_t pending = 0, bytes = 0;
	char why[256] = "";
	unsigned seq0;
	uint8_t *rest;
	uint64_t blob_len;

	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), 0);
	assert_int_equal(srv->mig_state, PRE);
	assert_int_equal(devices_pending_bytes(&vm, &pending), 0);
	assert_int_equal(pending, PRE_BYTES);		/* PRECOPY_INFO's initial_bytes */
	assert_true(srv->precopy_infos >= 1);

	state_init_writer(&pre);
	assert_int_equal(devices_save_iterate(&vm, &pre, &bytes), 0);
	assert_int_equal(bytes, 8 + PRE_BYTES);
	assert_precopy_section(&pre, srv->mig_out, PRE_BYTES);
	assert_int_equal(srv->mig_state, PRE);		/* the guest's device still runs */
	assert_int_equal(devices_pending_bytes(&vm, &pending), 0);
	assert_int_equal(pending, 0);
	state_init_writer(&pre2);				/* nothing more now: no section */
	assert_int_equal(devices_save_iterate(&vm, &pre2, &bytes), 0);
	assert_int_equal(bytes, 0);
	assert_int_equal(pre2.len, 0);
	state_free(&pre2);

	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	assert_int_equal(srv->mig_state, SCOPY);
	state_init_writer(&fin);
	assert_int_equal(devices_save(&vm, &fin), 0);
	assert_int_equal(srv->mig_state, STOP);
	/* the final state is what pre-copy did not send, and nothing of what it did */
	rest = memmem(fin.data, fin.len, srv->mig_out + PRE_BYTES, MIG_BLOB - PRE_BYTES);
	assert_non_null(rest);
	memcpy(&blob_len, rest - 8, 8);			/* vp_save_final's length prefix */
	assert_int_equal(blob_len, MIG_BLOB - PRE_BYTES);
	devices_save_cleanup(&vm);			/* success: nothing to undo */
	assert_int_equal(vm_resume(&vm, why, sizeof(why)), 0);
	expect_seq(src_seq, sizeof(src_seq) / sizeof(src_seq[0]));

	/* the same device as a destination */
	seq0 = srv->nr_mig_seq;
	srv->nr_mig_seq = 0;
	state_init_reader(&rd, pre.data, pre.len);
	assert_int_equal(devices_load_iterate(&vm, &rd, why, sizeof(why)), 0);
	assert_int_equal(srv->mig_state, RESUME);
	assert_int_equal(srv->mig_in_len, PRE_BYTES);	/* written while the source runs */
	state_init_reader(&rd, fin.data, fin.len);
	if (devices_load(&vm, &rd, why, sizeof(why)))
		fail_msg("load: %s", why);
	assert_int_equal(srv->mig_in_len, MIG_BLOB);
	assert_memory_equal(srv->mig_in, srv->mig_out, MIG_BLOB);
	assert_int_equal(srv->mig_state, R);
	expect_seq(dst_seq, sizeof(dst_seq) / sizeof(dst_seq[0]));
	assert_true(seq0 > 0);
	state_free(&pre);
	state_free(&fin);
}

/* Cancelled (or failed) while in PRE_COPY: the session ends, the device runs on. */
static void test_precopy_cancel_leaves_device_running(void **st)
{
	static const uint32_t want[] = { PRE, R };
	struct state_buf sb;
	uint64_t bytes;
	char why[256] = "";

	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save_iterate(&vm, &sb, &bytes), 0);
	devices_save_cleanup(&vm);
	assert_int_equal(srv->mig_state, R);
	expect_seq(want, 2);
	state_free(&sb);
	/* refused PRE_COPY: migration says which device and why, nothing left behind */
	srv->mig_refuse = PRE;
	srv->mig_refuse_errno = EBUSY;
	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "device vfio0 (vfio-pci): starting its pre-copy"));
	assert_non_null(strstr(why, "RUNNING -> PRE_COPY"));
	assert_int_equal(srv->mig_state, R);
}

/* Destination: the stream broke after pre-copy data: RESUMING is left, reset if it must. */
static void test_precopy_destination_abort(void **st)
{
	struct state_buf sb, rd;
	char why[256] = "";
	uint64_t bytes;

	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save_iterate(&vm, &sb, &bytes), 0);
	devices_save_cleanup(&vm);
	/* the device refuses a half stream on RESUMING -> STOP, as hdnic does */
	srv->mig_refuse = STOP;
	srv->mig_refuse_from = RESUME;
	srv->mig_refuse_to_error = true;
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(devices_load_iterate(&vm, &rd, why, sizeof(why)), 0);
	assert_int_equal(srv->mig_state, RESUME);
	devices_load_abort(&vm);
	assert_int_equal(srv->resets, 1);		/* out of ERROR */
	assert_int_equal(srv->mig_state, R);
	state_free(&sb);
}

/* PRE_COPY without P2P: PRE_COPY -> STOP_COPY direct, as the kernel's table says. */
static void test_precopy_without_p2p(void **st)
{
	static const uint32_t want[] = { PRE, SCOPY, STOP };
	struct state_buf sb;
	char why[256] = "";
	uint64_t bytes;

	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save_iterate(&vm, &sb, &bytes), 0);
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	assert_int_equal(devices_save(&vm, &sb), 0);
	expect_seq(want, 3);
	state_free(&sb);
}

/* A device without PRE_COPY: setup and iterate leave it alone; all goes in STOP_COPY. */
static void test_no_precopy_goes_straight_to_stop_copy(void **st)
{
	static const uint32_t want[] = { P2P, STOP, SCOPY, STOP };
	struct state_buf sb;
	char why[256] = "";
	uint64_t bytes = 1, pending = 1;

	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save_iterate(&vm, &sb, &bytes), 0);
	assert_int_equal(bytes, 0);
	assert_int_equal(devices_pending_bytes(&vm, &pending), 0);
	assert_int_equal(pending, 0);
	assert_int_equal(srv->nr_mig_seq, 0);
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	assert_int_equal(devices_save(&vm, &sb), 0);
	assert_non_null(memmem(sb.data, sb.len, srv->mig_out, MIG_BLOB));
	expect_seq(want, 4);
	state_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_precopy_alongside_ram, setup_precopy, teardown),
		cmocka_unit_test_setup_teardown(test_precopy_cancel_leaves_device_running,
						setup_precopy, teardown),
		cmocka_unit_test_setup_teardown(test_precopy_destination_abort, setup_precopy,
						teardown),
		cmocka_unit_test_setup_teardown(test_precopy_without_p2p, setup_precopy_no_p2p,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_precopy_goes_straight_to_stop_copy, setup,
						teardown),
	};

	/* a busy host is not a stalled server: the stall tests set their own */
	setenv("HDVM_VFIO_STALL_MS", "5000", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
