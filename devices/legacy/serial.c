// SPDX-License-Identifier: MIT
/*
 * 8250/16550A UART on COM1: the guest console.  Transmit goes straight to the
 * console fd; receive is fed by the main loop (stdin) into a small FIFO and
 * raises IRQ 4 through the in-kernel PIC/IOAPIC when the guest enabled it.
 * While paused, input still fills the FIFO but the line is not driven; resume
 * drives it to what the registers say.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <unistd.h>

#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "devices/platform.h"
#include "vmm/util.h"
#include "vmm/vm.h"

enum {
	UART_RBR_THR = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3,
	UART_MCR = 4, UART_LSR = 5, UART_MSR = 6, UART_SCR = 7,
};
#define LCR_DLAB	0x80
#define IER_RDI		0x01
#define IER_THRI	0x02
#define IIR_NO_INT	0x01
#define IIR_THRI	0x02
#define IIR_RDI		0x04
#define IIR_FIFO	0xc0
#define LSR_DR		0x01
#define LSR_THRE	0x20
#define LSR_TEMT	0x40
#define MCR_LOOP	0x10
#define RX_FIFO		64

struct serial {
	struct device dev;
	struct vm *vm;
	int out_fd;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thr_pending;	/* THR-empty interrupt not yet acknowledged */
	uint8_t rx[RX_FIFO];
	unsigned rx_head, rx_count;
	int irq_level;
	bool paused;
};

static uint8_t serial_iir(struct serial *s)
{
	uint8_t fifo = (s->fcr & 1) ? IIR_FIFO : 0;

	if ((s->ier & IER_RDI) && s->rx_count)
		return IIR_RDI | fifo;
	if ((s->ier & IER_THRI) && s->thr_pending)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

static void serial_update_irq(struct serial *s)
{
	int level = !(serial_iir(s) & IIR_NO_INT);

	if (level == s->irq_level || !s->vm || s->paused)
		return;
	s->irq_level = level;
	vm_irq_line(s->vm, PLAT_COM1_IRQ, level);
}

static void serial_tx(struct serial *s, uint8_t c)
{
	if (s->mcr & MCR_LOOP) {
		if (s->rx_count < RX_FIFO)
			s->rx[(s->rx_head + s->rx_count++) % RX_FIFO] = c;
		return;
	}
	if (s->out_fd >= 0) {
		/* A console that went away must not stop the guest. */
		while (write(s->out_fd, &c, 1) < 0 && errno == EINTR)
			;
	}
}

static void serial_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct serial *s = opaque;
	uint8_t v = *(const uint8_t *)data;

	pthread_mutex_lock(&s->dev.lock);
	switch (off) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
		} else {
			serial_tx(s, v);
			s->thr_pending = true;
		}
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
		} else {
			s->ier = v & 0x0f;
			if (s->ier & IER_THRI)
				s->thr_pending = true;
		}
		break;
	case UART_IIR_FCR:
		s->fcr = v;
		if (v & 0x02)
			s->rx_count = 0;
		break;
	case UART_LCR: s->lcr = v; break;
	case UART_MCR: s->mcr = v; break;
	case UART_SCR: s->scr = v; break;
	default: break;	/* LSR and MSR are read-only */
	}
	serial_update_irq(s);
	pthread_mutex_unlock(&s->dev.lock);
}

static void serial_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct serial *s = opaque;
	uint8_t v = 0;

	pthread_mutex_lock(&s->dev.lock);
	switch (off) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB) {
			v = s->dll;
		} else if (s->rx_count) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % RX_FIFO;
			s->rx_count--;
		}
		break;
	case UART_IER: v = (s->lcr & LCR_DLAB) ? s->dlm : s->ier; break;
	case UART_IIR_FCR:
		v = serial_iir(s);
		if ((v & 0x0f) == IIR_THRI)
			s->thr_pending = false;
		break;
	case UART_LCR: v = s->lcr; break;
	case UART_MCR: v = s->mcr; break;
	case UART_LSR: v = LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0); break;
	case UART_MSR: v = (s->mcr & MCR_LOOP) ? 0 : 0xb0; break;	/* DCD, DSR, CTS */
	case UART_SCR: v = s->scr; break;
	}
	serial_update_irq(s);
	pthread_mutex_unlock(&s->dev.lock);
	memset(data, v, len);
}

