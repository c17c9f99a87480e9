/* The 16550A UART on COM1 (0x3f8, IRQ 4): all registers, the 16-byte receive
 * FIFO, interrupts gated by OUT2 as on a PC, loopback; transmitted bytes go
 * to a host fd at once (THR is always empty), received bytes come from the
 * engine's host input. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "machine/machine_impl.h"
#include "machine/replay.h"
#include "state/stream.h"

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI 0x08
#define IIR_NONE 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_TIMEOUT 0x0c
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB 0x80
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_BI 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRORS 0x1e
#define MSR_DELTAS 0x0f

static unsigned uart_capacity(const struct uart *u)
{
	return (u->s.fcr & FCR_ENABLE) ? UART_FIFO : 1;
}

static unsigned uart_trigger(const struct uart *u)
{
	static const uint8_t level[4] = {1, 4, 8, 14};
	return (u->s.fcr & FCR_ENABLE) ? level[u->s.fcr >> 6] : 1;
}

static void uart_update(struct uart *u)
{
	struct uart_state *s = &u->s;
	uint8_t iir = IIR_NONE;
	if ((s->ier & IER_RLSI) && (s->lsr & LSR_ERRORS))
		iir = IIR_RLSI;
	else if ((s->ier & IER_RDI) && s->rx_count)
		/* Below the trigger level the 16550 reports a character timeout;
		 * corral reports it at once rather than after four character times. */
		iir = s->rx_count >= uart_trigger(u) ? IIR_RDI : IIR_TIMEOUT;
	else if ((s->ier & IER_THRI) && s->thr_ipending)
		iir = IIR_THRI;
	else if ((s->ier & IER_MSI) && (s->msr & MSR_DELTAS))
		iir = IIR_MSI;
	s->iir = iir | ((s->fcr & FCR_ENABLE) ? IIR_FIFO : 0);
	/* On a PC the UART's interrupt line passes through OUT2. */
	int level = !(iir & IIR_NONE) && (s->mcr & MCR_OUT2);
	if (level != s->irq_level) {
		s->irq_level = (uint8_t)level;
		irq_set_level(u->m, IRQ_COM1, level);
	}
}

