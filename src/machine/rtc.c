/* The MC146818 CMOS RTC at 0x70/0x71: the host's time at machine start
 * advancing with the virtual clock, BCD/binary and 12/24 h per register B,
 * periodic/alarm/update interrupts on IRQ 8, and the CMOS memory fields
 * firmware and kernels read (memory size, CPU count, century). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "machine/machine_impl.h"
#include "state/stream.h"

#define REG_SEC 0x00
#define REG_SEC_ALARM 0x01
#define REG_MIN 0x02
#define REG_MIN_ALARM 0x03
#define REG_HOUR 0x04
#define REG_HOUR_ALARM 0x05
#define REG_WDAY 0x06
#define REG_MDAY 0x07
#define REG_MONTH 0x08
#define REG_YEAR 0x09
#define REG_A 0x0a
#define REG_B 0x0b
#define REG_C 0x0c
#define REG_D 0x0d
#define REG_CENTURY 0x32

#define A_UIP 0x80
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_DM_BINARY 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define C_UF 0x10

#define NS 1000000000ull
#define UIP_NS 244000ull /* UIP is set this long before each update (datasheet) */

static uint8_t to_bcd(const struct rtc *r, unsigned v)
{
	if (r->s.cmos[REG_B] & B_DM_BINARY)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static unsigned from_bcd(const struct rtc *r, uint8_t v)
{
	if (r->s.cmos[REG_B] & B_DM_BINARY)
		return v;
	return ((v >> 4) & 0xf) * 10 + (v & 0xf);
}

/* UTC calendar arithmetic of our own: glibc's gmtime_r and timegm load the
 * host's time zone (/etc/localtime) at their first call, a file read and
 * libc's zone code at every start of a VM and restore, for an answer that
 * never depends on the zone. Proleptic Gregorian, days since 1970-01-01
 * (the era algorithm of H. Hinnant's "chrono-compatible low-level date
 * algorithms"); any int64 day count in years 0-9999 and far beyond. */
static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int64_t rtc_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* tm from seconds since the epoch, as gmtime_r: tm_year, tm_mon (0-11),
 * tm_mday, tm_hour, tm_min, tm_sec and tm_wday (0: Sunday). */
static void rtc_utc_tm(int64_t t, struct tm *tm)
{
	int64_t days = floor_div(t, 86400), sod = t - days * 86400;
	tm->tm_hour = (int)(sod / 3600);
	tm->tm_min = (int)(sod / 60 % 60);
	tm->tm_sec = (int)(sod % 60);
	tm->tm_wday = (int)(days + 4 - floor_div(days + 4, 7) * 7); /* 1970-01-01: a Thursday */
	int64_t z = days + 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	tm->tm_mday = (int)(doy - (153 * mp + 2) / 5 + 1);
	tm->tm_mon = (int)m - 1;
	tm->tm_year = (int)(yoe + era * 400 + (m <= 2) - 1900);
}

/* Seconds since the epoch from tm, as timegm: fields out of range carry
 * into the next (month 13 is January of the next year, day 0 the last of
 * the month before, hour 25 the next day's first). */
static int64_t rtc_utc_sec(const struct tm *tm)
{
	int64_t y = (int64_t)tm->tm_year + 1900 + floor_div(tm->tm_mon, 12);
	unsigned m = (unsigned)(tm->tm_mon - floor_div(tm->tm_mon, 12) * 12) + 1;
	int64_t days = rtc_days_from_civil(y, m, 1) + tm->tm_mday - 1;
	return days * 86400 + (int64_t)tm->tm_hour * 3600 + (int64_t)tm->tm_min * 60 + tm->tm_sec;
}

static int64_t rtc_now_sec(struct rtc *r, uint64_t now)
{
	return r->s.base_sec + (int64_t)(now / NS);
}

/* Registers 0-9 and the century from the current time. */
static void rtc_fill_time(struct rtc *r, uint64_t now)
{
	struct tm tm;
	rtc_utc_tm(rtc_now_sec(r, now), &tm);
	uint8_t *c = r->s.cmos;
	c[REG_SEC] = to_bcd(r, (unsigned)tm.tm_sec);
	c[REG_MIN] = to_bcd(r, (unsigned)tm.tm_min);
	if (c[REG_B] & B_24H) {
		c[REG_HOUR] = to_bcd(r, (unsigned)tm.tm_hour);
	} else {
		unsigned h = (unsigned)tm.tm_hour % 12;
		c[REG_HOUR] = to_bcd(r, h ? h : 12) | (tm.tm_hour >= 12 ? 0x80 : 0);
	}
	c[REG_WDAY] = to_bcd(r, (unsigned)tm.tm_wday + 1);
	c[REG_MDAY] = to_bcd(r, (unsigned)tm.tm_mday);
	c[REG_MONTH] = to_bcd(r, (unsigned)tm.tm_mon + 1);
	c[REG_YEAR] = to_bcd(r, (unsigned)(tm.tm_year % 100));
	c[REG_CENTURY] = to_bcd(r, (unsigned)(tm.tm_year + 1900) / 100);
}

/* The guest set the clock (register B SET cleared): rebase on its fields. */
static void rtc_take_time(struct rtc *r, uint64_t now)
{
	const uint8_t *c = r->s.cmos;
	struct tm tm = {0};
	tm.tm_sec = (int)from_bcd(r, c[REG_SEC]);
	tm.tm_min = (int)from_bcd(r, c[REG_MIN]);
	unsigned h = from_bcd(r, c[REG_HOUR] & 0x7f);
	if (!(c[REG_B] & B_24H)) {
		h %= 12;
		if (c[REG_HOUR] & 0x80)
			h += 12;
	}
	tm.tm_hour = (int)h;
	tm.tm_mday = (int)from_bcd(r, c[REG_MDAY]);
	tm.tm_mon = (int)from_bcd(r, c[REG_MONTH]) - 1;
	tm.tm_year = (int)(from_bcd(r, c[REG_CENTURY]) * 100 + from_bcd(r, c[REG_YEAR])) - 1900;
	r->s.base_sec = rtc_utc_sec(&tm) - (int64_t)(now / NS);
}

/* Periodic interrupt period from register A's rate select; 0 if off. */
static uint64_t rtc_period_ns(const struct rtc *r)
{
	unsigned rate = r->s.cmos[REG_A] & 0xf;
	if (!rate || ((r->s.cmos[REG_A] >> 4) & 7) != 2)
		return 0;
	if (rate <= 2)
		rate += 7; /* rates 1 and 2 behave like 8 and 9 with a 32.768 kHz base */
	return (NS << (rate - 1)) / 32768;
}

static int rtc_alarm_match(struct rtc *r)
{
	const uint8_t *c = r->s.cmos;
	for (unsigned k = 0; k < 3; k++) {
		uint8_t alarm = c[REG_SEC_ALARM + 2 * k];
		if ((alarm & 0xc0) == 0xc0) /* don't care */
			continue;
		if (alarm != c[REG_SEC + 2 * k])
			return 0;
	}
	return 1;
}

static void rtc_arm(struct rtc *r)
{
	uint64_t now = clock_ns(r->m), next = 0;
	uint8_t b = r->s.cmos[REG_B];
	uint64_t period = rtc_period_ns(r);
	if ((b & B_PIE) && period)
		next = (now / period + 1) * period;
	if ((b & (B_AIE | B_UIE)) && !(b & B_SET)) {
		uint64_t sec = (now / NS + 1) * NS;
		if (!next || sec < next)
			next = sec;
	}
	r->s.next_event = next;
	if (next)
		mtimer_arm(r->timer, next);
	else
		mtimer_cancel(r->timer);
}

static void rtc_raise(struct rtc *r, uint8_t flags)
{
	uint8_t *c = &r->s.cmos[REG_C];
	*c |= flags;
	uint8_t b = r->s.cmos[REG_B];
	if (!(*c & C_IRQF) && (*c & (b & (B_PIE | B_AIE | B_UIE)))) {
		*c |= C_IRQF;
		irq_pulse(r->m, 8);
	}
}

static void rtc_timer_fire(void *opaque)
{
	struct rtc *r = opaque;
	uint64_t now = clock_ns(r->m), period = rtc_period_ns(r);
	uint8_t flags = 0;
	if (period && (r->s.cmos[REG_B] & B_PIE))
		flags |= C_PF;
	if (r->s.next_event % NS == 0 && !(r->s.cmos[REG_B] & B_SET)) {
		flags |= C_UF;
		rtc_fill_time(r, now);
		if (rtc_alarm_match(r))
			flags |= C_AF;
	}
	rtc_raise(r, flags);
	rtc_arm(r);
}

static uint8_t rtc_read_data(struct rtc *r)
{
	uint8_t idx = r->s.index;
	uint64_t now = clock_ns(r->m);
	uint8_t *c = r->s.cmos;
	if (idx <= REG_YEAR || idx == REG_CENTURY) {
		if (!(c[REG_B] & B_SET))
			rtc_fill_time(r, now);
		return c[idx];
	}
	switch (idx) {
	case REG_A: return (c[REG_A] & 0x7f) | (now % NS >= NS - UIP_NS && !(c[REG_B] & B_SET) ? A_UIP : 0);
	case REG_C: {
		/* Flags whose events passed since the last read, then clear on read. */
		uint64_t period = rtc_period_ns(r), last = r->s.last_c_read;
		uint8_t v = c[REG_C];
		if (period && now / period != last / period)
			v |= C_PF;
		if (now / NS != last / NS && !(c[REG_B] & B_SET))
			v |= C_UF;
		c[REG_C] = 0;
		r->s.last_c_read = now;
		return v;
	}
	case REG_D: return 0x80; /* valid RAM and time */
	default: return c[idx];
	}
}

static void rtc_write_data(struct rtc *r, uint8_t val)
{
	uint8_t idx = r->s.index;
	uint8_t *c = r->s.cmos;
	uint64_t now = clock_ns(r->m);
	switch (idx) {
	case REG_A:
		c[REG_A] = val & 0x7f;
		rtc_arm(r);
		break;
	case REG_B:
		if ((c[REG_B] & B_SET) && !(val & B_SET)) {
			c[REG_B] = val;
			rtc_take_time(r, now);
		} else {
			if (!(c[REG_B] & B_SET) && (val & B_SET))
				rtc_fill_time(r, now); /* freeze the fields the guest will edit */
			c[REG_B] = val;
		}
		rtc_arm(r);
		break;
	case REG_C:
	case REG_D: break; /* read-only */
	default: c[idx] = val; break;
	}
}

static uint64_t rtc_rd(void *dev, uint64_t off, unsigned size)
{
	struct rtc *r = dev;
	(void)size;
	if (off == 0)
		return 0xff; /* the index register is write-only */
	return rtc_read_data(r);
}

static void rtc_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct rtc *r = dev;
	(void)size;
	if (off == 0) {
		r->s.index = val & 0x7f;
		r->s.nmi_masked = (val >> 7) & 1;
	} else {
		rtc_write_data(r, (uint8_t)val);
	}
}

