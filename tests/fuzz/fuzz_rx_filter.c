// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the receive-filter commands a guest driver sends on
 * the control queue (VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_MAC): untrusted
 * bytes straight from guest memory.  The input is a sequence of records
 *   u8 class-and-command (bit 7: MAC class, else RX; bits 0-6: command),
 *   u8 length, that many bytes of command data,
 * each run against the VF or (odd first byte) the two-pair ADI, after a
 * driver negotiated every offered feature.  After every command the filter
 * must be one a saved stream would accept, and asking it about any
 * destination (taken from the input) must not fault; the device stays out
 * of NEEDS_RESET.
 */
#include <linux/virtio_net.h>

#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	struct vdev *vd;
	size_t i = 1;

	if (!size)
		return 0;
	fz_setup();
	vd = fz_devs[data[0] & 1];
	fz_driver_up(vd);
	while (i + 2 <= size) {
		uint8_t op = data[i], len = data[i + 1];
		const uint8_t *arg = data + i + 2;
		uint8_t ack;

		if (len > size - i - 2)
			len = (uint8_t)(size - i - 2);
		ack = op & 0x80 ? vdev_ctrl_mac(vd, op & 0x7f, arg, len)
				: vdev_ctrl_rx(vd, op & 0x7f, arg, len);
		if ((ack != VIRTIO_NET_OK && ack != VIRTIO_NET_ERR) ||
		    !vdev_rx_filter_valid(&vd->vn.rxf) || vd->stats.needs_reset)
			abort();
		vdev_rx_wanted(vd, bcast);
		if (len >= 6) {
			vdev_rx_wanted(vd, arg);
			vdev_rx_wants_unknown(vd, arg);
		}
		i += 2 + (size_t)len;
	}
	fz_pass();
	fz_reset();
	return 0;
}