static const struct io_ops serial_io = { .read = serial_read, .write = serial_write };

static int serial_realize(struct device *dev, struct vm *vm)
{
	struct serial *s = container_of(dev, struct serial, dev);

	s->vm = vm;
	s->out_fd = vm->console_out_fd;
	return iobus_register(&vm->pio, PLAT_COM1_PORT, 8, &serial_io, s);
}

static void serial_reset(struct device *dev)
{
	struct serial *s = container_of(dev, struct serial, dev);

	s->ier = s->lcr = s->mcr = s->scr = s->dll = s->dlm = s->fcr = 0;
	s->thr_pending = false;
	s->rx_head = s->rx_count = 0;
}

static int serial_save(struct device *dev, struct state_buf *sb)
{
	struct serial *s = container_of(dev, struct serial, dev);

	state_put_u8(sb, s->ier);
	state_put_u8(sb, s->lcr);
	state_put_u8(sb, s->mcr);
	state_put_u8(sb, s->scr);
	state_put_u8(sb, s->dll);
	state_put_u8(sb, s->dlm);
	state_put_u8(sb, s->fcr);
	state_put_u8(sb, s->thr_pending);
	state_put_u8(sb, s->rx_count);
	for (unsigned i = 0; i < s->rx_count; i++)
		state_put_u8(sb, s->rx[(s->rx_head + i) % RX_FIFO]);
	return 0;
}

static int serial_load(struct device *dev, struct state_buf *sb)
{
	struct serial *s = container_of(dev, struct serial, dev);
	unsigned n;

	s->ier = state_get_u8(sb) & 0x0f;
	s->lcr = state_get_u8(sb);
	s->mcr = state_get_u8(sb);
	s->scr = state_get_u8(sb);
	s->dll = state_get_u8(sb);
	s->dlm = state_get_u8(sb);
	s->fcr = state_get_u8(sb);
	s->thr_pending = state_get_u8(sb) & 1;
	n = state_get_u8(sb);
	if (n > RX_FIFO)
		return -EINVAL;
	s->rx_head = 0;
	s->rx_count = n;
	state_get_bytes(sb, s->rx, n);
	return state_ok(sb) ? 0 : -EINVAL;
}

/* The line follows the loaded registers (forced: its old level is unknown). */
static int serial_post_load(struct device *dev)
{
	struct serial *s = container_of(dev, struct serial, dev);

	s->irq_level = -1;
	serial_update_irq(s);
	return 0;
}

static int serial_pause(struct device *dev)
{
	container_of(dev, struct serial, dev)->paused = true;
	return 0;
}

static int serial_resume(struct device *dev)
{
	struct serial *s = container_of(dev, struct serial, dev);

	s->paused = false;
	serial_update_irq(s);	/* input that arrived meanwhile */
	return 0;
}

static const struct device_mig_ops serial_mig = {
	.version = 1,
	.save_final = serial_save,
	.load = serial_load,
	.post_load = serial_post_load,
};

static const struct device_ops serial_ops = {
	.type = "8250",
	.realize = serial_realize,
	.reset = serial_reset,
	.pause = serial_pause,
	.resume = serial_resume,
	.mig = &serial_mig,
};

struct device *serial_create(void)
{
	struct serial *s = xzalloc(sizeof(*s));

	device_init(&s->dev, &serial_ops, "com1");
	s->out_fd = -1;
	return &s->dev;
}

void serial_input(struct device *dev, const uint8_t *buf, size_t len)
{
	struct serial *s = container_of(dev, struct serial, dev);

	pthread_mutex_lock(&dev->lock);
	for (size_t i = 0; i < len && s->rx_count < RX_FIFO; i++)
		s->rx[(s->rx_head + s->rx_count++) % RX_FIFO] = buf[i];
	serial_update_irq(s);
	pthread_mutex_unlock(&dev->lock);
}
