// SPDX-License-Identifier: MIT
/*
 * The device shape: pause is all or nothing (a refusal resumes the devices
 * already paused and names the device and its reason), the state stream
 * starts with a manifest that the loader checks entry by entry, sections and
 * post-load, and the IRQ helpers of vmm/irq.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <linux/kvm.h>

#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "devices/platform.h"
#include "migration/state.h"
#include "vmm/iobus.h"
#include "vmm/irq.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define IER_RX_DATA	0x01

struct counter_dev {
	struct device dev;
	uint32_t value;
	bool paused;
	int pause_ret;		/* what pause returns */
	unsigned pauses, resumes, post_loads;
};

static struct counter_dev *to_counter(struct device *d)
{
	return container_of(d, struct counter_dev, dev);
}

static int counter_save(struct device *d, struct state_buf *sb)
{
	state_put_u32(sb, to_counter(d)->value);
	return 0;
}

static int counter_load(struct device *d, struct state_buf *sb)
{
	to_counter(d)->value = state_get_u32(sb);
	return 0;
}

static int counter_post_load(struct device *d)
{
	to_counter(d)->post_loads++;
	return 0;
}

static int counter_pause(struct device *d)
{
	struct counter_dev *c = to_counter(d);

	c->pauses++;
	if (c->pause_ret) {
		device_set_error(d, "the widget is busy");
		return c->pause_ret;
	}
	c->paused = true;
	return 0;
}

static int counter_resume(struct device *d)
{
	struct counter_dev *c = to_counter(d);

	c->resumes++;
	c->paused = false;
	return 0;
}

static const struct device_mig_ops counter_mig = {
	.version = 3,
	.save_final = counter_save,
	.load = counter_load,
	.post_load = counter_post_load,
};

static const struct device_ops counter_ops = {
	.type = "counter", .pause = counter_pause, .resume = counter_resume,
	.mig = &counter_mig,
};

/* A device with no state of its own: in the manifest, no section. */
static const struct device_ops plain_ops = {
	.type = "plain",
	.pause = device_vcpu_driven_pause,
	.resume = device_vcpu_driven_resume,
};

static struct vm vm;
static struct counter_dev a, b, c;
static struct device plain;

static int setup(void **st)
{
	memset(&vm, 0, sizeof(vm));
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	device_init(&a.dev, &counter_ops, "a");
	device_init(&plain, &plain_ops, "p");
	device_init(&b.dev, &counter_ops, "b");
	device_init(&c.dev, &counter_ops, "c");
	device_add(&vm, &a.dev);
	device_add(&vm, &plain);
	device_add(&vm, &b.dev);
	device_add(&vm, &c.dev);
	return 0;
}

static void test_pause_all(void **st)
{
	char why[256] = "";

	assert_int_equal(devices_pause(&vm, why, sizeof(why)), 0);
	assert_true(a.paused && b.paused && c.paused);
	assert_int_equal(devices_resume(&vm, why, sizeof(why)), 0);
	assert_false(a.paused || b.paused || c.paused);
}

static void test_pause_refused_rolls_back(void **st)
{
	char why[256] = "";

	b.pause_ret = -EBUSY;
	assert_int_equal(devices_pause(&vm, why, sizeof(why)), -EBUSY);
	/* the one before was paused and is running again; the one after never paused */
	assert_int_equal(a.pauses, 1);
	assert_int_equal(a.resumes, 1);
	assert_false(a.paused);
	assert_int_equal(b.resumes, 0);
	assert_int_equal(c.pauses, 0);
	assert_string_equal(why, "device b (counter) refused to pause: the widget is busy");

	/* without a sentence of its own, the errno says why */
	b.dev.error[0] = 0;
	b.pause_ret = -EIO;
	device_init(&b.dev, &plain_ops, "b");	/* re-init: no error text */
	b.dev.ops = &counter_ops;
	assert_int_equal(devices_pause(&vm, why, sizeof(why)), -EIO);
	assert_non_null(strstr(why, "device b (counter) refused to pause"));
}

static void save(struct state_buf *w)
{
	state_init_writer(w);
	assert_int_equal(devices_save(&vm, w), 0);
}

