// SPDX-License-Identifier: MIT
/*
 * CompSC in hdvm (devices/vfio/vfio_compsc.c) without KVM: a passthrough
 * device without FEATURE_MIGRATION realized on a VM with guest RAM against
 * the fake vfio-user server; the "guest driver" is this test writing the
 * capability through the PCI bus and the shared page in guest RAM.  Pause
 * takes the write lock (bounded), reads the read-clear counters into the
 * page and resets the device; resume and post_load move the counter and
 * release; save/load carry the page and the PF-held state through a fake
 * PF (compsc_pf_ops).
 */
#include <time.h>

#include "tests/unit/vfio_pci_harness.h"

#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/vfio/compsc_abi.h"
#include "devices/vfio/vfio_compsc.h"

#define PAGE_GPA	0x10000ull
#define STATS_POS	0x40

static struct vfio_pci *vp;

/* the fake PF: what get returns, what set was given */
static struct compsc_pf_state pf_held = {
	.valid = true, .mac = { 2, 0x48, 0x44, 1, 0, 7 }, .trusted = true,
	.tx_rate = 50000000, .rx_rate = 0, .weight = 7,
};
static struct compsc_pf_state pf_replayed;
static unsigned pf_sets;

static int fake_get(const char *spec, struct compsc_pf_state *st, char *why, size_t len)
{
	*st = pf_held;
	return 0;
}

static int fake_set(const char *spec, const struct compsc_pf_state *st, char *why, size_t len)
{
	pf_replayed = *st;
	pf_sets++;
	return 0;
}

static const struct compsc_pf_ops fake_pf = { .get = fake_get, .set = fake_set };

/* hdnic's statistics capability with counters 1..6 (what a read-clear read returns). */
static void stats_cap(struct fake_srv *s)
{
	struct hdnic_stats_cap st = {
		.cap_vndr = PCI_CAP_ID_VNDR, .cap_len = sizeof(st),
		.cfg_type = HDNIC_CAP_VENDOR_CFG_TYPE, .vendor_id = HDNIC_DB_CAP_VENDOR_ID,
		.magic = HDNIC_STATS_CAP_MAGIC,
	};

	for (unsigned i = 0; i < HDNIC_NR_STATS; i++)
		st.counter[i] = i + 1;
	memcpy(s->cfg + STATS_POS, &st, sizeof(st));
	s->cfg[PCI_CAPABILITY_LIST] = STATS_POS;
	put16(s->cfg + PCI_STATUS, PCI_STATUS_CAP_LIST);
}

/* The harness's device (an 82576 VF), with the statistics capability. */
static void compsc_srv(struct fake_srv *s)
{
	s->no_migration = true;
	stats_cap(s);
}

static void compsc_srv_migratable(struct fake_srv *s)
{
	stats_cap(s);
}

static void attach_compsc(void (*tweak)(struct fake_srv *))
{
	attach(tweak);
	vp = container_of(device_find(&vm, "vfio0"), struct vfio_pci, dev);
	compsc_set_pf_ops(&fake_pf);
	memset(&pf_replayed, 0, sizeof(pf_replayed));
	pf_sets = 0;
}

static int setup_compsc(void **st) { attach_compsc(compsc_srv); return 0; }
static int setup_compsc_migratable(void **st) { attach_compsc(compsc_srv_migratable); return 0; }

static int teardown_compsc(void **st)
{
	teardown(st);
	compsc_set_pf_ops(NULL);
	return 0;
}

static uint32_t cfg_read32(uint32_t off)
{
	uint32_t v;

	pci_bus_cfg_access(vm.pci, vp->pd.devfn, off, &v, 4, false);
	return v;
}

static void cfg_write32(uint32_t off, uint32_t v)
{
	pci_bus_cfg_access(vm.pci, vp->pd.devfn, off, &v, 4, true);
}

static struct compsc_page *page(void)
{
	return gpa_to_hva(&vm.mem, PAGE_GPA, sizeof(struct compsc_page));
}

/* What a driver does to opt in: set the page up, write its address. */
static uint16_t opt_in(void)
{
	struct compsc_page *p = page();

	memset(p, 0, sizeof(*p));
	p->magic = COMPSC_PAGE_MAGIC;
	p->version = COMPSC_VERSION;
	p->nr_stats = HDNIC_NR_STATS;
	cfg_write32(COMPSC_ECAP_POS + offsetof(struct compsc_ecap, page_hi), 0);
	cfg_write32(COMPSC_ECAP_POS + offsetof(struct compsc_ecap, page_lo),
		    (uint32_t)PAGE_GPA | COMPSC_PAGE_ENABLE);
	return (uint16_t)(cfg_read32(COMPSC_ECAP_POS + 8) >> 16);
}

