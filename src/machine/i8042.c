/* The i8042 keyboard controller at 0x60/0x64: enough for Linux to probe it
 * (self tests, command byte, echo) and for its reset line (command 0xfe, or
 * output port bit 0) to restart the machine. No keyboard or mouse. */
#include <errno.h>
#include <string.h>

#include "machine/machine_impl.h"
#include "state/stream.h"

#define ST_OBF 0x01
#define ST_SYS 0x04
#define ST_CMD 0x08
#define ST_UNLOCKED 0x10
#define ST_AUX 0x20
#define CTR_KBD_INT 0x01
#define CTR_AUX_INT 0x02
#define CTR_KBD_OFF 0x10
#define CTR_AUX_OFF 0x20

static void kbd_refresh(struct i8042 *k)
{
	struct i8042_state *s = &k->s;
	s->status &= ~(ST_OBF | ST_AUX);
	if (!s->q_count)
		return;
	s->status |= ST_OBF;
	if (s->q_aux & (1u << s->q_head))
		s->status |= ST_AUX;
}

static void kbd_push(struct i8042 *k, uint8_t b, int aux)
{
	struct i8042_state *s = &k->s;
	if (s->q_count >= sizeof(s->q))
		return;
	unsigned slot = (s->q_head + s->q_count) % sizeof(s->q);
	s->q[slot] = b;
	if (aux)
		s->q_aux |= (uint16_t)(1u << slot);
	else
		s->q_aux &= (uint16_t) ~(1u << slot);
	s->q_count++;
	kbd_refresh(k);
	if (aux ? (s->cmd_byte & CTR_AUX_INT) : (s->cmd_byte & CTR_KBD_INT))
		irq_pulse(k->m, aux ? 12 : 1);
}

static void kbd_reset_line(struct i8042 *k)
{
	machine_request_power(k->m, POWER_RESET);
}

static uint64_t kbd_status_rd(void *dev, uint64_t off, unsigned size)
{
	struct i8042 *k = dev;
	(void)off;
	(void)size;
	return k->s.status;
}

static uint64_t kbd_data_rd(void *dev, uint64_t off, unsigned size)
{
	struct i8042 *k = dev;
	struct i8042_state *s = &k->s;
	(void)off;
	(void)size;
	if (!s->q_count)
		return s->q[(s->q_head + sizeof(s->q) - 1) % sizeof(s->q)]; /* last byte again */
	uint8_t b = s->q[s->q_head];
	s->q_head = (s->q_head + 1) % sizeof(s->q);
	s->q_count--;
	kbd_refresh(k);
	return b;
}

static void kbd_command(struct i8042 *k, uint8_t cmd)
{
	struct i8042_state *s = &k->s;
	switch (cmd) {
	case 0x20: kbd_push(k, s->cmd_byte, 0); break;
	case 0x60:
	case 0xd1:
	case 0xd2:
	case 0xd3:
	case 0xd4: s->pending_cmd = cmd; break;
	case 0xa7: s->cmd_byte |= CTR_AUX_OFF; break;
	case 0xa8: s->cmd_byte &= ~CTR_AUX_OFF; break;
	case 0xa9: /* AUX interface test: clock line stuck low, i.e. no mouse port */ kbd_push(k, 0x01, 0); break;
	case 0xaa: /* controller self test passed */
		s->status |= ST_SYS;
		kbd_push(k, 0x55, 0);
		break;
	case 0xab: /* keyboard interface test passed */ kbd_push(k, 0x00, 0); break;
	case 0xad: s->cmd_byte |= CTR_KBD_OFF; break;
	case 0xae: s->cmd_byte &= ~CTR_KBD_OFF; break;
	case 0xc0: kbd_push(k, 0x00, 0); break;
	case 0xd0: kbd_push(k, s->outport, 0); break;
	default:
		/* 0xf0-0xff pulse output lines low; bit 0 is the CPU reset line */
		if (cmd >= 0xf0 && !(cmd & 1))
			kbd_reset_line(k);
		break;
	}
}

