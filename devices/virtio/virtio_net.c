// SPDX-License-Identifier: MIT
/*
 * The paravirtual NIC as an hdvm device: created with the VM (PCI function,
 * eventfds), realized at boot (TAP, I/O thread), and driven through the
 * device ops: reset, pause/resume (the I/O thread stops touching guest
 * memory), save/load (negotiated features, status, queue addresses and ring
 * positions, MAC), unrealize (thread joined, TAP closed and deleted if hdvm
 * created it).
 */
#include "devices/virtio/virtio_net.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/virtio_net_int.h"
#include "migration/state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define NET_STATE_MAGIC		0x4e455431	/* "NET1" */
#define NET_DEVCFG_LEN		8		/* mac[6], status */

#define NET_FEATURES	(VIRTIO_FEATURE(VIRTIO_F_VERSION_1) |		\
			 VIRTIO_FEATURE(VIRTIO_NET_F_MAC) |		\
			 VIRTIO_FEATURE(VIRTIO_NET_F_STATUS) |		\
			 VIRTIO_FEATURE(VIRTIO_RING_F_EVENT_IDX))

static const struct device_ops virtio_net_ops;

static struct virtio_net *to_net(struct device *dev)
{
	return container_of(dev, struct virtio_net, dev);
}

struct virtio_net *virtio_net_of(struct device *dev)
{
	return dev && dev->ops == &virtio_net_ops ? to_net(dev) : NULL;
}

/* ---- what the transport asks of the device ---- */

static void net_cfg_read(void *opaque, uint32_t off, void *data, unsigned len)
{
	struct virtio_net *n = opaque;
	uint8_t cfg[NET_DEVCFG_LEN];

	memcpy(cfg, n->mac, 6);
	cfg[6] = (uint8_t)n->link_status;
	cfg[7] = (uint8_t)(n->link_status >> 8);
	memcpy(data, cfg + off, len);	/* the transport keeps off + len inside */
}

static void net_stop(void *opaque) { net_io_stop(opaque); }
static void net_start(void *opaque) { net_io_start(opaque); }

static const struct virtio_pci_ops net_pci_ops = {
	.cfg_read = net_cfg_read,	/* MAC and status are read-only */
	.stop = net_stop,
	.start = net_start,
};

/* ---- device ops ---- */

/*
 * A migration's destination (--incoming) takes over the source's TAP fd when
 * one came over unix:, else opens the TAP itself; either way its I/O thread
 * starts stopped and reads the TAP only once the VM runs here
 * (virtio_net_incoming_run), while the source may still be reading it.
 */
static int net_realize(struct device *dev, struct vm *vm)
{
	struct virtio_net *n = to_net(dev);
	int err;

	if (vm->cfg.incoming && (int)n->index < vm->cfg.nr_net_fds) {
		err = net_tap_adopt(&n->tap, n->opts.tap, vm->cfg.net_fds[n->index]);
	} else {
		err = net_tap_open(&n->tap, n->opts.tap);
		if (err == -EBUSY && vm->cfg.incoming)
			pr_err("--net tap=%s: the migration's source holds it if it runs on this "
			       "host: migrate over unix:, which hands the source's TAP over, or "
			       "give the source's VM a TAP no one else uses here", n->opts.tap);
	}
	if (err < 0)
		return err;
	if (vm->cfg.incoming) {
		n->held = true;
		net_io_stop(n);		/* before the thread: it never reads the TAP */
	}
	return net_io_start_thread(n);
}

static void net_reset(struct device *dev)
{
	virtio_pci_reset(&to_net(dev)->vp);
}

/*
 * Paused: the I/O thread has nothing in flight that reads guest memory and
 * leaves the queues alone (no RX copy, no TX, no used entry, no interrupt).
 * Frames keep arriving in the TAP's kernel queue; up to NET_RX_SLOTS of
 * them wait in the bounce slots, the rest in the kernel (which drops and
 * counts them when its queue is full).
 */
static int net_pause(struct device *dev)
{
	net_io_stop(to_net(dev));
	return 0;
}

static int net_resume(struct device *dev)
{
	net_io_start(to_net(dev));
	return 0;
}

static int net_save(struct device *dev, struct state_buf *sb)
{
	struct virtio_net *n = to_net(dev);

	net_io_stop(n);		/* a consistent ring position even if not paused */
	state_put_u32(sb, NET_STATE_MAGIC);
	state_put_bytes(sb, n->mac, sizeof(n->mac));
	state_put_u16(sb, n->link_status);
	virtio_pci_save(&n->vp, sb);
	net_io_start(n);
	return state_ok(sb) ? 0 : -ENOMEM;
}

static int net_load(struct device *dev, struct state_buf *sb)
{
	struct virtio_net *n = to_net(dev);
	uint32_t magic = state_get_u32(sb);
	uint8_t mac[6];
	uint16_t link;
	int ret;

	state_get_bytes(sb, mac, sizeof(mac));
	link = state_get_u16(sb);
	if (!state_ok(sb) || magic != NET_STATE_MAGIC || (mac[0] & 1)) {
		device_set_error(dev, "saved state is not a virtio-net device's");
		return -EINVAL;
	}
	ret = virtio_pci_load(&n->vp, sb);
	if (ret < 0)
		return ret;
	/* the guest keeps the MAC it had, whatever this side was started with */
	memcpy(n->mac, mac, sizeof(mac));
	n->link_status = link & VIRTIO_NET_S_LINK_UP;
	return 0;
}