void uart_flush(struct uart *u)
{
	size_t done = 0;
	while (done < u->out_len && u->out_fd >= 0) {
		ssize_t n = write(u->out_fd, u->out + done, u->out_len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the reader went away: the guest's output is dropped */
		done += (size_t)n;
	}
	u->out_len = 0;
}

static int rx_push(struct uart *u, uint8_t b)
{
	struct uart_state *s = &u->s;
	if (s->rx_count >= uart_capacity(u))
		return 0;
	s->rx[(s->rx_head + s->rx_count) % UART_FIFO] = b;
	s->rx_count++;
	s->lsr |= LSR_DR;
	return 1;
}

static void uart_transmit(struct uart *u, uint8_t b)
{
	if (u->s.mcr & MCR_LOOP) {
		if (!rx_push(u, b))
			u->s.lsr |= LSR_OE;
	} else {
		/* hashed wherever it goes, so a replay may send it elsewhere */
		size_t shown = replay_console_out(u->m->rr, &b, 1); /* 1: a replay showed it before */
		if (u->out_fd >= 0 && !shown) {
			u->out[u->out_len++] = b;
			if (u->out_len == UART_OUTBUF || b == '\n')
				uart_flush(u);
		}
	}
	u->s.thr_ipending = 1; /* sent at once: THR is empty again */
}

size_t uart_rx_space(struct uart *u)
{
	if (u->s.mcr & MCR_LOOP)
		return 0;
	return uart_capacity(u) - u->s.rx_count;
}

size_t uart_receive(struct uart *u, const uint8_t *buf, size_t n)
{
	size_t k = 0;
	if (u->s.mcr & MCR_LOOP)
		return 0;
	while (k < n && rx_push(u, buf[k]))
		k++;
	if (k)
		uart_update(u);
	return k;
}

static uint8_t loop_msr(uint8_t mcr)
{
	/* Loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD */
	return (uint8_t)(((mcr & MCR_RTS) << 3) | ((mcr & MCR_DTR) << 5) | ((mcr & MCR_OUT1) << 4) |
			 ((mcr & MCR_OUT2) << 4));
}

static void uart_set_msr(struct uart *u, uint8_t lines)
{
	uint8_t old = u->s.msr & 0xf0, delta = 0;
	if ((old ^ lines) & 0x10)
		delta |= 0x01;
	if ((old ^ lines) & 0x20)
		delta |= 0x02;
	if ((old & 0x40) && !(lines & 0x40))
		delta |= 0x04; /* trailing edge of RI */
	if ((old ^ lines) & 0x80)
		delta |= 0x08;
	u->s.msr = lines | (u->s.msr & MSR_DELTAS) | delta;
}

static uint64_t uart_rd(void *dev, uint64_t off, unsigned size)
{
	struct uart *u = dev;
	struct uart_state *s = &u->s;
	uint8_t v;
	(void)size;
	switch (off) {
	case 0:
		if (s->lcr & LCR_DLAB)
			return s->divider & 0xff;
		if (s->rx_count) {
			s->rbr = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % UART_FIFO;
			s->rx_count--;
		}
		if (!s->rx_count)
			s->lsr &= ~LSR_DR;
		uart_update(u);
		return s->rbr;
	case 1: return (s->lcr & LCR_DLAB) ? s->divider >> 8 : s->ier;
	case 2:
		v = s->iir;
		/* Reading IIR while it reports THRE acknowledges that interrupt. */
		if ((v & 0x0f) == IIR_THRI) {
			s->thr_ipending = 0;
			uart_update(u);
		}
		return v;
	case 3: return s->lcr;
	case 4: return s->mcr;
	case 5:
		v = s->lsr | LSR_THRE | LSR_TEMT;
		s->lsr &= ~(LSR_ERRORS);
		uart_update(u);
		return v;
	case 6:
		v = s->msr;
		s->msr &= ~MSR_DELTAS;
		uart_update(u);
		return v;
	default: return s->scr;
	}
}

static void uart_wr(void *dev, uint64_t off, unsigned size, uint64_t val64)
{
	struct uart *u = dev;
	struct uart_state *s = &u->s;
	uint8_t val = (uint8_t)val64;
	(void)size;
	switch (off) {
	case 0:
		if (s->lcr & LCR_DLAB) {
			s->divider = (s->divider & 0xff00) | val;
			return;
		}
		s->thr_ipending = 0;
		uart_transmit(u, val);
		break;
	case 1:
		if (s->lcr & LCR_DLAB) {
			s->divider = (uint16_t)((s->divider & 0xff) | (val << 8));
			return;
		}
		/* Enabling THRE interrupts while THR is empty raises one at once. */
		if ((val & IER_THRI) && !(s->ier & IER_THRI))
			s->thr_ipending = 1;
		s->ier = val & 0x0f;
		break;
	case 2:
		if ((val ^ s->fcr) & FCR_ENABLE)
			val |= FCR_CLEAR_RX; /* toggling FIFO mode empties the FIFOs */
		if (val & FCR_CLEAR_RX) {
			s->rx_count = 0;
			s->rx_head = 0;
			s->lsr &= ~LSR_DR;
		}
		s->fcr = val & 0xc9;
		if (s->rx_count > uart_capacity(u))
			s->rx_count = (uint8_t)uart_capacity(u);
		break;
	case 3: s->lcr = val; break;
	case 4:
		s->mcr = val & 0x1f;
		uart_set_msr(u, (s->mcr & MCR_LOOP) ? loop_msr(s->mcr) : 0xb0);
		break;
	case 5: break; /* LSR: factory test only */
	case 6: break;
	default: s->scr = val; break;
	}
	uart_update(u);
}

void uart_reset(struct uart *u)
{
	uart_flush(u);
	memset(&u->s, 0, sizeof(u->s));
	u->s.iir = IIR_NONE;
	u->s.lsr = LSR_THRE | LSR_TEMT;
	u->s.msr = 0xb0;   /* DCD, DSR, CTS: a terminal is connected */
	u->s.divider = 12; /* 9600 baud */
	u->s.lcr = 0x03;
}

int uart_register(struct uart *u, struct machine *m, uint16_t base, int out_fd)
{
	memset(u, 0, sizeof(*u));
	u->m = m;
	u->out_fd = out_fd;
	uart_reset(u);
	return bus_register_pio(m, base, 8, uart_rd, uart_wr, u);
}

/* Validate st (a hostile snapshot's) and commit it: 0, or -EINVAL with
 * the device unchanged. */
static int uart_commit(struct uart *u, struct uart_state *stp)
{
	struct uart_state st = *stp;
	if (st.rx_head >= UART_FIFO || st.rx_count > UART_FIFO)
		return -EINVAL;
	st.ier &= 0x0f;
	st.mcr &= 0x1f;
	st.fcr &= 0xc9;
	if (!(st.fcr & FCR_ENABLE) && st.rx_count > 1)
		return -EINVAL;
	st.thr_ipending &= 1;
	st.irq_level = u->s.irq_level; /* the line as the machine sees it now */
	u->s = st;
	uart_update(u);
	return 0;
}

void uart_state_save(const struct uart *u, struct state_writer *w)
{
	const struct uart_state *s = &u->s;
	state_put_u8(w, s->rbr);
	state_put_u8(w, s->ier);
	state_put_u8(w, s->iir);
	state_put_u8(w, s->lcr);
	state_put_u8(w, s->mcr);
	state_put_u8(w, s->lsr);
	state_put_u8(w, s->msr);
	state_put_u8(w, s->scr);
	state_put_u8(w, s->fcr);
	state_put_u16(w, s->divider);
	state_put_u8(w, s->thr_ipending);
	state_put_u8(w, s->irq_level);
	state_put_bytes(w, s->rx, sizeof(s->rx));
	state_put_u8(w, s->rx_head);
	state_put_u8(w, s->rx_count);
}

int uart_state_load(struct uart *u, struct state_reader *r)
{
	struct uart_state st = {0};
	st.rbr = state_get_u8(r);
	st.ier = state_get_u8(r);
	st.iir = state_get_u8(r);
	st.lcr = state_get_u8(r);
	st.mcr = state_get_u8(r);
	st.lsr = state_get_u8(r);
	st.msr = state_get_u8(r);
	st.scr = state_get_u8(r);
	st.fcr = state_get_u8(r);
	st.divider = state_get_u16(r);
	st.thr_ipending = state_get_u8(r);
	st.irq_level = state_get_u8(r);
	state_get_bytes(r, st.rx, sizeof(st.rx));
	st.rx_head = state_get_u8(r);
	st.rx_count = state_get_u8(r);
	if (!state_section_done(r))
		return -EINVAL;
	if (uart_commit(u, &st) < 0) {
		state_fail(r, "uart: a value out of range");
		return -EINVAL;
	}
	return 0;
}
