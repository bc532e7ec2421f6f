// SPDX-License-Identifier: MIT
/*
 * `hdvm snapshot` / `hdvm run --restore` below the CLI, without KVM: a paused
 * VM (guest RAM, two vCPUs on a fake KVM, legacy devices) is written with
 * vm_snapshot() as a migration stream (version 2) in a file; the restore
 * reads it the way `--incoming file:` does (manifest, VM built from it, RAM
 * batches, device state after the end marker).  Everything must arrive: RAM
 * byte for byte, every KVM piece, a device register.  A version 1 file
 * (the old format) still restores through its own reader.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/unit/fake_kvm.h"
#include "tests/unit/fake_vm.h"

#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "devices/platform.h"
#include "migration/snapshot_file.h"
#include "migration/stream.h"
#include "vmm/migrate.h"
#include <fcntl.h>
#include "vmm/control.h"
#include "vmm/machine_dev.h"
#include "vmm/snapshot.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define RAM		(16ull << 20)
#define COM1_SCR	(PLAT_COM1_PORT + 7)

static struct vm a, b;
static char dir[64], path[128];

static void vm_build(struct vm *vm, uint64_t ram, int ncpus, bool with_i8042)
{
	fake_vm_build(vm, &fake_kvm, ram, ncpus, with_i8042);
}

static void vm_free(struct vm *vm)
{
	fake_vm_free(vm);
	snapshot_restore_done(&vm->cfg);
}

/* CONF's strings live as long as the process in hdvm; a test gives them back */
static void cfg_free_strings(struct vm_config *cfg)
{
	free((char *)cfg->kernel);
	free((char *)cfg->cmdline);
	for (int i = 0; i < cfg->nr_net; i++)
		free((char *)cfg->net[i]);
}