static void net_unrealize(struct device *dev)
{
	struct virtio_net *n = to_net(dev);
	struct virtio_net_stats st;

	if (n->io.thread_started && !virtio_net_get_stats(dev, &st))
		pr_debug("%s: rx %llu frames (%llu dropped), tx %llu (%llu errors), "
			 "%llu broken rings, %llu kicks through hdvm", n->name,
			 (unsigned long long)st.rx_packets, (unsigned long long)st.rx_dropped,
			 (unsigned long long)st.tx_packets, (unsigned long long)st.tx_errors,
			 (unsigned long long)st.ring_errors, (unsigned long long)st.notify_exits);
	net_io_destroy(n);
	net_output_destroy(n);		/* what was never committed goes nowhere */
	net_tap_close(&n->tap);
	virtio_pci_destroy(&n->vp);
}

static int virtio_net_output_held(struct device *dev, uint64_t *frames)
{
	struct virtio_net_output_stats st;
	int ret = virtio_net_output_stats(dev, &st);

	if (!ret)
		*frames = st.held;
	return ret;
}

static const struct device_mig_ops virtio_net_mig = {
	.version = 1,
	.output_commit = virtio_net_output,
	.output_held = virtio_net_output_held,
	.save_final = net_save,
	.load = net_load,
};

static const struct device_ops virtio_net_ops = {
	.type = "virtio-net",
	.realize = net_realize,
	.reset = net_reset,
	.pause = net_pause,
	.resume = net_resume,
	.unrealize = net_unrealize,
	.mig = &virtio_net_mig,
};

/* ---- creation ---- */

int virtio_net_create(struct vm *vm, const struct net_opts *opts, unsigned index,
		      struct device **out)
{
	struct virtio_net *n = xzalloc(sizeof(*n));
	struct virtio_pci_params p = {
		.device_type = VIRTIO_NET_TYPE,
		.class_code = VIRTIO_NET_CLASS,
		.features = NET_FEATURES,
		.nr_queues = VIRTIO_NET_QUEUES,
		.queue_max_size = VIRTIO_NET_QUEUE_SIZE,
		.device_writes = 1u << VIRTIO_NET_RXQ,
		.devcfg_len = NET_DEVCFG_LEN,
		.ops = &net_pci_ops,
		.opaque = n,
	};
	char id[16];
	int ret;

	snprintf(id, sizeof(id), "net%u", index);
	device_init(&n->dev, &virtio_net_ops, id);
	snprintf(n->name, sizeof(n->name), "virtio-net %s", id);
	n->vm = vm;
	n->opts = *opts;
	n->index = index;
	n->tap.fd = -1;
	n->io.ctl_fd = -1;
	n->seccomp = vm->cfg.seccomp;
	n->link_status = VIRTIO_NET_S_LINK_UP;
	if (opts->mac_given)
		memcpy(n->mac, opts->mac, 6);
	else
		net_default_mac(vm->cfg.name, index, n->mac);
	p.name = n->name;
	p.lock = &n->dev.lock;
	net_output_init(n);
	/* the transport first: it marks its descriptors unused, so teardown is safe */
	ret = virtio_pci_init(&n->vp, vm, &p);
	if (!ret)
		ret = net_io_init(n);
	if (!ret)
		ret = virtio_pci_register(&n->vp);
	if (ret < 0) {
		net_unrealize(&n->dev);
		free(n);
		return ret;
	}
	device_add(vm, &n->dev);
	*out = &n->dev;
	return 0;
}

int virtio_net_create_all(struct vm *vm)
{
	struct net_opts opts[NET_MAX_DEVICES];
	struct device *dev;
	char mac[18];
	int ret;

	ret = net_opts_parse_all(vm->cfg.net, vm->cfg.nr_net, vm->cfg.name, opts);
	if (ret < 0)
		return ret;
	for (int i = 0; i < vm->cfg.nr_net; i++) {
		ret = virtio_net_create(vm, &opts[i], i, &dev);
		if (ret < 0)
			return ret;
		pr_debug("net%d: virtio-net on TAP %s, MAC %s", i, opts[i].tap,
			 net_mac_str(opts[i].mac, mac));
	}
	return 0;
}

int virtio_net_tap_fd(struct device *dev)
{
	struct virtio_net *n = virtio_net_of(dev);

	if (!n)
		return -ENODEV;
	return n->tap.fd >= 0 ? n->tap.fd : -EBADF;
}

void virtio_net_incoming_run(struct vm *vm)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		struct virtio_net *n = virtio_net_of(d);

		if (n && n->held) {
			n->held = false;
			net_io_start(n);
		}
	}
}

int virtio_net_get_stats(struct device *dev, struct virtio_net_stats *st)
{
	struct virtio_net *n;

	if (!dev || dev->ops != &virtio_net_ops)
		return -EINVAL;
	n = to_net(dev);
	st->rx_packets = atomic_load(&n->stats.rx_packets);
	st->rx_bytes = atomic_load(&n->stats.rx_bytes);
	st->rx_dropped = atomic_load(&n->stats.rx_dropped);
	st->tx_packets = atomic_load(&n->stats.tx_packets);
	st->tx_bytes = atomic_load(&n->stats.tx_bytes);
	st->tx_errors = atomic_load(&n->stats.tx_errors);
	st->ring_errors = atomic_load(&n->vp.ring_errors);
	st->notify_exits = atomic_load(&n->vp.notify_exits);
	return 0;
}
