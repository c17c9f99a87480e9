/* ACPI fixed hardware: PM1a event (status/enable) and control blocks, the
 * 3.579545 MHz PM timer (32 bits), a GPE0 block of 16 general-purpose
 * events (the VM generation ID's change), the SCI on IRQ 9 for them and the power button,
 * S5 power-off through SLP_TYP/SLP_EN, and the reset register at 0xcf9. */
#include <errno.h>
#include <string.h>

#include "boot/boot.h"
#include "machine/machine_impl.h"
#include "state/stream.h"

#define STS_TMR 0x0001
#define STS_PWRBTN 0x0100
#define STS_WAK 0x8000
#define CNT_SCI_EN 0x0001
#define CNT_WRITABLE 0x1c06 /* BM_RLD, GBL_RLS, SLP_TYP; SCI_EN is firmware's */

static uint32_t pm_timer(struct acpi_pm *pm)
{
	return (uint32_t)((unsigned __int128)clock_ns(pm->m) * ACPI_PM_TMR_HZ / 1000000000ull);
}

static void pm_update_sci(struct acpi_pm *pm)
{
	int level = (pm->s.cnt & CNT_SCI_EN) &&
		    ((pm->s.sts & pm->s.en & (STS_TMR | STS_PWRBTN)) || (pm->s.gpe_sts & pm->s.gpe_en));
	irq_set_level(pm->m, IRQ_ACPI_SCI, level);
}

static uint64_t pm_rd(void *dev, uint64_t off, unsigned size)
{
	struct acpi_pm *pm = dev;
	uint8_t img[12 + ACPI_GPE0_LEN];
	uint32_t tmr = pm_timer(pm);
	memcpy(img, &pm->s.sts, 2);
	memcpy(img + 2, &pm->s.en, 2);
	memcpy(img + 4, &pm->s.cnt, 2);
	memset(img + 6, 0, 2);
	memcpy(img + 8, &tmr, 4);
	memcpy(img + 12, &pm->s.gpe_sts, 2);
	memcpy(img + 14, &pm->s.gpe_en, 2);
	uint64_t v = 0;
	for (unsigned k = 0; k < size && off + k < sizeof(img); k++)
		v |= (uint64_t)img[off + k] << (8 * k);
	return v;
}

static void pm_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct acpi_pm *pm = dev;
	for (unsigned k = 0; k < size; k++) {
		uint64_t o = off + k;
		uint16_t b = (uint16_t)((val >> (8 * k)) & 0xff);
		unsigned shift = (o & 1) * 8;
		if (o < 2) {
			pm->s.sts &= (uint16_t) ~(b << shift); /* write 1 to clear */
		} else if (o < 4) {
			pm->s.en = (uint16_t)((pm->s.en & ~(0xff << shift)) | (b << shift));
		} else if (o < 6) {
			uint16_t cnt = (uint16_t)((pm->s.cnt & ~(0xff << shift)) | (b << shift));
			if (cnt & ACPI_SLP_EN) {
				if (((cnt >> ACPI_SLP_TYP_SHIFT) & 7) == ACPI_SLP_TYP_S5)
					machine_request_power(pm->m, POWER_OFF);
				/* other sleep states are not offered by the DSDT: ignored */
			}
			pm->s.cnt = (uint16_t)((pm->s.cnt & CNT_SCI_EN) | (cnt & CNT_WRITABLE));
		} else if (o >= 12 && o < 14) {
			pm->s.gpe_sts &= (uint16_t) ~(b << shift); /* write 1 to clear (ACPI 6.4 §4.8.4.1) */
		} else if (o >= 14 && o < 16) {
			pm->s.gpe_en = (uint16_t)((pm->s.gpe_en & ~(0xff << shift)) | (b << shift));
		}
	}
	pm_update_sci(pm);
}

void acpi_pm_power_button(struct acpi_pm *pm)
{
	pm->s.sts |= STS_PWRBTN;
	pm_update_sci(pm);
}

int acpi_pm_gpe(struct acpi_pm *pm, unsigned gpe)
{
	if (gpe >= 16)
		return 0;
	pm->s.gpe_sts |= (uint16_t)(1u << gpe);
	pm_update_sci(pm);
	return !!(pm->s.gpe_en & (1u << gpe));
}

/* 0xcf9, the PIIX reset control register: RST_CPU (bit 2) resets. */
static uint64_t reset_rd(void *dev, uint64_t off, unsigned size)
{
	(void)dev;
	(void)off;
	(void)size;
	return 0;
}

static void reset_wr(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct acpi_pm *pm = dev;
	(void)off;
	(void)size;
	if (val & 0x04)
		machine_request_power(pm->m, POWER_RESET);
}

int acpi_pm_register(struct acpi_pm *pm, struct machine *m)
{
	int err;
	pm->m = m;
	pm->s = (struct acpi_pm_state){.cnt = CNT_SCI_EN}; /* no SMI_CMD: ACPI mode from the start */
	if ((err = bus_register_pio(m, PORT_ACPI_PM, 12 + ACPI_GPE0_LEN, pm_rd, pm_wr, pm)) < 0 ||
	    (err = bus_register_pio(m, PORT_ACPI_RESET, 1, reset_rd, reset_wr, pm)) < 0)
		return err;
	return 0;
}

/* Validate st (a hostile snapshot's) and commit it: 0, or -EINVAL with
 * the device unchanged. */
static int acpi_pm_commit(struct acpi_pm *pm, struct acpi_pm_state *stp)
{
	struct acpi_pm_state st = *stp;
	st.cnt &= CNT_WRITABLE | CNT_SCI_EN;
	pm->s = st;
	pm_update_sci(pm);
	return 0;
}

void acpi_pm_state_save(const struct acpi_pm *pm, struct state_writer *w)
{
	const struct acpi_pm_state *s = &pm->s;
	state_put_u16(w, s->sts);
	state_put_u16(w, s->en);
	state_put_u16(w, s->cnt);
	state_put_u16(w, s->gpe_sts); /* version 2 */
	state_put_u16(w, s->gpe_en);
}

int acpi_pm_state_load(struct acpi_pm *pm, struct state_reader *r)
{
	struct acpi_pm_state st = {0};
	st.sts = state_get_u16(r);
	st.en = state_get_u16(r);
	st.cnt = state_get_u16(r);
	if (r->cur.version >= 2) {
		st.gpe_sts = state_get_u16(r);
		st.gpe_en = state_get_u16(r);
	}
	if (!state_section_done(r))
		return -EINVAL;
	if (acpi_pm_commit(pm, &st) < 0) {
		state_fail(r, "acpi_pm: a value out of range");
		return -EINVAL;
	}
	return 0;
}