static void test_capability_advertised(void **st)
{
	uint32_t hdr = cfg_read32(COMPSC_ECAP_POS), vsec = cfg_read32(COMPSC_ECAP_POS + 4);

	assert_int_equal(hdr & 0xffff, COMPSC_ECAP_ID);
	assert_int_equal((hdr >> 16) & 0xf, COMPSC_ECAP_VER);
	assert_int_equal(hdr >> 20, 0);				/* the last one */
	assert_int_equal(vsec & 0xffff, COMPSC_VSEC_ID);
	assert_int_equal(vsec >> 20, sizeof(struct compsc_ecap));
	assert_int_equal(cfg_read32(COMPSC_ECAP_POS + 8), COMPSC_VERSION);	/* status 0 */
	assert_int_equal(cfg_read32(COMPSC_ECAP_POS + 20), COMPSC_LOCK_TIMEOUT_MS);
	/* read-only fields stay */
	cfg_write32(COMPSC_ECAP_POS, 0);
	cfg_write32(COMPSC_ECAP_POS + 8, 0xffffffff);
	assert_int_equal(cfg_read32(COMPSC_ECAP_POS) & 0xffff, COMPSC_ECAP_ID);
	assert_int_equal(cfg_read32(COMPSC_ECAP_POS + 8), COMPSC_VERSION);
}

static void test_migratable_device_has_no_capability(void **st)
{
	assert_false(vp->compsc.offered);
	assert_int_not_equal(cfg_read32(COMPSC_ECAP_POS) & 0xffff, COMPSC_ECAP_ID);
	assert_int_equal(devices_can_migrate(&vm, 0, NULL, 0), 0);
}

static void test_guest_not_opted_in_is_refused(void **st)
{
	char why[256] = "";

	assert_int_equal(devices_can_migrate(&vm, 0, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "device vfio0 (vfio-pci) cannot migrate: "));
	assert_non_null(strstr(why, "has no VFIO migration support and its guest driver did not "
			       "opt into CompSC (devices/compsc.md)"));
	assert_non_null(strstr(why, sock_path));
	/* nor can it be paused: its DMA cannot be stopped */
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), -ENOTSUP);
	assert_non_null(strstr(why, "did not opt into CompSC"));
	assert_int_equal(vm.state, VM_RUNNING);
	assert_int_equal(srv->resets, 0);
}

static void test_bad_page_refused(void **st)
{
	cfg_write32(COMPSC_ECAP_POS + offsetof(struct compsc_ecap, page_lo),
		    0x20000 | COMPSC_PAGE_ENABLE);		/* no magic there */
	assert_int_equal(cfg_read32(COMPSC_ECAP_POS + 8) >> 16, COMPSC_ST_REFUSED);
	cfg_write32(COMPSC_ECAP_POS + offsetof(struct compsc_ecap, page_hi), 0x7fff);
	assert_int_equal(opt_in(), COMPSC_ST_ACTIVE);	/* page_hi written back to 0 */
	cfg_write32(COMPSC_ECAP_POS + offsetof(struct compsc_ecap, page_hi), 0x7fff);
	cfg_write32(COMPSC_ECAP_POS + offsetof(struct compsc_ecap, page_lo),
		    (uint32_t)PAGE_GPA | COMPSC_PAGE_ENABLE);	/* not RAM */
	assert_int_equal(cfg_read32(COMPSC_ECAP_POS + 8) >> 16, COMPSC_ST_REFUSED);
	assert_int_equal(devices_can_migrate(&vm, 0, NULL, 0), -EOPNOTSUPP);
}