static void test_save_load(void **st)
{
	struct state_buf w, r;
	char why[256] = "";

	a.value = 11;
	b.value = 22;
	c.value = 33;
	save(&w);
	a.value = b.value = c.value = 0;
	state_init_reader(&r, w.data, w.len);
	assert_int_equal(devices_load(&vm, &r, why, sizeof(why)), 0);
	assert_int_equal(a.value, 11);
	assert_int_equal(b.value, 22);
	assert_int_equal(c.value, 33);
	assert_int_equal(a.post_loads, 1);
	assert_true(state_at_end(&r));

	/* a stream cut anywhere is refused */
	for (size_t cut = 0; cut < w.len; cut++) {
		state_init_reader(&r, w.data, cut);
		assert_true(devices_load(&vm, &r, why, sizeof(why)) < 0);
	}
	state_free(&w);
}

static int load_why(struct state_buf *w, char *why, size_t len)
{
	struct state_buf r;

	state_init_reader(&r, w->data, w->len);
	why[0] = 0;
	return devices_load(&vm, &r, why, len);
}

static void test_manifest_mismatch_named(void **st)
{
	struct state_buf w;
	char why[256];
	static struct counter_dev extra;

	save(&w);

	/* another device where b was */
	snprintf(b.dev.id, sizeof(b.dev.id), "x");
	assert_int_equal(load_why(&w, why, sizeof(why)), -ENODEV);
	assert_string_equal(why, "device state: the stream has device b (counter) where this "
			    "machine has x (counter)");
	snprintf(b.dev.id, sizeof(b.dev.id), "b");

	/* same id, other type */
	plain.ops = &counter_ops;
	assert_int_equal(load_why(&w, why, sizeof(why)), -ENODEV);
	assert_string_equal(why, "device state: device p is a plain in the stream but a "
			    "counter here");
	plain.ops = &plain_ops;

	/* a state version this build does not read */
	{
		static struct device_mig_ops v4;
		static struct device_ops ops4;

		v4 = counter_mig;
		v4.version = 4;
		ops4 = counter_ops;
		ops4.mig = &v4;
		c.dev.ops = &ops4;
		assert_int_equal(load_why(&w, why, sizeof(why)), -EPROTO);
		assert_string_equal(why, "device state: device c (counter) has state version 3 "
				    "in the stream, this hdvm reads version 4");
		c.dev.ops = &counter_ops;
	}

	/* this machine has one more device */
	device_init(&extra.dev, &counter_ops, "late");
	device_add(&vm, &extra.dev);
	assert_int_equal(load_why(&w, why, sizeof(why)), -ENODEV);
	assert_string_equal(why, "device state: this machine has device late (counter) which "
			    "the stream lacks");
	c.dev.next = NULL;

	/* ... or one fewer */
	b.dev.next = NULL;
	assert_int_equal(load_why(&w, why, sizeof(why)), -ENODEV);
	assert_string_equal(why, "device state: the stream has device c (counter) which this "
			    "machine lacks");
	b.dev.next = &c.dev;

	/* nothing was loaded by any refused attempt */
	assert_int_equal(a.post_loads, 0);
	assert_int_equal(load_why(&w, why, sizeof(why)), 0);

	/* a stream without the manifest */
	state_free(&w);
	state_init_writer(&w);
	state_put_u32(&w, 0x12345678);
	assert_int_equal(load_why(&w, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "no device manifest"));
	state_free(&w);
}

/* ---- vmm/irq.c: the one place for KVM_IRQFD / IOEVENTFD / IRQ_LINE ---- */

static unsigned long last_req;
static struct kvm_irqfd last_irqfd;
static struct kvm_ioeventfd last_ioev;
static struct kvm_irq_level last_line;
static int fake_errno;

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	last_req = req;
	if (req == KVM_IRQFD)
		last_irqfd = *(struct kvm_irqfd *)arg;
	else if (req == KVM_IOEVENTFD)
		last_ioev = *(struct kvm_ioeventfd *)arg;
	else if (req == KVM_IRQ_LINE)
		last_line = *(struct kvm_irq_level *)arg;
	if (fake_errno) {
		errno = fake_errno;
		return -1;
	}
	return 0;
}