static int setup(void **state)
{
	srand(7);
	fake_reset(&src);
	fake_reset(&dst);
	make_source();
	cur = &src;
	snprintf(dir, sizeof(dir), "/tmp/hdvm-snapvm-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.snap", dir);
	vm_build(&a, RAM, NR_VCPUS, true);
	/* guest RAM with a pattern in low and scattered pages, a device register set */
	for (uint64_t p = 0; p < RAM; p += 4096 * 37)
		memset(a.mem.host + p, (int)(p >> 12) | 1, 100);
	fake_vm_pio_write(&a, COM1_SCR, 0x5a);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	vm_free(&a);
	vm_free(&b);
	memset(&b, 0, sizeof(b));
	fake_reset(&src);
	fake_reset(&dst);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/*
 * `hdvm run --restore FILE` of a stream file: what run_incoming() and
 * vm_boot() do with `--incoming file:FILE`.  cfg carries the command line's
 * passthrough devices in and the manifest's machine out.
 */
static int restore_stream(struct vm_config *cfg, bool i8042, char *why, size_t len)
{
	struct migrate_incoming in;
	struct mig_io io;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	assert_true(fd >= 0);
	mig_io_fd(&io, fd);
	io.one_way = true;
	ret = migrate_recv_begin(&in, &io, why, len);
	if (!ret)
		ret = migrate_config_from_manifest(&in.m, cfg, why, len);
	if (!ret) {
		vm_build(&b, cfg->mem_size, cfg->ncpus, i8042);
		cur = &dst;
		ret = migrate_recv_finish(&in, &b, why, len);
	}
	migrate_recv_end(&in);
	mig_io_close(&io);
	return ret;
}

static void test_snapshot_and_restore_carry_everything(void **state)
{
	struct vm_config cfg = { 0 };
	struct snapshot_result res;
	uint8_t hdr[12];
	struct stat st;
	char why[256] = "";
	FILE *f;

	assert_int_equal(vm_snapshot(&a, path, false, &res, why, sizeof(why)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(res.bytes, st.st_size);
	assert_int_equal(res.ram_pages, (RAM + 4096 * 37 - 1) / (4096 * 37));	/* the pattern */
	assert_int_equal(a.state, VM_PAUSED);		/* it was paused: stays paused */
	assert_false(atomic_load(&a.shutdown));
	/* the migration stream, version 2, in a file */
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(hdr, 1, sizeof(hdr), f), sizeof(hdr));
	fclose(f);
	assert_memory_equal(hdr, "HDVMSNAP", 8);
	assert_int_equal(mig_le32(hdr + 8), MIG_STREAM_VERSION);
	assert_true(snapshot_is_stream(path));
	assert_true(st.st_size < (off_t)(res.ram_pages + 64) * 4096);	/* zero pages left out */

	if (restore_stream(&cfg, true, why, sizeof(why)))
		fail_msg("restore: %s", why);
	assert_int_equal(cfg.mem_size, RAM);
	assert_int_equal(cfg.ncpus, NR_VCPUS);
	assert_string_equal(cfg.cmdline, "app=dirty");

	assert_memory_equal(b.mem.host, a.mem.host, RAM);
	assert_int_equal(fake_vm_pio_read(&b, COM1_SCR), 0x5a);
	fake_assert_state_copied();
	assert_non_null(dst.store[VCPU_FD0 + 1][S_MSRS]);
	assert_int_equal(dst.log[dst.nr_log - 1].req, KVM_SET_CLOCK);
	cfg_free_strings(&cfg);
}

static void test_stop_after_snapshot(void **state)
{
	char why[256];

	assert_int_equal(vm_snapshot(&a, path, true, NULL, why, sizeof(why)), 0);
	assert_true(atomic_load(&a.shutdown));
	assert_int_equal(a.exit_code, 0);
	assert_non_null(strstr(a.exit_reason, "snapshot"));
}

static void test_unwritable_path_named_and_nothing_left(void **state)
{
	char bad[160], why[256];
	struct stat st;

	snprintf(bad, sizeof(bad), "%s/missing/vm.snap", dir);
	assert_int_equal(vm_snapshot(&a, bad, true, NULL, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, bad));
	assert_false(atomic_load(&a.shutdown));		/* --stop only after a snapshot */
	assert_int_equal(a.state, VM_PAUSED);
	assert_int_equal(stat(bad, &st), -1);
}

static void test_snapshot_of_a_vm_not_started_refused(void **state)
{
	char why[256];

	a.state = VM_CREATED;
	assert_int_equal(vm_snapshot(&a, path, false, NULL, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "created"));
}

static void test_restore_into_other_devices_refused(void **state)
{
	struct vm_config cfg = { 0 };
	char why[256] = "";

	assert_int_equal(vm_snapshot(&a, path, false, NULL, why, sizeof(why)), 0);
	assert_true(restore_stream(&cfg, false, why, sizeof(why)) < 0);	/* no i8042 */
	assert_non_null(strstr(why, "manifest mismatch"));
	assert_non_null(strstr(why, "i8042"));
	assert_int_equal(dst.nr_log, 0);	/* the manifest refused it before any KVM SET */
	cfg_free_strings(&cfg);
}

static void test_passthrough_count_must_match(void **state)
{
	struct vm_config cfg = { 0 };
	char why[256] = "";

	assert_int_equal(vm_snapshot(&a, path, false, NULL, why, sizeof(why)), 0);
	cfg.vfio_user[0] = "/tmp/x.sock";
	cfg.nr_vfio_user = 1;
	assert_int_equal(restore_stream(&cfg, true, why, sizeof(why)), -ENODEV);
	assert_non_null(strstr(why, "give as many"));
	assert_null(b.vcpus);				/* no VM built */
}

/* A corrupt byte anywhere in the file: refused by name, nothing reaches KVM. */
static void test_corrupt_snapshot_refused(void **state)
{
	struct vm_config cfg = { 0 };
	struct stat st;
	char why[256] = "";
	uint8_t c;
	int fd;

	assert_int_equal(vm_snapshot(&a, path, false, NULL, why, sizeof(why)), 0);
	assert_int_equal(stat(path, &st), 0);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, st.st_size - 200), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, st.st_size - 200), 1);	/* in the device state */
	close(fd);
	assert_int_equal(restore_stream(&cfg, true, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "crc mismatch in section 'DEVS'"));
	assert_int_equal(dst.nr_log, 0);
	cfg_free_strings(&cfg);
}

/*
 * Version 1 files (written before the stream format) still restore: kept
 * read-only, through snapshot_restore_prepare/_ram/_state.  The file is
 * made here the way the version 1 writer laid it out.
 */