/* A byte for the keyboard itself (no command pending). */
static void kbd_device_write(struct i8042 *k, uint8_t b)
{
	switch (b) {
	case 0xff: /* reset: ack, self test passed */
		kbd_push(k, 0xfa, 0);
		kbd_push(k, 0xaa, 0);
		break;
	case 0xf2: /* identify: MF2 keyboard */
		kbd_push(k, 0xfa, 0);
		kbd_push(k, 0xab, 0);
		kbd_push(k, 0x83, 0);
		break;
	case 0xee: /* echo */ kbd_push(k, 0xee, 0); break;
	default: kbd_push(k, 0xfa, 0); break;
	}
}

static void kbd_cmd_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct i8042 *k = dev;
	(void)off;
	(void)size;
	k->s.status |= ST_CMD;
	kbd_command(k, (uint8_t)val);
}

static void kbd_data_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct i8042 *k = dev;
	struct i8042_state *s = &k->s;
	uint8_t b = (uint8_t)val;
	(void)off;
	(void)size;
	s->status &= ~ST_CMD;
	uint8_t cmd = s->pending_cmd;
	s->pending_cmd = 0;
	switch (cmd) {
	case 0x60: s->cmd_byte = b; break;
	case 0xd1:
		s->outport = b;
		if (!(b & 1))
			kbd_reset_line(k);
		break;
	case 0xd2: kbd_push(k, b, 0); break;
	case 0xd3: kbd_push(k, b, 1); break;
	case 0xd4: break; /* no mouse: the guest times out */
	default: kbd_device_write(k, b); break;
	}
}

void i8042_reset(struct i8042 *k)
{
	memset(&k->s, 0, sizeof(k->s));
	k->s.status = ST_SYS | ST_UNLOCKED;
	k->s.cmd_byte = 0x45 | CTR_AUX_OFF; /* kbd interrupt, system flag, translation */
	k->s.outport = 0x03;		    /* reset line high, A20 on */
}

int i8042_register(struct i8042 *k, struct machine *m)
{
	int err;
	k->m = m;
	i8042_reset(k);
	if ((err = bus_register_pio(m, PORT_I8042, 1, kbd_data_rd, kbd_data_wr, k)) < 0 ||
	    (err = bus_register_pio(m, PORT_I8042 + 4, 1, kbd_status_rd, kbd_cmd_wr, k)) < 0)
		return err;
	return 0;
}

/* Validate st (a hostile snapshot's) and commit it: 0, or -EINVAL with
 * the device unchanged. */
static int i8042_commit(struct i8042 *k, struct i8042_state *stp)
{
	struct i8042_state st = *stp;
	if (st.q_head >= sizeof(st.q) || st.q_count > sizeof(st.q))
		return -EINVAL;
	k->s = st;
	return 0;
}

void i8042_state_save(const struct i8042 *k, struct state_writer *w)
{
	const struct i8042_state *s = &k->s;
	state_put_u8(w, s->status);
	state_put_u8(w, s->cmd_byte);
	state_put_u8(w, s->pending_cmd);
	state_put_u8(w, s->outport);
	state_put_bytes(w, s->q, sizeof(s->q));
	state_put_u8(w, s->q_head);
	state_put_u8(w, s->q_count);
	state_put_u16(w, s->q_aux);
}

int i8042_state_load(struct i8042 *k, struct state_reader *r)
{
	struct i8042_state st = {0};
	st.status = state_get_u8(r);
	st.cmd_byte = state_get_u8(r);
	st.pending_cmd = state_get_u8(r);
	st.outport = state_get_u8(r);
	state_get_bytes(r, st.q, sizeof(st.q));
	st.q_head = state_get_u8(r);
	st.q_count = state_get_u8(r);
	st.q_aux = state_get_u16(r);
	if (!state_section_done(r))
		return -EINVAL;
	if (i8042_commit(k, &st) < 0) {
		state_fail(r, "i8042: a value out of range");
		return -EINVAL;
	}
	return 0;
}