static void test_irq_helpers(void **st)
{
	struct vm_ioeventfd io = { .addr = 0xc000, .len = 2, .fd = 9, .pio = true,
				   .datamatch = true, .value = 5 };

	irq_set_ioctl(fake_ioctl);
	assert_int_equal(vm_irqfd(&vm, 7, 30, true), 0);
	assert_int_equal(last_req, KVM_IRQFD);
	assert_int_equal(last_irqfd.fd, 7);
	assert_int_equal(last_irqfd.gsi, 30);
	assert_int_equal(last_irqfd.flags, 0);
	assert_int_equal(vm_irqfd(&vm, 7, 30, false), 0);
	assert_int_equal(last_irqfd.flags, KVM_IRQFD_FLAG_DEASSIGN);
	assert_int_equal(vm_irqfd(&vm, 7, -1, true), -EINVAL);	/* no route: no ioctl */

	assert_int_equal(vm_ioeventfd(&vm, &io, true), 0);
	assert_int_equal(last_ioev.addr, 0xc000);
	assert_int_equal(last_ioev.len, 2);
	assert_int_equal(last_ioev.datamatch, 5);
	assert_int_equal(last_ioev.flags, KVM_IOEVENTFD_FLAG_PIO | KVM_IOEVENTFD_FLAG_DATAMATCH);
	assert_int_equal(vm_ioeventfd(&vm, &io, false), 0);
	assert_true(last_ioev.flags & KVM_IOEVENTFD_FLAG_DEASSIGN);

	assert_int_equal(vm_irq_line(&vm, 4, 1), 0);
	assert_int_equal(last_line.irq, 4);
	assert_int_equal(last_line.level, 1);

	fake_errno = EBADF;	/* the reason reaches the caller */
	assert_int_equal(vm_irq_line(&vm, 4, 0), -EBADF);
	assert_int_equal(vm_irqfd(&vm, 7, 30, true), -EBADF);
	fake_errno = 0;
	irq_set_ioctl(NULL);
}

/* The UART: console input while paused waits in its FIFO, the IRQ line is not driven. */
static unsigned lines;

static int line_ioctl(int fd, unsigned long req, void *arg)
{
	if (req == KVM_IRQ_LINE) {
		last_line = *(struct kvm_irq_level *)arg;
		lines++;
	}
	return 0;
}

static void test_serial_holds_its_line_while_paused(void **st)
{
	static struct vm v;
	struct device *com;
	uint8_t b = IER_RX_DATA;

	memset(&v, 0, sizeof(v));
	v.vm_fd = v.console_out_fd = -1;
	iobus_init(&v.pio, "pio");
	com = serial_create();
	device_add(&v, com);
	assert_int_equal(devices_realize(&v), 0);
	irq_set_ioctl(line_ioctl);
	assert_true(iobus_access(&v.pio, PLAT_COM1_PORT + 1, &b, 1, true));	/* IER: RX */
	lines = 0;

	assert_int_equal(devices_pause(&v, NULL, 0), 0);
	serial_input(com, (const uint8_t *)"k", 1);
	assert_int_equal(lines, 0);			/* nothing raised while paused */
	assert_int_equal(devices_resume(&v, NULL, 0), 0);
	assert_int_equal(lines, 1);			/* the input waited, now it is seen */
	assert_int_equal(last_line.irq, PLAT_COM1_IRQ);
	assert_int_equal(last_line.level, 1);
	assert_true(iobus_access(&v.pio, PLAT_COM1_PORT, &b, 1, false));
	assert_int_equal(b, 'k');
	assert_int_equal(last_line.level, 0);		/* read: the line drops */

	irq_set_ioctl(NULL);
	devices_unrealize(&v);
	free(com);
	iobus_destroy(&v.pio);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_pause_all, setup),
		cmocka_unit_test_setup(test_pause_refused_rolls_back, setup),
		cmocka_unit_test_setup(test_save_load, setup),
		cmocka_unit_test_setup(test_manifest_mismatch_named, setup),
		cmocka_unit_test_setup(test_irq_helpers, setup),
		cmocka_unit_test(test_serial_holds_its_line_while_paused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
