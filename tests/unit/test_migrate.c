// SPDX-License-Identifier: MIT
/*
 * Live migration below the CLI, without KVM: two VMs on the fake KVM (guest
 * RAM, two vCPUs, legacy devices, "machine" state) and vm_migrate_send() /
 * migrate_recv_*() between them over a socketpair, a unix socket passing the
 * memfd, and a file.  What a user would see: RAM identical after, a page
 * dirtied between passes arrives, a page zeroed between passes arrives as
 * zero, zero pages are not sent, vCPU/VM and device state equal; a corrupt
 * or truncated stream, a manifest that does not match and a peer that
 * vanishes are refused with the reason, nothing applied to the destination's
 * KVM, and the source keeps its VM.
 */
#include "tests/unit/migrate_harness.h"

static void test_precopy_over_a_socket_carries_everything(void **state)
{
	struct dest d = { .i8042 = true };
	struct migrate_result res;
	uint64_t pattern = (RAM + 4096 * 37 - 1) / (4096 * 37);
	char why[512] = "";
	int ret;

	nr_progress = 0;
	ret = migrate(&d, AF_UNIX, false, &res, why, sizeof(why));
	if (ret || d.ret)
		fail_msg("source: %d %s / destination: %d %s", ret, why, d.ret, d.why);
	assert_state_arrived();
	assert_int_equal(b.mem.host[DIRTIED_GPA], 0xd7);	/* dirtied after pass 0 */
	assert_int_equal(b.mem.host[ZEROED_GPA], 0);		/* zeroed after pass 0 */
	assert_true(res.passes >= 2);
	assert_true(nr_progress >= 2);
	/* pass 0: the pattern's pages; pass 1: the two pages written, one of them zero */
	assert_int_equal(res.pages, pattern + 1);
	assert_int_equal(d.pages, pattern + 1);
	assert_int_equal(d.zero_pages, 1);			/* the zeroed page, as a zero run */
	assert_true(res.bytes < (pattern + 16) * 4096 + 4096 * 4);	/* zero pages left out */
	assert_true(res.device_bytes > 0);
	assert_int_equal(a.state, VM_PAUSED);
}

static void test_unix_passes_the_memfd_not_the_pages(void **state)
{
	struct dest d = { .i8042 = true };
	struct migrate_result res;
	char why[512] = "";
	int ret;

	ret = migrate(&d, AF_UNIX, true, &res, why, sizeof(why));
	if (ret || d.ret)
		fail_msg("source: %d %s / destination: %d %s", ret, why, d.ret, d.why);
	assert_int_equal(res.pages, 0);
	assert_true(res.bytes < 64 * 1024);		/* manifest and device state only */
	assert_state_arrived();
	/* one memory: a write on one side is seen on the other */
	a.mem.host[123] = 0x42;
	assert_int_equal(b.mem.host[123], 0x42);
}

static void test_manifest_mismatch_refused_by_name(void **state)
{
	struct dest d = { .i8042 = false };
	struct migrate_result res;
	char why[512] = "";

	assert_true(migrate(&d, AF_UNIX, false, &res, why, sizeof(why)) < 0);
	assert_non_null(strstr(d.why, "manifest mismatch"));
	assert_non_null(strstr(d.why, "i8042"));
	assert_non_null(strstr(why, "destination refused"));
	assert_non_null(strstr(why, "i8042"));
	assert_int_equal(dst.nr_log, 0);		/* nothing reached the destination's KVM */
	assert_int_equal(a.state, VM_PAUSED);
	assert_false(atomic_load(&a.shutdown));
	assert_false(guest_mem_logging(&a.mem, 0));	/* the source's dirty log stopped */
}

static void test_peer_vanishing_mid_stream(void **state)
{
	struct dest d = { .vanish = true };
	struct migrate_result res;
	char why[512] = "";
	int ret;

	ret = migrate(&d, AF_UNIX, false, &res, why, sizeof(why));
	assert_true(ret < 0);
	assert_true(why[0]);
	assert_int_equal(a.state, VM_PAUSED);
	assert_false(guest_mem_logging(&a.mem, 0));
}