static void test_pause_locks_reads_counters_resets_and_resume_restores(void **st)
{
	char why[256] = "";
	struct compsc_page *p;

	assert_int_equal(opt_in(), COMPSC_ST_ACTIVE);
	assert_int_equal(devices_can_migrate(&vm, 0, why, sizeof(why)), 0);
	/* post-copy would hand the device over before the shared page arrived */
	assert_int_equal(devices_can_migrate(&vm, DEVICE_MIG_POSTCOPY, why, sizeof(why)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(why, "post-copy cannot do"));
	p = page();
	p->stats_residual[0] = 100;
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	assert_int_equal(vm.state, VM_PAUSED);
	assert_int_equal(p->lock, COMPSC_LOCK_WRITER);
	assert_int_equal(srv->resets, 1);		/* its DMA stopped the only way it can */
	assert_int_equal(srv->nr_mig_seq, 0);		/* no VFIO migration asked for */
	for (unsigned i = 0; i < HDNIC_NR_STATS; i++)
		assert_int_equal(p->stats_residual[i], (i ? 0 : 100) + i + 1);
	assert_int_equal(p->counter, 0);
	assert_int_equal(vm_resume(&vm, why, sizeof(why)), 0);
	assert_int_equal(p->counter, 1);		/* the driver restores its reset device */
	assert_int_equal(p->lock, 0);
	assert_int_equal(vm.state, VM_RUNNING);
}

static void test_reader_holding_the_lock_fails_pause_cleanly(void **st)
{
	char why[256] = "";
	struct compsc_page *p;

	assert_int_equal(opt_in(), COMPSC_ST_ACTIVE);
	vp->compsc.lock_timeout_ms = 50;
	p = page();
	p->lock = 1;					/* a reader that never leaves */
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), -ETIMEDOUT);
	assert_non_null(strstr(why, "device vfio0 (vfio-pci) refused to pause: "));
	assert_non_null(strstr(why, "the guest driver held the CompSC lock for more than 50 ms"));
	assert_int_equal(p->lock, 1);			/* writer bit gone, reader kept */
	assert_int_equal(p->counter, 0);
	assert_int_equal(vm.state, VM_RUNNING);
	assert_int_equal(srv->resets, 0);		/* the device was never touched */
	assert_false(vp->compsc.locked);
}