static void put_v1_str(struct state_buf *sb, const char *s)
{
	state_put_u16(sb, (uint16_t)strlen(s));
	state_put_bytes(sb, s, strlen(s));
}

static void test_version1_file_still_restores(void **state)
{
	struct vm_config cfg = { 0 };
	struct snap_writer w;
	struct state_buf conf, devs;

	state_init_writer(&conf);
	state_put_u32(&conf, 1);		/* CONF version */
	state_put_u64(&conf, RAM);
	state_put_u32(&conf, NR_VCPUS);
	state_put_u32(&conf, 0);
	state_put_u32(&conf, 0);
	state_put_u32(&conf, 0);
	put_v1_str(&conf, "hdguest.elf");
	put_v1_str(&conf, "app=dirty");
	state_init_writer(&devs);
	assert_int_equal(devices_save(&a, &devs), 0);
	assert_int_equal(snap_create(&w, path), 0);
	assert_int_equal(snap_put_section(&w, SNAP_TAG('C', 'O', 'N', 'F'), conf.data, conf.len), 0);
	assert_int_equal(snap_put_ram(&w, a.mem.memfd, a.mem.size), 0);
	assert_int_equal(snap_put_section(&w, SNAP_TAG('D', 'E', 'V', 'S'), devs.data, devs.len), 0);
	assert_int_equal(snap_commit(&w), 0);
	state_free(&conf);
	state_free(&devs);
	assert_false(snapshot_is_stream(path));

	assert_int_equal(snapshot_restore_prepare(&cfg, path), 0);
	vm_build(&b, cfg.mem_size, cfg.ncpus, true);
	b.cfg.restore = cfg.restore;
	b.cfg.restore_path = path;
	cur = &dst;
	assert_int_equal(snapshot_restore_ram(&b), 0);
	assert_int_equal(snapshot_restore_state(&b), 0);
	assert_memory_equal(b.mem.host, a.mem.host, RAM);
	assert_int_equal(fake_vm_pio_read(&b, COM1_SCR), 0x5a);
	cfg_free_strings(&cfg);
}

static char *request(const char *line)
{
	return control_handle_line(vm_control_cmds, vm_nr_control_cmds, &a, line);
}

static void expect_reply(const char *line, const char *needle)
{
	char *reply = request(line);

	if (!strstr(reply, needle))
		fail_msg("reply '%s' to '%s' lacks '%s'", reply, line, needle);
	free(reply);
}

/* The control socket's "snapshot": arguments checked, the result reported. */
static void test_control_snapshot_command(void **state)
{
	char line[300], want[64], *reply;
	struct stat st;

	expect_reply("{\"cmd\":\"snapshot\"}", "expected {");
	expect_reply("{\"cmd\":\"snapshot\",\"path\":7}", "expected {");
	expect_reply("{\"cmd\":\"snapshot\",\"path\":\"rel.snap\"}", "must be absolute");
	snprintf(line, sizeof(line), "{\"cmd\":\"snapshot\",\"path\":\"%s\",\"stop\":1}", path);
	expect_reply(line, "'stop' must be true or false");
	assert_int_equal(stat(path, &st), -1);		/* nothing written so far */
	snprintf(line, sizeof(line), "{\"cmd\":\"snapshot\",\"path\":\"%s\"}", path);
	reply = request(line);
	assert_int_equal(stat(path, &st), 0);
	snprintf(want, sizeof(want), "\"bytes\":%lld", (long long)st.st_size);
	if (!strstr(reply, "\"ok\":true") || !strstr(reply, want) ||
	    !strstr(reply, "\"state\":\"paused\""))
		fail_msg("reply '%s' lacks ok, %s or the paused state", reply, want);
	free(reply);
	snprintf(line, sizeof(line), "{\"cmd\":\"snapshot\",\"path\":\"%s\",\"stop\":true}",
		 path);
	expect_reply(line, "\"state\":\"shutdown\"");
	assert_true(atomic_load(&a.shutdown));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_snapshot_and_restore_carry_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_after_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_path_named_and_nothing_left, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_of_a_vm_not_started_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_into_other_devices_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passthrough_count_must_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_snapshot_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version1_file_still_restores, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_snapshot_command, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