/* The stream into a file, then handed to a destination corrupted or cut. */
static uint8_t *stream_to_memory(size_t *len)
{
	struct migrate_opts o = { .no_answer = true };
	struct migrate_result res;
	char path[] = "/tmp/hdvm-migstream-XXXXXX", why[256];
	struct mig_io io;
	struct stat st;
	uint8_t *buf;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	mig_io_fd(&io, fd);
	assert_int_equal(vm_migrate_send(&a, &io, &o, &res, why, sizeof(why)), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(res.bytes, st.st_size);
	buf = malloc(st.st_size);
	assert_int_equal(pread(fd, buf, st.st_size, 0), st.st_size);
	mig_io_close(&io);
	*len = st.st_size;
	return buf;
}

static int receive(const uint8_t *data, size_t len, char *why, size_t wlen)
{
	struct migrate_incoming in;
	struct vm_config cfg = { 0 };
	struct mig_io io;
	int ret;

	mine = &dst;
	mig_io_mem(&io, data, len);
	ret = migrate_recv_begin(&in, &io, why, wlen);
	if (!ret)
		ret = migrate_config_from_manifest(&in.m, &cfg, why, wlen);
	if (!ret) {
		vm_build(&b, cfg.mem_size, true);
		ret = migrate_recv_finish(&in, &b, why, wlen);
	}
	migrate_recv_end(&in);
	mig_io_close(&io);
	free((char *)cfg.kernel);
	free((char *)cfg.cmdline);
	mine = &src;
	return ret;
}

static void test_file_stream_round_trip(void **state)
{
	char why[256] = "";
	size_t len;
	uint8_t *s = stream_to_memory(&len);

	if (receive(s, len, why, sizeof(why)))
		fail_msg("%s", why);
	assert_state_arrived();
	free(s);
}

static void test_corrupt_stream_refused_before_state_applied(void **state)
{
	char why[256] = "";
	size_t len;
	uint8_t *s = stream_to_memory(&len);

	s[len - 100] ^= 0x40;		/* inside the device state */
	assert_int_equal(receive(s, len, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "crc mismatch in section 'DEVS'"));
	assert_int_equal(dst.nr_log, 0);
	free(s);
}

static void test_truncated_stream_refused(void **state)
{
	char why[256] = "";
	size_t len;
	uint8_t *s = stream_to_memory(&len);

	assert_int_equal(receive(s, len - 30, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "truncated"));
	assert_int_equal(dst.nr_log, 0);
	vm_free(&b);
	assert_int_equal(receive(s, 40, why, sizeof(why)), -EPROTO);	/* inside MANF */
	assert_non_null(strstr(why, "truncated in section 'MANF'"));
	free(s);
}

static void test_bad_magic_and_version_named(void **state)
{
	char why[256] = "";
	size_t len;
	uint8_t *s = stream_to_memory(&len);

	s[8] = 9;
	assert_int_equal(receive(s, len, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "version 9"));
	s[0] = 'X';
	assert_int_equal(receive(s, len, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "bad magic"));
	free(s);
}

/* The manifest alone: what the VM was, and libfdt refusing a broken tree. */
static void test_manifest_round_trip_and_refusals(void **state)
{
	struct manifest *m = xzalloc(sizeof(*m)), *n = xzalloc(sizeof(*n));
	char why[256] = "";
	void *blob;
	size_t len;

	a.cfg.net[0] = "tap:tap0";
	a.cfg.nr_net = 1;
	assert_int_equal(manifest_from_vm(&a, m), 0);
	assert_int_equal(manifest_build(m, &blob, &len), 0);
	assert_int_equal(manifest_parse(blob, len, n, why, sizeof(why)), 0);
	assert_int_equal(n->mem_size, RAM);
	assert_int_equal(n->ncpus, NR_VCPUS);
	assert_string_equal(n->cmdline, "app=dirty");
	assert_int_equal(n->nr_net, 1);
	assert_string_equal(n->net[0], "tap:tap0");
	assert_int_equal(n->nr_devs, 3);
	assert_string_equal(n->dev[2].type, "i8042");
	assert_int_equal(manifest_check_devices(n, &a, why, sizeof(why)), 0);
	((uint8_t *)blob)[len / 2] ^= 0xff;
	assert_int_equal(manifest_parse(blob, len, n, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "manifest"));
	assert_int_equal(manifest_parse(blob, 10, n, why, sizeof(why)), -EPROTO);
	a.cfg.nr_net = 0;
	free(blob);
	free(m);
	free(n);
}

/* A RAM batch outside RAM or cut short is refused before a byte is written. */
static void test_ram_batch_bounds(void **state)
{
	uint8_t batch[8 + 16 + 4096] = { 0 };
	uint64_t first = 4095, count = 2;
	char why[256];

	batch[4] = 1;				/* one run */
	memcpy(batch + 8, &first, 8);
	memcpy(batch + 16, &count, 8);
	assert_int_equal(mig_check_ram_batch(batch, sizeof(batch), RAM, NULL, NULL, why,
					     sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "outside"));
	count = 1;
	memcpy(batch + 16, &count, 8);
	assert_int_equal(mig_check_ram_batch(batch, sizeof(batch), RAM, NULL, NULL, why,
					     sizeof(why)), 0);
	assert_int_equal(mig_check_ram_batch(batch, sizeof(batch) - 1, RAM, NULL, NULL, why,
					     sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "truncated"));
}


/* ---- transports and the control socket's job ---- */

static void test_uri_parsing(void **state)
{
	struct mig_uri u;
	char why[256];

	assert_int_equal(mig_uri_parse("tcp:127.0.0.1:4444", &u, why, sizeof(why)), 0);
	assert_int_equal(u.kind, MIG_TCP);
	assert_string_equal(u.host, "127.0.0.1");
	assert_string_equal(u.port, "4444");
	assert_int_equal(mig_uri_parse("tcp:[::1]:80", &u, why, sizeof(why)), 0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(mig_uri_parse("unix:/tmp/m.sock", &u, why, sizeof(why)), 0);
	assert_int_equal(u.kind, MIG_UNIX);
	assert_int_equal(mig_uri_parse("tcp:host:0", &u, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "port"));
	assert_int_equal(mig_uri_parse("tcp:4444", &u, why, sizeof(why)), -EINVAL);
	assert_int_equal(mig_uri_parse("ftp:x", &u, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "not a migration URI"));
	assert_int_equal(mig_uri_parse("unix:", &u, why, sizeof(why)), -EINVAL);
}

struct listener {
	struct mig_uri uri;
	const char *tls;
	int lfd;
	struct dest d;
};

static void *listener_main(void *arg)
{
	struct listener *l = arg;
	struct mig_io io;

	if (mig_accept(&l->uri, l->tls, l->lfd, 10000, &io, l->d.why, sizeof(l->d.why))) {
		l->d.ret = -1;
		return NULL;
	}
	l->d.pre = &io;
	return dest_main(&l->d);
}

/* Over loopback TCP, through mig_connect/mig_listen/mig_accept. */
static void test_tcp_loopback(void **state)
{
	struct listener l = { .d = { .i8042 = true } };
	struct migrate_opts o = { .downtime_ms = 300 };
	struct migrate_result res;
	char uri[64], why[512] = "";
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct mig_io io;
	pthread_t t;
	int ret;

	assert_int_equal(mig_uri_parse("tcp:127.0.0.1:1", &l.uri, why, sizeof(why)), 0);
	snprintf(l.uri.port, sizeof(l.uri.port), "0");	/* any free port */
	assert_int_equal(mig_listen(&l.uri, &l.lfd, why, sizeof(why)), 0);
	assert_int_equal(getsockname(l.lfd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(pthread_create(&t, NULL, listener_main, &l), 0);
	{
		struct mig_uri u;

		assert_int_equal(mig_uri_parse(uri, &u, why, sizeof(why)), 0);
		assert_int_equal(mig_connect(&u, NULL, &io, why, sizeof(why)), 0);
	}
	ret = vm_migrate_send(&a, &io, &o, &res, why, sizeof(why));
	mig_io_close(&io);
	pthread_join(t, NULL);
	mig_listen_close(&l.uri, l.lfd);
	if (ret || l.d.ret)
		fail_msg("source: %d %s / destination: %d %s", ret, why, l.d.ret, l.d.why);
	assert_state_arrived();
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

/* The control socket's migrate: refusals, then a whole job over unix: with status polled. */
static void test_control_migrate_job(void **state)
{
	struct listener l = { .d = { .i8042 = true } };
	char sock[64], line[160], why[256], *reply = NULL;
	pthread_t t;

	expect_reply("{\"cmd\":\"migrate\",\"cancel\":true}", "no migration is running");
	expect_reply("{\"cmd\":\"migrate\"}", "expected {");
	expect_reply("{\"cmd\":\"migrate\",\"uri\":\"bogus\"}", "not a migration URI");
	expect_reply("{\"cmd\":\"migrate\",\"uri\":\"unix:/x\",\"downtime_ms\":-1}",
		     "non-negative");
	expect_reply("{\"cmd\":\"migrate-status\"}", "\"running\":false");

	snprintf(sock, sizeof(sock), "/tmp/hdvm-migjob-%d.sock", getpid());
	snprintf(line, sizeof(line), "unix:%s", sock);
	assert_int_equal(mig_uri_parse(line, &l.uri, why, sizeof(why)), 0);
	assert_int_equal(mig_listen(&l.uri, &l.lfd, why, sizeof(why)), 0);
	assert_int_equal(pthread_create(&t, NULL, listener_main, &l), 0);
	snprintf(line, sizeof(line), "{\"cmd\":\"migrate\",\"uri\":\"unix:%s\"}", sock);
	expect_reply(line, "\"started\":true");
	for (int i = 0; i < 500; i++) {
		free(reply);
		reply = request("{\"cmd\":\"migrate-status\"}");
		if (strstr(reply, "\"done\":true"))
			break;
		usleep(10000);
	}
	if (!strstr(reply, "\"success\":true") || !strstr(reply, "\"downtime_ms\""))
		fail_msg("status '%s'", reply);
	free(reply);
	migrate_job_stop();
	pthread_join(t, NULL);
	mig_listen_close(&l.uri, l.lfd);
	assert_int_equal(l.d.ret, 0);
	assert_true(atomic_load(&a.shutdown));		/* the source VM ends: it runs there */
	assert_non_null(strstr(a.exit_reason, "migrated"));
	assert_state_arrived();
}

/* A destination that accepts and then reads nothing: the source blocks in a write. */
static void *stuck_main(void *arg)
{
	struct listener *l = arg;
	int fd = accept(l->lfd, NULL, NULL);

	while (!l->d.vanish)
		usleep(10000);
	if (fd >= 0)
		close(fd);
	return NULL;
}

/*
 * `hdvm migrate NAME --cancel` (and Ctrl-C on `hdvm migrate`, which sends the
 * same request with its reason) while the stream is blocked on a destination
 * that stopped reading: the job ends with the reason within the grace time,
 * the VM is not stopped, its dirty log is off.
 */
static void test_control_cancel_unblocks_a_stuck_stream(void **state)
{
	struct listener l = { .lfd = -1 };
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char line[200], why[256], *reply = NULL;
	uint64_t t0;
	pthread_t t;

	/* every page has data: 16 MiB cannot sit in the socket buffers */
	for (uint64_t p = 0; p < RAM; p += 4096)
		a.mem.host[p + 1] = 0x11;
	assert_int_equal(mig_uri_parse("tcp:127.0.0.1:1", &l.uri, why, sizeof(why)), 0);
	snprintf(l.uri.port, sizeof(l.uri.port), "0");
	assert_int_equal(mig_listen(&l.uri, &l.lfd, why, sizeof(why)), 0);
	assert_int_equal(getsockname(l.lfd, (struct sockaddr *)&sin, &sl), 0);
	assert_int_equal(pthread_create(&t, NULL, stuck_main, &l), 0);
	snprintf(line, sizeof(line), "{\"cmd\":\"migrate\",\"uri\":\"tcp:127.0.0.1:%u\"}",
		 ntohs(sin.sin_port));
	expect_reply(line, "\"started\":true");
	usleep(300000);					/* blocked in a write by now */
	expect_reply("{\"cmd\":\"migrate-status\"}", "\"running\":true");
	t0 = now_ns();
	expect_reply("{\"cmd\":\"migrate\",\"cancel\":true,\"reason\":\"Ctrl-C on hdvm migrate\"}",
		     "\"cancelling\":true");
	for (int i = 0; i < 500; i++) {
		free(reply);
		reply = request("{\"cmd\":\"migrate-status\"}");
		if (strstr(reply, "\"done\":true"))
			break;
		usleep(10000);
	}
	if (!strstr(reply, "\"success\":false") ||
	    !strstr(reply, "cancelled by Ctrl-C on hdvm migrate"))
		fail_msg("status '%s'", reply);
	free(reply);
	assert_true(now_ns() - t0 < 4000000000ull);	/* the 2 s grace, not forever */
	l.d.vanish = true;
	pthread_join(t, NULL);
	migrate_job_stop();
	mig_listen_close(&l.uri, l.lfd);
	assert_false(atomic_load(&a.shutdown));		/* the VM runs on here */
	assert_false(guest_mem_logging(&a.mem, 0));
}

/* ---- TLS (--tls-creds) over loopback, certificates made here with openssl ---- */

static char tls_dir[64], rogue_dir[128], intruder_dir[128];

static void make_creds(void)
{
	char cmd[2048];

	snprintf(tls_dir, sizeof(tls_dir), "/tmp/hdvm-migtls-XXXXXX");
	assert_non_null(mkdtemp(tls_dir));
	snprintf(rogue_dir, sizeof(rogue_dir), "%s/rogue", tls_dir);
	snprintf(intruder_dir, sizeof(intruder_dir), "%s/intruder", tls_dir);
	/* a CA, a server and a client it signed; a rogue CA and a client it signed */
	snprintf(cmd, sizeof(cmd),
		 "set -e; cd %s; mkdir rogue; q='-loglevel quiet' ;"
		 "ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-days 2 -subj /CN=$2 -keyout $1/ca-key.pem -out $1/ca-cert.pem 2>/dev/null; }; "
		 "leaf() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-subj /CN=$3 -keyout $2/$3-key.pem -out $2/$3.csr 2>/dev/null && "
		 "openssl x509 -req -in $2/$3.csr -CA $1/ca-cert.pem -CAkey $1/ca-key.pem "
		 "-CAcreateserial -days 2 -out $2/$3-cert.pem 2>/dev/null; }; "
		 "ca . hdvm-ca; leaf . . server; leaf . . client; "
		 "ca rogue rogue-ca; leaf rogue rogue client; cp ca-cert.pem rogue/ca-cert.pem; "
		 /* the real CA signed it, but for someone else: CN=intruder */
		 "leaf . . intruder; mkdir intruder; cp ca-cert.pem intruder/; "
		 "cp intruder-cert.pem intruder/client-cert.pem; "
		 "cp intruder-key.pem intruder/client-key.pem",
		 tls_dir);
	assert_int_equal(system(cmd), 0);
}

static void drop_creds(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tls_dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * client_dir: the source's credentials; dst_expects / src_expects: the
 * --tls-hostname each end gives for the other (NULL: none).
 */
static int tls_migrate_named(const char *client_dir, struct listener *l, const char *dst_expects,
			     const char *src_expects, char *why, size_t len)
{
	struct mig_uri cu;
	struct migrate_opts o = { .downtime_ms = 300 };
	struct migrate_result res;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct mig_io io;
	pthread_t t;
	int ret;

	assert_int_equal(mig_uri_parse("tcp:127.0.0.1:1", &l->uri, why, len), 0);
	snprintf(l->uri.port, sizeof(l->uri.port), "0");
	assert_int_equal(mig_listen(&l->uri, &l->lfd, why, len), 0);
	assert_int_equal(getsockname(l->lfd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(l->uri.port, sizeof(l->uri.port), "%u", ntohs(sin.sin_port));
	l->tls = tls_dir;
	cu = l->uri;
	snprintf(l->uri.tls_hostname, sizeof(l->uri.tls_hostname), "%s", dst_expects ?: "");
	snprintf(cu.tls_hostname, sizeof(cu.tls_hostname), "%s", src_expects ?: "");
	assert_int_equal(pthread_create(&t, NULL, listener_main, l), 0);
	ret = mig_connect(&cu, client_dir, &io, why, len);
	if (!ret) {
		ret = vm_migrate_send(&a, &io, &o, &res, why, len);
		mig_io_close(&io);
	}
	pthread_join(t, NULL);
	mig_listen_close(&l->uri, l->lfd);
	return ret;
}

static int tls_migrate(const char *client_dir, struct listener *l, char *why, size_t len)
{
	return tls_migrate_named(client_dir, l, NULL, NULL, why, len);
}

static void test_tls_both_ends_verify(void **state)
{
	struct listener l = { .d = { .i8042 = true } };
	char why[512] = "";
	int ret;

	make_creds();
	ret = tls_migrate(tls_dir, &l, why, sizeof(why));
	if (ret || l.d.ret)
		fail_msg("source: %d %s / destination: %d %s", ret, why, l.d.ret, l.d.why);
	assert_state_arrived();
	drop_creds();
}

static void test_tls_refuses_a_peer_the_ca_did_not_sign(void **state)
{
	struct listener l = { .d = { .i8042 = true } };
	char why[512] = "";

	make_creds();
	assert_true(tls_migrate(rogue_dir, &l, why, sizeof(why)) < 0);
	assert_int_equal(l.d.ret, -1);			/* refused at the handshake */
	assert_non_null(strstr(l.d.why, "TLS handshake with the source failed"));
	assert_true(why[0]);				/* TLS 1.3: the source learns it after its handshake */
	assert_null(b.vcpus);				/* no VM was even built */
	assert_int_equal(dst.nr_log, 0);
	drop_creds();
}

/*
 * --tls-hostname: a certificate the CA signed is not enough, it must name
 * the peer the user named; refused with what the certificate names, and
 * before any VM is built on the destination.
 */
static void test_tls_peer_name_checked(void **state)
{
	struct listener l = { .d = { .i8042 = true } };
	char why[512] = "";
	int ret;

	make_creds();
	/* both names right: migrates */
	ret = tls_migrate_named(tls_dir, &l, "client", "server", why, sizeof(why));
	if (ret || l.d.ret)
		fail_msg("source: %d %s / destination: %d %s", ret, why, l.d.ret, l.d.why);
	assert_state_arrived();
	vm_free(&b);
	fake_reset(&dst);

	/* the CA signed the intruder's certificate, but it is not the source named */
	memset(&l, 0, sizeof(l));
	l.d.i8042 = true;
	why[0] = 0;
	assert_true(tls_migrate_named(intruder_dir, &l, "client", NULL, why, sizeof(why)) < 0);
	assert_int_equal(l.d.ret, -1);
	assert_non_null(strstr(l.d.why, "the source's certificate (signed by the CA) names "
				"'intruder', not 'client' (--tls-hostname): refused"));
	assert_null(b.vcpus);				/* no VM built, no device touched */
	assert_int_equal(dst.nr_log, 0);
	assert_true(why[0]);

	/* the source checks the destination's name as well */
	memset(&l, 0, sizeof(l));
	l.d.i8042 = true;
	why[0] = 0;
	assert_true(tls_migrate_named(tls_dir, &l, NULL, "migration.example", why,
				      sizeof(why)) < 0);
	assert_non_null(strstr(why, "the destination's certificate (signed by the CA) names "
			       "'server', not 'migration.example'"));
	assert_null(b.vcpus);
	assert_int_equal(a.state, VM_PAUSED);
	drop_creds();
}

static void test_tls_only_for_tcp(void **state)
{
	struct mig_uri u;
	struct mig_io io;
	char why[256];

	assert_int_equal(mig_uri_parse("unix:/tmp/x.sock", &u, why, sizeof(why)), 0);
	assert_int_equal(mig_connect(&u, "/tmp", &io, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "tcp: streams only"));
}

static void test_timeout_when_it_cannot_converge(void **state)
{
	struct dest d = { .i8042 = true };
	struct migrate_opts o = {
		.downtime_ms = 1, .timeout_ms = 300, .progress = dirty_everything,
	};
	struct migrate_result res;
	char why[512] = "";
	int ret;

	ret = migrate_to_thread(&a, AF_UNIX, true, dest_main, &d, &d.fd, &o, &res, why,
				sizeof(why));
	assert_int_equal(ret, -ETIMEDOUT);
	assert_non_null(strstr(why, "did not converge"));
	assert_true(res.passes >= 2);
	assert_int_equal(a.state, VM_PAUSED);
	assert_false(guest_mem_logging(&a.mem, 0));
	assert_true(d.ret < 0);			/* the destination saw no end marker */
	assert_int_equal(dst.nr_log, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_precopy_over_a_socket_carries_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unix_passes_the_memfd_not_the_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_mismatch_refused_by_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_vanishing_mid_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_stream_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_stream_refused_before_state_applied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_stream_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_magic_and_version_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_round_trip_and_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ram_batch_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uri_parsing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_migrate_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_cancel_unblocks_a_stuck_stream, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tls_both_ends_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_refuses_a_peer_the_ca_did_not_sign, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_peer_name_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_only_for_tcp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_when_it_cannot_converge, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
