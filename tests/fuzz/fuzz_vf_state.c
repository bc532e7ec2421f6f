// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for VF device-state loading (migration and checkpoint
 * streams are untrusted input on the destination).  Each input edits a
 * valid stream, saved from a VF whose driver has its queues running:
 *   u16 length (LE) the stream is cut or zero-extended to (mod len + 64),
 *   then (u16 offset, u8 value) pairs written into it.
 * Loading must fail cleanly or succeed, and a stream that loads must save
 * and load back identically.
 */
#include "tests/fuzz/fuzz_common.h"

static void w(struct vf *vf, uint64_t off, uint64_t v, uint32_t len)
{
	vf_bar0_write(vf, off, &v, len);
}

/* A driver brings the VF up: features, two queues in guest RAM, DRIVER_OK. */
static void driver_up(struct vf *vf)
{
	dma_space_map_fd(&vf->dma, 0, FUZZ_MEM_SIZE, fz_memfd, 0, DMA_PROT_READ | DMA_PROT_WRITE);
	w(vf, 20, 3, 1);
	w(vf, 8, 0, 4);
	w(vf, 12, VF_FEATURES & 0xffffffff, 4);
	w(vf, 8, 1, 4);
	w(vf, 12, VF_FEATURES >> 32, 4);
	w(vf, 20, 0x0b, 1);
	for (unsigned q = 0; q < 2; q++) {
		w(vf, 22, q, 2);
		w(vf, 24, 16, 2);
		w(vf, 26, q + 1, 2);
		w(vf, 32, 0x3000 * q, 8);
		w(vf, 40, 0x3000 * q + 0x1000, 8);
		w(vf, 48, 0x3000 * q + 0x2000, 8);
		w(vf, 28, 1, 2);
	}
	w(vf, 16, 0, 2);
	w(vf, 20, 0x0f, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vf *vf;
	struct state_buf good, in, out, again;
	uint8_t *stream;
	size_t len;

	fz_setup();
	vf = fz_nic->vfs[0];
	driver_up(vf);
	vf->dev.ops->pause(&vf->dev);
	state_init_writer(&good);
	if (vf->dev.ops->save(&vf->dev, &good))
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
	if (vf->dev.ops->load(&vf->dev, &in) == 0) {
		state_init_writer(&out);
		if (vf->dev.ops->save(&vf->dev, &out))
			abort();
		state_init_reader(&again, out.data, out.len);
		if (vf->dev.ops->load(&vf->dev, &again) || !state_at_end(&again))
			abort();
		state_free(&out);
	}
	free(stream);
	state_free(&good);
	vf->dev.ops->resume(&vf->dev);
	fz_pass();
	fz_reset();
	return 0;
}
