// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for hdnic's vfio-user message handling: every command
 * handler, and through REGION_WRITE and DMA_MAP the whole device model and
 * data path.  Input: a sequence of records
 *   u8 ctl, u16 len (LE), len bytes
 * ctl bit 7 picks the device (the VF or the two-pair ADI); bits 5-6: 0 = a
 * message (16-byte header + payload)
 * with (ctl & 3) fds attached, eventfds if bit 2 else the guest-RAM memfd;
 * 1 = write the bytes into guest RAM at 16 * (first u16); 2 = the bytes
 * arrive on the uplink as a frame; 3 = a polling pass.
 */
#include "tests/fuzz/fuzz_common.h"

static void run_message(struct vdev *vd, uint8_t ctl, const uint8_t *p, size_t len)
{
	struct vfu_msg m = { 0 };
	struct vfu_reply r = { .buf = vfu_reply_buf() };

	if (len < sizeof(m.hdr))
		return;
	memcpy(&m.hdr, p, sizeof(m.hdr));
	m.payload = (uint8_t *)p + sizeof(m.hdr);
	m.len = (uint32_t)(len - sizeof(m.hdr));
	m.nr_fds = ctl & 3;
	for (unsigned i = 0; i < m.nr_fds; i++)
		m.fds[i] = dup((ctl & 4) ? fz_eventfd : fz_memfd);
	vfu_dispatch(&vd->vfu->conn, &m, &r);
	for (unsigned i = 0; i < m.nr_fds; i++)
		if (m.fds[i] >= 0)
			close(m.fds[i]);
	if (r.len > VFU_REPLY_CAP || r.nr_fds > VFIO_USER_MAX_MSG_FDS)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_setup();
	while (size >= 3) {
		uint8_t ctl = data[0];
		size_t len = MIN((size_t)(data[1] | data[2] << 8), size - 3);
		const uint8_t *p = data + 3;
		struct vdev *vd = fz_devs[ctl >> 7];

		switch ((ctl >> 5) & 3) {
		case 0:
			run_message(vd, ctl, p, len);
			break;
		case 1:
			if (len >= 2)
				pwrite(fz_memfd, p + 2, len - 2, 16 * (off_t)(p[0] | p[1] << 8));
			break;
		case 2:
			if (len >= HDNIC_MIN_FRAME && len <= HDNIC_MAX_FRAME)
				nic_forward_from_uplink(fz_nic, p, (uint32_t)len);
			break;
		default:
			break;
		}
		fz_pass();
		data += 3 + len;
		size -= 3 + len;
	}
	fz_reset();
	return 0;
}