static void *leave_later(void *arg)
{
	struct timespec t = { 0, 30 * 1000 * 1000 };

	nanosleep(&t, NULL);
	__atomic_fetch_sub(&page()->lock, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* A reader inside its section when hdvm asks: the writer waits for it. */
static void test_writer_waits_for_the_reader(void **st)
{
	char why[256] = "";
	pthread_t t;

	assert_int_equal(opt_in(), COMPSC_ST_ACTIVE);
	page()->lock = 1;
	pthread_create(&t, NULL, leave_later, NULL);
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	pthread_join(t, NULL);
	assert_true(vp->compsc.lock_waits_us >= 20000);
	assert_int_equal(page()->lock, COMPSC_LOCK_WRITER);
	assert_int_equal(vm_resume(&vm, why, sizeof(why)), 0);
	assert_int_equal(page()->lock, 0);
}

/*
 * Source: pause, save (page + PF state from the PF).  Destination (the same
 * VM object, device fresh): RAM arrives with the lock word as the source
 * left it, load replays the PF state, post_load moves the counter and
 * unlocks.
 */
static void test_save_load_replays_pf_state(void **st)
{
	struct state_buf sb, rd;
	char why[256] = "";
	struct compsc_page *p = page();

	assert_int_equal(opt_in(), COMPSC_ST_ACTIVE);
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save(&vm, &sb), 0);
	/* as RAM reaches the destination: WRITER held, counter as it was */
	assert_int_equal(p->lock, COMPSC_LOCK_WRITER);
	compsc_offer(vp);				/* a fresh device on the destination */
	vp->compsc.offered = true;
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(devices_load(&vm, &rd, why, sizeof(why)), 0);
	assert_true(state_at_end(&rd));
	assert_int_equal(pf_sets, 1);
	assert_memory_equal(pf_replayed.mac, pf_held.mac, 6);
	assert_true(pf_replayed.trusted);
	assert_int_equal(pf_replayed.tx_rate, 50000000);
	assert_int_equal(pf_replayed.weight, 7);
	assert_int_equal(p->counter, 1);
	assert_int_equal(p->lock, 0);
	assert_true(p->flags & COMPSC_F_PF_REPLAYED);
	assert_int_equal(cfg_read32(COMPSC_ECAP_POS + 8) >> 16, COMPSC_ST_ACTIVE);
	assert_int_equal(cfg_read32(COMPSC_ECAP_POS + 12), (uint32_t)PAGE_GPA | 1);
	state_free(&sb);
	vm.state = VM_RUNNING;
}

/* ---- the PF client against a pf.sock speaking devices/hdnic/mgmt.h ---- */

struct pf_srv {
	int lfd;
	unsigned n;
	char req[4][512];
};

static void *pf_serve(void *arg)
{
	static const char *const replies[] = {
		"{\"ok\":true,\"vfs\":[{\"dev\":\"vf0\",\"mac\":\"02:00:00:00:00:01\"}],"
		"\"adis\":[{\"dev\":\"adi-web\",\"mac\":\"02:48:44:aa:00:07\","
		"\"trusted\":true,\"qos\":{\"tx_rate\":50000000,\"rx_rate\":0,"
		"\"weight\":7}}]}\n",
		"{\"ok\":true}\n", "{\"ok\":true}\n",
		"{\"ok\":false,\"error\":\"no such device\"}\n",
	};
	struct pf_srv *s = arg;

	for (s->n = 0; s->n < 4; s->n++) {
		int fd = accept(s->lfd, NULL, NULL);
		ssize_t got;

		if (fd < 0)
			break;
		size_t have = 0;

		while (have < sizeof(s->req[0]) - 1 && !memchr(s->req[s->n], '\n', have)) {
			got = recv(fd, s->req[s->n] + have, sizeof(s->req[0]) - 1 - have, 0);
			if (got <= 0)
				break;
			have += (size_t)got;
		}
		s->req[s->n][have] = 0;
		send(fd, replies[s->n], strlen(replies[s->n]), MSG_NOSIGNAL);
		close(fd);
	}
	return NULL;
}

static void test_pf_client_speaks_hdnic_mgmt(void **st)
{
	char dir[] = "/tmp/hdvm-test-pf.XXXXXX", spec[128], why[160] = "";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct compsc_pf_state got = { 0 };
	struct pf_srv s = { 0 };
	pthread_t t;

	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/pf.sock", dir);
	s.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(s.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s.lfd, 4), 0);
	pthread_create(&t, NULL, pf_serve, &s);
	snprintf(spec, sizeof(spec), "%s/adi-web.sock", dir);

	assert_int_equal(compsc_pf_hdnic.get(spec, &got, why, sizeof(why)), 0);
	assert_true(got.valid && got.trusted);
	assert_int_equal(got.mac[3], 0xaa);
	assert_int_equal(got.mac[5], 7);
	assert_int_equal(got.tx_rate, 50000000);
	assert_int_equal(got.weight, 7);
	assert_non_null(strstr(s.req[0], "\"cmd\":\"list\""));
	/* set: set-mac, then trust; the PF refuses qos: the reason comes back */
	assert_int_equal(compsc_pf_hdnic.set(spec, &got, why, sizeof(why)), -EIO);
	pthread_join(t, NULL);
	assert_non_null(strstr(s.req[1], "\"cmd\":\"set-mac\",\"dev\":\"adi-web\","
			       "\"mac\":\"02:48:44:aa:00:07\""));
	assert_non_null(strstr(s.req[2], "\"cmd\":\"trust\",\"dev\":\"adi-web\",\"on\":true"));
	assert_non_null(strstr(s.req[3], "\"tx_rate\":50000000"));
	assert_non_null(strstr(why, "no such device"));
	/* not an hdnic function socket */
	assert_int_equal(compsc_pf_hdnic.get("/tmp/x", &got, why, sizeof(why)), -EINVAL);
	close(s.lfd);
	unlink(sa.sun_path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_capability_advertised, setup_compsc,
						teardown_compsc),
		cmocka_unit_test_setup_teardown(test_migratable_device_has_no_capability,
						setup_compsc_migratable, teardown_compsc),
		cmocka_unit_test_setup_teardown(test_guest_not_opted_in_is_refused, setup_compsc,
						teardown_compsc),
		cmocka_unit_test_setup_teardown(test_bad_page_refused, setup_compsc,
						teardown_compsc),
		cmocka_unit_test_setup_teardown(
			test_pause_locks_reads_counters_resets_and_resume_restores, setup_compsc,
			teardown_compsc),
		cmocka_unit_test_setup_teardown(test_reader_holding_the_lock_fails_pause_cleanly,
						setup_compsc, teardown_compsc),
		cmocka_unit_test_setup_teardown(test_writer_waits_for_the_reader, setup_compsc,
						teardown_compsc),
		cmocka_unit_test_setup_teardown(test_save_load_replays_pf_state, setup_compsc,
						teardown_compsc),
		cmocka_unit_test(test_pf_client_speaks_hdnic_mgmt),
	};

	/* a busy host is not a stalled server: the stall tests set their own */
	setenv("HDVM_VFIO_STALL_MS", "5000", 1);

	return cmocka_run_group_tests(tests, NULL, NULL);
}
