// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for device-state loading (migration and checkpoint
 * streams are untrusted input on the destination).  Each input edits a
 * valid stream, saved from a function whose driver has its queues running
 * (the VF, or for odd-sized inputs the multi-queue ADI):
 *   u16 length (LE) the stream is cut or zero-extended to (mod len + 64),
 *   then (u16 offset, u8 value) pairs written into it.
 * Loading must fail cleanly or succeed, and a stream that loads must save
 * and load back identically.
 */
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vdev *vd;
	struct state_buf good, in, out, again;
	uint8_t *stream;
	size_t len;

	fz_setup();
	vd = fz_devs[size % FUZZ_DEVS];
	fz_driver_up(vd);
	vd->dev.ops->pause(&vd->dev);
	state_init_writer(&good);
	if (vd->dev.ops->save(&vd->dev, &good))
		abort();
	len = good.len;
	if (size >= 2)
		len = (size_t)(data[0] | data[1] << 8) % (good.len + 64);
	stream = calloc(1, len + 1);
	memcpy(stream, good.data, MIN(len, good.len));
	for (size_t i = 2; i + 3 <= size; i += 3) {
		size_t off = (size_t)(data[i] | data[i + 1] << 8);

		if (off < len)
			stream[off] = data[i + 2];
	}
	state_init_reader(&in, stream, len);
	if (vd->dev.ops->load(&vd->dev, &in) == 0) {
		state_init_writer(&out);
		if (vd->dev.ops->save(&vd->dev, &out))
			abort();
		state_init_reader(&again, out.data, out.len);
		if (vd->dev.ops->load(&vd->dev, &again) || !state_at_end(&again))
			abort();
		state_free(&out);
	}
	free(stream);
	state_free(&good);
	vd->dev.ops->resume(&vd->dev);
	fz_pass();
	fz_reset();
	return 0;
}