/* CMOS memory fields for the RAM size: 0x15/0x16 base memory in KiB,
 * 0x17/0x18 and 0x30/0x31 KiB from 1 to 65 MiB, 0x34/0x35 64 KiB units
 * above 16 MiB (below 4 GiB), 0x5b-0x5d 64 KiB units above 4 GiB, 0x5f
 * CPUs - 1 (the layout QEMU and SeaBIOS use). */
static void rtc_set_mem(struct rtc *r, struct machine *m)
{
	uint8_t *c = r->s.cmos;
	uint64_t low = m->low_size, high = m->mem_size - m->low_size;
	c[0x15] = 640 & 0xff;
	c[0x16] = 640 >> 8;
	uint64_t ext = low > (1u << 20) ? (low - (1u << 20)) / 1024 : 0;
	if (ext > 0xfc00)
		ext = 0xfc00;
	c[0x17] = c[0x30] = (uint8_t)ext;
	c[0x18] = c[0x31] = (uint8_t)(ext >> 8);
	uint64_t above16 = low > (16u << 20) ? (low - (16u << 20)) / 65536 : 0;
	if (above16 > 0xffff)
		above16 = 0xffff;
	c[0x34] = (uint8_t)above16;
	c[0x35] = (uint8_t)(above16 >> 8);
	uint64_t above4g = high / 65536;
	if (above4g > 0xffffff)
		above4g = 0xffffff;
	c[0x5b] = (uint8_t)above4g;
	c[0x5c] = (uint8_t)(above4g >> 8);
	c[0x5d] = (uint8_t)(above4g >> 16);
	c[0x5f] = (uint8_t)(m->ncpus - 1);
}

