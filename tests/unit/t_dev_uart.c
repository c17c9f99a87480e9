/* The 16550A on COM1 through its ports: scratch, divisor latch, output to a
 * host pipe, loopback (as Linux's autoconfig probes it), the receive FIFO
 * and trigger levels, and interrupts on IRQ 4 gated by OUT2, following the
 * 16550 datasheet's IIR priorities. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "machine/machine_impl.h"
#include "testhelp.h"

static struct machine *m;
static int pipefd[2];

static void out8(uint16_t off, uint8_t v)
{
	bus_pio_write(m, (uint16_t)(0x3f8 + off), 1, v);
}

static uint8_t in8(uint16_t off)
{
	return (uint8_t)bus_pio_read(m, (uint16_t)(0x3f8 + off), 1);
}

static void setup(void)
{
	if (pipe(pipefd) < 0)
		abort();
	fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	struct machine_config cfg = {.mem_size = 16 << 20, .ncpus = 1, .serial_out_fd = pipefd[1]};
	m = NULL;
	if (machine_create(&m, &cfg) < 0)
		abort();
	/* PIC: IRQ 4 unmasked at vector 0x34 */
	bus_pio_write(m, 0x20, 1, 0x11);
	bus_pio_write(m, 0x21, 1, 0x30);
	bus_pio_write(m, 0x21, 1, 0x04);
	bus_pio_write(m, 0x21, 1, 0x01);
	bus_pio_write(m, 0x21, 1, 0xef);
}

static void teardown(void)
{
	machine_destroy(m);
	close(pipefd[0]);
	close(pipefd[1]);
}

static void test_registers(void)
{
	setup();
	out8(7, 0xa5);
	CHECK_EQ_U64(in8(7), 0xa5);
	out8(3, 0x83); /* DLAB */
	out8(0, 0x01);
	out8(1, 0x00); /* 115200 baud */
	CHECK_EQ_U64(in8(0), 0x01);
	CHECK_EQ_U64(in8(1), 0x00);
	out8(3, 0x03); /* 8N1 */
	CHECK_EQ_U64(in8(3), 0x03);
	CHECK_EQ_U64(in8(5) & 0x60, 0x60); /* THRE, TEMT */
	CHECK_EQ_U64(in8(2), 0x01);	   /* no interrupt, FIFO off */
	out8(2, 0x07);			   /* FIFO on */
	CHECK_EQ_U64(in8(2) & 0xc0, 0xc0);
	CHECK_EQ_U64(in8(6) & 0xb0, 0xb0); /* DCD DSR CTS */
	teardown();
}

static void test_output(void)
{
	setup();
	const char *s = "hello\n";
	for (const char *p = s; *p; p++)
		out8(0, (uint8_t)*p);
	char buf[16] = {0};
	ssize_t n = read(pipefd[0], buf, sizeof(buf));
	CHECK_EQ_U64(n, 6);
	CHECK(!memcmp(buf, "hello\n", 6));
	out8(0, 'x'); /* no newline: buffered until a flush */
	uart_flush(&m->com1);
	n = read(pipefd[0], buf, sizeof(buf));
	CHECK(n == 1 && buf[0] == 'x');
	teardown();
}

static void test_loopback(void)
{
	setup();
	/* Linux's autoconfig: MCR = LOOP | OUT2 | RTS, MSR must read 0x90 */
	out8(4, 0x1a);
	CHECK_EQ_U64(in8(6) & 0xf0, 0x90);
	out8(4, 0x1f); /* all four lines */
	CHECK_EQ_U64(in8(6) & 0xf0, 0xf0);
	out8(0, 0x42);
	CHECK_EQ_U64(in8(5) & 0x01, 0x01);
	CHECK_EQ_U64(in8(0), 0x42);
	CHECK_EQ_U64(in8(5) & 0x01, 0x00);
	char buf[4];
	CHECK(read(pipefd[0], buf, sizeof(buf)) < 0); /* nothing went out */
	/* overrun without a FIFO */
	out8(0, 1);
	out8(0, 2);
	CHECK_EQ_U64(in8(5) & 0x03, 0x03);
	CHECK_EQ_U64(in8(5) & 0x02, 0x00); /* OE clears on read */
	CHECK_EQ_U64(in8(0), 1);
	uint8_t b = 'z';
	CHECK_EQ_U64(uart_receive(&m->com1, &b, 1), 0); /* host input waits during loopback */
	teardown();
}

static void test_rx_fifo_irq(void)
{
	setup();
	out8(2, 0x81); /* FIFO, trigger level 8 */
	out8(1, 0x01); /* RX data interrupts */
	uint8_t data[20];
	for (int k = 0; k < 20; k++)
		data[k] = (uint8_t)('a' + k);
	CHECK_EQ_U64(uart_receive(&m->com1, data, 3), 3);
	CHECK(!pic_output(&m->pic));	   /* OUT2 clear: the line is gated */
	CHECK_EQ_U64(in8(2) & 0x0f, 0x0c); /* below the trigger level: timeout */
	out8(4, 0x0b);			   /* DTR RTS OUT2 */
	CHECK(pic_output(&m->pic));
	CHECK_EQ_U64(intr_ack(m, 0), 0x34);
	bus_pio_write(m, 0x20, 1, 0x20);
	CHECK_EQ_U64(uart_receive(&m->com1, data + 3, 17), 13); /* 16 fit */
	CHECK_EQ_U64(uart_rx_space(&m->com1), 0);
	CHECK_EQ_U64(in8(2) & 0x0f, 0x04); /* at/above the trigger level */
	for (int k = 0; k < 16; k++)
		CHECK_EQ_U64(in8(0), 'a' + k);
	CHECK_EQ_U64(in8(2) & 0x0f, 0x01);
	CHECK(!pic_output(&m->pic));
	teardown();
}

static void test_thre_irq(void)
{
	setup();
	out8(4, 0x08);
	out8(1, 0x02); /* enabling THRE with THR empty: at once */
	CHECK(pic_output(&m->pic));
	CHECK_EQ_U64(in8(2) & 0x0f, 0x02);
	CHECK_EQ_U64(in8(2) & 0x0f, 0x01); /* reading IIR acknowledged it */
	intr_ack(m, 0);
	bus_pio_write(m, 0x20, 1, 0x20);
	out8(0, 'a'); /* sent: THR empty again, interrupt again */
	CHECK_EQ_U64(in8(2) & 0x0f, 0x02);
	/* priorities: RX data before THRE */
	out8(1, 0x03);
	uint8_t b = 'q';
	uart_receive(&m->com1, &b, 1);
	out8(0, 'b');
	CHECK_EQ_U64(in8(2) & 0x0f, 0x04);
	CHECK_EQ_U64(in8(0), 'q');
	CHECK_EQ_U64(in8(2) & 0x0f, 0x02);
	/* modem status interrupt on a line change in loopback */
	out8(1, 0x08);
	out8(4, 0x19); /* LOOP | OUT2 | DTR: CTS drops (RTS is off) */
	CHECK_EQ_U64(in8(2) & 0x0f, 0x00);
	CHECK_EQ_U64(in8(6), 0xa1); /* DCD DSR, delta CTS */
	CHECK_EQ_U64(in8(2) & 0x0f, 0x01);
	teardown();
}

int main(void)
{
	RUN(test_registers);
	RUN(test_output);
	RUN(test_loopback);
	RUN(test_rx_fifo_irq);
	RUN(test_thre_irq);
	return test_report();
}