/* The RESET pin (MC146818A): the clock and the CMOS memory stay; the
 * interrupt enables (PIE, AIE, UIE, SQWE) and flags go. */
void rtc_reset(struct rtc *r)
{
	r->s.cmos[REG_B] &= (uint8_t) ~(B_PIE | B_AIE | B_UIE | 0x08);
	r->s.cmos[REG_C] = 0;
	rtc_arm(r);
}

int rtc_register(struct rtc *r, struct machine *m, int64_t host_sec)
{
	memset(&r->s, 0, sizeof(r->s));
	r->m = m;
	r->timer = mtimer_new(m, rtc_timer_fire, r);
	if (!r->timer)
		return -ENOMEM;
	r->s.base_sec = host_sec - (int64_t)(clock_ns(m) / NS);
	r->s.cmos[REG_A] = 0x26; /* 32.768 kHz divider, 1024 Hz rate */
	r->s.cmos[REG_B] = B_24H;
	rtc_set_mem(r, m);
	rtc_fill_time(r, clock_ns(m));
	return bus_register_pio(m, PORT_RTC, 2, rtc_rd, rtc_wr, r);
}

/* Validate st (a hostile snapshot's) and commit it: 0, or -EINVAL with
 * the device unchanged. */
static int rtc_commit(struct rtc *r, struct rtc_state *stp)
{
	struct rtc_state st = *stp;
	/* years 0-9999 (what the CMOS fields can show) */
	if (st.base_sec < -62167219200ll || st.base_sec > 253402300799ll - (1ll << 34))
		return -EINVAL;
	st.index &= 0x7f;
	st.nmi_masked &= 1;
	r->s = st;
	rtc_arm(r);
	return 0;
}

void rtc_state_save(const struct rtc *rtc, struct state_writer *w)
{
	const struct rtc_state *s = &rtc->s;
	state_put_bytes(w, s->cmos, sizeof(s->cmos));
	state_put_u8(w, s->index);
	state_put_u8(w, s->nmi_masked);
	state_put_u64(w, (uint64_t)s->base_sec);
	state_put_u64(w, s->last_c_read);
	state_put_u64(w, s->next_event);
}

int rtc_state_load(struct rtc *rtc, struct state_reader *sr)
{
	struct rtc_state st = {0};
	state_get_bytes(sr, st.cmos, sizeof(st.cmos));
	st.index = state_get_u8(sr);
	st.nmi_masked = state_get_u8(sr);
	st.base_sec = (int64_t)state_get_u64(sr);
	st.last_c_read = state_get_u64(sr);
	st.next_event = state_get_u64(sr);
	if (!state_section_done(sr))
		return -EINVAL;
	if (rtc_commit(rtc, &st) < 0) {
		state_fail(sr, "rtc: a value out of range");
		return -EINVAL;
	}
	return 0;
}
